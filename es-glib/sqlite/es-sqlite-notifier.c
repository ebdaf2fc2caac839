/* es-sqlite-notifier.c: tells watches about commits to an SQLite file.
 *
 * One notifier per database, on its own thread with its own main context.
 * While nobody listens (no watch, hence no subscription or live list
 * model), it has no source at all: its thread sleeps and nothing wakes
 * it. While someone listens, it learns about commits three ways:
 *  - this process's writes call es_notifier_committed(), which checks at
 *    once;
 *  - the push path: on Linux, inotify on the WAL file (IN_MODIFY) and on
 *    its directory (the WAL created, deleted or renamed), read directly
 *    from the inotify descriptor, so no rate limit or coalescing delays a
 *    commit; elsewhere a GFileMonitor on the WAL file. A WAL change may be
 *    half a commit (frames written, the WAL index not yet), so each one
 *    starts a short series of rechecks (every ms for 16 ms, then 2, 4 ... 256
 *    ms apart) that ends when the WAL stays still;
 *  - a poll every polling-interval ms, the fallback where the push path
 *    cannot see other processes (network file systems) or fails.
 * Each wake-up costs one stat() of the database file, a read of its
 * first 16 bytes and one `PRAGMA data_version` on a dedicated connection,
 * which changes only when another connection committed: no table is read
 * unless something was written. Then the new events are read once, in
 * pages, through the storage, and handed to every subscriber: watchers do
 * not multiply queries.
 *
 * A check fails when SQLite fails, when the path no longer names the file
 * opened (deleted, or replaced: SQLite keeps reading the old inode, so
 * only stat() tells) or when the file no longer starts with SQLite's
 * header (truncated or overwritten: the pages in the WAL and the caches
 * may keep reads working for a while). A failure is retried at every
 * wake-up; once checks have failed for give-up-timeout ms without a
 * success in between, the notifier gives up: it records the error, ends
 * every subscription (watches then fail with that error) and stops
 * checking. A transient failure (a lock held for a moment) never lasts
 * that long.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_SYS_INOTIFY_H
#include <sys/inotify.h>
#endif
#ifdef HAVE_SYS_VFS_H
#include <sys/vfs.h>
#endif

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "es-sqlite-private.h"

/**
 * EsSqliteNotifier:
 *
 * The [iface@Es.Notifier] of the SQLite backend, an [class@Es.StorageNotifier]. [class@Es.SqliteStreamFactory]
 * creates and starts one per database; applications rarely meet it.
 *
 * It sees this process's commits at once and other processes' commits as
 * soon as the WAL file changes (through inotify on Linux, a
 * [class@Gio.FileMonitor] elsewhere), or at the latest after
 * [property@Es.SqliteNotifier:polling-interval] milliseconds.
 *
 * It looks for commits only while someone listens (a watch, and so a
 * subscription or a live list model): with none, it has no timer and no
 * file monitor, and its thread never wakes up.
 *
 * ## When the database becomes unusable
 *
 * Each check also makes sure that the database file is still the one
 * that was opened and still an SQLite database: a file that was deleted,
 * replaced (renamed over), truncated or overwritten cannot be read
 * correctly any more, even where SQLite itself does not fail yet. Such a
 * failure, or any error of SQLite, is retried at every check. Once every
 * check has failed for [property@Es.StorageNotifier:give-up-timeout]
 * milliseconds (5 s by default), the notifier gives up: every watch of
 * the database emits [signal@Es.Watch::error] with %ES_ERROR_STORAGE,
 * naming the file and the reason, and stops
 * ([method@Es.Notifier.get_error] tells the reason too). A short failure,
 * such as a lock held for a moment, does not end the watches. Watches of
 * other databases are not affected.
 *
 * Since: 0.1
 */

/* polling-interval 0: where the push path sees other processes' commits
 * the poll is only a safety net; where it cannot (network file systems),
 * the poll is how they are found. */
#define POLLING_INTERVAL_PUSH    1000
#define POLLING_INTERVAL_NO_PUSH 100
#define DEFAULT_GIVE_UP_TIMEOUT 5000
/* Rechecks after a WAL change: this many 1 ms apart, then 2, 4 ... up to
 * MAX_RECHECK_DELAY ms apart (about 0.5 s in all). */
