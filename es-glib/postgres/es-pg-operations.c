/* es-pg-operations.c: the PostgreSQL backend's integrity check
 * (es_storage_handle_check()): es-glib's invariants, in one statement,
 * hence one snapshot. PostgreSQL checks its own storage (checksums,
 * amcheck) with its own tools; backups are pg_dump's (the storage has no
 * backup vfunc: NOT_SUPPORTED).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "es-pg-private.h"

/* Each row: kind (EsCheckProblemKind), stream id, version, two numbers
 * and a name, in text format. */
static const char check_template[] =
  "WITH o AS (SELECT stream_id, version, sequence_id,"
  "   lag (version) OVER w AS prev, lag (sequence_id) OVER w AS prev_seq"
  "   FROM {S}.events WINDOW w AS (PARTITION BY stream_id ORDER BY version)),"
  " g AS (SELECT stream_id, count(*) AS n, min(version) AS first, max(version) AS last"
  "   FROM {S}.events GROUP BY stream_id)"
  "(SELECT 1, stream_id, version, prev, 0::int8, NULL::text FROM o"
  "  WHERE prev IS NOT NULL AND version <> prev + 1 LIMIT 1000)"
  " UNION ALL (SELECT 3, stream_id, version, sequence_id, prev_seq, NULL FROM o"
  "  WHERE sequence_id <= prev_seq LIMIT 1000)"
  " UNION ALL (SELECT 2, g.stream_id, coalesce (s.version, g.last), coalesce (s.event_count, -1),"
  "  g.n, NULL FROM g LEFT JOIN {S}.streams s ON s.stream_id = g.stream_id"
  "  WHERE s.stream_id IS NULL OR s.event_count <> g.n OR s.version <> g.last"
  "   OR s.first_version <> g.first LIMIT 1000)"
  " UNION ALL (SELECT 2, s.stream_id, s.version, s.event_count, 0, NULL FROM {S}.streams s"
  "  WHERE s.event_count <> 0 AND NOT EXISTS"
  "   (SELECT 1 FROM {S}.events e WHERE e.stream_id = s.stream_id) LIMIT 1000)"
  " UNION ALL (SELECT 4, stream_id, max(version), count(*), 0, idempotency_key FROM {S}.events"
  "  WHERE idempotency_key IS NOT NULL GROUP BY stream_id, idempotency_key"
  "  HAVING count(*) > 1 LIMIT 1000)"
  " UNION ALL (SELECT 5, n.stream_id, n.version, {S}.subscription_head (n.stream_id), 0,"
  "  n.projection_name FROM {S}.snapshots n"
  "  WHERE n.version > {S}.subscription_head (n.stream_id) LIMIT 1000)"
  " UNION ALL (SELECT 6, b.stream_id, b.position, {S}.subscription_head (b.stream_id), 0, b.name"
  "  FROM {S}.subscriptions b WHERE b.position > {S}.subscription_head (b.stream_id) LIMIT 1000)";

typedef struct
{
  PGresult *result;  /* (owned) */
} CheckOp;

static gboolean
check_operation (EsPgStorage    *self,
                 EsPgConnection *c,
                 gpointer        data,
                 gboolean       *retry,
                 GCancellable   *cancellable,
                 GError        **error)
{
  CheckOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (self, check_template);
  EsPgStatement statement = { sql, 0, NULL, NULL, NULL, FALSE };

  *retry = TRUE;
  g_clear_pointer (&op->result, PQclear);
  op->result = _es_pg_connection_run_one (c, &statement, cancellable,
                                          _("Checking the database"), error);
  return op->result != NULL;
}

static gint64
column_int64 (PGresult *result,
              int       row,
              int       column)
{
  return g_ascii_strtoll (PQgetvalue (result, row, column), NULL, 10);
}

