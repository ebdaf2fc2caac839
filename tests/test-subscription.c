/* test-subscription.c: what EsSubscription does that the conformance
 * tests cannot see through the public API: the checkpoint-delay timer
 * exists only while something is pending, saves are counted and
 * coalesced, position notifications are coalesced per dispatch, a flush
 * with nothing pending stores nothing.
 *
 * On the in-memory backend, with the library's internals
 * (_es_subscription_has_timer(), _es_subscription_get_n_saves()).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-glib/es-private.h"

#include "es-memory-storage.h"
#include "es-test-utils.h"

static EsStreamFactory *
memory_factory (void)
{
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  g_autoptr(EsNotifier) notifier = es_test_memory_notifier_new (storage);
  g_autoptr(GError) error = NULL;

  g_assert_true (es_notifier_start (notifier, NULL, &error));
  g_assert_no_error (error);
  return es_stream_factory_new (ES_STORAGE_HANDLE (storage), notifier);
}

static void
write_n (EsStreamFactory *factory,
         guint            n)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "s");

  es_test_write_n (stream, n, "E");
}

typedef struct
{
  guint events;
  guint position_notifies;
  guint caught_up;
} Counts;

static void
on_event (EsSubscription *subscription,
          EsStoredEvent  *event,
          Counts         *counts)
{
  counts->events++;
}

static void
on_position (GObject    *object,
             GParamSpec *pspec,
             Counts     *counts)
{
  counts->position_notifies++;
}

static void
on_caught_up (EsSubscription *subscription,
              Counts         *counts)
{
  counts->caught_up++;
}

static EsSubscription *
start_counting (EsStreamFactory *factory,
                guint            batch,
                guint            delay,
                Counts          *counts)
{
  EsSubscription *sub = es_subscription_new (factory, "counted", "s", NULL, 0);
  g_autoptr(GError) error = NULL;

  es_subscription_set_checkpoint_batch (sub, batch);
  es_subscription_set_checkpoint_delay (sub, delay);
  g_signal_connect (sub, "event", G_CALLBACK (on_event), counts);
  g_signal_connect (sub, "notify::position", G_CALLBACK (on_position), counts);
  g_signal_connect (sub, "caught-up", G_CALLBACK (on_caught_up), counts);
  g_assert_true (es_subscription_start (sub, NULL, &error));
  g_assert_no_error (error);
  return sub;
}

static gboolean
events_reached (gpointer data)
{
  Counts *counts = data;

  return counts->events >= 500;
}

typedef struct
{
  EsSubscription *sub;
  gint64          checkpoint;
} WaitCheckpoint;

static gboolean
checkpoint_reached (gpointer data)
{
  WaitCheckpoint *w = data;

  return es_subscription_get_checkpoint (w->sub) >= w->checkpoint;
}

static gboolean
caught_up (gpointer data)
{
  return ((Counts *) data)->caught_up > 0;
}

/* The delay timer: none while idle, one while something is pending, none
 * once it is stored. */
static void
test_timer_only_while_pending (void)
{
  g_autoptr(EsStreamFactory) factory = memory_factory ();
  g_autoptr(EsSubscription) sub = NULL;
  g_autoptr(GError) error = NULL;
  Counts counts = { 0 };

  /* A long delay: nothing is stored by it during the test. */
  sub = start_counting (factory, 1000, 3600 * 1000, &counts);
  es_test_wait_until (NULL, caught_up, &counts);
  g_assert_false (_es_subscription_has_timer (sub));
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), ==, 0);

  write_n (factory, 3);
  while (counts.events < 3)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (_es_subscription_has_timer (sub));

  g_assert_true (es_subscription_flush (sub, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (_es_subscription_has_timer (sub));
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), ==, 1);
  g_assert_cmpint (es_subscription_get_checkpoint (sub), ==, 3);

  /* Nothing pending: no save, no timer. */
  g_assert_true (es_subscription_flush (sub, NULL, &error));
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), ==, 1);
  g_assert_true (es_subscription_stop (sub, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), ==, 1);
  g_assert_false (_es_subscription_has_timer (sub));
}

/* A full batch stores and removes the timer; the timer fires for the
 * rest and goes. */
static void
test_timer_after_batch (void)
{
  g_autoptr(EsStreamFactory) factory = memory_factory ();
  g_autoptr(EsSubscription) sub = NULL;
  g_autoptr(GError) error = NULL;
  Counts counts = { 0 };
  WaitCheckpoint w;

  /* A long delay first: only the batch stores. */
  sub = start_counting (factory, 5, 3600 * 1000, &counts);
  write_n (factory, 5);
  w = (WaitCheckpoint) { sub, 5 };
  es_test_wait_until (NULL, checkpoint_reached, &w);
  g_assert_false (_es_subscription_has_timer (sub));
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), ==, 1);

  /* Then a short one: it stores the rest (once, or twice when the
   * second event comes after the first timer fired). */
  es_subscription_set_checkpoint_delay (sub, 10);
  write_n (factory, 2);
  w.checkpoint = 7;
  es_test_wait_until (NULL, checkpoint_reached, &w);
  g_assert_cmpint (es_subscription_get_checkpoint (sub), ==, 7);
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), >=, 2);
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), <=, 3);
  g_assert_false (_es_subscription_has_timer (sub));
  {
    guint saves = _es_subscription_get_n_saves (sub);

    g_assert_true (es_subscription_stop (sub, NULL, &error));
    g_assert_cmpuint (_es_subscription_get_n_saves (sub), ==, saves);
  }
}

/* 500 events: at most one save per batch of 100, and the position is
 * notified per dispatch, not per event. */
static void
test_coalescing (void)
{
  g_autoptr(EsStreamFactory) factory = memory_factory ();
  g_autoptr(EsSubscription) sub = NULL;
  g_autoptr(GError) error = NULL;
  Counts counts = { 0 };
  WaitCheckpoint w;

  write_n (factory, 500);
  sub = start_counting (factory, 100, 0, &counts);
  counts.position_notifies = 0;
  es_test_wait_until (NULL, events_reached, &counts);
  w = (WaitCheckpoint) { sub, 500 };
  es_test_wait_until (NULL, checkpoint_reached, &w);
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), >=, 1);
  g_assert_cmpuint (_es_subscription_get_n_saves (sub), <=, 5);
  /* Delivered in chunks of 256 per dispatch. */
  g_assert_cmpuint (counts.position_notifies, >=, 1);
  g_assert_cmpuint (counts.position_notifies, <, 20);
  g_assert_cmpint (es_subscription_get_position (sub), ==, 500);
  g_assert_true (es_subscription_stop (sub, NULL, &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/subscription/timer/only-while-pending", test_timer_only_while_pending);
  g_test_add_func ("/subscription/timer/after-batch", test_timer_after_batch);
  g_test_add_func ("/subscription/coalescing", test_coalescing);

  return g_test_run ();
}
