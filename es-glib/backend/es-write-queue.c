/* es-write-queue.c: the writer thread both backends share. It holds no
 * SQL: it gathers jobs into groups (group commit), hands each group to the
 * backend's run function, and reports each job's result, asynchronous
 * ones in one idle source per main context per group.
 *
 * A synchronous job that finds the queue empty and the writer idle does
 * not go through the thread at all: its caller claims the writer and runs
 * the job as a group of one on its own thread (see
 * _es_write_queue_run_sync()). Waking a thread and being woken back is
 * the largest part of a small write's cost on a busy machine, and a
 * caller who blocks anyway has nothing better to do with its thread.
 *
 * The writer thread sleeps in the queue's pop whenever no job is queued:
 * it has no timer, and it waits (lingers) only right after a group of
 * asynchronous jobs, while their callers are resubmitting.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "es-write-queue-private.h"

#include "es-glib/es-private.h"

/* A synchronous caller whose job had to be queued (the writer was busy)
 * and who is the only one waiting polls its job's completion for this
 * long before it sleeps: waking a thread asleep on a futex takes some
 * 10 µs, and the job is often done by then. With several callers waiting,
 * they sleep at once: spinning threads would take the CPU the writer and
 * the readers need. */
#define SPIN_USEC 50

/* How long the writer waits for more asynchronous appends to join a group
 * (see writer_thread()): between two arrivals, and in all; also the most
 * it waits for the completions of its last group to be dispatched. */
#define LINGER_USEC     100
#define LINGER_MAX_USEC 1000

/* The queue's state is an atomic rc box co-owned by the storage and by the
 * writer thread, because the storage can be finalized on the writer thread
 * itself: a GTask holds a ref on its source object, and the writer may
 * drop the last task. The storage then cannot join the thread it runs on,
 * so it only tells the thread to stop and lets go; the thread finishes and
 * drops the last ref. */
struct _EsWriteQueue
{
  GAsyncQueue          *queue;      /* (owned) EsWriteJob *, then the stop mark last */
  gboolean              stopping;   /* guarded by the queue's lock: no job accepted */
  GThread              *thread;     /* (owned) (nullable) guarded by the queue's lock */
  gint                  n_waiting;  /* (atomic) synchronous callers waiting for their
                                     * job: decides who spins (see SPIN_USEC) */

  /* Who runs jobs: the writer thread, or a synchronous caller that found
   * it idle (see _es_write_queue_run_sync()). Both flags are guarded by
   * the queue's lock; the one whose flag is set runs, under run_lock, so
   * that the other waits for it. A caller claims the writer only while
   * the queue is empty and the thread holds no job: jobs still run in
   * the order they were submitted. */
  gboolean              thread_busy;  /* the thread popped a job and has not
                                       * finished its group */
  gboolean              caller_busy;  /* a caller claimed the writer */
  gboolean              thread_waiting;  /* the thread sleeps in queue_next():
                                          * the queue's length counts it as -1 */
  GMutex                run_lock;

  /* Completion sources attached and not yet done dispatching: their
   * callbacks are likely submitting the next writes (see writer_thread()).
   * The writer waits for the count to drop to zero on dispatch_cond. */
  gint                  n_dispatching;  /* (atomic) */
  GMutex                dispatch_lock;
  GCond                 dispatch_cond;
  guint                 max_group;
  EsWriteQueueRunFunc   run;
  EsWriteQueueFreeFunc  free_job;
  GDestroyNotify        thread_exit;
  gpointer              user_data;
  GDestroyNotify        user_data_free;
};

/* Queued after the last job: the writer thread exits when it pops it. */
static const char stop_mark;
#define STOP_MARK ((gpointer) &stop_mark)

static gint n_completion_dispatches;  /* (atomic) tests only */
static gint n_inline_runs;            /* (atomic) tests only */
static gint n_queued_sync;            /* (atomic) tests only */

static void
queue_clear (gpointer data)
{
  EsWriteQueue *queue = data;

  if (queue->user_data_free != NULL)
    queue->user_data_free (queue->user_data);
  g_async_queue_unref (queue->queue);
  g_mutex_clear (&queue->run_lock);
  g_mutex_clear (&queue->dispatch_lock);
  g_cond_clear (&queue->dispatch_cond);
}

void
_es_write_queue_unref (EsWriteQueue *queue)
{
  g_atomic_rc_box_release_full (queue, queue_clear);
}