#define RECHECKS_AT_1_MS 16
#define MAX_RECHECK_DELAY 256

/* What every SQLite 3 database file starts with. */
static const char sqlite_header[16] = "SQLite format 3";

struct _EsSqliteNotifier
{
  EsStorageNotifier parent_instance;

  guint            polling_interval;  /* milliseconds */

  /* Set by prepare, then used only on the notifier's thread. */
  sqlite3         *db;                /* (owned) for PRAGMA data_version */
  gint64           data_version;
  gboolean         retry;             /* the last read failed: read again */
  gboolean         has_identity;      /* the file's identity is known */
  dev_t            file_dev;          /* ... the opened file's device */
  ino_t            file_ino;          /* ... and inode */
  gboolean         check_header;      /* the file has had its header */
  GMainContext    *context;           /* the notifier thread's, from attach */
  GSource         *poll;              /* (owned) (nullable) while someone listens */
  GSource         *recheck;           /* (owned) (nullable) after a WAL change */
  guint            recheck_delay;     /* ms until the next recheck */
  guint            n_rechecks;        /* since the last WAL change */
  GFileMonitor    *monitor;           /* (owned) (nullable) on the WAL file, where
                                       * inotify is unavailable */
#ifdef HAVE_SYS_INOTIFY_H
  int              inotify_fd;        /* -1 unless monitoring with inotify */
  int              dir_wd;            /* the database's directory */
  int              wal_wd;            /* the WAL file, -1 while it does not exist */
  GSource         *inotify_source;    /* (owned) (nullable) */
#endif

  gint             n_checks;          /* (atomic) */
  gint             poll_in_use;       /* (atomic) tests: the poll's interval, 0 for none */
  gint             push_in_use;       /* (atomic) tests: EsSqliteNotifierPush */
};

enum {
  PROP_0,
  PROP_POLLING_INTERVAL,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsSqliteNotifier, es_sqlite_notifier, ES_TYPE_STORAGE_NOTIFIER)

static EsSqliteStorage *
get_storage (EsSqliteNotifier *self)
{
  return ES_SQLITE_STORAGE (es_storage_notifier_get_storage (ES_STORAGE_NOTIFIER (self)));
}

/* PRAGMA data_version: changes whenever another connection commits. */
static gboolean
read_data_version (EsSqliteNotifier  *self,
                   gint64            *out_version,
                   GError           **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (self->db, "PRAGMA data_version", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      *out_version = sqlite3_column_int64 (stmt, 0);
      rc = SQLITE_OK;
    }
  sqlite3_finalize (stmt);

  if (rc != SQLITE_OK)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is SQLite's own (English) explanation */
                   _("Cannot check the event database for changes: %s"),
                   sqlite3_errmsg (self->db));
      return FALSE;
    }
  return TRUE;
}

/* Whether the file at the path is still the one opened, and still an
 * SQLite database. On failure, @reason says why, for a message. */
