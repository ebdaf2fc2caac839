/* test-pg-watch.c: EsPgNotifier and watches through LISTEN/NOTIFY.
 *
 * Runs against the server in ES_TEST_PG_CONNINFO (build-aux/pg-test-server
 * sets it), each test in a schema of its own, dropped afterwards. Without
 * a server every test skips, saying why. The restart tests need a server
 * of their own to restart (ES_TEST_PG_DIR) and skip otherwise.
 *
 * Knob: ES_TEST_PG_EVENTS, the events the concurrent writers append
 * (10000 by default).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "es-glib/postgres/es-pg-private.h"

/* Generous: only reached when something is broken. */
#define WAIT_TIMEOUT_SECONDS 60

/* How long a write may keep failing while the server restarts. */
#define RECONNECT_TIMEOUT_SECONDS 30

typedef struct
{
  const char      *conninfo;  /* from the environment */
  char            *schema;    /* (owned) this test's own */
  EsStreamFactory *factory;   /* (owned) */
} Fixture;

/* What a watch emitted, and when. */
typedef struct
{
  GPtrArray *events;          /* (element-type EsStoredEvent) */
  GArray    *times;           /* (element-type gint64) monotonic µs of each event */
  guint      caught_up;
  guint      n_events_at_caught_up;
  GError    *error;
  GThread   *emitting_thread;
} Recorder;

static void
on_event (EsWatch       *watch,
          EsStoredEvent *event,
          Recorder      *recorder)
{
  gint64 now = g_get_monotonic_time ();

  g_assert_true (ES_IS_STORED_EVENT (event));
  g_ptr_array_add (recorder->events, g_object_ref (event));
  g_array_append_val (recorder->times, now);
  recorder->emitting_thread = g_thread_self ();
}

static void
on_caught_up (EsWatch  *watch,
              Recorder *recorder)
{
  recorder->caught_up++;
  recorder->n_events_at_caught_up = recorder->events->len;
}

static void
on_error (EsWatch  *watch,
          GError   *error,
          Recorder *recorder)
{
  g_assert_null (recorder->error);
  recorder->error = g_error_copy (error);
}

static Recorder *
recorder_new (void)
{
  Recorder *recorder = g_new0 (Recorder, 1);

  recorder->events = g_ptr_array_new_with_free_func (g_object_unref);
  recorder->times = g_array_new (FALSE, FALSE, sizeof (gint64));
  return recorder;
}

static void
recorder_free (Recorder *recorder)
{
  g_ptr_array_unref (recorder->events);
  g_array_unref (recorder->times);
  g_clear_error (&recorder->error);
  g_free (recorder);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Recorder, recorder_free)

static void
recorder_connect (Recorder *recorder,
                  EsWatch  *watch)
{
  g_signal_connect (watch, "event", G_CALLBACK (on_event), recorder);
  g_signal_connect (watch, "caught-up", G_CALLBACK (on_caught_up), recorder);
  g_signal_connect (watch, "error", G_CALLBACK (on_error), recorder);
}

static gboolean
timeout_cb (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates @context until @done returns TRUE. */
static void
wait_until (GMainContext *context,
            gboolean    (*done) (gpointer data),
            gpointer      data)
{
  gboolean timed_out = FALSE;
  GSource *timeout = g_timeout_source_new_seconds (WAIT_TIMEOUT_SECONDS);

  g_source_set_callback (timeout, timeout_cb, &timed_out, NULL);
  g_source_attach (timeout, context);
  while (!done (data) && !timed_out)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_assert_false (timed_out);
}

/* Runs the main context for a while, for things that must NOT happen. */
static void
spin (guint milliseconds)
{
  gint64 end = g_get_monotonic_time () + milliseconds * G_TIME_SPAN_MILLISECOND;

  while (g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* Like wait_until(), for conditions that change off the main context. */
static void
spin_until (gboolean (*done) (gpointer data),
            gpointer   data)
{
  gint64 end = g_get_monotonic_time () + WAIT_TIMEOUT_SECONDS * G_TIME_SPAN_SECOND;

  while (!done (data) && g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  g_assert_true (done (data));
}

static gboolean
is_caught_up (gpointer data)
{
  return ((Recorder *) data)->caught_up > 0;
}

typedef struct
{
  Recorder *recorder;
  guint     n;
} CountWait;

static gboolean
has_n_events (gpointer data)
{
  CountWait *wait = data;

  return wait->recorder->events->len >= wait->n;
}

static void
wait_for_events (Recorder *recorder,
                 guint     n)
{
  CountWait wait = { recorder, n };

  wait_until (NULL, has_n_events, &wait);
}

static gboolean
has_error (gpointer data)
{
  return ((Recorder *) data)->error != NULL;
}

static EsCandidateEvent *
candidate_new (const char *type,
               const char *key)
{
  EsCandidateEvent *event = es_candidate_event_new (type, NULL);

  if (key != NULL)
    es_candidate_event_set_idempotency_key (event, key);
  return event;
}

static gint64
try_write_n (EsStream    *stream,
             guint        n,
             const char  *type,
             GError     **error)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (events, candidate_new (type, NULL));
  return es_stream_write (stream, (EsCandidateEvent * const *) events->pdata, n,
                          ES_VERSION_ANY, NULL, error);
}

static void
write_n (EsStream   *stream,
         guint       n,
         const char *type)
{
  g_autoptr(GError) error = NULL;

  try_write_n (stream, n, type, &error);
  g_assert_no_error (error);
}

/* Every event of a stream watch has version first+1, first+2, ...; every
 * event of an @all watch a higher sequence id than the one before. */
static void
assert_consecutive (GPtrArray *events,
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

static EsStream *
open_stream (EsStreamFactory *factory,
             const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  EsStream *stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);

  g_assert_no_error (error);
  return stream;
}

/* The sequence ids of every stored event, read through @factory. */
static GArray *
read_all_sequence_ids (EsStreamFactory  *factory,
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

/* The sequence ids a watch emitted equal @expected, in order. */
static void
assert_sequence_ids_equal (GPtrArray *events,
                           GArray    *expected)
{
  g_assert_cmpuint (events->len, ==, expected->len);
  for (guint i = 0; i < events->len; i++)
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (events, i)), ==,
                     g_array_index (expected, gint64, i));
}

static EsStreamFactory *
factory_new (const char *conninfo,
             const char *schema,
             guint       pool_size)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                            "conninfo", conninfo,
                            "schema", schema,
                            "pool-size", pool_size,
                            NULL);
  g_assert_no_error (error);
  return factory;
}

static void
factory_close_and_free (EsStreamFactory *factory)
{
  g_autoptr(GError) error = NULL;

  es_stream_factory_close (factory, NULL, &error);
  g_assert_no_error (error);
  /* Let watches' last callbacks run, then nothing must hold the factory. */
  spin (20);
  g_assert_finalize_object (factory);
}

static EsPgNotifier *
get_notifier (EsStreamFactory *factory)
{
  return ES_PG_NOTIFIER (es_stream_factory_get_notifier (factory));
}

static void
ignore_notice (void       *user_data,
               const char *message)
{
}

/* Runs @sql on a connection of its own, as the test's role. */
static void
run_sql (const char *conninfo,
         const char *sql)
{
  PGconn *conn = PQconnectdb (conninfo);
  PGresult *result;

  if (PQstatus (conn) != CONNECTION_OK)
    g_error ("Cannot connect to run '%s': %s", sql, PQerrorMessage (conn));
  /* "drop cascades to ...": expected, not worth printing. */
  PQsetNoticeProcessor (conn, ignore_notice, NULL);
  result = PQexec (conn, sql);
  if (PQresultStatus (result) != PGRES_COMMAND_OK)
    g_error ("'%s' failed: %s", sql, PQresultErrorMessage (result));
  PQclear (result);
  PQfinish (conn);
}

/* `$ES_PG_TEST_SERVER COMMAND $ES_TEST_PG_DIR`, which must succeed. */
static void
server_control (const char *command)
{
  const char *script = g_getenv ("ES_PG_TEST_SERVER");
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (script);
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error,
                              script, command, g_getenv ("ES_TEST_PG_DIR"), NULL);
  g_assert_no_error (error);
  g_subprocess_wait_check (process, NULL, &error);
  g_assert_no_error (error);
}