EsWriteQueue *
_es_write_queue_new (guint                 max_group,
                     EsWriteQueueRunFunc   run,
                     EsWriteQueueFreeFunc  free_job,
                     GDestroyNotify        thread_exit,
                     gpointer              user_data,
                     GDestroyNotify        user_data_free)
{
  EsWriteQueue *queue = g_atomic_rc_box_new0 (EsWriteQueue);

  g_return_val_if_fail (max_group > 0, NULL);

  queue->queue = g_async_queue_new ();
  queue->max_group = max_group;
  queue->run = run;
  queue->free_job = free_job;
  queue->thread_exit = thread_exit;
  queue->user_data = user_data;
  queue->user_data_free = user_data_free;
  g_mutex_init (&queue->run_lock);
  g_mutex_init (&queue->dispatch_lock);
  g_cond_init (&queue->dispatch_cond);
  return queue;
}

/* Queues @job, unless the queue is stopping: the check and the push are
 * under the queue's lock, as is the push of the stop mark, so no job can
 * land behind the stop mark and wait forever. */
gboolean
_es_write_queue_submit (EsWriteQueue *queue,
                        EsWriteJob   *job)
{
  gboolean accepted;

  g_async_queue_lock (queue->queue);
  accepted = !queue->stopping;
  if (accepted)
    g_async_queue_push_unlocked (queue->queue, job);
  g_async_queue_unlock (queue->queue);
  return accepted;
}

/* Refuses new jobs, queues the stop mark behind the accepted ones, and
 * waits for the thread to finish them, unless called on the writer thread
 * itself (the storage finalized there): then the thread finishes on its
 * own once back in its loop. */
void
_es_write_queue_stop (EsWriteQueue *queue)
{
  GThread *thread;

  g_async_queue_lock (queue->queue);
  if (!queue->stopping)
    {
      queue->stopping = TRUE;
      g_async_queue_push_unlocked (queue->queue, STOP_MARK);
    }
  thread = g_steal_pointer (&queue->thread);
  g_async_queue_unlock (queue->queue);

  if (thread == NULL)
    return;
  if (thread == g_thread_self ())
    g_thread_unref (thread);
  else
    g_thread_join (thread);
}

/* Reports @job's result to whoever waits for it. */
static void
job_complete (EsWriteQueue *queue,
              EsWriteJob   *job)
{
  if (job->task != NULL)
    {
      GTask *task = g_steal_pointer (&job->task);

      if (job->error != NULL)
        _es_append_task_return_error (task, g_steal_pointer (&job->error), job->out_version);
      else
        _es_task_return_int64 (task, job->out_version);
      queue->free_job (job);

      /* Last: this may drop the last ref on the storage and finalize it,
       * here on the writer thread (see _es_write_queue_stop()). */
      g_object_unref (task);
    }
  else
    {
      g_mutex_lock (&job->lock);
      g_atomic_int_set (&job->done, TRUE);
      g_cond_signal (&job->cond);
      g_mutex_unlock (&job->lock);
      /* The job belongs to its caller again, who may have returned. */
    }
}

/* The asynchronous jobs of a group that share a main context, completed
 * there by one idle source. */
typedef struct
{
  EsWriteQueue *queue;    /* (owned) free_job must outlive the storage */
  GMainContext *context;  /* (unowned) the tasks hold it */
  GPtrArray    *jobs;     /* (owned) (element-type EsWriteJob) in group order */
  guint         done;     /* jobs[0..done) are completed */
  gboolean      counted;  /* counted in queue->n_dispatching */
} Completion;

/* The completion is done dispatching (or will never be): the writer, if
 * it waits for the callbacks' next writes, can take them now. */
static void
completion_uncount (Completion *completion)
{
  EsWriteQueue *queue = completion->queue;

  if (!completion->counted)
    return;
  completion->counted = FALSE;
  if (g_atomic_int_dec_and_test (&queue->n_dispatching))
    {
      g_mutex_lock (&queue->dispatch_lock);
      g_cond_broadcast (&queue->dispatch_cond);
      g_mutex_unlock (&queue->dispatch_lock);
    }
}

