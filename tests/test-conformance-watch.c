/* test-conformance-watch.c: the contract of EsWatch, on every backend of
 * the conformance runner (test-conformance.c selects it with --backend).
 *
 * Written against the public API only: how a backend learns of commits
 * (SQLite's file monitor, PostgreSQL's LISTEN/NOTIFY) is tested with the
 * backend (test-watch.c, tests/postgres/test-pg-watch.c); what a watch
 * emits is the same everywhere, and is tested here. A backend without a
 * notifier skips these tests, saying so.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "test-conformance.h"

/* Skips the test when the backend has no notifier (no watches). */
static gboolean
fixture_require_notifier (Fixture *fixture)
{
  if (es_stream_factory_get_notifier (fixture->factory) != NULL)
    return TRUE;
  g_test_skip ("This backend has no notifier: its watches emit history only");
  return FALSE;
}

static void
test_replay_then_live_stream (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsStream) other = open_stream (fixture, "cart-2");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("A stream watch emits the stored history, then caught-up once, "
                  "then live events, in order, and nothing of other streams");
  if (!fixture_require_notifier (fixture))
    return;

  es_test_write_n (stream, 5, "Added");
  es_test_write_n (other, 3, "Other");
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  g_assert_true (es_watch_get_active (watch));

  es_test_recorder_wait_caught_up (recorder);
  g_assert_cmpuint (recorder->n_events_at_caught_up, ==, 5);
  g_assert_true (es_watch_get_caught_up (watch));

  es_test_write_n (other, 2, "Other");
  es_test_write_n (stream, 2, "Removed");
  es_test_recorder_wait_events (recorder, 7);
  es_test_spin (100);
  g_assert_cmpuint (recorder->events->len, ==, 7);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
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
  g_autoptr(EsStream) a = open_stream (fixture, "a");
  g_autoptr(EsStream) b = open_stream (fixture, "b");
  g_autoptr(EsStream) all = open_stream (fixture, ES_ALL_STREAM);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GArray) stored = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("An @all watch emits every stream's history, then caught-up once, then "
                  "live events, in sequence-id order");
  if (!fixture_require_notifier (fixture))
    return;

  es_test_write_n (a, 2, "A");
  es_test_write_n (b, 1, "B");
  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  g_assert_cmpuint (recorder->n_events_at_caught_up, ==, 3);

  es_test_write_n (b, 1, "B");
  es_test_write_n (a, 3, "A");
  es_test_recorder_wait_events (recorder, 7);
  es_test_spin (100);

  stored = es_test_read_all_sequence_ids (fixture->factory, &error);
  g_assert_no_error (error);
  es_test_assert_sequence_ids_equal (recorder->events, stored);
  es_test_assert_consecutive (recorder->events, 0, TRUE);
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
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("A watch starts after the version it is given");
  if (!fixture_require_notifier (fixture))
    return;

  es_test_write_n (stream, 10, "Added");
  watch = es_stream_watch (stream, 7);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  es_test_assert_consecutive (recorder->events, 7, FALSE);
}

typedef struct
{
  EsStream *stream;
  guint     n_batches;
  guint     batch_size;
} WriterData;

static gpointer
writer_thread (gpointer data)
{
  WriterData *writer = data;

  for (guint i = 0; i < writer->n_batches; i++)
    es_test_write_n (writer->stream, writer->batch_size, "Concurrent");
  return NULL;
}

static void
test_no_gap_no_duplicate (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "busy");
  g_autoptr(EsStream) writer_stream = open_stream (fixture, "busy");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  WriterData writer = { writer_stream, 1000, 10 };
  GThread *thread;

  g_test_summary ("History and live join without gap or duplicate while a thread appends "
                  "10,000 events during the replay");
  if (!fixture_require_notifier (fixture))
    return;

  es_test_write_n (stream, 3000, "Before");
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  thread = g_thread_new ("writer", writer_thread, &writer);

  es_test_recorder_wait_events (recorder, 13000);
  g_thread_join (thread);
  es_test_spin (200);

  g_assert_cmpuint (recorder->events->len, ==, 13000);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
  g_assert_cmpuint (recorder->caught_up, ==, 1);
}

