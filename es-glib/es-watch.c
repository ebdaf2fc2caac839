/* es-watch.c: history, then live events, as signals on a main context.
 *
 * A watch first replays the stored events after its start position, page
 * by page, reading in worker threads; then it goes live on what the
 * factory's notifier delivers. It subscribes to the notifier before
 * reading any history, so nothing committed in between is missed, and it
 * drops what it has already emitted, so nothing is emitted twice.
 *
 * Memory stays bounded whatever the consumer does: events from the
 * notifier wait in a queue of at most ES_WATCH_MAX_PENDING; past that the
 * queue is dropped and the watch catches up from the storage again, in
 * pages, when its main context gets to run.
 *
 * Threads: the notifier calls in on its own thread and touches only the
 * WatchCore (under its lock). Everything else runs in the main context of
 * the thread that created the watch, except es_watch_stop(), which may be
 * called from any thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsWatch:
 *
 * A live view of a stream, returned by [method@Es.Stream.watch].
 *
 * It emits [signal@Es.Watch::event] for every event after the start
 * position exactly once and in order: first the stored ones, then new ones
 * as they are committed, by this process or by any other process using the
 * same database. [signal@Es.Watch::caught-up] tells when the stored history
 * has been delivered. Signals are emitted in the thread-default main
 * context of the thread that called [method@Es.Stream.watch].
 *
 * A watch on <code>@<!-- -->all</code> sees every stream's events in sequence-id order.
 *
 * ```c
 * static void
 * on_event (EsWatch *watch, EsStoredEvent *event, gpointer user_data)
 * {
 *   g_print ("%s v%" G_GINT64_FORMAT ": %s\n", es_stored_event_get_stream_id (event),
 *            es_stored_event_get_version (event), es_stored_event_get_event_type (event));
 * }
 *
 * watch = es_stream_watch (stream, 0);
 * g_signal_connect (watch, "event", G_CALLBACK (on_event), NULL);
 * ```
 *
 * ## Start position
 *
 * [method@Es.Stream.watch] takes the version (sequence id for <code>@<!-- -->all</code>) to
 * start after: 0 for the whole history, -1 for new events only. With -1
 * the current version is looked up before [method@Es.Stream.watch]
 * returns, so every event committed after it returns is emitted, whoever
 * commits it. When that lookup fails, the watch emits
 * [signal@Es.Watch::error] from its main context rather than start
 * somewhere else.
 *
 * ## Ending a watch
 *
 * [method@Es.Watch.stop] ends it; so do dropping the application's last
 * reference and closing the factory ([method@Es.StreamFactory.close]).
 * After any of these, no [signal@Es.Watch::event] is emitted, not even
 * for events the watch had already read or queued:
 *
 * - from a signal handler of the watch, the emission in progress
 *   completes and none follows; dropping the last reference in a handler
 *   counts as such once the handler returns (the emission holds a
 *   reference of its own meanwhile);
 * - from another thread, no emission begins once the call has begun,
 *   and the call waits for an emission in progress to complete (so a
 *   handler must not wait for that thread).
 *
 * [property@Es.Watch:active] then is %FALSE, announced by
 * `notify::active` (in the thread that ended the watch).
 *
 * ## Deleted streams
 *
 * A watch of a stream that is hard-deleted
 * ([method@Es.StreamFactory.delete_stream] with
 * %ES_DELETE_FLAGS_TOMBSTONE), by this process or another, emits
 * [signal@Es.Watch::error] with %ES_ERROR_STREAM_DELETED naming the stream
 * and stops; events it had not emitted yet are not emitted (they are
 * deleted). A watch started on a stream already hard-deleted does so at
 * once. Soft deletes, truncations and erasures do not disturb a watch: it
 * goes on, and a soft-deleted stream written again continues its
 * versions. A watch of <code>@<!-- -->all</code> never emits the markers of hard
 * deletes, and deleted events are simply not read.
 *
 * ## Failures
 *
 * A watch that cannot go on emits [signal@Es.Watch::error] once and
 * stops. This happens when its database becomes unusable for good: see
 * [property@Es.StorageNotifier:give-up-timeout] (and the factories'
 * `give-up-timeout`) for how long each backend waits before it gives
 * up. Watches of other databases are not affected.
 *
 * Since: 0.1
 */