static gboolean
completion_dispatch (gpointer data)
{
  Completion *completion = data;

  g_atomic_int_inc (&n_completion_dispatches);

  /* Inside a source of the tasks' context, g_task_return_*() completes a
   * task at once (unless the task was created during this same main loop
   * iteration: then GTask schedules it, which is just as correct). */
  while (completion->done < completion->jobs->len)
    job_complete (completion->queue,
                  g_ptr_array_index (completion->jobs, completion->done++));
  completion_uncount (completion);
  return G_SOURCE_REMOVE;
}

/* The source was destroyed with jobs left (its context went away without
 * running it): drop them as GTask drops a task it cannot return. */
static void
completion_free (gpointer data)
{
  Completion *completion = data;

  while (completion->done < completion->jobs->len)
    {
      EsWriteJob *job = g_ptr_array_index (completion->jobs, completion->done++);

      g_clear_object (&job->task);
      g_clear_error (&job->error);
      completion->queue->free_job (job);
    }
  completion_uncount (completion);
  g_ptr_array_unref (completion->jobs);
  _es_write_queue_unref (completion->queue);
  g_free (completion);
}

/* Reports the result of every job of a group: synchronous callers are woken
 * at once; asynchronous jobs are handed to their tasks' main contexts in one
 * idle source per context for the whole group, rather than one per task as
 * g_task_return_*() on this thread would attach: with many small writes in
 * flight, attaching a source and waking the context for each one cost the
 * writer a tenth of its time, and the caller's thread a wake-up per write.
 * A job without an error of its own in a group that failed gets the
 * group's error: it was not written. */
static void
complete_group (EsWriteQueue  *queue,
                EsWriteJob   **jobs,
                guint          n_jobs,
                const GError  *group_error)
{
  Completion *completions[8];
  guint n_completions = 0;
  guint i, c;

  for (i = 0; i < n_jobs; i++)
    {
      EsWriteJob *job = jobs[i];
      GMainContext *context = job->task != NULL ? g_task_get_context (job->task) : NULL;

      if (job->error == NULL && group_error != NULL)
        {
          job->error = g_error_copy (group_error);
          job->out_version = -1;  /* not a version found by this job */
        }

      for (c = 0; c < n_completions && completions[c]->context != context; c++)
        ;

      /* Synchronous, or (rarely) a ninth context: on its own. */
      if (context == NULL || c == G_N_ELEMENTS (completions))
        {
          job_complete (queue, job);
          continue;
        }

      if (c == n_completions)
        {
          completions[c] = g_new0 (Completion, 1);
          completions[c]->queue = g_atomic_rc_box_acquire (queue);
          completions[c]->context = context;
          completions[c]->jobs = g_ptr_array_new ();
          n_completions++;
        }
      g_ptr_array_add (completions[c]->jobs, job);
    }

  for (c = 0; c < n_completions; c++)
    {
      GSource *source = g_idle_source_new ();

      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_static_name (source, "[es-glib] append completion");
      /* A callback that iterates the context itself (waiting for another
       * write of this group, say) must see the rest completed, as it would
       * with a source per task: the nested dispatch carries on from the
       * next job. GLib keeps @data alive until the outer dispatch ends. */
      g_source_set_can_recurse (source, TRUE);
      g_source_set_callback (source, completion_dispatch, completions[c], completion_free);
      completions[c]->counted = TRUE;
      g_atomic_int_inc (&queue->n_dispatching);
      g_source_attach (source, completions[c]->context);
      g_source_unref (source);
    }
}

/* Runs a group: a job cancelled before the writer got to it fails with
 * G_IO_ERROR_CANCELLED and is not written at all; the others go to the
 * backend's run function. Once the group committed, a job reports its
 * result whatever its cancellable says (the tasks do not check it). */
static void
run_group (EsWriteQueue  *queue,
           EsWriteJob   **jobs,
           guint          n_jobs)
{
  g_autoptr(GError) group_error = NULL;
  EsWriteJob **live = g_newa (EsWriteJob *, n_jobs);
  guint n_live = 0;
  guint i;

  for (i = 0; i < n_jobs; i++)
    if (!g_cancellable_set_error_if_cancelled (jobs[i]->cancellable, &jobs[i]->error))
      live[n_live++] = jobs[i];

  if (n_live > 0)
    queue->run (live, n_live, &group_error, queue->user_data);

  complete_group (queue, jobs, n_jobs, group_error);
}

/* Sleeps until a job (or the stop mark) is queued, and pops it and what
 * else is queued behind it, up to @max into @group; returns how many.
 * The thread is busy from then on (a caller can no longer claim the
 * writer), until writer_idle(). *@out_stop is set when the stop mark was
 * popped. */
