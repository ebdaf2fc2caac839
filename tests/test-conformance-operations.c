/* test-conformance-operations.c: export, import and check (issue 19), on
 * every backend: the rules of es_stream_factory_export_events(),
 * es_stream_factory_import_events() and es_storage_handle_import_events().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "test-conformance.h"

static EsCandidateEvent *
candidate (const char *event_type,
           const void *data,
           gssize      len,
           const char *key,
           const char *metadata)
{
  g_autoptr(GBytes) bytes = g_bytes_new (data, len < 0 ? strlen (data) : (gsize) len);
  EsCandidateEvent *event = es_candidate_event_new (event_type, bytes);

  if (key != NULL)
    es_candidate_event_set_idempotency_key (event, key);
  if (metadata != NULL)
    es_candidate_event_set_metadata (event, metadata);
  return event;
}

static void
write_events (EsStreamFactory  *factory,
              const char       *stream_id,
              EsCandidateEvent *first,
              ...)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, stream_id);
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  va_list args;

  va_start (args, first);
  for (EsCandidateEvent *e = first; e != NULL; e = va_arg (args, EsCandidateEvent *))
    g_ptr_array_add (batch, e);
  va_end (args);
  es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                   ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
}

/* Several streams, binary data, JSON data in and out of canonical form,
 * metadata as an object and as a spaced-out text, keys, an erased event,
 * interleaved so that @all order differs from stream order. */
static void
write_dataset (EsStreamFactory *factory)
{
  static const guchar binary[] = { 0x00, 0xff, 0x10, '"', '\n', 0x80, 0xc3, 0x28 };
  g_autoptr(GError) error = NULL;

  write_events (factory, "order-1",
                candidate ("Created", "{\"id\":1,\"items\":[\"a\",\"b\"]}", -1, "k-1",
                           "{\"user\":\"ana\"}"),
                candidate ("Binary", binary, sizeof binary, NULL, "{ \"spaced\" : true }"),
                NULL);
  write_events (factory, "user-\xc3\xa9t\xc3\xa9",
                candidate ("Named", "{\"name\": \"caf\xc3\xa9\"}", -1, "k-1", NULL),
                NULL);
  write_events (factory, "order-1",
                candidate ("Shipped", "\"a string\"", -1, "k-3", NULL),
                candidate ("Empty", "", 0, NULL, NULL),
                NULL);
  write_events (factory, "order-2",
                candidate ("Secret", "{\"card\":\"4242\"}", -1, NULL, "{\"why\":\"pay\"}"),
                candidate ("Created", "12", -1, NULL, NULL),
                NULL);
  g_assert_true (es_stream_factory_erase_event (factory, "order-2", 1, NULL, &error));
  g_assert_no_error (error);
}

static GBytes *
export_to_bytes (EsStreamFactory *factory,
                 const char      *stream_id,
                 EsEventFilter   *filter,
                 gint64           expected_n)
{
  g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();
  g_autoptr(GError) error = NULL;
  gint64 n;

  n = es_stream_factory_export_events (factory, out, stream_id, filter, ES_EXPORT_FLAGS_NONE, NULL,
                                NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, expected_n);
  g_assert_true (g_output_stream_close (out, NULL, NULL));
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
}

static gint64
import_text (EsStreamFactory  *factory,
             const char       *text,
             gssize            len,
             GError          **error)
{
  g_autoptr(GInputStream) in =
    g_memory_input_stream_new_from_data (g_memdup2 (text, len < 0 ? strlen (text) : (gsize) len),
                                         len < 0 ? (gssize) strlen (text) : len, g_free);

  return es_stream_factory_import_events (factory, in, ES_IMPORT_FLAGS_NONE, NULL, NULL, NULL, error);
}

static char *
bytes_to_string (GBytes *bytes)
{
  return g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
}

