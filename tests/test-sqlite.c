/* test-sqlite.c: what only the SQLite backend promises.
 *
 * Persistence across factories, refusal of files that are not es-glib
 * databases (leaving them untouched), WAL mode, private in-memory
 * databases, construct properties, asynchronous construction, and a small
 * read pool under load. sqlite3 is used directly only to prepare files and
 * to inspect them, never in place of the library for what is checked.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

#include "es-test-utils.h"

typedef EsTestDbFixture Fixture;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static EsStreamFactory *
factory_new (const char *path)
{
  g_autoptr(GError) error = NULL;
  EsSqliteStreamFactory *factory;

  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (ES_IS_SQLITE_STREAM_FACTORY (factory));
  return ES_STREAM_FACTORY (factory);
}

/* Writes @n events of @size bytes of data each, in batches of 500. */
static void
write_events (EsStream *stream,
              guint     n,
              gsize     size)
{
  g_autofree char *payload = g_strnfill (size, 'p');
  guint written = 0;

  while (written < n)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
      g_autoptr(GError) error = NULL;

      for (guint i = 0; i < 500 && written + i < n; i++)
        {
          g_autoptr(GBytes) data = g_bytes_new (payload, size);
          g_autofree char *key = g_strdup_printf ("key-%u", written + i + 1);
          EsCandidateEvent *event = es_candidate_event_new ("Written", data);

          es_candidate_event_set_idempotency_key (event, key);
          es_candidate_event_set_metadata (event, "{\"n\": 1}");
          g_ptr_array_add (batch, event);
        }
      es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                       ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
      written += batch->len;
    }
}

static GBytes *
file_contents (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *contents = NULL;
  gsize length = 0;

  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);
  return g_bytes_new_take (contents, length);
}

static gint
compare_names (gconstpointer a,
               gconstpointer b)
{
  return g_strcmp0 (*(const char * const *) a, *(const char * const *) b);
}

/* The names in @dir, -wal and -shm files included. */
static char *
list_all (const char *dir_path)
{
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  dir = g_dir_open (dir_path, 0, NULL);
  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

/* Opening @path fails with ES_ERROR_STORAGE, synchronously and
 * asynchronously, and leaves the file's bytes and the directory as they
 * were, side files included. */
static void
assert_refused (Fixture    *f,
                const char *path)
{
  g_autoptr(GBytes) before = NULL;
  g_autoptr(GBytes) after = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *listing_before = list_all (f->tmpdir);
  g_autofree char *listing_after = NULL;
  gboolean is_file = g_file_test (path, G_FILE_TEST_IS_REGULAR);

  if (is_file)
    before = file_contents (path);

  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (factory);
  g_test_message ("Refused with: %s", error->message);

  if (is_file)
    {
      after = file_contents (path);
      g_assert_cmpmem (g_bytes_get_data (before, NULL), g_bytes_get_size (before),
                       g_bytes_get_data (after, NULL), g_bytes_get_size (after));
    }
  /* No -wal, -shm or -journal file either: a failed open removes what
   * it created. */
  listing_after = list_all (f->tmpdir);
  g_assert_cmpstr (listing_after, ==, listing_before);
}

static sqlite3 *
sqlite_open (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                   ==, SQLITE_OK);
  return db;
}

static void
sqlite_exec (sqlite3    *db,
             const char *sql)
{
  char *message = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s: %s", sql, message);
}

/* The first column of the first row of @sql, as text. */
static char *
sqlite_query_text (const char *path,
                   const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  char *text = NULL;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  text = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return text;
}

/* Creates an es-glib database at @path holding @n events in "s". */
static void
create_database (const char *path,
                 guint       n,
                 gsize       size)
{
  EsStreamFactory *factory = factory_new (path);
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "s");

  write_events (stream, n, size);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void
test_persist (Fixture       *f,
              gconstpointer  data)
{
  EsStreamFactory *factory;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) other = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("saved\0state", 11);
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;
  EsStoredEvent *event;

  g_test_summary ("A missing file is created; events, versions, ids, metadata and "
                  "snapshots persist after the factory is closed and the file reopened");

  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
  factory = factory_new (f->path);
  g_assert_true (g_file_test (f->path, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpstr (es_sqlite_stream_factory_get_path (ES_SQLITE_STREAM_FACTORY (factory)), ==,
                   f->path);

  stream = es_test_open_stream (factory, "persisted");
  other = es_test_open_stream (factory, "other");
  write_events (stream, 1200, 16);
  write_events (other, 3, 4);
  g_assert_true (es_stream_snapshot (stream, state, 1000, "proj", NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&stream);
  g_clear_object (&other);
  es_test_factory_close_and_free (factory);

  factory = factory_new (f->path);
  stream = es_test_open_stream (factory, "persisted");
  g_assert_cmpint (es_stream_get_version (stream), ==, 1200);

  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 1200);
  event = g_ptr_array_index (events, 1199);
  g_assert_cmpint (es_stored_event_get_version (event), ==, 1200);
  g_assert_cmpstr (es_stored_event_get_id (event), ==, "key-1200");
  g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "Written");
  g_assert_cmpstr (es_stored_event_get_metadata (event), ==, "{\"n\": 1}");
  g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (event)), ==, 16);

  snapshot = es_stream_load_snapshot (stream, "proj", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 1000);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));

  /* Idempotency keys persisted too: rewriting them writes nothing. */
  write_events (stream, 10, 16);
  g_clear_pointer (&events, g_ptr_array_unref);
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 1200);

  /* Sequence ids continue after the reopen. */
  {
    g_autoptr(EsStream) all = es_test_open_stream (factory, ES_ALL_STREAM);
    g_autoptr(EsStream) fresh = es_test_open_stream (factory, "after-reopen");
    g_autoptr(GPtrArray) everything = NULL;
    gint64 last = 0;

    write_events (fresh, 1, 1);
    everything = es_test_read_all_ok (all, 0, NULL);
    g_assert_cmpuint (everything->len, ==, 1204);
    for (guint i = 0; i < everything->len; i++)
      {
        gint64 seq = es_stored_event_get_sequence_id (g_ptr_array_index (everything, i));

        g_assert_cmpint (seq, >, last);
        last = seq;
      }
    g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (everything, 1203)), ==,
                     "after-reopen");
  }

  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

static void
test_close_leaves_one_file (Fixture       *f,
                            gconstpointer  data)
{
  EsStreamFactory *factory;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autofree char *wal = g_strconcat (f->path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (f->path, "-shm", NULL);

  g_test_summary ("Closing the factory checkpoints the WAL: only the database file remains");

  factory = factory_new (f->path);
  stream = es_test_open_stream (factory, "checkpointed");
  write_events (stream, 3000, 1000);
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 3000);
  g_assert_true (g_file_test (wal, G_FILE_TEST_EXISTS));
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  g_assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (shm, G_FILE_TEST_EXISTS));
}

