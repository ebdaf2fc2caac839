/* es-storage-handle.c: the contract a storage backend implements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

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

/* ---------------------------------------------------------------------- *
 * Stream life cycle (0.2)                                                 *
 * ---------------------------------------------------------------------- */

static gboolean
not_supported (EsStorageHandle  *self,
               const char       *what,
               GError          **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               /* Translators: the first %s is a backend's type name, the second an operation */
               _("Storage backend %s does not support %s"),
               G_OBJECT_TYPE_NAME (self), what);
  return FALSE;
}

/* The life-cycle operations change one named stream: @all (or NULL) is
 * refused with a message saying what was attempted. */
static gboolean
check_named_stream (const char  *stream_id,
                    const char  *what,
                    GError     **error)
{
  if (stream_id == NULL || g_str_equal (stream_id, ES_ALL_STREAM))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %s is "@all", the second an operation */
                   _("Stream '%s' cannot be the target of %s: it holds the events of "
                     "every stream"),
                   ES_ALL_STREAM, what);
      return FALSE;
    }

  return _es_validate_stream_id (stream_id, FALSE, error);
}

/**
 * es_storage_handle_read_page_full:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for every stream
 * @position: forwards, return events after this version (for all streams:
 *   this sequence id); with %ES_READ_FLAGS_BACKWARDS, events before it,
 *   %G_MAXINT64 meaning from the newest
 * @flags: the direction, and whether tombstone markers are wanted
 * @filter: (nullable): clauses the events must match
 * @limit: the most events to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads one page of events in either direction: oldest first as
 * [method@Es.StorageHandle.read_page] does, or newest first with
 * %ES_READ_FLAGS_BACKWARDS (versions, or sequence ids, strictly smaller
 * than @position, in decreasing order). Reading the newest page of a
 * stream costs the same whatever the stream's length.
 *
 * With %ES_READ_FLAGS_INCLUDE_TOMBSTONES and a %NULL @stream_id, the marker
 * of each hard-deleted stream is returned at its position among the
 * events, as an [class@Es.StoredEvent] with
 * %ES_STORED_EVENT_FLAGS_TOMBSTONE; @filter does not apply to markers.
 * Reads never return them otherwise.
 *
 * A backend that leaves the virtual method %NULL serves forward reads
 * through its `read_page`; other reads then fail with
 * %G_IO_ERROR_NOT_SUPPORTED.
 *
 * Returns: (transfer container) (element-type EsStoredEvent): the events,
 *   empty at the end
 *
 * Since: 0.2
 */
GPtrArray *
es_storage_handle_read_page_full (EsStorageHandle  *self,
                                  const char       *stream_id,
                                  gint64            position,
                                  EsReadFlags       flags,
                                  EsEventFilter    *filter,
                                  guint             limit,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);
  g_return_val_if_fail (limit > 0, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (filter != NULL && !es_event_filter_validate (filter, error))
    return NULL;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->read_page_full != NULL)
    return iface->read_page_full (self, stream_id, position, flags, filter, limit,
                                  cancellable, error);

  if ((flags & ES_READ_FLAGS_BACKWARDS) != 0)
    {
      not_supported (self, _("reading backwards"), error);
      return NULL;
    }

  return iface->read_page (self, stream_id, position, filter, limit, cancellable, error);
}

/**
 * es_storage_handle_get_stream_info:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for the whole
 *   database
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Looks up what is known of a stream without reading its events: see
 * [class@Es.StreamInfo] for each field. A stream nobody wrote to is
 * active, at version 0, without events.
 *
 * For %NULL (the <code>@<!-- -->all</code> stream) the stream id is %ES_ALL_STREAM,
 * the current version the last position used (the last sequence
 * id, or the position of the last life-cycle operation), the event count
 * and timestamps those of every stream together, and the retention policy
 * the database-wide one.
 *
 * Returns: (transfer full): the information
 *
 * Since: 0.2
 */
EsStreamInfo *
es_storage_handle_get_stream_info (EsStorageHandle  *self,
                                   const char       *stream_id,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (stream_id != NULL && g_str_equal (stream_id, ES_ALL_STREAM))
    stream_id = NULL;
  if (stream_id != NULL && !_es_validate_stream_id (stream_id, FALSE, error))
    return NULL;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->get_stream_info == NULL)
    {
      not_supported (self, _("stream information"), error);
      return NULL;
    }

  return iface->get_stream_info (self, stream_id, cancellable, error);
}

