/* es-pg-lifecycle.c: the stream life cycle on PostgreSQL.
 *
 * Listing streams and stream information (reads of the streams table
 * only), deletes, truncation, erasure, retention policies, the sweep and
 * compaction. The writing operations are plpgsql functions of the schema
 * (es-pg-schema.c, version 2), each called in one transaction that first
 * takes the stream's advisory lock, as appends do (es-pg-writer.c): a
 * delete, a truncation or an enforced policy and an append to the same
 * stream take turns, so an append's version check and a delete's
 * expected-version check are exact across connections and processes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-pg-private.h"

/* The most events one transaction of a sweep removes. */
#define SWEEP_BATCH 10000

/* A nullable timestamptz in binary format, 0 for NULL. */
static inline gint64
get_usec_or_zero (const PGresult *result,
                  int             row,
                  int             column)
{
  if (PQgetisnull (result, row, column))
    return 0;
  return _es_pg_get_usec (result, row, column);
}

void
_es_pg_set_tombstoned_error (GError     **error,
                             const char  *stream_id)
{
  g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
               /* Translators: %s is a stream id */
               _("Stream '%s' was deleted for good (tombstoned) and cannot be written to"),
               stream_id);
}

void
_es_pg_set_unexpected_status_error (GError **error,
                                    int      status)
{
  g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
               /* Translators: %d is a status code of a database function */
               _("Unexpected answer %d from the database"), status);
}

/* ---------------------------------------------------------------------- *
 * Calls of the schema's functions, under the stream's lock                *
 * ---------------------------------------------------------------------- */

/* A call of one of the schema's functions returning (status, found). */
typedef struct
{
  const char  *stream_id;    /* (nullable) whose lock to take */
  const char  *template;     /* the SELECT, with {S} */
  const char  *values[5];
  int          n_params;
  const char  *context;
  gboolean     notify;       /* notify the position it leaves (NOTIFY_SQL) after the COMMIT */
  gint         status;       /* out */
  gint64       found;        /* out */
} CallOp;

/* Two round trips, as an append: BEGIN and the stream's lock (a lost
 * connection changed nothing: the operation may run again), then the call
 * and COMMIT (once sent, the outcome of a broken connection is unknown).
 * The functions check before they write: a refusal commits nothing. */
static gboolean
call_operation (EsPgStorage    *self,
                EsPgConnection *c,
                gpointer        data,
                gboolean       *retry,
                GCancellable   *cancellable,
                GError        **error)
{
  CallOp *op = data;
  g_autofree char *lock_key = NULL;
  g_autofree char *sql = _es_pg_schema_sql (self, op->template);
  const char *lock_values[1];
  EsPgStatement begin[2] = {
    { "BEGIN", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, FALSE },
  };
  const char *notify_values[] = { self->channel };
  const EsPgStatement call[] = {
    { sql, op->n_params, op->values, NULL, NULL, FALSE },
    { "COMMIT", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_NOTIFY], 1, notify_values, NULL, NULL, FALSE },
  };
  PGresult *results[3] = { NULL, NULL, NULL };
  int failed = -1;
  gboolean ok;
  guint n_begin = 1;
  guint i;

  if (op->stream_id != NULL)
    {
      lock_key = g_strdup_printf ("es-glib stream %s.%s", self->schema, op->stream_id);
      lock_values[0] = lock_key;
      n_begin = 2;
    }

  *retry = TRUE;
  if (!_es_pg_connection_run (c, begin, n_begin, results, NULL, cancellable, op->context, error))
    {
      for (i = 0; i < n_begin; i++)
        PQclear (results[i]);
      _es_pg_connection_rollback (c);
      return FALSE;
    }
  for (i = 0; i < n_begin; i++)
    PQclear (results[i]);

  *retry = FALSE;
  ok = _es_pg_connection_run (c, call, op->notify ? 3 : 2, results, &failed, cancellable,
                              op->context, error);
  if (!ok && failed == 2 && !c->lost)
    {
      /* Committed; only the notification failed (see APPEND_SQL in
       * es-pg-schema.c): not an error of the operation. */
      g_clear_error (error);
      ok = TRUE;
    }
  if (!ok)
    {
      for (i = 0; i < G_N_ELEMENTS (call); i++)
        PQclear (results[i]);
      _es_pg_connection_rollback (c);
      return FALSE;
    }

  op->status = (gint) g_ascii_strtoll (PQgetvalue (results[0], 0, 0), NULL, 10);
  op->found = g_ascii_strtoll (PQgetvalue (results[0], 0, 1), NULL, 10);
  for (i = 0; i < G_N_ELEMENTS (call); i++)
    PQclear (results[i]);
  return TRUE;
}

