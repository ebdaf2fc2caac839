/* es-sqlite-notifier.c: tells watches about commits to an SQLite file.
 *
 * One notifier per database, on its own thread with its own main context.
 * It learns about commits three ways:
 *  - this process's writes call es_notifier_committed(), which checks at
 *    once;
 *  - a GFileMonitor on the WAL file wakes it when another process writes;
 *  - a poll every polling-interval ms is the fallback where file monitoring
 *    is unavailable or slow.
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

#include <glib/gstdio.h>

#include "es-sqlite-private.h"

/**
 * EsSqliteNotifier:
 *
 * The [iface@Es.Notifier] of the SQLite backend. [class@Es.SqliteStreamFactory]
 * creates and starts one per database; applications rarely meet it.
 *
 * It sees this process's commits at once and other processes' commits as
 * soon as the WAL file changes (through [class@Gio.FileMonitor]), or at the
 * latest after [property@Es.SqliteNotifier:polling-interval] milliseconds.
 *
 * ## When the database becomes unusable
 *
 * Each check also makes sure that the database file is still the one
 * that was opened and still an SQLite database: a file that was deleted,
 * replaced (renamed over), truncated or overwritten cannot be read
 * correctly any more, even where SQLite itself does not fail yet. Such a
 * failure, or any error of SQLite, is retried at every check. Once every
 * check has failed for [property@Es.SqliteNotifier:give-up-timeout]
 * milliseconds (5 s by default), the notifier gives up: every watch of
 * the database emits [signal@Es.Watch::error] with %ES_ERROR_STORAGE,
 * naming the file and the reason, and stops
 * ([method@Es.Notifier.get_error] tells the reason too). A short failure,
 * such as a lock held for a moment, does not end the watches. Watches of
 * other databases are not affected.
 *
 * Since: 0.1
 */

#define DEFAULT_POLLING_INTERVAL 100
#define DEFAULT_GIVE_UP_TIMEOUT 5000

/* What every SQLite 3 database file starts with. */
static const char sqlite_header[16] = "SQLite format 3";

struct _EsSqliteNotifier
{
  GObject          parent_instance;

  EsSqliteStorage *storage;           /* (owned) */
  guint            polling_interval;  /* milliseconds */
  guint            give_up_timeout;   /* milliseconds, 0 for never */

  GMutex           state_lock;
  gboolean         started;           /* guarded by state_lock */
  gboolean         stopped;           /* guarded by state_lock */
  GError          *error;             /* (owned) (nullable) set once, guarded by state_lock */
  GThread         *thread;            /* (owned) guarded by state_lock */
  GMainContext    *context;           /* (owned) the notifier thread's */
  GMainLoop       *loop;              /* (owned) */

  /* Used only on the notifier's thread once it runs. */
  sqlite3         *db;                /* (owned) for PRAGMA data_version */
  gint64           data_version;
  gboolean         retry;             /* the last read failed: read again */
  gboolean         has_identity;      /* the file's identity is known */
  dev_t            file_dev;          /* ... the opened file's device */
  ino_t            file_ino;          /* ... and inode */
  gboolean         check_header;      /* the file has had its header */
  gint64           failing_since;     /* monotonic µs of the first failed check in a row, 0 if none */
  gboolean         gave_up;           /* no more checks */

  gint             check_scheduled;   /* (atomic) an idle check is pending */
  guint            rechecks;          /* notifier thread: follow-ups after a WAL change */
  gint             n_checks;          /* (atomic) */

  EsSubscribers    subs;              /* with the cursor of deliveries */
};

