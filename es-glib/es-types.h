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
 * @ES_ERROR_STREAM_DELETED: the stream was hard-deleted (tombstoned, see
 *   [method@Es.StreamFactory.delete_stream]): it can never be written
 *   again, and watches of it end with this error (Since: 0.2)
 * @ES_ERROR_NOT_FOUND: the event, stream or other object named does not
 *   exist, or no longer does (Since: 0.2)
 * @ES_ERROR_BUSY: someone else holds what was asked for: a durable
 *   subscription already consumed by another handle (Since: 0.2)
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
  ES_ERROR_STREAM_DELETED,
  ES_ERROR_NOT_FOUND,
  ES_ERROR_BUSY,
} EsError;

/**
 * ES_READ_FROM_END:
 *
 * A position for [method@Es.Stream.read_backwards] meaning "from the
 * newest event".
 *
 * Since: 0.2
 */
#define ES_READ_FROM_END (-1)

/**
 * EsStreamState:
 * @ES_STREAM_STATE_ACTIVE: the stream can be read and written; a stream
 *   nobody wrote to yet is active, with version 0
 * @ES_STREAM_STATE_DELETED: the stream was soft-deleted and has not been
 *   written since: it holds no events, its version is kept, and a write
 *   makes it active again, continuing from that version
 * @ES_STREAM_STATE_TOMBSTONED: the stream was hard-deleted: it holds no
 *   events and can never be written again
 *
 * The life-cycle state of a stream, see [class@Es.StreamInfo].
 *
 * Since: 0.2
 */
typedef enum
{
  ES_STREAM_STATE_ACTIVE,
  ES_STREAM_STATE_DELETED,
  ES_STREAM_STATE_TOMBSTONED,
} EsStreamState;

/**
 * EsDeleteFlags:
 * @ES_DELETE_FLAGS_NONE: a soft delete: the events go, the version stays,
 *   and the stream may be written again
 * @ES_DELETE_FLAGS_TOMBSTONE: a hard delete: the events go and the stream
 *   can never be written again (%ES_ERROR_STREAM_DELETED)
 *
 * How [method@Es.StreamFactory.delete_stream] deletes.
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_DELETE_FLAGS_NONE      = 0,
  ES_DELETE_FLAGS_TOMBSTONE = 1 << 0,
} EsDeleteFlags;

/**
 * EsListStreamsFlags:
 * @ES_LIST_STREAMS_FLAGS_NONE: list the streams that hold events or were
 *   written to (active streams, including those emptied by truncation or
 *   retention)
 * @ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED: list soft-deleted and
 *   tombstoned streams too
 *
 * What [method@Es.StreamFactory.list_streams] lists.
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_LIST_STREAMS_FLAGS_NONE            = 0,
  ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED = 1 << 0,
} EsListStreamsFlags;

/**
 * EsReadFlags:
 * @ES_READ_FLAGS_NONE: read oldest first, stored events only
 * @ES_READ_FLAGS_BACKWARDS: read newest first: positions smaller than the
 *   one given, in decreasing order
 * @ES_READ_FLAGS_INCLUDE_TOMBSTONES: only meaningful for the
 *   <code>@<!-- -->all</code> stream: also return, at its position, a
 *   marker for each hard-deleted stream (an [class@Es.StoredEvent] with
 *   %ES_STORED_EVENT_FLAGS_TOMBSTONE); notifiers read with it, so that
 *   watches learn about hard deletes made by other processes
 *
 * Options of [method@Es.StorageHandle.read_page_full].
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_READ_FLAGS_NONE               = 0,
  ES_READ_FLAGS_BACKWARDS          = 1 << 0,
  ES_READ_FLAGS_INCLUDE_TOMBSTONES = 1 << 1,
} EsReadFlags;

/**
 * EsStoredEventFlags:
 * @ES_STORED_EVENT_FLAGS_NONE: an event as written
 * @ES_STORED_EVENT_FLAGS_ERASED: the event was erased
 *   ([method@Es.StreamFactory.erase_event]): its data is empty and its
 *   metadata %NULL; its position, type and idempotency key remain
 * @ES_STORED_EVENT_FLAGS_TOMBSTONE: not an event but the marker of a hard
 *   delete, only returned by reads with %ES_READ_FLAGS_INCLUDE_TOMBSTONES
 *   and given to notifier subscribers: its stream id is the stream
 *   deleted, its version the stream's last version, its event type
 *   `$tombstone`, its data empty
 *
 * What kind of stored event an [class@Es.StoredEvent] is.
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_STORED_EVENT_FLAGS_NONE      = 0,
  ES_STORED_EVENT_FLAGS_ERASED    = 1 << 0,
  ES_STORED_EVENT_FLAGS_TOMBSTONE = 1 << 1,
} EsStoredEventFlags;

/**
 * ES_SUBSCRIPTION_NAME_MAX_BYTES:
 *
 * The longest subscription name accepted, in bytes.
 *
 * Since: 0.2
 */
