/* test-conformance-lifecycle.c: the stream life cycle (issue 16), on every
 * backend of the conformance runner (test-conformance.c selects it with
 * --backend): listing, stream information, soft and hard deletes,
 * truncation, erasure, retention, positions, backwards reads, range
 * filters, and how readers meet all that.
 *
 * Written against the public API only. Each test checks the answers after
 * every operation (reads, stream information, listings, snapshots), that
 * a repeated operation changes nothing, and that a refused one changed
 * nothing. Ages are made deterministic by sweeping through
 * es_storage_handle_sweep() with a time in the future; the few tests that
 * need the real clock to move wait for it to move rather than assert on
 * elapsed time.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>

#include "test-conformance.h"

/* Events (and streams) per page of an enumerator. */
#define PAGE_SIZE 1024

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static EsStorageHandle *
storage_of (Fixture *f)
{
  return es_stream_factory_get_storage (f->factory);
}

/* Writes @n events in one go to the stream named @stream_id. */
static void
write_to (Fixture    *f,
          const char *stream_id,
          guint       n)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);

  es_test_write_n (stream, n, "Written");
}

static GPtrArray *
read_events (Fixture       *f,
             const char    *stream_id,
             EsEventFilter *filter)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);

  return es_test_read_all_ok (stream, 0, filter);
}

/* "v1,v2,..." of the events of a read; for @all "stream:version,...". */
static char *
describe (GPtrArray *events,
          gboolean   with_stream)
{
  g_autoptr(GString) s = g_string_new (NULL);

  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      if (i > 0)
        g_string_append_c (s, ',');
      if (with_stream)
        g_string_append_printf (s, "%s:", es_stored_event_get_stream_id (event));
      g_string_append_printf (s, "%" G_GINT64_FORMAT, es_stored_event_get_version (event));
    }
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static char *
read_versions (Fixture       *f,
               const char    *stream_id,
               EsEventFilter *filter)
{
  g_autoptr(GPtrArray) events = read_events (f, stream_id, filter);

  return describe (events, g_str_equal (stream_id, ES_ALL_STREAM));
}

#define assert_versions(f, stream_id, filter, expected) \
  G_STMT_START { \
    g_autofree char *_got = read_versions ((f), (stream_id), (filter)); \
    g_assert_cmpstr (_got, ==, (expected)); \
  } G_STMT_END

static EsStreamInfo *
info_of (Fixture    *f,
         const char *stream_id)
{
  g_autoptr(GError) error = NULL;
  EsStreamInfo *info = es_stream_factory_get_stream_info (f->factory, stream_id, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (info);
  return info;
}

static void
assert_info (Fixture       *f,
             const char    *stream_id,
             EsStreamState  state,
             gint64         version,
             gint64         count,
             gint64         first_version)
{
  g_autoptr(EsStreamInfo) info = info_of (f, stream_id);

  g_assert_cmpstr (es_stream_info_get_stream_id (info), ==, stream_id);
  g_assert_cmpint (es_stream_info_get_state (info), ==, state);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, version);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, count);
  g_assert_cmpint (es_stream_info_get_first_version (info), ==, first_version);
  if (count == 0)
    {
      g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), ==, 0);
      g_assert_cmpint (es_stream_info_get_last_timestamp_usec (info), ==, 0);
      g_assert_null (es_stream_info_get_first_timestamp (info));
    }
  else
    {
      g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), >, 0);
      g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), <=,
                       es_stream_info_get_last_timestamp_usec (info));
      g_assert_nonnull (es_stream_info_get_last_timestamp (info));
    }
}

/* The last position used: what every delete moves. */
static gint64
last_position (Fixture *f)
{
  g_autoptr(EsStreamInfo) info = info_of (f, NULL);

  g_assert_cmpstr (es_stream_info_get_stream_id (info), ==, ES_ALL_STREAM);
  return es_stream_info_get_current_version (info);
}

/* The ids of a listing, joined by ","; states as "id(D)" and "id(T)". */
static char *
list_ids (Fixture            *f,
          const char         *prefix,
          EsListStreamsFlags  flags)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(GString) s = g_string_new (NULL);
  EsStreamInfo *info;

  streams = es_stream_factory_list_streams (f->factory, prefix, flags, NULL, &error);
  g_assert_no_error (error);
  while ((info = es_stream_info_enumerator_next (streams, NULL, &error)) != NULL)
    {
      if (s->len > 0)
        g_string_append_c (s, ',');
      g_string_append (s, es_stream_info_get_stream_id (info));
      if (es_stream_info_get_state (info) == ES_STREAM_STATE_DELETED)
        g_string_append (s, "(D)");
      else if (es_stream_info_get_state (info) == ES_STREAM_STATE_TOMBSTONED)
        g_string_append (s, "(T)");
      g_object_unref (info);
    }
  g_assert_no_error (error);
  /* The end is sticky. */
  g_assert_null (es_stream_info_enumerator_next (streams, NULL, &error));
  g_assert_no_error (error);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

#define assert_listing(f, prefix, flags, expected) \
  G_STMT_START { \
    g_autofree char *_got = list_ids ((f), (prefix), (flags)); \
    g_assert_cmpstr (_got, ==, (expected)); \
  } G_STMT_END

/* Every record of @all read through the storage with @flags, in pages of
 * @limit. */
static GPtrArray *
read_all_records (Fixture     *f,
                  EsReadFlags  flags,
                  EsEventFilter *filter,
                  guint        limit)
{
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func (g_object_unref);
  gboolean backwards = (flags & ES_READ_FLAGS_BACKWARDS) != 0;
  gint64 position = backwards ? G_MAXINT64 : 0;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) page = NULL;

      page = es_storage_handle_read_page_full (storage_of (f), NULL, position, flags, filter,
                                               limit, NULL, &error);
      g_assert_no_error (error);
      g_assert_nonnull (page);
      for (guint i = 0; i < page->len; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (page, i);
          gint64 seq = es_stored_event_get_sequence_id (event);

          if (backwards)
            g_assert_cmpint (seq, <, position);
          else
            g_assert_cmpint (seq, >, position);
          position = seq;
          g_ptr_array_add (all, g_object_ref (event));
        }
      if (page->len < limit)
        break;
    }
  return g_steal_pointer (&all);
}

static guint
count_markers (GPtrArray *events)
{
  guint n = 0;

  for (guint i = 0; i < events->len; i++)
    if (es_stored_event_get_flags (g_ptr_array_index (events, i)) &
        ES_STORED_EVENT_FLAGS_TOMBSTONE)
      n++;
  return n;
}

static gboolean
has_snapshot (Fixture    *f,
              const char *stream_id,
              const char *projection)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSnapshot) snapshot = es_stream_load_snapshot (stream, projection, NULL, &error);

  g_assert_no_error (error);
  return snapshot != NULL;
}

static void
save_snapshot (Fixture    *f,
               const char *stream_id,
               const char *projection,
               gint64      version)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(GBytes) state = g_bytes_new_static ("state", 5);
  g_autoptr(GError) error = NULL;

  ES_TEST_ASSERT_OK (es_stream_snapshot (stream, state, version, projection, NULL, &error));
}

static void
assert_error_names (const GError *error,
                    GQuark        domain,
                    gint          code,
                    const char   *name1,
                    const char   *name2)
{
  g_assert_error ((GError *) error, domain, code);
  if (name1 != NULL && strstr (error->message, name1) == NULL)
    g_error ("'%s' does not name '%s'", error->message, name1);
  if (name2 != NULL && strstr (error->message, name2) == NULL)
    g_error ("'%s' does not name '%s'", error->message, name2);
}

/* Waits until the real clock has moved past @usec: ages measured against
 * it then cover what was written before. */
static void
wait_clock_past (gint64 usec)
{
  while (g_get_real_time () <= usec)
    g_usleep (1000);
}

static gint64
timestamp_of (Fixture    *f,
              const char *stream_id,
              gint64      version)
{
  g_autoptr(GPtrArray) events = read_events (f, stream_id, NULL);

  for (guint i = 0; i < events->len; i++)
    if (es_stored_event_get_version (g_ptr_array_index (events, i)) == version)
      return es_stored_event_get_timestamp_usec (g_ptr_array_index (events, i));
  g_assert_not_reached ();
}

/* ------------------------------------------------------------------ */
/* Listing and stream information                                      */
/* ------------------------------------------------------------------ */

