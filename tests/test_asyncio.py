#!/usr/bin/python3
# test_asyncio.py: es-glib from asyncio programs (the override's
# _es_asyncio.py): the loop shared with GLib, every awaitable FOO_async,
# async for over enumerators, reads and watches, async with, cancellation,
# errors. Each test runs its coroutine with asyncio.run() (debug mode).
#
# Run by meson (suite python) as `python3 -X dev -W error`, so any warning
# (a coroutine never awaited, an unclosed resource, a slow callback is only
# logged) fails the test. By hand, from a build tree:
#   meson devenv -C _build -w . /usr/bin/python3 -X dev -W error tests/test_asyncio.py -v
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import faulthandler
import os
import sys
import tempfile
import threading
import unittest
import warnings

import gi

gi.require_version("GLib", "2.0")
gi.require_version("Es", "1.0")
with warnings.catch_warnings():
    # PyGObject 3.42's importer falls back to load_module(), an
    # ImportWarning that -W error would turn into a failed import.
    warnings.simplefilter("ignore", ImportWarning)
    from gi.repository import Es, Gio, GLib, GObject  # noqa: E402
    from gi.overrides import _es_asyncio  # noqa: E402

asyncio.set_event_loop_policy(Es.EventLoopPolicy())

TIMEOUT = 60  # seconds; generous for a loaded 2-core machine

# Every FOO_async/FOO_finish pair of the typelib that this file awaits (the
# PostgreSQL factory's new_async is awaited in tests/postgres/test_pg.py).
# test_every_pair_is_awaited fails when the typelib grows a pair that is
# not in this set: add a test that awaits it.
AWAITED = {
    ("SqliteStreamFactory", "new_async"),
    ("StreamFactory", "open_stream_async"),
    ("StreamFactory", "close_async"),
    ("Stream", "write_async"),
    ("Stream", "read_async"),
    ("Stream", "snapshot_async"),
    ("Stream", "load_snapshot_async"),
    ("Stream", "get_metrics_async"),
    ("EventEnumerator", "next_batch_async"),
    ("StorageHandle", "append_async"),
    ("Stream", "query_version_async"),  # since 0.2, when the typelib has it
    # The stream life cycle (since 0.2): TestLifeCycle below, and
    # tests/lifecycle_cases.py on every backend.
    ("StreamFactory", "list_streams_async"),
    ("StreamFactory", "get_stream_info_async"),
    ("StreamFactory", "delete_stream_async"),
    ("StreamFactory", "truncate_stream_async"),
    ("StreamFactory", "erase_event_async"),
    ("StreamFactory", "set_retention_async"),
    ("StreamFactory", "sweep_async"),
    ("StreamFactory", "compact_async"),
    ("StreamInfoEnumerator", "next_batch_async"),
    ("Stream", "read_backwards_async"),
    # Durable subscriptions (since 0.2): tests/subscription_cases.py on
    # every backend.
    ("Subscription", "start_async"),
    ("Subscription", "stop_async"),
    ("Subscription", "save_state_async"),
    ("Subscription", "flush_async"),
    ("StreamFactory", "list_subscriptions_async"),
    ("StreamFactory", "get_subscription_info_async"),
    ("StreamFactory", "reset_subscription_async"),
    ("StreamFactory", "delete_subscription_async"),
    # Backup, check, export and import (since 0.2): TestOperations below.
    ("StreamFactory", "backup_async"),
    ("StreamFactory", "check_async"),
    ("StreamFactory", "export_events_async"),
    ("StreamFactory", "import_events_async"),
    # The cursor (since 0.2): test_cursor below.
    ("Stream", "read_cursor_async"),
    ("EventCursor", "next_async"),
}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT), debug=True)


def events(*types, **kwargs):
    return [Es.CandidateEvent(event_type, **kwargs) for event_type in types]


def is_cancelled_error(error):
    return error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED)


class AsyncTestCase(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="es-asyncio-")
        self.path = os.path.join(self.tmpdir.name, "events.db")

    def tearDown(self):
        self.tmpdir.cleanup()

    def stored_version(self, stream_id):
        """The stream's version as stored, through a separate sync factory."""
        with Es.SqliteStreamFactory.new(self.path, None) as factory:
            metrics = factory.open_stream(stream_id, None).get_metrics(None)
            return metrics.get_current_version()


