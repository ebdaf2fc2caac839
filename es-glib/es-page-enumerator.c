/* es-page-enumerator.c: the paging machinery the enumerators share.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"
#include "es-page-enumerator-private.h"

/*
 * _es_page_enumerator_init:
 * @klass: (transfer none): how to fetch; lives as long as @self (static)
 * @owner: the enumerator that embeds @self: the GTask source object of an
 *   async batch and the argument of @klass's functions
 */
void
_es_page_enumerator_init (EsPageEnumerator            *self,
                          const EsPageEnumeratorClass *klass,
                          gpointer                     owner)
{
  *self = (EsPageEnumerator) { .klass = klass, .owner = owner };
}

static void
clear_page (EsPageEnumerator *self)
{
  for (guint i = self->page_pos; i < self->page_len; i++)
    g_clear_object ((GObject **) &self->page[i]);
  g_clear_pointer (&self->page, g_free);
  self->page_len = 0;
  self->page_pos = 0;
}

/* Releases the buffered page and a held-back failure (finalize, close). */
void
_es_page_enumerator_clear (EsPageEnumerator *self)
{
  clear_page (self);
  g_clear_error (&self->deferred);
}

/*
 * _es_page_enumerator_fill:
 *
 * Fetches the next page if the current one is used up, so that the call
 * that makes the enumerator reports errors (bad filter, closed factory,
 * storage) when it starts.
 */
gboolean
_es_page_enumerator_fill (EsPageEnumerator  *self,
                          GCancellable      *cancellable,
                          GError           **error)
{
  g_autoptr(GPtrArray) items = NULL;
  gsize len = 0;

  if (self->page_pos < self->page_len || self->at_end)
    return TRUE;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  items = self->klass->fetch (self->owner, ES_READ_PAGE_SIZE, cancellable, error);
  if (items == NULL)
    return FALSE;

  clear_page (self);
  /* A short page is the end of what is stored now: don't ask again. */
  self->at_end = items->len < ES_READ_PAGE_SIZE;
  if (items->len > 0 &&
      !self->klass->advance (self->owner, g_ptr_array_index (items, items->len - 1)))
    self->at_end = TRUE;

  g_ptr_array_set_free_func (items, NULL);
  self->page = g_ptr_array_steal (items, &len);
  self->page_len = len;
  self->page_pos = 0;
  return TRUE;
}

static gboolean
check_usable (EsPageEnumerator  *self,
              GError           **error)
{
  if (self->closed)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                           _(self->klass->closed_message));
      return FALSE;
    }
  if (g_atomic_int_get (&self->pending))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           _(self->klass->pending_message));
      return FALSE;
    }
  return TRUE;
}

/* The batch logic shared by next, next_batch and next_batch_async. */
static GPtrArray *
next_batch_internal (EsPageEnumerator  *self,
                     guint              max_items,
                     GCancellable      *cancellable,
                     GError           **error)
{
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);

  if (self->deferred != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&self->deferred));
      return NULL;
    }

  while (batch->len < max_items)
    {
      g_autoptr(GError) local_error = NULL;

      if (self->page_pos == self->page_len)
        {
          if (self->at_end)
            break;
          if (!_es_page_enumerator_fill (self, cancellable, &local_error))
            {
              /* Hand out what was gathered; the error comes next time. */
              if (batch->len > 0)
                {
                  self->deferred = g_steal_pointer (&local_error);
                  break;
                }
              g_propagate_error (error, g_steal_pointer (&local_error));
              return NULL;
            }
          if (self->page_len == 0)
            break;
        }

      g_ptr_array_add (batch, self->page[self->page_pos]);
      self->page[self->page_pos++] = NULL;
    }

  return g_steal_pointer (&batch);
}

/* Returns: (transfer full) (nullable): the next object, %NULL at the end
 * (without an error) or on error */
gpointer
_es_page_enumerator_next (EsPageEnumerator  *self,
                          GCancellable      *cancellable,
                          GError           **error)
{
  g_autoptr(GPtrArray) batch = NULL;

  if (!check_usable (self, error))
    return NULL;

  /* The common case, without building a batch. */
  if (self->page_pos < self->page_len && self->deferred == NULL)
    {
      gpointer item = self->page[self->page_pos];

      self->page[self->page_pos++] = NULL;
      return item;
    }

  batch = next_batch_internal (self, 1, cancellable, error);
  if (batch == NULL || batch->len == 0)
    return NULL;
  return g_ptr_array_steal_index (batch, 0);
}

/* Returns: (transfer container): up to @max_items objects, empty at the
 * end, or %NULL on error */
GPtrArray *
_es_page_enumerator_next_batch (EsPageEnumerator  *self,
                                guint              max_items,
                                GCancellable      *cancellable,
                                GError           **error)
{
  if (!check_usable (self, error))
    return NULL;

  return next_batch_internal (self, max_items, cancellable, error);
}

typedef struct
{
  EsPageEnumerator *pager;      /* (unowned): the task's source object embeds it */
  guint             max_items;
} BatchJob;

static void
next_batch_in_thread (GTask        *task,
                      gpointer      source_object,
                      gpointer      task_data,
                      GCancellable *cancellable)
{
  BatchJob *job = task_data;
  GError *error = NULL;
  GPtrArray *batch;

  batch = next_batch_internal (job->pager, job->max_items, cancellable, &error);
  g_atomic_int_set (&job->pager->pending, FALSE);
  if (batch == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, batch, (GDestroyNotify) g_ptr_array_unref);
}

/*
 * _es_page_enumerator_next_batch_async:
 * @source_tag: the public _async function, which its _finish checks
 *
 * Runs next_batch in a worker thread; the task's source object is the
 * owner, and its result a GPtrArray (g_task_propagate_pointer()).
 */
void
_es_page_enumerator_next_batch_async (EsPageEnumerator    *self,
                                      guint                max_items,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data,
                                      gpointer             source_tag)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  BatchJob *job;

  task = g_task_new (self->owner, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);

  if (!check_usable (self, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  g_atomic_int_set (&self->pending, TRUE);
  job = g_new (BatchJob, 1);
  job->pager = self;
  job->max_items = max_items;
  g_task_set_task_data (task, job, g_free);
  g_task_run_in_thread (task, next_batch_in_thread);
}

/* Releases the buffered page; later calls fail with G_IO_ERROR_CLOSED. */
gboolean
_es_page_enumerator_close (EsPageEnumerator  *self,
                           GError           **error)
{
  if (g_atomic_int_get (&self->pending))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           _(self->klass->pending_message));
      return FALSE;
    }

  self->closed = TRUE;
  _es_page_enumerator_clear (self);
  return TRUE;
}
