/* es-event-enumerator.c: pages through the result of a read.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"
#include "es-page-enumerator-private.h"

/**
 * EsEventEnumerator:
 *
 * Returns the events of a read ([method@Es.Stream.read]) one at a time or
 * in batches, oldest first (newest first for
 * [method@Es.Stream.read_backwards]). It fetches them from the database a
 * page at a time (keyset paging on the version, or the sequence id for
 * <code>@<!-- -->all</code>), so memory stays flat however long the stream
 * is.
 *
 * ```c
 * g_autoptr(EsEventEnumerator) events = es_stream_read (stream, 0, NULL, NULL, &error);
 * EsStoredEvent *event;
 *
 * while ((event = es_event_enumerator_next (events, NULL, &error)) != NULL)
 *   {
 *     apply (state, event);
 *     g_object_unref (event);
 *   }
 * if (error != NULL)
 *   ...
 * ```
 *
 * Each page is read as the database is when it is fetched: events that a
 * delete, a truncation or retention removes while the enumerator is in
 * use are missing from the pages not fetched yet, an event erased
 * meanwhile comes erased, and no event is returned twice or out of order.
 *
 * An enumerator is used from one thread at a time; while an
 * [method@Es.EventEnumerator.next_batch_async] is pending, other calls
 * fail with %G_IO_ERROR_PENDING. Once its factory is closed, fetching the
 * next page fails with %ES_ERROR_CLOSED.
 *
 * Since: 0.1
 */

struct _EsEventEnumerator
{
  GObject           parent_instance;

  EsStorageHandle  *storage;    /* (owned) */
  char             *stream_id;  /* (owned) (nullable): NULL reads every stream */
  EsEventFilter    *filter;     /* (owned) (nullable) */
  EsReadFlags       flags;      /* the direction */
  gint64            after;      /* version (or sequence id) of the last event fetched:
                                 * the next page starts after it (before it backwards) */

  EsPageEnumerator  pager;      /* the page of EsStoredEvent, closed, pending */
};

G_DEFINE_FINAL_TYPE (EsEventEnumerator, es_event_enumerator, G_TYPE_OBJECT)

static GPtrArray *
fetch_page (gpointer       owner,
            guint          page_size,
            GCancellable  *cancellable,
            GError       **error)
{
  EsEventEnumerator *self = owner;

  return es_storage_handle_read_page_full (self->storage, self->stream_id, self->after,
                                           self->flags, self->filter, page_size,
                                           cancellable, error);
}

static gboolean
advance (gpointer owner,
         gpointer last)
{
  EsEventEnumerator *self = owner;

  self->after = self->stream_id != NULL ? es_stored_event_get_version (last)
                                        : es_stored_event_get_sequence_id (last);
  /* Backwards, nothing comes before the first version. */
  return (self->flags & ES_READ_FLAGS_BACKWARDS) == 0 || self->after > 1;
}

static const EsPageEnumeratorClass event_pages = {
  .fetch = fetch_page,
  .advance = advance,
  .closed_message = N_("The event enumerator is closed"),
  .pending_message = N_("The event enumerator has an outstanding operation"),
};

static void
es_event_enumerator_finalize (GObject *object)
{
  EsEventEnumerator *self = ES_EVENT_ENUMERATOR (object);

  _es_page_enumerator_clear (&self->pager);
  g_clear_object (&self->storage);
  g_clear_object (&self->filter);
  g_free (self->stream_id);

  G_OBJECT_CLASS (es_event_enumerator_parent_class)->finalize (object);
}

static void
es_event_enumerator_class_init (EsEventEnumeratorClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = es_event_enumerator_finalize;

  _es_i18n_init ();
}

static void
es_event_enumerator_init (EsEventEnumerator *self)
{
  _es_page_enumerator_init (&self->pager, &event_pages, self);
}

/*
 * _es_event_enumerator_new:
 * @storage: the backend to read from
 * @stream_id: (nullable): the stream, or %NULL for every stream
 * @after: start after this version (sequence id when @stream_id is %NULL)
 * @filter: (nullable): a validated filter; it is copied by reference, so
 *   the caller must not add clauses afterwards
 */
EsEventEnumerator *
_es_event_enumerator_new (EsStorageHandle *storage,
                          const char      *stream_id,
                          gint64           after,
                          EsEventFilter   *filter)
{
  return _es_event_enumerator_new_full (storage, stream_id, after, ES_READ_FLAGS_NONE, filter);
}

/*
 * _es_event_enumerator_new_full:
 * @position: forwards, start after this version (sequence id when
 *   @stream_id is %NULL); with %ES_READ_FLAGS_BACKWARDS, before it
 *   (%G_MAXINT64: from the newest; 0 or less: nothing)
 * @flags: the direction
 */