/* Events a dispatch emits before it yields to the main loop. */
#define DISPATCH_CHUNK 256

typedef enum
{
  PHASE_CATCHING_UP,  /* reading stored events in pages */
  PHASE_LIVE,         /* emitting what the notifier delivers */
} Phase;

/* What the notifier's thread shares with the watch. Refcounted with
 * g_atomic_rc_box: the watch, its subscription, its dispatch source and
 * its fetches each hold a reference, so none outlives the others' needs. */
typedef struct
{
  GMutex        lock;
  GWeakRef      watch;            /* the EsWatch, gone once it is disposed */
  GMainContext *context;          /* (owned) where signals are emitted */
  char         *stream_id;        /* (owned) (nullable): NULL is every stream */
  GQueue        pending;          /* (element-type EsStoredEvent) guarded by lock */
  gboolean      overflow;         /* guarded by lock: pending was dropped */
  gboolean      notifier_gone;    /* guarded by lock: the notifier stopped */
  gboolean      tombstoned;       /* guarded by lock: the stream was hard-deleted */
  GSource      *dispatch_source;  /* (owned) (nullable) guarded by lock */
} WatchCore;

struct _EsWatch
{
  GObject          parent_instance;

  WatchCore       *core;          /* (owned) */
  EsStreamFactory *factory;       /* (owned) */
  EsNotifier      *notifier;      /* (owned) (nullable) */
  guint            subscription;
  char            *stream_id;     /* (owned) as given: ES_ALL_STREAM for every stream */

  GRecMutex        emit_lock;     /* held while emitting, so stop() waits for it */
  GCancellable    *cancellable;   /* (owned) cancels a fetch on stop */
  Phase            phase;
  gint64           last_version;  /* guarded by core->lock for readers off-thread */
  gint64           start_after;
  GError          *start_error;   /* (owned) (nullable) reported from the main context */
  gboolean         fetching;
  gboolean         caught_up;
  gboolean         state_checked; /* the first fetch looked for a tombstone */
  gboolean         stopped;       /* guarded by emit_lock */
};

enum {
  PROP_0,
  PROP_STREAM_ID,
  PROP_ACTIVE,
  PROP_LAST_VERSION,
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

G_DEFINE_FINAL_TYPE (EsWatch, es_watch, G_TYPE_OBJECT)

static void fetch_next (EsWatch *self);
static void dispatch (EsWatch *self);

static void
watch_core_clear (gpointer data)
{
  WatchCore *core = data;

  g_queue_clear_full (&core->pending, g_object_unref);
  if (core->dispatch_source != NULL)
    {
      g_source_destroy (core->dispatch_source);
      g_source_unref (core->dispatch_source);
    }
  g_weak_ref_clear (&core->watch);
  g_main_context_unref (core->context);
  g_free (core->stream_id);
  g_mutex_clear (&core->lock);
}

static void
watch_core_release (gpointer data)
{
  g_atomic_rc_box_release_full (data, watch_core_clear);
}

static gint64
event_position (WatchCore     *core,
                EsStoredEvent *event)
{
  return core->stream_id != NULL ? es_stored_event_get_version (event)
                                 : es_stored_event_get_sequence_id (event);
}

static gboolean
dispatch_cb (gpointer user_data)
{
  WatchCore *core = user_data;
  g_autoptr(EsWatch) self = g_weak_ref_get (&core->watch);

  g_mutex_lock (&core->lock);
  g_clear_pointer (&core->dispatch_source, g_source_unref);
  g_mutex_unlock (&core->lock);

  if (self != NULL)
    dispatch (self);
  return G_SOURCE_REMOVE;
}

/* Called with core->lock held: makes sure a dispatch runs soon. */
static void
schedule_dispatch_locked (WatchCore *core)
{
  if (core->dispatch_source != NULL)
    return;

  core->dispatch_source = g_idle_source_new ();
  g_source_set_priority (core->dispatch_source, G_PRIORITY_DEFAULT);
  g_source_set_callback (core->dispatch_source, dispatch_cb,
                         g_atomic_rc_box_acquire (core), watch_core_release);
  g_source_set_static_name (core->dispatch_source, "[es-glib] watch dispatch");
  g_source_attach (core->dispatch_source, core->context);
}

/* The notifier's subscriber: runs on the notifier's thread. */
static void
on_notifier_events (GPtrArray *events,
                    gpointer   user_data)
{
  WatchCore *core = user_data;
  gboolean added = FALSE;

  g_mutex_lock (&core->lock);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      if (core->stream_id != NULL &&
          !g_str_equal (core->stream_id, es_stored_event_get_stream_id (event)))
        continue;

      /* The marker of a hard delete: it ends a watch of that stream and
       * is nothing a watch of @all emits. */
      if ((es_stored_event_get_flags (event) & ES_STORED_EVENT_FLAGS_TOMBSTONE) != 0)
        {
          if (core->stream_id != NULL && !core->tombstoned)
            {
              core->tombstoned = TRUE;
              added = TRUE;
            }
          continue;
        }

      if (core->overflow || core->tombstoned)
        continue;

      if (core->pending.length >= ES_WATCH_MAX_PENDING)
        {
          /* The consumer is behind: hold nothing, catch up from storage. */
          g_queue_clear_full (&core->pending, g_object_unref);
          core->overflow = TRUE;
        }
      else
        g_queue_push_tail (&core->pending, g_object_ref (event));
      added = TRUE;
    }
  if (added)
    schedule_dispatch_locked (core);
  g_mutex_unlock (&core->lock);
}

