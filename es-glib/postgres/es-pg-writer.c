/* es-pg-writer.c: writing to PostgreSQL.
 *
 * An append, synchronous: one transaction in two round trips, its batch
 * sent as arrays in binary format. Asynchronous appends: the jobs of the
 * shared write queue (es-glib/backend/es-write-queue.c), run as groups,
 * one transaction per group, the appends to one stream merged into runs
 * (group commit). Saving a snapshot.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-pg-private.h"

/* ---------------------------------------------------------------------- *
 * Arrays in binary format                                                 *
 * ---------------------------------------------------------------------- */

/* A one-dimensional array in PostgreSQL's binary format (array_recv):
 * the header, then each element as a length and its bytes, -1 for NULL.
 * Sent as one parameter, it carries a whole batch's column. */
typedef struct
{
  GByteArray *bytes;
  guint       n;
  gboolean    has_null;
} BinaryArray;

static void
put_int32 (GByteArray *bytes,
           gint32      value)
{
  guint32 be = GUINT32_TO_BE ((guint32) value);

  g_byte_array_append (bytes, (const guint8 *) &be, sizeof be);
}

static void
binary_array_init (BinaryArray *array,
                   Oid          element_type,
                   gsize        reserve)
{
  array->bytes = g_byte_array_sized_new (20 + reserve);
  array->n = 0;
  array->has_null = FALSE;
  put_int32 (array->bytes, 1);              /* dimensions */
  put_int32 (array->bytes, 0);              /* has nulls: set at the end */
  put_int32 (array->bytes, element_type);
  put_int32 (array->bytes, 0);              /* elements: set at the end */
  put_int32 (array->bytes, 1);              /* lower bound */
}

static void
binary_array_add (BinaryArray   *array,
                  gconstpointer  data,
                  gssize         size)
{
  array->n++;
  if (data == NULL && size < 0)
    {
      array->has_null = TRUE;
      put_int32 (array->bytes, -1);
      return;
    }
  if (size < 0)
    size = strlen (data);
  put_int32 (array->bytes, (gint32) size);
  if (size > 0)
    g_byte_array_append (array->bytes, data, size);
}

static void
binary_array_finish (BinaryArray *array)
{
  guint32 has_null = GUINT32_TO_BE (array->has_null ? 1 : 0);
  guint32 n = GUINT32_TO_BE (array->n);

  memcpy (array->bytes->data + 4, &has_null, sizeof has_null);
  memcpy (array->bytes->data + 12, &n, sizeof n);
}

/* Appends the elements of the finished @src to @dst. */
static void
binary_array_append (BinaryArray       *dst,
                     const BinaryArray *src)
{
  g_byte_array_append (dst->bytes, src->bytes->data + 20, src->bytes->len - 20);
  dst->n += src->n;
  dst->has_null = dst->has_null || src->has_null;
}

static void
binary_array_clear (BinaryArray *array)
{
  g_clear_pointer (&array->bytes, g_byte_array_unref);
}

#define TEXT_OID  25
#define BYTEA_OID 17

static void
set_closed_error (GError **error)
{
  g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
}

/* ---------------------------------------------------------------------- *
 * Appending                                                               *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char  *stream_id;
  gint64       expected_version;
  char        *lock_key;          /* (owned) */
  char        *expected_text;     /* (owned) */
  BinaryArray  keys;              /* text[] */
  BinaryArray  types;             /* text[] */
  BinaryArray  data;              /* bytea[] */
  BinaryArray  metadata;          /* text[] */
  BinaryArray  streams;           /* text[] of the one stream, for SQL_RETAIN */
  gint64       out_version;
} AppendOp;

static void
append_op_clear (AppendOp *op)
{
  g_clear_pointer (&op->lock_key, g_free);
  g_clear_pointer (&op->expected_text, g_free);
  binary_array_clear (&op->keys);
  binary_array_clear (&op->types);
  binary_array_clear (&op->data);
  binary_array_clear (&op->metadata);
  binary_array_clear (&op->streams);
}

/* One append: two round trips to the server.
 *
 * 1. BEGIN, and a transaction-scoped advisory lock on the stream: appends
 *    to one stream, from any connection of any process, take turns from
 *    here to their COMMIT, so the version each one reads next is exact.
 *
 * 2. One statement (APPEND_SQL) that reads the stream's version and state
 *    from its row of the streams table (in a snapshot taken after the
 *    lock, so it sees the previous append; a tombstoned stream accepts
 *    nothing: ES_ERROR_STREAM_DELETED),
 *    checks the expected version (accepting any when every event's
 *    idempotency key is already stored: a retry of a stored batch, which
 *    then writes nothing), leaves out the events whose idempotency
 *    key the stream already holds, reserves as many sequence ids as
 *    there are events left (reserve_positions(), before anything is
 *    written), inserts them at the next versions, brings the stream's
 *    row up to date and NOTIFYs the channel with the last sequence id;
 *    then RETAIN_SQL enforces the stream's retention policy (if any) in
 *    the same transaction; then COMMIT.
 *
 * No skipped events in @all (schema version 4, es-pg-schema.c;
 * doc/postgres-scaling.md): the reservation assigns the transaction its id
 * and takes the numbers in one short critical section, so among appends
 * transaction-id order is position order, and readers of @all see only
 * the rows of transactions below their snapshot's xmin (BELOW_HORIZON):
 * what they see is always a prefix of the final order. Nothing is held
 * to the COMMIT but the stream's lock: appends to different streams
 * commit in parallel, and their WAL flushes are shared (group commit
 * across connections and processes). Numbers of a transaction that rolls
 * back are not given back: gaps in the numbers, never in what readers
 * see.
 *
 * The unique constraints stay the last line of defence: a violation (a
 * writer that does not take the lock) is ES_ERROR_WRONG_EXPECTED_VERSION.
 *
 * A connection lost during the first round trip changed nothing: the
 * caller retries on a new one. Lost after the second was sent, the COMMIT
 * may or may not have happened: ES_ERROR_STORAGE, and the transaction
 * guarantees all the events or none. */
