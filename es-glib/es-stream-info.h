/* es-stream-info.h: what is known about a stream without reading it.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STREAM_INFO (es_stream_info_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsStreamInfo, es_stream_info, ES, STREAM_INFO, GObject)

ES_AVAILABLE_IN_ALL
EsStreamInfo  *es_stream_info_new                      (const char    *stream_id,
                                                        EsStreamState  state,
                                                        gint64         current_version,
                                                        gint64         event_count,
                                                        gint64         first_version,
                                                        gint64         first_timestamp_usec,
                                                        gint64         last_timestamp_usec,
                                                        GTimeSpan      max_age,
                                                        gint64         max_count);
ES_AVAILABLE_IN_ALL
const char    *es_stream_info_get_stream_id            (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
EsStreamState  es_stream_info_get_state                (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
gint64         es_stream_info_get_current_version      (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
gint64         es_stream_info_get_event_count          (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
gint64         es_stream_info_get_first_version        (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
GDateTime     *es_stream_info_get_first_timestamp      (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
gint64         es_stream_info_get_first_timestamp_usec (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
GDateTime     *es_stream_info_get_last_timestamp       (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
gint64         es_stream_info_get_last_timestamp_usec  (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
GTimeSpan      es_stream_info_get_max_age              (EsStreamInfo  *self);
ES_AVAILABLE_IN_ALL
gint64         es_stream_info_get_max_count            (EsStreamInfo  *self);

G_END_DECLS
