/* es-operations.c: backup, check, export and import of a whole database.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "es-export-format-private.h"
#include "es-private.h"

/* The operations of this file serve tools (es-tool) and operators. Backup
 * and check are the backend's (es_storage_handle_backup(),
 * es_storage_handle_check()); export reads pages through the storage
 * handle and writes JSON Lines; import parses JSON Lines and stores
 * batches through es_storage_handle_import_events(). The format is
 * documented in doc/export-format.md. */

/* Lines per import batch: one transaction each. */
#define IMPORT_BATCH 1000

/* Progress is reported at most once per this many events or lines. */
#define PROGRESS_EVERY 1024

static gboolean
operation_usable (EsStreamFactory  *self,
                  GCancellable     *cancellable,
                  GError          **error)
{
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  return _es_stream_factory_check_open (self, error);
}

/* ---------------------------------------------------------------------- *
 * Progress of asynchronous operations                                      *
 * ---------------------------------------------------------------------- */

/* An asynchronous operation runs its synchronous twin in a thread; its
 * progress callback is called in the thread-default main context of the
 * caller, as g_file_copy_async() does. */
typedef struct
{
  gatomicrefcount        ref_count;
  GMainContext          *context;  /* (owned) */
  GFileProgressCallback  callback;
  gpointer               data;
  GDestroyNotify         destroy;
} ProgressRelay;

typedef struct
{
  ProgressRelay *relay;  /* (owned) */
  goffset        current;
  goffset        total;
} ProgressCall;

/* Not g_main_context_invoke(): it would run @func in the calling thread
 * whenever it can acquire @context. */
static void
dispatch_in_context (GMainContext   *context,
                     GSourceFunc     func,
                     gpointer        data,
                     GDestroyNotify  destroy)
{
  g_autoptr(GSource) source = g_idle_source_new ();

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, destroy);
  g_source_set_static_name (source, "[es-glib] operation progress");
  g_source_attach (source, context);
}

static ProgressRelay *
progress_relay_ref (ProgressRelay *relay)
{
  g_atomic_ref_count_inc (&relay->ref_count);
  return relay;
}

static void
progress_relay_unref (gpointer data)
{
  ProgressRelay *relay = data;

  if (!g_atomic_ref_count_dec (&relay->ref_count))
    return;
  if (relay->destroy != NULL)
    relay->destroy (relay->data);
  g_main_context_unref (relay->context);
  g_free (relay);
}

static gboolean
progress_call_dispatch (gpointer data)
{
  ProgressCall *call = data;

  call->relay->callback (call->current, call->total, call->relay->data);
  return G_SOURCE_REMOVE;
}

static void
progress_call_free (gpointer data)
{
  ProgressCall *call = data;

  progress_relay_unref (call->relay);
  g_free (call);
}

static void
progress_relay_in_thread (goffset  current,
                          goffset  total,
                          gpointer data)
{
  ProgressRelay *relay = data;
  ProgressCall *call = g_new (ProgressCall, 1);

  call->relay = progress_relay_ref (relay);
  call->current = current;
  call->total = total;
  dispatch_in_context (relay->context, progress_call_dispatch, call, progress_call_free);
}

static gboolean
progress_relay_release_dispatch (gpointer data)
{
  return G_SOURCE_REMOVE;
}

/* Drops the worker's reference from the caller's context, after the
 * progress calls queued before it: progress_data_destroy then runs there,
 * after the last progress call and before the operation's callback (whose
 * source is attached after this one). */
static void
progress_relay_release (ProgressRelay *relay)
{
  dispatch_in_context (relay->context, progress_relay_release_dispatch, relay,
                       progress_relay_unref);
}

/* The operation record of the _async twins. */
typedef enum
{
  OP_BACKUP,
  OP_CHECK,
  OP_EXPORT,
  OP_IMPORT,
} OpKind;

typedef struct
{
  OpKind          kind;
  guint           flags;
  GFile          *destination;  /* (owned) (nullable) */
  GOutputStream  *output;       /* (owned) (nullable) */
  GInputStream   *input;        /* (owned) (nullable) */
  char           *stream_id;    /* (owned) (nullable) */
  EsEventFilter  *filter;       /* (owned) (nullable) */
  ProgressRelay  *relay;        /* (owned) (nullable) */
} Op;

