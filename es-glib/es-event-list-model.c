/* es-event-list-model.c: a live, lazily paged GListModel of stored events.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gi18n-lib.h>

#include "es-event-list-model.h"

#include "es-enum-types.h"
#include "es-event-filter.h"
#include "es-private.h"
#include "es-storage-handle.h"
#include "es-stored-event.h"
#include "es-stream.h"
#include "es-stream-factory.h"
#include "es-stream-info.h"
#include "es-watch.h"

/**
 * EsEventListModel:
 *
 * A [iface@Gio.ListModel] of the [class@Es.StoredEvent]s of one stream, or
 * of <code>@<!-- -->all</code>, optionally filtered, oldest or newest
 * first, that a `GtkListView` binds to directly.
 *
 * The model is lazy. It starts empty with [property@Es.EventListModel:loading]
 * set, counts the events in a worker thread (a stream's event count when
 * there is no filter, a count the backend makes from its indexes otherwise)
 * and then announces them all in one [signal@Gio.ListModel::items-changed].
 * `g_list_model_get_n_items()` never reads events. `g_list_model_get_item()`
 * reads the page of events holding the item (256 events) when it is not
 * cached, and the neighbouring pages in a worker thread; at most 32 pages
 * are kept (least recently used first out), so scrolling from one end of a
 * million events to the other keeps memory flat. Pages are read by keyset
 * (after the last position of a known page, see
 * [method@Es.StorageHandle.read_page_full]), never by offset from the
 * start: the positions of the first and last event of every page read are
 * kept as anchors, and a page is read from the nearest one. For a stream
 * without a filter, versions are contiguous and every page's position is
 * known without reading.
 *
 * The model is live. A [class@Es.Watch] started after the last counted
 * event adds each event committed later, by this process or another, in
 * order, with no gap or duplicate: at the end with
 * %ES_EVENT_LIST_MODEL_FLAGS_NONE, at position 0 with
 * %ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST. Signals are emitted in the
 * thread-default main context of the thread that created the model, which
 * must run a main loop and is the only thread that may use the model.
 *
 * Removals: deletes, truncations, erasures, retention policies and sweeps
 * made through the model's [class@Es.StreamFactory] are reflected at once
 * (a truncation removes the oldest items, an erasure changes one item, the
 * rest recount). A hard delete by another process reaches the model as a
 * tombstone through the notifier and empties it. Other processes' soft
 * deletes, truncations, erasures and sweeps are not signalled by any
 * notifier: call [method@Es.EventListModel.refresh] (for instance when the
 * window gets the focus, or on a timer) to recount.
 *
 * When the factory is closed, the model empties itself (one
 * [signal@Gio.ListModel::items-changed] removing every item) and stays
 * empty: its events can no longer be read, and a list that kept the
 * positions of events it cannot show would be wrong.
 *
 * Items at positions out of range are %NULL, as [iface@Gio.ListModel]
 * requires. An item whose page cannot be read (an I/O error) is %NULL too.
 *
 * Since: 0.2
 */

#define DEFAULT_PAGE_SIZE 256
#define DEFAULT_MAX_PAGES 32
#define MAX_PREFETCHES 2

struct _EsEventListModel
{
  GObject parent_instance;

  EsStreamFactory      *factory;   /* (owned) */
  EsStorageHandle      *storage;   /* (owned) */
  char                 *stream_id; /* (owned) (nullable): NULL for @all */
  EsEventFilter        *filter;    /* (owned) (nullable): NULL when it has no clause */
  EsEventListModelFlags flags;
  GMainContext         *context;   /* (owned) */

  guint       page_size;
  guint       max_pages;

  guint       n_items;
  gint64      head;          /* every event counted has a position <= head */
  gboolean    dense;         /* item i has position first_position + i */
  gint64      first_position;
  gboolean    loading;
  gboolean    ended;         /* closed factory or tombstoned stream: stays empty */
  guint       generation;    /* bumped when the positions of items change */

  GArray     *anchors;       /* (element-type Anchor) sorted by index */
  GHashTable *pages;         /* page number → (owned) Page */
  GQueue      lru;           /* Page *, most recent first */
  GHashTable *in_flight;     /* page numbers being prefetched */

  EsWatch    *watch;
  GCancellable *cancellable; /* cancels the workers when disposed */
  guint       listener_id;

  guint       counting;      /* generation of the count in progress, 0 for none */
  gboolean    recount_again;
};

typedef struct
{
  gint64 index;
  gint64 position;
} Anchor;

typedef struct
{
  guint      number;
  GPtrArray *events;  /* (owned) oldest first */
  GList      link;
} Page;

enum
{
  PROP_0,
  PROP_FACTORY,
  PROP_STREAM_ID,
  PROP_FILTER,
  PROP_FLAGS,
  PROP_N_ITEMS,
  PROP_LOADING,
  PROP_ITEM_TYPE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void es_event_list_model_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsEventListModel, es_event_list_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      es_event_list_model_list_model_init))

static void start_count (EsEventListModel *self);

/* ---------------------------------------------------------------------- *
 * Factory change listeners                                                *
 * ---------------------------------------------------------------------- */

