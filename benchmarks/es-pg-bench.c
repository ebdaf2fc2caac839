/* es-pg-bench.c: es-glib's PostgreSQL backend against plain libpq, in one
 * table.
 *
 * Usage: es-pg-bench [--conninfo S] [--events N] [--runs R] [--watch-events W]
 *
 * Without --conninfo it uses ES_TEST_PG_CONNINFO, so
 *
 *   ES_PG_FSYNC=on build-aux/pg-test-server run _build/benchmarks/es-pg-bench
 *
 * runs it on a throwaway server (ES_PG_FSYNC=on keeps fsync on, as a real
 * server has it; without it, pg-test-server turns it off, as the tests
 * want). Every run works in schemas of its own (es_bench_*), dropped at
 * the end.
 *
 * Every figure is the median of R runs (default 3), both sides of a ratio
 * measured in the same run, each side first in every other run. The
 * plain libpq side does what the backend does, as a program written
 * directly against libpq would, in its own schema with the same tables and
 * indexes and the same statements (copied below from es-pg-schema.c),
 * sent the same way: per append one transaction in two pipelined round
 * trips, BEGIN and the stream's transaction-scoped advisory lock, then one
 * statement (version lookup and check, idempotency lookup, UPDATE ...
 * RETURNING of the global position counter, the multi-row INSERT from
 * binary arrays, the NOTIFY) with the COMMIT. Reads page through the same
 * SELECT, PAGE rows at a time, with binary results. What es-glib adds on
 * top (worker threads and GTasks, the connection pool, validation, one
 * GObject per event read) is what the ratio measures.
 *
 * Watch latency: a watch on a stream of factory B while factory A, a
 * different factory with its own connections, writes single events, each
 * after the previous one arrived; only the NOTIFY can wake B. Measured
 * from the moment the write returned in the writing thread (the commit
 * acknowledged) to the watch's ::event signal in the main thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "es-bench-common.h"

#include <es-glib-pg/es-pg.h>

#define BATCH       10000
#define PAGE        1024   /* events per read page, as the enumerator reads */

static char  *conninfo;
static guint  n_events = 100000;
static guint  n_runs = 3;
static guint  n_watch = 500;
static guint  schema_counter;
static PGconn *admin;

/* ---------------------------------------------------------------------- */

/* A new schema name for one run of one side; dropped by drop_schema(). */
static char *
new_schema (const char *side)
{
  return g_strdup_printf ("es_bench_%s_%d_%u", side, (int) getpid (), schema_counter++);
}

static void
admin_exec (const char *sql)
{
  PGresult *result = PQexec (admin, sql);

  if (PQresultStatus (result) != PGRES_COMMAND_OK && PQresultStatus (result) != PGRES_TUPLES_OK)
    g_error ("%s: %s", sql, PQresultErrorMessage (result));
  PQclear (result);
}

static void
drop_schema (const char *schema)
{
  g_autofree char *sql = g_strdup_printf ("DROP SCHEMA IF EXISTS %s CASCADE", schema);

  admin_exec (sql);
}

/* ---------------------------------------------------------------------- *
 * es-glib side                                                            *
 * ---------------------------------------------------------------------- */

static EsStreamFactory *
open_factory (const char *schema)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                            "conninfo", conninfo,
                            "schema", schema,
                            NULL);
  g_assert_no_error (error);
  return factory;
}


/* ---------------------------------------------------------------------- *
 * Plain libpq side                                                        *
 * ---------------------------------------------------------------------- */

/* Copied from es-pg-schema.c (schema_v1, its APPEND_SQL and the read
 * statement of a stream without a filter); {S} stands for the schema. */
static const char raw_ddl[] =
  "CREATE SCHEMA {S};"
  "CREATE TABLE {S}.es_glib_version ("
  "  version integer NOT NULL"
  ");"
  "INSERT INTO {S}.es_glib_version (version) VALUES (1);"
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
  "INSERT INTO {S}.global_position (last_sequence_id) VALUES (0);";

/* The stream's advisory lock, taken first in each append's transaction. */
#define RAW_LOCK_SQL \
  "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1::text, 0))"

/* The rest of the append in one statement: version lookup and check,
 * idempotency lookup, sequence ids from the global_position row (its row
 * lock held until COMMIT: appends commit in sequence-id order), the
 * multi-row insert and the NOTIFY. */
