/* es-sqlite-storage.c: the SQLite implementation of EsStorageHandle.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "es-sqlite-private.h"
#include "backend/es-pool-private.h"
#include "backend/es-write-queue-private.h"
#include "backend/es-time-private.h"

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
 * Since: 0.1
 */

/* "ESG1": marks a database as es-glib's, in the SQLite header's
 * application id field (PRAGMA application_id). */
#define ES_SQLITE_APPLICATION_ID 0x45534731

/* Jobs the writer thread commits in one transaction at most. */
#define WRITER_MAX_GROUP 512

/* Prepared statements a connection keeps at most (see connection_get_stmt). */
#define STMT_CACHE_MAX 64

#define DEFAULT_BUSY_TIMEOUT   5000

/* The stream id snapshots of @all are stored under (the storage handle
 * receives NULL for @all; no valid stream id starts with '@'). */
#define ALL_STREAM_KEY ES_ALL_STREAM

/* ---------------------------------------------------------------------- *
 * Errors                                                                  *
 * ---------------------------------------------------------------------- */

/* Turns a failed SQLite call into a GError. Every SQLite failure of this
 * file goes through here, so they all read alike:
 *
 * @rc: what the failed call returned
 * @operation: a translated noun phrase naming what failed ("Appending
 *   events")
 * @where: the database as users know it: "'/path/to/file.db'" or "the
 *   in-memory database"
 * @busy_timeout: the connection's busy timeout, in milliseconds, for the
 *   "busy" message
 *
 * SQLITE_INTERRUPT comes only from a cancellable connected to
 * sqlite3_interrupt(), so it is G_IO_ERROR_CANCELLED; a UNIQUE conflict on
 * (stream_id, version) means another write took the version:
 * ES_ERROR_WRONG_EXPECTED_VERSION; everything else is ES_ERROR_STORAGE. */
static void
set_sqlite_error (GError     **error,
                  sqlite3     *db,
                  int          rc,
                  const char  *operation,
                  const char  *where,
                  guint        busy_timeout)
{
  int extended = db != NULL ? sqlite3_extended_errcode (db) : rc;
  const char *reason = db != NULL ? sqlite3_errmsg (db) : sqlite3_errstr (rc);

  switch (rc & 0xff)
    {
    case SQLITE_INTERRUPT:
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           _("Operation was cancelled"));
      return;

    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: the first %s is an operation such as "Appending
                    * events", the second a database such as '/tmp/events.db' or
                    * "the in-memory database", %u a number of milliseconds */
                   _("%s failed: %s is busy (locked by another connection for longer "
                     "than the busy timeout of %u ms)"),
                   operation, where, busy_timeout);
      return;

    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      /* Damage found wherever it is: at open, or on the first read or
       * write that reaches a bad page. SQLite has rolled back the
       * statement (and the transaction, if it was a write), so nothing of
       * it is kept. Say what to run to see the extent of the damage. */
      if (where[0] != '\'')
        g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                     /* Translators: the first %s is an operation such as "Appending
                      * events", the second "the in-memory database", the third SQLite's
                      * own (English) explanation */
                     _("%s failed: %s is corrupt (%s)"),
                     operation, where, reason);
      else if ((rc & 0xff) == SQLITE_NOTADB)
        g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                     /* Translators: the first %s is an operation such as "Opening the
                      * database", the second and fourth a quoted file path such as
                      * '/tmp/events.db', the third SQLite's own (English) explanation;
                      * keep the command as it is */
                     _("%s failed: the database file %s is corrupt or is not an SQLite "
                       "database (%s); to check it, run: sqlite3 %s 'PRAGMA integrity_check'"),
                     operation, where, reason, where);
      else
        g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                     /* Translators: the first %s is an operation such as "Reading
                      * events", the second and fourth a quoted file path such as
                      * '/tmp/events.db', the third SQLite's own (English) explanation;
                      * keep the command as it is */
                     _("%s failed: the database file %s is corrupt (%s); to check it, "
                       "run: sqlite3 %s 'PRAGMA integrity_check'"),
                     operation, where, reason, where);
      return;

    case SQLITE_FULL:
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: the first %s is an operation such as "Appending
                    * events", the second a database such as '/tmp/events.db' */
                   _("%s failed on %s: the disk is full"),
                   operation, where);
      return;

    case SQLITE_CONSTRAINT:
      if (extended == SQLITE_CONSTRAINT_UNIQUE && strstr (reason, "events.version") != NULL)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       /* Translators: the first %s is an operation such as
                        * "Appending events", the second a database */
                       _("%s failed on %s: another write took the same stream version"),
                       operation, where);
          return;
        }
      break;

    default:
      break;
    }

  g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
               /* Translators: the first %s is an operation such as "Appending events",
                * the second a database such as '/tmp/events.db', the third SQLite's
                * own (English) explanation such as "disk I/O error" */
               _("%s failed on %s: %s"),
               operation, where, reason);
}

static void
set_closed_error (GError **error)
{
  g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
}

/* A write to a storage opened read-only: the caller's mistake, not the
 * database's, hence INVALID_ARGUMENT. */
static void
set_read_only_error (const char  *where,
                     GError     **error)
{
  g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
               /* Translators: %s is a database such as '/tmp/events.db' */
               _("Cannot write to %s: the database was opened read-only "
                 "(the read-only property)"),
               where);
}

/* ---------------------------------------------------------------------- *
 * Connections                                                             *
 * ---------------------------------------------------------------------- */

/* One SQLite connection and its prepared statements. A connection is used
 * by one thread at a time (it is opened SQLITE_OPEN_NOMUTEX): the write
 * connection by the writer thread, a read connection by whoever borrowed it
 * from the pool. */
typedef struct
{
  sqlite3    *db;
  GHashTable *stmts;         /* (owned) SQL text → (owned) sqlite3_stmt */
  char       *where;         /* (owned) the database, as errors name it */
  guint       busy_timeout;  /* milliseconds */
} EsConnection;

static void
stmt_finalize (gpointer stmt)
{
  sqlite3_finalize (stmt);
}

static void
connection_set_error (EsConnection  *conn,
                      int            rc,
                      const char    *operation,
                      GError       **error)
{
  set_sqlite_error (error, conn->db, rc, operation, conn->where, conn->busy_timeout);
}

/* Finalizes the connection's statements, then closes it: sqlite3_close()
 * refuses to close a connection with live statements. */
static void
connection_close (gpointer data)
{
  EsConnection *conn = data;

  if (conn == NULL)
    return;

  g_clear_pointer (&conn->stmts, g_hash_table_unref);
  if (conn->db != NULL)
    {
      int rc = sqlite3_close (conn->db);

      if (rc != SQLITE_OK)
        g_warning ("Could not close the connection to %s: %s",
                   conn->where, sqlite3_errmsg (conn->db));
    }
  g_free (conn->where);
  g_free (conn);
}

/* The busy handler of every connection. SQLite's own (sqlite3_busy_timeout)
 * sleeps at least a millisecond, then longer and longer; but the locks met
 * here are usually held for much less: an in-memory database blocks its
 * readers for the length of one write transaction. So this one starts with
 * 20 µs sleeps and doubles them up to 10 ms, until @data (the busy timeout,
 * in milliseconds) has been slept in all. It keeps no state: the time
 * already slept follows from @count, the number of times it was called for
 * this lock. */
#define BUSY_FIRST_SLEEP_USEC 20
#define BUSY_DOUBLINGS        9
#define BUSY_MAX_SLEEP_USEC   10000

static int
busy_handler (void *data,
              int   count)
{
  gint64 timeout = (gint64) GPOINTER_TO_UINT (data) * 1000;
  gint64 slept;
  gint64 sleep;

  if (count < BUSY_DOUBLINGS)
    {
      sleep = (gint64) BUSY_FIRST_SLEEP_USEC << count;
      slept = (gint64) BUSY_FIRST_SLEEP_USEC * ((1 << count) - 1);
    }
  else
    {
      sleep = BUSY_MAX_SLEEP_USEC;
      slept = (gint64) BUSY_FIRST_SLEEP_USEC * ((1 << BUSY_DOUBLINGS) - 1) +
              (gint64) (count - BUSY_DOUBLINGS) * BUSY_MAX_SLEEP_USEC;
    }

  if (slept >= timeout)
    return 0;

  g_usleep (MIN (sleep, timeout - slept));
  return 1;
}

/* Opens a connection on @uri (a file: URI, or the memdb URI of an
 * in-memory storage) with the busy handler; pragmas are the caller's. */
static EsConnection *
connection_open (const char  *uri,
                 int          flags,
                 const char  *where,
                 guint        busy_timeout,
                 GError     **error)
{
  EsConnection *conn = g_new0 (EsConnection, 1);
  int rc;

  conn->where = g_strdup (where);
  conn->busy_timeout = busy_timeout;
  conn->stmts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, stmt_finalize);

  /* Even when it fails, sqlite3_open_v2() usually returns a handle, which
   * holds the reason and must be closed. */
  rc = sqlite3_open_v2 (uri, &conn->db, flags, NULL);
  if (rc != SQLITE_OK)
    {
      connection_set_error (conn, rc, _("Opening the database"), error);
      connection_close (conn);
      return NULL;
    }

  sqlite3_busy_handler (conn->db, busy_handler, GUINT_TO_POINTER (busy_timeout));
  return conn;
}

