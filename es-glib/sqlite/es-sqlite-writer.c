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
  JOB_DELETE,              /* job->version: the expected version */
  JOB_TRUNCATE,            /* job->version: before this version */
  JOB_ERASE,               /* job->version: the event's */
  JOB_SET_RETENTION,       /* stream_id NULL: the database-wide policy */
  JOB_SWEEP,               /* one batch of a sweep */
  JOB_COMPACT,             /* runs outside any transaction */
  JOB_SAVE_CHECKPOINT,     /* name, stream_id ('@all'), version: the position, state */
  JOB_RESET_SUBSCRIPTION,  /* name, version: the position */
  JOB_DELETE_SUBSCRIPTION, /* name */
  JOB_IMPORT,              /* stored_events, n_events */
  JOB_ADD_METADATA_INDEX,     /* name: the metadata path */
  JOB_REMOVE_METADATA_INDEX,  /* name: the metadata path */
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
  gint64                    version;           /* snapshot, life cycle */
  GBytes                   *state;             /* snapshot */
  EsDeleteFlags             delete_flags;      /* delete */
  GTimeSpan                 max_age;           /* set_retention */
  gint64                    max_count;         /* set_retention */
  gint64                    now;               /* sweep */
  const char               *sweep_from;        /* sweep: first stream id to look at */
  const char               *name;              /* subscriptions */
  EsStoredEvent * const    *stored_events;     /* import */

  /* Output of the life-cycle jobs. */
  gint64                    removed;           /* events removed */
  gboolean                  more;              /* sweep: stopped at the batch limit */
  gboolean                  has_age_policy;    /* sweep */
  char                     *sweep_next;        /* (owned) sweep: where the next batch starts */
  guint                     failed_index;      /* import: the event that failed */
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
  W_KEY_STORED,
  W_INSERT,
  W_SAVE_SNAPSHOT,
  W_READ_STREAM,
  W_WRITE_STREAM,
  W_UNDO_INSERT,
  N_WRITER_STMTS
} WriterStmt;

static const char * const writer_sql[N_WRITER_STMTS] = {
  [W_BEGIN] = "BEGIN IMMEDIATE",
  [W_COMMIT] = "COMMIT",
  [W_ROLLBACK] = "ROLLBACK",
  [W_SAVEPOINT] = "SAVEPOINT job",
  [W_RELEASE] = "RELEASE job",
  [W_ROLLBACK_TO] = "ROLLBACK TO job",
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
  /* Every append, delete... reads and rewrites its stream's row, with the
   * database-wide policy (es-sqlite-schema.c). */
  [W_READ_STREAM] = "SELECT s.version, s.event_count, s.first_version, s.first_timestamp,"
                    " s.last_timestamp, s.state, s.max_age, s.max_count,"
                    " (SELECT value FROM settings WHERE name = 'max_age'),"
                    " (SELECT value FROM settings WHERE name = 'max_count')"
                    " FROM (SELECT 1) LEFT JOIN streams AS s ON s.stream_id = ?",
  [W_WRITE_STREAM] = "INSERT INTO streams (stream_id, version, event_count, first_version,"
                     " first_timestamp, last_timestamp, state, max_age, max_count)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                     " ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,"
                     " event_count = excluded.event_count,"
                     " first_version = excluded.first_version,"
                     " first_timestamp = excluded.first_timestamp,"
                     " last_timestamp = excluded.last_timestamp, state = excluded.state,"
                     " max_age = excluded.max_age, max_count = excluded.max_count",
  /* Undoes the INSERT just stepped (see writer_append_one()). */
  [W_UNDO_INSERT] = "DELETE FROM events WHERE sequence_id = ?",
};

/* What the writer thread works with: the write connection and its
 * statements, the user data of the storage's write queue, which the
 * writer thread owns once it runs (es-write-queue-private.h). */
typedef struct
{
  EsConnection *conn;      /* (owned) the write connection; once the thread
                            * runs, only whoever runs the queue's jobs (the
                            * writer thread, or a synchronous caller that
                            * claimed it) touches it, one at a time */
  sqlite3_stmt *stmts[N_WRITER_STMTS];  /* (owned) on conn */
  gboolean      checkpoint_wanted;      /* a job removed data: truncate the WAL
                                         * after the commit */
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

/* The expected-version check of an append to a stream at @version. TRUE
 * with *@out_proceed set when the append goes on; TRUE without it when
 * every event is already stored (a retry, which succeeds, writing
 * nothing); FALSE on a conflict (the caller learns where the stream is
 * along with it) or a failed lookup. */
static gboolean
writer_check_expected (EsWriter  *writer,
                       Job       *job,
                       gint64     version,
                       gboolean  *out_proceed,
                       GError   **error)
{
  gboolean all_stored;

  *out_proceed = job->expected_version == ES_VERSION_ANY || job->expected_version == version;
  if (*out_proceed)
    return TRUE;

  if (!writer_all_stored (writer, job, &all_stored, error))
    return FALSE;
  job->base.out_version = version;
  if (all_stored)
    return TRUE;

  g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
               /* Translators: the numbers are stream versions, %s a stream id */
               _("Expected version %lld but stream '%s' is at version %lld"),
               (long long) job->expected_version, job->stream_id, (long long) version);
  return FALSE;
}

/* ---------------------------------------------------------------------- *
 * The streams table and the life cycle (schema version 2)                 *
 * ---------------------------------------------------------------------- */

/* A stream's row of the streams table, as the writer reads and rewrites
 * it inside a transaction, with the database-wide policy read along. */
typedef struct
{
  gboolean      exists;
  gint64        version;
  gint64        event_count;
  gint64        first_version;
  gint64        first_timestamp;
  gint64        last_timestamp;
  EsStreamState state;
  GTimeSpan     max_age;
  gint64        max_count;
  GTimeSpan     db_max_age;
  gint64        db_max_count;
} StreamRow;

/* A statement of the write connection's cache: each is stepped and reset
 * before the next is taken (the cache may be emptied when it fills). */
static sqlite3_stmt *
writer_stmt (EsWriter    *writer,
             const char  *sql,
             const char  *operation,
             GError     **error)
{
  return _es_sqlite_connection_get_stmt (writer->conn, sql, operation, error);
}

/* Steps a statement that returns no row, then resets it. */
static gboolean
writer_step_done (EsWriter      *writer,
                  sqlite3_stmt  *stmt,
                  const char    *operation,
                  GError       **error)
{
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  _es_sqlite_stmt_done (stmt);
  return rc == SQLITE_DONE;
}

