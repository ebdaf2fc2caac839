/* es-snapshot.c: a saved projection state.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "backend/es-time-private.h"

#include "es-private.h"

/**
 * EsSnapshot:
 *
 * The state of a projection saved with [method@Es.Stream.snapshot] and
 * returned by [method@Es.Stream.load_snapshot].
 *
 * A projection folds the events of a stream into some state; a snapshot
 * stores that state as opaque bytes together with the stream
 * [property@Es.Snapshot:version] it reflects, so the projection can resume
 * from there instead of replaying the whole stream. A stream holds one
 * snapshot per projection name.
 *
 * Snapshots are immutable.
 *
 * Since: 0.1
 */
struct _EsSnapshot
{
  GObject     parent_instance;

  char       *stream_id;        /* (owned) */
  char       *projection_name;  /* (owned) */
  gint64      version;
  GBytes     *state;            /* (owned) */
  GDateTime  *timestamp;        /* (owned) */
};

enum
{
  PROP_0,
  PROP_STREAM_ID,
  PROP_PROJECTION_NAME,
  PROP_VERSION,
  PROP_STATE,
  PROP_TIMESTAMP,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsSnapshot, es_snapshot, G_TYPE_OBJECT)

static void
es_snapshot_finalize (GObject *object)
{
  EsSnapshot *self = ES_SNAPSHOT (object);

  g_free (self->stream_id);
  g_free (self->projection_name);
  g_clear_pointer (&self->state, g_bytes_unref);
  g_clear_pointer (&self->timestamp, g_date_time_unref);

  G_OBJECT_CLASS (es_snapshot_parent_class)->finalize (object);
}

