// Where the reference links to the types of es-glib's dependencies.
// SPDX-License-Identifier: LGPL-2.1-or-later
baseURLs = [
    [ 'GLib', 'https://docs.gtk.org/glib/' ],
    [ 'GObject', 'https://docs.gtk.org/gobject/' ],
    [ 'Gio', 'https://docs.gtk.org/gio/' ],
]
