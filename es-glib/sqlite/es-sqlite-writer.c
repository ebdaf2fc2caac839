/* es-sqlite-writer.c: the SQLite backend's writes: the jobs the
 * shared write queue (es-glib/backend/es-write-queue.c) runs on its writer
 * thread, which owns the write connection: appends and snapshots, run in
 * groups of one transaction each ("group commit"), and the storage handle's
 * write methods that queue them.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-sqlite-private.h"

/* Jobs the writer thread commits in one transaction at most. */
#define WRITER_MAX_GROUP 512

/* ---------------------------------------------------------------------- *
 * Writer                                                                  *
 * ---------------------------------------------------------------------- */

typedef enum
{
  JOB_APPEND,
  JOB_SAVE_SNAPSHOT,
  JOB_SET_MAX_PAGE_COUNT,  /* tests only: job->version is the limit */
} JobKind;

/* One write, queued to the writer thread (es-write-queue-private.h).
 *
 * A synchronous caller builds its job on its own stack, with pointers to
 * its own arguments (it blocks until the job is done, so they outlive it).
 * An asynchronous job is allocated, refs its events and copies its stream
 * id (the caller returns at once), and carries the GTask the queue
 * completes. */
typedef struct
{
  EsWriteJob                base;              /* first: cancellable, task, result */
  JobKind                   kind;

  /* Input. */
  const char               *stream_id;         /* @all snapshots: ALL_STREAM_KEY */
  gint64                    expected_version;  /* append */
  EsCandidateEvent * const *events;            /* append */
  guint                     n_events;          /* append */
  const char               *projection_name;   /* snapshot */
  gint64                    version;           /* snapshot */
  GBytes                   *state;             /* snapshot */
} Job;

/* What the writer thread reuses: one prepared statement each. */
typedef enum
{
  W_BEGIN,
  W_COMMIT,
  W_ROLLBACK,
  W_SAVEPOINT,
  W_RELEASE,
  W_ROLLBACK_TO,
  W_MAX_VERSION,
  W_KEY_STORED,
  W_INSERT,
  W_SAVE_SNAPSHOT,
  N_WRITER_STMTS
} WriterStmt;

static const char * const writer_sql[N_WRITER_STMTS] = {
  [W_BEGIN] = "BEGIN IMMEDIATE",
  [W_COMMIT] = "COMMIT",
  [W_ROLLBACK] = "ROLLBACK",
  [W_SAVEPOINT] = "SAVEPOINT job",
  [W_RELEASE] = "RELEASE job",
  [W_ROLLBACK_TO] = "ROLLBACK TO job",
  [W_MAX_VERSION] = "SELECT max(version) FROM events WHERE stream_id = ?",
  /* Served by the unique (stream_id, idempotency_key) index. */
  [W_KEY_STORED] = "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = ?"
                   " AND idempotency_key = ?)",
  /* A stored idempotency key makes the INSERT do nothing (no row
   * changed) rather than fail: the unique index checks it anyway, so no
   * lookup of its own is needed. A taken version still fails. */
  [W_INSERT] = "INSERT INTO events (stream_id, version, idempotency_key, event_type,"
               " timestamp, data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
               " ON CONFLICT (stream_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
               " DO NOTHING",
  [W_SAVE_SNAPSHOT] = "INSERT OR REPLACE INTO snapshots (stream_id, projection_name,"
                      " version, state, timestamp) VALUES (?, ?, ?, ?, ?)",
};

/* What the writer thread works with: the write connection and its
 * statements, the user data of the storage's write queue, which the
 * writer thread owns once it runs (es-write-queue-private.h). */
typedef struct
{
  EsConnection *conn;      /* (owned) the write connection; only the writer
                            * thread touches it once the thread runs */
  sqlite3_stmt *stmts[N_WRITER_STMTS];  /* (owned) on conn */
} EsWriter;

/* Closes the write connection: statements first, as sqlite3_close() wants. */
static void
writer_close_connection (EsWriter *writer)
{
  guint i;

  for (i = 0; i < N_WRITER_STMTS; i++)
    g_clear_pointer (&writer->stmts[i], sqlite3_finalize);
  g_clear_pointer (&writer->conn, _es_sqlite_connection_close);
}

static void
writer_close_connection_cb (gpointer data)
{
  writer_close_connection (data);
}

static void
writer_free (gpointer data)
{
  EsWriter *writer = data;

  writer_close_connection (writer);
  g_free (writer);
}