static void
test_open_directory (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *dir = g_build_filename (f->tmpdir, "a-directory", NULL);

  g_test_summary ("Opening a directory fails with ES_ERROR_STORAGE");

  g_assert_no_errno (g_mkdir (dir, 0700));
  assert_refused (f, dir);
  g_assert_true (g_file_test (dir, G_FILE_TEST_IS_DIR));
}

static void
test_open_random_bytes (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  guint8 bytes[16384];

  g_test_summary ("Opening a file of random bytes fails with ES_ERROR_STORAGE and leaves "
                  "it untouched");

  for (guint i = 0; i < sizeof bytes; i++)
    bytes[i] = (guint8) g_rand_int_range (rand, 0, 256);
  g_file_set_contents (f->path, (const char *) bytes, sizeof bytes, &error);
  g_assert_no_error (error);

  assert_refused (f, f->path);
}

static void
test_open_text_file (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("Opening a small text file fails with ES_ERROR_STORAGE and leaves it "
                  "untouched");

  g_file_set_contents (f->path, "not a database\n", -1, &error);
  g_assert_no_error (error);

  assert_refused (f, f->path);
}

static void
test_open_foreign_database (Fixture       *f,
                            gconstpointer  data)
{
  sqlite3 *db;

  g_test_summary ("Opening a valid SQLite database of another application fails with "
                  "ES_ERROR_STORAGE and leaves it untouched");

  db = sqlite_open (f->path);
  sqlite_exec (db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                   "INSERT INTO customers (name) VALUES ('alice'), ('bob');"
                   "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER);");
  sqlite3_close (db);

  assert_refused (f, f->path);
}

static void
test_open_foreign_events_table (Fixture       *f,
                                gconstpointer  data)
{
  sqlite3 *db;

  g_test_summary ("A database of another application that happens to have an 'events' "
                  "table is not an es-glib database either");

  db = sqlite_open (f->path);
  sqlite_exec (db, "CREATE TABLE events (when_ TEXT, what TEXT);"
                   "INSERT INTO events VALUES ('today', 'party');");
  sqlite3_close (db);

  assert_refused (f, f->path);
}

static void
test_open_truncated (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *wal = g_strconcat (f->path, "-wal", NULL);
  GStatBuf st;
  sqlite3 *db;

  g_test_summary ("Opening an es-glib database truncated to half its size fails with "
                  "ES_ERROR_STORAGE");

  create_database (f->path, 3000, 1000);
  if (g_file_test (wal, G_FILE_TEST_EXISTS))
    g_test_message ("A WAL file was left after the factory was closed");

  /* Everything into the main file, so that truncating it loses data. */
  db = sqlite_open (f->path);
  sqlite_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close (db);
  g_assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));
  g_assert_no_errno (g_stat (f->path, &st));
  g_test_message ("database of %" G_GINT64_FORMAT " bytes", (gint64) st.st_size);
  g_assert_cmpint (st.st_size, >, 1000000);
  g_assert_no_errno (truncate (f->path, st.st_size / 2));

  factory = es_sqlite_stream_factory_new (f->path, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (factory);
}

static void
test_open_newer_schema (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *version = NULL;
  sqlite3 *db;

  g_test_summary ("Opening an es-glib database of a newer schema (PRAGMA user_version set "
                  "higher) fails with ES_ERROR_STORAGE and leaves it untouched");

  create_database (f->path, 10, 10);
  version = sqlite_query_text (f->path, "PRAGMA user_version");
  g_test_message ("user_version written by es-glib: %s", version);

  db = sqlite_open (f->path);
  sqlite_exec (db, "PRAGMA user_version = 1000000");
  sqlite3_close (db);

  assert_refused (f, f->path);
}

static void
test_open_empty_file (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autofree char *tables = NULL;
  EsStreamFactory *factory;

  g_test_summary ("An empty existing file is accepted and gets the schema");

  g_file_set_contents (f->path, "", 0, &error);
  g_assert_no_error (error);

  factory = factory_new (f->path);
  stream = es_test_open_stream (factory, "s");
  write_events (stream, 5, 3);
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 5);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  tables = sqlite_query_text (f->path,
                              "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
  g_assert_cmpint (g_ascii_strtoll (tables, NULL, 10), >, 0);

  /* And it opens again. */
  factory = factory_new (f->path);
  es_test_factory_close_and_free (factory);
}

static void
test_wal_mode (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(EsStream) stream = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *mode_after = NULL;
  EsStreamFactory *factory;

  g_test_summary ("The database file is in WAL mode");

  factory = factory_new (f->path);
  stream = es_test_open_stream (factory, "s");
  write_events (stream, 3, 3);

  mode = sqlite_query_text (f->path, "PRAGMA journal_mode");
  g_assert_cmpstr (mode, ==, "wal");

  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  mode_after = sqlite_query_text (f->path, "PRAGMA journal_mode");
  g_assert_cmpstr (mode_after, ==, "wal");
}

static void
test_memory_private (Fixture       *f,
                     gconstpointer  data)
{
  EsStreamFactory *first = factory_new (NULL);
  EsStreamFactory *second = factory_new (NULL);
  EsStreamFactory *third = factory_new (":memory:");
  g_autoptr(EsStream) s1 = es_test_open_stream (first, "s");
  g_autoptr(EsStream) s2 = NULL;
  g_autoptr(EsStream) all2 = NULL;
  g_autoptr(EsStream) all3 = NULL;
  g_autoptr(GPtrArray) events = NULL;

  g_test_summary ("In-memory factories (NULL or \":memory:\") are private: they share no "
                  "data, and leave no file behind");

  write_events (s1, 5, 3);
  events = es_test_read_all_ok (s1, 0, NULL);
  g_assert_cmpuint (events->len, ==, 5);
  g_clear_pointer (&events, g_ptr_array_unref);

  s2 = es_test_open_stream (second, "s");
  g_assert_cmpint (es_stream_get_version (s2), ==, 0);
  events = es_test_read_all_ok (s2, 0, NULL);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);

  all2 = es_test_open_stream (second, ES_ALL_STREAM);
  events = es_test_read_all_ok (all2, 0, NULL);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);

  all3 = es_test_open_stream (third, ES_ALL_STREAM);
  events = es_test_read_all_ok (all3, 0, NULL);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);

  /* Writing to the second does not show in the first. */
  write_events (s2, 2, 3);
  events = es_test_read_all_ok (s1, 0, NULL);
  g_assert_cmpuint (events->len, ==, 5);

  g_assert_false (g_file_test (":memory:", G_FILE_TEST_EXISTS));

  g_clear_object (&s1);
  g_clear_object (&s2);
  g_clear_object (&all2);
  g_clear_object (&all3);
  es_test_factory_close_and_free (first);
  es_test_factory_close_and_free (second);
  es_test_factory_close_and_free (third);
}

