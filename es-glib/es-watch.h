/* es-watch.h: a live subscription to a stream's events.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_WATCH (es_watch_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsWatch, es_watch, ES, WATCH, GObject)

ES_AVAILABLE_IN_ALL
void        es_watch_stop             (EsWatch *self);
ES_AVAILABLE_IN_ALL
gint64      es_watch_get_last_version (EsWatch *self);
ES_AVAILABLE_IN_ALL
gboolean    es_watch_get_active       (EsWatch *self);
ES_AVAILABLE_IN_ALL
gboolean    es_watch_get_caught_up    (EsWatch *self);
ES_AVAILABLE_IN_ALL
const char *es_watch_get_stream_id    (EsWatch *self);

G_END_DECLS
