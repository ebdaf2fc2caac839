/* es-sqlite-query.c: the SQLite backend's reads: the read pool
 * (borrowing a connection, cancelling a long query), event filters
 * translated into SQL, and the storage handle's read methods (pages of
 * events, versions, metrics, snapshots).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <math.h>
#include <string.h>

#include "es-sqlite-private.h"
#include "backend/es-time-private.h"

/* ---------------------------------------------------------------------- *
 * The read pool                                                           *
 * ---------------------------------------------------------------------- */

/* The pool of read connections is es-glib/backend/es-pool.c: all of them
 * opened by init (no open function), and closed as they come back once the
 * storage is closed. */

static void
interrupt_connection (GCancellable *cancellable,
                      gpointer      data)
{
  /* Thread-safe: makes the statement running on that connection return
   * SQLITE_INTERRUPT; SQLite clears it before the next statement starts. */
  sqlite3_interrupt (data);
}

/* Starts a read: borrows a connection and connects @cancellable to
 * sqlite3_interrupt() on it, so a cancellation stops a long query. */
static EsConnection *
read_begin (EsSqliteStorage  *self,
            GCancellable     *cancellable,
            gulong           *out_handler,
            GError          **error)
{
  EsConnection *conn = _es_pool_acquire (&self->pool, cancellable, error);

  *out_handler = 0;
  if (conn != NULL && cancellable != NULL)
    *out_handler = g_cancellable_connect (cancellable, G_CALLBACK (interrupt_connection),
                                          conn->db, NULL);
  return conn;
}

static void
read_end (EsSqliteStorage *self,
          EsConnection    *conn,
          GCancellable    *cancellable,
          gulong           handler)
{
  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);
  _es_pool_release (&self->pool, conn);
}

/* ---------------------------------------------------------------------- *
 * Filters                                                                 *
 * ---------------------------------------------------------------------- */

/* Translates an EsEventFilter into SQL. The SQL text holds only column
 * names, operators and '?' placeholders; every value of the filter and
 * every metadata JSON path is a bound parameter.
 *
 * For example, reading stream 'cart-7' with the clauses
 *   event_type IN ['Added', 'Removed'] and metadata.user.id = 42
 * gives
 *   SELECT ... FROM events WHERE stream_id = ? AND version > ?
 *     AND event_type IN (?, ?)
 *     AND CASE WHEN json_valid(metadata) THEN
 *           (json_type(metadata, ?) IN ('integer', 'real')
 *            AND json_extract(metadata, ?) = ?) END
 *     ORDER BY version LIMIT ?
 * bound to 'cart-7', the last version read, 'Added', 'Removed',
 * '$."user"."id"' (twice), 42 and the page size.
 *
 * An `in` list longer than IN_LIST_INLINE_MAX values is bound as one
 * parameter, a JSON array read back with json_each(), whatever its length:
 *   event_type IN (SELECT value FROM json_each(?))
 * SQLite materializes the subquery once per statement run, in a temporary
 * index. The clauses are AND-ed as a balanced tree of parentheses, so the
 * expression depth grows with the logarithm of their number: SQLite
 * refuses expressions deeper than 1000 ("Expression tree is too large").
 * The filter's validation caps the number of clauses (see
 * es-event-filter.c), which keeps the number of parameters below
 * SQLite's limit.
 *
 * The statement comes from the connection's cache, found by its SQL text,
 * which is known only once the whole filter is translated; so the
 * translation first collects the values to bind, in placeholder order, and
 * binds them after. */

typedef enum
{
  BIND_TEXT,
  BIND_INT64,
  BIND_DOUBLE,
} BindKind;

typedef struct
{
  BindKind kind;
  union
  {
    const char *text;  /* points into the filter, `values` or `paths` */
    gint64      int64;
    double      dbl;
  } v;
} Bind;

/* `in` lists up to this length are written as IN (?, ?...) (on a
 * metadata path, as ORs of add_metadata_equals()): for a few values that is
 * a little faster than building the temporary index of a json_each()
 * subquery. Only in filters of at most INLINE_MAX_CLAUSES clauses, so that
 * a statement never has more than 32766 parameters, the default limit of
 * SQLite builds since 3.32: inline, a clause takes up to 3 *
 * IN_LIST_INLINE_MAX of them; otherwise at most 5. */
#define IN_LIST_INLINE_MAX 16
#define INLINE_MAX_CLAUSES 512

typedef struct
{
  GString   *sql;
  GArray    *binds;   /* (element-type Bind) in placeholder order */
  GPtrArray *paths;   /* (element-type utf8) JSON paths and JSON arrays bound as text */
  GPtrArray *values;  /* (element-type GVariant) elements of `in` arrays */
  gsize      inline_max;  /* longest `in` list written inline */
} QueryBuilder;

static void
query_builder_init (QueryBuilder *builder,
                    const char   *start)
{
  builder->sql = g_string_new (start);
  builder->binds = g_array_new (FALSE, FALSE, sizeof (Bind));
  builder->paths = g_ptr_array_new_with_free_func (g_free);
  builder->values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
}

static void
query_builder_clear (QueryBuilder *builder)
{
  if (builder->sql == NULL)
    return;
  g_string_free (builder->sql, TRUE);
  g_array_unref (builder->binds);
  g_ptr_array_unref (builder->paths);
  g_ptr_array_unref (builder->values);
  builder->sql = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QueryBuilder, query_builder_clear)

static void
bind_text (QueryBuilder *builder,
           const char   *text)
{
  Bind bind = { BIND_TEXT, { .text = text } };

  g_array_append_val (builder->binds, bind);
}

static void
bind_int64 (QueryBuilder *builder,
            gint64        value)
{
  Bind bind = { BIND_INT64, { .int64 = value } };

  g_array_append_val (builder->binds, bind);
}

static void
bind_double (QueryBuilder *builder,
             double        value)
{
  Bind bind = { BIND_DOUBLE, { .dbl = value } };

  g_array_append_val (builder->binds, bind);
}

/* Binds a scalar value of a column clause; the filter was validated, so
 * it is a string for text columns and an integer for integer ones. */
static void
bind_scalar (QueryBuilder *builder,
             GVariant     *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;

  switch (es_event_filter_classify_value (value, &string, &int64, &dbl, &boolean))
    {
    case ES_FILTER_VALUE_STRING:
      bind_text (builder, string);
      break;
    case ES_FILTER_VALUE_INT64:
      bind_int64 (builder, int64);
      break;
    case ES_FILTER_VALUE_DOUBLE:
      bind_double (builder, dbl);
      break;
    case ES_FILTER_VALUE_BOOLEAN:
      bind_int64 (builder, boolean ? 1 : 0);
      break;
    case ES_FILTER_VALUE_INVALID:
    default:
      bind_text (builder, NULL);  /* NULL: equal to nothing */
      break;
    }
}

/* The elements of an `in` array; kept alive by the builder, since bound
 * strings point into them. */