/* The factory tells its models about the changes made through it (see
 * _es_stream_factory_changed() in es-private.h): the listeners hang on the
 * factory as qdata, so that the factory keeps no state for them. */

typedef struct
{
  guint              id;
  GWeakRef           model;
  GMainContext      *context;
} Listener;

typedef struct
{
  GWeakRef             model;
  EsFactoryChangeKind  kind;
  char                *stream_id;
  gint64               number;
} Change;

static GMutex listeners_lock;
static guint  next_listener_id = 1;

static GQuark
listeners_quark (void)
{
  return g_quark_from_static_string ("es-event-list-model-listeners");
}

static void
listener_free (gpointer data)
{
  Listener *listener = data;

  g_weak_ref_clear (&listener->model);
  g_main_context_unref (listener->context);
  g_free (listener);
}

static void
change_free (gpointer data)
{
  Change *change = data;

  g_weak_ref_clear (&change->model);
  g_free (change->stream_id);
  g_free (change);
}

static void model_apply_change (EsEventListModel    *self,
                                EsFactoryChangeKind  kind,
                                const char          *stream_id,
                                gint64               number);

static gboolean
deliver_change (gpointer data)
{
  Change *change = data;
  g_autoptr(EsEventListModel) self = g_weak_ref_get (&change->model);

  if (self != NULL)
    model_apply_change (self, change->kind, change->stream_id, change->number);
  return G_SOURCE_REMOVE;
}

/* Called by the factory, in any thread, after a change took effect. */
void
_es_stream_factory_changed (EsStreamFactory     *factory,
                            EsFactoryChangeKind  kind,
                            const char          *stream_id,
                            gint64               number)
{
  g_autoptr(GPtrArray) targets = g_ptr_array_new ();
  GPtrArray *listeners;

  g_mutex_lock (&listeners_lock);
  listeners = g_object_get_qdata (G_OBJECT (factory), listeners_quark ());
  for (guint i = 0; listeners != NULL && i < listeners->len; i++)
    {
      Listener *listener = g_ptr_array_index (listeners, i);
      Change *change = g_new0 (Change, 1);
      GObject *model = g_weak_ref_get (&listener->model);

      if (model == NULL)
        {
          g_free (change);
          continue;
        }
      g_weak_ref_init (&change->model, model);
      g_object_unref (model);
      change->kind = kind;
      change->stream_id = g_strdup (stream_id);
      change->number = number;
      g_ptr_array_add (targets, change);
      g_ptr_array_add (targets, g_main_context_ref (listener->context));
    }
  g_mutex_unlock (&listeners_lock);

  /* Each model learns it in its own main context, in the order the
   * changes were made (one idle per change, same priority). */
  for (guint i = 0; i < targets->len; i += 2)
    {
      GMainContext *context = g_ptr_array_index (targets, i + 1);
      GSource *source = g_idle_source_new ();

      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, deliver_change, g_ptr_array_index (targets, i), change_free);
      g_source_set_static_name (source, "[es] EsEventListModel change");
      g_source_attach (source, context);
      g_source_unref (source);
      g_main_context_unref (context);
    }
}

static guint
add_listener (EsStreamFactory  *factory,
              EsEventListModel *model)
{
  Listener *listener = g_new0 (Listener, 1);
  GPtrArray *listeners;
  guint id;

  g_weak_ref_init (&listener->model, model);
  listener->context = g_main_context_ref (model->context);

  g_mutex_lock (&listeners_lock);
  listener->id = id = next_listener_id++;
  listeners = g_object_get_qdata (G_OBJECT (factory), listeners_quark ());
  if (listeners == NULL)
    {
      listeners = g_ptr_array_new_with_free_func (listener_free);
      g_object_set_qdata_full (G_OBJECT (factory), listeners_quark (), listeners,
                               (GDestroyNotify) g_ptr_array_unref);
    }
  g_ptr_array_add (listeners, listener);
  g_mutex_unlock (&listeners_lock);

  return id;
}

static void
remove_listener (EsStreamFactory *factory,
                 guint            id)
{
  GPtrArray *listeners;

  g_mutex_lock (&listeners_lock);
  listeners = g_object_get_qdata (G_OBJECT (factory), listeners_quark ());
  for (guint i = 0; listeners != NULL && i < listeners->len; i++)
    if (((Listener *) g_ptr_array_index (listeners, i))->id == id)
      {
        g_ptr_array_remove_index (listeners, i);
        break;
      }
  g_mutex_unlock (&listeners_lock);
}

/* ---------------------------------------------------------------------- *
 * Positions, anchors, pages                                               *
 * ---------------------------------------------------------------------- */

static gint64
event_position (EsEventListModel *self,
                EsStoredEvent    *event)
{
  return self->stream_id != NULL ? es_stored_event_get_version (event)
                                 : es_stored_event_get_sequence_id (event);
}

/* The model's own order is oldest first; newest first mirrors it. */
static guint
to_external (EsEventListModel *self,
             guint             index,
             guint             n_items)
{
  if ((self->flags & ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST) != 0)
    return n_items - 1 - index;
  return index;
}

static void
page_free (gpointer data)
{
  Page *page = data;

  g_ptr_array_unref (page->events);
  g_free (page);
}

