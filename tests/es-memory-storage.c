/* es-memory-storage.c: an in-memory EsStorageHandle, for tests.
 *
 * Everything lives in memory under one mutex: the log (every stored event
 * and tombstone marker, in sequence-id order), one entry per stream (its
 * row: state, kept version, policy; its events in version order; its
 * idempotency keys), the snapshots and the database-wide policy. It uses
 * nothing but the public API of es-glib, and so shows what a third-party
 * backend has to do.
 *
 * It is also the reference implementation of the life-cycle rules of
 * 0.2 (see the wrappers in es-storage-handle.c): the conformance tests
 * run on it as on SQLite and PostgreSQL. Each operation happens under the
 * lock, so it is done or not done, like a transaction. Positions come
 * from a high-water mark that only grows: an event or a delete takes the
 * next one, and none is ever used twice.
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

#include <string.h>

#define TOMBSTONE_EVENT_TYPE "$tombstone"

typedef struct
{
  char          *stream_id;  /* (owned) */
  GPtrArray     *events;     /* (owned) (element-type EsStoredEvent): by version */
  GHashTable    *keys;       /* (owned) (element-type utf8): idempotency keys stored */
  EsStreamState  state;
  gint64         version;    /* only grows */
  GTimeSpan      max_age;
  gint64         max_count;
} MemoryStream;

struct _EsTestMemoryStorage
{
  GObject     parent_instance;

  GMutex      lock;
  GPtrArray  *log;            /* guarded by lock (element-type EsStoredEvent):
                               * events and tombstone markers by sequence id */
  gint64      last_position;  /* guarded by lock: the last position used */
  GHashTable *streams;        /* guarded by lock: stream id -> MemoryStream */
  GHashTable *snapshots;      /* guarded by lock: snapshot_key() -> EsSnapshot */
  GTimeSpan   max_age;        /* guarded by lock: the database-wide policy */
  gint64      max_count;
  GTimeSpan   clock_offset;   /* guarded by lock: added to the real time */
  gboolean    closed;         /* guarded by lock */
  GHashTable *subscriptions;  /* guarded by lock: name -> MemorySubscription */
  GHashTable *held;           /* guarded by lock: (element-type utf8) names held */
  GHashTable *meta_indexes;   /* guarded by lock: (element-type utf8) declared metadata paths */
};

typedef struct
{
  char   *name;       /* (owned) */
  char   *stream_id;  /* (owned) ES_ALL_STREAM for every stream */
  gint64  position;
  GBytes *state;      /* (owned) (nullable) */
  gint64  updated;    /* usec since the epoch */
} MemorySubscription;

static void
memory_subscription_free (gpointer data)
{
  MemorySubscription *sub = data;

  g_free (sub->name);
  g_free (sub->stream_id);
  g_clear_pointer (&sub->state, g_bytes_unref);
  g_free (sub);
}

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
  stream->state = ES_STREAM_STATE_ACTIVE;
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

static gboolean
is_marker (EsStoredEvent *event)
{
  return (es_stored_event_get_flags (event) & ES_STORED_EVENT_FLAGS_TOMBSTONE) != 0;
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

/* Called with the lock held: the stream's row, created if asked. */
static MemoryStream *
lookup_stream (EsTestMemoryStorage *self,
               const char          *stream_id,
               gboolean             create)
{
  MemoryStream *stream = g_hash_table_lookup (self->streams, stream_id);

  if (stream == NULL && create)
    {
      stream = memory_stream_new (stream_id);
      g_hash_table_insert (self->streams, stream->stream_id, stream);
    }
  return stream;
}

static gboolean
tombstoned_error (const char  *stream_id,
                  GError     **error)
{
  g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
               "Stream '%s' was deleted for good (tombstoned) and cannot be written to",
               stream_id);
  return FALSE;
}

/* The first index of @array (sorted by @position_of) whose position is
 * greater than @position. */
static guint
upper_bound (GPtrArray *array,
             gint64     position,
             gboolean   by_version)
{
  guint lo = 0, hi = array->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      EsStoredEvent *event = g_ptr_array_index (array, mid);
      gint64 p = by_version ? es_stored_event_get_version (event)
                            : es_stored_event_get_sequence_id (event);

      if (p <= position)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

/* Called with the lock held: removes @doomed (a set of events of
 * @stream) from the stream, the log and the keys. */
static void
remove_events (EsTestMemoryStorage *self,
               MemoryStream        *stream,
               GHashTable          *doomed)
{
  guint kept = 0;

  if (g_hash_table_size (doomed) == 0)
    return;

  for (guint i = 0; i < self->log->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (self->log, i);

      if (g_hash_table_contains (doomed, event))
        g_object_unref (event);
      else
        self->log->pdata[kept++] = event;
    }
  self->log->len = kept;
  kept = 0;
  for (guint i = 0; i < stream->events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (stream->events, i);

      if (g_hash_table_contains (doomed, event))
        {
          const char *key = es_stored_event_get_idempotency_key (event);

          if (key != NULL)
            g_hash_table_remove (stream->keys, key);
          g_object_unref (event);
        }
      else
        stream->events->pdata[kept++] = event;
    }
  stream->events->len = kept;
}

/* Called with the lock held: drops the snapshots of @stream that the
 * stored events no longer follow: a snapshot stays iff every event after
 * its version is still stored. Snapshots of @all are never touched. */
static void
prune_snapshots (EsTestMemoryStorage *self,
                 MemoryStream        *stream,
                 gboolean             all)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->snapshots);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      EsSnapshot *snapshot = value;
      gint64 version = es_snapshot_get_version (snapshot);
      gint64 stored_after;

      if (!g_str_equal (es_snapshot_get_stream_id (snapshot), stream->stream_id))
        continue;
      stored_after = (gint64) stream->events->len - upper_bound (stream->events, version, TRUE);
      if (all || stored_after != stream->version - version)
        g_hash_table_iter_remove (&iter);
    }
}