static gboolean
append_operation (EsPgStorage    *self,
                  EsPgConnection *c,
                  gpointer        data,
                  gboolean       *retry,
                  GCancellable   *cancellable,
                  GError        **error)
{
  AppendOp *op = data;
  g_autofree char *context = NULL;
  const char *lock_values[] = { op->lock_key };
  const EsPgStatement begin[] = {
    { "BEGIN", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, FALSE },
  };
  const char *values[] = {
    op->stream_id, op->expected_text,
    (const char *) op->keys.bytes->data, (const char *) op->types.bytes->data,
    (const char *) op->data.bytes->data, (const char *) op->metadata.bytes->data,
    NULL,
  };
  const int lengths[] = {
    0, 0,
    op->keys.bytes->len, op->types.bytes->len, op->data.bytes->len, op->metadata.bytes->len,
    0,
  };
  const int formats[] = { 0, 0, 1, 1, 1, 1, 0 };
  const char *notify_values[] = { self->channel };
  const char *retain_values[] = { (const char *) op->streams.bytes->data };
  const int retain_lengths[] = { op->streams.bytes->len };
  static const int retain_formats[] = { 1 };
  const EsPgStatement insert[] = {
    { self->sql[SQL_APPEND], G_N_ELEMENTS (values), values, lengths, formats, FALSE },
    { self->sql[SQL_RETAIN], 1, retain_values, retain_lengths, retain_formats, FALSE },
    { "COMMIT", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_NOTIFY], 1, notify_values, NULL, NULL, FALSE },
  };
  PGresult *results[4] = { NULL, NULL, NULL, NULL };
  g_autoptr(GError) local_error = NULL;
  gboolean accepted, tombstoned, ok;
  gint64 version, n_inserted;
  int failed = -1;
  guint i;

  /* Translators: %s is a stream id */
  context = g_strdup_printf (_("Appending events to stream '%s'"), op->stream_id);

  *retry = TRUE;
  if (!_es_pg_connection_run (c, begin, G_N_ELEMENTS (begin), results, NULL, cancellable, context,
                              error))
    {
      for (i = 0; i < G_N_ELEMENTS (begin); i++)
        PQclear (results[i]);
      _es_pg_connection_rollback (c);
      return FALSE;
    }
  for (i = 0; i < G_N_ELEMENTS (begin); i++)
    PQclear (results[i]);
  *retry = FALSE;

  ok = _es_pg_connection_run (c, insert, G_N_ELEMENTS (insert), results, &failed, cancellable,
                              context, &local_error);
  if (!ok && failed == 3 && !c->lost)
    {
      /* Committed; only the notification failed: watches of other
       * factories see the events at the next one. Not an error of the
       * append. */
      g_debug ("PostgreSQL: the notification after an append failed: %s",
               local_error->message);
      g_clear_error (&local_error);
      ok = TRUE;
    }
  if (!ok)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      if (failed == 0 && _es_pg_result_has_state (results[0], "23505"))
        {
          g_clear_error (error);
          g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                       /* Translators: %s is a stream id */
                       _("Appending events to stream '%s' failed: another write took the "
                         "same stream version"), op->stream_id);
        }
      else if (c->lost)
        {
          g_autofree char *reason = g_strdup ((*error)->message);

          g_clear_error (error);
          g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                       /* Translators: %s is PostgreSQL's (English) reason, such as
                        * "server closed the connection unexpectedly" */
                       _("%s (the connection broke while the append was committing: its "
                         "events were all written or none was; an idempotency key makes "
                         "writing them again safe)"), reason);
        }
      for (i = 0; i < G_N_ELEMENTS (insert); i++)
        PQclear (results[i]);
      _es_pg_connection_rollback (c);
      return FALSE;
    }

  version = g_ascii_strtoll (PQgetvalue (results[0], 0, 0), NULL, 10);
  accepted = g_str_equal (PQgetvalue (results[0], 0, 1), "t");
  n_inserted = g_ascii_strtoll (PQgetvalue (results[0], 0, 2), NULL, 10);
  tombstoned = g_ascii_strtoll (PQgetvalue (results[0], 0, 5), NULL, 10) ==
               ES_STREAM_STATE_TOMBSTONED;
  for (i = 0; i < G_N_ELEMENTS (insert); i++)
    PQclear (results[i]);

  if (tombstoned)
    {
      /* Nothing was written. */
      _es_pg_set_tombstoned_error (error, op->stream_id);
      return FALSE;
    }

  if (!accepted)
    {
      /* Nothing was written; the COMMIT committed nothing. The caller
       * learns the version found along with the conflict. */
      op->out_version = version;
      g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                   /* Translators: the numbers are stream versions, %s a stream id */
                   _("Expected version %lld but stream '%s' is at version %lld"),
                   (long long) op->expected_version, op->stream_id, (long long) version);
      return FALSE;
    }

  op->out_version = version + n_inserted;
  return TRUE;
}