static void
drop_pages (EsEventListModel *self)
{
  /* The links live in the pages: forget them, do not free them. */
  g_queue_init (&self->lru);
  g_hash_table_remove_all (self->pages);
}

static void
add_anchor (EsEventListModel *self,
            gint64            index,
            gint64            position)
{
  guint lo = 0, hi = self->anchors->len;

  if (self->dense)
    return;
  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;
      Anchor *anchor = &g_array_index (self->anchors, Anchor, mid);

      if (anchor->index == index)
        return;
      if (anchor->index < index)
        lo = mid + 1;
      else
        hi = mid;
    }
  g_array_insert_val (self->anchors, lo, ((Anchor) { index, position }));
}

static void
store_page (EsEventListModel *self,
            guint             number,
            GPtrArray        *events)
{
  Page *page;

  if (events->len == 0)
    return;
  add_anchor (self, (gint64) number * self->page_size,
              event_position (self, g_ptr_array_index (events, 0)));
  add_anchor (self, (gint64) number * self->page_size + events->len - 1,
              event_position (self, g_ptr_array_index (events, events->len - 1)));

  page = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (number));
  if (page != NULL)
    {
      if (page->events->len >= events->len)
        return;
      g_queue_unlink (&self->lru, &page->link);
      g_hash_table_remove (self->pages, GUINT_TO_POINTER (number));
    }

  page = g_new0 (Page, 1);
  page->number = number;
  page->events = g_ptr_array_ref (events);
  page->link.data = page;
  g_hash_table_insert (self->pages, GUINT_TO_POINTER (number), page);
  g_queue_push_head_link (&self->lru, &page->link);

  while (self->lru.length > self->max_pages)
    {
      Page *old = g_queue_peek_tail (&self->lru);

      g_queue_unlink (&self->lru, &old->link);
      g_hash_table_remove (self->pages, GUINT_TO_POINTER (old->number));
    }
}

/* What a worker needs to read one page: all copied, so that the model can
 * change meanwhile. */
typedef struct
{
  EsStorageHandle *storage;
  char            *stream_id;
  EsEventFilter   *filter;
  gboolean         by_version;
  gint64           head;
  guint            number;
  guint            count;        /* items wanted */
  gboolean         forward;      /* read after anchor_position, else before */
  gint64           anchor_position;
  guint64          skip;         /* items to pass over first */
  guint            generation;
} PageRead;

static void
page_read_free (gpointer data)
{
  PageRead *read = data;

  g_object_unref (read->storage);
  g_free (read->stream_id);
  g_clear_object (&read->filter);
  g_free (read);
}

/* Plans the read of page @number from the nearest known position. */
static PageRead *
plan_page_read (EsEventListModel *self,
                guint             number)
{
  PageRead *read = g_new0 (PageRead, 1);
  gint64 first = (gint64) number * self->page_size;
  gint64 last;
  gint64 best_distance;

  read->storage = g_object_ref (self->storage);
  read->stream_id = g_strdup (self->stream_id);
  read->filter = self->filter != NULL ? g_object_ref (self->filter) : NULL;
  read->by_version = self->stream_id != NULL;
  read->head = self->head;
  read->number = number;
  read->count = MIN (self->page_size, self->n_items - first);
  read->generation = self->generation;
  last = first + read->count - 1;

  if (self->dense)
    {
      read->forward = TRUE;
      read->anchor_position = self->first_position + first - 1;
      return read;
    }

  /* Before everything: index -1 at position 0; after everything: index
   * n_items at position head + 1. */
  read->forward = TRUE;
  read->anchor_position = 0;
  best_distance = first;
  if ((gint64) self->n_items - 1 - last < best_distance)
    {
      read->forward = FALSE;
      read->anchor_position = self->head + 1;
      best_distance = (gint64) self->n_items - 1 - last;
    }

  for (guint i = 0; i < self->anchors->len; i++)
    {
      Anchor *anchor = &g_array_index (self->anchors, Anchor, i);

      if (anchor->index < first && first - 1 - anchor->index < best_distance)
        {
          read->forward = TRUE;
          read->anchor_position = anchor->position;
          best_distance = first - 1 - anchor->index;
        }
      else if (anchor->index > last && anchor->index - last - 1 < best_distance)
        {
          read->forward = FALSE;
          read->anchor_position = anchor->position;
          best_distance = anchor->index - last - 1;
        }
    }
  read->skip = (guint64) best_distance;
  return read;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PageRead, page_read_free)

static gint64
position_of (PageRead      *read,
             EsStoredEvent *event)
{
  return read->by_version ? es_stored_event_get_version (event)
                          : es_stored_event_get_sequence_id (event);
}

/* Runs @read: passes over read->skip events from the anchor, keyset page
 * by keyset page, then reads the page itself. Returns it oldest first. */
