/* crash-writer.c: writes as fast as it can, for the reliability tests.
 *
 * Usage:
 *   crash-writer crash DATABASE
 *     Four threads, one per stream (crash-0 to crash-3), append batches of
 *     1 to 5 events until the process is killed; crash-3's thread with
 *     es_stream_write_async(), the others with es_stream_write().
 *     Every 16th batch, a thread also saves a snapshot "v=VERSION" of its
 *     stream's version (projection "crash"). Every event of
 *     a batch carries the batch id in its data and its metadata, and an
 *     idempotency key BATCH/INDEX; each write expects the version the
 *     previous one returned. After each acknowledged write, one line on
 *     stdout, flushed:
 *       ACK STREAM FIRST LAST BATCH SIZE
 *     (FIRST..LAST the versions the batch took). Now and then a batch is
 *     written a second time: every key is stored, so nothing is written and
 *     the version must not move.
 *
 *   crash-writer open DATABASE
 *     Opens the database (creating it when it does not exist) and closes
 *     it: several started at once race to create one file.
 *
 *   crash-writer lifecycle DATABASE
 *     Writes, deletes, truncates, erases and sweeps until killed, in three
 *     threads (the stream life cycle, issue 16). Batches are written and
 *     acknowledged as in crash mode (ACK lines). Besides:
 *     - "trunc": appends to trunc-0 and trunc-1 in turn, saves a snapshot
 *       "v=VERSION" (projection "crash") every 4th batch, truncates the
 *       stream before a version a little below its own every 6th
 *       (TRUNC STREAM BEFORE) and erases one of its recent events every
 *       5th (ERASE STREAM VERSION; an event retention or a truncation took
 *       already is skipped);
 *     - "delete": for each of its own streams del-WRITER-K, writes 1 to 3
 *       batches, checks that a delete expecting a wrong version fails, soft
 *       deletes it (DEL STREAM VERSION), writes one batch more (which
 *       continues the versions), and hard deletes every other one
 *       (TOMB STREAM), checking that writes and truncations of it then
 *       fail with ES_ERROR_STREAM_DELETED;
 *     - "retention": appends to count-0 and age-0 in turn and sweeps every
 *       8th round (SWEEP REMOVED).
 *     Before the threads start, the main thread sets the retention policies
 *     (RET STREAM MAX_AGE MAX_COUNT, STREAM @all for the database-wide
 *     one): a count of 200 everywhere, 10 on count-0, an age of 100 ms on
 *     age-0.
 *     Each line is printed after the operation returned.
 *
 *   crash-writer race DATABASE ITERATIONS
 *     Four threads do ITERATIONS read-modify-write rounds each on the
 *     shared streams race-a and race-b: read the stream's last version V,
 *     write one event expecting V. One line per attempt:
 *       WIN STREAM VERSION KEY      the write took version VERSION
 *       LOSE STREAM KEY             ES_ERROR_WRONG_EXPECTED_VERSION
 *
 * Any other failure: a message on stderr and exit status 1.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <es-glib/es-glib.h>

#define N_CRASH_STREAMS 4  /* the last one writes asynchronously */
#define N_RACE_THREADS  4

static GMutex output_lock;
static EsStreamFactory *factory;
/* Names this process's batches and keys. Not the pid alone: pids come
 * back (pid_max is 32768 here), and a new writer reusing an old one's keys
 * would see its events skipped as already stored, which is idempotency
 * working, not a test of anything. */
static char *writer_id;
static guint64 race_iterations;

static void
output (const char *format,
        ...) G_GNUC_PRINTF (1, 2);

static void
output (const char *format,
        ...)
{
  va_list args;

  g_mutex_lock (&output_lock);
  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  fflush (stdout);
  g_mutex_unlock (&output_lock);
}

static void G_GNUC_NORETURN
fail (const char *what,
      GError     *error)
{
  g_mutex_lock (&output_lock);
  fprintf (stderr, "crash-writer: %s: %s\n", what, error != NULL ? error->message : "?");
  fflush (stderr);
  exit (1);
}