static void
test_properties (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autofree char *path = NULL;
  EsStreamFactory *factory;
  EsStreamFactory *defaults;
  EsStorageHandle *storage;
  guint pool_size = 0;
  guint cache_size = 0;
  guint polling = 0;

  g_test_summary ("The construct properties pool-size and cache-size-kib are honoured; "
                  "polling-interval defaults to 0, chosen by the notifier: 1000 ms "
                  "in memory, 1000 or 100 ms on a file");

  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                            "path", f->path,
                            "pool-size", 2,
                            "cache-size-kib", 4096,
                            "polling-interval", 50,
                            NULL);
  g_assert_no_error (error);
  g_assert_true (ES_IS_SQLITE_STREAM_FACTORY (factory));

  g_object_get (factory,
                "path", &path,
                "pool-size", &pool_size,
                "cache-size-kib", &cache_size,
                "polling-interval", &polling,
                NULL);
  g_assert_cmpstr (path, ==, f->path);
  g_assert_cmpuint (pool_size, ==, 2);
  g_assert_cmpuint (cache_size, ==, 4096);
  g_assert_cmpuint (polling, ==, 50);

  storage = es_stream_factory_get_storage (factory);
  g_assert_true (ES_IS_SQLITE_STORAGE (storage));
  g_assert_cmpuint (es_sqlite_storage_get_pool_size (ES_SQLITE_STORAGE (storage)), ==, 2);

  stream = es_test_open_stream (factory, "s");
  write_events (stream, 1500, 8);
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 1500);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  /* 0 by default: the notifier chooses; an in-memory database has no
   * other process to poll for. */
  defaults = factory_new (NULL);
  g_object_get (defaults, "polling-interval", &polling, "pool-size", &pool_size, NULL);
  g_assert_cmpuint (polling, ==, 0);
  g_assert_cmpuint (es_sqlite_notifier_get_polling_interval (
                      ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (defaults))), ==, 1000);
  g_assert_cmpuint (pool_size, >=, 1);
  es_test_factory_close_and_free (defaults);

  /* On a file: 1000 ms where the push path sees other processes (a local
   * file system on Linux), 100 ms elsewhere. */
  defaults = factory_new (f->path);
  g_object_get (defaults, "polling-interval", &polling, NULL);
  g_assert_cmpuint (polling, ==, 0);
  polling = es_sqlite_notifier_get_polling_interval (
    ES_SQLITE_NOTIFIER (es_stream_factory_get_notifier (defaults)));
#ifdef __linux__
  g_test_message ("default polling interval on this file system: %u ms", polling);
  g_assert_true (polling == 1000 || polling == 100);
#else
  g_assert_cmpuint (polling, ==, 100);
#endif
  es_test_factory_close_and_free (defaults);
}

/* The properties the factory passes on to its storage take the same
 * values in both: the same range and the same default. */
static void
test_property_limits (Fixture       *f,
                      gconstpointer  data)
{
  static const char * const shared[] = { "pool-size", "cache-size-kib" };
  g_autoptr(GTypeClass) storage_class = g_type_class_ref (ES_TYPE_SQLITE_STORAGE);
  g_autoptr(GTypeClass) factory_class = g_type_class_ref (ES_TYPE_SQLITE_STREAM_FACTORY);

  g_test_summary ("EsSqliteStorage and EsSqliteStreamFactory agree on the limits and "
                  "defaults of pool-size and cache-size-kib");

  for (guint i = 0; i < G_N_ELEMENTS (shared); i++)
    {
      GParamSpecUInt *in_storage = G_PARAM_SPEC_UINT (
        g_object_class_find_property (G_OBJECT_CLASS (storage_class), shared[i]));
      GParamSpecUInt *in_factory = G_PARAM_SPEC_UINT (
        g_object_class_find_property (G_OBJECT_CLASS (factory_class), shared[i]));

      g_test_message ("%s: storage %u..%u (%u), factory %u..%u (%u)", shared[i],
                      in_storage->minimum, in_storage->maximum, in_storage->default_value,
                      in_factory->minimum, in_factory->maximum, in_factory->default_value);
      g_assert_cmpuint (in_storage->minimum, ==, in_factory->minimum);
      g_assert_cmpuint (in_storage->maximum, ==, in_factory->maximum);
      g_assert_cmpuint (in_storage->default_value, ==, in_factory->default_value);
    }
}