static GPtrArray *
run_page_read (PageRead      *read,
               GCancellable  *cancellable,
               GError       **error)
{
  EsReadFlags flags = read->forward ? ES_READ_FLAGS_NONE : ES_READ_FLAGS_BACKWARDS;
  gint64 position = read->anchor_position;
  guint64 skip = read->skip;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) page = g_ptr_array_new_with_free_func (g_object_unref);

  /* Far from any known page: the backend steps over the events in
   * between in its index (an offset from the anchor, not from the start). */
  if (skip > 0)
    {
      position = es_storage_handle_locate_event (read->storage, read->stream_id, position, flags,
                                                 read->filter, skip - 1, cancellable, error);
      if (position < 0)
        return NULL;
      if (position == 0)
        return g_steal_pointer (&page);
    }

  events = es_storage_handle_read_page_full (read->storage, read->stream_id, position, flags,
                                             read->filter, read->count, cancellable, error);
  if (events == NULL)
    return NULL;

  /* Oldest first, and nothing the model has not counted yet (a forward
   * read may reach events the watch has not delivered). */
  for (guint i = 0; i < events->len; i++)
    {
      guint j = read->forward ? i : events->len - 1 - i;
      EsStoredEvent *event = g_ptr_array_index (events, j);

      if (position_of (read, event) <= read->head)
        g_ptr_array_add (page, g_object_ref (event));
    }
  return g_steal_pointer (&page);
}

static void
page_read_in_thread (GTask        *task,
                     gpointer      source_object,
                     gpointer      task_data,
                     GCancellable *cancellable)
{
  GError *error = NULL;
  GPtrArray *page = run_page_read (task_data, cancellable, &error);

  if (page != NULL)
    g_task_return_pointer (task, page, (GDestroyNotify) g_ptr_array_unref);
  else
    g_task_return_error (task, error);
}

static void
prefetch_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (source);
  PageRead *read = g_task_get_task_data (G_TASK (result));
  g_autoptr(GPtrArray) page = g_task_propagate_pointer (G_TASK (result), NULL);

  g_hash_table_remove (self->in_flight, GUINT_TO_POINTER (read->number));
  if (page != NULL && read->generation == self->generation && !self->ended)
    store_page (self, read->number, page);
}

static void
prefetch (EsEventListModel *self,
          gint64            number)
{
  g_autoptr(GTask) task = NULL;

  if (number < 0 || (guint64) number * self->page_size >= self->n_items ||
      g_hash_table_contains (self->pages, GUINT_TO_POINTER ((guint) number)) ||
      g_hash_table_contains (self->in_flight, GUINT_TO_POINTER ((guint) number)) ||
      g_hash_table_size (self->in_flight) >= MAX_PREFETCHES)
    return;

  g_hash_table_add (self->in_flight, GUINT_TO_POINTER ((guint) number));
  task = g_task_new (self, self->cancellable, prefetch_done, NULL);
  g_task_set_source_tag (task, prefetch);
  g_task_set_task_data (task, plan_page_read (self, (guint) number), page_read_free);
  g_task_run_in_thread (task, page_read_in_thread);
}

/* ---------------------------------------------------------------------- *
 * GListModel                                                              *
 * ---------------------------------------------------------------------- */

static GType
es_event_list_model_get_item_type (GListModel *list)
{
  return ES_TYPE_STORED_EVENT;
}

static guint
es_event_list_model_get_n_items (GListModel *list)
{
  return ES_EVENT_LIST_MODEL (list)->n_items;
}

static gpointer
es_event_list_model_get_item (GListModel *list,
                              guint       position)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (list);
  guint index, number, offset;
  Page *page;

  if (position >= self->n_items)
    return NULL;

  index = to_external (self, position, self->n_items);
  number = index / self->page_size;
  offset = index % self->page_size;

  page = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (number));
  if (page == NULL || offset >= page->events->len)
    {
      g_autoptr(PageRead) read = plan_page_read (self, number);
      g_autoptr(GPtrArray) events = NULL;
      g_autoptr(GError) error = NULL;

      /* The page on screen is read here, at once; its neighbours are read
       * ahead in workers. */
      events = run_page_read (read, NULL, &error);
      if (events == NULL)
        {
          g_debug ("Cannot read page %u of the event list: %s", number, error->message);
          return NULL;
        }
      store_page (self, number, events);
      page = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (number));
      if (page == NULL || offset >= page->events->len)
        return NULL;
    }
  else
    {
      g_queue_unlink (&self->lru, &page->link);
      g_queue_push_head_link (&self->lru, &page->link);
    }

  prefetch (self, (gint64) number + 1);
  prefetch (self, (gint64) number - 1);

  return g_object_ref (g_ptr_array_index (page->events, offset));
}

static void
es_event_list_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = es_event_list_model_get_item_type;
  iface->get_n_items = es_event_list_model_get_n_items;
  iface->get_item = es_event_list_model_get_item;
}

/* ---------------------------------------------------------------------- *
 * Live changes                                                            *
 * ---------------------------------------------------------------------- */