static gint64
smaller_limit (gint64 a,
               gint64 b)
{
  if (a == 0)
    return b;
  if (b == 0)
    return a;
  return MIN (a, b);
}

/* Called with the lock held: enforces the effective policy of @stream
 * (for each of age and count, the smaller non-zero of the stream's and
 * the database's) against @now_usec. Returns the number removed. */
static gint64
enforce (EsTestMemoryStorage *self,
         MemoryStream        *stream,
         gint64               now_usec)
{
  g_autoptr(GHashTable) doomed = g_hash_table_new (NULL, NULL);
  GTimeSpan max_age = smaller_limit (stream->max_age, self->max_age);
  gint64 max_count = smaller_limit (stream->max_count, self->max_count);
  guint n;

  if (max_count > 0 && stream->events->len > (guint64) max_count)
    for (guint i = 0; i < stream->events->len - (guint) max_count; i++)
      g_hash_table_add (doomed, g_ptr_array_index (stream->events, i));

  if (max_age > 0)
    for (guint i = 0; i < stream->events->len; i++)
      {
        EsStoredEvent *event = g_ptr_array_index (stream->events, i);

        if (es_stored_event_get_timestamp_usec (event) < now_usec - max_age)
          g_hash_table_add (doomed, event);
      }

  n = g_hash_table_size (doomed);
  if (n > 0)
    {
      remove_events (self, stream, doomed);
      prune_snapshots (self, stream, FALSE);
    }
  return n;
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

  stream = lookup_stream (self, stream_id, FALSE);
  /* A tombstone comes before anything else, idempotency included. */
  if (stream != NULL && stream->state == ES_STREAM_STATE_TOMBSTONED)
    return tombstoned_error (stream_id, error);
  current = stream != NULL ? stream->version : 0;

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
      gint64 now = g_get_real_time () + self->clock_offset;

      stream = lookup_stream (self, stream_id, TRUE);
      stream->state = ES_STREAM_STATE_ACTIVE;
      timestamp = date_time_new_from_usec (now);
      for (guint i = 0; i < accepted->len; i++)
        {
          EsCandidateEvent *candidate = g_ptr_array_index (accepted, i);
          const char *key = es_candidate_event_get_idempotency_key (candidate);
          EsStoredEvent *event;

          event = es_stored_event_new (stream->stream_id,
                                       ++self->last_position,
                                       ++current,
                                       timestamp,
                                       es_candidate_event_get_event_type (candidate),
                                       es_candidate_event_get_data (candidate),
                                       key,
                                       es_candidate_event_get_metadata (candidate));
          g_ptr_array_add (self->log, event);
          g_ptr_array_add (stream->events, g_object_ref (event));
          if (key != NULL)
            g_hash_table_add (stream->keys, g_strdup (key));
        }
      stream->version = current;

      /* Retention, in the same "transaction": the events just written are
       * not older than now. */
      enforce (self, stream, now);
    }

  if (out_version != NULL)
    *out_version = current;
  return TRUE;
}

static GPtrArray *
es_test_memory_storage_read_page_full (EsStorageHandle  *storage,
                                       const char       *stream_id,
                                       gint64            position,
                                       EsReadFlags       flags,
                                       EsEventFilter    *filter,
                                       guint             limit,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GPtrArray) page = g_ptr_array_new_with_free_func (g_object_unref);
  gboolean backwards = (flags & ES_READ_FLAGS_BACKWARDS) != 0;
  gboolean markers = stream_id == NULL && (flags & ES_READ_FLAGS_INCLUDE_TOMBSTONES) != 0;
  GPtrArray *source = NULL;
  gint64 i;

  if (!check_usable (self, cancellable, error))
    return NULL;

  if (stream_id == NULL)
    source = self->log;
  else
    {
      MemoryStream *stream = lookup_stream (self, stream_id, FALSE);

      if (stream != NULL)
        source = stream->events;
    }
  if (source == NULL)
    return g_steal_pointer (&page);

  /* Forwards from the first position after @position; backwards from the
   * last position before it. */
  if (backwards)
    i = (gint64) upper_bound (source, position == G_MAXINT64 ? G_MAXINT64 : position - 1,
                              stream_id != NULL) - 1;
  else
    i = upper_bound (source, position, stream_id != NULL);

  for (; i >= 0 && i < (gint64) source->len && page->len < limit; i += backwards ? -1 : 1)
    {
      EsStoredEvent *event = g_ptr_array_index (source, i);

      if (is_marker (event))
        {
          /* Filters never see markers, and only this read returns them. */
          if (markers)
            g_ptr_array_add (page, g_object_ref (event));
          continue;
        }
      if (filter == NULL || es_event_filter_matches (filter, event))
        g_ptr_array_add (page, g_object_ref (event));
    }

  return g_steal_pointer (&page);
}

