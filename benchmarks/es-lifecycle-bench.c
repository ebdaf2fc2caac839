/* es-lifecycle-bench.c: the figures of the stream life cycle (issue 16) on
 * the SQLite backend.
 *
 * Usage: es-lifecycle-bench [--streams N] [--big N] [--days D] [--runs R]
 *                           [--dir DIR] [--only list|backwards|window|delete]
 *
 * - list: the time to list N streams (default 100,000) through
 *   es_storage_handle_list_streams(), in pages of 1,024, as
 *   EsStreamInfoEnumerator reads them;
 * - backwards: the time to read the last 50 events of a stream of --big
 *   events (default 1,000,000) and of a 100-event stream, newest first;
 * - window: the time to read a one-hour window of an @all of --big events
 *   whose timestamps are spread evenly over D days (default 30), through a
 *   time-range filter; the same window read the way SQLite plans it
 *   without the timestamp index (raw SQLite, for comparison); and the time
 *   to read the whole of @all;
 * - delete: the file size of a database holding a --big event stream (and
 *   a small one), after soft-deleting the big stream, and after compact().
 *
 * Every time is the median of R runs (default 5). The databases of list,
 * backwards and window are created by the library (schema, pragmas) and
 * then filled with raw SQLite inserts in one transaction each, keeping
 * the streams table consistent with the events (as the library's writer
 * would), because the library stamps events with the current time and the
 * window needs timestamps spread over a month. The delete database is
 * written by the library itself (appends of 1,000 events).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

static guint  n_streams = 100000;
static guint  n_big = 1000000;
static guint  n_days = 30;
static guint  n_runs = 5;
static char  *dir;
static char  *only;

#define BASE_TIME G_GINT64_CONSTANT (1700000000000000)

static gboolean
wanted (const char *what)
{
  return only == NULL || g_str_equal (only, what);
}

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
median (double *values,
        guint   n)
{
  qsort (values, n, sizeof *values, compare_doubles);
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static void
die_on_error (GError *error)
{
  if (error != NULL)
    g_error ("%s", error->message);
}

static EsStorageHandle *
storage_open (const char *path)
{
  GError *error = NULL;
  EsSqliteStorage *storage = es_sqlite_storage_new (path, 0, NULL, &error);

  die_on_error (error);
  return ES_STORAGE_HANDLE (storage);
}

static void
storage_close (EsStorageHandle *storage)
{
  es_storage_handle_close (storage, NULL, NULL);
  g_object_unref (storage);
}

static void
exec (sqlite3    *db,
      const char *sql)
{
  char *message = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s: %s", sql, message);
}

static gint64
file_size (const char *path)
{
  GStatBuf st;

  return g_stat (path, &st) == 0 ? (gint64) st.st_size : -1;
}

/* A fresh database with the library's schema (created by opening it). */
static char *
new_database (const char *name)
{
  char *path = g_build_filename (dir, name, NULL);
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);

  g_unlink (path);
  g_unlink (wal);
  g_unlink (shm);
  storage_close (storage_open (path));
  return path;
}

/* Inserts events of @stream_id, versions 1..@n, timestamps from @first by
 * @step, and its streams row; inside the caller's transaction. */
static void
raw_fill_stream (sqlite3    *db,
                 const char *stream_id,
                 gint64      n,
                 gint64      first,
                 gint64      step)
{
  static const char payload[] = "{\"what\": \"something happened\", \"amount\": 42}";
  sqlite3_stmt *stmt = NULL;
  gint64 v;

  sqlite3_prepare_v2 (db, "INSERT INTO events (stream_id, version, event_type, timestamp, data)"
                          " VALUES (?, ?, 'Happened', ?, ?)", -1, &stmt, NULL);
  for (v = 1; v <= n; v++)
    {
      sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, v);
      sqlite3_bind_int64 (stmt, 3, first + (v - 1) * step);
      sqlite3_bind_blob (stmt, 4, payload, sizeof payload - 1, SQLITE_STATIC);
      if (sqlite3_step (stmt) != SQLITE_DONE)
        g_error ("insert: %s", sqlite3_errmsg (db));
      sqlite3_reset (stmt);
    }
  sqlite3_finalize (stmt);

  sqlite3_prepare_v2 (db, "INSERT OR REPLACE INTO streams (stream_id, version, event_count,"
                          " first_version, first_timestamp, last_timestamp)"
                          " VALUES (?, ?, ?, 1, ?, ?)", -1, &stmt, NULL);
  sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, n);
  sqlite3_bind_int64 (stmt, 3, n);
  sqlite3_bind_int64 (stmt, 4, first);
  sqlite3_bind_int64 (stmt, 5, first + (n - 1) * step);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    g_error ("streams: %s", sqlite3_errmsg (db));
  sqlite3_finalize (stmt);
}

