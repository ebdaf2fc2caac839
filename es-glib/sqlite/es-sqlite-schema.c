/* es-sqlite-schema.c: the SQLite backend's schema: the tables and
 * indexes of an es-glib database, the migrations from one schema version
 * to the next, and the checks of a database's header (application id,
 * user version) before anything is written to it.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-sqlite-private.h"

/* "ESG1": marks a database as es-glib's, in the SQLite header's
 * application id field (PRAGMA application_id). */
#define ES_SQLITE_APPLICATION_ID 0x45534731

/* ---------------------------------------------------------------------- *
 * Schema                                                                  *
 * ---------------------------------------------------------------------- */

/* Version 1.
 *
 * events: the sequence id is the rowid (INTEGER PRIMARY KEY without
 * AUTOINCREMENT, which costs a lookup in sqlite_sequence per insert): a
 * new row gets max(rowid) + 1, so sequence ids grow strictly and @all
 * reads walk the table in storage order (rows deleted since version 2
 * leave the position row behind when they were the newest: see below).
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

/* Version 2 (es-glib 0.2: the life cycle of streams).
 *
 * events.flags: ES_STORED_EVENT_FLAGS_ERASED (1) on an erased event;
 * ES_STORED_EVENT_FLAGS_TOMBSTONE (2) on the marker row a hard delete
 * leaves at its position ('$tombstone', the stream's kept version);
 * ES_SQLITE_FLAG_POSITION (256) on the one row, stream '@position',
 * that holds the last position used when no event does (after a soft
 * delete, or when the newest events went): a new row takes max(rowid) + 1,
 * so without it sequence ids would be used again. Reads of events keep
 * `flags < 2`; reads with tombstones `flags < 4`. Adding a column with a
 * constant default rewrites nothing.
 *
 * streams: one row per stream ever written, deleted or given a policy,
 * maintained by every write in its transaction: listing and stream
 * information read only this. Its stored events are always the versions
 * first_version..version (deletions remove a prefix, or all), so
 * event_count is version - first_version + 1 when it is not 0. state is
 * an EsStreamState. WITHOUT ROWID: the id is the only access path, and
 * its BINARY order is the byte-wise order listings promise. The partial
 * index lists the streams with a policy of their own, for sweeps.
 *
 * settings: the database-wide retention policy ('max_age', 'max_count').
 *
 * events_timestamp: time-range reads of @all. */
static const char schema_v2[] =
  "ALTER TABLE events ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
  "CREATE TABLE streams ("
  "  stream_id       TEXT    NOT NULL PRIMARY KEY,"
  "  version         INTEGER NOT NULL,"
  "  event_count     INTEGER NOT NULL,"
  "  first_version   INTEGER NOT NULL,"
  "  first_timestamp INTEGER NOT NULL,"
  "  last_timestamp  INTEGER NOT NULL,"
  "  state           INTEGER NOT NULL DEFAULT 0,"
  "  max_age         INTEGER NOT NULL DEFAULT 0,"  /* microseconds, 0: none */
  "  max_count       INTEGER NOT NULL DEFAULT 0"   /* 0: none */
  ") WITHOUT ROWID;"
  "CREATE INDEX streams_policy ON streams (stream_id)"
  "  WHERE max_age > 0 OR max_count > 0;"
  "CREATE TABLE settings ("
  "  name            TEXT    NOT NULL PRIMARY KEY,"
  "  value           INTEGER NOT NULL"
  ") WITHOUT ROWID;"
  "CREATE INDEX events_timestamp ON events (timestamp);"
  /* Every stream of a version-1 file holds versions 1..N; the GROUP BY
   * walks the (stream_id, version) index once. */
  "INSERT INTO streams (stream_id, version, event_count, first_version,"
  "                     first_timestamp, last_timestamp)"
  "  SELECT g.stream_id, g.last, g.n, g.first,"
  "    (SELECT timestamp FROM events WHERE stream_id = g.stream_id AND version = g.first),"
  "    (SELECT timestamp FROM events WHERE stream_id = g.stream_id AND version = g.last)"
  "  FROM (SELECT stream_id, max(version) AS last, min(version) AS first, count(*) AS n"
  "        FROM events GROUP BY stream_id) AS g;";

