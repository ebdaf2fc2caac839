/* es-event-filter.c: AND-ed clauses that select events on read.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "es-private.h"
#include "backend/es-time-private.h"

/**
 * EsEventFilter:
 *
 * Clauses that select the events a read returns. An event is returned when
 * it satisfies every clause.
 *
 * A clause compares a field of the event with a value:
 *
 * - `stream_id` and `event_type` take string values (`s`) and support
 *   [method@Es.EventFilter.add_like];
 * - `version` and `sequence_id` take integer values (any GVariant integer
 *   type: `x`, `i`, `u`, `t`...);
 * - `timestamp` (since 0.2) takes integers: the time of the write in
 *   microseconds since the Unix epoch, UTC (see
 *   [method@Es.EventFilter.add_time_range] for [struct@GLib.DateTime]s);
 * - `metadata.<key>[.<key>...]` names a value inside the event's metadata
 *   (a dotted path of keys through JSON objects) and takes strings,
 *   integers, doubles (`d`) or booleans (`b`). A JSON string equals a
 *   string, a JSON number equals a numerically equal integer or double,
 *   JSON `true` and `false` equal booleans; nothing else matches, and an
 *   event without a value at the path never matches. `like` matches JSON
 *   strings.
 *
 * Since 0.2, [method@Es.EventFilter.add_compare] adds comparisons (less,
 * less or equal, greater, greater or equal) on `version`, `sequence_id`
 * and `timestamp` with an integer, and on `metadata.` paths with an
 * integer or a double: a metadata value that is not a JSON number never
 * matches a comparison, and numbers compare exactly (an integer and a
 * double by their mathematical values). An erased event (see
 * [method@Es.StreamFactory.erase_event]) has no metadata, so no metadata
 * clause matches it.
 *
 * ```c
 * g_autoptr(EsEventFilter) filter = es_event_filter_new ();
 *
 * es_event_filter_add_like (filter, "event_type", "Item%");
 * es_event_filter_add_equals (filter, "metadata.user.id", g_variant_new_int64 (7));
 * es_event_filter_add_compare (filter, "metadata.score", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
 *                              g_variant_new_double (0.5));
 * es_event_filter_add_in (filter, "metadata.tenant",
 *                         g_variant_new_parsed ("['acme', 'globex']"));
 * ```
 *
 * The `add_` methods accept anything: a bad clause (an unknown field, a
 * value of a type its field does not accept, an empty `in` array) makes the
 * read that uses the filter fail with %ES_ERROR_INVALID_ARGUMENT. Call
 * [method@Es.EventFilter.validate] to check a filter beforehand.
 *
 * ## Limits
 *
 * An `in` clause takes any number of values: the backends bind the whole
 * list as one query parameter (SQLite as a JSON array read with
 * `json_each()`, PostgreSQL as a `jsonb` array), so a list of 100,000
 * stream ids or sequence ids is one clause, read in one pass.
 *
 * A filter holds at most 4,096 clauses (`equals`, `in`, `like` and each
 * comparison count one each, whatever the length of an `in` list); a filter with more fails
 * validation with %ES_ERROR_INVALID_ARGUMENT, on every backend, before any
 * query runs. The limit keeps every backend's query within its own limits
 * (SQLite's 32,766 parameters and expression depth of 1,000, PostgreSQL's
 * 65,535 parameters): to select by many values of one field, use one `in`
 * clause rather than many `equals`.
 *
 * Do not change a filter while a read that uses it is in progress.
 *
 * Since: 0.1
 */

/* The most clauses a filter may hold; see "Limits" above. */
#define MAX_CLAUSES 4096

/* `in` lists longer than this are matched in memory through a hash set,
 * built the first time the clause is matched. */
#define IN_SET_MIN 16

typedef struct
{
  EsFilterOperator   op;
  char              *field;   /* (owned) */
  GVariant          *value;   /* (owned) never floating */
  EsFilterField      kind;    /* what @field names, parsed once */
  char             **path;    /* (owned) (nullable) metadata keys */
  GHashTable        *in_set;  /* (owned) (nullable) keys of the values of a
                               * long `in` list (value_key()); set once,
                               * under g_once_init_enter() */
} Clause;

struct _EsEventFilter
{
  GObject  parent_instance;

  GArray  *clauses;  /* (owned) (element-type Clause) */
};

G_DEFINE_FINAL_TYPE (EsEventFilter, es_event_filter, G_TYPE_OBJECT)

static void
clause_clear (gpointer data)
{
  Clause *clause = data;

  g_clear_pointer (&clause->field, g_free);
  g_clear_pointer (&clause->value, g_variant_unref);
  g_clear_pointer (&clause->path, g_strfreev);
  g_clear_pointer (&clause->in_set, g_hash_table_unref);
}

static void
es_event_filter_finalize (GObject *object)
{
  EsEventFilter *self = ES_EVENT_FILTER (object);

  g_clear_pointer (&self->clauses, g_array_unref);

  G_OBJECT_CLASS (es_event_filter_parent_class)->finalize (object);
}

static void
es_event_filter_class_init (EsEventFilterClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_event_filter_finalize;
}

static void
es_event_filter_init (EsEventFilter *self)
{
  self->clauses = g_array_new (FALSE, TRUE, sizeof (Clause));
  g_array_set_clear_func (self->clauses, clause_clear);
}

/* A metadata key: non-empty, without '"' or control characters. The
 * string is already known to be valid UTF-8. */
