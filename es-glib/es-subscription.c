/* es-subscription.c: a named consumer that resumes where it stopped.
 *
 * A subscription is a watch (es-watch.c) started after a checkpoint read
 * from the storage, plus the bookkeeping that stores the checkpoint again
 * as events are consumed. The storage holds the subscription (its row and
 * the exclusive hold, see the "Durable subscriptions" section of
 * es-storage-handle.c); this file only decides when to save.
 *
 * Threads: events, caught-up and errors come from the watch in the main
 * context of the thread that started the subscription; the timer and the
 * completion of background saves run there too. Saves run in GTask worker
 * threads (or in the caller's thread for the synchronous calls), one at a
 * time under save_lock; @lock guards the fields other threads read.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsSubscription:
 *
 * A named, durable consumer of a stream (or of every stream): it resumes
 * after its stored checkpoint when it starts again, in this process or in
 * another one, so that a read model kept from events misses none.
 *
 * A subscription is created with [ctor@Es.Subscription.new] and started
 * with [method@Es.Subscription.start]. The first start of a name stores it
 * in the database with an initial checkpoint chosen by
 * [property@Es.Subscription:start-from] (the beginning, the end, or a
 * given position), before [method@Es.Subscription.start] returns; every
 * later start of that name resumes after the checkpoint stored, and the
 * start settings are ignored. Events are then emitted in order through
 * [signal@Es.Subscription::event] in the thread-default main context of the
 * thread that started it, as a [class@Es.Watch] does, first the stored
 * ones, then [signal@Es.Subscription::caught-up], then new events as they
 * are committed. Positions are stream versions, or for
 * <code>@<!-- -->all</code> sequence ids.
 *
 * ## At-least-once (the default)
 *
 * Once the handlers of [signal@Es.Subscription::event] for an event have
 * returned, the checkpoint may move past it. It is stored in batches:
 * when [property@Es.Subscription:checkpoint-batch] positions are pending,
 * before the next event is emitted (the commit happens in the
 * subscription's thread, so its main loop waits for it, once per batch);
 * and [property@Es.Subscription:checkpoint-delay] milliseconds after the
 * first pending one, in a worker thread (a timer that exists only while
 * something is pending: an idle subscription does nothing).
 * [method@Es.Subscription.stop] and [method@Es.Subscription.flush] store
 * what is pending at once. After a crash the events after the stored
 * checkpoint are emitted again: never more than a batch. Make handlers
 * idempotent, or use %ES_SUBSCRIPTION_FLAGS_KEEP_STATE.
 *
 * ```c
 * static void
 * on_event (EsSubscription *subscription, EsStoredEvent *event, gpointer user_data)
 * {
 *   // Idempotent: an event may come again after a crash.
 *   search_index_put (user_data, es_stored_event_get_stream_id (event),
 *                     es_stored_event_get_data (event));
 * }
 *
 * g_autoptr(EsSubscription) subscription =
 *   es_subscription_new (factory, "search-index", ES_ALL_STREAM, NULL,
 *                        ES_SUBSCRIPTION_FLAGS_NONE);
 * g_signal_connect (subscription, "event", G_CALLBACK (on_event), index);
 * if (!es_subscription_start (subscription, NULL, &error))
 *   g_printerr ("%s\n", error->message);
 * // ... run the main loop; on the way out:
 * es_subscription_stop (subscription, NULL, &error);
 * ```
 *
 * With %ES_SUBSCRIPTION_FLAGS_MANUAL_ACK, the checkpoint moves only to
 * the positions given to [method@Es.Subscription.acknowledge] (an event
 * may be acknowledged later, from an asynchronous job), batched the same
 * way.
 *
 * ## Exactly-once with a state (KEEP_STATE)
 *
 * With %ES_SUBSCRIPTION_FLAGS_KEEP_STATE nothing is stored on its own: the
 * consumer folds events into a state of its own and stores it with
 * [method@Es.Subscription.save_state], which writes the state and the
 * checkpoint in one transaction. On start, [property@Es.Subscription:state]
 * holds the state stored with the checkpoint it resumes after, so each
 * event is applied to the state exactly once, crashes or not.
 *
 * ```c
 * static void
 * on_event (EsSubscription *subscription, EsStoredEvent *event, gpointer user_data)
 * {
 *   Counter *counter = user_data;
 *
 *   counter->total++;
 *   if (counter->total % 100 == 0)
 *     {
 *       g_autoptr(GBytes) state = g_bytes_new (&counter->total, sizeof counter->total);
 *       g_autoptr(GError) error = NULL;
 *
 *       if (!es_subscription_save_state (subscription, state,
 *                                        es_stored_event_get_sequence_id (event),
 *                                        NULL, &error))
 *         g_warning ("%s", error->message);
 *     }
 * }
 *
 * subscription = es_subscription_new (factory, "counter", ES_ALL_STREAM, NULL,
 *                                     ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
 * g_signal_connect (subscription, "event", G_CALLBACK (on_event), &counter);
 * if (es_subscription_start (subscription, NULL, &error))
 *   {
 *     GBytes *state = es_subscription_get_state (subscription);
 *     // NULL on the first start; otherwise what was saved with the checkpoint
 *     if (state != NULL)
 *       memcpy (&counter.total, g_bytes_get_data (state, NULL), sizeof counter.total);
 *   }
 * ```
 *
 * ## Filters
 *
 * With a filter, only matching events are emitted, but the others still
 * advance [property@Es.Subscription:position] and (in the default mode, and
 * with %ES_SUBSCRIPTION_FLAGS_MANUAL_ACK once everything emitted is
 * acknowledged) the checkpoint, so a subscription that rarely matches does
 * not read the same events again on every start. With
 * %ES_SUBSCRIPTION_FLAGS_KEEP_STATE pass
 * [property@Es.Subscription:position] to [method@Es.Subscription.save_state]
 * to save past them.
 *
 * ## One consumer at a time
 *
 * A subscription is consumed by one handle at a time, across processes and
 * machines using the database: [method@Es.Subscription.start] waits while
 * another process holds the name, and takes over when it stops or dies
 * (within a bound each backend documents), or fails with %ES_ERROR_BUSY
 * with %ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN. A second handle on a name
 * already consumed through the same factory (or storage) fails with
 * %ES_ERROR_BUSY at once: it could only wait for itself.
 *
 * ## Ending
 *
 * [method@Es.Subscription.stop] stops emitting, stores the pending
 * checkpoint (not with %ES_SUBSCRIPTION_FLAGS_KEEP_STATE) and releases
 * the name for another consumer. Closing the factory stops its
 * subscriptions the same way. Dropping the last reference to a started
 * subscription stops and releases it without storing what is pending: the
 * events after the stored checkpoint come again on the next start.
 *
 * A subscription whose stream is hard-deleted emits
 * [signal@Es.Subscription::error] with %ES_ERROR_STREAM_DELETED; one whose
 * checkpoint cannot be stored, or whose database becomes unusable, emits
 * it with the reason. Either way it is stopped and released afterwards,
 * without storing what is pending.
 *
 * Stored subscriptions are listed, moved and deleted through the factory:
 * [method@Es.StreamFactory.list_subscriptions],
 * [method@Es.StreamFactory.reset_subscription],
 * [method@Es.StreamFactory.delete_subscription].
 *
 * Since: 0.2
 */

typedef enum
{
  STATUS_IDLE,
  STATUS_STARTING,
  STATUS_ACTIVE,
} Status;

/* Bits of notify_mask: properties notified from an idle source. */
enum
{
  NOTIFY_POSITION   = 1 << 0,
  NOTIFY_LAG        = 1 << 1,
  NOTIFY_CHECKPOINT = 1 << 2,
  NOTIFY_STATE      = 1 << 3,
  NOTIFY_ACTIVE     = 1 << 4,
  NOTIFY_CAUGHT_UP  = 1 << 5,
};

struct _EsSubscription
{
  GObject              parent_instance;

  EsStreamFactory     *factory;         /* (owned) */
  char                *name;            /* (owned) */
  char                *stream_id;       /* (owned) ES_ALL_STREAM for every stream */
  EsEventFilter       *filter;          /* (owned) (nullable) */
  EsSubscriptionFlags  flags;
  EsSubscriptionStart  start_from;
  gint64               start_position;
  guint                checkpoint_batch;
  guint                checkpoint_delay;

