/* es-subscription.h: a named consumer that resumes where it stopped.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_SUBSCRIPTION (es_subscription_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsSubscription, es_subscription, ES, SUBSCRIPTION, GObject)

ES_AVAILABLE_IN_ALL
EsSubscription *es_subscription_new             (EsStreamFactory      *factory,
                                                 const char           *name,
                                                 const char           *stream_id,
                                                 EsEventFilter        *filter,
                                                 EsSubscriptionFlags   flags);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_start           (EsSubscription       *self,
                                                 GCancellable         *cancellable,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
void            es_subscription_start_async     (EsSubscription       *self,
                                                 GCancellable         *cancellable,
                                                 GAsyncReadyCallback   callback,
                                                 gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_start_finish    (EsSubscription       *self,
                                                 GAsyncResult         *result,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_stop            (EsSubscription       *self,
                                                 GCancellable         *cancellable,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
void            es_subscription_stop_async      (EsSubscription       *self,
                                                 GCancellable         *cancellable,
                                                 GAsyncReadyCallback   callback,
                                                 gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_stop_finish     (EsSubscription       *self,
                                                 GAsyncResult         *result,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
void            es_subscription_acknowledge     (EsSubscription       *self,
                                                 gint64                position);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_save_state      (EsSubscription       *self,
                                                 GBytes               *state,
                                                 gint64                position,
                                                 GCancellable         *cancellable,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
void            es_subscription_save_state_async (EsSubscription      *self,
                                                 GBytes               *state,
                                                 gint64                position,
                                                 GCancellable         *cancellable,
                                                 GAsyncReadyCallback   callback,
                                                 gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_save_state_finish (EsSubscription     *self,
                                                 GAsyncResult         *result,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_flush           (EsSubscription       *self,
                                                 GCancellable         *cancellable,
                                                 GError              **error);
ES_AVAILABLE_IN_ALL
void            es_subscription_flush_async     (EsSubscription       *self,
                                                 GCancellable         *cancellable,
                                                 GAsyncReadyCallback   callback,
                                                 gpointer              user_data);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_flush_finish    (EsSubscription       *self,
                                                 GAsyncResult         *result,
                                                 GError              **error);

ES_AVAILABLE_IN_ALL
const char     *es_subscription_get_name        (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
const char     *es_subscription_get_stream_id   (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
EsSubscriptionFlags es_subscription_get_flags   (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
EsSubscriptionStart es_subscription_get_start_from (EsSubscription    *self);
ES_AVAILABLE_IN_ALL
void            es_subscription_set_start_from  (EsSubscription       *self,
                                                 EsSubscriptionStart   start_from);
ES_AVAILABLE_IN_ALL
gint64          es_subscription_get_start_position (EsSubscription    *self);
ES_AVAILABLE_IN_ALL
void            es_subscription_set_start_position (EsSubscription    *self,
                                                 gint64                position);
ES_AVAILABLE_IN_ALL
guint           es_subscription_get_checkpoint_batch (EsSubscription  *self);
ES_AVAILABLE_IN_ALL
void            es_subscription_set_checkpoint_batch (EsSubscription  *self,
                                                 guint                 n_events);
ES_AVAILABLE_IN_ALL
guint           es_subscription_get_checkpoint_delay (EsSubscription  *self);
ES_AVAILABLE_IN_ALL
void            es_subscription_set_checkpoint_delay (EsSubscription  *self,
                                                 guint                 msec);
ES_AVAILABLE_IN_ALL
gint64          es_subscription_get_position    (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
gint64          es_subscription_get_checkpoint  (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
gint64          es_subscription_get_lag         (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_get_active      (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
gboolean        es_subscription_get_caught_up   (EsSubscription       *self);
ES_AVAILABLE_IN_ALL
GBytes         *es_subscription_get_state       (EsSubscription       *self);

G_END_DECLS
