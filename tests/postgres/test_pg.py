#!/usr/bin/python3
# test_pg.py: the PostgreSQL backend from Python, through the typelib.
#
# Calls every PostgreSQL callable and property of Es-1.0.gir at least once
# (tests/bindings/check-coverage.py checks the callables): construction
# sync and async, getters and properties, a write/read round trip, the
# error mapping, a watch driven by a GLib main loop and fed by another
# factory (so only LISTEN/NOTIFY can wake it), a bad connection string,
# a hand-wired storage and notifier, and the `with` block of the PyGObject
# override.
#
# Run by meson (test 'pg-python'). setUpModule() starts a throwaway server
# (es_pg_test_server.py, through build-aux/pg-test-server, whose path is in
# ES_PG_TEST_SERVER) unless ES_TEST_PG_CONNINFO names one, and
# tearDownModule() stops it; without a server every test is skipped,
# saying why, and the program exits with 77 (meson's "skipped"). By hand:
#   ES_PG_TEST_SERVER=build-aux/pg-test-server GI_TYPELIB_PATH=_build/introspection \
#     LD_LIBRARY_PATH=_build/es-glib PYTHONPATH=introspection/python \
#     /usr/bin/python3 tests/postgres/test_pg.py -v
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import itertools
import os
import subprocess
import sys
import unittest

import gi

gi.require_version("GLib", "2.0")
gi.require_version("Es", "1.0")
gi.require_version("EsPg", "1.0")
from gi.repository import Es, EsPg, GLib  # noqa: E402

from es_pg_test_server import PgTestServer  # noqa: E402

# The life-cycle cases shared with the SQLite tests (tests/lifecycle_cases.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lifecycle_cases import LifecycleCases  # noqa: E402
from subscription_cases import SubscriptionCases  # noqa: E402

SERVER = PgTestServer()
# Set by setUpModule().
CONNINFO = None
# Only on our own throwaway server do tests touch the default schema.
OWN_SERVER = False
PASSWORD = "Pw-s3cret-42"
TIMEOUT_MS = 20000

_schemas = itertools.count(1)


def setUpModule():
    global CONNINFO, OWN_SERVER
    CONNINFO = SERVER.start()
    OWN_SERVER = SERVER.own
    if CONNINFO is None:
        SERVER.stop()
        raise unittest.SkipTest(SERVER.reason)


def tearDownModule():
    SERVER.stop()


def fresh_schema():
    return "es_py_%d_%d" % (os.getpid(), next(_schemas))


def event(event_type, data=b"", key=None, metadata=None):
    candidate = Es.CandidateEvent.new(event_type, GLib.Bytes.new(data))
    if key is not None:
        candidate.set_idempotency_key(key)
    if metadata is not None:
        candidate.set_metadata(metadata)
    return candidate


def read_all(stream, after=0, event_filter=None):
    enumerator = stream.read(after, event_filter, None)
    events = []
    while True:
        stored = enumerator.next(None)
        if stored is None:
            return events
        events.append(stored)


def run_async(start, finish):
    """Calls start(callback), runs a main loop until the callback, returns
    finish(result) or raises its GLib.Error."""
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


class PgTestCase(unittest.TestCase):
    def setUp(self):
        self.schema = fresh_schema()
        self.factory = self.new_factory()

    def tearDown(self):
        self.factory.close(None)
        del self.factory

    def new_factory(self, schema=None, pool_size=2):
        factory = EsPg.StreamFactory(conninfo=CONNINFO,
                                     schema=self.schema if schema is None else schema,
                                     pool_size=pool_size)
        factory.init(None)
        return factory

    def assertEsError(self, error, code):
        self.assertTrue(error.matches(Es.error_quark(), code),
                        "%s is not Es.Error %s" % (error, code))


class TestLifecycle(LifecycleCases, PgTestCase):
    """The stream life cycle (issue 16) on PostgreSQL: the cases of
    tests/lifecycle_cases.py."""

    def second_factory(self):
        return self.new_factory()


