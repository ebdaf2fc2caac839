/* es-pg-query.c: reading from PostgreSQL.
 *
 * Values of result rows in binary format (int8, timestamptz); filters
 * (EsEventFilter) translated into SQL with every value a parameter, with
 * the SQLite backend's results; reads of events in keyset pages, and the
 * one-row queries: a stream's version, its metrics, a snapshot.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <math.h>
#include <string.h>

#include "es-pg-private.h"
#include "es-glib/backend/es-time-private.h"

/* ---------------------------------------------------------------------- *
 * Values                                                                  *
 * ---------------------------------------------------------------------- */

static inline gint32
get_int4 (const PGresult *result,
          int             row,
          int             column)
{
  guint32 value;

  memcpy (&value, PQgetvalue (result, row, column), sizeof value);
  return (gint32) GUINT32_FROM_BE (value);
}

/* ---------------------------------------------------------------------- *
 * Filters                                                                 *
 * ---------------------------------------------------------------------- */

/* Translates an EsEventFilter into SQL, with the same results as the SQLite
 * backend. The SQL text holds only column names, operators, constants and
 * $n placeholders; every value of the filter is a parameter, in text
 * format. Metadata keys are literals: an index on a declared metadata path
 * (es_storage_handle_add_metadata_index()) serves a query only when the
 * query's expression is the index's, keys included.
 *
 * For example, reading stream 'cart-7' with the clauses
 *   event_type IN ['Added', 'Removed'] and metadata.user.id = 42
 * gives
 *   SELECT ... FROM "schema".events WHERE stream_id = $1::text AND version > $2::int8
 *     AND event_type IN ($3::text, $4::text)
 *     AND ("schema".metadata_jsonb(metadata) -> E'user'::text -> E'id'::text) = $5::jsonb
 *     ORDER BY version LIMIT $6::int8
 * with $5 = '42'.
 *
 * Metadata values compare as jsonb: a JSON string equals a string, a JSON
 * number a numerically equal integer or double (1 = 1.0), true and false
 * the booleans, and nothing else matches; a path that runs through an
 * array or a scalar finds nothing (`->` with a text key), as SQLite's
 * object path does. `like` matches strings only, ignoring ASCII case with
 * no escape character, as SQLite's LIKE does: both sides are lowercased in
 * ASCII only (translate() on the column, g_ascii_strdown() on the
 * pattern), and ESCAPE '' turns off PostgreSQL's default escape. */

/* `in` lists up to this length are written as IN ($a, $b...), in filters
 * of at most INLINE_MAX_CLAUSES clauses; longer lists, or any list in a
 * bigger filter, are one jsonb parameter: `x IN (SELECT
 * jsonb_array_elements($n::jsonb))`, which PostgreSQL hashes whatever the
 * plan (generic or custom). The clause limit keeps the inline form within
 * the protocol's 65,535 parameters. */
#define IN_LIST_INLINE_MAX 16
#define INLINE_MAX_CLAUSES 512
#define MAX_PARAMS         65535

typedef struct
{
  GString   *sql;
  GPtrArray *values;  /* (element-type utf8) (owned) parameters in $n order */
  guint      first;   /* the number of values[0] */
  guint      inline_max;  /* longest `in` list written inline */
} QueryBuilder;

static void
query_builder_clear (QueryBuilder *builder)
{
  if (builder->sql != NULL)
    g_string_free (builder->sql, TRUE);
  g_clear_pointer (&builder->values, g_ptr_array_unref);
  builder->sql = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QueryBuilder, query_builder_clear)

/* Appends "$n::@cast" to the SQL and takes @value as the parameter. */
static void
add_param (QueryBuilder *builder,
           char         *value,
           const char   *cast)
{
  g_ptr_array_add (builder->values, value);
  g_string_append_printf (builder->sql, "$%u::%s", builder->first + builder->values->len - 1,
                          cast);
}

#define ASCII_UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define ASCII_LOWER "abcdefghijklmnopqrstuvwxyz"

static void
add_like (QueryBuilder *builder,
          const char   *subject,
          const char   *pattern)
{
  g_string_append_printf (builder->sql, "translate(%s, '" ASCII_UPPER "', '" ASCII_LOWER "')"
                          " LIKE ", subject);
  add_param (builder, g_ascii_strdown (pattern, -1), "text");
  g_string_append (builder->sql, " ESCAPE ''");
}

/* A double as the shortest decimal that reads back as the same double. */
static char *
double_to_json (double value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  for (int precision = 15; precision <= 17; precision++)
    {
      g_autofree char *format = g_strdup_printf ("%%.%dg", precision);

      g_ascii_formatd (buffer, sizeof buffer, format, value);
      if (precision == 17 || g_ascii_strtod (buffer, NULL) == value)
        break;
    }
  return g_strdup (buffer);
}

/* A filter value as JSON text for a jsonb comparison, or NULL for a value
 * no JSON value equals (not a number, infinite, invalid). */
static char *
value_to_json (GVariant *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;
  GString *json;

  switch (es_event_filter_classify_value (value, &string, &int64, &dbl, &boolean))
    {
    case ES_FILTER_VALUE_STRING:
      json = g_string_new ("\"");
      for (const char *p = string; *p != '\0'; p++)
        {
          if (*p == '"' || *p == '\\')
            g_string_append_printf (json, "\\%c", *p);
          else if ((guchar) *p < 0x20)
            g_string_append_printf (json, "\\u%04x", (guint) (guchar) *p);
          else
            g_string_append_c (json, *p);
        }
      g_string_append_c (json, '"');
      return g_string_free (json, FALSE);

    case ES_FILTER_VALUE_INT64:
      return g_strdup_printf ("%" G_GINT64_FORMAT, int64);

    case ES_FILTER_VALUE_DOUBLE:
      return isfinite (dbl) ? double_to_json (dbl) : NULL;

    case ES_FILTER_VALUE_BOOLEAN:
      return g_strdup (boolean ? "true" : "false");

    case ES_FILTER_VALUE_INVALID:
    default:
      return NULL;
    }
}

/* A scalar of a column clause as text, with its cast; the filter was
 * validated, so it is a string for text columns and an integer for
 * integer ones. NULL for anything else: it equals nothing. */