static GVariant *
builder_child (QueryBuilder *builder,
               GVariant     *array,
               gsize         index)
{
  GVariant *child = g_variant_get_child_value (array, index);

  g_ptr_array_add (builder->values, child);
  return child;
}

static void
append_json_string (GString    *json,
                    const char *string)
{
  const char *p;

  g_string_append_c (json, '"');
  for (p = string; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        {
          g_string_append_c (json, '\\');
          g_string_append_c (json, *p);
        }
      else if ((guchar) *p < 0x20)
        g_string_append_printf (json, "\\u%04x", (guint) (guchar) *p);
      else
        g_string_append_c (json, *p);
    }
  g_string_append_c (json, '"');
}

/* The strings and numbers of an `in` array as a JSON array, for
 * json_each(), which gives them back as TEXT, INTEGER and REAL values with
 * no affinity: a string never equals a number, and numbers compare by
 * value (1 = 1.0, exactly: 2^53 + 1 is not 2^53 as a double).
 *
 * Integers are written as they are. So is a double with an integral value
 * that fits in 64 bits (it equals the same numbers as that integer); any
 * other finite double takes 17 significant digits, which SQLite's parser
 * reads back as the same double (checked on 400,000 random doubles with
 * SQLite 3.40); infinities as 9e999, which SQLite reads as infinite, as
 * its JSON functions read them in metadata; NaN equals nothing and is
 * left out. Booleans do not go in the array (json_each() would give 1 and
 * 0): @has_true and @has_false tell whether the array held them.
 *
 * Returns: the number of values written; the text is kept by @builder */
static guint
add_json_array (QueryBuilder  *builder,
                GVariant      *array,
                const char   **out_json,
                gboolean      *has_true,
                gboolean      *has_false)
{
  GString *json = g_string_new ("[");
  gsize n = g_variant_n_children (array);
  guint n_written = 0;
  gsize i;

  *has_true = *has_false = FALSE;

  for (i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (array, i);
      const char *string = NULL;
      gint64 int64 = 0;
      double dbl = 0.0;
      gboolean boolean = FALSE;
      char buffer[G_ASCII_DTOSTR_BUF_SIZE];
      gsize before = json->len;

      if (n_written > 0)
        g_string_append_c (json, ',');

      switch (es_event_filter_classify_value (child, &string, &int64, &dbl, &boolean))
        {
        case ES_FILTER_VALUE_STRING:
          append_json_string (json, string);
          break;

        case ES_FILTER_VALUE_INT64:
          g_string_append_printf (json, "%" G_GINT64_FORMAT, int64);
          break;

        case ES_FILTER_VALUE_DOUBLE:
          if (isnan (dbl))
            {
              g_string_truncate (json, before);
              continue;
            }
          if (isinf (dbl))
            g_string_append (json, dbl > 0 ? "9e999" : "-9e999");
          else if (dbl >= -9223372036854775808.0 && dbl < 9223372036854775808.0 &&
                   (double) (gint64) dbl == dbl)
            g_string_append_printf (json, "%" G_GINT64_FORMAT, (gint64) dbl);
          else
            g_string_append (json, g_ascii_formatd (buffer, sizeof buffer, "%.17g", dbl));
          break;

        case ES_FILTER_VALUE_BOOLEAN:
          if (boolean)
            *has_true = TRUE;
          else
            *has_false = TRUE;
          g_string_truncate (json, before);
          continue;

        case ES_FILTER_VALUE_INVALID:
        default:
          g_string_truncate (json, before);
          continue;
        }

      n_written++;
    }

  g_string_append_c (json, ']');
  g_ptr_array_add (builder->paths, g_string_free (json, FALSE));
  *out_json = g_ptr_array_index (builder->paths, builder->paths->len - 1);
  return n_written;
}

/* The SQL operator of a comparison. */
static const char *
comparison_sql (EsFilterOperator op)
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
      return "=";
    }
}

static void
add_column_clause (QueryBuilder     *builder,
                   const char       *column,
                   EsFilterOperator  op,
                   GVariant         *value)
{
  gsize n;
  gsize i;

  switch (op)
    {
    case ES_FILTER_OPERATOR_IN:
      n = g_variant_n_children (value);
      if (n > builder->inline_max)
        {
          const char *json = NULL;
          gboolean has_true;
          gboolean has_false;

          /* The filter was validated: strings for text columns, integers
           * for integer ones, so nothing is left out of the array. */
          add_json_array (builder, value, &json, &has_true, &has_false);
          g_string_append_printf (builder->sql, "%s IN (SELECT value FROM json_each(?))",
                                  column);
          bind_text (builder, json);
          break;
        }
      g_string_append_printf (builder->sql, "%s IN (", column);
      for (i = 0; i < n; i++)
        {
          g_string_append (builder->sql, i == 0 ? "?" : ", ?");
          bind_scalar (builder, builder_child (builder, value, i));
        }
      g_string_append_c (builder->sql, ')');
      break;

    case ES_FILTER_OPERATOR_LIKE:
      g_string_append_printf (builder->sql, "%s LIKE ?", column);
      bind_scalar (builder, value);
      break;

    case ES_FILTER_OPERATOR_LESS:
    case ES_FILTER_OPERATOR_LESS_OR_EQUAL:
    case ES_FILTER_OPERATOR_GREATER:
    case ES_FILTER_OPERATOR_GREATER_OR_EQUAL:
      g_string_append_printf (builder->sql, "%s %s ?", column, comparison_sql (op));
      bind_scalar (builder, value);
      break;

    case ES_FILTER_OPERATOR_EQUALS:
    default:
      g_string_append_printf (builder->sql, "%s = ?", column);
      bind_scalar (builder, value);
      break;
    }
}

/* A metadata path equals a value: a JSON string equals a string, a JSON
 * number a numerically equal integer or double, JSON true/false a boolean;
 * nothing else matches, and a missing path never does. json_type() tells
 * the kinds apart: json_extract() alone would make the string '1' equal
 * the number 1 and true equal 1. SQLite caches the parsed metadata within a
 * row, so the second JSON call does not parse it again. */
static void
add_metadata_equals (QueryBuilder *builder,
                     const char   *path,
                     GVariant     *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;

  EsFilterValueKind kind = es_event_filter_classify_value (value, &string, &int64, &dbl, &boolean);

  switch (kind)
    {
    case ES_FILTER_VALUE_STRING:
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)");
      bind_text (builder, path);
      bind_text (builder, path);
      bind_text (builder, string);
      break;

    case ES_FILTER_VALUE_INT64:
    case ES_FILTER_VALUE_DOUBLE:
      /* SQLite compares INTEGER and REAL by value: 1 = 1.0. */
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) IN ('integer', 'real')"
                       " AND json_extract(metadata, ?) = ?)");
      bind_text (builder, path);
      bind_text (builder, path);
      if (kind == ES_FILTER_VALUE_INT64)
        bind_int64 (builder, int64);
      else
        bind_double (builder, dbl);
      break;

    case ES_FILTER_VALUE_BOOLEAN:
      g_string_append (builder->sql, boolean ? "json_type(metadata, ?) = 'true'"
                                             : "json_type(metadata, ?) = 'false'");
      bind_text (builder, path);
      break;

    case ES_FILTER_VALUE_INVALID:
    default:
      g_string_append (builder->sql, "0");
      break;
    }
}

