/* test-watch.c: EsSqliteNotifier and what of watches is SQLite's own
 * (shared change checks, other processes through the file monitor, a
 * database file broken under a watch) or reads the watch's internals (the
 * bounded backlog). The watch contract itself runs on every backend in
 * test-conformance-watch.c.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "es-glib/sqlite/es-sqlite-private.h"
#include "es-glib/backend/es-write-queue-private.h"

#include "es-test-utils.h"

typedef struct
{
  char            *dir;       /* (owned) temporary directory */
  char            *path;      /* (owned) database file, NULL for in-memory */
  EsStreamFactory *factory;   /* (owned) */
} Fixture;

static EsStream *
open_stream (Fixture    *fixture,
             const char *stream_id)
{
  return es_test_open_stream (fixture->factory, stream_id);
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  gboolean in_memory = GPOINTER_TO_INT (data);
  g_autoptr(GError) error = NULL;

  fixture->dir = g_dir_make_tmp ("es-watch-XXXXXX", &error);
  g_assert_no_error (error);
  if (!in_memory)
    fixture->path = g_build_filename (fixture->dir, "events.db", NULL);

  fixture->factory = ES_STREAM_FACTORY (g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL,
                                                        &error,
                                                        "path", fixture->path,
                                                        "polling-interval", 50,
                                                        NULL));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  es_stream_factory_close (fixture->factory, NULL, &error);
  g_assert_no_error (error);
  /* Let watches' last callbacks run, then nothing must hold the factory. */
  es_test_spin (20);
  g_assert_finalize_object (fixture->factory);

  if (fixture->path != NULL)
    {
      g_autofree char *wal = g_strconcat (fixture->path, "-wal", NULL);
      g_autofree char *shm = g_strconcat (fixture->path, "-shm", NULL);

      g_unlink (wal);
      g_unlink (shm);
      g_unlink (fixture->path);
    }
  g_rmdir (fixture->dir);
  g_free (fixture->path);
  g_free (fixture->dir);
}

static void
test_slow_consumer (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "firehose");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  EsNotifier *notifier = es_stream_factory_get_notifier (fixture->factory);
  guint max_pending = 0;

  g_test_summary ("A watcher whose main loop is blocked holds a bounded number of events "
                  "and then receives every event in order");

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  /* The main loop does not run while we write: the backlog builds up. */
  for (guint i = 0; i < 50; i++)
    {
      es_test_write_n (stream, 100, "Burst");
      /* Give the notifier time to deliver what it can. */
      while (es_notifier_get_last_sequence_id (notifier) < (gint64) (i + 1) * 100)
        g_usleep (1000);
      max_pending = MAX (max_pending, _es_watch_get_n_pending (watch));
    }
  g_assert_cmpuint (recorder->events->len, ==, 0);
  g_assert_cmpuint (max_pending, <=, ES_WATCH_MAX_PENDING);
  g_assert_cmpuint (max_pending, >, 0);

  es_test_recorder_wait_events (recorder, 5000);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
  es_test_spin (100);
  g_assert_cmpuint (recorder->events->len, ==, 5000);
}

static void
test_shared_checks (Fixture       *fixture,
                    gconstpointer  data)
{
  EsSqliteNotifier *notifier = ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (fixture->factory));
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(GPtrArray) watches = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) recorders = g_ptr_array_new_with_free_func ((GDestroyNotify) es_test_recorder_free);
  guint before, idle_checks, busy_checks;

  g_test_summary ("200 watchers share one change check per polling interval; "
                  "with no watcher nothing is checked");

  /* The notifier's checks over 500 ms with no watcher: none at all... */
  before = _es_sqlite_notifier_get_n_checks (notifier);
  es_test_spin (500);
  idle_checks = _es_sqlite_notifier_get_n_checks (notifier) - before;
  g_assert_cmpuint (idle_checks, ==, 0);

  for (guint i = 0; i < 200; i++)
    {
      EsTestRecorder *recorder = es_test_recorder_new ();
      EsWatch *watch = es_stream_watch (stream, 0);

      es_test_recorder_connect (recorder, watch);
      g_ptr_array_add (watches, watch);
      g_ptr_array_add (recorders, recorder);
    }
  for (guint i = 0; i < 200; i++)
    es_test_recorder_wait_caught_up (g_ptr_array_index (recorders, i));

  /* ... and with 200: one poll, not 200. */
  before = _es_sqlite_notifier_get_n_checks (notifier);
  es_test_spin (500);
  busy_checks = _es_sqlite_notifier_get_n_checks (notifier) - before;

  g_test_message ("checks in 500 ms: %u with no watcher, %u with 200", idle_checks, busy_checks);
  /* 500 ms at a 50 ms interval is about 10 checks whatever the count. */
  g_assert_cmpuint (busy_checks, >=, 1);
  g_assert_cmpuint (busy_checks, <, 100);

  /* One write reaches all 200. */
  es_test_write_n (stream, 1, "Added");
  for (guint i = 0; i < 200; i++)
    es_test_recorder_wait_events (g_ptr_array_index (recorders, i), 1);
}

/* The library's sources on @context: their names (ids are given per
 * context, counting from 1, so a walk over the ids finds them all). */
static GPtrArray *
own_sources (GMainContext *context)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);

  for (guint id = 1; id < 200000; id++)
    {
      GSource *source = g_main_context_find_source_by_id (context, id);
      const char *name = source != NULL ? g_source_get_name (source) : NULL;

      if (name != NULL && g_str_has_prefix (name, "[es-glib]"))
        g_ptr_array_add (names, g_strdup (name));
    }
  return names;
}

static gboolean
not_polling (gpointer data)
{
  return _es_sqlite_notifier_get_poll_in_use (data) == 0;
}

static gboolean
has_name (GPtrArray  *names,
          const char *name)
{
  for (guint i = 0; i < names->len; i++)
    if (g_strcmp0 (g_ptr_array_index (names, i), name) == 0)
      return TRUE;
  return FALSE;
}

