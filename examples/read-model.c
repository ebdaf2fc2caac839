/* read-model.c: a read model kept by a durable subscription, exactly once.
 *
 * The read model counts the events of every stream per event type, as a
 * JSON object like {"Added": 3, "Removed": 1}. It is kept by a subscription
 * with ES_SUBSCRIPTION_FLAGS_KEEP_STATE: the JSON is saved with the
 * position it reflects, in one transaction, every SAVE_EVERY events and
 * when caught up. The first run "crashes" (leaves without saving) after a
 * few events; the second run resumes from the saved state and position, so
 * that the events the first run applied but did not save are applied once,
 * not twice. The program then checks the model against a fold of every
 * event read from @all.
 *
 * Run: _build/examples/es-read-model [DATABASE] (a temporary database when
 * none is given; with one, each run appends a few events and resumes).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <es-glib/es-glib.h>

#define SAVE_EVERY 3

typedef struct
{
  GMainLoop      *loop;
  EsSubscription *subscription;
  GHashTable     *counts;      /* event type -> count, as GINT_TO_POINTER */
  int             applied;     /* events applied by this run */
  int             crash_after; /* leave without saving after this many; 0: never */
  gint64          saved_at;    /* the position of the last save, -1: none */
  GError         *error;
} Projection;

static void
count (GHashTable *counts,
       const char *event_type)
{
  int n = GPOINTER_TO_INT (g_hash_table_lookup (counts, event_type));

  g_hash_table_insert (counts, g_strdup (event_type), GINT_TO_POINTER (n + 1));
}

/* The counts as JSON, keys sorted, e.g. {"Added":3,"Removed":1}. */
static char *
counts_to_json (GHashTable *counts)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GList) keys = g_list_sort (g_hash_table_get_keys (counts),
                                       (GCompareFunc) g_strcmp0);

  json_builder_begin_object (builder);
  for (GList *l = keys; l != NULL; l = l->next)
    {
      json_builder_set_member_name (builder, l->data);
      json_builder_add_int_value (builder,
                                  GPOINTER_TO_INT (g_hash_table_lookup (counts, l->data)));
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

/* Restores the counts from a saved state (NULL: none saved yet). */
static gboolean
counts_from_state (GHashTable  *counts,
                   GBytes      *state,
                   GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  g_autoptr(GList) members = NULL;
  gsize size;
  const char *data;

  if (state == NULL)
    return TRUE;
  data = g_bytes_get_data (state, &size);
  if (!json_parser_load_from_data (parser, data, size, error))
    return FALSE;
  object = json_node_get_object (json_parser_get_root (parser));
  members = json_object_get_members (object);
  for (GList *l = members; l != NULL; l = l->next)
    g_hash_table_insert (counts, g_strdup (l->data),
                         GINT_TO_POINTER (json_object_get_int_member (object, l->data)));
  return TRUE;
}

static gboolean
save (Projection *p,
      gint64      position)
{
  g_autofree char *json = counts_to_json (p->counts);
  g_autoptr(GBytes) state = g_bytes_new (json, strlen (json));

  if (!es_subscription_save_state (p->subscription, state, position, NULL, &p->error))
    return FALSE;
  p->saved_at = position;
  return TRUE;
}

static void
on_event (EsSubscription *subscription,
          EsStoredEvent  *event,
          Projection     *p)
{
  if (p->error != NULL || !g_main_loop_is_running (p->loop))
    return;
  count (p->counts, es_stored_event_get_event_type (event));
  p->applied++;
  /* Every SAVE_EVERY events, save the model with the position of the
   * event it now reflects: inside its handler, the event counts as
   * delivered. This projection follows @all: positions are sequence ids. */
  if (p->applied % SAVE_EVERY == 0
      && !save (p, es_stored_event_get_sequence_id (event)))
    {
      g_main_loop_quit (p->loop);
      return;
    }
  if (p->applied == p->crash_after)
    g_main_loop_quit (p->loop);  /* "crash": what is not saved is lost */
}

static void
on_caught_up (EsSubscription *subscription,
              Projection     *p)
{
  if (p->crash_after > 0 || p->error != NULL)
    return;
  /* Everything stored so far is applied: save it (filtered-out or not,
   * the subscription's position is the last event it went past). */
  if (es_subscription_get_position (subscription) != p->saved_at)
    save (p, es_subscription_get_position (subscription));
  g_main_loop_quit (p->loop);
}

static void
on_error (EsSubscription *subscription,
          const GError   *error,
          Projection     *p)
{
  if (p->error == NULL)
    p->error = g_error_copy (error);
  g_main_loop_quit (p->loop);
}

/* One run of the projection: opens the database, resumes the subscription
 * and applies events until caught up (or until @crash_after events). */
static gboolean
run_projection (const char  *path,
                int          crash_after,
                GHashTable  *counts,
                int         *applied,
                GError     **error)
{
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsSubscription) subscription = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Projection p = { loop, NULL, counts, 0, crash_after, -1, NULL };

  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, error));
  if (factory == NULL)
    return FALSE;
  subscription = es_subscription_new (factory, "event-counts", NULL, NULL,
                                      ES_SUBSCRIPTION_FLAGS_KEEP_STATE);
  p.subscription = subscription;
  g_signal_connect (subscription, "event", G_CALLBACK (on_event), &p);
  g_signal_connect (subscription, "caught-up", G_CALLBACK (on_caught_up), &p);
  g_signal_connect (subscription, "error", G_CALLBACK (on_error), &p);
  if (!es_subscription_start (subscription, NULL, error))
    return FALSE;
  g_hash_table_remove_all (counts);
  if (!counts_from_state (counts, es_subscription_get_state (subscription), error))
    return FALSE;
  p.saved_at = es_subscription_get_checkpoint (subscription);

  g_main_loop_run (loop);

  g_signal_handlers_disconnect_by_data (subscription, &p);
  *applied = p.applied;
  if (p.error != NULL)
    {
      g_propagate_error (error, p.error);
      return FALSE;
    }
  if (crash_after == 0 && !es_subscription_stop (subscription, NULL, error))
    return FALSE;
  /* After a "crash" the subscription is dropped without stop(): it is
   * released, nothing more is saved. */
  return es_stream_factory_close (factory, NULL, error);
}

