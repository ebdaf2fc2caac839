/* test-sqlite-lifecycle.c: what only the SQLite backend promises about
 * the life cycle of streams (issue 16): deleted and erased bytes are gone
 * from the file and its WAL, compaction gives space back (incremental
 * files and files from before 0.2), a schema-1 file is upgraded with
 * everything in it, sequence ids are never used twice, and the reads use
 * their indexes. The rules every backend follows are in
 * test-conformance-lifecycle.c. sqlite3 is used directly only to prepare
 * and inspect files.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE  /* memmem */
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

#include "es-test-utils.h"

typedef EsTestDbFixture Fixture;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Every event of @stream_id (NULL: @all) through the storage, forwards. */
static GPtrArray *
read_all (EsStorageHandle *storage,
          const char      *stream_id,
          EsReadFlags      flags)
{
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func (g_object_unref);
  gint64 position = 0;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (storage, stream_id, position,
                                                                    flags, NULL, 100, NULL,
                                                                    &error);

      g_assert_no_error (error);
      if (page->len == 0)
        break;
      for (guint i = 0; i < page->len; i++)
        g_ptr_array_add (all, g_object_ref (g_ptr_array_index (page, i)));
      position = stream_id != NULL
        ? es_stored_event_get_version (g_ptr_array_index (page, page->len - 1))
        : es_stored_event_get_sequence_id (g_ptr_array_index (page, page->len - 1));
    }
  return g_steal_pointer (&all);
}

static EsStreamInfo *
info_of (EsStorageHandle *storage,
         const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  EsStreamInfo *info = es_storage_handle_get_stream_info (storage, stream_id, NULL, &error);

  g_assert_no_error (error);
  return info;
}

static void
sqlite_exec (sqlite3    *db,
             const char *sql)
{
  char *message = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s: %s", sql, message);
}

/* Copies the WAL into the file and empties it, from another connection,
 * as any reader of the file could. */
static void
checkpoint (const char *path)
{
  sqlite3 *db = es_test_sqlite_open (path);

  sqlite_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close (db);
}

/* Whether @needle appears in the file @path (absent file: no). */
static gboolean
file_contains (const char *path,
               const char *needle)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &contents, &length, NULL))
    return FALSE;
  return memmem (contents, length, needle, strlen (needle)) != NULL;
}

static gboolean
db_or_wal_contains (const char *path,
                    const char *needle)
{
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);

  return file_contains (path, needle) || file_contains (wal, needle);
}

static gint64
file_size (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_size;
}

/* ------------------------------------------------------------------ */
/* Bytes gone                                                          */
/* ------------------------------------------------------------------ */

