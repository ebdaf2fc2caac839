/* test-conformance-subscription.c: durable subscriptions (issue 17), on
 * every backend of the conformance runner (test-conformance.c selects it
 * with --backend): resuming, start modes, filters, checkpoint batches by
 * count and by delay, manual acknowledgement, states saved with the
 * checkpoint, one consumer at a time, management, deleted streams and bad
 * input.
 *
 * Written against the public API only. After each operation the test reads
 * what is stored (es_stream_factory_get_subscription_info(), listings)
 * rather than trusting the subscription's own properties. Nothing waits on
 * the clock: tests wait for a signal or a notification, and the one that
 * checks that a waiting start has not completed yet keeps the first
 * holder's name held all along.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "test-conformance.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* What a subscription emitted. */
typedef struct
{
  EsSubscription *subscription;   /* (unowned) */
  GPtrArray      *events;         /* (element-type EsStoredEvent) */
  guint           caught_up;
  guint           n_events_at_caught_up;
  GError         *error;
  gboolean        active_at_error;
  guint           checkpoint_notifies;
  gint64          stop_at;        /* stop from the handler at this position, 0: never */
} Rec;

static gint64
position_of (Rec           *rec,
             EsStoredEvent *event)
{
  return g_str_equal (es_subscription_get_stream_id (rec->subscription), ES_ALL_STREAM)
         ? es_stored_event_get_sequence_id (event)
         : es_stored_event_get_version (event);
}

static void
rec_on_event (EsSubscription *subscription,
              EsStoredEvent  *event,
              gpointer        user_data)
{
  Rec *rec = user_data;

  g_ptr_array_add (rec->events, g_object_ref (event));
  if (rec->stop_at != 0 && position_of (rec, event) == rec->stop_at)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (es_subscription_stop (subscription, NULL, &error));
      g_assert_no_error (error);
    }
}

static void
rec_on_caught_up (EsSubscription *subscription,
                  gpointer        user_data)
{
  Rec *rec = user_data;

  rec->caught_up++;
  rec->n_events_at_caught_up = rec->events->len;
}

static void
rec_on_error (EsSubscription *subscription,
              const GError   *error,
              gpointer        user_data)
{
  Rec *rec = user_data;

  g_assert_null (rec->error);
  rec->error = g_error_copy (error);
  rec->active_at_error = es_subscription_get_active (subscription);
}

static void
rec_on_checkpoint (GObject    *object,
                   GParamSpec *pspec,
                   gpointer    user_data)
{
  Rec *rec = user_data;

  rec->checkpoint_notifies++;
}

static Rec *
rec_new (EsSubscription *subscription)
{
  Rec *rec = g_new0 (Rec, 1);

  rec->subscription = subscription;
  rec->events = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (subscription, "event", G_CALLBACK (rec_on_event), rec);
  g_signal_connect (subscription, "caught-up", G_CALLBACK (rec_on_caught_up), rec);
  g_signal_connect (subscription, "error", G_CALLBACK (rec_on_error), rec);
  g_signal_connect (subscription, "notify::checkpoint", G_CALLBACK (rec_on_checkpoint), rec);
  return rec;
}

static void
rec_free (Rec *rec)
{
  if (rec->subscription != NULL)
    g_signal_handlers_disconnect_by_data (rec->subscription, rec);
  g_ptr_array_unref (rec->events);
  g_clear_error (&rec->error);
  g_free (rec);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Rec, rec_free)

typedef struct
{
  Rec   *rec;
  guint  n;
} WaitEvents;

static gboolean
has_events (gpointer data)
{
  WaitEvents *w = data;

  return w->rec->events->len >= w->n || w->rec->error != NULL;
}

static void
rec_wait_events (Rec   *rec,
                 guint  n)
{
  WaitEvents w = { rec, n };

  es_test_wait_until (NULL, has_events, &w);
  g_assert_no_error (rec->error);
  g_assert_cmpuint (rec->events->len, ==, n);
}

static gboolean
is_caught_up (gpointer data)
{
  Rec *rec = data;

  return rec->caught_up > 0 || rec->error != NULL;
}

static void
rec_wait_caught_up (Rec *rec)
{
  es_test_wait_until (NULL, is_caught_up, rec);
  g_assert_no_error (rec->error);
}

static gboolean
has_error (gpointer data)
{
  Rec *rec = data;

  return rec->error != NULL;
}

/* "1,2,3" of the positions emitted. */
static char *
rec_describe (Rec *rec)
{
  g_autoptr(GString) s = g_string_new (NULL);

  for (guint i = 0; i < rec->events->len; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i > 0 ? "," : "",
                            position_of (rec, g_ptr_array_index (rec->events, i)));
  return g_string_free (g_steal_pointer (&s), FALSE);
}

#define assert_emitted(rec, expected) \
  G_STMT_START { \
    g_autofree char *_got = rec_describe (rec); \
    g_assert_cmpstr (_got, ==, (expected)); \
  } G_STMT_END

/* A subscription with the delay off, so that only batches, flush and stop
 * store checkpoints: deterministic. */
static EsSubscription *
sub_new (EsStreamFactory     *factory,
         const char          *name,
         const char          *stream_id,
         EsEventFilter       *filter,
         EsSubscriptionFlags  flags)
{
  EsSubscription *subscription = es_subscription_new (factory, name, stream_id, filter, flags);

  es_subscription_set_checkpoint_delay (subscription, 0);
  return subscription;
}

static void
start_ok (EsSubscription *subscription)
{
  g_autoptr(GError) error = NULL;

  ES_TEST_ASSERT_OK (es_subscription_start (subscription, NULL, &error));
  g_assert_true (es_subscription_get_active (subscription));
}

static void
stop_ok (EsSubscription *subscription)
{
  g_autoptr(GError) error = NULL;

  ES_TEST_ASSERT_OK (es_subscription_stop (subscription, NULL, &error));
  g_assert_false (es_subscription_get_active (subscription));
}

static void
write_to (Fixture    *f,
          const char *stream_id,
          guint       n,
          const char *event_type)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);

  es_test_write_n (stream, n, event_type);
}