/* A long `in` list on a metadata path: the strings and numbers in one
 * JSON array (add_json_array()), compared with the value at the path when
 * it is a JSON string or number (json_type() keeps true, false and objects
 * out, as in add_metadata_equals()); booleans through json_type() alone. */
static void
add_metadata_in_json (QueryBuilder *builder,
                      const char   *path,
                      GVariant     *values)
{
  const char *json = NULL;
  gboolean has_true;
  gboolean has_false;
  gboolean first = TRUE;

  g_string_append_c (builder->sql, '(');
  if (add_json_array (builder, values, &json, &has_true, &has_false) > 0)
    {
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) IN ('text', 'integer', 'real')"
                       " AND json_extract(metadata, ?) IN (SELECT value FROM json_each(?)))");
      bind_text (builder, path);
      bind_text (builder, path);
      bind_text (builder, json);
      first = FALSE;
    }
  if (has_true)
    {
      g_string_append (builder->sql, first ? "json_type(metadata, ?) = 'true'"
                                           : " OR json_type(metadata, ?) = 'true'");
      bind_text (builder, path);
      first = FALSE;
    }
  if (has_false)
    {
      g_string_append (builder->sql, first ? "json_type(metadata, ?) = 'false'"
                                           : " OR json_type(metadata, ?) = 'false'");
      bind_text (builder, path);
      first = FALSE;
    }
  if (first)
    g_string_append_c (builder->sql, '0');  /* only NaNs: equal to nothing */
  g_string_append_c (builder->sql, ')');
}

/* "metadata.a.b" → the JSON path $."a"."b". Quoted labels take any key;
 * the filter's validation rejects keys holding '"'. SQLite compares a
 * label with the key's text as written in the JSON, escapes included, so a
 * backslash is written the way JSON writers escape it. */
static const char *
metadata_json_path (QueryBuilder *builder,
                    char * const *keys)
{
  GString *path = g_string_new ("$");
  guint i;

  for (i = 0; keys[i] != NULL; i++)
    {
      const char *p;

      g_string_append (path, ".\"");
      for (p = keys[i]; *p != '\0'; p++)
        {
          if (*p == '\\')
            g_string_append_c (path, '\\');
          g_string_append_c (path, *p);
        }
      g_string_append_c (path, '"');
    }

  g_ptr_array_add (builder->paths, g_string_free (path, FALSE));
  return g_ptr_array_index (builder->paths, builder->paths->len - 1);
}

static void
add_metadata_clause (QueryBuilder     *builder,
                     char * const     *keys,
                     EsFilterOperator  op,
                     GVariant         *value)
{
  const char *path = metadata_json_path (builder, keys);
  gsize n;
  gsize i;

  /* The stream layer validates metadata with json-glib, which accepts
   * text SQLite's JSON functions refuse (comments, single quotes, hex
   * numbers...): on such a row, json_type() would fail the whole read.
   * json_valid() first, in a CASE (which, unlike AND, is sure to evaluate
   * lazily), makes that row simply not match. It costs about 15% on a
   * metadata scan: SQLite keeps the parse for the calls that follow. */
  g_string_append (builder->sql, "CASE WHEN json_valid(metadata) THEN ");

  switch (op)
    {
    case ES_FILTER_OPERATOR_IN:
      n = g_variant_n_children (value);
      if (n <= builder->inline_max)
        {
          g_string_append_c (builder->sql, '(');
          for (i = 0; i < n; i++)
            {
              if (i > 0)
                g_string_append (builder->sql, " OR ");
              add_metadata_equals (builder, path, builder_child (builder, value, i));
            }
          g_string_append_c (builder->sql, ')');
        }
      else
        add_metadata_in_json (builder, path, value);
      break;

    case ES_FILTER_OPERATOR_LIKE:
      /* LIKE matches string values only. */
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) LIKE ?)");
      bind_text (builder, path);
      bind_text (builder, path);
      bind_scalar (builder, value);
      break;

    case ES_FILTER_OPERATOR_LESS:
    case ES_FILTER_OPERATOR_LESS_OR_EQUAL:
    case ES_FILTER_OPERATOR_GREATER:
    case ES_FILTER_OPERATOR_GREATER_OR_EQUAL:
      /* Numbers only: a string, a boolean, an object never compares.
       * SQLite compares INTEGER and REAL by value. */
      g_string_append_printf (builder->sql,
                              "(json_type(metadata, ?) IN ('integer', 'real')"
                              " AND json_extract(metadata, ?) %s ?)",
                              comparison_sql (op));
      bind_text (builder, path);
      bind_text (builder, path);
      bind_scalar (builder, value);
      break;

    case ES_FILTER_OPERATOR_EQUALS:
    default:
      add_metadata_equals (builder, path, value);
      break;
    }

  g_string_append (builder->sql, " END");
}

/* Appends clauses @first to @last - 1 of @filter, AND-ed, as a balanced
 * tree: "((c0 AND c1) AND (c2 AND c3))". A flat "c0 AND c1 AND ..." is a
 * tree as deep as the number of clauses, and SQLite refuses expressions
 * deeper than 1000. The clauses keep their order, and so do their
 * parameters. */
static void
add_clauses (QueryBuilder  *builder,
             EsEventFilter *filter,
             guint          first,
             guint          last)
{
  g_auto(GStrv) keys = NULL;
  EsFilterOperator op = ES_FILTER_OPERATOR_EQUALS;
  GVariant *value = NULL;
  const char *field;
  EsFilterField kind;

  if (last - first > 1)
    {
      guint middle = first + (last - first) / 2;

      g_string_append_c (builder->sql, '(');
      add_clauses (builder, filter, first, middle);
      g_string_append (builder->sql, " AND ");
      add_clauses (builder, filter, middle, last);
      g_string_append_c (builder->sql, ')');
      return;
    }

  field = es_event_filter_get_clause (filter, first, &op, &value);
  kind = es_event_filter_parse_field (field, &keys);

  switch (kind)
    {
    case ES_FILTER_FIELD_STREAM_ID:
      add_column_clause (builder, "stream_id", op, value);
      break;
    case ES_FILTER_FIELD_EVENT_TYPE:
      add_column_clause (builder, "event_type", op, value);
      break;
    case ES_FILTER_FIELD_VERSION:
      add_column_clause (builder, "version", op, value);
      break;
    case ES_FILTER_FIELD_SEQUENCE_ID:
      add_column_clause (builder, "sequence_id", op, value);
      break;
    case ES_FILTER_FIELD_TIMESTAMP:
      add_column_clause (builder, "timestamp", op, value);
      break;
    case ES_FILTER_FIELD_METADATA:
      add_metadata_clause (builder, keys, op, value);
      break;
    case ES_FILTER_FIELD_INVALID:
    default:
      /* Validation rejects these; should one get here, it selects
       * nothing rather than everything. */
      g_string_append (builder->sql, "0");
      break;
    }
}