static void
test_idle_no_sources (Fixture       *fixture,
                      gconstpointer  data)
{
  EsSqliteNotifier *notifier = ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (fixture->factory));
  GMainContext *context = es_storage_notifier_get_context (ES_STORAGE_NOTIFIER (notifier));
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GPtrArray) names = NULL;
  guint checks;

  g_test_summary ("With no watch the notifier has no source at all (no timer, no file "
                  "monitor) on its context, nor on the caller's; with a watch, the poll "
                  "runs at polling-interval; when the last watch goes, everything stops");

  /* A factory that wrote and went idle. */
  es_test_write_n (stream, 3, "Added");
  es_test_spin (50);
  names = own_sources (context);
  g_assert_cmpuint (names->len, ==, 0);
  g_clear_pointer (&names, g_ptr_array_unref);
  names = own_sources (g_main_context_default ());
  g_assert_cmpuint (names->len, ==, 0);
  g_clear_pointer (&names, g_ptr_array_unref);
  g_assert_cmpuint (_es_sqlite_notifier_get_poll_in_use (notifier), ==, 0);
  g_assert_cmpint (_es_sqlite_notifier_get_push_in_use (notifier), ==,
                   ES_SQLITE_NOTIFIER_PUSH_NONE);
  checks = _es_sqlite_notifier_get_n_checks (notifier);

  /* A watch: the poll at the property's interval, and the push path. */
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  es_test_spin_until ((gboolean (*) (gpointer)) (gpointer) _es_sqlite_notifier_get_poll_in_use,
                      notifier);
  g_assert_cmpuint (_es_sqlite_notifier_get_poll_in_use (notifier), ==,
                    es_sqlite_notifier_get_polling_interval (notifier));
  g_assert_cmpuint (es_sqlite_notifier_get_polling_interval (notifier), ==, 50);
  names = own_sources (context);
  g_assert_true (has_name (names, "[es-glib] notifier poll"));
  g_clear_pointer (&names, g_ptr_array_unref);
#ifdef __linux__
  if (fixture->path != NULL)
    g_assert_cmpint (_es_sqlite_notifier_get_push_in_use (notifier), ==,
                     ES_SQLITE_NOTIFIER_PUSH_INOTIFY);
  else
#endif
  if (fixture->path == NULL)
    g_assert_cmpint (_es_sqlite_notifier_get_push_in_use (notifier), ==,
                     ES_SQLITE_NOTIFIER_PUSH_NONE);
  es_test_write_n (stream, 1, "Added");
  es_test_recorder_wait_events (recorder, 4);

  /* The last watch goes: back to nothing. */
  es_watch_stop (watch);
  g_clear_object (&watch);
  es_test_spin_until (not_polling, notifier);
  es_test_spin (50);
  names = own_sources (context);
  g_assert_cmpuint (names->len, ==, 0);
  g_clear_pointer (&names, g_ptr_array_unref);
  checks = _es_sqlite_notifier_get_n_checks (notifier);
  es_test_spin (300);
  g_assert_cmpuint (_es_sqlite_notifier_get_n_checks (notifier), ==, checks);

  /* Writes without a watch wake nothing up either. */
  es_test_write_n (stream, 2, "Added");
  es_test_spin (50);
  g_assert_cmpuint (_es_sqlite_notifier_get_n_checks (notifier), ==, checks);
  names = own_sources (context);
  g_assert_cmpuint (names->len, ==, 0);
}

static void
test_first_watch_after_idle (Fixture       *fixture,
                             gconstpointer  data)
{
  EsNotifier *notifier = es_stream_factory_get_notifier (fixture->factory);
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  const guint backlog = 10 * ES_READ_PAGE_SIZE;
  guint reads;

  g_test_summary ("While nobody listens the cursor does not move; the first watch after "
                  "writes brings it to where the store ends, so the notifier reads only "
                  "what is new, not the unwatched backlog, and the watch misses nothing");

  es_test_write_n (stream, backlog, "Added");
  es_test_spin (50);

  reads = _es_storage_notifier_get_n_reads (ES_STORAGE_NOTIFIER (notifier));
  watch = es_stream_watch (stream, -1);
  /* Moved by the watch itself, before it returned. */
  g_assert_cmpint (es_notifier_get_last_sequence_id (notifier), ==, backlog);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  es_test_write_n (stream, 2, "Added");
  es_test_recorder_wait_events (recorder, 2);
  es_test_assert_consecutive (recorder->events, backlog, FALSE);
  g_assert_cmpint (es_notifier_get_last_sequence_id (notifier), ==, backlog + 2);
  /* Where the store ends, then a page or two of new events: not the 10
   * pages of the backlog. */
  g_assert_cmpuint (_es_storage_notifier_get_n_reads (ES_STORAGE_NOTIFIER (notifier)) - reads,
                    <=, 4);
}

static void
test_other_process (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "shared");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;
  const char *writer_path = g_getenv ("ES_TEST_WRITER");

  g_test_summary ("A second OS process's writes reach the watch");

  if (writer_path == NULL)
    writer_path = "./es-test-writer";

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  writer = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error,
                             writer_path, fixture->path, "shared", "25", NULL);
  g_assert_no_error (error);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);

  es_test_recorder_wait_events (recorder, 25);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (recorder->events, 0)),
                   ==, "FromOtherProcess");
}

static gboolean
wait_events_until (EsTestRecorder *recorder,
                   guint           n,
                   gint64          deadline)
{
  while (recorder->events->len < n && g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  return recorder->events->len >= n;
}

static void
test_other_process_push (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GError) error = NULL;
  const char *writer_path = g_getenv ("ES_TEST_WRITER");
  EsSqliteNotifier *notifier;
  gint64 deadline;

  g_test_summary ("Another process's commits arrive through the push path alone (the poll "
                  "every 60 s never runs)");

  if (writer_path == NULL)
    writer_path = "./es-test-writer";

  dir = g_dir_make_tmp ("es-watch-push-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "events.db", NULL);
  factory = ES_STREAM_FACTORY (g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                                               "path", path,
                                               "polling-interval", 60000,
                                               NULL));
  g_assert_no_error (error);
  notifier = ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (factory));
  stream = es_test_open_stream (factory, "shared");

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  if (_es_sqlite_notifier_get_push_in_use (notifier) == ES_SQLITE_NOTIFIER_PUSH_NONE)
    {
      g_test_skip ("No push path on this file system");
      goto out;
    }

  {
    g_autoptr(GSubprocess) writer = NULL;

    writer = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error,
                               writer_path, path, "shared", "10", NULL);
    g_assert_no_error (error);
    g_subprocess_wait_check (writer, NULL, &error);
    g_assert_no_error (error);

    /* Far sooner than the poll: the push path told. */
    deadline = g_get_monotonic_time () + 20 * G_TIME_SPAN_SECOND;
    g_assert_true (wait_events_until (recorder, 10, deadline));
  }
  es_test_assert_consecutive (recorder->events, 0, FALSE);

out:
  es_watch_stop (watch);
  g_clear_object (&watch);
  g_clear_object (&stream);
  es_stream_factory_close (factory, NULL, &error);
  g_assert_no_error (error);
  {
    g_autofree char *wal = g_strconcat (path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (path, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
    g_unlink (path);
    g_rmdir (dir);
  }
}

static void
on_notify_active (GObject    *object,
                  GParamSpec *pspec,
                  gboolean   *notified)
{
  *notified = TRUE;
}

/* Item: a watch whose database becomes unusable fails, once, in bounded
 * time, and leaves other databases' watches alone. */

typedef enum
{
  BREAK_TRUNCATE,
  BREAK_OVERWRITE,
  BREAK_DELETE,
  BREAK_REPLACE,
} BreakHow;

static EsStreamFactory *
factory_with_timeout (const char *path,
                      guint       give_up_timeout)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  factory = ES_STREAM_FACTORY (g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                                               "path", path,
                                               "polling-interval", 50,
                                               "give-up-timeout", give_up_timeout,
                                               NULL));
  g_assert_no_error (error);
  return factory;
}