static gint64
es_test_memory_storage_count_events (EsStorageHandle  *storage,
                                     const char       *stream_id,
                                     EsEventFilter    *filter,
                                     gint64            after,
                                     gint64            until,
                                     GCancellable     *cancellable,
                                     GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  GPtrArray *source = NULL;
  gint64 count = 0;

  if (!check_usable (self, cancellable, error))
    return -1;

  if (stream_id == NULL)
    source = self->log;
  else
    {
      MemoryStream *stream = lookup_stream (self, stream_id, FALSE);

      if (stream != NULL)
        source = stream->events;
    }

  for (guint i = upper_bound (source != NULL ? source : self->log, after, stream_id != NULL);
       source != NULL && i < source->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (source, i);
      gint64 position = stream_id != NULL ? es_stored_event_get_version (event)
                                          : es_stored_event_get_sequence_id (event);

      if (position > until)
        break;
      if (!is_marker (event) && (filter == NULL || es_event_filter_matches (filter, event)))
        count++;
    }
  return count;
}

static gint64
es_test_memory_storage_locate_event (EsStorageHandle  *storage,
                                     const char       *stream_id,
                                     gint64            position,
                                     EsReadFlags       flags,
                                     EsEventFilter    *filter,
                                     guint64           index,
                                     GCancellable     *cancellable,
                                     GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  gboolean backwards = (flags & ES_READ_FLAGS_BACKWARDS) != 0;
  GPtrArray *source = NULL;
  gint64 i;

  if (!check_usable (self, cancellable, error))
    return -1;

  if (stream_id == NULL)
    source = self->log;
  else
    {
      MemoryStream *stream = lookup_stream (self, stream_id, FALSE);

      if (stream != NULL)
        source = stream->events;
    }
  if (source == NULL)
    return 0;

  if (backwards)
    i = (gint64) upper_bound (source, position == G_MAXINT64 ? G_MAXINT64 : position - 1,
                              stream_id != NULL) - 1;
  else
    i = upper_bound (source, position, stream_id != NULL);

  for (; i >= 0 && i < (gint64) source->len; i += backwards ? -1 : 1)
    {
      EsStoredEvent *event = g_ptr_array_index (source, i);

      if (is_marker (event) || (filter != NULL && !es_event_filter_matches (filter, event)))
        continue;
      if (index-- == 0)
        return stream_id != NULL ? es_stored_event_get_version (event)
                                 : es_stored_event_get_sequence_id (event);
    }
  return 0;
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
  return es_test_memory_storage_read_page_full (storage, stream_id, after, ES_READ_FLAGS_NONE,
                                                filter, limit, cancellable, error);
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
  gint64 version = 0;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (stream_id == NULL)
    version = self->last_position;
  else
    {
      MemoryStream *stream = lookup_stream (self, stream_id, FALSE);

      version = stream != NULL ? stream->version : 0;
    }
  if (out_version != NULL)
    *out_version = version;
  return TRUE;
}

/* Called with the lock held: the events (not markers) of the whole log. */
static gint64
count_log_events (EsTestMemoryStorage  *self,
                  EsStoredEvent       **out_first,
                  EsStoredEvent       **out_last)
{
  gint64 count = 0;

  *out_first = *out_last = NULL;
  for (guint i = 0; i < self->log->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (self->log, i);

      if (is_marker (event))
        continue;
      if (*out_first == NULL)
        *out_first = event;
      *out_last = event;
      count++;
    }
  return count;
}

static EsStreamMetrics *
es_test_memory_storage_get_metrics (EsStorageHandle  *storage,
                                    const char       *stream_id,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  EsStoredEvent *first = NULL, *last = NULL;
  gint64 version = 0, count = 0;

  if (!check_usable (self, cancellable, error))
    return NULL;

  if (stream_id == NULL)
    {
      count = count_log_events (self, &first, &last);
      version = self->last_position;
    }
  else
    {
      MemoryStream *stream = lookup_stream (self, stream_id, FALSE);

      if (stream != NULL)
        {
          version = stream->version;
          count = stream->events->len;
          if (count > 0)
            last = g_ptr_array_index (stream->events, count - 1);
        }
    }

  return es_stream_metrics_new (version, count,
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
  g_ptr_array_set_size (self->log, 0);
  g_hash_table_remove_all (self->streams);
  g_hash_table_remove_all (self->snapshots);
  g_hash_table_remove_all (self->subscriptions);
  return TRUE;
}

/* Called with the lock held. */
static EsStreamInfo *
stream_info_of (MemoryStream *stream)
{
  EsStoredEvent *first = NULL, *last = NULL;

  if (stream->events->len > 0)
    {
      first = g_ptr_array_index (stream->events, 0);
      last = g_ptr_array_index (stream->events, stream->events->len - 1);
    }

  return es_stream_info_new (stream->stream_id, stream->state, stream->version,
                             stream->events->len,
                             first != NULL ? es_stored_event_get_version (first) : 0,
                             first != NULL ? es_stored_event_get_timestamp_usec (first) : 0,
                             last != NULL ? es_stored_event_get_timestamp_usec (last) : 0,
                             stream->max_age, stream->max_count);
}

static EsStreamInfo *
es_test_memory_storage_get_stream_info (EsStorageHandle  *storage,
                                        const char       *stream_id,
                                        GCancellable     *cancellable,
                                        GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  MemoryStream *stream;

  if (!check_usable (self, cancellable, error))
    return NULL;

  if (stream_id == NULL)
    {
      EsStoredEvent *first = NULL, *last = NULL;
      gint64 count = count_log_events (self, &first, &last);

      return es_stream_info_new (ES_ALL_STREAM, ES_STREAM_STATE_ACTIVE, self->last_position,
                                 count,
                                 first != NULL ? es_stored_event_get_sequence_id (first) : 0,
                                 first != NULL ? es_stored_event_get_timestamp_usec (first) : 0,
                                 last != NULL ? es_stored_event_get_timestamp_usec (last) : 0,
                                 self->max_age, self->max_count);
    }

  stream = lookup_stream (self, stream_id, FALSE);
  if (stream == NULL)
    return es_stream_info_new (stream_id, ES_STREAM_STATE_ACTIVE, 0, 0, 0, 0, 0, 0, 0);
  return stream_info_of (stream);
}

static int
compare_ids (gconstpointer a,
             gconstpointer b)
{
  /* Byte-wise, as the backends order them. */
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static GPtrArray *
es_test_memory_storage_list_streams (EsStorageHandle     *storage,
                                     const char          *prefix,
                                     const char          *after_stream_id,
                                     EsListStreamsFlags   flags,
                                     guint                limit,
                                     GCancellable        *cancellable,
                                     GError             **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GPtrArray) page = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) ids = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer key;

  if (!check_usable (self, cancellable, error))
    return NULL;

  g_hash_table_iter_init (&iter, self->streams);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      const char *id = key;

      if (prefix != NULL && strncmp (id, prefix, strlen (prefix)) != 0)
        continue;
      if (after_stream_id != NULL && strcmp (id, after_stream_id) <= 0)
        continue;
      g_ptr_array_add (ids, key);
    }
  g_ptr_array_sort (ids, compare_ids);

  for (guint i = 0; i < ids->len && page->len < limit; i++)
    {
      MemoryStream *stream = g_hash_table_lookup (self->streams, g_ptr_array_index (ids, i));

      if (stream->state != ES_STREAM_STATE_ACTIVE &&
          (flags & ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED) == 0)
        continue;
      g_ptr_array_add (page, stream_info_of (stream));
    }

  return g_steal_pointer (&page);
}