/**
 * es_storage_handle_list_streams:
 * @self: an [iface@Es.StorageHandle]
 * @prefix: (nullable): only list stream ids that start with this (compared
 *   byte for byte, case-sensitively), or %NULL for all
 * @after_stream_id: (nullable): only list stream ids greater than this one
 *   (byte-wise order), or %NULL to start at the first
 * @flags: whether deleted streams are listed
 * @limit: the most streams to return, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads one page of a listing of streams, in byte-wise order of their ids.
 * An [class@Es.StreamInfoEnumerator] calls it repeatedly, passing the last
 * id it got as @after_stream_id. The backend reads what it keeps per
 * stream, never the streams' events: a page costs the same whatever the
 * streams hold.
 *
 * Returns: (transfer container) (element-type EsStreamInfo): the streams,
 *   empty at the end
 *
 * Since: 0.2
 */
GPtrArray *
es_storage_handle_list_streams (EsStorageHandle     *self,
                                const char          *prefix,
                                const char          *after_stream_id,
                                EsListStreamsFlags   flags,
                                guint                limit,
                                GCancellable        *cancellable,
                                GError             **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (limit > 0, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (prefix != NULL && *prefix == '\0')
    prefix = NULL;
  if (prefix != NULL && !g_utf8_validate (prefix, -1, NULL))
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           _("A stream id prefix must be valid UTF-8"));
      return NULL;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->list_streams == NULL)
    {
      not_supported (self, _("listing streams"), error);
      return NULL;
    }

  return iface->list_streams (self, prefix, after_stream_id, flags, limit, cancellable, error);
}

/**
 * es_storage_handle_delete_stream:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: the stream to delete, not <code>@<!-- -->all</code>
 * @expected_version: the version the stream must be at, or
 *   %ES_VERSION_ANY
 * @flags: %ES_DELETE_FLAGS_TOMBSTONE for a hard delete
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Deletes a stream's events, in one transaction with the expected-version
 * check (%ES_ERROR_WRONG_EXPECTED_VERSION: nothing changed). The events
 * are removed from the database, not hidden: their bytes are overwritten
 * (see [method@Es.StorageHandle.compact] for giving the space back). The
 * stream's snapshots are deleted with them.
 *
 * A soft delete keeps the stream's version: the next append continues
 * from it, and expects it. A hard delete (%ES_DELETE_FLAGS_TOMBSTONE)
 * also leaves a tombstone: appends fail with %ES_ERROR_STREAM_DELETED
 * forever, and readers of <code>@<!-- -->all</code> that ask for it see the
 * marker (%ES_READ_FLAGS_INCLUDE_TOMBSTONES). Hard-deleting a tombstoned
 * stream again succeeds and changes nothing; soft-deleting one fails with
 * %ES_ERROR_STREAM_DELETED. Deleting a stream nobody wrote to succeeds
 * (a tombstone then reserves the name).
 *
 * Every delete takes a position in the global order (a sequence id no
 * event gets), so that sequence ids are never used twice even when the
 * newest events go, and notifiers see that the database changed.
 *
 * Idempotency keys of deleted events go with them: a retry of a deleted
 * append adds its events again.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_delete_stream (EsStorageHandle  *self,
                                 const char       *stream_id,
                                 gint64            expected_version,
                                 EsDeleteFlags     flags,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_named_stream (stream_id, _("a delete"), error))
    return FALSE;
  if (expected_version < ES_VERSION_ANY)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is the version given */
                   _("Expected version %lld is not valid: it must be -1 (any) or at least 0"),
                   (long long) expected_version);
      return FALSE;
    }
  if ((flags & ~ES_DELETE_FLAGS_TOMBSTONE) != 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %#x is a number in hexadecimal */
                   _("Delete flags %#x are not known"), (guint) flags);
      return FALSE;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->delete_stream == NULL)
    return not_supported (self, _("deleting streams"), error);

  return iface->delete_stream (self, stream_id, expected_version, flags, cancellable, error);
}

