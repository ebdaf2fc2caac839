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
 * ## Stream life cycle
 *
 * Since 0.2 the factory also manages the streams of its database as a
 * whole: [method@Es.StreamFactory.list_streams] and
 * [method@Es.StreamFactory.get_stream_info] tell what streams exist
 * without reading their events; [method@Es.StreamFactory.delete_stream]
 * (soft, or hard with a tombstone), [method@Es.StreamFactory.truncate_stream]
 * and [method@Es.StreamFactory.erase_event] remove events for good;
 * [method@Es.StreamFactory.set_retention] keeps streams within a maximum
 * age and count, enforced on every write and by a sweep that the factory
 * runs in the background ([property@Es.StreamFactory:sweep-interval]);
 * [method@Es.StreamFactory.compact] gives the space back. Each operation
 * is one transaction (a sweep several, each complete): it is done or not
 * done, even if the process is killed.
 *
 * Readers meet these operations in a documented way: an
 * [class@Es.EventEnumerator] reads page by page, so events removed
 * meanwhile are missing from the pages it has not read yet (it never
 * returns an event twice or out of order); a [class@Es.Watch] of a stream
 * that is hard-deleted, by this process or another, emits
 * [signal@Es.Watch::error] with %ES_ERROR_STREAM_DELETED and stops; soft
 * deletes, truncations and erasures do not disturb watches.
 *
 * Since: 0.1
 */

#define DEFAULT_SWEEP_INTERVAL 3600

typedef struct
{
  EsStorageHandle *storage;   /* (owned) (nullable until a subclass sets it) */
  EsNotifier      *notifier;  /* (owned) (nullable) */
  gint             closed;    /* (atomic) */
  GMutex           watches_lock;
  GHashTable      *watches;   /* (owned) EsWatch * → (owned) GWeakRef *, guarded by watches_lock */
  GHashTable      *subscriptions; /* (owned) EsSubscription * → (owned) GWeakRef *, guarded by watches_lock */

  /* The background sweep: a thread that exists only while there is
   * something to do (the first sweep after creation, then only while an
   * age policy exists), waiting on sweep_cond in between. Everything
   * below is guarded by sweep_lock. */
  GMutex           sweep_lock;
  GCond            sweep_cond;
  GThread         *sweeper;            /* (owned) (nullable) joined by the next start or close */
  gboolean         sweeper_running;    /* the thread is in its loop */
  gboolean         sweep_first;        /* the thread sweeps as it starts */
  gboolean         sweep_closing;      /* close() began: the thread ends */
  gboolean         has_age_policy;     /* as the last sweep (or set_retention) found */
  guint            sweep_interval;     /* seconds, 0: never */
  gint64           last_sweep;         /* monotonic time of the last sweep */
  guint            n_sweeps;           /* background sweeps completed, for tests */
  GCancellable    *sweep_cancellable;  /* (owned) cancelled by close() */
} EsStreamFactoryPrivate;

