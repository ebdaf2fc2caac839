/* es-time-private.h: microseconds since the Unix epoch <-> GDateTime,
 * the one copy the value types and both backends use (not installed).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

GDateTime *_es_date_time_new_from_usec (gint64     usec);
gint64     _es_date_time_to_usec       (GDateTime *date_time);

G_END_DECLS