enum {
  PROP_0,
  PROP_STORAGE,
  PROP_POLLING_INTERVAL,
  PROP_GIVE_UP_TIMEOUT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void notifier_iface_init (EsNotifierInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsSqliteNotifier, es_sqlite_notifier, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (ES_TYPE_NOTIFIER, notifier_iface_init))

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

/* Reads what was committed after the cursor and hands it to every
 * subscriber. Runs on the notifier's thread. */
static gboolean
deliver_new_events (EsSqliteNotifier  *self,
                    GError           **out_error)
{
  EsStorageHandle *storage = ES_STORAGE_HANDLE (self->storage);
  g_autoptr(GError) error = NULL;

  g_rec_mutex_lock (&self->subs.lock);

  if (!_es_subscribers_any (&self->subs))
    {
      /* Nobody listens: just move the cursor, reading nothing. */
      if (!es_storage_handle_get_version (storage, NULL, &self->subs.cursor, NULL, &error))
        self->retry = TRUE;
    }
  else
    {
      for (;;)
        {
          g_autoptr(GPtrArray) events = NULL;

          events = es_storage_handle_read_page (storage, NULL, self->subs.cursor, NULL,
                                                ES_READ_PAGE_SIZE, NULL, &error);
          if (events == NULL)
            {
              self->retry = TRUE;
              break;
            }
          if (events->len == 0)
            break;

          self->subs.cursor = es_stored_event_get_sequence_id (g_ptr_array_index (events,
                                                                             events->len - 1));
          _es_subscribers_emit (&self->subs, events);

          if (events->len < ES_READ_PAGE_SIZE)
            break;
        }
    }

  g_rec_mutex_unlock (&self->subs.lock);

  /* A closed storage is the factory closing: stop() follows. Anything
   * else is retried at the next wake-up. */
  if (error == NULL || g_error_matches (error, ES_ERROR, ES_ERROR_CLOSED))
    return TRUE;

  g_debug ("Reading new events failed, will retry: %s", error->message);
  g_propagate_error (out_error, g_steal_pointer (&error));
  return FALSE;
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

/* Every subscription ends, with @error as the reason, and the notifier
 * does no more checks. Runs on the notifier's thread. */
static void
give_up (EsSqliteNotifier *self,
         GError           *error)
{
  g_mutex_lock (&self->state_lock);
  if (self->error == NULL && !self->stopped)
    self->error = g_error_copy (error);
  g_mutex_unlock (&self->state_lock);

  self->gave_up = TRUE;
  g_main_loop_quit (self->loop);
  _es_subscribers_close (&self->subs);
}

/* Counts a failed or successful check; past the give-up timeout of
 * failures in a row, gives up. */
static void
record_check (EsSqliteNotifier *self,
              const char       *reason)
{
  const char *path = _es_sqlite_storage_get_file_path (self->storage);
  gint64 now;

  if (reason == NULL)
    {
      self->failing_since = 0;
      return;
    }

  now = g_get_monotonic_time ();
  if (self->failing_since == 0)
    self->failing_since = now;

  if (self->give_up_timeout > 0 &&
      now - self->failing_since >= (gint64) self->give_up_timeout * G_TIME_SPAN_MILLISECOND)
    {
      g_autoptr(GError) error = NULL;

      error = g_error_new (ES_ERROR, ES_ERROR_STORAGE,
                           /* Translators: the first %s is a file name, the number
                            * milliseconds, the second %s the reason */
                           _("The event database '%s' cannot be used any more (every check "
                             "failed for %u ms): %s"),
                           path != NULL ? path : ":memory:", self->give_up_timeout, reason);
      give_up (self, error);
    }
}

static gboolean recheck_cb (gpointer user_data);

static void
check (EsSqliteNotifier *self,
       gboolean          force)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *reason = NULL;
  const char *path = _es_sqlite_storage_get_file_path (self->storage);
  gint64 version = self->data_version;

  if (self->gave_up)
    return;

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
      self->rechecks = 0;
      self->retry = FALSE;
      if (!deliver_new_events (self, &error) && reason == NULL)
        reason = g_strdup (error->message);
      record_check (self, reason);
    }
  else if (self->rechecks > 0)
    {
      GSource *source;

      /* The WAL changed but no commit shows yet: the writer is between
       * writing its frames and committing. Look again shortly rather
       * than waiting for the next poll. */
      self->rechecks--;
      source = g_timeout_source_new (2);
      g_source_set_callback (source, recheck_cb, self, NULL);
      g_source_set_static_name (source, "[es-glib] notifier recheck");
      g_source_attach (source, self->context);
      g_source_unref (source);
      record_check (self, reason);
    }
  else
    record_check (self, reason);
}