enum {
  PROP_0,
  PROP_STORAGE,
  PROP_NOTIFIER,
  PROP_SWEEP_INTERVAL,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_TYPE_WITH_PRIVATE (EsStreamFactory, es_stream_factory, G_TYPE_OBJECT)

static void weak_ref_free (gpointer data);
static void start_sweeper_locked (EsStreamFactory *self,
                                  gboolean         sweep_first);
static void stop_sweeper (EsStreamFactory *self);
static guint get_sweep_interval (EsStreamFactory *self);
static void set_sweep_interval (EsStreamFactory *self,
                                guint            interval);

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
  g_clear_pointer (&priv->subscriptions, g_hash_table_unref);
  g_mutex_clear (&priv->watches_lock);
  g_assert (priv->sweeper == NULL);
  g_clear_object (&priv->sweep_cancellable);
  g_mutex_clear (&priv->sweep_lock);
  g_cond_clear (&priv->sweep_cond);

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
    case PROP_SWEEP_INTERVAL:
      g_value_set_uint (value, get_sweep_interval (ES_STREAM_FACTORY (object)));
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
    case PROP_SWEEP_INTERVAL:
      set_sweep_interval (ES_STREAM_FACTORY (object), g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

/* The first background sweep, once the factory has its storage. */
static void
start_first_sweep (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  g_mutex_lock (&priv->sweep_lock);
  if (priv->sweep_interval > 0 && priv->storage != NULL)
    start_sweeper_locked (self, TRUE);
  g_mutex_unlock (&priv->sweep_lock);
}

static void
es_stream_factory_constructed (GObject *object)
{
  EsStreamFactory *self = ES_STREAM_FACTORY (object);

  G_OBJECT_CLASS (es_stream_factory_parent_class)->constructed (object);

  /* A subclass that attaches its backend later starts it from
   * es_stream_factory_set_backend(). */
  start_first_sweep (self);
}

static void
es_stream_factory_class_init (EsStreamFactoryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->constructed = es_stream_factory_constructed;
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

  /**
   * EsStreamFactory:sweep-interval:
   *
   * How often, in seconds, the factory enforces the retention policies
   * with a maximum age in the background (see
   * [method@Es.StreamFactory.sweep]); 0 for never.
   *
   * The factory sweeps once in a worker thread soon after it is created
   * (a read-only database fails that sweep, which is ignored), then every
   * `sweep-interval` seconds, but only while a policy with a maximum age
   * exists: a database without one has no timer at all, and
   * [method@Es.StreamFactory.set_retention] with an age through this
   * factory starts it. Maximum counts need no sweep: every write enforces
   * them. [method@Es.StreamFactory.close] cancels a sweep in progress and
   * waits for it.
   *
   * Since: 0.2
   */
  properties[PROP_SWEEP_INTERVAL] =
    g_param_spec_uint ("sweep-interval", NULL, NULL, 0, G_MAXUINT, DEFAULT_SWEEP_INTERVAL,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY |
                       G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_stream_factory_init (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  g_mutex_init (&priv->watches_lock);
  priv->watches = g_hash_table_new_full (NULL, NULL, NULL, weak_ref_free);
  priv->subscriptions = g_hash_table_new_full (NULL, NULL, NULL, weak_ref_free);
  g_mutex_init (&priv->sweep_lock);
  g_cond_init (&priv->sweep_cond);
  priv->sweep_interval = DEFAULT_SWEEP_INTERVAL;
  priv->sweep_cancellable = g_cancellable_new ();
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
  start_first_sweep (self);
}

/* ---------------------------------------------------------------------- *
 * The background sweep                                                    *
 * ---------------------------------------------------------------------- */

static gpointer
sweeper_thread (gpointer data)
{
  EsStreamFactory *self = data;  /* close() joins this thread before the factory goes */
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  gboolean sweep_now;

  g_mutex_lock (&priv->sweep_lock);
  sweep_now = priv->sweep_first;
  for (;;)
    {
      if (priv->sweep_closing)
        break;

      if (sweep_now)
        {
          g_autoptr(EsStorageHandle) storage = g_object_ref (priv->storage);
          g_autoptr(GError) error = NULL;
          gboolean has_age_policy = FALSE;
          gint64 removed;

          g_mutex_unlock (&priv->sweep_lock);
          removed = es_storage_handle_sweep (storage, g_get_real_time (), &has_age_policy,
                                             priv->sweep_cancellable, &error);
          g_mutex_lock (&priv->sweep_lock);

          priv->last_sweep = g_get_monotonic_time ();
          priv->n_sweeps++;
          if (removed > 0)
            _es_stream_factory_changed (self, ES_FACTORY_CHANGE_SWEPT, NULL, removed);
          /* A failed sweep (a read-only database, a backend without
           * retention, a database gone) is not the application's
           * business: the next write or sweep reports real problems. It
           * leaves what set_retention() said. */
          if (removed >= 0)
            priv->has_age_policy = has_age_policy;
          else
            g_debug ("Background sweep failed: %s", error->message);
          g_cond_broadcast (&priv->sweep_cond);
          if (priv->sweep_closing)
            break;
        }
      sweep_now = TRUE;

      /* Wait for the next sweep, as long as one is needed; a change of
       * interval or policy wakes the wait to look again. */
      for (;;)
        {
          gint64 deadline;

          if (priv->sweep_closing || !priv->has_age_policy || priv->sweep_interval == 0)
            goto out;
          deadline = priv->last_sweep + (gint64) priv->sweep_interval * G_USEC_PER_SEC;
          if (g_get_monotonic_time () >= deadline)
            break;
          g_cond_wait_until (&priv->sweep_cond, &priv->sweep_lock, deadline);
        }
    }

out:
  priv->sweeper_running = FALSE;
  g_cond_broadcast (&priv->sweep_cond);
  g_mutex_unlock (&priv->sweep_lock);
  return NULL;
}

/* Called with sweep_lock held: makes sure the sweeper runs, sweeping at
 * once if @sweep_first, else after an interval from now. */
static void
start_sweeper_locked (EsStreamFactory *self,
                      gboolean         sweep_first)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  g_autoptr(GError) error = NULL;

  if (priv->sweep_closing || priv->storage == NULL)
    return;

  if (priv->sweeper_running)
    {
      /* It looks at the policy and the interval again. */
      g_cond_broadcast (&priv->sweep_cond);
      return;
    }

  /* A thread that ended its loop: it needs the lock no more. */
  if (priv->sweeper != NULL)
    g_thread_join (g_steal_pointer (&priv->sweeper));

  priv->sweep_first = sweep_first;
  if (!sweep_first)
    priv->last_sweep = g_get_monotonic_time ();
  priv->sweeper_running = TRUE;
  priv->sweeper = g_thread_try_new ("es-sweep", sweeper_thread, self, &error);
  if (priv->sweeper == NULL)
    {
      priv->sweeper_running = FALSE;
      g_warning ("Cannot start the background sweep: %s", error->message);
    }
}

/* close(): cancels a sweep in progress and waits for the thread. */
static void
stop_sweeper (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  GThread *thread;

  g_mutex_lock (&priv->sweep_lock);
  priv->sweep_closing = TRUE;
  thread = g_steal_pointer (&priv->sweeper);
  g_cond_broadcast (&priv->sweep_cond);
  g_mutex_unlock (&priv->sweep_lock);

  g_cancellable_cancel (priv->sweep_cancellable);
  if (thread != NULL)
    g_thread_join (thread);
}

/* After set_retention() or sweep() through the factory. */
static void
learn_age_policy (EsStreamFactory *self,
                  gboolean         has_age_policy)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  g_mutex_lock (&priv->sweep_lock);
  if (has_age_policy)
    priv->has_age_policy = TRUE;
  if (priv->has_age_policy && priv->sweep_interval > 0)
    start_sweeper_locked (self, FALSE);
  g_mutex_unlock (&priv->sweep_lock);
}

static guint
get_sweep_interval (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  guint interval;

  g_mutex_lock (&priv->sweep_lock);
  interval = priv->sweep_interval;
  g_mutex_unlock (&priv->sweep_lock);
  return interval;
}

static void
set_sweep_interval (EsStreamFactory *self,
                    guint            interval)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  gboolean changed;

  g_mutex_lock (&priv->sweep_lock);
  changed = priv->sweep_interval != interval;
  priv->sweep_interval = interval;
  if (changed && interval > 0 && priv->has_age_policy)
    start_sweeper_locked (self, FALSE);
  else if (changed)
    g_cond_broadcast (&priv->sweep_cond);
  g_mutex_unlock (&priv->sweep_lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SWEEP_INTERVAL]);
}

/* For tests: the background sweeps completed so far, and whether the
 * sweeper thread is waiting for another one. */
guint
_es_stream_factory_get_n_sweeps (EsStreamFactory *self,
                                 gboolean        *out_armed)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  guint n;

  g_mutex_lock (&priv->sweep_lock);
  n = priv->n_sweeps;
  if (out_armed != NULL)
    *out_armed = priv->sweeper_running;
  g_mutex_unlock (&priv->sweep_lock);
  return n;
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

void
_es_stream_factory_add_subscription (EsStreamFactory *self,
                                     EsSubscription  *subscription)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  g_weak_ref_init (ref, subscription);
  g_mutex_lock (&priv->watches_lock);
  g_hash_table_insert (priv->subscriptions, subscription, ref);
  g_mutex_unlock (&priv->watches_lock);
}