static void
test_deleted_bytes_gone (Fixture       *f,
                         gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) kept = NULL;
  g_autofree char *big = NULL;
  g_autofree char *filler = NULL;

  g_test_summary ("The data and metadata of a soft-deleted, a hard-deleted, a truncated "
                  "and an erased event are overwritten in the file and gone from its WAL, "
                  "small and spilling onto overflow pages alike; other events stay");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "keep", 3, "Happened", "KEEP-ME-DATA",
                            "{\"note\": \"KEEP-ME-META\"}");
  es_test_storage_append_n (storage, "soft", 2, "Happened", "SOFT-SECRET-DATA",
                            "{\"note\": \"SOFT-SECRET-META\"}");
  es_test_storage_append_n (storage, "hard", 2, "Happened", "HARD-SECRET-DATA",
                            "{\"note\": \"HARD-SECRET-META\"}");
  /* Over a page: the data lives on overflow pages. */
  filler = g_strnfill (9000, 'b');
  big = g_strdup_printf ("BIG-SECRET-DATA%s", filler);
  es_test_storage_append_n (storage, "big", 1, "Happened", big, NULL);
  es_test_storage_append_n (storage, "trunc", 1, "Happened", "TRUNC-SECRET-DATA",
                            "{\"note\": \"TRUNC-SECRET-META\"}");
  es_test_storage_append_n (storage, "trunc", 1, "Happened", "TRUNC-KEPT-DATA", NULL);
  es_test_storage_append_n (storage, "erase", 1, "Happened", "ERASE-SECRET-DATA",
                            "{\"note\": \"ERASE-SECRET-META\"}");
  es_test_storage_append_n (storage, "erase", 1, "Happened", "ERASE-KEPT-DATA", NULL);
  g_free (big);
  big = g_strdup_printf ("ERASEBIG-SECRET-DATA%s", filler);
  es_test_storage_append_n (storage, "erase", 1, "Happened", big, NULL);

  /* Everything is in the file to begin with, so the test can fail. */
  checkpoint (f->path);
  g_assert_true (db_or_wal_contains (f->path, "SOFT-SECRET-DATA"));
  g_assert_true (db_or_wal_contains (f->path, "SOFT-SECRET-META"));
  g_assert_true (db_or_wal_contains (f->path, "HARD-SECRET-META"));
  g_assert_true (db_or_wal_contains (f->path, "BIG-SECRET-DATA"));
  g_assert_true (db_or_wal_contains (f->path, "TRUNC-SECRET-META"));
  g_assert_true (db_or_wal_contains (f->path, "ERASE-SECRET-DATA"));
  g_assert_true (db_or_wal_contains (f->path, "ERASE-SECRET-META"));
  g_assert_true (db_or_wal_contains (f->path, "ERASEBIG-SECRET-DATA"));

  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "soft", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "hard", 2, ES_DELETE_FLAGS_TOMBSTONE,
                                                      NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "big", 1, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_truncate_stream (storage, "trunc", 2, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_erase_event (storage, "erase", 1, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_erase_event (storage, "erase", 3, NULL, &error));

  /* While the storage is open, and after it closed. */
  checkpoint (f->path);
  for (guint round = 0; round < 2; round++)
    {
      const char *gone[] = { "SOFT-SECRET-DATA", "SOFT-SECRET-META", "HARD-SECRET-DATA",
                             "HARD-SECRET-META", "BIG-SECRET-DATA", "bbbbbbbbbbbbbbbbbbbbbbbb",
                             "TRUNC-SECRET-DATA", "TRUNC-SECRET-META", "ERASE-SECRET-DATA",
                             "ERASE-SECRET-META", "ERASEBIG-SECRET-DATA" };

      for (guint i = 0; i < G_N_ELEMENTS (gone); i++)
        if (db_or_wal_contains (f->path, gone[i]))
          g_error ("%s is still in the database file or its WAL", gone[i]);
      g_assert_true (db_or_wal_contains (f->path, "KEEP-ME-DATA"));
      g_assert_true (db_or_wal_contains (f->path, "KEEP-ME-META"));
      g_assert_true (db_or_wal_contains (f->path, "TRUNC-KEPT-DATA"));
      g_assert_true (db_or_wal_contains (f->path, "ERASE-KEPT-DATA"));

      if (round == 0)
        es_test_storage_close (storage);
    }

  /* What the library reads back agrees. */
  storage = es_test_sqlite_storage_open (f->path, FALSE);
  kept = read_all (storage, NULL, ES_READ_FLAGS_NONE);
  g_assert_cmpuint (kept->len, ==, 3 + 1 + 3);
  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Compaction                                                          */
/* ------------------------------------------------------------------ */

/* Fills @stream_id with @n events of about 1 KiB. */
static void
fill (EsStorageHandle *storage,
      const char      *stream_id,
      guint            n)
{
  g_autofree char *payload = g_strnfill (1000, 'z');

  for (guint i = 0; i < n; i += 100)
    es_test_storage_append_n (storage, stream_id, 100, "Happened", payload, NULL);
}

static void
test_compact_incremental (Fixture       *f,
                          gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = NULL;
  gint64 full, after_delete, compacted;

  g_test_summary ("A new file is in incremental auto-vacuum mode; deleting a big stream "
                  "and compacting shrinks it, and the rest is intact");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA auto_vacuum"), ==, 2);
  fill (storage, "small", 100);
  fill (storage, "big", 3000);
  checkpoint (f->path);
  full = file_size (f->path);

  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "big", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_no_error (error);
  checkpoint (f->path);
  after_delete = file_size (f->path);

  ES_TEST_ASSERT_OK (es_storage_handle_compact (storage, NULL, &error));
  g_assert_no_error (error);
  checkpoint (f->path);
  compacted = file_size (f->path);
  g_test_message ("file: %" G_GINT64_FORMAT " bytes full, %" G_GINT64_FORMAT " after the "
                  "delete, %" G_GINT64_FORMAT " compacted", full, after_delete, compacted);

  g_assert_cmpint (after_delete, >=, full * 9 / 10);  /* the delete alone frees pages */
  g_assert_cmpint (compacted, <, full / 10);
  info = info_of (storage, "small");
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 100);
  g_clear_object (&info);
  info = info_of (storage, "big");
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 3000);
  g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_DELETED);
  es_test_storage_close (storage);

  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA integrity_check = 1") , ==, 0);
}

/* The schema of es-glib 0.1 (schema version 1), as it created files. */
static const char schema_v1[] =
  "CREATE TABLE events ("
  "  sequence_id     INTEGER PRIMARY KEY,"
  "  stream_id       TEXT    NOT NULL,"
  "  version         INTEGER NOT NULL,"
  "  idempotency_key TEXT,"
  "  event_type      TEXT    NOT NULL,"
  "  timestamp       INTEGER NOT NULL,"
  "  data            BLOB    NOT NULL,"
  "  metadata        TEXT,"
  "  UNIQUE (stream_id, version)"
  ");"
  "CREATE UNIQUE INDEX events_idempotency_key ON events (stream_id, idempotency_key)"
  "  WHERE idempotency_key IS NOT NULL;"
  "CREATE INDEX events_event_type ON events (event_type, sequence_id);"
  "CREATE TABLE snapshots ("
  "  stream_id       TEXT    NOT NULL,"
  "  projection_name TEXT    NOT NULL,"
  "  version         INTEGER NOT NULL,"
  "  state           BLOB    NOT NULL,"
  "  timestamp       INTEGER NOT NULL,"
  "  PRIMARY KEY (stream_id, projection_name)"
  ") WITHOUT ROWID;"
  "PRAGMA application_id = 1163085617;"  /* 0x45534731, "ESG1" */
  "PRAGMA user_version = 1;";

#define V1_BASE_TIME G_GINT64_CONSTANT (1700000000000000)

