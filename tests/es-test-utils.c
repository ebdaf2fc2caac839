/* es-test-utils.c: helpers shared by the C test programs: temporary trees
 * and database fixtures, factories, storages and streams, writing and
 * reading events, waiting for a condition with a timeout, recording what
 * a watch emits, SQLite files through sqlite3, and the PostgreSQL server
 * fixture.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <glib-unix.h>

#include "es-test-utils.h"

/* ------------------------------------------------------------------ */
/* Files, factories, streams                                           */
/* ------------------------------------------------------------------ */

void
es_test_remove_tree (const char *dir_path)
{
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GError) error = NULL;
  const char *name;

  dir = g_dir_open (dir_path, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (dir_path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        es_test_remove_tree (child);
      else
        g_assert_no_errno (g_remove (child));
    }
  g_assert_no_errno (g_rmdir (dir_path));
}

/* Each test gets its own directory: a failed test leaves its files for a
 * look, the next test starts clean. */
void
es_test_db_fixture_setup (EsTestDbFixture *f,
                          gconstpointer    data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *program = g_path_get_basename (g_get_prgname ());
  g_autofree char *template = g_strdup_printf ("%s-XXXXXX", program);

  f->tmpdir = g_dir_make_tmp (template, &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->tmpdir, "events.db", NULL);
}

void
es_test_db_fixture_teardown (EsTestDbFixture *f,
                             gconstpointer    data)
{
  es_test_remove_tree (f->tmpdir);
  g_clear_pointer (&f->tmpdir, g_free);
  g_clear_pointer (&f->path, g_free);
}

/* Closes @factory, drops it, and checks that nothing else holds it once
 * the last callbacks have run. */
void
es_test_factory_close_and_free (EsStreamFactory *factory)
{
  g_autoptr(GError) error = NULL;
  GWeakRef ref;

  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);

  g_weak_ref_init (&ref, factory);
  g_object_unref (factory);
  es_test_assert_finalized (&ref, "factory");
  g_weak_ref_clear (&ref);
}

/* Finalizers of GTask source objects may run on a worker thread a moment
 * after the callback: give them that moment, but no more. */
void
es_test_assert_finalized (GWeakRef   *ref,
                          const char *what)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  GObject *object;

  while ((object = g_weak_ref_get (ref)) != NULL)
    {
      g_object_unref (object);
      if (g_get_monotonic_time () > deadline)
        break;
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (1000);
    }

  if (object != NULL)
    g_test_message ("The %s was not finalized: a reference leaked", what);
  g_assert_null (object);
}

EsStream *
es_test_open_stream (EsStreamFactory *factory,
                     const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  EsStream *stream;

  stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (ES_IS_STREAM (stream));
  g_assert_cmpstr (es_stream_get_stream_id (stream), ==, stream_id);
  return stream;
}

/* A storage on the SQLite database at @path (created unless @read_only),
 * with the default pool of readers. */
EsStorageHandle *
es_test_sqlite_storage_open (const char *path,
                             gboolean    read_only)
{
  g_autoptr(GError) error = NULL;
  EsSqliteStorage *storage;

  if (read_only)
    storage = g_initable_new (ES_TYPE_SQLITE_STORAGE, NULL, &error,
                              "path", path, "read-only", TRUE, NULL);
  else
    storage = es_sqlite_storage_new (path, 0, NULL, &error);
  g_assert_no_error (error);
  return ES_STORAGE_HANDLE (storage);
}

/* Closes @storage (which must succeed) and drops it. */
void
es_test_storage_close (EsStorageHandle *storage)
{
  g_autoptr(GError) error = NULL;

  ES_TEST_ASSERT_OK (es_storage_handle_close (storage, NULL, &error));
  g_object_unref (storage);
}

/* Appends @n events of @event_type, each with @data and @metadata (either
 * may be %NULL), to @stream_id in one call of the storage, whatever its
 * version; returns the stream's version after it. */
gint64
es_test_storage_append_n (EsStorageHandle *storage,
                          const char      *stream_id,
                          guint            n,
                          const char      *event_type,
                          const char      *data,
                          const char      *metadata)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  gint64 version = -1;

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (events, es_test_candidate_new (event_type, data, NULL, metadata));
  ES_TEST_ASSERT_OK (es_storage_handle_append (storage, stream_id, ES_VERSION_ANY,
                                               (EsCandidateEvent * const *) events->pdata,
                                               events->len, &version, NULL, &error));
  return version;
}

/* ------------------------------------------------------------------ */
/* Writing and reading                                                 */
/* ------------------------------------------------------------------ */

