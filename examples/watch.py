#!/usr/bin/python3
# watch.py: watch a stream from Python with a GLib main loop.
#
# A watch first replays the stored history, says "caught-up", then delivers
# new events as they are committed. Run: /usr/bin/python3 examples/watch.py
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import tempfile

import gi

gi.require_version("Es", "1.0")
from gi.repository import Es, GLib  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as tmp:
        factory = Es.SqliteStreamFactory.new(os.path.join(tmp, "events.db"), None)
        stream = factory.open_stream("thermostat-1", None)

        for celsius in (19, 20):
            stream.write([Es.CandidateEvent(event_type="TemperatureSet", data=str(celsius))],
                         Es.VERSION_ANY, None)

        loop = GLib.MainLoop()
        watch = stream.watch(0)

        def on_event(_watch, event):
            print(f"  v{event.get_version()} {event.get_event_type()} "
                  f"{event.data_bytes.decode()} °C")
            if event.get_version() == 4:
                loop.quit()

        def on_caught_up(_watch):
            print("caught up with the history; now live:")
            # Two live events, written once the watch is live.
            for celsius in (21, 22):
                stream.write_async([Es.CandidateEvent(event_type="TemperatureSet",
                                                      data=str(celsius))],
                                   Es.VERSION_ANY, None,
                                   lambda source, result: source.write_finish(result))

        def on_error(_watch, error):
            print("watch failed:", error.message)
            loop.quit()

        watch.connect("event", on_event)
        watch.connect("caught-up", on_caught_up)
        watch.connect("error", on_error)

        print("history:")
        GLib.timeout_add_seconds(30, loop.quit)
        loop.run()

        watch.stop()
        factory.close(None)


if __name__ == "__main__":
    main()