/* Runs a query returning one integer (NULL, or no row: @fallback). */
static gboolean
writer_query_int64 (EsWriter    *writer,
                    const char  *sql,
                    const char  *text,
                    gint64       fallback,
                    gint64      *out_value,
                    const char  *operation,
                    GError     **error)
{
  sqlite3_stmt *stmt = writer_stmt (writer, sql, operation, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  if (text != NULL)
    sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW && sqlite3_column_type (stmt, 0) != SQLITE_NULL)
    *out_value = sqlite3_column_int64 (stmt, 0);
  else
    *out_value = fallback;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  _es_sqlite_stmt_done (stmt);
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/* Runs @sql, which returns no row, with @text as its first parameter and
 * @value as its second, if it has one (a delete or an update of a
 * stream's or a subscription's rows). */
static gboolean
writer_update (EsWriter    *writer,
               const char  *sql,
               const char  *text,
               gint64       value,
               const char  *operation,
               GError     **error)
{
  sqlite3_stmt *stmt = writer_stmt (writer, sql, operation, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
  if (sqlite3_bind_parameter_count (stmt) > 1)
    sqlite3_bind_int64 (stmt, 2, value);
  return writer_step_done (writer, stmt, operation, error);
}

/* Reads @stream_id's row (a stream never written: active, zeros) and the
 * database-wide policy, in one statement. */
static gboolean
writer_read_stream (EsWriter    *writer,
                    const char  *stream_id,
                    StreamRow   *row,
                    const char  *operation,
                    GError     **error)
{
  sqlite3_stmt *stmt;
  int rc;

  stmt = writer->stmts[W_READ_STREAM];

  memset (row, 0, sizeof *row);
  sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      row->exists = sqlite3_column_type (stmt, 0) != SQLITE_NULL;
      row->version = sqlite3_column_int64 (stmt, 0);
      row->event_count = sqlite3_column_int64 (stmt, 1);
      row->first_version = sqlite3_column_int64 (stmt, 2);
      row->first_timestamp = sqlite3_column_int64 (stmt, 3);
      row->last_timestamp = sqlite3_column_int64 (stmt, 4);
      row->state = (EsStreamState) sqlite3_column_int (stmt, 5);
      row->max_age = sqlite3_column_int64 (stmt, 6);
      row->max_count = sqlite3_column_int64 (stmt, 7);
      row->db_max_age = sqlite3_column_int64 (stmt, 8);
      row->db_max_count = sqlite3_column_int64 (stmt, 9);
    }
  else
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  _es_sqlite_stmt_done (stmt);
  return rc == SQLITE_ROW;
}

static gboolean
writer_write_stream (EsWriter         *writer,
                     const char       *stream_id,
                     const StreamRow  *row,
                     const char       *operation,
                     GError          **error)
{
  sqlite3_stmt *stmt;

  stmt = writer->stmts[W_WRITE_STREAM];

  sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, row->version);
  sqlite3_bind_int64 (stmt, 3, row->event_count);
  sqlite3_bind_int64 (stmt, 4, row->first_version);
  sqlite3_bind_int64 (stmt, 5, row->first_timestamp);
  sqlite3_bind_int64 (stmt, 6, row->last_timestamp);
  sqlite3_bind_int (stmt, 7, (int) row->state);
  sqlite3_bind_int64 (stmt, 8, row->max_age);
  sqlite3_bind_int64 (stmt, 9, row->max_count);
  return writer_step_done (writer, stmt, operation, error);
}

static void
set_tombstoned_error (const char  *stream_id,
                      GError     **error)
{
  g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
               /* Translators: %s is a stream id */
               _("Stream '%s' was deleted for good (tombstoned) and cannot be written to"),
               stream_id);
}

/* Reads the row of @stream_id to write to it: a tombstoned stream cannot
 * be written to. */
static gboolean
writer_read_writable_stream (EsWriter    *writer,
                             const char  *stream_id,
                             StreamRow   *row,
                             const char  *operation,
                             GError     **error)
{
  if (!writer_read_stream (writer, stream_id, row, operation, error))
    return FALSE;
  if (row->state == ES_STREAM_STATE_TOMBSTONED)
    {
      set_tombstoned_error (stream_id, error);
      return FALSE;
    }
  return TRUE;
}

/* The last position used: the largest sequence id of any row (events,
 * tombstones, the position row). */
static gboolean
writer_last_position (EsWriter  *writer,
                      gint64    *out_position,
                      GError   **error)
{
  return writer_query_int64 (writer, "SELECT max(sequence_id) FROM events", NULL, 0,
                             out_position, _("Reading the last position"), error);
}

/* Replaces the position row (see es-sqlite-schema.c) by one at @position. */
static gboolean
writer_set_position_row (EsWriter    *writer,
                         gint64       position,
                         const char  *operation,
                         GError     **error)
{
  sqlite3_stmt *stmt;

  stmt = writer_stmt (writer, "DELETE FROM events WHERE stream_id = '" ES_SQLITE_POSITION_KEY "'",
                      operation, error);
  if (stmt == NULL || !writer_step_done (writer, stmt, operation, error))
    return FALSE;
  if (position <= 0)
    return TRUE;

  stmt = writer_stmt (writer,
                      "INSERT INTO events (sequence_id, stream_id, version, event_type,"
                      " timestamp, data, flags) VALUES (?, '" ES_SQLITE_POSITION_KEY "', 0,"
                      " '$position', ?, x'', " G_STRINGIFY (ES_SQLITE_FLAG_POSITION) ")",
                      operation, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, position);
  sqlite3_bind_int64 (stmt, 2, g_get_real_time ());
  return writer_step_done (writer, stmt, operation, error);
}

/* After a removal: if the newest rows went, the position row keeps
 * @old_last, so that the next event does not take a sequence id used
 * before. */
static gboolean
writer_keep_position (EsWriter    *writer,
                      gint64       old_last,
                      const char  *operation,
                      GError     **error)
{
  gint64 last = 0;

  if (!writer_last_position (writer, &last, error))
    return FALSE;
  if (last >= old_last)
    return TRUE;
  return writer_set_position_row (writer, old_last, operation, error);
}

/* Removes @stream_id's events with a version smaller than @before (its
 * stored events are a run of versions: this removes a prefix) and the
 * snapshots they leave stale; updates @row (the caller writes it). */
static gboolean
writer_remove_prefix (EsWriter    *writer,
                      const char  *stream_id,
                      StreamRow   *row,
                      gint64       before,
                      const char  *operation,
                      gint64      *out_removed,
                      GError     **error)
{
  sqlite3_stmt *stmt;
  gint64 old_last = 0;
  gint64 removed;
  int rc;

  *out_removed = 0;
  if (row->event_count == 0 || before <= row->first_version)
    return TRUE;

  /* Every event of the stream goes: the newest of the database may be
   * among them. */
  if (before > row->version && !writer_last_position (writer, &old_last, error))
    return FALSE;

  if (!writer_update (writer, "DELETE FROM events WHERE stream_id = ? AND version < ?",
                      stream_id, before, operation, error))
    return FALSE;
  removed = sqlite3_changes (writer->conn->db);

  row->event_count = MAX (row->event_count - removed, 0);
  row->first_version = 0;
  row->first_timestamp = 0;
  if (row->event_count > 0)
    {
      stmt = writer_stmt (writer,
                          "SELECT version, timestamp FROM events WHERE stream_id = ?"
                          " AND flags < " G_STRINGIFY (ES_SQLITE_FLAGS_MARKERS)
                          " ORDER BY version LIMIT 1",
                          operation, error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          row->first_version = sqlite3_column_int64 (stmt, 0);
          row->first_timestamp = sqlite3_column_int64 (stmt, 1);
        }
      else if (rc == SQLITE_DONE)
        row->event_count = 0;
      else
        _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
      _es_sqlite_stmt_done (stmt);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return FALSE;
    }
  if (row->event_count == 0)
    row->last_timestamp = 0;

  /* A snapshot stays while every event after it is stored: the removed
   * ones go up to before - 1. */
  if (!writer_update (writer, "DELETE FROM snapshots WHERE stream_id = ? AND version < ?",
                      stream_id, MIN (before, row->version + 1) - 1, operation, error))
    return FALSE;

  if (old_last > 0 && !writer_keep_position (writer, old_last, operation, error))
    return FALSE;

  *out_removed = removed;
  if (removed > 0)
    writer->checkpoint_wanted = TRUE;
  return TRUE;
}

/* The smaller limit that is not 0 (no limit). */
static gint64
effective_limit (gint64 a,
                 gint64 b)
{
  if (a <= 0)
    return MAX (b, 0);
  if (b <= 0)
    return a;
  return MIN (a, b);
}

/* Enforces the stream's effective retention policy at @now, removing at
 * most @budget events (its oldest); updates @row. Count keeps the newest
 * @max_count; age removes the oldest events up to the first one that is
 * young enough (timestamps of a stream grow with its versions, unless
 * the clock went back). */
