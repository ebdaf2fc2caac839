/* es-stream.c: the EsStream interface and its public wrappers.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsStream:
 *
 * A handle on one event stream, opened with
 * [method@Es.StreamFactory.open_stream].
 *
 * A stream is an append-only sequence of events, each with a 1-based
 * version. [method@Es.Stream.write] appends atomically, optionally only if
 * the stream is still at an expected version (optimistic concurrency);
 * [method@Es.Stream.read] returns the events after a version through an
 * [class@Es.EventEnumerator]; snapshots store a projection's state so it
 * can be rebuilt without replaying the whole stream.
 *
 * The stream named %ES_ALL_STREAM (<code>@<!-- -->all</code>) is read-only and holds every
 * event of every stream in global order; there, versions are sequence ids.
 *
 * Every blocking method has an `_async` twin that runs the work off the
 * calling thread and calls back in the caller's thread-default main
 * context. A stream may be used from several threads at once.
 *
 * [property@Es.Stream:version] is what the handle knows of the stream's
 * version: it is updated by every write through the handle, including one
 * that fails with %ES_ERROR_WRONG_EXPECTED_VERSION (which reports the
 * version it found), and by [method@Es.Stream.query_version]. Optimistic
 * concurrency is therefore a loop that converges:
 *
 * ```c
 * g_autoptr(GError) error = NULL;
 * gint64 version;
 *
 * do
 *   {
 *     g_autoptr(EsCandidateEvent) event = NULL;
 *
 *     g_clear_error (&error);
 *     // read the events after your state's version, decide again, then:
 *     event = es_candidate_event_new ("Added", NULL);
 *     version = es_stream_write (stream, &event, 1, es_stream_get_version (stream),
 *                                NULL, &error);
 *   }
 * while (g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION));
 * ```
 *
 * Since: 0.1
 */

G_DEFINE_INTERFACE (EsStream, es_stream, G_TYPE_OBJECT)

/* The default _async methods run the synchronous vfunc in GTask's thread
 * pool; one operation record and one thread function serve them all. */
typedef enum
{
  OP_WRITE,
  OP_READ,
  OP_SNAPSHOT,
  OP_LOAD_SNAPSHOT,
  OP_GET_METRICS,
  OP_QUERY_VERSION,
  OP_READ_BACKWARDS,
  OP_READ_CURSOR,
} OpKind;

typedef struct
{
  OpKind         kind;
  GPtrArray     *events;           /* (element-type EsCandidateEvent) (owned) (nullable) */
  gint64         version;          /* expected, after or snapshot version */
  EsEventFilter *filter;           /* (owned) (nullable) */
  GBytes        *state;            /* (owned) (nullable) */
  char          *projection_name;  /* (owned) (nullable) */
} StreamOp;

static void
stream_op_free (gpointer data)
{
  StreamOp *op = data;

  g_clear_pointer (&op->events, g_ptr_array_unref);
  g_clear_object (&op->filter);
  g_clear_pointer (&op->state, g_bytes_unref);
  g_free (op->projection_name);
  g_free (op);
}

static EsEventCursor *call_read_cursor (EsStream       *self,
                                        gint64          after_version,
                                        EsEventFilter  *filter,
                                        GCancellable   *cancellable,
                                        GError        **error);