/* The subscription's destroy notify: on unsubscribe, or when the notifier
 * stops because the factory closed. */
static void
on_notifier_gone (gpointer user_data)
{
  WatchCore *core = user_data;

  g_mutex_lock (&core->lock);
  core->notifier_gone = TRUE;
  schedule_dispatch_locked (core);
  g_mutex_unlock (&core->lock);

  watch_core_release (core);
}

static GError *
stream_deleted_error (EsWatch *self)
{
  return g_error_new (ES_ERROR, ES_ERROR_STREAM_DELETED,
                      /* Translators: %s is a stream id */
                      _("Stream '%s' was deleted for good (tombstoned): the watch ends"),
                      self->stream_id);
}

/* Whether the watch learnt that its stream was hard-deleted. */
static gboolean
is_tombstoned (EsWatch *self)
{
  gboolean tombstoned;

  g_mutex_lock (&self->core->lock);
  tombstoned = self->core->tombstoned;
  g_mutex_unlock (&self->core->lock);
  return tombstoned;
}

/* Stops without emitting anything; safe from any thread. */
static void
stop_internal (EsWatch *self)
{
  guint subscription;

  g_rec_mutex_lock (&self->emit_lock);
  if (self->stopped)
    {
      g_rec_mutex_unlock (&self->emit_lock);
      return;
    }
  self->stopped = TRUE;
  subscription = self->subscription;
  self->subscription = 0;
  g_rec_mutex_unlock (&self->emit_lock);

  g_cancellable_cancel (self->cancellable);
  if (subscription != 0)
    es_notifier_unsubscribe (self->notifier, subscription);

  g_mutex_lock (&self->core->lock);
  g_queue_clear_full (&self->core->pending, g_object_unref);
  g_mutex_unlock (&self->core->lock);

  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ACTIVE]);
}

/* Whether the watch may emit: called with emit_lock held, right before
 * every emission. The factory's flag is set as its close() begins, before
 * it stops the watches one by one: no emission begins after that. */
static gboolean
may_emit_locked (EsWatch *self)
{
  return !self->stopped && !es_stream_factory_is_closed (self->factory);
}

/* Emits ::error and stops. Not held back by a closed factory: a watch
 * made on one reports it so. */
static void
fail (EsWatch *self,
      GError  *error)
{
  g_rec_mutex_lock (&self->emit_lock);
  if (!self->stopped)
    g_signal_emit (self, signals[SIGNAL_ERROR], 0, error);
  g_rec_mutex_unlock (&self->emit_lock);

  stop_internal (self);
}

