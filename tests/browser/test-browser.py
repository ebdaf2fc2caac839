#!/usr/bin/python3
# test-browser.py: the GTK 4 event browser (examples/event-browser.py) in a
# real display. Under Xvfb (xvfb-run), it starts the browser on a prepared
# SQLite database, checks the rows GTK shows (through the widgets), appends
# an event from another process and waits for it to appear at the top,
# checks the details pane and the filter, and saves a screenshot of the
# window as a test artefact (a PNG rendered with GtkWidgetPaintable and the
# window's GskRenderer).
#
# Usage: test-browser.py BROWSER.py SCREENSHOT.png
# Exits 77 (skipped) when no display can be started.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

import gi

SKIP = 77
MARKER = "ES_BROWSER_TEST_STARTED"


def rerun_under_xvfb():
    """Runs this script again inside xvfb-run; skips when there is no Xvfb
    or it cannot start."""
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None or shutil.which("Xvfb") is None:
        print("1..0 # SKIP xvfb-run and Xvfb are needed (Debian: xvfb)")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="es-browser-") as tmp:
        marker = os.path.join(tmp, "started")
        env = dict(os.environ, ES_BROWSER_UNDER_XVFB="1", ES_BROWSER_MARKER=marker,
                   GDK_BACKEND="x11", GSK_RENDERER="cairo", NO_AT_BRIDGE="1",
                   ADW_DISABLE_PORTAL="1", GTK_A11Y="none")
        env.pop("WAYLAND_DISPLAY", None)
        rc = subprocess.call([xvfb_run, "-a", "-s", "-screen 0 1280x800x24",
                              sys.executable, __file__] + sys.argv[1:], env=env)
        if rc != 0 and not os.path.exists(marker):
            print("1..0 # SKIP the X server did not start")
            return SKIP
        return rc


def load_browser(path):
    spec = importlib.util.spec_from_file_location("event_browser", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(path, Es, GLib):
    factory = Es.SqliteStreamFactory.new(path, None)
    orders = factory.open_stream("order-1", None)
    for i, event_type in enumerate(["OrderPlaced", "ItemAdded", "ItemAdded", "OrderPaid",
                                    "OrderShipped"]):
        event = Es.CandidateEvent.new(event_type, GLib.Bytes.new(
            b'{"order": 1, "step": %d, "items": ["tea", "cups"]}' % i))
        event.set_metadata('{"user": "alice", "step": %d}' % i)
        orders.write([event], Es.VERSION_ANY, None)
    carts = factory.open_stream("cart-1", None)
    carts.write([Es.CandidateEvent.new("CartOpened", GLib.Bytes.new(b"\x00\x01binary\xff"))],
                Es.VERSION_ANY, None)
    factory.close(None)


WRITER = """
import sys
import gi
gi.require_version("Es", "1.0")
from gi.repository import Es, GLib
factory = Es.SqliteStreamFactory.new(sys.argv[1], None)
event = Es.CandidateEvent.new("OrderRefunded", GLib.Bytes.new(b'{"order": 1, "refund": 42}'))
event.set_metadata('{"user": "bob"}')
factory.open_stream("order-1", None).write([event], Es.VERSION_ANY, None)
factory.close(None)
"""


def save_screenshot(window, path):
    """Renders the window to a PNG (GtkWidgetPaintable, then the window's
    GskRenderer): what the display shows, without a screen grabber.
    Through ctypes, since PyGObject cannot hold a GskRenderNode."""
    import ctypes

    gtk = ctypes.CDLL("libgtk-4.so.1")
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    native = get_pointer(window.__gpointer__, None)
    # The window's content: a paintable of the toplevel itself draws
    # nothing (the toplevel is drawn by its surface, not by a parent).
    content = window.get_content()
    widget = get_pointer(content.__gpointer__, None)

    class Rect(ctypes.Structure):
        _fields_ = [("x", ctypes.c_float), ("y", ctypes.c_float),
                    ("width", ctypes.c_float), ("height", ctypes.c_float)]

    class RGBA(ctypes.Structure):
        _fields_ = [("red", ctypes.c_float), ("green", ctypes.c_float),
                    ("blue", ctypes.c_float), ("alpha", ctypes.c_float)]

    for name, restype, argtypes in [
            ("gtk_widget_paintable_new", ctypes.c_void_p, [ctypes.c_void_p]),
            ("gtk_snapshot_new", ctypes.c_void_p, []),
            ("gtk_snapshot_append_color", None, [ctypes.c_void_p, ctypes.POINTER(RGBA),
                                                 ctypes.POINTER(Rect)]),
            ("gdk_paintable_snapshot", None, [ctypes.c_void_p, ctypes.c_void_p,
                                              ctypes.c_double, ctypes.c_double]),
            ("gtk_snapshot_free_to_node", ctypes.c_void_p, [ctypes.c_void_p]),
            ("gtk_native_get_renderer", ctypes.c_void_p, [ctypes.c_void_p]),
            ("gsk_renderer_render_texture", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p,
                                                              ctypes.POINTER(Rect)]),
            ("gdk_texture_save_to_png", ctypes.c_bool, [ctypes.c_void_p, ctypes.c_char_p]),
            ("gdk_texture_get_width", ctypes.c_int, [ctypes.c_void_p]),
            ("gdk_texture_get_height", ctypes.c_int, [ctypes.c_void_p]),
            ("gsk_render_node_unref", None, [ctypes.c_void_p]),
            ("g_object_unref", None, [ctypes.c_void_p])]:
        getattr(gtk, name).restype = restype
        getattr(gtk, name).argtypes = argtypes

    width, height = content.get_width(), content.get_height()
    rect = Rect(0, 0, width, height)
    found, color = window.get_style_context().lookup_color("window_bg_color")
    background = RGBA(color.red, color.green, color.blue, 1.0) if found else RGBA(1, 1, 1, 1)
    paintable = gtk.gtk_widget_paintable_new(widget)
    snapshot = gtk.gtk_snapshot_new()
    # The window's background first: the paintable draws its widgets only.
    gtk.gtk_snapshot_append_color(snapshot, ctypes.byref(background), ctypes.byref(rect))
    gtk.gdk_paintable_snapshot(paintable, snapshot, width, height)
    node = gtk.gtk_snapshot_free_to_node(snapshot)
    texture = gtk.gsk_renderer_render_texture(gtk.gtk_native_get_renderer(native), node,
                                              ctypes.byref(rect))
    saved = gtk.gdk_texture_save_to_png(texture, path.encode())
    size = (gtk.gdk_texture_get_width(texture), gtk.gdk_texture_get_height(texture))
    gtk.g_object_unref(texture)
    gtk.gsk_render_node_unref(node)
    gtk.g_object_unref(paintable)
    return saved, size