static void
stream_op_in_thread (GTask        *task,
                     gpointer      source_object,
                     gpointer      task_data,
                     GCancellable *cancellable)
{
  EsStream *self = source_object;
  EsStreamInterface *iface = ES_STREAM_GET_IFACE (self);
  StreamOp *op = task_data;
  g_autoptr(GError) error = NULL;

  switch (op->kind)
    {
    case OP_WRITE:
      {
        gint64 version = iface->write (self,
                                       (EsCandidateEvent * const *) op->events->pdata,
                                       op->events->len, op->version, cancellable, &error);
        if (error == NULL)
          _es_task_return_int64 (task, version);
      }
      break;
    case OP_READ:
      {
        EsEventEnumerator *enumerator = iface->read (self, op->version, op->filter,
                                                     cancellable, &error);
        if (error == NULL)
          g_task_return_pointer (task, enumerator, g_object_unref);
      }
      break;
    case OP_SNAPSHOT:
      if (iface->snapshot (self, op->state, op->version, op->projection_name,
                           cancellable, &error))
        g_task_return_boolean (task, TRUE);
      break;
    case OP_LOAD_SNAPSHOT:
      {
        EsSnapshot *snapshot = iface->load_snapshot (self, op->projection_name,
                                                     cancellable, &error);
        if (error == NULL)
          g_task_return_pointer (task, snapshot, g_object_unref);
      }
      break;
    case OP_GET_METRICS:
      {
        EsStreamMetrics *metrics = iface->get_metrics (self, cancellable, &error);
        if (error == NULL)
          g_task_return_pointer (task, metrics, g_object_unref);
      }
      break;
    case OP_QUERY_VERSION:
      {
        gint64 version = iface->query_version (self, cancellable, &error);
        if (error == NULL)
          _es_task_return_int64 (task, version);
      }
      break;
    case OP_READ_BACKWARDS:
      {
        EsEventEnumerator *enumerator = iface->read_backwards (self, op->version, op->filter,
                                                               cancellable, &error);
        if (error == NULL)
          g_task_return_pointer (task, enumerator, g_object_unref);
      }
      break;
    case OP_READ_CURSOR:
      {
        EsEventCursor *cursor = call_read_cursor (self, op->version, op->filter,
                                                  cancellable, &error);
        if (error == NULL)
          g_task_return_pointer (task, cursor, g_object_unref);
      }
      break;
    default:
      g_assert_not_reached ();
    }

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
}

static void
run_stream_op (EsStream            *self,
               StreamOp            *op,
               gpointer             source_tag,
               GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  /* A write or a snapshot that took effect is reported as done even if the
   * cancellable fired meanwhile (G_IO_ERROR_CANCELLED means nothing was
   * written): the synchronous method decides, GTask must not override it.
   * Reads may as well report the cancellation. */
  if (op->kind == OP_WRITE || op->kind == OP_SNAPSHOT)
    g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, op, stream_op_free);
  g_task_run_in_thread (task, stream_op_in_thread);
}

static void
es_stream_real_write_async (EsStream                 *self,
                            EsCandidateEvent * const *events,
                            guint                     n_events,
                            gint64                    expected_version,
                            GCancellable             *cancellable,
                            GAsyncReadyCallback       callback,
                            gpointer                  user_data)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = OP_WRITE;
  op->events = g_ptr_array_new_full (n_events, g_object_unref);
  for (guint i = 0; i < n_events; i++)
    g_ptr_array_add (op->events, g_object_ref (events[i]));
  op->version = expected_version;
  run_stream_op (self, op, es_stream_real_write_async, cancellable, callback, user_data);
}

static gint64
es_stream_real_write_finish (EsStream      *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  gint64 version = -1;

  g_return_val_if_fail (g_task_is_valid (result, self), -1);

  if (!_es_task_propagate_int64 (G_TASK (result), &version, error))
    return -1;
  return version;
}

static void
es_stream_real_read_async (EsStream            *self,
                           gint64               after_version,
                           EsEventFilter       *filter,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = OP_READ;
  op->version = after_version;
  op->filter = filter != NULL ? g_object_ref (filter) : NULL;
  run_stream_op (self, op, es_stream_real_read_async, cancellable, callback, user_data);
}