static gboolean
check_file (EsSqliteNotifier  *self,
            const char        *path,
            char             **reason)
{
  GStatBuf st;
  char header[sizeof sqlite_header];
  sqlite3_file *file = NULL;
  int rc;

  if (g_stat (path, &st) != 0)
    {
      int saved_errno = errno;

      if (saved_errno == ENOENT)
        *reason = g_strdup (_("the file was deleted"));
      else
        *reason = g_strdup (g_strerror (saved_errno));
      return FALSE;
    }
  if (self->has_identity && (st.st_dev != self->file_dev || st.st_ino != self->file_ino))
    {
      *reason = g_strdup (_("the file was replaced by another file"));
      return FALSE;
    }
  if (self->db == NULL)
    return TRUE;

  /* Read through the notifier connection's own file: opening and closing
   * another descriptor on the database would drop every POSIX lock SQLite
   * holds on it in this process. A short read (a truncated file) fills
   * the rest with zeroes. */
  if (sqlite3_file_control (self->db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == NULL || file->pMethods == NULL)
    return TRUE;
  rc = file->pMethods->xRead (file, header, sizeof header, 0);
  if (rc == SQLITE_OK && memcmp (header, sqlite_header, sizeof header) == 0)
    {
      /* A database not yet written has no header: checked once it has. */
      self->check_header = TRUE;
      return TRUE;
    }
  if (self->check_header)
    {
      *reason = g_strdup (_("the file is no longer an SQLite database "
                            "(it was truncated or overwritten)"));
      return FALSE;
    }
  return TRUE;
}

/* Remembers which file the notifier opened, to notice when the path
 * names another one. Runs in start(), right after opening it. */
static void
remember_file (EsSqliteNotifier *self,
               const char       *path)
{
  GStatBuf st;
  char *reason = NULL;

  if (g_stat (path, &st) != 0)
    return;
  self->has_identity = TRUE;
  self->file_dev = st.st_dev;
  self->file_ino = st.st_ino;

  /* Sets check_header when the file has its header already. */
  check_file (self, path, &reason);
  g_free (reason);
}

/* Counts a failed or successful check with the base class, which gives
 * up after give-up-timeout ms of failures in a row. */
static void
record_check (EsSqliteNotifier *self,
              const char       *reason)
{
  if (reason == NULL)
    es_storage_notifier_report_success (ES_STORAGE_NOTIFIER (self));
  else
    es_storage_notifier_report_failure (ES_STORAGE_NOTIFIER (self), reason);
}

static GError *
es_sqlite_notifier_give_up_error (EsStorageNotifier *notifier,
                                  const char        *reason)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  const char *path = _es_sqlite_storage_get_file_path (get_storage (self));

  return g_error_new (ES_ERROR, ES_ERROR_STORAGE,
                      /* Translators: the first %s is a file name, the number
                       * milliseconds, the second %s the reason */
                      _("The event database '%s' cannot be used any more (every check "
                        "failed for %u ms): %s"),
                      path != NULL ? path : ":memory:",
                      es_storage_notifier_get_give_up_timeout (notifier), reason);
}

static void
check (EsSqliteNotifier *self,
       gboolean          force)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *reason = NULL;
  const char *path = _es_sqlite_storage_get_file_path (get_storage (self));
  gint64 version = self->data_version;

  g_atomic_int_inc (&self->n_checks);

  if (path != NULL && !check_file (self, path, &reason))
    {
      g_debug ("The event database %s cannot be used: %s", path, reason);
      record_check (self, reason);
      return;
    }

  if (self->db != NULL && read_data_version (self, &version, &error))
    {
      if (version != self->data_version)
        force = TRUE;
      self->data_version = version;
    }
  else if (error != NULL)
    {
      g_debug ("%s", error->message);
      reason = g_strdup (error->message);
      g_clear_error (&error);
      force = TRUE;
    }

  if (force || self->retry)
    {
      self->retry = FALSE;
      if (!es_storage_notifier_deliver (ES_STORAGE_NOTIFIER (self), &error))
        {
          self->retry = TRUE;
          if (reason == NULL)
            reason = g_strdup (error->message);
        }
    }
  record_check (self, reason);
}

static gboolean
recheck_cb (gpointer user_data)
{
  EsSqliteNotifier *self = user_data;

  g_clear_pointer (&self->recheck, g_source_unref);
  check (self, FALSE);

  /* The WAL stayed still since the last change: look again a little
   * later: every millisecond for the first RECHECKS_AT_1_MS (the usual
   * gap between a commit's frames and its WAL index, also in a process
   * that just started), then at doubling delays up to MAX_RECHECK_DELAY
   * (an fsync in between). */
  self->n_rechecks++;
  if (self->n_rechecks >= RECHECKS_AT_1_MS)
    self->recheck_delay *= 2;
  if (self->recheck_delay <= MAX_RECHECK_DELAY)
    {
      self->recheck = g_timeout_source_new (self->recheck_delay);
      g_source_set_callback (self->recheck, recheck_cb, self, NULL);
      g_source_set_static_name (self->recheck, "[es-glib] notifier recheck");
      g_source_attach (self->recheck, self->context);
    }
  return G_SOURCE_REMOVE;
}

static void
stop_rechecks (EsSqliteNotifier *self)
{
  if (self->recheck != NULL)
    {
      g_source_destroy (self->recheck);
      g_clear_pointer (&self->recheck, g_source_unref);
    }
}

