/* es-stream-metrics.h: size and position of a stream.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STREAM_METRICS (es_stream_metrics_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsStreamMetrics, es_stream_metrics, ES, STREAM_METRICS, GObject)

ES_AVAILABLE_IN_ALL
EsStreamMetrics *es_stream_metrics_new                (gint64           current_version,
                                                       gint64           event_count,
                                                       GDateTime       *last_timestamp);
ES_AVAILABLE_IN_ALL
gint64           es_stream_metrics_get_current_version (EsStreamMetrics *self);
ES_AVAILABLE_IN_ALL
gint64           es_stream_metrics_get_event_count    (EsStreamMetrics *self);
ES_AVAILABLE_IN_ALL
GDateTime       *es_stream_metrics_get_last_timestamp (EsStreamMetrics *self);

G_END_DECLS
