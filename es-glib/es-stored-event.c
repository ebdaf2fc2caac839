/* es-stored-event.c: an event as persisted.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "backend/es-time-private.h"

#include <string.h>

#include "es-private.h"

/**
 * EsStoredEvent:
 *
 * An event as persisted in a stream, returned by reads and watches.
 *
 * A stored event is immutable, so it can be passed between threads freely.
 * Besides what the application wrote (event type, payload, idempotency key
 * and metadata) it carries its position: the stream it belongs to, its
 * 1-based [property@Es.StoredEvent:version] in that stream, and its
 * [property@Es.StoredEvent:sequence-id], a global position that grows
 * strictly across every stream of the store. Its
 * [property@Es.StoredEvent:timestamp] is the UTC time of the write.
 *
 * Backends implementing [iface@Es.StorageHandle] outside es-glib build
 * stored events with [ctor@Es.StoredEvent.new].
 *
 * Since: 0.1
 */
struct _EsStoredEvent
{
  GObject     parent_instance;

  char       *stream_id;        /* (owned) a GRefString */
  char       *event_type;       /* (owned) */
  GBytes     *data;             /* (owned) never NULL */
  char       *idempotency_key;  /* (owned) (nullable) */
  char       *metadata;         /* (owned) (nullable) */
  gint64      sequence_id;
  gint64      version;
  gint64      timestamp_usec;   /* since the Unix epoch, UTC */
  EsStoredEventFlags flags;
  gboolean    packed;           /* event_type, idempotency_key and metadata
                                 * point into the block data owns, and are
                                 * not freed on their own */

  /* Built on first use, set once with compare-and-exchange. */
  GDateTime  *timestamp;        /* (owned) (nullable) (atomic) */
  char       *id;               /* (owned) (nullable) (atomic) only without a key */
};

enum
{
  PROP_0,
  PROP_ID,
  PROP_IDEMPOTENCY_KEY,
  PROP_STREAM_ID,
  PROP_SEQUENCE_ID,
  PROP_VERSION,
  PROP_TIMESTAMP,
  PROP_TIMESTAMP_USEC,
  PROP_EVENT_TYPE,
  PROP_DATA,
  PROP_METADATA,
  PROP_FLAGS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsStoredEvent, es_stored_event, G_TYPE_OBJECT)

static void
es_stored_event_finalize (GObject *object)
{
  EsStoredEvent *self = ES_STORED_EVENT (object);

  g_clear_pointer (&self->stream_id, g_ref_string_release);
  if (!self->packed)
    {
      g_free (self->event_type);
      g_free (self->idempotency_key);
      g_free (self->metadata);
    }
  g_clear_pointer (&self->data, g_bytes_unref);
  g_clear_pointer (&self->timestamp, g_date_time_unref);
  g_free (self->id);

  G_OBJECT_CLASS (es_stored_event_parent_class)->finalize (object);
}

