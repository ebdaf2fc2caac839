/* test-conformance-cursor.c: EsEventCursor (issue 21), on every backend
 * of the conformance runner (test-conformance.c selects it with
 * --backend): a cursor returns what the enumerator returns, field by
 * field, on a stream, on @all, with filters, erased events and after
 * deletes; across page boundaries; in windows of rows; closed, cancelled,
 * asynchronous; and what it borrows stays valid until it moves.
 *
 * Written against the public API only. The memory backend has no native
 * row reads, so it covers the library's copying fallback; a stream
 * implementation of the test's own covers the interface's default.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "test-conformance.h"

/* Events per page of an enumerator or a cursor (ES_READ_PAGE_SIZE). */
#define PAGE_SIZE 1024

static EsStorageHandle *
storage_of (Fixture *f)
{
  return es_stream_factory_get_storage (f->factory);
}

/* Writes @n events to @stream_id in one batch: types cycle through three,
 * every third has an idempotency key, every second metadata, every fifth
 * empty data, so that every column varies. */
static void
write_varied (Fixture    *f,
              const char *stream_id,
              guint       n)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  static const char *types[] = { "Added", "Removed", "Renamed" };
  gint64 base = es_stream_get_version (stream);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *data = g_strdup_printf ("%s payload %u \xff", stream_id, i);
      g_autofree char *key = g_strdup_printf ("%s-key-%" G_GINT64_FORMAT, stream_id,
                                              base + i);
      g_autofree char *metadata = g_strdup_printf ("{\"tenant\": \"t%u\", \"n\": %u}",
                                                   i % 4, i);

      g_ptr_array_add (batch, es_test_candidate_new (types[i % 3],
                                                     i % 5 == 4 ? NULL : data,
                                                     i % 3 == 0 ? key : NULL,
                                                     i % 2 == 0 ? metadata : NULL));
    }
  es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                   ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
}

static void
assert_bytes_equal (GBytes       *expected,
                    const guint8 *data,
                    gsize         length)
{
  gsize expected_len = 0;
  const guint8 *expected_data = g_bytes_get_data (expected, &expected_len);

  g_assert_cmpmem (data, length, expected_data, expected_len);
}

/* The cursor's current row is @event, by every getter and get_event(). */
static void
assert_row_is (EsEventCursor *cursor,
               EsStoredEvent *event)
{
  g_autoptr(EsStoredEvent) built = NULL;
  g_autoptr(GBytes) dup = NULL;
  const guint8 *data;
  gsize length = 0;

  g_assert_cmpint (es_event_cursor_get_sequence_id (cursor), ==,
                   es_stored_event_get_sequence_id (event));
  g_assert_cmpint (es_event_cursor_get_version (cursor), ==,
                   es_stored_event_get_version (event));
  g_assert_cmpint (es_event_cursor_get_timestamp_usec (cursor), ==,
                   es_stored_event_get_timestamp_usec (event));
  g_assert_cmpstr (es_event_cursor_get_stream_id (cursor), ==,
                   es_stored_event_get_stream_id (event));
  g_assert_cmpstr (es_event_cursor_get_event_type (cursor), ==,
                   es_stored_event_get_event_type (event));
  g_assert_cmpstr (es_event_cursor_get_idempotency_key (cursor), ==,
                   es_stored_event_get_idempotency_key (event));
  g_assert_cmpstr (es_event_cursor_get_metadata (cursor), ==,
                   es_stored_event_get_metadata (event));
  g_assert_cmpint (es_event_cursor_get_flags (cursor), ==, es_stored_event_get_flags (event));
  data = es_event_cursor_get_data (cursor, &length);
  assert_bytes_equal (es_stored_event_get_data (event), data, length);
  dup = es_event_cursor_dup_data (cursor);
  g_assert_true (g_bytes_equal (dup, es_stored_event_get_data (event)));

  built = es_event_cursor_get_event (cursor);
  g_assert_cmpint (es_stored_event_get_sequence_id (built), ==,
                   es_stored_event_get_sequence_id (event));
  g_assert_cmpint (es_stored_event_get_version (built), ==, es_stored_event_get_version (event));
  g_assert_cmpint (es_stored_event_get_timestamp_usec (built), ==,
                   es_stored_event_get_timestamp_usec (event));
  g_assert_cmpstr (es_stored_event_get_stream_id (built), ==,
                   es_stored_event_get_stream_id (event));
  g_assert_cmpstr (es_stored_event_get_event_type (built), ==,
                   es_stored_event_get_event_type (event));
  g_assert_cmpstr (es_stored_event_get_idempotency_key (built), ==,
                   es_stored_event_get_idempotency_key (event));
  g_assert_cmpstr (es_stored_event_get_metadata (built), ==,
                   es_stored_event_get_metadata (event));
  g_assert_cmpstr (es_stored_event_get_id (built), ==, es_stored_event_get_id (event));
  g_assert_cmpint (es_stored_event_get_flags (built), ==, es_stored_event_get_flags (event));
  g_assert_true (g_bytes_equal (es_stored_event_get_data (built),
                                es_stored_event_get_data (event)));
}

