/* test-sweep.c: the factory's background sweep (EsStreamFactory:sweep-interval),
 * and the other effects the factory has on its own (a hard delete ends
 * its watches of the stream without waiting for the notifier).
 *
 * On the in-memory backend, whose clock can run behind the real one so
 * that events are old without waiting, and through the library's
 * internals (es_internal_dep) to see whether the sweeper thread runs: a
 * database without an age policy must have no timer at all. Nothing here
 * asserts on elapsed time; the tests wait for the sweeps to happen.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-glib/es-private.h"

#include "es-memory-storage.h"
#include "es-test-utils.h"

static EsStreamFactory *
memory_factory (EsTestMemoryStorage *storage,
                guint                interval)
{
  return g_object_new (ES_TYPE_STREAM_FACTORY,
                       "storage", storage,
                       "sweep-interval", interval,
                       NULL);
}

/* Appends @n events to @stream_id straight through the storage. */
static void
append (EsTestMemoryStorage *storage,
        const char          *stream_id,
        guint                n)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (events, es_candidate_event_new ("Old", NULL));
  g_assert_true (es_storage_handle_append (ES_STORAGE_HANDLE (storage), stream_id,
                                           ES_VERSION_ANY,
                                           (EsCandidateEvent * const *) events->pdata, n,
                                           NULL, NULL, &error));
  g_assert_no_error (error);
}

typedef struct
{
  EsStreamFactory *factory;
  guint            n;
  gboolean         armed;
} SweepWait;

static gboolean
sweeps_reached (gpointer data)
{
  SweepWait *wait = data;
  gboolean armed = FALSE;
  guint n = _es_stream_factory_get_n_sweeps (wait->factory, &armed);

  return n >= wait->n && armed == wait->armed;
}

/* Waits until @n background sweeps are done and the sweeper is @armed
 * (waiting for the next one) or not running. */
static void
wait_sweeps (EsStreamFactory *factory,
             guint            n,
             gboolean         armed)
{
  SweepWait wait = { factory, n, armed };

  es_test_spin_until (sweeps_reached, &wait);
}

static gint64
n_events (EsStreamFactory *factory,
          const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = es_stream_factory_get_stream_info (factory, stream_id, NULL,
                                                                    &error);

  g_assert_no_error (error);
  return es_stream_info_get_event_count (info);
}

static void
test_first_sweep_finds_age_policy (void)
{
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  gboolean armed = FALSE;

  g_test_summary ("A factory sweeps once after it is created, removing what is too old, "
                  "and keeps sweeping while an age policy exists; close ends the sweeper");

  /* Events written two hours ago by the storage's clock, and a policy
   * the factory cannot know of: only its own sweep finds them. */
  es_test_memory_storage_set_clock_offset (storage, -2 * G_TIME_SPAN_HOUR);
  g_assert_true (es_storage_handle_set_retention (ES_STORAGE_HANDLE (storage), "old",
                                                  G_TIME_SPAN_HOUR, 0, NULL, &error));
  g_assert_no_error (error);
  append (storage, "old", 4);
  append (storage, "other", 2);

  factory = memory_factory (storage, 3600);
  wait_sweeps (factory, 1, TRUE);
  g_assert_cmpint (n_events (factory, "old"), ==, 0);
  g_assert_cmpint (n_events (factory, "other"), ==, 2);

  /* A shorter interval takes effect at once, and the sweeps go on. */
  append (storage, "old", 3);
  g_assert_cmpint (n_events (factory, "old"), ==, 3);
  g_object_set (factory, "sweep-interval", 1, NULL);
  wait_sweeps (factory, 2, TRUE);
  g_assert_cmpint (n_events (factory, "old"), ==, 0);

  /* Without the policy, the next sweep is the last. */
  g_assert_true (es_stream_factory_set_retention (factory, "old", 0, 0, NULL, &error));
  g_assert_no_error (error);
  wait_sweeps (factory, 3, FALSE);

  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), >=, 3);
  g_assert_false (armed);
}

static void
test_no_age_policy_no_timer (void)
{
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  gboolean armed = TRUE;

  g_test_summary ("Without an age policy the factory sweeps once and then has no timer, "
                  "count policies included; an age set through the factory starts one");

  append (storage, "s", 5);
  factory = memory_factory (storage, 1);
  wait_sweeps (factory, 1, FALSE);

  g_assert_true (es_stream_factory_set_retention (factory, "s", 0, 2, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (n_events (factory, "s"), ==, 2);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), ==, 1);
  g_assert_false (armed);

  /* The factory's own sweep learns whether an age policy exists. */
  g_assert_cmpint (es_stream_factory_sweep (factory, NULL, &error), ==, 0);
  g_assert_no_error (error);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), ==, 1);
  g_assert_false (armed);

  g_assert_true (es_stream_factory_set_retention (factory, NULL, G_TIME_SPAN_DAY, 0, NULL,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), ==, 1);
  g_assert_true (armed);
  wait_sweeps (factory, 2, TRUE);

  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
  _es_stream_factory_get_n_sweeps (factory, &armed);
  g_assert_false (armed);
}

