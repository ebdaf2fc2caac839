/* test-pg-watch.c: EsPgNotifier and watches through LISTEN/NOTIFY: what
 * is PostgreSQL's own (other factories and processes, reconnections, the
 * give-up deadline). The watch contract itself runs on every backend in
 * test-conformance-watch.c.
 *
 * Runs against the server in ES_TEST_PG_CONNINFO, or else on a throwaway
 * server it starts itself (es_test_pg_server_get_conninfo()), each test in
 * a schema of its own, dropped afterwards. Without a server every test
 * skips, saying why. The restart tests need a server of their own to
 * restart (ES_TEST_PG_DIR) and skip otherwise.
 *
 * Knob: ES_TEST_PG_EVENTS, the events the concurrent writers append
 * (10000 by default).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "es-glib/postgres/es-pg-private.h"

#include "es-test-utils.h"

/* How long a write may keep failing while the server restarts. */
#define RECONNECT_TIMEOUT_SECONDS 30

typedef struct
{
  const char      *conninfo;  /* from the environment */
  char            *schema;    /* (owned) this test's own */
  EsStreamFactory *factory;   /* (owned) */
} Fixture;

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

  es_test_factory_close_and_free (fixture->factory);

  drop = g_strdup_printf ("DROP SCHEMA IF EXISTS \"%s\" CASCADE", fixture->schema);
  run_sql (fixture->conninfo, drop);
  g_free (fixture->schema);
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

      es_test_try_write_n (writer->stream, n, "Concurrent", &writer->error);
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
      g_autoptr(GArray) ids = es_test_read_all_sequence_ids (reader->factory, &error);

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
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsStream) w0 = es_test_open_stream (fixture->factory, "w0");
  g_autoptr(EsStream) w1 = es_test_open_stream (fixture->factory, "w1");
  g_autoptr(EsTestRecorder) all_recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) stream_recorder = es_test_recorder_new ();
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

  es_test_write_n (w0, HISTORY_W0, "Before");
  es_test_write_n (w1, HISTORY_W1, "Before");

  all_watch = es_stream_watch (all, 0);
  es_test_recorder_connect (all_recorder, all_watch);
  stream_watch = es_stream_watch (w0, 0);
  es_test_recorder_connect (stream_recorder, stream_watch);

  /* Writers 0 and 1 write through the watching factory (its commits reach
   * the notifier directly), 2 and 3 through another one (they reach it by
   * NOTIFY only). */
  start = g_get_monotonic_time ();
  for (guint i = 0; i < N_WRITERS; i++)
    {
      g_autofree char *stream_id = g_strdup_printf ("w%u", i);

      writers[i].stream = es_test_open_stream (i < 2 ? fixture->factory : second, stream_id);
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
  es_test_wait_until (NULL, counter_reached, &writers_done);
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

  final = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (final->len, ==, HISTORY_W0 + HISTORY_W1 + n_events);

  /* Until each watch has emitted the last event: an event it skipped
   * would never come, so compare then rather than wait for a count. */
  all_done.watch = all_watch;
  all_done.position = g_array_index (final, gint64, final->len - 1);
  es_test_wait_until (NULL, watch_reached, &all_done);
  stream_done.watch = stream_watch;
  stream_done.position = n_w0;
  es_test_wait_until (NULL, watch_reached, &stream_done);
  es_test_spin (100);

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
  es_test_assert_sequence_ids_equal (all_recorder->events, final);
  g_assert_cmpuint (all_recorder->caught_up, ==, 1);
  g_assert_no_error (all_recorder->error);

  /* The stream watch: versions 1..n, nothing of other streams. */
  g_assert_cmpuint (stream_recorder->events->len, ==, n_w0);
  es_test_assert_consecutive (stream_recorder->events, 0, FALSE);
  for (guint i = 0; i < stream_recorder->events->len; i++)
    g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (stream_recorder->events,
                                                                       i)), ==, "w0");
  g_assert_cmpuint (stream_recorder->caught_up, ==, 1);
  g_assert_no_error (stream_recorder->error);

  es_test_factory_close_and_free (g_steal_pointer (&second));
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
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "remote");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
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
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  writer = spawn_writer (fixture, "remote", N_WRITES, 1, INTERVAL_MS, TRUE);
  acks.stdout_pipe = g_object_ref (g_subprocess_get_stdout_pipe (writer));
  acks.ack_times = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_mutex_init (&acks.lock);
  thread = g_thread_new ("acks", ack_reader_thread, &acks);

  es_test_recorder_wait_events (recorder, N_WRITES);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  g_thread_join (thread);
  es_test_spin (100);

  g_assert_cmpstr (acks.failure, ==, NULL);
  g_assert_cmpuint (acks.ack_times->len, ==, N_WRITES);
  g_assert_cmpuint (recorder->events->len, ==, N_WRITES);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
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
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "quiet");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  guint before, idle_reads;

  g_test_summary ("With a watch open and nothing written, the notifier reads nothing for "
                  "a second; one commit elsewhere costs it a read");

  es_test_write_n (stream, 3, "Added");
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  /* The notification of our own writes may still be on its way. */
  es_test_spin (200);

  before = _es_pg_notifier_get_n_reads (notifier);
  es_test_spin (1000);
  idle_reads = _es_pg_notifier_get_n_reads (notifier) - before;
  g_test_message ("notifier reads in 1 s without writes: %u", idle_reads);
  g_assert_cmpuint (idle_reads, ==, 0);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, 1);

  /* The counter counts: a commit in another process is read. */
  writer = spawn_writer (fixture, "quiet", 1, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  es_test_recorder_wait_events (recorder, 4);
  g_assert_cmpuint (_es_pg_notifier_get_n_reads (notifier), >, before);
}