/* Appends " AND <clauses>" for @filter, which the storage handle's
 * wrapper has validated (it has at least one clause). */
static void
add_filter (QueryBuilder  *builder,
            EsEventFilter *filter)
{
  guint n_clauses = es_event_filter_get_n_clauses (filter);

  builder->inline_max = n_clauses <= INLINE_MAX_CLAUSES ? IN_LIST_INLINE_MAX : 0;
  g_string_append (builder->sql, " AND ");
  add_clauses (builder, filter, 0, n_clauses);
}

static int
apply_binds (sqlite3_stmt *stmt,
             int           index,
             GArray       *binds)
{
  guint i;
  int rc = SQLITE_OK;

  for (i = 0; i < binds->len && rc == SQLITE_OK; i++, index++)
    {
      const Bind *bind = &g_array_index (binds, Bind, i);

      switch (bind->kind)
        {
        case BIND_TEXT:
          rc = sqlite3_bind_text (stmt, index, bind->v.text, -1, SQLITE_STATIC);
          break;
        case BIND_INT64:
          rc = sqlite3_bind_int64 (stmt, index, bind->v.int64);
          break;
        case BIND_DOUBLE:
        default:
          rc = sqlite3_bind_double (stmt, index, bind->v.dbl);
          break;
        }
    }

  return rc;
}

/* Event rows: flags < 2 (ES_SQLITE_FLAGS_MARKERS) are events, erased or
 * not; a tombstone marker has flags 2, the position row 256 (see
 * es-sqlite-schema.c). */
#define READ_COLUMNS \
  "SELECT sequence_id, version, idempotency_key, event_type, timestamp, data, metadata," \
  " flags, stream_id FROM events"
#define EVENTS_ONLY " AND flags < " G_STRINGIFY (ES_SQLITE_FLAGS_MARKERS)

/* Builds a stored event from the current row. @stream_ref holds the
 * GRefString of the previous row's stream: consecutive rows of one stream
 * (all of a stream read) share it instead of each copying the id. */
static EsStoredEvent *
event_from_row (sqlite3_stmt  *stmt,
                char         **stream_ref,
                gboolean       all_streams)
{
  const char *type, *key, *metadata;
  const void *blob;
  int n_type, n_key, n_metadata, n_blob;
  EsStoredEvent *event;
  gint64 flags;

  if (all_streams)
    {
      const char *stream_id = (const char *) sqlite3_column_text (stmt, 8);

      if (stream_id == NULL)
        stream_id = "";
      if (*stream_ref == NULL || strcmp (*stream_ref, stream_id) != 0)
        {
          g_clear_pointer (stream_ref, g_ref_string_release);
          *stream_ref = g_ref_string_new (stream_id);
        }
    }

  /* One allocation for the row's strings and data (see
   * _es_stored_event_new_packed()). Each text is fetched before its length,
   * as SQLite documents. Empty data is a zero-length blob: NULL here. */
  type = (const char *) sqlite3_column_text (stmt, 3);
  n_type = sqlite3_column_bytes (stmt, 3);
  key = (const char *) sqlite3_column_text (stmt, 2);
  n_key = sqlite3_column_bytes (stmt, 2);
  metadata = (const char *) sqlite3_column_text (stmt, 6);
  n_metadata = sqlite3_column_bytes (stmt, 6);
  blob = sqlite3_column_blob (stmt, 5);
  n_blob = sqlite3_column_bytes (stmt, 5);

  event = _es_stored_event_new_packed (g_ref_string_acquire (*stream_ref),
                                       sqlite3_column_int64 (stmt, 0),
                                       sqlite3_column_int64 (stmt, 1),
                                       sqlite3_column_int64 (stmt, 4),
                                       type != NULL ? type : "", n_type,
                                       blob, n_blob,
                                       key, n_key,
                                       metadata, n_metadata);
  flags = sqlite3_column_int64 (stmt, 7);
  if (flags != 0)
    _es_stored_event_set_flags (event, (EsStoredEventFlags) (flags & (ES_STORED_EVENT_FLAGS_ERASED |
                                                                      ES_STORED_EVENT_FLAGS_TOMBSTONE)));
  return event;
}

/* Time windows of @all. SQLite, without statistics, prefers to walk the
 * rowid range of the keyset and test every row's timestamp, which costs
 * in proportion to the whole table for a one-hour window. The timestamp
 * index finds the window's rows directly, but then sorts them, and each
 * page goes through the whole window again (the index is in time order,
 * the pages in sequence order). So when the filter bounds the timestamp, a
 * probe counts the window's rows in the index, up to TIME_WINDOW_MAX: a
 * smaller window is read through the index, a bigger one the usual way,
 * where its rows are dense enough. The probe and each page of a small
 * window cost at most TIME_WINDOW_MAX index entries, whatever the size of
 * the table or the position of the page. */
#define TIME_WINDOW_MAX (4 * ES_READ_PAGE_SIZE)

/* Appends " AND <clause>" for each top-level timestamp clause of
 * @filter that the index can serve; returns how many. */
static guint
add_timestamp_clauses (QueryBuilder  *builder,
                       EsEventFilter *filter)
{
  guint n = es_event_filter_get_n_clauses (filter);
  guint found = 0;
  guint i;

  for (i = 0; i < n; i++)
    {
      EsFilterOperator op = ES_FILTER_OPERATOR_EQUALS;
      GVariant *value = NULL;
      const char *field = es_event_filter_get_clause (filter, i, &op, &value);

      if (es_event_filter_parse_field (field, NULL) != ES_FILTER_FIELD_TIMESTAMP ||
          op == ES_FILTER_OPERATOR_LIKE || op == ES_FILTER_OPERATOR_IN)
        continue;
      g_string_append (builder->sql, " AND ");
      add_column_clause (builder, "timestamp", op, value);
      found++;
    }
  return found;
}

/* Whether a read of @all through @filter should use the timestamp index
 * (see TIME_WINDOW_MAX). */
static gboolean
use_time_index (EsConnection  *conn,
                EsEventFilter *filter,
                GError       **error)
{
  g_auto(QueryBuilder) probe = { NULL, };
  sqlite3_stmt *stmt;
  gint64 count = 0;
  int rc;

  query_builder_init (&probe, "SELECT count(*) FROM (SELECT 1 FROM events"
                              " INDEXED BY events_timestamp WHERE 1");
  if (add_timestamp_clauses (&probe, filter) == 0)
    return FALSE;
  g_string_append (probe.sql, " LIMIT " G_STRINGIFY (TIME_WINDOW_MAX) ")");

  stmt = _es_sqlite_connection_get_stmt (conn, probe.sql->str, _("Reading events"), error);
  if (stmt == NULL)
    return FALSE;
  rc = apply_binds (stmt, 1, probe.binds);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    count = sqlite3_column_int64 (stmt, 0);
  _es_sqlite_stmt_done (stmt);
  /* Should the probe fail, the read goes the usual way, and reports its
   * own error if there is one. */
  return rc == SQLITE_ROW && count < TIME_WINDOW_MAX;
}

