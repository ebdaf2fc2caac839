#!/usr/bin/python3
# test_es.py: es-glib through GObject-Introspection, as Python sees it.
#
# Run by meson with GI_TYPELIB_PATH and LD_LIBRARY_PATH pointing into the
# build tree; by hand: GI_TYPELIB_PATH=_build/introspection
# LD_LIBRARY_PATH=_build/es-glib /usr/bin/python3 tests/test_es.py -v
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import array
import os
import tempfile
import time
import unittest

import gi

gi.require_version("GLib", "2.0")
gi.require_version("Es", "1.0")
from gi.repository import Es, Gio, GLib  # noqa: E402

from subscription_cases import SubscriptionCases  # noqa: E402
from lifecycle_cases import LifecycleCases, run_until  # noqa: E402


def candidate(event_type, data=b"", key=None, metadata=None):
    event = Es.CandidateEvent(event_type=event_type, data=GLib.Bytes.new(data))
    if key is not None:
        event.set_idempotency_key(key)
    if metadata is not None:
        event.set_metadata(metadata)
    return event


def read_all(stream, after=0, event_filter=None):
    enumerator = stream.read(after, event_filter, None)
    events = []
    while True:
        event = enumerator.next(None)
        if event is None:
            break
        events.append(event)
    return events


class EsTestCase(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="es-python-")
        self.path = os.path.join(self.tmpdir.name, "events.db")
        self.factory = Es.SqliteStreamFactory.new(self.path, None)

    def tearDown(self):
        self.factory.close(None)
        del self.factory
        self.tmpdir.cleanup()

    def open(self, stream_id):
        return self.factory.open_stream(stream_id, None)

    def write_dataset(self):
        orders = self.open("order-1")
        carts = self.open("cart-1")
        orders.write([candidate("OrderPlaced", b"o1", "e1",
                                '{"user": "alice", "amount": 10, "addr": {"city": "Paris"}}')],
                     Es.VERSION_ANY, None)
        carts.write([candidate("CartCreated", b"c1", "e2", '{"user": "bob", "amount": 20}')],
                    Es.VERSION_ANY, None)
        orders.write([candidate("OrderShipped", b"o2", "e3", '{"user": "alice", "amount": 3}')],
                     Es.VERSION_ANY, None)


class TestConstants(EsTestCase):
    def test_constants(self):
        self.assertEqual(Es.VERSION_ANY, -1)
        self.assertEqual(Es.VERSION_NO_STREAM, 0)
        self.assertEqual(Es.ALL_STREAM, "@all")
        self.assertIsInstance(Es.error_quark(), int)
        self.assertNotEqual(Es.Error.WRONG_EXPECTED_VERSION, Es.Error.CLOSED)


class TestWriteRead(EsTestCase):
    def test_write_and_read_fields(self):
        stream = self.open("cart-7")
        self.assertEqual(stream.get_stream_id(), "cart-7")
        self.assertEqual(stream.props.version, 0)

        before = GLib.get_real_time()
        version = stream.write([
            candidate("ItemAdded", b"\x00\x01binary\xff", "key-1", '{ "sku": "A-1",  "qty": 2 }'),
            candidate("ItemRemoved", b"", None, None),
        ], Es.VERSION_NO_STREAM, None)
        after = GLib.get_real_time()
        self.assertEqual(version, 2)
        self.assertEqual(stream.get_version(), 2)
        self.assertEqual(stream.props.version, 2)

        events = read_all(stream)
        self.assertEqual(len(events), 2)
        first, second = events
        self.assertEqual(first.get_id(), "key-1")
        self.assertEqual(first.get_stream_id(), "cart-7")
        self.assertEqual(first.get_version(), 1)
        self.assertEqual(second.get_version(), 2)
        self.assertGreater(first.get_sequence_id(), 0)
        self.assertGreater(second.get_sequence_id(), first.get_sequence_id())
        self.assertEqual(first.get_event_type(), "ItemAdded")
        self.assertEqual(first.get_data().get_data(), b"\x00\x01binary\xff")
        self.assertEqual(first.get_metadata(), '{ "sku": "A-1",  "qty": 2 }')
        self.assertTrue(second.get_id())
        self.assertNotEqual(second.get_id(), first.get_id())
        self.assertEqual(second.get_data().get_size(), 0)
        self.assertIsNone(second.get_metadata())

        timestamp = first.get_timestamp()
        self.assertEqual(timestamp.get_utc_offset(), 0)
        usec = timestamp.to_unix() * 1000000 + timestamp.get_microsecond()
        self.assertGreaterEqual(usec, before - before % 1000)
        self.assertLessEqual(usec, after)

        # Properties work as well as getters.
        self.assertEqual(first.props.event_type, "ItemAdded")
        self.assertEqual(first.props.stream_id, "cart-7")

        # after_version
        self.assertEqual([e.get_version() for e in read_all(stream, 1)], [2])

    def test_next_batch(self):
        stream = self.open("batch")
        stream.write([candidate("E%d" % i) for i in range(10)], Es.VERSION_ANY, None)
        enumerator = stream.read(0, None, None)
        sizes = []
        while True:
            batch = enumerator.next_batch(4, None)
            if len(batch) == 0:
                break
            sizes.append(len(batch))
        self.assertEqual(sizes, [4, 4, 2])
        self.assertTrue(enumerator.close(None))

    def test_idempotency(self):
        stream = self.open("idem")
        self.assertEqual(stream.write([candidate("A", key="k")], Es.VERSION_ANY, None), 1)
        self.assertEqual(stream.write([candidate("A", key="k")], Es.VERSION_ANY, None), 1)
        self.assertEqual(len(read_all(stream)), 1)

    def test_all_stream(self):
        self.write_dataset()
        everything = read_all(self.open(Es.ALL_STREAM))
        self.assertEqual([e.get_id() for e in everything], ["e1", "e2", "e3"])
        self.assertEqual([e.get_stream_id() for e in everything], ["order-1", "cart-1", "order-1"])


