/* test-pg-subscription.c: durable subscriptions on PostgreSQL.
 *
 * What the PostgreSQL backend adds to the conformance tests: the
 * migration of a schema of version 2 (issue 16) to version 3, keeping
 * every event and position; what the subscriptions table holds after each
 * operation (checked with SQL, beside the library's answers); the lag
 * from the streams table; holding through a session advisory lock on a
 * connection of its own: exclusive between two storages (two sessions)
 * and two processes, a second holder through one storage refused at
 * once, waits that end when the holder releases, stops, closes its
 * storage, is killed (SIGKILL: the takeover time is measured) or is
 * cancelled; the lock key documented in doc/postgres.md, the keepalive
 * settings of the lock's session; and a holder whose session the server
 * ended (pg_terminate_backend): its saves fail and store nothing, and
 * another consumer takes over.
 *
 * Runs on the server in ES_TEST_PG_CONNINFO, or else on a throwaway server
 * it starts itself. Every test uses fresh schemas, dropped afterwards.
 * libpq is used directly only to prepare and inspect the database.
 *
 * Size knob: ES_TEST_PG_TAKEOVERS (kills of a holding process whose
 * takeover time is measured, default 3).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "es-glib/postgres/es-pg-private.h"

#include "es-test-utils.h"

/* The first half of every subscription lock key, as doc/postgres.md
 * documents it ("esgl"). */
#define LOCK_CLASS "1702061932"

/* Longest any wait of a test may last before it fails: a bound on hangs,
 * never a timing assertion. */
#define HANG_USEC (60 * G_USEC_PER_SEC)

static const char *test_conninfo;
static guint schema_counter;

typedef struct
{
  const char *conninfo;  /* (unowned) */
  char       *schema;    /* (owned) a fresh schema name */
  GPtrArray  *schemas;   /* (owned) (element-type utf8) dropped in teardown */
  PGconn     *admin;     /* (owned) */
} Fixture;

/* ------------------------------------------------------------------ */
/* libpq, directly                                                     */
/* ------------------------------------------------------------------ */

static PGresult *
admin_query (Fixture            *f,
             const char         *sql,
             int                 n_params,
             const char * const *params)
{
  PGresult *result = PQexecParams (f->admin, sql, n_params, NULL, params, NULL, NULL, 0);
  ExecStatusType status = PQresultStatus (result);

  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    g_error ("%s: %s", sql, PQresultErrorMessage (result));
  return result;
}

static void
admin_exec (Fixture    *f,
            const char *sql)
{
  PGresult *result = PQexec (f->admin, sql);
  ExecStatusType status = PQresultStatus (result);

  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    g_error ("%s: %s", sql, PQresultErrorMessage (result));
  PQclear (result);
}

/* The first value of @sql, with up to two parameters; NULL for no row or
 * a NULL. */
static char *
admin_text (Fixture    *f,
            const char *sql,
            const char *param1,
            const char *param2)
{
  const char *params[] = { param1, param2 };
  int n = param2 != NULL ? 2 : param1 != NULL ? 1 : 0;
  PGresult *result = admin_query (f, sql, n, params);
  char *text = NULL;

  if (PQntuples (result) > 0 && !PQgetisnull (result, 0, 0))
    text = g_strdup (PQgetvalue (result, 0, 0));
  PQclear (result);
  return text;
}

static gint64
admin_int (Fixture    *f,
           const char *sql,
           const char *param1,
           const char *param2)
{
  g_autofree char *text = admin_text (f, sql, param1, param2);

  g_assert_nonnull (text);
  return g_ascii_strtoll (text, NULL, 10);
}

static char *
qschema (Fixture    *f,
         const char *schema)
{
  char *quoted = PQescapeIdentifier (f->admin, schema, strlen (schema));
  char *copy = g_strdup (quoted);

  PQfreemem (quoted);
  return copy;
}

/* The stored row of subscription @name in the fixture's schema, as
 * "stream position state" (state in hex, or "null"), or NULL. */
static char *
stored_row (Fixture    *f,
            const char *name)
{
  g_autofree char *q = qschema (f, f->schema);
  g_autofree char *sql = g_strdup_printf (
    "SELECT stream_id || ' ' || position || ' ' || coalesce (encode (state, 'hex'), 'null')"
    " FROM %s.subscriptions WHERE name = $1", q);

  return admin_text (f, sql, name, NULL);
}

/* The lock key of @name in @schema, as doc/postgres.md gives it: pg_locks
 * rows with classid 1702061932, objsubid 2 (the two-int form) and objid
 * the hash of "<schema>.<name>". */
#define LOCKS_OF \
  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = " LOCK_CLASS \
  " AND objsubid = 2 AND objid = (hashtext($1 || '.' || $2)::int8 & 4294967295)::oid"

/* How many sessions wait for subscription @name of @schema. */
static gint64
n_waiters (Fixture    *f,
           const char *schema,
           const char *name)
{
  return admin_int (f, LOCKS_OF " AND NOT granted", schema, name);
}

/* The server process id of the session holding @name of @schema, or 0. */
static int
holder_pid (Fixture    *f,
            const char *schema,
            const char *name)
{
  g_autofree char *pid = admin_text (f,
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = " LOCK_CLASS
    " AND objsubid = 2 AND objid = (hashtext($1 || '.' || $2)::int8 & 4294967295)::oid"
    " AND granted", schema, name);

  return pid != NULL ? atoi (pid) : 0;
}

/* Polls until @n sessions wait for @name (fails the test after HANG_USEC). */
static void
wait_for_waiters (Fixture    *f,
                  const char *schema,
                  const char *name,
                  gint64      n)
{
  gint64 deadline = g_get_monotonic_time () + HANG_USEC;

  while (n_waiters (f, schema, name) != n)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("No %" G_GINT64_FORMAT " waiter(s) for subscription '%s' in time", n, name);
      g_usleep (5000);
    }
}

/* Polls until no session holds @name. */
static void
wait_for_no_holder (Fixture    *f,
                    const char *schema,
                    const char *name)
{
  gint64 deadline = g_get_monotonic_time () + HANG_USEC;

  while (holder_pid (f, schema, name) != 0)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Subscription '%s' still held", name);
      g_usleep (5000);
    }
}

/* ------------------------------------------------------------------ */
/* The library                                                         */
/* ------------------------------------------------------------------ */

static EsStorageHandle *
storage_new (Fixture    *f,
             const char *conninfo,
             const char *schema)
{
  g_autoptr(GError) error = NULL;
  EsPgStorage *storage = es_pg_storage_new (conninfo != NULL ? conninfo : f->conninfo,
                                            schema != NULL ? schema : f->schema, 2, NULL, &error);

  g_assert_no_error (error);
  return ES_STORAGE_HANDLE (storage);
}

static gint64
append_n (EsStorageHandle *storage,
          const char      *stream_id,
          guint            n)
{
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  gint64 version = 0;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *text = g_strdup_printf ("%s-%u", stream_id, i);
      g_autoptr(GBytes) data = g_bytes_new (text, strlen (text));

      g_ptr_array_add (events, es_candidate_event_new ("Counted", data));
    }
  g_assert_true (es_storage_handle_append (storage, stream_id, ES_VERSION_ANY,
                                           (EsCandidateEvent * const *) events->pdata, n,
                                           &version, NULL, &error));
  g_assert_no_error (error);
  return version;
}