EsEventEnumerator *
_es_event_enumerator_new_full (EsStorageHandle *storage,
                               const char      *stream_id,
                               gint64           position,
                               EsReadFlags      flags,
                               EsEventFilter   *filter)
{
  EsEventEnumerator *self = g_object_new (ES_TYPE_EVENT_ENUMERATOR, NULL);

  self->storage = g_object_ref (storage);
  self->stream_id = g_strdup (stream_id);
  self->after = position;
  self->flags = flags;
  self->filter = filter != NULL ? g_object_ref (filter) : NULL;
  /* Nothing comes before the first version. */
  if ((flags & ES_READ_FLAGS_BACKWARDS) != 0 && position <= 1)
    self->pager.at_end = TRUE;
  return self;
}

/*
 * _es_event_enumerator_fill:
 *
 * Fetches the next page if the current one is used up, so that a read
 * reports errors (bad filter, closed factory, storage) when it starts.
 */
gboolean
_es_event_enumerator_fill (EsEventEnumerator  *self,
                           GCancellable       *cancellable,
                           GError            **error)
{
  return _es_page_enumerator_fill (&self->pager, cancellable, error);
}

/**
 * es_event_enumerator_next:
 * @self: an [class@Es.EventEnumerator]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Returns the next event, fetching the next page from the database when
 * the current one is used up.
 *
 * Returns: (transfer full) (nullable): the next event, or %NULL at the end
 *   (without an error) or on error
 *
 * Since: 0.1
 */
EsStoredEvent *
es_event_enumerator_next (EsEventEnumerator  *self,
                          GCancellable       *cancellable,
                          GError            **error)
{
  g_return_val_if_fail (ES_IS_EVENT_ENUMERATOR (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return _es_page_enumerator_next (&self->pager, cancellable, error);
}

/**
 * es_event_enumerator_next_batch:
 * @self: an [class@Es.EventEnumerator]
 * @max_events: the most events to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Returns up to @max_events next events. A batch shorter than @max_events
 * is possible only at the end of the stream or before an error, which the
 * next call then reports.
 *
 * Returns: (transfer container) (element-type EsStoredEvent): the events,
 *   which the array owns (release it with g_ptr_array_unref()); empty
 *   at the end, or %NULL on error
 *
 * Since: 0.1
 */
GPtrArray *
es_event_enumerator_next_batch (EsEventEnumerator  *self,
                                guint               max_events,
                                GCancellable       *cancellable,
                                GError            **error)
{
  g_return_val_if_fail (ES_IS_EVENT_ENUMERATOR (self), NULL);
  g_return_val_if_fail (max_events > 0, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return _es_page_enumerator_next_batch (&self->pager, max_events, cancellable, error);
}

/**
 * es_event_enumerator_next_batch_async:
 * @self: an [class@Es.EventEnumerator]
 * @max_events: the most events to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the batch is ready
 * @user_data: data for @callback
 *
 * Starts [method@Es.EventEnumerator.next_batch] without blocking: database
 * work runs in a worker thread and @callback in the caller's thread-default
 * main context.
 *
 * Since: 0.1
 */
void
es_event_enumerator_next_batch_async (EsEventEnumerator   *self,
                                      guint                max_events,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  g_return_if_fail (ES_IS_EVENT_ENUMERATOR (self));
  g_return_if_fail (max_events > 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  _es_page_enumerator_next_batch_async (&self->pager, max_events, cancellable, callback,
                                        user_data, es_event_enumerator_next_batch_async);
}

/**
 * es_event_enumerator_next_batch_finish:
 * @self: an [class@Es.EventEnumerator]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.EventEnumerator.next_batch_async].
 *
 * Returns: (transfer container) (element-type EsStoredEvent): the events,
 *   which the array owns (release it with g_ptr_array_unref()); empty
 *   at the end, or %NULL on error
 *
 * Since: 0.1
 */
GPtrArray *
es_event_enumerator_next_batch_finish (EsEventEnumerator  *self,
                                       GAsyncResult       *result,
                                       GError            **error)
{
  g_return_val_if_fail (ES_IS_EVENT_ENUMERATOR (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_event_enumerator_next_batch_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_event_enumerator_close:
 * @self: an [class@Es.EventEnumerator]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Releases the buffered page. Later calls fail with %G_IO_ERROR_CLOSED.
 * Closing twice is harmless; dropping the last reference closes too.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_event_enumerator_close (EsEventEnumerator  *self,
                           GCancellable       *cancellable,
                           GError            **error)
{
  g_return_val_if_fail (ES_IS_EVENT_ENUMERATOR (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return _es_page_enumerator_close (&self->pager, error);
}

/**
 * es_event_enumerator_is_closed:
 * @self: an [class@Es.EventEnumerator]
 *
 * Whether [method@Es.EventEnumerator.close] was called.
 *
 * Returns: %TRUE when closed
 *
 * Since: 0.1
 */
gboolean
es_event_enumerator_is_closed (EsEventEnumerator *self)
{
  g_return_val_if_fail (ES_IS_EVENT_ENUMERATOR (self), TRUE);

  return self->pager.closed;
}
