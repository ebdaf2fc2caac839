/* es-sqlite-storage.h: the SQLite implementation of EsStorageHandle.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include <es-glib/es-types.h>

G_BEGIN_DECLS

/**
 * EsDurability:
 * @ES_DURABILITY_NORMAL: write-ahead logging with `synchronous = NORMAL`:
 *   a committed write survives the crash of the process, but the last
 *   commits may be lost if the machine loses power or the operating system
 *   crashes. The default.
 * @ES_DURABILITY_FULL: `synchronous = FULL`: every commit is also flushed
 *   to the disk (fsync) before the write is reported done, so it survives
 *   power loss as well. Costs one flush per commit (per group of writes
 *   committed together).
 *
 * How far a committed write of an [class@Es.SqliteStorage] is guaranteed
 * to survive.
 *
 * Since: 0.1
 */
typedef enum
{
  ES_DURABILITY_NORMAL,
  ES_DURABILITY_FULL,
} EsDurability;

#define ES_TYPE_SQLITE_STORAGE (es_sqlite_storage_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsSqliteStorage, es_sqlite_storage, ES, SQLITE_STORAGE, GObject)

ES_AVAILABLE_IN_ALL
EsSqliteStorage *es_sqlite_storage_new            (const char       *path,
                                                   guint             pool_size,
                                                   GCancellable     *cancellable,
                                                   GError          **error);
ES_AVAILABLE_IN_ALL
const char      *es_sqlite_storage_get_path       (EsSqliteStorage  *self);
ES_AVAILABLE_IN_ALL
guint            es_sqlite_storage_get_pool_size  (EsSqliteStorage  *self);

G_END_DECLS
