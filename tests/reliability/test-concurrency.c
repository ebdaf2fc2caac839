/* test-concurrency.c: concurrent writers lose nothing and duplicate nothing;
 * a write blocked by another connection's lock fails in time.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

#define N_PROCESSES 3
#define N_THREADS   4  /* per process, see crash-writer.c */
#define ITERATIONS  150

typedef struct
{
  char   *stream_id;
  gint64  version;
} Win;

static void
win_free (gpointer data)
{
  Win *win = data;

  g_free (win->stream_id);
  g_free (win);
}

static char *
make_db_path (char **out_dir)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("es-concurrency-XXXXXX", &error);

  g_assert_no_error (error);
  *out_dir = dir;
  return g_build_filename (dir, "events.db", NULL);
}

static void
remove_db (char *dir,
           char *path)
{
  const char *suffixes[] = { "", "-wal", "-shm" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *file = g_strconcat (path, suffixes[i], NULL);

      g_unlink (file);
    }
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

/* Processes that open one new file at the same moment all succeed, and
 * leave one es-glib database: its creation is not theirs to fight over
 * (SQLite failed some of them with "disk I/O error", "attempt to write a
 * readonly database", "not an es-glib database", or a busy timeout). */
#define FIRST_OPEN_ROUNDS    15
#define FIRST_OPEN_PROCESSES 6

static void
test_first_open (void)
{
  const char *writer = g_getenv ("ES_CRASH_WRITER");

  if (writer == NULL)
    {
      g_test_skip ("ES_CRASH_WRITER is not set (run through meson test)");
      return;
    }

  for (guint round = 0; round < FIRST_OPEN_ROUNDS; round++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(EsSqliteStorage) storage = NULL;
      g_autoptr(EsStreamInfo) info = NULL;
      GSubprocess *processes[FIRST_OPEN_PROCESSES];
      char *dir = NULL;
      char *path = make_db_path (&dir);

      for (guint i = 0; i < FIRST_OPEN_PROCESSES; i++)
        {
          processes[i] = g_subprocess_new (G_SUBPROCESS_FLAGS_STDERR_PIPE, &error,
                                           writer, "open", path, NULL);
          g_assert_no_error (error);
        }
      for (guint i = 0; i < FIRST_OPEN_PROCESSES; i++)
        {
          g_autofree char *err = NULL;

          g_subprocess_communicate_utf8 (processes[i], NULL, NULL, NULL, &err, &error);
          g_assert_no_error (error);
          g_assert_true (g_subprocess_get_if_exited (processes[i]));
          if (g_subprocess_get_exit_status (processes[i]) != 0)
            g_error ("round %u, process %u: %s", round, i, err);
          g_object_unref (processes[i]);
        }

      /* One database of the current schema, empty. */
      storage = es_sqlite_storage_new (path, 1, NULL, &error);
      g_assert_no_error (error);
      info = es_storage_handle_get_stream_info (ES_STORAGE_HANDLE (storage), NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (es_stream_info_get_event_count (info), ==, 0);
      g_assert_true (es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, &error));
      g_clear_object (&storage);
      remove_db (dir, path);
    }
}

/* 3 processes x 4 threads, read-modify-write on two shared streams with
 * expected_version = the version read: the stored events are exactly the
 * reported winners, each once, at the version each was told. */
static void
test_race (void)
{
  const char *writer = g_getenv ("ES_CRASH_WRITER");
  g_autoptr(GHashTable) wins = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, win_free);
  g_autoptr(GHashTable) stored = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *iterations = g_strdup_printf ("%u", ITERATIONS);
  GSubprocess *processes[N_PROCESSES];
  char *dir = NULL;
  char *path = make_db_path (&dir);
  guint n_lost = 0;
  guint n_stored = 0;
  guint i;
  const char *streams[] = { "race-a", "race-b" };

  if (writer == NULL)
    {
      g_test_skip ("ES_CRASH_WRITER is not set (run through meson test)");
      remove_db (dir, path);
      return;
    }

  /* Create the file first, so the writers do not race to make the schema
   * (they may, but that is the sqlite suite's business). */
  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);

  for (i = 0; i < N_PROCESSES; i++)
    {
      processes[i] = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                                       writer, "race", path, iterations, NULL);
      g_assert_no_error (error);
    }

  for (i = 0; i < N_PROCESSES; i++)
    {
      g_autofree char *out = NULL;
      g_auto(GStrv) lines = NULL;
      guint l;

      g_subprocess_communicate_utf8 (processes[i], NULL, NULL, &out, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_get_if_exited (processes[i]));
      g_assert_cmpint (g_subprocess_get_exit_status (processes[i]), ==, 0);
      g_object_unref (processes[i]);

      lines = g_strsplit (out, "\n", -1);
      for (l = 0; lines[l] != NULL && *lines[l] != '\0'; l++)
        {
          g_auto(GStrv) f = g_strsplit (lines[l], " ", -1);

          if (g_str_equal (f[0], "WIN"))
            {
              Win *win = g_new0 (Win, 1);

              g_assert_cmpuint (g_strv_length (f), ==, 4);
              win->stream_id = g_strdup (f[1]);
              win->version = g_ascii_strtoll (f[2], NULL, 10);
              g_assert_false (g_hash_table_contains (wins, f[3]));
              g_hash_table_insert (wins, g_strdup (f[3]), win);
            }
          else
            {
              g_assert_cmpstr (f[0], ==, "LOSE");
              g_assert_cmpuint (g_strv_length (f), ==, 3);
              n_lost++;
            }
        }
    }

  /* Every attempt was reported, as a win or a loss. */
  g_assert_cmpuint (g_hash_table_size (wins) + n_lost, ==, N_PROCESSES * N_THREADS * ITERATIONS);
  g_assert_cmpuint (g_hash_table_size (wins), >, 0);

  for (i = 0; i < G_N_ELEMENTS (streams); i++)
    {
      g_autoptr(EsStream) stream = NULL;
      g_autoptr(EsEventEnumerator) enumerator = NULL;
      EsStoredEvent *event;
      gint64 expected_version = 1;

      stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), streams[i],
                                              NULL, &error);
      g_assert_no_error (error);
      enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
      g_assert_no_error (error);

      while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
        {
          const char *key = es_stored_event_get_id (event);
          Win *win = g_hash_table_lookup (wins, key);
          gsize len;
          const char *data = g_bytes_get_data (es_stored_event_get_data (event), &len);
          g_autofree char *text = g_strndup (data, len);
          g_autofree char *expected_text = NULL;

          /* Versions 1..N; a winner, once, where it was told it landed,
           * right after the version it read. */
          g_assert_cmpint (es_stored_event_get_version (event), ==, expected_version);
          if (win == NULL)
            g_error ("stored event %s was not reported as written", key);
          g_assert_cmpstr (win->stream_id, ==, streams[i]);
          g_assert_cmpint (win->version, ==, expected_version);
          g_assert_true (g_hash_table_add (stored, g_strdup (key)));
          expected_text = g_strdup_printf ("key=%s;read=%" G_GINT64_FORMAT, key,
                                           expected_version - 1);
          g_assert_cmpstr (text, ==, expected_text);

          expected_version++;
          n_stored++;
          g_object_unref (event);
        }
      g_assert_no_error (error);
    }

  /* ... and every winner is stored. */
  g_assert_cmpuint (n_stored, ==, g_hash_table_size (wins));

  g_test_message ("concurrent writers: %u processes x %u threads, %u writes attempted, "
                  "%u won, %u lost (WRONG_EXPECTED_VERSION), %u stored",
                  N_PROCESSES, N_THREADS, N_PROCESSES * N_THREADS * ITERATIONS,
                  g_hash_table_size (wins), n_lost, n_stored);

  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
  remove_db (dir, path);
}