static void
save_ok (EsStorageHandle *storage,
         const char      *name,
         const char      *stream_id,
         gint64           position,
         const char      *state)
{
  g_autoptr(GBytes) bytes = state != NULL ? g_bytes_new (state, strlen (state)) : NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (es_storage_handle_save_checkpoint (storage, name, stream_id, position, bytes,
                                                    NULL, &error));
  g_assert_no_error (error);
}

static GError *
save_fails (EsStorageHandle *storage,
            const char      *name,
            const char      *stream_id,
            gint64           position)
{
  GError *error = NULL;

  g_assert_false (es_storage_handle_save_checkpoint (storage, name, stream_id, position, NULL,
                                                     NULL, &error));
  g_assert_nonnull (error);
  return error;
}

static void
acquire_ok (EsStorageHandle *storage,
            const char      *name,
            gboolean         wait)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (es_storage_handle_acquire_subscription (storage, name, wait, NULL, &error));
  g_assert_no_error (error);
}

static void
assert_acquire_busy (EsStorageHandle *storage,
                     const char      *name,
                     gboolean         wait)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (es_storage_handle_acquire_subscription (storage, name, wait, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, name));
}

static EsSubscriptionInfo *
get_ok (EsStorageHandle *storage,
        const char      *name)
{
  g_autoptr(GError) error = NULL;
  EsSubscriptionInfo *info = es_storage_handle_get_subscription (storage, name, NULL, &error);

  g_assert_no_error (error);
  return info;
}

static char *
state_text (EsSubscriptionInfo *info)
{
  GBytes *state = es_subscription_info_get_state (info);
  gsize size;
  const char *data;

  if (state == NULL)
    return g_strdup ("null");
  data = g_bytes_get_data (state, &size);
  return g_strndup (data, size);
}

/* An acquisition in a thread of its own. */
typedef struct
{
  EsStorageHandle *storage;      /* (unowned) */
  const char      *name;
  GCancellable    *cancellable;  /* (unowned) (nullable) */
  gboolean         ok;
  GError          *error;        /* (owned) */
  gint64           done_usec;    /* monotonic time of the answer */
  GThread         *thread;
} Waiter;

static gpointer
waiter_thread (gpointer data)
{
  Waiter *w = data;

  w->ok = es_storage_handle_acquire_subscription (w->storage, w->name, TRUE, w->cancellable,
                                                  &w->error);
  w->done_usec = g_get_monotonic_time ();
  return NULL;
}

static void
waiter_start (Waiter          *w,
              EsStorageHandle *storage,
              const char      *name,
              GCancellable    *cancellable)
{
  *w = (Waiter) { storage, name, cancellable, FALSE, NULL, 0, NULL };
  w->thread = g_thread_new ("waiter", waiter_thread, w);
}

static void
waiter_join (Waiter *w)
{
  g_thread_join (g_steal_pointer (&w->thread));
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static char *
fresh_schema (Fixture *f)
{
  char *schema = g_strdup_printf ("es_test_sub_%d_%u", (int) getpid (), ++schema_counter);

  g_ptr_array_add (f->schemas, g_strdup (schema));
  return schema;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->conninfo = test_conninfo;
  f->schemas = g_ptr_array_new_with_free_func (g_free);
  f->schema = fresh_schema (f);
  f->admin = PQconnectdb (f->conninfo);
  g_assert_cmpint (PQstatus (f->admin), ==, CONNECTION_OK);
  admin_exec (f, "SET client_min_messages = warning");
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  for (guint i = 0; i < f->schemas->len; i++)
    {
      g_autofree char *q = qschema (f, g_ptr_array_index (f->schemas, i));
      g_autofree char *sql = g_strdup_printf ("DROP SCHEMA IF EXISTS %s CASCADE", q);

      admin_exec (f, sql);
    }
  g_clear_pointer (&f->schemas, g_ptr_array_unref);
  g_clear_pointer (&f->schema, g_free);
  g_clear_pointer (&f->admin, PQfinish);
}

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

/* Takes away what schema version 4 (issue 22) added to a schema the
 * current code wrote, leaving what version 3 wrote for the same history:
 * global_position holds the last position used (the sequence's), the rows
 * no transaction id. delete_stream() stays the current one: nothing calls
 * it before the migration, which replaces it. */
static void
downgrade_to_v3 (Fixture *f)
{
  g_autofree char *q = qschema (f, f->schema);
  g_autofree char *sql = g_strdup_printf (
    "UPDATE %s.global_position SET last_sequence_id ="
    "  (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM %s.positions);"
    "DROP SEQUENCE %s.positions;"
    "ALTER TABLE %s.events DROP COLUMN xact;"
    "ALTER TABLE %s.tombstones DROP COLUMN xact;"
    "ALTER TABLE %s.streams DROP COLUMN deleted_position, DROP COLUMN deleted_xact;"
    "DROP FUNCTION %s.reserve_positions, %s.horizon;"
    "CREATE OR REPLACE FUNCTION %s.subscription_head (p_stream text) RETURNS bigint"
    "  LANGUAGE sql STABLE AS $$"
    "SELECT CASE WHEN p_stream = '@all'"
    "  THEN (SELECT g.last_sequence_id FROM %s.global_position g)"
    "  ELSE coalesce ((SELECT t.version FROM %s.streams t WHERE t.stream_id = p_stream), 0)"
    "END $$;"
    "DROP FUNCTION %s.all_head;"
    "UPDATE %s.es_glib_version SET version = 3",
    q, q, q, q, q, q, q, q, q, q, q, q, q);

  admin_exec (f, sql);
}

/* What the tables of schema version 2 hold: for each, its row count and
 * a digest of its rows (without the columns version 4 adds). */
static char *
v2_content (Fixture *f)
{
  static const char * const tables[] = {
    "es_glib_version", "events", "snapshots", "global_position", "streams", "settings",
    "tombstones",
  };
  g_autofree char *q = qschema (f, f->schema);
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autofree char *sql = g_strdup_printf (
        "SELECT count(*) || ' ' || md5 (coalesce (string_agg (r::text, E'\\n'"
        " ORDER BY r::text), '')) FROM %s.%s t,"
        " LATERAL (SELECT to_jsonb (t) - 'xact' - 'deleted_position' - 'deleted_xact') AS u (r)",
        q, tables[i]);
      g_autofree char *digest = admin_text (f, sql, NULL, NULL);

      /* The version row is the one thing the migration changes. */
      if (i > 0)
        g_string_append_printf (out, "%s: %s\n", tables[i], digest);
    }
  return g_string_free (out, FALSE);
}

/* The columns, indexes, constraints and functions of the schema, but
 * those of subscriptions and those version 4 adds or replaces. */
