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

/**
 * es_candidate_event_new_batch:
 * @event_types: (array length=n_event_types): the event type of each
 *   candidate
 * @n_event_types: the number of candidates to create
 * @data: (nullable): the payloads of all candidates, one after the other,
 *   or %NULL when every payload is empty
 * @data_lengths: (array length=n_data_lengths) (nullable): the length of
 *   each candidate's payload in @data, in order
 * @n_data_lengths: the number of elements of @data_lengths: 0 (every
 *   payload empty) or @n_event_types
 * @idempotency_keys: (array length=n_idempotency_keys) (nullable): the
 *   idempotency key of each candidate; a %NULL or empty element means none
 * @n_idempotency_keys: the number of elements of @idempotency_keys: 0 or
 *   @n_event_types
 * @metadata: (array length=n_metadata) (nullable): the metadata of each
 *   candidate (the text of a JSON object); a %NULL or empty element means
 *   none
 * @n_metadata: the number of elements of @metadata: 0 or @n_event_types
 *
 * Creates @n_event_types candidates at once, for a batch to pass to
 * [method@Es.Stream.write]: the i-th candidate has the i-th event type,
 * the i-th key and metadata, and as data the i-th slice of @data (the
 * lengths of the slices are @data_lengths; together they must be the
 * whole of @data). An empty key or metadata, which a write would refuse,
 * means none, like %NULL: some bindings (GJS) cannot put null in an array
 * of strings.
 *
 * Each candidate is exactly what [ctor@Es.CandidateEvent.new] followed by
 * [method@Es.CandidateEvent.set_idempotency_key] and
 * [method@Es.CandidateEvent.set_metadata] would make; nothing is checked
 * here either (the write checks). It exists for language bindings, where
 * creating thousands of objects one by one through their properties costs
 * more than writing them: from Python, one call instead of 10,000
 * constructors makes building a batch about 10 times cheaper (see
 * "From Python" in the performance guide). The payloads are not copied:
 * each candidate's data is a slice of @data (see g_bytes_new_from_bytes()),
 * so @data stays in memory while any of the candidates holds its slice.
 *
 * Returns: (transfer container) (element-type EsCandidateEvent): the new
 *   candidates, in the order of @event_types, which the array owns (release
 *   it with g_ptr_array_unref()), or %NULL when the lengths do not match (a
 *   programmer error)
 *
 * Since: 0.2
 */
GPtrArray *
es_candidate_event_new_batch (const char * const *event_types,
                              guint               n_event_types,
                              GBytes             *data,
                              const gsize        *data_lengths,
                              guint               n_data_lengths,
                              const char * const *idempotency_keys,
                              guint               n_idempotency_keys,
                              const char * const *metadata,
                              guint               n_metadata)
{
  g_autoptr(GPtrArray) batch = NULL;
  gsize data_size = data != NULL ? g_bytes_get_size (data) : 0;
  gsize offset = 0;
  g_autoptr(GBytes) empty = NULL;

  g_return_val_if_fail (event_types != NULL || n_event_types == 0, NULL);
  g_return_val_if_fail (n_data_lengths == 0 || n_data_lengths == n_event_types, NULL);
  g_return_val_if_fail (data_lengths != NULL || n_data_lengths == 0, NULL);
  g_return_val_if_fail (n_idempotency_keys == 0 || n_idempotency_keys == n_event_types, NULL);
  g_return_val_if_fail (idempotency_keys != NULL || n_idempotency_keys == 0, NULL);
  g_return_val_if_fail (n_metadata == 0 || n_metadata == n_event_types, NULL);
  g_return_val_if_fail (metadata != NULL || n_metadata == 0, NULL);

  /* The slices must cover @data exactly: check before creating anything. */
  for (guint i = 0; i < n_data_lengths; i++)
    {
      g_return_val_if_fail (data_lengths[i] <= data_size - offset, NULL);
      offset += data_lengths[i];
    }
  g_return_val_if_fail (offset == data_size, NULL);

  batch = g_ptr_array_new_full (n_event_types, g_object_unref);
  offset = 0;
  for (guint i = 0; i < n_event_types; i++)
    {
      EsCandidateEvent *event;
      gsize length = n_data_lengths > 0 ? data_lengths[i] : 0;

      g_return_val_if_fail (event_types[i] != NULL, NULL);

      /* No properties through GValues: the fields are set as the
       * construct-only properties would set them. */
      event = g_object_new (ES_TYPE_CANDIDATE_EVENT, NULL);
      event->event_type = g_strdup (event_types[i]);
      g_clear_pointer (&event->data, g_bytes_unref);
      if (length > 0)
        {
          event->data = g_bytes_new_from_bytes (data, offset, length);
        }
      else
        {
          if (empty == NULL)
            empty = g_bytes_new (NULL, 0);
          event->data = g_bytes_ref (empty);
        }
      offset += length;
      if (n_idempotency_keys > 0 && idempotency_keys[i] != NULL && *idempotency_keys[i] != '\0')
        event->idempotency_key = g_strdup (idempotency_keys[i]);
      if (n_metadata > 0 && metadata[i] != NULL && *metadata[i] != '\0')
        event->metadata = g_strdup (metadata[i]);
      g_ptr_array_add (batch, event);
    }

  return g_steal_pointer (&batch);
}