/* Fills @op for an append of @events to @stream_id (which must outlive
 * @op): the lock key, and the batch as four array parameters. */
static void
append_op_init (EsPgStorage              *self,
                AppendOp                 *op,
                const char               *stream_id,
                gint64                    expected_version,
                EsCandidateEvent * const *events,
                guint                     n_events,
                GPtrArray                *out_keys)
{
  g_autoptr(GHashTable) keys = NULL;
  gsize size = 0;
  guint i;

  op->stream_id = stream_id;
  op->expected_version = expected_version;
  op->out_version = -1;
  op->lock_key = g_strdup_printf ("es-glib stream %s.%s", self->schema, stream_id);
  op->expected_text = g_strdup_printf ("%" G_GINT64_FORMAT, expected_version);

  for (i = 0; i < n_events; i++)
    {
      GBytes *bytes = es_candidate_event_get_data (events[i]);

      size += bytes != NULL ? g_bytes_get_size (bytes) + 4 : 4;
    }

  /* The batch travels as four array parameters, one per column, in binary
   * format: no escaping, and the server inserts the rows in one go. */
  binary_array_init (&op->keys, TEXT_OID, 0);
  binary_array_init (&op->types, TEXT_OID, n_events * 16);
  binary_array_init (&op->data, BYTEA_OID, size);
  binary_array_init (&op->metadata, TEXT_OID, 0);

  for (i = 0; i < n_events; i++)
    {
      EsCandidateEvent *event = events[i];
      const char *key = es_candidate_event_get_idempotency_key (event);
      const char *metadata = es_candidate_event_get_metadata (event);
      GBytes *bytes = es_candidate_event_get_data (event);
      gsize data_size = 0;
      gconstpointer data_bytes = bytes != NULL ? g_bytes_get_data (bytes, &data_size) : NULL;

      /* A key repeated in the batch is skipped, as a stored one is: the
       * first event with it is written. */
      if (key != NULL)
        {
          if (keys == NULL)
            keys = g_hash_table_new (g_str_hash, g_str_equal);
          if (!g_hash_table_add (keys, (gpointer) key))
            continue;
        }

      if (out_keys != NULL)
        g_ptr_array_add (out_keys, g_strdup (key));
      binary_array_add (&op->keys, key, -1);
      binary_array_add (&op->types, es_candidate_event_get_event_type (event), -1);
      binary_array_add (&op->data, data_size > 0 ? data_bytes : "", data_size);
      binary_array_add (&op->metadata, metadata, -1);
    }

  binary_array_init (&op->streams, TEXT_OID, 0);
  binary_array_add (&op->streams, stream_id, -1);
  binary_array_finish (&op->streams);

  binary_array_finish (&op->keys);
  binary_array_finish (&op->types);
  binary_array_finish (&op->data);
  binary_array_finish (&op->metadata);
}

gboolean
_es_pg_storage_append (EsStorageHandle          *handle,
                       const char               *stream_id,
                       gint64                    expected_version,
                       EsCandidateEvent * const *events,
                       guint                     n_events,
                       gint64                   *out_version,
                       GCancellable             *cancellable,
                       GError                  **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  GError *local_error = NULL;
  AppendOp op = { 0, };
  gboolean ok;

  append_op_init (self, &op, stream_id, expected_version, events, n_events, NULL);

  ok = _es_pg_storage_run_operation (self, append_operation, &op, cancellable, &local_error);
  /* On success the new version; with a conflict, the version it found
   * (-1 when the conflict came from a unique violation). */
  if (out_version != NULL &&
      (ok || g_error_matches (local_error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION)))
    *out_version = op.out_version;
  if (!ok)
    g_propagate_error (error, local_error);

  append_op_clear (&op);
  return ok;
}

/* ---------------------------------------------------------------------- *
 * Group commit: asynchronous appends                                      *
 * ---------------------------------------------------------------------- */