/* Another connection holds the write lock longer than the busy timeout: a
 * write fails with ES_ERROR_STORAGE saying the database is busy, within the
 * timeout plus a margin; once the lock is gone, writes work again. */
static void
test_busy_timeout (void)
{
  const guint busy_timeout = 200;
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Blocked", NULL);
  g_autoptr(GError) error = NULL;
  sqlite3 *db = NULL;
  char *dir = NULL;
  char *path = make_db_path (&dir);
  gint64 start, elapsed_ms;
  gint64 version;

  storage = g_initable_new (ES_TYPE_SQLITE_STORAGE, NULL, &error,
                            "path", path,
                            "busy-timeout", busy_timeout,
                            NULL);
  g_assert_no_error (error);
  factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage), NULL);
  stream = es_stream_factory_open_stream (factory, "blocked", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 1);
  g_assert_no_error (error);

  /* A raw connection takes the write lock and keeps it. */
  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);

  start = g_get_monotonic_time ();
  version = es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_assert_cmpint (version, ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_test_message ("blocked write: '%s' after %" G_GINT64_FORMAT " ms (busy timeout %u ms)",
                  error->message, elapsed_ms, busy_timeout);
  g_assert_nonnull (strstr (error->message, "busy"));
  g_assert_cmpint (elapsed_ms, >=, busy_timeout - 20);
  g_assert_cmpint (elapsed_ms, <=, busy_timeout + 1000);
  g_clear_error (&error);

  /* Reads go on meanwhile (WAL), and see only the first event. */
  {
    g_autoptr(EsStreamMetrics) metrics = es_stream_get_metrics (stream, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 1);
  }

  g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_close (db), ==, SQLITE_OK);

  /* The failed write took nothing; the next one works. */
  g_assert_cmpint (es_stream_write (stream, &event, 1, 1, NULL, &error), ==, 2);
  g_assert_no_error (error);

  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
  remove_db (dir, path);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/reliability/concurrency/read-modify-write", test_race);
  g_test_add_func ("/reliability/concurrency/busy-timeout", test_busy_timeout);
  g_test_add_func ("/reliability/concurrency/first-open", test_first_open);

  return g_test_run ();
}
