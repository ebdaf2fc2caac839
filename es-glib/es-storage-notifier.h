/* es-storage-notifier.h: the base class of a backend's notifier.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-version-macros.h"
#include "es-storage-handle.h"
#include "es-notifier.h"

G_BEGIN_DECLS

#define ES_TYPE_STORAGE_NOTIFIER (es_storage_notifier_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (EsStorageNotifier, es_storage_notifier, ES, STORAGE_NOTIFIER, GObject)

/**
 * EsStorageNotifierClass:
 * @parent_class: the parent class
 * @prepare: called by [method@Es.Notifier.start] on the caller's thread,
 *   before the notifier reads where the store ends: open what telling
 *   commits needs (a connection that listens, say); %NULL for nothing
 * @attach: called on the notifier's thread when it starts: attach the
 *   sources that tell when to look (a file monitor, a socket, a timer)
 *   to @context; %NULL for none
 * @detach: called on the notifier's thread when it stops (after the
 *   queued sources ran), and on the caller's thread when start() fails
 *   after @prepare succeeded: remove the sources and close what @prepare
 *   opened; %NULL for nothing
 * @check: called on the notifier's thread after
 *   [method@Es.StorageNotifier.changed]: look for commits and deliver
 *   them; the default calls [method@Es.StorageNotifier.deliver] and reports
 *   the outcome with [method@Es.StorageNotifier.report_failure] or
 *   [method@Es.StorageNotifier.report_success]
 * @get_last_committed: called on the notifier's thread when nobody is
 *   subscribed, to move the cursor without reading events; the default
 *   asks the storage with [method@Es.StorageHandle.get_version] (@all)
 * @give_up_error: makes the error subscribers get when the notifier gives
 *   up, from the last reason reported; the default says that watching for
 *   new events failed for give-up-timeout milliseconds
 * @listening_changed: called on the notifier's thread when the first
 *   subscriber arrives (@listening %TRUE) and when the last one leaves
 *   (%FALSE): a subclass that implements it attaches its sources only
 *   while someone listens, so that an idle notifier wakes nobody up.
 *   Implementing it also makes [method@Es.Notifier.get_last_sequence_id]
 *   read where the store ends while nobody listens, since nothing moves
 *   the cursor then. %NULL (the default): the sources
 *   attached by @attach run the whole time. Since: 0.2
 *
 * The virtual methods of a notifier subclass. They only say when to look
 * for commits; the base class reads and delivers them.
 *
 * Since: 0.2
 */
struct _EsStorageNotifierClass
{
  GObjectClass parent_class;

  gboolean (*prepare)            (EsStorageNotifier  *self,
                                  GCancellable       *cancellable,
                                  GError            **error);
  void     (*attach)             (EsStorageNotifier  *self,
                                  GMainContext       *context);
  void     (*detach)             (EsStorageNotifier  *self);
  void     (*check)              (EsStorageNotifier  *self);
  gboolean (*get_last_committed) (EsStorageNotifier  *self,
                                  gint64             *out_sequence_id,
                                  GCancellable       *cancellable,
                                  GError            **error);
  GError * (*give_up_error)      (EsStorageNotifier  *self,
                                  const char         *reason);
  void     (*listening_changed)  (EsStorageNotifier  *self,
                                  gboolean            listening);

  /*< private >*/
  gpointer padding[7];
};

ES_AVAILABLE_IN_ALL
EsStorageHandle *es_storage_notifier_get_storage         (EsStorageNotifier  *self);
ES_AVAILABLE_IN_ALL
guint            es_storage_notifier_get_give_up_timeout (EsStorageNotifier  *self);
ES_AVAILABLE_IN_ALL
GMainContext    *es_storage_notifier_get_context         (EsStorageNotifier  *self);
ES_AVAILABLE_IN_ALL
void             es_storage_notifier_changed             (EsStorageNotifier  *self);
ES_AVAILABLE_IN_ALL
gboolean         es_storage_notifier_deliver             (EsStorageNotifier  *self,
                                                          GError            **error);
ES_AVAILABLE_IN_ALL
void             es_storage_notifier_report_failure      (EsStorageNotifier  *self,
                                                          const char         *reason);
ES_AVAILABLE_IN_ALL
void             es_storage_notifier_report_success      (EsStorageNotifier  *self);

G_END_DECLS
