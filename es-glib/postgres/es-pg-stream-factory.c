/* es-pg-stream-factory.c: streams in a PostgreSQL database.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-pg-private.h"

/**
 * EsPgStreamFactory:
 *
 * An [class@Es.StreamFactory] on a PostgreSQL database: the event log can
 * be shared by processes on several machines, and watches are pushed by
 * the server through `LISTEN`/`NOTIFY`.
 *
 * The factory opens an [class@EsPg.Storage] on
 * [property@EsPg.StreamFactory:conninfo] (a libpq connection string such
 * as `"host=db.example.com dbname=shop user=app"` or a URI such as
 * `"postgresql://app@db.example.com/shop"`), creating the es-glib tables in
 * [property@EsPg.StreamFactory:schema] when they are missing, and an
 * [class@EsPg.Notifier] that listens for the commits of every process
 * using the same schema. Streams, reads, watches, snapshots and metrics
 * behave exactly as with [class@Es.SqliteStreamFactory].
 *
 * ```c
 * g_autoptr(EsPgStreamFactory) factory = NULL;
 * g_autoptr(EsStream) stream = NULL;
 * g_autoptr(GError) error = NULL;
 *
 * factory = es_pg_stream_factory_new ("host=db.example.com dbname=shop user=app",
 *                                     NULL, &error);
 * if (factory == NULL)
 *   g_error ("%s", error->message);
 * stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "cart-7",
 *                                         NULL, &error);
 * ```
 *
 * A connection string the server refuses, or a server that cannot be
 * reached, fails with %ES_ERROR_STORAGE carrying the server's reason (never
 * the password). A schema name that is not a plain lowercase identifier
 * fails with %ES_ERROR_INVALID_ARGUMENT; a schema that holds another
 * application's tables, or was written by a newer es-glib, fails with
 * %ES_ERROR_STORAGE and is left untouched.
 *
 * It implements [iface@Gio.Initable] and [iface@Gio.AsyncInitable]: the
 * asynchronous constructors connect and check the schema in a worker
 * thread, so no libpq call blocks the caller's main context. Bindings can
 * construct it with properties and then initialize it, e.g.
 * `EsPg.StreamFactory(conninfo="dbname=shop", pool_size=8).init(None)`.
 *
 * Since: 0.1
 */

#define DEFAULT_POOL_SIZE 4
#define MAX_POOL_SIZE     64

struct _EsPgStreamFactory
{
  EsStreamFactory parent_instance;

  char           *conninfo;     /* (owned) (nullable) */
  char           *schema;       /* (owned) */
  guint           pool_size;
  guint           give_up_timeout;
  gboolean        initialized;
};

enum {
  PROP_0,
  PROP_CONNINFO,
  PROP_SCHEMA,
  PROP_POOL_SIZE,
  PROP_GIVE_UP_TIMEOUT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsPgStreamFactory, es_pg_stream_factory,
                               ES_TYPE_STREAM_FACTORY,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               /* GIO's default runs GInitable.init in a thread. */
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE, NULL))

static gboolean
es_pg_stream_factory_initable_init (GInitable     *initable,
                                    GCancellable  *cancellable,
                                    GError       **error)
{
  EsPgStreamFactory *self = ES_PG_STREAM_FACTORY (initable);
  g_autoptr(EsPgStorage) storage = NULL;
  g_autoptr(EsPgNotifier) notifier = NULL;

  if (self->initialized)
    return TRUE;

  storage = g_initable_new (ES_TYPE_PG_STORAGE, cancellable, error,
                            "conninfo", self->conninfo,
                            "schema", self->schema,
                            "pool-size", self->pool_size,
                            NULL);
  if (storage == NULL)
    return FALSE;

  notifier = g_object_new (ES_TYPE_PG_NOTIFIER,
                           "storage", storage,
                           "give-up-timeout", self->give_up_timeout,
                           NULL);
  if (!es_notifier_start (ES_NOTIFIER (notifier), cancellable, error))
    {
      es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
      return FALSE;
    }

  _es_stream_factory_set_backend (ES_STREAM_FACTORY (self), ES_STORAGE_HANDLE (storage),
                                  ES_NOTIFIER (notifier));
  self->initialized = TRUE;
  return TRUE;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = es_pg_stream_factory_initable_init;
}

