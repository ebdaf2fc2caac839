/* es-stream.h: one handle on one event stream.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_STREAM (es_stream_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_INTERFACE (EsStream, es_stream, ES, STREAM, GObject)

/**
 * EsStreamInterface:
 * @g_iface: the parent interface
 * @get_stream_id: returns the stream id
 * @get_version: returns the version this handle knows
 * @write: appends events, see [method@Es.Stream.write]
 * @write_async: asynchronous @write; the default runs @write in a thread
 * @write_finish: finishes @write_async
 * @read: starts reading, see [method@Es.Stream.read]
 * @read_async: asynchronous @read; the default runs @read in a thread
 * @read_finish: finishes @read_async
 * @snapshot: saves a snapshot, see [method@Es.Stream.snapshot]
 * @snapshot_async: asynchronous @snapshot; the default runs @snapshot in a thread
 * @snapshot_finish: finishes @snapshot_async
 * @load_snapshot: loads a snapshot, see [method@Es.Stream.load_snapshot]
 * @load_snapshot_async: asynchronous @load_snapshot; the default runs it in a thread
 * @load_snapshot_finish: finishes @load_snapshot_async
 * @get_metrics: reads metrics, see [method@Es.Stream.get_metrics]
 * @get_metrics_async: asynchronous @get_metrics; the default runs it in a thread
 * @get_metrics_finish: finishes @get_metrics_async
 * @watch: starts a watch, see [method@Es.Stream.watch]
 * @query_version: reads the stored version, see [method@Es.Stream.query_version];
 *   the default reads it through @get_metrics (since 0.2)
 * @query_version_async: asynchronous @query_version; the default runs it in
 *   a thread (since 0.2)
 * @query_version_finish: finishes @query_version_async (since 0.2)
 * @read_backwards: starts reading newest first, see
 *   [method@Es.Stream.read_backwards] (since 0.2); the asynchronous
 *   variant runs it in a thread
 * @read_cursor: starts reading into a cursor, see
 *   [method@Es.Stream.read_cursor] (since 0.2); the default steps through
 *   what @read returns, and the asynchronous variant runs it in a thread
 *
 * The virtual methods of [iface@Es.Stream]. The synchronous methods must be
 * safe to call from several threads at once. Arguments reaching them have
 * been checked by the public wrappers for programmer errors only.
 */
struct _EsStreamInterface
{
  GTypeInterface g_iface;

  const char        *(*get_stream_id)        (EsStream                *self);
  gint64             (*get_version)          (EsStream                *self);

  gint64             (*write)                (EsStream                *self,
                                              EsCandidateEvent * const *events,
                                              guint                    n_events,
                                              gint64                   expected_version,
                                              GCancellable            *cancellable,
                                              GError                 **error);
  void               (*write_async)          (EsStream                *self,
                                              EsCandidateEvent * const *events,
                                              guint                    n_events,
                                              gint64                   expected_version,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);
  gint64             (*write_finish)         (EsStream                *self,
                                              GAsyncResult            *result,
                                              GError                 **error);

  EsEventEnumerator *(*read)                 (EsStream                *self,
                                              gint64                   after_version,
                                              EsEventFilter           *filter,
                                              GCancellable            *cancellable,
                                              GError                 **error);
  void               (*read_async)           (EsStream                *self,
                                              gint64                   after_version,
                                              EsEventFilter           *filter,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);
  EsEventEnumerator *(*read_finish)          (EsStream                *self,
                                              GAsyncResult            *result,
                                              GError                 **error);

  gboolean           (*snapshot)             (EsStream                *self,
                                              GBytes                  *state,
                                              gint64                   version,
                                              const char              *projection_name,
                                              GCancellable            *cancellable,
                                              GError                 **error);
  void               (*snapshot_async)       (EsStream                *self,
                                              GBytes                  *state,
                                              gint64                   version,
                                              const char              *projection_name,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);
  gboolean           (*snapshot_finish)      (EsStream                *self,
                                              GAsyncResult            *result,
                                              GError                 **error);

  EsSnapshot        *(*load_snapshot)        (EsStream                *self,
                                              const char              *projection_name,
                                              GCancellable            *cancellable,
                                              GError                 **error);
  void               (*load_snapshot_async)  (EsStream                *self,
                                              const char              *projection_name,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);
  EsSnapshot        *(*load_snapshot_finish) (EsStream                *self,
                                              GAsyncResult            *result,
                                              GError                 **error);