/* Status codes of the schema's functions. */
enum
{
  STATUS_DONE = 0,
  STATUS_WRONG_VERSION = 1,
  STATUS_TOMBSTONED = 2,
  STATUS_BEYOND_VERSION = 3,
};

gboolean
_es_pg_storage_delete_stream (EsStorageHandle  *handle,
                              const char       *stream_id,
                              gint64            expected_version,
                              EsDeleteFlags     flags,
                              GCancellable     *cancellable,
                              GError          **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  g_autofree char *expected = g_strdup_printf ("%" G_GINT64_FORMAT, expected_version);
  g_autofree char *context = NULL;
  CallOp op = { 0, };

  /* Translators: %s is a stream id */
  context = g_strdup_printf (_("Deleting stream '%s'"), stream_id);
  op.stream_id = stream_id;
  op.template = "SELECT status, found_version FROM {S}.delete_stream ($1::text, $2::int8,"
                " $3::boolean, $4::text)";
  op.values[0] = stream_id;
  op.values[1] = expected;
  op.values[2] = (flags & ES_DELETE_FLAGS_TOMBSTONE) != 0 ? "true" : "false";
  op.values[3] = self->channel;
  op.n_params = 4;
  op.context = context;
  op.notify = TRUE;

  if (!_es_pg_storage_run_operation (self, call_operation, &op, cancellable, error))
    return FALSE;

  switch (op.status)
    {
    case STATUS_DONE:
      return TRUE;
    case STATUS_WRONG_VERSION:
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   /* Translators: the numbers are stream versions, %s a stream id */
                   _("Expected version %lld but stream '%s' is at version %lld"),
                   (long long) expected_version, stream_id, (long long) op.found);
      return FALSE;
    case STATUS_TOMBSTONED:
      g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
                   /* Translators: %s is a stream id */
                   _("Stream '%s' was deleted for good (tombstoned) and cannot be "
                     "soft-deleted"), stream_id);
      return FALSE;
    default:
      _es_pg_set_unexpected_status_error (error, op.status);
      return FALSE;
    }
}

gboolean
_es_pg_storage_truncate_stream (EsStorageHandle  *handle,
                                const char       *stream_id,
                                gint64            before_version,
                                GCancellable     *cancellable,
                                GError          **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  g_autofree char *before = g_strdup_printf ("%" G_GINT64_FORMAT, before_version);
  g_autofree char *context = NULL;
  CallOp op = { 0, };

  /* Translators: %s is a stream id */
  context = g_strdup_printf (_("Truncating stream '%s'"), stream_id);
  op.stream_id = stream_id;
  op.template = "SELECT status, found_version FROM {S}.truncate_stream ($1::text, $2::int8)";
  op.values[0] = stream_id;
  op.values[1] = before;
  op.n_params = 2;
  op.context = context;

  if (!_es_pg_storage_run_operation (self, call_operation, &op, cancellable, error))
    return FALSE;

  switch (op.status)
    {
    case STATUS_DONE:
      return TRUE;
    case STATUS_TOMBSTONED:
      g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
                   /* Translators: %s is a stream id */
                   _("Stream '%s' was deleted for good (tombstoned) and cannot be truncated"),
                   stream_id);
      return FALSE;
    case STATUS_BEYOND_VERSION:
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a stream id, the numbers are versions */
                   _("Cannot truncate stream '%s' before version %lld: it is at version %lld"),
                   stream_id, (long long) before_version, (long long) op.found);
      return FALSE;
    default:
      _es_pg_set_unexpected_status_error (error, op.status);
      return FALSE;
    }
}