static EsCandidateEvent *
batch_event (const char *batch,
             guint       index,
             guint       size)
{
  g_autofree char *data = g_strdup_printf ("batch=%s;index=%u;size=%u", batch, index, size);
  g_autofree char *metadata = g_strdup_printf ("{\"batch\": \"%s\", \"index\": %u, \"size\": %u}",
                                               batch, index, size);
  g_autofree char *key = g_strdup_printf ("%s/%u", batch, index);
  g_autoptr(GBytes) bytes = g_bytes_new (data, strlen (data));
  EsCandidateEvent *event;

  event = es_candidate_event_new ("CrashTest", bytes);
  es_candidate_event_set_metadata (event, metadata);
  es_candidate_event_set_idempotency_key (event, key);
  return event;
}

typedef struct
{
  GMainContext *context;
  gint64        version;
  GError       *error;
  gboolean      done;
} AsyncWrite;

static void
write_done (GObject      *source,
            GAsyncResult *result,
            gpointer      data)
{
  AsyncWrite *write = data;

  write->version = es_stream_write_finish (ES_STREAM (source), result, &write->error);
  write->done = TRUE;
  g_main_context_wakeup (write->context);
}

/* A write, synchronous or through es_stream_write_async(). */
static gint64
do_write (EsStream          *stream,
          EsCandidateEvent **events,
          guint              n_events,
          gint64             expected_version,
          GMainContext      *context,
          GError           **error)
{
  AsyncWrite write = { context, -1, NULL, FALSE };

  if (context == NULL)
    return es_stream_write (stream, events, n_events, expected_version, NULL, error);

  es_stream_write_async (stream, events, n_events, expected_version, NULL, write_done, &write);
  while (!write.done)
    g_main_context_iteration (context, TRUE);
  if (write.error != NULL)
    g_propagate_error (error, write.error);
  return write.version;
}

static gpointer
crash_thread (gpointer data)
{
  guint index = GPOINTER_TO_UINT (data);
  g_autofree char *stream_id = g_strdup_printf ("crash-%u", index);
  g_autoptr(GRand) rand = g_rand_new ();
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainContext) context = NULL;
  gint64 version;
  guint64 n;

  if (index == N_CRASH_STREAMS - 1)
    {
      context = g_main_context_new ();
      g_main_context_push_thread_default (context);
    }

  stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);
  if (stream == NULL)
    fail ("open_stream", error);
  version = es_stream_get_version (stream);

  for (n = 0; ; n++)
    {
      g_autofree char *batch = g_strdup_printf ("%s-%u-%" G_GUINT64_FORMAT,
                                                writer_id, index, n);
      guint size = g_rand_int_range (rand, 1, 6);
      g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
      gint64 new_version;
      guint i;

      for (i = 0; i < size; i++)
        g_ptr_array_add (events, batch_event (batch, i, size));

      new_version = do_write (stream, (EsCandidateEvent **) events->pdata, size, version,
                              context, &error);
      if (new_version < 0)
        fail ("write", error);
      if (new_version != version + size)
        {
          g_set_error (&error, ES_ERROR, ES_ERROR_FAILED,
                       "a batch of %u at version %" G_GINT64_FORMAT " returned %" G_GINT64_FORMAT,
                       size, version, new_version);
          fail ("write", error);
        }
      output ("ACK %s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %s %u\n",
              stream_id, version + 1, new_version, batch, size);
      version = new_version;

      /* A retry of an acknowledged batch: every key is stored. */
      if (g_rand_int_range (rand, 0, 8) == 0)
        {
          new_version = do_write (stream, (EsCandidateEvent **) events->pdata, size,
                                  ES_VERSION_ANY, context, &error);
          if (new_version != version)
            {
              if (error == NULL)
                g_set_error (&error, ES_ERROR, ES_ERROR_FAILED,
                             "a retried batch moved the version from %" G_GINT64_FORMAT
                             " to %" G_GINT64_FORMAT, version, new_version);
              fail ("retry", error);
            }
        }

      if (n % 16 == 15)
        {
          g_autofree char *text = g_strdup_printf ("v=%" G_GINT64_FORMAT, version);
          g_autoptr(GBytes) state = g_bytes_new (text, strlen (text));

          if (!es_stream_snapshot (stream, state, version, "crash", NULL, &error))
            fail ("snapshot", error);
        }
    }

  return NULL;
}