static gboolean
writer_apply_retention (EsWriter    *writer,
                        const char  *stream_id,
                        StreamRow   *row,
                        gint64       now,
                        gint64       budget,
                        const char  *operation,
                        gint64      *out_removed,
                        GError     **error)
{
  gint64 max_age = effective_limit (row->max_age, row->db_max_age);
  gint64 max_count = effective_limit (row->max_count, row->db_max_count);
  gint64 before = row->first_version;
  gint64 limit;

  *out_removed = 0;
  if (row->state != ES_STREAM_STATE_ACTIVE || row->event_count == 0 || budget <= 0)
    return TRUE;

  limit = budget >= G_MAXINT64 - row->first_version ? G_MAXINT64 : row->first_version + budget;

  if (max_count > 0 && row->event_count > max_count)
    before = row->version - max_count + 1;

  if (max_age > 0 && row->first_timestamp < now - max_age)
    {
      sqlite3_stmt *stmt;
      gint64 hi = MIN (limit, row->version + 1);
      gint64 young = hi;
      int rc;

      /* The first event young enough, looking at no more than @budget
       * events (the index walks the stream in version order). */
      stmt = writer_stmt (writer,
                          "SELECT version FROM events WHERE stream_id = ? AND version >= ?"
                          " AND version < ? AND timestamp >= ? ORDER BY version LIMIT 1",
                          operation, error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, MAX (before, row->first_version));
      sqlite3_bind_int64 (stmt, 3, hi);
      sqlite3_bind_int64 (stmt, 4, now - max_age);
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        young = sqlite3_column_int64 (stmt, 0);
      else if (rc != SQLITE_DONE)
        _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
      _es_sqlite_stmt_done (stmt);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return FALSE;
      before = MAX (before, young);
    }

  before = MIN (before, limit);
  return writer_remove_prefix (writer, stream_id, row, before, operation, out_removed, error);
}

static gboolean
writer_delete (EsWriter  *writer,
               Job       *job,
               GError   **error)
{
  const char *operation = _("Deleting a stream");
  gboolean tombstone = (job->delete_flags & ES_DELETE_FLAGS_TOMBSTONE) != 0;
  sqlite3_stmt *stmt;
  StreamRow row;
  gint64 position = 0;

  if (!writer_read_stream (writer, job->stream_id, &row, operation, error))
    return FALSE;

  if (row.state == ES_STREAM_STATE_TOMBSTONED)
    {
      if (tombstone)
        return TRUE;
      set_tombstoned_error (job->stream_id, error);
      return FALSE;
    }

  if (job->version != ES_VERSION_ANY && job->version != row.version)
    {
      job->base.out_version = row.version;
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   /* Translators: the numbers are stream versions, %s a stream id */
                   _("Expected version %lld but stream '%s' is at version %lld"),
                   (long long) job->version, job->stream_id, (long long) row.version);
      return FALSE;
    }

  /* The delete's own position, taken before the newest rows may go. */
  if (!writer_last_position (writer, &position, error))
    return FALSE;
  position++;

  if (!writer_update (writer, "DELETE FROM events WHERE stream_id = ?", job->stream_id, 0,
                      operation, error))
    return FALSE;
  job->removed = sqlite3_changes (writer->conn->db);

  if (!writer_update (writer, "DELETE FROM snapshots WHERE stream_id = ?", job->stream_id, 0,
                      operation, error))
    return FALSE;

  if (tombstone)
    {
      /* The marker takes the position; the position row is stale. */
      if (!writer_set_position_row (writer, 0, operation, error))
        return FALSE;
      stmt = writer_stmt (writer,
                          "INSERT INTO events (sequence_id, stream_id, version, event_type,"
                          " timestamp, data, flags) VALUES (?, ?, ?, '$tombstone', ?, x'', "
                          G_STRINGIFY (ES_SQLITE_FLAG_TOMBSTONE) ")",
                          operation, error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, position);
      sqlite3_bind_text (stmt, 2, job->stream_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 3, row.version);
      sqlite3_bind_int64 (stmt, 4, g_get_real_time ());
      if (!writer_step_done (writer, stmt, operation, error))
        return FALSE;
    }
  else if (!writer_set_position_row (writer, position, operation, error))
    return FALSE;

  row.state = tombstone ? ES_STREAM_STATE_TOMBSTONED : ES_STREAM_STATE_DELETED;
  row.event_count = 0;
  row.first_version = 0;
  row.first_timestamp = 0;
  row.last_timestamp = 0;
  if (!writer_write_stream (writer, job->stream_id, &row, operation, error))
    return FALSE;

  writer->checkpoint_wanted = TRUE;
  return TRUE;
}

static gboolean
writer_truncate (EsWriter  *writer,
                 Job       *job,
                 GError   **error)
{
  const char *operation = _("Truncating a stream");
  StreamRow row;

  if (!writer_read_writable_stream (writer, job->stream_id, &row, operation, error))
    return FALSE;
  if (job->version > row.version)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a stream id, the numbers versions */
                   _("Cannot truncate stream '%s' before version %lld: it is at version %lld"),
                   job->stream_id, (long long) job->version, (long long) row.version);
      return FALSE;
    }

  if (!writer_remove_prefix (writer, job->stream_id, &row, job->version, operation,
                             &job->removed, error))
    return FALSE;
  if (job->removed == 0)
    return TRUE;
  return writer_write_stream (writer, job->stream_id, &row, operation, error);
}

static gboolean
writer_erase (EsWriter  *writer,
              Job       *job,
              GError   **error)
{
  const char *operation = _("Erasing an event");
  sqlite3_stmt *stmt;
  gint64 flags = -1;
  int rc;

  stmt = writer_stmt (writer,
                      "SELECT flags FROM events WHERE stream_id = ? AND version = ?"
                      " AND flags < " G_STRINGIFY (ES_SQLITE_FLAGS_MARKERS),
                      operation, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, job->version);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    flags = sqlite3_column_int64 (stmt, 0);
  else if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  _es_sqlite_stmt_done (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return FALSE;

  if (flags < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                   /* Translators: %s is a stream id, %lld a version */
                   _("Stream '%s' has no event at version %lld to erase"),
                   job->stream_id, (long long) job->version);
      return FALSE;
    }
  if (flags & ES_STORED_EVENT_FLAGS_ERASED)
    return TRUE;

  /* The row is rewritten smaller; secure_delete zeroes the bytes it
   * leaves (and the overflow pages it frees). */
  if (!writer_update (writer,
                      "UPDATE events SET data = x'', metadata = NULL, flags = flags | "
                      G_STRINGIFY (ES_SQLITE_FLAG_ERASED)
                      " WHERE stream_id = ? AND version = ?",
                      job->stream_id, job->version, operation, error))
    return FALSE;

  writer->checkpoint_wanted = TRUE;
  return TRUE;
}

static gboolean
writer_set_setting (EsWriter    *writer,
                    const char  *name,
                    gint64       value,
                    const char  *operation,
                    GError     **error)
{
  return writer_update (writer,
                        value > 0 ? "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)"
                                  : "DELETE FROM settings WHERE name = ?",
                        name, value, operation, error);
}

/* A stream's policy: stored in its row, enforced at once. The
 * database-wide one (NULL) is only stored here: the caller sweeps. */
static gboolean
writer_set_retention (EsWriter  *writer,
                      Job       *job,
                      GError   **error)
{
  const char *operation = _("Setting a retention policy");
  StreamRow row;

  if (job->stream_id == NULL)
    return writer_set_setting (writer, "max_age", job->max_age, operation, error) &&
           writer_set_setting (writer, "max_count", job->max_count, operation, error);

  if (!writer_read_writable_stream (writer, job->stream_id, &row, operation, error))
    return FALSE;

  row.max_age = job->max_age;
  row.max_count = job->max_count;
  return writer_apply_retention (writer, job->stream_id, &row, g_get_real_time (), G_MAXINT64,
                                 operation, &job->removed, error) &&
         writer_write_stream (writer, job->stream_id, &row, operation, error);
}

/* The streams a sweep looks at, a page at a time. */
typedef struct
{
  char      *stream_id;
  StreamRow  row;
} SweepCandidate;

static void
sweep_candidate_free (gpointer data)
{
  SweepCandidate *candidate = data;

  g_free (candidate->stream_id);
  g_free (candidate);
}

#define SWEEP_PAGE 512

/* One batch of a sweep: walks the active streams with events (all of
 * them under a database-wide policy, else those with a policy of their
 * own) from job->sweep_from, removing at most ES_SQLITE_SWEEP_BATCH
 * events; job->more and job->sweep_next say where to go on. */