static void
test_new_async (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autofree char *dir = g_build_filename (f->tmpdir, "a-directory", NULL);
  EsSqliteStreamFactory *factory;

  g_test_summary ("es_sqlite_stream_factory_new_async creates a working factory in the "
                  "caller's main context, and reports refusals there");

  create_database (f->path, 4, 4);

  es_sqlite_stream_factory_new_async (f->path, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  factory = es_sqlite_stream_factory_new_finish (result, &error);
  g_assert_no_error (error);
  g_assert_true (ES_IS_SQLITE_STREAM_FACTORY (factory));
  g_clear_object (&result);

  stream = es_test_open_stream (ES_STREAM_FACTORY (factory), "s");
  g_assert_cmpint (es_stream_get_version (stream), ==, 4);
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 4);
  g_clear_object (&stream);
  es_test_factory_close_and_free (ES_STREAM_FACTORY (factory));

  g_assert_no_errno (g_mkdir (dir, 0700));
  es_sqlite_stream_factory_new_async (dir, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  factory = es_sqlite_stream_factory_new_finish (result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (factory);
}

#define N_THREADS 8
#define ROUNDS 40

typedef struct
{
  EsStreamFactory *factory;
  guint            index;
  GMutex          *lock;
  GCond           *cond;
  guint           *done;
} ThreadData;

static gpointer
pool_thread (gpointer user_data)
{
  ThreadData *td = user_data;
  g_autofree char *stream_id = g_strdup_printf ("thread-%u", td->index % 4);
  g_autoptr(EsStream) stream = es_test_open_stream (td->factory, stream_id);
  g_autoptr(EsStream) all = es_test_open_stream (td->factory, ES_ALL_STREAM);

  for (guint round = 0; round < ROUNDS; round++)
    {
      g_autoptr(GError) error = NULL;

      if (td->index < 4)
        {
          /* Writers: small batches, plus a snapshot now and then. */
          g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Load", NULL);

          es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
          g_assert_no_error (error);
          if (round % 10 == 0)
            {
              g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);

              es_stream_snapshot (stream, state, -1, NULL, NULL, &error);
              g_assert_no_error (error);
            }
        }
      else
        {
          /* Readers: hold two enumerators at once, plus metrics. */
          g_autoptr(EsEventEnumerator) one = NULL;
          g_autoptr(EsEventEnumerator) two = NULL;
          g_autoptr(GPtrArray) batch = NULL;
          g_autoptr(EsStreamMetrics) metrics = NULL;
          g_autoptr(EsSnapshot) snapshot = NULL;

          one = es_stream_read (all, 0, NULL, NULL, &error);
          g_assert_no_error (error);
          two = es_stream_read (stream, 0, NULL, NULL, &error);
          g_assert_no_error (error);
          batch = es_event_enumerator_next_batch (one, 50, NULL, &error);
          g_assert_no_error (error);
          g_clear_pointer (&batch, g_ptr_array_unref);
          batch = es_event_enumerator_next_batch (two, 50, NULL, &error);
          g_assert_no_error (error);
          metrics = es_stream_get_metrics (all, NULL, &error);
          g_assert_no_error (error);
          snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
          g_assert_no_error (error);
        }
    }

  g_mutex_lock (td->lock);
  (*td->done)++;
  g_cond_signal (td->cond);
  g_mutex_unlock (td->lock);
  return NULL;
}

static void
test_threads_small_pool (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GPtrArray) events = NULL;
  EsStreamFactory *factory;
  ThreadData td[N_THREADS];
  GThread *threads[N_THREADS];
  GMutex lock;
  GCond cond;
  guint done = 0;
  gint64 deadline;

  g_test_summary ("8 threads reading and writing at once through a pool of 2 read "
                  "connections finish without deadlock");

  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                            "path", f->path, "pool-size", 2, NULL);
  g_assert_no_error (error);

  g_mutex_init (&lock);
  g_cond_init (&cond);
  for (guint t = 0; t < N_THREADS; t++)
    {
      td[t] = (ThreadData) { factory, t, &lock, &cond, &done };
      threads[t] = g_thread_new ("pool", pool_thread, &td[t]);
    }

  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  g_mutex_lock (&lock);
  while (done < N_THREADS)
    if (!g_cond_wait_until (&cond, &lock, deadline))
      break;
  g_mutex_unlock (&lock);
  if (done < N_THREADS)
    g_error ("Deadlock: only %u of %u threads finished within 60 s", done, N_THREADS);

  for (guint t = 0; t < N_THREADS; t++)
    g_thread_join (threads[t]);
  g_mutex_clear (&lock);
  g_cond_clear (&cond);

  all = es_test_open_stream (factory, ES_ALL_STREAM);
  events = es_test_read_all_ok (all, 0, NULL);
  g_assert_cmpuint (events->len, ==, 4 * ROUNDS);
  g_clear_object (&all);
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* Corruption                                                          */
/* ------------------------------------------------------------------ */

/* @error is the corruption error: ES_ERROR_STORAGE naming @path, saying
 * "corrupt" and how to check the file. */
static void
assert_corrupt_error (const GError *error,
                      const char   *path)
{
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_test_message ("Failed with: %s", error->message);
  g_assert_nonnull (strstr (error->message, "corrupt"));
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, "PRAGMA integrity_check"));
}

/* Builds a database of @n events of @size bytes in stream "s" at @path,
 * with everything in the main file, and returns its page size and page count. */
static void
create_checkpointed (const char *path,
                     guint       n,
                     gsize       size,
                     gint64     *page_size,
                     gint64     *n_pages)
{
  g_autofree char *page_size_text = NULL;
  g_autofree char *count = NULL;
  sqlite3 *db;

  create_database (path, n, size);
  db = sqlite_open (path);
  sqlite_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close (db);
  page_size_text = sqlite_query_text (path, "PRAGMA page_size");
  count = sqlite_query_text (path, "PRAGMA page_count");
  *page_size = g_ascii_strtoll (page_size_text, NULL, 10);
  *n_pages = g_ascii_strtoll (count, NULL, 10);
}

/* Overwrites the first @length bytes of page @page (1-based) with 0xA5. */
static void
smash_page (const char *path,
            gint64      page_size,
            gint64      page,
            gsize       length)
{
  guint8 garbage[512];
  FILE *file = fopen (path, "r+b");

  g_assert_nonnull (file);
  g_assert_cmpuint (length, <=, sizeof garbage);
  memset (garbage, 0xA5, sizeof garbage);
  g_assert_cmpint (fseek (file, (long) ((page - 1) * page_size), SEEK_SET), ==, 0);
  g_assert_cmpuint (fwrite (garbage, 1, length, file), ==, length);
  g_assert_cmpint (fclose (file), ==, 0);
}

typedef struct
{
  GError  *error;
  guint    n_events;
  gboolean done;
} WatchResult;

static void
corrupt_watch_event_cb (EsWatch       *watch,
                        EsStoredEvent *event,
                        gpointer       user_data)
{
  WatchResult *result = user_data;

  result->n_events++;
}

static void
corrupt_watch_error_cb (EsWatch      *watch,
                        const GError *error,
                        gpointer      user_data)
{
  WatchResult *result = user_data;

  g_assert_null (result->error);
  result->error = g_error_copy (error);
  result->done = TRUE;
  g_main_context_wakeup (NULL);
}

/* A write that reported success: it can be read back, or the read fails
 * with the corruption error (the stream's index pages are among the
 * damaged ones: SQLite found the slot to insert in, but a read of the
 * whole stream walks further). */
static void
assert_write_readable (EsStream   *stream,
                       gint64      after,
                       const char *path)
{
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStoredEvent) event = NULL;

  enumerator = es_stream_read (stream, after, NULL, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  if (error != NULL)
    {
      assert_corrupt_error (error, path);
      return;
    }
  g_assert_nonnull (event);
  g_assert_cmpint (es_stored_event_get_version (event), ==, after + 1);
  g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "AfterDamage");
}

/* Writes one event to @stream_id: it succeeds and can be read back, or
 * fails with the corruption error and writes nothing. Returns whether it
 * succeeded. */
static gboolean
write_after_damage (EsStreamFactory *factory,
                    const char      *stream_id,
                    const char      *path)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, stream_id);
  g_autoptr(EsCandidateEvent) event = NULL;
  g_autoptr(GBytes) data = g_bytes_new_static ("x", 1);
  g_autoptr(GError) error = NULL;
  gint64 before = es_stream_get_version (stream);
  gint64 version;

  event = es_candidate_event_new ("AfterDamage", data);
  version = es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  if (error != NULL)
    {
      assert_corrupt_error (error, path);
      g_assert_cmpint (version, ==, -1);
      g_test_message ("Write to %s failed", stream_id);
      return FALSE;
    }
  g_test_message ("Write to %s succeeded: version %" G_GINT64_FORMAT, stream_id, version);
  g_assert_cmpint (version, ==, before + 1);
  assert_write_readable (stream, before, path);
  return TRUE;
}

