/* pg-watch-demo.c: two processes, one PostgreSQL database, one live watch.
 *
 * The watcher (this program run normally) writes two events to a new
 * stream, then watches it from the start: the watch replays those two,
 * says "caught up", and goes live. It then starts a copy of itself as the
 * writer (`--writer STREAM`, the connection string in ES_DEMO_CONNINFO),
 * which opens its own connections to the server and writes three more
 * events. They reach the watcher through PostgreSQL's LISTEN/NOTIFY, not
 * through anything the two processes share. The watcher exits 0 once it
 * has seen all five, in order, and 1 if it does not see them within 30
 * seconds.
 *
 * Run:
 *   build-aux/pg-test-server run _build/examples/es-pg-watch-demo
 *     (a throwaway server in a temporary directory), or
 *   _build/examples/es-pg-watch-demo "host=db.example.com dbname=app"
 *     (your server: the tables go into the schema "es_glib"; keep the
 *     password in ~/.pgpass or PGPASSWORD, not in the connection string).
 *
 * Build it outside the tree against the PostgreSQL library:
 *   cc -o pg-watch-demo pg-watch-demo.c $(pkg-config --cflags --libs es-glib-pg-1.0)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <stdlib.h>
#include <string.h>

#include <es-glib-pg/es-pg.h>   /* includes <es-glib/es-glib.h> */

#define N_HISTORY  2   /* events written before the watch starts */
#define N_LIVE     3   /* events the writer process writes */
#define TIMEOUT_S  30

/* Writes one "TemperatureSet" event with @celsius as its data. The
 * idempotency key makes the write safe to retry: a second write with the
 * same key in the same stream stores nothing. */
static gboolean
write_temperature (EsStream  *stream,
                   int        celsius,
                   GError   **error)
{
  g_autofree char *json = g_strdup_printf ("{\"celsius\": %d}", celsius);
  g_autofree char *key = g_strdup_printf ("set-%d", celsius);
  g_autoptr(GBytes) data = g_bytes_new (json, strlen (json));
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("TemperatureSet", data);

  es_candidate_event_set_idempotency_key (event, key);
  return es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, error) >= 0;
}

/* The writer process: its own factory, its own connections. */
static int
run_writer (const char *conninfo,
            const char *stream_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsPgStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;

  factory = es_pg_stream_factory_new (conninfo, NULL, &error);
  if (factory != NULL)
    stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), stream_id, NULL, &error);
  for (int i = 0; stream != NULL && i < N_LIVE && error == NULL; i++)
    {
      if (write_temperature (stream, 21 + i, &error))
        g_print ("writer:  wrote v%" G_GINT64_FORMAT "\n", es_stream_get_version (stream));
    }
  if (factory != NULL)
    es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, error == NULL ? &error : NULL);
  if (error != NULL)
    {
      g_printerr ("writer: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return EXIT_SUCCESS;
}

/* What the watcher's callbacks share. */
typedef struct
{
  GMainLoop  *loop;
  const char *self_path;   /* this program, to start the writer */
  const char *conninfo;
  const char *stream_id;
  gint64      expected;    /* the next version the watch must deliver */
  gboolean    seen_all;    /* every event, in order, each once */
  gboolean    writer_done; /* the writer process exited successfully */
  gboolean    failed;
  guint       timeout_id;
} Watcher;

/* Ends the main loop on a failure, or once both processes are done. */
static void
check_done (Watcher  *w,
            gboolean  failed)
{
  w->failed |= failed;
  if (w->failed || (w->seen_all && w->writer_done))
    g_main_loop_quit (w->loop);
}

static void
on_event (EsWatch       *watch,
          EsStoredEvent *event,
          Watcher       *w)
{
  gsize size;
  const char *data = g_bytes_get_data (es_stored_event_get_data (event), &size);

  g_print ("watcher: v%" G_GINT64_FORMAT " %s %.*s\n", es_stored_event_get_version (event),
           es_stored_event_get_event_type (event), (int) size, data);
  if (es_stored_event_get_version (event) != w->expected)
    {
      g_printerr ("watcher: expected v%" G_GINT64_FORMAT "\n", w->expected);
      check_done (w, TRUE);
      return;
    }
  w->seen_all = w->expected++ == N_HISTORY + N_LIVE;
  check_done (w, FALSE);
}

static void
on_writer_exited (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Watcher *w = user_data;
  g_autoptr(GError) error = NULL;

  w->writer_done = g_subprocess_wait_check_finish (G_SUBPROCESS (source), result, &error);
  if (!w->writer_done)
    g_printerr ("watcher: the writer failed: %s\n", error->message);
  check_done (w, !w->writer_done);
}

/* The history is delivered: start the writer process. The connection
 * string goes through the environment rather than the command line,
 * where other users could read it in the process list. */
static void
on_caught_up (EsWatch *watch,
              Watcher *w)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GSubprocess) writer = NULL;
  g_autoptr(GError) error = NULL;

  g_print ("watcher: caught up; starting the writer process\n");
  g_subprocess_launcher_setenv (launcher, "ES_DEMO_CONNINFO", w->conninfo, TRUE);
  writer = g_subprocess_launcher_spawn (launcher, &error, w->self_path, "--writer",
                                        w->stream_id, NULL);
  if (writer == NULL)
    {
      g_printerr ("watcher: %s\n", error->message);
      check_done (w, TRUE);
      return;
    }
  g_subprocess_wait_check_async (writer, NULL, on_writer_exited, w);
}

