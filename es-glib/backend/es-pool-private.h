/* es-pool-private.h: the connection pool both backends share (not
 * installed): borrow (blocking, woken by a cancellation), give back,
 * close; the backend says how to open, check and close a connection.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Opens one more connection (outside the pool's lock), or fails. */
typedef gpointer (*EsPoolOpenFunc)  (gpointer       user_data,
                                     GCancellable  *cancellable,
                                     GError       **error);
/* Whether @conn can serve (an idle one still alive) or go back idle. */
typedef gboolean (*EsPoolCheckFunc) (gpointer       conn);

/* Embedded in the storage; every field is the pool's business. */
typedef struct
{
  GMutex          lock;
  GCond           cond;
  GPtrArray      *idle;       /* connections waiting, guarded by lock */
  guint           n_open;     /* idle, borrowed and being opened; guarded by lock */
  guint           limit;
  gboolean        closed;     /* guarded by lock; TRUE until _es_pool_open() */
  EsPoolOpenFunc  open;       /* (nullable) none: only the connections given */
  EsPoolCheckFunc is_alive;   /* (nullable) */
  EsPoolCheckFunc can_reuse;  /* (nullable) */
  GDestroyNotify  close;
  gpointer        user_data;
} EsPool;

void     _es_pool_init      (EsPool          *pool,
                             guint            limit,
                             EsPoolOpenFunc   open,
                             EsPoolCheckFunc  is_alive,
                             EsPoolCheckFunc  can_reuse,
                             GDestroyNotify   close,
                             gpointer         user_data);
void     _es_pool_clear     (EsPool          *pool);
void     _es_pool_open      (EsPool          *pool,
                             GPtrArray       *conns);  /* (transfer full) */
gpointer _es_pool_acquire   (EsPool          *pool,
                             GCancellable    *cancellable,
                             GError         **error);
void     _es_pool_release   (EsPool          *pool,
                             gpointer         conn);
void     _es_pool_close     (EsPool          *pool);
gboolean _es_pool_is_closed (EsPool          *pool);

G_END_DECLS