/* Why: each append in flight in its own transaction on its own connection
 * pays a commit (a WAL flush) and a connection of its own, and until
 * schema version 4 they all queued on the one counter row held to COMMIT:
 * 64 in flight were slower than one after another.
 *
 * So asynchronous appends go to one writer thread, as the SQLite backend's
 * do. It takes every job queued (up to WRITER_MAX_GROUP) and runs them as
 * one transaction on one pooled connection, in two round trips:
 *
 * 1. In one pipeline: BEGIN; the advisory locks of all the group's streams
 *    (LOCK_MANY_SQL: distinct keys in ascending order, the one order every
 *    group of every process uses, so groups cannot deadlock one another,
 *    and a single append holds one lock only); then the appends, in
 *    submission order within each stream: APPEND_SQL per run of appends
 *    to one stream that accept any version (merged, see group_operation()),
 *    and per append that expects a version. A job sees the versions written
 *    by the jobs before it, and one whose expected version is wrong gets
 *    accepted = false and writes nothing, without disturbing the others.
 *
 * 2. COMMIT, then each job's task completes with its own version or error.
 *
 * As in a single append: a connection lost during the first round trip
 * changed nothing, and the group runs again once on another connection;
 * lost during the COMMIT, every job fails with the "committing" error. A
 * statement that raises (a unique violation from a writer that does not
 * lock, a deadlock) aborts the transaction: the group is rolled back and
 * its jobs run again one by one, each in its own transaction, so that
 * only the culprit fails. A job cancelled before the writer got to it
 * fails with G_IO_ERROR_CANCELLED and writes nothing; a group of one job
 * (a lone writer) also passes its cancellable to the server, as the
 * synchronous path does. Synchronous appends keep their own path. */

/* How long the writer lingers for more appends to join a group is the
 * write queue's business (es-write-queue.c), as for SQLite. */
#define WRITER_MAX_GROUP 256

/* One asynchronous append, queued to the write queue
 * (es-write-queue-private.h). */
typedef struct
{
  EsWriteJob    base;          /* first: the task, its cancellable, the result */
  char         *stream_id;     /* (owned) */
  AppendOp      op;
  GPtrArray    *keys;          /* (owned) (element-type utf8) the key of each event
                                * of @op, NULL for none */
} Job;

static void
job_free (EsWriteJob *base)
{
  Job *job = (Job *) base;

  append_op_clear (&job->op);
  g_clear_pointer (&job->keys, g_ptr_array_unref);
  g_free (job->stream_id);
  g_clear_error (&job->base.error);
  g_clear_object (&job->base.task);
  g_free (job);
}

typedef struct
{
  Job      **jobs;
  guint      n_jobs;
  gboolean   rerun_singly;  /* out: a statement raised; run the jobs one by one */
} Group;

/* The context of an error of @job's append. */
static char *
job_context (Job *job)
{
  /* Translators: %s is a stream id */
  return g_strdup_printf (_("Appending events to stream '%s'"), job->stream_id);
}

/* A run: consecutive appends of one group to one stream, sent as one
 * APPEND_SQL (see group_operation()). */
typedef struct
{
  guint        first_job;    /* index of its first job in the group */
  guint        n_jobs;
  guint       *jobs;         /* (owned) indexes in the group, in order */
  gboolean     has_keys;     /* some event carries an idempotency key */
  GHashTable  *keys;         /* (owned) (nullable) the keys of its events */
  BinaryArray  arrays[5];    /* merged keys, types, data, metadata; and the keys
                              * for EXISTING_KEYS_SQL (runs of several jobs) */
  const char  *values[7];
  int          lengths[7];
  guint        n_events;       /* events in its arrays: positions it may take */
  char         offset[24];     /* its first position's offset in the group's block */
  const char  *key_values[2];
  int          key_lengths[2];
  int          key_statement;  /* its EXISTING_KEYS_SQL, or -1 */
  int          statement;      /* its APPEND_SQL */
} Run;

static void
run_clear (Run *run)
{
  g_free (run->jobs);
  g_clear_pointer (&run->keys, g_hash_table_unref);
  for (guint a = 0; a < G_N_ELEMENTS (run->arrays); a++)
    binary_array_clear (&run->arrays[a]);
}

/* Whether @job's keys are all absent from @run's. */
static gboolean
run_keys_disjoint (Run *run,
                   Job *job)
{
  for (guint k = 0; k < job->keys->len; k++)
    {
      const char *key = g_ptr_array_index (job->keys, k);

      if (key != NULL && run->keys != NULL && g_hash_table_contains (run->keys, key))
        return FALSE;
    }
  return TRUE;
}

static void
run_add_job (Run   *run,
             Job   *job,
             guint  index)
{
  run->jobs[run->n_jobs++] = index;
  for (guint k = 0; k < job->keys->len; k++)
    {
      char *key = g_ptr_array_index (job->keys, k);

      if (key == NULL)
        continue;
      if (run->keys == NULL)
        run->keys = g_hash_table_new (g_str_hash, g_str_equal);
      g_hash_table_add (run->keys, key);
      run->has_keys = TRUE;
    }
}

/* Splits the group into runs: a job that accepts any version joins the
 * open run of its stream, unless one of its keys is in that run already;
 * a job that expects a version runs alone, its own check deciding, and
 * closes the open run of its stream. Within a stream the jobs keep their
 * order (runs are sent in the order of their first job), so each sees the
 * versions the jobs before it wrote, as it would alone. */