static gboolean
writer_sweep (EsWriter  *writer,
              Job       *job,
              GError   **error)
{
  const char *operation = _("Enforcing retention policies");
  g_autofree char *from = g_strdup (job->sweep_from != NULL ? job->sweep_from : "");
  gboolean first_page = TRUE;
  gint64 budget = ES_SQLITE_SWEEP_BATCH;
  gint64 db_max_age = 0;
  gint64 db_max_count = 0;
  gint64 stream_age = 0;
  gboolean db_policy;

  if (!writer_query_int64 (writer, "SELECT value FROM settings WHERE name = 'max_age'", NULL,
                           0, &db_max_age, operation, error) ||
      !writer_query_int64 (writer, "SELECT value FROM settings WHERE name = 'max_count'", NULL,
                           0, &db_max_count, operation, error) ||
      !writer_query_int64 (writer,
                           "SELECT EXISTS (SELECT 1 FROM streams"
                           " WHERE (max_age > 0 OR max_count > 0) AND max_age > 0"
                           " AND state = 0)",
                           NULL, 0, &stream_age, operation, error))
    return FALSE;
  job->has_age_policy = db_max_age > 0 || stream_age != 0;
  db_policy = db_max_age > 0 || db_max_count > 0;

  for (;;)
    {
      g_autoptr(GPtrArray) candidates = g_ptr_array_new_with_free_func (sweep_candidate_free);
      sqlite3_stmt *stmt;
      guint i;
      int rc;

      stmt = writer_stmt (writer,
                          db_policy
                            ? "SELECT stream_id, version, event_count, first_version,"
                              " first_timestamp, last_timestamp, max_age, max_count FROM streams"
                              " WHERE stream_id >= ? AND state = 0 AND event_count > 0"
                              " ORDER BY stream_id LIMIT ?"
                            : "SELECT stream_id, version, event_count, first_version,"
                              " first_timestamp, last_timestamp, max_age, max_count FROM streams"
                              " WHERE (max_age > 0 OR max_count > 0) AND stream_id >= ?"
                              " AND state = 0 AND event_count > 0"
                              " ORDER BY stream_id LIMIT ?",
                          operation, error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, from, -1, SQLITE_STATIC);
      sqlite3_bind_int (stmt, 2, SWEEP_PAGE);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          SweepCandidate *candidate = g_new0 (SweepCandidate, 1);

          candidate->stream_id = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
          candidate->row.exists = TRUE;
          candidate->row.version = sqlite3_column_int64 (stmt, 1);
          candidate->row.event_count = sqlite3_column_int64 (stmt, 2);
          candidate->row.first_version = sqlite3_column_int64 (stmt, 3);
          candidate->row.first_timestamp = sqlite3_column_int64 (stmt, 4);
          candidate->row.last_timestamp = sqlite3_column_int64 (stmt, 5);
          candidate->row.state = ES_STREAM_STATE_ACTIVE;
          candidate->row.max_age = sqlite3_column_int64 (stmt, 6);
          candidate->row.max_count = sqlite3_column_int64 (stmt, 7);
          candidate->row.db_max_age = db_max_age;
          candidate->row.db_max_count = db_max_count;
          g_ptr_array_add (candidates, candidate);
        }
      if (rc != SQLITE_DONE)
        _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
      _es_sqlite_stmt_done (stmt);
      if (rc != SQLITE_DONE)
        return FALSE;

      for (i = 0; i < candidates->len; i++)
        {
          SweepCandidate *candidate = g_ptr_array_index (candidates, i);
          gint64 removed = 0;

          /* The first row of a page after the first is the last of the
           * previous page (>=): already done. */
          if (i == 0 && !first_page)
            continue;

          if (!writer_apply_retention (writer, candidate->stream_id, &candidate->row, job->now,
                                       budget, operation, &removed, error))
            return FALSE;
          if (removed == 0)
            continue;
          if (!writer_write_stream (writer, candidate->stream_id, &candidate->row, operation,
                                    error))
            return FALSE;
          job->removed += removed;
          budget -= removed;
          if (budget <= 0)
            {
              /* The next batch starts with this stream, which may hold more. */
              job->more = TRUE;
              job->sweep_next = g_strdup (candidate->stream_id);
              return TRUE;
            }
        }

      if (candidates->len < SWEEP_PAGE)
        return TRUE;
      g_free (from);
      from = g_strdup (((SweepCandidate *) g_ptr_array_index (candidates,
                                                              candidates->len - 1))->stream_id);
      first_page = FALSE;
    }
}

/* Gives the free pages back: PRAGMA incremental_vacuum on a file in
 * incremental mode; otherwise (a file from before 0.2) VACUUM, which
 * rewrites it and switches it to incremental mode. Outside any
 * transaction; the WAL is then checkpointed and truncated, which is when
 * the file shrinks. */
static gboolean
writer_compact (EsWriter  *writer,
                Job       *job,
                GError   **error)
{
  const char *operation = _("Compacting the database");
  gint64 mode = 0;

  if (!_es_sqlite_connection_query_int64 (writer->conn, "PRAGMA auto_vacuum", &mode,
                                          operation, error))
    return FALSE;

  if (mode == 2)
    {
      if (!_es_sqlite_connection_exec (writer->conn, "PRAGMA incremental_vacuum", operation,
                                       error))
        return FALSE;
    }
  else if (!_es_sqlite_connection_exec (writer->conn,
                                        "PRAGMA auto_vacuum = INCREMENTAL; VACUUM",
                                        operation, error))
    return FALSE;

  sqlite3_wal_checkpoint_v2 (writer->conn->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
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
  const char *operation = _("Appending events");
  gint64 timestamp = g_get_real_time ();
  gint64 version = 0;
  gint64 first_written = 0;
  gint64 n_written = 0;
  gint64 removed = 0;
  gboolean proceed;
  StreamRow row;
  guint i;
  int rc;

  /* The stream's row holds its version (kept through deletes and
   * retention) and whether it was tombstoned: that comes before anything
   * else, retries included. */
  if (!writer_read_writable_stream (writer, job->stream_id, &row, operation, error))
    return FALSE;
  version = row.version;

  /* The lookups come first in the contract; looking the keys up only on a
   * mismatch gives the same answers, and spares the lookups otherwise. */
  if (!writer_check_expected (writer, job, version, &proceed, error))
    return FALSE;
  if (!proceed)
    return TRUE;

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
      if (n_written++ == 0)
        first_written = version;
    }

  /* Drop the pointers into this job's events. */
  sqlite3_clear_bindings (writer->stmts[W_INSERT]);
  if (i < job->n_events)
    return FALSE;

  job->base.out_version = version;
  if (n_written == 0)
    return TRUE;

  /* The stream's row, in the same transaction; a deleted stream is
   * active again. */
  if (row.event_count == 0)
    {
      row.first_version = first_written;
      row.first_timestamp = timestamp;
    }
  row.version = version;
  row.event_count += n_written;
  row.last_timestamp = timestamp;
  row.state = ES_STREAM_STATE_ACTIVE;

  /* Retention, on the stream written to: the events just written are the
   * newest, and not older than now. */
  if ((row.max_age > 0 || row.max_count > 0 || row.db_max_age > 0 || row.db_max_count > 0) &&
      !writer_apply_retention (writer, job->stream_id, &row, timestamp, G_MAXINT64, operation,
                               &removed, error))
    return FALSE;

  return writer_write_stream (writer, job->stream_id, &row, operation, error);
}

/* ---------------------------------------------------------------------- *
 * Single-event appends in a group                                         *
 * ---------------------------------------------------------------------- */

/* The rows of the streams table a transaction's single-event appends read
 * and change: each is read once, kept here while the appends change it,
 * and written back once before anything else reads it (writer_flush_rows():
 * before any other job, and before the COMMIT). With 64 appends in
 * flight, that spares each one a read and an upsert of its stream's row,
 * and the savepoint around them, which is most of what an append costs
 * besides its INSERT. */
#define N_CACHED_ROWS 8

typedef struct
{
  const char *stream_id[N_CACHED_ROWS];  /* (unowned) the jobs' own, alive
                                          * until the group completes */
  StreamRow   row[N_CACHED_ROWS];
  gboolean    dirty[N_CACHED_ROWS];
  guint       n;
} RowCache;

/* Writes back the rows that changed and forgets them all. On failure the
 * transaction is rolled back: events of jobs reported written are in it
 * without their streams' rows. */