static gboolean
es_test_memory_storage_delete_stream (EsStorageHandle  *storage,
                                      const char       *stream_id,
                                      gint64            expected_version,
                                      EsDeleteFlags     flags,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GHashTable) doomed = g_hash_table_new (NULL, NULL);
  gboolean tombstone = (flags & ES_DELETE_FLAGS_TOMBSTONE) != 0;
  MemoryStream *stream;
  gint64 current;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  stream = lookup_stream (self, stream_id, FALSE);
  if (stream != NULL && stream->state == ES_STREAM_STATE_TOMBSTONED)
    {
      /* Tombstoning again changes nothing; anything else is refused. */
      if (tombstone)
        return TRUE;
      return tombstoned_error (stream_id, error);
    }

  current = stream != NULL ? stream->version : 0;
  if (expected_version != ES_VERSION_ANY && expected_version != current)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   "Expected version %" G_GINT64_FORMAT " but stream '%s' is at version %"
                   G_GINT64_FORMAT, expected_version, stream_id, current);
      return FALSE;
    }

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  stream = lookup_stream (self, stream_id, TRUE);
  for (guint i = 0; i < stream->events->len; i++)
    g_hash_table_add (doomed, g_ptr_array_index (stream->events, i));
  remove_events (self, stream, doomed);
  prune_snapshots (self, stream, TRUE);

  /* Every delete takes a position, which no event gets; a hard delete
   * puts its marker there. */
  self->last_position++;
  if (tombstone)
    {
      g_autoptr(GDateTime) now = date_time_new_from_usec (g_get_real_time ());
      g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);

      stream->state = ES_STREAM_STATE_TOMBSTONED;
      g_ptr_array_add (self->log,
                       es_stored_event_new_full (stream_id, self->last_position,
                                                 stream->version, now, TOMBSTONE_EVENT_TYPE,
                                                 empty, NULL, NULL,
                                                 ES_STORED_EVENT_FLAGS_TOMBSTONE));
    }
  else
    stream->state = ES_STREAM_STATE_DELETED;
  return TRUE;
}

static gboolean
es_test_memory_storage_truncate_stream (EsStorageHandle  *storage,
                                        const char       *stream_id,
                                        gint64            before_version,
                                        GCancellable     *cancellable,
                                        GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GHashTable) doomed = g_hash_table_new (NULL, NULL);
  MemoryStream *stream;
  gint64 current;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  stream = lookup_stream (self, stream_id, FALSE);
  if (stream != NULL && stream->state == ES_STREAM_STATE_TOMBSTONED)
    return tombstoned_error (stream_id, error);

  current = stream != NULL ? stream->version : 0;
  if (before_version > current)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   "Cannot truncate stream '%s' before version %" G_GINT64_FORMAT
                   ": it is at version %" G_GINT64_FORMAT,
                   stream_id, before_version, current);
      return FALSE;
    }

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  for (guint i = 0; i < stream->events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (stream->events, i);

      if (es_stored_event_get_version (event) >= before_version)
        break;
      g_hash_table_add (doomed, event);
    }
  remove_events (self, stream, doomed);
  prune_snapshots (self, stream, FALSE);
  return TRUE;
}