/* Takes @conn; prepares every statement the writer uses, once. */
static EsWriter *
writer_new (EsConnection  *conn,
            GError       **error)
{
  EsWriter *writer = g_new0 (EsWriter, 1);
  guint i;

  writer->conn = conn;

  for (i = 0; i < N_WRITER_STMTS; i++)
    {
      int rc = sqlite3_prepare_v3 (conn->db, writer_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                   &writer->stmts[i], NULL);

      if (rc != SQLITE_OK)
        {
          _es_sqlite_connection_set_error (conn, rc, _("Opening the database"), error);
          writer_free (writer);
          return NULL;
        }
    }

  return writer;
}

/* Runs a statement that returns no row (BEGIN, COMMIT, SAVEPOINT...). */
static gboolean
writer_exec (EsWriter    *writer,
             WriterStmt   which,
             const char  *operation,
             GError     **error)
{
  sqlite3_stmt *stmt = writer->stmts[which];
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  sqlite3_reset (stmt);
  return rc == SQLITE_DONE;
}

/* Abandons the open transaction, if SQLite has not already done so (it
 * rolls back by itself after some errors: I/O, disk full...). */
static void
writer_rollback (EsWriter *writer)
{
  g_autoptr(GError) error = NULL;

  if (sqlite3_get_autocommit (writer->conn->db))
    return;
  if (!writer_exec (writer, W_ROLLBACK, _("Rolling back"), &error))
    g_warning ("%s", error->message);
}

/* Inserts one event; returns SQLite's result code (SQLITE_DONE on
 * success), leaving the error message in the connection. */
static int
writer_insert (EsWriter         *writer,
               const char       *stream_id,
               gint64            version,
               const char       *key,
               EsCandidateEvent *event,
               gint64            timestamp)
{
  sqlite3_stmt *stmt = writer->stmts[W_INSERT];
  int rc;

  /* Everything bound lives in the job until the step is done: no copy. A
   * failed bind (a value over SQLite's length limit) must not go unseen, or
   * the previous event's value would be inserted. */
  if ((rc = sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 2, version)) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 3, key, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 4, es_candidate_event_get_event_type (event), -1,
                               SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 5, timestamp)) == SQLITE_OK &&
      (rc = _es_sqlite_bind_bytes (stmt, 6, es_candidate_event_get_data (event))) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 7, es_candidate_event_get_metadata (event), -1,
                               SQLITE_STATIC)) == SQLITE_OK)
    rc = sqlite3_step (stmt);

  /* Every parameter is bound again for the next event: a reset is enough
   * here; writer_append() clears the bindings once the job is done. */
  sqlite3_reset (stmt);
  return rc;
}

/* Whether every event of @job has an idempotency key already stored in
 * its stream: then the append is the retry of one that was written. */
static gboolean
writer_all_stored (EsWriter  *writer,
                   Job       *job,
                   gboolean  *out_all_stored,
                   GError   **error)
{
  sqlite3_stmt *stmt = writer->stmts[W_KEY_STORED];
  guint i;

  *out_all_stored = FALSE;
  for (i = 0; i < job->n_events; i++)
    {
      const char *key = es_candidate_event_get_idempotency_key (job->events[i]);
      gboolean stored;
      int rc;

      if (key == NULL)
        return TRUE;

      sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, key, -1, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
      stored = rc == SQLITE_ROW && sqlite3_column_int (stmt, 0) != 0;
      if (rc != SQLITE_ROW)
        _es_sqlite_connection_set_error (writer->conn, rc, _("Appending events"), error);
      _es_sqlite_stmt_done (stmt);
      if (rc != SQLITE_ROW)
        return FALSE;
      if (!stored)
        return TRUE;
    }

  *out_all_stored = TRUE;
  return TRUE;
}

/* The body of an append, inside the group's transaction (and the job's
 * savepoint): the idempotency lookups, the expected-version check, the
 * inserts (see es_storage_handle_append() for the order). On failure the
 * caller undoes what was written. */
