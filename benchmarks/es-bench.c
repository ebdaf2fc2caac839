/* es-bench.c: es-glib's SQLite backend against raw SQLite, in one table.
 *
 * Usage: es-bench [--events N] [--runs R] [--dir DIR] [--batch-sizes]
 *                 [--only write|read|single|full|all|rebuild] [--keep]
 *
 * Every figure is the median of R runs (default 3). The raw SQLite side
 * uses sqlite3 directly, on its own file, with the schema es-glib creates
 * (copied below from es-glib/sqlite/es-sqlite-schema.c), the same pragmas
 * (WAL, synchronous NORMAL or FULL, foreign_keys OFF, an 8 MiB page cache), the
 * same values and prepared statements. What es-glib does on top (the
 * writer thread and its queue, the expected-version lookup, idempotency
 * keys, one GObject per event read, paging) is what the ratio measures.
 *
 * --batch-sizes prints CSV instead (batch size, es-glib events/s, raw
 * events/s) for benchmarks/plot-batch-sizes.py.
 *
 * --read-only-rss PATH is the child mode of the RSS measurement: a fresh
 * process opens PATH, notes VmRSS, reads stream "bench" to the end
 * (dropping each event after touching it, as an application would) and
 * prints VmRSS before and VmHWM after, in KiB. VmHWM cannot be reset, so a
 * fresh process is the honest way to see the read's own peak: its high
 * water mark before the read is the start-up's, below the baseline's
 * neighbourhood, and everything above the baseline is the read's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "es-bench-common.h"

/* Copied from es-glib/sqlite/es-sqlite-schema.c: schema_v1, schema_v2
 * (without its data migration) and schema_v3, the current schema (3).
 * What an append maintains in it, the raw side maintains too: the
 * events_timestamp index, the flags column, and the stream's row of the
 * streams table (read, then rewritten, in the append's transaction). */
static const char raw_schema[] =
  /* schema_v1 */
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
  /* schema_v2 */
  "ALTER TABLE events ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
  "CREATE TABLE streams ("
  "  stream_id       TEXT    NOT NULL PRIMARY KEY,"
  "  version         INTEGER NOT NULL,"
  "  event_count     INTEGER NOT NULL,"
  "  first_version   INTEGER NOT NULL,"
  "  first_timestamp INTEGER NOT NULL,"
  "  last_timestamp  INTEGER NOT NULL,"
  "  state           INTEGER NOT NULL DEFAULT 0,"
  "  max_age         INTEGER NOT NULL DEFAULT 0,"
  "  max_count       INTEGER NOT NULL DEFAULT 0"
  ") WITHOUT ROWID;"
  "CREATE INDEX streams_policy ON streams (stream_id)"
  "  WHERE max_age > 0 OR max_count > 0;"
  "CREATE TABLE settings ("
  "  name            TEXT    NOT NULL PRIMARY KEY,"
  "  value           INTEGER NOT NULL"
  ") WITHOUT ROWID;"
  "CREATE INDEX events_timestamp ON events (timestamp);"
  /* schema_v3 */
  "CREATE TABLE subscriptions ("
  "  name            TEXT    NOT NULL PRIMARY KEY,"
  "  stream_id       TEXT    NOT NULL,"
  "  position        INTEGER NOT NULL,"
  "  state           BLOB,"
  "  updated         INTEGER NOT NULL"
  ") WITHOUT ROWID;";

#define BATCH        10000
#define N_STREAMS    10

static guint  n_events = 1000000;
static guint  n_runs = 3;
static char  *dir;
static guint  file_counter;
static char  *only;
static gboolean keep;

/* Whether the benchmarks named @what run (all of them without --only). */
static gboolean
wanted (const char *what)
{
  return only == NULL || g_str_equal (only, what);
}

/* ---------------------------------------------------------------------- */

static char *
new_path (const char *what)
{
  return g_strdup_printf ("%s/%s-%u.db", dir, what, file_counter++);
}

static void
remove_db (const char *path)
{
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);

  g_unlink (path);
  g_unlink (wal);
  g_unlink (shm);
}


/* Small writes: the CPU time (user + system, every thread of this
 * process) each kind of write took, median per event, in µs. On a loaded
 * machine, wall-clock throughput depends on the other processes; this
 * much less. */
static double cpu_seq_es, cpu_seq_raw, cpu_conc_es;

static double
cpu_seconds (void)
{
  struct rusage usage;

  getrusage (RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
         usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void
row_cpu (const char *name,
         double      es_usec,
         double      raw_usec)
{
  if (raw_usec > 0)
    g_print ("| %-46s | %12.1f | %12.1f | %5.2f | %-9s |\n", name, es_usec, raw_usec,
             raw_usec / es_usec, "CPU us/ev");
  else
    g_print ("| %-46s | %12.1f | %12s | %5s | %-9s |\n", name, es_usec, "", "", "CPU us/ev");
}

/* ---------------------------------------------------------------------- *
 * es-glib side                                                            *
 * ---------------------------------------------------------------------- */

static EsStreamFactory *
open_factory (const char   *path,
              EsDurability  durability)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                            "path", path,
                            "durability", durability,
                            NULL);
  g_assert_no_error (error);
  return factory;
}