static void
break_file (const char *dir,
            const char *path,
            BreakHow    how)
{
  g_autoptr(GError) error = NULL;

  switch (how)
    {
    case BREAK_TRUNCATE:
      g_assert_no_errno (truncate (path, 0));
      break;
    case BREAK_OVERWRITE:
      {
        char garbage[8192];
        int fd = g_open (path, O_WRONLY, 0);

        g_assert_cmpint (fd, >=, 0);
        memset (garbage, 'x', sizeof garbage);
        g_assert_cmpint (write (fd, garbage, sizeof garbage), ==, sizeof garbage);
        g_assert_no_errno (close (fd));
      }
      break;
    case BREAK_DELETE:
      g_assert_no_errno (g_unlink (path));
      break;
    case BREAK_REPLACE:
      {
        /* Another valid es-glib database, renamed over the file. */
        g_autofree char *other = g_build_filename (dir, "other.db", NULL);
        g_autoptr(EsStreamFactory) factory = factory_with_timeout (other, 5000);
        g_autoptr(EsStream) stream = NULL;

        stream = es_stream_factory_open_stream (factory, "elsewhere", NULL, &error);
        g_assert_no_error (error);
        es_test_write_n (stream, 1, "Elsewhere");
        g_clear_object (&stream);
        es_stream_factory_close (factory, NULL, &error);
        g_assert_no_error (error);
        g_assert_no_errno (g_rename (other, path));
      }
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
remove_database (const char *path)
{
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);

  g_unlink (wal);
  g_unlink (shm);
  g_unlink (path);
}

#define GIVE_UP_MS 300

static void
run_break_test (Fixture  *fixture,
                BreakHow  how,
                const char *reason_word)
{
  g_autofree char *path = g_build_filename (fixture->dir, "broken.db", NULL);
  g_autofree char *other_path = g_build_filename (fixture->dir, "healthy.db", NULL);
  g_autoptr(EsStreamFactory) factory = factory_with_timeout (path, GIVE_UP_MS);
  g_autoptr(EsStreamFactory) healthy = factory_with_timeout (other_path, GIVE_UP_MS);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) healthy_stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) all_watch = NULL;
  g_autoptr(EsWatch) healthy_watch = NULL;
  g_autoptr(EsWatch) late = NULL;
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) all_recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) healthy_recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) late_recorder = es_test_recorder_new ();
  g_autoptr(GError) error = NULL;
  const GError *notifier_error;
  gboolean notified = FALSE;
  gint64 start, elapsed_ms;

  stream = es_stream_factory_open_stream (factory, "cart-1", NULL, &error);
  g_assert_no_error (error);
  all = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, &error);
  g_assert_no_error (error);
  healthy_stream = es_stream_factory_open_stream (healthy, "cart-2", NULL, &error);
  g_assert_no_error (error);

  es_test_write_n (stream, 3, "Added");
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  g_signal_connect (watch, "notify::active", G_CALLBACK (on_notify_active), &notified);
  all_watch = es_stream_watch (all, 0);
  es_test_recorder_connect (all_recorder, all_watch);
  healthy_watch = es_stream_watch (healthy_stream, 0);
  es_test_recorder_connect (healthy_recorder, healthy_watch);
  es_test_recorder_wait_events (recorder, 3);
  es_test_recorder_wait_events (all_recorder, 3);
  es_test_recorder_wait_caught_up (healthy_recorder);

  start = g_get_monotonic_time ();
  break_file (fixture->dir, path, how);

  es_test_recorder_wait_error (recorder);
  es_test_recorder_wait_error (all_recorder);
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("error after %" G_GINT64_FORMAT " ms: %s", elapsed_ms,
                  recorder->error->message);

  /* Not before the give-up timeout; well within a bound after it. */
  g_assert_cmpint (elapsed_ms, >=, GIVE_UP_MS);
  g_assert_cmpint (elapsed_ms, <, GIVE_UP_MS + 10000);
  g_assert_error (recorder->error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_error (all_recorder->error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_nonnull (strstr (recorder->error->message, path));
  g_assert_nonnull (strstr (recorder->error->message, reason_word));
  g_assert_false (es_watch_get_active (watch));
  g_assert_false (es_watch_get_active (all_watch));
  g_assert_true (notified);
  g_assert_cmpuint (recorder->events->len, ==, 3);

  notifier_error = es_notifier_get_error (es_stream_factory_get_notifier (factory));
  g_assert_error ((GError *) notifier_error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_cmpstr (notifier_error->message, ==, recorder->error->message);

  /* A watch started afterwards fails too, rather than waiting forever. */
  late = es_stream_watch (stream, 0);
  es_test_recorder_connect (late_recorder, late);
  es_test_recorder_wait_error (late_recorder);
  g_assert_error (late_recorder->error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_false (es_watch_get_active (late));

  /* The other database's watch goes on. */
  es_test_write_n (healthy_stream, 2, "StillHere");
  es_test_recorder_wait_events (healthy_recorder, 2);
  g_assert_true (es_watch_get_active (healthy_watch));
  g_assert_no_error (healthy_recorder->error);

  g_clear_object (&watch);
  g_clear_object (&all_watch);
  g_clear_object (&late);
  g_clear_object (&healthy_watch);
  g_clear_object (&stream);
  g_clear_object (&all);
  g_clear_object (&healthy_stream);
  /* Closing a factory whose file is broken may fail: it closes anyway. */
  es_stream_factory_close (factory, NULL, NULL);
  es_stream_factory_close (healthy, NULL, &error);
  g_assert_no_error (error);
  remove_database (path);
  remove_database (other_path);
}

static void
test_broken_truncate (Fixture       *fixture,
                      gconstpointer  data)
{
  g_test_summary ("Truncating the database under a watch makes it fail with "
                  "ES_ERROR_STORAGE after the give-up timeout; another database's goes on");
  run_break_test (fixture, BREAK_TRUNCATE, "truncated");
}

static void
test_broken_overwrite (Fixture       *fixture,
                       gconstpointer  data)
{
  g_test_summary ("Overwriting the database under a watch makes it fail with "
                  "ES_ERROR_STORAGE after the give-up timeout; another database's goes on");
  run_break_test (fixture, BREAK_OVERWRITE, "overwritten");
}

static void
test_broken_delete (Fixture       *fixture,
                    gconstpointer  data)
{
  g_test_summary ("Deleting the database under a watch makes it fail with "
                  "ES_ERROR_STORAGE after the give-up timeout; another database's goes on");
  run_break_test (fixture, BREAK_DELETE, "deleted");
}

static void
test_broken_replace (Fixture       *fixture,
                     gconstpointer  data)
{
  g_test_summary ("Replacing the database under a watch makes it fail with "
                  "ES_ERROR_STORAGE after the give-up timeout; another database's goes on");
  run_break_test (fixture, BREAK_REPLACE, "replaced");
}

static void
test_transient_failure (Fixture       *fixture,
                        gconstpointer  data)
{
  g_autofree char *path = g_build_filename (fixture->dir, "moved.db", NULL);
  g_autofree char *away = g_build_filename (fixture->dir, "away.db", NULL);
  g_autoptr(EsStreamFactory) factory = factory_with_timeout (path, 3000);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(GError) error = NULL;
  guint timeout = 0;

  g_test_summary ("A failure shorter than the give-up timeout does not end the watch");

  g_object_get (es_stream_factory_get_notifier (factory), "give-up-timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, 3000);
  g_object_get (fixture->factory, "give-up-timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, 5000);
  g_object_get (es_stream_factory_get_notifier (fixture->factory), "give-up-timeout",
                &timeout, NULL);
  g_assert_cmpuint (timeout, ==, 5000);

  stream = es_stream_factory_open_stream (factory, "cart-1", NULL, &error);
  g_assert_no_error (error);
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  /* The path names no file for a while (several checks fail), then the
   * same file again. */
  g_assert_no_errno (g_rename (path, away));
  es_test_spin (500);
  g_assert_no_errno (g_rename (away, path));
  es_test_spin (3500);

  g_assert_no_error (recorder->error);
  g_assert_true (es_watch_get_active (watch));
  g_assert_null (es_notifier_get_error (es_stream_factory_get_notifier (factory)));
  es_test_write_n (stream, 2, "Added");
  es_test_recorder_wait_events (recorder, 2);

  g_clear_object (&watch);
  g_clear_object (&stream);
  es_stream_factory_close (factory, NULL, &error);
  g_assert_no_error (error);
  remove_database (path);
}

/* A storage whose version lookup fails on demand; nothing else is used. */
#define TEST_TYPE_FAILING_STORAGE (test_failing_storage_get_type ())
G_DECLARE_FINAL_TYPE (TestFailingStorage, test_failing_storage, TEST, FAILING_STORAGE, GObject)

struct _TestFailingStorage
{
  GObject  parent_instance;
  gboolean fail;
};

static void test_failing_storage_iface_init (EsStorageHandleInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TestFailingStorage, test_failing_storage, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STORAGE_HANDLE,
                                                      test_failing_storage_iface_init))

static gboolean
test_failing_storage_get_version (EsStorageHandle  *handle,
                                  const char       *stream_id,
                                  gint64           *out_version,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  if (TEST_FAILING_STORAGE (handle)->fail)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_STORAGE, "Injected failure");
      return FALSE;
    }
  if (out_version != NULL)
    *out_version = 0;
  return TRUE;
}

static GPtrArray *
test_failing_storage_read_page (EsStorageHandle  *handle,
                                const char       *stream_id,
                                gint64            after,
                                EsEventFilter    *filter,
                                guint             limit,
                                GCancellable     *cancellable,
                                GError          **error)
{
  return g_ptr_array_new_with_free_func (g_object_unref);
}

static gboolean
test_failing_storage_close (EsStorageHandle  *handle,
                            GCancellable     *cancellable,
                            GError          **error)
{
  return TRUE;
}

static void
test_failing_storage_iface_init (EsStorageHandleInterface *iface)
{
  iface->get_version = test_failing_storage_get_version;
  iface->read_page = test_failing_storage_read_page;
  iface->close = test_failing_storage_close;
}

static void
test_failing_storage_class_init (TestFailingStorageClass *klass)
{
}

static void
test_failing_storage_init (TestFailingStorage *self)
{
}

static void
test_minus_one_lookup_fails (void)
{
  g_autoptr(TestFailingStorage) storage = g_object_new (TEST_TYPE_FAILING_STORAGE, NULL);
  g_autoptr(EsStreamFactory) factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage), NULL);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(GError) error = NULL;

  g_test_summary ("When watch (-1) cannot look up the current version, the watch emits "
                  "error from its main context instead of starting elsewhere");

  stream = es_stream_factory_open_stream (factory, "cart-1", NULL, &error);
  g_assert_no_error (error);

  storage->fail = TRUE;
  watch = es_stream_watch (stream, -1);
  es_test_recorder_connect (recorder, watch);
  g_assert_null (recorder->error);
  es_test_recorder_wait_error (recorder);
  g_assert_error (recorder->error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_cmpstr (recorder->error->message, ==, "Injected failure");
  g_assert_false (es_watch_get_active (watch));
  g_assert_cmpuint (recorder->caught_up, ==, 0);
  g_assert_cmpuint (recorder->events->len, ==, 0);

  g_clear_object (&watch);
  g_clear_object (&stream);
  es_stream_factory_close (factory, NULL, &error);
  g_assert_no_error (error);
}

/* ---------------------------------------------------------------------- *
 * The one locking rule of deliveries (EsStorageNotifier)                  *
 * ---------------------------------------------------------------------- */

/* A storage whose read_page() can be held at a gate, to catch a notifier
 * in the middle of a delivery; everything else goes to @inner. */
typedef struct
{
  GObject          parent_instance;
  EsStorageHandle *inner;
  GMutex           lock;
  GCond            cond;
  gboolean         gate_closed;  /* guarded by lock */
  guint            n_waiting;    /* reads held at the gate, guarded by lock */
} GatedStorage;

typedef GObjectClass GatedStorageClass;

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GatedStorage, g_object_unref)
static GType gated_storage_get_type (void);
static void gated_storage_iface_init (EsStorageHandleInterface *iface);

