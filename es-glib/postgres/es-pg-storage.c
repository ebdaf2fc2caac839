/* es-pg-storage.c: EsPgStorage, the PostgreSQL implementation of
 * EsStorageHandle.
 *
 * The GObject (properties, construction, disposal), GInitable (the
 * schema, the writer thread, the first connection of the pool), the pool
 * (es-glib/backend/es-pool.c) and the operations run on its connections
 * (_es_pg_storage_run_operation(): the retry after a server restart),
 * closing, the EsStorageHandle table, and the public API. The methods
 * themselves are in es-pg-writer.c (appends, snapshots) and es-pg-query.c
 * (reads); the connections in es-pg-connection.c, the schema in
 * es-pg-schema.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-pg-private.h"

/**
 * EsPgStorage:
 *
 * The PostgreSQL implementation of [iface@Es.StorageHandle]: an event log
 * that processes on several machines share.
 *
 * Most applications never create one themselves:
 * [class@EsPg.StreamFactory] does, and pairs it with an
 * [class@EsPg.Notifier].
 *
 * The storage keeps its tables in one PostgreSQL schema
 * ([property@EsPg.Storage:schema]), created with them when missing and
 * versioned: a schema written by a newer es-glib, or one holding another
 * application's tables, fails with %ES_ERROR_STORAGE and is left
 * untouched. Several processes may create the same schema at the same
 * moment.
 *
 * Operations borrow a connection from a pool of up to
 * [property@EsPg.Storage:pool-size] connections, opened as they are
 * needed, and wait for one to be free beyond that. A connection the server
 * closed (a restart, say) is replaced; an operation that finds its
 * connection broken before it could take effect runs again on a new one,
 * so the first operation after a restart works. Every method blocks and
 * is meant for worker threads, as [iface@Es.StorageHandle] says; a
 * [class@Gio.Cancellable] that fires sends the server a cancel request.
 *
 * ## Appends
 *
 * An append is one transaction, with the semantics of the SQLite backend:
 * the expected-version check, the idempotency lookup and the inserts all
 * happen in it. Appends to one stream take turns through a
 * transaction-scoped advisory lock, so the version check is exact however
 * many connections, processes and machines write; the unique constraints
 * of the tables stay as the last line of defence, and a violation is
 * reported as %ES_ERROR_WRONG_EXPECTED_VERSION. Every append that stores
 * something sends a `NOTIFY` on the channel `<schema>_events`, with its
 * last sequence id as payload, right after its COMMIT (in the same
 * pipeline, in a transaction of its own: see the scaling guide).
 *
 * A connection that breaks while an append is committing leaves its
 * outcome unknown to the caller: the append fails with %ES_ERROR_STORAGE,
 * and the transaction guarantees that all of its events or none were
 * stored. Writing the events again is safe when they carry idempotency
 * keys.
 *
 * ## No skipped events in <code>@<!-- -->all</code>
 *
 * Sequence ids come from a one-row counter that each append updates in
 * its transaction, just before it inserts. The row stays locked until the
 * transaction ends, so appends commit in sequence-id order: a reader or a
 * watch that has seen sequence id N never later finds a committed event
 * with a smaller id. (With ids from a sequence, a transaction that took
 * id 5 could commit after one that took id 6, and a reader that had moved
 * past 6 would miss 5 for ever.) The cost is that the insert-and-commit
 * step of appends is serial in one schema: batches of events are the way
 * to write fast.
 *
 * Ids are never used twice, but since 0.2 they have gaps: each delete of
 * a stream takes an id of the same counter (the position of the tombstone
 * marker of a hard delete; nothing for a soft one), and the ids of deleted
 * or expired events are gone with them.
 *
 * ## Stream life cycle and privacy
 *
 * Each stream has a row in the `streams` table, kept up to date by every
 * append in its transaction: listing streams and stream information read
 * only that table, in byte order of the ids (`COLLATE "C"`, whatever the
 * database's collation). Deletes, truncations and retention policies run
 * in one transaction each, under the same per-stream lock as appends; a
 * delete sends a `NOTIFY` like an append, so that the watches of other
 * processes learn about it. The sweep removes at most 10,000 events per
 * transaction and skips the streams an append holds at that moment (the
 * append enforces the policy itself).
 *
 * PostgreSQL has nothing like SQLite's `secure_delete`. A deleted,
 * truncated, expired or erased event (an erasure updates the row, which
 * leaves the old row version behind) stays in the table's data files as a
 * dead row version until `VACUUM` (or autovacuum) reclaims it, and
 * [method@Es.StorageHandle.compact] runs `VACUUM` on the backend's tables.
 * `VACUUM` removes the dead rows' index entries, marks their space free
 * for new rows and gives empty pages at the end of a table back to the
 * file system; it does not overwrite the bytes of the dead rows, which
 * remain on disk until new rows reuse the space. Nor does anything in
 * es-glib reach the write-ahead log (which holds every row as written
 * until its segments are recycled), WAL archives, backups or replicas.
 * Where erased data must not survive on the server's disks, combine
 * `VACUUM FULL` (which rewrites each table into new files, under an
 * exclusive lock) with encrypted storage and a backup policy.
 *
 * ## Durable subscriptions
 *
 * Checkpoints and states are rows of the `subscriptions` table, each save
 * one transaction. Holding a subscription
 * ([method@Es.StorageHandle.acquire_subscription]) is a session advisory
 * lock on a connection of its own, with TCP keepalives, which the server
 * releases when the holder's session ends: at once when its process dies,
 * within about 25 s when its machine stops answering. Waiting blocks in
 * `pg_advisory_lock()`, which the server ends as soon as the lock is
 * free, and a cancellable ends with a cancel request. The holder's saves
 * run in the lock's session, so a holder whose session ended cannot store
 * anything: its saves fail with %ES_ERROR_STORAGE. Closing the storage
 * releases what it holds. The PostgreSQL guide describes the lock keys.
 *
 * Since: 0.1
 */