static char *
value_to_text (GVariant *value,
               gboolean  integer)
{
  const char *string = NULL;
  gint64 int64 = 0;

  switch (es_event_filter_classify_value (value, &string, &int64, NULL, NULL))
    {
    case ES_FILTER_VALUE_STRING:
      return integer ? NULL : g_strdup (string);
    case ES_FILTER_VALUE_INT64:
      return integer ? g_strdup_printf ("%" G_GINT64_FORMAT, int64) : NULL;
    case ES_FILTER_VALUE_DOUBLE:
    case ES_FILTER_VALUE_BOOLEAN:
    case ES_FILTER_VALUE_INVALID:
    default:
      return NULL;
    }
}

/* "@subject = $n" or "@subject IN ($a, $b...)" with the values (one, or
 * the elements of an `in` array) that can match: as JSON text for a jsonb
 * @subject, else as text for a text or bigint column. FALSE when none
 * can. */
/* An integer parameter of a `timestamp` clause (microseconds since the
 * Unix epoch, UTC) as the timestamptz it stands for, exactly (no
 * floating point), so that the clause is a range of events_recorded_at. */
#define TIMESTAMP_WRAP "(TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 microsecond')"

/* Appends @wrap with its one "%s" replaced by @inner. */
static void
append_wrapped (GString    *sql,
                const char *wrap,
                const char *inner)
{
  const char *hole = strstr (wrap, "%s");

  g_assert (hole != NULL);
  g_string_append_len (sql, wrap, hole - wrap);
  g_string_append (sql, inner);
  g_string_append (sql, hole + 2);
}

/* add_param(), the placeholder inside @wrap (a format with one %s) when
 * given. */
static void
add_param_wrapped (QueryBuilder *builder,
                   char         *value,
                   const char   *cast,
                   const char   *wrap)
{
  g_autofree char *placeholder = NULL;

  if (wrap == NULL)
    {
      add_param (builder, value, cast);
      return;
    }
  g_ptr_array_add (builder->values, value);
  placeholder = g_strdup_printf ("$%u::%s", builder->first + builder->values->len - 1, cast);
  append_wrapped (builder->sql, wrap, placeholder);
}

static void
add_equals_or_in (QueryBuilder     *builder,
                  const char       *subject,
                  EsFilterOperator  op,
                  GVariant         *value,
                  gboolean          json,
                  gboolean          integer,
                  const char       *wrap)
{
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  const char *cast = json ? "jsonb" : integer ? "int8" : "text";

  if (op == ES_FILTER_OPERATOR_IN)
    {
      gsize n = g_variant_n_children (value);

      for (gsize i = 0; i < n; i++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
          char *text = json ? value_to_json (child) : value_to_text (child, integer);

          if (text != NULL)
            g_ptr_array_add (texts, text);
        }
    }
  else
    {
      char *text = json ? value_to_json (value) : value_to_text (value, integer);

      if (text != NULL)
        g_ptr_array_add (texts, text);
    }

  if (texts->len == 0)
    {
      g_string_append (builder->sql, "FALSE");
      return;
    }

  if (texts->len == 1)
    {
      g_string_append_printf (builder->sql, "%s = ", subject);
      add_param_wrapped (builder, g_ptr_array_steal_index (texts, 0), cast, wrap);
      return;
    }

  if (texts->len > builder->inline_max)
    {
      GString *array = g_string_new ("[");

      /* One jsonb array: its elements are JSON already for a jsonb
       * @subject; for a column, the texts are turned back into JSON (a
       * string quoted, a number as is) and read out as text. */
      for (guint i = 0; i < texts->len; i++)
        {
          const char *text = g_ptr_array_index (texts, i);

          if (i > 0)
            g_string_append_c (array, ',');
          if (json || integer)
            g_string_append (array, text);
          else
            {
              g_autoptr(GVariant) string = g_variant_ref_sink (g_variant_new_string (text));
              g_autofree char *quoted = value_to_json (string);

              g_string_append (array, quoted);
            }
        }
      g_string_append_c (array, ']');

      if (wrap != NULL)
        {
          g_string_append_printf (builder->sql, "%s IN (SELECT ", subject);
          append_wrapped (builder->sql, wrap, "x.v::int8");
          g_string_append (builder->sql, " FROM jsonb_array_elements_text(");
          add_param (builder, g_string_free (array, FALSE), "jsonb");
          g_string_append (builder->sql, ") AS x (v))");
          return;
        }
      g_string_append_printf (builder->sql, "%s IN (SELECT %s(", subject,
                              json ? "jsonb_array_elements" : "jsonb_array_elements_text");
      add_param (builder, g_string_free (array, FALSE), "jsonb");
      g_string_append_printf (builder->sql, ")%s)", integer ? "::int8" : "");
      return;
    }

  g_string_append_printf (builder->sql, "%s IN (", subject);
  for (guint i = 0; i < texts->len; i++)
    {
      if (i > 0)
        g_string_append (builder->sql, ", ");
      add_param_wrapped (builder, g_strdup (g_ptr_array_index (texts, i)), cast, wrap);
    }
  g_string_append_c (builder->sql, ')');
}

/* The SQL operator of a comparison, or NULL for another operator. */
static const char *
comparison_operator (EsFilterOperator op)
{
  switch (op)
    {
    case ES_FILTER_OPERATOR_LESS:
      return "<";
    case ES_FILTER_OPERATOR_LESS_OR_EQUAL:
      return "<=";
    case ES_FILTER_OPERATOR_GREATER:
      return ">";
    case ES_FILTER_OPERATOR_GREATER_OR_EQUAL:
      return ">=";
    case ES_FILTER_OPERATOR_EQUALS:
    case ES_FILTER_OPERATOR_IN:
    case ES_FILTER_OPERATOR_LIKE:
    default:
      return NULL;
    }
}

/* A clause on a column; @wrap (nullable) turns an integer parameter into
 * the column's type (TIMESTAMP_WRAP). Comparisons take an integer (the
 * filter was validated): the column's own order, so an index range. */