static void
test_list_order_and_info (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(GPtrArray) batch = NULL;
  gint64 before = g_get_real_time ();
  EsStreamInfo *info;

  g_test_summary ("Streams are listed in byte-wise order of their ids, with what is kept "
                  "about them; stream information says the same");

  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "");
  write_to (f, "b", 2);
  write_to (f, "a", 3);
  write_to (f, "B", 1);
  write_to (f, "\xc3\xa9t\xc3\xa9", 1);  /* "été": bytes above ASCII come last */
  write_to (f, "a-1", 1);

  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "B,a,a-1,b,\xc3\xa9t\xc3\xa9");
  assert_listing (f, "", ES_LIST_STREAMS_FLAGS_NONE, "B,a,a-1,b,\xc3\xa9t\xc3\xa9");

  streams = es_stream_factory_list_streams (f->factory, "a", ES_LIST_STREAMS_FLAGS_NONE, NULL,
                                            &error);
  g_assert_no_error (error);
  info = es_stream_info_enumerator_next (streams, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (es_stream_info_get_stream_id (info), ==, "a");
  g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_ACTIVE);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 3);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 3);
  g_assert_cmpint (es_stream_info_get_first_version (info), ==, 1);
  g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), >=, before);
  g_assert_cmpint (es_stream_info_get_last_timestamp_usec (info), <=, g_get_real_time ());
  g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), ==,
                   timestamp_of (f, "a", 1));
  g_assert_cmpint (es_stream_info_get_last_timestamp_usec (info), ==,
                   timestamp_of (f, "a", 3));
  g_assert_cmpint (es_stream_info_get_max_age (info), ==, 0);
  g_assert_cmpint (es_stream_info_get_max_count (info), ==, 0);
  g_object_unref (info);
  batch = es_stream_info_enumerator_next_batch (streams, 10, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (batch->len, ==, 1);
  g_assert_cmpstr (es_stream_info_get_stream_id (g_ptr_array_index (batch, 0)), ==, "a-1");
  ES_TEST_ASSERT_OK (es_stream_info_enumerator_close (streams, NULL, &error));
  g_assert_true (es_stream_info_enumerator_is_closed (streams));
  g_assert_null (es_stream_info_enumerator_next (streams, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);

  assert_info (f, "a", ES_STREAM_STATE_ACTIVE, 3, 3, 1);
  assert_info (f, "b", ES_STREAM_STATE_ACTIVE, 2, 2, 1);
  /* A stream nobody wrote to: active, zeros, no policy; not listed. */
  assert_info (f, "never", ES_STREAM_STATE_ACTIVE, 0, 0, 0);
  assert_listing (f, "n", ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED, "");

  /* The whole database, by NULL or by "@all". */
  {
    g_autoptr(EsStreamInfo) all = info_of (f, NULL);
    g_autoptr(EsStreamInfo) all2 = info_of (f, ES_ALL_STREAM);

    g_assert_cmpstr (es_stream_info_get_stream_id (all), ==, ES_ALL_STREAM);
    g_assert_cmpint (es_stream_info_get_current_version (all), ==, 8);
    g_assert_cmpint (es_stream_info_get_event_count (all), ==, 8);
    g_assert_cmpint (es_stream_info_get_current_version (all2), ==, 8);
    g_assert_cmpint (es_stream_info_get_event_count (all2), ==, 8);
    g_assert_cmpint (es_stream_info_get_last_timestamp_usec (all), ==,
                     timestamp_of (f, "a-1", 1));
  }
}

static void
test_list_prefix_bytes (Fixture       *f,
                        gconstpointer  data)
{
  g_test_summary ("A listing prefix is a byte prefix: LIKE wildcards are literal, "
                  "case matters, multibyte UTF-8 works");

  write_to (f, "a%b", 1);
  write_to (f, "a%", 1);
  write_to (f, "axb", 1);
  write_to (f, "a_c", 1);
  write_to (f, "abc", 1);
  write_to (f, "a", 1);
  write_to (f, "A%", 1);
  write_to (f, "a\\b", 1);
  write_to (f, "\xc3\xa9t\xc3\xa9", 1);       /* été */
  write_to (f, "\xc3\xa9t\xc3\xa9-2", 1);     /* été-2 */
  write_to (f, "\xc3\xaat\xc3\xa9", 1);       /* êté */
  write_to (f, "ete", 1);
  write_to (f, "\xc3\xa9", 1);                /* é */

  assert_listing (f, "a%", ES_LIST_STREAMS_FLAGS_NONE, "a%,a%b");
  assert_listing (f, "a_", ES_LIST_STREAMS_FLAGS_NONE, "a_c");
  assert_listing (f, "a\\", ES_LIST_STREAMS_FLAGS_NONE, "a\\b");
  assert_listing (f, "A", ES_LIST_STREAMS_FLAGS_NONE, "A%");
  assert_listing (f, "a", ES_LIST_STREAMS_FLAGS_NONE, "a,a%,a%b,a\\b,a_c,abc,axb");
  assert_listing (f, "\xc3\xa9t", ES_LIST_STREAMS_FLAGS_NONE,
                  "\xc3\xa9t\xc3\xa9,\xc3\xa9t\xc3\xa9-2");
  assert_listing (f, "\xc3\xa9", ES_LIST_STREAMS_FLAGS_NONE,
                  "\xc3\xa9,\xc3\xa9t\xc3\xa9,\xc3\xa9t\xc3\xa9-2");
  assert_listing (f, "e", ES_LIST_STREAMS_FLAGS_NONE, "ete");
  assert_listing (f, "\xc3\xaa", ES_LIST_STREAMS_FLAGS_NONE, "\xc3\xaat\xc3\xa9");
}

static void
list_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
test_list_pages (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  guint n = PAGE_SIZE + 100;
  guint n_active = 0, n_deleted = 0, n_tombstoned = 0;

  g_test_summary ("A listing of more streams than a page holds returns each once, in "
                  "order, across pages, with and without the deleted ones, sync and async");

  write_to (f, "other", 1);
  write_to (f, "s", 1);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("s-%05u", i);

      write_to (f, id, 1 + i % 2);
    }
  write_to (f, "t", 1);

  /* Some deleted: every 10th softly, every 100th for good. */
  for (guint i = 0; i < n; i += 10)
    {
      g_autofree char *id = g_strdup_printf ("s-%05u", i);

      ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, id, ES_VERSION_ANY,
                                                          i % 100 == 0
                                                          ? ES_DELETE_FLAGS_TOMBSTONE
                                                          : ES_DELETE_FLAGS_NONE,
                                                          NULL, &error));
    }

  /* Async, in batches that do not divide a page. */
  es_stream_factory_list_streams_async (f->factory, "s-", ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED,
                                        NULL, list_cb, &result);
  es_test_wait_result (&result);
  streams = es_stream_factory_list_streams_finish (f->factory, result, &error);
  g_assert_no_error (error);
  g_clear_object (&result);
  for (;;)
    {
      g_autoptr(GPtrArray) batch = NULL;

      es_stream_info_enumerator_next_batch_async (streams, 333, NULL, list_cb, &result);
      es_test_wait_result (&result);
      batch = es_stream_info_enumerator_next_batch_finish (streams, result, &error);
      g_assert_no_error (error);
      g_clear_object (&result);
      if (batch->len == 0)
        break;
      for (guint i = 0; i < batch->len; i++)
        g_ptr_array_add (all, g_object_ref (g_ptr_array_index (batch, i)));
    }

  g_assert_cmpuint (all->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      EsStreamInfo *info = g_ptr_array_index (all, i);
      g_autofree char *id = g_strdup_printf ("s-%05u", i);
      EsStreamState expected = i % 100 == 0 ? ES_STREAM_STATE_TOMBSTONED
                               : i % 10 == 0 ? ES_STREAM_STATE_DELETED
                               : ES_STREAM_STATE_ACTIVE;

      g_assert_cmpstr (es_stream_info_get_stream_id (info), ==, id);
      g_assert_cmpint (es_stream_info_get_state (info), ==, expected);
      g_assert_cmpint (es_stream_info_get_current_version (info), ==, 1 + i % 2);
      g_assert_cmpint (es_stream_info_get_event_count (info), ==,
                       expected == ES_STREAM_STATE_ACTIVE ? 1 + i % 2 : 0);
      if (expected == ES_STREAM_STATE_ACTIVE)
        n_active++;
      else if (expected == ES_STREAM_STATE_DELETED)
        n_deleted++;
      else
        n_tombstoned++;
    }
  g_assert_cmpuint (n_tombstoned, ==, (n + 99) / 100);

  /* By default, the active ones only, still in order across pages. */
  g_clear_object (&streams);
  streams = es_stream_factory_list_streams (f->factory, "s-", ES_LIST_STREAMS_FLAGS_NONE, NULL,
                                            &error);
  g_assert_no_error (error);
  {
    g_autofree char *last = NULL;
    guint count = 0;
    EsStreamInfo *info;

    while ((info = es_stream_info_enumerator_next (streams, NULL, &error)) != NULL)
      {
        g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_ACTIVE);
        if (last != NULL)
          g_assert_cmpint (strcmp (last, es_stream_info_get_stream_id (info)), <, 0);
        g_free (last);
        last = g_strdup (es_stream_info_get_stream_id (info));
        g_object_unref (info);
        count++;
      }
    g_assert_no_error (error);
    g_assert_cmpuint (count, ==, n_active);
  }

  /* Without a prefix: the others too, once each. */
  {
    g_autofree char *ids = list_ids (f, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED);
    g_auto(GStrv) parts = g_strsplit (ids, ",", -1);

    g_assert_cmpuint (g_strv_length (parts), ==, n + 3);
    g_assert_cmpstr (parts[0], ==, "other");
    g_assert_cmpstr (parts[1], ==, "s");
    g_assert_cmpstr (parts[2], ==, "s-00000(T)");
    g_assert_cmpstr (parts[n + 2], ==, "t");
  }
  (void) n_deleted;
}

static void
test_list_bad_input (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(EsStreamInfo) info = NULL;

  g_test_summary ("Listing and stream information refuse bad input and a closed factory "
                  "at once, with clear errors");

  write_to (f, "a", 1);

  streams = es_stream_factory_list_streams (f->factory, "\xc3", ES_LIST_STREAMS_FLAGS_NONE,
                                            NULL, &error);
  g_assert_null (streams);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  streams = es_stream_factory_list_streams (f->factory, NULL, 1 << 5, NULL, &error);
  g_assert_null (streams);
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "0x20", NULL);
  g_clear_error (&error);

  info = es_stream_factory_get_stream_info (f->factory, "", NULL, &error);
  g_assert_null (info);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  info = es_stream_factory_get_stream_info (f->factory, "@other", NULL, &error);
  g_assert_null (info);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* An enumerator started before the close fails on its next page. */
  streams = es_stream_factory_list_streams (f->factory, NULL, ES_LIST_STREAMS_FLAGS_NONE, NULL,
                                            &error);
  g_assert_no_error (error);

  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));

  g_assert_null (es_stream_factory_list_streams (f->factory, NULL, ES_LIST_STREAMS_FLAGS_NONE,
                                                 NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_assert_null (es_stream_factory_get_stream_info (f->factory, "a", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  /* The first page was read before: it is still handed out. */
  info = es_stream_info_enumerator_next (streams, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (es_stream_info_get_stream_id (info), ==, "a");
}

/* ------------------------------------------------------------------ */
/* Soft delete                                                         */
/* ------------------------------------------------------------------ */

static void
test_delete_soft (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Again", "x", NULL, NULL);
  gint64 position;

  g_test_summary ("A soft delete removes the events and snapshots of a stream, keeps its "
                  "version, and the next write continues after it");

  write_to (f, "gone", 5);
  write_to (f, "kept", 2);
  save_snapshot (f, "gone", NULL, 5);
  save_snapshot (f, "gone", "other", 3);
  save_snapshot (f, "kept", NULL, 2);
  save_snapshot (f, ES_ALL_STREAM, "everything", 7);
  position = last_position (f);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "gone", 5, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));

  assert_versions (f, "gone", NULL, "");
  assert_versions (f, ES_ALL_STREAM, NULL, "kept:1,kept:2");
  assert_info (f, "gone", ES_STREAM_STATE_DELETED, 5, 0, 0);
  assert_info (f, "kept", ES_STREAM_STATE_ACTIVE, 2, 2, 1);
  g_assert_false (has_snapshot (f, "gone", NULL));
  g_assert_false (has_snapshot (f, "gone", "other"));
  g_assert_true (has_snapshot (f, "kept", NULL));
  g_assert_true (has_snapshot (f, ES_ALL_STREAM, "everything"));
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "kept");
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED, "gone(D),kept");
  /* The delete took a position of its own. */
  g_assert_cmpint (last_position (f), >, position);

  /* The metrics keep the version too. */
  stream = open_stream (f, "gone");
  g_assert_cmpint (es_stream_get_version (stream), ==, 5);
  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 5);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 0);

  /* The next write expects the kept version, not an empty stream. */
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &error),
                   ==, -1);
  assert_error_names (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION, "5", NULL);
  g_clear_error (&error);
  assert_info (f, "gone", ES_STREAM_STATE_DELETED, 5, 0, 0);

  g_assert_cmpint (es_stream_write (stream, &event, 1, 5, NULL, &error), ==, 6);
  g_assert_no_error (error);
  assert_versions (f, "gone", NULL, "6");
  assert_info (f, "gone", ES_STREAM_STATE_ACTIVE, 6, 1, 6);
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "gone,kept");

  /* Soft-deleting again works, and keeps the version again. */
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "gone", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_info (f, "gone", ES_STREAM_STATE_DELETED, 6, 0, 0);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "gone", 6,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_info (f, "gone", ES_STREAM_STATE_DELETED, 6, 0, 0);
}

static void
test_delete_wrong_expected (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gint64 position;

  g_test_summary ("A delete expecting another version fails with WRONG_EXPECTED_VERSION "
                  "naming the version found, and changes nothing");

  write_to (f, "s", 5);
  save_snapshot (f, "s", NULL, 4);
  position = last_position (f);

  g_assert_false (es_stream_factory_delete_stream (f->factory, "s", ES_VERSION_NO_STREAM,
                                                   ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION, "5", "'s'");
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_stream (f->factory, "s", 4,
                                                   ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION, "5", NULL);
  g_clear_error (&error);

  assert_versions (f, "s", NULL, "1,2,3,4,5");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 5, 5, 1);
  g_assert_true (has_snapshot (f, "s", NULL));
  g_assert_cmpint (last_position (f), ==, position);
}