/* ---------------------------------------------------------------------- *
 * Erasure                                                                 *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char *values[2];
  gboolean    found;   /* out */
} EraseOp;

/* One statement, its own transaction. The row is updated in place: the
 * old version of the row (with the data) becomes a dead tuple that VACUUM
 * reclaims (see _es_pg_storage_compact()). */
static gboolean
erase_operation (EsPgStorage    *self,
                 EsPgConnection *c,
                 gpointer        data,
                 gboolean       *retry,
                 GCancellable   *cancellable,
                 GError        **error)
{
  EraseOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (self,
    "UPDATE {S}.events SET data = ''::bytea, metadata = NULL, flags = flags | 1"
    " WHERE stream_id = $1::text AND version = $2::int8 RETURNING sequence_id");
  EsPgStatement statement = { sql, 2, op->values, NULL, NULL, FALSE };
  PGresult *result;

  /* The update writes the same row however many times it runs. */
  *retry = TRUE;
  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Erasing an event"), error);
  if (result == NULL)
    return FALSE;
  op->found = PQntuples (result) > 0;
  PQclear (result);
  return TRUE;
}

gboolean
_es_pg_storage_erase_event (EsStorageHandle  *handle,
                            const char       *stream_id,
                            gint64            version,
                            GCancellable     *cancellable,
                            GError          **error)
{
  g_autofree char *version_text = g_strdup_printf ("%" G_GINT64_FORMAT, version);
  EraseOp op = { { stream_id, version_text }, FALSE };

  if (!_es_pg_storage_run_operation (ES_PG_STORAGE (handle), erase_operation, &op, cancellable,
                                     error))
    return FALSE;

  if (!op.found)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                   /* Translators: %s is a stream id, %lld a version */
                   _("Stream '%s' has no event at version %lld to erase"),
                   stream_id, (long long) version);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Retention                                                               *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char *values[2];
} SettingsOp;

static gboolean
settings_operation (EsPgStorage    *self,
                    EsPgConnection *c,
                    gpointer        data,
                    gboolean       *retry,
                    GCancellable   *cancellable,
                    GError        **error)
{
  SettingsOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (self, "UPDATE {S}.settings SET max_age = $1::int8,"
                                                  " max_count = $2::int8");
  EsPgStatement statement = { sql, 2, op->values, NULL, NULL, FALSE };
  PGresult *result;

  *retry = TRUE;
  result = _es_pg_connection_run_one (c, &statement, cancellable,
                                      _("Storing the retention policy"), error);
  PQclear (result);
  return result != NULL;
}

static gint64 sweep_from (EsPgStorage  *self,
                          gint64        now_usec,
                          GCancellable *cancellable,
                          GError      **error);

typedef struct
{
  const char *now;       /* microseconds since the epoch, as text */
  gboolean    pending;   /* out */
} PendingOp;

/* Whether some stream still holds events its effective policy removes at
 * @now: the condition of the schema's sweep(), which skips the streams
 * another transaction holds at that moment. */
static gboolean
pending_operation (EsPgStorage    *self,
                   EsPgConnection *c,
                   gpointer        data,
                   gboolean       *retry,
                   GCancellable   *cancellable,
                   GError        **error)
{
  PendingOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (self,
    "SELECT EXISTS (SELECT FROM {S}.streams s, {S}.settings g"
    "  WHERE s.event_count > 0 AND s.state <> 2"
    "    AND (({S}.stricter (s.max_count, g.max_count) > 0"
    "          AND s.event_count > {S}.stricter (s.max_count, g.max_count))"
    "      OR ({S}.stricter (s.max_age, g.max_age) > 0"
    "          AND s.first_at < TIMESTAMPTZ 'epoch' + $1::int8 * INTERVAL '1 microsecond'"
    "                           - {S}.stricter (s.max_age, g.max_age)"
    "                             * INTERVAL '1 microsecond')))");
  const char *values[1] = { op->now };
  EsPgStatement statement = { sql, 1, values, NULL, NULL, FALSE };
  PGresult *result;

  *retry = TRUE;
  result = _es_pg_connection_run_one (c, &statement, cancellable,
                                      _("Storing the retention policy"), error);
  if (result == NULL)
    return FALSE;
  op->pending = g_str_equal (PQgetvalue (result, 0, 0), "t");
  PQclear (result);
  return TRUE;
}