G_DEFINE_TYPE_WITH_CODE (GatedStorage, gated_storage, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (ES_TYPE_STORAGE_HANDLE, gated_storage_iface_init))

static void
gated_wake (GCancellable *cancellable,
            gpointer      data)
{
  GatedStorage *self = data;

  g_mutex_lock (&self->lock);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

static GPtrArray *
gated_read_page (EsStorageHandle  *handle,
                 const char       *stream_id,
                 gint64            after,
                 EsEventFilter    *filter,
                 guint             limit,
                 GCancellable     *cancellable,
                 GError          **error)
{
  GatedStorage *self = (GatedStorage *) handle;
  gulong handler = 0;

  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (gated_wake), self, NULL);
  g_mutex_lock (&self->lock);
  self->n_waiting++;
  g_cond_broadcast (&self->cond);
  /* Like a real storage, a cancellation ends the wait. */
  while (self->gate_closed && !g_cancellable_is_cancelled (cancellable))
    g_cond_wait (&self->cond, &self->lock);
  self->n_waiting--;
  g_mutex_unlock (&self->lock);
  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;
  return es_storage_handle_read_page (self->inner, stream_id, after, filter, limit,
                                      cancellable, error);
}

static gboolean
gated_get_version (EsStorageHandle  *handle,
                   const char       *stream_id,
                   gint64           *out_version,
                   GCancellable     *cancellable,
                   GError          **error)
{
  return es_storage_handle_get_version (((GatedStorage *) handle)->inner, stream_id,
                                        out_version, cancellable, error);
}

