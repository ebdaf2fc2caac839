/* es-pg-schema.c: the PostgreSQL backend's tables.
 *
 * The schema's DDL and its migrations (the list whose length is the
 * version this code writes); the text of the fixed statements every
 * connection prepares (SqlId in es-pg-private.h), made for the storage's
 * schema; and opening a schema: checking that it is es-glib's and not
 * newer, then creating or upgrading it under an advisory lock, so that
 * several processes may open the same one at once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-pg-private.h"

/* ---------------------------------------------------------------------- *
 * Schema                                                                  *
 * ---------------------------------------------------------------------- */

/* In every SQL text below, {S} stands for the schema, quoted. */

/* Version 1.
 *
 * es_glib_version: one row, the schema version; a schema with tables but
 * without it is not es-glib's.
 *
 * events: sequence_id is the global position, assigned from the one row
 * of global_position inside the append's transaction (see
 * es-pg-writer.c): ids run 1, 2, 3... without holes, and rows
 * commit in id order. UNIQUE (stream_id, version) serves stream reads and
 * the version lookup of each append, and is the last line of defence
 * against two events taking one version. Idempotency keys are unique per
 * stream, through a partial index that costs nothing for events without a
 * key. (event_type, sequence_id) serves @all reads filtered on the type.
 * The metadata is kept as text, exactly as written; filters read it as
 * jsonb.
 *
 * snapshots: one row per (stream, projection); @all's under '@all'.
 *
 * metadata_jsonb(): the metadata as jsonb, or NULL when PostgreSQL cannot
 * represent it (strict JSON it refuses: a \u0000 escape, a lone surrogate,
 * a number beyond numeric's range). A plain cast would fail the whole
 * read on such a row; SQLite's json_valid() guard makes it simply not
 * match, and so does this. */
static const char schema_v1[] =
  "CREATE TABLE {S}.es_glib_version ("
  "  version integer NOT NULL"
  ");"
  "INSERT INTO {S}.es_glib_version (version) VALUES (0);"
  "CREATE TABLE {S}.events ("
  "  sequence_id     bigint      PRIMARY KEY,"
  "  stream_id       text        NOT NULL,"
  "  version         bigint      NOT NULL,"
  "  idempotency_key text,"
  "  event_type      text        NOT NULL,"
  "  recorded_at     timestamptz NOT NULL,"
  "  data            bytea       NOT NULL,"
  "  metadata        text,"
  "  UNIQUE (stream_id, version)"
  ");"
  "CREATE UNIQUE INDEX events_idempotency_key ON {S}.events (stream_id, idempotency_key)"
  "  WHERE idempotency_key IS NOT NULL;"
  "CREATE INDEX events_event_type ON {S}.events (event_type, sequence_id);"
  "CREATE TABLE {S}.snapshots ("
  "  stream_id       text        NOT NULL,"
  "  projection_name text        NOT NULL,"
  "  version         bigint      NOT NULL,"
  "  state           bytea       NOT NULL,"
  "  recorded_at     timestamptz NOT NULL,"
  "  PRIMARY KEY (stream_id, projection_name)"
  ");"
  "CREATE TABLE {S}.global_position ("
  "  id               boolean PRIMARY KEY DEFAULT TRUE CHECK (id),"
  "  last_sequence_id bigint  NOT NULL"
  ");"
  "INSERT INTO {S}.global_position (last_sequence_id) VALUES (0);"
  "CREATE FUNCTION {S}.metadata_jsonb (metadata text) RETURNS jsonb"
  "  LANGUAGE plpgsql IMMUTABLE STRICT AS $$"
  "BEGIN"
  "  RETURN metadata::jsonb;"
  "EXCEPTION WHEN data_exception OR program_limit_exceeded THEN"
  "  RETURN NULL;"
  "END $$;";

/* migrations[N] upgrades schema version N to N + 1, inside the caller's
 * transaction; version 0 is an empty schema. A schema change appends its
 * step here and nothing else: the length of this table is the version
 * this code writes. */
static const char * const migrations[] = {
  schema_v1,
};

#define SCHEMA_VERSION ((gint64) G_N_ELEMENTS (migrations))

/* What the server says about the schema, read without writing anything. */
typedef struct
{
  gboolean exists;
  gint64   n_objects;      /* relations and functions in it */
  gboolean has_version;    /* it has our version table */
  gint64   version;        /* the version recorded there; 0 without */
} SchemaState;