/* The notifier ended the watch's subscription: the factory closed (the
 * watch stops quietly) or the notifier gave up on a database that became
 * unusable (the watch fails with its reason). */
static void
notifier_ended (EsWatch *self)
{
  const GError *error = NULL;

  if (self->notifier != NULL)
    error = es_notifier_get_error (self->notifier);

  if (error != NULL)
    {
      g_autoptr(GError) copy = g_error_copy (error);

      fail (self, copy);
    }
  else
    stop_internal (self);
}

/* After an emission: the caller holds exactly one reference of its own
 * (taken from core->watch for this dispatch or fetch), and the emission
 * held another. When only the caller's is left, a handler dropped the
 * application's last reference: that stops the watch, as dropping it
 * anywhere else does, so nothing more is emitted. */
static void
stop_if_abandoned (EsWatch *self)
{
  if (g_atomic_int_get (&G_OBJECT (self)->ref_count) == 1)
    stop_internal (self);
}

/* Emits one event unless the watch stopped; returns FALSE once stopped. */
static gboolean
emit_event (EsWatch       *self,
            EsStoredEvent *event)
{
  gboolean emitted = FALSE;

  g_rec_mutex_lock (&self->emit_lock);
  if (may_emit_locked (self))
    {
      g_mutex_lock (&self->core->lock);
      self->last_version = event_position (self->core, event);
      g_mutex_unlock (&self->core->lock);
      g_signal_emit (self, signals[SIGNAL_EVENT], 0, event);
      emitted = TRUE;
    }
  g_rec_mutex_unlock (&self->emit_lock);

  if (!emitted)
    return FALSE;

  stop_if_abandoned (self);
  g_rec_mutex_lock (&self->emit_lock);
  emitted = !self->stopped;
  g_rec_mutex_unlock (&self->emit_lock);
  return emitted;
}

static void
go_live (EsWatch *self)
{
  gboolean first;

  self->phase = PHASE_LIVE;
  first = !self->caught_up;
  self->caught_up = TRUE;

  if (first)
    {
      g_rec_mutex_lock (&self->emit_lock);
      if (may_emit_locked (self))
        g_signal_emit (self, signals[SIGNAL_CAUGHT_UP], 0);
      g_rec_mutex_unlock (&self->emit_lock);
      stop_if_abandoned (self);
    }

  if (self->stopped)
    return;

  if (self->notifier == NULL)
    {
      g_autoptr(GError) error = NULL;

      error = g_error_new_literal (ES_ERROR, ES_ERROR_FAILED,
                                   _("The storage backend has no notifier: "
                                     "the watch cannot receive new events"));
      fail (self, error);
      return;
    }

  dispatch (self);
}

/* Runs in the watch's main context: emits what the notifier delivered, or
 * switches to catching up when that is incomplete. */
static void
dispatch (EsWatch *self)
{
  WatchCore *core = self->core;
  GQueue batch = G_QUEUE_INIT;
  gboolean overflow, notifier_gone;
  EsStoredEvent *event;
  guint emitted = 0;

  if (self->stopped)
    return;

  if (is_tombstoned (self))
    {
      g_autoptr(GError) error = stream_deleted_error (self);

      fail (self, error);
      return;
    }

  g_mutex_lock (&core->lock);
  notifier_gone = core->notifier_gone;
  if (self->phase != PHASE_LIVE)
    {
      /* History first: the fetch that ends it calls us again. */
      g_mutex_unlock (&core->lock);
      if (notifier_gone)
        notifier_ended (self);
      return;
    }
  overflow = core->overflow;
  core->overflow = FALSE;
  batch = core->pending;
  g_queue_init (&core->pending);
  g_mutex_unlock (&core->lock);

  if (overflow)
    {
      g_queue_clear_full (&batch, g_object_unref);
      self->phase = PHASE_CATCHING_UP;
      fetch_next (self);
      return;
    }

  while ((event = g_queue_pop_head (&batch)) != NULL)
    {
      gint64 position = event_position (core, event);

      if (position <= self->last_version)
        {
          /* Already emitted from the history. */
          g_object_unref (event);
          continue;
        }

      if (core->stream_id != NULL && position != self->last_version + 1)
        {
          /* A hole in a stream's versions: fill it from the storage. */
          g_object_unref (event);
          g_queue_clear_full (&batch, g_object_unref);
          self->phase = PHASE_CATCHING_UP;
          fetch_next (self);
          return;
        }

      if (!emit_event (self, event))
        {
          g_object_unref (event);
          g_queue_clear_full (&batch, g_object_unref);
          return;
        }
      g_object_unref (event);

      if (++emitted == DISPATCH_CHUNK && !g_queue_is_empty (&batch))
        {
          /* Give the main loop a turn; the rest goes back to the front. */
          g_mutex_lock (&core->lock);
          while ((event = g_queue_pop_tail (&batch)) != NULL)
            g_queue_push_head (&core->pending, event);
          schedule_dispatch_locked (core);
          g_mutex_unlock (&core->lock);
          return;
        }
    }

  if (notifier_gone)
    notifier_ended (self);
}

