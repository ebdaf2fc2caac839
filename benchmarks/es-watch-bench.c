/* es-watch-bench.c: how fast a commit reaches a watch, and what an idle
 * notifier costs.
 *
 * Usage: es-watch-bench [--events N] [--writer PATH-TO-es-test-writer]
 *                       [--idle-wakeups] [--idle-seconds S]
 *
 * Latency is measured from the event's commit timestamp (the stored
 * timestamp, g_get_real_time() in the writing process) to the ::event
 * signal in the watching process; each event is written alone and the
 * next one only after the previous arrived, so no queueing is measured.
 * In-process: a thread of this process writes. Cross-process: a child
 * process (es-test-writer) writes, one process per event ("spawned");
 * then a long-lived child process writes one event each time it is told,
 * on a quiet file (nothing else writes) and on a busy one (a second child
 * commits one event after another to another stream the whole time).
 * Idle cost: PRAGMA data_version checks per second with 0, 1 and 200
 * watchers on an idle database; with --idle-wakeups, thread wake-ups per
 * second of a child process that opened a factory, made 0, 1 or 200
 * watches and sits in its main loop (voluntary plus involuntary context
 * switches of all its threads, from /proc/PID/task/TID/status).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
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

  guint slow = 0;

  g_array_sort (latencies, compare_int64);
  for (guint i = 0; i < n; i++)
    slow += values[i] > 10 * 1000;
  g_print ("%-28s n=%-6u median %8.3f ms   p99 %8.3f ms   max %8.3f ms   >10 ms %u\n", label,
           n, values[n / 2] / 1000.0, values[MIN (n - 1, n * 99 / 100)] / 1000.0,
           values[n - 1] / 1000.0, slow);
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


/* ---- child processes ---------------------------------------------- */

static EsStreamFactory *
child_open (const char *path)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));

  if (factory == NULL)
    g_error ("%s", error->message);
  return factory;
}

static gboolean
stdin_closed_cb (gint         fd,
                 GIOCondition condition,
                 gpointer     user_data)
{
  char buf[64];

  /* Anything but data (EOF, an error) ends the child. */
  if (read (fd, buf, sizeof buf) <= 0)
    {
      g_main_loop_quit (user_data);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* --child-idle: open the factory, make N watches, say "ready", then sit
 * in the main loop until stdin closes. Nothing else runs. */
static int
child_idle (const char *path,
            int         n_watchers)
{
  g_autoptr(EsStreamFactory) factory = child_open (path);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, "ticks", NULL, &error);
  g_autoptr(GPtrArray) watches = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  g_assert_no_error (error);
  /* A factory that wrote once (the writer thread's sleep is measured too). */
  write_one (stream);
  for (int i = 0; i < n_watchers; i++)
    g_ptr_array_add (watches, es_stream_watch (stream, -1));
  /* Let the watches catch up before saying ready. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_print ("ready\n");
  fflush (stdout);
  g_unix_fd_add (0, G_IO_IN | G_IO_HUP | G_IO_ERR, stdin_closed_cb, loop);
  g_main_loop_run (loop);
  g_ptr_array_set_size (watches, 0);
  es_stream_factory_close (factory, NULL, NULL);
  return 0;
}

/* --child-ticker: writes one event to "ticks" for each line on stdin. */
static int
child_ticker (const char *path)
{
  g_autoptr(EsStreamFactory) factory = child_open (path);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, "ticks", NULL, &error);
  char line[64];

  g_assert_no_error (error);
  while (fgets (line, sizeof line, stdin) != NULL)
    write_one (stream);
  es_stream_factory_close (factory, NULL, NULL);
  return 0;
}

/* --child-noise: commits one event after another to "noise" until stdin
 * closes: the busy file. */
static gint noise_done;

static gpointer
noise_stdin_thread (gpointer data)
{
  char buf[64];

  while (read (0, buf, sizeof buf) > 0)
    ;
  g_atomic_int_set (&noise_done, TRUE);
  return NULL;
}

static int
child_noise (const char *path)
{
  g_autoptr(EsStreamFactory) factory = child_open (path);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, "noise", NULL, &error);
  guint64 n = 0;
  gint64 start = g_get_monotonic_time ();

  g_assert_no_error (error);
  g_thread_unref (g_thread_new ("stdin", noise_stdin_thread, NULL));
  while (!g_atomic_int_get (&noise_done))
    {
      write_one (stream);
      n++;
    }
  g_printerr ("  (busy file: the second child committed %" G_GUINT64_FORMAT " times, "
              "%.0f commits/s)\n", n,
              n / ((g_get_monotonic_time () - start) / (double) G_TIME_SPAN_SECOND));
  es_stream_factory_close (factory, NULL, NULL);
  return 0;
}