static void
add_column_clause (QueryBuilder     *builder,
                   const char       *column,
                   gboolean          integer,
                   const char       *wrap,
                   EsFilterOperator  op,
                   GVariant         *value)
{
  const char *comparison = comparison_operator (op);

  if (op == ES_FILTER_OPERATOR_LIKE)
    {
      if (integer || !g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        g_string_append (builder->sql, "FALSE");
      else
        add_like (builder, column, g_variant_get_string (value, NULL));
      return;
    }

  if (comparison != NULL)
    {
      char *text = value_to_text (value, integer);

      if (text == NULL)
        {
          g_string_append (builder->sql, "FALSE");
          return;
        }
      g_string_append_printf (builder->sql, "%s %s ", column, comparison);
      add_param_wrapped (builder, text, integer ? "int8" : "text", wrap);
      return;
    }

  add_equals_or_in (builder, column, op, value, FALSE, integer, wrap);
}

/* A comparison of the metadata value @subject (jsonb) with a number: only
 * a JSON number matches (the CASE keeps the cast from seeing anything
 * else), compared as a double when the filter's value is one, exactly
 * (numeric) when it is an integer, as the watches' matching does. */
static void
add_metadata_comparison (QueryBuilder *builder,
                         const char   *subject,
                         const char   *comparison,
                         GVariant     *value)
{
  gint64 int64 = 0;
  double dbl = 0.0;

  g_string_append_printf (builder->sql, "CASE WHEN jsonb_typeof(%s) = 'number' THEN ", subject);
  switch (es_event_filter_classify_value (value, NULL, &int64, &dbl, NULL))
    {
    case ES_FILTER_VALUE_INT64:
      g_string_append_printf (builder->sql, "(%s)::numeric %s ", subject, comparison);
      add_param (builder, g_strdup_printf ("%" G_GINT64_FORMAT, int64), "numeric");
      break;
    case ES_FILTER_VALUE_DOUBLE:
      if (isnan (dbl))
        {
          g_string_append (builder->sql, "FALSE");
          break;
        }
      g_string_append_printf (builder->sql, "(%s)::float8 %s ", subject, comparison);
      add_param (builder, isfinite (dbl) ? double_to_json (dbl)
                                         : g_strdup (dbl > 0 ? "Infinity" : "-Infinity"),
                 "float8");
      break;
    case ES_FILTER_VALUE_STRING:
    case ES_FILTER_VALUE_BOOLEAN:
    case ES_FILTER_VALUE_INVALID:
    default:
      /* Validation refuses these. */
      g_string_append (builder->sql, "FALSE");
      break;
    }
  g_string_append (builder->sql, " ELSE FALSE END");
}

static void
add_metadata_clause (QueryBuilder     *builder,
                     EsPgStorage      *self,
                     char * const     *keys,
                     EsFilterOperator  op,
                     GVariant         *value)
{
  g_autofree char *expression = _es_pg_metadata_index_expression (self, keys);
  g_autoptr(GString) subject = g_string_new (expression);

  g_string_append_c (builder->sql, '(');
  if (op == ES_FILTER_OPERATOR_LIKE)
    {
      g_autofree char *text = g_strdup_printf ("((%s) #>> '{}')", subject->str);

      if (!g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        g_string_append (builder->sql, "FALSE");
      else
        {
          g_string_append_printf (builder->sql, "jsonb_typeof(%s) = 'string' AND ",
                                  subject->str);
          add_like (builder, text, g_variant_get_string (value, NULL));
        }
    }
  else if (comparison_operator (op) != NULL)
    {
      g_autofree char *parenthesized = g_strdup_printf ("(%s)", subject->str);

      add_metadata_comparison (builder, parenthesized, comparison_operator (op), value);
    }
  else
    {
      g_autofree char *parenthesized = g_strdup_printf ("(%s)", subject->str);

      add_equals_or_in (builder, parenthesized, op, value, TRUE, FALSE, NULL);
    }
  g_string_append_c (builder->sql, ')');
}

/* Appends clauses @first to @last - 1 of @filter, AND-ed as a balanced
 * tree of parentheses, in order: PostgreSQL recurses over a flat chain of
 * thousands of ANDs deep enough to hit its stack depth limit. */
static void
add_clauses (QueryBuilder  *builder,
             EsPgStorage   *self,
             EsEventFilter *filter,
             guint          first,
             guint          last)
{
  g_auto(GStrv) keys = NULL;
  EsFilterOperator op = ES_FILTER_OPERATOR_EQUALS;
  GVariant *value = NULL;
  const char *field;

  if (last - first > 1)
    {
      guint middle = first + (last - first) / 2;

      g_string_append_c (builder->sql, '(');
      add_clauses (builder, self, filter, first, middle);
      g_string_append (builder->sql, " AND ");
      add_clauses (builder, self, filter, middle, last);
      g_string_append_c (builder->sql, ')');
      return;
    }

  field = es_event_filter_get_clause (filter, first, &op, &value);

  switch (es_event_filter_parse_field (field, &keys))
    {
    case ES_FILTER_FIELD_STREAM_ID:
      add_column_clause (builder, "stream_id", FALSE, NULL, op, value);
      break;
    case ES_FILTER_FIELD_EVENT_TYPE:
      add_column_clause (builder, "event_type", FALSE, NULL, op, value);
      break;
    case ES_FILTER_FIELD_VERSION:
      add_column_clause (builder, "version", TRUE, NULL, op, value);
      break;
    case ES_FILTER_FIELD_SEQUENCE_ID:
      add_column_clause (builder, "sequence_id", TRUE, NULL, op, value);
      break;
    case ES_FILTER_FIELD_TIMESTAMP:
      add_column_clause (builder, "recorded_at", TRUE, TIMESTAMP_WRAP, op, value);
      break;
    case ES_FILTER_FIELD_METADATA:
      add_metadata_clause (builder, self, keys, op, value);
      break;
    case ES_FILTER_FIELD_INVALID:
    default:
      /* Validation rejects these; should one get here, it selects
       * nothing rather than everything. */
      g_string_append (builder->sql, "FALSE");
      break;
    }
}

/* Appends " AND <clauses>" for @filter, which the storage handle's
 * wrapper has validated (it has at least one clause, at most 4,096).
 * Fails, before anything is sent, when the clauses need more parameters
 * than the protocol allows (values of many clauses; metadata keys are
 * written as literals and take none). */
static gboolean
add_filter (QueryBuilder   *builder,
            EsPgStorage    *self,
            EsEventFilter  *filter,
            GError        **error)
{
  guint n_clauses = es_event_filter_get_n_clauses (filter);

  builder->inline_max = n_clauses <= INLINE_MAX_CLAUSES ? IN_LIST_INLINE_MAX : 0;
  g_string_append (builder->sql, " AND ");
  add_clauses (builder, self, filter, 0, n_clauses);

  /* The stream, the keyset bound and the limit take 3 more. */
  if (builder->values->len + 3 > MAX_PARAMS)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first number is a count of query parameters,
                    * the second of filter clauses, the third is 65535 */
                   _("The filter needs %u query parameters for its %u clauses, more than "
                     "PostgreSQL's limit of %u"),
                   builder->values->len + 3, n_clauses, (guint) MAX_PARAMS);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Reading                                                                 *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char    *stream_id;  /* NULL: @all */
  gint64         after;      /* the position: after it, or before it backwards */
  EsReadFlags    flags;
  EsEventFilter *filter;     /* (nullable) */
  guint          limit;
  GPtrArray     *events;     /* (owned) the result, unless page is set */
  EsRowPage     *page;       /* (nullable): read_rows fills it instead */
} ReadOp;

/* Builds the stored event of row @row. Consecutive rows of one stream
 * share the GRefString in *@stream_ref instead of each copying the id. */
static EsStoredEvent *
event_from_row (const PGresult  *result,
                int              row,
                char           **stream_ref,
                gboolean         all_streams)
{
  const char *key = NULL, *metadata = NULL;
  gsize n_key = 0, n_metadata = 0;
  EsStoredEvent *event;
  gint32 flags;

  if (all_streams)
    {
      const char *stream_id = PQgetvalue (result, row, 8);

      if (*stream_ref == NULL || strcmp (*stream_ref, stream_id) != 0)
        {
          g_clear_pointer (stream_ref, g_ref_string_release);
          *stream_ref = g_ref_string_new (stream_id);
        }
    }

  if (!PQgetisnull (result, row, 2))
    {
      key = PQgetvalue (result, row, 2);
      n_key = PQgetlength (result, row, 2);
    }
  if (!PQgetisnull (result, row, 6))
    {
      metadata = PQgetvalue (result, row, 6);
      n_metadata = PQgetlength (result, row, 6);
    }

  /* Binary format: text and bytea are their bytes, bigint eight bytes in
   * network order, timestamptz microseconds since 2000. One allocation
   * holds the strings and the data (see _es_stored_event_new_packed()). */
  event = _es_stored_event_new_packed (g_ref_string_acquire (*stream_ref),
                                       _es_pg_get_int8 (result, row, 0),
                                       _es_pg_get_int8 (result, row, 1),
                                       _es_pg_get_usec (result, row, 4),
                                       PQgetvalue (result, row, 3), PQgetlength (result, row, 3),
                                       PQgetvalue (result, row, 5), PQgetlength (result, row, 5),
                                       key, n_key,
                                       metadata, n_metadata);
  flags = get_int4 (result, row, 7);
  if (flags != 0)
    _es_stored_event_set_flags (event, (EsStoredEventFlags) flags);
  return event;
}

/* Copies row @row into @page: the columns event_from_row() reads. */
static void
page_add_row (EsRowPage      *page,
              const PGresult *result,
              int             row,
              const char     *stream_id,
              gsize           stream_id_len)
{
  const char *key = NULL, *metadata = NULL;
  gsize n_key = 0, n_metadata = 0;

  if (stream_id == NULL)
    {
      stream_id = PQgetvalue (result, row, 8);
      stream_id_len = PQgetlength (result, row, 8);
    }
  if (!PQgetisnull (result, row, 2))
    {
      key = PQgetvalue (result, row, 2);
      n_key = PQgetlength (result, row, 2);
    }
  if (!PQgetisnull (result, row, 6))
    {
      metadata = PQgetvalue (result, row, 6);
      n_metadata = PQgetlength (result, row, 6);
    }

  _es_row_page_add (page,
                    _es_pg_get_int8 (result, row, 0),
                    _es_pg_get_int8 (result, row, 1),
                    _es_pg_get_usec (result, row, 4),
                    (EsStoredEventFlags) get_int4 (result, row, 7),
                    stream_id, stream_id_len,
                    PQgetvalue (result, row, 3), PQgetlength (result, row, 3),
                    key, n_key,
                    metadata, n_metadata,
                    PQgetvalue (result, row, 5), PQgetlength (result, row, 5));
}

/* The markers of hard-deleted streams, shaped as EVENT_COLUMNS plus the
 * stream id: the event type "$tombstone", no data, no metadata, the flag
 * ES_STORED_EVENT_FLAGS_TOMBSTONE (2). */
#define TOMBSTONE_SELECT \
  "SELECT sequence_id, version, NULL::text, '$tombstone'::text, recorded_at, ''::bytea," \
  " NULL::text, 2, stream_id FROM {S}.tombstones WHERE " BELOW_HORIZON " AND sequence_id"

static gboolean
read_operation (EsPgStorage    *self,
                EsPgConnection *c,
                gpointer        data,
                gboolean       *retry,
                GCancellable   *cancellable,
                GError        **error)
{
  ReadOp *op = data;
  gboolean all_streams = op->stream_id == NULL;
  gboolean backwards = (op->flags & ES_READ_FLAGS_BACKWARDS) != 0;
  gboolean tombstones = all_streams && (op->flags & ES_READ_FLAGS_INCLUDE_TOMBSTONES) != 0;
  gboolean filtered = op->filter != NULL && es_event_filter_get_n_clauses (op->filter) > 0;
  g_auto(QueryBuilder) builder = { NULL, };
  g_autofree char *after = g_strdup_printf ("%" G_GINT64_FORMAT, op->after);
  g_autofree char *limit = g_strdup_printf ("%u", op->limit);
  g_autofree const char **values = NULL;
  char *stream_ref = NULL;
  EsPgStatement statement = { NULL, 0, NULL, NULL, NULL, TRUE };
  PGresult *result;
  guint n = 0;
  int n_rows;

  /* Reading twice does no harm. */
  *retry = TRUE;

  /* Keyset paging: each page starts after the last version (or sequence
   * id) of the previous one (before it, backwards), so every page is an
   * index range scan, in either direction. */
  builder.sql = g_string_new (NULL);
  builder.values = g_ptr_array_new_with_free_func (g_free);
  builder.first = all_streams ? 2 : 3;
  if (filtered || backwards || tombstones)
    {
      const char *column = all_streams ? "sequence_id" : "version";
      g_autofree char *start = _es_pg_schema_sql (self, all_streams ? READ_ALL_SELECT
                                                                    : READ_STREAM_SELECT);

      if (tombstones)
        g_string_append (builder.sql, "SELECT * FROM ((");
      g_string_append (builder.sql, start);
      if (backwards)
        {
          /* READ_*_SELECT end with "<column> > $n::int8": turned round. */
          char *gt = strrchr (builder.sql->str, '>');

          g_assert (gt != NULL);
          *gt = '<';
        }
      if (filtered && !add_filter (&builder, self, op->filter, error))
        {
          *retry = FALSE;
          return FALSE;
        }
      g_string_append_printf (builder.sql, " ORDER BY %s%s LIMIT $%u::int8", column,
                              backwards ? " DESC" : "", builder.first + builder.values->len);
      if (tombstones)
        {
          g_autofree char *markers = _es_pg_schema_sql (self, TOMBSTONE_SELECT);

          g_string_append (builder.sql, ") UNION ALL (");
          g_string_append (builder.sql, markers);
          g_string_append_printf (builder.sql,
                                  " %s $1::int8 ORDER BY sequence_id%s LIMIT $%u::int8",
                                  backwards ? "<" : ">", backwards ? " DESC" : "",
                                  builder.first + builder.values->len);
          g_string_append_printf (builder.sql, ")) AS u ORDER BY sequence_id%s LIMIT $%u::int8",
                                  backwards ? " DESC" : "", builder.first + builder.values->len);
        }
      statement.sql = builder.sql->str;
    }
  else
    statement.sql = self->sql[all_streams ? SQL_READ_ALL : SQL_READ_STREAM];

  /* Parameters in $n order: the stream, the keyset bound, the filter's
   * values, the limit. */
  values = g_new0 (const char *, builder.values->len + 3);
  if (!all_streams)
    values[n++] = op->stream_id;
  values[n++] = after;
  for (guint i = 0; i < builder.values->len; i++)
    values[n++] = g_ptr_array_index (builder.values, i);
  values[n++] = limit;
  statement.n_params = n;
  statement.values = values;

  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Reading events"), error);
  if (result == NULL)
    return FALSE;

  n_rows = PQntuples (result);
  if (op->page != NULL)
    {
      gsize stream_id_len = all_streams ? 0 : strlen (op->stream_id);

      for (int row = 0; row < n_rows; row++)
        page_add_row (op->page, result, row, op->stream_id, stream_id_len);
      PQclear (result);
      return TRUE;
    }
  op->events = g_ptr_array_new_full (n_rows, g_object_unref);
  if (!all_streams)
    stream_ref = g_ref_string_new (op->stream_id);
  for (int row = 0; row < n_rows; row++)
    g_ptr_array_add (op->events, event_from_row (result, row, &stream_ref, all_streams));
  g_clear_pointer (&stream_ref, g_ref_string_release);
  PQclear (result);
  return TRUE;
}

GPtrArray *
_es_pg_storage_read_page_full (EsStorageHandle  *handle,
                               const char       *stream_id,
                               gint64            position,
                               EsReadFlags       flags,
                               EsEventFilter    *filter,
                               guint             limit,
                               GCancellable     *cancellable,
                               GError          **error)
{
  ReadOp op = { stream_id, position, flags, filter, limit, NULL, NULL };

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), read_operation, &op, cancellable,
                                     error))
    {
      g_clear_pointer (&op.events, g_ptr_array_unref);
      return NULL;
    }
  return op.events;
}

