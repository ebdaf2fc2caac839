/* es-memory-storage.c: an in-memory EsStorageHandle, for tests.
 *
 * Everything lives in memory under one mutex: a global array of the
 * stored events (sequence id i at index i - 1), one entry per stream
 * (its events, version i at index i - 1, and its idempotency keys) and
 * the snapshots. It uses nothing but the public API of es-glib, and so
 * shows what a third-party backend has to do.
 *
 * append_async/append_finish are left to the interface's default, which
 * runs append in a thread.
 *
 * Like a backend written for es-glib 0.1, append does not report the
 * stream's version with a WRONG_EXPECTED_VERSION (the contract allows
 * it): the conformance tests thereby cover the stream layer's fallback,
 * which reads the version itself.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "es-memory-storage.h"

typedef struct
{
  char       *stream_id;  /* (owned) */
  GPtrArray  *events;     /* (owned) (element-type EsStoredEvent): version i at index i - 1 */
  GHashTable *keys;       /* (owned) (element-type utf8 utf8): idempotency keys stored */
} MemoryStream;

struct _EsTestMemoryStorage
{
  GObject     parent_instance;

  GMutex      lock;
  GPtrArray  *events;     /* guarded by lock (element-type EsStoredEvent):
                           * sequence id i at index i - 1 */
  GHashTable *streams;    /* guarded by lock: stream id -> MemoryStream */
  GHashTable *snapshots;  /* guarded by lock: snapshot_key() -> EsSnapshot */
  gboolean    closed;     /* guarded by lock */
};

static void es_test_memory_storage_iface_init (EsStorageHandleInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsTestMemoryStorage, es_test_memory_storage, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STORAGE_HANDLE,
                                                      es_test_memory_storage_iface_init))

static MemoryStream *
memory_stream_new (const char *stream_id)
{
  MemoryStream *stream = g_new0 (MemoryStream, 1);

  stream->stream_id = g_strdup (stream_id);
  stream->events = g_ptr_array_new_with_free_func (g_object_unref);
  stream->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return stream;
}

static void
memory_stream_free (gpointer data)
{
  MemoryStream *stream = data;

  g_free (stream->stream_id);
  g_ptr_array_unref (stream->events);
  g_hash_table_unref (stream->keys);
  g_free (stream);
}

/* Unambiguous whatever the two strings hold: the stream id is length-prefixed. */
static char *
snapshot_key (const char *stream_id,
              const char *projection_name)
{
  const char *id = stream_id != NULL ? stream_id : ES_ALL_STREAM;

  return g_strdup_printf ("%" G_GSIZE_FORMAT ":%s%s", strlen (id), id, projection_name);
}

static GDateTime *
date_time_new_from_usec (gint64 usec)
{
  g_autoptr(GDateTime) seconds = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);

  return g_date_time_add (seconds, usec % G_USEC_PER_SEC);
}

/* Called with the lock held. */
static gboolean
check_usable (EsTestMemoryStorage  *self,
              GCancellable         *cancellable,
              GError              **error)
{
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  if (self->closed)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, "The memory storage is closed");
      return FALSE;
    }
  return TRUE;
}