static void
test_corrupt_middle (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(EsSqliteStreamFactory) sqlite_factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("state", 5);
  g_autoptr(GError) error = NULL;
  g_autofree char *display = NULL;
  EsStreamFactory *factory;
  EsStoredEvent *event;
  WatchResult result = { NULL, 0, FALSE };
  gint64 page_size = 0;
  gint64 n_pages = 0;
  gint64 deadline;
  guint n_read = 0;

  g_test_summary ("A file with corrupt pages in the middle: every failure of open, read, "
                  "write, metrics, snapshot and watch is ES_ERROR_STORAGE saying the file "
                  "is corrupt and how to check it; writes that succeed can be read back; "
                  "nothing crashes or hangs");

  create_checkpointed (f->path, 20000, 200, &page_size, &n_pages);
  g_test_message ("%" G_GINT64_FORMAT " pages of %" G_GINT64_FORMAT " bytes",
                  n_pages, page_size);
  g_assert_cmpint (n_pages, >, 500);

  /* Every 5th page of the middle third: table and index pages alike. */
  for (gint64 page = n_pages / 3; page < 2 * n_pages / 3; page += 5)
    smash_page (f->path, page_size, page, 64);

  display = g_filename_display_name (f->path);
  sqlite_factory = es_sqlite_stream_factory_new (f->path, NULL, &error);
  if (sqlite_factory == NULL)
    {
      /* Allowed, with the right error; but the damage is far from the
       * pages the open reads, so say so. */
      assert_corrupt_error (error, display);
      g_test_message ("The open found the damage");
      return;
    }
  factory = ES_STREAM_FACTORY (sqlite_factory);
  stream = es_test_open_stream (factory, "s");
  all = es_test_open_stream (factory, ES_ALL_STREAM);

  /* Reading the whole stream reaches the damage. */
  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    {
      n_read++;
      g_object_unref (event);
    }
  g_test_message ("Read %u events before the damage", n_read);
  assert_corrupt_error (error, display);
  g_assert_cmpuint (n_read, <, 20000);
  g_clear_error (&error);
  g_clear_object (&enumerator);

  /* So does @all, with a filter too. */
  enumerator = es_stream_read (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    g_object_unref (event);
  assert_corrupt_error (error, display);
  g_clear_error (&error);
  g_clear_object (&enumerator);

  /* Metrics count events: they succeed (from intact pages) or fail alike. */
  metrics = es_stream_get_metrics (all, NULL, &error);
  if (metrics == NULL)
    assert_corrupt_error (error, display);
  else
    g_test_message ("@all metrics: %" G_GINT64_FORMAT " events",
                    es_stream_metrics_get_event_count (metrics));
  g_clear_error (&error);
  g_clear_object (&metrics);

  /* Writes: to the damaged stream and to new ones; each succeeds and is
   * readable, or fails with the corruption error. The writer thread goes
   * on either way. */
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *fresh = g_strdup_printf ("fresh-%u", i);

      write_after_damage (factory, "s", display);
      write_after_damage (factory, fresh, display);
    }

  /* Snapshots likewise. */
  if (es_stream_snapshot (stream, state, 1, "proj", NULL, &error))
    {
      snapshot = es_stream_load_snapshot (stream, "proj", NULL, &error);
      if (snapshot == NULL)
        assert_corrupt_error (error, display);
      else
        g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 1);
    }
  else
    assert_corrupt_error (error, display);
  g_clear_error (&error);

  /* A watch replaying the history reports the damage and stops. */
  watch = es_stream_watch (all, 0);
  g_signal_connect (watch, "event", G_CALLBACK (corrupt_watch_event_cb), &result);
  g_signal_connect (watch, "error", G_CALLBACK (corrupt_watch_error_cb), &result);
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (!result.done && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (result.done);
  assert_corrupt_error (result.error, display);
  g_assert_false (es_watch_get_active (watch));
  g_test_message ("The watch emitted %u events before the error", result.n_events);
  g_clear_error (&result.error);
  es_watch_stop (watch);

  /* Still usable and closes cleanly. */
  write_after_damage (factory, "last", display);
  g_clear_object (&stream);
  g_clear_object (&all);
  g_clear_object (&watch);
  es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&sqlite_factory)));
}