/* The same query as read_page_full, its rows copied straight from the
 * result into @page (no event object). Rows are added only once the
 * query succeeded, so a retried operation adds them once. */
gboolean
_es_pg_storage_read_rows (EsStorageHandle  *handle,
                          const char       *stream_id,
                          gint64            position,
                          EsReadFlags       flags,
                          EsEventFilter    *filter,
                          guint             limit,
                          EsRowPage        *page,
                          GCancellable     *cancellable,
                          GError          **error)
{
  ReadOp op = { stream_id, position, flags, filter, limit, NULL, page };

  return _es_pg_storage_run_operation (ES_PG_STORAGE (handle), read_operation, &op, cancellable,
                                       error);
}

typedef struct
{
  const char    *stream_id;  /* NULL: @all */
  gint64         after;
  gint64         until;
  EsEventFilter *filter;     /* (nullable) */
  gint64         count;      /* the result */
} CountOp;

/* Counts in the index range of (stream_id, version) or of sequence_id;
 * the filter's columns are read for the rows in range only. */
static gboolean
count_operation (EsPgStorage    *self,
                 EsPgConnection *c,
                 gpointer        data,
                 gboolean       *retry,
                 GCancellable   *cancellable,
                 GError        **error)
{
  CountOp *op = data;
  gboolean all_streams = op->stream_id == NULL;
  g_auto(QueryBuilder) builder = { NULL, };
  g_autofree char *after = g_strdup_printf ("%" G_GINT64_FORMAT, op->after);
  g_autofree char *until = g_strdup_printf ("%" G_GINT64_FORMAT, op->until);
  g_autofree char *start = NULL;
  g_autofree const char **values = NULL;
  EsPgStatement statement = { NULL, 0, NULL, NULL, NULL, TRUE };
  PGresult *result;
  guint n = 0;

  *retry = TRUE;
  builder.sql = g_string_new (NULL);
  builder.values = g_ptr_array_new_with_free_func (g_free);
  builder.first = all_streams ? 3 : 4;
  start = _es_pg_schema_sql (self, all_streams
                             ? "SELECT count(*) FROM {S}.events WHERE " BELOW_HORIZON " AND sequence_id > $1::int8"
                               " AND sequence_id <= $2::int8"
                             : "SELECT count(*) FROM {S}.events WHERE stream_id = $1::text"
                               " AND version > $2::int8 AND version <= $3::int8");
  g_string_append (builder.sql, start);
  if (op->filter != NULL && es_event_filter_get_n_clauses (op->filter) > 0 &&
      !add_filter (&builder, self, op->filter, error))
    {
      *retry = FALSE;
      return FALSE;
    }
  statement.sql = builder.sql->str;

  values = g_new0 (const char *, builder.values->len + 3);
  if (!all_streams)
    values[n++] = op->stream_id;
  values[n++] = after;
  values[n++] = until;
  for (guint i = 0; i < builder.values->len; i++)
    values[n++] = g_ptr_array_index (builder.values, i);
  statement.n_params = n;
  statement.values = values;

  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Counting events"), error);
  if (result == NULL)
    return FALSE;
  op->count = PQntuples (result) == 1 ? _es_pg_get_int8 (result, 0, 0) : 0;
  PQclear (result);
  return TRUE;
}

