/* es-pg-stream-factory.h: streams in a PostgreSQL database.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_PG_INSIDE) && !defined (ES_PG_COMPILATION)
# error "Only <es-glib-pg/es-pg.h> can be included directly."
#endif

#include <gio/gio.h>

#include <es-glib/es-glib.h>

#include "es-pg-version-macros.h"

G_BEGIN_DECLS

#define ES_TYPE_PG_STREAM_FACTORY (es_pg_stream_factory_get_type ())
ES_PG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsPgStreamFactory, es_pg_stream_factory, ES, PG_STREAM_FACTORY,
                      EsStreamFactory)

ES_PG_AVAILABLE_IN_ALL
EsPgStreamFactory *es_pg_stream_factory_new          (const char          *conninfo,
                                                      GCancellable        *cancellable,
                                                      GError             **error);
ES_PG_AVAILABLE_IN_ALL
void               es_pg_stream_factory_new_async    (const char          *conninfo,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
ES_PG_AVAILABLE_IN_ALL
EsPgStreamFactory *es_pg_stream_factory_new_finish   (GAsyncResult        *result,
                                                      GError             **error);
ES_PG_AVAILABLE_IN_ALL
const char        *es_pg_stream_factory_get_conninfo (EsPgStreamFactory   *self);
ES_PG_AVAILABLE_IN_ALL
const char        *es_pg_stream_factory_get_schema   (EsPgStreamFactory   *self);

G_END_DECLS