void
_es_stream_factory_remove_subscription (EsStreamFactory *self,
                                        EsSubscription  *subscription)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);

  g_mutex_lock (&priv->watches_lock);
  g_hash_table_remove (priv->subscriptions, subscription);
  g_mutex_unlock (&priv->watches_lock);
}

/* Stops every subscription of the factory as es_subscription_stop()
 * does: what is pending is stored while the storage is still open. */
static void
stop_subscriptions (EsStreamFactory *self)
{
  EsStreamFactoryPrivate *priv = es_stream_factory_get_instance_private (self);
  g_autoptr(GPtrArray) subscriptions = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer value;

  g_mutex_lock (&priv->watches_lock);
  g_hash_table_iter_init (&iter, priv->subscriptions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      EsSubscription *subscription = g_weak_ref_get (value);

      if (subscription != NULL)
        g_ptr_array_add (subscriptions, subscription);
    }
  g_mutex_unlock (&priv->watches_lock);

  for (guint i = 0; i < subscriptions->len; i++)
    _es_subscription_close (g_ptr_array_index (subscriptions, i));
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

/* A hard delete through this factory ends its watches of the stream at
 * once, without waiting for the notifier to deliver the tombstone. */
static void
end_watches_of_stream (EsStreamFactory *self,
                       const char      *stream_id)
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

      if (watch != NULL && g_strcmp0 (es_watch_get_stream_id (watch), stream_id) == 0)
        g_ptr_array_add (watches, watch);
      else
        g_clear_object (&watch);
    }
  g_mutex_unlock (&priv->watches_lock);

  for (guint i = 0; i < watches->len; i++)
    _es_watch_stream_tombstoned (g_ptr_array_index (watches, i));
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
 * Closes the factory: stops every subscription (storing its pending
 * checkpoint, as [method@Es.Subscription.stop] does), every watch and the
 * notifier, cancels and
 * waits for a background sweep, lets writes already accepted finish, and
 * releases every database connection.
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

  /* A background sweep is cancelled and waited for before the storage
   * goes. */
  stop_sweeper (self);

  /* Subscriptions first: they store their pending checkpoints and give
   * their names back while the storage is open. */
  stop_subscriptions (self);

  /* From here on no watch of the factory begins emitting an event (they
   * check the flag just set); stopping them makes them inactive now and
   * waits for an emission in progress in another thread. */
  stop_watches (self);
  _es_stream_factory_changed (self, ES_FACTORY_CHANGE_CLOSED, NULL, 0);
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

/* ---------------------------------------------------------------------- *
 * Stream life cycle (0.2)                                                 *
 * ---------------------------------------------------------------------- */

/* Each _async method runs its synchronous twin in GTask's thread pool;
 * one operation record and one thread function serve them all. */
typedef enum
{
  FACTORY_OP_LIST_STREAMS,
  FACTORY_OP_GET_STREAM_INFO,
  FACTORY_OP_DELETE_STREAM,
  FACTORY_OP_TRUNCATE_STREAM,
  FACTORY_OP_ERASE_EVENT,
  FACTORY_OP_SET_RETENTION,
  FACTORY_OP_SWEEP,
  FACTORY_OP_COMPACT,
  FACTORY_OP_LIST_SUBSCRIPTIONS,
  FACTORY_OP_GET_SUBSCRIPTION_INFO,
  FACTORY_OP_RESET_SUBSCRIPTION,
  FACTORY_OP_DELETE_SUBSCRIPTION,
  FACTORY_OP_ADD_METADATA_INDEX,
  FACTORY_OP_REMOVE_METADATA_INDEX,
  FACTORY_OP_LIST_METADATA_INDEXES,
} FactoryOpKind;

typedef struct
{
  FactoryOpKind kind;
  char         *stream_id;  /* (owned) (nullable) also the prefix of a listing, a subscription
                             * name, a metadata path */
  gint64        number;     /* expected version, before version, version, max count */
  GTimeSpan     max_age;
  guint         flags;
} FactoryOp;

static void
factory_op_free (gpointer data)
{
  FactoryOp *op = data;

  g_free (op->stream_id);
  g_free (op);
}