static void
gated_storage_iface_init (EsStorageHandleInterface *iface)
{
  iface->read_page = gated_read_page;
  iface->get_version = gated_get_version;
}

static void
gated_storage_finalize (GObject *object)
{
  GatedStorage *self = (GatedStorage *) object;

  g_clear_object (&self->inner);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (gated_storage_parent_class)->finalize (object);
}

static void
gated_storage_class_init (GatedStorageClass *klass)
{
  klass->finalize = gated_storage_finalize;
}

static void
gated_storage_init (GatedStorage *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
}

static void
gated_set (GatedStorage *self,
           gboolean      closed)
{
  g_mutex_lock (&self->lock);
  self->gate_closed = closed;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* Waits (5 s at most) until a read is held at the gate. */
static gboolean
gated_wait_reader (GatedStorage *self)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  gboolean held;

  g_mutex_lock (&self->lock);
  while (self->n_waiting == 0 && g_cond_wait_until (&self->cond, &self->lock, deadline))
    ;
  held = self->n_waiting > 0;
  g_mutex_unlock (&self->lock);
  return held;
}

/* The plainest third-party notifier: only the base class's behaviour. */
typedef EsStorageNotifier      PlainNotifier;
typedef EsStorageNotifierClass PlainNotifierClass;

static GType plain_notifier_get_type (void);

G_DEFINE_TYPE (PlainNotifier, plain_notifier, ES_TYPE_STORAGE_NOTIFIER)

static void
plain_notifier_class_init (PlainNotifierClass *klass)
{
}

static void
plain_notifier_init (PlainNotifier *self)
{
}

typedef struct
{
  gint      n_calls;      /* (atomic) */
  gint      n_late;       /* (atomic) calls after unsubscribe returned */
  gint      unsubscribed; /* (atomic) */
} LockSubscriber;

static void
lock_subscriber_cb (GPtrArray *events,
                    gpointer   user_data)
{
  LockSubscriber *sub = user_data;

  g_atomic_int_inc (&sub->n_calls);
  if (g_atomic_int_get (&sub->unsubscribed))
    g_atomic_int_inc (&sub->n_late);
}

typedef struct
{
  EsNotifier *notifier;
  guint       id;        /* unsubscribe this, or 0: stop */
  gint        done;      /* (atomic) */
  LockSubscriber *sub;
} LockCall;

static gpointer
lock_call_thread (gpointer data)
{
  LockCall *call = data;

  if (call->id != 0)
    {
      es_notifier_unsubscribe (call->notifier, call->id);
      g_atomic_int_set (&call->sub->unsubscribed, TRUE);
    }
  else
    es_notifier_stop (call->notifier);
  g_atomic_int_set (&call->done, TRUE);
  return NULL;
}

/* Whether @call finishes within 5 s. */
static gboolean
lock_call_returns (LockCall *call)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while (!g_atomic_int_get (&call->done) && g_get_monotonic_time () < deadline)
    g_usleep (1000);
  return g_atomic_int_get (&call->done);
}

static void
append_one (EsStorageHandle *storage,
            const char      *type)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new (type, NULL);

  es_storage_handle_append (storage, "locks", ES_VERSION_ANY, &event, 1, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
test_deliver_lock (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GatedStorage) gated = g_object_new (gated_storage_get_type (), NULL);
  g_autoptr(EsNotifier) notifier = NULL;
  LockSubscriber leaving = { 0, }, arriving = { 0, };
  LockCall unsubscribe = { 0, }, stop = { 0, };
  GThread *thread;
  guint leaving_id, arriving_id;
  gint64 deadline;

  g_test_summary ("The storage is read outside the subscribers' lock: while a delivery's "
                  "read is held, unsubscribe(), subscribe(), get_last_sequence_id() and "
                  "stop() return at once; a subscriber removed during the read is not "
                  "called with its page; one added during the read is");

  gated->inner = ES_STORAGE_HANDLE (es_sqlite_storage_new (NULL, 1, NULL, &error));
  g_assert_no_error (error);
  notifier = g_object_new (plain_notifier_get_type (), "storage", gated, NULL);
  g_assert_true (es_notifier_start (notifier, NULL, &error));
  g_assert_no_error (error);

  leaving_id = es_notifier_subscribe (notifier, lock_subscriber_cb, &leaving, NULL);

  /* A delivery held in its read. */
  gated_set (gated, TRUE);
  append_one (gated->inner, "Held");
  es_notifier_committed (notifier);
  g_assert_true (gated_wait_reader (gated));

  /* Unsubscribing does not wait for the read (holding the lock across it,
   * it would until the gate opens). */
  unsubscribe.notifier = notifier;
  unsubscribe.id = leaving_id;
  unsubscribe.sub = &leaving;
  thread = g_thread_new ("unsubscribe", lock_call_thread, &unsubscribe);
  g_assert_true (lock_call_returns (&unsubscribe));
  g_thread_join (thread);

  arriving_id = es_notifier_subscribe (notifier, lock_subscriber_cb, &arriving, NULL);
  g_assert_cmpuint (arriving_id, !=, 0);
  g_assert_cmpint (es_notifier_get_last_sequence_id (notifier), ==, 0);

  gated_set (gated, FALSE);
  deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (es_notifier_get_last_sequence_id (notifier) < 1 && g_get_monotonic_time () < deadline)
    g_usleep (1000);
  g_assert_cmpint (es_notifier_get_last_sequence_id (notifier), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&leaving.n_calls), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&leaving.n_late), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&arriving.n_calls), ==, 1);

  /* Stopping during a held read does not wait for the gate: the read is
   * cancelled. */
  gated_set (gated, TRUE);
  append_one (gated->inner, "Held again");
  es_notifier_committed (notifier);
  g_assert_true (gated_wait_reader (gated));
  stop.notifier = notifier;
  thread = g_thread_new ("stop", lock_call_thread, &stop);
  g_assert_true (lock_call_returns (&stop));
  g_thread_join (thread);
  g_assert_cmpint (g_atomic_int_get (&arriving.n_calls), ==, 1);

  gated_set (gated, FALSE);
  es_storage_handle_close (gated->inner, NULL, NULL);
}

