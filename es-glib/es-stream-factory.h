/* es-stream-factory.h: wires a storage and a notifier, opens streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STREAM_FACTORY (es_stream_factory_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (EsStreamFactory, es_stream_factory, ES, STREAM_FACTORY, GObject)

/**
 * EsStreamFactoryClass:
 * @parent_class: the parent class
 *
 * The class of [class@Es.StreamFactory]. Subclasses provide the storage
 * and notifier they create, as [class@Es.SqliteStreamFactory] does.
 */
struct _EsStreamFactoryClass
{
  GObjectClass parent_class;

  /*< private >*/
  gpointer _reserved[8];
};

ES_AVAILABLE_IN_ALL
EsStreamFactory *es_stream_factory_new               (EsStorageHandle      *storage,
                                                      EsNotifier           *notifier);
ES_AVAILABLE_IN_ALL
EsStorageHandle *es_stream_factory_get_storage       (EsStreamFactory      *self);
ES_AVAILABLE_IN_ALL
EsNotifier      *es_stream_factory_get_notifier      (EsStreamFactory      *self);
ES_AVAILABLE_IN_ALL
gboolean         es_stream_factory_is_closed         (EsStreamFactory      *self);
ES_AVAILABLE_IN_ALL
EsStream        *es_stream_factory_open_stream       (EsStreamFactory      *self,
                                                      const char           *stream_id,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
void             es_stream_factory_open_stream_async (EsStreamFactory      *self,
                                                      const char           *stream_id,
                                                      GCancellable         *cancellable,
                                                      GAsyncReadyCallback   callback,
                                                      gpointer              user_data);
ES_AVAILABLE_IN_ALL
EsStream        *es_stream_factory_open_stream_finish (EsStreamFactory     *self,
                                                      GAsyncResult         *result,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
gboolean         es_stream_factory_close             (EsStreamFactory      *self,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
void             es_stream_factory_close_async       (EsStreamFactory      *self,
                                                      GCancellable         *cancellable,
                                                      GAsyncReadyCallback   callback,
                                                      gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean         es_stream_factory_close_finish      (EsStreamFactory      *self,
                                                      GAsyncResult         *result,
                                                      GError              **error);

ES_AVAILABLE_IN_ALL
void             es_stream_factory_set_backend       (EsStreamFactory      *self,
                                                      EsStorageHandle      *storage,
                                                      EsNotifier           *notifier);

G_END_DECLS
