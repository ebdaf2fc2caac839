/* es-sqlite-storage.c: EsSqliteStorage, the SQLite implementation of
 * EsStorageHandle: the GObject and its properties, GInitable (opening a
 * file or in-memory database read-write or read-only, the files it creates),
 * closing, and the storage handle interface, whose methods live in
 * es-sqlite-writer.c (writes) and es-sqlite-query.c (reads).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "es-sqlite-private.h"

/**
 * EsSqliteStorage:
 *
 * The SQLite implementation of [iface@Es.StorageHandle], on one database
 * file or on a private in-memory database.
 *
 * Most applications never create one themselves:
 * [class@Es.SqliteStreamFactory] does, and pairs it with an
 * [class@Es.SqliteNotifier].
 *
 * A file database is opened in write-ahead-logging mode with one write
 * connection, owned by a writer thread, and a pool of read connections
 * ([property@Es.SqliteStorage:pool-size]), so reads never wait for writes.
 * Appends from every thread are queued to the writer thread, which commits
 * whatever is queued together in one transaction ("group commit") while
 * still checking and reporting each append on its own: an append that
 * fails (a wrong expected version, a cancelled [class@Gio.Cancellable])
 * writes nothing and does not disturb the others.
 *
 * The file is checked before anything is written to it: a file that is not
 * an SQLite database, is damaged, belongs to another application or was
 * written by a newer es-glib fails with %ES_ERROR_STORAGE and is left
 * untouched. An empty or missing file gets the es-glib schema; a file from
 * an older es-glib is upgraded in place.
 *
 * Deleting, truncating, expiring and erasing events (see
 * [method@Es.StreamFactory.delete_stream] and the methods next to it) run
 * on the writer thread like appends, each in one transaction (a sweep in
 * several, of at most 10,000 removals each). Every connection runs with
 * SQLite's `secure_delete`, so removed and erased bytes are overwritten in
 * the file; after such a write the write-ahead log is checkpointed and
 * emptied, so that they do not stay in it either (if another connection
 * is still reading an older state of the database, the log is emptied by
 * a later checkpoint). Files created by es-glib 0.2 use incremental
 * auto-vacuum: [method@Es.StorageHandle.compact] gives their free pages
 * back at once; an older file is rewritten by its first compaction
 * (`VACUUM`, which needs free disk space as large as the file) and then
 * uses incremental auto-vacuum too. Every delete takes a sequence id of
 * its own, and sequence ids are never used twice: a read of
 * <code>@<!-- -->all</code> may skip some.
 *
 * Since: 0.1
 */

#define DEFAULT_BUSY_TIMEOUT   5000

/* ---------------------------------------------------------------------- *
 * EsSqliteStorage                                                         *
 * ---------------------------------------------------------------------- */

enum
{
  PROP_0,
  PROP_PATH,
  PROP_POOL_SIZE,
  PROP_CACHE_SIZE_KIB,
  PROP_BUSY_TIMEOUT,
  PROP_DURABILITY,
  PROP_READ_ONLY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void initable_iface_init       (GInitableIface           *iface);
static void storage_handle_iface_init (EsStorageHandleInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsSqliteStorage, es_sqlite_storage, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STORAGE_HANDLE,
                                                      storage_handle_iface_init))

/* Opens one more connection for reading: read-only on a file; on the
 * in-memory database (which the memdb VFS only opens read-write)
 * query_only, which refuses writes just the same. */
static EsConnection *
open_reader (EsSqliteStorage  *self,
             int               mutex_flag,
             GError          **error)
{
  g_autofree char *pragmas = NULL;
  EsConnection *conn;
  int flags = SQLITE_OPEN_URI | mutex_flag;

  flags |= self->in_memory ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  conn = _es_sqlite_connection_open (self->uri, flags, self->where, self->busy_timeout, error);
  if (conn == NULL)
    return NULL;

  pragmas = g_strdup_printf ("PRAGMA query_only = 1;"
                             "PRAGMA secure_delete = ON;"
                             "PRAGMA foreign_keys = OFF;"
                             "PRAGMA cache_size = -%u;",
                             self->cache_size_kib);
  if (!_es_sqlite_connection_exec (conn, pragmas, _("Opening the database"), error))
    {
      _es_sqlite_connection_close (conn);
      return NULL;
    }

  return conn;
}

