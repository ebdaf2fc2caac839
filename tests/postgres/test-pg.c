/* test-pg.c: what only the PostgreSQL backend promises.
 *
 * The schema (created when missing, versioned, refused when newer or not
 * es-glib's, left untouched then), schema names and connection strings
 * that are wrong, concurrent read-modify-write loops from several
 * connections and processes, idempotency across connections, a server
 * that restarts or stops while the library works, jsonb metadata filters
 * (compared with SQLite's answers), large and binary payloads, SQL
 * meta-characters, the NOTIFY each append sends, cancelling operations
 * blocked on the server, and closing (no connection left on the server).
 *
 * Runs on the server in ES_TEST_PG_CONNINFO, or else on a throwaway server
 * it starts itself (es_test_pg_server_get_conninfo(), which also sets
 * ES_TEST_PG_DIR, to restart the server through $ES_PG_TEST_SERVER).
 * Every test uses a fresh schema, dropped afterwards.
 * libpq is used directly only to prepare and inspect the database, never
 * in place of the library for what is checked.
 *
 * Size knobs: ES_TEST_PG_RMW_ROUNDS (read-modify-write rounds per thread,
 * default 60), ES_TEST_PG_WRITER_EVENTS (events per es-pg-writer process,
 * default 120).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "es-glib/postgres/es-pg-private.h"
#include "es-glib/backend/es-write-queue-private.h"

#include "es-test-utils.h"

/* A password that must never appear in an error message, in any
 * spelling: every form of it contains SECRET_MARK. */
#define PASSWORD "Pw-s3cret-42"
#define SECRET_MARK "s3cret"

/* Longest a failing connection or operation may take. */
#define BOUNDED_USEC (20 * G_USEC_PER_SEC)

static const char *test_conninfo;   /* ES_TEST_PG_CONNINFO */
static guint schema_counter;

typedef struct
{
  const char *conninfo;  /* (unowned) ES_TEST_PG_CONNINFO */
  char       *schema;    /* (owned) a fresh schema name, not created */
  GPtrArray  *schemas;   /* (owned) (element-type utf8) dropped in teardown */
  PGconn     *admin;     /* (owned) a direct libpq connection */
} Fixture;

/* ------------------------------------------------------------------ */
/* libpq, directly                                                     */
/* ------------------------------------------------------------------ */

static PGconn *
admin_connect (const char *conninfo)
{
  PGconn *conn = PQconnectdb (conninfo);
  PGresult *result;

  if (PQstatus (conn) != CONNECTION_OK)
    g_error ("Cannot connect to '%s': %s", conninfo, PQerrorMessage (conn));
  /* No NOTICE ("drop cascades to ...") on stderr. */
  result = PQexec (conn, "SET client_min_messages = warning");
  g_assert_cmpint (PQresultStatus (result), ==, PGRES_COMMAND_OK);
  PQclear (result);
  return conn;
}

/* Runs @sql with text parameters; reconnects once if the server went away
 * (a test restarted it). Fails the test on any other error. */
static PGresult *
admin_query (Fixture            *f,
             const char         *sql,
             int                 n_params,
             const char * const *params)
{
  for (guint attempt = 0; ; attempt++)
    {
      PGresult *result;
      ExecStatusType status;

      if (n_params == 0)
        result = PQexec (f->admin, sql);
      else
        result = PQexecParams (f->admin, sql, n_params, NULL, params, NULL, NULL, 0);
      status = PQresultStatus (result);
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return result;
      if (attempt == 0 && PQstatus (f->admin) == CONNECTION_BAD)
        {
          PQclear (result);
          PQfinish (f->admin);
          f->admin = admin_connect (f->conninfo);
          continue;
        }
      g_error ("%s: %s", sql, PQresultErrorMessage (result));
    }
}

static void
admin_exec (Fixture    *f,
            const char *sql)
{
  PQclear (admin_query (f, sql, 0, NULL));
}

/* The first column of the first row of @sql (one optional parameter), or
 * NULL when there is no row or the value is NULL. */
static char *
admin_query_text (Fixture    *f,
                  const char *sql,
                  const char *param)
{
  const char *params[] = { param };
  PGresult *result = admin_query (f, sql, param != NULL ? 1 : 0, params);
  char *text = NULL;

  if (PQntuples (result) > 0 && !PQgetisnull (result, 0, 0))
    text = g_strdup (PQgetvalue (result, 0, 0));
  PQclear (result);
  return text;
}

static gint64
admin_query_int (Fixture    *f,
                 const char *sql,
                 const char *param)
{
  g_autofree char *text = admin_query_text (f, sql, param);

  g_assert_nonnull (text);
  return g_ascii_strtoll (text, NULL, 10);
}

static char *
quote_ident (PGconn     *conn,
             const char *name)
{
  char *quoted = PQescapeIdentifier (conn, name, strlen (name));
  char *copy;

  g_assert_nonnull (quoted);
  copy = g_strdup (quoted);
  PQfreemem (quoted);
  return copy;
}

static gboolean
schema_exists (Fixture    *f,
               const char *schema)
{
  return admin_query_int (f, "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                          schema) > 0;
}

/* Everything in @schema, as text: its relations, their columns, indexes,
 * constraints and functions, and with @content a digest of every table's
 * and sequence's rows. Two equal fingerprints: the schema was left
 * untouched. */
static char *
schema_fingerprint (Fixture    *f,
                    const char *schema,
                    gboolean    content)
{
  const char *params[] = { schema };
  GString *out = g_string_new (NULL);
  PGresult *result;
  g_autofree char *columns = NULL;
  g_autofree char *indexes = NULL;
  g_autofree char *constraints = NULL;
  g_autofree char *functions = NULL;

  columns = admin_query_text (f,
    "SELECT string_agg(format('%s(%s) %s %s %s %s', c.relname, c.relkind, a.attname, "
    "                  format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "                  pg_get_expr(d.adbin, d.adrelid)), E'\\n' ORDER BY c.relname, a.attnum) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
    "WHERE n.nspname = $1", schema);
  indexes = admin_query_text (f,
    "SELECT string_agg(indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes "
    "WHERE schemaname = $1", schema);
  constraints = admin_query_text (f,
    "SELECT string_agg(format('%s %s', conname, pg_get_constraintdef(c.oid)), E'\\n' "
    "                  ORDER BY conname) "
    "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
    "WHERE n.nspname = $1", schema);
  functions = admin_query_text (f,
    "SELECT string_agg(md5(pg_get_functiondef(p.oid)), ',' ORDER BY p.proname) "
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
    schema);
  g_string_append_printf (out, "columns:\n%s\nindexes:\n%s\nconstraints:\n%s\nfunctions: %s\n",
                          columns ? columns : "", indexes ? indexes : "",
                          constraints ? constraints : "", functions ? functions : "");

  if (content)
    {
      result = admin_query (f,
                            "SELECT c.relname, c.relkind FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'S') "
                            "ORDER BY c.relname", 1, params);
      for (int i = 0; i < PQntuples (result); i++)
        {
          g_autofree char *qschema = quote_ident (f->admin, schema);
          g_autofree char *qtable = quote_ident (f->admin, PQgetvalue (result, i, 0));
          g_autofree char *sql = NULL;
          g_autofree char *digest = NULL;

          if (g_str_equal (PQgetvalue (result, i, 1), "S"))
            sql = g_strdup_printf ("SELECT last_value || ' ' || is_called FROM %s.%s",
                                   qschema, qtable);
          else
            sql = g_strdup_printf ("SELECT count(*) || ' ' || "
                                   "md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), "
                                   "'')) FROM %s.%s t", qschema, qtable);
          digest = admin_query_text (f, sql, NULL);
          g_string_append_printf (out, "rows of %s: %s\n", PQgetvalue (result, i, 0), digest);
        }
      PQclear (result);
    }
  return g_string_free (out, FALSE);
}

/* The table of @schema that holds the schema version (a table whose name
 * says "version" or "meta"), or NULL. */
static char *
version_table (Fixture    *f,
               const char *schema)
{
  return admin_query_text (f,
                           "SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema = $1 AND table_type = 'BASE TABLE' "
                           "AND (table_name LIKE '%version%' OR table_name LIKE '%meta%') "
                           "ORDER BY table_name LIMIT 1", schema);
}

/* The integer column of @table holding the version. */
static char *
version_column (Fixture    *f,
                const char *schema,
                const char *table)
{
  const char *params[] = { schema, table };
  PGresult *result;
  char *column = NULL;

  result = admin_query (f,
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = $1 AND table_name = $2 "
                        "AND data_type IN ('integer', 'bigint', 'smallint') "
                        "ORDER BY (column_name LIKE '%version%') DESC, ordinal_position LIMIT 1",
                        2, params);
  if (PQntuples (result) > 0)
    column = g_strdup (PQgetvalue (result, 0, 0));
  PQclear (result);
  return column;
}

/* The schema version this es-glib writes (1: 0.1; 2: the stream life
 * cycle, issue 16; 3: durable subscriptions, issue 17). */
#define SCHEMA_VERSION 4

/* The schema version es-glib recorded in @schema; the test fails when
 * there is no such record. */
static gint64
schema_version (Fixture    *f,
                const char *schema,
                char      **out_table,
                char      **out_column)
{
  g_autofree char *table = version_table (f, schema);
  g_autofree char *column = NULL;
  g_autofree char *qschema = quote_ident (f->admin, schema);
  g_autofree char *qtable = NULL;
  g_autofree char *qcolumn = NULL;
  g_autofree char *sql = NULL;
  g_autofree char *rows = NULL;
  gint64 version;

  if (table == NULL)
    g_error ("Schema '%s' has no table recording the schema version", schema);
  column = version_column (f, schema, table);
  if (column == NULL)
    g_error ("Table '%s.%s' has no integer version column", schema, table);
  qtable = quote_ident (f->admin, table);
  qcolumn = quote_ident (f->admin, column);

  sql = g_strdup_printf ("SELECT count(*) FROM %s.%s", qschema, qtable);
  rows = admin_query_text (f, sql, NULL);
  g_assert_cmpstr (rows, ==, "1");
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("SELECT %s FROM %s.%s", qcolumn, qschema, qtable);
  version = admin_query_int (f, sql, NULL);

  if (out_table != NULL)
    *out_table = g_steal_pointer (&table);
  if (out_column != NULL)
    *out_column = g_steal_pointer (&column);
  return version;
}

/* Connections on the server whose application_name is @name. */
static gint64
count_connections (Fixture    *f,
                   const char *name)
{
  return admin_query_int (f, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                          name);
}

/* Waits up to 5 s for the connections named @name to be gone. */
static gint64
wait_connections_gone (Fixture    *f,
                       const char *name)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  gint64 n;

  while ((n = count_connections (f, name)) > 0 && g_get_monotonic_time () < deadline)
    g_usleep (20000);
  return n;
}

/* @conninfo with application_name=@name added (keyword form or URI). */
static char *
conninfo_with_application (const char *conninfo,
                           const char *name)
{
  if (g_str_has_prefix (conninfo, "postgresql://") || g_str_has_prefix (conninfo, "postgres://"))
    return g_strdup_printf ("%s%capplication_name=%s", conninfo,
                            strchr (conninfo, '?') != NULL ? '&' : '?', name);
  return g_strdup_printf ("%s application_name=%s", conninfo, name);
}

/* The first line of libpq's own message for connecting with @conninfo. */
static char *
libpq_connect_reason (const char *conninfo)
{
  PGconn *conn = PQconnectdb (conninfo);
  char *reason;

  g_assert_cmpint (PQstatus (conn), ==, CONNECTION_BAD);
  reason = g_strdup (PQerrorMessage (conn));
  PQfinish (conn);
  reason[strcspn (reason, "\n")] = '\0';
  return g_strstrip (reason);
}

/* ------------------------------------------------------------------ */
/* The server, through build-aux/pg-test-server                        */
/* ------------------------------------------------------------------ */

static gboolean
server_control_available (void)
{
  if (g_getenv ("ES_TEST_PG_DIR") == NULL || g_getenv ("ES_PG_TEST_SERVER") == NULL)
    {
      g_test_skip ("ES_TEST_PG_DIR or ES_PG_TEST_SERVER is not set: the server is not "
                   "ours to restart (run under build-aux/pg-test-server run)");
      return FALSE;
    }
  return TRUE;
}

/* Runs `$ES_PG_TEST_SERVER @command $ES_TEST_PG_DIR` (restart, stop,
 * start), which waits until the server is up or down. */
static void
server_control (const char *command)
{
  const char *argv[] = {
    g_getenv ("ES_PG_TEST_SERVER"), command, g_getenv ("ES_TEST_PG_DIR"), NULL
  };
  g_autoptr(GError) error = NULL;
  int status = 0;
  gint64 start = g_get_monotonic_time ();

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                NULL, NULL, &status, &error);
  g_assert_no_error (error);
  g_spawn_check_wait_status (status, &error);
  g_assert_no_error (error);
  g_test_message ("pg-test-server %s took %.0f ms", command,
                  (g_get_monotonic_time () - start) / 1000.0);
}

/* ------------------------------------------------------------------ */
/* The library                                                         */
/* ------------------------------------------------------------------ */

static EsStreamFactory *
pg_factory_new (const char  *conninfo,
                const char  *schema,
                guint        pool_size,
                GError     **error)
{
  return g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, error,
                         "conninfo", conninfo,
                         "schema", schema,
                         "pool-size", pool_size,
                         NULL);
}

static EsStreamFactory *
factory_new (Fixture *f,
             guint    pool_size)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory = pg_factory_new (f->conninfo, f->schema, pool_size, &error);

  g_assert_no_error (error);
  g_assert_true (ES_IS_PG_STREAM_FACTORY (factory));
  return factory;
}

static EsCandidateEvent *
candidate_new (const char *event_type,
               const void *data,
               gsize       size,
               const char *key,
               const char *metadata)
{
  g_autoptr(GBytes) bytes = g_bytes_new (data, size);
  EsCandidateEvent *event = es_candidate_event_new (event_type, bytes);

  if (key != NULL)
    es_candidate_event_set_idempotency_key (event, key);
  if (metadata != NULL)
    es_candidate_event_set_metadata (event, metadata);
  return event;
}

static EsCandidateEvent *
candidate_text (const char *event_type,
                const char *text,
                const char *key,
                const char *metadata)
{
  return candidate_new (event_type, text, strlen (text), key, metadata);
}

/* Appends one event; returns the new version. */
static gint64
write_one (EsStream   *stream,
           const char *event_type,
           const char *text,
           gint64      expected_version)
{
  g_autoptr(EsCandidateEvent) event = candidate_text (event_type, text, NULL, NULL);
  g_autoptr(GError) error = NULL;
  gint64 version;

  version = es_stream_write (stream, &event, 1, expected_version, NULL, &error);
  g_assert_no_error (error);
  return version;
}

/* Appends one event with @metadata to a new stream @stream_id. */
static void
append_with_metadata (EsStreamFactory *factory,
                      const char      *stream_id,
                      const char      *metadata)
{
  g_autoptr(EsCandidateEvent) event = candidate_text ("Meta", "x", NULL, metadata);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GError) error = NULL;

  stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);
  g_assert_no_error (error);
  es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
}

/* The data of @event as a NUL-terminated string. */
static char *
event_text (EsStoredEvent *event)
{
  gsize size;
  const char *data = g_bytes_get_data (es_stored_event_get_data (event), &size);

  return g_strndup (data, size);
}

/* @events' sequence ids are 1, 2, 3 ...: strictly increasing, no hole. */
static void
assert_sequence_without_holes (GPtrArray *events)
{
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      if (es_stored_event_get_sequence_id (event) != (gint64) i + 1)
        g_error ("Event %u of @all has sequence id %" G_GINT64_FORMAT ", expected %u",
                 i, es_stored_event_get_sequence_id (event), i + 1);
    }
}

/* @events' versions are 1, 2, 3 ... */
static void
assert_versions_without_gaps (GPtrArray  *events,
                              const char *stream_id)
{
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      if (es_stored_event_get_version (event) != (gint64) i + 1)
        g_error ("Event %u of '%s' has version %" G_GINT64_FORMAT ", expected %u",
                 i, stream_id, es_stored_event_get_version (event), i + 1);
    }
}

/* Finishes g_async_initable_new_async(). */
static GObject *
async_initable_finish (GAsyncResult  *result,
                       GError       **error)
{
  g_autoptr(GObject) source = g_async_result_get_source_object (result);

  return g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);
}

/* A JSON string literal for @text. */
static char *
json_quote (const char *text)
{
  GString *out = g_string_new ("\"");

  for (const char *p = text; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (out, "\\%c", *p);
      else if ((guchar) *p < 0x20)
        g_string_append_printf (out, "\\u%04x", (guint) (guchar) *p);
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');
  return g_string_free (out, FALSE);
}

typedef struct
{
  GMutex lock;
  GCond  cond;
  guint  parties;
  guint  arrived;
  guint  generation;
} Barrier;

static void
barrier_init (Barrier *barrier,
              guint    parties)
{
  g_mutex_init (&barrier->lock);
  g_cond_init (&barrier->cond);
  barrier->parties = parties;
  barrier->arrived = 0;
  barrier->generation = 0;
}

static void
barrier_clear (Barrier *barrier)
{
  g_mutex_clear (&barrier->lock);
  g_cond_clear (&barrier->cond);
}

static void
barrier_wait (Barrier *barrier)
{
  guint generation;

  g_mutex_lock (&barrier->lock);
  generation = barrier->generation;
  if (++barrier->arrived == barrier->parties)
    {
      barrier->arrived = 0;
      barrier->generation++;
      g_cond_broadcast (&barrier->cond);
    }
  else
    {
      while (generation == barrier->generation)
        g_cond_wait (&barrier->cond, &barrier->lock);
    }
  g_mutex_unlock (&barrier->lock);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static char *
fresh_schema_name (void)
{
  return g_strdup_printf ("es_test_%d_%u", (int) getpid (), ++schema_counter);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->conninfo = test_conninfo;
  f->schemas = g_ptr_array_new_with_free_func (g_free);
  f->schema = fresh_schema_name ();
  g_ptr_array_add (f->schemas, g_strdup (f->schema));
  f->admin = admin_connect (f->conninfo);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  for (guint i = 0; i < f->schemas->len; i++)
    {
      g_autofree char *quoted = quote_ident (f->admin, g_ptr_array_index (f->schemas, i));
      g_autofree char *sql = g_strdup_printf ("DROP SCHEMA IF EXISTS %s CASCADE", quoted);

      admin_exec (f, sql);
    }
  g_clear_pointer (&f->schemas, g_ptr_array_unref);
  g_clear_pointer (&f->schema, g_free);
  g_clear_pointer (&f->admin, PQfinish);
}

/* ------------------------------------------------------------------ */
/* Schema                                                              */
/* ------------------------------------------------------------------ */

static void
test_schema_create (Fixture       *f,
                    gconstpointer  data)
{
  EsStreamFactory *factory;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autofree char *table = NULL;
  g_autofree char *column = NULL;
  g_autofree char *structure = NULL;
  g_autofree char *structure_after = NULL;
  gint64 version;

  g_test_summary ("A missing schema is created with a version record; reopening it "
                  "keeps the data and changes nothing in the schema");

  g_assert_false (schema_exists (f, f->schema));
  factory = factory_new (f, 2);
  g_assert_true (schema_exists (f, f->schema));

  version = schema_version (f, f->schema, &table, &column);
  g_test_message ("Schema version %" G_GINT64_FORMAT " recorded in %s.%s", version, table,
                  column);
  g_assert_cmpint (version, ==, SCHEMA_VERSION);

  stream = es_test_open_stream (factory, "persisted");
  write_one (stream, "A", "1", ES_VERSION_NO_STREAM);
  write_one (stream, "B", "2", 1);
  write_one (stream, "C", "3", 2);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
  structure = schema_fingerprint (f, f->schema, FALSE);

  factory = factory_new (f, 2);
  stream = es_test_open_stream (factory, "persisted");
  g_assert_cmpint (es_stream_get_version (stream), ==, 3);
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 3);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (events, 2)), ==, "C");
  g_assert_cmpint (schema_version (f, f->schema, NULL, NULL), ==, SCHEMA_VERSION);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  structure_after = schema_fingerprint (f, f->schema, FALSE);
  g_assert_cmpstr (structure_after, ==, structure);
}

static void
test_schema_existing_empty (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *quoted = quote_ident (f->admin, f->schema);
  g_autofree char *sql = g_strdup_printf ("CREATE SCHEMA %s", quoted);
  g_autoptr(EsStream) stream = NULL;
  EsStreamFactory *factory;

  g_test_summary ("An existing empty schema (created by an administrator) gets the tables");

  admin_exec (f, sql);
  factory = factory_new (f, 1);
  g_assert_cmpint (schema_version (f, f->schema, NULL, NULL), ==, SCHEMA_VERSION);
  stream = es_test_open_stream (factory, "s");
  g_assert_cmpint (write_one (stream, "A", "", ES_VERSION_NO_STREAM), ==, 1);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

#define N_CREATORS 4
#define CREATE_ROUNDS 3

typedef struct
{
  const char *conninfo;
  const char *schema;
  guint       index;
  Barrier    *barrier;
  GError     *error;     /* (owned) (nullable) */
  gint64      version;   /* of the event written */
} CreatorThread;

static gpointer
creator_thread (gpointer user_data)
{
  CreatorThread *t = user_data;
  EsStreamFactory *factory;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = candidate_text ("Created", "x", NULL, NULL);
  g_autofree char *stream_id = g_strdup_printf ("creator-%u", t->index);

  barrier_wait (t->barrier);
  factory = pg_factory_new (t->conninfo, t->schema, 1, &t->error);
  if (factory == NULL)
    return NULL;
  stream = es_stream_factory_open_stream (factory, stream_id, NULL, &t->error);
  if (stream != NULL)
    t->version = es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &t->error);
  g_clear_object (&stream);
  es_stream_factory_close (factory, NULL, NULL);
  g_object_unref (factory);
  return NULL;
}

