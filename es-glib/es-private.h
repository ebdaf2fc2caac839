/* es-private.h: internals shared by the library's own files.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib/gi18n-lib.h>

#include "es-glib.h"

G_BEGIN_DECLS

/* ES_PRIVATE_API: an internal of libes-glib-1.0 that the library exports
 * (the rest of it is built with -fvisibility=hidden) for the one other
 * library built from this tree, libes-glib-pg-1.0 (es-glib/postgres/), of
 * the same version only. Declared here only: not in an installed header,
 * not in the GIR, not API; anything else must not use it, and it may
 * change in any release. Keep the list short: what the PostgreSQL backend
 * needs and is not public API. */
#if defined (__GNUC__)
# define ES_PRIVATE_API __attribute__ ((visibility ("default"))) extern
#else
# define ES_PRIVATE_API extern
#endif

/* Longest stream id accepted, in bytes. */
#define ES_STREAM_ID_MAX_BYTES 1024

/* Events fetched per storage round trip by an enumerator. */
#define ES_READ_PAGE_SIZE 1024

/* The most events es_storage_handle_import_events() takes at once. */
#define ES_IMPORT_MAX_EVENTS 10000

ES_PRIVATE_API
void            _es_i18n_init              (void);

/* GTask carries a gint64 result portably (g_task_return_int is a gssize). */
static inline void
_es_task_return_int64 (GTask  *task,
                       gint64  value)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, G_TYPE_INT64);
  g_value_set_int64 (&v, value);
  g_task_return_value (task, &v);
}

static inline gboolean
_es_task_propagate_int64 (GTask   *task,
                          gint64  *out_value,
                          GError **error)
{
  GValue v = G_VALUE_INIT;

  if (!g_task_propagate_value (task, &v, error))
    return FALSE;
  if (out_value != NULL)
    *out_value = g_value_get_int64 (&v);
  g_value_unset (&v);
  return TRUE;
}

/* An append that fails with ES_ERROR_WRONG_EXPECTED_VERSION reports the
 * stream's version it found (see es_storage_handle_append()); an
 * asynchronous one carries it on its task, since a GTask returns either
 * an error or a value. Returns @error on @task with @found_version (-1:
 * not known) attached. */
ES_PRIVATE_API
void            _es_append_task_return_error (GTask   *task,
                                              GError  *error,
                                              gint64   found_version);
/* Propagates what _es_append_task_return_error() or _es_task_return_int64()
 * returned: on WRONG_EXPECTED_VERSION, *@out_version (optional) is the
 * version found, or -1. */
ES_PRIVATE_API
gboolean        _es_append_task_propagate    (GTask   *task,
                                              gint64  *out_version,
                                              GError **error);

/* Validation shared by the stream layer and the factories. Each returns
 * FALSE with %ES_ERROR_INVALID_ARGUMENT naming the bad value. */
gboolean        _es_validate_stream_id     (const char        *stream_id,
                                            gboolean           allow_all,
                                            GError           **error);
/* A subscription name: non-empty UTF-8 of at most
 * ES_SUBSCRIPTION_NAME_MAX_BYTES bytes. */
gboolean        _es_validate_subscription_name (const char    *name,
                                                GError       **error);
gboolean        _es_validate_candidate     (EsCandidateEvent  *event,
                                            guint              index,
                                            GError           **error);

/* Builds a stored event without copying: takes ownership of every pointer
 * given. @stream_id is a GRefString (g_ref_string_new()), so a page of
 * events of one stream shares one string. @timestamp_usec is microseconds
 * since the Unix epoch, UTC. */
EsStoredEvent  *_es_stored_event_new_take  (char              *stream_id,
                                            gint64             sequence_id,
                                            gint64             version,
                                            gint64             timestamp_usec,
                                            char              *event_type,
                                            GBytes            *data,
                                            char              *idempotency_key,
                                            char              *metadata);

/* The hot path of SQLite reads: one allocation holds the row's data,
 * event type, key and metadata (see es-stored-event.c). Takes @stream_id
 * (a GRefString); copies the rest; lengths exclude the NUL. */