/* Configures the write connection, once the schema is in place (the
 * journal mode is persistent in the file: nothing is changed before the
 * header checks pass). WAL on a file: readers never wait for the writer,
 * and a commit is one append to the log. synchronous NORMAL (the default
 * durability): in WAL mode it loses nothing when the process dies, only on
 * power loss, and saves an fsync per commit; FULL (ES_DURABILITY_FULL)
 * syncs the log at every commit, and survives power loss too. The memdb VFS has no WAL; its journal lives in
 * memory. Read connections get their own pragmas in open_reader(). */
static gboolean
configure_writer (EsSqliteStorage  *self,
                  EsConnection     *conn,
                  GError          **error)
{
  const char *operation = _("Opening the database");
  g_autofree char *pragmas = NULL;
  sqlite3_stmt *stmt = NULL;
  const char *mode;
  gboolean ok;
  int rc;

  rc = sqlite3_prepare_v2 (conn->db,
                           self->in_memory ? "PRAGMA journal_mode = MEMORY"
                                           : "PRAGMA journal_mode = WAL",
                           -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      _es_sqlite_connection_set_error (conn, rc, operation, error);
      sqlite3_finalize (stmt);
      return FALSE;
    }

  /* The pragma answers with the mode in force, which is not the one asked
   * for when the switch is impossible. */
  mode = (const char *) sqlite3_column_text (stmt, 0);
  ok = mode != NULL && g_ascii_strcasecmp (mode, self->in_memory ? "memory" : "wal") == 0;
  if (!ok)
    g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                 /* Translators: the first %s is a database such as '/tmp/events.db',
                  * the second and third SQLite journal modes such as "wal" and "delete" */
                 _("Could not set the journal mode of %s to '%s': it stayed '%s'"),
                 self->where, self->in_memory ? "memory" : "wal", mode != NULL ? mode : "");
  sqlite3_finalize (stmt);
  if (!ok)
    return FALSE;

  pragmas = g_strdup_printf ("PRAGMA synchronous = %s;"
                             "PRAGMA secure_delete = ON;"
                             "PRAGMA foreign_keys = OFF;"
                             "PRAGMA cache_size = -%u;",
                             self->durability == ES_DURABILITY_FULL ? "FULL" : "NORMAL",
                             self->cache_size_kib);
  return _es_sqlite_connection_exec (conn, pragmas, operation, error);
}

/* A file: URI for @path, so that SQLite takes the path literally (this
 * SQLite is built with URI file names on, so "file:x?mode=ro" given as a
 * plain path would be parsed). */
static char *
file_uri_for_path (const char *path)
{
  g_autofree char *escaped = g_uri_escape_string (path, "/", FALSE);

  /* "file:///abs/path": an empty authority, so "//host/x" stays a path. */
  return g_strconcat (path[0] == '/' ? "file://" : "file:", escaped, NULL);
}

/* The files SQLite may create for a database: the file itself, the WAL,
 * its shared-memory index, the rollback journal. */
enum
{
  SIDE_MAIN    = 1 << 0,
  SIDE_WAL     = 1 << 1,
  SIDE_SHM     = 1 << 2,
  SIDE_JOURNAL = 1 << 3,
};

static const char * const side_suffixes[] = { "", "-wal", "-shm", "-journal" };

/* Which of the SIDE_* files of @path exist. */
static guint
existing_files (const char *path)
{
  guint mask = 0;
  guint i;

  for (i = 0; i < G_N_ELEMENTS (side_suffixes); i++)
    {
      g_autofree char *name = g_strconcat (path, side_suffixes[i], NULL);
      GStatBuf st;

      if (g_lstat (name, &st) == 0)
        mask |= 1u << i;
    }
  return mask;
}

static gboolean
file_is_empty (const char *name)
{
  GStatBuf st;

  return g_stat (name, &st) == 0 && st.st_size == 0;
}

/* The storages of this process that have a file open, by device and inode
 * ("dev:ino" → count): a read-only storage that created a file's
 * -wal and -shm removes them at close only when nobody else has the file
 * open, and POSIX locks (below) do not show a process its own. */
static GMutex open_files_lock;
static GHashTable *open_files;   /* (owned) guarded by open_files_lock */

static char *
file_key (const char *path)
{
  GStatBuf st;

  if (g_stat (path, &st) != 0)
    return NULL;
  return g_strdup_printf ("%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT,
                          (guint64) st.st_dev, (guint64) st.st_ino);
}

/* Counts (@delta 1) or uncounts (-1) an open of the file @key names;
 * returns how many opens of it remain counted. */