static void
test_corrupt_write_fails (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(EsSqliteStreamFactory) sqlite_factory = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStoredEvent) event = NULL;
  g_autoptr(EsCandidateEvent) candidate = NULL;
  g_autoptr(GBytes) bytes = g_bytes_new_static ("x", 1);
  g_autoptr(GError) error = NULL;
  g_autofree char *leaf = NULL;
  g_autofree char *display = NULL;
  EsStorageHandle *storage;
  gint64 page_size = 0;
  gint64 n_pages = 0;
  gint64 version = 0;

  g_test_summary ("A write that reaches a corrupt page fails with the corruption error "
                  "and writes nothing; the writer goes on, and a write to an intact part "
                  "of the file succeeds and reads back");

  create_checkpointed (f->path, 20000, 200, &page_size, &n_pages);
  /* The first leaf of the (stream_id, version) index: where a stream
   * sorting before "s" goes. */
  leaf = sqlite_query_text (f->path, "SELECT pageno FROM dbstat "
                                     "WHERE name = 'sqlite_autoindex_events_1' "
                                     "AND pagetype = 'leaf' ORDER BY path LIMIT 1");
  g_test_message ("Damaging index leaf page %s of %" G_GINT64_FORMAT, leaf, n_pages);
  smash_page (f->path, page_size, g_ascii_strtoll (leaf, NULL, 10), 64);

  display = g_filename_display_name (f->path);
  sqlite_factory = es_sqlite_stream_factory_new (f->path, NULL, &error);
  g_assert_no_error (error);
  all = es_test_open_stream (ES_STREAM_FACTORY (sqlite_factory), ES_ALL_STREAM);
  storage = es_stream_factory_get_storage (ES_STREAM_FACTORY (sqlite_factory));

  /* Opening stream "a" reads its version from the streams table (schema
   * version 2), which is intact: it works, at version 0. */
  {
    g_autoptr(EsStream) a = es_stream_factory_open_stream (ES_STREAM_FACTORY (sqlite_factory),
                                                           "a", NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (es_stream_get_version (a), ==, 0);
  }

  /* An append to it inserts into the damaged index page, below the stream
   * layer. */
  candidate = es_candidate_event_new ("AfterDamage", bytes);
  g_assert_false (es_storage_handle_append (storage, "a", ES_VERSION_ANY, &candidate, 1,
                                            &version, NULL, &error));
  assert_corrupt_error (error, display);
  g_clear_error (&error);

  /* Nothing of it was written: @all ends where it ended. */
  enumerator = es_stream_read (all, 20000, NULL, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (event);
  g_clear_object (&enumerator);

  /* The writer goes on: "s" sorts after the damage. */
  g_assert_true (write_after_damage (ES_STREAM_FACTORY (sqlite_factory), "s", display));
  enumerator = es_stream_read (all, 20000, NULL, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event);
  g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, "s");
  g_assert_cmpint (es_stored_event_get_version (event), ==, 20001);
  g_clear_object (&event);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (event);
  g_clear_object (&enumerator);

  /* And the damaged one still fails the same way, not otherwise. */
  g_assert_false (es_storage_handle_append (storage, "a", ES_VERSION_ANY, &candidate, 1,
                                            &version, NULL, &error));
  assert_corrupt_error (error, display);
  g_clear_error (&error);

  /* Asynchronous appends, which the writer commits in groups: the failing
   * ones write nothing, and every one reported done is stored. An append
   * to "s" committed in the same group as one to "a" may fail with it
   * (the whole transaction is rolled back), with the same error. */
  {
    GAsyncResult *results[40] = { NULL, };
    guint n_ok = 0;
    guint n_events = 0;

    for (guint i = 0; i < G_N_ELEMENTS (results); i++)
      es_storage_handle_append_async (storage, i % 2 ? "a" : "s", ES_VERSION_ANY, &candidate,
                                      1, NULL, es_test_store_result_cb, &results[i]);
    for (guint i = 0; i < G_N_ELEMENTS (results); i++)
      {
        es_test_wait_result (&results[i]);
        if (es_storage_handle_append_finish (storage, results[i], &version, &error))
          {
            g_assert_true (i % 2 == 0);
            n_ok++;
          }
        else
          {
            assert_corrupt_error (error, display);
            g_clear_error (&error);
          }
        g_clear_object (&results[i]);
      }
    g_test_message ("%u of %u asynchronous appends to \"s\" succeeded", n_ok,
                    (guint) G_N_ELEMENTS (results) / 2);

    enumerator = es_stream_read (all, 20001, NULL, NULL, &error);
    g_assert_no_error (error);
    while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
      {
        g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, "s");
        n_events++;
        g_clear_object (&event);
      }
    g_assert_no_error (error);
    g_assert_cmpuint (n_events, ==, n_ok);
    g_clear_object (&enumerator);
  }

  /* The writer is still there for the intact part. */
  g_assert_true (write_after_damage (ES_STREAM_FACTORY (sqlite_factory), "s", display));

  g_clear_object (&all);
  es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&sqlite_factory)));
}

static void
test_corrupt_at_open (Fixture       *f,
                      gconstpointer  data)
{
  gint64 page_size = 0;
  gint64 n_pages = 0;

  g_test_summary ("A file whose schema page is damaged fails to open with ES_ERROR_STORAGE "
                  "saying it is corrupt, and is left untouched");

  create_checkpointed (f->path, 2000, 200, &page_size, &n_pages);
  /* Page 1 after the 100-byte file header: the b-tree page of the
   * schema. */
  {
    guint8 garbage[200];
    FILE *file = fopen (f->path, "r+b");

    memset (garbage, 0xA5, sizeof garbage);
    g_assert_nonnull (file);
    g_assert_cmpint (fseek (file, 100, SEEK_SET), ==, 0);
    g_assert_cmpuint (fwrite (garbage, 1, sizeof garbage, file), ==, sizeof garbage);
    g_assert_cmpint (fclose (file), ==, 0);
  }

  assert_refused (f, f->path);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(EsSqliteStreamFactory) factory = NULL;
    g_autofree char *display = g_filename_display_name (f->path);

    factory = es_sqlite_stream_factory_new (f->path, NULL, &error);
    g_assert_null (factory);
    assert_corrupt_error (error, display);
  }
}

static void
test_corrupt_root_pages (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *root = NULL;
  gint64 page_size = 0;
  gint64 n_pages = 0;

  g_test_summary ("A file whose index root page is damaged fails to open (the open reads "
                  "the root and rightmost pages of every table and index), with "
                  "ES_ERROR_STORAGE saying it is corrupt, and is left untouched");

  create_checkpointed (f->path, 5000, 200, &page_size, &n_pages);
  root = sqlite_query_text (f->path, "SELECT rootpage FROM sqlite_master "
                                     "WHERE name = 'events_event_type'");
  smash_page (f->path, page_size, g_ascii_strtoll (root, NULL, 10), 64);

  assert_refused (f, f->path);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(EsSqliteStreamFactory) factory = NULL;
    g_autofree char *display = g_filename_display_name (f->path);

    factory = es_sqlite_stream_factory_new (f->path, NULL, &error);
    g_assert_null (factory);
    assert_corrupt_error (error, display);
  }
}

/* ------------------------------------------------------------------ */
/* Read-only                                                           */
/* ------------------------------------------------------------------ */

static EsSqliteStreamFactory *
read_only_factory_new (const char  *path,
                       GError     **error)
{
  return g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, error,
                         "path", path,
                         "read-only", TRUE,
                         "polling-interval", 20,
                         NULL);
}

/* Opening @path read-only fails with @code and leaves the file and the
 * directory as they were, -wal and -shm files included. */
static void
assert_read_only_refused (Fixture    *f,
                          const char *path,
                          gint        code)
{
  g_autoptr(GBytes) before = NULL;
  g_autoptr(GBytes) after = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *listing_before = NULL;
  g_autofree char *listing_after = NULL;

  listing_before = list_all (f->tmpdir);
  if (path != NULL && g_file_test (path, G_FILE_TEST_IS_REGULAR))
    before = file_contents (path);

  factory = read_only_factory_new (path, &error);
  g_assert_error (error, ES_ERROR, code);
  g_assert_null (factory);
  g_test_message ("Refused with: %s", error->message);

  if (before != NULL)
    {
      after = file_contents (path);
      g_assert_true (g_bytes_equal (before, after));
    }
  listing_after = list_all (f->tmpdir);
  g_assert_cmpstr (listing_after, ==, listing_before);
}

typedef struct
{
  guint    n_events;
  gboolean caught_up;
  GError  *error;
} ReadOnlyWatch;

static void
ro_event_cb (EsWatch       *watch,
             EsStoredEvent *event,
             gpointer       user_data)
{
  ReadOnlyWatch *w = user_data;

  w->n_events++;
  g_main_context_wakeup (NULL);
}

static void
ro_caught_up_cb (EsWatch  *watch,
                 gpointer  user_data)
{
  ReadOnlyWatch *w = user_data;

  w->caught_up = TRUE;
  g_main_context_wakeup (NULL);
}