  GMutex               lock;            /* guards what follows */
  Status               status;
  GMainContext        *context;         /* (owned) (nullable) where it delivers */
  EsWatch             *watch;           /* (owned) (nullable) */
  GCancellable        *start_cancellable; /* (owned) (nullable) ends a start on stop */
  gint64               position;        /* last delivered or skipped */
  gint64               emitting;        /* the event whose `event` handlers run, 0 */
  gint64               last_match;      /* last delivered (matching) */
  gint64               checkpoint;      /* last stored */
  gint64               pending;         /* where the checkpoint may move */
  gint64               save_target;     /* what the next save stores */
  gint64               head;
  gint64               lag;
  gboolean             caught_up;
  GBytes              *state;           /* (owned) (nullable) */
  GSource             *timer;           /* (owned) (nullable) */
  GSource             *notify_source;   /* (owned) (nullable) */
  guint                notify_mask;
  gboolean             saving;          /* a background save is in flight */
  gboolean             want_save;       /* another save is wanted after it */
  gboolean             released;        /* guarded by save_lock too */
  guint                n_saves;

  GMutex               save_lock;       /* one save at a time */
};

enum {
  PROP_0,
  PROP_FACTORY,
  PROP_NAME,
  PROP_STREAM_ID,
  PROP_FILTER,
  PROP_FLAGS,
  PROP_START_FROM,
  PROP_START_POSITION,
  PROP_CHECKPOINT_BATCH,
  PROP_CHECKPOINT_DELAY,
  PROP_POSITION,
  PROP_CHECKPOINT,
  PROP_LAG,
  PROP_ACTIVE,
  PROP_CAUGHT_UP,
  PROP_STATE,
  N_PROPS
};

enum {
  SIGNAL_EVENT,
  SIGNAL_CAUGHT_UP,
  SIGNAL_ERROR,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (EsSubscription, es_subscription, G_TYPE_OBJECT)

static void stop_internal (EsSubscription *self,
                           gboolean        flush,
                           GError        **error);

static gboolean
is_all (EsSubscription *self)
{
  return g_str_equal (self->stream_id, ES_ALL_STREAM);
}

/* The stream id as the storage takes it: NULL for every stream. */
static const char *
storage_stream_id (EsSubscription *self)
{
  return is_all (self) ? NULL : self->stream_id;
}

static EsStorageHandle *
get_storage (EsSubscription *self)
{
  return es_stream_factory_get_storage (self->factory);
}

/* ---------------------------------------------------------------------- *
 * Notifications                                                           *
 * ---------------------------------------------------------------------- */

static const guint notify_props[] = {
  PROP_POSITION, PROP_LAG, PROP_CHECKPOINT, PROP_STATE, PROP_ACTIVE, PROP_CAUGHT_UP,
};

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static GWeakRef *
weak_ref_new (gpointer object)
{
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  g_weak_ref_init (ref, object);
  return ref;
}

static gboolean
notify_cb (gpointer user_data)
{
  g_autoptr(EsSubscription) self = g_weak_ref_get (user_data);
  guint mask;

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_mutex_lock (&self->lock);
  mask = self->notify_mask;
  self->notify_mask = 0;
  g_clear_pointer (&self->notify_source, g_source_unref);
  g_mutex_unlock (&self->lock);

  g_object_freeze_notify (G_OBJECT (self));
  for (guint i = 0; i < G_N_ELEMENTS (notify_props); i++)
    if ((mask & (1u << i)) != 0)
      g_object_notify_by_pspec (G_OBJECT (self), properties[notify_props[i]]);
  g_object_thaw_notify (G_OBJECT (self));

  return G_SOURCE_REMOVE;
}

/* Notifies @mask from an idle source in the subscription's main context:
 * at most once per dispatch, however many events moved the position. */
static void
notify_later (EsSubscription *self,
              guint           mask)
{
  g_mutex_lock (&self->lock);
  self->notify_mask |= mask;
  if (self->notify_source == NULL && self->context != NULL)
    {
      self->notify_source = g_idle_source_new ();
      g_source_set_priority (self->notify_source, G_PRIORITY_DEFAULT);
      g_source_set_callback (self->notify_source, notify_cb, weak_ref_new (self),
                             weak_ref_free);
      g_source_set_static_name (self->notify_source, "[es-glib] subscription notify");
      g_source_attach (self->notify_source, self->context);
    }
  g_mutex_unlock (&self->lock);
}

/* Whether the caller runs in the subscription's main context. */
static gboolean
in_context (EsSubscription *self)
{
  GMainContext *current = g_main_context_get_thread_default ();

  if (self->context == NULL)
    return TRUE;
  if (current == NULL)
    current = g_main_context_default ();
  return current == self->context || g_main_context_is_owner (self->context);
}

/* Notifies one property now when called from the subscription's context,
 * from there later otherwise. */
static void
notify_soon (EsSubscription *self,
             guint           prop,
             guint           bit)
{
  if (in_context (self))
    g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
  else
    notify_later (self, bit);
}

/* ---------------------------------------------------------------------- *
 * Saving checkpoints                                                      *
 * ---------------------------------------------------------------------- */

/* Stores save_target (and @state with it when not NULL, at @position)
 * unless it is stored already. Any thread; one save at a time. With
 * @state, @position is what to store; otherwise save_target. Sets
 * *@out_changed when the stored checkpoint moved. */
static gboolean
save_now (EsSubscription  *self,
          GBytes          *state,
          gint64           position,
          gboolean        *out_changed,
          GCancellable    *cancellable,
          GError         **error)
{
  gint64 target, stored;
  gboolean released, ok = TRUE;

  *out_changed = FALSE;

  g_mutex_lock (&self->save_lock);

  g_mutex_lock (&self->lock);
  target = state != NULL ? position : self->save_target;
  stored = self->checkpoint;
  released = self->released;
  g_mutex_unlock (&self->lock);

  if (released)
    {
      /* Not ours any more: another consumer may hold the name. */
      if (state != NULL)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_FAILED,
                       /* Translators: %s is a subscription name */
                       _("Subscription '%s' is not started"), self->name);
          ok = FALSE;
        }
    }
  else if (state != NULL || target > stored)
    {
      ok = es_storage_handle_save_checkpoint (get_storage (self), self->name,
                                              storage_stream_id (self), target, state,
                                              cancellable, error);
      if (ok)
        {
          g_mutex_lock (&self->lock);
          self->checkpoint = MAX (self->checkpoint, target);
          if (state != NULL)
            {
              g_clear_pointer (&self->state, g_bytes_unref);
              self->state = g_bytes_ref (state);
            }
          self->n_saves++;
          g_mutex_unlock (&self->lock);
          *out_changed = TRUE;
        }
    }

  g_mutex_unlock (&self->save_lock);
  return ok;
}

static void request_save (EsSubscription *self);
static void fail         (EsSubscription *self,
                          const GError   *error);

static void
save_in_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  EsSubscription *self = source_object;
  GError *error = NULL;
  gboolean changed;

  if (save_now (self, NULL, 0, &changed, NULL, &error))
    g_task_return_boolean (task, changed);
  else
    g_task_return_error (task, error);
}

static void
save_done (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  EsSubscription *self = ES_SUBSCRIPTION (source);
  g_autoptr(GError) error = NULL;
  gboolean changed, again, active;

  changed = g_task_propagate_boolean (G_TASK (result), &error);

  g_mutex_lock (&self->lock);
  self->saving = FALSE;
  again = self->want_save;
  self->want_save = FALSE;
  active = self->status == STATUS_ACTIVE;
  g_mutex_unlock (&self->lock);

  if (error != NULL)
    {
      if (active)
        fail (self, error);
      return;
    }

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT]);
  if (again && active)
    request_save (self);
}

/* Starts a background save of save_target, or asks for one after the save
 * in flight (saves are coalesced: the next one stores the newest target).
 * From the subscription's context. */
static void
request_save (EsSubscription *self)
{
  g_autoptr(GTask) task = NULL;

  g_mutex_lock (&self->lock);
  if (self->saving)
    {
      self->want_save = TRUE;
      g_mutex_unlock (&self->lock);
      return;
    }
  self->saving = TRUE;
  g_mutex_unlock (&self->lock);

  task = g_task_new (self, NULL, save_done, NULL);
  g_task_set_source_tag (task, request_save);
  g_task_set_name (task, "[es-glib] subscription checkpoint");
  g_task_run_in_thread (task, save_in_thread);
}