/* The stored subscription; asserts it exists. */
static EsSubscriptionInfo *
info_ok (EsStreamFactory *factory,
         const char      *name)
{
  g_autoptr(GError) error = NULL;
  EsSubscriptionInfo *info = es_stream_factory_get_subscription_info (factory, name, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (info);
  g_assert_cmpstr (es_subscription_info_get_name (info), ==, name);
  return info;
}

static gint64
stored_checkpoint (EsStreamFactory *factory,
                   const char      *name)
{
  g_autoptr(EsSubscriptionInfo) info = info_ok (factory, name);

  return es_subscription_info_get_checkpoint (info);
}

static void
assert_not_stored (EsStreamFactory *factory,
                   const char      *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSubscriptionInfo) info = es_stream_factory_get_subscription_info (factory, name,
                                                                              NULL, &error);

  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_assert_null (info);
}

static guint
n_stored (EsStreamFactory *factory)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = es_stream_factory_list_subscriptions (factory, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (list);
  return list->len;
}

typedef struct
{
  EsSubscription *subscription;
  gint64          checkpoint;
} WaitCheckpoint;

static gboolean
checkpoint_reached (gpointer data)
{
  WaitCheckpoint *w = data;

  return es_subscription_get_checkpoint (w->subscription) >= w->checkpoint;
}

static void
wait_checkpoint (EsSubscription *subscription,
                 gint64          checkpoint)
{
  WaitCheckpoint w = { subscription, checkpoint };

  es_test_wait_until (NULL, checkpoint_reached, &w);
  g_assert_cmpint (es_subscription_get_checkpoint (subscription), ==, checkpoint);
}

static gboolean
result_ready (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

/* ------------------------------------------------------------------ */
/* Resuming                                                            */
/* ------------------------------------------------------------------ */

/* Stop, then start a new handle: it resumes right after what was
 * consumed, with no gap and no duplicate. */
static void
test_resume (Fixture       *f,
             gconstpointer  data)
{
  const char *stream_ids[] = { "orders", ES_ALL_STREAM };

  write_to (f, "orders", 10, "Placed");
  write_to (f, "other", 2, "Other");

  for (guint i = 0; i < G_N_ELEMENTS (stream_ids); i++)
    {
      const char *name = i == 0 ? "resume-stream" : "resume-all";
      gint64 head = i == 0 ? 10 : 12 + 5 * (gint64) i;
      g_autoptr(EsSubscription) first = sub_new (f->factory, name, stream_ids[i], NULL, 0);
      g_autoptr(EsSubscription) second = sub_new (f->factory, name, stream_ids[i], NULL, 0);
      g_autoptr(Rec) rec1 = rec_new (first);
      g_autoptr(Rec) rec2 = rec_new (second);
      g_autofree char *expected2 = NULL;

      g_assert_cmpstr (es_subscription_get_stream_id (first), ==, stream_ids[i]);
      es_subscription_set_checkpoint_batch (first, 3);
      start_ok (first);
      rec_wait_events (rec1, head);
      rec_wait_caught_up (rec1);
      g_assert_cmpint (es_subscription_get_position (first), ==, head);
      stop_ok (first);
      g_assert_cmpint (stored_checkpoint (f->factory, name), ==, head);
      g_assert_cmpint (es_subscription_get_checkpoint (first), ==, head);

      write_to (f, "orders", 5, "Placed");

      start_ok (second);
      rec_wait_events (rec2, 5);
      if (i == 0)
        assert_emitted (rec2, "11,12,13,14,15");
      else
        {
          expected2 = g_strdup_printf ("%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
                                       ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT,
                                       head + 1, head + 2, head + 3, head + 4, head + 5);
          assert_emitted (rec2, expected2);
        }
      rec_wait_caught_up (rec2);
      stop_ok (second);
      g_assert_cmpint (stored_checkpoint (f->factory, name), ==, head + 5);
    }
}

/* The same handle may be started again once stopped; a second start of a
 * started handle fails. */
static void
test_restart_same_handle (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "again", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);
  g_autoptr(GError) error = NULL;

  write_to (f, "s", 3, "E");
  start_ok (sub);
  g_assert_false (es_subscription_start (sub, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  rec_wait_events (rec, 3);
  stop_ok (sub);
  /* Stopping twice is harmless. */
  stop_ok (sub);

  write_to (f, "s", 2, "E");
  start_ok (sub);
  rec_wait_events (rec, 5);
  assert_emitted (rec, "1,2,3,4,5");
  stop_ok (sub);
  g_assert_cmpint (stored_checkpoint (f->factory, "again"), ==, 5);
}

/* Dropping a started handle releases the name without storing what is
 * pending: those events come again. */
static void
test_dispose_without_stop (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(EsSubscription) second = NULL;
  g_autoptr(Rec) rec2 = NULL;
  EsSubscription *first = sub_new (f->factory, "dropped", "s", NULL, 0);
  Rec *rec1 = rec_new (first);

  write_to (f, "s", 4, "E");
  es_subscription_set_checkpoint_batch (first, 100);
  start_ok (first);
  rec_wait_events (rec1, 4);
  rec1->subscription = NULL;
  rec_free (rec1);
  g_object_unref (first);
  g_assert_cmpint (stored_checkpoint (f->factory, "dropped"), ==, 0);

  /* Released: a new handle is not BUSY, and gets everything again. */
  second = sub_new (f->factory, "dropped", "s", NULL, 0);
  rec2 = rec_new (second);
  start_ok (second);
  rec_wait_events (rec2, 4);
  assert_emitted (rec2, "1,2,3,4");
  stop_ok (second);
}

/* A handler that stops the subscription: the event in progress is not
 * consumed, the next start emits it again. */
static void
test_stop_from_handler (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(EsSubscription) first = sub_new (f->factory, "handler-stop", "s", NULL, 0);
  g_autoptr(EsSubscription) second = sub_new (f->factory, "handler-stop", "s", NULL, 0);
  g_autoptr(Rec) rec1 = rec_new (first);
  g_autoptr(Rec) rec2 = rec_new (second);

  write_to (f, "s", 6, "E");
  rec1->stop_at = 3;
  start_ok (first);
  rec_wait_events (rec1, 3);
  g_assert_false (es_subscription_get_active (first));
  g_assert_cmpint (stored_checkpoint (f->factory, "handler-stop"), ==, 2);
  /* Nothing more after the stop, even with a main loop turning. */
  es_test_spin (20);
  g_assert_cmpuint (rec1->events->len, ==, 3);

  start_ok (second);
  rec_wait_events (rec2, 4);
  assert_emitted (rec2, "3,4,5,6");
  stop_ok (second);
}

/* ------------------------------------------------------------------ */
/* Start modes                                                         */
/* ------------------------------------------------------------------ */

static void
test_start_beginning (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "from-beginning", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);
  g_autoptr(EsSubscriptionInfo) info = NULL;

  write_to (f, "s", 5, "E");
  g_assert_cmpint (es_subscription_get_start_from (sub), ==, ES_SUBSCRIPTION_START_BEGINNING);
  assert_not_stored (f->factory, "from-beginning");
  start_ok (sub);
  /* Stored before start returned. */
  info = info_ok (f->factory, "from-beginning");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 0);
  g_assert_cmpstr (es_subscription_info_get_stream_id (info), ==, "s");
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 5);
  g_assert_null (es_subscription_info_get_state (info));
  g_assert_cmpint (es_subscription_get_lag (sub), ==, 5);
  rec_wait_events (rec, 5);
  assert_emitted (rec, "1,2,3,4,5");
  stop_ok (sub);
}