#define ES_SUBSCRIPTION_NAME_MAX_BYTES 256

/**
 * EsSubscriptionStart:
 * @ES_SUBSCRIPTION_START_BEGINNING: from the first event
 * @ES_SUBSCRIPTION_START_END: from the events committed after the first
 *   start, skipping the stored history
 * @ES_SUBSCRIPTION_START_POSITION: after
 *   [property@Es.Subscription:start-position] (a version, or for
 *   <code>@<!-- -->all</code> a sequence id)
 *
 * Where a durable subscription that has no stored checkpoint yet starts.
 * Once it has one, it always resumes after its checkpoint.
 *
 * Since: 0.2
 */
typedef enum
{
  ES_SUBSCRIPTION_START_BEGINNING,
  ES_SUBSCRIPTION_START_END,
  ES_SUBSCRIPTION_START_POSITION,
} EsSubscriptionStart;

/**
 * EsSubscriptionFlags:
 * @ES_SUBSCRIPTION_FLAGS_NONE: at-least-once: the checkpoint advances past
 *   an event once the handlers of [signal@Es.Subscription::event] for it
 *   have returned, stored in batches
 * @ES_SUBSCRIPTION_FLAGS_MANUAL_ACK: the checkpoint advances only to
 *   positions given to [method@Es.Subscription.acknowledge]
 * @ES_SUBSCRIPTION_FLAGS_KEEP_STATE: exactly-once: the checkpoint advances
 *   only with [method@Es.Subscription.save_state], which stores the
 *   consumer's state with it in one transaction, and
 *   [property@Es.Subscription:state] restores it on start
 * @ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN: when another process consumes the
 *   subscription, starting fails with %ES_ERROR_BUSY instead of waiting
 *   to take over
 *
 * How a durable subscription checkpoints and starts.
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_SUBSCRIPTION_FLAGS_NONE          = 0,
  ES_SUBSCRIPTION_FLAGS_MANUAL_ACK    = 1 << 0,
  ES_SUBSCRIPTION_FLAGS_KEEP_STATE    = 1 << 1,
  ES_SUBSCRIPTION_FLAGS_FAIL_IF_TAKEN = 1 << 2,
} EsSubscriptionFlags;

/**
 * EsEventListModelFlags:
 * @ES_EVENT_LIST_MODEL_FLAGS_NONE: oldest event first; new events are
 *   added at the end
 * @ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST: newest event first; new events
 *   are added at position 0
 *
 * Options of [class@Es.EventListModel].
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_EVENT_LIST_MODEL_FLAGS_NONE         = 0,
  ES_EVENT_LIST_MODEL_FLAGS_NEWEST_FIRST = 1 << 0,
} EsEventListModelFlags;

/**
 * EsBackupFlags:
 * @ES_BACKUP_FLAGS_NONE: fail when the destination exists
 * @ES_BACKUP_FLAGS_OVERWRITE: replace an existing destination (atomically:
 *   until the backup is complete, the old file stays as it was)
 *
 * Options of [method@Es.StreamFactory.backup].
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_BACKUP_FLAGS_NONE      = 0,
  ES_BACKUP_FLAGS_OVERWRITE = 1 << 0,
} EsBackupFlags;

/**
 * EsCheckFlags:
 * @ES_CHECK_FLAGS_NONE: the full check
 * @ES_CHECK_FLAGS_QUICK: a faster, less thorough check of the storage
 *   (SQLite: `PRAGMA quick_check` instead of `PRAGMA integrity_check`,
 *   which does not verify that indexes match their tables); es-glib's own
 *   invariants are checked either way
 *
 * Options of [method@Es.StreamFactory.check].
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_CHECK_FLAGS_NONE  = 0,
  ES_CHECK_FLAGS_QUICK = 1 << 0,
} EsCheckFlags;

/**
 * EsCheckProblemKind:
 * @ES_CHECK_PROBLEM_STORAGE: the backend's own check failed: a corrupt
 *   page, an index that does not match its table, an unreadable file
 * @ES_CHECK_PROBLEM_VERSION_GAP: a stream's versions do not run without a
 *   gap from its first kept version to its last
 * @ES_CHECK_PROBLEM_STREAM_MISMATCH: what is kept per stream (its version,
 *   its event count, its timestamps) does not agree with its events
 * @ES_CHECK_PROBLEM_SEQUENCE_ORDER: sequence ids are not strictly
 *   increasing, or do not follow a stream's versions
 * @ES_CHECK_PROBLEM_DUPLICATE_KEY: an idempotency key appears twice in one
 *   stream
 * @ES_CHECK_PROBLEM_SNAPSHOT: a snapshot points past its stream's version
 * @ES_CHECK_PROBLEM_CHECKPOINT: a durable subscription's checkpoint is past
 *   the head of its stream
 *
 * What an [class@Es.CheckReport] found wrong.
 *
 * Since: 0.2
 */