/* Writes a schema-1 file as es-glib 0.1 did: events of streams "a" (3),
 * "b" (2), "c" (1) interleaved, plus @n_filler events of "filler" with
 * @filler_size bytes each, and a snapshot of "a". Timestamps are
 * V1_BASE_TIME + sequence id seconds. */
static void
create_v1_file (const char *path,
                guint       n_filler,
                gsize       filler_size)
{
  sqlite3 *db = es_test_sqlite_open (path);
  sqlite3_stmt *stmt = NULL;
  const char *order[] = { "a", "b", "a", "c", "b", "a" };
  g_autofree char *filler = g_strnfill (filler_size, 'f');
  gint64 versions[3] = { 0, 0, 0 };
  gint64 sequence_id = 0;

  sqlite_exec (db, "PRAGMA journal_mode = WAL");
  sqlite_exec (db, schema_v1);
  sqlite_exec (db, "BEGIN");
  g_assert_cmpint (sqlite3_prepare_v2 (db,
                                       "INSERT INTO events (stream_id, version, idempotency_key,"
                                       " event_type, timestamp, data, metadata)"
                                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       -1, &stmt, NULL), ==, SQLITE_OK);
  for (guint i = 0; i < G_N_ELEMENTS (order); i++)
    {
      gint64 version = ++versions[order[i][0] - 'a'];
      g_autofree char *key = g_strdup_printf ("key-%s-%" G_GINT64_FORMAT, order[i], version);
      g_autofree char *payload = g_strdup_printf ("{\"n\": %u}", i);

      sequence_id++;
      sqlite3_bind_text (stmt, 1, order[i], -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, version);
      sqlite3_bind_text (stmt, 3, key, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 4, "Old", -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 5, V1_BASE_TIME + sequence_id * G_USEC_PER_SEC);
      sqlite3_bind_blob (stmt, 6, payload, strlen (payload), SQLITE_STATIC);
      sqlite3_bind_text (stmt, 7, "{\"who\": \"v1\"}", -1, SQLITE_STATIC);
      g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
      sqlite3_reset (stmt);
    }
  for (guint i = 0; i < n_filler; i++)
    {
      sequence_id++;
      sqlite3_bind_text (stmt, 1, "filler", -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, i + 1);
      sqlite3_bind_null (stmt, 3);
      sqlite3_bind_text (stmt, 4, "Filler", -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 5, V1_BASE_TIME + sequence_id * G_USEC_PER_SEC);
      sqlite3_bind_blob (stmt, 6, filler, filler_size, SQLITE_STATIC);
      sqlite3_bind_null (stmt, 7);
      g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
      sqlite3_reset (stmt);
    }
  sqlite3_finalize (stmt);
  sqlite_exec (db, "INSERT INTO snapshots VALUES ('a', 'proj', 2, x'01', 0)");
  sqlite_exec (db, "COMMIT");
  sqlite_exec (db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close (db);
}

static void
test_compact_old_file (Fixture       *f,
                       gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;
  gint64 full, compacted;

  g_test_summary ("A file from before 0.2 (no auto-vacuum) is compacted with VACUUM, "
                  "which shrinks it and switches it to incremental mode");

  create_v1_file (f->path, 3000, 1000);
  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA auto_vacuum"), ==, 0);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  checkpoint (f->path);
  full = file_size (f->path);
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "filler", 3000,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_no_error (error);
  ES_TEST_ASSERT_OK (es_storage_handle_compact (storage, NULL, &error));
  g_assert_no_error (error);
  checkpoint (f->path);
  compacted = file_size (f->path);
  g_test_message ("v1 file: %" G_GINT64_FORMAT " bytes, %" G_GINT64_FORMAT " compacted",
                  full, compacted);
  g_assert_cmpint (compacted, <, full / 10);
  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA auto_vacuum"), ==, 2);

  events = read_all (storage, NULL, ES_READ_FLAGS_NONE);
  g_assert_cmpuint (events->len, ==, 6);
  es_test_storage_close (storage);

  /* A second compaction takes the incremental path, and works too. */
  storage = es_test_sqlite_storage_open (f->path, FALSE);
  ES_TEST_ASSERT_OK (es_storage_handle_compact (storage, NULL, &error));
  g_assert_no_error (error);
  es_test_storage_close (storage);
  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA auto_vacuum"), ==, 2);
}

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

static void
assert_info (EsStreamInfo *info,
             const char   *stream_id,
             gint64        version,
             gint64        count,
             gint64        first_version,
             gint64        first_timestamp,
             gint64        last_timestamp)
{
  g_assert_cmpstr (es_stream_info_get_stream_id (info), ==, stream_id);
  g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_ACTIVE);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, version);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, count);
  g_assert_cmpint (es_stream_info_get_first_version (info), ==, first_version);
  g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), ==, first_timestamp);
  g_assert_cmpint (es_stream_info_get_last_timestamp_usec (info), ==, last_timestamp);
}