/* Runs SQL that returns no rows (or whose rows do not matter). */
static gboolean
connection_exec (EsConnection  *conn,
                 const char    *sql,
                 const char    *operation,
                 GError       **error)
{
  int rc = sqlite3_exec (conn->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    {
      connection_set_error (conn, rc, operation, error);
      return FALSE;
    }
  return TRUE;
}

/* Runs a query returning one integer (a PRAGMA, a count). */
static gboolean
connection_query_int64 (EsConnection  *conn,
                        const char    *sql,
                        gint64        *out_value,
                        const char    *operation,
                        GError       **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (conn->db, sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          *out_value = sqlite3_column_int64 (stmt, 0);
          rc = SQLITE_OK;
        }
    }

  if (rc != SQLITE_OK)
    connection_set_error (conn, rc, operation, error);
  sqlite3_finalize (stmt);
  return rc == SQLITE_OK;
}

/* Gets the connection's prepared statement for @sql, preparing it the first
 * time. Statements are prepared with SQLITE_PREPARE_PERSISTENT and kept for
 * the connection's life; the caller resets them after use (stmt_done()).
 *
 * Filtered reads build their SQL from the filter's shape, so the number of
 * distinct statements is open-ended: when the cache is full it is emptied
 * and starts over, which keeps it bounded without bookkeeping (a connection
 * never uses two cached statements at once). */
static sqlite3_stmt *
connection_get_stmt (EsConnection  *conn,
                     const char    *sql,
                     const char    *operation,
                     GError       **error)
{
  sqlite3_stmt *stmt = g_hash_table_lookup (conn->stmts, sql);
  int rc;

  if (stmt != NULL)
    return stmt;

  rc = sqlite3_prepare_v3 (conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      connection_set_error (conn, rc, operation, error);
      sqlite3_finalize (stmt);
      return NULL;
    }

  if (g_hash_table_size (conn->stmts) >= STMT_CACHE_MAX)
    g_hash_table_remove_all (conn->stmts);
  g_hash_table_insert (conn->stmts, g_strdup (sql), stmt);
  return stmt;
}

/* Makes a statement ready for its next use; clearing the bindings also
 * drops pointers to the caller's memory bound with SQLITE_STATIC. */
static void
stmt_done (sqlite3_stmt *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}

/* Binds a blob; an empty one as a zero-length blob, never NULL
 * (sqlite3_bind_blob() binds NULL for a NULL pointer, which GBytes gives
 * for empty data). The bytes must outlive the statement's step. */
static int
bind_bytes (sqlite3_stmt *stmt,
            int           index,
            GBytes       *bytes)
{
  gsize size = 0;
  gconstpointer data = bytes != NULL ? g_bytes_get_data (bytes, &size) : NULL;

  if (size == 0)
    return sqlite3_bind_zeroblob (stmt, index, 0);
  return sqlite3_bind_blob64 (stmt, index, data, size, SQLITE_STATIC);
}

/* ---------------------------------------------------------------------- *
 * Schema                                                                  *
 * ---------------------------------------------------------------------- */

/* Version 1.
 *
 * events: the sequence id is the rowid (INTEGER PRIMARY KEY without
 * AUTOINCREMENT, which costs a lookup in sqlite_sequence per insert): a
 * new row gets max(rowid) + 1, and rows are never deleted, so sequence ids
 * grow strictly and @all reads walk the table in storage order.
 * UNIQUE (stream_id, version) is the index that serves stream reads, the
 * max(version) lookup of each append, and a last line of defence against
 * two events taking one version. Idempotency keys are unique per stream,
 * through a partial index that costs nothing for events without a key.
 * (event_type, sequence_id) serves @all reads filtered on the event type.
 *
 * snapshots: one row per (stream, projection); @all's are stored under
 * stream_id '@all'. WITHOUT ROWID: the primary key is the only access
 * path, so the row lives in the key's b-tree. */
static const char schema_v1[] =
  "CREATE TABLE events ("
  "  sequence_id     INTEGER PRIMARY KEY,"
  "  stream_id       TEXT    NOT NULL,"
  "  version         INTEGER NOT NULL,"
  "  idempotency_key TEXT,"
  "  event_type      TEXT    NOT NULL,"
  "  timestamp       INTEGER NOT NULL,"  /* microseconds since the Unix epoch, UTC */
  "  data            BLOB    NOT NULL,"
  "  metadata        TEXT,"              /* a JSON object, as written */
  "  UNIQUE (stream_id, version)"
  ");"
  "CREATE UNIQUE INDEX events_idempotency_key ON events (stream_id, idempotency_key)"
  "  WHERE idempotency_key IS NOT NULL;"
  "CREATE INDEX events_event_type ON events (event_type, sequence_id);"
  "CREATE TABLE snapshots ("
  "  stream_id       TEXT    NOT NULL,"
  "  projection_name TEXT    NOT NULL,"
  "  version         INTEGER NOT NULL,"
  "  state           BLOB    NOT NULL,"
  "  timestamp       INTEGER NOT NULL,"
  "  PRIMARY KEY (stream_id, projection_name)"
  ") WITHOUT ROWID;";

/* A step of the schema's history: upgrades a database from version N to
 * N + 1, inside the caller's transaction. */
typedef gboolean (*EsMigration) (EsConnection  *conn,
                                 GError       **error);

static gboolean
migrate_0_to_1 (EsConnection  *conn,
                GError       **error)
{
  return connection_exec (conn, schema_v1, _("Creating the database schema"), error);
}

/* migrations[N] upgrades version N to N + 1; version 0 is an empty
 * database. A schema change appends its step here, and nothing else: the
 * length of this table is the schema version this code writes. */
static const EsMigration migrations[] = {
  migrate_0_to_1,
};

#define SCHEMA_VERSION ((gint64) G_N_ELEMENTS (migrations))

/* What the database says about itself, read without writing anything. */
typedef struct
{
  gint64 application_id;
  gint64 user_version;
  gint64 n_objects;  /* tables, indexes... in sqlite_master: 0 when empty */
} DbHeader;

static gboolean
read_header (EsConnection  *conn,
             DbHeader      *header,
             GError       **error)
{
  const char *operation = _("Reading the database header");

  /* The first read of a file that is not a database (or is damaged,
   * unreadable...) fails here with SQLite's reason. */
  return connection_query_int64 (conn, "PRAGMA application_id",
                                 &header->application_id, operation, error) &&
         connection_query_int64 (conn, "PRAGMA user_version",
                                 &header->user_version, operation, error) &&
         connection_query_int64 (conn, "SELECT count(*) FROM sqlite_master",
                                 &header->n_objects, operation, error);
}

/* Whether es-glib may use (and if need be upgrade) this database. */
static gboolean
check_header (const DbHeader  *header,
              const char      *display_path,
              GError         **error)
{
  gboolean ours = header->application_id == ES_SQLITE_APPLICATION_ID;

  /* Another application's database; or, with our id but tables and no
   * schema version, something damaged. An empty database without an id is
   * fair game: that is how SQLite creates them. */
  if ((!ours && (header->n_objects > 0 || header->application_id != 0)) ||
      (ours && header->n_objects > 0 && header->user_version < 1))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a file path */
                   _("'%s' is not an es-glib database"), display_path);
      return FALSE;
    }

  if (header->user_version > SCHEMA_VERSION)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a file path, the numbers schema versions */
                   _("'%s' has es-glib schema version %lld, newer than version %lld "
                     "that this es-glib knows; it needs a newer es-glib"),
                   display_path, (long long) header->user_version,
                   (long long) SCHEMA_VERSION);
      return FALSE;
    }

  return TRUE;
}

/* Brings the database to SCHEMA_VERSION: creates the schema in an empty
 * one, runs the missing migrations on an older one, does nothing to an
 * up-to-date one. Nothing is written unless the header checks pass. */
static gboolean
prepare_schema (EsConnection  *conn,
                const char    *display_path,
                GError       **error)
{
  DbHeader header = { 0, };
  g_autofree char *set_header = NULL;
  gint64 version;

  if (!read_header (conn, &header, error) || !check_header (&header, display_path, error))
    return FALSE;

  /* A file that SQLite could only open read-only (permissions): say so
   * now rather than with the first write. */
  if (sqlite3_db_readonly (conn->db, "main") == 1)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a file path */
                   _("'%s' cannot be written to"), display_path);
      return FALSE;
    }

  if (header.n_objects > 0 && header.user_version == SCHEMA_VERSION)
    return TRUE;

  /* Another process may be creating or upgrading the same file right now:
   * take the write lock, then look again. */
  if (!connection_exec (conn, "BEGIN IMMEDIATE", _("Creating the database schema"), error))
    return FALSE;

  if (!read_header (conn, &header, error) || !check_header (&header, display_path, error))
    goto rollback;

  for (version = header.n_objects == 0 ? 0 : header.user_version;
       version < SCHEMA_VERSION;
       version++)
    {
      if (!migrations[version] (conn, error))
        goto rollback;
    }

  /* Constants only: nothing from outside reaches this SQL. */
  set_header = g_strdup_printf ("PRAGMA application_id = %d; PRAGMA user_version = %d;",
                                ES_SQLITE_APPLICATION_ID, (int) SCHEMA_VERSION);
  if (!connection_exec (conn, set_header, _("Creating the database schema"), error) ||
      !connection_exec (conn, "COMMIT", _("Creating the database schema"), error))
    goto rollback;

  return TRUE;

