/* es-sqlite-private.h: what the SQLite backend's files share (and what
 * tests and benchmarks reach of its internals).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>

#include "es-glib/es-private.h"
#include "es-glib/backend/es-pool-private.h"
#include "es-glib/backend/es-write-queue-private.h"

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

/* The schema version this es-glib writes and reads (es-sqlite-schema.c:
 * one migration per version). */
#define ES_SQLITE_SCHEMA_VERSION ((gint64) 3)

/* events.flags beyond the public EsStoredEventFlags (es-sqlite-schema.c):
 * the row holding the last position used, under a stream id no valid
 * stream id can be. Event reads keep flags < ES_SQLITE_FLAGS_MARKERS
 * (events, erased or not); reads with tombstones flags < POSITION. */
#define ES_SQLITE_FLAG_ERASED    1  /* ES_STORED_EVENT_FLAGS_ERASED, for SQL text */
#define ES_SQLITE_FLAG_TOMBSTONE 2  /* ES_STORED_EVENT_FLAGS_TOMBSTONE */
G_STATIC_ASSERT (ES_SQLITE_FLAG_ERASED == ES_STORED_EVENT_FLAGS_ERASED);
G_STATIC_ASSERT (ES_SQLITE_FLAG_TOMBSTONE == ES_STORED_EVENT_FLAGS_TOMBSTONE);
#define ES_SQLITE_FLAGS_MARKERS  2
#define ES_SQLITE_FLAG_POSITION  256
#define ES_SQLITE_POSITION_KEY   "@position"

/* Removals a sweep makes at most per transaction. */
#define ES_SQLITE_SWEEP_BATCH    10000

/* The stream id snapshots of @all are stored under (the storage handle
 * receives NULL for @all; no valid stream id starts with '@'). */
#define ALL_STREAM_KEY ES_ALL_STREAM

/* One SQLite connection and its prepared statements. A connection is used
 * by one thread at a time (it is opened SQLITE_OPEN_NOMUTEX): the write
 * connection by the writer thread, a read connection by whoever borrowed it
 * from the pool. */
typedef struct
{
  sqlite3    *db;
  GHashTable *stmts;         /* (owned) SQL text → (owned) sqlite3_stmt */
  char       *where;         /* (owned) the database, as errors name it */
  guint       busy_timeout;  /* milliseconds */
} EsConnection;

/* What the database says about itself, read without writing anything. */
typedef struct
{
  gint64 application_id;
  gint64 user_version;
  gint64 n_objects;  /* tables, indexes... in sqlite_master: 0 when empty */
} DbHeader;

/* The storage's state, shared by the files of the backend:
 * es-sqlite-storage.c owns it, es-sqlite-writer.c and es-sqlite-query.c
 * use its writer queue and read pool. */
struct _EsSqliteStorage
{
  GObject       parent_instance;

  /* Construct-only properties. */
  char         *path;            /* (owned) (nullable) as given */
  guint         pool_size;
  guint         cache_size_kib;
  guint         busy_timeout;    /* milliseconds */
  EsDurability  durability;
  gboolean      read_only;

  /* Set by init, constant afterwards. */
  gboolean      init_done;
  gboolean      init_ok;
  gboolean      in_memory;
  char         *uri;             /* (owned) what connections open */
  char         *where;           /* (owned) the database as errors name it */
  guint         created_files;   /* read-only: the SIDE_* files the open created */
  char         *file_key;        /* (owned) (nullable) counted in open_files */

  EsWriteQueue *writer;          /* (owned) shared with the writer thread */

  /* The read connections (es-pool-private.h); closed until init succeeds. */
  EsPool        pool;

  /* Held for the whole of a close, so a second close waits for the first
   * to finish. Taken before the pool's lock (_es_pool_close()) and the writer queue's
   * lock (_es_write_queue_stop()), never after them. */
  GMutex        close_lock;
  gboolean      closed;          /* guarded by close_lock */