/* ---------------------------------------------------------------------- *
 * lifecycle mode                                                          *
 * ---------------------------------------------------------------------- */

/* Appends one batch of 1 to @max_size events expecting *@version, and
 * acknowledges it. */
static void
life_write (EsStream   *stream,
            const char *batch,
            GRand      *rand,
            guint       max_size,
            gint64     *version)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  guint size = g_rand_int_range (rand, 1, max_size + 1);
  gint64 new_version;
  guint i;

  for (i = 0; i < size; i++)
    g_ptr_array_add (events, batch_event (batch, i, size));
  new_version = es_stream_write (stream, (EsCandidateEvent **) events->pdata, size, *version,
                                 NULL, &error);
  if (new_version != *version + size)
    {
      if (error == NULL)
        g_set_error (&error, ES_ERROR, ES_ERROR_FAILED,
                     "a batch of %u at version %" G_GINT64_FORMAT " returned %" G_GINT64_FORMAT,
                     size, *version, new_version);
      fail ("write", error);
    }
  output ("ACK %s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %s %u\n",
          es_stream_get_stream_id (stream), *version + 1, new_version, batch, size);
  *version = new_version;
}

static gpointer
life_trunc_thread (gpointer data)
{
  g_autoptr(GRand) rand = g_rand_new ();
  EsStream *streams[2] = { NULL, NULL };
  gint64 versions[2];
  g_autoptr(GError) error = NULL;
  guint64 n;
  guint s;

  for (s = 0; s < 2; s++)
    {
      g_autofree char *id = g_strdup_printf ("trunc-%u", s);

      streams[s] = es_stream_factory_open_stream (factory, id, NULL, &error);
      if (streams[s] == NULL)
        fail ("open_stream", error);
      versions[s] = es_stream_get_version (streams[s]);
    }

  for (n = 0; ; n++)
    {
      g_autofree char *batch = g_strdup_printf ("%s-t-%" G_GUINT64_FORMAT, writer_id, n);
      EsStream *stream;
      const char *id;

      s = n % 2;
      stream = streams[s];
      id = es_stream_get_stream_id (stream);
      life_write (stream, batch, rand, 5, &versions[s]);

      if (n % 4 == 3)
        {
          g_autofree char *text = g_strdup_printf ("v=%" G_GINT64_FORMAT, versions[s]);
          g_autoptr(GBytes) state = g_bytes_new (text, strlen (text));

          if (!es_stream_snapshot (stream, state, versions[s], "crash", NULL, &error))
            fail ("snapshot", error);
        }
      if (n % 6 == 5)
        {
          /* Not inside MAX(), which would draw twice. */
          gint64 before = versions[s] - g_rand_int_range (rand, 0, 9);

          before = MAX (1, before);

          if (!es_stream_factory_truncate_stream (factory, id, before, NULL, &error))
            fail ("truncate", error);
          output ("TRUNC %s %" G_GINT64_FORMAT "\n", id, before);
        }
      if (n % 5 == 4)
        {
          gint64 version = versions[s] - g_rand_int_range (rand, 0, 11);

          if (version < 1)
            continue;
          if (es_stream_factory_erase_event (factory, id, version, NULL, &error))
            output ("ERASE %s %" G_GINT64_FORMAT "\n", id, version);
          else if (g_error_matches (error, ES_ERROR, ES_ERROR_NOT_FOUND))
            g_clear_error (&error);
          else
            fail ("erase", error);
        }
    }

  return NULL;
}

static void
expect_error (gboolean    ok,
              GError    **error,
              gint        code,
              const char *what)
{
  if (ok)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_FAILED, "succeeded, expected error %d", code);
      fail (what, *error);
    }
  if (!g_error_matches (*error, ES_ERROR, code))
    fail (what, *error);
  g_clear_error (error);
}

