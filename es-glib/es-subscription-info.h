/* es-subscription-info.h: a durable subscription as stored.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_SUBSCRIPTION_INFO (es_subscription_info_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsSubscriptionInfo, es_subscription_info, ES, SUBSCRIPTION_INFO, GObject)

ES_AVAILABLE_IN_ALL
EsSubscriptionInfo *es_subscription_info_new              (const char         *name,
                                                           const char         *stream_id,
                                                           gint64              checkpoint,
                                                           gint64              lag,
                                                           GBytes             *state,
                                                           gint64              updated_usec);
ES_AVAILABLE_IN_ALL
const char         *es_subscription_info_get_name         (EsSubscriptionInfo *self);
ES_AVAILABLE_IN_ALL
const char         *es_subscription_info_get_stream_id    (EsSubscriptionInfo *self);
ES_AVAILABLE_IN_ALL
gint64              es_subscription_info_get_checkpoint   (EsSubscriptionInfo *self);
ES_AVAILABLE_IN_ALL
gint64              es_subscription_info_get_lag          (EsSubscriptionInfo *self);
ES_AVAILABLE_IN_ALL
GBytes             *es_subscription_info_get_state        (EsSubscriptionInfo *self);
ES_AVAILABLE_IN_ALL
GDateTime          *es_subscription_info_get_updated      (EsSubscriptionInfo *self);
ES_AVAILABLE_IN_ALL
gint64              es_subscription_info_get_updated_usec (EsSubscriptionInfo *self);

G_END_DECLS