static void
test_live_only (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("after_version -1 emits only events written after the watch started");
  if (!fixture_require_notifier (fixture))
    return;

  es_test_write_n (stream, 5, "Old");
  watch = es_stream_watch (stream, -1);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  g_assert_cmpuint (recorder->events->len, ==, 0);
  g_assert_cmpint (es_watch_get_last_version (watch), ==, 5);

  es_test_write_n (stream, 1, "New");
  es_test_recorder_wait_events (recorder, 1);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (recorder->events, 0)), ==, 6);
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
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) stopper_recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) stopper = NULL;

  g_test_summary ("No event follows es_watch_stop(), which is idempotent and works from a handler");
  if (!fixture_require_notifier (fixture))
    return;

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  stopper = es_stream_watch (stream, 0);
  g_signal_connect (stopper, "event", G_CALLBACK (stop_in_handler), NULL);
  es_test_recorder_connect (stopper_recorder, stopper);

  es_test_write_n (stream, 3, "Added");
  es_test_recorder_wait_events (recorder, 3);
  es_test_spin (100);
  /* Stopped by its first event's handler: that emission completes, nothing follows. */
  g_assert_cmpuint (stopper_recorder->events->len, ==, 1);
  g_assert_false (es_watch_get_active (stopper));

  es_watch_stop (watch);
  es_watch_stop (watch);
  g_assert_false (es_watch_get_active (watch));
  es_test_write_n (stream, 3, "Added");
  es_test_spin (300);
  g_assert_cmpuint (recorder->events->len, ==, 3);
}

static void
test_unref_stops (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  EsWatch *watch;

  g_test_summary ("Dropping the last reference stops the watch and frees it");
  if (!fixture_require_notifier (fixture))
    return;

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_write_n (stream, 2, "Added");
  es_test_recorder_wait_events (recorder, 2);

  g_assert_finalize_object (watch);
  es_test_write_n (stream, 2, "Added");
  es_test_spin (300);
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
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) late = NULL;
  g_autoptr(EsTestRecorder) late_recorder = es_test_recorder_new ();
  g_autoptr(GError) error = NULL;
  gboolean notified = FALSE;

  g_test_summary ("Closing the factory stops its watches; a watch on a closed factory fails");
  if (!fixture_require_notifier (fixture))
    return;

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  g_signal_connect (watch, "notify::active", G_CALLBACK (on_notify_active), &notified);
  es_test_write_n (stream, 1, "Added");
  es_test_recorder_wait_events (recorder, 1);

  es_stream_factory_close (fixture->factory, NULL, &error);
  g_assert_no_error (error);
  es_test_wait_until (NULL, is_inactive, watch);
  g_assert_true (notified);
  g_assert_no_error (recorder->error);

  late = es_stream_watch (stream, 0);
  es_test_recorder_connect (late_recorder, late);
  es_test_recorder_wait_error (late_recorder);
  g_assert_error (late_recorder->error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_false (es_watch_get_active (late));
}

static void
test_bad_version (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("A start version below -1 emits error with ES_ERROR_INVALID_ARGUMENT");
  if (!fixture_require_notifier (fixture))
    return;

  watch = es_stream_watch (stream, -2);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_error (recorder);
  g_assert_error (recorder->error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (recorder->error->message, "-2"));
  g_assert_false (es_watch_get_active (watch));
  g_assert_cmpuint (recorder->caught_up, ==, 0);
}

typedef struct
{
  EsStream *stream;
  EsTestRecorder *recorder;
  GThread  *creator;
} ThreadWatchData;

