/* es-event-cursor.c: steps through the rows of a read without an object
 * per event.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-private.h"

/**
 * EsEventCursor:
 *
 * Steps through the events of a read ([method@Es.Stream.read_cursor])
 * row by row, without creating an object per event: the fields of the
 * current row are read with getters, in the manner of a database cursor.
 * It is the fastest way to read many events, for projections, exports
 * and bindings; [class@Es.EventEnumerator] returns the same events as
 * [class@Es.StoredEvent] objects.
 *
 * ```c
 * g_autoptr(EsEventCursor) cursor = es_stream_read_cursor (stream, 0, NULL, NULL, &error);
 *
 * while (es_event_cursor_next (cursor, NULL, &error))
 *   {
 *     gsize length;
 *     const guint8 *data = es_event_cursor_get_data (cursor, &length);
 *
 *     apply (state, es_event_cursor_get_event_type (cursor), data, length);
 *   }
 * if (error != NULL)
 *   ...
 * ```
 *
 * The cursor reads the database a page at a time (keyset paging, as the
 * enumerator does), into one block of memory per page, so memory stays
 * flat however long the read is. It returns the events, in the order, that
 * [method@Es.Stream.read] returns; each page is read as the database is
 * when it is fetched (see [class@Es.EventEnumerator]).
 *
 * ## Borrowed values
 *
 * The strings and the data pointer the getters return are borrowed from
 * the cursor's page: they stay valid until the next call to
 * [method@Es.EventCursor.next], [method@Es.EventCursor.next_async],
 * [method@Es.EventCursor.next_rows] or [method@Es.EventCursor.close], or
 * until the cursor is finalized, whichever comes first. Copy what you
 * keep. [method@Es.EventCursor.dup_data] and
 * [method@Es.EventCursor.get_event] return values that live on their own
 * (the bytes share the page's memory without copying it, and keep it
 * alive). Getters of the current row may only be called after
 * [method@Es.EventCursor.next] returned %TRUE (or
 * [method@Es.EventCursor.next_rows] a window of rows).
 *
 * ## Windows of rows
 *
 * [method@Es.EventCursor.next_rows] moves to a window of several rows at
 * once, and the column getters ([method@Es.EventCursor.get_versions],
 * [method@Es.EventCursor.dup_event_types],
 * [method@Es.EventCursor.dup_data_list]...) return the window's values as
 * arrays: from Python or JavaScript, a few calls per thousand events
 * instead of several per event. After it, the getters of the current row
 * refer to the window's last row.
 *
 * A cursor is used from one thread at a time; while a
 * [method@Es.EventCursor.next_async] is pending, other calls fail with
 * %G_IO_ERROR_PENDING. Once its factory is closed, reading the next page
 * fails with %ES_ERROR_CLOSED; after [method@Es.EventCursor.close],
 * moving fails with %G_IO_ERROR_CLOSED.
 *
 * Since: 0.2
 */

/* The most rows a page holds when next_rows() asks for large windows. */
#define ES_CURSOR_MAX_PAGE_SIZE (16 * ES_READ_PAGE_SIZE)

struct _EsEventCursor
{
  GObject            parent_instance;

  /* Where the rows come from: a backend, or an enumerator (a stream
   * implementation outside the library). */
  EsStorageHandle   *storage;     /* (owned) (nullable) */
  char              *stream_id;   /* (owned) (nullable): NULL reads every stream */
  EsEventFilter     *filter;      /* (owned) (nullable) */
  gint64             after;       /* version (sequence id) of the last row fetched */
  EsEventEnumerator *enumerator;  /* (owned) (nullable) */

  EsRowPage         *page;        /* (owned) the current page, complete */
  guint              start;       /* the window: rows [start, start + len) of page */
  guint              len;         /* 0: no current row */
  char              *stream_ref;  /* (owned) (nullable) GRefString of the last get_event() */

  gboolean           at_end;      /* no page to fetch after this one */
  gboolean           closed;
  gint               pending;     /* (atomic) a next_async is running */
};

G_DEFINE_FINAL_TYPE (EsEventCursor, es_event_cursor, G_TYPE_OBJECT)

