/* es-subscription-info.c: a durable subscription as stored.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "backend/es-time-private.h"

#include "es-private.h"

/**
 * EsSubscriptionInfo:
 *
 * A durable subscription as its database stores it: the stream it
 * follows, its checkpoint, how far behind the head of its stream that is,
 * its state and when it was last saved. Returned by
 * [method@Es.StreamFactory.list_subscriptions] and
 * [method@Es.StreamFactory.get_subscription_info]; immutable.
 *
 * Since: 0.2
 */
struct _EsSubscriptionInfo
{
  GObject     parent_instance;

  char       *name;
  char       *stream_id;
  gint64      checkpoint;
  gint64      lag;
  GBytes     *state;          /* (owned) (nullable) */
  gint64      updated_usec;
  GDateTime  *updated;        /* (owned) (nullable) (atomic) built on first use */
};

enum
{
  PROP_0,
  PROP_NAME,
  PROP_STREAM_ID,
  PROP_CHECKPOINT,
  PROP_LAG,
  PROP_STATE,
  PROP_UPDATED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsSubscriptionInfo, es_subscription_info, G_TYPE_OBJECT)

static void
es_subscription_info_finalize (GObject *object)
{
  EsSubscriptionInfo *self = ES_SUBSCRIPTION_INFO (object);

  g_free (self->name);
  g_free (self->stream_id);
  g_clear_pointer (&self->state, g_bytes_unref);
  g_clear_pointer (&self->updated, g_date_time_unref);

  G_OBJECT_CLASS (es_subscription_info_parent_class)->finalize (object);
}

static void
es_subscription_info_get_property (GObject    *object,
                                   guint       prop_id,
                                   GValue     *value,
                                   GParamSpec *pspec)
{
  EsSubscriptionInfo *self = ES_SUBSCRIPTION_INFO (object);

  switch (prop_id)
    {
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;

    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;

    case PROP_CHECKPOINT:
      g_value_set_int64 (value, self->checkpoint);
      break;

    case PROP_LAG:
      g_value_set_int64 (value, self->lag);
      break;

    case PROP_STATE:
      g_value_set_boxed (value, self->state);
      break;

    case PROP_UPDATED:
      g_value_set_boxed (value, es_subscription_info_get_updated (self));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_subscription_info_class_init (EsSubscriptionInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_subscription_info_finalize;
  object_class->get_property = es_subscription_info_get_property;

  /**
   * EsSubscriptionInfo:name:
   *
   * The subscription's name.
   *
   * Since: 0.2
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSubscriptionInfo:stream-id:
   *
   * The stream the subscription follows; <code>@<!-- -->all</code> for every stream.
   *
   * Since: 0.2
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL, NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSubscriptionInfo:checkpoint:
   *
   * The last position consumed: a version, or for
   * <code>@<!-- -->all</code> a sequence id; 0 for none.
   *
   * Since: 0.2
   */
  properties[PROP_CHECKPOINT] =
    g_param_spec_int64 ("checkpoint", NULL, NULL, 0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSubscriptionInfo:lag:
   *
   * Positions between the checkpoint and the head of the stream when the
   * information was read.
   *
   * Since: 0.2
   */
  properties[PROP_LAG] =
    g_param_spec_int64 ("lag", NULL, NULL, 0, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSubscriptionInfo:state:
   *
   * The consumer's state stored with the checkpoint, or %NULL (always
   * %NULL in listings).
   *
   * Since: 0.2
   */
  properties[PROP_STATE] =
    g_param_spec_boxed ("state", NULL, NULL, G_TYPE_BYTES,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsSubscriptionInfo:updated:
   *
   * When the checkpoint was last stored.
   *
   * Since: 0.2
   */
  properties[PROP_UPDATED] =
    g_param_spec_boxed ("updated", NULL, NULL, G_TYPE_DATE_TIME,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_subscription_info_init (EsSubscriptionInfo *self)
{
}

/**
 * es_subscription_info_new:
 * @name: the subscription's name
 * @stream_id: the stream it follows (<code>@<!-- -->all</code> for every stream)
 * @checkpoint: the last position consumed, 0 for none
 * @lag: positions between the checkpoint and the head of the stream
 * @state: (nullable): the stored state, or %NULL
 * @updated_usec: when the checkpoint was stored, in microseconds since the
 *   Unix epoch (UTC)
 *
 * Creates subscription information, for storage backends. @state is
 * referenced.
 *
 * Returns: (transfer full): a new [class@Es.SubscriptionInfo]
 *
 * Since: 0.2
 */
EsSubscriptionInfo *
es_subscription_info_new (const char *name,
                          const char *stream_id,
                          gint64      checkpoint,
                          gint64      lag,
                          GBytes     *state,
                          gint64      updated_usec)
{
  EsSubscriptionInfo *self;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (stream_id != NULL, NULL);

  self = g_object_new (ES_TYPE_SUBSCRIPTION_INFO, NULL);
  self->name = g_strdup (name);
  self->stream_id = g_strdup (stream_id);
  self->checkpoint = checkpoint;
  self->lag = MAX (lag, 0);
  self->state = state != NULL ? g_bytes_ref (state) : NULL;
  self->updated_usec = updated_usec;

  return self;
}

/**
 * es_subscription_info_get_name:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets the subscription's name.
 *
 * Returns: (transfer none): the name
 *
 * Since: 0.2
 */
const char *
es_subscription_info_get_name (EsSubscriptionInfo *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), NULL);

  return self->name;
}

/**
 * es_subscription_info_get_stream_id:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets the stream the subscription follows.
 *
 * Returns: (transfer none): the stream id, <code>@<!-- -->all</code> for every stream
 *
 * Since: 0.2
 */
const char *
es_subscription_info_get_stream_id (EsSubscriptionInfo *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), NULL);

  return self->stream_id;
}

/**
 * es_subscription_info_get_checkpoint:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets the last position consumed.
 *
 * Returns: the checkpoint, 0 for none
 *
 * Since: 0.2
 */
gint64
es_subscription_info_get_checkpoint (EsSubscriptionInfo *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), 0);

  return self->checkpoint;
}

