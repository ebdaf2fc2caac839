/* model-vala.vala: Es.EventListModel from Vala, through es-glib-1.0.vapi:
 * a GLib.ListModel counted lazily, newest first, that follows a new
 * event.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

void wait_until (owned SourceFunc done) {
    var context = MainContext.default ();
    var deadline = get_monotonic_time () + 30 * TimeSpan.SECOND;
    while (!done () && get_monotonic_time () < deadline)
        context.iteration (false);
    assert (done ());
}

int main () {
    try {
        var factory = new Es.SqliteStreamFactory (":memory:", null);
        var stream = factory.open_stream ("cart-1", null);
        Es.CandidateEvent[] events = {
            new Es.CandidateEvent ("Opened", null), new Es.CandidateEvent ("Added", null)
        };
        stream.write (events, Es.VERSION_ANY, null);

        var model = new Es.EventListModel (factory, "cart-1", null,
                                           Es.EventListModelFlags.NEWEST_FIRST);
        assert (model.loading);
        wait_until (() => !model.loading);
        GLib.ListModel list = model;
        assert (list.get_n_items () == 2);
        assert (list.get_item_type () == typeof (Es.StoredEvent));
        assert (((Es.StoredEvent) list.get_item (0)).event_type == "Added");
        assert (list.get_item (2) == null);

        uint inserted_at = uint.MAX;
        list.items_changed.connect ((position, removed, added) => inserted_at = position);
        Es.CandidateEvent[] more = { new Es.CandidateEvent ("Paid", null) };
        stream.write (more, Es.VERSION_ANY, null);
        wait_until (() => list.get_n_items () == 3);
        assert (inserted_at == 0);
        assert (((Es.StoredEvent) list.get_item (0)).version == 3);

        factory.close (null);
        wait_until (() => list.get_n_items () == 0);
    } catch (Error e) {
        printerr ("%s\n", e.message);
        return 1;
    }
    print ("ok\n");
    return 0;
}
