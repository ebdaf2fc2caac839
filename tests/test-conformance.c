/* test-conformance.c: the contract of EsStreamFactory and EsStream.
 *
 * Every test here is written against the public API only and runs once
 * per backend: an SQLite file in a fresh temporary directory, a private
 * in-memory SQLite database, EsTestMemoryStorage (a backend written outside
 * the library, which shows the stream logic is storage agnostic), and,
 * when the library has it, PostgreSQL (a fresh schema per test on the
 * server named by ES_TEST_PG_CONNINFO, or else on a throwaway server the
 * fixture in es-test-utils.c starts; without one those tests skip).
 * One test per rule of the contract in API.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <es-glib/es-glib.h>
#if ES_TEST_HAS_POSTGRES
#include <es-glib-pg/es-pg.h>
#endif

#include "es-memory-storage.h"
#include "test-conformance.h"

/* Events per page of an enumerator: reads of more than this cross pages. */
#define PAGE_SIZE 1024
#define N_THREADS 8

typedef struct
{
  Backend     backend;
  const char *name;
} BackendInfo;

static const BackendInfo backends[] = {
  { BACKEND_SQLITE_FILE, "sqlite-file" },
  { BACKEND_SQLITE_MEMORY, "sqlite-memory" },
  { BACKEND_MEMORY, "memory" },
#if ES_TEST_HAS_POSTGRES
  { BACKEND_POSTGRES, "postgres" },
#endif
};

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  const BackendInfo *info = data;
  g_autoptr(GError) error = NULL;

  f->backend = info->backend;

  switch (f->backend)
    {
    case BACKEND_SQLITE_FILE:
      f->tmpdir = g_dir_make_tmp ("es-conformance-XXXXXX", &error);
      g_assert_no_error (error);
      f->path = g_build_filename (f->tmpdir, "events.db", NULL);
      f->factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (f->path, NULL, &error));
      break;

    case BACKEND_SQLITE_MEMORY:
      f->factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
      break;

    case BACKEND_MEMORY:
      {
        g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
        /* Its notifier is an EsStorageNotifier with no code of its own:
         * the watch contract runs on the public kit alone. */
        g_autoptr(EsNotifier) notifier = es_test_memory_notifier_new (storage);

        if (es_notifier_start (notifier, NULL, &error))
          f->factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage), notifier);
      }
      break;

    case BACKEND_POSTGRES:
#if ES_TEST_HAS_POSTGRES
      {
        /* A fresh schema per test, so tests are independent; they are
         * left on the (throwaway) server. */
        static guint counter = 0;

        f->schema = g_strdup_printf ("es_conf_%d_%u", (int) getpid (), ++counter);
        f->factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                                     "conninfo", g_getenv ("ES_TEST_PG_CONNINFO"),
                                     "schema", f->schema,
                                     NULL);
      }
#else
      g_assert_not_reached ();
#endif
      break;

    default:
      g_assert_not_reached ();
    }

  g_assert_no_error (error);
  g_assert_true (ES_IS_STREAM_FACTORY (f->factory));
  g_assert_true (ES_IS_STORAGE_HANDLE (es_stream_factory_get_storage (f->factory)));

  g_weak_ref_init (&f->factory_ref, f->factory);
  g_weak_ref_init (&f->storage_ref, es_stream_factory_get_storage (f->factory));
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  /* Some tests close the factory themselves: closing twice is harmless. */
  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&f->factory);

  es_test_assert_finalized (&f->factory_ref, "factory");
  es_test_assert_finalized (&f->storage_ref, "storage");
  g_weak_ref_clear (&f->factory_ref);
  g_weak_ref_clear (&f->storage_ref);

  if (f->tmpdir != NULL)
    es_test_remove_tree (f->tmpdir);
  g_clear_pointer (&f->tmpdir, g_free);
  g_clear_pointer (&f->path, g_free);
  g_clear_pointer (&f->schema, g_free);
}

EsStreamFactory *
fixture_open_other_factory (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory = NULL;

  switch (f->backend)
    {
    case BACKEND_SQLITE_FILE:
      factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (f->path, NULL, &error));
      break;

    case BACKEND_POSTGRES:
#if ES_TEST_HAS_POSTGRES
      factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                                "conninfo", g_getenv ("ES_TEST_PG_CONNINFO"),
                                "schema", f->schema,
                                NULL);
#endif
      break;

    case BACKEND_SQLITE_MEMORY:
    case BACKEND_MEMORY:
    default:
      return NULL;
    }

  g_assert_no_error (error);
  return factory;
}

EsStreamFactory *
fixture_open_empty_factory (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory = NULL;
  static guint counter = 0;

  switch (f->backend)
    {
    case BACKEND_SQLITE_FILE:
      {
        g_autofree char *name = g_strdup_printf ("copy-%u.db", ++counter);
        g_autofree char *path = g_build_filename (f->tmpdir, name, NULL);

        factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
      }
      break;

    case BACKEND_SQLITE_MEMORY:
      factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
      break;

    case BACKEND_MEMORY:
      {
        g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();

        factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage), NULL);
      }
      break;

    case BACKEND_POSTGRES:
#if ES_TEST_HAS_POSTGRES
      {
        g_autofree char *schema = g_strdup_printf ("%s_copy_%u", f->schema, ++counter);

        factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                                  "conninfo", g_getenv ("ES_TEST_PG_CONNINFO"),
                                  "schema", schema,
                                  NULL);
      }
#endif
      break;

    default:
      g_assert_not_reached ();
    }

  g_assert_no_error (error);
  g_assert_nonnull (factory);
  return factory;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

EsStream *
open_stream (Fixture    *f,
             const char *stream_id)
{
  return es_test_open_stream (f->factory, stream_id);
}

static GPtrArray *
batch_new (void)
{
  return g_ptr_array_new_with_free_func (g_object_unref);
}

static gint64
write_batch (EsStream   *stream,
             GPtrArray  *batch,
             gint64      expected_version,
             GError    **error)
{
  return es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                          expected_version, NULL, error);
}

/* Writes @n events "Counted" with data "event-<i>", in batches of 500,
 * through @stream, whose version must be the stream's. */
static void
write_many (EsStream *stream,
            guint     n)
{
  gint64 start = es_stream_get_version (stream);
  guint written = 0;

  while (written < n)
    {
      g_autoptr(GPtrArray) batch = batch_new ();
      g_autoptr(GError) error = NULL;
      gint64 version;

      for (guint i = 0; i < 500 && written + i < n; i++)
        {
          g_autofree char *data = g_strdup_printf ("event-%u", written + i + 1);

          g_ptr_array_add (batch, es_test_candidate_new ("Counted", data, NULL, NULL));
        }
      version = write_batch (stream, batch, ES_VERSION_ANY, &error);
      g_assert_no_error (error);
      written += batch->len;
      g_assert_cmpint (version, ==, start + written);
    }
}

static GPtrArray *
read_stream (Fixture    *f,
             const char *stream_id)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);

  return es_test_read_all_ok (stream, 0, NULL);
}

/* The ids of @events, joined by ",". */
static char *
join_ids (GPtrArray *events)
{
  g_autoptr(GString) ids = g_string_new (NULL);

  for (guint i = 0; i < events->len; i++)
    {
      if (i > 0)
        g_string_append_c (ids, ',');
      g_string_append (ids, es_stored_event_get_id (g_ptr_array_index (events, i)));
    }
  return g_string_free (g_steal_pointer (&ids), FALSE);
}

static char *
join_types (GPtrArray *events)
{
  g_autoptr(GString) types = g_string_new (NULL);

  for (guint i = 0; i < events->len; i++)
    {
      if (i > 0)
        g_string_append_c (types, ',');
      g_string_append (types, es_stored_event_get_event_type (g_ptr_array_index (events, i)));
    }
  return g_string_free (g_steal_pointer (&types), FALSE);
}

static gint64
date_time_to_usec (GDateTime *dt)
{
  return g_date_time_to_unix (dt) * G_USEC_PER_SEC + g_date_time_get_microsecond (dt);
}

/* @dt is UTC and within [@before, @after], allowing for a storage that
 * keeps milliseconds only. */
static void
assert_timestamp_in_window (GDateTime *dt,
                            gint64     before,
                            gint64     after)
{
  gint64 usec;

  g_assert_nonnull (dt);
  g_assert_cmpint (g_date_time_get_utc_offset (dt), ==, 0);
  usec = date_time_to_usec (dt);
  g_assert_cmpint (usec, >=, before - before % 1000);
  g_assert_cmpint (usec, <=, after);
}

/* The stream is empty, read back through the public API. */
static void
assert_stream_empty (Fixture    *f,
                     const char *stream_id)
{
  g_autoptr(GPtrArray) events = read_stream (f, stream_id);
  g_autoptr(EsStream) stream = open_stream (f, stream_id);

  g_assert_cmpuint (events->len, ==, 0);
  g_assert_cmpint (es_stream_get_version (stream), ==, 0);
}

static EsEventFilter *
filter_equals (const char *field,
               GVariant   *value)
{
  EsEventFilter *filter = es_event_filter_new ();

  es_event_filter_add_equals (filter, field, value);
  return filter;
}

static EsEventFilter *
filter_in (const char *field,
           GVariant   *values)
{
  EsEventFilter *filter = es_event_filter_new ();

  es_event_filter_add_in (filter, field, values);
  return filter;
}

static EsEventFilter *
filter_like (const char *field,
             const char *pattern)
{
  EsEventFilter *filter = es_event_filter_new ();

  es_event_filter_add_like (filter, field, pattern);
  return filter;
}

/* Reads @stream_id after @after with @filter (consumed) and compares the
 * ids of the events read with @expected ("e1,e3"; "" for none). */
static void
assert_filter (Fixture       *f,
               const char    *stream_id,
               gint64         after,
               EsEventFilter *filter,
               const char    *expected)
{
  g_autoptr(EsEventFilter) owned = filter;
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, after, owned);
  g_autofree char *ids = join_ids (events);

  g_assert_cmpstr (ids, ==, expected);
}

/* Reading with @filter (consumed) fails with INVALID_ARGUMENT, either at
 * es_stream_read() or at the first next(). */
static void
assert_filter_invalid (Fixture       *f,
                       EsEventFilter *filter)
{
  g_autoptr(EsEventFilter) owned = filter;
  g_autoptr(EsStream) stream = open_stream (f, ES_ALL_STREAM);
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;

  events = es_test_read_all (stream, 0, owned, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_null (events);
}

/*
 * The filter data set, in sequence-id order (e<n> is the idempotency key):
 *   e1 order-1 v1 OrderPlaced  {"user":"alice","amount":10,"price":9.5,"vip":true,
 *                                "addr":{"city":"Paris"}}
 *   e2 order-1 v2 ItemAdded    {"user":"bob","amount":20,"price":20.0,"vip":false}
 *   e3 order-2 v1 OrderPlaced  {"user":"carol","amount":10,"addr":{"city":"Lyon"}}
 *   e4 order-1 v3 OrderShipped {"user":"alice","amount":-3,"price":1e2}
 *   e5 order-2 v2 ItemAdded    (no metadata)
 *   e6 cart-1  v1 CartCreated  {"user":"Alice","amount":"10","vip":"true","addr":"Paris"}
 */
static void
write_filter_dataset (Fixture *f,
                      gint64   sequence_ids[6])
{
  g_autoptr(EsStream) order1 = open_stream (f, "order-1");
  g_autoptr(EsStream) order2 = open_stream (f, "order-2");
  g_autoptr(EsStream) cart1 = open_stream (f, "cart-1");
  g_autoptr(GPtrArray) all = NULL;

  es_test_write_one (order1, "OrderPlaced", "e1",
                     "{\"user\":\"alice\",\"amount\":10,\"price\":9.5,\"vip\":true,"
                     "\"addr\":{\"city\":\"Paris\"}}");
  es_test_write_one (order1, "ItemAdded", "e2",
                     "{\"user\":\"bob\",\"amount\":20,\"price\":20.0,\"vip\":false}");
  es_test_write_one (order2, "OrderPlaced", "e3",
                     "{\"user\":\"carol\",\"amount\":10,\"addr\":{\"city\":\"Lyon\"}}");
  es_test_write_one (order1, "OrderShipped", "e4",
                     "{\"user\":\"alice\",\"amount\":-3,\"price\":1e2}");
  es_test_write_one (order2, "ItemAdded", "e5", NULL);
  es_test_write_one (cart1, "CartCreated", "e6",
                     "{\"user\":\"Alice\",\"amount\":\"10\",\"vip\":\"true\",\"addr\":\"Paris\"}");

  all = read_stream (f, ES_ALL_STREAM);
  g_assert_cmpuint (all->len, ==, 6);
  for (guint i = 0; i < 6; i++)
    {
      g_autofree char *id = g_strdup_printf ("e%u", i + 1);

      g_assert_cmpstr (es_stored_event_get_id (g_ptr_array_index (all, i)), ==, id);
      if (sequence_ids != NULL)
        sequence_ids[i] = es_stored_event_get_sequence_id (g_ptr_array_index (all, i));
    }
}

/* ------------------------------------------------------------------ */
/* Write                                                               */
/* ------------------------------------------------------------------ */

static void
count_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  guint *count = user_data;

  g_assert_cmpstr (pspec->name, ==, "version");
  (*count)++;
}

static void
test_write_returns_version (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "cart-7");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GError) error = NULL;
  gint64 version = -42;
  gint64 property = -42;
  guint notified = 0;
  gulong handler;

  g_test_summary ("A write returns the stream's new version; the handle's version "
                  "property follows it and is notified");

  g_assert_cmpint (es_stream_get_version (stream), ==, 0);
  handler = g_signal_connect (stream, "notify::version", G_CALLBACK (count_notify_cb), &notified);

  g_ptr_array_add (batch, es_test_candidate_new ("Added", "1", NULL, NULL));
  version = write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 1);
  g_assert_cmpint (es_stream_get_version (stream), ==, 1);
  g_object_get (stream, "version", &property, NULL);
  g_assert_cmpint (property, ==, 1);
  g_assert_cmpuint (notified, ==, 1);

  g_ptr_array_add (batch, es_test_candidate_new ("Added", "2", NULL, NULL));
  version = write_batch (stream, batch, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);
  g_assert_cmpint (es_stream_get_version (stream), ==, 3);
  g_object_get (stream, "version", &property, NULL);
  g_assert_cmpint (property, ==, 3);
  g_assert_cmpuint (notified, ==, 2);

  g_signal_handler_disconnect (stream, handler);
}

static void
test_write_expected_any (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "any");
  g_autoptr(EsStream) other = open_stream (f, "any");
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_test_summary ("ES_VERSION_ANY skips the concurrency check, whatever the stream holds "
                  "and whatever the handle knows");

  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 2);
  g_assert_no_error (error);
  /* A stale handle: it still knows version 0. */
  g_assert_cmpint (es_stream_write (other, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 3);
  g_assert_no_error (error);
}

static void
test_write_expected_no_stream (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "fresh");
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Created", NULL, "k1", NULL);
  g_autoptr(EsCandidateEvent) second = es_test_candidate_new ("Created", NULL, "k2", NULL);
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("ES_VERSION_NO_STREAM (0) succeeds on an empty stream and fails with "
                  "WRONG_EXPECTED_VERSION on a non-empty one");

  version = es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 1);

  version = es_stream_write (stream, &second, 1, ES_VERSION_NO_STREAM, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, <, 0);

  events = read_stream (f, "fresh");
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpstr (es_stored_event_get_id (g_ptr_array_index (events, 0)), ==, "k1");
}

static void
test_write_wrong_expected_version (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "cart-7");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("A wrong expected version fails with WRONG_EXPECTED_VERSION, names the "
                  "stream and writes nothing");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  g_ptr_array_add (batch, es_test_candidate_new ("Lost", NULL, NULL, NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Lost", NULL, NULL, NULL));

  version = write_batch (stream, batch, 5, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, <, 0);
  g_assert_nonnull (strstr (error->message, "cart-7"));
  g_clear_error (&error);

  version = write_batch (stream, batch, 1, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_clear_error (&error);

  g_assert_cmpint (es_stream_get_version (stream), ==, 2);
  events = read_stream (f, "cart-7");
  g_assert_cmpuint (events->len, ==, 2);
  {
    g_autofree char *types = join_types (events);

    g_assert_cmpstr (types, ==, "Added,Added");
  }

  /* The right version still works. */
  version = write_batch (stream, batch, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 4);
}

static void
test_write_expected_below_any (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "below");
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("An expected version below -1 is INVALID_ARGUMENT and writes nothing");

  version = es_stream_write (stream, &event, 1, -2, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (version, <, 0);
  g_clear_error (&error);

  version = es_stream_write (stream, &event, 1, G_MININT64, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  assert_stream_empty (f, "below");
}

static void
test_write_zero_events (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "zero");
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("Writing zero events returns the current version and writes nothing");

  version = es_stream_write (stream, NULL, 0, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 0);
  assert_stream_empty (f, "zero");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  version = es_stream_write (stream, NULL, 0, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);

  events = read_stream (f, "zero");
  g_assert_cmpuint (events->len, ==, 2);
}

static void
test_write_idempotency_stored (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "idem");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *ids = NULL;
  gint64 version;

  g_test_summary ("An event whose idempotency key is already stored in the stream is "
                  "skipped, not an error");

  es_test_write_one (stream, "First", "k1", NULL);
  es_test_write_one (stream, "First", "k2", NULL);

  g_ptr_array_add (batch, es_test_candidate_new ("Second", NULL, "k2", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Second", NULL, "k3", NULL));
  version = write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);

  events = read_stream (f, "idem");
  ids = join_ids (events);
  g_assert_cmpstr (ids, ==, "k1,k2,k3");
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (events, 1)), ==, "First");
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 2)), ==, 3);
}