static void
es_event_cursor_finalize (GObject *object)
{
  EsEventCursor *self = ES_EVENT_CURSOR (object);

  _es_row_page_free (self->page);
  g_clear_pointer (&self->stream_ref, g_ref_string_release);
  g_clear_object (&self->enumerator);
  g_clear_object (&self->storage);
  g_clear_object (&self->filter);
  g_free (self->stream_id);

  G_OBJECT_CLASS (es_event_cursor_parent_class)->finalize (object);
}

static void
es_event_cursor_class_init (EsEventCursorClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = es_event_cursor_finalize;

  _es_i18n_init ();
}

static void
es_event_cursor_init (EsEventCursor *self)
{
  self->page = _es_row_page_new ();
  _es_row_page_complete (self->page);
}

/*
 * _es_event_cursor_new:
 * @storage: the backend to read from
 * @stream_id: (nullable): the stream, or %NULL for every stream
 * @position: start after this version (sequence id when @stream_id is %NULL)
 * @filter: (nullable): a validated filter, taken by reference (the caller
 *   must not add clauses afterwards)
 */
EsEventCursor *
_es_event_cursor_new (EsStorageHandle *storage,
                      const char      *stream_id,
                      gint64           position,
                      EsEventFilter   *filter)
{
  EsEventCursor *self = g_object_new (ES_TYPE_EVENT_CURSOR, NULL);

  self->storage = g_object_ref (storage);
  self->stream_id = g_strdup (stream_id);
  self->after = position;
  self->filter = filter != NULL ? g_object_ref (filter) : NULL;
  return self;
}

/*
 * _es_event_cursor_new_for_enumerator:
 * @enumerator: (transfer none): what the cursor steps through
 *
 * The default of EsStreamInterface.read_cursor: correct, but it builds an
 * object per event and copies it into the page.
 */
EsEventCursor *
_es_event_cursor_new_for_enumerator (EsEventEnumerator *enumerator)
{
  EsEventCursor *self = g_object_new (ES_TYPE_EVENT_CURSOR, NULL);

  self->enumerator = g_object_ref (enumerator);
  return self;
}

/* Reads the next page into self->page, replacing the current one (whose
 * borrowed values die with it). Runs in the caller's thread or, for
 * next_async, in a worker while the cursor is pending. */
static gboolean
fetch_page (EsEventCursor  *self,
            guint           page_size,
            GCancellable   *cancellable,
            GError        **error)
{
  EsRowPage *page = self->page;
  guint n;

  self->start = 0;
  self->len = 0;
  _es_row_page_reset (page);

  if (self->at_end)
    {
      _es_row_page_complete (page);
      return TRUE;
    }

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    {
      _es_row_page_complete (page);
      return FALSE;
    }

  if (self->enumerator != NULL)
    {
      g_autoptr(GPtrArray) events =
        es_event_enumerator_next_batch (self->enumerator, page_size, cancellable, error);

      if (events == NULL)
        {
          _es_row_page_complete (page);
          return FALSE;
        }
      for (guint i = 0; i < events->len; i++)
        _es_row_page_add_event (page, g_ptr_array_index (events, i));
      _es_row_page_complete (page);
      /* A short batch comes before an error the next one reports. */
      self->at_end = events->len == 0;
      return TRUE;
    }

  if (!_es_storage_handle_read_rows (self->storage, self->stream_id, self->after,
                                     ES_READ_FLAGS_NONE, self->filter, page_size, page,
                                     cancellable, error))
    {
      _es_row_page_complete (page);
      return FALSE;
    }

  n = _es_row_page_get_n_rows (page);
  /* A short page is the end of what is stored now: don't ask again. */
  self->at_end = n < page_size;
  if (n > 0)
    self->after = (self->stream_id != NULL ? page->versions : page->sequence_ids)[n - 1];
  return TRUE;
}

static guint
page_size_for (guint max_rows)
{
  return CLAMP (max_rows, ES_READ_PAGE_SIZE, ES_CURSOR_MAX_PAGE_SIZE);
}

/*
 * _es_event_cursor_fill:
 *
 * Reads the first page, so that a read reports errors (bad filter, closed
 * factory, storage) when it starts.
 */