static gboolean
metadata_key_is_valid (const char *key)
{
  const char *p;

  if (*key == '\0')
    return FALSE;

  for (p = key; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c == '"' || g_unichar_iscntrl (c))
        return FALSE;
    }

  return TRUE;
}

/**
 * es_event_filter_parse_field:
 * @field: (nullable): the field of a clause, as
 *   [method@Es.EventFilter.get_clause] returns it
 * @out_path: (out) (optional) (nullable) (array zero-terminated=1) (transfer full):
 *   for %ES_FILTER_FIELD_METADATA, the keys of the path
 *   (`metadata.a.b` gives `{"a", "b"}`), else %NULL
 *
 * Tells what a clause's field names, for a backend that translates a
 * filter into its own query language. A metadata key is non-empty and
 * holds no `"` and no control character.
 *
 * Returns: the field, or %ES_FILTER_FIELD_INVALID for an unknown or
 *   malformed one
 *
 * Since: 0.2
 */
EsFilterField
es_event_filter_parse_field (const char   *field,
                             char       ***out_path)
{
  static const char prefix[] = "metadata.";
  g_auto(GStrv) path = NULL;
  const char *keys;
  guint i;

  if (out_path != NULL)
    *out_path = NULL;

  if (field == NULL)
    return ES_FILTER_FIELD_INVALID;
  if (g_str_equal (field, "stream_id"))
    return ES_FILTER_FIELD_STREAM_ID;
  if (g_str_equal (field, "event_type"))
    return ES_FILTER_FIELD_EVENT_TYPE;
  if (g_str_equal (field, "version"))
    return ES_FILTER_FIELD_VERSION;
  if (g_str_equal (field, "sequence_id"))
    return ES_FILTER_FIELD_SEQUENCE_ID;
  if (g_str_equal (field, "timestamp"))
    return ES_FILTER_FIELD_TIMESTAMP;
  if (!g_str_has_prefix (field, prefix))
    return ES_FILTER_FIELD_INVALID;

  keys = field + strlen (prefix);
  if (*keys == '\0' || !g_utf8_validate (keys, -1, NULL))
    return ES_FILTER_FIELD_INVALID;

  path = g_strsplit (keys, ".", -1);
  for (i = 0; path[i] != NULL; i++)
    if (!metadata_key_is_valid (path[i]))
      return ES_FILTER_FIELD_INVALID;

  if (out_path != NULL)
    *out_path = g_steal_pointer (&path);
  return ES_FILTER_FIELD_METADATA;
}

/**
 * es_event_filter_classify_value:
 * @value: (nullable): a scalar value of a clause (of an `IN` clause: one
 *   element of its array)
 * @out_string: (out) (optional) (nullable) (transfer none): the string,
 *   for %ES_FILTER_VALUE_STRING
 * @out_int64: (out) (optional): the integer, for %ES_FILTER_VALUE_INT64
 * @out_double: (out) (optional): the double, for %ES_FILTER_VALUE_DOUBLE
 * @out_boolean: (out) (optional): the boolean, for %ES_FILTER_VALUE_BOOLEAN
 *
 * Tells the kind of a clause's value as filters compare it, and gives the
 * value in the matching out argument (the others are left alone): every
 * integer type compares as a 64-bit integer.
 *
 * Returns: the kind, %ES_FILTER_VALUE_INVALID for any other type (and for
 *   a `t` above %G_MAXINT64)
 *
 * Since: 0.2
 */
EsFilterValueKind
es_event_filter_classify_value (GVariant    *value,
                                const char **out_string,
                                gint64      *out_int64,
                                double      *out_double,
                                gboolean    *out_boolean)
{
  gint64 integer;

  if (value == NULL)
    return ES_FILTER_VALUE_INVALID;

  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_STRING:
      if (out_string != NULL)
        *out_string = g_variant_get_string (value, NULL);
      return ES_FILTER_VALUE_STRING;

    case G_VARIANT_CLASS_DOUBLE:
      if (out_double != NULL)
        *out_double = g_variant_get_double (value);
      return ES_FILTER_VALUE_DOUBLE;

    case G_VARIANT_CLASS_BOOLEAN:
      if (out_boolean != NULL)
        *out_boolean = g_variant_get_boolean (value);
      return ES_FILTER_VALUE_BOOLEAN;

    case G_VARIANT_CLASS_BYTE:
      integer = g_variant_get_byte (value);
      break;

    case G_VARIANT_CLASS_INT16:
      integer = g_variant_get_int16 (value);
      break;

    case G_VARIANT_CLASS_UINT16:
      integer = g_variant_get_uint16 (value);
      break;

    case G_VARIANT_CLASS_INT32:
      integer = g_variant_get_int32 (value);
      break;

    case G_VARIANT_CLASS_UINT32:
      integer = g_variant_get_uint32 (value);
      break;

    case G_VARIANT_CLASS_INT64:
      integer = g_variant_get_int64 (value);
      break;

    case G_VARIANT_CLASS_UINT64:
      {
        guint64 unsigned_integer = g_variant_get_uint64 (value);

        if (unsigned_integer > G_MAXINT64)
          return ES_FILTER_VALUE_INVALID;
        integer = (gint64) unsigned_integer;
      }
      break;

    case G_VARIANT_CLASS_HANDLE:
      integer = g_variant_get_handle (value);
      break;

    case G_VARIANT_CLASS_OBJECT_PATH:
    case G_VARIANT_CLASS_SIGNATURE:
    case G_VARIANT_CLASS_VARIANT:
    case G_VARIANT_CLASS_MAYBE:
    case G_VARIANT_CLASS_ARRAY:
    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
    default:
      return ES_FILTER_VALUE_INVALID;
    }

  if (out_int64 != NULL)
    *out_int64 = integer;
  return ES_FILTER_VALUE_INT64;
}

