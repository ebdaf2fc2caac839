// Where the EsPg reference links to the types of its dependencies: the
// core's reference is installed next to it.
// SPDX-License-Identifier: LGPL-2.1-or-later
baseURLs = [
    [ 'Es', '../es-glib-1.0/' ],
    [ 'GLib', 'https://docs.gtk.org/glib/' ],
    [ 'GObject', 'https://docs.gtk.org/gobject/' ],
    [ 'Gio', 'https://docs.gtk.org/gio/' ],
]