typedef enum
{
  ES_CHECK_PROBLEM_STORAGE,
  ES_CHECK_PROBLEM_VERSION_GAP,
  ES_CHECK_PROBLEM_STREAM_MISMATCH,
  ES_CHECK_PROBLEM_SEQUENCE_ORDER,
  ES_CHECK_PROBLEM_DUPLICATE_KEY,
  ES_CHECK_PROBLEM_SNAPSHOT,
  ES_CHECK_PROBLEM_CHECKPOINT,
} EsCheckProblemKind;

/**
 * EsExportFlags:
 * @ES_EXPORT_FLAGS_NONE: data that is valid JSON text is written as JSON,
 *   other data as base64
 * @ES_EXPORT_FLAGS_DATA_BASE64: always write data as base64
 *
 * Options of [method@Es.StreamFactory.export_events]; the format is described
 * in [the export format guide](export-format.html).
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_EXPORT_FLAGS_NONE        = 0,
  ES_EXPORT_FLAGS_DATA_BASE64 = 1 << 0,
} EsExportFlags;

/**
 * EsImportFlags:
 * @ES_IMPORT_FLAGS_NONE: the default behaviour
 *
 * Options of [method@Es.StreamFactory.import_events]; none yet.
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/
{
  ES_IMPORT_FLAGS_NONE = 0,
} EsImportFlags;

ES_AVAILABLE_IN_ALL
GQuark es_error_quark (void);

typedef struct _EsCandidateEvent  EsCandidateEvent;
typedef struct _EsStoredEvent     EsStoredEvent;
typedef struct _EsSnapshot        EsSnapshot;
typedef struct _EsStreamMetrics   EsStreamMetrics;
typedef struct _EsStreamInfo      EsStreamInfo;
typedef struct _EsStreamInfoEnumerator EsStreamInfoEnumerator;
typedef struct _EsSubscription    EsSubscription;
typedef struct _EsSubscriptionInfo EsSubscriptionInfo;
typedef struct _EsEventFilter     EsEventFilter;
typedef struct _EsEventEnumerator EsEventEnumerator;
typedef struct _EsEventCursor     EsEventCursor;
typedef struct _EsStorageHandle   EsStorageHandle;
typedef struct _EsNotifier        EsNotifier;
typedef struct _EsStream          EsStream;
typedef struct _EsStreamFactory   EsStreamFactory;
typedef struct _EsWatch           EsWatch;
typedef struct _EsEventListModel  EsEventListModel;
typedef struct _EsCheckReport     EsCheckReport;

G_END_DECLS