static void
add_clause (EsEventFilter    *self,
            EsFilterOperator  op,
            const char       *field,
            GVariant         *value)
{
  Clause clause = { 0, };

  clause.op = op;
  clause.field = g_strdup (field);
  clause.value = g_variant_ref_sink (value);
  clause.kind = es_event_filter_parse_field (field, &clause.path);
  g_array_append_val (self->clauses, clause);
}

/**
 * es_event_filter_new:
 *
 * Creates an empty filter, which every event satisfies. Add clauses with
 * [method@Es.EventFilter.add_equals], [method@Es.EventFilter.add_in],
 * [method@Es.EventFilter.add_like], [method@Es.EventFilter.add_compare]
 * and [method@Es.EventFilter.add_time_range].
 *
 * Returns: (transfer full): a new [class@Es.EventFilter]
 *
 * Since: 0.1
 */
EsEventFilter *
es_event_filter_new (void)
{
  return g_object_new (ES_TYPE_EVENT_FILTER, NULL);
}

/**
 * es_event_filter_add_equals:
 * @self: an [class@Es.EventFilter]
 * @field: the field to compare: `stream_id`, `event_type`, `version`,
 *   `sequence_id`, `timestamp` (since 0.2) or `metadata.` followed by a
 *   dotted path of keys
 * @value: the value the field must equal: a string, an integer, a double
 *   or a boolean, as the field allows; if it is floating, it is consumed
 *
 * Adds a clause that selects the events whose @field equals @value.
 *
 * The clause is checked when the filter is validated, not here: see
 * [method@Es.EventFilter.validate].
 *
 * Since: 0.1
 */
void
es_event_filter_add_equals (EsEventFilter *self,
                            const char    *field,
                            GVariant      *value)
{
  g_return_if_fail (ES_IS_EVENT_FILTER (self));
  g_return_if_fail (field != NULL);
  g_return_if_fail (value != NULL);

  add_clause (self, ES_FILTER_OPERATOR_EQUALS, field, value);
}

/**
 * es_event_filter_add_in:
 * @self: an [class@Es.EventFilter]
 * @field: the field to compare, as for [method@Es.EventFilter.add_equals]
 * @values: a non-empty array of the values the field may equal, such as
 *   `['a', 'b']` (`as`) or `[1, 2]` (`ax`); if it is floating, it is
 *   consumed
 *
 * Adds a clause that selects the events whose @field equals one of
 * @values.
 *
 * The clause is checked when the filter is validated, not here: an empty
 * array, or one holding values the field does not accept, makes
 * [method@Es.EventFilter.validate] fail.
 *
 * Since: 0.1
 */
void
es_event_filter_add_in (EsEventFilter *self,
                        const char    *field,
                        GVariant      *values)
{
  g_return_if_fail (ES_IS_EVENT_FILTER (self));
  g_return_if_fail (field != NULL);
  g_return_if_fail (values != NULL);

  add_clause (self, ES_FILTER_OPERATOR_IN, field, values);
}

/**
 * es_event_filter_add_like:
 * @self: an [class@Es.EventFilter]
 * @field: the field to compare: `stream_id`, `event_type` or a
 *   `metadata.` path
 * @pattern: an SQL `LIKE` pattern: `%` matches any run of characters
 *   (possibly none), `_` exactly one character; letters match ignoring
 *   ASCII case; there is no escape character
 *
 * Adds a clause that selects the events whose @field is a string matching
 * @pattern. The clause is kept as a string value (`s`).
 *
 * The clause is checked when the filter is validated, not here: `like` on
 * `version` or `sequence_id`, or a pattern that is not valid UTF-8, makes
 * [method@Es.EventFilter.validate] fail.
 *
 * Since: 0.1
 */
void
es_event_filter_add_like (EsEventFilter *self,
                          const char    *field,
                          const char    *pattern)
{
  GVariant *value;

  g_return_if_fail (ES_IS_EVENT_FILTER (self));
  g_return_if_fail (field != NULL);
  g_return_if_fail (pattern != NULL);

  /* A GVariant string must be valid UTF-8: keep a bad pattern as bytes,
   * for validate() to report. */
  if (g_utf8_validate (pattern, -1, NULL))
    value = g_variant_new_string (pattern);
  else
    value = g_variant_new_bytestring (pattern);

  add_clause (self, ES_FILTER_OPERATOR_LIKE, field, value);
}

/**
 * es_event_filter_add_compare:
 * @self: an [class@Es.EventFilter]
 * @field: the field to compare: `version`, `sequence_id`, `timestamp` or a
 *   `metadata.` path
 * @op: the comparison: %ES_FILTER_OPERATOR_LESS,
 *   %ES_FILTER_OPERATOR_LESS_OR_EQUAL, %ES_FILTER_OPERATOR_GREATER or
 *   %ES_FILTER_OPERATOR_GREATER_OR_EQUAL (the other operators work as
 *   their own `add_` methods do)
 * @value: the value to compare with: an integer (any GVariant integer
 *   type), or for a `metadata.` path an integer or a double; if it is
 *   floating, it is consumed
 *
 * Adds a clause that selects the events whose @field compares to @value
 * as @op says: `field < value` for %ES_FILTER_OPERATOR_LESS, and so on.
 * On a `metadata.` path, only JSON numbers match; an integer and a double
 * compare by their exact values.
 *
 * The clause is checked when the filter is validated, not here: a
 * comparison on `stream_id` or `event_type`, a string or boolean value,
 * a double on a field other than a metadata path, or a value that is not
 * a finite number makes [method@Es.EventFilter.validate] fail with
 * %ES_ERROR_INVALID_ARGUMENT naming the field and the value.
 *
 * Since: 0.2
 */
