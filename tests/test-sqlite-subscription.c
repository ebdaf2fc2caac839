/* test-sqlite-subscription.c: what the SQLite backend does for durable
 * subscriptions (issue 17) at the level of the storage handle: the
 * schema-3 table and the upgrade of a schema-2 file, checkpoints (one
 * transaction, never backwards, one stream), lag from the streams table,
 * reset and delete, and one consumer at a time through the lock on
 * `<database>-eslock`: within a storage, between storages of a process,
 * between processes (es-test-subscriber), released by close and by death
 * (kill -9), with the takeover time measured. The rules every backend
 * follows through EsSubscription are in the conformance tests; the kill
 * loop of a consuming process is in tests/reliability.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE  /* F_OFD_GETLK */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>
#include "es-glib/sqlite/es-sqlite-private.h"

#include "es-test-utils.h"

typedef EsTestDbFixture Fixture;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static GBytes *
bytes_of (const char *text)
{
  return g_bytes_new (text, strlen (text));
}

static void
assert_bytes (GBytes     *bytes,
              const char *text)
{
  g_assert_nonnull (bytes);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), text, strlen (text));
}

static EsSubscriptionInfo *
get_sub (EsStorageHandle *storage,
         const char      *name)
{
  g_autoptr(GError) error = NULL;
  EsSubscriptionInfo *info = es_storage_handle_get_subscription (storage, name, NULL, &error);

  g_assert_no_error (error);
  return info;
}

static void
save (EsStorageHandle *storage,
      const char      *name,
      const char      *stream_id,
      gint64           position,
      const char      *state)
{
  g_autoptr(GBytes) bytes = state != NULL ? bytes_of (state) : NULL;
  g_autoptr(GError) error = NULL;

  ES_TEST_ASSERT_OK (es_storage_handle_save_checkpoint (storage, name, stream_id, position, bytes,
                                                        NULL, &error));
}

static void
assert_sub (EsStorageHandle *storage,
            const char      *name,
            const char      *stream_id,
            gint64           checkpoint,
            gint64           lag,
            const char      *state)
{
  g_autoptr(EsSubscriptionInfo) info = get_sub (storage, name);

  g_assert_nonnull (info);
  g_assert_cmpstr (es_subscription_info_get_name (info), ==, name);
  g_assert_cmpstr (es_subscription_info_get_stream_id (info), ==, stream_id);
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, checkpoint);
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, lag);
  if (state == NULL)
    g_assert_null (es_subscription_info_get_state (info));
  else
    assert_bytes (es_subscription_info_get_state (info), state);
}

/* Every row of every table (but @except) as text, and the schema, in a
 * stable order: what "keeps everything" compares. */
static char *
dump_database (const char *path,
               const char *except)
{
  sqlite3 *db = es_test_sqlite_open (path);
  g_autoptr(GString) out = g_string_new (NULL);
  g_autoptr(GPtrArray) tables = g_ptr_array_new_with_free_func (g_free);
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT type, name, tbl_name, sql FROM sqlite_master"
                                       " ORDER BY type, name", -1, &stmt, NULL), ==, SQLITE_OK);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      const char *table = (const char *) sqlite3_column_text (stmt, 2);

      if (except != NULL && g_str_equal (table, except))
        continue;
      g_string_append_printf (out, "%s %s: %s\n", sqlite3_column_text (stmt, 0),
                              sqlite3_column_text (stmt, 1),
                              sqlite3_column_text (stmt, 3) != NULL
                                ? (const char *) sqlite3_column_text (stmt, 3) : "");
      if (g_str_equal ((const char *) sqlite3_column_text (stmt, 0), "table"))
        g_ptr_array_add (tables, g_strdup (table));
    }
  sqlite3_finalize (stmt);

  for (guint i = 0; i < tables->len; i++)
    {
      g_autofree char *sql = g_strdup_printf ("SELECT * FROM \"%s\" ORDER BY 1, 2",
                                              (char *) tables->pdata[i]);

      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        {
          g_string_append_printf (out, "%s:", (char *) tables->pdata[i]);
          for (int c = 0; c < sqlite3_column_count (stmt); c++)
            {
              if (sqlite3_column_type (stmt, c) == SQLITE_BLOB)
                {
                  g_autofree char *hex = NULL;
                  const guchar *blob = sqlite3_column_blob (stmt, c);
                  int n = sqlite3_column_bytes (stmt, c);
                  GString *h = g_string_new ("x'");

                  for (int b = 0; b < n; b++)
                    g_string_append_printf (h, "%02x", blob[b]);
                  hex = g_string_free (h, FALSE);
                  g_string_append_printf (out, " %s'", hex);
                }
              else if (sqlite3_column_type (stmt, c) == SQLITE_NULL)
                g_string_append (out, " NULL");
              else
                g_string_append_printf (out, " %s", sqlite3_column_text (stmt, c));
            }
          g_string_append_c (out, '\n');
        }
      sqlite3_finalize (stmt);
    }

  sqlite3_close (db);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* The side file of the database at @path that holds the locks. */
