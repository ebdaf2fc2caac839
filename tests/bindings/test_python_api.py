#!/usr/bin/python3
# test_python_api.py: every function, method, constructor and property of
# Es-1.0.gir, called from Python through PyGObject at least once.
#
# tests/bindings/check-coverage.py fails when a GIR callable appears in no
# Python test file, so a new public function needs a call here.
#
# Run by meson (suite 'bindings') with GI_TYPELIB_PATH, LD_LIBRARY_PATH and
# PYTHONPATH (the override) pointing into the tree; by hand:
#   GI_TYPELIB_PATH=_build/introspection LD_LIBRARY_PATH=_build/es-glib \
#   PYTHONPATH=introspection/python /usr/bin/python3 tests/bindings/test_python_api.py
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import tempfile
import threading
import unittest

import gi

gi.require_version("GLib", "2.0")
gi.require_version("GObject", "2.0")
gi.require_version("Gio", "2.0")
gi.require_version("Es", "1.0")
from gi.repository import Es, Gio, GLib, GObject  # noqa: E402

TIMEOUT_MS = 20000


def event(event_type, data=b"", key=None, metadata=None):
    candidate = Es.CandidateEvent.new(event_type, GLib.Bytes.new(data))
    if key is not None:
        candidate.set_idempotency_key(key)
    if metadata is not None:
        candidate.set_metadata(metadata)
    return candidate


def run_async(start, finish):
    """Calls start(callback), runs a main loop until the callback, returns
    finish(source, result) or raises its GLib.Error."""
    loop = GLib.MainLoop()
    outcome = {}

    def done(source, result, *user_data):
        try:
            outcome["value"] = finish(source, result)
        except GLib.Error as error:
            outcome["error"] = error
        loop.quit()

    start(done)
    timeout = GLib.timeout_add(TIMEOUT_MS, loop.quit)
    loop.run()
    GLib.source_remove(timeout)
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise AssertionError("the async call did not complete")
    return outcome["value"]


class Base(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="es-bindings-")
        self.path = os.path.join(self.tmpdir.name, "events.db")
        self.factory = Es.SqliteStreamFactory.new(self.path, None)

    def tearDown(self):
        self.factory.close(None)
        del self.factory
        self.tmpdir.cleanup()

    def assertEsError(self, error, code):
        self.assertTrue(error.matches(Es.error_quark(), code),
                        "%s is not Es.Error %s" % (error, code))