void
es_event_filter_add_compare (EsEventFilter    *self,
                             const char       *field,
                             EsFilterOperator  op,
                             GVariant         *value)
{
  g_return_if_fail (ES_IS_EVENT_FILTER (self));
  g_return_if_fail (field != NULL);
  g_return_if_fail (value != NULL);

  add_clause (self, op, field, value);
}

/**
 * es_event_filter_add_time_range:
 * @self: an [class@Es.EventFilter]
 * @since: (nullable): select events written at or after this time, or
 *   %NULL for no lower bound
 * @until: (nullable): select events written before this time, or %NULL
 *   for no upper bound
 *
 * Adds clauses on `timestamp` that select the events written in the
 * half-open interval [@since, @until): `timestamp >= since` and
 * `timestamp < until`, at microsecond precision, whatever the time zones
 * of @since and @until. With both %NULL, nothing is added.
 *
 * Reading <code>@<!-- -->all</code> with such a filter uses an index on
 * the timestamps: its cost is in proportion to what it returns.
 *
 * Since: 0.2
 */
void
es_event_filter_add_time_range (EsEventFilter *self,
                                GDateTime     *since,
                                GDateTime     *until)
{
  g_return_if_fail (ES_IS_EVENT_FILTER (self));

  if (since != NULL)
    add_clause (self, ES_FILTER_OPERATOR_GREATER_OR_EQUAL, "timestamp",
                g_variant_new_int64 (_es_date_time_to_usec (since)));
  if (until != NULL)
    add_clause (self, ES_FILTER_OPERATOR_LESS, "timestamp",
                g_variant_new_int64 (_es_date_time_to_usec (until)));
}

/**
 * es_event_filter_get_n_clauses:
 * @self: an [class@Es.EventFilter]
 *
 * Gets the number of clauses of the filter.
 *
 * Returns: the number of clauses
 *
 * Since: 0.1
 */
guint
es_event_filter_get_n_clauses (EsEventFilter *self)
{
  g_return_val_if_fail (ES_IS_EVENT_FILTER (self), 0);

  return self->clauses->len;
}

/**
 * es_event_filter_get_clause:
 * @self: an [class@Es.EventFilter]
 * @index: the position of the clause, less than
 *   [method@Es.EventFilter.get_n_clauses]
 * @op: (out) (optional): return location for the operator of the clause
 * @value: (out) (optional) (transfer none): return location for the value
 *   of the clause: the value of `equals` or of a comparison, the array of
 *   `in`, the pattern of `like` (a string)
 *
 * Gets a clause of the filter, in the order they were added. Storage
 * backends use this to translate a filter into their own query language.
 *
 * Returns: (transfer none): the field of the clause
 *
 * Since: 0.1
 */
const char *
es_event_filter_get_clause (EsEventFilter     *self,
                            guint              index,
                            EsFilterOperator  *op,
                            GVariant         **value)
{
  Clause *clause;

  g_return_val_if_fail (ES_IS_EVENT_FILTER (self), NULL);
  g_return_val_if_fail (index < self->clauses->len, NULL);

  clause = &g_array_index (self->clauses, Clause, index);
  if (op != NULL)
    *op = clause->op;
  if (value != NULL)
    *value = clause->value;
  return clause->field;
}

/* Whether a field of @kind accepts a scalar value of @value_kind. */
static gboolean
field_accepts (EsFilterField     kind,
               EsFilterValueKind value_kind)
{
  switch (kind)
    {
    case ES_FILTER_FIELD_STREAM_ID:
    case ES_FILTER_FIELD_EVENT_TYPE:
      return value_kind == ES_FILTER_VALUE_STRING;

    case ES_FILTER_FIELD_VERSION:
    case ES_FILTER_FIELD_SEQUENCE_ID:
    case ES_FILTER_FIELD_TIMESTAMP:
      return value_kind == ES_FILTER_VALUE_INT64;

    case ES_FILTER_FIELD_METADATA:
      return value_kind != ES_FILTER_VALUE_INVALID;

    case ES_FILTER_FIELD_INVALID:
    default:
      return FALSE;
    }
}

static gboolean
validate_value (const Clause  *clause,
                const char    *shown_field,
                GVariant      *value,
                GError       **error)
{
  EsFilterValueKind value_kind = es_event_filter_classify_value (value, NULL, NULL, NULL, NULL);

  if (field_accepts (clause->kind, value_kind))
    return TRUE;

  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64) &&
      g_variant_get_uint64 (value) > G_MAXINT64)
    {
      g_autofree char *shown_value = g_variant_print (value, FALSE);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %s is a number, the second a filter field */
                   _("Filter value %s on field '%s' does not fit in a signed 64-bit integer"),
                   shown_value, shown_field);
      return FALSE;
    }

  g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
               /* Translators: the first %s is a filter field such as 'version', the
                * second a GVariant type string such as 's' or 'ax' */
               _("Filter field '%s' does not accept a value of type '%s'"),
               shown_field, g_variant_get_type_string (value));
  return FALSE;
}