static void
test_idle_notifier (Fixture       *fixture,
                    gconstpointer  data)
{
  EsStreamFactory *other = factory_new (fixture->conninfo, fixture->schema, 1);
  g_autoptr(EsStream) stream = es_test_open_stream (other, "elsewhere");
  g_autoptr(EsStream) mine = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  guint before;

  g_test_summary ("Without subscribers, the notifier reads nothing when notifications "
                  "arrive (every process that appends listens: a read per notification "
                  "would cost each commit a query in each of them); a watch that "
                  "subscribes afterwards starts where the store ends");

  before = _es_pg_notifier_get_n_reads (notifier);
  /* Twenty commits, so twenty notifications to this factory's notifier. */
  for (guint i = 0; i < 20; i++)
    es_test_write_n (stream, 1, "Added");
  /* A commit of this factory's own goes through es_notifier_committed(). */
  mine = es_test_open_stream (fixture->factory, "here");
  es_test_write_n (mine, 1, "Added");
  /* The notifications arrive on the notifier's thread; give them time to
   * be read (a read would show in the counter). */
  es_test_spin (500);
  g_assert_cmpuint (_es_pg_notifier_get_n_reads (notifier) - before, ==, 0);

  /* Asked with nobody listening, the notifier reads where the store
   * ends: once. */
  g_assert_cmpint (es_notifier_get_last_sequence_id (ES_NOTIFIER (notifier)), ==, 21);
  g_assert_cmpuint (_es_pg_notifier_get_n_reads (notifier) - before, ==, 1);

  /* A watch of @all from there gets the next commit elsewhere, and only
   * it. */
  all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  watch = es_stream_watch (all, 21);
  es_test_recorder_connect (recorder, watch);
  es_test_write_n (stream, 1, "Added");
  es_test_recorder_wait_events (recorder, 1);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (recorder->events, 0)),
                   ==, 22);

  g_clear_object (&watch);
  g_clear_object (&stream);
  es_test_factory_close_and_free (other);
}

/* Held back (schema version 4): readers of @all see only the rows of
 * transactions below their snapshot's xmin. */

