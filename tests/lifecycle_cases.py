# lifecycle_cases.py: the stream life cycle (issue 16) from Python, for
# every backend.
#
# LifecycleCases is a mixin: tests/test_es.py runs it on SQLite
# (TestLifecycleSqlite) and tests/postgres/test_pg.py on PostgreSQL. The
# test case it is mixed into provides `self.factory` (a fresh, empty
# database for each test) and `self.second_factory()` (another factory on
# the same database, as another process would open it). Each test checks
# what is stored after each operation, through reads and stream info.
#
# The callables used here count for tests/bindings/check-coverage.py (this
# file is among its --python files).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import datetime
import time

from gi.repository import Es, GLib

TIMEOUT_MS = 30000
SECOND = 1000000  # microseconds, a GTimeSpan
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def candidate(event_type, data=b"", key=None, metadata=None):
    event = Es.CandidateEvent.new(event_type, GLib.Bytes.new(data))
    if key is not None:
        event.set_idempotency_key(key)
    if metadata is not None:
        event.set_metadata(metadata)
    return event


def drain(enumerator):
    """Every item of an EventEnumerator or StreamInfoEnumerator, through
    the plain GI methods."""
    items = []
    while True:
        item = enumerator.next(None)
        if item is None:
            return items
        items.append(item)


def run_until(condition, timeout_ms=TIMEOUT_MS):
    """Runs the default main context until condition() is true; False on
    timeout."""
    context = GLib.MainContext.default()
    deadline = GLib.get_monotonic_time() + timeout_ms * 1000
    while not condition():
        if GLib.get_monotonic_time() > deadline:
            return False
        context.iteration(False) or time.sleep(0.001)
    return True