class TestCursor(EsTestCase):
    """EsEventCursor: the same events as the enumerator, row by row and in
    windows, without an object per event."""

    def write_many(self, stream_id, n):
        stream = self.open(stream_id)
        stream.write([candidate("Even" if i % 2 == 0 else "Odd", b"d%d\xff" % i,
                                "%s-k%d" % (stream_id, i) if i % 3 == 0 else None,
                                '{"n": %d}' % i if i % 2 == 0 else None)
                      for i in range(n)], Es.VERSION_ANY, None)
        return stream

    def test_rows_equal_events(self):
        stream = self.write_many("s", 1500)
        self.write_many("t", 10)
        for stream_id in ("s", Es.ALL_STREAM):
            handle = self.open(stream_id)
            expected = read_all(handle)
            cursor = handle.read_cursor(0, None, None)
            rows = 0
            while cursor.next(None):
                event = expected[rows]
                self.assertEqual(cursor.get_sequence_id(), event.get_sequence_id())
                self.assertEqual(cursor.get_version(), event.get_version())
                self.assertEqual(cursor.get_timestamp_usec(), event.get_timestamp_usec())
                self.assertEqual(cursor.get_stream_id(), event.get_stream_id())
                self.assertEqual(cursor.get_event_type(), event.get_event_type())
                self.assertEqual(cursor.get_idempotency_key(), event.get_idempotency_key())
                self.assertEqual(cursor.get_metadata(), event.get_metadata())
                self.assertEqual(cursor.get_flags(), event.get_flags())
                self.assertEqual(bytes(cursor.get_data()), event.get_data().get_data())
                self.assertEqual(cursor.dup_data().get_data(), event.get_data().get_data())
                built = cursor.get_event()
                self.assertEqual(built.get_id(), event.get_id())
                self.assertEqual(built.get_data().get_data(), event.get_data().get_data())
                rows += 1
            self.assertEqual(rows, len(expected))
            self.assertFalse(cursor.next(None))
            self.assertTrue(cursor.close(None))
            with self.assertRaises(GLib.Error) as caught:
                cursor.next(None)
            self.assertTrue(caught.exception.matches(Gio.io_error_quark(),
                                                     Gio.IOErrorEnum.CLOSED))
        self.assertEqual(stream.get_version(), 1500)

    def test_windows(self):
        self.write_many("a", 700)
        self.write_many("b", 900)
        everything = read_all(self.open(Es.ALL_STREAM))
        cursor = self.open(Es.ALL_STREAM).read_cursor(0, None, None)
        types, streams, versions, seqs, times, data = [], [], [], [], [], []
        while True:
            n = cursor.next_rows(500, None)
            if n == 0:
                break
            window_types = cursor.dup_event_types()
            self.assertEqual(len(window_types), n)
            types += window_types
            streams += cursor.dup_stream_ids()
            versions += cursor.get_versions()
            seqs += cursor.get_sequence_ids()
            times += cursor.get_timestamps_usec()
            window_data = [b.get_data() or b"" for b in cursor.dup_data_list()]
            data += window_data
            # The same payloads in one block, with the length of each.
            joined, lengths = cursor.dup_data_joined()
            self.assertEqual(len(lengths), n)
            block = joined.get_data() or b""
            self.assertEqual(len(block), sum(lengths))
            starts = [sum(lengths[:i]) for i in range(n)]
            self.assertEqual([block[s:s + length] for s, length in zip(starts, lengths)],
                             window_data)
            # The row getters refer to the window's last row.
            self.assertEqual(cursor.get_sequence_id(), seqs[-1])
        self.assertEqual(types, [e.get_event_type() for e in everything])
        self.assertEqual(streams, [e.get_stream_id() for e in everything])
        self.assertEqual(versions, [e.get_version() for e in everything])
        self.assertEqual(seqs, [e.get_sequence_id() for e in everything])
        self.assertEqual(times, [e.get_timestamp_usec() for e in everything])
        self.assertEqual(data, [e.get_data().get_data() or b"" for e in everything])

    def test_filter_and_errors(self):
        self.write_many("s", 30)
        event_filter = Es.EventFilter.new()
        event_filter.add_equals("event_type", GLib.Variant("s", "Odd"))
        cursor = self.open("s").read_cursor(0, event_filter, None)
        self.assertEqual(cursor.next_rows(100, None), 15)
        self.assertEqual(list(cursor.get_versions()), list(range(2, 31, 2)))
        with self.assertRaises(GLib.Error) as caught:
            self.open("s").read_cursor(-1, None, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))

    def test_async(self):
        self.write_many("s", 1030)
        stream = self.open("s")
        loop = GLib.MainLoop()
        results = {}

        def opened(source, result, user_data):
            results["cursor"] = source.read_cursor_finish(result)
            loop.quit()

        stream.read_cursor_async(0, None, None, opened, None)
        loop.run()
        cursor = results["cursor"]
        versions = []

        def moved(source, result, user_data):
            if source.next_finish(result):
                versions.append(source.get_version())
                source.next_async(None, moved, None)
            else:
                loop.quit()

        cursor.next_async(None, moved, None)
        loop.run()
        self.assertEqual(versions, list(range(1, 1031)))


class TestFilters(EsTestCase):
    def ids(self, event_filter, stream_id=Es.ALL_STREAM):
        return [e.get_id() for e in read_all(self.open(stream_id), 0, event_filter)]

    def test_equals(self):
        self.write_dataset()
        f = Es.EventFilter.new()
        f.add_equals("event_type", GLib.Variant("s", "OrderPlaced"))
        self.assertEqual(self.ids(f), ["e1"])

        f = Es.EventFilter.new()
        f.add_equals("stream_id", GLib.Variant("s", "order-1"))
        self.assertEqual(self.ids(f), ["e1", "e3"])

        f = Es.EventFilter.new()
        f.add_equals("version", GLib.Variant("x", 2))
        self.assertEqual(self.ids(f), ["e3"])

    def test_in(self):
        self.write_dataset()
        f = Es.EventFilter.new()
        f.add_in("event_type", GLib.Variant("as", ["CartCreated", "OrderShipped"]))
        self.assertEqual(self.ids(f), ["e2", "e3"])

        f = Es.EventFilter.new()
        f.add_in("metadata.amount", GLib.Variant("ai", [10, 20]))
        self.assertEqual(self.ids(f), ["e1", "e2"])

    def test_like(self):
        self.write_dataset()
        f = Es.EventFilter.new()
        f.add_like("event_type", "Order%")
        self.assertEqual(self.ids(f), ["e1", "e3"])

        f = Es.EventFilter.new()
        f.add_like("stream_id", "cart-_")
        self.assertEqual(self.ids(f), ["e2"])

    def test_metadata_path(self):
        self.write_dataset()
        f = Es.EventFilter.new()
        f.add_equals("metadata.user", GLib.Variant("s", "alice"))
        self.assertEqual(self.ids(f), ["e1", "e3"])
        self.assertEqual(self.ids(f, "order-1"), ["e1", "e3"])

        f = Es.EventFilter.new()
        f.add_equals("metadata.addr.city", GLib.Variant("s", "Paris"))
        self.assertEqual(self.ids(f), ["e1"])

        f = Es.EventFilter.new()
        f.add_equals("metadata.amount", GLib.Variant("d", 20.0))
        self.assertEqual(self.ids(f), ["e2"])

    def test_invalid_filter(self):
        self.write_dataset()
        f = Es.EventFilter.new()
        f.add_equals("colour", GLib.Variant("s", "red"))
        with self.assertRaises(GLib.Error) as caught:
            read_all(self.open(Es.ALL_STREAM), 0, f)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))