rollback:
  if (!sqlite3_get_autocommit (conn->db))
    sqlite3_exec (conn->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* Reads the root page and the rightmost pages of every table and index,
 * which the first read or write of each would reach anyway: a file whose
 * damage is there fails to open (SQLITE_CORRUPT, see set_sqlite_error())
 * rather than at its first use. It costs a few page reads whatever the
 * size of the file; damage elsewhere shows when a read or write reaches
 * it (checking every page, PRAGMA quick_check, takes time in proportion
 * to the file). */
static gboolean
probe_pages (EsConnection  *conn,
             GError       **error)
{
  gint64 ignored = 0;

  return connection_query_int64 (conn,
                                 "SELECT coalesce((SELECT max(sequence_id) FROM events), 0)"
                                 " + length(coalesce((SELECT max(stream_id) FROM events), ''))"
                                 " + length(coalesce((SELECT max(event_type) FROM events), ''))"
                                 " + length(coalesce((SELECT max(stream_id) FROM snapshots), ''))",
                                 &ignored, _("Opening the database"), error);
}

/* ---------------------------------------------------------------------- *
 * Writer                                                                  *
 * ---------------------------------------------------------------------- */

typedef enum
{
  JOB_APPEND,
  JOB_SAVE_SNAPSHOT,
  JOB_SET_MAX_PAGE_COUNT,  /* tests only: job->version is the limit */
} JobKind;

/* One write, queued to the writer thread (es-write-queue-private.h).
 *
 * A synchronous caller builds its job on its own stack, with pointers to
 * its own arguments (it blocks until the job is done, so they outlive it).
 * An asynchronous job is allocated, refs its events and copies its stream
 * id (the caller returns at once), and carries the GTask the queue
 * completes. */
typedef struct
{
  EsWriteJob                base;              /* first: cancellable, task, result */
  JobKind                   kind;

  /* Input. */
  const char               *stream_id;         /* @all snapshots: ALL_STREAM_KEY */
  gint64                    expected_version;  /* append */
  EsCandidateEvent * const *events;            /* append */
  guint                     n_events;          /* append */
  const char               *projection_name;   /* snapshot */
  gint64                    version;           /* snapshot */
  GBytes                   *state;             /* snapshot */
} Job;

/* What the writer thread reuses: one prepared statement each. */
typedef enum
{
  W_BEGIN,
  W_COMMIT,
  W_ROLLBACK,
  W_SAVEPOINT,
  W_RELEASE,
  W_ROLLBACK_TO,
  W_MAX_VERSION,
  W_KEY_STORED,
  W_INSERT,
  W_SAVE_SNAPSHOT,
  N_WRITER_STMTS
} WriterStmt;

static const char * const writer_sql[N_WRITER_STMTS] = {
  [W_BEGIN] = "BEGIN IMMEDIATE",
  [W_COMMIT] = "COMMIT",
  [W_ROLLBACK] = "ROLLBACK",
  [W_SAVEPOINT] = "SAVEPOINT job",
  [W_RELEASE] = "RELEASE job",
  [W_ROLLBACK_TO] = "ROLLBACK TO job",
  [W_MAX_VERSION] = "SELECT max(version) FROM events WHERE stream_id = ?",
  /* Served by the unique (stream_id, idempotency_key) index. */
  [W_KEY_STORED] = "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = ?"
                   " AND idempotency_key = ?)",
  /* A stored idempotency key makes the INSERT do nothing (no row
   * changed) rather than fail: the unique index checks it anyway, so no
   * lookup of its own is needed. A taken version still fails. */
  [W_INSERT] = "INSERT INTO events (stream_id, version, idempotency_key, event_type,"
               " timestamp, data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
               " ON CONFLICT (stream_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
               " DO NOTHING",
  [W_SAVE_SNAPSHOT] = "INSERT OR REPLACE INTO snapshots (stream_id, projection_name,"
                      " version, state, timestamp) VALUES (?, ?, ?, ?, ?)",
};

/* What the writer thread works with: the write connection and its
 * statements, the user data of the storage's write queue, which the
 * writer thread owns once it runs (es-write-queue-private.h). */
typedef struct
{
  EsConnection *conn;      /* (owned) the write connection; only the writer
                            * thread touches it once the thread runs */
  sqlite3_stmt *stmts[N_WRITER_STMTS];  /* (owned) on conn */
} EsWriter;

/* Closes the write connection: statements first, as sqlite3_close() wants. */
static void
writer_close_connection (EsWriter *writer)
{
  guint i;

  for (i = 0; i < N_WRITER_STMTS; i++)
    g_clear_pointer (&writer->stmts[i], sqlite3_finalize);
  g_clear_pointer (&writer->conn, connection_close);
}

static void
writer_close_connection_cb (gpointer data)
{
  writer_close_connection (data);
}

static void
writer_free (gpointer data)
{
  EsWriter *writer = data;

  writer_close_connection (writer);
  g_free (writer);
}

/* Takes @conn; prepares every statement the writer uses, once. */
static EsWriter *
writer_new (EsConnection  *conn,
            GError       **error)
{
  EsWriter *writer = g_new0 (EsWriter, 1);
  guint i;

  writer->conn = conn;

  for (i = 0; i < N_WRITER_STMTS; i++)
    {
      int rc = sqlite3_prepare_v3 (conn->db, writer_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                   &writer->stmts[i], NULL);

      if (rc != SQLITE_OK)
        {
          connection_set_error (conn, rc, _("Opening the database"), error);
          writer_free (writer);
          return NULL;
        }
    }

  return writer;
}

/* Runs a statement that returns no row (BEGIN, COMMIT, SAVEPOINT...). */
static gboolean
writer_exec (EsWriter    *writer,
             WriterStmt   which,
             const char  *operation,
             GError     **error)
{
  sqlite3_stmt *stmt = writer->stmts[which];
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    connection_set_error (writer->conn, rc, operation, error);
  sqlite3_reset (stmt);
  return rc == SQLITE_DONE;
}

/* Abandons the open transaction, if SQLite has not already done so (it
 * rolls back by itself after some errors: I/O, disk full...). */
static void
writer_rollback (EsWriter *writer)
{
  g_autoptr(GError) error = NULL;

  if (sqlite3_get_autocommit (writer->conn->db))
    return;
  if (!writer_exec (writer, W_ROLLBACK, _("Rolling back"), &error))
    g_warning ("%s", error->message);
}

/* Inserts one event; returns SQLite's result code (SQLITE_DONE on
 * success), leaving the error message in the connection. */
static int
writer_insert (EsWriter         *writer,
               const char       *stream_id,
               gint64            version,
               const char       *key,
               EsCandidateEvent *event,
               gint64            timestamp)
{
  sqlite3_stmt *stmt = writer->stmts[W_INSERT];
  int rc;

  /* Everything bound lives in the job until the step is done: no copy. A
   * failed bind (a value over SQLite's length limit) must not go unseen, or
   * the previous event's value would be inserted. */
  if ((rc = sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 2, version)) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 3, key, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 4, es_candidate_event_get_event_type (event), -1,
                               SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 5, timestamp)) == SQLITE_OK &&
      (rc = bind_bytes (stmt, 6, es_candidate_event_get_data (event))) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 7, es_candidate_event_get_metadata (event), -1,
                               SQLITE_STATIC)) == SQLITE_OK)
    rc = sqlite3_step (stmt);

  /* Every parameter is bound again for the next event: a reset is enough
   * here; writer_append() clears the bindings once the job is done. */
  sqlite3_reset (stmt);
  return rc;
}

/* Whether every event of @job has an idempotency key already stored in
 * its stream: then the append is the retry of one that was written. */
static gboolean
writer_all_stored (EsWriter  *writer,
                   Job       *job,
                   gboolean  *out_all_stored,
                   GError   **error)
{
  sqlite3_stmt *stmt = writer->stmts[W_KEY_STORED];
  guint i;

  *out_all_stored = FALSE;
  for (i = 0; i < job->n_events; i++)
    {
      const char *key = es_candidate_event_get_idempotency_key (job->events[i]);
      gboolean stored;
      int rc;

      if (key == NULL)
        return TRUE;

      sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, key, -1, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
      stored = rc == SQLITE_ROW && sqlite3_column_int (stmt, 0) != 0;
      if (rc != SQLITE_ROW)
        connection_set_error (writer->conn, rc, _("Appending events"), error);
      stmt_done (stmt);
      if (rc != SQLITE_ROW)
        return FALSE;
      if (!stored)
        return TRUE;
    }

  *out_all_stored = TRUE;
  return TRUE;
}

/* The body of an append, inside the group's transaction (and the job's
 * savepoint): the idempotency lookups, the expected-version check, the
 * inserts (see es_storage_handle_append() for the order). On failure the
 * caller undoes what was written. */