static void
test_migration_v1 (Fixture       *f,
                   gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) listed = NULL;
  g_autoptr(EsStreamInfo) info = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  const char *expected_streams[] = { "a", "b", "a", "c", "b", "a" };
  const gint64 expected_versions[] = { 1, 1, 2, 1, 2, 3 };
  gint64 version = 0;

  g_test_summary ("A schema-1 file is upgraded when opened: every event reads back as "
                  "it was, stream information and listing come from the new streams "
                  "table, and appends continue the versions with new sequence ids");

  create_v1_file (f->path, 0, 0);
  storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA user_version"), ==, 3);

  events = read_all (storage, NULL, ES_READ_FLAGS_NONE);
  g_assert_cmpuint (events->len, ==, 6);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);
      g_autofree char *key = g_strdup_printf ("key-%s-%" G_GINT64_FORMAT, expected_streams[i],
                                              expected_versions[i]);
      g_autofree char *payload = g_strdup_printf ("{\"n\": %u}", i);
      GBytes *bytes = es_stored_event_get_data (event);

      g_assert_cmpint (es_stored_event_get_sequence_id (event), ==, i + 1);
      g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, expected_streams[i]);
      g_assert_cmpint (es_stored_event_get_version (event), ==, expected_versions[i]);
      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "Old");
      g_assert_cmpstr (es_stored_event_get_idempotency_key (event), ==, key);
      g_assert_cmpstr (es_stored_event_get_metadata (event), ==, "{\"who\": \"v1\"}");
      g_assert_cmpint (es_stored_event_get_flags (event), ==, ES_STORED_EVENT_FLAGS_NONE);
      g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                       payload, strlen (payload));
    }

  info = info_of (storage, "a");
  assert_info (info, "a", 3, 3, 1, V1_BASE_TIME + 1 * G_USEC_PER_SEC,
               V1_BASE_TIME + 6 * G_USEC_PER_SEC);
  g_clear_object (&info);
  info = info_of (storage, "b");
  assert_info (info, "b", 2, 2, 1, V1_BASE_TIME + 2 * G_USEC_PER_SEC,
               V1_BASE_TIME + 5 * G_USEC_PER_SEC);
  g_clear_object (&info);
  info = info_of (storage, "c");
  assert_info (info, "c", 1, 1, 1, V1_BASE_TIME + 4 * G_USEC_PER_SEC,
               V1_BASE_TIME + 4 * G_USEC_PER_SEC);
  g_clear_object (&info);
  info = info_of (storage, NULL);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 6);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 6);
  g_clear_object (&info);

  listed = es_storage_handle_list_streams (storage, NULL, NULL, ES_LIST_STREAMS_FLAGS_NONE, 10,
                                           NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (listed->len, ==, 3);
  g_assert_cmpstr (es_stream_info_get_stream_id (g_ptr_array_index (listed, 0)), ==, "a");
  g_assert_cmpstr (es_stream_info_get_stream_id (g_ptr_array_index (listed, 2)), ==, "c");

  snapshot = es_storage_handle_load_snapshot (storage, "a", "proj", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 2);

  /* A stored key is still found: the retry writes nothing. */
  {
    g_autoptr(GBytes) bytes = g_bytes_new_static ("{}", 2);
    g_autoptr(EsCandidateEvent) retry = es_candidate_event_new ("Old", bytes);

    es_candidate_event_set_idempotency_key (retry, "key-b-2");
    ES_TEST_ASSERT_OK (es_storage_handle_append (storage, "b", 0, &retry, 1, &version, NULL,
                                                 &error));
    g_assert_no_error (error);
    g_assert_cmpint (version, ==, 2);
  }

  version = es_test_storage_append_n (storage, "a", 2, "Happened", "{}", NULL);
  g_assert_cmpint (version, ==, 5);
  version = es_test_storage_append_n (storage, "d", 1, "Happened", "{}", NULL);
  g_assert_cmpint (version, ==, 1);
  g_clear_pointer (&events, g_ptr_array_unref);
  events = read_all (storage, NULL, ES_READ_FLAGS_NONE);
  g_assert_cmpuint (events->len, ==, 9);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (events, 6)), ==, 7);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 7)), ==, 5);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (events, 8)), ==, 9);
  info = info_of (storage, "a");
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 5);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 5);
  g_clear_object (&info);
  es_test_storage_close (storage);

  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA integrity_check = 1"), ==, 0);
}

/* ------------------------------------------------------------------ */
/* Positions                                                           */
/* ------------------------------------------------------------------ */

static gint64
last_sequence_id (EsStorageHandle *storage)
{
  g_autoptr(GPtrArray) events = read_all (storage, NULL, ES_READ_FLAGS_NONE);

  g_assert_cmpuint (events->len, >, 0);
  return es_stored_event_get_sequence_id (g_ptr_array_index (events, events->len - 1));
}