static void
factory_op_in_thread (GTask        *task,
                      gpointer      source_object,
                      gpointer      task_data,
                      GCancellable *cancellable)
{
  EsStreamFactory *self = source_object;
  FactoryOp *op = task_data;
  GError *error = NULL;

  switch (op->kind)
    {
    case FACTORY_OP_LIST_STREAMS:
      {
        EsStreamInfoEnumerator *streams =
          es_stream_factory_list_streams (self, op->stream_id, op->flags, cancellable, &error);
        if (streams != NULL)
          g_task_return_pointer (task, streams, g_object_unref);
      }
      break;
    case FACTORY_OP_GET_STREAM_INFO:
      {
        EsStreamInfo *info =
          es_stream_factory_get_stream_info (self, op->stream_id, cancellable, &error);
        if (info != NULL)
          g_task_return_pointer (task, info, g_object_unref);
      }
      break;
    case FACTORY_OP_DELETE_STREAM:
      if (es_stream_factory_delete_stream (self, op->stream_id, op->number, op->flags,
                                           cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_TRUNCATE_STREAM:
      if (es_stream_factory_truncate_stream (self, op->stream_id, op->number,
                                             cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_ERASE_EVENT:
      if (es_stream_factory_erase_event (self, op->stream_id, op->number, cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_SET_RETENTION:
      if (es_stream_factory_set_retention (self, op->stream_id, op->max_age, op->number,
                                           cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_SWEEP:
      {
        gint64 removed = es_stream_factory_sweep (self, cancellable, &error);
        if (removed >= 0)
          _es_task_return_int64 (task, removed);
      }
      break;
    case FACTORY_OP_COMPACT:
      if (es_stream_factory_compact (self, cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_LIST_SUBSCRIPTIONS:
      {
        GPtrArray *list = es_stream_factory_list_subscriptions (self, cancellable, &error);
        if (list != NULL)
          g_task_return_pointer (task, list, (GDestroyNotify) g_ptr_array_unref);
      }
      break;
    case FACTORY_OP_GET_SUBSCRIPTION_INFO:
      {
        EsSubscriptionInfo *info =
          es_stream_factory_get_subscription_info (self, op->stream_id, cancellable, &error);
        if (info != NULL)
          g_task_return_pointer (task, info, g_object_unref);
      }
      break;
    case FACTORY_OP_RESET_SUBSCRIPTION:
      if (es_stream_factory_reset_subscription (self, op->stream_id, op->number,
                                                cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_DELETE_SUBSCRIPTION:
      if (es_stream_factory_delete_subscription (self, op->stream_id, cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_ADD_METADATA_INDEX:
      if (es_stream_factory_add_metadata_index (self, op->stream_id, cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_REMOVE_METADATA_INDEX:
      if (es_stream_factory_remove_metadata_index (self, op->stream_id, cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case FACTORY_OP_LIST_METADATA_INDEXES:
      {
        GStrv paths = es_stream_factory_list_metadata_indexes (self, cancellable, &error);
        if (paths != NULL)
          g_task_return_pointer (task, paths, (GDestroyNotify) g_strfreev);
      }
      break;
    default:
      g_assert_not_reached ();
    }

  if (error != NULL)
    g_task_return_error (task, error);
}

static void
run_factory_op (EsStreamFactory     *self,
                FactoryOpKind        kind,
                const char          *stream_id,
                gint64               number,
                GTimeSpan            max_age,
                guint                flags,
                gpointer             source_tag,
                GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  FactoryOp *op = g_new0 (FactoryOp, 1);

  op->kind = kind;
  op->stream_id = g_strdup (stream_id);
  op->number = number;
  op->max_age = max_age;
  op->flags = flags;

  g_task_set_source_tag (task, source_tag);
  /* An operation that took effect is reported as done even if the
   * cancellable fired meanwhile (G_IO_ERROR_CANCELLED means nothing
   * changed): the synchronous method decides, GTask must not override
   * it. Reads may as well report the cancellation. */
  if (kind != FACTORY_OP_LIST_STREAMS && kind != FACTORY_OP_GET_STREAM_INFO &&
      kind != FACTORY_OP_LIST_SUBSCRIPTIONS && kind != FACTORY_OP_GET_SUBSCRIPTION_INFO &&
      kind != FACTORY_OP_LIST_METADATA_INDEXES)
    g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, op, factory_op_free);
  g_task_run_in_thread (task, factory_op_in_thread);
}

static gboolean
propagate_boolean (EsStreamFactory  *self,
                   GAsyncResult     *result,
                   gpointer          source_tag,
                   GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, source_tag), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* What every life-cycle call checks first. */
static gboolean
check_usable (EsStreamFactory  *self,
              GCancellable     *cancellable,
              GError          **error)
{
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  return _es_stream_factory_check_open (self, error);
}

/**
 * es_stream_factory_list_streams:
 * @self: an [class@Es.StreamFactory]
 * @prefix: (nullable): only list the streams whose id starts with this
 *   (compared byte for byte, case-sensitively: `%` and `_` are not
 *   wildcards), or %NULL (or `""`) for all
 * @flags: %ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED to list soft-deleted and
 *   tombstoned streams too
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Lists the streams of the database in byte-wise order of their ids,
 * through an enumerator that reads a page at a time. The backend reads
 * what it keeps per stream, never the streams' events: listing 100,000
 * streams does not read a single event.
 *
 * By default the listing holds the active streams, including those
 * emptied by a truncation or retention (with an event count of 0); soft-
 * deleted and tombstoned streams only with
 * %ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED. A stream nobody wrote to is not
 * listed, unless a retention policy was set on it.
 *
 * The first page is read before this returns, so that a closed factory
 * or a storage error shows at once. Fails with %ES_ERROR_INVALID_ARGUMENT
 * for a @prefix that is not valid UTF-8 or unknown @flags, with
 * %ES_ERROR_CLOSED after [method@Es.StreamFactory.close].
 *
 * Returns: (transfer full): an enumerator of [class@Es.StreamInfo], or
 *   %NULL on error
 *
 * Since: 0.2
 */
EsStreamInfoEnumerator *
es_stream_factory_list_streams (EsStreamFactory     *self,
                                const char          *prefix,
                                EsListStreamsFlags   flags,
                                GCancellable        *cancellable,
                                GError             **error)
{
  EsStreamFactoryPrivate *priv;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return NULL;

  if ((flags & ~ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED) != 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %#x is a number in hexadecimal */
                   _("Stream listing flags %#x are not known"), (guint) flags);
      return NULL;
    }

  streams = _es_stream_info_enumerator_new (priv->storage, prefix, flags);
  if (!_es_stream_info_enumerator_fill (streams, cancellable, error))
    return NULL;

  return g_steal_pointer (&streams);
}

/**
 * es_stream_factory_list_streams_async:
 * @self: an [class@Es.StreamFactory]
 * @prefix: (nullable): only list the streams whose id starts with this,
 *   or %NULL for all
 * @flags: what to list
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the first page is read
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.list_streams] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_list_streams_async (EsStreamFactory     *self,
                                      const char          *prefix,
                                      EsListStreamsFlags   flags,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_LIST_STREAMS, prefix, 0, 0, flags,
                  es_stream_factory_list_streams_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_list_streams_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.list_streams_async].
 *
 * Returns: (transfer full): an enumerator of [class@Es.StreamInfo], or
 *   %NULL on error
 *
 * Since: 0.2
 */
EsStreamInfoEnumerator *
es_stream_factory_list_streams_finish (EsStreamFactory  *self,
                                       GAsyncResult     *result,
                                       GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_factory_list_streams_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_factory_get_stream_info:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: (nullable): a stream id, or %NULL (or %ES_ALL_STREAM) for
 *   the whole database
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Looks up what is known of a stream without reading its events: its
 * state, version, number of events, first version, first and last
 * timestamps and retention policy (see [class@Es.StreamInfo]). A stream
 * nobody wrote to is active, at version 0, without events or policy.
 *
 * For the whole database the version is the last position used, the
 * count and timestamps those of every stream, the policy the
 * database-wide one.
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for an invalid @stream_id, with
 * %ES_ERROR_CLOSED after [method@Es.StreamFactory.close].
 *
 * Returns: (transfer full): the information, or %NULL on error
 *
 * Since: 0.2
 */
EsStreamInfo *
es_stream_factory_get_stream_info (EsStreamFactory  *self,
                                   const char       *stream_id,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return NULL;

  return es_storage_handle_get_stream_info (priv->storage, stream_id, cancellable, error);
}

/**
 * es_stream_factory_get_stream_info_async:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: (nullable): a stream id, or %NULL for the whole database
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the information is read
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.get_stream_info] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_get_stream_info_async (EsStreamFactory     *self,
                                         const char          *stream_id,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_GET_STREAM_INFO, stream_id, 0, 0, 0,
                  es_stream_factory_get_stream_info_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_get_stream_info_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.get_stream_info_async].
 *
 * Returns: (transfer full): the information, or %NULL on error
 *
 * Since: 0.2
 */
EsStreamInfo *
es_stream_factory_get_stream_info_finish (EsStreamFactory  *self,
                                          GAsyncResult     *result,
                                          GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result,
                                                  es_stream_factory_get_stream_info_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_factory_delete_stream:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the stream to delete, not <code>@<!-- -->all</code>
 * @expected_version: the version the stream must be at, or
 *   %ES_VERSION_ANY (-1)
 * @flags: %ES_DELETE_FLAGS_NONE for a soft delete,
 *   %ES_DELETE_FLAGS_TOMBSTONE for a hard delete
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Deletes every event of a stream and its snapshots, in one transaction
 * with the expected-version check. The events are removed from the
 * database, their bytes overwritten, not merely hidden: "clear my
 * history" is true ([method@Es.StreamFactory.compact] then gives the
 * space back to the file system).
 *
 * A soft delete keeps the stream's version: the stream is listed as
 * deleted ([enum@Es.StreamState]) until it is written again; the next
 * write expects that version (or %ES_VERSION_ANY) and continues after it,
 * so old expected versions stay meaningful. A hard delete
 * (%ES_DELETE_FLAGS_TOMBSTONE) leaves a tombstone: every later write
 * fails with %ES_ERROR_STREAM_DELETED, watches of the stream (in this
 * process at once, in others when their notifier sees it) emit
 * [signal@Es.Watch::error] with %ES_ERROR_STREAM_DELETED and stop, and
 * hard-deleting it again succeeds without a change. Deleting a stream
 * nobody wrote to succeeds.
 *
 * Idempotency keys go with their events: a retry of a deleted write
 * writes its events again, at new versions.
 *
 * Every delete takes a position in the global order (a sequence id no
 * event gets): sequence ids have gaps, and are never used twice.
 *
 * Fails with %ES_ERROR_WRONG_EXPECTED_VERSION when the stream is not at
 * @expected_version, with %ES_ERROR_STREAM_DELETED for a soft delete of a
 * tombstoned stream, with %ES_ERROR_INVALID_ARGUMENT for
 * <code>@<!-- -->all</code>, an invalid @stream_id, an @expected_version
 * below -1 or unknown @flags; in every case nothing changed.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_delete_stream (EsStreamFactory  *self,
                                 const char       *stream_id,
                                 gint64            expected_version,
                                 EsDeleteFlags     flags,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (!es_storage_handle_delete_stream (priv->storage, stream_id, expected_version, flags,
                                        cancellable, error))
    return FALSE;

  if ((flags & ES_DELETE_FLAGS_TOMBSTONE) != 0)
    end_watches_of_stream (self, stream_id);
  _es_stream_factory_changed (self, ES_FACTORY_CHANGE_DELETED, stream_id, 0);
  /* The delete took a position: other readers of the notifier (the
   * tombstone marker, the version of @all) learn it now. */
  if (priv->notifier != NULL)
    es_notifier_committed (priv->notifier);
  return TRUE;
}

/**
 * es_stream_factory_delete_stream_async:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the stream to delete
 * @expected_version: the version the stream must be at, or
 *   %ES_VERSION_ANY
 * @flags: how to delete
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the stream is deleted
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.delete_stream] without blocking. A
 * delete that took effect is reported done even if @cancellable fired
 * meanwhile: %G_IO_ERROR_CANCELLED means nothing changed.
 *
 * Since: 0.2
 */
void
es_stream_factory_delete_stream_async (EsStreamFactory     *self,
                                       const char          *stream_id,
                                       gint64               expected_version,
                                       EsDeleteFlags        flags,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_DELETE_STREAM, stream_id, expected_version, 0, flags,
                  es_stream_factory_delete_stream_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_delete_stream_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.delete_stream_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_delete_stream_finish (EsStreamFactory  *self,
                                        GAsyncResult     *result,
                                        GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_delete_stream_async, error);
}

/**
 * es_stream_factory_truncate_stream:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the stream to truncate, not <code>@<!-- -->all</code>
 * @before_version: remove the events with a version smaller than this,
 *   from 1 to the stream's current version
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Removes a stream's oldest events, typically those a snapshot already
 * folds: every event with a version smaller than @before_version, in one
 * transaction, for good (as [method@Es.StreamFactory.delete_stream]
 * removes them). Versions do not change and the stream stays active. A
 * snapshot of the stream stays only if every event after its version is
 * still stored: those at a version smaller than `before_version - 1` are
 * deleted with the events.
 *
 * Truncating before a version already truncated succeeds and changes
 * nothing. Fails with %ES_ERROR_INVALID_ARGUMENT (naming the stream, the
 * version and the current version) for a @before_version beyond the
 * current version or below 1, for <code>@<!-- -->all</code> or an invalid
 * @stream_id; with %ES_ERROR_STREAM_DELETED for a tombstoned stream; in
 * every case nothing changed.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_truncate_stream (EsStreamFactory  *self,
                                   const char       *stream_id,
                                   gint64            before_version,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (!es_storage_handle_truncate_stream (priv->storage, stream_id, before_version,
                                          cancellable, error))
    return FALSE;
  _es_stream_factory_changed (self, ES_FACTORY_CHANGE_TRUNCATED, stream_id, before_version);
  return TRUE;
}

/**
 * es_stream_factory_truncate_stream_async:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the stream to truncate
 * @before_version: remove the events with a version smaller than this
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the stream is truncated
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.truncate_stream] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_truncate_stream_async (EsStreamFactory     *self,
                                         const char          *stream_id,
                                         gint64               before_version,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_TRUNCATE_STREAM, stream_id, before_version, 0, 0,
                  es_stream_factory_truncate_stream_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_truncate_stream_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.truncate_stream_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_truncate_stream_finish (EsStreamFactory  *self,
                                          GAsyncResult     *result,
                                          GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_truncate_stream_async, error);
}

/**
 * es_stream_factory_erase_event:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the event's stream, not <code>@<!-- -->all</code>
 * @version: the event's version in @stream_id
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Erases one event, for privacy requests: its data and metadata are
 * overwritten in the database; its stream, version, sequence id, type,
 * timestamp and idempotency key remain, so positions, projections and
 * checkpoints keep working. Reads return it with
 * %ES_STORED_EVENT_FLAGS_ERASED ([method@Es.StoredEvent.get_erased]), an
 * empty payload and no metadata; metadata filters no longer match it.
 * Erasing an erased event succeeds and changes nothing.
 *
 * Fails with %ES_ERROR_NOT_FOUND, naming the stream and version, for an
 * event that is not stored (beyond the stream's version, or removed by a
 * delete, a truncation or retention); with %ES_ERROR_INVALID_ARGUMENT for
 * <code>@<!-- -->all</code>, an invalid @stream_id or a @version below 1.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_erase_event (EsStreamFactory  *self,
                               const char       *stream_id,
                               gint64            version,
                               GCancellable     *cancellable,
                               GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (!es_storage_handle_erase_event (priv->storage, stream_id, version, cancellable, error))
    return FALSE;
  _es_stream_factory_changed (self, ES_FACTORY_CHANGE_ERASED, stream_id, version);
  return TRUE;
}

/**
 * es_stream_factory_erase_event_async:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: the event's stream
 * @version: the event's version
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the event is erased
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.erase_event] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_erase_event_async (EsStreamFactory     *self,
                                     const char          *stream_id,
                                     gint64               version,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_ERASE_EVENT, stream_id, version, 0, 0,
                  es_stream_factory_erase_event_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_erase_event_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.erase_event_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_erase_event_finish (EsStreamFactory  *self,
                                      GAsyncResult     *result,
                                      GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_erase_event_async, error);
}

/**
 * es_stream_factory_set_retention:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: (nullable): a stream, or %NULL (or %ES_ALL_STREAM) for the
 *   database-wide policy
 * @max_age: keep the events younger than this many microseconds (such as
 *   `90 * G_TIME_SPAN_DAY`), 0 for no limit
 * @max_count: keep at most this many of the stream's newest events, 0 for
 *   no limit
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores a retention policy, replacing the previous one (0 and 0 removes
 * it), and enforces it at once. A stream's policy is stored with the
 * stream; the database-wide one applies to every stream, and where both
 * set a limit the stricter one wins. Policies are enforced on every write
 * (on the stream written) and, for ages, by the factory's background
 * sweep (see [property@Es.StreamFactory:sweep-interval]) and
 * [method@Es.StreamFactory.sweep].
 *
 * A count always keeps the newest event of a stream; an age may remove
 * every event of a stream, which then stays active at its version. The
 * events go as with [method@Es.StreamFactory.truncate_stream], with the
 * snapshots they leave stale.
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT, naming the value, for a negative
 * @max_age or @max_count or an invalid @stream_id, with
 * %ES_ERROR_STREAM_DELETED for a tombstoned stream; nothing changed then.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_set_retention (EsStreamFactory  *self,
                                 const char       *stream_id,
                                 GTimeSpan         max_age,
                                 gint64            max_count,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (!es_storage_handle_set_retention (priv->storage, stream_id, max_age, max_count,
                                        cancellable, error))
    return FALSE;

  if (max_age > 0)
    learn_age_policy (self, TRUE);
  _es_stream_factory_changed (self, ES_FACTORY_CHANGE_RETENTION, stream_id, 0);
  return TRUE;
}

/**
 * es_stream_factory_set_retention_async:
 * @self: an [class@Es.StreamFactory]
 * @stream_id: (nullable): a stream, or %NULL for the database-wide policy
 * @max_age: the maximum age in microseconds, 0 for no limit
 * @max_count: the maximum number of events, 0 for no limit
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the policy is stored
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.set_retention] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_set_retention_async (EsStreamFactory     *self,
                                       const char          *stream_id,
                                       GTimeSpan            max_age,
                                       gint64               max_count,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_SET_RETENTION, stream_id, max_count, max_age, 0,
                  es_stream_factory_set_retention_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_set_retention_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.set_retention_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_set_retention_finish (EsStreamFactory  *self,
                                        GAsyncResult     *result,
                                        GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_set_retention_async, error);
}

/**
 * es_stream_factory_sweep:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Enforces every retention policy now, against the current time: removes
 * the events older than their stream's (or the database's) maximum age
 * and beyond their stream's maximum count. It works in transactions small
 * enough not to hold up writers, each complete or not done at all, so a
 * sweep that fails or is cancelled may have removed part of the events.
 *
 * The factory sweeps in the background on its own (see
 * [property@Es.StreamFactory:sweep-interval]); call this to sweep at a
 * time of your choosing.
 *
 * Returns: the number of events removed, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_factory_sweep (EsStreamFactory  *self,
                         GCancellable     *cancellable,
                         GError          **error)
{
  EsStreamFactoryPrivate *priv;
  gboolean has_age_policy = FALSE;
  gint64 removed;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return -1;

  removed = es_storage_handle_sweep (priv->storage, g_get_real_time (), &has_age_policy,
                                     cancellable, error);
  if (removed >= 0 && has_age_policy)
    learn_age_policy (self, TRUE);
  if (removed > 0)
    _es_stream_factory_changed (self, ES_FACTORY_CHANGE_SWEPT, NULL, removed);
  return removed;
}

/**
 * es_stream_factory_sweep_async:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the sweep is done
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.sweep] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_sweep_async (EsStreamFactory     *self,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_SWEEP, NULL, 0, 0, 0,
                  es_stream_factory_sweep_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_sweep_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.sweep_async].
 *
 * Returns: the number of events removed, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_factory_sweep_finish (EsStreamFactory  *self,
                                GAsyncResult     *result,
                                GError          **error)
{
  gint64 removed = -1;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), -1);
  g_return_val_if_fail (g_task_is_valid (result, self), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_factory_sweep_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (!_es_task_propagate_int64 (G_TASK (result), &removed, error))
    return -1;
  return removed;
}

/**
 * es_stream_factory_compact:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Gives the space of deleted events back to the file system. Deleted
 * bytes are overwritten as they are deleted; this shrinks the database
 * (SQLite: its free pages, with `PRAGMA incremental_vacuum`, or `VACUUM`
 * for a file created before 0.2, which also switches it to incremental
 * mode; PostgreSQL: `VACUUM` of the tables). It may take time in
 * proportion to the database and waits for other writers.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_compact (EsStreamFactory  *self,
                           GCancellable     *cancellable,
                           GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  return es_storage_handle_compact (priv->storage, cancellable, error);
}

/**
 * es_stream_factory_compact_async:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the database is compacted
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.compact] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_compact_async (EsStreamFactory     *self,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_COMPACT, NULL, 0, 0, 0,
                  es_stream_factory_compact_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_compact_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.compact_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_compact_finish (EsStreamFactory  *self,
                                  GAsyncResult     *result,
                                  GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_compact_async, error);
}

/* ---------------------------------------------------------------------- *
 * Durable subscriptions (0.2)                                             *
 * ---------------------------------------------------------------------- */

/**
 * es_stream_factory_list_subscriptions:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Lists the durable subscriptions stored in the database (see
 * [class@Es.Subscription]), in byte-wise order of their names, each with
 * its stream, checkpoint, lag (positions between its checkpoint and the
 * head of its stream) and the time it was last stored. States are not
 * read: [method@Es.SubscriptionInfo.get_state] is %NULL; use
 * [method@Es.StreamFactory.get_subscription_info] for one subscription's.
 *
 * Returns: (transfer container) (element-type EsSubscriptionInfo): the
 *   subscriptions, or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
es_stream_factory_list_subscriptions (EsStreamFactory  *self,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return NULL;

  return es_storage_handle_list_subscriptions (priv->storage, cancellable, error);
}

/**
 * es_stream_factory_list_subscriptions_async:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called with the listing
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.list_subscriptions] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_list_subscriptions_async (EsStreamFactory     *self,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_LIST_SUBSCRIPTIONS, NULL, 0, 0, 0,
                  es_stream_factory_list_subscriptions_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_list_subscriptions_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.list_subscriptions_async].
 *
 * Returns: (transfer container) (element-type EsSubscriptionInfo): the
 *   subscriptions, or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
es_stream_factory_list_subscriptions_finish (EsStreamFactory  *self,
                                             GAsyncResult     *result,
                                             GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_factory_list_subscriptions_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_factory_get_subscription_info:
 * @self: an [class@Es.StreamFactory]
 * @name: the subscription's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads one stored durable subscription: its stream, checkpoint, lag, the
 * time it was last stored and its state. Fails with %ES_ERROR_NOT_FOUND
 * when none of that name is stored, and with %ES_ERROR_INVALID_ARGUMENT
 * for a name that cannot be one (empty, too long, not UTF-8).
 *
 * Returns: (transfer full): the subscription, or %NULL on error
 *
 * Since: 0.2
 */
EsSubscriptionInfo *
es_stream_factory_get_subscription_info (EsStreamFactory  *self,
                                         const char       *name,
                                         GCancellable     *cancellable,
                                         GError          **error)
{
  EsStreamFactoryPrivate *priv;
  GError *local_error = NULL;
  EsSubscriptionInfo *info;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return NULL;

  info = es_storage_handle_get_subscription (priv->storage, name, cancellable, &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return NULL;
    }
  if (info == NULL)
    g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                 /* Translators: %s is a subscription name */
                 _("No subscription '%s' is stored"), name);
  return info;
}

/**
 * es_stream_factory_get_subscription_info_async:
 * @self: an [class@Es.StreamFactory]
 * @name: the subscription's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called with the subscription
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.get_subscription_info] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_get_subscription_info_async (EsStreamFactory     *self,
                                               const char          *name,
                                               GCancellable        *cancellable,
                                               GAsyncReadyCallback  callback,
                                               gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_GET_SUBSCRIPTION_INFO, name, 0, 0, 0,
                  es_stream_factory_get_subscription_info_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_get_subscription_info_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.get_subscription_info_async].
 *
 * Returns: (transfer full): the subscription, or %NULL on error
 *
 * Since: 0.2
 */
EsSubscriptionInfo *
es_stream_factory_get_subscription_info_finish (EsStreamFactory  *self,
                                                GAsyncResult     *result,
                                                GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_factory_get_subscription_info_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_factory_reset_subscription:
 * @self: an [class@Es.StreamFactory]
 * @name: the subscription's name
 * @position: the new checkpoint, from 0 (consume everything again) to the
 *   head of the subscription's stream
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Moves a stored subscription's checkpoint backwards (to consume events
 * again, for instance to rebuild a read model) or forwards (to skip
 * them), and drops its stored state, which no longer matches. Its next
 * start resumes after @position.
 *
 * Fails with %ES_ERROR_NOT_FOUND when none of that name is stored,
 * %ES_ERROR_BUSY while a consumer (in any process) holds it, and
 * %ES_ERROR_INVALID_ARGUMENT when @position is negative or beyond the head
 * of its stream; nothing changes then.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_reset_subscription (EsStreamFactory  *self,
                                      const char       *name,
                                      gint64            position,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  return es_storage_handle_reset_subscription (priv->storage, name, position, cancellable, error);
}

/**
 * es_stream_factory_reset_subscription_async:
 * @self: an [class@Es.StreamFactory]
 * @name: the subscription's name
 * @position: the new checkpoint
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called once it is moved
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.reset_subscription] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_reset_subscription_async (EsStreamFactory     *self,
                                            const char          *name,
                                            gint64               position,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_RESET_SUBSCRIPTION, name, position, 0, 0,
                  es_stream_factory_reset_subscription_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_reset_subscription_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.reset_subscription_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_reset_subscription_finish (EsStreamFactory  *self,
                                             GAsyncResult     *result,
                                             GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_reset_subscription_async, error);
}

/**
 * es_stream_factory_delete_subscription:
 * @self: an [class@Es.StreamFactory]
 * @name: the subscription's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Forgets a stored subscription, its checkpoint and its state; its next
 * start begins as a new subscription. Fails with %ES_ERROR_NOT_FOUND when
 * none of that name is stored and %ES_ERROR_BUSY while a consumer (in any
 * process) holds it; nothing changes then.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_delete_subscription (EsStreamFactory  *self,
                                       const char       *name,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  return es_storage_handle_delete_subscription (priv->storage, name, cancellable, error);
}

/**
 * es_stream_factory_delete_subscription_async:
 * @self: an [class@Es.StreamFactory]
 * @name: the subscription's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called once it is deleted
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.delete_subscription] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_delete_subscription_async (EsStreamFactory     *self,
                                             const char          *name,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_DELETE_SUBSCRIPTION, name, 0, 0, 0,
                  es_stream_factory_delete_subscription_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_delete_subscription_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.delete_subscription_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_delete_subscription_finish (EsStreamFactory  *self,
                                              GAsyncResult     *result,
                                              GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_delete_subscription_async, error);
}

/* ---------------------------------------------------------------------- *
 * Metadata indexes (0.2)                                                  *
 * ---------------------------------------------------------------------- */

/**
 * es_stream_factory_add_metadata_index:
 * @self: an [class@Es.StreamFactory]
 * @path: a metadata path, as a filter writes it after `metadata.`
 *   (`tenant` for `metadata.tenant`, `user.id` for `metadata.user.id`)
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Declares a metadata path the application filters on: the backend then
 * maintains an index on the value at @path (SQLite: an expression index;
 * PostgreSQL: an index built with `CREATE INDEX CONCURRENTLY`), and a
 * filter clause `equals` or `in` on `metadata.<path>` reads only the
 * matching events, as a filter on `event_type` does, instead of reading
 * every event's metadata. The results of every filter are the same with
 * or without the index; the declaration is stored in the database and
 * outlives the factory.
 *
 * Declaring a path that is already declared does nothing and succeeds. An
 * invalid path (empty keys, a `"` or a control character) fails with
 * %ES_ERROR_INVALID_ARGUMENT naming it.
 *
 * Building the index reads every stored event once, in proportion to the
 * database (see the guide page [Performance](performance.html)).
 * Readers keep reading meanwhile. On SQLite, writers wait until it is
 * built; on PostgreSQL they do not. Every later write maintains the index,
 * at a small cost per event.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_add_metadata_index (EsStreamFactory  *self,
                                      const char       *path,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  return es_storage_handle_add_metadata_index (priv->storage, path, cancellable, error);
}

/**
 * es_stream_factory_add_metadata_index_async:
 * @self: an [class@Es.StreamFactory]
 * @path: a metadata path, as a filter writes it after `metadata.`
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the index is built
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.add_metadata_index] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_add_metadata_index_async (EsStreamFactory     *self,
                                            const char          *path,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_ADD_METADATA_INDEX, path, 0, 0, 0,
                  es_stream_factory_add_metadata_index_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_add_metadata_index_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.add_metadata_index_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_add_metadata_index_finish (EsStreamFactory  *self,
                                             GAsyncResult     *result,
                                             GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_add_metadata_index_async, error);
}

/**
 * es_stream_factory_remove_metadata_index:
 * @self: an [class@Es.StreamFactory]
 * @path: a metadata path declared with
 *   [method@Es.StreamFactory.add_metadata_index]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Drops the index of a declared metadata path. Filters on the path keep
 * working and give the same results, reading every event's metadata
 * again. A path that is not declared fails with %ES_ERROR_NOT_FOUND, an
 * invalid one with %ES_ERROR_INVALID_ARGUMENT.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_remove_metadata_index (EsStreamFactory  *self,
                                         const char       *path,
                                         GCancellable     *cancellable,
                                         GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return FALSE;

  return es_storage_handle_remove_metadata_index (priv->storage, path, cancellable, error);
}

/**
 * es_stream_factory_remove_metadata_index_async:
 * @self: an [class@Es.StreamFactory]
 * @path: a declared metadata path
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the index is dropped
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.remove_metadata_index] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_remove_metadata_index_async (EsStreamFactory     *self,
                                               const char          *path,
                                               GCancellable        *cancellable,
                                               GAsyncReadyCallback  callback,
                                               gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_REMOVE_METADATA_INDEX, path, 0, 0, 0,
                  es_stream_factory_remove_metadata_index_async, cancellable, callback,
                  user_data);
}

/**
 * es_stream_factory_remove_metadata_index_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.remove_metadata_index_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_remove_metadata_index_finish (EsStreamFactory  *self,
                                                GAsyncResult     *result,
                                                GError          **error)
{
  return propagate_boolean (self, result, es_stream_factory_remove_metadata_index_async, error);
}

/**
 * es_stream_factory_list_metadata_indexes:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Lists the metadata paths declared with
 * [method@Es.StreamFactory.add_metadata_index], in byte-wise order.
 *
 * Returns: (transfer full): the declared paths (an empty array when there
 *   is none), or %NULL on error
 *
 * Since: 0.2
 */
GStrv
es_stream_factory_list_metadata_indexes (EsStreamFactory  *self,
                                         GCancellable     *cancellable,
                                         GError          **error)
{
  EsStreamFactoryPrivate *priv;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  priv = es_stream_factory_get_instance_private (self);
  if (!check_usable (self, cancellable, error))
    return NULL;

  return es_storage_handle_list_metadata_indexes (priv->storage, cancellable, error);
}

/**
 * es_stream_factory_list_metadata_indexes_async:
 * @self: an [class@Es.StreamFactory]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called with the listing
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.list_metadata_indexes] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_list_metadata_indexes_async (EsStreamFactory     *self,
                                               GCancellable        *cancellable,
                                               GAsyncReadyCallback  callback,
                                               gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_factory_op (self, FACTORY_OP_LIST_METADATA_INDEXES, NULL, 0, 0, 0,
                  es_stream_factory_list_metadata_indexes_async, cancellable, callback,
                  user_data);
}

/**
 * es_stream_factory_list_metadata_indexes_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.list_metadata_indexes_async].
 *
 * Returns: (transfer full): the declared paths, or %NULL on error
 *
 * Since: 0.2
 */
GStrv
es_stream_factory_list_metadata_indexes_finish (EsStreamFactory  *self,
                                                GAsyncResult     *result,
                                                GError          **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result,
                                                  es_stream_factory_list_metadata_indexes_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
