#!/usr/bin/python3
# event-browser.py: a GTK 4 browser for any es-glib database.
#
#   event-browser.py EVENTS.db            a SQLite file
#   event-browser.py --pg "CONNINFO"      a PostgreSQL database (EsPg)
#
# Streams in the sidebar (and <code>@all</code>), the selected stream's
# events newest first in a GtkListView over Es.EventListModel (lazy and
# live: what another process writes appears at the top), the selected
# event's data (pretty-printed when it is JSON, a hex dump otherwise) and
# metadata in the details pane, a filter entry (an event type pattern such
# as "Order%", or key=value on the metadata), and the stream's information.
#
# The library never depends on GTK; this example is installed only when
# GTK 4 and libadwaita are present. tests/browser/test-browser.py runs it
# under Xvfb.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import sys

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
gi.require_version("Es", "1.0")
from gi.repository import Adw, Es, GLib, Gtk  # noqa: E402

ALL = Es.ALL_STREAM


def open_factory(argv):
    """A factory from the command line: a SQLite path, or --pg CONNINFO."""
    if len(argv) >= 2 and argv[0] == "--pg":
        gi.require_version("EsPg", "1.0")
        from gi.repository import EsPg

        return EsPg.StreamFactory.new(argv[1], None), argv[1]
    if len(argv) != 1:
        raise SystemExit("usage: event-browser.py EVENTS.db | --pg CONNINFO")
    return Es.SqliteStreamFactory.new(argv[0], None), argv[0]


def parse_filter(text):
    """The filter entry: empty for every event, key=value for a metadata
    value (a number when it reads as one), else an event type pattern
    (SQL LIKE: % and _, a bare word matches as a prefix)."""
    text = text.strip()
    if not text:
        return None
    event_filter = Es.EventFilter.new()
    if "=" in text:
        key, value = (part.strip() for part in text.split("=", 1))
        try:
            variant = GLib.Variant("x", int(value))
        except ValueError:
            variant = GLib.Variant("s", value)
        event_filter.add_equals("metadata." + key, variant)
    else:
        pattern = text if ("%" in text or "_" in text) else text + "%"
        event_filter.add_like("event_type", pattern)
    return event_filter