#define INSPECT_SQL \
  "WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1::text)" \
  " SELECT EXISTS (SELECT FROM ns)," \
  "  (SELECT count(*) FROM pg_catalog.pg_class c, ns WHERE c.relnamespace = ns.oid)" \
  "  + (SELECT count(*) FROM pg_catalog.pg_proc p, ns WHERE p.pronamespace = ns.oid)," \
  "  EXISTS (SELECT FROM pg_catalog.pg_class c, ns WHERE c.relnamespace = ns.oid" \
  "          AND c.relname = 'es_glib_version' AND c.relkind = 'r')"

/* Serialises the creation and upgrade of one schema among every process;
 * the key is the hash of "es-glib schema <name>". */
#define LOCK_SQL "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1::text, 0))"

/* Which of the idempotency keys $2 stream $1 holds (see group_operation()
 * in es-pg-writer.c). */
#define EXISTING_KEYS_SQL \
  "SELECT idempotency_key FROM {S}.events" \
  " WHERE stream_id = $1::text AND idempotency_key = ANY ($2::text[])"

/* The same locks for a group of appends (see writer_run_group() in
 * es-pg-writer.c): one per distinct key of the text[] $1, taken in
 * ascending lock-key order. Every group of every process takes its locks
 * in this one order, so two groups can never each hold a lock the other
 * waits for. */
#define LOCK_MANY_SQL \
  "SELECT count(pg_catalog.pg_advisory_xact_lock(s.k)) FROM (" \
  "  SELECT DISTINCT pg_catalog.hashtextextended(u.t, 0) AS k" \
  "  FROM unnest($1::text[]) AS u (t) ORDER BY k" \
  ") AS s"

#define APPEND_SQL \
  "WITH input AS (" \
  "  SELECT * FROM unnest($3::text[], $4::text[], $5::bytea[], $6::text[])" \
  "    WITH ORDINALITY AS t (idempotency_key, event_type, data, metadata, ord)" \
  "), head AS (" \
  "  SELECT coalesce(max(version), 0) AS version, clock_timestamp() AS now," \
  "         ($2::int8 < 0 OR $2::int8 = coalesce(max(version), 0) OR NOT EXISTS (" \
  "           SELECT FROM input i WHERE i.idempotency_key IS NULL OR NOT EXISTS (" \
  "             SELECT FROM {S}.events e" \
  "             WHERE e.stream_id = $1::text AND e.idempotency_key = i.idempotency_key)" \
  "         )) AS accepted" \
  "  FROM {S}.events WHERE stream_id = $1::text" \
  "), fresh AS (" \
  "  SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n FROM input i, head h" \
  "  WHERE h.accepted AND (i.idempotency_key IS NULL OR NOT EXISTS (" \
  "    SELECT FROM {S}.events e" \
  "    WHERE e.stream_id = $1::text AND e.idempotency_key = i.idempotency_key))" \
  "), counted AS (" \
  "  SELECT count(*) AS n FROM fresh" \
  "), pos AS (" \
  "  UPDATE {S}.global_position SET last_sequence_id = last_sequence_id + c.n" \
  "  FROM counted c WHERE c.n > 0" \
  "  RETURNING last_sequence_id" \
  "), inserted AS (" \
  "  INSERT INTO {S}.events (sequence_id, stream_id, version, idempotency_key, event_type," \
  "                          recorded_at, data, metadata)" \
  "  SELECT p.last_sequence_id - c.n + f.n, $1::text, h.version + f.n, f.idempotency_key," \
  "         f.event_type, h.now, f.data, f.metadata" \
  "  FROM fresh f, pos p, counted c, head h" \
  ")" \
  " SELECT h.version, h.accepted, c.n, p.last_sequence_id," \
  "  CASE WHEN p.last_sequence_id IS NOT NULL" \
  "       THEN pg_catalog.pg_notify($7::text, p.last_sequence_id::text) END" \
  " FROM head h CROSS JOIN counted c LEFT JOIN pos p ON TRUE"

/* The fixed statements (SqlId, es-pg-private.h), made for the storage's
 * schema at construction. */
