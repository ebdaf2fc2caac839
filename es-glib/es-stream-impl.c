/* es-stream-impl.c: the stream logic, storage agnostic.
 *
 * EsStreamImpl is the library's only EsStream. It validates what
 * applications pass, drops idempotency keys repeated inside a batch, keeps
 * the handle's version, and delegates persistence to the factory's
 * EsStorageHandle and change propagation to its EsNotifier. It never
 * touches a database itself.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

#define ES_DEFAULT_PROJECTION "default"

#define ES_TYPE_STREAM_IMPL (es_stream_impl_get_type ())
G_DECLARE_FINAL_TYPE (EsStreamImpl, es_stream_impl, ES, STREAM_IMPL, GObject)

struct _EsStreamImpl
{
  GObject          parent_instance;

  EsStreamFactory *factory;     /* (owned) keeps the storage alive */
  EsStorageHandle *storage;     /* (unowned) the factory's */
  char            *stream_id;   /* (owned) */
  gboolean         is_all;      /* stream_id is ES_ALL_STREAM */

  GMutex           lock;
  gint64           version;     /* guarded by lock */
};

enum {
  PROP_0,
  PROP_STREAM_ID,
  PROP_VERSION,
  N_PROPS
};

static void es_stream_impl_iface_init (EsStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsStreamImpl, es_stream_impl, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STREAM, es_stream_impl_iface_init))

/* The backend's name for this stream: NULL is every stream. */
static const char *
storage_stream_id (EsStreamImpl *self)
{
  return self->is_all ? NULL : self->stream_id;
}

static gint64
get_version_locked (EsStreamImpl *self)
{
  gint64 version;

  g_mutex_lock (&self->lock);
  version = self->version;
  g_mutex_unlock (&self->lock);
  return version;
}

/* Records that the stream is at @version at least. Versions (and for
 * @all, sequence ids) only grow, so the handle's version only moves
 * forward: writes through one handle from several threads may report in
 * any order, and a version learnt late must not undo a newer one. */
static void
learn_version (EsStreamImpl *self,
               gint64        version)
{
  gboolean changed;

  g_mutex_lock (&self->lock);
  changed = version > self->version;
  if (changed)
    self->version = version;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify (G_OBJECT (self), "version");
}

static gboolean
check_usable (EsStreamImpl  *self,
              GCancellable  *cancellable,
              GError       **error)
{
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  return _es_stream_factory_check_open (self->factory, error);
}

/*
 * prepare_write:
 * @out_events: (out) (transfer container) (nullable): the events to hand
 *   to the storage, without repeated idempotency keys, or %NULL when that
 *   is @events itself (the usual case: nothing is copied then)
 *
 * Everything a write checks before it reaches the storage, shared by the
 * synchronous and asynchronous paths so both reject the same input.
 */
static gboolean
prepare_write (EsStreamImpl              *self,
               EsCandidateEvent * const  *events,
               guint                      n_events,
               gint64                     expected_version,
               GCancellable              *cancellable,
               GPtrArray                **out_events,
               GError                   **error)
{
  g_autoptr(GHashTable) keys = NULL;
  g_autoptr(GPtrArray) accepted = NULL;

  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (self->is_all)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   _("Stream '%s' is read-only: it holds the events of every stream"),
                   ES_ALL_STREAM);
      return FALSE;
    }

  if (expected_version < ES_VERSION_ANY)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is the version given; -1 and 0 are literal */
                   _("Expected version %lld for stream '%s' is not valid: use a version, "
                     "0 for an empty stream or -1 for any version"),
                   (long long) expected_version, self->stream_id);
      return FALSE;
    }

  for (guint i = 0; i < n_events; i++)
    {
      const char *key;

      if (!_es_validate_candidate (events[i], i, error))
        return FALSE;

      /* One event cannot repeat a key. */
      key = n_events > 1 ? es_candidate_event_get_idempotency_key (events[i]) : NULL;
      if (key != NULL)
        {
          if (keys == NULL)
            keys = g_hash_table_new (g_str_hash, g_str_equal);
          /* A key repeated inside the batch: the first occurrence wins.
           * Only then are the events copied, without the repeats. */
          if (!g_hash_table_add (keys, (gpointer) key))
            {
              if (accepted == NULL)
                {
                  accepted = g_ptr_array_new_full (n_events, g_object_unref);
                  for (guint j = 0; j < i; j++)
                    g_ptr_array_add (accepted, g_object_ref (events[j]));
                }
              continue;
            }
        }
      if (accepted != NULL)
        g_ptr_array_add (accepted, g_object_ref (events[i]));
    }

  *out_events = g_steal_pointer (&accepted);
  return TRUE;
}