/* What a read does with each row of the page: read_page_full builds an
 * event, read_rows copies the row into an EsRowPage. */
typedef void (*RowFunc) (sqlite3_stmt *stmt,
                         gpointer      user_data);

/* The read both share: one page of events after (before) @position, each
 * row handed to @row_func. Returns FALSE on error: the rows handed so far
 * are then to be dropped by the caller (a partial page is never a page). */
static gboolean
read_rows_with (EsSqliteStorage  *self,
                const char       *stream_id,
                gint64            position,
                EsReadFlags       flags,
                EsEventFilter    *filter,
                guint             limit,
                RowFunc           row_func,
                gpointer          user_data,
                GCancellable     *cancellable,
                GError          **error)
{
  const char *operation = _("Reading events");
  g_auto(QueryBuilder) builder = { NULL, };
  gboolean all_streams = stream_id == NULL;
  gboolean backwards = (flags & ES_READ_FLAGS_BACKWARDS) != 0;
  gboolean tombstones = all_streams && (flags & ES_READ_FLAGS_INCLUDE_TOMBSTONES) != 0;
  gboolean filtered = filter != NULL && es_event_filter_get_n_clauses (filter) > 0;
  const char *key_column = all_streams ? "sequence_id" : "version";
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int index = 1;
  int rc;

  /* Keyset paging: each page starts after (backwards: before) the last
   * version (or sequence id) of the previous one, so every page is an
   * index range scan, in either direction:
   *   SELECT ... FROM events WHERE stream_id = ? AND version < ?
   *     AND flags < 2 [AND <filter>] ORDER BY version DESC LIMIT ?
   * With tombstones, the markers (flags 2) pass whatever the filter. */
  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return FALSE;

  query_builder_init (&builder, READ_COLUMNS);
  if (all_streams && filtered && !tombstones &&
      use_time_index (conn, filter, NULL))
    g_string_append (builder.sql, " INDEXED BY events_timestamp");
  g_string_append_printf (builder.sql, " WHERE %s%s %s ?",
                          all_streams ? "" : "stream_id = ? AND ",
                          key_column, backwards ? "<" : ">");
  if (tombstones)
    {
      g_string_append (builder.sql, " AND flags < " G_STRINGIFY (ES_SQLITE_FLAG_POSITION));
      if (filtered)
        {
          g_string_append (builder.sql, " AND (flags = "
                           G_STRINGIFY (ES_SQLITE_FLAG_TOMBSTONE) " OR (1");
          add_filter (&builder, filter);
          g_string_append (builder.sql, "))");
        }
    }
  else
    {
      g_string_append (builder.sql, EVENTS_ONLY);
      if (filtered)
        add_filter (&builder, filter);
    }
  g_string_append_printf (builder.sql, " ORDER BY %s%s LIMIT ?", key_column,
                          backwards ? " DESC" : "");

  stmt = _es_sqlite_connection_get_stmt (conn, builder.sql->str, operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return FALSE;
    }

  /* Placeholders in SQL order: the stream, the keyset bound, the filter's
   * values, the limit. @stream_id, the filter and the builder outlive the
   * steps, hence SQLITE_STATIC. */
  if (!all_streams)
    rc = sqlite3_bind_text (stmt, index++, stream_id, -1, SQLITE_STATIC);
  else
    rc = SQLITE_OK;
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index++, position);
  if (rc == SQLITE_OK && builder.binds->len > 0)
    {
      rc = apply_binds (stmt, index, builder.binds);
      index += builder.binds->len;
    }
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index++, limit);

  if (rc == SQLITE_OK)
    {
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          /* The interrupt stops a query that scans without returning rows;
           * this stops one that returns many. */
          if (g_cancellable_is_cancelled (cancellable))
            {
              rc = SQLITE_INTERRUPT;
              break;
            }
          row_func (stmt, user_data);
        }
    }

  /* A partial page is not returned: the caller would take it for the end
   * of the stream. */
  if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (conn, rc, operation, error);

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);

  return rc == SQLITE_DONE;
}

typedef struct
{
  GPtrArray *events;
  char      *stream_ref;   /* (owned) GRefString, see event_from_row() */
  gboolean   all_streams;
} EventRows;

static void
add_event_row (sqlite3_stmt *stmt,
               gpointer      user_data)
{
  EventRows *rows = user_data;

  g_ptr_array_add (rows->events, event_from_row (stmt, &rows->stream_ref, rows->all_streams));
}

GPtrArray *
_es_sqlite_storage_read_page_full (EsStorageHandle  *handle,
                                   const char       *stream_id,
                                   gint64            position,
                                   EsReadFlags       flags,
                                   EsEventFilter    *filter,
                                   guint             limit,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  EventRows rows;
  gboolean ok;

  /* A stream's page shares one GRefString for the stream id of all its
   * events. */
  rows.events = g_ptr_array_new_full (MIN (limit, ES_READ_PAGE_SIZE), g_object_unref);
  rows.stream_ref = stream_id != NULL ? g_ref_string_new (stream_id) : NULL;
  rows.all_streams = stream_id == NULL;

  ok = read_rows_with (ES_SQLITE_STORAGE (handle), stream_id, position, flags, filter, limit,
                       add_event_row, &rows, cancellable, error);

  g_clear_pointer (&rows.stream_ref, g_ref_string_release);
  if (!ok)
    g_clear_pointer (&rows.events, g_ptr_array_unref);
  return rows.events;
}

typedef struct
{
  EsRowPage  *page;
  const char *stream_id;      /* (nullable): NULL reads every stream */
  gsize       stream_id_len;
} PageRows;

/* Copies the current row into the page: the same columns as
 * event_from_row(), each text fetched before its length. */
static void
add_page_row (sqlite3_stmt *stmt,
              gpointer      user_data)
{
  PageRows *rows = user_data;
  const char *stream_id = rows->stream_id;
  gsize stream_id_len = rows->stream_id_len;
  const char *type, *key, *metadata;
  const void *blob;
  int n_type, n_key, n_metadata, n_blob;

  if (stream_id == NULL)
    {
      stream_id = (const char *) sqlite3_column_text (stmt, 8);
      stream_id_len = sqlite3_column_bytes (stmt, 8);
      if (stream_id == NULL)
        stream_id = "";
    }
  type = (const char *) sqlite3_column_text (stmt, 3);
  n_type = sqlite3_column_bytes (stmt, 3);
  key = (const char *) sqlite3_column_text (stmt, 2);
  n_key = sqlite3_column_bytes (stmt, 2);
  metadata = (const char *) sqlite3_column_text (stmt, 6);
  n_metadata = sqlite3_column_bytes (stmt, 6);
  blob = sqlite3_column_blob (stmt, 5);
  n_blob = sqlite3_column_bytes (stmt, 5);

  _es_row_page_add (rows->page,
                    sqlite3_column_int64 (stmt, 0),
                    sqlite3_column_int64 (stmt, 1),
                    sqlite3_column_int64 (stmt, 4),
                    (EsStoredEventFlags) (sqlite3_column_int64 (stmt, 7) &
                                          (ES_STORED_EVENT_FLAGS_ERASED |
                                           ES_STORED_EVENT_FLAGS_TOMBSTONE)),
                    stream_id, stream_id_len,
                    type != NULL ? type : "", n_type,
                    key, n_key,
                    metadata, n_metadata,
                    blob, n_blob);
}

