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
 *
 * How a clause of an [class@Es.EventFilter] compares its field.
 */
typedef enum
{
  ES_FILTER_OPERATOR_EQUALS,
  ES_FILTER_OPERATOR_IN,
  ES_FILTER_OPERATOR_LIKE,
} EsFilterOperator;

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

G_END_DECLS
