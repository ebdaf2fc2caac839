/* es-storage-notifier.c: the base class of a backend's notifier: its
 * thread and main context, its subscribers and their cursor, the one
 * deliver-from-cursor loop, and giving up.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsStorageNotifier:
 *
 * The base class of a backend's [iface@Es.Notifier]: [class@Es.SqliteNotifier]
 * and the notifier of the PostgreSQL backend (libes-glib-pg) derive from
 * it, and so can a third-party backend's notifier.
 *
 * It implements the whole [iface@Es.Notifier] contract once: its own thread
 * and [struct@GLib.MainContext]; the subscribers and the cursor (the last
 * sequence id delivered); reading what was committed after the cursor, in
 * pages, through the [property@Es.StorageNotifier:storage], and handing
 * it to every subscriber; [method@Es.Notifier.committed] for this
 * process's commits; and giving up when the store stays unusable for
 * [property@Es.StorageNotifier:give-up-timeout] milliseconds.
 *
 * A subclass only says when to look: its [vfunc@Es.StorageNotifier.attach]
 * attaches sources (a file monitor, a socket, a timer) to the notifier's
 * context, and they call [method@Es.StorageNotifier.changed] (from any
 * thread), or [method@Es.StorageNotifier.deliver] and
 * [method@Es.StorageNotifier.report_failure] /
 * [method@Es.StorageNotifier.report_success] from the notifier's thread.
 *
 * ## Locking
 *
 * The storage is read without holding the subscribers' lock; only handing
 * a page to the subscribers holds it. So subscribing, unsubscribing,
 * [method@Es.Notifier.get_last_sequence_id] (but see "Idle" below) and
 * [method@Es.Notifier.stop] never wait for the storage (a read that waits for a pooled connection, a
 * server that does not answer), and cannot deadlock with it: a thread that
 * holds a read connection while it unsubscribes does not block a read
 * waiting for that connection. And since handing over holds the lock, no
 * subscriber is called once [method@Es.Notifier.unsubscribe] returned.
 * Whoever subscribes while a page is read saw the cursor before it, and
 * gets that page too (watches drop what they already read).
 *
 * ## Idle
 *
 * A subclass that implements [vfunc@Es.StorageNotifier.listening_changed]
 * attaches its sources only while someone is subscribed: with nobody
 * listening, the notifier's thread sleeps in its main loop with nothing to
 * wake it, and this process's commits do not wake it either. Since
 * nothing moves the cursor then, [method@Es.Notifier.get_last_sequence_id]
 * called while nobody listens reads where the store ends (one short query
 * on the caller's thread, holding no lock) and moves the cursor there;
 * watches call it before they subscribe, so that their first delivery
 * does not start from an old cursor.
 *
 * Since: 0.2
 */

#define DEFAULT_GIVE_UP_TIMEOUT 5000

typedef struct
{
  EsStorageHandle *storage;          /* (owned) */
  guint            give_up_timeout;  /* milliseconds, 0 for never */

  GMutex           state_lock;
  gboolean         started;          /* guarded by state_lock */
  gboolean         stopped;          /* guarded by state_lock */
  GError          *error;            /* (owned) (nullable) set once, guarded by state_lock */
  GThread         *thread;           /* (owned) guarded by state_lock */
  GMainContext    *context;          /* (owned) the notifier thread's */
  GMainLoop       *loop;             /* (owned) */
  GCancellable    *cancellable;      /* (owned) cancelled by stop(): ends a read */

  GSource         *give_up_timer;    /* (owned) (nullable) runs while something fails,
                                      * guarded by state_lock */
  char            *last_failure;     /* (owned) (nullable) why, for the error; state_lock */
  gboolean         gave_up;          /* the notifier's thread only */

  gint             check_scheduled;  /* (atomic) an idle check is pending */
  gint             listening_scheduled;  /* (atomic) an idle listening update is pending */
  gboolean         listening;        /* the notifier's thread only: what the subclass
                                      * was last told by listening_changed */
  gint             n_reads;          /* (atomic) tests */

  EsSubscribers    subs;             /* with the cursor of deliveries */
} EsStorageNotifierPrivate;