/* ---------------------------------------------------------------------- *
 * Raw SQLite side                                                         *
 * ---------------------------------------------------------------------- */

static void
raw_check (sqlite3 *db,
           int      rc,
           int      expected)
{
  if (rc != expected)
    g_error ("SQLite: %s", sqlite3_errmsg (db));
}

static void
raw_exec (sqlite3    *db,
          const char *sql)
{
  raw_check (db, sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_OK);
}

static sqlite3_stmt *
raw_prepare (sqlite3    *db,
             const char *sql)
{
  sqlite3_stmt *stmt = NULL;

  raw_check (db, sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL),
             SQLITE_OK);
  return stmt;
}

static sqlite3 *
raw_open (const char   *path,
          gboolean      create,
          EsDurability  durability)
{
  g_autofree char *pragmas = NULL;
  sqlite3 *db = NULL;

  raw_check (db, sqlite3_open_v2 (path, &db,
                                  SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                  SQLITE_OPEN_NOMUTEX, NULL),
             SQLITE_OK);
  /* es-sqlite-schema.c sets auto_vacuum on an empty file before its
   * schema; es-sqlite-storage.c the rest on the write connection. */
  if (create)
    raw_exec (db, "PRAGMA auto_vacuum = INCREMENTAL");
  if (create)
    raw_exec (db, raw_schema);
  pragmas = g_strdup_printf ("PRAGMA journal_mode = WAL;"
                             "PRAGMA synchronous = %s;"
                             "PRAGMA secure_delete = ON;"
                             "PRAGMA foreign_keys = OFF;"
                             "PRAGMA cache_size = -8192;",
                             durability == ES_DURABILITY_FULL ? "FULL" : "NORMAL");
  raw_exec (db, pragmas);
  return db;
}

/* The raw equivalent of es_write_batched(): per batch, one transaction
 * that reads the stream's row (its version), inserts one row per event
 * and writes the stream's row back, as an append maintains it. */