static void
test_start_end (Fixture       *f,
                gconstpointer  data)
{
  const char *stream_ids[] = { "s", ES_ALL_STREAM };

  write_to (f, "s", 5, "E");
  write_to (f, "t", 2, "E");

  for (guint i = 0; i < G_N_ELEMENTS (stream_ids); i++)
    {
      const char *name = i == 0 ? "from-end-stream" : "from-end-all";
      EsSubscription *sub = sub_new (f->factory, name, stream_ids[i], NULL, 0);
      Rec *rec = rec_new (sub);
      g_autoptr(EsSubscription) again = NULL;
      g_autoptr(Rec) rec_again = NULL;
      g_autoptr(EsStreamInfo) head = NULL;
      g_autoptr(GError) error = NULL;
      gint64 start;

      head = es_stream_factory_get_stream_info (f->factory, i == 0 ? "s" : ES_ALL_STREAM,
                                                NULL, &error);
      g_assert_no_error (error);
      start = es_stream_info_get_current_version (head);

      es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_END);
      start_ok (sub);
      /* The place is stored before start returns... */
      g_assert_cmpint (stored_checkpoint (f->factory, name), ==, start);
      rec_wait_caught_up (rec);
      g_assert_cmpuint (rec->events->len, ==, 0);

      /* ... so that a process that dies before its first save (here:
       * dropped without stop) keeps it. */
      rec->subscription = NULL;
      rec_free (rec);
      g_object_unref (sub);

      write_to (f, "s", 2, "Later");
      again = sub_new (f->factory, name, stream_ids[i], NULL, 0);
      rec_again = rec_new (again);
      /* Ignored once stored. */
      es_subscription_set_start_from (again, ES_SUBSCRIPTION_START_BEGINNING);
      start_ok (again);
      rec_wait_events (rec_again, 2);
      g_assert_cmpint (position_of (rec_again, g_ptr_array_index (rec_again->events, 0)), ==,
                       start + 1);
      g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (rec_again->events, 1)),
                       ==, "Later");
      stop_ok (again);
      g_assert_cmpint (stored_checkpoint (f->factory, name), ==, start + 2);
    }
}

static void
test_start_position (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "from-position", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);

  write_to (f, "s", 5, "E");
  es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_POSITION);
  es_subscription_set_start_position (sub, 3);
  g_assert_cmpint (es_subscription_get_start_position (sub), ==, 3);
  start_ok (sub);
  g_assert_cmpint (stored_checkpoint (f->factory, "from-position"), ==, 3);
  g_assert_cmpint (es_subscription_get_checkpoint (sub), ==, 3);
  rec_wait_events (rec, 2);
  assert_emitted (rec, "4,5");
  stop_ok (sub);
  g_assert_cmpint (stored_checkpoint (f->factory, "from-position"), ==, 5);
}

/* ------------------------------------------------------------------ */
/* Filters                                                             */
/* ------------------------------------------------------------------ */

static void
test_filter (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(EsSubscription) sub = NULL;
  g_autoptr(EsSubscription) again = NULL;
  g_autoptr(Rec) rec = NULL;
  g_autoptr(Rec) rec_again = NULL;

  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("Match"));
  sub = sub_new (f->factory, "filtered", ES_ALL_STREAM, filter, 0);
  rec = rec_new (sub);

  write_to (f, "a", 2, "Other");   /* 1, 2 */
  write_to (f, "b", 1, "Match");   /* 3 */
  write_to (f, "a", 3, "Other");   /* 4, 5, 6 */
  start_ok (sub);
  rec_wait_caught_up (rec);
  assert_emitted (rec, "3");
  /* Skipped events advance the position... */
  g_assert_cmpint (es_subscription_get_position (sub), ==, 6);
  stop_ok (sub);
  /* ... and the checkpoint: the next start does not read them again. */
  g_assert_cmpint (stored_checkpoint (f->factory, "filtered"), ==, 6);

  write_to (f, "a", 1, "Other");   /* 7 */
  write_to (f, "c", 1, "Match");   /* 8 */
  again = sub_new (f->factory, "filtered", ES_ALL_STREAM, filter, 0);
  rec_again = rec_new (again);
  start_ok (again);
  rec_wait_events (rec_again, 1);
  assert_emitted (rec_again, "8");
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (rec_again->events, 0)), ==, "c");
  stop_ok (again);
  g_assert_cmpint (stored_checkpoint (f->factory, "filtered"), ==, 8);
}

/* ------------------------------------------------------------------ */
/* Batching                                                            */
/* ------------------------------------------------------------------ */

