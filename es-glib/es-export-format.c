/* es-export-format.c: one line of the export format: what
 * es_stream_factory_export_events() writes and what es-tool prints for
 * `read --json` and `tail --json` (see es-export-format.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "es-export-format.h"

static void
append_json_string (GString    *out,
                    const char *s)
{
  g_string_append_c (out, '"');
  for (const char *p = s; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;

      switch (c)
        {
        case '"':
          g_string_append (out, "\\\"");
          break;
        case '\\':
          g_string_append (out, "\\\\");
          break;
        case '\n':
          g_string_append (out, "\\n");
          break;
        case '\r':
          g_string_append (out, "\\r");
          break;
        case '\t':
          g_string_append (out, "\\t");
          break;
        default:
          if (c < 0x20)
            g_string_append_printf (out, "\\u%04x", c);
          else
            g_string_append_c (out, (char) c);
        }
    }
  g_string_append_c (out, '"');
}

/* Whether @text (of @len bytes) is JSON text that json-glib writes back
 * byte for byte: only then is it embedded as JSON, since the import
 * stores what json-glib writes from the parsed value. @want_object: only
 * a JSON object qualifies. */
static gboolean
is_canonical_json (JsonParser *parser,
                   const char *text,
                   gsize       len,
                   gboolean    want_object)
{
  JsonNode *root;
  g_autofree char *again = NULL;
  gsize again_len = 0;

  if (len == 0 || len > G_MAXSSIZE || !g_utf8_validate (text, (gssize) len, NULL) ||
      memchr (text, '\0', len) != NULL)
    return FALSE;
  if (!json_parser_load_from_data (parser, text, (gssize) len, NULL))
    return FALSE;
  root = json_parser_get_root (parser);
  if (root == NULL || (want_object && !JSON_NODE_HOLDS_OBJECT (root)))
    return FALSE;
  again = json_to_string (root, FALSE);
  again_len = strlen (again);
  return again_len == len && memcmp (again, text, len) == 0;
}

void
_es_export_append_event (GString       *out,
                         JsonParser    *parser,
                         EsStoredEvent *event,
                         gboolean       data_base64)
{
  gint64 usec = es_stored_event_get_timestamp_usec (event);
  g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);
  g_autofree char *seconds = NULL;
  const char *key = es_stored_event_get_idempotency_key (event);
  const char *metadata = es_stored_event_get_metadata (event);
  GBytes *data = es_stored_event_get_data (event);
  gsize data_len = 0;
  const char *data_text = data != NULL ? g_bytes_get_data (data, &data_len) : NULL;
  gint64 sub = usec % G_USEC_PER_SEC;

  if (sub < 0)
    {
      /* Before 1970: a negative remainder belongs to the second before. */
      g_clear_pointer (&time, g_date_time_unref);
      time = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC - 1);
      sub += G_USEC_PER_SEC;
    }
  seconds = g_date_time_format (time, "%Y-%m-%dT%H:%M:%S");

  g_string_append (out, "{\"stream_id\":");
  append_json_string (out, es_stored_event_get_stream_id (event));
  g_string_append_printf (out, ",\"version\":%" G_GINT64_FORMAT ",\"sequence_id\":%"
                          G_GINT64_FORMAT ",\"timestamp\":\"%s.%06dZ\",\"event_type\":",
                          es_stored_event_get_version (event),
                          es_stored_event_get_sequence_id (event), seconds, (int) sub);
  append_json_string (out, es_stored_event_get_event_type (event));
  g_string_append (out, ",\"idempotency_key\":");
  if (key != NULL)
    append_json_string (out, key);
  else
    g_string_append (out, "null");
  g_string_append (out, ",\"metadata\":");
  if (metadata == NULL)
    g_string_append (out, "null");
  else if (is_canonical_json (parser, metadata, strlen (metadata), TRUE))
    g_string_append (out, metadata);
  else
    append_json_string (out, metadata);
  if (!data_base64 && is_canonical_json (parser, data_text, data_len, FALSE))
    {
      g_string_append (out, ",\"data\":");
      g_string_append_len (out, data_text, (gssize) data_len);
    }
  else
    {
      g_autofree char *base64 = g_base64_encode ((const guchar *) data_text, data_len);

      g_string_append (out, ",\"data_base64\":\"");
      g_string_append (out, base64);
      g_string_append_c (out, '"');
    }
  if (es_stored_event_get_erased (event))
    g_string_append (out, ",\"erased\":true");
  g_string_append (out, "}\n");
}