class TestSubscriptions(SubscriptionCases, PgTestCase):
    """Durable subscriptions (issue 17) on PostgreSQL: the cases of
    tests/subscription_cases.py."""

    def second_factory(self):
        return self.new_factory()

    def assertEsError(self, error, code, *named):
        LifecycleCases.assertEsError(self, error, code, *named)


class TestConstruction(PgTestCase):
    def test_getters_and_properties(self):
        factory = self.factory
        self.assertIsInstance(factory, EsPg.StreamFactory)
        self.assertIsInstance(factory, Es.StreamFactory)
        self.assertEqual(factory.get_conninfo(), CONNINFO)
        self.assertEqual(factory.get_schema(), self.schema)
        self.assertEqual(factory.props.conninfo, CONNINFO)
        self.assertEqual(factory.props.schema, self.schema)
        self.assertEqual(factory.props.pool_size, 2)

        storage = factory.get_storage()
        self.assertIsInstance(storage, EsPg.Storage)
        self.assertEqual(storage.get_conninfo(), CONNINFO)
        self.assertEqual(storage.get_schema(), self.schema)
        self.assertEqual(storage.get_pool_size(), 2)
        self.assertEqual(storage.props.conninfo, CONNINFO)
        self.assertEqual(storage.props.schema, self.schema)
        self.assertEqual(storage.props.pool_size, 2)

        notifier = factory.get_notifier()
        self.assertIsInstance(notifier, EsPg.Notifier)
        self.assertEqual(notifier.props.storage, storage)

    def test_property_defaults(self):
        for klass in (EsPg.StreamFactory, EsPg.Storage):
            specs = {spec.name: spec for spec in klass.list_properties()}
            self.assertEqual(specs["schema"].default_value, "es_glib")
            self.assertEqual(specs["pool-size"].default_value, 4)
            self.assertEqual(specs["pool-size"].minimum, 1)
            self.assertEqual(specs["pool-size"].maximum, 64)
            self.assertIn("conninfo", specs)

    def test_new_default_schema(self):
        if not OWN_SERVER:
            self.skipTest("uses the default schema: only on our own server")
        factory = EsPg.StreamFactory.new(CONNINFO, None)
        try:
            self.assertEqual(factory.get_schema(), "es_glib")
            self.assertEqual(factory.props.pool_size, 4)
            stream = factory.open_stream("py-default-%d" % os.getpid(), None)
            self.assertEqual(stream.write([event("A")], Es.VERSION_NO_STREAM, None), 1)
        finally:
            factory.close(None)

    def test_new_async(self):
        if not OWN_SERVER:
            self.skipTest("uses the default schema: only on our own server")
        factory = run_async(
            lambda done: EsPg.StreamFactory.new_async(CONNINFO, None, done, None),
            lambda source, result: EsPg.StreamFactory.new_finish(result))
        try:
            self.assertIsInstance(factory, EsPg.StreamFactory)
            self.assertEqual(factory.get_schema(), "es_glib")
            self.assertEqual(factory.open_stream("py-async-%d" % os.getpid(), None)
                             .get_version(), 0)
        finally:
            factory.close(None)

    def test_new_async_bad_conninfo(self):
        with self.assertRaises(GLib.Error) as caught:
            run_async(
                lambda done: EsPg.StreamFactory.new_async("host=/nonexistent port=1", None,
                                                          done, None),
                lambda source, result: EsPg.StreamFactory.new_finish(result))
        self.assertEsError(caught.exception, Es.Error.STORAGE)

    def test_async_initable(self):
        factory = EsPg.StreamFactory(conninfo=CONNINFO, schema=self.schema, pool_size=1)
        self.assertTrue(run_async(
            lambda done: factory.init_async(GLib.PRIORITY_DEFAULT, None, done, None),
            lambda source, result: source.init_finish(result)))
        try:
            self.assertEqual(factory.get_storage().get_pool_size(), 1)
            self.assertEqual(factory.open_stream("s", None).get_version(), 0)
        finally:
            factory.close(None)

    def test_bad_conninfo(self):
        for conninfo in ("host=/nonexistent port=1",
                         "not a conninfo ===",
                         "postgresql://es:%s@127.0.0.1:1/x" % PASSWORD,
                         "postgresql://es:%s@[::1:1/x" % PASSWORD):
            with self.subTest(conninfo=conninfo):
                with self.assertRaises(GLib.Error) as caught:
                    EsPg.StreamFactory.new(conninfo, None)
                self.assertEsError(caught.exception, Es.Error.STORAGE)
                self.assertNotIn(PASSWORD, caught.exception.message)

                with self.assertRaises(GLib.Error) as caught:
                    EsPg.Storage.new(conninfo, self.schema, 1, None)
                self.assertEsError(caught.exception, Es.Error.STORAGE)
                self.assertNotIn(PASSWORD, caught.exception.message)

    def test_invalid_schema(self):
        for schema in ("Upper", "it's", "x" * 49, ""):
            with self.subTest(schema=schema):
                with self.assertRaises(GLib.Error) as caught:
                    self.new_factory(schema=schema)
                self.assertEsError(caught.exception, Es.Error.INVALID_ARGUMENT)
                if schema:
                    self.assertIn(schema, caught.exception.message)
                with self.assertRaises(GLib.Error) as caught:
                    EsPg.Storage.new(CONNINFO, schema, 1, None)
                self.assertEsError(caught.exception, Es.Error.INVALID_ARGUMENT)


