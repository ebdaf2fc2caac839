/* test-conformance-model.c: the contract of EsEventListModel and of
 * es_storage_handle_count_events(), on every backend of the conformance
 * runner (test-conformance.c selects it with --backend).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-conformance.h"

/* Exported for the tests (es-private.h): small pages put page boundaries
 * within reach of a few events. */
extern void  _es_event_list_model_set_page_size      (EsEventListModel *self,
                                                      guint             page_size,
                                                      guint             max_pages);
extern guint _es_event_list_model_get_n_cached_pages (EsEventListModel *self);

typedef struct
{
  guint position;
  guint removed;
  guint added;
} Change;

typedef struct
{
  GArray *changes;  /* (element-type Change) */
} Recorder;

static void
on_items_changed (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  gpointer    user_data)
{
  Recorder *recorder = user_data;
  Change change = { position, removed, added };

  g_array_append_val (recorder->changes, change);
}

static gboolean
has_changes (gpointer data)
{
  return ((Recorder *) data)->changes->len > 0;
}

static gboolean
is_loaded (gpointer data)
{
  return !es_event_list_model_get_loading (data);
}

/* A model, counted. */
static EsEventListModel *
new_model (EsStreamFactory       *factory,
           const char            *stream_id,
           EsEventFilter         *filter,
           EsEventListModelFlags  flags,
           guint                  page_size)
{
  EsEventListModel *model = es_event_list_model_new (factory, stream_id, filter, flags);

  if (page_size > 0)
    _es_event_list_model_set_page_size (model, page_size, 3);
  es_test_wait_until (NULL, is_loaded, model);
  return model;
}

typedef struct
{
  GListModel *model;
  guint       n;
} WaitN;

static gboolean
has_n_items (gpointer data)
{
  WaitN *wait = data;

  return g_list_model_get_n_items (wait->model) == wait->n;
}

static void
wait_n_items (EsEventListModel *model,
              guint             n)
{
  WaitN wait = { G_LIST_MODEL (model), n };

  es_test_wait_until (NULL, has_n_items, &wait);
}

static gint64
item_version (EsEventListModel *model,
              guint             position)
{
  g_autoptr(EsStoredEvent) event = g_list_model_get_item (G_LIST_MODEL (model), position);

  g_assert_nonnull (event);
  return es_stored_event_get_version (event);
}

static gint64
item_sequence_id (EsEventListModel *model,
                  guint             position)
{
  g_autoptr(EsStoredEvent) event = g_list_model_get_item (G_LIST_MODEL (model), position);

  g_assert_nonnull (event);
  return es_stored_event_get_sequence_id (event);
}

static void
test_count_and_order (Fixture       *fixture,
                      gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "order-1");
  g_autoptr(EsStream) other = open_stream (fixture, "order-2");
  g_autoptr(EsEventListModel) oldest = NULL;
  g_autoptr(EsEventListModel) newest = NULL;
  g_autoptr(EsEventListModel) empty = NULL;

  g_test_summary ("A stream's model counts its events and gives them oldest or newest "
                  "first, across page boundaries; positions out of range are NULL");

  es_test_write_n (stream, 10, "Added");
  es_test_write_n (other, 3, "Other");

  oldest = es_event_list_model_new (fixture->factory, "order-1", NULL,
                                    ES_EVENT_LIST_MODEL_FLAGS_NONE);
  /* Lazy: empty and loading until the count comes back. */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (oldest)), ==, 0);
  g_assert_true (es_event_list_model_get_loading (oldest));
  _es_event_list_model_set_page_size (oldest, 4, 2);
  es_test_wait_until (NULL, is_loaded, oldest);
  newest = new_model (fixture->factory, "order-1", NULL,
                      ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST, 4);

  g_assert_true (g_list_model_get_item_type (G_LIST_MODEL (oldest)) == ES_TYPE_STORED_EVENT);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (oldest)), ==, 10);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (newest)), ==, 10);
  for (guint i = 0; i < 10; i++)
    {
      g_assert_cmpint (item_version (oldest, i), ==, i + 1);
      g_assert_cmpint (item_version (newest, i), ==, 10 - i);
    }
  /* Backwards too, and jumping: each page is read where it is. */
  for (guint i = 10; i-- > 0;)
    g_assert_cmpint (item_version (oldest, i), ==, i + 1);
  g_assert_cmpint (item_version (newest, 9), ==, 1);
  g_assert_cmpint (item_version (newest, 4), ==, 6);
  g_assert_cmpuint (_es_event_list_model_get_n_cached_pages (oldest), <=, 2);

  g_assert_null (g_list_model_get_item (G_LIST_MODEL (oldest), 10));
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (newest), 10));
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (oldest), G_MAXUINT));

  g_assert_cmpstr (es_event_list_model_get_stream_id (oldest), ==, "order-1");
  g_assert_true (es_event_list_model_get_factory (oldest) == fixture->factory);
  g_assert_null (es_event_list_model_get_filter (oldest));
  g_assert_cmpint (es_event_list_model_get_flags (newest), ==,
                   ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST);

  empty = new_model (fixture->factory, "never-written", NULL, ES_EVENT_LIST_MODEL_FLAGS_NONE, 0);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (empty)), ==, 0);
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (empty), 0));
}

