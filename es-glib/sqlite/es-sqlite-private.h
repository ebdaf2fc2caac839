/* es-sqlite-private.h: what the SQLite backend's files share.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>

#include "es-glib/es-private.h"

G_BEGIN_DECLS

/* The limits and defaults of the construct properties EsSqliteStorage and
 * EsSqliteStreamFactory share: one definition, so the two agree. The page
 * cache has a floor: SQLite needs a few pages to work at all, and a
 * cache_size of 0 would not mean "no cache" anyway. */
#define ES_SQLITE_DEFAULT_POOL_SIZE      4
#define ES_SQLITE_MAX_POOL_SIZE          64
#define ES_SQLITE_MIN_CACHE_SIZE_KIB     64
#define ES_SQLITE_MAX_CACHE_SIZE_KIB     G_MAXINT
#define ES_SQLITE_DEFAULT_CACHE_SIZE_KIB 8192

/* Opens one more read-only connection on the storage's database (the
 * same in-memory database for an in-memory storage), with the storage's
 * busy timeout; the caller owns it and closes it with sqlite3_close(). */
sqlite3    *_es_sqlite_storage_open_reader   (EsSqliteStorage  *self,
                                              GError          **error);

/* The database file's path, or NULL for an in-memory database. */
const char *_es_sqlite_storage_get_file_path (EsSqliteStorage  *self);

/* Change checks (PRAGMA data_version) the notifier has run: for tests
 * that the number of watchers does not multiply queries. */
guint       _es_sqlite_notifier_get_n_checks (EsSqliteNotifier *self);

/* Tests only: runs `PRAGMA max_page_count` on the write connection (on
 * the writer thread, which owns it), to simulate a full disk. SQLite keeps
 * at least the current size; a big value lifts the limit again. */
gboolean    _es_sqlite_storage_set_max_page_count (EsSqliteStorage  *self,
                                                   guint64           max_page_count,
                                                   GError          **error);

G_END_DECLS
