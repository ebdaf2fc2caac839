/* test-bad-input.c: every kind of bad input, table-driven.
 *
 * Each case runs on a fresh database file seeded with a few events and a
 * snapshot. A case that must not write anything is checked against a
 * digest of the whole database (every event of @all, every field; the
 * metrics; the snapshot) taken before and after, through a separate
 * factory. Programmer errors (NULL where the contract does not allow it)
 * run in a subprocess, which must log the CRITICAL of a g_return_if_fail
 * and go on without crashing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

#include "es-test-utils.h"

#define SEEDED "seeded"
#define OTHER  "other"

typedef struct
{
  char            *dir;
  char            *path;
  EsStreamFactory *factory;
  EsStream        *stream;  /* SEEDED, at version 3 */
} Fixture;

typedef struct
{
  const char *name;
  void      (*func) (Fixture *fixture);
  gboolean    writes;  /* the case writes on purpose: no before/after check */
} Case;

/* ---------------------------------------------------------------------- */

static gint64
write_one (EsStream         *stream,
           EsCandidateEvent *event,
           gint64            expected_version,
           GError          **error)
{
  return es_stream_write (stream, &event, 1, expected_version, NULL, error);
}

/* A digest of everything in the database at @path, read through a factory
 * of its own. */
static char *
database_digest (const char *path)
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) seeded = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GError) error = NULL;
  g_autofree char *summary = NULL;
  guint i;

  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  all = es_test_open_stream (ES_STREAM_FACTORY (factory), ES_ALL_STREAM);
  events = es_test_read_all (all, 0, NULL, &error);
  g_assert_no_error (error);

  for (i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = events->pdata[i];
      gsize len;
      const guchar *data = g_bytes_get_data (es_stored_event_get_data (event), &len);
      g_autofree char *line = NULL;
      g_autofree char *when = g_date_time_format_iso8601 (es_stored_event_get_timestamp (event));

      line = g_strdup_printf ("%" G_GINT64_FORMAT "|%s|%" G_GINT64_FORMAT "|%s|%s|%s|%s|%"
                              G_GSIZE_FORMAT "\n",
                              es_stored_event_get_sequence_id (event),
                              es_stored_event_get_stream_id (event),
                              es_stored_event_get_version (event),
                              es_stored_event_get_event_type (event),
                              es_stored_event_get_id (event),
                              es_stored_event_get_metadata (event) != NULL
                                ? es_stored_event_get_metadata (event) : "(null)",
                              when, len);
      g_checksum_update (checksum, (const guchar *) line, -1);
      if (len > 0)
        g_checksum_update (checksum, data, len);
    }

  metrics = es_stream_get_metrics (all, NULL, &error);
  g_assert_no_error (error);
  seeded = es_test_open_stream (ES_STREAM_FACTORY (factory), SEEDED);
  snapshot = es_stream_load_snapshot (seeded, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);

  summary = g_strdup_printf ("events=%u last=%" G_GINT64_FORMAT " count=%" G_GINT64_FORMAT
                             " snapshot=%" G_GINT64_FORMAT "/%" G_GSIZE_FORMAT,
                             events->len,
                             es_stream_metrics_get_current_version (metrics),
                             es_stream_metrics_get_event_count (metrics),
                             es_snapshot_get_version (snapshot),
                             g_bytes_get_size (es_snapshot_get_state (snapshot)));
  g_checksum_update (checksum, (const guchar *) summary, -1);

  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
  return g_strdup_printf ("%s %s", summary, g_checksum_get_string (checksum));
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) other = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("state", 5);
  guint i;

  fixture->dir = g_dir_make_tmp ("es-bad-input-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->path = g_build_filename (fixture->dir, "events.db", NULL);
  fixture->factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (fixture->path, NULL, &error));
  g_assert_no_error (error);
  fixture->stream = es_test_open_stream (fixture->factory, SEEDED);
  other = es_test_open_stream (fixture->factory, OTHER);

  for (i = 0; i < 3; i++)
    {
      g_autofree char *key = g_strdup_printf ("seed-%u", i);
      g_autofree char *metadata = g_strdup_printf ("{\"n\": %u, \"user\": {\"id\": \"u%u\"}}", i, i);
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Seeded", "seed data", key, metadata);
      g_autoptr(EsCandidateEvent) event2 = es_test_candidate_new ("Other", NULL, NULL, NULL);

      g_assert_cmpint (write_one (fixture->stream, event, i, &error), ==, i + 1);
      g_assert_no_error (error);
      g_assert_cmpint (write_one (other, event2, i, &error), ==, i + 1);
      g_assert_no_error (error);
    }
  g_assert_true (es_stream_snapshot (fixture->stream, state, 2, "p", NULL, &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  es_stream_factory_close (fixture->factory, NULL, NULL);
  g_clear_object (&fixture->stream);
  g_clear_object (&fixture->factory);

  dir = g_dir_open (fixture->dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *file = g_build_filename (fixture->dir, name, NULL);

      g_chmod (file, 0700);
      if (g_file_test (file, G_FILE_TEST_IS_DIR))
        g_rmdir (file);
      else
        g_unlink (file);
    }
  g_chmod (fixture->dir, 0700);
  g_rmdir (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->path);
}

static void
run_case (Fixture       *fixture,
          gconstpointer  data)
{
  const Case *c = data;
  g_autofree char *before = database_digest (fixture->path);
  g_autofree char *after = NULL;

  c->func (fixture);
  if (g_test_failed () || c->writes)
    return;

  after = database_digest (fixture->path);
  g_assert_cmpstr (after, ==, before);
}

/* ---------------------------------------------------------------------- *
 * Helpers for the cases                                                   *
 * ---------------------------------------------------------------------- */

/* An invalid stream id is refused by open_stream or by the first write. */
static void
expect_invalid_stream_id (Fixture    *fixture,
                          const char *stream_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (fixture->factory, stream_id,
                                                              NULL, &error);
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  if (stream == NULL)
    {
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      return;
    }
  g_assert_no_error (error);
  g_assert_cmpint (write_one (stream, event, ES_VERSION_ANY, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
expect_write_error (Fixture          *fixture,
                    EsCandidateEvent *event,
                    gint64            expected_version,
                    GQuark            domain,
                    gint              code)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (write_one (fixture->stream, event, expected_version, &error), ==, -1);
  g_assert_error (error, domain, code);
  g_assert_cmpint (es_stream_get_version (fixture->stream), ==, 3);
}

static void
expect_bad_metadata (Fixture    *fixture,
                     const char *metadata)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, metadata);

  expect_write_error (fixture, event, ES_VERSION_ANY, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

/* A bad filter fails the read, from es_stream_read or the first next. */
static void
expect_bad_filter (Fixture       *fixture,
                   EsEventFilter *filter)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) validate_error = NULL;
  g_autoptr(GPtrArray) events = es_test_read_all (fixture->stream, 0, filter, &error);

  g_assert_null (events);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_false (es_event_filter_validate (filter, &validate_error));
  g_assert_error (validate_error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static guint
count_matches (Fixture       *fixture,
               EsStream      *stream,
               EsEventFilter *filter)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = es_test_read_all (stream != NULL ? stream : fixture->stream,
                                                  0, filter, &error);

  g_assert_no_error (error);
  return events->len;
}

static void
expect_storage_error_file_unchanged (const char *path,
                                     const char *message_part)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  gsize before_len = 0, after_len = 0;
  g_autoptr(EsSqliteStreamFactory) factory = NULL;

  g_assert_true (g_file_get_contents (path, &before, &before_len, NULL));
  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_null (factory);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  if (message_part != NULL && strstr (error->message, message_part) == NULL)
    g_error ("'%s' does not say '%s'", error->message, message_part);

  g_assert_true (g_file_get_contents (path, &after, &after_len, NULL));
  g_assert_cmpmem (before, before_len, after, after_len);
}

/* ---------------------------------------------------------------------- *
 * Cases: stream ids                                                       *
 * ---------------------------------------------------------------------- */

static void
case_stream_id_empty (Fixture *fixture)
{
  expect_invalid_stream_id (fixture, "");
}

static void
case_stream_id_invalid_utf8 (Fixture *fixture)
{
  expect_invalid_stream_id (fixture, "bad\xff\xfe");
}

static void
case_stream_id_truncated_utf8 (Fixture *fixture)
{
  /* The first byte of a two-byte sequence, then the end. */
  expect_invalid_stream_id (fixture, "caf\xc3");
}

static void
case_stream_id_too_long (Fixture *fixture)
{
  g_autofree char *id = g_strnfill (1025, 'a');

  expect_invalid_stream_id (fixture, id);
}

static void
case_stream_id_too_long_multibyte (Fixture *fixture)
{
  GString *id = g_string_new (NULL);

  /* 342 x 3 bytes: 1026 bytes, 342 characters. The limit is in bytes. */
  while (id->len < 1025)
    g_string_append (id, "\xe2\x82\xac");
  expect_invalid_stream_id (fixture, id->str);
  g_string_free (id, TRUE);
}

static void
case_stream_id_at_limit (Fixture *fixture)
{
  g_autofree char *id = g_strnfill (1024, 'b');
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, id);
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;

  g_assert_cmpint (write_one (stream, event, ES_VERSION_NO_STREAM, &error), ==, 1);
  g_assert_no_error (error);
  events = es_test_read_all (stream, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpstr (es_stored_event_get_stream_id (events->pdata[0]), ==, id);
}

static void
case_write_to_all (Fixture *fixture)
{
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);

  g_assert_cmpint (write_one (all, event, ES_VERSION_ANY, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* Nor an empty write, nor the other versions. */
  g_assert_cmpint (es_stream_write (all, NULL, 0, ES_VERSION_ANY, NULL, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpint (write_one (all, event, 6, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_reserved_names (Fixture *fixture)
{
  const char *ids[] = { "@foo", "@", "@all2", "@ALL", "@all ", "@events" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (ids); i++)
    expect_invalid_stream_id (fixture, ids[i]);
}

/* ---------------------------------------------------------------------- *
 * Cases: events                                                           *
 * ---------------------------------------------------------------------- */

static void
case_event_type_empty (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("", "x", NULL, NULL);

  expect_write_error (fixture, event, ES_VERSION_ANY, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_event_type_invalid_utf8 (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Typ\xc0\xaf", "x", NULL, NULL);

  expect_write_error (fixture, event, ES_VERSION_ANY, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_metadata_invalid_json (Fixture *fixture)
{
  const char *bad[] = { "{", "{\"a\": }", "{'a': 1}", "{\"a\": 1,}", "{\"a\": 1} x", "nul" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    expect_bad_metadata (fixture, bad[i]);
}

static void
case_metadata_not_object (Fixture *fixture)
{
  const char *bad[] = { "[1, 2]", "42", "\"text\"", "null", "true", "[]", "1.5" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    expect_bad_metadata (fixture, bad[i]);
}

static void
case_metadata_empty (Fixture *fixture)
{
  expect_bad_metadata (fixture, "");
  expect_bad_metadata (fixture, "   ");
}

static void
case_metadata_invalid_utf8 (Fixture *fixture)
{
  expect_bad_metadata (fixture, "{\"a\": \"\xff\"}");
}

static void
case_key_empty (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", "", NULL);

  expect_write_error (fixture, event, ES_VERSION_ANY, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_key_invalid_utf8 (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", "key\xfe", NULL);

  expect_write_error (fixture, event, ES_VERSION_ANY, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

/* One bad event anywhere in a batch: nothing of the batch is written. */
static void
case_batch_with_one_bad_event (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) a = es_test_candidate_new ("A", "a", "batch-a", NULL);
  g_autoptr(EsCandidateEvent) b = es_test_candidate_new ("B", "b", NULL, "{\"ok\": true}");
  g_autoptr(EsCandidateEvent) c = es_test_candidate_new ("C", "c", NULL, "[\"not an object\"]");
  EsCandidateEvent *batch[] = { a, b, c };
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (es_stream_write (fixture->stream, batch, 3, ES_VERSION_ANY, NULL, &error),
                   ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  /* The message names the event. */
  g_assert_nonnull (strstr (error->message, "2"));
}

static void
case_zero_events (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (es_stream_write (fixture->stream, NULL, 0, ES_VERSION_ANY, NULL, &error),
                   ==, 3);
  g_assert_no_error (error);
}

static void
case_all_keys_already_stored (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) a = es_test_candidate_new ("Seeded", "different", "seed-0", NULL);
  g_autoptr(EsCandidateEvent) b = es_test_candidate_new ("Seeded", "different", "seed-2", NULL);
  EsCandidateEvent *batch[] = { a, b, a };
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (es_stream_write (fixture->stream, batch, 3, ES_VERSION_ANY, NULL, &error),
                   ==, 3);
  g_assert_no_error (error);
}

static void
case_cancelled_write (Fixture *fixture)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_cancellable_cancel (cancellable);
  g_assert_cmpint (es_stream_write (fixture->stream, &event, 1, ES_VERSION_ANY, cancellable,
                                    &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* ---------------------------------------------------------------------- *
 * Cases: versions                                                         *
 * ---------------------------------------------------------------------- */

static void
case_expected_version_minus_two (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  expect_write_error (fixture, event, -2, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_expected_version_min (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  expect_write_error (fixture, event, G_MININT64, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_expected_version_max (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  expect_write_error (fixture, event, G_MAXINT64, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
}

static void
case_expected_version_ahead (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (write_one (fixture->stream, event, 4, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  /* The message names both versions and the stream. */
  g_assert_nonnull (strstr (error->message, "4"));
  g_assert_nonnull (strstr (error->message, "3"));
  g_assert_nonnull (strstr (error->message, SEEDED));
}

static void
case_expected_no_stream_on_existing (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  expect_write_error (fixture, event, ES_VERSION_NO_STREAM, ES_ERROR,
                      ES_ERROR_WRONG_EXPECTED_VERSION);
}

static void
case_read_after_end (Fixture *fixture)
{
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);

  g_assert_cmpuint (count_matches (fixture, NULL, NULL), ==, 3);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) events = es_test_read_all (fixture->stream, G_MAXINT64, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (events->len, ==, 0);
    g_clear_pointer (&events, g_ptr_array_unref);
    events = es_test_read_all (all, G_MAXINT64, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (events->len, ==, 0);
  }
}

/* ---------------------------------------------------------------------- *
 * Cases: filters                                                          *
 * ---------------------------------------------------------------------- */

static void
case_filter_unknown_field (Fixture *fixture)
{
  const char *fields[] = { "colour", "", "Stream_Id", "event_type ", "data", "timestamp",
                           "id; DROP TABLE events" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();

      es_event_filter_add_equals (filter, fields[i], g_variant_new_string ("x"));
      expect_bad_filter (fixture, filter);
    }
}

static void
case_filter_malformed_metadata_path (Fixture *fixture)
{
  const char *fields[] = { "metadata", "metadata.", "metadata..a", "metadata.a.", ".metadata.a" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();

      es_event_filter_add_equals (filter, fields[i], g_variant_new_int32 (1));
      expect_bad_filter (fixture, filter);
    }
}

static void
case_filter_wrong_value_type (Fixture *fixture)
{
  g_autoptr(EsEventFilter) a = es_event_filter_new ();
  g_autoptr(EsEventFilter) b = es_event_filter_new ();
  g_autoptr(EsEventFilter) c = es_event_filter_new ();

  es_event_filter_add_equals (a, "version", g_variant_new_string ("3"));
  expect_bad_filter (fixture, a);
  es_event_filter_add_equals (b, "stream_id", g_variant_new_int64 (3));
  expect_bad_filter (fixture, b);
  es_event_filter_add_equals (c, "sequence_id", g_variant_new_double (1.0));
  expect_bad_filter (fixture, c);
}

static void
case_filter_unsupported_value (Fixture *fixture)
{
  const char *strv[] = { "a", NULL };
  GVariant *values[] = {
    g_variant_new_strv (strv, -1),
    g_variant_new ("(si)", "a", 1),
    g_variant_new_variant (g_variant_new_string ("a")),
    g_variant_new_object_path ("/a"),
    g_variant_new ("ms", "a"),
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (values); i++)
    {
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();

      es_event_filter_add_equals (filter, "metadata.n", values[i]);
      expect_bad_filter (fixture, filter);
    }
}

static void
case_filter_empty_in (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_in (filter, "event_type", g_variant_new_array (G_VARIANT_TYPE_STRING,
                                                                     NULL, 0));
  expect_bad_filter (fixture, filter);
}

static void
case_filter_in_not_array (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(EsEventFilter) nested = es_event_filter_new ();
  const char *strv[] = { "a", NULL };
  GVariant *arrays[] = { g_variant_new_strv (strv, -1), g_variant_new_strv (strv, -1) };

  es_event_filter_add_in (filter, "event_type", g_variant_new_string ("Seeded"));
  expect_bad_filter (fixture, filter);
  /* An array of arrays. */
  es_event_filter_add_in (nested, "event_type",
                          g_variant_new_array (G_VARIANT_TYPE_STRING_ARRAY, arrays, 2));
  expect_bad_filter (fixture, nested);
}

static void
case_filter_like_on_integer (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_like (filter, "version", "1%");
  expect_bad_filter (fixture, filter);
}

static void
case_filter_uint64_too_big (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_equals (filter, "version", g_variant_new_uint64 (G_MAXUINT64));
  expect_bad_filter (fixture, filter);
}

static void
case_filter_one_bad_clause_of_many (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("Seeded"));
  es_event_filter_add_like (filter, "metadata.user.id", "u%");
  es_event_filter_add_equals (filter, "nonsense", g_variant_new_boolean (TRUE));
  expect_bad_filter (fixture, filter);
}

static void
case_filter_sql_in_values (Fixture *fixture)
{
  const char *values[] = { "' OR 1=1 --", "Seeded' OR '1'='1", "\"; DROP TABLE events; --",
                           "%", "_eeded" };
  guint i;

  /* Values are bound, never spliced: they match nothing (LIKE patterns
   * match as patterns, by design). */
  for (i = 0; i < 3; i++)
    {
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();

      es_event_filter_add_equals (filter, "event_type", g_variant_new_string (values[i]));
      g_assert_cmpuint (count_matches (fixture, NULL, filter), ==, 0);
    }
  for (i = 3; i < G_N_ELEMENTS (values); i++)
    {
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();

      es_event_filter_add_like (filter, "event_type", values[i]);
      g_assert_cmpuint (count_matches (fixture, NULL, filter), ==, 3);
    }

  /* Quotes in a metadata path: a key of that name, found nowhere, or
   * refused; never SQL. */
  {
    g_autoptr(EsEventFilter) filter = es_event_filter_new ();
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) events = NULL;

    es_event_filter_add_equals (filter, "metadata.n')) OR 1=1 --", g_variant_new_int32 (1));
    events = es_test_read_all (fixture->stream, 0, filter, &error);
    if (events == NULL)
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
    else
      g_assert_cmpuint (events->len, ==, 0);
  }
}

static void
case_filter_too_many_clauses (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GError) error = NULL;
  guint i;

  /* Beyond the documented limit of 4,096 clauses: INVALID_ARGUMENT
   * naming both numbers, from validation, not the database. */
  for (i = 0; i < 5000; i++)
    es_event_filter_add_equals (filter, "metadata.n", g_variant_new_int32 (1));
  expect_bad_filter (fixture, filter);
  g_assert_false (es_event_filter_validate (filter, &error));
  g_assert_nonnull (strstr (error->message, "5000"));
  g_assert_nonnull (strstr (error->message, "4096"));
}

/* @value as a JSON string. */
static char *
json_quote (const char *value)
{
  GString *json = g_string_new ("\"");
  const char *p;

  for (p = value; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (json, "\\%c", *p);
      else if ((guchar) *p < 0x20)
        g_string_append_printf (json, "\\u%04x", (guint) (guchar) *p);
      else
        g_string_append_c (json, *p);
    }
  g_string_append_c (json, '"');
  return g_string_free (json, FALSE);
}

static void
case_filter_in_json_metacharacters (Fixture *fixture)
{
  /* Long in lists travel as JSON arrays: values that are JSON (or SQL)
   * syntax must still match exactly themselves. */
  const char *values[] = { "\"", "\\", "\\\"", "a\"b", "\n", "\t\x01", "caf\xc3\xa9",
                           "\xf0\x9f\x98\x80", "]", "[1]", "null", "1", "true",
                           "' OR 1=1 --", "\\u0041", "A", "", " " };
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "json");
  guint i;

  for (i = 0; i < G_N_ELEMENTS (values); i++)
    {
      g_autofree char *quoted = json_quote (values[i]);
      g_autofree char *metadata = g_strdup_printf ("{\"q\": %s}", quoted);
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Json", "x", NULL, metadata);
      g_autoptr(GError) error = NULL;

      write_one (stream, event, ES_VERSION_ANY, &error);
      g_assert_no_error (error);
    }

  for (i = 0; i <= G_N_ELEMENTS (values); i++)
    {
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();
      g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) events = NULL;
      guint j;

      /* One of the values (all of them for the last round), among 40
       * that match nothing. */
      for (j = 0; j < G_N_ELEMENTS (values); j++)
        if (i == G_N_ELEMENTS (values) || i == j)
          g_ptr_array_add (strings, g_strdup (values[j]));
      for (j = 0; j < 40; j++)
        g_ptr_array_add (strings, g_strdup_printf ("no-%u\"\\", j));

      es_event_filter_add_in (filter, "metadata.q",
                              g_variant_new_strv ((const char * const *) strings->pdata,
                                                  strings->len));
      events = es_test_read_all (stream, 0, filter, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (events->len, ==, i == G_N_ELEMENTS (values) ? G_N_ELEMENTS (values) : 1);
      if (i < G_N_ELEMENTS (values))
        g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, i + 1);
    }
}

/* ---------------------------------------------------------------------- *
 * Cases: SQL metacharacters, stored verbatim                              *
 * ---------------------------------------------------------------------- */

static void
case_sql_metacharacters_stored_verbatim (Fixture *fixture)
{
  const char *stream_id = "x'); DROP TABLE events; --\"%_\\";
  const char *type = "Robert'); DELETE FROM events WHERE ('1'='1";
  const char *key = "k\"; UPDATE events SET version = 0; --";
  const char *metadata = "{\"q\": \"'; DROP TABLE snapshots; --\", \"%\": \"_\", "
                         "\"a'b\": {\"c\\\"d\": 1}}";
  const char data[] = "\0'\";--\n%_\\\x01";
  g_autoptr(GBytes) bytes = g_bytes_new (data, sizeof data);
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new (type, bytes);
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, stream_id);
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("'; DROP TABLE events; --", 24);
  g_autoptr(EsSnapshot) snapshot = NULL;
  EsStoredEvent *stored;

  es_candidate_event_set_idempotency_key (event, key);
  es_candidate_event_set_metadata (event, metadata);
  g_assert_cmpint (write_one (stream, event, ES_VERSION_NO_STREAM, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_true (es_stream_snapshot (stream, state, 1, "p'); --", NULL, &error));
  g_assert_no_error (error);

  events = es_test_read_all (stream, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 1);
  stored = events->pdata[0];
  g_assert_cmpstr (es_stored_event_get_stream_id (stored), ==, stream_id);
  g_assert_cmpstr (es_stored_event_get_event_type (stored), ==, type);
  g_assert_cmpstr (es_stored_event_get_id (stored), ==, key);
  g_assert_cmpstr (es_stored_event_get_metadata (stored), ==, metadata);
  g_assert_true (g_bytes_equal (es_stored_event_get_data (stored), bytes));

  snapshot = es_stream_load_snapshot (stream, "p'); --", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));

  /* The filters find it by those values, and only it. */
  {
    g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
    g_autoptr(EsEventFilter) by_stream = es_event_filter_new ();
    g_autoptr(EsEventFilter) by_type = es_event_filter_new ();
    g_autoptr(EsEventFilter) by_meta = es_event_filter_new ();

    es_event_filter_add_equals (by_stream, "stream_id", g_variant_new_string (stream_id));
    g_assert_cmpuint (count_matches (fixture, all, by_stream), ==, 1);
    es_event_filter_add_in (by_type, "event_type",
                            g_variant_new_array (G_VARIANT_TYPE_STRING,
                                                 (GVariant *[]) { g_variant_new_string (type) },
                                                 1));
    g_assert_cmpuint (count_matches (fixture, all, by_type), ==, 1);
    es_event_filter_add_equals (by_meta, "metadata.q",
                                g_variant_new_string ("'; DROP TABLE snapshots; --"));
    g_assert_cmpuint (count_matches (fixture, all, by_meta), ==, 1);
  }

  /* Nothing else was touched: 6 seeded events + this one. */
  {
    g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
    g_autoptr(EsStreamMetrics) metrics = es_stream_get_metrics (all, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 7);
  }
}

/* ---------------------------------------------------------------------- *
 * Cases: payloads and nullable arguments                                  *
 * ---------------------------------------------------------------------- */

static void
case_huge_payload (Fixture *fixture)
{
  const gsize size = 64 * 1024 * 1024;
  guint8 *data = g_malloc (size);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(EsCandidateEvent) event = NULL;
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "huge");
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gsize i;

  for (i = 0; i < size; i++)
    data[i] = (guint8) (i * 2654435761u >> 13);
  bytes = g_bytes_new_take (data, size);
  event = es_candidate_event_new ("Huge", bytes);

  g_assert_cmpint (write_one (stream, event, ES_VERSION_NO_STREAM, &error), ==, 1);
  g_assert_no_error (error);
  events = es_test_read_all (stream, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (events->pdata[0])), ==, size);
  g_assert_true (g_bytes_equal (es_stored_event_get_data (events->pdata[0]), bytes));
}

static void
case_null_data (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("NoData", NULL);
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (es_candidate_event_get_data (event));
  g_assert_cmpint (write_one (fixture->stream, event, 3, &error), ==, 4);
  g_assert_no_error (error);
  events = es_test_read_all (fixture->stream, 3, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (events->pdata[0])), ==, 0);
}

static void
case_null_metadata_and_key (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", "k", "{}");
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  EsStoredEvent *stored;

  es_candidate_event_set_metadata (event, NULL);
  es_candidate_event_set_idempotency_key (event, NULL);
  g_assert_null (es_candidate_event_get_metadata (event));
  g_assert_null (es_candidate_event_get_idempotency_key (event));
  g_assert_cmpint (write_one (fixture->stream, event, 3, &error), ==, 4);
  g_assert_no_error (error);
  events = es_test_read_all (fixture->stream, 3, NULL, &error);
  g_assert_no_error (error);
  stored = events->pdata[0];
  g_assert_null (es_stored_event_get_metadata (stored));
  g_assert_nonnull (es_stored_event_get_id (stored));
  g_assert_cmpstr (es_stored_event_get_id (stored), !=, "");
}

static void
case_null_filter_and_projection (Fixture *fixture)
{
  g_autoptr(GBytes) state = g_bytes_new_static ("d", 1);
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpuint (count_matches (fixture, NULL, NULL), ==, 3);
  g_assert_true (es_stream_snapshot (fixture->stream, state, -1, NULL, NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (fixture->stream, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (es_snapshot_get_projection_name (snapshot), ==, "default");
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 3);
  g_clear_object (&snapshot);
  snapshot = es_stream_load_snapshot (fixture->stream, "default", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
}

static void
case_in_memory_null_path (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = es_sqlite_stream_factory_new (NULL, NULL, &error);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  g_assert_no_error (error);
  stream = es_test_open_stream (ES_STREAM_FACTORY (factory), "s");
  g_assert_cmpint (write_one (stream, event, 0, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
}

/* ---------------------------------------------------------------------- *
 * Cases: snapshots                                                        *
 * ---------------------------------------------------------------------- */

static void
case_snapshot_beyond_stream (Fixture *fixture)
{
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) all = es_test_open_stream (fixture->factory, ES_ALL_STREAM);
  g_autoptr(EsStream) empty = es_test_open_stream (fixture->factory, "empty");

  g_assert_false (es_stream_snapshot (fixture->stream, state, 4, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_snapshot (fixture->stream, state, G_MAXINT64, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_snapshot (all, state, 7, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_snapshot (empty, state, 1, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_snapshot_negative_version (Fixture *fixture)
{
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
  g_autoptr(GError) error = NULL;

  g_assert_false (es_stream_snapshot (fixture->stream, state, -2, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_stream_snapshot (fixture->stream, state, G_MININT64, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
case_snapshot_missing (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSnapshot) snapshot = es_stream_load_snapshot (fixture->stream, "nope", NULL,
                                                            &error);

  g_assert_no_error (error);
  g_assert_null (snapshot);
}

/* ---------------------------------------------------------------------- *
 * Cases: closed factory                                                   *
 * ---------------------------------------------------------------------- */

static void
case_operations_after_close (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(EsStream) stream = NULL;

  g_assert_true (es_stream_factory_close (fixture->factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (fixture->factory, NULL, &error));
  g_assert_no_error (error);

  g_assert_cmpint (write_one (fixture->stream, event, ES_VERSION_ANY, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  enumerator = es_stream_read (fixture->stream, 0, NULL, NULL, &error);
  if (enumerator != NULL)
    {
      g_assert_null (es_event_enumerator_next (enumerator, NULL, &error));
    }
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  metrics = es_stream_get_metrics (fixture->stream, NULL, &error);
  g_assert_null (metrics);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  g_assert_false (es_stream_snapshot (fixture->stream, state, 1, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  snapshot = es_stream_load_snapshot (fixture->stream, "p", NULL, &error);
  g_assert_null (snapshot);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  stream = es_stream_factory_open_stream (fixture->factory, "new", NULL, &error);
  g_assert_null (stream);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
}

/* An enumerator opened before the close fails after it, when it needs
 * the storage again: a read longer than one page (1024 events). */
static void
case_enumerator_outlives_close (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(EsStream) stream = es_test_open_stream (fixture->factory, "long");
  EsStoredEvent *event;
  guint n = 0;
  guint i;

  for (i = 0; i < 1500; i++)
    g_ptr_array_add (batch, es_test_candidate_new ("Long", "l", NULL, NULL));
  g_assert_cmpint (es_stream_write (stream, (EsCandidateEvent **) batch->pdata, batch->len,
                                    ES_VERSION_NO_STREAM, NULL, &error), ==, 1500);
  g_assert_no_error (error);

  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (fixture->factory, NULL, &error));
  g_assert_no_error (error);

  /* What was already fetched may come out; then ES_ERROR_CLOSED. */
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    {
      g_object_unref (event);
      n++;
    }
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_cmpuint (n, <, 1500);
}

/* ---------------------------------------------------------------------- *
 * Cases: files                                                            *
 * ---------------------------------------------------------------------- */

static void
case_path_is_directory (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = es_sqlite_stream_factory_new (fixture->dir, NULL,
                                                                           &error);

  g_assert_null (factory);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
}

static void
case_path_in_missing_directory (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (fixture->dir, "missing", "events.db", NULL);
  g_autoptr(EsSqliteStreamFactory) factory = es_sqlite_stream_factory_new (path, NULL, &error);

  g_assert_null (factory);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

static void
case_read_only_file (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *subdir = g_build_filename (fixture->dir, "ro", NULL);
  g_autofree char *path = g_build_filename (subdir, "ro.db", NULL);
  g_autoptr(EsSqliteStreamFactory) factory = NULL;

  if (geteuid () == 0)
    {
      /* Root writes through 0444 files and 0555 directories; only a
       * read-only mount would stop it, which a test cannot make. */
      g_test_skip ("running as root: file permissions cannot make a file read-only");
      return;
    }

  g_assert_cmpint (g_mkdir (subdir, 0700), ==, 0);
  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&factory);

  g_assert_cmpint (g_chmod (path, 0444), ==, 0);
  g_assert_cmpint (g_chmod (subdir, 0555), ==, 0);
  expect_storage_error_file_unchanged (path, NULL);
  g_chmod (subdir, 0700);
  g_chmod (path, 0600);
}

static void
case_random_bytes_file (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, "random.db", NULL);
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  guint32 words[4096];
  guint i;

  for (i = 0; i < G_N_ELEMENTS (words); i++)
    words[i] = g_rand_int (rand);
  g_assert_true (g_file_set_contents (path, (const char *) words, sizeof words, NULL));
  expect_storage_error_file_unchanged (path, NULL);
}

static void
case_text_file (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, "notes.txt", NULL);

  g_assert_true (g_file_set_contents (path, "Shopping list:\n- eggs\n", -1, NULL));
  expect_storage_error_file_unchanged (path, NULL);
}

/* A copy of a database, checkpointed, cut in the middle of its pages. */
static void
case_truncated_database (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, "truncated.db", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;
  guint i;

  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  {
    g_autoptr(EsStream) stream = es_test_open_stream (ES_STREAM_FACTORY (factory), "t");
    g_autofree char *big = g_strnfill (3000, 'z');

    for (i = 0; i < 50; i++)
      {
        g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", big, NULL, NULL);

        g_assert_cmpint (write_one (stream, event, i, &error), ==, i + 1);
        g_assert_no_error (error);
      }
  }
  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&factory);

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (len, >, 8 * 4096);
  /* Half of it, at a page boundary, and then mid-page. */
  for (i = 0; i < 2; i++)
    {
      gsize cut = i == 0 ? (len / 2) & ~(gsize) 4095 : 4096 + 1000;
      g_autoptr(EsSqliteStreamFactory) opened = NULL;

      g_assert_true (g_file_set_contents (path, contents, cut, NULL));
      opened = es_sqlite_stream_factory_new (path, NULL, &error);
      if (opened == NULL)
        {
          g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
          g_clear_error (&error);
          continue;
        }

      /* SQLite only notices the missing pages when it reads them: the
       * reads fail cleanly, or find what is left. */
      {
        g_autoptr(EsStream) all = es_test_open_stream (ES_STREAM_FACTORY (opened), ES_ALL_STREAM);
        g_autoptr(GPtrArray) events = es_test_read_all (all, 0, NULL, &error);

        if (events == NULL)
          {
            g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
            g_clear_error (&error);
          }
        else
          g_assert_cmpuint (events->len, <, 50);
      }
      es_stream_factory_close (ES_STREAM_FACTORY (opened), NULL, NULL);
    }
}

static void
case_newer_schema (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, "newer.db", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = es_sqlite_stream_factory_new (path, NULL, &error);
  sqlite3 *db = NULL;

  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 99", NULL, NULL, NULL), ==,
                   SQLITE_OK);
  g_assert_cmpint (sqlite3_close (db), ==, SQLITE_OK);

  expect_storage_error_file_unchanged (path, "newer");
}

static void
case_other_application_database (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, "other.db", NULL);
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "CREATE TABLE events (x); INSERT INTO events VALUES (1);",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_close (db), ==, SQLITE_OK);

  expect_storage_error_file_unchanged (path, "not an es-glib database");
}

static void
case_empty_file (Fixture *fixture)
{
  g_autofree char *path = g_build_filename (fixture->dir, "empty.db", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  stream = es_test_open_stream (ES_STREAM_FACTORY (factory), "s");
  g_assert_cmpint (write_one (stream, event, 0, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
}

/* ---------------------------------------------------------------------- *
 * Programmer errors: a CRITICAL, then on without a crash                  *
 * ---------------------------------------------------------------------- */

static void
pe_write_null_stream (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);

  g_assert_cmpint (es_stream_write (NULL, &event, 1, ES_VERSION_ANY, NULL, NULL), ==, -1);
}

static void
pe_write_null_events (Fixture *fixture)
{
  g_assert_cmpint (es_stream_write (fixture->stream, NULL, 2, ES_VERSION_ANY, NULL, NULL), ==, -1);
}

static void
pe_write_null_event_in_batch (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  EsCandidateEvent *batch[] = { event, NULL };

  g_assert_cmpint (es_stream_write (fixture->stream, batch, 2, ES_VERSION_ANY, NULL, NULL), ==, -1);
}

static void
pe_open_stream_null_id (Fixture *fixture)
{
  g_assert_null (es_stream_factory_open_stream (fixture->factory, NULL, NULL, NULL));
}

static void
pe_candidate_null_type (Fixture *fixture)
{
  g_assert_null (es_candidate_event_new (NULL, NULL));
}

static void
pe_filter_null_field (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_string ("x"));

  es_event_filter_add_equals (filter, NULL, value);
  g_assert_cmpuint (es_event_filter_get_n_clauses (filter), ==, 0);
}

static void
pe_filter_null_value (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_equals (filter, "event_type", NULL);
  g_assert_cmpuint (es_event_filter_get_n_clauses (filter), ==, 0);
}

static void
pe_filter_in_null_values (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_in (filter, "event_type", NULL);
  g_assert_cmpuint (es_event_filter_get_n_clauses (filter), ==, 0);
}

static void
pe_filter_like_null_pattern (Fixture *fixture)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();

  es_event_filter_add_like (filter, "event_type", NULL);
  g_assert_cmpuint (es_event_filter_get_n_clauses (filter), ==, 0);
}

static void
pe_snapshot_null_state (Fixture *fixture)
{
  g_assert_false (es_stream_snapshot (fixture->stream, NULL, 1, "p", NULL, NULL));
}

static void
pe_read_with_non_filter (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) not_a_filter = es_test_candidate_new ("T", "x", NULL, NULL);

  g_assert_null (es_stream_read (fixture->stream, 0, (EsEventFilter *) not_a_filter, NULL, NULL));
}

static void
pe_enumerator_next_null (Fixture *fixture)
{
  g_assert_null (es_event_enumerator_next (NULL, NULL, NULL));
}

static void
pe_factory_new_null_storage (Fixture *fixture)
{
  g_assert_null (es_stream_factory_new (NULL, NULL));
}

static void
pe_error_already_set (Fixture *fixture)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("T", "x", NULL, NULL);
  g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "earlier");

  g_assert_cmpint (write_one (fixture->stream, event, ES_VERSION_ANY, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
}

static const Case programmer_errors[] = {
  { "write-null-stream", pe_write_null_stream, FALSE },
  { "write-null-events", pe_write_null_events, FALSE },
  { "write-null-event-in-batch", pe_write_null_event_in_batch, FALSE },
  { "open-stream-null-id", pe_open_stream_null_id, FALSE },
  { "candidate-null-event-type", pe_candidate_null_type, FALSE },
  { "filter-null-field", pe_filter_null_field, FALSE },
  { "filter-null-value", pe_filter_null_value, FALSE },
  { "filter-in-null-values", pe_filter_in_null_values, FALSE },
  { "filter-like-null-pattern", pe_filter_like_null_pattern, FALSE },
  { "snapshot-null-state", pe_snapshot_null_state, FALSE },
  { "read-with-non-filter", pe_read_with_non_filter, FALSE },
  { "enumerator-next-null", pe_enumerator_next_null, FALSE },
  { "factory-new-null-storage", pe_factory_new_null_storage, FALSE },
  { "error-already-set", pe_error_already_set, FALSE },
};

static void
run_programmer_error (gconstpointer data)
{
  const Case *c = data;

  if (g_test_subprocess ())
    {
      Fixture fixture = { 0, };
      g_autofree char *before = NULL;
      g_autofree char *after = NULL;

      fixture_setup (&fixture, NULL);
      before = database_digest (fixture.path);
      g_test_expect_message ("Es", G_LOG_LEVEL_CRITICAL, "*assertion*failed*");
      c->func (&fixture);
      g_test_assert_expected_messages ();
      after = database_digest (fixture.path);
      g_assert_cmpstr (after, ==, before);
      fixture_teardown (&fixture, NULL);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* ---------------------------------------------------------------------- */

static const Case cases[] = {
  { "stream-id/empty", case_stream_id_empty, FALSE },
  { "stream-id/invalid-utf8", case_stream_id_invalid_utf8, FALSE },
  { "stream-id/truncated-utf8", case_stream_id_truncated_utf8, FALSE },
  { "stream-id/too-long", case_stream_id_too_long, FALSE },
  { "stream-id/too-long-multibyte", case_stream_id_too_long_multibyte, FALSE },
  { "stream-id/at-limit", case_stream_id_at_limit, TRUE },
  { "stream-id/write-to-all", case_write_to_all, FALSE },
  { "stream-id/reserved", case_reserved_names, FALSE },
  { "event/type-empty", case_event_type_empty, FALSE },
  { "event/type-invalid-utf8", case_event_type_invalid_utf8, FALSE },
  { "event/metadata-invalid-json", case_metadata_invalid_json, FALSE },
  { "event/metadata-not-object", case_metadata_not_object, FALSE },
  { "event/metadata-empty", case_metadata_empty, FALSE },
  { "event/metadata-invalid-utf8", case_metadata_invalid_utf8, FALSE },
  { "event/key-empty", case_key_empty, FALSE },
  { "event/key-invalid-utf8", case_key_invalid_utf8, FALSE },
  { "event/batch-with-one-bad-event", case_batch_with_one_bad_event, FALSE },
  { "event/zero-events", case_zero_events, FALSE },
  { "event/all-keys-already-stored", case_all_keys_already_stored, FALSE },
  { "event/cancelled-write", case_cancelled_write, FALSE },
  { "event/huge-payload", case_huge_payload, TRUE },
  { "event/null-data", case_null_data, TRUE },
  { "event/null-metadata-and-key", case_null_metadata_and_key, TRUE },
  { "event/sql-metacharacters", case_sql_metacharacters_stored_verbatim, TRUE },
  { "version/expected-minus-two", case_expected_version_minus_two, FALSE },
  { "version/expected-min", case_expected_version_min, FALSE },
  { "version/expected-max", case_expected_version_max, FALSE },
  { "version/expected-ahead", case_expected_version_ahead, FALSE },
  { "version/expected-no-stream", case_expected_no_stream_on_existing, FALSE },
  { "version/read-after-end", case_read_after_end, FALSE },
  { "filter/unknown-field", case_filter_unknown_field, FALSE },
  { "filter/malformed-metadata-path", case_filter_malformed_metadata_path, FALSE },
  { "filter/wrong-value-type", case_filter_wrong_value_type, FALSE },
  { "filter/unsupported-value", case_filter_unsupported_value, FALSE },
  { "filter/empty-in", case_filter_empty_in, FALSE },
  { "filter/in-not-array", case_filter_in_not_array, FALSE },
  { "filter/like-on-integer", case_filter_like_on_integer, FALSE },
  { "filter/uint64-too-big", case_filter_uint64_too_big, FALSE },
  { "filter/one-bad-clause", case_filter_one_bad_clause_of_many, FALSE },
  { "filter/sql-in-values", case_filter_sql_in_values, FALSE },
  { "filter/too-many-clauses", case_filter_too_many_clauses, FALSE },
  { "filter/in-json-metacharacters", case_filter_in_json_metacharacters, TRUE },
  { "nullable/filter-and-projection", case_null_filter_and_projection, TRUE },
  { "nullable/in-memory-path", case_in_memory_null_path, FALSE },
  { "snapshot/beyond-stream", case_snapshot_beyond_stream, FALSE },
  { "snapshot/negative-version", case_snapshot_negative_version, FALSE },
  { "snapshot/missing", case_snapshot_missing, FALSE },
  { "closed/operations", case_operations_after_close, FALSE },
  { "closed/enumerator-outlives-close", case_enumerator_outlives_close, TRUE },
  { "file/directory", case_path_is_directory, FALSE },
  { "file/missing-directory", case_path_in_missing_directory, FALSE },
  { "file/read-only", case_read_only_file, FALSE },
  { "file/random-bytes", case_random_bytes_file, FALSE },
  { "file/text", case_text_file, FALSE },
  { "file/truncated", case_truncated_database, FALSE },
  { "file/newer-schema", case_newer_schema, FALSE },
  { "file/other-application", case_other_application_database, FALSE },
  { "file/empty", case_empty_file, FALSE },
};

int
main (int   argc,
      char *argv[])
{
  guint i;

  g_test_init (&argc, &argv, NULL);

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/reliability/bad-input/%s", cases[i].name);

      g_test_add (path, Fixture, &cases[i], fixture_setup, run_case, fixture_teardown);
    }
  for (i = 0; i < G_N_ELEMENTS (programmer_errors); i++)
    {
      g_autofree char *path = g_strdup_printf ("/reliability/bad-input/programmer-error/%s",
                                               programmer_errors[i].name);

      g_test_add_data_func (path, &programmer_errors[i], run_programmer_error);
    }

  g_test_message ("bad input: %u cases, %u programmer errors",
                  (guint) G_N_ELEMENTS (cases), (guint) G_N_ELEMENTS (programmer_errors));
  return g_test_run ();
}
