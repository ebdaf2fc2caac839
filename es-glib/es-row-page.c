/* es-row-page.c: a page of a read as rows in flat memory (see EsRowPage in
 * es-private.h), what EsEventCursor steps through.
 *
 * Filling a page is the hot path of a cursor read: each row is one check
 * of the arena's room and of the columns' room, then plain copies; the
 * arena becomes the page's GBytes without a copy.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-private.h"

/* What a page's arena starts with; it doubles as rows come. */
#define ARENA_INITIAL_SIZE (64 * 1024)

EsRowPage *
_es_row_page_new (void)
{
  EsRowPage *page = g_new0 (EsRowPage, 1);

  page->last_stream_id = ES_ROW_NONE;
  return page;
}

void
_es_row_page_reset (EsRowPage *page)
{
  g_clear_pointer (&page->block, g_bytes_unref);
  page->base = NULL;
  /* An arena not completed (a failed read) is kept for the next page. */
  page->arena_len = 0;
  page->n_rows = 0;
  page->last_stream_id = ES_ROW_NONE;
  page->last_stream_len = 0;
}

void
_es_row_page_free (EsRowPage *page)
{
  if (page == NULL)
    return;
  g_clear_pointer (&page->block, g_bytes_unref);
  g_free (page->arena);
  g_free (page->sequence_ids);
  g_free (page->versions);
  g_free (page->timestamps);
  g_free (page->rows);
  g_free (page);
}

static void
grow_columns (EsRowPage *page)
{
  page->capacity = MAX (page->capacity * 2, ES_READ_PAGE_SIZE);
  page->sequence_ids = g_renew (gint64, page->sequence_ids, page->capacity);
  page->versions = g_renew (gint64, page->versions, page->capacity);
  page->timestamps = g_renew (gint64, page->timestamps, page->capacity);
  page->rows = g_renew (EsRowRef, page->rows, page->capacity);
}

static void
grow_arena (EsRowPage *page,
            gsize      needed)
{
  /* A new arena starts at the size the previous page's reached. */
  gsize size = MAX (page->arena_size, ARENA_INITIAL_SIZE);

  while (size - page->arena_len < needed)
    {
      if (size > G_MAXSIZE / 2)
        g_error ("%s: a page of %" G_GSIZE_FORMAT " bytes is too large", G_STRLOC,
                 page->arena_len + needed);
      size *= 2;
    }
  page->arena = g_realloc (page->arena, size);
  page->arena_size = size;
}

/* Copies @len bytes and a NUL into the arena, which has room. */
static inline gsize
put_string (EsRowPage  *page,
            const char *string,
            gsize       len)
{
  gsize offset = page->arena_len;

  if (len > 0)
    memcpy (page->arena + offset, string, len);
  page->arena[offset + len] = '\0';
  page->arena_len = offset + len + 1;
  return offset;
}

void
_es_row_page_add (EsRowPage          *page,
                  gint64              sequence_id,
                  gint64              version,
                  gint64              timestamp_usec,
                  EsStoredEventFlags  flags,
                  const char         *stream_id,
                  gsize               stream_id_len,
                  const char         *event_type,
                  gsize               event_type_len,
                  const char         *idempotency_key,
                  gsize               idempotency_key_len,
                  const char         *metadata,
                  gsize               metadata_len,
                  const void         *data,
                  gsize               data_len)
{
  gboolean same_stream;
  gsize needed;
  EsRowRef *row;
  guint i;

  g_assert (page->block == NULL);

  if (page->n_rows == page->capacity)
    grow_columns (page);

  /* Consecutive rows of one stream (every row of a stream's read) share
   * its id. */
  same_stream = page->last_stream_id != ES_ROW_NONE && page->last_stream_len == stream_id_len &&
                memcmp (page->arena + page->last_stream_id, stream_id, stream_id_len) == 0;
  needed = (same_stream ? 0 : stream_id_len + 1) + event_type_len + 1 +
           (idempotency_key != NULL ? idempotency_key_len + 1 : 0) +
           (metadata != NULL ? metadata_len + 1 : 0) + data_len;
  if (page->arena == NULL || page->arena_size - page->arena_len < needed)
    grow_arena (page, needed);

  i = page->n_rows++;
  page->sequence_ids[i] = sequence_id;
  page->versions[i] = version;
  page->timestamps[i] = timestamp_usec;
  row = &page->rows[i];

  if (same_stream)
    row->stream_id = page->last_stream_id;
  else
    {
      row->stream_id = put_string (page, stream_id, stream_id_len);
      page->last_stream_id = row->stream_id;
      page->last_stream_len = stream_id_len;
    }
  row->event_type = put_string (page, event_type, event_type_len);
  row->key = idempotency_key != NULL ? put_string (page, idempotency_key, idempotency_key_len)
                                     : ES_ROW_NONE;
  row->metadata = metadata != NULL ? put_string (page, metadata, metadata_len) : ES_ROW_NONE;
  row->data = page->arena_len;
  row->data_len = data_len;
  if (data_len > 0)
    memcpy (page->arena + page->arena_len, data, data_len);
  page->arena_len += data_len;
  row->flags = flags;
}

void
_es_row_page_add_event (EsRowPage     *page,
                        EsStoredEvent *event)
{
  const char *stream_id = es_stored_event_get_stream_id (event);
  const char *type = es_stored_event_get_event_type (event);
  const char *key = es_stored_event_get_idempotency_key (event);
  const char *metadata = es_stored_event_get_metadata (event);
  GBytes *data = es_stored_event_get_data (event);
  gsize data_len = 0;
  const void *bytes = data != NULL ? g_bytes_get_data (data, &data_len) : NULL;

  _es_row_page_add (page, es_stored_event_get_sequence_id (event),
                    es_stored_event_get_version (event),
                    es_stored_event_get_timestamp_usec (event),
                    es_stored_event_get_flags (event),
                    stream_id, strlen (stream_id),
                    type, strlen (type),
                    key, key != NULL ? strlen (key) : 0,
                    metadata, metadata != NULL ? strlen (metadata) : 0,
                    bytes, data_len);
}

void
_es_row_page_complete (EsRowPage *page)
{
  g_assert (page->block == NULL);

  /* The arena's memory becomes the block without a copy; the next page
   * gets a new arena, of the size this one reached. */
  if (page->n_rows == 0)
    page->block = g_bytes_new_static ("", 0);
  else
    {
      page->block = g_bytes_new_take (g_steal_pointer (&page->arena), page->arena_len);
      page->arena_len = 0;
    }
  page->base = g_bytes_get_data (page->block, NULL);
}
