/* es-pg-private.h: what the PostgreSQL backend's files share (not
 * installed): the storage's instance struct, a pooled connection and the
 * statements it runs, the ids of the fixed statements, and the _es_pg_*
 * functions one file of the backend offers the others.
 *
 *   es-pg-connection.c     errors, connecting, connections, pipeline runs
 *   es-pg-schema.c         the schema, its migrations, the fixed statements
 *   es-pg-writer.c         appends (one, and the group-commit writer), snapshots
 *   es-pg-query.c          values, filters to SQL, reads
 *   es-pg-lifecycle.c      deletes, truncation, erasure, retention, listing,
 *                          one-statement reads
 *   es-pg-storage.c        EsPgStorage: GObject, initable, pool, handle methods
 *   es-pg-subscription.c   durable subscriptions: stored, held
 *   es-pg-notifier.c       EsPgNotifier
 *   es-pg-stream-factory.c EsPgStreamFactory
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <string.h>

#include <libpq-fe.h>

/* The core's internals this library uses (ES_PRIVATE_API), from the
 * es-glib source tree: libes-glib-pg-1.0 is built with the libes-glib-1.0
 * of the same version only. */
#include "es-private.h"
#include "es-pg.h"
#include "es-glib/backend/es-pool-private.h"
#include "es-glib/backend/es-write-queue-private.h"

G_BEGIN_DECLS

/* Default schema (PostgreSQL namespace) of the backend's tables. */
#define ES_PG_DEFAULT_SCHEMA "es_glib"

/* ---------------------------------------------------------------------- *
 * Errors and connecting (es-pg-connection.c), shared with the notifier   *
 * ---------------------------------------------------------------------- */

/* Opens a connection with @conninfo, blocking (call it off the main
 * context). On failure sets %ES_ERROR_STORAGE carrying libpq's or the
 * server's reason and returns NULL. Cancellable between attempts only. */
PGconn     *_es_pg_connect                (const char     *conninfo,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* The same, with @defaults (keyword, value, ..., NULL) for the settings
 * @conninfo leaves out. */
PGconn     *_es_pg_connect_with_defaults  (const char          *conninfo,
                                           const char * const  *defaults,
                                           GCancellable        *cancellable,
                                           GError             **error);

/* Sets %ES_ERROR_STORAGE: "@context: <server's message>", from @result
 * when given (its primary message), else from PQerrorMessage (@conn). */
void        _es_pg_set_error              (GError        **error,
                                           PGconn         *conn,
                                           const PGresult *result,
                                           const char     *context);

/* ---------------------------------------------------------------------- *
 * Connections of the pool (es-pg-connection.c)                            *
 * ---------------------------------------------------------------------- */

/* One server connection of the pool, used by one thread at a time. */
typedef struct
{
  PGconn     *conn;
  PGcancel   *cancel;       /* (owned) for PQcancel() */
  gboolean    cancel_sent;  /* a cancel request went out during this use */
  gboolean    unusable;     /* left in a state we cannot use again */
  gboolean    lost;         /* the server ended the session, or the link broke */
  GHashTable *prepared;     /* (owned) SQL text → (owned) statement name */
  guint       n_names;      /* statement names given so far */
} EsPgConnection;

/* One statement of a pipeline: SQL with $n parameters in text format
 * unless @formats says binary (bytea, arrays); results in binary format
 * when @binary is set. */
typedef struct
{
  const char         *sql;
  int                 n_params;
  const char * const *values;
  const int          *lengths;
  const int          *formats;
  gboolean            binary;
} EsPgStatement;

/* @defaults: see _es_pg_connect_with_defaults(), or NULL. */
EsPgConnection *_es_pg_connection_open       (const char            *conninfo,
                                              const char * const    *defaults,
                                              GCancellable          *cancellable,
                                              GError               **error);
void            _es_pg_connection_close      (gpointer               data);
gboolean        _es_pg_connection_is_alive   (EsPgConnection        *c);
gboolean        _es_pg_connection_run        (EsPgConnection        *c,
                                              const EsPgStatement   *statements,
                                              guint                  n_statements,
                                              PGresult             **results,
                                              int                   *out_failed,
                                              GCancellable          *cancellable,
                                              const char            *context,
                                              GError               **error);
PGresult       *_es_pg_connection_run_one    (EsPgConnection        *c,
                                              const EsPgStatement   *statement,
                                              GCancellable          *cancellable,
                                              const char            *context,
                                              GError               **error);
gboolean        _es_pg_connection_run_script (EsPgConnection        *c,
                                              const char            *sql,
                                              GCancellable          *cancellable,
                                              const char            *context,
                                              GError               **error);
void            _es_pg_connection_rollback   (EsPgConnection        *c);
gboolean        _es_pg_result_has_state      (const PGresult        *result,
                                              const char            *state);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EsPgConnection, _es_pg_connection_close)

/* Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01 UTC: a
 * timestamptz in binary format counts from the latter. */
#define ES_PG_EPOCH_USEC G_GINT64_CONSTANT (946684800000000)

/* An int8 column of a result in binary format. */
static inline gint64
_es_pg_get_int8 (const PGresult *result,
                 int             row,
                 int             column)
{
  guint64 value;

  memcpy (&value, PQgetvalue (result, row, column), sizeof value);
  return (gint64) GUINT64_FROM_BE (value);
}

/* A timestamptz column of a result in binary format, in microseconds
 * since the Unix epoch. */
static inline gint64
_es_pg_get_usec (const PGresult *result,
                 int             row,
                 int             column)
{
  return _es_pg_get_int8 (result, row, column) + ES_PG_EPOCH_USEC;
}

/* ---------------------------------------------------------------------- *
 * The storage (es-pg-storage.c) and its fixed statements (es-pg-schema.c) *
 * ---------------------------------------------------------------------- */

/* The fixed statements, made for the storage's schema at construction
 * (their text is in es-pg-schema.c). */
typedef enum
{
  SQL_INSPECT,
  SQL_LOCK,
  SQL_LOCK_MANY,
  SQL_EXISTING_KEYS,
  SQL_READ_VERSION_TABLE,
  SQL_WRITE_VERSION_TABLE,
  SQL_APPEND,
  SQL_RETAIN,
  SQL_READ_STREAM,
  SQL_READ_ALL,
  SQL_STREAM_VERSION,
  SQL_LAST_SEQUENCE_ID,
  SQL_STREAM_METRICS,
  SQL_ALL_METRICS,
  SQL_SAVE_SNAPSHOT,
  SQL_LOAD_SNAPSHOT,
  N_SQL
} SqlId;

/* Reads of events: the fixed ones (SQL_READ_STREAM, SQL_READ_ALL) and the
 * filtered ones es-pg-query.c builds from the same start and end. */
#define EVENT_COLUMNS \
  "sequence_id, version, idempotency_key, event_type, recorded_at, data, metadata, flags"

#define READ_STREAM_SELECT \
  "SELECT " EVENT_COLUMNS " FROM {S}.events WHERE stream_id = $1::text AND version > $2::int8"
#define READ_ALL_SELECT \
  "SELECT " EVENT_COLUMNS ", stream_id FROM {S}.events WHERE sequence_id > $1::int8"

/* The stream id snapshots of @all are stored under (the storage handle
 * receives NULL for @all; no valid stream id starts with '@'). */
#define ALL_STREAM_KEY ES_ALL_STREAM

struct _EsPgStorage
{
  GObject    parent_instance;

  /* Construct-only properties. */
  char      *conninfo;       /* (owned) (nullable) as given */
  char      *schema;         /* (owned) */
  guint      pool_size;

  /* Set at construction or by init, constant afterwards. */
  gboolean   init_done;
  gboolean   init_ok;
  char      *quoted_schema;  /* (owned) "name", for SQL */
  char      *channel;        /* (owned) <schema>_events */
  char      *sql[N_SQL];     /* (owned) sql_templates for this schema */

  /* The pool (es-pool-private.h), up to @pool_size connections; closed
   * until init succeeds. */
  EsPool     pool;

  /* Asynchronous appends: the group-commit writer (es-pg-writer.c). */
  EsWriteQueue       *writer;         /* (owned) (nullable) set by init */

  /* Durable subscriptions (es-pg-subscription.c): those this storage
   * holds or is acquiring, by name; refused once closed. */
  GMutex              subs_mutex;
  GHashTable         *holds;          /* (owned) name → Hold */
  gboolean            subs_closed;
};

/* An operation on one borrowed connection. It sets *@retry when it failed
 * before anything of it could have taken effect (a read, or a write whose
 * transaction was not yet committing): if the connection turns out broken,
 * the operation then runs again, once, on another connection. */
typedef gboolean (*EsPgOperation) (EsPgStorage     *self,
                                   EsPgConnection  *c,
                                   gpointer         data,
                                   gboolean        *retry,
                                   GCancellable    *cancellable,
                                   GError         **error);

