/* demo.c: a tour of es-glib on a counter, in a temporary database.
 *
 * A counter is rebuilt from its events ("Incremented" / "Decremented", each
 * with JSON data like {"by": 2}). The tour writes events, retries a write
 * idempotently, loses an optimistic concurrency race on purpose, rebuilds
 * the counter, speeds the rebuild up with a snapshot, prints metrics and
 * reads two streams at once through @all.
 *
 * Run: build-aux/run demo (or _build/examples/es-demo once built).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <es-glib/es-glib.h>

/* The state the events of a counter stream add up to. */
typedef struct
{
  gint64 value;
  gint64 version;   /* of the last event applied */
} Counter;

/* Adds an event for the counter, with data {"by": BY}, to @batch. */
static void
add_event (GPtrArray  *batch,
           const char *event_type,
           gint64      by,
           const char *idempotency_key)
{
  g_autofree char *json = g_strdup_printf ("{\"by\": %" G_GINT64_FORMAT "}", by);
  g_autoptr(GBytes) data = g_bytes_new (json, strlen (json));
  EsCandidateEvent *event = es_candidate_event_new (event_type, data);

  es_candidate_event_set_idempotency_key (event, idempotency_key);
  g_ptr_array_add (batch, event);
}

/* Writes the events of @batch to @stream, expecting it at @expected_version.
 * Returns the stream's new version, or -1 with @error set. */
static gint64
write_batch (EsStream   *stream,
             GPtrArray  *batch,
             gint64      expected_version,
             GError    **error)
{
  return es_stream_write (stream, (EsCandidateEvent **) batch->pdata, batch->len,
                          expected_version, NULL, error);
}