def main():
    if not os.environ.get("ES_BROWSER_UNDER_XVFB"):
        return rerun_under_xvfb()
    with open(os.environ["ES_BROWSER_MARKER"], "w"):
        pass

    browser_path, screenshot = sys.argv[1], sys.argv[2]
    gi.require_version("Gtk", "4.0")
    from gi.repository import Gtk

    if not Gtk.init_check():
        print("1..0 # SKIP cannot open the display %s" % os.environ.get("DISPLAY"))
        return SKIP
    browser = load_browser(browser_path)
    from gi.repository import Es, GLib

    results = []

    def check(condition, what):
        results.append((bool(condition), what))
        print("%s %d - %s" % ("ok" if condition else "not ok", len(results), what), flush=True)
        return condition

    def run_until(condition, seconds=30):
        context = GLib.MainContext.default()
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            context.iteration(False) or time.sleep(0.005)
        # A few more frames, so that what is checked was drawn.
        for _ in range(20):
            context.iteration(False)
        return True

    with tempfile.TemporaryDirectory(prefix="es-browser-db-") as tmp:
        path = os.path.join(tmp, "events.db")
        prepare(path, Es, GLib)

        app = browser.EventBrowser([path])
        app.register(None)
        app.activate()
        window = app.window
        check(window is not None and run_until(window.get_mapped), "the window is shown")

        streams = [window.streams.get_string(i) for i in range(window.streams.get_n_items())]
        check(streams == [Es.ALL_STREAM, "cart-1", "order-1"], "the sidebar lists %s" % streams)
        check(run_until(lambda: len(window.visible_rows()) == 6),
              "@all shows its 6 events: %s" % window.visible_rows())

        window.stream_selection.set_selected(streams.index("order-1"))
        expected = ["5 OrderShipped", "4 OrderPaid", "3 ItemAdded", "2 ItemAdded",
                    "1 OrderPlaced"]
        check(run_until(lambda: window.visible_rows() == expected),
              "order-1 shows its events newest first: %s" % window.visible_rows())
        check(run_until(lambda: "version 5" in window.info_label.get_label()),
              "the stream's information: %s" % window.info_label.get_label())

        # Another process appends: the row appears at the top.
        subprocess.check_call([sys.executable, "-c", WRITER, path])
        check(run_until(lambda: window.visible_rows()[:2] == ["6 OrderRefunded", "5 OrderShipped"]),
              "the event from another process appears: %s" % window.visible_rows())
        check(run_until(lambda: "6 events" in window.count_label.get_label()),
              "the count follows: %s" % window.count_label.get_label())

        window.event_selection.set_selected(0)
        buffer = window.details.get_buffer()
        details = buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), False)
        check('"refund": 42' in details and '"user": "bob"' in details
              and "Type:         OrderRefunded" in details,
              "the details pane pretty-prints data and metadata")

        window.search.set_text("Item")
        window.reload_events()
        check(run_until(lambda: window.visible_rows() == ["3 ItemAdded", "2 ItemAdded"]),
              "the filter keeps the ItemAdded events: %s" % window.visible_rows())
        window.search.set_text("user=bob")
        window.reload_events()
        check(run_until(lambda: window.visible_rows() == ["6 OrderRefunded"]),
              "a metadata filter: %s" % window.visible_rows())

        window.stream_selection.set_selected(streams.index("cart-1"))
        window.search.set_text("")
        window.reload_events()
        check(run_until(lambda: window.visible_rows() == ["1 CartOpened"]), "cart-1's event")
        window.event_selection.set_selected(0)
        details = buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), False)
        check("00000000  00 01 62 69 6e 61 72 79 ff" in details,
              "binary data is shown as hex")

        # The screenshot, on order-1 with an event selected.
        window.stream_selection.set_selected(streams.index("order-1"))
        check(run_until(lambda: len(window.visible_rows()) == 6), "back on order-1")
        window.event_selection.set_selected(0)
        # A widget's paintable is what it last drew: wait for a frame
        # painted after the selection.
        painted = []
        clock = window.get_frame_clock()
        handler = clock.connect("after-paint", lambda c: painted.append(True))
        window.queue_draw()
        check(run_until(lambda: len(painted) >= 2), "a frame was painted")
        clock.disconnect(handler)
        saved, size = save_screenshot(window, screenshot)
        check(saved and os.path.getsize(screenshot) > 10000
              and size == (window.get_content().get_width(),
                           window.get_content().get_height()),
              "screenshot saved to %s (%dx%d)" % ((screenshot,) + size))
        window.all_watch.stop()
        window.factory.close(None)
        window.destroy()
        run_until(lambda: True)

    print("1..%d" % len(results))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