static gboolean
es_test_memory_storage_erase_event (EsStorageHandle  *storage,
                                    const char       *stream_id,
                                    gint64            version,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GBytes) empty = NULL;
  EsStoredEvent *event = NULL, *erased;
  MemoryStream *stream;
  guint index = 0, log_index;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  stream = lookup_stream (self, stream_id, FALSE);
  if (stream != NULL)
    {
      index = upper_bound (stream->events, version - 1, TRUE);
      if (index < stream->events->len &&
          es_stored_event_get_version (g_ptr_array_index (stream->events, index)) == version)
        event = g_ptr_array_index (stream->events, index);
    }
  if (event == NULL)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                   "Event %" G_GINT64_FORMAT " of stream '%s' is not stored", version,
                   stream_id);
      return FALSE;
    }
  if (es_stored_event_get_erased (event))
    return TRUE;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  /* Everything but the payload and the metadata stays. */
  empty = g_bytes_new (NULL, 0);
  erased = es_stored_event_new_full (stream_id, es_stored_event_get_sequence_id (event),
                                     version, es_stored_event_get_timestamp (event),
                                     es_stored_event_get_event_type (event), empty,
                                     es_stored_event_get_idempotency_key (event), NULL,
                                     ES_STORED_EVENT_FLAGS_ERASED);
  log_index = upper_bound (self->log, es_stored_event_get_sequence_id (event) - 1, FALSE);
  g_assert (g_ptr_array_index (self->log, log_index) == event);
  self->log->pdata[log_index] = g_object_ref (erased);
  g_object_unref (event);
  stream->events->pdata[index] = erased;
  g_object_unref (event);
  return TRUE;
}

static gboolean
es_test_memory_storage_set_retention (EsStorageHandle  *storage,
                                      const char       *stream_id,
                                      GTimeSpan         max_age,
                                      gint64            max_count,
                                      GCancellable     *cancellable,
                                      GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  gint64 now = g_get_real_time () + self->clock_offset;
  MemoryStream *stream;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (stream_id == NULL)
    {
      GHashTableIter iter;
      gpointer value;

      self->max_age = max_age;
      self->max_count = max_count;
      g_hash_table_iter_init (&iter, self->streams);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        enforce (self, value, now);
      return TRUE;
    }

  stream = lookup_stream (self, stream_id, FALSE);
  if (stream != NULL && stream->state == ES_STREAM_STATE_TOMBSTONED)
    return tombstoned_error (stream_id, error);

  stream = lookup_stream (self, stream_id, TRUE);
  stream->max_age = max_age;
  stream->max_count = max_count;
  enforce (self, stream, now);
  return TRUE;
}

static gint64
es_test_memory_storage_sweep (EsStorageHandle  *storage,
                              gint64            now_usec,
                              gboolean         *out_has_age_policy,
                              GCancellable     *cancellable,
                              GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  gboolean has_age_policy = self->max_age > 0;
  gint64 removed = 0;
  GHashTableIter iter;
  gpointer value;

  if (!check_usable (self, cancellable, error))
    return -1;

  g_hash_table_iter_init (&iter, self->streams);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      MemoryStream *stream = value;

      if (stream->max_age > 0)
        has_age_policy = TRUE;
      removed += enforce (self, stream, now_usec);
    }

  if (out_has_age_policy != NULL)
    *out_has_age_policy = has_age_policy;
  return removed;
}

static gboolean
es_test_memory_storage_compact (EsStorageHandle  *storage,
                                GCancellable     *cancellable,
                                GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  /* Memory given back as it is deleted: nothing to do. */
  return check_usable (self, cancellable, error);
}

/* Durable subscriptions (0.2). The storage is one database that only this
 * process sees, used through this one object: a name held is held by a
 * handle of this storage, so a second acquisition fails with BUSY at once
 * (it could only wait for itself), and nobody is ever waited for. */

/* Called with the lock held: the head of a subscription's stream. */
static gint64
subscription_head (EsTestMemoryStorage *self,
                   const char          *stream_id)
{
  MemoryStream *stream;

  if (stream_id == NULL || g_str_equal (stream_id, ES_ALL_STREAM))
    return self->last_position;
  stream = lookup_stream (self, stream_id, FALSE);
  return stream != NULL ? stream->version : 0;
}

/* Called with the lock held. */
static EsSubscriptionInfo *
subscription_info_of (EsTestMemoryStorage *self,
                      MemorySubscription  *sub,
                      gboolean             with_state)
{
  gint64 lag = subscription_head (self, sub->stream_id) - sub->position;

  return es_subscription_info_new (sub->name, sub->stream_id, sub->position, MAX (lag, 0),
                                   with_state ? sub->state : NULL, sub->updated);
}

static EsSubscriptionInfo *
es_test_memory_storage_get_subscription (EsStorageHandle  *storage,
                                         const char       *name,
                                         GCancellable     *cancellable,
                                         GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  MemorySubscription *sub;

  if (!check_usable (self, cancellable, error))
    return NULL;

  sub = g_hash_table_lookup (self->subscriptions, name);
  return sub != NULL ? subscription_info_of (self, sub, TRUE) : NULL;
}

static int
compare_subscriptions (gconstpointer a,
                       gconstpointer b)
{
  EsSubscriptionInfo *x = *(EsSubscriptionInfo **) a;
  EsSubscriptionInfo *y = *(EsSubscriptionInfo **) b;

  return strcmp (es_subscription_info_get_name (x), es_subscription_info_get_name (y));
}