/* Version 3 (es-glib 0.2: durable subscriptions).
 *
 * subscriptions: one row per durable subscription, written by its
 * consumer (the checkpoint: the last version, or for '@all' sequence id,
 * consumed; its state when the consumer keeps one) and by reset/delete.
 * stream_id is '@all' for a subscription to every stream. Who consumes a
 * subscription is not stored: a lock on a byte of the side file
 * `<database>-eslock` says it (es-sqlite-storage.c). WITHOUT ROWID: the
 * name is the only access path, and its BINARY order is the order
 * listings promise. */
static const char schema_v3[] =
  "CREATE TABLE subscriptions ("
  "  name            TEXT    NOT NULL PRIMARY KEY,"
  "  stream_id       TEXT    NOT NULL,"
  "  position        INTEGER NOT NULL,"
  "  state           BLOB,"
  "  updated         INTEGER NOT NULL"   /* microseconds since the Unix epoch, UTC */
  ") WITHOUT ROWID;";

/* A step of the schema's history: upgrades a database from version N to
 * N + 1, inside the caller's transaction. */
typedef gboolean (*EsMigration) (EsConnection  *conn,
                                 GError       **error);

static gboolean
migrate_0_to_1 (EsConnection  *conn,
                GError       **error)
{
  return _es_sqlite_connection_exec (conn, schema_v1, _("Creating the database schema"), error);
}

static gboolean
migrate_1_to_2 (EsConnection  *conn,
                GError       **error)
{
  return _es_sqlite_connection_exec (conn, schema_v2, _("Upgrading the database schema"),
                                     error);
}

static gboolean
migrate_2_to_3 (EsConnection  *conn,
                GError       **error)
{
  return _es_sqlite_connection_exec (conn, schema_v3, _("Upgrading the database schema"),
                                     error);
}

/* migrations[N] upgrades version N to N + 1; version 0 is an empty
 * database. A schema change appends its step here, and nothing else: the
 * length of this table is the schema version this code writes. */
static const EsMigration migrations[] = {
  migrate_0_to_1,
  migrate_1_to_2,
  migrate_2_to_3,
};

#define SCHEMA_VERSION ((gint64) G_N_ELEMENTS (migrations))
G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == ES_SQLITE_SCHEMA_VERSION);

gboolean
_es_sqlite_read_header (EsConnection  *conn,
                        DbHeader      *header,
                        GError       **error)
{
  const char *operation = _("Reading the database header");
  sqlite3_stmt *stmt = NULL;
  int rc;

  /* One statement, so one state of the file: read one at a time, the
   * header could come from before another process created the schema
   * and the tables from after it, and our own new file pass for another
   * application's. The first read of a file that is not a database (or
   * is damaged, unreadable...) fails here with SQLite's reason. */
  rc = sqlite3_prepare_v2 (conn->db,
                           "SELECT a.application_id, u.user_version,"
                           " (SELECT count(*) FROM sqlite_master)"
                           " FROM pragma_application_id AS a, pragma_user_version AS u",
                           -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      _es_sqlite_connection_set_error (conn, rc, operation, error);
      sqlite3_finalize (stmt);
      return FALSE;
    }
  header->application_id = sqlite3_column_int64 (stmt, 0);
  header->user_version = sqlite3_column_int64 (stmt, 1);
  header->n_objects = sqlite3_column_int64 (stmt, 2);
  sqlite3_finalize (stmt);
  return TRUE;
}