/* ---------------------------------------------------------------------- *
 * Completion batching of the write queue (es-glib/backend/)               *
 * ---------------------------------------------------------------------- */

#define BATCH_WRITES 64

typedef struct
{
  gint64  version;
  guint   dispatch;  /* the completion dispatch counter when it completed */
  guint  *pending;
} BatchWrite;

static void
batch_write_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  BatchWrite *w = user_data;
  g_autoptr(GError) error = NULL;

  es_storage_handle_append_finish (ES_STORAGE_HANDLE (source), result, &w->version, &error);
  g_assert_no_error (error);
  w->dispatch = _es_write_queue_get_n_completion_dispatches ();
  (*w->pending)--;
}

static void
test_sqlite_completion_batching (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autofree char *dir = g_dir_make_tmp ("es-batching-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "events.db", NULL);
  BatchWrite writes[BATCH_WRITES];
  guint pending = BATCH_WRITES;
  guint before, n_dispatches, n_distinct = 0;
  gint64 deadline;
  sqlite3 *blocker = NULL;

  g_test_summary ("Asynchronous appends in flight from one main context complete in one "
                  "idle source per group commit, in submission order (as on PostgreSQL)");
  g_assert_nonnull (dir);
  storage = es_sqlite_storage_new (path, 1, NULL, &error);
  g_assert_no_error (error);

  /* Another connection holds the write lock while the appends are
   * submitted: the writer's first group waits for it (busy timeout), and
   * every append submitted meanwhile queues behind it, so however slow
   * this machine is, the groups are few. */
  g_assert_cmpint (sqlite3_open (path, &blocker), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);

  before = _es_write_queue_get_n_completion_dispatches ();
  for (guint i = 0; i < BATCH_WRITES; i++)
    {
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Batched", NULL);

      writes[i].version = -1;
      writes[i].dispatch = 0;
      writes[i].pending = &pending;
      es_storage_handle_append_async (ES_STORAGE_HANDLE (storage), "batching", ES_VERSION_ANY,
                                      &event, 1, NULL, batch_write_cb, &writes[i]);
    }

  g_assert_cmpint (sqlite3_exec (blocker, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (blocker);

  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (pending > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (pending, ==, 0);

  n_dispatches = _es_write_queue_get_n_completion_dispatches () - before;
  for (guint i = 0; i < BATCH_WRITES; i++)
    {
      g_assert_cmpint (writes[i].version, ==, i + 1);
      g_assert_cmpuint (writes[i].dispatch, >, before);
      if (i == 0 || writes[i].dispatch != writes[i - 1].dispatch)
        n_distinct++;
      if (i > 0)
        g_assert_cmpuint (writes[i].dispatch, >=, writes[i - 1].dispatch);
    }
  /* One source per group: a few for 64 appends, not one each. */
  g_assert_cmpuint (n_dispatches, ==, n_distinct);
  g_assert_cmpuint (n_dispatches, <=, 4);

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  g_clear_object (&storage);
  es_test_remove_tree (dir);
}


/* ---------------------------------------------------------------------- *
 * The writer thread sleeps when idle (issue 23)                          *
 * ---------------------------------------------------------------------- */

#define WRITER_THREAD_NAME "es-sqlite-write"

static void
count_down_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  guint *pending = user_data;
  g_autoptr(GError) error = NULL;

  es_storage_handle_append_finish (ES_STORAGE_HANDLE (source), result, NULL, &error);
  g_assert_no_error (error);
  (*pending)--;
}

static void
test_sqlite_writer_sleeps (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autofree char *dir = g_dir_make_tmp ("es-writer-idle-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "events.db", NULL);
  g_autoptr(GArray) before = NULL;
  g_autoptr(GArray) after = NULL;
  guint64 tid, switches, previous;
  guint pending = 8;
  guint inline_runs;
  gint64 version = 0;
  char state = '?';

  g_test_summary ("The writer thread sleeps while nothing is queued: once its asynchronous "
                  "writes are done it has no wake-up at all, and synchronous writes that find "
                  "it idle run on their caller's thread without waking it");
  g_assert_nonnull (dir);

  before = es_test_threads_named (WRITER_THREAD_NAME);
  storage = es_sqlite_storage_new (path, 1, NULL, &error);
  g_assert_no_error (error);
  tid = es_test_new_thread_named (WRITER_THREAD_NAME, before);

  /* Asynchronous writes: the writer thread runs them (and may linger
   * for more while their completions are dispatched). */
  for (guint i = 0; i < 8; i++)
    {
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Async", NULL);

      es_storage_handle_append_async (ES_STORAGE_HANDLE (storage), "idle", ES_VERSION_ANY,
                                      &event, 1, NULL, count_down_cb, &pending);
    }
  while (pending > 0)
    g_main_context_iteration (NULL, TRUE);

  previous = es_test_wait_thread_asleep (tid);

  /* Synchronous writes to an idle writer run here: the thread stays
   * asleep through them and through a second of idleness. A count, not a
   * time: a thread that polls, lingers or spins while idle, or is woken
   * for each write, is counted. */
  inline_runs = _es_write_queue_get_n_inline_runs ();
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Sync", NULL);

      es_storage_handle_append (ES_STORAGE_HANDLE (storage), "idle", ES_VERSION_ANY, &event, 1,
                                &version, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (version, ==, 9 + i);
    }
  g_assert_cmpuint (_es_write_queue_get_n_inline_runs (), ==, inline_runs + 3);
  g_usleep (G_USEC_PER_SEC);
  switches = es_test_thread_switches (tid, &state);
  g_assert_cmpuint (switches, ==, previous);
  g_assert_cmpint (state, ==, 'S');

  /* What was written is there, in order. */
  es_storage_handle_get_version (ES_STORAGE_HANDLE (storage), "idle", &version, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 11);
  {
    g_autoptr(GPtrArray) page = NULL;

    page = es_storage_handle_read_page (ES_STORAGE_HANDLE (storage), "idle", 0, NULL, 100, NULL,
                                        &error);
    g_assert_no_error (error);
    g_assert_cmpuint (page->len, ==, 11);
    for (guint i = 0; i < page->len; i++)
      {
        EsStoredEvent *event = g_ptr_array_index (page, i);

        g_assert_cmpint (es_stored_event_get_version (event), ==, i + 1);
        g_assert_cmpstr (es_stored_event_get_event_type (event), ==, i < 8 ? "Async" : "Sync");
      }
  }

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  g_clear_object (&storage);
  /* Closing stops the thread. */
  g_clear_pointer (&after, g_array_unref);
  after = es_test_threads_named (WRITER_THREAD_NAME);
  g_assert_cmpuint (after->len, ==, before->len);
  es_test_remove_tree (dir);
}


typedef struct
{
  EsStorageHandle *storage;
  gint64           version;
} SyncAppend;

static gpointer
sync_append_thread (gpointer data)
{
  SyncAppend *append = data;
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Sync", NULL);
  g_autoptr(GError) error = NULL;

  es_storage_handle_append (append->storage, "order", ES_VERSION_ANY, &event, 1,
                            &append->version, NULL, &error);
  g_assert_no_error (error);
  return NULL;
}

static void
test_sqlite_sync_after_queued (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autofree char *dir = g_dir_make_tmp ("es-sync-order-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "events.db", NULL);
  g_autoptr(GPtrArray) page = NULL;
  SyncAppend append = { NULL, -1 };
  sqlite3 *blocker = NULL;
  guint pending = 4;
  guint inline_runs, queued;
  GThread *thread;
  gint64 version = -1;

  g_test_summary ("A synchronous write that finds writes queued or being committed does not "
                  "run on its own thread ahead of them: it takes its turn after them");
  g_assert_nonnull (dir);
  storage = es_sqlite_storage_new (path, 1, NULL, &error);
  g_assert_no_error (error);
  append.storage = ES_STORAGE_HANDLE (storage);

  /* Another connection holds the write lock: the asynchronous writes
   * stay queued, or in the writer's group waiting for the lock. */
  g_assert_cmpint (sqlite3_open (path, &blocker), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);

  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Async", NULL);

      es_storage_handle_append_async (ES_STORAGE_HANDLE (storage), "order", ES_VERSION_ANY,
                                      &event, 1, NULL, count_down_cb, &pending);
    }

  inline_runs = _es_write_queue_get_n_inline_runs ();
  queued = _es_write_queue_get_n_queued_sync ();
  thread = g_thread_new ("sync-append", sync_append_thread, &append);
  /* The lock goes once the synchronous write is queued too. */
  for (guint i = 0; i < 30000 && _es_write_queue_get_n_queued_sync () == queued; i++)
    g_usleep (1000);
  g_assert_cmpuint (_es_write_queue_get_n_queued_sync (), ==, queued + 1);
  g_assert_cmpint (sqlite3_exec (blocker, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (blocker);
  g_thread_join (thread);
  while (pending > 0)
    g_main_context_iteration (NULL, TRUE);

  g_assert_cmpint (append.version, ==, 5);
  /* It could not have claimed the writer: the writes were queued. */
  g_assert_cmpuint (_es_write_queue_get_n_inline_runs (), ==, inline_runs);

  es_storage_handle_get_version (ES_STORAGE_HANDLE (storage), "order", &version, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 5);
  page = es_storage_handle_read_page (ES_STORAGE_HANDLE (storage), "order", 0, NULL, 100, NULL,
                                      &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 5);
  for (guint i = 0; i < page->len; i++)
    g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (page, i)), ==,
                     i < 4 ? "Async" : "Sync");

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  g_clear_object (&storage);
  es_test_remove_tree (dir);
}


/* One asynchronous append of a mixed group, and what it answered. */
typedef struct
{
  const char *stream_id;
  gint64      expected_version;
  guint       n_events;
  const char *key;           /* of every event; NULL: none */
  gboolean    cancelled;     /* its cancellable is cancelled before it runs */
  gint64      want_version;  /* -1: fails */
  GQuark      want_domain;
  gint        want_code;
  /* Answers. */
  gint64      version;
  GError     *error;
  guint      *pending;
} MixedAppend;

static void
mixed_append_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  MixedAppend *append = user_data;

  append->version = -1;
  es_storage_handle_append_finish (ES_STORAGE_HANDLE (source), result, &append->version,
                                   &append->error);
  (*append->pending)--;
}

static void
assert_stream_info (EsStorageHandle *storage,
                    const char      *stream_id,
                    gint64           version,
                    gint64           event_count,
                    gint64           first_version)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = es_storage_handle_get_stream_info (storage, stream_id, NULL,
                                                                    &error);
  g_autoptr(GPtrArray) page = NULL;

  g_assert_no_error (error);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, version);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, event_count);
  g_assert_cmpint (es_stream_info_get_first_version (info), ==, first_version);

  /* The events stored are first_version..version, in order. */
  page = es_storage_handle_read_page (storage, stream_id, 0, NULL, 100, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, event_count);
  for (guint i = 0; i < page->len; i++)
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (page, i)), ==,
                     first_version + i);
}

