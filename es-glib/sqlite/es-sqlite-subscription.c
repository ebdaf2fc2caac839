/* es-sqlite-subscription.c: who consumes a durable subscription of an
 * SQLite database (acquire, release), and the management writes that
 * must not happen while someone does (reset, delete).
 *
 * Holding a subscription is a write lock on one byte of a side file,
 * `<database>-eslock`, at an offset given by a 63-bit hash of the name.
 * Nothing is stored, so nothing needs a heartbeat or a clean-up: the
 * kernel drops the lock when the descriptor is closed, which it does
 * itself when the process dies (kill -9 included). The lock is an open
 * file description lock (F_OFD_SETLK, Linux): owned by the descriptor,
 * not by the process, so two storages of one process on one database
 * exclude each other like two processes do, and closing one descriptor
 * leaves the other's locks alone. It is not taken on the database, its
 * -wal or its -shm: closing a descriptor of ours on those would drop
 * SQLite's own POSIX locks of this process on them.
 *
 * Two names whose hashes are equal are exclusive together: one waits for
 * the other (or gets ES_ERROR_BUSY) though they are different
 * subscriptions. With 2^63 offsets that takes about 3 × 10^9 names to be
 * likely.
 *
 * Waiting retries the lock every 100 ms (F_OFD_SETLKW cannot be
 * cancelled), so a waiter takes over within ~100 ms of the holder's
 * release or death; a release in this process wakes this process's
 * waiters at once.
 *
 * Within one storage, a registry of held names answers a second
 * acquisition of a name with ES_ERROR_BUSY at once (the kernel would let a
 * descriptor lock a byte it already holds). An in-memory database is
 * private to its storage: the registry is all there is.
 *
 * Where F_OFD_SETLK does not exist, F_SETLK (process-owned POSIX locks)
 * excludes other processes only, and closing any descriptor of the side
 * file drops all of the process's locks on it: there, one storage per
 * database per process is what works.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE 1
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "es-sqlite-private.h"

/* How often a waiter retries the lock: the takeover bound. */
#define RETRY_INTERVAL_USEC (100 * G_TIME_SPAN_MILLISECOND)

/* One lock for the registries of every storage of the process, and one
 * condition their waiters wait on: a release anywhere in the process
 * wakes them all, and each retries. */
static GMutex locks_lock;
static GCond locks_cond;

/* The offset of @name's byte: FNV-1a, 64 bits, folded into 0..2^63 - 2
 * so that the locked byte's end fits an off_t. */
static gint64
name_offset (const char *name)
{
  guint64 hash = G_GUINT64_CONSTANT (0xcbf29ce484222325);
  const guchar *p;

  for (p = (const guchar *) name; *p != '\0'; p++)
    {
      hash ^= *p;
      hash *= G_GUINT64_CONSTANT (0x100000001b3);
    }
  return (gint64) (hash % (guint64) G_MAXINT64);
}

static int
lock_byte (int    fd,
           gint64 offset,
           short  type)
{
  struct flock fl;

  memset (&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t) offset;
  fl.l_len = 1;
#ifdef F_OFD_SETLK
  return fcntl (fd, F_OFD_SETLK, &fl);
#else
  return fcntl (fd, F_SETLK, &fl);
#endif
}

/* Whether @offset is held through @self, for any name. Called with
 * locks_lock held. */
static gboolean
offset_held (EsSqliteStorage *self,
             gint64           offset)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->held);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (*(gint64 *) value == offset)
      return TRUE;
  return FALSE;
}

/* Opens the side file once per storage. Called with locks_lock held. */
static gboolean
ensure_lock_file (EsSqliteStorage  *self,
                  GError          **error)
{
  g_autofree char *name = NULL;
  int saved_errno;

  if (self->lock_fd >= 0)
    return TRUE;

  name = g_strconcat (self->path, "-eslock", NULL);
  self->lock_fd = g_open (name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (self->lock_fd >= 0)
    return TRUE;

  saved_errno = errno;
  {
    g_autofree char *display = g_filename_display_name (name);

    g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                 /* Translators: the first %s is a file path, the second why it failed */
                 _("Cannot open the subscription lock file '%s': %s"),
                 display, g_strerror (saved_errno));
  }
  return FALSE;
}

static void
set_busy_error (const char  *name,
                GError     **error)
{
  g_set_error (error, ES_ERROR, ES_ERROR_BUSY,
               /* Translators: %s is a subscription name */
               _("Subscription '%s' is consumed by another handle"), name);
}

/* One attempt. Returns TRUE when held, FALSE with *out_taken when someone
 * else holds it, FALSE with @error on a failure. Called with locks_lock
 * held. */
static gboolean
try_acquire (EsSqliteStorage  *self,
             const char       *name,
             gint64            offset,
             gboolean         *out_taken,
             GError          **error)
{
  *out_taken = FALSE;

  /* Another name of this storage on the same byte (a hash collision). */
  if (offset_held (self, offset))
    {
      *out_taken = TRUE;
      return FALSE;
    }

  if (!self->in_memory)
    {
      if (!ensure_lock_file (self, error))
        return FALSE;

      if (lock_byte (self->lock_fd, offset, F_WRLCK) != 0)
        {
          int saved_errno = errno;

          if (saved_errno == EAGAIN || saved_errno == EACCES)
            {
              *out_taken = TRUE;
              return FALSE;
            }
          g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                       /* Translators: the first %s is a subscription name, the second why
                        * it failed */
                       _("Cannot lock subscription '%s': %s"), name, g_strerror (saved_errno));
          return FALSE;
        }
    }

  g_hash_table_insert (self->held, g_strdup (name), g_memdup2 (&offset, sizeof offset));
  return TRUE;
}