static gpointer
life_delete_thread (gpointer data)
{
  g_autoptr(GRand) rand = g_rand_new ();
  g_autoptr(GError) error = NULL;
  guint64 k;

  for (k = 0; ; k++)
    {
      g_autofree char *id = g_strdup_printf ("del-%s-%" G_GUINT64_FORMAT, writer_id, k);
      g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, id, NULL, &error);
      g_autoptr(EsCandidateEvent) late = NULL;
      gint64 version = 0;
      guint batches = g_rand_int_range (rand, 1, 4);
      guint b;

      if (stream == NULL)
        fail ("open_stream", error);
      for (b = 0; b < batches; b++)
        {
          g_autofree char *batch = g_strdup_printf ("%s-d-%" G_GUINT64_FORMAT "-%u",
                                                    writer_id, k, b);

          life_write (stream, batch, rand, 4, &version);
        }

      expect_error (es_stream_factory_delete_stream (factory, id, version + 1,
                                                     ES_DELETE_FLAGS_NONE, NULL, &error),
                    &error, ES_ERROR_WRONG_EXPECTED_VERSION, "delete, wrong version");
      if (!es_stream_factory_delete_stream (factory, id, version, ES_DELETE_FLAGS_NONE,
                                            NULL, &error))
        fail ("delete", error);
      output ("DEL %s %" G_GINT64_FORMAT "\n", id, version);

      {
        g_autofree char *batch = g_strdup_printf ("%s-d-%" G_GUINT64_FORMAT "-again",
                                                  writer_id, k);

        life_write (stream, batch, rand, 3, &version);
      }

      if (k % 2 == 1)
        {
          if (!es_stream_factory_delete_stream (factory, id, ES_VERSION_ANY,
                                                ES_DELETE_FLAGS_TOMBSTONE, NULL, &error))
            fail ("tombstone", error);
          output ("TOMB %s\n", id);
          late = batch_event ("late", 0, 1);
          expect_error (es_stream_write (stream, &late, 1, ES_VERSION_ANY, NULL, &error) >= 0,
                        &error, ES_ERROR_STREAM_DELETED, "write after tombstone");
          expect_error (es_stream_factory_truncate_stream (factory, id, 1, NULL, &error),
                        &error, ES_ERROR_STREAM_DELETED, "truncate after tombstone");
        }
    }

  return NULL;
}

static void
life_set_retention (const char *stream_id,
                    GTimeSpan   max_age,
                    gint64      max_count)
{
  g_autoptr(GError) error = NULL;

  if (!es_stream_factory_set_retention (factory, stream_id, max_age, max_count, NULL, &error))
    fail ("set_retention", error);
  output ("RET %s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n",
          stream_id != NULL ? stream_id : ES_ALL_STREAM, max_age, max_count);
}

static gpointer
life_retention_thread (gpointer data)
{
  g_autoptr(GRand) rand = g_rand_new ();
  g_autoptr(EsStream) counted = NULL;
  g_autoptr(EsStream) aged = NULL;
  g_autoptr(GError) error = NULL;
  gint64 counted_version, aged_version;
  guint64 n;

  counted = es_stream_factory_open_stream (factory, "count-0", NULL, &error);
  if (counted == NULL)
    fail ("open_stream", error);
  aged = es_stream_factory_open_stream (factory, "age-0", NULL, &error);
  if (aged == NULL)
    fail ("open_stream", error);
  counted_version = es_stream_get_version (counted);
  aged_version = es_stream_get_version (aged);

  for (n = 0; ; n++)
    {
      g_autofree char *batch_c = g_strdup_printf ("%s-c-%" G_GUINT64_FORMAT, writer_id, n);
      g_autofree char *batch_a = g_strdup_printf ("%s-a-%" G_GUINT64_FORMAT, writer_id, n);

      life_write (counted, batch_c, rand, 5, &counted_version);
      life_write (aged, batch_a, rand, 5, &aged_version);
      if (n % 8 == 7)
        {
          gint64 removed = es_stream_factory_sweep (factory, NULL, &error);

          if (removed < 0)
            fail ("sweep", error);
          output ("SWEEP %" G_GINT64_FORMAT "\n", removed);
        }
    }

  return NULL;
}

static gint64
last_version (EsStream *stream)
{
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GError) error = NULL;

  metrics = es_stream_get_metrics (stream, NULL, &error);
  if (metrics == NULL)
    fail ("get_metrics", error);
  return es_stream_metrics_get_current_version (metrics);
}

