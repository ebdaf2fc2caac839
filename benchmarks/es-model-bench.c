/* es-model-bench.c: EsEventListModel on a big SQLite stream.
 *
 * Usage: es-model-bench [--events N] [--db PATH] [--random N] [--latency N]
 *                       [--writer PATH-TO-es-test-writer]
 *
 * Measures, on a stream of N events (default 1,000,000; the database is
 * made in a temporary directory, or reused with --db):
 * - the time from es_event_list_model_new() to the first item, oldest and
 *   newest first, with a filter (1 event in 10) and for @all, and the
 *   time of a jump to the middle of the filtered model (no anchor there:
 *   the events in between are read and dropped) and of the next jump
 *   close to it;
 * - the peak RSS of a child process reading every item once in order,
 *   and reading --random positions (default 20,000) in random order, next
 *   to the RSS of the same process with the model opened and nothing read
 *   (SQLite's page cache, --cache-kib per connection, fills up too);
 * - the latency from a commit in another process (es-test-writer, one
 *   event per process) to ::items-changed, from the event's stored commit
 *   timestamp (the writer's g_get_real_time()) to the signal.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "es-bench-common.h"

static glong
peak_rss_kib (void)
{
  struct rusage usage;

  getrusage (RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

static glong
current_rss_kib (void)
{
  g_autofree char *statm = NULL;
  long pages = 0, resident = 0;

  if (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    sscanf (statm, "%ld %ld", &pages, &resident);
  return resident * (sysconf (_SC_PAGESIZE) / 1024);
}

static gboolean
not_loading (EsEventListModel *model)
{
  return !es_event_list_model_get_loading (model);
}

static EsEventListModel *
open_model (EsStreamFactory       *factory,
            const char            *stream_id,
            EsEventFilter         *filter,
            EsEventListModelFlags  flags,
            double                *out_ms)
{
  double start = now ();
  EsEventListModel *model = es_event_list_model_new (factory, stream_id, filter, flags);
  g_autoptr(EsStoredEvent) first = NULL;

  while (!not_loading (model))
    g_main_context_iteration (NULL, TRUE);
  first = g_list_model_get_item (G_LIST_MODEL (model), 0);
  g_assert_nonnull (first);
  touch_event (first);
  *out_ms = (now () - start) * 1000;
  return model;
}

/* The child: reads the model and reports its RSS. */
static int
run_child (const char *mode,
           const char *path,
           guint       n_random,
           guint       cache_kib)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsEventListModel) model = NULL;
  double ms, start;
  glong opened_rss;
  guint n;

  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error, "path", path,
                            "cache-size-kib", cache_kib, NULL);
  g_assert_no_error (error);
  model = open_model (factory, "big", NULL, ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST, &ms);
  n = g_list_model_get_n_items (G_LIST_MODEL (model));
  opened_rss = peak_rss_kib ();

  start = now ();
  if (g_str_equal (mode, "order"))
    {
      for (guint i = 0; i < n; i++)
        {
          g_autoptr(EsStoredEvent) event = g_list_model_get_item (G_LIST_MODEL (model), i);

          touch_event (event);
          /* As a scrolling list view does, the main loop runs between
           * rows: the neighbouring pages read ahead land. */
          if (i % 64 == 0)
            g_main_context_iteration (NULL, FALSE);
          /* Flat: the RSS after a tenth, half and all of the items. */
          if (i + 1 == n / 10 || i + 1 == n / 2)
            g_print ("%-34s %8u items read: RSS %6.1f MiB\n", "", i + 1,
                     current_rss_kib () / 1024.0);
        }
    }
  else
    {
      GRand *rand = g_rand_new_with_seed (18);

      n = MIN (n, n_random);
      for (guint i = 0; i < n; i++)
        {
          guint position = g_rand_int_range (rand, 0, g_list_model_get_n_items (G_LIST_MODEL (model)));
          g_autoptr(EsStoredEvent) event = g_list_model_get_item (G_LIST_MODEL (model), position);

          touch_event (event);
          if (i % 64 == 0)
            g_main_context_iteration (NULL, FALSE);
        }
      g_rand_free (rand);
    }
  g_print ("%-34s %8u items %9.1f ms  %7.0f items/s  RSS opened %6.1f MiB, peak %6.1f MiB (now %6.1f MiB)\n",
           g_str_equal (mode, "order") ? "every item in order" : "random positions",
           n, (now () - start) * 1000, n / (now () - start),
           opened_rss / 1024.0, peak_rss_kib () / 1024.0, current_rss_kib () / 1024.0);
  g_clear_object (&model);
  close_factory (g_steal_pointer (&factory));
  return 0;
}