static void
op_free (gpointer data)
{
  Op *op = data;

  g_clear_object (&op->destination);
  g_clear_object (&op->output);
  g_clear_object (&op->input);
  g_free (op->stream_id);
  g_clear_object (&op->filter);
  g_clear_pointer (&op->relay, progress_relay_unref);
  g_free (op);
}

static void
op_in_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  EsStreamFactory *self = source_object;
  Op *op = task_data;
  GFileProgressCallback progress = op->relay != NULL ? progress_relay_in_thread : NULL;
  EsCheckReport *report = NULL;
  GError *error = NULL;
  gboolean ok = FALSE;
  gint64 n = -1;

  switch (op->kind)
    {
    case OP_BACKUP:
      ok = es_stream_factory_backup (self, op->destination, op->flags, cancellable, progress,
                                     op->relay, &error);
      break;
    case OP_CHECK:
      report = es_stream_factory_check (self, op->flags, cancellable, progress, op->relay,
                                        &error);
      ok = report != NULL;
      break;
    case OP_EXPORT:
      n = es_stream_factory_export_events (self, op->output, op->stream_id, op->filter, op->flags,
                                    cancellable, progress, op->relay, &error);
      ok = n >= 0;
      break;
    case OP_IMPORT:
      n = es_stream_factory_import_events (self, op->input, op->flags, cancellable, progress,
                                    op->relay, &error);
      ok = n >= 0;
      break;
    default:
      g_assert_not_reached ();
    }

  /* Before the result: the progress callbacks and destroy notify all run
   * before the operation's callback. */
  if (op->relay != NULL)
    progress_relay_release (g_steal_pointer (&op->relay));

  if (!ok)
    g_task_return_error (task, error);
  else if (op->kind == OP_CHECK)
    g_task_return_pointer (task, report, g_object_unref);
  else if (op->kind == OP_BACKUP)
    g_task_return_boolean (task, TRUE);
  else
    _es_task_return_int64 (task, n);
}

static void
run_op (EsStreamFactory       *self,
        Op                    *op,
        GFileProgressCallback  progress_callback,
        gpointer               progress_data,
        GDestroyNotify         progress_data_destroy,
        gpointer               source_tag,
        GCancellable          *cancellable,
        GAsyncReadyCallback    callback,
        gpointer               user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  if (progress_callback != NULL)
    {
      op->relay = g_new0 (ProgressRelay, 1);
      g_atomic_ref_count_init (&op->relay->ref_count);
      op->relay->context = g_main_context_ref_thread_default ();
      op->relay->callback = progress_callback;
      op->relay->data = progress_data;
      op->relay->destroy = progress_data_destroy;
    }
  else if (progress_data_destroy != NULL)
    {
      progress_data_destroy (progress_data);
    }
  g_task_set_task_data (task, op, op_free);
  g_task_run_in_thread (task, op_in_thread);
}

static gboolean
check_task (EsStreamFactory *self,
            GAsyncResult    *result,
            gpointer         source_tag)
{
  return ES_IS_STREAM_FACTORY (self) &&
         g_task_is_valid (result, self) &&
         g_async_result_is_tagged (result, source_tag);
}

/* ---------------------------------------------------------------------- *
 * Backup                                                                   *
 * ---------------------------------------------------------------------- */