static guint
open_files_update (const char *key,
                   int         delta)
{
  guint count;

  g_mutex_lock (&open_files_lock);
  if (open_files == NULL)
    open_files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  count = GPOINTER_TO_UINT (g_hash_table_lookup (open_files, key));
  count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
  if (count > 0)
    g_hash_table_replace (open_files, g_strdup (key), GUINT_TO_POINTER (count));
  else
    g_hash_table_remove (open_files, key);
  g_mutex_unlock (&open_files_lock);
  return count;
}

/* Whether any connection has the shared-memory index of @path open: each
 * holds a read lock on it (on its "dead man switch" byte, UNIX_SHM_DMS in
 * SQLite's os_unix.c) for as long as it does. The locks are read from
 * /proc/locks rather than asked with fcntl (F_GETLK): that would need a
 * descriptor on the -shm, and closing it would drop every POSIX lock this
 * process holds on the file, a raw SQLite connection's among them. Where
 * /proc/locks cannot be read, the files count as in use. */
static gboolean
shm_in_use (const char *path)
{
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);
  g_autofree char *locks = NULL;
  g_autofree char *inode = NULL;
  GStatBuf st;

  if (g_stat (shm, &st) != 0)
    return FALSE;
  if (!g_file_get_contents ("/proc/locks", &locks, NULL, NULL))
    return TRUE;

  /* "1: POSIX  ADVISORY  READ 27742 fe:00:10953249 128 128" */
  inode = g_strdup_printf (" %02x:%02x:%" G_GUINT64_FORMAT " ",
                           major (st.st_dev), minor (st.st_dev), (guint64) st.st_ino);
  return strstr (locks, inode) != NULL;
}

/* Removes the files of @created (SIDE_* bits): files that did not exist
 * before this storage opened the database, and that its connections, all
 * closed now, made. So a failed open leaves the directory as it found it,
 * and a read-only one does not leave -wal and -shm files that SQLite
 * created with the permissions of the database file (0444 for a file
 * nobody may write), which would make the next writable open fail.
 *
 * A -wal file with content holds commits, which are not this storage's
 * (it wrote nothing, or its open failed before its first commit): another
 * connection opened the database meanwhile, so the -wal and the -shm are
 * kept. */
static void
remove_created_files (const char *path,
                      guint       created)
{
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  guint i;

  if ((created & SIDE_WAL) && !file_is_empty (wal))
    created &= ~(SIDE_WAL | SIDE_SHM);

  for (i = G_N_ELEMENTS (side_suffixes); i-- > 0;)
    {
      g_autofree char *name = g_strconcat (path, side_suffixes[i], NULL);

      if ((created & (1u << i)) && g_unlink (name) != 0)
        g_debug ("Could not remove %s: %s", name, g_strerror (errno));
    }
}

/* Whether @path is on a file system mounted read-only: then nobody can
 * change the file while it is open. */
static gboolean
on_read_only_file_system (const char *path)
{
  struct statvfs st;

  return statvfs (path, &st) == 0 && (st.f_flag & ST_RDONLY) != 0;
}

/* Whether the SQLite file at @path is in WAL mode: its header's read and
 * write versions (bytes 18 and 19) are 2. */
static gboolean
file_is_wal (const char *path)
{
  guint8 header[20];
  gboolean wal = FALSE;
  FILE *file = g_fopen (path, "rb");

  if (file == NULL)
    return FALSE;
  if (fread (header, 1, sizeof header, file) == sizeof header)
    wal = header[18] == 2 && header[19] == 2;
  fclose (file);
  return wal;
}

/* Opens a file database for reading only: no write connection, no writer
 * thread, nothing written, no schema created or upgraded; the database
 * must be an up-to-date es-glib database already. */