static GArray *
group_make_runs (Group *group)
{
  GArray *runs = g_array_new (FALSE, TRUE, sizeof (Run));
  g_autoptr(GHashTable) open = g_hash_table_new (g_str_hash, g_str_equal);  /* stream → index + 1 */

  for (guint i = 0; i < group->n_jobs; i++)
    {
      Job *job = group->jobs[i];
      guint open_index = GPOINTER_TO_UINT (g_hash_table_lookup (open, job->stream_id));
      Run *run;

      if (job->op.expected_version == ES_VERSION_ANY && open_index > 0 &&
          run_keys_disjoint (&g_array_index (runs, Run, open_index - 1), job))
        {
          run_add_job (&g_array_index (runs, Run, open_index - 1), job, i);
          continue;
        }

      g_array_set_size (runs, runs->len + 1);
      run = &g_array_index (runs, Run, runs->len - 1);
      run->first_job = i;
      run->jobs = g_new (guint, group->n_jobs - i);
      run->key_statement = -1;
      run_add_job (run, job, i);
      if (job->op.expected_version == ES_VERSION_ANY)
        g_hash_table_insert (open, job->stream_id, GUINT_TO_POINTER (runs->len));
      else
        g_hash_table_remove (open, job->stream_id);
    }

  return runs;
}

/* One group as one transaction on @c (see above); an EsPgOperation for
 * _es_pg_storage_run_operation(). Sets each job's version or its
 * wrong-version error; FALSE with @error when the group as a whole
 * failed.
 *
 * The appends to one stream that accept any version are merged into runs
 * (group_make_runs()), each sent as one APPEND_SQL with the events of all
 * its jobs: the server plans and runs a statement per run rather than per
 * append. APPEND_SQL reports only how many events it stored, so for a run
 * whose events carry idempotency keys, EXISTING_KEYS_SQL first asks which
 * of them the stream holds (under the stream's lock, after the runs before
 * it): those are the ones skipped, which tells how many of each job's
 * events were stored, hence each job's version. */
