/* es-pg-storage.h: the PostgreSQL implementation of EsStorageHandle.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_PG_INSIDE) && !defined (ES_PG_COMPILATION)
# error "Only <es-glib-pg/es-pg.h> can be included directly."
#endif

#include <gio/gio.h>

#include <es-glib/es-glib.h>

#include "es-pg-version-macros.h"

G_BEGIN_DECLS

#define ES_TYPE_PG_STORAGE (es_pg_storage_get_type ())
ES_PG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsPgStorage, es_pg_storage, ES, PG_STORAGE, GObject)

ES_PG_AVAILABLE_IN_ALL
EsPgStorage *es_pg_storage_new           (const char    *conninfo,
                                          const char    *schema,
                                          guint          pool_size,
                                          GCancellable  *cancellable,
                                          GError       **error);
ES_PG_AVAILABLE_IN_ALL
const char  *es_pg_storage_get_conninfo  (EsPgStorage   *self);
ES_PG_AVAILABLE_IN_ALL
const char  *es_pg_storage_get_schema    (EsPgStorage   *self);
ES_PG_AVAILABLE_IN_ALL
guint        es_pg_storage_get_pool_size (EsPgStorage   *self);

G_END_DECLS