/* Every item of @model, in model order, against @expected (sequence ids,
 * oldest first), read in an order that crosses pages both ways. */
static void
assert_items (EsEventListModel *model,
              GArray           *expected,
              gboolean          newest_first)
{
  guint n = expected->len;
  guint order[] = { n - 1, 0, n / 2, n - 2, 1, n / 3 };

  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, n);
  for (guint k = 0; k < G_N_ELEMENTS (order); k++)
    {
      guint i = order[k];
      gint64 want = g_array_index (expected, gint64, newest_first ? n - 1 - i : i);

      g_assert_cmpint (item_sequence_id (model, i), ==, want);
    }
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (item_sequence_id (model, i), ==,
                     g_array_index (expected, gint64, newest_first ? n - 1 - i : i));
  for (guint i = n; i-- > 0;)
    g_assert_cmpint (item_sequence_id (model, i), ==,
                     g_array_index (expected, gint64, newest_first ? n - 1 - i : i));
}

static void
test_filter_and_all (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(EsStream) a = open_stream (fixture, "mix-a");
  g_autoptr(EsStream) b = open_stream (fixture, "mix-b");
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GArray) all = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GArray) matching = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gint64 head = 0;

  g_test_summary ("Models of @all and filtered models hold exactly what a read returns, "
                  "in either order, at every page boundary; count_events() counts it");

  for (guint round = 0; round < 7; round++)
    {
      es_test_write_n (a, 2, round % 2 == 0 ? "Wanted" : "Unwanted");
      es_test_write_n (b, 3, round % 3 == 0 ? "Wanted" : "Skipped");
    }
  es_event_filter_add_like (filter, "event_type", "Want%");

  events = es_storage_handle_read_page_full (es_stream_factory_get_storage (fixture->factory),
                                             NULL, 0, ES_READ_FLAGS_NONE, NULL, 1000, NULL,
                                             &error);
  g_assert_no_error (error);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);
      gint64 id = es_stored_event_get_sequence_id (event);

      g_array_append_val (all, id);
      if (g_str_equal (es_stored_event_get_event_type (event), "Wanted"))
        g_array_append_val (matching, id);
      head = id;
    }
  g_assert_cmpuint (all->len, ==, 35);
  g_assert_cmpuint (matching->len, ==, 8 + 9);

  for (guint page_size = 1; page_size <= 5; page_size += 2)
    for (guint flags = 0; flags <= 1; flags++)
      {
        g_autoptr(EsEventListModel) every = new_model (fixture->factory, ES_ALL_STREAM, NULL,
                                                       flags, page_size);
        g_autoptr(EsEventListModel) wanted = new_model (fixture->factory, NULL, filter,
                                                        flags, page_size);

        assert_items (every, all, flags != 0);
        assert_items (wanted, matching, flags != 0);
        g_assert_cmpuint (_es_event_list_model_get_n_cached_pages (wanted), <=, 3);
      }

  /* A stream with a filter: versions, not sequence ids. */
  {
    g_autoptr(EsEventListModel) model = new_model (fixture->factory, "mix-a", filter,
                                                   ES_EVENT_LIST_MODEL_FLAGS_NONE, 3);

    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 8);
    g_assert_cmpint (item_version (model, 0), ==, 1);
    g_assert_cmpint (item_version (model, 2), ==, 5);
    g_assert_cmpint (item_version (model, 7), ==, 14);
  }

  /* The storage method itself. */
  g_assert_cmpint (es_storage_handle_count_events (es_stream_factory_get_storage (fixture->factory),
                                                   NULL, filter, 0, head, NULL, &error), ==, 17);
  g_assert_no_error (error);
  g_assert_cmpint (es_storage_handle_count_events (es_stream_factory_get_storage (fixture->factory),
                                                   NULL, NULL, g_array_index (all, gint64, 9),
                                                   g_array_index (all, gint64, 19), NULL, &error),
                   ==, 10);
  g_assert_cmpint (es_storage_handle_count_events (es_stream_factory_get_storage (fixture->factory),
                                                   "mix-b", filter, 3, 21, NULL, &error), ==, 6);
  g_assert_cmpint (es_storage_handle_count_events (es_stream_factory_get_storage (fixture->factory),
                                                   "nobody", NULL, 0, G_MAXINT64, NULL, &error),
                   ==, 0);
  g_assert_no_error (error);

  /* locate_event(): the index-th event of a read, from any position. */
  {
    EsStorageHandle *storage = es_stream_factory_get_storage (fixture->factory);

    g_assert_cmpint (es_storage_handle_locate_event (storage, NULL, 0, ES_READ_FLAGS_NONE, filter,
                                                     0, NULL, &error), ==,
                     g_array_index (matching, gint64, 0));
    g_assert_cmpint (es_storage_handle_locate_event (storage, NULL, 0, ES_READ_FLAGS_NONE, filter,
                                                     16, NULL, &error), ==,
                     g_array_index (matching, gint64, 16));
    g_assert_cmpint (es_storage_handle_locate_event (storage, NULL, 0, ES_READ_FLAGS_NONE, filter,
                                                     17, NULL, &error), ==, 0);
    g_assert_cmpint (es_storage_handle_locate_event (storage, NULL,
                                                     g_array_index (matching, gint64, 5),
                                                     ES_READ_FLAGS_NONE, filter, 2, NULL, &error),
                     ==, g_array_index (matching, gint64, 8));
    g_assert_cmpint (es_storage_handle_locate_event (storage, NULL,
                                                     g_array_index (matching, gint64, 5),
                                                     ES_READ_FLAGS_BACKWARDS, filter, 2, NULL,
                                                     &error),
                     ==, g_array_index (matching, gint64, 2));
    g_assert_cmpint (es_storage_handle_locate_event (storage, NULL, G_MAXINT64,
                                                     ES_READ_FLAGS_BACKWARDS, NULL, 0, NULL,
                                                     &error),
                     ==, g_array_index (all, gint64, 34));
    g_assert_cmpint (es_storage_handle_locate_event (storage, "mix-b", 0, ES_READ_FLAGS_NONE,
                                                     NULL, 20, NULL, &error), ==, 21);
    g_assert_cmpint (es_storage_handle_locate_event (storage, "mix-b", 0, ES_READ_FLAGS_NONE,
                                                     NULL, 21, NULL, &error), ==, 0);
    g_assert_cmpint (es_storage_handle_locate_event (storage, "mix-b", 10,
                                                     ES_READ_FLAGS_BACKWARDS, NULL, 8, NULL,
                                                     &error), ==, 1);
    g_assert_no_error (error);
  }
}

