/* es-pool.c: the connection pool both backends share. It holds no SQL:
 * the backend's callbacks open, check and close its connections.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "es-pool-private.h"

#include "es-glib/es-private.h"

/* A pool of at most @limit connections. With @open, a connection is opened
 * when none is idle and fewer than @limit are open; without, the pool has
 * only those given to _es_pool_open(). @is_alive tells whether an idle one
 * can still serve (the server may have closed it while it waited),
 * @can_reuse whether one given back can wait for the next borrower (not
 * if it failed, say); @close closes one. The pool is closed (every
 * borrower fails with ES_ERROR_CLOSED) until _es_pool_open(). */
void
_es_pool_init (EsPool          *pool,
               guint            limit,
               EsPoolOpenFunc   open,
               EsPoolCheckFunc  is_alive,
               EsPoolCheckFunc  can_reuse,
               GDestroyNotify   close,
               gpointer         user_data)
{
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->cond);
  pool->idle = g_ptr_array_new ();
  pool->n_open = 0;
  pool->limit = limit;
  pool->closed = TRUE;
  pool->open = open;
  pool->is_alive = is_alive;
  pool->can_reuse = can_reuse;
  pool->close = close;
  pool->user_data = user_data;
}

/* After _es_pool_close(), once nothing is borrowed any more. */
void
_es_pool_clear (EsPool *pool)
{
  if (pool->idle != NULL)
    {
      g_ptr_array_set_free_func (pool->idle, pool->close);
      g_clear_pointer (&pool->idle, g_ptr_array_unref);
    }
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->cond);
}

/* Opens the pool with the connections of @conns (transfer full: the
 * array and its connections, whatever its free function). */
void
_es_pool_open (EsPool    *pool,
               GPtrArray *conns)
{
  g_mutex_lock (&pool->lock);
  for (guint i = 0; i < conns->len; i++)
    {
      g_ptr_array_add (pool->idle, g_ptr_array_index (conns, i));
      pool->n_open++;
    }
  pool->closed = FALSE;
  g_cond_broadcast (&pool->cond);
  g_mutex_unlock (&pool->lock);

  g_ptr_array_set_free_func (conns, NULL);
  g_ptr_array_unref (conns);
}

gboolean
_es_pool_is_closed (EsPool *pool)
{
  gboolean closed;

  g_mutex_lock (&pool->lock);
  closed = pool->closed;
  g_mutex_unlock (&pool->lock);
  return closed;
}

static void
pool_wake (GCancellable *cancellable,
           gpointer      data)
{
  EsPool *pool = data;

  g_mutex_lock (&pool->lock);
  g_cond_broadcast (&pool->cond);
  g_mutex_unlock (&pool->lock);
}

static void
set_closed_error (GError **error)
{
  g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
}

/* Borrows a connection: an idle one that is still alive, else a new one
 * while fewer than the limit are open, else waits for one to come back.
 * Fails with ES_ERROR_CLOSED once the pool is closed, with
 * G_IO_ERROR_CANCELLED if @cancellable fires while it waits, and with the
 * open function's error if a new connection cannot be opened. */
gpointer
_es_pool_acquire (EsPool        *pool,
                  GCancellable  *cancellable,
                  GError       **error)
{
  g_autoptr(GPtrArray) dead = g_ptr_array_new_with_free_func (pool->close);
  gpointer conn = NULL;
  gboolean open_new = FALSE;
  gulong handler = 0;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  g_mutex_lock (&pool->lock);
  for (;;)
    {
      if (pool->closed)
        {
          set_closed_error (error);
          break;
        }

      /* Last in, first out: the connection used last has the warmest
       * cache, and the ones that go unused cost nothing. */
      if (pool->idle->len > 0)
        {
          conn = g_ptr_array_steal_index_fast (pool->idle, pool->idle->len - 1);
          if (pool->is_alive == NULL || pool->is_alive (conn))
            break;
          /* Closed by the server while it sat here (a restart): replace it. */
          g_ptr_array_add (dead, g_steal_pointer (&conn));
          pool->n_open--;
          continue;
        }

      if (pool->open != NULL && pool->n_open < pool->limit)
        {
          pool->n_open++;
          open_new = TRUE;
          break;
        }

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;

      /* About to wait: have a cancellation wake us. Its handler takes the
       * lock, so connect (it may run at once) without holding it. */
      if (cancellable != NULL && handler == 0)
        {
          g_mutex_unlock (&pool->lock);
          handler = g_cancellable_connect (cancellable, G_CALLBACK (pool_wake), pool, NULL);
          g_mutex_lock (&pool->lock);
          continue;
        }

      g_cond_wait (&pool->cond, &pool->lock);
    }
  g_mutex_unlock (&pool->lock);

  /* Outside the lock: disconnecting waits for a running handler. */
  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);

  if (open_new)
    {
      conn = pool->open (pool->user_data, cancellable, error);
      if (conn == NULL)
        {
          g_mutex_lock (&pool->lock);
          pool->n_open--;
          g_cond_signal (&pool->cond);
          g_mutex_unlock (&pool->lock);
        }
    }

  return conn;
}

/* Gives a borrowed connection back; closes it instead when it cannot be
 * reused, or when the pool was closed while it was out. */
void
_es_pool_release (EsPool   *pool,
                  gpointer  conn)
{
  gboolean drop = pool->can_reuse != NULL && !pool->can_reuse (conn);

  g_mutex_lock (&pool->lock);
  if (pool->closed)
    drop = TRUE;
  if (drop)
    pool->n_open--;
  else
    g_ptr_array_add (pool->idle, conn);
  g_cond_signal (&pool->cond);
  g_mutex_unlock (&pool->lock);

  if (drop)
    pool->close (conn);
}

/* Closes the idle connections, and each borrowed one as it comes back;
 * wakes everyone waiting, who fail with ES_ERROR_CLOSED. */
void
_es_pool_close (EsPool *pool)
{
  g_autoptr(GPtrArray) idle = NULL;

  g_mutex_lock (&pool->lock);
  pool->closed = TRUE;
  idle = g_steal_pointer (&pool->idle);
  pool->idle = g_ptr_array_new ();
  pool->n_open -= idle->len;
  g_cond_broadcast (&pool->cond);
  g_mutex_unlock (&pool->lock);

  g_ptr_array_set_free_func (idle, pool->close);
}