/* After a successful append: the handle's version, and live watchers. */
static void
written (EsStreamImpl *self,
         gint64        version)
{
  EsNotifier *notifier = es_stream_factory_get_notifier (self->factory);

  learn_version (self, version);
  if (notifier != NULL)
    es_notifier_committed (notifier);
}

/* After a WRONG_EXPECTED_VERSION: the handle learns the stream's version,
 * so that writing again with es_stream_get_version() as the expected
 * version converges. @found is what the storage reported with the
 * conflict, -1 if it did not (a backend written for 0.1): then it is read,
 * best effort; the conflict stays the error either way. */
static void
conflicted (EsStreamImpl *self,
            gint64        found,
            GCancellable *cancellable)
{
  if (found < 0 &&
      !es_storage_handle_get_version (self->storage, self->stream_id, &found, cancellable, NULL))
    return;
  learn_version (self, found);
}

static gint64
es_stream_impl_write (EsStream                 *stream,
                      EsCandidateEvent * const *events,
                      guint                     n_events,
                      gint64                    expected_version,
                      GCancellable             *cancellable,
                      GError                  **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  g_autoptr(GPtrArray) accepted = NULL;
  GError *local_error = NULL;
  gint64 version = 0;

  if (!prepare_write (self, events, n_events, expected_version, cancellable, &accepted, error))
    return -1;
  if (accepted != NULL)
    {
      events = (EsCandidateEvent * const *) accepted->pdata;
      n_events = accepted->len;
    }

  /* Nothing to write: report where the stream is. */
  if (n_events == 0)
    {
      if (!es_storage_handle_get_version (self->storage, self->stream_id, &version,
                                          cancellable, error))
        return -1;
      learn_version (self, version);
      return version;
    }

  /* -1: a backend that does not report the version with a conflict
   * leaves it so (see conflicted()). */
  version = -1;
  if (!es_storage_handle_append (self->storage, self->stream_id, expected_version,
                                 events, n_events,
                                 &version, cancellable, &local_error))
    {
      if (g_error_matches (local_error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        conflicted (self, version, cancellable);
      g_propagate_error (error, local_error);
      return -1;
    }

  written (self, version);
  return version;
}

/* Reads the stored version of the stream (for @all: the last sequence id)
 * in a thread. */
static void
current_version_in_thread (GTask        *task,
                           gpointer      source_object,
                           gpointer      task_data,
                           GCancellable *cancellable)
{
  EsStreamImpl *self = source_object;
  GError *error = NULL;
  gint64 version = 0;

  if (es_storage_handle_get_version (self->storage, storage_stream_id (self), &version,
                                     cancellable, &error))
    _es_task_return_int64 (task, version);
  else
    g_task_return_error (task, error);
}

/* Reads the stored version in a thread, then completes @task (owned) in
 * its main context: with the conflict @error (owned) when there is one
 * (the version is then only learnt), else with the version. Either way
 * the handle learns the version there, so notify::version fires in the
 * caller's context. */
typedef struct
{
  GTask  *task;   /* (owned) */
  GError *error;  /* (owned) (nullable) */
} VersionRead;

static void
version_read_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  VersionRead *read = user_data;
  g_autoptr(GTask) task = g_steal_pointer (&read->task);
  GError *conflict = g_steal_pointer (&read->error);
  GError *error = NULL;
  gint64 version = 0;
  gboolean ok;

  g_free (read);

  ok = _es_task_propagate_int64 (G_TASK (result), &version, &error);
  if (ok)
    learn_version (ES_STREAM_IMPL (source), version);

  if (conflict != NULL)
    {
      /* The write's error stands, whatever became of the read. */
      g_clear_error (&error);
      g_task_return_error (task, conflict);
    }
  else if (ok)
    _es_task_return_int64 (task, version);
  else
    g_task_return_error (task, error);
}

static void
read_version_then_complete (EsStreamImpl *self,
                            GTask        *task,
                            GError       *conflict)
{
  g_autoptr(GTask) inner = NULL;
  VersionRead *read = g_new0 (VersionRead, 1);

  read->task = task;
  read->error = conflict;
  inner = g_task_new (self, g_task_get_cancellable (task), version_read_cb, read);
  g_task_set_source_tag (inner, read_version_then_complete);
  g_task_run_in_thread (inner, current_version_in_thread);
}

static void
appended_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  EsStreamImpl *self = g_task_get_source_object (task);
  GError *error = NULL;
  gint64 version = -1;

  if (!es_storage_handle_append_finish (ES_STORAGE_HANDLE (source), result, &version, &error))
    {
      if (!g_error_matches (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        g_task_return_error (task, error);
      else if (version >= 0)
        {
          learn_version (self, version);
          g_task_return_error (task, error);
        }
      else
        /* The backend did not say where the stream is: read it. */
        read_version_then_complete (self, g_steal_pointer (&task), error);
      return;
    }

  /* We are back in the caller's main context: notify::version fires here. */
  written (self, version);
  _es_task_return_int64 (task, version);
}

/* Not the interface's thread-per-write default: the storage gets the
 * append directly, so a backend can commit concurrent writes together. */
static void
es_stream_impl_write_async (EsStream                 *stream,
                            EsCandidateEvent * const *events,
                            guint                     n_events,
                            gint64                    expected_version,
                            GCancellable             *cancellable,
                            GAsyncReadyCallback       callback,
                            gpointer                  user_data)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  g_autoptr(GTask) task = NULL;
  g_autoptr(GPtrArray) accepted = NULL;
  GError *error = NULL;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_stream_impl_write_async);
  /* A write that committed is reported as done even if the cancellable
   * fired meanwhile: G_IO_ERROR_CANCELLED means nothing was written, so
   * only the storage, which knows whether it committed, may report it.
   * GTask must not turn a stored write into CANCELLED afterwards. */
  g_task_set_check_cancellable (task, FALSE);

  if (!prepare_write (self, events, n_events, expected_version, cancellable, &accepted, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (accepted != NULL)
    {
      events = (EsCandidateEvent * const *) accepted->pdata;
      n_events = accepted->len;
    }

  if (n_events == 0)
    {
      read_version_then_complete (self, g_steal_pointer (&task), NULL);
      return;
    }

  es_storage_handle_append_async (self->storage, self->stream_id, expected_version,
                                  events, n_events,
                                  cancellable, appended_cb, g_steal_pointer (&task));
}

static gint64
es_stream_impl_write_finish (EsStream      *stream,
                             GAsyncResult  *result,
                             GError       **error)
{
  gint64 version = -1;

  g_return_val_if_fail (g_task_is_valid (result, stream), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_impl_write_async), -1);

  if (!_es_task_propagate_int64 (G_TASK (result), &version, error))
    return -1;
  return version;
}

/* The checks a forward read (enumerator or cursor) makes before it reads. */
static gboolean
check_read (EsStreamImpl   *self,
            gint64          after_version,
            EsEventFilter  *filter,
            GCancellable   *cancellable,
            GError        **error)
{
  if (!check_usable (self, cancellable, error))
    return FALSE;

  if (after_version < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a stream id, %lld the version given */
                   _("Cannot read stream '%s' after version %lld: versions start at 0"),
                   self->stream_id, (long long) after_version);
      return FALSE;
    }

  return filter == NULL || es_event_filter_validate (filter, error);
}