static void
run_live_test (Fixture         *fixture,
               EsStreamFactory *writer_factory,
               gboolean         newest_first)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "live-1");
  g_autoptr(EsStream) writer = NULL;
  g_autoptr(EsEventListModel) model = NULL;
  g_autoptr(EsEventListModel) filtered = NULL;
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GError) error = NULL;
  Recorder recorder = { g_array_new (FALSE, FALSE, sizeof (Change)) };
  Recorder filtered_recorder = { g_array_new (FALSE, FALSE, sizeof (Change)) };
  EsEventListModelFlags flags = newest_first ? ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST : 0;

  writer = es_stream_factory_open_stream (writer_factory, "live-1", NULL, &error);
  g_assert_no_error (error);

  es_test_write_n (stream, 5, "Old");
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("New"));
  model = new_model (fixture->factory, "live-1", NULL, flags, 4);
  filtered = new_model (fixture->factory, "live-1", filter, flags, 4);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (filtered)), ==, 0);
  g_signal_connect (model, "items-changed", G_CALLBACK (on_items_changed), &recorder);
  g_signal_connect (filtered, "items-changed", G_CALLBACK (on_items_changed), &filtered_recorder);
  /* Read a page, so that the live events meet a cached one. */
  g_assert_cmpint (item_version (model, 0), ==, newest_first ? 5 : 1);

  es_test_write_n (writer, 3, "New");
  es_test_write_n (writer, 1, "Other");
  es_test_write_n (writer, 2, "New");
  wait_n_items (model, 11);
  wait_n_items (filtered, 5);

  /* One insertion per event, in order, where the order puts it. */
  g_assert_cmpuint (recorder.changes->len, ==, 6);
  for (guint i = 0; i < recorder.changes->len; i++)
    {
      Change *change = &g_array_index (recorder.changes, Change, i);

      g_assert_cmpuint (change->position, ==, newest_first ? 0 : 5 + i);
      g_assert_cmpuint (change->removed, ==, 0);
      g_assert_cmpuint (change->added, ==, 1);
    }
  g_assert_cmpuint (filtered_recorder.changes->len, ==, 5);
  for (guint i = 0; i < 11; i++)
    g_assert_cmpint (item_version (model, i), ==, newest_first ? 11 - i : i + 1);
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr(EsStoredEvent) event = g_list_model_get_item (G_LIST_MODEL (filtered), i);

      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "New");
    }
  g_assert_cmpint (item_version (filtered, newest_first ? 0 : 4), ==, 11);
  g_assert_cmpint (item_version (filtered, newest_first ? 4 : 0), ==, 6);

  g_signal_handlers_disconnect_by_data (model, &recorder);
  g_signal_handlers_disconnect_by_data (filtered, &filtered_recorder);
  g_array_unref (recorder.changes);
  g_array_unref (filtered_recorder.changes);
}