static void
test_sequence_ids_not_reused (Fixture       *f,
                              gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = NULL;
  gint64 removed;

  g_test_summary ("Deleting, truncating or expiring the newest events of the database "
                  "never lets a later event take their sequence ids, across reopening");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "old", 1, "Happened", "{}", NULL);          /* 1 */
  es_test_storage_append_n (storage, "new", 3, "Happened", "{}", NULL);          /* 2..4 */

  /* A soft delete of the newest: its own position is 5. */
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "new", 3, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));
  g_assert_no_error (error);
  info = info_of (storage, NULL);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 5);
  g_clear_object (&info);
  es_test_storage_close (storage);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "other", 1, "Happened", "{}", NULL);
  g_assert_cmpint (last_sequence_id (storage), ==, 6);

  /* The newest events expire (every event is older than a second from
   * "now"): nothing is left, the position stays. */
  ES_TEST_ASSERT_OK (es_storage_handle_set_retention (storage, NULL, G_USEC_PER_SEC, 0, NULL,
                                                      &error));
  g_assert_no_error (error);
  removed = es_storage_handle_sweep (storage, g_get_real_time () + G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC, NULL,
                                     NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (removed, ==, 2);
  info = info_of (storage, NULL);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 0);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 6);
  g_clear_object (&info);
  ES_TEST_ASSERT_OK (es_storage_handle_set_retention (storage, NULL, 0, 0, NULL, &error));
  es_test_storage_close (storage);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "after", 1, "Happened", "{}", NULL);
  g_assert_cmpint (last_sequence_id (storage), ==, 7);

  /* A hard delete of the newest: the tombstone holds position 8. */
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "after", 1,
                                                      ES_DELETE_FLAGS_TOMBSTONE,
                                                      NULL, &error));
  g_assert_no_error (error);
  es_test_storage_close (storage);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "last", 1, "Happened", "{}", NULL);
  g_assert_cmpint (last_sequence_id (storage), ==, 9);
  {
    g_autoptr(GPtrArray) with_markers = read_all (storage, NULL,
                                                  ES_READ_FLAGS_INCLUDE_TOMBSTONES);

    g_assert_cmpuint (with_markers->len, ==, 2);
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (with_markers, 0)),
                     ==, 8);
    g_assert_cmpint (es_stored_event_get_flags (g_ptr_array_index (with_markers, 0)), ==,
                     ES_STORED_EVENT_FLAGS_TOMBSTONE);
  }
  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Query plans                                                         */
/* ------------------------------------------------------------------ */

/* The plan of @sql as one string, its lines joined with " | ". */
static char *
query_plan (const char *path,
            const char *sql)
{
  sqlite3 *db = es_test_sqlite_open (path);
  g_autofree char *explain = g_strconcat ("EXPLAIN QUERY PLAN ", sql, NULL);
  GString *plan = g_string_new (NULL);
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (db, explain, -1, &stmt, NULL), ==, SQLITE_OK);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    g_string_append_printf (plan, "%s%s", plan->len > 0 ? " | " : "",
                            (const char *) sqlite3_column_text (stmt, 3));
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return g_string_free (plan, FALSE);
}

static void
test_query_plans (Fixture       *f,
                  gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autofree char *listing = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *backwards = NULL;
  g_autofree char *window = NULL;

  g_test_summary ("The statements of listing, backward reads and time windows of @all "
                  "(as es-sqlite-query.c writes them) use their indexes, without a sort "
                  "where the index gives the order");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "s", 10, "Happened", "{}", NULL);
  es_test_storage_close (storage);

  listing = query_plan (f->path,
                        "SELECT stream_id, version FROM streams WHERE stream_id > ?"
                        " AND state = 0 ORDER BY stream_id LIMIT ?");
  g_test_message ("listing: %s", listing);
  g_assert_nonnull (strstr (listing, "SEARCH streams USING PRIMARY KEY (stream_id>?)"));
  g_assert_null (strstr (listing, "TEMP B-TREE"));

  prefix = query_plan (f->path,
                       "SELECT stream_id, version FROM streams WHERE stream_id > ?"
                       " AND stream_id >= ? AND stream_id < ? ORDER BY stream_id LIMIT ?");
  g_test_message ("prefix: %s", prefix);
  g_assert_nonnull (strstr (prefix, "USING PRIMARY KEY (stream_id>? AND stream_id<?)"));

  backwards = query_plan (f->path,
                          "SELECT sequence_id FROM events WHERE stream_id = ? AND version < ?"
                          " AND flags < 2 ORDER BY version DESC LIMIT ?");
  g_test_message ("backwards: %s", backwards);
  g_assert_nonnull (strstr (backwards, "USING INDEX sqlite_autoindex_events_1 "
                                       "(stream_id=? AND version<?)"));
  g_assert_null (strstr (backwards, "TEMP B-TREE"));

  window = query_plan (f->path,
                       "SELECT sequence_id FROM events INDEXED BY events_timestamp"
                       " WHERE sequence_id > ? AND flags < 2"
                       " AND (timestamp >= ? AND timestamp < ?) ORDER BY sequence_id LIMIT ?");
  g_test_message ("window: %s", window);
  g_assert_nonnull (strstr (window, "USING INDEX events_timestamp (timestamp>? AND timestamp<?)"));
}

/* The metadata clauses es-sqlite-query.c writes: for `metadata.tenant =
 * <string>`, the index expression with the path inlined (exact for a
 * string that does not start with '{' or '['); for `metadata.tenant =
 * true`, the same followed by the exact test, with the path bound. */
#define TENANT_EXPRESSION \
  "(CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.\"tenant\"') END)"
#define TENANT_EQUALS "(" TENANT_EXPRESSION " = ?)"
#define TENANT_TRUE \
  "(" TENANT_EXPRESSION " = ? AND CASE WHEN json_valid(metadata) THEN" \
  " json_type(metadata, ?) = 'true' END)"