/**
 * es_storage_handle_truncate_stream:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: the stream to truncate, not <code>@<!-- -->all</code>
 * @before_version: remove the events with a version smaller than this,
 *   from 1 to the stream's current version
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Removes a stream's oldest events, typically those a snapshot already
 * folds: every event with a version smaller than @before_version. Versions
 * do not change; the newest event always stays. Removed events are gone
 * from the database as with a delete. Snapshots of the stream at a
 * version smaller than `before_version - 1` are deleted, since the events
 * that follow them are no longer all there; the others stay valid.
 *
 * A @before_version beyond the stream's current version fails with
 * %ES_ERROR_INVALID_ARGUMENT naming both, and changes nothing; so does
 * a tombstoned stream, with %ES_ERROR_STREAM_DELETED. Truncating before a
 * version already truncated succeeds and changes nothing.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_truncate_stream (EsStorageHandle  *self,
                                   const char       *stream_id,
                                   gint64            before_version,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_named_stream (stream_id, _("a truncation"), error))
    return FALSE;
  if (before_version < 1)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is the version given */
                   _("Cannot truncate before version %lld: versions start at 1"),
                   (long long) before_version);
      return FALSE;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->truncate_stream == NULL)
    return not_supported (self, _("truncating streams"), error);

  return iface->truncate_stream (self, stream_id, before_version, cancellable, error);
}

/**
 * es_storage_handle_erase_event:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: the event's stream, not <code>@<!-- -->all</code>
 * @version: the event's version in @stream_id
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Erases one event, for privacy requests: its data and metadata are
 * overwritten in the database; its stream, version, sequence id, type,
 * timestamp and idempotency key remain, and reads return it with
 * %ES_STORED_EVENT_FLAGS_ERASED, an empty payload and no metadata, so
 * positions, projections and checkpoints keep working. Erasing an erased
 * event succeeds and changes nothing.
 *
 * An event that is not stored (a version beyond the stream's, or removed
 * by a delete, a truncation or retention) fails with %ES_ERROR_NOT_FOUND
 * naming the stream and version.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_erase_event (EsStorageHandle  *self,
                               const char       *stream_id,
                               gint64            version,
                               GCancellable     *cancellable,
                               GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_named_stream (stream_id, _("an erasure"), error))
    return FALSE;
  if (version < 1)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is the version given */
                   _("Cannot erase the event at version %lld: versions start at 1"),
                   (long long) version);
      return FALSE;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->erase_event == NULL)
    return not_supported (self, _("erasing events"), error);

  return iface->erase_event (self, stream_id, version, cancellable, error);
}

/**
 * es_storage_handle_set_retention:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a stream, or %NULL (or %ES_ALL_STREAM) for the
 *   database-wide policy
 * @max_age: keep events younger than this many microseconds, 0 for no
 *   limit
 * @max_count: keep at most this many of the newest events, 0 for no limit
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores a retention policy, replacing the previous one, and enforces it
 * at once. A stream's policy is stored with the stream; the database-wide
 * one applies to every stream, and when both exist the stricter limit
 * wins. Policies are enforced on every append (on the stream appended to)
 * and by [method@Es.StorageHandle.sweep].
 *
 * A count always keeps the newest event of a stream; an age may remove
 * every event of a stream, which then stays active at its version, like
 * a truncated stream. Removed events go as with a truncation, and so do
 * the snapshots they leave stale.
 *
 * Negative values fail with %ES_ERROR_INVALID_ARGUMENT naming them.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_set_retention (EsStorageHandle  *self,
                                 const char       *stream_id,
                                 GTimeSpan         max_age,
                                 gint64            max_count,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (stream_id != NULL && g_str_equal (stream_id, ES_ALL_STREAM))
    stream_id = NULL;
  if (stream_id != NULL && !_es_validate_stream_id (stream_id, FALSE, error))
    return FALSE;
  if (max_age < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is a duration in microseconds */
                   _("Maximum age %lld µs is negative: use 0 for no limit"),
                   (long long) max_age);
      return FALSE;
    }
  if (max_count < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is a number of events */
                   _("Maximum count %lld is negative: use 0 for no limit"),
                   (long long) max_count);
      return FALSE;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->set_retention == NULL)
    return not_supported (self, _("retention policies"), error);

  return iface->set_retention (self, stream_id, max_age, max_count, cancellable, error);
}