static char *
v2_structure (Fixture *f)
{
  g_autofree char *columns = admin_text (f,
    "SELECT string_agg (format ('%s %s %s %s', c.relname, a.attname,"
    " format_type (a.atttypid, a.atttypmod), a.attnotnull), E'\\n' ORDER BY c.relname, a.attnum)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " WHERE n.nspname = $1 AND c.relname NOT LIKE 'subscriptions%'"
    " AND c.relname NOT IN ('positions', 'streams_deleted_position')"
    " AND a.attname NOT IN ('xact', 'deleted_position', 'deleted_xact')", f->schema, NULL);
  g_autofree char *functions = admin_text (f,
    "SELECT string_agg (md5 (pg_get_functiondef (p.oid)), ',' ORDER BY p.proname)"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = $1 AND p.proname NOT LIKE '%subscription%'"
    " AND p.proname NOT IN ('save_checkpoint', 'delete_stream', 'reserve_positions', 'horizon',"
    " 'all_head')", f->schema, NULL);

  return g_strdup_printf ("%s\n%s", columns, functions);
}

static void
test_migration (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *q = qschema (f, f->schema);
  g_autofree char *sql = NULL;
  g_autofree char *content = NULL;
  g_autofree char *structure = NULL;
  g_autofree char *after = NULL;
  g_autoptr(GPtrArray) before_events = NULL;
  g_autoptr(GPtrArray) after_events = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSubscriptionInfo) info = NULL;
  EsStorageHandle *storage;
  gint64 version = 0;

  g_test_summary ("A schema of version 2 (issue 16) holding events, deletes (gaps in the "
                  "positions), a tombstone, a snapshot and a retention policy is migrated to "
                  "the current version: every table keeps its rows, every event and position reads back "
                  "the same, appends continue after the last position, and subscriptions are "
                  "stored");

  /* Version 2 as the previous es-glib wrote it: what version 3 adds (the
   * subscriptions table and its functions, nothing else) taken away. */
  storage = storage_new (f, NULL, NULL);
  append_n (storage, "order-1", 3);
  append_n (storage, "order-2", 2);
  append_n (storage, "gone", 2);
  append_n (storage, "soft", 1);
  g_assert_true (es_storage_handle_delete_stream (storage, "gone", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_true (es_storage_handle_delete_stream (storage, "soft", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_true (es_storage_handle_set_retention (storage, "order-2", 0, 10, NULL, &error));
  {
    g_autoptr(GBytes) state = g_bytes_new_static ("st", 2);

    g_assert_true (es_storage_handle_save_snapshot (storage, "order-1", "total", 2, state, NULL,
                                                    &error));
  }
  g_assert_no_error (error);
  append_n (storage, "order-1", 1);
  before_events = es_storage_handle_read_page_full (storage, NULL, 0,
                                                    ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL,
                                                    100, NULL, &error);
  g_assert_no_error (error);
  es_test_storage_close (storage);

  downgrade_to_v3 (f);
  sql = g_strdup_printf ("DROP TABLE %s.subscriptions;"
                         "DROP FUNCTION %s.save_checkpoint, %s.change_subscription,"
                         " %s.subscription_head;"
                         "UPDATE %s.es_glib_version SET version = 2", q, q, q, q, q);
  admin_exec (f, sql);
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                         " ON n.oid = c.relnamespace WHERE n.nspname = $1"
                         " AND c.relname LIKE '%%subscription%%'");
  g_assert_cmpint (admin_int (f, sql, f->schema, NULL), ==, 0);
  content = v2_content (f);
  structure = v2_structure (f);

  /* Opening migrates. */
  storage = storage_new (f, NULL, NULL);
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("SELECT version FROM %s.es_glib_version", q);
  g_assert_cmpint (admin_int (f, sql, NULL, NULL), ==, 4);
  after = v2_content (f);
  g_assert_cmpstr (after, ==, content);
  g_clear_pointer (&after, g_free);
  after = v2_structure (f);
  g_assert_cmpstr (after, ==, structure);

  /* Every event and marker, at its position. */
  after_events = es_storage_handle_read_page_full (storage, NULL, 0,
                                                   ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL, 100,
                                                   NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (after_events->len, ==, before_events->len);
  for (guint i = 0; i < after_events->len; i++)
    {
      EsStoredEvent *a = g_ptr_array_index (before_events, i);
      EsStoredEvent *b = g_ptr_array_index (after_events, i);

      g_assert_cmpint (es_stored_event_get_sequence_id (b), ==, es_stored_event_get_sequence_id (a));
      g_assert_cmpstr (es_stored_event_get_stream_id (b), ==, es_stored_event_get_stream_id (a));
      g_assert_cmpint (es_stored_event_get_version (b), ==, es_stored_event_get_version (a));
      g_assert_true (g_bytes_equal (es_stored_event_get_data (b), es_stored_event_get_data (a)));
    }
  /* 3 + 2 + 2 + 1 events, a tombstone and a soft delete, 1 event: 11. */
  {
    g_autoptr(EsStreamInfo) all = es_storage_handle_get_stream_info (storage, NULL, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpint (es_stream_info_get_current_version (all), ==, 11);
  }

  /* Appends continue, subscriptions work, with their lag. */
  version = append_n (storage, "order-1", 1);
  g_assert_cmpint (version, ==, 5);
  {
    g_autoptr(GPtrArray) tail = es_storage_handle_read_page (storage, NULL, 11, NULL, 10, NULL,
                                                             &error);

    g_assert_no_error (error);
    g_assert_cmpuint (tail->len, ==, 1);
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (tail, 0)), ==, 12);
  }
  save_ok (storage, "projector", NULL, 4, "s");
  save_ok (storage, "order-view", "order-1", 2, NULL);
  info = get_ok (storage, "projector");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 4);
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 12 - 4);
  g_clear_object (&info);
  info = get_ok (storage, "order-view");
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 5 - 2);

  es_test_storage_close (storage);
}

/* One event appended as schema version 3 did: its position from the
 * global_position row, in the same transaction as the event and the
 * stream's row. */
static void
v3_append (Fixture    *f,
           const char *stream_id,
           gint64      version,
           const char *text)
{
  g_autofree char *q = qschema (f, f->schema);
  g_autofree char *sql = g_strdup_printf (
    "BEGIN;"
    "WITH pos AS (UPDATE %s.global_position SET last_sequence_id = last_sequence_id + 1"
    "  RETURNING last_sequence_id)"
    " INSERT INTO %s.events (sequence_id, stream_id, version, event_type, recorded_at, data)"
    " SELECT last_sequence_id, '%s', %" G_GINT64_FORMAT ", 'Counted', clock_timestamp (),"
    "  convert_to ('%s', 'UTF8') FROM pos;"
    "INSERT INTO %s.streams AS s (stream_id, version, event_count, first_version, first_at,"
    "  last_at) VALUES ('%s', %" G_GINT64_FORMAT ", 1, %" G_GINT64_FORMAT ", now (), now ())"
    " ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,"
    "  event_count = s.event_count + 1, last_at = excluded.last_at;"
    "COMMIT",
    q, q, stream_id, version, text, q, stream_id, version, version);

  admin_exec (f, sql);
}