static void
test_metadata_index_plans (Fixture       *f,
                           gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *all = NULL;
  g_autofree char *all_in = NULL;
  g_autofree char *all_true = NULL;
  g_autofree char *stream = NULL;
  g_autofree char *index_sql = NULL;
  sqlite3 *db;

  g_test_summary ("A declared metadata path is an expression index that the filter's "
                  "statement for @all (equals, in) uses, in sequence order for equals; a "
                  "stream's read keeps the stream's index; without the declaration, @all "
                  "is a scan");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "s", 10, "Happened", NULL, "{\"tenant\":\"t1\"}");

  before = query_plan (f->path,
                       "SELECT sequence_id FROM events WHERE sequence_id > ? AND flags < 2"
                       " AND " TENANT_EQUALS " ORDER BY sequence_id LIMIT ?");
  g_test_message ("undeclared: %s", before);
  g_assert_null (strstr (before, "es_meta_"));

  ES_TEST_ASSERT_OK (es_storage_handle_add_metadata_index (storage, "tenant", NULL, &error));
  g_assert_no_error (error);

  /* The index as created: hex name, guarded expression, events only. */
  db = es_test_sqlite_open (f->path);
  {
    sqlite3_stmt *stmt = NULL;

    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT sql FROM sqlite_master"
                                             " WHERE name = 'es_meta_74656e616e74'",
                                         -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    index_sql = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
    sqlite3_finalize (stmt);
  }
  sqlite3_close (db);
  g_test_message ("index: %s", index_sql);
  g_assert_nonnull (strstr (index_sql, TENANT_EXPRESSION ", sequence_id) WHERE flags < 2"));

  all = query_plan (f->path,
                    "SELECT sequence_id FROM events WHERE sequence_id > ? AND flags < 2"
                    " AND " TENANT_EQUALS " ORDER BY sequence_id LIMIT ?");
  g_test_message ("@all: %s", all);
  g_assert_nonnull (strstr (all, "USING INDEX es_meta_74656e616e74 (<expr>=? AND sequence_id>?)"));
  g_assert_null (strstr (all, "TEMP B-TREE"));

  all_true = query_plan (f->path,
                         "SELECT sequence_id FROM events WHERE sequence_id > ? AND flags < 2"
                         " AND " TENANT_TRUE " ORDER BY sequence_id LIMIT ?");
  g_test_message ("@all, true: %s", all_true);
  g_assert_nonnull (strstr (all_true, "USING INDEX es_meta_74656e616e74 (<expr>=? AND sequence_id>?)"));

  all_in = query_plan (f->path,
                       "SELECT sequence_id FROM events WHERE sequence_id > ? AND flags < 2"
                       " AND (" TENANT_EXPRESSION " IN (?, ?)) ORDER BY sequence_id LIMIT ?");
  g_test_message ("@all, in: %s", all_in);
  g_assert_nonnull (strstr (all_in, "USING INDEX es_meta_74656e616e74 (<expr>=? AND sequence_id>?)"));

  stream = query_plan (f->path,
                       "SELECT sequence_id FROM events WHERE stream_id = ? AND version > ?"
                       " AND flags < 2 AND " TENANT_EQUALS " ORDER BY version LIMIT ?");
  g_test_message ("stream: %s", stream);
  g_assert_nonnull (strstr (stream, "USING INDEX sqlite_autoindex_events_1 "
                                    "(stream_id=? AND version>?)"));
  es_test_storage_close (storage);
}

/* json-glib, which validates metadata, accepts text SQLite's JSON
 * functions refuse: the index expression's json_valid() guard keeps such
 * writes working once a path is declared. */
static void
test_metadata_index_lenient_json (Fixture       *f,
                                  gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) paths = NULL;

  g_test_summary ("With a declared path, metadata that json-glib accepts and SQLite's "
                  "json_valid() refuses is still written, and a filter never matches it, "
                  "as without the index; the declaration survives reopening");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  ES_TEST_ASSERT_OK (es_storage_handle_add_metadata_index (storage, "tenant", NULL, &error));
  g_assert_no_error (error);
  es_test_storage_append_n (storage, "lenient", 1, "Happened", NULL, "{\"tenant\": \"t1\" /* a comment */}");
  es_test_storage_append_n (storage, "strict", 1, "Happened", NULL, "{\"tenant\":\"t1\"}");

  es_event_filter_add_equals (filter, "metadata.tenant", g_variant_new_string ("t1"));
  events = es_storage_handle_read_page_full (storage, NULL, 0, ES_READ_FLAGS_NONE, filter, 100,
                                             NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (events, 0)), ==, "strict");
  es_test_storage_close (storage);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  paths = es_storage_handle_list_metadata_indexes (storage, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (paths), ==, 1);
  g_assert_cmpstr (paths[0], ==, "tenant");
  es_test_storage_close (storage);
}

/* A time window of @all read through the library returns the window's
 * events in sequence order, both ways, whichever plan it takes (a small
 * window through the timestamp index, a big one through the rowid). */
