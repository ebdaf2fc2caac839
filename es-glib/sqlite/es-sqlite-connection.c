/* es-sqlite-connection.c: the SQLite backend's connections: SQLite failures
 * as GErrors, opening a connection (with its busy handler), running SQL on
 * it, and its cache of prepared statements. Used by the writer thread, the
 * read pool and the schema code alike (es-sqlite-private.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-sqlite-private.h"

/* Prepared statements a connection keeps at most (see
 * _es_sqlite_connection_get_stmt()). */
#define STMT_CACHE_MAX 64

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
void
_es_sqlite_set_error (GError     **error,
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

void
_es_sqlite_set_closed_error (GError **error)
{
  g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
}

/* A write to a storage opened read-only: the caller's mistake, not the
 * database's, hence INVALID_ARGUMENT. */
void
_es_sqlite_set_read_only_error (const char  *where,
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

static void
stmt_finalize (gpointer stmt)
{
  sqlite3_finalize (stmt);
}

void
_es_sqlite_connection_set_error (EsConnection  *conn,
                                 int            rc,
                                 const char    *operation,
                                 GError       **error)
{
  _es_sqlite_set_error (error, conn->db, rc, operation, conn->where, conn->busy_timeout);
}

/* Finalizes the connection's statements, then closes it: sqlite3_close()
 * refuses to close a connection with live statements. */
void
_es_sqlite_connection_close (gpointer data)
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
EsConnection *
_es_sqlite_connection_open (const char  *uri,
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
      _es_sqlite_connection_set_error (conn, rc, _("Opening the database"), error);
      _es_sqlite_connection_close (conn);
      return NULL;
    }

  sqlite3_busy_handler (conn->db, busy_handler, GUINT_TO_POINTER (busy_timeout));
  return conn;
}

/* Changes how long @conn waits for a lock, in milliseconds. */
void
_es_sqlite_connection_set_busy_timeout (EsConnection *conn,
                                        guint         busy_timeout)
{
  conn->busy_timeout = busy_timeout;
  sqlite3_busy_handler (conn->db, busy_handler, GUINT_TO_POINTER (busy_timeout));
}

/* Runs SQL that returns no rows (or whose rows do not matter). */
gboolean
_es_sqlite_connection_exec (EsConnection  *conn,
                            const char    *sql,
                            const char    *operation,
                            GError       **error)
{
  int rc = sqlite3_exec (conn->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    {
      _es_sqlite_connection_set_error (conn, rc, operation, error);
      return FALSE;
    }
  return TRUE;
}

/* Runs a query returning one integer (a PRAGMA, a count). */
gboolean
_es_sqlite_connection_query_int64 (EsConnection  *conn,
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
    _es_sqlite_connection_set_error (conn, rc, operation, error);
  sqlite3_finalize (stmt);
  return rc == SQLITE_OK;
}

/* Gets the connection's prepared statement for @sql, preparing it the first
 * time. Statements are prepared with SQLITE_PREPARE_PERSISTENT and kept for
 * the connection's life; the caller resets them after use (_es_sqlite_stmt_done()).
 *
 * Filtered reads build their SQL from the filter's shape, so the number of
 * distinct statements is open-ended: when the cache is full it is emptied
 * and starts over, which keeps it bounded without bookkeeping (a connection
 * never uses two cached statements at once). */
sqlite3_stmt *
_es_sqlite_connection_get_stmt (EsConnection  *conn,
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
      _es_sqlite_connection_set_error (conn, rc, operation, error);
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
void
_es_sqlite_stmt_done (sqlite3_stmt *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}

/* Binds a blob; an empty one as a zero-length blob, never NULL
 * (sqlite3_bind_blob() binds NULL for a NULL pointer, which GBytes gives
 * for empty data). The bytes must outlive the statement's step. */
int
_es_sqlite_bind_bytes (sqlite3_stmt *stmt,
                       int           index,
                       GBytes       *bytes)
{
  gsize size = 0;
  gconstpointer data = bytes != NULL ? g_bytes_get_data (bytes, &size) : NULL;

  if (size == 0)
    return sqlite3_bind_zeroblob (stmt, index, 0);
  return sqlite3_bind_blob64 (stmt, index, data, size, SQLITE_STATIC);
}
