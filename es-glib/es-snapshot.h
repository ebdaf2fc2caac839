/* es-snapshot.h: a saved projection state.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_SNAPSHOT (es_snapshot_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsSnapshot, es_snapshot, ES, SNAPSHOT, GObject)

ES_AVAILABLE_IN_ALL
EsSnapshot *es_snapshot_new                 (const char *stream_id,
                                             const char *projection_name,
                                             gint64      version,
                                             GBytes     *state,
                                             GDateTime  *timestamp);
ES_AVAILABLE_IN_ALL
const char *es_snapshot_get_stream_id       (EsSnapshot *self);
ES_AVAILABLE_IN_ALL
const char *es_snapshot_get_projection_name (EsSnapshot *self);
ES_AVAILABLE_IN_ALL
gint64      es_snapshot_get_version         (EsSnapshot *self);
ES_AVAILABLE_IN_ALL
GBytes     *es_snapshot_get_state           (EsSnapshot *self);
ES_AVAILABLE_IN_ALL
GDateTime  *es_snapshot_get_timestamp       (EsSnapshot *self);

G_END_DECLS