static gboolean
writer_append (EsWriter  *writer,
               Job       *job,
               GError   **error)
{
  sqlite3_stmt *stmt = writer->stmts[W_MAX_VERSION];
  gint64 timestamp = g_get_real_time ();
  gint64 version = 0;
  guint i;
  int rc;

  /* Versions run 1..N without gaps: the stream's version is its largest,
   * found at the end of the (stream_id, version) index; NULL (0) when the
   * stream is empty. */
  sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    version = sqlite3_column_int64 (stmt, 0);
  else
    connection_set_error (writer->conn, rc, _("Appending events"), error);
  stmt_done (stmt);
  if (rc != SQLITE_ROW)
    return FALSE;

  /* The lookups come first in the contract; looking the keys up only on a
   * mismatch gives the same answers, and spares the lookups otherwise. */
  if (job->expected_version != ES_VERSION_ANY && job->expected_version != version)
    {
      gboolean all_stored;

      if (!writer_all_stored (writer, job, &all_stored, error))
        return FALSE;

      /* Every event is stored: a retry, which succeeds, writing nothing. */
      job->base.out_version = version;
      if (all_stored)
        return TRUE;

      /* The caller learns where the stream is along with the conflict. */
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   /* Translators: the numbers are stream versions, %s a stream id */
                   _("Expected version %lld but stream '%s' is at version %lld"),
                   (long long) job->expected_version, job->stream_id, (long long) version);
      return FALSE;
    }

  for (i = 0; i < job->n_events; i++)
    {
      EsCandidateEvent *event = job->events[i];
      const char *key = es_candidate_event_get_idempotency_key (event);

      rc = writer_insert (writer, job->stream_id, version + 1, key, event, timestamp);
      if (rc != SQLITE_DONE)
        {
          connection_set_error (writer->conn, rc, _("Appending events"), error);
          break;
        }

      /* The key is already stored in this stream (or, should the stream
       * layer have let one through, earlier in this batch): the event is
       * skipped, not an error, and takes no version. */
      if (key != NULL && sqlite3_changes (writer->conn->db) == 0)
        continue;
      version++;
    }

  /* Drop the pointers into this job's events. */
  sqlite3_clear_bindings (writer->stmts[W_INSERT]);
  if (i < job->n_events)
    return FALSE;

  job->base.out_version = version;
  return TRUE;
}