/* Skips unless the test may restart the server. */
static gboolean
can_restart_server (void)
{
  if (g_getenv ("ES_TEST_PG_DIR") == NULL || g_getenv ("ES_PG_TEST_SERVER") == NULL)
    {
      g_test_skip ("ES_TEST_PG_DIR or ES_PG_TEST_SERVER (the path of "
                   "build-aux/pg-test-server) is not set: no server of our own to restart");
      return FALSE;
    }
  return TRUE;
}

/* ES_PG_WRITER under meson test; else es-pg-writer next to this program. */
static const char *
writer_path (void)
{
  const char *path = g_getenv ("ES_PG_WRITER");

  return path != NULL ? path : g_test_get_filename (G_TEST_BUILT, "es-pg-writer", NULL);
}

/* Starts es-pg-writer on @stream_id in the fixture's schema. */
static GSubprocess *
spawn_writer (Fixture    *fixture,
              const char *stream_id,
              guint       count,
              guint       batch,
              guint       interval_ms,
              gboolean    pipe_stdout)
{
  g_autofree char *count_text = g_strdup_printf ("%u", count);
  g_autofree char *batch_text = g_strdup_printf ("%u", batch);
  g_autofree char *interval_text = g_strdup_printf ("%u", interval_ms);
  g_autoptr(GError) error = NULL;
  GSubprocess *process;

  process = g_subprocess_new (pipe_stdout ? G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                          : G_SUBPROCESS_FLAGS_STDOUT_SILENCE,
                              &error, writer_path (), fixture->conninfo, fixture->schema,
                              stream_id, count_text, batch_text, interval_text, NULL);
  g_assert_no_error (error);
  return process;
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  static gint counter;

  fixture->conninfo = g_getenv ("ES_TEST_PG_CONNINFO");
  fixture->schema = g_strdup_printf ("es_test_watch_%d_%d", (int) getpid (),
                                     g_atomic_int_add (&counter, 1));
  fixture->factory = factory_new (fixture->conninfo, fixture->schema, 4);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autofree char *drop = NULL;

  factory_close_and_free (fixture->factory);

  drop = g_strdup_printf ("DROP SCHEMA IF EXISTS \"%s\" CASCADE", fixture->schema);
  run_sql (fixture->conninfo, drop);
  g_free (fixture->schema);
}

static void
test_replay_then_live_stream (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(EsStream) other = open_stream (fixture->factory, "cart-2");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("A stream watch emits the stored history, then caught-up once, "
                  "then live events, in order, and nothing of other streams");

  write_n (stream, 5, "Added");
  write_n (other, 3, "Other");
  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  g_assert_true (es_watch_get_active (watch));

  wait_until (NULL, is_caught_up, recorder);
  g_assert_cmpuint (recorder->n_events_at_caught_up, ==, 5);
  g_assert_true (es_watch_get_caught_up (watch));

  write_n (other, 2, "Other");
  write_n (stream, 2, "Removed");
  wait_for_events (recorder, 7);
  spin (100);
  g_assert_cmpuint (recorder->events->len, ==, 7);
  assert_consecutive (recorder->events, 0, FALSE);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (recorder->events, 6)),
                   ==, "Removed");
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (recorder->events, 6)),
                   ==, "cart-1");
  g_assert_cmpint (es_watch_get_last_version (watch), ==, 7);
  g_assert_cmpuint (recorder->caught_up, ==, 1);
  g_assert_no_error (recorder->error);
}

static void
test_replay_then_live_all (Fixture       *fixture,
                           gconstpointer  data)
{
  g_autoptr(EsStream) a = open_stream (fixture->factory, "a");
  g_autoptr(EsStream) b = open_stream (fixture->factory, "b");
  g_autoptr(EsStream) all = open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GArray) stored = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("An @all watch emits every stream's history, then caught-up once, then "
                  "live events, in sequence-id order");

  write_n (a, 2, "A");
  write_n (b, 1, "B");
  watch = es_stream_watch (all, 0);
  recorder_connect (recorder, watch);
  wait_until (NULL, is_caught_up, recorder);
  g_assert_cmpuint (recorder->n_events_at_caught_up, ==, 3);

  write_n (b, 1, "B");
  write_n (a, 3, "A");
  wait_for_events (recorder, 7);
  spin (100);

  stored = read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  assert_sequence_ids_equal (recorder->events, stored);
  assert_consecutive (recorder->events, 0, TRUE);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (recorder->events, 3)),
                   ==, "b");
  g_assert_cmpstr (es_watch_get_stream_id (watch), ==, ES_ALL_STREAM);
  g_assert_cmpint (es_watch_get_last_version (watch), ==, g_array_index (stored, gint64, 6));
  g_assert_cmpuint (recorder->caught_up, ==, 1);
  g_assert_no_error (recorder->error);
}

static void
test_after_version (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("A watch starts after the version it is given");

  write_n (stream, 10, "Added");
  watch = es_stream_watch (stream, 7);
  recorder_connect (recorder, watch);
  wait_until (NULL, is_caught_up, recorder);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  assert_consecutive (recorder->events, 7, FALSE);
}

static void
test_live_only (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("after_version -1 emits only events written after the watch started");

  write_n (stream, 5, "Old");
  watch = es_stream_watch (stream, -1);
  recorder_connect (recorder, watch);
  wait_until (NULL, is_caught_up, recorder);
  g_assert_cmpuint (recorder->events->len, ==, 0);
  g_assert_cmpint (es_watch_get_last_version (watch), ==, 5);

  write_n (stream, 1, "New");
  wait_for_events (recorder, 1);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (recorder->events, 0)), ==, 6);
}

/* The concurrent-writers test. */

typedef struct
{
  EsStream *stream;      /* (owned) */
  guint     n_events;
  guint     first_batch; /* batch sizes cycle from here through 1..8 */
  gint     *n_done;      /* (atomic) writers finished */
  GError   *error;       /* (owned) (nullable) */
} WriterData;

static gpointer
writer_thread (gpointer data)
{
  WriterData *writer = data;
  guint written = 0;

  for (guint i = writer->first_batch; written < writer->n_events && writer->error == NULL; i++)
    {
      guint n = MIN (i % 8 + 1, writer->n_events - written);

      try_write_n (writer->stream, n, "Concurrent", &writer->error);
      written += n;
    }
  g_atomic_int_inc (writer->n_done);
  /* The main thread may be waiting in its main context for this. */
  g_main_context_wakeup (NULL);
  return NULL;
}

typedef struct
{
  gint *counter;
  gint  n;
} AtomicWait;

static gboolean
counter_reached (gpointer data)
{
  AtomicWait *wait = data;

  return g_atomic_int_get (wait->counter) >= wait->n;
}

typedef struct
{
  EsWatch *watch;
  gint64   position;
} PositionWait;

static gboolean
watch_reached (gpointer data)
{
  PositionWait *wait = data;

  return es_watch_get_last_version (wait->watch) >= wait->position;
}

typedef struct
{
  EsStreamFactory *factory;     /* (unowned) */
  gint             writing;     /* (atomic) */
  guint            n_reads;
  guint            longest;
  GArray          *last;        /* (owned) (nullable) the last read's sequence ids */
  char            *failure;     /* (owned) (nullable) */
} ReaderData;

/* Reads @all from the start again and again while the writers run: each
 * read must be a prefix of the next (no id appears later below the end of
 * an earlier read), hence of the final sequence. */
static gpointer
reader_thread (gpointer data)
{
  ReaderData *reader = data;

  while (reader->failure == NULL)
    {
      gboolean last_round = !g_atomic_int_get (&reader->writing);
      g_autoptr(GError) error = NULL;
      g_autoptr(GArray) ids = read_all_sequence_ids (reader->factory, &error);

      if (ids == NULL)
        {
          reader->failure = g_strdup_printf ("read %u failed: %s", reader->n_reads,
                                             error->message);
          break;
        }
      reader->n_reads++;

      for (guint i = 1; i < ids->len && reader->failure == NULL; i++)
        if (g_array_index (ids, gint64, i) <= g_array_index (ids, gint64, i - 1))
          reader->failure = g_strdup_printf ("read %u: sequence ids out of order at %u",
                                             reader->n_reads, i);

      if (reader->last != NULL)
        {
          if (ids->len < reader->last->len)
            reader->failure = g_strdup_printf ("read %u returned %u events, fewer than the "
                                               "%u of the read before", reader->n_reads,
                                               ids->len, reader->last->len);
          for (guint i = 0; i < reader->last->len && reader->failure == NULL; i++)
            if (g_array_index (ids, gint64, i) != g_array_index (reader->last, gint64, i))
              reader->failure =
                g_strdup_printf ("read %u: position %u is sequence id %" G_GINT64_FORMAT
                                 ", the read before had %" G_GINT64_FORMAT
                                 ": a hole filled in later", reader->n_reads, i,
                                 g_array_index (ids, gint64, i),
                                 g_array_index (reader->last, gint64, i));
        }

      reader->longest = MAX (reader->longest, ids->len);
      g_clear_pointer (&reader->last, g_array_unref);
      reader->last = g_steal_pointer (&ids);

      if (last_round)
        break;
    }
  return NULL;
}

