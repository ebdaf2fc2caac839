/* es-stream-factory.c: wires a storage and a notifier, opens streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsStreamFactory:
 *
 * Wires an [iface@Es.StorageHandle] and an [iface@Es.Notifier] together and
 * opens [iface@Es.Stream]s on them. Most applications use its SQLite
 * subclass, [class@Es.SqliteStreamFactory]; a backend for another database
 * hands its own storage and notifier to [ctor@Es.StreamFactory.new].
 *
 * [method@Es.StreamFactory.close] releases the backend: afterwards every
 * operation on the factory and on the streams it opened fails with
 * %ES_ERROR_CLOSED. Dropping the last reference closes it too (streams
 * keep their factory alive).
 *
 * Since: 0.1
 */

typedef struct
{
  EsStorageHandle *storage;   /* (owned) (nullable until a subclass sets it) */
  EsNotifier      *notifier;  /* (owned) (nullable) */
  gint             closed;    /* (atomic) */
  GMutex           watches_lock;
  GHashTable      *watches;   /* (owned) EsWatch * → (owned) GWeakRef *, guarded by watches_lock */
} EsStreamFactoryPrivate;

enum {
  PROP_0,
  PROP_STORAGE,
  PROP_NOTIFIER,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_TYPE_WITH_PRIVATE (EsStreamFactory, es_stream_factory, G_TYPE_OBJECT)

static void weak_ref_free (gpointer data);

static void
es_stream_factory_dispose (GObject *object)
{
  EsStreamFactory *self = ES_STREAM_FACTORY (object);
  g_autoptr(GError) error = NULL;

  if (!es_stream_factory_close (self, NULL, &error))
    g_warning ("Closing an event stream factory on dispose failed: %s", error->message);

  G_OBJECT_CLASS (es_stream_factory_parent_class)->dispose (object);
}

static void
es_stream_factory_finalize (GObject *object)
{
  EsStreamFactoryPrivate *priv =
    es_stream_factory_get_instance_private (ES_STREAM_FACTORY (object));

  g_clear_object (&priv->storage);
  g_clear_object (&priv->notifier);
  g_clear_pointer (&priv->watches, g_hash_table_unref);
  g_mutex_clear (&priv->watches_lock);

  G_OBJECT_CLASS (es_stream_factory_parent_class)->finalize (object);
}

static void
es_stream_factory_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  EsStreamFactoryPrivate *priv =
    es_stream_factory_get_instance_private (ES_STREAM_FACTORY (object));