static gboolean
recheck_cb (gpointer user_data)
{
  check (user_data, FALSE);
  return G_SOURCE_REMOVE;
}

static gboolean
poll_cb (gpointer user_data)
{
  check (user_data, FALSE);
  return G_SOURCE_CONTINUE;
}

static gboolean
check_now_cb (gpointer user_data)
{
  EsSqliteNotifier *self = user_data;

  g_atomic_int_set (&self->check_scheduled, FALSE);
  check (self, TRUE);
  return G_SOURCE_REMOVE;
}

static gboolean
wal_check_cb (gpointer user_data)
{
  EsSqliteNotifier *self = user_data;

  g_atomic_int_set (&self->check_scheduled, FALSE);
  self->rechecks = 10;
  check (self, FALSE);
  return G_SOURCE_REMOVE;
}

/* Asks for a check on the notifier's thread; requests coalesce. A
 * commit of ours is known to be there; a WAL change may be half done. */
static void
schedule_check (EsSqliteNotifier *self,
                gboolean          committed)
{
  GSource *source;

  if (!g_atomic_int_compare_and_exchange (&self->check_scheduled, FALSE, TRUE))
    return;

  source = g_idle_source_new ();
  g_source_set_callback (source, committed ? check_now_cb : wal_check_cb, self, NULL);
  g_source_set_static_name (source, "[es-glib] notifier check");
  g_source_attach (source, self->context);
  g_source_unref (source);
}

static void
wal_changed_cb (GFileMonitor      *monitor,
                GFile             *file,
                GFile             *other_file,
                GFileMonitorEvent  event_type,
                gpointer           user_data)
{
  /* data_version tells whether it was a commit. */
  schedule_check (user_data, FALSE);
}

static gpointer
notifier_thread (gpointer data)
{
  EsSqliteNotifier *self = data;
  g_autoptr(GFileMonitor) monitor = NULL;
  const char *path = _es_sqlite_storage_get_file_path (self->storage);
  GSource *poll;

  g_main_context_push_thread_default (self->context);

  poll = g_timeout_source_new (self->polling_interval);
  g_source_set_callback (poll, poll_cb, self, NULL);
  g_source_set_static_name (poll, "[es-glib] notifier poll");
  g_source_attach (poll, self->context);

  if (path != NULL)
    {
      g_autofree char *wal_path = g_strconcat (path, "-wal", NULL);
      g_autoptr(GFile) wal = g_file_new_for_path (wal_path);

      /* Where file monitoring is unavailable, the poll does the job. */
      monitor = g_file_monitor_file (wal, G_FILE_MONITOR_NONE, NULL, NULL);
      if (monitor != NULL)
        {
          g_file_monitor_set_rate_limit (monitor, 0);
          g_signal_connect (monitor, "changed", G_CALLBACK (wal_changed_cb), self);
        }
    }

  g_main_loop_run (self->loop);

  if (monitor != NULL)
    {
      g_signal_handlers_disconnect_by_data (monitor, self);
      g_file_monitor_cancel (monitor);
    }
  g_source_destroy (poll);
  g_source_unref (poll);
  /* Drop sources still queued (a last check) before the context goes. */
  while (g_main_context_iteration (self->context, FALSE))
    ;
  g_main_context_pop_thread_default (self->context);

  g_clear_pointer (&self->db, sqlite3_close);
  return NULL;
}