static void
test_batch_count (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "batched", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);
  g_autoptr(GError) error = NULL;

  g_assert_cmpuint (es_subscription_get_checkpoint_batch (sub), ==, 100);
  es_subscription_set_checkpoint_batch (sub, 10);
  write_to (f, "s", 25, "E");
  start_ok (sub);
  rec->checkpoint_notifies = 0;
  rec_wait_events (rec, 25);
  /* Two batches full: 10 then 20, each stored before the next event;
   * 21..25 pending. */
  wait_checkpoint (sub, 20);
  g_assert_cmpint (stored_checkpoint (f->factory, "batched"), ==, 20);
  g_assert_cmpuint (rec->checkpoint_notifies, ==, 2);

  ES_TEST_ASSERT_OK (es_subscription_flush (sub, NULL, &error));
  g_assert_cmpint (stored_checkpoint (f->factory, "batched"), ==, 25);
  g_assert_cmpint (es_subscription_get_checkpoint (sub), ==, 25);

  /* Nothing pending: flushing again changes nothing. */
  ES_TEST_ASSERT_OK (es_subscription_flush (sub, NULL, &error));
  g_assert_cmpint (stored_checkpoint (f->factory, "batched"), ==, 25);

  write_to (f, "s", 3, "E");
  rec_wait_events (rec, 28);
  g_assert_cmpint (stored_checkpoint (f->factory, "batched"), ==, 25);
  stop_ok (sub);
  g_assert_cmpint (stored_checkpoint (f->factory, "batched"), ==, 28);
}

static void
test_batch_delay (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = es_subscription_new (f->factory, "delayed", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);

  g_assert_cmpuint (es_subscription_get_checkpoint_delay (sub), ==, 1000);
  es_subscription_set_checkpoint_batch (sub, 1000);
  es_subscription_set_checkpoint_delay (sub, 20);
  write_to (f, "s", 5, "E");
  start_ok (sub);
  rec_wait_events (rec, 5);
  /* No batch fills: the delay stores it. */
  wait_checkpoint (sub, 5);
  g_assert_cmpint (stored_checkpoint (f->factory, "delayed"), ==, 5);

  write_to (f, "s", 2, "E");
  rec_wait_events (rec, 7);
  wait_checkpoint (sub, 7);
  g_assert_cmpint (stored_checkpoint (f->factory, "delayed"), ==, 7);
  stop_ok (sub);
}

/* ------------------------------------------------------------------ */
/* Manual acknowledgement                                              */
/* ------------------------------------------------------------------ */

static void
test_manual_ack (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(EsSubscription) first = sub_new (f->factory, "acked", "s", NULL,
                                             ES_SUBSCRIPTION_FLAGS_MANUAL_ACK);
  g_autoptr(EsSubscription) second = sub_new (f->factory, "acked", "s", NULL,
                                              ES_SUBSCRIPTION_FLAGS_MANUAL_ACK);
  g_autoptr(EsSubscription) third = sub_new (f->factory, "acked", "s", NULL,
                                             ES_SUBSCRIPTION_FLAGS_MANUAL_ACK);
  g_autoptr(Rec) rec1 = rec_new (first);
  g_autoptr(Rec) rec2 = rec_new (second);
  g_autoptr(Rec) rec3 = rec_new (third);

  g_assert_cmpint (es_subscription_get_flags (first), ==, ES_SUBSCRIPTION_FLAGS_MANUAL_ACK);
  write_to (f, "s", 5, "E");
  es_subscription_set_checkpoint_batch (first, 1);
  start_ok (first);
  rec_wait_events (rec1, 5);
  /* Nothing acknowledged: nothing moves, even with a batch of 1. */
  stop_ok (first);
  g_assert_cmpint (stored_checkpoint (f->factory, "acked"), ==, 0);

  es_subscription_set_checkpoint_batch (second, 1);
  start_ok (second);
  rec_wait_events (rec2, 5);
  assert_emitted (rec2, "1,2,3,4,5");
  es_subscription_acknowledge (second, 3);
  wait_checkpoint (second, 3);
  g_assert_cmpint (stored_checkpoint (f->factory, "acked"), ==, 3);
  /* An older position changes nothing. */
  es_subscription_acknowledge (second, 2);
  stop_ok (second);
  g_assert_cmpint (stored_checkpoint (f->factory, "acked"), ==, 3);

  start_ok (third);
  rec_wait_events (rec3, 2);
  assert_emitted (rec3, "4,5");
  /* Batched: below the batch, only stop stores it. */
  es_subscription_acknowledge (third, 5);
  g_assert_cmpint (stored_checkpoint (f->factory, "acked"), ==, 3);
  stop_ok (third);
  g_assert_cmpint (stored_checkpoint (f->factory, "acked"), ==, 5);
}

/* ------------------------------------------------------------------ */
/* States                                                              */
/* ------------------------------------------------------------------ */

static void
assert_bytes (GBytes     *bytes,
              const char *expected)
{
  g_assert_nonnull (bytes);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                   expected, strlen (expected));
}