/* Parses JSON text held in @bytes into an object, or fails. */
static JsonObject *
parse_object (GBytes  *bytes,
              GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize size;
  const char *text = g_bytes_get_data (bytes, &size);
  JsonNode *root;

  if (!json_parser_load_from_data (parser, text, size, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                   "expected a JSON object, got “%.*s”", (int) size, text);
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

/* Applies one event to @counter. */
static gboolean
counter_apply (Counter        *counter,
               EsStoredEvent  *event,
               GError        **error)
{
  const char *type = es_stored_event_get_event_type (event);
  g_autoptr(JsonObject) data = parse_object (es_stored_event_get_data (event), error);
  gint64 by;

  if (data == NULL)
    return FALSE;
  by = json_object_get_int_member_with_default (data, "by", 1);

  if (g_str_equal (type, "Incremented"))
    counter->value += by;
  else if (g_str_equal (type, "Decremented"))
    counter->value -= by;
  /* A projection ignores event types it does not know. */

  counter->version = es_stored_event_get_version (event);
  return TRUE;
}

/* Applies the events of @stream after @counter->version to @counter;
 * *n_read receives how many events were read. */
static gboolean
counter_replay (Counter   *counter,
                EsStream  *stream,
                guint     *n_read,
                GError   **error)
{
  g_autoptr(EsEventEnumerator) events = NULL;
  GError *local_error = NULL;
  EsStoredEvent *event;

  *n_read = 0;
  events = es_stream_read (stream, counter->version, NULL, NULL, error);
  if (events == NULL)
    return FALSE;

  /* next() returns NULL at the end and on error; local_error tells which. */
  while ((event = es_event_enumerator_next (events, NULL, &local_error)) != NULL)
    {
      gboolean ok = counter_apply (counter, event, error);

      g_object_unref (event);
      if (!ok)
        return FALSE;
      (*n_read)++;
    }
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }
  return TRUE;
}

/* Loads the snapshot @name of @stream into @counter. */
static gboolean
counter_restore (Counter     *counter,
                 EsStream    *stream,
                 const char  *name,
                 GError     **error)
{
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autoptr(JsonObject) state = NULL;
  GError *local_error = NULL;

  /* NULL without an error just means there is no snapshot yet. */
  snapshot = es_stream_load_snapshot (stream, name, NULL, &local_error);
  if (snapshot == NULL)
    {
      if (local_error == NULL)
        local_error = g_error_new (ES_ERROR, ES_ERROR_FAILED, "no snapshot named '%s'", name);
      g_propagate_error (error, local_error);
      return FALSE;
    }
  state = parse_object (es_snapshot_get_state (snapshot), error);
  if (state == NULL)
    return FALSE;

  counter->value = json_object_get_int_member_with_default (state, "value", 0);
  counter->version = es_snapshot_get_version (snapshot);
  return TRUE;
}

static gboolean
run_demo (const char  *db_path,
          GError     **error)
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) counter1 = NULL;
  g_autoptr(EsStream) counter2 = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) everything = NULL;
  g_autoptr(EsStreamMetrics) metrics = NULL;
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) late = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) more = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) other = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GBytes) state = NULL;
  g_autoptr(GError) conflict = NULL;
  g_autofree char *state_json = NULL;
  g_autofree char *last_text = NULL;
  GError *local_error = NULL;
  GDateTime *last;
  EsStoredEvent *event;
  Counter counter = { 0, 0 };
  Counter full = { 0, 0 };
  Counter fast = { 0, 0 };
  guint n_read, n_full, n_fast, n_all = 0, i;
  gint64 version;

  /* 1. The embedded SQLite backend: one file, created with its schema. */
  g_print ("1. Opening the database %s\n", db_path);
  factory = es_sqlite_stream_factory_new (db_path, NULL, error);
  if (factory == NULL)
    return FALSE;
  counter1 = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "counter-1", NULL, error);
  if (counter1 == NULL)
    return FALSE;
  g_print ("  opened stream 'counter-1' at version %" G_GINT64_FORMAT "\n",
           es_stream_get_version (counter1));

  /* 2. One atomic batch. ES_VERSION_NO_STREAM: only if the stream is empty. */
  g_print ("2. Writing a first batch to the new stream\n");
  add_event (batch, "Incremented", 2, "op-1");
  add_event (batch, "Incremented", 5, "op-2");
  add_event (batch, "Decremented", 1, "op-3");
  version = write_batch (counter1, batch, ES_VERSION_NO_STREAM, error);
  if (version < 0)
    return FALSE;
  g_print ("  wrote %u events, stream 'counter-1' is at version %" G_GINT64_FORMAT "\n",
           batch->len, version);

  /* 3. A client that timed out sends the batch again: the idempotency keys
   *    are already stored, so every event is skipped, without an error. */
  g_print ("3. Retrying the same batch (same idempotency keys)\n");
  version = write_batch (counter1, batch, ES_VERSION_ANY, error);
  if (version < 0)
    return FALSE;
  g_print ("  nothing written, stream 'counter-1' is still at version %" G_GINT64_FORMAT "\n",
           version);

  /* 4. A writer that still believes the stream is at version 1 loses the
   *    race: optimistic concurrency, checked in the same transaction. */
  g_print ("4. Writing with a stale expected version (1)\n");
  add_event (late, "Incremented", 100, "op-late");
  version = write_batch (counter1, late, 1, &conflict);
  if (!g_error_matches (conflict, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_FAILED,
                   "a write with a stale expected version was not rejected (%s)",
                   conflict != NULL ? conflict->message : "it succeeded");
      return FALSE;
    }
  g_print ("  rejected, nothing written: %s\n", conflict->message);

  /* 5. The counter's state is whatever its events add up to. */
  g_print ("5. Rebuilding the counter from its events\n");
  if (!counter_replay (&counter, counter1, &n_read, error))
    return FALSE;
  g_print ("  counter = %" G_GINT64_FORMAT " at version %" G_GINT64_FORMAT
           " (read %u events)\n", counter.value, counter.version, n_read);

  /* 6. Save that state, as bytes, with the version it reflects. */
  g_print ("6. Saving a snapshot of the counter\n");
  state_json = g_strdup_printf ("{\"value\": %" G_GINT64_FORMAT "}", counter.value);
  state = g_bytes_new (state_json, strlen (state_json));
  if (!es_stream_snapshot (counter1, state, counter.version, "counter", NULL, error))
    return FALSE;
  g_print ("  snapshot 'counter' saved at version %" G_GINT64_FORMAT ": %s\n",
           counter.version, state_json);

  /* 7. More events, expecting the version this handle last saw. */
  g_print ("7. Writing more events\n");
  for (i = 4; i <= 8; i++)
    {
      g_autofree char *key = g_strdup_printf ("op-%u", i);

      add_event (more, "Incremented", 1, key);
    }
  version = write_batch (counter1, more, es_stream_get_version (counter1), error);
  if (version < 0)
    return FALSE;
  g_print ("  wrote %u events, stream 'counter-1' is at version %" G_GINT64_FORMAT "\n",
           more->len, version);

  /* 8. Two ways to the current value: replay the whole history, or start
   *    from the snapshot and replay only the events written after it. */
  g_print ("8. Rebuilding again, without and with the snapshot\n");
  if (!counter_replay (&full, counter1, &n_full, error))
    return FALSE;
  g_print ("  full replay:   counter = %" G_GINT64_FORMAT " (read %u events)\n",
           full.value, n_full);

  if (!counter_restore (&fast, counter1, "counter", error))
    return FALSE;
  g_print ("  from snapshot: counter = %" G_GINT64_FORMAT " at version %" G_GINT64_FORMAT,
           fast.value, fast.version);
  if (!counter_replay (&fast, counter1, &n_fast, error))
    return FALSE;
  g_print (", then %" G_GINT64_FORMAT " (read %u events)\n", fast.value, n_fast);

  if (fast.value != full.value || fast.version != full.version)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_FAILED,
                   "the snapshot path gave %" G_GINT64_FORMAT ", the full replay %"
                   G_GINT64_FORMAT, fast.value, full.value);
      return FALSE;
    }

  /* 9. Metrics: size and age of a stream, without reading its events. */
  g_print ("9. Metrics\n");
  metrics = es_stream_get_metrics (counter1, NULL, error);
  if (metrics == NULL)
    return FALSE;
  last = es_stream_metrics_get_last_timestamp (metrics);
  last_text = last != NULL ? g_date_time_format_iso8601 (last) : g_strdup ("never");
  g_print ("  stream 'counter-1': version %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
           " events, last written %s\n",
           es_stream_metrics_get_current_version (metrics),
           es_stream_metrics_get_event_count (metrics), last_text);

  /* 10. A second stream, then @all: every event of every stream, in the
   *     global order in which they were committed. */
  g_print ("10. Reading two streams at once through %s\n", ES_ALL_STREAM);
  counter2 = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "counter-2", NULL, error);
  if (counter2 == NULL)
    return FALSE;
  add_event (other, "Incremented", 10, "op-1");   /* idempotency keys are per stream */
  add_event (other, "Decremented", 3, "op-2");
  version = write_batch (counter2, other, ES_VERSION_NO_STREAM, error);
  if (version < 0)
    return FALSE;
  g_print ("  wrote %u events, stream 'counter-2' is at version %" G_GINT64_FORMAT "\n",
           other->len, version);

  all = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), ES_ALL_STREAM, NULL, error);
  if (all == NULL)
    return FALSE;
  everything = es_stream_read (all, 0, NULL, NULL, error);
  if (everything == NULL)
    return FALSE;
  while ((event = es_event_enumerator_next (everything, NULL, &local_error)) != NULL)
    {
      GBytes *data = es_stored_event_get_data (event);

      g_print ("  #%-2" G_GINT64_FORMAT " %s v%" G_GINT64_FORMAT " %-11s %.*s\n",
               es_stored_event_get_sequence_id (event),
               es_stored_event_get_stream_id (event),
               es_stored_event_get_version (event),
               es_stored_event_get_event_type (event),
               (int) g_bytes_get_size (data), (const char *) g_bytes_get_data (data, NULL));
      n_all++;
      g_object_unref (event);
    }
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }
  g_print ("  %u events in %s\n", n_all, ES_ALL_STREAM);

  /* 11. Closing releases every connection; the streams fail after it. */
  g_print ("11. Closing the factory\n");
  if (!es_event_enumerator_close (everything, NULL, error) ||
      !es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, error))
    return FALSE;
  g_print ("  closed\n");
  return TRUE;
}

/* Removes the database files and the temporary directory. */
static void
remove_tmp_dir (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *file = g_build_filename (path, name, NULL);

      g_remove (file);
    }
  g_rmdir (path);
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp_dir = NULL;
  g_autofree char *db_path = NULL;
  gboolean ok;

  tmp_dir = g_dir_make_tmp ("es-demo-XXXXXX", &error);
  if (tmp_dir == NULL)
    {
      g_printerr ("es-demo: %s\n", error->message);
      return 1;
    }
  db_path = g_build_filename (tmp_dir, "events.db", NULL);

  ok = run_demo (db_path, &error);
  remove_tmp_dir (tmp_dir);

  if (!ok)
    {
      g_printerr ("es-demo: %s\n", error != NULL ? error->message : "failed");
      return 1;
    }
  g_print ("Done.\n");
  return 0;
}
