/* es-row-page.c: a page of a read as rows in flat memory (see EsRowPage in
 * es-private.h), what EsEventCursor steps through.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-private.h"

/* What a page's arena starts with; it grows as rows come. */
#define ARENA_INITIAL_SIZE (64 * 1024)

EsRowPage *
_es_row_page_new (void)
{
  EsRowPage *page = g_new0 (EsRowPage, 1);

  page->sequence_ids = g_array_sized_new (FALSE, FALSE, sizeof (gint64), ES_READ_PAGE_SIZE);
  page->versions = g_array_sized_new (FALSE, FALSE, sizeof (gint64), ES_READ_PAGE_SIZE);
  page->timestamps = g_array_sized_new (FALSE, FALSE, sizeof (gint64), ES_READ_PAGE_SIZE);
  page->rows = g_array_sized_new (FALSE, FALSE, sizeof (EsRowRef), ES_READ_PAGE_SIZE);
  page->last_stream_id = ES_ROW_NONE;
  return page;
}

void
_es_row_page_reset (EsRowPage *page)
{
  g_clear_pointer (&page->block, g_bytes_unref);
  page->base = NULL;
  if (page->arena != NULL)
    g_byte_array_set_size (page->arena, 0);
  g_array_set_size (page->sequence_ids, 0);
  g_array_set_size (page->versions, 0);
  g_array_set_size (page->timestamps, 0);
  g_array_set_size (page->rows, 0);
  page->last_stream_id = ES_ROW_NONE;
  page->last_stream_len = 0;
}

void
_es_row_page_free (EsRowPage *page)
{
  if (page == NULL)
    return;
  g_clear_pointer (&page->block, g_bytes_unref);
  g_clear_pointer (&page->arena, g_byte_array_unref);
  g_array_unref (page->sequence_ids);
  g_array_unref (page->versions);
  g_array_unref (page->timestamps);
  g_array_unref (page->rows);
  g_free (page);
}

/* Copies @len bytes and a NUL into the arena; returns their offset. */
static gsize
arena_add (GByteArray *arena,
           const void *bytes,
           gsize       len,
           gboolean    nul)
{
  gsize offset = arena->len;

  g_byte_array_set_size (arena, offset + len + (nul ? 1 : 0));
  if (len > 0)
    memcpy (arena->data + offset, bytes, len);
  if (nul)
    arena->data[offset + len] = '\0';
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
  EsRowRef row;

  g_assert (page->block == NULL);

  if (page->arena == NULL)
    page->arena = g_byte_array_sized_new (ARENA_INITIAL_SIZE);

  /* Consecutive rows of one stream (every row of a stream's read) share
   * its id. */
  if (page->last_stream_id != ES_ROW_NONE && page->last_stream_len == stream_id_len &&
      memcmp (page->arena->data + page->last_stream_id, stream_id, stream_id_len) == 0)
    row.stream_id = page->last_stream_id;
  else
    {
      row.stream_id = arena_add (page->arena, stream_id, stream_id_len, TRUE);
      page->last_stream_id = row.stream_id;
      page->last_stream_len = stream_id_len;
    }

  row.event_type = arena_add (page->arena, event_type, event_type_len, TRUE);
  row.key = idempotency_key != NULL
              ? arena_add (page->arena, idempotency_key, idempotency_key_len, TRUE)
              : ES_ROW_NONE;
  row.metadata = metadata != NULL ? arena_add (page->arena, metadata, metadata_len, TRUE)
                                  : ES_ROW_NONE;
  row.data = arena_add (page->arena, data, data_len, FALSE);
  row.data_len = data_len;
  row.flags = flags;

  g_array_append_val (page->sequence_ids, sequence_id);
  g_array_append_val (page->versions, version);
  g_array_append_val (page->timestamps, timestamp_usec);
  g_array_append_val (page->rows, row);
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
   * gets a new arena. */
  if (page->arena == NULL)
    page->block = g_bytes_new_static ("", 0);
  else
    page->block = g_byte_array_free_to_bytes (g_steal_pointer (&page->arena));
  page->base = g_bytes_get_data (page->block, NULL);
}