static gboolean
writer_save_snapshot (EsWriter  *writer,
                      Job       *job,
                      GError   **error)
{
  sqlite3_stmt *stmt = writer->stmts[W_SAVE_SNAPSHOT];
  int rc;

  /* INSERT OR REPLACE: the (stream, projection) primary key makes it
   * replace the previous snapshot. */
  if ((rc = sqlite3_bind_text (stmt, 1, job->stream_id, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_text (stmt, 2, job->projection_name, -1, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 3, job->version)) == SQLITE_OK &&
      (rc = bind_bytes (stmt, 4, job->state)) == SQLITE_OK &&
      (rc = sqlite3_bind_int64 (stmt, 5, g_get_real_time ())) == SQLITE_OK)
    rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    connection_set_error (writer->conn, rc, _("Saving a snapshot"), error);
  stmt_done (stmt);
  return rc == SQLITE_DONE;
}

/* Tests only (see _es_sqlite_storage_set_max_page_count()): a per-connection
 * setting, so it runs on the writer thread, the write connection's owner.
 * Not transactional: it stays in force whatever the group does. */
static gboolean
writer_set_max_page_count (EsWriter  *writer,
                           Job       *job,
                           GError   **error)
{
  g_autofree char *sql = g_strdup_printf ("PRAGMA max_page_count = %" G_GINT64_FORMAT,
                                          job->version);

  return connection_exec (writer->conn, sql, "Setting the page limit", error);
}

/* Fails @job with G_IO_ERROR_CANCELLED if its cancellable was cancelled. */
static gboolean
job_cancelled (Job *job)
{
  if (!g_cancellable_is_cancelled (job->base.cancellable))
    return FALSE;

  g_clear_error (&job->base.error);
  g_cancellable_set_error_if_cancelled (job->base.cancellable, &job->base.error);
  return TRUE;
}

/* Runs one job inside the group's transaction; FALSE with job->base.error set
 * when it failed, and then its writes must be undone. */
static gboolean
writer_run_job (EsWriter *writer,
                Job      *job)
{
  gboolean ok;

  if (job->kind == JOB_APPEND)
    ok = writer_append (writer, job, &job->base.error);
  else if (job->kind == JOB_SET_MAX_PAGE_COUNT)
    ok = writer_set_max_page_count (writer, job, &job->base.error);
  else
    ok = writer_save_snapshot (writer, job, &job->base.error);

  /* Cancelled while it ran: it is still undone, as it is not committed. */
  return ok && !job_cancelled (job);
}

/* Frees an asynchronous job: one block with its events and stream id
 * (see es_sqlite_storage_append_async()); the task is already gone. */
static void
job_free_async (EsWriteJob *base)
{
  Job *job = (Job *) base;
  guint i;

  for (i = 0; i < job->n_events; i++)
    g_object_unref (job->events[i]);
  g_clear_error (&job->base.error);
  g_free (job);
}

/* Runs a group of jobs in one transaction ("group commit"): appends queued
 * while the previous group committed share one commit, which is where a
 * write's time goes. Each job runs inside its own savepoint, so one that
 * fails (a wrong expected version, a cancellation, a constraint) is rolled
 * back alone and reports its own error while the others commit. No job is
 * reported successful before the COMMIT is; if the COMMIT fails, every job
 * fails.
 *
 * A group of one job, the usual case when a single thread writes, needs no
 * savepoint: when it fails, the whole transaction is rolled back. */
static void
writer_run_group (EsWriteJob **base_jobs,
                  guint        n_jobs,
                  GError     **out_group_error,
                  gpointer     user_data)
{
  EsWriter *writer = user_data;
  Job **jobs = (Job **) base_jobs;
  g_autoptr(GError) group_error = NULL;
  gboolean savepoints = n_jobs > 1;
  const char *operation = _("Writing to the database");
  guint i;

  if (!writer_exec (writer, W_BEGIN, operation, &group_error))
    goto complete;

  for (i = 0; i < n_jobs; i++)
    {
      Job *job = jobs[i];

      /* Cancelled before the writer got to it: not written at all. */
      if (job_cancelled (job))
        continue;

      if (savepoints && !writer_exec (writer, W_SAVEPOINT, operation, &group_error))
        break;

      if (writer_run_job (writer, job))
        {
          if (savepoints && !writer_exec (writer, W_RELEASE, operation, &group_error))
            break;
          continue;
        }

      /* The job failed. Some errors (I/O, disk full) make SQLite roll the
       * whole transaction back itself: then nothing of the group stands. */
      if (sqlite3_get_autocommit (writer->conn->db))
        {
          group_error = g_error_copy (job->base.error);
          goto complete;
        }

      if (!savepoints)
        {
          writer_rollback (writer);
          goto complete;
        }

      /* ROLLBACK TO undoes the job's writes but keeps the savepoint open. */
      if (!writer_exec (writer, W_ROLLBACK_TO, operation, &group_error) ||
          !writer_exec (writer, W_RELEASE, operation, &group_error))
        break;
    }

  if (group_error == NULL && writer_exec (writer, W_COMMIT, operation, &group_error))
    goto complete;

  writer_rollback (writer);

complete:
  /* Every job without an error of its own gets this one: not written. */
  if (group_error != NULL)
    g_propagate_error (out_group_error, g_steal_pointer (&group_error));
}

/* Queues a synchronous job and blocks until the writer has done it. */
static gboolean
writer_run_sync (EsWriteQueue  *queue,
                 Job           *job,
                 GError       **error)
{
  if (!_es_write_queue_run_sync (queue, &job->base))
    {
      set_closed_error (error);
      return FALSE;
    }

  if (job->base.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&job->base.error));
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * EsSqliteStorage                                                         *
 * ---------------------------------------------------------------------- */

struct _EsSqliteStorage
{
  GObject       parent_instance;

  /* Construct-only properties. */
  char         *path;            /* (owned) (nullable) as given */
  guint         pool_size;
  guint         cache_size_kib;
  guint         busy_timeout;    /* milliseconds */
  EsDurability  durability;
  gboolean      read_only;

  /* Set by init, constant afterwards. */
  gboolean      init_done;
  gboolean      init_ok;
  gboolean      in_memory;
  char         *uri;             /* (owned) what connections open */
  char         *where;           /* (owned) the database as errors name it */
  guint         created_files;   /* read-only: the SIDE_* files the open created */
  char         *file_key;        /* (owned) (nullable) counted in open_files */

  EsWriteQueue *writer;          /* (owned) shared with the writer thread */

  /* The read connections (es-pool-private.h); closed until init succeeds. */
  EsPool        pool;

  /* Held for the whole of a close, so a second close waits for the first
   * to finish. Taken before the pool's lock (_es_pool_close()) and the writer queue's
   * lock (_es_write_queue_stop()), never after them. */
  GMutex        close_lock;
  gboolean      closed;          /* guarded by close_lock */
};

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
  conn = connection_open (self->uri, flags, self->where, self->busy_timeout, error);
  if (conn == NULL)
    return NULL;

  pragmas = g_strdup_printf ("PRAGMA query_only = 1;"
                             "PRAGMA foreign_keys = OFF;"
                             "PRAGMA cache_size = -%u;",
                             self->cache_size_kib);
  if (!connection_exec (conn, pragmas, _("Opening the database"), error))
    {
      connection_close (conn);
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
      connection_set_error (conn, rc, operation, error);
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
                             "PRAGMA foreign_keys = OFF;"
                             "PRAGMA cache_size = -%u;",
                             self->durability == ES_DURABILITY_FULL ? "FULL" : "NORMAL",
                             self->cache_size_kib);
  return connection_exec (conn, pragmas, operation, error);
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
  readers = g_ptr_array_new_full (self->pool_size, connection_close);
  g_ptr_array_add (readers, first);

  if (!read_header (first, &header, error) ||
      !check_header (&header, display_path, error))
    return FALSE;

  if (header.n_objects == 0 || header.user_version < SCHEMA_VERSION)
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

  if (!probe_pages (first, error))
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
  EsWriter *writer = NULL;
  EsWriteQueue *queue;
  guint i;

  conn = connection_open (self->uri,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                          self->where, self->busy_timeout, error);
  if (conn == NULL)
    return FALSE;

  /* Look before touching: the header checks come before any pragma that
   * writes (journal_mode = WAL does). And should they fail on another
   * application's WAL-mode database, closing must not checkpoint its log
   * into its file, as the last connection to close otherwise does. */
  sqlite3_db_config (conn->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  if (!prepare_schema (conn, display_path, error) ||
      !probe_pages (conn, error) ||
      !configure_writer (self, conn, error))
    {
      connection_close (conn);
      return FALSE;
    }
  sqlite3_db_config (conn->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);

  readers = g_ptr_array_new_full (self->pool_size, connection_close);
  for (i = 0; i < self->pool_size; i++)
    {
      EsConnection *reader = open_reader (self, SQLITE_OPEN_NOMUTEX, error);

      if (reader == NULL)
        {
          connection_close (conn);
          return FALSE;
        }
      g_ptr_array_add (readers, reader);
    }

  writer = writer_new (conn, error);
  if (writer == NULL)
    return FALSE;

  /* The writer thread owns the write connection from now on, and closes
   * it on its way out. */
  queue = _es_write_queue_new (WRITER_MAX_GROUP, writer_run_group, job_free_async,
                               writer_close_connection_cb, writer, writer_free);
  if (!_es_write_queue_start (queue, "es-sqlite-writer", error))
    {
      _es_write_queue_unref (queue);
      return FALSE;
    }
  self->writer = queue;

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

/* ---------------------------------------------------------------------- *
 * The read pool                                                           *
 * ---------------------------------------------------------------------- */

/* The pool of read connections is es-glib/backend/es-pool.c: all of them
 * opened by init (no open function), and closed as they come back once the
 * storage is closed. */

static void
interrupt_connection (GCancellable *cancellable,
                      gpointer      data)
{
  /* Thread-safe: makes the statement running on that connection return
   * SQLITE_INTERRUPT; SQLite clears it before the next statement starts. */
  sqlite3_interrupt (data);
}

/* Starts a read: borrows a connection and connects @cancellable to
 * sqlite3_interrupt() on it, so a cancellation stops a long query. */
static EsConnection *
read_begin (EsSqliteStorage  *self,
            GCancellable     *cancellable,
            gulong           *out_handler,
            GError          **error)
{
  EsConnection *conn = _es_pool_acquire (&self->pool, cancellable, error);

  *out_handler = 0;
  if (conn != NULL && cancellable != NULL)
    *out_handler = g_cancellable_connect (cancellable, G_CALLBACK (interrupt_connection),
                                          conn->db, NULL);
  return conn;
}

static void
read_end (EsSqliteStorage *self,
          EsConnection    *conn,
          GCancellable    *cancellable,
          gulong           handler)
{
  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);
  _es_pool_release (&self->pool, conn);
}

/* ---------------------------------------------------------------------- *
 * Filters                                                                 *
 * ---------------------------------------------------------------------- */

/* Translates an EsEventFilter into SQL. The SQL text holds only column
 * names, operators and '?' placeholders; every value of the filter and
 * every metadata JSON path is a bound parameter.
 *
 * For example, reading stream 'cart-7' with the clauses
 *   event_type IN ['Added', 'Removed'] and metadata.user.id = 42
 * gives
 *   SELECT ... FROM events WHERE stream_id = ? AND version > ?
 *     AND event_type IN (?, ?)
 *     AND CASE WHEN json_valid(metadata) THEN
 *           (json_type(metadata, ?) IN ('integer', 'real')
 *            AND json_extract(metadata, ?) = ?) END
 *     ORDER BY version LIMIT ?
 * bound to 'cart-7', the last version read, 'Added', 'Removed',
 * '$."user"."id"' (twice), 42 and the page size.
 *
 * An `in` list longer than IN_LIST_INLINE_MAX values is bound as one
 * parameter, a JSON array read back with json_each(), whatever its length:
 *   event_type IN (SELECT value FROM json_each(?))
 * SQLite materializes the subquery once per statement run, in a temporary
 * index. The clauses are AND-ed as a balanced tree of parentheses, so the
 * expression depth grows with the logarithm of their number: SQLite
 * refuses expressions deeper than 1000 ("Expression tree is too large").
 * The filter's validation caps the number of clauses (see
 * es-event-filter.c), which keeps the number of parameters below
 * SQLite's limit.
 *
 * The statement comes from the connection's cache, found by its SQL text,
 * which is known only once the whole filter is translated; so the
 * translation first collects the values to bind, in placeholder order, and
 * binds them after. */

typedef enum
{
  BIND_TEXT,
  BIND_INT64,
  BIND_DOUBLE,
} BindKind;

typedef struct
{
  BindKind kind;
  union
  {
    const char *text;  /* points into the filter, `values` or `paths` */
    gint64      int64;
    double      dbl;
  } v;
} Bind;

/* `in` lists up to this length are written as IN (?, ?...) (on a
 * metadata path, as ORs of add_metadata_equals()): for a few values that is
 * a little faster than building the temporary index of a json_each()
 * subquery. Only in filters of at most INLINE_MAX_CLAUSES clauses, so that
 * a statement never has more than 32766 parameters, the default limit of
 * SQLite builds since 3.32: inline, a clause takes up to 3 *
 * IN_LIST_INLINE_MAX of them; otherwise at most 5. */
#define IN_LIST_INLINE_MAX 16
#define INLINE_MAX_CLAUSES 512

typedef struct
{
  GString   *sql;
  GArray    *binds;   /* (element-type Bind) in placeholder order */
  GPtrArray *paths;   /* (element-type utf8) JSON paths and JSON arrays bound as text */
  GPtrArray *values;  /* (element-type GVariant) elements of `in` arrays */
  gsize      inline_max;  /* longest `in` list written inline */
} QueryBuilder;

static void
query_builder_init (QueryBuilder *builder,
                    const char   *start)
{
  builder->sql = g_string_new (start);
  builder->binds = g_array_new (FALSE, FALSE, sizeof (Bind));
  builder->paths = g_ptr_array_new_with_free_func (g_free);
  builder->values = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
}

static void
query_builder_clear (QueryBuilder *builder)
{
  if (builder->sql == NULL)
    return;
  g_string_free (builder->sql, TRUE);
  g_array_unref (builder->binds);
  g_ptr_array_unref (builder->paths);
  g_ptr_array_unref (builder->values);
  builder->sql = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QueryBuilder, query_builder_clear)

static void
bind_text (QueryBuilder *builder,
           const char   *text)
{
  Bind bind = { BIND_TEXT, { .text = text } };

  g_array_append_val (builder->binds, bind);
}

static void
bind_int64 (QueryBuilder *builder,
            gint64        value)
{
  Bind bind = { BIND_INT64, { .int64 = value } };

  g_array_append_val (builder->binds, bind);
}

static void
bind_double (QueryBuilder *builder,
             double        value)
{
  Bind bind = { BIND_DOUBLE, { .dbl = value } };

  g_array_append_val (builder->binds, bind);
}

/* Binds a scalar value of a column clause; the filter was validated, so
 * it is a string for text columns and an integer for integer ones. */
static void
bind_scalar (QueryBuilder *builder,
             GVariant     *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;

  switch (es_event_filter_classify_value (value, &string, &int64, &dbl, &boolean))
    {
    case ES_FILTER_VALUE_STRING:
      bind_text (builder, string);
      break;
    case ES_FILTER_VALUE_INT64:
      bind_int64 (builder, int64);
      break;
    case ES_FILTER_VALUE_DOUBLE:
      bind_double (builder, dbl);
      break;
    case ES_FILTER_VALUE_BOOLEAN:
      bind_int64 (builder, boolean ? 1 : 0);
      break;
    case ES_FILTER_VALUE_INVALID:
    default:
      bind_text (builder, NULL);  /* NULL: equal to nothing */
      break;
    }
}

/* The elements of an `in` array; kept alive by the builder, since bound
 * strings point into them. */
static GVariant *
builder_child (QueryBuilder *builder,
               GVariant     *array,
               gsize         index)
{
  GVariant *child = g_variant_get_child_value (array, index);

  g_ptr_array_add (builder->values, child);
  return child;
}

static void
append_json_string (GString    *json,
                    const char *string)
{
  const char *p;

  g_string_append_c (json, '"');
  for (p = string; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        {
          g_string_append_c (json, '\\');
          g_string_append_c (json, *p);
        }
      else if ((guchar) *p < 0x20)
        g_string_append_printf (json, "\\u%04x", (guint) (guchar) *p);
      else
        g_string_append_c (json, *p);
    }
  g_string_append_c (json, '"');
}

/* The strings and numbers of an `in` array as a JSON array, for
 * json_each(), which gives them back as TEXT, INTEGER and REAL values with
 * no affinity: a string never equals a number, and numbers compare by
 * value (1 = 1.0, exactly: 2^53 + 1 is not 2^53 as a double).
 *
 * Integers are written as they are. So is a double with an integral value
 * that fits in 64 bits (it equals the same numbers as that integer); any
 * other finite double takes 17 significant digits, which SQLite's parser
 * reads back as the same double (checked on 400,000 random doubles with
 * SQLite 3.40); infinities as 9e999, which SQLite reads as infinite, as
 * its JSON functions read them in metadata; NaN equals nothing and is
 * left out. Booleans do not go in the array (json_each() would give 1 and
 * 0): @has_true and @has_false tell whether the array held them.
 *
 * Returns: the number of values written; the text is kept by @builder */
static guint
add_json_array (QueryBuilder  *builder,
                GVariant      *array,
                const char   **out_json,
                gboolean      *has_true,
                gboolean      *has_false)
{
  GString *json = g_string_new ("[");
  gsize n = g_variant_n_children (array);
  guint n_written = 0;
  gsize i;

  *has_true = *has_false = FALSE;

  for (i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (array, i);
      const char *string = NULL;
      gint64 int64 = 0;
      double dbl = 0.0;
      gboolean boolean = FALSE;
      char buffer[G_ASCII_DTOSTR_BUF_SIZE];
      gsize before = json->len;

      if (n_written > 0)
        g_string_append_c (json, ',');

      switch (es_event_filter_classify_value (child, &string, &int64, &dbl, &boolean))
        {
        case ES_FILTER_VALUE_STRING:
          append_json_string (json, string);
          break;

        case ES_FILTER_VALUE_INT64:
          g_string_append_printf (json, "%" G_GINT64_FORMAT, int64);
          break;

        case ES_FILTER_VALUE_DOUBLE:
          if (isnan (dbl))
            {
              g_string_truncate (json, before);
              continue;
            }
          if (isinf (dbl))
            g_string_append (json, dbl > 0 ? "9e999" : "-9e999");
          else if (dbl >= -9223372036854775808.0 && dbl < 9223372036854775808.0 &&
                   (double) (gint64) dbl == dbl)
            g_string_append_printf (json, "%" G_GINT64_FORMAT, (gint64) dbl);
          else
            g_string_append (json, g_ascii_formatd (buffer, sizeof buffer, "%.17g", dbl));
          break;

        case ES_FILTER_VALUE_BOOLEAN:
          if (boolean)
            *has_true = TRUE;
          else
            *has_false = TRUE;
          g_string_truncate (json, before);
          continue;

        case ES_FILTER_VALUE_INVALID:
        default:
          g_string_truncate (json, before);
          continue;
        }

      n_written++;
    }

  g_string_append_c (json, ']');
  g_ptr_array_add (builder->paths, g_string_free (json, FALSE));
  *out_json = g_ptr_array_index (builder->paths, builder->paths->len - 1);
  return n_written;
}

static void
add_column_clause (QueryBuilder     *builder,
                   const char       *column,
                   EsFilterOperator  op,
                   GVariant         *value)
{
  gsize n;
  gsize i;

  switch (op)
    {
    case ES_FILTER_OPERATOR_IN:
      n = g_variant_n_children (value);
      if (n > builder->inline_max)
        {
          const char *json = NULL;
          gboolean has_true;
          gboolean has_false;

          /* The filter was validated: strings for text columns, integers
           * for integer ones, so nothing is left out of the array. */
          add_json_array (builder, value, &json, &has_true, &has_false);
          g_string_append_printf (builder->sql, "%s IN (SELECT value FROM json_each(?))",
                                  column);
          bind_text (builder, json);
          break;
        }
      g_string_append_printf (builder->sql, "%s IN (", column);
      for (i = 0; i < n; i++)
        {
          g_string_append (builder->sql, i == 0 ? "?" : ", ?");
          bind_scalar (builder, builder_child (builder, value, i));
        }
      g_string_append_c (builder->sql, ')');
      break;

    case ES_FILTER_OPERATOR_LIKE:
      g_string_append_printf (builder->sql, "%s LIKE ?", column);
      bind_scalar (builder, value);
      break;

    case ES_FILTER_OPERATOR_EQUALS:
    default:
      g_string_append_printf (builder->sql, "%s = ?", column);
      bind_scalar (builder, value);
      break;
    }
}

/* A metadata path equals a value: a JSON string equals a string, a JSON
 * number a numerically equal integer or double, JSON true/false a boolean;
 * nothing else matches, and a missing path never does. json_type() tells
 * the kinds apart: json_extract() alone would make the string '1' equal
 * the number 1 and true equal 1. SQLite caches the parsed metadata within a
 * row, so the second JSON call does not parse it again. */
static void
add_metadata_equals (QueryBuilder *builder,
                     const char   *path,
                     GVariant     *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;

  EsFilterValueKind kind = es_event_filter_classify_value (value, &string, &int64, &dbl, &boolean);

  switch (kind)
    {
    case ES_FILTER_VALUE_STRING:
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)");
      bind_text (builder, path);
      bind_text (builder, path);
      bind_text (builder, string);
      break;

    case ES_FILTER_VALUE_INT64:
    case ES_FILTER_VALUE_DOUBLE:
      /* SQLite compares INTEGER and REAL by value: 1 = 1.0. */
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) IN ('integer', 'real')"
                       " AND json_extract(metadata, ?) = ?)");
      bind_text (builder, path);
      bind_text (builder, path);
      if (kind == ES_FILTER_VALUE_INT64)
        bind_int64 (builder, int64);
      else
        bind_double (builder, dbl);
      break;

    case ES_FILTER_VALUE_BOOLEAN:
      g_string_append (builder->sql, boolean ? "json_type(metadata, ?) = 'true'"
                                             : "json_type(metadata, ?) = 'false'");
      bind_text (builder, path);
      break;

    case ES_FILTER_VALUE_INVALID:
    default:
      g_string_append (builder->sql, "0");
      break;
    }
}