/* ---- the parent's side --------------------------------------------- */

static GSubprocess *
spawn_child (const char   *self_path,
             const char   *mode,
             const char   *path,
             const char   *arg,
             GOutputStream **out_stdin)
{
  g_autoptr(GError) error = NULL;
  GSubprocess *child;

  child = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                            self_path, mode, path, arg, NULL);
  g_assert_no_error (error);
  *out_stdin = g_subprocess_get_stdin_pipe (child);
  return child;
}

/* Voluntary plus involuntary context switches of each thread of @pid:
 * thread id -> count. */
static GHashTable *
context_switches (GPid pid)
{
  g_autofree char *task_dir = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (task_dir, 0, NULL);
  GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const char *tid;

  while (dir != NULL && (tid = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *status_path = g_build_filename (task_dir, tid, "status", NULL);
      g_autofree char *status = NULL;
      g_auto(GStrv) lines = NULL;
      guint64 total = 0;

      if (!g_file_get_contents (status_path, &status, NULL, NULL))
        continue;
      lines = g_strsplit (status, "\n", -1);
      for (guint i = 0; lines[i] != NULL; i++)
        if (g_str_has_prefix (lines[i], "voluntary_ctxt_switches:") ||
            g_str_has_prefix (lines[i], "nonvoluntary_ctxt_switches:"))
          total += g_ascii_strtoull (strchr (lines[i], ':') + 1, NULL, 10);
      g_hash_table_insert (counts, g_strdup (tid), GSIZE_TO_POINTER ((gsize) total));
    }
  return counts;
}

/* Switches between two snapshots: threads that started meanwhile count
 * from zero; threads that ended meanwhile are lost (none should). */
static guint64
context_switches_between (GHashTable *before,
                          GHashTable *after)
{
  GHashTableIter iter;
  gpointer key, value;
  guint64 total = 0;

  g_hash_table_iter_init (&iter, after);
  while (g_hash_table_iter_next (&iter, &key, &value))
    total += GPOINTER_TO_SIZE (value) - GPOINTER_TO_SIZE (g_hash_table_lookup (before, key));
  return total;
}

static guint
count_threads (GPid pid)
{
  g_autofree char *task_dir = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (task_dir, 0, NULL);
  guint n = 0;

  while (dir != NULL && g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

static void
idle_wakeups (const char *self_path,
              const char *path,
              int         n_watchers,
              int         seconds)
{
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *arg = g_strdup_printf ("%d", n_watchers);
  GOutputStream *in;
  GPid pid;
  g_autoptr(GHashTable) before = NULL;
  g_autoptr(GHashTable) after = NULL;
  guint64 switches;
  char label[64];

  child = spawn_child (self_path, "--child-idle", path, arg, &in);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "ready");
  pid = (GPid) g_ascii_strtoll (g_subprocess_get_identifier (child), NULL, 10);

  /* Let start-up settle, then count. */
  g_usleep (G_USEC_PER_SEC / 2);
  before = context_switches (pid);
  g_usleep ((gulong) seconds * G_USEC_PER_SEC);
  after = context_switches (pid);
  switches = context_switches_between (before, after);

  g_snprintf (label, sizeof label, "idle wake-ups, %d watchers", n_watchers);
  g_print ("%-28s %8.2f wake-ups/s  (%" G_GUINT64_FORMAT " in %d s, %u threads)\n", label,
           switches / (double) seconds, switches, seconds, count_threads (pid));

  g_output_stream_close (in, NULL, NULL);
  g_subprocess_wait_check (child, NULL, &error);
  g_assert_no_error (error);
}

/* Events written by a long-lived child, one at a time, each after the
 * previous one arrived and a pause of 2 ms (so the notifier idles in
 * between); with @busy, a second child commits continuously meanwhile. */
static void
cross_process_latency (const char *self_path,
                       const char *path,
                       EsStream   *stream,
                       Latency    *latency,
                       int         n_events,
                       gboolean    busy)
{
  g_autoptr(GSubprocess) ticker = NULL;
  g_autoptr(GSubprocess) noise = NULL;
  g_autoptr(GError) error = NULL;
  GOutputStream *ticker_in, *noise_in = NULL;

  g_array_set_size (latency->latencies, 0);
  ticker = spawn_child (self_path, "--child-ticker", path, "", &ticker_in);
  if (busy)
    {
      noise = spawn_child (self_path, "--child-noise", path, "", &noise_in);
      g_usleep (G_USEC_PER_SEC / 4);
    }

  for (int i = 0; i < n_events; i++)
    {
      gint64 pause_end = g_get_monotonic_time () + 2000;

      g_output_stream_write_all (ticker_in, "w\n", 2, NULL, NULL, &error);
      g_assert_no_error (error);
      g_output_stream_flush (ticker_in, NULL, &error);
      g_assert_no_error (error);
      wait_for (latency, i + 1);
      while (g_get_monotonic_time () < pause_end)
        g_main_context_iteration (NULL, FALSE), g_usleep (200);
    }
  report (busy ? "cross-process, busy file" : "cross-process, quiet file", latency->latencies);

  g_output_stream_close (ticker_in, NULL, NULL);
  g_subprocess_wait_check (ticker, NULL, &error);
  g_assert_no_error (error);
  if (noise != NULL)
    {
      g_output_stream_close (noise_in, NULL, NULL);
      g_subprocess_wait_check (noise, NULL, &error);
      g_assert_no_error (error);
    }
}

int
main (int   argc,
      char *argv[])
{
  gint n_events = 1000;
  gint idle_seconds = 10;
  gint polling_interval = 0;
  gboolean only_idle_wakeups = FALSE;
  g_autofree char *writer_path = NULL;
  GOptionEntry entries[] = {
    { "events", 'n', 0, G_OPTION_ARG_INT, &n_events, "Events per latency run (default 1000)", "N" },
    { "writer", 'w', 0, G_OPTION_ARG_FILENAME, &writer_path, "The es-test-writer program", "PATH" },
    { "idle-wakeups", 0, 0, G_OPTION_ARG_NONE, &only_idle_wakeups,
      "Only count the wake-ups of an idle process with 0, 1 and 200 watchers", NULL },
    { "polling-interval", 0, 0, G_OPTION_ARG_INT, &polling_interval,
      "The watching factory's polling-interval, ms (default: the factory's)", "MS" },
    { "idle-seconds", 0, 0, G_OPTION_ARG_INT, &idle_seconds,
      "Seconds each idle count lasts (default 10)", "S" },
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

  /* The child processes: the same program. */
  if (argc == 4 && strcmp (argv[1], "--child-idle") == 0)
    return child_idle (argv[2], atoi (argv[3]));
  if (argc == 4 && strcmp (argv[1], "--child-ticker") == 0)
    return child_ticker (argv[2]);
  if (argc == 4 && strcmp (argv[1], "--child-noise") == 0)
    return child_noise (argv[2]);

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
  if (polling_interval > 0)
    factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error, "path", path,
                              "polling-interval", (guint) polling_interval, NULL);
  else
    factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
  g_assert_no_error (error);
  notifier = ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (factory));
  stream = es_stream_factory_open_stream (factory, "ticks", NULL, &error);
  g_assert_no_error (error);

  latency.latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_print ("polling interval %u ms, %d events per run\n",
           es_sqlite_notifier_get_polling_interval (notifier), n_events);

  {
    int counts[] = { 0, 1, 200 };

    for (guint i = 0; i < G_N_ELEMENTS (counts); i++)
      idle_wakeups (argv[0], path, counts[i], idle_seconds);
  }
  if (only_idle_wakeups)
    goto out;

  /* Idle cost before any watcher. */
  g_print ("%-28s %8.1f checks/s\n", "idle, 0 watchers", checks_per_second (notifier));

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

  /* Cross-process: a child writes one event per run (at most 200 runs:
   * starting processes is slow). */
  g_array_set_size (latency.latencies, 0);
  for (gint i = 0; i < MIN (n_events, 200); i++)
    {
      g_autoptr(GSubprocess) child = NULL;

      child = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error,
                                writer_path, path, "ticks", "1", NULL);
      g_assert_no_error (error);
      wait_for (&latency, i + 1);
      g_subprocess_wait (child, NULL, NULL);
    }
  report ("cross-process, spawned", latency.latencies);

  cross_process_latency (argv[0], path, stream, &latency, n_events, FALSE);
  cross_process_latency (argv[0], path, stream, &latency, n_events, TRUE);

out:

  g_clear_object (&watch);
  g_ptr_array_set_size (watches, 0);
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