/* Reads @stream_id after @after through @filter with a cursor and with an
 * enumerator, and checks they agree row by row; returns the number of
 * rows. */
static guint
assert_cursor_matches (Fixture       *f,
                       const char    *stream_id,
                       gint64         after,
                       EsEventFilter *filter)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(GPtrArray) expected = es_test_read_all_ok (stream, after, filter);
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;

  cursor = es_stream_read_cursor (stream, after, filter, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (cursor);

  for (guint i = 0; i < expected->len; i++)
    {
      ES_TEST_ASSERT_OK (es_event_cursor_next (cursor, NULL, &error));
      assert_row_is (cursor, g_ptr_array_index (expected, i));
    }
  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_no_error (error);
  /* The end stays the end. */
  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, 10, NULL, &error), ==, 0);
  g_assert_no_error (error);
  return expected->len;
}

static void
test_cursor_stream (Fixture       *f,
                    gconstpointer  data)
{
  write_varied (f, "cart-1", 2 * PAGE_SIZE + 7);
  write_varied (f, "other", 5);

  g_assert_cmpuint (assert_cursor_matches (f, "cart-1", 0, NULL), ==, 2 * PAGE_SIZE + 7);
  g_assert_cmpuint (assert_cursor_matches (f, "cart-1", 1000, NULL), ==, 2 * PAGE_SIZE + 7 - 1000);
  g_assert_cmpuint (assert_cursor_matches (f, "cart-1", 2 * PAGE_SIZE + 7, NULL), ==, 0);
  g_assert_cmpuint (assert_cursor_matches (f, "other", 0, NULL), ==, 5);
  g_assert_cmpuint (assert_cursor_matches (f, "nobody", 0, NULL), ==, 0);
}

static void
test_cursor_all (Fixture       *f,
                 gconstpointer  data)
{
  /* Interleaved streams, so that consecutive rows change stream. */
  for (guint round = 0; round < 3; round++)
    {
      write_varied (f, "a", 300);
      write_varied (f, "b", 1);
      write_varied (f, "c-longer-stream-id", 400);
    }

  g_assert_cmpuint (assert_cursor_matches (f, ES_ALL_STREAM, 0, NULL), ==, 3 * 701);
  g_assert_cmpuint (assert_cursor_matches (f, ES_ALL_STREAM, 555, NULL), ==, 3 * 701 - 555);
}

static void
test_cursor_filters (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsEventFilter) by_type = es_event_filter_new ();
  g_autoptr(EsEventFilter) by_metadata = es_event_filter_new ();
  g_autoptr(EsEventFilter) none = es_event_filter_new ();

  write_varied (f, "a", PAGE_SIZE + 100);
  write_varied (f, "b", PAGE_SIZE + 100);

  es_event_filter_add_equals (by_type, "event_type", g_variant_new_string ("Removed"));
  es_event_filter_add_equals (by_metadata, "metadata.tenant", g_variant_new_string ("t2"));
  es_event_filter_add_equals (none, "event_type", g_variant_new_string ("Nothing"));

  g_assert_cmpuint (assert_cursor_matches (f, "a", 0, by_type), ==, (PAGE_SIZE + 100 + 1) / 3);
  g_assert_cmpuint (assert_cursor_matches (f, ES_ALL_STREAM, 0, by_type), ==,
                    2 * ((PAGE_SIZE + 100 + 1) / 3));
  g_assert_cmpuint (assert_cursor_matches (f, "b", 10, by_metadata), >, 0);
  g_assert_cmpuint (assert_cursor_matches (f, ES_ALL_STREAM, 0, by_metadata), >, 0);
  g_assert_cmpuint (assert_cursor_matches (f, ES_ALL_STREAM, 0, none), ==, 0);
}