class TestValueTypes(Base):
    def test_candidate_event(self):
        candidate = Es.CandidateEvent.new("Added", GLib.Bytes.new(b"\x00x"))
        self.assertEqual(candidate.get_event_type(), "Added")
        self.assertEqual(candidate.get_data().get_data(), b"\x00x")
        self.assertIsNone(candidate.get_idempotency_key())
        self.assertIsNone(candidate.get_metadata())
        candidate.set_idempotency_key("k")
        candidate.set_metadata('{"a":1}')
        self.assertEqual(candidate.get_idempotency_key(), "k")
        self.assertEqual(candidate.get_metadata(), '{"a":1}')
        candidate.set_idempotency_key(None)
        self.assertIsNone(candidate.get_idempotency_key())
        self.assertEqual(Es.CandidateEvent.new("Empty", None).get_data().get_size(), 0)
        # Properties
        self.assertEqual(candidate.props.event_type, "Added")
        self.assertEqual(candidate.props.data.get_data(), b"\x00x")
        self.assertEqual(candidate.props.metadata, '{"a":1}')
        candidate.props.idempotency_key = "p"
        self.assertEqual(candidate.get_idempotency_key(), "p")

    def test_stored_event(self):
        when = GLib.DateTime.new_utc(2024, 5, 1, 12, 0, 0.25)
        stored = Es.StoredEvent.new("s-1", 7, 3, when, "Typed", GLib.Bytes.new(b"d"), "key",
                                    '{"m":true}')
        self.assertEqual(stored.get_stream_id(), "s-1")
        self.assertEqual(stored.get_sequence_id(), 7)
        self.assertEqual(stored.get_version(), 3)
        self.assertEqual(stored.get_timestamp().to_unix(), when.to_unix())
        self.assertEqual(stored.get_timestamp_usec(), when.to_unix() * 1000000 + 250000)
        self.assertEqual(stored.get_event_type(), "Typed")
        self.assertEqual(stored.get_data().get_data(), b"d")
        self.assertEqual(stored.get_id(), "key")
        self.assertEqual(stored.get_idempotency_key(), "key")
        self.assertEqual(stored.get_metadata(), '{"m":true}')
        keyless = Es.StoredEvent.new("s-1", 8, 4, when, "T", None, None, None)
        self.assertTrue(keyless.get_id())
        self.assertIsNone(keyless.get_idempotency_key())
        self.assertIsNone(keyless.get_metadata())
        for name in ("stream-id", "sequence-id", "version", "timestamp", "timestamp-usec",
                     "event-type", "data", "id", "idempotency-key", "metadata"):
            stored.get_property(name)
        self.assertEqual(stored.props.timestamp_usec, stored.get_timestamp_usec())

    def test_stored_event_flags(self):
        when = GLib.DateTime.new_utc(2024, 5, 1, 12, 0, 0.5)
        erased = Es.StoredEvent.new_full("s-1", 9, 2, when, "Visit", None, "k", None,
                                         Es.StoredEventFlags.ERASED)
        self.assertEqual(erased.get_flags(), Es.StoredEventFlags.ERASED)
        self.assertTrue(erased.get_erased())
        self.assertEqual(erased.props.flags, Es.StoredEventFlags.ERASED)
        self.assertEqual((erased.get_stream_id(), erased.get_sequence_id(), erased.get_version(),
                          erased.get_event_type(), erased.get_idempotency_key()),
                         ("s-1", 9, 2, "Visit", "k"))
        self.assertEqual(erased.get_data().get_size(), 0)
        marker = Es.StoredEvent.new_full("gone", 12, 4, when, "$tombstone", None, None, None,
                                         Es.StoredEventFlags.TOMBSTONE)
        self.assertEqual(marker.get_flags(), Es.StoredEventFlags.TOMBSTONE)
        self.assertFalse(marker.get_erased())
        plain = Es.StoredEvent.new("s-1", 1, 1, when, "T", None, None, None)
        self.assertEqual(plain.get_flags(), Es.StoredEventFlags.NONE)
        self.assertFalse(plain.get_erased())

    def test_stream_info(self):
        first = GLib.DateTime.new_utc(2024, 5, 1, 12, 0, 0.25)
        last = GLib.DateTime.new_utc(2024, 5, 2, 8, 30, 1.5)
        first_usec = first.to_unix() * 1000000 + 250000
        last_usec = last.to_unix() * 1000000 + 500000
        info = Es.StreamInfo.new("cart-1", Es.StreamState.ACTIVE, 12, 5, 8, first_usec,
                                 last_usec, 90 * GLib.TIME_SPAN_DAY, 1000)
        self.assertEqual(info.get_stream_id(), "cart-1")
        self.assertEqual(info.get_state(), Es.StreamState.ACTIVE)
        self.assertEqual(info.get_current_version(), 12)
        self.assertEqual(info.get_event_count(), 5)
        self.assertEqual(info.get_first_version(), 8)
        self.assertEqual(info.get_first_timestamp_usec(), first_usec)
        self.assertEqual(info.get_last_timestamp_usec(), last_usec)
        self.assertEqual(info.get_first_timestamp().to_unix(), first.to_unix())
        self.assertEqual(info.get_first_timestamp().get_microsecond(), 250000)
        self.assertEqual(info.get_last_timestamp().get_hour(), 8)
        self.assertEqual(info.get_max_age(), 90 * GLib.TIME_SPAN_DAY)
        self.assertEqual(info.get_max_count(), 1000)
        for pspec in info.list_properties():
            info.get_property(pspec.name)
        self.assertEqual(info.props.stream_id, "cart-1")
        self.assertEqual(info.props.event_count, 5)
        # No events: no timestamps.
        empty = Es.StreamInfo.new("gone", Es.StreamState.TOMBSTONED, 3, 0, 0, 0, 0, 0, 0)
        self.assertEqual(empty.get_state(), Es.StreamState.TOMBSTONED)
        self.assertIsNone(empty.get_first_timestamp())
        self.assertIsNone(empty.get_last_timestamp())

    def test_snapshot_and_metrics(self):
        when = GLib.DateTime.new_now_utc()
        snapshot = Es.Snapshot.new("s", "totals", 4, GLib.Bytes.new(b"st"), when)
        self.assertEqual(snapshot.get_stream_id(), "s")
        self.assertEqual(snapshot.get_projection_name(), "totals")
        self.assertEqual(snapshot.get_version(), 4)
        self.assertEqual(snapshot.get_state().get_data(), b"st")
        self.assertEqual(snapshot.get_timestamp().to_unix(), when.to_unix())
        everything = Es.Snapshot.new(None, "p", 1, GLib.Bytes.new(b""), None)
        self.assertEqual(everything.get_stream_id(), Es.ALL_STREAM)
        self.assertIsNotNone(everything.get_timestamp())
        self.assertEqual(snapshot.props.projection_name, "totals")
        self.assertEqual(snapshot.props.version, 4)

        metrics = Es.StreamMetrics.new(5, 5, when)
        self.assertEqual(metrics.get_current_version(), 5)
        self.assertEqual(metrics.get_event_count(), 5)
        self.assertEqual(metrics.get_last_timestamp().to_unix(), when.to_unix())
        self.assertIsNone(Es.StreamMetrics.new(0, 0, None).get_last_timestamp())
        self.assertEqual(metrics.props.current_version, 5)
        self.assertEqual(metrics.props.event_count, 5)

    def test_event_filter(self):
        event_filter = Es.EventFilter.new()
        self.assertEqual(event_filter.get_n_clauses(), 0)
        event_filter.add_equals("stream_id", GLib.Variant("s", "s-1"))
        event_filter.add_in("version", GLib.Variant("ax", [1, 3]))
        event_filter.add_like("event_type", "T%")
        self.assertEqual(event_filter.get_n_clauses(), 3)
        field, op, value = event_filter.get_clause(1)
        self.assertEqual(field, "version")
        self.assertEqual(op, Es.FilterOperator.IN)
        self.assertEqual(value.unpack(), [1, 3])
        self.assertEqual(event_filter.get_clause(2)[1], Es.FilterOperator.LIKE)
        self.assertTrue(event_filter.validate())

        when = GLib.DateTime.new_now_utc()
        yes = Es.StoredEvent.new("s-1", 1, 3, when, "Typed", None, None, None)
        no = Es.StoredEvent.new("s-1", 2, 2, when, "Typed", None, None, None)
        self.assertTrue(event_filter.matches(yes))
        self.assertFalse(event_filter.matches(no))

        bad = Es.EventFilter.new()
        bad.add_equals("colour", GLib.Variant("s", "red"))
        with self.assertRaises(GLib.Error) as caught:
            bad.validate()
        self.assertEsError(caught.exception, Es.Error.INVALID_ARGUMENT)
        self.assertIn("colour", caught.exception.message)

        # What a backend translating filters uses.
        self.assertEqual(Es.EventFilter.parse_field("version")[0], Es.FilterField.VERSION)
        kind, path = Es.EventFilter.parse_field("metadata.user.id")
        self.assertEqual((kind, path), (Es.FilterField.METADATA, ["user", "id"]))
        self.assertEqual(Es.EventFilter.parse_field("colour")[0], Es.FilterField.INVALID)
        kind, string, integer, dbl, boolean = Es.EventFilter.classify_value(GLib.Variant("u", 7))
        self.assertEqual((kind, integer), (Es.FilterValueKind.INT64, 7))
        kind, string = Es.EventFilter.classify_value(GLib.Variant("s", "x"))[:2]
        self.assertEqual((kind, string), (Es.FilterValueKind.STRING, "x"))
        self.assertEqual(Es.EventFilter.classify_value(GLib.Variant("t", 2 ** 64 - 1))[0],
                         Es.FilterValueKind.INVALID)