/* Retries of a database-wide policy's enforcement, 10 ms apart, while a
 * stream it concerns is held by another transaction (an append, which
 * enforces the policy itself once it sees it, or another sweep). */
#define ENFORCE_TRIES 200

gboolean
_es_pg_storage_set_retention (EsStorageHandle  *handle,
                              const char       *stream_id,
                              GTimeSpan         max_age,
                              gint64            max_count,
                              GCancellable     *cancellable,
                              GError          **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  g_autofree char *age = g_strdup_printf ("%" G_GINT64_FORMAT, (gint64) max_age);
  g_autofree char *count = g_strdup_printf ("%" G_GINT64_FORMAT, max_count);
  g_autofree char *context = NULL;
  CallOp op = { 0, };

  if (stream_id == NULL)
    {
      SettingsOp settings = { { age, count } };

      if (!_es_pg_storage_run_operation (self, settings_operation, &settings, cancellable, error))
        return FALSE;
      /* Every stream is concerned: enforced as a sweep, in transactions of
       * a bounded size, each complete. The policy is stored: the sweep
       * runs to its end whatever @cancellable says, for CANCELLED would
       * mean that nothing was written. */
      for (guint i = 0; i < ENFORCE_TRIES; i++)
        {
          gint64 now_usec = g_get_real_time ();
          g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT, now_usec);
          PendingOp pending = { now, FALSE };

          if (sweep_from (self, now_usec, NULL, error) < 0 ||
              !_es_pg_storage_run_operation (self, pending_operation, &pending, NULL, error))
            return FALSE;
          /* A stream skipped because another transaction held it: wait for
           * that one to commit, then look again. */
          if (!pending.pending)
            break;
          g_usleep (10 * G_TIME_SPAN_MILLISECOND);
        }
      return TRUE;
    }

  /* Translators: %s is a stream id */
  context = g_strdup_printf (_("Setting the retention policy of stream '%s'"), stream_id);
  op.stream_id = stream_id;
  op.template = "SELECT status, found_version FROM {S}.set_retention ($1::text, $2::int8,"
                " $3::int8)";
  op.values[0] = stream_id;
  op.values[1] = age;
  op.values[2] = count;
  op.n_params = 3;
  op.context = context;

  if (!_es_pg_storage_run_operation (self, call_operation, &op, cancellable, error))
    return FALSE;

  if (op.status == STATUS_TOMBSTONED)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED,
                   /* Translators: %s is a stream id */
                   _("Stream '%s' was deleted for good (tombstoned) and cannot have a "
                     "retention policy"), stream_id);
      return FALSE;
    }
  if (op.status != STATUS_DONE)
    {
      _es_pg_set_unexpected_status_error (error, op.status);
      return FALSE;
    }
  return TRUE;
}

typedef struct
{
  const char *values[4];
  gint64      removed;     /* out */
  char       *next_from;   /* out (owned) (nullable) */
} SweepOp;

/* One transaction of a sweep: a single statement (the schema's sweep(),
 * see es-pg-schema.c), committed on its own. */
static gboolean
sweep_operation (EsPgStorage    *self,
                 EsPgConnection *c,
                 gpointer        data,
                 gboolean       *retry,
                 GCancellable   *cancellable,
                 GError        **error)
{
  SweepOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (self,
    "SELECT removed, next_from FROM {S}.sweep ("
    " TIMESTAMPTZ 'epoch' + $1::int8 * INTERVAL '1 microsecond', $2::int8, $3::text, $4::text)");
  EsPgStatement statement = { sql, 4, op->values, NULL, NULL, FALSE };
  PGresult *result;

  *retry = FALSE;
  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Sweeping old events"),
                                      error);
  if (result == NULL)
    return FALSE;
  op->removed = g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  g_clear_pointer (&op->next_from, g_free);
  if (!PQgetisnull (result, 0, 1))
    op->next_from = g_strdup (PQgetvalue (result, 0, 1));
  PQclear (result);
  return TRUE;
}