static void
test_sqlite_mixed_group (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autoptr(GCancellable) cancelled = g_cancellable_new ();
  g_autofree char *dir = g_dir_make_tmp ("es-mixed-group-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "events.db", NULL);
  const GQuark es = ES_ERROR, io = G_IO_ERROR;
  MixedAppend appends[] = {
    { "s1", ES_VERSION_ANY, 1, NULL, FALSE, 1 },
    { "s2", 0, 1, NULL, FALSE, 1 },
    { "s1", 1, 1, NULL, FALSE, 2 },
    /* A conflict: the version found comes along. */
    { "s1", 5, 1, NULL, FALSE, -1, es, ES_ERROR_WRONG_EXPECTED_VERSION },
    /* Two events: the ordinary path, after the cached rows are written. */
    { "s1", ES_VERSION_ANY, 2, NULL, FALSE, 4 },
    { "s1", 4, 1, NULL, FALSE, 5 },
    { "s2", ES_VERSION_ANY, 1, "k", FALSE, 2 },
    /* The same key again: skipped, the stream's version answered. */
    { "s2", ES_VERSION_ANY, 1, "k", FALSE, 2 },
    /* A retry whose key is stored, with a stale expected version. */
    { "s2", 0, 1, "k", FALSE, 2 },
    { "s3", ES_VERSION_ANY, 1, NULL, TRUE, -1, io, G_IO_ERROR_CANCELLED },
    /* s4 keeps two events (its own policy): the ordinary path. */
    { "s4", ES_VERSION_ANY, 1, NULL, FALSE, 1 },
    { "s4", ES_VERSION_ANY, 1, NULL, FALSE, 2 },
    { "s4", ES_VERSION_ANY, 1, NULL, FALSE, 3 },
    { "s5", ES_VERSION_ANY, 1, NULL, FALSE, -1, es, ES_ERROR_STREAM_DELETED },
    { "s1", ES_VERSION_ANY, 1, NULL, FALSE, 6 },
  };
  guint pending = G_N_ELEMENTS (appends);
  sqlite3 *blocker = NULL;
  gint64 version = -1;

  g_test_summary ("In one group, single-event appends that keep their streams' rows in memory "
                  "answer and store exactly what appends one by one would, mixed with "
                  "conflicts, stored keys, cancellations, batches, retention and tombstones");
  g_assert_nonnull (dir);
  storage = es_sqlite_storage_new (path, 1, NULL, &error);
  g_assert_no_error (error);

  es_storage_handle_set_retention (ES_STORAGE_HANDLE (storage), "s4", 0, 2, NULL, &error);
  g_assert_no_error (error);
  {
    g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Before", NULL);

    es_storage_handle_append (ES_STORAGE_HANDLE (storage), "s5", ES_VERSION_ANY, &event, 1,
                              &version, NULL, &error);
    g_assert_no_error (error);
    es_storage_handle_delete_stream (ES_STORAGE_HANDLE (storage), "s5", ES_VERSION_ANY,
                                     ES_DELETE_FLAGS_TOMBSTONE, NULL, &error);
    g_assert_no_error (error);
  }
  g_cancellable_cancel (cancelled);

  /* Every append waits behind another connection's lock, so that they
   * share few groups (one, usually). */
  g_assert_cmpint (sqlite3_open (path, &blocker), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
  for (guint i = 0; i < G_N_ELEMENTS (appends); i++)
    {
      EsCandidateEvent *events[2];

      for (guint j = 0; j < appends[i].n_events; j++)
        {
          events[j] = es_candidate_event_new ("Mixed", NULL);
          if (appends[i].key != NULL)
            es_candidate_event_set_idempotency_key (events[j], appends[i].key);
        }
      appends[i].pending = &pending;
      es_storage_handle_append_async (ES_STORAGE_HANDLE (storage), appends[i].stream_id,
                                      appends[i].expected_version, events, appends[i].n_events,
                                      appends[i].cancelled ? cancelled : NULL,
                                      mixed_append_cb, &appends[i]);
      for (guint j = 0; j < appends[i].n_events; j++)
        g_object_unref (events[j]);
    }
  g_assert_cmpint (sqlite3_exec (blocker, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (blocker);
  while (pending > 0)
    g_main_context_iteration (NULL, TRUE);

  for (guint i = 0; i < G_N_ELEMENTS (appends); i++)
    {
      if (appends[i].want_version >= 0)
        {
          g_assert_no_error (appends[i].error);
          g_assert_cmpint (appends[i].version, ==, appends[i].want_version);
        }
      else
        g_assert_error (appends[i].error, appends[i].want_domain, appends[i].want_code);
      g_clear_error (&appends[i].error);
    }
  g_assert_cmpint (appends[3].version, ==, 2);

  assert_stream_info (ES_STORAGE_HANDLE (storage), "s1", 6, 6, 1);
  assert_stream_info (ES_STORAGE_HANDLE (storage), "s2", 2, 2, 1);
  assert_stream_info (ES_STORAGE_HANDLE (storage), "s4", 3, 2, 2);
  es_storage_handle_get_version (ES_STORAGE_HANDLE (storage), "s3", &version, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 0);

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  g_clear_object (&storage);
  es_test_remove_tree (dir);
}


static void
version_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  gint64 *version = user_data;
  g_autoptr(GError) error = NULL;

  es_storage_handle_append_finish (ES_STORAGE_HANDLE (source), result, version, &error);
  g_assert_no_error (error);
}

static void
test_sqlite_sync_after_async (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autofree char *dir = g_dir_make_tmp ("es-sync-async-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "events.db", NULL);
  gint64 async_versions[50];

  g_test_summary ("A synchronous write right after an asynchronous one from the same thread "
                  "comes after it, even when the writer thread has not yet woken up to take "
                  "the asynchronous one");
  g_assert_nonnull (dir);
  storage = es_sqlite_storage_new (path, 1, NULL, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (async_versions); i++)
    {
      g_autoptr(EsCandidateEvent) first = es_candidate_event_new ("Async", NULL);
      g_autoptr(EsCandidateEvent) second = es_candidate_event_new ("Sync", NULL);
      gint64 version = -1;

      async_versions[i] = -1;
      es_storage_handle_append_async (ES_STORAGE_HANDLE (storage), "s", ES_VERSION_ANY, &first, 1,
                                      NULL, version_cb, &async_versions[i]);
      es_storage_handle_append (ES_STORAGE_HANDLE (storage), "s", ES_VERSION_ANY, &second, 1,
                                &version, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (version, ==, 2 * i + 2);
      while (async_versions[i] < 0)
        g_main_context_iteration (NULL, TRUE);
      g_assert_cmpint (async_versions[i], ==, 2 * i + 1);
    }

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  g_clear_object (&storage);
  es_test_remove_tree (dir);
}

int
main (int   argc,
      char *argv[])
{
  static const struct {
    const char *name;
    void (*func) (Fixture *, gconstpointer);
    gboolean file_only;
  } tests[] = {
    { "slow-consumer", test_slow_consumer, FALSE },
    { "shared-checks", test_shared_checks, TRUE },
    { "idle-no-sources", test_idle_no_sources, FALSE },
    { "first-watch-after-idle", test_first_watch_after_idle, FALSE },
    { "other-process", test_other_process, TRUE },
    { "broken-truncate", test_broken_truncate, TRUE },
    { "broken-overwrite", test_broken_overwrite, TRUE },
    { "broken-delete", test_broken_delete, TRUE },
    { "broken-replace", test_broken_replace, TRUE },
    { "transient-failure", test_transient_failure, TRUE },
  };

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    {
      g_autofree char *file_path = g_strdup_printf ("/watch/sqlite-file/%s", tests[i].name);
      g_autofree char *memory_path = g_strdup_printf ("/watch/sqlite-memory/%s", tests[i].name);

      g_test_add (file_path, Fixture, GINT_TO_POINTER (FALSE),
                  fixture_setup, tests[i].func, fixture_teardown);
      if (!tests[i].file_only)
        g_test_add (memory_path, Fixture, GINT_TO_POINTER (TRUE),
                    fixture_setup, tests[i].func, fixture_teardown);
    }

  g_test_add_func ("/watch/sqlite-file/other-process-push", test_other_process_push);
  g_test_add_func ("/watch/failing-storage/minus-one-lookup-fails", test_minus_one_lookup_fails);
  g_test_add_func ("/watch/notifier-base/deliver-lock", test_deliver_lock);
  g_test_add_func ("/watch/write-queue/completion-batching", test_sqlite_completion_batching);
  g_test_add_func ("/watch/write-queue/writer-sleeps", test_sqlite_writer_sleeps);
  g_test_add_func ("/watch/write-queue/sync-after-queued", test_sqlite_sync_after_queued);
  g_test_add_func ("/watch/write-queue/mixed-group", test_sqlite_mixed_group);
  g_test_add_func ("/watch/write-queue/sync-after-async", test_sqlite_sync_after_async);

  return g_test_run ();
}