static gboolean
writer_append (EsWriter  *writer,
               Job       *job,
               GError   **error)
{
  sqlite3_stmt *stmt = writer->stmts[W_MAX_VERSION];
  gint64 timestamp = g_get_real_time ();
  gint64 version = 0;
  guint i;
  int rc;

  /* Versions run 1..N without gaps: the stream's version is its largest,
   * found at the end of the (stream_id, version) index; NULL (0) when the
   * stream is empty. */
  sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    version = sqlite3_column_int64 (stmt, 0);
  else
    _es_sqlite_connection_set_error (writer->conn, rc, _("Appending events"), error);
  _es_sqlite_stmt_done (stmt);
  if (rc != SQLITE_ROW)
    return FALSE;

  /* The lookups come first in the contract; looking the keys up only on a
   * mismatch gives the same answers, and spares the lookups otherwise. */
  if (job->expected_version != ES_VERSION_ANY && job->expected_version != version)
    {
      gboolean all_stored;

      if (!writer_all_stored (writer, job, &all_stored, error))
        return FALSE;

      /* Every event is stored: a retry, which succeeds, writing nothing. */
      job->base.out_version = version;
      if (all_stored)
        return TRUE;

      /* The caller learns where the stream is along with the conflict. */
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   /* Translators: the numbers are stream versions, %s a stream id */
                   _("Expected version %lld but stream '%s' is at version %lld"),
                   (long long) job->expected_version, job->stream_id, (long long) version);
      return FALSE;
    }

  for (i = 0; i < job->n_events; i++)
    {
      EsCandidateEvent *event = job->events[i];
      const char *key = es_candidate_event_get_idempotency_key (event);

      rc = writer_insert (writer, job->stream_id, version + 1, key, event, timestamp);
      if (rc != SQLITE_DONE)
        {
          _es_sqlite_connection_set_error (writer->conn, rc, _("Appending events"), error);
          break;
        }

      /* The key is already stored in this stream (or, should the stream
       * layer have let one through, earlier in this batch): the event is
       * skipped, not an error, and takes no version. */
      if (key != NULL && sqlite3_changes (writer->conn->db) == 0)
        continue;
      version++;
    }

  /* Drop the pointers into this job's events. */
  sqlite3_clear_bindings (writer->stmts[W_INSERT]);
  if (i < job->n_events)
    return FALSE;

  job->base.out_version = version;
  return TRUE;
}

static gboolean
writer_save_snapshot (EsWriter  *writer,
                      Job       *job,
                      GError   **error)
{
  sqlite3_stmt *stmt = writer->stmts[W_SAVE_SNAPSHOT];
  int rc;

  /* INSERT OR REPLACE: the (stream, projection) primary key makes it
   * replace the previous snapshot. */
  if ((rc = sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 2, job->projection_name, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 3, job->version)) == SQLITE_OK &&
      (rc = _es_sqlite_bind_bytes (stmt, 4, job->state)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 5, g_get_real_time ())) == SQLITE_OK)
    rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, _("Saving a snapshot"), error);
  _es_sqlite_stmt_done (stmt);
  return rc == SQLITE_DONE;
}

/* Tests only (see _es_sqlite_storage_set_max_page_count()): a per-connection
 * setting, so it runs on the writer thread, the write connection's owner.
 * Not transactional: it stays in force whatever the group does. */
static gboolean
writer_set_max_page_count (EsWriter  *writer,
                           Job       *job,
                           GError   **error)
{
  g_autofree char *sql = g_strdup_printf ("PRAGMA max_page_count = %" G_GINT64_FORMAT,
                                          job->version);

  return _es_sqlite_connection_exec (writer->conn, sql, "Setting the page limit", error);
}

/* Fails @job with G_IO_ERROR_CANCELLED if its cancellable was cancelled. */
static gboolean
job_cancelled (Job *job)
{
  if (!g_cancellable_is_cancelled (job->base.cancellable))
    return FALSE;

  g_clear_error (&job->base.error);
  g_cancellable_set_error_if_cancelled (job->base.cancellable, &job->base.error);
  return TRUE;
}

/* Runs one job inside the group's transaction; FALSE with job->base.error set
 * when it failed, and then its writes must be undone. */
static gboolean
writer_run_job (EsWriter *writer,
                Job      *job)
{
  gboolean ok;

  if (job->kind == JOB_APPEND)
    ok = writer_append (writer, job, &job->base.error);
  else if (job->kind == JOB_SET_MAX_PAGE_COUNT)
    ok = writer_set_max_page_count (writer, job, &job->base.error);
  else
    ok = writer_save_snapshot (writer, job, &job->base.error);

  /* Cancelled while it ran: it is still undone, as it is not committed. */
  return ok && !job_cancelled (job);
}