/* A long `in` list on a metadata path: the strings and numbers in one
 * JSON array (add_json_array()), compared with the value at the path when
 * it is a JSON string or number (json_type() keeps true, false and objects
 * out, as in add_metadata_equals()); booleans through json_type() alone. */
static void
add_metadata_in_json (QueryBuilder *builder,
                      const char   *path,
                      GVariant     *values)
{
  const char *json = NULL;
  gboolean has_true;
  gboolean has_false;
  gboolean first = TRUE;

  g_string_append_c (builder->sql, '(');
  if (add_json_array (builder, values, &json, &has_true, &has_false) > 0)
    {
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) IN ('text', 'integer', 'real')"
                       " AND json_extract(metadata, ?) IN (SELECT value FROM json_each(?)))");
      bind_text (builder, path);
      bind_text (builder, path);
      bind_text (builder, json);
      first = FALSE;
    }
  if (has_true)
    {
      g_string_append (builder->sql, first ? "json_type(metadata, ?) = 'true'"
                                           : " OR json_type(metadata, ?) = 'true'");
      bind_text (builder, path);
      first = FALSE;
    }
  if (has_false)
    {
      g_string_append (builder->sql, first ? "json_type(metadata, ?) = 'false'"
                                           : " OR json_type(metadata, ?) = 'false'");
      bind_text (builder, path);
      first = FALSE;
    }
  if (first)
    g_string_append_c (builder->sql, '0');  /* only NaNs: equal to nothing */
  g_string_append_c (builder->sql, ')');
}

/* "metadata.a.b" → the JSON path $."a"."b". Quoted labels take any key;
 * the filter's validation rejects keys holding '"'. SQLite compares a
 * label with the key's text as written in the JSON, escapes included, so a
 * backslash is written the way JSON writers escape it. */
static const char *
metadata_json_path (QueryBuilder *builder,
                    char * const *keys)
{
  GString *path = g_string_new ("$");
  guint i;

  for (i = 0; keys[i] != NULL; i++)
    {
      const char *p;

      g_string_append (path, ".\"");
      for (p = keys[i]; *p != '\0'; p++)
        {
          if (*p == '\\')
            g_string_append_c (path, '\\');
          g_string_append_c (path, *p);
        }
      g_string_append_c (path, '"');
    }

  g_ptr_array_add (builder->paths, g_string_free (path, FALSE));
  return g_ptr_array_index (builder->paths, builder->paths->len - 1);
}

static void
add_metadata_clause (QueryBuilder     *builder,
                     char * const     *keys,
                     EsFilterOperator  op,
                     GVariant         *value)
{
  const char *path = metadata_json_path (builder, keys);
  gsize n;
  gsize i;

  /* The stream layer validates metadata with json-glib, which accepts
   * text SQLite's JSON functions refuse (comments, single quotes, hex
   * numbers...): on such a row, json_type() would fail the whole read.
   * json_valid() first, in a CASE (which, unlike AND, is sure to evaluate
   * lazily), makes that row simply not match. It costs about 15% on a
   * metadata scan: SQLite keeps the parse for the calls that follow. */
  g_string_append (builder->sql, "CASE WHEN json_valid(metadata) THEN ");

  switch (op)
    {
    case ES_FILTER_OPERATOR_IN:
      n = g_variant_n_children (value);
      if (n <= builder->inline_max)
        {
          g_string_append_c (builder->sql, '(');
          for (i = 0; i < n; i++)
            {
              if (i > 0)
                g_string_append (builder->sql, " OR ");
              add_metadata_equals (builder, path, builder_child (builder, value, i));
            }
          g_string_append_c (builder->sql, ')');
        }
      else
        add_metadata_in_json (builder, path, value);
      break;

    case ES_FILTER_OPERATOR_LIKE:
      /* LIKE matches string values only. */
      g_string_append (builder->sql,
                       "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) LIKE ?)");
      bind_text (builder, path);
      bind_text (builder, path);
      bind_scalar (builder, value);
      break;

    case ES_FILTER_OPERATOR_EQUALS:
    default:
      add_metadata_equals (builder, path, value);
      break;
    }

  g_string_append (builder->sql, " END");
}

/* Appends clauses @first to @last - 1 of @filter, AND-ed, as a balanced
 * tree: "((c0 AND c1) AND (c2 AND c3))". A flat "c0 AND c1 AND ..." is a
 * tree as deep as the number of clauses, and SQLite refuses expressions
 * deeper than 1000. The clauses keep their order, and so do their
 * parameters. */