static gpointer
es_stream_real_pointer_finish (EsStream      *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
es_stream_real_snapshot_async (EsStream            *self,
                               GBytes              *state,
                               gint64               version,
                               const char          *projection_name,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = OP_SNAPSHOT;
  op->state = g_bytes_ref (state);
  op->version = version;
  op->projection_name = g_strdup (projection_name);
  run_stream_op (self, op, es_stream_real_snapshot_async, cancellable, callback, user_data);
}

static gboolean
es_stream_real_snapshot_finish (EsStream      *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
es_stream_real_load_snapshot_async (EsStream            *self,
                                    const char          *projection_name,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = OP_LOAD_SNAPSHOT;
  op->projection_name = g_strdup (projection_name);
  run_stream_op (self, op, es_stream_real_load_snapshot_async, cancellable, callback,
                 user_data);
}

static void
es_stream_real_get_metrics_async (EsStream            *self,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = OP_GET_METRICS;
  run_stream_op (self, op, es_stream_real_get_metrics_async, cancellable, callback, user_data);
}

/* The default query_version, for an EsStream written for 0.1: the
 * metrics carry the stored version. */
static gint64
es_stream_real_query_version (EsStream      *self,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_autoptr(EsStreamMetrics) metrics = NULL;

  metrics = ES_STREAM_GET_IFACE (self)->get_metrics (self, cancellable, error);
  if (metrics == NULL)
    return -1;
  return es_stream_metrics_get_current_version (metrics);
}

static void
es_stream_real_query_version_async (EsStream            *self,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  StreamOp *op = g_new0 (StreamOp, 1);

  op->kind = OP_QUERY_VERSION;
  run_stream_op (self, op, es_stream_real_query_version_async, cancellable, callback,
                 user_data);
}

/* For stream implementations outside the library: a cursor over what
 * read returns. Correct, not fast: each event is an object copied into
 * the cursor's page. */
static EsEventCursor *
es_stream_real_read_cursor (EsStream       *self,
                            gint64          after_version,
                            EsEventFilter  *filter,
                            GCancellable   *cancellable,
                            GError        **error)
{
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;

  enumerator = ES_STREAM_GET_IFACE (self)->read (self, after_version, filter, cancellable, error);
  if (enumerator == NULL)
    return NULL;

  cursor = _es_event_cursor_new_for_enumerator (enumerator);
  if (!_es_event_cursor_fill (cursor, cancellable, error))
    return NULL;
  return g_steal_pointer (&cursor);
}

/* An implementation may have reset the vfunc; the default still works. */
static EsEventCursor *
call_read_cursor (EsStream       *self,
                  gint64          after_version,
                  EsEventFilter  *filter,
                  GCancellable   *cancellable,
                  GError        **error)
{
  EsStreamInterface *iface = ES_STREAM_GET_IFACE (self);

  if (iface->read_cursor == NULL)
    return es_stream_real_read_cursor (self, after_version, filter, cancellable, error);
  return iface->read_cursor (self, after_version, filter, cancellable, error);
}

static void
es_stream_default_init (EsStreamInterface *iface)
{
  _es_i18n_init ();

  iface->write_async = es_stream_real_write_async;
  iface->write_finish = es_stream_real_write_finish;
  iface->read_async = es_stream_real_read_async;
  iface->read_finish = (gpointer) es_stream_real_pointer_finish;
  iface->snapshot_async = es_stream_real_snapshot_async;
  iface->snapshot_finish = es_stream_real_snapshot_finish;
  iface->load_snapshot_async = es_stream_real_load_snapshot_async;
  iface->load_snapshot_finish = (gpointer) es_stream_real_pointer_finish;
  iface->get_metrics_async = es_stream_real_get_metrics_async;
  iface->get_metrics_finish = (gpointer) es_stream_real_pointer_finish;
  iface->query_version = es_stream_real_query_version;
  iface->query_version_async = es_stream_real_query_version_async;
  /* The same int64 result as a write. */
  iface->query_version_finish = es_stream_real_write_finish;
  iface->read_cursor = es_stream_real_read_cursor;

  /**
   * EsStream:stream-id:
   *
   * The id of the stream this handle is on.
   *
   * Since: 0.1
   */
  g_object_interface_install_property (iface,
                                       g_param_spec_string ("stream-id", NULL, NULL, NULL,
                                                            G_PARAM_READWRITE |
                                                            G_PARAM_CONSTRUCT_ONLY |
                                                            G_PARAM_STATIC_STRINGS));

  /**
   * EsStream:version:
   *
   * The version of the stream this handle knows: set when the stream is
   * opened, after each write through this handle (a successful one, or
   * one that failed with %ES_ERROR_WRONG_EXPECTED_VERSION: then the
   * version the write found), and by [method@Es.Stream.query_version].
   * It only moves forward. For <code>@<!-- -->all</code>, the last sequence id.
   *
   * Other handles and processes may have written since: the stored
   * version may be ahead of this one.
   *
   * Since: 0.1
   */
  g_object_interface_install_property (iface,
                                       g_param_spec_int64 ("version", NULL, NULL,
                                                           0, G_MAXINT64, 0,
                                                           G_PARAM_READABLE |
                                                           G_PARAM_EXPLICIT_NOTIFY |
                                                           G_PARAM_STATIC_STRINGS));
}

/**
 * es_stream_get_stream_id:
 * @self: an [iface@Es.Stream]
 *
 * Gets the id of the stream.
 *
 * Returns: (transfer none): the stream id
 *
 * Since: 0.1
 */
const char *
es_stream_get_stream_id (EsStream *self)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);

  return ES_STREAM_GET_IFACE (self)->get_stream_id (self);
}