typedef struct
{
  const char    *stream_id;  /* NULL: @all */
  gint64         position;
  gboolean       backwards;
  EsEventFilter *filter;     /* (nullable) */
  guint64        index;
  gint64         found;      /* the result, 0 for none */
} LocateOp;

/* "LIMIT 1 OFFSET index" from the keyset bound: the index is walked, no
 * event is built or sent. */
static gboolean
locate_operation (EsPgStorage    *self,
                  EsPgConnection *c,
                  gpointer        data,
                  gboolean       *retry,
                  GCancellable   *cancellable,
                  GError        **error)
{
  LocateOp *op = data;
  gboolean all_streams = op->stream_id == NULL;
  const char *column = all_streams ? "sequence_id" : "version";
  g_auto(QueryBuilder) builder = { NULL, };
  g_autofree char *position = g_strdup_printf ("%" G_GINT64_FORMAT, op->position);
  g_autofree char *offset = g_strdup_printf ("%" G_GUINT64_FORMAT, op->index);
  g_autofree char *start = NULL;
  g_autofree const char **values = NULL;
  EsPgStatement statement = { NULL, 0, NULL, NULL, NULL, TRUE };
  PGresult *result;
  guint n = 0;

  *retry = TRUE;
  builder.sql = g_string_new (NULL);
  builder.values = g_ptr_array_new_with_free_func (g_free);
  builder.first = all_streams ? 2 : 3;
  start = _es_pg_schema_sql (self, all_streams
                             ? "SELECT sequence_id FROM {S}.events WHERE " BELOW_HORIZON " AND sequence_id"
                             : "SELECT version FROM {S}.events WHERE stream_id = $1::text"
                               " AND version");
  g_string_append (builder.sql, start);
  g_string_append_printf (builder.sql, " %s $%u::int8", op->backwards ? "<" : ">",
                          all_streams ? 1 : 2);
  if (op->filter != NULL && es_event_filter_get_n_clauses (op->filter) > 0 &&
      !add_filter (&builder, self, op->filter, error))
    {
      *retry = FALSE;
      return FALSE;
    }
  g_string_append_printf (builder.sql, " ORDER BY %s%s LIMIT 1 OFFSET $%u::int8", column,
                          op->backwards ? " DESC" : "", builder.first + builder.values->len);
  statement.sql = builder.sql->str;

  values = g_new0 (const char *, builder.values->len + 3);
  if (!all_streams)
    values[n++] = op->stream_id;
  values[n++] = position;
  for (guint i = 0; i < builder.values->len; i++)
    values[n++] = g_ptr_array_index (builder.values, i);
  values[n++] = offset;
  statement.n_params = n;
  statement.values = values;

  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Reading events"), error);
  if (result == NULL)
    return FALSE;
  op->found = PQntuples (result) == 1 ? _es_pg_get_int8 (result, 0, 0) : 0;
  PQclear (result);
  return TRUE;
}