static void
test_delete_idempotency_keys (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Paid", "x", "payment-1", NULL);
  g_autoptr(GPtrArray) events = NULL;

  g_test_summary ("Idempotency keys go with the deleted events: a retry writes again, at "
                  "new versions");

  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 1);
  g_assert_no_error (error);
  /* A retry before the delete is absorbed. */
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 1);
  g_assert_no_error (error);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "s", 1, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));

  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 2);
  g_assert_no_error (error);
  events = read_events (f, "s", NULL);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, 2);
  g_assert_cmpstr (es_stored_event_get_idempotency_key (g_ptr_array_index (events, 0)), ==,
                   "payment-1");
  /* And from then on it is absorbed again. */
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 2);
  g_assert_no_error (error);
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 2, 1, 2);
}

static void
test_delete_never_written (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("First", "x", NULL, NULL);

  g_test_summary ("Deleting a stream nobody wrote to succeeds: a soft delete leaves it "
                  "writable from version 0, a tombstone reserves the name");

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "nobody", ES_VERSION_NO_STREAM,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_info (f, "nobody", ES_STREAM_STATE_DELETED, 0, 0, 0);
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "");
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED, "nobody(D)");
  stream = open_stream (f, "nobody");
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &error), ==,
                   1);
  g_assert_no_error (error);
  assert_info (f, "nobody", ES_STREAM_STATE_ACTIVE, 1, 1, 1);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "reserved", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  assert_info (f, "reserved", ES_STREAM_STATE_TOMBSTONED, 0, 0, 0);
  g_clear_object (&stream);
  stream = open_stream (f, "reserved");
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, -1);
  assert_error_names (error, ES_ERROR, ES_ERROR_STREAM_DELETED, "reserved", NULL);
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED, "nobody,reserved(T)");
}

static void
test_delete_bad_input (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  gint64 position;

  g_test_summary ("Deleting @all, an invalid id, with a bad expected version or unknown "
                  "flags, or cancelled, fails clearly and changes nothing");

  write_to (f, "s", 3);
  position = last_position (f);

  g_assert_false (es_stream_factory_delete_stream (f->factory, ES_ALL_STREAM, ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, ES_ALL_STREAM, NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_stream (f->factory, NULL, ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, ES_ALL_STREAM, NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_stream (f->factory, "", ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_stream (f->factory, "s", -2, ES_DELETE_FLAGS_NONE,
                                                   NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-2", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_delete_stream (f->factory, "s", ES_VERSION_ANY, 1 << 4,
                                                   NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "0x10", NULL);
  g_clear_error (&error);
  g_cancellable_cancel (cancellable);
  g_assert_false (es_stream_factory_delete_stream (f->factory, "s", ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_TOMBSTONE, cancellable,
                                                   &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  assert_versions (f, "s", NULL, "1,2,3");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 3, 3, 1);
  g_assert_cmpint (last_position (f), ==, position);

  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_false (es_stream_factory_delete_stream (f->factory, "s", ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
}

/* ------------------------------------------------------------------ */
/* Hard delete                                                         */
/* ------------------------------------------------------------------ */

static void
test_delete_tombstone (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) reopened = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Late", "x", "key-1", NULL);
  gint64 position;

  g_test_summary ("A tombstoned stream can never be written again; soft delete, truncate "
                  "and retention refuse it, erase finds nothing, tombstoning again changes "
                  "nothing, reads and open_stream work");

  stream = open_stream (f, "t");
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 1);
  g_assert_no_error (error);
  es_test_write_n (stream, 2, "More");
  write_to (f, "other", 1);
  save_snapshot (f, "t", NULL, 3);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "t", 3,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  position = last_position (f);

  assert_versions (f, "t", NULL, "");
  assert_versions (f, ES_ALL_STREAM, NULL, "other:1");
  assert_info (f, "t", ES_STREAM_STATE_TOMBSTONED, 3, 0, 0);
  g_assert_false (has_snapshot (f, "t", NULL));
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "other");
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED, "other,t(T)");

  /* Writes fail before anything else, a retry of a stored key too. */
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, -1);
  assert_error_names (error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'t'", NULL);
  g_clear_error (&error);
  g_assert_cmpint (es_stream_write (stream, &event, 1, 3, NULL, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED);
  g_clear_error (&error);

  g_assert_false (es_stream_factory_delete_stream (f->factory, "t", ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'t'", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_truncate_stream (f->factory, "t", 1, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'t'", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_erase_event (f->factory, "t", 1, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_NOT_FOUND, "'t'", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_set_retention (f->factory, "t", 0, 5, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'t'", NULL);
  g_clear_error (&error);

  /* Tombstoning again succeeds, whatever it expects, and takes no position. */
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "t", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_cmpint (last_position (f), ==, position);

  reopened = open_stream (f, "t");
  g_assert_cmpint (es_stream_get_version (reopened), ==, 3);
  g_assert_cmpint (es_stream_query_version (reopened, NULL, &error), ==, 3);
  g_assert_no_error (error);
  assert_info (f, "t", ES_STREAM_STATE_TOMBSTONED, 3, 0, 0);
  assert_versions (f, ES_ALL_STREAM, NULL, "other:1");
  g_assert_cmpint (last_position (f), ==, position);
}

static void
test_delete_tombstone_marker (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) plain = NULL;
  g_autoptr(GPtrArray) with_markers = NULL;
  g_autoptr(GPtrArray) backwards = NULL;
  g_autoptr(GPtrArray) filtered = NULL;
  g_autoptr(EsEventFilter) nothing = es_event_filter_new ();
  g_autoptr(EsEventFilter) marker_type = es_event_filter_new ();
  gint64 before, position;
  EsStoredEvent *marker = NULL;

  g_test_summary ("A hard delete leaves a marker at a new position of @all, returned only "
                  "to reads that ask for tombstones, whatever their filter");

  write_to (f, "a", 2);
  write_to (f, "t", 3);
  write_to (f, "b", 1);
  before = g_get_real_time ();
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "t", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  position = last_position (f);
  g_assert_cmpint (position, >, 6);
  write_to (f, "a", 1);

  plain = read_all_records (f, ES_READ_FLAGS_NONE, NULL, 2);
  g_assert_cmpuint (plain->len, ==, 4);
  g_assert_cmpuint (count_markers (plain), ==, 0);

  with_markers = read_all_records (f, ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL, 2);
  g_assert_cmpuint (with_markers->len, ==, 5);
  g_assert_cmpuint (count_markers (with_markers), ==, 1);
  marker = g_ptr_array_index (with_markers, 3);
  g_assert_cmpint (es_stored_event_get_flags (marker), ==, ES_STORED_EVENT_FLAGS_TOMBSTONE);
  g_assert_false (es_stored_event_get_erased (marker));
  g_assert_cmpstr (es_stored_event_get_stream_id (marker), ==, "t");
  g_assert_cmpint (es_stored_event_get_version (marker), ==, 3);
  g_assert_cmpint (es_stored_event_get_sequence_id (marker), ==, position);
  g_assert_cmpstr (es_stored_event_get_event_type (marker), ==, "$tombstone");
  g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (marker)), ==, 0);
  g_assert_null (es_stored_event_get_metadata (marker));
  g_assert_cmpint (es_stored_event_get_timestamp_usec (marker), >=, before);
  g_assert_cmpint (es_stored_event_get_timestamp_usec (marker), <=, g_get_real_time ());
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (with_markers, 4)), >,
                   position);

  backwards = read_all_records (f, ES_READ_FLAGS_INCLUDE_TOMBSTONES | ES_READ_FLAGS_BACKWARDS,
                                NULL, 2);
  g_assert_cmpuint (backwards->len, ==, 5);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (backwards, 1)), ==,
                   position);

  /* A filter does not apply to markers: they come whatever it selects. */
  es_event_filter_add_equals (nothing, "event_type", g_variant_new_string ("None such"));
  filtered = read_all_records (f, ES_READ_FLAGS_INCLUDE_TOMBSTONES, nothing, 10);
  g_assert_cmpuint (filtered->len, ==, 1);
  g_assert_cmpuint (count_markers (filtered), ==, 1);
  g_clear_pointer (&filtered, g_ptr_array_unref);

  /* Without the flag no read returns them, not even one asking for their type. */
  es_event_filter_add_equals (marker_type, "event_type", g_variant_new_string ("$tombstone"));
  assert_versions (f, ES_ALL_STREAM, marker_type, "");
  filtered = read_all_records (f, ES_READ_FLAGS_NONE, marker_type, 10);
  g_assert_cmpuint (filtered->len, ==, 0);
  g_clear_pointer (&filtered, g_ptr_array_unref);
  filtered = read_all_records (f, ES_READ_FLAGS_BACKWARDS, NULL, 10);
  g_assert_cmpuint (filtered->len, ==, 4);
  g_assert_cmpuint (count_markers (filtered), ==, 0);
  assert_versions (f, "t", NULL, "");

  /* A stream read with the flag does not get it either. */
  {
    g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (
      storage_of (f), "t", 0, ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL, 10, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (page->len, ==, 0);
  }
}

/* ------------------------------------------------------------------ */
/* Positions                                                           */
/* ------------------------------------------------------------------ */

static gint64
max_sequence_id (Fixture *f)
{
  g_autoptr(GPtrArray) all = read_events (f, ES_ALL_STREAM, NULL);

  if (all->len == 0)
    return 0;
  return es_stored_event_get_sequence_id (g_ptr_array_index (all, all->len - 1));
}

static void
test_positions_never_reused (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gint64 newest, position;
  gboolean has_age = FALSE;

  g_test_summary ("Sequence ids are never used twice, even when the newest events of the "
                  "database go; every delete takes a position of its own");

  write_to (f, "x", 3);
  newest = max_sequence_id (f);
  g_assert_cmpint (newest, ==, 3);
  g_assert_cmpint (last_position (f), ==, 3);

  /* The newest events go: the next ones still come after them, and after
   * the delete's own position. */
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "x", 3, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));
  position = last_position (f);
  g_assert_cmpint (position, >, newest);
  g_assert_cmpint (max_sequence_id (f), ==, 0);
  write_to (f, "y", 1);
  g_assert_cmpint (max_sequence_id (f), >, position);
  g_assert_cmpint (last_position (f), ==, max_sequence_id (f));

  /* A soft delete of a stream never written moves the position too. */
  position = last_position (f);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "z", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_cmpint (last_position (f), >, position);

  /* Retention removing every event of the database: the same. */
  newest = max_sequence_id (f);
  ES_TEST_ASSERT_OK (es_stream_factory_set_retention (f->factory, NULL, G_TIME_SPAN_HOUR, 0, NULL,
                                                      &error));
  g_assert_cmpint (es_storage_handle_sweep (storage_of (f),
                                            g_get_real_time () + 2 * G_TIME_SPAN_HOUR,
                                            &has_age, NULL, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_true (has_age);
  g_assert_cmpint (max_sequence_id (f), ==, 0);
  ES_TEST_ASSERT_OK (es_stream_factory_set_retention (f->factory, NULL, 0, 0, NULL, &error));
  write_to (f, "w", 1);
  g_assert_cmpint (max_sequence_id (f), >, newest);
  g_assert_cmpint (max_sequence_id (f), >, position);
}

/* ------------------------------------------------------------------ */
/* Truncate                                                            */
/* ------------------------------------------------------------------ */

static void
test_truncate (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  gint64 position;

  g_test_summary ("Truncating removes the versions before V and the snapshots they leave "
                  "stale; versions stay; truncating less again changes nothing");

  write_to (f, "s", 10);
  write_to (f, "other", 2);
  save_snapshot (f, "s", "p2", 2);
  save_snapshot (f, "s", "p4", 4);
  save_snapshot (f, "s", "p5", 5);
  save_snapshot (f, "s", "p10", 10);
  save_snapshot (f, "other", "p1", 1);
  save_snapshot (f, ES_ALL_STREAM, "pall", 3);
  position = last_position (f);

  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 6, NULL, &error));
  assert_versions (f, "s", NULL, "6,7,8,9,10");
  assert_versions (f, ES_ALL_STREAM, NULL, "s:6,s:7,s:8,s:9,s:10,other:1,other:2");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 10, 5, 6);
  assert_info (f, "other", ES_STREAM_STATE_ACTIVE, 2, 2, 1);
  /* A snapshot stays iff every event after it is still stored. */
  g_assert_false (has_snapshot (f, "s", "p2"));
  g_assert_false (has_snapshot (f, "s", "p4"));
  g_assert_true (has_snapshot (f, "s", "p5"));
  g_assert_true (has_snapshot (f, "s", "p10"));
  g_assert_true (has_snapshot (f, "other", "p1"));
  g_assert_true (has_snapshot (f, ES_ALL_STREAM, "pall"));
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "other,s");
  g_assert_cmpint (last_position (f), ==, position);

  /* Already truncated further: success, no change. */
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 3, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 6, NULL, &error));
  assert_versions (f, "s", NULL, "6,7,8,9,10");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 10, 5, 6);
  g_assert_true (has_snapshot (f, "s", "p5"));

  /* Up to the current version: the newest event stays. */
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 10, NULL, &error));
  assert_versions (f, "s", NULL, "10");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 10, 1, 10);
  g_assert_false (has_snapshot (f, "s", "p5"));
  g_assert_true (has_snapshot (f, "s", "p10"));

  /* Writes continue from the version. */
  stream = open_stream (f, "s");
  g_assert_cmpint (es_stream_get_version (stream), ==, 10);
  es_test_write_n (stream, 1, "After");
  assert_versions (f, "s", NULL, "10,11");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 11, 2, 10);
}