  switch (prop_id)
    {
    case PROP_STORAGE:
      g_value_set_object (value, priv->storage);
      break;
    case PROP_NOTIFIER:
      g_value_set_object (value, priv->notifier);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stream_factory_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  EsStreamFactoryPrivate *priv =
    es_stream_factory_get_instance_private (ES_STREAM_FACTORY (object));

  switch (prop_id)
    {
    case PROP_STORAGE:
      g_set_object (&priv->storage, g_value_get_object (value));
      break;
    case PROP_NOTIFIER:
      g_set_object (&priv->notifier, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stream_factory_class_init (EsStreamFactoryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->dispose = es_stream_factory_dispose;
  object_class->finalize = es_stream_factory_finalize;
  object_class->get_property = es_stream_factory_get_property;
  object_class->set_property = es_stream_factory_set_property;

  /**
   * EsStreamFactory:storage:
   *
   * The storage backend the factory's streams read and write through.
   *
   * Since: 0.1
   */
  properties[PROP_STORAGE] =
    g_param_spec_object ("storage", NULL, NULL, ES_TYPE_STORAGE_HANDLE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsStreamFactory:notifier:
   *
   * The notifier that keeps watches live, or %NULL when the backend has
   * none.
   *
   * Since: 0.1
   */
  properties[PROP_NOTIFIER] =
    g_param_spec_object ("notifier", NULL, NULL, ES_TYPE_NOTIFIER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_stream_factory_init (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  g_mutex_init (&priv->watches_lock);
  priv->watches = g_hash_table_new_full (NULL, NULL, NULL, weak_ref_free);
}

/**
 * es_stream_factory_new:
 * @storage: the storage backend
 * @notifier: (nullable): the backend's notifier, or %NULL
 *
 * Creates a factory on a storage backend. The factory owns the backend's
 * lifecycle from then on: closing the factory closes @storage and stops
 * @notifier.
 *
 * Returns: (transfer full): a new factory
 *
 * Since: 0.1
 */
EsStreamFactory *
es_stream_factory_new (EsStorageHandle *storage,
                       EsNotifier      *notifier)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (storage), NULL);
  g_return_val_if_fail (notifier == NULL || ES_IS_NOTIFIER (notifier), NULL);

  return g_object_new (ES_TYPE_STREAM_FACTORY,
                       "storage", storage,
                       "notifier", notifier,
                       NULL);
}

/**
 * es_stream_factory_set_backend:
 * @self: an [class@Es.StreamFactory]
 * @storage: the backend's storage
 * @notifier: (nullable): the backend's notifier, or %NULL for none
 *
 * For subclasses: attaches the backend that the subclass opens itself,
 * typically in its [iface@Gio.Initable] init (as
 * [class@Es.SqliteStreamFactory] does), rather than passing it as the
 * construct-only [property@Es.StreamFactory:storage] and
 * [property@Es.StreamFactory:notifier]. Call it once, before the factory
 * is used (opens a stream) and from the thread that constructs it; the
 * factory then owns the backend's lifecycle as with
 * [ctor@Es.StreamFactory.new].
 *
 * Since: 0.2
 */
void
es_stream_factory_set_backend (EsStreamFactory *self,
                               EsStorageHandle *storage,
                               EsNotifier      *notifier)
{
  EsStreamFactoryPrivate *priv;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (ES_IS_STORAGE_HANDLE (storage));
  g_return_if_fail (notifier == NULL || ES_IS_NOTIFIER (notifier));

  priv = es_stream_factory_get_instance_private (self);
  g_return_if_fail (priv->storage == NULL);

  g_set_object (&priv->storage, storage);
  g_set_object (&priv->notifier, notifier);
}

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

/* Watches register here so that close() reaches each of them at once,
 * wherever their main context is; they unregister as they are disposed. */
void
_es_stream_factory_add_watch (EsStreamFactory *self,
                              EsWatch         *watch)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  g_weak_ref_init (ref, watch);
  g_mutex_lock (&priv->watches_lock);
  g_hash_table_insert (priv->watches, watch, ref);
  g_mutex_unlock (&priv->watches_lock);
}

void
_es_stream_factory_remove_watch (EsStreamFactory *self,
                                 EsWatch         *watch)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  g_mutex_lock (&priv->watches_lock);
  g_hash_table_remove (priv->watches, watch);
  g_mutex_unlock (&priv->watches_lock);
}

/* Stops every watch of the factory; each stop waits for an emission in
 * progress in another thread. The lock is not held meanwhile: a handler
 * running in that thread may start a watch. */
static void
stop_watches (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  g_autoptr(GPtrArray) watches = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer value;

  g_mutex_lock (&priv->watches_lock);
  g_hash_table_iter_init (&iter, priv->watches);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      EsWatch *watch = g_weak_ref_get (value);

      /* NULL: it is being disposed, which stops it. */
      if (watch != NULL)
        g_ptr_array_add (watches, watch);
    }
  g_mutex_unlock (&priv->watches_lock);

  for (guint i = 0; i < watches->len; i++)
    es_watch_stop (g_ptr_array_index (watches, i));
}

gboolean
_es_stream_factory_check_open (EsStreamFactory  *self,
                               GError          **error)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  if (g_atomic_int_get (&priv->closed) || priv->storage == NULL)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED,
                           _("The event stream factory is closed"));
      return FALSE;
    }
  return TRUE;
}

/**
 * es_stream_factory_get_storage:
 * @self: an [class@Es.StreamFactory]
 *
 * Gets the factory's storage backend.
 *
 * Returns: (transfer none): the storage
 *
 * Since: 0.1
 */
EsStorageHandle *
es_stream_factory_get_storage (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);

  priv = es_stream_factory_get_instance_private (self);
  return priv->storage;
}

/**
 * es_stream_factory_get_notifier:
 * @self: an [class@Es.StreamFactory]
 *
 * Gets the factory's notifier.
 *
 * Returns: (transfer none) (nullable): the notifier, or %NULL
 *
 * Since: 0.1
 */
EsNotifier *
es_stream_factory_get_notifier (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);

  priv = es_stream_factory_get_instance_private (self);
  return priv->notifier;
}

/**
 * es_stream_factory_is_closed:
 * @self: an [class@Es.StreamFactory]
 *
 * Whether [method@Es.StreamFactory.close] was called.
 *
 * Returns: %TRUE when closed
 *
 * Since: 0.1
 */
gboolean
es_stream_factory_is_closed (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), TRUE);

  priv = es_stream_factory_get_instance_private (self);
  return g_atomic_int_get (&priv->closed);
}

