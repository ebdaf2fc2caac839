/* es-validate.c: checks of caller-supplied values, shared by the stream
 * layer and the factories so every backend rejects the same input with the
 * same error.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/* Shows a possibly invalid UTF-8 string in an error message. */
static char *
printable (const char *text)
{
  return g_utf8_make_valid (text, -1);
}

/*
 * _es_validate_stream_id:
 * @stream_id: (nullable): the stream id to check
 * @allow_all: whether %ES_ALL_STREAM is acceptable (reads, watches) or not
 *   (writes)
 *
 * A stream id is non-empty UTF-8 of at most %ES_STREAM_ID_MAX_BYTES bytes.
 * Ids starting with '@' are reserved for the library's own streams, of
 * which `@all` is the only one today.
 */
gboolean
_es_validate_stream_id (const char  *stream_id,
                        gboolean     allow_all,
                        GError     **error)
{
  gsize len;

  if (stream_id == NULL || *stream_id == '\0')
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           _("A stream id must not be empty"));
      return FALSE;
    }

  len = strlen (stream_id);
  if (!g_utf8_validate_len (stream_id, len, NULL))
    {
      g_autofree char *shown = printable (stream_id);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is the stream id, with invalid bytes replaced */
                   _("Stream id '%s' is not valid UTF-8"), shown);
      return FALSE;
    }

  if (len > ES_STREAM_ID_MAX_BYTES)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %u is a length in bytes, the second the limit */
                   _("A stream id of %u bytes is longer than the limit of %u bytes"),
                   (guint) len, (guint) ES_STREAM_ID_MAX_BYTES);
      return FALSE;
    }

  if (g_str_equal (stream_id, ES_ALL_STREAM))
    {
      if (!allow_all)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       _("Stream '%s' is read-only: it holds the events of every stream"),
                       ES_ALL_STREAM);
          return FALSE;
        }
      return TRUE;
    }

  if (stream_id[0] == '@')
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("Stream id '%s' is reserved: ids starting with '@' belong to es-glib"),
                   stream_id);
      return FALSE;
    }

  return TRUE;
}

/* Deeper nesting is refused: SQLite's JSON functions stop at 1000. */
#define JSON_MAX_DEPTH 512

/*
 * Strict RFC 8259 syntax, checked without building a tree (this runs for
 * every event written). json-glib 1.6 parses with GScanner and accepts
 * comments, single quotes, hexadecimal numbers, ".5", leading zeros and
 * raw control characters in strings; SQLite's JSON functions, which read
 * metadata back for filters, reject all of them. Metadata is stored as
 * written, so it must be JSON both understand.
 *
 * Each function advances *p past what it accepted, or returns FALSE with
 * *p at the offending byte.
 */
static gboolean json_value (const char **p, guint depth);

static void
json_ws (const char **p)
{
  while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
    (*p)++;
}

static gboolean
json_literal (const char **p,
              const char  *word)
{
  gsize len = strlen (word);

  if (strncmp (*p, word, len) != 0)
    return FALSE;
  *p += len;
  return TRUE;
}

static gboolean
json_string (const char **p)
{
  if (**p != '"')
    return FALSE;
  (*p)++;

  for (;;)
    {
      guchar c = (guchar) **p;

      if (c == '"')
        {
          (*p)++;
          return TRUE;
        }
      if (c < 0x20)          /* control characters, and the end of the text */
        return FALSE;
      if (c == '\\')
        {
          (*p)++;
          if (**p == 'u')
            {
              for (guint i = 1; i <= 4; i++)
                if (!g_ascii_isxdigit ((*p)[i]))
                  {
                    *p += i;
                    return FALSE;
                  }
              *p += 4;
            }
          else if (strchr ("\"\\/bfnrt", **p) == NULL || **p == '\0')
            return FALSE;
        }
      (*p)++;
    }
}

static gboolean
json_digits (const char **p)
{
  if (!g_ascii_isdigit (**p))
    return FALSE;
  while (g_ascii_isdigit (**p))
    (*p)++;
  return TRUE;
}

static gboolean
json_number (const char **p)
{
  if (**p == '-')
    (*p)++;
  if (**p == '0')
    (*p)++;               /* no leading zeros: "01" stops after the 0 */
  else if (!json_digits (p))
    return FALSE;
  if (**p == '.')
    {
      (*p)++;
      if (!json_digits (p))
        return FALSE;
    }
  if (**p == 'e' || **p == 'E')
    {
      (*p)++;
      if (**p == '+' || **p == '-')
        (*p)++;
      if (!json_digits (p))
        return FALSE;
    }
  return TRUE;
}

static gboolean
json_container (const char **p,
                guint        depth,
                gboolean     object)
{
  char close = object ? '}' : ']';

  if (depth >= JSON_MAX_DEPTH)
    return FALSE;
  (*p)++;
  json_ws (p);
  if (**p == close)
    {
      (*p)++;
      return TRUE;
    }

  for (;;)
    {
      if (object)
        {
          if (!json_string (p))
            return FALSE;
          json_ws (p);
          if (**p != ':')
            return FALSE;
          (*p)++;
          json_ws (p);
        }
      if (!json_value (p, depth + 1))
        return FALSE;
      json_ws (p);
      if (**p == close)
        {
          (*p)++;
          return TRUE;
        }
      if (**p != ',')
        return FALSE;
      (*p)++;
      json_ws (p);
    }
}