#define RAW_APPEND_SQL \
  "WITH input AS (" \
  "  SELECT * FROM unnest($3::text[], $4::text[], $5::bytea[], $6::text[])" \
  "    WITH ORDINALITY AS t (idempotency_key, event_type, data, metadata, ord)" \
  "), head AS (" \
  "  SELECT coalesce(max(version), 0) AS version, clock_timestamp() AS now," \
  "         ($2::int8 < 0 OR $2::int8 = coalesce(max(version), 0)) AS accepted" \
  "  FROM {S}.events WHERE stream_id = $1::text" \
  "), fresh AS (" \
  "  SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n FROM input i, head h" \
  "  WHERE h.accepted AND (i.idempotency_key IS NULL OR NOT EXISTS (" \
  "    SELECT FROM {S}.events e" \
  "    WHERE e.stream_id = $1::text AND e.idempotency_key = i.idempotency_key))" \
  "), counted AS (" \
  "  SELECT count(*) AS n FROM fresh" \
  "), pos AS (" \
  "  UPDATE {S}.global_position SET last_sequence_id = last_sequence_id + c.n" \
  "  FROM counted c WHERE c.n > 0" \
  "  RETURNING last_sequence_id" \
  "), inserted AS (" \
  "  INSERT INTO {S}.events (sequence_id, stream_id, version, idempotency_key, event_type," \
  "                          recorded_at, data, metadata)" \
  "  SELECT p.last_sequence_id - c.n + f.n, $1::text, h.version + f.n, f.idempotency_key," \
  "         f.event_type, h.now, f.data, f.metadata" \
  "  FROM fresh f, pos p, counted c, head h" \
  ")" \
  " SELECT h.version, h.accepted, c.n, p.last_sequence_id," \
  "  CASE WHEN p.last_sequence_id IS NOT NULL" \
  "       THEN pg_catalog.pg_notify($7::text, p.last_sequence_id::text) END" \
  " FROM head h CROSS JOIN counted c LEFT JOIN pos p ON TRUE"

#define RAW_READ_SQL \
  "SELECT sequence_id, version, idempotency_key, event_type, recorded_at, data, metadata" \
  " FROM {S}.events WHERE stream_id = $1::text AND version > $2::int8" \
  " ORDER BY version LIMIT $3::int8"

/* Prepared statement names. */
#define RAW_LOCK   "lock"
#define RAW_APPEND "append"
#define RAW_READ   "read"

/* Type OIDs (pg_type.h) of the binary array parameters. */
#define TEXTOID  25
#define BYTEAOID 17

/* One connection with the statements prepared on one schema. */
typedef struct
{
  PGconn *conn;
  char   *schema;
  char   *channel;   /* "<schema>_events", as the backend's */
} Raw;

static char *
in_schema (const char *sql,
           const char *schema)
{
  GString *s = g_string_new (sql);

  g_string_replace (s, "{S}", schema, 0);
  return g_string_free (s, FALSE);
}

static void
raw_check (PGconn         *conn,
           PGresult       *result,
           ExecStatusType  expected,
           const char     *what)
{
  if (PQresultStatus (result) != expected)
    g_error ("%s: %s", what, result != NULL ? PQresultErrorMessage (result)
                                            : PQerrorMessage (conn));
}

static void
raw_prepare (Raw        *raw,
             const char *name,
             const char *sql)
{
  g_autofree char *text = in_schema (sql, raw->schema);
  PGresult *result = PQprepare (raw->conn, name, text, 0, NULL);

  raw_check (raw->conn, result, PGRES_COMMAND_OK, text);
  PQclear (result);
}

/* Connects, creates the tables in @schema when @create, prepares the
 * statements. */
static Raw *
raw_open (const char *schema,
          gboolean    create)
{
  Raw *raw = g_new0 (Raw, 1);

  raw->conn = PQconnectdb (conninfo);
  if (PQstatus (raw->conn) != CONNECTION_OK)
    g_error ("connecting: %s", PQerrorMessage (raw->conn));
  raw->schema = g_strdup (schema);
  raw->channel = g_strconcat (schema, "_events", NULL);
  if (create)
    {
      g_autofree char *ddl = in_schema (raw_ddl, schema);
      PGresult *result = PQexec (raw->conn, ddl);

      raw_check (raw->conn, result, PGRES_COMMAND_OK, "creating the tables");
      PQclear (result);
    }
  raw_prepare (raw, RAW_LOCK, RAW_LOCK_SQL);
  raw_prepare (raw, RAW_APPEND, RAW_APPEND_SQL);
  raw_prepare (raw, RAW_READ, RAW_READ_SQL);
  return raw;
}