static void
test_schema_concurrent_create (Fixture       *f,
                               gconstpointer  data)
{
  g_test_summary ("Several factories creating the same missing schema at the same moment "
                  "all succeed, and the schema holds one version record");

  for (guint round = 0; round < CREATE_ROUNDS; round++)
    {
      g_autofree char *schema = round == 0 ? g_strdup (f->schema) : fresh_schema_name ();
      CreatorThread threads[N_CREATORS];
      GThread *handles[N_CREATORS];
      Barrier barrier;
      EsStreamFactory *factory;
      g_autoptr(EsStream) all = NULL;
      g_autoptr(GPtrArray) events = NULL;

      if (round > 0)
        g_ptr_array_add (f->schemas, g_strdup (schema));
      barrier_init (&barrier, N_CREATORS);
      for (guint i = 0; i < N_CREATORS; i++)
        {
          threads[i] = (CreatorThread) { f->conninfo, schema, i, &barrier, NULL, 0 };
          handles[i] = g_thread_new ("creator", creator_thread, &threads[i]);
        }
      for (guint i = 0; i < N_CREATORS; i++)
        {
          g_thread_join (handles[i]);
          g_assert_no_error (threads[i].error);
          g_assert_cmpint (threads[i].version, ==, 1);
        }
      barrier_clear (&barrier);

      g_assert_cmpint (schema_version (f, schema, NULL, NULL), ==, SCHEMA_VERSION);
      factory = pg_factory_new (f->conninfo, schema, 1, NULL);
      g_assert_nonnull (factory);
      all = es_test_open_stream (factory, ES_ALL_STREAM);
      events = es_test_read_all_ok (all, 0, NULL);
      g_assert_cmpuint (events->len, ==, N_CREATORS);
      assert_sequence_without_holes (events);
      g_clear_object (&all);
      es_test_factory_close_and_free (factory);
    }
}

/* Creating a factory, sync and async, and a storage on @schema fails with
 * ES_ERROR_STORAGE and leaves @schema as it was. */
static void
assert_schema_refused (Fixture    *f,
                       const char *schema)
{
  g_autofree char *before = schema_fingerprint (f, schema, TRUE);
  g_autofree char *after = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsPgStorage) storage = NULL;
  GObject *object;
  EsStreamFactory *factory;

  factory = pg_factory_new (f->conninfo, schema, 2, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (factory);
  g_test_message ("Refused with: %s", error->message);
  g_assert_nonnull (strstr (error->message, schema));
  g_clear_error (&error);

  g_async_initable_new_async (ES_TYPE_PG_STREAM_FACTORY, G_PRIORITY_DEFAULT, NULL,
                              es_test_store_result_cb, &result,
                              "conninfo", f->conninfo, "schema", schema, NULL);
  es_test_wait_result (&result);
  object = async_initable_finish (result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (object);
  g_clear_error (&error);

  storage = es_pg_storage_new (f->conninfo, schema, 1, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_null (storage);

  after = schema_fingerprint (f, schema, TRUE);
  g_assert_cmpstr (after, ==, before);
}

static void
test_schema_newer (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *table = NULL;
  g_autofree char *column = NULL;
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *qtable = NULL;
  g_autofree char *qcolumn = NULL;
  g_autofree char *sql = NULL;
  g_autoptr(EsStream) stream = NULL;
  EsStreamFactory *factory;

  g_test_summary ("A schema written by a newer es-glib (version record bumped by hand) "
                  "fails with ES_ERROR_STORAGE and is left untouched");

  factory = factory_new (f, 1);
  stream = es_test_open_stream (factory, "s");
  write_one (stream, "A", "a", ES_VERSION_ANY);
  write_one (stream, "B", "b", ES_VERSION_ANY);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  g_assert_cmpint (schema_version (f, f->schema, &table, &column), ==, SCHEMA_VERSION);
  qtable = quote_ident (f->admin, table);
  qcolumn = quote_ident (f->admin, column);
  sql = g_strdup_printf ("UPDATE %s.%s SET %s = 1000", qschema, qtable, qcolumn);
  admin_exec (f, sql);

  assert_schema_refused (f, f->schema);
  g_assert_cmpint (schema_version (f, f->schema, NULL, NULL), ==, 1000);
}

static void
test_schema_foreign (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *quoted = quote_ident (f->admin, f->schema);
  g_autofree char *sql = NULL;
  g_autofree char *other = fresh_schema_name ();
  g_autofree char *qother = quote_ident (f->admin, other);

  g_test_summary ("A schema of another application (other tables, even one called "
                  "'events', and no es-glib version record) fails with ES_ERROR_STORAGE "
                  "and is left untouched");

  sql = g_strdup_printf ("CREATE SCHEMA %s;"
                         "CREATE TABLE %s.customers (id serial PRIMARY KEY, name text);"
                         "INSERT INTO %s.customers (name) VALUES ('alice'), ('bob');"
                         "CREATE TABLE %s.orders (id bigint,"
                         "                        customer int REFERENCES %s.customers);",
                         quoted, quoted, quoted, quoted, quoted);
  admin_exec (f, sql);
  assert_schema_refused (f, f->schema);

  g_ptr_array_add (f->schemas, g_strdup (other));
  g_clear_pointer (&sql, g_free);
  sql = g_strdup_printf ("CREATE SCHEMA %s;"
                         "CREATE TABLE %s.events (when_ text, what text);"
                         "INSERT INTO %s.events VALUES ('today', 'party');",
                         qother, qother, qother);
  admin_exec (f, sql);
  assert_schema_refused (f, other);
}

static void
test_schema_invalid_names (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *too_long = g_strnfill (49, 'a');
  g_autofree char *longest = NULL;
  const char *invalid[] = {
    "Upper", "it's", "with\"quote", too_long, "", "1abc", "a-b", "a b", "caf\xc3\xa9",
    "public; DROP SCHEMA public", "pg_catalog\"--",
  };
  EsStreamFactory *factory;

  g_test_summary ("Invalid schema names (uppercase, quotes, too long, empty, ...) fail "
                  "with ES_ERROR_INVALID_ARGUMENT naming the value; 48 characters is fine");

  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GAsyncResult) result = NULL;
      g_autoptr(EsPgStorage) storage = NULL;
      GObject *object;

      factory = pg_factory_new (f->conninfo, invalid[i], 1, &error);
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_assert_null (factory);
      g_test_message ("'%s': %s", invalid[i], error->message);
      if (*invalid[i] != '\0')
        g_assert_nonnull (strstr (error->message, invalid[i]));
      else
        g_assert_true (strstr (error->message, "''") != NULL ||
                       strstr (error->message, "empty") != NULL);
      g_clear_error (&error);

      storage = es_pg_storage_new (f->conninfo, invalid[i], 1, NULL, &error);
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_assert_null (storage);
      g_clear_error (&error);

      g_async_initable_new_async (ES_TYPE_PG_STREAM_FACTORY, G_PRIORITY_DEFAULT, NULL,
                                  es_test_store_result_cb, &result,
                                  "conninfo", f->conninfo, "schema", invalid[i], NULL);
      es_test_wait_result (&result);
      object = async_initable_finish (result, &error);
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_assert_null (object);

      g_assert_false (schema_exists (f, invalid[i]));
    }

  /* The longest valid name. */
  longest = g_strdup_printf ("es_%s", too_long + 4);
  g_assert_cmpuint (strlen (longest), ==, 48);
  g_ptr_array_add (f->schemas, g_strdup (longest));
  factory = pg_factory_new (f->conninfo, longest, 1, NULL);
  g_assert_nonnull (factory);
  g_assert_cmpstr (es_pg_stream_factory_get_schema (ES_PG_STREAM_FACTORY (factory)), ==,
                   longest);
  g_assert_true (schema_exists (f, longest));
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* Connection strings                                                  */
/* ------------------------------------------------------------------ */

static void
test_conninfo_bad (Fixture       *f,
                   gconstpointer  data)
{
  const char *bad[] = {
    "host=/nonexistent port=1",
    "not a conninfo ===",
    "postgresql://es@127.0.0.1:1/x",
    "host=/nonexistent port=1 user=es password=" PASSWORD,
    "postgresql://es:" PASSWORD "@127.0.0.1:1/x",
    /* libpq itself quotes this whole URI, password included. */
    "postgresql://es:" PASSWORD "@[::1:1/x",
    "postgresql://es:Pw%2Ds3cret%2D42@[::1:1/x",
    "postgresql://es@[::1:1/x?password=" PASSWORD,
    "password=" PASSWORD " sslmode=bogus host=/nonexistent",
    "host=/nonexistent port=1 connect_timeout=nonsense password='" PASSWORD "'",
  };

  g_test_summary ("Bad connection strings and unreachable servers fail quickly with "
                  "ES_ERROR_STORAGE carrying libpq's reason, never the password; through "
                  "new, new_async and es_pg_storage_new");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *reason = libpq_connect_reason (bad[i]);
      g_autofree char *expected = g_strdup (reason);
      g_autoptr(GError) error = NULL;
      g_autoptr(GAsyncResult) result = NULL;
      g_autoptr(EsPgStorage) storage = NULL;
      EsPgStreamFactory *async_factory;
      EsStreamFactory *factory;
      char *uri;
      gint64 start;

      /* Where libpq quotes the connection string, expect what precedes it. */
      if ((uri = strstr (expected, "\"postgresql://")) != NULL)
        *uri = '\0';
      g_strstrip (expected);
      g_test_message ("'%s': libpq says: %s", bad[i], reason);

      start = g_get_monotonic_time ();
      factory = pg_factory_new (bad[i], f->schema, 2, &error);
      g_assert_cmpint (g_get_monotonic_time () - start, <, BOUNDED_USEC);
      g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
      g_assert_null (factory);
      g_test_message ("  es-glib says: %s", error->message);
      if (strstr (error->message, expected) == NULL)
        g_error ("The message '%s' does not carry libpq's reason '%s'", error->message,
                 expected);
      if (strstr (error->message, SECRET_MARK) != NULL)
        g_error ("The message '%s' shows the password", error->message);
      g_clear_error (&error);

      start = g_get_monotonic_time ();
      es_pg_stream_factory_new_async (bad[i], NULL, es_test_store_result_cb, &result);
      es_test_wait_result (&result);
      async_factory = es_pg_stream_factory_new_finish (result, &error);
      g_assert_cmpint (g_get_monotonic_time () - start, <, BOUNDED_USEC);
      g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
      g_assert_null (async_factory);
      g_assert_nonnull (strstr (error->message, expected));
      g_assert_null (strstr (error->message, SECRET_MARK));
      g_clear_error (&error);

      storage = es_pg_storage_new (bad[i], f->schema, 1, NULL, &error);
      g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
      g_assert_null (storage);
      g_assert_nonnull (strstr (error->message, expected));
      g_assert_null (strstr (error->message, SECRET_MARK));
    }
  g_assert_false (schema_exists (f, f->schema));
}

/* ------------------------------------------------------------------ */
/* Concurrent writers                                                  */
/* ------------------------------------------------------------------ */

#define RMW_STREAMS 3
#define RMW_THREADS 6
#define RMW_FACTORIES 3
#define WRITER_BATCH 4

typedef struct
{
  guint  stream;
  gint64 version;
} RmwWin;

typedef struct
{
  EsStreamFactory *factory;
  guint            index;
  guint            rounds;
  guint            attempted;
  guint            won;
  guint            lost;
  GArray          *wins;        /* (owned) (element-type RmwWin), by round; version 0: lost */
  GError          *unexpected;  /* (owned) (nullable) */
} RmwThread;

static gpointer
rmw_thread (gpointer user_data)
{
  RmwThread *t = user_data;
  g_autoptr(GRand) rand = g_rand_new_with_seed (t->index + 1);
  EsStream *streams[RMW_STREAMS];

  for (guint s = 0; s < RMW_STREAMS; s++)
    {
      g_autofree char *stream_id = g_strdup_printf ("rmw-%u", s);

      streams[s] = es_stream_factory_open_stream (t->factory, stream_id, NULL, &t->unexpected);
      if (streams[s] == NULL)
        {
          while (s-- > 0)
            g_object_unref (streams[s]);
          return NULL;
        }
    }

  for (guint round = 0; round < t->rounds && t->unexpected == NULL; round++)
    {
      guint s = g_rand_int_range (rand, 0, RMW_STREAMS);
      g_autoptr(EsStreamMetrics) metrics = NULL;
      g_autoptr(EsCandidateEvent) event = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *token = g_strdup_printf ("t%u-r%u", t->index, round);
      g_autofree char *metadata = g_strdup_printf ("{\"thread\": %u, \"round\": %u}",
                                                   t->index, round);
      RmwWin win = { s, 0 };
      gint64 current;
      gint64 version;

      /* Read ... */
      metrics = es_stream_get_metrics (streams[s], NULL, &t->unexpected);
      if (metrics == NULL)
        break;
      current = es_stream_metrics_get_current_version (metrics);
      if (g_rand_boolean (rand))
        g_usleep (g_rand_int_range (rand, 0, 2000));

      /* ... modify, write. */
      event = candidate_text ("rmw", token, NULL, metadata);
      version = es_stream_write (streams[s], &event, 1, current, NULL, &error);
      t->attempted++;
      if (error == NULL)
        {
          if (version != current + 1)
            g_set_error (&t->unexpected, G_IO_ERROR, G_IO_ERROR_FAILED,
                         "write at version %" G_GINT64_FORMAT " returned %" G_GINT64_FORMAT,
                         current, version);
          win.version = version;
          t->won++;
        }
      else if (g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        {
          if (strstr (error->message, es_stream_get_stream_id (streams[s])) == NULL)
            g_set_error (&t->unexpected, G_IO_ERROR, G_IO_ERROR_FAILED,
                         "the conflict '%s' does not name the stream", error->message);
          t->lost++;
        }
      else
        {
          g_prefix_error (&error, "round %u of thread %u: ", round, t->index);
          t->unexpected = g_steal_pointer (&error);
        }
      g_array_append_val (t->wins, win);
    }

  for (guint s = 0; s < RMW_STREAMS; s++)
    g_object_unref (streams[s]);
  return NULL;
}

static guint
env_uint (const char *name,
          guint       fallback)
{
  const char *value = g_getenv (name);
  guint64 parsed;

  if (value == NULL || !g_ascii_string_to_unsigned (value, 10, 1, G_MAXUINT, &parsed, NULL))
    return fallback;
  return (guint) parsed;
}

static void
test_concurrent_writers (Fixture       *f,
                         gconstpointer  data)
{
  const char *writer = g_getenv ("ES_PG_WRITER");
  guint rounds = env_uint ("ES_TEST_PG_RMW_ROUNDS", 60);
  guint writer_events = env_uint ("ES_TEST_PG_WRITER_EVENTS", 120);
  EsStreamFactory *factories[RMW_FACTORIES];
  GSubprocess *writers[2] = { NULL, NULL };
  guint writer_acks[RMW_STREAMS] = { 0 };
  guint writer_stored[RMW_STREAMS] = { 0 };
  RmwThread threads[RMW_THREADS];
  GThread *handles[RMW_THREADS];
  g_autoptr(GHashTable) expected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(EsStream) all = NULL;
  g_autoptr(GPtrArray) everything = NULL;
  guint attempted = 0, won = 0, lost = 0, total = 0;
  gint64 start;

  g_test_summary ("Threads on three factories run read-modify-write loops with "
                  "expected_version on three streams while es-pg-writer processes append "
                  "to them: exactly the successful writes are stored, once each, at the "
                  "version they were given, versions have no gap, every loser got "
                  "ES_ERROR_WRONG_EXPECTED_VERSION, and @all has no hole");

  for (guint i = 0; i < RMW_FACTORIES; i++)
    factories[i] = factory_new (f, 2);

  start = g_get_monotonic_time ();
  if (writer != NULL)
    {
      for (guint p = 0; p < G_N_ELEMENTS (writers); p++)
        {
          g_autoptr(GError) error = NULL;
          g_autofree char *stream_id = g_strdup_printf ("rmw-%u", p);
          g_autofree char *count = g_strdup_printf ("%u", writer_events);
          g_autofree char *batch = g_strdup_printf ("%u", WRITER_BATCH);
          const char *argv[] = { writer, f->conninfo, f->schema, stream_id, count, batch, NULL };

          writers[p] = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
          g_assert_no_error (error);
        }
    }
  else
    g_test_message ("ES_PG_WRITER is not set: no writer processes");

  for (guint i = 0; i < RMW_THREADS; i++)
    {
      threads[i] = (RmwThread) {
        factories[i % RMW_FACTORIES], i, rounds, 0, 0, 0,
        g_array_new (FALSE, FALSE, sizeof (RmwWin)), NULL
      };
      handles[i] = g_thread_new ("rmw", rmw_thread, &threads[i]);
    }
  for (guint i = 0; i < RMW_THREADS; i++)
    {
      g_thread_join (handles[i]);
      g_assert_no_error (threads[i].unexpected);
      g_assert_cmpuint (threads[i].attempted, ==, rounds);
      g_assert_cmpuint (threads[i].won + threads[i].lost, ==, rounds);
      attempted += threads[i].attempted;
      won += threads[i].won;
      lost += threads[i].lost;
      for (guint r = 0; r < threads[i].wins->len; r++)
        {
          RmwWin *win = &g_array_index (threads[i].wins, RmwWin, r);

          if (win->version > 0)
            g_hash_table_insert (expected, g_strdup_printf ("t%u-r%u", i, r), win);
        }
    }

  for (guint p = 0; p < G_N_ELEMENTS (writers); p++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *out = NULL;
      g_auto(GStrv) lines = NULL;

      if (writers[p] == NULL)
        continue;
      g_subprocess_communicate_utf8 (writers[p], NULL, NULL, &out, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_get_successful (writers[p]));
      lines = g_strsplit (g_strstrip (out), "\n", -1);
      writer_acks[p] = g_strv_length (lines);
      g_assert_cmpuint (writer_acks[p], ==, (writer_events + WRITER_BATCH - 1) / WRITER_BATCH);
      g_clear_object (&writers[p]);

      /* Each acknowledged batch is whole and contiguous in the stream. */
      {
        g_autofree char *stream_id = g_strdup_printf ("rmw-%u", p);
        g_autoptr(EsStream) stream = es_test_open_stream (factories[0], stream_id);
        g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, 0, NULL);

        for (guint l = 0; lines[l] != NULL; l++)
          {
            gint64 last = g_ascii_strtoll (lines[l], NULL, 10);
            guint in_batch = l + 1 < writer_acks[p] ? WRITER_BATCH
                                                    : writer_events - l * WRITER_BATCH;
            gint64 previous = -1;

            g_assert_cmpint (last, >=, in_batch);
            g_assert_cmpint (last, <=, events->len);
            for (gint64 v = last - in_batch + 1; v <= last; v++)
              {
                EsStoredEvent *event = g_ptr_array_index (events, v - 1);
                g_autofree char *text = event_text (event);
                gint64 index = g_ascii_strtoll (text, NULL, 10);

                g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "written");
                if (previous >= 0)
                  g_assert_cmpint (index, ==, previous + 1);
                previous = index;
              }
          }
      }
    }
  g_test_message ("Concurrent writers: %u read-modify-write attempts, %u won, %u lost "
                  "(ES_ERROR_WRONG_EXPECTED_VERSION); %u + %u acknowledged batches of %u from "
                  "2 processes; %.0f ms", attempted, won, lost, writer_acks[0], writer_acks[1],
                  WRITER_BATCH, (g_get_monotonic_time () - start) / 1000.0);
  g_assert_cmpuint (won, >, 0);
  g_assert_cmpuint (lost, >, 0);

  /* Exactly the won writes are stored, once, at the version they got. */
  for (guint s = 0; s < RMW_STREAMS; s++)
    {
      g_autofree char *stream_id = g_strdup_printf ("rmw-%u", s);
      g_autoptr(EsStream) stream = es_test_open_stream (factories[1], stream_id);
      g_autoptr(GPtrArray) events = es_test_read_all_ok (stream, 0, NULL);

      assert_versions_without_gaps (events, stream_id);
      g_assert_cmpint (es_stream_get_version (stream), ==, events->len);
      for (guint i = 0; i < events->len; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (events, i);
          g_autofree char *token = event_text (event);
          RmwWin *win;

          if (g_strcmp0 (es_stored_event_get_event_type (event), "written") == 0)
            {
              writer_stored[s]++;
              continue;
            }
          g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "rmw");
          win = g_hash_table_lookup (expected, token);
          if (win == NULL)
            g_error ("'%s' at version %" G_GINT64_FORMAT " of %s: a lost or duplicated write "
                     "was stored", token, es_stored_event_get_version (event), stream_id);
          g_assert_cmpuint (win->stream, ==, s);
          g_assert_cmpint (win->version, ==, es_stored_event_get_version (event));
          g_hash_table_remove (expected, token);
        }
      total += events->len;
    }
  if (g_hash_table_size (expected) > 0)
    g_error ("%u acknowledged writes are not stored", g_hash_table_size (expected));
  for (guint p = 0; p < G_N_ELEMENTS (writers); p++)
    if (writer != NULL)
      g_assert_cmpuint (writer_stored[p], ==, writer_events);
  g_assert_cmpuint (writer_stored[2], ==, 0);

  all = es_test_open_stream (factories[2], ES_ALL_STREAM);
  everything = es_test_read_all_ok (all, 0, NULL);
  g_assert_cmpuint (everything->len, ==, total);
  assert_sequence_without_holes (everything);

  g_clear_object (&all);
  for (guint i = 0; i < RMW_THREADS; i++)
    g_array_unref (threads[i].wins);
  for (guint i = 0; i < RMW_FACTORIES; i++)
    es_test_factory_close_and_free (factories[i]);
}

