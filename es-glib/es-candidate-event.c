/* es-candidate-event.c: an event an application asks to append.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsCandidateEvent:
 *
 * An event an application asks to append with [method@Es.Stream.write].
 *
 * A candidate has an event type, a payload of opaque bytes and, optionally,
 * an idempotency key and metadata (the text of a JSON object). Once written
 * it comes back from reads as an [class@Es.StoredEvent].
 *
 * Nothing is checked here: an empty event type or metadata that is not a
 * JSON object is reported by the write, with %ES_ERROR_INVALID_ARGUMENT,
 * and then nothing of the batch is written.
 *
 * From Python:
 *
 * ```python
 * event = Es.CandidateEvent(event_type="Added", data=GLib.Bytes.new(b"x"))
 * event.props.idempotency_key = "add-42"
 * ```
 *
 * A candidate is not thread-safe while it is being modified; do not change
 * it while a write that uses it is in progress.
 *
 * Since: 0.1
 */
struct _EsCandidateEvent
{
  GObject  parent_instance;

  char    *event_type;       /* (owned) construct-only */
  GBytes  *data;             /* (owned) construct-only; never NULL once constructed */
  char    *idempotency_key;  /* (owned) (nullable) */
  char    *metadata;         /* (owned) (nullable) JSON object text, unchecked */
};

enum
{
  PROP_0,
  PROP_EVENT_TYPE,
  PROP_DATA,
  PROP_IDEMPOTENCY_KEY,
  PROP_METADATA,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsCandidateEvent, es_candidate_event, G_TYPE_OBJECT)

static void
es_candidate_event_finalize (GObject *object)
{
  EsCandidateEvent *self = ES_CANDIDATE_EVENT (object);

  g_free (self->event_type);
  g_clear_pointer (&self->data, g_bytes_unref);
  g_free (self->idempotency_key);
  g_free (self->metadata);

  G_OBJECT_CLASS (es_candidate_event_parent_class)->finalize (object);
}