  EsStreamMetrics   *(*get_metrics)          (EsStream                *self,
                                              GCancellable            *cancellable,
                                              GError                 **error);
  void               (*get_metrics_async)    (EsStream                *self,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);
  EsStreamMetrics   *(*get_metrics_finish)   (EsStream                *self,
                                              GAsyncResult            *result,
                                              GError                 **error);

  EsWatch           *(*watch)                (EsStream                *self,
                                              gint64                   after_version);

  gint64             (*query_version)        (EsStream                *self,
                                              GCancellable            *cancellable,
                                              GError                 **error);
  void               (*query_version_async)  (EsStream                *self,
                                              GCancellable            *cancellable,
                                              GAsyncReadyCallback      callback,
                                              gpointer                 user_data);
  gint64             (*query_version_finish) (EsStream                *self,
                                              GAsyncResult            *result,
                                              GError                 **error);

  EsEventEnumerator *(*read_backwards)       (EsStream                *self,
                                              gint64                   before_version,
                                              EsEventFilter           *filter,
                                              GCancellable            *cancellable,
                                              GError                 **error);

  EsEventCursor     *(*read_cursor)          (EsStream                *self,
                                              gint64                   after_version,
                                              EsEventFilter           *filter,
                                              GCancellable            *cancellable,
                                              GError                 **error);
};

ES_AVAILABLE_IN_ALL
const char        *es_stream_get_stream_id        (EsStream                 *self);
ES_AVAILABLE_IN_ALL
gint64             es_stream_get_version          (EsStream                 *self);

ES_AVAILABLE_IN_ALL
gint64             es_stream_write                (EsStream                 *self,
                                                   EsCandidateEvent * const *events,
                                                   guint                     n_events,
                                                   gint64                    expected_version,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_write_async          (EsStream                 *self,
                                                   EsCandidateEvent * const *events,
                                                   guint                     n_events,
                                                   gint64                    expected_version,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
gint64             es_stream_write_finish         (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
EsEventEnumerator *es_stream_read                 (EsStream                 *self,
                                                   gint64                    after_version,
                                                   EsEventFilter            *filter,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_read_async           (EsStream                 *self,
                                                   gint64                    after_version,
                                                   EsEventFilter            *filter,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
EsEventEnumerator *es_stream_read_finish          (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
gboolean           es_stream_snapshot             (EsStream                 *self,
                                                   GBytes                   *state,
                                                   gint64                    version,
                                                   const char               *projection_name,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_snapshot_async       (EsStream                 *self,
                                                   GBytes                   *state,
                                                   gint64                    version,
                                                   const char               *projection_name,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
gboolean           es_stream_snapshot_finish      (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
EsSnapshot        *es_stream_load_snapshot        (EsStream                 *self,
                                                   const char               *projection_name,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_load_snapshot_async  (EsStream                 *self,
                                                   const char               *projection_name,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
EsSnapshot        *es_stream_load_snapshot_finish (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
EsStreamMetrics   *es_stream_get_metrics          (EsStream                 *self,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_get_metrics_async    (EsStream                 *self,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
EsStreamMetrics   *es_stream_get_metrics_finish   (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
EsWatch           *es_stream_watch                (EsStream                 *self,
                                                   gint64                    after_version);

ES_AVAILABLE_IN_ALL
gint64             es_stream_query_version        (EsStream                 *self,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_query_version_async  (EsStream                 *self,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
gint64             es_stream_query_version_finish (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
EsEventEnumerator *es_stream_read_backwards        (EsStream                 *self,
                                                   gint64                    before_version,
                                                   EsEventFilter            *filter,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_read_backwards_async  (EsStream                 *self,
                                                   gint64                    before_version,
                                                   EsEventFilter            *filter,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
EsEventEnumerator *es_stream_read_backwards_finish (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

ES_AVAILABLE_IN_ALL
EsEventCursor     *es_stream_read_cursor          (EsStream                 *self,
                                                   gint64                    after_version,
                                                   EsEventFilter            *filter,
                                                   GCancellable             *cancellable,
                                                   GError                  **error);
ES_AVAILABLE_IN_ALL
void               es_stream_read_cursor_async    (EsStream                 *self,
                                                   gint64                    after_version,
                                                   EsEventFilter            *filter,
                                                   GCancellable             *cancellable,
                                                   GAsyncReadyCallback       callback,
                                                   gpointer                  user_data);
ES_AVAILABLE_IN_ALL
EsEventCursor     *es_stream_read_cursor_finish   (EsStream                 *self,
                                                   GAsyncResult             *result,
                                                   GError                  **error);

G_END_DECLS
