/* es-tool-filter.c: the --filter syntax of es-tool, mapped onto
 * EsEventFilter.
 *
 *   EXPR     := FIELD OPERATOR VALUE
 *   FIELD    := stream_id | event_type | version | sequence_id
 *             | timestamp | metadata.KEY[.KEY...]
 *   OPERATOR := =  (equals)        ~  (SQL LIKE: % any run, _ one char)
 *             | <  <=  >  >=       (version, sequence_id, timestamp,
 *                                   metadata numbers)
 *
 * The field is everything before the first of "=<>~". Values:
 *   - stream_id, event_type: the text as it is;
 *   - version, sequence_id: a decimal integer;
 *   - timestamp: an ISO 8601 date and time with a zone
 *     (2026-01-01T00:00:00Z) or an integer of microseconds since the epoch;
 *   - metadata.KEY: true, false, an integer or a number are JSON values;
 *     anything else, or a value in double quotes ("10"), is a string.
 * Several --filter options are AND-ed. doc/es-tool.md documents this.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "es-tool.h"

static GVariant *
parse_integer (const char *field,
               const char *text,
               GError    **error)
{
  gint64 n;

  if (!g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &n, NULL))
    {
      /* Translators: the first %s is a field name, the second a value */
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("The value of %s must be an integer, not '%s'"), field, text);
      return NULL;
    }
  return g_variant_new_int64 (n);
}

static GVariant *
parse_timestamp (const char *text,
                 GError    **error)
{
  g_autoptr(GDateTime) dt = NULL;
  gint64 n;

  if (g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &n, NULL))
    return g_variant_new_int64 (n);

  dt = g_date_time_new_from_iso8601 (text, NULL);
  if (dt == NULL)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("The value of timestamp must be an ISO 8601 date and time with a time zone (such as 2026-01-01T00:00:00Z) or microseconds since the epoch, not '%s'"),
                   text);
      return NULL;
    }
  return g_variant_new_int64 (g_date_time_to_unix (dt) * G_USEC_PER_SEC +
                              g_date_time_get_microsecond (dt));
}

static GVariant *
parse_metadata_value (const char *text)
{
  gsize len = strlen (text);
  gint64 n;

  if (len >= 2 && text[0] == '"' && text[len - 1] == '"')
    {
      g_autofree char *inner = g_strndup (text + 1, len - 2);

      return g_variant_new_string (inner);
    }
  if (g_str_equal (text, "true"))
    return g_variant_new_boolean (TRUE);
  if (g_str_equal (text, "false"))
    return g_variant_new_boolean (FALSE);
  if (g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &n, NULL))
    return g_variant_new_int64 (n);
  if (len > 0 && (g_ascii_isdigit (text[0]) || text[0] == '-' || text[0] == '.'))
    {
      char *end = NULL;
      double d;

      errno = 0;
      d = g_ascii_strtod (text, &end);
      if (errno == 0 && end != NULL && *end == '\0')
        return g_variant_new_double (d);
    }
  return g_variant_new_string (text);
}

static gboolean
add_expression (EsEventFilter *filter,
                const char    *expression,
                GError       **error)
{
  const char *op_start = strpbrk (expression, "=<>~");
  g_autofree char *field = NULL;
  const char *value_text;
  EsFilterOperator op;
  EsFilterField kind;
  g_auto(GStrv) path = NULL;
  GVariant *value = NULL;
  g_autoptr(GError) local_error = NULL;

  if (op_start == NULL || op_start == expression)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("Bad filter '%s': expected FIELD=VALUE, FIELD~PATTERN or a comparison (<, <=, >, >=)"),
                   expression);
      return FALSE;
    }

  field = g_strndup (expression, op_start - expression);
  switch (*op_start)
    {
    case '=':
      op = ES_FILTER_OPERATOR_EQUALS;
      value_text = op_start + 1;
      break;
    case '~':
      op = ES_FILTER_OPERATOR_LIKE;
      value_text = op_start + 1;
      break;
    case '<':
      op = op_start[1] == '=' ? ES_FILTER_OPERATOR_LESS_OR_EQUAL : ES_FILTER_OPERATOR_LESS;
      value_text = op_start + (op_start[1] == '=' ? 2 : 1);
      break;
    case '>':
    default:
      op = op_start[1] == '=' ? ES_FILTER_OPERATOR_GREATER_OR_EQUAL : ES_FILTER_OPERATOR_GREATER;
      value_text = op_start + (op_start[1] == '=' ? 2 : 1);
      break;
    }

  kind = es_event_filter_parse_field (field, &path);
  if (kind == ES_FILTER_FIELD_INVALID)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("Bad filter '%s': unknown field '%s' (use stream_id, event_type, version, sequence_id, timestamp or metadata.KEY)"),
                   expression, field);
      return FALSE;
    }

  if (op == ES_FILTER_OPERATOR_LIKE)
    {
      if (kind != ES_FILTER_FIELD_STREAM_ID && kind != ES_FILTER_FIELD_EVENT_TYPE &&
          kind != ES_FILTER_FIELD_METADATA)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       _("Bad filter '%s': ~ (LIKE) applies to stream_id, event_type and metadata, not to %s"),
                       expression, field);
          return FALSE;
        }
      es_event_filter_add_like (filter, field, value_text);
      return TRUE;
    }

  switch (kind)
    {
    case ES_FILTER_FIELD_STREAM_ID:
    case ES_FILTER_FIELD_EVENT_TYPE:
      if (op != ES_FILTER_OPERATOR_EQUALS)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       _("Bad filter '%s': %s takes = or ~, not a comparison"),
                       expression, field);
          return FALSE;
        }
      value = g_variant_new_string (value_text);
      break;
    case ES_FILTER_FIELD_VERSION:
    case ES_FILTER_FIELD_SEQUENCE_ID:
      value = parse_integer (field, value_text, &local_error);
      break;
    case ES_FILTER_FIELD_TIMESTAMP:
      value = parse_timestamp (value_text, &local_error);
      break;
    case ES_FILTER_FIELD_METADATA:
      value = parse_metadata_value (value_text);
      break;
    case ES_FILTER_FIELD_INVALID:
    default:
      g_assert_not_reached ();
    }

  if (value == NULL)
    {
      /* Translators: the first %s is a filter expression, the second why it is wrong */
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("Bad filter '%s': %s"), expression, local_error->message);
      return FALSE;
    }

  if (op == ES_FILTER_OPERATOR_EQUALS)
    es_event_filter_add_equals (filter, field, value);
  else
    es_event_filter_add_compare (filter, field, op, value);
  return TRUE;
}

/* Returns: (transfer full) (nullable): the filter, or NULL when there are
 * no expressions (and no error) or on error. */
EsEventFilter *
es_tool_parse_filters (const char * const *expressions,
                       GError            **error)
{
  g_autoptr(EsEventFilter) filter = NULL;
  g_autoptr(GError) local_error = NULL;

  if (expressions == NULL || expressions[0] == NULL)
    return NULL;

  filter = es_event_filter_new ();
  for (guint i = 0; expressions[i] != NULL; i++)
    if (!add_expression (filter, expressions[i], error))
      return NULL;

  if (!es_event_filter_validate (filter, &local_error))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("Bad filter: %s"), local_error->message);
      return NULL;
    }
  return g_steal_pointer (&filter);
}