static void
test_write_idempotency_in_batch (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "idem");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *ids = NULL;
  g_autofree char *types = NULL;
  gint64 version;

  g_test_summary ("A key repeated inside one batch: the later event is skipped");

  g_ptr_array_add (batch, es_test_candidate_new ("First", NULL, "k1", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Repeat", NULL, "k1", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Other", NULL, "k2", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Repeat", NULL, "k2", NULL));
  version = write_batch (stream, batch, ES_VERSION_NO_STREAM, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);

  events = read_stream (f, "idem");
  ids = join_ids (events);
  types = join_types (events);
  g_assert_cmpstr (ids, ==, "k1,k2");
  g_assert_cmpstr (types, ==, "First,Other");
}

static void
test_write_idempotency_all_skipped (Fixture       *f,
                                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "idem");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("A write whose events are all skipped returns the current version");

  es_test_write_one (stream, "First", "k1", NULL);
  es_test_write_one (stream, "First", "k2", NULL);
  es_test_write_one (stream, "First", NULL, NULL);

  g_ptr_array_add (batch, es_test_candidate_new ("Again", NULL, "k1", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Again", NULL, "k2", NULL));
  version = write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);

  version = write_batch (stream, batch, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);

  events = read_stream (f, "idem");
  g_assert_cmpuint (events->len, ==, 3);
}

static void
test_write_idempotency_per_stream (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(EsStream) a = open_stream (f, "stream-a");
  g_autoptr(EsStream) b = open_stream (f, "stream-b");
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) all = NULL;

  g_test_summary ("Idempotency is per stream: the same key in another stream is written");

  g_assert_cmpint (es_test_write_one (a, "Added", "shared-key", NULL), ==, 1);
  g_assert_cmpint (es_test_write_one (b, "Added", "shared-key", NULL), ==, 1);

  events = read_stream (f, "stream-b");
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpstr (es_stored_event_get_id (g_ptr_array_index (events, 0)), ==, "shared-key");
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, 0)), ==, "stream-b");

  all = read_stream (f, ES_ALL_STREAM);
  g_assert_cmpuint (all->len, ==, 2);
}

static void
test_write_to_all (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("Writing to @all is INVALID_ARGUMENT");

  version = es_stream_write (all, &event, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (version, <, 0);

  events = es_test_read_all_ok (all, 0, NULL);
  g_assert_cmpuint (events->len, ==, 0);
}

/* A batch with @bad between two good events fails with INVALID_ARGUMENT
 * and writes nothing. */
static void
assert_bad_event_rejected (Fixture          *f,
                           EsCandidateEvent *bad)
{
  g_autoptr(EsStream) stream = open_stream (f, "batch");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_ptr_array_add (batch, es_test_candidate_new ("Good", NULL, NULL, "{}"));
  g_ptr_array_add (batch, bad);
  g_ptr_array_add (batch, es_test_candidate_new ("Good", NULL, NULL, NULL));

  version = write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (version, <, 0);
  g_assert_cmpint (es_stream_get_version (stream), ==, 0);

  assert_stream_empty (f, "batch");
}

static void
test_write_invalid_event_type_empty (Fixture       *f,
                                     gconstpointer  data)
{
  g_test_summary ("An empty event type is INVALID_ARGUMENT; nothing of the batch is written");
  assert_bad_event_rejected (f, es_test_candidate_new ("", NULL, NULL, NULL));
}

static void
test_write_invalid_event_type_utf8 (Fixture       *f,
                                    gconstpointer  data)
{
  g_test_summary ("A non-UTF-8 event type is INVALID_ARGUMENT; nothing of the batch is written");
  assert_bad_event_rejected (f, es_test_candidate_new ("Bad\xc3\x28", NULL, NULL, NULL));
}

static void
test_write_invalid_metadata_not_json (Fixture       *f,
                                      gconstpointer  data)
{
  g_test_summary ("Metadata that is not JSON is INVALID_ARGUMENT; nothing of the batch is "
                  "written");
  assert_bad_event_rejected (f, es_test_candidate_new ("Added", NULL, NULL, "{not json"));
}

static void
test_write_invalid_metadata_lenient (Fixture       *f,
                                     gconstpointer  data)
{
  /* json-glib 1.6 accepts each of these; SQLite's JSON functions do not,
   * and a stored one would break every metadata-filtered read. */
  static const char *lenient[] = {
    "{'a': 1}", "{\"a\": 1 /* comment */}", "{\"a\": 0x10}", "{\"a\": .5}",
    "{\"a\": 01}", "{\"a\": \"tab\there\"}", "{\"a\": \"\\x41\"}", "{\"a\": 1.}",
    "{\"a\": -}", "{\"a\": \"\\u12g4\"}", "{\"a\": tru}",
  };

  g_test_summary ("Metadata must be strict JSON (RFC 8259), not what lenient parsers accept");

  for (guint i = 0; i < G_N_ELEMENTS (lenient); i++)
    assert_bad_event_rejected (f, es_test_candidate_new ("Added", NULL, NULL, lenient[i]));
}

static void
test_write_metadata_strict_accepted (Fixture       *f,
                                     gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "strict");
  g_autoptr(EsCandidateEvent) event = NULL;
  g_autoptr(GError) error = NULL;
  const char *metadata = " {\"a\" : [1, -0.5e+3, true, false, null, {\"b\": \"\\u00e9\\n\\\"\"}], "
                         "\"\": {}} ";

  g_test_summary ("Every construct of strict JSON is accepted as metadata");

  event = es_test_candidate_new ("Added", NULL, NULL, metadata);
  es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
}

static void
test_write_invalid_metadata_array (Fixture       *f,
                                   gconstpointer  data)
{
  g_test_summary ("Metadata that is a JSON array, not an object, is INVALID_ARGUMENT; "
                  "nothing of the batch is written");
  assert_bad_event_rejected (f, es_test_candidate_new ("Added", NULL, NULL, "[1, 2]"));
}

static void
test_write_invalid_metadata_scalar (Fixture       *f,
                                    gconstpointer  data)
{
  g_test_summary ("Metadata that is a JSON scalar, not an object, is INVALID_ARGUMENT; "
                  "nothing of the batch is written");
  assert_bad_event_rejected (f, es_test_candidate_new ("Added", NULL, NULL, "\"text\""));
}

/* @stream_id is rejected with INVALID_ARGUMENT, by open_stream or by the
 * first write (API.md allows both). */
static void
assert_stream_id_rejected (Fixture    *f,
                           const char *stream_id)
{
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GError) error = NULL;

  stream = es_stream_factory_open_stream (f->factory, stream_id, NULL, &error);
  if (stream == NULL)
    {
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
    }
  else
    {
      gint64 version;

      g_assert_no_error (error);
      version = es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_assert_cmpint (version, <, 0);
    }

  all = read_stream (f, ES_ALL_STREAM);
  g_assert_cmpuint (all->len, ==, 0);
}

static void
test_write_invalid_stream_ids (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *too_long = g_strnfill (1025, 'a');

  g_test_summary ("Empty, non-UTF-8, over 1024 bytes and '@'-prefixed stream ids are "
                  "INVALID_ARGUMENT at open_stream or at the first write");

  assert_stream_id_rejected (f, "");
  assert_stream_id_rejected (f, "bad\xff\xfe");
  assert_stream_id_rejected (f, too_long);
  assert_stream_id_rejected (f, "@other");
}

static void
test_write_stream_id_1024 (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *longest = g_strnfill (1024, 'b');
  g_autofree char *multibyte = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) utf8 = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GString) s = g_string_new (NULL);

  g_test_summary ("A stream id of exactly 1024 bytes, and any non-ASCII UTF-8, are fine");

  stream = open_stream (f, longest);
  g_assert_cmpint (es_test_write_one (stream, "Added", NULL, NULL), ==, 1);
  events = read_stream (f, longest);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, 0)), ==, longest);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* 512 two-byte characters: 1024 bytes, 512 characters. */
  for (guint i = 0; i < 512; i++)
    g_string_append (s, "\xc3\xa9");
  multibyte = g_string_free (g_steal_pointer (&s), FALSE);
  utf8 = open_stream (f, multibyte);
  g_assert_cmpint (es_test_write_one (utf8, "Added", NULL, NULL), ==, 1);
  events = read_stream (f, multibyte);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, 0)), ==, multibyte);
}

static void
test_write_metadata_verbatim (Fixture       *f,
                              gconstpointer  data)
{
  const char *metadatas[] = {
    "{ \"b\" :  1,\n  \"a\": [true, null, 1.50],\t\"c\": {\"d\": \"\\u00e9\"} }",
    "{}",
    "{\"z\":1,\"a\":2}",
    "  {\"unicode\": \"caf\xc3\xa9 \\\" \\\\\"}  ",
  };
  g_autoptr(EsStream) stream = open_stream (f, "meta");
  g_autoptr(GPtrArray) events = NULL;

  g_test_summary ("Metadata is returned exactly as written: same text, whitespace, key "
                  "order and escapes; no metadata reads back as NULL");

  for (guint i = 0; i < G_N_ELEMENTS (metadatas); i++)
    es_test_write_one (stream, "Meta", NULL, metadatas[i]);
  es_test_write_one (stream, "NoMeta", NULL, NULL);

  events = read_stream (f, "meta");
  g_assert_cmpuint (events->len, ==, G_N_ELEMENTS (metadatas) + 1);
  for (guint i = 0; i < G_N_ELEMENTS (metadatas); i++)
    g_assert_cmpstr (es_stored_event_get_metadata (g_ptr_array_index (events, i)), ==,
                     metadatas[i]);
  g_assert_null (es_stored_event_get_metadata (g_ptr_array_index (events, events->len - 1)));
}

static void
test_write_data_round_trip (Fixture       *f,
                            gconstpointer  data)
{
  static const guint8 binary[] = { 0, 1, 2, 0xff, 0xfe, 'x', 0, 0x80, '\n', 0 };
  g_autoptr(GBytes) bytes = g_bytes_new_static (binary, sizeof binary);
  g_autoptr(GBytes) large_bytes = NULL;
  g_autoptr(EsStream) stream = open_stream (f, "data");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  guint8 *large;
  GBytes *stored;

  g_test_summary ("Data bytes round-trip exactly (NUL, high bytes, 1 MiB); NULL data reads "
                  "back as empty bytes");

  large = g_malloc (1024 * 1024);
  for (guint i = 0; i < 1024 * 1024; i++)
    large[i] = (guint8) (i * 31 + 7);
  large_bytes = g_bytes_new_take (large, 1024 * 1024);

  g_ptr_array_add (batch, es_candidate_event_new ("Binary", bytes));
  g_ptr_array_add (batch, es_candidate_event_new ("Empty", NULL));
  g_ptr_array_add (batch, es_candidate_event_new ("Large", large_bytes));
  write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_no_error (error);

  events = read_stream (f, "data");
  g_assert_cmpuint (events->len, ==, 3);

  stored = es_stored_event_get_data (g_ptr_array_index (events, 0));
  g_assert_nonnull (stored);
  g_assert_true (g_bytes_equal (stored, bytes));

  stored = es_stored_event_get_data (g_ptr_array_index (events, 1));
  g_assert_nonnull (stored);
  g_assert_cmpuint (g_bytes_get_size (stored), ==, 0);

  stored = es_stored_event_get_data (g_ptr_array_index (events, 2));
  g_assert_nonnull (stored);
  g_assert_true (g_bytes_equal (stored, large_bytes));
}

static void
test_write_candidate_batch (Fixture       *f,
                            gconstpointer  data)
{
  static const char *types[] = { "First", "Second", "Third", "Fourth" };
  /* NULL or empty: none. */
  static const char *keys[] = { "k1", "", "k3", "k1" };
  static const char *expected_keys[] = { "k1", NULL, "k3", "k1" };
  static const char *metadata[] = { "{\"n\":1}", NULL, "", "{\"n\":4}" };
  static const char *expected_metadata[] = { "{\"n\":1}", NULL, NULL, "{\"n\":4}" };
  static const gsize lengths[] = { 3, 0, 4, 2 };
  static const char block[] = "abc\0\xff\0dXY";
  g_autoptr(GBytes) bytes = g_bytes_new_static (block, 9);
  g_autoptr(EsStream) stream = open_stream (f, "batch");
  g_autoptr(GPtrArray) batch = NULL;
  g_autoptr(GPtrArray) bare = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  static const char *expected_types[] = { "First", "Second", "Third" };
  static const char *expected_data[] = { "abc", "", "\0\xff\0d" };
  static const gsize expected_lengths[] = { 3, 0, 4 };
  gsize offset = 0;

  g_test_summary ("es_candidate_event_new_batch() makes the candidates new(), "
                  "set_idempotency_key() and set_metadata() would: the i-th type, "
                  "slice of the data, key and metadata; written, they read back so");

  batch = es_candidate_event_new_batch (types, 4, bytes, lengths, 4, keys, 4, metadata, 4);
  g_assert_nonnull (batch);
  g_assert_cmpuint (batch->len, ==, 4);
  for (guint i = 0; i < batch->len; i++)
    {
      EsCandidateEvent *event = g_ptr_array_index (batch, i);
      GBytes *event_data = es_candidate_event_get_data (event);
      gsize size;
      const char *bytes_data = g_bytes_get_data (event_data, &size);

      g_assert_true (ES_IS_CANDIDATE_EVENT (event));
      g_assert_cmpstr (es_candidate_event_get_event_type (event), ==, types[i]);
      g_assert_cmpstr (es_candidate_event_get_idempotency_key (event), ==, expected_keys[i]);
      g_assert_cmpstr (es_candidate_event_get_metadata (event), ==, expected_metadata[i]);
      g_assert_cmpmem (bytes_data, size, block + offset, lengths[i]);
      /* A slice of the block, not a copy. */
      if (size > 0)
        g_assert_true (bytes_data == block + offset);
      offset += lengths[i];
    }

  /* The fourth repeats the first's key: skipped by the write, as always. */
  g_assert_cmpint (write_batch (stream, batch, ES_VERSION_NO_STREAM, &error), ==, 3);
  g_assert_no_error (error);
  events = read_stream (f, "batch");
  g_assert_cmpuint (events->len, ==, 3);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);
      GBytes *stored = es_stored_event_get_data (event);

      g_assert_cmpint (es_stored_event_get_version (event), ==, i + 1);
      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, expected_types[i]);
      g_assert_cmpmem (g_bytes_get_data (stored, NULL), g_bytes_get_size (stored),
                       expected_data[i], expected_lengths[i]);
      g_assert_cmpstr (es_stored_event_get_idempotency_key (event), ==, expected_keys[i]);
      g_assert_cmpstr (es_stored_event_get_metadata (event), ==, expected_metadata[i]);
    }

  /* Only the types: empty payloads, no keys, no metadata. */
  bare = es_candidate_event_new_batch (types, 2, NULL, NULL, 0, NULL, 0, NULL, 0);
  g_assert_cmpuint (bare->len, ==, 2);
  for (guint i = 0; i < bare->len; i++)
    {
      EsCandidateEvent *event = g_ptr_array_index (bare, i);

      g_assert_cmpstr (es_candidate_event_get_event_type (event), ==, types[i]);
      g_assert_nonnull (es_candidate_event_get_data (event));
      g_assert_cmpuint (g_bytes_get_size (es_candidate_event_get_data (event)), ==, 0);
      g_assert_null (es_candidate_event_get_idempotency_key (event));
      g_assert_null (es_candidate_event_get_metadata (event));
    }
  g_clear_pointer (&bare, g_ptr_array_unref);
  bare = es_candidate_event_new_batch (types, 0, NULL, NULL, 0, NULL, 0, NULL, 0);
  g_assert_cmpuint (bare->len, ==, 0);

  /* Lengths that do not match are a programmer error. */
  g_test_expect_message ("Es", G_LOG_LEVEL_CRITICAL, "*n_idempotency_keys*");
  g_assert_null (es_candidate_event_new_batch (types, 4, bytes, lengths, 4, keys, 3,
                                               NULL, 0));
  g_test_assert_expected_messages ();
  g_test_expect_message ("Es", G_LOG_LEVEL_CRITICAL, "*offset == data_size*");
  g_assert_null (es_candidate_event_new_batch (types, 3, bytes, lengths, 3, NULL, 0,
                                               NULL, 0));
  g_test_assert_expected_messages ();
}