/* Removes the timer, if any. Any thread. */
static void
clear_timer (EsSubscription *self)
{
  GSource *timer;

  g_mutex_lock (&self->lock);
  timer = g_steal_pointer (&self->timer);
  g_mutex_unlock (&self->lock);

  if (timer != NULL)
    {
      g_source_destroy (timer);
      g_source_unref (timer);
    }
}

static gboolean
timer_cb (gpointer user_data)
{
  g_autoptr(EsSubscription) self = g_weak_ref_get (user_data);
  gboolean active;

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_mutex_lock (&self->lock);
  g_clear_pointer (&self->timer, g_source_unref);
  active = self->status == STATUS_ACTIVE;
  self->save_target = self->pending;
  g_mutex_unlock (&self->lock);

  if (active)
    request_save (self);
  return G_SOURCE_REMOVE;
}

/* Emits ::error and stops, without storing what is pending. */
static void
fail (EsSubscription *self,
      const GError   *error)
{
  gboolean active;

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE;
  g_mutex_unlock (&self->lock);

  if (!active)
    return;
  g_signal_emit (self, signals[SIGNAL_ERROR], 0, error);
  stop_internal (self, FALSE, NULL);
}

/* The checkpoint may move to @position. When that makes a batch (the
 * pending checkpoint checkpoint-batch positions past the stored one), it
 * is stored now, in this thread, before the next event is emitted: a
 * crash never emits more than a batch again. Otherwise the timer is
 * armed for the first pending position. From the subscription's
 * context. */
static void
move_pending (EsSubscription *self,
              gint64          position)
{
  gboolean batch_full = FALSE;
  gboolean arm = FALSE;

  g_mutex_lock (&self->lock);
  if (position <= self->pending)
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  self->pending = position;
  if ((guint64) (self->pending - self->checkpoint) >= self->checkpoint_batch)
    {
      batch_full = TRUE;
      self->save_target = self->pending;
    }
  else if (self->checkpoint_delay > 0 && self->timer == NULL)
    {
      arm = TRUE;
      self->timer = g_timeout_source_new (self->checkpoint_delay);
      g_source_set_callback (self->timer, timer_cb, weak_ref_new (self), weak_ref_free);
      g_source_set_static_name (self->timer, "[es-glib] subscription checkpoint delay");
    }
  g_mutex_unlock (&self->lock);

  if (batch_full)
    {
      g_autoptr(GError) error = NULL;
      gboolean changed;

      /* The save covers every pending position: no timer until the next.
       * It waits for a delayed save in flight, if any. */
      clear_timer (self);
      if (!save_now (self, NULL, 0, &changed, NULL, &error))
        fail (self, error);
      else if (changed)
        g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT]);
    }
  else if (arm)
    {
      g_mutex_lock (&self->lock);
      if (self->timer != NULL)
        g_source_attach (self->timer, self->context);
      g_mutex_unlock (&self->lock);
    }
}

/* ---------------------------------------------------------------------- *
 * Delivery                                                                *
 * ---------------------------------------------------------------------- */

static gint64
event_position (EsSubscription *self,
                EsStoredEvent  *event)
{
  return is_all (self) ? es_stored_event_get_sequence_id (event)
                       : es_stored_event_get_version (event);
}

/* Lag as it stands: positions between the position and the head, the
 * head being the greatest of what was read at start, what was delivered
 * since, and the last event the watch holds from the notifier (once
 * caught up, that is what remains to emit). Called with @lock held. */
static gint64
compute_lag_locked (EsSubscription *self)
{
  gint64 head = self->head;

  if (self->watch != NULL)
    head = MAX (head, _es_watch_get_pending_last (self->watch));
  return MAX (head - self->position, 0);
}

static void
on_watch_event (EsWatch       *watch,
                EsStoredEvent *event,
                gpointer       user_data)
{
  g_autoptr(EsSubscription) self = g_object_ref (ES_SUBSCRIPTION (user_data));
  gint64 position = event_position (self, event);
  gboolean deliver, active, advance = FALSE;

  deliver = self->filter == NULL || es_event_filter_matches (self->filter, event);
  if (deliver)
    {
      /* Its handlers may acknowledge it, or save the state that folds
       * it, from inside the emission: it counts as delivered to them. */
      g_mutex_lock (&self->lock);
      self->emitting = position;
      g_mutex_unlock (&self->lock);
      g_signal_emit (self, signals[SIGNAL_EVENT], 0, event);
    }

  g_mutex_lock (&self->lock);
  self->emitting = 0;
  /* A handler that stopped the subscription: this event was not
   * consumed to the end, it comes again on the next start. */
  active = self->status == STATUS_ACTIVE && self->watch == watch;
  if (active)
    {
      self->position = position;
      if (deliver)
        self->last_match = position;
      if (position > self->head)
        self->head = position;
      self->lag = compute_lag_locked (self);

      if ((self->flags & (ES_SUBSCRIPTION_FLAGS_MANUAL_ACK | ES_SUBSCRIPTION_FLAGS_KEEP_STATE)) == 0)
        advance = TRUE;
      else if ((self->flags & ES_SUBSCRIPTION_FLAGS_MANUAL_ACK) != 0 && !deliver &&
               self->pending >= self->last_match)
        advance = TRUE; /* everything emitted is acknowledged: skip along */
    }
  g_mutex_unlock (&self->lock);

  if (!active)
    return;

  if (advance)
    move_pending (self, position);
  notify_later (self, NOTIFY_POSITION | NOTIFY_LAG);
}

static void
on_watch_caught_up (EsWatch  *watch,
                    gpointer  user_data)
{
  g_autoptr(EsSubscription) self = g_object_ref (ES_SUBSCRIPTION (user_data));
  gboolean active;

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE && self->watch == watch;
  if (active)
    {
      self->caught_up = TRUE;
      self->lag = compute_lag_locked (self);
    }
  g_mutex_unlock (&self->lock);

  if (!active)
    return;

  g_object_freeze_notify (G_OBJECT (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAUGHT_UP]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAG]);
  g_object_thaw_notify (G_OBJECT (self));
  g_signal_emit (self, signals[SIGNAL_CAUGHT_UP], 0);
}

static void
on_watch_error (EsWatch      *watch,
                const GError *error,
                gpointer      user_data)
{
  g_autoptr(EsSubscription) self = g_object_ref (ES_SUBSCRIPTION (user_data));
  gboolean active;

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE && self->watch == watch;
  g_mutex_unlock (&self->lock);

  if (!active)
    return;

  g_signal_emit (self, signals[SIGNAL_ERROR], 0, error);
  stop_internal (self, FALSE, NULL);
}

/* ---------------------------------------------------------------------- *
 * Starting and stopping                                                   *
 * ---------------------------------------------------------------------- */

/* The head of the subscription's stream: its current version, or for
 * every stream the last position used. */
static gboolean
read_head (EsSubscription  *self,
           gint64          *out_head,
           GCancellable    *cancellable,
           GError         **error)
{
  g_autoptr(EsStreamInfo) info = NULL;

  info = es_storage_handle_get_stream_info (get_storage (self), storage_stream_id (self),
                                            cancellable, error);
  if (info == NULL)
    return FALSE;
  *out_head = es_stream_info_get_current_version (info);
  return TRUE;
}

/* Validates, takes the name, loads or creates the stored subscription.
 * Any thread; on failure nothing is held and nothing stored. */