gboolean
_es_event_cursor_fill (EsEventCursor  *self,
                       GCancellable   *cancellable,
                       GError        **error)
{
  return fetch_page (self, ES_READ_PAGE_SIZE, cancellable, error);
}

static gboolean
check_usable (EsEventCursor  *self,
              GError        **error)
{
  if (g_atomic_int_get (&self->pending))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           _("The event cursor has an outstanding operation"));
      return FALSE;
    }
  if (self->closed)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                           _("The event cursor is closed"));
      return FALSE;
    }
  return TRUE;
}

/* Rows of the page after the window. */
static inline guint
rows_left (EsEventCursor *self)
{
  return _es_row_page_get_n_rows (self->page) - (self->start + self->len);
}

/* Moves the window to the next @max_rows rows at most, reading the next
 * page when this one is used up. Returns the window's length: 0 at the
 * end or on error. */
static guint
move (EsEventCursor  *self,
      guint           max_rows,
      GCancellable   *cancellable,
      GError        **error)
{
  if (rows_left (self) == 0 &&
      !fetch_page (self, page_size_for (max_rows), cancellable, error))
    return 0;

  self->start += self->len;
  self->len = MIN (max_rows, _es_row_page_get_n_rows (self->page) - self->start);
  return self->len;
}

/**
 * es_event_cursor_next:
 * @self: an [class@Es.EventCursor]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Moves to the next row, reading the next page from the database when the
 * current one is used up. Values borrowed from the previous row are no
 * longer valid.
 *
 * Returns: %TRUE when a row is current; %FALSE at the end (without an
 *   error) or on error
 *
 * Since: 0.2
 */
gboolean
es_event_cursor_next (EsEventCursor  *self,
                      GCancellable   *cancellable,
                      GError        **error)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_usable (self, error))
    return FALSE;

  /* The common case first: the next row is in the page. */
  if (rows_left (self) > 0)
    {
      self->start += self->len;
      self->len = 1;
      return TRUE;
    }
  return move (self, 1, cancellable, error) > 0;
}

/**
 * es_event_cursor_next_rows:
 * @self: an [class@Es.EventCursor]
 * @max_rows: the most rows to move to, at least 1
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Moves to a window of up to @max_rows next rows, reading the next page
 * from the database when the current one is used up; a window does not
 * span pages, so it may be shorter than @max_rows before the end. Asking
 * for large windows reads larger pages (up to 16384 rows).
 *
 * Afterwards the column getters ([method@Es.EventCursor.get_versions],
 * [method@Es.EventCursor.dup_event_types]...) return the window's values,
 * and the getters of the current row refer to its last row. Values
 * borrowed before are no longer valid.
 *
 * Returns: the number of rows in the window: 0 at the end (without an
 *   error) or on error
 *
 * Since: 0.2
 */
guint
es_event_cursor_next_rows (EsEventCursor  *self,
                           guint           max_rows,
                           GCancellable   *cancellable,
                           GError        **error)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), 0);
  g_return_val_if_fail (max_rows > 0, 0);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  if (!check_usable (self, error))
    return 0;
  return move (self, max_rows, cancellable, error);
}

static void
next_in_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  EsEventCursor *self = source_object;
  GError *error = NULL;
  guint n;

  /* Nothing else touches the cursor while it is pending. */
  n = move (self, 1, cancellable, &error);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, n > 0);
}

/* Back in the caller's context: the cursor stops being pending just
 * before the caller learns the result, so that a call made meanwhile
 * fails with G_IO_ERROR_PENDING whatever the worker's progress. */
static void
next_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  EsEventCursor *self = ES_EVENT_CURSOR (source);
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  gboolean moved;

  g_atomic_int_set (&self->pending, FALSE);
  moved = g_task_propagate_boolean (G_TASK (result), &error);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, moved);
}

/**
 * es_event_cursor_next_async:
 * @self: an [class@Es.EventCursor]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @callback: (scope async) (closure user_data): called when the cursor has moved
 * @user_data: data for @callback
 *
 * Starts [method@Es.EventCursor.next] without blocking. When the current
 * page has more rows, the cursor moves at once and @callback runs from an
 * idle in the caller's thread-default main context; otherwise the next
 * page is read in a worker thread. Values borrowed from the previous row
 * are no longer valid once this is called.
 *
 * Since: 0.2
 */