static guint
get_n_events_knob (void)
{
  const char *text = g_getenv ("ES_TEST_PG_EVENTS");
  guint64 value = 10000;

  if (text != NULL && !g_ascii_string_to_unsigned (text, 10, 8, G_MAXUINT32 / 2, &value, NULL))
    g_error ("ES_TEST_PG_EVENTS must be a number of events, at least 8: '%s'", text);
  return (guint) value;
}

static void
test_no_gap_no_duplicate (Fixture       *fixture,
                          gconstpointer  data)
{
  enum { N_WRITERS = 4, HISTORY_W0 = 300, HISTORY_W1 = 200 };
  g_autoptr(EsStreamFactory) second = factory_new (fixture->conninfo, fixture->schema, 4);
  g_autoptr(EsStream) all = open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsStream) w0 = open_stream (fixture->factory, "w0");
  g_autoptr(EsStream) w1 = open_stream (fixture->factory, "w1");
  g_autoptr(Recorder) all_recorder = recorder_new ();
  g_autoptr(Recorder) stream_recorder = recorder_new ();
  g_autoptr(EsWatch) all_watch = NULL;
  g_autoptr(EsWatch) stream_watch = NULL;
  g_autoptr(GArray) final = NULL;
  g_autoptr(GError) error = NULL;
  WriterData writers[N_WRITERS] = { { 0 } };
  GThread *writer_threads[N_WRITERS];
  ReaderData reader = { 0 };
  GThread *reader_thread_handle;
  guint n_events = get_n_events_knob ();
  guint n_w0 = HISTORY_W0;
  gint n_done = 0;
  AtomicWait writers_done = { &n_done, N_WRITERS };
  PositionWait all_done, stream_done;
  gint64 start;

  g_test_summary ("Four writers on two factories append ES_TEST_PG_EVENTS events while an "
                  "@all watch and a stream watch replay and go live: every committed event "
                  "is seen exactly once, in order; repeated @all reads are each a prefix "
                  "of the final sequence");

  write_n (w0, HISTORY_W0, "Before");
  write_n (w1, HISTORY_W1, "Before");

  all_watch = es_stream_watch (all, 0);
  recorder_connect (all_recorder, all_watch);
  stream_watch = es_stream_watch (w0, 0);
  recorder_connect (stream_recorder, stream_watch);

  /* Writers 0 and 1 write through the watching factory (its commits reach
   * the notifier directly), 2 and 3 through another one (they reach it by
   * NOTIFY only). */
  start = g_get_monotonic_time ();
  for (guint i = 0; i < N_WRITERS; i++)
    {
      g_autofree char *stream_id = g_strdup_printf ("w%u", i);

      writers[i].stream = open_stream (i < 2 ? fixture->factory : second, stream_id);
      writers[i].n_events = n_events / N_WRITERS + (i == 0 ? n_events % N_WRITERS : 0);
      writers[i].first_batch = i * 3;
      writers[i].n_done = &n_done;
      writer_threads[i] = g_thread_new ("writer", writer_thread, &writers[i]);
    }
  n_w0 += writers[0].n_events;

  reader.factory = fixture->factory;
  g_atomic_int_set (&reader.writing, TRUE);
  reader_thread_handle = g_thread_new ("reader", reader_thread, &reader);

  /* The watches emit while the writers write. */
  wait_until (NULL, counter_reached, &writers_done);
  for (guint i = 0; i < N_WRITERS; i++)
    {
      g_thread_join (writer_threads[i]);
      g_assert_no_error (writers[i].error);
      g_object_unref (writers[i].stream);
    }
  g_test_message ("%u events by %d writers in %.2f s", n_events, N_WRITERS,
                  (g_get_monotonic_time () - start) / (double) G_TIME_SPAN_SECOND);

  g_atomic_int_set (&reader.writing, FALSE);
  g_thread_join (reader_thread_handle);

  final = read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (final->len, ==, HISTORY_W0 + HISTORY_W1 + n_events);

  /* Until each watch has emitted the last event: an event it skipped
   * would never come, so compare then rather than wait for a count. */
  all_done.watch = all_watch;
  all_done.position = g_array_index (final, gint64, final->len - 1);
  wait_until (NULL, watch_reached, &all_done);
  stream_done.watch = stream_watch;
  stream_done.position = n_w0;
  wait_until (NULL, watch_reached, &stream_done);
  spin (100);

  /* The reader: each read a prefix of the next, the last of the final. */
  g_test_message ("%u @all reads during the writes, the longest %u events", reader.n_reads,
                  reader.longest);
  g_assert_cmpstr (reader.failure, ==, NULL);
  g_assert_cmpuint (reader.n_reads, >=, 1);
  g_assert_cmpuint (reader.last->len, <=, final->len);
  for (guint i = 0; i < reader.last->len; i++)
    g_assert_cmpint (g_array_index (reader.last, gint64, i), ==, g_array_index (final, gint64, i));
  g_array_unref (reader.last);

  /* The @all watch: every committed event once, in sequence order. */
  assert_sequence_ids_equal (all_recorder->events, final);
  g_assert_cmpuint (all_recorder->caught_up, ==, 1);
  g_assert_no_error (all_recorder->error);

  /* The stream watch: versions 1..n, nothing of other streams. */
  g_assert_cmpuint (stream_recorder->events->len, ==, n_w0);
  assert_consecutive (stream_recorder->events, 0, FALSE);
  for (guint i = 0; i < stream_recorder->events->len; i++)
    g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (stream_recorder->events,
                                                                       i)), ==, "w0");
  g_assert_cmpuint (stream_recorder->caught_up, ==, 1);
  g_assert_no_error (stream_recorder->error);

  factory_close_and_free (g_steal_pointer (&second));
}

/* The cross-process test: acknowledgements of es-pg-writer as they come. */

typedef struct
{
  GInputStream *stdout_pipe;  /* (owned) */
  GMutex        lock;
  GArray       *ack_times;    /* (element-type gint64) guarded by lock: index = version - 1 */
  char         *failure;      /* (owned) (nullable) */
} AckReader;

static gpointer
ack_reader_thread (gpointer data)
{
  AckReader *acks = data;
  g_autoptr(GDataInputStream) lines = g_data_input_stream_new (acks->stdout_pipe);

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *line = g_data_input_stream_read_line (lines, NULL, NULL, &error);
      gint64 now = g_get_monotonic_time ();
      gint64 version;

      if (line == NULL)
        {
          if (error != NULL)
            acks->failure = g_strdup (error->message);
          break;
        }
      if (!g_ascii_string_to_signed (line, 10, 1, G_MAXINT64, &version, NULL))
        {
          acks->failure = g_strdup_printf ("unexpected output '%s'", line);
          break;
        }

      g_mutex_lock (&acks->lock);
      if (version != (gint64) acks->ack_times->len + 1)
        acks->failure = g_strdup_printf ("acknowledged version %" G_GINT64_FORMAT
                                         " after %u", version, acks->ack_times->len);
      g_array_append_val (acks->ack_times, now);
      g_mutex_unlock (&acks->lock);
    }
  return NULL;
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static void
test_other_process (Fixture       *fixture,
                    gconstpointer  data)
{
  enum { N_WRITES = 200, INTERVAL_MS = 5 };
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "remote");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GArray) latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GError) error = NULL;
  AckReader acks = { 0 };
  GThread *thread;
  gint64 median, p99;

  g_test_summary ("es-pg-writer's commits in another process reach the watch through "
                  "LISTEN/NOTIFY; the commit-to-signal latency of 200 single-event writes");

  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  wait_until (NULL, is_caught_up, recorder);

  writer = spawn_writer (fixture, "remote", N_WRITES, 1, INTERVAL_MS, TRUE);
  acks.stdout_pipe = g_object_ref (g_subprocess_get_stdout_pipe (writer));
  acks.ack_times = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_mutex_init (&acks.lock);
  thread = g_thread_new ("acks", ack_reader_thread, &acks);

  wait_for_events (recorder, N_WRITES);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  g_thread_join (thread);
  spin (100);

  g_assert_cmpstr (acks.failure, ==, NULL);
  g_assert_cmpuint (acks.ack_times->len, ==, N_WRITES);
  g_assert_cmpuint (recorder->events->len, ==, N_WRITES);
  assert_consecutive (recorder->events, 0, FALSE);
  for (guint i = 0; i < N_WRITES; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (recorder->events, i);
      g_autofree char *expected = g_strdup_printf ("%u", i);
      GBytes *bytes = es_stored_event_get_data (event);
      gsize size;
      const char *text = g_bytes_get_data (bytes, &size);
      gint64 latency;

      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "written");
      g_assert_cmpmem (text, size, expected, strlen (expected));

      /* From the moment the writer had its commit acknowledged to the
       * signal. The notification is sent at commit, so a signal may even
       * come before the writer's line. */
      latency = g_array_index (recorder->times, gint64, i) -
                g_array_index (acks.ack_times, gint64, i);
      g_assert_cmpint (latency, <, 5 * G_TIME_SPAN_SECOND);
      g_array_append_val (latencies, latency);
    }

  g_array_sort (latencies, compare_int64);
  median = g_array_index (latencies, gint64, latencies->len / 2);
  p99 = g_array_index (latencies, gint64, (latencies->len * 99 + 99) / 100 - 1);
  g_test_message ("commit-to-signal latency over %u single-event writes from another "
                  "process: median %.3f ms, p99 %.3f ms, max %.3f ms", N_WRITES,
                  median / 1000.0, p99 / 1000.0,
                  g_array_index (latencies, gint64, latencies->len - 1) / 1000.0);

  g_object_unref (acks.stdout_pipe);
  g_array_unref (acks.ack_times);
  g_mutex_clear (&acks.lock);
}