static gboolean
prepare (EsSubscription  *self,
         GCancellable    *cancellable,
         GError         **error)
{
  EsStorageHandle *storage;
  g_autoptr(EsSubscriptionInfo) info = NULL;
  g_autoptr(GBytes) state = NULL;
  GError *local_error = NULL;
  gint64 head = 0, start = 0;

  if (!_es_stream_factory_check_open (self->factory, error))
    return FALSE;
  if (!_es_validate_subscription_name (self->name, error))
    return FALSE;
  if (!is_all (self) && !_es_validate_stream_id (self->stream_id, FALSE, error))
    return FALSE;
  if (self->filter != NULL && !es_event_filter_validate (self->filter, error))
    return FALSE;
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  storage = get_storage (self);
  if (!es_storage_handle_acquire_subscription (storage, self->name,
                                               (self->flags & ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN) == 0,
                                               cancellable, error))
    return FALSE;

  info = es_storage_handle_get_subscription (storage, self->name, cancellable, &local_error);
  if (local_error != NULL)
    goto failed;
  if (!read_head (self, &head, cancellable, &local_error))
    goto failed;

  if (info != NULL)
    {
      const char *stored_stream = es_subscription_info_get_stream_id (info);

      if (g_strcmp0 (stored_stream, self->stream_id) != 0)
        {
          local_error = g_error_new (ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                                     /* Translators: a subscription name, then two stream ids */
                                     _("Subscription '%s' follows stream '%s', not '%s'"),
                                     self->name, stored_stream, self->stream_id);
          goto failed;
        }
      start = es_subscription_info_get_checkpoint (info);
      if (es_subscription_info_get_state (info) != NULL)
        state = g_bytes_ref (es_subscription_info_get_state (info));
    }
  else
    {
      switch (self->start_from)
        {
        case ES_SUBSCRIPTION_START_BEGINNING:
          start = 0;
          break;
        case ES_SUBSCRIPTION_START_END:
          start = head;
          break;
        case ES_SUBSCRIPTION_START_POSITION:
        default:
          start = self->start_position;
          if (start > head)
            {
              local_error = g_error_new (ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                                         /* Translators: a position, a subscription name, a stream id, its head */
                                         _("Start position %" G_GINT64_FORMAT " of subscription '%s' is beyond "
                                           "the head of stream '%s' (%" G_GINT64_FORMAT ")"),
                                         start, self->name, self->stream_id, head);
              goto failed;
            }
          break;
        }

      /* Stored now: a subscription started from the end or a position
       * keeps its place even if the process dies before its first save. */
      if (!es_storage_handle_save_checkpoint (storage, self->name, storage_stream_id (self),
                                              start, NULL, cancellable, &local_error))
        goto failed;
    }

  g_mutex_lock (&self->save_lock);
  g_mutex_lock (&self->lock);
  self->released = FALSE;
  self->position = start;
  self->last_match = start;
  self->checkpoint = start;
  self->pending = start;
  self->save_target = start;
  self->head = MAX (head, start);
  self->lag = self->head - start;
  self->caught_up = FALSE;
  g_clear_pointer (&self->state, g_bytes_unref);
  self->state = g_steal_pointer (&state);
  g_mutex_unlock (&self->lock);
  g_mutex_unlock (&self->save_lock);
  return TRUE;

failed:
  es_storage_handle_release_subscription (storage, self->name);
  g_propagate_error (error, local_error);
  return FALSE;
}

/* Begins delivering, in the subscription's context (pushed as
 * thread-default, so that the watch emits there). Returns FALSE (and
 * releases) when stop() was called meanwhile. */
static gboolean
go_live (EsSubscription  *self,
         GError         **error)
{
  EsWatch *watch;
  gint64 after;

  g_mutex_lock (&self->lock);
  if (self->status != STATUS_STARTING)
    {
      g_mutex_unlock (&self->lock);
      g_mutex_lock (&self->save_lock);
      self->released = TRUE;
      g_mutex_unlock (&self->save_lock);
      es_storage_handle_release_subscription (get_storage (self), self->name);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                   /* Translators: %s is a subscription name */
                   _("Subscription '%s' was stopped while it started"), self->name);
      return FALSE;
    }
  after = self->position;
  g_mutex_unlock (&self->lock);

  g_main_context_push_thread_default (self->context);
  watch = _es_watch_new (self->factory, self->stream_id, after);
  g_main_context_pop_thread_default (self->context);

  g_signal_connect (watch, "event", G_CALLBACK (on_watch_event), self);
  g_signal_connect (watch, "caught-up", G_CALLBACK (on_watch_caught_up), self);
  g_signal_connect (watch, "error", G_CALLBACK (on_watch_error), self);

  g_mutex_lock (&self->lock);
  self->watch = watch;
  self->status = STATUS_ACTIVE;
  g_clear_object (&self->start_cancellable);
  g_mutex_unlock (&self->lock);

  g_object_freeze_notify (G_OBJECT (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ACTIVE]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_POSITION]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAG]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  g_object_thaw_notify (G_OBJECT (self));
  return TRUE;
}

/* Marks the subscription starting, in the caller's context; FALSE with an
 * error when it is already started or starting. */
static gboolean
begin_start (EsSubscription  *self,
             GCancellable    *cancellable,
             GError         **error)
{
  g_mutex_lock (&self->lock);
  if (self->status != STATUS_IDLE)
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, ES_ERROR, ES_ERROR_BUSY,
                   /* Translators: %s is a subscription name */
                   _("Subscription '%s' is already started"), self->name);
      return FALSE;
    }
  self->status = STATUS_STARTING;
  g_clear_pointer (&self->context, g_main_context_unref);
  self->context = g_main_context_ref_thread_default ();
  g_clear_object (&self->start_cancellable);
  self->start_cancellable = g_cancellable_new ();
  if (cancellable != NULL)
    g_signal_connect_object (cancellable, "cancelled", G_CALLBACK (g_cancellable_cancel),
                             self->start_cancellable, G_CONNECT_SWAPPED);
  if (g_cancellable_is_cancelled (cancellable))
    g_cancellable_cancel (self->start_cancellable);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static void
start_failed (EsSubscription *self)
{
  g_mutex_lock (&self->lock);
  if (self->status == STATUS_STARTING)
    self->status = STATUS_IDLE;
  g_clear_object (&self->start_cancellable);
  g_mutex_unlock (&self->lock);
}

static GCancellable *
ref_start_cancellable (EsSubscription *self)
{
  GCancellable *cancellable;

  g_mutex_lock (&self->lock);
  cancellable = self->start_cancellable != NULL ? g_object_ref (self->start_cancellable) : NULL;
  g_mutex_unlock (&self->lock);
  return cancellable;
}

/* Stops delivering; stores what is pending when @flush (and not
 * KEEP_STATE); releases the name. Any thread. */
static void
stop_internal (EsSubscription  *self,
               gboolean         flush,
               GError         **error)
{
  g_autoptr(EsWatch) watch = NULL;
  Status status;
  gboolean changed = FALSE;

  g_mutex_lock (&self->lock);
  status = self->status;
  if (status == STATUS_STARTING && self->start_cancellable != NULL)
    {
      /* The start in progress sees this and gives the name back. */
      self->status = STATUS_IDLE;
      g_cancellable_cancel (self->start_cancellable);
      g_mutex_unlock (&self->lock);
      return;
    }
  if (status != STATUS_ACTIVE)
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  self->status = STATUS_IDLE;
  watch = g_steal_pointer (&self->watch);
  g_mutex_unlock (&self->lock);

  if (watch != NULL)
    {
      /* Waits for an emission in progress in another thread. */
      es_watch_stop (watch);
      g_signal_handlers_disconnect_by_data (watch, self);
    }
  clear_timer (self);

  if (flush && (self->flags & ES_SUBSCRIPTION_FLAGS_KEEP_STATE) == 0)
    {
      g_mutex_lock (&self->lock);
      self->save_target = self->pending;
      g_mutex_unlock (&self->lock);
      save_now (self, NULL, 0, &changed, NULL, error);
    }

  /* Waits for a save in flight; one queued finds the name released. */
  g_mutex_lock (&self->save_lock);
  self->released = TRUE;
  g_mutex_unlock (&self->save_lock);
  es_storage_handle_release_subscription (get_storage (self), self->name);

  g_object_freeze_notify (G_OBJECT (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ACTIVE]);
  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT]);
  g_object_thaw_notify (G_OBJECT (self));
}

/* The factory closes: stop, storing what is pending. */
void
_es_subscription_close (EsSubscription *self)
{
  stop_internal (self, TRUE, NULL);
}

guint
_es_subscription_get_n_saves (EsSubscription *self)
{
  guint n;

  g_mutex_lock (&self->lock);
  n = self->n_saves;
  g_mutex_unlock (&self->lock);
  return n;
}

gboolean
_es_subscription_has_timer (EsSubscription *self)
{
  gboolean armed;

  g_mutex_lock (&self->lock);
  armed = self->timer != NULL;
  g_mutex_unlock (&self->lock);
  return armed;
}