gboolean
_es_sqlite_storage_read_rows (EsStorageHandle  *handle,
                              const char       *stream_id,
                              gint64            position,
                              EsReadFlags       flags,
                              EsEventFilter    *filter,
                              guint             limit,
                              EsRowPage        *page,
                              GCancellable     *cancellable,
                              GError          **error)
{
  PageRows rows = { page, stream_id, stream_id != NULL ? strlen (stream_id) : 0 };

  return read_rows_with (ES_SQLITE_STORAGE (handle), stream_id, position, flags, filter, limit,
                         add_page_row, &rows, cancellable, error);
}

/* Counts from the indexes: (stream_id, version) for a stream, the rowid
 * (sequence_id) for @all; the filter's columns are read only for the rows
 * in range, and no event is built. */
gint64
_es_sqlite_storage_count_events (EsStorageHandle  *handle,
                                 const char       *stream_id,
                                 EsEventFilter    *filter,
                                 gint64            after,
                                 gint64            until,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Counting events");
  g_auto(QueryBuilder) builder = { NULL, };
  gboolean all_streams = stream_id == NULL;
  gboolean filtered = filter != NULL && es_event_filter_get_n_clauses (filter) > 0;
  const char *key_column = all_streams ? "sequence_id" : "version";
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  gint64 count = -1;
  int index = 1;
  int rc = SQLITE_OK;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return -1;

  query_builder_init (&builder, "SELECT COUNT(*) FROM events");
  if (all_streams && filtered && use_time_index (conn, filter, NULL))
    g_string_append (builder.sql, " INDEXED BY events_timestamp");
  g_string_append_printf (builder.sql, " WHERE %s%s > ? AND %s <= ?" EVENTS_ONLY,
                          all_streams ? "" : "stream_id = ? AND ", key_column, key_column);
  if (filtered)
    add_filter (&builder, filter);

  stmt = _es_sqlite_connection_get_stmt (conn, builder.sql->str, operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return -1;
    }

  if (!all_streams)
    rc = sqlite3_bind_text (stmt, index++, stream_id, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index++, after);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index++, until);
  if (rc == SQLITE_OK && builder.binds->len > 0)
    rc = apply_binds (stmt, index, builder.binds);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    count = sqlite3_column_int64 (stmt, 0);
  else
    _es_sqlite_connection_set_error (conn, rc, operation, error);

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);
  return count;
}

/* The index-th key of a keyset read: "LIMIT 1 OFFSET index" from
 * @position, which steps over the index entries (and, with a filter, the
 * rows they point to) without building a single event. */
gint64
_es_sqlite_storage_locate_event (EsStorageHandle  *handle,
                                 const char       *stream_id,
                                 gint64            position,
                                 EsReadFlags       flags,
                                 EsEventFilter    *filter,
                                 guint64           index,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Reading events");
  g_auto(QueryBuilder) builder = { NULL, };
  gboolean all_streams = stream_id == NULL;
  gboolean backwards = (flags & ES_READ_FLAGS_BACKWARDS) != 0;
  gboolean filtered = filter != NULL && es_event_filter_get_n_clauses (filter) > 0;
  const char *key_column = all_streams ? "sequence_id" : "version";
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  gint64 found = -1;
  int index_param = 1;
  int rc = SQLITE_OK;

  if (index > G_MAXINT64)
    return 0;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return -1;

  query_builder_init (&builder, "SELECT ");
  g_string_append_printf (builder.sql, "%s FROM events WHERE %s%s %s ?" EVENTS_ONLY,
                          key_column, all_streams ? "" : "stream_id = ? AND ",
                          key_column, backwards ? "<" : ">");
  if (filtered)
    add_filter (&builder, filter);
  g_string_append_printf (builder.sql, " ORDER BY %s%s LIMIT 1 OFFSET ?", key_column,
                          backwards ? " DESC" : "");

  stmt = _es_sqlite_connection_get_stmt (conn, builder.sql->str, operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return -1;
    }

  if (!all_streams)
    rc = sqlite3_bind_text (stmt, index_param++, stream_id, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index_param++, position);
  if (rc == SQLITE_OK && builder.binds->len > 0)
    {
      rc = apply_binds (stmt, index_param, builder.binds);
      index_param += builder.binds->len;
    }
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index_param++, (sqlite3_int64) index);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    found = sqlite3_column_int64 (stmt, 0);
  else if (rc == SQLITE_DONE)
    found = 0;
  else
    _es_sqlite_connection_set_error (conn, rc, operation, error);

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);
  return found;
}

GPtrArray *
_es_sqlite_storage_read_page (EsStorageHandle  *handle,
                              const char       *stream_id,
                              gint64            after,
                              EsEventFilter    *filter,
                              guint             limit,
                              GCancellable     *cancellable,
                              GError          **error)
{
  return _es_sqlite_storage_read_page_full (handle, stream_id, after, ES_READ_FLAGS_NONE, filter,
                                            limit, cancellable, error);
}

/* Runs @sql, binding @text (if not NULL) to its first parameter, and hands
 * its only row to @row_func; no row is not an error (@row_func is not
 * called). */
typedef void (*RowFunc) (sqlite3_stmt *stmt,
                         gpointer      user_data);