/**
 * es_storage_handle_sweep:
 * @self: an [iface@Es.StorageHandle]
 * @now_usec: the current time in microseconds since the Unix epoch (UTC),
 *   against which ages are measured
 * @out_has_age_policy: (out) (optional): whether any policy has a maximum
 *   age, so that sweeping again later may remove more
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Enforces every retention policy now: removes the events older than
 * their stream's (or the database's) maximum age and beyond their
 * stream's maximum count, in transactions small enough not to hold up
 * writers, each complete or not done at all.
 *
 * Returns: the number of events removed, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_storage_handle_sweep (EsStorageHandle  *self,
                         gint64            now_usec,
                         gboolean         *out_has_age_policy,
                         GCancellable     *cancellable,
                         GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->sweep == NULL)
    {
      not_supported (self, _("retention policies"), error);
      return -1;
    }

  return iface->sweep (self, now_usec, out_has_age_policy, cancellable, error);
}

/**
 * es_storage_handle_compact:
 * @self: an [iface@Es.StorageHandle]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Gives the space of deleted events back to the file system (SQLite:
 * the free pages of the file; PostgreSQL: `VACUUM` of the tables). It may
 * take time in proportion to the database and, on SQLite, waits for
 * other writers.
 *
 * On PostgreSQL, which has no `secure_delete`, `VACUUM` makes the space of
 * deleted and erased rows reusable and drops their index entries, but does
 * not overwrite their bytes, and the write-ahead log, archives and
 * backups keep what was written: see the guide page
 * [Privacy and retention](privacy-and-retention.html) and the PostgreSQL
 * library's reference.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_compact (EsStorageHandle  *self,
                           GCancellable     *cancellable,
                           GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->compact == NULL)
    return not_supported (self, _("compaction"), error);

  return iface->compact (self, cancellable, error);
}

/* ---------------------------------------------------------------------- *
 * Durable subscriptions (0.2)                                             *
 * ---------------------------------------------------------------------- */

/**
 * es_storage_handle_get_subscription:
 * @self: an [iface@Es.StorageHandle]
 * @name: the subscription's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads a durable subscription as stored: the stream it follows, its
 * checkpoint, its lag (positions between the checkpoint and the head of
 * its stream: for a stream, its current version minus the checkpoint; for
 * <code>@<!-- -->all</code>, the last position used minus the checkpoint)
 * and its state.
 *
 * Returns: (transfer full) (nullable): the subscription, or %NULL without
 *   an error when none of that name is stored
 *
 * Since: 0.2
 */
EsSubscriptionInfo *
es_storage_handle_get_subscription (EsStorageHandle  *self,
                                    const char       *name,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!_es_validate_subscription_name (name, error))
    return NULL;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->get_subscription == NULL)
    {
      not_supported (self, _("durable subscriptions"), error);
      return NULL;
    }

  return iface->get_subscription (self, name, cancellable, error);
}

/**
 * es_storage_handle_list_subscriptions:
 * @self: an [iface@Es.StorageHandle]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Lists every stored durable subscription, in byte-wise order of their
 * names, with checkpoint and lag as
 * [method@Es.StorageHandle.get_subscription] gives them, but without their
 * states ([method@Es.SubscriptionInfo.get_state] is %NULL), which may be
 * large.
 *
 * Returns: (transfer container) (element-type EsSubscriptionInfo): the
 *   subscriptions
 *
 * Since: 0.2
 */
GPtrArray *
es_storage_handle_list_subscriptions (EsStorageHandle  *self,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->list_subscriptions == NULL)
    {
      not_supported (self, _("durable subscriptions"), error);
      return NULL;
    }

  return iface->list_subscriptions (self, cancellable, error);
}

/**
 * es_storage_handle_save_checkpoint:
 * @self: an [iface@Es.StorageHandle]
 * @name: the subscription's name
 * @stream_id: (nullable): the stream it follows, %NULL (or <code>@<!-- -->all</code>) for
 *   every stream
 * @position: the checkpoint: the last version (for
 *   <code>@<!-- -->all</code>, sequence id) consumed, 0 for none
 * @state: (nullable): the consumer's state to store with the checkpoint,
 *   or %NULL to leave the stored state as it is
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores a subscription's checkpoint (creating the subscription the first
 * time), and its state when one is given, in one transaction: both or
 * neither, so a consumer that folds events into a state and saves both
 * together applies each event exactly once across crashes.
 *
 * Only the consumer that holds the subscription (see
 * [method@Es.StorageHandle.acquire_subscription]) saves. A checkpoint
 * never moves back but through
 * [method@Es.StorageHandle.reset_subscription]: a @position smaller than
 * the stored one fails with %ES_ERROR_INVALID_ARGUMENT naming both, and so
 * does a @stream_id other than the one stored; nothing is stored then.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_save_checkpoint (EsStorageHandle  *self,
                                   const char       *name,
                                   const char       *stream_id,
                                   gint64            position,
                                   GBytes           *state,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_es_validate_subscription_name (name, error))
    return FALSE;
  if (stream_id != NULL && g_str_equal (stream_id, ES_ALL_STREAM))
    stream_id = NULL;
  if (stream_id != NULL && !_es_validate_stream_id (stream_id, FALSE, error))
    return FALSE;
  if (position < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is a position, %s a subscription name */
                   _("Checkpoint %lld of subscription '%s' is negative"),
                   (long long) position, name);
      return FALSE;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->save_checkpoint == NULL)
    return not_supported (self, _("durable subscriptions"), error);

  return iface->save_checkpoint (self, name, stream_id, position, state, cancellable, error);
}