static void
set_loading (EsEventListModel *self,
             gboolean          loading)
{
  if (self->loading == loading)
    return;
  self->loading = loading;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

/* Replaces every item: used when positions changed in a way the model
 * cannot tell apart. */
static void
reset_items (EsEventListModel *self,
             guint             n_items)
{
  guint old = self->n_items;

  self->generation++;
  drop_pages (self);
  g_array_set_size (self->anchors, 0);
  self->n_items = n_items;
  if (old != 0 || n_items != 0)
    g_list_model_items_changed (G_LIST_MODEL (self), 0, old, n_items);
  if (old != n_items)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
}

static void
stop_watch (EsEventListModel *self)
{
  if (self->watch == NULL)
    return;
  g_signal_handlers_disconnect_by_data (self->watch, self);
  es_watch_stop (self->watch);
  g_clear_object (&self->watch);
}

/* The factory closed or the stream was deleted for good: no event will
 * ever be read again. */
static void
end_model (EsEventListModel *self)
{
  if (self->ended)
    return;
  self->ended = TRUE;
  stop_watch (self);
  g_cancellable_cancel (self->cancellable);
  self->dense = FALSE;
  reset_items (self, 0);
  set_loading (self, FALSE);
}

static void
on_watch_event (EsWatch       *watch,
                EsStoredEvent *event,
                gpointer       user_data)
{
  EsEventListModel *self = user_data;
  gint64 position = event_position (self, event);
  guint index, number;
  Page *page;

  if (position <= self->head || self->ended)
    return;

  if ((es_stored_event_get_flags (event) & ES_STORED_EVENT_FLAGS_TOMBSTONE) != 0)
    {
      /* A stream hard-deleted: its events leave @all. */
      self->head = position;
      start_count (self);
      return;
    }

  self->head = position;
  if (self->filter != NULL && !es_event_filter_matches (self->filter, event))
    return;

  index = self->n_items++;
  if (self->dense && index == 0)
    self->first_position = position;
  number = index / self->page_size;
  page = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (number));
  if (page != NULL && page->events->len == index % self->page_size)
    g_ptr_array_add (page->events, g_object_ref (event));
  if (index % self->page_size == 0 || index % self->page_size == self->page_size - 1)
    add_anchor (self, index, position);

  g_list_model_items_changed (G_LIST_MODEL (self), to_external (self, index, self->n_items), 0, 1);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
}

static void
on_watch_error (EsWatch      *watch,
                const GError *error,
                gpointer      user_data)
{
  EsEventListModel *self = user_data;

  if (g_error_matches (error, ES_ERROR, ES_ERROR_STREAM_DELETED) ||
      g_error_matches (error, ES_ERROR, ES_ERROR_CLOSED))
    end_model (self);
  else
    g_debug ("The event list's watch failed: %s", error->message);
}

static void
start_watch (EsEventListModel *self)
{
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GError) error = NULL;

  stream = es_stream_factory_open_stream (self->factory,
                                          self->stream_id != NULL ? self->stream_id : ES_ALL_STREAM,
                                          NULL, &error);
  if (stream == NULL)
    {
      if (g_error_matches (error, ES_ERROR, ES_ERROR_CLOSED))
        end_model (self);
      else
        g_debug ("Cannot watch the event list's stream: %s", error->message);
      return;
    }
  self->watch = es_stream_watch (stream, self->head);
  g_signal_connect (self->watch, "event", G_CALLBACK (on_watch_event), self);
  g_signal_connect (self->watch, "error", G_CALLBACK (on_watch_error), self);
}

/* ---------------------------------------------------------------------- *
 * Counting                                                                *
 * ---------------------------------------------------------------------- */

typedef struct
{
  EsStorageHandle *storage;
  char            *stream_id;
  EsEventFilter   *filter;
  gboolean         known_head;  /* recount up to head, else find the head */
  gint64           head;
  guint            generation;
  guint            n_items_before;
  /* results */
  gint64           count;
  gboolean         dense;
  gint64           first_position;
  gboolean         tombstoned;
} Count;

static void
count_free (gpointer data)
{
  Count *count = data;

  g_object_unref (count->storage);
  g_free (count->stream_id);
  g_clear_object (&count->filter);
  g_free (count);
}

static void
count_in_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  Count *count = task_data;
  GError *error = NULL;
  gint64 n;

  if (count->stream_id != NULL)
    {
      g_autoptr(EsStreamInfo) info =
        es_storage_handle_get_stream_info (count->storage, count->stream_id, cancellable, &error);

      if (info == NULL)
        {
          g_task_return_error (task, error);
          return;
        }
      if (es_stream_info_get_state (info) == ES_STREAM_STATE_TOMBSTONED)
        {
          count->tombstoned = TRUE;
          g_task_return_boolean (task, TRUE);
          return;
        }
      /* The info is one consistent reading: its count goes with its
       * version. Without a filter, a stream's versions are contiguous from
       * its first one (truncations and retention remove the oldest). */
      if (count->filter == NULL &&
          (!count->known_head || count->head == es_stream_info_get_current_version (info)))
        {
          gint64 current = es_stream_info_get_current_version (info);
          gint64 events = es_stream_info_get_event_count (info);
          gint64 first = es_stream_info_get_first_version (info);

          if (events == 0 || current - first + 1 == events)
            {
              count->head = current;
              count->known_head = TRUE;
              count->count = events;
              count->dense = TRUE;
              count->first_position = events == 0 ? current + 1 : first;
              g_task_return_boolean (task, TRUE);
              return;
            }
        }
      if (!count->known_head)
        count->head = es_stream_info_get_current_version (info);
    }
  else if (!count->known_head)
    {
      g_autoptr(EsStreamInfo) info = NULL;

      /* Every stream without a filter: the database's information, one
       * consistent reading of the last position and of the count. */
      if (count->filter == NULL)
        info = es_storage_handle_get_stream_info (count->storage, NULL, cancellable, NULL);
      if (info != NULL)
        {
          count->head = es_stream_info_get_current_version (info);
          count->known_head = TRUE;
          count->count = es_stream_info_get_event_count (info);
          g_task_return_boolean (task, TRUE);
          return;
        }
      if (!es_storage_handle_get_version (count->storage, NULL, &count->head, cancellable, &error))
        {
          g_task_return_error (task, error);
          return;
        }
    }
  count->known_head = TRUE;

  n = es_storage_handle_count_events (count->storage, count->stream_id, count->filter,
                                      0, count->head, cancellable, &error);
  if (n < 0)
    {
      g_task_return_error (task, error);
      return;
    }
  count->count = n;
  g_task_return_boolean (task, TRUE);
}

