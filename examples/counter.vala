/* counter.vala: the counter of examples/demo.c, in Vala.
 *
 * Writes Incremented/Decremented events, rebuilds the count from them,
 * snapshots it, and restores from the snapshot. Built against the
 * generated es-glib-1.0.vapi: valac --pkg es-glib-1.0 --pkg json-glib-1.0
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

Es.CandidateEvent change (string event_type, int64 by) {
    var data = "{\"by\": %lld}".printf (by);
    return new Es.CandidateEvent (event_type, new Bytes (data.data));
}

int64 member (Bytes bytes, string name) throws Error {
    var parser = new Json.Parser ();
    parser.load_from_data ((string) bytes.get_data (), (ssize_t) bytes.get_size ());
    return parser.get_root ().get_object ().get_int_member (name);
}

/* Applies the events after @version to @value; @version becomes the last one's. */
void replay (Es.Stream stream, ref int64 value, ref int64 version) throws Error {
    var events = stream.read (version, null);
    Es.StoredEvent? event;
    while ((event = events.next ()) != null) {
        var by = member (event.get_data (), "by");
        value += event.get_event_type () == "Incremented" ? by : -by;
        version = event.get_version ();
    }
}

int main () {
    try {
        var dir = DirUtils.make_tmp ("es-counter-XXXXXX");
        var factory = new Es.SqliteStreamFactory (Path.build_filename (dir, "events.db"));
        var stream = factory.open_stream ("counter-1");

        stream.write ({ change ("Incremented", 2), change ("Incremented", 5),
                        change ("Decremented", 1) }, Es.VERSION_NO_STREAM);
        int64 value = 0, version = 0;
        replay (stream, ref value, ref version);
        print ("counter = %lld at version %lld\n", value, version);

        var state = "{\"value\": %lld}".printf (value);
        stream.snapshot (new Bytes (state.data), version, "counter");
        stream.write ({ change ("Incremented", 10) }, version);

        var snapshot = stream.load_snapshot ("counter");
        value = member (snapshot.get_state (), "value");
        version = snapshot.get_version ();
        replay (stream, ref value, ref version);
        print ("from the snapshot at version %lld: counter = %lld at version %lld\n",
               snapshot.get_version (), value, version);
        factory.close ();

        foreach (var name in new string[] { "events.db", "events.db-wal", "events.db-shm" })
            FileUtils.unlink (Path.build_filename (dir, name));
        DirUtils.remove (dir);
        return value == 16 && version == 4 ? 0 : 1;
    } catch (Error e) {
        printerr ("counter: %s\n", e.message);
        return 1;
    }
}