class TestStream(Base):
    def test_sync_api(self):
        self.assertEqual(Es.VERSION_ANY, -1)
        self.assertEqual(Es.VERSION_NO_STREAM, 0)
        self.assertEqual(Es.ALL_STREAM, "@all")
        self.assertEqual(self.factory.get_path(), self.path)
        self.assertEqual(self.factory.props.path, self.path)
        self.assertFalse(self.factory.is_closed())

        stream = self.factory.open_stream("cart-1", None)
        self.assertEqual(stream.get_stream_id(), "cart-1")
        self.assertEqual(stream.props.stream_id, "cart-1")
        self.assertEqual(stream.get_version(), 0)
        self.assertEqual(stream.write([event("A", b"1", "k1", '{"u":"x"}'), event("B")],
                                      Es.VERSION_NO_STREAM, None), 2)
        self.assertEqual(stream.write([], Es.VERSION_ANY, None), 2)
        self.assertEqual(stream.props.version, 2)

        enumerator = stream.read(0, None, None)
        first = enumerator.next(None)
        self.assertEqual((first.get_event_type(), first.get_id()), ("A", "k1"))
        rest = enumerator.next_batch(10, None)
        self.assertEqual([e.get_event_type() for e in rest], ["B"])
        self.assertEqual(len(enumerator.next_batch(10, None)), 0)
        self.assertIsNone(enumerator.next(None))
        self.assertFalse(enumerator.is_closed())
        self.assertTrue(enumerator.close(None))
        self.assertTrue(enumerator.is_closed())

        self.assertIsNone(stream.load_snapshot(None, None))
        self.assertTrue(stream.snapshot(GLib.Bytes.new(b"2"), -1, None, None))
        snapshot = stream.load_snapshot(None, None)
        self.assertEqual((snapshot.get_version(), snapshot.get_projection_name()), (2, "default"))
        metrics = stream.get_metrics(None)
        self.assertEqual((metrics.get_current_version(), metrics.get_event_count()), (2, 2))

    def test_errors(self):
        stream = self.factory.open_stream("cart-7", None)
        stream.write([event("A")], Es.VERSION_ANY, None)
        with self.assertRaises(GLib.Error) as caught:
            stream.write([event("B")], 5, None)
        error = caught.exception
        self.assertTrue(error.matches(Es.error_quark(), Es.Error.WRONG_EXPECTED_VERSION))
        self.assertEqual(error.domain, GLib.quark_to_string(Es.error_quark()))
        self.assertEqual(error.code, int(Es.Error.WRONG_EXPECTED_VERSION))
        self.assertIn("cart-7", error.message)

        with self.assertRaises(GLib.Error) as caught:
            stream.write([event("B")], -2, None)
        self.assertEsError(caught.exception, Es.Error.INVALID_ARGUMENT)

        cancellable = Gio.Cancellable.new()
        cancellable.cancel()
        with self.assertRaises(GLib.Error) as caught:
            stream.write([event("C")], Es.VERSION_ANY, cancellable)
        self.assertTrue(caught.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))
        self.assertEqual(stream.get_metrics(None).get_event_count(), 1)

    def test_async_api(self):
        factory = run_async(
            lambda cb: Es.SqliteStreamFactory.new_async(
                os.path.join(self.tmpdir.name, "async.db"), None, cb, None),
            lambda source, result: Es.SqliteStreamFactory.new_finish(result))
        self.assertIsInstance(factory, Es.SqliteStreamFactory)
        stream = run_async(lambda cb: factory.open_stream_async("a-1", None, cb, None),
                           lambda source, result: source.open_stream_finish(result))
        self.assertEqual(stream.get_stream_id(), "a-1")

        version = run_async(
            lambda cb: stream.write_async([event("A"), event("B"), event("C")],
                                          Es.VERSION_NO_STREAM, None, cb, None),
            lambda source, result: source.write_finish(result))
        self.assertEqual(version, 3)

        with self.assertRaises(GLib.Error) as caught:
            run_async(lambda cb: stream.write_async([event("D")], 1, None, cb, None),
                      lambda source, result: source.write_finish(result))
        self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                 Es.Error.WRONG_EXPECTED_VERSION))

        enumerator = run_async(lambda cb: stream.read_async(1, None, None, cb, None),
                               lambda source, result: source.read_finish(result))
        batch = run_async(lambda cb: enumerator.next_batch_async(10, None, cb, None),
                          lambda source, result: source.next_batch_finish(result))
        self.assertEqual([e.get_version() for e in batch], [2, 3])
        enumerator.close(None)

        self.assertTrue(run_async(
            lambda cb: stream.snapshot_async(GLib.Bytes.new(b"s"), 2, "p", None, cb, None),
            lambda source, result: source.snapshot_finish(result)))
        snapshot = run_async(lambda cb: stream.load_snapshot_async("p", None, cb, None),
                             lambda source, result: source.load_snapshot_finish(result))
        self.assertEqual(snapshot.get_version(), 2)
        self.assertEqual(snapshot.get_state().get_data(), b"s")
        metrics = run_async(lambda cb: stream.get_metrics_async(None, cb, None),
                            lambda source, result: source.get_metrics_finish(result))
        self.assertEqual(metrics.get_event_count(), 3)

        self.assertTrue(run_async(lambda cb: factory.close_async(None, cb, None),
                                  lambda source, result: source.close_finish(result)))
        self.assertTrue(factory.is_closed())
        with self.assertRaises(GLib.Error) as caught:
            stream.get_metrics(None)
        self.assertEsError(caught.exception, Es.Error.CLOSED)

    def test_watch(self):
        stream = self.factory.open_stream("live", None)
        stream.write([event("Old")], Es.VERSION_ANY, None)
        loop = GLib.MainLoop()
        seen = []
        caught_up = []
        watch = stream.watch(0)
        self.assertEqual(watch.get_stream_id(), "live")
        self.assertTrue(watch.get_active())

        def on_event(_watch, stored):
            seen.append(stored.get_version())
            if len(seen) == 2:
                loop.quit()

        def on_caught_up(the_watch):
            caught_up.append(list(seen))
            self.assertTrue(the_watch.get_caught_up())
            stream.write([event("New")], Es.VERSION_ANY, None)

        watch.connect("event", on_event)
        watch.connect("caught-up", on_caught_up)
        watch.connect("error", lambda _w, error: loop.quit())
        timeout = GLib.timeout_add(TIMEOUT_MS, loop.quit)
        loop.run()
        GLib.source_remove(timeout)
        self.assertEqual(seen, [1, 2])
        self.assertEqual(caught_up, [[1]])
        self.assertEqual(watch.get_last_version(), 2)
        self.assertEqual(watch.props.last_version, 2)
        self.assertTrue(watch.props.active)
        watch.stop()
        watch.stop()
        self.assertFalse(watch.get_active())

    def test_watch_error(self):
        stream = self.factory.open_stream("closing", None)
        self.factory.close(None)
        loop = GLib.MainLoop()
        errors = []
        watch = stream.watch(0)

        def on_error(_watch, error):
            errors.append(error)
            loop.quit()

        watch.connect("error", on_error)
        timeout = GLib.timeout_add(TIMEOUT_MS, loop.quit)
        loop.run()
        GLib.source_remove(timeout)
        self.assertEqual(len(errors), 1)
        self.assertEsError(errors[0], Es.Error.CLOSED)
        self.assertFalse(watch.get_active())