static void
assert_same_events (EsStreamFactory *a,
                    EsStreamFactory *b,
                    const char      *stream_id)
{
  g_autoptr(EsStream) sa = es_test_open_stream (a, stream_id);
  g_autoptr(EsStream) sb = es_test_open_stream (b, stream_id);
  g_autoptr(GPtrArray) ea = es_test_read_all_ok (sa, 0, NULL);
  g_autoptr(GPtrArray) eb = es_test_read_all_ok (sb, 0, NULL);

  g_assert_cmpuint (ea->len, ==, eb->len);
  for (guint i = 0; i < ea->len; i++)
    {
      EsStoredEvent *x = g_ptr_array_index (ea, i);
      EsStoredEvent *y = g_ptr_array_index (eb, i);

      g_assert_cmpint (es_stored_event_get_version (x), ==, es_stored_event_get_version (y));
      g_assert_cmpint (es_stored_event_get_timestamp_usec (x), ==,
                       es_stored_event_get_timestamp_usec (y));
      g_assert_cmpstr (es_stored_event_get_event_type (x), ==, es_stored_event_get_event_type (y));
      g_assert_cmpstr (es_stored_event_get_idempotency_key (x), ==,
                       es_stored_event_get_idempotency_key (y));
      g_assert_cmpstr (es_stored_event_get_metadata (x), ==, es_stored_event_get_metadata (y));
      g_assert_true (g_bytes_equal (es_stored_event_get_data (x), es_stored_event_get_data (y)));
      g_assert_cmpint (es_stored_event_get_erased (x), ==, es_stored_event_get_erased (y));
    }
}

static void
test_round_trip (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(EsStreamFactory) target = NULL;
  g_autoptr(GBytes) first = NULL;
  g_autoptr(GBytes) second = NULL;
  g_autoptr(GBytes) third = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  write_dataset (f->factory);
  first = export_to_bytes (f->factory, NULL, NULL, 7);
  text = bytes_to_string (first);
  g_test_message ("%s", text);
  lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 8);  /* 7 lines and the empty end */
  g_assert_cmpstr (lines[7], ==, "");

  /* What the format guide promises, line by line, in sequence order. */
  g_assert_true (g_str_has_prefix (lines[0], "{\"stream_id\":\"order-1\",\"version\":1,"
                                             "\"sequence_id\":"));
  g_assert_nonnull (strstr (lines[0], "\"event_type\":\"Created\",\"idempotency_key\":\"k-1\","
                                      "\"metadata\":{\"user\":\"ana\"},"
                                      "\"data\":{\"id\":1,\"items\":[\"a\",\"b\"]}}"));
  g_assert_true (g_regex_match_simple ("\"timestamp\":\"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:"
                                       "\\d\\d\\.\\d{6}Z\"", lines[0], 0, 0));
  /* Binary: base64; metadata with spaces: the object as stored. */
  g_assert_nonnull (strstr (lines[1], "\"metadata\":{ \"spaced\" : true },"
                                      "\"data_base64\":\"AP8QIgqAwyg=\"}"));
  /* JSON with spaces: as stored, too. */
  g_assert_true (g_str_has_prefix (lines[2], "{\"stream_id\":\"user-\xc3\xa9t\xc3\xa9\","));
  g_assert_nonnull (strstr (lines[2], ",\"data\":{\"name\": \"caf\xc3\xa9\"}}"));
  g_assert_nonnull (strstr (lines[3], "\"data\":\"a string\"}"));
  g_assert_nonnull (strstr (lines[4], "\"idempotency_key\":null,\"metadata\":null,"
                                      "\"data_base64\":\"\"}"));
  g_assert_nonnull (strstr (lines[5], "\"metadata\":null,\"data_base64\":\"\",\"erased\":true}"));
  g_assert_nonnull (strstr (lines[6], "\"data\":12}"));

  target = fixture_open_empty_factory (f);
  g_assert_cmpint (import_text (target, text, -1, &error), ==, 7);
  g_assert_no_error (error);
  second = export_to_bytes (target, NULL, NULL, 7);
  g_assert_cmpmem (g_bytes_get_data (first, NULL), g_bytes_get_size (first),
                   g_bytes_get_data (second, NULL), g_bytes_get_size (second));
  assert_same_events (f->factory, target, "order-1");
  assert_same_events (f->factory, target, "order-2");
  assert_same_events (f->factory, target, "user-\xc3\xa9t\xc3\xa9");

  /* Importing the same file again stores nothing and changes nothing. */
  g_assert_cmpint (import_text (target, text, -1, &error), ==, 0);
  g_assert_no_error (error);
  third = export_to_bytes (target, NULL, NULL, 7);
  g_assert_true (g_bytes_equal (first, third));

  es_test_factory_close_and_free (g_steal_pointer (&target));
}

