/* es-stream-info-enumerator.c: pages through a listing of streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"
#include "es-page-enumerator-private.h"

/**
 * EsStreamInfoEnumerator:
 *
 * Returns the streams of a listing ([method@Es.StreamFactory.list_streams])
 * one at a time or in batches, in byte-wise order of their ids. It fetches
 * them from the database a page at a time (keyset paging on the stream
 * id), and the backend reads only what it keeps per stream, never the
 * streams' events: listing 100,000 streams costs the same whatever they
 * hold, and memory stays flat.
 *
 * ```c
 * g_autoptr(EsStreamInfoEnumerator) streams =
 *   es_stream_factory_list_streams (factory, "order-", ES_LIST_STREAMS_FLAGS_NONE,
 *                                   NULL, &error);
 * EsStreamInfo *info;
 *
 * while ((info = es_stream_info_enumerator_next (streams, NULL, &error)) != NULL)
 *   {
 *     g_print ("%s: %" G_GINT64_FORMAT " events\n", es_stream_info_get_stream_id (info),
 *              es_stream_info_get_event_count (info));
 *     g_object_unref (info);
 *   }
 * ```
 *
 * A stream created or deleted while the enumerator is in use shows (or
 * not) depending on whether its id comes after the enumerator's position:
 * each page is read as the database is then, and no stream is returned
 * twice.
 *
 * An enumerator is used from one thread at a time; while an
 * [method@Es.StreamInfoEnumerator.next_batch_async] is pending, other calls
 * fail with %G_IO_ERROR_PENDING. Once its factory is closed, fetching the
 * next page fails with %ES_ERROR_CLOSED.
 *
 * Since: 0.2
 */

struct _EsStreamInfoEnumerator
{
  GObject             parent_instance;

  EsStorageHandle    *storage;  /* (owned) */
  char               *prefix;   /* (owned) (nullable) */
  EsListStreamsFlags  flags;
  char               *after;    /* (owned) (nullable): id of the last stream fetched */

  EsPageEnumerator    pager;    /* the page of EsStreamInfo, closed, pending */
};

G_DEFINE_FINAL_TYPE (EsStreamInfoEnumerator, es_stream_info_enumerator, G_TYPE_OBJECT)

static GPtrArray *
fetch_page (gpointer       owner,
            guint          page_size,
            GCancellable  *cancellable,
            GError       **error)
{
  EsStreamInfoEnumerator *self = owner;

  return es_storage_handle_list_streams (self->storage, self->prefix, self->after,
                                         self->flags, page_size, cancellable, error);
}

static gboolean
advance (gpointer owner,
         gpointer last)
{
  EsStreamInfoEnumerator *self = owner;

  g_free (self->after);
  self->after = g_strdup (es_stream_info_get_stream_id (last));
  return TRUE;
}

static const EsPageEnumeratorClass stream_pages = {
  .fetch = fetch_page,
  .advance = advance,
  .closed_message = N_("The stream enumerator is closed"),
  .pending_message = N_("The stream enumerator has an outstanding operation"),
};

static void
es_stream_info_enumerator_finalize (GObject *object)
{
  EsStreamInfoEnumerator *self = ES_STREAM_INFO_ENUMERATOR (object);

  _es_page_enumerator_clear (&self->pager);
  g_clear_object (&self->storage);
  g_free (self->prefix);
  g_free (self->after);

  G_OBJECT_CLASS (es_stream_info_enumerator_parent_class)->finalize (object);
}

static void
es_stream_info_enumerator_class_init (EsStreamInfoEnumeratorClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = es_stream_info_enumerator_finalize;

  _es_i18n_init ();
}

static void
es_stream_info_enumerator_init (EsStreamInfoEnumerator *self)
{
  _es_page_enumerator_init (&self->pager, &stream_pages, self);
}

/*
 * _es_stream_info_enumerator_new:
 * @storage: the backend to list
 * @prefix: (nullable): only streams whose id starts with this
 * @flags: what to list
 */
EsStreamInfoEnumerator *
_es_stream_info_enumerator_new (EsStorageHandle    *storage,
                                const char         *prefix,
                                EsListStreamsFlags  flags)
{
  EsStreamInfoEnumerator *self = g_object_new (ES_TYPE_STREAM_INFO_ENUMERATOR, NULL);

  self->storage = g_object_ref (storage);
  self->prefix = prefix != NULL && *prefix != '\0' ? g_strdup (prefix) : NULL;
  self->flags = flags;
  return self;
}

