/* es-storage-handle.c: the contract a storage backend implements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsStorageHandle:
 *
 * The storage contract of es-glib: what the stream logic needs from a
 * database. [class@Es.SqliteStorage] implements it on SQLite; a backend for
 * another database implements the same methods and is handed to
 * [ctor@Es.StreamFactory.new].
 *
 * The stream layer validates everything that comes from applications
 * (stream ids, event types, metadata, filters, versions) before it reaches
 * a backend, and drops idempotency keys that repeat inside a batch; the
 * backend provides atomicity, the idempotency lookup against stored events
 * and the expected-version check, inside one transaction (see
 * [method@Es.StorageHandle.append] for their order).
 *
 * Cancellation follows GIO's rule: %G_IO_ERROR_CANCELLED means nothing was
 * written. A backend honours a cancellation only up to its commit point;
 * once an append or a snapshot has been committed it reports its result,
 * whenever the cancellable fires. An `append_async` built on a
 * [class@Gio.Task] therefore calls g_task_set_check_cancellable() with
 * %FALSE.
 *
 * All methods except `append_async` may block and are called from worker
 * threads, possibly several at once.
 *
 * Since: 0.1
 */

G_DEFINE_INTERFACE (EsStorageHandle, es_storage_handle, G_TYPE_OBJECT)

typedef struct
{
  char              *stream_id;
  gint64             expected_version;
  GPtrArray         *events;   /* (element-type EsCandidateEvent) (owned) */
} AppendData;

static void
append_data_free (gpointer data)
{
  AppendData *append = data;

  g_free (append->stream_id);
  g_ptr_array_unref (append->events);
  g_free (append);
}

static GQuark
found_version_quark (void)
{
  static gsize quark;

  if (g_once_init_enter (&quark))
    g_once_init_leave (&quark, g_quark_from_static_string ("es-append-found-version"));
  return (GQuark) quark;
}