static void
add_clauses (QueryBuilder  *builder,
             EsEventFilter *filter,
             guint          first,
             guint          last)
{
  g_auto(GStrv) keys = NULL;
  EsFilterOperator op = ES_FILTER_OPERATOR_EQUALS;
  GVariant *value = NULL;
  const char *field;
  EsFilterField kind;

  if (last - first > 1)
    {
      guint middle = first + (last - first) / 2;

      g_string_append_c (builder->sql, '(');
      add_clauses (builder, filter, first, middle);
      g_string_append (builder->sql, " AND ");
      add_clauses (builder, filter, middle, last);
      g_string_append_c (builder->sql, ')');
      return;
    }

  field = es_event_filter_get_clause (filter, first, &op, &value);
  kind = es_event_filter_parse_field (field, &keys);

  switch (kind)
    {
    case ES_FILTER_FIELD_STREAM_ID:
      add_column_clause (builder, "stream_id", op, value);
      break;
    case ES_FILTER_FIELD_EVENT_TYPE:
      add_column_clause (builder, "event_type", op, value);
      break;
    case ES_FILTER_FIELD_VERSION:
      add_column_clause (builder, "version", op, value);
      break;
    case ES_FILTER_FIELD_SEQUENCE_ID:
      add_column_clause (builder, "sequence_id", op, value);
      break;
    case ES_FILTER_FIELD_METADATA:
      add_metadata_clause (builder, keys, op, value);
      break;
    case ES_FILTER_FIELD_INVALID:
    default:
      /* Validation rejects these; should one get here, it selects
       * nothing rather than everything. */
      g_string_append (builder->sql, "0");
      break;
    }
}

/* Appends " AND <clauses>" for @filter, which the storage handle's
 * wrapper has validated (it has at least one clause). */
static void
add_filter (QueryBuilder  *builder,
            EsEventFilter *filter)
{
  guint n_clauses = es_event_filter_get_n_clauses (filter);

  builder->inline_max = n_clauses <= INLINE_MAX_CLAUSES ? IN_LIST_INLINE_MAX : 0;
  g_string_append (builder->sql, " AND ");
  add_clauses (builder, filter, 0, n_clauses);
}

static int
apply_binds (sqlite3_stmt *stmt,
             int           index,
             GArray       *binds)
{
  guint i;
  int rc = SQLITE_OK;

  for (i = 0; i < binds->len && rc == SQLITE_OK; i++, index++)
    {
      const Bind *bind = &g_array_index (binds, Bind, i);

      switch (bind->kind)
        {
        case BIND_TEXT:
          rc = sqlite3_bind_text (stmt, index, bind->v.text, -1, SQLITE_STATIC);
          break;
        case BIND_INT64:
          rc = sqlite3_bind_int64 (stmt, index, bind->v.int64);
          break;
        case BIND_DOUBLE:
        default:
          rc = sqlite3_bind_double (stmt, index, bind->v.dbl);
          break;
        }
    }

  return rc;
}

/* ---------------------------------------------------------------------- *
 * EsStorageHandle                                                         *
 * ---------------------------------------------------------------------- */

static gboolean
es_sqlite_storage_append (EsStorageHandle          *handle,
                          const char               *stream_id,
                          gint64                    expected_version,
                          EsCandidateEvent * const *events,
                          guint                     n_events,
                          gint64                   *out_version,
                          GCancellable             *cancellable,
                          GError                  **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  GError *local_error = NULL;
  Job job = { 0, };

  if (self->writer == NULL)
    {
      if (self->read_only)
        set_read_only_error (self->where, error);
      else
        set_closed_error (error);
      return FALSE;
    }

  /* The caller blocks until the job is done: the job points to its
   * arguments instead of copying them. */
  job.kind = JOB_APPEND;
  job.stream_id = stream_id;
  job.expected_version = expected_version;
  job.events = events;
  job.n_events = n_events;
  job.base.cancellable = cancellable;
  job.base.out_version = -1;

  if (!writer_run_sync (self->writer, &job, &local_error))
    {
      /* With a conflict: the version it found (-1 if unknown). */
      if (out_version != NULL &&
          g_error_matches (local_error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION))
        *out_version = job.base.out_version;
      g_propagate_error (error, local_error);
      return FALSE;
    }

  if (out_version != NULL)
    *out_version = job.base.out_version;
  return TRUE;
}

static void
es_sqlite_storage_append_async (EsStorageHandle          *handle,
                                const char               *stream_id,
                                gint64                    expected_version,
                                EsCandidateEvent * const *events,
                                guint                     n_events,
                                GCancellable             *cancellable,
                                GAsyncReadyCallback       callback,
                                gpointer                  user_data)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  EsCandidateEvent **job_events;
  gsize events_size = n_events * sizeof (EsCandidateEvent *);
  char *job_stream_id;
  Job *job;
  guint i;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, es_sqlite_storage_append_async);
  /* A write that committed is reported as done even if the cancellable
   * fires afterwards: GTask must not turn it into G_IO_ERROR_CANCELLED. */
  g_task_set_check_cancellable (task, FALSE);

  if (self->writer == NULL)
    {
      if (self->read_only)
        set_read_only_error (self->where, &error);
      else
        set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* The caller may free its arguments as soon as this returns: one block
   * holds the job, refs on the events and a copy of the stream id. */
  job = g_malloc0 (sizeof (Job) + events_size + strlen (stream_id) + 1);
  job_events = (EsCandidateEvent **) (job + 1);
  job_stream_id = (char *) job_events + events_size;
  for (i = 0; i < n_events; i++)
    job_events[i] = g_object_ref (events[i]);
  strcpy (job_stream_id, stream_id);

  job->kind = JOB_APPEND;
  job->stream_id = job_stream_id;
  job->expected_version = expected_version;
  job->events = job_events;
  job->n_events = n_events;
  job->base.cancellable = g_task_get_cancellable (task);
  job->base.out_version = -1;
  job->base.task = g_object_ref (task);

  if (!_es_write_queue_submit (self->writer, &job->base))
    {
      g_clear_object (&job->base.task);
      job_free_async (&job->base);
      set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
    }
}

static gboolean
es_sqlite_storage_append_finish (EsStorageHandle  *handle,
                                 GAsyncResult     *result,
                                 gint64           *out_version,
                                 GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, handle), FALSE);

  return _es_append_task_propagate (G_TASK (result), out_version, error);
}

static gboolean
es_sqlite_storage_save_snapshot (EsStorageHandle  *handle,
                                 const char       *stream_id,
                                 const char       *projection_name,
                                 gint64            version,
                                 GBytes           *state,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  Job job = { 0, };

  if (self->writer == NULL)
    {
      if (self->read_only)
        set_read_only_error (self->where, error);
      else
        set_closed_error (error);
      return FALSE;
    }

  job.kind = JOB_SAVE_SNAPSHOT;
  job.stream_id = stream_id != NULL ? stream_id : ALL_STREAM_KEY;
  job.projection_name = projection_name;
  job.version = version;
  job.state = state;
  job.base.cancellable = cancellable;

  return writer_run_sync (self->writer, &job, error);
}

#define READ_STREAM_SELECT \
  "SELECT sequence_id, version, idempotency_key, event_type, timestamp, data, metadata" \
  " FROM events WHERE stream_id = ? AND version > ?"
#define READ_STREAM_ORDER " ORDER BY version LIMIT ?"
#define READ_ALL_SELECT \
  "SELECT sequence_id, version, idempotency_key, event_type, timestamp, data, metadata," \
  " stream_id FROM events WHERE sequence_id > ?"
#define READ_ALL_ORDER " ORDER BY sequence_id LIMIT ?"


/* Builds a stored event from the current row. @stream_ref holds the
 * GRefString of the previous row's stream: consecutive rows of one stream
 * (all of a stream read) share it instead of each copying the id. */
static EsStoredEvent *
event_from_row (sqlite3_stmt  *stmt,
                char         **stream_ref,
                gboolean       all_streams)
{
  const char *type, *key, *metadata;
  const void *blob;
  int n_type, n_key, n_metadata, n_blob;

  if (all_streams)
    {
      const char *stream_id = (const char *) sqlite3_column_text (stmt, 7);

      if (stream_id == NULL)
        stream_id = "";
      if (*stream_ref == NULL || strcmp (*stream_ref, stream_id) != 0)
        {
          g_clear_pointer (stream_ref, g_ref_string_release);
          *stream_ref = g_ref_string_new (stream_id);
        }
    }

  /* One allocation for the row's strings and data (see
   * _es_stored_event_new_packed()). Each text is fetched before its length,
   * as SQLite documents. Empty data is a zero-length blob: NULL here. */
  type = (const char *) sqlite3_column_text (stmt, 3);
  n_type = sqlite3_column_bytes (stmt, 3);
  key = (const char *) sqlite3_column_text (stmt, 2);
  n_key = sqlite3_column_bytes (stmt, 2);
  metadata = (const char *) sqlite3_column_text (stmt, 6);
  n_metadata = sqlite3_column_bytes (stmt, 6);
  blob = sqlite3_column_blob (stmt, 5);
  n_blob = sqlite3_column_bytes (stmt, 5);

  return _es_stored_event_new_packed (g_ref_string_acquire (*stream_ref),
                                      sqlite3_column_int64 (stmt, 0),
                                      sqlite3_column_int64 (stmt, 1),
                                      sqlite3_column_int64 (stmt, 4),
                                      type != NULL ? type : "", n_type,
                                      blob, n_blob,
                                      key, n_key,
                                      metadata, n_metadata);
}

