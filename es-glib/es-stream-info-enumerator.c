/* es-stream-info-enumerator.c: pages through a listing of streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

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

  gpointer           *page;     /* (owned) (array length=page_len): EsStreamInfo, NULL once handed out */
  guint               page_len;
  guint               page_pos;

  GError             *deferred; /* (owned) (nullable): failure after a partial batch */
  gboolean            at_end;
  gboolean            closed;
  gint                pending;  /* (atomic) an async batch is running */
};

G_DEFINE_FINAL_TYPE (EsStreamInfoEnumerator, es_stream_info_enumerator, G_TYPE_OBJECT)

static void
clear_page (EsStreamInfoEnumerator *self)
{
  for (guint i = self->page_pos; i < self->page_len; i++)
    g_clear_object ((EsStreamInfo **) &self->page[i]);
  g_clear_pointer (&self->page, g_free);
  self->page_len = 0;
  self->page_pos = 0;
}

static void
es_stream_info_enumerator_finalize (GObject *object)
{
  EsStreamInfoEnumerator *self = ES_STREAM_INFO_ENUMERATOR (object);

  clear_page (self);
  g_clear_error (&self->deferred);
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
  g_autoptr(GPtrArray) streams = NULL;
  gsize len = 0;

  if (self->page_pos < self->page_len || self->at_end)
    return TRUE;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  streams = es_storage_handle_list_streams (self->storage, self->prefix, self->after,
                                            self->flags, ES_READ_PAGE_SIZE,
                                            cancellable, error);
  if (streams == NULL)
    return FALSE;

  clear_page (self);
  /* A short page is the end of what is stored now: don't ask again. */
  self->at_end = streams->len < ES_READ_PAGE_SIZE;
  if (streams->len > 0)
    {
      EsStreamInfo *last = g_ptr_array_index (streams, streams->len - 1);

      g_free (self->after);
      self->after = g_strdup (es_stream_info_get_stream_id (last));
    }

  g_ptr_array_set_free_func (streams, NULL);
  self->page = g_ptr_array_steal (streams, &len);
  self->page_len = len;
  self->page_pos = 0;
  return TRUE;
}

static gboolean
check_usable (EsStreamInfoEnumerator  *self,
              GError                 **error)
{
  if (self->closed)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                           _("The stream enumerator is closed"));
      return FALSE;
    }
  if (g_atomic_int_get (&self->pending))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           _("The stream enumerator has an outstanding operation"));
      return FALSE;
    }
  return TRUE;
}

/* The batch logic shared by next, next_batch and next_batch_async. */
static GPtrArray *
next_batch_internal (EsStreamInfoEnumerator  *self,
                     guint                    max_streams,
                     GCancellable            *cancellable,
                     GError                 **error)
{
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);

  if (self->deferred != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&self->deferred));
      return NULL;
    }

  while (batch->len < max_streams)
    {
      g_autoptr(GError) local_error = NULL;

      if (self->page_pos == self->page_len)
        {
          if (self->at_end)
            break;
          if (!_es_stream_info_enumerator_fill (self, cancellable, &local_error))
            {
              /* Hand out what was gathered; the error comes next time. */
              if (batch->len > 0)
                {
                  self->deferred = g_steal_pointer (&local_error);
                  break;
                }
              g_propagate_error (error, g_steal_pointer (&local_error));
              return NULL;
            }
          if (self->page_len == 0)
            break;
        }

      g_ptr_array_add (batch, self->page[self->page_pos]);
      self->page[self->page_pos++] = NULL;
    }

  return g_steal_pointer (&batch);
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
  g_autoptr(GPtrArray) batch = NULL;

  g_return_val_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_usable (self, error))
    return NULL;

  if (self->page_pos < self->page_len && self->deferred == NULL)
    {
      EsStreamInfo *info = self->page[self->page_pos];

      self->page[self->page_pos++] = NULL;
      return info;
    }

  batch = next_batch_internal (self, 1, cancellable, error);
  if (batch == NULL || batch->len == 0)
    return NULL;
  return g_ptr_array_steal_index (batch, 0);
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

  if (!check_usable (self, error))
    return NULL;

  return next_batch_internal (self, max_streams, cancellable, error);
}

static void
next_batch_in_thread (GTask        *task,
                      gpointer      source_object,
                      gpointer      task_data,
                      GCancellable *cancellable)
{
  EsStreamInfoEnumerator *self = source_object;
  GError *error = NULL;
  GPtrArray *batch;

  batch = next_batch_internal (self, GPOINTER_TO_UINT (task_data), cancellable, &error);
  g_atomic_int_set (&self->pending, FALSE);
  if (batch == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, batch, (GDestroyNotify) g_ptr_array_unref);
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
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (ES_IS_STREAM_INFO_ENUMERATOR (self));
  g_return_if_fail (max_streams > 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_stream_info_enumerator_next_batch_async);

  if (!check_usable (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  g_atomic_int_set (&self->pending, TRUE);
  g_task_set_task_data (task, GUINT_TO_POINTER (max_streams), NULL);
  g_task_run_in_thread (task, next_batch_in_thread);
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

  if (g_atomic_int_get (&self->pending))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           _("The stream enumerator has an outstanding operation"));
      return FALSE;
    }

  self->closed = TRUE;
  clear_page (self);
  g_clear_error (&self->deferred);
  return TRUE;
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

  return self->closed;
}