/* ---------------------------------------------------------------------- *
 * GObject                                                                 *
 * ---------------------------------------------------------------------- */

static void
es_subscription_dispose (GObject *object)
{
  EsSubscription *self = ES_SUBSCRIPTION (object);

  /* Without flushing: documented. */
  stop_internal (self, FALSE, NULL);
  if (self->factory != NULL)
    _es_stream_factory_remove_subscription (self->factory, self);

  G_OBJECT_CLASS (es_subscription_parent_class)->dispose (object);
}

static void
es_subscription_finalize (GObject *object)
{
  EsSubscription *self = ES_SUBSCRIPTION (object);

  if (self->notify_source != NULL)
    {
      g_source_destroy (self->notify_source);
      g_source_unref (self->notify_source);
    }
  g_clear_object (&self->factory);
  g_free (self->name);
  g_free (self->stream_id);
  g_clear_object (&self->filter);
  g_clear_object (&self->start_cancellable);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->state, g_bytes_unref);
  g_mutex_clear (&self->lock);
  g_mutex_clear (&self->save_lock);

  G_OBJECT_CLASS (es_subscription_parent_class)->finalize (object);
}

static void
es_subscription_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  EsSubscription *self = ES_SUBSCRIPTION (object);

  switch (prop_id)
    {
    case PROP_FACTORY:
      g_value_set_object (value, self->factory);
      break;
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;
    case PROP_FILTER:
      g_value_set_object (value, self->filter);
      break;
    case PROP_FLAGS:
      g_value_set_flags (value, self->flags);
      break;
    case PROP_START_FROM:
      g_value_set_enum (value, es_subscription_get_start_from (self));
      break;
    case PROP_START_POSITION:
      g_value_set_int64 (value, es_subscription_get_start_position (self));
      break;
    case PROP_CHECKPOINT_BATCH:
      g_value_set_uint (value, es_subscription_get_checkpoint_batch (self));
      break;
    case PROP_CHECKPOINT_DELAY:
      g_value_set_uint (value, es_subscription_get_checkpoint_delay (self));
      break;
    case PROP_POSITION:
      g_value_set_int64 (value, es_subscription_get_position (self));
      break;
    case PROP_CHECKPOINT:
      g_value_set_int64 (value, es_subscription_get_checkpoint (self));
      break;
    case PROP_LAG:
      g_value_set_int64 (value, es_subscription_get_lag (self));
      break;
    case PROP_ACTIVE:
      g_value_set_boolean (value, es_subscription_get_active (self));
      break;
    case PROP_CAUGHT_UP:
      g_value_set_boolean (value, es_subscription_get_caught_up (self));
      break;
    case PROP_STATE:
      g_value_take_boxed (value, es_subscription_get_state (self) != NULL
                                 ? g_bytes_ref (es_subscription_get_state (self)) : NULL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_subscription_set_property (GObject      *object,
                              guint         prop_id,
                              const GValue *value,
                              GParamSpec   *pspec)
{
  EsSubscription *self = ES_SUBSCRIPTION (object);

  switch (prop_id)
    {
    case PROP_FACTORY:
      self->factory = g_value_dup_object (value);
      break;
    case PROP_NAME:
      self->name = g_value_dup_string (value);
      break;
    case PROP_STREAM_ID:
      {
        const char *stream_id = g_value_get_string (value);

        self->stream_id = g_strdup (stream_id != NULL ? stream_id : ES_ALL_STREAM);
      }
      break;
    case PROP_FILTER:
      self->filter = g_value_dup_object (value);
      break;
    case PROP_FLAGS:
      self->flags = g_value_get_flags (value);
      break;
    case PROP_START_FROM:
      es_subscription_set_start_from (self, g_value_get_enum (value));
      break;
    case PROP_START_POSITION:
      es_subscription_set_start_position (self, g_value_get_int64 (value));
      break;
    case PROP_CHECKPOINT_BATCH:
      es_subscription_set_checkpoint_batch (self, g_value_get_uint (value));
      break;
    case PROP_CHECKPOINT_DELAY:
      es_subscription_set_checkpoint_delay (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_subscription_constructed (GObject *object)
{
  EsSubscription *self = ES_SUBSCRIPTION (object);

  G_OBJECT_CLASS (es_subscription_parent_class)->constructed (object);

  g_assert (self->factory != NULL);
  if (self->stream_id == NULL)
    self->stream_id = g_strdup (ES_ALL_STREAM);
  if (self->name == NULL)
    self->name = g_strdup ("");
  _es_stream_factory_add_subscription (self->factory, self);
}

static void
es_subscription_class_init (EsSubscriptionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = es_subscription_constructed;
  object_class->dispose = es_subscription_dispose;
  object_class->finalize = es_subscription_finalize;
  object_class->get_property = es_subscription_get_property;
  object_class->set_property = es_subscription_set_property;

  /**
   * EsSubscription:factory:
   *
   * The factory whose database stores the subscription.
   *
   * Since: 0.2
   */
  properties[PROP_FACTORY] =
    g_param_spec_object ("factory", NULL, NULL, ES_TYPE_STREAM_FACTORY,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:name:
   *
   * The subscription's name: what identifies it in the database, non-empty
   * UTF-8 of at most %ES_SUBSCRIPTION_NAME_MAX_BYTES bytes (checked by
   * [method@Es.Subscription.start]).
   *
   * Since: 0.2
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:stream-id:
   *
   * The stream followed, or %ES_ALL_STREAM for every stream (also what
   * %NULL given at construction reads back as).
   *
   * Since: 0.2
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:filter:
   *
   * Which events are emitted, or %NULL for all. Events the filter rejects
   * still advance [property@Es.Subscription:position].
   *
   * Since: 0.2
   */
  properties[PROP_FILTER] =
    g_param_spec_object ("filter", NULL, NULL, ES_TYPE_EVENT_FILTER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:flags:
   *
   * How the subscription checkpoints and starts.
   *
   * Since: 0.2
   */
  properties[PROP_FLAGS] =
    g_param_spec_flags ("flags", NULL, NULL, ES_TYPE_SUBSCRIPTION_FLAGS,
                        ES_SUBSCRIPTION_FLAGS_NONE,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:start-from:
   *
   * Where the first start of the name begins, when no checkpoint is
   * stored yet. Ignored once one is.
   *
   * Since: 0.2
   */
  properties[PROP_START_FROM] =
    g_param_spec_enum ("start-from", NULL, NULL, ES_TYPE_SUBSCRIPTION_START,
                       ES_SUBSCRIPTION_START_BEGINNING,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:start-position:
   *
   * With %ES_SUBSCRIPTION_START_POSITION, the position to start after (a
   * version, or for <code>@<!-- -->all</code> a sequence id), from 0 to the head of the
   * stream.
   *
   * Since: 0.2
   */
  properties[PROP_START_POSITION] =
    g_param_spec_int64 ("start-position", NULL, NULL, G_MININT64, G_MAXINT64, 0,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:checkpoint-batch:
   *
   * How many positions may be pending before the checkpoint is stored
   * (at least 1; 1 stores after every event): the most events a crash
   * makes the subscription emit again. The store happens before the next
   * event is emitted.
   *
   * Since: 0.2
   */
  properties[PROP_CHECKPOINT_BATCH] =
    g_param_spec_uint ("checkpoint-batch", NULL, NULL, 1, G_MAXUINT, 100,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:checkpoint-delay:
   *
   * How long, in milliseconds, the first pending position waits before the
   * checkpoint is stored even though the batch is not full; 0 for no
   * delay-based saves (batches, flush and stop only).
   *
   * Since: 0.2
   */
  properties[PROP_CHECKPOINT_DELAY] =
    g_param_spec_uint ("checkpoint-delay", NULL, NULL, 0, G_MAXUINT, 1000,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:position:
   *
   * The last position delivered: of the last event whose
   * [signal@Es.Subscription::event] handlers returned, or that the filter
   * skipped. Notified at most once per main-loop dispatch.
   *
   * Since: 0.2
   */
  properties[PROP_POSITION] =
    g_param_spec_int64 ("position", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:checkpoint:
   *
   * The last checkpoint stored: a restart resumes after it.
   *
   * Since: 0.2
   */
  properties[PROP_CHECKPOINT] =
    g_param_spec_int64 ("checkpoint", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:lag:
   *
   * How many positions the subscription is behind the head of its stream:
   * the head (read at start, moved up by what is delivered and by the
   * events committed since that wait to be emitted) minus
   * [property@Es.Subscription:position]. For a stream that is the number
   * of events behind; for <code>@<!-- -->all</code>, of sequence ids. Notified at most
   * once per main-loop dispatch.
   *
   * Since: 0.2
   */
  properties[PROP_LAG] =
    g_param_spec_int64 ("lag", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:active:
   *
   * Whether the subscription is started: it holds its name and delivers.
   *
   * Since: 0.2
   */
  properties[PROP_ACTIVE] =
    g_param_spec_boolean ("active", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:caught-up:
   *
   * Whether the stored history has been delivered (see
   * [signal@Es.Subscription::caught-up]).
   *
   * Since: 0.2
   */
  properties[PROP_CAUGHT_UP] =
    g_param_spec_boolean ("caught-up", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsSubscription:state:
   *
   * With %ES_SUBSCRIPTION_FLAGS_KEEP_STATE: the state stored with the
   * checkpoint, as restored by [method@Es.Subscription.start] (%NULL when
   * none was saved yet), then the last given to
   * [method@Es.Subscription.save_state].
   *
   * Since: 0.2
   */
  properties[PROP_STATE] =
    g_param_spec_boxed ("state", NULL, NULL, G_TYPE_BYTES,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * EsSubscription::event:
   * @self: the subscription
   * @event: the event
   *
   * Emitted for every event after the checkpoint that the filter accepts,
   * once and in order, in the main context of the thread that started the
   * subscription. When the handlers return, the event counts as consumed
   * (in the default mode, the checkpoint may move past it).
   *
   * Since: 0.2
   */
  signals[SIGNAL_EVENT] =
    g_signal_new ("event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ES_TYPE_STORED_EVENT);

  /**
   * EsSubscription::caught-up:
   * @self: the subscription
   *
   * Emitted once the events stored when it started have been delivered;
   * new events follow as they are committed.
   *
   * Since: 0.2
   */
  signals[SIGNAL_CAUGHT_UP] =
    g_signal_new ("caught-up", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * EsSubscription::error:
   * @self: the subscription
   * @error: why it stopped
   *
   * Emitted when the subscription cannot go on: its stream was
   * hard-deleted (%ES_ERROR_STREAM_DELETED), a checkpoint could not be
   * stored, or the database became unusable. It is stopped and its name
   * released afterwards, without storing what was pending.
   *
   * Since: 0.2
   */
  signals[SIGNAL_ERROR] =
    g_signal_new ("error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
es_subscription_init (EsSubscription *self)
{
  g_mutex_init (&self->lock);
  g_mutex_init (&self->save_lock);
  self->start_from = ES_SUBSCRIPTION_START_BEGINNING;
  self->checkpoint_batch = 100;
  self->checkpoint_delay = 1000;
}

/* ---------------------------------------------------------------------- *
 * Public API                                                              *
 * ---------------------------------------------------------------------- */

/**
 * es_subscription_new:
 * @factory: the [class@Es.StreamFactory] whose database stores it
 * @name: the subscription's name
 * @stream_id: (nullable): the stream to follow, or %NULL (or
 *   %ES_ALL_STREAM) for every stream
 * @filter: (nullable): which events to emit, or %NULL for all
 * @flags: how it checkpoints and starts
 *
 * Creates a handle on a durable subscription; nothing is read or stored
 * until [method@Es.Subscription.start]. Set
 * [property@Es.Subscription:start-from] and the checkpoint settings
 * before starting.
 *
 * Returns: (transfer full): a new subscription, not started
 *
 * Since: 0.2
 */
EsSubscription *
es_subscription_new (EsStreamFactory     *factory,
                     const char          *name,
                     const char          *stream_id,
                     EsEventFilter       *filter,
                     EsSubscriptionFlags  flags)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (factory), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);

  return g_object_new (ES_TYPE_SUBSCRIPTION,
                       "factory", factory,
                       "name", name,
                       "stream-id", stream_id,
                       "filter", filter,
                       "flags", flags,
                       NULL);
}

/**
 * es_subscription_start:
 * @self: an [class@Es.Subscription]
 * @cancellable: (nullable): a [class@Gio.Cancellable], which also ends a
 *   wait for another consumer
 * @error: return location for a [struct@GLib.Error]
 *
 * Starts consuming: checks the name, stream id and filter
 * (%ES_ERROR_INVALID_ARGUMENT naming the bad value), takes the name
 * (waiting while another process holds it, unless
 * %ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN; %ES_ERROR_BUSY at once when a
 * handle of this process holds it), then loads the stored checkpoint and
 * state. A name stored for another stream fails with
 * %ES_ERROR_INVALID_ARGUMENT naming both. A new name is stored now, with
 * the checkpoint [property@Es.Subscription:start-from] gives; a start
 * position that is negative or beyond the head of the stream fails with
 * %ES_ERROR_INVALID_ARGUMENT and stores nothing.
 *
 * Events are emitted from the thread-default main context of the calling
 * thread. This may block: while waiting for another consumer, and for the
 * storage. Starting a started subscription fails with %ES_ERROR_BUSY; a
 * stopped one may be started again.
 *
 * Returns: %TRUE once the subscription is active
 *
 * Since: 0.2
 */
gboolean
es_subscription_start (EsSubscription  *self,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_autoptr(GCancellable) start_cancellable = NULL;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!begin_start (self, cancellable, error))
    return FALSE;

  start_cancellable = ref_start_cancellable (self);
  if (!prepare (self, start_cancellable, error))
    {
      start_failed (self);
      return FALSE;
    }

  if (!go_live (self, error))
    {
      start_failed (self);
      return FALSE;
    }
  return TRUE;
}

static void
start_in_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  EsSubscription *self = source_object;
  g_autoptr(GCancellable) start_cancellable = ref_start_cancellable (self);
  GError *error = NULL;

  if (prepare (self, start_cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
start_prepared (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  EsSubscription *self = ES_SUBSCRIPTION (source);
  g_autoptr(GTask) outer = user_data;
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error) || !go_live (self, &error))
    {
      start_failed (self);
      g_task_return_error (outer, error);
      return;
    }
  g_task_return_boolean (outer, TRUE);
}

/**
 * es_subscription_start_async:
 * @self: an [class@Es.Subscription]
 * @cancellable: (nullable): a [class@Gio.Cancellable], which also ends a
 *   wait for another consumer
 * @callback: (scope async) (closure user_data): called once the
 *   subscription is active, or could not start
 * @user_data: data for @callback
 *
 * Starts [method@Es.Subscription.start] without blocking; the waiting and
 * the storage work happen in a worker thread. Events are emitted from the
 * thread-default main context of the caller.
 *
 * Since: 0.2
 */
void
es_subscription_start_async (EsSubscription      *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GTask) outer = NULL;
  g_autoptr(GTask) inner = NULL;
  GError *error = NULL;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  outer = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (outer, es_subscription_start_async);
  g_task_set_check_cancellable (outer, FALSE);

  if (!begin_start (self, cancellable, &error))
    {
      g_task_return_error (outer, error);
      return;
    }

  inner = g_task_new (self, NULL, start_prepared, g_steal_pointer (&outer));
  g_task_set_source_tag (inner, start_in_thread);
  g_task_run_in_thread (inner, start_in_thread);
}

/**
 * es_subscription_start_finish:
 * @self: an [class@Es.Subscription]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Subscription.start_async].
 *
 * Returns: %TRUE once the subscription is active
 *
 * Since: 0.2
 */
gboolean
es_subscription_start_finish (EsSubscription  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_subscription_start_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * es_subscription_stop:
 * @self: an [class@Es.Subscription]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stops consuming: no [signal@Es.Subscription::event] is emitted once this
 * begins (from a handler, the emission in progress completes and its event
 * is not counted as consumed), the pending checkpoint is stored (not with
 * %ES_SUBSCRIPTION_FLAGS_KEEP_STATE) and the name is released, so another
 * consumer may take over. A start in progress is abandoned. Stopping a
 * subscription that is not started does nothing.
 *
 * Returns: %TRUE on success; when storing the checkpoint fails, %FALSE,
 *   and the subscription is stopped and released all the same
 *
 * Since: 0.2
 */
gboolean
es_subscription_stop (EsSubscription  *self,
                      GCancellable    *cancellable,
                      GError         **error)
{
  GError *local_error = NULL;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  stop_internal (self, TRUE, &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }
  return TRUE;
}

/* A synchronous method that its _async twin runs in a worker thread. */
typedef gboolean (*SyncMethod) (EsSubscription  *self,
                                GCancellable    *cancellable,
                                GError         **error);

static void
sync_method_in_thread (GTask        *task,
                       gpointer      source_object,
                       gpointer      task_data,
                       GCancellable *cancellable)
{
  SyncMethod method = (SyncMethod) task_data;
  GError *error = NULL;

  if (method (source_object, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* The body of stop_async and flush_async: @method in a worker thread, its
 * own answer reported (the task does not check @cancellable again). */
static void
run_in_thread (EsSubscription      *self,
               SyncMethod           method,
               gpointer             source_tag,
               GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, (gpointer) method, NULL);
  g_task_run_in_thread (task, sync_method_in_thread);
}

/**
 * es_subscription_stop_async:
 * @self: an [class@Es.Subscription]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called once the
 *   subscription is stopped
 * @user_data: data for @callback
 *
 * Starts [method@Es.Subscription.stop] without blocking: the storage work
 * happens in a worker thread.
 *
 * Since: 0.2
 */
void
es_subscription_stop_async (EsSubscription      *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_in_thread (self, es_subscription_stop, es_subscription_stop_async, cancellable, callback,
                 user_data);
}

/**
 * es_subscription_stop_finish:
 * @self: an [class@Es.Subscription]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Subscription.stop_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_subscription_stop_finish (EsSubscription  *self,
                             GAsyncResult    *result,
                             GError         **error)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_subscription_stop_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * es_subscription_acknowledge:
 * @self: an [class@Es.Subscription] with %ES_SUBSCRIPTION_FLAGS_MANUAL_ACK
 * @position: the position (version, or for <code>@<!-- -->all</code> sequence id) of an
 *   event delivered, up to which everything is consumed
 *
 * Lets the checkpoint move to @position, stored in batches as in the
 * default mode. @position must not be beyond
 * [property@Es.Subscription:position], or, from a handler of
 * [signal@Es.Subscription::event], the position of the event it handles;
 * acknowledging a position at or
 * before one already acknowledged does nothing. Call it from the
 * subscription's main context.
 *
 * Since: 0.2
 */
void
es_subscription_acknowledge (EsSubscription *self,
                             gint64          position)
{
  gboolean active;
  gint64 delivered;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail ((self->flags & ES_SUBSCRIPTION_FLAGS_MANUAL_ACK) != 0);

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE;
  delivered = MAX (self->position, self->emitting);
  g_mutex_unlock (&self->lock);

  g_return_if_fail (position <= delivered);
  if (!active)
    return;

  move_pending (self, position);
}

/**
 * es_subscription_save_state:
 * @self: an [class@Es.Subscription] with %ES_SUBSCRIPTION_FLAGS_KEEP_STATE
 * @state: (nullable): the consumer's state, folded from the events up to
 *   @position, or %NULL to keep the stored state
 * @position: the checkpoint to store with it: from the stored checkpoint
 *   to [property@Es.Subscription:position] (from a handler of
 *   [signal@Es.Subscription::event], to the position of the event it
 *   handles)
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores @state and @position in one transaction: after a crash the
 * subscription resumes after @position with @state in
 * [property@Es.Subscription:state], so every event is applied once. A
 * @position before the stored checkpoint or beyond the delivered position
 * fails with %ES_ERROR_INVALID_ARGUMENT naming both, and a subscription
 * not started with %ES_ERROR_FAILED; nothing is stored then.
 *
 * Returns: %TRUE when both are stored
 *
 * Since: 0.2
 */
gboolean
es_subscription_save_state (EsSubscription  *self,
                            GBytes          *state,
                            gint64           position,
                            GCancellable    *cancellable,
                            GError         **error)
{
  g_autoptr(GBytes) empty = NULL;
  gint64 checkpoint, delivered;
  gboolean active, changed = FALSE;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail ((self->flags & ES_SUBSCRIPTION_FLAGS_KEEP_STATE) != 0, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE;
  checkpoint = self->checkpoint;
  delivered = MAX (self->position, self->emitting);
  g_mutex_unlock (&self->lock);

  if (!active)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_FAILED,
                   /* Translators: %s is a subscription name */
                   _("Subscription '%s' is not started"), self->name);
      return FALSE;
    }
  if (position < checkpoint || position > delivered)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: a position, a subscription name, then two positions */
                   _("Cannot save position %" G_GINT64_FORMAT " of subscription '%s': it must be "
                     "between its checkpoint %" G_GINT64_FORMAT " and the position delivered %"
                     G_GINT64_FORMAT),
                   position, self->name, checkpoint, delivered);
      return FALSE;
    }
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  if (state == NULL)
    {
      /* Keep the stored state: save the checkpoint alone. */
      g_mutex_lock (&self->lock);
      self->save_target = position;
      g_mutex_unlock (&self->lock);
      if (!save_now (self, NULL, 0, &changed, cancellable, error))
        return FALSE;
    }
  else if (!save_now (self, state, position, &changed, cancellable, error))
    return FALSE;

  if (changed)
    {
      if (in_context (self))
        {
          g_object_freeze_notify (G_OBJECT (self));
          g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT]);
          if (state != NULL)
            g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
          g_object_thaw_notify (G_OBJECT (self));
        }
      else
        notify_later (self, NOTIFY_CHECKPOINT | (state != NULL ? NOTIFY_STATE : 0));
    }
  return TRUE;
}

typedef struct
{
  GBytes *state;
  gint64  position;
} SaveStateData;

static void
save_state_data_free (gpointer data)
{
  SaveStateData *d = data;

  g_clear_pointer (&d->state, g_bytes_unref);
  g_free (d);
}

static void
save_state_in_thread (GTask        *task,
                      gpointer      source_object,
                      gpointer      task_data,
                      GCancellable *cancellable)
{
  SaveStateData *d = task_data;
  GError *error = NULL;

  if (es_subscription_save_state (source_object, d->state, d->position, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/**
 * es_subscription_save_state_async:
 * @self: an [class@Es.Subscription] with %ES_SUBSCRIPTION_FLAGS_KEEP_STATE
 * @state: (nullable): the consumer's state, or %NULL to keep the stored one
 * @position: the checkpoint to store with it
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called once both are
 *   stored, or not
 * @user_data: data for @callback
 *
 * Starts [method@Es.Subscription.save_state] without blocking.
 *
 * Since: 0.2
 */
void
es_subscription_save_state_async (EsSubscription      *self,
                                  GBytes              *state,
                                  gint64               position,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  SaveStateData *d;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail ((self->flags & ES_SUBSCRIPTION_FLAGS_KEEP_STATE) != 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  d = g_new0 (SaveStateData, 1);
  d->state = state != NULL ? g_bytes_ref (state) : NULL;
  d->position = position;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_subscription_save_state_async);
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, d, save_state_data_free);
  g_task_run_in_thread (task, save_state_in_thread);
}

/**
 * es_subscription_save_state_finish:
 * @self: an [class@Es.Subscription]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Subscription.save_state_async].
 *
 * Returns: %TRUE when both are stored
 *
 * Since: 0.2
 */
gboolean
es_subscription_save_state_finish (EsSubscription  *self,
                                   GAsyncResult    *result,
                                   GError         **error)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_subscription_save_state_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * es_subscription_flush:
 * @self: an [class@Es.Subscription]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores the pending checkpoint now rather than when the batch fills or
 * the delay expires. Does nothing with %ES_SUBSCRIPTION_FLAGS_KEEP_STATE
 * (only [method@Es.Subscription.save_state] stores then), when nothing is
 * pending, or when the subscription is not started.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_subscription_flush (EsSubscription  *self,
                       GCancellable    *cancellable,
                       GError         **error)
{
  gboolean active, changed = FALSE;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((self->flags & ES_SUBSCRIPTION_FLAGS_KEEP_STATE) != 0)
    return TRUE;

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE;
  if (active)
    self->save_target = self->pending;
  g_mutex_unlock (&self->lock);

  if (!active)
    return TRUE;

  clear_timer (self);
  if (!save_now (self, NULL, 0, &changed, cancellable, error))
    return FALSE;
  if (changed)
    notify_soon (self, PROP_CHECKPOINT, NOTIFY_CHECKPOINT);
  return TRUE;
}

/**
 * es_subscription_flush_async:
 * @self: an [class@Es.Subscription]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called once the checkpoint
 *   is stored
 * @user_data: data for @callback
 *
 * Starts [method@Es.Subscription.flush] without blocking.
 *
 * Since: 0.2
 */
void
es_subscription_flush_async (EsSubscription      *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_in_thread (self, es_subscription_flush, es_subscription_flush_async, cancellable, callback,
                 user_data);
}

/**
 * es_subscription_flush_finish:
 * @self: an [class@Es.Subscription]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Subscription.flush_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_subscription_flush_finish (EsSubscription  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_subscription_flush_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * es_subscription_get_name:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:name].
 *
 * Returns: the subscription's name
 *
 * Since: 0.2
 */
const char *
es_subscription_get_name (EsSubscription *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), NULL);
  return self->name;
}

/**
 * es_subscription_get_stream_id:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:stream-id].
 *
 * Returns: the stream followed, or %ES_ALL_STREAM for every stream
 *
 * Since: 0.2
 */
const char *
es_subscription_get_stream_id (EsSubscription *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), NULL);
  return self->stream_id;
}

/**
 * es_subscription_get_flags:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:flags].
 *
 * Returns: the flags given at construction
 *
 * Since: 0.2
 */
EsSubscriptionFlags
es_subscription_get_flags (EsSubscription *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), ES_SUBSCRIPTION_FLAGS_NONE);
  return self->flags;
}

/**
 * es_subscription_get_start_from:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:start-from].
 *
 * Returns: where a new subscription starts
 *
 * Since: 0.2
 */
EsSubscriptionStart
es_subscription_get_start_from (EsSubscription *self)
{
  EsSubscriptionStart start_from;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), ES_SUBSCRIPTION_START_BEGINNING);

  g_mutex_lock (&self->lock);
  start_from = self->start_from;
  g_mutex_unlock (&self->lock);
  return start_from;
}

/**
 * es_subscription_set_start_from:
 * @self: an [class@Es.Subscription], not started
 * @start_from: where a new subscription starts
 *
 * Sets [property@Es.Subscription:start-from].
 *
 * Since: 0.2
 */
void
es_subscription_set_start_from (EsSubscription      *self,
                                EsSubscriptionStart  start_from)
{
  gboolean changed;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail (start_from <= ES_SUBSCRIPTION_START_POSITION);

  g_mutex_lock (&self->lock);
  changed = self->start_from != start_from;
  self->start_from = start_from;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_START_FROM]);
}

/**
 * es_subscription_get_start_position:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:start-position].
 *
 * Returns: the position a new subscription starts after with
 *   %ES_SUBSCRIPTION_START_POSITION
 *
 * Since: 0.2
 */
gint64
es_subscription_get_start_position (EsSubscription *self)
{
  gint64 position;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), 0);

  g_mutex_lock (&self->lock);
  position = self->start_position;
  g_mutex_unlock (&self->lock);
  return position;
}

/**
 * es_subscription_set_start_position:
 * @self: an [class@Es.Subscription], not started
 * @position: the position to start after, with
 *   %ES_SUBSCRIPTION_START_POSITION
 *
 * Sets [property@Es.Subscription:start-position]. It is checked by
 * [method@Es.Subscription.start].
 *
 * Since: 0.2
 */
void
es_subscription_set_start_position (EsSubscription *self,
                                    gint64          position)
{
  gboolean changed;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));

  g_mutex_lock (&self->lock);
  changed = self->start_position != position;
  self->start_position = position;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_START_POSITION]);
}

/**
 * es_subscription_get_checkpoint_batch:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:checkpoint-batch].
 *
 * Returns: the positions pending before a save
 *
 * Since: 0.2
 */
guint
es_subscription_get_checkpoint_batch (EsSubscription *self)
{
  guint n;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), 0);

  g_mutex_lock (&self->lock);
  n = self->checkpoint_batch;
  g_mutex_unlock (&self->lock);
  return n;
}