#define DEFAULT_POOL_SIZE 4
#define MAX_POOL_SIZE     64

/* ---------------------------------------------------------------------- *
 * EsPgStorage                                                             *
 * ---------------------------------------------------------------------- */

/* struct _EsPgStorage is in es-pg-private.h. */

enum
{
  PROP_0,
  PROP_CONNINFO,
  PROP_SCHEMA,
  PROP_POOL_SIZE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void initable_iface_init       (GInitableIface           *iface);
static void storage_handle_iface_init (EsStorageHandleInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsPgStorage, es_pg_storage, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STORAGE_HANDLE,
                                                      storage_handle_iface_init))

/* ---------------------------------------------------------------------- *
 * The pool                                                                *
 * ---------------------------------------------------------------------- */

/* The pool is es-glib/backend/es-pool.c; these say how to open, check and
 * close a connection. */

static gpointer
pool_open_connection (gpointer       user_data,
                      GCancellable  *cancellable,
                      GError       **error)
{
  EsPgStorage *self = user_data;

  return _es_pg_connection_open (self->conninfo != NULL ? self->conninfo : "", NULL, cancellable,
                                 error);
}

/* An idle connection closed by the server while it waited (a restart) is
 * replaced. */
static gboolean
pool_connection_is_alive (gpointer conn)
{
  return _es_pg_connection_is_alive (conn);
}

/* One given back is closed instead when it failed, was left inside a
 * transaction, or had a cancel request sent to it (which could reach a
 * later statement). */
static gboolean
pool_connection_can_reuse (gpointer conn)
{
  EsPgConnection *c = conn;

  return !(PQstatus (c->conn) != CONNECTION_OK || c->lost || c->unusable || c->cancel_sent ||
           PQtransactionStatus (c->conn) != PQTRANS_IDLE);
}

static EsPgConnection *
pool_acquire (EsPgStorage   *self,
              GCancellable  *cancellable,
              GError       **error)
{
  return _es_pool_acquire (&self->pool, cancellable, error);
}

static void
pool_release (EsPgStorage    *self,
              EsPgConnection *c)
{
  _es_pool_release (&self->pool, c);
}

/* Runs @operation on a pooled connection. After a server restart every
 * pooled connection is broken: pool_acquire() replaces those it can tell
 * are (the server's goodbye is waiting on their socket), and this retry
 * covers the others, so the first operation after a restart works: each
 * failed attempt drops its connection, so after as many attempts as the
 * pool holds connections the next one is new. */