static gboolean
es_test_memory_storage_append (EsStorageHandle          *storage,
                               const char               *stream_id,
                               gint64                    expected_version,
                               EsCandidateEvent * const *events,
                               guint                     n_events,
                               gint64                   *out_version,
                               GCancellable             *cancellable,
                               GError                  **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GPtrArray) accepted = g_ptr_array_new ();
  g_autoptr(GHashTable) batch_keys = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GDateTime) timestamp = NULL;
  MemoryStream *stream;
  gint64 current;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  stream = g_hash_table_lookup (self->streams, stream_id);
  current = stream != NULL ? (gint64) stream->events->len : 0;

  /* Idempotency first: skip keys already stored in this stream (and, to
   * be robust, keys repeated in the batch, which the stream layer drops). */
  for (guint i = 0; i < n_events; i++)
    {
      const char *key = es_candidate_event_get_idempotency_key (events[i]);

      if (key != NULL)
        {
          if (stream != NULL && g_hash_table_contains (stream->keys, key))
            continue;
          if (!g_hash_table_add (batch_keys, (gpointer) key))
            continue;
        }
      g_ptr_array_add (accepted, events[i]);
    }

  /* Then the expected version, unless every event was stored already: a
   * retry of a stored batch succeeds whatever version it expects. */
  if (accepted->len > 0 && expected_version != ES_VERSION_ANY && expected_version != current)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   "Expected version %" G_GINT64_FORMAT " but stream '%s' is at version %"
                   G_GINT64_FORMAT, expected_version, stream_id, current);
      return FALSE;
    }

  /* The last point before anything changes: the "commit". */
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  if (accepted->len > 0)
    {
      if (stream == NULL)
        {
          stream = memory_stream_new (stream_id);
          g_hash_table_insert (self->streams, stream->stream_id, stream);
        }

      timestamp = date_time_new_from_usec (g_get_real_time ());
      for (guint i = 0; i < accepted->len; i++)
        {
          EsCandidateEvent *candidate = g_ptr_array_index (accepted, i);
          const char *key = es_candidate_event_get_idempotency_key (candidate);
          EsStoredEvent *event;

          event = es_stored_event_new (stream->stream_id,
                                       (gint64) self->events->len + 1,
                                       ++current,
                                       timestamp,
                                       es_candidate_event_get_event_type (candidate),
                                       es_candidate_event_get_data (candidate),
                                       key,
                                       es_candidate_event_get_metadata (candidate));
          g_ptr_array_add (self->events, event);
          g_ptr_array_add (stream->events, g_object_ref (event));
          if (key != NULL)
            g_hash_table_add (stream->keys, g_strdup (key));
        }
    }

  if (out_version != NULL)
    *out_version = current;
  return TRUE;
}

static GPtrArray *
es_test_memory_storage_read_page (EsStorageHandle  *storage,
                                  const char       *stream_id,
                                  gint64            after,
                                  EsEventFilter    *filter,
                                  guint             limit,
                                  GCancellable     *cancellable,
                                  GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GPtrArray) page = g_ptr_array_new_with_free_func (g_object_unref);
  GPtrArray *source = NULL;

  if (!check_usable (self, cancellable, error))
    return NULL;

  if (stream_id == NULL)
    source = self->events;
  else
    {
      MemoryStream *stream = g_hash_table_lookup (self->streams, stream_id);

      if (stream != NULL)
        source = stream->events;
    }

  /* Versions and sequence ids are dense, so "after" is also an index. */
  if (source != NULL)
    {
      for (gint64 i = MAX (after, 0); i < (gint64) source->len && page->len < limit; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (source, i);

          if (filter == NULL || es_event_filter_matches (filter, event))
            g_ptr_array_add (page, g_object_ref (event));
        }
    }

  return g_steal_pointer (&page);
}

/* Called with the lock held. */
static GPtrArray *
events_of (EsTestMemoryStorage *self,
           const char          *stream_id)
{
  MemoryStream *stream;

  if (stream_id == NULL)
    return self->events;
  stream = g_hash_table_lookup (self->streams, stream_id);
  return stream != NULL ? stream->events : NULL;
}

static gboolean
es_test_memory_storage_get_version (EsStorageHandle  *storage,
                                    const char       *stream_id,
                                    gint64           *out_version,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  GPtrArray *events;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  events = events_of (self, stream_id);
  if (out_version != NULL)
    *out_version = events != NULL ? (gint64) events->len : 0;
  return TRUE;
}

static EsStreamMetrics *
es_test_memory_storage_get_metrics (EsStorageHandle  *storage,
                                    const char       *stream_id,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  GPtrArray *events;
  EsStoredEvent *last = NULL;
  gint64 count;

  if (!check_usable (self, cancellable, error))
    return NULL;

  events = events_of (self, stream_id);
  count = events != NULL ? (gint64) events->len : 0;
  if (count > 0)
    last = g_ptr_array_index (events, count - 1);

  return es_stream_metrics_new (count, count,
                                last != NULL ? es_stored_event_get_timestamp (last) : NULL);
}

