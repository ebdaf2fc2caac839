/* es-export-format-private.h: one line of the export format
 * (doc/export-format.md).
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
 * Data and metadata that are JSON are written as they are stored (see
 * doc/export-format.md for when). @parser is any parser (reused, to check
 * them);
 * @data_base64: write the data as base64 even when it is JSON. */
void _es_export_append_event (GString       *out,
                              JsonParser    *parser,
                              EsStoredEvent *event,
                              gboolean       data_base64);

/* The source text of the value of the member @name of the JSON object
 * @line (@len bytes) holds: the bytes from *@value_start, *@value_len
 * long (of the last such member, if the name repeats). FALSE when @line is
 * not one JSON object in strict JSON (RFC 8259) or has no such member.
 * What an import stores for "data" and "metadata": the bytes as written. */
gboolean _es_export_find_member (const char *line,
                                 gsize       len,
                                 const char *name,
                                 gsize      *value_start,
                                 gsize      *value_len);

G_END_DECLS