void
_es_append_task_return_error (GTask   *task,
                              GError  *error,
                              gint64   found_version)
{
  if (found_version >= 0 && g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
    g_object_set_qdata_full (G_OBJECT (task), found_version_quark (),
                             g_memdup2 (&found_version, sizeof found_version), g_free);
  g_task_return_error (task, error);
}

gboolean
_es_append_task_propagate (GTask   *task,
                           gint64  *out_version,
                           GError **error)
{
  GError *local_error = NULL;
  const gint64 *found;

  if (_es_task_propagate_int64 (task, out_version, &local_error))
    return TRUE;

  if (out_version != NULL &&
      g_error_matches (local_error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
    {
      found = g_object_get_qdata (G_OBJECT (task), found_version_quark ());
      *out_version = found != NULL ? *found : -1;
    }
  g_propagate_error (error, local_error);
  return FALSE;
}

static void
append_in_thread (GTask        *task,
                  gpointer      source_object,
                  gpointer      task_data,
                  GCancellable *cancellable)
{
  AppendData *append = task_data;
  g_autoptr(GError) error = NULL;
  gint64 version = -1;

  if (ES_STORAGE_HANDLE_GET_IFACE (source_object)->append (source_object,
                                                          append->stream_id,
                                                          append->expected_version,
                                                          (EsCandidateEvent * const *) append->events->pdata,
                                                          append->events->len,
                                                          &version,
                                                          cancellable,
                                                          &error))
    _es_task_return_int64 (task, version);
  else
    _es_append_task_return_error (task, g_steal_pointer (&error), version);
}

/* The default append_async: runs the blocking append in GTask's pool. */
static void
es_storage_handle_real_append_async (EsStorageHandle          *self,
                                     const char               *stream_id,
                                     gint64                    expected_version,
                                     EsCandidateEvent * const *events,
                                     guint                     n_events,
                                     GCancellable             *cancellable,
                                     GAsyncReadyCallback       callback,
                                     gpointer                  user_data)
{
  g_autoptr(GTask) task = NULL;
  AppendData *append;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_storage_handle_real_append_async);
  /* An append that committed is reported as done even if the cancellable
   * fired after the commit point: only append() decides CANCELLED. */
  g_task_set_check_cancellable (task, FALSE);

  append = g_new0 (AppendData, 1);
  append->stream_id = g_strdup (stream_id);
  append->expected_version = expected_version;
  append->events = g_ptr_array_new_full (n_events, g_object_unref);
  for (guint i = 0; i < n_events; i++)
    g_ptr_array_add (append->events, g_object_ref (events[i]));
  g_task_set_task_data (task, append, append_data_free);

  g_task_run_in_thread (task, append_in_thread);
}

static gboolean
es_storage_handle_real_append_finish (EsStorageHandle  *self,
                                      GAsyncResult     *result,
                                      gint64           *out_version,
                                      GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return _es_append_task_propagate (G_TASK (result), out_version, error);
}

static void
es_storage_handle_default_init (EsStorageHandleInterface *iface)
{
  _es_i18n_init ();

  iface->append_async = es_storage_handle_real_append_async;
  iface->append_finish = es_storage_handle_real_append_finish;
}

/**
 * es_storage_handle_append:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: a valid stream id (not <code>@<!-- -->all</code>)
 * @expected_version: the version the stream must be at, or %ES_VERSION_ANY
 * @events: (array length=n_events): validated events, no idempotency key
 *   repeated among them
 * @n_events: the number of @events, at least 1
 * @out_version: (out) (optional): the stream's version after the append;
 *   on %ES_ERROR_WRONG_EXPECTED_VERSION, the version the check found
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Appends @events to @stream_id atomically, in one transaction, in this
 * order:
 *
 * 1. The idempotency lookup: events whose idempotency key is already
 *    stored in the stream are skipped.
 * 2. If every event was skipped (a retry of a batch that was stored), the
 *    append succeeds, writes nothing and sets @out_version to the stream's
 *    current version, whatever @expected_version says.
 * 3. Otherwise, if @expected_version is not %ES_VERSION_ANY and the stream
 *    is at another version, the append fails with
 *    %ES_ERROR_WRONG_EXPECTED_VERSION and writes nothing. Since 0.2 it also
 *    sets @out_version to the version it found, so that the caller learns
 *    where the stream is without another round trip. (A backend written
 *    for 0.1 may leave @out_version untouched: callers set it to -1 first
 *    and read the version themselves when it stays -1.)
 * 4. The remaining events get consecutive versions and increasing sequence
 *    ids.
 *
 * Nothing is written on failure. %G_IO_ERROR_CANCELLED means nothing was
 * written: @cancellable is honoured up to the commit, not after it.
 *
 * Applications write through [method@Es.Stream.write], which validates its
 * input first; this is the backend's side of it.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_storage_handle_append (EsStorageHandle          *self,
                          const char               *stream_id,
                          gint64                    expected_version,
                          EsCandidateEvent * const *events,
                          guint                     n_events,
                          gint64                   *out_version,
                          GCancellable             *cancellable,
                          GError                  **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (stream_id != NULL, FALSE);
  g_return_val_if_fail (events != NULL || n_events == 0, FALSE);
  g_return_val_if_fail (n_events > 0, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->append (self, stream_id, expected_version,
                                                     events, n_events, out_version,
                                                     cancellable, error);
}

/**
 * es_storage_handle_append_async:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: a valid stream id (not <code>@<!-- -->all</code>)
 * @expected_version: the version the stream must be at, or %ES_VERSION_ANY
 * @events: (array length=n_events): validated events
 * @n_events: the number of @events, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the append is done
 * @user_data: data for @callback
 *
 * Starts [method@Es.StorageHandle.append] without blocking; @callback runs
 * in the thread-default main context of the caller. Backends may override
 * it to batch concurrent appends into one transaction.
 *
 * Since: 0.1
 */
void
es_storage_handle_append_async (EsStorageHandle          *self,
                                const char               *stream_id,
                                gint64                    expected_version,
                                EsCandidateEvent * const *events,
                                guint                     n_events,
                                GCancellable             *cancellable,
                                GAsyncReadyCallback       callback,
                                gpointer                  user_data)
{
  g_return_if_fail (ES_IS_STORAGE_HANDLE (self));
  g_return_if_fail (stream_id != NULL);
  g_return_if_fail (events != NULL);
  g_return_if_fail (n_events > 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STORAGE_HANDLE_GET_IFACE (self)->append_async (self, stream_id, expected_version,
                                                   events, n_events, cancellable,
                                                   callback, user_data);
}

/**
 * es_storage_handle_append_finish:
 * @self: an [iface@Es.StorageHandle]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @out_version: (out) (optional): the stream's version after the append;
 *   on %ES_ERROR_WRONG_EXPECTED_VERSION, the version the check found, or -1
 *   when the backend does not say
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StorageHandle.append_async], with the results of
 * [method@Es.StorageHandle.append].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_storage_handle_append_finish (EsStorageHandle  *self,
                                 GAsyncResult     *result,
                                 gint64           *out_version,
                                 GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->append_finish (self, result, out_version, error);
}

/**
 * es_storage_handle_read_page:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for every stream
 * @after: return events with a version greater than this (for all
 *   streams: with a sequence id greater than this)
 * @filter: (nullable): clauses the events must match
 * @limit: the most events to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads one page of events, oldest first. An [class@Es.EventEnumerator]
 * calls it repeatedly, passing the last version (or sequence id) it got as
 * @after, so a read never holds more than one page in memory.
 *
 * @filter is validated here before it reaches the backend.
 *
 * Returns: (transfer container) (element-type EsStoredEvent): the events,
 *   which the array owns (release it with g_ptr_array_unref()); empty
 *   at the end
 *
 * Since: 0.1
 */
GPtrArray *
es_storage_handle_read_page (EsStorageHandle  *self,
                             const char       *stream_id,
                             gint64            after,
                             EsEventFilter    *filter,
                             guint             limit,
                             GCancellable     *cancellable,
                             GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);
  g_return_val_if_fail (limit > 0, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (filter != NULL && !es_event_filter_validate (filter, error))
    return NULL;

  return ES_STORAGE_HANDLE_GET_IFACE (self)->read_page (self, stream_id, after, filter, limit,
                                                        cancellable, error);
}

/**
 * es_storage_handle_get_version:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for every stream
 * @out_version: (out) (optional): the stream's current version (0 when it
 *   is empty); for %NULL the last sequence id
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Looks up where a stream is.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_storage_handle_get_version (EsStorageHandle  *self,
                               const char       *stream_id,
                               gint64           *out_version,
                               GCancellable     *cancellable,
                               GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->get_version (self, stream_id, out_version,
                                                          cancellable, error);
}

/**
 * es_storage_handle_get_metrics:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for every stream
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads a stream's current version, event count and last timestamp; for
 * %NULL, the last sequence id, the number of events and the last event's
 * timestamp.
 *
 * Returns: (transfer full): the metrics, or %NULL on error
 *
 * Since: 0.1
 */
EsStreamMetrics *
es_storage_handle_get_metrics (EsStorageHandle  *self,
                               const char       *stream_id,
                               GCancellable     *cancellable,
                               GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->get_metrics (self, stream_id, cancellable, error);
}

/**
 * es_storage_handle_save_snapshot:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for <code>@<!-- -->all</code>
 * @projection_name: the projection's name
 * @version: the version (for %NULL @stream_id: sequence id) @state reflects
 * @state: the projection's state, stored byte for byte
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores a snapshot, replacing the previous one of the same stream and
 * projection. The caller has checked @version against the stream.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_storage_handle_save_snapshot (EsStorageHandle  *self,
                                 const char       *stream_id,
                                 const char       *projection_name,
                                 gint64            version,
                                 GBytes           *state,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (projection_name != NULL, FALSE);
  g_return_val_if_fail (state != NULL, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->save_snapshot (self, stream_id, projection_name,
                                                            version, state, cancellable, error);
}

/**
 * es_storage_handle_load_snapshot:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for <code>@<!-- -->all</code>
 * @projection_name: the projection's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Loads the snapshot of a stream's projection.
 *
 * Returns: (transfer full) (nullable): the snapshot; %NULL without an error
 *   when there is none
 *
 * Since: 0.1
 */
EsSnapshot *
es_storage_handle_load_snapshot (EsStorageHandle  *self,
                                 const char       *stream_id,
                                 const char       *projection_name,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (projection_name != NULL, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->load_snapshot (self, stream_id, projection_name,
                                                            cancellable, error);
}

/**
 * es_storage_handle_close:
 * @self: an [iface@Es.StorageHandle]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Releases the backend's connections after the writes already accepted
 * have finished. Later calls fail with %ES_ERROR_CLOSED. Closing twice is
 * harmless.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_storage_handle_close (EsStorageHandle  *self,
                         GCancellable     *cancellable,
                         GError          **error)
{
  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STORAGE_HANDLE_GET_IFACE (self)->close (self, cancellable, error);
}
