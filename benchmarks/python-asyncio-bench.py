#!/usr/bin/python3
# python-asyncio-bench.py: the cost of es-glib's asyncio layer for Python.
#
# The same workload twice, each on a fresh SQLite file: EVENTS events
# written in batches of BATCH to one stream, then read back in full;
# once through the synchronous calls
#   stream.write(batch, Es.VERSION_ANY, None)
#   for event in stream.read(0, None, None)
# once through the synchronous calls reading in batches as the asyncio
# layer does (like for like: the same 1024 events per call)
#   stream.write(batch, Es.VERSION_ANY, None)
#   enumerator.next_batch(1024, None) until empty
# and once through the asyncio layer of the override
#   await stream.write_async(batch, Es.VERSION_ANY)
#   async for event in stream.read_async(0)
# Prints events/s of each phase, the median of RUNS runs, by the wall clock
# and by the CPU time of the process (all its threads), which other
# programs on a busy machine disturb less.
#
# From a build tree:
#   meson devenv -C _build -w . /usr/bin/python3 benchmarks/python-asyncio-bench.py
# (defaults: --events 1000000 --batch 10000 --runs 3)
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import gi

gi.require_version("Es", "1.0")
from gi.repository import Es  # noqa: E402


def _clock():
    return time.perf_counter(), time.process_time()


def _elapsed(start, end):
    """(wall seconds, CPU seconds) between two _clock() readings."""
    return end[0] - start[0], end[1] - start[1]


READ_BATCH = 1024  # what `async for` over a read fetches per next_batch_async()


def make_batch(size):
    # One batch, written again and again: events without idempotency keys
    # are appended each time.
    return [Es.CandidateEvent("Incremented", data=b'{"by": 1}') for _ in range(size)]


def run_sync(path, events, batch, batched_reads=False):
    candidates = make_batch(batch)
    with Es.SqliteStreamFactory.new(path, None) as factory:
        stream = factory.open_stream("bench", None)
        start = _clock()
        for _ in range(events // batch):
            stream.write(candidates, Es.VERSION_ANY, None)
        written = _clock()
        count = last = 0
        if batched_reads:
            enumerator = stream.read(0, None, None)
            while True:
                page = enumerator.next_batch(READ_BATCH, None)
                if not page:
                    break
                for event in page:
                    count += 1
                    last = event.get_version()
        else:
            for event in stream.read(0, None, None):
                count += 1
                last = event.get_version()
        read = _clock()
    assert count == last == events, (count, last)
    return _elapsed(start, written), _elapsed(written, read)


async def run_asyncio(path, events, batch):
    candidates = make_batch(batch)
    async with Es.SqliteStreamFactory.new_async(path) as factory:
        stream = await factory.open_stream_async("bench")
        start = _clock()
        for _ in range(events // batch):
            await stream.write_async(candidates, Es.VERSION_ANY)
        written = _clock()
        count = last = 0
        async for event in stream.read_async(0):
            count += 1
            last = event.get_version()
        read = _clock()
    assert count == last == events, (count, last)
    return _elapsed(start, written), _elapsed(written, read)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000000)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    asyncio.set_event_loop_policy(Es.EventLoopPolicy())
    results = {"sync": [], "sync-batch": [], "asyncio": []}
    for run in range(args.runs):
        for mode in results:
            with tempfile.TemporaryDirectory(prefix="es-py-bench-") as tmp:
                path = os.path.join(tmp, "bench.db")
                if mode.startswith("sync"):
                    times = run_sync(path, args.events, args.batch, mode == "sync-batch")
                else:
                    times = asyncio.run(run_asyncio(path, args.events, args.batch))
            results[mode].append(times)
            (write_wall, write_cpu), (read_wall, read_cpu) = times
            print("run %d %-10s write %6.2f s (CPU %6.2f s)  read %6.2f s (CPU %6.2f s)"
                  % (run + 1, mode, write_wall, write_cpu, read_wall, read_cpu), flush=True)

    print("\n%d events in batches of %d, median of %d runs (loop: %s)"
          % (args.events, args.batch, args.runs, Es.LOOP_INTEGRATION))
    for clock, index in (("wall clock", 0), ("CPU time", 1)):
        print("\nby the %s:" % clock)
        print("%-10s %14s %14s" % ("", "write ev/s", "read ev/s"))
        medians = {}
        for mode, runs in results.items():
            write = statistics.median(args.events / w[index] for w, _ in runs)
            read = statistics.median(args.events / r[index] for _, r in runs)
            medians[mode] = (write, read)
            print("%-10s %14s %14s" % (mode, format(round(write), ","),
                                       format(round(read), ",")))
        for base in ("sync", "sync-batch"):
            print("asyncio/%s: write %.2f, read %.2f"
                  % (base, medians["asyncio"][0] / medians[base][0],
                     medians["asyncio"][1] / medians[base][1]))


if __name__ == "__main__":
    main()