static GPtrArray *
es_test_memory_storage_list_subscriptions (EsStorageHandle  *storage,
                                           GCancellable     *cancellable,
                                           GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  GPtrArray *list;
  GHashTableIter iter;
  gpointer value;

  if (!check_usable (self, cancellable, error))
    return NULL;

  list = g_ptr_array_new_with_free_func (g_object_unref);
  g_hash_table_iter_init (&iter, self->subscriptions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (list, subscription_info_of (self, value, FALSE));
  g_ptr_array_sort (list, compare_subscriptions);
  return list;
}

static gboolean
es_test_memory_storage_save_checkpoint (EsStorageHandle  *storage,
                                        const char       *name,
                                        const char       *stream_id,
                                        gint64            position,
                                        GBytes           *state,
                                        GCancellable     *cancellable,
                                        GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  const char *id = stream_id != NULL ? stream_id : ES_ALL_STREAM;
  MemorySubscription *sub;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  sub = g_hash_table_lookup (self->subscriptions, name);
  if (sub != NULL && !g_str_equal (sub->stream_id, id))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   "Subscription '%s' follows stream '%s', not '%s'", name, sub->stream_id, id);
      return FALSE;
    }
  if (sub != NULL && position < sub->position)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   "Checkpoint %" G_GINT64_FORMAT " of subscription '%s' is before the stored "
                   "checkpoint %" G_GINT64_FORMAT, position, name, sub->position);
      return FALSE;
    }

  if (sub == NULL)
    {
      sub = g_new0 (MemorySubscription, 1);
      sub->name = g_strdup (name);
      sub->stream_id = g_strdup (id);
      g_hash_table_insert (self->subscriptions, sub->name, sub);
    }
  sub->position = position;
  if (state != NULL)
    {
      g_clear_pointer (&sub->state, g_bytes_unref);
      sub->state = g_bytes_ref (state);
    }
  sub->updated = g_get_real_time () + self->clock_offset;
  return TRUE;
}

/* Called with the lock held: the stored subscription nobody holds. */
static MemorySubscription *
lookup_free_subscription (EsTestMemoryStorage  *self,
                          const char           *name,
                          GError              **error)
{
  MemorySubscription *sub = g_hash_table_lookup (self->subscriptions, name);

  if (sub == NULL)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND, "No subscription '%s' is stored", name);
      return NULL;
    }
  if (g_hash_table_contains (self->held, name))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_BUSY,
                   "Subscription '%s' is being consumed: stop it first", name);
      return NULL;
    }
  return sub;
}

static gboolean
es_test_memory_storage_reset_subscription (EsStorageHandle  *storage,
                                           const char       *name,
                                           gint64            position,
                                           GCancellable     *cancellable,
                                           GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  MemorySubscription *sub;
  gint64 head;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  sub = lookup_free_subscription (self, name, error);
  if (sub == NULL)
    return FALSE;

  head = subscription_head (self, sub->stream_id);
  if (position > head)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   "Cannot reset subscription '%s' to position %" G_GINT64_FORMAT ": the head "
                   "of stream '%s' is %" G_GINT64_FORMAT, name, position, sub->stream_id, head);
      return FALSE;
    }

  sub->position = position;
  g_clear_pointer (&sub->state, g_bytes_unref);
  sub->updated = g_get_real_time () + self->clock_offset;
  return TRUE;
}

static gboolean
es_test_memory_storage_delete_subscription (EsStorageHandle  *storage,
                                            const char       *name,
                                            GCancellable     *cancellable,
                                            GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (lookup_free_subscription (self, name, error) == NULL)
    return FALSE;

  g_hash_table_remove (self->subscriptions, name);
  return TRUE;
}

static gboolean
es_test_memory_storage_acquire_subscription (EsStorageHandle  *storage,
                                             const char       *name,
                                             gboolean          wait,
                                             GCancellable     *cancellable,
                                             GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  if (!check_usable (self, cancellable, error))
    return FALSE;

  /* Only this storage's own handles can hold it: waiting would be
   * waiting for ourselves. */
  if (g_hash_table_contains (self->held, name))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_BUSY,
                   "Subscription '%s' is already consumed through this storage", name);
      return FALSE;
    }

  g_hash_table_add (self->held, g_strdup (name));
  return TRUE;
}

static void
es_test_memory_storage_release_subscription (EsStorageHandle *storage,
                                             const char      *name)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  g_hash_table_remove (self->held, name);
}

/* The rules are those of es_storage_handle_import_events(): validated in
 * full first, then applied, under the lock: all or nothing. */
static gboolean
same_event (EsStoredEvent *a,
            EsStoredEvent *b)
{
  GBytes *da = es_stored_event_get_data (a);
  GBytes *db = es_stored_event_get_data (b);

  return g_strcmp0 (es_stored_event_get_event_type (a), es_stored_event_get_event_type (b)) == 0 &&
         g_strcmp0 (es_stored_event_get_idempotency_key (a),
                    es_stored_event_get_idempotency_key (b)) == 0 &&
         g_strcmp0 (es_stored_event_get_metadata (a), es_stored_event_get_metadata (b)) == 0 &&
         es_stored_event_get_erased (a) == es_stored_event_get_erased (b) &&
         g_bytes_equal (da, db);
}

