/* es-sqlite-operations.c: the SQLite backend's online backup and
 * integrity check (es_storage_handle_backup(), es_storage_handle_check()).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "es-sqlite-private.h"

/* Pages copied per sqlite3_backup_step(): small enough that a
 * cancellation is seen at once and progress moves smoothly. */
#define BACKUP_STEP_PAGES 256

/* Problems the backend's own check lists at most. */
#define INTEGRITY_MAX_ERRORS 100

/* ---------------------------------------------------------------------- *
 * Backup                                                                   *
 * ---------------------------------------------------------------------- */

static gboolean
set_io_error_from_errno (GError     **error,
                         int          saved_errno,
                         const char  *path)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               /* Translators: the first %s is a file name, the second why */
               _("Cannot write a backup to '%s': %s"), path, g_strerror (saved_errno));
  return FALSE;
}

static gboolean
fsync_path (const char  *path,
            gboolean     directory,
            GError     **error)
{
  int fd = g_open (path, (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC, 0);
  int saved_errno;

  if (fd < 0)
    return set_io_error_from_errno (error, errno, path);
  if (fsync (fd) != 0)
    {
      saved_errno = errno;
      close (fd);
      return set_io_error_from_errno (error, saved_errno, path);
    }
  close (fd);
  return TRUE;
}

static void
remove_with_side_files (const char *path)
{
  static const char * const suffixes[] = { "", "-journal", "-wal", "-shm" };

  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *name = g_strconcat (path, suffixes[i], NULL);
      g_unlink (name);
    }
}

/* Copies the pages of @src (in its open read transaction: one snapshot)
 * into @dst, a chunk at a time. */
static gboolean
backup_copy (sqlite3                *src,
             sqlite3                *dst,
             const char             *display,
             GCancellable           *cancellable,
             GFileProgressCallback   progress_callback,
             gpointer                progress_data,
             GError                **error)
{
  sqlite3_backup *backup;
  gint64 page_size = 4096;
  sqlite3_stmt *stmt = NULL;
  int rc;

  if (sqlite3_prepare_v2 (src, "PRAGMA page_size", -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_step (stmt) == SQLITE_ROW)
    page_size = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);

  backup = sqlite3_backup_init (dst, "main", src, "main");
  if (backup == NULL)
    {
      _es_sqlite_set_error (error, dst, sqlite3_errcode (dst), _("Backing up"), display, 0);
      return FALSE;
    }

  do
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          sqlite3_backup_finish (backup);
          return FALSE;
        }
      rc = sqlite3_backup_step (backup, BACKUP_STEP_PAGES);
      if (progress_callback != NULL && (rc == SQLITE_OK || rc == SQLITE_DONE))
        {
          gint64 total = sqlite3_backup_pagecount (backup);
          gint64 done = total - sqlite3_backup_remaining (backup);

          progress_callback (done * page_size, total * page_size, progress_data);
        }
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        g_usleep (5000);
    }
  while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);

  sqlite3_backup_finish (backup);
  if (rc != SQLITE_DONE)
    {
      _es_sqlite_set_error (error, NULL, rc, _("Backing up"), display, 0);
      return FALSE;
    }
  return TRUE;
}