gboolean
_es_pg_storage_run_operation (EsPgStorage  *self,
                              EsPgOperation operation,
                              gpointer      data,
                              GCancellable *cancellable,
                              GError      **error)
{
  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GError) local_error = NULL;
      gboolean retry = FALSE;
      gboolean lost;
      gboolean ok;
      EsPgConnection *c;

      c = pool_acquire (self, cancellable, error);
      if (c == NULL)
        return FALSE;

      c->cancel_sent = FALSE;
      ok = operation (self, c, data, &retry, cancellable, &local_error);
      lost = c->lost || PQstatus (c->conn) != CONNECTION_OK;
      pool_release (self, c);

      if (ok)
        return TRUE;
      if (!(lost && retry && attempt < self->pool.limit))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }
}

/* ---------------------------------------------------------------------- *
 * Opening                                                                 *
 * ---------------------------------------------------------------------- */

static gboolean
es_pg_storage_initable_init (GInitable     *initable,
                             GCancellable  *cancellable,
                             GError       **error)
{
  EsPgStorage *self = ES_PG_STORAGE (initable);
  g_autoptr(EsPgConnection) c = NULL;
  g_autoptr(GError) thread_error = NULL;
  EsWriteQueue *writer;
  GPtrArray *first;

  if (self->init_done)
    {
      if (!self->init_ok)
        g_set_error_literal (error, ES_ERROR, ES_ERROR_STORAGE,
                             _("The storage failed to open earlier"));
      return self->init_ok;
    }
  self->init_done = TRUE;

  if (!_es_pg_schema_name_is_valid (self->schema))
    {
      g_autofree char *shown = g_utf8_make_valid (self->schema, -1);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is the schema name given; keep the
                    * rule's characters as they are */
                   _("Invalid schema name '%s': use 1 to 48 characters among a-z, 0-9 "
                     "and _, not starting with a digit"), shown);
      return FALSE;
    }

  c = _es_pg_connection_open (self->conninfo != NULL ? self->conninfo : "", NULL, cancellable,
                              error);
  if (c == NULL || !_es_pg_schema_prepare (self, c, cancellable, error))
    return FALSE;

  /* The group-commit writer of asynchronous appends; its thread holds a
   * ref on the queue. */
  writer = _es_pg_writer_new ();
  if (!_es_write_queue_start (writer, "es-pg-writer", &thread_error))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is GLib's (English) reason */
                   _("Cannot start the writer thread: %s"), thread_error->message);
      _es_write_queue_unref (writer);
      return FALSE;
    }

  /* The first connection of the pool. */
  self->writer = writer;
  first = g_ptr_array_new ();
  g_ptr_array_add (first, g_steal_pointer (&c));
  self->pool.limit = self->pool_size;
  _es_pool_open (&self->pool, first);

  self->init_ok = TRUE;
  return TRUE;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = es_pg_storage_initable_init;
}

/* ---------------------------------------------------------------------- *
 * Closing, and the storage handle                                         *
 * ---------------------------------------------------------------------- */

/* Refuses new work, wakes whoever waits for a connection, and closes the
 * idle connections; borrowed ones are closed when they come back, as soon
 * as their operation ends. Idempotent and thread-safe. */
static void
es_pg_storage_shutdown (EsPgStorage *self)
{
  _es_pg_subscriptions_shutdown (self);
  _es_pool_close (&self->pool);

  /* The writer runs the jobs queued before the stop mark: the storage is
   * closed, so they fail with ES_ERROR_CLOSED (a group already running
   * finishes). On the writer thread itself (it dropped the last ref on the
   * storage), it cannot be joined: it stops on its own. */
  if (self->writer != NULL)
    _es_write_queue_stop (self->writer);
}

static gboolean
es_pg_storage_close (EsStorageHandle  *handle,
                     GCancellable     *cancellable,
                     GError          **error)
{
  es_pg_storage_shutdown (ES_PG_STORAGE (handle));
  return TRUE;
}