static double
raw_write_batched (sqlite3    *db,
                   const char *stream_id,
                   guint       first,
                   guint       count,
                   guint       batch)
{
  sqlite3_stmt *begin = raw_prepare (db, "BEGIN IMMEDIATE");
  sqlite3_stmt *commit = raw_prepare (db, "COMMIT");
  sqlite3_stmt *read_stream = raw_prepare (db, "SELECT version, event_count, first_version,"
                                           " first_timestamp FROM streams WHERE stream_id = ?");
  sqlite3_stmt *write_stream = raw_prepare (db, "INSERT INTO streams (stream_id, version,"
                                            " event_count, first_version, first_timestamp,"
                                            " last_timestamp) VALUES (?, ?, ?, ?, ?, ?)"
                                            " ON CONFLICT (stream_id) DO UPDATE SET"
                                            " version = excluded.version,"
                                            " event_count = excluded.event_count,"
                                            " last_timestamp = excluded.last_timestamp");
  sqlite3_stmt *insert = raw_prepare (db, "INSERT INTO events (stream_id, version, "
                                      "idempotency_key, event_type, timestamp, data, metadata)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?)");
  Values *values = g_new (Values, batch);
  double elapsed = 0;
  guint done = 0;

  while (done < count)
    {
      guint n = MIN (batch, count - done);
      gint64 version = 0, event_count = 0, first_version = 0, first_timestamp = 0;
      gint64 timestamp;
      int rc;
      double start;
      guint i;

      for (i = 0; i < n; i++)
        values_for (&values[i], first + done + i);

      start = now ();
      raw_check (db, sqlite3_step (begin), SQLITE_DONE);
      sqlite3_reset (begin);
      timestamp = g_get_real_time ();
      sqlite3_bind_text (read_stream, 1, stream_id, -1, SQLITE_STATIC);
      rc = sqlite3_step (read_stream);
      if (rc == SQLITE_ROW)
        {
          version = sqlite3_column_int64 (read_stream, 0);
          event_count = sqlite3_column_int64 (read_stream, 1);
          first_version = sqlite3_column_int64 (read_stream, 2);
          first_timestamp = sqlite3_column_int64 (read_stream, 3);
        }
      else
        raw_check (db, rc, SQLITE_DONE);
      sqlite3_reset (read_stream);
      if (event_count == 0)
        {
          first_version = version + 1;
          first_timestamp = timestamp;
        }
      for (i = 0; i < n; i++)
        {
          sqlite3_bind_text (insert, 1, stream_id, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (insert, 2, ++version);
          sqlite3_bind_text (insert, 3, values[i].key, -1, SQLITE_STATIC);
          sqlite3_bind_text (insert, 4, values[i].type, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (insert, 5, timestamp);
          sqlite3_bind_blob (insert, 6, values[i].data, values[i].data_len, SQLITE_STATIC);
          sqlite3_bind_text (insert, 7, with_metadata ? values[i].metadata : NULL, -1,
                             SQLITE_STATIC);
          raw_check (db, sqlite3_step (insert), SQLITE_DONE);
          sqlite3_reset (insert);
        }
      sqlite3_bind_text (write_stream, 1, stream_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (write_stream, 2, version);
      sqlite3_bind_int64 (write_stream, 3, event_count + n);
      sqlite3_bind_int64 (write_stream, 4, first_version);
      sqlite3_bind_int64 (write_stream, 5, first_timestamp);
      sqlite3_bind_int64 (write_stream, 6, timestamp);
      raw_check (db, sqlite3_step (write_stream), SQLITE_DONE);
      sqlite3_reset (write_stream);
      raw_check (db, sqlite3_step (commit), SQLITE_DONE);
      sqlite3_reset (commit);
      elapsed += now () - start;
      done += n;
    }

  g_free (values);
  sqlite3_finalize (begin);
  sqlite3_finalize (commit);
  sqlite3_finalize (read_stream);
  sqlite3_finalize (write_stream);
  sqlite3_finalize (insert);
  return elapsed;
}

/* Steps @sql (bound to @stream_id and @value when given) to the end,
 * touching what touch_event() touches; returns the rows read. */
static guint
raw_read (sqlite3    *db,
          const char *sql,
          const char *stream_id,
          const char *value)
{
  sqlite3_stmt *stmt = raw_prepare (db, sql);
  int index = 1;
  guint n = 0;

  if (stream_id != NULL)
    sqlite3_bind_text (stmt, index++, stream_id, -1, SQLITE_STATIC);
  if (value != NULL)
    sqlite3_bind_text (stmt, index++, value, -1, SQLITE_STATIC);

  while (sqlite3_step (stmt) == SQLITE_ROW)
    {
      const unsigned char *key = sqlite3_column_text (stmt, 2);
      const unsigned char *metadata = sqlite3_column_text (stmt, 6);
      const unsigned char *stream = stream_id != NULL ? (const unsigned char *) stream_id
                                                      : sqlite3_column_text (stmt, 7);

      sqlite3_column_blob (stmt, 5);
      sink += sqlite3_column_int64 (stmt, 1) +
              sqlite3_column_int64 (stmt, 0) +
              stream[0] +
              sqlite3_column_text (stmt, 3)[0] +
              sqlite3_column_bytes (stmt, 5) +
              (key != NULL ? key[0] : 0) +
              (metadata != NULL ? metadata[0] : 0) +
              sqlite3_column_int64 (stmt, 4);
      n++;
    }
  sqlite3_finalize (stmt);
  return n;
}

#define RAW_SELECT \
  "SELECT sequence_id, version, idempotency_key, event_type, timestamp, data, metadata"
#define RAW_READ_STREAM RAW_SELECT " FROM events WHERE stream_id = ? AND version > 0 ORDER BY version"
#define RAW_READ_ALL RAW_SELECT ", stream_id FROM events WHERE sequence_id > 0 ORDER BY sequence_id"
/* The same on es-glib's file, whose events table also holds markers
 * (flags 2 and up: tombstones, the position row). */
#define RAW_READ_STREAM_ES RAW_SELECT " FROM events WHERE stream_id = ? AND version > 0" \
  " AND flags < 2 ORDER BY version"
#define RAW_READ_ALL_ES RAW_SELECT ", stream_id FROM events WHERE sequence_id > 0" \
  " AND flags < 2 ORDER BY sequence_id"
#define RAW_READ_TYPE RAW_SELECT ", stream_id FROM events WHERE sequence_id > 0" \
  " AND event_type = ? ORDER BY sequence_id"

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
    g_print ("| %-46s | %12.0f | %12.0f | %5.2f | %-9s |\n", name, es, raw, es / raw, unit);
  else
    g_print ("| %-46s | %12.0f | %12s | %5s | %-9s |\n", name, es, "", "", unit);
}

static void
row_ratio (const char *name,
           double      es,
           double      other,
           const char *against,
           const char *unit)
{
  g_print ("| %-46s | %12.0f | %12s | %5.1f | %-9s |\n", name, es, against, es / other, unit);
}

static void
row_ms (const char *name,
        double      seconds)
{
  g_print ("| %-46s | %12.3f | %12s | %5s | %-9s |\n", name, seconds * 1000, "", "", "ms");
}

/* Batched writes of n_events, es-glib and raw; leaves the last es-glib
 * database in *out_path (stream "bench"). Returns events/s. */
static void
bench_batched (EsDurability  durability,
               guint         count,
               char        **out_path,
               double       *out_es,
               double       *out_raw)
{
  double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      g_autofree char *path = new_path ("es");
      g_autofree char *raw_path = new_path ("raw");
      EsStreamFactory *factory = open_factory (path, durability);
      EsStream *stream = open_stream (factory, "bench");
      sqlite3 *db;

      sync ();
      es[r] = count / es_write_batched (stream, 0, count, BATCH);
      g_object_unref (stream);
      close_factory (factory);

      db = raw_open (raw_path, TRUE, durability);
      sync ();
      raw[r] = count / raw_write_batched (db, "bench", 0, count, BATCH);
      sqlite3_close (db);
      remove_db (raw_path);

      if (out_path != NULL && r == n_runs - 1)
        *out_path = g_steal_pointer (&path);
      else
        remove_db (path);
    }

  *out_es = median (es, n_runs);
  *out_raw = median (raw, n_runs);
  g_free (es);
  g_free (raw);
}

/* One event per es_stream_write(), each awaited; raw: one transaction per
 * event. */
static void
bench_sequential (EsDurability  durability,
                  guint         count,
                  double       *out_es,
                  double       *out_raw)
{
  double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
  double *cpu_es = g_new (double, n_runs), *cpu_raw = g_new (double, n_runs);
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      g_autofree char *path = new_path ("seq");
      g_autofree char *raw_path = new_path ("seqraw");
      EsStreamFactory *factory = open_factory (path, durability);
      EsStream *stream = open_stream (factory, "bench");
      sqlite3 *db;
      double cpu;

      sync ();
      cpu = cpu_seconds ();
      es[r] = count / es_write_batched (stream, 0, count, 1);
      cpu_es[r] = (cpu_seconds () - cpu) * 1e6 / count;
      g_object_unref (stream);
      close_factory (factory);
      remove_db (path);

      db = raw_open (raw_path, TRUE, durability);
      sync ();
      cpu = cpu_seconds ();
      raw[r] = count / raw_write_batched (db, "bench", 0, count, 1);
      cpu_raw[r] = (cpu_seconds () - cpu) * 1e6 / count;
      sqlite3_close (db);
      remove_db (raw_path);
    }

  *out_es = median (es, n_runs);
  *out_raw = median (raw, n_runs);
  cpu_seq_es = median (cpu_es, n_runs);
  cpu_seq_raw = median (cpu_raw, n_runs);
  g_free (es);
  g_free (raw);
  g_free (cpu_es);
  g_free (cpu_raw);
}