static GPtrArray *
es_sqlite_storage_read_page (EsStorageHandle  *handle,
                             const char       *stream_id,
                             gint64            after,
                             EsEventFilter    *filter,
                             guint             limit,
                             GCancellable     *cancellable,
                             GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Reading events");
  g_auto(QueryBuilder) builder = { NULL, };
  g_autoptr(GPtrArray) events = NULL;
  gboolean all_streams = stream_id == NULL;
  char *stream_ref = NULL;
  EsConnection *conn;
  sqlite3_stmt *stmt;
  const char *sql;
  gulong handler;
  int index = 1;
  int rc;

  /* Keyset paging: each page starts after the last version (or sequence
   * id) of the previous one, so every page is an index range scan. */
  if (filter != NULL && es_event_filter_get_n_clauses (filter) > 0)
    {
      query_builder_init (&builder, all_streams ? READ_ALL_SELECT : READ_STREAM_SELECT);
      add_filter (&builder, filter);
      g_string_append (builder.sql, all_streams ? READ_ALL_ORDER : READ_STREAM_ORDER);
      sql = builder.sql->str;
    }
  else
    sql = all_streams ? READ_ALL_SELECT READ_ALL_ORDER : READ_STREAM_SELECT READ_STREAM_ORDER;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return NULL;

  stmt = connection_get_stmt (conn, sql, operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return NULL;
    }

  /* Placeholders in SQL order: the stream, the keyset bound, the filter's
   * values, the limit. @stream_id, the filter and the builder outlive the
   * steps, hence SQLITE_STATIC. A stream's page shares one GRefString for
   * the stream id of all its events. */
  if (!all_streams)
    {
      rc = sqlite3_bind_text (stmt, index++, stream_id, -1, SQLITE_STATIC);
      stream_ref = g_ref_string_new (stream_id);
    }
  else
    rc = SQLITE_OK;
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index++, after);
  if (rc == SQLITE_OK && builder.binds != NULL)
    {
      rc = apply_binds (stmt, index, builder.binds);
      index += builder.binds->len;
    }
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, index++, limit);

  events = g_ptr_array_new_full (MIN (limit, ES_READ_PAGE_SIZE), g_object_unref);

  if (rc == SQLITE_OK)
    {
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          /* The interrupt stops a query that scans without returning rows;
           * this stops one that returns many. */
          if (g_cancellable_is_cancelled (cancellable))
            {
              rc = SQLITE_INTERRUPT;
              break;
            }
          g_ptr_array_add (events, event_from_row (stmt, &stream_ref, all_streams));
        }
    }

  /* A partial page is not returned: the caller would take it for the end
   * of the stream. */
  if (rc != SQLITE_DONE)
    {
      connection_set_error (conn, rc, operation, error);
      g_clear_pointer (&events, g_ptr_array_unref);
    }

  stmt_done (stmt);
  read_end (self, conn, cancellable, handler);
  g_clear_pointer (&stream_ref, g_ref_string_release);

  return g_steal_pointer (&events);
}

static gboolean
es_sqlite_storage_get_version (EsStorageHandle  *handle,
                               const char       *stream_id,
                               gint64           *out_version,
                               GCancellable     *cancellable,
                               GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Reading the stream version");
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gint64 version = 0;
  gulong handler;
  int rc;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return FALSE;

  /* Both served by the end of an index: (stream_id, version), the rowid. */
  stmt = connection_get_stmt (conn,
                              stream_id != NULL
                                ? "SELECT max(version) FROM events WHERE stream_id = ?"
                                : "SELECT max(sequence_id) FROM events",
                              operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return FALSE;
    }

  if (stream_id != NULL)
    sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    version = sqlite3_column_int64 (stmt, 0);  /* max() of nothing: NULL, read as 0 */
  else
    connection_set_error (conn, rc, operation, error);

  stmt_done (stmt);
  read_end (self, conn, cancellable, handler);

  if (rc == SQLITE_ROW && out_version != NULL)
    *out_version = version;
  return rc == SQLITE_ROW;
}

static EsStreamMetrics *
es_sqlite_storage_get_metrics (EsStorageHandle  *handle,
                               const char       *stream_id,
                               GCancellable     *cancellable,
                               GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Reading stream metrics");
  g_autoptr(GDateTime) last_timestamp = NULL;
  gint64 version = 0;
  gint64 count = 0;
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int rc;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return NULL;

  /* One statement, so one consistent snapshot of the database. A stream's
   * versions run 1..N, so its count is its version; @all's count is a
   * count(*), the one full index scan here. No row: empty. */
  stmt = connection_get_stmt (conn,
                              stream_id != NULL
                                ? "SELECT version, version, timestamp FROM events"
                                  " WHERE stream_id = ? ORDER BY version DESC LIMIT 1"
                                : "SELECT sequence_id, (SELECT count(*) FROM events), timestamp"
                                  " FROM events ORDER BY sequence_id DESC LIMIT 1",
                              operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return NULL;
    }

  if (stream_id != NULL)
    sqlite3_bind_text (stmt, 1, stream_id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      version = sqlite3_column_int64 (stmt, 0);
      count = sqlite3_column_int64 (stmt, 1);
      last_timestamp = _es_date_time_new_from_usec (sqlite3_column_int64 (stmt, 2));
    }
  else if (rc != SQLITE_DONE)
    connection_set_error (conn, rc, operation, error);

  stmt_done (stmt);
  read_end (self, conn, cancellable, handler);

  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return NULL;
  return es_stream_metrics_new (version, count, last_timestamp);
}

static EsSnapshot *
es_sqlite_storage_load_snapshot (EsStorageHandle  *handle,
                                 const char       *stream_id,
                                 const char       *projection_name,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  EsSqliteStorage *self = ES_SQLITE_STORAGE (handle);
  const char *operation = _("Loading a snapshot");
  EsSnapshot *snapshot = NULL;
  EsConnection *conn;
  sqlite3_stmt *stmt;
  gulong handler;
  int rc;

  conn = read_begin (self, cancellable, &handler, error);
  if (conn == NULL)
    return NULL;

  stmt = connection_get_stmt (conn,
                              "SELECT version, state, timestamp FROM snapshots"
                              " WHERE stream_id = ? AND projection_name = ?",
                              operation, error);
  if (stmt == NULL)
    {
      read_end (self, conn, cancellable, handler);
      return NULL;
    }

  sqlite3_bind_text (stmt, 1, stream_id != NULL ? stream_id : ALL_STREAM_KEY, -1,
                     SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, projection_name, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      g_autoptr(GBytes) state = NULL;
      const void *blob = sqlite3_column_blob (stmt, 1);
      int n_blob = sqlite3_column_bytes (stmt, 1);

      state = g_bytes_new (n_blob > 0 ? blob : NULL, n_blob);
      snapshot = _es_snapshot_new_usec (stream_id, projection_name,
                                        sqlite3_column_int64 (stmt, 0), state,
                                        sqlite3_column_int64 (stmt, 2));
    }
  else if (rc != SQLITE_DONE)
    connection_set_error (conn, rc, operation, error);

  stmt_done (stmt);
  read_end (self, conn, cancellable, handler);

  /* No row: no snapshot, and no error. */
  return snapshot;
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
  iface->append = es_sqlite_storage_append;
  iface->append_async = es_sqlite_storage_append_async;
  iface->append_finish = es_sqlite_storage_append_finish;
  iface->read_page = es_sqlite_storage_read_page;
  iface->get_version = es_sqlite_storage_get_version;
  iface->get_metrics = es_sqlite_storage_get_metrics;
  iface->save_snapshot = es_sqlite_storage_save_snapshot;
  iface->load_snapshot = es_sqlite_storage_load_snapshot;
  iface->close = es_sqlite_storage_close;
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
   * other processes commit to the file. Appends and snapshot saves fail
   * with %ES_ERROR_INVALID_ARGUMENT ("the database was opened
   * read-only"). Nothing is ever written to the file: the open fails with
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
  /* Until init succeeds, nothing can be borrowed. */
  _es_pool_init (&self->pool, 0, NULL, NULL, NULL, connection_close, NULL);
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
      set_closed_error (error);
      return NULL;
    }

  /* The caller may use it from more than one thread (one at a time, but
   * we do not know): SQLite's own mutex, not NOMUTEX. The busy handler
   * keeps no state, so the bare handle is all the caller needs. */
  conn = open_reader (self, SQLITE_OPEN_FULLMUTEX, error);
  if (conn == NULL)
    return NULL;

  db = g_steal_pointer (&conn->db);
  connection_close (conn);
  return db;
}

const char *
_es_sqlite_storage_get_file_path (EsSqliteStorage *self)
{
  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), NULL);

  return self->in_memory ? NULL : self->path;
}

gboolean
_es_sqlite_storage_set_max_page_count (EsSqliteStorage  *self,
                                       guint64           max_page_count,
                                       GError          **error)
{
  Job job = { 0, };

  g_return_val_if_fail (ES_IS_SQLITE_STORAGE (self), FALSE);
  g_return_val_if_fail (max_page_count <= G_MAXINT64, FALSE);

  if (self->writer == NULL)
    {
      set_closed_error (error);
      return FALSE;
    }

  job.kind = JOB_SET_MAX_PAGE_COUNT;
  job.version = (gint64) max_page_count;
  return writer_run_sync (self->writer, &job, error);
}