/**
 * es_storage_handle_reset_subscription:
 * @self: an [iface@Es.StorageHandle]
 * @name: the subscription's name
 * @position: the new checkpoint, from 0 (consume everything again) to the
 *   head of the subscription's stream
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Moves a stored subscription's checkpoint, backwards or forwards (seek),
 * and drops its stored state, which no longer matches the checkpoint. The
 * next start of the subscription resumes after @position.
 *
 * Fails with %ES_ERROR_NOT_FOUND when no subscription of that name is
 * stored, %ES_ERROR_BUSY while a consumer holds it (stop it first), and
 * %ES_ERROR_INVALID_ARGUMENT when @position is negative or beyond the head
 * of its stream; nothing changes then.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_reset_subscription (EsStorageHandle  *self,
                                      const char       *name,
                                      gint64            position,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_es_validate_subscription_name (name, error))
    return FALSE;
  if (position < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is a position, %s a subscription name */
                   _("Cannot reset subscription '%s' to position %lld: positions start at 0"),
                   name, (long long) position);
      return FALSE;
    }

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->reset_subscription == NULL)
    return not_supported (self, _("durable subscriptions"), error);

  return iface->reset_subscription (self, name, position, cancellable, error);
}

/**
 * es_storage_handle_delete_subscription:
 * @self: an [iface@Es.StorageHandle]
 * @name: the subscription's name
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Forgets a stored subscription: its checkpoint and state. Its next start
 * begins as a new subscription. Fails with %ES_ERROR_NOT_FOUND when none
 * of that name is stored and %ES_ERROR_BUSY while a consumer holds it.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_delete_subscription (EsStorageHandle  *self,
                                       const char       *name,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_es_validate_subscription_name (name, error))
    return FALSE;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->delete_subscription == NULL)
    return not_supported (self, _("durable subscriptions"), error);

  return iface->delete_subscription (self, name, cancellable, error);
}

/**
 * es_storage_handle_acquire_subscription:
 * @self: an [iface@Es.StorageHandle]
 * @name: the subscription's name
 * @wait: whether to wait while another consumer holds it
 * @cancellable: (nullable): a [class@Gio.Cancellable], which ends a wait
 * @error: return location for a [struct@GLib.Error]
 *
 * Makes the caller the one consumer of a subscription, across every
 * process and machine that uses the database. Another holder makes this
 * fail with %ES_ERROR_BUSY, or with @wait, blocks until the holder
 * releases it, stops or dies (then takes over within the backend's
 * documented bound), or until @cancellable is cancelled.
 *
 * Holding needs no heartbeat: the backend ties it to something the
 * operating system or the server releases when the holder's process
 * dies (a file lock; a database session). A second acquisition of one name
 * through the same storage object fails with %ES_ERROR_BUSY at once,
 * @wait or not, since it could only wait for itself.
 *
 * Returns: %TRUE when the caller holds the subscription
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_acquire_subscription (EsStorageHandle  *self,
                                        const char       *name,
                                        gboolean          wait,
                                        GCancellable     *cancellable,
                                        GError          **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!_es_validate_subscription_name (name, error))
    return FALSE;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->acquire_subscription == NULL)
    return not_supported (self, _("durable subscriptions"), error);

  return iface->acquire_subscription (self, name, wait, cancellable, error);
}

/**
 * es_storage_handle_release_subscription:
 * @self: an [iface@Es.StorageHandle]
 * @name: the name of a subscription the caller holds
 *
 * Stops holding a subscription acquired with
 * [method@Es.StorageHandle.acquire_subscription], so that a waiting
 * consumer takes over. Releasing a name not held does nothing.
 *
 * Since: 0.2
 */
void
es_storage_handle_release_subscription (EsStorageHandle *self,
                                        const char      *name)
{
  EsStorageHandleInterface *iface;

  g_return_if_fail (ES_IS_STORAGE_HANDLE (self));
  g_return_if_fail (name != NULL);

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->release_subscription != NULL)
    iface->release_subscription (self, name);
}