/* A connection of the test's own, or dies. */
static PGconn *
connect_or_die (const char *conninfo)
{
  PGconn *conn = PQconnectdb (conninfo);

  if (PQstatus (conn) != CONNECTION_OK)
    g_error ("Cannot connect: %s", PQerrorMessage (conn));
  PQsetNoticeProcessor (conn, ignore_notice, NULL);
  return conn;
}

/* Runs @sql on @conn; the first value of its last result, or NULL. */
static char *
exec_or_die (PGconn     *conn,
             const char *sql)
{
  PGresult *result = PQexec (conn, sql);
  char *value = NULL;

  if (PQresultStatus (result) != PGRES_COMMAND_OK && PQresultStatus (result) != PGRES_TUPLES_OK)
    g_error ("'%s' failed: %s", sql, PQresultErrorMessage (result));
  if (PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) > 0)
    value = g_strdup (PQgetvalue (result, 0, 0));
  PQclear (result);
  return value;
}

static gint64
exec_int_or_die (PGconn     *conn,
                 const char *sql)
{
  g_autofree char *value = exec_or_die (conn, sql);

  g_assert_nonnull (value);
  return g_ascii_strtoll (value, NULL, 10);
}

/* Opens, on @conn, a transaction that appends @n events to @stream_id
 * the way es-glib does (the stream's lock, the reservation as the first
 * write, the events, the stream's row, the notification's payload) and
 * leaves it open; returns the first position it took.
 * commit_held_append() ends it. */
static gint64
begin_held_append (PGconn     *conn,
                   const char *schema,
                   const char *stream_id,
                   guint       n)
{
  g_autofree char *sql = g_strdup_printf (
    "BEGIN;"
    "SELECT pg_catalog.pg_advisory_xact_lock (pg_catalog.hashtextextended ("
    "  'es-glib stream %s.%s', 0));"
    "WITH r AS (SELECT \"%s\".reserve_positions (%u) AS first)"
    " INSERT INTO \"%s\".events (sequence_id, stream_id, version, event_type, recorded_at, data)"
    " SELECT r.first + g - 1, '%s', g, 'Held', clock_timestamp (), '\\x00'::bytea"
    " FROM r, generate_series (1, %u) AS g;"
    "INSERT INTO \"%s\".streams (stream_id, version, event_count, first_version, first_at,"
    " last_at) VALUES ('%s', %u, %u, 1, now (), now ());"
    "SELECT pg_catalog.set_config ('es_glib.notify', max (sequence_id)::text, FALSE)"
    " FROM \"%s\".events WHERE stream_id = '%s';"
    "SELECT min (sequence_id) FROM \"%s\".events WHERE stream_id = '%s'",
    schema, stream_id, schema, n, schema, stream_id, n, schema, stream_id, n, n, schema,
    stream_id, schema, stream_id);

  return exec_int_or_die (conn, sql);
}

/* Commits it and notifies, as es-glib does: after the COMMIT. */
static void
commit_held_append (PGconn     *conn,
                    const char *schema)
{
  g_autofree char *sql = g_strdup_printf (
    "COMMIT; SELECT pg_catalog.pg_notify ('%s_events',"
    " pg_catalog.current_setting ('es_glib.notify'))", schema);

  g_free (exec_or_die (conn, sql));
}

typedef struct
{
  EsPgNotifier *notifier;
  guint         n_reads;
} ReadsWait;

static gboolean
reads_reached (gpointer data)
{
  ReadsWait *wait = data;

  return _es_pg_notifier_get_n_reads (wait->notifier) >= wait->n_reads;
}