typedef struct
{
  EsPgNotifier *notifier;
  guint         n;
} ConnectsWait;

static gboolean
has_n_connects (gpointer data)
{
  ConnectsWait *wait = data;

  return _es_pg_notifier_get_n_connects (wait->notifier) >= wait->n;
}

static void
test_no_polling (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "quiet");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  guint before, idle_reads;

  g_test_summary ("With a watch open and nothing written, the notifier reads nothing for "
                  "a second; one commit elsewhere costs it a read");

  write_n (stream, 3, "Added");
  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  wait_until (NULL, is_caught_up, recorder);
  /* The notification of our own writes may still be on its way. */
  spin (200);

  before = _es_pg_notifier_get_n_reads (notifier);
  spin (1000);
  idle_reads = _es_pg_notifier_get_n_reads (notifier) - before;
  g_test_message ("notifier reads in 1 s without writes: %u", idle_reads);
  g_assert_cmpuint (idle_reads, ==, 0);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, 1);

  /* The counter counts: a commit in another process is read. */
  writer = spawn_writer (fixture, "quiet", 1, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  wait_for_events (recorder, 4);
  g_assert_cmpuint (_es_pg_notifier_get_n_reads (notifier), >, before);
}

typedef struct
{
  EsNotifier *notifier;
  gint64      sequence_id;
} CursorWait;

static gboolean
cursor_reached (gpointer data)
{
  CursorWait *wait = data;

  return es_notifier_get_last_sequence_id (wait->notifier) >= wait->sequence_id;
}

static void
test_idle_notifier (Fixture       *fixture,
                    gconstpointer  data)
{
  EsStreamFactory *other = factory_new (fixture->conninfo, fixture->schema, 1);
  g_autoptr(EsStream) stream = open_stream (other, "elsewhere");
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  CursorWait wait = { ES_NOTIFIER (notifier), 0 };
  guint before;

  g_test_summary ("Without subscribers, the notifier follows other factories' commits "
                  "from their notifications alone: no query per commit");

  before = _es_pg_notifier_get_n_reads (notifier);
  /* Twenty commits, so twenty notifications. */
  for (guint i = 0; i < 20; i++)
    write_n (stream, 1, "Added");
  wait.sequence_id = 20;
  /* The notifier runs on its own thread: nothing wakes this one. */
  for (gint64 end = g_get_monotonic_time () + WAIT_TIMEOUT_SECONDS * G_USEC_PER_SEC;
       !cursor_reached (&wait) && g_get_monotonic_time () < end;)
    g_usleep (1000);
  g_assert_cmpint (es_notifier_get_last_sequence_id (ES_NOTIFIER (notifier)), ==, 20);
  g_assert_cmpuint (_es_pg_notifier_get_n_reads (notifier) - before, ==, 0);

  g_clear_object (&stream);
  factory_close_and_free (other);
}

static void
test_shared_reads (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(GPtrArray) watches = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) recorders = g_ptr_array_new_with_free_func ((GDestroyNotify) recorder_free);
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  guint before, reads;

  g_test_summary ("100 watchers share the notifier's reads: one commit costs it one read, "
                  "not one per watcher");

  for (guint i = 0; i < 100; i++)
    {
      Recorder *recorder = recorder_new ();
      EsWatch *watch = es_stream_watch (stream, 0);

      recorder_connect (recorder, watch);
      g_ptr_array_add (watches, watch);
      g_ptr_array_add (recorders, recorder);
    }
  for (guint i = 0; i < 100; i++)
    wait_until (NULL, is_caught_up, g_ptr_array_index (recorders, i));

  before = _es_pg_notifier_get_n_reads (notifier);
  writer = spawn_writer (fixture, "cart-1", 1, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 100; i++)
    wait_for_events (g_ptr_array_index (recorders, i), 1);
  spin (100);
  reads = _es_pg_notifier_get_n_reads (notifier) - before;

  g_test_message ("notifier reads for one commit seen by 100 watchers: %u", reads);
  g_assert_cmpuint (reads, >=, 1);
  g_assert_cmpuint (reads, <=, 2);
}

/* Writes @n events with idempotency keys @prefix-1, @prefix-2, ..., each
 * retried until the storage is back (the keys make a retry of a write
 * that did commit harmless). Returns how many attempts failed. */
static guint
write_retrying (EsStream   *stream,
                guint       n,
                const char *prefix)
{
  guint failures = 0;

  for (guint i = 1; i <= n; i++)
    {
      g_autofree char *key = g_strdup_printf ("%s-%u", prefix, i);
      gint64 deadline = g_get_monotonic_time () + RECONNECT_TIMEOUT_SECONDS * G_TIME_SPAN_SECOND;

      for (;;)
        {
          g_autoptr(EsCandidateEvent) event = candidate_new ("Keyed", key);
          g_autoptr(GError) error = NULL;

          es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
          if (error == NULL)
            break;

          failures++;
          g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
          if (g_get_monotonic_time () > deadline)
            g_error ("Writing still fails %d s after the restart: %s",
                     RECONNECT_TIMEOUT_SECONDS, error->message);
          spin (100);
        }
    }
  return failures;
}

static void
test_server_restart (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(Recorder) all_recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) all_watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GArray) final = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  ConnectsWait reconnected;
  guint failures;

  g_test_summary ("After a server restart the notifier reconnects and the watches receive "
                  "every later event exactly once, from this process and from another");

  if (!can_restart_server ())
    return;

  stream = open_stream (fixture->factory, "restarted");
  all = open_stream (fixture->factory, ES_ALL_STREAM);
  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  all_watch = es_stream_watch (all, 0);
  recorder_connect (all_recorder, all_watch);
  write_retrying (stream, 5, "before");
  wait_for_events (recorder, 5);
  wait_for_events (all_recorder, 5);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, 1);

  server_control ("restart");

  /* This process's writes: the first fails until the pool reconnects. */
  failures = write_retrying (stream, 5, "after");
  g_test_message ("writes that failed while the storage reconnected: %u", failures);
  wait_for_events (recorder, 10);

  /* The notifier listens again... */
  reconnected.notifier = notifier;
  reconnected.n = 2;
  spin_until (has_n_connects, &reconnected);

  /* ... so another process's writes arrive by NOTIFY alone. */
  writer = spawn_writer (fixture, "restarted", 3, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  wait_for_events (recorder, 13);
  wait_for_events (all_recorder, 13);
  spin (200);

  g_assert_cmpuint (recorder->events->len, ==, 13);
  assert_consecutive (recorder->events, 0, FALSE);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (recorder->events, 12)),
                   ==, "written");
  final = read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  assert_sequence_ids_equal (all_recorder->events, final);
  g_assert_true (es_watch_get_active (watch));
  g_assert_true (es_watch_get_active (all_watch));
  g_assert_no_error (recorder->error);
  g_assert_no_error (all_recorder->error);
  g_test_message ("notifier connections: %u", _es_pg_notifier_get_n_connects (notifier));
}