/* es_write_concurrent() in a fresh database. */
static double
bench_concurrent (EsDurability durability,
                  guint        count)
{
  double *es = g_new (double, n_runs), *cpu_es = g_new (double, n_runs);
  double result;
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      g_autofree char *path = new_path ("conc");
      EsStreamFactory *factory = open_factory (path, durability);
      EsStream *stream = open_stream (factory, "bench");
      double cpu;

      sync ();
      cpu = cpu_seconds ();
      es[r] = es_write_concurrent (stream, count);
      cpu_es[r] = (cpu_seconds () - cpu) * 1e6 / count;
      g_object_unref (stream);
      close_factory (factory);
      remove_db (path);
    }

  result = median (es, n_runs);
  cpu_conc_es = median (cpu_es, n_runs);
  g_free (es);
  g_free (cpu_es);
  return result;
}

/* Reads all of stream "bench" of @path and of @raw_path. */
static void
bench_read (const char *path,
            const char *raw_path,
            guint       count,
            double     *out_es,
            double     *out_raw)
{
  double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
  EsStreamFactory *factory = open_factory (path, ES_DURABILITY_NORMAL);
  EsStream *stream = open_stream (factory, "bench");
  sqlite3 *db = raw_open (raw_path, FALSE, ES_DURABILITY_NORMAL);
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      double start = now ();
      guint n = es_read_all (stream, NULL);

      es[r] = n / (now () - start);
      g_assert_cmpuint (n, ==, count);

      start = now ();
      n = raw_read (db, RAW_READ_STREAM, "bench", NULL);
      raw[r] = n / (now () - start);
      g_assert_cmpuint (n, ==, count);
    }

  sqlite3_close (db);
  g_object_unref (stream);
  close_factory (factory);
  *out_es = median (es, n_runs);
  *out_raw = median (raw, n_runs);
  g_free (es);
  g_free (raw);
}

/* ---------------------------------------------------------------------- *
 * EsEventCursor (issue 21)                                                *
 * ---------------------------------------------------------------------- */

/* Reads @stream to the end through a cursor, touching every field of each
 * row as touch_event() does (the data's length, the first byte of each
 * string, the numbers); returns the rows read. */
static guint
cursor_read_all (EsStream *stream)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventCursor) cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
  guint n = 0;

  g_assert_no_error (error);
  while (es_event_cursor_next (cursor, NULL, &error))
    {
      gsize size;
      const char *key = es_event_cursor_get_idempotency_key (cursor);
      const char *metadata = es_event_cursor_get_metadata (cursor);

      es_event_cursor_get_data (cursor, &size);
      sink += es_event_cursor_get_version (cursor) +
              es_event_cursor_get_sequence_id (cursor) +
              es_event_cursor_get_stream_id (cursor)[0] +
              es_event_cursor_get_event_type (cursor)[0] +
              size +
              (key != NULL ? key[0] : 0) +
              (metadata != NULL ? metadata[0] : 0) +
              es_event_cursor_get_timestamp_usec (cursor);
      n++;
    }
  g_assert_no_error (error);
  return n;
}

/* Reads @stream (of @factory's file) through a cursor and @raw_sql on
 * @db, interleaved, n_runs times; prints the row @name. */