/* Frees an asynchronous job: one block with its events and stream id
 * (see _es_sqlite_storage_append_async()); the task is already gone. */
static void
job_free_async (EsWriteJob *base)
{
  Job *job = (Job *) base;
  guint i;

  for (i = 0; i < job->n_events; i++)
    g_object_unref (job->events[i]);
  g_clear_error (&job->base.error);
  g_free (job);
}

/* Runs a group of jobs in one transaction ("group commit"): appends queued
 * while the previous group committed share one commit, which is where a
 * write's time goes. Each job runs inside its own savepoint, so one that
 * fails (a wrong expected version, a cancellation, a constraint) is rolled
 * back alone and reports its own error while the others commit. No job is
 * reported successful before the COMMIT is; if the COMMIT fails, every job
 * fails.
 *
 * A group of one job, the usual case when a single thread writes, needs no
 * savepoint: when it fails, the whole transaction is rolled back. */
static void
writer_run_group (EsWriteJob **base_jobs,
                  guint        n_jobs,
                  GError     **out_group_error,
                  gpointer     user_data)
{
  EsWriter *writer = user_data;
  Job **jobs = (Job **) base_jobs;
  g_autoptr(GError) group_error = NULL;
  gboolean savepoints = n_jobs > 1;
  const char *operation = _("Writing to the database");
  guint i;

  if (!writer_exec (writer, W_BEGIN, operation, &group_error))
    goto complete;

  for (i = 0; i < n_jobs; i++)
    {
      Job *job = jobs[i];

      /* Cancelled before the writer got to it: not written at all. */
      if (job_cancelled (job))
        continue;

      if (savepoints && !writer_exec (writer, W_SAVEPOINT, operation, &group_error))
        break;

      if (writer_run_job (writer, job))
        {
          if (savepoints && !writer_exec (writer, W_RELEASE, operation, &group_error))
            break;
          continue;
        }

      /* The job failed. Some errors (I/O, disk full) make SQLite roll the
       * whole transaction back itself: then nothing of the group stands. */
      if (sqlite3_get_autocommit (writer->conn->db))
        {
          group_error = g_error_copy (job->base.error);
          goto complete;
        }

      if (!savepoints)
        {
          writer_rollback (writer);
          goto complete;
        }

      /* ROLLBACK TO undoes the job's writes but keeps the savepoint open. */
      if (!writer_exec (writer, W_ROLLBACK_TO, operation, &group_error) ||
          !writer_exec (writer, W_RELEASE, operation, &group_error))
        break;
    }

  if (group_error == NULL && writer_exec (writer, W_COMMIT, operation, &group_error))
    goto complete;

  writer_rollback (writer);

complete:
  /* Every job without an error of its own gets this one: not written. */
  if (group_error != NULL)
    g_propagate_error (out_group_error, g_steal_pointer (&group_error));
}

/* Queues a synchronous job and blocks until the writer has done it. */
static gboolean
writer_run_sync (EsWriteQueue  *queue,
                 Job           *job,
                 GError       **error)
{
  if (!_es_write_queue_run_sync (queue, &job->base))
    {
      _es_sqlite_set_closed_error (error);
      return FALSE;
    }

  if (job->base.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&job->base.error));
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * EsStorageHandle                                                         *
 * ---------------------------------------------------------------------- */