#define IDEM_ROUNDS 40

typedef struct
{
  EsStreamFactory *factory;
  guint            index;
  Barrier         *barrier;
  GError          *error;  /* (owned) (nullable) */
} IdemThread;

static gpointer
idem_thread (gpointer user_data)
{
  IdemThread *t = user_data;
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (t->factory, "idem", NULL,
                                                              &t->error);

  for (guint round = 0; round < IDEM_ROUNDS; round++)
    {
      g_autofree char *shared = g_strdup_printf ("shared-%u", round);
      g_autofree char *own = g_strdup_printf ("own-%u-%u", t->index, round);
      g_autofree char *from = g_strdup_printf ("%u", t->index);
      EsCandidateEvent *batch[3];

      batch[0] = candidate_text ("Shared", from, shared, NULL);
      batch[1] = candidate_text ("Own", from, own, NULL);
      /* The same key twice in one batch: the second is skipped. */
      batch[2] = candidate_text ("Shared", from, shared, NULL);
      barrier_wait (t->barrier);
      if (stream != NULL && t->error == NULL)
        es_stream_write (stream, batch, G_N_ELEMENTS (batch), ES_VERSION_ANY, NULL, &t->error);
      for (guint i = 0; i < G_N_ELEMENTS (batch); i++)
        g_object_unref (batch[i]);
    }
  return NULL;
}

static void
test_idempotency_across_connections (Fixture       *f,
                                     gconstpointer  data)
{
  IdemThread threads[2];
  GThread *handles[2];
  Barrier barrier;
  EsStreamFactory *factories[2];
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  g_test_summary ("Two factories writing the same idempotency keys at the same moment: "
                  "both writes succeed, each key is stored once");

  barrier_init (&barrier, 2);
  for (guint i = 0; i < 2; i++)
    {
      factories[i] = factory_new (f, 1);
      threads[i] = (IdemThread) { factories[i], i, &barrier, NULL };
    }
  for (guint i = 0; i < 2; i++)
    handles[i] = g_thread_new ("idem", idem_thread, &threads[i]);
  for (guint i = 0; i < 2; i++)
    {
      g_thread_join (handles[i]);
      g_assert_no_error (threads[i].error);
    }
  barrier_clear (&barrier);

  stream = es_test_open_stream (factories[0], "idem");
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 3 * IDEM_ROUNDS);
  assert_versions_without_gaps (events, "idem");
  for (guint i = 0; i < events->len; i++)
    {
      const char *id = es_stored_event_get_id (g_ptr_array_index (events, i));

      if (!g_hash_table_add (seen, (gpointer) id))
        g_error ("Key '%s' stored twice", id);
    }
  for (guint round = 0; round < IDEM_ROUNDS; round++)
    {
      g_autofree char *shared = g_strdup_printf ("shared-%u", round);

      g_assert_true (g_hash_table_contains (seen, shared));
    }

  g_clear_pointer (&events, g_ptr_array_unref);
  g_clear_object (&stream);
  for (guint i = 0; i < 2; i++)
    es_test_factory_close_and_free (factories[i]);
}

/* ------------------------------------------------------------------ */
/* The server restarting, and down                                     */
/* ------------------------------------------------------------------ */

#define RESTART_BATCH 5

typedef struct
{
  gint64   version;  /* 0: failed */
  gboolean after;    /* attempted once the restart was over */
} BatchOutcome;

typedef struct
{
  EsStream *stream;
  gint      restarted;     /* (atomic) the server is back */
  guint     ok_before;     /* (atomic) */
  guint     ok_after;
  guint     failed;
  gint64    slowest_usec;
  GArray   *outcomes;      /* (owned) (element-type BatchOutcome), by batch */
  GError   *unexpected;    /* (owned) (nullable) */
  GError   *last_failure;  /* (owned) (nullable) */
} RestartWriter;

static gpointer
restart_writer_thread (gpointer user_data)
{
  RestartWriter *w = user_data;
  gint64 deadline = g_get_monotonic_time () + 90 * G_USEC_PER_SEC;

  while (w->unexpected == NULL && g_get_monotonic_time () < deadline &&
         !(g_atomic_int_get (&w->restarted) && w->ok_after >= 20))
    {
      EsCandidateEvent *batch[RESTART_BATCH];
      g_autoptr(GError) error = NULL;
      BatchOutcome outcome = { 0, g_atomic_int_get (&w->restarted) };
      guint index = w->outcomes->len;
      gint64 start, elapsed, version;

      /* No idempotency key: a batch applied twice would show. */
      for (guint i = 0; i < RESTART_BATCH; i++)
        {
          g_autofree char *text = g_strdup_printf ("%u-%u", index, i);

          batch[i] = candidate_text ("Batch", text, NULL, NULL);
        }
      start = g_get_monotonic_time ();
      version = es_stream_write (w->stream, batch, RESTART_BATCH, ES_VERSION_ANY, NULL, &error);
      elapsed = g_get_monotonic_time () - start;
      w->slowest_usec = MAX (w->slowest_usec, elapsed);
      for (guint i = 0; i < RESTART_BATCH; i++)
        g_object_unref (batch[i]);

      if (error == NULL)
        {
          outcome.version = version;
          if (outcome.after)
            w->ok_after++;
          else
            g_atomic_int_inc (&w->ok_before);
        }
      else if (g_error_matches (error, ES_ERROR, ES_ERROR_STORAGE) && elapsed < BOUNDED_USEC)
        {
          w->failed++;
          g_clear_error (&w->last_failure);
          w->last_failure = g_steal_pointer (&error);
          g_usleep (10000);
        }
      else
        {
          g_prefix_error (&error, "batch %u, after %.0f ms: ", index, elapsed / 1000.0);
          w->unexpected = g_steal_pointer (&error);
        }
      g_array_append_val (w->outcomes, outcome);
    }
  return NULL;
}

static void
test_restart_during_writes (Fixture       *f,
                            gconstpointer  data)
{
  EsStreamFactory *factory;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autofree guint *present = NULL;
  g_autofree gint64 *last_version = NULL;
  RestartWriter w = { 0 };
  GThread *thread;
  gint64 deadline;
  guint failed_committed = 0, failed_absent = 0;

  g_test_summary ("A writer appends batches while the server restarts: every write "
                  "succeeds (its batch fully stored) or fails with ES_ERROR_STORAGE in "
                  "bounded time (its batch absent, or whole if COMMIT was sent), never "
                  "half; writes work again after the restart");

  if (!server_control_available ())
    return;

  factory = factory_new (f, 2);
  stream = es_test_open_stream (factory, "restart");
  w.stream = stream;
  w.outcomes = g_array_new (FALSE, FALSE, sizeof (BatchOutcome));
  thread = g_thread_new ("restart-writer", restart_writer_thread, &w);

  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (g_atomic_int_get (&w.ok_before) < 20 && g_get_monotonic_time () < deadline)
    g_usleep (5000);
  g_assert_cmpuint (g_atomic_int_get (&w.ok_before), >=, 20);

  server_control ("restart");
  g_atomic_int_set (&w.restarted, TRUE);
  g_thread_join (thread);

  g_assert_no_error (w.unexpected);
  g_test_message ("Restart: %u batches acknowledged before, %u failed with "
                  "ES_ERROR_STORAGE, %u acknowledged after; slowest write %.0f ms",
                  w.ok_before, w.failed, w.ok_after, w.slowest_usec / 1000.0);
  if (w.last_failure != NULL)
    g_test_message ("Last failure: %s", w.last_failure->message);
  g_assert_cmpuint (w.ok_after, >=, 20);

  /* All or nothing, per batch. */
  events = es_test_read_all_ok (stream, 0, NULL);
  assert_versions_without_gaps (events, "restart");
  present = g_new0 (guint, w.outcomes->len);
  last_version = g_new0 (gint64, w.outcomes->len);
  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);
      g_autofree char *text = event_text (event);
      guint64 index = g_ascii_strtoull (text, NULL, 10);

      g_assert_cmpuint (index, <, w.outcomes->len);
      present[index]++;
      last_version[index] = es_stored_event_get_version (event);
    }
  for (guint b = 0; b < w.outcomes->len; b++)
    {
      BatchOutcome *outcome = &g_array_index (w.outcomes, BatchOutcome, b);

      if (present[b] != 0 && present[b] != RESTART_BATCH)
        g_error ("Batch %u is stored half: %u of %u events", b, present[b], RESTART_BATCH);
      if (outcome->version > 0)
        {
          g_assert_cmpuint (present[b], ==, RESTART_BATCH);
          g_assert_cmpint (last_version[b], ==, outcome->version);
        }
      else if (present[b] == RESTART_BATCH)
        failed_committed++;
      else
        failed_absent++;
    }
  g_test_message ("Failed writes: %u absent, %u committed (the connection broke after "
                  "COMMIT was sent)", failed_absent, failed_committed);

  g_clear_error (&w.last_failure);
  g_array_unref (w.outcomes);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

/* Asserts @error is ES_ERROR_STORAGE, reached in bounded time. */
static void
assert_down_error (const char *what,
                   GError     *error,
                   gint64      start)
{
  gint64 elapsed = g_get_monotonic_time () - start;

  g_test_message ("%s while the server is down: %.0f ms: %s", what, elapsed / 1000.0,
                  error != NULL ? error->message : "no error");
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_cmpint (elapsed, <, BOUNDED_USEC);
}

static void
test_server_down (Fixture       *f,
                  gconstpointer  data)
{
  EsStreamFactory *factory;
  EsStreamFactory *other;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsStream) fresh = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsCandidateEvent) event = candidate_text ("Down", "x", NULL, NULL);
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStoredEvent) first = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  gint64 start;

  g_test_summary ("While the server is down every operation fails with ES_ERROR_STORAGE "
                  "in bounded time, not a hang; once it is started again, the first "
                  "operations work");

  if (!server_control_available ())
    return;

  factory = factory_new (f, 2);
  stream = es_test_open_stream (factory, "down");
  all = es_test_open_stream (factory, ES_ALL_STREAM);
  write_one (stream, "Up", "1", ES_VERSION_NO_STREAM);

  server_control ("stop");

  start = g_get_monotonic_time ();
  es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
  assert_down_error ("write", error, start);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  es_stream_write_async (stream, &event, 1, ES_VERSION_ANY, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  es_stream_write_finish (stream, result, &error);
  assert_down_error ("write_async", error, start);
  g_clear_error (&error);
  g_clear_object (&result);

  start = g_get_monotonic_time ();
  enumerator = es_stream_read (all, 0, NULL, NULL, &error);
  if (enumerator != NULL)
    first = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_null (first);
  assert_down_error ("read", error, start);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_null (metrics);
  assert_down_error ("metrics", error, start);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  g_assert_false (es_stream_snapshot (stream, state, 1, NULL, NULL, &error));
  assert_down_error ("snapshot", error, start);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
  g_assert_null (snapshot);
  assert_down_error ("load_snapshot", error, start);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  fresh = es_stream_factory_open_stream (factory, "fresh", NULL, &error);
  if (fresh != NULL)
    es_stream_write (fresh, &event, 1, ES_VERSION_ANY, NULL, &error);
  assert_down_error ("open_stream and write", error, start);
  g_clear_object (&fresh);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  other = pg_factory_new (f->conninfo, f->schema, 1, &error);
  g_assert_null (other);
  assert_down_error ("a new factory", error, start);
  g_clear_error (&error);

  server_control ("start");

  /* The first operations after the start work (broken pooled connections
   * are replaced). */
  g_assert_cmpint (write_one (stream, "Up", "2", 1), ==, 2);
  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 2);
  events = es_test_read_all_ok (all, 0, NULL);
  g_assert_cmpuint (events->len, ==, 2);
  assert_sequence_without_holes (events);
  g_assert_true (es_stream_snapshot (stream, state, 2, NULL, NULL, &error));
  g_assert_no_error (error);

  other = factory_new (f, 1);
  fresh = es_test_open_stream (other, "down");
  g_assert_cmpint (es_stream_get_version (fresh), ==, 2);
  g_clear_object (&fresh);
  es_test_factory_close_and_free (other);

  g_clear_object (&stream);
  g_clear_object (&all);
  g_clear_object (&enumerator);
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

typedef struct
{
  const char *type;
  const char *key;
  const char *metadata;
} FilterRow;

static const FilterRow filter_rows[] = {
  { "Placed", "e1", "{\"user\": {\"name\": \"alice\", \"tags\": [\"a\", \"b\"]}, \"amount\": 10, "
                    "\"ratio\": 0.5, \"vip\": true, \"note\": \"it's 100%\"}" },
  { "Placed", "e2", "{\"user\": {\"name\": \"bob\"}, \"amount\": \"10\", \"ratio\": 1, "
                    "\"vip\": false, \"note\": \"it_s 50\"}" },
  { "Paid", "e3", "{\"user\": {\"name\": \"Alice\"}, \"amount\": 20, \"ratio\": 1.0}" },
  { "Paid", "e4", NULL },
  { "Shipped", "e5", "{\"deep\": {\"a\": {\"b\": {\"c\": \"x\"}}}, \"amount\": 20.5, "
                     "\"user\": null}" },
  { "Shipped", "e6", "{\"amount\": -3, \"vip\": \"true\", \"n\": 9007199254740993}" },
  { "Placed", "e7", "{}" },
};

typedef struct
{
  const char *field;
  const char *op;      /* "=", "in", "like" */
  const char *value;   /* GVariant text; a pattern for like */
  const char *expect;  /* ids, comma-separated, or NULL: only compare with SQLite */
} FilterCase;

static const FilterCase filter_cases[] = {
  { "metadata.user.name", "=", "'alice'", "e1" },
  { "metadata.user.name", "=", "'Alice'", "e3" },
  { "metadata.amount", "=", "int64 10", "e1" },
  { "metadata.amount", "=", "'10'", "e2" },
  { "metadata.amount", "=", "20.5", "e5" },
  { "metadata.amount", "=", "int32 -3", "e6" },
  { "metadata.amount", "=", "uint16 20", "e3" },
  { "metadata.ratio", "=", "0.5", "e1" },
  { "metadata.ratio", "=", "int64 1", NULL },
  { "metadata.ratio", "=", "1.0", NULL },
  { "metadata.vip", "=", "true", "e1" },
  { "metadata.vip", "=", "false", "e2" },
  { "metadata.vip", "=", "'true'", "e6" },
  { "metadata.deep.a.b.c", "=", "'x'", "e5" },
  { "metadata.deep.a.b", "=", "'x'", "" },
  { "metadata.missing", "=", "'x'", "" },
  { "metadata.n", "=", "int64 9007199254740993", NULL },
  { "metadata.user.name", "in", "['alice', 'bob']", "e1,e2" },
  { "metadata.amount", "in", "[int64 10, 20]", "e1,e3" },
  { "metadata.amount", "in", "[20.5, -3.0]", NULL },
  { "metadata.note", "like", "it's%", "e1" },
  { "metadata.note", "like", "it_s%", "e1,e2" },
  { "metadata.user.name", "like", "ALICE", NULL },
  { "metadata.user.name", "like", "%li%", NULL },
  { "event_type", "like", "p%", NULL },
  { "event_type", "in", "['Paid', 'Shipped']", "e3,e4,e5,e6" },
  { "metadata.user", "=", "'x'", "" },
};

static EsEventFilter *
filter_for_case (const FilterCase *c)
{
  EsEventFilter *filter = es_event_filter_new ();
  g_autoptr(GError) error = NULL;

  if (g_str_equal (c->op, "like"))
    {
      es_event_filter_add_like (filter, c->field, c->value);
    }
  else
    {
      GVariant *value = g_variant_parse (NULL, c->value, NULL, NULL, &error);

      g_assert_no_error (error);
      if (g_str_equal (c->op, "="))
        es_event_filter_add_equals (filter, c->field, value);
      else
        es_event_filter_add_in (filter, c->field, value);
      g_variant_unref (value);
    }
  return filter;
}

static char *
ids_of (GPtrArray *events)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) ids = NULL;

  for (guint i = 0; i < events->len; i++)
    g_strv_builder_add (builder, es_stored_event_get_id (g_ptr_array_index (events, i)));
  ids = g_strv_builder_end (builder);
  return g_strjoinv (",", ids);
}

static void
write_filter_rows (EsStreamFactory *factory)
{
  for (guint i = 0; i < G_N_ELEMENTS (filter_rows); i++)
    {
      g_autofree char *stream_id = g_strdup_printf ("orders-%u", i % 2);
      g_autoptr(EsStream) stream = es_test_open_stream (factory, stream_id);
      g_autoptr(EsCandidateEvent) event = candidate_text (filter_rows[i].type, "",
                                                          filter_rows[i].key,
                                                          filter_rows[i].metadata);
      g_autoptr(GError) error = NULL;

      es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
    }
}

static void
test_filters_metadata (Fixture       *f,
                       gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 2);
  g_autoptr(EsSqliteStreamFactory) sqlite = NULL;
  g_autoptr(EsStream) pg_all = NULL;
  g_autoptr(EsStream) sqlite_all = NULL;
  g_autoptr(EsStream) pg_orders = NULL;
  g_autoptr(EsStream) sqlite_orders = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Filters on metadata paths (jsonb: nested keys, strings vs numbers, "
                  "booleans, in, like) give exactly SQLite's answers, on @all and on a "
                  "stream");

  sqlite = es_sqlite_stream_factory_new (NULL, NULL, &error);
  g_assert_no_error (error);
  write_filter_rows (factory);
  write_filter_rows (ES_STREAM_FACTORY (sqlite));
  pg_all = es_test_open_stream (factory, ES_ALL_STREAM);
  sqlite_all = es_test_open_stream (ES_STREAM_FACTORY (sqlite), ES_ALL_STREAM);
  pg_orders = es_test_open_stream (factory, "orders-0");
  sqlite_orders = es_test_open_stream (ES_STREAM_FACTORY (sqlite), "orders-0");

  for (guint i = 0; i < G_N_ELEMENTS (filter_cases); i++)
    {
      const FilterCase *c = &filter_cases[i];
      g_autoptr(EsEventFilter) filter = filter_for_case (c);
      g_autoptr(GPtrArray) pg_events = es_test_read_all_ok (pg_all, 0, filter);
      g_autoptr(GPtrArray) sqlite_events = es_test_read_all_ok (sqlite_all, 0, filter);
      g_autoptr(GPtrArray) pg_stream_events = es_test_read_all_ok (pg_orders, 0, filter);
      g_autoptr(GPtrArray) sqlite_stream_events = es_test_read_all_ok (sqlite_orders, 0, filter);
      g_autofree char *pg_ids = ids_of (pg_events);
      g_autofree char *sqlite_ids = ids_of (sqlite_events);
      g_autofree char *pg_stream_ids = ids_of (pg_stream_events);
      g_autofree char *sqlite_stream_ids = ids_of (sqlite_stream_events);

      g_test_message ("%s %s %s: PostgreSQL [%s], SQLite [%s]", c->field, c->op, c->value,
                      pg_ids, sqlite_ids);
      if (c->expect != NULL)
        g_assert_cmpstr (sqlite_ids, ==, c->expect);
      g_assert_cmpstr (pg_ids, ==, sqlite_ids);
      g_assert_cmpstr (pg_stream_ids, ==, sqlite_stream_ids);
    }

  /* AND of clauses, after a sequence id. */
  {
    g_autoptr(EsEventFilter) filter = es_event_filter_new ();
    g_autoptr(GPtrArray) events = NULL;
    g_autofree char *ids = NULL;

    es_event_filter_add_equals (filter, "event_type", g_variant_new_string ("Placed"));
    es_event_filter_add_like (filter, "metadata.note", "it%");
    events = es_test_read_all_ok (pg_all, 1, filter);
    ids = ids_of (events);
    g_assert_cmpstr (ids, ==, "e2");
  }

  g_clear_object (&pg_all);
  g_clear_object (&pg_orders);
  g_clear_object (&sqlite_all);
  g_clear_object (&sqlite_orders);
  es_stream_factory_close (ES_STREAM_FACTORY (sqlite), NULL, NULL);
  es_test_factory_close_and_free (factory);
}

