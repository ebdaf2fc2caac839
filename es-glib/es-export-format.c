/* es-export-format.c: one line of the export format: what
 * es_stream_factory_export_events() writes and what es-tool prints for
 * `read --json` and `tail --json` (see es-export-format-private.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "es-export-format-private.h"

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

/* A strict reader of JSON text (RFC 8259), which json-glib's parser is
 * not (it also takes `var name = value` and gives no source positions).
 * It only finds where values begin and end: what a value means is
 * json-glib's business. */

/* Nesting deeper than this is not spliced (export) nor cut out (import):
 * the scanner recurses, and no payload of an event store needs more. */
#define JSON_MAX_DEPTH 256

static const char *
skip_space (const char *p,
            const char *end)
{
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    p++;
  return p;
}

static gboolean
is_hex (char c)
{
  return g_ascii_isxdigit (c);
}

/* At a '"': moves past the closing quote. Control characters must be
 * escaped; the bytes of the string are checked as UTF-8 by the callers. */
static gboolean
scan_string (const char **pp,
             const char  *end)
{
  const char *p = *pp + 1;

  while (p < end)
    {
      guchar c = (guchar) *p;

      if (c == '"')
        {
          *pp = p + 1;
          return TRUE;
        }
      if (c < 0x20)
        return FALSE;
      if (c == '\\')
        {
          if (++p >= end)
            return FALSE;
          if (*p == 'u')
            {
              if (end - p < 5 || !is_hex (p[1]) || !is_hex (p[2]) || !is_hex (p[3]) ||
                  !is_hex (p[4]))
                return FALSE;
              p += 4;
            }
          else if (strchr ("\"\\/bfnrt", *p) == NULL || *p == '\0')
            return FALSE;
        }
      p++;
    }
  return FALSE;
}