static gboolean
read_one_row (EsSqliteStorage  *self,
              const char       *sql,
              const char       *text,
              RowFunc           row_func,
              gpointer          user_data,
              const char       *operation,
              GCancellable     *cancellable,
              GError          **error)
{
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int rc;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return FALSE;

  stmt = _es_sqlite_connection_get_stmt (conn, sql, operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return FALSE;
    }

  if (text != NULL)
    sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    row_func (stmt, user_data);
  else if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (conn, rc, operation, error);

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static void
read_int64_row (sqlite3_stmt *stmt,
                gpointer      user_data)
{
  *(gint64 *) user_data = sqlite3_column_int64 (stmt, 0);  /* NULL reads as 0 */
}

gboolean
_es_sqlite_storage_get_version (EsStorageHandle  *handle,
                                const char       *stream_id,
                                gint64           *out_version,
                                GCancellable     *cancellable,
                                GError          **error)
{
  gint64 version = 0;

  /* A stream's version is kept in its row, deleted or not; @all's is the
   * last position used, the end of the rowid b-tree (tombstones and the
   * position row included). */
  if (!read_one_row (ES_SQLITE_STORAGE (handle),
                     stream_id != NULL ? "SELECT version FROM streams WHERE stream_id = ?"
                                       : "SELECT max(sequence_id) FROM events",
                     stream_id, read_int64_row, &version,
                     _("Reading the stream version"), cancellable, error))
    return FALSE;

  if (out_version != NULL)
    *out_version = version;
  return TRUE;
}

/* The columns of a stream's information, in this order, whether read from
 * its row or computed for @all. */
typedef struct
{
  gboolean found;
  gint64   version;
  gint64   event_count;
  gint64   first_version;
  gint64   first_timestamp;
  gint64   last_timestamp;
  gint64   state;
  gint64   max_age;
  gint64   max_count;
} InfoRow;

#define INFO_COLUMNS \
  "version, event_count, first_version, first_timestamp, last_timestamp, state, max_age," \
  " max_count"

/* One statement, so one consistent snapshot: the last position, the
 * events of every stream, the first and last events in sequence order,
 * the database-wide policy. */
#define ALL_INFO_SQL \
  "SELECT (SELECT max(sequence_id) FROM events)," \
  " (SELECT coalesce(sum(event_count), 0) FROM streams)," \
  " (SELECT sequence_id FROM events WHERE 1" EVENTS_ONLY " ORDER BY sequence_id LIMIT 1)," \
  " (SELECT timestamp FROM events WHERE 1" EVENTS_ONLY " ORDER BY sequence_id LIMIT 1)," \
  " (SELECT timestamp FROM events WHERE 1" EVENTS_ONLY " ORDER BY sequence_id DESC LIMIT 1)," \
  " 0," \
  " (SELECT value FROM settings WHERE name = 'max_age')," \
  " (SELECT value FROM settings WHERE name = 'max_count')"

static void
read_info_row (sqlite3_stmt *stmt,
               gpointer      user_data)
{
  InfoRow *row = user_data;

  row->found = TRUE;
  row->version = sqlite3_column_int64 (stmt, 0);
  row->event_count = sqlite3_column_int64 (stmt, 1);
  row->first_version = sqlite3_column_int64 (stmt, 2);
  row->first_timestamp = sqlite3_column_int64 (stmt, 3);
  row->last_timestamp = sqlite3_column_int64 (stmt, 4);
  row->state = sqlite3_column_int64 (stmt, 5);
  row->max_age = sqlite3_column_int64 (stmt, 6);
  row->max_count = sqlite3_column_int64 (stmt, 7);
}

static gboolean
read_info (EsSqliteStorage  *self,
           const char       *stream_id,
           InfoRow          *row,
           const char       *operation,
           GCancellable     *cancellable,
           GError          **error)
{
  memset (row, 0, sizeof *row);
  return read_one_row (self,
                       stream_id != NULL
                         ? "SELECT " INFO_COLUMNS " FROM streams WHERE stream_id = ?"
                         : ALL_INFO_SQL,
                       stream_id, read_info_row, row, operation, cancellable, error);
}

EsStreamMetrics *
_es_sqlite_storage_get_metrics (EsStorageHandle  *handle,
                                const char       *stream_id,
                                GCancellable     *cancellable,
                                GError          **error)
{
  g_autoptr(GDateTime) last_timestamp = NULL;
  InfoRow row;

  /* What the streams table keeps (for @all, sums): never a scan of the
   * events. A deleted stream keeps its version, without events. */
  if (!read_info (ES_SQLITE_STORAGE (handle), stream_id, &row, _("Reading stream metrics"),
                  cancellable, error))
    return NULL;

  if (row.event_count > 0)
    last_timestamp = _es_date_time_new_from_usec (row.last_timestamp);
  return es_stream_metrics_new (row.version, row.event_count, last_timestamp);
}

static EsStreamInfo *
info_from_row (const char    *stream_id,
               const InfoRow *row)
{
  EsStreamState state = row->state == ES_STREAM_STATE_DELETED ? ES_STREAM_STATE_DELETED
                        : row->state == ES_STREAM_STATE_TOMBSTONED ? ES_STREAM_STATE_TOMBSTONED
                        : ES_STREAM_STATE_ACTIVE;
  gboolean empty = row->event_count == 0;

  return es_stream_info_new (stream_id, state, row->version, row->event_count,
                             empty ? 0 : row->first_version,
                             empty ? 0 : row->first_timestamp,
                             empty ? 0 : row->last_timestamp,
                             row->max_age, row->max_count);
}

EsStreamInfo *
_es_sqlite_storage_get_stream_info (EsStorageHandle  *handle,
                                    const char       *stream_id,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  InfoRow row;

  /* A stream without a row was never written: active, zeros. */
  if (!read_info (ES_SQLITE_STORAGE (handle), stream_id, &row, _("Reading stream information"),
                  cancellable, error))
    return NULL;

  return info_from_row (stream_id != NULL ? stream_id : ES_ALL_STREAM, &row);
}

/* The smallest string greater than every string starting with @prefix,
 * byte-wise: @prefix with its last byte incremented (UTF-8 never holds
 * 0xff, so there is no carry). */
static char *
prefix_successor (const char *prefix)
{
  char *successor = g_strdup (prefix);
  gsize len = strlen (successor);

  successor[len - 1] = (char) ((guchar) successor[len - 1] + 1);
  return successor;
}

GPtrArray *
_es_sqlite_storage_list_streams (EsStorageHandle     *handle,
                                 const char          *prefix,
                                 const char          *after_stream_id,
                                 EsListStreamsFlags   flags,
                                 guint                limit,
                                 GCancellable        *cancellable,
                                 GError             **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Listing streams");
  gboolean deleted = (flags & ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED) != 0;
  g_autofree char *upper = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GString) sql = NULL;
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int index = 1;
  int rc;

  /* A range of the primary key, whose BINARY order is byte-wise: after
   * the last id of the previous page, within [prefix, successor). */
  sql = g_string_new ("SELECT stream_id, " INFO_COLUMNS " FROM streams WHERE stream_id > ?");
  if (prefix != NULL)
    {
      upper = prefix_successor (prefix);
      g_string_append (sql, " AND stream_id >= ? AND stream_id < ?");
    }
  if (!deleted)
    g_string_append (sql, " AND state = 0");
  g_string_append (sql, " ORDER BY stream_id LIMIT ?");

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return NULL;

  stmt = _es_sqlite_connection_get_stmt (conn, sql->str, operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return NULL;
    }

  sqlite3_bind_text (stmt, index++, after_stream_id != NULL ? after_stream_id : "", -1,
                     SQLITE_STATIC);
  if (prefix != NULL)
    {
      sqlite3_bind_text (stmt, index++, prefix, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, index++, upper, -1, SQLITE_STATIC);
    }
  sqlite3_bind_int64 (stmt, index++, limit);

  infos = g_ptr_array_new_full (MIN (limit, ES_READ_PAGE_SIZE), g_object_unref);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *stream_id = (const char *) sqlite3_column_text (stmt, 0);
      InfoRow row;

      if (g_cancellable_is_cancelled (cancellable))
        {
          rc = SQLITE_INTERRUPT;
          break;
        }
      row.found = TRUE;
      row.version = sqlite3_column_int64 (stmt, 1);
      row.event_count = sqlite3_column_int64 (stmt, 2);
      row.first_version = sqlite3_column_int64 (stmt, 3);
      row.first_timestamp = sqlite3_column_int64 (stmt, 4);
      row.last_timestamp = sqlite3_column_int64 (stmt, 5);
      row.state = sqlite3_column_int64 (stmt, 6);
      row.max_age = sqlite3_column_int64 (stmt, 7);
      row.max_count = sqlite3_column_int64 (stmt, 8);
      g_ptr_array_add (infos, info_from_row (stream_id != NULL ? stream_id : "", &row));
    }

  if (rc != SQLITE_DONE)
    {
      _es_sqlite_connection_set_error (conn, rc, operation, error);
      g_clear_pointer (&infos, g_ptr_array_unref);
    }

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);
  return g_steal_pointer (&infos);
}