static void
test_writes_while_disconnected (Fixture       *fixture,
                                gconstpointer  data)
{
  g_autofree char *role = g_strdup_printf ("es_test_watcher_%d", (int) getpid ());
  g_autofree char *sql = NULL;
  g_autofree char *watcher_conninfo = NULL;
  g_autoptr(EsStreamFactory) watcher = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "first");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GArray) final = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier;
  guint connects;

  g_test_summary ("Events written by another process while the notifier cannot reconnect "
                  "after a restart arrive, once each, when it does");

  if (!can_restart_server ())
    return;
  if (!g_str_has_prefix (fixture->conninfo, "host=") &&
      strstr (fixture->conninfo, " host=") == NULL)
    {
      g_test_skip ("ES_TEST_PG_CONNINFO is not a keyword=value string: cannot connect "
                   "as another role");
      return;
    }

  /* The watching factory connects as a role of its own, which we can keep
   * from logging in again after the restart: the notifier then stays
   * disconnected, deterministically, while the writer (as the test's
   * role) writes. */
  sql = g_strdup_printf ("CREATE ROLE %s LOGIN SUPERUSER", role);
  run_sql (fixture->conninfo, sql);
  watcher_conninfo = g_strdup_printf ("%s user=%s", fixture->conninfo, role);
  watcher = factory_new (watcher_conninfo, fixture->schema, 2);
  notifier = get_notifier (watcher);
  all = open_stream (watcher, ES_ALL_STREAM);

  watch = es_stream_watch (all, 0);
  recorder_connect (recorder, watch);
  write_n (stream, 3, "Before");
  wait_for_events (recorder, 3);
  connects = _es_pg_notifier_get_n_connects (notifier);
  g_assert_cmpuint (connects, ==, 1);

  g_free (sql);
  sql = g_strdup_printf ("ALTER ROLE %s NOLOGIN", role);
  run_sql (fixture->conninfo, sql);
  server_control ("restart");

  writer = spawn_writer (fixture, "during", 7, 2, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);

  /* Still disconnected: nothing arrived, the watch is still on. */
  spin (500);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, connects);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  g_assert_true (es_watch_get_active (watch));

  g_free (sql);
  sql = g_strdup_printf ("ALTER ROLE %s LOGIN", role);
  run_sql (fixture->conninfo, sql);

  wait_for_events (recorder, 10);
  spin (300);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), >, connects);

  final = read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (final->len, ==, 10);
  assert_sequence_ids_equal (recorder->events, final);
  for (guint i = 3; i < 10; i++)
    g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (recorder->events, i)),
                     ==, "during");
  g_assert_no_error (recorder->error);

  /* The watch and the stream hold the factory. */
  g_clear_object (&watch);
  g_clear_object (&all);
  factory_close_and_free (g_steal_pointer (&watcher));
  g_free (sql);
  sql = g_strdup_printf ("DROP ROLE %s", role);
  run_sql (fixture->conninfo, sql);
}

static void
stop_in_handler (EsWatch       *watch,
                 EsStoredEvent *event,
                 gpointer       user_data)
{
  es_watch_stop (watch);
}

static void
test_stop (Fixture       *fixture,
           gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(Recorder) stopper_recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) stopper = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("No event follows es_watch_stop(), which is idempotent and works from "
                  "a handler");

  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  stopper = es_stream_watch (stream, 0);
  g_signal_connect (stopper, "event", G_CALLBACK (stop_in_handler), NULL);
  recorder_connect (stopper_recorder, stopper);

  write_n (stream, 3, "Added");
  wait_for_events (recorder, 3);
  spin (100);
  /* Stopped by its first event's handler: that emission completes. */
  g_assert_cmpuint (stopper_recorder->events->len, ==, 1);
  g_assert_false (es_watch_get_active (stopper));

  es_watch_stop (watch);
  es_watch_stop (watch);
  g_assert_false (es_watch_get_active (watch));
  write_n (stream, 3, "Added");
  writer = spawn_writer (fixture, "cart-1", 3, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  spin (300);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  g_assert_cmpuint (stopper_recorder->events->len, ==, 1);
}

static void
test_unref_stops (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(Recorder) recorder = recorder_new ();
  EsWatch *watch;

  g_test_summary ("Dropping the last reference stops the watch and frees it");

  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  write_n (stream, 2, "Added");
  wait_for_events (recorder, 2);

  g_assert_finalize_object (watch);
  write_n (stream, 2, "Added");
  spin (300);
  g_assert_cmpuint (recorder->events->len, ==, 2);
}

static void
on_notify_active (GObject    *object,
                  GParamSpec *pspec,
                  gboolean   *notified)
{
  *notified = TRUE;
}

static gboolean
is_inactive (gpointer data)
{
  return !es_watch_get_active (data);
}

static void
test_close_stops (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) late = NULL;
  g_autoptr(Recorder) late_recorder = recorder_new ();
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;
  gboolean notified = FALSE;

  g_test_summary ("Closing the factory stops its watches, even when other processes keep "
                  "writing; a watch on a closed factory fails");

  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  g_signal_connect (watch, "notify::active", G_CALLBACK (on_notify_active), &notified);
  write_n (stream, 1, "Added");
  wait_for_events (recorder, 1);

  es_stream_factory_close (fixture->factory, NULL, &error);
  g_assert_no_error (error);
  wait_until (NULL, is_inactive, watch);
  g_assert_true (notified);
  g_assert_no_error (recorder->error);

  writer = spawn_writer (fixture, "cart-1", 2, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  spin (300);
  g_assert_cmpuint (recorder->events->len, ==, 1);

  late = es_stream_watch (stream, 0);
  recorder_connect (late_recorder, late);
  wait_until (NULL, has_error, late_recorder);
  g_assert_error (late_recorder->error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_false (es_watch_get_active (late));
}

static void
test_slow_consumer (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "firehose");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  EsNotifier *notifier = es_stream_factory_get_notifier (fixture->factory);
  EsStorageHandle *storage = es_stream_factory_get_storage (fixture->factory);
  guint max_pending = 0;

  g_test_summary ("A watcher whose main loop is blocked holds a bounded number of events "
                  "and then receives every event in order");

  watch = es_stream_watch (stream, 0);
  recorder_connect (recorder, watch);
  wait_until (NULL, is_caught_up, recorder);

  /* The main loop does not run while we write: the backlog builds up. */
  for (guint i = 0; i < 20; i++)
    {
      gint64 deadline = g_get_monotonic_time () + WAIT_TIMEOUT_SECONDS * G_TIME_SPAN_SECOND;
      g_autoptr(GError) error = NULL;
      gint64 last = 0;

      write_n (stream, 100, "Burst");
      es_storage_handle_get_version (storage, NULL, &last, NULL, &error);
      g_assert_no_error (error);
      /* Give the notifier time to deliver what it can. */
      while (es_notifier_get_last_sequence_id (notifier) < last)
        {
          g_assert_cmpint (g_get_monotonic_time (), <, deadline);
          g_usleep (1000);
        }
      max_pending = MAX (max_pending, _es_watch_get_n_pending (watch));
    }
  g_assert_cmpuint (recorder->events->len, ==, 0);
  g_assert_cmpuint (max_pending, <=, ES_WATCH_MAX_PENDING);
  g_assert_cmpuint (max_pending, >, 0);

  wait_for_events (recorder, 2000);
  assert_consecutive (recorder->events, 0, FALSE);
  spin (100);
  g_assert_cmpuint (recorder->events->len, ==, 2000);
}

typedef struct
{
  EsStream *stream;
  Recorder *recorder;
  GThread  *creator;
} ThreadWatchData;

static gpointer
watch_in_thread (gpointer data)
{
  ThreadWatchData *td = data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(EsWatch) watch = NULL;
  CountWait wait = { td->recorder, 2 };

  g_main_context_push_thread_default (context);
  td->creator = g_thread_self ();
  watch = es_stream_watch (td->stream, 0);
  recorder_connect (td->recorder, watch);
  wait_until (context, has_n_events, &wait);
  es_watch_stop (watch);
  g_clear_object (&watch);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_pop_thread_default (context);
  return NULL;
}

