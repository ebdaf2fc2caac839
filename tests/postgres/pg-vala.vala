/* pg-vala.vala: the PostgreSQL backend from Vala, through the generated
 * es-glib-pg-1.0.vapi (valac --pkg es-glib-pg-1.0): a factory on the
 * throwaway server, a write and a read back, an EsPg.Storage property, and
 * a bad connection string failing with Es.Error.STORAGE. Exits 77
 * (skipped), saying why, when no server can be started.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/* The server fixture of tests/es-test-utils.c: a throwaway server of our
 * own (or the one in ES_TEST_PG_CONNINFO), stopped when we exit. */
[CCode (cname = "es_test_pg_server_get_conninfo")]
extern unowned string? get_test_server_conninfo (out unowned string? reason);

int main () {
    unowned string? reason;
    var conninfo = get_test_server_conninfo (out reason);
    if (conninfo == null) {
        print ("%s\n", reason);
        return 77;
    }
    try {
        var schema = "es_vala_%lld".printf (get_real_time ());
        var factory = (EsPg.StreamFactory) Object.new (typeof (EsPg.StreamFactory),
                                                       "conninfo", conninfo,
                                                       "schema", schema);
        factory.init (null);
        var storage = (EsPg.Storage) factory.get_storage ();
        if (storage.get_schema () != schema || factory.get_schema () != schema) {
            printerr ("pg-vala: schema %s, expected %s\n", storage.get_schema (), schema);
            return 1;
        }

        var stream = factory.open_stream ("vala-1");
        var written = stream.write ({ new Es.CandidateEvent ("Created", new Bytes ("{}".data)),
                                      new Es.CandidateEvent ("Renamed", new Bytes ("{}".data)) },
                                    Es.VERSION_NO_STREAM);
        var events = stream.read (0, null);
        string[] types = {};
        Es.StoredEvent? event;
        while ((event = events.next ()) != null)
            types += event.get_event_type ();
        factory.close ();
        if (written != 2 || types.length != 2 || types[0] != "Created" || types[1] != "Renamed") {
            printerr ("pg-vala: wrote up to version %lld, read %s\n", written,
                      string.joinv (",", types));
            return 1;
        }

        try {
            new EsPg.StreamFactory ("host=/nonexistent port=1");
            printerr ("pg-vala: a factory on a bad connection string\n");
            return 1;
        } catch (Es.Error.STORAGE e) {
        }
        print ("pg-vala: ok\n");
        return 0;
    } catch (Error e) {
        printerr ("pg-vala: %s\n", e.message);
        return 1;
    }
}
