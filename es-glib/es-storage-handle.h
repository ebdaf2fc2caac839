/* es-storage-handle.h: the contract a storage backend implements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

/* A page of rows in flat memory, private to the library (es-private.h):
 * only the backends built with it fill one. Not in the GIR. */
#ifndef __GI_SCANNER__
typedef struct _EsRowPage EsRowPage;
#endif

#define ES_TYPE_STORAGE_HANDLE (es_storage_handle_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_INTERFACE (EsStorageHandle, es_storage_handle, ES, STORAGE_HANDLE, GObject)

/**
 * EsStorageHandleInterface:
 * @g_iface: the parent interface
 * @append: appends events atomically, see [method@Es.StorageHandle.append]
 * @append_async: asynchronous @append; the default runs @append in a thread
 * @append_finish: finishes @append_async
 * @read_page: reads one page of events, see [method@Es.StorageHandle.read_page]
 * @get_version: the current version of a stream, or the last sequence id
 * @get_metrics: metrics of a stream or of all streams
 * @save_snapshot: stores a snapshot, replacing the previous one
 * @load_snapshot: loads a snapshot
 * @close: releases every resource; later calls fail with %ES_ERROR_CLOSED
 * @read_page_full: reads one page in either direction, see
 *   [method@Es.StorageHandle.read_page_full] (since 0.2)
 * @get_stream_info: what is known of a stream, see
 *   [method@Es.StorageHandle.get_stream_info] (since 0.2)
 * @list_streams: one page of a listing of streams, see
 *   [method@Es.StorageHandle.list_streams] (since 0.2)
 * @delete_stream: soft or hard delete, see
 *   [method@Es.StorageHandle.delete_stream] (since 0.2)
 * @truncate_stream: drops the oldest events, see
 *   [method@Es.StorageHandle.truncate_stream] (since 0.2)
 * @erase_event: redacts one event, see
 *   [method@Es.StorageHandle.erase_event] (since 0.2)
 * @set_retention: stores a retention policy, see
 *   [method@Es.StorageHandle.set_retention] (since 0.2)
 * @sweep: enforces the retention policies, see
 *   [method@Es.StorageHandle.sweep] (since 0.2)
 * @compact: gives the space of deleted events back, see
 *   [method@Es.StorageHandle.compact] (since 0.2)
 * @get_subscription: a stored durable subscription, see
 *   [method@Es.StorageHandle.get_subscription] (since 0.2)
 * @list_subscriptions: every stored durable subscription, see
 *   [method@Es.StorageHandle.list_subscriptions] (since 0.2)
 * @save_checkpoint: stores a checkpoint, see
 *   [method@Es.StorageHandle.save_checkpoint] (since 0.2)
 * @reset_subscription: moves a checkpoint, see
 *   [method@Es.StorageHandle.reset_subscription] (since 0.2)
 * @delete_subscription: forgets a subscription, see
 *   [method@Es.StorageHandle.delete_subscription] (since 0.2)
 * @acquire_subscription: becomes the one consumer of a subscription, see
 *   [method@Es.StorageHandle.acquire_subscription] (since 0.2)
 * @release_subscription: stops being its consumer, see
 *   [method@Es.StorageHandle.release_subscription] (since 0.2)
 * @count_events: counts events in a range of positions, see
 *   [method@Es.StorageHandle.count_events] (since 0.2)
 * @locate_event: the position of the n-th event of a read, see
 *   [method@Es.StorageHandle.locate_event] (since 0.2)
 * @backup: copies the live database to a new file, see
 *   [method@Es.StorageHandle.backup] (since 0.2)
 * @check: checks the database's integrity, see
 *   [method@Es.StorageHandle.check] (since 0.2)
 * @import_events: stores events at given positions, see
 *   [method@Es.StorageHandle.import_events] (since 0.2)
 *
 * The virtual methods of a storage backend. Every method but the `_async`
 * ones may block and is called from worker threads, several at once: an
 * implementation must be thread-safe. A @stream_id of %NULL means every
 * stream in sequence-id order (the <code>@<!-- -->all</code> stream); stream ids reaching a
 * backend are already validated.
 *
 * The methods added in 0.2 may be left %NULL by a backend that does not
 * support them: their wrappers then fail with %G_IO_ERROR_NOT_SUPPORTED,
 * except @read_page_full, whose wrapper falls back on @read_page for
 * forward reads.
 */