gboolean    _es_pg_storage_run_operation  (EsPgStorage    *self,
                                           EsPgOperation   operation,
                                           gpointer        data,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* es-pg-operations.c */
gboolean    _es_pg_storage_check          (EsStorageHandle        *handle,
                                           EsCheckFlags            flags,
                                           EsCheckReport          *report,
                                           GCancellable           *cancellable,
                                           GFileProgressCallback   progress_callback,
                                           gpointer                progress_data,
                                           GError                **error);
gint64      _es_pg_storage_import_events  (EsStorageHandle        *handle,
                                           EsStoredEvent * const  *events,
                                           guint                   n_events,
                                           guint                  *out_failed_index,
                                           GCancellable           *cancellable,
                                           GError                **error);

/* The storage's settings, for the notifier. */
const char *_es_pg_storage_get_conninfo   (EsPgStorage    *self);
/* The LISTEN/NOTIFY channel of the storage's schema (not quoted: a
 * plain identifier made of [a-z0-9_]). Every committed append sends a
 * NOTIFY on it, in the append's transaction; the payload is the last
 * sequence id of the append, in decimal. */
const char *_es_pg_storage_get_channel    (EsPgStorage    *self);

/* ---------------------------------------------------------------------- *
 * The schema (es-pg-schema.c)                                             *
 * ---------------------------------------------------------------------- */

char       *_es_pg_schema_sql             (EsPgStorage    *self,
                                           const char     *template);
void        _es_pg_schema_make_statements (EsPgStorage    *self);
gboolean    _es_pg_schema_name_is_valid   (const char     *name);
gboolean    _es_pg_schema_prepare         (EsPgStorage    *self,
                                           EsPgConnection *c,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* ---------------------------------------------------------------------- *
 * The storage handle's methods (es-pg-writer.c, es-pg-query.c)            *
 * ---------------------------------------------------------------------- */

/* The group-commit writer of asynchronous appends, not started. */
EsWriteQueue *_es_pg_writer_new           (void);

gboolean    _es_pg_storage_append         (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    expected_version,
                                           EsCandidateEvent * const *events,
                                           guint                     n_events,
                                           gint64                   *out_version,
                                           GCancellable             *cancellable,
                                           GError                  **error);
void        _es_pg_storage_append_async   (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    expected_version,
                                           EsCandidateEvent * const *events,
                                           guint                     n_events,
                                           GCancellable             *cancellable,
                                           GAsyncReadyCallback       callback,
                                           gpointer                  user_data);
gboolean    _es_pg_storage_append_finish  (EsStorageHandle          *handle,
                                           GAsyncResult             *result,
                                           gint64                   *out_version,
                                           GError                  **error);
gboolean    _es_pg_storage_save_snapshot  (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           const char               *projection_name,
                                           gint64                    version,
                                           GBytes                   *state,
                                           GCancellable             *cancellable,
                                           GError                  **error);

GPtrArray  *_es_pg_storage_read_page      (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    after,
                                           EsEventFilter            *filter,
                                           guint                     limit,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gboolean    _es_pg_storage_get_version    (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                   *out_version,
                                           GCancellable             *cancellable,
                                           GError                  **error);
EsStreamMetrics *
            _es_pg_storage_get_metrics    (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           GCancellable             *cancellable,
                                           GError                  **error);
EsSnapshot *_es_pg_storage_load_snapshot  (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           const char               *projection_name,
                                           GCancellable             *cancellable,
                                           GError                  **error);

/* The stream life cycle (es-pg-query.c: reads; es-pg-lifecycle.c: the
 * rest). */
GPtrArray  *_es_pg_storage_read_page_full (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    position,
                                           EsReadFlags               flags,
                                           EsEventFilter            *filter,
                                           guint                     limit,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gboolean    _es_pg_storage_read_rows      (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    position,
                                           EsReadFlags               flags,
                                           EsEventFilter            *filter,
                                           guint                     limit,
                                           EsRowPage                *page,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gint64      _es_pg_storage_locate_event   (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    position,
                                           EsReadFlags               flags,
                                           EsEventFilter            *filter,
                                           guint64                   index,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gint64      _es_pg_storage_count_events   (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           EsEventFilter            *filter,
                                           gint64                    after,
                                           gint64                    until,
                                           GCancellable             *cancellable,
                                           GError                  **error);
EsStreamInfo *
            _es_pg_storage_get_stream_info (EsStorageHandle         *handle,
                                            const char              *stream_id,
                                            GCancellable            *cancellable,
                                            GError                 **error);
GPtrArray  *_es_pg_storage_list_streams   (EsStorageHandle          *handle,
                                           const char               *prefix,
                                           const char               *after_stream_id,
                                           EsListStreamsFlags        flags,
                                           guint                     limit,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gboolean    _es_pg_storage_delete_stream  (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    expected_version,
                                           EsDeleteFlags             flags,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gboolean    _es_pg_storage_truncate_stream (EsStorageHandle         *handle,
                                            const char              *stream_id,
                                            gint64                   before_version,
                                            GCancellable            *cancellable,
                                            GError                 **error);
gboolean    _es_pg_storage_erase_event    (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           gint64                    version,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gboolean    _es_pg_storage_set_retention  (EsStorageHandle          *handle,
                                           const char               *stream_id,
                                           GTimeSpan                 max_age,
                                           gint64                    max_count,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gint64      _es_pg_storage_sweep          (EsStorageHandle          *handle,
                                           gint64                    now_usec,
                                           gboolean                 *out_has_age_policy,
                                           GCancellable             *cancellable,
                                           GError                  **error);
gboolean    _es_pg_storage_compact        (EsStorageHandle          *handle,
                                           GCancellable             *cancellable,
                                           GError                  **error);

/* Durable subscriptions (es-pg-subscription.c). */
void        _es_pg_subscriptions_init     (EsPgStorage              *self);
void        _es_pg_subscriptions_shutdown (EsPgStorage              *self);
void        _es_pg_subscriptions_clear    (EsPgStorage              *self);
EsSubscriptionInfo *
            _es_pg_storage_get_subscription (EsStorageHandle        *handle,
                                             const char             *name,
                                             GCancellable           *cancellable,
                                             GError                **error);
GPtrArray  *_es_pg_storage_list_subscriptions (EsStorageHandle      *handle,
                                               GCancellable         *cancellable,
                                               GError              **error);
gboolean    _es_pg_storage_save_checkpoint (EsStorageHandle         *handle,
                                            const char              *name,
                                            const char              *stream_id,
                                            gint64                   position,
                                            GBytes                  *state,
                                            GCancellable            *cancellable,
                                            GError                 **error);
gboolean    _es_pg_storage_reset_subscription (EsStorageHandle      *handle,
                                               const char           *name,
                                               gint64                position,
                                               GCancellable         *cancellable,
                                               GError              **error);
gboolean    _es_pg_storage_delete_subscription (EsStorageHandle     *handle,
                                                const char          *name,
                                                GCancellable        *cancellable,
                                                GError             **error);
gboolean    _es_pg_storage_acquire_subscription (EsStorageHandle    *handle,
                                                 const char         *name,
                                                 gboolean            wait,
                                                 GCancellable       *cancellable,
                                                 GError            **error);
void        _es_pg_storage_release_subscription (EsStorageHandle    *handle,
                                                 const char         *name);

/* Tests: the server process id of the session that holds @name for this
 * storage (0: not held); a query's first value on that session (not
 * while a save runs); a connection setting of it (PQconninfo). */
int         _es_pg_storage_get_subscription_pid (EsPgStorage        *self,
                                                 const char         *name);
char       *_es_pg_storage_query_subscription_session (EsPgStorage  *self,
                                                       const char   *name,
                                                       const char   *sql);
char       *_es_pg_storage_get_subscription_conninfo (EsPgStorage   *self,
                                                      const char    *name,
                                                      const char    *keyword);

/* The error of an append to a tombstoned stream. */
void        _es_pg_set_tombstoned_error   (GError                  **error,
                                           const char               *stream_id);
/* The error of a status code of one of the schema's functions that its
 * caller does not expect. */
void        _es_pg_set_unexpected_status_error (GError           **error,
                                                int                status);
/* Runs one reading statement (@sql, with {S} for the schema) on its own,
 * results in binary format, once more on another connection if the first
 * broke. Returns: (transfer full) (nullable): the result, NULL on error. */
PGresult   *_es_pg_storage_read           (EsPgStorage              *self,
                                           const char               *sql,
                                           const char * const       *values,
                                           int                       n_params,
                                           const char               *context,
                                           GCancellable             *cancellable,
                                           GError                  **error);

/* ---------------------------------------------------------------------- *
 * The notifier (es-pg-notifier.c)                                         *
 * ---------------------------------------------------------------------- */

/* Tests: connections the notifier has (re)opened since it started. */
guint       _es_pg_notifier_get_n_connects (EsPgNotifier  *self);
/* Tests: storage reads (read_page, get_version) the notifier has run
 * since it started; it reads only when something was committed. */
guint       _es_pg_notifier_get_n_reads    (EsPgNotifier  *self);

G_END_DECLS
