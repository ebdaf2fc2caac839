/* es-event-list-model.h: a live, lazily paged GListModel of stored events.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_EVENT_LIST_MODEL (es_event_list_model_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsEventListModel, es_event_list_model, ES, EVENT_LIST_MODEL, GObject)

ES_AVAILABLE_IN_ALL
EsEventListModel     *es_event_list_model_new           (EsStreamFactory       *factory,
                                                         const char            *stream_id,
                                                         EsEventFilter         *filter,
                                                         EsEventListModelFlags  flags);
ES_AVAILABLE_IN_ALL
EsStreamFactory      *es_event_list_model_get_factory   (EsEventListModel      *self);
ES_AVAILABLE_IN_ALL
const char           *es_event_list_model_get_stream_id (EsEventListModel      *self);
ES_AVAILABLE_IN_ALL
EsEventFilter        *es_event_list_model_get_filter    (EsEventListModel      *self);
ES_AVAILABLE_IN_ALL
EsEventListModelFlags es_event_list_model_get_flags     (EsEventListModel      *self);
ES_AVAILABLE_IN_ALL
gboolean              es_event_list_model_get_loading   (EsEventListModel      *self);
ES_AVAILABLE_IN_ALL
void                  es_event_list_model_refresh       (EsEventListModel      *self);

G_END_DECLS