struct _EsStorageHandleInterface
{
  GTypeInterface g_iface;

  gboolean         (*append)        (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     gint64                   expected_version,
                                     EsCandidateEvent * const *events,
                                     guint                    n_events,
                                     gint64                  *out_version,
                                     GCancellable            *cancellable,
                                     GError                 **error);
  void             (*append_async)  (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     gint64                   expected_version,
                                     EsCandidateEvent * const *events,
                                     guint                    n_events,
                                     GCancellable            *cancellable,
                                     GAsyncReadyCallback      callback,
                                     gpointer                 user_data);
  gboolean         (*append_finish) (EsStorageHandle         *self,
                                     GAsyncResult            *result,
                                     gint64                  *out_version,
                                     GError                 **error);
  GPtrArray       *(*read_page)     (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     gint64                   after,
                                     EsEventFilter           *filter,
                                     guint                    limit,
                                     GCancellable            *cancellable,
                                     GError                 **error);
  gboolean         (*get_version)   (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     gint64                  *out_version,
                                     GCancellable            *cancellable,
                                     GError                 **error);
  EsStreamMetrics *(*get_metrics)   (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     GCancellable            *cancellable,
                                     GError                 **error);
  gboolean         (*save_snapshot) (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     const char              *projection_name,
                                     gint64                   version,
                                     GBytes                  *state,
                                     GCancellable            *cancellable,
                                     GError                 **error);
  EsSnapshot      *(*load_snapshot) (EsStorageHandle         *self,
                                     const char              *stream_id,
                                     const char              *projection_name,
                                     GCancellable            *cancellable,
                                     GError                 **error);
  gboolean         (*close)         (EsStorageHandle         *self,
                                     GCancellable            *cancellable,
                                     GError                 **error);

  GPtrArray       *(*read_page_full)  (EsStorageHandle       *self,
                                       const char            *stream_id,
                                       gint64                 position,
                                       EsReadFlags            flags,
                                       EsEventFilter         *filter,
                                       guint                  limit,
                                       GCancellable          *cancellable,
                                       GError               **error);
  EsStreamInfo    *(*get_stream_info) (EsStorageHandle       *self,
                                       const char            *stream_id,
                                       GCancellable          *cancellable,
                                       GError               **error);
  GPtrArray       *(*list_streams)    (EsStorageHandle       *self,
                                       const char            *prefix,
                                       const char            *after_stream_id,
                                       EsListStreamsFlags     flags,
                                       guint                  limit,
                                       GCancellable          *cancellable,
                                       GError               **error);
  gboolean         (*delete_stream)   (EsStorageHandle       *self,
                                       const char            *stream_id,
                                       gint64                 expected_version,
                                       EsDeleteFlags          flags,
                                       GCancellable          *cancellable,
                                       GError               **error);
  gboolean         (*truncate_stream) (EsStorageHandle       *self,
                                       const char            *stream_id,
                                       gint64                 before_version,
                                       GCancellable          *cancellable,
                                       GError               **error);
  gboolean         (*erase_event)     (EsStorageHandle       *self,
                                       const char            *stream_id,
                                       gint64                 version,
                                       GCancellable          *cancellable,
                                       GError               **error);
  gboolean         (*set_retention)   (EsStorageHandle       *self,
                                       const char            *stream_id,
                                       GTimeSpan              max_age,
                                       gint64                 max_count,
                                       GCancellable          *cancellable,
                                       GError               **error);
  gint64           (*sweep)           (EsStorageHandle       *self,
                                       gint64                 now_usec,
                                       gboolean              *out_has_age_policy,
                                       GCancellable          *cancellable,
                                       GError               **error);
  gboolean         (*compact)         (EsStorageHandle       *self,
                                       GCancellable          *cancellable,
                                       GError               **error);