static void
raw_close (Raw *raw)
{
  PQfinish (raw->conn);
  g_free (raw->schema);
  g_free (raw->channel);
  g_free (raw);
}

static gint64
get_int8 (const PGresult *result,
          int             row_index,
          int             column)
{
  guint64 be;

  memcpy (&be, PQgetvalue (result, row_index, column), sizeof be);
  return (gint64) GUINT64_FROM_BE (be);
}

/* A one-dimensional array in PostgreSQL's binary format (array_send):
 * dimensions, has-nulls flag, element type, length, lower bound, then
 * each element's length (-1: NULL) and bytes. */
static GByteArray *
array_new (guint32  element_type,
           guint32  n_elements,
           gboolean has_nulls)
{
  GByteArray *array = g_byte_array_new ();
  guint32 header[5] = {
    GUINT32_TO_BE (1), GUINT32_TO_BE (has_nulls), GUINT32_TO_BE (element_type),
    GUINT32_TO_BE (n_elements), GUINT32_TO_BE (1),
  };

  g_byte_array_append (array, (const guint8 *) header, sizeof header);
  return array;
}

static void
array_add (GByteArray *array,
           const void *data,
           gint32      length)
{
  guint32 be = GUINT32_TO_BE ((guint32) length);

  g_byte_array_append (array, (const guint8 *) &be, sizeof be);
  if (length > 0)
    g_byte_array_append (array, data, length);
}

/* Sends the statements of one pipeline and a sync; returns the result of
 * the last statement (the others must succeed). */
static PGresult *
raw_pipeline (Raw                *raw,
              guint               n,
              const char * const *names,
              const int          *n_params,
              const char * const *values[],
              const int          *lengths[],
              const int          *formats[])
{
  PGresult *result, *last = NULL;
  guint i;

  if (!PQenterPipelineMode (raw->conn))
    g_error ("pipeline: %s", PQerrorMessage (raw->conn));
  for (i = 0; i < n; i++)
    {
      gboolean sent = names[i] != NULL
        ? PQsendQueryPrepared (raw->conn, names[i], n_params[i], values[i], lengths[i],
                               formats[i], 0)
        : PQsendQueryParams (raw->conn, values[i][0], 0, NULL, NULL, NULL, NULL, 0);

      if (!sent)
        g_error ("sending: %s", PQerrorMessage (raw->conn));
    }
  if (!PQpipelineSync (raw->conn))
    g_error ("sync: %s", PQerrorMessage (raw->conn));

  for (i = 0; i < n; i++)
    {
      result = PQgetResult (raw->conn);
      if (PQresultStatus (result) != PGRES_COMMAND_OK &&
          PQresultStatus (result) != PGRES_TUPLES_OK)
        g_error ("%s: %s", names[i] != NULL ? names[i] : values[i][0],
                 PQresultErrorMessage (result));
      g_assert_null (PQgetResult (raw->conn));
      PQclear (last);
      last = result;
    }
  result = PQgetResult (raw->conn);
  raw_check (raw->conn, result, PGRES_PIPELINE_SYNC, "sync");
  PQclear (result);
  if (!PQexitPipelineMode (raw->conn))
    g_error ("pipeline: %s", PQerrorMessage (raw->conn));
  return last;
}

/* One append of @n events (@values) to @stream_id, as the backend does
 * it: one transaction in two round trips (pipelines), BEGIN and the
 * stream's lock, then the append statement and COMMIT. */
