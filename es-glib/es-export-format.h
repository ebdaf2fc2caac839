/* es-export-format.h: one line of the export format (doc/export-format.md).
 *
 * Written against the public API and json-glib only, so that es-tool
 * compiles the same file (tools/meson.build) for `read --json` and
 * `tail --json`: the library's export and the tool write the same bytes
 * from one function. Not installed, not in the GIR, not exported by the
 * library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include <es-glib/es-glib.h>

G_BEGIN_DECLS

/* Appends the export line of @event to @out, with its final newline.
 * @parser is any parser (reused, to check data and metadata);
 * @data_base64: write the data as base64 even when it is JSON. */
void _es_export_append_event (GString       *out,
                              JsonParser    *parser,
                              EsStoredEvent *event,
                              gboolean       data_base64);

G_END_DECLS