static void
test_held_back_cursor (Fixture       *fixture,
                       gconstpointer  data)
{
  EsStreamFactory *other = factory_new (fixture->conninfo, fixture->schema, 1);
  g_autoptr(EsStream) stream = es_test_open_stream (other, "later");
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  PGconn *held = connect_or_die (fixture->conninfo);
  gint64 first, start;

  g_test_summary ("Without subscribers, while an earlier append (a smaller position) is "
                  "still open, the notifier's answer of where the store ends stays before "
                  "it even when a later commit is notified: a watch started there still "
                  "gets the open append's events when it commits, then the later ones");

  es_test_write_n (stream, 2, "Before");
  first = begin_held_append (held, fixture->schema, "held", 2);
  g_assert_cmpint (first, ==, 3);
  es_test_write_n (stream, 1, "After");  /* position 5, committed and notified */

  start = es_notifier_get_last_sequence_id (ES_NOTIFIER (notifier));
  g_assert_cmpint (start, ==, 2);
  watch = es_stream_watch (all, start);
  es_test_recorder_connect (recorder, watch);

  commit_held_append (held, fixture->schema);
  es_test_recorder_wait_events (recorder, 3);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  es_test_assert_consecutive (recorder->events, 3, TRUE);

  PQfinish (held);
  g_clear_object (&watch);
  g_clear_object (&stream);
  es_test_factory_close_and_free (other);
}

static void
test_held_back_foreign (Fixture       *fixture,
                        gconstpointer  data)
{
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "s");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  ReadsWait reads = { notifier, 0 };
  PositionWait done;
  PGconn *foreign = connect_or_die (fixture->conninfo);
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) ids = NULL;
  guint n_reads;

  g_test_summary ("A transaction that is not es-glib's (it holds a transaction id and sends "
                  "no notification) holds a commit back from @all readers and the watch "
                  "while it runs; when it ends the watch gets the event by looking again, "
                  "backing off, and then stops looking");

  es_test_write_n (stream, 1, "Before");
  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);
  done.watch = watch;
  done.position = 1;
  es_test_wait_until (NULL, watch_reached, &done);

  g_free (exec_or_die (foreign, "BEGIN; SELECT pg_catalog.pg_current_xact_id ()"));
  es_test_write_n (stream, 1, "Held");

  /* Held back from reads of @all... */
  ids = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, 1);
  /* ...and from the watch, which keeps looking (a few times). */
  reads.n_reads = _es_pg_notifier_get_n_reads (notifier) + 3;
  es_test_spin_until (reads_reached, &reads);
  g_assert_cmpuint (recorder->events->len, ==, 1);

  g_free (exec_or_die (foreign, "COMMIT"));
  done.position = 2;
  es_test_wait_until (NULL, watch_reached, &done);
  g_assert_cmpuint (recorder->events->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (recorder->events, i)),
                     ==, i + 1);

  /* Nothing held back any more: no more looking. */
  es_test_spin (50);
  n_reads = _es_pg_notifier_get_n_reads (notifier);
  es_test_spin (300);
  g_assert_cmpuint (_es_pg_notifier_get_n_reads (notifier), ==, n_reads);

  PQfinish (foreign);
}

/* The many-processes test: the transaction held open for 2 s. */
typedef struct
{
  const char      *conninfo;
  const char      *schema;
  EsStreamFactory *factory;       /* (unowned) reads @all through it */
  gint64           first;         /* out: its first position */
  gint64           overtaken;     /* out: later positions committed while it was open */
  gint64           seen_during;   /* out: the last position an @all read saw meanwhile */
  gint64           head_during;   /* out: the head of @all meanwhile */
} HeldData;