void
es_event_cursor_next_async (EsEventCursor       *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (ES_IS_EVENT_CURSOR (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_event_cursor_next_async);
  /* A cursor that moved reports it even if the cancellable fired
   * meanwhile: the row would be skipped otherwise. */
  g_task_set_check_cancellable (task, FALSE);

  if (!check_usable (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  if (rows_left (self) > 0)
    {
      self->start += self->len;
      self->len = 1;
      /* Called in the iteration that created the task, GTask completes
       * from an idle. */
      g_task_return_boolean (task, TRUE);
      return;
    }

  if (self->at_end && self->enumerator == NULL)
    {
      self->start = self->len = 0;
      _es_row_page_reset (self->page);
      _es_row_page_complete (self->page);
      g_task_return_boolean (task, FALSE);
      return;
    }

  {
    g_autoptr(GTask) worker = g_task_new (self, cancellable, next_done_cb,
                                          g_steal_pointer (&task));

    g_task_set_source_tag (worker, next_in_thread);
    g_task_set_check_cancellable (worker, FALSE);
    g_atomic_int_set (&self->pending, TRUE);
    g_task_run_in_thread (worker, next_in_thread);
  }
}

/**
 * es_event_cursor_next_finish:
 * @self: an [class@Es.EventCursor]
 * @result: the [iface@Gio.AsyncResult] given to the callback
 * @error: return location for a [struct@GLib.Error]
 *
 * Finishes [method@Es.EventCursor.next_async].
 *
 * Returns: %TRUE when a row is current; %FALSE at the end (without an
 *   error) or on error
 *
 * Since: 0.2
 */
gboolean
es_event_cursor_next_finish (EsEventCursor  *self,
                             GAsyncResult   *result,
                             GError        **error)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, es_event_cursor_next_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * es_event_cursor_close:
 * @self: an [class@Es.EventCursor]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Releases the buffered page; borrowed values are no longer valid. Later
 * moves fail with %G_IO_ERROR_CLOSED. Closing twice is harmless; dropping
 * the last reference closes too.
 *
 * Returns: %TRUE on success; %FALSE with %G_IO_ERROR_PENDING while a
 *   [method@Es.EventCursor.next_async] is running
 *
 * Since: 0.2
 */
gboolean
es_event_cursor_close (EsEventCursor  *self,
                       GCancellable   *cancellable,
                       GError        **error)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (g_atomic_int_get (&self->pending))
    return check_usable (self, error);
  if (self->closed)
    return TRUE;

  self->closed = TRUE;
  self->start = self->len = 0;
  _es_row_page_reset (self->page);
  _es_row_page_complete (self->page);
  if (self->enumerator != NULL)
    es_event_enumerator_close (self->enumerator, NULL, NULL);
  g_clear_object (&self->enumerator);
  return TRUE;
}

/* The current row: the window's last. */
#define CURRENT_ROW(self) ((self)->start + (self)->len - 1)

#define CHECK_ROW(self, val) \
  G_STMT_START { \
    g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), (val)); \
    g_return_val_if_fail ((self)->len > 0 && !g_atomic_int_get (&(self)->pending), (val)); \
  } G_STMT_END

static inline const EsRowRef *
current_ref (EsEventCursor *self)
{
  return _es_row_page_get_row (self->page, CURRENT_ROW (self));
}

/**
 * es_event_cursor_get_sequence_id:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's position among every event of the database (see
 * [method@Es.StoredEvent.get_sequence_id]).
 *
 * Returns: the sequence id
 *
 * Since: 0.2
 */
gint64
es_event_cursor_get_sequence_id (EsEventCursor *self)
{
  CHECK_ROW (self, 0);
  return self->page->sequence_ids[CURRENT_ROW (self)];
}

/**
 * es_event_cursor_get_version:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's 1-based version in its stream.
 *
 * Returns: the version
 *
 * Since: 0.2
 */
gint64
es_event_cursor_get_version (EsEventCursor *self)
{
  CHECK_ROW (self, 0);
  return self->page->versions[CURRENT_ROW (self)];
}