/**
 * es_storage_handle_count_events:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for every stream
 *   (positions are then sequence ids)
 * @filter: (nullable): count only the events matching it
 * @after: count the events after this position (0 for the first)
 * @until: and up to this one, included (%G_MAXINT64 for the last)
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Counts the stored events (erased ones included, tombstone markers not)
 * whose position (version, or sequence id for %NULL) is in
 * (@after, @until] and that match @filter: the number of events
 * [method@Es.StorageHandle.read_page_full] would return for that range.
 * Backends count from their indexes without building the events;
 * [class@Es.EventListModel] counts its items with it. A backend without
 * this method is served by reading the range page by page.
 *
 * Returns: the count, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_storage_handle_count_events (EsStorageHandle  *self,
                                const char       *stream_id,
                                EsEventFilter    *filter,
                                gint64            after,
                                gint64            until,
                                GCancellable     *cancellable,
                                GError          **error)
{
  EsStorageHandleInterface *iface;
  gint64 position = after;
  gint64 count = 0;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), -1);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (filter != NULL && !es_event_filter_validate (filter, error))
    return -1;
  if (after < 0 || until < after)
    return 0;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->count_events != NULL)
    return iface->count_events (self, stream_id, filter, after, until, cancellable, error);

  for (;;)
    {
      g_autoptr(GPtrArray) page =
        es_storage_handle_read_page_full (self, stream_id, position, ES_READ_FLAGS_NONE, filter,
                                          ES_READ_PAGE_SIZE, cancellable, error);
      if (page == NULL)
        return -1;
      for (guint i = 0; i < page->len; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (page, i);

          position = stream_id != NULL ? es_stored_event_get_version (event)
                                       : es_stored_event_get_sequence_id (event);
          if (position > until)
            return count;
          count++;
        }
      if (page->len < ES_READ_PAGE_SIZE)
        return count;
    }
}

/**
 * es_storage_handle_locate_event:
 * @self: an [iface@Es.StorageHandle]
 * @stream_id: (nullable): a valid stream id, or %NULL for every stream
 *   (positions are then sequence ids)
 * @position: where the read starts, as for
 *   [method@Es.StorageHandle.read_page_full]
 * @flags: %ES_READ_FLAGS_NONE or %ES_READ_FLAGS_BACKWARDS
 * @filter: (nullable): only the events matching it
 * @index: which event of the read, 0 for the first
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Finds the position (version, or sequence id for %NULL) of the event at
 * @index in what [method@Es.StorageHandle.read_page_full] would return
 * from @position with @flags and @filter, without building the events
 * before it: backends skip them in their indexes (an SQL `OFFSET` from
 * @position, not from the start of the stream). [class@Es.EventListModel]
 * jumps to a page far from any page it knows with it. A backend without
 * this method is served by reading and dropping the events in between.
 *
 * Returns: the position, 0 when the read has @index events or fewer, or
 *   -1 on error
 *
 * Since: 0.2
 */
gint64
es_storage_handle_locate_event (EsStorageHandle  *self,
                                const char       *stream_id,
                                gint64            position,
                                EsReadFlags       flags,
                                EsEventFilter    *filter,
                                guint64           index,
                                GCancellable     *cancellable,
                                GError          **error)
{
  EsStorageHandleInterface *iface;
  guint64 left = index + 1;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), -1);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (filter != NULL && !es_event_filter_validate (filter, error))
    return -1;
  flags &= ES_READ_FLAGS_BACKWARDS;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->locate_event != NULL)
    return iface->locate_event (self, stream_id, position, flags, filter, index, cancellable,
                                error);

  while (left > 0)
    {
      g_autoptr(GPtrArray) page =
        es_storage_handle_read_page_full (self, stream_id, position, flags, filter,
                                          (guint) MIN (left, ES_READ_PAGE_SIZE), cancellable,
                                          error);
      EsStoredEvent *last;

      if (page == NULL)
        return -1;
      if (page->len == 0)
        return 0;
      last = g_ptr_array_index (page, page->len - 1);
      position = stream_id != NULL ? es_stored_event_get_version (last)
                                   : es_stored_event_get_sequence_id (last);
      left -= page->len;
      if (page->len < MIN (left + page->len, ES_READ_PAGE_SIZE))
        return left == 0 ? position : 0;
    }
  return position;
}

