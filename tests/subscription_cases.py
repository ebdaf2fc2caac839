# subscription_cases.py: durable subscriptions (issue 17) from Python, for
# every backend.
#
# SubscriptionCases is a mixin like LifecycleCases: tests/test_es.py runs
# it on SQLite (TestSubscriptionsSqlite) and tests/postgres/test_pg.py on
# PostgreSQL. The test case provides `self.factory` (a fresh, empty
# database for each test) and `self.second_factory()` (another factory on
# the same database, as another process would open it). Each test checks
# what is stored (get_subscription_info, list_subscriptions) after each
# operation, not only what was delivered.
#
# The callables used here count for tests/bindings/check-coverage.py (this
# file is among its --python files).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import json

from gi.repository import Es, Gio, GLib

from lifecycle_cases import TIMEOUT_MS, candidate, run_until


def fold(counts, event):
    """The read model of these tests: events counted per type."""
    counts = dict(counts)
    counts[event.get_event_type()] = counts.get(event.get_event_type(), 0) + 1
    return counts


def encode(counts):
    return json.dumps(counts, sort_keys=True).encode()


class SubscriptionCases:
    """Mixed into a unittest.TestCase with self.factory and
    self.second_factory()."""

    # -- helpers ---------------------------------------------------------

    def append(self, stream_id, *types, factory=None):
        stream = (factory or self.factory).open_stream(stream_id, None)
        return stream.write([candidate(t) for t in types], Es.VERSION_ANY, None)

    def subscription(self, name, stream_id=None, flags=Es.SubscriptionFlags.NONE,
                     event_filter=None, factory=None):
        return Es.Subscription.new(factory or self.factory, name, stream_id, event_filter, flags)

    def stored(self, name):
        return self.factory.get_subscription_info(name, None)

    def run_async(self, coro):
        loop = Es.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT_MS / 1000))
        finally:
            loop.close()

    def collect(self, subscription):
        """Connects ::event, ::caught-up and ::error; returns the lists
        they fill (positions, caught-up count, errors)."""
        seen, caught_up, errors = [], [], []
        subscription.connect("event",
                             lambda s, e: seen.append(s.position_of(e)))
        subscription.connect("caught-up", lambda _s: caught_up.append(True))
        subscription.connect("error", lambda _s, error: errors.append(error))
        return seen, caught_up, errors

    def assertSubscriptionError(self, code, call, *args, named=()):
        with self.assertRaises(GLib.Error) as caught:
            call(*args)
        self.assertEsError(caught.exception, code, *named)
        return caught.exception

    # -- construction ------------------------------------------------------

    def test_subscription_properties(self):
        event_filter = Es.EventFilter.new()
        event_filter.add_equals("event_type", "A")
        sub = self.subscription("props", None, Es.SubscriptionFlags.MANUAL_ACK, event_filter)
        self.assertEqual(sub.get_name(), "props")
        self.assertEqual(sub.get_stream_id(), "@all")
        self.assertEqual(sub.props.stream_id, "@all")
        self.assertEqual(sub.get_flags(), Es.SubscriptionFlags.MANUAL_ACK)
        self.assertIs(sub.props.filter, event_filter)
        self.assertIs(sub.props.factory, self.factory)
        # Defaults, then set before start.
        self.assertEqual(sub.get_start_from(), Es.SubscriptionStart.BEGINNING)
        self.assertEqual(sub.get_start_position(), 0)
        self.assertEqual(sub.get_checkpoint_batch(), 100)
        self.assertEqual(sub.get_checkpoint_delay(), 1000)
        sub.set_start_from(Es.SubscriptionStart.POSITION)
        sub.set_start_position(3)
        sub.set_checkpoint_batch(7)
        sub.set_checkpoint_delay(0)
        self.assertEqual((sub.get_start_from(), sub.get_start_position(),
                          sub.get_checkpoint_batch(), sub.get_checkpoint_delay()),
                         (Es.SubscriptionStart.POSITION, 3, 7, 0))
        self.assertEqual(sub.props.checkpoint_batch, 7)
        self.assertFalse(sub.get_active())
        self.assertFalse(sub.get_caught_up())
        self.assertIsNone(sub.get_state())
        self.assertEqual(sub.get_position(), 0)
        self.assertEqual(sub.get_checkpoint(), 0)
        self.assertEqual(sub.get_lag(), 0)
        stream_sub = self.subscription("on-a-stream", "cart-1")
        self.assertEqual(stream_sub.get_stream_id(), "cart-1")
        self.assertEqual(Es.SUBSCRIPTION_NAME_MAX_BYTES, 256)
        # Nothing is stored before start.
        self.assertEqual(self.factory.list_subscriptions(None), [])

    # -- delivery and checkpoints ------------------------------------------

    def test_delivers_in_order_and_resumes(self):
        self.append("a", "A", "A", "B")
        self.append("b", "B", "A")
        sub = self.subscription("all-1")
        sub.set_checkpoint_batch(2)
        sub.set_checkpoint_delay(0)
        seen, caught_up, errors = self.collect(sub)
        self.assertTrue(sub.start(None))
        self.assertTrue(sub.get_active())
        # Stored before start returned, though nothing was delivered yet.
        self.assertEqual(self.stored("all-1").get_checkpoint(), 0)
        self.assertTrue(run_until(lambda: caught_up and len(seen) == 5))
        self.assertEqual(seen, [1, 2, 3, 4, 5])
        self.assertEqual(sub.get_position(), 5)
        self.assertEqual(sub.get_lag(), 0)
        self.assertTrue(sub.get_caught_up())
        # Batches of two: 2 and 4 are stored; 5 waits for the flush.
        self.assertTrue(run_until(lambda: sub.get_checkpoint() == 4))
        self.assertEqual(self.stored("all-1").get_checkpoint(), 4)
        self.assertTrue(sub.flush(None))
        self.assertEqual(sub.get_checkpoint(), 5)
        self.assertEqual(self.stored("all-1").get_checkpoint(), 5)

        # Live events after the catch-up, then stop stores the last.
        self.append("a", "C")
        self.assertTrue(run_until(lambda: seen[-1] == 6))
        self.assertTrue(sub.stop(None))
        self.assertFalse(sub.get_active())
        self.assertEqual(errors, [])
        info = self.stored("all-1")
        self.assertEqual((info.get_name(), info.get_stream_id(), info.get_checkpoint(),
                          info.get_lag()), ("all-1", "@all", 6, 0))
        self.assertIsNone(info.get_state())
        self.assertGreater(info.get_updated_usec(), 0)
        self.assertEqual(info.get_updated().to_unix(), info.get_updated_usec() // 1000000)

        # Written while nobody consumed: the lag; a new handle resumes after 6.
        self.append("b", "D", "E")
        self.assertEqual(self.stored("all-1").get_lag(), 2)
        again = self.subscription("all-1")
        seen2, caught_up2, _ = self.collect(again)
        self.assertTrue(again.start(None))
        self.assertTrue(run_until(lambda: caught_up2 and len(seen2) == 2))
        self.assertEqual(seen2, [7, 8])
        again.stop(None)
        self.assertEqual(self.stored("all-1").get_checkpoint(), 8)

    def test_stream_subscription_and_filter(self):
        self.append("s", "A", "B", "A", "B")
        self.append("other", "A")
        event_filter = Es.EventFilter.new()
        event_filter.add_equals("event_type", "B")
        sub = self.subscription("only-b", "s", event_filter=event_filter)
        seen, caught_up, _ = self.collect(sub)
        sub.start(None)
        self.assertTrue(run_until(lambda: caught_up))
        self.assertEqual(seen, [2, 4])
        # Filtered-out events advance the position too: no stall.
        self.assertEqual(sub.get_position(), 4)
        self.append("s", "A")
        self.assertTrue(run_until(lambda: sub.get_position() == 5))
        self.assertEqual(seen, [2, 4])
        sub.stop(None)
        self.assertEqual(self.stored("only-b").get_checkpoint(), 5)
        self.assertEqual(self.stored("only-b").get_stream_id(), "s")

    def test_start_from_end_and_position(self):
        self.append("s", "A", "B", "C")
        end = self.subscription("from-end", None)
        end.set_start_from(Es.SubscriptionStart.END)
        seen, _, _ = self.collect(end)
        end.start(None)
        # The place is stored before start returns: a crash now keeps it.
        self.assertEqual(self.stored("from-end").get_checkpoint(), 3)
        self.append("s", "D")
        self.assertTrue(run_until(lambda: seen == [4]))
        end.stop(None)

        at = self.subscription("from-2", "s")
        at.set_start_from(Es.SubscriptionStart.POSITION)
        at.set_start_position(2)
        seen, caught_up, _ = self.collect(at)
        at.start(None)
        self.assertEqual(self.stored("from-2").get_checkpoint(), 2)
        self.assertTrue(run_until(lambda: caught_up))
        self.assertEqual(seen, [3, 4])
        at.stop(None)

        # Beyond the head: an error naming both, nothing stored.
        beyond = self.subscription("beyond", "s")
        beyond.set_start_from(Es.SubscriptionStart.POSITION)
        beyond.set_start_position(9)
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, beyond.start, None,
                                     named=("9", "4"))
        self.assertFalse(beyond.get_active())
        self.assertSubscriptionError(Es.Error.NOT_FOUND, self.factory.get_subscription_info,
                                     "beyond", None, named=("beyond",))

    def test_bad_names_and_filters(self):
        for name in ("", "x" * (Es.SUBSCRIPTION_NAME_MAX_BYTES + 1)):
            sub = self.subscription(name)
            self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, sub.start, None)
            self.assertFalse(sub.get_active())
        longest = self.subscription("y" * Es.SUBSCRIPTION_NAME_MAX_BYTES)
        self.assertTrue(longest.start(None))
        longest.stop(None)
        bad = Es.EventFilter.new()
        bad.add_equals("no such field", "x")
        sub = self.subscription("bad-filter", event_filter=bad)
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, sub.start, None,
                                     named=("no such field",))
        self.assertEqual([i.get_name() for i in self.factory.list_subscriptions(None)],
                         ["y" * Es.SUBSCRIPTION_NAME_MAX_BYTES])

    def test_stored_stream_differs(self):
        self.append("s", "A")
        first = self.subscription("moved", "s")
        first.start(None)
        first.stop(None)
        second = self.subscription("moved", "t")
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, second.start, None,
                                     named=("s", "t"))
        self.assertEqual(self.stored("moved").get_stream_id(), "s")

    # -- one consumer at a time ---------------------------------------------

    def test_one_consumer_at_a_time(self):
        self.append("s", "A")
        first = self.subscription("only-one")
        self.assertTrue(first.start(None))
        # A second handle through the same storage: BUSY at once.
        same = self.subscription("only-one")
        self.assertSubscriptionError(Es.Error.BUSY, same.start, None, named=("only-one",))
        # Through another factory (another process): BUSY with FAIL_IF_TAKEN.
        other = self.second_factory()
        try:
            taken = self.subscription("only-one", flags=Es.SubscriptionFlags.FAIL_IF_TAKEN,
                                      factory=other)
            self.assertSubscriptionError(Es.Error.BUSY, taken.start, None,
                                         named=("only-one",))
            # Management waits for nobody: BUSY while consumed.
            self.assertSubscriptionError(Es.Error.BUSY, other.reset_subscription,
                                         "only-one", 0, None)
            self.assertSubscriptionError(Es.Error.BUSY, other.delete_subscription,
                                         "only-one", None)
            first.stop(None)
            # Free now: the other takes it.
            later = self.subscription("only-one", flags=Es.SubscriptionFlags.FAIL_IF_TAKEN,
                                      factory=other)
            seen, caught_up, _ = self.collect(later)
            self.assertTrue(later.start(None))
            self.assertTrue(run_until(lambda: caught_up))
            later.stop(None)
        finally:
            other.close(None)

    def test_waiting_start_is_cancellable(self):
        holder = self.subscription("held")
        holder.start(None)
        other = self.second_factory()
        try:
            waiter = self.subscription("held", factory=other)
            cancellable = Gio.Cancellable.new()
            GLib.timeout_add(50, lambda: cancellable.cancel() or False)
            outcome = []
            waiter.start_async(cancellable, lambda s, r: outcome.append(
                self._finish_or_error(s.start_finish, r)))
            self.assertTrue(run_until(lambda: outcome))
            self.assertIsInstance(outcome[0], GLib.Error)
            self.assertTrue(outcome[0].matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))
            self.assertFalse(waiter.get_active())
            self.assertTrue(holder.get_active())
        finally:
            holder.stop(None)
            other.close(None)

    @staticmethod
    def _finish_or_error(finish, result):
        try:
            return finish(result)
        except GLib.Error as error:
            return error

    # -- acknowledgement ----------------------------------------------------

    def test_manual_ack_and_flush(self):
        self.append("s", "A", "B", "C", "D")
        sub = self.subscription("acked", "s", Es.SubscriptionFlags.MANUAL_ACK)
        sub.set_checkpoint_delay(0)
        seen, caught_up, _ = self.collect(sub)
        sub.start(None)
        self.assertTrue(run_until(lambda: caught_up))
        self.assertEqual(seen, [1, 2, 3, 4])
        # Delivered is not acknowledged: nothing moves.
        self.assertTrue(sub.flush(None))
        self.assertEqual(self.stored("acked").get_checkpoint(), 0)
        sub.acknowledge(2)
        self.assertEqual(self.stored("acked").get_checkpoint(), 0)  # batched
        self.assertTrue(sub.flush(None))
        self.assertEqual((sub.get_checkpoint(), self.stored("acked").get_checkpoint()), (2, 2))
        sub.acknowledge(3)
        sub.stop(None)  # stores the acknowledged one, not the delivered one
        self.assertEqual(self.stored("acked").get_checkpoint(), 3)

    # -- exactly-once state -------------------------------------------------

    def test_keep_state_saves_with_the_checkpoint(self):
        self.append("s", "A", "B", "A")
        sub = self.subscription("state", "s", Es.SubscriptionFlags.KEEP_STATE)
        sub.set_checkpoint_batch(1)
        sub.set_checkpoint_delay(0)
        seen, caught_up, _ = self.collect(sub)
        sub.start(None)
        self.assertIsNone(sub.get_state())
        self.assertTrue(run_until(lambda: caught_up))
        # No automatic checkpoint in this mode, even with batch 1.
        sub.flush(None)
        self.assertEqual(self.stored("state").get_checkpoint(), 0)
        self.assertTrue(sub.save_state(b"two", 2, None))
        info = self.stored("state")
        self.assertEqual((info.get_checkpoint(), info.state_bytes), (2, b"two"))
        self.assertEqual(sub.get_state().get_data(), b"two")
        # Beyond what was delivered, or behind the stored checkpoint: refused.
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, sub.save_state, b"x", 9, None,
                                     named=("9",))
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, sub.save_state, b"x", 1, None,
                                     named=("1",))
        self.assertEqual(self.stored("state").state_bytes, b"two")
        sub.stop(None)  # no flush in this mode: 3 is not saved
        self.assertEqual(self.stored("state").get_checkpoint(), 2)

        again = self.subscription("state", "s", Es.SubscriptionFlags.KEEP_STATE)
        seen2, caught_up2, _ = self.collect(again)
        again.start(None)
        self.assertEqual(again.get_state().get_data(), b"two")
        self.assertEqual(again.props.state.get_data(), b"two")
        self.assertTrue(run_until(lambda: caught_up2))
        self.assertEqual(seen2, [3])
        again.stop(None)

    # -- management ----------------------------------------------------------

    def test_management(self):
        self.append("s", "A", "B", "C", "D", "E")
        for name in ("m-b", "m-a"):
            sub = self.subscription(name, "s" if name == "m-a" else None,
                                    Es.SubscriptionFlags.KEEP_STATE)
            seen, caught_up, _ = self.collect(sub)
            sub.start(None)
            self.assertTrue(run_until(lambda: caught_up))
            sub.save_state(name.encode(), 3, None)
            sub.stop(None)
        listed = self.factory.list_subscriptions(None)
        self.assertEqual([(i.get_name(), i.get_stream_id(), i.get_checkpoint(), i.get_lag())
                          for i in listed], [("m-a", "s", 3, 2), ("m-b", "@all", 3, 2)])
        # No states in the listing; get_subscription_info has it.
        self.assertEqual([i.get_state() for i in listed], [None, None])
        self.assertEqual(self.stored("m-a").state_bytes, b"m-a")

        # Reset moves the checkpoint and drops the state.
        self.assertTrue(self.factory.reset_subscription("m-a", 1, None))
        info = self.stored("m-a")
        self.assertEqual((info.get_checkpoint(), info.get_lag(), info.get_state()), (1, 4, None))
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, self.factory.reset_subscription,
                                     "m-a", 6, None, named=("m-a", "6"))
        self.assertEqual(self.stored("m-a").get_checkpoint(), 1)
        self.assertSubscriptionError(Es.Error.NOT_FOUND, self.factory.reset_subscription,
                                     "none", 0, None, named=("none",))
        resumed = self.subscription("m-a", "s")
        seen, caught_up, _ = self.collect(resumed)
        resumed.start(None)
        self.assertTrue(run_until(lambda: caught_up))
        self.assertEqual(seen, [2, 3, 4, 5])
        resumed.stop(None)

        # Delete forgets it; a new one starts afresh.
        self.assertTrue(self.factory.delete_subscription("m-b", None))
        self.assertEqual([i.get_name() for i in self.factory.list_subscriptions(None)], ["m-a"])
        self.assertSubscriptionError(Es.Error.NOT_FOUND, self.factory.get_subscription_info,
                                     "m-b", None, named=("m-b",))

    def test_management_async(self):
        self.append("s", "A", "B", "C")
        sub = self.subscription("am", "s")
        sub.start(None)
        sub.stop(None)
        f = self.factory

        async def main():
            infos = await f.list_subscriptions_async()
            self.assertEqual([(i.get_name(), i.get_checkpoint(), i.get_lag()) for i in infos],
                             [("am", 0, 3)])
            self.assertTrue(await f.reset_subscription_async("am", 2))
            info = await f.get_subscription_info_async("am")
            self.assertEqual((info.get_checkpoint(), info.get_lag()), (2, 1))
            with self.assertRaises(GLib.Error) as caught:
                await f.reset_subscription_async("am", 4)
            self.assertEsError(caught.exception, Es.Error.INVALID_ARGUMENT, "am", "4")
            self.assertTrue(await f.delete_subscription_async("am"))
            with self.assertRaises(GLib.Error) as caught:
                await f.get_subscription_info_async("am")
            self.assertEsError(caught.exception, Es.Error.NOT_FOUND, "am")
            return await f.list_subscriptions_async()

        self.assertEqual(self.run_async(main()), [])

    def test_storage_handle(self):
        """The storage side (what backends implement), called directly."""
        self.append("s", "A", "B", "C")
        storage = self.factory.get_storage()
        self.assertIsNone(storage.get_subscription("direct", None))
        self.assertTrue(storage.acquire_subscription("direct", False, None))
        self.assertSubscriptionError(Es.Error.BUSY, storage.acquire_subscription, "direct",
                                     False, None, named=("direct",))
        self.assertTrue(storage.save_checkpoint("direct", "s", 2, GLib.Bytes.new(b"st"), None))
        info = storage.get_subscription("direct", None)
        self.assertEqual((info.get_stream_id(), info.get_checkpoint(), info.get_lag(),
                          info.state_bytes), ("s", 2, 1, b"st"))
        # A NULL state keeps the stored one; lower or another stream: refused.
        self.assertTrue(storage.save_checkpoint("direct", "s", 3, None, None))
        self.assertEqual(storage.get_subscription("direct", None).state_bytes, b"st")
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, storage.save_checkpoint,
                                     "direct", "s", 1, None, None, named=("1", "3"))
        self.assertSubscriptionError(Es.Error.INVALID_ARGUMENT, storage.save_checkpoint,
                                     "direct", "t", 3, None, None, named=("s", "t"))
        self.assertEqual([i.get_checkpoint() for i in storage.list_subscriptions(None)], [3])
        # Reset and delete refuse while it is held, even by this storage.
        self.assertSubscriptionError(Es.Error.BUSY, storage.reset_subscription, "direct", 1,
                                     None, named=("direct",))
        storage.release_subscription("direct")
        self.assertTrue(storage.reset_subscription("direct", 1, None))
        info = storage.get_subscription("direct", None)
        self.assertEqual((info.get_checkpoint(), info.get_state()), (1, None))
        self.assertTrue(storage.acquire_subscription("direct", False, None))
        storage.release_subscription("direct")
        self.assertTrue(storage.delete_subscription("direct", None))
        self.assertEqual(storage.list_subscriptions(None), [])

    def test_subscription_info_value(self):
        state = GLib.Bytes.new(b"s")
        info = Es.SubscriptionInfo.new("n", "@all", 4, 2, state, 1700000000123456)
        self.assertEqual((info.get_name(), info.get_stream_id(), info.get_checkpoint(),
                          info.get_lag(), info.state_bytes, info.get_updated_usec()),
                         ("n", "@all", 4, 2, b"s", 1700000000123456))
        self.assertEqual(info.get_updated().get_microsecond(), 123456)

    # -- tombstones ----------------------------------------------------------

    def test_tombstone_ends_the_subscription(self):
        self.append("t", "A", "B")
        sub = self.subscription("on-t", "t")
        seen, caught_up, errors = self.collect(sub)
        sub.start(None)
        self.assertTrue(run_until(lambda: caught_up))
        self.assertTrue(self.factory.delete_stream("t", 2, Es.DeleteFlags.TOMBSTONE, None))
        self.assertTrue(run_until(lambda: errors and not sub.get_active()))
        self.assertEsError(errors[0], Es.Error.STREAM_DELETED, "t")
        self.assertEqual(seen, [1, 2])
        # Released: management works again.
        self.assertTrue(self.factory.delete_subscription("on-t", None))

    # -- asyncio -------------------------------------------------------------

    def test_async_for_acknowledges_when_the_next_is_asked(self):
        self.append("s", "A", "B", "C", "D", "E", "F")

        async def first_run():
            sub = self.subscription("py-ack", "s", Es.SubscriptionFlags.MANUAL_ACK)
            sub.set_checkpoint_batch(1)
            got = []
            async for event in sub:  # starts it
                got.append(event.get_version())
                if event.get_version() == 3:
                    break  # 3's body did not finish: not acknowledged
            # Leaving the loop stopped it and stored what was acknowledged.
            self.assertFalse(sub.get_active())
            return got

        self.assertEqual(self.run_async(first_run()), [1, 2, 3])
        self.assertEqual(self.stored("py-ack").get_checkpoint(), 2)

        async def second_run():
            sub = self.subscription("py-ack", "s", Es.SubscriptionFlags.MANUAL_ACK)
            got = []
            async with sub:
                self.assertTrue(sub.get_active())
                async for event in sub:
                    got.append(event.get_version())
                    if event.get_version() == 5:
                        await sub.stop_async()  # ends the loop
            return got

        # At-least-once: 3 again.
        self.assertEqual(self.run_async(second_run()), [3, 4, 5])
        self.assertEqual(self.stored("py-ack").get_checkpoint(), 4)

    def test_async_for_raises_on_body_error_and_refuses_auto_mode(self):
        self.append("s", "A", "B")
        auto = self.subscription("py-auto", "s")

        async def main():
            with self.assertRaises(ValueError):
                async for _event in auto:
                    pass
            self.assertFalse(auto.get_active())
            sub = self.subscription("py-raise", "s", Es.SubscriptionFlags.MANUAL_ACK)
            with self.assertRaises(KeyError):
                async for event in sub:
                    if event.get_version() == 2:
                        raise KeyError("handler failed")
            return sub.get_active()

        self.assertFalse(self.run_async(main()))
        # 1 was acknowledged when 2 was asked for; 2 failed and comes again.
        self.assertEqual(self.stored("py-raise").get_checkpoint(), 1)

    def test_async_for_raises_the_error_signal(self):
        self.append("t", "A")

        async def main():
            sub = self.subscription("py-tomb", "t", Es.SubscriptionFlags.MANUAL_ACK)
            got = []
            with self.assertRaises(GLib.Error) as caught:
                async for event in sub:
                    got.append(event.get_version())
                    await self.factory.delete_stream_async("t", 1, Es.DeleteFlags.TOMBSTONE)
            self.assertEsError(caught.exception, Es.Error.STREAM_DELETED, "t")
            return got

        self.assertEqual(self.run_async(main()), [1])

    def test_async_start_queues_events_for_a_later_loop(self):
        self.append("s", "A", "B", "C")

        async def main():
            sub = self.subscription("py-late", "s", Es.SubscriptionFlags.MANUAL_ACK)
            self.assertTrue(await sub.start_async())
            # Let the events be delivered before the loop begins.
            while not sub.get_caught_up():
                await asyncio.sleep(0.01)
            got = []
            async for event in sub:
                got.append(event.get_version())
                if len(got) == 3:
                    sub.acknowledge(sub.position_of(event))
                    self.assertTrue(await sub.flush_async())
                    await sub.stop_async()
            return got

        self.assertEqual(self.run_async(main()), [1, 2, 3])
        self.assertEqual(self.stored("py-late").get_checkpoint(), 3)

    def test_cancelled_task_leaves_the_loop(self):
        self.append("s", "A", "B")

        async def main():
            sub = self.subscription("py-cancel", "s", Es.SubscriptionFlags.MANUAL_ACK)
            got = []

            async def consume():
                async for event in sub:
                    got.append(event.get_version())

            task = asyncio.ensure_future(consume())
            while len(got) < 2:
                await asyncio.sleep(0.01)
            # Waiting for a third event that never comes.
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return got, sub.get_active()

        self.assertEqual(self.run_async(main()), ([1, 2], False))
        # 1 acknowledged when 2 was asked for; 2 when the third was asked
        # for (its body had finished); stopping stored them.
        self.assertEqual(self.stored("py-cancel").get_checkpoint(), 2)

    def test_async_for_refuses_events_delivered_to_nobody(self):
        self.append("s", "A", "B")
        sub = self.subscription("py-unseen", "s", Es.SubscriptionFlags.MANUAL_ACK)
        sub.start(None)  # outside any coroutine: nothing queues the events
        self.assertTrue(run_until(sub.get_caught_up))

        async def main():
            with self.assertRaises(RuntimeError) as caught:
                async for _event in sub:
                    pass
            self.assertIn("py-unseen", str(caught.exception))

        try:
            self.run_async(main())
            # Nothing was acknowledged past the unseen events.
            sub.flush(None)
            self.assertEqual(self.stored("py-unseen").get_checkpoint(), 0)
        finally:
            sub.stop(None)

    def test_exactly_once_fold_across_restart(self):
        types = ["A", "B", "A", "C", "A", "B", "B"]
        self.append("s", *types[:4])
        self.append("t", *types[4:])
        expected = {}
        for t in types:
            expected[t] = expected.get(t, 0) + 1

        async def run(stop_after, save_every):
            """Folds from the stored state; saves every `save_every` events;
            leaves after `stop_after` events without saving the rest (a
            crash)."""
            sub = self.subscription("fold", None, Es.SubscriptionFlags.KEEP_STATE)
            async with sub:
                state = sub.get_state()
                counts = json.loads(state.get_data()) if state is not None else {}
                applied = []
                async for event in sub:
                    counts = fold(counts, event)
                    applied.append(sub.position_of(event))
                    if len(applied) % save_every == 0:
                        await sub.save_state_async(encode(counts), sub.position_of(event))
                    if len(applied) == stop_after:
                        break
            return counts, applied

        # First run: 5 events, saved after 2 and 4; the fifth is lost.
        counts, applied = self.run_async(run(5, 2))
        self.assertEqual(applied, [1, 2, 3, 4, 5])
        info = self.stored("fold")
        self.assertEqual(info.get_checkpoint(), 4)
        self.assertEqual(json.loads(info.state_bytes), {"A": 2, "B": 1, "C": 1})
        # Second run resumes at 5 from the saved state: nothing twice.
        counts, applied = self.run_async(run(3, 1))
        self.assertEqual(applied, [5, 6, 7])
        self.assertEqual(counts, expected)
        self.assertEqual(json.loads(self.stored("fold").state_bytes), expected)
        self.assertEqual(self.stored("fold").get_checkpoint(), 7)

    def test_sync_with(self):
        self.append("s", "A", "B")
        sub = self.subscription("with", "s")
        seen, caught_up, _ = self.collect(sub)
        with sub:
            self.assertTrue(sub.get_active())
            self.assertTrue(run_until(lambda: caught_up))
        self.assertFalse(sub.get_active())
        self.assertEqual(seen, [1, 2])
        self.assertEqual(self.stored("with").get_checkpoint(), 2)

    def test_callbacks(self):
        """The plain GIO calls, with a callback."""
        self.append("s", "A", "B", "C")
        loop = GLib.MainLoop()
        outcome = []

        def step(start, finish):
            def done(_source, result, *_user_data):
                outcome.append(self._finish_or_error(finish, result))
                loop.quit()
            start(done)
            loop.run()
            value = outcome.pop()
            if isinstance(value, GLib.Error):
                raise value
            return value

        f = self.factory
        sub = self.subscription("cb", "s", Es.SubscriptionFlags.KEEP_STATE)
        seen, caught_up, _ = self.collect(sub)
        self.assertTrue(step(lambda cb: sub.start_async(None, cb, None),
                             lambda r: sub.start_finish(r)))
        self.assertTrue(run_until(lambda: caught_up))
        self.assertTrue(step(lambda cb: sub.save_state_async(GLib.Bytes.new(b"3"), 3, None,
                                                             cb, None),
                             lambda r: sub.save_state_finish(r)))
        self.assertTrue(step(lambda cb: sub.flush_async(None, cb, None),
                             lambda r: sub.flush_finish(r)))
        self.assertTrue(step(lambda cb: sub.stop_async(None, cb, None),
                             lambda r: sub.stop_finish(r)))
        self.assertEqual(seen, [1, 2, 3])
        infos = step(lambda cb: f.list_subscriptions_async(None, cb, None),
                     lambda r: f.list_subscriptions_finish(r))
        self.assertEqual([(i.get_name(), i.get_checkpoint()) for i in infos], [("cb", 3)])
        info = step(lambda cb: f.get_subscription_info_async("cb", None, cb, None),
                    lambda r: f.get_subscription_info_finish(r))
        self.assertEqual(info.state_bytes, b"3")
        self.assertTrue(step(lambda cb: f.reset_subscription_async("cb", 1, None, cb, None),
                             lambda r: f.reset_subscription_finish(r)))
        self.assertEqual(self.stored("cb").get_checkpoint(), 1)
        self.assertTrue(step(lambda cb: f.delete_subscription_async("cb", None, cb, None),
                             lambda r: f.delete_subscription_finish(r)))
        self.assertEqual(f.list_subscriptions(None), [])