class TestErrors(EsTestCase):
    def test_wrong_expected_version(self):
        stream = self.open("cart-7")
        stream.write([candidate("A")], Es.VERSION_ANY, None)
        with self.assertRaises(GLib.Error) as caught:
            stream.write([candidate("B")], 5, None)
        err = caught.exception
        self.assertTrue(err.matches(Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION))
        self.assertIn("cart-7", err.message)
        self.assertEqual(len(read_all(stream)), 1)

    def test_invalid_arguments(self):
        with self.assertRaises(GLib.Error) as caught:
            self.open(Es.ALL_STREAM).write([candidate("A")], Es.VERSION_ANY, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))

        stream = self.open("s")
        with self.assertRaises(GLib.Error) as caught:
            stream.write([candidate("A", metadata="[1, 2]")], Es.VERSION_ANY, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))

    def test_closed(self):
        stream = self.open("s")
        stream.write([candidate("A")], Es.VERSION_ANY, None)
        self.assertTrue(self.factory.close(None))
        self.assertTrue(self.factory.close(None))
        with self.assertRaises(GLib.Error) as caught:
            stream.write([candidate("B")], Es.VERSION_ANY, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.CLOSED))
        with self.assertRaises(GLib.Error) as caught:
            self.factory.open_stream("s", None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.CLOSED))
        with self.assertRaises(GLib.Error) as caught:
            stream.get_metrics(None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.CLOSED))


class TestSnapshotsMetrics(EsTestCase):
    def test_snapshot(self):
        stream = self.open("snap")
        stream.write([candidate("A"), candidate("B"), candidate("C")], Es.VERSION_ANY, None)
        self.assertIsNone(stream.load_snapshot(None, None))

        state = GLib.Bytes.new(b"state\x00bytes")
        self.assertTrue(stream.snapshot(state, 2, "totals", None))
        snapshot = stream.load_snapshot("totals", None)
        self.assertIsNotNone(snapshot)
        self.assertEqual(snapshot.get_state().get_data(), b"state\x00bytes")
        self.assertEqual(snapshot.get_version(), 2)
        self.assertEqual(snapshot.get_projection_name(), "totals")
        self.assertEqual(snapshot.get_stream_id(), "snap")
        self.assertIsNotNone(snapshot.get_timestamp())

        self.assertTrue(stream.snapshot(state, -1, None, None))
        default = stream.load_snapshot(None, None)
        self.assertEqual(default.get_version(), 3)
        self.assertEqual(default.get_projection_name(), "default")

    def test_metrics(self):
        stream = self.open("m")
        metrics = stream.get_metrics(None)
        self.assertEqual(metrics.get_current_version(), 0)
        self.assertEqual(metrics.get_event_count(), 0)
        self.assertIsNone(metrics.get_last_timestamp())

        stream.write([candidate("A"), candidate("B")], Es.VERSION_ANY, None)
        metrics = stream.get_metrics(None)
        self.assertEqual(metrics.get_current_version(), 2)
        self.assertEqual(metrics.get_event_count(), 2)
        self.assertIsNotNone(metrics.get_last_timestamp())

        all_metrics = self.open(Es.ALL_STREAM).get_metrics(None)
        self.assertEqual(all_metrics.get_event_count(), 2)


class TestReadOnly(EsTestCase):
    def test_read_only_factory(self):
        stream = self.open("s")
        stream.write([candidate("A", b"a"), candidate("B", b"b")], Es.VERSION_ANY, None)
        self.assertTrue(stream.snapshot(GLib.Bytes.new(b"state"), 1, "proj", None))
        self.factory.close(None)
        self.assertEqual(sorted(os.listdir(self.tmpdir.name)), ["events.db"])

        factory = Es.SqliteStreamFactory(path=self.path, read_only=True)
        self.assertTrue(factory.init(None))
        self.assertTrue(factory.props.read_only)
        self.assertTrue(factory.get_storage().props.read_only)
        stream = factory.open_stream("s", None)
        self.assertEqual([e.get_event_type() for e in read_all(stream)], ["A", "B"])
        self.assertEqual(stream.get_metrics(None).get_event_count(), 2)
        self.assertEqual(stream.load_snapshot("proj", None).get_version(), 1)

        with self.assertRaises(GLib.Error) as caught:
            stream.write([candidate("C")], Es.VERSION_ANY, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))
        self.assertIn("read-only", caught.exception.message)
        self.assertIn(self.path, caught.exception.message)
        with self.assertRaises(GLib.Error) as caught:
            stream.snapshot(GLib.Bytes.new(b"x"), 1, "other", None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))

        self.assertTrue(factory.close(None))
        self.assertEqual(sorted(os.listdir(self.tmpdir.name)), ["events.db"])
        self.assertEqual(len(read_all(Es.SqliteStreamFactory.new(self.path, None)
                                      .open_stream("s", None))), 2)

    def test_read_only_missing_file(self):
        missing = os.path.join(self.tmpdir.name, "missing.db")
        factory = Es.SqliteStreamFactory(path=missing, read_only=True)
        with self.assertRaises(GLib.Error) as caught:
            factory.init(None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.STORAGE))
        self.assertFalse(os.path.exists(missing))