static void
bench_cursor (const char *name,
              EsStream   *stream,
              sqlite3    *db,
              const char *same_path,
              const char *same_sql,
              const char *raw_sql,
              const char *raw_stream_id,
              guint       count)
{
  double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
  double *same = g_new (double, n_runs);
  /* Raw SQLite's own file is written by raw statements; es-glib's has
   * the same rows laid out by es-glib's writes (and the flags column).
   * The same raw query on es-glib's file, read-only, tells the two
   * apart. */
  sqlite3 *same_db = raw_open (same_path, FALSE, ES_DURABILITY_NORMAL);
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      double start = now ();
      guint n = cursor_read_all (stream);

      es[r] = n / (now () - start);
      g_assert_cmpuint (n, ==, count);

      start = now ();
      n = raw_read (db, raw_sql, raw_stream_id, NULL);
      raw[r] = n / (now () - start);
      g_assert_cmpuint (n, ==, count);

      start = now ();
      n = raw_read (same_db, same_sql, raw_stream_id, NULL);
      same[r] = n / (now () - start);
      g_assert_cmpuint (n, ==, count);
    }
  row (name, median (es, n_runs), median (raw, n_runs), "events/s");
  row ("  (the same rows read raw from es-glib's file)", median (es, n_runs),
       median (same, n_runs), "events/s");
  sqlite3_close (same_db);
  g_free (es);
  g_free (raw);
  g_free (same);
}

/* Stream "bench" of @path (es-glib) and of @raw_path (raw). */
static void
bench_cursor_stream (const char *path,
                     const char *raw_path,
                     guint       count)
{
  EsStreamFactory *factory = open_factory (path, ES_DURABILITY_NORMAL);
  EsStream *stream = open_stream (factory, "bench");
  sqlite3 *db = raw_open (raw_path, FALSE, ES_DURABILITY_NORMAL);

  bench_cursor ("read all, EsEventCursor, every field", stream, db, path, RAW_READ_STREAM_ES,
                RAW_READ_STREAM, "bench",
                count);
  sqlite3_close (db);
  g_object_unref (stream);
  close_factory (factory);
}

/* Rebuilds a counter of stream "bench" (the sum of the events' "n"s, as a
 * projection would fold them) from scratch, and from a snapshot taken at
 * the stream's end. Returns seconds. */
static void
bench_rebuild (const char *path,
               guint       count,
               double     *out_scratch,
               double     *out_snapshot)
{
  double *scratch = g_new (double, n_runs), *restore = g_new (double, n_runs);
  EsStreamFactory *factory = open_factory (path, ES_DURABILITY_NORMAL);
  g_autofree char *stream_id = g_strdup_printf ("rebuild-%u", count);
  EsStream *stream = open_stream (factory, stream_id);
  g_autoptr(GError) error = NULL;
  guint64 counter = 0;
  guint r;

  es_write_batched (stream, 0, count, BATCH);

  for (r = 0; r < n_runs; r++)
    {
      g_autoptr(EsEventEnumerator) events = NULL;
      g_autoptr(EsSnapshot) snapshot = NULL;
      g_autoptr(GBytes) state = NULL;
      EsStoredEvent *event;
      gint64 version = 0;
      double start = now ();

      counter = 0;
      events = es_stream_read (stream, 0, NULL, NULL, &error);
      g_assert_no_error (error);
      while ((event = es_event_enumerator_next (events, NULL, &error)) != NULL)
        {
          counter += strtoul ((const char *) g_bytes_get_data (es_stored_event_get_data (event),
                                                               NULL) + 5, NULL, 10);
          version = es_stored_event_get_version (event);
          g_object_unref (event);
        }
      g_assert_no_error (error);
      scratch[r] = now () - start;
      g_clear_object (&events);

      state = g_bytes_new (&counter, sizeof counter);
      es_stream_snapshot (stream, state, version, "counter", NULL, &error);
      g_assert_no_error (error);

      start = now ();
      snapshot = es_stream_load_snapshot (stream, "counter", NULL, &error);
      g_assert_no_error (error);
      memcpy (&counter, g_bytes_get_data (es_snapshot_get_state (snapshot), NULL),
              sizeof counter);
      events = es_stream_read (stream, es_snapshot_get_version (snapshot), NULL, NULL, &error);
      g_assert_no_error (error);
      while ((event = es_event_enumerator_next (events, NULL, &error)) != NULL)
        {
          counter += 1;
          g_object_unref (event);
        }
      g_assert_no_error (error);
      restore[r] = now () - start;
      sink += counter;
    }

  g_object_unref (stream);
  close_factory (factory);
  *out_scratch = median (scratch, n_runs);
  *out_snapshot = median (restore, n_runs);
  g_free (scratch);
  g_free (restore);
}

/* Metadata filters (issue 21): the same metadata query in raw SQLite
 * (json_extract(), no index), es-glib before and after declaring the path
 * (es_stream_factory_add_metadata_index()), raw SQLite with its own
 * expression index, and what declaring and dropping cost. Each run
 * measures the unindexed pair, then the indexed pair, on @count events of
 * which @expected match. */
#define RAW_READ_TENANT_3 RAW_SELECT ", stream_id FROM events WHERE sequence_id > 0" \
  " AND json_extract(metadata, '$.tenant') = 3 ORDER BY sequence_id"