static void
test_keep_state (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(EsSubscription) first = sub_new (f->factory, "folded", "s", NULL,
                                             ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  g_autoptr(EsSubscription) second = sub_new (f->factory, "folded", "s", NULL,
                                              ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  g_autoptr(Rec) rec1 = rec_new (first);
  g_autoptr(Rec) rec2 = rec_new (second);
  g_autoptr(GBytes) state = g_bytes_new_static ("sum=6", 5);
  g_autoptr(GBytes) later = g_bytes_new_static ("sum=15", 6);
  g_autoptr(EsSubscriptionInfo) info = NULL;
  g_autoptr(GError) error = NULL;

  write_to (f, "s", 5, "E");
  es_subscription_set_checkpoint_batch (first, 1);
  start_ok (first);
  g_assert_null (es_subscription_get_state (first));
  rec_wait_events (rec1, 5);
  /* Only save_state moves the checkpoint, batch of 1 or not. */
  g_assert_cmpint (stored_checkpoint (f->factory, "folded"), ==, 0);
  ES_TEST_ASSERT_OK (es_subscription_flush (first, NULL, &error));
  g_assert_cmpint (stored_checkpoint (f->factory, "folded"), ==, 0);

  /* Out of range: nothing stored. */
  g_assert_false (es_subscription_save_state (first, state, 6, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "6"));
  g_clear_error (&error);

  ES_TEST_ASSERT_OK (es_subscription_save_state (first, state, 3, NULL, &error));
  g_assert_cmpint (es_subscription_get_checkpoint (first), ==, 3);
  assert_bytes (es_subscription_get_state (first), "sum=6");
  /* Both read back together. */
  info = info_ok (f->factory, "folded");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 3);
  assert_bytes (es_subscription_info_get_state (info), "sum=6");
  g_clear_object (&info);

  g_assert_false (es_subscription_save_state (first, later, 2, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  info = info_ok (f->factory, "folded");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 3);
  assert_bytes (es_subscription_info_get_state (info), "sum=6");
  g_clear_object (&info);

  /* Stop does not store what is not saved. */
  stop_ok (first);
  g_assert_cmpint (stored_checkpoint (f->factory, "folded"), ==, 3);
  g_assert_false (es_subscription_save_state (first, later, 3, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_FAILED);
  g_clear_error (&error);

  start_ok (second);
  assert_bytes (es_subscription_get_state (second), "sum=6");
  g_assert_cmpint (es_subscription_get_checkpoint (second), ==, 3);
  rec_wait_events (rec2, 2);
  assert_emitted (rec2, "4,5");
  ES_TEST_ASSERT_OK (es_subscription_save_state (second, later, 5, NULL, &error));
  /* NULL keeps the state: only the checkpoint (not moving here). */
  ES_TEST_ASSERT_OK (es_subscription_save_state (second, NULL, 5, NULL, &error));
  stop_ok (second);
  info = info_ok (f->factory, "folded");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 5);
  assert_bytes (es_subscription_info_get_state (info), "sum=15");
}

/* The natural way to fold: inside the handler, apply the event, then
 * save the state with the event's own position (or acknowledge it). */
typedef struct
{
  guint   n_events;
  gint64  sum;
} Fold;

static void
fold_and_save (EsSubscription *subscription,
               EsStoredEvent  *event,
               gpointer        user_data)
{
  Fold *fold = user_data;
  g_autoptr(GBytes) state = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version = es_stored_event_get_version (event);
  char *text;

  fold->n_events++;
  fold->sum += version;
  text = g_strdup_printf ("sum=%" G_GINT64_FORMAT, fold->sum);
  state = g_bytes_new_take (text, strlen (text));
  g_assert_true (es_subscription_save_state (subscription, state, version, NULL, &error));
  g_assert_no_error (error);
}

static void
acknowledge_in_handler (EsSubscription *subscription,
                        EsStoredEvent  *event,
                        gpointer        user_data)
{
  guint *n_events = user_data;

  (*n_events)++;
  es_subscription_acknowledge (subscription, es_stored_event_get_version (event));
}

static void
test_save_in_handler (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(EsSubscription) folded = sub_new (f->factory, "fold-in-handler", "s", NULL,
                                              ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  g_autoptr(EsSubscription) acked = sub_new (f->factory, "ack-in-handler", "s", NULL,
                                             ES_SUBSCRIPTION_FLAGS_MANUAL_ACK);
  g_autoptr(EsSubscriptionInfo) info = NULL;
  Fold fold = { 0, };
  guint n_acked = 0;

  write_to (f, "s", 4, "E");
  g_signal_connect (folded, "event", G_CALLBACK (fold_and_save), &fold);
  start_ok (folded);
  while (fold.n_events < 4)
    g_main_context_iteration (NULL, TRUE);
  /* Each save stored the state that folds the event being handled. */
  g_assert_cmpint (es_subscription_get_checkpoint (folded), ==, 4);
  stop_ok (folded);
  info = info_ok (f->factory, "fold-in-handler");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 4);
  assert_bytes (es_subscription_info_get_state (info), "sum=10");

  es_subscription_set_checkpoint_batch (acked, 1);
  g_signal_connect (acked, "event", G_CALLBACK (acknowledge_in_handler), &n_acked);
  start_ok (acked);
  while (n_acked < 4)
    g_main_context_iteration (NULL, TRUE);
  stop_ok (acked);
  g_assert_cmpint (stored_checkpoint (f->factory, "ack-in-handler"), ==, 4);
}

/* ------------------------------------------------------------------ */
/* Async calls                                                         */
/* ------------------------------------------------------------------ */

static void
test_async (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "async", "s", NULL,
                                           ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  g_autoptr(EsSubscription) acked = sub_new (f->factory, "async-ack", "s", NULL,
                                             ES_SUBSCRIPTION_FLAGS_NONE);
  g_autoptr(Rec) rec = rec_new (sub);
  g_autoptr(Rec) rec_acked = rec_new (acked);
  g_autoptr(GBytes) state = g_bytes_new_static ("x", 1);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSubscriptionInfo) info = NULL;

  write_to (f, "s", 4, "E");
  es_subscription_start_async (sub, NULL, es_test_store_result_cb, &result);
  g_assert_false (es_subscription_get_active (sub));
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_subscription_start_finish (sub, result, &error));
  g_clear_object (&result);
  g_assert_true (es_subscription_get_active (sub));
  rec_wait_events (rec, 4);

  es_subscription_save_state_async (sub, state, 4, NULL, es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_subscription_save_state_finish (sub, result, &error));
  g_clear_object (&result);
  info = info_ok (f->factory, "async");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 4);
  assert_bytes (es_subscription_info_get_state (info), "x");
  g_clear_object (&info);

  es_subscription_stop_async (sub, NULL, es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_subscription_stop_finish (sub, result, &error));
  g_clear_object (&result);
  g_assert_false (es_subscription_get_active (sub));

  start_ok (acked);
  rec_wait_events (rec_acked, 4);
  es_subscription_flush_async (acked, NULL, es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_subscription_flush_finish (acked, result, &error));
  g_clear_object (&result);
  g_assert_cmpint (stored_checkpoint (f->factory, "async-ack"), ==, 4);
  stop_ok (acked);
}