static void
test_cursor_life_cycle (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;
  guint erased = 0;

  write_varied (f, "kept", 50);
  write_varied (f, "truncated", 50);
  write_varied (f, "deleted", 50);
  write_varied (f, "kept", 50);

  ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "kept", 3, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "kept", 60, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "truncated", 21, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "deleted", ES_VERSION_ANY,
                                              ES_DELETE_FLAGS_NONE, NULL, &error));

  g_assert_cmpuint (assert_cursor_matches (f, "kept", 0, NULL), ==, 100);
  g_assert_cmpuint (assert_cursor_matches (f, "truncated", 0, NULL), ==, 30);
  g_assert_cmpuint (assert_cursor_matches (f, "deleted", 0, NULL), ==, 0);
  g_assert_cmpuint (assert_cursor_matches (f, ES_ALL_STREAM, 0, NULL), ==, 130);

  /* The erased events come erased, without data or metadata. */
  stream = open_stream (f, "kept");
  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  while (es_event_cursor_next (cursor, NULL, &error))
    if (es_event_cursor_get_flags (cursor) & ES_STORED_EVENT_FLAGS_ERASED)
      {
        gsize length = 1;

        g_assert_true (es_event_cursor_get_version (cursor) == 3 ||
                       es_event_cursor_get_version (cursor) == 60);
        es_event_cursor_get_data (cursor, &length);
        g_assert_cmpuint (length, ==, 0);
        g_assert_null (es_event_cursor_get_metadata (cursor));
        erased++;
      }
  g_assert_no_error (error);
  g_assert_cmpuint (erased, ==, 2);
}

/* Rows of a read of @stream_id through next() alone: versions are 1..n. */
static guint
count_rows (Fixture    *f,
            const char *stream_id,
            gint64      after)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;
  gint64 expected = after;
  guint n = 0;

  cursor = es_stream_read_cursor (stream, after, NULL, NULL, &error);
  g_assert_no_error (error);
  while (es_event_cursor_next (cursor, NULL, &error))
    {
      g_assert_cmpint (es_event_cursor_get_version (cursor), ==, ++expected);
      n++;
    }
  g_assert_no_error (error);
  return n;
}

static void
test_cursor_page_boundaries (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");

  es_test_write_n (stream, PAGE_SIZE - 1, "Written");
  g_assert_cmpuint (count_rows (f, "s", 0), ==, PAGE_SIZE - 1);
  es_test_write_n (stream, 1, "Written");
  g_assert_cmpuint (count_rows (f, "s", 0), ==, PAGE_SIZE);
  es_test_write_n (stream, 1, "Written");
  g_assert_cmpuint (count_rows (f, "s", 0), ==, PAGE_SIZE + 1);
  g_assert_cmpuint (count_rows (f, "s", 1), ==, PAGE_SIZE);
  g_assert_cmpuint (count_rows (f, "s", 2), ==, PAGE_SIZE - 1);
  es_test_write_n (stream, PAGE_SIZE - 1, "Written");
  g_assert_cmpuint (count_rows (f, "s", 0), ==, 2 * PAGE_SIZE);
  g_assert_cmpuint (count_rows (f, ES_ALL_STREAM, 0), ==, 2 * PAGE_SIZE);
}

/* A full page read, then written to: the cursor goes on into what came
 * after its position, as the enumerator does. */
static void
test_cursor_sees_later_writes (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;
  gint64 expected = 0;

  es_test_write_n (stream, PAGE_SIZE, "Written");
  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  es_test_write_n (stream, 3, "Later");
  while (es_event_cursor_next (cursor, NULL, &error))
    g_assert_cmpint (es_event_cursor_get_version (cursor), ==, ++expected);
  g_assert_no_error (error);
  g_assert_cmpint (expected, ==, PAGE_SIZE + 3);
}