static gpointer
held_thread (gpointer data)
{
  HeldData *held = data;
  PGconn *conn = connect_or_die (held->conninfo);
  PGconn *look = connect_or_die (held->conninfo);
  g_autofree char *count_sql = NULL;
  g_autoptr(GArray) ids = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  gint64 end;

  held->first = begin_held_append (conn, held->schema, "held", 3);

  /* Others commit after it while it is open (they do not wait for it):
   * committed rows beyond its positions, read without the horizon. */
  count_sql = g_strdup_printf ("SELECT count(*) FROM \"%s\".events WHERE sequence_id > %"
                               G_GINT64_FORMAT, held->schema, held->first + 2);
  end = g_get_monotonic_time () + ES_TEST_WAIT_TIMEOUT_SECONDS * G_USEC_PER_SEC;
  while ((held->overtaken = exec_int_or_die (look, count_sql)) < 16 &&
         g_get_monotonic_time () < end)
    g_usleep (5000);

  /* Readers of @all see none of them, nor anything after. */
  ids = es_test_read_all_sequence_ids (held->factory, &error);
  g_assert_no_error (error);
  held->seen_during = ids->len > 0 ? g_array_index (ids, gint64, ids->len - 1) : 0;
  all = es_test_open_stream (held->factory, ES_ALL_STREAM);
  held->head_during = es_stream_query_version (all, NULL, &error);
  g_assert_no_error (error);

  /* Open for 2 s in all. */
  if (g_get_monotonic_time () < start + 2 * G_USEC_PER_SEC)
    g_usleep (start + 2 * G_USEC_PER_SEC - g_get_monotonic_time ());
  commit_held_append (conn, held->schema);
  PQfinish (look);
  PQfinish (conn);
  return NULL;
}

static void
test_many_processes_held_open (Fixture       *fixture,
                               gconstpointer  data)
{
  enum { N_PROCESSES = 16, PER_PROCESS = 200, HISTORY = 100, N_HELD = 3 };
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsStream) history = es_test_open_stream (fixture->factory, "history");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GArray) final = NULL;
  g_autoptr(GError) error = NULL;
  GSubprocess *writers[N_PROCESSES];
  ReaderData reader = { 0 };
  HeldData held = { fixture->conninfo, fixture->schema, fixture->factory, 0, 0, 0, 0 };
  GThread *reader_thread_handle, *held_thread_handle;
  PositionWait started, done;
  guint n_held = 0;

  g_test_summary ("16 writer processes append to their own streams, in batches of 1 to 4, "
                  "while an @all watch and repeated @all reads follow, and a writer holds "
                  "its transaction open for 2 s in the middle: the others commit meanwhile; "
                  "no reader sees past it while it is open, nor skips it, nor sees anything "
                  "twice; each read is a prefix of the next; the watch emits every event "
                  "once, in order");

  es_test_write_n (history, HISTORY, "Before");
  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);

  for (guint i = 0; i < N_PROCESSES; i++)
    {
      g_autofree char *stream_id = g_strdup_printf ("p%u", i);

      /* 10 ms between writes: still writing when the held one opens. */
      writers[i] = spawn_writer (fixture, stream_id, PER_PROCESS, 1 + i % 4, 10, FALSE);
    }

  reader.factory = fixture->factory;
  g_atomic_int_set (&reader.writing, TRUE);
  reader_thread_handle = g_thread_new ("reader", reader_thread, &reader);

  /* In the middle: once the processes are writing. */
  started.watch = watch;
  started.position = HISTORY + 200;
  es_test_wait_until (NULL, watch_reached, &started);
  held_thread_handle = g_thread_new ("held", held_thread, &held);

  for (guint i = 0; i < N_PROCESSES; i++)
    {
      g_subprocess_wait_check (writers[i], NULL, &error);
      g_assert_no_error (error);
      g_object_unref (writers[i]);
    }
  g_thread_join (held_thread_handle);
  g_atomic_int_set (&reader.writing, FALSE);
  g_thread_join (reader_thread_handle);

  g_test_message ("held open at %" G_GINT64_FORMAT ": %" G_GINT64_FORMAT " later events "
                  "committed meanwhile; @all read up to %" G_GINT64_FORMAT ", head %"
                  G_GINT64_FORMAT, held.first, held.overtaken, held.seen_during,
                  held.head_during);
  g_assert_cmpint (held.overtaken, >=, 16);
  g_assert_cmpint (held.seen_during, <, held.first);
  g_assert_cmpint (held.head_during, <, held.first);

  final = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (final->len, ==, HISTORY + N_PROCESSES * PER_PROCESS + N_HELD);

  done.watch = watch;
  done.position = g_array_index (final, gint64, final->len - 1);
  es_test_wait_until (NULL, watch_reached, &done);
  es_test_spin (100);

  g_test_message ("%u @all reads, the longest %u events", reader.n_reads, reader.longest);
  g_assert_cmpstr (reader.failure, ==, NULL);
  g_assert_cmpuint (reader.n_reads, >=, 1);
  for (guint i = 0; i < reader.last->len; i++)
    g_assert_cmpint (g_array_index (reader.last, gint64, i), ==, g_array_index (final, gint64, i));
  g_array_unref (reader.last);

  es_test_assert_sequence_ids_equal (recorder->events, final);
  for (guint i = 0; i < recorder->events->len; i++)
    if (g_str_equal (es_stored_event_get_stream_id (g_ptr_array_index (recorder->events, i)),
                     "held"))
      n_held++;
  g_assert_cmpuint (n_held, ==, N_HELD);
  g_assert_no_error (recorder->error);
}