static const char * const sql_templates[N_SQL] = {
  [SQL_INSPECT] = INSPECT_SQL,
  [SQL_LOCK] = LOCK_SQL,
  [SQL_LOCK_MANY] = LOCK_MANY_SQL,
  [SQL_EXISTING_KEYS] = EXISTING_KEYS_SQL,
  [SQL_READ_VERSION_TABLE] = "SELECT version FROM {S}.es_glib_version",
  [SQL_WRITE_VERSION_TABLE] = "UPDATE {S}.es_glib_version SET version = $1::integer",
  [SQL_APPEND] = APPEND_SQL,
  [SQL_READ_STREAM] = READ_STREAM_SELECT " ORDER BY version LIMIT $3::int8",
  [SQL_READ_ALL] = READ_ALL_SELECT " ORDER BY sequence_id LIMIT $2::int8",
  /* Both served by the end of an index. */
  [SQL_STREAM_VERSION] = "SELECT coalesce(max(version), 0) FROM {S}.events"
                         " WHERE stream_id = $1::text",
  [SQL_LAST_SEQUENCE_ID] = "SELECT coalesce(max(sequence_id), 0) FROM {S}.events",
  /* A stream's versions run 1..N, so its count is its version; @all's
   * count is a count(*). No row: empty. */
  [SQL_STREAM_METRICS] = "SELECT version, version, recorded_at FROM {S}.events"
                         " WHERE stream_id = $1::text ORDER BY version DESC LIMIT 1",
  [SQL_ALL_METRICS] = "SELECT sequence_id, (SELECT count(*) FROM {S}.events), recorded_at"
                      " FROM {S}.events ORDER BY sequence_id DESC LIMIT 1",
  [SQL_SAVE_SNAPSHOT] = "INSERT INTO {S}.snapshots (stream_id, projection_name, version, state,"
                        " recorded_at) VALUES ($1::text, $2::text, $3::int8, $4::bytea,"
                        " clock_timestamp()) ON CONFLICT (stream_id, projection_name) DO UPDATE"
                        " SET version = excluded.version, state = excluded.state,"
                        " recorded_at = excluded.recorded_at",
  [SQL_LOAD_SNAPSHOT] = "SELECT version, state, recorded_at FROM {S}.snapshots"
                        " WHERE stream_id = $1::text AND projection_name = $2::text",
};

/* ---------------------------------------------------------------------- *
 * Opening: the schema                                                     *
 * ---------------------------------------------------------------------- */

/* @template with {S} replaced by the quoted schema. */
char *
_es_pg_schema_sql (EsPgStorage *self,
                   const char  *template)
{
  GString *sql = g_string_new (template);

  g_string_replace (sql, "{S}", self->quoted_schema, 0);
  return g_string_free (sql, FALSE);
}

void
_es_pg_schema_make_statements (EsPgStorage *self)
{
  for (guint i = 0; i < N_SQL; i++)
    self->sql[i] = _es_pg_schema_sql (self, sql_templates[i]);
}

gboolean
_es_pg_schema_name_is_valid (const char *name)
{
  gsize len = strlen (name);

  if (len == 0 || len > 48 || !(g_ascii_islower (name[0]) || name[0] == '_'))
    return FALSE;
  for (gsize i = 1; i < len; i++)
    if (!(g_ascii_islower (name[i]) || g_ascii_isdigit (name[i]) || name[i] == '_'))
      return FALSE;
  return TRUE;
}

static gboolean
inspect_schema (EsPgStorage    *self,
                EsPgConnection *c,
                SchemaState    *state,
                GCancellable   *cancellable,
                GError        **error)
{
  const char *context = _("Reading the database schema");
  const char *values[] = { self->schema };
  EsPgStatement inspect = { self->sql[SQL_INSPECT], 1, values, NULL, NULL, FALSE };
  EsPgStatement version = { self->sql[SQL_READ_VERSION_TABLE], 0, NULL, NULL, NULL, FALSE };
  PGresult *result;

  result = _es_pg_connection_run_one (c, &inspect, cancellable, context, error);
  if (result == NULL)
    return FALSE;
  state->exists = g_str_equal (PQgetvalue (result, 0, 0), "t");
  state->n_objects = g_ascii_strtoll (PQgetvalue (result, 0, 1), NULL, 10);
  state->has_version = g_str_equal (PQgetvalue (result, 0, 2), "t");
  state->version = 0;
  PQclear (result);

  if (!state->has_version)
    return TRUE;

  /* Waits while another session holds the table locked (an upgrade). */
  result = _es_pg_connection_run_one (c, &version, cancellable, context, error);
  if (result == NULL)
    return FALSE;
  if (PQntuples (result) != 1 || PQgetisnull (result, 0, 0))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a PostgreSQL schema name */
                   _("Schema '%s' is damaged: its es-glib version table does not hold "
                     "exactly one version"), self->schema);
      PQclear (result);
      return FALSE;
    }
  state->version = g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  PQclear (result);
  return TRUE;
}