static gpointer
watch_in_thread (gpointer data)
{
  ThreadWatchData *td = data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_main_context_push_thread_default (context);
  td->creator = g_thread_self ();
  watch = es_stream_watch (td->stream, 0);
  es_test_recorder_connect (td->recorder, watch);
  es_test_recorder_wait_events_in (td->recorder, context, 2);
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
  g_autoptr(EsStream) stream = open_stream (fixture, "cart-1");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  ThreadWatchData td = { stream, recorder, NULL };
  GThread *thread;

  g_test_summary ("Signals are emitted in the thread-default main context of the watch's creator");
  if (!fixture_require_notifier (fixture))
    return;

  es_test_write_n (stream, 2, "Added");
  thread = g_thread_new ("watcher", watch_in_thread, &td);
  g_thread_join (thread);
  g_assert_cmpuint (recorder->events->len, ==, 2);
  g_assert_true (recorder->emitting_thread == td.creator);
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
  g_autoptr(EsStream) writer = open_stream (fixture, "cart-1");
  g_autoptr(EsStream) stream = open_stream (fixture, stream_id);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  EndTest test = { fixture->factory, NULL, how, 0, };
  EsWatch *weak = NULL;
  gboolean inactive_notified = FALSE;

  g_test_message ("%s, %s, ended by %d", stream_id, live ? "live" : "replay", how);

  if (!live)
    for (guint i = 0; i < END_N_EVENTS / 1000; i++)
      es_test_write_n (writer, 1000, "Added");

  test.watch = es_stream_watch (stream, live ? -1 : 0);
  weak = test.watch;
  g_object_add_weak_pointer (G_OBJECT (weak), (gpointer *) &weak);
  g_signal_connect (test.watch, "event", G_CALLBACK (on_event_end), &test);
  es_test_recorder_connect (recorder, test.watch);
  g_signal_connect (test.watch, "notify::active", G_CALLBACK (on_notify_active),
                    &inactive_notified);

  /* In the replay, the 1500th event is in the middle of the second page;
   * live, the 10th is at the start of a batch of 600 queued at once. */
  if (live)
    {
      es_test_recorder_wait_caught_up (recorder);
      test.end_at = 10;
      es_test_write_n (writer, 600, "Added");
    }
  else
    test.end_at = how == END_CLOSE_IDLE || how == END_CLOSE_THREAD ? 10 : 1500;

  es_test_wait_until (NULL, has_ended, &test);
  if (test.closer != NULL)
    g_thread_join (test.closer);
  es_test_spin (300);

  g_assert_cmpuint (test.n_after_end, ==, 0);
  g_assert_no_error (recorder->error);
  if (how == END_CLOSE || how == END_STOP || how == END_UNREF)
    {
      /* Ended inside the Nth handler: exactly N. */
      g_assert_cmpuint (test.n_events, ==, test.end_at);
      g_assert_cmpuint (test.n_at_end, ==, test.end_at);
    }
  else
    {
      /* Ended mid-replay (or mid-batch): some events were never emitted. */
      g_assert_cmpuint (test.n_events, >=, test.end_at);
      g_assert_cmpuint (test.n_events, <, live ? 600 : END_N_EVENTS);
    }
  g_assert_true (inactive_notified);

  if (how == END_UNREF)
    {
      /* Dropping the last reference in a handler also freed it. */
      g_assert_null (weak);
    }
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
  static const EndHow hows[] = { END_STOP, END_UNREF, END_CLOSE };

  g_test_summary ("No event follows es_watch_stop(), dropping the last reference or "
                  "closing the factory in an event handler, during the replay or in a "
                  "live batch, on a stream and on @all");
  if (!fixture_require_notifier (fixture))
    return;

  /* The factory closes in the last round only. */
  for (guint i = 0; i < G_N_ELEMENTS (hows); i++)
    for (guint live = 0; live <= 1; live++)
      {
        if (hows[i] == END_CLOSE)
          {
            if (live)
              continue;
            run_end_test (fixture, ES_ALL_STREAM, hows[i], FALSE);
            return;
          }
        run_end_test (fixture, "cart-1", hows[i], live);
        run_end_test (fixture, ES_ALL_STREAM, hows[i], live);
      }
}