static void
test_truncate_bad_input (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("Truncating beyond the current version, before version 1, @all or a "
                  "stream never written fails, naming the values, and changes nothing");

  write_to (f, "s", 10);

  g_assert_false (es_stream_factory_truncate_stream (f->factory, "s", 11, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "'s'", "11");
  if (strstr (error->message, "10") == NULL)
    g_error ("'%s' does not name the current version", error->message);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_truncate_stream (f->factory, "s", 0, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "0", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_truncate_stream (f->factory, "s", -5, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-5", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_truncate_stream (f->factory, ES_ALL_STREAM, 1, NULL,
                                                     &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, ES_ALL_STREAM, NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_truncate_stream (f->factory, "never", 1, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "'never'", NULL);
  g_clear_error (&error);

  assert_versions (f, "s", NULL, "1,2,3,4,5,6,7,8,9,10");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 10, 10, 1);
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED, "s");
}

/* ------------------------------------------------------------------ */
/* Erase                                                               */
/* ------------------------------------------------------------------ */

static void
test_erase (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(GPtrArray) before = NULL;
  g_autoptr(GPtrArray) after = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(EsEventFilter) by_user = es_event_filter_new ();
  g_autoptr(EsEventFilter) by_type = es_event_filter_new ();
  g_autoptr(EsCandidateEvent) retry = es_test_candidate_new ("Said", "secret", "k2",
                                                             "{\"user\": 7}");
  EsStoredEvent *erased, *original;

  g_test_summary ("Erasing an event overwrites its data and metadata and keeps its "
                  "position, type, timestamp and key; metadata filters miss it after");

  es_test_write_one (stream, "Said", "k1", "{\"user\": 7, \"n\": 1}");
  es_test_write_one (stream, "Said", "k2", "{\"user\": 7, \"n\": 2}");
  es_test_write_one (stream, "Said", NULL, "{\"user\": 7, \"n\": 3}");
  write_to (f, "other", 1);
  before = read_events (f, "s", NULL);

  ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "s", 2, NULL, &error));

  after = read_events (f, "s", NULL);
  g_assert_cmpuint (after->len, ==, 3);
  original = g_ptr_array_index (before, 1);
  erased = g_ptr_array_index (after, 1);
  g_assert_true (es_stored_event_get_erased (erased));
  g_assert_cmpint (es_stored_event_get_flags (erased), ==, ES_STORED_EVENT_FLAGS_ERASED);
  g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (erased)), ==, 0);
  g_assert_null (es_stored_event_get_metadata (erased));
  g_assert_cmpstr (es_stored_event_get_event_type (erased), ==, "Said");
  g_assert_cmpstr (es_stored_event_get_idempotency_key (erased), ==, "k2");
  g_assert_cmpstr (es_stored_event_get_stream_id (erased), ==, "s");
  g_assert_cmpint (es_stored_event_get_version (erased), ==, 2);
  g_assert_cmpint (es_stored_event_get_sequence_id (erased), ==,
                   es_stored_event_get_sequence_id (original));
  g_assert_cmpint (es_stored_event_get_timestamp_usec (erased), ==,
                   es_stored_event_get_timestamp_usec (original));
  for (guint i = 0; i < 3; i += 2)
    {
      EsStoredEvent *a = g_ptr_array_index (before, i), *b = g_ptr_array_index (after, i);

      g_assert_false (es_stored_event_get_erased (b));
      g_assert_cmpint (es_stored_event_get_flags (b), ==, ES_STORED_EVENT_FLAGS_NONE);
      g_assert_cmpstr (es_stored_event_get_metadata (a), ==, es_stored_event_get_metadata (b));
      g_assert_true (g_bytes_equal (es_stored_event_get_data (a), es_stored_event_get_data (b)));
    }

  /* @all returns it erased too. */
  all = read_events (f, ES_ALL_STREAM, NULL);
  g_assert_true (es_stored_event_get_erased (g_ptr_array_index (all, 1)));

  /* Metadata filters no longer match it; type filters still do. */
  es_event_filter_add_equals (by_user, "metadata.user", g_variant_new_int64 (7));
  assert_versions (f, "s", by_user, "1,3");
  es_event_filter_add_equals (by_type, "event_type", g_variant_new_string ("Said"));
  assert_versions (f, "s", by_type, "1,2,3");

  /* Erasing again: success, no change. The count keeps it. */
  ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "s", 2, NULL, &error));
  assert_versions (f, "s", NULL, "1,2,3");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 3, 3, 1);

  /* Its key stays: a retry of the erased write is still absorbed. */
  g_assert_cmpint (es_stream_write (stream, &retry, 1, ES_VERSION_ANY, NULL, &error), ==, 3);
  g_assert_no_error (error);
  assert_versions (f, "s", NULL, "1,2,3");
}

static void
test_erase_not_found (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("Erasing an event that is not stored fails with NOT_FOUND naming the "
                  "stream and version; bad arguments with INVALID_ARGUMENT");

  write_to (f, "s", 5);
  write_to (f, "d", 2);
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 3, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "d", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));

  g_assert_false (es_stream_factory_erase_event (f->factory, "s", 6, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_NOT_FOUND, "'s'", "6");
  g_clear_error (&error);
  g_assert_false (es_stream_factory_erase_event (f->factory, "s", 2, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_NOT_FOUND, "'s'", "2");
  g_clear_error (&error);
  g_assert_false (es_stream_factory_erase_event (f->factory, "d", 1, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_NOT_FOUND, "'d'", "1");
  g_clear_error (&error);
  g_assert_false (es_stream_factory_erase_event (f->factory, "never", 1, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_NOT_FOUND, "'never'", "1");
  g_clear_error (&error);
  g_assert_false (es_stream_factory_erase_event (f->factory, "s", 0, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "0", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_erase_event (f->factory, ES_ALL_STREAM, 1, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, ES_ALL_STREAM, NULL);
  g_clear_error (&error);

  assert_versions (f, "s", NULL, "3,4,5");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 5, 3, 3);
  assert_info (f, "never", ES_STREAM_STATE_ACTIVE, 0, 0, 0);
  {
    g_autoptr(GPtrArray) events = read_events (f, "s", NULL);

    for (guint i = 0; i < events->len; i++)
      g_assert_false (es_stored_event_get_erased (g_ptr_array_index (events, i)));
  }
}

/* ------------------------------------------------------------------ */
/* Retention                                                           */
/* ------------------------------------------------------------------ */

static gint64
sweep_at (Fixture  *f,
          gint64    now_usec,
          gboolean *out_has_age)
{
  g_autoptr(GError) error = NULL;
  gint64 removed = es_storage_handle_sweep (storage_of (f), now_usec, out_has_age, NULL,
                                            &error);

  g_assert_no_error (error);
  g_assert_cmpint (removed, >=, 0);
  return removed;
}

static void
set_retention_ok (Fixture    *f,
                  const char *stream_id,
                  GTimeSpan   max_age,
                  gint64      max_count)
{
  g_autoptr(GError) error = NULL;

  ES_TEST_ASSERT_OK (es_stream_factory_set_retention (f->factory, stream_id, max_age, max_count,
                                                      NULL, &error));
}

static void
test_retention_count (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStreamInfo) info = NULL;
  gboolean has_age = TRUE;

  g_test_summary ("A maximum count is enforced at once, on every append and by sweeps, "
                  "keeps the newest events and the snapshots they still follow");

  write_to (f, "s", 10);
  write_to (f, "other", 4);
  save_snapshot (f, "s", "p5", 5);
  save_snapshot (f, "s", "p7", 7);
  save_snapshot (f, "s", "p9", 9);

  set_retention_ok (f, "s", 0, 3);
  assert_versions (f, "s", NULL, "8,9,10");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 10, 3, 8);
  info = info_of (f, "s");
  g_assert_cmpint (es_stream_info_get_max_count (info), ==, 3);
  g_assert_cmpint (es_stream_info_get_max_age (info), ==, 0);
  g_assert_false (has_snapshot (f, "s", "p5"));
  g_assert_true (has_snapshot (f, "s", "p7"));
  g_assert_true (has_snapshot (f, "s", "p9"));
  assert_versions (f, "other", NULL, "1,2,3,4");

  /* On append, in the append's transaction. */
  stream = open_stream (f, "s");
  es_test_write_n (stream, 2, "More");
  assert_versions (f, "s", NULL, "10,11,12");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 12, 3, 10);
  g_assert_false (has_snapshot (f, "s", "p7"));
  g_assert_true (has_snapshot (f, "s", "p9"));

  /* A sweep finds nothing more to do; no age policy exists. */
  g_assert_cmpint (sweep_at (f, g_get_real_time (), &has_age), ==, 0);
  g_assert_false (has_age);

  /* A count of 1 keeps the newest. */
  set_retention_ok (f, "s", 0, 1);
  assert_versions (f, "s", NULL, "12");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 12, 1, 12);

  /* Removing the policy keeps what is left and lets the stream grow. */
  set_retention_ok (f, "s", 0, 0);
  es_test_write_n (stream, 3, "Again");
  assert_versions (f, "s", NULL, "12,13,14,15");
  g_clear_object (&info);
  info = info_of (f, "s");
  g_assert_cmpint (es_stream_info_get_max_count (info), ==, 0);
}