/* Runs the sweep's transactions until every stream was seen. Cancelled
 * between (or during) transactions: CANCELLED when nothing was removed,
 * else the number removed so far (those transactions committed). */
static gint64
sweep_from (EsPgStorage   *self,
            gint64         now_usec,
            GCancellable  *cancellable,
            GError       **error)
{
  g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT, now_usec);
  g_autofree char *limit = g_strdup_printf ("%d", SWEEP_BATCH);
  g_autofree char *lock_prefix = g_strdup_printf ("es-glib stream %s.", self->schema);
  g_autofree char *from = NULL;
  gint64 total = 0;

  do
    {
      g_autoptr(GError) local_error = NULL;
      SweepOp op = { { now, limit, from, lock_prefix }, 0, NULL };

      if (!_es_pg_storage_run_operation (self, sweep_operation, &op, cancellable, &local_error))
        {
          g_free (op.next_from);
          if (total > 0 && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            return total;
          g_propagate_error (error, g_steal_pointer (&local_error));
          return -1;
        }
      total += op.removed;
      g_free (from);
      from = op.next_from;
    }
  while (from != NULL);

  return total;
}

typedef struct
{
  gboolean has_age_policy;  /* out */
} AgePolicyOp;

static gboolean
age_policy_operation (EsPgStorage    *self,
                      EsPgConnection *c,
                      gpointer        data,
                      gboolean       *retry,
                      GCancellable   *cancellable,
                      GError        **error)
{
  AgePolicyOp *op = data;
  /* The partial index streams_age_policy answers the first part. */
  g_autofree char *sql = _es_pg_schema_sql (self,
    "SELECT EXISTS (SELECT FROM {S}.streams WHERE max_age > 0)"
    " OR EXISTS (SELECT FROM {S}.settings WHERE max_age > 0)");
  EsPgStatement statement = { sql, 0, NULL, NULL, NULL, FALSE };
  PGresult *result;

  *retry = TRUE;
  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Sweeping old events"),
                                      error);
  if (result == NULL)
    return FALSE;
  op->has_age_policy = g_str_equal (PQgetvalue (result, 0, 0), "t");
  PQclear (result);
  return TRUE;
}

gint64
_es_pg_storage_sweep (EsStorageHandle  *handle,
                      gint64            now_usec,
                      gboolean         *out_has_age_policy,
                      GCancellable     *cancellable,
                      GError          **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  AgePolicyOp policy = { FALSE };
  gint64 removed;

  removed = sweep_from (self, now_usec, cancellable, error);
  if (removed < 0)
    return -1;

  if (out_has_age_policy != NULL)
    {
      /* Asked after removing: a failure here loses the count only when
       * nothing was removed, to keep CANCELLED meaning "nothing done". */
      if (!_es_pg_storage_run_operation (self, age_policy_operation, &policy,
                                         removed > 0 ? NULL : cancellable, error))
        return -1;
      *out_has_age_policy = policy.has_age_policy;
    }
  return removed;
}

/* ---------------------------------------------------------------------- *
 * Compaction                                                              *
 * ---------------------------------------------------------------------- */

static gboolean
compact_operation (EsPgStorage    *self,
                   EsPgConnection *c,
                   gpointer        data,
                   gboolean       *retry,
                   GCancellable   *cancellable,
                   GError        **error)
{
  /* Outside a transaction (VACUUM refuses to run in one): the simple
   * query protocol with one statement. */
  g_autofree char *sql = _es_pg_schema_sql (self,
    "VACUUM (ANALYZE) {S}.events, {S}.streams, {S}.snapshots, {S}.tombstones,"
    " {S}.settings, {S}.global_position");

  *retry = TRUE;
  return _es_pg_connection_run_script (c, sql, cancellable, _("Compacting the database"), error);
}