/**
 * es_stream_factory_backup:
 * @self: an [class@Es.StreamFactory]
 * @destination: the file to create
 * @flags: %ES_BACKUP_FLAGS_OVERWRITE to replace an existing @destination
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope call) (closure progress_data):
 *   called as the copy progresses, with the bytes copied and the size of
 *   the database
 * @progress_data: data for @progress_callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Copies the live database to @destination while the application (this
 * process and others) keeps reading and writing it. The copy is a valid
 * database, which [class@Es.SqliteStreamFactory] opens, holding every
 * transaction committed before some moment of the backup.
 *
 * With SQLite, the copy is made with SQLite's online backup API, a chunk
 * of pages at a time, so that writers are never blocked for long, into a
 * temporary file in @destination's directory that is synced to disk and
 * then renamed to @destination. An interrupted or cancelled backup leaves
 * nothing at @destination (a killed process may leave a
 * `.<name>.XXXXXX.part` file, never one named @destination).
 *
 * Fails with %G_IO_ERROR_EXISTS when @destination exists and @flags does
 * not hold %ES_BACKUP_FLAGS_OVERWRITE, with another %G_IO_ERROR naming
 * @destination when it cannot be created, with %G_IO_ERROR_CANCELLED when
 * cancelled (then nothing was written at @destination), and with
 * %G_IO_ERROR_NOT_SUPPORTED with PostgreSQL, whose databases are backed up
 * with `pg_dump` (see the operations guide).
 *
 * Returns: %TRUE when @destination holds the copy
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_backup (EsStreamFactory        *self,
                          GFile                  *destination,
                          EsBackupFlags           flags,
                          GCancellable           *cancellable,
                          GFileProgressCallback   progress_callback,
                          gpointer                progress_data,
                          GError                **error)
{
  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (destination), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!operation_usable (self, cancellable, error))
    return FALSE;

  return es_storage_handle_backup (es_stream_factory_get_storage (self), destination, flags,
                                   cancellable, progress_callback, progress_data, error);
}

/**
 * es_stream_factory_backup_async:
 * @self: an [class@Es.StreamFactory]
 * @destination: the file to create
 * @flags: %ES_BACKUP_FLAGS_OVERWRITE to replace an existing @destination
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope notified) (closure progress_data)
 *   (destroy progress_data_destroy): called in the thread-default main
 *   context of the caller as the copy progresses
 * @progress_data: data for @progress_callback
 * @progress_data_destroy: (nullable): frees @progress_data once the
 *   backup is over, in the caller's context, before @callback
 * @callback: (scope async) (closure user_data): called when the backup is
 *   done
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.backup] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_backup_async (EsStreamFactory        *self,
                                GFile                  *destination,
                                EsBackupFlags           flags,
                                GCancellable           *cancellable,
                                GFileProgressCallback   progress_callback,
                                gpointer                progress_data,
                                GDestroyNotify          progress_data_destroy,
                                GAsyncReadyCallback     callback,
                                gpointer                user_data)
{
  Op *op;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (G_IS_FILE (destination));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  op = g_new0 (Op, 1);
  op->kind = OP_BACKUP;
  op->flags = flags;
  op->destination = g_object_ref (destination);
  run_op (self, op, progress_callback, progress_data, progress_data_destroy,
          es_stream_factory_backup_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_backup_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.backup_async].
 *
 * Returns: %TRUE when the destination holds the copy
 *
 * Since: 0.2
 */