  /* Durable subscriptions held through this storage
   * (es-sqlite-subscription.c), guarded by that file's process-wide lock. */
  GHashTable   *held;            /* (owned) name → (owned) gint64 byte offset */
  int           lock_fd;         /* the side file `<path>-eslock`, or -1 */
  gboolean      locks_closed;    /* closed: no more acquisitions */
};

/* es-sqlite-connection.c: errors, connections, the statement cache. */
void          _es_sqlite_set_error (GError     **error,
                                    sqlite3     *db,
                                    int          rc,
                                    const char  *operation,
                                    const char  *where,
                                    guint        busy_timeout);
void          _es_sqlite_set_closed_error (GError **error);
void          _es_sqlite_set_read_only_error (const char  *where,
                                              GError     **error);
void          _es_sqlite_connection_set_error (EsConnection  *conn,
                                               int            rc,
                                               const char    *operation,
                                               GError       **error);
void          _es_sqlite_connection_close (gpointer data);
EsConnection *_es_sqlite_connection_open (const char  *uri,
                                          int          flags,
                                          const char  *where,
                                          guint        busy_timeout,
                                          GError     **error);
gboolean      _es_sqlite_connection_exec (EsConnection  *conn,
                                          const char    *sql,
                                          const char    *operation,
                                          GError       **error);
void          _es_sqlite_connection_set_busy_timeout (EsConnection *conn,
                                                      guint         busy_timeout);
gboolean      _es_sqlite_connection_query_int64 (EsConnection  *conn,
                                                 const char    *sql,
                                                 gint64        *out_value,
                                                 const char    *operation,
                                                 GError       **error);
sqlite3_stmt *_es_sqlite_connection_get_stmt (EsConnection  *conn,
                                              const char    *sql,
                                              const char    *operation,
                                              GError       **error);
void          _es_sqlite_stmt_done (sqlite3_stmt *stmt);
int           _es_sqlite_bind_bytes (sqlite3_stmt *stmt,
                                     int           index,
                                     GBytes       *bytes);

/* es-sqlite-schema.c: the database's header, the schema, migrations. */
gboolean _es_sqlite_read_header (EsConnection  *conn,
                                 DbHeader      *header,
                                 GError       **error);
gboolean _es_sqlite_check_header (const DbHeader  *header,
                                  const char      *display_path,
                                  GError         **error);
gboolean _es_sqlite_prepare_schema (EsConnection  *conn,
                                    const char    *display_path,
                                    const char    *journal_mode,
                                    GError       **error);
gboolean _es_sqlite_probe_pages (EsConnection  *conn,
                                 GError       **error);

/* es-sqlite-writer.c: the writer thread's jobs and the write methods of the
 * storage handle. */
gboolean      _es_sqlite_storage_append (EsStorageHandle          *handle,
                                         const char               *stream_id,
                                         gint64                    expected_version,
                                         EsCandidateEvent * const *events,
                                         guint                     n_events,
                                         gint64                   *out_version,
                                         GCancellable             *cancellable,
                                         GError                  **error);
void          _es_sqlite_storage_append_async (EsStorageHandle          *handle,
                                               const char               *stream_id,
                                               gint64                    expected_version,
                                               EsCandidateEvent * const *events,
                                               guint                     n_events,
                                               GCancellable             *cancellable,
                                               GAsyncReadyCallback       callback,
                                               gpointer                  user_data);
gboolean      _es_sqlite_storage_append_finish (EsStorageHandle  *handle,
                                                GAsyncResult     *result,
                                                gint64           *out_version,
                                                GError          **error);
gboolean      _es_sqlite_storage_save_snapshot (EsStorageHandle  *handle,
                                                const char       *stream_id,
                                                const char       *projection_name,
                                                gint64            version,
                                                GBytes           *state,
                                                GCancellable     *cancellable,
                                                GError          **error);
gboolean      _es_sqlite_storage_delete_stream (EsStorageHandle  *handle,
                                                const char       *stream_id,
                                                gint64            expected_version,
                                                EsDeleteFlags     flags,
                                                GCancellable     *cancellable,
                                                GError          **error);