class TestRetries(EsTestCase):
    def other_factory(self):
        # Another factory on the same file: as far as this one knows,
        # another process.
        factory = Es.SqliteStreamFactory.new(self.path, None)
        self.addCleanup(factory.close, None)
        return factory

    def test_idempotent_retry(self):
        stream = self.open("orders")
        self.assertEqual(stream.write([candidate("Placed", b"1", "req-1")], 0, None), 1)
        # The same call again, as after a timeout: it succeeds.
        self.assertEqual(stream.write([candidate("Placed", b"1", "req-1")], 0, None), 1)
        self.other_factory().open_stream("orders", None).write([candidate("Other")],
                                                               Es.VERSION_ANY, None)
        # Whatever the expected version, a stored batch returns the current one.
        self.assertEqual(stream.write([candidate("Placed", b"1", "req-1")], 0, None), 2)
        # A new event in the batch still gets the check, and writes nothing.
        with self.assertRaises(GLib.Error) as caught:
            stream.write([candidate("Placed", b"1", "req-1"), candidate("New", b"", "req-2")],
                         0, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                 Es.Error.WRONG_EXPECTED_VERSION))
        self.assertEqual([e.get_event_type() for e in read_all(stream)], ["Placed", "Other"])

    def test_retry_loop_converges(self):
        mine = self.open("account")
        theirs = self.other_factory().open_stream("account", None)
        theirs.write([candidate("Deposited"), candidate("Deposited")], Es.VERSION_ANY, None)
        self.assertEqual(mine.get_version(), 0)
        notified = []
        mine.connect("notify::version", lambda *args: notified.append(mine.props.version))

        retries = 0
        while True:
            try:
                version = mine.write([candidate("Withdrawn")], mine.get_version(), None)
                break
            except GLib.Error as e:
                if not e.matches(Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION):
                    raise
                retries += 1
                self.assertLess(retries, 10, "the retry loop does not converge")
        self.assertEqual(retries, 1)
        self.assertEqual(version, 3)
        self.assertEqual(notified, [2, 3])

    def test_retry_loop_converges_async(self):
        mine = self.open("account")
        theirs = self.other_factory().open_stream("account", None)
        theirs.write([candidate("Deposited")], Es.VERSION_ANY, None)
        loop = GLib.MainLoop()
        results = []

        def done(source, result, user_data):
            try:
                results.append(source.write_finish(result))
            except GLib.Error as e:
                results.append(e)
            loop.quit()

        for _ in range(2):
            mine.write_async([candidate("Withdrawn")], mine.get_version(), None, done, None)
            loop.run()
        self.assertTrue(results[0].matches(Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION))
        self.assertEqual(results[1], 2)
        self.assertEqual(mine.get_version(), 2)

    def test_query_version(self):
        mine = self.open("account")
        theirs = self.other_factory().open_stream("account", None)
        theirs.write([candidate("Deposited"), candidate("Deposited")], Es.VERSION_ANY, None)
        self.assertEqual(mine.get_version(), 0)
        self.assertEqual(mine.query_version(None), 2)
        self.assertEqual(mine.props.version, 2)

        theirs.write([candidate("Deposited")], Es.VERSION_ANY, None)
        loop = GLib.MainLoop()
        results = []

        def done(source, result, user_data):
            results.append(source.query_version_finish(result))
            loop.quit()

        mine.query_version_async(None, done, None)
        loop.run()
        self.assertEqual(results, [3])
        self.assertEqual(mine.get_version(), 3)
        # Asking wrote nothing.
        self.assertEqual(len(read_all(mine)), 3)
        self.assertEqual(self.open(Es.ALL_STREAM).query_version(None), 3)


class TestAsync(EsTestCase):
    def test_async_write(self):
        stream = self.open("async")
        loop = GLib.MainLoop()
        results = {}
        notified = []
        stream.connect("notify::version", lambda *args: notified.append(stream.props.version))

        def done(source, result, user_data):
            try:
                results["version"] = source.write_finish(result)
            except GLib.Error as e:  # pragma: no cover - reported below
                results["error"] = e
            loop.quit()

        stream.write_async([candidate("A", b"1"), candidate("B", b"2")], Es.VERSION_NO_STREAM,
                           None, done, None)
        loop.run()

        self.assertNotIn("error", results)
        self.assertEqual(results.get("version"), 2)
        self.assertEqual(stream.get_version(), 2)
        self.assertEqual(notified, [2])
        self.assertEqual(len(read_all(stream)), 2)

    def test_async_factory(self):
        loop = GLib.MainLoop()
        results = {}

        def done(source, result, user_data):
            results["factory"] = Es.SqliteStreamFactory.new_finish(result)
            loop.quit()

        Es.SqliteStreamFactory.new_async(os.path.join(self.tmpdir.name, "other.db"), None,
                                         done, None)
        loop.run()
        factory = results.get("factory")
        self.assertIsInstance(factory, Es.SqliteStreamFactory)
        self.assertEqual(factory.open_stream("x", None).get_version(), 0)
        factory.close(None)


