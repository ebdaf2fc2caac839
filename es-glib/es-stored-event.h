/* es-stored-event.h: an event as persisted.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STORED_EVENT (es_stored_event_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsStoredEvent, es_stored_event, ES, STORED_EVENT, GObject)

ES_AVAILABLE_IN_ALL
EsStoredEvent *es_stored_event_new                (const char    *stream_id,
                                                   gint64         sequence_id,
                                                   gint64         version,
                                                   GDateTime     *timestamp,
                                                   const char    *event_type,
                                                   GBytes        *data,
                                                   const char    *idempotency_key,
                                                   const char    *metadata);
ES_AVAILABLE_IN_ALL
EsStoredEvent *es_stored_event_new_full           (const char    *stream_id,
                                                   gint64         sequence_id,
                                                   gint64         version,
                                                   GDateTime     *timestamp,
                                                   const char    *event_type,
                                                   GBytes        *data,
                                                   const char    *idempotency_key,
                                                   const char    *metadata,
                                                   EsStoredEventFlags flags);
ES_AVAILABLE_IN_ALL
const char    *es_stored_event_get_id             (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
const char    *es_stored_event_get_idempotency_key (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
const char    *es_stored_event_get_stream_id      (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
gint64         es_stored_event_get_sequence_id    (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
gint64         es_stored_event_get_version        (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
GDateTime     *es_stored_event_get_timestamp      (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
gint64         es_stored_event_get_timestamp_usec (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
const char    *es_stored_event_get_event_type     (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
GBytes        *es_stored_event_get_data           (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
const char    *es_stored_event_get_metadata       (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
EsStoredEventFlags es_stored_event_get_flags      (EsStoredEvent *self);
ES_AVAILABLE_IN_ALL
gboolean       es_stored_event_get_erased         (EsStoredEvent *self);

G_END_DECLS