static void
test_shared_reads (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "cart-1");
  g_autoptr(GPtrArray) watches = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) recorders = g_ptr_array_new_with_free_func ((GDestroyNotify) es_test_recorder_free);
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;
  EsPgNotifier *notifier = get_notifier (fixture->factory);
  guint before, reads;

  g_test_summary ("100 watchers share the notifier's reads: one commit costs it one read, "
                  "not one per watcher");

  for (guint i = 0; i < 100; i++)
    {
      EsTestRecorder *recorder = es_test_recorder_new ();
      EsWatch *watch = es_stream_watch (stream, 0);

      es_test_recorder_connect (recorder, watch);
      g_ptr_array_add (watches, watch);
      g_ptr_array_add (recorders, recorder);
    }
  for (guint i = 0; i < 100; i++)
    es_test_recorder_wait_caught_up (g_ptr_array_index (recorders, i));

  before = _es_pg_notifier_get_n_reads (notifier);
  writer = spawn_writer (fixture, "cart-1", 1, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 100; i++)
    es_test_recorder_wait_events (g_ptr_array_index (recorders, i), 1);
  es_test_spin (100);
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
          g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Keyed", NULL, key, NULL);
          g_autoptr(GError) error = NULL;

          es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
          if (error == NULL)
            break;

          failures++;
          g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
          if (g_get_monotonic_time () > deadline)
            g_error ("Writing still fails %d s after the restart: %s",
                     RECONNECT_TIMEOUT_SECONDS, error->message);
          es_test_spin (100);
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
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) all_recorder = es_test_recorder_new ();
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

  stream = es_test_open_stream (fixture->factory, "restarted");
  all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  all_watch = es_stream_watch (all, 0);
  es_test_recorder_connect (all_recorder, all_watch);
  write_retrying (stream, 5, "before");
  es_test_recorder_wait_events (recorder, 5);
  es_test_recorder_wait_events (all_recorder, 5);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, 1);

  server_control ("restart");

  /* This process's writes: the first fails until the pool reconnects. */
  failures = write_retrying (stream, 5, "after");
  g_test_message ("writes that failed while the storage reconnected: %u", failures);
  es_test_recorder_wait_events (recorder, 10);

  /* The notifier listens again... */
  reconnected.notifier = notifier;
  reconnected.n = 2;
  es_test_spin_until (has_n_connects, &reconnected);

  /* ... so another process's writes arrive by NOTIFY alone. */
  writer = spawn_writer (fixture, "restarted", 3, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  es_test_recorder_wait_events (recorder, 13);
  es_test_recorder_wait_events (all_recorder, 13);
  es_test_spin (200);

  g_assert_cmpuint (recorder->events->len, ==, 13);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (recorder->events, 12)),
                   ==, "written");
  final = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  es_test_assert_sequence_ids_equal (all_recorder->events, final);
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
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "first");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
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
  all = es_test_open_stream (watcher, ES_ALL_STREAM);

  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_write_n (stream, 3, "Before");
  es_test_recorder_wait_events (recorder, 3);
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
  es_test_spin (500);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), ==, connects);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  g_assert_true (es_watch_get_active (watch));

  g_free (sql);
  sql = g_strdup_printf ("ALTER ROLE %s LOGIN", role);
  run_sql (fixture->conninfo, sql);

  es_test_recorder_wait_events (recorder, 10);
  es_test_spin (300);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), >, connects);

  final = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (final->len, ==, 10);
  es_test_assert_sequence_ids_equal (recorder->events, final);
  for (guint i = 3; i < 10; i++)
    g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (recorder->events, i)),
                     ==, "during");
  g_assert_no_error (recorder->error);

  /* The watch and the stream hold the factory. */
  g_clear_object (&watch);
  g_clear_object (&all);
  es_test_factory_close_and_free (g_steal_pointer (&watcher));
  g_free (sql);
  sql = g_strdup_printf ("DROP ROLE %s", role);
  run_sql (fixture->conninfo, sql);
}