class TestOperations(EsTestCase):
    def write_events(self):
        self.open("a").write([candidate("Created", b'{"n":1}', "k1", '{"who":"me"}'),
                              candidate("Binary", b"\x00\xff\x01")], Es.VERSION_ANY, None)
        self.open("b").write([candidate("Other", b"[1,2]")], Es.VERSION_ANY, None)

    def export_bytes(self, factory, stream_id=None, event_filter=None):
        out = Gio.MemoryOutputStream.new_resizable()
        n = factory.export_events(out, stream_id, event_filter, Es.ExportFlags.NONE, None,
                                  None, None)
        out.close(None)
        return n, out.steal_as_bytes().get_data()

    def test_export_import_round_trip(self):
        self.write_events()
        n, text = self.export_bytes(self.factory)
        self.assertEqual(n, 3)
        lines = text.decode().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertIn('"metadata":{"who":"me"},"data":{"n":1}}', lines[0])
        self.assertIn('"data_base64":"AP8B"', lines[1])
        self.assertIn('"stream_id":"b"', lines[2])

        target = Es.SqliteStreamFactory.new(os.path.join(self.tmpdir.name, "copy.db"), None)
        progress = []
        stored = target.import_events(Gio.MemoryInputStream.new_from_bytes(GLib.Bytes.new(text)),
                                      Es.ImportFlags.NONE, None,
                                      lambda current, total, *data: progress.append(current),
                                      None)
        self.assertEqual(stored, 3)
        self.assertEqual(progress[-1], len(text))
        self.assertEqual(self.export_bytes(target)[1], text)
        self.assertEqual(self.export_bytes(target, "a")[0], 2)
        target.close(None)

    def test_import_bad_line(self):
        with self.assertRaises(GLib.Error) as caught:
            self.factory.import_events(
                Gio.MemoryInputStream.new_from_bytes(GLib.Bytes.new(b"\n{oops\n")),
                Es.ImportFlags.NONE, None, None, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.INVALID_ARGUMENT))
        self.assertIn("Line 2", caught.exception.message)

    def test_storage_import_events(self):
        storage = self.factory.get_storage()
        when = GLib.DateTime.new_from_unix_utc(1700000000)
        events = [Es.StoredEvent.new("imp", 0, v, when, "T", GLib.Bytes.new(b"x"), None, None)
                  for v in (4, 5)]
        stored, failed = storage.import_events(events, None)
        self.assertEqual(stored, 2)
        self.assertEqual(self.factory.get_stream_info("imp", None).get_first_version(), 4)
        # The same again: skipped, nothing stored.
        self.assertEqual(storage.import_events(events, None)[0], 0)
        with self.assertRaises(GLib.Error) as caught:
            storage.import_events([Es.StoredEvent.new("imp", 0, 9, when, "T",
                                                      GLib.Bytes.new(b"x"), None, None)], None)
        self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                 Es.Error.WRONG_EXPECTED_VERSION))

    def test_check_and_report(self):
        self.write_events()
        report = self.factory.check(Es.CheckFlags.QUICK, None, None, None)
        self.assertTrue(report.is_ok())
        self.assertTrue(report.props.ok)
        self.assertEqual(report.get_n_problems(), 0)

        storage_report = Es.CheckReport.new()
        self.assertTrue(self.factory.get_storage().check(Es.CheckFlags.NONE, storage_report,
                                                         None, None, None))
        self.assertTrue(storage_report.is_ok())
        storage_report.add_problem(Es.CheckProblemKind.VERSION_GAP, "a", 3, "Gap at 3")
        self.assertFalse(storage_report.is_ok())
        self.assertEqual(storage_report.get_n_problems(), 1)
        self.assertEqual(storage_report.get_problem_kind(0), Es.CheckProblemKind.VERSION_GAP)
        self.assertEqual(storage_report.get_problem_stream_id(0), "a")
        self.assertEqual(storage_report.get_problem_version(0), 3)
        self.assertEqual(storage_report.get_problem_message(0), "Gap at 3")
        self.assertTrue(storage_report.has_problem(Es.CheckProblemKind.VERSION_GAP))
        self.assertFalse(storage_report.has_problem(Es.CheckProblemKind.STORAGE))

    def test_backup(self):
        self.write_events()
        dest = os.path.join(self.tmpdir.name, "backup.db")
        progress = []
        self.assertTrue(self.factory.backup(Gio.File.new_for_path(dest), Es.BackupFlags.NONE,
                                            None, lambda c, t, *d: progress.append((c, t)),
                                            None))
        self.assertEqual(progress[-1][0], progress[-1][1])
        with self.assertRaises(GLib.Error) as caught:
            self.factory.get_storage().backup(Gio.File.new_for_path(dest), Es.BackupFlags.NONE,
                                              None, None, None)
        self.assertTrue(caught.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.EXISTS))
        copy = Es.SqliteStreamFactory.new(dest, None)
        self.assertEqual(len(read_all(copy.open_stream("a", None))), 2)
        copy.close(None)

    def test_async_operations(self):
        self.write_events()
        loop = GLib.MainLoop()
        results = {}

        def done(name, finish):
            def callback(source, result, *data):
                results[name] = finish(result)
                loop.quit()
            return callback

        dest = os.path.join(self.tmpdir.name, "async.db")
        # PyGObject cannot call a (scope notified) GFileProgressCallback
        # ("expected tuple for callback user_data", as with
        # g_file_copy_async): from Python, progress comes with the
        # synchronous calls, run in a thread (see doc/operations.md).
        self.factory.backup_async(Gio.File.new_for_path(dest), Es.BackupFlags.NONE, None,
                                  None, None,
                                  done("backup", lambda r: self.factory.backup_finish(r)), None)
        loop.run()
        self.assertTrue(results["backup"])
        self.assertTrue(os.path.exists(dest))

        self.factory.check_async(Es.CheckFlags.NONE, None, None, None,
                                 done("check", lambda r: self.factory.check_finish(r)), None)
        loop.run()
        self.assertTrue(results["check"].is_ok())

        out = Gio.MemoryOutputStream.new_resizable()
        self.factory.export_events_async(out, None, None, Es.ExportFlags.DATA_BASE64, None,
                                         None, None,
                                         done("export",
                                              lambda r: self.factory.export_events_finish(r)),
                                         None)
        loop.run()
        self.assertEqual(results["export"], 3)
        out.close(None)
        text = out.steal_as_bytes()

        target = Es.SqliteStreamFactory.new(os.path.join(self.tmpdir.name, "t.db"), None)
        target.import_events_async(Gio.MemoryInputStream.new_from_bytes(text),
                                   Es.ImportFlags.NONE, None, None, None,
                                   done("import", lambda r: target.import_events_finish(r)), None)
        loop.run()
        self.assertEqual(results["import"], 3)
        self.assertEqual(len(read_all(target.open_stream("a", None))), 2)
        target.close(None)


# The PyGObject override (introspection/python/gi/overrides/Es.py), loaded
# when PYTHONPATH reaches it, as meson arranges.
OVERRIDE_LOADED = hasattr(Es.EventEnumerator, "__iter__")