gboolean
_es_sqlite_storage_backup (EsStorageHandle        *handle,
                           GFile                  *destination,
                           EsBackupFlags           flags,
                           GCancellable           *cancellable,
                           GFileProgressCallback   progress_callback,
                           gpointer                progress_data,
                           GError                **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *path = g_file_peek_path (destination);
  g_autofree char *dir = NULL;
  g_autofree char *base = NULL;
  g_autofree char *tmp = NULL;
  g_autofree char *display = NULL;
  sqlite3 *src = NULL;
  sqlite3 *dst = NULL;
  gboolean ok = FALSE;
  int fd;

  if (path == NULL)
    {
      g_autofree char *uri = g_file_get_uri (destination);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   /* Translators: %s is a URI */
                   _("Cannot write a backup to '%s': backups are written to local files"),
                   uri);
      return FALSE;
    }
  display = g_strdup_printf ("'%s'", path);
  if ((flags & ES_BACKUP_FLAGS_OVERWRITE) == 0 && g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   /* Translators: %s is a file name */
                   _("Cannot write a backup to '%s': the file exists"), path);
      return FALSE;
    }
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY,
                   /* Translators: %s is a file name */
                   _("Cannot write a backup to '%s': it is a directory"), path);
      return FALSE;
    }

  /* The temporary file is created next to the destination, so that the
   * rename is atomic, with a name no one takes for a database. */
  dir = g_path_get_dirname (path);
  base = g_path_get_basename (path);
  tmp = g_strdup_printf ("%s%c.%s.XXXXXX.part", dir, G_DIR_SEPARATOR, base);
  fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0)
    return set_io_error_from_errno (error, errno, path);
  close (fd);

  src = _es_sqlite_storage_open_reader (self, error);
  if (src == NULL)
    goto out;

  /* One read transaction for the whole copy: the backup reads one
   * snapshot (WAL) and never starts over, whatever writers do meanwhile;
   * they are not blocked by it. */
  if (sqlite3_exec (src, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
    {
      _es_sqlite_set_error (error, src, sqlite3_errcode (src), _("Backing up"),
                            self->where, self->busy_timeout);
      goto out;
    }

  if (sqlite3_open_v2 (tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
    {
      _es_sqlite_set_error (error, dst, sqlite3_errcode (dst), _("Backing up"), display, 0);
      goto out;
    }
  sqlite3_exec (dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);

  if (!backup_copy (src, dst, display, cancellable, progress_callback, progress_data, error))
    goto out;

  sqlite3_exec (src, "COMMIT", NULL, NULL, NULL);
  if (sqlite3_close (dst) != SQLITE_OK)
    {
      _es_sqlite_set_error (error, dst, sqlite3_errcode (dst), _("Backing up"), display, 0);
      goto out;
    }
  dst = NULL;

  if (g_cancellable_set_error_if_cancelled (cancellable, error) ||
      !fsync_path (tmp, FALSE, error))
    goto out;

  if ((flags & ES_BACKUP_FLAGS_OVERWRITE) != 0)
    {
      if (g_rename (tmp, path) != 0)
        {
          set_io_error_from_errno (error, errno, path);
          goto out;
        }
    }
  else
    {
      /* link() fails if the destination appeared meanwhile: never
       * overwrite what someone else created. */
      if (link (tmp, path) != 0)
        {
          set_io_error_from_errno (error, errno, path);
          goto out;
        }
      g_unlink (tmp);
    }
  g_clear_pointer (&tmp, g_free);
  /* The rename is done; a failed sync of the directory only weakens
   * its durability across a power cut. */
  fsync_path (dir, TRUE, NULL);
  ok = TRUE;

out:
  if (dst != NULL)
    sqlite3_close (dst);
  if (src != NULL)
    sqlite3_close (src);
  if (tmp != NULL)
    remove_with_side_files (tmp);
  return ok;
}

/* ---------------------------------------------------------------------- *
 * Integrity check                                                          *
 * ---------------------------------------------------------------------- */

typedef struct
{
  EsSqliteStorage *self;
  sqlite3         *db;
  EsCheckReport   *report;
  GCancellable    *cancellable;
} Checker;

static int
check_progress_handler (void *data)
{
  Checker *checker = data;

  return g_cancellable_is_cancelled (checker->cancellable) ? 1 : 0;
}

typedef void (*RowFunc) (Checker      *checker,
                         sqlite3_stmt *stmt);

/* Runs @sql, calling @row for each row. A query that fails on damage is a
 * storage problem of the report, not an error; a cancellation is. */
static gboolean
check_query (Checker      *checker,
             const char   *sql,
             RowFunc       row,
             GError      **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (checker->db, sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        row (checker, stmt);
    }
  sqlite3_finalize (stmt);

  if (rc == SQLITE_DONE)
    return TRUE;
  if (rc == SQLITE_INTERRUPT || g_cancellable_is_cancelled (checker->cancellable))
    {
      g_cancellable_set_error_if_cancelled (checker->cancellable, error);
      if (error != NULL && *error == NULL)
        _es_sqlite_set_error (error, NULL, SQLITE_INTERRUPT, "", "", 0);
      return FALSE;
    }
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ||
      (rc & 0xff) == SQLITE_NOMEM)
    {
      _es_sqlite_set_error (error, checker->db, rc, _("Checking the database"),
                            checker->self->where, checker->self->busy_timeout);
      return FALSE;
    }
  {
    g_autofree char *message =
      g_strdup_printf (/* Translators: %s is SQLite's own (English) explanation */
                       _("Reading the database failed: %s"), sqlite3_errmsg (checker->db));
    es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_STORAGE, NULL, 0, message);
  }
  return TRUE;
}

static void
integrity_row (Checker      *checker,
               sqlite3_stmt *stmt)
{
  const char *text = (const char *) sqlite3_column_text (stmt, 0);

  if (text != NULL && strcmp (text, "ok") != 0)
    {
      g_autofree char *message =
        g_strdup_printf (/* Translators: %s is SQLite's own (English) finding */
                         _("SQLite's integrity check: %s"), text);
      es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_STORAGE, NULL, 0,
                                   message);
    }
}