ES_PRIVATE_API
EsStoredEvent  *_es_stored_event_new_packed (char       *stream_id,
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
                                             gsize       metadata_len);

/* Marks an event a backend just built (erased, tombstone marker). */
ES_PRIVATE_API
void            _es_stored_event_set_flags  (EsStoredEvent      *self,
                                             EsStoredEventFlags  flags);

ES_PRIVATE_API
EsSnapshot     *_es_snapshot_new_usec      (const char        *stream_id,
                                            const char        *projection_name,
                                            gint64             version,
                                            GBytes            *state,
                                            gint64             timestamp_usec);

/* EsRowPage (declared in es-storage-handle.h): the rows of one page of a
 * read in flat memory, for EsEventCursor. Every string and the data of
 * every row live in one arena, which becomes a GBytes once the page is
 * complete (so a row's data is a slice of it, no copy); the numbers are
 * columns (arrays of gint64) so that a window of rows is a plain C array;
 * the rest of each row is an EsRowRef of offsets into the arena. A stream
 * id repeated by consecutive rows is stored once.
 *
 * A backend's read_rows only calls _es_row_page_add() on the (empty) page
 * it is given; _es_storage_handle_read_rows() resets it first, and
 * completes it on success or resets it on error. */
#define ES_ROW_NONE G_MAXSIZE

typedef struct
{
  gsize  stream_id;    /* offset of a NUL-terminated string */
  gsize  event_type;
  gsize  key;          /* ES_ROW_NONE: no key */
  gsize  metadata;     /* ES_ROW_NONE: no metadata */
  gsize  data;
  gsize  data_len;
  guint  flags;        /* EsStoredEventFlags */
} EsRowRef;

struct _EsRowPage
{
  /* The arena: strings and data, while the page is filled. */
  guint8     *arena;         /* (owned) (nullable) */
  gsize       arena_len;
  gsize       arena_size;
  GBytes     *block;         /* (owned) (nullable): the arena, once complete */
  const char *base;          /* the block's bytes */
  /* The columns, n_rows long (room for capacity). */
  gint64     *sequence_ids;  /* (owned) */
  gint64     *versions;      /* (owned) */
  gint64     *timestamps;    /* (owned) microseconds, UTC */
  EsRowRef   *rows;          /* (owned) */
  guint       n_rows;
  guint       capacity;
  gsize       last_stream_id;   /* offset of the last stream id, ES_ROW_NONE */
  gsize       last_stream_len;
};

EsRowPage      *_es_row_page_new           (void);
void            _es_row_page_free          (EsRowPage         *page);
/* Empties the page: its block is released (slices given out live on). */
void            _es_row_page_reset         (EsRowPage         *page);
/* Appends a row; strings are copied (lengths exclude the NUL), @key and
 * @metadata may be NULL, @data may be NULL when @data_len is 0. */
ES_PRIVATE_API
void            _es_row_page_add           (EsRowPage         *page,
                                            gint64             sequence_id,
                                            gint64             version,
                                            gint64             timestamp_usec,
                                            EsStoredEventFlags flags,
                                            const char        *stream_id,
                                            gsize              stream_id_len,
                                            const char        *event_type,
                                            gsize              event_type_len,
                                            const char        *idempotency_key,
                                            gsize              idempotency_key_len,
                                            const char        *metadata,
                                            gsize              metadata_len,
                                            const void        *data,
                                            gsize              data_len);
void            _es_row_page_add_event     (EsRowPage         *page,
                                            EsStoredEvent     *event);
/* Turns the arena into the page's block: the strings become readable. */
void            _es_row_page_complete      (EsRowPage         *page);

static inline guint
_es_row_page_get_n_rows (const EsRowPage *page)
{
  return page->n_rows;
}

static inline const EsRowRef *
_es_row_page_get_row (const EsRowPage *page,
                      guint            index)
{
  return &page->rows[index];
}