static gboolean
writer_flush_rows (EsWriter  *writer,
                   RowCache  *cache,
                   GError   **error)
{
  gboolean ok = TRUE;
  guint i;

  for (i = 0; ok && i < cache->n; i++)
    if (cache->dirty[i])
      ok = writer_write_stream (writer, cache->stream_id[i], &cache->row[i],
                                _("Appending events"), error);
  cache->n = 0;
  if (!ok)
    writer_rollback (writer);
  return ok;
}

/* Whether @job can take the cached path: one event, and so one INSERT,
 * which either happens whole or not at all (SQLite undoes a failed
 * statement), so the job needs no savepoint. */
static gboolean
job_is_single_append (const Job *job)
{
  return job->kind == JOB_APPEND && job->n_events == 1;
}

/* The index of @stream_id's row in @cache, read into it if it is not
 * there yet; *@out_found FALSE with @error set on failure. Reading may
 * flush the cache when it is full. */
static guint
writer_cached_row (EsWriter    *writer,
                   RowCache    *cache,
                   const char  *stream_id,
                   gboolean    *out_found,
                   GError     **error)
{
  guint i;

  for (i = 0; i < cache->n; i++)
    if (strcmp (cache->stream_id[i], stream_id) == 0)
      {
        *out_found = TRUE;
        return i;
      }

  *out_found = FALSE;
  if (cache->n == N_CACHED_ROWS && !writer_flush_rows (writer, cache, error))
    return 0;
  i = cache->n;
  if (!writer_read_stream (writer, stream_id, &cache->row[i], _("Appending events"), error))
    return 0;
  cache->stream_id[i] = stream_id;
  cache->dirty[i] = FALSE;
  cache->n++;
  *out_found = TRUE;
  return i;
}

/* A stream with a retention policy (its own, or the database's) takes the
 * ordinary path: retention reads and removes its events. */
static gboolean
row_has_policy (const StreamRow *row)
{
  return row->max_age > 0 || row->max_count > 0 || row->db_max_age > 0 ||
         row->db_max_count > 0;
}

/* writer_append() for a single-event job, with the stream's row in @cache:
 * the same checks, answers and errors, in the same order. Sets
 * *@out_done to FALSE (and does nothing) when the stream has a retention
 * policy: then the caller flushes the cache and runs writer_append().
 * Nothing is left to undo when it fails; when SQLite or a failed flush
 * rolled the transaction back, nothing of the group is left. */
static gboolean
writer_append_one (EsWriter  *writer,
                   RowCache  *cache,
                   Job       *job,
                   gboolean  *out_done,
                   GError   **error)
{
  EsCandidateEvent *event = job->events[0];
  const char *key = es_candidate_event_get_idempotency_key (event);
  gint64 timestamp;
  gboolean found, proceed;
  StreamRow *row;
  guint i;
  int rc;

  *out_done = TRUE;
  i = writer_cached_row (writer, cache, job->stream_id, &found, error);
  if (!found)
    return FALSE;
  row = &cache->row[i];

  if (row->state == ES_STREAM_STATE_TOMBSTONED)
    {
      set_tombstoned_error (job->stream_id, error);
      return FALSE;
    }
  if (row_has_policy (row))
    {
      *out_done = FALSE;
      return TRUE;
    }

  if (!writer_check_expected (writer, job, row->version, &proceed, error))
    return FALSE;
  if (!proceed)
    return TRUE;

  timestamp = g_get_real_time ();
  rc = writer_insert (writer, job->stream_id, row->version + 1, key, event, timestamp);
  sqlite3_clear_bindings (writer->stmts[W_INSERT]);
  if (rc != SQLITE_DONE)
    {
      _es_sqlite_connection_set_error (writer->conn, rc, _("Appending events"), error);
      return FALSE;
    }

  /* A stored key: skipped, not an error. */
  if (key != NULL && sqlite3_changes (writer->conn->db) == 0)
    {
      job->base.out_version = row->version;
      return TRUE;
    }

  /* Cancelled while it ran: its row goes again, and the caller is told
   * nothing was written; the cached row is untouched. Past this check the
   * job counts as written, whatever its cancellable says. */
  if (g_cancellable_is_cancelled (job->base.cancellable))
    {
      sqlite3_stmt *stmt = writer->stmts[W_UNDO_INSERT];

      sqlite3_bind_int64 (stmt, 1, sqlite3_last_insert_rowid (writer->conn->db));
      if (!writer_step_done (writer, stmt, _("Appending events"), error))
        {
          /* The row stays without its stream's row: nothing commits. */
          writer_rollback (writer);
          return FALSE;
        }
      g_cancellable_set_error_if_cancelled (job->base.cancellable, error);
      return FALSE;
    }

  if (row->event_count == 0)
    {
      row->first_version = row->version + 1;
      row->first_timestamp = timestamp;
    }
  row->version++;
  row->event_count++;
  row->last_timestamp = timestamp;
  row->state = ES_STREAM_STATE_ACTIVE;
  cache->dirty[i] = TRUE;
  job->base.out_version = row->version;
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

/* ---------------------------------------------------------------------- *
 * Durable subscriptions (schema version 3)                                *
 * ---------------------------------------------------------------------- */

/* Reads subscription @name's stream and checkpoint; *out_found FALSE when
 * none is stored. @out_stream_id is set only when found. */
static gboolean
writer_read_subscription (EsWriter    *writer,
                          const char  *name,
                          gboolean    *out_found,
                          char       **out_stream_id,
                          gint64      *out_position,
                          const char  *operation,
                          GError     **error)
{
  sqlite3_stmt *stmt;
  int rc;

  stmt = writer_stmt (writer, "SELECT stream_id, position FROM subscriptions WHERE name = ?",
                      operation, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  *out_found = rc == SQLITE_ROW;
  if (rc == SQLITE_ROW)
    {
      *out_stream_id = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
      *out_position = sqlite3_column_int64 (stmt, 1);
    }
  else if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  _es_sqlite_stmt_done (stmt);
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static void
set_subscription_not_found_error (const char  *name,
                                  GError     **error)
{
  g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
               /* Translators: %s is a subscription name */
               _("No subscription named '%s' is stored"), name);
}

/* The upsert of a checkpoint: the stored stream and a checkpoint that
 * never moves back are checked first, in the same transaction, so two
 * savers cannot interleave between the check and the write. */
static gboolean
writer_save_checkpoint (EsWriter  *writer,
                        Job       *job,
                        GError   **error)
{
  const char *operation = _("Saving a subscription checkpoint");
  g_autofree char *stored_stream = NULL;
  gint64 stored_position = 0;
  gboolean found = FALSE;
  sqlite3_stmt *stmt;

  if (!writer_read_subscription (writer, job->name, &found, &stored_stream, &stored_position,
                                 operation, error))
    return FALSE;

  if (found && !g_str_equal (stored_stream, job->stream_id))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %s is a subscription name, the others stream ids */
                   _("Subscription '%s' follows stream '%s', not '%s'"),
                   job->name, stored_stream, job->stream_id);
      return FALSE;
    }
  if (found && job->version < stored_position)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a subscription name, the %lld positions */
                   _("Subscription '%s' cannot move its checkpoint back from %lld to %lld "
                     "(reset it instead)"),
                   job->name, (long long) stored_position, (long long) job->version);
      return FALSE;
    }

  stmt = writer_stmt (writer,
                      "INSERT INTO subscriptions (name, stream_id, position, state, updated)"
                      " VALUES (?1, ?2, ?3, ?4, ?5)"
                      " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                      " state = CASE WHEN ?6 THEN excluded.state ELSE subscriptions.state END,"
                      " updated = excluded.updated",
                      operation, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, job->name, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, job->stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 3, job->version);
  if (job->state != NULL)
    _es_sqlite_bind_bytes (stmt, 4, job->state);
  else
    sqlite3_bind_null (stmt, 4);
  sqlite3_bind_int64 (stmt, 5, g_get_real_time ());
  sqlite3_bind_int (stmt, 6, job->state != NULL);
  return writer_step_done (writer, stmt, operation, error);
}