static char *
lock_path_of (const char *path)
{
  return g_strconcat (path, "-eslock", NULL);
}

/* The lock a descriptor of this process would meet on @name's byte of
 * the side file of the database at @path: F_WRLCK when someone holds the
 * subscription. */
static short
lock_state (const char *path,
            const char *name)
{
  g_autofree char *lock_path = lock_path_of (path);
  struct flock fl = { 0, };
  int fd = g_open (lock_path, O_RDWR | O_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = _es_sqlite_subscription_lock_offset (name);
  fl.l_len = 1;
  g_assert_cmpint (fcntl (fd, F_OFD_GETLK, &fl), ==, 0);
  close (fd);
  return fl.l_type;
}

/* A process holding a subscription through es-test-subscriber. */
typedef struct
{
  GSubprocess      *process;
  GDataInputStream *out;
  GOutputStream    *in;
} Holder;

static Holder *
holder_spawn (const char *mode,
              const char *path,
              const char *name)
{
  g_autoptr(GError) error = NULL;
  Holder *h = g_new0 (Holder, 1);
  const char *program = g_getenv ("ES_TEST_SUBSCRIBER");

  g_assert_nonnull (program);
  h->process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDIN_PIPE,
                                 &error, program, mode, path, name, NULL);
  g_assert_no_error (error);
  h->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (h->process));
  h->in = g_subprocess_get_stdin_pipe (h->process);
  return h;
}

/* The holder's next line (blocking). */
static char *
holder_line (Holder *h)
{
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_utf8 (h->out, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (line);
  return line;
}

/* Waits for "held <usec>"; returns the time. */
static gint64
holder_wait_held (Holder *h)
{
  g_autofree char *line = holder_line (h);
  gint64 when = 0;

  g_assert_true (g_str_has_prefix (line, "held "));
  g_assert_true (g_ascii_string_to_signed (line + 5, 10, 0, G_MAXINT64, &when, NULL));
  return when;
}

static void
holder_release (Holder *h)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  g_output_stream_write_all (h->in, "release\n", 8, NULL, NULL, &error);
  g_assert_no_error (error);
  line = holder_line (h);
  g_assert_cmpstr (line, ==, "released");
  g_subprocess_wait_check (h->process, NULL, &error);
  g_assert_no_error (error);
}

static void
holder_free (Holder *h)
{
  if (g_subprocess_get_identifier (h->process) != NULL)
    {
      g_subprocess_force_exit (h->process);
      g_subprocess_wait (h->process, NULL, NULL);
    }
  g_object_unref (h->out);
  g_object_unref (h->process);
  g_free (h);
}

/* What another process sees: "held" or "busy". */
static char *
try_from_process (const char *path,
                  const char *name)
{
  Holder *h = holder_spawn ("try", path, name);
  char *line = holder_line (h);
  g_autoptr(GError) error = NULL;

  g_subprocess_wait (h->process, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_exit_status (h->process), ==,
                   g_str_equal (line, "held") ? 0 : 3);
  holder_free (h);
  return line;
}

/* An acquisition in a thread, with wait. */
typedef struct
{
  EsStorageHandle *storage;
  const char      *name;
  GCancellable    *cancellable;
  GError          *error;
  gint             held;   /* atomic */
  gint64           held_at;
} Waiter;

static gpointer
waiter_thread (gpointer data)
{
  Waiter *w = data;

  if (es_storage_handle_acquire_subscription (w->storage, w->name, TRUE, w->cancellable,
                                              &w->error))
    {
      w->held_at = g_get_monotonic_time ();
      g_atomic_int_set (&w->held, 1);
    }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Schema                                                              */
/* ------------------------------------------------------------------ */

static void
test_schema (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *lock = lock_path_of (f->path);
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);

  g_test_summary ("A new file is at schema version 3, with the subscriptions table");

  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA user_version"), ==, 3);
  g_assert_cmpint (es_test_sqlite_int (f->path,
                                       "SELECT count(*) FROM pragma_table_info('subscriptions')"),
                   ==, 5);
  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT pk FROM pragma_table_info('subscriptions')"
                                                " WHERE name = 'name'"), ==, 1);
  g_assert_cmpint (es_test_sqlite_int (f->path,
                                       "SELECT \"notnull\" FROM pragma_table_info('subscriptions')"
                                       " WHERE name = 'state'"), ==, 0);
  es_test_storage_close (storage);
  /* No subscription was acquired: no side file. */
  g_assert_false (g_file_test (lock, G_FILE_TEST_EXISTS));
}