static void
raw_append (Raw          *raw,
            const char   *stream_id,
            const Values *values,
            guint         n)
{
  g_autoptr(GByteArray) keys = array_new (TEXTOID, n, FALSE);
  g_autoptr(GByteArray) types = array_new (TEXTOID, n, FALSE);
  g_autoptr(GByteArray) data = array_new (BYTEAOID, n, FALSE);
  g_autoptr(GByteArray) metadata = array_new (TEXTOID, n, TRUE);
  g_autofree char *lock_key = g_strdup_printf ("es-glib stream %s.%s", raw->schema, stream_id);
  const char *begin_sql[] = { "BEGIN" }, *commit_sql[] = { "COMMIT" };
  const char *lock_values[] = { lock_key };
  const char *append_values[] = {
    stream_id, "-1", NULL, NULL, NULL, NULL, raw->channel,
  };
  int append_lengths[7] = { 0, }, append_formats[] = { 0, 0, 1, 1, 1, 1, 0 };
  const char *names_1[] = { NULL, RAW_LOCK }, *names_2[] = { RAW_APPEND, NULL };
  const int n_params_1[] = { 0, 1 }, n_params_2[] = { 7, 0 };
  const char * const *values_1[] = { begin_sql, lock_values };
  const char * const *values_2[] = { append_values, commit_sql };
  const int *lengths_1[] = { NULL, NULL }, *lengths_2[] = { append_lengths, NULL };
  const int *formats_1[] = { NULL, NULL }, *formats_2[] = { append_formats, NULL };
  PGresult *result;
  guint i;

  for (i = 0; i < n; i++)
    {
      array_add (keys, values[i].key, strlen (values[i].key));
      array_add (types, values[i].type, strlen (values[i].type));
      array_add (data, values[i].data, values[i].data_len);
      array_add (metadata, NULL, -1);
    }
  append_values[2] = (const char *) keys->data, append_lengths[2] = keys->len;
  append_values[3] = (const char *) types->data, append_lengths[3] = types->len;
  append_values[4] = (const char *) data->data, append_lengths[4] = data->len;
  append_values[5] = (const char *) metadata->data, append_lengths[5] = metadata->len;

  PQclear (raw_pipeline (raw, 2, names_1, n_params_1, values_1, lengths_1, formats_1));
  /* The result of the COMMIT is the last; the append's was checked. */
  result = raw_pipeline (raw, 2, names_2, n_params_2, values_2, lengths_2, formats_2);
  PQclear (result);
}

/* The plain equivalent of es_write_batched(). */
static double
raw_write_batched (Raw        *raw,
                   const char *stream_id,
                   guint       first,
                   guint       count,
                   guint       batch)
{
  Values *values = g_new (Values, batch);
  double elapsed = 0;
  guint done = 0;

  while (done < count)
    {
      guint n = MIN (batch, count - done);
      double start;
      guint i;

      for (i = 0; i < n; i++)
        values_for (&values[i], first + done + i);
      start = now ();
      raw_append (raw, stream_id, values, n);
      elapsed += now () - start;
      done += n;
    }

  g_free (values);
  return elapsed;
}

/* Pages through @stream_id as the enumerator does, with binary results,
 * touching what es_read_all() touches; returns the rows read. */
static guint
raw_read_all (Raw        *raw,
              const char *stream_id)
{
  char after_text[24], limit_text[16];
  const char *params[3] = { stream_id, after_text, limit_text };
  gint64 after = 0;
  guint n = 0;

  g_snprintf (limit_text, sizeof limit_text, "%u", PAGE);
  for (;;)
    {
      PGresult *result;
      int rows, r;

      g_snprintf (after_text, sizeof after_text, "%" G_GINT64_FORMAT, after);
      result = PQexecPrepared (raw->conn, RAW_READ, 3, params, NULL, NULL, 1);
      raw_check (raw->conn, result, PGRES_TUPLES_OK, RAW_READ_SQL);
      rows = PQntuples (result);
      for (r = 0; r < rows; r++)
        {
          const char *key = PQgetisnull (result, r, 2) ? NULL : PQgetvalue (result, r, 2);
          const char *metadata = PQgetisnull (result, r, 6) ? NULL : PQgetvalue (result, r, 6);

          after = get_int8 (result, r, 1);
          sink += after +
                  get_int8 (result, r, 0) +
                  stream_id[0] +
                  PQgetvalue (result, r, 3)[0] +
                  PQgetlength (result, r, 5) +
                  (key != NULL ? key[0] : 0) +
                  (metadata != NULL ? metadata[0] : 0) +
                  get_int8 (result, r, 4);
        }
      PQclear (result);
      n += rows;
      if (rows < PAGE)
        return n;
    }
}

/* ---------------------------------------------------------------------- *
 * The table                                                               *
 * ---------------------------------------------------------------------- */