static void
storage_handle_iface_init (EsStorageHandleInterface *iface)
{
  iface->append = _es_pg_storage_append;
  iface->append_async = _es_pg_storage_append_async;
  iface->append_finish = _es_pg_storage_append_finish;
  iface->read_page = _es_pg_storage_read_page;
  iface->get_version = _es_pg_storage_get_version;
  iface->get_metrics = _es_pg_storage_get_metrics;
  iface->save_snapshot = _es_pg_storage_save_snapshot;
  iface->load_snapshot = _es_pg_storage_load_snapshot;
  iface->close = es_pg_storage_close;
  iface->read_page_full = _es_pg_storage_read_page_full;
  iface->get_stream_info = _es_pg_storage_get_stream_info;
  iface->list_streams = _es_pg_storage_list_streams;
  iface->delete_stream = _es_pg_storage_delete_stream;
  iface->truncate_stream = _es_pg_storage_truncate_stream;
  iface->erase_event = _es_pg_storage_erase_event;
  iface->set_retention = _es_pg_storage_set_retention;
  iface->sweep = _es_pg_storage_sweep;
  iface->compact = _es_pg_storage_compact;
  iface->get_subscription = _es_pg_storage_get_subscription;
  iface->list_subscriptions = _es_pg_storage_list_subscriptions;
  iface->save_checkpoint = _es_pg_storage_save_checkpoint;
  iface->reset_subscription = _es_pg_storage_reset_subscription;
  iface->delete_subscription = _es_pg_storage_delete_subscription;
  iface->acquire_subscription = _es_pg_storage_acquire_subscription;
  iface->release_subscription = _es_pg_storage_release_subscription;
  iface->count_events = _es_pg_storage_count_events;
  iface->locate_event = _es_pg_storage_locate_event;
  iface->check = _es_pg_storage_check;
  iface->import_events = _es_pg_storage_import_events;
  iface->read_rows = _es_pg_storage_read_rows;
  iface->add_metadata_index = _es_pg_storage_add_metadata_index;
  iface->remove_metadata_index = _es_pg_storage_remove_metadata_index;
  iface->list_metadata_indexes = _es_pg_storage_list_metadata_indexes;
}

/* ---------------------------------------------------------------------- *
 * GObject                                                                 *
 * ---------------------------------------------------------------------- */

static void
es_pg_storage_constructed (GObject *object)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  G_OBJECT_CLASS (es_pg_storage_parent_class)->constructed (object);

  /* A name that init refuses never reaches SQL: these are unused then. */
  self->quoted_schema = g_strdup_printf ("\"%s\"", self->schema);
  self->channel = g_strconcat (self->schema, "_events", NULL);
  _es_pg_schema_make_statements (self);
}

static void
es_pg_storage_dispose (GObject *object)
{
  es_pg_storage_shutdown (ES_PG_STORAGE (object));

  G_OBJECT_CLASS (es_pg_storage_parent_class)->dispose (object);
}

static void
es_pg_storage_finalize (GObject *object)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  _es_pool_clear (&self->pool);
  _es_pg_subscriptions_clear (self);
  g_clear_pointer (&self->writer, _es_write_queue_unref);
  g_free (self->conninfo);
  g_free (self->schema);
  g_free (self->quoted_schema);
  g_free (self->channel);
  for (guint i = 0; i < N_SQL; i++)
    g_free (self->sql[i]);

  G_OBJECT_CLASS (es_pg_storage_parent_class)->finalize (object);
}