static sqlite3 *
raw_open (const char *path)
{
  sqlite3 *db = NULL;

  if (sqlite3_open (path, &db) != SQLITE_OK)
    g_error ("%s: %s", path, sqlite3_errmsg (db));
  exec (db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536");
  return db;
}

/* ---------------------------------------------------------------------- */

static void
bench_list (void)
{
  g_autofree char *path = new_database ("list.db");
  g_autofree double *times = g_new0 (double, n_runs);
  g_autofree char *label = NULL;
  EsStorageHandle *storage;
  sqlite3 *db;
  double start;
  guint run;

  start = now ();
  db = raw_open (path);
  exec (db, "BEGIN");
  for (guint i = 0; i < n_streams; i++)
    {
      char id[32];

      g_snprintf (id, sizeof id, "stream-%07u", i);
      raw_fill_stream (db, id, 1, BASE_TIME + i, 1);
    }
  exec (db, "COMMIT");
  sqlite3_close (db);
  g_printerr ("(built %u streams in %.1f s)\n", n_streams, now () - start);

  storage = storage_open (path);
  for (run = 0; run < n_runs; run++)
    {
      g_autofree char *after = NULL;
      guint listed = 0;

      start = now ();
      for (;;)
        {
          GError *error = NULL;
          g_autoptr(GPtrArray) page = es_storage_handle_list_streams (storage, NULL, after,
                                                                      ES_LIST_STREAMS_FLAGS_NONE,
                                                                      1024, NULL, &error);

          die_on_error (error);
          if (page->len == 0)
            break;
          listed += page->len;
          g_free (after);
          after = g_strdup (es_stream_info_get_stream_id (g_ptr_array_index (page,
                                                                            page->len - 1)));
        }
      times[run] = now () - start;
      if (listed != n_streams)
        g_error ("listed %u streams, not %u", listed, n_streams);
    }
  storage_close (storage);
  label = g_strdup_printf ("list %u streams (pages of 1024)", n_streams);
  printf ("%-58s %10.1f ms\n", label, median (times, n_runs) * 1e3);
}

/* The median time of @n_reads reads of the newest 50 events of @stream_id. */
static double
time_last_50 (EsStorageHandle *storage,
              const char      *stream_id,
              gint64           expected_newest)
{
  guint n_reads = 200;
  g_autofree double *times = g_new0 (double, n_reads * n_runs);

  for (guint i = 0; i < n_reads * n_runs; i++)
    {
      GError *error = NULL;
      double start = now ();
      g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (storage, stream_id, G_MAXINT64,
                                                                    ES_READ_FLAGS_BACKWARDS, NULL,
                                                                    50, NULL, &error);

      times[i] = now () - start;
      die_on_error (error);
      if (page->len != 50 ||
          es_stored_event_get_version (g_ptr_array_index (page, 0)) != expected_newest)
        g_error ("wrong page of %s", stream_id);
    }
  return median (times, n_reads * n_runs);
}

/* Reads @filter's events of @all forwards, page by page; returns how many. */
static guint
read_all_stream (EsStorageHandle *storage,
                 EsEventFilter   *filter)
{
  gint64 position = 0;
  guint n = 0;

  for (;;)
    {
      GError *error = NULL;
      g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (storage, NULL, position,
                                                                    ES_READ_FLAGS_NONE, filter,
                                                                    1024, NULL, &error);

      die_on_error (error);
      if (page->len == 0)
        return n;
      n += page->len;
      position = es_stored_event_get_sequence_id (g_ptr_array_index (page, page->len - 1));
    }
}

static void
bench_reads (gboolean backwards,
             gboolean window)
{
  g_autofree char *path = new_database ("reads.db");
  gint64 span = (gint64) n_days * G_TIME_SPAN_DAY;
  gint64 step = span / n_big;
  EsStorageHandle *storage;
  sqlite3 *db;
  double start;

  start = now ();
  db = raw_open (path);
  exec (db, "BEGIN");
  raw_fill_stream (db, "small", 100, BASE_TIME, 1);
  raw_fill_stream (db, "big", n_big, BASE_TIME, step);
  exec (db, "COMMIT");
  g_printerr ("(built %u + 100 events over %u days in %.1f s)\n", n_big, n_days, now () - start);

  storage = storage_open (path);

  if (backwards)
    {
      double big = time_last_50 (storage, "big", n_big);
      double small = time_last_50 (storage, "small", 100);

      g_autofree char *label = g_strdup_printf ("last 50 events of a %u-event stream, newest first",
                                                n_big);

      printf ("%-58s %10.1f µs\n", label, big * 1e6);
      printf ("%-58s %10.1f µs\n", "last 50 events of a 100-event stream, newest first",
              small * 1e6);
    }

  if (window)
    {
      g_autofree double *times = g_new0 (double, n_runs);
      g_autofree double *raw_times = g_new0 (double, n_runs);
      g_autofree double *all_times = g_new0 (double, n_runs);
      gint64 since = BASE_TIME + span / 2;
      gint64 until = since + G_TIME_SPAN_HOUR;
      g_autoptr(GDateTime) since_dt = g_date_time_new_from_unix_utc (since / G_USEC_PER_SEC);
      g_autoptr(GDateTime) until_dt = g_date_time_new_from_unix_utc (until / G_USEC_PER_SEC);
      g_autoptr(EsEventFilter) filter = es_event_filter_new ();
      g_autofree char *label = NULL;
      g_autofree char *all_label = NULL;
      guint expected = 0;
      sqlite3_stmt *stmt = NULL;

      es_event_filter_add_time_range (filter, since_dt, until_dt);
      for (guint run = 0; run < n_runs; run++)
        {
          guint n;

          start = now ();
          n = read_all_stream (storage, filter);
          times[run] = now () - start;
          if (run == 0)
            expected = n;
          else if (n != expected)
            g_error ("window: %u events, then %u", expected, n);
        }

      /* The plan SQLite picks by itself: the rowid range, every row's
       * timestamp tested (one statement to the end, no paging). */
      sqlite3_prepare_v2 (db, "SELECT sequence_id, data FROM events WHERE sequence_id > 0"
                              " AND flags < 2 AND timestamp >= ? AND timestamp < ?"
                              " ORDER BY sequence_id", -1, &stmt, NULL);
      for (guint run = 0; run < n_runs; run++)
        {
          guint n = 0;

          start = now ();
          sqlite3_bind_int64 (stmt, 1, since);
          sqlite3_bind_int64 (stmt, 2, until);
          while (sqlite3_step (stmt) == SQLITE_ROW)
            n++;
          sqlite3_reset (stmt);
          raw_times[run] = now () - start;
          if (n != expected)
            g_error ("raw window: %u events, not %u", n, expected);
        }
      sqlite3_finalize (stmt);

      for (guint run = 0; run < n_runs; run++)
        {
          start = now ();
          if (read_all_stream (storage, NULL) != n_big + 100)
            g_error ("@all is not complete");
          all_times[run] = now () - start;
        }

      label = g_strdup_printf ("one-hour window of @all (%u of %u events, %u days)",
                               expected, n_big + 100, n_days);
      all_label = g_strdup_printf ("whole of @all (%u events)", n_big + 100);
      printf ("%-58s %10.2f ms\n", label, median (times, n_runs) * 1e3);
      printf ("%-58s %10.2f ms\n", "  same window, SQLite's own plan (raw rowid scan)",
              median (raw_times, n_runs) * 1e3);
      printf ("%-58s %10.1f ms\n", all_label, median (all_times, n_runs) * 1e3);

      /* A window holding everything: the read the index does not serve,
       * with the cost of the probe that says so on every page. */
      {
        g_autoptr(EsEventFilter) wide = es_event_filter_new ();
        g_autoptr(GDateTime) first_dt = g_date_time_new_from_unix_utc (BASE_TIME / G_USEC_PER_SEC);

        es_event_filter_add_time_range (wide, first_dt, NULL);
        for (guint run = 0; run < n_runs; run++)
          {
            start = now ();
            if (read_all_stream (storage, wide) != n_big + 100)
              g_error ("the wide window is not complete");
            all_times[run] = now () - start;
          }
        printf ("%-58s %10.1f ms\n", "  the same through a time range holding all of it",
                median (all_times, n_runs) * 1e3);
      }
    }

  sqlite3_close (db);
  storage_close (storage);
}

static void
checkpoint (const char *path)
{
  sqlite3 *db = raw_open (path);

  exec (db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close (db);
}

static void
bench_delete (void)
{
  g_autofree char *path = new_database ("delete.db");
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GBytes) data = g_bytes_new_static ("{\"what\": \"something happened\", \"amount\": 42,"
                                               " \"note\": \"a line of text about it\"}", 84);
  EsStorageHandle *storage;
  GError *error = NULL;
  g_autofree char *label = NULL;
  gint64 full, deleted, compacted;
  double start, delete_time, compact_time;

  for (guint i = 0; i < 1000; i++)
    g_ptr_array_add (batch, es_candidate_event_new ("Happened", data));

  storage = storage_open (path);
  start = now ();
  for (guint written = 0; written < n_big; written += 1000)
    {
      es_storage_handle_append (storage, "big", ES_VERSION_ANY,
                                (EsCandidateEvent * const *) batch->pdata, 1000, NULL, NULL,
                                &error);
      die_on_error (error);
    }
  es_storage_handle_append (storage, "small", ES_VERSION_ANY,
                            (EsCandidateEvent * const *) batch->pdata, 1000, NULL, NULL, &error);
  die_on_error (error);
  g_printerr ("(wrote %u + 1000 events in %.1f s)\n", n_big, now () - start);

  checkpoint (path);
  full = file_size (path);

  start = now ();
  es_storage_handle_delete_stream (storage, "big", ES_VERSION_ANY, ES_DELETE_FLAGS_NONE, NULL,
                                   &error);
  die_on_error (error);
  delete_time = now () - start;
  checkpoint (path);
  deleted = file_size (path);

  start = now ();
  es_storage_handle_compact (storage, NULL, &error);
  die_on_error (error);
  compact_time = now () - start;
  checkpoint (path);
  compacted = file_size (path);
  storage_close (storage);

  label = g_strdup_printf ("file with a %u-event stream", n_big);
  printf ("%-58s %10.1f MiB\n", label, full / 1048576.0);
  g_free (label);
  label = g_strdup_printf ("  after soft-deleting it (%.2f s)", delete_time);
  printf ("%-58s %10.1f MiB\n", label, deleted / 1048576.0);
  g_free (label);
  label = g_strdup_printf ("  after compact() (%.2f s)", compact_time);
  printf ("%-58s %10.1f MiB\n", label, compacted / 1048576.0);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = NULL;
  int streams = (int) n_streams, big = (int) n_big, days = (int) n_days, runs = (int) n_runs;
  GOptionEntry entries[] = {
    { "streams", 0, 0, G_OPTION_ARG_INT, &streams, "Streams to list (100000)", "N" },
    { "big", 0, 0, G_OPTION_ARG_INT, &big, "Events of the big stream and of @all (1000000)", "N" },
    { "days", 0, 0, G_OPTION_ARG_INT, &days, "Days the events of @all span (30)", "D" },
    { "runs", 0, 0, G_OPTION_ARG_INT, &runs, "Runs per figure, the median is shown (5)", "R" },
    { "dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, "Directory for the databases (a temporary one)",
      "DIR" },
    { "only", 0, 0, G_OPTION_ARG_STRING, &only, "Only list, backwards, window or delete", "WHAT" },
    G_OPTION_ENTRY_NULL
  };

  context = g_option_context_new ("- es-glib stream life cycle figures (SQLite)");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  if (streams < 1 || big < 100 || days < 1 || runs < 1)
    {
      g_printerr ("--streams, --big (at least 100), --days and --runs must be positive\n");
      return 1;
    }
  n_streams = streams;
  n_big = big;
  n_days = days;
  n_runs = runs;

  if (dir == NULL)
    {
      tmp = g_dir_make_tmp ("es-lifecycle-bench-XXXXXX", &error);
      die_on_error (g_steal_pointer (&error));
      dir = g_strdup (tmp);
    }

  printf ("es-glib %d.%d.%d, SQLite %s, medians of %u runs\n", ES_MAJOR_VERSION, ES_MINOR_VERSION,
          ES_MICRO_VERSION, sqlite3_libversion (), n_runs);
  if (wanted ("list"))
    bench_list ();
  if (wanted ("backwards") || wanted ("window"))
    bench_reads (wanted ("backwards"), wanted ("window"));
  if (wanted ("delete"))
    bench_delete ();

  if (tmp != NULL)
    {
      const char *names[] = { "list.db", "reads.db", "delete.db" };

      for (guint i = 0; i < G_N_ELEMENTS (names); i++)
        {
          g_autofree char *path = g_build_filename (tmp, names[i], NULL);
          g_autofree char *wal = g_strconcat (path, "-wal", NULL);
          g_autofree char *shm = g_strconcat (path, "-shm", NULL);

          g_unlink (path);
          g_unlink (wal);
          g_unlink (shm);
        }
      g_rmdir (tmp);
    }
  return 0;
}