static gboolean
group_operation (EsPgStorage    *self,
                 EsPgConnection *c,
                 gpointer        data,
                 gboolean       *retry,
                 GCancellable   *cancellable,
                 GError        **error)
{
  Group *group = data;
  guint n = group->n_jobs;
  g_autoptr(GArray) runs = NULL;
  /* plan_cache_mode: PostgreSQL 12 and later, see below. */
  guint first = PQserverVersion (c->conn) >= 120000 ? 3 : 2;
  guint n_statements;
  g_autofree char *context = job_context (group->jobs[0]);
  g_autofree EsPgStatement *statements = NULL;
  g_autofree PGresult **results = NULL;
  static const int formats[] = { 0, 0, 1, 1, 1, 1, 0 };
  static const int binary_formats[] = { 0, 1 };
  gboolean reserve;
  guint n_events = 0;
  g_autofree char *n_events_text = NULL;
  const char *reserve_values[1];
  static const int lock_formats[] = { 1 };
  const char *lock_values[1];
  int lock_lengths[1];
  gint64 notify_position = 0;
  g_autofree char *notify_text = NULL;
  const char *notify_values[2];
  EsPgStatement commit[2];
  PGresult *commit_results[2] = { NULL, NULL };
  BinaryArray lock_keys, retain_streams;
  const char *retain_values[1];
  int retain_lengths[1];
  int failed = -1;
  gboolean ok;
  guint i, r, s;

  group->rerun_singly = FALSE;
  for (i = 0; i < n; i++)
    {
      g_clear_error (&group->jobs[i]->base.error);
      group->jobs[i]->base.out_version = -1;
    }

  runs = group_make_runs (group);
  /* Positions: one APPEND_SQL reserves its own; several share one block
   * reserved first (RESERVE_SQL), each at its offset, since only the
   * first write of a transaction may reserve (es-pg-schema.c, version 4).
   * The block covers every event sent; those left out (idempotency keys
   * already stored, a wrong expected version) leave gaps in the numbers. */
  reserve = runs->len > 1;
  n_statements = first + (reserve ? 1 : 0);
  for (r = 0; r < runs->len; r++)
    {
      Run *run = &g_array_index (runs, Run, r);

      n_statements += (run->n_jobs > 1 && run->has_keys) ? 2 : 1;
      for (i = 0; i < run->n_jobs; i++)
        run->n_events += group->jobs[run->jobs[i]]->op.types.n;
      g_snprintf (run->offset, sizeof run->offset, "%u", n_events);
      n_events += run->n_events;
    }
  n_statements++;  /* RETAIN_SQL */
  statements = g_new0 (EsPgStatement, n_statements);
  results = g_new0 (PGresult *, n_statements);

  binary_array_init (&lock_keys, TEXT_OID, 0);
  for (i = 0; i < n; i++)
    binary_array_add (&lock_keys, group->jobs[i]->op.lock_key, -1);
  binary_array_finish (&lock_keys);
  lock_values[0] = (const char *) lock_keys.bytes->data;
  lock_lengths[0] = lock_keys.bytes->len;

  /* The retention policies of the group's streams, after all the runs. */
  binary_array_init (&retain_streams, TEXT_OID, 0);
  for (i = 0; i < n; i++)
    binary_array_add (&retain_streams, group->jobs[i]->stream_id, -1);
  binary_array_finish (&retain_streams);
  retain_values[0] = (const char *) retain_streams.bytes->data;
  retain_lengths[0] = retain_streams.bytes->len;

  statements[0] = (EsPgStatement) { "BEGIN", 0, NULL, NULL, NULL, FALSE };
  /* APPEND_SQL is planned for its parameters at each run (a custom plan).
   * The generic plan the server may switch to after a few runs checks the
   * idempotency keys with a hashed subplan, which reads every key of the
   * stream at each run: measured in a group, on a stream that grows, it
   * made 64 appends in flight slower than sequential ones. Custom plans,
   * for this transaction only, look each key up in the index instead. Not
   * for the whole connection: reads planned per page on a table whose
   * statistics lag behind its growth picked a sort over the index and ran
   * 12 times slower. */
  if (first == 3)
    statements[1] = (EsPgStatement) { "SET LOCAL plan_cache_mode = force_custom_plan", 0, NULL,
                                  NULL, NULL, FALSE };
  statements[first - 1] = (EsPgStatement) { self->sql[SQL_LOCK_MANY], 1, lock_values, lock_lengths,
                                        lock_formats, FALSE };

  s = first;
  if (reserve)
    {
      n_events_text = g_strdup_printf ("%u", n_events);
      reserve_values[0] = n_events_text;
      statements[s++] = (EsPgStatement) { self->sql[SQL_RESERVE], 1, reserve_values, NULL, NULL,
                                          FALSE };
    }
  for (r = 0; r < runs->len; r++)
    {
      Run *run = &g_array_index (runs, Run, r);
      AppendOp *op = &group->jobs[run->first_job]->op;

      if (run->n_jobs == 1)
        {
          run->values[2] = (const char *) op->keys.bytes->data;
          run->values[3] = (const char *) op->types.bytes->data;
          run->values[4] = (const char *) op->data.bytes->data;
          run->values[5] = (const char *) op->metadata.bytes->data;
          run->lengths[2] = op->keys.bytes->len;
          run->lengths[3] = op->types.bytes->len;
          run->lengths[4] = op->data.bytes->len;
          run->lengths[5] = op->metadata.bytes->len;
        }
      else
        {
          binary_array_init (&run->arrays[0], TEXT_OID, 0);
          binary_array_init (&run->arrays[1], TEXT_OID, 0);
          binary_array_init (&run->arrays[2], BYTEA_OID, 0);
          binary_array_init (&run->arrays[3], TEXT_OID, 0);
          for (i = 0; i < run->n_jobs; i++)
            {
              Job *job = group->jobs[run->jobs[i]];

              binary_array_append (&run->arrays[0], &job->op.keys);
              binary_array_append (&run->arrays[1], &job->op.types);
              binary_array_append (&run->arrays[2], &job->op.data);
              binary_array_append (&run->arrays[3], &job->op.metadata);
            }
          for (i = 0; i < 4; i++)
            {
              binary_array_finish (&run->arrays[i]);
              run->values[2 + i] = (const char *) run->arrays[i].bytes->data;
              run->lengths[2 + i] = run->arrays[i].bytes->len;
            }

          if (run->has_keys)
            {
              GHashTableIter iter;
              gpointer key;

              binary_array_init (&run->arrays[4], TEXT_OID, 0);
              g_hash_table_iter_init (&iter, run->keys);
              while (g_hash_table_iter_next (&iter, &key, NULL))
                binary_array_add (&run->arrays[4], key, -1);
              binary_array_finish (&run->arrays[4]);
              run->key_values[0] = op->stream_id;
              run->key_values[1] = (const char *) run->arrays[4].bytes->data;
              run->key_lengths[1] = run->arrays[4].bytes->len;
              run->key_statement = s;
              statements[s++] = (EsPgStatement) { self->sql[SQL_EXISTING_KEYS], 2, run->key_values,
                                              run->key_lengths, binary_formats, FALSE };
            }
        }

      run->values[0] = op->stream_id;
      run->values[1] = op->expected_text;
      run->values[6] = reserve ? run->offset : NULL;
      run->statement = s;
      statements[s++] = (EsPgStatement) { self->sql[SQL_APPEND], 7, run->values, run->lengths,
                                      formats, FALSE };
    }
  statements[s++] = (EsPgStatement) { self->sql[SQL_RETAIN], 1, retain_values, retain_lengths,
                                      lock_formats, FALSE };
  g_assert (s == n_statements);

  /* Round trip 1: nothing is committed yet, a lost connection may retry. */
  *retry = TRUE;
  ok = _es_pg_connection_run (c, statements, n_statements, results, &failed, cancellable, context,
                              error);
  binary_array_clear (&lock_keys);
  binary_array_clear (&retain_streams);

  if (!ok)
    {
      if (failed >= (int) first && !c->lost)
        {
          if (n > 1 && !(c->cancel_sent && _es_pg_result_has_state (results[failed], "57014")))
            group->rerun_singly = TRUE;
          else if (_es_pg_result_has_state (results[failed], "23505"))
            {
              g_clear_error (error);
              g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                           /* Translators: %s is a stream id */
                           _("Appending events to stream '%s' failed: another write took the "
                             "same stream version"), group->jobs[0]->stream_id);
            }
        }
      else if (failed == (int) first - 1 && n > 1 && !c->lost &&
               _es_pg_result_has_state (results[failed], "40P01"))
        group->rerun_singly = TRUE;

      for (i = 0; i < n_statements; i++)
        PQclear (results[i]);
      for (r = 0; r < runs->len; r++)
        run_clear (&g_array_index (runs, Run, r));
      _es_pg_connection_rollback (c);
      return FALSE;
    }

  ok = TRUE;
  for (r = 0; r < runs->len; r++)
    {
      Run *run = &g_array_index (runs, Run, r);
      PGresult *rr = results[run->statement];
      gint64 version = g_ascii_strtoll (PQgetvalue (rr, 0, 0), NULL, 10);
      gboolean accepted = g_str_equal (PQgetvalue (rr, 0, 1), "t");
      gint64 n_inserted = g_ascii_strtoll (PQgetvalue (rr, 0, 2), NULL, 10);
      g_autoptr(GHashTable) existing = NULL;
      gint64 counted = 0;

      if (!PQgetisnull (rr, 0, 3))
        notify_position = MAX (notify_position, g_ascii_strtoll (PQgetvalue (rr, 0, 3), NULL, 10));

      if (run->n_jobs == 1)
        {
          Job *job = group->jobs[run->first_job];

          /* Accepted: the new version. Not: nothing was written for it,
           * and it reports the version found with the conflict. */
          job->base.out_version = accepted ? version + n_inserted : version;
          if (g_ascii_strtoll (PQgetvalue (rr, 0, 5), NULL, 10) == ES_STREAM_STATE_TOMBSTONED)
            {
              job->base.out_version = -1;
              _es_pg_set_tombstoned_error (&job->base.error, job->stream_id);
            }
          else if (!accepted)
            g_set_error (&job->base.error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                         /* Translators: the numbers are stream versions, %s a stream id */
                         _("Expected version %lld but stream '%s' is at version %lld"),
                         (long long) job->op.expected_version, job->stream_id,
                         (long long) version);
          continue;
        }

      /* Several jobs, all accepting any version. */
      if (run->key_statement >= 0)
        {
          PGresult *kr = results[run->key_statement];

          existing = g_hash_table_new (g_str_hash, g_str_equal);
          for (int row = 0; row < PQntuples (kr); row++)
            g_hash_table_add (existing, PQgetvalue (kr, row, 0));
        }

      for (i = 0; i < run->n_jobs; i++)
        {
          Job *job = group->jobs[run->jobs[i]];

          for (guint k = 0; k < job->keys->len; k++)
            {
              const char *key = g_ptr_array_index (job->keys, k);

              if (key == NULL || existing == NULL || !g_hash_table_contains (existing, key))
                counted++;
            }
          job->base.out_version = version + counted;
        }

      /* Cannot happen under the lock; should it, the jobs run alone. */
      if (!accepted || counted != n_inserted)
        ok = FALSE;
    }
  for (i = 0; i < n_statements; i++)
    PQclear (results[i]);
  for (r = 0; r < runs->len; r++)
    run_clear (&g_array_index (runs, Run, r));

  if (!ok)
    {
      /* Not reported: the group's appends run again one by one. */
      group->rerun_singly = TRUE;
      g_set_error_literal (error, ES_ERROR, ES_ERROR_STORAGE, _("Unexpected append result"));
      _es_pg_connection_rollback (c);
      return FALSE;
    }

  /* Round trip 2: once the COMMIT is sent, its outcome may be unknown.
   * Then the notification of the last position written, in a transaction
   * of its own (see APPEND_SQL in es-pg-schema.c). */
  *retry = FALSE;
  commit[0] = (EsPgStatement) { "COMMIT", 0, NULL, NULL, NULL, FALSE };
  notify_text = g_strdup_printf ("%" G_GINT64_FORMAT, notify_position);
  notify_values[0] = self->channel;
  notify_values[1] = notify_text;
  commit[1] = (EsPgStatement) { "SELECT pg_catalog.pg_notify($1::text, $2::text)", 2, notify_values,
                                NULL, NULL, FALSE };
  failed = -1;
  ok = _es_pg_connection_run (c, commit, notify_position > 0 ? 2 : 1, commit_results, &failed,
                              cancellable, context, error);
  PQclear (commit_results[0]);
  PQclear (commit_results[1]);
  if (!ok && failed == 1 && !c->lost)
    {
      /* Committed; only the notification failed (see append_operation()). */
      g_debug ("PostgreSQL: the notification after a group of appends failed: %s",
               (*error)->message);
      g_clear_error (error);
      return TRUE;
    }
  if (!ok)
    {
      if (c->lost)
        {
          g_autofree char *reason = g_strdup ((*error)->message);

          g_clear_error (error);
          g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                       /* Translators: %s is PostgreSQL's (English) reason, such as
                        * "server closed the connection unexpectedly" */
                       _("%s (the connection broke while the append was committing: its "
                         "events were all written or none was; an idempotency key makes "
                         "writing them again safe)"), reason);
        }
      _es_pg_connection_rollback (c);
      return FALSE;
    }
  return TRUE;
}