static void
es_snapshot_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  EsSnapshot *self = ES_SNAPSHOT (object);

  switch (prop_id)
    {
    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;

    case PROP_PROJECTION_NAME:
      g_value_set_string (value, self->projection_name);
      break;

    case PROP_VERSION:
      g_value_set_int64 (value, self->version);
      break;

    case PROP_STATE:
      g_value_set_boxed (value, self->state);
      break;

    case PROP_TIMESTAMP:
      g_value_set_boxed (value, self->timestamp);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_snapshot_class_init (EsSnapshotClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_snapshot_finalize;
  object_class->get_property = es_snapshot_get_property;

  /**
   * EsSnapshot:stream-id:
   *
   * The stream the snapshot belongs to; %ES_ALL_STREAM for a snapshot of
   * <code>@<!-- -->all</code>.
   *
   * Since: 0.1
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSnapshot:projection-name:
   *
   * The name of the projection whose state this is (`"default"` unless the
   * application chose one).
   *
   * Since: 0.1
   */
  properties[PROP_PROJECTION_NAME] =
    g_param_spec_string ("projection-name", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSnapshot:version:
   *
   * The version of the stream the state reflects: a projection resumes by
   * reading the events after it (for <code>@<!-- -->all</code>, a sequence id).
   *
   * Since: 0.1
   */
  properties[PROP_VERSION] =
    g_param_spec_int64 ("version", NULL, NULL,
                        G_MININT64, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSnapshot:state:
   *
   * The saved state, exactly the bytes given to [method@Es.Stream.snapshot].
   *
   * Since: 0.1
   */
  properties[PROP_STATE] =
    g_param_spec_boxed ("state", NULL, NULL,
                        G_TYPE_BYTES,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSnapshot:timestamp:
   *
   * When the snapshot was saved.
   *
   * Since: 0.1
   */
  properties[PROP_TIMESTAMP] =
    g_param_spec_boxed ("timestamp", NULL, NULL,
                        G_TYPE_DATE_TIME,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_snapshot_init (EsSnapshot *self)
{
}

/* Takes @timestamp. */
static EsSnapshot *
snapshot_new_take_timestamp (const char *stream_id,
                             const char *projection_name,
                             gint64      version,
                             GBytes     *state,
                             GDateTime  *timestamp)
{
  EsSnapshot *self = g_object_new (ES_TYPE_SNAPSHOT, NULL);

  self->stream_id = g_strdup (stream_id != NULL ? stream_id : ES_ALL_STREAM);
  self->projection_name = g_strdup (projection_name);
  self->version = version;
  self->state = g_bytes_ref (state);
  self->timestamp = timestamp;

  return self;
}

/*
 * _es_snapshot_new_usec:
 * @stream_id: (nullable): the stream, or %NULL for `@all`
 * @projection_name: the projection
 * @version: the version the state reflects
 * @state: the state; referenced, not taken
 * @timestamp_usec: when it was saved, in microseconds since the Unix epoch
 *
 * What storage backends inside the library use: copies the strings, refs
 * @state and builds the timestamp from microseconds.
 */
EsSnapshot *
_es_snapshot_new_usec (const char *stream_id,
                       const char *projection_name,
                       gint64      version,
                       GBytes     *state,
                       gint64      timestamp_usec)
{
  g_return_val_if_fail (projection_name != NULL, NULL);
  g_return_val_if_fail (state != NULL, NULL);

  return snapshot_new_take_timestamp (stream_id, projection_name, version, state,
                                      _es_date_time_new_from_usec (timestamp_usec));
}

/**
 * es_snapshot_new:
 * @stream_id: (nullable): the stream the snapshot belongs to, or %NULL for
 *   %ES_ALL_STREAM
 * @projection_name: the name of the projection
 * @version: the version of the stream the state reflects
 * @state: the state to save
 * @timestamp: (nullable): when the snapshot was saved, or %NULL for now
 *
 * Creates a snapshot. Applications get snapshots from
 * [method@Es.Stream.load_snapshot]; this is for storage backends
 * implemented outside es-glib. The strings are copied and @state and
 * @timestamp referenced.
 *
 * Returns: (transfer full): a new [class@Es.Snapshot]
 *
 * Since: 0.1
 */
EsSnapshot *
es_snapshot_new (const char *stream_id,
                 const char *projection_name,
                 gint64      version,
                 GBytes     *state,
                 GDateTime  *timestamp)
{
  g_return_val_if_fail (projection_name != NULL, NULL);
  g_return_val_if_fail (state != NULL, NULL);

  return snapshot_new_take_timestamp (stream_id, projection_name, version, state,
                                      timestamp != NULL ? g_date_time_ref (timestamp)
                                                        : g_date_time_new_now_utc ());
}

/**
 * es_snapshot_get_stream_id:
 * @self: an [class@Es.Snapshot]
 *
 * Gets the stream the snapshot belongs to.
 *
 * Returns: (transfer none): the stream id
 *
 * Since: 0.1
 */
const char *
es_snapshot_get_stream_id (EsSnapshot *self)
{
  g_return_val_if_fail (ES_IS_SNAPSHOT (self), NULL);

  return self->stream_id;
}

/**
 * es_snapshot_get_projection_name:
 * @self: an [class@Es.Snapshot]
 *
 * Gets the name of the projection whose state this is.
 *
 * Returns: (transfer none): the projection name
 *
 * Since: 0.1
 */
const char *
es_snapshot_get_projection_name (EsSnapshot *self)
{
  g_return_val_if_fail (ES_IS_SNAPSHOT (self), NULL);

  return self->projection_name;
}

/**
 * es_snapshot_get_version:
 * @self: an [class@Es.Snapshot]
 *
 * Gets the version of the stream the state reflects (for <code>@<!-- -->all</code>, a
 * sequence id): resume by reading the events after it.
 *
 * Returns: the version
 *
 * Since: 0.1
 */
gint64
es_snapshot_get_version (EsSnapshot *self)
{
  g_return_val_if_fail (ES_IS_SNAPSHOT (self), 0);

  return self->version;
}

/**
 * es_snapshot_get_state:
 * @self: an [class@Es.Snapshot]
 *
 * Gets the saved state: exactly the bytes that were saved.
 *
 * Returns: (transfer none): the state
 *
 * Since: 0.1
 */
GBytes *
es_snapshot_get_state (EsSnapshot *self)
{
  g_return_val_if_fail (ES_IS_SNAPSHOT (self), NULL);

  return self->state;
}

/**
 * es_snapshot_get_timestamp:
 * @self: an [class@Es.Snapshot]
 *
 * Gets when the snapshot was saved.
 *
 * Returns: (transfer none): the timestamp
 *
 * Since: 0.1
 */
GDateTime *
es_snapshot_get_timestamp (EsSnapshot *self)
{
  g_return_val_if_fail (ES_IS_SNAPSHOT (self), NULL);

  return self->timestamp;
}