static void
test_retention_age_sweep (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStreamInfo) info = NULL;
  gboolean has_age = FALSE;
  gint64 now = g_get_real_time ();

  g_test_summary ("A maximum age is enforced by sweeps against the time given; it may empty "
                  "a stream, which stays active and listed at its version");

  write_to (f, "s", 5);
  write_to (f, "other", 2);
  save_snapshot (f, "s", "p5", 5);
  save_snapshot (f, "s", "p3", 3);

  set_retention_ok (f, "s", G_TIME_SPAN_HOUR, 0);
  assert_versions (f, "s", NULL, "1,2,3,4,5");
  info = info_of (f, "s");
  g_assert_cmpint (es_stream_info_get_max_age (info), ==, G_TIME_SPAN_HOUR);

  /* Not old enough yet. */
  g_assert_cmpint (sweep_at (f, now + 30 * G_TIME_SPAN_MINUTE, &has_age), ==, 0);
  g_assert_true (has_age);
  assert_versions (f, "s", NULL, "1,2,3,4,5");

  g_assert_cmpint (sweep_at (f, now + 2 * G_TIME_SPAN_HOUR, &has_age), ==, 5);
  g_assert_true (has_age);
  assert_versions (f, "s", NULL, "");
  assert_versions (f, "other", NULL, "1,2");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 5, 0, 0);
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "other,s");
  /* Every event after p5 is still there (none); none after p3 is. */
  g_assert_true (has_snapshot (f, "s", "p5"));
  g_assert_false (has_snapshot (f, "s", "p3"));

  /* A second sweep has nothing to do. */
  g_assert_cmpint (sweep_at (f, now + 2 * G_TIME_SPAN_HOUR, NULL), ==, 0);

  stream = open_stream (f, "s");
  es_test_write_n (stream, 1, "Fresh");
  assert_versions (f, "s", NULL, "6");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 6, 1, 6);

  /* Without the policy, nothing is old. */
  set_retention_ok (f, "s", 0, 0);
  g_assert_cmpint (sweep_at (f, now + 100 * G_TIME_SPAN_DAY, &has_age), ==, 0);
  g_assert_false (has_age);
  assert_versions (f, "s", NULL, "6");
}

static void
test_retention_age_real_time (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  gint64 last;

  g_test_summary ("A maximum age is enforced at once by set_retention and on every append, "
                  "against the real clock; the events just written stay");

  es_test_write_n (stream, 3, "Old");
  last = timestamp_of (f, "s", 3);
  wait_clock_past (last + 20 * G_TIME_SPAN_MILLISECOND);

  /* At once: everything written more than 10 ms ago goes. */
  set_retention_ok (f, "s", 10 * G_TIME_SPAN_MILLISECOND, 0);
  assert_versions (f, "s", NULL, "");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 3, 0, 0);

  /* On append: what is older than the age goes, what is written stays. */
  set_retention_ok (f, "s", 50 * G_TIME_SPAN_MILLISECOND, 0);
  es_test_write_n (stream, 2, "Early");
  assert_versions (f, "s", NULL, "4,5");
  last = timestamp_of (f, "s", 5);
  wait_clock_past (last + 60 * G_TIME_SPAN_MILLISECOND);
  es_test_write_n (stream, 1, "Late");
  assert_versions (f, "s", NULL, "6");
  assert_info (f, "s", ES_STREAM_STATE_ACTIVE, 6, 1, 6);

  /* The factory's sweep measures against the real clock too. */
  wait_clock_past (timestamp_of (f, "s", 6) + 60 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (es_stream_factory_sweep (f->factory, NULL, &error), ==, 1);
  g_assert_no_error (error);
  assert_versions (f, "s", NULL, "");
}

static void
test_retention_database_wide (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(EsStreamInfo) all = NULL;
  g_autoptr(EsStreamInfo) own = NULL;
  gint64 now = g_get_real_time ();
  gboolean has_age = FALSE;

  g_test_summary ("The database-wide policy applies to every stream; where a stream has "
                  "its own, the stricter limit wins, for counts and for ages");

  write_to (f, "strict", 6);
  write_to (f, "plain", 6);
  write_to (f, "loose", 6);
  set_retention_ok (f, "strict", 0, 2);
  set_retention_ok (f, "loose", 0, 10);
  assert_versions (f, "strict", NULL, "5,6");
  assert_versions (f, "plain", NULL, "1,2,3,4,5,6");
  assert_versions (f, "loose", NULL, "1,2,3,4,5,6");

  set_retention_ok (f, ES_ALL_STREAM, 0, 4);
  assert_versions (f, "strict", NULL, "5,6");
  assert_versions (f, "plain", NULL, "3,4,5,6");
  assert_versions (f, "loose", NULL, "3,4,5,6");
  all = info_of (f, NULL);
  g_assert_cmpint (es_stream_info_get_max_count (all), ==, 4);
  own = info_of (f, "loose");
  g_assert_cmpint (es_stream_info_get_max_count (own), ==, 10);

  /* On append too, for a stream that has no policy of its own. */
  write_to (f, "fresh", 5);
  assert_versions (f, "fresh", NULL, "2,3,4,5");

  /* Ages: the database keeps an hour, "loose" two, "strict" ten minutes. */
  set_retention_ok (f, NULL, G_TIME_SPAN_HOUR, 0);
  set_retention_ok (f, "loose", 2 * G_TIME_SPAN_HOUR, 0);
  set_retention_ok (f, "strict", 10 * G_TIME_SPAN_MINUTE, 0);
  g_clear_object (&all);
  all = info_of (f, NULL);
  g_assert_cmpint (es_stream_info_get_max_age (all), ==, G_TIME_SPAN_HOUR);
  g_assert_cmpint (es_stream_info_get_max_count (all), ==, 0);

  g_assert_cmpint (sweep_at (f, now + 30 * G_TIME_SPAN_MINUTE, &has_age), ==, 2);
  g_assert_true (has_age);
  assert_versions (f, "strict", NULL, "");
  assert_versions (f, "loose", NULL, "3,4,5,6");
  g_assert_cmpint (sweep_at (f, now + 90 * G_TIME_SPAN_MINUTE, &has_age), ==, 12);
  assert_versions (f, "loose", NULL, "");
  assert_versions (f, "plain", NULL, "");
  assert_versions (f, "fresh", NULL, "");
  assert_info (f, "plain", ES_STREAM_STATE_ACTIVE, 6, 0, 0);

  /* A database-wide age alone is an age policy. */
  set_retention_ok (f, "loose", 0, 0);
  set_retention_ok (f, "strict", 0, 0);
  g_assert_cmpint (sweep_at (f, now, &has_age), ==, 0);
  g_assert_true (has_age);
  set_retention_ok (f, NULL, 0, 0);
  g_assert_cmpint (sweep_at (f, now, &has_age), ==, 0);
  g_assert_false (has_age);
}

static void
test_retention_bad_input (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = NULL;

  g_test_summary ("Negative ages and counts, and invalid stream ids, fail naming the value "
                  "and change nothing");

  write_to (f, "s", 4);
  set_retention_ok (f, "s", G_TIME_SPAN_DAY, 3);

  g_assert_false (es_stream_factory_set_retention (f->factory, "s", -1, 2, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-1", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_set_retention (f->factory, "s", 0, -7, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-7", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_set_retention (f->factory, NULL, -5, 0, NULL, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-5", NULL);
  g_clear_error (&error);
  g_assert_false (es_stream_factory_set_retention (f->factory, "@bad", 0, 1, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  assert_versions (f, "s", NULL, "2,3,4");
  info = info_of (f, "s");
  g_assert_cmpint (es_stream_info_get_max_age (info), ==, G_TIME_SPAN_DAY);
  g_assert_cmpint (es_stream_info_get_max_count (info), ==, 3);
  g_clear_object (&info);
  info = info_of (f, NULL);
  g_assert_cmpint (es_stream_info_get_max_age (info), ==, 0);
  g_assert_cmpint (es_stream_info_get_max_count (info), ==, 0);
}

static void
test_retention_policy_only_stream (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(EsStreamInfo) info = NULL;
  g_autoptr(EsStream) stream = NULL;

  g_test_summary ("A policy on a stream nobody wrote to is kept with it, listed as an "
                  "empty active stream, and applies to its first writes");

  set_retention_ok (f, "future", 0, 2);
  info = info_of (f, "future");
  g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_ACTIVE);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 0);
  g_assert_cmpint (es_stream_info_get_max_count (info), ==, 2);
  assert_listing (f, NULL, ES_LIST_STREAMS_FLAGS_NONE, "future");

  stream = open_stream (f, "future");
  es_test_write_n (stream, 5, "Capped");
  assert_versions (f, "future", NULL, "4,5");
  assert_info (f, "future", ES_STREAM_STATE_ACTIVE, 5, 2, 4);
}

/* ------------------------------------------------------------------ */
/* Backwards reads                                                     */
/* ------------------------------------------------------------------ */

/* Reads backwards through next_batch in batches of @batch_size. */
static GPtrArray *
read_backwards (Fixture        *f,
                const char     *stream_id,
                gint64          before,
                EsEventFilter  *filter,
                guint           batch_size,
                GError        **error)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(EsEventEnumerator) events = NULL;
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func (g_object_unref);

  events = es_stream_read_backwards (stream, before, filter, NULL, error);
  if (events == NULL)
    return NULL;
  for (;;)
    {
      g_autoptr(GPtrArray) batch = es_event_enumerator_next_batch (events, batch_size, NULL,
                                                                   error);

      if (batch == NULL)
        return NULL;
      if (batch->len == 0)
        break;
      for (guint i = 0; i < batch->len; i++)
        g_ptr_array_add (all, g_object_ref (g_ptr_array_index (batch, i)));
    }
  return g_steal_pointer (&all);
}

/* Asserts @events are the versions @from, @from - @step, ... down to @to. */
static void
assert_descending (GPtrArray *events,
                   gint64     from,
                   gint64     to,
                   gint64     step)
{
  gint64 expected = from;

  for (guint i = 0; i < events->len; i++, expected -= step)
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, i)), ==, expected);
  g_assert_cmpint (expected + step, ==, to);
  g_assert_cmpuint (events->len, ==, (from - to) / step + 1);
}

