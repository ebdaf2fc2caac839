/* es-stream-info-enumerator.h: pages through a listing of streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STREAM_INFO_ENUMERATOR (es_stream_info_enumerator_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsStreamInfoEnumerator, es_stream_info_enumerator, ES, STREAM_INFO_ENUMERATOR, GObject)

ES_AVAILABLE_IN_ALL
EsStreamInfo *es_stream_info_enumerator_next              (EsStreamInfoEnumerator *self,
                                                           GCancellable           *cancellable,
                                                           GError                **error);
ES_AVAILABLE_IN_ALL
GPtrArray    *es_stream_info_enumerator_next_batch        (EsStreamInfoEnumerator *self,
                                                           guint                   max_streams,
                                                           GCancellable           *cancellable,
                                                           GError                **error);
ES_AVAILABLE_IN_ALL
void          es_stream_info_enumerator_next_batch_async  (EsStreamInfoEnumerator *self,
                                                           guint                   max_streams,
                                                           GCancellable           *cancellable,
                                                           GAsyncReadyCallback     callback,
                                                           gpointer                user_data);
ES_AVAILABLE_IN_ALL
GPtrArray    *es_stream_info_enumerator_next_batch_finish (EsStreamInfoEnumerator *self,
                                                           GAsyncResult           *result,
                                                           GError                **error);
ES_AVAILABLE_IN_ALL
gboolean      es_stream_info_enumerator_close             (EsStreamInfoEnumerator *self,
                                                           GCancellable           *cancellable,
                                                           GError                **error);
ES_AVAILABLE_IN_ALL
gboolean      es_stream_info_enumerator_is_closed         (EsStreamInfoEnumerator *self);

G_END_DECLS