  EsSubscriptionInfo *(*get_subscription)     (EsStorageHandle  *self,
                                               const char       *name,
                                               GCancellable     *cancellable,
                                               GError          **error);
  GPtrArray          *(*list_subscriptions)   (EsStorageHandle  *self,
                                               GCancellable     *cancellable,
                                               GError          **error);
  gboolean            (*save_checkpoint)      (EsStorageHandle  *self,
                                               const char       *name,
                                               const char       *stream_id,
                                               gint64            position,
                                               GBytes           *state,
                                               GCancellable     *cancellable,
                                               GError          **error);
  gboolean            (*reset_subscription)   (EsStorageHandle  *self,
                                               const char       *name,
                                               gint64            position,
                                               GCancellable     *cancellable,
                                               GError          **error);
  gboolean            (*delete_subscription)  (EsStorageHandle  *self,
                                               const char       *name,
                                               GCancellable     *cancellable,
                                               GError          **error);
  gboolean            (*acquire_subscription) (EsStorageHandle  *self,
                                               const char       *name,
                                               gboolean          wait,
                                               GCancellable     *cancellable,
                                               GError          **error);
  void                (*release_subscription) (EsStorageHandle  *self,
                                               const char       *name);

  gint64              (*count_events)         (EsStorageHandle  *self,
                                               const char       *stream_id,
                                               EsEventFilter    *filter,
                                               gint64            after,
                                               gint64            until,
                                               GCancellable     *cancellable,
                                               GError          **error);
  gint64              (*locate_event)         (EsStorageHandle  *self,
                                               const char       *stream_id,
                                               gint64            position,
                                               EsReadFlags       flags,
                                               EsEventFilter    *filter,
                                               guint64           index,
                                               GCancellable     *cancellable,
                                               GError          **error);

  gboolean            (*backup)               (EsStorageHandle       *self,
                                               GFile                 *destination,
                                               EsBackupFlags          flags,
                                               GCancellable          *cancellable,
                                               GFileProgressCallback  progress_callback,
                                               gpointer               progress_data,
                                               GError               **error);
  gboolean            (*check)                (EsStorageHandle       *self,
                                               EsCheckFlags           flags,
                                               EsCheckReport         *report,
                                               GCancellable          *cancellable,
                                               GFileProgressCallback  progress_callback,
                                               gpointer               progress_data,
                                               GError               **error);
  gint64              (*import_events)        (EsStorageHandle       *self,
                                               EsStoredEvent * const *events,
                                               guint                  n_events,
                                               guint                 *out_failed_index,
                                               GCancellable          *cancellable,
                                               GError               **error);

