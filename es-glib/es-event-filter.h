/* es-event-filter.h: AND-ed clauses that select events on read.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

/**
 * EsFilterOperator:
 * @ES_FILTER_OPERATOR_EQUALS: the field equals the value
 * @ES_FILTER_OPERATOR_IN: the field equals one of the values of an array
 * @ES_FILTER_OPERATOR_LIKE: the field matches an SQL `LIKE` pattern
 *   (`%` any run of characters, `_` one character, ASCII case-insensitive)
 * @ES_FILTER_OPERATOR_LESS: the field is smaller than the value (since 0.2)
 * @ES_FILTER_OPERATOR_LESS_OR_EQUAL: the field is smaller than or equal to
 *   the value (since 0.2)
 * @ES_FILTER_OPERATOR_GREATER: the field is greater than the value (since 0.2)
 * @ES_FILTER_OPERATOR_GREATER_OR_EQUAL: the field is greater than or equal
 *   to the value (since 0.2)
 *
 * The four comparisons apply to `version`, `sequence_id`, `timestamp` and
 * to numeric `metadata.<path>` values (a metadata value that is not a
 * number never matches a comparison).
 *
 * How a clause of an [class@Es.EventFilter] compares its field.
 */
typedef enum
{
  ES_FILTER_OPERATOR_EQUALS,
  ES_FILTER_OPERATOR_IN,
  ES_FILTER_OPERATOR_LIKE,
  ES_FILTER_OPERATOR_LESS,
  ES_FILTER_OPERATOR_LESS_OR_EQUAL,
  ES_FILTER_OPERATOR_GREATER,
  ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
} EsFilterOperator;

/**
 * EsFilterField:
 * @ES_FILTER_FIELD_INVALID: not a field a filter knows
 * @ES_FILTER_FIELD_STREAM_ID: `stream_id`
 * @ES_FILTER_FIELD_EVENT_TYPE: `event_type`
 * @ES_FILTER_FIELD_VERSION: `version`
 * @ES_FILTER_FIELD_SEQUENCE_ID: `sequence_id`
 * @ES_FILTER_FIELD_METADATA: `metadata.<key>[.<key>...]`, a value inside
 *   the metadata JSON object
 * @ES_FILTER_FIELD_TIMESTAMP: `timestamp`, the time of the write in
 *   microseconds since the Unix epoch (UTC); compared with an integer
 *   (since 0.2)
 *
 * What the field of a filter clause names; see
 * [func@Es.EventFilter.parse_field].
 *
 * Since: 0.2
 */
typedef enum
{
  ES_FILTER_FIELD_INVALID,
  ES_FILTER_FIELD_STREAM_ID,
  ES_FILTER_FIELD_EVENT_TYPE,
  ES_FILTER_FIELD_VERSION,
  ES_FILTER_FIELD_SEQUENCE_ID,
  ES_FILTER_FIELD_METADATA,
  ES_FILTER_FIELD_TIMESTAMP,
} EsFilterField;

/**
 * EsFilterValueKind:
 * @ES_FILTER_VALUE_INVALID: not a value a filter compares
 * @ES_FILTER_VALUE_STRING: a string (`s`)
 * @ES_FILTER_VALUE_INT64: any integer type (`y`, `n`, `q`, `i`, `u`, `x`,
 *   `t` up to %G_MAXINT64, `h`)
 * @ES_FILTER_VALUE_DOUBLE: a double (`d`)
 * @ES_FILTER_VALUE_BOOLEAN: a boolean (`b`)
 *
 * The kind of a scalar value in a filter clause; see
 * [func@Es.EventFilter.classify_value].
 *
 * Since: 0.2
 */
typedef enum
{
  ES_FILTER_VALUE_INVALID,
  ES_FILTER_VALUE_STRING,
  ES_FILTER_VALUE_INT64,
  ES_FILTER_VALUE_DOUBLE,
  ES_FILTER_VALUE_BOOLEAN,
} EsFilterValueKind;

#define ES_TYPE_EVENT_FILTER (es_event_filter_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsEventFilter, es_event_filter, ES, EVENT_FILTER, GObject)

ES_AVAILABLE_IN_ALL
EsEventFilter *es_event_filter_new           (void);
ES_AVAILABLE_IN_ALL
void           es_event_filter_add_equals    (EsEventFilter     *self,
                                              const char        *field,
                                              GVariant          *value);
ES_AVAILABLE_IN_ALL
void           es_event_filter_add_in        (EsEventFilter     *self,
                                              const char        *field,
                                              GVariant          *values);
ES_AVAILABLE_IN_ALL
void           es_event_filter_add_like      (EsEventFilter     *self,
                                              const char        *field,
                                              const char        *pattern);
ES_AVAILABLE_IN_ALL
void           es_event_filter_add_compare   (EsEventFilter     *self,
                                              const char        *field,
                                              EsFilterOperator   op,
                                              GVariant          *value);
ES_AVAILABLE_IN_ALL
void           es_event_filter_add_time_range (EsEventFilter    *self,
                                              GDateTime         *since,
                                              GDateTime         *until);
ES_AVAILABLE_IN_ALL
guint          es_event_filter_get_n_clauses (EsEventFilter     *self);
ES_AVAILABLE_IN_ALL
const char    *es_event_filter_get_clause    (EsEventFilter     *self,
                                              guint              index,
                                              EsFilterOperator  *op,
                                              GVariant         **value);
ES_AVAILABLE_IN_ALL
gboolean       es_event_filter_validate      (EsEventFilter     *self,
                                              GError           **error);
ES_AVAILABLE_IN_ALL
gboolean       es_event_filter_matches       (EsEventFilter     *self,
                                              EsStoredEvent     *event);

ES_AVAILABLE_IN_ALL
EsFilterField     es_event_filter_parse_field    (const char    *field,
                                                  char        ***out_path);
ES_AVAILABLE_IN_ALL
EsFilterValueKind es_event_filter_classify_value (GVariant      *value,
                                                  const char   **out_string,
                                                  gint64        *out_int64,
                                                  double        *out_double,
                                                  gboolean      *out_boolean);

G_END_DECLS