static void
test_migration_v2 (Fixture       *f,
                   gconstpointer  data)
{
  EsStorageHandle *storage;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *after_all = NULL;

  g_test_summary ("A schema-2 file (0.2 before subscriptions: events, erasures, deletions, "
                  "tombstones, snapshots, retention) is upgraded to 3 when opened, every "
                  "table and row as it was, and subscriptions work on it");

  /* A schema-2 file: what this es-glib writes, without the one table of
   * version 3 (version 3 adds it and changes nothing else). */
  storage = es_test_sqlite_storage_open (f->path, FALSE);
  es_test_storage_append_n (storage, "a", 5, "Happened", "{}", NULL);
  es_test_storage_append_n (storage, "b", 3, "Happened", "{}", NULL);
  es_test_storage_append_n (storage, "c", 2, "Happened", "{}", NULL);
  ES_TEST_ASSERT_OK (es_storage_handle_erase_event (storage, "a", 2, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "b", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "c", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_set_retention (storage, "a", 0, 10, NULL, &error));
  {
    g_autoptr(GBytes) state = bytes_of ("snap");
    ES_TEST_ASSERT_OK (es_storage_handle_save_snapshot (storage, "a", "proj", 5, state, NULL,
                                                        &error));
  }
  es_test_storage_close (storage);
  es_test_sqlite_exec (f->path, "DROP TABLE subscriptions; PRAGMA user_version = 2");
  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT count(*) FROM sqlite_master"
                                                " WHERE name = 'subscriptions'"), ==, 0);
  before = dump_database (f->path, NULL);

  storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_assert_cmpint (es_test_sqlite_int (f->path, "PRAGMA user_version"), ==, 3);
  after = dump_database (f->path, "subscriptions");
  g_assert_cmpstr (after, ==, before);

  /* The new table works, and the old data reads through the storage. */
  save (storage, "s", "a", 3, "st");
  assert_sub (storage, "s", "a", 3, 2, "st");
  after_all = dump_database (f->path, "subscriptions");
  g_assert_cmpstr (after_all, ==, before);
  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Checkpoints                                                         */
/* ------------------------------------------------------------------ */

static void
test_checkpoint (Fixture       *f,
                 gconstpointer  data)
{
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GPtrArray) listed = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  gint64 t0, t1, all_head;

  g_test_summary ("save_checkpoint creates, then moves a checkpoint and its state; NULL keeps "
                  "the state; lag comes from the stream's version or the last position; "
                  "listing is by name without states");

  es_test_storage_append_n (storage, "a", 4, "Happened", "{}", NULL);
  es_test_storage_append_n (storage, "b", 2, "Happened", "{}", NULL);   /* positions 5, 6 */

  g_assert_null (get_sub (storage, "s"));

  t0 = g_get_real_time ();
  save (storage, "s", "a", 1, "one");
  t1 = g_get_real_time ();
  assert_sub (storage, "s", "a", 1, 3, "one");
  {
    g_autoptr(EsSubscriptionInfo) info = get_sub (storage, "s");
    g_assert_cmpint (es_subscription_info_get_updated_usec (info), >=, t0);
    g_assert_cmpint (es_subscription_info_get_updated_usec (info), <=, t1);
  }

  /* NULL state: the stored one stays. Equal position: allowed. */
  save (storage, "s", "a", 3, NULL);
  assert_sub (storage, "s", "a", 3, 1, "one");
  save (storage, "s", "a", 3, NULL);
  assert_sub (storage, "s", "a", 3, 1, "one");
  /* An empty state is a state, not none. */
  ES_TEST_ASSERT_OK (es_storage_handle_save_checkpoint (storage, "s", "a", 4, empty, NULL, &error));
  assert_sub (storage, "s", "a", 4, 0, "");
  save (storage, "s", "a", 4, "four");
  assert_sub (storage, "s", "a", 4, 0, "four");

  /* @all: NULL and "@all" are one; lag from the last position. */
  save (storage, "all", NULL, 2, NULL);
  assert_sub (storage, "all", "@all", 2, 4, NULL);
  save (storage, "all", "@all", 5, NULL);
  assert_sub (storage, "all", "@all", 5, 1, NULL);

  /* The lag follows appends, and deletions keep the head. */
  es_test_storage_append_n (storage, "a", 3, "Happened", "{}", NULL);
  assert_sub (storage, "s", "a", 4, 3, "four");
  assert_sub (storage, "all", "@all", 5, 4, NULL);
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "a", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  assert_sub (storage, "s", "a", 4, 3, "four");
  /* @all's head is the last position used, as stream information says. */
  {
    g_autoptr(EsStreamInfo) all = es_storage_handle_get_stream_info (storage, NULL, NULL, &error);

    g_assert_no_error (error);
    all_head = es_stream_info_get_current_version (all);
    g_assert_cmpint (all_head, >=, 9);
    assert_sub (storage, "all", "@all", 5, all_head - 5, NULL);
  }

  /* A stream never written: lag 0, not negative. */
  save (storage, "z", "zz", 0, NULL);
  assert_sub (storage, "z", "zz", 0, 0, NULL);

  listed = es_storage_handle_list_subscriptions (storage, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (listed->len, ==, 3);
  {
    const char *names[] = { "all", "s", "z" };
    const gint64 checkpoints[] = { 5, 4, 0 };
    const gint64 lags[] = { all_head - 5, 3, 0 };

    for (guint i = 0; i < listed->len; i++)
      {
        EsSubscriptionInfo *info = listed->pdata[i];

        g_assert_cmpstr (es_subscription_info_get_name (info), ==, names[i]);
        g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, checkpoints[i]);
        g_assert_cmpint (es_subscription_info_get_lag (info), ==, lags[i]);
        g_assert_null (es_subscription_info_get_state (info));
      }
  }

  /* Stored in the file, as the schema says. */
  es_test_storage_close (storage);
  g_assert_cmpint (es_test_sqlite_int (f->path,
                                       "SELECT position FROM subscriptions WHERE name = 's'"),
                   ==, 4);
  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT stream_id = '@all' FROM subscriptions"
                                                " WHERE name = 'all'"), ==, 1);
  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT state IS NULL FROM subscriptions"
                                                " WHERE name = 'all'"), ==, 1);
}