static void
ro_error_cb (EsWatch      *watch,
             const GError *error,
             gpointer      user_data)
{
  ReadOnlyWatch *w = user_data;

  g_clear_error (&w->error);
  w->error = g_error_copy (error);
  g_main_context_wakeup (NULL);
}

static void
wait_watch (ReadOnlyWatch *w,
            guint          n_events)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  while ((w->n_events < n_events || !w->caught_up) && w->error == NULL &&
         g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  g_test_message ("watch: %u events, caught up: %d", w->n_events, w->caught_up);
  g_assert_no_error (w->error);
  g_assert_cmpuint (w->n_events, ==, n_events);
}

/* Reads, metrics, snapshot loads and a watch on a read-only factory over
 * the database at @path of @n events in "s" (and a snapshot "proj" at
 * version 1); writes and snapshots fail with INVALID_ARGUMENT naming the
 * file. */
static void
check_read_only_factory (EsStreamFactory *factory,
                         const char      *path,
                         guint            n)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "s");
  g_autoptr(EsStream) all = es_test_open_stream (factory, ES_ALL_STREAM);
  g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, 0, NULL);
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(EsCandidateEvent) event = NULL;
  g_autoptr(GBytes) data = g_bytes_new_static ("x", 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autofree char *display = g_filename_display_name (path);
  ReadOnlyWatch w = { 0, FALSE, NULL };
  gboolean read_only = FALSE;

  g_object_get (es_stream_factory_get_storage (factory), "read-only", &read_only, NULL);
  g_assert_true (read_only);
  g_object_get (factory, "read-only", &read_only, NULL);
  g_assert_true (read_only);

  g_assert_cmpuint (events->len, ==, n);
  g_assert_cmpint (es_stream_get_version (stream), ==, n);

  metrics = es_stream_get_metrics (all, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_metrics_get_event_count (metrics), ==, n);

  snapshot = es_stream_load_snapshot (stream, "proj", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 1);

  event = es_candidate_event_new ("Refused", data);
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "read-only"));
  g_assert_nonnull (strstr (error->message, display));
  g_clear_error (&error);

  g_assert_false (es_stream_snapshot (stream, data, 1, "other", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "read-only"));
  g_clear_error (&error);

  watch = es_stream_watch (all, 0);
  g_signal_connect (watch, "event", G_CALLBACK (ro_event_cb), &w);
  g_signal_connect (watch, "caught-up", G_CALLBACK (ro_caught_up_cb), &w);
  g_signal_connect (watch, "error", G_CALLBACK (ro_error_cb), &w);
  wait_watch (&w, n);
  es_watch_stop (watch);
}

/* Writes a snapshot "proj" at version 1 of "s" in the database at @path. */
static void
save_snapshot (const char *path)
{
  EsStreamFactory *factory = factory_new (path);
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "s");
  g_autoptr(GBytes) state = g_bytes_new_static ("state", 5);
  g_autoptr(GError) error = NULL;

  g_assert_true (es_stream_snapshot (stream, state, 1, "proj", NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

static void
test_read_only_property (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsSqliteStreamFactory) sqlite_factory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *foreign = g_build_filename (f->tmpdir, "foreign.db", NULL);
  g_autofree char *empty = g_build_filename (f->tmpdir, "empty.db", NULL);
  EsStreamFactory *writer;
  sqlite3 *db;

  g_test_summary ("read-only: reads, metrics, snapshot loads and watches work, also while "
                  "another factory writes; writes and snapshots fail with INVALID_ARGUMENT; "
                  "a missing, empty or foreign file is refused untouched; no file is left "
                  "behind");

  /* Refused: missing (not created), empty, foreign, in memory. */
  assert_read_only_refused (f, f->path, ES_ERROR_STORAGE);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_set_contents (empty, "", 0, NULL));
  assert_read_only_refused (f, empty, ES_ERROR_STORAGE);
  db = sqlite_open (foreign);
  sqlite_exec (db, "PRAGMA journal_mode = WAL; CREATE TABLE t (a); INSERT INTO t VALUES (1);");
  sqlite3_close (db);
  assert_read_only_refused (f, foreign, ES_ERROR_STORAGE);
  sqlite_factory = read_only_factory_new (NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_null (sqlite_factory);
  g_clear_error (&error);
  g_assert_no_errno (g_remove (empty));
  g_assert_no_errno (g_remove (foreign));

  /* A closed database. */
  create_database (f->path, 50, 10);
  save_snapshot (f->path);
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_clear_pointer (&listing, g_free);

  sqlite_factory = read_only_factory_new (f->path, &error);
  g_assert_no_error (error);
  check_read_only_factory (ES_STREAM_FACTORY (sqlite_factory), f->path, 50);
  es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&sqlite_factory)));
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_clear_pointer (&listing, g_free);

  /* Next to a writer: the reader sees its commits, live. */
  writer = factory_new (f->path);
  sqlite_factory = read_only_factory_new (f->path, &error);
  g_assert_no_error (error);
  check_read_only_factory (ES_STREAM_FACTORY (sqlite_factory), f->path, 50);
  {
    g_autoptr(EsStream) all = es_test_open_stream (ES_STREAM_FACTORY (sqlite_factory), ES_ALL_STREAM);
    g_autoptr(EsStream) stream = es_test_open_stream (writer, "t");
    g_autoptr(EsWatch) watch = es_stream_watch (all, 50);
    ReadOnlyWatch w = { 0, FALSE, NULL };

    g_signal_connect (watch, "event", G_CALLBACK (ro_event_cb), &w);
    g_signal_connect (watch, "caught-up", G_CALLBACK (ro_caught_up_cb), &w);
    g_signal_connect (watch, "error", G_CALLBACK (ro_error_cb), &w);
    write_events (stream, 5, 10);
    wait_watch (&w, 5);
    es_watch_stop (watch);
  }
  es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&sqlite_factory)));
  es_test_factory_close_and_free (writer);
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
}

/* A read-only factory removes at close the -wal and -shm its open created,
 * but only when no other connection uses them: removing them under a
 * writer that has not committed yet would send its commits to an unlinked
 * -wal, lost to every later open. */