static const char *
operator_symbol (EsFilterOperator op)
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
      return "?";
    }
}

/* A comparison takes one number: an integer on version, sequence_id and
 * timestamp, an integer or a finite double on a metadata path. */
static gboolean
validate_comparison (const Clause  *clause,
                     const char    *shown_field,
                     GError       **error)
{
  g_autofree char *shown_value = g_variant_print (clause->value, FALSE);
  const char *symbol = operator_symbol (clause->op);
  double dbl = 0.0;
  EsFilterValueKind value_kind;

  if (clause->kind == ES_FILTER_FIELD_STREAM_ID || clause->kind == ES_FILTER_FIELD_EVENT_TYPE)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %s is a filter field such as 'stream_id',
                    * the second an operator such as '<', the third a value */
                   _("Filter field '%s' holds strings and does not support the "
                     "comparison '%s' %s"),
                   shown_field, symbol, shown_value);
      return FALSE;
    }

  value_kind = es_event_filter_classify_value (clause->value, NULL, NULL, &dbl, NULL);
  if (value_kind == ES_FILTER_VALUE_INT64 ||
      (value_kind == ES_FILTER_VALUE_DOUBLE && clause->kind == ES_FILTER_FIELD_METADATA &&
       isfinite (dbl)))
    return TRUE;

  if (value_kind == ES_FILTER_VALUE_DOUBLE && clause->kind == ES_FILTER_FIELD_METADATA)
    g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                 /* Translators: the first %s is a value such as 'nan', the second a
                  * filter field, the third an operator such as '<' */
                 _("Filter value %s on field '%s' is not a finite number and cannot be "
                   "compared with '%s'"),
                 shown_value, shown_field, symbol);
  else if (clause->kind == ES_FILTER_FIELD_METADATA)
    g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                 /* Translators: the first %s is an operator such as '<', the second a
                  * filter field, the third a value, the fourth a GVariant type string */
                 _("The comparison '%s' on field '%s' needs an integer or a double, "
                   "not %s (type '%s')"),
                 symbol, shown_field, shown_value, g_variant_get_type_string (clause->value));
  else
    g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                 /* Translators: the first %s is an operator such as '<', the second a
                  * filter field, the third a value, the fourth a GVariant type string */
                 _("The comparison '%s' on field '%s' needs an integer, not %s (type '%s')"),
                 symbol, shown_field, shown_value, g_variant_get_type_string (clause->value));
  return FALSE;
}

static gboolean
validate_clause (const Clause  *clause,
                 GError       **error)
{
  g_autofree char *shown_field = g_utf8_make_valid (clause->field, -1);
  gsize n_values;
  gsize i;

  if (clause->kind == ES_FILTER_FIELD_INVALID)
    {
      if (g_str_has_prefix (clause->field, "metadata"))
        g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                     /* Translators: %s is a filter field such as 'metadata..user' */
                     _("Filter field '%s' is not a valid metadata path: it must be "
                       "'metadata.' followed by non-empty keys separated by dots, "
                       "without '\"' or control characters"),
                     shown_field);
      else
        g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                     /* Translators: %s is the field name the application gave */
                     _("Unknown filter field '%s'"), shown_field);
      return FALSE;
    }

  switch (clause->op)
    {
    case ES_FILTER_OPERATOR_EQUALS:
      return validate_value (clause, shown_field, clause->value, error);

    case ES_FILTER_OPERATOR_IN:
      if (!g_variant_is_of_type (clause->value, G_VARIANT_TYPE_ARRAY))
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: the first %s is a filter field, the second a
                        * GVariant type string such as 's' */
                       _("The 'in' clause on field '%s' needs an array of values, "
                         "not a value of type '%s'"),
                       shown_field, g_variant_get_type_string (clause->value));
          return FALSE;
        }

      n_values = g_variant_n_children (clause->value);
      if (n_values == 0)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: %s is a filter field */
                       _("The 'in' clause on field '%s' has no values"), shown_field);
          return FALSE;
        }

      for (i = 0; i < n_values; i++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (clause->value, i);

          if (!validate_value (clause, shown_field, child, error))
            return FALSE;
        }
      return TRUE;

    case ES_FILTER_OPERATOR_LESS:
    case ES_FILTER_OPERATOR_LESS_OR_EQUAL:
    case ES_FILTER_OPERATOR_GREATER:
    case ES_FILTER_OPERATOR_GREATER_OR_EQUAL:
      return validate_comparison (clause, shown_field, error);

    case ES_FILTER_OPERATOR_LIKE:
      if (clause->kind == ES_FILTER_FIELD_VERSION ||
          clause->kind == ES_FILTER_FIELD_SEQUENCE_ID ||
          clause->kind == ES_FILTER_FIELD_TIMESTAMP)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: %s is a filter field such as 'version' */
                       _("Filter field '%s' holds integers and does not support 'like'"),
                       shown_field);
          return FALSE;
        }
      if (!g_variant_is_of_type (clause->value, G_VARIANT_TYPE_STRING))
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: %s is a filter field */
                       _("The 'like' pattern on field '%s' is not valid UTF-8"),
                       shown_field);
          return FALSE;
        }
      return TRUE;

    default:
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %d is a number, %s a filter field */
                   _("Unknown filter operator %d on field '%s'"),
                   (int) clause->op, shown_field);
      return FALSE;
    }
}