static void
test_large_payload (Fixture       *f,
                    gconstpointer  data)
{
  const gsize size = 16 * 1024 * 1024;
  EsStreamFactory *factory = factory_new (f, 2);
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "large");
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GBytes) quarter = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) metadata = g_string_new ("{\"blob\": \"");
  guint8 *bytes = g_malloc (size);
  EsCandidateEvent *batch[4];
  gint64 start;

  g_test_summary ("A 16 MiB event (with NUL bytes), a batch of four 4 MiB events, a "
                  "1 MiB metadata text and a 16 MiB snapshot round-trip exactly");

  for (gsize i = 0; i < size; i++)
    bytes[i] = (guint8) ((i * 2654435761u) >> 13);
  payload = g_bytes_new_take (bytes, size);
  for (guint i = 0; i < 1024 * 1024 / 8; i++)
    g_string_append (metadata, "abcdefgh");
  g_string_append (metadata, "\"}");

  start = g_get_monotonic_time ();
  {
    g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Large", payload);

    es_candidate_event_set_metadata (event, metadata->str);
    g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &error),
                     ==, 1);
    g_assert_no_error (error);
  }
  quarter = g_bytes_new_from_bytes (payload, size / 4, size / 4);
  for (guint i = 0; i < 4; i++)
    batch[i] = es_candidate_event_new ("Quarter", quarter);
  g_assert_cmpint (es_stream_write (stream, batch, 4, 1, NULL, &error), ==, 5);
  g_assert_no_error (error);
  for (guint i = 0; i < 4; i++)
    g_object_unref (batch[i]);
  g_assert_true (es_stream_snapshot (stream, payload, 1, "large", NULL, &error));
  g_assert_no_error (error);
  g_test_message ("Wrote 32 MiB of events and a 16 MiB snapshot in %.0f ms",
                  (g_get_monotonic_time () - start) / 1000.0);

  start = g_get_monotonic_time ();
  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, 5);
  g_assert_true (g_bytes_equal (es_stored_event_get_data (g_ptr_array_index (events, 0)),
                                payload));
  g_assert_cmpstr (es_stored_event_get_metadata (g_ptr_array_index (events, 0)), ==,
                   metadata->str);
  for (guint i = 1; i < 5; i++)
    g_assert_true (g_bytes_equal (es_stored_event_get_data (g_ptr_array_index (events, i)),
                                  quarter));
  snapshot = es_stream_load_snapshot (stream, "large", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (snapshot);
  g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), payload));
  g_test_message ("Read them back in %.0f ms", (g_get_monotonic_time () - start) / 1000.0);

  g_clear_pointer (&events, g_ptr_array_unref);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

static const char *evil_strings[] = {
  "'; DROP TABLE events; --",
  "\"quoted\" \\backslash\\ $1 $$dollar$$ %percent_ under_score",
  "E'\\x00'::bytea); SELECT pg_sleep(10); --",
  "unicode \xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80 and a\\u0000-looking escape",
  "tab\tnew\nline\rreturn",
  "$tag$ $tag$ ) ; COMMIT; BEGIN",
};

static void
test_verbatim (Fixture       *f,
               gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 2);
  g_autoptr(EsStream) all = es_test_open_stream (factory, ES_ALL_STREAM);
  g_autofree char *structure = schema_fingerprint (f, f->schema, FALSE);
  g_autofree char *structure_after = NULL;
  guint8 binary[1024 + 3];

  g_test_summary ("SQL meta-characters in stream ids, event types, idempotency keys, "
                  "metadata, projection names and filter values are stored and matched "
                  "verbatim; NUL bytes in data and snapshots round-trip");

  for (guint i = 0; i < G_N_ELEMENTS (evil_strings); i++)
    {
      const char *evil = evil_strings[i];
      g_autoptr(EsStream) stream = es_test_open_stream (factory, evil);
      g_autofree char *quoted = json_quote (evil);
      /* Odd spacing and key order: returned exactly as written. */
      g_autofree char *metadata = g_strdup_printf ("{ \"k\" :%s,\n\t\"z\":1 ,\"a\": [ ] }",
                                                   quoted);
      g_autoptr(EsCandidateEvent) event = candidate_text (evil, evil, evil, metadata);
      g_autoptr(GBytes) state = g_bytes_new (evil, strlen (evil) + 1);
      g_autoptr(EsSnapshot) snapshot = NULL;
      g_autoptr(GPtrArray) events = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *text = NULL;
      EsStoredEvent *stored;
      const char *fields[] = { "stream_id", "event_type", "metadata.k" };

      g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &error),
                       ==, 1);
      g_assert_no_error (error);
      /* Idempotency by the same key: skipped. */
      g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), ==, 1);
      g_assert_no_error (error);

      events = es_test_read_all_ok (stream, 0, NULL);
      g_assert_cmpuint (events->len, ==, 1);
      stored = g_ptr_array_index (events, 0);
      g_assert_cmpstr (es_stored_event_get_stream_id (stored), ==, evil);
      g_assert_cmpstr (es_stored_event_get_event_type (stored), ==, evil);
      g_assert_cmpstr (es_stored_event_get_id (stored), ==, evil);
      g_assert_cmpstr (es_stored_event_get_metadata (stored), ==, metadata);
      text = event_text (stored);
      g_assert_cmpstr (text, ==, evil);

      g_assert_true (es_stream_snapshot (stream, state, 1, evil, NULL, &error));
      g_assert_no_error (error);
      snapshot = es_stream_load_snapshot (stream, evil, NULL, &error);
      g_assert_no_error (error);
      g_assert_nonnull (snapshot);
      g_assert_cmpstr (es_snapshot_get_projection_name (snapshot), ==, evil);
      g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), state));

      /* Each of the fields, as a filter value on @all, finds exactly it. */
      for (guint k = 0; k < G_N_ELEMENTS (fields); k++)
        {
          g_autoptr(EsEventFilter) filter = es_event_filter_new ();
          g_autoptr(GPtrArray) found = NULL;

          es_event_filter_add_equals (filter, fields[k], g_variant_new_string (evil));
          found = es_test_read_all_ok (all, 0, filter);
          g_assert_cmpuint (found->len, ==, 1);
          g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (found, 0)), ==,
                           evil);
        }
    }

  /* NUL bytes and every byte value, in data and in snapshot state. */
  for (guint i = 0; i < sizeof binary; i++)
    binary[i] = (guint8) (i % 256);
  binary[0] = binary[sizeof binary - 1] = 0;
  {
    g_autoptr(EsStream) stream = es_test_open_stream (factory, "binary");
    g_autoptr(GBytes) bytes = g_bytes_new (binary, sizeof binary);
    g_autoptr(GBytes) nul = g_bytes_new ("\0", 1);
    g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
    g_autoptr(GPtrArray) events = NULL;
    g_autoptr(EsSnapshot) snapshot = NULL;
    g_autoptr(GError) error = NULL;
    EsCandidateEvent *batch[3];

    batch[0] = es_candidate_event_new ("Binary", bytes);
    batch[1] = es_candidate_event_new ("Nul", nul);
    batch[2] = es_candidate_event_new ("Empty", empty);
    g_assert_cmpint (es_stream_write (stream, batch, 3, ES_VERSION_NO_STREAM, NULL, &error), ==, 3);
    g_assert_no_error (error);
    for (guint i = 0; i < 3; i++)
      g_object_unref (batch[i]);

    events = es_test_read_all_ok (stream, 0, NULL);
    g_assert_cmpuint (events->len, ==, 3);
    g_assert_true (g_bytes_equal (es_stored_event_get_data (g_ptr_array_index (events, 0)),
                                  bytes));
    g_assert_true (g_bytes_equal (es_stored_event_get_data (g_ptr_array_index (events, 1)), nul));
    g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (g_ptr_array_index (events, 2))),
                      ==, 0);

    g_assert_true (es_stream_snapshot (stream, bytes, 3, NULL, NULL, &error));
    g_assert_no_error (error);
    snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_true (g_bytes_equal (es_snapshot_get_state (snapshot), bytes));
  }

  structure_after = schema_fingerprint (f, f->schema, FALSE);
  g_assert_cmpstr (structure_after, ==, structure);
  g_clear_object (&all);
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* NOTIFY, properties, construction                                    */
/* ------------------------------------------------------------------ */

/* Waits up to 5 s for a notification on the admin connection. */
static PGnotify *
admin_wait_notify (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  PGnotify *notify;

  while ((notify = PQnotifies (f->admin)) == NULL)
    {
      struct pollfd pfd = { PQsocket (f->admin), POLLIN, 0 };
      gint64 remaining = deadline - g_get_monotonic_time ();

      if (remaining <= 0)
        return NULL;
      poll (&pfd, 1, (int) (remaining / 1000) + 1);
      g_assert_cmpint (PQconsumeInput (f->admin), ==, 1);
    }
  return notify;
}

static void
test_notify (Fixture       *f,
             gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  EsPgStorage *storage = ES_PG_STORAGE (es_stream_factory_get_storage (factory));
  g_autofree char *channel = g_strdup_printf ("%s_events", f->schema);
  g_autofree char *quoted = quote_ident (f->admin, channel);
  g_autofree char *listen = g_strdup_printf ("LISTEN %s", quoted);
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "notified");
  g_autoptr(EsStream) other = es_test_open_stream (factory, "other");
  g_autoptr(GError) error = NULL;
  EsCandidateEvent *batch[3];
  PGnotify *notify;

  g_test_summary ("Each append NOTIFYs '<schema>_events' with its last sequence id, on "
                  "commit");

  g_assert_cmpstr (_es_pg_storage_get_channel (storage), ==, channel);
  admin_exec (f, listen);

  write_one (other, "First", "", ES_VERSION_ANY);
  notify = admin_wait_notify (f);
  g_assert_nonnull (notify);
  g_assert_cmpstr (notify->relname, ==, channel);
  g_assert_cmpstr (notify->extra, ==, "1");
  PQfreemem (notify);

  for (guint i = 0; i < 3; i++)
    batch[i] = candidate_text ("Batched", "", NULL, NULL);
  es_stream_write (stream, batch, 3, ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 3; i++)
    g_object_unref (batch[i]);
  notify = admin_wait_notify (f);
  g_assert_nonnull (notify);
  g_assert_cmpstr (notify->relname, ==, channel);
  g_assert_cmpstr (notify->extra, ==, "4");
  PQfreemem (notify);

  /* A conflict commits nothing and notifies nothing. */
  {
    g_autoptr(EsCandidateEvent) event = candidate_text ("Late", "", NULL, NULL);

    es_stream_write (stream, &event, 1, 1, NULL, &error);
    g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
    g_clear_error (&error);
    write_one (other, "Second", "", ES_VERSION_ANY);
    notify = admin_wait_notify (f);
    g_assert_nonnull (notify);
    g_assert_cmpstr (notify->extra, ==, "5");
    PQfreemem (notify);
  }

  g_clear_object (&stream);
  g_clear_object (&other);
  es_test_factory_close_and_free (factory);
}

static void
test_properties (Fixture       *f,
                 gconstpointer  data)
{
  GType types[] = { ES_TYPE_PG_STREAM_FACTORY, ES_TYPE_PG_STORAGE };
  g_autoptr(GError) error = NULL;
  g_autofree char *conninfo = NULL;
  g_autofree char *schema = NULL;
  g_autoptr(EsPgStorage) storage_prop = NULL;
  EsStreamFactory *factory;
  EsPgStorage *storage;
  EsNotifier *notifier;
  guint pool_size = 0;

  g_test_summary ("conninfo, schema (default \"es_glib\") and pool-size (1..64, default "
                  "4) are construct properties of the factory and the storage, with "
                  "getters; the factory's backend is an EsPgStorage and an EsPgNotifier");

  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    {
      g_autoptr(GTypeClass) klass = g_type_class_ref (types[i]);
      GParamSpec *pspec;

      pspec = g_object_class_find_property (G_OBJECT_CLASS (klass), "conninfo");
      g_assert_nonnull (pspec);
      g_assert_true (G_IS_PARAM_SPEC_STRING (pspec));
      g_assert_true (pspec->flags & G_PARAM_CONSTRUCT_ONLY);

      pspec = g_object_class_find_property (G_OBJECT_CLASS (klass), "schema");
      g_assert_nonnull (pspec);
      g_assert_cmpstr (G_PARAM_SPEC_STRING (pspec)->default_value, ==, ES_PG_DEFAULT_SCHEMA);
      g_assert_cmpstr (ES_PG_DEFAULT_SCHEMA, ==, "es_glib");

      pspec = g_object_class_find_property (G_OBJECT_CLASS (klass), "pool-size");
      g_assert_nonnull (pspec);
      g_assert_cmpuint (G_PARAM_SPEC_UINT (pspec)->default_value, ==, 4);
      g_assert_cmpuint (G_PARAM_SPEC_UINT (pspec)->minimum, ==, 1);
      g_assert_cmpuint (G_PARAM_SPEC_UINT (pspec)->maximum, ==, 64);
    }

  factory = factory_new (f, 3);
  g_object_get (factory, "conninfo", &conninfo, "schema", &schema, "pool-size", &pool_size,
                NULL);
  g_assert_cmpstr (conninfo, ==, f->conninfo);
  g_assert_cmpstr (schema, ==, f->schema);
  g_assert_cmpuint (pool_size, ==, 3);
  g_assert_cmpstr (es_pg_stream_factory_get_conninfo (ES_PG_STREAM_FACTORY (factory)), ==,
                   f->conninfo);
  g_assert_cmpstr (es_pg_stream_factory_get_schema (ES_PG_STREAM_FACTORY (factory)), ==,
                   f->schema);

  storage = ES_PG_STORAGE (es_stream_factory_get_storage (factory));
  g_assert_true (ES_IS_PG_STORAGE (storage));
  g_assert_cmpstr (es_pg_storage_get_conninfo (storage), ==, f->conninfo);
  g_assert_cmpstr (es_pg_storage_get_schema (storage), ==, f->schema);
  g_assert_cmpuint (es_pg_storage_get_pool_size (storage), ==, 3);
  g_assert_cmpstr (_es_pg_storage_get_conninfo (storage), ==, f->conninfo);
  g_clear_pointer (&conninfo, g_free);
  g_clear_pointer (&schema, g_free);
  g_object_get (storage, "conninfo", &conninfo, "schema", &schema, "pool-size", &pool_size,
                NULL);
  g_assert_cmpstr (conninfo, ==, f->conninfo);
  g_assert_cmpstr (schema, ==, f->schema);
  g_assert_cmpuint (pool_size, ==, 3);

  notifier = es_stream_factory_get_notifier (factory);
  g_assert_true (ES_IS_PG_NOTIFIER (notifier));
  g_object_get (notifier, "storage", &storage_prop, NULL);
  g_assert_true (storage_prop == storage);
  g_assert_cmpuint (_es_pg_notifier_get_n_connects (ES_PG_NOTIFIER (notifier)), >=, 1);
  es_test_factory_close_and_free (factory);

  /* The defaults, through es_pg_stream_factory_new: only on our own
   * throwaway server, where the "es_glib" schema is ours to drop. */
  if (g_getenv ("ES_TEST_PG_DIR") != NULL)
    {
      EsPgStreamFactory *defaults = es_pg_stream_factory_new (f->conninfo, NULL, &error);

      g_assert_no_error (error);
      g_ptr_array_add (f->schemas, g_strdup (ES_PG_DEFAULT_SCHEMA));
      g_assert_cmpstr (es_pg_stream_factory_get_schema (defaults), ==, "es_glib");
      g_object_get (defaults, "pool-size", &pool_size, NULL);
      g_assert_cmpuint (pool_size, ==, 4);
      g_assert_true (schema_exists (f, "es_glib"));
      es_test_factory_close_and_free (ES_STREAM_FACTORY (defaults));
    }
}

static void
on_watch_event (EsWatch       *watch,
                EsStoredEvent *event,
                gpointer       user_data)
{
  g_ptr_array_add (user_data, g_object_ref (event));
}

static void
test_hand_wired (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsPgStorage) storage = NULL;
  g_autoptr(EsPgNotifier) notifier = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func (g_object_unref);
  EsStreamFactory *writer;
  EsStreamFactory *factory;
  gint64 deadline;

  g_test_summary ("es_pg_storage_new and es_pg_notifier_new wired by es_stream_factory_new "
                  "work like EsPgStreamFactory, and a watch there sees another factory's "
                  "writes through LISTEN/NOTIFY");

  storage = es_pg_storage_new (f->conninfo, f->schema, 2, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (es_pg_storage_get_schema (storage), ==, f->schema);
  g_assert_cmpuint (es_pg_storage_get_pool_size (storage), ==, 2);
  notifier = es_pg_notifier_new (storage);
  g_assert_true (ES_IS_NOTIFIER (notifier));
  g_assert_true (es_notifier_start (ES_NOTIFIER (notifier), NULL, &error));
  g_assert_no_error (error);
  factory = es_stream_factory_new (ES_STORAGE_HANDLE (storage), ES_NOTIFIER (notifier));

  stream = es_test_open_stream (factory, "wired");
  write_one (stream, "Local", "1", ES_VERSION_NO_STREAM);
  watch = es_stream_watch (stream, 0);
  g_signal_connect (watch, "event", G_CALLBACK (on_watch_event), seen);

  /* Another factory: only the NOTIFY can wake this one's notifier. */
  writer = factory_new (f, 1);
  {
    g_autoptr(EsStream) remote = es_test_open_stream (writer, "wired");

    deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
    while (seen->len < 1 && g_get_monotonic_time () < deadline)
      g_main_context_iteration (NULL, TRUE);
    g_assert_cmpuint (seen->len, ==, 1);
    write_one (remote, "Remote", "2", 1);
  }
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (seen->len < 2 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (seen->len, ==, 2);
  g_assert_cmpstr (es_stored_event_get_event_type (g_ptr_array_index (seen, 1)), ==, "Remote");

  es_watch_stop (watch);
  g_clear_object (&watch);
  g_clear_object (&stream);
  es_test_factory_close_and_free (writer);
  es_test_factory_close_and_free (factory);
  /* Closing the factory closed the storage. */
  {
    gint64 version = 0;

    g_assert_false (es_storage_handle_get_version (ES_STORAGE_HANDLE (storage), "wired",
                                                   &version, NULL, &error));
    g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  }
}

/* Begins a transaction on the admin connection that locks every table of
 * the fixture's schema; COMMIT releases them. */
static void
lock_schema_tables (Fixture *f)
{
  const char *params[] = { f->schema };
  PGresult *tables;

  admin_exec (f, "BEGIN");
  tables = admin_query (f, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                           "WHERE schemaname = $1", 1, params);
  g_assert_cmpint (PQntuples (tables), >, 0);
  for (int i = 0; i < PQntuples (tables); i++)
    {
      g_autofree char *sql = g_strdup_printf ("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE",
                                              PQgetvalue (tables, i, 0));

      admin_exec (f, sql);
    }
  PQclear (tables);
}

static void
cancel_once (gpointer user_data)
{
  g_cancellable_cancel (user_data);
}

/* Iterates the main context until *@result is set or 5 s have passed;
 * returns how long it took. */
static gint64
wait_result_bounded (GAsyncResult **result)
{
  gint64 start = g_get_monotonic_time ();

  while (*result == NULL && g_get_monotonic_time () - start < 5 * G_USEC_PER_SEC)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  return g_get_monotonic_time () - start;
}

static void
test_cancel_blocked (Fixture       *f,
                     gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  g_autoptr(EsStream) stream = es_test_open_stream (factory, "blocked");
  g_autoptr(EsCandidateEvent) event = candidate_text ("Blocked", "", NULL, NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) read_cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GError) error = NULL;
  gint64 elapsed;

  g_test_summary ("A write and a read waiting on a lock held by another session are "
                  "cancelled promptly through their GCancellable: G_IO_ERROR_CANCELLED, "
                  "nothing written, and the pooled connection works afterwards");

  write_one (stream, "Before", "", ES_VERSION_NO_STREAM);
  lock_schema_tables (f);

  es_stream_write_async (stream, &event, 1, 1, cancellable, es_test_store_result_cb, &result);
  g_timeout_add_once (200, cancel_once, cancellable);
  elapsed = wait_result_bounded (&result);
  g_test_message ("The blocked write returned %.0f ms after it started (cancelled at 200 ms)",
                  elapsed / 1000.0);
  g_assert_nonnull (result);
  es_stream_write_finish (stream, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_get_metrics_async (stream, read_cancellable, es_test_store_result_cb, &result);
  g_timeout_add_once (200, cancel_once, read_cancellable);
  elapsed = wait_result_bounded (&result);
  g_test_message ("The blocked read returned after %.0f ms", elapsed / 1000.0);
  g_assert_nonnull (result);
  metrics = es_stream_get_metrics_finish (stream, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (metrics);
  g_clear_error (&error);
  g_clear_object (&result);

  admin_exec (f, "COMMIT");
  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_metrics_get_current_version (metrics), ==, 1);
  g_assert_cmpint (write_one (stream, "After", "", 1), ==, 2);

  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

static gboolean
count_tick (gpointer user_data)
{
  guint *ticks = user_data;

  (*ticks)++;
  return G_SOURCE_CONTINUE;
}

static void
test_new_async (Fixture       *f,
                gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GSource) tick = NULL;
  GObject *object;
  guint ticks = 0;
  gint64 deadline;

  g_test_summary ("Asynchronous construction runs libpq off the caller's main context: "
                  "while the schema's tables are locked by another session, the main loop "
                  "keeps running; the factory arrives once they are unlocked");

  stream = es_test_open_stream (factory, "async");
  write_one (stream, "A", "", ES_VERSION_NO_STREAM);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  lock_schema_tables (f);
  tick = g_timeout_source_new (5);
  g_source_set_callback (tick, count_tick, &ticks, NULL);
  g_source_attach (tick, NULL);

  g_async_initable_new_async (ES_TYPE_PG_STREAM_FACTORY, G_PRIORITY_DEFAULT, NULL,
                              es_test_store_result_cb, &result,
                              "conninfo", f->conninfo, "schema", f->schema, NULL);
  deadline = g_get_monotonic_time () + G_USEC_PER_SEC / 2;
  while (g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_test_message ("%u ticks of the main loop while the construction waited", ticks);
  g_assert_null (result);
  g_assert_cmpuint (ticks, >=, 10);

  admin_exec (f, "COMMIT");
  es_test_wait_result (&result);
  g_source_destroy (tick);
  object = async_initable_finish (result, &error);
  g_assert_no_error (error);
  /* The task holds its source object, the factory. */
  g_clear_object (&result);
  factory = ES_STREAM_FACTORY (object);
  g_assert_true (ES_IS_PG_STREAM_FACTORY (factory));
  stream = es_test_open_stream (factory, "async");
  g_assert_cmpint (es_stream_get_version (stream), ==, 1);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);

  /* es_pg_stream_factory_new_async itself (default schema): only on our
   * own throwaway server. */
  if (g_getenv ("ES_TEST_PG_DIR") != NULL)
    {
      EsPgStreamFactory *defaults;

      g_clear_object (&result);
      g_ptr_array_add (f->schemas, g_strdup (ES_PG_DEFAULT_SCHEMA));
      es_pg_stream_factory_new_async (f->conninfo, NULL, es_test_store_result_cb, &result);
      es_test_wait_result (&result);
      defaults = es_pg_stream_factory_new_finish (result, &error);
      g_assert_no_error (error);
      g_clear_object (&result);
      g_assert_cmpstr (es_pg_stream_factory_get_schema (defaults), ==, ES_PG_DEFAULT_SCHEMA);
      es_test_factory_close_and_free (ES_STREAM_FACTORY (defaults));
    }
}

/* ------------------------------------------------------------------ */
/* Group commit                                                        */
/* ------------------------------------------------------------------ */

#define GROUP_WRITES 64

typedef struct
{
  EsStream *stream;    /* (unowned) */
  gint64    expected;
  char     *text;      /* (owned) the event's data, unique */
  char     *key;       /* (owned) (nullable) its idempotency key */
  gint64    version;   /* the result on success */
  GError   *error;     /* (owned) (nullable) */
  gboolean  done;
  guint    *pending;
} GroupWrite;

static void
group_write_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  GroupWrite *w = user_data;

  g_assert_false (w->done);
  w->version = es_stream_write_finish (ES_STREAM (source), result, &w->error);
  w->done = TRUE;
  (*w->pending)--;
}