gboolean
_es_sqlite_storage_append (EsStorageHandle          *handle,
                           const char               *stream_id,
                           gint64                    expected_version,
                           EsCandidateEvent * const *events,
                           guint                     n_events,
                           gint64                   *out_version,
                           GCancellable             *cancellable,
                           GError                  **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  GError *local_error = NULL;
  Job job = { 0, };

  if (self->writer == NULL)
    {
      if (self->read_only)
        _es_sqlite_set_read_only_error (self->where, error);
      else
        _es_sqlite_set_closed_error (error);
      return FALSE;
    }

  /* The caller blocks until the job is done: the job points to its
   * arguments instead of copying them. */
  job.kind = JOB_APPEND;
  job.stream_id = stream_id;
  job.expected_version = expected_version;
  job.events = events;
  job.n_events = n_events;
  job.base.cancellable = cancellable;
  job.base.out_version = -1;

  if (!writer_run_sync (self->writer, &job, &local_error))
    {
      /* With a conflict: the version it found (-1 if unknown). */
      if (out_version != NULL &&
          g_error_matches (local_error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        *out_version = job.base.out_version;
      g_propagate_error (error, local_error);
      return FALSE;
    }

  if (out_version != NULL)
    *out_version = job.base.out_version;
  return TRUE;
}

void
_es_sqlite_storage_append_async (EsStorageHandle          *handle,
                                 const char               *stream_id,
                                 gint64                    expected_version,
                                 EsCandidateEvent * const *events,
                                 guint                     n_events,
                                 GCancellable             *cancellable,
                                 GAsyncReadyCallback       callback,
                                 gpointer                  user_data)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  EsCandidateEvent **job_events;
  gsize events_size = n_events * sizeof (EsCandidateEvent *);
  char *job_stream_id;
  Job *job;
  guint i;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, _es_sqlite_storage_append_async);
  /* A write that committed is reported as done even if the cancellable
   * fires afterwards: GTask must not turn it into G_IO_ERROR_CANCELLED. */
  g_task_set_check_cancellable (task, FALSE);

  if (self->writer == NULL)
    {
      if (self->read_only)
        _es_sqlite_set_read_only_error (self->where, &error);
      else
        _es_sqlite_set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* The caller may free its arguments as soon as this returns: one block
   * holds the job, refs on the events and a copy of the stream id. */
  job = g_malloc0 (sizeof (Job) + events_size + strlen (stream_id) + 1);
  job_events = (EsCandidateEvent **) (job + 1);
  job_stream_id = (char *) job_events + events_size;
  for (i = 0; i < n_events; i++)
    job_events[i] = g_object_ref (events[i]);
  strcpy (job_stream_id, stream_id);

  job->kind = JOB_APPEND;
  job->stream_id = job_stream_id;
  job->expected_version = expected_version;
  job->events = job_events;
  job->n_events = n_events;
  job->base.cancellable = g_task_get_cancellable (task);
  job->base.out_version = -1;
  job->base.task = g_object_ref (task);

  if (!_es_write_queue_submit (self->writer, &job->base))
    {
      g_clear_object (&job->base.task);
      job_free_async (&job->base);
      _es_sqlite_set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
    }
}

gboolean
_es_sqlite_storage_append_finish (EsStorageHandle  *handle,
                                  GAsyncResult     *result,
                                  gint64           *out_version,
                                  GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, handle), FALSE);

  return _es_append_task_propagate (G_TASK (result), out_version, error);
}

gboolean
_es_sqlite_storage_save_snapshot (EsStorageHandle  *handle,
                                  const char       *stream_id,
                                  const char       *projection_name,
                                  gint64            version,
                                  GBytes           *state,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  Job job = { 0, };

  if (self->writer == NULL)
    {
      if (self->read_only)
        _es_sqlite_set_read_only_error (self->where, error);
      else
        _es_sqlite_set_closed_error (error);
      return FALSE;
    }

  job.kind = JOB_SAVE_SNAPSHOT;
  job.stream_id = stream_id != NULL ? stream_id : ALL_STREAM_KEY;
  job.projection_name = projection_name;
  job.version = version;
  job.state = state;
  job.base.cancellable = cancellable;

  return writer_run_sync (self->writer, &job, error);
}

/* Starts the writer thread on @conn (taken: the writer thread owns it
 * from now on, and closes it on its way out). */
EsWriteQueue *
_es_sqlite_writer_start (EsConnection  *conn,
                         GError       **error)
{
  EsWriter *writer;
  EsWriteQueue *queue;

  writer = writer_new (conn, error);
  if (writer == NULL)
    return NULL;

  queue = _es_write_queue_new (WRITER_MAX_GROUP, writer_run_group, job_free_async,
                               writer_close_connection_cb, writer, writer_free);
  if (!_es_write_queue_start (queue, "es-sqlite-writer", error))
    {
      _es_write_queue_unref (queue);
      return NULL;
    }
  return queue;
}

gboolean
_es_sqlite_storage_set_max_page_count (EsSqliteStorage  *self,
                                       guint64           max_page_count,
                                       GError          **error)
{
  Job job = { 0, };

  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), FALSE);
  g_return_val_if_fail (max_page_count <= G_MAXINT64, FALSE);

  if (self->writer == NULL)
    {
      _es_sqlite_set_closed_error (error);
      return FALSE;
    }

  job.kind = JOB_SET_MAX_PAGE_COUNT;
  job.version = (gint64) max_page_count;
  return writer_run_sync (self->writer, &job, error);
}