static void
es_pg_stream_factory_get_property (GObject    *object,
                                   guint       prop_id,
                                   GValue     *value,
                                   GParamSpec *pspec)
{
  EsPgStreamFactory *self = ES_PG_STREAM_FACTORY (object);

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
    case PROP_GIVE_UP_TIMEOUT:
      g_value_set_uint (value, self->give_up_timeout);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_stream_factory_set_property (GObject      *object,
                                   guint         prop_id,
                                   const GValue *value,
                                   GParamSpec   *pspec)
{
  EsPgStreamFactory *self = ES_PG_STREAM_FACTORY (object);

  switch (prop_id)
    {
    case PROP_CONNINFO:
      g_free (self->conninfo);
      self->conninfo = g_value_dup_string (value);
      break;
    case PROP_SCHEMA:
      /* NULL: the default, as for EsPgStorage:schema. */
      g_free (self->schema);
      self->schema = g_strdup (g_value_get_string (value) != NULL ? g_value_get_string (value)
                                                                  : ES_PG_DEFAULT_SCHEMA);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint (value);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      self->give_up_timeout = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_stream_factory_finalize (GObject *object)
{
  EsPgStreamFactory *self = ES_PG_STREAM_FACTORY (object);

  g_free (self->conninfo);
  g_free (self->schema);

  G_OBJECT_CLASS (es_pg_stream_factory_parent_class)->finalize (object);
}

static void
es_pg_stream_factory_class_init (EsPgStreamFactoryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->get_property = es_pg_stream_factory_get_property;
  object_class->set_property = es_pg_stream_factory_set_property;
  object_class->finalize = es_pg_stream_factory_finalize;

  /**
   * EsPgStreamFactory:conninfo:
   *
   * How to reach the database: a libpq connection string
   * (`"host=db.example.com port=5432 dbname=shop user=app"`) or URI
   * (`"postgresql://app@db.example.com/shop?sslmode=require"`). Anything
   * libpq accepts works, including its environment variables (`PGHOST`,
   * `PGPASSWORD`...) and password file for what the string leaves out;
   * %NULL or an empty string uses libpq's defaults only.
   *
   * Since: 0.1
   */
  properties[PROP_CONNINFO] =
    g_param_spec_string ("conninfo", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsPgStreamFactory:schema:
   *
   * The PostgreSQL schema (namespace) that holds the es-glib tables,
   * created when missing: 1 to 48 lowercase ASCII letters, digits and
   * underscores, not starting with a digit. Applications that share an
   * event log use the same schema; separate logs in one database use
   * separate schemas.
   *
   * Since: 0.1
   */
  properties[PROP_SCHEMA] =
    g_param_spec_string ("schema", NULL, NULL, ES_PG_DEFAULT_SCHEMA,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsPgStreamFactory:pool-size:
   *
   * The most connections the factory's storage opens to the server: how
   * many reads and writes run at once. The notifier holds one more
   * connection of its own.
   *
   * Since: 0.1
   */
  properties[PROP_POOL_SIZE] =
    g_param_spec_uint ("pool-size", NULL, NULL, 1, MAX_POOL_SIZE, DEFAULT_POOL_SIZE,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsPgStreamFactory:give-up-timeout:
   *
   * How long, in milliseconds, watches wait for an unreachable server
   * before they give up: the notifier reconnects meanwhile (nothing
   * committed while it is away is lost), and when it has not reconnected
   * and read successfully within this time, every watch emits
   * [signal@Es.Watch::error] with %ES_ERROR_STORAGE and stops. 0 never
   * gives up. Passed to the factory's [class@EsPg.Notifier]; see
   * [property@EsPg.Notifier:give-up-timeout].
   *
   * Since: 0.2
   */
  properties[PROP_GIVE_UP_TIMEOUT] =
    g_param_spec_uint ("give-up-timeout", NULL, NULL, 0, G_MAXINT, 60000,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_pg_stream_factory_init (EsPgStreamFactory *self)
{
  self->schema = g_strdup (ES_PG_DEFAULT_SCHEMA);
  self->pool_size = DEFAULT_POOL_SIZE;
}

/**
 * es_pg_stream_factory_new:
 * @conninfo: a libpq connection string or URI
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Connects to a PostgreSQL database and opens the es-glib tables in the
 * default schema (`es_glib`), creating them when missing, with a pool of
 * 4 connections. Use g_initable_new() with the properties to change the
 * schema or the pool size.
 *
 * This blocks while it connects: from a main loop, use
 * [func@EsPg.StreamFactory.new_async].
 *
 * Fails with %ES_ERROR_STORAGE, carrying the server's reason, when the
 * server cannot be reached or refuses the connection, or when the schema
 * belongs to another application or to a newer es-glib.
 *
 * Returns: (transfer full): the factory, or %NULL on error
 *
 * Since: 0.1
 */
EsPgStreamFactory *
es_pg_stream_factory_new (const char    *conninfo,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_return_val_if_fail (conninfo != NULL, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (ES_TYPE_PG_STREAM_FACTORY, cancellable, error,
                         "conninfo", conninfo,
                         NULL);
}

/**
 * es_pg_stream_factory_new_async:
 * @conninfo: a libpq connection string or URI
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the factory is ready
 * @user_data: data for @callback
 *
 * Like [ctor@EsPg.StreamFactory.new], without blocking: the connection is
 * made and the schema checked in a worker thread.
 *
 * Since: 0.1
 */
void
es_pg_stream_factory_new_async (const char          *conninfo,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (conninfo != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (ES_TYPE_PG_STREAM_FACTORY, G_PRIORITY_DEFAULT,
                              cancellable, callback, user_data,
                              "conninfo", conninfo,
                              NULL);
}

/**
 * es_pg_stream_factory_new_finish:
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [func@EsPg.StreamFactory.new_async].
 *
 * Returns: (transfer full): the factory, or %NULL on error
 *
 * Since: 0.1
 */
EsPgStreamFactory *
es_pg_stream_factory_new_finish (GAsyncResult  *result,
                                 GError       **error)
{
  g_autoptr(GObject) source = NULL;
  GObject *object;

  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  source = g_async_result_get_source_object (result);
  object = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);
  return object != NULL ? ES_PG_STREAM_FACTORY (object) : NULL;
}

/**
 * es_pg_stream_factory_get_conninfo:
 * @self: an [class@EsPg.StreamFactory]
 *
 * Gets the connection string the factory was created with.
 *
 * Returns: (transfer none) (nullable): the connection string, as given
 *
 * Since: 0.1
 */
const char *
es_pg_stream_factory_get_conninfo (EsPgStreamFactory *self)
{
  g_return_val_if_fail (ES_IS_PG_STREAM_FACTORY (self), NULL);

  return self->conninfo;
}

/**
 * es_pg_stream_factory_get_schema:
 * @self: an [class@EsPg.StreamFactory]
 *
 * Gets the PostgreSQL schema that holds the factory's tables.
 *
 * Returns: (transfer none): the schema name
 *
 * Since: 0.1
 */
const char *
es_pg_stream_factory_get_schema (EsPgStreamFactory *self)
{
  g_return_val_if_fail (ES_IS_PG_STREAM_FACTORY (self), NULL);

  return self->schema;
}