static void
test_interval_zero_never (void)
{
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  gboolean armed = TRUE;

  g_test_summary ("A sweep-interval of 0 means no background sweep at all, not even the "
                  "first, whatever the policies");

  es_test_memory_storage_set_clock_offset (storage, -2 * G_TIME_SPAN_HOUR);
  append (storage, "s", 3);
  factory = memory_factory (storage, 0);
  g_assert_true (es_stream_factory_set_retention (factory, NULL, G_TIME_SPAN_HOUR, 0, NULL,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), ==, 0);
  g_assert_false (armed);
  g_assert_cmpint (n_events (factory, "s"), ==, 3);

  /* A sweep asked for removes them, against the real time. */
  g_assert_cmpint (es_stream_factory_sweep (factory, NULL, &error), ==, 3);
  g_assert_no_error (error);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), ==, 0);
  g_assert_false (armed);
}

static void
notify_cb (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
  (*(guint *) user_data)++;
}

static void
test_interval_property (void)
{
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  g_autoptr(EsStreamFactory) factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage),
                                                              NULL);
  guint n_notify = 0;
  guint interval = 0;

  g_test_summary ("sweep-interval defaults to an hour and notifies only when it changes");

  g_object_get (factory, "sweep-interval", &interval, NULL);
  g_assert_cmpuint (interval, ==, 3600);
  g_signal_connect (factory, "notify::sweep-interval", G_CALLBACK (notify_cb), &n_notify);
  g_object_set (factory, "sweep-interval", 3600, NULL);
  g_assert_cmpuint (n_notify, ==, 0);
  g_object_set (factory, "sweep-interval", 10, NULL);
  g_assert_cmpuint (n_notify, ==, 1);
  g_object_get (factory, "sweep-interval", &interval, NULL);
  g_assert_cmpuint (interval, ==, 10);
  g_object_set (factory, "sweep-interval", 0, NULL);
  g_assert_cmpuint (n_notify, ==, 2);
}

static void
test_read_only_sqlite (void)
{
  g_autofree char *dir = g_dir_make_tmp ("es-sweep-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "events.db", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  gboolean armed = TRUE;

  g_test_summary ("On a read-only database the first sweep fails quietly: no warning, no "
                  "timer, reads work");

  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
  g_assert_no_error (error);
  stream = es_test_open_stream (factory, "s");
  es_test_write_n (stream, 2, "Kept");
  g_assert_true (es_stream_factory_set_retention (factory, NULL, G_TIME_SPAN_DAY, 0, NULL,
                                                  &error));
  g_assert_no_error (error);
  g_clear_object (&stream);
  es_test_factory_close_and_free (g_steal_pointer (&factory));

  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                            "path", path, "read-only", TRUE, NULL);
  g_assert_no_error (error);
  wait_sweeps (factory, 1, FALSE);
  stream = es_test_open_stream (factory, "s");
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 2);
  g_assert_cmpuint (_es_stream_factory_get_n_sweeps (factory, &armed), ==, 1);
  g_assert_false (armed);

  g_clear_object (&stream);
  es_test_factory_close_and_free (g_steal_pointer (&factory));
  es_test_remove_tree (dir);
}

static void
test_tombstone_ends_own_watches (void)
{
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  /* Never started: it delivers nothing, so only the factory can tell. */
  g_autoptr(EsNotifier) notifier = es_test_memory_notifier_new (storage);
  g_autoptr(EsStreamFactory) factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage),
                                                              notifier);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) other_recorder = es_test_recorder_new ();
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "s");
  g_autoptr(EsStream) other = es_test_open_stream (factory, "other");
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) other_watch = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A hard delete through a factory ends the factory's watches of that "
                  "stream at once, not waiting for its notifier, and no other watch");

  es_test_write_n (stream, 2, "Before");
  es_test_write_n (other, 1, "Other");
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  other_watch = es_stream_watch (other, 0);
  es_test_recorder_connect (other_recorder, other_watch);
  es_test_recorder_wait_caught_up (recorder);
  es_test_recorder_wait_caught_up (other_recorder);

  g_assert_true (es_stream_factory_delete_stream (factory, "s", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_no_error (error);
  es_test_recorder_wait_error (recorder);
  g_assert_error (recorder->error, ES_ERROR, ES_ERROR_STREAM_DELETED);
  g_assert_cmpuint (recorder->events->len, ==, 2);
  g_assert_false (es_watch_get_active (watch));

  /* A soft delete ends nothing. */
  g_assert_true (es_stream_factory_delete_stream (factory, "other", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_no_error (error);
  es_test_spin (50);
  g_assert_null (other_recorder->error);
  g_assert_true (es_watch_get_active (other_watch));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/sweep/first-sweep-finds-age-policy", test_first_sweep_finds_age_policy);
  g_test_add_func ("/sweep/no-age-policy-no-timer", test_no_age_policy_no_timer);
  g_test_add_func ("/sweep/interval-zero-never", test_interval_zero_never);
  g_test_add_func ("/sweep/interval-property", test_interval_property);
  g_test_add_func ("/sweep/read-only-sqlite", test_read_only_sqlite);
  g_test_add_func ("/factory/tombstone-ends-own-watches", test_tombstone_ends_own_watches);

  return g_test_run ();
}
