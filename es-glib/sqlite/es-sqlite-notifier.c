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
 * The [iface@Es.Notifier] of the SQLite backend, an [class@Es.StorageNotifier]. [class@Es.SqliteStreamFactory]
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

#define DEFAULT_POLLING_INTERVAL 100
#define DEFAULT_GIVE_UP_TIMEOUT 5000

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
  GSource         *poll;              /* (owned) (nullable) */
  GFileMonitor    *monitor;           /* (owned) (nullable) on the WAL file */

  gint             wal_check_scheduled;  /* (atomic) an idle WAL check is pending */
  guint            rechecks;          /* notifier thread: follow-ups after a WAL change */
  gint             n_checks;          /* (atomic) */
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

static gboolean recheck_cb (gpointer user_data);

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
      self->rechecks = 0;
      self->retry = FALSE;
      if (!es_storage_notifier_deliver (ES_STORAGE_NOTIFIER (self), &error))
        {
          self->retry = TRUE;
          if (reason == NULL)
            reason = g_strdup (error->message);
        }
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
      g_source_attach (source, es_storage_notifier_get_context (ES_STORAGE_NOTIFIER (self)));
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

/* After es_notifier_committed(): a commit of ours is known to be there. */
static void
es_sqlite_notifier_check (EsStorageNotifier *notifier)
{
  check (ES_SQLITE_NOTIFIER (notifier), TRUE);
}

static gboolean
wal_check_cb (gpointer user_data)
{
  EsSqliteNotifier *self = user_data;

  g_atomic_int_set (&self->wal_check_scheduled, FALSE);
  self->rechecks = 10;
  check (self, FALSE);
  return G_SOURCE_REMOVE;
}

static void
wal_changed_cb (GFileMonitor      *monitor,
                GFile             *file,
                GFile             *other_file,
                GFileMonitorEvent  event_type,
                gpointer           user_data)
{
  EsSqliteNotifier *self = user_data;
  GSource *source;

  /* A WAL change may be half a commit: data_version tells. Requests
   * coalesce. */
  if (!g_atomic_int_compare_and_exchange (&self->wal_check_scheduled, FALSE, TRUE))
    return;

  source = g_idle_source_new ();
  g_source_set_callback (source, wal_check_cb, self, NULL);
  g_source_set_static_name (source, "[es-glib] notifier check");
  g_source_attach (source, es_storage_notifier_get_context (ES_STORAGE_NOTIFIER (self)));
  g_source_unref (source);
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

/* On the notifier's thread: the poll, and the WAL file's monitor. */
static void
es_sqlite_notifier_attach (EsStorageNotifier *notifier,
                           GMainContext      *context)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);
  const char *path = _es_sqlite_storage_get_file_path (get_storage (self));

  self->poll = g_timeout_source_new (self->polling_interval);
  g_source_set_callback (self->poll, poll_cb, self, NULL);
  g_source_set_static_name (self->poll, "[es-glib] notifier poll");
  g_source_attach (self->poll, context);

  if (path != NULL)
    {
      g_autofree char *wal_path = g_strconcat (path, "-wal", NULL);
      g_autoptr(GFile) wal = g_file_new_for_path (wal_path);

      /* Where file monitoring is unavailable, the poll does the job. */
      self->monitor = g_file_monitor_file (wal, G_FILE_MONITOR_NONE, NULL, NULL);
      if (self->monitor != NULL)
        {
          g_file_monitor_set_rate_limit (self->monitor, 0);
          g_signal_connect (self->monitor, "changed", G_CALLBACK (wal_changed_cb), self);
        }
    }
}

static void
es_sqlite_notifier_detach (EsStorageNotifier *notifier)
{
  EsSqliteNotifier *self = ES_SQLITE_NOTIFIER (notifier);

  if (self->monitor != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->monitor, self);
      g_file_monitor_cancel (self->monitor);
      g_clear_object (&self->monitor);
    }
  if (self->poll != NULL)
    {
      g_source_destroy (self->poll);
      g_clear_pointer (&self->poll, g_source_unref);
    }
  g_clear_pointer (&self->db, sqlite3_close);
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
  G_OBJECT_CLASS (es_sqlite_notifier_parent_class)->constructed (object);

  g_return_if_fail (ES_IS_SQLITE_STORAGE (
    es_storage_notifier_get_storage (ES_STORAGE_NOTIFIER (object))));
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

  /**
   * EsSqliteNotifier:polling-interval:
   *
   * How often, in milliseconds, the database is checked for other
   * processes' commits when the WAL file's monitor has not already told.
   * A check also looks for the failures that
   * [property@Es.StorageNotifier:give-up-timeout] counts (5 s by default
   * here): a file deleted, replaced, truncated or overwritten, or an error
   * of SQLite; so the notifier gives up at most one polling interval after
   * that time.
   *
   * Since: 0.1
   */
  properties[PROP_POLLING_INTERVAL] =
    g_param_spec_uint ("polling-interval", NULL, NULL, 1, 60000, DEFAULT_POLLING_INTERVAL,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_sqlite_notifier_init (EsSqliteNotifier *self)
{
  self->polling_interval = DEFAULT_POLLING_INTERVAL;
  _es_storage_notifier_set_default_give_up_timeout (ES_STORAGE_NOTIFIER (self),
                                                    DEFAULT_GIVE_UP_TIMEOUT);
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
