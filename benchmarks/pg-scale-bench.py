#!/usr/bin/python3
# pg-scale-bench.py: PostgreSQL appends from many writer processes, for
# doc/postgres-scaling.md (issue 22).
#
# Usage:
#   ES_PG_FSYNC=on build-aux/pg-test-server run /usr/bin/python3 \
#     benchmarks/pg-scale-bench.py [--runs R] [--events N] [--batch B] \
#     [--writers 1,2,4,8,16] [--no-watch] NAME=BUILDDIR [NAME=BUILDDIR...]
#
# For each number of writers N, each run and each build (interleaved, each
# build first in every other run): a fresh schema, created by that build's
# tests/postgres/es-pg-writer (one event to a stream of its own); then an
# @all watch in a process of its own (this script again, --watch, on the
# build's typelibs) and N es-pg-writer processes started at once, each
# appending N events in batches of B (single events: B = 1) to a stream of
# its own.
#
# Throughput: the events acknowledged while all N writers were writing
# (from the moment the last one acknowledged its first write to the
# moment the first one acknowledged its last), per second: process start,
# connection and schema checks stay out of it.
# Watch latency: for every event the watch emits, the wall-clock time of
# the ::event signal minus the event's recorded_at (the server's
# clock_timestamp() at its insert, before the commit): the write-to-watch
# delay, which holds the commit's flush and any time spent held back
# behind the horizon.
#
# Prints one table row per N and build: the median over the runs of the
# throughput, and of the median and the 99th percentile latency.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import statistics
import subprocess
import sys
import threading
import time


def build_env(build):
    env = dict(os.environ)
    typelibs = [os.path.join(build, "introspection"), os.path.join(build, "es-glib", "postgres")]
    libs = [os.path.join(build, "es-glib"), os.path.join(build, "es-glib", "postgres")]
    env["GI_TYPELIB_PATH"] = ":".join(typelibs + [env.get("GI_TYPELIB_PATH", "")])
    env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH", "")])
    return env


def watch_main(conninfo, schema, expected):
    """The watcher process: an @all watch from the current head until
    @expected events arrived; prints their latencies (ms) as JSON."""
    import gi
    gi.require_version("Es", "1.0")
    gi.require_version("EsPg", "1.0")
    from gi.repository import GLib, Es, EsPg  # noqa: F401

    factory = EsPg.StreamFactory(conninfo=conninfo, schema=schema, pool_size=2)
    factory.init(None)
    stream = factory.open_stream("@all", None)
    latencies = []
    loop = GLib.MainLoop()

    def on_event(watch, stored):
        now = GLib.get_real_time()
        latencies.append((now - stored.get_timestamp_usec()) / 1000.0)
        if len(latencies) >= expected:
            loop.quit()

    watch = stream.watch(stream.query_version(None))
    watch.connect("event", on_event)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    loop.run()
    watch.stop()
    factory.close(None)
    sys.stdout.write(json.dumps(latencies) + "\n")
    sys.stdout.flush()


def read_acks(process, times):
    for _ in process.stdout:
        times.append(time.monotonic())


def one_run(name, build, conninfo, n_writers, n_events, batch, counter, watch=True):
    env = build_env(build)
    writer = os.path.join(build, "tests", "postgres", "es-pg-writer")
    schema = "es_scale_%s_%d_%d" % (name, os.getpid(), counter)
    subprocess.run([writer, conninfo, schema, "warmup", "1"], env=env, check=True,
                   stdout=subprocess.DEVNULL)

    per_writer = (n_events // batch) * batch
    watcher = None
    if watch:
        watcher = subprocess.Popen([sys.executable, __file__, "--watch", conninfo, schema,
                                    str(n_writers * per_writer)],
                                   env=env, stdout=subprocess.PIPE, text=True)
        assert watcher.stdout.readline().strip() == "ready"

    writers = []
    ack_times = []
    threads = []
    for i in range(n_writers):
        p = subprocess.Popen([writer, conninfo, schema, "w%d" % i, str(per_writer), str(batch)],
                             env=env, stdout=subprocess.PIPE, text=True)
        times = []
        t = threading.Thread(target=read_acks, args=(p, times))
        t.start()
        writers.append(p)
        ack_times.append(times)
        threads.append(t)
    for p, t in zip(writers, threads):
        t.join()
        if p.wait() != 0:
            raise SystemExit("%s: es-pg-writer failed" % name)
    latencies = [0.0]
    if watcher is not None:
        out, _ = watcher.communicate(timeout=120)
        latencies = json.loads(out.strip().splitlines()[-1])

    start = max(times[0] for times in ack_times)
    end = min(times[-1] for times in ack_times)
    acked = sum(1 for times in ack_times for t in times if start < t <= end) * batch
    if end <= start or acked == 0:
        # One writer, or no overlap: the whole span of the acks.
        start = min(times[0] for times in ack_times)
        end = max(times[-1] for times in ack_times)
        acked = (sum(len(times) for times in ack_times) - n_writers) * batch
    throughput = acked / (end - start)

    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    subprocess.run(["psql", conninfo, "-q", "-c", "DROP SCHEMA %s CASCADE" % schema],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return throughput, p50, p99


def main(argv):
    if len(argv) > 1 and argv[1] == "--watch":
        watch_main(argv[2], argv[3], int(argv[4]))
        return

    runs, n_events, batch, watch = 3, 400, 1, True
    writer_counts = [1, 2, 4, 8, 16]
    builds = []
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--events":
            n_events = int(args.pop(0))
        elif a == "--batch":
            batch = int(args.pop(0))
        elif a == "--no-watch":
            watch = False
        elif a == "--writers":
            writer_counts = [int(x) for x in args.pop(0).split(",")]
        else:
            name, _, build = a.partition("=")
            builds.append((name, build))
    conninfo = os.environ.get("ES_TEST_PG_CONNINFO")
    if not builds or conninfo is None:
        raise SystemExit(__doc__ or "usage: see the top of pg-scale-bench.py")

    counter = 0
    print("| writers | build | events/s | watch latency median (ms) | p99 (ms) |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in writer_counts:
        results = {name: [] for name, _ in builds}
        for r in range(runs):
            order = builds if r % 2 == 0 else list(reversed(builds))
            for name, build in order:
                counter += 1
                results[name].append(one_run(name, build, conninfo, n, n_events, batch,
                                             counter, watch))
        for name, _ in builds:
            rs = results[name]
            print("| %d | %s | %s | %.1f | %.1f |" % (
                n, name, format(round(statistics.median(x[0] for x in rs)), ","),
                statistics.median(x[1] for x in rs), statistics.median(x[2] for x in rs)))
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