static gboolean
scan_digits (const char **pp,
             const char  *end)
{
  const char *p = *pp;

  while (p < end && g_ascii_isdigit (*p))
    p++;
  if (p == *pp)
    return FALSE;
  *pp = p;
  return TRUE;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static gboolean
scan_number (const char **pp,
             const char  *end)
{
  const char *p = *pp;

  if (p < end && *p == '-')
    p++;
  if (p < end && *p == '0')
    p++;
  else if (!(p < end && *p >= '1' && *p <= '9') || !scan_digits (&p, end))
    return FALSE;
  if (p < end && *p == '.')
    {
      p++;
      if (!scan_digits (&p, end))
        return FALSE;
    }
  if (p < end && (*p == 'e' || *p == 'E'))
    {
      p++;
      if (p < end && (*p == '+' || *p == '-'))
        p++;
      if (!scan_digits (&p, end))
        return FALSE;
    }
  *pp = p;
  return TRUE;
}

static gboolean
scan_word (const char **pp,
           const char  *end,
           const char  *word)
{
  gsize n = strlen (word);

  if ((gsize) (end - *pp) < n || memcmp (*pp, word, n) != 0)
    return FALSE;
  *pp += n;
  return TRUE;
}

/* At the first byte of a value (no space before it): moves past it. */
static gboolean
scan_value (const char **pp,
            const char  *end,
            guint        depth)
{
  const char *p = *pp;
  char close;

  if (p >= end)
    return FALSE;
  switch (*p)
    {
    case '"':
      return scan_string (pp, end);
    case 't':
      return scan_word (pp, end, "true");
    case 'f':
      return scan_word (pp, end, "false");
    case 'n':
      return scan_word (pp, end, "null");
    case '{':
    case '[':
      break;
    default:
      return scan_number (pp, end);
    }

  if (depth >= JSON_MAX_DEPTH)
    return FALSE;
  close = *p == '{' ? '}' : ']';
  p = skip_space (p + 1, end);
  if (p < end && *p == close)
    {
      *pp = p + 1;
      return TRUE;
    }
  for (;;)
    {
      if (close == '}')
        {
          if (p >= end || *p != '"' || !scan_string (&p, end))
            return FALSE;
          p = skip_space (p, end);
          if (p >= end || *p != ':')
            return FALSE;
          p = skip_space (p + 1, end);
        }
      if (!scan_value (&p, end, depth + 1))
        return FALSE;
      p = skip_space (p, end);
      if (p < end && *p == close)
        {
          *pp = p + 1;
          return TRUE;
        }
      if (p >= end || *p != ',')
        return FALSE;
      p = skip_space (p + 1, end);
    }
}

/* Whether @text (of @len bytes) can be written into a line as it is: one
 * JSON value (an object if @want_object), valid UTF-8, with no space
 * before or after it (the import takes the value's own bytes back) and
 * no line break in it (an event is one line), which json-glib reads too
 * (the import parses the line with it). */
static gboolean
is_spliceable_json (JsonParser *parser,
                    const char *text,
                    gsize       len,
                    gboolean    want_object)
{
  const char *p = text;

  if (len == 0 || len > G_MAXSSIZE || (want_object && text[0] != '{') ||
      memchr (text, '\n', len) != NULL || memchr (text, '\r', len) != NULL ||
      !g_utf8_validate (text, (gssize) len, NULL))
    return FALSE;
  if (!scan_value (&p, text + len, 0) || p != text + len)
    return FALSE;
  return json_parser_load_from_data (parser, text, (gssize) len, NULL);
}

/* Whether the JSON string at @key (with its quotes, @key_len bytes) is
 * @name once its escapes are read. */
static gboolean
key_equals (const char *key,
            gsize       key_len,
            const char *name)
{
  g_autofree char *quoted = NULL;
  g_autoptr(JsonNode) node = NULL;

  if (memchr (key, '\\', key_len) == NULL)
    return key_len == strlen (name) + 2 && memcmp (key + 1, name, key_len - 2) == 0;
  quoted = g_strndup (key, key_len);
  node = json_from_string (quoted, NULL);
  return node != NULL && JSON_NODE_HOLDS_VALUE (node) &&
         json_node_get_value_type (node) == G_TYPE_STRING &&
         g_strcmp0 (json_node_get_string (node), name) == 0;
}

gboolean
_es_export_find_member (const char *line,
                        gsize       len,
                        const char *name,
                        gsize      *value_start,
                        gsize      *value_len)
{
  const char *end = line + len;
  const char *p = skip_space (line, end);
  gboolean found = FALSE;

  if (p >= end || *p != '{')
    return FALSE;
  p = skip_space (p + 1, end);
  if (p < end && *p == '}')
    return FALSE;
  for (;;)
    {
      const char *key = p, *value;
      gboolean wanted;

      if (p >= end || *p != '"' || !scan_string (&p, end))
        return FALSE;
      wanted = key_equals (key, (gsize) (p - key), name);
      p = skip_space (p, end);
      if (p >= end || *p != ':')
        return FALSE;
      value = p = skip_space (p + 1, end);
      /* Depth 0, as the export counted it for this value alone. */
      if (!scan_value (&p, end, 0))
        return FALSE;
      if (wanted)
        {
          /* The last one, as json-glib keeps the last of repeated names. */
          *value_start = (gsize) (value - line);
          *value_len = (gsize) (p - value);
          found = TRUE;
        }
      p = skip_space (p, end);
      if (p < end && *p == '}')
        break;
      if (p >= end || *p != ',')
        return FALSE;
      p = skip_space (p + 1, end);
    }
  /* Nothing but space after the object. */
  return skip_space (p + 1, end) == end && found;
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
  else if (is_spliceable_json (parser, metadata, strlen (metadata), TRUE))
    g_string_append (out, metadata);
  else
    append_json_string (out, metadata);
  if (!data_base64 && is_spliceable_json (parser, data_text, data_len, FALSE))
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