static void
test_write_stored_fields (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsStream) a = open_stream (f, "fields-a");
  g_autoptr(EsStream) b = open_stream (f, "fields-b");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) again = NULL;
  g_autoptr(GPtrArray) stream_a = NULL;
  g_autoptr(GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GError) error = NULL;
  static const char *expected_streams[] = {
    "fields-a", "fields-a", "fields-a", "fields-b", "fields-a"
  };
  static const gint64 expected_versions[] = { 1, 2, 3, 1, 4 };
  static const char *expected_types[] = { "T1", "T2", "T3", "T4", "T5" };
  gint64 last_sequence_id = 0;

  g_test_summary ("Stored events carry: id = idempotency key, else a non-empty unique "
                  "stable id; the stream id; sequence ids > 0 strictly increasing across "
                  "streams; 1-based versions; the event type");

  g_ptr_array_add (batch, es_test_candidate_new ("T1", NULL, "my-key", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("T2", NULL, NULL, NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("T3", NULL, NULL, NULL));
  write_batch (a, batch, ES_VERSION_NO_STREAM, &error);
  g_assert_no_error (error);
  es_test_write_one (b, "T4", NULL, NULL);
  es_test_write_one (a, "T5", NULL, NULL);

  all = read_stream (f, ES_ALL_STREAM);
  g_assert_cmpuint (all->len, ==, 5);
  for (guint i = 0; i < all->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (all, i);
      const char *id = es_stored_event_get_id (event);

      g_assert_nonnull (id);
      g_assert_cmpstr (id, !=, "");
      g_assert_true (g_hash_table_add (ids, (gpointer) id));
      g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, expected_streams[i]);
      g_assert_cmpint (es_stored_event_get_version (event), ==, expected_versions[i]);
      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, expected_types[i]);
      g_assert_cmpint (es_stored_event_get_sequence_id (event), >, last_sequence_id);
      last_sequence_id = es_stored_event_get_sequence_id (event);
    }
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (all, 0)), >, 0);
  g_assert_cmpstr (es_stored_event_get_id (g_ptr_array_index (all, 0)), ==, "my-key");
  g_assert_cmpstr (es_stored_event_get_idempotency_key (g_ptr_array_index (all, 0)), ==,
                   "my-key");
  g_assert_null (es_stored_event_get_idempotency_key (g_ptr_array_index (all, 1)));

  /* Ids are stable: the same on every read, through any stream. */
  again = read_stream (f, ES_ALL_STREAM);
  stream_a = read_stream (f, "fields-a");
  g_assert_cmpuint (stream_a->len, ==, 4);
  for (guint i = 0; i < all->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (all, i);
      EsStoredEvent *same = g_ptr_array_index (again, i);

      g_assert_cmpstr (es_stored_event_get_id (event), ==, es_stored_event_get_id (same));
      g_assert_cmpint (es_stored_event_get_sequence_id (event), ==,
                       es_stored_event_get_sequence_id (same));
    }
  for (guint i = 0; i < stream_a->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (stream_a, i);
      guint index = i < 3 ? i : 4;

      g_assert_cmpint (es_stored_event_get_version (event), ==, i + 1);
      g_assert_cmpstr (es_stored_event_get_id (event), ==,
                       es_stored_event_get_id (g_ptr_array_index (all, index)));
      g_assert_cmpint (es_stored_event_get_sequence_id (event), ==,
                       es_stored_event_get_sequence_id (g_ptr_array_index (all, index)));
    }
}

static void
test_write_timestamps (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "time");
  g_autoptr(GPtrArray) events = NULL;
  gint64 before1, after1, before2, after2;
  gint64 first, second;

  g_test_summary ("Timestamps are UTC, taken during the write, with at least millisecond "
                  "precision");

  before1 = g_get_real_time ();
  es_test_write_one (stream, "Added", NULL, NULL);
  after1 = g_get_real_time ();

  g_usleep (5000);

  before2 = g_get_real_time ();
  es_test_write_one (stream, "Added", NULL, NULL);
  after2 = g_get_real_time ();

  events = read_stream (f, "time");
  g_assert_cmpuint (events->len, ==, 2);
  assert_timestamp_in_window (es_stored_event_get_timestamp (g_ptr_array_index (events, 0)),
                              before1, after1);
  assert_timestamp_in_window (es_stored_event_get_timestamp (g_ptr_array_index (events, 1)),
                              before2, after2);

  first = date_time_to_usec (es_stored_event_get_timestamp (g_ptr_array_index (events, 0)));
  second = date_time_to_usec (es_stored_event_get_timestamp (g_ptr_array_index (events, 1)));
  /* 5 ms apart: a precision of a second (or of 10 ms) would not tell them apart. */
  g_assert_cmpint (second - first, >=, 4000);
}

typedef struct
{
  GMainLoop    *loop;
  GAsyncResult *result;
  GThread      *notify_thread;
  guint         notified;
} AsyncData;

static void
async_result_quit_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  AsyncData *async = user_data;

  async->result = g_object_ref (result);
  g_main_loop_quit (async->loop);
}

static void
record_notify_cb (GObject    *object,
                  GParamSpec *pspec,
                  gpointer    user_data)
{
  AsyncData *async = user_data;

  async->notify_thread = g_thread_self ();
  async->notified++;
}

static void
test_write_async (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "async");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GError) error = NULL;
  AsyncData async = { loop, NULL, NULL, 0 };
  gint64 version;
  gulong handler;

  g_test_summary ("es_stream_write_async completes in the caller's main context, returns "
                  "the new version and notifies version there");

  handler = g_signal_connect (stream, "notify::version", G_CALLBACK (record_notify_cb), &async);
  g_ptr_array_add (batch, es_test_candidate_new ("Added", "a", "k1", NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Added", "b", "k2", "{\"x\":1}"));

  es_stream_write_async (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                         ES_VERSION_NO_STREAM, NULL, async_result_quit_cb, &async);
  g_main_loop_run (loop);

  version = es_stream_write_finish (stream, async.result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);
  g_assert_cmpint (es_stream_get_version (stream), ==, 2);
  g_assert_cmpuint (async.notified, ==, 1);
  g_assert_true (async.notify_thread == g_thread_self ());
  g_clear_object (&async.result);

  /* A conflict, asynchronously (a new event: a replay of the stored
   * batch would succeed). */
  g_ptr_array_add (batch, es_test_candidate_new ("Added", "c", "k3", NULL));
  es_stream_write_async (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                         1, NULL, async_result_quit_cb, &async);
  g_main_loop_run (loop);
  version = es_stream_write_finish (stream, async.result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, <, 0);
  g_clear_object (&async.result);

  events = read_stream (f, "async");
  g_assert_cmpuint (events->len, ==, 2);
  g_signal_handler_disconnect (stream, handler);
}

static void
test_write_cancelled (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "cancel");
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("A write with a cancelled GCancellable fails with G_IO_ERROR_CANCELLED and "
                  "writes nothing");

  g_cancellable_cancel (cancellable);
  version = es_stream_write (stream, &event, 1, ES_VERSION_ANY, cancellable, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (version, <, 0);

  assert_stream_empty (f, "cancel");
}

static void
test_write_cancelled_async (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "cancel");
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  gint64 version;

  g_test_summary ("An asynchronous write with a cancelled GCancellable fails with "
                  "G_IO_ERROR_CANCELLED and writes nothing");

  g_cancellable_cancel (cancellable);
  es_stream_write_async (stream, &event, 1, ES_VERSION_ANY, cancellable, es_test_store_result_cb,
                         &result);
  es_test_wait_result (&result);
  version = es_stream_write_finish (stream, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (version, <, 0);

  assert_stream_empty (f, "cancel");
}

typedef struct
{
  EsStream  *stream;      /* (unowned) shared by every thread */
  guint      index;
  GMutex    *lock;
  GArray    *versions;    /* (element-type gint64) guarded by lock */
  GPtrArray *successes;   /* (element-type utf8) guarded by lock */
  guint     *conflicts;   /* guarded by lock */
} ThreadData;

#define WRITES_PER_THREAD 25

static gpointer
concurrent_any_thread (gpointer user_data)
{
  ThreadData *td = user_data;

  for (guint i = 0; i < WRITES_PER_THREAD; i++)
    {
      g_autofree char *key = g_strdup_printf ("t%u-%u", td->index, i);
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Concurrent", key, key, NULL);
      g_autoptr(GError) error = NULL;
      gint64 version;

      version = es_stream_write (td->stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);

      g_mutex_lock (td->lock);
      g_array_append_val (td->versions, version);
      g_mutex_unlock (td->lock);
    }
  return NULL;
}

static gint
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static void
test_write_concurrent_any (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "concurrent");
  g_autoptr(GArray) versions = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GHashTable) keys = g_hash_table_new (g_str_hash, g_str_equal);
  ThreadData td[N_THREADS];
  GThread *threads[N_THREADS];
  GMutex lock;
  const guint total = N_THREADS * WRITES_PER_THREAD;

  g_test_summary ("8 threads writing with ES_VERSION_ANY to one stream get versions 1..N "
                  "without gaps or duplicates, and every event is stored once");

  g_mutex_init (&lock);
  for (guint t = 0; t < N_THREADS; t++)
    {
      td[t] = (ThreadData) { stream, t, &lock, versions, NULL, NULL };
      threads[t] = g_thread_new ("writer", concurrent_any_thread, &td[t]);
    }
  for (guint t = 0; t < N_THREADS; t++)
    g_thread_join (threads[t]);
  g_mutex_clear (&lock);

  g_assert_cmpuint (versions->len, ==, total);
  g_array_sort (versions, compare_int64);
  for (guint i = 0; i < versions->len; i++)
    g_assert_cmpint (g_array_index (versions, gint64, i), ==, i + 1);

  events = read_stream (f, "concurrent");
  g_assert_cmpuint (events->len, ==, total);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);
      gsize size;
      const char *payload = g_bytes_get_data (es_stored_event_get_data (event), &size);
      g_autofree char *text = g_strndup (payload, size);

      g_assert_cmpint (es_stored_event_get_version (event), ==, i + 1);
      g_assert_true (g_hash_table_add (keys, (gpointer) es_stored_event_get_id (event)));
      /* Each event's data is its own key: no mix-up of payloads. */
      g_assert_cmpstr (text, ==, es_stored_event_get_id (event));
    }
}

#define ATTEMPTS_PER_THREAD 20

static gpointer
concurrent_expected_thread (gpointer user_data)
{
  ThreadData *td = user_data;

  for (guint i = 0; i < ATTEMPTS_PER_THREAD; i++)
    {
      g_autofree char *key = g_strdup_printf ("t%u-%u", td->index, i);
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Guarded", NULL, key, NULL);
      g_autoptr(EsStreamMetrics) metrics = NULL;
      g_autoptr(GError) error = NULL;
      gint64 current;
      gint64 version;

      metrics = es_stream_get_metrics (td->stream, NULL, &error);
      g_assert_no_error (error);
      current = es_stream_metrics_get_current_version (metrics);

      version = es_stream_write (td->stream, &event, 1, current, NULL, &error);

      g_mutex_lock (td->lock);
      if (error == NULL)
        {
          g_assert_cmpint (version, ==, current + 1);
          g_ptr_array_add (td->successes, g_steal_pointer (&key));
        }
      else
        {
          g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
          (*td->conflicts)++;
        }
      g_mutex_unlock (td->lock);
    }
  return NULL;
}

static void
test_write_concurrent_expected (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "guarded");
  g_autoptr(GPtrArray) successes = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GHashTable) expected = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GError) error = NULL;
  ThreadData td[N_THREADS];
  GThread *threads[N_THREADS];
  GMutex lock;
  guint conflicts = 0;

  g_test_summary ("8 threads doing read-modify-write with an expected version: every "
                  "success is stored once, the losers get WRONG_EXPECTED_VERSION, and the "
                  "final version is the number of successes");

  g_mutex_init (&lock);
  for (guint t = 0; t < N_THREADS; t++)
    {
      td[t] = (ThreadData) { stream, t, &lock, NULL, successes, &conflicts };
      threads[t] = g_thread_new ("writer", concurrent_expected_thread, &td[t]);
    }
  for (guint t = 0; t < N_THREADS; t++)
    g_thread_join (threads[t]);
  g_mutex_clear (&lock);

  g_test_message ("%u successes, %u conflicts", successes->len, conflicts);
  g_assert_cmpuint (successes->len + conflicts, ==, N_THREADS * ATTEMPTS_PER_THREAD);
  g_assert_cmpuint (successes->len, >, 0);

  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, successes->len);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, successes->len);

  for (guint i = 0; i < successes->len; i++)
    g_hash_table_add (expected, g_ptr_array_index (successes, i));

  events = read_stream (f, "guarded");
  g_assert_cmpuint (events->len, ==, successes->len);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      g_assert_cmpint (es_stored_event_get_version (event), ==, i + 1);
      /* Each success exactly once: removing it twice would fail. */
      g_assert_true (g_hash_table_remove (expected, es_stored_event_get_id (event)));
    }
  g_assert_cmpuint (g_hash_table_size (expected), ==, 0);
}

/* ------------------------------------------------------------------ */
/* Read                                                                */
/* ------------------------------------------------------------------ */

static void
test_read_after_version (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "after");
  g_autoptr(GPtrArray) events = NULL;
  g_autofree char *ids = NULL;

  g_test_summary ("A read returns the events with version > after_version");

  for (guint i = 1; i <= 5; i++)
    {
      g_autofree char *key = g_strdup_printf ("v%u", i);

      es_test_write_one (stream, "Added", key, NULL);
    }

  events = es_test_read_all_ok (stream, 2, NULL);
  ids = join_ids (events);
  g_assert_cmpstr (ids, ==, "v3,v4,v5");
  g_clear_pointer (&events, g_ptr_array_unref);
  g_clear_pointer (&ids, g_free);

  events = es_test_read_all_ok (stream, 0, NULL);
  ids = join_ids (events);
  g_assert_cmpstr (ids, ==, "v1,v2,v3,v4,v5");
  g_clear_pointer (&events, g_ptr_array_unref);

  events = es_test_read_all_ok (stream, 5, NULL);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);

  events = es_test_read_all_ok (stream, 100, NULL);
  g_assert_cmpuint (events->len, ==, 0);
}

static void
test_read_oldest_first (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "order");
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *types = NULL;

  g_test_summary ("A read returns events oldest first, in version order, batch order kept");

  g_ptr_array_add (batch, es_test_candidate_new ("C", NULL, NULL, NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("A", NULL, NULL, NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("B", NULL, NULL, NULL));
  write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  es_test_write_one (stream, "Z", NULL, NULL);
  es_test_write_one (stream, "Y", NULL, NULL);

  events = read_stream (f, "order");
  types = join_types (events);
  g_assert_cmpstr (types, ==, "C,A,B,Z,Y");
  for (guint i = 0; i < events->len; i++)
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, i)), ==, i + 1);
}

static void
test_read_all_stream (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) tail = NULL;
  g_autofree char *ids = NULL;
  g_autofree char *tail_ids = NULL;
  gint64 seq[6];

  g_test_summary ("@all returns every stream's events in sequence-id order; after_version "
                  "there is a sequence id");

  write_filter_dataset (f, seq);
  all = open_stream (f, ES_ALL_STREAM);

  events = es_test_read_all_ok (all, 0, NULL);
  ids = join_ids (events);
  g_assert_cmpstr (ids, ==, "e1,e2,e3,e4,e5,e6");
  for (guint i = 1; i < 6; i++)
    g_assert_cmpint (seq[i], >, seq[i - 1]);

  tail = es_test_read_all_ok (all, seq[2], NULL);
  tail_ids = join_ids (tail);
  g_assert_cmpstr (tail_ids, ==, "e4,e5,e6");
  g_clear_pointer (&tail, g_ptr_array_unref);

  tail = es_test_read_all_ok (all, seq[5], NULL);
  g_assert_cmpuint (tail->len, ==, 0);
}

#define MANY 2500

static void
assert_counted_event (EsStoredEvent *event,
                      guint          expected_version)
{
  g_autofree char *expected = g_strdup_printf ("event-%u", expected_version);
  gsize size;
  const char *payload;

  g_assert_cmpint (es_stored_event_get_version (event), ==, expected_version);
  payload = g_bytes_get_data (es_stored_event_get_data (event), &size);
  g_assert_cmpmem (payload, size, expected, strlen (expected));
}

static void
test_read_many_pages_next (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "big");
  g_autoptr(EsStream) other = open_stream (f, "small");
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  EsStoredEvent *event;
  guint count = 0;
  gint64 last_sequence_id = 0;

  g_test_summary ("Reading more than one page (2500 events, pages of 1024) with next() "
                  "returns every event in order, on a stream and on @all");

  es_test_write_one (other, "Small", NULL, NULL);
  write_many (stream, MANY);
  es_test_write_one (other, "Small", NULL, NULL);

  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    {
      count++;
      assert_counted_event (event, count);
      g_object_unref (event);
    }
  g_assert_no_error (error);
  g_assert_cmpuint (count, ==, MANY);

  /* From the middle of the second page. */
  events = es_test_read_all_ok (stream, PAGE_SIZE + 100, NULL);
  g_assert_cmpuint (events->len, ==, MANY - PAGE_SIZE - 100);
  assert_counted_event (g_ptr_array_index (events, 0), PAGE_SIZE + 101);
  g_clear_pointer (&events, g_ptr_array_unref);

  all = open_stream (f, ES_ALL_STREAM);
  events = es_test_read_all_ok (all, 0, NULL);
  g_assert_cmpuint (events->len, ==, MANY + 2);
  for (guint i = 0; i < events->len; i++)
    {
      event = g_ptr_array_index (events, i);
      g_assert_cmpint (es_stored_event_get_sequence_id (event), >, last_sequence_id);
      last_sequence_id = es_stored_event_get_sequence_id (event);
    }
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, 0)), ==, "small");
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, MANY + 1)), ==,
                   "small");
  assert_counted_event (g_ptr_array_index (events, MANY), MANY);
}