/**
 * es_subscription_info_get_lag:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets how many positions the checkpoint was behind the head of its
 * stream when the information was read.
 *
 * Returns: the lag
 *
 * Since: 0.2
 */
gint64
es_subscription_info_get_lag (EsSubscriptionInfo *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), 0);

  return self->lag;
}

/**
 * es_subscription_info_get_state:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets the consumer's state stored with the checkpoint.
 *
 * Returns: (transfer none) (nullable): the state, or %NULL
 *
 * Since: 0.2
 */
GBytes *
es_subscription_info_get_state (EsSubscriptionInfo *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), NULL);

  return self->state;
}

/**
 * es_subscription_info_get_updated:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets when the checkpoint was last stored.
 *
 * Returns: (transfer none): the time
 *
 * Since: 0.2
 */
GDateTime *
es_subscription_info_get_updated (EsSubscriptionInfo *self)
{
  GDateTime *updated;

  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), NULL);

  updated = g_atomic_pointer_get (&self->updated);
  if (updated == NULL)
    {
      GDateTime *made = _es_date_time_new_from_usec (self->updated_usec);

      if (g_atomic_pointer_compare_and_exchange (&self->updated, NULL, made))
        updated = made;
      else
        {
          g_date_time_unref (made);
          updated = g_atomic_pointer_get (&self->updated);
        }
    }

  return updated;
}

/**
 * es_subscription_info_get_updated_usec:
 * @self: an [class@Es.SubscriptionInfo]
 *
 * Gets when the checkpoint was last stored, in microseconds since the
 * Unix epoch (UTC).
 *
 * Returns: the time
 *
 * Since: 0.2
 */
gint64
es_subscription_info_get_updated_usec (EsSubscriptionInfo *self)
{
  g_return_val_if_fail (ES_IS_SUBSCRIPTION_INFO (self), 0);

  return self->updated_usec;
}
