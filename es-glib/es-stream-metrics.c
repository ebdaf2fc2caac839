/* es-stream-metrics.c: size and position of a stream.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsStreamMetrics:
 *
 * The size and position of a stream, returned by
 * [method@Es.Stream.get_metrics].
 *
 * [property@Es.StreamMetrics:current-version] is the stream's version,
 * which only ever grows, and [property@Es.StreamMetrics:event-count] the
 * number of its events still stored. The two are equal for a stream that
 * only ever grew, as versions run from 1 without gaps; since 0.2, a
 * delete, a truncation or retention removes events and keeps the version,
 * so the count may be smaller (0 for a deleted stream, whose version is
 * kept). For the <code>@<!-- -->all</code> stream, the current version is the last
 * position used (sequence id) and the event count the total number of
 * events of every stream; the two may differ. See [class@Es.StreamInfo]
 * for more about a stream, without reading it.
 *
 * Metrics are immutable: they describe the stream when they were taken.
 *
 * Since: 0.1
 */
struct _EsStreamMetrics
{
  GObject     parent_instance;

  gint64      current_version;
  gint64      event_count;
  GDateTime  *last_timestamp;  /* (owned) (nullable) */
};

enum
{
  PROP_0,
  PROP_CURRENT_VERSION,
  PROP_EVENT_COUNT,
  PROP_LAST_TIMESTAMP,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsStreamMetrics, es_stream_metrics, G_TYPE_OBJECT)

static void
es_stream_metrics_finalize (GObject *object)
{
  EsStreamMetrics *self = ES_STREAM_METRICS (object);

  g_clear_pointer (&self->last_timestamp, g_date_time_unref);

  G_OBJECT_CLASS (es_stream_metrics_parent_class)->finalize (object);
}

static void
es_stream_metrics_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  EsStreamMetrics *self = ES_STREAM_METRICS (object);

  switch (prop_id)
    {
    case PROP_CURRENT_VERSION:
      g_value_set_int64 (value, self->current_version);
      break;

    case PROP_EVENT_COUNT:
      g_value_set_int64 (value, self->event_count);
      break;

    case PROP_LAST_TIMESTAMP:
      g_value_set_boxed (value, self->last_timestamp);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stream_metrics_class_init (EsStreamMetricsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_stream_metrics_finalize;
  object_class->get_property = es_stream_metrics_get_property;

  /**
   * EsStreamMetrics:current-version:
   *
   * The stream's version: that of its last event written, 0 for a stream
   * never written. Deleting or truncating the stream keeps it. For the
   * <code>@<!-- -->all</code> stream, the last position used (the sequence id of the last
   * event of any stream, or of a later delete).
   *
   * Since: 0.1
   */
  properties[PROP_CURRENT_VERSION] =
    g_param_spec_int64 ("current-version", NULL, NULL,
                        G_MININT64, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamMetrics:event-count:
   *
   * The number of events stored in the stream: fewer than its version
   * once events were deleted, truncated or expired. For the
   * <code>@<!-- -->all</code> stream, the total number of events of every stream.
   *
   * Since: 0.1
   */
  properties[PROP_EVENT_COUNT] =
    g_param_spec_int64 ("event-count", NULL, NULL,
                        G_MININT64, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStreamMetrics:last-timestamp:
   *
   * When the stream's last event still stored was written, or %NULL when
   * the stream holds no events.
   *
   * Since: 0.1
   */
  properties[PROP_LAST_TIMESTAMP] =
    g_param_spec_boxed ("last-timestamp", NULL, NULL,
                        G_TYPE_DATE_TIME,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_stream_metrics_init (EsStreamMetrics *self)
{
}

/**
 * es_stream_metrics_new:
 * @current_version: the stream's version, kept when events are deleted
 *   (for <code>@<!-- -->all</code>, the last position used), 0 for a stream never written
 * @event_count: the number of events stored in the stream (for
 *   <code>@<!-- -->all</code>, the total number of events)
 * @last_timestamp: (nullable): when the last event was written, or %NULL
 *   when the stream is empty
 *
 * Creates stream metrics. Applications get them from
 * [method@Es.Stream.get_metrics]; this is for storage backends implemented
 * outside es-glib. @last_timestamp is referenced.
 *
 * Returns: (transfer full): a new [class@Es.StreamMetrics]
 *
 * Since: 0.1
 */
EsStreamMetrics *
es_stream_metrics_new (gint64     current_version,
                       gint64     event_count,
                       GDateTime *last_timestamp)
{
  EsStreamMetrics *self = g_object_new (ES_TYPE_STREAM_METRICS, NULL);

  self->current_version = current_version;
  self->event_count = event_count;
  self->last_timestamp = last_timestamp != NULL ? g_date_time_ref (last_timestamp) : NULL;

  return self;
}

/**
 * es_stream_metrics_get_current_version:
 * @self: an [class@Es.StreamMetrics]
 *
 * Gets the stream's version: that of its last event written, 0 for a
 * stream never written, kept when events are deleted, truncated or
 * expired. For the <code>@<!-- -->all</code> stream, this is the last position used (the
 * sequence id of the last event of any stream, or of a later delete).
 *
 * Returns: the current version
 *
 * Since: 0.1
 */
gint64
es_stream_metrics_get_current_version (EsStreamMetrics *self)
{
  g_return_val_if_fail (ES_IS_STREAM_METRICS (self), 0);

  return self->current_version;
}

/**
 * es_stream_metrics_get_event_count:
 * @self: an [class@Es.StreamMetrics]
 *
 * Gets the number of events stored in the stream (fewer than its version
 * once events were deleted, truncated or expired). For the
 * <code>@<!-- -->all</code> stream, this is the total number of events of every stream.
 *
 * Returns: the number of events
 *
 * Since: 0.1
 */
gint64
es_stream_metrics_get_event_count (EsStreamMetrics *self)
{
  g_return_val_if_fail (ES_IS_STREAM_METRICS (self), 0);

  return self->event_count;
}

/**
 * es_stream_metrics_get_last_timestamp:
 * @self: an [class@Es.StreamMetrics]
 *
 * Gets when the stream's last event was written.
 *
 * Returns: (transfer none) (nullable): the timestamp of the last event, or
 *   %NULL when the stream is empty
 *
 * Since: 0.1
 */
GDateTime *
es_stream_metrics_get_last_timestamp (EsStreamMetrics *self)
{
  g_return_val_if_fail (ES_IS_STREAM_METRICS (self), NULL);

  return self->last_timestamp;
}