static void
test_live_this_process (Fixture       *fixture,
                        gconstpointer  data)
{
  g_test_summary ("Events written through the model's factory arrive as items-changed at "
                  "the end (oldest first) or at 0 (newest first), one each, in order");
  if (es_stream_factory_get_notifier (fixture->factory) == NULL)
    {
      g_test_skip ("This backend has no notifier: its models are not live");
      return;
    }
  run_live_test (fixture, fixture->factory, FALSE);
}

static void
test_live_newest_first (Fixture       *fixture,
                        gconstpointer  data)
{
  g_test_summary ("Newest first, new events arrive at position 0");
  if (es_stream_factory_get_notifier (fixture->factory) == NULL)
    {
      g_test_skip ("This backend has no notifier: its models are not live");
      return;
    }
  run_live_test (fixture, fixture->factory, TRUE);
}

static void
test_live_other_process (Fixture       *fixture,
                         gconstpointer  data)
{
  EsStreamFactory *other = fixture_open_other_factory (fixture);

  g_test_summary ("Events written by another factory on the same database arrive too");
  if (other == NULL)
    {
      g_test_skip ("This backend has no second handle on the same data");
      return;
    }
  run_live_test (fixture, other, FALSE);
  es_test_factory_close_and_free (other);
}

static void
test_truncate_erase_delete (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "cut-1");
  g_autoptr(EsEventListModel) oldest = NULL;
  g_autoptr(EsEventListModel) newest = NULL;
  g_autoptr(EsEventListModel) all = NULL;
  g_autoptr(EsStoredEvent) erased = NULL;
  g_autoptr(GError) error = NULL;
  Recorder recorder = { g_array_new (FALSE, FALSE, sizeof (Change)) };
  Recorder newest_recorder = { g_array_new (FALSE, FALSE, sizeof (Change)) };
  Change *change;

  g_test_summary ("Truncations, erasures and deletes through the factory are reflected: "
                  "the oldest items go, an erased item changes, a delete empties");

  es_test_write_n (stream, 10, "Event");
  oldest = new_model (fixture->factory, "cut-1", NULL, 0, 4);
  newest = new_model (fixture->factory, "cut-1", NULL, ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST, 4);
  all = new_model (fixture->factory, ES_ALL_STREAM, NULL, 0, 4);
  g_signal_connect (oldest, "items-changed", G_CALLBACK (on_items_changed), &recorder);
  g_signal_connect (newest, "items-changed", G_CALLBACK (on_items_changed), &newest_recorder);
  g_assert_cmpint (item_version (oldest, 5), ==, 6);

  if (!es_stream_factory_truncate_stream (fixture->factory, "cut-1", 4, NULL, &error))
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
      g_test_skip ("This backend cannot truncate");
      goto out;
    }
  wait_n_items (oldest, 7);
  wait_n_items (newest, 7);
  wait_n_items (all, 7);
  g_assert_cmpuint (recorder.changes->len, ==, 1);
  change = &g_array_index (recorder.changes, Change, 0);
  g_assert_cmpuint (change->position, ==, 0);
  g_assert_cmpuint (change->removed, ==, 3);
  g_assert_cmpuint (change->added, ==, 0);
  change = &g_array_index (newest_recorder.changes, Change, 0);
  g_assert_cmpuint (change->position, ==, 7);
  g_assert_cmpuint (change->removed, ==, 3);
  for (guint i = 0; i < 7; i++)
    {
      g_assert_cmpint (item_version (oldest, i), ==, i + 4);
      g_assert_cmpint (item_version (newest, i), ==, 10 - i);
      g_assert_cmpint (item_version (all, i), ==, i + 4);
    }

  g_array_set_size (recorder.changes, 0);
  g_assert_true (es_stream_factory_erase_event (fixture->factory, "cut-1", 6, NULL, &error));
  g_assert_no_error (error);
  es_test_wait_until (NULL, has_changes, &recorder);
  change = &g_array_index (recorder.changes, Change, 0);
  g_assert_cmpuint (change->position, ==, 2);
  g_assert_cmpuint (change->removed, ==, 1);
  g_assert_cmpuint (change->added, ==, 1);
  erased = g_list_model_get_item (G_LIST_MODEL (oldest), 2);
  g_assert_cmpint (es_stored_event_get_version (erased), ==, 6);
  g_assert_true ((es_stored_event_get_flags (erased) & ES_STORED_EVENT_FLAGS_ERASED) != 0);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (oldest)), ==, 7);

  g_assert_true (es_stream_factory_delete_stream (fixture->factory, "cut-1", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_no_error (error);
  wait_n_items (oldest, 0);
  wait_n_items (newest, 0);
  wait_n_items (all, 0);
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (oldest), 0));

