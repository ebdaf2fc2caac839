/* es-validate.c: checks of caller-supplied values, shared by the stream
 * layer and the factories so every backend rejects the same input with the
 * same error.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <json-glib/json-glib.h>

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

/* Metadata must be the text of a JSON object. */
static gboolean
validate_metadata (const char  *metadata,
                   guint        index,
                   GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonNode *root;

  if (!g_utf8_validate (metadata, -1, NULL))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("The metadata of event %u is not valid UTF-8"), index);
      return FALSE;
    }

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, metadata, -1, &local_error))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u is the event's position in the batch, %s the parser's reason */
                   _("The metadata of event %u is not valid JSON: %s"),
                   index, local_error->message);
      return FALSE;
    }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u is the event's position in the batch, %s a JSON type name */
                   _("The metadata of event %u must be a JSON object, not %s"),
                   index, root != NULL ? json_node_type_name (root) : "nothing");
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
                   _("Event %u has an empty event type"), index);
      return FALSE;
    }

  if (!g_utf8_validate (event_type, -1, NULL))
    {
      g_autofree char *shown = printable (event_type);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("The event type '%s' of event %u is not valid UTF-8"), shown, index);
      return FALSE;
    }

  if (key != NULL)
    {
      if (*key == '\0')
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       _("Event %u has an empty idempotency key; leave it unset instead"),
                       index);
          return FALSE;
        }
      if (!g_utf8_validate (key, -1, NULL))
        {
          g_autofree char *shown = printable (key);

          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       _("The idempotency key '%s' of event %u is not valid UTF-8"),
                       shown, index);
          return FALSE;
        }
    }

  if (metadata != NULL && !validate_metadata (metadata, index, error))
    return FALSE;

  return TRUE;
}