static void
test_group_commit (Fixture       *f,
                   gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 4);
  EsStream *streams[2];
  const char * const stream_ids[2] = { "group-a", "group-b" };
  GroupWrite writes[GROUP_WRITES];
  guint pending = GROUP_WRITES;
  gint64 deadline;

  g_test_summary ("64 concurrent es_stream_write_async calls on 2 streams, with a mix of "
                  "expected versions and idempotency keys, each get their own result, and "
                  "the results match what is stored: versions 1..N without a gap, each "
                  "acknowledged event once, the writes refused with "
                  "ES_ERROR_WRONG_EXPECTED_VERSION absent, each key stored once");

  streams[0] = es_test_open_stream (factory, stream_ids[0]);
  streams[1] = es_test_open_stream (factory, stream_ids[1]);

  for (guint i = 0; i < GROUP_WRITES; i++)
    {
      GroupWrite *w = &writes[i];
      g_autoptr(EsCandidateEvent) event = NULL;

      w->stream = streams[i % 2];
      /* Writes 0..7 each expect a fresh stream (4 per stream: exactly one
       * wins); 8..15 expect a version the streams never reach; 16..23
       * expect version 5, which they may or may not be at; the rest accept
       * any version, and 24..31 carry idempotency keys, each key used by
       * two writes of one stream (one stores it, the other is skipped). */
      if (i < 8)
        w->expected = ES_VERSION_NO_STREAM;
      else if (i < 16)
        w->expected = 1000;
      else if (i < 24)
        w->expected = 5;
      else
        w->expected = ES_VERSION_ANY;
      w->text = g_strdup_printf ("write-%u", i);
      w->key = i >= 24 && i < 32 ? g_strdup_printf ("key-%u", i / 4) : NULL;
      w->version = -1;
      w->error = NULL;
      w->done = FALSE;
      w->pending = &pending;

      event = candidate_text ("Grouped", w->text, w->key, NULL);
      es_stream_write_async (w->stream, &event, 1, w->expected, NULL, group_write_cb, w);
    }

  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (pending > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (pending, ==, 0);

  for (guint s = 0; s < 2; s++)
    {
      g_autoptr(GPtrArray) events = es_test_read_all_ok (streams[s], 0, NULL);
      g_autoptr(GHashTable) stored = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                            NULL);
      g_autoptr(GHashTable) stored_keys = g_hash_table_new (g_str_hash, g_str_equal);
      guint n_fresh_winners = 0, n_ok = 0, n_skipped = 0;

      assert_versions_without_gaps (events, stream_ids[s]);
      for (guint e = 0; e < events->len; e++)
        {
          EsStoredEvent *event = g_ptr_array_index (events, e);
          char *text = event_text (event);

          const char *key = es_stored_event_get_idempotency_key (event);

          /* Each event stored once, each key once. */
          g_assert_true (g_hash_table_insert (stored, text,
                                              GINT_TO_POINTER (es_stored_event_get_version (event))));
          if (key != NULL)
            g_assert_true (g_hash_table_insert (stored_keys, (gpointer) key,
                                                GINT_TO_POINTER (es_stored_event_get_version (event))));
        }

      for (guint i = s; i < GROUP_WRITES; i += 2)
        {
          GroupWrite *w = &writes[i];
          gpointer version;
          gboolean found = g_hash_table_lookup_extended (stored, w->text, NULL, &version);

          g_assert_true (w->done);
          if (w->error == NULL && !found)
            {
              /* Skipped for its key, which the other write of the key
               * stored before it: told the version of the stream then. */
              gpointer key_version = NULL;

              g_assert_nonnull (w->key);
              g_assert_true (g_hash_table_lookup_extended (stored_keys, w->key, NULL,
                                                           &key_version));
              g_assert_cmpint (w->version, >=, GPOINTER_TO_INT (key_version));
              g_assert_cmpint (w->version, <=, events->len);
              n_skipped++;
            }
          else if (w->error == NULL)
            {
              /* Acknowledged: stored once, at the version it was told. */
              n_ok++;
              g_assert_true (found);
              g_assert_cmpint (GPOINTER_TO_INT (version), ==, w->version);
              if (w->expected >= 0)
                g_assert_cmpint (w->version, ==, w->expected + 1);
              if (w->expected == ES_VERSION_NO_STREAM)
                n_fresh_winners++;
              g_assert_cmpint (w->expected, !=, 1000);
            }
          else
            {
              /* Refused: only for a wrong expected version, and absent. */
              g_assert_error (w->error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
              g_assert_cmpint (w->expected, !=, ES_VERSION_ANY);
              g_assert_false (found);
            }
        }

      g_assert_cmpuint (n_fresh_winners, ==, 1);
      g_assert_cmpuint (n_ok, ==, events->len);
      g_assert_cmpuint (n_skipped, ==, 2);
      g_assert_cmpuint (g_hash_table_size (stored_keys), ==, 2);
      g_assert_cmpuint (events->len, >=, 1 + 20 - 2);
      g_test_message ("Stream '%s': %u writes acknowledged", stream_ids[s], n_ok);
    }

  for (guint i = 0; i < GROUP_WRITES; i++)
    {
      g_clear_error (&writes[i].error);
      g_free (writes[i].text);
      g_free (writes[i].key);
    }
  g_clear_object (&streams[0]);
  g_clear_object (&streams[1]);
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* Pool and close                                                      */
/* ------------------------------------------------------------------ */

#define POOL_THREADS 8

typedef struct
{
  EsStreamFactory *factory;
  guint            index;
  gint            *running;  /* (atomic) */
  GError          *error;    /* (owned) (nullable) */
} PoolThread;

static gpointer
pool_thread (gpointer user_data)
{
  PoolThread *t = user_data;
  g_autofree char *stream_id = g_strdup_printf ("pool-%u", t->index % 3);
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (t->factory, stream_id, NULL,
                                                              &t->error);
  g_autoptr(EsStream) all = NULL;

  if (stream != NULL)
    all = es_stream_factory_open_stream (t->factory, ES_ALL_STREAM, NULL, &t->error);

  for (guint round = 0; round < 30 && t->error == NULL; round++)
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("Load", "", NULL, NULL);
      g_autoptr(EsEventEnumerator) enumerator = NULL;
      g_autoptr(GPtrArray) batch = NULL;

      if (t->index % 2 == 0)
        {
          es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &t->error);
          continue;
        }
      /* Two enumerators at once. */
      enumerator = es_stream_read (all, 0, NULL, NULL, &t->error);
      if (enumerator != NULL)
        batch = es_event_enumerator_next_batch (enumerator, 10, NULL, &t->error);
      g_clear_pointer (&batch, g_ptr_array_unref);
      if (t->error == NULL)
        g_ptr_array_unref (es_test_read_all_ok (stream, 0, NULL));
    }
  g_atomic_int_dec_and_test (t->running);
  return NULL;
}

static void
test_pool_size (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *name = g_strdup_printf ("es_pool_%d", (int) getpid ());
  g_autofree char *conninfo = conninfo_with_application (f->conninfo, name);
  g_autoptr(GError) error = NULL;
  PoolThread threads[POOL_THREADS];
  GThread *handles[POOL_THREADS];
  EsStreamFactory *factory;
  gint running = POOL_THREADS;
  gint64 most = 0, deadline;

  g_test_summary ("8 threads reading and writing at once through pool-size 2 finish "
                  "without deadlock and never hold more than pool-size connections (plus "
                  "the notifier's)");

  factory = pg_factory_new (conninfo, f->schema, 2, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < POOL_THREADS; i++)
    {
      threads[i] = (PoolThread) { factory, i, &running, NULL };
      handles[i] = g_thread_new ("pool", pool_thread, &threads[i]);
    }
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (g_atomic_int_get (&running) > 0 && g_get_monotonic_time () < deadline)
    {
      most = MAX (most, count_connections (f, name));
      g_usleep (2000);
    }
  if (g_atomic_int_get (&running) > 0)
    g_error ("Deadlock: %d of %u threads still running after 60 s",
             g_atomic_int_get (&running), POOL_THREADS);
  for (guint i = 0; i < POOL_THREADS; i++)
    {
      g_thread_join (handles[i]);
      g_assert_no_error (threads[i].error);
    }
  g_test_message ("At most %" G_GINT64_FORMAT " connections with pool-size 2", most);
  g_assert_cmpint (most, >=, 1);
  g_assert_cmpint (most, <=, 2 + 1);
  es_test_factory_close_and_free (factory);
}

static void
test_close (Fixture       *f,
            gconstpointer  data)
{
  g_autofree char *name = g_strdup_printf ("es_close_%d", (int) getpid ());
  g_autofree char *conninfo = conninfo_with_application (f->conninfo, name);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsEventEnumerator) late = NULL;
  g_autoptr(EsStoredEvent) event = NULL;
  g_autoptr(GPtrArray) batch = NULL;
  g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
  g_autoptr(EsCandidateEvent) candidate = candidate_text ("After", "", NULL, NULL);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  EsStreamFactory *factory;
  EsStream *reopened;
  gint64 open_connections;

  g_test_summary ("After close every operation fails with ES_ERROR_CLOSED, closing twice "
                  "is harmless, and no connection of the factory is left on the server; "
                  "dropping the last reference releases them too");

  factory = pg_factory_new (conninfo, f->schema, 3, &error);
  g_assert_no_error (error);
  stream = es_test_open_stream (factory, "closing");
  all = es_test_open_stream (factory, ES_ALL_STREAM);
  /* More than a page, so the enumerator below must fetch again. */
  for (guint i = 0; i < 1100; i++)
    g_ptr_array_add (events, candidate_text ("Before", "", NULL, NULL));
  es_stream_write (stream, (EsCandidateEvent * const *) events->pdata, events->len,
                   ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
  watch = es_stream_watch (all, 0);
  enumerator = es_stream_read (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  batch = es_event_enumerator_next_batch (enumerator, 2, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (batch->len, ==, 2);

  open_connections = count_connections (f, name);
  g_test_message ("%" G_GINT64_FORMAT " connections open before close", open_connections);
  if (open_connections == 0)
    g_error ("No connection has application_name '%s': the conninfo's application_name "
             "was not honoured", name);
  g_assert_cmpint (open_connections, <=, 3 + 1);

  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_is_closed (factory));

  es_stream_write (stream, &candidate, 1, ES_VERSION_ANY, NULL, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  es_stream_write_async (stream, &candidate, 1, ES_VERSION_ANY, NULL, es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  es_stream_write_finish (stream, result, &error);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);
  g_clear_object (&result);

  late = es_stream_read (stream, 0, NULL, NULL, &error);
  if (late != NULL)
    event = es_event_enumerator_next (late, NULL, &error);
  g_assert_null (event);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  /* The enumerator opened before: the buffered page, then CLOSED. */
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    g_clear_object (&event);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  metrics = es_stream_get_metrics (stream, NULL, &error);
  g_assert_null (metrics);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  g_assert_false (es_stream_snapshot (stream, state, 1, NULL, NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  snapshot = es_stream_load_snapshot (stream, NULL, NULL, &error);
  g_assert_null (snapshot);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  reopened = es_stream_factory_open_stream (factory, "closing", NULL, &error);
  g_assert_null (reopened);
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  g_assert_false (es_watch_get_active (watch));

  g_assert_cmpint (wait_connections_gone (f, name), ==, 0);

  g_clear_object (&watch);
  g_clear_object (&stream);
  g_clear_object (&all);
  g_clear_object (&enumerator);
  g_clear_object (&late);
  g_object_unref (factory);

  /* Dropping the last reference, without close. */
  factory = pg_factory_new (conninfo, f->schema, 2, &error);
  g_assert_no_error (error);
  stream = es_test_open_stream (factory, "dropped");
  write_one (stream, "A", "", ES_VERSION_ANY);
  g_assert_cmpint (count_connections (f, name), >, 0);
  g_clear_object (&stream);
  g_object_unref (factory);
  g_assert_cmpint (wait_connections_gone (f, name), ==, 0);
}

/* ------------------------------------------------------------------ */

static void
test_filter_parameter_limit (Fixture       *f,
                             gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsEventFilter) deep = es_event_filter_new ();
  g_autoptr(EsEventFilter) shallow = es_event_filter_new ();
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStoredEvent) event = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Metadata keys are literals in the SQL (so that a declared path's index "
                  "matches), not parameters: 4,096 clauses on a path of 16 keys stay within "
                  "PostgreSQL's 65,535 parameters and select the right events, as 4,096 "
                  "clauses on a short path do");

  stream = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, &error);
  g_assert_no_error (error);
  append_with_metadata (factory, "deep-1",
                        "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":"
                        "{\"j\":{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":1}}}}}}}}}}}}}}}}");
  append_with_metadata (factory, "deep-2", "{\"a\":2}");

  /* 4,096 clauses on a path of 16 keys: 17 parameters each before 0.2. */
  for (guint i = 0; i < 4096; i++)
    es_event_filter_add_equals (deep, "metadata.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
                                g_variant_new_int32 (1));
  g_assert_true (es_event_filter_validate (deep, NULL));
  enumerator = es_stream_read (stream, 0, deep, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event);
  g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, "deep-1");
  g_clear_object (&event);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (event);
  g_clear_object (&enumerator);

  for (guint i = 0; i < 4096; i++)
    es_event_filter_add_equals (shallow, "metadata.a", g_variant_new_int32 (2));
  enumerator = es_stream_read (stream, 0, shallow, NULL, &error);
  g_assert_no_error (error);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event);
  g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, "deep-2");
  g_clear_object (&event);
  event = es_event_enumerator_next (enumerator, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (event);

  g_clear_object (&enumerator);
  g_clear_object (&stream);
  es_test_factory_close_and_free (factory);
}

/* Metadata indexes (issue 21): built with CREATE INDEX CONCURRENTLY. */

/* Waits until the server shows a CREATE INDEX CONCURRENTLY waiting for
 * the snapshot the admin connection holds. */
static void
wait_for_blocked_index_build (Fixture *f)
{
  /* (pg_stat_activity may still show the connection's previous query.) */
  while (admin_query_int (f, "SELECT count(*) FROM pg_stat_activity"
                             " WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
                             " AND wait_event = 'virtualxid'", NULL) == 0)
    g_usleep (10 * 1000);
}

static char *
tenant_index_name (void)
{
  g_autofree char *digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, "tenant", -1);

  return g_strdup_printf ("es_meta_%.32s", digest);
}

static void
write_tenants (EsStreamFactory *factory,
               const char      *stream_id,
               guint            n)
{
  g_autoptr(EsStream) stream = es_test_open_stream (factory, stream_id);
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *metadata = g_strdup_printf ("{\"tenant\":\"t%u\"}", i % 10);

      g_ptr_array_add (batch, candidate_text ("Tenanted", "x", NULL, metadata));
    }
  es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                   ES_VERSION_ANY, NULL, &error);
  g_assert_no_error (error);
}

static guint
count_tenant (EsStreamFactory *factory,
              const char      *tenant)
{
  g_autoptr(EsStream) all = es_test_open_stream (factory, ES_ALL_STREAM);
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GPtrArray) events = NULL;

  es_event_filter_add_equals (filter, "metadata.tenant", g_variant_new_string (tenant));
  events = es_test_read_all_ok (all, 0, filter);
  return events->len;
}

static void
test_metadata_index_concurrently (Fixture       *f,
                                  gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 3);
  g_autofree char *name = tenant_index_name ();
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *hold = NULL;
  g_autofree char *explain = NULL;
  g_autofree char *valid = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) paths = NULL;

  g_test_summary ("Declaring a metadata path builds its index with CREATE INDEX "
                  "CONCURRENTLY: while the build waits for an old snapshot, appends go "
                  "through; the finished index holds them, is valid, is listed and serves "
                  "the filter's query");

  write_tenants (factory, "tenants-1", 2000);
  g_assert_cmpuint (count_tenant (factory, "t3"), ==, 200);

  /* An old snapshot the build must wait for. */
  hold = g_strdup_printf ("BEGIN ISOLATION LEVEL REPEATABLE READ;"
                          " SELECT count(*) FROM %s.events", qschema);
  admin_exec (f, hold);

  es_stream_factory_add_metadata_index_async (factory, "tenant", NULL,
                                              es_test_store_result_cb, &result);
  wait_for_blocked_index_build (f);

  /* A writer is not blocked by the build. */
  write_tenants (factory, "tenants-2", 100);
  g_assert_null (result);
  admin_exec (f, "COMMIT");

  es_test_wait_result (&result);
  g_assert_true (es_stream_factory_add_metadata_index_finish (factory, result, &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  valid = admin_query_text (f, "SELECT i.indisvalid::text FROM pg_index i"
                               " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
                            name);
  g_assert_cmpstr (valid, ==, "true");
  paths = es_stream_factory_list_metadata_indexes (factory, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (paths), ==, 1);
  g_assert_cmpstr (paths[0], ==, "tenant");

  /* The events written during the build are found. */
  g_assert_cmpuint (count_tenant (factory, "t3"), ==, 210);

  /* The filter's expression is the index's: the planner uses it. */
  {
    g_autofree char *sql = g_strdup_printf (
      "EXPLAIN SELECT sequence_id FROM %s.events WHERE sequence_id > 0"
      " AND ((%s.metadata_jsonb(metadata) -> E'tenant'::text) = '\"t3\"'::jsonb)"
      " ORDER BY sequence_id LIMIT 100", qschema, qschema);
    PGresult *plan = admin_query (f, sql, 0, NULL);
    GString *text = g_string_new (NULL);

    for (int row = 0; row < PQntuples (plan); row++)
      g_string_append_printf (text, "%s\n", PQgetvalue (plan, row, 0));
    PQclear (plan);
    explain = g_string_free (text, FALSE);
  }
  g_test_message ("%s", explain);
  g_assert_nonnull (strstr (explain, name));

  g_assert_true (es_stream_factory_remove_metadata_index (factory, "tenant", NULL, &error));
  g_assert_no_error (error);
  g_assert_null (admin_query_text (f, "SELECT relname FROM pg_class WHERE relname = $1", name));
  g_assert_cmpuint (count_tenant (factory, "t3"), ==, 210);

  es_test_factory_close_and_free (factory);
}

static void
test_metadata_index_invalid (Fixture       *f,
                             gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 3);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autofree char *name = tenant_index_name ();
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *hold = NULL;
  g_autofree char *valid = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) paths = NULL;

  g_test_summary ("A concurrent build that is cancelled leaves an invalid index, which is "
                  "not listed; declaring the path again drops it and builds a valid one");

  write_tenants (factory, "tenants-1", 500);
  hold = g_strdup_printf ("BEGIN ISOLATION LEVEL REPEATABLE READ;"
                          " SELECT count(*) FROM %s.events", qschema);
  admin_exec (f, hold);

  es_stream_factory_add_metadata_index_async (factory, "tenant", cancellable,
                                              es_test_store_result_cb, &result);
  wait_for_blocked_index_build (f);
  g_cancellable_cancel (cancellable);
  es_test_wait_result (&result);
  g_assert_false (es_stream_factory_add_metadata_index_finish (factory, result, &error));
  g_assert_nonnull (error);
  g_test_message ("Cancelled with: %s", error->message);
  g_clear_error (&error);
  g_clear_object (&result);
  admin_exec (f, "COMMIT");

  valid = admin_query_text (f, "SELECT i.indisvalid::text FROM pg_index i"
                               " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
                            name);
  g_assert_cmpstr (valid, ==, "false");
  paths = es_stream_factory_list_metadata_indexes (factory, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (paths), ==, 0);
  g_clear_pointer (&paths, g_strfreev);
  g_assert_false (es_stream_factory_remove_metadata_index (factory, "tenant", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_pointer (&valid, g_free);

  g_assert_true (es_stream_factory_add_metadata_index (factory, "tenant", NULL, &error));
  g_assert_no_error (error);
  valid = admin_query_text (f, "SELECT i.indisvalid::text FROM pg_index i"
                               " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
                            name);
  g_assert_cmpstr (valid, ==, "true");
  paths = es_stream_factory_list_metadata_indexes (factory, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (paths), ==, 1);
  g_assert_cmpuint (count_tenant (factory, "t3"), ==, 50);

  es_test_factory_close_and_free (factory);
}

/* Completion batching (es-glib/backend/es-write-queue.c). */
#define BATCH_WRITES 64

typedef struct
{
  gint64  version;
  guint   dispatch;  /* the completion dispatch counter when it completed */
  guint  *pending;
} BatchWrite;

static void
batch_write_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  BatchWrite *w = user_data;
  g_autoptr(GError) error = NULL;

  w->version = es_stream_write_finish (ES_STREAM (source), result, &error);
  g_assert_no_error (error);
  w->dispatch = _es_write_queue_get_n_completion_dispatches ();
  (*w->pending)--;
}