gboolean
_es_pg_storage_check (EsStorageHandle        *handle,
                      EsCheckFlags            flags,
                      EsCheckReport          *report,
                      GCancellable           *cancellable,
                      GFileProgressCallback   progress_callback,
                      gpointer                progress_data,
                      GError                **error)
{
  CheckOp op = { NULL };

  if (progress_callback != NULL)
    progress_callback (0, 1, progress_data);
  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), check_operation, &op, cancellable,
                                     error))
    return FALSE;

  for (int i = 0; i < PQntuples (op.result); i++)
    {
      EsCheckProblemKind kind = (EsCheckProblemKind) column_int64 (op.result, i, 0);
      const char *stream_id = PQgetvalue (op.result, i, 1);
      gint64 version = column_int64 (op.result, i, 2);
      gint64 a = column_int64 (op.result, i, 3);
      gint64 b = column_int64 (op.result, i, 4);
      const char *name = PQgetvalue (op.result, i, 5);
      g_autofree char *message = NULL;

      switch (kind)
        {
        case ES_CHECK_PROBLEM_VERSION_GAP:
          message = g_strdup_printf (/* Translators: the numbers are versions, %s a stream id */
                                     _("Stream '%s' jumps from version %lld to version %lld"),
                                     stream_id, (long long) a, (long long) version);
          version = a + 1;
          break;
        case ES_CHECK_PROBLEM_SEQUENCE_ORDER:
          message = g_strdup_printf (/* Translators: %lld are a version and sequence ids, %s a stream id */
                                     _("Version %lld of stream '%s' has sequence id %lld, not "
                                       "after its previous version's %lld"),
                                     (long long) version, stream_id, (long long) a,
                                     (long long) b);
          break;
        case ES_CHECK_PROBLEM_STREAM_MISMATCH:
          if (a < 0)
            message = g_strdup_printf (/* Translators: %s is a stream id, %lld a number of events */
                                       _("Stream '%s' has %lld events but no record in the "
                                         "streams table"), stream_id, (long long) b);
          else
            message = g_strdup_printf (/* Translators: %s is a stream id, %lld numbers of events */
                                       _("Stream '%s' is recorded with %lld events but has %lld"),
                                       stream_id, (long long) a, (long long) b);
          break;
        case ES_CHECK_PROBLEM_DUPLICATE_KEY:
          message = g_strdup_printf (/* Translators: the first %s is an idempotency key, the second a stream id, %lld a count */
                                     _("Idempotency key '%s' appears %lld times in stream '%s'"),
                                     name, (long long) a, stream_id);
          break;
        case ES_CHECK_PROBLEM_SNAPSHOT:
          message = g_strdup_printf (/* Translators: the first %s is a projection name, the second a stream id, %lld positions */
                                     _("Snapshot '%s' of stream '%s' is at position %lld, past "
                                       "the stream's %lld"),
                                     name, stream_id, (long long) version, (long long) a);
          break;
        case ES_CHECK_PROBLEM_CHECKPOINT:
          message = g_strdup_printf (/* Translators: the first %s is a subscription name, the second a stream id, %lld positions */
                                     _("Subscription '%s' of stream '%s' has its checkpoint at "
                                       "%lld, past the stream's head %lld"),
                                     name, stream_id, (long long) version, (long long) a);
          break;
        case ES_CHECK_PROBLEM_STORAGE:
        default:
          continue;
        }
      es_check_report_add_problem (report, kind,
                                   strcmp (stream_id, ES_ALL_STREAM) == 0 ? NULL : stream_id,
                                   version, message);
    }
  PQclear (op.result);
  if (progress_callback != NULL)
    progress_callback (1, 1, progress_data);
  (void) flags;
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Import (es_storage_handle_import_events())                              *
 * ---------------------------------------------------------------------- */

typedef struct
{
  EsStoredEvent * const *events;
  guint                  n_events;
  guint                  failed;   /* out */
  gint64                 stored;   /* out */
  gint64                 last_sequence_id;  /* out: the last position written, 0 for none */
} ImportOp;

typedef struct
{
  gboolean exists;
  gint64   version;
  gint64   event_count;
  gint64   first_version;
  gint64   first_at;
  gint64   last_at;
  int      state;
} PgStreamRow;

static PGresult *
run (EsPgConnection  *c,
     const char      *sql,
     int              n_params,
     const char     **values,
     const int       *lengths,
     const int       *formats,
     GCancellable    *cancellable,
     GError         **error)
{
  EsPgStatement statement = { sql, n_params, values, lengths, formats, FALSE };

  return _es_pg_connection_run_one (c, &statement, cancellable, _("Importing events"), error);
}