static void
test_read_many_pages_next_batch (Fixture       *f,
                                 gconstpointer  data)
{
  static const guint sizes[] = { 1, 7, 1000, PAGE_SIZE, PAGE_SIZE + 1, 3000 };
  g_autoptr(EsStream) stream = open_stream (f, "big");

  g_test_summary ("Reading more than one page with next_batch of various sizes returns "
                  "every event in order, never more than asked");

  write_many (stream, MANY);

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      g_autoptr(EsEventEnumerator) enumerator = NULL;
      g_autoptr(GError) error = NULL;
      guint count = 0;

      enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
      g_assert_no_error (error);

      for (;;)
        {
          g_autoptr(GPtrArray) batch = NULL;

          batch = es_event_enumerator_next_batch (enumerator, sizes[s], NULL, &error);
          g_assert_no_error (error);
          g_assert_nonnull (batch);
          g_assert_cmpuint (batch->len, <=, sizes[s]);
          if (batch->len == 0)
            break;
          /* Only the last batch may be short. */
          if (batch->len < sizes[s])
            g_assert_cmpuint (count + batch->len, ==, MANY);
          for (guint i = 0; i < batch->len; i++)
            assert_counted_event (g_ptr_array_index (batch, i), ++count);
        }
      g_assert_cmpuint (count, ==, MANY);
    }
}

static void
test_read_many_pages_next_batch_async (Fixture       *f,
                                       gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "big");
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GError) error = NULL;
  guint count = 0;

  g_test_summary ("Reading more than one page with next_batch_async returns every event "
                  "in order, in the caller's main context");

  write_many (stream, MANY);

  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);

  for (;;)
    {
      g_autoptr(GAsyncResult) result = NULL;
      g_autoptr(GPtrArray) batch = NULL;

      es_event_enumerator_next_batch_async (enumerator, 700, NULL, es_test_store_result_cb, &result);
      es_test_wait_result (&result);
      batch = es_event_enumerator_next_batch_finish (enumerator, result, &error);
      g_assert_no_error (error);
      g_assert_nonnull (batch);
      g_assert_cmpuint (batch->len, <=, 700);
      if (batch->len == 0)
        break;
      for (guint i = 0; i < batch->len; i++)
        assert_counted_event (g_ptr_array_index (batch, i), ++count);
    }
  g_assert_cmpuint (count, ==, MANY);
}

static void
test_read_async (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "async-read");
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GPtrArray) batch = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *ids = NULL;

  g_test_summary ("es_stream_read_async gives an enumerator over the same events");

  es_test_write_one (stream, "Added", "a1", NULL);
  es_test_write_one (stream, "Added", "a2", NULL);
  es_test_write_one (stream, "Added", "a3", NULL);

  es_stream_read_async (stream, 1, NULL, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  enumerator = es_stream_read_finish (stream, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (enumerator);

  batch = es_event_enumerator_next_batch (enumerator, 100, NULL, &error);
  g_assert_no_error (error);
  ids = join_ids (batch);
  g_assert_cmpstr (ids, ==, "a2,a3");
}

static void
test_read_end_repeated (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "end");
  g_autoptr(EsStream) empty = open_stream (f, "empty");
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsEventEnumerator) batches = NULL;
  g_autoptr(EsEventEnumerator) nothing = NULL;
  g_autoptr(EsStoredEvent) event = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("At the end, next() returns NULL without error and next_batch() an empty "
                  "array, again and again");

  es_test_write_one (stream, "Added", NULL, NULL);

  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event);
  for (guint i = 0; i < 3; i++)
    {
      EsStoredEvent *none = es_event_enumerator_next (enumerator, NULL, &error);

      g_assert_no_error (error);
      g_assert_null (none);
    }

  batches = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(GPtrArray) batch = es_event_enumerator_next_batch (batches, 10, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (batch);
      g_assert_cmpuint (batch->len, ==, i == 0 ? 1 : 0);
    }

  nothing = es_stream_read (empty, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(GPtrArray) batch = es_event_enumerator_next_batch (nothing, 10, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (batch);
      g_assert_cmpuint (batch->len, ==, 0);
      g_assert_null (es_event_enumerator_next (nothing, NULL, &error));
      g_assert_no_error (error);
    }
}

static void
test_read_enumerator_close (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "close");
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStoredEvent) event = NULL;
  g_autoptr(EsStoredEvent) after = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("An enumerator can be closed early; next() on it then fails with "
                  "G_IO_ERROR_CLOSED, and closing again is harmless");

  write_many (stream, 10);
  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event);

  g_assert_false (es_event_enumerator_is_closed (enumerator));
  g_assert_true (es_event_enumerator_close (enumerator, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_event_enumerator_is_closed (enumerator));

  after = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  g_assert_null (after);
  g_clear_error (&error);

  es_event_enumerator_close (enumerator, NULL, &error);
  g_clear_error (&error);
  g_assert_true (es_event_enumerator_is_closed (enumerator));
}

static void
test_read_filter_stream_id (Fixture       *f,
                            gconstpointer  data)
{
  g_test_summary ("Filter: equals on stream_id, on @all");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("stream_id", g_variant_new_string ("order-2")),
                 "e3,e5");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("stream_id", g_variant_new_string ("cart-1")),
                 "e6");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("stream_id", g_variant_new_string ("order")),
                 "");
}

static void
test_read_filter_event_type (Fixture       *f,
                             gconstpointer  data)
{
  g_test_summary ("Filter: equals on event_type is exact (case-sensitive)");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("event_type", g_variant_new_string ("OrderPlaced")), "e1,e3");
  assert_filter (f, "order-1", 0,
                 filter_equals ("event_type", g_variant_new_string ("ItemAdded")), "e2");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("event_type", g_variant_new_string ("orderplaced")), "");
}

static void
test_read_filter_version (Fixture       *f,
                          gconstpointer  data)
{
  g_test_summary ("Filter: equals on version, with any GVariant integer type");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("version", g_variant_new_int64 (2)),
                 "e2,e5");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("version", g_variant_new_int32 (1)),
                 "e1,e3,e6");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("version", g_variant_new_uint32 (3)),
                 "e4");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("version", g_variant_new_uint64 (3)),
                 "e4");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("version", g_variant_new_int16 (3)),
                 "e4");
  assert_filter (f, "order-1", 0, filter_equals ("version", g_variant_new_int64 (2)), "e2");
  assert_filter (f, ES_ALL_STREAM, 0, filter_equals ("version", g_variant_new_int64 (9)), "");
}

static void
test_read_filter_sequence_id (Fixture       *f,
                              gconstpointer  data)
{
  gint64 seq[6];

  g_test_summary ("Filter: equals and in on sequence_id");

  write_filter_dataset (f, seq);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("sequence_id", g_variant_new_int64 (seq[3])), "e4");
  assert_filter (f, "order-2", 0,
                 filter_equals ("sequence_id", g_variant_new_int64 (seq[4])), "e5");
  assert_filter (f, "order-1", 0,
                 filter_equals ("sequence_id", g_variant_new_int64 (seq[4])), "");
  {
    gint64 values[] = { seq[0], seq[5] };

    assert_filter (f, ES_ALL_STREAM, 0,
                   filter_in ("sequence_id",
                              g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, values,
                                                         G_N_ELEMENTS (values),
                                                         sizeof (gint64))),
                   "e1,e6");
  }
}

static void
test_read_filter_metadata_string (Fixture       *f,
                                  gconstpointer  data)
{
  g_test_summary ("Filter: equals on metadata.<key> with a string matches JSON strings only, "
                  "case-sensitively");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.user", g_variant_new_string ("alice")), "e1,e4");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.user", g_variant_new_string ("Alice")), "e6");
  /* "10" (a string) is not 10 (a number), and the reverse. */
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_string ("10")), "e6");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.vip", g_variant_new_string ("true")), "e6");
  /* A missing path never matches. */
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.nothing", g_variant_new_string ("alice")), "");
}

static void
test_read_filter_metadata_number (Fixture       *f,
                                  gconstpointer  data)
{
  g_test_summary ("Filter: equals on metadata.<key> with an integer (i, x, u, t) or double "
                  "matches numerically equal JSON numbers");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_int32 (10)), "e1,e3");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_int64 (10)), "e1,e3");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_uint32 (10)), "e1,e3");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_uint64 (10)), "e1,e3");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_double (10.0)), "e1,e3");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_int64 (-3)), "e4");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.price", g_variant_new_double (9.5)), "e1");
  /* 20.0 in JSON equals the integer 20; 1e2 equals 100. */
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.price", g_variant_new_int32 (20)), "e2");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.price", g_variant_new_int64 (100)), "e4");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.price", g_variant_new_double (100.0)), "e4");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.price", g_variant_new_double (9.25)), "");
  /* Numbers don't match strings or booleans. */
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.vip", g_variant_new_int32 (1)), "");
}

static void
test_read_filter_metadata_bool (Fixture       *f,
                                gconstpointer  data)
{
  g_test_summary ("Filter: equals on metadata.<key> with a boolean matches JSON true/false "
                  "only");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.vip", g_variant_new_boolean (TRUE)), "e1");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.vip", g_variant_new_boolean (FALSE)), "e2");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.user", g_variant_new_boolean (TRUE)), "");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.amount", g_variant_new_boolean (TRUE)), "");
}

static void
test_read_filter_metadata_nested (Fixture       *f,
                                  gconstpointer  data)
{
  g_test_summary ("Filter: a dotted path metadata.a.b reaches into nested objects");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.addr.city", g_variant_new_string ("Paris")), "e1");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.addr.city", g_variant_new_string ("Lyon")), "e3");
  /* e6's addr is the string "Paris": it has no city. */
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.addr", g_variant_new_string ("Paris")), "e6");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_equals ("metadata.addr.city.name", g_variant_new_string ("Paris")), "");
}

static void
test_read_filter_in (Fixture       *f,
                     gconstpointer  data)
{
  const char *types[] = { "OrderPlaced", "OrderShipped" };
  const char *users[] = { "bob", "carol", "nobody" };
  const char *streams[] = { "cart-1", "order-2" };
  gint64 versions[] = { 1, 3 };
  gint32 amounts[] = { 20, -3 };

  g_test_summary ("Filter: in matches any value of the array, on every field and on "
                  "metadata");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("event_type", g_variant_new_strv (types, G_N_ELEMENTS (types))),
                 "e1,e3,e4");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("stream_id", g_variant_new_strv (streams, G_N_ELEMENTS (streams))),
                 "e3,e5,e6");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("version",
                            g_variant_new_fixed_array (G_VARIANT_TYPE_INT64, versions,
                                                       G_N_ELEMENTS (versions),
                                                       sizeof (gint64))),
                 "e1,e3,e4,e6");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("metadata.user", g_variant_new_strv (users, G_N_ELEMENTS (users))),
                 "e2,e3");
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("metadata.amount",
                            g_variant_new_fixed_array (G_VARIANT_TYPE_INT32, amounts,
                                                       G_N_ELEMENTS (amounts),
                                                       sizeof (gint32))),
                 "e2,e4");
  assert_filter (f, "order-1", 0,
                 filter_in ("event_type", g_variant_new_strv (types, G_N_ELEMENTS (types))),
                 "e1,e4");
}

static void
test_read_filter_like (Fixture       *f,
                       gconstpointer  data)
{
  g_test_summary ("Filter: like with '%' and '_', ASCII case-insensitive, on stream_id, "
                  "event_type and metadata string values");

  write_filter_dataset (f, NULL);
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("event_type", "Order%"), "e1,e3,e4");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("event_type", "order%"), "e1,e3,e4");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("event_type", "%Added"), "e2,e5");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("event_type", "Item_dded"), "e2,e5");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("event_type", "Item_"), "");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("stream_id", "order-_"), "e1,e2,e3,e4,e5");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("stream_id", "%-1"), "e1,e2,e4,e6");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("metadata.user", "ali%"), "e1,e4,e6");
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("metadata.addr.city", "_yon"), "e3");
  /* LIKE on metadata matches string values only: the number 10 is not "10". */
  assert_filter (f, ES_ALL_STREAM, 0, filter_like ("metadata.amount", "1%"), "e6");
}

static void
test_read_filter_and (Fixture       *f,
                      gconstpointer  data)
{
  const char *types[] = { "OrderPlaced", "OrderShipped", "ItemAdded" };
  EsEventFilter *filter;

  g_test_summary ("Filter: several clauses are AND-ed, and combine with after_version");

  write_filter_dataset (f, NULL);

  filter = es_event_filter_new ();
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("OrderPlaced"));
  es_event_filter_add_equals (filter, "metadata.user", g_variant_new_string ("alice"));
  assert_filter (f, ES_ALL_STREAM, 0, filter, "e1");

  filter = es_event_filter_new ();
  es_event_filter_add_like (filter, "stream_id", "order-%");
  es_event_filter_add_equals (filter, "version", g_variant_new_int64 (2));
  assert_filter (f, ES_ALL_STREAM, 0, filter, "e2,e5");

  filter = es_event_filter_new ();
  es_event_filter_add_in (filter, "event_type", g_variant_new_strv (types, G_N_ELEMENTS (types)));
  es_event_filter_add_equals (filter, "metadata.user", g_variant_new_string ("alice"));
  es_event_filter_add_like (filter, "stream_id", "%-1");
  assert_filter (f, ES_ALL_STREAM, 0, filter, "e1,e4");

  filter = es_event_filter_new ();
  es_event_filter_add_equals (filter, "metadata.user", g_variant_new_string ("alice"));
  assert_filter (f, "order-1", 1, filter, "e4");

  filter = es_event_filter_new ();
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("OrderPlaced"));
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("ItemAdded"));
  assert_filter (f, ES_ALL_STREAM, 0, filter, "");

  /* An empty filter matches everything. */
  assert_filter (f, ES_ALL_STREAM, 0, es_event_filter_new (), "e1,e2,e3,e4,e5,e6");
}

static void
test_read_filter_many_pages (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "big");
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) sparse = batch_new ();
  g_autoptr(GError) error = NULL;

  g_test_summary ("A filter that matches events spread over several pages returns them "
                  "all, even when whole pages match nothing");

  write_many (stream, MANY);
  g_ptr_array_add (sparse, es_test_candidate_new ("Rare", NULL, NULL, NULL));
  write_batch (stream, sparse, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  write_many (stream, 10);   /* versions MANY + 2 .. */

  es_event_filter_add_like (filter, "event_type", "%");
  events = es_test_read_all_ok (stream, 0, filter);
  g_assert_cmpuint (events->len, ==, MANY + 11);
  g_clear_pointer (&events, g_ptr_array_unref);
  g_clear_object (&filter);

  filter = filter_equals ("event_type", g_variant_new_string ("Rare"));
  events = es_test_read_all_ok (stream, 0, filter);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, MANY + 1);
}

static void
test_read_filter_invalid (Fixture       *f,
                          gconstpointer  data)
{
  const char *no_strings[] = { NULL };
  EsEventFilter *filter;

  g_test_summary ("Unknown fields, bad value types, an empty in and like on integer fields "
                  "fail the read with INVALID_ARGUMENT");

  write_filter_dataset (f, NULL);

  assert_filter_invalid (f, filter_equals ("colour", g_variant_new_string ("red")));
  assert_filter_invalid (f, filter_equals ("", g_variant_new_string ("red")));
  assert_filter_invalid (f, filter_equals ("metadata", g_variant_new_string ("red")));
  assert_filter_invalid (f, filter_equals ("metadata.", g_variant_new_string ("red")));
  assert_filter_invalid (f, filter_equals ("metadata.a..b", g_variant_new_string ("red")));
  assert_filter_invalid (f, filter_equals ("Event_Type", g_variant_new_string ("red")));
  assert_filter_invalid (f, filter_equals ("version", g_variant_new_string ("1")));
  assert_filter_invalid (f, filter_equals ("version", g_variant_new_double (1.0)));
  assert_filter_invalid (f, filter_equals ("sequence_id", g_variant_new_boolean (TRUE)));
  assert_filter_invalid (f, filter_equals ("event_type", g_variant_new_boolean (TRUE)));
  assert_filter_invalid (f, filter_equals ("event_type", g_variant_new_int32 (1)));
  assert_filter_invalid (f, filter_equals ("stream_id", g_variant_new_int64 (1)));
  assert_filter_invalid (f, filter_equals ("metadata.user",
                                           g_variant_new ("(ii)", 1, 2)));
  assert_filter_invalid (f, filter_equals ("metadata.user", g_variant_new_bytestring ("x")));
  assert_filter_invalid (f, filter_in ("event_type", g_variant_new_strv (no_strings, 0)));
  assert_filter_invalid (f, filter_in ("version", g_variant_new_fixed_array (G_VARIANT_TYPE_INT64,
                                                                             NULL, 0,
                                                                             sizeof (gint64))));
  assert_filter_invalid (f, filter_like ("version", "1%"));
  assert_filter_invalid (f, filter_like ("sequence_id", "%"));
  assert_filter_invalid (f, filter_like ("colour", "%"));

  /* One bad clause among good ones spoils the filter. */
  filter = es_event_filter_new ();
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("OrderPlaced"));
  es_event_filter_add_equals (filter, "colour", g_variant_new_string ("red"));
  assert_filter_invalid (f, filter);
}