static inline const char *
_es_row_page_get_string (const EsRowPage *page,
                         gsize            offset)
{
  return offset == ES_ROW_NONE ? NULL : page->base + offset;
}

/* One page of a read into @page, through the backend's read_rows or
 * read_page_full (then copied). @filter is validated by the caller. */
gboolean        _es_storage_handle_read_rows (EsStorageHandle *self,
                                              const char      *stream_id,
                                              gint64           position,
                                              EsReadFlags      flags,
                                              EsEventFilter   *filter,
                                              guint            limit,
                                              EsRowPage       *page,
                                              GCancellable    *cancellable,
                                              GError         **error);

/* A cursor over a backend (es-stream-impl.c), or over an enumerator (the
 * default of EsStreamInterface.read_cursor); both take their arguments
 * as _es_event_enumerator_new_full() does. */
EsEventCursor  *_es_event_cursor_new        (EsStorageHandle   *storage,
                                             const char        *stream_id,
                                             gint64             position,
                                             EsEventFilter     *filter);
EsEventCursor  *_es_event_cursor_new_for_enumerator (EsEventEnumerator *enumerator);
/* Reads the first page, so that a read reports errors when it starts. */
gboolean        _es_event_cursor_fill       (EsEventCursor     *self,
                                             GCancellable      *cancellable,
                                             GError           **error);

EsEventEnumerator *_es_event_enumerator_new (EsStorageHandle   *storage,
                                             const char        *stream_id,
                                             gint64             after,
                                             EsEventFilter     *filter);
EsEventEnumerator *_es_event_enumerator_new_full (EsStorageHandle   *storage,
                                                  const char        *stream_id,
                                                  gint64             position,
                                                  EsReadFlags        flags,
                                                  EsEventFilter     *filter);
gboolean        _es_event_enumerator_fill  (EsEventEnumerator *self,
                                            GCancellable      *cancellable,
                                            GError           **error);

EsStreamInfoEnumerator *_es_stream_info_enumerator_new  (EsStorageHandle        *storage,
                                                          const char             *prefix,
                                                          EsListStreamsFlags      flags);
gboolean        _es_stream_info_enumerator_fill (EsStreamInfoEnumerator *self,
                                                 GCancellable           *cancellable,
                                                 GError                **error);

EsStream       *_es_stream_impl_new        (EsStreamFactory   *factory,
                                            const char        *stream_id,
                                            gint64             version);

EsWatch        *_es_watch_new              (EsStreamFactory   *factory,
                                            const char        *stream_id,
                                            gint64             after_version);
/* Events the watch holds in memory, waiting for its main context. */
guint           _es_watch_get_n_pending    (EsWatch           *self);
/* The position of the last event the watch holds in memory, 0 for none:
 * how far the notifier has seen. */
gint64          _es_watch_get_pending_last (EsWatch           *self);
/* Most events a watch holds before it drops them and catches up from
 * the storage instead. */
#define ES_WATCH_MAX_PENDING 1024

/* The subscribers of a notifier, with the cursor their deliveries have
 * reached (es-notifier.c). @lock guards everything; it is recursive, and
 * a notifier holds it while it delivers, so that unsubscribing waits for a
 * delivery in progress and no call to a subscriber follows it. */
typedef struct
{
  GRecMutex   lock;
  GHashTable *table;    /* (owned) guint id → subscriber */
  guint       next_id;
  gint64      cursor;   /* the last sequence id delivered */
  gboolean    closed;   /* the notifier gave up: new subscriptions end at once */
} EsSubscribers;

ES_PRIVATE_API
void            _es_subscribers_init       (EsSubscribers     *self);
ES_PRIVATE_API
void            _es_subscribers_clear      (EsSubscribers     *self);
ES_PRIVATE_API
guint           _es_subscribers_add        (EsSubscribers     *self,
                                            EsNotifierFunc     func,
                                            gpointer           user_data,
                                            GDestroyNotify     destroy);
ES_PRIVATE_API
void            _es_subscribers_remove     (EsSubscribers     *self,
                                            guint              id);