static void
on_error (EsWatch      *watch,
          const GError *error,
          Watcher      *w)
{
  g_printerr ("watcher: the watch failed: %s\n", error->message);
  check_done (w, TRUE);
}

static gboolean
on_timeout (gpointer user_data)
{
  Watcher *w = user_data;

  g_printerr ("watcher: saw %" G_GINT64_FORMAT " of %d events in %d seconds\n",
              w->expected - 1, N_HISTORY + N_LIVE, TIMEOUT_S);
  w->timeout_id = 0;
  check_done (w, TRUE);
  return G_SOURCE_REMOVE;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsPgStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsWatch) watch = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *self_path = NULL;
  g_autofree char *stream_id = NULL;
  const char *conninfo;
  Watcher w = { 0, };

  if (argc == 3 && g_str_equal (argv[1], "--writer"))
    return run_writer (g_getenv ("ES_DEMO_CONNINFO"), argv[2]);

  /* The server: the argument, else the one build-aux/pg-test-server
   * started, else libpq's defaults (PGHOST, PGDATABASE, ...). */
  conninfo = argc > 1 ? argv[1] : g_getenv ("ES_TEST_PG_CONNINFO");
  if (conninfo == NULL && g_getenv ("ES_TEST_PG_UNAVAILABLE") != NULL)
    {
      g_print ("skipped: %s\n", g_getenv ("ES_TEST_PG_UNAVAILABLE"));
      return 77;   /* "skipped", for meson test */
    }
  if (conninfo == NULL)
    conninfo = "";

  factory = es_pg_stream_factory_new (conninfo, NULL, &error);
  if (factory == NULL)
    {
      g_printerr ("watcher: %s\n", error->message);   /* the server's reason */
      return EXIT_FAILURE;
    }

  /* A new stream each run, so its history is the two events below. */
  stream_id = g_strdup_printf ("thermostat-%" G_GINT64_FORMAT, g_get_real_time ());
  stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), stream_id, NULL, &error);
  if (stream == NULL ||
      !write_temperature (stream, 19, &error) ||
      !write_temperature (stream, 20, &error))
    {
      g_printerr ("watcher: %s\n", error->message);
      return EXIT_FAILURE;
    }
  g_print ("watcher: wrote v1 and v2 to '%s'; watching it from the start\n", stream_id);

  /* The path of this program, to start it again as the writer. */
  self_path = g_file_read_link ("/proc/self/exe", NULL);
  loop = g_main_loop_new (NULL, FALSE);
  w = (Watcher) {
    .loop = loop,
    .self_path = self_path != NULL ? self_path : argv[0],
    .conninfo = conninfo,
    .stream_id = stream_id,
    .expected = 1,
  };

  /* History after version 0 (all of it), "caught-up", then live events. */
  watch = es_stream_watch (stream, 0);
  g_signal_connect (watch, "event", G_CALLBACK (on_event), &w);
  g_signal_connect (watch, "caught-up", G_CALLBACK (on_caught_up), &w);
  g_signal_connect (watch, "error", G_CALLBACK (on_error), &w);
  w.timeout_id = g_timeout_add_seconds (TIMEOUT_S, on_timeout, &w);

  g_main_loop_run (loop);

  g_clear_handle_id (&w.timeout_id, g_source_remove);
  es_watch_stop (watch);
  if (!es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error))
    {
      g_printerr ("watcher: %s\n", error->message);
      return EXIT_FAILURE;
    }
  g_print ("watcher: %s\n", w.failed ? "FAILED" : "saw every event once, in order");
  return w.failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