static void
es_stored_event_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  EsStoredEvent *self = ES_STORED_EVENT (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, es_stored_event_get_id (self));
      break;

    case PROP_IDEMPOTENCY_KEY:
      g_value_set_string (value, self->idempotency_key);
      break;

    case PROP_STREAM_ID:
      g_value_set_string (value, self->stream_id);
      break;

    case PROP_SEQUENCE_ID:
      g_value_set_int64 (value, self->sequence_id);
      break;

    case PROP_VERSION:
      g_value_set_int64 (value, self->version);
      break;

    case PROP_TIMESTAMP:
      g_value_set_boxed (value, es_stored_event_get_timestamp (self));
      break;

    case PROP_TIMESTAMP_USEC:
      g_value_set_int64 (value, self->timestamp_usec);
      break;

    case PROP_EVENT_TYPE:
      g_value_set_string (value, self->event_type);
      break;

    case PROP_DATA:
      g_value_set_boxed (value, self->data);
      break;

    case PROP_METADATA:
      g_value_set_string (value, self->metadata);
      break;

    case PROP_FLAGS:
      g_value_set_flags (value, self->flags);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_stored_event_class_init (EsStoredEventClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->finalize = es_stored_event_finalize;
  object_class->get_property = es_stored_event_get_property;

  /**
   * EsStoredEvent:id:
   *
   * A stable identifier of the event: its idempotency key when it has one,
   * otherwise an id derived from its sequence id, such as `"seq-42"`.
   *
   * It is unique within the event's stream only: idempotency keys are per
   * stream, so events of two streams can have the same id. To identify an
   * event across streams (e.g. one read from <code>@<!-- -->all</code>), use
   * [property@Es.StoredEvent:sequence-id], or the pair of
   * [property@Es.StoredEvent:stream-id] and id.
   *
   * Since: 0.1
   */
  properties[PROP_ID] =
    g_param_spec_string ("id", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:idempotency-key:
   *
   * The idempotency key the event was written with, or %NULL.
   *
   * Since: 0.1
   */
  properties[PROP_IDEMPOTENCY_KEY] =
    g_param_spec_string ("idempotency-key", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:stream-id:
   *
   * The stream the event belongs to (never <code>@<!-- -->all</code>).
   *
   * Since: 0.1
   */
  properties[PROP_STREAM_ID] =
    g_param_spec_string ("stream-id", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:sequence-id:
   *
   * The global position of the event: greater than 0 and strictly
   * increasing across every stream of the store. It is the event's version
   * in the <code>@<!-- -->all</code> stream.
   *
   * Since: 0.1
   */
  properties[PROP_SEQUENCE_ID] =
    g_param_spec_int64 ("sequence-id", NULL, NULL,
                        G_MININT64, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:version:
   *
   * The 1-based position of the event in its stream.
   *
   * Since: 0.1
   */
  properties[PROP_VERSION] =
    g_param_spec_int64 ("version", NULL, NULL,
                        G_MININT64, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:timestamp:
   *
   * When the event was written, in UTC, with microsecond precision.
   *
   * Since: 0.1
   */
  properties[PROP_TIMESTAMP] =
    g_param_spec_boxed ("timestamp", NULL, NULL,
                        G_TYPE_DATE_TIME,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:timestamp-usec:
   *
   * When the event was written, in microseconds since the Unix epoch (UTC):
   * the same instant as [property@Es.StoredEvent:timestamp], without
   * building a [struct@GLib.DateTime].
   *
   * Since: 0.1
   */
  properties[PROP_TIMESTAMP_USEC] =
    g_param_spec_int64 ("timestamp-usec", NULL, NULL,
                        G_MININT64, G_MAXINT64, 0,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:event-type:
   *
   * The type of the event, as written.
   *
   * Since: 0.1
   */
  properties[PROP_EVENT_TYPE] =
    g_param_spec_string ("event-type", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:data:
   *
   * The payload of the event, exactly the bytes written (possibly empty,
   * never %NULL).
   *
   * Since: 0.1
   */
  properties[PROP_DATA] =
    g_param_spec_boxed ("data", NULL, NULL,
                        G_TYPE_BYTES,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:metadata:
   *
   * The metadata of the event, the text of a JSON object exactly as
   * written, or %NULL.
   *
   * Since: 0.1
   */
  properties[PROP_METADATA] =
    g_param_spec_string ("metadata", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * EsStoredEvent:flags:
   *
   * What kind of stored event this is: an event as written, an erased
   * event, or the marker of a hard-deleted stream.
   *
   * Since: 0.2
   */
  properties[PROP_FLAGS] =
    g_param_spec_flags ("flags", NULL, NULL,
                        ES_TYPE_STORED_EVENT_FLAGS, ES_STORED_EVENT_FLAGS_NONE,
                        (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_stored_event_init (EsStoredEvent *self)
{
}

/* The hot path of reads: no copy, no check, nothing but stores. */
EsStoredEvent *
_es_stored_event_new_take (char   *stream_id,
                           gint64  sequence_id,
                           gint64  version,
                           gint64  timestamp_usec,
                           char   *event_type,
                           GBytes *data,
                           char   *idempotency_key,
                           char   *metadata)
{
  EsStoredEvent *self = g_object_new (ES_TYPE_STORED_EVENT, NULL);

  self->stream_id = stream_id;
  self->sequence_id = sequence_id;
  self->version = version;
  self->timestamp_usec = timestamp_usec;
  self->event_type = event_type;
  self->data = data != NULL ? data : g_bytes_new (NULL, 0);
  self->idempotency_key = idempotency_key;
  self->metadata = metadata;

  return self;
}

/* The hot path of SQLite reads: copies a row's strings and data into ONE
 * allocation, [data][event type\0][key\0][metadata\0], which the data's
 * GBytes owns; the strings point into it and live as long as the event
 * (which holds the GBytes). Takes @stream_id (a GRefString); the other
 * pointers are copied (@idempotency_key and @metadata may be NULL; the
 * lengths exclude the terminating NUL). One block instead of five. */
EsStoredEvent *
_es_stored_event_new_packed (char       *stream_id,
                             gint64      sequence_id,
                             gint64      version,
                             gint64      timestamp_usec,
                             const char *event_type,
                             gsize       event_type_len,
                             const void *data,
                             gsize       data_len,
                             const char *idempotency_key,
                             gsize       idempotency_key_len,
                             const char *metadata,
                             gsize       metadata_len)
{
  EsStoredEvent *self = g_object_new (ES_TYPE_STORED_EVENT, NULL);
  gsize size = data_len + event_type_len + 1 +
               (idempotency_key != NULL ? idempotency_key_len + 1 : 0) +
               (metadata != NULL ? metadata_len + 1 : 0);
  char *block = g_malloc (size);
  char *p = block + data_len;

  if (data_len > 0)
    memcpy (block, data, data_len);

  self->event_type = p;
  memcpy (p, event_type, event_type_len);
  p[event_type_len] = '\0';
  p += event_type_len + 1;

  if (idempotency_key != NULL)
    {
      self->idempotency_key = p;
      memcpy (p, idempotency_key, idempotency_key_len);
      p[idempotency_key_len] = '\0';
      p += idempotency_key_len + 1;
    }

  if (metadata != NULL)
    {
      self->metadata = p;
      memcpy (p, metadata, metadata_len);
      p[metadata_len] = '\0';
    }

  self->packed = TRUE;
  self->data = g_bytes_new_with_free_func (block, data_len, g_free, block);
  self->stream_id = stream_id;
  self->sequence_id = sequence_id;
  self->version = version;
  self->timestamp_usec = timestamp_usec;

  return self;
}

/**
 * es_stored_event_new:
 * @stream_id: the stream the event belongs to
 * @sequence_id: the global position of the event
 * @version: the 1-based position of the event in @stream_id
 * @timestamp: when the event was written
 * @event_type: the type of the event
 * @data: (nullable): the payload, or %NULL for an empty one
 * @idempotency_key: (nullable): the idempotency key, or %NULL
 * @metadata: (nullable): the metadata (the text of a JSON object), or %NULL
 *
 * Creates a stored event. Applications get stored events from reads; this
 * is for storage backends implemented outside es-glib. Every argument is
 * copied (or referenced); @timestamp is kept as UTC microseconds.
 *
 * Returns: (transfer full): a new [class@Es.StoredEvent]
 *
 * Since: 0.1
 */
EsStoredEvent *
es_stored_event_new (const char *stream_id,
                     gint64      sequence_id,
                     gint64      version,
                     GDateTime  *timestamp,
                     const char *event_type,
                     GBytes     *data,
                     const char *idempotency_key,
                     const char *metadata)
{
  gint64 usec;

  g_return_val_if_fail (stream_id != NULL, NULL);
  g_return_val_if_fail (timestamp != NULL, NULL);
  g_return_val_if_fail (event_type != NULL, NULL);

  usec = _es_date_time_to_usec (timestamp);

  return _es_stored_event_new_take (g_ref_string_new (stream_id),
                                    sequence_id,
                                    version,
                                    usec,
                                    g_strdup (event_type),
                                    data != NULL ? g_bytes_ref (data) : NULL,
                                    g_strdup (idempotency_key),
                                    g_strdup (metadata));
}

/**
 * es_stored_event_new_full:
 * @stream_id: the stream the event belongs to
 * @sequence_id: the global position of the event
 * @version: the 1-based position of the event in @stream_id
 * @timestamp: when the event was written
 * @event_type: the type of the event
 * @data: (nullable): the payload, or %NULL for an empty one
 * @idempotency_key: (nullable): the idempotency key, or %NULL
 * @metadata: (nullable): the metadata (the text of a JSON object), or %NULL
 * @flags: whether the event is erased, or a tombstone marker
 *
 * Creates a stored event with flags, as [ctor@Es.StoredEvent.new] does:
 * for storage backends implemented outside es-glib that support erasing
 * events and hard deletes.
 *
 * Returns: (transfer full): a new [class@Es.StoredEvent]
 *
 * Since: 0.2
 */
EsStoredEvent *
es_stored_event_new_full (const char         *stream_id,
                          gint64              sequence_id,
                          gint64              version,
                          GDateTime          *timestamp,
                          const char         *event_type,
                          GBytes             *data,
                          const char         *idempotency_key,
                          const char         *metadata,
                          EsStoredEventFlags  flags)
{
  EsStoredEvent *self = es_stored_event_new (stream_id, sequence_id, version, timestamp,
                                             event_type, data, idempotency_key, metadata);

  if (self != NULL)
    self->flags = flags;
  return self;
}

/* Backends mark the events they build, before anyone else sees them. */
void
_es_stored_event_set_flags (EsStoredEvent      *self,
                            EsStoredEventFlags  flags)
{
  self->flags = flags;
}

/**
 * es_stored_event_get_id:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets a stable identifier of the event: its idempotency key when it was
 * written with one, otherwise an id derived from its sequence id (such as
 * `"seq-42"`), the same every time the event is read.
 *
 * The id is unique within the event's stream, not across streams: it is
 * the stream's idempotency key, and two streams can hold events with the
 * same key (hence the same id). Consumers of <code>@<!-- -->all</code>, or of
 * several streams, must key events by
 * [method@Es.StoredEvent.get_sequence_id], the global position (or by the
 * stream id and the id together).
 *
 * Returns: (transfer none): the id of the event
 *
 * Since: 0.1
 */
const char *
es_stored_event_get_id (EsStoredEvent *self)
{
  char *id;

  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  if (self->idempotency_key != NULL)
    return self->idempotency_key;

  id = g_atomic_pointer_get (&self->id);
  if (id == NULL)
    {
      char *made = g_strdup_printf ("seq-%" G_GINT64_FORMAT, self->sequence_id);

      if (g_atomic_pointer_compare_and_exchange (&self->id, NULL, made))
        id = made;
      else
        {
          /* Another thread was first; use its string. */
          g_free (made);
          id = g_atomic_pointer_get (&self->id);
        }
    }

  return id;
}

/**
 * es_stored_event_get_idempotency_key:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the idempotency key the event was written with.
 *
 * Returns: (transfer none) (nullable): the idempotency key, or %NULL
 *
 * Since: 0.1
 */
const char *
es_stored_event_get_idempotency_key (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  return self->idempotency_key;
}

/**
 * es_stored_event_get_stream_id:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the stream the event belongs to. Events read from <code>@<!-- -->all</code> give the
 * stream they were written to.
 *
 * Returns: (transfer none): the stream id
 *
 * Since: 0.1
 */
const char *
es_stored_event_get_stream_id (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  return self->stream_id;
}

/**
 * es_stored_event_get_sequence_id:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the global position of the event, greater than 0 and strictly
 * increasing across every stream of the store.
 *
 * Returns: the sequence id
 *
 * Since: 0.1
 */
gint64
es_stored_event_get_sequence_id (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), 0);

  return self->sequence_id;
}

/**
 * es_stored_event_get_version:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the 1-based position of the event in its stream.
 *
 * Returns: the version
 *
 * Since: 0.1
 */
gint64
es_stored_event_get_version (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), 0);

  return self->version;
}

/**
 * es_stored_event_get_timestamp:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets when the event was written, in UTC with microsecond precision.
 *
 * Returns: (transfer none): the timestamp
 *
 * Since: 0.1
 */
GDateTime *
es_stored_event_get_timestamp (EsStoredEvent *self)
{
  GDateTime *timestamp;

  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  timestamp = g_atomic_pointer_get (&self->timestamp);
  if (timestamp == NULL)
    {
      GDateTime *made = _es_date_time_new_from_usec (self->timestamp_usec);

      if (g_atomic_pointer_compare_and_exchange (&self->timestamp, NULL, made))
        timestamp = made;
      else
        {
          /* Another thread was first; use its value. */
          g_clear_pointer (&made, g_date_time_unref);
          timestamp = g_atomic_pointer_get (&self->timestamp);
        }
    }

  return timestamp;
}

/**
 * es_stored_event_get_timestamp_usec:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets when the event was written as microseconds since the Unix epoch
 * (UTC), without building a [struct@GLib.DateTime].
 *
 * Returns: the timestamp in microseconds
 *
 * Since: 0.1
 */
gint64
es_stored_event_get_timestamp_usec (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), 0);

  return self->timestamp_usec;
}

/**
 * es_stored_event_get_event_type:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the type of the event.
 *
 * Returns: (transfer none): the event type
 *
 * Since: 0.1
 */
const char *
es_stored_event_get_event_type (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  return self->event_type;
}

/**
 * es_stored_event_get_data:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the payload of the event: exactly the bytes written, possibly empty.
 *
 * Returns: (transfer none): the payload
 *
 * Since: 0.1
 */
GBytes *
es_stored_event_get_data (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  return self->data;
}

/**
 * es_stored_event_get_metadata:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets the metadata of the event: the text of a JSON object, exactly as
 * written.
 *
 * Returns: (transfer none) (nullable): the metadata, or %NULL
 *
 * Since: 0.1
 */
const char *
es_stored_event_get_metadata (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), NULL);

  return self->metadata;
}

/**
 * es_stored_event_get_flags:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets what kind of stored event this is: see [flags@Es.StoredEventFlags].
 *
 * Returns: the flags, %ES_STORED_EVENT_FLAGS_NONE for an event as written
 *
 * Since: 0.2
 */
EsStoredEventFlags
es_stored_event_get_flags (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), ES_STORED_EVENT_FLAGS_NONE);

  return self->flags;
}

/**
 * es_stored_event_get_erased:
 * @self: an [class@Es.StoredEvent]
 *
 * Gets whether the event was erased (see
 * [method@Es.StreamFactory.erase_event]): its payload is then empty and
 * its metadata %NULL, while its position, type, timestamp and idempotency
 * key are those it was written with.
 *
 * Returns: %TRUE if the event was erased
 *
 * Since: 0.2
 */
gboolean
es_stored_event_get_erased (EsStoredEvent *self)
{
  g_return_val_if_fail (ES_IS_STORED_EVENT (self), FALSE);

  return (self->flags & ES_STORED_EVENT_FLAGS_ERASED) != 0;
}