static void
test_thread_default_context (Fixture       *fixture,
                             gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "cart-1");
  g_autoptr(Recorder) recorder = recorder_new ();
  ThreadWatchData td = { stream, recorder, NULL };
  GThread *thread;

  g_test_summary ("Signals are emitted in the thread-default main context of the watch's "
                  "creator");

  write_n (stream, 1, "Added");
  thread = g_thread_new ("watcher", watch_in_thread, &td);
  /* The second event arrives live, by the notifier. */
  g_usleep (100 * G_TIME_SPAN_MILLISECOND);
  write_n (stream, 1, "Added");
  g_thread_join (thread);
  g_assert_cmpuint (recorder->events->len, ==, 2);
  g_assert_true (recorder->emitting_thread == td.creator);
}

/* The notifier on its own, without watches. */

typedef struct
{
  GMutex  lock;
  GArray *sequence_ids;   /* (element-type gint64) guarded by lock */
  gint    destroyed;      /* (atomic) */
  GThread *caller;        /* guarded by lock */
} Subscription;

static void
subscription_events (GPtrArray *events,
                     gpointer   user_data)
{
  Subscription *subscription = user_data;

  g_mutex_lock (&subscription->lock);
  for (guint i = 0; i < events->len; i++)
    {
      gint64 id = es_stored_event_get_sequence_id (g_ptr_array_index (events, i));

      g_array_append_val (subscription->sequence_ids, id);
    }
  subscription->caller = g_thread_self ();
  g_mutex_unlock (&subscription->lock);
}

static void
subscription_destroy (gpointer user_data)
{
  Subscription *subscription = user_data;

  g_atomic_int_inc (&subscription->destroyed);
}

static guint
subscription_count (Subscription *subscription)
{
  guint n;

  g_mutex_lock (&subscription->lock);
  n = subscription->sequence_ids->len;
  g_mutex_unlock (&subscription->lock);
  return n;
}

typedef struct
{
  Subscription *subscription;
  guint         n;
} SubscriptionWait;

static gboolean
subscription_has (gpointer data)
{
  SubscriptionWait *wait = data;

  return subscription_count (wait->subscription) >= wait->n;
}

static void
append_n (EsStorageHandle *storage,
          const char      *stream_id,
          guint            n)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  gint64 version;

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (events, es_candidate_event_new ("Direct", NULL));
  es_storage_handle_append (storage, stream_id, ES_VERSION_ANY,
                            (EsCandidateEvent * const *) events->pdata, n, &version,
                            NULL, &error);
  g_assert_no_error (error);
}