static gboolean
es_sqlite_notifier_start (EsNotifier    *notifier,
                          GCancellable  *cancellable,
                          GError       **error)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  gint64 cursor = 0;
  gboolean ok = FALSE;

  g_mutex_lock (&self->state_lock);

  if (self->stopped)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED,
                           _("The notifier was stopped and cannot start again"));
      goto out;
    }
  if (self->started)
    {
      ok = TRUE;
      goto out;
    }

  self->db = _es_sqlite_storage_open_reader (self->storage, error);
  if (self->db == NULL ||
      !read_data_version (self, &self->data_version, error) ||
      !es_storage_handle_get_version (ES_STORAGE_HANDLE (self->storage), NULL, &cursor,
                                      cancellable, error))
    {
      g_clear_pointer (&self->db, sqlite3_close);
      goto out;
    }

  _es_subscribers_set_cursor (&self->subs, cursor);
  if (_es_sqlite_storage_get_file_path (self->storage) != NULL)
    remember_file (self, _es_sqlite_storage_get_file_path (self->storage));

  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  self->thread = g_thread_new ("es-notifier", notifier_thread, self);
  self->started = TRUE;
  ok = TRUE;

out:
  g_mutex_unlock (&self->state_lock);
  return ok;
}

static void
es_sqlite_notifier_stop (EsNotifier *notifier)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  GThread *thread = NULL;

  g_mutex_lock (&self->state_lock);
  if (!self->stopped)
    {
      self->stopped = TRUE;
      thread = g_steal_pointer (&self->thread);
    }
  g_mutex_unlock (&self->state_lock);

  if (thread != NULL)
    _es_notifier_thread_stop (thread, self->context, self->loop);

  /* Every subscription ends: watches learn it through their destroy
   * notify and stop. */
  _es_subscribers_remove_all (&self->subs);
}

static guint
es_sqlite_notifier_subscribe (EsNotifier     *notifier,
                              EsNotifierFunc  func,
                              gpointer        user_data,
                              GDestroyNotify  destroy)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);

  return _es_subscribers_add (&self->subs, func, user_data, destroy);
}

static void
es_sqlite_notifier_unsubscribe (EsNotifier *notifier,
                                guint       subscription_id)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);

  _es_subscribers_remove (&self->subs, subscription_id);
}

static gint64
es_sqlite_notifier_get_last_sequence_id (EsNotifier *notifier)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);

  return _es_subscribers_get_cursor (&self->subs);
}

static void
es_sqlite_notifier_committed (EsNotifier *notifier)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  gboolean running;

  g_mutex_lock (&self->state_lock);
  running = self->started && !self->stopped && self->error == NULL;
  g_mutex_unlock (&self->state_lock);

  /* With nobody subscribed there is nobody to wake: the next poll moves
   * the cursor, and a subscriber arriving before that only gets events it
   * also reads from the history, which watches drop. This keeps writes
   * without watchers free of a check per commit. */
  running = running && _es_subscribers_any (&self->subs);

  if (running)
    schedule_check (self, TRUE);
}

static const GError *
es_sqlite_notifier_get_error (EsNotifier *notifier)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  const GError *error;

  /* Set once, freed only with the notifier. */
  g_mutex_lock (&self->state_lock);
  error = self->error;
  g_mutex_unlock (&self->state_lock);
  return error;
}

static void
notifier_iface_init (EsNotifierInterface *iface)
{
  iface->start = es_sqlite_notifier_start;
  iface->stop = es_sqlite_notifier_stop;
  iface->subscribe = es_sqlite_notifier_subscribe;
  iface->unsubscribe = es_sqlite_notifier_unsubscribe;
  iface->get_last_sequence_id = es_sqlite_notifier_get_last_sequence_id;
  iface->committed = es_sqlite_notifier_committed;
  iface->get_error = es_sqlite_notifier_get_error;
}