static void
count_done (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (source);
  Count *count = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  gboolean first = self->watch == NULL;
  guint appended;

  if (self->counting == count->generation)
    self->counting = 0;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (g_error_matches (error, ES_ERROR, ES_ERROR_CLOSED))
        end_model (self);
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_debug ("Cannot count the events of the list: %s", error->message);
          set_loading (self, FALSE);
        }
      return;
    }
  if (self->ended)
    return;
  if (count->tombstoned)
    {
      end_model (self);
      return;
    }

  /* Events the watch added while the count ran come after what it
   * counted (a recount counts up to the head it started with). */
  appended = self->n_items >= count->n_items_before ? self->n_items - count->n_items_before : 0;
  if (first)
    self->head = count->head;
  self->dense = count->dense && appended == 0;
  self->first_position = count->first_position;
  reset_items (self, (guint) MIN (count->count + appended, G_MAXUINT));

  if (first)
    start_watch (self);

  if (self->recount_again)
    {
      self->recount_again = FALSE;
      start_count (self);
    }
  else
    set_loading (self, FALSE);
}

static void
start_count (EsEventListModel *self)
{
  g_autoptr(GTask) task = NULL;
  Count *count;

  if (self->ended)
    return;
  if (self->counting != 0)
    {
      self->recount_again = TRUE;
      return;
    }

  set_loading (self, TRUE);
  count = g_new0 (Count, 1);
  count->storage = g_object_ref (self->storage);
  count->stream_id = g_strdup (self->stream_id);
  count->filter = self->filter != NULL ? g_object_ref (self->filter) : NULL;
  count->known_head = self->watch != NULL;
  count->head = self->head;
  count->n_items_before = self->n_items;
  count->generation = self->counting = ++self->generation;

  task = g_task_new (self, self->cancellable, count_done, NULL);
  g_task_set_source_tag (task, start_count);
  g_task_set_task_data (task, count, count_free);
  g_task_run_in_thread (task, count_in_thread);
}

/* A change made through the factory, in the model's main context. */
static void
model_apply_change (EsEventListModel    *self,
                    EsFactoryChangeKind  kind,
                    const char          *stream_id,
                    gint64               number)
{
  if (self->ended)
    return;
  if (kind == ES_FACTORY_CHANGE_CLOSED)
    {
      end_model (self);
      return;
    }
  /* A change of another stream leaves a stream's model alone; @all holds
   * every stream. A sweep may have touched any stream. */
  if (stream_id != NULL && self->stream_id != NULL && g_strcmp0 (stream_id, self->stream_id) != 0)
    return;

  if (kind == ES_FACTORY_CHANGE_ERASED && self->dense && self->counting == 0 &&
      number >= self->first_position && number < self->first_position + self->n_items)
    {
      guint index = (guint) (number - self->first_position);
      guint page = index / self->page_size;
      Page *cached = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (page));

      /* One item changed: read it again next time. */
      if (cached != NULL)
        {
          g_queue_unlink (&self->lru, &cached->link);
          g_hash_table_remove (self->pages, GUINT_TO_POINTER (page));
        }
      g_list_model_items_changed (G_LIST_MODEL (self), to_external (self, index, self->n_items), 1, 1);
      return;
    }

  if (kind == ES_FACTORY_CHANGE_TRUNCATED && self->dense && self->counting == 0 &&
      number > self->first_position)
    {
      guint removed = (guint) MIN (number - self->first_position, (gint64) self->n_items);
      guint old = self->n_items;

      /* The oldest items go; the others keep their versions. */
      self->generation++;
      drop_pages (self);
      self->first_position += removed;
      self->n_items -= removed;
      if (removed > 0)
        {
          if ((self->flags & ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST) != 0)
            g_list_model_items_changed (G_LIST_MODEL (self), old - removed, removed, 0);
          else
            g_list_model_items_changed (G_LIST_MODEL (self), 0, removed, 0);
          g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
        }
      return;
    }

  start_count (self);
}

/* ---------------------------------------------------------------------- *
 * GObject                                                                 *
 * ---------------------------------------------------------------------- */