static void
test_backwards_stream (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "long");
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsEventFilter) from_1000 = es_event_filter_new ();
  g_autoptr(EsEventFilter) odd_types = es_event_filter_new ();
  guint n = 2 * PAGE_SIZE + 452;

  g_test_summary ("Reading a stream backwards returns the versions before a position, "
                  "newest first, across pages, with filters; -1 is the end, 0 nothing");

  for (guint i = 0; i < n; i += 500)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);

      for (guint j = i; j < MIN (n, i + 500); j++)
        g_ptr_array_add (batch, es_test_candidate_new (j % 2 == 0 ? "Odd" : "Even", "x",
                                                       NULL, NULL));
      es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                       ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
    }
  write_to (f, "other", 3);

  events = read_backwards (f, "long", ES_READ_FROM_END, NULL, 100, &error);
  g_assert_no_error (error);
  assert_descending (events, n, 1, 1);
  g_clear_pointer (&events, g_ptr_array_unref);

  events = read_backwards (f, "long", PAGE_SIZE + 1, NULL, 1000, &error);
  g_assert_no_error (error);
  assert_descending (events, PAGE_SIZE, 1, 1);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* The last 50. */
  enumerator = es_stream_read_backwards (stream, ES_READ_FROM_END, NULL, NULL, &error);
  g_assert_no_error (error);
  events = es_event_enumerator_next_batch (enumerator, 50, NULL, &error);
  g_assert_no_error (error);
  assert_descending (events, n, n - 49, 1);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* Filters apply, across pages. */
  es_event_filter_add_compare (from_1000, "version", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                               g_variant_new_int64 (1000));
  events = read_backwards (f, "long", ES_READ_FROM_END, from_1000, 7, &error);
  g_assert_no_error (error);
  assert_descending (events, n, 1000, 1);
  g_clear_pointer (&events, g_ptr_array_unref);

  es_event_filter_add_equals (odd_types, "event_type", g_variant_new_string ("Odd"));
  events = read_backwards (f, "long", n, odd_types, 333, &error);
  g_assert_no_error (error);
  assert_descending (events, n - 1, 1, 2);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* Nothing before 1, nothing before 0. */
  events = read_backwards (f, "long", 1, NULL, 10, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);
  events = read_backwards (f, "long", 0, NULL, 10, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);
  events = read_backwards (f, "long", 2, NULL, 10, &error);
  g_assert_no_error (error);
  assert_descending (events, 1, 1, 1);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* A stream never written, and a truncated one. */
  events = read_backwards (f, "never", ES_READ_FROM_END, NULL, 10, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "long", n - 5, NULL, &error));
  events = read_backwards (f, "long", ES_READ_FROM_END, NULL, 10, &error);
  g_assert_no_error (error);
  assert_descending (events, n, n - 5, 1);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* Below -1: refused, naming it. */
  g_assert_null (read_backwards (f, "long", -2, NULL, 10, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-2", "'long'");
}

static void
backwards_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
test_backwards_all (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) forwards = NULL;
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsEventFilter) only_b = es_event_filter_new ();

  g_test_summary ("Reading @all backwards returns sequence ids before a position, newest "
                  "first, sync and async, skipping deleted events");

  for (guint i = 0; i < 4; i++)
    {
      write_to (f, "a", 300);
      write_to (f, "b", 300);
    }
  write_to (f, "gone", 10);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "gone", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  write_to (f, "a", 1);

  forwards = read_events (f, ES_ALL_STREAM, NULL);
  g_assert_cmpuint (forwards->len, ==, 2401);
  events = read_backwards (f, ES_ALL_STREAM, ES_READ_FROM_END, NULL, 999, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, forwards->len);
  for (guint i = 0; i < events->len; i++)
    g_assert_true (g_ptr_array_index (events, i) != NULL &&
                   es_stored_event_get_sequence_id (g_ptr_array_index (events, i)) ==
                   es_stored_event_get_sequence_id (g_ptr_array_index (forwards,
                                                                       forwards->len - 1 - i)));
  g_clear_pointer (&events, g_ptr_array_unref);

  /* Before a sequence id, with a filter, asynchronously. */
  es_event_filter_add_equals (only_b, "stream_id", g_variant_new_string ("b"));
  es_stream_read_backwards_async (all, es_stored_event_get_sequence_id (
                                    g_ptr_array_index (forwards, 900)),
                                  only_b, NULL, backwards_cb, &result);
  es_test_wait_result (&result);
  enumerator = es_stream_read_backwards_finish (all, result, &error);
  g_assert_no_error (error);
  events = es_event_enumerator_next_batch (enumerator, 1000, NULL, &error);
  g_assert_no_error (error);
  /* Forwards 0..899 hold a:1-300, b:1-300, a:301-600: b's 300, newest first. */
  g_assert_cmpuint (events->len, ==, 300);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, 0)), ==, "b");
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, 300);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 299)), ==, 1);
  g_clear_object (&result);

  /* Async errors come through finish. */
  es_stream_read_backwards_async (all, -7, NULL, NULL, backwards_cb, &result);
  es_test_wait_result (&result);
  g_assert_null (es_stream_read_backwards_finish (all, result, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "-7", NULL);
  g_clear_error (&error);
  g_clear_object (&result);

  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_null (es_stream_read_backwards (all, ES_READ_FROM_END, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
}

/* ------------------------------------------------------------------ */
/* Range filters                                                       */
/* ------------------------------------------------------------------ */

static EsEventFilter *
compare (const char       *field,
         EsFilterOperator  op,
         GVariant         *value)
{
  EsEventFilter *filter = es_event_filter_new ();

  es_event_filter_add_compare (filter, field, op, value);
  return filter;
}

/* Asserts that what the backend returned is what matches() selects. */
static void
assert_matches_agree (Fixture       *f,
                      const char    *stream_id,
                      EsEventFilter *filter)
{
  g_autoptr(GPtrArray) everything = read_events (f, stream_id, NULL);
  g_autoptr(GPtrArray) selected = read_events (f, stream_id, filter);
  guint j = 0;

  for (guint i = 0; i < everything->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (everything, i);
      gboolean in = j < selected->len &&
                    es_stored_event_get_sequence_id (g_ptr_array_index (selected, j)) ==
                    es_stored_event_get_sequence_id (event);

      g_assert_cmpint (in, ==, es_event_filter_matches (filter, event));
      if (in)
        j++;
    }
  g_assert_cmpuint (j, ==, selected->len);
}

#define assert_compare(f, stream_id, field, op, value, expected) \
  G_STMT_START { \
    g_autoptr(EsEventFilter) _filter = compare ((field), (op), (value)); \
    assert_versions ((f), (stream_id), _filter, (expected)); \
    assert_matches_agree ((f), (stream_id), _filter); \
  } G_STMT_END

static void
test_filter_compare_positions (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsEventFilter) window = es_event_filter_new ();
  g_autoptr(EsStream) stream = open_stream (f, "s");

  g_test_summary ("Comparisons on version and sequence_id select ranges, inclusive and "
                  "exclusive, with any integer type");

  write_to (f, "other", 2);
  es_test_write_n (stream, 10, "Counted");

  assert_compare (f, "s", "version", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (3), "1,2");
  assert_compare (f, "s", "version", ES_FILTER_OPERATOR_LESS_OR_EQUAL, g_variant_new_int32 (3),
                  "1,2,3");
  assert_compare (f, "s", "version", ES_FILTER_OPERATOR_GREATER, g_variant_new_uint32 (8),
                  "9,10");
  assert_compare (f, "s", "version", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                  g_variant_new_uint64 (8), "8,9,10");
  assert_compare (f, "s", "version", ES_FILTER_OPERATOR_GREATER, g_variant_new_int64 (-5),
                  "1,2,3,4,5,6,7,8,9,10");
  assert_compare (f, "s", "version", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (G_MININT64),
                  "");

  es_event_filter_add_compare (window, "version", ES_FILTER_OPERATOR_GREATER,
                               g_variant_new_int64 (3));
  es_event_filter_add_compare (window, "version", ES_FILTER_OPERATOR_LESS_OR_EQUAL,
                               g_variant_new_int64 (7));
  assert_versions (f, "s", window, "4,5,6,7");

  /* On @all: sequence ids 3..12 are s:1..10. */
  assert_compare (f, ES_ALL_STREAM, "sequence_id", ES_FILTER_OPERATOR_GREATER,
                  g_variant_new_int64 (10), "s:9,s:10");
  assert_compare (f, ES_ALL_STREAM, "sequence_id", ES_FILTER_OPERATOR_LESS_OR_EQUAL,
                  g_variant_new_int16 (3), "other:1,other:2,s:1");
  assert_compare (f, ES_ALL_STREAM, "version", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                  g_variant_new_byte (2), "other:2,s:2,s:3,s:4,s:5,s:6,s:7,s:8,s:9,s:10");
}

static GDateTime *
date_time_from_usec (gint64 usec)
{
  g_autoptr(GDateTime) seconds = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);

  return g_date_time_add (seconds, usec % G_USEC_PER_SEC);
}

static void
test_filter_compare_timestamp (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventFilter) range = es_event_filter_new ();
  g_autoptr(EsEventFilter) since = es_event_filter_new ();
  g_autoptr(EsEventFilter) until = es_event_filter_new ();
  g_autoptr(EsEventFilter) open = es_event_filter_new ();
  g_autoptr(EsEventFilter) in = es_event_filter_new ();
  g_autoptr(EsEventFilter) equals = es_event_filter_new ();
  g_autoptr(GDateTime) t2 = NULL;
  g_autoptr(GDateTime) t3 = NULL;
  g_autoptr(GDateTime) t2_elsewhere = NULL;
  g_autoptr(GTimeZone) zone = g_time_zone_new_offset (5 * 3600 + 30 * 60);
  gint64 ts1, ts2, ts2_last, ts3;

  g_test_summary ("Time ranges select the events written in [since, until), whatever the "
                  "time zone; comparisons, equality and in work on timestamp");

  /* Three batches, the clock moving between them. */
  es_test_write_n (stream, 2, "First");
  ts1 = timestamp_of (f, "s", 2);
  wait_clock_past (ts1);
  es_test_write_n (stream, 2, "Second");
  ts2 = timestamp_of (f, "s", 3);
  ts2_last = timestamp_of (f, "s", 4);
  wait_clock_past (ts2_last);
  write_to (f, "other", 1);
  es_test_write_n (stream, 2, "Third");
  ts3 = timestamp_of (f, "s", 5);
  g_assert_cmpint (ts1, <, ts2);
  g_assert_cmpint (ts2_last, <, ts3);

  t2 = date_time_from_usec (ts2);
  t3 = date_time_from_usec (ts3);
  t2_elsewhere = g_date_time_to_timezone (t2, zone);

  es_event_filter_add_time_range (range, t2_elsewhere, t3);
  assert_versions (f, "s", range, "3,4");
  assert_matches_agree (f, "s", range);
  assert_versions (f, ES_ALL_STREAM, range, "s:3,s:4,other:1");
  g_assert_cmpuint (es_event_filter_get_n_clauses (range), ==, 2);
  {
    EsFilterOperator op = ES_FILTER_OPERATOR_EQUALS;
    GVariant *value = NULL;

    g_assert_cmpstr (es_event_filter_get_clause (range, 0, &op, &value), ==, "timestamp");
    g_assert_cmpint (op, ==, ES_FILTER_OPERATOR_GREATER_OR_EQUAL);
    g_assert_cmpint (g_variant_get_int64 (value), ==, ts2);
    g_assert_cmpstr (es_event_filter_get_clause (range, 1, &op, &value), ==, "timestamp");
    g_assert_cmpint (op, ==, ES_FILTER_OPERATOR_LESS);
    g_assert_cmpint (g_variant_get_int64 (value), ==, ts3);
  }

  es_event_filter_add_time_range (since, t3, NULL);
  assert_versions (f, "s", since, "5,6");
  es_event_filter_add_time_range (until, NULL, t2);
  assert_versions (f, "s", until, "1,2");
  es_event_filter_add_time_range (open, NULL, NULL);
  g_assert_cmpuint (es_event_filter_get_n_clauses (open), ==, 0);
  assert_versions (f, "s", open, "1,2,3,4,5,6");

  assert_compare (f, "s", "timestamp", ES_FILTER_OPERATOR_GREATER,
                  g_variant_new_int64 (ts2_last), "5,6");
  assert_compare (f, "s", "timestamp", ES_FILTER_OPERATOR_LESS_OR_EQUAL,
                  g_variant_new_int64 (ts2_last), "1,2,3,4");
  assert_compare (f, "s", "timestamp", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (ts2),
                  "1,2");
  assert_compare (f, "s", "timestamp", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                  g_variant_new_int64 (ts3), "5,6");

  es_event_filter_add_equals (equals, "timestamp", g_variant_new_int64 (ts2));
  assert_matches_agree (f, "s", equals);
  {
    g_autoptr(GPtrArray) events = read_events (f, "s", equals);

    g_assert_cmpuint (events->len, >=, 1);
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, 3);
  }
  es_event_filter_add_in (in, "timestamp", g_variant_new_parsed ("[%x, %x]", ts2, ts3));
  assert_matches_agree (f, "s", in);
  {
    g_autoptr(GPtrArray) events = read_events (f, "s", in);

    g_assert_cmpuint (events->len, >=, 2);
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, 3);
  }
}