guint
_es_sqlite_notifier_get_n_checks (EsSqliteNotifier *self)
{
  return (guint) g_atomic_int_get (&self->n_checks);
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
    case PROP_STORAGE:
      g_value_set_object (value, self->storage);
      break;
    case PROP_POLLING_INTERVAL:
      g_value_set_uint (value, self->polling_interval);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      g_value_set_uint (value, self->give_up_timeout);
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
    case PROP_STORAGE:
      self->storage = g_value_dup_object (value);
      break;
    case PROP_POLLING_INTERVAL:
      self->polling_interval = g_value_get_uint (value);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      self->give_up_timeout = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_notifier_dispose (GObject *object)
{
  es_sqlite_notifier_stop (ES_NOTIFIER (object));

  G_OBJECT_CLASS (es_sqlite_notifier_parent_class)->dispose (object);
}

static void
es_sqlite_notifier_finalize (GObject *object)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (object);

  _es_subscribers_clear (&self->subs);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->db, sqlite3_close);
  g_clear_object (&self->storage);
  g_clear_error (&self->error);
  g_mutex_clear (&self->state_lock);

  G_OBJECT_CLASS (es_sqlite_notifier_parent_class)->finalize (object);
}

static void
es_sqlite_notifier_class_init (EsSqliteNotifierClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->get_property = es_sqlite_notifier_get_property;
  object_class->set_property = es_sqlite_notifier_set_property;
  object_class->dispose = es_sqlite_notifier_dispose;
  object_class->finalize = es_sqlite_notifier_finalize;

  /**
   * EsSqliteNotifier:storage:
   *
   * The storage whose database the notifier watches, and through which
   * it reads new events.
   *
   * Since: 0.1
   */
  properties[PROP_STORAGE] =
    g_param_spec_object ("storage", NULL, NULL, ES_TYPE_SQLITE_STORAGE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteNotifier:polling-interval:
   *
   * How often, in milliseconds, the database is checked for other
   * processes' commits when the WAL file's monitor has not already told.
   *
   * Since: 0.1
   */
  properties[PROP_POLLING_INTERVAL] =
    g_param_spec_uint ("polling-interval", NULL, NULL, 1, 60000, DEFAULT_POLLING_INTERVAL,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsSqliteNotifier:give-up-timeout:
   *
   * How long, in milliseconds, every check of the database may fail
   * before the notifier gives up and its watches fail with
   * %ES_ERROR_STORAGE; 0 never gives up. A check fails when SQLite
   * reports an error, or when the file was deleted, replaced, truncated
   * or overwritten. Failures are looked for at every check, so the error
   * comes at most one [property@Es.SqliteNotifier:polling-interval] after
   * this time.
   *
   * Since: 0.2
   */
  properties[PROP_GIVE_UP_TIMEOUT] =
    g_param_spec_uint ("give-up-timeout", NULL, NULL, 0, 3600000, DEFAULT_GIVE_UP_TIMEOUT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_sqlite_notifier_init (EsSqliteNotifier *self)
{
  g_mutex_init (&self->state_lock);
  _es_subscribers_init (&self->subs);
  self->polling_interval = DEFAULT_POLLING_INTERVAL;
  self->give_up_timeout = DEFAULT_GIVE_UP_TIMEOUT;
}

/**
 * es_sqlite_notifier_new:
 * @storage: the storage whose database to watch
 * @polling_interval: milliseconds between checks for other processes'
 *   commits, at least 1
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
  g_return_val_if_fail (polling_interval > 0, NULL);

  return g_object_new (ES_TYPE_SQLITE_NOTIFIER,
                       "storage", storage,
                       "polling-interval", polling_interval,
                       NULL);
}

/**
 * es_sqlite_notifier_get_polling_interval:
 * @self: an [class@Es.SqliteNotifier]
 *
 * Gets the polling interval.
 *
 * Returns: milliseconds between checks
 *
 * Since: 0.1
 */
guint
es_sqlite_notifier_get_polling_interval (EsSqliteNotifier *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_NOTIFIER (self), 0);

  return self->polling_interval;
}