/* stream_id, version, previous version, sequence id, previous sequence id */
static void
order_row (Checker      *checker,
           sqlite3_stmt *stmt)
{
  const char *stream_id = (const char *) sqlite3_column_text (stmt, 0);
  gint64 version = sqlite3_column_int64 (stmt, 1);
  gint64 previous = sqlite3_column_int64 (stmt, 2);
  gint64 sequence_id = sqlite3_column_int64 (stmt, 3);
  gint64 previous_sequence_id = sqlite3_column_int64 (stmt, 4);
  g_autofree char *message = NULL;

  if (version != previous + 1)
    {
      message = g_strdup_printf (/* Translators: the numbers are versions, %s a stream id */
                                 _("Stream '%s' jumps from version %lld to version %lld"),
                                 stream_id, (long long) previous, (long long) version);
      es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_VERSION_GAP, stream_id,
                                   previous + 1, message);
    }
  if (sequence_id <= previous_sequence_id)
    {
      g_clear_pointer (&message, g_free);
      message = g_strdup_printf (/* Translators: %lld are a version and sequence ids, %s a stream id */
                                 _("Version %lld of stream '%s' has sequence id %lld, not after "
                                   "its previous version's %lld"),
                                 (long long) version, stream_id, (long long) sequence_id,
                                 (long long) previous_sequence_id);
      es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_SEQUENCE_ORDER, stream_id,
                                   version, message);
    }
}

/* streams row against events: stream_id, version, event_count,
 * first_version, first_timestamp, last_timestamp, n, first, last,
 * first event's timestamp, last event's timestamp */
static void
streams_row (Checker      *checker,
             sqlite3_stmt *stmt)
{
  const char *stream_id = (const char *) sqlite3_column_text (stmt, 0);
  gint64 version = sqlite3_column_int64 (stmt, 1);
  gint64 count = sqlite3_column_int64 (stmt, 2);
  gint64 first_version = sqlite3_column_int64 (stmt, 3);
  gint64 first_timestamp = sqlite3_column_int64 (stmt, 4);
  gint64 last_timestamp = sqlite3_column_int64 (stmt, 5);
  gboolean has_row = sqlite3_column_type (stmt, 1) != SQLITE_NULL;
  gint64 n = sqlite3_column_int64 (stmt, 6);
  gint64 first = sqlite3_column_int64 (stmt, 7);
  gint64 last = sqlite3_column_int64 (stmt, 8);
  gint64 first_ts = sqlite3_column_int64 (stmt, 9);
  gint64 last_ts = sqlite3_column_int64 (stmt, 10);
  g_autofree char *message = NULL;

  if (!has_row)
    message = g_strdup_printf (/* Translators: %s is a stream id, %lld a number of events */
                               _("Stream '%s' has %lld events but no record in the streams table"),
                               stream_id, (long long) n);
  else if (count != n)
    message = g_strdup_printf (/* Translators: %s is a stream id, %lld numbers of events */
                               _("Stream '%s' is recorded with %lld events but has %lld"),
                               stream_id, (long long) count, (long long) n);
  else if (n > 0 && (version != last || first_version != first))
    message = g_strdup_printf (/* Translators: %s is a stream id, %lld versions */
                               _("Stream '%s' is recorded with versions %lld to %lld but holds "
                                 "versions %lld to %lld"),
                               stream_id, (long long) first_version, (long long) version,
                               (long long) first, (long long) last);
  else if (n > 0 && (first_timestamp != first_ts || last_timestamp != last_ts))
    message = g_strdup_printf (/* Translators: %s is a stream id */
                               _("Stream '%s' is recorded with timestamps that are not those of "
                                 "its first and last events"),
                               stream_id);
  if (message != NULL)
    es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_STREAM_MISMATCH, stream_id,
                                 has_row ? version : last, message);
}