/**
 * es_stream_get_version:
 * @self: an [iface@Es.Stream]
 *
 * Gets the version this handle knows (see [property@Es.Stream:version]),
 * without asking the storage. Other handles and processes may have
 * written since: a write with this as the expected version finds out,
 * fails with %ES_ERROR_WRONG_EXPECTED_VERSION and updates it, so the next
 * attempt with es_stream_get_version() uses the stored version.
 * [method@Es.Stream.query_version] reads the stored version without
 * writing.
 *
 * Returns: the version, 0 for an empty stream
 *
 * Since: 0.1
 */
gint64
es_stream_get_version (EsStream *self)
{
  g_return_val_if_fail (ES_IS_STREAM (self), 0);

  return ES_STREAM_GET_IFACE (self)->get_version (self);
}

/**
 * es_stream_write:
 * @self: an [iface@Es.Stream]
 * @events: (array length=n_events) (nullable): the events to append, in order
 * @n_events: the number of @events; 0 writes nothing
 * @expected_version: the version the stream must be at for the write to
 *   happen, %ES_VERSION_NO_STREAM for "must be empty", or %ES_VERSION_ANY
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Appends @events atomically: all of them or none.
 *
 * An event whose idempotency key is already stored in the stream, or
 * repeats an earlier key of the batch, is skipped, not an error.
 *
 * The expected version is checked in the same transaction that inserts,
 * after the idempotency lookup:
 *
 * - When every event of the batch is already stored (each has an
 *   idempotency key found in the stream), the write is a retry of one that
 *   succeeded: it succeeds, writes nothing and returns the stream's current
 *   version, whatever @expected_version is. Retrying after a timeout or a
 *   lost connection is therefore safe with the same expected version.
 * - Otherwise, on a mismatch, the write fails with
 *   %ES_ERROR_WRONG_EXPECTED_VERSION and writes nothing (not even the
 *   events that are new). The handle then knows the stream's stored
 *   version ([property@Es.Stream:version] is updated and notified), so a
 *   retry loop with es_stream_get_version() as the expected version
 *   converges:
 *
 * ```c
 * do
 *   {
 *     g_clear_error (&error);
 *     // decide again from the events after your state's version, then:
 *     version = es_stream_write (stream, events, n_events,
 *                                es_stream_get_version (stream), NULL, &error);
 *   }
 * while (g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION));
 * ```
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT, writing nothing, for a write to
 * <code>@<!-- -->all</code>, an expected version below -1, an empty or non-UTF-8 event type,
 * or metadata that is not a JSON object; with %ES_ERROR_CLOSED after the
 * factory was closed; with %ES_ERROR_STORAGE when the database fails; with
 * %G_IO_ERROR_CANCELLED when @cancellable was cancelled before the write
 * was committed. %G_IO_ERROR_CANCELLED always means nothing was written: a
 * write that was committed reports its version, even if @cancellable fired
 * meanwhile.
 *
 * A write reported successful survives the process being killed right
 * after.
 *
 * Returns: the stream's version after the write (its current version when
 *   every event was skipped or @n_events is 0), or -1 on error
 *
 * Since: 0.1
 */