/**
 * es_storage_handle_backup:
 * @self: an [iface@Es.StorageHandle]
 * @destination: the file to create
 * @flags: %ES_BACKUP_FLAGS_OVERWRITE to replace an existing @destination
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope call) (closure progress_data):
 *   called, in the calling thread, as the copy progresses
 * @progress_data: data for @progress_callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Copies the live database, while other connections keep writing, to
 * @destination, which is then a valid database of the same backend that
 * holds a consistent state: every transaction committed before some
 * moment during the copy, and none after.
 *
 * The rules every backend follows: the copy is made in a temporary file
 * in @destination's directory, synced to disk, then renamed to
 * @destination, so that an interrupted, failed or cancelled backup leaves
 * no file at @destination (nor one that looks valid elsewhere: the
 * temporary file is removed, or if the process is killed, named
 * `.<destination>.XXXXXX.part`). Writers are never blocked for long: the
 * copy proceeds in chunks and starts over when a writer changes a page
 * already copied. @progress_callback receives bytes copied and the size of
 * the database, in bytes.
 *
 * Fails with %G_IO_ERROR_EXISTS when @destination exists (without
 * %ES_BACKUP_FLAGS_OVERWRITE), with an error of the %G_IO_ERROR domain
 * naming @destination when it cannot be written, with
 * %G_IO_ERROR_CANCELLED when cancelled, and with %G_IO_ERROR_NOT_SUPPORTED
 * when the backend has no file to copy (PostgreSQL: use `pg_dump`).
 *
 * Returns: %TRUE when @destination holds the copy
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_backup (EsStorageHandle       *self,
                          GFile                 *destination,
                          EsBackupFlags          flags,
                          GCancellable          *cancellable,
                          GFileProgressCallback  progress_callback,
                          gpointer               progress_data,
                          GError               **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (destination), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->backup == NULL)
    return not_supported (self, _("backups"), error);

  return iface->backup (self, destination, flags, cancellable, progress_callback,
                        progress_data, error);
}

/**
 * es_storage_handle_check:
 * @self: an [iface@Es.StorageHandle]
 * @flags: %ES_CHECK_FLAGS_QUICK for a faster check of the storage
 * @report: the report to add the problems found to
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope call) (closure progress_data):
 *   called, in the calling thread, as the check progresses
 * @progress_data: data for @progress_callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Checks the database and adds what is wrong to @report
 * ([method@Es.CheckReport.add_problem]). The rules every backend
 * follows: it runs its own check of the storage (a corrupt page is a
 * %ES_CHECK_PROBLEM_STORAGE problem, never a crash or an error of the
 * call), then es-glib's invariants, each a kind of
 * [enum@Es.CheckProblemKind]: a stream's stored versions run from its
 * first kept version to its version without a gap; what is kept per
 * stream (version, count, first and last timestamps) agrees with its
 * events; sequence ids increase with versions in each stream; an
 * idempotency key appears at most once per stream; snapshots point at
 * versions no later than their stream's; subscriptions' checkpoints are
 * no later than the head of their stream. It reads in a snapshot of the
 * database (one read transaction) and writes nothing.
 * @progress_callback receives steps done and the number of steps, in a
 * unit of the backend's choice.
 *
 * A problem found is not an error: the call fails only when the check
 * could not run (%G_IO_ERROR_CANCELLED, %ES_ERROR_CLOSED...).
 *
 * Returns: %TRUE when the check ran, whatever it found
 *
 * Since: 0.2
 */
gboolean
es_storage_handle_check (EsStorageHandle       *self,
                         EsCheckFlags           flags,
                         EsCheckReport         *report,
                         GCancellable          *cancellable,
                         GFileProgressCallback  progress_callback,
                         gpointer               progress_data,
                         GError               **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), FALSE);
  g_return_val_if_fail (ES_IS_CHECK_REPORT (report), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->check == NULL)
    return not_supported (self, _("integrity checks"), error);

  return iface->check (self, flags, report, cancellable, progress_callback, progress_data,
                       error);
}