enum {
  PROP_0,
  PROP_STORAGE,
  PROP_GIVE_UP_TIMEOUT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void notifier_iface_init (EsNotifierInterface *iface);

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (EsStorageNotifier, es_storage_notifier, G_TYPE_OBJECT,
                                  G_ADD_PRIVATE (EsStorageNotifier)
                                  G_IMPLEMENT_INTERFACE (ES_TYPE_NOTIFIER, notifier_iface_init))

#define PRIV(self) ((EsStorageNotifierPrivate *) es_storage_notifier_get_instance_private (self))

static gboolean
default_get_last_committed (EsStorageNotifier  *self,
                            gint64             *out_sequence_id,
                            GCancellable       *cancellable,
                            GError            **error)
{
  EsStorageNotifierPrivate *priv = PRIV (self);

  g_atomic_int_inc (&priv->n_reads);
  return es_storage_handle_get_version (priv->storage, NULL, out_sequence_id, cancellable, error);
}

/**
 * es_storage_notifier_deliver:
 * @self: an [class@Es.StorageNotifier]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads what was committed after the cursor, in pages, and hands it to
 * every subscriber, moving the cursor. With nobody subscribed it only
 * moves the cursor ([vfunc@Es.StorageNotifier.get_last_committed]). Call
 * it on the notifier's thread only (from its sources or
 * [vfunc@Es.StorageNotifier.check]).
 *
 * A closed storage (the factory closing) or a stopped notifier is not a
 * failure.
 *
 * Returns: %FALSE when a read failed: the cursor stays where it was, and
 *   the caller retries later
 *
 * Since: 0.2
 */
gboolean
es_storage_notifier_deliver (EsStorageNotifier  *self,
                             GError            **error)
{
  EsStorageNotifierPrivate *priv;
  g_autoptr(GError) local_error = NULL;

  g_return_val_if_fail (ES_IS_STORAGE_NOTIFIER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = PRIV (self);
  if (priv->gave_up)
    return TRUE;

  /* The one locking rule (see the class documentation): the storage is
   * read outside the subscribers' lock, the events handed over under it.
   * This thread alone moves the cursor. */
  for (;;)
    {
      g_autoptr(GPtrArray) events = NULL;
      gboolean listened;
      gint64 cursor;

      g_rec_mutex_lock (&priv->subs.lock);
      cursor = priv->subs.cursor;
      listened = _es_subscribers_any (&priv->subs);
      g_rec_mutex_unlock (&priv->subs.lock);

      if (!listened)
        {
          gint64 last = cursor;

          /* Nobody listens: just move the cursor, reading no event. */
          if (!ES_STORAGE_NOTIFIER_GET_CLASS (self)->get_last_committed (self, &last,
                                                                          priv->cancellable,
                                                                          &local_error))
            break;

          g_rec_mutex_lock (&priv->subs.lock);
          listened = _es_subscribers_any (&priv->subs);
          /* Someone subscribed meanwhile, having seen the old cursor:
           * read the events for them instead. */
          if (!listened)
            priv->subs.cursor = MAX (cursor, last);
          g_rec_mutex_unlock (&priv->subs.lock);

          if (listened)
            continue;
          break;
        }

      g_atomic_int_inc (&priv->n_reads);
      /* With the markers of hard deletes, so that watches of a stream
       * tombstoned by another process learn it (see EsNotifierFunc). */
      events = es_storage_handle_read_page_full (priv->storage, NULL, cursor,
                                                 ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL,
                                                 ES_READ_PAGE_SIZE, priv->cancellable,
                                                 &local_error);
      if (events == NULL || events->len == 0)
        break;

      /* Whoever subscribed during the read saw the old cursor, so gets
       * these events too; whoever left gets nothing more. */
      g_rec_mutex_lock (&priv->subs.lock);
      /* MAX: a first subscriber may have moved the cursor past this page
       * meanwhile (see es_storage_notifier_subscribe()). */
      priv->subs.cursor = MAX (priv->subs.cursor,
                               es_stored_event_get_sequence_id (g_ptr_array_index (events,
                                                                                   events->len - 1)));
      _es_subscribers_emit (&priv->subs, events);
      g_rec_mutex_unlock (&priv->subs.lock);

      if (events->len < ES_READ_PAGE_SIZE)
        break;
    }

  if (local_error == NULL)
    return TRUE;

  /* A closed storage is the factory closing, a cancelled read stop():
   * nothing to retry. */
  if (g_error_matches (local_error, ES_ERROR, ES_ERROR_CLOSED) ||
      g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return TRUE;

  g_debug ("Reading new events failed, will retry: %s", local_error->message);
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static GError *
default_give_up_error (EsStorageNotifier *self,
                       const char        *reason)
{
  return g_error_new (ES_ERROR, ES_ERROR_STORAGE,
                      /* Translators: %u is milliseconds, %s the reason */
                      _("Watching for new events failed for %u ms, giving up: %s"),
                      PRIV (self)->give_up_timeout, reason);
}

/* The store stayed unusable for give-up-timeout ms: every subscription
 * ends with the reason, and the thread ends. */
static gboolean
give_up_cb (gpointer user_data)
{
  EsStorageNotifier *self = user_data;
  EsStorageNotifierPrivate *priv = PRIV (self);
  g_autoptr(GError) error = NULL;
  g_autofree char *reason = NULL;

  g_mutex_lock (&priv->state_lock);
  if (g_source_is_destroyed (g_main_current_source ()))
    {
      /* A success stopped the timer as it fired. */
      g_mutex_unlock (&priv->state_lock);
      return G_SOURCE_REMOVE;
    }
  g_clear_pointer (&priv->give_up_timer, g_source_unref);
  reason = g_strdup (priv->last_failure != NULL ? priv->last_failure : "unknown reason");
  g_mutex_unlock (&priv->state_lock);

  error = ES_STORAGE_NOTIFIER_GET_CLASS (self)->give_up_error (self, reason);
  g_debug ("Notifier giving up: %s", error->message);

  g_mutex_lock (&priv->state_lock);
  if (priv->error == NULL && !priv->stopped)
    priv->error = g_steal_pointer (&error);
  g_mutex_unlock (&priv->state_lock);

  priv->gave_up = TRUE;
  g_main_loop_quit (priv->loop);
  _es_subscribers_close (&priv->subs);
  return G_SOURCE_REMOVE;
}

/**
 * es_storage_notifier_report_failure:
 * @self: an [class@Es.StorageNotifier]
 * @reason: why looking for commits failed, for the error
 *
 * Tells that looking for commits failed (the store cannot be reached, a
 * read failed, the file went away). The first failure after a success
 * starts the give-up timer; when it fires,
 * [property@Es.StorageNotifier:give-up-timeout] milliseconds later
 * without a [method@Es.StorageNotifier.report_success] in between, the
 * notifier gives up: [method@Es.Notifier.get_error] returns an error made
 * from the last @reason, every subscription ends, and the thread stops.
 * Thread-safe.
 *
 * Since: 0.2
 */
void
es_storage_notifier_report_failure (EsStorageNotifier *self,
                                    const char        *reason)
{
  EsStorageNotifierPrivate *priv;

  g_return_if_fail (ES_IS_STORAGE_NOTIFIER (self));
  g_return_if_fail (reason != NULL);

  priv = PRIV (self);
  g_mutex_lock (&priv->state_lock);
  g_free (priv->last_failure);
  priv->last_failure = g_strdup (reason);

  if (priv->give_up_timer == NULL && priv->give_up_timeout > 0 && priv->context != NULL &&
      priv->error == NULL && !priv->stopped)
    {
      priv->give_up_timer = g_timeout_source_new (priv->give_up_timeout);
      g_source_set_callback (priv->give_up_timer, give_up_cb, self, NULL);
      g_source_set_static_name (priv->give_up_timer, "[es-glib] notifier give up");
      g_source_attach (priv->give_up_timer, priv->context);
    }
  g_mutex_unlock (&priv->state_lock);
}

/**
 * es_storage_notifier_report_success:
 * @self: an [class@Es.StorageNotifier]
 *
 * Tells that looking for commits works again: the give-up timer, if it
 * runs, stops. Thread-safe.
 *
 * Since: 0.2
 */
void
es_storage_notifier_report_success (EsStorageNotifier *self)
{
  EsStorageNotifierPrivate *priv;

  g_return_if_fail (ES_IS_STORAGE_NOTIFIER (self));

  priv = PRIV (self);
  g_mutex_lock (&priv->state_lock);
  if (priv->give_up_timer != NULL)
    {
      g_source_destroy (priv->give_up_timer);
      g_clear_pointer (&priv->give_up_timer, g_source_unref);
    }
  g_mutex_unlock (&priv->state_lock);
}

static void
default_check (EsStorageNotifier *self)
{
  g_autoptr(GError) error = NULL;

  if (es_storage_notifier_deliver (self, &error))
    es_storage_notifier_report_success (self);
  else
    es_storage_notifier_report_failure (self, error->message);
}

static gboolean
check_now_cb (gpointer user_data)
{
  EsStorageNotifier *self = user_data;

  g_atomic_int_set (&PRIV (self)->check_scheduled, FALSE);
  if (!PRIV (self)->gave_up)
    ES_STORAGE_NOTIFIER_GET_CLASS (self)->check (self);
  return G_SOURCE_REMOVE;
}

/**
 * es_storage_notifier_changed:
 * @self: an [class@Es.StorageNotifier]
 *
 * Tells that something may have been committed: the notifier's thread
 * runs [vfunc@Es.StorageNotifier.check] soon (by default, delivers from
 * the cursor). Calls made before that check ran share it. Thread-safe;
 * does nothing unless the notifier runs.
 *
 * Since: 0.2
 */
void
es_storage_notifier_changed (EsStorageNotifier *self)
{
  EsStorageNotifierPrivate *priv;
  GMainContext *context = NULL;
  GSource *source;

  g_return_if_fail (ES_IS_STORAGE_NOTIFIER (self));

  priv = PRIV (self);
  g_mutex_lock (&priv->state_lock);
  if (priv->started && !priv->stopped && priv->error == NULL)
    context = g_main_context_ref (priv->context);
  g_mutex_unlock (&priv->state_lock);

  if (context == NULL)
    return;

  if (g_atomic_int_compare_and_exchange (&priv->check_scheduled, FALSE, TRUE))
    {
      source = g_idle_source_new ();
      g_source_set_callback (source, check_now_cb, self, NULL);
      g_source_set_static_name (source, "[es-glib] notifier check");
      g_source_attach (source, context);
      g_source_unref (source);
    }
  g_main_context_unref (context);
}

/* On the notifier's thread: tells the subclass when someone started or
 * stopped listening. Runs after every subscribe and unsubscribe (calls
 * share a run), so it compares with what it told last. */
static void
update_listening (EsStorageNotifier *self)
{
  EsStorageNotifierClass *klass = ES_STORAGE_NOTIFIER_GET_CLASS (self);
  EsStorageNotifierPrivate *priv = PRIV (self);
  gboolean listening;

  if (klass->listening_changed == NULL)
    return;
  listening = _es_subscribers_any (&priv->subs) && !priv->gave_up;
  if (listening == priv->listening)
    return;
  priv->listening = listening;
  klass->listening_changed (self, listening);
}

static gboolean
update_listening_cb (gpointer user_data)
{
  EsStorageNotifier *self = user_data;

  g_atomic_int_set (&PRIV (self)->listening_scheduled, FALSE);
  update_listening (self);
  return G_SOURCE_REMOVE;
}

/* From any thread, after a subscriber came or went. */
static void
schedule_update_listening (EsStorageNotifier *self)
{
  EsStorageNotifierPrivate *priv = PRIV (self);
  GMainContext *context = NULL;

  if (ES_STORAGE_NOTIFIER_GET_CLASS (self)->listening_changed == NULL)
    return;

  g_mutex_lock (&priv->state_lock);
  if (priv->started && !priv->stopped && priv->error == NULL)
    context = g_main_context_ref (priv->context);
  g_mutex_unlock (&priv->state_lock);
  if (context == NULL)
    return;

  if (g_atomic_int_compare_and_exchange (&priv->listening_scheduled, FALSE, TRUE))
    {
      GSource *source = g_idle_source_new ();

      g_source_set_callback (source, update_listening_cb, self, NULL);
      g_source_set_static_name (source, "[es-glib] notifier listening");
      g_source_attach (source, context);
      g_source_unref (source);
    }
  g_main_context_unref (context);
}

static gpointer
notifier_thread (gpointer data)
{
  EsStorageNotifier *self = data;
  EsStorageNotifierClass *klass = ES_STORAGE_NOTIFIER_GET_CLASS (self);
  EsStorageNotifierPrivate *priv = PRIV (self);

  g_main_context_push_thread_default (priv->context);

  if (klass->attach != NULL)
    klass->attach (self, priv->context);
  /* Subscribed before the thread ran. */
  update_listening (self);

  g_main_loop_run (priv->loop);

  /* Run the sources still queued (a last check) before the subclass
   * detaches its own and the context goes. */
  while (g_main_context_iteration (priv->context, FALSE))
    ;
  if (priv->listening)
    {
      priv->listening = FALSE;
      klass->listening_changed (self, FALSE);
    }
  if (klass->detach != NULL)
    klass->detach (self);
  es_storage_notifier_report_success (self);
  g_main_context_pop_thread_default (priv->context);

  return NULL;
}

static gboolean
es_storage_notifier_start (EsNotifier    *notifier,
                           GCancellable  *cancellable,
                           GError       **error)
{
  EsStorageNotifier *self = ES_STORAGE_NOTIFIER (notifier);
  EsStorageNotifierClass *klass = ES_STORAGE_NOTIFIER_GET_CLASS (self);
  EsStorageNotifierPrivate *priv = PRIV (self);
  gint64 cursor = 0;
  gboolean ok = FALSE;

  g_mutex_lock (&priv->state_lock);

  if (priv->stopped)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED,
                           _("The notifier was stopped and cannot start again"));
      goto out;
    }
  if (priv->started)
    {
      ok = TRUE;
      goto out;
    }

  /* Prepared (listening, say) before the cursor is read: a commit either
   * precedes the read, and the cursor covers it, or is told. */
  if (klass->prepare != NULL && !klass->prepare (self, cancellable, error))
    goto out;

  if (!es_storage_handle_get_version (priv->storage, NULL, &cursor, cancellable, error))
    {
      if (klass->detach != NULL)
        klass->detach (self);
      goto out;
    }

  _es_subscribers_set_cursor (&priv->subs, cursor);

  priv->context = g_main_context_new ();
  priv->loop = g_main_loop_new (priv->context, FALSE);
  priv->thread = g_thread_new ("es-notifier", notifier_thread, self);
  priv->started = TRUE;
  ok = TRUE;

out:
  g_mutex_unlock (&priv->state_lock);
  return ok;
}

static void
es_storage_notifier_stop (EsNotifier *notifier)
{
  EsStorageNotifier *self = ES_STORAGE_NOTIFIER (notifier);
  EsStorageNotifierPrivate *priv = PRIV (self);
  GThread *thread = NULL;

  g_mutex_lock (&priv->state_lock);
  if (!priv->stopped)
    {
      priv->stopped = TRUE;
      thread = g_steal_pointer (&priv->thread);
    }
  g_mutex_unlock (&priv->state_lock);

  if (thread != NULL)
    {
      /* A read in progress (waiting for a pooled connection, say) ends. */
      g_cancellable_cancel (priv->cancellable);
      _es_notifier_thread_stop (thread, priv->context, priv->loop);
    }

  /* Every subscription ends: watches learn it through their destroy
   * notify and stop. */
  _es_subscribers_remove_all (&priv->subs);
}

static guint
es_storage_notifier_subscribe (EsNotifier     *notifier,
                               EsNotifierFunc  func,
                               gpointer        user_data,
                               GDestroyNotify  destroy)
{
  EsStorageNotifier *self = ES_STORAGE_NOTIFIER (notifier);
  guint id;

  id = _es_subscribers_add (&PRIV (self)->subs, func, user_data, destroy);
  schedule_update_listening (self);
  return id;
}

static void
es_storage_notifier_unsubscribe (EsNotifier *notifier,
                                 guint       subscription_id)
{
  EsStorageNotifier *self = ES_STORAGE_NOTIFIER (notifier);

  _es_subscribers_remove (&PRIV (self)->subs, subscription_id);
  schedule_update_listening (self);
}

static gint64
es_storage_notifier_get_last_sequence_id (EsNotifier *notifier)
{
  EsStorageNotifier *self = ES_STORAGE_NOTIFIER (notifier);
  EsStorageNotifierPrivate *priv = PRIV (self);
  gboolean running;

  g_mutex_lock (&priv->state_lock);
  running = priv->started && !priv->stopped && priv->error == NULL;
  g_mutex_unlock (&priv->state_lock);

  /* Nothing moves the cursor while nobody listens to a subclass that
   * then stops looking: read where the store ends, so that a subscriber
   * that follows starts there rather than at an old cursor (a long read
   * of events it does not want). Outside the lock, like every read; the
   * cursor moves only if still nobody listens (MAX: a delivery may have
   * moved it meanwhile). On failure the old cursor stays: slower, not
   * wrong. */
  if (running && ES_STORAGE_NOTIFIER_GET_CLASS (self)->listening_changed != NULL &&
      !_es_subscribers_any (&priv->subs))
    {
      g_autoptr(GError) error = NULL;
      gint64 head = 0;

      g_atomic_int_inc (&priv->n_reads);
      if (es_storage_handle_get_version (priv->storage, NULL, &head, priv->cancellable, &error))
        {
          g_rec_mutex_lock (&priv->subs.lock);
          if (!_es_subscribers_any (&priv->subs))
            priv->subs.cursor = MAX (priv->subs.cursor, head);
          g_rec_mutex_unlock (&priv->subs.lock);
        }
      else
        g_debug ("Cannot read where the store ends: %s", error->message);
    }

  return _es_subscribers_get_cursor (&priv->subs);
}

static void
es_storage_notifier_committed (EsNotifier *notifier)
{
  EsStorageNotifier *self = ES_STORAGE_NOTIFIER (notifier);

  /* With nobody subscribed there is nobody to wake: the subclass's next
   * look moves the cursor, and a subscriber arriving before that only
   * gets events it also reads from the history, which watches drop. This
   * keeps writes without watchers free of a check per commit. */
  if (_es_subscribers_any (&PRIV (self)->subs))
    es_storage_notifier_changed (self);
}

static const GError *
es_storage_notifier_get_error (EsNotifier *notifier)
{
  EsStorageNotifierPrivate *priv = PRIV (ES_STORAGE_NOTIFIER (notifier));
  const GError *error;

  /* Set once, freed only with the notifier. */
  g_mutex_lock (&priv->state_lock);
  error = priv->error;
  g_mutex_unlock (&priv->state_lock);
  return error;
}

static void
notifier_iface_init (EsNotifierInterface *iface)
{
  iface->start = es_storage_notifier_start;
  iface->stop = es_storage_notifier_stop;
  iface->subscribe = es_storage_notifier_subscribe;
  iface->unsubscribe = es_storage_notifier_unsubscribe;
  iface->get_last_sequence_id = es_storage_notifier_get_last_sequence_id;
  iface->committed = es_storage_notifier_committed;
  iface->get_error = es_storage_notifier_get_error;
}

static void
es_storage_notifier_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  EsStorageNotifierPrivate *priv = PRIV (ES_STORAGE_NOTIFIER (object));

  switch (prop_id)
    {
    case PROP_STORAGE:
      g_value_set_object (value, priv->storage);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      g_value_set_uint (value, priv->give_up_timeout);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_storage_notifier_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  EsStorageNotifierPrivate *priv = PRIV (ES_STORAGE_NOTIFIER (object));

  switch (prop_id)
    {
    case PROP_STORAGE:
      priv->storage = g_value_dup_object (value);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      priv->give_up_timeout = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_storage_notifier_constructed (GObject *object)
{
  G_OBJECT_CLASS (es_storage_notifier_parent_class)->constructed (object);

  g_return_if_fail (ES_IS_STORAGE_HANDLE (PRIV (ES_STORAGE_NOTIFIER (object))->storage));
}

static void
es_storage_notifier_dispose (GObject *object)
{
  es_storage_notifier_stop (ES_NOTIFIER (object));

  G_OBJECT_CLASS (es_storage_notifier_parent_class)->dispose (object);
}

static void
es_storage_notifier_finalize (GObject *object)
{
  EsStorageNotifierPrivate *priv = PRIV (ES_STORAGE_NOTIFIER (object));

  _es_subscribers_clear (&priv->subs);
  g_clear_pointer (&priv->loop, g_main_loop_unref);
  g_clear_pointer (&priv->context, g_main_context_unref);
  g_clear_object (&priv->cancellable);
  g_clear_object (&priv->storage);
  g_free (priv->last_failure);
  g_clear_error (&priv->error);
  g_mutex_clear (&priv->state_lock);

  G_OBJECT_CLASS (es_storage_notifier_parent_class)->finalize (object);
}

static void
es_storage_notifier_class_init (EsStorageNotifierClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->get_property = es_storage_notifier_get_property;
  object_class->set_property = es_storage_notifier_set_property;
  object_class->constructed = es_storage_notifier_constructed;
  object_class->dispose = es_storage_notifier_dispose;
  object_class->finalize = es_storage_notifier_finalize;

  klass->check = default_check;
  klass->get_last_committed = default_get_last_committed;
  klass->give_up_error = default_give_up_error;

  /**
   * EsStorageNotifier:storage:
   *
   * The storage through which the notifier reads new events.
   *
   * Since: 0.2
   */
  properties[PROP_STORAGE] =
    g_param_spec_object ("storage", NULL, NULL, ES_TYPE_STORAGE_HANDLE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsStorageNotifier:give-up-timeout:
   *
   * How long, in milliseconds, looking for commits may keep failing
   * (see [method@Es.StorageNotifier.report_failure]) before the notifier
   * gives up and every watch fails with %ES_ERROR_STORAGE; 0 never gives
   * up. The time counts from the first failure; one success starts it
   * over. The default depends on the backend: 5 s for SQLite, 60 s for
   * PostgreSQL (a server restart takes a while).
   *
   * Since: 0.2
   */
  properties[PROP_GIVE_UP_TIMEOUT] =
    g_param_spec_uint ("give-up-timeout", NULL, NULL, 0, G_MAXINT, DEFAULT_GIVE_UP_TIMEOUT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_storage_notifier_init (EsStorageNotifier *self)
{
  EsStorageNotifierPrivate *priv = PRIV (self);

  g_mutex_init (&priv->state_lock);
  _es_subscribers_init (&priv->subs);
  priv->cancellable = g_cancellable_new ();
  priv->give_up_timeout = DEFAULT_GIVE_UP_TIMEOUT;
}

/**
 * es_storage_notifier_get_storage:
 * @self: an [class@Es.StorageNotifier]
 *
 * Gets the storage the notifier reads through.
 *
 * Returns: (transfer none): the storage
 *
 * Since: 0.2
 */
EsStorageHandle *
es_storage_notifier_get_storage (EsStorageNotifier *self)
{
  g_return_val_if_fail (ES_IS_STORAGE_NOTIFIER (self), NULL);

  return PRIV (self)->storage;
}

/**
 * es_storage_notifier_get_give_up_timeout:
 * @self: an [class@Es.StorageNotifier]
 *
 * Gets [property@Es.StorageNotifier:give-up-timeout].
 *
 * Returns: milliseconds, 0 for never
 *
 * Since: 0.2
 */
guint
es_storage_notifier_get_give_up_timeout (EsStorageNotifier *self)
{
  g_return_val_if_fail (ES_IS_STORAGE_NOTIFIER (self), 0);

  return PRIV (self)->give_up_timeout;
}

/**
 * es_storage_notifier_get_context:
 * @self: an [class@Es.StorageNotifier]
 *
 * Gets the main context of the notifier's thread, where a subclass
 * attaches its sources.
 *
 * Returns: (transfer none) (nullable): the context, or %NULL before
 *   [method@Es.Notifier.start]
 *
 * Since: 0.2
 */
GMainContext *
es_storage_notifier_get_context (EsStorageNotifier *self)
{
  g_return_val_if_fail (ES_IS_STORAGE_NOTIFIER (self), NULL);

  return PRIV (self)->context;
}

/* Backends: a default for give-up-timeout other than the base's, from the
 * subclass's instance init (the property is not G_PARAM_CONSTRUCT). */
void
_es_storage_notifier_set_default_give_up_timeout (EsStorageNotifier *self,
                                                  guint              timeout)
{
  PRIV (self)->give_up_timeout = timeout;
}

guint
_es_storage_notifier_get_n_reads (EsStorageNotifier *self)
{
  return (guint) g_atomic_int_get (&PRIV (self)->n_reads);
}
