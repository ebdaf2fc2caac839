#!/usr/bin/python3
# read_model.py: a read model kept exactly once by a durable subscription,
# from an asyncio program.
#
# The read model counts the events of every stream per event type, as a
# JSON object. The subscription has Es.SubscriptionFlags.KEEP_STATE: the
# JSON is saved with the position it reflects, in one transaction
# (save_state_async), every SAVE_EVERY events and when caught up. The first
# run "crashes" (leaves the loop without saving) after a few events; the
# second resumes from the saved state and position, so nothing is applied
# twice. The program then checks the model against a fold of every event.
#
# Run: /usr/bin/python3 examples/read_model.py [DATABASE]
# (a temporary database when none is given).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import json
import os
import sys
import tempfile

import gi

gi.require_version("Es", "1.0")
from gi.repository import Es  # noqa: E402

SAVE_EVERY = 3


def count(counts, event):
    counts[event.get_event_type()] = counts.get(event.get_event_type(), 0) + 1


async def append(path, stream_id, *types):
    async with Es.SqliteStreamFactory.new_async(path) as factory:
        stream = await factory.open_stream_async(stream_id)
        await stream.write_async([Es.CandidateEvent(t) for t in types], Es.VERSION_ANY)


async def project(path, crash_after=None):
    """One run of the projection: resumes from the saved state, applies
    events until caught up (or leaves without saving after `crash_after`
    events) and returns (events applied, the model)."""
    async with Es.SqliteStreamFactory.new_async(path) as factory:
        subscription = Es.Subscription.new(factory, "event-counts", Es.ALL_STREAM, None,
                                           Es.SubscriptionFlags.KEEP_STATE)
        async with subscription:
            state = subscription.get_state()
            counts = json.loads(state.get_data()) if state is not None else {}
            applied = 0
            async for event in subscription:
                count(counts, event)
                applied += 1
                if applied == crash_after:
                    break  # a "crash": what is not saved is lost
                # The loop body runs after the event's delivery: its own
                # position can be saved.
                position = subscription.position_of(event)
                # Caught up, and nothing delivered after this event is
                # waiting for the loop.
                caught_up = (subscription.get_caught_up() and subscription.get_lag() == 0
                             and position == subscription.get_position())
                if applied % SAVE_EVERY == 0 or caught_up:
                    await subscription.save_state_async(json.dumps(counts, sort_keys=True),
                                                        position)
                if caught_up:
                    break
        return applied, counts


async def fold_everything(path):
    async with Es.SqliteStreamFactory.new_async(path) as factory:
        counts = {}
        n = 0
        async for event in (await factory.open_stream_async(Es.ALL_STREAM)).read_async(0):
            count(counts, event)
            n += 1
        return n, counts


async def main(path):
    await append(path, "cart-1", "Added", "Added", "Removed", "Added", "CheckedOut")
    await append(path, "cart-2", "Added", "Removed", "Added")

    applied, counts = await project(path, crash_after=5)
    print("first run: applied %d events, then stopped without saving: %s"
          % (applied, json.dumps(counts, sort_keys=True)))

    await append(path, "cart-2", "CheckedOut")
    applied, counts = await project(path)
    print("after the restart: applied %d events: %s"
          % (applied, json.dumps(counts, sort_keys=True)))

    n, expected = await fold_everything(path)
    if counts != expected:
        print("the read model %s differs from the fold of every event %s" % (counts, expected),
              file=sys.stderr)
        return 1
    print("the read model equals a fold of all %d events" % n)

    async with Es.SqliteStreamFactory.new_async(path) as factory:
        for info in await factory.list_subscriptions_async():
            print("%s on %s: checkpoint %d, lag %d" % (info.get_name(), info.get_stream_id(),
                                                       info.get_checkpoint(), info.get_lag()))
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(Es.EventLoopPolicy())
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory(prefix="es-read-model-") as tmp:
        sys.exit(asyncio.run(main(os.path.join(tmp, "events.db"))))