gint64
es_stream_write (EsStream                 *self,
                 EsCandidateEvent * const *events,
                 guint                     n_events,
                 gint64                    expected_version,
                 GCancellable             *cancellable,
                 GError                  **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), -1);
  g_return_val_if_fail (events != NULL || n_events == 0, -1);
  for (guint i = 0; i < n_events; i++)
    g_return_val_if_fail (ES_IS_CANDIDATE_EVENT (events[i]), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  return ES_STREAM_GET_IFACE (self)->write (self, events, n_events, expected_version,
                                            cancellable, error);
}

/**
 * es_stream_write_async:
 * @self: an [iface@Es.Stream]
 * @events: (array length=n_events) (nullable): the events to append, in order
 * @n_events: the number of @events
 * @expected_version: the version the stream must be at, or %ES_VERSION_ANY
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the write is done
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.write] without blocking. Concurrent writes are
 * committed together where the backend can (group commit), each still
 * getting its own version or error. As with the synchronous call,
 * %G_IO_ERROR_CANCELLED means nothing was written: cancelling a write
 * that has already been committed does not turn its result into an error.
 *
 * Since: 0.1
 */
void
es_stream_write_async (EsStream                 *self,
                       EsCandidateEvent * const *events,
                       guint                     n_events,
                       gint64                    expected_version,
                       GCancellable             *cancellable,
                       GAsyncReadyCallback       callback,
                       gpointer                  user_data)
{
  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (events != NULL || n_events == 0);
  for (guint i = 0; i < n_events; i++)
    g_return_if_fail (ES_IS_CANDIDATE_EVENT (events[i]));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STREAM_GET_IFACE (self)->write_async (self, events, n_events, expected_version,
                                           cancellable, callback, user_data);
}

/**
 * es_stream_write_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.write_async].
 *
 * Returns: the stream's version after the write, or -1 on error
 *
 * Since: 0.1
 */
gint64
es_stream_write_finish (EsStream      *self,
                        GAsyncResult  *result,
                        GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), -1);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  return ES_STREAM_GET_IFACE (self)->write_finish (self, result, error);
}

/**
 * es_stream_read:
 * @self: an [iface@Es.Stream]
 * @after_version: return events with a version greater than this (for
 *   <code>@<!-- -->all</code>: a sequence id greater than this); 0 for all events
 * @filter: (nullable): clauses the events must match
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads the stream's events after @after_version, oldest first, through an
 * enumerator that pages through the result: reading a million events never
 * holds them all in memory. Events appended while the enumerator is in use
 * are returned too if they come after its position.
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for a negative @after_version or a
 * bad @filter (unknown field, unsupported value type, empty `in`).
 *
 * Returns: (transfer full): an enumerator, or %NULL on error
 *
 * Since: 0.1
 */
EsEventEnumerator *
es_stream_read (EsStream       *self,
                gint64          after_version,
                EsEventFilter  *filter,
                GCancellable   *cancellable,
                GError        **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STREAM_GET_IFACE (self)->read (self, after_version, filter, cancellable, error);
}

/**
 * es_stream_read_async:
 * @self: an [iface@Es.Stream]
 * @after_version: return events after this version (or sequence id for <code>@<!-- -->all</code>)
 * @filter: (nullable): clauses the events must match
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the read has started
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.read] without blocking.
 *
 * Since: 0.1
 */
void
es_stream_read_async (EsStream            *self,
                      gint64               after_version,
                      EsEventFilter       *filter,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STREAM_GET_IFACE (self)->read_async (self, after_version, filter, cancellable,
                                          callback, user_data);
}

/**
 * es_stream_read_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.read_async].
 *
 * Returns: (transfer full): an enumerator, or %NULL on error
 *
 * Since: 0.1
 */
EsEventEnumerator *
es_stream_read_finish (EsStream      *self,
                       GAsyncResult  *result,
                       GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STREAM_GET_IFACE (self)->read_finish (self, result, error);
}