static guint
queue_next (EsWriteQueue  *queue,
            EsWriteJob   **group,
            guint          max,
            gboolean      *out_stop)
{
  gpointer item;
  guint n_jobs = 0;

  g_async_queue_lock (queue->queue);
  queue->thread_waiting = TRUE;
  item = g_async_queue_pop_unlocked (queue->queue);
  queue->thread_waiting = FALSE;
  queue->thread_busy = TRUE;
  while (item != NULL && item != STOP_MARK)
    {
      group[n_jobs++] = item;
      item = n_jobs < max ? g_async_queue_try_pop_unlocked (queue->queue) : NULL;
    }
  g_async_queue_unlock (queue->queue);

  *out_stop = item == STOP_MARK;
  return n_jobs;
}

static void
writer_idle (EsWriteQueue *queue)
{
  g_async_queue_lock (queue->queue);
  queue->thread_busy = FALSE;
  g_async_queue_unlock (queue->queue);
}

/* The writer thread: pops one job, takes whatever else is queued (up to
 * max_group), and runs them as one group, until the stop mark. It owns a
 * ref on @data. */
static gpointer
writer_thread (gpointer data)
{
  EsWriteQueue *queue = data;
  g_autofree EsWriteJob **group = g_new (EsWriteJob *, queue->max_group);
  guint last_group_size = 0;
  gboolean stop = FALSE;

  while (!stop)
    {
      gpointer item;
      guint n_jobs = queue_next (queue, group, queue->max_group, &stop);

      /* A caller that claimed the writer before these jobs were queued
       * finishes first. */
      g_mutex_lock (&queue->run_lock);
      if (n_jobs == 0)
        {
          g_mutex_unlock (&queue->run_lock);
          break;
        }

      /* The completions of the last group are being dispatched: their
       * callbacks are likely submitting the next writes, one after
       * another. Rather than wake up for each one, wait (LINGER_MAX_USEC
       * at most) until the dispatch is over, then take what was queued,
       * so that they share one commit. */
      if (!stop && group[0]->task != NULL && g_atomic_int_get (&queue->n_dispatching) > 0)
        {
          gint64 deadline = g_get_monotonic_time () + LINGER_MAX_USEC;

          g_mutex_lock (&queue->dispatch_lock);
          while (g_atomic_int_get (&queue->n_dispatching) > 0 &&
                 g_cond_wait_until (&queue->dispatch_cond, &queue->dispatch_lock, deadline))
            ;
          g_mutex_unlock (&queue->dispatch_lock);

          g_async_queue_lock (queue->queue);
          while (n_jobs < queue->max_group &&
                 (item = g_async_queue_try_pop_unlocked (queue->queue)) != NULL)
            {
              if (item == STOP_MARK)
                {
                  stop = TRUE;
                  break;
                }
              group[n_jobs++] = item;
            }
          g_async_queue_unlock (queue->queue);
        }
      /* Asynchronous appends came in groups last time, from callers that
       * are not completed by this queue's sources (other threads, say):
       * wait for them while they keep coming (LINGER_USEC at most between
       * two, LINGER_MAX_USEC in all), so that they share one commit instead
       * of trickling into many small ones. A lone writer (groups of one)
       * never waits. */
      else if (!stop && group[0]->task != NULL && n_jobs < last_group_size)
        {
          gint64 deadline = g_get_monotonic_time () + LINGER_MAX_USEC;

          while (n_jobs < MIN (last_group_size, queue->max_group) &&
                 g_get_monotonic_time () < deadline &&
                 (item = g_async_queue_timeout_pop (queue->queue, LINGER_USEC)) != NULL)
            {
              if (item == STOP_MARK)
                {
                  stop = TRUE;
                  break;
                }
              group[n_jobs++] = item;
            }
        }
      last_group_size = n_jobs;

      run_group (queue, group, n_jobs);
      g_mutex_unlock (&queue->run_lock);
      writer_idle (queue);
    }

  /* No caller can claim the writer any more (the queue is stopping), but
   * one may still be running: the connection is closed after it. */
  g_mutex_lock (&queue->run_lock);
  if (queue->thread_exit != NULL)
    queue->thread_exit (queue->user_data);
  g_mutex_unlock (&queue->run_lock);
  _es_write_queue_unref (queue);
  return NULL;
}