static void
row (const char *name,
     double      es,
     double      raw,
     const char *unit)
{
  if (raw > 0)
    g_print ("| %-48s | %10.0f | %10.0f | %5.2f | %-12s |\n", name, es, raw, es / raw, unit);
  else
    g_print ("| %-48s | %10.0f | %10s | %5s | %-12s |\n", name, es, "", "", unit);
}

static void
row_ratio (const char *name,
           double      es,
           double      other,
           const char *against,
           const char *unit)
{
  g_print ("| %-48s | %10.0f | %10s | %5.1f | %-12s |\n", name, es, against, es / other, unit);
}

static void
row_ms (const char *name,
        double      ms)
{
  g_print ("| %-48s | %10.2f | %10s | %5s | %-12s |\n", name, ms, "", "", "ms");
}

/* ---------------------------------------------------------------------- *
 * The benchmarks                                                          *
 * ---------------------------------------------------------------------- */

/* Writes @count events to stream "bench" in writes of @batch, es-glib and
 * plain, each in fresh schemas; returns events/s. With @out_es_schema and
 * @out_raw_schema, the last run's schemas are kept (for the read) and
 * returned; the others are dropped. */
static void
bench_write (guint    count,
             guint    batch,
             char   **out_es_schema,
             char   **out_raw_schema,
             double  *out_es,
             double  *out_raw)
{
  double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      g_autofree char *es_schema = new_schema ("es");
      g_autofree char *raw_schema = new_schema ("raw");
      EsStreamFactory *factory;
      EsStream *stream;
      Raw *plain;
      guint side;

      /* Each side goes first in every other run: neither always meets
       * the server's WAL and caches in the state the other left. */
      for (side = 0; side < 2; side++)
        {
          if ((side + r) % 2 == 0)
            {
              factory = open_factory (es_schema);
              stream = open_stream (factory, "bench");
              es[r] = count / es_write_batched (stream, 0, count, batch);
              g_object_unref (stream);
              close_factory (factory);
            }
          else
            {
              plain = raw_open (raw_schema, TRUE);
              raw[r] = count / raw_write_batched (plain, "bench", 0, count, batch);
              raw_close (plain);
            }
        }

      if (out_es_schema != NULL && r == n_runs - 1)
        {
          *out_es_schema = g_steal_pointer (&es_schema);
          *out_raw_schema = g_steal_pointer (&raw_schema);
        }
      else
        {
          drop_schema (es_schema);
          drop_schema (raw_schema);
        }
    }

  *out_es = median (es, n_runs);
  *out_raw = median (raw, n_runs);
  g_free (es);
  g_free (raw);
}

/* Reads the @count events of stream "bench" of both schemas. */
static void
bench_read (const char *es_schema,
            const char *raw_schema,
            guint       count,
            double     *out_es,
            double     *out_raw)
{
  double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
  EsStreamFactory *factory = open_factory (es_schema);
  EsStream *stream = open_stream (factory, "bench");
  Raw *plain = raw_open (raw_schema, FALSE);
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      guint side;

      for (side = 0; side < 2; side++)
        {
          double start = now ();
          guint n;

          if ((side + r) % 2 == 0)
            {
              n = es_read_all (stream, NULL);
              es[r] = n / (now () - start);
            }
          else
            {
              n = raw_read_all (plain, "bench");
              raw[r] = n / (now () - start);
            }
          g_assert_cmpuint (n, ==, count);
        }
    }

  raw_close (plain);
  g_object_unref (stream);
  close_factory (factory);
  *out_es = median (es, n_runs);
  *out_raw = median (raw, n_runs);
  g_free (es);
  g_free (raw);
}

/* es_write_concurrent() in a fresh schema. */
static double
bench_concurrent (guint count)
{
  double *es = g_new (double, n_runs);
  double result;
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      g_autofree char *schema = new_schema ("conc");
      EsStreamFactory *factory = open_factory (schema);
      EsStream *stream = open_stream (factory, "bench");

      es[r] = es_write_concurrent (stream, count);
      g_object_unref (stream);
      close_factory (factory);
      drop_schema (schema);
    }

  result = median (es, n_runs);
  g_free (es);
  return result;
}

