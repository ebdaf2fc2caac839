/* es-stream-factory.h: wires a storage and a notifier, opens streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STREAM_FACTORY (es_stream_factory_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (EsStreamFactory, es_stream_factory, ES, STREAM_FACTORY, GObject)

/**
 * EsStreamFactoryClass:
 * @parent_class: the parent class
 *
 * The class of [class@Es.StreamFactory]. Subclasses provide the storage
 * and notifier they create, as [class@Es.SqliteStreamFactory] does.
 */
struct _EsStreamFactoryClass
{
  GObjectClass parent_class;

  /*< private >*/
  gpointer _reserved[8];
};

ES_AVAILABLE_IN_ALL
EsStreamFactory *es_stream_factory_new               (EsStorageHandle      *storage,
                                                      EsNotifier           *notifier);
ES_AVAILABLE_IN_ALL
EsStorageHandle *es_stream_factory_get_storage       (EsStreamFactory      *self);
ES_AVAILABLE_IN_ALL
EsNotifier      *es_stream_factory_get_notifier      (EsStreamFactory      *self);
ES_AVAILABLE_IN_ALL
gboolean         es_stream_factory_is_closed         (EsStreamFactory      *self);
ES_AVAILABLE_IN_ALL
EsStream        *es_stream_factory_open_stream       (EsStreamFactory      *self,
                                                      const char           *stream_id,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
void             es_stream_factory_open_stream_async (EsStreamFactory      *self,
                                                      const char           *stream_id,
                                                      GCancellable         *cancellable,
                                                      GAsyncReadyCallback   callback,
                                                      gpointer              user_data);
ES_AVAILABLE_IN_ALL
EsStream        *es_stream_factory_open_stream_finish (EsStreamFactory     *self,
                                                      GAsyncResult         *result,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
gboolean         es_stream_factory_close             (EsStreamFactory      *self,
                                                      GCancellable         *cancellable,
                                                      GError              **error);
ES_AVAILABLE_IN_ALL
void             es_stream_factory_close_async       (EsStreamFactory      *self,
                                                      GCancellable         *cancellable,
                                                      GAsyncReadyCallback   callback,
                                                      gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean         es_stream_factory_close_finish      (EsStreamFactory      *self,
                                                      GAsyncResult         *result,
                                                      GError              **error);

ES_AVAILABLE_IN_ALL
void             es_stream_factory_set_backend       (EsStreamFactory      *self,
                                                      EsStorageHandle      *storage,
                                                      EsNotifier           *notifier);

ES_AVAILABLE_IN_ALL
EsStreamInfoEnumerator *es_stream_factory_list_streams (EsStreamFactory         *self,
                                                        const char              *prefix,
                                                        EsListStreamsFlags       flags,
                                                        GCancellable            *cancellable,
                                                        GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_list_streams_async (EsStreamFactory         *self,
                                           const char              *prefix,
                                           EsListStreamsFlags       flags,
                                           GCancellable            *cancellable,
                                           GAsyncReadyCallback      callback,
                                           gpointer                 user_data);

ES_AVAILABLE_IN_ALL
EsStreamInfoEnumerator *es_stream_factory_list_streams_finish (EsStreamFactory         *self,
                                                               GAsyncResult            *result,
                                                               GError                  **error);

ES_AVAILABLE_IN_ALL
EsStreamInfo *es_stream_factory_get_stream_info (EsStreamFactory         *self,
                                                 const char              *stream_id,
                                                 GCancellable            *cancellable,
                                                 GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_get_stream_info_async (EsStreamFactory         *self,
                                              const char              *stream_id,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);

ES_AVAILABLE_IN_ALL
EsStreamInfo *es_stream_factory_get_stream_info_finish (EsStreamFactory         *self,
                                                        GAsyncResult            *result,
                                                        GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_delete_stream (EsStreamFactory         *self,
                                          const char              *stream_id,
                                          gint64                   expected_version,
                                          EsDeleteFlags            flags,
                                          GCancellable            *cancellable,
                                          GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_delete_stream_async (EsStreamFactory         *self,
                                            const char              *stream_id,
                                            gint64                   expected_version,
                                            EsDeleteFlags            flags,
                                            GCancellable            *cancellable,
                                            GAsyncReadyCallback      callback,
                                            gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_delete_stream_finish (EsStreamFactory         *self,
                                                 GAsyncResult            *result,
                                                 GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_truncate_stream (EsStreamFactory         *self,
                                            const char              *stream_id,
                                            gint64                   before_version,
                                            GCancellable            *cancellable,
                                            GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_truncate_stream_async (EsStreamFactory         *self,
                                              const char              *stream_id,
                                              gint64                   before_version,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_truncate_stream_finish (EsStreamFactory         *self,
                                                   GAsyncResult            *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_erase_event (EsStreamFactory         *self,
                                        const char              *stream_id,
                                        gint64                   version,
                                        GCancellable            *cancellable,
                                        GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_erase_event_async (EsStreamFactory         *self,
                                          const char              *stream_id,
                                          gint64                   version,
                                          GCancellable            *cancellable,
                                          GAsyncReadyCallback      callback,
                                          gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_erase_event_finish (EsStreamFactory         *self,
                                               GAsyncResult            *result,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_set_retention (EsStreamFactory         *self,
                                          const char              *stream_id,
                                          GTimeSpan                max_age,
                                          gint64                   max_count,
                                          GCancellable            *cancellable,
                                          GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_set_retention_async (EsStreamFactory         *self,
                                            const char              *stream_id,
                                            GTimeSpan                max_age,
                                            gint64                   max_count,
                                            GCancellable            *cancellable,
                                            GAsyncReadyCallback      callback,
                                            gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_set_retention_finish (EsStreamFactory         *self,
                                                 GAsyncResult            *result,
                                                 GError                  **error);

ES_AVAILABLE_IN_ALL
gint64 es_stream_factory_sweep (EsStreamFactory         *self,
                                GCancellable            *cancellable,
                                GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_sweep_async (EsStreamFactory         *self,
                                    GCancellable            *cancellable,
                                    GAsyncReadyCallback      callback,
                                    gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gint64 es_stream_factory_sweep_finish (EsStreamFactory         *self,
                                       GAsyncResult            *result,
                                       GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_compact (EsStreamFactory         *self,
                                    GCancellable            *cancellable,
                                    GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_compact_async (EsStreamFactory         *self,
                                      GCancellable            *cancellable,
                                      GAsyncReadyCallback      callback,
                                      gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_compact_finish (EsStreamFactory         *self,
                                           GAsyncResult            *result,
                                           GError                  **error);

ES_AVAILABLE_IN_ALL
GPtrArray *es_stream_factory_list_subscriptions (EsStreamFactory         *self,
                                                 GCancellable            *cancellable,
                                                 GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_list_subscriptions_async (EsStreamFactory         *self,
                                                 GCancellable            *cancellable,
                                                 GAsyncReadyCallback      callback,
                                                 gpointer                 user_data);

ES_AVAILABLE_IN_ALL
GPtrArray *es_stream_factory_list_subscriptions_finish (EsStreamFactory         *self,
                                                        GAsyncResult            *result,
                                                        GError                  **error);

ES_AVAILABLE_IN_ALL
EsSubscriptionInfo *es_stream_factory_get_subscription_info (EsStreamFactory         *self,
                                                             const char              *name,
                                                             GCancellable            *cancellable,
                                                             GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_get_subscription_info_async (EsStreamFactory         *self,
                                                    const char              *name,
                                                    GCancellable            *cancellable,
                                                    GAsyncReadyCallback      callback,
                                                    gpointer                 user_data);

ES_AVAILABLE_IN_ALL
EsSubscriptionInfo *es_stream_factory_get_subscription_info_finish (EsStreamFactory         *self,
                                                                    GAsyncResult            *result,
                                                                    GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_reset_subscription (EsStreamFactory         *self,
                                               const char              *name,
                                               gint64                   position,
                                               GCancellable            *cancellable,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_reset_subscription_async (EsStreamFactory         *self,
                                                 const char              *name,
                                                 gint64                   position,
                                                 GCancellable            *cancellable,
                                                 GAsyncReadyCallback      callback,
                                                 gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_reset_subscription_finish (EsStreamFactory         *self,
                                                      GAsyncResult            *result,
                                                      GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_delete_subscription (EsStreamFactory         *self,
                                                const char              *name,
                                                GCancellable            *cancellable,
                                                GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_delete_subscription_async (EsStreamFactory         *self,
                                                  const char              *name,
                                                  GCancellable            *cancellable,
                                                  GAsyncReadyCallback      callback,
                                                  gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_delete_subscription_finish (EsStreamFactory         *self,
                                                       GAsyncResult            *result,
                                                       GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_backup (EsStreamFactory         *self,
                                   GFile                   *destination,
                                   EsBackupFlags            flags,
                                   GCancellable            *cancellable,
                                   GFileProgressCallback    progress_callback,
                                   gpointer                 progress_data,
                                   GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_backup_async (EsStreamFactory         *self,
                                     GFile                   *destination,
                                     EsBackupFlags            flags,
                                     GCancellable            *cancellable,
                                     GFileProgressCallback    progress_callback,
                                     gpointer                 progress_data,
                                     GDestroyNotify           progress_data_destroy,
                                     GAsyncReadyCallback      callback,
                                     gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_backup_finish (EsStreamFactory         *self,
                                          GAsyncResult            *result,
                                          GError                  **error);

ES_AVAILABLE_IN_ALL
EsCheckReport *es_stream_factory_check (EsStreamFactory         *self,
                                        EsCheckFlags             flags,
                                        GCancellable            *cancellable,
                                        GFileProgressCallback    progress_callback,
                                        gpointer                 progress_data,
                                        GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_check_async (EsStreamFactory         *self,
                                    EsCheckFlags             flags,
                                    GCancellable            *cancellable,
                                    GFileProgressCallback    progress_callback,
                                    gpointer                 progress_data,
                                    GDestroyNotify           progress_data_destroy,
                                    GAsyncReadyCallback      callback,
                                    gpointer                 user_data);

ES_AVAILABLE_IN_ALL
EsCheckReport *es_stream_factory_check_finish (EsStreamFactory         *self,
                                               GAsyncResult            *result,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
gint64 es_stream_factory_export_events (EsStreamFactory         *self,
                                        GOutputStream           *output,
                                        const char              *stream_id,
                                        EsEventFilter           *filter,
                                        EsExportFlags            flags,
                                        GCancellable            *cancellable,
                                        GFileProgressCallback    progress_callback,
                                        gpointer                 progress_data,
                                        GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_export_events_async (EsStreamFactory         *self,
                                            GOutputStream           *output,
                                            const char              *stream_id,
                                            EsEventFilter           *filter,
                                            EsExportFlags            flags,
                                            GCancellable            *cancellable,
                                            GFileProgressCallback    progress_callback,
                                            gpointer                 progress_data,
                                            GDestroyNotify           progress_data_destroy,
                                            GAsyncReadyCallback      callback,
                                            gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gint64 es_stream_factory_export_events_finish (EsStreamFactory         *self,
                                               GAsyncResult            *result,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
gint64 es_stream_factory_import_events (EsStreamFactory         *self,
                                        GInputStream            *input,
                                        EsImportFlags            flags,
                                        GCancellable            *cancellable,
                                        GFileProgressCallback    progress_callback,
                                        gpointer                 progress_data,
                                        GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_import_events_async (EsStreamFactory         *self,
                                            GInputStream            *input,
                                            EsImportFlags            flags,
                                            GCancellable            *cancellable,
                                            GFileProgressCallback    progress_callback,
                                            gpointer                 progress_data,
                                            GDestroyNotify           progress_data_destroy,
                                            GAsyncReadyCallback      callback,
                                            gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gint64 es_stream_factory_import_events_finish (EsStreamFactory         *self,
                                               GAsyncResult            *result,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_add_metadata_index (EsStreamFactory         *self,
                                               const char              *path,
                                               GCancellable            *cancellable,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_add_metadata_index_async (EsStreamFactory         *self,
                                                 const char              *path,
                                                 GCancellable            *cancellable,
                                                 GAsyncReadyCallback      callback,
                                                 gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_add_metadata_index_finish (EsStreamFactory         *self,
                                                      GAsyncResult            *result,
                                                      GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_remove_metadata_index (EsStreamFactory         *self,
                                                  const char              *path,
                                                  GCancellable            *cancellable,
                                                  GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_remove_metadata_index_async (EsStreamFactory         *self,
                                                    const char              *path,
                                                    GCancellable            *cancellable,
                                                    GAsyncReadyCallback      callback,
                                                    gpointer                 user_data);

ES_AVAILABLE_IN_ALL
gboolean es_stream_factory_remove_metadata_index_finish (EsStreamFactory         *self,
                                                         GAsyncResult            *result,
                                                         GError                  **error);

ES_AVAILABLE_IN_ALL
GStrv es_stream_factory_list_metadata_indexes (EsStreamFactory         *self,
                                               GCancellable            *cancellable,
                                               GError                  **error);

ES_AVAILABLE_IN_ALL
void es_stream_factory_list_metadata_indexes_async (EsStreamFactory         *self,
                                                    GCancellable            *cancellable,
                                                    GAsyncReadyCallback      callback,
                                                    gpointer                 user_data);

ES_AVAILABLE_IN_ALL
GStrv es_stream_factory_list_metadata_indexes_finish (EsStreamFactory         *self,
                                                      GAsyncResult            *result,
                                                      GError                  **error);

G_END_DECLS