gint64
_es_pg_storage_locate_event (EsStorageHandle  *handle,
                             const char       *stream_id,
                             gint64            position,
                             EsReadFlags       flags,
                             EsEventFilter    *filter,
                             guint64           index,
                             GCancellable     *cancellable,
                             GError          **error)
{
  LocateOp op = { stream_id, position, (flags & ES_READ_FLAGS_BACKWARDS) != 0, filter, index, 0 };

  if (index > G_MAXINT64)
    return 0;
  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), locate_operation, &op, cancellable,
                                     error))
    return -1;
  return op.found;
}

gint64
_es_pg_storage_count_events (EsStorageHandle  *handle,
                             const char       *stream_id,
                             EsEventFilter    *filter,
                             gint64            after,
                             gint64            until,
                             GCancellable     *cancellable,
                             GError          **error)
{
  CountOp op = { stream_id, after, until, filter, 0 };

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), count_operation, &op, cancellable,
                                     error))
    return -1;
  return op.count;
}

GPtrArray *
_es_pg_storage_read_page (EsStorageHandle  *handle,
                          const char       *stream_id,
                          gint64            after,
                          EsEventFilter    *filter,
                          guint             limit,
                          GCancellable     *cancellable,
                          GError          **error)
{
  return _es_pg_storage_read_page_full (handle, stream_id, after, ES_READ_FLAGS_NONE, filter,
                                        limit, cancellable, error);
}

/* A query of one row (or none) of binary int8 and timestamptz columns: the
 * stream version, the metrics, a snapshot. */
typedef struct
{
  SqlId       sql;
  const char *values[2];
  int         n_params;
  const char *context;
  PGresult   *result;   /* (owned) */
} QueryOp;

static gboolean
query_operation (EsPgStorage    *self,
                 EsPgConnection *c,
                 gpointer        data,
                 gboolean       *retry,
                 GCancellable   *cancellable,
                 GError        **error)
{
  QueryOp *op = data;
  EsPgStatement statement = { self->sql[op->sql], op->n_params, op->values, NULL, NULL, TRUE };

  *retry = TRUE;
  g_clear_pointer (&op->result, PQclear);
  op->result = _es_pg_connection_run_one (c, &statement, cancellable, op->context, error);
  return op->result != NULL;
}

gboolean
_es_pg_storage_get_version (EsStorageHandle  *handle,
                            const char       *stream_id,
                            gint64           *out_version,
                            GCancellable     *cancellable,
                            GError          **error)
{
  QueryOp op = { 0, };

  op.sql = stream_id != NULL ? SQL_STREAM_VERSION : SQL_LAST_SEQUENCE_ID;
  op.values[0] = stream_id;
  op.n_params = stream_id != NULL ? 1 : 0;
  op.context = _("Reading the stream version");

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), query_operation, &op, cancellable,
                                     error))
    return FALSE;

  if (out_version != NULL)
    *out_version = _es_pg_get_int8 (op.result, 0, 0);
  PQclear (op.result);
  return TRUE;
}