/**
 * es_storage_handle_import_events:
 * @self: an [iface@Es.StorageHandle]
 * @events: (array length=n_events): the events to store, with their stream
 *   id, version, timestamp, type, data, idempotency key, metadata and
 *   flags (%ES_STORED_EVENT_FLAGS_ERASED or none); their sequence ids are
 *   ignored
 * @n_events: the number of @events, at most 10,000
 * @out_failed_index: (out) (optional): the index in @events of the event
 *   that made the call fail, when it fails because of one
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Stores events at the positions they had in another database (an
 * import), in one transaction: all of them or, on error, none. Each event
 * gets a new sequence id, in the order of @events.
 *
 * The rules every backend follows: each event's version must continue its
 * stream exactly, taking the events before it in @events into account:
 * its stream's version + 1, or any version for a stream that holds no
 * event and was never written (its earlier events were truncated at the
 * source; the stream then starts there). An event whose version the
 * stream already holds is skipped when the stored event is identical
 * (same event type, data, idempotency key and metadata), which makes
 * importing the same events twice harmless; otherwise the call fails with
 * %ES_ERROR_WRONG_EXPECTED_VERSION naming the stream and version. A gap
 * fails the same way, an idempotency key already used by another version
 * of the stream with %ES_ERROR_INVALID_ARGUMENT, a tombstoned stream with
 * %ES_ERROR_STREAM_DELETED. A soft-deleted stream is written to as an
 * append would (it becomes active again). Retention policies are not
 * enforced by an import: the next sweep enforces them.
 *
 * Returns: the number of events stored (skipped ones not counted), or -1
 *   on error
 *
 * Since: 0.2
 */
gint64
es_storage_handle_import_events (EsStorageHandle       *self,
                                 EsStoredEvent * const *events,
                                 guint                  n_events,
                                 guint                 *out_failed_index,
                                 GCancellable          *cancellable,
                                 GError               **error)
{
  EsStorageHandleInterface *iface;

  g_return_val_if_fail (ES_IS_STORAGE_HANDLE (self), -1);
  g_return_val_if_fail (events != NULL || n_events == 0, -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (out_failed_index != NULL)
    *out_failed_index = 0;
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return -1;
  if (n_events > ES_IMPORT_MAX_EVENTS)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %u are numbers of events */
                   _("Cannot import %u events at once: the limit is %u"),
                   n_events, (guint) ES_IMPORT_MAX_EVENTS);
      return -1;
    }

  for (guint i = 0; i < n_events; i++)
    {
      EsStoredEvent *event = events[i];

      g_return_val_if_fail (ES_IS_STORED_EVENT (event), -1);
      if (!_es_validate_stream_id (es_stored_event_get_stream_id (event), FALSE, error) ||
          es_stored_event_get_version (event) < 1)
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                         /* Translators: %lld is a version, %s a stream id */
                         _("Cannot import version %lld of stream '%s': versions start at 1"),
                         (long long) es_stored_event_get_version (event),
                         es_stored_event_get_stream_id (event));
          if (out_failed_index != NULL)
            *out_failed_index = i;
          return -1;
        }
    }
  if (n_events == 0)
    return 0;

  iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  if (iface->import_events == NULL)
    {
      not_supported (self, _("imports"), error);
      return -1;
    }

  return iface->import_events (self, events, n_events, out_failed_index, cancellable, error);
}

/*
 * _es_storage_handle_read_rows:
 * @page: emptied, then filled with the page's rows and completed
 *
 * One page of a read as rows in flat memory (see EsRowPage), with the
 * rules of es_storage_handle_read_page_full(): the rows after (before,
 * backwards) @position, at most @limit, a whole page or an error. The
 * backend's read_rows fills @page directly; a backend without it (a
 * third-party one, the tests' memory backend) is read through
 * read_page_full and its events copied.
 */
gboolean
_es_storage_handle_read_rows (EsStorageHandle *self,
                              const char      *stream_id,
                              gint64           position,
                              EsReadFlags      flags,
                              EsEventFilter   *filter,
                              guint            limit,
                              EsRowPage       *page,
                              GCancellable    *cancellable,
                              GError         **error)
{
  EsStorageHandleInterface *iface = ES_STORAGE_HANDLE_GET_IFACE (self);
  gboolean ok;

  g_return_val_if_fail (limit > 0, FALSE);

  _es_row_page_reset (page);
  if (iface->read_rows != NULL)
    ok = iface->read_rows (self, stream_id, position, flags, filter, limit, page,
                           cancellable, error);
  else
    {
      g_autoptr(GPtrArray) events =
        es_storage_handle_read_page_full (self, stream_id, position, flags, filter, limit,
                                          cancellable, error);

      ok = events != NULL;
      for (guint i = 0; ok && i < events->len; i++)
        _es_row_page_add_event (page, g_ptr_array_index (events, i));
    }

  if (!ok)
    {
      _es_row_page_reset (page);
      return FALSE;
    }
  _es_row_page_complete (page);
  return TRUE;
}