/* Whether es-glib may use (and if need be upgrade) this database. */
gboolean
_es_sqlite_check_header (const DbHeader  *header,
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

/* Whether the main database file of @conn has no byte at all (a file
 * shorter than a page has no page either, yet it is not empty). */
static gboolean
file_is_empty (EsConnection *conn)
{
  sqlite3_file *file = NULL;
  sqlite3_int64 size = -1;

  if (sqlite3_file_control (conn->db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == NULL || file->pMethods == NULL ||
      file->pMethods->xFileSize (file, &size) != SQLITE_OK)
    return FALSE;
  return size == 0;
}

/* Brings the database to SCHEMA_VERSION: creates the schema in an empty
 * one (in @journal_mode, a constant, when not NULL), runs the missing
 * migrations on an older one, does nothing to an up-to-date one. Nothing
 * is written unless the header checks pass. */
gboolean
_es_sqlite_prepare_schema (EsConnection  *conn,
                           const char    *display_path,
                           const char    *journal_mode,
                           GError       **error)
{
  DbHeader header = { 0, };
  g_autofree char *set_header = NULL;
  gint64 version;

  if (!_es_sqlite_read_header (conn, &header, error) ||
      !_es_sqlite_check_header (&header, display_path, error))
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

  /* A new file (no byte at all: a file with a header but no tables may be
   * damaged, and must be left as it was when creating the schema fails)
   * gets two settings before anything is created in it:
   * - incremental auto-vacuum, so that compaction gives free pages back
   *   without rewriting the file; SQLite only takes the mode before the
   *   first table exists (on a file that another process fills
   *   meanwhile, it does nothing);
   * - WAL mode (@journal_mode): processes that open a new file at once
   *   must all see it in one journal mode; creating the tables in
   *   rollback mode and switching afterwards made concurrent first opens
   *   fail ("disk I/O error", "attempt to write a readonly database") or
   *   wait on each other past the busy timeout. */
  if (header.n_objects == 0 && file_is_empty (conn))
    {
      if (!_es_sqlite_connection_exec (conn, "PRAGMA auto_vacuum = INCREMENTAL",
                                       _("Creating the database schema"), error))
        return FALSE;

      if (journal_mode != NULL)
        {
          g_autofree char *pragma = g_strdup_printf ("PRAGMA journal_mode = %s", journal_mode);

          if (!_es_sqlite_connection_exec (conn, pragma, _("Creating the database schema"),
                                           error))
            return FALSE;
        }
    }

  /* Another process may be creating or upgrading the same file right now:
   * take the write lock, then look again. */
  if (!_es_sqlite_connection_exec (conn, "BEGIN IMMEDIATE", _("Creating the database schema"),
                                   error))
    return FALSE;

  if (!_es_sqlite_read_header (conn, &header, error) ||
      !_es_sqlite_check_header (&header, display_path, error))
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
  /* The pages the first use reaches are read before anything is
   * committed: a damaged file that fails to open is left as it was. */
  if (!_es_sqlite_connection_exec (conn, set_header, _("Creating the database schema"), error) ||
      !_es_sqlite_probe_pages (conn, error) ||
      !_es_sqlite_connection_exec (conn, "COMMIT", _("Creating the database schema"), error))
    goto rollback;

  return TRUE;

rollback:
  if (!sqlite3_get_autocommit (conn->db))
    sqlite3_exec (conn->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* Reads the root page and the rightmost pages of every table and index,
 * which the first read or write of each would reach anyway: a file whose
 * damage is there fails to open (SQLITE_CORRUPT, see _es_sqlite_set_error())
 * rather than at its first use. It costs a few page reads whatever the
 * size of the file; damage elsewhere shows when a read or write reaches
 * it (checking every page, PRAGMA quick_check, takes time in proportion
 * to the file). */
gboolean
_es_sqlite_probe_pages (EsConnection  *conn,
                        GError       **error)
{
  const char *sql =
    "SELECT coalesce((SELECT max(sequence_id) FROM events), 0)"
    " + length(coalesce((SELECT max(stream_id) FROM events), ''))"
    " + length(coalesce((SELECT max(event_type) FROM events), ''))"
    " + length(coalesce((SELECT max(stream_id) FROM snapshots), ''))"
    " + length(coalesce((SELECT max(stream_id) FROM streams), ''))";
  gint64 ignored = 0;

  return _es_sqlite_connection_query_int64 (conn, sql, &ignored, _("Opening the database"),
                                            error);
}
