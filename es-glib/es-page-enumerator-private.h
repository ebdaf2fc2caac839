/* es-page-enumerator-private.h: the paging machinery EsEventEnumerator and
 * EsStreamInfoEnumerator share (not installed): a page of objects fetched
 * from storage, handed out one at a time or in batches, a failure held
 * back after a partial batch, the async batch in a worker thread and the
 * closed and pending states. The public enumerator embeds an
 * EsPageEnumerator and says how to fetch the page after its position.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * EsPageEnumeratorClass:
 * @fetch: reads at most @page_size objects that follow the owner's
 *   position, in order, into an array that owns them; %NULL on error
 * @advance: moves the owner's position past @last, the last object of a
 *   page just fetched; returns %FALSE when nothing can come after it
 * @closed_message: N_() the message of %G_IO_ERROR_CLOSED
 * @pending_message: N_() the message of %G_IO_ERROR_PENDING
 */
typedef struct
{
  GPtrArray  *(*fetch)   (gpointer       owner,
                          guint          page_size,
                          GCancellable  *cancellable,
                          GError       **error);
  gboolean    (*advance) (gpointer       owner,
                          gpointer       last);
  const char   *closed_message;
  const char   *pending_message;
} EsPageEnumeratorClass;

/* Embedded in the public enumerator; every field is the pager's business
 * but at_end, which the owner may set before the first page. */
typedef struct
{
  const EsPageEnumeratorClass *klass;
  gpointer   owner;     /* (unowned): the enumerator that embeds this */

  gpointer  *page;      /* (owned) (array length=page_len): GObjects, NULL once handed out */
  guint      page_len;
  guint      page_pos;

  GError    *deferred;  /* (owned) (nullable): failure after a partial batch */
  gboolean   at_end;
  gboolean   closed;
  gint       pending;   /* (atomic) an async batch is running */
} EsPageEnumerator;

void       _es_page_enumerator_init             (EsPageEnumerator             *self,
                                                 const EsPageEnumeratorClass  *klass,
                                                 gpointer                      owner);
void       _es_page_enumerator_clear            (EsPageEnumerator             *self);
gboolean   _es_page_enumerator_fill             (EsPageEnumerator             *self,
                                                 GCancellable                 *cancellable,
                                                 GError                      **error);
gpointer   _es_page_enumerator_next             (EsPageEnumerator             *self,
                                                 GCancellable                 *cancellable,
                                                 GError                      **error);
GPtrArray *_es_page_enumerator_next_batch       (EsPageEnumerator             *self,
                                                 guint                         max_items,
                                                 GCancellable                 *cancellable,
                                                 GError                      **error);
void       _es_page_enumerator_next_batch_async (EsPageEnumerator             *self,
                                                 guint                         max_items,
                                                 GCancellable                 *cancellable,
                                                 GAsyncReadyCallback           callback,
                                                 gpointer                      user_data,
                                                 gpointer                      source_tag);
gboolean   _es_page_enumerator_close            (EsPageEnumerator             *self,
                                                 GError                      **error);

G_END_DECLS