static gboolean
open_read_only (EsSqliteStorage  *self,
                const char       *display_path,
                GError          **error)
{
  g_autoptr(GPtrArray) readers = NULL;
  g_autofree char *wal = NULL;
  g_autofree char *shm = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *file_uri = NULL;
  DbHeader header = { 0, };
  EsConnection *first;
  gboolean immutable;
  guint i;

  if (self->in_memory)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           _("An in-memory database cannot be opened read-only: it "
                             "starts empty"));
      return FALSE;
    }

  if (!g_file_test (self->path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a file path */
                   _("'%s' does not exist (a read-only open does not create it)"),
                   display_path);
      return FALSE;
    }

  /* mode=ro: SQLite writes nothing to the file. On a read-only file
   * system without a -wal file, the file cannot change while it is open:
   * immutable=1 lets SQLite read it without the -shm file it cannot
   * create there. Anywhere else, a file in WAL mode (es-glib's are) can
   * only be read where its -shm file exists or can be created. */
  wal = g_strconcat (self->path, "-wal", NULL);
  shm = g_strconcat (self->path, "-shm", NULL);
  dir = g_path_get_dirname (self->path);
  immutable = on_read_only_file_system (self->path) && !g_file_test (wal, G_FILE_TEST_EXISTS);

  /* SQLite would fail with "attempt to write a readonly database". */
  if (!immutable && file_is_wal (self->path) && !g_file_test (shm, G_FILE_TEST_EXISTS) &&
      access (dir, W_OK) != 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a file path; keep "-shm" as it is */
                   _("'%s' cannot be read read-only: it is in write-ahead-log mode, "
                     "and SQLite can read such a file only if its \"-shm\" file exists "
                     "or can be created next to it, and this process cannot write "
                     "its directory"),
                   display_path);
      return FALSE;
    }

  file_uri = file_uri_for_path (self->path);
  g_free (self->uri);
  self->uri = g_strconcat (file_uri, immutable ? "?immutable=1" : "?mode=ro", NULL);

  first = open_reader (self, SQLITE_OPEN_NOMUTEX, error);
  if (first == NULL)
    return FALSE;
  readers = g_ptr_array_new_full (self->pool_size, _es_sqlite_connection_close);
  g_ptr_array_add (readers, first);

  if (!_es_sqlite_read_header (first, &header, error) ||
      !_es_sqlite_check_header (&header, display_path, error))
    return FALSE;

  if (header.n_objects == 0 || header.user_version < ES_SQLITE_SCHEMA_VERSION)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a file path */
                   header.n_objects == 0
                     ? _("'%s' is not an es-glib database yet (it is empty), and a "
                         "read-only open does not create the schema")
                     : _("'%s' has an older es-glib schema, which a read-only open does "
                         "not upgrade: open it once for writing"),
                   display_path);
      return FALSE;
    }

  if (!_es_sqlite_probe_pages (first, error))
    return FALSE;

  for (i = 1; i < self->pool_size; i++)
    {
      EsConnection *reader = open_reader (self, SQLITE_OPEN_NOMUTEX, error);

      if (reader == NULL)
        return FALSE;
      g_ptr_array_add (readers, reader);
    }

  _es_pool_open (&self->pool, g_steal_pointer (&readers));

  return TRUE;
}

/* Whether a failure to prepare a file may come from another process
 * creating or upgrading it at the same moment (SQLite then reports a lock,
 * or an I/O or read-only error on a journal that changes mode under it). */
static gboolean
is_transient_open_failure (int rc)
{
  switch (rc & 0xff)
    {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
      return TRUE;
    default:
      return FALSE;
    }
}

/* Steps of one attempt at the write connection, each on a short busy
 * timeout, retried together until the storage's own busy timeout. */
#define OPEN_ATTEMPT_BUSY_TIMEOUT 100  /* ms */

/* Opens the write connection and brings the file to the current schema.
 *
 * Processes that open a new file at once race to create it: to switch it
 * to WAL mode, to create the schema. SQLite serializes most of it, but not
 * all: a switch of journal mode while another connection looks at the
 * file can fail with an I/O or read-only error, or leave two connections
 * waiting for each other until the busy timeout. Each attempt therefore
 * waits for locks only briefly, and a failure of that kind closes the
 * connection and tries again (nothing half done stays: the schema is
 * created in one transaction), until the storage's busy timeout has gone
 * by; then the last error is reported. */