class TestBackends(Base):
    def test_storage_handle(self):
        storage = self.factory.get_storage()
        self.assertIsInstance(storage, Es.StorageHandle)
        self.assertIsInstance(storage, Es.SqliteStorage)
        self.assertEqual(storage.get_path(), self.path)
        self.assertGreaterEqual(storage.get_pool_size(), 1)

        ok, version = storage.get_version("s", None)
        self.assertTrue(ok)
        self.assertEqual(version, 0)
        ok, version = storage.append("s", Es.VERSION_NO_STREAM, [event("A", key="a")], None)
        self.assertEqual((ok, version), (True, 1))
        loop_result = run_async(
            lambda cb: storage.append_async("s", 1, [event("B"), event("A", key="a")], None,
                                            cb, None),
            lambda source, result: source.append_finish(result))
        self.assertEqual(tuple(loop_result), (True, 2))
        with self.assertRaises(GLib.Error) as caught:
            storage.append("s", 7, [event("C")], None)
        self.assertEsError(caught.exception, Es.Error.WRONG_EXPECTED_VERSION)

        page = storage.read_page("s", 0, None, 10, None)
        self.assertEqual([e.get_event_type() for e in page], ["A", "B"])
        self.assertEqual(len(storage.read_page("s", 1, None, 10, None)), 1)
        everything = storage.read_page(None, 0, None, 1, None)
        self.assertEqual(len(everything), 1)
        self.assertEqual(storage.get_version(None, None)[1], 2)

        metrics = storage.get_metrics("s", None)
        self.assertEqual(metrics.get_current_version(), 2)
        self.assertEqual(storage.get_metrics(None, None).get_event_count(), 2)

        self.assertIsNone(storage.load_snapshot("s", "p", None))
        self.assertTrue(storage.save_snapshot("s", "p", 2, GLib.Bytes.new(b"x"), None))
        self.assertEqual(storage.load_snapshot("s", "p", None).get_state().get_data(), b"x")
        self.assertTrue(storage.save_snapshot(None, "all", 2, GLib.Bytes.new(b"y"), None))
        self.assertEqual(storage.load_snapshot(None, "all", None).get_version(), 2)

        self.assertEqual(self.factory.open_stream("s", None).get_version(), 2)

    def test_storage_life_cycle(self):
        """The storage handle's life-cycle methods, called directly (what
        the factory's methods of the same names call)."""
        storage = self.factory.get_storage()
        for stream_id, n in (("a-1", 3), ("a-2", 2), ("b-1", 4)):
            storage.append(stream_id, Es.VERSION_ANY, [event("E") for _ in range(n)], None)

        page = storage.list_streams("a-", None, Es.ListStreamsFlags.NONE, 1, None)
        self.assertEqual([i.get_stream_id() for i in page], ["a-1"])
        page = storage.list_streams("a-", "a-1", Es.ListStreamsFlags.NONE, 10, None)
        self.assertEqual([(i.get_stream_id(), i.get_event_count()) for i in page], [("a-2", 2)])
        self.assertEqual(storage.get_stream_info("b-1", None).get_event_count(), 4)
        self.assertEqual(storage.get_stream_info(None, None).get_event_count(), 9)

        page = storage.read_page_full("b-1", GLib.MAXINT64, Es.ReadFlags.BACKWARDS, None, 2, None)
        self.assertEqual([e.get_version() for e in page], [4, 3])
        page = storage.read_page_full("b-1", 1, Es.ReadFlags.NONE, None, 10, None)
        self.assertEqual([e.get_version() for e in page], [2, 3, 4])

        self.assertTrue(storage.truncate_stream("b-1", 3, None))
        self.assertEqual(storage.get_stream_info("b-1", None).get_first_version(), 3)
        self.assertTrue(storage.erase_event("b-1", 4, None))
        self.assertTrue(storage.read_page("b-1", 3, None, 10, None)[0].get_erased())
        self.assertTrue(storage.set_retention("a-1", 0, 1, None))
        self.assertEqual([e.get_version() for e in storage.read_page("a-1", 0, None, 10, None)],
                         [3])
        self.assertTrue(storage.delete_stream("a-2", 2, Es.DeleteFlags.TOMBSTONE, None))
        with self.assertRaises(GLib.Error) as caught:
            storage.append("a-2", Es.VERSION_ANY, [event("E")], None)
        self.assertEsError(caught.exception, Es.Error.STREAM_DELETED)
        self.assertIn("a-2", caught.exception.message)
        marker = storage.read_page_full(None, 0, Es.ReadFlags.INCLUDE_TOMBSTONES, None, 100,
                                        None)[-1]
        self.assertEqual((marker.get_flags(), marker.get_stream_id()),
                         (Es.StoredEventFlags.TOMBSTONE, "a-2"))
        removed, has_age = storage.sweep(GLib.get_real_time(), None)
        self.assertEqual((removed, has_age), (0, False))
        self.assertTrue(storage.compact(None))
        total = storage.get_stream_info(None, None)
        self.assertEqual(total.get_event_count(), 3)

        # The factory's property.
        self.assertEqual(self.factory.props.sweep_interval, 3600)

    def test_notifier(self):
        notifier = self.factory.get_notifier()
        self.assertIsInstance(notifier, Es.Notifier)
        self.assertIsInstance(notifier, Es.SqliteNotifier)
        # Chosen by the notifier (polling-interval 0): 1000 ms where the
        # push path sees other processes, 100 ms where it cannot.
        self.assertIn(notifier.get_polling_interval(), (100, 1000))
        self.assertTrue(notifier.start(None))
        start = notifier.get_last_sequence_id()

        delivered = threading.Event()
        received = []

        def on_events(events, *user_data):
            # Called from the notifier's thread.
            received.extend((e.get_stream_id(), e.get_sequence_id()) for e in events)
            delivered.set()

        subscription = notifier.subscribe(on_events, None)
        self.assertNotEqual(subscription, 0)
        stream = self.factory.open_stream("n", None)
        stream.write([event("A")], Es.VERSION_ANY, None)
        notifier.committed()
        self.assertTrue(delivered.wait(TIMEOUT_MS / 1000))
        self.assertIn("n", [stream_id for stream_id, _ in received])
        self.assertGreater(notifier.get_last_sequence_id(), start)
        notifier.unsubscribe(subscription)

    def test_storage_notifier_subclass(self):
        # A third-party notifier: the base class does the thread, the
        # subscribers, the cursor, delivering and giving up.
        class Looker(Es.StorageNotifier):
            pass

        storage = self.factory.get_storage()
        notifier = Looker(storage=storage, give_up_timeout=50)
        self.assertIsInstance(notifier, Es.Notifier)
        self.assertIs(notifier.get_storage(), storage)
        self.assertEqual(notifier.get_give_up_timeout(), 50)
        self.assertIsNone(notifier.get_context())
        self.assertTrue(notifier.start(None))
        self.assertIsNotNone(notifier.get_context())
        self.assertEqual(notifier.get_last_sequence_id(), 0)

        self.factory.open_stream("k", None).write([event("A"), event("B")], Es.VERSION_ANY, None)
        self.assertTrue(notifier.deliver())
        self.assertEqual(notifier.get_last_sequence_id(), 2)
        notifier.report_success()
        self.assertIsNone(notifier.get_error())

        notifier.report_failure("the disk went away")
        deadline = GLib.get_monotonic_time() + TIMEOUT_MS * 1000
        while notifier.get_error() is None and GLib.get_monotonic_time() < deadline:
            GLib.usleep(1000)
        self.assertEsError(notifier.get_error(), Es.Error.STORAGE)
        self.assertIn("the disk went away", notifier.get_error().message)
        notifier.changed()  # gave up: does nothing
        notifier.stop()

    def test_hand_wired_factory(self):
        path = os.path.join(self.tmpdir.name, "wired.db")
        storage = Es.SqliteStorage.new(path, 2, None)
        self.assertEqual(storage.get_pool_size(), 2)
        self.assertEqual(storage.props.pool_size, 2)
        notifier = Es.SqliteNotifier.new(storage, 25)
        self.assertEqual(notifier.get_polling_interval(), 25)
        self.assertEqual(notifier.props.polling_interval, 25)
        self.assertIs(notifier.props.storage, storage)

        factory = Es.StreamFactory.new(storage, notifier)
        self.assertIs(factory.get_storage(), storage)
        self.assertIs(factory.get_notifier(), notifier)
        self.assertIs(factory.props.storage, storage)
        factory.open_stream("w", None).write([event("A")], Es.VERSION_ANY, None)
        self.assertTrue(factory.close(None))

        # The interfaces' own close/stop, on backends no factory owns.
        memory = Es.SqliteStorage.new(None, 1, None)
        self.assertIsNone(memory.get_path())
        standalone = Es.SqliteNotifier.new(memory, 10)
        self.assertTrue(standalone.start(None))
        standalone.stop()
        standalone.stop()
        self.assertTrue(memory.close(None))
        with self.assertRaises(GLib.Error) as caught:
            memory.get_version("s", None)
        self.assertEsError(caught.exception, Es.Error.CLOSED)

        # A factory subclass attaches the backend it opened itself.
        class Attached(Es.StreamFactory):
            pass

        attached = Attached()
        attached_storage = Es.SqliteStorage.new(None, 1, None)
        attached.set_backend(attached_storage, None)
        self.assertIs(attached.get_storage(), attached_storage)
        attached.open_stream("a", None).write([event("A")], Es.VERSION_ANY, None)
        self.assertTrue(attached.close(None))

        no_notifier = Es.StreamFactory.new(Es.SqliteStorage.new(None, 1, None), None)
        self.assertIsNone(no_notifier.get_notifier())
        no_notifier.close(None)

    def test_every_property_readable(self):
        stream = self.factory.open_stream("props", None)
        stream.write([event("A")], Es.VERSION_ANY, None)
        stored = stream.read(0, None, None).next(None)
        objects = [self.factory, self.factory.get_storage(), self.factory.get_notifier(),
                   stream, stored, event("A"), stream.get_metrics(None), stream.watch(-1),
                   Es.Snapshot.new("s", "p", 1, GLib.Bytes.new(b""), None)]
        for obj in objects:
            for pspec in obj.list_properties():
                if pspec.flags & GObject.ParamFlags.READABLE:
                    obj.get_property(pspec.name)
        self.assertEqual(self.factory.props.pool_size, self.factory.get_storage().get_pool_size())
        self.assertGreater(self.factory.props.cache_size_kib, 0)
        self.assertEqual(self.factory.props.polling_interval, 0)