/* On the notifier's thread: the WAL file (or the database file) changed.
 * A change may be half a commit (the frames written, the WAL index not yet
 * updated; with durability full, an fsync in between), or a commit may
 * follow shortly that shows no change of its own to the push path: look
 * now, then again after 1, 2, 4 ... ms while the WAL stays still. */
static void
wal_changed (EsSqliteNotifier *self)
{
  stop_rechecks (self);
  check (self, FALSE);

  self->recheck_delay = 1;
  self->n_rechecks = 0;
  self->recheck = g_timeout_source_new (self->recheck_delay);
  g_source_set_callback (self->recheck, recheck_cb, self, NULL);
  g_source_set_static_name (self->recheck, "[es-glib] notifier recheck");
  g_source_attach (self->recheck, self->context);
}

static gboolean
poll_cb (gpointer user_data)
{
  check (user_data, FALSE);
  return G_SOURCE_CONTINUE;
}

/* After es_notifier_committed(): a commit of ours is known to be there. */
static void
es_sqlite_notifier_check (EsStorageNotifier *notifier)
{
  check (ES_SQLITE_NOTIFIER (notifier), TRUE);
}

static void
wal_monitor_changed_cb (GFileMonitor      *monitor,
                        GFile             *file,
                        GFile             *other_file,
                        GFileMonitorEvent  event_type,
                        gpointer           user_data)
{
  /* Emitted in the notifier's context, where the monitor was made. */
  wal_changed (user_data);
}

/* Whether the file system holding @path lets inotify see what other
 * processes write: not on network or FUSE file systems, where writes made
 * on another machine (or through the server) raise no event here. */
static gboolean
file_system_is_local (const char *path)
{
#if defined(HAVE_SYS_INOTIFY_H) && defined(HAVE_SYS_VFS_H)
  g_autofree char *dir = g_path_get_dirname (path);
  struct statfs buf;

  if (statfs (dir, &buf) != 0)
    return FALSE;

  switch ((guint32) buf.f_type)
    {
    case 0x6969:      /* NFS_SUPER_MAGIC */
    case 0x517B:      /* SMB_SUPER_MAGIC */
    case 0xFF534D42:  /* CIFS_MAGIC_NUMBER */
    case 0xFE534D42:  /* SMB2_MAGIC_NUMBER */
    case 0x65735546:  /* FUSE_SUPER_MAGIC */
    case 0x01021997:  /* V9FS_MAGIC */
    case 0x00C36400:  /* CEPH_SUPER_MAGIC */
    case 0x5346414F:  /* AFS_SUPER_MAGIC */
    case 0x6B414653:  /* AFS_FS_MAGIC */
    case 0x73757245:  /* CODA_SUPER_MAGIC */
    case 0x01161970:  /* GFS2_MAGIC */
    case 0x7461636F:  /* OCFS2_SUPER_MAGIC */
      return FALSE;
    default:
      return TRUE;
    }
#else
  (void) path;
  return FALSE;
#endif
}

#ifdef HAVE_SYS_INOTIFY_H
static void
inotify_watch_wal (EsSqliteNotifier *self,
                   const char       *path)
{
  g_autofree char *wal_path = g_strconcat (path, "-wal", NULL);

  /* The same inode gives the same watch; a new one (the WAL deleted and
   * created again) a new watch, the old one having ended (IN_IGNORED). */
  self->wal_wd = inotify_add_watch (self->inotify_fd, wal_path, IN_MODIFY);
}