static gint64
es_test_memory_storage_import_events (EsStorageHandle       *storage,
                                      EsStoredEvent * const *events,
                                      guint                  n_events,
                                      guint                 *out_failed_index,
                                      GCancellable          *cancellable,
                                      GError               **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GHashTable) pending = g_hash_table_new (g_str_hash, g_str_equal);  /* id → version */
  g_autoptr(GHashTable) pending_keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree gboolean *skip = g_new0 (gboolean, n_events);
  g_autofree gint64 *versions = g_new0 (gint64, n_events);
  gint64 stored = 0;

  if (!check_usable (self, cancellable, error))
    return -1;

  for (guint i = 0; i < n_events; i++)
    {
      EsStoredEvent *event = events[i];
      const char *stream_id = es_stored_event_get_stream_id (event);
      const char *key = es_stored_event_get_idempotency_key (event);
      gint64 version = es_stored_event_get_version (event);
      MemoryStream *stream = lookup_stream (self, stream_id, FALSE);
      gpointer value;
      gint64 current;

      if (out_failed_index != NULL)
        *out_failed_index = i;
      if (stream != NULL && stream->state == ES_STREAM_STATE_TOMBSTONED)
        {
          tombstoned_error (stream_id, error);
          return -1;
        }
      if (g_hash_table_lookup_extended (pending, stream_id, NULL, &value))
        current = *(gint64 *) value;
      else
        current = stream != NULL ? stream->version : 0;

      if (version <= current)
        {
          EsStoredEvent *found = NULL;

          if (stream != NULL)
            {
              guint index = upper_bound (stream->events, version - 1, TRUE);

              if (index < stream->events->len &&
                  es_stored_event_get_version (g_ptr_array_index (stream->events, index)) == version)
                found = g_ptr_array_index (stream->events, index);
            }
          if (found != NULL && same_event (found, event))
            {
              skip[i] = TRUE;
              continue;
            }
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       "Stream '%s' already holds a different event at version %" G_GINT64_FORMAT,
                       stream_id, version);
          return -1;
        }
      if (current != 0 && version != current + 1)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       "Cannot import version %" G_GINT64_FORMAT " of stream '%s': the stream "
                       "is at version %" G_GINT64_FORMAT, version, stream_id, current);
          return -1;
        }
      if (key != NULL)
        {
          g_autofree char *pkey = g_strdup_printf ("%" G_GSIZE_FORMAT ":%s%s",
                                                   strlen (stream_id), stream_id, key);

          if ((stream != NULL && g_hash_table_contains (stream->keys, key)) ||
              !g_hash_table_add (pending_keys, g_steal_pointer (&pkey)))
            {
              g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           "Idempotency key '%s' of version %" G_GINT64_FORMAT
                           " is already used in stream '%s'", key, version, stream_id);
              return -1;
            }
        }
      versions[i] = version;
      g_hash_table_insert (pending, (gpointer) stream_id, &versions[i]);
    }

  /* The last point before anything changes: the "commit". */
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return -1;

  for (guint i = 0; i < n_events; i++)
    {
      EsStoredEvent *event = events[i];
      MemoryStream *stream;
      EsStoredEvent *copy;
      g_autoptr(GDateTime) timestamp = NULL;

      if (skip[i])
        continue;
      stream = lookup_stream (self, es_stored_event_get_stream_id (event), TRUE);
      timestamp = date_time_new_from_usec (es_stored_event_get_timestamp_usec (event));
      copy = es_stored_event_new_full (stream->stream_id, ++self->last_position,
                                       es_stored_event_get_version (event), timestamp,
                                       es_stored_event_get_event_type (event),
                                       es_stored_event_get_data (event),
                                       es_stored_event_get_idempotency_key (event),
                                       es_stored_event_get_metadata (event),
                                       es_stored_event_get_flags (event) & ES_STORED_EVENT_FLAGS_ERASED);
      g_ptr_array_add (self->log, copy);
      g_ptr_array_add (stream->events, g_object_ref (copy));
      if (es_stored_event_get_idempotency_key (event) != NULL)
        g_hash_table_add (stream->keys, g_strdup (es_stored_event_get_idempotency_key (event)));
      stream->version = es_stored_event_get_version (event);
      stream->state = ES_STREAM_STATE_ACTIVE;
      stored++;
    }
  return stored;
}

/* es-glib's invariants on this backend's structures (it has no storage of
 * its own to check). */
static gboolean
es_test_memory_storage_check (EsStorageHandle        *storage,
                              EsCheckFlags            flags,
                              EsCheckReport          *report,
                              GCancellable           *cancellable,
                              GFileProgressCallback   progress_callback,
                              gpointer                progress_data,
                              GError                **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  GHashTableIter iter;
  gpointer value;
  goffset done = 0, total;

  if (!check_usable (self, cancellable, error))
    return FALSE;
  total = g_hash_table_size (self->streams);

  for (guint i = 1; i < self->log->len; i++)
    if (es_stored_event_get_sequence_id (g_ptr_array_index (self->log, i)) <=
        es_stored_event_get_sequence_id (g_ptr_array_index (self->log, i - 1)))
      es_check_report_add_problem (report, ES_CHECK_PROBLEM_SEQUENCE_ORDER, NULL,
                                   es_stored_event_get_sequence_id (g_ptr_array_index (self->log, i)),
                                   "Sequence ids are not increasing");

  g_hash_table_iter_init (&iter, self->streams);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      MemoryStream *stream = value;
      g_autoptr(GHashTable) keys = g_hash_table_new (g_str_hash, g_str_equal);

      for (guint i = 0; i < stream->events->len; i++)
        {
          EsStoredEvent *event = g_ptr_array_index (stream->events, i);
          const char *key = es_stored_event_get_idempotency_key (event);

          if (i > 0 && es_stored_event_get_version (event) !=
              es_stored_event_get_version (g_ptr_array_index (stream->events, i - 1)) + 1)
            es_check_report_add_problem (report, ES_CHECK_PROBLEM_VERSION_GAP, stream->stream_id,
                                         es_stored_event_get_version (event), "Version gap");
          if (key != NULL && !g_hash_table_add (keys, (gpointer) key))
            es_check_report_add_problem (report, ES_CHECK_PROBLEM_DUPLICATE_KEY, stream->stream_id,
                                         es_stored_event_get_version (event), "Duplicate key");
        }
      if (stream->events->len > 0 &&
          es_stored_event_get_version (g_ptr_array_index (stream->events, stream->events->len - 1)) !=
          stream->version)
        es_check_report_add_problem (report, ES_CHECK_PROBLEM_STREAM_MISMATCH, stream->stream_id,
                                     stream->version, "The stream's version is not its last event's");
      if (progress_callback != NULL)
        progress_callback (++done, total, progress_data);
    }

  g_hash_table_iter_init (&iter, self->snapshots);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      EsSnapshot *snapshot = value;
      const char *stream_id = es_snapshot_get_stream_id (snapshot);

      if (es_snapshot_get_version (snapshot) > subscription_head (self, stream_id))
        es_check_report_add_problem (report, ES_CHECK_PROBLEM_SNAPSHOT, stream_id,
                                     es_snapshot_get_version (snapshot),
                                     "A snapshot is past its stream's head");
    }
  g_hash_table_iter_init (&iter, self->subscriptions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      MemorySubscription *sub = value;

      if (sub->position > subscription_head (self, sub->stream_id))
        es_check_report_add_problem (report, ES_CHECK_PROBLEM_CHECKPOINT, sub->stream_id,
                                     sub->position, "A checkpoint is past its stream's head");
    }
  (void) flags;
  return TRUE;
}