OVERRIDE_LOADED = hasattr(Es.EventEnumerator, "__iter__")


@unittest.skipUnless(OVERRIDE_LOADED, "the Es PyGObject override is not on PYTHONPATH")
class TestOverride(Base):
    def test_override(self):
        stream = self.factory.open_stream("o", None)
        stream.write([Es.CandidateEvent("Bytes", data=b"\x01"),
                      Es.CandidateEvent("Str", data="caf\u00e9", metadata={"n": 1}),
                      Es.CandidateEvent("Glib", data=GLib.Bytes.new(b"g"), idempotency_key="k")],
                     Es.VERSION_ANY, None)
        with stream.read(0, None, None) as enumerator:
            events = list(enumerator)
        self.assertTrue(enumerator.is_closed())
        self.assertEqual([e.data_bytes for e in events], [b"\x01", "caf\u00e9".encode(), b"g"])
        self.assertEqual(events[1].metadata_dict, {"n": 1})
        self.assertIsNone(events[0].metadata_dict)
        candidate = Es.CandidateEvent("M")
        candidate.set_metadata({"a": [1, 2]})
        self.assertEqual(candidate.get_metadata(), '{"a":[1,2]}')

        with Es.SqliteStreamFactory.new(None, None) as factory:
            self.assertFalse(factory.is_closed())
        self.assertTrue(factory.is_closed())


if __name__ == "__main__":
    unittest.main(verbosity=2)