static gboolean
json_value (const char **p,
            guint        depth)
{
  switch (**p)
    {
    case '{':
      return json_container (p, depth, TRUE);
    case '[':
      return json_container (p, depth, FALSE);
    case '"':
      return json_string (p);
    case 't':
      return json_literal (p, "true");
    case 'f':
      return json_literal (p, "false");
    case 'n':
      return json_literal (p, "null");
    default:
      return json_number (p);
    }
}

/* Returns the offset of the first byte that breaks strict JSON, or -1. */
static gssize
json_strict_error_offset (const char *text)
{
  const char *p = text;

  json_ws (&p);
  if (json_value (&p, 0))
    {
      json_ws (&p);
      if (*p == '\0')
        return -1;
    }
  return p - text;
}

/* Metadata must be the text of a JSON object. */
static gboolean
validate_metadata (const char  *metadata,
                   guint        index,
                   GError     **error)
{
  const char *first;
  gssize offset;

  if (!g_utf8_validate (metadata, -1, NULL))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u is the event's position in the batch, from 0 */
                   _("The metadata of event %u is not valid UTF-8"), index);
      return FALSE;
    }

  offset = json_strict_error_offset (metadata);
  if (offset >= 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u is the event's position in the batch, %d a byte offset */
                   _("The metadata of event %u is not valid JSON: unexpected text at byte %d"),
                   index, (int) offset);
      return FALSE;
    }

  /* Valid JSON: its first significant character tells its type. */
  first = metadata + strspn (metadata, " \t\n\r");
  if (*first != '{')
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u is the event's position in the batch, %s a JSON type
                    * name such as "an array" (translated separately) */
                   _("The metadata of event %u must be a JSON object, not %s"),
                   index, *first == '[' ? _("an array") : *first == '"' ? _("a string") :
                   *first == 't' || *first == 'f' ? _("a boolean") :
                   *first == 'n' ? _("null") : _("a number"));
      return FALSE;
    }

  return TRUE;
}

/*
 * _es_validate_candidate:
 * @event: an event about to be written
 * @index: its position in the batch, for messages
 *
 * The event type must be non-empty UTF-8, an idempotency key non-empty
 * UTF-8, and metadata the text of a JSON object.
 */
gboolean
_es_validate_candidate (EsCandidateEvent  *event,
                        guint              index,
                        GError           **error)
{
  const char *event_type = es_candidate_event_get_event_type (event);
  const char *key = es_candidate_event_get_idempotency_key (event);
  const char *metadata = es_candidate_event_get_metadata (event);

  if (event_type == NULL || *event_type == '\0')
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u is the event's position in the batch, from 0 */
                   _("Event %u has an empty event type"), index);
      return FALSE;
    }

  if (!g_utf8_validate (event_type, -1, NULL))
    {
      g_autofree char *shown = printable (event_type);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is the event type, %u the event's position in the batch */
                   _("The event type '%s' of event %u is not valid UTF-8"), shown, index);
      return FALSE;
    }

  if (key != NULL)
    {
      if (*key == '\0')
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: %u is the event's position in the batch, from 0 */
                       _("Event %u has an empty idempotency key; leave it unset instead"),
                       index);
          return FALSE;
        }
      if (!g_utf8_validate (key, -1, NULL))
        {
          g_autofree char *shown = printable (key);

          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: %s is the key, %u the event's position in the batch */
                       _("The idempotency key '%s' of event %u is not valid UTF-8"),
                       shown, index);
          return FALSE;
        }
    }

  if (metadata != NULL && !validate_metadata (metadata, index, error))
    return FALSE;

  return TRUE;
}

/*
 * _es_validate_subscription_name:
 * @name: (nullable): the subscription name to check
 *
 * A subscription name is non-empty UTF-8 of at most
 * %ES_SUBSCRIPTION_NAME_MAX_BYTES bytes.
 */
gboolean
_es_validate_subscription_name (const char  *name,
                                GError     **error)
{
  gsize len;

  if (name == NULL || *name == '\0')
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           _("A subscription name must not be empty"));
      return FALSE;
    }

  len = strlen (name);
  if (!g_utf8_validate_len (name, len, NULL))
    {
      g_autofree char *shown = printable (name);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is the name, with invalid bytes replaced */
                   _("Subscription name '%s' is not valid UTF-8"), shown);
      return FALSE;
    }

  if (len > ES_SUBSCRIPTION_NAME_MAX_BYTES)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %u is a length in bytes, the second the limit */
                   _("A subscription name of %u bytes is longer than the limit of %u bytes"),
                   (guint) len, (guint) ES_SUBSCRIPTION_NAME_MAX_BYTES);
      return FALSE;
    }

  return TRUE;
}