/* Metadata indexes (0.2): the filters already run in memory, so a
 * declared path is only remembered, for the listing. */
static gboolean
es_test_memory_storage_add_metadata_index (EsStorageHandle  *storage,
                                           const char       *path,
                                           GCancellable     *cancellable,
                                           GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  if (!check_usable (self, cancellable, error))
    return FALSE;
  g_hash_table_add (self->meta_indexes, g_strdup (path));
  return TRUE;
}

static gboolean
es_test_memory_storage_remove_metadata_index (EsStorageHandle  *storage,
                                              const char       *path,
                                              GCancellable     *cancellable,
                                              GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  if (!check_usable (self, cancellable, error))
    return FALSE;
  if (!g_hash_table_remove (self->meta_indexes, path))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                   "Metadata path '%s' is not declared", path);
      return FALSE;
    }
  return TRUE;
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static GStrv
es_test_memory_storage_list_metadata_indexes (EsStorageHandle  *storage,
                                              GCancellable     *cancellable,
                                              GError          **error)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (storage);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer key;

  if (!check_usable (self, cancellable, error))
    return NULL;
  g_hash_table_iter_init (&iter, self->meta_indexes);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (paths, g_strdup (key));
  g_ptr_array_sort (paths, compare_strings);
  g_ptr_array_set_free_func (paths, NULL);
  g_ptr_array_add (paths, NULL);
  return (GStrv) g_ptr_array_free (g_steal_pointer (&paths), FALSE);
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
  iface->read_page_full = es_test_memory_storage_read_page_full;
  iface->get_stream_info = es_test_memory_storage_get_stream_info;
  iface->list_streams = es_test_memory_storage_list_streams;
  iface->delete_stream = es_test_memory_storage_delete_stream;
  iface->truncate_stream = es_test_memory_storage_truncate_stream;
  iface->erase_event = es_test_memory_storage_erase_event;
  iface->set_retention = es_test_memory_storage_set_retention;
  iface->sweep = es_test_memory_storage_sweep;
  iface->compact = es_test_memory_storage_compact;
  iface->get_subscription = es_test_memory_storage_get_subscription;
  iface->list_subscriptions = es_test_memory_storage_list_subscriptions;
  iface->save_checkpoint = es_test_memory_storage_save_checkpoint;
  iface->reset_subscription = es_test_memory_storage_reset_subscription;
  iface->delete_subscription = es_test_memory_storage_delete_subscription;
  iface->acquire_subscription = es_test_memory_storage_acquire_subscription;
  iface->release_subscription = es_test_memory_storage_release_subscription;
  iface->count_events = es_test_memory_storage_count_events;
  iface->locate_event = es_test_memory_storage_locate_event;
  iface->check = es_test_memory_storage_check;
  iface->import_events = es_test_memory_storage_import_events;
  iface->add_metadata_index = es_test_memory_storage_add_metadata_index;
  iface->remove_metadata_index = es_test_memory_storage_remove_metadata_index;
  iface->list_metadata_indexes = es_test_memory_storage_list_metadata_indexes;
}

static void
es_test_memory_storage_finalize (GObject *object)
{
  EsTestMemoryStorage *self = ES_TEST_MEMORY_STORAGE (object);

  g_ptr_array_unref (self->log);
  g_hash_table_unref (self->streams);
  g_hash_table_unref (self->snapshots);
  g_hash_table_unref (self->subscriptions);
  g_hash_table_unref (self->held);
  g_hash_table_unref (self->meta_indexes);
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
  self->log = g_ptr_array_new_with_free_func (g_object_unref);
  self->streams = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, memory_stream_free);
  self->snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->subscriptions = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                               memory_subscription_free);
  self->held = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->meta_indexes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
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

/**
 * es_test_memory_storage_set_clock_offset:
 * @self: the storage
 * @offset: what to add to the real time
 *
 * The storage's own clock (timestamps of appends, "now" of the retention
 * it enforces on append and on set_retention) runs @offset off the real
 * time; sweeps measure against the time they are given. Tests make
 * events old this way, without waiting.
 */
void
es_test_memory_storage_set_clock_offset (EsTestMemoryStorage *self,
                                         GTimeSpan            offset)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

  self->clock_offset = offset;
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