typedef struct
{
  EsStorageHandle *storage;     /* (owned) */
  char            *stream_id;   /* (owned) (nullable) */
  gint64           after;
  gboolean         check_state; /* the first fetch: is the stream tombstoned? */
} FetchData;

static void
fetch_data_free (gpointer data)
{
  FetchData *fetch = data;

  g_object_unref (fetch->storage);
  g_free (fetch->stream_id);
  g_free (fetch);
}

static void
fetch_in_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  FetchData *fetch = task_data;
  GPtrArray *events;
  GError *error = NULL;

  /* A watch started on a stream already hard-deleted ends at once: its
   * tombstone marker came before the watch subscribed. A backend without
   * stream information has no tombstones. */
  if (fetch->check_state && fetch->stream_id != NULL)
    {
      g_autoptr(EsStreamInfo) info = NULL;
      g_autoptr(GError) info_error = NULL;

      info = es_storage_handle_get_stream_info (fetch->storage, fetch->stream_id,
                                                cancellable, &info_error);
      if (info == NULL && !g_error_matches (info_error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
        {
          g_task_return_error (task, g_steal_pointer (&info_error));
          return;
        }
      if (info != NULL && es_stream_info_get_state (info) == ES_STREAM_STATE_TOMBSTONED)
        {
          g_task_return_new_error (task, ES_ERROR, ES_ERROR_STREAM_DELETED,
                                   /* Translators: %s is a stream id */
                                   _("Stream '%s' was deleted for good (tombstoned): the "
                                     "watch ends"),
                                   fetch->stream_id);
          return;
        }
    }

  events = es_storage_handle_read_page (fetch->storage, fetch->stream_id, fetch->after, NULL,
                                        ES_READ_PAGE_SIZE, cancellable, &error);
  if (events == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, events, (GDestroyNotify) g_ptr_array_unref);
}

static void
fetch_done (GObject      *source,
            GAsyncResult *res,
            gpointer      user_data)
{
  WatchCore *core = user_data;
  g_autoptr(EsWatch) self = g_weak_ref_get (&core->watch);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;

  events = g_task_propagate_pointer (G_TASK (res), &error);
  watch_core_release (core);

  if (self == NULL)
    return;
  self->fetching = FALSE;

  if (self->stopped)
    return;

  if (events != NULL && is_tombstoned (self))
    {
      g_autoptr(GError) deleted = stream_deleted_error (self);

      fail (self, deleted);
      return;
    }

  if (events == NULL)
    {
      /* A closed factory ends its watches quietly, as stop() does. */
      if (g_error_matches (error, ES_ERROR, ES_ERROR_CLOSED) ||
          es_stream_factory_is_closed (self->factory))
        stop_internal (self);
      else
        fail (self, error);
      return;
    }

  /* Every emission checks that the watch still runs: a handler may stop
   * it, close the factory or drop the last reference mid-page. */
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      if (event_position (core, event) <= self->last_version)
        continue;
      if (!emit_event (self, event))
        return;
    }

  if (events->len == ES_READ_PAGE_SIZE)
    fetch_next (self);
  else
    go_live (self);
}