/**
 * es_event_cursor_get_timestamp_usec:
 * @self: an [class@Es.EventCursor] on a row
 *
 * When the current row was written.
 *
 * Returns: microseconds since the Unix epoch, UTC
 *
 * Since: 0.2
 */
gint64
es_event_cursor_get_timestamp_usec (EsEventCursor *self)
{
  CHECK_ROW (self, 0);
  return self->page->timestamps[CURRENT_ROW (self)];
}

/**
 * es_event_cursor_get_stream_id:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's stream (the row's own stream when reading
 * <code>@<!-- -->all</code>).
 *
 * Returns: (transfer none): the stream id, borrowed until the cursor moves
 *
 * Since: 0.2
 */
const char *
es_event_cursor_get_stream_id (EsEventCursor *self)
{
  CHECK_ROW (self, NULL);
  return _es_row_page_get_string (self->page, current_ref (self)->stream_id);
}

/**
 * es_event_cursor_get_event_type:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's event type.
 *
 * Returns: (transfer none): the event type, borrowed until the cursor moves
 *
 * Since: 0.2
 */
const char *
es_event_cursor_get_event_type (EsEventCursor *self)
{
  CHECK_ROW (self, NULL);
  return _es_row_page_get_string (self->page, current_ref (self)->event_type);
}

/**
 * es_event_cursor_get_idempotency_key:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's idempotency key.
 *
 * Returns: (transfer none) (nullable): the key, borrowed until the cursor
 *   moves, or %NULL if the event was written without one
 *
 * Since: 0.2
 */
const char *
es_event_cursor_get_idempotency_key (EsEventCursor *self)
{
  CHECK_ROW (self, NULL);
  return _es_row_page_get_string (self->page, current_ref (self)->key);
}

/**
 * es_event_cursor_get_metadata:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's metadata, a JSON object as written.
 *
 * Returns: (transfer none) (nullable): the metadata, borrowed until the
 *   cursor moves, or %NULL
 *
 * Since: 0.2
 */
const char *
es_event_cursor_get_metadata (EsEventCursor *self)
{
  CHECK_ROW (self, NULL);
  return _es_row_page_get_string (self->page, current_ref (self)->metadata);
}

/**
 * es_event_cursor_get_data:
 * @self: an [class@Es.EventCursor] on a row
 * @length: (out): the length of the data in bytes
 *
 * The current row's payload, without a copy. An erased event's data is
 * empty.
 *
 * Returns: (transfer none) (array length=length): the data, borrowed until
 *   the cursor moves
 *
 * Since: 0.2
 */
const guint8 *
es_event_cursor_get_data (EsEventCursor *self,
                          gsize         *length)
{
  const EsRowRef *row;

  if (length != NULL)
    *length = 0;
  CHECK_ROW (self, NULL);
  g_return_val_if_fail (length != NULL, NULL);

  row = current_ref (self);
  *length = row->data_len;
  return (const guint8 *) self->page->base + row->data;
}

/**
 * es_event_cursor_dup_data:
 * @self: an [class@Es.EventCursor] on a row
 *
 * The current row's payload as bytes that live on after the cursor moves:
 * they share the page's memory (no copy) and keep it alive.
 *
 * Returns: (transfer full): the data
 *
 * Since: 0.2
 */
GBytes *
es_event_cursor_dup_data (EsEventCursor *self)
{
  const EsRowRef *row;

  CHECK_ROW (self, NULL);
  row = current_ref (self);
  return g_bytes_new_from_bytes (self->page->block, row->data, row->data_len);
}

/**
 * es_event_cursor_get_flags:
 * @self: an [class@Es.EventCursor] on a row
 *
 * What the current row is: %ES_STORED_EVENT_FLAGS_ERASED for an event
 * whose data and metadata were erased.
 *
 * Returns: the flags
 *
 * Since: 0.2
 */
EsStoredEventFlags
es_event_cursor_get_flags (EsEventCursor *self)
{
  CHECK_ROW (self, ES_STORED_EVENT_FLAGS_NONE);
  return current_ref (self)->flags;
}