  /*< private >*/
  /* Since 0.2, for the backends built with the library only (EsRowPage is
   * private): one page of a read as rows in flat memory, with the rules
   * of read_page_full (keyset paging, a whole page or an error). NULL:
   * the library reads through read_page_full and copies. The GIR sees a
   * pointer of the same size, so that the fields after it keep their
   * offsets there. */
#ifdef __GI_SCANNER__
  gpointer            read_rows;
#else
  gboolean            (*read_rows)            (EsStorageHandle       *self,
                                               const char            *stream_id,
                                               gint64                 position,
                                               EsReadFlags            flags,
                                               EsEventFilter         *filter,
                                               guint                  limit,
                                               EsRowPage             *page,
                                               GCancellable          *cancellable,
                                               GError               **error);
#endif
  /*< public >*/
};

ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_append        (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  gint64                    expected_version,
                                                  EsCandidateEvent * const *events,
                                                  guint                     n_events,
                                                  gint64                   *out_version,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
void             es_storage_handle_append_async  (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  gint64                    expected_version,
                                                  EsCandidateEvent * const *events,
                                                  guint                     n_events,
                                                  GCancellable             *cancellable,
                                                  GAsyncReadyCallback       callback,
                                                  gpointer                  user_data);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_append_finish (EsStorageHandle          *self,
                                                  GAsyncResult             *result,
                                                  gint64                   *out_version,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
GPtrArray       *es_storage_handle_read_page     (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  gint64                    after,
                                                  EsEventFilter            *filter,
                                                  guint                     limit,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_get_version   (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  gint64                   *out_version,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
EsStreamMetrics *es_storage_handle_get_metrics   (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_save_snapshot (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  const char               *projection_name,
                                                  gint64                    version,
                                                  GBytes                   *state,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
EsSnapshot      *es_storage_handle_load_snapshot (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  const char               *projection_name,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_close         (EsStorageHandle          *self,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);

ES_AVAILABLE_IN_ALL
GPtrArray       *es_storage_handle_read_page_full  (EsStorageHandle    *self,
                                                    const char         *stream_id,
                                                    gint64              position,
                                                    EsReadFlags         flags,
                                                    EsEventFilter      *filter,
                                                    guint               limit,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
EsStreamInfo    *es_storage_handle_get_stream_info (EsStorageHandle    *self,
                                                    const char         *stream_id,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
GPtrArray       *es_storage_handle_list_streams    (EsStorageHandle    *self,
                                                    const char         *prefix,
                                                    const char         *after_stream_id,
                                                    EsListStreamsFlags  flags,
                                                    guint               limit,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_delete_stream   (EsStorageHandle    *self,
                                                    const char         *stream_id,
                                                    gint64              expected_version,
                                                    EsDeleteFlags       flags,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_truncate_stream (EsStorageHandle    *self,
                                                    const char         *stream_id,
                                                    gint64              before_version,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_erase_event     (EsStorageHandle    *self,
                                                    const char         *stream_id,
                                                    gint64              version,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_set_retention   (EsStorageHandle    *self,
                                                    const char         *stream_id,
                                                    GTimeSpan           max_age,
                                                    gint64              max_count,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
gint64           es_storage_handle_sweep           (EsStorageHandle    *self,
                                                    gint64              now_usec,
                                                    gboolean           *out_has_age_policy,
                                                    GCancellable       *cancellable,
                                                    GError            **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_compact         (EsStorageHandle    *self,
                                                    GCancellable       *cancellable,
                                                    GError            **error);

ES_AVAILABLE_IN_ALL
EsSubscriptionInfo *es_storage_handle_get_subscription     (EsStorageHandle  *self,
                                                            const char       *name,
                                                            GCancellable     *cancellable,
                                                            GError          **error);
ES_AVAILABLE_IN_ALL
GPtrArray          *es_storage_handle_list_subscriptions   (EsStorageHandle  *self,
                                                            GCancellable     *cancellable,
                                                            GError          **error);
ES_AVAILABLE_IN_ALL
gboolean            es_storage_handle_save_checkpoint      (EsStorageHandle  *self,
                                                            const char       *name,
                                                            const char       *stream_id,
                                                            gint64            position,
                                                            GBytes           *state,
                                                            GCancellable     *cancellable,
                                                            GError          **error);
ES_AVAILABLE_IN_ALL
gboolean            es_storage_handle_reset_subscription   (EsStorageHandle  *self,
                                                            const char       *name,
                                                            gint64            position,
                                                            GCancellable     *cancellable,
                                                            GError          **error);
ES_AVAILABLE_IN_ALL
gboolean            es_storage_handle_delete_subscription  (EsStorageHandle  *self,
                                                            const char       *name,
                                                            GCancellable     *cancellable,
                                                            GError          **error);
ES_AVAILABLE_IN_ALL
gboolean            es_storage_handle_acquire_subscription (EsStorageHandle  *self,
                                                            const char       *name,
                                                            gboolean          wait,
                                                            GCancellable     *cancellable,
                                                            GError          **error);
ES_AVAILABLE_IN_ALL
void                es_storage_handle_release_subscription (EsStorageHandle  *self,
                                                            const char       *name);

ES_AVAILABLE_IN_ALL
gint64           es_storage_handle_count_events  (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  EsEventFilter            *filter,
                                                  gint64                    after,
                                                  gint64                    until,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
gint64           es_storage_handle_locate_event  (EsStorageHandle          *self,
                                                  const char               *stream_id,
                                                  gint64                    position,
                                                  EsReadFlags               flags,
                                                  EsEventFilter            *filter,
                                                  guint64                   index,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_backup        (EsStorageHandle          *self,
                                                  GFile                    *destination,
                                                  EsBackupFlags             flags,
                                                  GCancellable             *cancellable,
                                                  GFileProgressCallback     progress_callback,
                                                  gpointer                  progress_data,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_handle_check         (EsStorageHandle          *self,
                                                  EsCheckFlags              flags,
                                                  EsCheckReport            *report,
                                                  GCancellable             *cancellable,
                                                  GFileProgressCallback     progress_callback,
                                                  gpointer                  progress_data,
                                                  GError                  **error);
ES_AVAILABLE_IN_ALL
gint64           es_storage_handle_import_events (EsStorageHandle          *self,
                                                  EsStoredEvent * const    *events,
                                                  guint                     n_events,
                                                  guint                    *out_failed_index,
                                                  GCancellable             *cancellable,
                                                  GError                  **error);

G_END_DECLS
