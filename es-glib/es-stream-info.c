/* es-stream-info.c: what is known about a stream without reading it.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "backend/es-time-private.h"

#include "es-private.h"

/**
 * EsStreamInfo:
 *
 * What a backend keeps about one stream, read without reading the
 * stream's events: returned by [method@Es.StreamFactory.get_stream_info]
 * and, a page at a time, by [method@Es.StreamFactory.list_streams].
 *
 * A stream's [property@Es.StreamInfo:current-version] only ever grows:
 * deleting, truncating or expiring events keeps it, so expected versions
 * stay meaningful. [property@Es.StreamInfo:event-count] counts the events
 * still stored, from [property@Es.StreamInfo:first-version] to the
 * current version (erased events included: they keep their place).
 *
 * For the <code>@<!-- -->all</code> stream (a %NULL or %ES_ALL_STREAM stream id),
 * the current version is the last position used, the count and
 * timestamps cover every stream, and the retention limits are the
 * database-wide policy.
 *
 * Stream information is immutable: it describes the stream when it was
 * read.
 *
 * Since: 0.2
 */
struct _EsStreamInfo
{
  GObject        parent_instance;

  char          *stream_id;
  EsStreamState  state;
  gint64         current_version;
  gint64         event_count;
  gint64         first_version;
  gint64         first_timestamp_usec;  /* 0: no events */
  gint64         last_timestamp_usec;   /* 0: no events */
  GTimeSpan      max_age;
  gint64         max_count;

  /* Built on first use, set once with compare-and-exchange. */
  GDateTime     *first_timestamp;       /* (owned) (nullable) (atomic) */
  GDateTime     *last_timestamp;        /* (owned) (nullable) (atomic) */
};

enum
{
  PROP_0,
  PROP_STREAM_ID,
  PROP_STATE,
  PROP_CURRENT_VERSION,
  PROP_EVENT_COUNT,
  PROP_FIRST_VERSION,
  PROP_FIRST_TIMESTAMP,
  PROP_LAST_TIMESTAMP,
  PROP_MAX_AGE,
  PROP_MAX_COUNT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsStreamInfo, es_stream_info, G_TYPE_OBJECT)

static void
es_stream_info_finalize (GObject *object)
{
  EsStreamInfo *self = ES_STREAM_INFO (object);

  g_free (self->stream_id);
  g_clear_pointer (&self->first_timestamp, g_date_time_unref);
  g_clear_pointer (&self->last_timestamp, g_date_time_unref);

  G_OBJECT_CLASS (es_stream_info_parent_class)->finalize (object);
}