static gpointer
race_thread (gpointer data)
{
  guint index = GPOINTER_TO_UINT (data);
  g_autoptr(GRand) rand = g_rand_new ();
  EsStream *streams[2] = { NULL, NULL };
  const char *ids[2] = { "race-a", "race-b" };
  g_autoptr(GError) error = NULL;
  guint64 n;
  guint s;

  for (s = 0; s < 2; s++)
    {
      streams[s] = es_stream_factory_open_stream (factory, ids[s], NULL, &error);
      if (streams[s] == NULL)
        fail ("open_stream", error);
    }

  for (n = 0; n < race_iterations; n++)
    {
      g_autofree char *key = g_strdup_printf ("%s-%u-%" G_GUINT64_FORMAT,
                                              writer_id, index, n);
      g_autofree char *text = NULL;
      g_autoptr(EsCandidateEvent) event = NULL;
      g_autoptr(GBytes) bytes = NULL;
      gint64 read_version;
      gint64 version;

      s = g_rand_int_range (rand, 0, 2);
      read_version = last_version (streams[s]);

      /* The data says what the writer read: the event must land right
       * after it. */
      text = g_strdup_printf ("key=%s;read=%" G_GINT64_FORMAT, key, read_version);
      bytes = g_bytes_new (text, strlen (text));
      event = es_candidate_event_new ("RaceTest", bytes);
      es_candidate_event_set_idempotency_key (event, key);

      version = es_stream_write (streams[s], &event, 1, read_version, NULL, &error);
      if (version >= 0)
        output ("WIN %s %" G_GINT64_FORMAT " %s\n", ids[s], version, key);
      else if (g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        {
          output ("LOSE %s %s\n", ids[s], key);
          g_clear_error (&error);
        }
      else
        fail ("write", error);
    }

  for (s = 0; s < 2; s++)
    g_object_unref (streams[s]);
  return NULL;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  GThread *threads[MAX (N_CRASH_STREAMS, N_RACE_THREADS)];
  gboolean race;
  gboolean lifecycle;
  gboolean open_only;
  guint n_threads;
  guint i;

  race = argc == 4 && g_str_equal (argv[1], "race") &&
         g_ascii_string_to_unsigned (argv[3], 10, 1, G_MAXUINT32, &race_iterations, NULL);
  lifecycle = argc == 3 && g_str_equal (argv[1], "lifecycle");
  open_only = argc == 3 && g_str_equal (argv[1], "open");
  if (!race && !lifecycle && !open_only && !(argc == 3 && g_str_equal (argv[1], "crash")))
    {
      fprintf (stderr, "usage: %s crash DATABASE | lifecycle DATABASE | open DATABASE | "
               "race DATABASE ITERATIONS\n", argv[0]);
      return 2;
    }

  /* GLib seeds g_random from /dev/urandom. */
  writer_id = g_strdup_printf ("%u.%08x%08x", (guint) getpid (), g_random_int (), g_random_int ());

  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (argv[2], NULL, &error));
  if (factory == NULL)
    fail ("open", error);

  if (open_only)
    n_threads = 0;
  else if (lifecycle)
    {
      /* The policies first, before any write: setting them enforces them
       * at once, so age-0's events, older than 100 ms by now and perhaps
       * the newest of the database when the previous writer was killed,
       * all go before anything else is written: the next event must not
       * take their sequence ids again. */
      life_set_retention (NULL, 0, 200);
      life_set_retention ("count-0", 0, 10);
      life_set_retention ("age-0", 100 * G_TIME_SPAN_MILLISECOND, 0);

      n_threads = 3;
      threads[0] = g_thread_new ("trunc", life_trunc_thread, NULL);
      threads[1] = g_thread_new ("delete", life_delete_thread, NULL);
      threads[2] = g_thread_new ("retention", life_retention_thread, NULL);
    }
  else
    {
      n_threads = race ? N_RACE_THREADS : N_CRASH_STREAMS;
      for (i = 0; i < n_threads; i++)
        threads[i] = g_thread_new ("writer", race ? race_thread : crash_thread,
                                   GUINT_TO_POINTER (i));
    }
  for (i = 0; i < n_threads; i++)
    g_thread_join (threads[i]);

  if (!es_stream_factory_close (factory, NULL, &error))
    fail ("close", error);
  g_object_unref (factory);
  return 0;
}