/**
 * es_event_cursor_get_event:
 * @self: an [class@Es.EventCursor] on a row
 *
 * Builds an event object of the current row, equal to what
 * [class@Es.EventEnumerator] returns for it.
 *
 * Returns: (transfer full): a new event
 *
 * Since: 0.2
 */
EsStoredEvent *
es_event_cursor_get_event (EsEventCursor *self)
{
  const EsRowRef *row;
  const EsRowPage *page;
  const char *stream_id, *type, *key, *metadata;
  EsStoredEvent *event;
  guint i;

  CHECK_ROW (self, NULL);
  page = self->page;
  i = CURRENT_ROW (self);
  row = current_ref (self);
  stream_id = _es_row_page_get_string (page, row->stream_id);
  type = _es_row_page_get_string (page, row->event_type);
  key = _es_row_page_get_string (page, row->key);
  metadata = _es_row_page_get_string (page, row->metadata);

  if (self->stream_ref == NULL || strcmp (self->stream_ref, stream_id) != 0)
    {
      g_clear_pointer (&self->stream_ref, g_ref_string_release);
      self->stream_ref = g_ref_string_new (stream_id);
    }

  event = _es_stored_event_new_packed (g_ref_string_acquire (self->stream_ref),
                                       page->sequence_ids[i],
                                       page->versions[i],
                                       page->timestamps[i],
                                       type, strlen (type),
                                       page->base + row->data, row->data_len,
                                       key, key != NULL ? strlen (key) : 0,
                                       metadata, metadata != NULL ? strlen (metadata) : 0);
  if (row->flags != 0)
    _es_stored_event_set_flags (event, row->flags);
  return event;
}

/* The window's part of a column, or NULL (and 0) without a window. */
static const gint64 *
window_column (EsEventCursor *self,
               const gint64  *column,
               guint         *n_rows)
{
  *n_rows = self->len;
  return self->len > 0 ? column + self->start : NULL;
}

/**
 * es_event_cursor_get_versions:
 * @self: an [class@Es.EventCursor]
 * @n_rows: (out): the number of rows in the window
 *
 * The versions of the rows of the window (see
 * [method@Es.EventCursor.next_rows]; after [method@Es.EventCursor.next],
 * the window is the current row).
 *
 * Returns: (transfer none) (array length=n_rows) (nullable): the versions,
 *   borrowed until the cursor moves; %NULL without a window
 *
 * Since: 0.2
 */
const gint64 *
es_event_cursor_get_versions (EsEventCursor *self,
                              guint         *n_rows)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);
  g_return_val_if_fail (n_rows != NULL, NULL);

  return window_column (self, self->page->versions, n_rows);
}

/**
 * es_event_cursor_get_sequence_ids:
 * @self: an [class@Es.EventCursor]
 * @n_rows: (out): the number of rows in the window
 *
 * The sequence ids of the rows of the window.
 *
 * Returns: (transfer none) (array length=n_rows) (nullable): the sequence
 *   ids, borrowed until the cursor moves; %NULL without a window
 *
 * Since: 0.2
 */
const gint64 *
es_event_cursor_get_sequence_ids (EsEventCursor *self,
                                  guint         *n_rows)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);
  g_return_val_if_fail (n_rows != NULL, NULL);

  return window_column (self, self->page->sequence_ids, n_rows);
}

/**
 * es_event_cursor_get_timestamps_usec:
 * @self: an [class@Es.EventCursor]
 * @n_rows: (out): the number of rows in the window
 *
 * The timestamps of the rows of the window, in microseconds since the
 * Unix epoch, UTC.
 *
 * Returns: (transfer none) (array length=n_rows) (nullable): the
 *   timestamps, borrowed until the cursor moves; %NULL without a window
 *
 * Since: 0.2
 */
const gint64 *
es_event_cursor_get_timestamps_usec (EsEventCursor *self,
                                     guint         *n_rows)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);
  g_return_val_if_fail (n_rows != NULL, NULL);

  return window_column (self, self->page->timestamps, n_rows);
}

