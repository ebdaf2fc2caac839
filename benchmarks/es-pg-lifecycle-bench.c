/* es-pg-lifecycle-bench.c: the figures of the stream life cycle (issue 16)
 * on PostgreSQL.
 *
 * Usage: es-pg-lifecycle-bench [--conninfo S] [--big N] [--streams M] [--runs R]
 *
 * Loads, in a fresh schema created by EsPgStorage: a stream "big" of N
 * events (default 1,000,000) whose timestamps are spread evenly over 30
 * days, a stream "small" of 100 events, and M streams of one event each
 * (default 100,000). The rows are loaded by SQL (INSERT ... SELECT
 * generate_series, then the streams table filled as the schema migration
 * does) so that the load takes seconds; what is measured goes through the
 * library:
 *
 *   - listing every stream, in pages of 1,024 (what an
 *     EsStreamInfoEnumerator asks for);
 *   - the last 50 events of "big" and of "small"
 *     (es_storage_handle_read_page_full, BACKWARDS from the end);
 *   - a one-hour window of @all in the middle of the 30 days (a filter
 *     timestamp >= since AND timestamp < until), read in pages of 1,024;
 *   - then, once: a hard delete of "big" and compact (VACUUM), with the
 *     size of the events table before and after each.
 *
 * Each figure is the median of R runs (default 11), after one warm-up.
 * Without --conninfo it uses ES_TEST_PG_CONNINFO:
 *   build-aux/pg-test-server run _build/benchmarks/es-pg-lifecycle-bench
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>

#include <libpq-fe.h>

#include <es-glib/es-glib.h>
#include <es-glib-pg/es-pg.h>

#define PAGE 1024
#define SCHEMA "es_lifecycle_bench"

static char *conninfo;
static gint64 n_big = 1000000;
static gint64 n_streams = 100000;
static gint n_runs = 11;

static void
exec_or_die (PGconn     *conn,
             const char *sql)
{
  PGresult *result = PQexec (conn, sql);

  if (PQresultStatus (result) != PGRES_COMMAND_OK && PQresultStatus (result) != PGRES_TUPLES_OK)
    g_error ("%s: %s", sql, PQresultErrorMessage (result));
  PQclear (result);
}

static int
compare_double (const void *a,
                const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
median (double *values,
        guint   n)
{
  qsort (values, n, sizeof *values, compare_double);
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

/* pg_total_relation_size() of the events table, in bytes. */
static gint64
relation_size (PGconn *conn)
{
  PGresult *result = PQexec (conn, "SELECT pg_total_relation_size('" SCHEMA ".events')");
  gint64 size;

  if (PQresultStatus (result) != PGRES_TUPLES_OK)
    g_error ("%s", PQresultErrorMessage (result));
  size = g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  PQclear (result);
  return size;
}

static gint64
list_all (EsStorageHandle *storage)
{
  g_autofree char *after = NULL;
  gint64 n = 0;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) page = es_storage_handle_list_streams (storage, NULL, after,
                                                                 ES_LIST_STREAMS_FLAGS_NONE,
                                                                 PAGE, NULL, &error);

      g_assert_no_error (error);
      if (page->len == 0)
        return n;
      n += page->len;
      g_free (after);
      after = g_strdup (es_stream_info_get_stream_id (g_ptr_array_index (page, page->len - 1)));
    }
}

static guint
last_50 (EsStorageHandle *storage,
         const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (storage, stream_id, G_MAXINT64,
                                                                ES_READ_FLAGS_BACKWARDS, NULL,
                                                                50, NULL, &error);

  g_assert_no_error (error);
  return page->len;
}

static gint64
window (EsStorageHandle *storage,
        EsEventFilter   *filter)
{
  gint64 after = 0, n = 0;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (storage, NULL, after,
                                                                    ES_READ_FLAGS_NONE, filter,
                                                                    PAGE, NULL, &error);

      g_assert_no_error (error);
      if (page->len == 0)
        return n;
      n += page->len;
      after = es_stored_event_get_sequence_id (g_ptr_array_index (page, page->len - 1));
    }
}