static void
es_event_list_model_constructed (GObject *object)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (object);

  G_OBJECT_CLASS (es_event_list_model_parent_class)->constructed (object);

  g_return_if_fail (ES_IS_STREAM_FACTORY (self->factory));

  self->storage = g_object_ref (es_stream_factory_get_storage (self->factory));
  self->context = g_main_context_ref_thread_default ();
  self->listener_id = add_listener (self->factory, self);

  if (es_stream_factory_is_closed (self->factory))
    {
      self->ended = TRUE;
      return;
    }
  start_count (self);
}

static void
es_event_list_model_dispose (GObject *object)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (object);

  g_cancellable_cancel (self->cancellable);
  stop_watch (self);
  if (self->listener_id != 0)
    {
      remove_listener (self->factory, self->listener_id);
      self->listener_id = 0;
    }
  drop_pages (self);

  G_OBJECT_CLASS (es_event_list_model_parent_class)->dispose (object);
}

static void
es_event_list_model_finalize (GObject *object)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (object);

  g_clear_object (&self->factory);
  g_clear_object (&self->storage);
  g_free (self->stream_id);
  g_clear_object (&self->filter);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_array_unref (self->anchors);
  g_hash_table_unref (self->pages);
  g_hash_table_unref (self->in_flight);
  g_object_unref (self->cancellable);

  G_OBJECT_CLASS (es_event_list_model_parent_class)->finalize (object);
}