static void
bench_metadata_index (EsStreamFactory *factory,
                      EsStream        *all,
                      sqlite3         *db,
                      EsEventFilter   *by_tenant,
                      guint            count,
                      guint            expected,
                      double           es_type_rate)
{
  double *es_scan = g_new (double, n_runs), *raw_scan = g_new (double, n_runs);
  double *es_index = g_new (double, n_runs), *raw_index = g_new (double, n_runs);
  g_autofree char *declare_name = g_strdup_printf ("declare metadata.tenant (%u events)", count);
  g_autofree char *drop_name = g_strdup_printf ("drop metadata.tenant (%u events)", count);
  g_autoptr(GError) error = NULL;
  double declare = 0, drop = 0;
  guint r;

  for (r = 0; r < n_runs; r++)
    {
      double start = now ();

      g_assert_cmpuint (es_read_all (all, by_tenant), ==, expected);
      es_scan[r] = expected / (now () - start);
      start = now ();
      g_assert_cmpuint (raw_read (db, RAW_READ_TENANT_3, NULL, NULL), ==, expected);
      raw_scan[r] = expected / (now () - start);
    }

  declare = now ();
  es_stream_factory_add_metadata_index (factory, "tenant", NULL, &error);
  g_assert_no_error (error);
  declare = now () - declare;
  raw_exec (db, "CREATE INDEX raw_tenant ON events (json_extract(metadata, '$.tenant'),"
                " sequence_id)");

  for (r = 0; r < n_runs; r++)
    {
      double start = now ();

      g_assert_cmpuint (es_read_all (all, by_tenant), ==, expected);
      es_index[r] = expected / (now () - start);
      start = now ();
      g_assert_cmpuint (raw_read (db, RAW_READ_TENANT_3, NULL, NULL), ==, expected);
      raw_index[r] = expected / (now () - start);
    }

  drop = now ();
  es_stream_factory_remove_metadata_index (factory, "tenant", NULL, &error);
  g_assert_no_error (error);
  drop = now () - drop;
  raw_exec (db, "DROP INDEX raw_tenant");

  row ("read @all, metadata.tenant = 3, json_extract", median (es_scan, n_runs),
       median (raw_scan, n_runs), "events/s");
  row ("read @all, metadata.tenant = 3, declared path", median (es_index, n_runs),
       median (raw_index, n_runs), "events/s");
  row_ratio ("  (declared path against the event_type filter)", median (es_index, n_runs),
             es_type_rate, "x event_type", "events/s");
  row_ms (declare_name, declare);
  row_ms (drop_name, drop);

  g_free (es_scan);
  g_free (raw_scan);
  g_free (es_index);
  g_free (raw_index);
}

/* @count events over N_STREAMS streams in one es-glib and one raw file;
 * then @all reads, and reads filtered on the type and on the metadata. */
static void
bench_all (guint count)
{
  g_autofree char *path = new_path ("all");
  g_autofree char *raw_path = new_path ("allraw");
  EsStreamFactory *factory = open_factory (path, ES_DURABILITY_NORMAL);
  EsStream *streams[N_STREAMS];
  EsStream *all;
  g_autoptr(EsEventFilter) by_type = es_event_filter_new ();
  g_autoptr(EsEventFilter) by_tenant = es_event_filter_new ();
  double *es_all = g_new (double, n_runs), *raw_all = g_new (double, n_runs);
  double *es_type = g_new (double, n_runs), *raw_type = g_new (double, n_runs);
  double *es_meta = g_new (double, n_runs);
  sqlite3 *db;
  guint per_stream = count / N_STREAMS;
  double es_seconds = 0, raw_seconds = 0;
  guint i, r;

  db = raw_open (raw_path, TRUE, ES_DURABILITY_NORMAL);
  with_metadata = TRUE;
  for (i = 0; i < N_STREAMS; i++)
    {
      g_autofree char *stream_id = g_strdup_printf ("stream-%u", i);

      streams[i] = open_stream (factory, stream_id);
      es_seconds += es_write_batched (streams[i], i * per_stream, per_stream, BATCH);
      raw_seconds += raw_write_batched (db, stream_id, i * per_stream, per_stream, BATCH);
    }
  with_metadata = FALSE;
  row ("batched write with metadata (1 run)", per_stream * N_STREAMS / es_seconds,
       per_stream * N_STREAMS / raw_seconds, "events/s");
  all = open_stream (factory, ES_ALL_STREAM);
  es_event_filter_add_equals (by_type, "event_type", g_variant_new_string ("Type3"));
  es_event_filter_add_equals (by_tenant, "metadata.tenant", g_variant_new_int64 (3));

  for (r = 0; r < n_runs; r++)
    {
      double start = now ();
      guint n = es_read_all (all, NULL);

      g_assert_cmpuint (n, ==, per_stream * N_STREAMS);
      es_all[r] = n / (now () - start);

      start = now ();
      n = raw_read (db, RAW_READ_ALL, NULL, NULL);
      g_assert_cmpuint (n, ==, per_stream * N_STREAMS);
      raw_all[r] = n / (now () - start);

      start = now ();
      n = es_read_all (all, by_type);
      es_type[r] = n / (now () - start);

      start = now ();
      g_assert_cmpuint (raw_read (db, RAW_READ_TYPE, NULL, "Type3"), ==, n);
      raw_type[r] = n / (now () - start);

      start = now ();
      g_assert_cmpuint (es_read_all (all, by_tenant), ==, n);
      es_meta[r] = n / (now () - start);
    }

  row ("read @all (10 streams)", median (es_all, n_runs), median (raw_all, n_runs),
       "events/s");
  bench_cursor ("read @all, EsEventCursor, every field", all, db, path, RAW_READ_ALL_ES,
                RAW_READ_ALL, NULL,
                per_stream * N_STREAMS);
  row ("read @all, event_type = 'Type3' (1 in 10)", median (es_type, n_runs),
       median (raw_type, n_runs), "events/s");
  row ("read @all, metadata.tenant = 3 (1 in 10)", median (es_meta, n_runs), 0,
       "events/s");
  bench_metadata_index (factory, all, db, by_tenant, per_stream * N_STREAMS,
                        es_read_all (all, by_tenant), median (es_type, n_runs));

  for (i = 0; i < N_STREAMS; i++)
    g_object_unref (streams[i]);
  g_object_unref (all);
  close_factory (factory);
  sqlite3_close (db);
  remove_db (path);
  remove_db (raw_path);
  g_free (es_all);
  g_free (raw_all);
  g_free (es_type);
  g_free (raw_type);
  g_free (es_meta);
}