static void
es_candidate_event_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  EsCandidateEvent *self = ES_CANDIDATE_EVENT (object);

  switch (prop_id)
    {
    case PROP_EVENT_TYPE:
      g_value_set_string (value, self->event_type);
      break;

    case PROP_DATA:
      g_value_set_boxed (value, es_candidate_event_get_data (self));
      break;

    case PROP_IDEMPOTENCY_KEY:
      g_value_set_string (value, self->idempotency_key);
      break;

    case PROP_METADATA:
      g_value_set_string (value, self->metadata);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_candidate_event_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  EsCandidateEvent *self = ES_CANDIDATE_EVENT (object);
  GBytes *data;

  switch (prop_id)
    {
    case PROP_EVENT_TYPE:
      /* Construct-only: set exactly once. */
      g_free (self->event_type);
      self->event_type = g_value_dup_string (value);
      break;

    case PROP_DATA:
      /* Construct-only; %NULL is an empty payload. */
      data = g_value_get_boxed (value);
      g_clear_pointer (&self->data, g_bytes_unref);
      self->data = data != NULL ? g_bytes_ref (data) : g_bytes_new (NULL, 0);
      break;

    case PROP_IDEMPOTENCY_KEY:
      es_candidate_event_set_idempotency_key (self, g_value_get_string (value));
      break;

    case PROP_METADATA:
      es_candidate_event_set_metadata (self, g_value_get_string (value));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_candidate_event_class_init (EsCandidateEventClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_candidate_event_finalize;
  object_class->get_property = es_candidate_event_get_property;
  object_class->set_property = es_candidate_event_set_property;

  /**
   * EsCandidateEvent:event-type:
   *
   * The type of the event, such as `"ItemAdded"`: what happened.
   *
   * It must be non-empty UTF-8 to be written; that is checked by the write,
   * not here.
   *
   * Since: 0.1
   */
  properties[PROP_EVENT_TYPE] =
    g_param_spec_string ("event-type", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE |
                          G_PARAM_CONSTRUCT_ONLY |
                          G_PARAM_STATIC_STRINGS));

  /**
   * EsCandidateEvent:data:
   *
   * The payload of the event, opaque bytes stored exactly as given.
   *
   * Setting it to %NULL at construction gives an empty payload: reading the
   * property never gives %NULL.
   *
   * Since: 0.1
   */
  properties[PROP_DATA] =
    g_param_spec_boxed ("data", NULL, NULL,
                        G_TYPE_BYTES,
                        (G_PARAM_READWRITE |
                         G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS));

  /**
   * EsCandidateEvent:idempotency-key:
   *
   * An optional key that makes the write idempotent: an event whose key is
   * already stored in the stream (or repeats an earlier key of the same
   * batch) is skipped rather than written again.
   *
   * Since: 0.1
   */
  properties[PROP_IDEMPOTENCY_KEY] =
    g_param_spec_string ("idempotency-key", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE |
                          G_PARAM_EXPLICIT_NOTIFY |
                          G_PARAM_STATIC_STRINGS));

  /**
   * EsCandidateEvent:metadata:
   *
   * Optional metadata: the text of a JSON object, such as
   * `{"user": "ada", "tenant": 7}`. It is stored and returned exactly as
   * given, and can be filtered on with [class@Es.EventFilter] fields such as
   * `metadata.user`.
   *
   * It is not checked here: a write fails with %ES_ERROR_INVALID_ARGUMENT
   * when it is not a JSON object.
   *
   * Since: 0.1
   */
  properties[PROP_METADATA] =
    g_param_spec_string ("metadata", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE |
                          G_PARAM_EXPLICIT_NOTIFY |
                          G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_candidate_event_init (EsCandidateEvent *self)
{
}

/**
 * es_candidate_event_new:
 * @event_type: the type of the event, such as `"ItemAdded"`
 * @data: (nullable): the payload, or %NULL for an empty one
 *
 * Creates an event to append with [method@Es.Stream.write].
 *
 * @event_type is not checked here: an empty or non-UTF-8 event type makes
 * the write fail with %ES_ERROR_INVALID_ARGUMENT.
 *
 * Returns: (transfer full): a new [class@Es.CandidateEvent]
 *
 * Since: 0.1
 */
EsCandidateEvent *
es_candidate_event_new (const char *event_type,
                        GBytes     *data)
{
  g_return_val_if_fail (event_type != NULL, NULL);

  return g_object_new (ES_TYPE_CANDIDATE_EVENT,
                       "event-type", event_type,
                       "data", data,
                       NULL);
}

/**
 * es_candidate_event_get_event_type:
 * @self: an [class@Es.CandidateEvent]
 *
 * Gets the type of the event.
 *
 * Returns: (transfer none): the event type
 *
 * Since: 0.1
 */
const char *
es_candidate_event_get_event_type (EsCandidateEvent *self)
{
  g_return_val_if_fail (ES_IS_CANDIDATE_EVENT (self), NULL);

  return self->event_type;
}

/**
 * es_candidate_event_get_data:
 * @self: an [class@Es.CandidateEvent]
 *
 * Gets the payload of the event; an event created without one has an
 * empty payload.
 *
 * Returns: (transfer none): the payload
 *
 * Since: 0.1
 */
GBytes *
es_candidate_event_get_data (EsCandidateEvent *self)
{
  g_return_val_if_fail (ES_IS_CANDIDATE_EVENT (self), NULL);

  return self->data;
}

/**
 * es_candidate_event_get_idempotency_key:
 * @self: an [class@Es.CandidateEvent]
 *
 * Gets the idempotency key of the event, if it has one.
 *
 * Returns: (transfer none) (nullable): the idempotency key
 *
 * Since: 0.1
 */
const char *
es_candidate_event_get_idempotency_key (EsCandidateEvent *self)
{
  g_return_val_if_fail (ES_IS_CANDIDATE_EVENT (self), NULL);

  return self->idempotency_key;
}

/**
 * es_candidate_event_set_idempotency_key:
 * @self: an [class@Es.CandidateEvent]
 * @key: (nullable): the idempotency key, or %NULL for none
 *
 * Sets the idempotency key of the event: when the stream already holds an
 * event with this key, the write skips this one instead of storing it
 * again. See [property@Es.CandidateEvent:idempotency-key].
 *
 * Since: 0.1
 */
void
es_candidate_event_set_idempotency_key (EsCandidateEvent *self,
                                        const char       *key)
{
  g_return_if_fail (ES_IS_CANDIDATE_EVENT (self));

  if (g_strcmp0 (self->idempotency_key, key) == 0)
    return;

  g_free (self->idempotency_key);
  self->idempotency_key = g_strdup (key);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_IDEMPOTENCY_KEY]);
}

/**
 * es_candidate_event_get_metadata:
 * @self: an [class@Es.CandidateEvent]
 *
 * Gets the metadata of the event: the text of a JSON object, exactly as it
 * was set.
 *
 * Returns: (transfer none) (nullable): the metadata
 *
 * Since: 0.1
 */
const char *
es_candidate_event_get_metadata (EsCandidateEvent *self)
{
  g_return_val_if_fail (ES_IS_CANDIDATE_EVENT (self), NULL);

  return self->metadata;
}

/**
 * es_candidate_event_set_metadata:
 * @self: an [class@Es.CandidateEvent]
 * @json: (nullable): the text of a JSON object, or %NULL for none
 *
 * Sets the metadata of the event. It is not parsed here: the write fails
 * with %ES_ERROR_INVALID_ARGUMENT when it is not the text of a JSON object.
 * See [property@Es.CandidateEvent:metadata].
 *
 * Since: 0.1
 */
void
es_candidate_event_set_metadata (EsCandidateEvent *self,
                                 const char       *json)
{
  g_return_if_fail (ES_IS_CANDIDATE_EVENT (self));

  if (g_strcmp0 (self->metadata, json) == 0)
    return;

  g_free (self->metadata);
  self->metadata = g_strdup (json);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_METADATA]);
}
