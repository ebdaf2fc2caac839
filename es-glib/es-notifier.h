/* es-notifier.h: the contract of a backend's change notifier.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

/**
 * EsNotifierFunc:
 * @events: (element-type EsStoredEvent): newly committed events of every
 *   stream, in sequence-id order, none missed since the previous call
 * @user_data: the data given to [method@Es.Notifier.subscribe]
 *
 * Receives newly committed events. It is called from the notifier's own
 * thread, never from an application's main context, and must not block.
 *
 * Since 0.2, @events also holds the marker of each hard delete (an
 * [class@Es.StoredEvent] with %ES_STORED_EVENT_FLAGS_TOMBSTONE, see
 * %ES_READ_FLAGS_INCLUDE_TOMBSTONES) at its position: subscribers that
 * want only events skip those. Sequence ids may have gaps: events
 * deleted before they were delivered are not, and each delete takes a
 * position no event gets.
 */
typedef void (*EsNotifierFunc) (GPtrArray *events,
                                gpointer   user_data);

#define ES_TYPE_NOTIFIER (es_notifier_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_INTERFACE (EsNotifier, es_notifier, ES, NOTIFIER, GObject)

/**
 * EsNotifierInterface:
 * @g_iface: the parent interface
 * @start: starts watching the database for commits
 * @stop: stops watching; idempotent
 * @subscribe: adds a subscriber, returns its id (never 0)
 * @unsubscribe: removes a subscriber; its function is not called after
 *   this returns
 * @get_last_sequence_id: the sequence id of the last event delivered to
 *   subscribers
 * @committed: tells the notifier that this process just committed events,
 *   so it looks for them now instead of at its next poll
 * @get_error: why the notifier gave up, or %NULL (Since: 0.2)
 *
 * The virtual methods of a backend's notifier. All must be thread-safe.
 */
struct _EsNotifierInterface
{
  GTypeInterface g_iface;

  gboolean (*start)                (EsNotifier     *self,
                                    GCancellable   *cancellable,
                                    GError        **error);
  void     (*stop)                 (EsNotifier     *self);
  guint    (*subscribe)            (EsNotifier     *self,
                                    EsNotifierFunc  func,
                                    gpointer        user_data,
                                    GDestroyNotify  destroy);
  void     (*unsubscribe)          (EsNotifier     *self,
                                    guint           subscription_id);
  gint64   (*get_last_sequence_id) (EsNotifier     *self);
  void     (*committed)            (EsNotifier     *self);
  const GError *(*get_error)       (EsNotifier     *self);
};

ES_AVAILABLE_IN_ALL
gboolean es_notifier_start                (EsNotifier     *self,
                                           GCancellable   *cancellable,
                                           GError        **error);
ES_AVAILABLE_IN_ALL
void     es_notifier_stop                 (EsNotifier     *self);
ES_AVAILABLE_IN_ALL
guint    es_notifier_subscribe            (EsNotifier     *self,
                                           EsNotifierFunc  func,
                                           gpointer        user_data,
                                           GDestroyNotify  destroy);
ES_AVAILABLE_IN_ALL
void     es_notifier_unsubscribe          (EsNotifier     *self,
                                           guint           subscription_id);
ES_AVAILABLE_IN_ALL
gint64   es_notifier_get_last_sequence_id (EsNotifier     *self);
ES_AVAILABLE_IN_ALL
void     es_notifier_committed            (EsNotifier     *self);
ES_AVAILABLE_IN_ALL
const GError *es_notifier_get_error       (EsNotifier     *self);

G_END_DECLS
