/* es-event-cursor.h: steps through the rows of a read without an object
 * per event.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_EVENT_CURSOR (es_event_cursor_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsEventCursor, es_event_cursor, ES, EVENT_CURSOR, GObject)

ES_AVAILABLE_IN_ALL
gboolean            es_event_cursor_next                (EsEventCursor        *self,
                                                         GCancellable         *cancellable,
                                                         GError              **error);
ES_AVAILABLE_IN_ALL
void                es_event_cursor_next_async          (EsEventCursor        *self,
                                                         GCancellable         *cancellable,
                                                         GAsyncReadyCallback   callback,
                                                         gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean            es_event_cursor_next_finish         (EsEventCursor        *self,
                                                         GAsyncResult         *result,
                                                         GError              **error);
ES_AVAILABLE_IN_ALL
guint               es_event_cursor_next_rows           (EsEventCursor        *self,
                                                         guint                 max_rows,
                                                         GCancellable         *cancellable,
                                                         GError              **error);
ES_AVAILABLE_IN_ALL
gboolean            es_event_cursor_close               (EsEventCursor        *self,
                                                         GCancellable         *cancellable,
                                                         GError              **error);

ES_AVAILABLE_IN_ALL
gint64              es_event_cursor_get_sequence_id     (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
gint64              es_event_cursor_get_version         (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
gint64              es_event_cursor_get_timestamp_usec  (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
const char         *es_event_cursor_get_stream_id       (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
const char         *es_event_cursor_get_event_type      (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
const char         *es_event_cursor_get_idempotency_key (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
const char         *es_event_cursor_get_metadata        (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
const guint8       *es_event_cursor_get_data            (EsEventCursor        *self,
                                                         gsize                *length);
ES_AVAILABLE_IN_ALL
GBytes             *es_event_cursor_dup_data            (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
EsStoredEventFlags  es_event_cursor_get_flags           (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
EsStoredEvent      *es_event_cursor_get_event           (EsEventCursor        *self);

ES_AVAILABLE_IN_ALL
const gint64       *es_event_cursor_get_versions        (EsEventCursor        *self,
                                                         guint                *n_rows);
ES_AVAILABLE_IN_ALL
const gint64       *es_event_cursor_get_sequence_ids    (EsEventCursor        *self,
                                                         guint                *n_rows);
ES_AVAILABLE_IN_ALL
const gint64       *es_event_cursor_get_timestamps_usec (EsEventCursor        *self,
                                                         guint                *n_rows);
ES_AVAILABLE_IN_ALL
GStrv               es_event_cursor_dup_event_types     (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
GStrv               es_event_cursor_dup_stream_ids      (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
GPtrArray          *es_event_cursor_dup_data_list       (EsEventCursor        *self);
ES_AVAILABLE_IN_ALL
GBytes             *es_event_cursor_dup_data_joined     (EsEventCursor        *self,
                                                         gsize               **lengths,
                                                         guint                *n_rows);

G_END_DECLS