static void
test_close_in_handler_stream (Fixture       *fixture,
                              gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory in an event handler of a stream's "
                  "watch, mid-replay");
  if (!fixture_require_notifier (fixture))
    return;

  run_end_test (fixture, "cart-1", END_CLOSE, FALSE);
}

static void
test_close_in_handler_live (Fixture       *fixture,
                            gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory in an event handler of a live batch");
  if (!fixture_require_notifier (fixture))
    return;

  run_end_test (fixture, ES_ALL_STREAM, END_CLOSE, TRUE);
}

static void
test_close_in_idle (Fixture       *fixture,
                    gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory from an idle mid-replay");
  if (!fixture_require_notifier (fixture))
    return;

  run_end_test (fixture, ES_ALL_STREAM, END_CLOSE_IDLE, FALSE);
}

static void
test_close_in_idle_stream (Fixture       *fixture,
                           gconstpointer  data)
{
  g_test_summary ("No event follows closing the factory from an idle mid-replay of a stream");
  if (!fixture_require_notifier (fixture))
    return;

  run_end_test (fixture, "cart-1", END_CLOSE_IDLE, FALSE);
}

static void
test_close_in_thread (Fixture       *fixture,
                      gconstpointer  data)
{
  g_test_summary ("No event begins after es_stream_factory_close() returned in another thread");
  if (!fixture_require_notifier (fixture))
    return;

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
  g_autoptr(EsStreamFactory) other_factory = NULL;
  g_autoptr(EsStream) stream = open_stream (fixture, "race");
  g_autoptr(EsStream) all = open_stream (fixture, ES_ALL_STREAM);
  g_autoptr(EsStream) other = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Every event committed after es_stream_watch (-1) returned is emitted, "
                  "once, when another handle writes it at once");
  if (!fixture_require_notifier (fixture))
    return;

  /* Another handle: a factory of its own on the same data where the
   * backend has one (a file, a server); else another stream object of the
   * same factory. */
  other_factory = fixture_open_other_factory (fixture);
  other = es_test_open_stream (other_factory != NULL ? other_factory : fixture->factory,
                               "race");

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

      es_test_wait_until (NULL, both_counted, counts);
      /* Whatever is already queued runs: a duplicate would show. */
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_assert_cmpuint (counts[0].n, ==, 1);
      g_assert_cmpuint (counts[1].n, ==, 1);
      g_assert_cmpint (counts[0].position, ==, round + 1);
      g_assert_cmpint (counts[1].position, ==, round + 1);
      g_assert_true (es_watch_get_active (watch));
      es_watch_stop (watch);
      es_watch_stop (all_watch);
    }

  g_clear_object (&other);
  if (other_factory != NULL)
    es_test_factory_close_and_free (g_steal_pointer (&other_factory));
}

void
add_watch_tests (void)
{
  add_test ("watch/replay-then-live/stream", test_replay_then_live_stream);
  add_test ("watch/replay-then-live/all", test_replay_then_live_all);
  add_test ("watch/after-version", test_after_version);
  add_test ("watch/no-gap-no-duplicate", test_no_gap_no_duplicate);
  add_test ("watch/live-only", test_live_only);
  add_test ("watch/stop", test_stop);
  add_test ("watch/unref-stops", test_unref_stops);
  add_test ("watch/close-stops", test_close_stops);
  add_test ("watch/bad-version", test_bad_version);
  add_test ("watch/thread-default-context", test_thread_default_context);
  add_test ("watch/end-in-handler", test_end_in_handler);
  add_test ("watch/close-in-handler-stream", test_close_in_handler_stream);
  add_test ("watch/close-in-handler-live", test_close_in_handler_live);
  add_test ("watch/close-in-idle", test_close_in_idle);
  add_test ("watch/close-in-idle-stream", test_close_in_idle_stream);
  add_test ("watch/close-in-thread", test_close_in_thread);
  add_test ("watch/minus-one-race", test_minus_one_race);
}
