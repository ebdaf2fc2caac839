/* es-error.c: the ES_ERROR domain.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * es_error_quark:
 *
 * The quark of the %ES_ERROR domain. Bindings see it as `Es.error_quark()`,
 * and the codes as [error@Es.Error].
 *
 * Returns: the error domain quark
 *
 * Since: 0.1
 */
G_DEFINE_QUARK (es-error-quark, es_error)