/**
 * es_event_filter_validate:
 * @self: an [class@Es.EventFilter]
 * @error: return location for a [struct@GLib.Error]
 *
 * Checks every clause of the filter: its field must be known, its values
 * of types the field accepts (see [class@Es.EventFilter]), an `in` array
 * non-empty, `like` used on a string field or a metadata path only, and
 * a comparison given a finite number on a numeric field or a metadata
 * path.
 * It also checks that the filter holds at most 4,096 clauses (see
 * "Limits" in [class@Es.EventFilter]).
 *
 * Reads call this before they start, so a bad filter fails the read.
 *
 * Returns: %TRUE if the filter is valid; %FALSE with
 *   %ES_ERROR_INVALID_ARGUMENT naming the first bad clause otherwise
 *
 * Since: 0.1
 */
gboolean
es_event_filter_validate (EsEventFilter  *self,
                          GError        **error)
{
  guint i;

  g_return_val_if_fail (ES_IS_EVENT_FILTER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->clauses->len > MAX_CLAUSES)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: both numbers are counts of filter clauses */
                   _("The filter has %u clauses, more than the limit of %u: "
                     "use one 'in' clause for many values of a field"),
                   self->clauses->len, (guint) MAX_CLAUSES);
      return FALSE;
    }

  for (i = 0; i < self->clauses->len; i++)
    if (!validate_clause (&g_array_index (self->clauses, Clause, i), error))
      return FALSE;

  return TRUE;
}

/* What an event holds in a field, as a filter value kind. */
typedef struct
{
  EsFilterValueKind  kind;  /* INVALID: nothing any value equals */
  const char        *string;
  gint64             int64;
  double             dbl;
  gboolean           boolean;
} Subject;

/* Exact comparison, as SQLite does between INTEGER and REAL. */
static gboolean
int64_equals_double (gint64 i,
                     double d)
{
  gint64 truncated;

  /* NaN fails both tests; 2^63 is exactly representable as a double. */
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    return FALSE;

  truncated = (gint64) d;
  return truncated == i && (double) truncated == d;
}

/* -1, 0 or 1 as @i is smaller than, equal to or greater than @d, exactly
 * (as SQLite compares INTEGER with REAL); @d is not NaN. */
static int
compare_int64_double (gint64 i,
                      double d)
{
  gint64 truncated;

  if (d >= 9223372036854775808.0)
    return -1;
  if (d < -9223372036854775808.0)
    return 1;

  /* Truncation toward zero is exact in both directions here. */
  truncated = (gint64) d;
  if (i != truncated)
    return i < truncated ? -1 : 1;
  if ((double) truncated == d)
    return 0;
  return (double) truncated < d ? -1 : 1;
}

/* Whether @subject satisfies `subject op value`: only numbers compare. */
static gboolean
subject_compares (const Subject    *subject,
                  EsFilterOperator  op,
                  GVariant         *value)
{
  gint64 int64 = 0;
  double dbl = 0.0;
  EsFilterValueKind kind;
  int cmp;

  kind = es_event_filter_classify_value (value, NULL, &int64, &dbl, NULL);
  if (kind == ES_FILTER_VALUE_DOUBLE && isnan (dbl))
    return FALSE;

  if (subject->kind == ES_FILTER_VALUE_INT64 && kind == ES_FILTER_VALUE_INT64)
    cmp = subject->int64 < int64 ? -1 : subject->int64 > int64 ? 1 : 0;
  else if (subject->kind == ES_FILTER_VALUE_INT64 && kind == ES_FILTER_VALUE_DOUBLE)
    cmp = compare_int64_double (subject->int64, dbl);
  else if (subject->kind == ES_FILTER_VALUE_DOUBLE && !isnan (subject->dbl) &&
           kind == ES_FILTER_VALUE_INT64)
    cmp = -compare_int64_double (int64, subject->dbl);
  else if (subject->kind == ES_FILTER_VALUE_DOUBLE && !isnan (subject->dbl) &&
           kind == ES_FILTER_VALUE_DOUBLE)
    cmp = subject->dbl < dbl ? -1 : subject->dbl > dbl ? 1 : 0;
  else
    return FALSE;

  switch (op)
    {
    case ES_FILTER_OPERATOR_LESS:
      return cmp < 0;
    case ES_FILTER_OPERATOR_LESS_OR_EQUAL:
      return cmp <= 0;
    case ES_FILTER_OPERATOR_GREATER:
      return cmp > 0;
    case ES_FILTER_OPERATOR_GREATER_OR_EQUAL:
      return cmp >= 0;
    case ES_FILTER_OPERATOR_EQUALS:
    case ES_FILTER_OPERATOR_IN:
    case ES_FILTER_OPERATOR_LIKE:
    default:
      return FALSE;
    }
}

static gboolean
subject_equals (const Subject *subject,
                GVariant      *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;
  EsFilterValueKind kind;

  kind = es_event_filter_classify_value (value, &string, &int64, &dbl, &boolean);

  switch (subject->kind)
    {
    case ES_FILTER_VALUE_STRING:
      return kind == ES_FILTER_VALUE_STRING && strcmp (subject->string, string) == 0;

    case ES_FILTER_VALUE_INT64:
      if (kind == ES_FILTER_VALUE_INT64)
        return subject->int64 == int64;
      if (kind == ES_FILTER_VALUE_DOUBLE)
        return int64_equals_double (subject->int64, dbl);
      return FALSE;

    case ES_FILTER_VALUE_DOUBLE:
      if (kind == ES_FILTER_VALUE_DOUBLE)
        return subject->dbl == dbl;
      if (kind == ES_FILTER_VALUE_INT64)
        return int64_equals_double (int64, subject->dbl);
      return FALSE;

    case ES_FILTER_VALUE_BOOLEAN:
      return kind == ES_FILTER_VALUE_BOOLEAN && !subject->boolean == !boolean;

    case ES_FILTER_VALUE_INVALID:
    default:
      return FALSE;
    }
}