static void
test_time_window_reads (Fixture       *f,
                        gconstpointer  data)
{
  EsStorageHandle *storage;
  sqlite3 *db;
  gint64 base;

  g_test_summary ("Reads of @all with a time range return exactly the window's events "
                  "in sequence order, forwards and backwards, for a small and a big window");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "s", 1, "Happened", "{}", NULL);
  es_test_storage_close (storage);

  /* 10,000 events one second apart, but with timestamps shuffled in
   * blocks so that sequence order and time order differ. */
  db = es_test_sqlite_open (f->path);
  sqlite_exec (db, "BEGIN");
  sqlite_exec (db, "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 10001)"
                   " INSERT INTO events (stream_id, version, event_type, timestamp, data)"
                   " SELECT 's', i, 'T', 1700000000000000 + ((i * 7919) % 10000) * 1000000, x''"
                   " FROM n");
  sqlite_exec (db, "UPDATE streams SET version = 10001, event_count = 10001"
                   " WHERE stream_id = 's'");
  sqlite_exec (db, "COMMIT");
  sqlite3_close (db);
  base = G_GINT64_CONSTANT (1700000000000000);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  for (guint window = 0; window < 2; window++)
    {
      /* 100 seconds, then 8000. */
      gint64 since = base + 1000 * G_USEC_PER_SEC;
      gint64 until = since + (gint64) (window == 0 ? 100 : 8000) * G_USEC_PER_SEC;
      g_autoptr(GDateTime) since_dt = g_date_time_new_from_unix_utc (since / G_USEC_PER_SEC);
      g_autoptr(GDateTime) until_dt = g_date_time_new_from_unix_utc (until / G_USEC_PER_SEC);
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();

      es_event_filter_add_time_range (filter, since_dt, until_dt);
      for (guint direction = 0; direction < 2; direction++)
        {
          EsReadFlags flags = direction == 0 ? ES_READ_FLAGS_NONE : ES_READ_FLAGS_BACKWARDS;
          gint64 position = direction == 0 ? 0 : G_MAXINT64;
          gint64 previous = direction == 0 ? 0 : G_MAXINT64;
          guint n = 0;

          for (;;)
            {
              g_autoptr(GError) error = NULL;
              g_autoptr(GPtrArray) page = NULL;

              page = es_storage_handle_read_page_full (storage, NULL, position, flags, filter,
                                                       500, NULL, &error);
              g_assert_no_error (error);
              if (page->len == 0)
                break;
              for (guint i = 0; i < page->len; i++)
                {
                  EsStoredEvent *event = g_ptr_array_index (page, i);
                  gint64 id = es_stored_event_get_sequence_id (event);
                  gint64 ts = es_stored_event_get_timestamp_usec (event);

                  g_assert_cmpint (ts, >=, since);
                  g_assert_cmpint (ts, <, until);
                  if (direction == 0)
                    g_assert_cmpint (id, >, previous);
                  else
                    g_assert_cmpint (id, <, previous);
                  previous = id;
                  n++;
                }
              position = previous;
            }
          g_test_message ("window %u direction %u: %u events", window, direction, n);
          g_assert_cmpuint (n, ==, (window == 0 ? 100u : 8000u));
        }
    }
  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Sweeps, cancellation, read-only                                     */
/* ------------------------------------------------------------------ */