static GStrv
dup_strings (EsEventCursor *self,
             gsize          field_offset)
{
  GStrv strv = g_new (char *, self->len + 1);

  for (guint i = 0; i < self->len; i++)
    {
      const EsRowRef *row = _es_row_page_get_row (self->page, self->start + i);

      strv[i] = g_strdup (self->page->base + G_STRUCT_MEMBER (gsize, row, field_offset));
    }
  strv[self->len] = NULL;
  return strv;
}

/**
 * es_event_cursor_dup_event_types:
 * @self: an [class@Es.EventCursor]
 *
 * The event types of the rows of the window.
 *
 * Returns: (transfer full): the event types, one per row; empty without a
 *   window
 *
 * Since: 0.2
 */
GStrv
es_event_cursor_dup_event_types (EsEventCursor *self)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);

  return dup_strings (self, G_STRUCT_OFFSET (EsRowRef, event_type));
}

/**
 * es_event_cursor_dup_stream_ids:
 * @self: an [class@Es.EventCursor]
 *
 * The stream ids of the rows of the window.
 *
 * Returns: (transfer full): the stream ids, one per row; empty without a
 *   window
 *
 * Since: 0.2
 */
GStrv
es_event_cursor_dup_stream_ids (EsEventCursor *self)
{
  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);

  return dup_strings (self, G_STRUCT_OFFSET (EsRowRef, stream_id));
}

/**
 * es_event_cursor_dup_data_list:
 * @self: an [class@Es.EventCursor]
 *
 * The payloads of the rows of the window, as bytes that share the page's
 * memory (no copy) and live on after the cursor moves.
 *
 * Returns: (transfer container) (element-type GBytes): the data, one per
 *   row, which the array owns (release it with g_ptr_array_unref());
 *   empty without a window
 *
 * Since: 0.2
 */
GPtrArray *
es_event_cursor_dup_data_list (EsEventCursor *self)
{
  GPtrArray *list;

  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);

  list = g_ptr_array_new_full (self->len, (GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < self->len; i++)
    {
      const EsRowRef *row = _es_row_page_get_row (self->page, self->start + i);

      g_ptr_array_add (list, g_bytes_new_from_bytes (self->page->block, row->data,
                                                     row->data_len));
    }
  return list;
}

/**
 * es_event_cursor_dup_data_joined:
 * @self: an [class@Es.EventCursor]
 * @lengths: (out) (array length=n_rows) (transfer full) (optional): return
 *   location for the length of each row's payload, in order
 * @n_rows: (out) (optional): return location for the number of rows of
 *   the window
 *
 * The payloads of the rows of the window one after the other in one block,
 * with the length of each: row i's data starts at the sum of the lengths
 * of the rows before it.
 *
 * This is the fastest way to get every payload of a window into a
 * language binding: one object instead of one per row. From Python,
 * `block, lengths = cursor.dup_data_joined()` and then slices of
 * `block.get_data()` (see "From Python" in the performance guide); from C,
 * [method@Es.EventCursor.get_data] on each row copies nothing.
 *
 * Returns: (transfer full): the payloads, joined (a copy: it lives on
 *   after the cursor moves); empty without a window
 *
 * Since: 0.2
 */
GBytes *
es_event_cursor_dup_data_joined (EsEventCursor  *self,
                                 gsize         **lengths,
                                 guint          *n_rows)
{
  gsize total = 0;
  guint8 *joined;
  gsize *row_lengths = NULL;
  gsize offset = 0;

  g_return_val_if_fail (ES_IS_EVENT_CURSOR (self), NULL);

  for (guint i = 0; i < self->len; i++)
    total += _es_row_page_get_row (self->page, self->start + i)->data_len;

  joined = g_malloc (total > 0 ? total : 1);
  if (lengths != NULL)
    row_lengths = g_new (gsize, self->len > 0 ? self->len : 1);
  for (guint i = 0; i < self->len; i++)
    {
      const EsRowRef *row = _es_row_page_get_row (self->page, self->start + i);

      memcpy (joined + offset, self->page->base + row->data, row->data_len);
      offset += row->data_len;
      if (row_lengths != NULL)
        row_lengths[i] = row->data_len;
    }

  if (lengths != NULL)
    *lengths = row_lengths;
  if (n_rows != NULL)
    *n_rows = self->len;
  return g_bytes_new_take (joined, total);
}