/* What VACUUM does and does not guarantee (the doc comment of
 * es_storage_handle_compact() and the privacy guide say it too):
 * PostgreSQL has no secure_delete. A delete, a truncation, retention and
 * an erasure (an UPDATE: a new row version) leave the old row versions in
 * the table's pages as dead tuples; VACUUM marks their space free for
 * reuse, removes their index entries and gives the empty pages at the end
 * of a table back to the file system, but it does not overwrite the bytes
 * of the dead tuples: they stay in the data files until new rows reuse
 * the space. Nor does it touch the write-ahead log (which holds the rows
 * as written until its segments are recycled), WAL archives, base backups
 * or replicas. Only VACUUM FULL (an exclusive lock, a rewrite of each
 * table into new files) drops the old files, whose blocks the file system
 * then frees without erasing them. */
gboolean
_es_pg_storage_compact (EsStorageHandle  *handle,
                        GCancellable     *cancellable,
                        GError          **error)
{
  return _es_pg_storage_run_operation (ES_PG_STORAGE (handle), compact_operation, NULL,
                                       cancellable, error);
}

/* ---------------------------------------------------------------------- *
 * Listing and stream information                                          *
 * ---------------------------------------------------------------------- */

#define INFO_COLUMNS \
  "stream_id, state::int8, version, event_count, first_version, first_at, last_at," \
  " max_age, max_count"

static EsStreamInfo *
info_from_row (const PGresult *result,
               int             row)
{
  return es_stream_info_new (PQgetvalue (result, row, 0),
                             (EsStreamState) _es_pg_get_int8 (result, row, 1),
                             _es_pg_get_int8 (result, row, 2),
                             _es_pg_get_int8 (result, row, 3),
                             _es_pg_get_int8 (result, row, 4),
                             get_usec_or_zero (result, row, 5),
                             get_usec_or_zero (result, row, 6),
                             _es_pg_get_int8 (result, row, 7),
                             _es_pg_get_int8 (result, row, 8));
}

/* A read of _es_pg_storage_read(). */
typedef struct
{
  const char          *sql;       /* with {S} */
  const char * const  *values;
  int                  n_params;
  const char          *context;
  PGresult            *result;    /* (owned) out */
} ReadOp;

static gboolean
read_operation (EsPgStorage    *self,
                EsPgConnection *c,
                gpointer        data,
                gboolean       *retry,
                GCancellable   *cancellable,
                GError        **error)
{
  ReadOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (self, op->sql);
  EsPgStatement statement = { sql, op->n_params, op->values, NULL, NULL, TRUE };

  *retry = TRUE;
  g_clear_pointer (&op->result, PQclear);
  op->result = _es_pg_connection_run_one (c, &statement, cancellable, op->context, error);
  return op->result != NULL;
}

PGresult *
_es_pg_storage_read (EsPgStorage         *self,
                     const char          *sql,
                     const char * const  *values,
                     int                  n_params,
                     const char          *context,
                     GCancellable        *cancellable,
                     GError             **error)
{
  ReadOp op = { sql, values, n_params, context, NULL };

  if (!_es_pg_storage_run_operation (self, read_operation, &op, cancellable, error))
    {
      g_clear_pointer (&op.result, PQclear);
      return NULL;
    }
  return op.result;
}