EsSnapshot *
_es_sqlite_storage_load_snapshot (EsStorageHandle  *handle,
                                  const char       *stream_id,
                                  const char       *projection_name,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Loading a snapshot");
  EsSnapshot *snapshot = NULL;
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int rc;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return NULL;

  stmt = _es_sqlite_connection_get_stmt (conn,
                                         "SELECT version, state, timestamp FROM snapshots"
                                         " WHERE stream_id = ? AND projection_name = ?",
                                         operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return NULL;
    }

  sqlite3_bind_text (stmt, 1, stream_id != NULL ? stream_id : ALL_STREAM_KEY, -1,
                     SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, projection_name, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      g_autoptr(GBytes) state = NULL;
      const void *blob = sqlite3_column_blob (stmt, 1);
      int n_blob = sqlite3_column_bytes (stmt, 1);

      state = g_bytes_new (n_blob > 0 ? blob : NULL, n_blob);
      snapshot = _es_snapshot_new_usec (stream_id, projection_name,
                                        sqlite3_column_int64 (stmt, 0), state,
                                        sqlite3_column_int64 (stmt, 2));
    }
  else if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (conn, rc, operation, error);

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);

  /* No row: no snapshot, and no error. */
  return snapshot;
}

static void
read_policies_row (sqlite3_stmt *stmt,
                   gpointer      user_data)
{
  gint64 *values = user_data;

  values[0] = sqlite3_column_int64 (stmt, 0);
  values[1] = sqlite3_column_int64 (stmt, 1);
}

gboolean
_es_sqlite_storage_read_policies (EsSqliteStorage  *self,
                                  gboolean         *out_any,
                                  gboolean         *out_age,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  gint64 values[2] = { 0, 0 };

  /* The database-wide policy, then the streams with one of their own
   * (the partial index streams_policy lists exactly those). */
  if (!read_one_row (self,
                     "SELECT (SELECT count(*) FROM settings"
                     "         WHERE name IN ('max_age', 'max_count') AND value > 0)"
                     "       + (SELECT count(*) FROM (SELECT 1 FROM streams"
                     "          WHERE (max_age > 0 OR max_count > 0) AND state = 0 LIMIT 1)),"
                     " (SELECT count(*) FROM settings WHERE name = 'max_age' AND value > 0)"
                     "       + (SELECT count(*) FROM (SELECT 1 FROM streams"
                     "          WHERE (max_age > 0 OR max_count > 0) AND max_age > 0"
                     "          AND state = 0 LIMIT 1))",
                     NULL, read_policies_row, values, _("Reading retention policies"),
                     cancellable, error))
    return FALSE;

  *out_any = values[0] > 0;
  *out_age = values[1] > 0;
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Durable subscriptions                                                   *
 * ---------------------------------------------------------------------- */

/* A subscription with its lag, computed in the same statement from the
 * streams table (a stream's version, kept by deletions) or, for @all, the
 * last position used: never a scan of the events. */
#define SUBSCRIPTION_SQL(state_column) \
  "SELECT s.name, s.stream_id, s.position, " state_column ", s.updated," \
  " CASE WHEN s.stream_id = '" ES_ALL_STREAM "'" \
  "   THEN coalesce ((SELECT max(sequence_id) FROM events), 0)" \
  "   ELSE coalesce ((SELECT version FROM streams WHERE stream_id = s.stream_id), 0)" \
  " END - s.position" \
  " FROM subscriptions AS s"

static EsSubscriptionInfo *
subscription_from_row (sqlite3_stmt *stmt,
                       gboolean      with_state)
{
  g_autoptr(GBytes) state = NULL;

  if (with_state && sqlite3_column_type (stmt, 3) != SQLITE_NULL)
    state = g_bytes_new (sqlite3_column_blob (stmt, 3), sqlite3_column_bytes (stmt, 3));
  return es_subscription_info_new ((const char *) sqlite3_column_text (stmt, 0),
                                   (const char *) sqlite3_column_text (stmt, 1),
                                   sqlite3_column_int64 (stmt, 2),
                                   sqlite3_column_int64 (stmt, 5),
                                   state,
                                   sqlite3_column_int64 (stmt, 4));
}

static void
read_subscription_row (sqlite3_stmt *stmt,
                       gpointer      user_data)
{
  *(EsSubscriptionInfo **) user_data = subscription_from_row (stmt, TRUE);
}

EsSubscriptionInfo *
_es_sqlite_storage_get_subscription (EsStorageHandle  *handle,
                                     const char       *name,
                                     GCancellable     *cancellable,
                                     GError          **error)
{
  EsSubscriptionInfo *info = NULL;

  if (!read_one_row (ES_SQLITE_STORAGE (handle), SUBSCRIPTION_SQL ("s.state") " WHERE s.name = ?",
                     name, read_subscription_row, &info, _("Reading a subscription"),
                     cancellable, error))
    return NULL;
  return info;
}

GPtrArray *
_es_sqlite_storage_list_subscriptions (EsStorageHandle  *handle,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Listing subscriptions");
  g_autoptr(GPtrArray) infos = NULL;
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int rc;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return NULL;

  /* The primary key's BINARY order is byte-wise; states are not read. */
  stmt = _es_sqlite_connection_get_stmt (conn, SUBSCRIPTION_SQL ("NULL") " ORDER BY s.name",
                                         operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return NULL;
    }

  infos = g_ptr_array_new_with_free_func (g_object_unref);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      if (g_cancellable_is_cancelled (cancellable))
        {
          rc = SQLITE_INTERRUPT;
          break;
        }
      g_ptr_array_add (infos, subscription_from_row (stmt, FALSE));
    }

  if (rc != SQLITE_DONE)
    {
      _es_sqlite_connection_set_error (conn, rc, operation, error);
      g_clear_pointer (&infos, g_ptr_array_unref);
    }

  _es_sqlite_stmt_done (stmt);
  read_end (self, conn, cancellable, handler);
  return g_steal_pointer (&infos);
}