static void
test_notifier (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(EsPgStorage) storage = NULL;
  g_autoptr(EsPgNotifier) notifier = NULL;
  g_autoptr(GError) error = NULL;
  Subscription first = { 0 }, second = { 0 };
  SubscriptionWait wait;
  guint id;

  g_test_summary ("EsPgNotifier alone: subscribers get other connections' commits in "
                  "order, on the notifier's thread; nothing after unsubscribe; stop ends "
                  "every subscription and is idempotent; no restart after stop");

  storage = es_pg_storage_new (fixture->conninfo, fixture->schema, 2, NULL, &error);
  g_assert_no_error (error);
  append_n (ES_STORAGE_HANDLE (storage), "s", 2);

  notifier = es_pg_notifier_new (storage);
  g_assert_true (es_notifier_start (ES_NOTIFIER (notifier), NULL, &error));
  g_assert_no_error (error);
  /* Starting twice does nothing. */
  g_assert_true (es_notifier_start (ES_NOTIFIER (notifier), NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, 1);
  g_assert_cmpint (es_notifier_get_last_sequence_id (ES_NOTIFIER (notifier)), >, 0);

  for (Subscription *s = &first; s != NULL; s = s == &first ? &second : NULL)
    {
      g_mutex_init (&s->lock);
      s->sequence_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
    }

  id = es_notifier_subscribe (ES_NOTIFIER (notifier), subscription_events, &first,
                              subscription_destroy);
  g_assert_cmpuint (id, !=, 0);

  /* The storage's appends do not call committed(): NOTIFY alone wakes it. */
  append_n (ES_STORAGE_HANDLE (storage), "s", 3);
  append_n (ES_STORAGE_HANDLE (storage), "t", 1);
  wait.subscription = &first;
  wait.n = 4;
  spin_until (subscription_has, &wait);
  g_assert_cmpuint (subscription_count (&first), ==, 4);
  for (guint i = 1; i < first.sequence_ids->len; i++)
    g_assert_cmpint (g_array_index (first.sequence_ids, gint64, i), >,
                     g_array_index (first.sequence_ids, gint64, i - 1));
  g_assert_true (first.caller != g_thread_self ());
  g_assert_cmpint (es_notifier_get_last_sequence_id (ES_NOTIFIER (notifier)), ==,
                   g_array_index (first.sequence_ids, gint64, 3));

  es_notifier_unsubscribe (ES_NOTIFIER (notifier), id);
  g_assert_cmpint (g_atomic_int_get (&first.destroyed), ==, 1);

  es_notifier_subscribe (ES_NOTIFIER (notifier), subscription_events, &second,
                         subscription_destroy);
  append_n (ES_STORAGE_HANDLE (storage), "s", 2);
  wait.subscription = &second;
  wait.n = 2;
  spin_until (subscription_has, &wait);
  g_usleep (100 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpuint (subscription_count (&first), ==, 4);
  g_assert_cmpuint (subscription_count (&second), ==, 2);

  es_notifier_stop (ES_NOTIFIER (notifier));
  g_assert_cmpint (g_atomic_int_get (&second.destroyed), ==, 1);
  es_notifier_stop (ES_NOTIFIER (notifier));
  g_assert_cmpint (g_atomic_int_get (&second.destroyed), ==, 1);

  append_n (ES_STORAGE_HANDLE (storage), "s", 1);
  g_usleep (100 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpuint (subscription_count (&second), ==, 2);

  g_assert_false (es_notifier_start (ES_NOTIFIER (notifier), NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  g_assert_finalize_object (g_steal_pointer (&notifier));
  for (Subscription *s = &first; s != NULL; s = s == &first ? &second : NULL)
    {
      g_array_unref (s->sequence_ids);
      g_mutex_clear (&s->lock);
    }
}

static void
skip_test (gconstpointer data)
{
  g_test_skip (data);
}

/* Item: nothing is emitted once a watch is ended, from wherever it is
 * ended, including events already read or queued. */

typedef enum
{
  END_CLOSE,          /* es_stream_factory_close() in the Nth handler */
  END_CLOSE_IDLE,     /* ... in an idle added by the Nth handler */
  END_CLOSE_THREAD,   /* ... in another thread started by the Nth handler */
  END_STOP,           /* es_watch_stop() in the Nth handler */
  END_UNREF,          /* the application's last reference dropped there */
} EndHow;

typedef struct
{
  EsStreamFactory *factory;
  EsWatch         *watch;       /* (nullable) the application's reference */
  EndHow           how;
  guint            end_at;      /* the Nth event ends the watch */
  guint            n_events;
  guint            n_at_end;    /* events emitted when the end returned */
  gint             ended;       /* (atomic) the end returned */
  guint            n_after_end; /* events emitted after that: must stay 0 */
  GThread         *closer;
} EndTest;

static void
end_now (EndTest *test)
{
  g_autoptr(GError) error = NULL;

  switch (test->how)
    {
    case END_CLOSE:
    case END_CLOSE_IDLE:
    case END_CLOSE_THREAD:
      es_stream_factory_close (test->factory, NULL, &error);
      g_assert_no_error (error);
      break;
    case END_STOP:
      es_watch_stop (test->watch);
      break;
    case END_UNREF:
      g_clear_object (&test->watch);
      break;
    default:
      g_assert_not_reached ();
    }
  test->n_at_end = test->n_events;
  g_atomic_int_set (&test->ended, TRUE);
}

static gboolean
end_in_idle_cb (gpointer data)
{
  /* The replay reads its next page in a worker thread meanwhile: its
   * events are ready for the main context when the factory closes. */
  g_usleep (200 * G_TIME_SPAN_MILLISECOND);
  end_now (data);
  return G_SOURCE_REMOVE;
}

static gpointer
end_in_thread (gpointer data)
{
  EndTest *test = data;
  g_autoptr(GError) error = NULL;

  es_stream_factory_close (test->factory, NULL, &error);
  g_assert_no_error (error);
  g_atomic_int_set (&test->ended, TRUE);
  g_main_context_wakeup (NULL);
  return NULL;
}

static void
on_event_end (EsWatch       *watch,
              EsStoredEvent *event,
              EndTest       *test)
{
  if (g_atomic_int_get (&test->ended))
    test->n_after_end++;
  test->n_events++;

  if (test->n_events != test->end_at)
    return;

  switch (test->how)
    {
    case END_CLOSE_IDLE:
      g_idle_add_full (G_PRIORITY_DEFAULT, end_in_idle_cb, test, NULL);
      break;
    case END_CLOSE_THREAD:
      {
        gint64 deadline = g_get_monotonic_time () + 5 * G_TIME_SPAN_SECOND;

        /* Return from this handler only once the close has begun (and,
         * unless it waits for this emission, has had time to end): the
         * rest of the page is still to emit. */
        test->closer = g_thread_new ("closer", end_in_thread, test);
        while (!es_stream_factory_is_closed (test->factory) &&
               g_get_monotonic_time () < deadline)
          g_usleep (1000);
        g_usleep (100 * G_TIME_SPAN_MILLISECOND);
      }
      break;
    case END_CLOSE:
    case END_STOP:
    case END_UNREF:
    default:
      end_now (test);
      break;
    }
}

static gboolean
has_ended (gpointer data)
{
  return g_atomic_int_get (&((EndTest *) data)->ended);
}

#define END_N_EVENTS 5000

static void
run_end_test (Fixture    *fixture,
              const char *stream_id,
              EndHow      how,
              gboolean    live)
{
  g_autoptr(EsStream) writer = open_stream (fixture->factory, "cart-1");
  g_autoptr(EsStream) stream = open_stream (fixture->factory, stream_id);
  g_autoptr(Recorder) recorder = recorder_new ();
  EndTest test = { fixture->factory, NULL, how, 0, };
  EsWatch *weak = NULL;
  gboolean inactive_notified = FALSE;

  g_test_message ("%s, %s, ended by %d", stream_id, live ? "live" : "replay", how);

  if (!live)
    for (guint i = 0; i < END_N_EVENTS / 1000; i++)
      write_n (writer, 1000, "Added");

  test.watch = es_stream_watch (stream, live ? -1 : 0);
  weak = test.watch;
  g_object_add_weak_pointer (G_OBJECT (weak), (gpointer *) &weak);
  g_signal_connect (test.watch, "event", G_CALLBACK (on_event_end), &test);
  g_signal_connect (test.watch, "caught-up", G_CALLBACK (on_caught_up), recorder);
  g_signal_connect (test.watch, "error", G_CALLBACK (on_error), recorder);
  g_signal_connect (test.watch, "notify::active", G_CALLBACK (on_notify_active),
                    &inactive_notified);

  if (live)
    {
      wait_until (NULL, is_caught_up, recorder);
      test.end_at = 10;
      write_n (writer, 600, "Added");
    }
  else
    test.end_at = how == END_CLOSE_IDLE || how == END_CLOSE_THREAD ? 10 : 1500;

  wait_until (NULL, has_ended, &test);
  if (test.closer != NULL)
    g_thread_join (test.closer);
  spin (300);

  g_assert_cmpuint (test.n_after_end, ==, 0);
  g_assert_no_error (recorder->error);
  if (how == END_CLOSE || how == END_STOP || how == END_UNREF)
    {
      g_assert_cmpuint (test.n_events, ==, test.end_at);
      g_assert_cmpuint (test.n_at_end, ==, test.end_at);
    }
  else
    {
      g_assert_cmpuint (test.n_events, >=, test.end_at);
      g_assert_cmpuint (test.n_events, <, live ? 600 : END_N_EVENTS);
    }
  g_assert_true (inactive_notified);

  if (how == END_UNREF)
    g_assert_null (weak);
  else
    {
      g_assert_false (es_watch_get_active (test.watch));
      g_object_remove_weak_pointer (G_OBJECT (weak), (gpointer *) &weak);
      g_clear_object (&test.watch);
    }
}

static void
test_end_in_handler (Fixture       *fixture,
                     gconstpointer  data)
{
  g_test_summary ("No event follows es_watch_stop() or dropping the last reference in an "
                  "event handler, during the replay or in a live batch, on a stream and on "
                  "@all");

  for (guint live = 0; live <= 1; live++)
    {
      run_end_test (fixture, "cart-1", END_STOP, live);
      run_end_test (fixture, ES_ALL_STREAM, END_STOP, live);
      run_end_test (fixture, "cart-1", END_UNREF, live);
      run_end_test (fixture, ES_ALL_STREAM, END_UNREF, live);
    }
}

static void
test_close_in_handler (Fixture       *fixture,
                       gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory in an event handler mid-replay");
  run_end_test (fixture, ES_ALL_STREAM, END_CLOSE, FALSE);
}

static void
test_close_in_handler_stream (Fixture       *fixture,
                              gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory in an event handler of a stream's "
                  "watch mid-replay");
  run_end_test (fixture, "cart-1", END_CLOSE, FALSE);
}

static void
test_close_in_handler_live (Fixture       *fixture,
                            gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory in an event handler of a live batch");
  run_end_test (fixture, ES_ALL_STREAM, END_CLOSE, TRUE);
}

static void
test_close_in_idle (Fixture       *fixture,
                    gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory from an idle mid-replay");
  run_end_test (fixture, ES_ALL_STREAM, END_CLOSE_IDLE, FALSE);
}

static void
test_close_in_idle_stream (Fixture       *fixture,
                           gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory from an idle mid-replay of a stream");
  run_end_test (fixture, "cart-1", END_CLOSE_IDLE, FALSE);
}

static void
test_close_in_thread (Fixture       *fixture,
                      gconstpointer  data)
{
  g_test_summary ("No event begins after es_stream_factory_close() returned in another thread");
  run_end_test (fixture, ES_ALL_STREAM, END_CLOSE_THREAD, FALSE);
}

/* Item: watch (-1) starts where the stream is when it returns. */

typedef struct
{
  guint   n;
  gint64  position;
} MinusOneCount;

static void
on_event_count (EsWatch       *watch,
                EsStoredEvent *event,
                MinusOneCount *count)
{
  count->n++;
  count->position = g_str_equal (es_watch_get_stream_id (watch), ES_ALL_STREAM)
                    ? es_stored_event_get_sequence_id (event)
                    : es_stored_event_get_version (event);
}

static gboolean
both_counted (gpointer data)
{
  MinusOneCount *counts = data;

  return counts[0].n > 0 && counts[1].n > 0;
}

#define MINUS_ONE_ROUNDS 200

static void
test_minus_one_race (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(EsStreamFactory) other_factory = factory_new (fixture->conninfo, fixture->schema, 2);
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "race");
  g_autoptr(EsStream) all = open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsStream) other = open_stream (other_factory, "race");
  g_autoptr(GError) error = NULL;

  g_test_summary ("Every event committed after es_stream_watch (-1) returned is emitted, "
                  "once, when another factory writes it at once");

  for (guint round = 0; round < MINUS_ONE_ROUNDS; round++)
    {
      g_autoptr(EsWatch) watch = es_stream_watch (stream, -1);
      g_autoptr(EsWatch) all_watch = es_stream_watch (all, -1);
      MinusOneCount counts[2] = { { 0, 0 }, { 0, 0 } };
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Raced", NULL);
      gint64 version;

      g_signal_connect (watch, "event", G_CALLBACK (on_event_count), &counts[0]);
      g_signal_connect (all_watch, "event", G_CALLBACK (on_event_count), &counts[1]);

      version = es_stream_write (other, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (version, ==, round + 1);

      wait_until (NULL, both_counted, counts);
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_assert_cmpuint (counts[0].n, ==, 1);
      g_assert_cmpuint (counts[1].n, ==, 1);
      g_assert_cmpint (counts[0].position, ==, round + 1);
      g_assert_cmpint (counts[1].position, ==, round + 1);
      es_watch_stop (watch);
      es_watch_stop (all_watch);
    }

  g_clear_object (&other);
  factory_close_and_free (g_steal_pointer (&other_factory));
}

/* Item: a watch whose server stays away gives up after the deadline. */

static EsStreamFactory *
factory_with_timeout (const char *conninfo,
                      const char *schema,
                      guint       give_up_timeout)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                            "conninfo", conninfo,
                            "schema", schema,
                            "pool-size", 2,
                            "give-up-timeout", give_up_timeout,
                            NULL);
  g_assert_no_error (error);
  return factory;
}

/* Keeps @role from logging in, and ends its sessions. */
static void
lock_out (const char *conninfo,
          const char *role)
{
  g_autofree char *alter = g_strdup_printf ("ALTER ROLE %s NOLOGIN", role);
  g_autofree char *terminate = NULL;

  run_sql (conninfo, alter);
  terminate = g_strdup_printf ("DO $$ BEGIN PERFORM pg_terminate_backend (pid) "
                               "FROM pg_stat_activity WHERE usename = '%s'; END $$", role);
  run_sql (conninfo, terminate);
}

static gboolean
keyword_conninfo (Fixture *fixture)
{
  if (!g_str_has_prefix (fixture->conninfo, "host=") &&
      strstr (fixture->conninfo, " host=") == NULL)
    {
      g_test_skip ("ES_TEST_PG_CONNINFO is not a keyword=value string: cannot connect "
                   "as another role");
      return FALSE;
    }
  return TRUE;
}

#define GIVE_UP_MS 1000

static void
test_outage_gives_up (Fixture       *fixture,
                      gconstpointer  data)
{
  g_autofree char *role = g_strdup_printf ("es_test_giveup_%d", (int) getpid ());
  g_autofree char *sql = NULL;
  g_autofree char *watcher_conninfo = NULL;
  g_autoptr(EsStreamFactory) watcher = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "first");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(Recorder) late_recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) late = NULL;
  const GError *notifier_error;
  gboolean notified = FALSE;
  guint timeout = 0;
  gint64 start, elapsed_ms;

  g_test_summary ("A watch whose server stays unreachable emits ES_ERROR_STORAGE after "
                  "the give-up timeout and stops");

  if (!keyword_conninfo (fixture))
    return;

  sql = g_strdup_printf ("CREATE ROLE %s LOGIN SUPERUSER", role);
  run_sql (fixture->conninfo, sql);
  watcher_conninfo = g_strdup_printf ("%s user=%s", fixture->conninfo, role);
  watcher = factory_with_timeout (watcher_conninfo, fixture->schema, GIVE_UP_MS);
  g_object_get (watcher, "give-up-timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, GIVE_UP_MS);
  g_object_get (es_stream_factory_get_notifier (watcher), "give-up-timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, GIVE_UP_MS);
  g_object_get (fixture->factory, "give-up-timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, 60000);

  all = open_stream (watcher, ES_ALL_STREAM);
  watch = es_stream_watch (all, 0);
  recorder_connect (recorder, watch);
  g_signal_connect (watch, "notify::active", G_CALLBACK (on_notify_active), &notified);
  write_n (stream, 3, "Before");
  wait_for_events (recorder, 3);

  start = g_get_monotonic_time ();
  lock_out (fixture->conninfo, role);

  wait_until (NULL, has_error, recorder);
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("error after %" G_GINT64_FORMAT " ms: %s", elapsed_ms,
                  recorder->error->message);
  g_assert_cmpint (elapsed_ms, >=, GIVE_UP_MS);
  g_assert_cmpint (elapsed_ms, <, GIVE_UP_MS + 15000);
  g_assert_error (recorder->error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_nonnull (strstr (recorder->error->message, "PostgreSQL"));
  g_assert_false (es_watch_get_active (watch));
  g_assert_true (notified);
  notifier_error = es_notifier_get_error (es_stream_factory_get_notifier (watcher));
  g_assert_error ((GError *) notifier_error, ES_ERROR, ES_ERROR_STORAGE);

  /* A watch started afterwards fails at once too. */
  late = es_stream_watch (all, 0);
  recorder_connect (late_recorder, late);
  wait_until (NULL, has_error, late_recorder);
  g_assert_error (late_recorder->error, ES_ERROR, ES_ERROR_STORAGE);

  /* The test's own factory never lost its server. */
  write_n (stream, 1, "After");

  g_clear_object (&watch);
  g_clear_object (&late);
  g_clear_object (&all);
  es_stream_factory_close (watcher, NULL, NULL);
  g_assert_finalize_object (g_steal_pointer (&watcher));
  g_free (sql);
  sql = g_strdup_printf ("DROP ROLE %s", role);
  run_sql (fixture->conninfo, sql);
}

static void
test_short_outage (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autofree char *role = g_strdup_printf ("es_test_outage_%d", (int) getpid ());
  g_autofree char *sql = NULL;
  g_autofree char *watcher_conninfo = NULL;
  g_autoptr(EsStreamFactory) watcher = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) stream = open_stream (fixture->factory, "first");
  g_autoptr(Recorder) recorder = recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GArray) final = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier;
  guint connects;

  g_test_summary ("An outage shorter than the give-up timeout leaves the watch active, "
                  "and it then delivers what was written meanwhile");

  if (!keyword_conninfo (fixture))
    return;

  sql = g_strdup_printf ("CREATE ROLE %s LOGIN SUPERUSER", role);
  run_sql (fixture->conninfo, sql);
  watcher_conninfo = g_strdup_printf ("%s user=%s", fixture->conninfo, role);
  watcher = factory_with_timeout (watcher_conninfo, fixture->schema, 3000);
  notifier = get_notifier (watcher);
  all = open_stream (watcher, ES_ALL_STREAM);
  watch = es_stream_watch (all, 0);
  recorder_connect (recorder, watch);
  write_n (stream, 3, "Before");
  wait_for_events (recorder, 3);
  connects = _es_pg_notifier_get_n_connects (notifier);

  lock_out (fixture->conninfo, role);
  write_n (stream, 4, "During");
  spin (1000);
  g_assert_true (es_watch_get_active (watch));
  g_assert_cmpuint (recorder->events->len, ==, 3);

  g_free (sql);
  sql = g_strdup_printf ("ALTER ROLE %s LOGIN", role);
  run_sql (fixture->conninfo, sql);
  wait_for_events (recorder, 7);

  /* Well past the give-up timeout counted from the outage: the
   * reconnection reset it. */
  spin (3000);
  g_assert_true (es_watch_get_active (watch));
  g_assert_no_error (recorder->error);
  g_assert_null (es_notifier_get_error (ES_NOTIFIER (notifier)));
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), >, connects);
  final = read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  assert_sequence_ids_equal (recorder->events, final);

  write_n (stream, 1, "After");
  wait_for_events (recorder, 8);

  g_clear_object (&watch);
  g_clear_object (&all);
  factory_close_and_free (g_steal_pointer (&watcher));
  g_free (sql);
  sql = g_strdup_printf ("DROP ROLE %s", role);
  run_sql (fixture->conninfo, sql);
}