/* The writer thread sleeps when idle (issue 23): the queue is the one
 * SQLite's writer uses (tests/test-watch.c has its synchronous side). */
static void
test_writer_sleeps (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GArray) before = es_test_threads_named ("es-pg-writer");
  EsStreamFactory *factory = factory_new (f, 2);
  g_autoptr(GPtrArray) events = NULL;
  BatchWrite writes[8];
  guint pending = G_N_ELEMENTS (writes);
  EsStream *stream;
  guint64 tid, switches;
  char state = '?';

  g_test_summary ("After asynchronous writes, the writer thread of a PostgreSQL factory "
                  "sleeps: no wake-up at all over a second of idleness");

  tid = es_test_new_thread_named ("es-pg-writer", before);
  stream = es_test_open_stream (factory, "idle");
  for (guint i = 0; i < G_N_ELEMENTS (writes); i++)
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("Idle", "x", NULL, NULL);

      writes[i].version = -1;
      writes[i].pending = &pending;
      es_stream_write_async (stream, &event, 1, ES_VERSION_ANY, NULL, batch_write_cb, &writes[i]);
    }
  while (pending > 0)
    g_main_context_iteration (NULL, TRUE);
  for (guint i = 0; i < G_N_ELEMENTS (writes); i++)
    g_assert_cmpint (writes[i].version, ==, i + 1);

  /* A count, not a time: a thread that polls, lingers or spins while
   * idle is counted. */
  switches = es_test_wait_thread_asleep (tid);
  g_usleep (G_USEC_PER_SEC);
  g_assert_cmpuint (es_test_thread_switches (tid, &state), ==, switches);
  g_assert_cmpint (state, ==, 'S');

  events = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (events->len, ==, G_N_ELEMENTS (writes));

  g_object_unref (stream);
  es_test_factory_close_and_free (factory);
}

static void
test_completion_batching (Fixture       *f,
                          gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 4);
  EsStream *stream;
  BatchWrite writes[BATCH_WRITES];
  guint pending = BATCH_WRITES;
  guint before, n_dispatches, n_distinct = 0;
  gint64 deadline;
  PGconn *blocker;
  PGresult *result;
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *lock = NULL;

  g_test_summary ("Asynchronous appends in flight from one main context complete in one "
                  "idle source per group commit, in submission order, as on SQLite: "
                  "not one source per append");

  stream = es_test_open_stream (factory, "batching");
  before = _es_write_queue_get_n_completion_dispatches ();

  /* The events table is locked while the appends are submitted: the
   * writer's first group waits on the lock, and every append submitted
   * meanwhile queues behind it, so however slow this machine is, the
   * groups are few (two, unless the writer is between groups when the
   * lock goes), and their completions reach the context only after it. */
  blocker = admin_connect (f->conninfo);
  lock = g_strdup_printf ("BEGIN; LOCK TABLE %s.events IN EXCLUSIVE MODE", qschema);
  result = PQexec (blocker, lock);
  g_assert_cmpint (PQresultStatus (result), ==, PGRES_COMMAND_OK);
  PQclear (result);

  for (guint i = 0; i < BATCH_WRITES; i++)
    {
      g_autofree char *text = g_strdup_printf ("batch-%u", i);
      g_autoptr(EsCandidateEvent) event = candidate_text ("Batched", text, NULL, NULL);

      writes[i].version = -1;
      writes[i].dispatch = 0;
      writes[i].pending = &pending;
      es_stream_write_async (stream, &event, 1, ES_VERSION_ANY, NULL, batch_write_cb, &writes[i]);
    }

  result = PQexec (blocker, "COMMIT");
  g_assert_cmpint (PQresultStatus (result), ==, PGRES_COMMAND_OK);
  PQclear (result);
  PQfinish (blocker);

  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (pending > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (pending, ==, 0);

  n_dispatches = _es_write_queue_get_n_completion_dispatches () - before;
  for (guint i = 0; i < BATCH_WRITES; i++)
    {
      /* In submission order: the versions ascend, and so do the sources. */
      g_assert_cmpint (writes[i].version, ==, i + 1);
      g_assert_cmpuint (writes[i].dispatch, >, before);
      if (i == 0 || writes[i].dispatch != writes[i - 1].dispatch)
        n_distinct++;
      if (i > 0)
        g_assert_cmpuint (writes[i].dispatch, >=, writes[i - 1].dispatch);
    }

  /* Each source completed a whole group: a few sources for 64 appends
   * (one per append, the old PostgreSQL way, would be 64). */
  g_assert_cmpuint (n_dispatches, ==, n_distinct);
  g_assert_cmpuint (n_dispatches, >=, 1);
  g_assert_cmpuint (n_dispatches, <=, 4);

  g_object_unref (stream);
  es_test_factory_close_and_free (factory);
}

/* ------------------------------------------------------------------ */
/* The stream life cycle (issue 16)                                    */
/* ------------------------------------------------------------------ */

/* The schema of es-glib 0.1 (schema version 1), as its es-pg-schema.c
 * created it: a database written by 0.1, which the migration to version 2
 * must carry over. */
static const char v1_schema_sql[] =
  "CREATE TABLE {S}.es_glib_version ("
  "  version integer NOT NULL"
  ");"
  "INSERT INTO {S}.es_glib_version (version) VALUES (0);"
  "CREATE TABLE {S}.events ("
  "  sequence_id     bigint      PRIMARY KEY,"
  "  stream_id       text        NOT NULL,"
  "  version         bigint      NOT NULL,"
  "  idempotency_key text,"
  "  event_type      text        NOT NULL,"
  "  recorded_at     timestamptz NOT NULL,"
  "  data            bytea       NOT NULL,"
  "  metadata        text,"
  "  UNIQUE (stream_id, version)"
  ");"
  "CREATE UNIQUE INDEX events_idempotency_key ON {S}.events (stream_id, idempotency_key)"
  "  WHERE idempotency_key IS NOT NULL;"
  "CREATE INDEX events_event_type ON {S}.events (event_type, sequence_id);"
  "CREATE TABLE {S}.snapshots ("
  "  stream_id       text        NOT NULL,"
  "  projection_name text        NOT NULL,"
  "  version         bigint      NOT NULL,"
  "  state           bytea       NOT NULL,"
  "  recorded_at     timestamptz NOT NULL,"
  "  PRIMARY KEY (stream_id, projection_name)"
  ");"
  "CREATE TABLE {S}.global_position ("
  "  id               boolean PRIMARY KEY DEFAULT TRUE CHECK (id),"
  "  last_sequence_id bigint  NOT NULL"
  ");"
  "INSERT INTO {S}.global_position (last_sequence_id) VALUES (0);"
  "CREATE FUNCTION {S}.metadata_jsonb (metadata text) RETURNS jsonb"
  "  LANGUAGE plpgsql IMMUTABLE STRICT AS $$"
  "BEGIN"
  "  RETURN metadata::jsonb;"
  "EXCEPTION WHEN data_exception OR program_limit_exceeded THEN"
  "  RETURN NULL;"
  "END $$;";


static EsStorageHandle *
factory_storage (EsStreamFactory *factory)
{
  return es_stream_factory_get_storage (factory);
}

static EsStreamInfo *
info_ok (EsStorageHandle *storage,
         const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  EsStreamInfo *info = es_storage_handle_get_stream_info (storage, stream_id, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (info);
  return info;
}

/* The ids of a listing, one page of at most @limit after @after. */
static char *
list_ids (EsStorageHandle    *storage,
          const char         *prefix,
          const char         *after,
          EsListStreamsFlags  flags,
          guint               limit)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) infos = es_storage_handle_list_streams (storage, prefix, after, flags,
                                                              limit, NULL, &error);
  GString *ids = g_string_new (NULL);

  g_assert_no_error (error);
  for (guint i = 0; i < infos->len; i++)
    g_string_append_printf (ids, "%s%s", i > 0 ? " " : "",
                            es_stream_info_get_stream_id (g_ptr_array_index (infos, i)));
  return g_string_free (ids, FALSE);
}

static GPtrArray *
read_page_ok (EsStorageHandle *storage,
              const char      *stream_id,
              gint64           position,
              EsReadFlags      flags,
              EsEventFilter   *filter,
              guint            limit)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *events = es_storage_handle_read_page_full (storage, stream_id, position, flags,
                                                        filter, limit, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (events);
  return events;
}

static gint64
dt_usec (GDateTime *dt)
{
  return g_date_time_to_unix (dt) * G_USEC_PER_SEC + g_date_time_get_microsecond (dt);
}

static gint64
usec_of (int    year,
         int    month,
         int    day,
         int    hour,
         int    minute,
         int    seconds,
         int    usec)
{
  g_autoptr(GDateTime) dt = g_date_time_new_utc (year, month, day, hour, minute, seconds);

  return dt_usec (dt) + usec;
}

static void
test_lifecycle_migration (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *create = g_strdup_printf ("CREATE SCHEMA %s", qschema);
  GString *v1 = g_string_new (v1_schema_sql);
  g_autofree char *v1_sql = NULL;
  g_autofree char *inserts = NULL;
  /* sequence id, stream, version, key, type, time, data, metadata */
  static const struct
  {
    const char *stream;
    gint64      version;
    const char *key;
    const char *type;
    const char *at;
    const char *data;
    const char *metadata;
  } rows[] = {
    { "order-1", 1, NULL, "Created", "2024-01-02 03:04:05.123456+00", "o1-a", NULL },
    { "order-2", 1, "k-1", "Created", "2024-01-02 03:04:06+00", "o2-a", "{\"user\": 7}" },
    { "order-1", 2, NULL, "Paid", "2024-01-03 00:00:00.000001+00", "o1-b", NULL },
    { "cart-\xc3\xa9", 1, "k-2", "Added", "2024-01-04 00:00:00+00", "c-a", "{\"n\": 1.5}" },
    { "order-2", 2, NULL, "Shipped", "2024-01-05 00:00:00+00", "o2-b", NULL },
    { "order-1", 3, NULL, "Shipped", "2024-01-06 12:00:00+00", "o1-c", NULL },
  };
  EsStreamFactory *factory;
  EsStorageHandle *storage;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *ids = NULL;
  gint64 version = -1;

  g_test_summary ("A schema of es-glib 0.1 (version 1) holding events in several streams "
                  "is migrated: every event is read back as it was, the streams table "
                  "describes each stream, listing works, and appends continue at the "
                  "right versions with new sequence ids");

  g_string_replace (v1, "{S}", qschema, 0);
  v1_sql = g_string_free (v1, FALSE);
  admin_exec (f, create);
  admin_exec (f, v1_sql);
  inserts = g_strdup_printf ("UPDATE %s.es_glib_version SET version = 1", qschema);
  admin_exec (f, inserts);
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    {
      g_autofree char *seq = g_strdup_printf ("%u", i + 1);
      g_autofree char *ver = g_strdup_printf ("%" G_GINT64_FORMAT, rows[i].version);
      g_autofree char *sql = g_strdup_printf (
        "INSERT INTO %s.events (sequence_id, stream_id, version, idempotency_key, event_type,"
        " recorded_at, data, metadata) VALUES ($1, $2, $3, $4, $5, $6, convert_to($7, 'UTF8'),"
        " $8)", qschema);
      const char *params[] = { seq, rows[i].stream, ver, rows[i].key, rows[i].type, rows[i].at,
                               rows[i].data, rows[i].metadata };

      PQclear (admin_query (f, sql, G_N_ELEMENTS (params), params));
    }
  g_free (inserts);
  inserts = g_strdup_printf ("UPDATE %s.global_position SET last_sequence_id = 6;"
                             "INSERT INTO %s.snapshots VALUES ('order-1', 'total', 2, 'st',"
                             " now())", qschema, qschema);
  admin_exec (f, inserts);

  factory = factory_new (f, 2);
  storage = factory_storage (factory);
  g_assert_cmpint (schema_version (f, f->schema, NULL, NULL), ==, SCHEMA_VERSION);

  /* Every event, as it was. */
  all = read_page_ok (storage, NULL, 0, ES_READ_FLAGS_NONE, NULL, 100);
  g_assert_cmpuint (all->len, ==, G_N_ELEMENTS (rows));
  for (guint i = 0; i < all->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (all, i);
      g_autofree char *text = event_text (event);
      g_autoptr(GDateTime) at = g_date_time_new_from_iso8601 (rows[i].at, NULL);

      g_assert_cmpint (es_stored_event_get_sequence_id (event), ==, i + 1);
      g_assert_cmpstr (es_stored_event_get_stream_id (event), ==, rows[i].stream);
      g_assert_cmpint (es_stored_event_get_version (event), ==, rows[i].version);
      g_assert_cmpstr (es_stored_event_get_idempotency_key (event), ==, rows[i].key);
      g_assert_cmpstr (es_stored_event_get_event_type (event), ==, rows[i].type);
      g_assert_cmpstr (text, ==, rows[i].data);
      g_assert_cmpstr (es_stored_event_get_metadata (event), ==, rows[i].metadata);
      g_assert_cmpint (dt_usec (es_stored_event_get_timestamp (event)), ==, dt_usec (at));
      g_assert_cmpint (es_stored_event_get_flags (event), ==, ES_STORED_EVENT_FLAGS_NONE);
    }

  /* The streams table, from the events. */
  {
    g_autoptr(EsStreamInfo) o1 = info_ok (storage, "order-1");
    g_autoptr(EsStreamInfo) o2 = info_ok (storage, "order-2");
    g_autoptr(EsStreamInfo) whole = info_ok (storage, NULL);

    g_assert_cmpint (es_stream_info_get_state (o1), ==, ES_STREAM_STATE_ACTIVE);
    g_assert_cmpint (es_stream_info_get_current_version (o1), ==, 3);
    g_assert_cmpint (es_stream_info_get_event_count (o1), ==, 3);
    g_assert_cmpint (es_stream_info_get_first_version (o1), ==, 1);
    g_assert_cmpint (es_stream_info_get_first_timestamp_usec (o1), ==,
                     usec_of (2024, 1, 2, 3, 4, 5, 123456));
    g_assert_cmpint (es_stream_info_get_last_timestamp_usec (o1), ==,
                     usec_of (2024, 1, 6, 12, 0, 0, 0));
    g_assert_cmpint (es_stream_info_get_current_version (o2), ==, 2);
    g_assert_cmpint (es_stream_info_get_event_count (o2), ==, 2);
    g_assert_cmpint (es_stream_info_get_current_version (whole), ==, 6);
    g_assert_cmpint (es_stream_info_get_event_count (whole), ==, 6);
    g_assert_cmpint (es_stream_info_get_first_version (whole), ==, 1);
  }
  ids = list_ids (storage, NULL, NULL, ES_LIST_STREAMS_FLAGS_NONE, 10);
  g_assert_cmpstr (ids, ==, "cart-\xc3\xa9 order-1 order-2");

  /* Appends continue: versions from the stream, sequence ids after 6. */
  {
    g_autoptr(EsCandidateEvent) event = candidate_text ("Returned", "o2-c", NULL, NULL);
    g_autoptr(EsCandidateEvent) retry = candidate_text ("Created", "o2-a", "k-1", NULL);
    g_autoptr(EsCandidateEvent) late = candidate_text ("Again", "", NULL, NULL);
    g_autoptr(GPtrArray) tail = NULL;

    ES_TEST_ASSERT_OK (es_storage_handle_append (storage, "order-2", 2, &event, 1, &version, NULL,
                                                 &error));
    g_assert_cmpint (version, ==, 3);
    /* The idempotency key written by 0.1 is still known. */
    ES_TEST_ASSERT_OK (es_storage_handle_append (storage, "order-2", ES_VERSION_ANY, &retry, 1,
                                                 &version, NULL, &error));
    g_assert_cmpint (version, ==, 3);
    g_assert_false (es_storage_handle_append (storage, "order-1", ES_VERSION_NO_STREAM, &late, 1,
                                              &version, NULL, &error));
    g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
    g_assert_cmpint (version, ==, 3);
    g_clear_error (&error);

    tail = read_page_ok (storage, NULL, 6, ES_READ_FLAGS_NONE, NULL, 100);
    g_assert_cmpuint (tail->len, ==, 1);
    g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (tail, 0)), ==, 7);
    g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (tail, 0)), ==, 3);
  }
  {
    g_autoptr(EsStreamInfo) o2 = info_ok (storage, "order-2");
    g_autoptr(EsSnapshot) snapshot = es_storage_handle_load_snapshot (storage, "order-1", "total",
                                                                     NULL, &error);

    g_assert_cmpint (es_stream_info_get_current_version (o2), ==, 3);
    g_assert_cmpint (es_stream_info_get_event_count (o2), ==, 3);
    g_assert_no_error (error);
    g_assert_nonnull (snapshot);
    g_assert_cmpint (es_snapshot_get_version (snapshot), ==, 2);
  }

  es_test_factory_close_and_free (factory);
}

/* The NOTIFY of a delete, and the marker a reader of @all gets. */
static void
test_lifecycle_notify_delete (Fixture       *f,
                              gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  EsStorageHandle *storage = factory_storage (factory);
  g_autofree char *channel = g_strdup_printf ("%s_events", f->schema);
  g_autofree char *quoted = quote_ident (f->admin, channel);
  g_autofree char *listen = g_strdup_printf ("LISTEN %s", quoted);
  g_autoptr(EsStream) doomed = es_test_open_stream (factory, "doomed");
  g_autoptr(EsStream) other = es_test_open_stream (factory, "other");
  g_autoptr(GPtrArray) markers = NULL;
  g_autoptr(GPtrArray) plain = NULL;
  g_autoptr(GError) error = NULL;
  EsStoredEvent *marker;
  PGnotify *notify;

  g_test_summary ("A delete NOTIFYs the channel with its position, which a reader of "
                  "@all asking for tombstones finds the marker at");

  write_one (doomed, "A", "a", ES_VERSION_ANY);
  write_one (doomed, "B", "b", ES_VERSION_ANY);
  write_one (other, "C", "c", ES_VERSION_ANY);
  admin_exec (f, listen);

  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "doomed", 2,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));
  notify = admin_wait_notify (f);
  g_assert_nonnull (notify);
  g_assert_cmpstr (notify->extra, ==, "4");
  PQfreemem (notify);

  markers = read_page_ok (storage, NULL, 0, ES_READ_FLAGS_INCLUDE_TOMBSTONES, NULL, 100);
  g_assert_cmpuint (markers->len, ==, 2);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (markers, 0)), ==, 3);
  marker = g_ptr_array_index (markers, 1);
  g_assert_cmpint (es_stored_event_get_sequence_id (marker), ==, 4);
  g_assert_cmpint (es_stored_event_get_flags (marker), ==, ES_STORED_EVENT_FLAGS_TOMBSTONE);
  g_assert_cmpstr (es_stored_event_get_stream_id (marker), ==, "doomed");
  g_assert_cmpint (es_stored_event_get_version (marker), ==, 2);
  g_assert_cmpstr (es_stored_event_get_event_type (marker), ==, "$tombstone");
  g_assert_null (es_stored_event_get_metadata (marker));
  g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (marker)), ==, 0);
  plain = read_page_ok (storage, NULL, 0, ES_READ_FLAGS_NONE, NULL, 100);
  g_assert_cmpuint (plain->len, ==, 1);

  /* A soft delete takes a position too (no marker), and notifies it. */
  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "other", ES_VERSION_ANY,
                                                      ES_DELETE_FLAGS_NONE, NULL, &error));
  notify = admin_wait_notify (f);
  g_assert_nonnull (notify);
  g_assert_cmpstr (notify->extra, ==, "5");
  PQfreemem (notify);

  g_clear_object (&doomed);
  g_clear_object (&other);
  es_test_factory_close_and_free (factory);
}