int
main (int   argc,
      char *argv[])
{
  const GOptionEntry entries[] = {
    { "conninfo", 'c', 0, G_OPTION_ARG_STRING, &conninfo,
      "libpq connection string (default: $ES_TEST_PG_CONNINFO)", "S" },
    { "big", 'b', 0, G_OPTION_ARG_INT64, &n_big, "events of the big stream (1000000)", "N" },
    { "streams", 's', 0, G_OPTION_ARG_INT64, &n_streams, "one-event streams (100000)", "M" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &n_runs, "runs per figure (11)", "R" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- life-cycle figures, PostgreSQL");
  g_autoptr(GError) error = NULL;
  g_autoptr(EsPgStorage) pg = NULL;
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autofree double *times = NULL;
  g_autofree char *load = NULL;
  EsStorageHandle *storage;
  PGconn *conn;
  gint64 start_usec, since, until, n = 0;
  double t0, load_ms;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (conninfo == NULL)
    conninfo = g_strdup (g_getenv ("ES_TEST_PG_CONNINFO"));
  if (conninfo == NULL)
    {
      g_printerr ("No server: pass --conninfo, or run it under build-aux/pg-test-server run\n");
      return 77;
    }
  times = g_new (double, n_runs);

  conn = PQconnectdb (conninfo);
  if (PQstatus (conn) != CONNECTION_OK)
    g_error ("%s", PQerrorMessage (conn));
  exec_or_die (conn, "SET client_min_messages = warning");
  exec_or_die (conn, "DROP SCHEMA IF EXISTS " SCHEMA " CASCADE");

  pg = es_pg_storage_new (conninfo, SCHEMA, 2, NULL, &error);
  g_assert_no_error (error);
  storage = ES_STORAGE_HANDLE (pg);

  /* 2024-01-01 + 30 days spread over the big stream's events. */
  start_usec = G_GINT64_CONSTANT (1704067200) * G_USEC_PER_SEC;  /* 2024-01-01 UTC */
  t0 = now_ms ();
  load = g_strdup_printf (
    "BEGIN;"
    "INSERT INTO " SCHEMA ".events (sequence_id, stream_id, version, event_type, recorded_at,"
    " data) SELECT g, 'big', g, 'Tick', TIMESTAMPTZ '2024-01-01 00:00:00+00'"
    " + (g - 1) * (INTERVAL '30 days' / %" G_GINT64_FORMAT "), '\\x0102'::bytea"
    " FROM generate_series(1, %" G_GINT64_FORMAT ") AS g;"
    "INSERT INTO " SCHEMA ".events (sequence_id, stream_id, version, event_type, recorded_at,"
    " data) SELECT %" G_GINT64_FORMAT " + g, 'small', g, 'Tick',"
    " TIMESTAMPTZ '2024-02-01 00:00:00+00', '\\x0102'::bytea FROM generate_series(1, 100) AS g;"
    "INSERT INTO " SCHEMA ".events (sequence_id, stream_id, version, event_type, recorded_at,"
    " data) SELECT %" G_GINT64_FORMAT " + g, 's-' || lpad(g::text, 7, '0'), 1, 'Tick',"
    " TIMESTAMPTZ '2024-02-01 00:00:00+00', '\\x0102'::bytea FROM generate_series(1, %"
    G_GINT64_FORMAT ") AS g;"
    "INSERT INTO " SCHEMA ".streams (stream_id, version, event_count, first_version, first_at,"
    " last_at) SELECT stream_id, max(version), count(*), min(version), min(recorded_at),"
    " max(recorded_at) FROM " SCHEMA ".events GROUP BY stream_id;"
    "UPDATE " SCHEMA ".global_position SET last_sequence_id = %" G_GINT64_FORMAT ";"
    "COMMIT;",
    n_big, n_big, n_big, n_big + 100, n_streams, n_big + 100 + n_streams);
  exec_or_die (conn, load);
  exec_or_die (conn, "VACUUM ANALYZE " SCHEMA ".events");
  exec_or_die (conn, "VACUUM ANALYZE " SCHEMA ".streams");
  load_ms = now_ms () - t0;
  g_print ("Loaded %" G_GINT64_FORMAT " + 100 + %" G_GINT64_FORMAT " events (%" G_GINT64_FORMAT
           " streams) by SQL in %.1f s; medians of %d runs:\n",
           n_big, n_streams, n_streams + 2, load_ms / 1000, n_runs);

  /* Listing every stream. */
  g_assert_cmpint (list_all (storage), ==, n_streams + 2);
  for (gint r = 0; r < n_runs; r++)
    {
      t0 = now_ms ();
      n = list_all (storage);
      times[r] = now_ms () - t0;
    }
  g_print ("  list %" G_GINT64_FORMAT " streams (pages of %d): %.1f ms\n", n, PAGE,
           median (times, n_runs));

  /* The last 50 events. */
  for (guint s = 0; s < 2; s++)
    {
      const char *stream_id = s == 0 ? "big" : "small";
      guint got = last_50 (storage, stream_id);

      g_assert_cmpuint (got, ==, 50);
      for (gint r = 0; r < n_runs; r++)
        {
          t0 = now_ms ();
          last_50 (storage, stream_id);
          times[r] = now_ms () - t0;
        }
      g_print ("  last 50 events of '%s' (%" G_GINT64_FORMAT " events): %.3f ms\n", stream_id,
               s == 0 ? n_big : 100, median (times, n_runs));
    }

  /* One hour of @all, in the middle of the 30 days. */
  since = start_usec + (gint64) 15 * 24 * 3600 * G_USEC_PER_SEC;
  until = since + (gint64) 3600 * G_USEC_PER_SEC;
  {
    g_autoptr(GDateTime) from = g_date_time_new_from_unix_utc (since / G_USEC_PER_SEC);
    g_autoptr(GDateTime) to = g_date_time_new_from_unix_utc (until / G_USEC_PER_SEC);

    es_event_filter_add_time_range (filter, from, to);
  }
  n = window (storage, filter);
  for (gint r = 0; r < n_runs; r++)
    {
      t0 = now_ms ();
      window (storage, filter);
      times[r] = now_ms () - t0;
    }
  g_print ("  one hour of @all (%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " events over 30 "
           "days): %.2f ms\n", n, n_big + 100 + n_streams, median (times, n_runs));

  /* Deleting the big stream, then compact (VACUUM): the time each takes
   * and the size of the events table (with its indexes and TOAST). */
  {
    gint64 before = relation_size (conn), after_delete, after_compact;
    double delete_ms, compact_ms;

    t0 = now_ms ();
    es_storage_handle_delete_stream (storage, "big", ES_VERSION_ANY, ES_DELETE_FLAGS_TOMBSTONE,
                                     NULL, &error);
    g_assert_no_error (error);
    delete_ms = now_ms () - t0;
    after_delete = relation_size (conn);
    t0 = now_ms ();
    es_storage_handle_compact (storage, NULL, &error);
    g_assert_no_error (error);
    compact_ms = now_ms () - t0;
    after_compact = relation_size (conn);
    g_print ("  hard delete of 'big': %.0f ms; compact: %.0f ms; events table %.1f MB before,"
             " %.1f MB after the delete, %.1f MB after compact (once)\n", delete_ms, compact_ms,
             before / 1e6, after_delete / 1e6, after_compact / 1e6);
  }

  es_storage_handle_close (storage, NULL, NULL);
  exec_or_die (conn, "DROP SCHEMA " SCHEMA " CASCADE");
  PQfinish (conn);
  return 0;
}