/**
 * es_stream_factory_open_stream:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the stream's id: non-empty UTF-8 of at most 1024 bytes, not
 *   starting with `@`, or %ES_ALL_STREAM
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Opens a handle on a stream, reading its current version. A stream
 * exists once something is written to it; opening an empty one is fine
 * (its version is 0).
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for an invalid @stream_id, with
 * %ES_ERROR_CLOSED after [method@Es.StreamFactory.close].
 *
 * Returns: (transfer full): the stream, or %NULL on error
 *
 * Since: 0.1
 */
EsStream *
es_stream_factory_open_stream (EsStreamFactory  *self,
                               const char       *stream_id,
                               GCancellable     *cancellable,
                               GError          **error)
{
  EsStreamFactoryPrivate *priv;
  gboolean is_all;
  gint64 version = 0;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (stream_id != NULL, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  priv = es_stream_factory_get_instance_private (self);

  if (g_cancellable_set_error_if_cancelled (cancellable, error) ||
      !_es_stream_factory_check_open (self, error) ||
      !_es_validate_stream_id (stream_id, TRUE, error))
    return NULL;

  is_all = g_str_equal (stream_id, ES_ALL_STREAM);
  if (!es_storage_handle_get_version (priv->storage, is_all ? NULL : stream_id, &version,
                                      cancellable, error))
    return NULL;

  return _es_stream_impl_new (self, stream_id, version);
}

static void
open_stream_in_thread (GTask        *task,
                       gpointer      source_object,
                       gpointer      task_data,
                       GCancellable *cancellable)
{
  GError *error = NULL;
  EsStream *stream;

  stream = es_stream_factory_open_stream (source_object, task_data, cancellable, &error);
  if (stream == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, stream, g_object_unref);
}

/**
 * es_stream_factory_open_stream_async:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the stream's id, or %ES_ALL_STREAM
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the stream is open
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.open_stream] without blocking.
 *
 * Since: 0.1
 */
void
es_stream_factory_open_stream_async (EsStreamFactory     *self,
                                     const char          *stream_id,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (stream_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_stream_factory_open_stream_async);
  g_task_set_task_data (task, g_strdup (stream_id), g_free);
  g_task_run_in_thread (task, open_stream_in_thread);
}

/**
 * es_stream_factory_open_stream_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.open_stream_async].
 *
 * Returns: (transfer full): the stream, or %NULL on error
 *
 * Since: 0.1
 */
EsStream *
es_stream_factory_open_stream_finish (EsStreamFactory  *self,
                                      GAsyncResult     *result,
                                      GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_factory_open_stream_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_factory_close:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Closes the factory: stops every watch and the notifier, lets writes
 * already accepted finish, and releases every database connection.
 * Afterwards every operation on the factory and its streams fails with
 * %ES_ERROR_CLOSED. Closing twice is harmless.
 *
 * Once this returns, no watch of the factory emits
 * [signal@Es.Watch::event] again, not even the events it had already read
 * or queued, and every watch is inactive
 * ([property@Es.Watch:active] is %FALSE, after a `notify::active`). This
 * holds when it is called from a signal handler of a watch (the emission
 * in progress completes, none follows) and from another thread: then no
 * emission begins once the close has begun, and the close waits for an
 * emission in progress in a watch's thread to complete, so a handler must
 * not wait for the thread that closes. The watches stop quietly, without
 * [signal@Es.Watch::error].
 *
 * Returns: %TRUE on success; on failure the factory is closed all the same
 *
 * Since: 0.1
 */
gboolean
es_stream_factory_close (EsStreamFactory  *self,
                         GCancellable     *cancellable,
                         GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);

  /* Only the first caller closes; the rest have nothing to do. */
  if (!g_atomic_int_compare_and_exchange (&priv->closed, FALSE, TRUE))
    return TRUE;

  /* From here on no watch of the factory begins emitting an event (they
   * check the flag just set); stopping them makes them inactive now and
   * waits for an emission in progress in another thread. */
  stop_watches (self);
  if (priv->notifier != NULL)
    es_notifier_stop (priv->notifier);
  if (priv->storage != NULL)
    return es_storage_handle_close (priv->storage, cancellable, error);
  return TRUE;
}

static void
close_in_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  GError *error = NULL;

  if (es_stream_factory_close (source_object, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/**
 * es_stream_factory_close_async:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the factory is closed
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.close] without blocking.
 *
 * Since: 0.1
 */
void
es_stream_factory_close_async (EsStreamFactory     *self,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_stream_factory_close_async);
  g_task_run_in_thread (task, close_in_thread);
}

/**
 * es_stream_factory_close_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.close_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_stream_factory_close_finish (EsStreamFactory  *self,
                                GAsyncResult     *result,
                                GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_factory_close_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