/* Whether es-glib may use (and if need be upgrade) the schema. */
static gboolean
check_schema (EsPgStorage        *self,
              const SchemaState  *state,
              GError            **error)
{
  /* Another application's tables (even one called "events"), views,
   * sequences or functions, and no es-glib version: not ours to touch. An
   * empty schema (created by an administrator, say) is fine. */
  if (!state->has_version && state->n_objects > 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a PostgreSQL schema name */
                   _("Schema '%s' is not an es-glib schema: it holds other tables or "
                     "functions and no es-glib version"), self->schema);
      return FALSE;
    }

  if (state->version > SCHEMA_VERSION || state->version < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a PostgreSQL schema name, the numbers
                    * schema versions */
                   _("Schema '%s' was written by a newer es-glib: it has schema version "
                     "%lld, and this es-glib knows version %lld"),
                   self->schema, (long long) state->version, (long long) SCHEMA_VERSION);
      return FALSE;
    }

  return TRUE;
}

/* Brings the schema to SCHEMA_VERSION: creates it (and its tables) when it
 * is missing or empty, runs the missing migrations on an older one, does
 * nothing to an up-to-date one. Nothing is written unless the checks
 * pass, and the writing is one transaction, serialised among processes by
 * a transaction-scoped advisory lock: of several processes creating the
 * same schema at once, the first creates it and the others, once the lock
 * is theirs, look again and find it done. */
gboolean
_es_pg_schema_prepare (EsPgStorage    *self,
                       EsPgConnection *c,
                       GCancellable   *cancellable,
                       GError        **error)
{
  const char *context = _("Creating the database schema");
  g_autofree char *lock_key = g_strconcat ("es-glib schema ", self->schema, NULL);
  g_autofree char *version_text = g_strdup_printf ("%" G_GINT64_FORMAT, SCHEMA_VERSION);
  const char *lock_values[] = { lock_key };
  const char *version_values[] = { version_text };
  const EsPgStatement begin[] = {
    { "BEGIN", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, FALSE },
  };
  EsPgStatement set_version = { self->sql[SQL_WRITE_VERSION_TABLE], 1, version_values, NULL, NULL,
                            FALSE };
  EsPgStatement commit = { "COMMIT", 0, NULL, NULL, NULL, FALSE };
  PGresult *results[G_N_ELEMENTS (begin)];
  SchemaState state = { 0, };
  PGresult *result;
  gint64 version;

  if (!inspect_schema (self, c, &state, cancellable, error) ||
      !check_schema (self, &state, error))
    return FALSE;
  if (state.version == SCHEMA_VERSION)
    return TRUE;

  if (!_es_pg_connection_run (c, begin, G_N_ELEMENTS (begin), results, NULL, cancellable, context,
                              error))
    goto fail;
  for (guint i = 0; i < G_N_ELEMENTS (begin); i++)
    PQclear (results[i]);

  /* Under the lock: what another process did is visible now. */
  if (!inspect_schema (self, c, &state, cancellable, error) ||
      !check_schema (self, &state, error))
    goto fail;

  if (!state.exists)
    {
      g_autofree char *create = g_strdup_printf ("CREATE SCHEMA %s", self->quoted_schema);

      if (!_es_pg_connection_run_script (c, create, cancellable, context, error))
        goto fail;
    }

  for (version = state.version; version < SCHEMA_VERSION; version++)
    {
      g_autofree char *sql = _es_pg_schema_sql (self, migrations[version]);

      if (!_es_pg_connection_run_script (c, sql, cancellable, context, error))
        goto fail;
    }

  if (state.version < SCHEMA_VERSION)
    {
      result = _es_pg_connection_run_one (c, &set_version, cancellable, context, error);
      if (result == NULL)
        goto fail;
      PQclear (result);
    }

  result = _es_pg_connection_run_one (c, &commit, cancellable, context, error);
  if (result == NULL)
    goto fail;
  PQclear (result);
  return TRUE;

fail:
  _es_pg_connection_rollback (c);
  return FALSE;
}