static void
test_read_only_keeps_shared_files (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(EsSqliteStreamFactory) reader = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) other = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *count = NULL;
  g_autofree char *wal = g_strconcat (f->path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (f->path, "-shm", NULL);
  g_autofree char *sqlite3_cli = g_find_program_in_path ("sqlite3");
  EsStreamFactory *writer;

  g_test_summary ("A read-only factory leaves the -wal and -shm it created when a writer "
                  "of this process or a connection of another process uses them");

  create_database (f->path, 50, 10);

  /* This process: the reader creates the side files, a writer opens
   * them, the reader closes, then the writer commits. */
  reader = read_only_factory_new (f->path, &error);
  g_assert_no_error (error);
  g_assert_true (g_file_test (shm, G_FILE_TEST_EXISTS));
  writer = factory_new (f->path);
  es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&reader)));
  g_assert_true (g_file_test (wal, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (shm, G_FILE_TEST_EXISTS));
  {
    g_autoptr(EsStream) stream = es_test_open_stream (writer, "t");

    write_events (stream, 5, 10);
  }
  /* Read by a connection of its own while the writer still has the
   * file open: the commits are in the -wal every open sees. */
  count = sqlite_query_text (f->path, "SELECT count(*) FROM events");
  g_assert_cmpstr (count, ==, "55");
  es_test_factory_close_and_free (writer);
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_clear_pointer (&listing, g_free);

  /* Another process holds the database open (the sqlite3 shell, reading
   * its commands from a pipe that stays open). */
  if (sqlite3_cli == NULL)
    {
      g_test_skip ("the sqlite3 shell is not installed");
      return;
    }
  reader = read_only_factory_new (f->path, &error);
  g_assert_no_error (error);
  other = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                            &error, sqlite3_cli, f->path, NULL);
  g_assert_no_error (error);
  {
    GOutputStream *in = g_subprocess_get_stdin_pipe (other);
    g_autoptr(GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (other));
    static const char query[] = "SELECT count(*) FROM events;\n";
    g_autofree char *line = NULL;

    g_output_stream_write_all (in, query, sizeof query - 1, NULL, NULL, &error);
    g_assert_no_error (error);
    line = g_data_input_stream_read_line (out, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (line, ==, "55");

    es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&reader)));
    g_assert_true (g_file_test (wal, G_FILE_TEST_EXISTS));
    g_assert_true (g_file_test (shm, G_FILE_TEST_EXISTS));

    g_output_stream_close (in, NULL, &error);
    g_assert_no_error (error);
  }
  g_subprocess_wait_check (other, NULL, &error);
  g_assert_no_error (error);
}

/* The unprivileged half of test_read_only_unprivileged(), as nobody in
 * a directory of its own. */
static void
read_only_unprivileged_scenario (Fixture *f)
{
  g_autoptr(EsSqliteStreamFactory) sqlite_factory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *listing = NULL;

  create_database (f->path, 30, 10);
  save_snapshot (f->path);
  g_assert_no_errno (g_chmod (f->path, 0444));
  g_assert_cmpint (access (f->path, W_OK), !=, 0);
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_clear_pointer (&listing, g_free);

  /* A writable open fails, and leaves no -wal or -shm behind. */
  sqlite_factory = es_sqlite_stream_factory_new (f->path, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (sqlite_factory);
  g_test_message ("Writable open refused with: %s", error->message);
  g_clear_error (&error);
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_clear_pointer (&listing, g_free);

  /* A read-only open works, and leaves nothing behind either. */
  sqlite_factory = read_only_factory_new (f->path, &error);
  g_assert_no_error (error);
  check_read_only_factory (ES_STREAM_FACTORY (sqlite_factory), f->path, 30);
  es_test_factory_close_and_free (ES_STREAM_FACTORY (g_steal_pointer (&sqlite_factory)));
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_clear_pointer (&listing, g_free);

  /* So a writable open works once the file may be written again. */
  g_assert_no_errno (g_chmod (f->path, 0644));
  {
    EsStreamFactory *factory = factory_new (f->path);
    g_autoptr(EsStream) stream = es_test_open_stream (factory, "t");

    write_events (stream, 1, 10);
    g_clear_object (&stream);
    es_test_factory_close_and_free (factory);
  }

  /* In a directory it cannot write, without -shm: refused, saying why. */
  g_assert_no_errno (g_chmod (f->path, 0444));
  g_assert_no_errno (g_chmod (f->tmpdir, 0555));
  sqlite_factory = read_only_factory_new (f->path, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (sqlite_factory);
  g_test_message ("Read-only open in a read-only directory refused with: %s", error->message);
  g_assert_nonnull (strstr (error->message, "-shm"));
  g_clear_error (&error);
  listing = list_all (f->tmpdir);
  g_assert_cmpstr (listing, ==, "events.db");
  g_assert_no_errno (g_chmod (f->tmpdir, 0755));
}

static void
test_read_only_unprivileged (Fixture       *f,
                             gconstpointer  data)
{
  g_test_summary ("As a user who cannot write the file (0444, not root): a writable open "
                  "fails and leaves no -wal/-shm behind; a read-only open reads, loads "
                  "snapshots and watches, refuses writes, and leaves nothing behind; a "
                  "read-only directory without -shm is refused with a clear error");

  if (getuid () != 0)
    {
      read_only_unprivileged_scenario (f);
      return;
    }

  if (g_test_subprocess ())
    {
      /* Root ignores permission bits: become nobody, in a directory of
       * nobody's. */
      if (chown (f->tmpdir, 65534, 65534) != 0 || setgroups (0, NULL) != 0 ||
          setgid (65534) != 0 || setuid (65534) != 0)
        {
          g_test_skip ("Cannot drop privileges to uid 65534");
          return;
        }
      read_only_unprivileged_scenario (f);
      return;
    }

  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(name, func) \
  g_test_add ("/sqlite/" name, Fixture, NULL, \
              es_test_db_fixture_setup, func, es_test_db_fixture_teardown)

  ADD ("persist", test_persist);
  ADD ("close-leaves-one-file", test_close_leaves_one_file);
  ADD ("open-directory", test_open_directory);
  ADD ("open-random-bytes", test_open_random_bytes);
  ADD ("open-text-file", test_open_text_file);
  ADD ("open-foreign-database", test_open_foreign_database);
  ADD ("open-foreign-events-table", test_open_foreign_events_table);
  ADD ("open-truncated", test_open_truncated);
  ADD ("open-newer-schema", test_open_newer_schema);
  ADD ("open-empty-file", test_open_empty_file);
  ADD ("wal-mode", test_wal_mode);
  ADD ("memory-private", test_memory_private);
  ADD ("properties", test_properties);
  ADD ("property-limits", test_property_limits);
  ADD ("new-async", test_new_async);
  ADD ("threads-small-pool", test_threads_small_pool);
  ADD ("corrupt-middle", test_corrupt_middle);
  ADD ("corrupt-write-fails", test_corrupt_write_fails);
  ADD ("corrupt-at-open", test_corrupt_at_open);
  ADD ("corrupt-root-pages", test_corrupt_root_pages);
  ADD ("read-only-property", test_read_only_property);
  ADD ("read-only-unprivileged", test_read_only_unprivileged);
  ADD ("read-only-keeps-shared-files", test_read_only_keeps_shared_files);

#undef ADD

  return g_test_run ();
}