/* Adds @n clauses every event satisfies: a filter of more than 512
 * clauses makes the SQL backends bind even short `in` lists as one
 * parameter, so a padded filter checks that form against the plain one. */
static EsEventFilter *
pad_filter (EsEventFilter *filter,
            guint          n)
{
  for (guint i = 0; i < n; i++)
    es_event_filter_add_like (filter, "stream_id", "%");
  return filter;
}

static void
test_read_filter_in_bound (Fixture       *f,
                           gconstpointer  data)
{
  const char *types[] = { "OrderPlaced", "OrderShipped" };
  const char *users[] = { "bob", "carol", "nobody", "10" };
  gint64 versions[] = { 1, 3 };
  gint32 amounts[] = { 20, -3 };
  double prices[] = { 20.0, 9.5, 1e2, NAN, 9.25 };
  const char *ten[] = { "10" };

  g_test_summary ("Filter: an in list bound as one parameter (in a filter of more than "
                  "512 clauses) gives the same answers as a short inline one, for every "
                  "field and every kind of metadata value");

  write_filter_dataset (f, NULL);
  for (guint pad = 0; pad <= 600; pad += 600)
    {
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("event_type",
                                            g_variant_new_strv (types, G_N_ELEMENTS (types))),
                                 pad),
                     "e1,e3,e4");
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("version",
                                            g_variant_new_fixed_array (G_VARIANT_TYPE_INT64,
                                                                       versions,
                                                                       G_N_ELEMENTS (versions),
                                                                       sizeof (gint64))),
                                 pad),
                     "e1,e3,e4,e6");
      /* Strings match JSON strings only: "10" is e6's amount, not e1's. */
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("metadata.user",
                                            g_variant_new_strv (users, G_N_ELEMENTS (users))),
                                 pad),
                     "e2,e3");
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("metadata.amount",
                                            g_variant_new_strv (ten, G_N_ELEMENTS (ten))),
                                 pad),
                     "e6");
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("metadata.amount",
                                            g_variant_new_fixed_array (G_VARIANT_TYPE_INT32,
                                                                       amounts,
                                                                       G_N_ELEMENTS (amounts),
                                                                       sizeof (gint32))),
                                 pad),
                     "e2,e4");
      /* Numbers by value: 20.0 and 1e2 in JSON, 9.5; NaN equals nothing. */
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("metadata.price",
                                            g_variant_new_fixed_array (G_VARIANT_TYPE_DOUBLE,
                                                                       prices,
                                                                       G_N_ELEMENTS (prices),
                                                                       sizeof (double))),
                                 pad),
                     "e1,e2,e4");
      /* Booleans match JSON true/false, not 1 or "true". */
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("metadata.vip", g_variant_new_parsed ("[true]")),
                                 pad),
                     "e1");
      assert_filter (f, ES_ALL_STREAM, 0,
                     pad_filter (filter_in ("metadata.vip",
                                            g_variant_new_fixed_array (G_VARIANT_TYPE_INT32,
                                                                       amounts, 1,
                                                                       sizeof (gint32))),
                                 pad),
                     "");
    }
}

#define HUGE_IN 100000
#define HUGE_IN_EVENTS 300

/* Builds an array of HUGE_IN values of @type: the values @make() gives
 * for the events whose index @i satisfies i % 7 == 3, among values no
 * event has. */
typedef GVariant *(*MakeValue) (guint i, gboolean match);

static GVariant *
huge_array (const char *type,
            MakeValue   make)
{
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE (type));
  for (guint i = 0; i < HUGE_IN; i++)
    {
      gboolean match = i < HUGE_IN_EVENTS && i % 7 == 3;

      g_variant_builder_add_value (&builder, make (i, match));
    }
  return g_variant_builder_end (&builder);
}

static GVariant *
make_stream_id (guint i, gboolean match)
{
  g_autofree char *id = g_strdup_printf (match ? "huge-%u" : "nothing-%u", i);

  return g_variant_new_string (id);
}

static GVariant *
make_event_type (guint i, gboolean match)
{
  g_autofree char *type = g_strdup_printf (match ? "Type%u" : "Other%u", i);

  return g_variant_new_string (type);
}

static GVariant *
make_metadata_string (guint i, gboolean match)
{
  g_autofree char *s = g_strdup_printf (match ? "v%u" : "w%u", i);

  return g_variant_new_string (s);
}

/* Numbers: event i has n = i * 2; the others are odd or beyond. */
static GVariant *
make_metadata_int (guint i, gboolean match)
{
  return g_variant_new_int64 (match ? (gint64) i * 2 : (gint64) i * 2 + 1);
}

/* Doubles: event i has x = i + 0.25 */
static GVariant *
make_metadata_double (guint i, gboolean match)
{
  return g_variant_new_double (match ? i + 0.25 : i + 0.75);
}

static void
test_read_filter_in_huge (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GString) expected = g_string_new (NULL);
  g_autoptr(GString) expected_true = g_string_new (NULL);
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(EsStream) all_stream = open_stream (f, ES_ALL_STREAM);
  GVariantBuilder versions;
  GVariantBuilder sequence_ids;
  GVariantBuilder booleans;
  EsEventFilter *filter;

  g_test_summary ("Filter: in with 100,000 values returns exactly the matching events, on "
                  "stream_id, event_type, version, sequence_id and metadata strings, "
                  "integers, doubles and booleans");

  /* Event i: stream huge-<i>, version 1 (or 2 for i % 7 == 3: see below),
   * type Type<i>, metadata {"s": "v<i>", "n": 2i, "x": i + 0.25,
   * "b": i % 7 == 3, "t": "v<i>" or 2i (a string or a number)}. */
  for (guint i = 0; i < HUGE_IN_EVENTS; i++)
    {
      g_autofree char *stream_id = g_strdup_printf ("huge-%u", i);
      g_autofree char *type = g_strdup_printf ("Type%u", i);
      g_autofree char *key = g_strdup_printf ("k%u", i);
      g_autofree char *metadata = NULL;
      g_autoptr(EsStream) stream = open_stream (f, stream_id);

      metadata = g_strdup_printf ("{\"s\":\"v%u\",\"n\":%u,\"x\":%u.25,\"b\":%s,"
                                  "\"t\":%s%u%s}",
                                  i, i * 2, i, i % 7 == 3 ? "true" : "false",
                                  i % 2 ? "\"v" : "", i % 2 ? i : i * 2, i % 2 ? "\"" : "");
      es_test_write_one (stream, type, key, metadata);
      if (i % 7 == 3)
        {
          es_test_write_one (stream, "Second", NULL, NULL);
          g_string_append_printf (expected, "%sk%u", expected->len > 0 ? "," : "", i);
        }
    }

  /* The events of interest, and their sequence ids. */
  all = es_test_read_all_ok (all_stream, 0, NULL);
  g_variant_builder_init (&sequence_ids, G_VARIANT_TYPE ("ax"));
  for (guint j = 0; j < all->len; j++)
    {
      EsStoredEvent *event = g_ptr_array_index (all, j);
      const char *id = es_stored_event_get_id (event);

      if (id != NULL && g_str_has_prefix (id, "k") && atoi (id + 1) % 7 == 3)
        g_variant_builder_add (&sequence_ids, "x", es_stored_event_get_sequence_id (event));
    }
  for (guint j = 0; j < HUGE_IN; j++)
    g_variant_builder_add (&sequence_ids, "x", (gint64) G_MAXINT32 + j);

  assert_filter (f, ES_ALL_STREAM, 0, filter_in ("sequence_id", g_variant_builder_end (&sequence_ids)),
                 expected->str);

  /* stream_id matches both events of the matching streams: keep the
   * first with version = 1. */
  filter = filter_in ("stream_id", huge_array ("as", make_stream_id));
  es_event_filter_add_equals (filter, "version", g_variant_new_int64 (1));
  assert_filter (f, ES_ALL_STREAM, 0, filter, expected->str);

  assert_filter (f, ES_ALL_STREAM, 0, filter_in ("event_type", huge_array ("as", make_event_type)),
                 expected->str);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("metadata.s", huge_array ("as", make_metadata_string)),
                 expected->str);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("metadata.n", huge_array ("ax", make_metadata_int)),
                 expected->str);
  assert_filter (f, ES_ALL_STREAM, 0,
                 filter_in ("metadata.x", huge_array ("ad", make_metadata_double)),
                 expected->str);

  /* "t" is a string "v<i>" for odd i, the number 2i for even i: strings
   * match the odd ones only, numbers the even ones only. */
  {
    g_autoptr(GString) odd = g_string_new (NULL);
    g_autoptr(GString) even = g_string_new (NULL);

    for (guint i = 3; i < HUGE_IN_EVENTS; i += 7)
      g_string_append_printf (i % 2 ? odd : even, "%sk%u", (i % 2 ? odd : even)->len > 0 ? "," : "", i);
    assert_filter (f, ES_ALL_STREAM, 0,
                   filter_in ("metadata.t", huge_array ("as", make_metadata_string)), odd->str);
    assert_filter (f, ES_ALL_STREAM, 0,
                   filter_in ("metadata.t", huge_array ("ax", make_metadata_int)), even->str);
  }

  /* Version: every stream has version 1; only the matching ones have 2,
   * so 100,000 versions without 1 select the second events. */
  g_variant_builder_init (&versions, G_VARIANT_TYPE ("ax"));
  for (gint64 v = 2; v < HUGE_IN + 2; v++)
    g_variant_builder_add (&versions, "x", v);
  filter = filter_in ("version", g_variant_builder_end (&versions));
  es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("Second"));
  {
    g_autoptr(EsStream) stream = open_stream (f, ES_ALL_STREAM);
    g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, 0, filter);

    g_assert_cmpuint (events->len, ==, (HUGE_IN_EVENTS + 3) / 7);
    for (guint j = 0; j < events->len; j++)
      g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, j)), ==, 2);
    g_object_unref (filter);
  }

  /* 100,000 booleans (all true). */
  g_variant_builder_init (&booleans, G_VARIANT_TYPE ("ab"));
  for (guint j = 0; j < HUGE_IN; j++)
    g_variant_builder_add (&booleans, "b", TRUE);
  assert_filter (f, ES_ALL_STREAM, 0, filter_in ("metadata.b", g_variant_builder_end (&booleans)),
                 expected->str);
}

static void
test_read_filter_many_clauses (Fixture       *f,
                               gconstpointer  data)
{
  EsEventFilter *filter;

  g_test_summary ("Filter: 1,000 equals clauses, and 4,096 clauses of every kind, work; "
                  "4,097 fail with INVALID_ARGUMENT naming the limit and the number");

  write_filter_dataset (f, NULL);

  filter = es_event_filter_new ();
  for (guint i = 0; i < 1000; i++)
    es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("OrderPlaced"));
  assert_filter (f, ES_ALL_STREAM, 0, filter, "e1,e3");

  filter = es_event_filter_new ();
  for (guint i = 0; i < 1000; i++)
    es_event_filter_add_equals (filter, "metadata.user", g_variant_new_string ("alice"));
  assert_filter (f, ES_ALL_STREAM, 0, filter, "e1,e4");

  /* The limit: 4,096 clauses mixing every kind and field. */
  filter = es_event_filter_new ();
  for (guint i = 0; i < 4096 / 4; i++)
    {
      const char *streams[] = { "order-1", "order-2" };

      es_event_filter_add_equals (filter, "metadata.amount", g_variant_new_int64 (10));
      es_event_filter_add_like (filter, "metadata.user", "%a%");
      es_event_filter_add_in (filter, "stream_id", g_variant_new_strv (streams, 2));
      es_event_filter_add_equals (filter, "version", g_variant_new_int64 (1));
    }
  g_assert_true (es_event_filter_validate (filter, NULL));
  assert_filter (f, ES_ALL_STREAM, 0, filter, "e1,e3");

  /* One more fails, at validation, with the same error on every backend. */
  filter = es_event_filter_new ();
  for (guint i = 0; i < 4097; i++)
    es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("OrderPlaced"));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(EsStream) stream = open_stream (f, ES_ALL_STREAM);
    g_autoptr(GPtrArray) events = NULL;

    g_assert_false (es_event_filter_validate (filter, &error));
    g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "4097"));
    g_assert_nonnull (strstr (error->message, "4096"));
    g_clear_error (&error);

    events = es_test_read_all (stream, 0, filter, &error);
    g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "4097"));
    g_assert_null (events);
    g_object_unref (filter);
  }
}

static void
test_read_sql_metacharacters (Fixture       *f,
                              gconstpointer  data)
{
  static const struct
  {
    const char *value;
    const char *json;   /* {"k": value} */
  } weird[] = {
    { "x'; DROP TABLE events; --", "{\"k\": \"x'; DROP TABLE events; --\"}" },
    { "%", "{\"k\": \"%\"}" },
    { "_", "{\"k\": \"_\"}" },
    { "\"", "{\"k\": \"\\\"\"}" },
    { "a\\b", "{\"k\": \"a\\\\b\"}" },
    { "%%'\"_", "{\"k\": \"%%'\\\"_\"}" },
  };
  g_autoptr(EsStream) plain = open_stream (f, "plain");
  g_autoptr(GPtrArray) all = NULL;

  g_test_summary ("SQL meta-characters in stream ids, event types, metadata and filter "
                  "values are stored verbatim and matched literally by equals");

  es_test_write_one (plain, "plain", NULL, "{\"k\": \"plain\"}");
  es_test_write_one (plain, "a", NULL, "{\"k\": \"a\"}");

  for (guint i = 0; i < G_N_ELEMENTS (weird); i++)
    {
      g_autoptr(EsStream) stream = open_stream (f, weird[i].value);

      g_assert_cmpint (es_test_write_one (stream, weird[i].value, weird[i].value, weird[i].json),
                       ==, 1);
    }

  for (guint i = 0; i < G_N_ELEMENTS (weird); i++)
    {
      g_autoptr(GPtrArray) events = read_stream (f, weird[i].value);
      g_autoptr(GPtrArray) by_stream = NULL;
      g_autoptr(GPtrArray) by_type = NULL;
      g_autoptr(GPtrArray) by_metadata = NULL;
      g_autoptr(GPtrArray) by_in = NULL;
      g_autoptr(EsStream) all_stream = open_stream (f, ES_ALL_STREAM);
      g_autoptr(EsEventFilter) filter = NULL;
      const char *values[] = { weird[i].value, NULL };
      EsStoredEvent *event;

      g_assert_cmpuint (events->len, ==, 1);
      event = g_ptr_array_index (events, 0);
      g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, weird[i].value);
      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, weird[i].value);
      g_assert_cmpstr (es_stored_event_get_id (event), ==, weird[i].value);
      g_assert_cmpstr (es_stored_event_get_metadata (event), ==, weird[i].json);

      filter = filter_equals ("stream_id", g_variant_new_string (weird[i].value));
      by_stream = es_test_read_all_ok (all_stream, 0, filter);
      g_assert_cmpuint (by_stream->len, ==, 1);
      g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (by_stream, 0)), ==,
                       weird[i].value);
      g_clear_object (&filter);

      filter = filter_equals ("event_type", g_variant_new_string (weird[i].value));
      by_type = es_test_read_all_ok (all_stream, 0, filter);
      g_assert_cmpuint (by_type->len, ==, 1);
      g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (by_type, 0)), ==,
                       weird[i].value);
      g_clear_object (&filter);

      filter = filter_equals ("metadata.k", g_variant_new_string (weird[i].value));
      by_metadata = es_test_read_all_ok (all_stream, 0, filter);
      g_assert_cmpuint (by_metadata->len, ==, 1);
      g_assert_cmpstr (es_stored_event_get_metadata (g_ptr_array_index (by_metadata, 0)), ==,
                       weird[i].json);
      g_clear_object (&filter);

      filter = filter_in ("event_type", g_variant_new_strv (values, 1));
      by_in = es_test_read_all_ok (all_stream, 0, filter);
      g_assert_cmpuint (by_in->len, ==, 1);
    }

  /* The database survived the "DROP TABLE". */
  all = read_stream (f, ES_ALL_STREAM);
  g_assert_cmpuint (all->len, ==, G_N_ELEMENTS (weird) + 2);
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

static GBytes *
state_new (const char *text)
{
  /* With a NUL inside, to be sure nothing treats state as a string. */
  g_autofree char *with_nul = g_strdup_printf ("%s%c%s", text, 0, text);

  return g_bytes_new (with_nul, 2 * strlen (text) + 1);
}

static void
test_snapshot_save_load (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(GBytes) state = state_new ("state at two");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;
  gint64 before, after;

  g_test_summary ("A saved snapshot loads back with identical state bytes, its version, "
                  "projection name, stream id and a UTC timestamp of the save");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  before = g_get_real_time ();
  g_assert_true (es_stream_snapshot (stream, state, 2, "totals", NULL, &error));
  after = g_get_real_time ();
  g_assert_no_error (error);

  snapshot = es_stream_load_snapshot (stream, "totals", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 2);
  g_assert_cmpstr (es_snapshot_get_projection_name (snapshot), ==, "totals");
  g_assert_cmpstr (es_snapshot_get_stream_id (snapshot), ==, "snap");
  assert_timestamp_in_window (es_snapshot_get_timestamp (snapshot), before, after);

  /* Another handle on the same stream sees it too. */
  {
    g_autoptr(EsStream) other = open_stream (f, "snap");
    g_autoptr(EsSnapshot) same = es_stream_load_snapshot (other, "totals", NULL, &error);

    g_assert_no_error (error);
    g_assert_nonnull (same);
    g_assert_cmpint (es_snapshot_get_version (same), ==, 2);
  }
}