gboolean
es_stream_factory_backup_finish (EsStreamFactory  *self,
                                 GAsyncResult     *result,
                                 GError          **error)
{
  g_return_val_if_fail (check_task (self, result, es_stream_factory_backup_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---------------------------------------------------------------------- *
 * Check                                                                    *
 * ---------------------------------------------------------------------- */

/**
 * es_stream_factory_check:
 * @self: an [class@Es.StreamFactory]
 * @flags: %ES_CHECK_FLAGS_QUICK for a faster check of the storage
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope call) (closure progress_data):
 *   called as the check progresses, with the steps done and the number of
 *   steps (not bytes: units of the backend's choice)
 * @progress_data: data for @progress_callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Checks the integrity of the database and reports what is wrong. The
 * check covers the backend's own storage (SQLite: `PRAGMA
 * integrity_check`, or `PRAGMA quick_check` with %ES_CHECK_FLAGS_QUICK:
 * a corrupt page is reported, never a crash; PostgreSQL checks its own
 * storage with its tools, so there the check covers the invariants only)
 * and es-glib's invariants, listed in
 * [enum@Es.CheckProblemKind]: versions without gaps, streams' records
 * agreeing with their events, sequence ids in order, idempotency keys
 * unique per stream, snapshots and checkpoints no later than their
 * stream's head. It only reads, in one read transaction: writers keep
 * writing meanwhile.
 *
 * Problems found are in the report, not errors: the call fails only when
 * the check could not run (cancelled, closed factory, unreachable
 * server), or with %G_IO_ERROR_NOT_SUPPORTED on a backend without a check.
 *
 * Returns: (transfer full): the report, or %NULL on error
 *
 * Since: 0.2
 */
EsCheckReport *
es_stream_factory_check (EsStreamFactory        *self,
                         EsCheckFlags            flags,
                         GCancellable           *cancellable,
                         GFileProgressCallback   progress_callback,
                         gpointer                progress_data,
                         GError                **error)
{
  g_autoptr(EsCheckReport) report = NULL;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!operation_usable (self, cancellable, error))
    return NULL;

  report = es_check_report_new ();
  if (!es_storage_handle_check (es_stream_factory_get_storage (self), flags, report,
                                cancellable, progress_callback, progress_data, error))
    return NULL;
  return g_steal_pointer (&report);
}

/**
 * es_stream_factory_check_async:
 * @self: an [class@Es.StreamFactory]
 * @flags: %ES_CHECK_FLAGS_QUICK for a faster check of the storage
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope notified) (closure progress_data)
 *   (destroy progress_data_destroy): called in the thread-default main
 *   context of the caller as the check progresses
 * @progress_data: data for @progress_callback
 * @progress_data_destroy: (nullable): frees @progress_data once the check
 *   is over
 * @callback: (scope async) (closure user_data): called when the check is
 *   done
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.check] without blocking.
 *
 * Since: 0.2
 */
void
es_stream_factory_check_async (EsStreamFactory        *self,
                               EsCheckFlags            flags,
                               GCancellable           *cancellable,
                               GFileProgressCallback   progress_callback,
                               gpointer                progress_data,
                               GDestroyNotify          progress_data_destroy,
                               GAsyncReadyCallback     callback,
                               gpointer                user_data)
{
  Op *op;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  op = g_new0 (Op, 1);
  op->kind = OP_CHECK;
  op->flags = flags;
  run_op (self, op, progress_callback, progress_data, progress_data_destroy,
          es_stream_factory_check_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_check_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.check_async].
 *
 * Returns: (transfer full): the report, or %NULL on error
 *
 * Since: 0.2
 */
EsCheckReport *
es_stream_factory_check_finish (EsStreamFactory  *self,
                                GAsyncResult     *result,
                                GError          **error)
{
  g_return_val_if_fail (check_task (self, result, es_stream_factory_check_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---------------------------------------------------------------------- *
 * Export                                                                   *
 * ---------------------------------------------------------------------- */

/**
 * es_stream_factory_export_events:
 * @self: an [class@Es.StreamFactory]
 * @output: where to write the events
 * @stream_id: (nullable): the stream to export, or %NULL (or
 *   %ES_ALL_STREAM) for every stream in sequence-id order
 * @filter: (nullable): export only the events matching it
 * @flags: %ES_EXPORT_FLAGS_DATA_BASE64 to write all data as base64
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope call) (closure progress_data):
 *   called as the export progresses, with the number of events written
 *   and the number to write (not bytes)
 * @progress_data: data for @progress_callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Writes events to @output as JSON Lines, one event a line, in the format
 * of [the export format guide](export-format.html), which
 * [method@Es.StreamFactory.import_events] reads back: stream id, version,
 * sequence id, timestamp (ISO 8601 in UTC, with microseconds), event
 * type, idempotency key, metadata (the JSON object as stored when it is
 * one, written as a string otherwise) and data (the JSON as stored when it
 * is one JSON value on one line, base64 otherwise), and whether the event
 * was erased. An import stores the same bytes.
 *
 * The events are read a page at a time and written as they are read:
 * memory stays flat whatever the number of events. Each page is read in
 * its own transaction: events appended during the export may be exported
 * or not, events removed may be missing, but no event is written twice
 * or out of order. @output is neither flushed nor closed.
 *
 * Returns: the number of events written, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_factory_export_events (EsStreamFactory        *self,
                                 GOutputStream          *output,
                                 const char             *stream_id,
                                 EsEventFilter          *filter,
                                 EsExportFlags           flags,
                                 GCancellable           *cancellable,
                                 GFileProgressCallback   progress_callback,
                                 gpointer                progress_data,
                                 GError                **error)
{
  EsStorageHandle *storage;
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GString) out = NULL;
  gint64 position = 0;
  gint64 written = 0;
  gint64 total = 0;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), -1);
  g_return_val_if_fail (G_IS_OUTPUT_STREAM (output), -1);
  g_return_val_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (!operation_usable (self, cancellable, error))
    return -1;
  if (stream_id != NULL && strcmp (stream_id, ES_ALL_STREAM) == 0)
    stream_id = NULL;
  if (stream_id != NULL && !_es_validate_stream_id (stream_id, FALSE, error))
    return -1;
  if (filter != NULL && !es_event_filter_validate (filter, error))
    return -1;

  storage = es_stream_factory_get_storage (self);
  if (progress_callback != NULL)
    {
      total = es_storage_handle_count_events (storage, stream_id, filter, 0, G_MAXINT64,
                                              cancellable, error);
      if (total < 0)
        return -1;
      progress_callback (0, total, progress_data);
    }

  parser = json_parser_new_immutable ();
  out = g_string_sized_new (64 * 1024);
  for (;;)
    {
      g_autoptr(GPtrArray) page =
        es_storage_handle_read_page_full (storage, stream_id, position, ES_READ_FLAGS_NONE,
                                          filter, ES_READ_PAGE_SIZE, cancellable, error);
      if (page == NULL)
        return -1;

      g_string_truncate (out, 0);
      for (guint i = 0; i < page->len; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (page, i);

          _es_export_append_event (out, parser, event,
                                   (flags & ES_EXPORT_FLAGS_DATA_BASE64) != 0);
          position = stream_id != NULL ? es_stored_event_get_version (event)
                                       : es_stored_event_get_sequence_id (event);
        }
      if (out->len > 0 &&
          !g_output_stream_write_all (output, out->str, out->len, NULL, cancellable, error))
        return -1;
      written += page->len;
      if (progress_callback != NULL && page->len > 0)
        progress_callback (written, MAX (total, written), progress_data);
      if (page->len < ES_READ_PAGE_SIZE)
        break;
    }

  return written;
}

/**
 * es_stream_factory_export_events_async:
 * @self: an [class@Es.StreamFactory]
 * @output: where to write the events
 * @stream_id: (nullable): the stream to export, or %NULL for every stream
 * @filter: (nullable): export only the events matching it
 * @flags: %ES_EXPORT_FLAGS_DATA_BASE64 to write all data as base64
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope notified) (closure progress_data)
 *   (destroy progress_data_destroy): called in the thread-default main
 *   context of the caller as the export progresses
 * @progress_data: data for @progress_callback
 * @progress_data_destroy: (nullable): frees @progress_data once the
 *   export is over
 * @callback: (scope async) (closure user_data): called when the export is
 *   done
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.export_events] without blocking. @output is
 * written from another thread meanwhile: do not use it until @callback.
 *
 * Since: 0.2
 */
void
es_stream_factory_export_events_async (EsStreamFactory        *self,
                                       GOutputStream          *output,
                                       const char             *stream_id,
                                       EsEventFilter          *filter,
                                       EsExportFlags           flags,
                                       GCancellable           *cancellable,
                                       GFileProgressCallback   progress_callback,
                                       gpointer                progress_data,
                                       GDestroyNotify          progress_data_destroy,
                                       GAsyncReadyCallback     callback,
                                       gpointer                user_data)
{
  Op *op;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (G_IS_OUTPUT_STREAM (output));
  g_return_if_fail (filter == NULL || ES_IS_EVENT_FILTER (filter));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  op = g_new0 (Op, 1);
  op->kind = OP_EXPORT;
  op->flags = flags;
  op->output = g_object_ref (output);
  op->stream_id = g_strdup (stream_id);
  op->filter = filter != NULL ? g_object_ref (filter) : NULL;
  run_op (self, op, progress_callback, progress_data, progress_data_destroy,
          es_stream_factory_export_events_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_export_events_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.export_events_async].
 *
 * Returns: the number of events written, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_factory_export_events_finish (EsStreamFactory  *self,
                                        GAsyncResult     *result,
                                        GError          **error)
{
  gint64 n = -1;

  g_return_val_if_fail (check_task (self, result, es_stream_factory_export_events_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (!_es_task_propagate_int64 (G_TASK (result), &n, error))
    return -1;
  return n;
}

/* ---------------------------------------------------------------------- *
 * Import                                                                   *
 * ---------------------------------------------------------------------- */

static gboolean
line_error (GError     **error,
            guint64      line,
            const char  *what)
{
  g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
               /* Translators: %llu is a line number, %s what is wrong with it */
               _("Line %llu: %s"), (unsigned long long) line, what);
  return FALSE;
}

static const char *
member_string (JsonObject *object,
               const char *name,
               gboolean    nullable,
               gboolean   *ok)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      *ok = nullable;
      return NULL;
    }
  if (json_node_get_value_type (node) != G_TYPE_STRING)
    {
      *ok = FALSE;
      return NULL;
    }
  *ok = TRUE;
  return json_node_get_string (node);
}

/* The JSON value @node of the member @name of @line, as the bytes the line
 * holds (the export writes data and metadata that are JSON as they are
 * stored, so they come back byte for byte). A line the strict scanner
 * cannot read but json-glib could (json-glib takes more than JSON) gives
 * the value as json-glib writes it. */
static char *
member_source (const char *line,
               gsize       len,
               const char *name,
               JsonNode   *node)
{
  gsize start = 0, value_len = 0;

  if (_es_export_find_member (line, len, name, &start, &value_len))
    return g_strndup (line + start, value_len);
  return json_to_string (node, FALSE);
}

/* Parses one line of an export into an event; NULL with @error naming
 * @line_number when the line is not one. */
static EsStoredEvent *
parse_line (JsonParser  *parser,
            const char  *text,
            gsize        len,
            guint64      line_number,
            GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDateTime) time = NULL;
  g_autoptr(GBytes) data = NULL;
  g_autofree char *metadata = NULL;
  JsonNode *root, *node;
  JsonObject *object;
  const char *stream_id, *timestamp, *event_type, *key;
  gint64 version;
  gboolean ok = FALSE;
  EsStoredEventFlags flags = ES_STORED_EVENT_FLAGS_NONE;

  if (!json_parser_load_from_data (parser, text, (gssize) len, &local_error))
    {
      line_error (error, line_number, local_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      line_error (error, line_number, _("Not a JSON object"));
      return NULL;
    }
  object = json_node_get_object (root);

  stream_id = member_string (object, "stream_id", FALSE, &ok);
  if (!ok)
    {
      line_error (error, line_number, _("No string “stream_id”"));
      return NULL;
    }
  node = json_object_get_member (object, "version");
  if (node == NULL || json_node_get_value_type (node) != G_TYPE_INT64 ||
      (version = json_node_get_int (node)) < 1)
    {
      line_error (error, line_number, _("No positive integer “version”"));
      return NULL;
    }
  timestamp = member_string (object, "timestamp", FALSE, &ok);
  if (ok)
    time = g_date_time_new_from_iso8601 (timestamp, NULL);
  if (time == NULL)
    {
      line_error (error, line_number, _("No ISO 8601 “timestamp”"));
      return NULL;
    }
  event_type = member_string (object, "event_type", FALSE, &ok);
  if (!ok || *event_type == '\0')
    {
      line_error (error, line_number, _("No string “event_type”"));
      return NULL;
    }
  key = member_string (object, "idempotency_key", TRUE, &ok);
  if (!ok)
    {
      line_error (error, line_number, _("“idempotency_key” is neither a string nor null"));
      return NULL;
    }

  node = json_object_get_member (object, "metadata");
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    metadata = NULL;
  else if (JSON_NODE_HOLDS_OBJECT (node))
    metadata = member_source (text, len, "metadata", node);
  else if (json_node_get_value_type (node) == G_TYPE_STRING)
    metadata = g_strdup (json_node_get_string (node));
  else
    {
      line_error (error, line_number, _("“metadata” is neither an object, a string nor null"));
      return NULL;
    }

  node = json_object_get_member (object, "data_base64");
  if (node != NULL)
    {
      gsize data_len = 0;
      guchar *bytes;

      if (json_node_get_value_type (node) != G_TYPE_STRING ||
          json_object_has_member (object, "data"))
        {
          line_error (error, line_number, _("“data_base64” is not a string, or “data” is there too"));
          return NULL;
        }
      bytes = g_base64_decode (json_node_get_string (node), &data_len);
      data = g_bytes_new_take (bytes, data_len);
    }
  else if ((node = json_object_get_member (object, "data")) != NULL)
    {
      char *text_data = member_source (text, len, "data", node);

      data = g_bytes_new_take (text_data, strlen (text_data));
    }
  else
    {
      line_error (error, line_number, _("Neither “data” nor “data_base64”"));
      return NULL;
    }

  node = json_object_get_member (object, "erased");
  if (node != NULL && json_node_get_value_type (node) == G_TYPE_BOOLEAN &&
      json_node_get_boolean (node))
    flags = ES_STORED_EVENT_FLAGS_ERASED;
  return es_stored_event_new_full (stream_id, 0, version, time, event_type, data, key, metadata,
                                   flags);
}

static gint64
import_batch (EsStorageHandle  *storage,
              GPtrArray        *batch,
              GArray           *lines,
              GCancellable     *cancellable,
              GError          **error)
{
  guint failed = 0;
  g_autoptr(GError) local_error = NULL;
  gint64 stored;

  if (batch->len == 0)
    return 0;
  stored = es_storage_handle_import_events (storage, (EsStoredEvent * const *) batch->pdata,
                                            batch->len, &failed, cancellable, &local_error);
  if (stored < 0)
    {
      if (failed < lines->len && !g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_autofree char *where =
            g_strdup_printf (/* Translators: %llu is a line number */
                             _("Line %llu"),
                             (unsigned long long) g_array_index (lines, guint64, failed));

          g_prefix_error (&local_error, "%s: ", where);
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return -1;
    }
  g_ptr_array_set_size (batch, 0);
  g_array_set_size (lines, 0);
  return stored;
}

/**
 * es_stream_factory_import_events:
 * @self: an [class@Es.StreamFactory]
 * @input: JSON Lines, as [method@Es.StreamFactory.export_events] writes them
 * @flags: %ES_IMPORT_FLAGS_NONE
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope call) (closure progress_data):
 *   called as the import progresses, with the bytes read and the size of
 *   @input (-1 when @input cannot tell it)
 * @progress_data: data for @progress_callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Reads events exported by [method@Es.StreamFactory.export_events] and stores
 * them with their stream ids, versions, idempotency keys, timestamps,
 * metadata, data and erasure. They get new sequence ids, in the order of
 * the lines. Empty lines are skipped.
 *
 * The import reads a line at a time and stores the events in batches of
 * 1,000 lines, each batch one transaction: memory stays flat whatever the
 * size of @input. Each event must continue its stream exactly (the
 * stream's version + 1, or any version for a stream never written);
 * an event whose version is already stored is skipped when the stored
 * event is identical (same type, data, idempotency key and metadata), so
 * importing a file twice, or again after a failure, is harmless and
 * resumes where the failure stopped.
 *
 * On error, the batches before the one that failed stay committed, and
 * nothing of the batch that failed is: a malformed line fails with
 * %ES_ERROR_INVALID_ARGUMENT, a conflict with a stored event (another
 * event at that version, a gap) with %ES_ERROR_WRONG_EXPECTED_VERSION,
 * both naming the line number (from 1) and what is wrong.
 *
 * A backend without imports fails with %G_IO_ERROR_NOT_SUPPORTED before
 * reading anything.
 *
 * Returns: the number of events stored (identical ones skipped are not
 *   counted), or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_factory_import_events (EsStreamFactory        *self,
                                 GInputStream           *input,
                                 EsImportFlags           flags,
                                 GCancellable           *cancellable,
                                 GFileProgressCallback   progress_callback,
                                 gpointer                progress_data,
                                 GError                **error)
{
  EsStorageHandle *storage;
  g_autoptr(GDataInputStream) lines_in = NULL;
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GPtrArray) batch = NULL;
  g_autoptr(GArray) lines = NULL;
  guint64 line_number = 0;
  goffset bytes_read = 0;
  goffset total = -1;
  gint64 stored = 0;

  g_return_val_if_fail (ES_IS_STREAM_FACTORY (self), -1);
  g_return_val_if_fail (G_IS_INPUT_STREAM (input), -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (!operation_usable (self, cancellable, error))
    return -1;
  storage = es_stream_factory_get_storage (self);
  if (ES_STORAGE_HANDLE_GET_IFACE (storage)->import_events == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   /* Translators: %s is a backend's type name */
                   _("Storage backend %s does not support imports"),
                   G_OBJECT_TYPE_NAME (storage));
      return -1;
    }

  if (progress_callback != NULL && G_IS_FILE_INPUT_STREAM (input))
    {
      g_autoptr(GFileInfo) info =
        g_file_input_stream_query_info (G_FILE_INPUT_STREAM (input),
                                        G_FILE_ATTRIBUTE_STANDARD_SIZE, cancellable, NULL);
      if (info != NULL && g_file_info_has_attribute (info, G_FILE_ATTRIBUTE_STANDARD_SIZE))
        total = g_file_info_get_size (info);
    }
  if (progress_callback != NULL)
    progress_callback (0, total, progress_data);

  lines_in = g_data_input_stream_new (input);
  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (lines_in), FALSE);
  g_data_input_stream_set_newline_type (lines_in, G_DATA_STREAM_NEWLINE_TYPE_LF);
  g_buffered_input_stream_set_buffer_size (G_BUFFERED_INPUT_STREAM (lines_in), 64 * 1024);
  parser = json_parser_new_immutable ();
  batch = g_ptr_array_new_with_free_func (g_object_unref);
  lines = g_array_new (FALSE, FALSE, sizeof (guint64));

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      g_autofree char *line = NULL;
      gsize len = 0;
      EsStoredEvent *event;
      gint64 n;

      line = g_data_input_stream_read_line (lines_in, &len, cancellable, &local_error);
      if (line == NULL && local_error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return -1;
        }
      if (line == NULL)
        break;
      line_number++;
      bytes_read += (goffset) len + 1;
      if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
      if (len == 0)
        continue;

      event = parse_line (parser, line, len, line_number, error);
      if (event == NULL)
        return -1;
      g_ptr_array_add (batch, event);
      g_array_append_val (lines, line_number);

      if (batch->len < IMPORT_BATCH)
        continue;
      n = import_batch (storage, batch, lines, cancellable, error);
      if (n < 0)
        return -1;
      stored += n;
      if (progress_callback != NULL)
        progress_callback (bytes_read, total, progress_data);
    }

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return -1;
  {
    gint64 n = import_batch (storage, batch, lines, cancellable, error);
    if (n < 0)
      return -1;
    stored += n;
  }
  if (progress_callback != NULL)
    progress_callback (bytes_read, total < 0 ? total : MAX (total, bytes_read), progress_data);
  (void) flags;

  return stored;
}

/**
 * es_stream_factory_import_events_async:
 * @self: an [class@Es.StreamFactory]
 * @input: JSON Lines, as [method@Es.StreamFactory.export_events] writes them
 * @flags: %ES_IMPORT_FLAGS_NONE
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @progress_callback: (nullable) (scope notified) (closure progress_data)
 *   (destroy progress_data_destroy): called in the thread-default main
 *   context of the caller as the import progresses
 * @progress_data: data for @progress_callback
 * @progress_data_destroy: (nullable): frees @progress_data once the
 *   import is over
 * @callback: (scope async) (closure user_data): called when the import is
 *   done
 * @user_data: data for @callback
 *
 * Starts [method@Es.StreamFactory.import_events] without blocking. @input is
 * read from another thread meanwhile: do not use it until @callback.
 *
 * Since: 0.2
 */
void
es_stream_factory_import_events_async (EsStreamFactory        *self,
                                       GInputStream           *input,
                                       EsImportFlags           flags,
                                       GCancellable           *cancellable,
                                       GFileProgressCallback   progress_callback,
                                       gpointer                progress_data,
                                       GDestroyNotify          progress_data_destroy,
                                       GAsyncReadyCallback     callback,
                                       gpointer                user_data)
{
  Op *op;

  g_return_if_fail (ES_IS_STREAM_FACTORY (self));
  g_return_if_fail (G_IS_INPUT_STREAM (input));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  op = g_new0 (Op, 1);
  op->kind = OP_IMPORT;
  op->flags = flags;
  op->input = g_object_ref (input);
  run_op (self, op, progress_callback, progress_data, progress_data_destroy,
          es_stream_factory_import_events_async, cancellable, callback, user_data);
}

/**
 * es_stream_factory_import_events_finish:
 * @self: an [class@Es.StreamFactory]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.StreamFactory.import_events_async].
 *
 * Returns: the number of events stored, or -1 on error
 *
 * Since: 0.2
 */
gint64
es_stream_factory_import_events_finish (EsStreamFactory  *self,
                                        GAsyncResult     *result,
                                        GError          **error)
{
  gint64 n = -1;

  g_return_val_if_fail (check_task (self, result, es_stream_factory_import_events_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  if (!_es_task_propagate_int64 (G_TASK (result), &n, error))
    return -1;
  return n;
}