static gboolean
writer_reset_subscription (EsWriter  *writer,
                           Job       *job,
                           GError   **error)
{
  const char *operation = _("Resetting a subscription");
  g_autofree char *stream_id = NULL;
  gint64 position = 0;
  gint64 head = 0;
  gboolean found = FALSE;
  sqlite3_stmt *stmt;

  if (!writer_read_subscription (writer, job->name, &found, &stream_id, &position,
                                 operation, error))
    return FALSE;
  if (!found)
    {
      set_subscription_not_found_error (job->name, error);
      return FALSE;
    }

  /* The head: the stream's version (kept by a deletion), or for @all the
   * last position used. */
  if (g_str_equal (stream_id, ES_ALL_STREAM))
    {
      if (!writer_last_position (writer, &head, error))
        return FALSE;
    }
  else if (!writer_query_int64 (writer, "SELECT version FROM streams WHERE stream_id = ?",
                                stream_id, 0, &head, operation, error))
    return FALSE;

  if (job->version > head)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %s is a subscription name, the second a
                    * stream id; the %lld are positions */
                   _("Cannot reset subscription '%s' to position %lld: the head of '%s' "
                     "is %lld"),
                   job->name, (long long) job->version, stream_id, (long long) head);
      return FALSE;
    }

  stmt = writer_stmt (writer,
                      "UPDATE subscriptions SET position = ?, state = NULL, updated = ?"
                      " WHERE name = ?",
                      operation, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, job->version);
  sqlite3_bind_int64 (stmt, 2, g_get_real_time ());
  sqlite3_bind_text (stmt, 3, job->name, -1, SQLITE_STATIC);
  return writer_step_done (writer, stmt, operation, error);
}

static gboolean
writer_delete_subscription (EsWriter  *writer,
                            Job       *job,
                            GError   **error)
{
  const char *operation = _("Deleting a subscription");

  if (!writer_update (writer, "DELETE FROM subscriptions WHERE name = ?", job->name, 0,
                      operation, error))
    return FALSE;
  if (sqlite3_changes (writer->conn->db) == 0)
    {
      set_subscription_not_found_error (job->name, error);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Import (es_storage_handle_import_events())                              *
 * ---------------------------------------------------------------------- */

/* Whether the stored event at @version of @stream_id is @event (type, data,
 * key, metadata, erasure): a re-imported event, skipped. */
static gboolean
writer_same_event (EsWriter       *writer,
                   const char     *stream_id,
                   gint64          version,
                   EsStoredEvent  *event,
                   gboolean       *out_same,
                   GError        **error)
{
  const char *operation = _("Importing events");
  sqlite3_stmt *stmt =
    writer_stmt (writer,
                 "SELECT event_type, data, idempotency_key, metadata, flags FROM events"
                 " WHERE stream_id = ? AND version = ? AND flags < 2",
                 operation, error);
  GBytes *data = es_stored_event_get_data (event);
  int rc;

  *out_same = FALSE;
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, version);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      const char *type = (const char *) sqlite3_column_text (stmt, 0);
      const void *blob = sqlite3_column_blob (stmt, 1);
      gsize blob_len = (gsize) sqlite3_column_bytes (stmt, 1);
      const char *key = (const char *) sqlite3_column_text (stmt, 2);
      const char *metadata = (const char *) sqlite3_column_text (stmt, 3);
      gsize data_len = data != NULL ? g_bytes_get_size (data) : 0;

      *out_same = g_strcmp0 (type, es_stored_event_get_event_type (event)) == 0 &&
                  blob_len == data_len &&
                  (data_len == 0 || memcmp (blob, g_bytes_get_data (data, NULL), data_len) == 0) &&
                  g_strcmp0 (key, es_stored_event_get_idempotency_key (event)) == 0 &&
                  g_strcmp0 (metadata, es_stored_event_get_metadata (event)) == 0 &&
                  (sqlite3_column_int (stmt, 4) & ES_SQLITE_FLAG_ERASED) ==
                  (es_stored_event_get_erased (event) ? ES_SQLITE_FLAG_ERASED : 0);
    }
  else if (rc != SQLITE_DONE)
    _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
  _es_sqlite_stmt_done (stmt);
  return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/* The body of an import (see es_storage_handle_import_events() for the
 * rules), inside the group's transaction: the events of one stream in a
 * row share one read and one write of the stream's row. */
static gboolean
writer_import (EsWriter  *writer,
               Job       *job,
               GError   **error)
{
  const char *operation = _("Importing events");
  const char *current = NULL;  /* the stream of row */
  StreamRow row = { 0, };
  gint64 stored = 0;
  guint i;

  for (i = 0; i < job->n_events; i++)
    {
      EsStoredEvent *event = job->stored_events[i];
      const char *stream_id = es_stored_event_get_stream_id (event);
      gint64 version = es_stored_event_get_version (event);
      gint64 timestamp = es_stored_event_get_timestamp_usec (event);
      const char *key = es_stored_event_get_idempotency_key (event);
      sqlite3_stmt *stmt;
      int rc;

      job->failed_index = i;
      if (current == NULL || strcmp (current, stream_id) != 0)
        {
          if (current != NULL && !writer_write_stream (writer, current, &row, operation, error))
            return FALSE;
          if (!writer_read_stream (writer, stream_id, &row, operation, error))
            return FALSE;
          current = stream_id;
        }
      if (row.state == ES_STREAM_STATE_TOMBSTONED)
        {
          set_tombstoned_error (stream_id, error);
          return FALSE;
        }

      if (version <= row.version)
        {
          gboolean same;

          if (!writer_same_event (writer, stream_id, version, event, &same, error))
            return FALSE;
          if (same)
            continue;
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       /* Translators: %lld is a version, %s a stream id */
                       _("Stream '%s' already holds a different event at version %lld"),
                       stream_id, (long long) version);
          return FALSE;
        }
      if (row.version != 0 && version != row.version + 1)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       /* Translators: the numbers are versions, %s a stream id */
                       _("Cannot import version %lld of stream '%s': the stream is at version %lld"),
                       (long long) version, stream_id, (long long) row.version);
          return FALSE;
        }

      stmt = writer_stmt (writer,
                          "INSERT INTO events (stream_id, version, idempotency_key, event_type,"
                          " timestamp, data, metadata, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          operation, error);
      if (stmt == NULL)
        return FALSE;
      if ((rc = sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC)) == SQLITE_OK &&
          (rc = sqlite3_bind_int64 (stmt, 2, version)) == SQLITE_OK &&
          (rc = sqlite3_bind_text (stmt, 3, key, -1, SQLITE_STATIC)) == SQLITE_OK &&
          (rc = sqlite3_bind_text (stmt, 4, es_stored_event_get_event_type (event), -1,
                                   SQLITE_STATIC)) == SQLITE_OK &&
          (rc = sqlite3_bind_int64 (stmt, 5, timestamp)) == SQLITE_OK &&
          (rc = _es_sqlite_bind_bytes (stmt, 6, es_stored_event_get_data (event))) == SQLITE_OK &&
          (rc = sqlite3_bind_text (stmt, 7, es_stored_event_get_metadata (event), -1,
                                   SQLITE_STATIC)) == SQLITE_OK &&
          (rc = sqlite3_bind_int (stmt, 8, es_stored_event_get_erased (event)
                                             ? ES_SQLITE_FLAG_ERASED : 0)) == SQLITE_OK)
        rc = sqlite3_step (stmt);
      if (rc != SQLITE_DONE && (rc != SQLITE_CONSTRAINT || key == NULL))
        _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
      _es_sqlite_stmt_done (stmt);
      if (rc == SQLITE_CONSTRAINT && key != NULL)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                       /* Translators: the first %s is an idempotency key, the second a stream id, %lld a version */
                       _("Idempotency key '%s' of version %lld is already used in stream '%s'"),
                       key, (long long) version, stream_id);
          return FALSE;
        }
      if (rc != SQLITE_DONE)
        return FALSE;

      if (row.event_count == 0)
        {
          row.first_version = version;
          row.first_timestamp = timestamp;
        }
      row.version = version;
      row.event_count++;
      row.last_timestamp = timestamp;
      row.state = ES_STREAM_STATE_ACTIVE;
      stored++;
    }

  if (current != NULL && !writer_write_stream (writer, current, &row, operation, error))
    return FALSE;
  job->removed = stored;
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Metadata indexes (es_storage_handle_add_metadata_index())               *
 * ---------------------------------------------------------------------- */