static void
test_sweep_batches (Fixture       *f,
                    gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfo) info = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  gboolean has_age = TRUE;
  sqlite3 *db;
  gint64 removed;

  g_test_summary ("A sweep removing more than a batch (10,000 events) goes through "
                  "several transactions and removes exactly what the policies say; a "
                  "sweep cancelled before it starts removes nothing and says CANCELLED");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  for (guint i = 0; i < 25; i++)
    es_test_storage_append_n (storage, "big", 1000, "Happened", "{}", NULL);    /* 25,000 events */
  es_test_storage_append_n (storage, "a", 5, "Happened", "{}", NULL);
  es_test_storage_append_n (storage, "b", 2, "Happened", "{}", NULL);
  es_test_storage_close (storage);

  /* A database-wide policy written behind the library's back, so that
   * only the sweep enforces it. */
  db = es_test_sqlite_open (f->path);
  sqlite_exec (db, "INSERT INTO settings (name, value) VALUES ('max_count', 3)");
  sqlite3_close (db);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_cancellable_cancel (cancellable);
  removed = es_storage_handle_sweep (storage, g_get_real_time (), NULL, cancellable, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (removed, ==, -1);
  g_clear_error (&error);
  info = info_of (storage, "big");
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 25000);
  g_clear_object (&info);

  removed = es_storage_handle_sweep (storage, g_get_real_time (), &has_age, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (removed, ==, (25000 - 3) + (5 - 3));
  g_assert_false (has_age);

  info = info_of (storage, "big");
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 3);
  g_assert_cmpint (es_stream_info_get_first_version (info), ==, 24998);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 25000);
  g_clear_object (&info);
  info = info_of (storage, "a");
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 3);
  g_assert_cmpint (es_stream_info_get_first_version (info), ==, 3);
  g_clear_object (&info);
  info = info_of (storage, "b");
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, 2);
  g_clear_object (&info);
  {
    g_autoptr(GPtrArray) events = read_all (storage, NULL, ES_READ_FLAGS_NONE);

    g_assert_cmpuint (events->len, ==, 8);
  }

  /* Nothing left to do. */
  removed = es_storage_handle_sweep (storage, g_get_real_time (), NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (removed, ==, 0);

  /* An age policy of a stream makes the sweep say so. */
  ES_TEST_ASSERT_OK (es_storage_handle_set_retention (storage, "b", G_TIME_SPAN_HOUR, 0, NULL,
                                                      &error));
  removed = es_storage_handle_sweep (storage, g_get_real_time (), &has_age, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (removed, ==, 0);
  g_assert_true (has_age);
  es_test_storage_close (storage);

  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT count(*) FROM events"), ==, 8 + 0);
}

static void
test_sweep_idle_no_lock (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autoptr(GError) error = NULL;
  gboolean has_age = TRUE;
  sqlite3 *db;

  g_test_summary ("A sweep of a database without retention policies (what a factory's "
                  "background sweep meets) takes no write lock: it succeeds while another "
                  "connection holds it");

  storage = g_initable_new (ES_TYPE_SQLITE_STORAGE, NULL, &error, "path", f->path,
                            "busy-timeout", 100, NULL);
  g_assert_no_error (error);
  es_test_storage_append_n (ES_STORAGE_HANDLE (storage), "s", 3, "Happened", "{}", NULL);

  db = es_test_sqlite_open (f->path);
  sqlite_exec (db, "BEGIN IMMEDIATE");
  g_assert_cmpint (es_storage_handle_sweep (ES_STORAGE_HANDLE (storage), g_get_real_time (),
                                            &has_age, NULL, &error), ==, 0);
  g_assert_no_error (error);
  g_assert_false (has_age);

  /* With a policy, the sweep needs the lock (and says busy here). */
  sqlite_exec (db, "INSERT INTO settings (name, value) VALUES ('max_count', 1)");
  sqlite_exec (db, "COMMIT");
  sqlite_exec (db, "BEGIN IMMEDIATE");
  g_assert_cmpint (es_storage_handle_sweep (ES_STORAGE_HANDLE (storage), g_get_real_time (),
                                            NULL, NULL, &error), ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_clear_error (&error);
  sqlite_exec (db, "ROLLBACK");
  sqlite3_close (db);

  g_assert_cmpint (es_storage_handle_sweep (ES_STORAGE_HANDLE (storage), g_get_real_time (),
                                            NULL, NULL, &error), ==, 2);
  g_assert_no_error (error);
  ES_TEST_ASSERT_OK (es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, &error));
}

static void
test_read_only_refuses (Fixture       *f,
                        gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(EsSqliteStorage) reader = NULL;
  g_autoptr(GError) error = NULL;
  EsStorageHandle *handle;

  g_test_summary ("A read-only storage refuses every life-cycle write with the read-only "
                  "error, and lists and describes streams");

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "s", 2, "Happened", "{}", NULL);
  es_test_storage_close (storage);

  reader = g_initable_new (ES_TYPE_SQLITE_STORAGE, NULL, &error, "path", f->path,
                           "read-only", TRUE, NULL);
  g_assert_no_error (error);
  handle = ES_STORAGE_HANDLE (reader);

  g_assert_false (es_storage_handle_delete_stream (handle, "s", ES_VERSION_ANY,
                                                   ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "read-only"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_truncate_stream (handle, "s", 2, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_erase_event (handle, "s", 1, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_set_retention (handle, NULL, 0, 5, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpint (es_storage_handle_sweep (handle, g_get_real_time (), NULL, NULL, &error),
                   ==, -1);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_compact (handle, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  {
    g_autoptr(EsStreamInfo) info = info_of (handle, "s");
    g_autoptr(GPtrArray) listed = es_storage_handle_list_streams (handle, NULL, NULL,
                                                                  ES_LIST_STREAMS_FLAGS_NONE,
                                                                  10, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpint (es_stream_info_get_event_count (info), ==, 2);
    g_assert_cmpuint (listed->len, ==, 1);
  }
  ES_TEST_ASSERT_OK (es_storage_handle_close (handle, NULL, &error));
  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT count(*) FROM events"), ==, 2);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/sqlite-lifecycle/deleted-bytes-gone", Fixture, NULL,
              es_test_db_fixture_setup, test_deleted_bytes_gone, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/compact-incremental", Fixture, NULL,
              es_test_db_fixture_setup, test_compact_incremental, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/compact-old-file", Fixture, NULL,
              es_test_db_fixture_setup, test_compact_old_file, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/migration-v1", Fixture, NULL,
              es_test_db_fixture_setup, test_migration_v1, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/sequence-ids-not-reused", Fixture, NULL,
              es_test_db_fixture_setup, test_sequence_ids_not_reused, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/query-plans", Fixture, NULL,
              es_test_db_fixture_setup, test_query_plans, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/metadata-index-plans", Fixture, NULL,
              es_test_db_fixture_setup, test_metadata_index_plans, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/metadata-index-lenient-json", Fixture, NULL,
              es_test_db_fixture_setup, test_metadata_index_lenient_json, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/time-window-reads", Fixture, NULL,
              es_test_db_fixture_setup, test_time_window_reads, es_test_db_fixture_teardown);

  g_test_add ("/sqlite-lifecycle/sweep-batches", Fixture, NULL,
              es_test_db_fixture_setup, test_sweep_batches, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/sweep-idle-no-lock", Fixture, NULL,
              es_test_db_fixture_setup, test_sweep_idle_no_lock, es_test_db_fixture_teardown);
  g_test_add ("/sqlite-lifecycle/read-only-refuses", Fixture, NULL,
              es_test_db_fixture_setup, test_read_only_refuses, es_test_db_fixture_teardown);

  return g_test_run ();
}