static void
wake_waiters (GCancellable *cancellable,
              gpointer      data)
{
  g_mutex_lock (&locks_lock);
  g_cond_broadcast (&locks_cond);
  g_mutex_unlock (&locks_lock);
}

/* Acquires without the checks of a writable, open storage. */
static gboolean
acquire (EsSqliteStorage  *self,
         const char       *name,
         gboolean          wait,
         GCancellable     *cancellable,
         GError          **error)
{
  gint64 offset = name_offset (name);
  gulong handler = 0;
  gboolean held = FALSE;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  /* Connected before the lock is taken: a cancellable already cancelled
   * runs the callback at once, which takes the lock. */
  if (wait && cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (wake_waiters), NULL, NULL);

  g_mutex_lock (&locks_lock);

  if (self->locks_closed)
    _es_sqlite_set_closed_error (error);
  else if (g_hash_table_contains (self->held, name))
    /* It could only wait for itself. */
    set_busy_error (name, error);
  else
    {
      while (TRUE)
        {
          gboolean taken;
          gint64 end;

          if (try_acquire (self, name, offset, &taken, error))
            {
              held = TRUE;
              break;
            }
          if (!taken)
            break;
          if (!wait)
            {
              set_busy_error (name, error);
              break;
            }

          /* Woken by a release in this process, a cancellation, a close,
           * or the time: each retries at once (a wake-up for another
           * name's release costs one fcntl). */
          end = g_get_monotonic_time () + RETRY_INTERVAL_USEC;
          g_cond_wait_until (&locks_cond, &locks_lock, end);
          if (g_cancellable_set_error_if_cancelled (cancellable, error))
            break;
          if (self->locks_closed)
            {
              _es_sqlite_set_closed_error (error);
              break;
            }
        }
    }

  g_mutex_unlock (&locks_lock);

  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);
  return held;
}

/* Called with locks_lock held. */
static void
release_locked (EsSqliteStorage *self,
                const char      *name)
{
  gint64 *offset = g_hash_table_lookup (self->held, name);

  if (offset == NULL)
    return;

  if (self->lock_fd >= 0)
    lock_byte (self->lock_fd, *offset, F_UNLCK);
  g_hash_table_remove (self->held, name);
  g_cond_broadcast (&locks_cond);
}

/* The storage's writer queue must exist: the consumer of a subscription
 * saves checkpoints, which a read-only storage cannot do, so it cannot
 * acquire one either (and neither reset nor delete one). */
static gboolean
check_writable (EsSqliteStorage  *self,
                GError          **error)
{
  if (self->writer != NULL)
    return TRUE;

  if (self->read_only)
    _es_sqlite_set_read_only_error (self->where, error);
  else
    _es_sqlite_set_closed_error (error);
  return FALSE;
}

gboolean
_es_sqlite_storage_acquire_subscription (EsStorageHandle  *handle,
                                         const char       *name,
                                         gboolean          wait,
                                         GCancellable     *cancellable,
                                         GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);

  if (!check_writable (self, error))
    return FALSE;
  return acquire (self, name, wait, cancellable, error);
}

void
_es_sqlite_storage_release_subscription (EsStorageHandle *handle,
                                         const char      *name)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);

  g_mutex_lock (&locks_lock);
  release_locked (self, name);
  g_mutex_unlock (&locks_lock);
}

/* Reset and delete: nobody may consume the subscription meanwhile, this
 * storage included, so they hold it themselves while they write. */
gboolean
_es_sqlite_storage_reset_subscription (EsStorageHandle  *handle,
                                       const char       *name,
                                       gint64            position,
                                       GCancellable     *cancellable,
                                       GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  gboolean ok;

  if (!check_writable (self, error) || !acquire (self, name, FALSE, cancellable, error))
    return FALSE;
  ok = _es_sqlite_writer_reset_subscription (self, name, position, cancellable, error);
  _es_sqlite_storage_release_subscription (handle, name);
  return ok;
}

gboolean
_es_sqlite_storage_delete_subscription (EsStorageHandle  *handle,
                                        const char       *name,
                                        GCancellable     *cancellable,
                                        GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  gboolean ok;

  if (!check_writable (self, error) || !acquire (self, name, FALSE, cancellable, error))
    return FALSE;
  ok = _es_sqlite_writer_delete_subscription (self, name, cancellable, error);
  _es_sqlite_storage_release_subscription (handle, name);
  return ok;
}

void
_es_sqlite_subscriptions_init (EsSqliteStorage *self)
{
  self->lock_fd = -1;
  self->held = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

/* At close: releases every subscription held through @self (closing the
 * descriptor drops its locks), wakes its waiters, which fail as closed,
 * and refuses further acquisitions. */
void
_es_sqlite_subscriptions_close (EsSqliteStorage *self)
{
  g_mutex_lock (&locks_lock);
  self->locks_closed = TRUE;
  g_hash_table_remove_all (self->held);
  if (self->lock_fd >= 0)
    {
      close (self->lock_fd);
      self->lock_fd = -1;
    }
  g_cond_broadcast (&locks_cond);
  g_mutex_unlock (&locks_lock);
}

void
_es_sqlite_subscriptions_clear (EsSqliteStorage *self)
{
  g_clear_pointer (&self->held, g_hash_table_unref);
}

/* Tests only: the byte a name locks in the side file, so that a test can
 * hold it from outside. */
gint64
_es_sqlite_subscription_lock_offset (const char *name)
{
  return name_offset (name);
}