static void
test_filter_compare_metadata (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "m");
  const char *metadata[] = {
    "{\"n\": 1}",            /* 1 */
    "{\"n\": 2.5}",          /* 2 */
    "{\"n\": \"3\"}",        /* 3: a string never compares */
    "{\"n\": true}",         /* 4: nor a boolean */
    "{}",                    /* 5: nor nothing */
    "{\"n\": 10}",           /* 6 */
    "{\"n\": -1.5}",         /* 7 */
    "{\"a\": {\"n\": 5}}",   /* 8: nested */
    "{\"n\": null}",         /* 9 */
    "{\"n\": [1]}",          /* 10 */
    "{\"n\": 2}",            /* 11 */
  };

  g_test_summary ("Comparisons on metadata select JSON numbers only, integers and doubles "
                  "compared by value, at nested paths too; matches() agrees");

  for (guint i = 0; i < G_N_ELEMENTS (metadata); i++)
    es_test_write_one (stream, "Measured", NULL, metadata[i]);
  es_test_write_one (stream, "Plain", NULL, NULL);  /* 12: no metadata at all */

  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_GREATER, g_variant_new_int64 (2),
                  "2,6");
  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                  g_variant_new_int64 (2), "2,6,11");
  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_LESS_OR_EQUAL,
                  g_variant_new_double (2.5), "1,2,7,11");
  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_LESS, g_variant_new_double (2.5),
                  "1,7,11");
  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                  g_variant_new_double (1.0), "1,2,6,11");
  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (0),
                  "7");
  assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_GREATER, g_variant_new_double (-2),
                  "1,2,6,7,11");
  assert_compare (f, "m", "metadata.a.n", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                  g_variant_new_int64 (5), "8");
  assert_compare (f, "m", "metadata.a.n", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (5),
                  "");
  assert_compare (f, "m", "metadata.missing", ES_FILTER_OPERATOR_LESS,
                  g_variant_new_int64 (G_MAXINT64), "");
  /* A range on metadata, AND-ed. */
  {
    g_autoptr(EsEventFilter) range = es_event_filter_new ();

    es_event_filter_add_compare (range, "metadata.n", ES_FILTER_OPERATOR_GREATER,
                                 g_variant_new_double (1.0));
    es_event_filter_add_compare (range, "metadata.n", ES_FILTER_OPERATOR_LESS,
                                 g_variant_new_int64 (10));
    assert_versions (f, "m", range, "2,11");
    assert_matches_agree (f, "m", range);
  }

  /* Erasing an event takes it out of every metadata comparison. */
  {
    g_autoptr(GError) error = NULL;

    ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "m", 6, NULL, &error));
    assert_compare (f, "m", "metadata.n", ES_FILTER_OPERATOR_GREATER, g_variant_new_int64 (2),
                    "2");
  }
}

static void
assert_filter_invalid (Fixture          *f,
                       const char       *field,
                       EsFilterOperator  op,
                       GVariant         *value,
                       const char       *name1,
                       const char       *name2)
{
  g_autoptr(EsEventFilter) filter = compare (field, op, value);
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventEnumerator) events = NULL;

  g_assert_false (es_event_filter_validate (filter, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, name1, name2);
  g_clear_error (&error);
  events = es_stream_read (stream, 0, filter, NULL, &error);
  g_assert_null (events);
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, name1, name2);
  g_clear_error (&error);
  events = es_stream_read_backwards (stream, ES_READ_FROM_END, filter, NULL, &error);
  g_assert_null (events);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
test_filter_compare_invalid (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(EsEventFilter) like = es_event_filter_new ();
  g_autoptr(GError) error = NULL;

  g_test_summary ("Comparisons with strings, booleans, doubles on integer fields, "
                  "non-finite numbers or on string fields fail validation, naming the "
                  "field and the value");

  write_to (f, "s", 2);

  assert_filter_invalid (f, "version", ES_FILTER_OPERATOR_LESS, g_variant_new_string ("7"),
                         "'version'", "7");
  assert_filter_invalid (f, "timestamp", ES_FILTER_OPERATOR_GREATER,
                         g_variant_new_string ("yesterday"), "'timestamp'", "yesterday");
  assert_filter_invalid (f, "sequence_id", ES_FILTER_OPERATOR_GREATER,
                         g_variant_new_double (1.5), "'sequence_id'", "1.5");
  assert_filter_invalid (f, "metadata.n", ES_FILTER_OPERATOR_LESS_OR_EQUAL,
                         g_variant_new_boolean (TRUE), "'metadata.n'", "true");
  assert_filter_invalid (f, "metadata.n", ES_FILTER_OPERATOR_LESS,
                         g_variant_new_string ("abc"), "'metadata.n'", "abc");
  assert_filter_invalid (f, "metadata.n", ES_FILTER_OPERATOR_LESS, g_variant_new_double (NAN),
                         "'metadata.n'", "nan");
  assert_filter_invalid (f, "metadata.n", ES_FILTER_OPERATOR_GREATER,
                         g_variant_new_double (INFINITY), "'metadata.n'", "inf");
  assert_filter_invalid (f, "stream_id", ES_FILTER_OPERATOR_GREATER, g_variant_new_string ("a"),
                         "'stream_id'", "'a'");
  assert_filter_invalid (f, "event_type", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (1),
                         "'event_type'", NULL);
  assert_filter_invalid (f, "metadata.n", ES_FILTER_OPERATOR_LESS,
                         g_variant_new_parsed ("[1, 2]"), "'metadata.n'", "[1, 2]");
  assert_filter_invalid (f, "size", ES_FILTER_OPERATOR_LESS, g_variant_new_int64 (1),
                         "'size'", NULL);
  assert_filter_invalid (f, "version", 99, g_variant_new_int64 (1), "'version'", "99");
  assert_filter_invalid (f, "timestamp", ES_FILTER_OPERATOR_EQUALS,
                         g_variant_new_double (1.0), "'timestamp'", NULL);

  es_event_filter_add_like (like, "timestamp", "1%");
  g_assert_false (es_event_filter_validate (like, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "'timestamp'", NULL);
}

/* ------------------------------------------------------------------ */
/* Enumerators meet the life cycle                                     */
/* ------------------------------------------------------------------ */

static void
test_coherent_enumerator (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsEventEnumerator) forwards = NULL;
  g_autoptr(EsEventEnumerator) backwards = NULL;
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) rest = NULL;
  g_autoptr(GPtrArray) back_first = NULL;
  g_autoptr(GPtrArray) back_rest = NULL;
  guint n = 2 * PAGE_SIZE + 100;

  g_test_summary ("An enumerator reads page by page: a truncation or an erasure between "
                  "pages shows in the pages not read yet, never as a duplicate or out of "
                  "order");

  for (guint done = 0; done < n; done += 500)
    es_test_write_n (stream, MIN (500, n - done), "Counted");

  forwards = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  first = es_event_enumerator_next_batch (forwards, PAGE_SIZE, NULL, &error);
  g_assert_no_error (error);
  backwards = es_stream_read_backwards (stream, ES_READ_FROM_END, NULL, NULL, &error);
  g_assert_no_error (error);
  back_first = es_event_enumerator_next_batch (backwards, PAGE_SIZE, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (first->len, ==, PAGE_SIZE);
  g_assert_cmpuint (back_first->len, ==, PAGE_SIZE);

  /* Between pages: the oldest 2000 go, one more is erased. */
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 2001, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "s", 2050, NULL, &error));

  rest = es_event_enumerator_next_batch (forwards, 10 * PAGE_SIZE, NULL, &error);
  g_assert_no_error (error);
  assert_descending (first, 1, PAGE_SIZE, -1);
  g_assert_cmpuint (rest->len, ==, n - 2000);
  for (guint i = 0; i < rest->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (rest, i);

      g_assert_cmpint (es_stored_event_get_version (event), ==, 2001 + i);
      g_assert_cmpint (es_stored_event_get_erased (event), ==,
                       es_stored_event_get_version (event) == 2050);
    }

  /* Backwards, the page read is kept; what follows it was truncated. */
  back_rest = es_event_enumerator_next_batch (backwards, 10 * PAGE_SIZE, NULL, &error);
  g_assert_no_error (error);
  assert_descending (back_first, n, n - PAGE_SIZE + 1, 1);
  g_assert_cmpuint (back_rest->len, ==, 0);
}

static void
test_coherent_listing (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(GPtrArray) first = NULL;
  g_autoptr(GPtrArray) rest = NULL;
  guint n = PAGE_SIZE + 10;

  g_test_summary ("A listing reads page by page: streams deleted between pages are missing "
                  "from the pages not read yet, streams created after its position show");

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("s-%05u", i);

      write_to (f, id, 1);
    }

  streams = es_stream_factory_list_streams (f->factory, NULL, ES_LIST_STREAMS_FLAGS_NONE, NULL,
                                            &error);
  g_assert_no_error (error);
  first = es_stream_info_enumerator_next_batch (streams, PAGE_SIZE, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (first->len, ==, PAGE_SIZE);

  /* One stream already listed and one not yet go; a new one comes last. */
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "s-00000", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "s-01030", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  write_to (f, "t-new", 1);

  rest = es_stream_info_enumerator_next_batch (streams, 100, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (es_stream_info_get_stream_id (g_ptr_array_index (first, 0)), ==, "s-00000");
  g_assert_cmpuint (rest->len, ==, 10);
  for (guint i = 0; i < 9; i++)
    {
      g_autofree char *id = g_strdup_printf ("s-%05u", PAGE_SIZE + i + (PAGE_SIZE + i >= 1030));

      g_assert_cmpstr (es_stream_info_get_stream_id (g_ptr_array_index (rest, i)), ==, id);
    }
  g_assert_cmpstr (es_stream_info_get_stream_id (g_ptr_array_index (rest, 9)), ==, "t-new");
}

/* ------------------------------------------------------------------ */
/* Watches meet the life cycle                                         */
/* ------------------------------------------------------------------ */

static gboolean
require_notifier (Fixture *f)
{
  if (es_stream_factory_get_notifier (f->factory) != NULL)
    return TRUE;
  g_test_skip ("This backend has no notifier");
  return FALSE;
}

static void
assert_no_markers (EsTestRecorder *recorder)
{
  g_assert_cmpuint (count_markers (recorder->events), ==, 0);
}

/* Tombstones "s" through @deleter, while @f's factory watches "s" and
 * @all: the first ends with STREAM_DELETED, the second goes on. */
static void
check_watch_tombstone (Fixture         *f,
                       EsStreamFactory *deleter)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) all_recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) all_watch = NULL;

  es_test_write_n (stream, 3, "Before");
  write_to (f, "other", 1);
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  all_watch = es_stream_watch (all, 0);
  es_test_recorder_connect (all_recorder, all_watch);
  es_test_recorder_wait_caught_up (recorder);
  es_test_recorder_wait_caught_up (all_recorder);
  g_assert_cmpuint (recorder->events->len, ==, 3);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (deleter, "s", 3, ES_DELETE_FLAGS_TOMBSTONE,
                                                      NULL, &error));

  es_test_recorder_wait_error (recorder);
  assert_error_names (recorder->error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'s'", NULL);
  g_assert_false (es_watch_get_active (watch));
  g_assert_cmpuint (recorder->events->len, ==, 3);

  /* @all goes on, without the marker. */
  write_to (f, "other", 1);
  es_test_recorder_wait_events (all_recorder, 5);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (all_recorder->events, 4)),
                   ==, "other");
  es_test_spin (50);
  g_assert_cmpuint (all_recorder->events->len, ==, 5);
  assert_no_markers (all_recorder);
  g_assert_null (all_recorder->error);
  g_assert_true (es_watch_get_active (all_watch));
  g_assert_cmpuint (recorder->events->len, ==, 3);
}

