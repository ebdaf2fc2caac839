/* es-write-queue-private.h: the writer thread both backends share (not
 * installed): a job queue, groups gathered while their callers resubmit,
 * run by a backend callback, completed per main context. A synchronous
 * job that finds the writer idle runs on its caller's thread instead, so
 * the run function must not assume which thread it runs on (only that
 * one runs at a time).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* One write. A backend embeds it as the FIRST member of its own job
 * struct, which carries what the write needs.
 *
 * A synchronous job lives on its caller's stack (the caller blocks in
 * _es_write_queue_run_sync() until it is done); an asynchronous one is
 * allocated, carries the GTask the queue completes, and is freed by the
 * queue's free function once its task has been returned. */
typedef struct
{
  GCancellable *cancellable;  /* (unowned) (nullable) the caller's or the task's */
  GTask        *task;         /* (owned) (nullable) set for asynchronous jobs */

  /* Output, written by the run function on the writer thread. */
  gint64        out_version;  /* also carried with ES_ERROR_WRONG_EXPECTED_VERSION */
  GError       *error;        /* (owned) (nullable) */

  /* Synchronous completion; the queue's business. */
  GMutex        lock;
  GCond         cond;
  gint          done;
} EsWriteJob;

typedef struct _EsWriteQueue EsWriteQueue;

/* Runs @jobs (those not cancelled, in submission order) as one group: the
 * backend opens its transaction, runs each job (setting its out_version,
 * or its error), commits. Nothing may be reported written before the
 * commit is: when the group as a whole fails (its commit, say), the
 * function sets @group_error, which every job without an error of its own
 * then gets. Called on the writer thread, or on the thread of a
 * synchronous caller that found the writer idle; never twice at once. */
typedef void (*EsWriteQueueRunFunc)  (EsWriteJob **jobs,
                                      guint        n_jobs,
                                      GError     **group_error,
                                      gpointer     user_data);

/* Frees an asynchronous job, once its task has been returned (job->task
 * is NULL by then, job->error too unless the task could not be returned). */
typedef void (*EsWriteQueueFreeFunc) (EsWriteJob  *job);

/* @thread_exit (nullable) runs on the writer thread as it stops (after
 * the last job: the SQLite backend closes its write connection there, so
 * that it is closed when _es_write_queue_stop() returns); @user_data_free
 * when the last ref goes, on whichever thread drops it. */
EsWriteQueue *_es_write_queue_new      (guint                 max_group,
                                        EsWriteQueueRunFunc   run,
                                        EsWriteQueueFreeFunc  free_job,
                                        GDestroyNotify        thread_exit,
                                        gpointer              user_data,
                                        GDestroyNotify        user_data_free);
gboolean      _es_write_queue_start    (EsWriteQueue         *queue,
                                        const char           *thread_name,
                                        GError              **error);
gboolean      _es_write_queue_submit   (EsWriteQueue         *queue,
                                        EsWriteJob           *job);
gboolean      _es_write_queue_run_sync (EsWriteQueue         *queue,
                                        EsWriteJob           *job);
void          _es_write_queue_stop     (EsWriteQueue         *queue);
void          _es_write_queue_unref    (EsWriteQueue         *queue);

/* Tests: how many completion sources the write queues have dispatched. */
guint         _es_write_queue_get_n_completion_dispatches (void);
/* Tests: how many synchronous jobs ran on their caller's thread. */
guint         _es_write_queue_get_n_inline_runs (void);
/* Tests: how many synchronous jobs were queued to the writer thread. */
guint         _es_write_queue_get_n_queued_sync (void);

G_END_DECLS
