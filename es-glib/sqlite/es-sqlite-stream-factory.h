/* es-sqlite-stream-factory.h: the embedded default, on one SQLite file.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include <es-glib/es-stream-factory.h>

G_BEGIN_DECLS

#define ES_TYPE_SQLITE_STREAM_FACTORY (es_sqlite_stream_factory_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsSqliteStreamFactory, es_sqlite_stream_factory, ES, SQLITE_STREAM_FACTORY,
                      EsStreamFactory)

ES_AVAILABLE_IN_ALL
EsSqliteStreamFactory *es_sqlite_stream_factory_new        (const char           *path,
                                                            GCancellable         *cancellable,
                                                            GError              **error);
ES_AVAILABLE_IN_ALL
void                   es_sqlite_stream_factory_new_async  (const char           *path,
                                                            GCancellable         *cancellable,
                                                            GAsyncReadyCallback   callback,
                                                            gpointer              user_data);
ES_AVAILABLE_IN_ALL
EsSqliteStreamFactory *es_sqlite_stream_factory_new_finish (GAsyncResult         *result,
                                                            GError              **error);
ES_AVAILABLE_IN_ALL
const char            *es_sqlite_stream_factory_get_path   (EsSqliteStreamFactory *self);

G_END_DECLS