/**
 * es_stream_snapshot:
 * @self: an [iface@Es.Stream]
 * @state: the projection's state, stored byte for byte
 * @version: the version @state reflects, or -1 for the stream's current
 *   version
 * @projection_name: (nullable): the projection's name; %NULL is `"default"`
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Saves a snapshot of a projection of the stream, replacing the previous
 * one of the same name. Rebuilding then starts from the snapshot and reads
 * only the events after its version.
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for a @version below -1 or beyond
 * the stream's current version, and with %G_IO_ERROR_CANCELLED, saving
 * nothing, when @cancellable was cancelled before the snapshot was stored
 * (once stored, it is reported saved, synchronously or not).
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_stream_snapshot (EsStream      *self,
                    GBytes        *state,
                    gint64         version,
                    const char    *projection_name,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), FALSE);
  g_return_val_if_fail (state != NULL, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STREAM_GET_IFACE (self)->snapshot (self, state, version, projection_name,
                                               cancellable, error);
}

/**
 * es_stream_snapshot_async:
 * @self: an [iface@Es.Stream]
 * @state: the projection's state
 * @version: the version @state reflects, or -1 for the current version
 * @projection_name: (nullable): the projection's name; %NULL is `"default"`
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the snapshot is saved
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.snapshot] without blocking.
 *
 * Since: 0.1
 */
void
es_stream_snapshot_async (EsStream            *self,
                          GBytes              *state,
                          gint64               version,
                          const char          *projection_name,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (state != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STREAM_GET_IFACE (self)->snapshot_async (self, state, version, projection_name,
                                              cancellable, callback, user_data);
}

/**
 * es_stream_snapshot_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.snapshot_async].
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_stream_snapshot_finish (EsStream      *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), FALSE);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_STREAM_GET_IFACE (self)->snapshot_finish (self, result, error);
}

/**
 * es_stream_load_snapshot:
 * @self: an [iface@Es.Stream]
 * @projection_name: (nullable): the projection's name; %NULL is `"default"`
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Loads the last snapshot saved for a projection of the stream.
 *
 * Returns: (transfer full) (nullable): the snapshot, or %NULL; when there
 *   is no snapshot, %NULL without an error
 *
 * Since: 0.1
 */
EsSnapshot *
es_stream_load_snapshot (EsStream      *self,
                         const char    *projection_name,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STREAM_GET_IFACE (self)->load_snapshot (self, projection_name, cancellable, error);
}

/**
 * es_stream_load_snapshot_async:
 * @self: an [iface@Es.Stream]
 * @projection_name: (nullable): the projection's name; %NULL is `"default"`
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the snapshot is loaded
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.load_snapshot] without blocking.
 *
 * Since: 0.1
 */
void
es_stream_load_snapshot_async (EsStream            *self,
                               const char          *projection_name,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STREAM_GET_IFACE (self)->load_snapshot_async (self, projection_name, cancellable,
                                                   callback, user_data);
}

/**
 * es_stream_load_snapshot_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.load_snapshot_async].
 *
 * Returns: (transfer full) (nullable): the snapshot; %NULL without an
 *   error when there is none
 *
 * Since: 0.1
 */
EsSnapshot *
es_stream_load_snapshot_finish (EsStream      *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STREAM_GET_IFACE (self)->load_snapshot_finish (self, result, error);
}

/**
 * es_stream_get_metrics:
 * @self: an [iface@Es.Stream]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads the stream's current version, number of events and last timestamp
 * from the database. For <code>@<!-- -->all</code>: the last sequence id and the total number
 * of events.
 *
 * Returns: (transfer full): the metrics, or %NULL on error
 *
 * Since: 0.1
 */
EsStreamMetrics *
es_stream_get_metrics (EsStream      *self,
                       GCancellable  *cancellable,
                       GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STREAM_GET_IFACE (self)->get_metrics (self, cancellable, error);
}

/**
 * es_stream_get_metrics_async:
 * @self: an [iface@Es.Stream]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the metrics are read
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.get_metrics] without blocking.
 *
 * Since: 0.1
 */
void
es_stream_get_metrics_async (EsStream            *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STREAM_GET_IFACE (self)->get_metrics_async (self, cancellable, callback, user_data);
}

/**
 * es_stream_get_metrics_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.get_metrics_async].
 *
 * Returns: (transfer full): the metrics, or %NULL on error
 *
 * Since: 0.1
 */
EsStreamMetrics *
es_stream_get_metrics_finish (EsStream      *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return ES_STREAM_GET_IFACE (self)->get_metrics_finish (self, result, error);
}

/**
 * es_stream_watch:
 * @self: an [iface@Es.Stream]
 * @after_version: emit the stored events after this version (for <code>@<!-- -->all</code>:
 *   sequence id), then live ones; 0 for the whole stream; -1 for new events
 *   only: every event committed after this call returns is emitted (the
 *   current version is looked up before it returns, with one short query
 *   in the calling thread)
 *
 * Starts watching the stream. The returned [class@Es.Watch] emits
 * [signal@Es.Watch::event] for the stored events after @after_version and
 * then for every new one, exactly once and in order, and
 * [signal@Es.Watch::caught-up] once in between. Signals are emitted in the
 * thread-default main context of the caller, which must run a main loop.
 *
 * Problems (a closed factory, a @after_version below -1, an unreadable
 * database) are reported through [signal@Es.Watch::error] from that main
 * context, so handlers connected right after this call see them.
 *
 * Returns: (transfer full): the watch; dropping the last reference stops it
 *
 * Since: 0.1
 */
EsWatch *
es_stream_watch (EsStream *self,
                 gint64    after_version)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);

  return ES_STREAM_GET_IFACE (self)->watch (self, after_version);
}