static EsConnection *
open_writer_connection (EsSqliteStorage  *self,
                        const char       *display_path,
                        GError          **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) self->busy_timeout * 1000;

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      EsConnection *conn;
      int rc;

      conn = _es_sqlite_connection_open (self->uri,
                                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                         SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                                         self->where,
                                         MIN (self->busy_timeout, OPEN_ATTEMPT_BUSY_TIMEOUT),
                                         error);
      if (conn == NULL)
        return NULL;

      /* Look before touching: the header checks come before any pragma
       * that writes (journal_mode = WAL does). And should they fail on
       * another application's WAL-mode database, closing must not
       * checkpoint its log into its file, as the last connection to close
       * otherwise does. */
      sqlite3_db_config (conn->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
      if (_es_sqlite_prepare_schema (conn, display_path, self->in_memory ? NULL : "WAL",
                                     &local_error) &&
          _es_sqlite_probe_pages (conn, &local_error) &&
          configure_writer (self, conn, &local_error))
        {
          sqlite3_db_config (conn->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
          _es_sqlite_connection_set_busy_timeout (conn, self->busy_timeout);
          return conn;
        }

      rc = sqlite3_extended_errcode (conn->db);
      _es_sqlite_connection_close (conn);
      if (self->in_memory || !is_transient_open_failure (rc) ||
          g_get_monotonic_time () >= deadline)
        {
          /* Busy for the whole of the storage's timeout, not the
           * attempt's: say so. */
          if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
            _es_sqlite_set_error (error, NULL, rc, _("Opening the database"), self->where,
                                  self->busy_timeout);
          else
            g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
      g_usleep (g_random_int_range (1000, 20000));
    }
}

/* Opens a file or in-memory database for reading and writing: the write
 * connection (creating or upgrading the schema), the read pool and the
 * writer thread. */
static gboolean
open_read_write (EsSqliteStorage  *self,
                 const char       *display_path,
                 GError          **error)
{
  g_autoptr(GPtrArray) readers = NULL;
  EsConnection *conn = NULL;
  guint i;

  conn = open_writer_connection (self, display_path, error);
  if (conn == NULL)
    return FALSE;

  readers = g_ptr_array_new_full (self->pool_size, _es_sqlite_connection_close);
  for (i = 0; i < self->pool_size; i++)
    {
      EsConnection *reader = open_reader (self, SQLITE_OPEN_NOMUTEX, error);

      if (reader == NULL)
        {
          _es_sqlite_connection_close (conn);
          return FALSE;
        }
      g_ptr_array_add (readers, reader);
    }

  /* The writer thread owns the write connection from now on, and closes
   * it on its way out. */
  self->writer = _es_sqlite_writer_start (conn, error);
  if (self->writer == NULL)
    return FALSE;

  _es_pool_open (&self->pool, g_steal_pointer (&readers));

  return TRUE;
}

static gboolean
es_sqlite_storage_initable_init (GInitable     *initable,
                                 GCancellable  *cancellable,
                                 GError       **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (initable);
  g_autofree char *display_path = NULL;
  guint before = 0;
  gboolean ok;

  if (self->init_done)
    {
      if (!self->init_ok)
        g_set_error_literal (error, ES_ERROR, ES_ERROR_STORAGE,
                             _("The storage failed to open earlier"));
      return self->init_ok;
    }
  self->init_done = TRUE;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  self->in_memory = self->path == NULL || g_str_equal (self->path, ":memory:");
  if (self->in_memory)
    {
      static gint counter = 0;

      /* memdb shares a database among the connections of a process that
       * open the same name starting with '/': the writer and the readers
       * of this storage, and nobody else. */
      self->uri = g_strdup_printf ("file:/es-glib-mem-%u-%lu?vfs=memdb",
                                   (guint) g_atomic_int_add (&counter, 1),
                                   (gulong) getpid ());
      self->where = g_strdup (_("the in-memory database"));
      display_path = g_strdup (self->where);
    }
  else
    {
      GStatBuf st;

      display_path = g_filename_display_name (self->path);
      self->where = g_strdup_printf ("'%s'", display_path);
      self->uri = file_uri_for_path (self->path);

      /* SQLite's own error for a directory ("unable to open database
       * file") does not say what is wrong. A missing file is created. */
      if (g_stat (self->path, &st) == 0 && !S_ISREG (st.st_mode))
        {
          g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                       /* Translators: %s is a file path */
                       _("'%s' is not a regular file"), display_path);
          return FALSE;
        }
    }

  if (!self->in_memory)
    before = existing_files (self->path);

  ok = self->read_only ? open_read_only (self, display_path, error)
                       : open_read_write (self, display_path, error);

  /* Every connection of the open is closed by now. */
  if (!self->in_memory)
    {
      guint created = existing_files (self->path) & ~before;

      if (!ok)
        remove_created_files (self->path, created);
      else
        {
          if (self->read_only)
            self->created_files = created;
          self->file_key = file_key (self->path);
          if (self->file_key != NULL)
            open_files_update (self->file_key, 1);
        }
    }

  self->init_ok = ok;
  return ok;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = es_sqlite_storage_initable_init;
}

/* Closes the storage: refuses new work, lets the writer finish the jobs
 * already queued, joins it (it closes the write connection on its way
 * out), and closes the idle read connections; borrowed ones are closed
 * when they come back. Idempotent and thread-safe.
 *
 * Finalization can happen on the writer thread (it dropped the last
 * GTask, which held the last ref): a thread cannot join itself, so then
 * the thread is only told to stop; it does so once it is back in its loop,
 * and the writer state it co-owns keeps what it needs alive. */
