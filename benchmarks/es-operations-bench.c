/* es-operations-bench.c: throughput of export, import, backup and check
 * (issue 19). Each phase runs in its own process, so that its peak RSS
 * (getrusage) is its own:
 *
 *   B=_build/benchmarks/es-operations-bench; D=$(mktemp -d)
 *   $B populate $D/events.db 1000000
 *   $B export   $D/events.db $D/events.jsonl
 *   $B import   $D/events.jsonl $D/copy.db
 *   $B backup   $D/events.db $D/backup.db     # while a writer appends
 *   $B check    $D/events.db
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "es-glib/es-glib.h"

#define N_STREAMS 1000
#define BATCH     1000

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static long
peak_rss_mib (void)
{
  struct rusage usage;

  getrusage (RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

static EsStreamFactory *
open_factory (const char *path)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));

  if (factory == NULL)
    g_error ("%s", error->message);
  return factory;
}

static void
populate (const char *path,
          guint       n)
{
  g_autoptr(EsStreamFactory) factory = open_factory (path);
  double start = now ();

  /* Batches of 1,000 events to one stream, round robin over 1,000
   * streams: @all interleaves streams, as real databases do. */
  for (guint written = 0; written < n; written += BATCH)
    {
      g_autofree char *id = g_strdup_printf ("stream-%u", (written / BATCH) % N_STREAMS);
      g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, id, NULL, NULL);
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
      g_autoptr(GError) error = NULL;

      for (guint i = 0; i < BATCH && written + i < n; i++)
        {
          guint k = written + i;
          g_autofree char *json = g_strdup_printf ("{\"order\":%u,\"amount\":%u.%02u,"
                                                   "\"customer\":\"customer-%u\","
                                                   "\"items\":[\"sku-%u\",\"sku-%u\"]}",
                                                   k, k % 1000, k % 100, k % 5000, k % 97,
                                                   k % 89);
          g_autoptr(GBytes) data = g_bytes_new_take (g_steal_pointer (&json), strlen (json));
          EsCandidateEvent *event = es_candidate_event_new (k % 2 ? "OrderPlaced" : "OrderPaid",
                                                            data);
          g_autofree char *key = g_strdup_printf ("key-%u", k);
          g_autofree char *metadata = g_strdup_printf ("{\"tenant\":%u}", k % 10);

          es_candidate_event_set_idempotency_key (event, key);
          es_candidate_event_set_metadata (event, metadata);
          g_ptr_array_add (batch, event);
        }
      es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                       ES_VERSION_ANY, NULL, &error);
      if (error != NULL)
        g_error ("%s", error->message);
    }
  printf ("populate: %u events in %.1f s\n", n, now () - start);
  es_stream_factory_close (factory, NULL, NULL);
}

static void
export (const char *path,
        const char *output_path)
{
  g_autoptr(EsStreamFactory) factory = open_factory (path);
  g_autoptr(GFile) file = g_file_new_for_path (output_path);
  g_autoptr(GError) error = NULL;
  g_autoptr(GFileOutputStream) out = g_file_replace (file, NULL, FALSE, G_FILE_CREATE_NONE, NULL,
                                                     &error);
  g_autoptr(GOutputStream) buffered = NULL;
  double start = now (), elapsed;
  gint64 n;

  if (out == NULL)
    g_error ("%s", error->message);
  buffered = g_buffered_output_stream_new_sized (G_OUTPUT_STREAM (out), 1 << 20);
  n = es_stream_factory_export_events (factory, buffered, NULL, NULL, ES_EXPORT_FLAGS_NONE, NULL,
                                       NULL, NULL, &error);
  if (n < 0 || !g_output_stream_close (buffered, NULL, &error))
    g_error ("%s", error->message);
  elapsed = now () - start;
  printf ("export: %" G_GINT64_FORMAT " events in %.2f s, %.0f events/s, peak RSS %ld MiB\n",
          n, elapsed, n / elapsed, peak_rss_mib ());
  es_stream_factory_close (factory, NULL, NULL);
}