/* A key for a value of kind @kind such that two values have the same key
 * exactly when subject_equals() finds them equal: a number is keyed by
 * its value as an integer when it is integral and fits in 64 bits (that
 * is when an integer can equal it), else by the 17 significant digits
 * that tell doubles apart. NULL for NaN, which equals nothing. */
static char *
value_key (EsFilterValueKind  kind,
           const char        *string,
           gint64             int64,
           double             dbl,
           gboolean           boolean)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  switch (kind)
    {
    case ES_FILTER_VALUE_STRING:
      return g_strconcat ("s", string, NULL);

    case ES_FILTER_VALUE_INT64:
      return g_strdup_printf ("n%" G_GINT64_FORMAT, int64);

    case ES_FILTER_VALUE_DOUBLE:
      if (isnan (dbl))
        return NULL;
      if (dbl >= -9223372036854775808.0 && dbl < 9223372036854775808.0 &&
          (double) (gint64) dbl == dbl)
        return g_strdup_printf ("n%" G_GINT64_FORMAT, (gint64) dbl);
      return g_strconcat ("d", g_ascii_formatd (buffer, sizeof buffer, "%.17g", dbl), NULL);

    case ES_FILTER_VALUE_BOOLEAN:
      return g_strdup (boolean ? "t" : "f");

    case ES_FILTER_VALUE_INVALID:
    default:
      return NULL;
    }
}

/* The set of the keys of a long `in` list, built on first use. Reads may
 * match events from several threads at once, hence g_once_init_enter(). */
static GHashTable *
clause_in_set (Clause *clause)
{
  if (g_once_init_enter (&clause->in_set))
    {
      GHashTable *set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      gsize n = g_variant_n_children (clause->value);
      gsize i;

      for (i = 0; i < n; i++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (clause->value, i);
          const char *string = NULL;
          gint64 int64 = 0;
          double dbl = 0.0;
          gboolean boolean = FALSE;
          EsFilterValueKind kind;
          char *key;

          kind = es_event_filter_classify_value (child, &string, &int64, &dbl, &boolean);
          key = value_key (kind, string, int64, dbl, boolean);
          if (key != NULL)
            g_hash_table_add (set, key);
        }

      g_once_init_leave (&clause->in_set, set);
    }

  return clause->in_set;
}

/* The length in bytes of the character at @s (not the nul): its first
 * byte and the continuation bytes after it. Never runs past the nul, even
 * in invalid UTF-8. */
static inline gsize
char_length (const char *s)
{
  gsize n = 1;

  while (((guchar) s[n] & 0xC0) == 0x80)
    n++;
  return n;
}

/* SQL LIKE: '%' any run of characters, '_' one character, ASCII letters
 * compared ignoring case, no escape. The classic two-pointer wildcard match
 * that backtracks only to the last '%': O(len(pattern) * len(text)) at
 * worst, no recursion. */
static gboolean
like_matches (const char *pattern,
              const char *text)
{
  const char *p = pattern;
  const char *t = text;
  const char *star_p = NULL;  /* the pattern just after the last '%' */
  const char *star_t = NULL;  /* where the text was when it was met */

  while (*t != '\0')
    {
      if (*p == '%')
        {
          while (*p == '%')
            p++;
          if (*p == '\0')
            return TRUE;
          star_p = p;
          star_t = t;
          continue;
        }

      if (*p != '\0')
        {
          gsize p_len = char_length (p);
          gsize t_len = char_length (t);
          gboolean same;

          if (*p == '_')
            same = TRUE;
          else if (p_len == 1 && t_len == 1)
            same = g_ascii_tolower (*p) == g_ascii_tolower (*t);
          else
            same = p_len == t_len && memcmp (p, t, p_len) == 0;

          if (same)
            {
              p += p_len;
              t += t_len;
              continue;
            }
        }

      if (star_p == NULL)
        return FALSE;

      /* Let the last '%' swallow one more character and try again. */
      star_t += char_length (star_t);
      t = star_t;
      p = star_p;
    }

  while (*p == '%')
    p++;
  return *p == '\0';
}

/* The node at @path inside @root, or NULL when there is none. */
static JsonNode *
lookup_path (JsonNode     *root,
             char * const *path)
{
  JsonNode *node = root;
  guint i;

  for (i = 0; node != NULL && path[i] != NULL; i++)
    {
      if (!JSON_NODE_HOLDS_OBJECT (node))
        return NULL;
      node = json_object_get_member (json_node_get_object (node), path[i]);
    }

  return node;
}