/**
 * es_stream_query_version:
 * @self: an [iface@Es.Stream]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads the stream's version from the storage, without writing: what
 * other handles and processes wrote is counted. The handle's
 * [property@Es.Stream:version] is updated (and notified) with it, so that
 * a following write with es_stream_get_version() as the expected version
 * expects the stored version. For <code>@<!-- -->all</code>, the last sequence id.
 *
 * [method@Es.Stream.get_metrics] reads the same version along with more.
 *
 * Returns: the stored version (0 for an empty stream), or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_query_version (EsStream      *self,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  return ES_STREAM_GET_IFACE (self)->query_version (self, cancellable, error);
}

/**
 * es_stream_query_version_async:
 * @self: an [iface@Es.Stream]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the version is read
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.query_version] without blocking;
 * [property@Es.Stream:version] is updated in the caller's thread-default
 * main context, before @callback runs.
 *
 * Since: 0.2
 */
void
es_stream_query_version_async (EsStream            *self,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  ES_STREAM_GET_IFACE (self)->query_version_async (self, cancellable, callback, user_data);
}

/**
 * es_stream_query_version_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.query_version_async].
 *
 * Returns: the stored version, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_query_version_finish (EsStream      *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), -1);
  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  return ES_STREAM_GET_IFACE (self)->query_version_finish (self, result, error);
}

static gboolean
check_read_backwards (EsStream  *self,
                      GError   **error)
{
  if (ES_STREAM_GET_IFACE (self)->read_backwards != NULL)
    return TRUE;

  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               /* Translators: %s is a type name */
               _("Stream implementation %s does not support reading backwards"),
               G_OBJECT_TYPE_NAME (self));
  return FALSE;
}

/**
 * es_stream_read_backwards:
 * @self: an [iface@Es.Stream]
 * @before_version: return events with a version smaller than this (for
 *   <code>@<!-- -->all</code>: a sequence id smaller than this);
 *   %ES_READ_FROM_END (-1) for the newest events, 0 for none
 * @filter: (nullable): clauses the events must match
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads the stream's events before @before_version, newest first, through
 * an enumerator that pages through the result as [method@Es.Stream.read]
 * does. Reading the last 50 events of a stream of a million costs what it
 * costs on a stream of a hundred. Events appended while the enumerator is
 * in use are not returned (they come after its starting point).
 *
 * ```c
 * // The ten newest events
 * g_autoptr(EsEventEnumerator) events =
 *   es_stream_read_backwards (stream, ES_READ_FROM_END, NULL, NULL, &error);
 * g_autoptr(GPtrArray) newest = es_event_enumerator_next_batch (events, 10, NULL, &error);
 * ```
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for a @before_version below -1 or
 * a bad @filter, with %ES_ERROR_CLOSED after the factory is closed.
 *
 * Returns: (transfer full): an enumerator, or %NULL on error
 *
 * Since: 0.2
 */