static gint64
status_kib (const char *field)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL) ||
      (line = strstr (status, field)) == NULL)
    return -1;
  return g_ascii_strtoll (line + strlen (field) + 1, NULL, 10);
}

/* The child side of the RSS measurement (see the top of the file). */
static int
read_only_rss (const char *path)
{
  EsStreamFactory *factory = open_factory (path, ES_DURABILITY_NORMAL);
  EsStream *stream = open_stream (factory, "bench");
  gint64 baseline = status_kib ("VmRSS:");
  guint n = es_read_all (stream, NULL);

  g_print ("%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %u\n", baseline, status_kib ("VmHWM:"), n);
  g_object_unref (stream);
  close_factory (factory);
  return 0;
}

static void
bench_rss (const char *self_path,
           const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  const char *argv[] = { self_path, "--read-only-rss", path, NULL };
  gint64 baseline = 0, peak = 0;
  guint n = 0;
  int status;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status,
                &error);
  g_assert_no_error (error);
  if (sscanf (out, "%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %u", &baseline, &peak, &n) != 3)
    g_error ("unexpected output of --read-only-rss: %s", out);
  g_print ("| %-46s | %12.1f | %12s | %5s | %-9s |\n", "peak RSS above baseline, reading all",
           (peak - baseline) / 1024.0, "", "", "MiB");
  g_print ("| %-46s | %12.1f | %12s | %5s | %-9s |\n", "  (baseline before the read)",
           baseline / 1024.0, "", "", "MiB");
}