/**
 * es_subscription_set_checkpoint_batch:
 * @self: an [class@Es.Subscription]
 * @n_events: positions pending before a save, at least 1
 *
 * Sets [property@Es.Subscription:checkpoint-batch].
 *
 * Since: 0.2
 */
void
es_subscription_set_checkpoint_batch (EsSubscription *self,
                                      guint           n_events)
{
  gboolean changed;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));
  g_return_if_fail (n_events >= 1);

  g_mutex_lock (&self->lock);
  changed = self->checkpoint_batch != n_events;
  self->checkpoint_batch = n_events;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT_BATCH]);
}

/**
 * es_subscription_get_checkpoint_delay:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:checkpoint-delay].
 *
 * Returns: the delay in milliseconds, 0 for none
 *
 * Since: 0.2
 */
guint
es_subscription_get_checkpoint_delay (EsSubscription *self)
{
  guint msec;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), 0);

  g_mutex_lock (&self->lock);
  msec = self->checkpoint_delay;
  g_mutex_unlock (&self->lock);
  return msec;
}

/**
 * es_subscription_set_checkpoint_delay:
 * @self: an [class@Es.Subscription]
 * @msec: the delay in milliseconds, 0 for none
 *
 * Sets [property@Es.Subscription:checkpoint-delay].
 *
 * Since: 0.2
 */