static void
es_stream_info_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  EsStreamInfo *self = ES_STREAM_INFO (object);

  switch (prop_id)
    {
    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;

    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;

    case PROP_CURRENT_VERSION:
      g_value_set_int64 (value, self->current_version);
      break;

    case PROP_EVENT_COUNT:
      g_value_set_int64 (value, self->event_count);
      break;

    case PROP_FIRST_VERSION:
      g_value_set_int64 (value, self->first_version);
      break;

    case PROP_FIRST_TIMESTAMP:
      g_value_set_boxed (value, es_stream_info_get_first_timestamp (self));
      break;

    case PROP_LAST_TIMESTAMP:
      g_value_set_boxed (value, es_stream_info_get_last_timestamp (self));
      break;

    case PROP_MAX_AGE:
      g_value_set_int64 (value, self->max_age);
      break;

    case PROP_MAX_COUNT:
      g_value_set_int64 (value, self->max_count);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stream_info_class_init (EsStreamInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_stream_info_finalize;
  object_class->get_property = es_stream_info_get_property;

  /**
   * EsStreamInfo:stream-id:
   *
   * The stream's id; %ES_ALL_STREAM for the whole database.
   *
   * Since: 0.2
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL, NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:state:
   *
   * Whether the stream is active, soft-deleted or tombstoned.
   *
   * Since: 0.2
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       ES_TYPE_STREAM_STATE, ES_STREAM_STATE_ACTIVE,
                       (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:current-version:
   *
   * The version of the last event ever appended to the stream, 0 if none
   * was. Deletion, truncation and retention keep it.
   *
   * Since: 0.2
   */
  properties[PROP_CURRENT_VERSION] =
    g_param_spec_int64 ("current-version", NULL, NULL,
                        0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:event-count:
   *
   * The number of events stored, erased ones included.
   *
   * Since: 0.2
   */
  properties[PROP_EVENT_COUNT] =
    g_param_spec_int64 ("event-count", NULL, NULL,
                        0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:first-version:
   *
   * The version of the oldest event stored, 0 when the stream holds none.
   * Above 1 once the stream was truncated or expired.
   *
   * Since: 0.2
   */
  properties[PROP_FIRST_VERSION] =
    g_param_spec_int64 ("first-version", NULL, NULL,
                        0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:first-timestamp:
   *
   * When the oldest event stored was written, or %NULL without events.
   *
   * Since: 0.2
   */
  properties[PROP_FIRST_TIMESTAMP] =
    g_param_spec_boxed ("first-timestamp", NULL, NULL,
                        G_TYPE_DATE_TIME,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:last-timestamp:
   *
   * When the newest event stored was written, or %NULL without events.
   *
   * Since: 0.2
   */
  properties[PROP_LAST_TIMESTAMP] =
    g_param_spec_boxed ("last-timestamp", NULL, NULL,
                        G_TYPE_DATE_TIME,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:max-age:
   *
   * The stream's retention limit on age, in microseconds; 0 for none.
   *
   * Since: 0.2
   */
  properties[PROP_MAX_AGE] =
    g_param_spec_int64 ("max-age", NULL, NULL,
                        0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamInfo:max-count:
   *
   * The stream's retention limit on its number of events; 0 for none.
   *
   * Since: 0.2
   */
  properties[PROP_MAX_COUNT] =
    g_param_spec_int64 ("max-count", NULL, NULL,
                        0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_stream_info_init (EsStreamInfo *self)
{
}

/**
 * es_stream_info_new:
 * @stream_id: the stream's id (%ES_ALL_STREAM for the whole database)
 * @state: the stream's life-cycle state
 * @current_version: the version of the last event ever appended, 0 if none
 * @event_count: the number of events stored
 * @first_version: the version of the oldest event stored, 0 if none
 * @first_timestamp_usec: when the oldest event stored was written, in
 *   microseconds since the Unix epoch (UTC); 0 if none
 * @last_timestamp_usec: when the newest event stored was written; 0 if none
 * @max_age: the retention limit on age in microseconds, 0 for none
 * @max_count: the retention limit on count, 0 for none
 *
 * Creates stream information. Applications get it from
 * [method@Es.StreamFactory.get_stream_info] and
 * [method@Es.StreamFactory.list_streams]; this is for storage backends.
 *
 * Returns: (transfer full): a new [class@Es.StreamInfo]
 *
 * Since: 0.2
 */
EsStreamInfo *
es_stream_info_new (const char    *stream_id,
                    EsStreamState  state,
                    gint64         current_version,
                    gint64         event_count,
                    gint64         first_version,
                    gint64         first_timestamp_usec,
                    gint64         last_timestamp_usec,
                    GTimeSpan      max_age,
                    gint64         max_count)
{
  EsStreamInfo *self;

  g_return_val_if_fail (stream_id != NULL, NULL);

  self = g_object_new (ES_TYPE_STREAM_INFO, NULL);
  self->stream_id = g_strdup (stream_id);
  self->state = state;
  self->current_version = current_version;
  self->event_count = event_count;
  self->first_version = first_version;
  self->first_timestamp_usec = first_timestamp_usec;
  self->last_timestamp_usec = last_timestamp_usec;
  self->max_age = max_age;
  self->max_count = max_count;

  return self;
}

/**
 * es_stream_info_get_stream_id:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets the stream's id.
 *
 * Returns: (transfer none): the stream id
 *
 * Since: 0.2
 */
const char *
es_stream_info_get_stream_id (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), NULL);

  return self->stream_id;
}

/**
 * es_stream_info_get_state:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets whether the stream is active, soft-deleted or tombstoned.
 *
 * Returns: the state
 *
 * Since: 0.2
 */
EsStreamState
es_stream_info_get_state (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), ES_STREAM_STATE_ACTIVE);

  return self->state;
}

/**
 * es_stream_info_get_current_version:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets the version of the last event ever appended to the stream.
 *
 * Returns: the current version, 0 if nothing was appended
 *
 * Since: 0.2
 */
gint64
es_stream_info_get_current_version (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->current_version;
}

/**
 * es_stream_info_get_event_count:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets the number of events stored, erased ones included.
 *
 * Returns: the number of events
 *
 * Since: 0.2
 */
gint64
es_stream_info_get_event_count (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->event_count;
}

/**
 * es_stream_info_get_first_version:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets the version of the oldest event stored.
 *
 * Returns: the first version, 0 when the stream holds no events
 *
 * Since: 0.2
 */
gint64
es_stream_info_get_first_version (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->first_version;
}

static GDateTime *
lazy_date_time (GDateTime **slot,
                gint64      usec)
{
  GDateTime *date_time;

  if (usec == 0)
    return NULL;

  date_time = g_atomic_pointer_get (slot);
  if (date_time == NULL)
    {
      GDateTime *made = _es_date_time_new_from_usec (usec);

      if (g_atomic_pointer_compare_and_exchange (slot, NULL, made))
        date_time = made;
      else
        {
          g_date_time_unref (made);
          date_time = g_atomic_pointer_get (slot);
        }
    }

  return date_time;
}

/**
 * es_stream_info_get_first_timestamp:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets when the oldest event stored was written.
 *
 * Returns: (transfer none) (nullable): the time, or %NULL without events
 *
 * Since: 0.2
 */
GDateTime *
es_stream_info_get_first_timestamp (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), NULL);

  return lazy_date_time (&self->first_timestamp, self->first_timestamp_usec);
}

/**
 * es_stream_info_get_first_timestamp_usec:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets when the oldest event stored was written, in microseconds since
 * the Unix epoch (UTC).
 *
 * Returns: the time, 0 without events
 *
 * Since: 0.2
 */
gint64
es_stream_info_get_first_timestamp_usec (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->first_timestamp_usec;
}

/**
 * es_stream_info_get_last_timestamp:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets when the newest event stored was written.
 *
 * Returns: (transfer none) (nullable): the time, or %NULL without events
 *
 * Since: 0.2
 */
GDateTime *
es_stream_info_get_last_timestamp (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), NULL);

  return lazy_date_time (&self->last_timestamp, self->last_timestamp_usec);
}

/**
 * es_stream_info_get_last_timestamp_usec:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets when the newest event stored was written, in microseconds since
 * the Unix epoch (UTC).
 *
 * Returns: the time, 0 without events
 *
 * Since: 0.2
 */
gint64
es_stream_info_get_last_timestamp_usec (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->last_timestamp_usec;
}

/**
 * es_stream_info_get_max_age:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets the stream's retention limit on age.
 *
 * Returns: the maximum age in microseconds, 0 for none
 *
 * Since: 0.2
 */
GTimeSpan
es_stream_info_get_max_age (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->max_age;
}

/**
 * es_stream_info_get_max_count:
 * @self: an [class@Es.StreamInfo]
 *
 * Gets the stream's retention limit on its number of events.
 *
 * Returns: the maximum count, 0 for none
 *
 * Since: 0.2
 */
gint64
es_stream_info_get_max_count (EsStreamInfo *self)
{
  g_return_val_if_fail (ES_IS_STREAM_INFO (self), 0);

  return self->max_count;
}
