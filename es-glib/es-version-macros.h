/* es-version-macros.h: symbol visibility and availability.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <glib.h>

#if defined (__GNUC__) && defined (ES_COMPILATION)
# define _ES_EXTERN __attribute__ ((visibility ("default"))) extern
#else
# define _ES_EXTERN extern
#endif

#define ES_AVAILABLE_IN_ALL _ES_EXTERN