/* Reads the next page of stored events off the main context. */
static void
fetch_next (EsWatch *self)
{
  g_autoptr(GTask) task = NULL;
  FetchData *fetch;

  if (self->fetching || self->stopped)
    return;
  self->fetching = TRUE;

  fetch = g_new0 (FetchData, 1);
  fetch->storage = g_object_ref (es_stream_factory_get_storage (self->factory));
  fetch->stream_id = g_strdup (self->core->stream_id);
  fetch->after = self->last_version;
  fetch->check_state = !self->state_checked;
  self->state_checked = TRUE;

  task = g_task_new (NULL, self->cancellable, fetch_done, g_atomic_rc_box_acquire (self->core));
  g_task_set_source_tag (task, fetch_next);
  g_task_set_task_data (task, fetch, fetch_data_free);
  g_task_run_in_thread (task, fetch_in_thread);
}

static gboolean
report_start_error_cb (gpointer user_data)
{
  WatchCore *core = user_data;
  g_autoptr(EsWatch) self = g_weak_ref_get (&core->watch);
  g_autoptr(GError) error = NULL;

  if (self == NULL || self->stopped)
    return G_SOURCE_REMOVE;

  if (self->start_error != NULL)
    fail (self, self->start_error);
  else if (!_es_stream_factory_check_open (self->factory, &error))
    fail (self, error);
  else
    {
      error = g_error_new (ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           _("Cannot watch stream '%s' after version %lld: use a version, "
                             "0 for the whole stream or -1 for new events only"),
                           self->stream_id, (long long) self->start_after);
      fail (self, error);
    }
  return G_SOURCE_REMOVE;
}

/*
 * _es_watch_new:
 * @factory: the factory whose storage and notifier to use
 * @stream_id: a valid stream id or %ES_ALL_STREAM
 * @after_version: emit events after this version (sequence id for `@all`),
 *   or -1 for new events only
 *
 * Starts a watch in the caller's thread-default main context. Problems
 * (closed factory, bad version, a failed lookup of the current version)
 * are reported through ::error from that context, so the caller can
 * connect its handlers first.
 *
 * For -1 the current version (the last sequence id for `@all`) is looked
 * up here, before returning, after subscribing to the notifier: every
 * event committed once this returns comes after it and is emitted.
 */
EsWatch *
_es_watch_new (EsStreamFactory *factory,
               const char      *stream_id,
               gint64           after_version)
{
  EsWatch *self = g_object_new (ES_TYPE_WATCH, NULL);
  WatchCore *core = self->core;
  EsNotifier *notifier = es_stream_factory_get_notifier (factory);
  g_autoptr(GError) error = NULL;

  self->factory = g_object_ref (factory);
  self->stream_id = g_strdup (stream_id);
  self->start_after = after_version;
  self->last_version = after_version;
  core->stream_id = g_strcmp0 (stream_id, ES_ALL_STREAM) == 0 ? NULL : g_strdup (stream_id);

  if (after_version < -1 || !_es_stream_factory_check_open (factory, NULL))
    goto report_error;

  /* close() stops every registered watch at once. */
  _es_stream_factory_add_watch (factory, self);

  /* Subscribe before reading history: what is committed meanwhile waits
   * in the queue, and the history read drops nothing it has not seen. */
  if (notifier != NULL)
    {
      self->notifier = g_object_ref (notifier);
      /* An idle notifier (nobody listening) brings its cursor up to where
       * the store ends: the first delivery then reads only what is new. */
      (void) es_notifier_get_last_sequence_id (notifier);
      self->subscription = es_notifier_subscribe (notifier, on_notifier_events,
                                                  g_atomic_rc_box_acquire (core),
                                                  on_notifier_gone);
    }

  if (after_version == -1)
    {
      gint64 version = 0;

      /* Now, not in a worker thread later: what is committed once the
       * caller has the watch must come after its start. A failure
       * cannot pick another start silently: it is reported. */
      if (!es_storage_handle_get_version (es_stream_factory_get_storage (factory),
                                          core->stream_id, &version, NULL, &error))
        {
          self->start_error = g_steal_pointer (&error);
          goto report_error;
        }
      self->last_version = version;
    }

  fetch_next (self);
  return self;

report_error:
  {
    GSource *source = g_idle_source_new ();

    g_source_set_callback (source, report_start_error_cb, g_atomic_rc_box_acquire (core),
                           watch_core_release);
    g_source_set_static_name (source, "[es-glib] watch start error");
    g_source_attach (source, core->context);
    g_source_unref (source);
  }
  return self;
}