class TestStreams(PgTestCase):
    def test_write_read_round_trip(self):
        stream = self.factory.open_stream("cart-1", None)
        self.assertEqual(stream.get_version(), 0)
        version = stream.write([
            event("ItemAdded", b"\x00\x01binary\xff", "key-1", '{ "sku": "A-1",  "qty": 2 }'),
            event("ItemRemoved"),
        ], Es.VERSION_NO_STREAM, None)
        self.assertEqual(version, 2)
        self.assertEqual(stream.props.version, 2)

        first, second = read_all(stream)
        self.assertEqual(first.get_id(), "key-1")
        self.assertEqual(first.get_stream_id(), "cart-1")
        self.assertEqual((first.get_version(), second.get_version()), (1, 2))
        self.assertGreater(second.get_sequence_id(), first.get_sequence_id())
        self.assertEqual(first.get_event_type(), "ItemAdded")
        self.assertEqual(first.get_data().get_data(), b"\x00\x01binary\xff")
        self.assertEqual(first.get_metadata(), '{ "sku": "A-1",  "qty": 2 }')
        self.assertIsNone(second.get_metadata())
        self.assertEqual(first.get_timestamp().get_utc_offset(), 0)

        # Idempotency, filters, @all, snapshots and metrics.
        self.assertEqual(stream.write([event("ItemAdded", b"again", "key-1")],
                                      Es.VERSION_ANY, None), 2)
        event_filter = Es.EventFilter.new()
        event_filter.add_equals("metadata.sku", GLib.Variant("s", "A-1"))
        self.assertEqual([e.get_id() for e in read_all(stream, 0, event_filter)], ["key-1"])
        everything = read_all(self.factory.open_stream(Es.ALL_STREAM, None))
        self.assertEqual([e.get_version() for e in everything], [1, 2])
        self.assertTrue(stream.snapshot(GLib.Bytes.new(b"st\x00ate"), -1, None, None))
        self.assertEqual(stream.load_snapshot(None, None).get_state().get_data(), b"st\x00ate")
        self.assertEqual(stream.get_metrics(None).get_event_count(), 2)

    def test_async_write_and_read(self):
        stream = self.factory.open_stream("async", None)
        version = run_async(
            lambda done: stream.write_async([event("A"), event("B")], Es.VERSION_NO_STREAM,
                                            None, done, None),
            lambda source, result: source.write_finish(result))
        self.assertEqual(version, 2)
        enumerator = run_async(lambda done: stream.read_async(0, None, None, done, None),
                               lambda source, result: source.read_finish(result))
        self.assertEqual(len(enumerator.next_batch(10, None)), 2)

    def test_wrong_expected_version(self):
        stream = self.factory.open_stream("cart-7", None)
        stream.write([event("A")], Es.VERSION_ANY, None)
        with self.assertRaises(GLib.Error) as caught:
            stream.write([event("B")], 5, None)
        self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                 Es.Error.WRONG_EXPECTED_VERSION))
        self.assertIn("cart-7", caught.exception.message)

        # From another factory (another connection): the same error.
        other = self.new_factory()
        try:
            with self.assertRaises(GLib.Error) as caught:
                other.open_stream("cart-7", None).write([event("C")], Es.VERSION_NO_STREAM,
                                                        None)
            self.assertEsError(caught.exception, Es.Error.WRONG_EXPECTED_VERSION)
        finally:
            other.close(None)
        self.assertEqual(len(read_all(stream)), 1)

    def test_watch_main_loop(self):
        stream = self.factory.open_stream("live", None)
        stream.write([event("Old")], Es.VERSION_ANY, None)
        writer = self.new_factory(pool_size=1)
        remote = writer.open_stream("live", None)

        loop = GLib.MainLoop()
        seen = []
        caught_up = []
        errors = []

        def on_event(watch, stored):
            seen.append((stored.get_version(), stored.get_event_type()))
            if len(seen) == 3:
                loop.quit()

        def on_caught_up(watch):
            caught_up.append(len(seen))
            # Another factory writes: only LISTEN/NOTIFY wakes this one.
            remote.write([event("New1"), event("New2")], Es.VERSION_ANY, None)

        def on_error(watch, error):
            errors.append(error)
            loop.quit()

        watch = stream.watch(0)
        watch.connect("event", on_event)
        watch.connect("caught-up", on_caught_up)
        watch.connect("error", on_error)
        timeout = GLib.timeout_add(TIMEOUT_MS, loop.quit)
        loop.run()
        GLib.source_remove(timeout)
        try:
            self.assertEqual(errors, [])
            self.assertEqual(caught_up, [1])
            self.assertEqual(seen, [(1, "Old"), (2, "New1"), (3, "New2")])
            self.assertEqual(watch.get_last_version(), 3)
            self.assertTrue(watch.get_active())
            watch.stop()
            self.assertFalse(watch.get_active())
        finally:
            writer.close(None)

    @unittest.skipUnless(os.environ.get("ES_PG_WRITER"), "ES_PG_WRITER is not set")
    def test_writer_process(self):
        subprocess.run([os.environ["ES_PG_WRITER"], CONNINFO, self.schema, "from-process",
                        "6", "3"], check=True, stdout=subprocess.DEVNULL)
        events = read_all(self.factory.open_stream("from-process", None))
        self.assertEqual([e.get_version() for e in events], [1, 2, 3, 4, 5, 6])
        self.assertEqual({e.get_event_type() for e in events}, {"written"})