gboolean      _es_sqlite_storage_truncate_stream (EsStorageHandle  *handle,
                                                  const char       *stream_id,
                                                  gint64            before_version,
                                                  GCancellable     *cancellable,
                                                  GError          **error);
gboolean      _es_sqlite_storage_erase_event (EsStorageHandle  *handle,
                                              const char       *stream_id,
                                              gint64            version,
                                              GCancellable     *cancellable,
                                              GError          **error);
gboolean      _es_sqlite_storage_set_retention (EsStorageHandle  *handle,
                                                const char       *stream_id,
                                                GTimeSpan         max_age,
                                                gint64            max_count,
                                                GCancellable     *cancellable,
                                                GError          **error);
gint64        _es_sqlite_storage_sweep (EsStorageHandle  *handle,
                                        gint64            now_usec,
                                        gboolean         *out_has_age_policy,
                                        GCancellable     *cancellable,
                                        GError          **error);
gboolean      _es_sqlite_storage_compact (EsStorageHandle  *handle,
                                          GCancellable     *cancellable,
                                          GError          **error);
gint64        _es_sqlite_storage_import_events (EsStorageHandle       *handle,
                                                EsStoredEvent * const *events,
                                                guint                  n_events,
                                                guint                 *out_failed_index,
                                                GCancellable          *cancellable,
                                                GError               **error);
EsWriteQueue *_es_sqlite_writer_start (EsConnection  *conn,
                                       GError       **error);

/* es-sqlite-writer.c: the subscriptions' writes. */
gboolean      _es_sqlite_storage_save_checkpoint (EsStorageHandle  *handle,
                                                  const char       *name,
                                                  const char       *stream_id,
                                                  gint64            position,
                                                  GBytes           *state,
                                                  GCancellable     *cancellable,
                                                  GError          **error);
gboolean      _es_sqlite_writer_reset_subscription (EsSqliteStorage  *self,
                                                    const char       *name,
                                                    gint64            position,
                                                    GCancellable     *cancellable,
                                                    GError          **error);
gboolean      _es_sqlite_writer_delete_subscription (EsSqliteStorage  *self,
                                                     const char       *name,
                                                     GCancellable     *cancellable,
                                                     GError          **error);

/* es-sqlite-subscription.c: who consumes a subscription (a lock on a byte
 * of `<database>-eslock`), reset and delete. */
gboolean      _es_sqlite_storage_acquire_subscription (EsStorageHandle  *handle,
                                                       const char       *name,
                                                       gboolean          wait,
                                                       GCancellable     *cancellable,
                                                       GError          **error);
void          _es_sqlite_storage_release_subscription (EsStorageHandle *handle,
                                                       const char      *name);
gboolean      _es_sqlite_storage_reset_subscription (EsStorageHandle  *handle,
                                                     const char       *name,
                                                     gint64            position,
                                                     GCancellable     *cancellable,
                                                     GError          **error);
gboolean      _es_sqlite_storage_delete_subscription (EsStorageHandle  *handle,
                                                      const char       *name,
                                                      GCancellable     *cancellable,
                                                      GError          **error);
void          _es_sqlite_subscriptions_init  (EsSqliteStorage *self);
void          _es_sqlite_subscriptions_close (EsSqliteStorage *self);
void          _es_sqlite_subscriptions_clear (EsSqliteStorage *self);
/* Tests only: the byte of the side file that @name's holder locks. */
gint64        _es_sqlite_subscription_lock_offset (const char *name);

/* es-sqlite-query.c: the read pool, filters to SQL, the read methods of the
 * storage handle. */
GPtrArray       *_es_sqlite_storage_read_page (EsStorageHandle  *handle,
                                               const char       *stream_id,
                                               gint64            after,
                                               EsEventFilter    *filter,
                                               guint             limit,
                                               GCancellable     *cancellable,
                                               GError          **error);