static void
test_watch_tombstone_same_factory (Fixture       *f,
                                   gconstpointer  data)
{
  g_test_summary ("A watch of a stream hard-deleted through its own factory emits "
                  "STREAM_DELETED naming it and stops; a watch of @all goes on without "
                  "markers");
  if (!require_notifier (f))
    return;

  check_watch_tombstone (f, f->factory);
}

static void
test_watch_tombstone_other_factory (Fixture       *f,
                                    gconstpointer  data)
{
  g_autoptr(EsStreamFactory) other = NULL;

  g_test_summary ("A watch of a stream hard-deleted by another process (another factory on "
                  "the same database) emits STREAM_DELETED and stops");
  if (!require_notifier (f))
    return;
  other = fixture_open_other_factory (f);
  if (other == NULL)
    {
      g_test_skip ("This backend's database cannot be shared");
      return;
    }

  check_watch_tombstone (f, other);
  es_test_factory_close_and_free (g_steal_pointer (&other));
}

static void
test_watch_started_on_tombstoned (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsTestRecorder) from_start = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) live_only = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) live = NULL;

  g_test_summary ("A watch started on a stream already hard-deleted ends at once with "
                  "STREAM_DELETED");
  if (!require_notifier (f))
    return;

  es_test_write_n (stream, 2, "Gone");
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "s", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));

  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (from_start, watch);
  live = es_stream_watch (stream, -1);
  es_test_recorder_connect (live_only, live);
  es_test_recorder_wait_error (from_start);
  es_test_recorder_wait_error (live_only);
  assert_error_names (from_start->error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'s'", NULL);
  assert_error_names (live_only->error, ES_ERROR, ES_ERROR_STREAM_DELETED, "'s'", NULL);
  g_assert_cmpuint (from_start->events->len, ==, 0);
  g_assert_false (es_watch_get_active (watch));
  g_assert_false (es_watch_get_active (live));
}

static void
test_watch_survives_soft_changes (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "s");
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("Soft deletes, truncations and erasures do not disturb a watch: a stream "
                  "written again after a soft delete continues its versions");
  if (!require_notifier (f))
    return;

  es_test_write_n (stream, 3, "Before");
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "s", 3, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));
  es_test_write_n (stream, 2, "After");
  es_test_recorder_wait_events (recorder, 5);

  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream (f->factory, "s", 5, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_erase_event (f->factory, "s", 5, NULL, &error));
  es_test_write_n (stream, 1, "Last");
  es_test_recorder_wait_events (recorder, 6);
  es_test_spin (50);

  g_assert_cmpuint (recorder->events->len, ==, 6);
  es_test_assert_consecutive (recorder->events, 0, FALSE);
  g_assert_null (recorder->error);
  g_assert_true (es_watch_get_active (watch));
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (recorder->events, 5)), ==,
                   "Last");
}

static void
test_watch_all_skips_deleted (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;

  g_test_summary ("A watch of @all replays only what is stored, never markers, and goes "
                  "on after deletes");
  if (!require_notifier (f))
    return;

  write_to (f, "a", 3);
  write_to (f, "b", 2);
  write_to (f, "c", 1);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "a", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "c", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));

  watch = es_stream_watch (all, 0);
  es_test_recorder_connect (recorder, watch);
  es_test_recorder_wait_caught_up (recorder);
  g_assert_cmpuint (recorder->events->len, ==, 2);

  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream (f->factory, "b", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  write_to (f, "d", 1);
  es_test_recorder_wait_events (recorder, 3);
  es_test_spin (50);
  g_assert_cmpuint (recorder->events->len, ==, 3);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (recorder->events, 2)), ==,
                   "d");
  es_test_assert_consecutive (recorder->events, 0, TRUE);
  assert_no_markers (recorder);
  g_assert_null (recorder->error);
}

/* ------------------------------------------------------------------ */
/* The asynchronous twins, compaction, a closed factory                */
/* ------------------------------------------------------------------ */

static void
store_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
test_async_operations (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsStreamInfo) info = NULL;

  g_test_summary ("Each life-cycle operation has an asynchronous twin with the same effect "
                  "and the same errors");

  write_to (f, "s", 6);
  write_to (f, "d", 2);

  es_stream_factory_get_stream_info_async (f->factory, "s", NULL, store_cb, &result);
  es_test_wait_result (&result);
  info = es_stream_factory_get_stream_info_finish (f->factory, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 6);
  g_clear_object (&result);

  es_stream_factory_truncate_stream_async (f->factory, "s", 3, NULL, store_cb, &result);
  es_test_wait_result (&result);
  ES_TEST_ASSERT_OK (es_stream_factory_truncate_stream_finish (f->factory, result, &error));
  g_clear_object (&result);
  assert_versions (f, "s", NULL, "3,4,5,6");

  es_stream_factory_truncate_stream_async (f->factory, "s", 9, NULL, store_cb, &result);
  es_test_wait_result (&result);
  g_assert_false (es_stream_factory_truncate_stream_finish (f->factory, result, &error));
  assert_error_names (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT, "9", NULL);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_factory_erase_event_async (f->factory, "s", 4, NULL, store_cb, &result);
  es_test_wait_result (&result);
  ES_TEST_ASSERT_OK (es_stream_factory_erase_event_finish (f->factory, result, &error));
  g_clear_object (&result);
  {
    g_autoptr(GPtrArray) events = read_events (f, "s", NULL);

    g_assert_true (es_stored_event_get_erased (g_ptr_array_index (events, 1)));
  }

  es_stream_factory_set_retention_async (f->factory, "s", 0, 2, NULL, store_cb, &result);
  es_test_wait_result (&result);
  ES_TEST_ASSERT_OK (es_stream_factory_set_retention_finish (f->factory, result, &error));
  g_clear_object (&result);
  assert_versions (f, "s", NULL, "5,6");

  es_stream_factory_delete_stream_async (f->factory, "d", 2, ES_DELETE_FLAGS_TOMBSTONE, NULL,
                                         store_cb, &result);
  es_test_wait_result (&result);
  ES_TEST_ASSERT_OK (es_stream_factory_delete_stream_finish (f->factory, result, &error));
  g_clear_object (&result);
  assert_info (f, "d", ES_STREAM_STATE_TOMBSTONED, 2, 0, 0);

  es_stream_factory_sweep_async (f->factory, NULL, store_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_factory_sweep_finish (f->factory, result, &error), ==, 0);
  g_assert_no_error (error);
  g_clear_object (&result);

  es_stream_factory_compact_async (f->factory, NULL, store_cb, &result);
  es_test_wait_result (&result);
  ES_TEST_ASSERT_OK (es_stream_factory_compact_finish (f->factory, result, &error));
  g_clear_object (&result);
  ES_TEST_ASSERT_OK (es_stream_factory_compact (f->factory, NULL, &error));
  assert_versions (f, "s", NULL, "5,6");
  assert_versions (f, ES_ALL_STREAM, NULL, "s:5,s:6");

  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));
  es_stream_factory_delete_stream_async (f->factory, "s", ES_VERSION_ANY,
                                         ES_DELETE_FLAGS_NONE, NULL, store_cb, &result);
  es_test_wait_result (&result);
  g_assert_false (es_stream_factory_delete_stream_finish (f->factory, result, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_clear_object (&result);
  es_stream_factory_sweep_async (f->factory, NULL, store_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_factory_sweep_finish (f->factory, result, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
}

static void
test_closed_factory (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("Every life-cycle operation fails with CLOSED after the factory closed");

  write_to (f, "s", 2);
  ES_TEST_ASSERT_OK (es_stream_factory_close (f->factory, NULL, &error));

#define ASSERT_CLOSED(call) \
  G_STMT_START { \
    g_assert_false (call); \
    g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED); \
    g_clear_error (&error); \
  } G_STMT_END

  ASSERT_CLOSED (es_stream_factory_truncate_stream (f->factory, "s", 2, NULL, &error));
  ASSERT_CLOSED (es_stream_factory_erase_event (f->factory, "s", 1, NULL, &error));
  ASSERT_CLOSED (es_stream_factory_set_retention (f->factory, "s", 0, 1, NULL, &error));
  ASSERT_CLOSED (es_stream_factory_compact (f->factory, NULL, &error));
  ASSERT_CLOSED (es_stream_factory_sweep (f->factory, NULL, &error) >= 0);
  ASSERT_CLOSED (es_stream_factory_get_stream_info (f->factory, NULL, NULL, &error) != NULL);
#undef ASSERT_CLOSED
}

void
add_lifecycle_tests (void)
{
  add_test ("lifecycle/list/order-and-info", test_list_order_and_info);
  add_test ("lifecycle/list/prefix-bytes", test_list_prefix_bytes);
  add_test ("lifecycle/list/pages", test_list_pages);
  add_test ("lifecycle/list/bad-input", test_list_bad_input);
  add_test ("lifecycle/delete/soft", test_delete_soft);
  add_test ("lifecycle/delete/wrong-expected", test_delete_wrong_expected);
  add_test ("lifecycle/delete/idempotency-keys", test_delete_idempotency_keys);
  add_test ("lifecycle/delete/never-written", test_delete_never_written);
  add_test ("lifecycle/delete/bad-input", test_delete_bad_input);
  add_test ("lifecycle/delete/tombstone", test_delete_tombstone);
  add_test ("lifecycle/delete/tombstone-marker", test_delete_tombstone_marker);
  add_test ("lifecycle/positions/never-reused", test_positions_never_reused);
  add_test ("lifecycle/truncate/basic", test_truncate);
  add_test ("lifecycle/truncate/bad-input", test_truncate_bad_input);
  add_test ("lifecycle/erase/basic", test_erase);
  add_test ("lifecycle/erase/not-found", test_erase_not_found);
  add_test ("lifecycle/retention/count", test_retention_count);
  add_test ("lifecycle/retention/age-sweep", test_retention_age_sweep);
  add_test ("lifecycle/retention/age-real-time", test_retention_age_real_time);
  add_test ("lifecycle/retention/database-wide", test_retention_database_wide);
  add_test ("lifecycle/retention/bad-input", test_retention_bad_input);
  add_test ("lifecycle/retention/policy-only-stream", test_retention_policy_only_stream);
  add_test ("lifecycle/backwards/stream", test_backwards_stream);
  add_test ("lifecycle/backwards/all", test_backwards_all);
  add_test ("lifecycle/filter/compare-positions", test_filter_compare_positions);
  add_test ("lifecycle/filter/compare-timestamp", test_filter_compare_timestamp);
  add_test ("lifecycle/filter/compare-metadata", test_filter_compare_metadata);
  add_test ("lifecycle/filter/compare-invalid", test_filter_compare_invalid);
  add_test ("lifecycle/coherent/enumerator", test_coherent_enumerator);
  add_test ("lifecycle/coherent/listing", test_coherent_listing);
  add_test ("lifecycle/watch/tombstone-same-factory", test_watch_tombstone_same_factory);
  add_test ("lifecycle/watch/tombstone-other-factory", test_watch_tombstone_other_factory);
  add_test ("lifecycle/watch/started-on-tombstoned", test_watch_started_on_tombstoned);
  add_test ("lifecycle/watch/survives-soft-changes", test_watch_survives_soft_changes);
  add_test ("lifecycle/watch/all-skips-deleted", test_watch_all_skips_deleted);
  add_test ("lifecycle/async", test_async_operations);
  add_test ("lifecycle/closed", test_closed_factory);
}