void
es_subscription_set_checkpoint_delay (EsSubscription *self,
                                      guint           msec)
{
  gboolean changed;

  g_return_if_fail (ES_IS_SUBSCRIPTION (self));

  g_mutex_lock (&self->lock);
  changed = self->checkpoint_delay != msec;
  self->checkpoint_delay = msec;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKPOINT_DELAY]);
}

/**
 * es_subscription_get_position:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:position].
 *
 * Returns: the last position delivered
 *
 * Since: 0.2
 */
gint64
es_subscription_get_position (EsSubscription *self)
{
  gint64 position;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), 0);

  g_mutex_lock (&self->lock);
  position = self->position;
  g_mutex_unlock (&self->lock);
  return position;
}

/**
 * es_subscription_get_checkpoint:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:checkpoint].
 *
 * Returns: the last checkpoint stored
 *
 * Since: 0.2
 */
gint64
es_subscription_get_checkpoint (EsSubscription *self)
{
  gint64 checkpoint;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), 0);

  g_mutex_lock (&self->lock);
  checkpoint = self->checkpoint;
  g_mutex_unlock (&self->lock);
  return checkpoint;
}

/**
 * es_subscription_get_lag:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:lag].
 *
 * Returns: how many positions it is behind the head
 *
 * Since: 0.2
 */