def pretty_bytes(data):
    """JSON pretty-printed when the bytes are JSON, else a hex dump."""
    if not data:
        return "(no data)"
    try:
        return json.dumps(json.loads(data.decode("utf-8")), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError):
        pass
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset:offset + 16]
        hexes = " ".join("%02x" % b for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append("%08x  %-47s  %s" % (offset, hexes, text))
    return "\n".join(lines)


def pretty_metadata(metadata):
    if not metadata:
        return "(no metadata)"
    try:
        return json.dumps(json.loads(metadata), indent=2, ensure_ascii=False)
    except ValueError:
        return metadata


def format_time(event):
    return event.get_timestamp().to_local().format("%Y-%m-%d %H:%M:%S")


def describe_event(event):
    """The details pane's text."""
    data = event.get_data()
    lines = [
        "Stream:       %s" % event.get_stream_id(),
        "Version:      %d" % event.get_version(),
        "Sequence id:  %d" % event.get_sequence_id(),
        "Type:         %s" % event.get_event_type(),
        "Time:         %s" % event.get_timestamp().to_local().format("%Y-%m-%d %H:%M:%S.%f"),
        "Key:          %s" % (event.get_idempotency_key() or "-"),
    ]
    if event.get_erased():
        lines.append("Erased:       yes")
    lines += ["", "Data", "----", pretty_bytes(data.get_data() if data else b""),
              "", "Metadata", "--------", pretty_metadata(event.get_metadata())]
    return "\n".join(lines)


def describe_info(info):
    if info is None:
        return ""
    state = {Es.StreamState.ACTIVE: "active", Es.StreamState.DELETED: "deleted",
             Es.StreamState.TOMBSTONED: "deleted for good"}.get(info.get_state(), "?")
    parts = ["version %d" % info.get_current_version(),
             "%d events" % info.get_event_count(), state]
    first, last = info.get_first_timestamp(), info.get_last_timestamp()
    if first is not None and last is not None:
        parts.append("%s – %s" % (first.to_local().format("%Y-%m-%d %H:%M"),
                                  last.to_local().format("%Y-%m-%d %H:%M")))
    if info.get_max_count() > 0:
        parts.append("keeps %d" % info.get_max_count())
    if info.get_max_age() > 0:
        parts.append("keeps %d days" % (info.get_max_age() // GLib.TIME_SPAN_DAY))
    return " · ".join(parts)


class BrowserWindow(Adw.ApplicationWindow):
    def __init__(self, application, factory, title):
        super().__init__(application=application, title="Events", default_width=1100,
                         default_height=640)
        self.factory = factory
        self.stream_id = None
        self.model = None

        header = Adw.HeaderBar()
        header.set_title_widget(Adw.WindowTitle(title="Events", subtitle=title))

        # Sidebar: the streams, @all first; new streams appear live.
        self.streams = Gtk.StringList()
        self.streams.append(ALL)
        self.stream_selection = Gtk.SingleSelection(model=self.streams)
        self.stream_selection.connect("notify::selected", self.on_stream_selected)
        stream_factory = Gtk.SignalListItemFactory()
        stream_factory.connect("setup", lambda f, item: item.set_child(
            Gtk.Label(xalign=0, margin_start=8, margin_end=8, margin_top=4, margin_bottom=4)))
        stream_factory.connect("bind", lambda f, item: item.get_child().set_label(
            item.get_item().get_string()))
        self.stream_list = Gtk.ListView(model=self.stream_selection, factory=stream_factory)
        self.stream_list.add_css_class("navigation-sidebar")
        sidebar = Gtk.ScrolledWindow(child=self.stream_list, width_request=180)

        # The events of the selected stream.
        self.search = Gtk.SearchEntry(placeholder_text="Event type (Order%) or key=value")
        self.search.connect("activate", self.on_filter_changed)
        self.search.connect("search-changed", self.on_filter_changed)
        self.info_label = Gtk.Label(xalign=0, ellipsize=3, css_classes=["dim-label"])
        self.count_label = Gtk.Label(xalign=1, css_classes=["dim-label"])
        event_factory = Gtk.SignalListItemFactory()
        event_factory.connect("setup", self.on_event_setup)
        event_factory.connect("bind", self.on_event_bind)
        self.event_selection = Gtk.SingleSelection(autoselect=False, can_unselect=True)
        self.event_selection.connect("notify::selected-item", self.on_event_selected)
        self.event_list = Gtk.ListView(model=self.event_selection, factory=event_factory,
                                       vexpand=True)
        self.event_list.add_css_class("rich-list")
        events_box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin_start=6,
                             margin_end=6, margin_top=6, margin_bottom=6)
        top = Gtk.Box(spacing=6)
        top.append(self.info_label)
        self.info_label.set_hexpand(True)
        top.append(self.count_label)
        events_box.append(self.search)
        events_box.append(top)
        events_box.append(Gtk.ScrolledWindow(child=self.event_list, vexpand=True))

        # Details of the selected event.
        self.details = Gtk.TextView(editable=False, monospace=True, cursor_visible=False,
                                    left_margin=8, right_margin=8, top_margin=8,
                                    wrap_mode=Gtk.WrapMode.WORD_CHAR)
        details = Gtk.ScrolledWindow(child=self.details, width_request=340)

        inner = Gtk.Paned(start_child=events_box, end_child=details, position=420,
                          shrink_start_child=False, shrink_end_child=False)
        outer = Gtk.Paned(start_child=sidebar, end_child=inner, position=200,
                          shrink_start_child=False)
        toolbar = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
        toolbar.append(header)
        toolbar.append(outer)
        outer.set_vexpand(True)
        self.set_content(toolbar)

        self.load_streams()
        # New streams, from this process or another: a watch of @all.
        self.all_watch = factory.open_stream(ALL, None).watch(-1)
        self.all_watch.connect("event", self.on_any_event)
        self.show_stream(ALL)

    # --- streams -----------------------------------------------------------

    def load_streams(self):
        known = {self.streams.get_string(i) for i in range(self.streams.get_n_items())}
        enumerator = self.factory.list_streams(None, Es.ListStreamsFlags.NONE, None)
        while True:
            info = enumerator.next(None)
            if info is None:
                break
            if info.get_stream_id() not in known:
                self.streams.append(info.get_stream_id())

    def on_any_event(self, watch, event):
        stream_id = event.get_stream_id()
        if all(self.streams.get_string(i) != stream_id
               for i in range(self.streams.get_n_items())):
            self.streams.append(stream_id)
        if self.stream_id == ALL or stream_id == self.stream_id:
            self.update_info()

    def on_stream_selected(self, selection, pspec):
        item = selection.get_selected_item()
        if item is not None:
            self.show_stream(item.get_string())

    def show_stream(self, stream_id):
        self.stream_id = stream_id
        self.reload_events()
        self.update_info()

    def update_info(self):
        self.factory.get_stream_info_async(self.stream_id, None, self.on_info, self.stream_id)

    def on_info(self, factory, result, stream_id):
        try:
            info = factory.get_stream_info_finish(result)
        except GLib.Error as error:
            self.info_label.set_label(error.message)
            return
        if stream_id == self.stream_id:
            self.info_label.set_label(describe_info(info))

    # --- events ------------------------------------------------------------

    def reload_events(self):
        try:
            event_filter = parse_filter(self.search.get_text())
            self.search.remove_css_class("error")
        except GLib.Error:
            event_filter = None
            self.search.add_css_class("error")
        self.model = Es.EventListModel.new(self.factory, self.stream_id, event_filter,
                                           Es.EventListModelFlags.NEWEST_FIRST)
        self.model.connect("notify::n-items", self.on_count_changed)
        self.model.connect("notify::loading", self.on_count_changed)
        self.event_selection.set_model(self.model)
        self.on_count_changed(self.model, None)
        self.show_details(None)

    def on_filter_changed(self, entry):
        self.reload_events()

    def on_count_changed(self, model, pspec):
        if model is not self.model:
            return
        if model.get_loading():
            self.count_label.set_label("Counting…")
        else:
            self.count_label.set_label("%d events" % model.get_n_items())

    def on_event_setup(self, factory, item):
        row = Gtk.Box(spacing=12, margin_top=2, margin_bottom=2)
        version = Gtk.Label(xalign=1, width_chars=6, css_classes=["numeric", "dim-label"])
        event_type = Gtk.Label(xalign=0, hexpand=True, ellipsize=3, css_classes=["heading"])
        stream = Gtk.Label(xalign=0, ellipsize=3, css_classes=["dim-label"])
        time = Gtk.Label(xalign=1, css_classes=["numeric", "dim-label"])
        for child in (version, event_type, stream, time):
            row.append(child)
        item.set_child(row)

    def on_event_bind(self, factory, item):
        event = item.get_item()
        version, event_type, stream, time = self.row_labels(item.get_child())
        if self.stream_id == ALL:
            version.set_label("#%d" % event.get_sequence_id())
            stream.set_label(event.get_stream_id())
            stream.set_visible(True)
        else:
            version.set_label("%d" % event.get_version())
            stream.set_visible(False)
        event_type.set_label(event.get_event_type() + (" (erased)" if event.get_erased() else ""))
        time.set_label(format_time(event))

    @staticmethod
    def row_labels(row):
        labels = []
        child = row.get_first_child()
        while child is not None:
            labels.append(child)
            child = child.get_next_sibling()
        return labels

    def on_event_selected(self, selection, pspec):
        self.show_details(selection.get_selected_item())

    def show_details(self, event):
        self.details.get_buffer().set_text(describe_event(event) if event is not None else
                                           "Select an event to see its data and metadata.")

    # --- for the tests -----------------------------------------------------

    def visible_rows(self):
        """The texts of the event rows GTK built and shows, top to bottom."""
        rows = []
        child = self.event_list.get_first_child()
        while child is not None:
            if child.get_mapped() and child.get_first_child() is not None:
                box = child.get_first_child()
                labels = self.row_labels(box)
                if len(labels) == 4:
                    y = child.compute_bounds(self.event_list)[1].get_y()
                    rows.append((y, " ".join(l.get_label() for l in labels[:3]
                                             if l.get_visible())))
            child = child.get_next_sibling()
        return [text for _, text in sorted(rows)]


class EventBrowser(Adw.Application):
    def __init__(self, argv):
        super().__init__(application_id="org.gnome.EsGlib.EventBrowser",
                         flags=0x10)  # G_APPLICATION_NON_UNIQUE: several at once
        self.argv = argv
        self.window = None

    def do_activate(self):
        if self.window is None:
            factory, title = open_factory(self.argv)
            self.window = BrowserWindow(self, factory, title)
        self.window.present()


def main(argv):
    app = EventBrowser(argv[1:])
    return app.run([argv[0]])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