static gboolean
import_read_stream (EsPgStorage     *self,
                    EsPgConnection  *c,
                    const char      *stream_id,
                    PgStreamRow     *row,
                    GCancellable    *cancellable,
                    GError         **error)
{
  g_autofree char *lock_key = g_strdup_printf ("es-glib stream %s.%s", self->schema, stream_id);
  g_autofree char *sql = _es_pg_schema_sql (self,
    "SELECT version, event_count, first_version,"
    " coalesce ((extract (epoch FROM first_at) * 1000000)::int8, 0),"
    " coalesce ((extract (epoch FROM last_at) * 1000000)::int8, 0), state"
    " FROM {S}.streams WHERE stream_id = $1::text");
  const char *lock_values[] = { lock_key };
  const char *values[] = { stream_id };
  PGresult *result;

  result = run (c, self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, cancellable, error);
  if (result == NULL)
    return FALSE;
  PQclear (result);
  result = run (c, sql, 1, values, NULL, NULL, cancellable, error);
  if (result == NULL)
    return FALSE;
  memset (row, 0, sizeof *row);
  if (PQntuples (result) > 0)
    {
      row->exists = TRUE;
      row->version = column_int64 (result, 0, 0);
      row->event_count = column_int64 (result, 0, 1);
      row->first_version = column_int64 (result, 0, 2);
      row->first_at = column_int64 (result, 0, 3);
      row->last_at = column_int64 (result, 0, 4);
      row->state = (int) column_int64 (result, 0, 5);
    }
  PQclear (result);
  return TRUE;
}

static gboolean
import_write_stream (EsPgStorage        *self,
                     EsPgConnection     *c,
                     const char         *stream_id,
                     const PgStreamRow  *row,
                     GCancellable       *cancellable,
                     GError            **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self,
    "INSERT INTO {S}.streams AS s (stream_id, version, event_count, first_version, first_at,"
    " last_at, state) VALUES ($1::text, $2::int8, $3::int8, $4::int8,"
    " 'epoch'::timestamptz + $5::int8 * interval '1 microsecond',"
    " 'epoch'::timestamptz + $6::int8 * interval '1 microsecond', 0)"
    " ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,"
    " event_count = excluded.event_count, first_version = excluded.first_version,"
    " first_at = excluded.first_at, last_at = excluded.last_at, state = 0");
  g_autofree char *version = g_strdup_printf ("%" G_GINT64_FORMAT, row->version);
  g_autofree char *count = g_strdup_printf ("%" G_GINT64_FORMAT, row->event_count);
  g_autofree char *first = g_strdup_printf ("%" G_GINT64_FORMAT, row->first_version);
  g_autofree char *first_at = g_strdup_printf ("%" G_GINT64_FORMAT, row->first_at);
  g_autofree char *last_at = g_strdup_printf ("%" G_GINT64_FORMAT, row->last_at);
  const char *values[] = { stream_id, version, count, first, first_at, last_at };
  PGresult *result = run (c, sql, 6, values, NULL, NULL, cancellable, error);

  PQclear (result);
  return result != NULL;
}

/* 1 when the stored event at the event's version is identical, 0 when it
 * differs (or is gone), -1 on error. */
static int
import_same_event (EsPgStorage     *self,
                   EsPgConnection  *c,
                   EsStoredEvent   *event,
                   GCancellable    *cancellable,
                   GError         **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self,
    "SELECT event_type = $3::text AND data = $4::bytea"
    " AND idempotency_key IS NOT DISTINCT FROM $5::text"
    " AND metadata IS NOT DISTINCT FROM $6::text AND (flags & 1) = $7::int4"
    " FROM {S}.events WHERE stream_id = $1::text AND version = $2::int8");
  g_autofree char *version = g_strdup_printf ("%" G_GINT64_FORMAT,
                                              es_stored_event_get_version (event));
  GBytes *data = es_stored_event_get_data (event);
  gsize data_len = 0;
  const char *data_bytes = data != NULL ? g_bytes_get_data (data, &data_len) : "";
  const char *values[] = {
    es_stored_event_get_stream_id (event), version, es_stored_event_get_event_type (event),
    data_bytes != NULL ? data_bytes : "", es_stored_event_get_idempotency_key (event),
    es_stored_event_get_metadata (event), es_stored_event_get_erased (event) ? "1" : "0",
  };
  const int lengths[] = { 0, 0, 0, (int) data_len, 0, 0, 0 };
  const int formats[] = { 0, 0, 0, 1, 0, 0, 0 };
  PGresult *result = run (c, sql, 7, values, lengths, formats, cancellable, error);
  int same;

  if (result == NULL)
    return -1;
  same = PQntuples (result) > 0 && strcmp (PQgetvalue (result, 0, 0), "t") == 0;
  PQclear (result);
  return same;
}