static gboolean
append (EsStreamFactory  *factory,
        const char       *stream_id,
        const char       *types,
        GError          **error)
{
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, stream_id, NULL, error);
  g_auto(GStrv) names = g_strsplit (types, " ", -1);
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);

  if (stream == NULL)
    return FALSE;
  for (guint i = 0; names[i] != NULL; i++)
    g_ptr_array_add (events, es_candidate_event_new (names[i], NULL));
  return es_stream_write (stream, (EsCandidateEvent **) events->pdata, events->len,
                          ES_VERSION_ANY, NULL, error) > 0;
}

/* The read model from scratch: a fold of every stored event. */
static char *
fold_everything (const char  *path,
                 int         *n_events,
                 GError     **error)
{
  g_autoptr(EsStreamFactory) factory =
    ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, error));
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) events = NULL;
  g_autoptr(GHashTable) counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  EsStoredEvent *event;

  if (factory == NULL)
    return NULL;
  all = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, error);
  if (all == NULL || (events = es_stream_read (all, 0, NULL, NULL, error)) == NULL)
    return NULL;
  *n_events = 0;
  while ((event = es_event_enumerator_next (events, NULL, error)) != NULL)
    {
      count (counts, es_stored_event_get_event_type (event));
      (*n_events)++;
      g_object_unref (event);
    }
  if (*error != NULL || !es_stream_factory_close (factory, NULL, error))
    return NULL;
  return counts_to_json (counts);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmpdir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *model = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GHashTable) counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(EsStreamFactory) writer = NULL;
  int applied = 0, n_events = 0;

  if (argc > 1)
    path = g_strdup (argv[1]);
  else
    {
      tmpdir = g_dir_make_tmp ("es-read-model-XXXXXX", &error);
      if (tmpdir == NULL)
        goto fail;
      path = g_build_filename (tmpdir, "events.db", NULL);
    }

  /* Some events in two streams. */
  writer = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
  if (writer == NULL
      || !append (writer, "cart-1", "Added Added Removed Added CheckedOut", &error)
      || !append (writer, "cart-2", "Added Removed Added", &error)
      || !es_stream_factory_close (writer, NULL, &error))
    goto fail;

  /* A first run that dies after 5 events, having saved after 3. */
  if (!run_projection (path, 5, counts, &applied, &error))
    goto fail;
  model = counts_to_json (counts);
  g_print ("first run: applied %d events, then stopped without saving: %s\n", applied, model);
  g_clear_pointer (&model, g_free);

  /* More events while nobody consumes, then the restart. */
  g_clear_object (&writer);
  writer = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (path, NULL, &error));
  if (writer == NULL
      || !append (writer, "cart-2", "CheckedOut", &error)
      || !es_stream_factory_close (writer, NULL, &error))
    goto fail;
  if (!run_projection (path, 0, counts, &applied, &error))
    goto fail;
  model = counts_to_json (counts);
  g_print ("after the restart: applied %d events: %s\n", applied, model);

  expected = fold_everything (path, &n_events, &error);
  if (expected == NULL)
    goto fail;
  if (g_strcmp0 (model, expected) != 0)
    {
      g_printerr ("The read model %s differs from the fold of every event %s\n",
                  model, expected);
      return 1;
    }
  g_print ("the read model equals a fold of all %d events\n", n_events);

  if (tmpdir != NULL)
    {
      g_autofree char *lock = g_strconcat (path, "-eslock", NULL);
      g_autofree char *wal = g_strconcat (path, "-wal", NULL);
      g_autofree char *shm = g_strconcat (path, "-shm", NULL);

      g_unlink (path);
      g_unlink (wal);
      g_unlink (shm);
      g_unlink (lock);
      g_rmdir (tmpdir);
    }
  return 0;

fail:
  g_printerr ("es-read-model: %s\n", error->message);
  return 1;
}