static gboolean
inotify_cb (gint         fd,
            GIOCondition condition,
            gpointer     user_data)
{
  EsSqliteNotifier *self = user_data;
  const char *path = _es_sqlite_storage_get_file_path (get_storage (self));
  g_autofree char *db_name = g_path_get_basename (path);
  g_autofree char *wal_name = g_strconcat (db_name, "-wal", NULL);
  gboolean changed = FALSE, rewatch = FALSE;
  union {
    struct inotify_event event;
    char bytes[4096];
  } buf;

  /* Everything queued, at once: one check covers it. */
  for (;;)
    {
      ssize_t len = read (fd, &buf, sizeof buf);
      const char *p;

      if (len <= 0)
        break;
      for (p = buf.bytes; p < buf.bytes + len; )
        {
          const struct inotify_event *event = (const struct inotify_event *) (gconstpointer) p;

          if (event->mask & IN_Q_OVERFLOW)
            changed = rewatch = TRUE;
          else if (event->wd == self->wal_wd && self->wal_wd != -1)
            {
              if (event->mask & IN_IGNORED)
                self->wal_wd = -1;
              else
                changed = TRUE;
            }
          else if (event->wd == self->dir_wd && event->len > 0)
            {
              /* The WAL created (another process opened the database
               * first) or gone; the database file deleted or replaced
               * (the check tells). */
              if (strcmp (event->name, wal_name) == 0)
                changed = rewatch = TRUE;
              else if (strcmp (event->name, db_name) == 0)
                changed = TRUE;
            }
          p += sizeof (struct inotify_event) + event->len;
        }
    }

  if (rewatch)
    inotify_watch_wal (self, path);
  if (changed)
    wal_changed (self);
  return G_SOURCE_CONTINUE;
}

static gboolean
start_inotify (EsSqliteNotifier *self,
               const char       *path)
{
  g_autofree char *dir = g_path_get_dirname (path);

  self->inotify_fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (self->inotify_fd < 0)
    {
      g_debug ("inotify_init1: %s; using a file monitor", g_strerror (errno));
      return FALSE;
    }
  self->dir_wd = inotify_add_watch (self->inotify_fd, dir,
                                    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                    IN_ONLYDIR);
  if (self->dir_wd < 0)
    {
      /* Out of watches (fs.inotify.max_user_watches), say. */
      g_debug ("inotify_add_watch (%s): %s; using a file monitor", dir, g_strerror (errno));
      close (self->inotify_fd);
      self->inotify_fd = -1;
      return FALSE;
    }
  inotify_watch_wal (self, path);

  self->inotify_source = g_unix_fd_source_new (self->inotify_fd, G_IO_IN);
  g_source_set_callback (self->inotify_source, G_SOURCE_FUNC (inotify_cb), self, NULL);
  g_source_set_static_name (self->inotify_source, "[es-glib] notifier inotify");
  g_source_attach (self->inotify_source, self->context);
  return TRUE;
}

static void
stop_inotify (EsSqliteNotifier *self)
{
  if (self->inotify_source != NULL)
    {
      g_source_destroy (self->inotify_source);
      g_clear_pointer (&self->inotify_source, g_source_unref);
    }
  if (self->inotify_fd >= 0)
    close (self->inotify_fd);
  self->inotify_fd = -1;
  self->dir_wd = -1;
  self->wal_wd = -1;
}
#endif

/* On the notifier's thread, when the first subscriber arrives: the push
 * path and the poll. */
static void
start_looking (EsSqliteNotifier *self)
{
  const char *path = _es_sqlite_storage_get_file_path (get_storage (self));
  EsSqliteNotifierPush push = ES_SQLITE_NOTIFIER_PUSH_NONE;

  if (path != NULL)
    {
#ifdef HAVE_SYS_INOTIFY_H
      if (start_inotify (self, path))
        push = ES_SQLITE_NOTIFIER_PUSH_INOTIFY;
#endif
      if (push == ES_SQLITE_NOTIFIER_PUSH_NONE)
        {
          g_autofree char *wal_path = g_strconcat (path, "-wal", NULL);
          g_autoptr(GFile) wal = g_file_new_for_path (wal_path);

          /* Where file monitoring is unavailable too, the poll does the
           * job. */
          self->monitor = g_file_monitor_file (wal, G_FILE_MONITOR_NONE, NULL, NULL);
          if (self->monitor != NULL)
            {
              g_file_monitor_set_rate_limit (self->monitor, 0);
              g_signal_connect (self->monitor, "changed", G_CALLBACK (wal_monitor_changed_cb),
                                self);
              push = ES_SQLITE_NOTIFIER_PUSH_FILE_MONITOR;
            }
        }
    }
  g_atomic_int_set (&self->push_in_use, push);

  self->poll = g_timeout_source_new (self->polling_interval);
  g_source_set_callback (self->poll, poll_cb, self, NULL);
  g_source_set_static_name (self->poll, "[es-glib] notifier poll");
  g_source_attach (self->poll, self->context);
  g_atomic_int_set (&self->poll_in_use, (gint) self->polling_interval);

  /* What other processes committed while nobody listened. */
  check (self, FALSE);
}