static void
test_cursor_windows (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GPtrArray) expected = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;
  guint seen = 0;
  guint max = 1;

  write_varied (f, "a", 1500);
  write_varied (f, "b", 1500);
  write_varied (f, "a", 700);

  all = open_stream (f, ES_ALL_STREAM);
  expected = es_test_read_all_ok (all, 0, NULL);
  cursor = es_stream_read_cursor (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);

  /* Without a window, the columns are empty. */
  {
    guint n = 99;
    g_auto(GStrv) types = es_event_cursor_dup_event_types (cursor);
    g_autoptr(GPtrArray) list = es_event_cursor_dup_data_list (cursor);

    g_assert_null (es_event_cursor_get_versions (cursor, &n));
    g_assert_cmpuint (n, ==, 0);
    g_assert_cmpuint (g_strv_length (types), ==, 0);
    g_assert_cmpuint (list->len, ==, 0);
  }

  /* Windows of growing sizes, and single steps between them. */
  for (;;)
    {
      guint n, n_versions, n_seqs, n_times;
      const gint64 *versions, *seqs, *times;
      g_auto(GStrv) types = NULL;
      g_auto(GStrv) streams = NULL;
      g_autoptr(GPtrArray) datas = NULL;

      n = es_event_cursor_next_rows (cursor, max, NULL, &error);
      g_assert_no_error (error);
      if (n == 0)
        break;
      g_assert_cmpuint (n, <=, max);
      g_assert_cmpuint (seen + n, <=, expected->len);

      versions = es_event_cursor_get_versions (cursor, &n_versions);
      seqs = es_event_cursor_get_sequence_ids (cursor, &n_seqs);
      times = es_event_cursor_get_timestamps_usec (cursor, &n_times);
      types = es_event_cursor_dup_event_types (cursor);
      streams = es_event_cursor_dup_stream_ids (cursor);
      datas = es_event_cursor_dup_data_list (cursor);
      g_assert_cmpuint (n_versions, ==, n);
      g_assert_cmpuint (n_seqs, ==, n);
      g_assert_cmpuint (n_times, ==, n);
      g_assert_cmpuint (g_strv_length (types), ==, n);
      g_assert_cmpuint (g_strv_length (streams), ==, n);
      g_assert_cmpuint (datas->len, ==, n);

      for (guint i = 0; i < n; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (expected, seen + i);

          g_assert_cmpint (versions[i], ==, es_stored_event_get_version (event));
          g_assert_cmpint (seqs[i], ==, es_stored_event_get_sequence_id (event));
          g_assert_cmpint (times[i], ==, es_stored_event_get_timestamp_usec (event));
          g_assert_cmpstr (types[i], ==, es_stored_event_get_event_type (event));
          g_assert_cmpstr (streams[i], ==, es_stored_event_get_stream_id (event));
          g_assert_true (g_bytes_equal (g_ptr_array_index (datas, i),
                                        es_stored_event_get_data (event)));
        }
      /* The getters of the current row refer to the window's last row. */
      assert_row_is (cursor, g_ptr_array_index (expected, seen + n - 1));
      seen += n;

      if (es_event_cursor_next (cursor, NULL, &error))
        {
          guint one = 0;

          assert_row_is (cursor, g_ptr_array_index (expected, seen));
          es_event_cursor_get_versions (cursor, &one);
          g_assert_cmpuint (one, ==, 1);
          seen++;
        }
      g_assert_no_error (error);
      max = max * 3 + 1;
    }
  g_assert_cmpuint (seen, ==, expected->len);
  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_no_error (error);
}

/* A window larger than a page reads a larger page: up to 16 pages' worth
 * in one window. */
static void
test_cursor_large_windows (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;
  const gint64 *versions;
  guint n_versions = 0;

  es_test_write_n (stream, 3 * PAGE_SIZE + 5, "Written");
  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);

  /* The first page was read by read_cursor: its size is the default. */
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, 10000, NULL, &error), ==, PAGE_SIZE);
  g_assert_no_error (error);
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, 10000, NULL, &error), ==,
                    2 * PAGE_SIZE + 5);
  g_assert_no_error (error);
  versions = es_event_cursor_get_versions (cursor, &n_versions);
  g_assert_cmpuint (n_versions, ==, 2 * PAGE_SIZE + 5);
  for (guint i = 0; i < n_versions; i++)
    g_assert_cmpint (versions[i], ==, PAGE_SIZE + 1 + i);
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, 10000, NULL, &error), ==, 0);
  g_assert_no_error (error);
}

static void
test_cursor_close (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) kept = NULL;

  write_varied (f, "s", 10);
  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  ES_TEST_ASSERT_OK (es_event_cursor_next (cursor, NULL, &error));
  kept = es_event_cursor_dup_data (cursor);

  ES_TEST_ASSERT_OK (es_event_cursor_close (cursor, NULL, &error));
  ES_TEST_ASSERT_OK (es_event_cursor_close (cursor, NULL, &error));

  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, 5, NULL, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  g_clear_error (&error);

  /* What was duplicated lives on. */
  g_assert_cmpmem (g_bytes_get_data (kept, NULL), g_bytes_get_size (kept),
                   "s payload 0 \xff", strlen ("s payload 0 \xff"));
}