/*
 * _es_stream_info_enumerator_fill:
 *
 * Fetches the next page if the current one is used up, so that a listing
 * reports errors (closed factory, storage) when it starts.
 */
gboolean
_es_stream_info_enumerator_fill (EsStreamInfoEnumerator  *self,
                                 GCancellable            *cancellable,
                                 GError                 **error)
{
  return _es_page_enumerator_fill (&self->pager, cancellable, error);
}

/**
 * es_stream_info_enumerator_next:
 * @self: an [class@Es.StreamInfoEnumerator]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Returns the next stream, fetching the next page from the database when
 * the current one is used up.
 *
 * Returns: (transfer full) (nullable): the next stream's information, or
 *   %NULL at the end (without an error) or on error
 *
 * Since: 0.2
 */
EsStreamInfo *
es_stream_info_enumerator_next (EsStreamInfoEnumerator  *self,
                                GCancellable            *cancellable,
                                GError                 **error)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return _es_page_enumerator_next (&self->pager, cancellable, error);
}

/**
 * es_stream_info_enumerator_next_batch:
 * @self: an [class@Es.StreamInfoEnumerator]
 * @max_streams: the most streams to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Returns up to @max_streams next streams. A batch shorter than
 * @max_streams is possible only at the end of the listing or before an
 * error, which the next call then reports.
 *
 * Returns: (transfer container) (element-type EsStreamInfo): the streams,
 *   which the array owns (release it with g_ptr_array_unref()); empty
 *   at the end, or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
es_stream_info_enumerator_next_batch (EsStreamInfoEnumerator  *self,
                                      guint                    max_streams,
                                      GCancellable            *cancellable,
                                      GError                 **error)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self), NULL);
  g_return_val_if_fail (max_streams > 0, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return _es_page_enumerator_next_batch (&self->pager, max_streams, cancellable, error);
}

/**
 * es_stream_info_enumerator_next_batch_async:
 * @self: an [class@Es.StreamInfoEnumerator]
 * @max_streams: the most streams to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the batch is ready
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamInfoEnumerator.next_batch] without blocking:
 * database work runs in a worker thread and @callback in the caller's
 * thread-default main context.
 *
 * Since: 0.2
 */
void
es_stream_info_enumerator_next_batch_async (EsStreamInfoEnumerator *self,
                                            guint                   max_streams,
                                            GCancellable           *cancellable,
                                            GAsyncReadyCallback     callback,
                                            gpointer                user_data)
{
  g_return_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self));
  g_return_if_fail (max_streams > 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  _es_page_enumerator_next_batch_async (&self->pager, max_streams, cancellable, callback,
                                        user_data, es_stream_info_enumerator_next_batch_async);
}

/**
 * es_stream_info_enumerator_next_batch_finish:
 * @self: an [class@Es.StreamInfoEnumerator]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamInfoEnumerator.next_batch_async].
 *
 * Returns: (transfer container) (element-type EsStreamInfo): the streams,
 *   which the array owns (release it with g_ptr_array_unref()); empty
 *   at the end, or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
es_stream_info_enumerator_next_batch_finish (EsStreamInfoEnumerator  *self,
                                             GAsyncResult            *result,
                                             GError                 **error)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result,
                                                  es_stream_info_enumerator_next_batch_async),
                        NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_info_enumerator_close:
 * @self: an [class@Es.StreamInfoEnumerator]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Releases the buffered page. Later calls fail with %G_IO_ERROR_CLOSED.
 * Closing twice is harmless; dropping the last reference closes too.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_stream_info_enumerator_close (EsStreamInfoEnumerator  *self,
                                 GCancellable            *cancellable,
                                 GError                 **error)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return _es_page_enumerator_close (&self->pager, error);
}

/**
 * es_stream_info_enumerator_is_closed:
 * @self: an [class@Es.StreamInfoEnumerator]
 *
 * Whether [method@Es.StreamInfoEnumerator.close] was called.
 *
 * Returns: %TRUE when closed
 *
 * Since: 0.2
 */
gboolean
es_stream_info_enumerator_is_closed (EsStreamInfoEnumerator *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self), TRUE);

  return self->pager.closed;
}