gboolean         _es_sqlite_storage_get_version (EsStorageHandle  *handle,
                                                 const char       *stream_id,
                                                 gint64           *out_version,
                                                 GCancellable     *cancellable,
                                                 GError          **error);
EsStreamMetrics *_es_sqlite_storage_get_metrics (EsStorageHandle  *handle,
                                                 const char       *stream_id,
                                                 GCancellable     *cancellable,
                                                 GError          **error);
GPtrArray       *_es_sqlite_storage_read_page_full (EsStorageHandle  *handle,
                                                    const char       *stream_id,
                                                    gint64            position,
                                                    EsReadFlags       flags,
                                                    EsEventFilter    *filter,
                                                    guint             limit,
                                                    GCancellable     *cancellable,
                                                    GError          **error);
gboolean         _es_sqlite_storage_read_rows      (EsStorageHandle  *handle,
                                                    const char       *stream_id,
                                                    gint64            position,
                                                    EsReadFlags       flags,
                                                    EsEventFilter    *filter,
                                                    guint             limit,
                                                    EsRowPage        *page,
                                                    GCancellable     *cancellable,
                                                    GError          **error);
gint64           _es_sqlite_storage_locate_event (EsStorageHandle  *handle,
                                                  const char       *stream_id,
                                                  gint64            position,
                                                  EsReadFlags       flags,
                                                  EsEventFilter    *filter,
                                                  guint64           index,
                                                  GCancellable     *cancellable,
                                                  GError          **error);
gint64           _es_sqlite_storage_count_events (EsStorageHandle  *handle,
                                                  const char       *stream_id,
                                                  EsEventFilter    *filter,
                                                  gint64            after,
                                                  gint64            until,
                                                  GCancellable     *cancellable,
                                                  GError          **error);
EsStreamInfo    *_es_sqlite_storage_get_stream_info (EsStorageHandle  *handle,
                                                     const char       *stream_id,
                                                     GCancellable     *cancellable,
                                                     GError          **error);
GPtrArray       *_es_sqlite_storage_list_streams (EsStorageHandle     *handle,
                                                  const char          *prefix,
                                                  const char          *after_stream_id,
                                                  EsListStreamsFlags   flags,
                                                  guint                limit,
                                                  GCancellable        *cancellable,
                                                  GError             **error);
EsSnapshot      *_es_sqlite_storage_load_snapshot (EsStorageHandle  *handle,
                                                   const char       *stream_id,
                                                   const char       *projection_name,
                                                   GCancellable     *cancellable,
                                                   GError          **error);

EsSubscriptionInfo *_es_sqlite_storage_get_subscription (EsStorageHandle  *handle,
                                                        const char       *name,
                                                        GCancellable     *cancellable,
                                                        GError          **error);
GPtrArray       *_es_sqlite_storage_list_subscriptions (EsStorageHandle  *handle,
                                                        GCancellable     *cancellable,
                                                        GError          **error);

/* es-sqlite-operations.c: backup and integrity check. */
gboolean         _es_sqlite_storage_backup (EsStorageHandle        *handle,
                                            GFile                  *destination,
                                            EsBackupFlags           flags,
                                            GCancellable           *cancellable,
                                            GFileProgressCallback   progress_callback,
                                            gpointer                progress_data,
                                            GError                **error);
gboolean         _es_sqlite_storage_check (EsStorageHandle        *handle,
                                           EsCheckFlags            flags,
                                           EsCheckReport          *report,
                                           GCancellable           *cancellable,
                                           GFileProgressCallback   progress_callback,
                                           gpointer                progress_data,
                                           GError                **error);

/* Whether any retention policy exists, and any with a maximum age: a
 * sweep without policies takes no write lock at all. */
gboolean         _es_sqlite_storage_read_policies (EsSqliteStorage  *self,
                                                   gboolean         *out_any,
                                                   gboolean         *out_age,
                                                   GCancellable     *cancellable,
                                                   GError          **error);

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
