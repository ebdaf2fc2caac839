/* es-event-enumerator.h: pages through the result of a read.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_EVENT_ENUMERATOR (es_event_enumerator_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsEventEnumerator, es_event_enumerator, ES, EVENT_ENUMERATOR, GObject)

ES_AVAILABLE_IN_ALL
EsStoredEvent *es_event_enumerator_next              (EsEventEnumerator    *self,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
GPtrArray     *es_event_enumerator_next_batch        (EsEventEnumerator    *self,
                                                      guint                 max_events,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
void           es_event_enumerator_next_batch_async  (EsEventEnumerator    *self,
                                                      guint                 max_events,
                                                      GCancellable         *cancellable,
                                                      GAsyncReadyCallback   callback,
                                                      gpointer              user_data);
ES_AVAILABLE_IN_ALL
GPtrArray     *es_event_enumerator_next_batch_finish (EsEventEnumerator    *self,
                                                      GAsyncResult         *result,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
gboolean       es_event_enumerator_close             (EsEventEnumerator    *self,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
gboolean       es_event_enumerator_is_closed         (EsEventEnumerator    *self);

G_END_DECLS