static void
import (const char *input_path,
        const char *path)
{
  g_autoptr(EsStreamFactory) factory = open_factory (path);
  g_autoptr(GFile) file = g_file_new_for_path (input_path);
  g_autoptr(GError) error = NULL;
  g_autoptr(GFileInputStream) in = g_file_read (file, NULL, &error);
  double start = now (), elapsed;
  gint64 n;

  if (in == NULL)
    g_error ("%s", error->message);
  n = es_stream_factory_import_events (factory, G_INPUT_STREAM (in), ES_IMPORT_FLAGS_NONE, NULL,
                                       NULL, NULL, &error);
  if (n < 0)
    g_error ("%s", error->message);
  elapsed = now () - start;
  printf ("import: %" G_GINT64_FORMAT " events in %.2f s, %.0f events/s, peak RSS %ld MiB\n",
          n, elapsed, n / elapsed, peak_rss_mib ());
  es_stream_factory_close (factory, NULL, NULL);
}

typedef struct
{
  const char *path;
  gint        stop;
  gint        written;
} Writer;

static gpointer
writer_thread (gpointer data)
{
  Writer *w = data;
  g_autoptr(EsStreamFactory) factory = open_factory (w->path);
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, "live", NULL, NULL);

  while (!g_atomic_int_get (&w->stop))
    {
      g_autoptr(GBytes) data_bytes = g_bytes_new_static ("{\"tick\":true}", 13);
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Tick", data_bytes);
      g_autoptr(GError) error = NULL;

      if (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error) < 0)
        g_error ("%s", error->message);
      g_atomic_int_inc (&w->written);
    }
  es_stream_factory_close (factory, NULL, NULL);
  return NULL;
}

static void
backup (const char *path,
        const char *dest)
{
  g_autoptr(EsStreamFactory) factory = open_factory (path);
  g_autoptr(GFile) file = g_file_new_for_path (dest);
  g_autoptr(GError) error = NULL;
  Writer w = { path, 0, 0 };
  GThread *thread = g_thread_new ("writer", writer_thread, &w);
  double start, elapsed;
  gint during;
  g_autoptr(GFileInfo) info = NULL;

  while (g_atomic_int_get (&w.written) < 100)
    g_usleep (1000);
  start = now ();
  during = g_atomic_int_get (&w.written);
  if (!es_stream_factory_backup (factory, file, ES_BACKUP_FLAGS_OVERWRITE, NULL, NULL, NULL,
                                 &error))
    g_error ("%s", error->message);
  elapsed = now () - start;
  during = g_atomic_int_get (&w.written) - during;
  g_atomic_int_set (&w.stop, 1);
  g_thread_join (thread);
  info = g_file_query_info (file, G_FILE_ATTRIBUTE_STANDARD_SIZE, G_FILE_QUERY_INFO_NONE, NULL,
                            NULL);
  printf ("backup: %.0f MiB in %.2f s while a writer committed %d single-event appends "
          "(%.0f/s), peak RSS %ld MiB\n",
          g_file_info_get_size (info) / 1048576.0, elapsed, during, during / elapsed,
          peak_rss_mib ());
  es_stream_factory_close (factory, NULL, NULL);
}

static void
check (const char *path,
       gboolean    quick)
{
  g_autoptr(EsStreamFactory) factory = open_factory (path);
  g_autoptr(GError) error = NULL;
  double start = now ();
  g_autoptr(EsCheckReport) report =
    es_stream_factory_check (factory, quick ? ES_CHECK_FLAGS_QUICK : ES_CHECK_FLAGS_NONE, NULL,
                             NULL, NULL, &error);

  if (report == NULL)
    g_error ("%s", error->message);
  printf ("check%s: %s, %u problems, %.2f s, peak RSS %ld MiB\n", quick ? " (quick)" : "",
          es_check_report_is_ok (report) ? "ok" : "NOT OK",
          es_check_report_get_n_problems (report), now () - start, peak_rss_mib ());
  es_stream_factory_close (factory, NULL, NULL);
}

int
main (int   argc,
      char *argv[])
{
  if (argc >= 4 && strcmp (argv[1], "populate") == 0)
    populate (argv[2], (guint) atoi (argv[3]));
  else if (argc >= 4 && strcmp (argv[1], "export") == 0)
    export (argv[2], argv[3]);
  else if (argc >= 4 && strcmp (argv[1], "import") == 0)
    import (argv[2], argv[3]);
  else if (argc >= 4 && strcmp (argv[1], "backup") == 0)
    backup (argv[2], argv[3]);
  else if (argc >= 3 && strcmp (argv[1], "check") == 0)
    check (argv[2], argc >= 4 && strcmp (argv[3], "--quick") == 0);
  else
    {
      fprintf (stderr, "Usage: %s populate DB N | export DB FILE | import FILE DB | "
                       "backup DB DEST | check DB [--quick]\n", argv[0]);
      return 2;
    }
  return 0;
}