static void
test_snapshot_current_version (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(EsStream) empty = open_stream (f, "empty");
  g_autoptr(GBytes) state = state_new ("s");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Snapshot version -1 means the stream's current version (0 when empty)");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  g_assert_true (es_stream_snapshot (stream, state, -1, "p", NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (stream, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 3);
  g_clear_object (&snapshot);

  g_assert_true (es_stream_snapshot (empty, state, -1, "p", NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (empty, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 0);
}

static void
test_snapshot_default_projection (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(GBytes) state = state_new ("default state");
  g_autoptr(GBytes) state2 = state_new ("second");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A NULL projection name is \"default\", on save and on load");

  es_test_write_one (stream, "Added", NULL, NULL);
  g_assert_true (es_stream_snapshot (stream, state, 1, NULL, NULL, &error));
  g_assert_no_error (error);

  snapshot = es_stream_load_snapshot (stream, "default", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpstr (es_snapshot_get_projection_name (snapshot), ==, "default");
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));
  g_clear_object (&snapshot);

  g_assert_true (es_stream_snapshot (stream, state2, 1, "default", NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpstr (es_snapshot_get_projection_name (snapshot), ==, "default");
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state2));
}

static void
test_snapshot_named_projections (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(EsStream) other = open_stream (f, "other");
  g_autoptr(GBytes) state_a = state_new ("projection a");
  g_autoptr(GBytes) state_b = state_new ("projection b");
  g_autoptr(EsSnapshot) a = NULL;
  g_autoptr(EsSnapshot) b = NULL;
  g_autoptr(EsSnapshot) none = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Named projections of a stream are independent, and so are streams");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (other, "Added", NULL, NULL);

  g_assert_true (es_stream_snapshot (stream, state_a, 1, "a", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_snapshot (stream, state_b, 2, "b", NULL, &error));
  g_assert_no_error (error);

  a = es_stream_load_snapshot (stream, "a", NULL, &error);
  g_assert_no_error (error);
  b = es_stream_load_snapshot (stream, "b", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_cmpint (es_snapshot_get_version (a), ==, 1);
  g_assert_cmpint (es_snapshot_get_version (b), ==, 2);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (a), state_a));
  g_assert_true (g_bytes_equal (es_snapshot_get_state (b), state_b));

  none = es_stream_load_snapshot (stream, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (none);
  none = es_stream_load_snapshot (other, "a", NULL, &error);
  g_assert_no_error (error);
  g_assert_null (none);
}

static void
test_snapshot_replace (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(GBytes) one = state_new ("one");
  g_autoptr(GBytes) three = state_new ("three");
  g_autoptr(GBytes) two = state_new ("two");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A newer save replaces the previous snapshot of that stream and "
                  "projection");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  g_assert_true (es_stream_snapshot (stream, one, 1, "p", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_snapshot (stream, three, 3, "p", NULL, &error));
  g_assert_no_error (error);

  snapshot = es_stream_load_snapshot (stream, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 3);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), three));
  g_clear_object (&snapshot);

  /* The last save wins, even at a lower version. */
  g_assert_true (es_stream_snapshot (stream, two, 2, "p", NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (stream, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 2);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), two));
}

static void
test_snapshot_none (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(EsStream) empty = open_stream (f, "never-written");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Loading a snapshot that was never saved returns NULL without error");

  es_test_write_one (stream, "Added", NULL, NULL);
  snapshot = es_stream_load_snapshot (stream, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_null (snapshot);
  snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (snapshot);
  snapshot = es_stream_load_snapshot (empty, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (snapshot);
}

static void
test_snapshot_version_beyond (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(GBytes) state = state_new ("s");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A snapshot version beyond the stream's version is INVALID_ARGUMENT and "
                  "saves nothing");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  g_assert_false (es_stream_snapshot (stream, state, 3, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  snapshot = es_stream_load_snapshot (stream, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_null (snapshot);

  g_assert_true (es_stream_snapshot (stream, state, 2, "p", NULL, &error));
  g_assert_no_error (error);
}

static void
test_snapshot_version_below_any (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(GBytes) state = state_new ("s");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A snapshot version below -1 is INVALID_ARGUMENT and saves nothing");

  es_test_write_one (stream, "Added", NULL, NULL);

  g_assert_false (es_stream_snapshot (stream, state, -2, "p", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  snapshot = es_stream_load_snapshot (stream, "p", NULL, &error);
  g_assert_no_error (error);
  g_assert_null (snapshot);
}

static void
test_snapshot_all_stream (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GBytes) state = state_new ("global");
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;
  gint64 seq[6];

  g_test_summary ("Snapshots work on @all, with sequence ids as versions");

  write_filter_dataset (f, seq);
  all = open_stream (f, ES_ALL_STREAM);

  g_assert_true (es_stream_snapshot (all, state, -1, "global", NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (all, "global", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, seq[5]);
  g_assert_cmpstr (es_snapshot_get_stream_id (snapshot), ==, ES_ALL_STREAM);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));
  g_clear_object (&snapshot);

  g_assert_true (es_stream_snapshot (all, state, seq[2], "global", NULL, &error));
  g_assert_no_error (error);
  snapshot = es_stream_load_snapshot (all, "global", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, seq[2]);

  g_assert_false (es_stream_snapshot (all, state, seq[5] + 1, "global", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
}

static void
test_snapshot_async (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "snap");
  g_autoptr(GBytes) state = state_new ("async state");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("snapshot_async and load_snapshot_async, including none and an error");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  es_stream_load_snapshot_async (stream, "p", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  snapshot = es_stream_load_snapshot_finish (stream, result, &error);
  g_assert_no_error (error);
  g_assert_null (snapshot);
  g_clear_object (&result);

  es_stream_snapshot_async (stream, state, 2, "p", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_true (es_stream_snapshot_finish (stream, result, &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  es_stream_snapshot_async (stream, state, 9, "p", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_false (es_stream_snapshot_finish (stream, result, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_load_snapshot_async (stream, "p", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  snapshot = es_stream_load_snapshot_finish (stream, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 2);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));
}

/* ------------------------------------------------------------------ */
/* Metrics                                                             */
/* ------------------------------------------------------------------ */

static EsStreamMetrics *
get_metrics (EsStream *stream)
{
  g_autoptr(GError) error = NULL;
  EsStreamMetrics *metrics;

  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (metrics);
  return metrics;
}

static void
test_metrics_stream (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "metrics");
  g_autoptr(EsStream) other = open_stream (f, "other");
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GError) error = NULL;
  EsStoredEvent *event;
  GDateTime *last;

  g_test_summary ("Metrics of a stream: current version, event count and the timestamp of "
                  "its last event");

  es_test_write_one (stream, "Added", NULL, NULL);
  g_ptr_array_add (batch, es_test_candidate_new ("Added", NULL, NULL, NULL));
  g_ptr_array_add (batch, es_test_candidate_new ("Added", NULL, NULL, NULL));
  write_batch (stream, batch, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  g_usleep (2000);
  es_test_write_one (other, "Other", NULL, NULL);

  metrics = get_metrics (stream);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 3);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 3);
  last = es_stream_metrics_get_last_timestamp (metrics);
  g_assert_nonnull (last);
  g_assert_cmpint (g_date_time_get_utc_offset (last), ==, 0);

  events = read_stream (f, "metrics");
  event = g_ptr_array_index (events, 2);
  g_assert_cmpint (date_time_to_usec (last), ==,
                   date_time_to_usec (es_stored_event_get_timestamp (event)));
}

static void
test_metrics_empty (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "empty");
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(EsStreamMetrics) metrics = NULL;

  g_test_summary ("Metrics of an empty stream and of an empty @all: zero, zero, no "
                  "timestamp");

  metrics = get_metrics (stream);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 0);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 0);
  g_assert_null (es_stream_metrics_get_last_timestamp (metrics));
  g_clear_object (&metrics);

  metrics = get_metrics (all);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 0);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 0);
  g_assert_null (es_stream_metrics_get_last_timestamp (metrics));
  g_clear_object (&metrics);

  /* Another stream's events don't count. */
  {
    g_autoptr(EsStream) other = open_stream (f, "other");

    es_test_write_one (other, "Added", NULL, NULL);
  }
  metrics = get_metrics (stream);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 0);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 0);
  g_assert_null (es_stream_metrics_get_last_timestamp (metrics));
}

static void
test_metrics_all_stream (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GPtrArray) events = NULL;
  EsStoredEvent *last;
  gint64 seq[6];

  g_test_summary ("Metrics of @all: the last sequence id, the total number of events and "
                  "the last event's timestamp");

  write_filter_dataset (f, seq);
  all = open_stream (f, ES_ALL_STREAM);
  metrics = get_metrics (all);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, seq[5]);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 6);
  g_assert_nonnull (es_stream_metrics_get_last_timestamp (metrics));

  events = read_stream (f, ES_ALL_STREAM);
  last = g_ptr_array_index (events, 5);
  g_assert_cmpint (date_time_to_usec (es_stream_metrics_get_last_timestamp (metrics)), ==,
                   date_time_to_usec (es_stored_event_get_timestamp (last)));
}

static void
test_metrics_async (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "metrics");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("get_metrics_async gives the same metrics");

  es_test_write_one (stream, "Added", NULL, NULL);
  es_test_write_one (stream, "Added", NULL, NULL);

  es_stream_get_metrics_async (stream, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  metrics = es_stream_get_metrics_finish (stream, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (metrics);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 2);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, 2);
  g_assert_nonnull (es_stream_metrics_get_last_timestamp (metrics));
}

/* ------------------------------------------------------------------ */
/* Factory and close                                                   */
/* ------------------------------------------------------------------ */

static void
test_factory_reopen (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsStream) early = open_stream (f, "reopen");
  g_autoptr(EsStream) writer = open_stream (f, "reopen");
  g_autoptr(EsStream) again = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) other = open_stream (f, "other");
  gint64 last;

  g_test_summary ("open_stream returns a handle whose version is the stored version; a "
                  "handle knows only its own writes; @all opens at the last sequence id");

  g_assert_cmpint (es_stream_get_version (writer), ==, 0);
  es_test_write_one (writer, "Added", NULL, NULL);
  es_test_write_one (writer, "Added", NULL, NULL);
  last = es_test_write_one (other, "Other", NULL, NULL);
  g_assert_cmpint (last, ==, 1);
  es_test_write_one (writer, "Added", NULL, NULL);

  again = open_stream (f, "reopen");
  g_assert_cmpint (es_stream_get_version (again), ==, 3);
  g_assert_cmpint (es_stream_get_version (writer), ==, 3);
  g_assert_cmpint (es_stream_get_version (early), ==, 0);

  all = open_stream (f, ES_ALL_STREAM);
  {
    g_autoptr(GPtrArray) events = read_stream (f, ES_ALL_STREAM);

    g_assert_cmpuint (events->len, ==, 4);
    g_assert_cmpint (es_stream_get_version (all), ==,
                     es_stored_event_get_sequence_id (g_ptr_array_index (events, 3)));
  }
}

static void
test_factory_open_async (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsStream) writer = open_stream (f, "async-open");
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("open_stream_async gives a handle at the stored version; invalid ids "
                  "fail there too");

  es_test_write_one (writer, "Added", NULL, NULL);
  es_test_write_one (writer, "Added", NULL, NULL);

  es_stream_factory_open_stream_async (f->factory, "async-open", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  stream = es_stream_factory_open_stream_finish (f->factory, result, &error);
  g_assert_no_error (error);
  g_assert_true (ES_IS_STREAM (stream));
  g_assert_cmpstr (es_stream_get_stream_id (stream), ==, "async-open");
  g_assert_cmpint (es_stream_get_version (stream), ==, 2);
  g_clear_object (&result);
  g_clear_object (&stream);

  es_stream_factory_open_stream_async (f->factory, "", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  stream = es_stream_factory_open_stream_finish (f->factory, result, &error);
  if (stream == NULL)
    g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  else
    g_assert_no_error (error);
}

static void
test_factory_close_twice (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "twice");
  g_autoptr(GError) error = NULL;

  g_test_summary ("Closing a factory twice is harmless");

  es_test_write_one (stream, "Added", NULL, NULL);
  g_assert_false (es_stream_factory_is_closed (f->factory));
  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_is_closed (f->factory));
  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_is_closed (f->factory));
}