class TestHandWired(PgTestCase):
    def test_storage_and_notifier(self):
        storage = EsPg.Storage.new(CONNINFO, self.schema, 2, None)
        self.assertEqual(storage.get_schema(), self.schema)
        self.assertEqual(storage.get_pool_size(), 2)
        notifier = EsPg.Notifier.new(storage)
        self.assertEqual(notifier.props.storage, storage)
        self.assertTrue(notifier.start(None))
        factory = Es.StreamFactory.new(storage, notifier)
        try:
            self.assertEqual(factory.get_storage(), storage)
            stream = factory.open_stream("wired", None)
            self.assertEqual(stream.write([event("A", b"1")], Es.VERSION_ANY, None), 1)
            ok, version = storage.get_version("wired", None)
            self.assertTrue(ok)
            self.assertEqual(version, 1)
            page = storage.read_page(None, 0, None, 10, None)
            self.assertEqual([e.get_stream_id() for e in page], ["wired"])
            self.assertGreaterEqual(notifier.get_last_sequence_id(), 0)
        finally:
            factory.close(None)
        with self.assertRaises(GLib.Error) as caught:
            storage.get_version("wired", None)
        self.assertEsError(caught.exception, Es.Error.CLOSED)


# The PyGObject override (introspection/python/gi/overrides/Es.py), loaded
# when PYTHONPATH reaches it, as meson arranges.
OVERRIDE_LOADED = hasattr(Es.StreamFactory, "__enter__")