static EsEventEnumerator *
es_stream_impl_read (EsStream       *stream,
                     gint64          after_version,
                     EsEventFilter  *filter,
                     GCancellable   *cancellable,
                     GError        **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  g_autoptr(EsEventEnumerator) enumerator = NULL;

  if (!check_read (self, after_version, filter, cancellable, error))
    return NULL;

  enumerator = _es_event_enumerator_new (self->storage, storage_stream_id (self),
                                         after_version, filter);
  if (!_es_event_enumerator_fill (enumerator, cancellable, error))
    return NULL;

  return g_steal_pointer (&enumerator);
}

static EsEventEnumerator *
es_stream_impl_read_backwards (EsStream       *stream,
                               gint64          before_version,
                               EsEventFilter  *filter,
                               GCancellable   *cancellable,
                               GError        **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  g_autoptr(EsEventEnumerator) enumerator = NULL;

  if (!check_usable (self, cancellable, error))
    return NULL;

  if (before_version < ES_READ_FROM_END)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a stream id, %lld the version given; -1 is literal */
                   _("Cannot read stream '%s' backwards from before version %lld: use a "
                     "version, or -1 for the newest events"),
                   self->stream_id, (long long) before_version);
      return NULL;
    }

  if (filter != NULL && !es_event_filter_validate (filter, error))
    return NULL;

  enumerator = _es_event_enumerator_new_full (self->storage, storage_stream_id (self),
                                              before_version == ES_READ_FROM_END
                                                ? G_MAXINT64 : before_version,
                                              ES_READ_FLAGS_BACKWARDS, filter);
  if (!_es_event_enumerator_fill (enumerator, cancellable, error))
    return NULL;

  return g_steal_pointer (&enumerator);
}