static void
test_export_stream_and_filter (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GBytes) one = NULL;
  g_autoptr(GBytes) filtered = NULL;
  g_autoptr(GBytes) all = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();

  write_dataset (f->factory);
  one = export_to_bytes (f->factory, "order-1", NULL, 4);
  text = bytes_to_string (one);
  g_assert_null (strstr (text, "order-2"));
  g_assert_true (g_str_has_prefix (text, "{\"stream_id\":\"order-1\",\"version\":1,"));
  g_clear_pointer (&text, g_free);

  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("Created"));
  filtered = export_to_bytes (f->factory, NULL, filter, 2);
  text = bytes_to_string (filtered);
  g_assert_nonnull (strstr (text, "\"stream_id\":\"order-1\",\"version\":1,"));
  g_assert_nonnull (strstr (text, "\"stream_id\":\"order-2\",\"version\":2,"));

  all = export_to_bytes (f->factory, ES_ALL_STREAM, NULL, 7);
  g_assert_cmpint (g_bytes_get_size (all), >, g_bytes_get_size (one));

  /* An invalid stream id is refused before anything is written. */
  g_assert_cmpint (es_stream_factory_export_events (f->factory, out, "", NULL, ES_EXPORT_FLAGS_NONE,
                                             NULL, NULL, NULL, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (out)), ==, 0);
}

static gint64
stream_version (EsStreamFactory *factory,
                const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = es_stream_factory_get_stream_info (factory, stream_id, NULL,
                                                                    &error);

  if (g_error_matches (error, ES_ERROR, ES_ERROR_NOT_FOUND))
    return 0;
  g_assert_no_error (error);
  return es_stream_info_get_current_version (info);
}

#define LINE(stream, version, type, data) \
  "{\"stream_id\":\"" stream "\",\"version\":" #version ",\"sequence_id\":1," \
  "\"timestamp\":\"2026-01-02T03:04:05.000006Z\",\"event_type\":\"" type "\"," \
  "\"idempotency_key\":null,\"metadata\":null,\"data\":" data "}\n"