/* es_watch_stop() itself is in the conformance tests; here: a NOTIFY
 * from another process after it wakes nothing. */
static void
test_stop_other_process (Fixture       *fixture,
                         gconstpointer  data)
{
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("No event follows es_watch_stop(), also of another process's writes");

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_write_n (stream, 3, "Added");
  es_test_recorder_wait_events (recorder, 3);

  es_watch_stop (watch);
  g_assert_false (es_watch_get_active (watch));
  writer = spawn_writer (fixture, "cart-1", 3, 1, 0, FALSE);
  g_subprocess_wait_check (writer, NULL, &error);
  g_assert_no_error (error);
  es_test_spin (300);
  g_assert_cmpuint (recorder->events->len, ==, 3);
}

static void
on_notify_active (GObject    *object,
                  GParamSpec *pspec,
                  gboolean   *notified)
{
  *notified = TRUE;
}

static void
test_slow_consumer (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "firehose");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  EsNotifier *notifier = es_stream_factory_get_notifier (fixture->factory);
  EsStorageHandle *storage = es_stream_factory_get_storage (fixture->factory);
  guint max_pending = 0;

  g_test_summary ("A watcher whose main loop is blocked holds a bounded number of events "
                  "and then receives every event in order");

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  /* The main loop does not run while we write: the backlog builds up. */
  for (guint i = 0; i < 20; i++)
    {
      gint64 deadline = g_get_monotonic_time () + ES_TEST_WAIT_TIMEOUT_SECONDS * G_TIME_SPAN_SECOND;
      g_autoptr(GError) error = NULL;
      gint64 last = 0;

      es_test_write_n (stream, 100, "Burst");
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

  es_test_recorder_wait_events (recorder, 2000);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
  es_test_spin (100);
  g_assert_cmpuint (recorder->events->len, ==, 2000);
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
  es_test_storage_append_n (ES_STORAGE_HANDLE (storage), "s", 2, "Direct", NULL, NULL);

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
  es_test_storage_append_n (ES_STORAGE_HANDLE (storage), "s", 3, "Direct", NULL, NULL);
  es_test_storage_append_n (ES_STORAGE_HANDLE (storage), "t", 1, "Direct", NULL, NULL);
  wait.subscription = &first;
  wait.n = 4;
  es_test_spin_until (subscription_has, &wait);
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
  es_test_storage_append_n (ES_STORAGE_HANDLE (storage), "s", 2, "Direct", NULL, NULL);
  wait.subscription = &second;
  wait.n = 2;
  es_test_spin_until (subscription_has, &wait);
  g_usleep (100 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpuint (subscription_count (&first), ==, 4);
  g_assert_cmpuint (subscription_count (&second), ==, 2);

  es_notifier_stop (ES_NOTIFIER (notifier));
  g_assert_cmpint (g_atomic_int_get (&second.destroyed), ==, 1);
  es_notifier_stop (ES_NOTIFIER (notifier));
  g_assert_cmpint (g_atomic_int_get (&second.destroyed), ==, 1);

  es_test_storage_append_n (ES_STORAGE_HANDLE (storage), "s", 1, "Direct", NULL, NULL);
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
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "first");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) late_recorder = es_test_recorder_new ();
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

  all = es_test_open_stream (watcher, ES_ALL_STREAM);
  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);
  g_signal_connect (watch, "notify::active", G_CALLBACK (on_notify_active), &notified);
  es_test_write_n (stream, 3, "Before");
  es_test_recorder_wait_events (recorder, 3);

  start = g_get_monotonic_time ();
  lock_out (fixture->conninfo, role);

  es_test_recorder_wait_error (recorder);
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
  es_test_recorder_connect (late_recorder, late);
  es_test_recorder_wait_error (late_recorder);
  g_assert_error (late_recorder->error, ES_ERROR, ES_ERROR_STORAGE);

  /* The test's own factory never lost its server. */
  es_test_write_n (stream, 1, "After");

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
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "first");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
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
  all = es_test_open_stream (watcher, ES_ALL_STREAM);
  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_write_n (stream, 3, "Before");
  es_test_recorder_wait_events (recorder, 3);
  connects = _es_pg_notifier_get_n_connects (notifier);

  lock_out (fixture->conninfo, role);
  es_test_write_n (stream, 4, "During");
  es_test_spin (1000);
  g_assert_true (es_watch_get_active (watch));
  g_assert_cmpuint (recorder->events->len, ==, 3);

  g_free (sql);
  sql = g_strdup_printf ("ALTER ROLE %s LOGIN", role);
  run_sql (fixture->conninfo, sql);
  es_test_recorder_wait_events (recorder, 7);

  /* Well past the give-up timeout counted from the outage: the
   * reconnection reset it. */
  es_test_spin (3000);
  g_assert_true (es_watch_get_active (watch));
  g_assert_no_error (recorder->error);
  g_assert_null (es_notifier_get_error (ES_NOTIFIER (notifier)));
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (notifier), >, connects);
  final = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  es_test_assert_sequence_ids_equal (recorder->events, final);

  es_test_write_n (stream, 1, "After");
  es_test_recorder_wait_events (recorder, 8);

  g_clear_object (&watch);
  g_clear_object (&all);
  es_test_factory_close_and_free (g_steal_pointer (&watcher));
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
    { "no-gap-no-duplicate", test_no_gap_no_duplicate },
    { "other-process", test_other_process },
    { "no-polling", test_no_polling },
    { "idle-notifier", test_idle_notifier },
    { "held-back-cursor", test_held_back_cursor },
    { "held-back-foreign", test_held_back_foreign },
    { "many-processes-held-open", test_many_processes_held_open },
    { "shared-reads", test_shared_reads },
    { "server-restart", test_server_restart },
    { "writes-while-disconnected", test_writes_while_disconnected },
    { "stop-other-process", test_stop_other_process },
    { "slow-consumer", test_slow_consumer },
    { "notifier", test_notifier },
    { "outage-gives-up", test_outage_gives_up },
    { "short-outage", test_short_outage },
  };
  const char *unavailable = NULL;

  g_test_init (&argc, &argv, NULL);

  /* A server of our own, started here, stopped at exit. */
  if (es_test_pg_server_get_conninfo (&unavailable) == NULL)
    g_assert_nonnull (unavailable);

  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    {
      g_autofree char *path = g_strdup_printf ("/pg-watch/%s", tests[i].name);

      if (unavailable != NULL)
        g_test_add_data_func (path, unavailable, es_test_skip_func);
      else
        g_test_add (path, Fixture, NULL, fixture_setup, tests[i].func, fixture_teardown);
    }

  return g_test_run ();
}
