#!/usr/bin/python3
# counter.py: the counter of examples/demo.c, in Python.
#
# Writes Incremented/Decremented events, rebuilds the count from them,
# snapshots it, and restores from the snapshot.
# Run: /usr/bin/python3 examples/counter.py
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import tempfile

import gi

gi.require_version("Es", "1.0")
from gi.repository import Es, GLib  # noqa: E402


def change(event_type, by):
    data = GLib.Bytes.new(json.dumps({"by": by}).encode())
    return Es.CandidateEvent(event_type=event_type, data=data)


def replay(stream, value, after_version):
    """Applies the events after after_version; returns (value, version)."""
    enumerator = stream.read(after_version, None, None)
    version = after_version
    while (event := enumerator.next(None)) is not None:
        by = json.loads(event.get_data().get_data())["by"]
        value += by if event.get_event_type() == "Incremented" else -by
        version = event.get_version()
    return value, version


with tempfile.TemporaryDirectory() as tmp:
    factory = Es.SqliteStreamFactory.new(os.path.join(tmp, "events.db"), None)
    stream = factory.open_stream("counter-1", None)

    version = stream.write([change("Incremented", 2), change("Incremented", 5),
                            change("Decremented", 1)], Es.VERSION_NO_STREAM, None)
    value, version = replay(stream, 0, 0)
    print(f"counter = {value} at version {version}")

    stream.snapshot(GLib.Bytes.new(json.dumps({"value": value}).encode()), version,
                    "counter", None)
    stream.write([change("Incremented", 10)], version, None)

    snapshot = stream.load_snapshot("counter", None)
    restored = json.loads(snapshot.get_state().get_data())["value"]
    value, version = replay(stream, restored, snapshot.get_version())
    print(f"from the snapshot at version {snapshot.get_version()}: "
          f"counter = {value} at version {version}")
    assert (value, version) == (16, 4)
    factory.close(None)