/* Gives @job the error of its group, which was made with the first job's
 * context: the job's own stream is named in its copy. */
static void
job_set_group_error (Job          *job,
                     const GError *group_error,
                     const char   *group_context)
{
  g_autofree char *context = job_context (job);

  g_clear_error (&job->base.error);
  job->base.out_version = -1;  /* not a version this job found */
  if (group_error->domain == ES_ERROR && g_str_has_prefix (group_error->message, group_context))
    job->base.error = g_error_new (ES_ERROR, group_error->code, "%s%s", context,
                                   group_error->message + strlen (group_context));
  else
    job->base.error = g_error_copy (group_error);
}

/* Runs a group: the write queue's run function. The jobs given are the
 * ones not cancelled; the queue completes every job afterwards, in one
 * idle source per main context. The storage is the tasks' source object,
 * alive until the queue releases the last task. */
static void
writer_run_group (EsWriteJob **base_jobs,
                  guint        n_live,
                  GError     **out_group_error,
                  gpointer     user_data)
{
  Job **live = (Job **) base_jobs;
  EsPgStorage *self = ES_PG_STORAGE (g_task_get_source_object (live[0]->base.task));
  g_autoptr(GError) group_error = NULL;
  g_autofree char *group_context = job_context (live[0]);
  Group group = { live, n_live, FALSE };
  guint i;

  /* One job alone can be cancelled while it runs; several share the
   * transaction, and none can stop it for the others. */
  if (_es_pg_storage_run_operation (self, group_operation, &group,
                                    n_live == 1 ? live[0]->base.cancellable : NULL, &group_error))
    return;

  if (group.rerun_singly)
    {
      for (i = 0; i < n_live; i++)
        {
          g_autoptr(GError) job_error = NULL;
          Group one = { &live[i], 1, FALSE };

          if (!_es_pg_storage_run_operation (self, group_operation, &one, live[i]->base.cancellable,
                                             &job_error))
            {
              g_clear_error (&live[i]->base.error);
              live[i]->base.error = g_steal_pointer (&job_error);
            }
        }
    }
  else
    {
      /* Each job gets the error named after its own stream. */
      for (i = 0; i < n_live; i++)
        job_set_group_error (live[i], group_error, group_context);
    }
}