/* The import's positions: @n reserved as the transaction's first write
 * (es-pg-schema.c, version 4), before any stream is locked and read; the
 * first is returned, -1 on failure. Events not stored (already there)
 * leave their numbers unused. */
static gint64
import_reserve (EsPgStorage     *self,
                EsPgConnection  *c,
                guint            n,
                GCancellable    *cancellable,
                GError         **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self, "SELECT {S}.reserve_positions ($1::int4)");
  g_autofree char *count = g_strdup_printf ("%u", n);
  const char *values[] = { count };
  PGresult *result = run (c, sql, 1, values, NULL, NULL, cancellable, error);
  gint64 first;

  if (result == NULL)
    return -1;
  first = column_int64 (result, 0, 0);
  PQclear (result);
  return first;
}

static gint64
import_insert (EsPgStorage     *self,
               EsPgConnection  *c,
               EsStoredEvent   *event,
               gint64           position,
               GCancellable    *cancellable,
               GError         **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self,
    "INSERT INTO {S}.events (sequence_id, stream_id, version, idempotency_key, event_type,"
    "  recorded_at, data, metadata, flags)"
    " VALUES ($9::int8, $1::text, $2::int8, $3::text, $4::text,"
    "  'epoch'::timestamptz + $5::int8 * interval '1 microsecond', $6::bytea, $7::text, $8::int4)"
    " RETURNING sequence_id");
  g_autofree char *position_text = g_strdup_printf ("%" G_GINT64_FORMAT, position);
  g_autofree char *version = g_strdup_printf ("%" G_GINT64_FORMAT,
                                              es_stored_event_get_version (event));
  g_autofree char *timestamp = g_strdup_printf ("%" G_GINT64_FORMAT,
                                                es_stored_event_get_timestamp_usec (event));
  GBytes *data = es_stored_event_get_data (event);
  gsize data_len = 0;
  const char *data_bytes = data != NULL ? g_bytes_get_data (data, &data_len) : "";
  const char *values[] = {
    es_stored_event_get_stream_id (event), version, es_stored_event_get_idempotency_key (event),
    es_stored_event_get_event_type (event), timestamp, data_bytes != NULL ? data_bytes : "",
    es_stored_event_get_metadata (event), es_stored_event_get_erased (event) ? "1" : "0",
    position_text,
  };
  const int lengths[] = { 0, 0, 0, 0, 0, (int) data_len, 0, 0, 0 };
  const int formats[] = { 0, 0, 0, 0, 0, 1, 0, 0, 0 };
  PGresult *result = run (c, sql, 9, values, lengths, formats, cancellable, error);
  gint64 sequence_id;

  if (result == NULL)
    return -1;
  sequence_id = column_int64 (result, 0, 0);
  PQclear (result);
  return sequence_id;
}

static gboolean
import_key_used (EsPgStorage     *self,
                 EsPgConnection  *c,
                 const char      *stream_id,
                 const char      *key,
                 gboolean        *out_used,
                 GCancellable    *cancellable,
                 GError         **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self,
    "SELECT EXISTS (SELECT FROM {S}.events WHERE stream_id = $1::text"
    " AND idempotency_key = $2::text)");
  const char *values[] = { stream_id, key };
  PGresult *result = run (c, sql, 2, values, NULL, NULL, cancellable, error);

  if (result == NULL)
    return FALSE;
  *out_used = strcmp (PQgetvalue (result, 0, 0), "t") == 0;
  PQclear (result);
  return TRUE;
}

/* The events of one call in one transaction, under each stream's advisory
 * lock (the appends' lock); one NOTIFY for watchers follows the COMMIT
 * (import_operation()). */