/* Declares (JOB_ADD_METADATA_INDEX) or drops a metadata index, inside the
 * group's transaction like any write: readers keep reading the committed
 * database meanwhile, other writers wait for the commit. The index is
 *   CREATE INDEX "es_meta_<path in hex>" ON events
 *     (<_es_sqlite_metadata_index_expression()>, sequence_id) WHERE flags < 2
 * Its name is all the database keeps of the declaration (the listing reads
 * sqlite_master): hex, as index names ignore case and keys do not. The
 * partial index holds events only, as reads do ("flags < 2"), so a read of
 * <code>@<!-- -->all</code> filtered on the path is one range of it, in
 * sequence order. */
static gboolean
writer_metadata_index (EsWriter  *writer,
                       Job       *job,
                       GError   **error)
{
  gboolean add = job->kind == JOB_ADD_METADATA_INDEX;
  const char *operation = add ? _("Declaring a metadata index")
                              : _("Removing a metadata index");
  g_autofree char *field = g_strconcat ("metadata.", job->name, NULL);
  g_autofree char *name = _es_sqlite_metadata_index_name (job->name);
  g_autofree char *expression = NULL;
  g_autofree char *sql = NULL;
  g_auto(GStrv) keys = NULL;
  sqlite3_stmt *stmt = NULL;
  gboolean exists = FALSE;
  int rc;

  if (es_event_filter_parse_field (field, &keys) != ES_FILTER_FIELD_METADATA)
    g_return_val_if_reached (FALSE);  /* the wrapper checked it */

  rc = sqlite3_prepare_v2 (writer->conn->db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                           -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (stmt);
      exists = rc == SQLITE_ROW;
      if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    }
  sqlite3_finalize (stmt);
  if (rc != SQLITE_OK)
    {
      _es_sqlite_connection_set_error (writer->conn, rc, operation, error);
      return FALSE;
    }

  if (add)
    {
      if (exists)
        return TRUE;
      expression = _es_sqlite_metadata_index_expression (keys);
      sql = g_strdup_printf ("CREATE INDEX \"%s\" ON events (%s, sequence_id)"
                             " WHERE flags < " G_STRINGIFY (ES_SQLITE_FLAGS_MARKERS),
                             name, expression);
    }
  else
    {
      if (!exists)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                       /* Translators: %s is a metadata path such as 'user.id' */
                       _("Metadata path '%s' is not declared"), job->name);
          return FALSE;
        }
      sql = g_strdup_printf ("DROP INDEX \"%s\"", name);
    }

  return _es_sqlite_connection_exec (writer->conn, sql, operation, error);
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

  switch (job->kind)
    {
    case JOB_APPEND:
      ok = writer_append (writer, job, &job->base.error);
      break;
    case JOB_SET_MAX_PAGE_COUNT:
      ok = writer_set_max_page_count (writer, job, &job->base.error);
      break;
    case JOB_DELETE:
      ok = writer_delete (writer, job, &job->base.error);
      break;
    case JOB_TRUNCATE:
      ok = writer_truncate (writer, job, &job->base.error);
      break;
    case JOB_ERASE:
      ok = writer_erase (writer, job, &job->base.error);
      break;
    case JOB_SET_RETENTION:
      ok = writer_set_retention (writer, job, &job->base.error);
      break;
    case JOB_SWEEP:
      ok = writer_sweep (writer, job, &job->base.error);
      break;
    case JOB_COMPACT:
      ok = writer_compact (writer, job, &job->base.error);
      break;
    case JOB_SAVE_CHECKPOINT:
      ok = writer_save_checkpoint (writer, job, &job->base.error);
      break;
    case JOB_RESET_SUBSCRIPTION:
      ok = writer_reset_subscription (writer, job, &job->base.error);
      break;
    case JOB_DELETE_SUBSCRIPTION:
      ok = writer_delete_subscription (writer, job, &job->base.error);
      break;
    case JOB_IMPORT:
      ok = writer_import (writer, job, &job->base.error);
      break;
    case JOB_ADD_METADATA_INDEX:
    case JOB_REMOVE_METADATA_INDEX:
      ok = writer_metadata_index (writer, job, &job->base.error);
      break;
    case JOB_SAVE_SNAPSHOT:
    default:
      ok = writer_save_snapshot (writer, job, &job->base.error);
      break;
    }

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
writer_run_transaction (EsWriter  *writer,
                        Job      **jobs,
                        guint      n_jobs,
                        GError   **out_group_error)
{
  g_autoptr(GError) group_error = NULL;
  gboolean savepoints = n_jobs > 1;
  const char *operation = _("Writing to the database");
  RowCache cache = { .n = 0 };
  guint i;

  if (!writer_exec (writer, W_BEGIN, operation, &group_error))
    goto complete;

  for (i = 0; i < n_jobs; i++)
    {
      Job *job = jobs[i];

      /* Cancelled before the writer got to it: not written at all. */
      if (job_cancelled (job))
        continue;

      if (job_is_single_append (job))
        {
          gboolean done;

          if (writer_append_one (writer, &cache, job, &done, &job->base.error))
            {
              if (done)
                continue;
            }
          else if (sqlite3_get_autocommit (writer->conn->db))
            {
              /* SQLite rolled the whole transaction back (I/O, disk
               * full...): nothing of the group stands. */
              group_error = g_error_copy (job->base.error);
              goto complete;
            }
          else
            continue;  /* nothing written */
        }

      /* Any other job reads the streams table itself. */
      if (!writer_flush_rows (writer, &cache, &group_error))
        break;

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

  if (group_error == NULL)
    writer_flush_rows (writer, &cache, &group_error);

  if (group_error == NULL && writer_exec (writer, W_COMMIT, operation, &group_error))
    {
      /* A job removed data: its old bytes may still be in the WAL (the
       * main file's pages are overwritten, secure_delete): copy the log
       * into the file and empty it, once readers are done with it. */
      if (writer->checkpoint_wanted)
        sqlite3_wal_checkpoint_v2 (writer->conn->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                   NULL, NULL);
      writer->checkpoint_wanted = FALSE;
      goto complete;
    }

  writer_rollback (writer);

complete:
  writer->checkpoint_wanted = FALSE;
  /* Every job without an error of its own gets this one: not written. */
  if (group_error != NULL)
    g_propagate_error (out_group_error, g_steal_pointer (&group_error));
}

/* Runs the queue's group: runs of ordinary jobs in one transaction each
 * (writer_run_transaction()), a compaction on its own, outside any
 * transaction (VACUUM cannot run in one). A transaction that fails as a
 * whole fails its jobs only. */
static void
writer_run_group (EsWriteJob **base_jobs,
                  guint        n_jobs,
                  GError     **out_group_error,
                  gpointer     user_data)
{
  EsWriter *writer = user_data;
  Job **jobs = (Job **) base_jobs;
  guint start = 0;

  while (start < n_jobs)
    {
      g_autoptr(GError) group_error = NULL;
      guint end = start;
      guint i;

      if (jobs[start]->kind == JOB_COMPACT)
        {
          if (!job_cancelled (jobs[start]))
            writer_compact (writer, jobs[start], &jobs[start]->base.error);
          start++;
          continue;
        }

      while (end < n_jobs && jobs[end]->kind != JOB_COMPACT)
        end++;

      writer_run_transaction (writer, jobs + start, end - start, &group_error);
      for (i = start; group_error != NULL && i < end; i++)
        if (jobs[i]->base.error == NULL)
          {
            jobs[i]->base.error = g_error_copy (group_error);
            jobs[i]->base.out_version = -1;
          }
      start = end;
    }
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

/* The writer queue, or why there is none: the storage is read-only, or
 * closed. */
static EsWriteQueue *
writer_queue (EsSqliteStorage  *self,
              GError          **error)
{
  if (self->writer == NULL)
    {
      if (self->read_only)
        _es_sqlite_set_read_only_error (self->where, error);
      else
        _es_sqlite_set_closed_error (error);
    }
  return self->writer;
}

/* Runs @job, which points to the caller's arguments, on @self's writer
 * and waits for it: fails at once on a read-only or closed storage. */
static gboolean
storage_run_sync (EsSqliteStorage  *self,
                  Job              *job,
                  GCancellable     *cancellable,
                  GError          **error)
{
  EsWriteQueue *queue = writer_queue (self, error);

  if (queue == NULL)
    return FALSE;

  job->base.cancellable = cancellable;
  return writer_run_sync (queue, job, error);
}

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
  GError *local_error = NULL;
  /* The caller blocks until the job is done: the job points to its
   * arguments instead of copying them. */
  Job job = {
    .kind = JOB_APPEND,
    .stream_id = stream_id,
    .expected_version = expected_version,
    .events = events,
    .n_events = n_events,
    .base.out_version = -1,
  };

  if (!storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, &local_error))
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

  if (writer_queue (self, &error) == NULL)
    {
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
  Job job = {
    .kind = JOB_SAVE_SNAPSHOT,
    .stream_id = stream_id != NULL ? stream_id : ALL_STREAM_KEY,
    .projection_name = projection_name,
    .version = version,
    .state = state,
  };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}

gboolean
_es_sqlite_storage_delete_stream (EsStorageHandle  *handle,
                                  const char       *stream_id,
                                  gint64            expected_version,
                                  EsDeleteFlags     flags,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  Job job = {
    .kind = JOB_DELETE,
    .stream_id = stream_id,
    .version = expected_version,
    .delete_flags = flags,
    .base.out_version = -1,
  };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}

gboolean
_es_sqlite_storage_truncate_stream (EsStorageHandle  *handle,
                                    const char       *stream_id,
                                    gint64            before_version,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  Job job = {
    .kind = JOB_TRUNCATE,
    .stream_id = stream_id,
    .version = before_version,
  };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}

gboolean
_es_sqlite_storage_erase_event (EsStorageHandle  *handle,
                                const char       *stream_id,
                                gint64            version,
                                GCancellable     *cancellable,
                                GError          **error)
{
  Job job = {
    .kind = JOB_ERASE,
    .stream_id = stream_id,
    .version = version,
  };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}

gboolean
_es_sqlite_storage_save_checkpoint (EsStorageHandle  *handle,
                                    const char       *name,
                                    const char       *stream_id,
                                    gint64            position,
                                    GBytes           *state,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  Job job = {
    .kind = JOB_SAVE_CHECKPOINT,
    .name = name,
    .stream_id = stream_id != NULL ? stream_id : ES_ALL_STREAM,
    .version = position,
    .state = state,
  };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}

/* The writes of reset and delete, once the caller made sure nobody
 * consumes the subscription (es-sqlite-subscription.c). */
gboolean
_es_sqlite_writer_reset_subscription (EsSqliteStorage  *self,
                                      const char       *name,
                                      gint64            position,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  Job job = {
    .kind = JOB_RESET_SUBSCRIPTION,
    .name = name,
    .version = position,
  };

  return storage_run_sync (self, &job, cancellable, error);
}

gboolean
_es_sqlite_writer_delete_subscription (EsSqliteStorage  *self,
                                       const char       *name,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  Job job = { .kind = JOB_DELETE_SUBSCRIPTION, .name = name };

  return storage_run_sync (self, &job, cancellable, error);
}

/* Sweeps in batches of at most ES_SQLITE_SWEEP_BATCH removals, one job
 * (one transaction) each, so that appends queued meanwhile go in between.
 * A cancellation stops between batches: it is reported only when no batch
 * removed anything; otherwise the count so far is. */
static gint64
sweep_batches (EsWriteQueue  *queue,
               gint64         now_usec,
               gboolean      *out_has_age_policy,
               GCancellable  *cancellable,
               GError       **error)
{
  g_autofree char *from = NULL;
  gint64 total = 0;

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      Job job = { 0, };

      job.kind = JOB_SWEEP;
      job.now = now_usec;
      job.sweep_from = from;
      if (total > 0 && g_cancellable_is_cancelled (cancellable))
        break;
      job.base.cancellable = cancellable;

      if (!writer_run_sync (queue, &job, &local_error))
        {
          g_free (job.sweep_next);
          if (total > 0 && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            break;
          g_propagate_error (error, g_steal_pointer (&local_error));
          return -1;
        }

      total += job.removed;
      if (out_has_age_policy != NULL)
        *out_has_age_policy = job.has_age_policy;
      g_free (from);
      from = job.sweep_next;
      if (!job.more)
        break;
    }

  return total;
}

gboolean
_es_sqlite_storage_set_retention (EsStorageHandle  *handle,
                                  const char       *stream_id,
                                  GTimeSpan         max_age,
                                  gint64            max_count,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  EsWriteQueue *queue = writer_queue (ES_SQLITE_STORAGE (handle), error);
  Job job = { 0, };

  if (queue == NULL)
    return FALSE;

  job.kind = JOB_SET_RETENTION;
  job.stream_id = stream_id;
  job.max_age = max_age;
  job.max_count = max_count;
  job.base.cancellable = cancellable;
  if (!writer_run_sync (queue, &job, error))
    return FALSE;

  /* The database-wide policy is stored: enforcing it may take several
   * transactions, which the cancellable no longer stops (the policy is
   * written). */
  if (stream_id == NULL)
    return sweep_batches (queue, g_get_real_time (), NULL, NULL, error) >= 0;
  return TRUE;
}

gint64
_es_sqlite_storage_sweep (EsStorageHandle  *handle,
                          gint64            now_usec,
                          gboolean         *out_has_age_policy,
                          GCancellable     *cancellable,
                          GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  EsWriteQueue *queue = writer_queue (self, error);
  gboolean any = FALSE;
  gboolean age = FALSE;

  if (out_has_age_policy != NULL)
    *out_has_age_policy = FALSE;
  if (queue == NULL)
    return -1;

  /* Without any policy (the usual case, which a factory's background
   * sweep meets), a read says so: no write transaction, no lock taken
   * from other writers. */
  if (!_es_sqlite_storage_read_policies (self, &any, &age, cancellable, error))
    return -1;
  if (!any)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return -1;
      return 0;
    }

  return sweep_batches (queue, now_usec, out_has_age_policy, cancellable, error);
}