EsCandidateEvent *
es_test_candidate_new (const char *event_type,
                       const char *data,
                       const char *idempotency_key,
                       const char *metadata)
{
  g_autoptr(GBytes) bytes = NULL;
  EsCandidateEvent *event;

  if (data != NULL)
    bytes = g_bytes_new (data, strlen (data));
  event = es_candidate_event_new (event_type, bytes);
  if (idempotency_key != NULL)
    es_candidate_event_set_idempotency_key (event, idempotency_key);
  if (metadata != NULL)
    es_candidate_event_set_metadata (event, metadata);
  return event;
}

/* Writes @n events of @event_type without data in one batch. */
gint64
es_test_try_write_n (EsStream    *stream,
                     guint        n,
                     const char  *event_type,
                     GError     **error)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (events, es_candidate_event_new (event_type, NULL));
  return es_stream_write (stream, (EsCandidateEvent * const *) events->pdata, n,
                          ES_VERSION_ANY, NULL, error);
}

void
es_test_write_n (EsStream   *stream,
                 guint       n,
                 const char *event_type)
{
  g_autoptr(GError) error = NULL;

  es_test_try_write_n (stream, n, event_type, &error);
  g_assert_no_error (error);
}

/* Writes one event of @event_type with data "data" (and the key and
 * metadata, if any), which must succeed; returns the new version. */
gint64
es_test_write_one (EsStream   *stream,
                   const char *event_type,
                   const char *idempotency_key,
                   const char *metadata)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new (event_type, "data",
                                                             idempotency_key, metadata);
  g_autoptr(GError) error = NULL;
  gint64 version;

  version = es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, >, 0);
  return version;
}

/* Reads everything after @after through es_event_enumerator_next().
 * Errors may come from es_stream_read() or from the enumerator. */
GPtrArray *
es_test_read_all (EsStream       *stream,
                  gint64          after,
                  EsEventFilter  *filter,
                  GError        **error)
{
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) local_error = NULL;
  EsStoredEvent *event;

  enumerator = es_stream_read (stream, after, filter, NULL, &local_error);
  if (enumerator == NULL)
    {
      g_assert_nonnull (local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  g_assert_no_error (local_error);

  while ((event = es_event_enumerator_next (enumerator, NULL, &local_error)) != NULL)
    g_ptr_array_add (events, event);

  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  return g_steal_pointer (&events);
}

GPtrArray *
es_test_read_all_ok (EsStream      *stream,
                     gint64         after,
                     EsEventFilter *filter)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *events;

  events = es_test_read_all (stream, after, filter, &error);
  g_assert_no_error (error);
  g_assert_nonnull (events);
  return events;
}

/* The sequence ids of every stored event, read through @factory. */
GArray *
es_test_read_all_sequence_ids (EsStreamFactory  *factory,
                               GError          **error)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));

  all = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, error);
  if (all == NULL)
    return NULL;
  enumerator = es_stream_read (all, 0, NULL, NULL, error);
  if (enumerator == NULL)
    return NULL;

  for (;;)
    {
      g_autoptr(GPtrArray) batch = es_event_enumerator_next_batch (enumerator, 1024, NULL, error);

      if (batch == NULL)
        return NULL;
      if (batch->len == 0)
        break;
      for (guint i = 0; i < batch->len; i++)
        {
          gint64 id = es_stored_event_get_sequence_id (g_ptr_array_index (batch, i));

          g_array_append_val (ids, id);
        }
    }
  return g_steal_pointer (&ids);
}

/* ------------------------------------------------------------------ */
/* SQLite files                                                        */
/* ------------------------------------------------------------------ */

/* A connection of sqlite3's own to @path, which waits for the library's
 * writer rather than failing with SQLITE_BUSY. */
sqlite3 *
es_test_sqlite_open (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  sqlite3_busy_timeout (db, 10000);
  return db;
}

/* The first column of the first row of @sql on @path, as an integer. */
gint64
es_test_sqlite_int (const char *path,
                    const char *sql)
{
  sqlite3 *db = es_test_sqlite_open (path);
  sqlite3_stmt *stmt = NULL;
  gint64 value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return value;
}

/* Runs @sql on @path; aborts with sqlite's message if it fails. */
void
es_test_sqlite_exec (const char *path,
                     const char *sql)
{
  sqlite3 *db = es_test_sqlite_open (path);
  char *message = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s: %s", sql, message);
  sqlite3_close (db);
}

/* ------------------------------------------------------------------ */
/* Waiting                                                             */
/* ------------------------------------------------------------------ */

