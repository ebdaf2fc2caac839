/* es-types.h: constants, the error domain and forward declarations.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <glib-object.h>

#include "es-version-macros.h"

G_BEGIN_DECLS

/**
 * ES_VERSION_ANY:
 *
 * An expected version that skips the optimistic concurrency check.
 */
#define ES_VERSION_ANY (-1)

/**
 * ES_VERSION_NO_STREAM:
 *
 * An expected version meaning "the stream must be empty".
 */
#define ES_VERSION_NO_STREAM (0)

/**
 * ES_ALL_STREAM:
 *
 * The name of the read-only stream that holds every event of every stream,
 * in global (sequence id) order.
 */
#define ES_ALL_STREAM "@all"

/**
 * ES_ERROR:
 *
 * The error domain of es-glib; codes are in [enum@Es.Error].
 */
#define ES_ERROR (es_error_quark ())

/**
 * EsError:
 * @ES_ERROR_FAILED: an unclassified failure
 * @ES_ERROR_INVALID_ARGUMENT: a value given by the caller is not acceptable:
 *   a bad stream id, an empty event type, metadata that is not a JSON object,
 *   a write to <code>@<!-- -->all</code>, an unknown filter field, a bad version...
 * @ES_ERROR_WRONG_EXPECTED_VERSION: optimistic concurrency conflict: the
 *   stream is not at the expected version; nothing was written
 * @ES_ERROR_CLOSED: the factory (and so its streams) is closed
 * @ES_ERROR_STORAGE: the database failed: I/O error, corrupt or foreign
 *   file, disk full, busy for too long
 *
 * Error codes in the %ES_ERROR domain. Codes are only ever appended.
 */
typedef enum
{
  ES_ERROR_FAILED,
  ES_ERROR_INVALID_ARGUMENT,
  ES_ERROR_WRONG_EXPECTED_VERSION,
  ES_ERROR_CLOSED,
  ES_ERROR_STORAGE,
} EsError;

ES_AVAILABLE_IN_ALL
GQuark es_error_quark (void);

typedef struct _EsCandidateEvent  EsCandidateEvent;
typedef struct _EsStoredEvent     EsStoredEvent;
typedef struct _EsSnapshot        EsSnapshot;
typedef struct _EsStreamMetrics   EsStreamMetrics;
typedef struct _EsEventFilter     EsEventFilter;
typedef struct _EsEventEnumerator EsEventEnumerator;
typedef struct _EsStorageHandle   EsStorageHandle;
typedef struct _EsNotifier        EsNotifier;
typedef struct _EsStream          EsStream;
typedef struct _EsStreamFactory   EsStreamFactory;
typedef struct _EsWatch           EsWatch;

G_END_DECLS