static gboolean
import_body (EsPgStorage     *self,
             EsPgConnection  *c,
             ImportOp        *op,
             GCancellable    *cancellable,
             GError         **error)
{
  const char *current = NULL;
  PgStreamRow row = { 0, };
  gint64 last_sequence_id = 0;
  gint64 next_position;

  if (op->n_events == 0)
    return TRUE;
  next_position = import_reserve (self, c, op->n_events, cancellable, error);
  if (next_position < 0)
    return FALSE;

  for (guint i = 0; i < op->n_events; i++)
    {
      EsStoredEvent *event = op->events[i];
      const char *stream_id = es_stored_event_get_stream_id (event);
      const char *key = es_stored_event_get_idempotency_key (event);
      gint64 version = es_stored_event_get_version (event);
      gint64 timestamp = es_stored_event_get_timestamp_usec (event);

      op->failed = i;
      if (current == NULL || strcmp (current, stream_id) != 0)
        {
          if (current != NULL && !import_write_stream (self, c, current, &row, cancellable, error))
            return FALSE;
          if (!import_read_stream (self, c, stream_id, &row, cancellable, error))
            return FALSE;
          current = stream_id;
        }
      if (row.state == ES_STREAM_STATE_TOMBSTONED)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
                       /* Translators: %s is a stream id */
                       _("Stream '%s' was deleted for good (tombstoned) and cannot be written to"),
                       stream_id);
          return FALSE;
        }
      if (version <= row.version)
        {
          int same = import_same_event (self, c, event, cancellable, error);

          if (same < 0)
            return FALSE;
          if (same)
            continue;
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       /* Translators: %lld is a version, %s a stream id */
                       _("Stream '%s' already holds a different event at version %lld"),
                       stream_id, (long long) version);
          return FALSE;
        }
      if (row.version != 0 && version != row.version + 1)
        {
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       /* Translators: the numbers are versions, %s a stream id */
                       _("Cannot import version %lld of stream '%s': the stream is at version %lld"),
                       (long long) version, stream_id, (long long) row.version);
          return FALSE;
        }
      if (key != NULL)
        {
          gboolean used;

          if (!import_key_used (self, c, stream_id, key, &used, cancellable, error))
            return FALSE;
          if (used)
            {
              g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                           /* Translators: the first %s is an idempotency key, the second a stream id, %lld a version */
                           _("Idempotency key '%s' of version %lld is already used in stream '%s'"),
                           key, (long long) version, stream_id);
              return FALSE;
            }
        }
      last_sequence_id = import_insert (self, c, event, next_position++, cancellable, error);
      if (last_sequence_id < 0)
        return FALSE;
      if (row.event_count == 0)
        {
          row.first_version = version;
          row.first_at = timestamp;
        }
      row.version = version;
      row.event_count++;
      row.last_at = timestamp;
      row.state = ES_STREAM_STATE_ACTIVE;
      op->stored++;
    }
  if (current != NULL && !import_write_stream (self, c, current, &row, cancellable, error))
    return FALSE;
  op->last_sequence_id = last_sequence_id;
  return TRUE;
}

static gboolean
import_operation (EsPgStorage    *self,
                  EsPgConnection *c,
                  gpointer        data,
                  gboolean       *retry,
                  GCancellable   *cancellable,
                  GError        **error)
{
  ImportOp *op = data;
  PGresult *result;

  op->stored = 0;
  op->last_sequence_id = 0;
  *retry = TRUE;
  result = run (c, "BEGIN", 0, NULL, NULL, NULL, cancellable, error);
  if (result == NULL)
    return FALSE;
  PQclear (result);
  *retry = FALSE;

  if (!import_body (self, c, op, cancellable, error))
    {
      _es_pg_connection_rollback (c);
      return FALSE;
    }
  result = run (c, "COMMIT", 0, NULL, NULL, NULL, cancellable, error);
  if (result == NULL)
    {
      _es_pg_connection_rollback (c);
      return FALSE;
    }
  PQclear (result);

  /* One NOTIFY for watchers, after the COMMIT, in a transaction of its
   * own (see APPEND_SQL in es-pg-schema.c); its failure is not the
   * import's. */
  if (op->last_sequence_id > 0)
    {
      g_autofree char *position = g_strdup_printf ("%" G_GINT64_FORMAT, op->last_sequence_id);
      const char *values[] = { _es_pg_storage_get_channel (self), position };
      g_autoptr(GError) notify_error = NULL;

      result = run (c, "SELECT pg_catalog.pg_notify($1::text, $2::text)", 2, values, NULL, NULL,
                    NULL, &notify_error);
      PQclear (result);
    }
  return TRUE;
}

gint64
_es_pg_storage_import_events (EsStorageHandle       *handle,
                              EsStoredEvent * const *events,
                              guint                  n_events,
                              guint                 *out_failed_index,
                              GCancellable          *cancellable,
                              GError               **error)
{
  ImportOp op = { events, n_events, 0, 0, 0 };
  gboolean ok;

  ok = _es_pg_storage_run_operation (ES_PG_STORAGE (handle), import_operation, &op, cancellable,
                                     error);
  if (out_failed_index != NULL)
    *out_failed_index = op.failed;
  return ok ? op.stored : -1;
}