/* The factory hard-deleted the watched stream: the watch learns it now
 * rather than when the notifier delivers the marker. Any thread. */
void
_es_watch_stream_tombstoned (EsWatch *self)
{
  g_mutex_lock (&self->core->lock);
  if (self->core->stream_id != NULL)
    {
      self->core->tombstoned = TRUE;
      schedule_dispatch_locked (self->core);
    }
  g_mutex_unlock (&self->core->lock);
}

guint
_es_watch_get_n_pending (EsWatch *self)
{
  guint n;

  g_mutex_lock (&self->core->lock);
  n = self->core->pending.length;
  g_mutex_unlock (&self->core->lock);
  return n;
}

gint64
_es_watch_get_pending_last (EsWatch *self)
{
  gint64 last = 0;
  EsStoredEvent *event;

  g_mutex_lock (&self->core->lock);
  event = g_queue_peek_tail (&self->core->pending);
  if (event != NULL)
    last = event_position (self->core, event);
  g_mutex_unlock (&self->core->lock);
  return last;
}

static void
es_watch_dispose (GObject *object)
{
  EsWatch *self = ES_WATCH (object);

  stop_internal (self);
  g_weak_ref_set (&self->core->watch, NULL);
  if (self->factory != NULL)
    _es_stream_factory_remove_watch (self->factory, self);

  G_OBJECT_CLASS (es_watch_parent_class)->dispose (object);
}

static void
es_watch_finalize (GObject *object)
{
  EsWatch *self = ES_WATCH (object);

  g_clear_object (&self->notifier);
  g_clear_object (&self->factory);
  g_clear_object (&self->cancellable);
  g_free (self->stream_id);
  g_clear_error (&self->start_error);
  g_rec_mutex_clear (&self->emit_lock);
  watch_core_release (self->core);

  G_OBJECT_CLASS (es_watch_parent_class)->finalize (object);
}