typedef struct
{
  EsEventListModel *model;
  GArray           *latencies;  /* gint64 µs */
} Latency;

static void
on_items_changed (GListModel *list,
                  guint       position,
                  guint       removed,
                  guint       added,
                  Latency    *latency)
{
  gint64 received = g_get_real_time ();
  g_autoptr(EsStoredEvent) event = g_list_model_get_item (list, position);
  gint64 delta = received - es_stored_event_get_timestamp_usec (event);

  g_array_append_val (latency->latencies, delta);
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

int
main (int   argc,
      char *argv[])
{
  gint n_events = 1000000, n_random = 20000, n_latency = 200, cache_kib = 8192;
  g_autofree char *db = NULL, *writer_path = NULL, *child = NULL;
  GOptionEntry entries[] = {
    { "events", 'n', 0, G_OPTION_ARG_INT, &n_events, "Events in the stream (default 1000000)", "N" },
    { "db", 'd', 0, G_OPTION_ARG_FILENAME, &db, "Reuse (or make) this database", "PATH" },
    { "random", 'r', 0, G_OPTION_ARG_INT, &n_random, "Random positions read (default 20000)", "N" },
    { "latency", 'l', 0, G_OPTION_ARG_INT, &n_latency, "Cross-process commits timed (default 200)", "N" },
    { "writer", 'w', 0, G_OPTION_ARG_FILENAME, &writer_path, "The es-test-writer program", "PATH" },
    { "cache-kib", 'c', 0, G_OPTION_ARG_INT, &cache_kib, "SQLite page cache of each connection of the RSS runs (default 8192)", "KIB" },
    { "child", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &child, NULL, NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- EsEventListModel figures");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(EsStreamInfo) info = NULL;
  const char *modes[] = { "order", "random" };
  Latency latency;
  double ms;

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    g_error ("%s", error->message);
  if (child != NULL)
    return run_child (child, db, (guint) n_random, (guint) cache_kib);
  if (writer_path == NULL)
    {
      g_autofree char *bindir = g_path_get_dirname (argv[0]);

      writer_path = g_build_filename (bindir, "..", "tests", "es-test-writer", NULL);
    }
  if (db == NULL)
    {
      dir = g_dir_make_tmp ("es-model-bench-XXXXXX", &error);
      g_assert_no_error (error);
      db = g_build_filename (dir, "events.db", NULL);
    }

  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (db, NULL, &error));
  g_assert_no_error (error);
  stream = open_stream (factory, "big");
  info = es_stream_factory_get_stream_info (factory, "big", NULL, &error);
  g_assert_no_error (error);
  if (es_stream_info_get_event_count (info) < n_events)
    {
      guint have = (guint) es_stream_info_get_event_count (info);
      double seconds;

      g_print ("writing %d events to %s...\n", n_events - have, db);
      seconds = es_write_batched (stream, have, n_events - have, 1000);
      g_print ("written in %.1f s\n", seconds);
      /* Other streams, so that @all is not the same as "big". */
      g_clear_object (&stream);
      stream = open_stream (factory, "small");
      es_write_batched (stream, 0, 1000, 1000);
    }

  g_print ("\n%d events in one stream, SQLite file %s\n\n", n_events, db);
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("Type3"));

  {
    struct { const char *label; const char *stream_id; EsEventFilter *filter; EsEventListModelFlags flags; } runs[] = {
      { "stream, oldest first", "big", NULL, ES_EVENT_LIST_MODEL_FLAGS_NONE },
      { "stream, newest first", "big", NULL, ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST },
      { "stream, type filter (1 in 10)", "big", filter, ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST },
      { "@all, newest first", ES_ALL_STREAM, NULL, ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST },
    };

    for (guint r = 0; r < G_N_ELEMENTS (runs); r++)
      {
        g_autoptr(EsEventListModel) model = open_model (factory, runs[r].stream_id, runs[r].filter,
                                                        runs[r].flags, &ms);
        guint n = g_list_model_get_n_items (G_LIST_MODEL (model));

        g_print ("%-34s new -> first item %8.2f ms  (%u items)\n", runs[r].label, ms, n);
        if (runs[r].filter != NULL || g_str_equal (runs[r].stream_id, ES_ALL_STREAM))
          {
            double start = now ();
            g_autoptr(EsStoredEvent) middle = g_list_model_get_item (G_LIST_MODEL (model), n / 2);
            g_autoptr(EsStoredEvent) near = NULL;

            touch_event (middle);
            g_print ("%-34s jump to the middle  %8.2f ms\n", "", (now () - start) * 1000);
            start = now ();
            near = g_list_model_get_item (G_LIST_MODEL (model), n / 2 + n / 8);
            touch_event (near);
            g_print ("%-34s then n/8 further    %8.2f ms\n", "", (now () - start) * 1000);
          }
        else
          {
            double start = now ();
            g_autoptr(EsStoredEvent) middle = g_list_model_get_item (G_LIST_MODEL (model), n / 2);

            touch_event (middle);
            g_print ("%-34s jump to the middle  %8.2f ms\n", "", (now () - start) * 1000);
          }
      }
  }

  /* Peak RSS, each in a fresh process. */
  g_print ("\nSQLite page cache %d KiB per connection (pool of 4 readers)\n", cache_kib);
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
    {
      g_autofree char *random = g_strdup_printf ("%d", n_random);
      g_autofree char *cache = g_strdup_printf ("%d", cache_kib);
      g_autoptr(GSubprocess) process =
        g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error, argv[0], "--child", modes[m],
                          "--db", db, "--random", random, "--cache-kib", cache, NULL);

      g_assert_no_error (error);
      g_subprocess_wait_check (process, NULL, &error);
      g_assert_no_error (error);
    }

  /* Latency: another process commits one event at a time. */
  latency.model = es_event_list_model_new (factory, "ticks", NULL,
                                           ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST);
  latency.latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  while (es_event_list_model_get_loading (latency.model))
    g_main_context_iteration (NULL, TRUE);
  g_signal_connect (latency.model, "items-changed", G_CALLBACK (on_items_changed), &latency);
  for (gint i = 0; i < n_latency; i++)
    {
      g_autoptr(GSubprocess) process =
        g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error, writer_path, db, "ticks", "1", NULL);
      gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

      g_assert_no_error (error);
      while (latency.latencies->len < (guint) i + 1 && g_get_monotonic_time () < deadline)
        g_main_context_iteration (NULL, TRUE);
      if (latency.latencies->len < (guint) i + 1)
        g_error ("timed out waiting for commit %d", i);
      g_subprocess_wait (process, NULL, NULL);
    }
  g_array_sort (latency.latencies, compare_int64);
  {
    gint64 *values = (gint64 *) latency.latencies->data;
    guint n = latency.latencies->len;

    g_print ("\n%-34s n=%-5u median %7.3f ms  p99 %7.3f ms  max %7.3f ms\n",
             "other process commit -> items-changed", n, values[n / 2] / 1000.0,
             values[MIN (n - 1, n * 99 / 100)] / 1000.0, values[n - 1] / 1000.0);
  }
  g_signal_handlers_disconnect_by_data (latency.model, &latency);
  g_clear_object (&latency.model);
  g_array_unref (latency.latencies);

  g_clear_object (&stream);
  close_factory (g_steal_pointer (&factory));
  if (dir != NULL)
    {
      g_autofree char *wal = g_strconcat (db, "-wal", NULL);
      g_autofree char *shm = g_strconcat (db, "-shm", NULL);

      g_unlink (db);
      g_unlink (wal);
      g_unlink (shm);
      g_rmdir (dir);
    }
  return 0;
}