out:
  g_signal_handlers_disconnect_by_data (oldest, &recorder);
  g_signal_handlers_disconnect_by_data (newest, &newest_recorder);
  g_array_unref (recorder.changes);
  g_array_unref (newest_recorder.changes);
}

static void
test_refresh_other_process (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "remote-1");
  g_autoptr(EsEventListModel) model = NULL;
  g_autoptr(GError) error = NULL;
  EsStreamFactory *other = fixture_open_other_factory (fixture);

  g_test_summary ("Another process's truncation is seen after refresh(); its hard delete "
                  "empties the model by itself");
  if (other == NULL)
    {
      g_test_skip ("This backend has no second handle on the same data");
      return;
    }

  es_test_write_n (stream, 6, "Event");
  model = new_model (fixture->factory, "remote-1", NULL, 0, 4);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 6);

  g_assert_true (es_stream_factory_truncate_stream (other, "remote-1", 3, NULL, &error));
  g_assert_no_error (error);
  es_event_list_model_refresh (model);
  wait_n_items (model, 4);
  es_test_wait_until (NULL, is_loaded, model);
  g_assert_cmpint (item_version (model, 0), ==, 3);
  g_assert_cmpint (item_version (model, 3), ==, 6);

  g_assert_true (es_stream_factory_delete_stream (other, "remote-1", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_no_error (error);
  wait_n_items (model, 0);
  es_test_factory_close_and_free (other);
}

static void
test_outlives_factory (Fixture       *fixture,
                       gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "close-1");
  g_autoptr(EsEventListModel) model = NULL;
  g_autoptr(EsEventListModel) late = NULL;
  g_autoptr(GError) error = NULL;
  Recorder recorder = { g_array_new (FALSE, FALSE, sizeof (Change)) };

  g_test_summary ("A model outlives its factory's close: it empties itself once and stays "
                  "empty; a model made on a closed factory is empty");

  es_test_write_n (stream, 5, "Event");
  model = new_model (fixture->factory, "close-1", NULL, 0, 0);
  g_assert_cmpint (item_version (model, 4), ==, 5);
  g_signal_connect (model, "items-changed", G_CALLBACK (on_items_changed), &recorder);

  g_assert_true (es_stream_factory_close (fixture->factory, NULL, &error));
  g_assert_no_error (error);
  wait_n_items (model, 0);
  g_assert_cmpuint (recorder.changes->len, ==, 1);
  g_assert_cmpuint (g_array_index (recorder.changes, Change, 0).position, ==, 0);
  g_assert_cmpuint (g_array_index (recorder.changes, Change, 0).removed, ==, 5);
  g_assert_cmpuint (g_array_index (recorder.changes, Change, 0).added, ==, 0);
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (model), 0));
  g_assert_false (es_event_list_model_get_loading (model));
  es_event_list_model_refresh (model);
  es_test_spin (50);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (model)), ==, 0);

  late = es_event_list_model_new (fixture->factory, "close-1", NULL, 0);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (late)), ==, 0);
  g_assert_false (es_event_list_model_get_loading (late));
  g_signal_handlers_disconnect_by_data (model, &recorder);
  g_array_unref (recorder.changes);
}