static void
subject_from_json (Subject  *subject,
                   JsonNode *node)
{
  GType type;

  subject->kind = ES_FILTER_VALUE_INVALID;
  if (node == NULL || json_node_get_node_type (node) != JSON_NODE_VALUE)
    return;

  type = json_node_get_value_type (node);
  if (type == G_TYPE_STRING)
    {
      subject->kind = ES_FILTER_VALUE_STRING;
      subject->string = json_node_get_string (node);
    }
  else if (type == G_TYPE_INT64)
    {
      subject->kind = ES_FILTER_VALUE_INT64;
      subject->int64 = json_node_get_int (node);
    }
  else if (type == G_TYPE_DOUBLE)
    {
      subject->kind = ES_FILTER_VALUE_DOUBLE;
      subject->dbl = json_node_get_double (node);
    }
  else if (type == G_TYPE_BOOLEAN)
    {
      subject->kind = ES_FILTER_VALUE_BOOLEAN;
      subject->boolean = json_node_get_boolean (node);
    }
}

static gboolean
clause_matches (const Clause  *clause,
                EsStoredEvent *event,
                JsonNode      *metadata)
{
  Subject subject = { ES_FILTER_VALUE_INVALID, };
  gsize n_values;
  gsize i;

  switch (clause->kind)
    {
    case ES_FILTER_FIELD_STREAM_ID:
      subject.kind = ES_FILTER_VALUE_STRING;
      subject.string = es_stored_event_get_stream_id (event);
      break;

    case ES_FILTER_FIELD_EVENT_TYPE:
      subject.kind = ES_FILTER_VALUE_STRING;
      subject.string = es_stored_event_get_event_type (event);
      break;

    case ES_FILTER_FIELD_VERSION:
      subject.kind = ES_FILTER_VALUE_INT64;
      subject.int64 = es_stored_event_get_version (event);
      break;

    case ES_FILTER_FIELD_SEQUENCE_ID:
      subject.kind = ES_FILTER_VALUE_INT64;
      subject.int64 = es_stored_event_get_sequence_id (event);
      break;

    case ES_FILTER_FIELD_TIMESTAMP:
      subject.kind = ES_FILTER_VALUE_INT64;
      subject.int64 = es_stored_event_get_timestamp_usec (event);
      break;

    case ES_FILTER_FIELD_METADATA:
      subject_from_json (&subject, lookup_path (metadata, clause->path));
      break;

    case ES_FILTER_FIELD_INVALID:
    default:
      return FALSE;
    }

  if (subject.kind == ES_FILTER_VALUE_STRING && subject.string == NULL)
    return FALSE;

  switch (clause->op)
    {
    case ES_FILTER_OPERATOR_EQUALS:
      return subject_equals (&subject, clause->value);

    case ES_FILTER_OPERATOR_IN:
      if (!g_variant_is_of_type (clause->value, G_VARIANT_TYPE_ARRAY))
        return FALSE;
      n_values = g_variant_n_children (clause->value);
      if (n_values > IN_SET_MIN)
        {
          g_autofree char *key = value_key (subject.kind, subject.string, subject.int64,
                                            subject.dbl, subject.boolean);

          return key != NULL &&
                 g_hash_table_contains (clause_in_set ((Clause *) clause), key);
        }
      for (i = 0; i < n_values; i++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (clause->value, i);

          if (subject_equals (&subject, child))
            return TRUE;
        }
      return FALSE;

    case ES_FILTER_OPERATOR_LIKE:
      return subject.kind == ES_FILTER_VALUE_STRING &&
             g_variant_is_of_type (clause->value, G_VARIANT_TYPE_STRING) &&
             like_matches (g_variant_get_string (clause->value, NULL), subject.string);

    case ES_FILTER_OPERATOR_LESS:
    case ES_FILTER_OPERATOR_LESS_OR_EQUAL:
    case ES_FILTER_OPERATOR_GREATER:
    case ES_FILTER_OPERATOR_GREATER_OR_EQUAL:
      return subject_compares (&subject, clause->op, clause->value);

    default:
      return FALSE;
    }
}

/**
 * es_event_filter_matches:
 * @self: an [class@Es.EventFilter]
 * @event: an [class@Es.StoredEvent]
 *
 * Checks whether @event satisfies every clause of the filter, with the
 * same semantics as a read that uses it. This is for storage backends that
 * filter in memory; the filter should have been validated with
 * [method@Es.EventFilter.validate] (an invalid clause matches no event).
 *
 * Returns: %TRUE if @event satisfies the filter
 *
 * Since: 0.1
 */
gboolean
es_event_filter_matches (EsEventFilter *self,
                         EsStoredEvent *event)
{
  g_autoptr(JsonParser) parser = NULL;
  JsonNode *metadata = NULL;
  gboolean metadata_parsed = FALSE;
  guint i;

  g_return_val_if_fail (ES_IS_EVENT_FILTER (self), FALSE);
  g_return_val_if_fail (ES_IS_STORED_EVENT (event), FALSE);

  for (i = 0; i < self->clauses->len; i++)
    {
      const Clause *clause = &g_array_index (self->clauses, Clause, i);

      /* Parse the metadata once, and only if a clause needs it. */
      if (clause->kind == ES_FILTER_FIELD_METADATA && !metadata_parsed)
        {
          const char *text = es_stored_event_get_metadata (event);

          metadata_parsed = TRUE;
          if (text != NULL)
            {
              parser = json_parser_new_immutable ();
              if (json_parser_load_from_data (parser, text, -1, NULL))
                metadata = json_parser_get_root (parser);
              if (metadata != NULL && !JSON_NODE_HOLDS_OBJECT (metadata))
                metadata = NULL;
            }
        }

      if (!clause_matches (clause, event, metadata))
        return FALSE;
    }

  return TRUE;
}