/* stream_id, key, count, a version */
static void
key_row (Checker      *checker,
         sqlite3_stmt *stmt)
{
  const char *stream_id = (const char *) sqlite3_column_text (stmt, 0);
  const char *key = (const char *) sqlite3_column_text (stmt, 1);
  gint64 n = sqlite3_column_int64 (stmt, 2);
  gint64 version = sqlite3_column_int64 (stmt, 3);
  g_autofree char *message =
    g_strdup_printf (/* Translators: the first %s is an idempotency key, the second a stream id, %lld a count */
                     _("Idempotency key '%s' appears %lld times in stream '%s'"),
                     key, (long long) n, stream_id);

  es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_DUPLICATE_KEY, stream_id,
                               version, message);
}

/* stream_id, projection, version, head */
static void
snapshot_row (Checker      *checker,
              sqlite3_stmt *stmt)
{
  const char *stream_id = (const char *) sqlite3_column_text (stmt, 0);
  const char *projection = (const char *) sqlite3_column_text (stmt, 1);
  gint64 version = sqlite3_column_int64 (stmt, 2);
  gint64 head = sqlite3_column_int64 (stmt, 3);
  g_autofree char *message =
    g_strdup_printf (/* Translators: the first %s is a projection name, the second a stream id, %lld positions */
                     _("Snapshot '%s' of stream '%s' is at position %lld, past the stream's %lld"),
                     projection, stream_id, (long long) version, (long long) head);

  es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_SNAPSHOT,
                               strcmp (stream_id, ALL_STREAM_KEY) == 0 ? NULL : stream_id,
                               version, message);
}

/* name, stream_id, position, head */
static void
checkpoint_row (Checker      *checker,
                sqlite3_stmt *stmt)
{
  const char *name = (const char *) sqlite3_column_text (stmt, 0);
  const char *stream_id = (const char *) sqlite3_column_text (stmt, 1);
  gint64 position = sqlite3_column_int64 (stmt, 2);
  gint64 head = sqlite3_column_int64 (stmt, 3);
  g_autofree char *message =
    g_strdup_printf (/* Translators: the first %s is a subscription name, the second a stream id, %lld positions */
                     _("Subscription '%s' of stream '%s' has its checkpoint at %lld, past the "
                       "stream's head %lld"),
                     name, stream_id, (long long) position, (long long) head);

  es_check_report_add_problem (checker->report, ES_CHECK_PROBLEM_CHECKPOINT,
                               strcmp (stream_id, ALL_STREAM_KEY) == 0 ? NULL : stream_id,
                               position, message);
}