/* A watch of this process ends when another connection (another
 * factory: its own pool and notifier) tombstones the stream: the NOTIFY
 * wakes this process's notifier, which reads the marker. */
static void
test_lifecycle_watch_remote_delete (Fixture       *f,
                                    gconstpointer  data)
{
  EsStreamFactory *watching = factory_new (f, 1);
  EsStreamFactory *deleting = factory_new (f, 1);
  g_autoptr(EsStream) stream = es_test_open_stream (watching, "watched");
  g_autoptr(EsStream) all = es_test_open_stream (watching, ES_ALL_STREAM);
  g_autoptr(EsTestRecorder) recorder = es_test_recorder_new ();
  g_autoptr(EsTestRecorder) all_recorder = es_test_recorder_new ();
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(EsWatch) all_watch = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Another connection's hard delete ends this process's watch of the "
                  "stream with STREAM_DELETED naming it; an @all watch emits no marker");

  write_one (stream, "A", "a", ES_VERSION_ANY);
  watch = es_stream_watch (stream, 0);
  es_test_recorder_connect (recorder, watch);
  all_watch = es_stream_watch (all, 0);
  es_test_recorder_connect (all_recorder, all_watch);
  es_test_recorder_wait_events (recorder, 1);
  es_test_recorder_wait_events (all_recorder, 1);

  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (factory_storage (deleting), "watched", 1,
                                                      ES_DELETE_FLAGS_TOMBSTONE, NULL, &error));

  es_test_recorder_wait_error (recorder);
  g_assert_error (recorder->error, ES_ERROR, ES_ERROR_STREAM_DELETED);
  g_assert_nonnull (strstr (recorder->error->message, "watched"));
  g_assert_cmpuint (recorder->events->len, ==, 1);

  /* The @all watch goes on, and skips the marker: the next event it
   * emits is one written after the delete. */
  {
    g_autoptr(EsStream) later = es_test_open_stream (deleting, "later");

    write_one (later, "L", "l", ES_VERSION_ANY);
  }
  es_test_recorder_wait_events (all_recorder, 2);
  g_assert_cmpstr (es_stored_event_get_stream_id (g_ptr_array_index (all_recorder->events, 1)),
                   ==, "later");
  g_assert_no_error (all_recorder->error);

  g_clear_object (&watch);
  g_clear_object (&all_watch);
  g_clear_object (&stream);
  g_clear_object (&all);
  es_test_factory_close_and_free (deleting);
  es_test_factory_close_and_free (watching);
}

typedef struct
{
  EsStorageHandle *storage;
  const char      *stream_id;
  gboolean         tombstone;
  gboolean         is_delete;
  gboolean         ok;
  GError          *error;
  gint64           version;
} RaceOp;

static gpointer
race_thread (gpointer data)
{
  RaceOp *op = data;

  if (op->is_delete)
    op->ok = es_storage_handle_delete_stream (op->storage, op->stream_id, 3,
                                              op->tombstone ? ES_DELETE_FLAGS_TOMBSTONE
                                                            : ES_DELETE_FLAGS_NONE,
                                              NULL, &op->error);
  else
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("Racing", "", NULL, NULL);

      op->ok = es_storage_handle_append (op->storage, op->stream_id, 3, &event, 1, &op->version,
                                         NULL, &op->error);
    }
  return NULL;
}

/* How many sessions wait for an advisory lock. */
static gint64
advisory_waiters (Fixture *f)
{
  return admin_query_int (f, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                             " AND NOT granted", NULL);
}

static void
test_lifecycle_concurrent_delete (Fixture       *f,
                                  gconstpointer  data)
{
  EsStreamFactory *first = factory_new (f, 2);
  EsStreamFactory *second = factory_new (f, 2);
  g_autofree char *lock = NULL;

  g_test_summary ("An append and a delete of one stream, both expecting version 3, from two "
                  "connections at once: the stream's lock serialises them, the second one "
                  "checks against what the first did (never both on version 3 of the "
                  "same events), and the stored state agrees");

  lock = g_strdup_printf ("SELECT pg_advisory_lock(hashtextextended('es-glib stream %s.' || $1,"
                          " 0))", f->schema);

  for (guint round = 0; round < 6; round++)
    {
      g_autofree char *id = g_strdup_printf ("race-%u", round);
      g_autoptr(EsStream) stream = es_test_open_stream (first, id);
      EsStorageHandle *a = factory_storage (first);
      gboolean tombstone = round % 2 == 0;
      RaceOp append = { a, id, tombstone, FALSE, FALSE, NULL, -1 };
      RaceOp del = { factory_storage (second), id, tombstone, TRUE, FALSE, NULL, -1 };
      const char *params[] = { id };
      GThread *threads[2];
      g_autoptr(EsStreamInfo) info = NULL;
      g_autoptr(GPtrArray) events = NULL;

      write_one (stream, "A", "", ES_VERSION_ANY);
      write_one (stream, "B", "", ES_VERSION_ANY);
      write_one (stream, "C", "", ES_VERSION_ANY);

      /* Both block on the stream's lock, held here, and go when it is
       * released: which one wins is up to the server. */
      PQclear (admin_query (f, lock, 1, params));
      threads[0] = g_thread_new ("append", race_thread, &append);
      threads[1] = g_thread_new ("delete", race_thread, &del);
      while (advisory_waiters (f) < 2)
        g_usleep (1000);
      PQclear (admin_query (f, "SELECT pg_advisory_unlock_all()", 0, NULL));
      g_thread_join (threads[0]);
      g_thread_join (threads[1]);

      info = info_ok (a, id);
      events = read_page_ok (a, id, 0, ES_READ_FLAGS_NONE, NULL, 100);
      if (append.ok && del.ok)
        {
          /* Soft delete first, then the append expecting the kept
           * version 3: version 4, one event. */
          g_assert_false (tombstone);
          g_assert_cmpint (append.version, ==, 4);
          g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_ACTIVE);
          g_assert_cmpint (es_stream_info_get_event_count (info), ==, 1);
          g_assert_cmpuint (events->len, ==, 1);
          g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events, 0)), ==, 4);
        }
      else if (append.ok)
        {
          /* Append first: the delete found version 4. */
          g_assert_cmpint (append.version, ==, 4);
          g_assert_error (del.error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
          g_assert_cmpint (es_stream_info_get_current_version (info), ==, 4);
          g_assert_cmpint (es_stream_info_get_event_count (info), ==, 4);
          g_assert_cmpuint (events->len, ==, 4);
        }
      else
        {
          /* Tombstone first: the append is refused. */
          g_assert_true (tombstone);
          g_assert_true (del.ok);
          g_assert_error (append.error, ES_ERROR, ES_ERROR_STREAM_DELETED);
          g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_TOMBSTONED);
          g_assert_cmpint (es_stream_info_get_current_version (info), ==, 3);
          g_assert_cmpuint (events->len, ==, 0);
        }
      g_test_message ("round %u (%s): append %s, delete %s", round,
                      tombstone ? "hard" : "soft", append.ok ? "ok" : append.error->message,
                      del.ok ? "ok" : del.error->message);
      g_clear_error (&append.error);
      g_clear_error (&del.error);
    }

  es_test_factory_close_and_free (second);
  es_test_factory_close_and_free (first);
}

typedef struct
{
  EsStorageHandle *storage;
  guint            n;
} StressOp;

static gpointer
stress_append_thread (gpointer data)
{
  StressOp *op = data;

  for (guint i = 0; i < op->n; i++)
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("Tick", "", NULL, NULL);
      g_autoptr(GError) error = NULL;

      es_storage_handle_append (op->storage, "busy", ES_VERSION_ANY, &event, 1, NULL, NULL,
                                &error);
      g_assert_no_error (error);
    }
  return NULL;
}

static void
test_lifecycle_concurrent_stress (Fixture       *f,
                                  gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 4);
  EsStreamFactory *deleter = factory_new (f, 1);
  EsStorageHandle *storage = factory_storage (factory);
  StressOp op = { storage, 40 };
  GThread *threads[3];
  g_autoptr(EsStreamInfo) info = NULL;
  g_autoptr(GPtrArray) events = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  gint64 last_position;

  g_test_summary ("Appends from three connections while another one soft-deletes the "
                  "stream over and over: versions are never reused, the stream's row "
                  "agrees with its events, and no position is used twice");

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("append", stress_append_thread, &op);
  for (guint i = 0; i < 10; i++)
    {
      g_autoptr(GError) error = NULL;

      es_storage_handle_delete_stream (factory_storage (deleter), "busy", ES_VERSION_ANY,
                                       ES_DELETE_FLAGS_NONE, NULL, &error);
      g_assert_no_error (error);
      g_usleep (2000);
    }
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);

  info = info_ok (storage, "busy");
  events = read_page_ok (storage, "busy", 0, ES_READ_FLAGS_NONE, NULL, 1000);
  g_assert_cmpint (es_stream_info_get_current_version (info), ==, 3 * op.n);
  g_assert_cmpint (es_stream_info_get_event_count (info), ==, events->len);
  if (events->len > 0)
    {
      g_assert_cmpint (es_stream_info_get_first_version (info), ==,
                       es_stored_event_get_version (g_ptr_array_index (events, 0)));
      es_test_assert_consecutive (events, es_stream_info_get_first_version (info) - 1, FALSE);
      g_assert_cmpint (es_stored_event_get_version (g_ptr_array_index (events,
                                                                       events->len - 1)),
                       ==, 3 * op.n);
    }

  /* 120 appends and 10 deletes: 130 positions, each once. */
  {
    g_autoptr(EsStreamInfo) whole = info_ok (storage, NULL);

    last_position = es_stream_info_get_current_version (whole);
    g_assert_cmpint (last_position, ==, 3 * op.n + 10);
  }
  all = read_page_ok (storage, NULL, 0, ES_READ_FLAGS_NONE, NULL, 1000);
  for (guint i = 0; i < all->len; i++)
    {
      gint64 seq = es_stored_event_get_sequence_id (g_ptr_array_index (all, i));

      g_assert_true (g_hash_table_add (seen, GSIZE_TO_POINTER (seq)));
      g_assert_cmpint (seq, <=, last_position);
    }

  es_test_factory_close_and_free (deleter);
  es_test_factory_close_and_free (factory);
}

/* Stream ids that byte order and linguistic orders sort differently. */
static const char * const order_ids[] = {
  "Zebra", "apple", "\xc3\xa9t\xc3\xa9", "eta", "\xc3\xa9" "a", "\xc3\xaa", "e\xcc\x81t",
  "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80", "_x", "A-1", "a-1", "\xc3\xa9",
};

static int
compare_bytes (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* The same ids listed by SQLite: its BINARY collation is byte order. */
static char *
sqlite_listing (const char *prefix)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStorageHandle) storage = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  GString *ids = g_string_new (NULL);

  storage = ES_STORAGE_HANDLE (es_sqlite_storage_new (":memory:", 1, NULL, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (order_ids); i++)
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("E", "", NULL, NULL);

      es_storage_handle_append (storage, order_ids[i], ES_VERSION_ANY, &event, 1, NULL, NULL,
                                &error);
      g_assert_no_error (error);
    }
  infos = es_storage_handle_list_streams (storage, prefix, NULL, ES_LIST_STREAMS_FLAGS_NONE, 100,
                                          NULL, &error);
  if (infos == NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
    {
      g_string_free (ids, TRUE);
      return NULL;
    }
  g_assert_no_error (error);
  for (guint i = 0; i < infos->len; i++)
    g_string_append_printf (ids, "%s%s", i > 0 ? " " : "",
                            es_stream_info_get_stream_id (g_ptr_array_index (infos, i)));
  es_storage_handle_close (storage, NULL, NULL);
  return g_string_free (ids, FALSE);
}

/* A fresh database whose default collation is linguistic (ICU, English),
 * where a plain ORDER BY stream_id would not be byte order; NULL when the
 * server has no ICU. Its name is in *@out_name. */
static char *
icu_database_conninfo (Fixture  *f,
                       char    **out_name)
{
  g_autofree char *has_icu = admin_query_text (f, "SELECT 1 FROM pg_collation"
                                                  " WHERE collprovider = 'i' LIMIT 1", NULL);
  g_autofree char *sql = NULL;
  char *name;

  if (has_icu == NULL || PQserverVersion (f->admin) < 150000)
    return NULL;
  name = g_strdup_printf ("%s_icu", f->schema);
  sql = g_strdup_printf ("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'"
                         " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'", name);
  admin_exec (f, sql);
  *out_name = name;
  return g_strdup_printf ("%s dbname=%s", f->conninfo, name);
}

static void
test_lifecycle_list_order (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *icu_name = NULL;
  g_autofree char *icu_conninfo = icu_database_conninfo (f, &icu_name);
  const char *conninfo = icu_conninfo != NULL ? icu_conninfo : f->conninfo;
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  EsStorageHandle *storage;
  const char *sorted[G_N_ELEMENTS (order_ids)];
  g_autofree char *expected = NULL;
  g_autofree char *listed = NULL;
  g_autofree char *sqlite = NULL;
  g_autofree char *paged = NULL;
  GString *pages = g_string_new (NULL);
  char *after = NULL;

  g_test_summary ("Streams list in byte order of their ids, as on SQLite, also in a "
                  "database whose default collation is linguistic (ICU); non-ASCII "
                  "prefixes are byte prefixes; pages follow one another");

  if (icu_conninfo == NULL)
    g_test_message ("No ICU on this server: the database's own collation is used");

  factory = pg_factory_new (conninfo, f->schema, 1, &error);
  g_assert_no_error (error);
  storage = factory_storage (factory);
  for (guint i = 0; i < G_N_ELEMENTS (order_ids); i++)
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("E", "", NULL, NULL);

      es_storage_handle_append (storage, order_ids[i], ES_VERSION_ANY, &event, 1, NULL, NULL,
                                &error);
      g_assert_no_error (error);
    }

  memcpy (sorted, order_ids, sizeof sorted);
  qsort (sorted, G_N_ELEMENTS (sorted), sizeof sorted[0], compare_bytes);
  {
    GString *e = g_string_new (NULL);

    for (guint i = 0; i < G_N_ELEMENTS (sorted); i++)
      g_string_append_printf (e, "%s%s", i > 0 ? " " : "", sorted[i]);
    expected = g_string_free (e, FALSE);
  }

  listed = list_ids (storage, NULL, NULL, ES_LIST_STREAMS_FLAGS_NONE, 100);
  g_assert_cmpstr (listed, ==, expected);

  sqlite = sqlite_listing (NULL);
  if (sqlite != NULL)
    g_assert_cmpstr (listed, ==, sqlite);

  /* Pages of 3, each after the last id of the previous one. */
  for (;;)
    {
      g_autoptr(GPtrArray) infos = es_storage_handle_list_streams (storage, NULL, after,
                                                                  ES_LIST_STREAMS_FLAGS_NONE, 3,
                                                                  NULL, &error);

      g_assert_no_error (error);
      if (infos->len == 0)
        break;
      for (guint i = 0; i < infos->len; i++)
        g_string_append_printf (pages, "%s%s", pages->len > 0 ? " " : "",
                                es_stream_info_get_stream_id (g_ptr_array_index (infos, i)));
      g_free (after);
      after = g_strdup (es_stream_info_get_stream_id (g_ptr_array_index (infos,
                                                                         infos->len - 1)));
    }
  g_free (after);
  paged = g_string_free (pages, FALSE);
  g_assert_cmpstr (paged, ==, expected);

  /* Byte prefixes: "é" (C3 A9) takes "é", "éa", "été", not "ê" (C3 AA)
   * nor "é" written e + U+0301. */
  {
    g_autofree char *e_acute = list_ids (storage, "\xc3\xa9", NULL, ES_LIST_STREAMS_FLAGS_NONE,
                                         100);
    g_autofree char *a = list_ids (storage, "a", NULL, ES_LIST_STREAMS_FLAGS_NONE, 100);
    g_autofree char *sqlite_prefix = sqlite_listing ("\xc3\xa9");

    g_assert_cmpstr (e_acute, ==, "\xc3\xa9 \xc3\xa9" "a \xc3\xa9t\xc3\xa9");
    if (sqlite_prefix != NULL)
      g_assert_cmpstr (e_acute, ==, sqlite_prefix);
    g_assert_cmpstr (a, ==, "a-1 apple");
  }

  es_test_factory_close_and_free (factory);
  if (icu_name != NULL)
    {
      g_autofree char *drop = g_strdup_printf ("DROP DATABASE %s WITH (FORCE)", icu_name);

      admin_exec (f, drop);
    }
}

/* The plans the backend's reads get for what the issue says is cheap. */
static char *
explain (Fixture    *f,
         const char *sql)
{
  g_autofree char *full = g_strdup_printf ("EXPLAIN (COSTS OFF) %s", sql);
  PGresult *result = admin_query (f, full, 0, NULL);
  GString *plan = g_string_new (NULL);

  for (int i = 0; i < PQntuples (result); i++)
    g_string_append_printf (plan, "%s\n", PQgetvalue (result, i, 0));
  PQclear (result);
  return g_string_free (plan, FALSE);
}

static void
test_lifecycle_time_range (Fixture       *f,
                           gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  EsStorageHandle *storage = factory_storage (factory);
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *spread = NULL;
  g_autofree char *analyze = NULL;
  g_autofree char *plan = NULL;
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GPtrArray) window = NULL;
  g_autoptr(GPtrArray) newest = NULL;
  g_autoptr(GError) error = NULL;
  gint64 since, until;

  g_test_summary ("A time range of @all is answered from events_recorded_at: exactly the "
                  "events in [since, until), exact to the microsecond, in sequence-id "
                  "order; backwards too");

  /* 3,000 events, one a minute from 2024-01-01 on (timestamps set by hand
   * after the appends, then ANALYZE so the planner knows). */
  {
    EsCandidateEvent *batch[100];

    for (guint i = 0; i < G_N_ELEMENTS (batch); i++)
      batch[i] = candidate_text ("Tick", "", NULL, NULL);
    for (guint round = 0; round < 30; round++)
      {
        es_storage_handle_append (storage, round % 2 ? "odd" : "even", ES_VERSION_ANY, batch,
                                  G_N_ELEMENTS (batch), NULL, NULL, &error);
        g_assert_no_error (error);
      }
    for (guint i = 0; i < G_N_ELEMENTS (batch); i++)
      g_object_unref (batch[i]);
  }
  spread = g_strdup_printf ("UPDATE %s.events"
                            " SET recorded_at = TIMESTAMPTZ '2024-01-01 00:00:00+00'"
                            " + (sequence_id - 1) * INTERVAL '1 minute'", qschema);
  admin_exec (f, spread);
  analyze = g_strdup_printf ("ANALYZE %s.events", qschema);
  admin_exec (f, analyze);

  /* [01:00:00.000001, 02:00:00.000001): minutes 61 (exclusive) .. 120
   * (inclusive) after the first, sequence ids 62..121. */
  since = usec_of (2024, 1, 1, 1, 0, 0, 1);
  until = usec_of (2024, 1, 1, 2, 0, 0, 1);
  es_event_filter_add_compare (filter, "timestamp", ES_FILTER_OPERATOR_GREATER_OR_EQUAL,
                               g_variant_new_int64 (since));
  es_event_filter_add_compare (filter, "timestamp", ES_FILTER_OPERATOR_LESS,
                               g_variant_new_int64 (until));
  window = read_page_ok (storage, NULL, 0, ES_READ_FLAGS_NONE, filter, 1000);
  g_assert_cmpuint (window->len, ==, 60);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (window, 0)), ==, 62);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (window, 59)), ==, 121);
  newest = read_page_ok (storage, NULL, G_MAXINT64, ES_READ_FLAGS_BACKWARDS, filter, 5);
  g_assert_cmpuint (newest->len, ==, 5);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (newest, 0)), ==, 121);
  g_assert_cmpint (es_stored_event_get_sequence_id (g_ptr_array_index (newest, 4)), ==, 117);

  /* The plan of that read: the timestamp index, not a scan of @all. */
  {
    g_autofree char *sql = g_strdup_printf (
      "SELECT sequence_id FROM %s.events WHERE sequence_id > 0"
      " AND (recorded_at >= (TIMESTAMPTZ 'epoch' + %" G_GINT64_FORMAT "::int8"
      "                      * INTERVAL '1 microsecond')"
      " AND recorded_at < (TIMESTAMPTZ 'epoch' + %" G_GINT64_FORMAT "::int8"
      "                    * INTERVAL '1 microsecond'))"
      " ORDER BY sequence_id LIMIT 1000", qschema, since, until);

    plan = explain (f, sql);
    g_test_message ("%s", plan);
    g_assert_nonnull (strstr (plan, "events_recorded_at"));
  }

  es_test_factory_close_and_free (factory);
}