EsEventEnumerator *
es_stream_read_backwards (EsStream       *self,
                          gint64          before_version,
                          EsEventFilter  *filter,
                          GCancellable   *cancellable,
                          GError        **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_read_backwards (self, error))
    return NULL;

  return ES_STREAM_GET_IFACE (self)->read_backwards (self, before_version, filter,
                                                     cancellable, error);
}

/**
 * es_stream_read_backwards_async:
 * @self: an [iface@Es.Stream]
 * @before_version: return events before this version (or sequence id for
 *   <code>@<!-- -->all</code>); %ES_READ_FROM_END (-1) for the newest
 * @filter: (nullable): clauses the events must match
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the read has started
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.read_backwards] without blocking: the first
 * page is read in a worker thread.
 *
 * Since: 0.2
 */
void
es_stream_read_backwards_async (EsStream            *self,
                                gint64               before_version,
                                EsEventFilter       *filter,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  StreamOp *op;
  GError *error = NULL;

  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  if (!check_read_backwards (self, &error))
    {
      g_task_report_error (self, callback, user_data, es_stream_read_backwards_async, error);
      return;
    }

  op = g_new0 (StreamOp, 1);
  op->kind = OP_READ_BACKWARDS;
  op->version = before_version;
  op->filter = filter != NULL ? g_object_ref (filter) : NULL;
  run_stream_op (self, op, es_stream_read_backwards_async, cancellable, callback, user_data);
}

/**
 * es_stream_read_backwards_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.read_backwards_async].
 *
 * Returns: (transfer full): an enumerator, or %NULL on error
 *
 * Since: 0.2
 */
EsEventEnumerator *
es_stream_read_backwards_finish (EsStream      *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_read_backwards_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * es_stream_read_cursor:
 * @self: an [iface@Es.Stream]
 * @after_version: return events with a version greater than this (for
 *   <code>@<!-- -->all</code>: a sequence id greater than this); 0 for all events
 * @filter: (nullable): clauses the events must match
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads the same events as [method@Es.Stream.read], in the same order,
 * through an [class@Es.EventCursor]: row by row, without an object per
 * event, the fastest way to read many events. The first page is read
 * before this returns, so a bad filter or a closed factory fails here.
 *
 * ```c
 * g_autoptr(EsEventCursor) cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
 *
 * while (es_event_cursor_next (cursor, NULL, &error))
 *   count_type (es_event_cursor_get_event_type (cursor));
 * ```
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for a negative @after_version or a
 * bad @filter, with %ES_ERROR_CLOSED after the factory is closed.
 *
 * Returns: (transfer full): a cursor before the first row, or %NULL on error
 *
 * Since: 0.2
 */
EsEventCursor *
es_stream_read_cursor (EsStream       *self,
                       gint64          after_version,
                       EsEventFilter  *filter,
                       GCancellable   *cancellable,
                       GError        **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return call_read_cursor (self, after_version, filter, cancellable, error);
}

/**
 * es_stream_read_cursor_async:
 * @self: an [iface@Es.Stream]
 * @after_version: return events after this version (or sequence id for
 *   <code>@<!-- -->all</code>)
 * @filter: (nullable): clauses the events must match
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the read has started
 * @user_data: data for @callback
 *
 * Starts [method@Es.Stream.read_cursor] without blocking: the first page
 * is read in a worker thread.
 *
 * Since: 0.2
 */
void
es_stream_read_cursor_async (EsStream            *self,
                             gint64               after_version,
                             EsEventFilter       *filter,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  StreamOp *op;

  g_return_if_fail (ES_IS_STREAM (self));
  g_return_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  op = g_new0 (StreamOp, 1);
  op->kind = OP_READ_CURSOR;
  op->version = after_version;
  op->filter = filter != NULL ? g_object_ref (filter) : NULL;
  run_stream_op (self, op, es_stream_read_cursor_async, cancellable, callback, user_data);
}

/**
 * es_stream_read_cursor_finish:
 * @self: an [iface@Es.Stream]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.Stream.read_cursor_async].
 *
 * Returns: (transfer full): a cursor before the first row, or %NULL on error
 *
 * Since: 0.2
 */
EsEventCursor *
es_stream_read_cursor_finish (EsStream      *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (ES_IS_STREAM (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_read_cursor_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