/* ------------------------------------------------------------------ */
/* One consumer at a time                                              */
/* ------------------------------------------------------------------ */

static void
test_exclusive_same_factory (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(EsSubscription) first = sub_new (f->factory, "exclusive", "s", NULL, 0);
  g_autoptr(EsSubscription) second = sub_new (f->factory, "exclusive", "s", NULL, 0);
  g_autoptr(EsSubscription) third = sub_new (f->factory, "exclusive", "s", NULL, 0);
  g_autoptr(Rec) rec1 = rec_new (first);
  g_autoptr(Rec) rec2 = rec_new (second);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  write_to (f, "s", 3, "E");
  start_ok (first);
  rec_wait_events (rec1, 3);

  /* Waiting would wait for ourselves: BUSY at once, flag or not. */
  g_assert_false (es_subscription_start (second, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "exclusive"));
  g_clear_error (&error);
  g_assert_false (es_subscription_get_active (second));

  es_subscription_start_async (third, NULL, es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  g_assert_false (es_subscription_start_finish (third, result, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  g_clear_object (&result);

  /* Nothing changed for the holder. */
  g_assert_true (es_subscription_get_active (first));
  g_assert_cmpint (stored_checkpoint (f->factory, "exclusive"), ==, 0);
  stop_ok (first);
  g_assert_cmpint (stored_checkpoint (f->factory, "exclusive"), ==, 3);

  /* Released: the second handle starts now. */
  start_ok (second);
  rec_wait_caught_up (rec2);
  g_assert_cmpuint (rec2->events->len, ==, 0);
  stop_ok (second);
}

/* Two factories on one database are two consumers, as two processes
 * would be. */
static void
test_exclusive_two_factories (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(EsStreamFactory) other = fixture_open_other_factory (f);
  g_autoptr(EsSubscription) first = NULL;
  g_autoptr(EsSubscription) failing = NULL;
  g_autoptr(EsSubscription) waiting = NULL;
  g_autoptr(EsSubscription) cancelled = NULL;
  g_autoptr(Rec) rec1 = NULL;
  g_autoptr(Rec) rec_waiting = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GAsyncResult) cancelled_result = NULL;
  g_autoptr(GError) error = NULL;

  if (other == NULL)
    {
      g_test_skip ("An in-process database has no second handle on it");
      return;
    }

  first = sub_new (f->factory, "taken", "s", NULL, 0);
  failing = sub_new (other, "taken", "s", NULL, ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN);
  waiting = sub_new (other, "taken", "s", NULL, 0);
  cancelled = sub_new (other, "taken", "s", NULL, 0);
  rec1 = rec_new (first);
  rec_waiting = rec_new (waiting);

  write_to (f, "s", 4, "E");
  start_ok (first);
  rec_wait_events (rec1, 4);

  g_assert_false (es_subscription_start (failing, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "taken"));
  g_clear_error (&error);
  g_assert_false (es_subscription_get_active (failing));

  /* A wait, cancelled: CANCELLED, and the holder keeps the name. */
  es_subscription_start_async (cancelled, cancellable, es_test_store_result_cb, &cancelled_result);
  es_test_spin (50);
  g_assert_null (cancelled_result);
  g_cancellable_cancel (cancellable);
  es_test_wait_until (NULL, result_ready, &cancelled_result);
  g_assert_false (es_subscription_start_finish (cancelled, cancelled_result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_false (es_subscription_get_active (cancelled));
  g_assert_true (es_subscription_get_active (first));

  /* A wait: it takes over when the holder stops. */
  es_subscription_start_async (waiting, NULL, es_test_store_result_cb, &result);
  es_test_spin (50);
  /* The holder still holds it: the waiter cannot have started. */
  g_assert_null (result);
  g_assert_false (es_subscription_get_active (waiting));
  stop_ok (first);
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_subscription_start_finish (waiting, result, &error));
  g_assert_true (es_subscription_get_active (waiting));
  g_assert_cmpint (es_subscription_get_checkpoint (waiting), ==, 4);

  write_to (f, "s", 1, "After");
  rec_wait_events (rec_waiting, 1);
  assert_emitted (rec_waiting, "5");
  stop_ok (waiting);
  g_assert_cmpint (stored_checkpoint (other, "taken"), ==, 5);
  g_assert_cmpint (stored_checkpoint (f->factory, "taken"), ==, 5);

  /* They hold the factory. */
  g_clear_object (&result);
  g_clear_object (&cancelled_result);
  g_clear_pointer (&rec_waiting, rec_free);
  g_clear_object (&failing);
  g_clear_object (&waiting);
  g_clear_object (&cancelled);
  es_test_factory_close_and_free (g_steal_pointer (&other));
}

/* ------------------------------------------------------------------ */
/* Management                                                          */
/* ------------------------------------------------------------------ */

static void
test_management (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(EsSubscription) a = sub_new (f->factory, "mgmt-a", "s", NULL,
                                         ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  g_autoptr(EsSubscription) b = sub_new (f->factory, "mgmt-b", ES_ALL_STREAM, NULL, 0);
  g_autoptr(EsSubscription) a2 = NULL;
  g_autoptr(Rec) rec_a = rec_new (a);
  g_autoptr(Rec) rec_b = rec_new (b);
  g_autoptr(GBytes) state = g_bytes_new_static ("state", 5);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(EsSubscriptionInfo) info = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  EsSubscriptionInfo *item;

  g_assert_cmpuint (n_stored (f->factory), ==, 0);
  write_to (f, "s", 10, "E");
  write_to (f, "t", 2, "E");

  start_ok (a);
  rec_wait_events (rec_a, 10);
  ES_TEST_ASSERT_OK (es_subscription_save_state (a, state, 4, NULL, &error));
  start_ok (b);
  rec_wait_events (rec_b, 12);

  /* Consumed: reset and delete are refused, nothing changes. */
  g_assert_false (es_stream_factory_reset_subscription (f->factory, "mgmt-a", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_subscription (f->factory, "mgmt-a", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_cmpint (stored_checkpoint (f->factory, "mgmt-a"), ==, 4);

  stop_ok (a);
  stop_ok (b);

  /* Listed in name order with checkpoints and lag, without states. */
  list = es_stream_factory_list_subscriptions (f->factory, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  item = g_ptr_array_index (list, 0);
  g_assert_cmpstr (es_subscription_info_get_name (item), ==, "mgmt-a");
  g_assert_cmpstr (es_subscription_info_get_stream_id (item), ==, "s");
  g_assert_cmpint (es_subscription_info_get_checkpoint (item), ==, 4);
  g_assert_cmpint (es_subscription_info_get_lag (item), ==, 6);
  g_assert_null (es_subscription_info_get_state (item));
  g_assert_cmpint (es_subscription_info_get_updated_usec (item), >, 0);
  item = g_ptr_array_index (list, 1);
  g_assert_cmpstr (es_subscription_info_get_name (item), ==, "mgmt-b");
  g_assert_cmpstr (es_subscription_info_get_stream_id (item), ==, ES_ALL_STREAM);
  g_assert_cmpint (es_subscription_info_get_checkpoint (item), ==, 12);
  g_assert_cmpint (es_subscription_info_get_lag (item), ==, 0);
  g_clear_pointer (&list, g_ptr_array_unref);

  write_to (f, "t", 3, "E");
  list = es_stream_factory_list_subscriptions (f->factory, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_subscription_info_get_lag (g_ptr_array_index (list, 1)), ==, 3);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* The state is read with one subscription. */
  info = info_ok (f->factory, "mgmt-a");
  assert_bytes (es_subscription_info_get_state (info), "state");
  g_clear_object (&info);

  /* Reset backwards: the state goes. */
  ES_TEST_ASSERT_OK (es_stream_factory_reset_subscription (f->factory, "mgmt-a", 1, NULL, &error));
  info = info_ok (f->factory, "mgmt-a");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 1);
  g_assert_null (es_subscription_info_get_state (info));
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 9);
  g_clear_object (&info);

  /* Forwards, asynchronously. */
  es_stream_factory_reset_subscription_async (f->factory, "mgmt-a", 8, NULL,
                                              es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_stream_factory_reset_subscription_finish (f->factory, result, &error));
  g_clear_object (&result);
  g_assert_cmpint (stored_checkpoint (f->factory, "mgmt-a"), ==, 8);

  /* Beyond the head, negative, unknown: refused, nothing changes. */
  g_assert_false (es_stream_factory_reset_subscription (f->factory, "mgmt-a", 11, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "11"));
  g_clear_error (&error);
  g_assert_false (es_stream_factory_reset_subscription (f->factory, "mgmt-a", -1, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_reset_subscription (f->factory, "nobody", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_cmpint (stored_checkpoint (f->factory, "mgmt-a"), ==, 8);
  assert_not_stored (f->factory, "nobody");

  /* The next start resumes after the reset. */
  a2 = sub_new (f->factory, "mgmt-a", "s", NULL, ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  {
    g_autoptr(Rec) rec_a2 = rec_new (a2);

    start_ok (a2);
    g_assert_null (es_subscription_get_state (a2));
    rec_wait_events (rec_a2, 2);
    assert_emitted (rec_a2, "9,10");
    stop_ok (a2);
  }

  /* Asynchronous reads. */
  es_stream_factory_get_subscription_info_async (f->factory, "mgmt-b", NULL,
                                                 es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  info = es_stream_factory_get_subscription_info_finish (f->factory, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 12);
  g_clear_object (&info);
  g_clear_object (&result);

  es_stream_factory_get_subscription_info_async (f->factory, "nobody", NULL,
                                                 es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  info = es_stream_factory_get_subscription_info_finish (f->factory, result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_assert_null (info);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_factory_list_subscriptions_async (f->factory, NULL, es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  list = es_stream_factory_list_subscriptions_finish (f->factory, result, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_clear_pointer (&list, g_ptr_array_unref);
  g_clear_object (&result);

  /* Delete: gone, and a new start begins anew. */
  ES_TEST_ASSERT_OK (es_stream_factory_delete_subscription (f->factory, "mgmt-a", NULL, &error));
  assert_not_stored (f->factory, "mgmt-a");
  g_assert_false (es_stream_factory_delete_subscription (f->factory, "mgmt-a", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_error (&error);

  es_stream_factory_delete_subscription_async (f->factory, "mgmt-b", NULL,
                                               es_test_store_result_cb, &result);
  es_test_wait_until (NULL, result_ready, &result);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_subscription_finish (f->factory, result, &error));
  g_clear_object (&result);
  g_assert_cmpuint (n_stored (f->factory), ==, 0);

  /* Closed: every call says so. */
  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_null (es_stream_factory_list_subscriptions (f->factory, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_null (es_stream_factory_get_subscription_info (f->factory, "mgmt-a", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_reset_subscription (f->factory, "mgmt-a", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_subscription (f->factory, "mgmt-a", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_false (es_subscription_start (a2, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
}

/* Closing the factory stops its subscriptions, storing what is pending. */
static void
test_factory_close (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "closing", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);
  g_autoptr(EsStreamFactory) other = NULL;
  g_autoptr(GError) error = NULL;

  write_to (f, "s", 5, "E");
  start_ok (sub);
  rec_wait_events (rec, 5);
  g_assert_cmpint (stored_checkpoint (f->factory, "closing"), ==, 0);
  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_false (es_subscription_get_active (sub));
  g_assert_cmpint (es_subscription_get_checkpoint (sub), ==, 5);

  other = fixture_open_other_factory (f);
  if (other != NULL)
    {
      g_assert_cmpint (stored_checkpoint (other, "closing"), ==, 5);
      es_test_factory_close_and_free (g_steal_pointer (&other));
    }
}

/* ------------------------------------------------------------------ */
/* Deleted streams, caught-up                                          */
/* ------------------------------------------------------------------ */

static void
test_tombstone (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "doomed", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);
  g_autoptr(GError) error = NULL;

  write_to (f, "s", 3, "E");
  start_ok (sub);
  rec_wait_events (rec, 3);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "s", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  es_test_wait_until (NULL, has_error, rec);
  g_assert_error (rec->error, ES_ERROR, ES_ERROR_STREAM_DELETED);
  g_assert_nonnull (strstr (rec->error->message, "s"));
  g_assert_true (rec->active_at_error);
  g_assert_false (es_subscription_get_active (sub));
  g_assert_cmpuint (rec->events->len, ==, 3);

  /* Released: management is not BUSY. */
  ES_TEST_ASSERT_OK (es_stream_factory_reset_subscription (f->factory, "doomed", 0, NULL, &error));
}

static void
test_caught_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(EsSubscription) sub = sub_new (f->factory, "live", "s", NULL, 0);
  g_autoptr(Rec) rec = rec_new (sub);

  write_to (f, "s", 3, "E");
  start_ok (sub);
  g_assert_false (es_subscription_get_caught_up (sub));
  rec_wait_caught_up (rec);
  g_assert_cmpuint (rec->caught_up, ==, 1);
  g_assert_cmpuint (rec->n_events_at_caught_up, ==, 3);
  g_assert_true (es_subscription_get_caught_up (sub));
  g_assert_cmpint (es_subscription_get_lag (sub), ==, 0);

  write_to (f, "s", 2, "Live");
  rec_wait_events (rec, 5);
  assert_emitted (rec, "1,2,3,4,5");
  g_assert_cmpuint (rec->caught_up, ==, 1);
  g_assert_cmpint (es_subscription_get_position (sub), ==, 5);
  stop_ok (sub);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

static void
assert_start_fails (EsSubscription *sub,
                    const char     *named)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (es_subscription_start (sub, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  if (named != NULL)
    g_assert_nonnull (strstr (error->message, named));
  g_assert_false (es_subscription_get_active (sub));
}

static void
test_bad_input (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *long_name = g_strnfill (ES_SUBSCRIPTION_NAME_MAX_BYTES + 1, 'n');
  g_autofree char *longest = g_strnfill (ES_SUBSCRIPTION_NAME_MAX_BYTES, 'n');
  g_autoptr(EsEventFilter) bad_filter = es_event_filter_new ();
  g_autoptr(GError) error = NULL;

  write_to (f, "s", 3, "E");
  write_to (f, "t", 1, "E");

  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "", "s", NULL, 0);

    assert_start_fails (sub, NULL);
  }
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, long_name, "s", NULL, 0);

    assert_start_fails (sub, "257");
  }
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "bad\xff", "s", NULL, 0);

    assert_start_fails (sub, "bad");
  }
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "bad-stream", "", NULL, 0);

    assert_start_fails (sub, NULL);
  }

  es_event_filter_add_like (bad_filter, "version", "1%");
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "bad-filter", "s", bad_filter, 0);

    assert_start_fails (sub, "version");
  }
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "too-far", "s", NULL, 0);

    es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_POSITION);
    es_subscription_set_start_position (sub, 4);
    assert_start_fails (sub, "4");
  }
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "too-far-all", NULL, NULL, 0);

    g_assert_cmpstr (es_subscription_get_stream_id (sub), ==, ES_ALL_STREAM);
    es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_POSITION);
    es_subscription_set_start_position (sub, 5);
    assert_start_fails (sub, "5");
  }
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "negative", "s", NULL, 0);

    es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_POSITION);
    es_subscription_set_start_position (sub, -1);
    assert_start_fails (sub, "-1");
  }
  /* Nothing was stored for any of them. */
  g_assert_cmpuint (n_stored (f->factory), ==, 0);
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, longest, "s", NULL, 0);

    es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_END);
    start_ok (sub);
    stop_ok (sub);
    g_assert_cmpint (stored_checkpoint (f->factory, longest), ==, 3);
  }

  /* A name stored for another stream. */
  {
    g_autoptr(EsSubscription) sub = sub_new (f->factory, "mine", "s", NULL, 0);
    g_autoptr(EsSubscription) wrong = sub_new (f->factory, "mine", "t", NULL, 0);
    g_autoptr(EsSubscription) wrong_all = sub_new (f->factory, "mine", ES_ALL_STREAM, NULL, 0);
    g_autoptr(EsSubscription) right = sub_new (f->factory, "mine", "s", NULL, 0);

    es_subscription_set_start_from (sub, ES_SUBSCRIPTION_START_END);
    start_ok (sub);
    stop_ok (sub);
    assert_start_fails (wrong, "'t'");
    assert_start_fails (wrong_all, ES_ALL_STREAM);
    {
      g_autoptr(EsSubscriptionInfo) info = info_ok (f->factory, "mine");

      g_assert_cmpstr (es_subscription_info_get_stream_id (info), ==, "s");
      g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 3);
    }
    /* Released after the failure. */
    start_ok (right);
    stop_ok (right);
  }

  /* Management calls check names too. */
  g_assert_null (es_stream_factory_get_subscription_info (f->factory, "", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_subscription (f->factory, long_name, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

void
add_subscription_tests (void)
{
  add_test ("subscription/resume", test_resume);
  add_test ("subscription/restart-same-handle", test_restart_same_handle);
  add_test ("subscription/dispose-without-stop", test_dispose_without_stop);
  add_test ("subscription/stop-from-handler", test_stop_from_handler);
  add_test ("subscription/start/beginning", test_start_beginning);
  add_test ("subscription/start/end", test_start_end);
  add_test ("subscription/start/position", test_start_position);
  add_test ("subscription/filter", test_filter);
  add_test ("subscription/batch/count", test_batch_count);
  add_test ("subscription/batch/delay", test_batch_delay);
  add_test ("subscription/manual-ack", test_manual_ack);
  add_test ("subscription/keep-state", test_keep_state);
  add_test ("subscription/save-in-handler", test_save_in_handler);
  add_test ("subscription/async", test_async);
  add_test ("subscription/exclusive/same-factory", test_exclusive_same_factory);
  add_test ("subscription/exclusive/two-factories", test_exclusive_two_factories);
  add_test ("subscription/management", test_management);
  add_test ("subscription/factory-close", test_factory_close);
  add_test ("subscription/tombstone", test_tombstone);
  add_test ("subscription/caught-up", test_caught_up);
  add_test ("subscription/bad-input", test_bad_input);
}