static void
test_migration_v3 (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *q = qschema (f, f->schema);
  g_autofree char *sql = NULL;
  g_autoptr(GPtrArray) before_events = NULL;
  g_autoptr(GPtrArray) after_events = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSubscriptionInfo) info = NULL;
  EsStorageHandle *storage;
  gint64 version = 0;

  g_test_summary ("A schema of version 3 (one counter row for positions) holding events, a "
                  "tombstone, a soft delete, a snapshot, a subscription and appends made the "
                  "version 3 way is migrated to version 4: every event and marker reads back "
                  "at its position, the head of @all is the last position used (a soft "
                  "delete's too), new positions come after it from the sequence, rows "
                  "before the migration are visible at once, subscriptions keep their lag");

  /* Version 3 as the previous es-glib wrote it. */
  storage = storage_new (f, NULL, NULL);
  append_n (storage, "order-1", 3);
  append_n (storage, "gone", 2);
  append_n (storage, "soft", 1);
  g_assert_true (es_storage_handle_delete_stream (storage, "gone", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  g_assert_true (es_storage_handle_delete_stream (storage, "soft", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_no_error (error);
  save_ok (storage, "projector", NULL, 3, "p");
  es_test_storage_close (storage);
  downgrade_to_v3 (f);
  sql = g_strdup_printf ("SELECT last_sequence_id FROM %s.global_position", q);
  /* 3 + 2 + 1 events, a tombstone, a soft delete. */
  g_assert_cmpint (admin_int (f, sql, NULL, NULL), ==, 8);
  g_clear_pointer (&sql, g_free);
  /* Two more appends by version 3's code, then a position taken without
   * a row (as a soft delete leaves): the last position used is 11. */
  v3_append (f, "order-2", 1, "order-2-0");
  v3_append (f, "order-1", 4, "order-1-3");
  sql = g_strdup_printf ("UPDATE %s.global_position SET last_sequence_id = 11", q);
  admin_exec (f, sql);
  g_clear_pointer (&sql, g_free);

  /* Opening migrates. */
  storage = storage_new (f, NULL, NULL);
  sql = g_strdup_printf ("SELECT version FROM %s.es_glib_version", q);
  g_assert_cmpint (admin_int (f, sql, NULL, NULL), ==, 4);
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("SELECT count(*) FROM %s.events WHERE xact IS NOT NULL", q);
  g_assert_cmpint (admin_int (f, sql, NULL, NULL), ==, 0);
  g_clear_pointer (&sql, g_free);

  /* Every event and the marker, at its position, visible at once. */
  after_events = es_storage_handle_read_page_full (storage, NULL, 0,
                                                   ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL, 100,
                                                   NULL, &error);
  g_assert_no_error (error);
  {
    static const struct
    {
      gint64      position;
      const char *stream;
      gint64      version;
      const char *text;
    } expected[] = {
      { 1, "order-1", 1, "order-1-0" },
      { 2, "order-1", 2, "order-1-1" },
      { 3, "order-1", 3, "order-1-2" },
      { 7, "gone", 2, NULL },       /* the tombstone; 4, 5 (gone), 6 (soft), 8 deleted */
      { 9, "order-2", 1, "order-2-0" },
      { 10, "order-1", 4, "order-1-3" },
    };

    g_assert_cmpuint (after_events->len, ==, G_N_ELEMENTS (expected));
    for (guint i = 0; i < after_events->len; i++)
      {
        EsStoredEvent *e = g_ptr_array_index (after_events, i);

        g_assert_cmpint (es_stored_event_get_sequence_id (e), ==, expected[i].position);
        g_assert_cmpstr (es_stored_event_get_stream_id (e), ==, expected[i].stream);
        g_assert_cmpint (es_stored_event_get_version (e), ==, expected[i].version);
        if (expected[i].text != NULL)
          {
            GBytes *bytes = es_stored_event_get_data (e);
            g_autofree char *text = g_strndup (g_bytes_get_data (bytes, NULL),
                                               g_bytes_get_size (bytes));

            g_assert_cmpstr (text, ==, expected[i].text);
          }
        else
          g_assert_cmpint (es_stored_event_get_flags (e) & ES_STORED_EVENT_FLAGS_TOMBSTONE, !=, 0);
      }
  }
  {
    g_autoptr(EsStreamInfo) all = es_storage_handle_get_stream_info (storage, NULL, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpint (es_stream_info_get_current_version (all), ==, 11);
    g_assert_true (es_storage_handle_get_version (storage, NULL, &version, NULL, &error));
    g_assert_cmpint (version, ==, 11);
  }
  info = get_ok (storage, "projector");
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 11 - 3);
  g_clear_object (&info);

  /* Appends continue after the last position used, from the sequence. */
  version = append_n (storage, "order-2", 2);
  g_assert_cmpint (version, ==, 3);
  g_assert_true (es_storage_handle_delete_stream (storage, "order-1", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(GPtrArray) tail = es_storage_handle_read_page (storage, NULL, 11, NULL, 10, NULL,
                                                             &error);
    g_autoptr(EsStreamInfo) all = es_storage_handle_get_stream_info (storage, NULL, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (tail->len, ==, 2);
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (tail, 0)), ==, 12);
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (tail, 1)), ==, 13);
    g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (tail, 1)), ==, "order-2");
    /* The soft delete took 14, and the head counts it. */
    g_assert_cmpint (es_stream_info_get_current_version (all), ==, 14);
  }
  sql = g_strdup_printf ("SELECT count(*) FROM %s.events WHERE xact IS NOT NULL", q);
  g_assert_cmpint (admin_int (f, sql, NULL, NULL), ==, 2);
  g_clear_pointer (&sql, g_free);
  info = get_ok (storage, "projector");
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 14 - 3);

  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Stored subscriptions                                                */
/* ------------------------------------------------------------------ */

