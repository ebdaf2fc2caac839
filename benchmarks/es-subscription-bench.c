/* es-subscription-bench.c: what a durable subscription costs next to a
 * plain watch, and how often it commits its checkpoint.
 *
 * Usage: es-subscription-bench [--events N] [--live N] [--rounds R] [--memory]
 *
 * A SQLite file (or, with --memory, a :memory: database) is filled with N
 * events (default 200,000) in one stream, in batches of 1,000. Then, in
 * the same process and alternating R rounds (default 3):
 *
 * - catch-up: a watch of the stream from 0 whose ::event handler does nothing,
 *   timed from es_stream_watch() to ::caught-up; then a  new subscription
 *   of the stream (default settings: checkpoint-batch 100, checkpoint-delay
 *   1000 ms) whose handler does nothing, timed from
 *   es_subscription_start() to ::caught-up, then stopped;
 * - live: a watch and a subscription both attached and caught up, a
 *   writer thread appends --live events (default 20,000) in batches of
 *   100, timed from the first append to the last event reaching each.
 *
 * Checkpoint commits are counted by the subscription itself (a private
 * counter of the saves that reached the storage) and reported per 10,000
 * events, for the default batch and for batches of 10 and 1,000.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>

#include "es-glib/es-private.h"

typedef struct
{
  guint    n;
  gboolean caught_up;
} Counter;

static void
on_watch_event (EsWatch       *watch,
                EsStoredEvent *event,
                Counter       *counter)
{
  counter->n++;
}

static void
on_subscription_event (EsSubscription *subscription,
                       EsStoredEvent  *event,
                       Counter        *counter)
{
  counter->n++;
}

static void
on_caught_up (GObject *object,
              Counter *counter)
{
  counter->caught_up = TRUE;
}

static void
run_until_caught_up (Counter *counter)
{
  while (!counter->caught_up)
    g_main_context_iteration (NULL, TRUE);
}

static void
run_until_count (Counter *counter,
                 guint    n)
{
  while (counter->n < n)
    g_main_context_iteration (NULL, TRUE);
}

static void
fill (EsStream *stream,
      guint     n,
      guint     batch)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GBytes) data = g_bytes_new_static ("{\"amount\":1}", 12);

  for (guint i = 0; i < batch; i++)
    g_ptr_array_add (events, es_candidate_event_new ("Added", data));

  for (guint written = 0; written < n; written += batch)
    {
      g_autoptr(GError) error = NULL;

      es_stream_write (stream, (EsCandidateEvent * const *) events->pdata,
                       MIN (batch, n - written), ES_VERSION_ANY, NULL, &error);
      if (error != NULL)
        g_error ("%s", error->message);
    }
}

typedef struct
{
  EsStream *stream;
  guint     n;
} Writer;

static gpointer
writer_thread (gpointer data)
{
  Writer *writer = data;

  fill (writer->stream, writer->n, 100);
  return NULL;
}

static double
catch_up_watch (EsStream *stream,
                guint     n)
{
  Counter counter = { 0, FALSE };
  g_autoptr(EsWatch) watch = NULL;
  gint64 start = g_get_monotonic_time ();

  watch = es_stream_watch (stream, 0);
  g_signal_connect (watch, "event", G_CALLBACK (on_watch_event), &counter);
  g_signal_connect (watch, "caught-up", G_CALLBACK (on_caught_up), &counter);
  run_until_caught_up (&counter);
  g_assert_cmpuint (counter.n, ==, n);
  es_watch_stop (watch);
  return n / ((g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
}

/* Events/s of a catch-up of the whole history; *n_saves the checkpoint
 * commits it made (flush of stop included). */
static double
catch_up_subscription (EsStreamFactory *factory,
                       guint            n,
                       guint            batch,
                       guint           *n_saves)
{
  static guint round = 0;
  Counter counter = { 0, FALSE };
  g_autofree char *name = g_strdup_printf ("bench-%u", ++round);
  g_autoptr(EsSubscription) subscription = es_subscription_new (factory, name, "bench",
                                                                NULL, ES_SUBSCRIPTION_FLAGS_NONE);
  g_autoptr(GError) error = NULL;
  gint64 start, end;

  if (batch != 0)
    es_subscription_set_checkpoint_batch (subscription, batch);
  g_signal_connect (subscription, "event", G_CALLBACK (on_subscription_event), &counter);
  g_signal_connect (subscription, "caught-up", G_CALLBACK (on_caught_up), &counter);

  start = g_get_monotonic_time ();
  if (!es_subscription_start (subscription, NULL, &error))
    g_error ("%s", error->message);
  run_until_caught_up (&counter);
  end = g_get_monotonic_time ();
  g_assert_cmpuint (counter.n, ==, n);

  if (!es_subscription_stop (subscription, NULL, &error))
    g_error ("%s", error->message);
  g_assert_cmpint (es_subscription_get_checkpoint (subscription), ==, n);
  *n_saves = _es_subscription_get_n_saves (subscription);
  return n / ((end - start) / (double) G_USEC_PER_SEC);
}