EsStreamMetrics *
_es_pg_storage_get_metrics (EsStorageHandle  *handle,
                            const char       *stream_id,
                            GCancellable     *cancellable,
                            GError          **error)
{
  g_autoptr(GDateTime) last_timestamp = NULL;
  QueryOp op = { 0, };
  gint64 version = 0;
  gint64 count = 0;

  /* One statement, so one consistent snapshot of the database. */
  op.sql = stream_id != NULL ? SQL_STREAM_METRICS : SQL_ALL_METRICS;
  op.values[0] = stream_id;
  op.n_params = stream_id != NULL ? 1 : 0;
  op.context = _("Reading stream metrics");

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), query_operation, &op, cancellable,
                                     error))
    return NULL;

  if (PQntuples (op.result) > 0)
    {
      version = _es_pg_get_int8 (op.result, 0, 0);
      count = _es_pg_get_int8 (op.result, 0, 1);
      /* NULL: no event stored (a deleted or emptied stream keeps its
       * version). */
      if (!PQgetisnull (op.result, 0, 2))
        last_timestamp = _es_date_time_new_from_usec (_es_pg_get_usec (op.result, 0, 2));
    }
  PQclear (op.result);

  return es_stream_metrics_new (version, count, last_timestamp);
}

EsSnapshot *
_es_pg_storage_load_snapshot (EsStorageHandle  *handle,
                              const char       *stream_id,
                              const char       *projection_name,
                              GCancellable     *cancellable,
                              GError          **error)
{
  EsSnapshot *snapshot = NULL;
  QueryOp op = { 0, };

  op.sql = SQL_LOAD_SNAPSHOT;
  op.values[0] = stream_id != NULL ? stream_id : ALL_STREAM_KEY;
  op.values[1] = projection_name;
  op.n_params = 2;
  op.context = _("Loading a snapshot");

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), query_operation, &op, cancellable,
                                     error))
    return NULL;

  /* No row: no snapshot, and no error. */
  if (PQntuples (op.result) > 0)
    {
      g_autoptr(GBytes) state = g_bytes_new (PQgetvalue (op.result, 0, 1),
                                             PQgetlength (op.result, 0, 1));

      snapshot = _es_snapshot_new_usec (stream_id, projection_name,
                                        _es_pg_get_int8 (op.result, 0, 0), state,
                                        _es_pg_get_usec (op.result, 0, 2));
    }
  PQclear (op.result);
  return snapshot;
}

/* Whether committed events or tombstones after @after are held back
 * behind the horizon (BELOW_HORIZON): written by transactions that ended,
 * but not below the xmin of this read's snapshot, because an older
 * transaction is still running. The notifier looks again later for them
 * (es-pg-notifier.c). */
gboolean
_es_pg_storage_held_back (EsPgStorage   *self,
                          gint64         after,
                          gboolean      *out_held,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_autofree char *position = g_strdup_printf ("%" G_GINT64_FORMAT, after);
  const char *values[] = { position };
  PGresult *result;

  result = _es_pg_storage_read (self,
                                "SELECT (EXISTS (SELECT FROM {S}.events"
                                "  WHERE sequence_id > $1::int8"
                                "  AND xact >= (SELECT {S}.horizon ()))"
                                " OR EXISTS (SELECT FROM {S}.tombstones"
                                "  WHERE sequence_id > $1::int8"
                                "  AND xact >= (SELECT {S}.horizon ())))::int8",
                                values, 1, _("Reading events"), cancellable, error);
  if (result == NULL)
    return FALSE;
  /* In binary: an int8. */
  *out_held = _es_pg_get_int8 (result, 0, 0) != 0;
  PQclear (result);
  return TRUE;
}
/* ---------------------------------------------------------------------- *
 * Metadata indexes                                                        *
 * ---------------------------------------------------------------------- */

/* The value at a metadata path, as jsonb: -> with text keys walks objects
 * only. The same text is the expression of the path's index and of every
 * filter clause on the path, so that the planner matches them. Each key
 * is an escape string literal, backslashes and quotes doubled (keys hold
 * no control character: the filter's parser refuses them). */
char *
_es_pg_metadata_index_expression (EsPgStorage  *self,
                                  char * const *keys)
{
  GString *expression = g_string_new (NULL);

  g_string_append_printf (expression, "%s.metadata_jsonb(metadata)", self->quoted_schema);
  for (guint i = 0; keys[i] != NULL; i++)
    {
      g_string_append (expression, " -> E'");
      for (const char *p = keys[i]; *p != '\0'; p++)
        {
          if (*p == '\'' || *p == '\\')
            g_string_append_c (expression, *p);
          g_string_append_c (expression, *p);
        }
      g_string_append (expression, "'::text");
    }
  return g_string_free (expression, FALSE);
}

/* The index of a declared path: "es_meta_" and 32 hex digits of the
 * path's SHA-256 (PostgreSQL cuts names at 63 bytes); the path itself is
 * the index's comment, which the listing reads. */
static char *
metadata_index_name (const char *path)
{
  g_autofree char *digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, path, -1);

  return g_strdup_printf ("es_meta_%.32s", digest);
}

typedef struct
{
  const char *path;
  gboolean    add;
  gboolean    found;   /* out: remove found the index */
} MetaIndexOp;

/* Whether index @name exists on events, and whether it is valid (a failed
 * CREATE INDEX CONCURRENTLY leaves an invalid one behind). */
static gboolean
find_metadata_index (EsPgStorage    *self,
                     EsPgConnection *c,
                     const char     *name,
                     gboolean       *out_exists,
                     gboolean       *out_valid,
                     GCancellable   *cancellable,
                     GError        **error)
{
  g_autofree char *table = g_strdup_printf ("%s.events", self->quoted_schema);
  const char *values[] = { table, name };
  EsPgStatement statement = {
    "SELECT i.indisvalid::int4::int8 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE i.indrelid = to_regclass($1::text) AND c.relname = $2::text",
    2, values, NULL, NULL, TRUE
  };
  PGresult *result;

  result = _es_pg_connection_run_one (c, &statement, cancellable,
                                      _("Reading the metadata indexes"), error);
  if (result == NULL)
    return FALSE;
  *out_exists = PQntuples (result) > 0;
  *out_valid = *out_exists && _es_pg_get_int8 (result, 0, 0) != 0;
  PQclear (result);
  return TRUE;
}