static const struct
{
  const char *sql;
  RowFunc     row;
} invariants[] = {
  /* Versions follow each other, and so do sequence ids, in each stream:
   * one walk of the (stream_id, version) index. */
  { "SELECT stream_id, version, prev, sequence_id, prev_seq FROM"
    " (SELECT stream_id, version, sequence_id,"
    "   lag (version) OVER w AS prev, lag (sequence_id) OVER w AS prev_seq"
    "  FROM events WHERE flags < 2 WINDOW w AS (PARTITION BY stream_id ORDER BY version))"
    " WHERE prev IS NOT NULL AND (version != prev + 1 OR sequence_id <= prev_seq)"
    " LIMIT 1000", order_row },
  /* The streams table against the events, both ways (no FULL JOIN: it
   * needs SQLite 3.39). */
  { "SELECT g.stream_id, s.version, s.event_count, s.first_version,"
    " s.first_timestamp, s.last_timestamp, g.n, g.first, g.last,"
    " (SELECT timestamp FROM events WHERE stream_id = g.stream_id AND version = g.first),"
    " (SELECT timestamp FROM events WHERE stream_id = g.stream_id AND version = g.last)"
    " FROM (SELECT stream_id, count(*) AS n, min(version) AS first, max(version) AS last"
    "       FROM events WHERE flags < 2 GROUP BY stream_id) AS g"
    " LEFT JOIN streams AS s ON s.stream_id = g.stream_id"
    " WHERE s.stream_id IS NULL OR s.event_count != g.n"
    "   OR s.version != g.last OR s.first_version != g.first"
    "   OR s.first_timestamp != (SELECT timestamp FROM events WHERE stream_id = g.stream_id AND version = g.first)"
    "   OR s.last_timestamp != (SELECT timestamp FROM events WHERE stream_id = g.stream_id AND version = g.last)"
    " LIMIT 1000", streams_row },
  { "SELECT s.stream_id, s.version, s.event_count, s.first_version, s.first_timestamp,"
    " s.last_timestamp, 0, 0, 0, 0, 0 FROM streams AS s"
    " WHERE s.event_count != 0 AND NOT EXISTS"
    "  (SELECT 1 FROM events WHERE stream_id = s.stream_id AND flags < 2)"
    " LIMIT 1000", streams_row },
  /* Keys, from the table itself (NOT INDEXED): the unique index could be
   * the damaged part. */
  { "SELECT stream_id, idempotency_key, count(*), max(version) FROM events NOT INDEXED"
    " WHERE idempotency_key IS NOT NULL AND flags < 2"
    " GROUP BY stream_id, idempotency_key HAVING count(*) > 1 LIMIT 1000", key_row },
  { "SELECT n.stream_id, n.projection_name, n.version,"
    "  CASE WHEN n.stream_id = '" ALL_STREAM_KEY "'"
    "   THEN (SELECT coalesce (max(sequence_id), 0) FROM events)"
    "   ELSE coalesce ((SELECT version FROM streams WHERE stream_id = n.stream_id), 0) END AS head"
    " FROM snapshots AS n WHERE n.version > head LIMIT 1000", snapshot_row },
  { "SELECT b.name, b.stream_id, b.position,"
    "  CASE WHEN b.stream_id = '" ALL_STREAM_KEY "'"
    "   THEN (SELECT coalesce (max(sequence_id), 0) FROM events)"
    "   ELSE coalesce ((SELECT version FROM streams WHERE stream_id = b.stream_id), 0) END AS head"
    " FROM subscriptions AS b WHERE b.position > head LIMIT 1000", checkpoint_row },
};

gboolean
_es_sqlite_storage_check (EsStorageHandle        *handle,
                          EsCheckFlags            flags,
                          EsCheckReport          *report,
                          GCancellable           *cancellable,
                          GFileProgressCallback   progress_callback,
                          gpointer                progress_data,
                          GError                **error)
{
  Checker checker = { ES_SQLITE_STORAGE (handle), NULL, report, cancellable };
  goffset total = 1 + G_N_ELEMENTS (invariants);
  g_autofree char *integrity = NULL;
  gboolean ok = FALSE;

  checker.db = _es_sqlite_storage_open_reader (checker.self, error);
  if (checker.db == NULL)
    return FALSE;
  sqlite3_progress_handler (checker.db, 10000, check_progress_handler, &checker);

  if (progress_callback != NULL)
    progress_callback (0, total, progress_data);

  /* One snapshot for every query. A file too damaged to start a read
   * transaction is a storage problem too. */
  if (sqlite3_exec (checker.db, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL,
                    NULL) != SQLITE_OK)
    {
      int rc = sqlite3_errcode (checker.db);

      if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
        {
          g_autofree char *message =
            g_strdup_printf (_("Reading the database failed: %s"), sqlite3_errmsg (checker.db));
          es_check_report_add_problem (report, ES_CHECK_PROBLEM_STORAGE, NULL, 0, message);
          ok = TRUE;
        }
      else
        _es_sqlite_set_error (error, checker.db, rc, _("Checking the database"),
                              checker.self->where, checker.self->busy_timeout);
      goto out;
    }

  integrity = g_strdup_printf ("PRAGMA %s (%d)",
                               (flags & ES_CHECK_FLAGS_QUICK) != 0 ? "quick_check" : "integrity_check",
                               INTEGRITY_MAX_ERRORS);
  if (!check_query (&checker, integrity, integrity_row, error))
    goto out;
  if (progress_callback != NULL)
    progress_callback (1, total, progress_data);

  for (gsize i = 0; i < G_N_ELEMENTS (invariants); i++)
    {
      if (!check_query (&checker, invariants[i].sql, invariants[i].row, error))
        goto out;
      if (progress_callback != NULL)
        progress_callback ((goffset) i + 2, total, progress_data);
    }
  ok = TRUE;

out:
  sqlite3_exec (checker.db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close (checker.db);
  return ok;
}