class TestLoop(AsyncTestCase):
    def test_integration_in_use(self):
        expected = "gi.events" if _has_gi_events() else "es-glib"
        self.assertEqual(Es.LOOP_INTEGRATION, expected)

        async def main():
            loop = asyncio.get_running_loop()
            if Es.LOOP_INTEGRATION == "es-glib":
                self.assertIsInstance(loop, Es.GLibEventLoop)
                self.assertEqual(hash(loop.glib_context), hash(GLib.MainContext.default()))
            return True

        self.assertTrue(run(main()))

    def test_glib_and_asyncio_callbacks_interleave(self):
        async def main():
            loop = asyncio.get_running_loop()
            seen = []
            idle_done = loop.create_future()

            def idle():
                seen.append("glib idle")
                idle_done.set_result(None)
                return GLib.SOURCE_REMOVE

            GLib.idle_add(idle)
            await idle_done
            # An asyncio timer while GLib has nothing to do.
            await asyncio.sleep(0.01)
            seen.append("asyncio timer")
            # A GLib timeout while asyncio has nothing to do.
            timeout_done = loop.create_future()
            GLib.timeout_add(10, lambda: timeout_done.set_result(None) or GLib.SOURCE_REMOVE)
            await timeout_done
            seen.append("glib timeout")
            # Another thread waking the loop.
            woken = loop.create_future()
            threading.Thread(target=loop.call_soon_threadsafe,
                             args=(woken.set_result, "thread")).start()
            seen.append(await woken)
            return seen

        self.assertEqual(run(main()), ["glib idle", "asyncio timer", "glib timeout", "thread"])

    def test_loop_in_another_thread(self):
        # A loop in a non-main thread dispatches its own GLib context, made
        # the thread's default while it runs: the write completes there.
        answers = []

        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("threaded")
                version = await stream.write_async(events("A", "B"), Es.VERSION_ANY)
                return version, threading.current_thread() is threading.main_thread()

        thread = threading.Thread(target=lambda: answers.append(run(main())))
        thread.start()
        thread.join(TIMEOUT)
        self.assertEqual(answers, [(2, False)])

    def test_a_loop_without_glib_is_refused(self):
        async def main():
            await Es.SqliteStreamFactory.new_async(None)

        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            with self.assertRaisesRegex(RuntimeError, "EventLoopPolicy"):
                runner.run(main())

    def test_loop_factory(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s")
                return await stream.write_async(events("A"), Es.VERSION_ANY)

        with asyncio.Runner(loop_factory=Es.new_event_loop) as runner:
            self.assertEqual(runner.run(main()), 1)


def _has_gi_events():
    try:
        import gi.events  # noqa: F401
    except ImportError:
        return False
    return True


class TestAwaitables(AsyncTestCase):
    def test_every_pair_is_awaited(self):
        import gi._gi as _gi

        pairs = set()
        for info in _gi.Repository.get_default().get_infos("Es"):
            if isinstance(info, (_gi.ObjectInfo, _gi.InterfaceInfo)):
                for pair in _es_asyncio._async_pairs(info):
                    pairs.add((info.get_name(), pair.async_name))
                    # Installed on the class Python sees.
                    method = getattr(getattr(Es, info.get_name()), pair.async_name)
                    self.assertIn("returns an awaitable", method.__doc__)
        self.assertIn(("Stream", "write_async"), pairs)
        self.assertEqual(pairs - AWAITED, set(),
                         "async pairs without a test in test_asyncio.py")

    def test_factory_stream_and_storage(self):
        async def main():
            factory = await Es.SqliteStreamFactory.new_async(self.path)
            self.assertIsInstance(factory, Es.SqliteStreamFactory)
            self.assertEqual(factory.get_path(), self.path)
            stream = await factory.open_stream_async("cart-7")
            self.assertIsInstance(stream, Es.Stream)
            self.assertEqual(stream.get_stream_id(), "cart-7")

            version = await stream.write_async(
                [Es.CandidateEvent("ItemAdded", data='{"sku": "tea"}', idempotency_key="k1",
                                   metadata={"user": "ada"}),
                 Es.CandidateEvent("ItemAdded", data=b"\x00\x01")],
                Es.VERSION_NO_STREAM)
            self.assertEqual(version, 2)
            self.assertEqual(stream.get_version(), 2)
            # Idempotent: the repeated key is skipped.
            again = await stream.write_async(
                [Es.CandidateEvent("ItemAdded", idempotency_key="k1")], Es.VERSION_ANY)
            self.assertEqual(again, 2)

            # The backend's own pair, through the factory's storage.
            storage = factory.get_storage()
            appended = await storage.append_async("cart-8", Es.VERSION_NO_STREAM,
                                                  events("Direct"))
            self.assertEqual(tuple(appended), (True, 1))

            metrics = await stream.get_metrics_async()
            self.assertEqual((metrics.get_current_version(), metrics.get_event_count()), (2, 2))
            self.assertIsNotNone(metrics.get_last_timestamp())

            self.assertIsNone(await stream.load_snapshot_async())
            self.assertTrue(await stream.snapshot_async(GLib.Bytes.new(b"state-2"), -1))
            self.assertTrue(await stream.snapshot_async(GLib.Bytes.new(b"other"), 1, "p2"))
            snapshot = await stream.load_snapshot_async()
            self.assertEqual((snapshot.get_version(), snapshot.get_projection_name(),
                              snapshot.get_state().get_data()), (2, "default", b"state-2"))
            snapshot = await stream.load_snapshot_async("p2")
            self.assertEqual((snapshot.get_version(), snapshot.get_state().get_data()),
                             (1, b"other"))

            enumerator = await stream.read_async(0)
            first = await enumerator.next_batch_async(1)
            rest = await enumerator.next_batch_async(10)
            end = await enumerator.next_batch_async(10)
            self.assertEqual([e.get_version() for e in first + rest], [1, 2])
            self.assertEqual(first[0].data_bytes, b'{"sku": "tea"}')
            self.assertEqual(first[0].metadata_dict, {"user": "ada"})
            self.assertEqual(end, [])
            enumerator.close(None)

            self.assertTrue(await factory.close_async())
            self.assertTrue(factory.is_closed())
            return True

        self.assertTrue(run(main()))

    def test_cursor(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events(*("T%d" % (i % 3) for i in range(1100))),
                                         Es.VERSION_ANY)
                cursor = await stream.read_cursor_async(5)
                rows = []
                while await cursor.next_async():
                    rows.append((cursor.get_version(), cursor.get_event_type()))
                self.assertEqual(rows, [(v, "T%d" % ((v - 1) % 3)) for v in range(6, 1101)])
                # The end stays the end.
                self.assertFalse(await cursor.next_async())
                return True

        self.assertTrue(run(main()))

    @unittest.skipUnless(hasattr(Es.Stream, "query_version_async"),
                         "the typelib has no Es.Stream.query_version_async")
    def test_query_version(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                mine = await factory.open_stream_async("s")
                theirs = await factory.open_stream_async("s")
                await theirs.write_async(events("A", "B"), Es.VERSION_ANY)
                return mine.get_version(), await mine.query_version_async()

        self.assertEqual(run(main()), (0, 2))

    def test_arguments(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s", None)
                # Positional cancellable, keyword cancellable, left out.
                await stream.write_async(events("A"), Es.VERSION_ANY, Gio.Cancellable())
                await stream.write_async(events("B"), Es.VERSION_ANY,
                                         cancellable=Gio.Cancellable())
                with self.assertRaisesRegex(TypeError, "at least 2 arguments"):
                    stream.write_async(events("C"))
                with self.assertRaisesRegex(TypeError, "unexpected keyword"):
                    stream.write_async(events("C"), Es.VERSION_ANY, colour="red")
                # With a callback, the plain GIO call, unchanged.
                done = asyncio.get_running_loop().create_future()
                stream.write_async(events("C"), Es.VERSION_ANY, None,
                                   lambda s, r: done.set_result(s.write_finish(r)))
                self.assertEqual(await done, 3)
                # A coroutine, so tasks and gather take it.
                task = asyncio.create_task(stream.get_metrics_async())
                metrics, snapshot = await asyncio.gather(task, stream.load_snapshot_async())
                self.assertEqual(metrics.get_current_version(), 3)
                self.assertIsNone(snapshot)
                return True

        self.assertTrue(run(main()))

    def test_concurrent_writes_through_gather(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                streams = [await factory.open_stream_async("s-%d" % i) for i in range(4)]
                versions = await asyncio.gather(*[
                    s.write_async(events(*["E"] * 50), Es.VERSION_NO_STREAM)
                    for s in streams])
                metrics = await (await factory.open_stream_async(Es.ALL_STREAM)).get_metrics_async()
                return versions, metrics.get_event_count()

        self.assertEqual(run(main()), ([50] * 4, 200))


class TestOperations(AsyncTestCase):
    """Backup, check, export and import awaited; the progress callback
    (between the cancellable and the callback) is left out."""

    def test_operations_awaitables(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("ops")
                await stream.write_async(events("A", "B"), Es.VERSION_NO_STREAM)
                backup = self.path + ".backup"
                done = await factory.backup_async(Gio.File.new_for_path(backup),
                                                  Es.BackupFlags.NONE)
                report = await factory.check_async(Es.CheckFlags.QUICK)
                out = Gio.MemoryOutputStream.new_resizable()
                exported = await factory.export_events_async(out, None, None,
                                                             Es.ExportFlags.NONE)
                out.close(None)
                text = out.steal_as_bytes()
                async with Es.SqliteStreamFactory.new_async(self.path + ".copy") as copy:
                    imported = await copy.import_events_async(
                        Gio.MemoryInputStream.new_from_bytes(text), Es.ImportFlags.NONE)
                    copied = (await copy.get_stream_info_async("ops")).get_current_version()
                return done, os.path.exists(backup), report.is_ok(), exported, imported, copied

        self.assertEqual(run(main()), (True, True, True, 2, 2, 2))


class TestLifeCycle(AsyncTestCase):
    """The life-cycle awaitables (since 0.2), and async for over a listing."""

    def test_life_cycle_awaitables(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                for name in ("log-a", "log-b", "other"):
                    stream = await factory.open_stream_async(name)
                    await stream.write_async(events("A", "B", "C", "D"), Es.VERSION_NO_STREAM)
                # async for straight on the call: the enumerator is closed after.
                listed = [(info.get_stream_id(), info.get_event_count()) async for info in
                          factory.list_streams_async("log-", Es.ListStreamsFlags.NONE)]
                enumerator = await factory.list_streams_async(None, Es.ListStreamsFlags.NONE)
                first_page = await enumerator.next_batch_async(2)
                async with enumerator:
                    rest = [info.get_stream_id() async for info in enumerator]
                closed = enumerator.is_closed()

                stream = await factory.open_stream_async("log-a")
                newest = [e.get_event_type() async for e in
                          stream.read_backwards_async(Es.READ_FROM_END)]
                await factory.truncate_stream_async("log-a", 3)
                await factory.erase_event_async("log-a", 3)
                await factory.set_retention_async("log-b", 0, 1)
                await factory.set_retention_async(None, 0, 3)
                removed = await factory.sweep_async()
                await factory.delete_stream_async("other", 4, Es.DeleteFlags.TOMBSTONE)
                try:
                    await (await factory.open_stream_async("other")).write_async(
                        events("E"), Es.VERSION_ANY)
                    refused = None
                except GLib.Error as error:
                    refused = error
                await factory.compact_async()
                infos = [await factory.get_stream_info_async(name)
                         for name in ("log-a", "log-b", "other")]
                kept = [(e.get_version(), e.get_erased()) async for e in stream.read_async(0)]
                return (listed, [i.get_stream_id() for i in first_page], rest, closed, newest,
                        removed, refused, [(i.get_state(), i.get_event_count()) for i in infos],
                        kept)

        (listed, first_page, rest, closed, newest, removed, refused, infos,
         kept) = run(main())
        self.assertEqual(listed, [("log-a", 4), ("log-b", 4)])
        self.assertEqual(first_page, ["log-a", "log-b"])
        self.assertEqual(rest, ["other"])
        self.assertTrue(closed)
        self.assertEqual(newest, ["D", "C", "B", "A"])
        self.assertEqual(removed, 0)  # set_retention enforced both policies at once
        self.assertTrue(refused.matches(Es.error_quark(), Es.Error.STREAM_DELETED))
        self.assertIn("other", refused.message)
        self.assertEqual(infos, [(Es.StreamState.ACTIVE, 2), (Es.StreamState.ACTIVE, 1),
                                 (Es.StreamState.TOMBSTONED, 0)])
        self.assertEqual(kept, [(3, True), (4, False)])

    def test_cancelled_delete_deletes_nothing(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events("A", "B"), Es.VERSION_NO_STREAM)
                cancellable = Gio.Cancellable.new()
                cancellable.cancel()
                try:
                    await factory.delete_stream_async("s", Es.VERSION_ANY, Es.DeleteFlags.NONE,
                                                      cancellable)
                    outcome = "deleted"
                except asyncio.CancelledError:
                    outcome = "cancelled"
                except GLib.Error as error:
                    outcome = "cancelled" if is_cancelled_error(error) else error.message
                info = await factory.get_stream_info_async("s")
                return outcome, info.get_state(), info.get_event_count()

        outcome, state, count = run(main())
        # Either the cancellation came first and nothing changed, or the
        # delete was past the point of no return and is complete.
        if outcome == "cancelled":
            self.assertEqual((state, count), (Es.StreamState.ACTIVE, 2))
        else:
            self.assertEqual((outcome, state, count), ("deleted", Es.StreamState.DELETED, 0))


class TestStub(unittest.TestCase):
    def test_stub_declares_the_override(self):
        import ast

        stub = os.path.join(os.path.dirname(_es_asyncio.__file__), "Es.pyi")
        with open(stub, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        classes = {node.name: {item.name for item in node.body
                               if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
                   for node in tree.body if isinstance(node, ast.ClassDef)}
        for name in ("EventLoopPolicy", "GLibEventLoop", "Stream", "EventEnumerator", "Watch",
                     "StreamInfo", "StreamInfoEnumerator"):
            self.assertTrue(hasattr(Es, name), name)
        self.assertIn("write_async", classes["Stream"])
        self.assertIn("read_backwards_async", classes["Stream"])
        self.assertIn("__aiter__", classes["StreamInfoEnumerator"])
        for name in ("list_streams_async", "get_stream_info_async", "delete_stream_async",
                     "truncate_stream_async", "erase_event_async", "set_retention_async",
                     "sweep_async", "compact_async"):
            self.assertIn(name, classes["StreamFactory"])
        self.assertIn("add_time_range", classes["EventFilter"])
        self.assertIn("__aiter__", classes["Watch"])
        self.assertIn("__aexit__", classes["StreamFactory"])
        for name in ("__aiter__", "__aenter__", "__enter__", "position_of", "start_async",
                     "save_state_async"):
            self.assertIn(name, classes["Subscription"])
        for name in ("list_subscriptions_async", "reset_subscription_async"):
            self.assertIn(name, classes["StreamFactory"])


class TestPythonValues(AsyncTestCase):
    """The conveniences the migration guide uses: bytes for GLib.Bytes
    arguments, plain Python values in filters."""

    def test_snapshot_state_as_bytes(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events("A"), Es.VERSION_ANY)
                await stream.snapshot_async(b"\x00raw", -1, "bytes")
                await stream.snapshot_async("text \u00e9", -1, "str")
                stream.snapshot(bytearray(b"sync"), -1, "sync", None)
                return [(await stream.load_snapshot_async(p)).get_state().get_data()
                        for p in ("bytes", "str", "sync")]

        self.assertEqual(run(main()), [b"\x00raw", "text \u00e9".encode(), b"sync"])
        with self.assertRaisesRegex(TypeError, "json.dumps"):
            run(self._snapshot_dict())

    async def _snapshot_dict(self):
        async with Es.SqliteStreamFactory.new_async(None) as factory:
            stream = await factory.open_stream_async("s")
            await stream.snapshot_async({"count": 1}, -1)

    def test_filter_values(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async([
                    Es.CandidateEvent("A", metadata={"n": 1, "ok": True, "x": 1.5, "r": "EU"}),
                    Es.CandidateEvent("B", metadata={"n": 2, "ok": False, "x": 2.5, "r": "US"}),
                    Es.CandidateEvent("C", metadata={"n": 3, "ok": True, "x": 3.0, "r": "EU"}),
                ], Es.VERSION_ANY)

                async def versions(*clauses):
                    event_filter = Es.EventFilter.new()
                    for method, field, value in clauses:
                        getattr(event_filter, method)(field, value)
                    return [e.get_version() async for e in stream.read_async(0, event_filter)]

                return [
                    await versions(("add_equals", "metadata.r", "EU")),
                    await versions(("add_equals", "metadata.ok", True)),
                    await versions(("add_equals", "metadata.n", 2)),
                    await versions(("add_equals", "metadata.x", 3.0)),
                    await versions(("add_in", "event_type", ["A", "C"])),
                    await versions(("add_in", "metadata.x", [1.5, 3])),
                    await versions(("add_in", "version", GLib.Variant("ax", [2, 3]))),
                    await versions(("add_equals", "version", GLib.Variant("x", 1))),
                ]

        self.assertEqual(run(main()), [[1, 3], [1, 3], [2], [3], [1, 3], [1, 3], [2, 3], [1]])
        event_filter = Es.EventFilter.new()
        with self.assertRaisesRegex(TypeError, "one type"):
            event_filter.add_in("metadata.n", [1, "one"])
        with self.assertRaisesRegex(TypeError, "not list"):
            event_filter.add_equals("metadata.n", [1])


class TestErrors(AsyncTestCase):
    def test_errors_are_glib_errors(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events("A"), Es.VERSION_ANY)

                with self.assertRaises(GLib.Error) as caught:
                    await stream.write_async(events("B"), 5)
                self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                         Es.Error.WRONG_EXPECTED_VERSION))
                self.assertIn("'s'", caught.exception.message)

                with self.assertRaises(GLib.Error) as caught:
                    await stream.write_async([Es.CandidateEvent("X", metadata="[1]")],
                                             Es.VERSION_ANY)
                self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                         Es.Error.INVALID_ARGUMENT))

                all_events = await factory.open_stream_async(Es.ALL_STREAM)
                with self.assertRaises(GLib.Error) as caught:
                    await all_events.write_async(events("A"), Es.VERSION_ANY)
                self.assertEqual((caught.exception.domain, caught.exception.code),
                                 (GLib.quark_to_string(Es.error_quark()),
                                  int(Es.Error.INVALID_ARGUMENT)))

                bad = Es.EventFilter.new()
                bad.add_equals("colour", GLib.Variant("s", "red"))
                with self.assertRaises(GLib.Error) as caught:
                    async for _event in all_events.read_async(0, bad):
                        pass
                self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                         Es.Error.INVALID_ARGUMENT))

                # A cancellable of the caller's, cancelled: GIO's error.
                cancellable = Gio.Cancellable()
                cancellable.cancel()
                with self.assertRaises(GLib.Error) as caught:
                    await stream.write_async(events("C"), Es.VERSION_ANY, cancellable)
                self.assertTrue(is_cancelled_error(caught.exception))
                self.assertEqual(stream.get_version(), 1)
            with self.assertRaises(GLib.Error) as caught:
                await factory.open_stream_async("s")
            self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.CLOSED))
            return True

        self.assertTrue(run(main()))

    def test_not_a_database(self):
        with open(self.path, "wb") as f:
            f.write(b"not a database, " * 512)

        async def main():
            with self.assertRaises(GLib.Error) as caught:
                await Es.SqliteStreamFactory.new_async(self.path)
            self.assertTrue(caught.exception.matches(Es.error_quark(), Es.Error.STORAGE))
            return True

        self.assertTrue(run(main()))


class TestIteration(AsyncTestCase):
    N = 2500  # more than two pages of next_batch_async()

    async def filled(self, factory):
        stream = await factory.open_stream_async("counter")
        await stream.write_async([Es.CandidateEvent("Incremented", data=str(n))
                                  for n in range(1, self.N + 1)], Es.VERSION_ANY)
        other = await factory.open_stream_async("other")
        await other.write_async(events("Unrelated"), Es.VERSION_ANY)
        return stream

    def test_async_for_over_read(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await self.filled(factory)
                seen = [int(e.data_bytes) async for e in stream.read_async(0)]
                self.assertEqual(seen, list(range(1, self.N + 1)))
                tail = [e.get_version() async for e in stream.read_async(self.N - 2)]
                self.assertEqual(tail, [self.N - 1, self.N])

                # An enumerator: async with closes it, also after a break.
                async with await stream.read_async(0) as enumerator:
                    async for event in enumerator:
                        if event.get_version() == 1500:
                            break
                    self.assertFalse(enumerator.is_closed())
                self.assertTrue(enumerator.is_closed())

                # Filtered, on @all.
                only = Es.EventFilter.new()
                only.add_equals("event_type", GLib.Variant("s", "Unrelated"))
                all_events = await factory.open_stream_async(Es.ALL_STREAM)
                found = [(e.get_stream_id(), e.get_sequence_id())
                         async for e in all_events.read_async(0, only)]
                self.assertEqual(found, [("other", self.N + 1)])
                return True

        self.assertTrue(run(main()))

    def test_async_for_over_read_closes_its_enumerator(self):
        closed = []
        original = Es.EventEnumerator.close

        def spy(enumerator, cancellable):
            closed.append(enumerator.is_closed())
            return original(enumerator, cancellable)

        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await self.filled(factory)
                async for _event in stream.read_async(0):
                    pass
                self.assertEqual(closed, [False])
                async for event in stream.read_async(0):
                    if event.get_version() == 3:
                        break
                self.assertEqual(closed, [False, False])
                return True

        Es.EventEnumerator.close = spy
        try:
            self.assertTrue(run(main()))
        finally:
            Es.EventEnumerator.close = original

    def test_async_with_factory_call(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                self.assertFalse(factory.is_closed())
            self.assertTrue(factory.is_closed())
            # async with on a factory object.
            factory = Es.SqliteStreamFactory.new(self.path, None)
            async with factory as same:
                self.assertIs(same, factory)
            self.assertTrue(factory.is_closed())
            # An exception inside closes too, and goes through.
            with self.assertRaises(KeyError):
                async with Es.SqliteStreamFactory.new_async(None) as factory:
                    raise KeyError("inside")
            self.assertTrue(factory.is_closed())
            return True

        self.assertTrue(run(main()))


class TestWatch(AsyncTestCase):
    def test_history_then_live_then_stop(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("thermostat")
                await stream.write_async(events("Set", "Set", "Set"), Es.VERSION_ANY)
                watch = stream.watch(1)
                seen = []
                async for event in watch:
                    seen.append((event.get_version(), watch.get_caught_up()))
                    if event.get_version() == 3:
                        # History delivered; now live.
                        await stream.write_async(events("Set", "Set"), Es.VERSION_ANY)
                    if event.get_version() == 5:
                        watch.stop()
                self.assertEqual([v for v, _ in seen], [2, 3, 4, 5])
                self.assertTrue(seen[-1][1])
                self.assertFalse(watch.get_active())
                # A stopped watch iterates nothing.
                self.assertEqual([e async for e in watch], [])
                return True

        self.assertTrue(run(main()))

    def test_async_with_stops_and_factory_close_ends(self):
        async def main():
            factory = await Es.SqliteStreamFactory.new_async(self.path)
            stream = await factory.open_stream_async("s")
            async with stream.watch(0) as watch:
                self.assertTrue(watch.get_active())
            self.assertFalse(watch.get_active())

            # Closing the factory ends the iteration cleanly.
            watch = stream.watch(-1)

            async def close_soon():
                await asyncio.sleep(0.05)
                await factory.close_async()

            closer = asyncio.create_task(close_soon())
            seen = [e async for e in watch]
            await closer
            self.assertEqual(seen, [])
            self.assertFalse(watch.get_active())
            return True

        self.assertTrue(run(main()))

    def test_leaving_the_loop_stops_the_watch(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events("A", "B"), Es.VERSION_ANY)
                watch = stream.watch(0)
                async for _event in watch:
                    break
                return watch.get_active()

        self.assertFalse(run(main()))

    def test_dropping_watches_while_events_arrive(self):
        # A task watches until its 5th event (3 stored, 2 live) and leaves
        # the loop, dropping the watch at once. The watch's last reference
        # used to go with the GIL held, its dispose waiting for the
        # notifier thread, itself waiting for the GIL to finalize an event
        # Python had seen: a deadlock in about 1 round in 7 (faulthandler
        # then shows it and ends the test).
        async def consume(factory, stream_id, live):
            stream = await factory.open_stream_async(stream_id)
            seen = []
            watch = stream.watch(0)
            watch.connect("caught-up", lambda _watch: live.set())
            async for event in watch:
                seen.append(event.get_version())
                if len(seen) == 5:
                    break
            del watch
            return seen

        async def main():
            for round_ in range(150):
                # A new factory, so a new notifier thread, each round.
                path = os.path.join(self.tmpdir.name, "round-%d.db" % round_)
                async with Es.SqliteStreamFactory.new_async(path) as factory:
                    stream = await factory.open_stream_async("s")
                    await stream.write_async(events("A", "B", "C"), Es.VERSION_ANY)
                    live = asyncio.Event()
                    task = asyncio.create_task(consume(factory, "s", live))
                    await live.wait()  # 4 and 5 come live, through the notifier
                    await stream.write_async(events("D", "E"), Es.VERSION_ANY)
                    self.assertEqual(await task, [1, 2, 3, 4, 5])
            return True

        faulthandler.dump_traceback_later(TIMEOUT, exit=True)
        try:
            # Not in debug mode: its checks slow the loop down enough to
            # hide the race.
            self.assertTrue(asyncio.run(main()))
        finally:
            faulthandler.cancel_dump_traceback_later()

    def test_backlog_before_the_loop_begins_is_bounded(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events(*["E"] * 30), Es.VERSION_ANY)
                early = stream.watch(0)   # iterated at once below: fine
                late = stream.watch(0)    # not iterated while 30 events come
                seen = []
                async for event in early:
                    seen.append(event.get_version())
                    if len(seen) == 30:
                        break
                while late.get_active() and not late.get_caught_up():  # 30 events came
                    await asyncio.sleep(0.01)
                with self.assertRaisesRegex(RuntimeError, "more than 10 events"):
                    async for event in late:
                        pass
                return seen

        saved, _es_asyncio.WATCH_BACKLOG = _es_asyncio.WATCH_BACKLOG, 10
        try:
            self.assertEqual(run(main()), list(range(1, 31)))
        finally:
            _es_asyncio.WATCH_BACKLOG = saved

    def test_error_raises_glib_error(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(None) as factory:
                stream = await factory.open_stream_async("s")
                with self.assertRaises(GLib.Error) as caught:
                    async for _event in stream.watch(-7):
                        pass
                self.assertTrue(caught.exception.matches(Es.error_quark(),
                                                         Es.Error.INVALID_ARGUMENT))
                return True

        self.assertTrue(run(main()))

    def test_fed_by_another_process(self):
        writer = os.environ.get("ES_TEST_WRITER")
        count = 20

        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("remote")
                await stream.write_async(events("Local"), Es.VERSION_ANY)
                if writer:
                    command = [writer, self.path, "remote", str(count)]
                else:
                    command = [sys.executable, "-c", WRITER_SCRIPT, self.path, "remote",
                               str(count)]
                process = await asyncio.create_subprocess_exec(*command)
                seen = []
                async for event in stream.watch(0):
                    seen.append((event.get_version(), event.get_event_type()))
                    if len(seen) == count + 1:
                        break
                self.assertEqual(await process.wait(), 0)
                return seen

        seen = run(main())
        self.assertEqual(seen, [(1, "Local")] + [(v, "FromOtherProcess")
                                                 for v in range(2, count + 2)])

    def test_loop_end_cancels_a_watching_task_cleanly(self):
        state = {}

        async def watch_forever(watch):
            try:
                async for event in watch:
                    state.setdefault("events", []).append(event.get_version())
            except asyncio.CancelledError:
                state["cancelled"] = True
                raise

        async def main():
            factory = await Es.SqliteStreamFactory.new_async(self.path)
            stream = await factory.open_stream_async("s")
            await stream.write_async(events("A"), Es.VERSION_ANY)
            watch = stream.watch(0)
            state["watch"], state["factory"] = watch, factory
            asyncio.create_task(watch_forever(watch))
            while "events" not in state:
                await asyncio.sleep(0.01)
            # main returns with the task still waiting: asyncio.run
            # cancels it.

        run(main())
        watch = state["watch"]
        self.assertTrue(state["cancelled"])
        self.assertEqual(state["events"], [1])
        # The iterator let go of the watch's signals.
        signal_id = GObject.signal_lookup("event", Es.Watch)
        self.assertFalse(GObject.signal_has_handler_pending(watch, signal_id, 0, True))
        self.assertFalse(watch.get_active())
        state["factory"].close(None)


WRITER_SCRIPT = """
import sys, warnings
import gi
gi.require_version("Es", "1.0")
from gi.repository import Es
path, stream_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Es.SqliteStreamFactory.new(path, None) as factory:
    stream = factory.open_stream(stream_id, None)
    for _ in range(count):
        stream.write([Es.CandidateEvent("FromOtherProcess")], Es.VERSION_ANY, None)
"""


class TestCancellation(AsyncTestCase):
    def test_cancelled_before_it_starts(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                task = asyncio.create_task(stream.write_async(events("A"), Es.VERSION_ANY))
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                return stream.get_version()

        self.assertEqual(run(main()), 0)
        self.assertEqual(self.stored_version("s"), 0)

    def test_cancelled_after_commit_returns_the_version(self):
        # The write commits while the loop is kept busy, so its completion
        # waits in the GLib context; then the task is cancelled. The
        # operation is past cancelling: the await returns the version, as
        # stored.
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                task = asyncio.create_task(
                    stream.write_async(events("A", "B"), Es.VERSION_ANY))
                await asyncio.sleep(0)  # the task starts the write
                deadline = GLib.get_monotonic_time() + TIMEOUT * 1000000
                while self.stored_version("s") != 2:  # blocks the loop
                    self.assertLess(GLib.get_monotonic_time(), deadline)
                task.cancel()
                return await task

        self.assertEqual(run(main()), 2)
        self.assertEqual(self.stored_version("s"), 2)

    def test_cancel_in_flight_matches_what_is_stored(self):
        # Cancelled at varying moments: a CancelledError means nothing was
        # written, a version means the events are stored; never anything
        # else, never a mismatch.
        async def main():
            outcomes = {"cancelled": 0, "written": 0}
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                checker = await factory.open_stream_async("s")
                expected = 0
                for attempt in range(40):
                    task = asyncio.create_task(stream.write_async(
                        events(*["E"] * (1 + attempt % 5)), expected))
                    for _ in range(attempt % 4):
                        await asyncio.sleep(0)
                    if attempt % 3 == 0:
                        await asyncio.sleep(0.0005 * (attempt % 7))
                    task.cancel()
                    try:
                        version = await task
                    except asyncio.CancelledError:
                        outcomes["cancelled"] += 1
                    else:
                        outcomes["written"] += 1
                        self.assertEqual(version, expected + 1 + attempt % 5)
                        expected = version
                    metrics = await checker.get_metrics_async()
                    self.assertEqual(metrics.get_current_version(), expected,
                                     "attempt %d: the await does not match the stream"
                                     % attempt)
            return outcomes

        outcomes = run(main())
        self.assertEqual(sum(outcomes.values()), 40)

    def test_cancelled_read_and_timeout(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                await stream.write_async(events(*["E"] * 10), Es.VERSION_ANY)
                # A watch waiting for events that never come: the timeout
                # cancels the await, and the iterator lets go.
                watch = stream.watch(-1)
                with self.assertRaises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        async for _event in watch:
                            pass
                watch.stop()
                # A read cancelled before it starts; the stream still reads.
                task = asyncio.create_task(stream.read_async(0))
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                return [e.get_version() async for e in stream.read_async(8)]

        self.assertEqual(run(main()), [9, 10])

    def test_callers_cancellable_is_not_cancelled_by_the_task(self):
        async def main():
            async with Es.SqliteStreamFactory.new_async(self.path) as factory:
                stream = await factory.open_stream_async("s")
                mine = Gio.Cancellable()
                task = asyncio.create_task(stream.get_metrics_async(mine))
                await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                return mine.is_cancelled()

        self.assertFalse(run(main()))


if __name__ == "__main__":
    unittest.main()