static void
es_sqlite_storage_shutdown (EsSqliteStorage *self)
{

  g_mutex_lock (&self->close_lock);

  if (!self->closed)
    {
      self->closed = TRUE;

      /* Releases every subscription held through this storage: a
       * consumer waiting elsewhere takes over. */
      _es_sqlite_subscriptions_close (self);

      /* Readers first, so the writer's connection is the database's last:
       * closing it checkpoints the WAL and removes the -wal and -shm
       * files, leaving one self-contained file behind. */
      _es_pool_close (&self->pool);

      /* Read-only, there is no writer to do that: remove the side files
       * the open created, unless another connection (a writer that has
       * not committed yet, say) uses them now: removing a -shm in use
       * would split the database's readers and writers between two
       * shared-memory indexes. */
      if (self->file_key != NULL)
        {
          guint others = open_files_update (self->file_key, -1);

          if (self->read_only && self->created_files != 0 && others == 0 &&
              !shm_in_use (self->path))
            remove_created_files (self->path, self->created_files);
          self->created_files = 0;
          g_clear_pointer (&self->file_key, g_free);
        }

      /* Waits for the jobs queued so far, unless on the writer thread. */
      if (self->writer != NULL)
        _es_write_queue_stop (self->writer);
    }

  g_mutex_unlock (&self->close_lock);
}

static gboolean
es_sqlite_storage_close (EsStorageHandle  *handle,
                         GCancellable     *cancellable,
                         GError          **error)
{
  es_sqlite_storage_shutdown (ES_SQLITE_STORAGE (handle));
  return TRUE;
}

static void
storage_handle_iface_init (EsStorageHandleInterface *iface)
{
  iface->append = _es_sqlite_storage_append;
  iface->append_async = _es_sqlite_storage_append_async;
  iface->append_finish = _es_sqlite_storage_append_finish;
  iface->read_page = _es_sqlite_storage_read_page;
  iface->get_version = _es_sqlite_storage_get_version;
  iface->get_metrics = _es_sqlite_storage_get_metrics;
  iface->save_snapshot = _es_sqlite_storage_save_snapshot;
  iface->load_snapshot = _es_sqlite_storage_load_snapshot;
  iface->close = es_sqlite_storage_close;
  iface->read_page_full = _es_sqlite_storage_read_page_full;
  iface->get_stream_info = _es_sqlite_storage_get_stream_info;
  iface->list_streams = _es_sqlite_storage_list_streams;
  iface->delete_stream = _es_sqlite_storage_delete_stream;
  iface->truncate_stream = _es_sqlite_storage_truncate_stream;
  iface->erase_event = _es_sqlite_storage_erase_event;
  iface->set_retention = _es_sqlite_storage_set_retention;
  iface->sweep = _es_sqlite_storage_sweep;
  iface->compact = _es_sqlite_storage_compact;
  iface->get_subscription = _es_sqlite_storage_get_subscription;
  iface->list_subscriptions = _es_sqlite_storage_list_subscriptions;
  iface->save_checkpoint = _es_sqlite_storage_save_checkpoint;
  iface->reset_subscription = _es_sqlite_storage_reset_subscription;
  iface->delete_subscription = _es_sqlite_storage_delete_subscription;
  iface->acquire_subscription = _es_sqlite_storage_acquire_subscription;
  iface->release_subscription = _es_sqlite_storage_release_subscription;
  iface->count_events = _es_sqlite_storage_count_events;
  iface->locate_event = _es_sqlite_storage_locate_event;
  iface->backup = _es_sqlite_storage_backup;
  iface->check = _es_sqlite_storage_check;
  iface->import_events = _es_sqlite_storage_import_events;
  iface->read_rows = _es_sqlite_storage_read_rows;
}

/* ---------------------------------------------------------------------- *
 * GObject                                                                 *
 * ---------------------------------------------------------------------- */

static void
es_sqlite_storage_dispose (GObject *object)
{
  es_sqlite_storage_shutdown (ES_SQLITE_STORAGE (object));

  G_OBJECT_CLASS (es_sqlite_storage_parent_class)->dispose (object);
}

static void
es_sqlite_storage_finalize (GObject *object)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (object);

  /* The writer thread may still hold its own ref (see shutdown). */
  g_clear_pointer (&self->writer, _es_write_queue_unref);
  _es_pool_clear (&self->pool);
  g_free (self->path);
  g_free (self->uri);
  g_free (self->where);
  g_free (self->file_key);
  _es_sqlite_subscriptions_clear (self);
  g_mutex_clear (&self->close_lock);

  G_OBJECT_CLASS (es_sqlite_storage_parent_class)->finalize (object);
}

