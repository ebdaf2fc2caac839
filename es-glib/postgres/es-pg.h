/* es-pg.h: the one header applications of the PostgreSQL backend include.
 *
 * libes-glib-pg-1.0 (pkg-config es-glib-pg-1.0, GIR namespace EsPg) is
 * es-glib's PostgreSQL backend, a library of its own so that applications
 * that use SQLite only neither build against nor load libpq. It requires
 * es-glib-1.0 of the same version; this header includes <es-glib/es-glib.h>.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#define ES_PG_INSIDE

#include <es-glib/es-glib.h>

#include "es-pg-version-macros.h"
#include "es-pg-storage.h"
#include "es-pg-notifier.h"
#include "es-pg-stream-factory.h"

#undef ES_PG_INSIDE