static void
test_cursor_cancel (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  gint64 expected = 0;

  es_test_write_n (stream, PAGE_SIZE + 10, "Written");
  g_cancellable_cancel (cancellable);

  g_assert_null (es_stream_read_cursor (stream, 0, NULL, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  /* Inside the page, nothing is read: a cancelled cancellable is not
   * looked at. At the page's end, the next page is not read. */
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, PAGE_SIZE, cancellable, &error), ==,
                    PAGE_SIZE);
  g_assert_no_error (error);
  g_assert_false (es_event_cursor_next (cursor, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* Nothing was skipped: the next call reads the page again. */
  expected = PAGE_SIZE;
  while (es_event_cursor_next (cursor, NULL, &error))
    g_assert_cmpint (es_event_cursor_get_version (cursor), ==, ++expected);
  g_assert_no_error (error);
  g_assert_cmpint (expected, ==, PAGE_SIZE + 10);
}

static void
test_cursor_closed_factory (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;

  es_test_write_n (stream, PAGE_SIZE + 1, "Written");
  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (es_event_cursor_next_rows (cursor, PAGE_SIZE, NULL, &error), ==, PAGE_SIZE);

  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));

  /* The buffered rows are gone past; the next page cannot be read. */
  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  g_assert_null (es_stream_read_cursor (stream, 0, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
}

static void
test_cursor_invalid (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventFilter) bad = es_event_filter_new ();
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_null (es_stream_read_cursor (stream, -1, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  es_event_filter_add_equals (bad, "no_such_field", g_variant_new_string ("x"));
  g_assert_null (es_stream_read_cursor (stream, 0, bad, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* Getters without a current row are programmer errors. */
  es_test_write_n (stream, 1, "Written");
  cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_test_expect_message ("Es", G_LOG_LEVEL_CRITICAL, "*len > 0*");
  g_assert_null (es_event_cursor_get_event_type (cursor));
  g_test_assert_expected_messages ();
  ES_TEST_ASSERT_OK (es_event_cursor_next (cursor, NULL, &error));
  g_assert_cmpstr (es_event_cursor_get_event_type (cursor), ==, "Written");
  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_no_error (error);
  g_test_expect_message ("Es", G_LOG_LEVEL_CRITICAL, "*len > 0*");
  g_assert_cmpint (es_event_cursor_get_version (cursor), ==, 0);
  g_test_assert_expected_messages ();
}

/* Borrowed strings and data stay valid, unchanged, until the cursor
 * moves, whatever else is called meanwhile; across a page change, copies
 * made before stay right. Run under ASan/valgrind, this also checks that
 * nothing borrowed is read after it is freed by the library. */
static void
test_cursor_borrowed (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;

  write_varied (f, "a", PAGE_SIZE);
  write_varied (f, "b", PAGE_SIZE);
  all = open_stream (f, ES_ALL_STREAM);
  cursor = es_stream_read_cursor (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);

  while (es_event_cursor_next (cursor, NULL, &error))
    {
      const char *type = es_event_cursor_get_event_type (cursor);
      const char *stream_id = es_event_cursor_get_stream_id (cursor);
      const char *key = es_event_cursor_get_idempotency_key (cursor);
      const char *metadata = es_event_cursor_get_metadata (cursor);
      g_autofree char *type_copy = g_strdup (type);
      g_autofree char *stream_copy = g_strdup (stream_id);
      g_autofree char *key_copy = g_strdup (key);
      g_autofree char *metadata_copy = g_strdup (metadata);
      const guint8 *bytes;
      gsize length = 0;
      g_autofree guint8 *bytes_copy = NULL;
      gsize n = 0;

      bytes = es_event_cursor_get_data (cursor, &length);
      bytes_copy = g_memdup2 (bytes, length);

      /* Other calls in between. */
      g_ptr_array_add (events, es_event_cursor_get_event (cursor));
      g_ptr_array_add (kept, es_event_cursor_dup_data (cursor));
      g_strfreev (es_event_cursor_dup_event_types (cursor));
      g_ptr_array_unref (es_event_cursor_dup_data_list (cursor));
      es_event_cursor_get_versions (cursor, (guint *) &n);

      g_assert_cmpstr (type, ==, type_copy);
      g_assert_cmpstr (stream_id, ==, stream_copy);
      g_assert_cmpstr (key, ==, key_copy);
      g_assert_cmpstr (metadata, ==, metadata_copy);
      g_assert_cmpmem (bytes, length, bytes_copy, length);
    }
  g_assert_no_error (error);
  g_clear_object (&cursor);

  /* Duplicates and events outlive the pages and the cursor. */
  g_assert_cmpuint (kept->len, ==, 2 * PAGE_SIZE);
  for (guint i = 0; i < kept->len; i++)
    g_assert_true (g_bytes_equal (g_ptr_array_index (kept, i),
                                  es_stored_event_get_data (g_ptr_array_index (events, i))));
  {
    g_autoptr(GPtrArray) expected = es_test_read_all_ok (all, 0, NULL);

    for (guint i = 0; i < expected->len; i++)
      {
        EsStoredEvent *a = g_ptr_array_index (expected, i);
        EsStoredEvent *b = g_ptr_array_index (events, i);

        g_assert_cmpstr (es_stored_event_get_stream_id (a), ==, es_stored_event_get_stream_id (b));
        g_assert_cmpstr (es_stored_event_get_event_type (a), ==, es_stored_event_get_event_type (b));
        g_assert_cmpint (es_stored_event_get_sequence_id (a), ==,
                         es_stored_event_get_sequence_id (b));
        g_assert_true (g_bytes_equal (es_stored_event_get_data (a), g_ptr_array_index (kept, i)));
      }
  }
}

static void
test_cursor_async (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(GPtrArray) expected = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  guint i = 0;

  write_varied (f, "s", PAGE_SIZE + 3);
  expected = es_test_read_all_ok (stream, 0, NULL);

  es_stream_read_cursor_async (stream, 0, NULL, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  cursor = es_stream_read_cursor_finish (stream, result, &error);
  g_assert_no_error (error);
  g_clear_object (&result);

  for (;;)
    {
      gboolean moved;

      es_event_cursor_next_async (cursor, NULL, es_test_store_result_cb, &result);
      /* Even a row already buffered is delivered from the main loop. */
      g_assert_null (result);
      if (i == PAGE_SIZE)
        {
          /* The next page is read in a worker meanwhile. */
          g_assert_false (es_event_cursor_next (cursor, NULL, &error));
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
          g_clear_error (&error);
          g_assert_false (es_event_cursor_close (cursor, NULL, &error));
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
          g_clear_error (&error);
        }
      es_test_wait_result (&result);
      moved = es_event_cursor_next_finish (cursor, result, &error);
      g_assert_no_error (error);
      g_clear_object (&result);
      if (!moved)
        break;
      assert_row_is (cursor, g_ptr_array_index (expected, i));
      i++;
    }
  g_assert_cmpuint (i, ==, PAGE_SIZE + 3);

  ES_TEST_ASSERT_OK (es_event_cursor_close (cursor, NULL, &error));
  es_event_cursor_next_async (cursor, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_false (es_event_cursor_next_finish (cursor, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
}

/* A stream implementation outside the library: only what the default
 * read_cursor needs, reads delegated to a library stream. */
#define TEST_TYPE_WRAPPED_STREAM (test_wrapped_stream_get_type ())
G_DECLARE_FINAL_TYPE (TestWrappedStream, test_wrapped_stream, TEST, WRAPPED_STREAM, GObject)

struct _TestWrappedStream
{
  GObject   parent_instance;
  EsStream *inner;
  guint     n_reads;
};

static const char *
wrapped_get_stream_id (EsStream *stream)
{
  return es_stream_get_stream_id (TEST_WRAPPED_STREAM (stream)->inner);
}

static gint64
wrapped_get_version (EsStream *stream)
{
  return es_stream_get_version (TEST_WRAPPED_STREAM (stream)->inner);
}

static EsEventEnumerator *
wrapped_read (EsStream       *stream,
              gint64          after_version,
              EsEventFilter  *filter,
              GCancellable   *cancellable,
              GError        **error)
{
  TestWrappedStream *self = TEST_WRAPPED_STREAM (stream);

  self->n_reads++;
  return es_stream_read (self->inner, after_version, filter, cancellable, error);
}

static void
test_wrapped_stream_iface_init (EsStreamInterface *iface)
{
  iface->get_stream_id = wrapped_get_stream_id;
  iface->get_version = wrapped_get_version;
  iface->read = wrapped_read;
}

G_DEFINE_FINAL_TYPE_WITH_CODE (TestWrappedStream, test_wrapped_stream, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STREAM,
                                                      test_wrapped_stream_iface_init))

static void
test_wrapped_stream_finalize (GObject *object)
{
  g_clear_object (&TEST_WRAPPED_STREAM (object)->inner);
  G_OBJECT_CLASS (test_wrapped_stream_parent_class)->finalize (object);
}

static void
test_wrapped_stream_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  EsStream *stream = ES_STREAM (object);

  if (prop_id == 1)
    g_value_set_string (value, wrapped_get_stream_id (stream));
  else
    g_value_set_int64 (value, wrapped_get_version (stream));
}

static void
test_wrapped_stream_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  /* The stream id is the inner stream's. */
}

static void
test_wrapped_stream_class_init (TestWrappedStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = test_wrapped_stream_finalize;
  object_class->get_property = test_wrapped_stream_get_property;
  object_class->set_property = test_wrapped_stream_set_property;
  g_object_class_override_property (object_class, 1, "stream-id");
  g_object_class_override_property (object_class, 2, "version");
}

static void
test_wrapped_stream_init (TestWrappedStream *self)
{
}

static void
test_cursor_default (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestWrappedStream) wrapped = g_object_new (TEST_TYPE_WRAPPED_STREAM, NULL);
  g_autoptr(EsEventFilter) by_type = es_event_filter_new ();
  g_autoptr(GPtrArray) expected = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  guint n;

  write_varied (f, "s", 2 * PAGE_SIZE + 1);
  wrapped->inner = open_stream (f, "s");
  es_event_filter_add_equals (by_type, "event_type", g_variant_new_string ("Added"));

  expected = es_test_read_all_ok (wrapped->inner, 0, by_type);
  cursor = es_stream_read_cursor (ES_STREAM (wrapped), 0, by_type, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (wrapped->n_reads, ==, 1);
  for (guint i = 0; i < expected->len; i++)
    {
      ES_TEST_ASSERT_OK (es_event_cursor_next (cursor, NULL, &error));
      assert_row_is (cursor, g_ptr_array_index (expected, i));
    }
  g_assert_false (es_event_cursor_next (cursor, NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&cursor);

  /* Windows, and the asynchronous read, through the default too. */
  es_stream_read_cursor_async (ES_STREAM (wrapped), 10, NULL, NULL, es_test_store_result_cb,
                               &result);
  es_test_wait_result (&result);
  cursor = es_stream_read_cursor_finish (ES_STREAM (wrapped), result, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (wrapped->n_reads, ==, 2);
  n = 0;
  for (;;)
    {
      const gint64 *versions;
      guint window = es_event_cursor_next_rows (cursor, 700, NULL, &error), n_versions;

      g_assert_no_error (error);
      if (window == 0)
        break;
      versions = es_event_cursor_get_versions (cursor, &n_versions);
      g_assert_cmpuint (n_versions, ==, window);
      for (guint i = 0; i < window; i++)
        g_assert_cmpint (versions[i], ==, 10 + (++n));
    }
  g_assert_cmpuint (n, ==, 2 * PAGE_SIZE + 1 - 10);

  /* Errors of read come through. */
  g_clear_object (&cursor);
  g_assert_null (es_stream_read_cursor (ES_STREAM (wrapped), -1, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

/* The storage handle's page of rows, without a stream: through the
 * public storage API the cursor's reads match read_page_full. Checks the
 * backend's native rows against its events on a read with every column. */
static void
test_cursor_matches_storage (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;

  write_varied (f, "x", 40);
  page = es_storage_handle_read_page_full (storage_of (f), NULL, 0, ES_READ_FLAGS_NONE, NULL,
                                           100, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 40);

  all = open_stream (f, ES_ALL_STREAM);
  cursor = es_stream_read_cursor (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < page->len; i++)
    {
      ES_TEST_ASSERT_OK (es_event_cursor_next (cursor, NULL, &error));
      assert_row_is (cursor, g_ptr_array_index (page, i));
    }
}

/* dup_data_joined(): the window's payloads in one block, with their
 * lengths, equal to the enumerator's data; a copy that outlives the
 * window. */
static void
test_cursor_data_joined (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GPtrArray) expected = NULL;
  g_autoptr(EsEventCursor) cursor = NULL;
  g_autoptr(GPtrArray) blocks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GError) error = NULL;
  guint seen = 0;
  guint max = 1;
  guint n_rows = 99;
  gsize *lengths = NULL;
  g_autoptr(GBytes) empty = NULL;
  g_autoptr(GByteArray) all_expected = g_byte_array_new ();
  g_autoptr(GByteArray) all_joined = g_byte_array_new ();

  g_test_summary ("EsEventCursor: dup_data_joined() gives the payloads of the window (empty "
                  "ones included) joined, and the length of each, which outlive the window");

  write_varied (f, "a", 1100);
  write_varied (f, "b", 300);

  all = open_stream (f, ES_ALL_STREAM);
  expected = es_test_read_all_ok (all, 0, NULL);
  cursor = es_stream_read_cursor (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);

  /* Without a window: nothing. */
  empty = es_event_cursor_dup_data_joined (cursor, &lengths, &n_rows);
  g_assert_cmpuint (g_bytes_get_size (empty), ==, 0);
  g_assert_cmpuint (n_rows, ==, 0);
  g_free (lengths);

  for (;;)
    {
      g_autofree gsize *row_lengths = NULL;
      GBytes *block;
      const char *bytes;
      gsize size, offset = 0;
      guint n = es_event_cursor_next_rows (cursor, max, NULL, &error);

      g_assert_no_error (error);
      if (n == 0)
        break;

      block = es_event_cursor_dup_data_joined (cursor, &row_lengths, &n_rows);
      g_ptr_array_add (blocks, block);
      g_assert_cmpuint (n_rows, ==, n);
      bytes = g_bytes_get_data (block, &size);
      for (guint i = 0; i < n; i++)
        {
          GBytes *want = es_stored_event_get_data (g_ptr_array_index (expected, seen + i));

          g_assert_cmpmem (bytes + offset, row_lengths[i],
                           g_bytes_get_data (want, NULL), g_bytes_get_size (want));
          offset += row_lengths[i];
        }
      g_assert_cmpuint (offset, ==, size);

      /* The out arguments are optional. */
      g_bytes_unref (es_event_cursor_dup_data_joined (cursor, NULL, NULL));

      seen += n;
      max = max * 3 + 1;
    }
  g_assert_cmpuint (seen, ==, expected->len);
  g_assert_cmpuint (blocks->len, >, 3);

  /* The blocks live on after the cursor moved on and closed: together
   * they are every payload, in order. */
  ES_TEST_ASSERT_OK (es_event_cursor_close (cursor, NULL, &error));
  g_clear_object (&cursor);
  for (guint i = 0; i < expected->len; i++)
    {
      GBytes *want = es_stored_event_get_data (g_ptr_array_index (expected, i));

      g_byte_array_append (all_expected, g_bytes_get_data (want, NULL),
                           g_bytes_get_size (want));
    }
  for (guint b = 0; b < blocks->len; b++)
    {
      gsize size;
      const guint8 *bytes = g_bytes_get_data (g_ptr_array_index (blocks, b), &size);

      g_byte_array_append (all_joined, bytes, size);
    }
  g_assert_cmpmem (all_joined->data, all_joined->len, all_expected->data, all_expected->len);
}

void
add_cursor_tests (void)
{
  add_test ("cursor/stream", test_cursor_stream);
  add_test ("cursor/all", test_cursor_all);
  add_test ("cursor/filters", test_cursor_filters);
  add_test ("cursor/life-cycle", test_cursor_life_cycle);
  add_test ("cursor/page-boundaries", test_cursor_page_boundaries);
  add_test ("cursor/later-writes", test_cursor_sees_later_writes);
  add_test ("cursor/windows", test_cursor_windows);
  add_test ("cursor/large-windows", test_cursor_large_windows);
  add_test ("cursor/close", test_cursor_close);
  add_test ("cursor/cancel", test_cursor_cancel);
  add_test ("cursor/closed-factory", test_cursor_closed_factory);
  add_test ("cursor/invalid", test_cursor_invalid);
  add_test ("cursor/borrowed", test_cursor_borrowed);
  add_test ("cursor/async", test_cursor_async);
  add_test ("cursor/default", test_cursor_default);
  add_test ("cursor/storage", test_cursor_matches_storage);
  add_test ("cursor/data-joined", test_cursor_data_joined);
}