@unittest.skipUnless(OVERRIDE_LOADED, "the Es PyGObject override is not on PYTHONPATH")
class TestOverride(EsTestCase):
    def test_candidate_conveniences(self):
        stream = self.open("override")
        event = Es.CandidateEvent("Added", data=b"raw", idempotency_key="k1",
                                  metadata={"user": "alice", "n": 2})
        self.assertEqual(event.get_idempotency_key(), "k1")
        stream.write([event, Es.CandidateEvent("Text", data="caf\u00e9")], Es.VERSION_ANY, None)

        events = list(stream.read(0, None, None))
        self.assertEqual(len(events), 2)
        self.assertEqual(events[0].data_bytes, b"raw")
        self.assertEqual(events[0].metadata_dict, {"user": "alice", "n": 2})
        self.assertEqual(events[1].data_bytes, "caf\u00e9".encode("utf-8"))
        self.assertIsNone(events[1].metadata_dict)

    def test_candidate_data_types(self):
        stream = self.open("data-types")
        accepted = [b"ab", bytearray(b"ab"), memoryview(b"xaby")[1:3],
                    array.array("B", [97, 98]), "ab", GLib.Bytes.new(b"ab")]
        events = [Es.CandidateEvent(event_type="T", data=d) for d in accepted]
        events += [Es.CandidateEvent.new("T", d) for d in accepted]
        events.append(Es.CandidateEvent.new("T", "\u00e9"))
        stream.write(events, Es.VERSION_ANY, None)
        self.assertEqual([e.data_bytes for e in stream.read(0, None, None)],
                         [b"ab"] * (2 * len(accepted)) + ["\u00e9".encode("utf-8")])

        # Anything else is a TypeError that says what data takes; before,
        # a dict failed with "'str' object cannot be interpreted as an
        # integer", and an int or a list of ints was silently turned into
        # bytes.
        for value in ({"a": 1}, [1, 2], 5, 1.5, object()):
            for make in (lambda v: Es.CandidateEvent(event_type="T", data=v),
                         lambda v: Es.CandidateEvent.new("T", v)):
                with self.assertRaises(TypeError) as caught:
                    make(value)
                message = str(caught.exception)
                for accepted_type in ("bytes", "bytearray", "memoryview", "str", "GLib.Bytes"):
                    self.assertIn(accepted_type, message)
                self.assertIn("not " + type(value).__name__, message)
                if isinstance(value, (dict, list)):
                    self.assertIn("json.dumps", message)
        with self.assertRaises(TypeError):
            Es.CandidateEvent.new(None, b"x")

    def test_candidate_new_batch(self):
        stream = self.open("new-batch")
        types = ["A", "B", "C", "D", "E", "F"]
        data = [b"ab", "caf\u00e9", None, GLib.Bytes.new(b"\x00\xff"), memoryview(b"xyz")[1:],
                bytearray(b"")]
        keys = ["k1", None, "k3", None, "k1", "k6"]
        metadata = [{"n": 1}, None, '{"n":3}', None, None, {"n": 6}]
        batch = Es.CandidateEvent.new_batch(types, data, keys, metadata)
        self.assertEqual([c.get_event_type() for c in batch], types)
        self.assertEqual([c.get_idempotency_key() for c in batch], keys)
        self.assertEqual([c.get_metadata() for c in batch],
                         ['{"n":1}', None, '{"n":3}', None, None, '{"n":6}'])
        expected_data = [b"ab", "caf\u00e9".encode("utf-8"), b"", b"\x00\xff", b"yz", b""]
        self.assertEqual([c.get_data().get_data() or b"" for c in batch], expected_data)

        # The fifth repeats the first's key: skipped by the write.
        self.assertEqual(stream.write(batch, Es.VERSION_ANY, None), 5)
        events = list(stream.read(0, None, None))
        self.assertEqual([e.get_event_type() for e in events], ["A", "B", "C", "D", "F"])
        self.assertEqual([e.data_bytes for e in events],
                         [d for i, d in enumerate(expected_data) if i != 4])
        self.assertEqual([e.metadata_dict for e in events],
                         [{"n": 1}, None, {"n": 3}, None, {"n": 6}])

        # The fast path: only bytes.
        batch = Es.CandidateEvent.new_batch(["T"] * 3, [b"1", b"22", b"333"],
                                            ["x1", "x2", "x3"])
        self.assertEqual(stream.write(batch, 5, None), 8)
        self.assertEqual([e.data_bytes for e in stream.read(5, None, None)], [b"1", b"22", b"333"])
        # Only the types.
        bare = Es.CandidateEvent.new_batch(("T", "U"))
        self.assertEqual([(c.get_event_type(), c.get_data().get_size(), c.get_idempotency_key())
                          for c in bare], [("T", 0, None), ("U", 0, None)])
        self.assertEqual(Es.CandidateEvent.new_batch([]), [])

        with self.assertRaises(ValueError) as caught:
            Es.CandidateEvent.new_batch(["A", "B"], [b"x"])
        self.assertIn("2 event types but 1 data", str(caught.exception))
        with self.assertRaises(ValueError):
            Es.CandidateEvent.new_batch(["A"], None, ["k1", "k2"])
        with self.assertRaises(TypeError):
            Es.CandidateEvent.new_batch("AB")
        with self.assertRaises(TypeError) as caught:
            Es.CandidateEvent.new_batch(["A"], [{"a": 1}])
        self.assertIn("json.dumps", str(caught.exception))
        self.assertEqual(stream.get_version(), 8)

    def test_cursor_iteration(self):
        a = self.open("iter-a")
        b = self.open("iter-b")
        for i in range(25):
            payload = b"p%d" % i if i % 5 else b""
            (a if i % 3 else b).write([Es.CandidateEvent("T%d" % (i % 4), payload)],
                                      Es.VERSION_ANY, None)
        for stream_id in ("iter-a", Es.ALL_STREAM):
            expected = [(e.get_sequence_id(), e.get_stream_id(), e.get_version(),
                         e.get_event_type(), e.data_bytes)
                        for e in self.open(stream_id).read(0, None, None)]
            for window in (Es.EventCursor.ITER_WINDOW, 1, 7, 100):
                with self.open(stream_id).read_cursor(0, None, None) as cursor:
                    cursor.ITER_WINDOW = window
                    rows = list(cursor)
                self.assertEqual(rows, expected)
                # Leaving the block closed the cursor.
                with self.assertRaises(GLib.Error) as caught:
                    cursor.next(None)
                self.assertTrue(caught.exception.matches(Gio.io_error_quark(),
                                                         Gio.IOErrorEnum.CLOSED))
        self.assertEqual(len(expected), 25)
        self.assertIn(b"", [row[4] for row in expected])

    def test_enumerator_context_manager(self):
        stream = self.open("override")
        stream.write([Es.CandidateEvent("A")], Es.VERSION_ANY, None)
        with stream.read(0, None, None) as enumerator:
            self.assertEqual([e.get_event_type() for e in enumerator], ["A"])
        self.assertTrue(enumerator.is_closed())

    def test_factory_context_manager(self):
        with Es.SqliteStreamFactory.new(os.path.join(self.tmpdir.name, "ctx.db"), None) as factory:
            factory.open_stream("s", None).write([Es.CandidateEvent("A")], Es.VERSION_ANY, None)
        with self.assertRaises(GLib.Error) as caught:
            factory.open_stream("s", None)
        self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.CLOSED))


