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