/* The storage-backed cursor: pages of rows in flat memory, read straight
 * from the backend (see EsRowPage). */
static EsEventCursor *
es_stream_impl_read_cursor (EsStream       *stream,
                            gint64          after_version,
                            EsEventFilter  *filter,
                            GCancellable   *cancellable,
                            GError        **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  g_autoptr(EsEventCursor) cursor = NULL;

  if (!check_read (self, after_version, filter, cancellable, error))
    return NULL;

  cursor = _es_event_cursor_new (self->storage, storage_stream_id (self), after_version, filter);
  if (!_es_event_cursor_fill (cursor, cancellable, error))
    return NULL;

  return g_steal_pointer (&cursor);
}

static const char *
projection_or_default (const char *projection_name)
{
  return projection_name != NULL ? projection_name : ES_DEFAULT_PROJECTION;
}

static gboolean
validate_projection (const char  *projection_name,
                     GError     **error)
{
  if (*projection_name == '\0' || !g_utf8_validate (projection_name, -1, NULL))
    {
      g_autofree char *shown = g_utf8_make_valid (projection_name, -1);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is the projection name given */
                   _("Projection name '%s' is not valid: it must be non-empty UTF-8"), shown);
      return FALSE;
    }
  return TRUE;
}

static gboolean
es_stream_impl_snapshot (EsStream      *stream,
                         GBytes        *state,
                         gint64         version,
                         const char    *projection_name,
                         GCancellable  *cancellable,
                         GError       **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  const char *projection = projection_or_default (projection_name);
  gint64 current = 0;

  if (!check_usable (self, cancellable, error) || !validate_projection (projection, error))
    return FALSE;

  if (version < -1)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %lld is the version given, %s a stream id; -1 is literal */
                   _("Snapshot version %lld of stream '%s' is not valid: "
                     "use a version or -1 for the current one"),
                   (long long) version, self->stream_id);
      return FALSE;
    }

  if (!es_storage_handle_get_version (self->storage, storage_stream_id (self), &current,
                                      cancellable, error))
    return FALSE;

  /* Versions only grow, so a version valid now stays valid. */
  if (version == -1)
    version = current;
  else if (version > current)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a stream id, the first %lld the version given, the second the stream's current version */
                   _("Cannot snapshot stream '%s' at version %lld: it is only at version %lld"),
                   self->stream_id, (long long) version, (long long) current);
      return FALSE;
    }

  return es_storage_handle_save_snapshot (self->storage, storage_stream_id (self), projection,
                                          version, state, cancellable, error);
}

static EsSnapshot *
es_stream_impl_load_snapshot (EsStream      *stream,
                              const char    *projection_name,
                              GCancellable  *cancellable,
                              GError       **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  const char *projection = projection_or_default (projection_name);

  if (!check_usable (self, cancellable, error) || !validate_projection (projection, error))
    return NULL;

  return es_storage_handle_load_snapshot (self->storage, storage_stream_id (self), projection,
                                          cancellable, error);
}

static EsStreamMetrics *
es_stream_impl_get_metrics (EsStream      *stream,
                            GCancellable  *cancellable,
                            GError       **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);

  if (!check_usable (self, cancellable, error))
    return NULL;

  return es_storage_handle_get_metrics (self->storage, storage_stream_id (self),
                                        cancellable, error);
}

