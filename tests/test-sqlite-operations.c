/* test-sqlite-operations.c: backup and check on SQLite (issue 19): what
 * only a file backend promises.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <sqlite3.h>
#include <glib/gstdio.h>

#include <es-glib/es-glib.h>

#include "es-test-utils.h"

typedef struct
{
  char            *dir;
  char            *path;
  EsStreamFactory *factory;
} Fixture;

static void
setup (Fixture       *f,
       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("es-ops-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "events.db", NULL);
  f->factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (f->path, NULL, &error));
  g_assert_no_error (error);
}

static void
teardown (Fixture       *f,
          gconstpointer  data)
{
  if (f->factory != NULL)
    es_test_factory_close_and_free (g_steal_pointer (&f->factory));
  es_test_remove_tree (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static void
write_stream (EsStreamFactory *factory,
              const char      *stream_id,
              guint            n)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, stream_id);

  es_test_write_n (stream, n, "Counted");
}

static guint
count_files (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  while (g_dir_read_name (d) != NULL)
    n++;
  return n;
}

static void
progress_cb (goffset  current,
             goffset  total,
             gpointer data)
{
  goffset *last = data;

  g_assert_cmpint (current, <=, total);
  last[0] = current;
  last[1] = total;
}

static void
test_backup (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *dest = g_build_filename (f->dir, "backup.db", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamFactory) copy = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autofree char *before = NULL;
  gsize before_len = 0;
  goffset progress[2] = { -1, -1 };
  guint files;

  write_stream (f->factory, "a", 3000);
  write_stream (f->factory, "b", 10);

  g_assert_true (es_stream_factory_backup (f->factory, file, ES_BACKUP_FLAGS_NONE, NULL,
                                           progress_cb, progress, &error));
  g_assert_no_error (error);
  g_assert_cmpint (progress[0], ==, progress[1]);
  g_assert_cmpint (progress[1], >, 4096);

  /* A valid es-glib database holding the same events. */
  copy = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (dest, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(EsStream) a = es_test_open_stream (copy, "a");
    g_autoptr(GPtrArray) events = es_test_read_all_ok (a, 0, NULL);
    g_autoptr(EsCheckReport) report = es_stream_factory_check (copy, ES_CHECK_FLAGS_NONE, NULL,
                                                               NULL, NULL, &error);

    g_assert_cmpuint (events->len, ==, 3000);
    es_test_assert_consecutive (events, 0, FALSE);
    g_assert_no_error (error);
    g_assert_true (es_check_report_is_ok (report));
  }
  es_test_factory_close_and_free (g_steal_pointer (&copy));

  /* An existing destination is refused and left alone. */
  g_assert_true (g_file_get_contents (dest, &before, &before_len, NULL));
  write_stream (f->factory, "c", 1);
  g_assert_false (es_stream_factory_backup (f->factory, file, ES_BACKUP_FLAGS_NONE, NULL, NULL,
                                            NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_assert_nonnull (strstr (error->message, dest));
  g_clear_error (&error);
  {
    g_autofree char *after = NULL;
    gsize after_len = 0;

    g_assert_true (g_file_get_contents (dest, &after, &after_len, NULL));
    g_assert_cmpmem (before, before_len, after, after_len);
  }

  /* OVERWRITE replaces it. */
  g_assert_true (es_stream_factory_backup (f->factory, file, ES_BACKUP_FLAGS_OVERWRITE, NULL,
                                           NULL, NULL, &error));
  g_assert_no_error (error);
  copy = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (dest, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(EsStreamInfo) info = es_stream_factory_get_stream_info (copy, "c", NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (es_stream_info_get_current_version (info), ==, 1);
  }
  es_test_factory_close_and_free (g_steal_pointer (&copy));

  /* Cancelled: nothing new in the directory. */
  files = count_files (f->dir);
  g_cancellable_cancel (cancellable);
  {
    g_autofree char *other = g_build_filename (f->dir, "cancelled.db", NULL);
    g_autoptr(GFile) other_file = g_file_new_for_path (other);

    g_assert_false (es_stream_factory_backup (f->factory, other_file, ES_BACKUP_FLAGS_NONE,
                                              cancellable, NULL, NULL, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
    g_assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
  }
  g_assert_cmpuint (count_files (f->dir), ==, files);

  /* A directory that does not exist: an error naming the destination. */
  {
    g_autofree char *missing = g_build_filename (f->dir, "no-such-dir", "b.db", NULL);
    g_autoptr(GFile) missing_file = g_file_new_for_path (missing);

    g_assert_false (es_stream_factory_backup (f->factory, missing_file, ES_BACKUP_FLAGS_NONE,
                                              NULL, NULL, NULL, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
    g_assert_nonnull (strstr (error->message, missing));
  }
}

/* Cancels the backup from its progress callback, mid-copy. */
static void
cancel_cb (goffset  current,
           goffset  total,
           gpointer data)
{
  if (current > 0 && current < total)
    g_cancellable_cancel (data);
}

static void
test_backup_interrupted (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *dest = g_build_filename (f->dir, "backup.db", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "big");
  guint files;

  /* Several chunks of 256 pages. */
  for (guint i = 0; i < 20; i++)
    es_test_write_n (stream, 1000, "Big event with a long name to take some room");
  files = count_files (f->dir);
  g_assert_false (es_stream_factory_backup (f->factory, file, ES_BACKUP_FLAGS_NONE, cancellable,
                                            cancel_cb, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_files (f->dir), ==, files);
}

typedef struct
{
  EsStreamFactory *factory;
  gint             stop;
  gint             written;
} Writer;

static gpointer
writer_thread (gpointer data)
{
  Writer *w = data;
  g_autoptr(EsStream) stream = es_test_open_stream (w->factory, "live");

  while (!g_atomic_int_get (&w->stop))
    {
      g_autofree char *payload = g_strdup_printf ("{\"n\":%d}", g_atomic_int_get (&w->written) + 1);
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Tick", payload, NULL, NULL);
      g_autoptr(GError) error = NULL;

      es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
      g_atomic_int_inc (&w->written);
    }
  return NULL;
}

static void
test_backup_with_writer (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *dest = g_build_filename (f->dir, "backup.db", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamFactory) writer_factory = NULL;
  g_autoptr(EsStreamFactory) copy = NULL;
  Writer w = { NULL, 0, 0 };
  GThread *thread;
  gint written_before;

  write_stream (f->factory, "filler", 5000);
  writer_factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (f->path, NULL, &error));
  g_assert_no_error (error);
  w.factory = writer_factory;
  thread = g_thread_new ("writer", writer_thread, &w);
  while (g_atomic_int_get (&w.written) < 50)
    g_usleep (1000);
  written_before = g_atomic_int_get (&w.written);

  g_assert_true (es_stream_factory_backup (f->factory, file, ES_BACKUP_FLAGS_NONE, NULL, NULL,
                                           NULL, &error));
  g_assert_no_error (error);
  g_atomic_int_set (&w.stop, 1);
  g_thread_join (thread);

  /* The copy holds a prefix of the writer's events: versions 1..k, each
   * the one written, k at least what was written before the backup. */
  copy = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (dest, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(EsStream) live = es_test_open_stream (copy, "live");
    g_autoptr(GPtrArray) events = es_test_read_all_ok (live, 0, NULL);

    g_assert_cmpuint (events->len, >=, (guint) written_before);
    g_assert_cmpuint (events->len, <=, (guint) g_atomic_int_get (&w.written));
    es_test_assert_consecutive (events, 0, FALSE);
    for (guint i = 0; i < events->len; i++)
      {
        g_autofree char *expected = g_strdup_printf ("{\"n\":%u}", i + 1);
        GBytes *bytes = es_stored_event_get_data (g_ptr_array_index (events, i));

        g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                         expected, strlen (expected));
      }
  }
  {
    g_autoptr(EsCheckReport) report = es_stream_factory_check (copy, ES_CHECK_FLAGS_NONE, NULL,
                                                               NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_true (es_check_report_is_ok (report));
  }
  es_test_factory_close_and_free (g_steal_pointer (&copy));
  es_test_factory_close_and_free (g_steal_pointer (&writer_factory));
}

/* Runs @sql on the closed database, as damage would. */
static void
plant (Fixture    *f,
       const char *sql)
{
  sqlite3 *db = NULL;
  char *message = NULL;

  if (f->factory != NULL)
    es_test_factory_close_and_free (g_steal_pointer (&f->factory));
  g_assert_cmpint (sqlite3_open (f->path, &db), ==, SQLITE_OK);
  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s: %s", sql, message);
  sqlite3_close (db);
}

static EsCheckReport *
check (Fixture      *f,
       EsCheckFlags  flags)
{
  g_autoptr(GError) error = NULL;
  EsCheckReport *report;

  if (f->factory == NULL)
    {
      f->factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (f->path, NULL, &error));
      g_assert_no_error (error);
    }
  report = es_stream_factory_check (f->factory, flags, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < es_check_report_get_n_problems (report); i++)
    g_test_message ("problem %u: %d %s %" G_GINT64_FORMAT " %s", i,
                    es_check_report_get_problem_kind (report, i),
                    es_check_report_get_problem_stream_id (report, i),
                    es_check_report_get_problem_version (report, i),
                    es_check_report_get_problem_message (report, i));
  return report;
}

static gboolean
has_problem (EsCheckReport      *report,
             EsCheckProblemKind  kind,
             const char         *stream_id,
             gint64              version)
{
  for (guint i = 0; i < es_check_report_get_n_problems (report); i++)
    if (es_check_report_get_problem_kind (report, i) == kind &&
        g_strcmp0 (es_check_report_get_problem_stream_id (report, i), stream_id) == 0 &&
        (version < 0 || es_check_report_get_problem_version (report, i) == version))
      return TRUE;
  return FALSE;
}

static void
test_check_gap (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(EsCheckReport) report = NULL;

  write_stream (f->factory, "s", 5);
  report = check (f, ES_CHECK_FLAGS_NONE);
  g_assert_true (es_check_report_is_ok (report));
  g_clear_object (&report);

  plant (f, "DELETE FROM events WHERE stream_id = 's' AND version = 3");
  report = check (f, ES_CHECK_FLAGS_NONE);
  g_assert_false (es_check_report_is_ok (report));
  g_assert_true (has_problem (report, ES_CHECK_PROBLEM_VERSION_GAP, "s", 3));
  /* The streams table still says 5 events. */
  g_assert_true (has_problem (report, ES_CHECK_PROBLEM_STREAM_MISMATCH, "s", -1));
  g_assert_false (es_check_report_has_problem (report, ES_CHECK_PROBLEM_STORAGE));
}

static void
test_check_duplicate_key (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsCheckReport) report = NULL;
  g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "s");
  g_autoptr(EsCandidateEvent) one = es_test_candidate_new ("T", "1", "key-a", NULL);
  g_autoptr(EsCandidateEvent) two = es_test_candidate_new ("T", "2", "key-b", NULL);
  EsCandidateEvent *both[] = { one, two };
  g_autoptr(GError) error = NULL;

  es_stream_write (stream, both, 2, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&stream);
  /* A damaged unique index let a duplicate in: the index is rebuilt with
   * one more column, then its definition put back as it was. */
  plant (f, "DROP INDEX events_idempotency_key;"
            "UPDATE events SET idempotency_key = 'key-a' WHERE stream_id = 's' AND version = 2;"
            "CREATE UNIQUE INDEX events_idempotency_key ON events (stream_id, idempotency_key,"
            " version) WHERE idempotency_key IS NOT NULL;"
            "PRAGMA writable_schema = ON;"
            "UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX events_idempotency_key ON"
            " events (stream_id, idempotency_key) WHERE idempotency_key IS NOT NULL'"
            " WHERE name = 'events_idempotency_key';");
  report = check (f, ES_CHECK_FLAGS_NONE);
  g_assert_true (has_problem (report, ES_CHECK_PROBLEM_DUPLICATE_KEY, "s", 2));
  for (guint i = 0; i < es_check_report_get_n_problems (report); i++)
    if (es_check_report_get_problem_kind (report, i) == ES_CHECK_PROBLEM_DUPLICATE_KEY)
      g_assert_nonnull (strstr (es_check_report_get_problem_message (report, i), "key-a"));
}

static void
test_check_records (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsCheckReport) report = NULL;

  write_stream (f->factory, "s", 3);
  write_stream (f->factory, "t", 2);
  plant (f, "UPDATE streams SET event_count = 7 WHERE stream_id = 's';"
            "INSERT INTO snapshots VALUES ('t', 'p', 9, x'00', 0);"
            "INSERT INTO subscriptions VALUES ('sub', 't', 4, NULL, 0);"
            "INSERT INTO subscriptions VALUES ('ok', 't', 2, NULL, 0);");
  report = check (f, ES_CHECK_FLAGS_QUICK);
  g_assert_true (has_problem (report, ES_CHECK_PROBLEM_STREAM_MISMATCH, "s", 3));
  g_assert_true (has_problem (report, ES_CHECK_PROBLEM_SNAPSHOT, "t", 9));
  g_assert_true (has_problem (report, ES_CHECK_PROBLEM_CHECKPOINT, "t", 4));
  g_assert_cmpuint (es_check_report_get_n_problems (report), ==, 3);
}

static void
test_check_corrupt_page (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsCheckReport) report = NULL;
  g_autoptr(EsCheckReport) quick = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;
  gsize offset;

  for (guint i = 0; i < 10; i++)
    write_stream (f->factory, "s", 1000);
  es_test_factory_close_and_free (g_steal_pointer (&f->factory));

  /* A page in the middle of the file, overwritten with garbage. */
  g_assert_true (g_file_get_contents (f->path, &contents, &len, NULL));
  g_assert_cmpuint (len, >, 40 * 4096);
  offset = (len / 4096 / 2) * 4096;
  memset (contents + offset, 0xa5, 4096);
  g_assert_true (g_file_set_contents (f->path, contents, (gssize) len, NULL));

  report = check (f, ES_CHECK_FLAGS_NONE);
  g_assert_false (es_check_report_is_ok (report));
  g_assert_true (es_check_report_has_problem (report, ES_CHECK_PROBLEM_STORAGE));
  quick = check (f, ES_CHECK_FLAGS_QUICK);
  g_assert_true (es_check_report_has_problem (quick, ES_CHECK_PROBLEM_STORAGE));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add ("/sqlite-operations/backup", Fixture, NULL, setup, test_backup, teardown);
  g_test_add ("/sqlite-operations/backup-interrupted", Fixture, NULL, setup,
              test_backup_interrupted, teardown);
  g_test_add ("/sqlite-operations/backup-with-writer", Fixture, NULL, setup,
              test_backup_with_writer, teardown);
  g_test_add ("/sqlite-operations/check-gap", Fixture, NULL, setup, test_check_gap, teardown);
  g_test_add ("/sqlite-operations/check-duplicate-key", Fixture, NULL, setup,
              test_check_duplicate_key, teardown);
  g_test_add ("/sqlite-operations/check-records", Fixture, NULL, setup, test_check_records,
              teardown);
  g_test_add ("/sqlite-operations/check-corrupt-page", Fixture, NULL, setup,
              test_check_corrupt_page, teardown);

  return g_test_run ();
}