EsWriteQueue *
_es_pg_writer_new (void)
{
  return _es_write_queue_new (WRITER_MAX_GROUP, writer_run_group, job_free, NULL, NULL, NULL);
}

void
_es_pg_storage_append_async (EsStorageHandle          *handle,
                             const char               *stream_id,
                             gint64                    expected_version,
                             EsCandidateEvent * const *events,
                             guint                     n_events,
                             GCancellable             *cancellable,
                             GAsyncReadyCallback       callback,
                             gpointer                  user_data)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  Job *job;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, _es_pg_storage_append_async);
  /* A write that committed is reported as done even if the cancellable
   * fires afterwards: GTask must not turn it into G_IO_ERROR_CANCELLED. */
  g_task_set_check_cancellable (task, FALSE);

  if (self->writer == NULL)
    {
      set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* The caller may free its arguments as soon as this returns. */
  job = g_new0 (Job, 1);
  job->stream_id = g_strdup (stream_id);
  job->keys = g_ptr_array_new_with_free_func (g_free);
  append_op_init (self, &job->op, job->stream_id, expected_version, events, n_events, job->keys);
  job->base.cancellable = g_task_get_cancellable (task);
  job->base.out_version = -1;
  job->base.task = g_object_ref (task);

  if (!_es_write_queue_submit (self->writer, &job->base))
    {
      job_free (&job->base);
      set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
    }
}

gboolean
_es_pg_storage_append_finish (EsStorageHandle  *handle,
                              GAsyncResult     *result,
                              gint64           *out_version,
                              GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, handle), FALSE);

  return _es_append_task_propagate (G_TASK (result), out_version, error);
}

/* ---------------------------------------------------------------------- *
 * Snapshots                                                               *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char *values[4];
  int         lengths[4];
} SnapshotOp;

static gboolean
save_snapshot_operation (EsPgStorage    *self,
                         EsPgConnection *c,
                         gpointer        data,
                         gboolean       *retry,
                         GCancellable   *cancellable,
                         GError        **error)
{
  SnapshotOp *op = data;
  static const int formats[] = { 0, 0, 0, 1 };
  EsPgStatement statement = { self->sql[SQL_SAVE_SNAPSHOT], 4, op->values, op->lengths, formats,
                          FALSE };
  PGresult *result;

  /* The upsert writes the same row however many times it runs. */
  *retry = TRUE;
  result = _es_pg_connection_run_one (c, &statement, cancellable, _("Saving a snapshot"), error);
  PQclear (result);
  return result != NULL;
}

gboolean
_es_pg_storage_save_snapshot (EsStorageHandle  *handle,
                              const char       *stream_id,
                              const char       *projection_name,
                              gint64            version,
                              GBytes           *state,
                              GCancellable     *cancellable,
                              GError          **error)
{
  g_autofree char *version_text = g_strdup_printf ("%" G_GINT64_FORMAT, version);
  gsize size = 0;
  gconstpointer bytes = state != NULL ? g_bytes_get_data (state, &size) : NULL;
  SnapshotOp op = { 0, };

  op.values[0] = stream_id != NULL ? stream_id : ALL_STREAM_KEY;
  op.values[1] = projection_name;
  op.values[2] = version_text;
  op.values[3] = size > 0 ? bytes : "";
  op.lengths[3] = size;

  return _es_pg_storage_run_operation (ES_PG_STORAGE (handle), save_snapshot_operation, &op,
                                       cancellable, error);
}
