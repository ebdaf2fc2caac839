#!/usr/bin/python3
# python-workload-bench.py: the Python workload of issue 21, driven from
# Python through es-glib.
#
# The workload of the Python design es-glib re-implements (its own
# benchmark): EVENTS events, each with an idempotency key (f"k{i}"), written
# in batches of BATCH to one stream of a fresh SQLite file, then read back
# into a collections.Counter of event types plus the total of len(data), so
# that every row's type and data really reach Python. The events have 10
# event types and a small JSON payload of their own.
#
# Three ways of doing it, each on its own fresh file:
#   objects  what a first program writes: one Es.CandidateEvent(...) per
#            event, stream.write(batch), and `for event in stream.read(...)`
#            with event.get_event_type() / event.get_data();
#   fast     what the performance guide ("From Python") recommends:
#            Es.CandidateEvent.new_batch(types, data, keys) per batch, and
#            reading with an Es.EventCursor in windows of 4096 rows
#            (next_rows(), dup_event_types(), dup_data_joined());
#   iter     the same writes; reads `for ... event_type, data in cursor`
#            (the override's per-row tuples, windows underneath).
# "fast" and "iter" need es-glib 0.2 (new_batch, EventCursor); against an
# older build only "objects" runs, which gives the "before" figures.
#
# Prints events/s written and read for each way, the median of RUNS runs,
# by the wall clock and by the CPU time of the process (all its threads,
# which other programs on a busy machine disturb less), and the ratio to the
# seed's figures (60,000 written, 143,000 read per second on this machine
# kind). The targets of issue 21 are 4 x written and 7 x read.
#
# From a build tree:
#   meson devenv -C _build -w . /usr/bin/python3 benchmarks/python-workload-bench.py
# (defaults: --events 1000000 --batch 10000 --runs 3); the test suite runs
# it as a smoke test with --events 20000 --runs 1 (suite benchmarks).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time

import gi

gi.require_version("Es", "1.0")
from gi.repository import Es  # noqa: E402

SEED_WRITE = 60000   # events/s written by the seed's Python design
SEED_READ = 143000   # events/s read by it
N_TYPES = 10
READ_WINDOW = 4096   # rows per window of the cursor's columns


def _clock():
    return time.perf_counter(), time.process_time()


def _elapsed(start, end):
    """(wall seconds, CPU seconds) between two _clock() readings."""
    return end[0] - start[0], end[1] - start[1]


TYPES = tuple("Type%d" % t for t in range(N_TYPES))


def event_type(i):
    return TYPES[i % N_TYPES]


def payload(i):
    return b'{"n": %d}' % i


def expected_answer(events):
    """The Counter and the total of len(data) the read must give."""
    counter = collections.Counter(event_type(i) for i in range(events))
    return counter, sum(len(payload(i)) for i in range(events))


# The events are made inline (not through event_type() and payload()),
# as a program in a hurry would: both ways build the same events.
def write_objects(stream, first, count):
    batch = [Es.CandidateEvent(TYPES[i % N_TYPES], b'{"n": %d}' % i, "k%d" % i)
             for i in range(first, first + count)]
    stream.write(batch, Es.VERSION_ANY, None)


def write_fast(stream, first, count):
    indexes = range(first, first + count)
    batch = Es.CandidateEvent.new_batch([TYPES[i % N_TYPES] for i in indexes],
                                        [b'{"n": %d}' % i for i in indexes],
                                        ["k%d" % i for i in indexes])
    stream.write(batch, Es.VERSION_ANY, None)


def read_objects(stream):
    counter = collections.Counter()
    total = 0
    for event in stream.read(0, None, None):
        counter[event.get_event_type()] += 1
        total += event.get_data().get_size()
    return counter, total


def read_fast(stream):
    counter = collections.Counter()
    total = 0
    with stream.read_cursor(0, None, None) as cursor:
        while cursor.next_rows(READ_WINDOW, None):
            counter.update(cursor.dup_event_types())
            # Every payload of the window, as one bytes object, with the
            # length of each (row i starts at the sum of the lengths
            # before it).
            block, lengths = cursor.dup_data_joined()
            data = block.get_data() or b""
            if len(data) != sum(lengths):
                sys.exit("fast: the joined data do not match their lengths")
            total += len(data)
    return counter, total


def read_iter(stream):
    counter = collections.Counter()
    total = 0
    with stream.read_cursor(0, None, None) as cursor:
        for _sequence_id, _stream_id, _version, event_type, data in cursor:
            counter[event_type] += 1
            total += len(data)
    return counter, total


MODES = {
    "objects": (write_objects, read_objects),
    "fast": (write_fast, read_fast),
    "iter": (write_fast, read_iter),
}


def have_fast_api():
    return hasattr(Es.CandidateEvent, "new_batch") and hasattr(Es.Stream, "read_cursor")


def run(mode, path, events, batch, expected):
    write, read = MODES[mode]
    with Es.SqliteStreamFactory.new(path, None) as factory:
        stream = factory.open_stream("workload", None)
        start = _clock()
        for first in range(0, events, batch):
            write(stream, first, min(batch, events - first))
        written = _clock()
        answer = read(stream)
        done = _clock()
        version = stream.get_version()
    if version != events or answer != expected:
        sys.exit("%s: wrong answer: version %d, %r" % (mode, version, answer))
    return _elapsed(start, written), _elapsed(written, done)


def main():
    parser = argparse.ArgumentParser(
        description="The Python workload of issue 21: 1M events with idempotency "
                    "keys in batches, read back into a Counter")
    parser.add_argument("--events", type=int, default=1000000)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mode", choices=sorted(MODES), action="append",
                        help="run only this way (may be repeated)")
    args = parser.parse_args()

    modes = args.mode or [m for m in MODES if m == "objects" or have_fast_api()]
    if set(modes) - {"objects"} and not have_fast_api():
        sys.exit("This es-glib has no CandidateEvent.new_batch / Stream.read_cursor")
    expected = expected_answer(args.events)
    results = {mode: [] for mode in modes}
    for number in range(args.runs):
        for mode in modes:  # interleaved, so that load drifts hit every way
            with tempfile.TemporaryDirectory(prefix="es-py-workload-") as tmp:
                times = run(mode, os.path.join(tmp, "workload.db"),
                            args.events, args.batch, expected)
            results[mode].append(times)
            (write_wall, write_cpu), (read_wall, read_cpu) = times
            print("run %d %-8s write %6.2f s (CPU %6.2f s)  read %6.2f s (CPU %6.2f s)"
                  % (number + 1, mode, write_wall, write_cpu, read_wall, read_cpu),
                  flush=True)

    print("\n%s events with idempotency keys in batches of %s, median of %d runs"
          % (format(args.events, ","), format(args.batch, ","), args.runs))
    print("seed's Python design: %s written/s, %s read/s"
          % (format(SEED_WRITE, ","), format(SEED_READ, ",")))
    for clock, index in (("wall clock", 0), ("CPU time", 1)):
        print("\nby the %s:" % clock)
        print("%-8s %12s %8s %12s %8s" % ("", "write ev/s", "x seed", "read ev/s", "x seed"))
        for mode, runs in results.items():
            write = statistics.median(args.events / max(w[index], 1e-9) for w, _ in runs)
            read = statistics.median(args.events / max(r[index], 1e-9) for _, r in runs)
            print("%-8s %12s %8.2f %12s %8.2f"
                  % (mode, format(round(write), ","), write / SEED_WRITE,
                     format(round(read), ","), read / SEED_READ))


if __name__ == "__main__":
    main()