static gboolean
es_test_memory_storage_save_snapshot (EsStorageHandle  *storage,
                                      const char       *stream_id,
                                      const char       *projection_name,
                                      gint64            version,
                                      GBytes           *state,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GBytes) empty = NULL;
  g_autoptr(GDateTime) now = NULL;
  EsSnapshot *snapshot;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (state == NULL)
    state = empty = g_bytes_new (NULL, 0);

  now = date_time_new_from_usec (g_get_real_time ());
  snapshot = es_snapshot_new (stream_id != NULL ? stream_id : ES_ALL_STREAM,
                              projection_name, version, state, now);
  g_hash_table_replace (self->snapshots, snapshot_key (stream_id, projection_name), snapshot);
  return TRUE;
}

static EsSnapshot *
es_test_memory_storage_load_snapshot (EsStorageHandle  *storage,
                                      const char       *stream_id,
                                      const char       *projection_name,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autofree char *key = NULL;
  EsSnapshot *snapshot;

  if (!check_usable (self, cancellable, error))
    return NULL;

  key = snapshot_key (stream_id, projection_name);
  snapshot = g_hash_table_lookup (self->snapshots, key);
  return snapshot != NULL ? g_object_ref (snapshot) : NULL;
}

static gboolean
es_test_memory_storage_close (EsStorageHandle  *storage,
                              GCancellable     *cancellable,
                              GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  /* Closing twice is harmless; the data goes with the first close. */
  self->closed = TRUE;
  g_ptr_array_set_size (self->events, 0);
  g_hash_table_remove_all (self->streams);
  g_hash_table_remove_all (self->snapshots);
  return TRUE;
}

static void
es_test_memory_storage_iface_init (EsStorageHandleInterface *iface)
{
  iface->append = es_test_memory_storage_append;
  iface->read_page = es_test_memory_storage_read_page;
  iface->get_version = es_test_memory_storage_get_version;
  iface->get_metrics = es_test_memory_storage_get_metrics;
  iface->save_snapshot = es_test_memory_storage_save_snapshot;
  iface->load_snapshot = es_test_memory_storage_load_snapshot;
  iface->close = es_test_memory_storage_close;
}

static void
es_test_memory_storage_finalize (GObject *object)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (object);

  g_ptr_array_unref (self->events);
  g_hash_table_unref (self->streams);
  g_hash_table_unref (self->snapshots);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (es_test_memory_storage_parent_class)->finalize (object);
}

static void
es_test_memory_storage_class_init (EsTestMemoryStorageClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = es_test_memory_storage_finalize;
}

static void
es_test_memory_storage_init (EsTestMemoryStorage *self)
{
  g_mutex_init (&self->lock);
  self->events = g_ptr_array_new_with_free_func (g_object_unref);
  self->streams = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, memory_stream_free);
  self->snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
}

/**
 * es_test_memory_storage_new:
 *
 * Returns: (transfer full): a new, empty, in-memory storage
 */
EsTestMemoryStorage *
es_test_memory_storage_new (void)
{
  return g_object_new (ES_TYPE_TEST_MEMORY_STORAGE, NULL);
}

/* The notifier (see es-memory-storage.h). */
struct _EsTestMemoryNotifier
{
  EsStorageNotifier parent_instance;
};

G_DEFINE_FINAL_TYPE (EsTestMemoryNotifier, es_test_memory_notifier, ES_TYPE_STORAGE_NOTIFIER)

static void
es_test_memory_notifier_class_init (EsTestMemoryNotifierClass *klass)
{
}

static void
es_test_memory_notifier_init (EsTestMemoryNotifier *self)
{
}

/**
 * es_test_memory_notifier_new:
 * @storage: the storage to deliver from
 *
 * Returns: (transfer full): a notifier for @storage, not started
 */
EsNotifier *
es_test_memory_notifier_new (EsTestMemoryStorage *storage)
{
  return g_object_new (ES_TYPE_TEST_MEMORY_NOTIFIER, "storage", storage, NULL);
}