/* On the notifier's thread, when the last subscriber leaves (or the
 * notifier stops): no source is left, the thread sleeps. */
static void
stop_looking (EsSqliteNotifier *self)
{
  if (self->monitor != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->monitor, self);
      g_file_monitor_cancel (self->monitor);
      g_clear_object (&self->monitor);
    }
#ifdef HAVE_SYS_INOTIFY_H
  stop_inotify (self);
#endif
  stop_rechecks (self);
  if (self->poll != NULL)
    {
      g_source_destroy (self->poll);
      g_clear_pointer (&self->poll, g_source_unref);
    }
  g_atomic_int_set (&self->poll_in_use, 0);
  g_atomic_int_set (&self->push_in_use, ES_SQLITE_NOTIFIER_PUSH_NONE);
  self->retry = FALSE;
}

static void
es_sqlite_notifier_listening_changed (EsStorageNotifier *notifier,
                                      gboolean           listening)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);

  if (listening)
    start_looking (self);
  else
    {
      stop_looking (self);
      /* Nobody is left to tell about failures: the give-up time counts
       * only while someone listens (a new subscriber's first check starts
       * over). */
      es_storage_notifier_report_success (notifier);
    }
}

/* On the caller's thread, in start(): the connection for data_version,
 * and the identity of the file. */
static gboolean
es_sqlite_notifier_prepare (EsStorageNotifier  *notifier,
                            GCancellable       *cancellable,
                            GError            **error)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  const char *path = _es_sqlite_storage_get_file_path (get_storage (self));

  self->db = _es_sqlite_storage_open_reader (get_storage (self), error);
  if (self->db == NULL || !read_data_version (self, &self->data_version, error))
    {
      g_clear_pointer (&self->db, sqlite3_close);
      return FALSE;
    }

  if (path != NULL)
    remember_file (self, path);
  return TRUE;
}

/* On the notifier's thread: nothing to look at until someone listens
 * (listening_changed). */
static void
es_sqlite_notifier_attach (EsStorageNotifier *notifier,
                           GMainContext      *context)
{
  ES_SQLITE_NOTIFIER (notifier)->context = context;
}

static void
es_sqlite_notifier_detach (EsStorageNotifier *notifier)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);

  /* Normally done by listening_changed already. Also runs on the caller's
   * thread, under the base's lock, when start() fails: nothing here may
   * call back into the base. */
  stop_looking (self);
  g_clear_pointer (&self->db, sqlite3_close);
}

guint
_es_sqlite_notifier_get_n_checks (EsSqliteNotifier *self)
{
  return (guint) g_atomic_int_get (&self->n_checks);
}

guint
_es_sqlite_notifier_get_poll_in_use (EsSqliteNotifier *self)
{
  return (guint) g_atomic_int_get (&self->poll_in_use);
}

EsSqliteNotifierPush
_es_sqlite_notifier_get_push_in_use (EsSqliteNotifier *self)
{
  return (EsSqliteNotifierPush) g_atomic_int_get (&self->push_in_use);
}

static void
es_sqlite_notifier_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (object);

  switch (prop_id)
    {
    case PROP_POLLING_INTERVAL:
      g_value_set_uint (value, self->polling_interval);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_notifier_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (object);

  switch (prop_id)
    {
    case PROP_POLLING_INTERVAL:
      self->polling_interval = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_notifier_constructed (GObject *object)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (object);
  const char *path;

  G_OBJECT_CLASS (es_sqlite_notifier_parent_class)->constructed (object);

  g_return_if_fail (ES_IS_SQLITE_STORAGE (
    es_storage_notifier_get_storage (ES_STORAGE_NOTIFIER (object))));

  /* 0: chosen by where the database lives. No other process can write to
   * an in-memory database. */
  path = _es_sqlite_storage_get_file_path (get_storage (self));
  if (self->polling_interval == 0)
    self->polling_interval = path == NULL || file_system_is_local (path)
                             ? POLLING_INTERVAL_PUSH : POLLING_INTERVAL_NO_PUSH;
}

static void
es_sqlite_notifier_finalize (GObject *object)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (object);

  g_clear_pointer (&self->db, sqlite3_close);

  G_OBJECT_CLASS (es_sqlite_notifier_parent_class)->finalize (object);
}