static void
test_import_conflicts (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  write_events (f->factory, "acct",
                candidate ("Opened", "1", 1, "key-1", NULL), NULL);

  /* Another event at a stored version: nothing of the batch is stored. */
  g_assert_cmpint (import_text (f->factory, LINE ("other", 1, "A", "1") LINE ("acct", 1, "Opened", "2"),
                                -1, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_nonnull (strstr (error->message, "Line 2"));
  g_assert_nonnull (strstr (error->message, "'acct'"));
  g_assert_nonnull (strstr (error->message, "version 1"));
  g_clear_error (&error);
  g_assert_cmpint (stream_version (f->factory, "other"), ==, 0);

  /* A gap. */
  g_assert_cmpint (import_text (f->factory, LINE ("acct", 3, "Late", "3"), -1, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_nonnull (strstr (error->message, "Line 1"));
  g_assert_nonnull (strstr (error->message, "version 3"));
  g_clear_error (&error);
  g_assert_cmpint (stream_version (f->factory, "acct"), ==, 1);

  /* A key used by another version of the stream. */
  g_assert_cmpint (import_text (f->factory,
                                "{\"stream_id\":\"acct\",\"version\":2,\"timestamp\":"
                                "\"2026-01-02T03:04:05Z\",\"event_type\":\"Dup\","
                                "\"idempotency_key\":\"key-1\",\"data\":1}",
                                -1, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "key-1"));
  g_clear_error (&error);
  g_assert_cmpint (stream_version (f->factory, "acct"), ==, 1);

  /* A continuation is stored; a stream never written may start past 1
   * (its beginning was truncated at the source). */
  g_assert_cmpint (import_text (f->factory, LINE ("acct", 2, "Next", "2") LINE ("late", 5, "T", "5")
                                LINE ("late", 6, "T", "6"), -1, &error), ==, 3);
  g_assert_no_error (error);
  g_assert_cmpint (stream_version (f->factory, "acct"), ==, 2);
  g_assert_cmpint (stream_version (f->factory, "late"), ==, 6);
  {
    g_autoptr(EsStream) late = es_test_open_stream (f->factory, "late");
    g_autoptr(GPtrArray) events = es_test_read_all_ok (late, 0, NULL);
    g_autoptr(GDateTime) time = NULL;

    g_assert_cmpuint (events->len, ==, 2);
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, 5);
    time = g_date_time_new_from_iso8601 ("2026-01-02T03:04:05.000006Z", NULL);
    g_assert_cmpint (es_stored_event_get_timestamp_usec (g_ptr_array_index (events, 0)), ==,
                     g_date_time_to_unix (time) * G_USEC_PER_SEC + 6);
  }

  /* A tombstoned stream refuses imports. */
  g_assert_true (es_stream_factory_delete_stream (f->factory, "late", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (import_text (f->factory, LINE ("late", 7, "T", "7"), -1, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED);
}

static void
test_import_bad_lines (Fixture       *f,
                       gconstpointer  data)
{
  static const char * const bad[] = {
    "not json",
    "[1,2]",
    "{\"version\":1,\"timestamp\":\"2026-01-02T03:04:05Z\",\"event_type\":\"T\",\"data\":1}",
    "{\"stream_id\":\"s\",\"version\":0,\"timestamp\":\"2026-01-02T03:04:05Z\",\"event_type\":\"T\",\"data\":1}",
    "{\"stream_id\":\"s\",\"version\":1,\"timestamp\":\"yesterday\",\"event_type\":\"T\",\"data\":1}",
    "{\"stream_id\":\"s\",\"version\":1,\"timestamp\":\"2026-01-02T03:04:05Z\",\"data\":1}",
    "{\"stream_id\":\"s\",\"version\":1,\"timestamp\":\"2026-01-02T03:04:05Z\",\"event_type\":\"T\"}",
    "{\"stream_id\":\"s\",\"version\":1,\"timestamp\":\"2026-01-02T03:04:05Z\",\"event_type\":\"T\",\"metadata\":3,\"data\":1}",
    "{\"stream_id\":\"@all\",\"version\":1,\"timestamp\":\"2026-01-02T03:04:05Z\",\"event_type\":\"T\",\"data\":1}",
  };
  g_autoptr(GString) big = g_string_new (NULL);
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *text = g_strdup_printf ("%s\n%s\n", LINE ("s", 1, "T", "1"), bad[i]);

      g_assert_cmpint (import_text (f->factory, text, -1, &error), ==, -1);
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "Line 3"));
      g_clear_error (&error);
      /* The good line before it shared its batch: not stored. */
      g_assert_cmpint (stream_version (f->factory, "s"), ==, 0);
    }

  /* Batches of 1,000 lines: the ones before a bad line stay, and a second
   * run of the fixed file resumes. */
  for (guint v = 1; v <= 1001; v++)
    g_string_append_printf (big, "{\"stream_id\":\"big\",\"version\":%u,\"timestamp\":"
                            "\"2026-01-02T03:04:05Z\",\"event_type\":\"T\",\"data\":%u}\n", v, v);
  g_string_append (big, "{broken\n");
  g_assert_cmpint (import_text (f->factory, big->str, (gssize) big->len, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "Line 1002"));
  g_clear_error (&error);
  g_assert_cmpint (stream_version (f->factory, "big"), ==, 1000);

  g_string_truncate (big, big->len - strlen ("{broken\n"));
  g_assert_cmpint (import_text (f->factory, big->str, (gssize) big->len, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_cmpint (stream_version (f->factory, "big"), ==, 1001);
}

static void
test_check_healthy (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsCheckReport) report = NULL;
  g_autoptr(GError) error = NULL;

  write_dataset (f->factory);
  {
    g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "many");
    es_test_write_n (stream, 20, "Counted");
  }
  g_assert_true (es_stream_factory_truncate_stream (f->factory, "many", 5, NULL, &error));
  g_assert_true (es_stream_factory_delete_stream (f->factory, "order-2", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_true (es_stream_factory_delete_stream (f->factory, "user-\xc3\xa9t\xc3\xa9",
                                                  ES_VERSION_ANY, ES_DELETE_FLAGS_TOMBSTONE,
                                                  NULL, &error));
  g_assert_no_error (error);

  report = es_stream_factory_check (f->factory, ES_CHECK_FLAGS_NONE, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < es_check_report_get_n_problems (report); i++)
    g_test_message ("%s", es_check_report_get_problem_message (report, i));
  g_assert_true (es_check_report_is_ok (report));
  g_assert_cmpuint (es_check_report_get_n_problems (report), ==, 0);
  g_assert_null (es_check_report_get_problem_message (report, 0));
  g_clear_object (&report);

  report = es_stream_factory_check (f->factory, ES_CHECK_FLAGS_QUICK, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (es_check_report_is_ok (report));
}

/* A snapshot past its stream's head, stored through the storage handle
 * (which takes what it is given), is found on every backend. */
static void
test_check_finds_snapshot (Fixture       *f,
                           gconstpointer  data)
{
  EsStorageHandle *storage = es_stream_factory_get_storage (f->factory);
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
  g_autoptr(EsCheckReport) report = NULL;
  g_autoptr(GError) error = NULL;

  write_events (f->factory, "snap", candidate ("A", "1", -1, NULL, NULL), NULL);
  g_assert_true (es_storage_handle_save_snapshot (storage, "snap", "proj", 1, state, NULL,
                                                  &error));
  g_assert_no_error (error);
  report = es_stream_factory_check (f->factory, ES_CHECK_FLAGS_NONE, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (es_check_report_is_ok (report));
  g_clear_object (&report);

  g_assert_true (es_storage_handle_save_snapshot (storage, "snap", "proj", 7, state, NULL,
                                                  &error));
  g_assert_no_error (error);
  report = es_stream_factory_check (f->factory, ES_CHECK_FLAGS_NONE, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (es_check_report_get_n_problems (report), ==, 1);
  g_assert_cmpint (es_check_report_get_problem_kind (report, 0), ==, ES_CHECK_PROBLEM_SNAPSHOT);
  g_assert_cmpstr (es_check_report_get_problem_stream_id (report, 0), ==, "snap");
  g_assert_cmpint (es_check_report_get_problem_version (report, 0), ==, 7);
}

typedef struct
{
  GThread *thread;
  guint    calls;
  goffset  last;
  goffset  total;
  gboolean decreasing;
  gboolean destroyed;
} Progress;

static void
progress_cb (goffset  current,
             goffset  total,
             gpointer data)
{
  Progress *p = data;

  g_assert_true (g_thread_self () == p->thread);
  if (current < p->last)
    p->decreasing = TRUE;
  p->calls++;
  p->last = current;
  p->total = total;
}

static void
progress_destroy (gpointer data)
{
  ((Progress *) data)->destroyed = TRUE;
}

static void
test_async_operations (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(EsStreamFactory) target = NULL;
  g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsCheckReport) report = NULL;
  g_autoptr(GBytes) exported = NULL;
  g_autoptr(GBytes) again = NULL;
  Progress p = { g_thread_self (), 0, };

  {
    g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "many");
    es_test_write_n (stream, 3000, "Counted");
  }

  es_stream_factory_export_events_async (f->factory, out, NULL, NULL, ES_EXPORT_FLAGS_DATA_BASE64, NULL,
                                  progress_cb, &p, progress_destroy, es_test_store_result_cb,
                                  &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_factory_export_events_finish (f->factory, result, &error), ==, 3000);
  g_assert_no_error (error);
  g_clear_object (&result);
  /* Progress comes before the result, in this thread, ending at the total. */
  while (!p.destroyed)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (p.calls, >=, 3);
  g_assert_false (p.decreasing);
  g_assert_cmpint (p.last, ==, 3000);
  g_assert_cmpint (p.total, ==, 3000);

  g_assert_true (g_output_stream_close (out, NULL, NULL));
  exported = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
  g_assert_null (strstr (g_bytes_get_data (exported, NULL), "\"data\":"));

  target = fixture_open_empty_factory (f);
  in = g_memory_input_stream_new_from_bytes (exported);
  memset (&p, 0, sizeof p);
  p.thread = g_thread_self ();
  es_stream_factory_import_events_async (target, in, ES_IMPORT_FLAGS_NONE, NULL, progress_cb, &p,
                                  progress_destroy, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_factory_import_events_finish (target, result, &error), ==, 3000);
  g_assert_no_error (error);
  g_clear_object (&result);
  while (!p.destroyed)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (p.last, ==, (goffset) g_bytes_get_size (exported));
  g_assert_cmpint (p.total, ==, -1);  /* a memory stream does not tell its size */
  assert_same_events (f->factory, target, "many");
  again = export_to_bytes (target, NULL, NULL, 3000);
  g_assert_nonnull (again);

  es_stream_factory_check_async (target, ES_CHECK_FLAGS_NONE, NULL, NULL, NULL, NULL,
                                 es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  report = es_stream_factory_check_finish (target, result, &error);
  g_assert_no_error (error);
  g_assert_true (es_check_report_is_ok (report));
  g_clear_object (&result);

  es_test_factory_close_and_free (g_steal_pointer (&target));
}

static void
test_cancelled (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();
  g_autoptr(GError) error = NULL;

  g_cancellable_cancel (cancellable);
  g_assert_cmpint (es_stream_factory_export_events (f->factory, out, NULL, NULL, ES_EXPORT_FLAGS_NONE,
                                             cancellable, NULL, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_cmpint (import_text (f->factory, LINE ("s", 1, "T", "1"), -1, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_null (es_stream_factory_check (f->factory, ES_CHECK_FLAGS_NONE, cancellable, NULL,
                                          NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* What a backend does not do fails with NOT_SUPPORTED, before anything
 * is read or written. */
static void
test_unsupported (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *dir = g_dir_make_tmp ("es-unsupported-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "backup.db", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GError) error = NULL;
  gboolean backup;

  backup = es_stream_factory_backup (f->factory, file, ES_BACKUP_FLAGS_NONE, NULL, NULL, NULL,
                                     &error);
  if (f->backend == BACKEND_SQLITE_FILE || f->backend == BACKEND_SQLITE_MEMORY)
    {
      g_assert_no_error (error);
      g_assert_true (backup);
    }
  else
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
      g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
      g_clear_error (&error);
    }

  es_test_remove_tree (dir);
}

/* Payloads and whether the export writes them as JSON (as they are) or
 * as base64: every one must come back byte for byte. */
static const struct
{
  const char *data;
  gssize      len;        /* -1: strlen */
  gboolean    as_json;
} exact_cases[] = {
  { "{\"order\": 1}", -1, TRUE },                        /* spaces */
  { "{\"b\":1,\"a\":2}", -1, TRUE },                     /* key order */
  { "{ \"a\" : [ 1 ,\t2 ] }", -1, TRUE },                /* spaces and a tab */
  { "{\"a\":1,\"a\":2}", -1, TRUE },                     /* a repeated name */
  { "\"\\u00e9\\ud83d\\ude00\\u0000\\/\"", -1, TRUE },     /* escapes, an escaped NUL */
  { "\"caf\xc3\xa9 \xe2\x80\xa8\"", -1, TRUE },          /* UTF-8, U+2028 */
  { "12345678901234567890", -1, TRUE },                  /* beyond gint64 */
  { "-0.0", -1, TRUE },
  { "1e400", -1, TRUE },                                 /* beyond double */
  { "1.5E+2", -1, TRUE },
  { "0", -1, TRUE },
  { "[]", -1, TRUE },
  { "true", -1, TRUE },
  { "null", -1, TRUE },
  { "{\"a\":{\"b\":[[[{}]]]}}", -1, TRUE },
  { "{\n  \"a\": 1\n}", -1, FALSE },                     /* line breaks */
  { "{\"a\":\r1}", -1, FALSE },
  { " 1", -1, FALSE },                                   /* space around */
  { "1 ", -1, FALSE },
  { "{\"a\":1} {\"b\":2}", -1, FALSE },                  /* two values */
  { "var x = 1", -1, FALSE },                            /* json-glib reads it */
  { "\"\\ud800\"", -1, FALSE },                          /* json-glib refuses it */
  { "[1,]", -1, FALSE },
  { "{'a':1}", -1, FALSE },
  { "NaN", -1, FALSE },
  { "01", -1, FALSE },
  { "1.", -1, FALSE },
  { ".5", -1, FALSE },
  { "+1", -1, FALSE },
  { "\"\\x\"", -1, FALSE },
  { "\"tab\there\"", -1, FALSE },                        /* a raw control character */
  { "{\"a\":1", -1, FALSE },
  { "nul", -1, FALSE },
  { "\"\xc3\x28\"", -1, FALSE },                         /* not UTF-8 */
  { "1\0", 2, FALSE },                                   /* a NUL after the value */
  { "\0\xff", 2, FALSE },
};

static void
test_round_trip_exact (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "exact");
  g_autoptr(EsStreamFactory) target = NULL;
  g_autoptr(GBytes) first = NULL;
  g_autoptr(GBytes) second = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autofree char *deepest = NULL;
  g_autofree char *deepest_line_end = NULL;
  guint n = G_N_ELEMENTS (exact_cases);

  g_test_summary ("Data that is one JSON value on one line is exported as it is stored "
                  "(spaces, key order, escapes, big numbers), anything else as base64; "
                  "metadata objects likewise; an import stores the same bytes");

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(EsCandidateEvent) event = candidate ("Exact", exact_cases[i].data,
                                                     exact_cases[i].len, NULL, NULL);

      es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
    }
  /* As deep as the export splices (256 levels), and one deeper: base64. */
  {
    g_autofree char *open = g_strnfill (257, '[');
    g_autofree char *close = g_strnfill (257, ']');
    g_autofree char *nested = g_strconcat (open, close, NULL);
    g_autoptr(EsCandidateEvent) deep = NULL;
    g_autoptr(EsCandidateEvent) event = candidate ("Deep", nested, -1, NULL, NULL);
    g_autoptr(EsCandidateEvent) spaced = candidate ("Meta", "1", -1, NULL,
                                                    "{ \"tenant\" : \"caf\xc3\xa9\" }");
    g_autoptr(EsCandidateEvent) broken = candidate ("Meta", "1", -1, NULL, "{\"a\":\n1}");

    deepest = g_strconcat (open + 1, " ", close + 1, NULL);
    deep = candidate ("Deep", deepest, -1, NULL, NULL);
    es_stream_write (stream, &deep, 1, ES_VERSION_ANY, NULL, &error);
    g_assert_no_error (error);
    es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
    g_assert_no_error (error);
    es_stream_write (stream, &spaced, 1, ES_VERSION_ANY, NULL, &error);
    g_assert_no_error (error);
    es_stream_write (stream, &broken, 1, ES_VERSION_ANY, NULL, &error);
    g_assert_no_error (error);
  }

  first = export_to_bytes (f->factory, "exact", NULL, n + 4);
  text = bytes_to_string (first);
  lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, n + 4 + 1);
  for (guint i = 0; i < n; i++)
    {
      gsize len = exact_cases[i].len < 0 ? strlen (exact_cases[i].data)
                                         : (gsize) exact_cases[i].len;
      g_autofree char *b64 = g_base64_encode ((const guchar *) exact_cases[i].data, len);
      g_autofree char *expected = exact_cases[i].as_json
        ? g_strdup_printf (",\"data\":%s}", exact_cases[i].data)
        : g_strdup_printf (",\"data_base64\":\"%s\"}", b64);

      g_test_message ("%u: %s", i, lines[i]);
      if (!g_str_has_suffix (lines[i], expected))
        g_error ("case %u: %s does not end with %s", i, lines[i], expected);
    }
  deepest_line_end = g_strdup_printf (",\"data\":%s}", deepest);
  g_assert_true (g_str_has_suffix (lines[n], deepest_line_end));
  g_assert_nonnull (strstr (lines[n + 1], "\"data_base64\":\"W1tb"));
  g_assert_true (g_str_has_suffix (lines[n + 2], ",\"metadata\":{ \"tenant\" : \"caf\xc3\xa9\" },"
                                                 "\"data\":1}"));
  g_assert_true (g_str_has_suffix (lines[n + 3], ",\"metadata\":\"{\\\"a\\\":\\n1}\",\"data\":1}"));

  /* Imported: the same bytes, and the same export again. */
  target = fixture_open_empty_factory (f);
  g_assert_cmpint (import_text (target, text, -1, &error), ==, n + 4);
  g_assert_no_error (error);
  assert_same_events (f->factory, target, "exact");
  second = export_to_bytes (target, "exact", NULL, n + 4);
  g_assert_true (g_bytes_equal (first, second));
  /* And once more: all identical, nothing stored. */
  g_assert_cmpint (import_text (target, text, -1, &error), ==, 0);
  g_assert_no_error (error);

  es_test_factory_close_and_free (g_steal_pointer (&target));
}

/* The data of version @version of @stream_id, as a string. */
static char *
stored_data (EsStreamFactory *factory,
             const char      *stream_id,
             gint64           version)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, stream_id);
  g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, version - 1, NULL);
  GBytes *bytes;

  g_assert_cmpuint (events->len, >=, 1);
  bytes = es_stored_event_get_data (g_ptr_array_index (events, 0));
  return g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
}

#define HEAD(stream, version) \
  "{\"stream_id\":\"" stream "\",\"version\":" #version ",\"timestamp\":\"2026-01-02T03:04:05Z\"," \
  "\"event_type\":\"T\",\"idempotency_key\":null,"

static void
test_import_exact (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *a1 = NULL, *a2 = NULL, *a3 = NULL, *a4 = NULL, *b1 = NULL, *c1 = NULL;
  const char *text =
    /* Space around the value and the colon: the value's own bytes. */
    HEAD ("a", 1) "\"metadata\" :  { \"m\" : 1 }\t, \"data\" :  {\"x\": [1 , 2]}  }\n"
    /* An escaped member name; CR LF. */
    HEAD ("a", 2) "\"metadata\":null,\"d\\u0061ta\":\"\\u00e9\"}\r\n"
    /* A repeated name: the last, as json-glib reads it. */
    HEAD ("a", 3) "\"metadata\":null,\"data\":1,\"data\":[ 2 ]}\n"
    /* A line written by an older export: json-glib's form, unchanged. */
    HEAD ("a", 4) "\"metadata\":{\"m\":1},\"data\":{\"id\":1,\"items\":[\"a\",\"b\"]}}\n"
    /* Data first, members of its own inside. */
    "{\"data\":{\"stream_id\":\"no\", \"v\":2},\"stream_id\":\"b\",\"version\":1,"
    "\"timestamp\":\"2026-01-02T03:04:05Z\",\"event_type\":\"T\"}\n"
    /* json-glib reads an assignment; the scanner does not: json-glib's form. */
    "var x = " HEAD ("c", 1) "\"metadata\":null,\"data\":{\"a\": 1}}\n";

  g_test_summary ("An import stores the source text of data and metadata that are JSON, "
                  "as written in the line, whatever the spacing, escapes and order");

  g_assert_cmpint (import_text (f->factory, text, -1, &error), ==, 6);
  g_assert_no_error (error);

  a1 = stored_data (f->factory, "a", 1);
  g_assert_cmpstr (a1, ==, "{\"x\": [1 , 2]}");
  {
    g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "a");
    g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, 0, NULL);

    g_assert_cmpstr (es_stored_event_get_metadata (g_ptr_array_index (events, 0)), ==,
                     "{ \"m\" : 1 }");
    g_assert_cmpstr (es_stored_event_get_metadata (g_ptr_array_index (events, 3)), ==,
                     "{\"m\":1}");
  }
  a2 = stored_data (f->factory, "a", 2);
  g_assert_cmpstr (a2, ==, "\"\\u00e9\"");
  a3 = stored_data (f->factory, "a", 3);
  g_assert_cmpstr (a3, ==, "[ 2 ]");
  a4 = stored_data (f->factory, "a", 4);
  g_assert_cmpstr (a4, ==, "{\"id\":1,\"items\":[\"a\",\"b\"]}");
  b1 = stored_data (f->factory, "b", 1);
  g_assert_cmpstr (b1, ==, "{\"stream_id\":\"no\", \"v\":2}");
  c1 = stored_data (f->factory, "c", 1);
  g_assert_cmpstr (c1, ==, "{\"a\":1}");
}

void
add_operations_tests (void)
{
  add_test ("operations/unsupported", test_unsupported);
  add_test ("operations/round-trip", test_round_trip);
  add_test ("operations/round-trip-exact", test_round_trip_exact);
  add_test ("operations/import-exact", test_import_exact);
  add_test ("operations/export-stream-and-filter", test_export_stream_and_filter);
  add_test ("operations/import-conflicts", test_import_conflicts);
  add_test ("operations/import-bad-lines", test_import_bad_lines);
  add_test ("operations/check-healthy", test_check_healthy);
  add_test ("operations/check-finds-snapshot", test_check_finds_snapshot);
  add_test ("operations/async", test_async_operations);
  add_test ("operations/cancelled", test_cancelled);
}