static gint64
es_stream_impl_query_version (EsStream      *stream,
                              GCancellable  *cancellable,
                              GError       **error)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  gint64 version = 0;

  if (!check_usable (self, cancellable, error) ||
      !es_storage_handle_get_version (self->storage, storage_stream_id (self), &version,
                                      cancellable, error))
    return -1;

  learn_version (self, version);
  return version;
}

static void
es_stream_impl_query_version_async (EsStream            *stream,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_stream_impl_query_version_async);

  if (!check_usable (self, cancellable, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  read_version_then_complete (self, g_steal_pointer (&task), NULL);
}

static gint64
es_stream_impl_query_version_finish (EsStream      *stream,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  gint64 version = -1;

  g_return_val_if_fail (g_task_is_valid (result, stream), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_stream_impl_query_version_async),
                        -1);

  if (!_es_task_propagate_int64 (G_TASK (result), &version, error))
    return -1;
  return version;
}

static EsWatch *
es_stream_impl_watch (EsStream *stream,
                      gint64    after_version)
{
  EsStreamImpl *self = ES_STREAM_IMPL (stream);

  return _es_watch_new (self->factory, self->stream_id, after_version);
}

static const char *
es_stream_impl_get_stream_id (EsStream *stream)
{
  return ES_STREAM_IMPL (stream)->stream_id;
}

static gint64
es_stream_impl_get_version (EsStream *stream)
{
  return get_version_locked (ES_STREAM_IMPL (stream));
}

static void
es_stream_impl_iface_init (EsStreamInterface *iface)
{
  iface->get_stream_id = es_stream_impl_get_stream_id;
  iface->get_version = es_stream_impl_get_version;
  iface->write = es_stream_impl_write;
  iface->write_async = es_stream_impl_write_async;
  iface->write_finish = es_stream_impl_write_finish;
  iface->read = es_stream_impl_read;
  iface->read_backwards = es_stream_impl_read_backwards;
  iface->read_cursor = es_stream_impl_read_cursor;
  iface->snapshot = es_stream_impl_snapshot;
  iface->load_snapshot = es_stream_impl_load_snapshot;
  iface->get_metrics = es_stream_impl_get_metrics;
  iface->watch = es_stream_impl_watch;
  iface->query_version = es_stream_impl_query_version;
  iface->query_version_async = es_stream_impl_query_version_async;
  iface->query_version_finish = es_stream_impl_query_version_finish;
}

static void
es_stream_impl_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  EsStreamImpl *self = ES_STREAM_IMPL (object);

  switch (prop_id)
    {
    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;
    case PROP_VERSION:
      g_value_set_int64 (value, get_version_locked (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stream_impl_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  EsStreamImpl *self = ES_STREAM_IMPL (object);

  switch (prop_id)
    {
    case PROP_STREAM_ID:
      self->stream_id = g_value_dup_string (value);
      self->is_all = g_strcmp0 (self->stream_id, ES_ALL_STREAM) == 0;
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stream_impl_finalize (GObject *object)
{
  EsStreamImpl *self = ES_STREAM_IMPL (object);

  g_clear_object (&self->factory);
  g_free (self->stream_id);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (es_stream_impl_parent_class)->finalize (object);
}

static void
es_stream_impl_class_init (EsStreamImplClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = es_stream_impl_get_property;
  object_class->set_property = es_stream_impl_set_property;
  object_class->finalize = es_stream_impl_finalize;

  g_object_class_override_property (object_class, PROP_STREAM_ID, "stream-id");
  g_object_class_override_property (object_class, PROP_VERSION, "version");
}

static void
es_stream_impl_init (EsStreamImpl *self)
{
  g_mutex_init (&self->lock);
}

/*
 * _es_stream_impl_new:
 * @factory: the factory whose storage and notifier the stream uses
 * @stream_id: a validated stream id, or %ES_ALL_STREAM
 * @version: the stream's current version (last sequence id for `@all`)
 */
EsStream *
_es_stream_impl_new (EsStreamFactory *factory,
                     const char      *stream_id,
                     gint64           version)
{
  EsStreamImpl *self = g_object_new (ES_TYPE_STREAM_IMPL, "stream-id", stream_id, NULL);

  self->factory = g_object_ref (factory);
  self->storage = es_stream_factory_get_storage (factory);
  self->version = version;
  return ES_STREAM (self);
}