EsStreamInfo *
_es_pg_storage_get_stream_info (EsStorageHandle  *handle,
                                const char       *stream_id,
                                GCancellable     *cancellable,
                                GError          **error)
{
  const char *values[1] = { stream_id };
  const char *sql;
  PGresult *result;
  EsStreamInfo *info;

  if (stream_id == NULL)
    {
      /* The whole database: the last position used (by an event or a
       * delete) below the horizon (es-pg-schema.c, version 4), the events of every stream, the oldest stored event's
       * sequence id, the extreme timestamps (ends of events_recorded_at),
       * the database-wide policy. One statement, one snapshot. */
      sql = "SELECT '@all'::text, 0::int8, {S}.all_head (),"
               " (SELECT coalesce(sum(event_count), 0)::int8 FROM {S}.streams),"
               " (SELECT coalesce(min(sequence_id), 0) FROM {S}.events),"
               " (SELECT min(recorded_at) FROM {S}.events),"
               " (SELECT max(recorded_at) FROM {S}.events),"
               " g.max_age, g.max_count"
               " FROM {S}.settings g";
    }
  else
    sql = "SELECT " INFO_COLUMNS " FROM {S}.streams WHERE stream_id = $1::text";

  result = _es_pg_storage_read (ES_PG_STORAGE (handle), sql, values, stream_id != NULL ? 1 : 0,
                                _("Reading stream information"), cancellable, error);
  if (result == NULL)
    return NULL;

  if (PQntuples (result) > 0)
    info = info_from_row (result, 0);
  else
    /* Never written, deleted or given a policy: active and empty. */
    info = es_stream_info_new (stream_id, ES_STREAM_STATE_ACTIVE, 0, 0, 0, 0, 0, 0, 0);
  PQclear (result);
  return info;
}

/* The smallest string greater than every string that starts with
 * @prefix, in byte order, or NULL when there is none. UTF-8's byte order
 * is the order of code points, so the last code point that can grow is
 * incremented (skipping the surrogates, which UTF-8 cannot hold) and what
 * follows it dropped: the result is valid UTF-8, as PostgreSQL's text
 * requires. */
static char *
prefix_successor (const char *prefix)
{
  g_autofree gunichar *chars = NULL;
  glong n = 0;

  chars = g_utf8_to_ucs4_fast (prefix, -1, &n);
  while (n > 0)
    {
      gunichar c = chars[n - 1];

      if (c < 0x10FFFF)
        {
          c = c == 0xD7FF ? 0xE000 : c + 1;
          chars[n - 1] = c;
          return g_ucs4_to_utf8 (chars, n, NULL, NULL, NULL);
        }
      n--;
    }
  return NULL;
}

GPtrArray *
_es_pg_storage_list_streams (EsStorageHandle     *handle,
                             const char          *prefix,
                             const char          *after_stream_id,
                             EsListStreamsFlags   flags,
                             guint                limit,
                             GCancellable        *cancellable,
                             GError             **error)
{
  g_autoptr(GString) sql = g_string_new ("SELECT " INFO_COLUMNS " FROM {S}.streams WHERE TRUE");
  g_autofree char *successor = prefix != NULL ? prefix_successor (prefix) : NULL;
  g_autofree char *limit_text = g_strdup_printf ("%u", limit);
  const char *values[4];
  int n_params = 0;
  PGresult *result;
  GPtrArray *infos;

  /* Byte order (the column's collation is "C"); a prefix is a range of
   * the primary key, and so is each page after the previous one's last
   * id. Only the clauses needed are written: each form is planned as an
   * index range scan. */
  if (prefix != NULL)
    {
      values[n_params++] = prefix;
      g_string_append_printf (sql, " AND stream_id >= $%d::text", n_params);
      if (successor != NULL)
        {
          values[n_params++] = successor;
          g_string_append_printf (sql, " AND stream_id < $%d::text", n_params);
        }
    }
  if (after_stream_id != NULL)
    {
      values[n_params++] = after_stream_id;
      g_string_append_printf (sql, " AND stream_id > $%d::text", n_params);
    }
  if ((flags & ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED) == 0)
    g_string_append (sql, " AND state = 0");
  values[n_params++] = limit_text;
  g_string_append_printf (sql, " ORDER BY stream_id LIMIT $%d::int8", n_params);

  result = _es_pg_storage_read (ES_PG_STORAGE (handle), sql->str, values, n_params,
                                _("Reading stream information"), cancellable, error);
  if (result == NULL)
    return NULL;

  infos = g_ptr_array_new_full (PQntuples (result), g_object_unref);
  for (int row = 0; row < PQntuples (result); row++)
    g_ptr_array_add (infos, info_from_row (result, row));
  PQclear (result);
  return infos;
}