static gboolean
timeout_cb (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates @context (NULL: the global default one) until @done returns
 * TRUE; fails after ES_TEST_WAIT_TIMEOUT_SECONDS. */
void
es_test_wait_until (GMainContext *context,
                    gboolean    (*done) (gpointer data),
                    gpointer      data)
{
  gboolean timed_out = FALSE;
  GSource *timeout = g_timeout_source_new_seconds (ES_TEST_WAIT_TIMEOUT_SECONDS);

  g_source_set_callback (timeout, timeout_cb, &timed_out, NULL);
  g_source_attach (timeout, context);
  while (!done (data) && !timed_out)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_assert_false (timed_out);
}

/* A GAsyncReadyCallback: stores the result in the GAsyncResult * at
 * @user_data, which must be NULL (a second callback would be a bug). */
void
es_test_store_result_cb (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_assert_null (*out);
  *out = g_object_ref (result);
  g_main_context_wakeup (NULL);
}

/* Iterates the global default main context until es_test_store_result_cb()
 * stored @result; fails after ES_TEST_WAIT_TIMEOUT_SECONDS. */
void
es_test_wait_result (GAsyncResult **result)
{
  gint64 deadline = g_get_monotonic_time () + ES_TEST_WAIT_TIMEOUT_SECONDS * G_USEC_PER_SEC;

  while (*result == NULL && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_nonnull (*result);
}

/* Runs the main context for a while, for things that must NOT happen. */
void
es_test_spin (guint milliseconds)
{
  gint64 end = g_get_monotonic_time () + milliseconds * G_TIME_SPAN_MILLISECOND;

  while (g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* Like es_test_wait_until(), for conditions that change off the main
 * context (no wake-up to wait for). */
void
es_test_spin_until (gboolean (*done) (gpointer data),
                    gpointer   data)
{
  gint64 end = g_get_monotonic_time () + ES_TEST_WAIT_TIMEOUT_SECONDS * G_TIME_SPAN_SECOND;

  while (!done (data) && g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  g_assert_true (done (data));
}

/* ------------------------------------------------------------------ */
/* Recording a watch                                                   */
/* ------------------------------------------------------------------ */

static void
on_event (EsWatch        *watch,
          EsStoredEvent  *event,
          EsTestRecorder *recorder)
{
  gint64 now = g_get_monotonic_time ();

  g_assert_true (ES_IS_STORED_EVENT (event));
  g_ptr_array_add (recorder->events, g_object_ref (event));
  g_array_append_val (recorder->times, now);
  recorder->emitting_thread = g_thread_self ();
}

static void
on_caught_up (EsWatch        *watch,
              EsTestRecorder *recorder)
{
  recorder->caught_up++;
  recorder->n_events_at_caught_up = recorder->events->len;
}

static void
on_error (EsWatch        *watch,
          GError         *error,
          EsTestRecorder *recorder)
{
  g_assert_null (recorder->error);
  recorder->error = g_error_copy (error);
}

EsTestRecorder *
es_test_recorder_new (void)
{
  EsTestRecorder *recorder = g_new0 (EsTestRecorder, 1);

  recorder->events = g_ptr_array_new_with_free_func (g_object_unref);
  recorder->times = g_array_new (FALSE, FALSE, sizeof (gint64));
  return recorder;
}

void
es_test_recorder_free (EsTestRecorder *recorder)
{
  g_ptr_array_unref (recorder->events);
  g_array_unref (recorder->times);
  g_clear_error (&recorder->error);
  g_free (recorder);
}

void
es_test_recorder_connect (EsTestRecorder *recorder,
                          EsWatch        *watch)
{
  g_signal_connect (watch, "event", G_CALLBACK (on_event), recorder);
  g_signal_connect (watch, "caught-up", G_CALLBACK (on_caught_up), recorder);
  g_signal_connect (watch, "error", G_CALLBACK (on_error), recorder);
}

static gboolean
is_caught_up (gpointer data)
{
  return ((EsTestRecorder *) data)->caught_up > 0;
}

void
es_test_recorder_wait_caught_up (EsTestRecorder *recorder)
{
  es_test_wait_until (NULL, is_caught_up, recorder);
}

typedef struct
{
  EsTestRecorder *recorder;
  guint           n;
} CountWait;

static gboolean
has_n_events (gpointer data)
{
  CountWait *wait = data;

  return wait->recorder->events->len >= wait->n;
}

/* Iterates @context until @recorder has @n events. */
void
es_test_recorder_wait_events_in (EsTestRecorder *recorder,
                                 GMainContext   *context,
                                 guint           n)
{
  CountWait wait = { recorder, n };

  es_test_wait_until (context, has_n_events, &wait);
}

void
es_test_recorder_wait_events (EsTestRecorder *recorder,
                              guint           n)
{
  es_test_recorder_wait_events_in (recorder, NULL, n);
}

static gboolean
has_error (gpointer data)
{
  return ((EsTestRecorder *) data)->error != NULL;
}

void
es_test_recorder_wait_error (EsTestRecorder *recorder)
{
  es_test_wait_until (NULL, has_error, recorder);
}

/* Every event of a stream watch has version first+1, first+2, ...; every
 * event of an @all watch a higher sequence id than the one before. */
void
es_test_assert_consecutive (GPtrArray *events,
                            gint64     first,
                            gboolean   by_sequence)
{
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      if (by_sequence)
        {
          if (i > 0)
            g_assert_cmpint (es_stored_event_get_sequence_id (event), >,
                             es_stored_event_get_sequence_id (g_ptr_array_index (events, i - 1)));
        }
      else
        g_assert_cmpint (es_stored_event_get_version (event), ==, first + 1 + i);
    }
}

/* The sequence ids a watch emitted equal @expected, in order. */
void
es_test_assert_sequence_ids_equal (GPtrArray *events,
                                   GArray    *expected)
{
  g_assert_cmpuint (events->len, ==, expected->len);
  for (guint i = 0; i < events->len; i++)
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (events, i)), ==,
                     g_array_index (expected, gint64, i));
}

/* ------------------------------------------------------------------ */
/* The PostgreSQL server fixture                                       */
/* ------------------------------------------------------------------ */

static char        *pg_dir;          /* (owned) (nullable) our server's directory */
static GSubprocess *pg_guard;        /* (owned) (nullable) `pg-test-server guard DIR` */
static int          pg_guard_fd = -1; /* the write end of the guard's stdin */

/* At exit: closing the guard's standard input makes it stop the server
 * and remove its directory; wait for that, so that nothing outlives the
 * test program. After a crash, the kernel closes it and the guard does
 * the same alone, also when the server was still starting. */
static void
pg_server_stop (void)
{
  if (pg_guard_fd >= 0)
    {
      close (pg_guard_fd);
      pg_guard_fd = -1;
    }
  if (pg_guard != NULL)
    g_subprocess_wait (pg_guard, NULL, NULL);
  g_clear_object (&pg_guard);
  g_clear_pointer (&pg_dir, g_free);
}

/* The guard gets a session of its own: signals to the test's process
 * group (meson's timeout, ^C) must not stop it before it has done its job. */
static void
guard_child_setup (gpointer user_data)
{
  setsid ();
}

/* `$ES_PG_TEST_SERVER guard DIR` starts the server, says how on its first
 * line of output, and stops it and removes DIR once its standard input,
 * whose other end only we hold, ends. */
static char *
pg_server_start (char **reason)
{
  const char *script = g_getenv ("ES_PG_TEST_SERVER");
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GDataInputStream) output = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  int fds[2];

  if (script == NULL)
    {
      *reason = g_strdup ("Neither ES_TEST_PG_CONNINFO nor ES_PG_TEST_SERVER (the path of "
                          "build-aux/pg-test-server) is set: no PostgreSQL server");
      return NULL;
    }

  pg_dir = g_dir_make_tmp ("es-pg-XXXXXX", &error);
  if (pg_dir == NULL)
    {
      *reason = g_strdup_printf ("Could not start a PostgreSQL server: %s", error->message);
      return NULL;
    }

  if (!g_unix_open_pipe (fds, FD_CLOEXEC, &error))
    g_error ("Cannot make a pipe for the PostgreSQL server's guard: %s", error->message);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_take_stdin_fd (launcher, fds[0]);
  g_subprocess_launcher_set_child_setup (launcher, guard_child_setup, NULL, NULL);
  pg_guard = g_subprocess_launcher_spawn (launcher, &error, script, "guard", pg_dir, NULL);
  if (pg_guard == NULL)
    {
      close (fds[1]);
      *reason = g_strdup_printf ("Could not run %s: %s", script, error->message);
      es_test_remove_tree (pg_dir);
      g_clear_pointer (&pg_dir, g_free);
      return NULL;
    }
  pg_guard_fd = fds[1];
  atexit (pg_server_stop);

  output = g_data_input_stream_new (g_subprocess_get_stdout_pipe (pg_guard));
  line = g_data_input_stream_read_line_utf8 (output, NULL, NULL, &error);
  if (line == NULL)
    {
      /* No line at all: the guard died; the directory is ours to remove. */
      g_subprocess_wait (pg_guard, NULL, NULL);
      if (g_file_test (pg_dir, G_FILE_TEST_IS_DIR))
        es_test_remove_tree (pg_dir);
    }
  if (line == NULL || g_str_has_prefix (line, "error: "))
    {
      *reason = g_strdup_printf ("Could not start a PostgreSQL server: %s",
                                 line != NULL ? g_strstrip (line + strlen ("error: "))
                                 : error != NULL ? error->message
                                 : "the guard said nothing");
      return NULL;
    }
  return g_steal_pointer (&line);
}

const char *
es_test_pg_server_get_conninfo (const char **reason)
{
  static gboolean started = FALSE;
  static char *conninfo = NULL;
  static char *why = NULL;

  if (!started)
    {
      started = TRUE;
      conninfo = g_strdup (g_getenv ("ES_TEST_PG_CONNINFO"));
      if (conninfo == NULL)
        {
          conninfo = pg_server_start (&why);
          if (conninfo != NULL)
            {
              /* For the tests that restart the server, and for their
               * helper processes. */
              g_setenv ("ES_TEST_PG_CONNINFO", conninfo, TRUE);
              g_setenv ("ES_TEST_PG_DIR", pg_dir, TRUE);
            }
        }
    }
  if (reason != NULL)
    *reason = why;
  return conninfo;
}

void
es_test_skip_func (gconstpointer reason)
{
  g_test_skip (reason);
}

/* The ids of this process's threads named @name. */
GArray *
es_test_threads_named (const char *name)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
  GArray *tids = g_array_new (FALSE, FALSE, sizeof (guint64));
  const char *entry;

  g_assert_nonnull (dir);
  while ((entry = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/task", entry, "comm", NULL);
      g_autofree char *comm = NULL;

      if (g_file_get_contents (path, &comm, NULL, NULL) &&
          g_str_equal (g_strstrip (comm), name))
        {
          guint64 tid = g_ascii_strtoull (entry, NULL, 10);

          g_array_append_val (tids, tid);
        }
    }
  return tids;
}

/* The context switches of thread @tid so far, voluntary and not; its
 * state letter in *@out_state. */
guint64
es_test_thread_switches (guint64  tid,
                 char    *out_state)
{
  g_autofree char *path = g_strdup_printf ("/proc/self/task/%" G_GUINT64_FORMAT "/status", tid);
  g_autofree char *status = NULL;
  g_auto(GStrv) lines = NULL;
  guint64 switches = 0;
  guint found = 0;

  g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
  lines = g_strsplit (status, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (g_str_has_prefix (lines[i], "State:"))
        *out_state = *g_strchug (lines[i] + strlen ("State:"));
      else if (g_str_has_prefix (lines[i], "voluntary_ctxt_switches:") ||
               g_str_has_prefix (lines[i], "nonvoluntary_ctxt_switches:"))
        {
          switches += g_ascii_strtoull (strchr (lines[i], ':') + 1, NULL, 10);
          found++;
        }
    }
  g_assert_cmpuint (found, ==, 2);
  return switches;
}

guint64
es_test_new_thread_named (const char *name,
                          GArray     *before)
{
  g_autoptr(GArray) after = es_test_threads_named (name);

  /* A thread names itself once it runs. */
  for (guint i = 0; i < 1000 && after->len == before->len; i++)
    {
      g_usleep (10 * 1000);
      g_array_unref (after);
      after = es_test_threads_named (name);
    }
  g_assert_cmpuint (after->len, ==, before->len + 1);

  for (guint i = 0; i < after->len; i++)
    {
      guint64 tid = g_array_index (after, guint64, i);
      guint j;

      for (j = 0; j < before->len && g_array_index (before, guint64, j) != tid; j++)
        ;
      if (j == before->len)
        return tid;
    }
  g_assert_not_reached ();
}

guint64
es_test_wait_thread_asleep (guint64 tid)
{
  char state = '?';
  guint64 previous = es_test_thread_switches (tid, &state);
  guint settled = 0;

  /* Its count stays put across two looks, and it is sleeping (S). A
   * thread that lingers a millisecond settles at once; the bound is
   * generous for a loaded machine. */
  for (guint i = 0; i < 400 && settled < 2; i++)
    {
      guint64 switches;

      g_usleep (25 * 1000);
      switches = es_test_thread_switches (tid, &state);
      settled = switches == previous && state == 'S' ? settled + 1 : 0;
      previous = switches;
    }
  g_assert_cmpuint (settled, ==, 2);
  return previous;
}
