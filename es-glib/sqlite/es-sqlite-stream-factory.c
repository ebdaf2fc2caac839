/* es-sqlite-stream-factory.c: the embedded default, on one SQLite file.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"
#include "es-sqlite-private.h"

/**
 * EsSqliteStreamFactory:
 *
 * The entry point most applications need: an [class@Es.StreamFactory] on
 * one SQLite file, with no server.
 *
 * The file is created with its schema when missing (or empty) and opened
 * in WAL mode with one write connection and a pool of read connections. A
 * file that is not an es-glib database, is corrupt, or was written by a
 * newer es-glib fails with %ES_ERROR_STORAGE and is left untouched. A
 * %NULL path (or `":memory:"`) gives a private in-memory database shared by
 * the factory's connections.
 *
 * ```c
 * g_autoptr(EsSqliteStreamFactory) factory = NULL;
 * g_autoptr(EsStream) stream = NULL;
 * g_autoptr(GError) error = NULL;
 *
 * factory = es_sqlite_stream_factory_new ("events.db", NULL, &error);
 * if (factory == NULL)
 *   g_error ("%s", error->message);
 * stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "cart-7", NULL, &error);
 * ```
 *
 * It implements [iface@Gio.Initable] and [iface@Gio.AsyncInitable], so
 * bindings can construct it with properties and then initialize it, e.g.
 * `Es.SqliteStreamFactory(path="events.db", pool_size=2).init(None)`.
 *
 * To read a database without writing to it (a backup, a file on
 * read-only media), set [property@Es.SqliteStreamFactory:read-only]:
 *
 * ```c
 * factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
 *                           "path", "backup.db",
 *                           "read-only", TRUE,
 *                           NULL);
 * ```
 *
 * or, in Python, `Es.SqliteStreamFactory(path="backup.db",
 * read_only=True)` followed by `init(None)`.
 *
 * Since: 0.1
 */

struct _EsSqliteStreamFactory
{
  EsStreamFactory parent_instance;

  char           *path;            /* (owned) (nullable) */
  guint           pool_size;
  guint           cache_size_kib;
  guint           polling_interval;
  guint           give_up_timeout;
  EsDurability    durability;
  gboolean        read_only;
  gboolean        initialized;
};

enum {
  PROP_0,
  PROP_PATH,
  PROP_POOL_SIZE,
  PROP_CACHE_SIZE_KIB,
  PROP_POLLING_INTERVAL,
  PROP_GIVE_UP_TIMEOUT,
  PROP_DURABILITY,
  PROP_READ_ONLY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsSqliteStreamFactory, es_sqlite_stream_factory,
                               ES_TYPE_STREAM_FACTORY,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               /* GIO's default runs GInitable.init in a thread. */
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE, NULL))

static gboolean
es_sqlite_stream_factory_initable_init (GInitable     *initable,
                                        GCancellable  *cancellable,
                                        GError       **error)
{
  EsSqliteStreamFactory *self = ES_SQLITE_STREAM_FACTORY (initable);
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autoptr(EsSqliteNotifier) notifier = NULL;

  if (self->initialized)
    return TRUE;

  storage = g_initable_new (ES_TYPE_SQLITE_STORAGE, cancellable, error,
                            "path", self->path,
                            "pool-size", self->pool_size,
                            "cache-size-kib", self->cache_size_kib,
                            "durability", self->durability,
                            "read-only", self->read_only,
                            NULL);
  if (storage == NULL)
    return FALSE;

  notifier = g_object_new (ES_TYPE_SQLITE_NOTIFIER,
                           "storage", storage,
                           "polling-interval", self->polling_interval,
                           "give-up-timeout", self->give_up_timeout,
                           NULL);
  if (!es_notifier_start (ES_NOTIFIER (notifier), cancellable, error))
    {
      es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
      return FALSE;
    }

  es_stream_factory_set_backend (ES_STREAM_FACTORY (self), ES_STORAGE_HANDLE (storage),
                                 ES_NOTIFIER (notifier));
  self->initialized = TRUE;
  return TRUE;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = es_sqlite_stream_factory_initable_init;
}