static void
test_store (Fixture       *f,
            gconstpointer  data)
{
  EsStorageHandle *storage = storage_new (f, NULL, NULL);
  g_autoptr(EsSubscriptionInfo) info = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *row = NULL;
  g_autofree char *text = NULL;
  gint64 before, after;

  g_test_summary ("Checkpoints and states as the subscriptions table stores them: created by "
                  "the first save, a NULL state keeps the stored one, an empty state is not "
                  "NULL, a checkpoint never moves back and a subscription keeps its stream "
                  "(refusals store nothing), lag from the streams table and the last "
                  "position, names listed in byte order without their states");

  append_n (storage, "cart-1", 5);
  append_n (storage, "cart-2", 3);

  g_assert_null (get_ok (storage, "none"));
  g_assert_null (stored_row (f, "none"));

  before = g_get_real_time ();
  save_ok (storage, "cart-view", "cart-1", 2, "two");
  after = g_get_real_time ();
  row = stored_row (f, "cart-view");
  g_assert_cmpstr (row, ==, "cart-1 2 74776f");
  info = get_ok (storage, "cart-view");
  g_assert_cmpstr (es_subscription_info_get_name (info), ==, "cart-view");
  g_assert_cmpstr (es_subscription_info_get_stream_id (info), ==, "cart-1");
  g_assert_cmpint (es_subscription_info_get_checkpoint (info), ==, 2);
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 3);
  text = state_text (info);
  g_assert_cmpstr (text, ==, "two");
  /* The server's clock is this machine's: the test server is local. */
  g_assert_cmpint (es_subscription_info_get_updated_usec (info), >=, before);
  g_assert_cmpint (es_subscription_info_get_updated_usec (info), <=, after);
  g_clear_object (&info);

  /* NULL keeps the state; the same position again is fine. */
  save_ok (storage, "cart-view", "cart-1", 4, NULL);
  g_free (row);
  row = stored_row (f, "cart-view");
  g_assert_cmpstr (row, ==, "cart-1 4 74776f");
  save_ok (storage, "cart-view", "cart-1", 4, "");
  g_free (row);
  row = stored_row (f, "cart-view");
  g_assert_cmpstr (row, ==, "cart-1 4 ");
  info = get_ok (storage, "cart-view");
  g_assert_nonnull (es_subscription_info_get_state (info));
  g_assert_cmpuint (g_bytes_get_size (es_subscription_info_get_state (info)), ==, 0);
  g_clear_object (&info);

  /* Backwards, another stream, @all: refused, nothing stored. */
  error = save_fails (storage, "cart-view", "cart-1", 3);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "3"));
  g_assert_nonnull (strstr (error->message, "4"));
  g_assert_nonnull (strstr (error->message, "cart-view"));
  g_clear_error (&error);
  error = save_fails (storage, "cart-view", "cart-2", 5);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'cart-1'"));
  g_assert_nonnull (strstr (error->message, "'cart-2'"));
  g_clear_error (&error);
  error = save_fails (storage, "cart-view", NULL, 5);
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'@all'"));
  g_clear_error (&error);
  g_free (row);
  row = stored_row (f, "cart-view");
  g_assert_cmpstr (row, ==, "cart-1 4 ");

  /* @all: lag from the last position used, deletes included. */
  save_ok (storage, "all-view", NULL, 1, NULL);
  g_free (row);
  row = stored_row (f, "all-view");
  g_assert_cmpstr (row, ==, "@all 1 null");
  g_assert_true (es_storage_handle_delete_stream (storage, "cart-2", ES_VERSION_ANY,
                                                  ES_DELETE_FLAGS_NONE, NULL, &error));
  g_assert_no_error (error);
  info = get_ok (storage, "all-view");
  g_assert_cmpstr (es_subscription_info_get_stream_id (info), ==, "@all");
  g_assert_cmpint (es_subscription_info_get_lag (info), ==, 9 - 1);
  g_assert_null (es_subscription_info_get_state (info));
  g_clear_object (&info);

  /* A subscription of a stream never written: lag 0; a checkpoint past
   * the head (a reset stream... none here): never negative. */
  save_ok (storage, "\xc3\xa9t\xc3\xa9", "nothing-yet", 0, NULL);
  save_ok (storage, "Z-upper", "cart-1", 5, "big state");

  infos = es_storage_handle_list_subscriptions (storage, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (infos->len, ==, 4);
  {
    static const char * const names[] = { "Z-upper", "all-view", "cart-view", "\xc3\xa9t\xc3\xa9" };
    static const gint64 lags[] = { 0, 8, 1, 0 };

    for (guint i = 0; i < infos->len; i++)
      {
        EsSubscriptionInfo *item = g_ptr_array_index (infos, i);

        g_assert_cmpstr (es_subscription_info_get_name (item), ==, names[i]);
        g_assert_cmpint (es_subscription_info_get_lag (item), ==, lags[i]);
        g_assert_null (es_subscription_info_get_state (item));
      }
  }

  es_test_storage_close (storage);
}