static void
es_watch_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  EsWatch *self = ES_WATCH (object);

  switch (prop_id)
    {
    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;
    case PROP_ACTIVE:
      g_value_set_boolean (value, es_watch_get_active (self));
      break;
    case PROP_LAST_VERSION:
      g_value_set_int64 (value, es_watch_get_last_version (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_watch_class_init (EsWatchClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->dispose = es_watch_dispose;
  object_class->finalize = es_watch_finalize;
  object_class->get_property = es_watch_get_property;

  /**
   * EsWatch:stream-id:
   *
   * The watched stream's id; %ES_ALL_STREAM for every stream.
   *
   * Since: 0.1
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsWatch:active:
   *
   * Whether the watch still runs: %FALSE once stopped, failed, or its
   * factory closed.
   *
   * Since: 0.1
   */
  properties[PROP_ACTIVE] =
    g_param_spec_boolean ("active", NULL, NULL, TRUE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsWatch:last-version:
   *
   * The version (sequence id for <code>@<!-- -->all</code>) of the last emitted event; before
   * the first, the position the watch started after (for a watch started
   * with -1, the current version when [method@Es.Stream.watch] returned).
   *
   * Since: 0.1
   */
  properties[PROP_LAST_VERSION] =
    g_param_spec_int64 ("last-version", NULL, NULL, -1, G_MAXINT64, -1,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * EsWatch::event:
   * @self: the watch
   * @event: the event
   *
   * Emitted for every event after the start position, exactly once and in
   * order: first the stored ones, then new ones as they are committed.
   *
   * Since: 0.1
   */
  signals[SIGNAL_EVENT] =
    g_signal_new ("event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, ES_TYPE_STORED_EVENT);

  /**
   * EsWatch::caught-up:
   * @self: the watch
   *
   * Emitted once, after the stored history has been delivered: from then
   * on the watch is live. Applications show "loading" until then.
   *
   * Since: 0.1
   */
  signals[SIGNAL_CAUGHT_UP] =
    g_signal_new ("caught-up", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * EsWatch::error:
   * @self: the watch
   * @error: what went wrong
   *
   * Emitted once when the watch failed; it has stopped. %ES_ERROR_STORAGE
   * when the database could not be read or became unusable (the file was
   * deleted, replaced or damaged, the server stayed unreachable past the
   * notifier's give-up timeout), %ES_ERROR_INVALID_ARGUMENT for a bad
   * start version, %ES_ERROR_CLOSED when the factory was already closed,
   * %ES_ERROR_STREAM_DELETED when the stream was hard-deleted (since 0.2).
   * Closing the factory or stopping the watch does not emit it.
   *
   * Since: 0.1
   */
  signals[SIGNAL_ERROR] =
    g_signal_new ("error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
es_watch_init (EsWatch *self)
{
  WatchCore *core = g_atomic_rc_box_new0 (WatchCore);

  g_mutex_init (&core->lock);
  g_weak_ref_init (&core->watch, self);
  core->context = g_main_context_ref_thread_default ();
  g_queue_init (&core->pending);

  self->core = core;
  self->cancellable = g_cancellable_new ();
  g_rec_mutex_init (&self->emit_lock);
  self->phase = PHASE_CATCHING_UP;
}

/**
 * es_watch_stop:
 * @self: an [class@Es.Watch]
 *
 * Stops the watch: no [signal@Es.Watch::event] is emitted after this
 * returns, not even for events already read or queued. Idempotent; may be
 * called from a signal handler of the watch itself (the emission in
 * progress completes, none follows) and from any thread (then it waits
 * for an emission in progress in the watch's thread to complete, so a
 * handler must not wait for the calling thread).
 *
 * [property@Es.Watch:active] turns %FALSE, with a `notify::active`
 * emitted in the calling thread. No [signal@Es.Watch::error] is emitted.
 *
 * Since: 0.1
 */
void
es_watch_stop (EsWatch *self)
{
  g_return_if_fail (ES_IS_WATCH (self));

  stop_internal (self);
}

/**
 * es_watch_get_last_version:
 * @self: an [class@Es.Watch]
 *
 * Gets the version (sequence id for <code>@<!-- -->all</code>) of the last emitted event, or
 * the position the watch started after when none was emitted yet (for a
 * watch started with -1, the current version when [method@Es.Stream.watch]
 * returned).
 *
 * Returns: the version
 *
 * Since: 0.1
 */
gint64
es_watch_get_last_version (EsWatch *self)
{
  gint64 version;

  g_return_val_if_fail (ES_IS_WATCH (self), -1);

  g_mutex_lock (&self->core->lock);
  version = self->last_version;
  g_mutex_unlock (&self->core->lock);
  return version;
}

/**
 * es_watch_get_active:
 * @self: an [class@Es.Watch]
 *
 * Whether the watch still runs.
 *
 * Returns: %FALSE once stopped, failed or its factory closed
 *
 * Since: 0.1
 */
gboolean
es_watch_get_active (EsWatch *self)
{
  gboolean active;

  g_return_val_if_fail (ES_IS_WATCH (self), FALSE);

  g_rec_mutex_lock (&self->emit_lock);
  active = !self->stopped;
  g_rec_mutex_unlock (&self->emit_lock);
  return active;
}

/**
 * es_watch_get_caught_up:
 * @self: an [class@Es.Watch]
 *
 * Whether the stored history has been delivered ([signal@Es.Watch::caught-up]
 * was emitted).
 *
 * Returns: %TRUE once live
 *
 * Since: 0.1
 */
gboolean
es_watch_get_caught_up (EsWatch *self)
{
  g_return_val_if_fail (ES_IS_WATCH (self), FALSE);

  return self->caught_up;
}

/**
 * es_watch_get_stream_id:
 * @self: an [class@Es.Watch]
 *
 * Gets the watched stream's id.
 *
 * Returns: (transfer none): the stream id; %ES_ALL_STREAM for every stream
 *
 * Since: 0.1
 */
const char *
es_watch_get_stream_id (EsWatch *self)
{
  g_return_val_if_fail (ES_IS_WATCH (self), NULL);

  return self->stream_id;
}
