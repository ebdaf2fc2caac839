/* es-watch-bench.c: how fast a commit reaches a watch, and what an idle
 * notifier costs.
 *
 * Usage: es-watch-bench [--events N] [--writer PATH-TO-es-test-writer]
 *
 * Latency is measured from the event's commit timestamp (the stored
 * timestamp, g_get_real_time() in the writing process) to the ::event
 * signal in the watching process; each event is written alone and the
 * next one only after the previous arrived, so no queueing is measured.
 * In-process: a thread of this process writes. Cross-process: a child
 * process (es-test-writer) writes. Idle cost: PRAGMA data_version checks
 * per second with 0, 1 and 200 watchers on an idle database.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>

#include "es-glib/sqlite/es-sqlite-private.h"

typedef struct
{
  GArray   *latencies;   /* gint64 microseconds */
  guint     expected;
} Latency;

static void
on_event (EsWatch       *watch,
          EsStoredEvent *event,
          Latency       *latency)
{
  gint64 now = g_get_real_time ();
  gint64 delta = now - es_stored_event_get_timestamp_usec (event);

  g_array_append_val (latency->latencies, delta);
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static void
report (const char *label,
        GArray     *latencies)
{
  gint64 *values = (gint64 *) latencies->data;
  guint n = latencies->len;

  g_array_sort (latencies, compare_int64);
  g_print ("%-28s n=%-6u median %8.3f ms   p99 %8.3f ms   max %8.3f ms\n", label, n,
           values[n / 2] / 1000.0, values[MIN (n - 1, n * 99 / 100)] / 1000.0,
           values[n - 1] / 1000.0);
}

static void
wait_for (Latency *latency,
          guint    n)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

  while (latency->latencies->len < n && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  if (latency->latencies->len < n)
    g_error ("timed out waiting for event %u", n);
}

static void
write_one (EsStream *stream)
{
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Tick", NULL);
  g_autoptr(GError) error = NULL;

  es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
}

typedef struct
{
  EsStream *stream;
  GAsyncQueue *go;
} Writer;

static gpointer
writer_thread (gpointer data)
{
  Writer *writer = data;

  while (GPOINTER_TO_INT (g_async_queue_pop (writer->go)) == 1)
    write_one (writer->stream);
  return NULL;
}

static double
checks_per_second (EsSqliteNotifier *notifier)
{
  guint before = _es_sqlite_notifier_get_n_checks (notifier);
  gint64 start = g_get_monotonic_time (), end = start + 2 * G_TIME_SPAN_SECOND;

  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE), g_usleep (1000);
  return (_es_sqlite_notifier_get_n_checks (notifier) - before) /
         ((g_get_monotonic_time () - start) / (double) G_TIME_SPAN_SECOND);
}

int
main (int   argc,
      char *argv[])
{
  gint n_events = 1000;
  g_autofree char *writer_path = NULL;
  GOptionEntry entries[] = {
    { "events", 'n', 0, G_OPTION_ARG_INT, &n_events, "Events per latency run (default 1000)", "N" },
    { "writer", 'w', 0, G_OPTION_ARG_FILENAME, &writer_path, "The es-test-writer program", "PATH" },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- watch latency and idle cost");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL, *path = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GPtrArray) watches = g_ptr_array_new_with_free_func (g_object_unref);
  EsSqliteNotifier *notifier;
  Latency latency = { NULL, 0 };
  Writer writer;
  GThread *thread;

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    g_error ("%s", error->message);
  if (writer_path == NULL)
    {
      g_autofree char *bindir = g_path_get_dirname (argv[0]);

      writer_path = g_build_filename (bindir, "..", "tests", "es-test-writer", NULL);
    }

  dir = g_dir_make_tmp ("es-watch-bench-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "events.db", NULL);
  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
  g_assert_no_error (error);
  notifier = ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (factory));
  stream = es_stream_factory_open_stream (factory, "ticks", NULL, &error);
  g_assert_no_error (error);

  g_print ("polling interval %u ms, %d events per run\n",
           es_sqlite_notifier_get_polling_interval (notifier), n_events);

  /* Idle cost before any watcher. */
  g_print ("%-28s %8.1f checks/s\n", "idle, 0 watchers", checks_per_second (notifier));

  latency.latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  watch = es_stream_watch (stream, -1);
  g_signal_connect (watch, "event", G_CALLBACK (on_event), &latency);
  g_print ("%-28s %8.1f checks/s\n", "idle, 1 watcher", checks_per_second (notifier));
  for (guint i = 0; i < 199; i++)
    g_ptr_array_add (watches, es_stream_watch (stream, -1));
  g_print ("%-28s %8.1f checks/s\n", "idle, 200 watchers", checks_per_second (notifier));
  g_ptr_array_set_size (watches, 0);

  /* In-process: a thread writes, one event at a time. */
  writer.stream = stream;
  writer.go = g_async_queue_new ();
  thread = g_thread_new ("writer", writer_thread, &writer);
  for (gint i = 0; i < n_events; i++)
    {
      g_async_queue_push (writer.go, GINT_TO_POINTER (1));
      wait_for (&latency, i + 1);
    }
  g_async_queue_push (writer.go, GINT_TO_POINTER (2));
  g_thread_join (thread);
  g_async_queue_unref (writer.go);
  report ("in-process commit->signal", latency.latencies);

  /* Cross-process: a child writes one event per run. */
  g_array_set_size (latency.latencies, 0);
  for (gint i = 0; i < n_events; i++)
    {
      g_autoptr(GSubprocess) child = NULL;

      child = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error,
                                writer_path, path, "ticks", "1", NULL);
      g_assert_no_error (error);
      wait_for (&latency, i + 1);
      g_subprocess_wait (child, NULL, NULL);
    }
  report ("cross-process commit->signal", latency.latencies);

  g_clear_object (&watch);
  es_stream_factory_close (factory, NULL, &error);
  g_assert_no_error (error);
  g_array_unref (latency.latencies);
  {
    g_autofree char *wal = g_strconcat (path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (path, "-shm", NULL);
    g_unlink (wal);
    g_unlink (shm);
    g_unlink (path);
    g_rmdir (dir);
  }
  return 0;
}