/* What is on the rows after an erase, a truncation and a delete. */
static void
test_lifecycle_rows (Fixture       *f,
                     gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  EsStorageHandle *storage = factory_storage (factory);
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *sql = NULL;
  g_autofree char *row = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Erase empties the row's data and metadata and sets the flag; "
                  "truncation and deletes remove rows; compact (VACUUM) leaves no dead "
                  "row versions in the events table");

  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(EsCandidateEvent) event = candidate_text ("Secret", "top-secret-payload",
                                                          NULL, "{\"who\": \"alice\"}");

      es_storage_handle_append (storage, "private", ES_VERSION_ANY, &event, 1, NULL, NULL,
                                &error);
      g_assert_no_error (error);
    }

  ES_TEST_ASSERT_OK (es_storage_handle_erase_event (storage, "private", 4, NULL, &error));
  sql = g_strdup_printf ("SELECT octet_length(data) || ' ' || coalesce(metadata, 'null') || ' '"
                         " || flags || ' ' || event_type FROM %s.events"
                         " WHERE stream_id = 'private' AND version = 4", qschema);
  row = admin_query_text (f, sql, NULL);
  g_assert_cmpstr (row, ==, "0 null 1 Secret");

  ES_TEST_ASSERT_OK (es_storage_handle_truncate_stream (storage, "private", 3, NULL, &error));
  g_free (sql);
  sql = g_strdup_printf ("SELECT string_agg(version::text, ',' ORDER BY version) FROM %s.events",
                         qschema);
  g_free (row);
  row = admin_query_text (f, sql, NULL);
  g_assert_cmpstr (row, ==, "3,4");

  ES_TEST_ASSERT_OK (es_storage_handle_delete_stream (storage, "private", 4, ES_DELETE_FLAGS_NONE,
                                                      NULL, &error));
  g_free (row);
  row = admin_query_text (f, sql, NULL);
  g_assert_null (row);

  ES_TEST_ASSERT_OK (es_storage_handle_compact (storage, NULL, &error));
  g_free (sql);
  sql = g_strdup_printf ("SELECT n_dead_tup FROM pg_stat_user_tables"
                         " WHERE schemaname = '%s' AND relname = 'events'", f->schema);
  /* The statistics arrive asynchronously; VACUUM reports them itself. */
  g_assert_cmpint (admin_query_int (f, sql, NULL), ==, 0);

  es_test_factory_close_and_free (factory);
}

static void
append_many (EsStorageHandle *storage,
             const char      *stream_id,
             guint            n)
{
  EsCandidateEvent *batch[1000];
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (batch); i++)
    batch[i] = candidate_text ("Tick", "", NULL, NULL);
  for (guint done = 0; done < n; done += G_N_ELEMENTS (batch))
    {
      es_storage_handle_append (storage, stream_id, ES_VERSION_ANY, batch,
                                MIN (G_N_ELEMENTS (batch), n - done), NULL, NULL, &error);
      g_assert_no_error (error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (batch); i++)
    g_object_unref (batch[i]);
}

static void
test_lifecycle_sweep_batches (Fixture       *f,
                              gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 2);
  EsStorageHandle *storage = factory_storage (factory);
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *policy = NULL;
  g_autofree char *batch = NULL;
  g_autofree char *lock = NULL;
  g_autofree char *row = NULL;
  g_autoptr(GError) error = NULL;
  const char *params[1];
  gboolean has_age = TRUE;
  gint64 removed;

  g_test_summary ("A sweep removes at most 10,000 events per transaction and carries on "
                  "where the previous one stopped; it skips, without waiting, a stream "
                  "whose lock a writer holds");

  append_many (storage, "a", 12000);
  append_many (storage, "b", 5000);
  append_many (storage, "c", 10);
  /* Policies stored behind the library's back, so that nothing enforced
   * them yet: keep the newest event of each stream. */
  policy = g_strdup_printf ("UPDATE %s.streams SET max_count = 1", qschema);
  admin_exec (f, policy);

  /* One transaction of the sweep: 10,000 of a's events, and the next one
   * starts with a again. */
  batch = g_strdup_printf ("SELECT removed || ' ' || coalesce(next_from, '-') FROM %s.sweep"
                           " (now(), 10000, NULL, 'es-glib stream %s.')", qschema, f->schema);
  row = admin_query_text (f, batch, NULL);
  g_assert_cmpstr (row, ==, "10000 a");

  /* c is locked by a "writer": skipped. */
  lock = g_strdup_printf ("SELECT pg_advisory_lock(hashtextextended('es-glib stream %s.' || $1,"
                          " 0))", f->schema);
  params[0] = "c";
  PQclear (admin_query (f, lock, 1, params));
  removed = es_storage_handle_sweep (storage, g_get_real_time (), &has_age, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (removed, ==, 1999 + 4999);
  g_assert_false (has_age);
  {
    g_autoptr(EsStreamInfo) a = info_ok (storage, "a");
    g_autoptr(EsStreamInfo) b = info_ok (storage, "b");
    g_autoptr(EsStreamInfo) c = info_ok (storage, "c");

    g_assert_cmpint (es_stream_info_get_event_count (a), ==, 1);
    g_assert_cmpint (es_stream_info_get_first_version (a), ==, 12000);
    g_assert_cmpint (es_stream_info_get_event_count (b), ==, 1);
    g_assert_cmpint (es_stream_info_get_event_count (c), ==, 10);
  }
  PQclear (admin_query (f, "SELECT pg_advisory_unlock_all()", 0, NULL));

  removed = es_storage_handle_sweep (storage, g_get_real_time (), &has_age, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (removed, ==, 9);
  g_free (policy);
  policy = g_strdup_printf ("SELECT count(*) FROM %s.events", qschema);
  g_assert_cmpint (admin_query_int (f, policy, NULL), ==, 3);

  es_test_factory_close_and_free (factory);
}

typedef struct
{
  EsStorageHandle *storage;
  gboolean         ok;
  GError          *error;
} RetentionOp;

static gpointer
database_retention_thread (gpointer data)
{
  RetentionOp *op = data;

  op->ok = es_storage_handle_set_retention (op->storage, NULL, 0, 1, NULL, &op->error);
  return NULL;
}

static void
test_lifecycle_database_retention_waits (Fixture       *f,
                                         gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 2);
  EsStorageHandle *storage = factory_storage (factory);
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *lock = NULL;
  g_autofree char *count_b = NULL;
  RetentionOp op = { storage, FALSE, NULL };
  const char *params[1] = { "c" };
  GThread *thread;

  g_test_summary ("A database-wide policy is enforced on every stream before "
                  "set_retention returns, also on a stream a writer held while the "
                  "sweep went past it");

  append_many (storage, "a", 5);
  append_many (storage, "b", 5);
  append_many (storage, "c", 5);
  lock = g_strdup_printf ("SELECT pg_advisory_lock(hashtextextended('es-glib stream %s.' || $1,"
                          " 0))", f->schema);
  PQclear (admin_query (f, lock, 1, params));

  thread = g_thread_new ("set-retention", database_retention_thread, &op);
  /* The sweep's transaction covers a, b and c in that order: once b's
   * removal is committed, it went past c, which was held. */
  count_b = g_strdup_printf ("SELECT event_count FROM %s.streams WHERE stream_id = 'b'",
                             qschema);
  while (admin_query_int (f, count_b, NULL) != 1)
    g_usleep (2 * G_TIME_SPAN_MILLISECOND);
  PQclear (admin_query (f, "SELECT pg_advisory_unlock_all()", 0, NULL));
  g_thread_join (thread);

  g_assert_no_error (op.error);
  g_assert_true (op.ok);
  for (guint i = 0; i < 3; i++)
    {
      const char *ids[] = { "a", "b", "c" };
      g_autoptr(EsStreamInfo) info = info_ok (storage, ids[i]);

      g_assert_cmpint (es_stream_info_get_event_count (info), ==, 1);
      g_assert_cmpint (es_stream_info_get_first_version (info), ==, 5);
    }

  es_test_factory_close_and_free (factory);
}

typedef enum
{
  KILL_DURING_DELETE,
  KILL_DURING_TRUNCATE,
  KILL_DURING_SWEEP,
} KillCase;

typedef struct
{
  EsStorageHandle *storage;
  KillCase         which;
  GError          *error;
} KillOp;

static gpointer
kill_op_thread (gpointer data)
{
  KillOp *op = data;

  switch (op->which)
    {
    case KILL_DURING_DELETE:
      es_storage_handle_delete_stream (op->storage, "victim", ES_VERSION_ANY,
                                       ES_DELETE_FLAGS_TOMBSTONE, NULL, &op->error);
      break;
    case KILL_DURING_TRUNCATE:
      es_storage_handle_truncate_stream (op->storage, "victim", 15000, NULL, &op->error);
      break;
    case KILL_DURING_SWEEP:
    default:
      es_storage_handle_sweep (op->storage, g_get_real_time (), NULL, NULL, &op->error);
      break;
    }
  return NULL;
}

static void
test_lifecycle_kill (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *state_sql = NULL;
  g_autofree char *initial = NULL;

  g_test_summary ("The server killed (immediate shutdown) while a hard delete, a "
                  "truncation and a sweep have removed their events but not committed: "
                  "after the restart the stream, its row, its snapshot and the head of "
                  "@all are as before, none half done");

  if (!server_control_available ())
    {
      g_test_skip ("No pg-test-server of this test's own to kill");
      return;
    }

  {
    EsStreamFactory *factory = factory_new (f, 1);
    EsStorageHandle *storage = factory_storage (factory);
    g_autoptr(GBytes) state = g_bytes_new_static ("s", 1);
    g_autoptr(GError) error = NULL;

    append_many (storage, "victim", 20000);
    es_storage_handle_save_snapshot (storage, "victim", "p", 100, state, NULL, &error);
    g_assert_no_error (error);
    es_test_factory_close_and_free (factory);
  }
  /* Everything an operation would change, as one line. */
  state_sql = g_strdup_printf (
    "SELECT (SELECT count(*) || '/' || min(version) || '/' || max(version) FROM %s.events),"
    " (SELECT state || '/' || version || '/' || event_count || '/' || first_version"
    "  FROM %s.streams WHERE stream_id = 'victim'),"
    " (SELECT count(*) FROM %s.snapshots), (SELECT count(*) FROM %s.tombstones),"
    " %s.all_head ()",
    qschema, qschema, qschema, qschema, qschema);
  {
    PGresult *result = admin_query (f, state_sql, 0, NULL);

    initial = g_strjoin (" ", PQgetvalue (result, 0, 0), PQgetvalue (result, 0, 1),
                         PQgetvalue (result, 0, 2), PQgetvalue (result, 0, 3),
                         PQgetvalue (result, 0, 4), NULL);
    PQclear (result);
  }
  g_assert_cmpstr (initial, ==, "20000/1/20000 0/20000/20000/1 1 0 20000");

  for (KillCase which = KILL_DURING_DELETE; which <= KILL_DURING_SWEEP; which++)
    {
      EsStreamFactory *factory = factory_new (f, 1);
      KillOp op = { factory_storage (factory), which, NULL };
      g_autofree char *blocker = NULL;
      g_autofree char *after = NULL;
      GThread *thread;
      PGresult *result;
      PGconn *blocking;

      /* The operation removes the events, then waits on a lock held
       * here: the snapshots table (a delete, truncation and retention
       * prune snapshots after the events). */
      if (which == KILL_DURING_SWEEP)
        {
          g_autofree char *policy = g_strdup_printf ("UPDATE %s.streams SET max_count = 5",
                                                     qschema);

          admin_exec (f, policy);
        }
      blocker = g_strdup_printf ("BEGIN; LOCK TABLE %s.snapshots IN EXCLUSIVE MODE", qschema);
      /* On a connection of its own: pg_stat_activity, read below, is
       * frozen for the length of a transaction. */
      blocking = admin_connect (f->conninfo);
      result = PQexec (blocking, blocker);
      g_assert_true (PQresultStatus (result) == PGRES_TUPLES_OK ||
                     PQresultStatus (result) == PGRES_COMMAND_OK);
      PQclear (result);
      thread = g_thread_new ("kill-op", kill_op_thread, &op);
      /* Its statement waits (not, say, an autovacuum of the table). */
      while (admin_query_int (f, "SELECT count(*) FROM pg_stat_activity"
                                 " WHERE wait_event_type = 'Lock'"
                                 " AND backend_type = 'client backend' AND query LIKE $1",
                              which == KILL_DURING_DELETE ? "%.delete_stream %"
                              : which == KILL_DURING_TRUNCATE ? "%.truncate_stream %"
                              : "%.sweep (%") < 1)
        g_usleep (2000);

      server_control ("kill");
      server_control ("start");
      g_thread_join (thread);
      g_assert_error (op.error, ES_ERROR, ES_ERROR_STORAGE);
      g_test_message ("case %d: %s", which, op.error->message);
      g_clear_error (&op.error);
      es_test_factory_close_and_free (factory);

      /* The sessions (and the lock) died with the server. */
      PQfinish (blocking);
      PQfinish (f->admin);
      f->admin = admin_connect (f->conninfo);
      result = admin_query (f, state_sql, 0, NULL);
      after = g_strjoin (" ", PQgetvalue (result, 0, 0), PQgetvalue (result, 0, 1),
                         PQgetvalue (result, 0, 2), PQgetvalue (result, 0, 3),
                         PQgetvalue (result, 0, 4), NULL);
      PQclear (result);
      if (which == KILL_DURING_SWEEP)
        {
          g_autofree char *policy = g_strdup_printf ("UPDATE %s.streams SET max_count = 0",
                                                     qschema);

          /* The policy was committed before; nothing else changed. */
          admin_exec (f, policy);
        }
      g_assert_cmpstr (after, ==, initial);
    }
}

/* Runs @sql on @conn: the first value of its result, or NULL with the
 * SQLSTATE in @out_state when it failed. */
static char *
try_query (PGconn      *conn,
           const char  *sql,
           char       **out_state)
{
  PGresult *result = PQexec (conn, sql);
  char *value = NULL;

  if (PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) > 0)
    value = g_strdup (PQgetvalue (result, 0, 0));
  else if (PQresultStatus (result) == PGRES_FATAL_ERROR && out_state != NULL)
    *out_state = g_strdup (PQresultErrorField (result, PG_DIAG_SQLSTATE));
  PQclear (result);
  return value;
}

static void
test_reserve_positions (Fixture       *f,
                        gconstpointer  data)
{
  EsStreamFactory *factory = factory_new (f, 1);
  g_autofree char *qschema = quote_ident (f->admin, f->schema);
  g_autofree char *reserve1 = g_strdup_printf ("SELECT %s.reserve_positions (1)", qschema);
  g_autofree char *reserve3 = g_strdup_printf ("SELECT %s.reserve_positions (3)", qschema);
  g_autofree char *locks = g_strdup (
    "SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
    " AND classid = 1702061933");
  g_autofree char *state = NULL;
  g_autofree char *value = NULL;
  PGconn *a = admin_connect (f->conninfo);
  PGconn *b = admin_connect (f->conninfo);
  gint64 first;

  g_test_summary ("reserve_positions() refuses a transaction that already wrote (or "
                  "already reserved): the reservation must be its first write; numbers "
                  "of a transaction that rolled back are not given back; a failure inside "
                  "the critical section releases its lock");

  PQclear (PQexec (a, "BEGIN"));
  g_free (try_query (a, "SELECT pg_catalog.pg_current_xact_id ()", NULL));
  value = try_query (a, reserve1, &state);
  g_assert_null (value);
  g_assert_cmpstr (state, ==, "55000");
  g_clear_pointer (&state, g_free);
  PQclear (PQexec (a, "ROLLBACK"));

  PQclear (PQexec (a, "BEGIN"));
  value = try_query (a, reserve3, &state);
  g_assert_nonnull (value);
  first = g_ascii_strtoll (value, NULL, 10);
  g_assert_cmpint (first, ==, 1);
  g_clear_pointer (&value, g_free);
  /* A second reservation in the same transaction. */
  value = try_query (a, reserve1, &state);
  g_assert_null (value);
  g_assert_cmpstr (state, ==, "55000");
  g_clear_pointer (&state, g_free);
  PQclear (PQexec (a, "ROLLBACK"));

  /* 1 to 3 are gone with the rollback; nobody holds the lock. */
  value = try_query (b, reserve1, &state);
  g_assert_cmpstr (value, ==, "4");
  g_clear_pointer (&value, g_free);
  g_assert_cmpint (admin_query_int (f, locks, NULL), ==, 0);

  /* Failing between the lock and its release (the sequence at its
   * maximum): the lock is released all the same. */
  {
    g_autofree char *cap = g_strdup_printf ("ALTER SEQUENCE %s.positions MAXVALUE 4", qschema);
    g_autofree char *uncap = g_strdup_printf ("ALTER SEQUENCE %s.positions NO MAXVALUE",
                                              qschema);

    admin_exec (f, cap);
    value = try_query (a, reserve1, &state);
    g_assert_null (value);
    g_assert_cmpstr (state, ==, "2200H");  /* sequence_generator_limit_exceeded */
    g_clear_pointer (&state, g_free);
    g_assert_cmpint (admin_query_int (f, locks, NULL), ==, 0);
    admin_exec (f, uncap);
    value = try_query (b, reserve1, &state);
    g_assert_cmpstr (value, ==, "5");
    g_clear_pointer (&value, g_free);
  }

  PQfinish (a);
  PQfinish (b);
  es_test_factory_close_and_free (factory);
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
    { "/pg/schema/create", (GTestFixtureFunc) test_schema_create },
    { "/pg/schema/existing-empty", (GTestFixtureFunc) test_schema_existing_empty },
    { "/pg/schema/concurrent-create", (GTestFixtureFunc) test_schema_concurrent_create },
    { "/pg/schema/newer", (GTestFixtureFunc) test_schema_newer },
    { "/pg/schema/foreign", (GTestFixtureFunc) test_schema_foreign },
    { "/pg/schema/invalid-names", (GTestFixtureFunc) test_schema_invalid_names },
    { "/pg/conninfo/bad", (GTestFixtureFunc) test_conninfo_bad },
    { "/pg/properties", (GTestFixtureFunc) test_properties },
    { "/pg/new-async", (GTestFixtureFunc) test_new_async },
    { "/pg/hand-wired", (GTestFixtureFunc) test_hand_wired },
    { "/pg/cancel-blocked", (GTestFixtureFunc) test_cancel_blocked },
    { "/pg/notify", (GTestFixtureFunc) test_notify },
    { "/pg/concurrency/read-modify-write", (GTestFixtureFunc) test_concurrent_writers },
    { "/pg/concurrency/idempotency", (GTestFixtureFunc) test_idempotency_across_connections },
    { "/pg/concurrency/pool-size", (GTestFixtureFunc) test_pool_size },
    { "/pg/concurrency/group-commit", (GTestFixtureFunc) test_group_commit },
    { "/pg/concurrency/completion-batching", (GTestFixtureFunc) test_completion_batching },
    { "/pg/concurrency/writer-sleeps", (GTestFixtureFunc) test_writer_sleeps },
    { "/pg/server/restart-during-writes", (GTestFixtureFunc) test_restart_during_writes },
    { "/pg/server/down", (GTestFixtureFunc) test_server_down },
    { "/pg/data/metadata-filters", (GTestFixtureFunc) test_filters_metadata },
    { "/pg/data/filter-parameter-limit", (GTestFixtureFunc) test_filter_parameter_limit },
    { "/pg/metaindex/concurrently", (GTestFixtureFunc) test_metadata_index_concurrently },
    { "/pg/metaindex/invalid-rebuilt", (GTestFixtureFunc) test_metadata_index_invalid },
    { "/pg/data/large-payload", (GTestFixtureFunc) test_large_payload },
    { "/pg/data/verbatim", (GTestFixtureFunc) test_verbatim },
    { "/pg/close", (GTestFixtureFunc) test_close },
    { "/pg/lifecycle/migration", (GTestFixtureFunc) test_lifecycle_migration },
    { "/pg/reserve-positions", (GTestFixtureFunc) test_reserve_positions },
    { "/pg/lifecycle/notify-delete", (GTestFixtureFunc) test_lifecycle_notify_delete },
    { "/pg/lifecycle/watch-remote-delete", (GTestFixtureFunc) test_lifecycle_watch_remote_delete },
    { "/pg/lifecycle/concurrent-delete", (GTestFixtureFunc) test_lifecycle_concurrent_delete },
    { "/pg/lifecycle/concurrent-stress", (GTestFixtureFunc) test_lifecycle_concurrent_stress },
    { "/pg/lifecycle/list-order", (GTestFixtureFunc) test_lifecycle_list_order },
    { "/pg/lifecycle/time-range", (GTestFixtureFunc) test_lifecycle_time_range },
    { "/pg/lifecycle/rows", (GTestFixtureFunc) test_lifecycle_rows },
    { "/pg/lifecycle/sweep-batches", (GTestFixtureFunc) test_lifecycle_sweep_batches },
    { "/pg/lifecycle/database-retention-waits",
      (GTestFixtureFunc) test_lifecycle_database_retention_waits },
    { "/pg/lifecycle/kill-mid-transaction", (GTestFixtureFunc) test_lifecycle_kill },
  };
  const char *reason = NULL;

  g_test_init (&argc, &argv, NULL);

  /* A server of our own, started here, stopped at exit. */
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