def spin_until(condition, timeout_s=30.0):
    """Iterates the default main context until condition() or the timeout."""
    context = GLib.MainContext.default()
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        context.iteration(False)
        time.sleep(0.001)
    return condition()


def spin(seconds):
    spin_until(lambda: False, seconds)


class TestWatchContracts(EsTestCase):
    N_EVENTS = 5000

    def fill(self):
        stream = self.open("cart-1")
        for _ in range(self.N_EVENTS // 1000):
            stream.write([candidate("Added") for _ in range(1000)], Es.VERSION_ANY, None)

    def test_close_in_handler_mid_replay(self):
        """No event follows closing the factory in the Nth handler."""
        self.fill()
        state = {"n": 0, "closed": False, "after": 0}
        watch = self.open(Es.ALL_STREAM).watch(0)

        def on_event(_watch, _event):
            if state["closed"]:
                state["after"] += 1
            state["n"] += 1
            if state["n"] == 1500:
                self.factory.close(None)
                state["closed"] = True

        watch.connect("event", on_event)
        self.assertTrue(spin_until(lambda: state["closed"]))
        spin(0.3)
        self.assertEqual(state["after"], 0)
        self.assertEqual(state["n"], 1500)
        self.assertFalse(watch.get_active())

    def test_close_in_idle_mid_replay(self):
        """No event follows closing the factory from an idle mid-replay."""
        self.fill()
        state = {"n": 0, "closed": False, "after": 0}
        watch = self.open(Es.ALL_STREAM).watch(0)

        def close_later():
            # The next page is read meanwhile, ready when the close runs.
            time.sleep(0.2)
            self.factory.close(None)
            state["closed"] = True
            return GLib.SOURCE_REMOVE

        def on_event(_watch, _event):
            if state["closed"]:
                state["after"] += 1
            state["n"] += 1
            if state["n"] == 10:
                GLib.idle_add(close_later, priority=GLib.PRIORITY_DEFAULT)

        watch.connect("event", on_event)
        self.assertTrue(spin_until(lambda: state["closed"]))
        spin(0.3)
        self.assertEqual(state["after"], 0)
        self.assertLess(state["n"], self.N_EVENTS)
        self.assertFalse(watch.get_active())

    def test_watch_minus_one_race(self):
        """Every event written by another handle right after watch(-1) is emitted, once."""
        stream = self.open("race")
        other_factory = Es.SqliteStreamFactory.new(self.path, None)
        other = other_factory.open_stream("race", None)
        try:
            for round_ in range(200):
                seen = []
                watch = stream.watch(-1)
                watch.connect("event", lambda _w, e, seen=seen: seen.append(e.get_version()))
                version = other.write([candidate("Raced")], Es.VERSION_ANY, None)
                self.assertEqual(version, round_ + 1)
                self.assertTrue(spin_until(lambda: len(seen) > 0, 10.0),
                                "round %d: the event never arrived" % round_)
                while GLib.MainContext.default().iteration(False):
                    pass
                self.assertEqual(seen, [round_ + 1])
                watch.stop()
        finally:
            other_factory.close(None)

    def test_unusable_database_fails(self):
        """Deleting the database makes its watches fail with STORAGE after the timeout."""
        path = os.path.join(self.tmpdir.name, "doomed.db")
        factory = Es.SqliteStreamFactory(path=path, polling_interval=50, give_up_timeout=300)
        factory.init(None)
        self.assertEqual(factory.props.give_up_timeout, 300)
        notifier = factory.get_notifier()
        self.assertIsNone(notifier.get_error())
        stream = factory.open_stream("cart-1", None)
        stream.write([candidate("Added")], Es.VERSION_ANY, None)
        errors = []
        watch = stream.watch(0)
        watch.connect("error", lambda _w, error: errors.append(error))
        spin_until(watch.get_caught_up)
        os.unlink(path)
        self.assertTrue(spin_until(lambda: len(errors) > 0))
        self.assertTrue(errors[0].matches(Es.error_quark(), Es.Error.STORAGE))
        self.assertIn(path, errors[0].message)
        self.assertIn("deleted", errors[0].message)
        self.assertFalse(watch.get_active())
        self.assertEqual(notifier.get_error().message, errors[0].message)
        factory.close(None)


class TestEventListModel(EsTestCase):
    """EsEventListModel (issue 18) from Python: a Gio.ListModel that
    counts lazily, follows new events from any process and reflects the
    factory's truncations and its close."""

    def test_stream_model(self):
        stream = self.open("shop-1")
        stream.write([candidate("Added", b'{"n": %d}' % i) for i in range(5)],
                     Es.VERSION_ANY, None)
        model = Es.EventListModel.new(self.factory, "shop-1", None,
                                      Es.EventListModelFlags.NEWEST_FIRST)
        # Lazy: empty while the count runs in a worker.
        self.assertTrue(model.get_loading())
        self.assertEqual(model.get_n_items(), 0)
        self.assertTrue(run_until(lambda: not model.get_loading()))
        self.assertEqual(model.get_n_items(), 5)
        self.assertEqual(model.props.n_items, 5)
        self.assertEqual(model.get_item_type(), Es.StoredEvent.__gtype__)
        self.assertEqual([e.get_version() for e in model], [5, 4, 3, 2, 1])
        self.assertEqual(model.get_item(4).get_data().get_data(), b'{"n": 0}')
        self.assertIsNone(model.get_item(5))
        self.assertEqual(model.get_stream_id(), "shop-1")
        self.assertEqual(model.get_factory(), self.factory)
        self.assertIsNone(model.get_filter())
        self.assertEqual(model.get_flags(), Es.EventListModelFlags.NEWEST_FIRST)

        changes = []
        model.connect("items-changed", lambda m, p, r, a: changes.append((p, r, a)))
        stream.write([candidate("Removed")], Es.VERSION_ANY, None)
        other = Es.SqliteStreamFactory.new(self.path, None)
        other.open_stream("shop-1", None).write([candidate("Paid")], Es.VERSION_ANY, None)
        self.assertTrue(run_until(lambda: model.get_n_items() == 7))
        # New events at position 0, one by one, in order.
        self.assertEqual(changes, [(0, 0, 1), (0, 0, 1)])
        self.assertEqual([e.get_event_type() for e in model][:3], ["Paid", "Removed", "Added"])

        # The factory's truncation removes the oldest items (at the end).
        del changes[:]
        self.assertTrue(self.factory.truncate_stream("shop-1", 3, None))
        self.assertTrue(run_until(lambda: model.get_n_items() == 5))
        self.assertEqual(changes, [(5, 2, 0)])
        self.assertEqual([e.get_version() for e in model], [7, 6, 5, 4, 3])

        # Another process's truncation shows after refresh().
        self.assertTrue(other.truncate_stream("shop-1", 5, None))
        model.refresh()
        self.assertTrue(run_until(lambda: model.get_n_items() == 3 and not model.get_loading()))
        self.assertEqual([e.get_version() for e in model], [7, 6, 5])
        other.close(None)

        # The factory's close empties the model for good.
        self.factory.close(None)
        self.assertTrue(run_until(lambda: model.get_n_items() == 0))
        self.assertIsNone(model.get_item(0))

    def test_filtered_all(self):
        for i in range(6):
            self.open("s-%d" % (i % 2)).write(
                [candidate("Wanted" if i % 3 == 0 else "Other")], Es.VERSION_ANY, None)
        event_filter = Es.EventFilter.new()
        event_filter.add_like("event_type", "Want%")
        model = Es.EventListModel.new(self.factory, Es.ALL_STREAM, event_filter,
                                      Es.EventListModelFlags.NONE)
        self.assertTrue(run_until(lambda: not model.get_loading()))
        self.assertEqual(model.get_stream_id(), Es.ALL_STREAM)
        self.assertEqual(model.get_filter(), event_filter)
        self.assertEqual([e.get_sequence_id() for e in model], [1, 4])
        storage = self.factory.get_storage()
        self.assertEqual(storage.count_events(None, event_filter, 0, GLib.MAXINT64, None), 2)
        self.assertEqual(storage.count_events("s-1", None, 1, 3, None), 2)
        self.assertEqual(storage.locate_event(None, 0, Es.ReadFlags.NONE, event_filter, 1, None), 4)
        self.assertEqual(storage.locate_event(None, 0, Es.ReadFlags.NONE, event_filter, 2, None), 0)
        self.assertEqual(storage.locate_event("s-1", 4, Es.ReadFlags.BACKWARDS, None, 1, None), 2)

        self.open("s-9").write([candidate("Wanted"), candidate("Other")], Es.VERSION_ANY, None)
        self.assertTrue(run_until(lambda: model.get_n_items() == 3))
        self.assertEqual(model.get_item(2).get_stream_id(), "s-9")


class TestLifecycleSqlite(LifecycleCases, EsTestCase):
    """The stream life cycle (issue 16): tests/lifecycle_cases.py, on a
    SQLite file, and what SQLite alone can show: the bytes on disk."""

    def second_factory(self):
        return Es.SqliteStreamFactory.new(self.path, None)

    def file_bytes(self):
        data = b""
        for suffix in ("", "-wal"):
            if os.path.exists(self.path + suffix):
                with open(self.path + suffix, "rb") as f:
                    data += f.read()
        return data

    def test_deleted_bytes_leave_the_file(self):
        secret = b"my-secret-diary-entry-%d"
        stream = self.open("diary")
        stream.write([candidate("Entry", secret % i, metadata='{"secret-meta": %d}' % i)
                      for i in range(20)], Es.VERSION_NO_STREAM, None)
        kept = self.open("kept")
        kept.write([candidate("Entry", b"my-kept-entry")], Es.VERSION_NO_STREAM, None)
        erased = self.open("erased")
        erased.write([candidate("Entry", b"my-erased-entry", metadata='{"who": "my-erased-meta"}')],
                     Es.VERSION_NO_STREAM, None)
        self.factory.close(None)
        self.assertTrue(b"my-secret-diary-entry-7" in self.file_bytes())
        self.assertTrue(b"my-erased-meta" in self.file_bytes())

        self.factory = Es.SqliteStreamFactory.new(self.path, None)
        self.assertTrue(self.factory.delete_stream("diary", 20, Es.DeleteFlags.TOMBSTONE, None))
        self.assertTrue(self.factory.erase_event("erased", 1, None))
        # Overwritten (secure_delete), not only unlinked from the tree, and
        # out of the write-ahead log (checkpointed after the removal) while
        # the database is still open; and after closing.
        for moment in ("open", "closed"):
            data = self.file_bytes()
            for gone in (b"my-secret-diary-entry", b"secret-meta", b"my-erased-entry",
                         b"my-erased-meta"):
                # Not assertNotIn: it would print the whole file.
                self.assertFalse(gone in data, "%s is still in the file (%s)" % (gone, moment))
            self.assertTrue(b"my-kept-entry" in data)
            self.factory.close(None)

    def test_compact_gives_space_back(self):
        stream = self.open("big")
        for _ in range(10):
            stream.write([candidate("Blob", os.urandom(2000)) for _ in range(100)],
                         Es.VERSION_ANY, None)
        self.open("small").write([candidate("E", b"still here")], Es.VERSION_ANY, None)
        self.factory.close(None)
        before = os.path.getsize(self.path)
        self.assertGreater(before, 2000000)

        self.factory = Es.SqliteStreamFactory.new(self.path, None)
        self.assertTrue(self.factory.delete_stream("big", Es.VERSION_ANY, Es.DeleteFlags.NONE,
                                                   None))
        self.assertTrue(self.factory.compact(None))
        self.factory.close(None)
        after = os.path.getsize(self.path)
        self.assertLess(after, before // 4, "%d bytes before, %d after" % (before, after))

        self.factory = Es.SqliteStreamFactory.new(self.path, None)
        self.assertEqual([e.get_data().get_data() for e in read_all(self.open("small"))],
                         [b"still here"])
        self.assertEqual(self.factory.get_stream_info("big", None).get_current_version(), 1000)


class TestSubscriptionsSqlite(SubscriptionCases, EsTestCase):
    """Durable subscriptions (issue 17): tests/subscription_cases.py, on a
    SQLite file (the second factory opens the file again, as another
    process would)."""

    def second_factory(self):
        return Es.SqliteStreamFactory.new(self.path, None)

    def assertEsError(self, error, code, *named):
        LifecycleCases.assertEsError(self, error, code, *named)


if __name__ == "__main__":
    unittest.main(verbosity=2)