static void
test_reset_delete (Fixture       *f,
                   gconstpointer  data)
{
  EsStorageHandle *storage = storage_new (f, NULL, NULL);
  EsStorageHandle *other = storage_new (f, NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *row = NULL;

  g_test_summary ("Reset moves a checkpoint either way within the head and drops the state; "
                  "reset and delete fail with NOT_FOUND for an unknown name, with "
                  "INVALID_ARGUMENT beyond the head, with BUSY while this storage or another "
                  "session holds the subscription, and change nothing then");

  append_n (storage, "s", 4);
  save_ok (storage, "sub", "s", 3, "state");
  save_ok (storage, "whole", NULL, 2, "w");

  g_assert_false (es_storage_handle_reset_subscription (storage, "none", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "'none'"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_delete_subscription (storage, "none", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_false (es_storage_handle_reset_subscription (storage, "sub", 5, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "5"));
  g_assert_nonnull (strstr (error->message, "4"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_reset_subscription (storage, "whole", 5, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  row = stored_row (f, "sub");
  g_assert_cmpstr (row, ==, "s 3 7374617465");

  g_assert_true (es_storage_handle_reset_subscription (storage, "sub", 1, NULL, &error));
  g_assert_no_error (error);
  g_free (row);
  row = stored_row (f, "sub");
  g_assert_cmpstr (row, ==, "s 1 null");
  g_assert_true (es_storage_handle_reset_subscription (storage, "sub", 4, NULL, &error));
  g_assert_true (es_storage_handle_reset_subscription (storage, "whole", 4, NULL, &error));
  g_assert_no_error (error);
  g_free (row);
  row = stored_row (f, "whole");
  g_assert_cmpstr (row, ==, "@all 4 null");

  /* Held by another session: BUSY, nothing changes. */
  acquire_ok (other, "sub", FALSE);
  g_assert_false (es_storage_handle_reset_subscription (storage, "sub", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "'sub'"));
  g_clear_error (&error);
  g_assert_false (es_storage_handle_delete_subscription (storage, "sub", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  /* Held through this storage: BUSY too. */
  g_assert_false (es_storage_handle_reset_subscription (other, "sub", 0, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (es_storage_handle_delete_subscription (other, "sub", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  g_free (row);
  row = stored_row (f, "sub");
  g_assert_cmpstr (row, ==, "s 4 null");

  es_storage_handle_release_subscription (other, "sub");
  g_assert_true (es_storage_handle_delete_subscription (storage, "sub", NULL, &error));
  g_assert_no_error (error);
  g_clear_pointer (&row, g_free);
  row = stored_row (f, "sub");
  g_assert_null (row);
  g_assert_null (get_ok (storage, "sub"));
  /* A new one under the same name starts afresh, on any stream. */
  save_ok (storage, "sub", NULL, 0, NULL);
  row = stored_row (f, "sub");
  g_assert_cmpstr (row, ==, "@all 0 null");

  es_test_storage_close (other);
  es_test_storage_close (storage);
}

/* ------------------------------------------------------------------ */
/* Holding                                                             */
/* ------------------------------------------------------------------ */

static void
test_exclusive_storages (Fixture       *f,
                         gconstpointer  data)
{
  EsStorageHandle *a = storage_new (f, NULL, NULL);
  EsStorageHandle *b = storage_new (f, NULL, NULL);
  g_autofree char *schema2 = fresh_schema (f);
  EsStorageHandle *c = storage_new (f, NULL, schema2);
  g_autoptr(GError) error = NULL;
  g_autofree char *row = NULL;
  Waiter w;
  int pid_a;

  g_test_summary ("Two storages are two sessions: while one holds a subscription the other "
                  "cannot acquire it (BUSY without waiting) nor save its checkpoint; a second "
                  "acquisition through the holder's storage is BUSY at once, even waiting; a "
                  "waiter in the other storage takes over when the holder releases; the same "
                  "name in another schema is another subscription");

  acquire_ok (a, "projector", FALSE);
  pid_a = _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (a), "projector");
  g_assert_cmpint (pid_a, !=, 0);
  g_assert_cmpint (holder_pid (f, f->schema, "projector"), ==, pid_a);
  save_ok (a, "projector", NULL, 0, "a");

  assert_acquire_busy (b, "projector", FALSE);
  assert_acquire_busy (a, "projector", FALSE);
  /* Waiting for itself would never end: refused at once. */
  assert_acquire_busy (a, "projector", TRUE);
  g_assert_cmpint (n_waiters (f, f->schema, "projector"), ==, 0);

  error = save_fails (b, "projector", NULL, 1);
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  row = stored_row (f, "projector");
  g_assert_cmpstr (row, ==, "@all 0 61");

  /* Another schema, another key. */
  acquire_ok (c, "projector", FALSE);
  g_assert_cmpint (holder_pid (f, schema2, "projector"),
                   ==, _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (c), "projector"));

  /* b waits, then takes over as a releases. */
  waiter_start (&w, b, "projector", NULL);
  wait_for_waiters (f, f->schema, "projector", 1);
  /* While b waits, b's storage refuses a second holder at once. */
  assert_acquire_busy (b, "projector", TRUE);
  save_ok (a, "projector", NULL, 2, NULL);
  es_storage_handle_release_subscription (a, "projector");
  waiter_join (&w);
  g_assert_no_error (w.error);
  g_assert_true (w.ok);
  g_assert_cmpint (holder_pid (f, f->schema, "projector"),
                   ==, _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (b), "projector"));
  g_assert_cmpint (_es_pg_storage_get_subscription_pid (ES_PG_STORAGE (a), "projector"), ==, 0);

  /* Roles swapped. */
  error = save_fails (a, "projector", NULL, 3);
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);
  save_ok (b, "projector", NULL, 3, "b");
  g_free (row);
  row = stored_row (f, "projector");
  g_assert_cmpstr (row, ==, "@all 3 62");
  /* Releasing what one does not hold does nothing. */
  es_storage_handle_release_subscription (a, "projector");
  es_storage_handle_release_subscription (a, "never-held");
  g_assert_cmpint (holder_pid (f, f->schema, "projector"), !=, 0);

  es_storage_handle_release_subscription (b, "projector");
  g_assert_cmpint (holder_pid (f, f->schema, "projector"), ==, 0);
  /* Released: anyone saves (nobody holds it). */
  save_ok (a, "projector", NULL, 4, NULL);

  es_test_storage_close (c);
  es_test_storage_close (b);
  es_test_storage_close (a);
}

static void
test_cancel_wait (Fixture       *f,
                  gconstpointer  data)
{
  EsStorageHandle *a = storage_new (f, NULL, NULL);
  EsStorageHandle *b = storage_new (f, NULL, NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  Waiter w;

  g_test_summary ("A wait for a subscription ends with G_IO_ERROR_CANCELLED when its "
                  "cancellable fires (a cancel request to the server), leaving no waiter and "
                  "nothing held; the storage can acquire it later");

  acquire_ok (a, "sub", FALSE);

  waiter_start (&w, b, "sub", cancellable);
  wait_for_waiters (f, f->schema, "sub", 1);
  g_cancellable_cancel (cancellable);
  waiter_join (&w);
  g_assert_false (w.ok);
  g_assert_error (w.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&w.error);
  g_assert_cmpint (n_waiters (f, f->schema, "sub"), ==, 0);
  g_assert_cmpint (holder_pid (f, f->schema, "sub"),
                   ==, _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (a), "sub"));

  /* Already cancelled: not even a connection. */
  g_assert_false (es_storage_handle_acquire_subscription (b, "sub", TRUE, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* b is not left "in use": BUSY says another consumer, and after the
   * release b acquires. */
  assert_acquire_busy (b, "sub", FALSE);
  es_storage_handle_release_subscription (a, "sub");
  acquire_ok (b, "sub", FALSE);

  es_test_storage_close (b);
  es_test_storage_close (a);
}

static void
test_close_releases (Fixture       *f,
                     gconstpointer  data)
{
  EsStorageHandle *a = storage_new (f, NULL, NULL);
  EsStorageHandle *b = storage_new (f, NULL, NULL);
  g_autoptr(GError) error = NULL;
  Waiter w;

  g_test_summary ("Closing a storage releases what it holds (another storage acquires at "
                  "once, without waiting) and ends its waits with ES_ERROR_CLOSED; a closed "
                  "storage acquires nothing");

  acquire_ok (a, "one", FALSE);
  acquire_ok (a, "two", FALSE);
  acquire_ok (b, "three", FALSE);
  waiter_start (&w, a, "three", NULL);
  wait_for_waiters (f, f->schema, "three", 1);

  g_assert_true (es_storage_handle_close (a, NULL, &error));
  g_assert_no_error (error);
  waiter_join (&w);
  g_assert_false (w.ok);
  g_assert_error (w.error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&w.error);
  g_assert_cmpint (n_waiters (f, f->schema, "three"), ==, 0);

  acquire_ok (b, "one", FALSE);
  acquire_ok (b, "two", FALSE);

  g_assert_false (es_storage_handle_acquire_subscription (a, "four", FALSE, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  g_object_unref (a);
  es_test_storage_close (b);
  g_assert_cmpint (holder_pid (f, f->schema, "one"), ==, 0);
}

static void
test_session_settings (Fixture       *f,
                       gconstpointer  data)
{
  /* A server configured with a short statement timeout: it must not end
   * a wait. */
  g_autofree char *short_timeout = g_strdup_printf ("%s options='-c statement_timeout=200'",
                                                    f->conninfo);
  g_autofree char *own_keepalive = g_strdup_printf ("%s keepalives_idle=30", f->conninfo);
  EsStorageHandle *a = storage_new (f, NULL, NULL);
  EsStorageHandle *b = storage_new (f, short_timeout, NULL);
  EsStorageHandle *c = storage_new (f, own_keepalive, NULL);
  g_autofree char *value = NULL;
  Waiter w;

  g_test_summary ("The session that holds a subscription has TCP keepalives (idle 10 s, "
                  "interval 5 s, count 3) on the client's side unless the connection string "
                  "sets them, and on the server's side; no statement timeout of the "
                  "configuration ends a wait");

  acquire_ok (a, "sub", FALSE);
  value = _es_pg_storage_get_subscription_conninfo (ES_PG_STORAGE (a), "sub", "keepalives_idle");
  g_assert_cmpstr (value, ==, "10");
  g_free (value);
  value = _es_pg_storage_get_subscription_conninfo (ES_PG_STORAGE (a), "sub",
                                                    "keepalives_interval");
  g_assert_cmpstr (value, ==, "5");
  g_free (value);
  value = _es_pg_storage_get_subscription_conninfo (ES_PG_STORAGE (a), "sub", "keepalives_count");
  g_assert_cmpstr (value, ==, "3");
  g_free (value);
  /* Set for the session (on a Unix socket, the server shows 0 but keeps
   * the setting for TCP). */
  value = _es_pg_storage_query_subscription_session (
    ES_PG_STORAGE (a), "sub",
    "SELECT string_agg (name || '=' || source, ',' ORDER BY name) FROM pg_settings"
    " WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',"
    " 'statement_timeout', 'lock_timeout')");
  g_assert_cmpstr (value, ==,
                   "lock_timeout=session,statement_timeout=session,tcp_keepalives_count=session,"
                   "tcp_keepalives_idle=session,tcp_keepalives_interval=session");
  g_free (value);

  /* The connection string's own setting wins. */
  acquire_ok (c, "other", FALSE);
  value = _es_pg_storage_get_subscription_conninfo (ES_PG_STORAGE (c), "other",
                                                    "keepalives_idle");
  g_assert_cmpstr (value, ==, "30");
  g_clear_pointer (&value, g_free);

  /* b waits more than its statement timeout. */
  waiter_start (&w, b, "sub", NULL);
  wait_for_waiters (f, f->schema, "sub", 1);
  g_usleep (600 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (n_waiters (f, f->schema, "sub"), ==, 1);
  es_storage_handle_release_subscription (a, "sub");
  waiter_join (&w);
  g_assert_no_error (w.error);
  g_assert_true (w.ok);

  es_test_storage_close (c);
  es_test_storage_close (b);
  es_test_storage_close (a);
}

static void
test_terminated_holder (Fixture       *f,
                        gconstpointer  data)
{
  EsStorageHandle *a = storage_new (f, NULL, NULL);
  EsStorageHandle *b = storage_new (f, NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *row = NULL;
  g_autofree char *terminate = NULL;
  int pid;

  g_test_summary ("When the server ends the session that holds a subscription "
                  "(pg_terminate_backend, found through the documented lock key), the "
                  "holder's saves fail with ES_ERROR_STORAGE and store nothing, even after "
                  "another consumer took over; its release then does not touch the new "
                  "holder's lock");

  append_n (a, "s", 3);
  acquire_ok (a, "sub", FALSE);
  save_ok (a, "sub", "s", 1, "one");

  pid = holder_pid (f, f->schema, "sub");
  g_assert_cmpint (pid, ==, _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (a), "sub"));
  terminate = g_strdup_printf ("SELECT pg_terminate_backend (%d, 60000)", pid);
  admin_exec (f, terminate);
  wait_for_no_holder (f, f->schema, "sub");

  /* Before anyone took over. */
  error = save_fails (a, "sub", "s", 2);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_nonnull (strstr (error->message, "'sub'"));
  g_test_message ("%s", error->message);
  g_clear_error (&error);
  row = stored_row (f, "sub");
  g_assert_cmpstr (row, ==, "s 1 6f6e65");

  /* After: b holds it and saves; a still cannot. */
  acquire_ok (b, "sub", FALSE);
  save_ok (b, "sub", "s", 2, "two");
  error = save_fails (a, "sub", "s", 3);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_clear_error (&error);
  g_free (row);
  row = stored_row (f, "sub");
  g_assert_cmpstr (row, ==, "s 2 74776f");

  /* a's registry still has the name: a second holder through a is BUSY
   * until a releases. */
  assert_acquire_busy (a, "sub", FALSE);
  es_storage_handle_release_subscription (a, "sub");
  g_assert_cmpint (holder_pid (f, f->schema, "sub"),
                   ==, _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (b), "sub"));
  assert_acquire_busy (a, "sub", FALSE);

  es_test_storage_close (b);
  es_test_storage_close (a);
}

/* What an EsSubscription emitted. */
typedef struct
{
  GPtrArray *events;   /* (owned) (element-type EsStoredEvent) */
  GError    *error;    /* (owned) (nullable) */
} Seen;

static void
on_event (EsSubscription *subscription,
          EsStoredEvent  *event,
          gpointer        user_data)
{
  Seen *seen = user_data;

  g_ptr_array_add (seen->events, g_object_ref (event));
}

static void
on_error (EsSubscription *subscription,
          const GError   *error,
          gpointer        user_data)
{
  Seen *seen = user_data;

  g_assert_null (seen->error);
  seen->error = g_error_copy (error);
}

typedef struct
{
  Seen           *seen;
  guint           n_events;
  EsSubscription *subscription;
  gint64          checkpoint;
} Until;

static gboolean
seen_events (gpointer data)
{
  Until *u = data;

  return u->seen->events->len >= u->n_events || u->seen->error != NULL;
}

static gboolean
seen_error (gpointer data)
{
  Until *u = data;

  return u->seen->error != NULL;
}

static gboolean
checkpoint_reached (gpointer data)
{
  Until *u = data;

  return es_subscription_get_checkpoint (u->subscription) >= u->checkpoint;
}

static EsStreamFactory *
pg_factory_new (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                                             "conninfo", f->conninfo,
                                             "schema", f->schema,
                                             NULL);

  g_assert_no_error (error);
  return factory;
}

static void
test_terminated_subscription (Fixture       *f,
                              gconstpointer  data)
{
  EsStreamFactory *factory = pg_factory_new (f);
  EsStreamFactory *other = pg_factory_new (f);
  EsStorageHandle *storage = es_stream_factory_get_storage (factory);
  g_autoptr(EsSubscription) subscription = NULL;
  g_autoptr(EsSubscription) successor = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *terminate = NULL;
  g_autofree char *row = NULL;
  Seen seen = { g_ptr_array_new_with_free_func (g_object_unref), NULL };
  Seen seen2 = { g_ptr_array_new_with_free_func (g_object_unref), NULL };
  Until until = { &seen, 1, NULL, 0 };
  int pid;

  g_test_summary ("An EsSubscription whose lock session the server ended does not go on "
                  "unprotected: its next checkpoint save fails, it emits error with "
                  "ES_ERROR_STORAGE and stops, the stored checkpoint stays where it was, and "
                  "a consumer of another factory takes over after it");

  append_n (storage, "s", 1);
  subscription = es_subscription_new (factory, "projector", "s", NULL,
                                      ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN);
  es_subscription_set_checkpoint_batch (subscription, 1);
  es_subscription_set_checkpoint_delay (subscription, 0);
  g_signal_connect (subscription, "event", G_CALLBACK (on_event), &seen);
  g_signal_connect (subscription, "error", G_CALLBACK (on_error), &seen);
  g_assert_true (es_subscription_start (subscription, NULL, &error));
  g_assert_no_error (error);

  es_test_wait_until (NULL, seen_events, &until);
  g_assert_no_error (seen.error);
  until.subscription = subscription;
  until.checkpoint = 1;
  es_test_wait_until (NULL, checkpoint_reached, &until);
  row = stored_row (f, "projector");
  g_assert_cmpstr (row, ==, "s 1 null");

  /* The other factory cannot have it meanwhile. */
  successor = es_subscription_new (other, "projector", "s", NULL,
                                   ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN);
  g_assert_false (es_subscription_start (successor, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_BUSY);
  g_clear_error (&error);

  pid = _es_pg_storage_get_subscription_pid (ES_PG_STORAGE (storage), "projector");
  g_assert_cmpint (pid, !=, 0);
  g_assert_cmpint (pid, ==, holder_pid (f, f->schema, "projector"));
  terminate = g_strdup_printf ("SELECT pg_terminate_backend (%d, 60000)", pid);
  admin_exec (f, terminate);
  wait_for_no_holder (f, f->schema, "projector");

  append_n (storage, "s", 1);
  es_test_wait_until (NULL, seen_error, &until);
  g_assert_error (seen.error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_nonnull (strstr (seen.error->message, "'projector'"));
  g_test_message ("%s", seen.error->message);
  g_assert_false (es_subscription_get_active (subscription));
  g_free (row);
  row = stored_row (f, "projector");
  g_assert_cmpstr (row, ==, "s 1 null");

  /* Another consumer resumes after the stored checkpoint: the second
   * event again. */
  g_signal_connect (successor, "event", G_CALLBACK (on_event), &seen2);
  g_signal_connect (successor, "error", G_CALLBACK (on_error), &seen2);
  g_assert_true (es_subscription_start (successor, NULL, &error));
  g_assert_no_error (error);
  until.seen = &seen2;
  until.n_events = 1;
  es_test_wait_until (NULL, seen_events, &until);
  g_assert_no_error (seen2.error);
  g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (seen2.events, 0)), ==, 2);
  g_assert_true (es_subscription_stop (successor, NULL, &error));
  g_assert_no_error (error);
  g_free (row);
  row = stored_row (f, "projector");
  g_assert_cmpstr (row, ==, "s 2 null");

  g_clear_object (&successor);
  g_clear_object (&subscription);
  es_test_factory_close_and_free (other);
  es_test_factory_close_and_free (factory);
  g_ptr_array_unref (seen.events);
  g_ptr_array_unref (seen2.events);
  g_clear_error (&seen.error);
  g_clear_error (&seen2.error);
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

static const char *
subscriber_path (void)
{
  const char *path = g_getenv ("ES_PG_SUBSCRIBER");

  return path != NULL ? path : g_test_get_filename (G_TEST_BUILT, "es-pg-subscriber", NULL);
}

/* Starts es-pg-subscriber on @name; returns once it holds it. */
static GSubprocess *
spawn_holder (Fixture    *f,
              const char *name,
              const char *mode)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  GSubprocess *process;

  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                              &error, subscriber_path (), f->conninfo, f->schema, name, mode,
                              NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "held");
  return process;
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static void
test_process_takeover (Fixture       *f,
                       gconstpointer  data)
{
  guint n_kills = 3;
  const char *knob = g_getenv ("ES_TEST_PG_TAKEOVERS");
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (gint64));
  EsStorageHandle *storage = storage_new (f, NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_test_summary ("Two processes, one subscription: while a process holds it this one cannot "
                  "(BUSY), another process cannot either; when the holder is killed "
                  "(SIGKILL) a waiter here takes over, as soon as the server sees the closed "
                  "socket; a holder that stops releases it and a waiting process takes over");

  if (knob != NULL)
    n_kills = (guint) g_ascii_strtoull (knob, NULL, 10);

  for (guint i = 0; i < n_kills; i++)
    {
      g_autoptr(GSubprocess) holder = spawn_holder (f, "shared", "wait");
      gint64 killed_usec, takeover_usec;
      Waiter w;

      assert_acquire_busy (storage, "shared", FALSE);
      waiter_start (&w, storage, "shared", NULL);
      wait_for_waiters (f, f->schema, "shared", 1);

      killed_usec = g_get_monotonic_time ();
      g_subprocess_send_signal (holder, SIGKILL);
      waiter_join (&w);
      g_assert_no_error (w.error);
      g_assert_true (w.ok);
      takeover_usec = w.done_usec - killed_usec;
      g_array_append_val (times, takeover_usec);
      g_subprocess_wait (holder, NULL, &error);
      g_assert_no_error (error);
      g_assert_false (g_subprocess_get_if_exited (holder));

      /* Now a process cannot have it. */
      {
        const char *argv[] = { subscriber_path (), f->conninfo, f->schema, "shared", "try", NULL };
        g_autoptr(GSubprocess) other = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                                          &error);
        g_autofree char *out = NULL;

        g_assert_no_error (error);
        g_subprocess_communicate_utf8 (other, NULL, NULL, &out, NULL, &error);
        g_assert_no_error (error);
        g_assert_cmpstr (out, ==, "busy\n");
        g_assert_cmpint (g_subprocess_get_exit_status (other), ==, 3);
      }
      es_storage_handle_release_subscription (storage, "shared");
    }

  if (times->len > 0)
    {
      g_array_sort (times, compare_int64);
      g_test_message ("Takeover after SIGKILL of the holding process, %u kills: median %.2f ms, "
                      "max %.2f ms", times->len,
                      g_array_index (times, gint64, times->len / 2) / 1000.0,
                      g_array_index (times, gint64, times->len - 1) / 1000.0);
    }

  /* A holder that stops releases: a waiting process takes over. */
  {
    g_autoptr(GSubprocess) first = spawn_holder (f, "shared", "try");
    const char *argv[] = { subscriber_path (), f->conninfo, f->schema, "shared", "wait", NULL };
    g_autoptr(GSubprocess) second = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                                       G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
    g_autoptr(GDataInputStream) out = NULL;
    g_autofree char *line = NULL;

    g_assert_no_error (error);
    wait_for_waiters (f, f->schema, "shared", 1);
    /* Closing its stdin stops the first: it releases and exits. */
    g_output_stream_close (g_subprocess_get_stdin_pipe (first), NULL, &error);
    g_assert_no_error (error);
    g_subprocess_wait_check (first, NULL, &error);
    g_assert_no_error (error);
    out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (second));
    line = g_data_input_stream_read_line (out, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (line, ==, "held");
    assert_acquire_busy (storage, "shared", FALSE);
    g_output_stream_close (g_subprocess_get_stdin_pipe (second), NULL, &error);
    g_subprocess_wait_check (second, NULL, &error);
    g_assert_no_error (error);
  }

  es_test_storage_close (storage);
}

int
main (int   argc,
      char *argv[])
{
  static const struct
  {
    const char       *path;
    GTestFixtureFunc  func;
  } tests[] = {
    { "/pg/subscription/migration", (GTestFixtureFunc) test_migration },
    { "/pg/subscription/migration-v3", (GTestFixtureFunc) test_migration_v3 },
    { "/pg/subscription/store", (GTestFixtureFunc) test_store },
    { "/pg/subscription/reset-delete", (GTestFixtureFunc) test_reset_delete },
    { "/pg/subscription/exclusive-storages", (GTestFixtureFunc) test_exclusive_storages },
    { "/pg/subscription/cancel-wait", (GTestFixtureFunc) test_cancel_wait },
    { "/pg/subscription/close-releases", (GTestFixtureFunc) test_close_releases },
    { "/pg/subscription/session-settings", (GTestFixtureFunc) test_session_settings },
    { "/pg/subscription/terminated-holder", (GTestFixtureFunc) test_terminated_holder },
    { "/pg/subscription/terminated-subscription",
      (GTestFixtureFunc) test_terminated_subscription },
    { "/pg/subscription/process-takeover", (GTestFixtureFunc) test_process_takeover },
  };
  const char *reason = NULL;

  g_test_init (&argc, &argv, NULL);

  test_conninfo = es_test_pg_server_get_conninfo (&reason);

  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    {
      if (test_conninfo != NULL)
        g_test_add_vtable (tests[i].path, sizeof (Fixture), NULL,
                           (GTestFixtureFunc) fixture_setup, tests[i].func,
                           (GTestFixtureFunc) fixture_teardown);
      else
        g_test_add_data_func (tests[i].path, reason, es_test_skip_func);
    }

  return g_test_run ();
}