static void
es_sqlite_stream_factory_get_property (GObject    *object,
                                       guint       prop_id,
                                       GValue     *value,
                                       GParamSpec *pspec)
{
  EsSqliteStreamFactory *self = ES_SQLITE_STREAM_FACTORY (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    case PROP_POOL_SIZE:
      g_value_set_uint (value, self->pool_size);
      break;
    case PROP_CACHE_SIZE_KIB:
      g_value_set_uint (value, self->cache_size_kib);
      break;
    case PROP_POLLING_INTERVAL:
      g_value_set_uint (value, self->polling_interval);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      g_value_set_uint (value, self->give_up_timeout);
      break;
    case PROP_DURABILITY:
      g_value_set_enum (value, self->durability);
      break;
    case PROP_READ_ONLY:
      g_value_set_boolean (value, self->read_only);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_stream_factory_set_property (GObject      *object,
                                       guint         prop_id,
                                       const GValue *value,
                                       GParamSpec   *pspec)
{
  EsSqliteStreamFactory *self = ES_SQLITE_STREAM_FACTORY (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint (value);
      break;
    case PROP_CACHE_SIZE_KIB:
      self->cache_size_kib = g_value_get_uint (value);
      break;
    case PROP_POLLING_INTERVAL:
      self->polling_interval = g_value_get_uint (value);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      self->give_up_timeout = g_value_get_uint (value);
      break;
    case PROP_DURABILITY:
      self->durability = g_value_get_enum (value);
      break;
    case PROP_READ_ONLY:
      self->read_only = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_stream_factory_finalize (GObject *object)
{
  EsSqliteStreamFactory *self = ES_SQLITE_STREAM_FACTORY (object);

  g_free (self->path);

  G_OBJECT_CLASS (es_sqlite_stream_factory_parent_class)->finalize (object);
}

static void
es_sqlite_stream_factory_class_init (EsSqliteStreamFactoryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->get_property = es_sqlite_stream_factory_get_property;
  object_class->set_property = es_sqlite_stream_factory_set_property;
  object_class->finalize = es_sqlite_stream_factory_finalize;

  /**
   * EsSqliteStreamFactory:path:
   *
   * The database file, created when missing. %NULL or `":memory:"` is a
   * private in-memory database.
   *
   * Since: 0.1
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteStreamFactory:pool-size:
   *
   * The number of read connections: how many reads run at once.
   *
   * Since: 0.1
   */
  properties[PROP_POOL_SIZE] =
    g_param_spec_uint ("pool-size", NULL, NULL,
                       1, ES_SQLITE_MAX_POOL_SIZE, ES_SQLITE_DEFAULT_POOL_SIZE,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteStreamFactory:cache-size-kib:
   *
   * SQLite's page cache per connection, in KiB.
   *
   * Since: 0.1
   */
  properties[PROP_CACHE_SIZE_KIB] =
    g_param_spec_uint ("cache-size-kib", NULL, NULL,
                       ES_SQLITE_MIN_CACHE_SIZE_KIB, ES_SQLITE_MAX_CACHE_SIZE_KIB,
                       ES_SQLITE_DEFAULT_CACHE_SIZE_KIB,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteStreamFactory:polling-interval:
   *
   * How often, in milliseconds, watches look for commits made by other
   * processes when the push path (inotify on the WAL file on Linux, a
   * file monitor elsewhere) has not already told them; only while a watch
   * exists (or a subscription, or a live list model): with none, nothing
   * polls. This process's own commits reach watches at once.
   *
   * 0, the default, lets the factory's [class@Es.SqliteNotifier] choose:
   * 1000 ms on a local file system on Linux, 100 ms on network and FUSE
   * file systems and where inotify is unavailable; see
   * [property@Es.SqliteNotifier:polling-interval] and
   * doc/notifications.md.
   *
   * Since: 0.1
   */
  properties[PROP_POLLING_INTERVAL] =
    g_param_spec_uint ("polling-interval", NULL, NULL, 0, 60000, 0,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteStreamFactory:give-up-timeout:
   *
   * How long, in milliseconds, the database may stay unusable (deleted,
   * replaced, truncated, overwritten, or failing in SQLite) before the
   * watches give up: each then emits [signal@Es.Watch::error] with
   * %ES_ERROR_STORAGE and stops. 0 never gives up. Passed to the
   * factory's [class@Es.SqliteNotifier]; see
   * [property@Es.StorageNotifier:give-up-timeout].
   *
   * Since: 0.2
   */
  properties[PROP_GIVE_UP_TIMEOUT] =
    g_param_spec_uint ("give-up-timeout", NULL, NULL, 0, 3600000, 5000,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteStreamFactory:durability:
   *
   * How far a committed write is guaranteed to survive: a crash of the
   * process (%ES_DURABILITY_NORMAL, the default) or also a loss of power
   * (%ES_DURABILITY_FULL, at the cost of one flush to the disk per
   * commit). Passed to the [class@Es.SqliteStorage] the factory opens.
   *
   * Since: 0.1
   */
  properties[PROP_DURABILITY] =
    g_param_spec_enum ("durability", NULL, NULL,
                       ES_TYPE_DURABILITY, ES_DURABILITY_NORMAL,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteStreamFactory:read-only:
   *
   * Whether to open the database for reading only. Reads, metrics,
   * snapshot loads and watches (which see what other processes commit)
   * work; writes and snapshots fail with %ES_ERROR_INVALID_ARGUMENT; the
   * open fails with %ES_ERROR_STORAGE when the file does not exist or is
   * not an up-to-date es-glib database, and nothing is ever written to it.
   * Passed to the [class@Es.SqliteStorage] the factory opens: see
   * [property@Es.SqliteStorage:read-only] for SQLite's rules on files in
   * write-ahead-log mode.
   *
   * Since: 0.2
   */
  properties[PROP_READ_ONLY] =
    g_param_spec_boolean ("read-only", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_sqlite_stream_factory_init (EsSqliteStreamFactory *self)
{
}

/**
 * es_sqlite_stream_factory_new:
 * @path: (nullable) (type filename): the database file; %NULL or
 *   `":memory:"` for a private in-memory database
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Opens (or creates) an es-glib database with default settings. Use
 * g_initable_new() with the properties to change them.
 *
 * Fails with %ES_ERROR_STORAGE when @path is a directory, is not an es-glib
 * database, is corrupt, or cannot be opened; the file is left untouched.
 *
 * Returns: (transfer full): the factory, or %NULL on error
 *
 * Since: 0.1
 */
EsSqliteStreamFactory *
es_sqlite_stream_factory_new (const char    *path,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, cancellable, error,
                         "path", path,
                         NULL);
}

/**
 * es_sqlite_stream_factory_new_async:
 * @path: (nullable) (type filename): the database file; %NULL or
 *   `":memory:"` for a private in-memory database
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the factory is ready
 * @user_data: data for @callback
 *
 * Opens (or creates) an es-glib database without blocking: the file is
 * opened and checked in a worker thread.
 *
 * Since: 0.1
 */
void
es_sqlite_stream_factory_new_async (const char          *path,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (ES_TYPE_SQLITE_STREAM_FACTORY, G_PRIORITY_DEFAULT,
                              cancellable, callback, user_data,
                              "path", path,
                              NULL);
}

/**
 * es_sqlite_stream_factory_new_finish:
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [func@Es.SqliteStreamFactory.new_async].
 *
 * Returns: (transfer full): the factory, or %NULL on error
 *
 * Since: 0.1
 */
EsSqliteStreamFactory *
es_sqlite_stream_factory_new_finish (GAsyncResult  *result,
                                     GError       **error)
{
  g_autoptr(GObject) source = NULL;

  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  source = g_async_result_get_source_object (result);
  return ES_SQLITE_STREAM_FACTORY (g_async_initable_new_finish (G_ASYNC_INITABLE (source),
                                                                result, error));
}

/**
 * es_sqlite_stream_factory_get_path:
 * @self: an [class@Es.SqliteStreamFactory]
 *
 * Gets the database file.
 *
 * Returns: (transfer none) (nullable) (type filename): the path, or %NULL
 *   for an in-memory database
 *
 * Since: 0.1
 */
const char *
es_sqlite_stream_factory_get_path (EsSqliteStreamFactory *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_STREAM_FACTORY (self), NULL);

  return self->path;
}