static void
test_memory_flat (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "many-1");
  g_autoptr(EsEventListModel) model = NULL;
  GRand *rand = g_rand_new_with_seed (18);

  g_test_summary ("Reading every item, in order and at random, keeps at most the cache's "
                  "pages, and every item is the right one");

  es_test_write_n (stream, 600, "Event");
  model = new_model (fixture->factory, "many-1", NULL, ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST, 16);
  for (guint i = 0; i < 600; i++)
    {
      g_assert_cmpint (item_version (model, i), ==, 600 - i);
      g_assert_cmpuint (_es_event_list_model_get_n_cached_pages (model), <=, 3);
    }
  for (guint k = 0; k < 300; k++)
    {
      guint i = g_rand_int_range (rand, 0, 600);

      g_assert_cmpint (item_version (model, i), ==, 600 - i);
    }
  g_rand_free (rand);
}

static void
test_soft_delete_then_write (Fixture       *fixture,
                             gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (fixture, "soft-1");
  g_autoptr(EsEventListModel) model = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A soft delete through the factory empties the model; the stream written "
                  "again fills it with the versions that follow");
  if (es_stream_factory_get_notifier (fixture->factory) == NULL)
    {
      g_test_skip ("This backend has no notifier: its models are not live");
      return;
    }

  es_test_write_n (stream, 4, "Event");
  model = new_model (fixture->factory, "soft-1", NULL, 0, 2);
  g_assert_cmpint (item_version (model, 3), ==, 4);
  if (!es_stream_factory_delete_stream (fixture->factory, "soft-1", 4, ES_DELETE_FLAGS_NONE,
                                        NULL, &error))
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
      g_test_skip ("This backend cannot delete");
      return;
    }
  wait_n_items (model, 0);
  es_test_wait_until (NULL, is_loaded, model);
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (model), 0));

  es_test_write_n (stream, 2, "Again");
  wait_n_items (model, 2);
  g_assert_cmpint (item_version (model, 0), ==, 5);
  g_assert_cmpint (item_version (model, 1), ==, 6);
}

void
add_model_tests (void)
{
  add_test ("model/count-and-order", test_count_and_order);
  add_test ("model/filter-and-all", test_filter_and_all);
  add_test ("model/live-this-process", test_live_this_process);
  add_test ("model/live-newest-first", test_live_newest_first);
  add_test ("model/live-other-process", test_live_other_process);
  add_test ("model/truncate-erase-delete", test_truncate_erase_delete);
  add_test ("model/refresh-other-process", test_refresh_other_process);
  add_test ("model/soft-delete-then-write", test_soft_delete_then_write);
  add_test ("model/outlives-factory", test_outlives_factory);
  add_test ("model/memory-flat", test_memory_flat);
}