class LifecycleCases:
    """Mixed into a unittest.TestCase with self.factory and
    self.second_factory()."""

    # -- helpers ---------------------------------------------------------

    def write(self, stream_id, *types, expected=Es.VERSION_ANY, **kwargs):
        stream = self.factory.open_stream(stream_id, None)
        return stream.write([candidate(t, **kwargs) for t in types], expected, None)

    def read(self, stream_id, event_filter=None):
        return drain(self.factory.open_stream(stream_id, None).read(0, event_filter, None))

    def versions(self, stream_id, event_filter=None):
        return [e.get_version() for e in self.read(stream_id, event_filter)]

    def info(self, stream_id):
        return self.factory.get_stream_info(stream_id, None)

    def assertEsError(self, error, code, *named):
        self.assertIsInstance(error, GLib.Error)
        self.assertTrue(error.matches(Es.error_quark(), code),
                        "%s is not Es.Error %s" % (error.message, code))
        for value in named:
            self.assertIn(str(value), error.message)

    def assertFails(self, code, call, *args, named=()):
        with self.assertRaises(GLib.Error) as caught:
            call(*args)
        self.assertEsError(caught.exception, code, *named)
        return caught.exception

    # -- listing and stream info -----------------------------------------

    def test_list_streams_with_prefix(self):
        for stream_id, n in (("cart-2", 1), ("cart-10", 3), ("cart-1", 2), ("order-1", 1),
                             ("cart_x", 1), ("Cart-9", 1)):
            self.write(stream_id, *["E"] * n)

        listing = drain(self.factory.list_streams("cart-", Es.ListStreamsFlags.NONE, None))
        # Byte-wise order; the prefix is not a LIKE pattern ('_' is itself)
        # and is case-sensitive.
        self.assertEqual([i.get_stream_id() for i in listing], ["cart-1", "cart-10", "cart-2"])
        self.assertEqual([i.get_event_count() for i in listing], [2, 3, 1])
        self.assertEqual([i.get_current_version() for i in listing], [2, 3, 1])
        self.assertEqual([i.get_first_version() for i in listing], [1, 1, 1])
        self.assertEqual({i.get_state() for i in listing}, {Es.StreamState.ACTIVE})
        self.assertEqual([i.get_stream_id() for i in
                          drain(self.factory.list_streams("cart_", Es.ListStreamsFlags.NONE,
                                                          None))], ["cart_x"])
        everything = drain(self.factory.list_streams(None, Es.ListStreamsFlags.NONE, None))
        self.assertEqual([i.get_stream_id() for i in everything],
                         ["Cart-9", "cart-1", "cart-10", "cart-2", "cart_x", "order-1"])

        # The timestamps are those of the first and last events.
        events = self.read("cart-10")
        info = self.info("cart-10")
        self.assertEqual(info.get_stream_id(), "cart-10")
        self.assertEqual(info.get_first_timestamp_usec(), events[0].get_timestamp_usec())
        self.assertEqual(info.get_last_timestamp_usec(), events[-1].get_timestamp_usec())
        self.assertEqual(info.get_first_timestamp().to_unix(), events[0].get_timestamp().to_unix())
        self.assertEqual(info.get_last_timestamp().get_microsecond(),
                         events[-1].get_timestamp().get_microsecond())
        self.assertEqual((info.get_max_age(), info.get_max_count()), (0, 0))

        # Pages: next_batch, and the enumerator's life.
        enumerator = self.factory.list_streams(None, Es.ListStreamsFlags.NONE, None)
        self.assertEqual([i.get_stream_id() for i in enumerator.next_batch(4, None)],
                         ["Cart-9", "cart-1", "cart-10", "cart-2"])
        self.assertEqual(len(enumerator.next_batch(4, None)), 2)
        self.assertEqual(enumerator.next_batch(4, None), [])
        self.assertFalse(enumerator.is_closed())
        self.assertTrue(enumerator.close(None))
        self.assertTrue(enumerator.is_closed())

        # A stream nobody wrote: active, empty, no policy. The whole database.
        nobody = self.info("nobody")
        self.assertEqual((nobody.get_stream_id(), nobody.get_state(),
                          nobody.get_current_version(), nobody.get_event_count(),
                          nobody.get_first_version(), nobody.get_first_timestamp_usec()),
                         ("nobody", Es.StreamState.ACTIVE, 0, 0, 0, 0))
        total = self.factory.get_stream_info(None, None)
        self.assertEqual(total.get_stream_id(), Es.ALL_STREAM)
        self.assertEqual(total.get_event_count(), 9)
        self.assertEqual(total.get_current_version(),
                         self.read(Es.ALL_STREAM)[-1].get_sequence_id())
        self.assertEqual(self.info(Es.ALL_STREAM).get_event_count(), 9)

    def test_list_streams_iteration(self):
        for i in range(5):
            self.write("s-%d" % i, "E")
        # The override: for, with.
        with self.factory.list_streams("s-", Es.ListStreamsFlags.NONE, None) as enumerator:
            ids = [info.get_stream_id() for info in enumerator]
        self.assertEqual(ids, ["s-0", "s-1", "s-2", "s-3", "s-4"])
        self.assertTrue(enumerator.is_closed())
        # A closed factory fails at once.
        other = self.second_factory()
        other.close(None)
        self.assertFails(Es.Error.CLOSED, other.list_streams, None,
                         Es.ListStreamsFlags.NONE, None)
        self.assertFails(Es.Error.CLOSED, other.get_stream_info, "s-0", None)

    # -- soft delete -------------------------------------------------------

    def test_soft_delete(self):
        stream = self.factory.open_stream("doomed", None)
        stream.write([candidate("A", b"1", key="k1"), candidate("B", b"2"),
                      candidate("C", b"3")], Es.VERSION_NO_STREAM, None)
        self.write("kept", "K")
        stream.snapshot(GLib.Bytes.new(b"state"), 3, "p", None)
        position = self.factory.get_stream_info(None, None).get_current_version()

        # The expected version is checked against the stream's version.
        self.assertFails(Es.Error.WRONG_EXPECTED_VERSION, self.factory.delete_stream,
                         "doomed", Es.VERSION_NO_STREAM, Es.DeleteFlags.NONE, None,
                         named=("doomed", 3))
        self.assertEqual(self.versions("doomed"), [1, 2, 3])
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.delete_stream,
                         Es.ALL_STREAM, Es.VERSION_ANY, Es.DeleteFlags.NONE, None,
                         named=(Es.ALL_STREAM,))

        self.assertTrue(self.factory.delete_stream("doomed", 3, Es.DeleteFlags.NONE, None))
        self.assertEqual(self.read("doomed"), [])
        self.assertEqual([e.get_stream_id() for e in self.read(Es.ALL_STREAM)], ["kept"])
        self.assertIsNone(stream.load_snapshot("p", None))
        info = self.info("doomed")
        self.assertEqual((info.get_state(), info.get_current_version(), info.get_event_count()),
                         (Es.StreamState.DELETED, 3, 0))
        # Hidden from the default listing, there with INCLUDE_DELETED.
        self.assertEqual([i.get_stream_id() for i in
                          drain(self.factory.list_streams(None, Es.ListStreamsFlags.NONE,
                                                          None))], ["kept"])
        listed = drain(self.factory.list_streams(None, Es.ListStreamsFlags.INCLUDE_DELETED,
                                                 None))
        self.assertEqual([(i.get_stream_id(), i.get_state()) for i in listed],
                         [("doomed", Es.StreamState.DELETED), ("kept", Es.StreamState.ACTIVE)])
        # The delete took a position of its own: sequence ids are not reused.
        after = self.factory.get_stream_info(None, None)
        self.assertGreater(after.get_current_version(), position)
        self.assertEqual(after.get_event_count(), 1)

        # Writing again continues the versions, and the stream is active.
        self.assertFails(Es.Error.WRONG_EXPECTED_VERSION, stream.write, [candidate("D")],
                         Es.VERSION_NO_STREAM, None)
        self.assertEqual(stream.write([candidate("D")], 3, None), 4)
        # The deleted event's idempotency key went with it: a retry adds it again.
        self.assertEqual(stream.write([candidate("A", b"1", key="k1")], Es.VERSION_ANY, None), 5)
        events = self.read("doomed")
        self.assertEqual([(e.get_version(), e.get_event_type()) for e in events],
                         [(4, "D"), (5, "A")])
        self.assertGreater(events[0].get_sequence_id(), after.get_current_version())
        info = self.info("doomed")
        self.assertEqual((info.get_state(), info.get_first_version(), info.get_event_count()),
                         (Es.StreamState.ACTIVE, 4, 2))

    # -- hard delete -------------------------------------------------------

    def test_tombstone(self):
        stream = self.factory.open_stream("gone", None)
        stream.write([candidate("A"), candidate("B")], Es.VERSION_NO_STREAM, None)
        self.assertTrue(self.factory.delete_stream("gone", Es.VERSION_ANY,
                                                   Es.DeleteFlags.TOMBSTONE, None))
        info = self.info("gone")
        self.assertEqual((info.get_state(), info.get_current_version(), info.get_event_count()),
                         (Es.StreamState.TOMBSTONED, 2, 0))

        # Writes fail with STREAM_DELETED naming the stream, and write nothing.
        error = self.assertFails(Es.Error.STREAM_DELETED, stream.write, [candidate("C")],
                                 Es.VERSION_ANY, None, named=("gone",))
        self.assertFalse(error.matches(Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION))
        self.assertEqual(self.info("gone").get_current_version(), 2)
        self.assertEqual(self.read("gone"), [])
        self.assertEqual(self.read(Es.ALL_STREAM), [])
        # Opening works and knows the version; everything else that writes fails.
        self.assertEqual(self.factory.open_stream("gone", None).get_version(), 2)
        self.assertFails(Es.Error.STREAM_DELETED, self.factory.delete_stream, "gone",
                         Es.VERSION_ANY, Es.DeleteFlags.NONE, None, named=("gone",))
        self.assertFails(Es.Error.STREAM_DELETED, self.factory.truncate_stream, "gone", 1, None)
        self.assertFails(Es.Error.STREAM_DELETED, self.factory.set_retention, "gone", 0, 5, None)
        self.assertFails(Es.Error.NOT_FOUND, self.factory.erase_event, "gone", 1, None)
        # Tombstoning again: success, no change.
        self.assertTrue(self.factory.delete_stream("gone", Es.VERSION_ANY,
                                                   Es.DeleteFlags.TOMBSTONE, None))
        self.assertEqual(self.info("gone").get_state(), Es.StreamState.TOMBSTONED)

        # The marker, for readers of @all that ask for it.
        storage = self.factory.get_storage()
        plain = storage.read_page_full(None, 0, Es.ReadFlags.NONE, None, 100, None)
        self.assertEqual(plain, [])
        marked = storage.read_page_full(None, 0, Es.ReadFlags.INCLUDE_TOMBSTONES, None, 100, None)
        self.assertEqual(len(marked), 1)
        marker = marked[0]
        self.assertEqual(marker.get_flags(), Es.StoredEventFlags.TOMBSTONE)
        self.assertFalse(marker.get_erased())
        self.assertEqual((marker.get_stream_id(), marker.get_version(), marker.get_event_type()),
                         ("gone", 2, "$tombstone"))
        self.assertEqual(marker.get_data().get_size(), 0)
        self.assertIsNone(marker.get_metadata())
        self.assertGreater(marker.get_sequence_id(), 2)

    # -- truncate ----------------------------------------------------------

    def test_truncate(self):
        stream = self.factory.open_stream("t", None)
        for _ in range(6):
            stream.write([candidate("E")], Es.VERSION_ANY, None)
        stream.snapshot(GLib.Bytes.new(b"at 2"), 2, "p2", None)
        stream.snapshot(GLib.Bytes.new(b"at 3"), 3, "p3", None)

        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.truncate_stream, "t", 7, None,
                         named=("t", 7, 6))
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.truncate_stream, "t", 0, None)
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.truncate_stream,
                         Es.ALL_STREAM, 2, None)
        self.assertEqual(self.versions("t"), [1, 2, 3, 4, 5, 6])

        self.assertTrue(self.factory.truncate_stream("t", 4, None))
        self.assertEqual(self.versions("t"), [4, 5, 6])
        info = self.info("t")
        self.assertEqual((info.get_state(), info.get_current_version(), info.get_event_count(),
                          info.get_first_version()), (Es.StreamState.ACTIVE, 6, 3, 4))
        # A snapshot stays while every event after it is stored.
        self.assertIsNone(stream.load_snapshot("p2", None))
        self.assertEqual(stream.load_snapshot("p3", None).get_state().get_data(), b"at 3")
        # Already truncated further: no change.
        self.assertTrue(self.factory.truncate_stream("t", 2, None))
        self.assertEqual(self.versions("t"), [4, 5, 6])
        # Before the current version: the newest event stays.
        self.assertTrue(self.factory.truncate_stream("t", 6, None))
        self.assertEqual(self.versions("t"), [6])
        self.assertEqual(stream.write([candidate("E")], 6, None), 7)

    # -- erase -------------------------------------------------------------

    def test_erase(self):
        stream = self.factory.open_stream("e", None)
        stream.write([candidate("Visit", b"first", "k1", '{"user": "ada", "n": 1}'),
                      candidate("Visit", b"secret", "k2", '{"user": "ada", "n": 2}'),
                      candidate("Visit", b"third", "k3", '{"user": "bob", "n": 3}')],
                     Es.VERSION_NO_STREAM, None)
        before = self.read("e")

        self.assertTrue(self.factory.erase_event("e", 2, None))
        after = self.read("e")
        erased = after[1]
        self.assertTrue(erased.get_erased())
        self.assertEqual(erased.get_flags(), Es.StoredEventFlags.ERASED)
        self.assertEqual(erased.get_data().get_size(), 0)
        self.assertIsNone(erased.get_metadata())
        # Position, type, key and time remain.
        for name in ("get_version", "get_sequence_id", "get_event_type", "get_id",
                     "get_idempotency_key", "get_timestamp_usec"):
            self.assertEqual(getattr(erased, name)(), getattr(before[1], name)(), name)
        # The others are untouched.
        for index in (0, 2):
            self.assertFalse(after[index].get_erased())
            self.assertEqual(after[index].get_flags(), Es.StoredEventFlags.NONE)
            self.assertEqual(after[index].get_data().get_data(),
                             before[index].get_data().get_data())
            self.assertEqual(after[index].get_metadata(), before[index].get_metadata())

        # Twice: success. Not stored: NOT_FOUND naming stream and version.
        self.assertTrue(self.factory.erase_event("e", 2, None))
        self.assertFails(Es.Error.NOT_FOUND, self.factory.erase_event, "e", 9, None,
                         named=("e", 9))
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.erase_event, "e", 0, None)

        # Metadata filters no longer see it; event-type filters still do.
        by_user = Es.EventFilter.new()
        by_user.add_equals("metadata.user", GLib.Variant("s", "ada"))
        self.assertEqual(self.versions("e", by_user), [1])
        by_type = Es.EventFilter.new()
        by_type.add_equals("event_type", GLib.Variant("s", "Visit"))
        self.assertEqual(self.versions("e", by_type), [1, 2, 3])
        self.assertEqual(self.info("e").get_event_count(), 3)

    # -- retention ---------------------------------------------------------

    def test_retention_count(self):
        self.write("r", *["E"] * 5)
        self.write("other", *["E"] * 4)
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.set_retention, "r", -1, 0, None,
                         named=(-1,))
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.factory.set_retention, "r", 0, -3, None,
                         named=(-3,))
        self.assertEqual(self.versions("r"), [1, 2, 3, 4, 5])

        # Enforced at once, then on every append.
        self.assertTrue(self.factory.set_retention("r", 0, 3, None))
        self.assertEqual(self.versions("r"), [3, 4, 5])
        self.assertEqual(self.info("r").get_max_count(), 3)
        self.assertEqual(self.info("r").get_first_version(), 3)
        self.write("r", "E", "E")
        self.assertEqual(self.versions("r"), [5, 6, 7])
        self.assertEqual(self.versions("other"), [1, 2, 3, 4])

        # Database-wide: every stream; the stricter limit wins.
        self.assertTrue(self.factory.set_retention(None, 0, 2, None))
        self.assertEqual(self.factory.get_stream_info(None, None).get_max_count(), 2)
        self.assertEqual(self.versions("r"), [6, 7])
        self.assertEqual(self.versions("other"), [3, 4])
        self.assertEqual(self.info("r").get_max_count(), 3)  # its own policy, as stored
        self.write("fresh", "E", "E", "E")
        self.assertEqual(self.versions("fresh"), [2, 3])
        # A policy on a stream nobody wrote: stored, the stream listed.
        self.assertTrue(self.factory.set_retention("future", 0, 1, None))
        self.assertEqual(self.info("future").get_max_count(), 1)
        self.write("future", "E", "E")
        self.assertEqual(self.versions("future"), [2])
        # Nothing left for a sweep to do.
        self.assertEqual(self.factory.sweep(None), 0)
        # Lifting the database-wide policy keeps what was removed removed.
        self.assertTrue(self.factory.set_retention(Es.ALL_STREAM, 0, 0, None))
        self.assertEqual(self.factory.get_stream_info(None, None).get_max_count(), 0)
        self.write("other", "E", "E", "E")
        self.assertEqual(self.versions("other"), [3, 4, 5, 6, 7])

    def test_retention_age_and_sweep(self):
        self.assertEqual(self.factory.props.sweep_interval, 3600)
        notified = []
        self.factory.connect("notify::sweep-interval", lambda *a: notified.append(1))
        self.factory.props.sweep_interval = 0
        self.assertEqual(self.factory.props.sweep_interval, 0)
        self.assertEqual(notified, [1])

        self.write("a", "Old")
        self.write("b", "Old")
        time.sleep(1.5)
        self.write("a", "New")
        # One second: "Old" is older, "New" (just written) is not.
        self.assertTrue(self.factory.set_retention("a", SECOND, 0, None))
        self.assertEqual([e.get_event_type() for e in self.read("a")], ["New"])
        info = self.info("a")
        self.assertEqual((info.get_max_age(), info.get_first_version()), (SECOND, 2))
        self.assertEqual(self.versions("b"), [1])  # no policy

        time.sleep(1.5)
        # "New" is now older than a second too: the sweep removes it; the
        # stream stays, active, empty, at its version.
        self.assertEqual(self.factory.sweep(None), 1)
        self.assertEqual(self.read("a"), [])
        info = self.info("a")
        self.assertEqual((info.get_state(), info.get_current_version(), info.get_event_count(),
                          info.get_first_version()), (Es.StreamState.ACTIVE, 2, 0, 0))
        self.assertIn("a", [i.get_stream_id() for i in
                            drain(self.factory.list_streams(None, Es.ListStreamsFlags.NONE,
                                                            None))])
        self.assertEqual(self.versions("b"), [1])
        # The storage says whether an age policy exists.
        removed, has_age = self.factory.get_storage().sweep(GLib.get_real_time(), None)
        self.assertEqual((removed, has_age), (0, True))
        # A write continues the versions; the new event is young.
        self.assertEqual(self.write("a", "Newer"), 3)
        self.assertEqual(self.versions("a"), [3])

    # -- backwards reads ---------------------------------------------------

    def test_read_backwards(self):
        stream = self.factory.open_stream("b", None)
        for i in range(1, 11):
            stream.write([candidate("Odd" if i % 2 else "Even")], Es.VERSION_ANY, None)
        self.write("c", "C")

        def backwards(before, event_filter=None, stream_id="b"):
            enumerator = self.factory.open_stream(stream_id, None).read_backwards(
                before, event_filter, None)
            return [e.get_version() for e in drain(enumerator)]

        self.assertEqual(backwards(Es.READ_FROM_END), list(range(10, 0, -1)))
        self.assertEqual(backwards(4), [3, 2, 1])
        self.assertEqual(backwards(0), [])
        self.assertEqual(backwards(100), list(range(10, 0, -1)))
        odd = Es.EventFilter.new()
        odd.add_equals("event_type", GLib.Variant("s", "Odd"))
        self.assertEqual(backwards(8, odd), [7, 5, 3, 1])
        self.assertFails(Es.Error.INVALID_ARGUMENT, stream.read_backwards, -2, None, None,
                         named=(-2,))
        # @all: sequence ids, newest first; "the last three" of @all.
        everything = self.read(Es.ALL_STREAM)
        all_stream = self.factory.open_stream(Es.ALL_STREAM, None)
        newest = all_stream.read_backwards(Es.READ_FROM_END, None, None).next_batch(3, None)
        self.assertEqual([e.get_sequence_id() for e in newest],
                         [e.get_sequence_id() for e in reversed(everything)][:3])
        self.assertEqual(newest[0].get_stream_id(), "c")
        # The override's iteration.
        with stream.read_backwards(Es.READ_FROM_END, None, None) as enumerator:
            self.assertEqual(next(iter(enumerator)).get_version(), 10)
        # The storage page, newest first.
        page = self.factory.get_storage().read_page_full("b", GLib.MAXINT64,
                                                         Es.ReadFlags.BACKWARDS, None, 2, None)
        self.assertEqual([e.get_version() for e in page], [10, 9])

    # -- range filters -----------------------------------------------------

    def test_range_filters(self):
        stream = self.factory.open_stream("f", None)
        amounts = [5, 9.5, 10, 12, "many", 20]
        for amount in amounts:
            stream.write([candidate("Paid", metadata='{"amount": %s}' % (
                '"%s"' % amount if isinstance(amount, str) else amount))], Es.VERSION_ANY, None)
            time.sleep(0.002)  # distinct timestamps
        events = self.read("f")

        f = Es.EventFilter.new()
        f.add_compare("version", Es.FilterOperator.GREATER, GLib.Variant("x", 2))
        f.add_compare("version", Es.FilterOperator.LESS_OR_EQUAL, GLib.Variant("x", 4))
        self.assertEqual(self.versions("f", f), [3, 4])
        self.assertEqual(f.get_n_clauses(), 2)
        field, op, value = f.get_clause(1)
        self.assertEqual((field, op, value.unpack()),
                         ("version", Es.FilterOperator.LESS_OR_EQUAL, 4))

        # Numeric metadata: integers and doubles compare as numbers; a
        # string never matches a comparison.
        f = Es.EventFilter.new()
        f.add_compare("metadata.amount", Es.FilterOperator.GREATER_OR_EQUAL, 10)
        self.assertEqual(self.versions("f", f), [3, 4, 6])
        f = Es.EventFilter.new()
        f.add_compare("metadata.amount", Es.FilterOperator.LESS, 9.75)
        self.assertEqual(self.versions("f", f), [1, 2])
        f = Es.EventFilter.new()
        f.add_compare("sequence_id", Es.FilterOperator.GREATER_OR_EQUAL,
                      events[4].get_sequence_id())
        self.assertEqual(self.versions("f", f), [5, 6])
        # A string value is refused at validation, naming field and value.
        f = Es.EventFilter.new()
        f.add_compare("metadata.amount", Es.FilterOperator.LESS, "many")
        self.assertFails(Es.Error.INVALID_ARGUMENT, self.read, "f", f,
                         named=("metadata.amount", "many"))

        # Time ranges: since <= timestamp < until, GLib.DateTime or datetime.
        f = Es.EventFilter.new()
        f.add_time_range(events[2].get_timestamp(), events[4].get_timestamp())
        self.assertEqual(self.versions("f", f), [3, 4])
        self.assertEqual(self.versions(Es.ALL_STREAM, f), [3, 4])
        f = Es.EventFilter.new()
        since = EPOCH + datetime.timedelta(microseconds=events[3].get_timestamp_usec())
        f.add_time_range(since, None)
        self.assertEqual(self.versions("f", f), [4, 5, 6])
        f = Es.EventFilter.new()
        f.add_time_range(None, events[1].get_timestamp())
        self.assertEqual(self.versions("f", f), [1])
        f = Es.EventFilter.new()
        f.add_compare("timestamp", Es.FilterOperator.GREATER, events[4].get_timestamp())
        self.assertEqual(self.versions("f", f), [6])
        f = Es.EventFilter.new()
        f.add_equals("timestamp", events[0].get_timestamp_usec())
        self.assertEqual(self.versions("f", f), [1])
        # The last hour, newest first: everything.
        f = Es.EventFilter.new()
        f.add_time_range(datetime.datetime.now(datetime.timezone.utc)
                         - datetime.timedelta(hours=1), None)
        backwards = drain(stream.read_backwards(Es.READ_FROM_END, f, None))
        self.assertEqual([e.get_version() for e in backwards], [6, 5, 4, 3, 2, 1])
        # Filters apply to watches too (matches()).
        f = Es.EventFilter.new()
        f.add_compare("metadata.amount", Es.FilterOperator.GREATER, 9)
        self.assertEqual([f.matches(e) for e in events],
                         [False, True, True, True, False, True])

    # -- watches -----------------------------------------------------------

    def test_watch_ends_when_tombstoned(self):
        stream = self.factory.open_stream("w", None)
        soft = self.factory.open_stream("soft", None)
        seen, errors, soft_seen = [], [], []
        watch = stream.watch(0)
        watch.connect("event", lambda _w, e: seen.append(e.get_version()))
        watch.connect("error", lambda _w, error: errors.append(error))
        soft_watch = soft.watch(0)
        soft_watch.connect("event", lambda _w, e: soft_seen.append(e.get_version()))
        try:
            stream.write([candidate("A"), candidate("B")], Es.VERSION_NO_STREAM, None)
            soft.write([candidate("A"), candidate("B")], Es.VERSION_NO_STREAM, None)
            self.assertTrue(run_until(lambda: len(seen) == 2 and len(soft_seen) == 2))

            # Another factory (as another process would) deletes both.
            other = self.second_factory()
            try:
                self.assertTrue(other.delete_stream("soft", 2, Es.DeleteFlags.NONE, None))
                self.assertTrue(other.delete_stream("w", 2, Es.DeleteFlags.TOMBSTONE, None))
                other.open_stream("soft", None).write([candidate("C")], 2, None)
            finally:
                other.close(None)
            self.assertTrue(run_until(lambda: errors and not watch.get_active()))
            self.assertEqual(len(errors), 1)
            self.assertEsError(errors[0], Es.Error.STREAM_DELETED, "w")
            self.assertEqual(seen, [1, 2])
            # The soft delete did not disturb the other watch: it goes on.
            self.assertTrue(run_until(lambda: soft_seen == [1, 2, 3]))
            self.assertTrue(soft_watch.get_active())
        finally:
            watch.stop()
            soft_watch.stop()

        # A watch of a stream already tombstoned ends at once.
        late_errors = []
        late = self.factory.open_stream("w", None).watch(0)
        late.connect("error", lambda _w, error: late_errors.append(error))
        self.assertTrue(run_until(lambda: late_errors and not late.get_active()))
        self.assertEsError(late_errors[0], Es.Error.STREAM_DELETED, "w")

    # -- compaction --------------------------------------------------------

    def test_compact(self):
        self.write("big", *["E"] * 50, data=b"x" * 1000)
        self.assertTrue(self.factory.delete_stream("big", Es.VERSION_ANY, Es.DeleteFlags.NONE,
                                                   None))
        self.assertTrue(self.factory.compact(None))
        self.assertEqual(self.read(Es.ALL_STREAM), [])
        self.assertEqual(self.write("big", "E"), 51)

    # -- metadata indexes (issue 21) ---------------------------------------

    def tenants(self, tenant):
        event_filter = Es.EventFilter.new()
        event_filter.add_equals("metadata.tenant", GLib.Variant("s", tenant))
        return [(e.get_stream_id(), e.get_version()) for e in self.read(Es.ALL_STREAM, event_filter)]

    def test_metadata_indexes(self):
        for i in range(12):
            self.write("m-%d" % (i % 3), "E", metadata='{"tenant": "t%d", "user": {"id": %d}}'
                       % (i % 4, i))
        self.write("m-0", "E", metadata='{"tenant": 1}')
        before = self.tenants("t1")
        self.assertEqual(before, [("m-1", 1), ("m-2", 2), ("m-0", 4)])

        f = self.factory
        self.assertEqual(f.list_metadata_indexes(None), [])
        self.assertTrue(f.add_metadata_index("tenant", None))
        self.assertTrue(f.add_metadata_index("tenant", None))
        self.assertTrue(f.add_metadata_index("user.id", None))
        self.assertEqual(f.list_metadata_indexes(None), ["tenant", "user.id"])
        self.assertEqual(self.tenants("t1"), before)
        event_filter = Es.EventFilter.new()
        event_filter.add_equals("metadata.user.id", GLib.Variant("x", 7))
        self.assertEqual([e.get_version() for e in self.read(Es.ALL_STREAM, event_filter)],
                         [3])  # the 8th event: m-1, version 3

        # Another factory sees the declarations; the storage too.
        other = self.second_factory()
        try:
            self.assertEqual(other.list_metadata_indexes(None), ["tenant", "user.id"])
        finally:
            other.close(None)
        storage = f.get_storage()
        self.assertEqual(storage.list_metadata_indexes(None), ["tenant", "user.id"])
        self.assertTrue(storage.remove_metadata_index("user.id", None))
        self.assertTrue(storage.add_metadata_index("user", None))
        self.assertEqual(f.list_metadata_indexes(None), ["tenant", "user"])

        with self.assertRaises(GLib.Error) as caught:
            f.add_metadata_index("a..b", None)
        self.assertEsError(caught.exception, Es.Error.INVALID_ARGUMENT, "a..b")
        with self.assertRaises(GLib.Error) as caught:
            f.remove_metadata_index("nowhere", None)
        self.assertEsError(caught.exception, Es.Error.NOT_FOUND, "nowhere")
        self.assertTrue(f.remove_metadata_index("tenant", None))
        self.assertTrue(f.remove_metadata_index("user", None))
        self.assertEqual(f.list_metadata_indexes(None), [])
        self.assertEqual(self.tenants("t1"), before)

        # The plain GIO calls, with a callback.
        loop = GLib.MainLoop()
        outcome = []

        def step(start, finish):
            def done(source, result, *_user_data):
                try:
                    outcome.append(finish(result))
                except GLib.Error as error:
                    outcome.append(error)
                loop.quit()
            start(done)
            loop.run()
            return outcome.pop()

        self.assertTrue(step(lambda cb: f.add_metadata_index_async("tenant", None, cb, None),
                             lambda r: f.add_metadata_index_finish(r)))
        self.assertEqual(step(lambda cb: f.list_metadata_indexes_async(None, cb, None),
                              lambda r: f.list_metadata_indexes_finish(r)), ["tenant"])
        self.assertTrue(step(lambda cb: f.remove_metadata_index_async("tenant", None, cb, None),
                             lambda r: f.remove_metadata_index_finish(r)))
        error = step(lambda cb: f.remove_metadata_index_async("tenant", None, cb, None),
                     lambda r: f.remove_metadata_index_finish(r))
        self.assertEsError(error, Es.Error.NOT_FOUND, "tenant")

        # asyncio: awaitable without a callback.
        async def main():
            self.assertTrue(await f.add_metadata_index_async("user.id"))
            self.assertTrue(await f.add_metadata_index_async("tenant"))
            self.assertTrue(await f.remove_metadata_index_async("tenant"))
            with self.assertRaises(GLib.Error) as caught:
                await f.remove_metadata_index_async("tenant")
            self.assertEsError(caught.exception, Es.Error.NOT_FOUND, "tenant")
            return await f.list_metadata_indexes_async()

        loop = Es.new_event_loop()
        try:
            listed = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT_MS / 1000))
        finally:
            loop.close()
        self.assertEqual(listed, ["user.id"])
        self.assertEqual(self.tenants("t1"), before)

    # -- asyncio -----------------------------------------------------------

    def test_asyncio(self):
        factory = self.factory

        async def main():
            stream = await factory.open_stream_async("as-1")
            await stream.write_async([candidate("E", key="a%d" % i) for i in range(6)],
                                     Es.VERSION_NO_STREAM)
            await (await factory.open_stream_async("as-2")).write_async([candidate("E")],
                                                                        Es.VERSION_ANY)
            # Listing: await, then async for; or async for on the call.
            enumerator = await factory.list_streams_async("as-", Es.ListStreamsFlags.NONE)
            listed = [info.get_stream_id() async for info in enumerator]
            self.assertEqual(listed, ["as-1", "as-2"])
            self.assertEqual([info.get_event_count() async for info in
                              factory.list_streams_async("as-", Es.ListStreamsFlags.NONE)],
                             [6, 1])
            enumerator = await factory.list_streams_async(None, Es.ListStreamsFlags.NONE)
            self.assertEqual(len(await enumerator.next_batch_async(10)), 2)
            info = await factory.get_stream_info_async("as-1")
            self.assertEqual(info.get_current_version(), 6)

            # Newest first.
            self.assertEqual([e.get_version() async for e in
                              stream.read_backwards_async(Es.READ_FROM_END)],
                             [6, 5, 4, 3, 2, 1])
            self.assertTrue(await factory.truncate_stream_async("as-1", 3))
            self.assertTrue(await factory.erase_event_async("as-1", 4))
            events = [e async for e in stream.read_async(0)]
            self.assertEqual([(e.get_version(), e.get_erased()) for e in events],
                             [(3, False), (4, True), (5, False), (6, False)])
            self.assertTrue(await factory.set_retention_async("as-1", 0, 2))
            self.assertEqual([e.get_version() async for e in stream.read_async(0)], [5, 6])
            self.assertEqual(await factory.sweep_async(), 0)

            # Errors are GLib.Error with their code.
            with self.assertRaises(GLib.Error) as caught:
                await factory.erase_event_async("as-1", 1)
            self.assertEsError(caught.exception, Es.Error.NOT_FOUND, "as-1")
            self.assertTrue(await factory.delete_stream_async("as-1", 6,
                                                              Es.DeleteFlags.TOMBSTONE))
            with self.assertRaises(GLib.Error) as caught:
                await stream.write_async([candidate("E")], Es.VERSION_ANY)
            self.assertEsError(caught.exception, Es.Error.STREAM_DELETED, "as-1")
            self.assertTrue(await factory.compact_async())
            info = await factory.get_stream_info_async("as-1")
            return info.get_state(), info.get_event_count()

        loop = Es.new_event_loop()
        try:
            result = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT_MS / 1000))
        finally:
            loop.close()
        self.assertEqual(result, (Es.StreamState.TOMBSTONED, 0))

    def test_callbacks(self):
        """The plain GIO calls, with a callback."""
        self.write("cb", *["E"] * 4)
        loop = GLib.MainLoop()
        outcome = []

        def step(start, finish, fails=False):
            """Runs one call; returns its result, or its GLib.Error when
            `fails` (and raises it otherwise)."""
            def done(source, result, *_user_data):
                try:
                    outcome.append(finish(result))
                except GLib.Error as error:
                    outcome.append(error)
                loop.quit()
            start(done)
            loop.run()
            value = outcome.pop()
            if isinstance(value, GLib.Error) and not fails:
                raise value
            if fails:
                self.assertIsInstance(value, GLib.Error)
            return value

        f = self.factory
        info = step(lambda cb: f.get_stream_info_async("cb", None, cb, None),
                    lambda r: f.get_stream_info_finish(r))
        self.assertEqual(info.get_event_count(), 4)
        enumerator = step(lambda cb: f.list_streams_async("c", Es.ListStreamsFlags.NONE, None,
                                                          cb, None),
                          lambda r: f.list_streams_finish(r))
        page = step(lambda cb: enumerator.next_batch_async(5, None, cb, None),
                    lambda r: enumerator.next_batch_finish(r))
        self.assertEqual([i.get_stream_id() for i in page], ["cb"])
        self.assertTrue(step(lambda cb: f.truncate_stream_async("cb", 2, None, cb, None),
                             lambda r: f.truncate_stream_finish(r)))
        self.assertTrue(step(lambda cb: f.erase_event_async("cb", 3, None, cb, None),
                             lambda r: f.erase_event_finish(r)))
        self.assertTrue(step(lambda cb: f.set_retention_async("cb", 0, 2, None, cb, None),
                             lambda r: f.set_retention_finish(r)))
        self.assertEqual(self.versions("cb"), [3, 4])
        self.assertTrue(self.read("cb")[0].get_erased())
        self.assertEqual(step(lambda cb: f.sweep_async(None, cb, None),
                              lambda r: f.sweep_finish(r)), 0)
        stream = f.open_stream("cb", None)
        backwards = step(lambda cb: stream.read_backwards_async(Es.READ_FROM_END, None, None,
                                                                cb, None),
                         lambda r: stream.read_backwards_finish(r))
        self.assertEqual([e.get_version() for e in drain(backwards)], [4, 3])
        error = step(lambda cb: f.delete_stream_async("cb", 1, Es.DeleteFlags.NONE, None,
                                                      cb, None),
                     lambda r: f.delete_stream_finish(r), fails=True)
        self.assertEsError(error, Es.Error.WRONG_EXPECTED_VERSION, "cb")
        self.assertTrue(step(lambda cb: f.delete_stream_async("cb", 4, Es.DeleteFlags.NONE, None,
                                                              cb, None),
                             lambda r: f.delete_stream_finish(r)))
        self.assertTrue(step(lambda cb: f.compact_async(None, cb, None),
                             lambda r: f.compact_finish(r)))
        self.assertEqual(self.info("cb").get_state(), Es.StreamState.DELETED)