/* Every operation on @stream and on the factory fails with CLOSED. */
static void
assert_everything_closed (Fixture  *f,
                          EsStream *stream)
{
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(GBytes) state = state_new ("s");
  g_autoptr(EsStream) opened = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), <, 0);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  events = es_test_read_all (stream, 0, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_null (events);
  g_clear_error (&error);

  g_assert_false (es_stream_snapshot (stream, state, -1, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_null (snapshot);
  g_clear_error (&error);

  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_null (metrics);
  g_clear_error (&error);

  opened = es_stream_factory_open_stream (f->factory, "another", NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_null (opened);
  g_clear_error (&error);

  es_stream_write_async (stream, &event, 1, ES_VERSION_ANY, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_write_finish (stream, result, &error), <, 0);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_get_metrics_async (stream, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  metrics = es_stream_get_metrics_finish (stream, result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_null (metrics);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_factory_open_stream_async (f->factory, "another", NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  opened = es_stream_factory_open_stream_finish (f->factory, result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_null (opened);
  g_clear_error (&error);
  g_clear_object (&result);
}

static void
test_factory_closed_operations (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "closing");
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(GError) error = NULL;

  g_test_summary ("After close, write, read, snapshot, load_snapshot, metrics and "
                  "open_stream fail with ES_ERROR_CLOSED");

  es_test_write_one (stream, "Added", NULL, NULL);
  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_no_error (error);

  assert_everything_closed (f, stream);
  assert_everything_closed (f, all);
}

static void
test_factory_closed_enumerator (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "big");
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStoredEvent) first = NULL;
  g_autoptr(GError) error = NULL;
  EsStoredEvent *event;
  guint count = 1;

  g_test_summary ("An enumerator created before close fails with ES_ERROR_CLOSED once its "
                  "buffered events are used up");

  write_many (stream, MANY);

  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  first = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  assert_counted_event (first, 1);

  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_no_error (error);

  /* Buffered events may still come, in order; then CLOSED. */
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    {
      assert_counted_event (event, ++count);
      g_object_unref (event);
    }
  g_test_message ("%u events before the error", count);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_cmpuint (count, <, MANY);
}

static void
test_factory_close_async (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "async-close");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("close_async closes the factory: operations then fail with CLOSED");

  es_test_write_one (stream, "Added", NULL, NULL);

  es_stream_factory_close_async (f->factory, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_true (es_stream_factory_close_finish (f->factory, result, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_is_closed (f->factory));
  g_clear_object (&result);

  assert_everything_closed (f, stream);

  /* And again, asynchronously: harmless. */
  es_stream_factory_close_async (f->factory, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_true (es_stream_factory_close_finish (f->factory, result, &error));
  g_assert_no_error (error);
}

/* ------------------------------------------------------------------ */
/* Retries: idempotent replays, expected-version loops                 */
/* ------------------------------------------------------------------ */

/* A write through es_stream_write_async(), waited for. */
static gint64
write_batch_async (EsStream   *stream,
                   GPtrArray  *batch,
                   gint64      expected_version,
                   GError    **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  es_stream_write_async (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                         expected_version, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  return es_stream_write_finish (stream, result, error);
}

typedef gint64 (*WriteFunc) (EsStream   *stream,
                             GPtrArray  *batch,
                             gint64      expected_version,
                             GError    **error);

static void
check_idempotent_replay (Fixture    *f,
                         WriteFunc   write_func,
                         const char *stream_id)
{
  g_autoptr(EsStream) stream = open_stream (f, stream_id);
  g_autoptr(EsStream) other = open_stream (f, stream_id);
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GPtrArray) pair = batch_new ();
  g_autoptr(GPtrArray) partial = batch_new ();
  g_autoptr(GPtrArray) keyless = batch_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *types = NULL;
  gint64 version;

  /* write([key "req-1"], 0), then the very same call again. */
  g_ptr_array_add (batch, es_test_candidate_new ("Requested", "1", "req-1", NULL));
  version = write_func (stream, batch, ES_VERSION_NO_STREAM, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 1);

  version = write_func (stream, batch, ES_VERSION_NO_STREAM, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 1);
  g_assert_cmpint (es_stream_get_version (stream), ==, 1);

  /* A batch of two, stored, then replayed with a stale expected version:
   * it returns the current version, whatever the expected one was. */
  g_ptr_array_add (pair, es_test_candidate_new ("Requested", "2", "req-2", NULL));
  g_ptr_array_add (pair, es_test_candidate_new ("Requested", "3", "req-3", NULL));
  version = write_func (stream, pair, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);

  /* Another handle moves the stream on. */
  es_test_write_one (other, "Other", NULL, NULL);
  es_test_write_one (other, "Other", NULL, NULL);

  version = write_func (stream, pair, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 5);
  g_assert_cmpint (es_stream_get_version (stream), ==, 5);

  /* Replayed with ES_VERSION_NO_STREAM after the stream moved on. */
  version = write_func (stream, batch, ES_VERSION_NO_STREAM, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 5);

  /* Replayed with the right version or any version: the same. */
  version = write_func (stream, pair, 5, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 5);
  version = write_func (stream, pair, ES_VERSION_ANY, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 5);

  /* A partial replay (one event new) with a wrong expected version still
   * fails, and writes nothing, not even the new event. */
  g_ptr_array_add (partial, es_test_candidate_new ("Requested", "1", "req-1", NULL));
  g_ptr_array_add (partial, es_test_candidate_new ("Requested", "4", "req-4", NULL));
  version = write_func (stream, partial, 3, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, <, 0);
  g_clear_error (&error);

  /* An event without a key is always new. */
  g_ptr_array_add (keyless, es_test_candidate_new ("Requested", "2", "req-2", NULL));
  g_ptr_array_add (keyless, es_test_candidate_new ("Keyless", NULL, NULL, NULL));
  version = write_func (stream, keyless, 3, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_clear_error (&error);

  events = read_stream (f, stream_id);
  g_assert_cmpuint (events->len, ==, 5);
  types = join_types (events);
  g_assert_cmpstr (types, ==, "Requested,Requested,Requested,Other,Other");
  g_assert_cmpstr (es_stored_event_get_id (g_ptr_array_index (events, 2)), ==, "req-3");

  /* With the right version, the partial batch writes its new event only. */
  version = write_func (stream, partial, 5, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 6);
}

static void
test_write_idempotent_replay (Fixture       *f,
                              gconstpointer  data)
{
  g_test_summary ("A batch whose every event is stored (by idempotency key) succeeds and "
                  "returns the current version whatever version it expects; a batch with a "
                  "new event still gets the expected-version check and writes nothing");

  check_idempotent_replay (f, write_batch, "replay");
}

static void
test_write_idempotent_replay_async (Fixture       *f,
                                    gconstpointer  data)
{
  g_test_summary ("The idempotent replay rule, through es_stream_write_async()");

  check_idempotent_replay (f, write_batch_async, "replay-async");
}

/* The natural retry loop: write with es_stream_get_version() as expected
 * version until it is not WRONG_EXPECTED_VERSION. Returns how many
 * retries it took. */
static guint
write_until_not_conflicting (EsStream  *stream,
                             WriteFunc  write_func,
                             gint64    *out_version)
{
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GError) error = NULL;
  guint retries = 0;

  g_ptr_array_add (batch, es_test_candidate_new ("Decided", NULL, NULL, NULL));
  for (;;)
    {
      *out_version = write_func (stream, batch, es_stream_get_version (stream), &error);
      if (!g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        break;
      g_clear_error (&error);
      /* A loop that never converges fails here rather than hangs. */
      g_assert_cmpuint (++retries, <, 10);
    }
  g_assert_no_error (error);
  return retries;
}

static void
check_retry_converges (Fixture   *f,
                       WriteFunc  write_func,
                       const char *stream_id)
{
  g_autoptr(EsStream) mine = open_stream (f, stream_id);
  g_autoptr(EsStream) theirs = open_stream (f, stream_id);
  g_autoptr(GPtrArray) batch = batch_new ();
  g_autoptr(GError) error = NULL;
  guint notified = 0;
  gint64 version;
  gulong handler;

  handler = g_signal_connect (mine, "notify::version", G_CALLBACK (count_notify_cb), &notified);

  /* Another handle (another process, as far as @mine knows) writes. */
  es_test_write_one (theirs, "Theirs", NULL, NULL);
  es_test_write_one (theirs, "Theirs", NULL, NULL);
  g_assert_cmpint (es_stream_get_version (mine), ==, 0);

  /* The conflict tells @mine where the stream is. */
  g_ptr_array_add (batch, es_test_candidate_new ("Mine", NULL, NULL, NULL));
  version = write_func (mine, batch, es_stream_get_version (mine), &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, <, 0);
  g_clear_error (&error);
  g_assert_cmpint (es_stream_get_version (mine), ==, 2);
  g_assert_cmpuint (notified, ==, 1);

  version = write_func (mine, batch, es_stream_get_version (mine), &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);
  g_assert_cmpuint (notified, ==, 2);

  /* The loop, from the top: one retry after each foreign write. */
  for (guint round = 0; round < 3; round++)
    {
      es_test_write_one (theirs, "Theirs", NULL, NULL);
      g_assert_cmpuint (write_until_not_conflicting (mine, write_func, &version), ==, 1);
      g_assert_cmpint (version, ==, 5 + 2 * round);
      g_assert_cmpint (es_stream_get_version (mine), ==, version);
    }

  /* Nothing written by the failed attempts. */
  {
    g_autoptr(GPtrArray) events = read_stream (f, stream_id);
    g_autofree char *types = join_types (events);

    g_assert_cmpstr (types, ==, "Theirs,Theirs,Mine,Theirs,Decided,Theirs,Decided,Theirs,Decided");
  }

  g_signal_handler_disconnect (mine, handler);
}

static void
test_write_retry_converges (Fixture       *f,
                            gconstpointer  data)
{
  g_test_summary ("After WRONG_EXPECTED_VERSION the handle knows the stored version, so "
                  "writing again with es_stream_get_version() succeeds after one retry");

  check_retry_converges (f, write_batch, "retry");
}

static void
test_write_retry_converges_async (Fixture       *f,
                                  gconstpointer  data)
{
  g_test_summary ("The retry loop converges through es_stream_write_async() too, and "
                  "version is notified before the callback");

  check_retry_converges (f, write_batch_async, "retry-async");
}

static void
test_stream_query_version (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(EsStream) mine = open_stream (f, "query");
  g_autoptr(EsStream) theirs = open_stream (f, "query");
  g_autoptr(EsStream) all = open_stream (f, ES_ALL_STREAM);
  g_autoptr(EsStream) elsewhere = open_stream (f, "query-other");
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  guint notified = 0;
  gint64 version;
  gulong handler;

  g_test_summary ("es_stream_query_version reads the stored version without writing, "
                  "updates the handle's version and notifies it; for @all the last "
                  "sequence id");

  handler = g_signal_connect (mine, "notify::version", G_CALLBACK (count_notify_cb), &notified);

  version = es_stream_query_version (mine, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 0);
  g_assert_cmpuint (notified, ==, 0);

  es_test_write_one (theirs, "Theirs", NULL, NULL);
  es_test_write_one (theirs, "Theirs", NULL, NULL);
  es_test_write_one (elsewhere, "Elsewhere", NULL, NULL);
  g_assert_cmpint (es_stream_get_version (mine), ==, 0);

  version = es_stream_query_version (mine, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);
  g_assert_cmpint (es_stream_get_version (mine), ==, 2);
  g_assert_cmpuint (notified, ==, 1);

  /* Asynchronously: the version is known when the callback runs. */
  es_test_write_one (theirs, "Theirs", NULL, NULL);
  es_stream_query_version_async (mine, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpuint (notified, ==, 2);
  version = es_stream_query_version_finish (mine, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);
  g_assert_cmpint (es_stream_get_version (mine), ==, 3);
  g_clear_object (&result);

  /* Nothing was written by asking. */
  {
    g_autoptr(GPtrArray) events = read_stream (f, "query");

    g_assert_cmpuint (events->len, ==, 3);
  }

  /* @all: the last sequence id. */
  version = es_stream_query_version (all, NULL, &error);
  g_assert_no_error (error);
  {
    g_autoptr(GPtrArray) events = read_stream (f, ES_ALL_STREAM);
    EsStoredEvent *last = g_ptr_array_index (events, events->len - 1);

    g_assert_cmpuint (events->len, ==, 4);
    g_assert_cmpint (version, ==, es_stored_event_get_sequence_id (last));
    g_assert_cmpint (es_stream_get_version (all), ==, version);
  }

  es_stream_query_version_async (all, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_query_version_finish (all, result, &error), ==, version);
  g_assert_no_error (error);
  g_clear_object (&result);

  /* Cancelled, and after close: errors, and the version stays. */
  g_cancellable_cancel (cancellable);
  g_assert_cmpint (es_stream_query_version (mine, cancellable, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  g_assert_true (es_stream_factory_close (f->factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_query_version (mine, NULL, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  es_stream_query_version_async (mine, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_cmpint (es_stream_query_version_finish (mine, result, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_assert_cmpint (es_stream_get_version (mine), ==, 3);

  g_signal_handler_disconnect (mine, handler);
}

static void
append_result_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
  g_main_context_wakeup (NULL);
}

static void
test_storage_conflict_version (Fixture       *f,
                               gconstpointer  data)
{
  EsStorageHandle *storage = es_stream_factory_get_storage (f->factory);
  g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Added", NULL, NULL, NULL);
  g_autoptr(EsCandidateEvent) keyed = es_test_candidate_new ("Added", NULL, "key", NULL);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  /* The test backend does not report it, as a backend for 0.1 would not. */
  gint64 expected_found = f->backend == BACKEND_MEMORY ? -1 : 2;
  gint64 version;

  g_test_summary ("A storage append that fails with WRONG_EXPECTED_VERSION reports the "
                  "version it found in out_version, synchronously and not; an append of "
                  "stored events only succeeds whatever version it expects");

  g_assert_true (es_storage_handle_append (storage, "direct", ES_VERSION_ANY, &keyed, 1,
                                           &version, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_storage_handle_append (storage, "direct", ES_VERSION_ANY, &event, 1,
                                           &version, NULL, &error));
  g_assert_cmpint (version, ==, 2);

  version = -1;
  g_assert_false (es_storage_handle_append (storage, "direct", 7, &event, 1, &version, NULL,
                                            &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, ==, expected_found);
  g_clear_error (&error);

  es_storage_handle_append_async (storage, "direct", 7, &event, 1, NULL, append_result_cb,
                                  &result);
  es_test_wait_result (&result);
  version = 1234;
  g_assert_false (es_storage_handle_append_finish (storage, result, &version, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpint (version, ==, expected_found);
  g_clear_error (&error);
  g_clear_object (&result);

  /* Every event already stored: success at the current version. */
  version = -1;
  g_assert_true (es_storage_handle_append (storage, "direct", ES_VERSION_NO_STREAM, &keyed, 1,
                                           &version, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);

  es_storage_handle_append_async (storage, "direct", 9, &keyed, 1, NULL, append_result_cb,
                                  &result);
  es_test_wait_result (&result);
  g_assert_true (es_storage_handle_append_finish (storage, result, &version, &error));
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);
}

/* ------------------------------------------------------------------ */
/* Cancellation: CANCELLED means nothing was written                   */
/* ------------------------------------------------------------------ */

/* How many writes (and half as many snapshots) the random-cancel tests
 * make; ES_TEST_CANCEL_WRITES overrides it. */
#define CANCEL_WRITES_DEFAULT 3000

static guint
cancel_test_size (void)
{
  const char *size = g_getenv ("ES_TEST_CANCEL_WRITES");
  guint64 n;

  if (size == NULL)
    return CANCEL_WRITES_DEFAULT;
  g_assert_true (g_ascii_string_to_unsigned (size, 10, 2, G_MAXUINT, &n, NULL));
  return (guint) n;
}

/* When an operation's cancellable fires, relative to the call. */
typedef enum
{
  CANCEL_NEVER,
  CANCEL_BEFORE,        /* before the call: nothing may be written */
  CANCEL_AFTER_CALL,    /* (async) right after the call returned */
  CANCEL_FROM_THREAD,   /* from another thread, after a random delay */
  CANCEL_FROM_IDLE,     /* (async) from an idle of the caller's context */
  CANCEL_ON_COMPLETION, /* (async) when another operation completes: with
                         * group commits, often committed, not yet reported */
  N_CANCEL_MODES
} CancelMode;

/* Cancels cancellables from a thread of its own, each after its delay. */
typedef struct
{
  GAsyncQueue *queue;   /* (owned) CancelRequest *, then the thread itself to stop */
  GThread     *thread;  /* (owned) */
} Canceller;

typedef struct
{
  GCancellable *cancellable;  /* (owned) */
  gint64        delay_usec;
} CancelRequest;

static gpointer
canceller_thread (gpointer data)
{
  Canceller *canceller = data;
  CancelRequest *request;

  while ((request = g_async_queue_pop (canceller->queue)) != (gpointer) canceller)
    {
      gint64 deadline = g_get_monotonic_time () + request->delay_usec;

      /* Short delays spin: a sleep would round them up to the scheduler's. */
      while (g_get_monotonic_time () < deadline)
        {
          if (request->delay_usec > 100)
            g_usleep (20);
          else
            g_thread_yield ();
        }
      g_cancellable_cancel (request->cancellable);
      g_object_unref (request->cancellable);
      g_free (request);
    }
  return NULL;
}

static void
canceller_start (Canceller *canceller)
{
  canceller->queue = g_async_queue_new ();
  canceller->thread = g_thread_new ("canceller", canceller_thread, canceller);
}

static void
canceller_cancel_later (Canceller    *canceller,
                        GCancellable *cancellable,
                        gint64        delay_usec)
{
  CancelRequest *request = g_new0 (CancelRequest, 1);

  request->cancellable = g_object_ref (cancellable);
  request->delay_usec = delay_usec;
  g_async_queue_push (canceller->queue, request);
}

static void
canceller_stop (Canceller *canceller)
{
  g_async_queue_push (canceller->queue, canceller);
  g_thread_join (canceller->thread);
  g_async_queue_unref (canceller->queue);
}

static gboolean
cancel_idle_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* Arranges for @cancellable to fire as @mode says, before the call
 * (CANCEL_BEFORE) or while it is under way; CANCEL_AFTER_CALL is left to
 * the caller. Delays go up to a millisecond: a write commits within that
 * on every backend, so some cancellations land before the commit, some
 * during it and some after it. */
static void
arrange_cancel (Canceller    *canceller,
                GCancellable *cancellable,
                CancelMode    mode)
{
  static const int priorities[] = { G_PRIORITY_HIGH, G_PRIORITY_DEFAULT, G_PRIORITY_LOW };

  switch (mode)
    {
    case CANCEL_BEFORE:
      g_cancellable_cancel (cancellable);
      break;
    case CANCEL_FROM_THREAD:
      canceller_cancel_later (canceller, cancellable,
                              g_test_rand_bit () ? g_test_rand_int_range (0, 100)
                                                 : g_test_rand_int_range (100, 1000));
      break;
    case CANCEL_FROM_IDLE:
      g_idle_add_full (priorities[g_test_rand_int_range (0, G_N_ELEMENTS (priorities))],
                       cancel_idle_cb, g_object_ref (cancellable), g_object_unref);
      break;
    case CANCEL_NEVER:
    case CANCEL_AFTER_CALL:
    case CANCEL_ON_COMPLETION:
    case N_CANCEL_MODES:
    default:
      break;
    }
}

/* What one write or snapshot reported. */
typedef struct
{
  gboolean done;
  gboolean cancelled;  /* it failed with G_IO_ERROR_CANCELLED */
  gint64   version;    /* a write: the version it reported */
  guint   *in_flight;  /* (unowned) the async operations not done yet */
  GPtrArray *to_cancel; /* (unowned) cancellables of CANCEL_ON_COMPLETION */
} Outcome;

/* An asynchronous operation completed: cancel those waiting for that. */
static void
outcome_completed (Outcome *outcome)
{
  for (guint i = 0; i < outcome->to_cancel->len; i++)
    g_cancellable_cancel (g_ptr_array_index (outcome->to_cancel, i));
  g_ptr_array_set_size (outcome->to_cancel, 0);
  (*outcome->in_flight)--;
}

static void
outcome_record (Outcome      *outcome,
                gboolean      ok,
                gint64        version,
                const GError *error)
{
  g_assert_false (outcome->done);
  outcome->done = TRUE;
  if (ok)
    {
      g_assert_no_error (error);
      outcome->version = version;
      return;
    }
  /* Nothing but a cancellation can fail here. */
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  outcome->cancelled = TRUE;
}

static void
cancel_write_done_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  Outcome *outcome = user_data;
  g_autoptr(GError) error = NULL;
  gint64 version;

  version = es_stream_write_finish (ES_STREAM (source), result, &error);
  outcome_record (outcome, version > 0, version, error);
  outcome_completed (outcome);
}

static void
cancel_snapshot_done_cb (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  Outcome *outcome = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  ok = es_stream_snapshot_finish (ES_STREAM (source), result, &error);
  outcome_record (outcome, ok, 0, error);
  outcome_completed (outcome);
}

/* Asynchronous operations in flight at once: enough for group commits. */
#define CANCEL_IN_FLIGHT 16

static void
test_write_cancel_random (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "cancel-random");
  g_autoptr(GHashTable) stored = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) events = NULL;
  g_autofree Outcome *outcomes = NULL;
  guint n = cancel_test_size ();
  guint n_sync = n / 2;
  guint n_cancelled = 0, n_cancelled_stored = 0, n_ok_missing = 0, n_ok_wrong_version = 0;
  g_autoptr(GPtrArray) to_cancel = g_ptr_array_new_with_free_func (g_object_unref);
  guint in_flight = 0;
  guint next;
  Canceller canceller;

  g_test_summary ("Writes cancelled at random moments, synchronous and asynchronous: every "
                  "write reported CANCELLED wrote nothing, every other one is stored at the "
                  "version it reported (ES_TEST_CANCEL_WRITES sets how many)");

  outcomes = g_new0 (Outcome, n);
  canceller_start (&canceller);

  /* Synchronous writes: a cancellation before the call, or from another
   * thread while the write runs. */
  for (guint i = 0; i < n_sync; i++)
    {
      g_autofree char *key = g_strdup_printf ("w%u", i);
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Written", key, key, NULL);
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();
      g_autoptr(GError) error = NULL;
      CancelMode mode = (CancelMode) g_test_rand_int_range (CANCEL_NEVER, N_CANCEL_MODES);
      gint64 version;

      if (mode == CANCEL_AFTER_CALL || mode == CANCEL_FROM_IDLE || mode == CANCEL_ON_COMPLETION)
        mode = CANCEL_FROM_THREAD;
      arrange_cancel (&canceller, cancellable, mode);
      version = es_stream_write (stream, &event, 1, ES_VERSION_ANY, cancellable, &error);
      outcome_record (&outcomes[i], version > 0, version, error);
    }

  /* Asynchronous writes, CANCEL_IN_FLIGHT at a time, so that they share
   * commits and complete through the main context. */
  next = n_sync;
  while (next < n || in_flight > 0)
    {
      while (next < n && in_flight < CANCEL_IN_FLIGHT)
        {
          g_autofree char *key = g_strdup_printf ("w%u", next);
          g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Written", key, key, NULL);
          g_autoptr(GCancellable) cancellable = g_cancellable_new ();
          CancelMode mode = (CancelMode) g_test_rand_int_range (CANCEL_NEVER, N_CANCEL_MODES);

          outcomes[next].in_flight = &in_flight;
          outcomes[next].to_cancel = to_cancel;
          arrange_cancel (&canceller, cancellable, mode);
          es_stream_write_async (stream, &event, 1, ES_VERSION_ANY, cancellable,
                                 cancel_write_done_cb, &outcomes[next]);
          if (mode == CANCEL_AFTER_CALL)
            g_cancellable_cancel (cancellable);
          else if (mode == CANCEL_ON_COMPLETION)
            g_ptr_array_add (to_cancel, g_object_ref (cancellable));
          in_flight++;
          next++;
        }
      g_main_context_iteration (NULL, TRUE);
    }
  canceller_stop (&canceller);

  /* Each event's key and data is "w<index of its write>". */
  events = read_stream (f, "cancel-random");
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      g_hash_table_insert (stored, (gpointer) es_stored_event_get_id (event), event);
    }

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *key = g_strdup_printf ("w%u", i);
      EsStoredEvent *event = g_hash_table_lookup (stored, key);

      g_assert_true (outcomes[i].done);
      if (outcomes[i].cancelled)
        {
          n_cancelled++;
          if (event != NULL)
            n_cancelled_stored++;
        }
      else if (event == NULL)
        n_ok_missing++;
      else if (es_stored_event_get_version (event) != outcomes[i].version)
        n_ok_wrong_version++;
    }

  g_test_message ("%u writes, %u reported CANCELLED; wrong answers: %u cancelled but stored, "
                  "%u successful but missing, %u stored at another version than reported",
                  n, n_cancelled, n_cancelled_stored, n_ok_missing, n_ok_wrong_version);
  g_assert_cmpuint (n_cancelled_stored, ==, 0);
  g_assert_cmpuint (n_ok_missing, ==, 0);
  g_assert_cmpuint (n_ok_wrong_version, ==, 0);
  g_assert_cmpuint (events->len, ==, n - n_cancelled);
  /* Both outcomes happened: the test tested something. */
  g_assert_cmpuint (n_cancelled, >, 0);
  g_assert_cmpuint (n_cancelled, <, n);
}

static void
test_snapshot_cancel_random (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(EsStream) stream = open_stream (f, "cancel-snap");
  g_autofree Outcome *outcomes = NULL;
  guint n = MAX (cancel_test_size () / 2, 2);
  guint n_sync = n / 2;
  guint n_cancelled = 0, n_cancelled_stored = 0, n_ok_missing = 0;
  g_autoptr(GPtrArray) to_cancel = g_ptr_array_new_with_free_func (g_object_unref);
  guint in_flight = 0;
  guint next;
  Canceller canceller;

  g_test_summary ("Snapshots cancelled at random moments, synchronous and asynchronous: "
                  "every snapshot reported CANCELLED is absent, every other one stored");

  es_test_write_one (stream, "Added", NULL, NULL);
  outcomes = g_new0 (Outcome, n);
  canceller_start (&canceller);

  /* One projection per snapshot, so that each can be looked up. */
  for (guint i = 0; i < n_sync; i++)
    {
      g_autofree char *name = g_strdup_printf ("p%u", i);
      g_autoptr(GBytes) state = state_new (name);
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();
      g_autoptr(GError) error = NULL;
      CancelMode mode = (CancelMode) g_test_rand_int_range (CANCEL_NEVER, N_CANCEL_MODES);
      gboolean ok;

      if (mode == CANCEL_AFTER_CALL || mode == CANCEL_FROM_IDLE || mode == CANCEL_ON_COMPLETION)
        mode = CANCEL_FROM_THREAD;
      arrange_cancel (&canceller, cancellable, mode);
      ok = es_stream_snapshot (stream, state, -1, name, cancellable, &error);
      outcome_record (&outcomes[i], ok, 0, error);
    }

  next = n_sync;
  while (next < n || in_flight > 0)
    {
      while (next < n && in_flight < CANCEL_IN_FLIGHT)
        {
          g_autofree char *name = g_strdup_printf ("p%u", next);
          g_autoptr(GBytes) state = state_new (name);
          g_autoptr(GCancellable) cancellable = g_cancellable_new ();
          CancelMode mode = (CancelMode) g_test_rand_int_range (CANCEL_NEVER, N_CANCEL_MODES);

          outcomes[next].in_flight = &in_flight;
          outcomes[next].to_cancel = to_cancel;
          arrange_cancel (&canceller, cancellable, mode);
          es_stream_snapshot_async (stream, state, -1, name, cancellable,
                                    cancel_snapshot_done_cb, &outcomes[next]);
          if (mode == CANCEL_AFTER_CALL)
            g_cancellable_cancel (cancellable);
          else if (mode == CANCEL_ON_COMPLETION)
            g_ptr_array_add (to_cancel, g_object_ref (cancellable));
          in_flight++;
          next++;
        }
      g_main_context_iteration (NULL, TRUE);
    }
  canceller_stop (&canceller);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("p%u", i);
      g_autoptr(EsSnapshot) snapshot = NULL;
      g_autoptr(GError) error = NULL;

      snapshot = es_stream_load_snapshot (stream, name, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (outcomes[i].done);
      if (outcomes[i].cancelled)
        {
          n_cancelled++;
          if (snapshot != NULL)
            n_cancelled_stored++;
        }
      else if (snapshot == NULL)
        n_ok_missing++;
      else
        {
          g_autoptr(GBytes) state = state_new (name);

          g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));
          g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 1);
        }
    }

  g_test_message ("%u snapshots, %u reported CANCELLED; wrong answers: %u cancelled but "
                  "stored, %u successful but missing",
                  n, n_cancelled, n_cancelled_stored, n_ok_missing);
  g_assert_cmpuint (n_cancelled_stored, ==, 0);
  g_assert_cmpuint (n_ok_missing, ==, 0);
  g_assert_cmpuint (n_cancelled, >, 0);
  g_assert_cmpuint (n_cancelled, <, n);
}

/* ------------------------------------------------------------------ */

/* The backend given with --backend NAME, or NULL for all of them. */
static const char *only_backend = NULL;

void
add_test (const char  *name,
          FixtureFunc  func)
{
  for (guint i = 0; i < G_N_ELEMENTS (backends); i++)
    {
      g_autofree char *path = NULL;

      if (only_backend != NULL && !g_str_equal (only_backend, backends[i].name))
        continue;

      path = g_strdup_printf ("/conformance/%s/%s", backends[i].name, name);

      /* The server starts with the first postgres test; none: say why. */
      if (backends[i].backend == BACKEND_POSTGRES)
        {
          const char *reason = NULL;

          if (es_test_pg_server_get_conninfo (&reason) == NULL)
            {
              g_test_add_data_func (path, reason, es_test_skip_func);
              continue;
            }
        }

      g_test_add_vtable (path, sizeof (Fixture), &backends[i],
                         (GTestFixtureFunc) fixture_setup,
                         (GTestFixtureFunc) func,
                         (GTestFixtureFunc) fixture_teardown);
    }
}

/* The in-memory backend's notifier is an EsStorageNotifier with nothing
 * of its own: a third-party backend gets live watches from the public
 * kit alone. */
static void
memory_watch_event_cb (EsWatch       *watch,
                       EsStoredEvent *event,
                       gpointer       user_data)
{
  g_ptr_array_add (user_data, g_object_ref (event));
}

static void
test_memory_notifier_watch (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsTestMemoryStorage) storage = es_test_memory_storage_new ();
  g_autoptr(EsNotifier) notifier = es_test_memory_notifier_new (storage);
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(EsCandidateEvent) before = es_candidate_event_new ("Before", NULL);
  g_autoptr(EsCandidateEvent) after = es_candidate_event_new ("After", NULL);
  gint64 deadline;

  g_test_summary ("A backend written against the installed headers gets live watches from "
                  "an EsStorageNotifier subclass with no code of its own");

  g_assert_true (ES_IS_STORAGE_NOTIFIER (notifier));
  g_assert_true (es_notifier_start (notifier, NULL, &error));
  g_assert_no_error (error);
  factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage), notifier);
  stream = es_stream_factory_open_stream (factory, "m", NULL, &error);
  g_assert_no_error (error);
  es_stream_write (stream, &before, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);

  watch = es_stream_watch (stream, 0);
  g_assert_nonnull (watch);
  g_signal_connect (watch, "event", G_CALLBACK (memory_watch_event_cb), seen);

  /* Caught up on the history: what comes next comes through the notifier. */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!es_watch_get_caught_up (watch) && g_get_monotonic_time () < deadline)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  g_assert_true (es_watch_get_caught_up (watch));
  g_assert_cmpuint (seen->len, ==, 1);

  es_stream_write (stream, &after, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);

  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (seen->len < 2 && g_get_monotonic_time () < deadline)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  g_assert_cmpuint (seen->len, ==, 2);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (seen, 0)), ==, "Before");
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (seen, 1)), ==, "After");
  g_assert_cmpint (es_notifier_get_last_sequence_id (notifier), ==, 2);

  es_watch_stop (watch);
  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  /* GTest leaves options it does not know in argv. */
  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--backend") && i + 1 < argc)
        only_backend = argv[++i];
      else if (g_str_has_prefix (argv[i], "--backend="))
        only_backend = argv[i] + strlen ("--backend=");
    }
  if (only_backend != NULL)
    {
      gboolean known = FALSE;

      for (guint i = 0; i < G_N_ELEMENTS (backends); i++)
        known = known || g_str_equal (only_backend, backends[i].name);
      if (!known)
        g_error ("Unknown backend '%s': use sqlite-file, sqlite-memory, memory or postgres%s",
                 only_backend,
                 ES_TEST_HAS_POSTGRES ? "" : " (this build has no PostgreSQL backend)");
    }

  add_test ("write/returns-version", test_write_returns_version);
  add_test ("write/expected-any", test_write_expected_any);
  add_test ("write/expected-no-stream", test_write_expected_no_stream);
  add_test ("write/wrong-expected-version", test_write_wrong_expected_version);
  add_test ("write/expected-below-any", test_write_expected_below_any);
  add_test ("write/zero-events", test_write_zero_events);
  add_test ("write/idempotency-stored", test_write_idempotency_stored);
  add_test ("write/idempotency-in-batch", test_write_idempotency_in_batch);
  add_test ("write/idempotency-all-skipped", test_write_idempotency_all_skipped);
  add_test ("write/idempotency-per-stream", test_write_idempotency_per_stream);
  add_test ("write/to-all", test_write_to_all);
  add_test ("write/invalid-event-type-empty", test_write_invalid_event_type_empty);
  add_test ("write/invalid-event-type-utf8", test_write_invalid_event_type_utf8);
  add_test ("write/invalid-metadata-not-json", test_write_invalid_metadata_not_json);
  add_test ("write/invalid-metadata-lenient", test_write_invalid_metadata_lenient);
  add_test ("write/metadata-strict-accepted", test_write_metadata_strict_accepted);
  add_test ("write/invalid-metadata-array", test_write_invalid_metadata_array);
  add_test ("write/invalid-metadata-scalar", test_write_invalid_metadata_scalar);
  add_test ("write/invalid-stream-ids", test_write_invalid_stream_ids);
  add_test ("write/stream-id-1024", test_write_stream_id_1024);
  add_test ("write/metadata-verbatim", test_write_metadata_verbatim);
  add_test ("write/data-round-trip", test_write_data_round_trip);
  add_test ("write/candidate-batch", test_write_candidate_batch);
  add_test ("write/stored-fields", test_write_stored_fields);
  add_test ("write/timestamps", test_write_timestamps);
  add_test ("write/async", test_write_async);
  add_test ("write/cancelled", test_write_cancelled);
  add_test ("write/cancelled-async", test_write_cancelled_async);
  add_test ("write/concurrent-any", test_write_concurrent_any);
  add_test ("write/concurrent-expected", test_write_concurrent_expected);

  add_test ("read/after-version", test_read_after_version);
  add_test ("read/oldest-first", test_read_oldest_first);
  add_test ("read/all-stream", test_read_all_stream);
  add_test ("read/many-pages-next", test_read_many_pages_next);
  add_test ("read/many-pages-next-batch", test_read_many_pages_next_batch);
  add_test ("read/many-pages-next-batch-async", test_read_many_pages_next_batch_async);
  add_test ("read/async", test_read_async);
  add_test ("read/end-repeated", test_read_end_repeated);
  add_test ("read/enumerator-close", test_read_enumerator_close);
  add_test ("read/filter-stream-id", test_read_filter_stream_id);
  add_test ("read/filter-event-type", test_read_filter_event_type);
  add_test ("read/filter-version", test_read_filter_version);
  add_test ("read/filter-sequence-id", test_read_filter_sequence_id);
  add_test ("read/filter-metadata-string", test_read_filter_metadata_string);
  add_test ("read/filter-metadata-number", test_read_filter_metadata_number);
  add_test ("read/filter-metadata-bool", test_read_filter_metadata_bool);
  add_test ("read/filter-metadata-nested", test_read_filter_metadata_nested);
  add_test ("read/filter-in", test_read_filter_in);
  add_test ("read/filter-like", test_read_filter_like);
  add_test ("read/filter-and", test_read_filter_and);
  add_test ("read/filter-many-pages", test_read_filter_many_pages);
  add_test ("read/filter-invalid", test_read_filter_invalid);
  add_test ("read/filter-in-bound", test_read_filter_in_bound);
  add_test ("read/filter-in-huge", test_read_filter_in_huge);
  add_test ("read/filter-many-clauses", test_read_filter_many_clauses);
  add_test ("read/sql-metacharacters", test_read_sql_metacharacters);

  add_test ("snapshot/save-load", test_snapshot_save_load);
  add_test ("snapshot/current-version", test_snapshot_current_version);
  add_test ("snapshot/default-projection", test_snapshot_default_projection);
  add_test ("snapshot/named-projections", test_snapshot_named_projections);
  add_test ("snapshot/replace", test_snapshot_replace);
  add_test ("snapshot/none", test_snapshot_none);
  add_test ("snapshot/version-beyond", test_snapshot_version_beyond);
  add_test ("snapshot/version-below-any", test_snapshot_version_below_any);
  add_test ("snapshot/all-stream", test_snapshot_all_stream);
  add_test ("snapshot/async", test_snapshot_async);

  add_test ("metrics/stream", test_metrics_stream);
  add_test ("metrics/empty", test_metrics_empty);
  add_test ("metrics/all-stream", test_metrics_all_stream);
  add_test ("metrics/async", test_metrics_async);

  add_test ("factory/reopen", test_factory_reopen);
  add_test ("factory/open-async", test_factory_open_async);
  add_test ("factory/close-twice", test_factory_close_twice);
  add_test ("factory/closed-operations", test_factory_closed_operations);
  add_test ("factory/closed-enumerator", test_factory_closed_enumerator);
  add_test ("factory/close-async", test_factory_close_async);

  add_test ("cancel/write-random", test_write_cancel_random);
  add_test ("cancel/snapshot-random", test_snapshot_cancel_random);

  add_test ("retry/idempotent-replay", test_write_idempotent_replay);
  add_test ("retry/idempotent-replay-async", test_write_idempotent_replay_async);
  add_test ("retry/converges", test_write_retry_converges);
  add_test ("retry/converges-async", test_write_retry_converges_async);
  add_test ("retry/query-version", test_stream_query_version);
  add_test ("retry/storage-conflict-version", test_storage_conflict_version);

  if (only_backend == NULL || g_str_equal (only_backend, "memory"))
    g_test_add_func ("/conformance/memory/notifier/watch", test_memory_notifier_watch);
  add_watch_tests ();
  add_lifecycle_tests ();
  add_cursor_tests ();
  add_operations_tests ();
  add_subscription_tests ();
  add_metaindex_tests ();
  add_model_tests ();

  return g_test_run ();
}