gboolean
_es_sqlite_storage_compact (EsStorageHandle  *handle,
                            GCancellable     *cancellable,
                            GError          **error)
{
  Job job = { .kind = JOB_COMPACT };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
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
  /* 15 characters at most: a longer name is not set at all (Linux). */
  if (!_es_write_queue_start (queue, "es-sqlite-write", error))
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

gint64
_es_sqlite_storage_import_events (EsStorageHandle       *handle,
                                  EsStoredEvent * const *events,
                                  guint                  n_events,
                                  guint                 *out_failed_index,
                                  GCancellable          *cancellable,
                                  GError               **error)
{
  EsWriteQueue *queue = writer_queue (ES_SQLITE_STORAGE (handle), error);
  Job job = { 0, };
  gboolean ok;

  if (queue == NULL)
    return -1;

  job.kind = JOB_IMPORT;
  job.stored_events = events;
  job.n_events = n_events;
  job.base.cancellable = cancellable;
  ok = writer_run_sync (queue, &job, error);
  if (out_failed_index != NULL)
    *out_failed_index = job.failed_index;
  return ok ? job.removed : -1;
}

gboolean
_es_sqlite_storage_add_metadata_index (EsStorageHandle  *handle,
                                       const char       *path,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  Job job = { .kind = JOB_ADD_METADATA_INDEX, .name = path };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}

gboolean
_es_sqlite_storage_remove_metadata_index (EsStorageHandle  *handle,
                                          const char       *path,
                                          GCancellable     *cancellable,
                                          GError          **error)
{
  Job job = { .kind = JOB_REMOVE_METADATA_INDEX, .name = path };

  return storage_run_sync (ES_SQLITE_STORAGE (handle), &job, cancellable, error);
}