static void
es_sqlite_notifier_class_init (EsSqliteNotifierClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  EsStorageNotifierClass *notifier_class = ES_STORAGE_NOTIFIER_CLASS (klass);

  _es_i18n_init ();

  object_class->get_property = es_sqlite_notifier_get_property;
  object_class->set_property = es_sqlite_notifier_set_property;
  object_class->constructed = es_sqlite_notifier_constructed;
  object_class->finalize = es_sqlite_notifier_finalize;

  notifier_class->prepare = es_sqlite_notifier_prepare;
  notifier_class->attach = es_sqlite_notifier_attach;
  notifier_class->detach = es_sqlite_notifier_detach;
  notifier_class->check = es_sqlite_notifier_check;
  notifier_class->give_up_error = es_sqlite_notifier_give_up_error;
  notifier_class->listening_changed = es_sqlite_notifier_listening_changed;

  /**
   * EsSqliteNotifier:polling-interval:
   *
   * How often, in milliseconds, the database is checked for other
   * processes' commits when the push path (inotify on Linux, a file
   * monitor elsewhere) has not already told, while someone listens: with
   * no watch there is no poll at all.
   *
   * 0, the default, chooses by where the database lives: 1000 ms on a
   * local file system on Linux (and for an in-memory database), where the
   * push path sees every commit and the poll is only a safety net; 100 ms
   * where it cannot see other processes' commits: network and FUSE file
   * systems (NFS, SMB/CIFS, 9p, Ceph, AFS, Coda, GFS2, OCFS2, FUSE, found
   * with statfs()) and systems without inotify. Reading the property
   * gives the interval chosen.
   *
   * A check also looks for the failures that
   * [property@Es.StorageNotifier:give-up-timeout] counts (5 s by default
   * here): a file deleted, replaced, truncated or overwritten, or an error
   * of SQLite; so the notifier gives up at most one polling interval after
   * that time (or after the push path saw the change). Nobody listening,
   * nothing is checked, and nothing gives up.
   *
   * Since: 0.1
   */
  properties[PROP_POLLING_INTERVAL] =
    g_param_spec_uint ("polling-interval", NULL, NULL, 0, 60000, 0,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_sqlite_notifier_init (EsSqliteNotifier *self)
{
  self->polling_interval = 0;
#ifdef HAVE_SYS_INOTIFY_H
  self->inotify_fd = -1;
  self->dir_wd = -1;
  self->wal_wd = -1;
#endif
  _es_storage_notifier_set_default_give_up_timeout (ES_STORAGE_NOTIFIER (self),
                                                    DEFAULT_GIVE_UP_TIMEOUT);
}

/**
 * es_sqlite_notifier_new:
 * @storage: the storage whose database to watch
 * @polling_interval: milliseconds between checks for other processes'
 *   commits while someone listens, or 0 to choose by where the database
 *   lives (see [property@Es.SqliteNotifier:polling-interval])
 *
 * Creates a notifier for @storage's database; start it with
 * [method@Es.Notifier.start].
 *
 * Returns: (transfer full): a new notifier
 *
 * Since: 0.1
 */
EsSqliteNotifier *
es_sqlite_notifier_new (EsSqliteStorage *storage,
                        guint            polling_interval)
{
  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (storage), NULL);
  g_return_val_if_fail (polling_interval <= 60000, NULL);

  return g_object_new (ES_TYPE_SQLITE_NOTIFIER,
                       "storage", storage,
                       "polling-interval", polling_interval,
                       NULL);
}

/**
 * es_sqlite_notifier_get_polling_interval:
 * @self: an [class@Es.SqliteNotifier]
 *
 * Gets the polling interval: the one given, or the one chosen when 0 was
 * given.
 *
 * Returns: milliseconds between checks while someone listens
 *
 * Since: 0.1
 */
guint
es_sqlite_notifier_get_polling_interval (EsSqliteNotifier *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_NOTIFIER (self), 0);

  return self->polling_interval;
}