gint64
es_subscription_get_lag (EsSubscription *self)
{
  gint64 lag;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), 0);

  g_mutex_lock (&self->lock);
  lag = self->lag;
  g_mutex_unlock (&self->lock);
  return lag;
}

/**
 * es_subscription_get_active:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:active].
 *
 * Returns: whether it is started
 *
 * Since: 0.2
 */
gboolean
es_subscription_get_active (EsSubscription *self)
{
  gboolean active;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);

  g_mutex_lock (&self->lock);
  active = self->status == STATUS_ACTIVE;
  g_mutex_unlock (&self->lock);
  return active;
}

/**
 * es_subscription_get_caught_up:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:caught-up].
 *
 * Returns: whether the stored history has been delivered
 *
 * Since: 0.2
 */
gboolean
es_subscription_get_caught_up (EsSubscription *self)
{
  gboolean caught_up;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), FALSE);

  g_mutex_lock (&self->lock);
  caught_up = self->caught_up;
  g_mutex_unlock (&self->lock);
  return caught_up;
}

/**
 * es_subscription_get_state:
 * @self: an [class@Es.Subscription]
 *
 * Gets [property@Es.Subscription:state].
 *
 * Returns: (transfer none) (nullable): the state restored on start or last
 *   saved, or %NULL
 *
 * Since: 0.2
 */
GBytes *
es_subscription_get_state (EsSubscription *self)
{
  GBytes *state;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION (self), NULL);

  g_mutex_lock (&self->lock);
  state = self->state;
  g_mutex_unlock (&self->lock);
  return state;
}