@unittest.skipUnless(OVERRIDE_LOADED, "the Es PyGObject override is not on PYTHONPATH")
class TestAsyncio(PgTestCase):
    """The override's asyncio layer on PostgreSQL (tests/test_asyncio.py
    has the rest): the factory awaited and closed by async with, a write,
    a read and a watch woken by LISTEN/NOTIFY from another factory."""

    @unittest.skipUnless(OWN_SERVER, "uses the default schema: only on our own server")
    def test_await_and_async_for(self):
        stream_id = "py-asyncio-%d" % os.getpid()

        async def main():
            async with EsPg.StreamFactory.new_async(CONNINFO) as factory:
                self.assertIsInstance(factory, EsPg.StreamFactory)
                stream = await factory.open_stream_async(stream_id)
                self.assertEqual(await stream.write_async([event("A"), event("B")],
                                                          Es.VERSION_NO_STREAM), 2)
                self.assertEqual([e.get_version() async for e in stream.read_async(0)], [1, 2])

                other = EsPg.StreamFactory.new(CONNINFO, None)
                seen = []
                async for stored in stream.watch(0):
                    seen.append(stored.get_version())
                    if stored.get_version() == 2:
                        # Only the notification can bring this one.
                        other.open_stream(stream_id, None).write([event("C")], 2, None)
                    if stored.get_version() == 3:
                        break
                other.close(None)
                with self.assertRaises(GLib.Error) as caught:
                    await stream.write_async([event("D")], 1)
                self.assertEsError(caught.exception, Es.Error.WRONG_EXPECTED_VERSION)
                return seen, factory

        with asyncio.Runner(loop_factory=Es.new_event_loop) as runner:
            seen, factory = runner.run(asyncio.wait_for(main(), TIMEOUT_MS / 1000))
        self.assertEqual(seen, [1, 2, 3])
        self.assertTrue(factory.is_closed())


class TestOverride(PgTestCase):
    def test_with_block(self):
        with self.new_factory() as factory:
            self.assertIsInstance(factory, EsPg.StreamFactory)
            stream = factory.open_stream("ctx", None)
            stream.write([Es.CandidateEvent("A", data="caf\u00e9", metadata={"n": 1})],
                         Es.VERSION_ANY, None)
            with stream.read(0, None, None) as enumerator:
                events = list(enumerator)
            self.assertEqual(events[0].data_bytes, "caf\u00e9".encode("utf-8"))
            self.assertEqual(events[0].metadata_dict, {"n": 1})
        self.assertTrue(factory.is_closed())
        with self.assertRaises(GLib.Error) as caught:
            factory.open_stream("ctx", None)
        self.assertEsError(caught.exception, Es.Error.CLOSED)

    def test_with_block_on_error(self):
        with self.assertRaises(GLib.Error):
            with self.new_factory() as factory:
                factory.open_stream("ctx", None).write([event("A")], 7, None)
        self.assertTrue(factory.is_closed())


if __name__ == "__main__":
    program = unittest.main(verbosity=2, exit=False)
    if not program.result.wasSuccessful():
        sys.exit(1)
    # Everything skipped: tell meson.
    sys.exit(0 if CONNINFO else 77)