int
main (int   argc,
      char *argv[])
{
  gint n_events = 200000, n_live = 20000, rounds = 3;
  gboolean in_memory = FALSE;
  GOptionEntry entries[] = {
    { "events", 'n', 0, G_OPTION_ARG_INT, &n_events, "Events of the history (default 200000)", "N" },
    { "live", 'l', 0, G_OPTION_ARG_INT, &n_live, "Events of the live run (default 20000)", "N" },
    { "rounds", 'r', 0, G_OPTION_ARG_INT, &rounds, "Rounds (default 3)", "R" },
    { "memory", 'm', 0, G_OPTION_ARG_NONE, &in_memory, "A :memory: database", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- subscription vs watch");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL, *path = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  guint batches[] = { 0, 10, 1000 };

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    g_error ("%s", error->message);

  if (!in_memory)
    {
      dir = g_dir_make_tmp ("es-subscription-bench-XXXXXX", &error);
      g_assert_no_error (error);
      path = g_build_filename (dir, "events.db", NULL);
    }
  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
  g_assert_no_error (error);
  stream = es_stream_factory_open_stream (factory, "bench", NULL, &error);
  g_assert_no_error (error);

  fill (stream, n_events, 1000);
  g_print ("SQLite %s, %d events of ~12 bytes in one stream, %d rounds\n\n",
           in_memory ? ":memory:" : "file (WAL)", n_events, rounds);

  g_print ("catch-up of the stream, no-op handler (events/s):\n");
  for (gint r = 0; r < rounds; r++)
    {
      guint saves = 0;
      double watch = catch_up_watch (stream, n_events);
      double sub = catch_up_subscription (factory, n_events, 0, &saves);

      g_print ("  round %d: watch %10.0f   subscription %10.0f   (%.2fx)   "
               "checkpoint commits %u = %.1f per 10,000 events\n",
               r + 1, watch, sub, sub / watch, saves, saves * 10000.0 / n_events);
    }

  g_print ("\ncheckpoint commits per 10,000 events during a catch-up, by checkpoint-batch:\n");
  for (guint i = 0; i < G_N_ELEMENTS (batches); i++)
    {
      guint saves = 0;
      double sub = catch_up_subscription (factory, n_events, batches[i], &saves);

      g_print ("  batch %5u: %7.1f commits per 10,000 events (%u in all), %10.0f events/s\n",
               batches[i] == 0 ? 100 : batches[i], saves * 10000.0 / n_events, saves, sub);
    }

  g_print ("\nlive: a thread appends %d events in batches of 100 while a watch and a\n"
           "subscription (default settings) are both attached:\n", n_live);
  for (gint r = 0; r < rounds; r++)
    {
      Counter watch_counter = { 0, FALSE }, sub_counter = { 0, FALSE };
      g_autoptr(EsWatch) watch = es_stream_watch (stream, -1);
      g_autofree char *name = g_strdup_printf ("live-%d", r);
      g_autoptr(EsSubscription) subscription =
        es_subscription_new (factory, name, "bench", NULL, ES_SUBSCRIPTION_FLAGS_NONE);
      Writer writer = { stream, n_live };
      gint64 start, watch_done = 0, sub_done = 0;
      guint saves_before;
      GThread *thread;

      es_subscription_set_start_from (subscription, ES_SUBSCRIPTION_START_END);
      g_signal_connect (watch, "event", G_CALLBACK (on_watch_event), &watch_counter);
      g_signal_connect (watch, "caught-up", G_CALLBACK (on_caught_up), &watch_counter);
      g_signal_connect (subscription, "event", G_CALLBACK (on_subscription_event), &sub_counter);
      g_signal_connect (subscription, "caught-up", G_CALLBACK (on_caught_up), &sub_counter);
      if (!es_subscription_start (subscription, NULL, &error))
        g_error ("%s", error->message);
      run_until_caught_up (&watch_counter);
      run_until_caught_up (&sub_counter);
      saves_before = _es_subscription_get_n_saves (subscription);

      start = g_get_monotonic_time ();
      thread = g_thread_new ("writer", writer_thread, &writer);
      while (watch_done == 0 || sub_done == 0)
        {
          g_main_context_iteration (NULL, TRUE);
          if (watch_done == 0 && watch_counter.n >= (guint) n_live)
            watch_done = g_get_monotonic_time ();
          if (sub_done == 0 && sub_counter.n >= (guint) n_live)
            sub_done = g_get_monotonic_time ();
        }
      g_thread_join (thread);
      run_until_count (&sub_counter, n_live);

      g_print ("  round %d: watch %10.0f events/s   subscription %10.0f events/s   "
               "checkpoint commits %u = %.1f per 10,000 events\n", r + 1,
               n_live / ((watch_done - start) / (double) G_USEC_PER_SEC),
               n_live / ((sub_done - start) / (double) G_USEC_PER_SEC),
               _es_subscription_get_n_saves (subscription) - saves_before,
               (_es_subscription_get_n_saves (subscription) - saves_before) * 10000.0 / n_live);
      es_watch_stop (watch);
      if (!es_subscription_stop (subscription, NULL, &error))
        g_error ("%s", error->message);
    }

  if (!es_stream_factory_close (factory, NULL, &error))
    g_error ("%s", error->message);
  if (dir != NULL)
    {
      g_unlink (path);
      {
        g_autofree char *wal = g_strconcat (path, "-wal", NULL);
        g_autofree char *shm = g_strconcat (path, "-shm", NULL);
        g_autofree char *lock = g_strconcat (path, "-eslock", NULL);

        g_unlink (wal);
        g_unlink (shm);
        g_unlink (lock);
      }
      g_rmdir (dir);
    }
  return 0;
}
