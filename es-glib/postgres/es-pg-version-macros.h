/* es-pg-version-macros.h: symbol visibility of libes-glib-pg.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_PG_INSIDE) && !defined (ES_PG_COMPILATION)
# error "Only <es-glib-pg/es-pg.h> can be included directly."
#endif

#include <glib.h>

/* The library is built with -fvisibility=hidden; what its public headers
 * declare with ES_PG_AVAILABLE_IN_ALL is exported. */
#if defined (__GNUC__) && defined (ES_PG_COMPILATION)
# define _ES_PG_EXTERN __attribute__ ((visibility ("default"))) extern
#else
# define _ES_PG_EXTERN extern
#endif

#define ES_PG_AVAILABLE_IN_ALL _ES_PG_EXTERN