/* Ends every subscription (stop()), calling each destroy notify. */
ES_PRIVATE_API
void            _es_subscribers_remove_all (EsSubscribers     *self);
/* Ends every subscription and every later one (the notifier gave up). */
ES_PRIVATE_API
void            _es_subscribers_close      (EsSubscribers     *self);
ES_PRIVATE_API
gboolean        _es_subscribers_any        (EsSubscribers     *self);
ES_PRIVATE_API
gint64          _es_subscribers_get_cursor (EsSubscribers     *self);
ES_PRIVATE_API
void            _es_subscribers_set_cursor (EsSubscribers     *self,
                                            gint64             cursor);
/* Hands @events to every subscriber, under the lock. */
ES_PRIVATE_API
void            _es_subscribers_emit       (EsSubscribers     *self,
                                            GPtrArray         *events);

/* Quits @loop, which runs @thread with @context, and waits for the thread
 * to end; takes @thread. For notifiers running on a thread of their own. */
ES_PRIVATE_API
void            _es_notifier_thread_stop   (GThread           *thread,
                                            GMainContext      *context,
                                            GMainLoop         *loop);

/* A subclass's default give-up-timeout, from its instance init. */
ES_PRIVATE_API
void            _es_storage_notifier_set_default_give_up_timeout (EsStorageNotifier *self,
                                                                  guint              timeout);
/* Reads the notifier made (read_page and its get_last_committed), tests. */
ES_PRIVATE_API
guint           _es_storage_notifier_get_n_reads (EsStorageNotifier *self);

void            _es_stream_factory_add_watch   (EsStreamFactory *self,
                                                EsWatch         *watch);
void            _es_stream_factory_remove_watch (EsStreamFactory *self,
                                                 EsWatch         *watch);
gboolean        _es_stream_factory_check_open  (EsStreamFactory *self,
                                                GError         **error);
/* Tests: background sweeps completed, and whether the sweeper runs. */
guint           _es_stream_factory_get_n_sweeps (EsStreamFactory *self,
                                                 gboolean        *out_armed);
/* Subscriptions of the factory, stopped (and flushed) by its close(). */
void            _es_stream_factory_add_subscription    (EsStreamFactory *self,
                                                        EsSubscription  *subscription);
void            _es_stream_factory_remove_subscription (EsStreamFactory *self,
                                                        EsSubscription  *subscription);
/* Stops as es_subscription_stop() does, ignoring a failed flush. */
void            _es_subscription_close          (EsSubscription  *self);
/* Tests: checkpoints stored, and whether the checkpoint-delay timer exists. */
guint           _es_subscription_get_n_saves    (EsSubscription  *self);
gboolean        _es_subscription_has_timer      (EsSubscription  *self);
/* The watch's stream was hard-deleted: it fails with STREAM_DELETED. */
void            _es_watch_stream_tombstoned     (EsWatch         *self);

/* Changes made through a factory, for its event list models
 * (es-event-list-model.c): called in any thread once the change took
 * effect. */
typedef enum
{
  ES_FACTORY_CHANGE_DELETED,
  ES_FACTORY_CHANGE_TRUNCATED,   /* number: the truncation's before_version */
  ES_FACTORY_CHANGE_ERASED,      /* number: the version erased */
  ES_FACTORY_CHANGE_RETENTION,
  ES_FACTORY_CHANGE_SWEPT,       /* stream_id NULL: any stream */
  ES_FACTORY_CHANGE_CLOSED,
} EsFactoryChangeKind;

void            _es_stream_factory_changed      (EsStreamFactory     *factory,
                                                 EsFactoryChangeKind  kind,
                                                 const char          *stream_id,
                                                 gint64               number);
/* Tests: small pages, and how many are cached. */
ES_PRIVATE_API
void            _es_event_list_model_set_page_size (EsEventListModel *self,
                                                    guint             page_size,
                                                    guint             max_pages);
ES_PRIVATE_API
guint           _es_event_list_model_get_n_cached_pages (EsEventListModel *self);

G_END_DECLS