static void
batch_sizes (void)
{
  const guint sizes[] = { 1, 10, 100, 1000, 10000 };
  guint s;

  g_print ("batch_size,es_glib_events_per_s,raw_sqlite_events_per_s\n");
  for (s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      guint count = MIN (n_events, MAX (10000, sizes[s] * 100));
      double *es = g_new (double, n_runs), *raw = g_new (double, n_runs);
      guint r;

      for (r = 0; r < n_runs; r++)
        {
          g_autofree char *path = new_path ("bs");
          g_autofree char *raw_path = new_path ("bsraw");
          EsStreamFactory *factory = open_factory (path, ES_DURABILITY_NORMAL);
          EsStream *stream = open_stream (factory, "bench");
          sqlite3 *db;

          sync ();
          es[r] = count / es_write_batched (stream, 0, count, sizes[s]);
          g_object_unref (stream);
          close_factory (factory);
          remove_db (path);

          db = raw_open (raw_path, TRUE, ES_DURABILITY_NORMAL);
          sync ();
          raw[r] = count / raw_write_batched (db, "bench", 0, count, sizes[s]);
          sqlite3_close (db);
          remove_db (raw_path);
        }
      g_print ("%u,%.0f,%.0f\n", sizes[s], median (es, n_runs), median (raw, n_runs));
      g_free (es);
      g_free (raw);
    }
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *self_path = NULL;
  g_autofree char *rss_path = NULL;
  g_autofree char *user_dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *raw_path = NULL;
  gboolean csv = FALSE;
  int events = n_events, runs = n_runs;
  double es, raw, seq, seq_full, scratch, restore;
  guint seq_count, conc_count;
  sqlite3 *db;
  const GOptionEntry entries[] = {
    { "events", 'n', 0, G_OPTION_ARG_INT, &events, "Events per benchmark (default 1000000)", "N" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &runs, "Runs per figure, the median is shown (default 3)", "R" },
    { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &user_dir, "Directory for the database files", "DIR" },
    { "batch-sizes", 0, 0, G_OPTION_ARG_NONE, &csv, "Print write throughput per batch size as CSV", NULL },
    { "only", 0, 0, G_OPTION_ARG_STRING, &only, "Run one group only: write, read, single, full, all, rebuild (for profiling)", "GROUP" },
    { "keep", 0, 0, G_OPTION_ARG_NONE, &keep, "Keep the database of the batched write (stream \"bench\") and print its path", NULL },
    { "read-only-rss", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &rss_path, "", NULL },
    G_OPTION_ENTRY_NULL
  };

  context = g_option_context_new ("- es-glib against raw SQLite");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (events < 1000 || runs < 1)
    {
      g_printerr ("--events must be at least 1000 and --runs at least 1\n");
      return 2;
    }
  n_events = events;
  n_runs = runs;

  if (rss_path != NULL)
    return read_only_rss (rss_path);

  self_path = g_file_read_link ("/proc/self/exe", &error);
  g_assert_no_error (error);
  dir = user_dir != NULL ? g_strdup (user_dir) : g_dir_make_tmp ("es-bench-XXXXXX", &error);
  g_assert_no_error (error);

  if (csv)
    {
      batch_sizes ();
      if (user_dir == NULL)
        g_rmdir (dir);
      g_free (dir);
      return 0;
    }

  seq_count = CLAMP (n_events / 200, 1000, 5000);
  conc_count = MAX (n_events / 10, 1000);

  g_print ("es-bench: %u events, median of %u runs, SQLite %s, in %s\n\n", n_events, n_runs,
           sqlite3_libversion (), dir);
  g_print ("| %-46s | %12s | %12s | %5s | %-9s |\n", "benchmark", "es-glib", "raw SQLite",
           "ratio", "unit");
  g_print ("|%s|%s|%s|%s|%s|\n", "------------------------------------------------",
           "-------------:", "-------------:", "------:", "-----------");

  if (wanted ("write") || wanted ("read") || wanted ("rebuild"))
    {
      guint saved_runs = n_runs;

      if (!wanted ("write"))
        n_runs = 1;
      bench_batched (ES_DURABILITY_NORMAL, n_events, &path, &es, &raw);
      n_runs = saved_runs;
      if (wanted ("write"))
        row ("batched write (10,000 per write)", es, raw, "events/s");
    }

  if (wanted ("read"))
    {
      /* A raw copy of the same rows for the read comparison. */
      raw_path = new_path ("rawread");
      db = raw_open (raw_path, TRUE, ES_DURABILITY_NORMAL);
      raw_write_batched (db, "bench", 0, n_events, BATCH);
      sqlite3_close (db);

      bench_read (path, raw_path, n_events, &es, &raw);
      row ("read all, EsEventEnumerator, every field", es, raw, "events/s");
      bench_cursor_stream (path, raw_path, n_events);
      remove_db (raw_path);

      bench_rss (self_path, path);
    }

  if (wanted ("read"))
    {
      /* The floor under any GObject-per-event read: creating and
       * finalizing an empty EsStoredEvent, nothing else. */
      double start = now ();
      guint i;

      for (i = 0; i < n_events; i++)
        g_object_unref (g_object_new (ES_TYPE_STORED_EVENT, NULL));
      row ("  (EsStoredEvent g_object_new + unref alone)", n_events / (now () - start), 0,
           "objects/s");
    }

  if (wanted ("single"))
    {
      g_autofree char *seq_name = g_strdup_printf ("single-event writes, sequential (%u)",
                                                   seq_count);
      g_autofree char *conc_name = g_strdup_printf ("single-event writes, %d in flight (%u)",
                                                    IN_FLIGHT, conc_count);

      bench_sequential (ES_DURABILITY_NORMAL, seq_count, &seq, &raw);
      row (seq_name, seq, raw, "events/s");
      row_ratio (conc_name, bench_concurrent (ES_DURABILITY_NORMAL, conc_count), seq,
                 "x sequential", "events/s");
      /* Ratio: raw's CPU time over es-glib's (1.0: as cheap as raw). */
      row_cpu ("  (sequential: CPU time per event)", cpu_seq_es, cpu_seq_raw);
      row_cpu ("  (64 in flight: CPU time per event)", cpu_conc_es, 0);
    }

  if (wanted ("full"))
    {
      bench_batched (ES_DURABILITY_FULL, n_events, NULL, &es, &raw);
      row ("batched write, durability FULL", es, raw, "events/s");
      bench_sequential (ES_DURABILITY_FULL, seq_count, &seq_full, &raw);
      row ("single-event writes, sequential, FULL", seq_full, raw, "events/s");
      row_ratio ("single-event writes, 64 in flight, FULL",
                 bench_concurrent (ES_DURABILITY_FULL, conc_count), seq_full, "x sequential",
                 "events/s");
    }

  if (wanted ("all"))
    bench_all (n_events);

  if (wanted ("rebuild"))
    {
      g_autofree char *scratch_name = g_strdup_printf ("rebuild counter, %u events, from scratch",
                                                       n_events);
      g_autofree char *restore_name = g_strdup_printf ("rebuild counter, %u events, from snapshot",
                                                       n_events);

      bench_rebuild (path, MIN (10000, n_events), &scratch, &restore);
      row_ms ("rebuild counter, 10000 events, from scratch", scratch);
      row_ms ("rebuild counter, 10000 events, from snapshot", restore);
      bench_rebuild (path, n_events, &scratch, &restore);
      row_ms (scratch_name, scratch);
      row_ms (restore_name, restore);
    }

  if (path != NULL && keep)
    g_print ("\nKept %s\n", path);
  else if (path != NULL)
    remove_db (path);
  if (user_dir == NULL && !keep)
    g_rmdir (dir);
  g_free (dir);
  return 0;
}