static void
es_event_list_model_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (object);

  switch (prop_id)
    {
    case PROP_FACTORY:
      g_value_set_object (value, self->factory);
      break;
    case PROP_STREAM_ID:
      g_value_set_string (value, es_event_list_model_get_stream_id (self));
      break;
    case PROP_FILTER:
      g_value_set_object (value, self->filter);
      break;
    case PROP_FLAGS:
      g_value_set_flags (value, self->flags);
      break;
    case PROP_N_ITEMS:
      g_value_set_uint (value, self->n_items);
      break;
    case PROP_LOADING:
      g_value_set_boolean (value, self->loading);
      break;
    case PROP_ITEM_TYPE:
      g_value_set_gtype (value, ES_TYPE_STORED_EVENT);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_event_list_model_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  EsEventListModel *self = ES_EVENT_LIST_MODEL (object);

  switch (prop_id)
    {
    case PROP_FACTORY:
      self->factory = g_value_dup_object (value);
      break;
    case PROP_STREAM_ID:
      {
        const char *stream_id = g_value_get_string (value);

        if (stream_id != NULL && !g_str_equal (stream_id, ES_ALL_STREAM))
          self->stream_id = g_strdup (stream_id);
      }
      break;
    case PROP_FILTER:
      {
        EsEventFilter *filter = g_value_get_object (value);

        if (filter != NULL && es_event_filter_get_n_clauses (filter) > 0)
          self->filter = g_object_ref (filter);
      }
      break;
    case PROP_FLAGS:
      self->flags = g_value_get_flags (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_event_list_model_class_init (EsEventListModelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = es_event_list_model_constructed;
  object_class->dispose = es_event_list_model_dispose;
  object_class->finalize = es_event_list_model_finalize;
  object_class->get_property = es_event_list_model_get_property;
  object_class->set_property = es_event_list_model_set_property;

  /**
   * EsEventListModel:factory:
   *
   * The factory whose storage the model reads.
   *
   * Since: 0.2
   */
  properties[PROP_FACTORY] =
    g_param_spec_object ("factory", NULL, NULL, ES_TYPE_STREAM_FACTORY,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsEventListModel:stream-id:
   *
   * The stream shown, or %ES_ALL_STREAM for every stream in commit order.
   *
   * Since: 0.2
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsEventListModel:filter:
   *
   * Only the events matching it are items, or %NULL for all.
   *
   * Since: 0.2
   */
  properties[PROP_FILTER] =
    g_param_spec_object ("filter", NULL, NULL, ES_TYPE_EVENT_FILTER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsEventListModel:flags:
   *
   * The order of the items.
   *
   * Since: 0.2
   */
  properties[PROP_FLAGS] =
    g_param_spec_flags ("flags", NULL, NULL, ES_TYPE_EVENT_LIST_MODEL_FLAGS,
                        ES_EVENT_LIST_MODEL_FLAGS_NONE,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsEventListModel:n-items:
   *
   * The number of items, notified when it changes.
   *
   * Since: 0.2
   */
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsEventListModel:loading:
   *
   * %TRUE while the model counts its events (at first, and after a change
   * it cannot follow item by item).
   *
   * Since: 0.2
   */
  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * EsEventListModel:item-type:
   *
   * The type of the items: [class@Es.StoredEvent].
   *
   * Since: 0.2
   */
  properties[PROP_ITEM_TYPE] =
    g_param_spec_gtype ("item-type", NULL, NULL, ES_TYPE_STORED_EVENT,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_event_list_model_init (EsEventListModel *self)
{
  self->page_size = DEFAULT_PAGE_SIZE;
  self->max_pages = DEFAULT_MAX_PAGES;
  self->anchors = g_array_new (FALSE, FALSE, sizeof (Anchor));
  self->pages = g_hash_table_new_full (NULL, NULL, NULL, page_free);
  self->in_flight = g_hash_table_new (NULL, NULL);
  self->cancellable = g_cancellable_new ();
}

/* ---------------------------------------------------------------------- *
 * Public API                                                              *
 * ---------------------------------------------------------------------- */

/**
 * es_event_list_model_new:
 * @factory: the [class@Es.StreamFactory] to read from
 * @stream_id: (nullable): the stream to show, or %ES_ALL_STREAM (or %NULL)
 *   for every stream in commit order
 * @filter: (nullable): only the events matching it, or %NULL for all
 * @flags: the order of the items
 *
 * Makes a live list of the stream's events. It returns at once, empty and
 * [property@Es.EventListModel:loading]: the events are counted in a worker
 * thread and appear in one [signal@Gio.ListModel::items-changed] in the
 * calling thread's thread-default main context, which must run a main
 * loop. Problems (a closed factory, a tombstoned stream) leave it empty.
 *
 * The filter is copied by reference: do not change it afterwards.
 *
 * Returns: (transfer full): the model
 *
 * Since: 0.2
 */
EsEventListModel *
es_event_list_model_new (EsStreamFactory       *factory,
                         const char            *stream_id,
                         EsEventFilter         *filter,
                         EsEventListModelFlags  flags)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (factory), NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);

  return g_object_new (ES_TYPE_EVENT_LIST_MODEL,
                       "factory", factory,
                       "stream-id", stream_id,
                       "filter", filter,
                       "flags", flags,
                       NULL);
}

/**
 * es_event_list_model_get_factory:
 * @self: an [class@Es.EventListModel]
 *
 * Gets the factory the model reads from, as given to [ctor@Es.EventListModel.new].
 *
 * Returns: (transfer none): the factory the model reads from
 *
 * Since: 0.2
 */
EsStreamFactory *
es_event_list_model_get_factory (EsEventListModel *self)
{
  g_return_val_if_fail (ES_IS_EVENT_LIST_MODEL (self), NULL);
  return self->factory;
}

/**
 * es_event_list_model_get_stream_id:
 * @self: an [class@Es.EventListModel]
 *
 * Gets the stream the model shows.
 *
 * Returns: the stream shown, %ES_ALL_STREAM for every stream
 *
 * Since: 0.2
 */
const char *
es_event_list_model_get_stream_id (EsEventListModel *self)
{
  g_return_val_if_fail (ES_IS_EVENT_LIST_MODEL (self), NULL);
  return self->stream_id != NULL ? self->stream_id : ES_ALL_STREAM;
}

/**
 * es_event_list_model_get_filter:
 * @self: an [class@Es.EventListModel]
 *
 * Gets the filter of the model's events.
 *
 * Returns: (transfer none) (nullable): the filter, or %NULL when every
 *   event is shown
 *
 * Since: 0.2
 */
EsEventFilter *
es_event_list_model_get_filter (EsEventListModel *self)
{
  g_return_val_if_fail (ES_IS_EVENT_LIST_MODEL (self), NULL);
  return self->filter;
}

/**
 * es_event_list_model_get_flags:
 * @self: an [class@Es.EventListModel]
 *
 * Gets the order of the model's items.
 *
 * Returns: the flags given to [ctor@Es.EventListModel.new]
 *
 * Since: 0.2
 */
EsEventListModelFlags
es_event_list_model_get_flags (EsEventListModel *self)
{
  g_return_val_if_fail (ES_IS_EVENT_LIST_MODEL (self), ES_EVENT_LIST_MODEL_FLAGS_NONE);
  return self->flags;
}

/**
 * es_event_list_model_get_loading:
 * @self: an [class@Es.EventListModel]
 *
 * Gets whether the model is counting its events: at first, and after a
 * change it cannot follow item by item. The items are those of the
 * previous count meanwhile.
 *
 * Returns: %TRUE while the model counts its events
 *
 * Since: 0.2
 */
gboolean
es_event_list_model_get_loading (EsEventListModel *self)
{
  g_return_val_if_fail (ES_IS_EVENT_LIST_MODEL (self), FALSE);
  return self->loading;
}

/**
 * es_event_list_model_refresh:
 * @self: an [class@Es.EventListModel]
 *
 * Counts the events again, in a worker thread, and replaces the items if
 * the count changed or some were erased. Use it to see the deletes,
 * truncations, erasures and sweeps other processes made (those made
 * through the model's own factory, new events and hard deletes are seen
 * without it).
 *
 * Since: 0.2
 */
void
es_event_list_model_refresh (EsEventListModel *self)
{
  g_return_if_fail (ES_IS_EVENT_LIST_MODEL (self));

  if (self->watch == NULL)
    return;
  start_count (self);
}

/* For the tests: small pages make page boundaries cheap to reach. */
void
_es_event_list_model_set_page_size (EsEventListModel *self,
                                    guint             page_size,
                                    guint             max_pages)
{
  g_return_if_fail (page_size > 0 && max_pages > 0);
  self->page_size = page_size;
  self->max_pages = max_pages;
  drop_pages (self);
  g_array_set_size (self->anchors, 0);
  self->generation++;
}

guint
_es_event_list_model_get_n_cached_pages (EsEventListModel *self)
{
  return g_hash_table_size (self->pages);
}