/* Watch latency: see the top of the file. */
typedef struct
{
  EsStream    *stream;       /* of factory A */
  GAsyncQueue *go;           /* 1: write one event; 2: stop */
  gint64      *returned;     /* real time each write returned, by version */
  gint64      *signalled;    /* real time each ::event was emitted, by version */
  guint        n_written;    /* atomic */
  guint        n_signalled;
} Latency;

static gpointer
latency_writer (gpointer data)
{
  Latency *l = data;

  while (GPOINTER_TO_INT (g_async_queue_pop (l->go)) == 1)
    {
      g_autoptr(EsCandidateEvent) event = candidate_for (g_atomic_int_get (&l->n_written));
      g_autoptr(GError) error = NULL;
      gint64 version = es_stream_write (l->stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      gint64 returned = g_get_real_time ();

      g_assert_no_error (error);
      l->returned[version - 1] = returned;
      g_atomic_int_inc (&l->n_written);
    }
  return NULL;
}

static void
latency_on_event (EsWatch       *watch,
                  EsStoredEvent *event,
                  Latency       *l)
{
  l->signalled[es_stored_event_get_version (event) - 1] = g_get_real_time ();
  l->n_signalled++;
}

static void
latency_on_error (EsWatch      *watch,
                  const GError *error,
                  Latency      *l)
{
  g_error ("the watch failed: %s", error->message);
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

/* Wakes the main context once a second, so waits can time out. */
static gboolean
tick (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

static void
bench_watch (guint   count,
             double *out_median_ms,
             double *out_p99_ms)
{
  g_autofree char *schema = new_schema ("watch");
  EsStreamFactory *writer_factory = open_factory (schema);
  EsStreamFactory *watcher_factory = open_factory (schema);
  EsStream *watched = open_stream (watcher_factory, "ticks");
  g_autoptr(EsWatch) watch = NULL;
  g_autofree gint64 *latencies = g_new (gint64, count);
  Latency l = { 0, };
  GThread *thread;
  guint ticker, i;

  l.stream = open_stream (writer_factory, "ticks");
  l.go = g_async_queue_new ();
  l.returned = g_new0 (gint64, count);
  l.signalled = g_new0 (gint64, count);

  watch = es_stream_watch (watched, -1);
  g_signal_connect (watch, "event", G_CALLBACK (latency_on_event), &l);
  g_signal_connect (watch, "error", G_CALLBACK (latency_on_error), &l);
  while (!es_watch_get_caught_up (watch))
    g_main_context_iteration (NULL, TRUE);

  ticker = g_timeout_add_seconds (1, tick, NULL);
  thread = g_thread_new ("writer", latency_writer, &l);
  for (i = 0; i < count; i++)
    {
      gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

      /* The next write only once this one arrived and returned: no
       * queueing is measured. */
      g_async_queue_push (l.go, GINT_TO_POINTER (1));
      while (l.n_signalled <= i && g_get_monotonic_time () < deadline)
        g_main_context_iteration (NULL, TRUE);
      if (l.n_signalled <= i)
        g_error ("event %u did not reach the watch of the other factory in 10 s", i + 1);
      while ((guint) g_atomic_int_get (&l.n_written) <= i)
        g_usleep (50);
    }
  g_async_queue_push (l.go, GINT_TO_POINTER (2));
  g_thread_join (thread);
  g_async_queue_unref (l.go);
  g_source_remove (ticker);

  for (i = 0; i < count; i++)
    latencies[i] = l.signalled[i] - l.returned[i];
  qsort (latencies, count, sizeof (gint64), (int (*) (const void *, const void *)) compare_int64);
  *out_median_ms = latencies[count / 2] / 1000.0;
  *out_p99_ms = latencies[MIN (count - 1, count * 99 / 100)] / 1000.0;

  es_watch_stop (watch);
  g_object_unref (watched);
  g_object_unref (l.stream);
  close_factory (watcher_factory);
  close_factory (writer_factory);
  drop_schema (schema);
  g_free (l.returned);
  g_free (l.signalled);
}

static char *
admin_show (const char *setting)
{
  g_autofree char *sql = g_strdup_printf ("SHOW %s", setting);
  PGresult *result = PQexec (admin, sql);
  char *value;

  raw_check (admin, result, PGRES_TUPLES_OK, sql);
  value = g_strdup (PQgetvalue (result, 0, 0));
  PQclear (result);
  return value;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *es_schema = NULL;
  g_autofree char *raw_schema = NULL;
  g_autofree char *fsync = NULL;
  g_autofree char *synchronous_commit = NULL;
  g_autofree char *seq_name = NULL;
  g_autofree char *conc_name = NULL;
  g_autofree char *median_name = NULL;
  g_autofree char *p99_name = NULL;
  int events = n_events, runs = n_runs, watch_events = n_watch;
  double es, raw, seq, watch_median, watch_p99;
  guint seq_count, conc_count;
  const GOptionEntry entries[] = {
    { "conninfo", 'c', 0, G_OPTION_ARG_STRING, &conninfo, "libpq connection string (default: $ES_TEST_PG_CONNINFO)", "S" },
    { "events", 'n', 0, G_OPTION_ARG_INT, &events, "Events per benchmark (default 100000)", "N" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &runs, "Runs per figure, the median is shown (default 3)", "R" },
    { "watch-events", 'w', 0, G_OPTION_ARG_INT, &watch_events, "Events of the watch latency run (default 500)", "W" },
    G_OPTION_ENTRY_NULL
  };

  context = g_option_context_new ("- es-glib's PostgreSQL backend against plain libpq");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (events < 1000 || runs < 1 || watch_events < 10)
    {
      g_printerr ("--events must be at least 1000, --runs at least 1, --watch-events at least 10\n");
      return 2;
    }
  n_events = events;
  n_runs = runs;
  n_watch = watch_events;
  if (conninfo == NULL)
    conninfo = g_strdup (g_getenv ("ES_TEST_PG_CONNINFO"));
  if (conninfo == NULL)
    {
      g_printerr ("No server: pass --conninfo, or run it under build-aux/pg-test-server run%s%s\n",
                  g_getenv ("ES_TEST_PG_UNAVAILABLE") != NULL ? ": " : "",
                  g_getenv ("ES_TEST_PG_UNAVAILABLE") != NULL
                    ? g_getenv ("ES_TEST_PG_UNAVAILABLE") : "");
      return 2;
    }

  admin = PQconnectdb (conninfo);
  if (PQstatus (admin) != CONNECTION_OK)
    {
      g_printerr ("%s", PQerrorMessage (admin));
      return 1;
    }
  admin_exec ("SET client_min_messages = warning");   /* no DROP ... CASCADE notices */
  fsync = admin_show ("fsync");
  synchronous_commit = admin_show ("synchronous_commit");

  seq_count = CLAMP (n_events / 50, 200, 2000);
  conc_count = MAX (n_events / 10, 1000);

  g_print ("es-pg-bench: %u events, median of %u runs, PostgreSQL %s (fsync %s, "
           "synchronous_commit %s), libpq %d\n\n",
           n_events, n_runs, PQparameterStatus (admin, "server_version"), fsync,
           synchronous_commit, PQlibVersion ());
  g_print ("| %-48s | %10s | %10s | %5s | %-12s |\n", "benchmark", "es-glib", "libpq",
           "ratio", "unit");
  g_print ("|%s|%s|%s|%s|%s|\n", "--------------------------------------------------",
           "-----------:", "-----------:", "------:", "--------------");

  bench_write (n_events, BATCH, &es_schema, &raw_schema, &es, &raw);
  row ("batched write (10,000 per write)", es, raw, "events/s");

  bench_read (es_schema, raw_schema, n_events, &es, &raw);
  row ("read all, EsEventEnumerator, every field", es, raw, "events/s");
  drop_schema (es_schema);
  drop_schema (raw_schema);

  seq_name = g_strdup_printf ("single-event writes, sequential (%u)", seq_count);
  bench_write (seq_count, 1, NULL, NULL, &seq, &raw);
  row (seq_name, seq, raw, "events/s");

  conc_name = g_strdup_printf ("single-event writes, %d in flight (%u)", IN_FLIGHT, conc_count);
  row_ratio (conc_name, bench_concurrent (conc_count), seq, "x sequent.", "events/s");

  median_name = g_strdup_printf ("watch via NOTIFY, commit->signal, median (%u)", n_watch);
  p99_name = g_strdup_printf ("watch via NOTIFY, commit->signal, p99 (%u)", n_watch);
  bench_watch (n_watch, &watch_median, &watch_p99);
  row_ms (median_name, watch_median);
  row_ms (p99_name, watch_p99);

  PQfinish (admin);
  g_free (conninfo);
  return 0;
}