static void
es_pg_storage_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  switch (prop_id)
    {
    case PROP_CONNINFO:
      g_value_set_string (value, self->conninfo);
      break;
    case PROP_SCHEMA:
      g_value_set_string (value, self->schema);
      break;
    case PROP_POOL_SIZE:
      g_value_set_uint (value, self->pool_size);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_storage_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  switch (prop_id)
    {
    case PROP_CONNINFO:
      g_free (self->conninfo);
      self->conninfo = g_value_dup_string (value);
      break;
    case PROP_SCHEMA:
      /* NULL: the default. */
      g_free (self->schema);
      self->schema = g_strdup (g_value_get_string (value) != NULL ? g_value_get_string (value)
                                                                  : ES_PG_DEFAULT_SCHEMA);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_storage_class_init (EsPgStorageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->constructed = es_pg_storage_constructed;
  object_class->dispose = es_pg_storage_dispose;
  object_class->finalize = es_pg_storage_finalize;
  object_class->get_property = es_pg_storage_get_property;
  object_class->set_property = es_pg_storage_set_property;

  /**
   * EsPgStorage:conninfo:
   *
   * How to reach the database: a libpq connection string
   * (`"host=db.example.com dbname=shop user=app"`) or URI
   * (`"postgresql://app@db.example.com/shop"`). libpq's environment
   * variables and password file supply what it leaves out; %NULL or an
   * empty string uses them alone.
   *
   * Since: 0.1
   */
  properties[PROP_CONNINFO] =
    g_param_spec_string ("conninfo", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsPgStorage:schema:
   *
   * The PostgreSQL schema that holds the tables, created when missing: 1
   * to 48 characters among `a-z`, `0-9` and `_`, not starting with a
   * digit. %NULL means the default, `es_glib`.
   *
   * Since: 0.1
   */
  properties[PROP_SCHEMA] =
    g_param_spec_string ("schema", NULL, NULL,
                         ES_PG_DEFAULT_SCHEMA,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsPgStorage:pool-size:
   *
   * The most connections the storage opens: how many reads and appends
   * run at once; more wait for a connection to be free. The first is
   * opened at once, the others when they are needed.
   *
   * Since: 0.1
   */
  properties[PROP_POOL_SIZE] =
    g_param_spec_uint ("pool-size", NULL, NULL,
                       1, MAX_POOL_SIZE, DEFAULT_POOL_SIZE,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_pg_storage_init (EsPgStorage *self)
{
  self->schema = g_strdup (ES_PG_DEFAULT_SCHEMA);
  self->pool_size = DEFAULT_POOL_SIZE;

  _es_pg_subscriptions_init (self);

  /* Until init succeeds, nothing can be borrowed. */
  _es_pool_init (&self->pool, DEFAULT_POOL_SIZE, pool_open_connection, pool_connection_is_alive,
                 pool_connection_can_reuse, _es_pg_connection_close, self);
}

/* ---------------------------------------------------------------------- *
 * Public and library-private API                                          *
 * ---------------------------------------------------------------------- */

/**
 * es_pg_storage_new:
 * @conninfo: a libpq connection string or URI
 * @schema: (nullable): the schema that holds the tables, or %NULL for
 *   `es_glib`
 * @pool_size: the most connections (1 to 64), or 0 for the default (4)
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Connects to a PostgreSQL database and opens the es-glib tables in
 * @schema, creating them when missing. This blocks while it connects.
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for a schema name that is not
 * valid, and with %ES_ERROR_STORAGE, carrying the server's reason, when
 * the server cannot be reached or refuses the connection, or when @schema
 * holds another application's tables or was written by a newer es-glib
 * (the schema is then left untouched).
 *
 * Returns: (transfer full): the storage, or %NULL on error
 *
 * Since: 0.1
 */
EsPgStorage *
es_pg_storage_new (const char    *conninfo,
                   const char    *schema,
                   guint          pool_size,
                   GCancellable  *cancellable,
                   GError       **error)
{
  g_return_val_if_fail (conninfo != NULL, NULL);
  g_return_val_if_fail (pool_size <= MAX_POOL_SIZE, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (ES_TYPE_PG_STORAGE, cancellable, error,
                         "conninfo", conninfo,
                         "schema", schema,
                         "pool-size", pool_size != 0 ? pool_size : DEFAULT_POOL_SIZE,
                         NULL);
}

/**
 * es_pg_storage_get_conninfo:
 * @self: an [class@EsPg.Storage]
 *
 * Gets the connection string the storage was created with.
 *
 * Returns: (transfer none) (nullable): the connection string, as given
 *
 * Since: 0.1
 */
const char *
es_pg_storage_get_conninfo (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->conninfo;
}

/**
 * es_pg_storage_get_schema:
 * @self: an [class@EsPg.Storage]
 *
 * Gets the PostgreSQL schema that holds the storage's tables.
 *
 * Returns: (transfer none): the schema name
 *
 * Since: 0.1
 */
const char *
es_pg_storage_get_schema (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->schema;
}

/**
 * es_pg_storage_get_pool_size:
 * @self: an [class@EsPg.Storage]
 *
 * Gets the most connections the storage opens.
 *
 * Returns: the size of the pool
 *
 * Since: 0.1
 */
guint
es_pg_storage_get_pool_size (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), 0);

  return self->pool_size;
}

const char *
_es_pg_storage_get_conninfo (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->conninfo != NULL ? self->conninfo : "";
}

const char *
_es_pg_storage_get_channel (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->channel;
}