/* CREATE and DROP INDEX CONCURRENTLY: outside any transaction (the simple
 * query protocol, one statement each), without blocking writers. An
 * invalid index left by a failed or cancelled build is dropped and built
 * again. ANALYZE then gives the planner statistics on the new expression:
 * without them it guesses, and may prefer the sequence order. */
static gboolean
metadata_index_operation (EsPgStorage    *self,
                          EsPgConnection *c,
                          gpointer        data,
                          gboolean       *retry,
                          GCancellable   *cancellable,
                          GError        **error)
{
  MetaIndexOp *op = data;
  const char *context = op->add ? _("Declaring a metadata index")
                                : _("Removing a metadata index");
  g_autofree char *field = g_strconcat ("metadata.", op->path, NULL);
  g_autofree char *name = metadata_index_name (op->path);
  g_autofree char *sql = NULL;
  g_auto(GStrv) keys = NULL;
  gboolean exists = FALSE;
  gboolean valid = FALSE;

  /* Each step may run again: it checks what is there first. */
  *retry = TRUE;
  if (es_event_filter_parse_field (field, &keys) != ES_FILTER_FIELD_METADATA)
    g_return_val_if_reached (FALSE);  /* the wrapper checked it */

  if (!find_metadata_index (self, c, name, &exists, &valid, cancellable, error))
    return FALSE;

  if (!op->add)
    {
      op->found = exists && valid;
      if (!exists)
        return TRUE;
      sql = g_strdup_printf ("DROP INDEX CONCURRENTLY IF EXISTS %s.\"%s\"",
                             self->quoted_schema, name);
      return _es_pg_connection_run_script (c, sql, cancellable, context, error);
    }

  if (exists && !valid)
    {
      sql = g_strdup_printf ("DROP INDEX CONCURRENTLY IF EXISTS %s.\"%s\"",
                             self->quoted_schema, name);
      if (!_es_pg_connection_run_script (c, sql, cancellable, context, error))
        return FALSE;
      g_clear_pointer (&sql, g_free);
      exists = FALSE;
    }

  if (!exists)
    {
      g_autofree char *expression = _es_pg_metadata_index_expression (self, keys);

      sql = g_strdup_printf ("CREATE INDEX CONCURRENTLY IF NOT EXISTS \"%s\" ON %s.events"
                             " ((%s), sequence_id)",
                             name, self->quoted_schema, expression);
      if (!_es_pg_connection_run_script (c, sql, cancellable, context, error))
        return FALSE;
      g_clear_pointer (&sql, g_free);
      sql = g_strdup_printf ("ANALYZE %s.events", self->quoted_schema);
      if (!_es_pg_connection_run_script (c, sql, cancellable, context, error))
        return FALSE;
      g_clear_pointer (&sql, g_free);
    }

  /* The comment names the path for the listing; set again by every add,
   * so that a build interrupted before it is completed by the next. */
  {
    GString *comment = g_string_new (NULL);

    g_string_append_printf (comment, "COMMENT ON INDEX %s.\"%s\" IS E'",
                            self->quoted_schema, name);
    for (const char *p = op->path; *p != '\0'; p++)
      {
        if (*p == '\'' || *p == '\\')
          g_string_append_c (comment, *p);
        g_string_append_c (comment, *p);
      }
    g_string_append_c (comment, '\'');
    sql = g_string_free (comment, FALSE);
  }
  return _es_pg_connection_run_script (c, sql, cancellable, context, error);
}

gboolean
_es_pg_storage_add_metadata_index (EsStorageHandle  *handle,
                                   const char       *path,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  MetaIndexOp op = { path, TRUE, FALSE };

  return _es_pg_storage_run_operation (ES_PG_STORAGE (handle), metadata_index_operation, &op,
                                       cancellable, error);
}

gboolean
_es_pg_storage_remove_metadata_index (EsStorageHandle  *handle,
                                      const char       *path,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  MetaIndexOp op = { path, FALSE, FALSE };

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), metadata_index_operation, &op,
                                     cancellable, error))
    return FALSE;
  if (!op.found)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                   /* Translators: %s is a metadata path such as 'user.id' */
                   _("Metadata path '%s' is not declared"), path);
      return FALSE;
    }
  return TRUE;
}

typedef struct
{
  GPtrArray *paths;  /* (owned) out */
} ListMetaOp;

static gboolean
list_metadata_operation (EsPgStorage    *self,
                         EsPgConnection *c,
                         gpointer        data,
                         gboolean       *retry,
                         GCancellable   *cancellable,
                         GError        **error)
{
  ListMetaOp *op = data;
  g_autofree char *table = g_strdup_printf ("%s.events", self->quoted_schema);
  const char *values[] = { table };
  /* Valid indexes only: an invalid one is a build that did not finish. */
  EsPgStatement statement = {
    "SELECT obj_description(i.indexrelid, 'pg_class') AS path"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE i.indrelid = to_regclass($1::text) AND i.indisvalid"
    " AND c.relname LIKE 'es\\_meta\\_%'"
    " AND obj_description(i.indexrelid, 'pg_class') IS NOT NULL"
    " ORDER BY convert_to(obj_description(i.indexrelid, 'pg_class'), 'UTF8')",
    1, values, NULL, NULL, FALSE
  };
  PGresult *result;

  *retry = TRUE;
  result = _es_pg_connection_run_one (c, &statement, cancellable,
                                      _("Listing metadata indexes"), error);
  if (result == NULL)
    return FALSE;
  op->paths = g_ptr_array_new_with_free_func (g_free);
  for (int row = 0; row < PQntuples (result); row++)
    g_ptr_array_add (op->paths, g_strdup (PQgetvalue (result, row, 0)));
  PQclear (result);
  return TRUE;
}

GStrv
_es_pg_storage_list_metadata_indexes (EsStorageHandle  *handle,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  ListMetaOp op = { NULL };

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), list_metadata_operation, &op,
                                     cancellable, error))
    {
      g_clear_pointer (&op.paths, g_ptr_array_unref);
      return NULL;
    }
  g_ptr_array_set_free_func (op.paths, NULL);
  g_ptr_array_add (op.paths, NULL);
  return (GStrv) g_ptr_array_free (op.paths, FALSE);
}