int
main (int   argc,
      char *argv[])
{
  static const struct {
    const char *name;
    void (*func) (Fixture *, gconstpointer);
  } tests[] = {
    { "replay-then-live/stream", test_replay_then_live_stream },
    { "replay-then-live/all", test_replay_then_live_all },
    { "after-version", test_after_version },
    { "live-only", test_live_only },
    { "no-gap-no-duplicate", test_no_gap_no_duplicate },
    { "other-process", test_other_process },
    { "no-polling", test_no_polling },
    { "idle-notifier", test_idle_notifier },
    { "shared-reads", test_shared_reads },
    { "server-restart", test_server_restart },
    { "writes-while-disconnected", test_writes_while_disconnected },
    { "stop", test_stop },
    { "unref-stops", test_unref_stops },
    { "close-stops", test_close_stops },
    { "slow-consumer", test_slow_consumer },
    { "thread-default-context", test_thread_default_context },
    { "notifier", test_notifier },
    { "end-in-handler", test_end_in_handler },
    { "close-in-handler", test_close_in_handler },
    { "close-in-handler-stream", test_close_in_handler_stream },
    { "close-in-handler-live", test_close_in_handler_live },
    { "close-in-idle", test_close_in_idle },
    { "close-in-idle-stream", test_close_in_idle_stream },
    { "close-in-thread", test_close_in_thread },
    { "minus-one-race", test_minus_one_race },
    { "outage-gives-up", test_outage_gives_up },
    { "short-outage", test_short_outage },
  };
  const char *unavailable = NULL;

  g_test_init (&argc, &argv, NULL);

  if (g_getenv ("ES_TEST_PG_CONNINFO") == NULL)
    {
      unavailable = g_getenv ("ES_TEST_PG_UNAVAILABLE");
      if (unavailable == NULL)
        unavailable = "ES_TEST_PG_CONNINFO is not set: run under build-aux/pg-test-server";
    }

  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    {
      g_autofree char *path = g_strdup_printf ("/pg-watch/%s", tests[i].name);

      if (unavailable != NULL)
        g_test_add_data_func (path, unavailable, skip_test);
      else
        g_test_add (path, Fixture, NULL, fixture_setup, tests[i].func, fixture_teardown);
    }

  return g_test_run ();
}