gboolean
_es_write_queue_start (EsWriteQueue  *queue,
                       const char    *thread_name,
                       GError       **error)
{
  GThread *thread;

  thread = g_thread_try_new (thread_name, writer_thread, g_atomic_rc_box_acquire (queue), error);
  if (thread == NULL)
    {
      _es_write_queue_unref (queue);
      return FALSE;
    }

  g_async_queue_lock (queue->queue);
  queue->thread = thread;
  g_async_queue_unlock (queue->queue);
  return TRUE;
}

/* Claims the writer for the calling thread if nobody else has a job for
 * it: no job queued, the writer thread idle, no other caller running. */
static gboolean
claim_writer (EsWriteQueue *queue)
{
  gboolean claimed;

  g_async_queue_lock (queue->queue);
  /* GAsyncQueue's length is the items queued minus the threads waiting:
   * a job pushed to the sleeping writer, which has not woken up yet to
   * take it, leaves it at 0. */
  claimed = !queue->stopping && !queue->thread_busy && !queue->caller_busy &&
            g_async_queue_length_unlocked (queue->queue) +
            (queue->thread_waiting ? 1 : 0) == 0;
  if (claimed)
    queue->caller_busy = TRUE;
  g_async_queue_unlock (queue->queue);
  return claimed;
}

/* Runs a synchronous job and blocks until it is done. FALSE if the queue
 * refused it (stopping): the caller reports the closed store. Otherwise
 * the job's error and out_version say how it went.
 *
 * When the writer is idle, the job runs here, on the calling thread, as
 * a group of one, exactly as the writer thread would run it: the backend's
 * connection is used by one thread at a time (run_lock), and jobs
 * submitted meanwhile wait for it. Otherwise it is queued, and shares a
 * group with the jobs around it. */
gboolean
_es_write_queue_run_sync (EsWriteQueue *queue,
                          EsWriteJob   *job)
{
  gboolean accepted;
  gboolean alone;

  job->task = NULL;

  if (claim_writer (queue))
    {
      g_autoptr(GError) group_error = NULL;

      g_mutex_lock (&queue->run_lock);
      g_atomic_int_inc (&n_inline_runs);
      /* run_group() for a group of one, without the completion: the
       * caller is here. */
      if (!g_cancellable_set_error_if_cancelled (job->cancellable, &job->error))
        queue->run (&job, 1, &group_error, queue->user_data);
      g_mutex_unlock (&queue->run_lock);
      if (job->error == NULL && group_error != NULL)
        {
          job->error = g_steal_pointer (&group_error);
          job->out_version = -1;
        }

      g_async_queue_lock (queue->queue);
      queue->caller_busy = FALSE;
      g_async_queue_unlock (queue->queue);
      return TRUE;
    }

  g_mutex_init (&job->lock);
  g_cond_init (&job->cond);

  /* Counted before the job is queued, so that the writer sees it. */
  alone = g_atomic_int_add (&queue->n_waiting, 1) == 0;

  accepted = _es_write_queue_submit (queue, job);
  if (accepted)
    {
      g_atomic_int_inc (&n_queued_sync);

      /* Spin first if this is the only caller waiting (see SPIN_USEC). */
      if (alone)
        {
          gint64 deadline = g_get_monotonic_time () + SPIN_USEC;

          while (!g_atomic_int_get (&job->done) && g_get_monotonic_time () < deadline)
            g_thread_yield ();
        }

      /* Even when the spin saw the job done, take the lock once: the
       * writer may still be signalling, and the job (on our stack) must
       * outlive that. */
      g_mutex_lock (&job->lock);
      while (!g_atomic_int_get (&job->done))
        g_cond_wait (&job->cond, &job->lock);
      g_mutex_unlock (&job->lock);
    }

  g_atomic_int_add (&queue->n_waiting, -1);
  g_cond_clear (&job->cond);
  g_mutex_clear (&job->lock);
  return accepted;
}

guint
_es_write_queue_get_n_completion_dispatches (void)
{
  return (guint) g_atomic_int_get (&n_completion_dispatches);
}

guint
_es_write_queue_get_n_inline_runs (void)
{
  return (guint) g_atomic_int_get (&n_inline_runs);
}

guint
_es_write_queue_get_n_queued_sync (void)
{
  return (guint) g_atomic_int_get (&n_queued_sync);
}