static void
es_sqlite_storage_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    case PROP_POOL_SIZE:
      g_value_set_uint (value, self->pool_size);
      break;
    case PROP_CACHE_SIZE_KIB:
      g_value_set_uint (value, self->cache_size_kib);
      break;
    case PROP_BUSY_TIMEOUT:
      g_value_set_uint (value, self->busy_timeout);
      break;
    case PROP_DURABILITY:
      g_value_set_enum (value, self->durability);
      break;
    case PROP_READ_ONLY:
      g_value_set_boolean (value, self->read_only);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_storage_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint (value);
      break;
    case PROP_CACHE_SIZE_KIB:
      self->cache_size_kib = g_value_get_uint (value);
      break;
    case PROP_BUSY_TIMEOUT:
      self->busy_timeout = g_value_get_uint (value);
      break;
    case PROP_DURABILITY:
      self->durability = g_value_get_enum (value);
      break;
    case PROP_READ_ONLY:
      self->read_only = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_sqlite_storage_class_init (EsSqliteStorageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->dispose = es_sqlite_storage_dispose;
  object_class->finalize = es_sqlite_storage_finalize;
  object_class->get_property = es_sqlite_storage_get_property;
  object_class->set_property = es_sqlite_storage_set_property;

  /**
   * EsSqliteStorage:path:
   *
   * The database file, created with its schema if it does not exist; %NULL
   * or `":memory:"` for a private in-memory database, which every
   * connection of this storage shares and which disappears when the
   * storage is closed.
   *
   * Since: 0.1
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsSqliteStorage:pool-size:
   *
   * The number of read connections: how many reads can run at once. Reads
   * beyond that wait for a connection to be free.
   *
   * Since: 0.1
   */
  properties[PROP_POOL_SIZE] =
    g_param_spec_uint ("pool-size", NULL, NULL,
                       1, ES_SQLITE_MAX_POOL_SIZE, ES_SQLITE_DEFAULT_POOL_SIZE,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsSqliteStorage:cache-size-kib:
   *
   * The page cache of each connection, in KiB (SQLite's `cache_size`
   * pragma); at least 64, as for [property@Es.SqliteStreamFactory:cache-size-kib].
   *
   * Since: 0.1
   */
  properties[PROP_CACHE_SIZE_KIB] =
    g_param_spec_uint ("cache-size-kib", NULL, NULL,
                       ES_SQLITE_MIN_CACHE_SIZE_KIB, ES_SQLITE_MAX_CACHE_SIZE_KIB,
                       ES_SQLITE_DEFAULT_CACHE_SIZE_KIB,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsSqliteStorage:busy-timeout:
   *
   * How long, in milliseconds, an operation waits for a lock held by
   * another connection (another process writing the same file, typically)
   * before it fails with %ES_ERROR_STORAGE.
   *
   * Since: 0.1
   */
  properties[PROP_BUSY_TIMEOUT] =
    g_param_spec_uint ("busy-timeout", NULL, NULL,
                       0, G_MAXINT, DEFAULT_BUSY_TIMEOUT,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsSqliteStorage:durability:
   *
   * How far a committed write is guaranteed to survive: a crash of the
   * process (%ES_DURABILITY_NORMAL, the default) or also a loss of power
   * (%ES_DURABILITY_FULL, one flush to the disk per commit). Without effect
   * on an in-memory database.
   *
   * Since: 0.1
   */
  properties[PROP_DURABILITY] =
    g_param_spec_enum ("durability", NULL, NULL,
                       ES_TYPE_DURABILITY, ES_DURABILITY_NORMAL,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsSqliteStorage:read-only:
   *
   * Whether to open the database for reading only: for a file the process
   * cannot write (a backup, a file on read-only media) or must not.
   *
   * Reads, metrics, snapshot loads and watches work as usual, and see what
   * other processes commit to the file. Appends, snapshot saves and the
   * life-cycle writes (deletes, truncations, erasures, retention policies,
   * sweeps, compaction) fail with %ES_ERROR_INVALID_ARGUMENT ("the
   * database was opened read-only"). Nothing is ever written to the file: the open fails with
   * %ES_ERROR_STORAGE, leaving it untouched, when the file does not exist,
   * is empty, is not an es-glib database or needs a schema upgrade. An
   * in-memory database cannot be read-only.
   *
   * es-glib databases are in SQLite's write-ahead-log mode, which has its
   * own rules for readers that cannot write (SQLite 3.22 and later):
   *
   * - where the directory can be written, SQLite creates the `-wal` and
   *   `-shm` files next to the database if they do not exist; the
   *   storage removes them again when it is closed, unless another
   *   connection has written to the `-wal` meanwhile;
   * - where it cannot (a directory of another user), the file can be read
   *   only if its `-shm` and `-wal` files exist already (a writer has it
   *   open); otherwise the open fails with %ES_ERROR_STORAGE saying so;
   * - on a file system mounted read-only, where nothing can change the
   *   file, a file without a `-wal` file is opened as immutable, without
   *   the `-shm` file.
   *
   * Since: 0.2
   */
  properties[PROP_READ_ONLY] =
    g_param_spec_boolean ("read-only", NULL, NULL,
                          FALSE,
                          (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_sqlite_storage_init (EsSqliteStorage *self)
{
  self->pool_size = ES_SQLITE_DEFAULT_POOL_SIZE;
  self->cache_size_kib = ES_SQLITE_DEFAULT_CACHE_SIZE_KIB;
  self->busy_timeout = DEFAULT_BUSY_TIMEOUT;

  g_mutex_init (&self->close_lock);
  _es_sqlite_subscriptions_init (self);
  /* Until init succeeds, nothing can be borrowed. */
  _es_pool_init (&self->pool, 0, NULL, NULL, NULL, _es_sqlite_connection_close, NULL);
}

/* ---------------------------------------------------------------------- *
 * Public and library-private API                                          *
 * ---------------------------------------------------------------------- */

/**
 * es_sqlite_storage_new:
 * @path: (nullable) (type filename): the database file; %NULL or
 *   `":memory:"` for a private in-memory database
 * @pool_size: the number of read connections (1 to 64), or 0 for the
 *   default (4)
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Opens (or creates) an SQLite event store. Fails with %ES_ERROR_STORAGE,
 * leaving the file as it was, if @path is not a regular file, not an
 * SQLite database, damaged, another application's database, or written by
 * a newer es-glib.
 *
 * Returns: (transfer full): the storage, or %NULL on error
 *
 * Since: 0.1
 */
EsSqliteStorage *
es_sqlite_storage_new (const char    *path,
                       guint          pool_size,
                       GCancellable  *cancellable,
                       GError       **error)
{
  g_return_val_if_fail (pool_size <= ES_SQLITE_MAX_POOL_SIZE, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (ES_TYPE_SQLITE_STORAGE, cancellable, error,
                         "path", path,
                         "pool-size", pool_size != 0 ? pool_size : ES_SQLITE_DEFAULT_POOL_SIZE,
                         NULL);
}

/**
 * es_sqlite_storage_get_path:
 * @self: an [class@Es.SqliteStorage]
 *
 * Gets the path the storage was opened with.
 *
 * Returns: (nullable) (type filename): the database file, as given at
 *   construction: %NULL or `":memory:"` for an in-memory database
 *
 * Since: 0.1
 */
const char *
es_sqlite_storage_get_path (EsSqliteStorage *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), NULL);

  return self->path;
}

/**
 * es_sqlite_storage_get_pool_size:
 * @self: an [class@Es.SqliteStorage]
 *
 * Gets the number of read connections of the storage.
 *
 * Returns: the size of the read pool
 *
 * Since: 0.1
 */
guint
es_sqlite_storage_get_pool_size (EsSqliteStorage *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), 0);

  return self->pool_size;
}

sqlite3 *
_es_sqlite_storage_open_reader (EsSqliteStorage  *self,
                                GError          **error)
{
  EsConnection *conn;
  gboolean closed;
  sqlite3 *db;

  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), NULL);

  closed = _es_pool_is_closed (&self->pool);
  if (closed)
    {
      _es_sqlite_set_closed_error (error);
      return NULL;
    }

  /* The caller may use it from more than one thread (one at a time, but
   * we do not know): SQLite's own mutex, not NOMUTEX. The busy handler
   * keeps no state, so the bare handle is all the caller needs. */
  conn = open_reader (self, SQLITE_OPEN_FULLMUTEX, error);
  if (conn == NULL)
    return NULL;

  db = g_steal_pointer (&conn->db);
  _es_sqlite_connection_close (conn);
  return db;
}

const char *
_es_sqlite_storage_get_file_path (EsSqliteStorage *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), NULL);

  return self->in_memory ? NULL : self->path;
}