static void
test_checkpoint_rules (Fixture       *f,
                       gconstpointer  data)
{
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GBytes) state = bytes_of ("new");
  g_autoptr(GError) error = NULL;

  g_test_summary ("A checkpoint never moves back and stays on its stream: "
                  "INVALID_ARGUMENT naming both, and neither checkpoint nor state changes");

  es_test_storage_append_n (storage, "a", 5, "Happened", "{}", NULL);
  save (storage, "s", "a", 3, "old");
  save (storage, "all", NULL, 3, "old");

  g_assert_false (es_storage_handle_save_checkpoint (storage, "s", "a", 2, state, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'s'"));
  g_assert_nonnull (strstr (error->message, "3"));
  g_assert_nonnull (strstr (error->message, "2"));
  g_clear_error (&error);
  assert_sub (storage, "s", "a", 3, 2, "old");

  g_assert_false (es_storage_handle_save_checkpoint (storage, "s", "b", 4, state, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'a'"));
  g_assert_nonnull (strstr (error->message, "'b'"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_save_checkpoint (storage, "s", NULL, 4, state, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_save_checkpoint (storage, "all", "a", 4, state, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'@all'"));
  g_clear_error (&error);
  assert_sub (storage, "s", "a", 3, 2, "old");
  assert_sub (storage, "all", "@all", 3, 2, "old");

  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Reset and delete                                                    */
/* ------------------------------------------------------------------ */

static void
test_reset (Fixture       *f,
            gconstpointer  data)
{
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GError) error = NULL;

  g_test_summary ("reset moves the checkpoint either way and drops the state; NOT_FOUND for "
                  "none, INVALID_ARGUMENT beyond the head (stream version, or last position "
                  "for @all), nothing changed then");

  es_test_storage_append_n (storage, "a", 5, "Happened", "{}", NULL);
  es_test_storage_append_n (storage, "b", 2, "Happened", "{}", NULL);  /* positions 6, 7 */

  g_assert_false (es_storage_handle_reset_subscription (storage, "none", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "'none'"));
  g_clear_error (&error);
  g_assert_null (get_sub (storage, "none"));

  save (storage, "s", "a", 4, "st");
  ES_TEST_ASSERT_OK (es_storage_handle_reset_subscription (storage, "s", 1, NULL, &error));
  assert_sub (storage, "s", "a", 1, 4, NULL);
  save (storage, "s", "a", 2, "again");
  ES_TEST_ASSERT_OK (es_storage_handle_reset_subscription (storage, "s", 5, NULL, &error));
  assert_sub (storage, "s", "a", 5, 0, NULL);

  g_assert_false (es_storage_handle_reset_subscription (storage, "s", 6, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "6"));
  g_assert_nonnull (strstr (error->message, "5"));
  g_clear_error (&error);
  assert_sub (storage, "s", "a", 5, 0, NULL);

  save (storage, "all", NULL, 3, "st");
  ES_TEST_ASSERT_OK (es_storage_handle_reset_subscription (storage, "all", 7, NULL, &error));
  assert_sub (storage, "all", "@all", 7, 0, NULL);
  save (storage, "all", NULL, 7, "st");
  g_assert_false (es_storage_handle_reset_subscription (storage, "all", 8, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  assert_sub (storage, "all", "@all", 7, 0, "st");
  ES_TEST_ASSERT_OK (es_storage_handle_reset_subscription (storage, "all", 0, NULL, &error));
  assert_sub (storage, "all", "@all", 0, 7, NULL);

  es_test_storage_close (storage);
}

static void
test_delete (Fixture       *f,
             gconstpointer  data)
{
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GError) error = NULL;

  g_test_summary ("delete forgets a subscription; NOT_FOUND when none is stored");

  es_test_storage_append_n (storage, "a", 2, "Happened", "{}", NULL);
  save (storage, "s", "a", 2, "st");
  save (storage, "t", "a", 1, NULL);
  ES_TEST_ASSERT_OK (es_storage_handle_delete_subscription (storage, "s", NULL, &error));
  g_assert_null (get_sub (storage, "s"));
  assert_sub (storage, "t", "a", 1, 1, NULL);

  g_assert_false (es_storage_handle_delete_subscription (storage, "s", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* A new one of that name starts afresh, on any stream. */
  save (storage, "s", NULL, 1, NULL);
  assert_sub (storage, "s", "@all", 1, 1, NULL);
  es_test_storage_close (storage);
  g_assert_cmpint (es_test_sqlite_int (f->path, "SELECT count(*) FROM subscriptions"), ==, 2);
}

/* reset and delete fail with BUSY while @holder holds "s" through
 * @storage's database, and change nothing. */
static void
assert_management_busy (EsStorageHandle *storage)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (es_storage_handle_reset_subscription (storage, "s", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "'s'"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_delete_subscription (storage, "s", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  assert_sub (storage, "s", "a", 2, 0, "st");
}

static void
test_management_busy (Fixture       *f,
                      gconstpointer  data)
{
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  EsStorageHandle *other = NULL;
  g_autoptr(GError) error = NULL;
  Holder *h;

  g_test_summary ("reset and delete fail with BUSY while a consumer holds the subscription: "
                  "through the same storage, another storage of the process, another process");

  es_test_storage_append_n (storage, "a", 2, "Happened", "{}", NULL);
  save (storage, "s", "a", 2, "st");

  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "s", FALSE, NULL, &error));
  assert_management_busy (storage);
  es_storage_handle_release_subscription (storage, "s");

  other = es_test_sqlite_storage_open (f->path, FALSE);
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (other, "s", FALSE, NULL, &error));
  assert_management_busy (storage);
  es_storage_handle_release_subscription (other, "s");
  es_test_storage_close (other);

  h = holder_spawn ("hold", f->path, "s");
  holder_wait_held (h);
  assert_management_busy (storage);
  holder_release (h);
  holder_free (h);

  /* Nobody holds it now: both work (and hold it only while they run). */
  ES_TEST_ASSERT_OK (es_storage_handle_reset_subscription (storage, "s", 1, NULL, &error));
  assert_sub (storage, "s", "a", 1, 1, NULL);
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "s", FALSE, NULL, &error));
  es_storage_handle_release_subscription (storage, "s");
  ES_TEST_ASSERT_OK (es_storage_handle_delete_subscription (storage, "s", NULL, &error));
  g_assert_null (get_sub (storage, "s"));
  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* One consumer at a time                                              */
/* ------------------------------------------------------------------ */

static void
test_acquire_same_storage (Fixture       *f,
                           gconstpointer  data)
{
  const char *path = data != NULL ? data : f->path;
  EsStorageHandle *storage = es_test_sqlite_storage_open (path, FALSE);
  g_autoptr(GError) error = NULL;

  g_test_summary ("A second acquisition of a name through one storage fails with BUSY at "
                  "once, even waiting; other names are independent; release lets it go");

  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "s", FALSE, NULL, &error));
  g_assert_false (es_storage_handle_acquire_subscription (storage, "s", FALSE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "'s'"));
  g_clear_error (&error);
  /* wait = TRUE: it could only wait for itself. */
  g_assert_false (es_storage_handle_acquire_subscription (storage, "s", TRUE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);

  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "t", FALSE, NULL, &error));
  es_storage_handle_release_subscription (storage, "t");
  es_storage_handle_release_subscription (storage, "never-held");
  es_storage_handle_release_subscription (storage, "s");
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "s", TRUE, NULL, &error));
  es_storage_handle_release_subscription (storage, "s");
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "t", FALSE, NULL, &error));
  es_test_storage_close (storage);
}

static void
test_memory (Fixture       *f,
             gconstpointer  data)
{
  EsStorageHandle *a = es_test_sqlite_storage_open (":memory:", FALSE);
  EsStorageHandle *b = es_test_sqlite_storage_open (":memory:", FALSE);
  g_autoptr(GError) error = NULL;

  g_test_summary ("An in-memory database locks in its storage only: BUSY for a second "
                  "holder, reset and delete BUSY while held; another in-memory storage is "
                  "another database; no side file anywhere");

  es_test_storage_append_n (a, "a", 2, "Happened", "{}", NULL);
  save (a, "s", "a", 2, "st");
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (a, "s", FALSE, NULL, &error));
  g_assert_false (es_storage_handle_acquire_subscription (a, "s", TRUE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  assert_management_busy (a);
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (b, "s", FALSE, NULL, &error));
  g_assert_null (get_sub (b, "s"));

  es_storage_handle_release_subscription (a, "s");
  ES_TEST_ASSERT_OK (es_storage_handle_reset_subscription (a, "s", 0, NULL, &error));
  assert_sub (a, "s", "a", 0, 2, NULL);
  g_assert_false (g_file_test (":memory:-eslock", G_FILE_TEST_EXISTS));

  /* Close releases: acquiring again after close is refused as closed. */
  es_test_storage_close (a);
  es_test_storage_close (b);
}

static void
test_two_storages (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *lock = lock_path_of (f->path);
  EsStorageHandle *a = es_test_sqlite_storage_open (f->path, FALSE);
  EsStorageHandle *b = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GError) error = NULL;
  Waiter w = { 0, };
  GThread *thread;
  gint64 released_at;
  struct stat st;

  g_test_summary ("Two storages of one process on one file exclude each other like "
                  "processes: BUSY without waiting; a waiter takes over when the holder "
                  "releases, woken by the release; the lock is a byte of <database>-eslock");

  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (a, "s", FALSE, NULL, &error));

  /* The side file, 0644 (under the test's umask 022), locked at the
   * name's byte only; the database and its -wal/-shm untouched by it. */
  g_assert_cmpint (g_stat (lock, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0644);
  g_assert_cmpint (st.st_size, ==, 0);
  g_assert_cmpint (lock_state (f->path, "s"), ==, F_WRLCK);
  g_assert_cmpint (lock_state (f->path, "t"), ==, F_UNLCK);

  g_assert_false (es_storage_handle_acquire_subscription (b, "s", FALSE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (b, "t", FALSE, NULL, &error));
  g_assert_cmpint (lock_state (f->path, "t"), ==, F_WRLCK);

  w.storage = b;
  w.name = "s";
  thread = g_thread_new ("waiter", waiter_thread, &w);
  /* Whatever the waiter did so far, it cannot hold "s". */
  es_test_spin (50);
  g_assert_cmpint (g_atomic_int_get (&w.held), ==, 0);
  released_at = g_get_monotonic_time ();
  es_storage_handle_release_subscription (a, "s");
  g_thread_join (thread);
  g_assert_no_error (w.error);
  g_assert_cmpint (w.held, ==, 1);
  g_test_message ("in-process takeover after a release: %" G_GINT64_FORMAT " us",
                  w.held_at - released_at);
  g_assert_cmpint (lock_state (f->path, "s"), ==, F_WRLCK);

  g_assert_false (es_storage_handle_acquire_subscription (a, "s", FALSE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);

  /* Releasing one name leaves the other held. */
  es_storage_handle_release_subscription (b, "t");
  g_assert_cmpint (lock_state (f->path, "t"), ==, F_UNLCK);
  g_assert_cmpint (lock_state (f->path, "s"), ==, F_WRLCK);
  es_storage_handle_release_subscription (b, "s");
  g_assert_cmpint (lock_state (f->path, "s"), ==, F_UNLCK);

  es_test_storage_close (a);
  es_test_storage_close (b);
}

static void
test_cancel (Fixture       *f,
             gconstpointer  data)
{
  EsStorageHandle *a = es_test_sqlite_storage_open (f->path, FALSE);
  EsStorageHandle *b = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  Waiter w = { 0, };
  GThread *thread;

  g_test_summary ("A wait ends with G_IO_ERROR_CANCELLED when its cancellable is cancelled, "
                  "and holds nothing; a cancellable cancelled before fails at once");

  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (a, "s", FALSE, NULL, &error));
  w.storage = b;
  w.name = "s";
  w.cancellable = cancellable;
  thread = g_thread_new ("waiter", waiter_thread, &w);
  es_test_spin (20);
  g_cancellable_cancel (cancellable);
  g_thread_join (thread);
  g_assert_error (w.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&w.error);
  g_assert_cmpint (w.held, ==, 0);

  g_assert_false (es_storage_handle_acquire_subscription (b, "t", TRUE, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* b holds nothing: once a lets go, b's "s" and "t" are free. */
  es_storage_handle_release_subscription (a, "s");
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (a, "t", FALSE, NULL, &error));
  es_storage_handle_release_subscription (a, "t");
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (b, "s", FALSE, NULL, &error));
  es_test_storage_close (a);
  es_test_storage_close (b);
}

static void
test_close_releases (Fixture       *f,
                     gconstpointer  data)
{
  EsStorageHandle *a = es_test_sqlite_storage_open (f->path, FALSE);
  EsStorageHandle *b = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GError) error = NULL;
  Waiter w = { 0, };
  Waiter w2 = { 0, };
  GThread *thread;
  g_autofree char *seen = NULL;

  g_test_summary ("Closing a storage releases everything it holds (a waiter elsewhere takes "
                  "over), ends its own waits with CLOSED, and refuses new acquisitions");

  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (a, "x", FALSE, NULL, &error));
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (a, "y", FALSE, NULL, &error));
  seen = try_from_process (f->path, "x");
  g_assert_cmpstr (seen, ==, "busy");
  g_clear_pointer (&seen, g_free);

  w.storage = b;
  w.name = "x";
  thread = g_thread_new ("waiter", waiter_thread, &w);
  es_test_spin (20);
  g_assert_cmpint (g_atomic_int_get (&w.held), ==, 0);
  es_test_storage_close (a);
  g_thread_join (thread);
  g_assert_no_error (w.error);
  g_assert_cmpint (w.held, ==, 1);
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (b, "y", FALSE, NULL, &error));

  /* A wait through a storage being closed ends, CLOSED. */
  a = es_test_sqlite_storage_open (f->path, FALSE);
  w2.storage = a;
  w2.name = "y";
  thread = g_thread_new ("waiter", waiter_thread, &w2);
  es_test_spin (20);
  ES_TEST_ASSERT_OK (es_storage_handle_close (a, NULL, &error));
  g_thread_join (thread);
  g_assert_error (w2.error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&w2.error);
  g_assert_false (es_storage_handle_acquire_subscription (a, "z", FALSE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_object_unref (a);

  /* Dropping the last reference closes too. */
  g_object_unref (b);
  seen = try_from_process (f->path, "x");
  g_assert_cmpstr (seen, ==, "held");
  g_clear_pointer (&seen, g_free);
  seen = try_from_process (f->path, "y");
  g_assert_cmpstr (seen, ==, "held");
}

static void
test_read_only (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *lock = lock_path_of (f->path);
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  EsStorageHandle *reader;
  g_autoptr(GPtrArray) listed = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A read-only storage reads subscriptions but cannot consume one (it could "
                  "not save checkpoints): acquire, save, reset and delete fail with the "
                  "read-only INVALID_ARGUMENT, and nothing is locked or changed");

  es_test_storage_append_n (storage, "a", 3, "Happened", "{}", NULL);
  save (storage, "s", "a", 1, "st");
  es_test_storage_close (storage);

  reader = es_test_sqlite_storage_open (f->path, TRUE);
  assert_sub (reader, "s", "a", 1, 2, "st");
  listed = es_storage_handle_list_subscriptions (reader, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (listed->len, ==, 1);

  g_assert_false (es_storage_handle_acquire_subscription (reader, "s", TRUE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "read-only"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_save_checkpoint (reader, "s", "a", 2, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_reset_subscription (reader, "s", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_delete_subscription (reader, "s", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  es_storage_handle_release_subscription (reader, "s");
  assert_sub (reader, "s", "a", 1, 2, "st");
  g_assert_false (g_file_test (lock, G_FILE_TEST_EXISTS));
  es_test_storage_close (reader);
}

static void
test_other_process (Fixture       *f,
                    gconstpointer  data)
{
  EsStorageHandle *storage = es_test_sqlite_storage_open (f->path, FALSE);
  g_autoptr(GError) error = NULL;
  g_autofree char *seen = NULL;
  g_autofree char *line = NULL;
  Holder *h;
  Holder *h2;

  g_test_summary ("The lock is exclusive across processes both ways, a waiting process "
                  "takes over on release, and a holder's kill -9 releases it");

  /* This process holds: another sees it busy, then free. */
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "s", FALSE, NULL, &error));
  seen = try_from_process (f->path, "s");
  g_assert_cmpstr (seen, ==, "busy");
  g_clear_pointer (&seen, g_free);
  seen = try_from_process (f->path, "other");
  g_assert_cmpstr (seen, ==, "held");
  g_clear_pointer (&seen, g_free);

  /* A process waits, and takes over when this one releases. */
  h = holder_spawn ("hold", f->path, "s");
  line = holder_line (h);
  g_assert_cmpstr (line, ==, "waiting");
  es_storage_handle_release_subscription (storage, "s");
  holder_wait_held (h);

  /* It holds now: this process is refused, waits, and takes over when
   * the holder is killed. */
  g_assert_false (es_storage_handle_acquire_subscription (storage, "s", FALSE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  g_subprocess_send_signal (h->process, SIGKILL);
  g_subprocess_wait (h->process, NULL, NULL);
  ES_TEST_ASSERT_OK (es_storage_handle_acquire_subscription (storage, "s", TRUE, NULL, &error));
  holder_free (h);

  /* And a process waiting on this one takes over when it closes. */
  h2 = holder_spawn ("hold", f->path, "s");
  g_clear_pointer (&line, g_free);
  line = holder_line (h2);
  g_assert_cmpstr (line, ==, "waiting");
  es_test_storage_close (storage);
  holder_wait_held (h2);
  holder_release (h2);
  holder_free (h2);
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static void
test_takeover_after_kill (Fixture       *f,
                          gconstpointer  data)
{
  const char *rounds_env = g_getenv ("ES_TEST_TAKEOVER_ROUNDS");
  guint64 rounds = 5;
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (gint64));

  g_test_summary ("Two processes on one name: the second waits while the first holds (it "
                  "never holds before the kill), and holds after the first is killed "
                  "with SIGKILL; the time from the kill to the takeover is reported "
                  "(documented bound: ~100 ms)");

  if (rounds_env != NULL && *rounds_env != '\0')
    g_assert_true (g_ascii_string_to_unsigned (rounds_env, 10, 1, 100000, &rounds, NULL));

  for (guint i = 0; i < rounds; i++)
    {
      Holder *first = holder_spawn ("hold", f->path, "s");
      Holder *second;
      g_autofree char *line = NULL;
      gint64 killed_at, held_at, took;

      holder_wait_held (first);
      second = holder_spawn ("hold", f->path, "s");
      line = holder_line (second);
      g_assert_cmpstr (line, ==, "waiting");

      /* Random time in the second's 100 ms retry cycle. */
      es_test_spin (g_random_int_range (0, 100));
      killed_at = g_get_monotonic_time ();
      g_subprocess_send_signal (first->process, SIGKILL);
      held_at = holder_wait_held (second);
      /* Never both: the second holds only after the kill. */
      g_assert_cmpint (held_at, >=, killed_at);
      took = held_at - killed_at;
      g_array_append_val (times, took);

      g_subprocess_wait (first->process, NULL, NULL);
      holder_release (second);
      holder_free (second);
      holder_free (first);
    }

  g_array_sort (times, compare_int64);
  g_test_message ("takeover after kill -9 over %u rounds: median %.1f ms, max %.1f ms",
                  times->len, g_array_index (times, gint64, times->len / 2) / 1000.0,
                  g_array_index (times, gint64, times->len - 1) / 1000.0);
}

int
main (int   argc,
      char *argv[])
{
  umask (022);
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data) \
  g_test_add ("/sqlite/subscription/" name, Fixture, data, \
              es_test_db_fixture_setup, func, es_test_db_fixture_teardown)

  ADD ("schema", test_schema, NULL);
  ADD ("migration-v2", test_migration_v2, NULL);
  ADD ("checkpoint", test_checkpoint, NULL);
  ADD ("checkpoint-rules", test_checkpoint_rules, NULL);
  ADD ("reset", test_reset, NULL);
  ADD ("delete", test_delete, NULL);
  ADD ("management-busy", test_management_busy, NULL);
  ADD ("acquire-same-storage", test_acquire_same_storage, NULL);
  ADD ("acquire-same-storage-memory", test_acquire_same_storage, ":memory:");
  ADD ("memory", test_memory, NULL);
  ADD ("two-storages", test_two_storages, NULL);
  ADD ("cancel", test_cancel, NULL);
  ADD ("close-releases", test_close_releases, NULL);
  ADD ("read-only", test_read_only, NULL);
  ADD ("other-process", test_other_process, NULL);
  ADD ("takeover-after-kill", test_takeover_after_kill, NULL);

  return g_test_run ();
}
