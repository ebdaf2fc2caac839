/* es-pg-storage.c: the PostgreSQL implementation of EsStorageHandle.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <math.h>
#include <string.h>

#include "es-pg-private.h"

/**
 * EsPgStorage:
 *
 * The PostgreSQL implementation of [iface@Es.StorageHandle]: an event log
 * that processes on several machines share.
 *
 * Most applications never create one themselves:
 * [class@EsPg.StreamFactory] does, and pairs it with an
 * [class@EsPg.Notifier].
 *
 * The storage keeps its tables in one PostgreSQL schema
 * ([property@EsPg.Storage:schema]), created with them when missing and
 * versioned: a schema written by a newer es-glib, or one holding another
 * application's tables, fails with %ES_ERROR_STORAGE and is left
 * untouched. Several processes may create the same schema at the same
 * moment.
 *
 * Operations borrow a connection from a pool of up to
 * [property@EsPg.Storage:pool-size] connections, opened as they are
 * needed, and wait for one to be free beyond that. A connection the server
 * closed (a restart, say) is replaced; an operation that finds its
 * connection broken before it could take effect runs again on a new one,
 * so the first operation after a restart works. Every method blocks and
 * is meant for worker threads, as [iface@Es.StorageHandle] says; a
 * [class@Gio.Cancellable] that fires sends the server a cancel request.
 *
 * ## Appends
 *
 * An append is one transaction, with the semantics of the SQLite backend:
 * the expected-version check, the idempotency lookup and the inserts all
 * happen in it. Appends to one stream take turns through a
 * transaction-scoped advisory lock, so the version check is exact however
 * many connections, processes and machines write; the unique constraints
 * of the tables stay as the last line of defence, and a violation is
 * reported as %ES_ERROR_WRONG_EXPECTED_VERSION. Every append that stores
 * something sends a `NOTIFY` on the channel `<schema>_events`, with its
 * last sequence id as payload, in the same transaction.
 *
 * A connection that breaks while an append is committing leaves its
 * outcome unknown to the caller: the append fails with %ES_ERROR_STORAGE,
 * and the transaction guarantees that all of its events or none were
 * stored. Writing the events again is safe when they carry idempotency
 * keys.
 *
 * ## No skipped events in <code>@<!-- -->all</code>
 *
 * Sequence ids come from a one-row counter that each append updates in
 * its transaction, just before it inserts. The row stays locked until the
 * transaction ends, so appends commit in sequence-id order and ids have no
 * holes: a reader or a watch that has seen sequence id N never later
 * finds a committed event with a smaller id. (With ids from a sequence,
 * a transaction that took id 5 could commit after one that took id 6, and
 * a reader that had moved past 6 would miss 5 for ever.) The cost is that
 * the insert-and-commit step of appends is serial in one schema: batches
 * of events are the way to write fast.
 *
 * Since: 0.1
 */

#define DEFAULT_POOL_SIZE 4
#define MAX_POOL_SIZE     64

/* ---------------------------------------------------------------------- *
 * Errors and connections (shared with the notifier)                       *
 * ---------------------------------------------------------------------- */

/* Replaces every occurrence of @secret in @message with asterisks. */
static void
scrub (GString    *message,
       const char *secret)
{
  gsize len = strlen (secret);
  gsize pos = 0;
  const char *found;

  if (len == 0)
    return;

  while ((found = strstr (message->str + pos, secret)) != NULL)
    {
      pos = found - message->str;
      g_string_erase (message, pos, len);
      g_string_insert (message, pos, "********");
      pos += strlen ("********");
    }
}

/* libpq's messages about a malformed connection string quote the string,
 * URI and all ("unexpected character ... in URI: \"postgresql://u:pw@...\"").
 * Whatever in @conninfo may be a password is taken out of @message: the
 * value of a `password` keyword or URI query parameter, and the part after
 * the colon of a URI's user info, raw and percent-decoded. */
static char *
scrub_password (const char *message,
                const char *conninfo)
{
  GString *out = g_string_new (message);
  const char *p;

  if (conninfo == NULL)
    return g_string_free (out, FALSE);

  /* URI: scheme://user:password@host... */
  p = strstr (conninfo, "://");
  if (p != NULL)
    {
      const char *start = p + 3;
      const char *end = start + strcspn (start, "/?#");
      const char *at = g_strrstr_len (start, end - start, "@");
      const char *colon = at != NULL ? memchr (start, ':', at - start) : NULL;

      if (colon != NULL)
        {
          g_autofree char *raw = g_strndup (colon + 1, at - colon - 1);
          g_autofree char *decoded = g_uri_unescape_string (raw, NULL);

          scrub (out, raw);
          if (decoded != NULL)
            scrub (out, decoded);
        }
    }

  /* password=value, as a keyword (possibly quoted) or a URI parameter. */
  for (p = conninfo; (p = strstr (p, "password")) != NULL; p += strlen ("password"))
    {
      const char *value = p + strlen ("password");
      gsize len;

      while (g_ascii_isspace (*value))
        value++;
      if (*value != '=')
        continue;
      value++;
      while (g_ascii_isspace (*value))
        value++;

      if (*value == '\'')
        {
          const char *q = value + 1;

          while (*q != '\0' && *q != '\'')
            q += (*q == '\\' && q[1] != '\0') ? 2 : 1;
          len = q - value - 1;
          value++;
        }
      else
        len = strcspn (value, " \t\n&#");

      if (len > 0)
        {
          g_autofree char *raw = g_strndup (value, len);
          g_autofree char *decoded = g_uri_unescape_string (raw, NULL);

          scrub (out, raw);
          if (decoded != NULL)
            scrub (out, decoded);
        }
    }

  return g_string_free (out, FALSE);
}

/* libpq's messages end with a newline and often span lines ("...failed:
 * No such file or directory\n\tIs the server running locally...?"); the
 * server's "ERROR:  " or "FATAL:  " prefix is noise in a GError. One line,
 * without them. */
static char *
tidy_message (const char *message)
{
  static const char * const prefixes[] = { "ERROR:  ", "FATAL:  " };
  GString *out = g_string_new (NULL);
  const char *p = message != NULL && *message != '\0' ? message : "unknown error";

  for (guint i = 0; i < G_N_ELEMENTS (prefixes); i++)
    if (g_str_has_prefix (p, prefixes[i]))
      p += strlen (prefixes[i]);

  for (; *p != '\0'; p++)
    {
      if (*p == '\n' || *p == '\r')
        {
          while (p[1] == '\n' || p[1] == '\r' || p[1] == '\t' || p[1] == ' ')
            p++;
          if (p[1] != '\0')
            g_string_append_c (out, ' ');
          continue;
        }
      g_string_append_c (out, *p);
    }

  return g_strchomp (g_string_free (out, FALSE));
}

void
_es_pg_set_error (GError         **error,
                  PGconn          *conn,
                  const PGresult  *result,
                  const char      *context)
{
  const char *primary = NULL;
  g_autofree char *reason = NULL;

  if (result != NULL)
    primary = PQresultErrorField (result, PG_DIAG_MESSAGE_PRIMARY);
  if (primary == NULL && result != NULL && *PQresultErrorMessage (result) != '\0')
    primary = PQresultErrorMessage (result);
  if (primary == NULL && conn != NULL)
    primary = PQerrorMessage (conn);
  reason = tidy_message (primary);

  g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
               /* Translators: the first %s says what failed ("Appending
                * events"), the second is PostgreSQL's (English) reason */
               _("%s: %s"), context, reason);
}

static void
ignore_notice (void       *data,
               const char *message)
{
}

static void
set_connect_error (GError     **error,
                   const char  *reason,
                   const char  *conninfo)
{
  g_autofree char *tidy = tidy_message (reason);
  g_autofree char *safe = scrub_password (tidy, conninfo);

  g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
               /* Translators: %s is libpq's or the server's (English) reason */
               _("Cannot connect to the PostgreSQL server: %s"), safe);
}

PGconn *
_es_pg_connect (const char    *conninfo,
                GCancellable  *cancellable,
                GError       **error)
{
  PQconninfoOption *options;
  PQconninfoOption *option;
  g_autoptr(GPtrArray) keywords = g_ptr_array_new ();
  g_autoptr(GPtrArray) values = g_ptr_array_new ();
  char *parse_error = NULL;
  PGconn *conn;

  g_return_val_if_fail (conninfo != NULL, NULL);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  /* Parsed here rather than by PQconnectdb() so that two settings can be
   * added: everything es-glib sends and reads is UTF-8, whatever the
   * environment says (PGCLIENTENCODING); and the server's activity view
   * names es-glib unless the string gives an application_name. */
  options = PQconninfoParse (conninfo, &parse_error);
  if (options == NULL)
    {
      set_connect_error (error, parse_error != NULL ? parse_error : "out of memory", conninfo);
      PQfreemem (parse_error);
      return NULL;
    }

  for (option = options; option->keyword != NULL; option++)
    {
      if (option->val == NULL || g_str_equal (option->keyword, "client_encoding"))
        continue;
      g_ptr_array_add (keywords, option->keyword);
      g_ptr_array_add (values, option->val);
    }
  g_ptr_array_add (keywords, (gpointer) "client_encoding");
  g_ptr_array_add (values, (gpointer) "UTF8");
  g_ptr_array_add (keywords, (gpointer) "fallback_application_name");
  g_ptr_array_add (values, (gpointer) "es-glib");
  g_ptr_array_add (keywords, NULL);
  g_ptr_array_add (values, NULL);

  conn = PQconnectdbParams ((const char * const *) keywords->pdata,
                            (const char * const *) values->pdata, FALSE);
  PQconninfoFree (options);

  if (conn != NULL && PQstatus (conn) == CONNECTION_OK)
    {
      /* Not the application's business: NOTICEs ("relation already
       * exists, skipping") that libpq would print on stderr. */
      PQsetNoticeProcessor (conn, ignore_notice, NULL);
      return conn;
    }

  set_connect_error (error, conn != NULL ? PQerrorMessage (conn) : "out of memory", conninfo);
  PQfinish (conn);
  return NULL;
}

/* ---------------------------------------------------------------------- *
 * Connections                                                             *
 * ---------------------------------------------------------------------- */

/* Prepared statements a connection keeps at most (filtered reads make
 * their SQL from the filter's shape, so their number is open-ended). */
#define STMT_CACHE_MAX 128

/* One server connection of the pool, used by one thread at a time. */
typedef struct
{
  PGconn     *conn;
  PGcancel   *cancel;       /* (owned) for PQcancel() */
  gboolean    cancel_sent;  /* a cancel request went out during this use */
  gboolean    unusable;     /* left in a state we cannot use again */
  gboolean    lost;         /* the server ended the session, or the link broke */
  GHashTable *prepared;     /* (owned) SQL text → (owned) statement name */
  guint       n_names;      /* statement names given so far */
} Connection;

static void
connection_close (gpointer data)
{
  Connection *c = data;

  if (c == NULL)
    return;

  g_clear_pointer (&c->prepared, g_hash_table_unref);
  g_clear_pointer (&c->cancel, PQfreeCancel);
  /* Sends the server a Terminate message: it ends the session at once. */
  g_clear_pointer (&c->conn, PQfinish);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Connection, connection_close)

static Connection *
connection_open (const char    *conninfo,
                 GCancellable  *cancellable,
                 GError       **error)
{
  g_autoptr(Connection) c = g_new0 (Connection, 1);

  c->conn = _es_pg_connect (conninfo, cancellable, error);
  if (c->conn == NULL)
    return NULL;

  c->cancel = PQgetCancel (c->conn);
  c->prepared = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return g_steal_pointer (&c);
}

/* Whether a connection that sat idle in the pool is still usable. A server
 * that restarted (or an administrator's pg_terminate_backend()) closed it
 * with a last message while nobody was reading: the socket is readable,
 * and reading finds the end. Costs one poll() when nothing happened. */
static gboolean
connection_is_alive (Connection *c)
{
  GPollFD fd = { PQsocket (c->conn), G_IO_IN, 0 };

  if (PQstatus (c->conn) != CONNECTION_OK || fd.fd < 0)
    return FALSE;
  if (g_poll (&fd, 1, 0) > 0 && !PQconsumeInput (c->conn))
    return FALSE;
  return PQstatus (c->conn) == CONNECTION_OK;
}

/* Whether @result's SQLSTATE is @state. */
static gboolean
result_has_state (const PGresult *result,
                  const char     *state)
{
  return result != NULL &&
         g_strcmp0 (PQresultErrorField (result, PG_DIAG_SQLSTATE), state) == 0;
}

static gboolean
result_ok (const PGresult *result)
{
  ExecStatusType status = PQresultStatus (result);

  return result != NULL && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK);
}

/* The GError of a failed statement: G_IO_ERROR_CANCELLED when our own
 * cancel request stopped it, else ES_ERROR_STORAGE "@context: reason". A
 * NULL @result: the connection failed (its message says why). */
static void
connection_set_error (Connection      *c,
                      const PGresult  *result,
                      const char      *context,
                      GError         **error)
{
  const char *state = result != NULL ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;

  /* Class 08 (connection exception) and 57P (the server shutting down,
   * "terminating connection due to administrator command"...): the
   * session is over, whether or not libpq has seen the socket close. */
  if (PQstatus (c->conn) != CONNECTION_OK ||
      (state != NULL && (g_str_has_prefix (state, "08") || g_str_has_prefix (state, "57P"))))
    c->lost = TRUE;

  if (c->cancel_sent && g_strcmp0 (state, "57014") == 0)
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                         _("Operation was cancelled"));
  else
    _es_pg_set_error (error, c->conn, result, context);
}

/* Waits until libpq can hand out the next result without blocking, reading
 * what the server sends. The socket and @cancellable are watched together:
 * when @cancellable fires, a cancel request is sent (once) and the wait goes
 * on, for the statement ends soon after, cancelled or done. FALSE when the
 * connection failed. */
static gboolean
connection_wait (Connection   *c,
                 GCancellable *cancellable)
{
  GPollFD fds[2];
  guint n_fds = 1;
  gboolean ok = TRUE;

  if (PQstatus (c->conn) != CONNECTION_OK || PQsocket (c->conn) < 0)
    return FALSE;
  if (!PQisBusy (c->conn))
    return TRUE;

  fds[0] = (GPollFD) { PQsocket (c->conn), G_IO_IN, 0 };
  if (cancellable != NULL && !c->cancel_sent && g_cancellable_make_pollfd (cancellable, &fds[1]))
    n_fds = 2;

  while (ok && PQisBusy (c->conn))
    {
      if (g_poll (fds, c->cancel_sent ? 1 : n_fds, -1) < 0)
        continue;  /* EINTR */

      if (n_fds == 2 && !c->cancel_sent && g_cancellable_is_cancelled (cancellable))
        {
          char reason[256];

          /* Blocks for a local round trip to the server; we are on a
           * worker thread. If it fails the statement simply runs on. */
          c->cancel_sent = TRUE;
          if (c->cancel != NULL)
            PQcancel (c->cancel, reason, sizeof reason);
        }

      if (fds[0].revents != 0 && !PQconsumeInput (c->conn))
        ok = FALSE;
    }

  if (n_fds == 2)
    g_cancellable_release_fd (cancellable);
  return ok && PQstatus (c->conn) == CONNECTION_OK;
}

/* The next result of the connection, or NULL: the end of a statement's
 * results, or a connection that failed (libpq then hands out one error
 * result first, at once: it does not wait on a closed socket). */
static PGresult *
connection_next_result (Connection   *c,
                        GCancellable *cancellable)
{
  if (!connection_wait (c, cancellable) && PQstatus (c->conn) == CONNECTION_OK)
    return NULL;
  return PQgetResult (c->conn);
}

/* One statement of a pipeline: SQL with $n parameters in text format
 * unless @formats says binary (bytea, arrays); results in binary format
 * when @binary is set. */
typedef struct
{
  const char         *sql;
  int                 n_params;
  const char * const *values;
  const int          *lengths;
  const int          *formats;
  gboolean            binary;
} Statement;

/* Drops the connection's prepared statements when their cache is full. */
static gboolean
connection_trim_statements (Connection    *c,
                            GCancellable  *cancellable,
                            GError       **error)
{
  PGresult *result;
  gboolean ok;

  if (g_hash_table_size (c->prepared) < STMT_CACHE_MAX)
    return TRUE;

  if (!PQsendQuery (c->conn, "DEALLOCATE ALL"))
    {
      connection_set_error (c, NULL, _("Preparing a statement"), error);
      return FALSE;
    }
  result = connection_next_result (c, cancellable);
  ok = result_ok (result);
  if (!ok)
    connection_set_error (c, result, _("Preparing a statement"), error);
  PQclear (result);
  while ((result = connection_next_result (c, cancellable)) != NULL)
    PQclear (result);

  if (ok)
    g_hash_table_remove_all (c->prepared);
  return ok;
}

/* Runs @statements in one pipeline: sent together, then one wait for all
 * their results (one round trip to the server, however many statements).
 * Each statement is prepared once per connection, the first time it runs,
 * in the same pipeline.
 *
 * On success @results holds one result per statement (the caller clears
 * them). On failure the error says why and *@out_failed (optional) is the
 * index of the statement that failed, with its result left in @results for
 * the caller to look at (a unique violation, say); the statements after it
 * were skipped by the server. *@out_failed is -1 when the connection failed
 * before a statement's result came. Nothing is sent if @cancellable is
 * already cancelled. */
static gboolean
connection_run (Connection       *c,
                const Statement  *statements,
                guint             n_statements,
                PGresult        **results,
                int              *out_failed,
                GCancellable     *cancellable,
                const char       *context,
                GError          **error)
{
  g_autofree char **names = g_new0 (char *, n_statements);
  g_autofree gboolean *preparing = g_new0 (gboolean, n_statements);
  PGresult *result;
  int failed = -1;
  gboolean sent = TRUE;
  gboolean ok = TRUE;
  guint i;

  memset (results, 0, n_statements * sizeof (PGresult *));
  if (out_failed != NULL)
    *out_failed = -1;

  if (g_cancellable_set_error_if_cancelled (cancellable, error) ||
      !connection_trim_statements (c, cancellable, error))
    return FALSE;

  if (!PQenterPipelineMode (c->conn))
    {
      connection_set_error (c, NULL, context, error);
      return FALSE;
    }

  for (i = 0; i < n_statements && sent; i++)
    {
      const Statement *s = &statements[i];

      names[i] = g_hash_table_lookup (c->prepared, s->sql);
      if (names[i] == NULL)
        {
          names[i] = g_strdup_printf ("es_%u", ++c->n_names);
          g_hash_table_insert (c->prepared, g_strdup (s->sql), names[i]);
          preparing[i] = TRUE;
          sent = PQsendPrepare (c->conn, names[i], s->sql, s->n_params, NULL);
        }
      sent = sent && PQsendQueryPrepared (c->conn, names[i], s->n_params, s->values,
                                          s->lengths, s->formats, s->binary ? 1 : 0);
    }
  sent = sent && PQpipelineSync (c->conn);

  if (!sent)
    {
      connection_set_error (c, NULL, context, error);
      ok = FALSE;
    }

  /* The results come in order: for each statement, its preparation's (the
   * first time) then its own, each followed by a NULL; then the sync's. */
  for (i = 0; ok && i < n_statements; i++)
    {
      if (preparing[i])
        {
          result = connection_next_result (c, cancellable);
          if (result == NULL || PQresultStatus (result) != PGRES_COMMAND_OK)
            {
              /* Not prepared after all: prepare it again next time. */
              g_hash_table_remove (c->prepared, statements[i].sql);
              preparing[i] = FALSE;
            }
          if (result != NULL && PQresultStatus (result) == PGRES_FATAL_ERROR && failed < 0)
            {
              failed = i;
              connection_set_error (c, result, context, error);
            }
          PQclear (result);
          if (result != NULL)
            PQclear (connection_next_result (c, cancellable));
        }

      result = connection_next_result (c, cancellable);
      if (result == NULL)
        {
          /* The connection failed. */
          if (failed < 0)
            connection_set_error (c, NULL, context, error);
          ok = FALSE;
          break;
        }
      results[i] = result;
      if (!result_ok (result) && failed < 0)
        {
          failed = i;
          connection_set_error (c, result, context, error);
        }
      PQclear (connection_next_result (c, cancellable));
    }

  /* The sync point ends the pipeline. */
  if (ok)
    {
      result = connection_next_result (c, cancellable);
      if (result == NULL || PQresultStatus (result) != PGRES_PIPELINE_SYNC)
        {
          if (failed < 0)
            connection_set_error (c, result, context, error);
          ok = FALSE;
        }
      PQclear (result);
    }

  if (PQstatus (c->conn) == CONNECTION_OK && !PQexitPipelineMode (c->conn))
    {
      /* Results we could not read: the connection is unusable. */
      if (ok && failed < 0)
        connection_set_error (c, NULL, context, error);
      ok = FALSE;
      c->unusable = TRUE;
    }

  if (failed >= 0 || !ok)
    {
      /* A statement whose preparation never completed is not known to be
       * prepared. */
      for (i = 0; i < n_statements; i++)
        if (preparing[i] && (!ok || (int) i >= failed))
          g_hash_table_remove (c->prepared, statements[i].sql);

      if (out_failed != NULL)
        *out_failed = failed;
      return FALSE;
    }

  return TRUE;
}

/* Runs one statement; on success returns its result. */
static PGresult *
connection_run_one (Connection       *c,
                    const Statement  *statement,
                    GCancellable     *cancellable,
                    const char       *context,
                    GError          **error)
{
  PGresult *result = NULL;

  if (!connection_run (c, statement, 1, &result, NULL, cancellable, context, error))
    {
      PQclear (result);
      return NULL;
    }
  return result;
}

/* Runs SQL in the simple query protocol: several statements in one
 * string, no parameters (the schema's DDL). */
static gboolean
connection_run_script (Connection    *c,
                       const char    *sql,
                       GCancellable  *cancellable,
                       const char    *context,
                       GError       **error)
{
  PGresult *result;
  gboolean ok = TRUE;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  if (!PQsendQuery (c->conn, sql))
    {
      connection_set_error (c, NULL, context, error);
      return FALSE;
    }

  while ((result = connection_next_result (c, cancellable)) != NULL)
    {
      if (ok && !result_ok (result))
        {
          connection_set_error (c, result, context, error);
          ok = FALSE;
        }
      PQclear (result);
    }

  if (ok && PQstatus (c->conn) != CONNECTION_OK)
    {
      connection_set_error (c, NULL, context, error);
      ok = FALSE;
    }
  return ok;
}

/* Ends a transaction left open by a failure; the connection is dropped
 * anyway if this fails. */
static void
connection_rollback (Connection *c)
{
  PGresult *result;

  if (c->lost || PQstatus (c->conn) != CONNECTION_OK ||
      PQtransactionStatus (c->conn) == PQTRANS_IDLE)
    return;

  result = PQexec (c->conn, "ROLLBACK");
  PQclear (result);
}

/* ---------------------------------------------------------------------- *
 * Values                                                                  *
 * ---------------------------------------------------------------------- */

/* Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01 UTC: a
 * timestamptz in binary format counts from the latter. */
#define PG_EPOCH_USEC G_GINT64_CONSTANT (946684800000000)

static inline gint64
get_int8 (const PGresult *result,
          int             row,
          int             column)
{
  guint64 value;

  memcpy (&value, PQgetvalue (result, row, column), sizeof value);
  return (gint64) GUINT64_FROM_BE (value);
}

static inline gint64
get_timestamp_usec (const PGresult *result,
                    int             row,
                    int             column)
{
  return get_int8 (result, row, column) + PG_EPOCH_USEC;
}

/* A GDateTime from microseconds since the Unix epoch, UTC; clamped to what
 * GDateTime can hold. */
static GDateTime *
date_time_new_from_usec (gint64 usec)
{
  g_autoptr(GDateTime) seconds = NULL;
  const gint64 min_usec = G_GINT64_CONSTANT (-62135596800) * G_USEC_PER_SEC;
  const gint64 max_usec = G_GINT64_CONSTANT (253402300799) * G_USEC_PER_SEC;
  gint64 rest;

  usec = CLAMP (usec, min_usec, max_usec);
  rest = usec % G_USEC_PER_SEC;
  if (rest < 0)
    rest += G_USEC_PER_SEC;

  seconds = g_date_time_new_from_unix_utc ((usec - rest) / G_USEC_PER_SEC);
  if (seconds == NULL || rest == 0)
    return g_steal_pointer (&seconds);
  return g_date_time_add (seconds, rest);
}

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
 * es_pg_storage_append()): ids run 1, 2, 3... without holes, and rows
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

/* The same locks for a group of appends (see writer_run_group()): one per
 * distinct key of the text[] $1, taken in ascending lock-key order. Every
 * group of every process takes its locks in this one order, so two groups
 * can never each hold a lock the other waits for. */
/* Which of the idempotency keys $2 stream $1 holds (see group_operation()). */
#define EXISTING_KEYS_SQL \
  "SELECT idempotency_key FROM {S}.events" \
  " WHERE stream_id = $1::text AND idempotency_key = ANY ($2::text[])"

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

#define EVENT_COLUMNS \
  "sequence_id, version, idempotency_key, event_type, recorded_at, data, metadata"

#define READ_STREAM_SELECT \
  "SELECT " EVENT_COLUMNS " FROM {S}.events WHERE stream_id = $1::text AND version > $2::int8"
#define READ_STREAM_ORDER " ORDER BY version LIMIT $%u::int8"
#define READ_ALL_SELECT \
  "SELECT " EVENT_COLUMNS ", stream_id FROM {S}.events WHERE sequence_id > $1::int8"
#define READ_ALL_ORDER " ORDER BY sequence_id LIMIT $%u::int8"

/* The fixed statements, made for the storage's schema at construction. */
typedef enum
{
  SQL_INSPECT,
  SQL_LOCK,
  SQL_LOCK_MANY,
  SQL_EXISTING_KEYS,
  SQL_READ_VERSION_TABLE,
  SQL_WRITE_VERSION_TABLE,
  SQL_APPEND,
  SQL_READ_STREAM,
  SQL_READ_ALL,
  SQL_STREAM_VERSION,
  SQL_LAST_SEQUENCE_ID,
  SQL_STREAM_METRICS,
  SQL_ALL_METRICS,
  SQL_SAVE_SNAPSHOT,
  SQL_LOAD_SNAPSHOT,
  N_SQL
} SqlId;

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
 * EsPgStorage                                                             *
 * ---------------------------------------------------------------------- */

struct _EsPgStorage
{
  GObject    parent_instance;

  /* Construct-only properties. */
  char      *conninfo;       /* (owned) (nullable) as given */
  char      *schema;         /* (owned) */
  guint      pool_size;

  /* Set at construction or by init, constant afterwards. */
  gboolean   init_done;
  gboolean   init_ok;
  char      *quoted_schema;  /* (owned) "name", for SQL */
  char      *channel;        /* (owned) <schema>_events */
  char      *sql[N_SQL];     /* (owned) sql_templates for this schema */

  /* The pool: idle connections wait in @idle; @n_open counts them, the
   * borrowed ones and the ones being opened, up to @pool_size. */
  GMutex     pool_lock;
  GCond      pool_cond;
  GPtrArray *idle;           /* (owned) (element-type Connection) guarded by pool_lock */
  guint      n_open;         /* guarded by pool_lock */
  gboolean   closed;         /* guarded by pool_lock; TRUE until init succeeds */

  /* Asynchronous appends: the group-commit writer (see "Group commit"). */
  struct _EsPgWriter *writer;         /* (owned) (nullable) set by init */
  GThread            *writer_thread;  /* (owned) (nullable) guarded by pool_lock */
};

enum
{
  PROP_0,
  PROP_CONNINFO,
  PROP_SCHEMA,
  PROP_POOL_SIZE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void initable_iface_init       (GInitableIface           *iface);
static void storage_handle_iface_init (EsStorageHandleInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsPgStorage, es_pg_storage, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               G_IMPLEMENT_INTERFACE (ES_TYPE_STORAGE_HANDLE,
                                                      storage_handle_iface_init))

static void
set_closed_error (GError **error)
{
  g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
}

/* @template with {S} replaced by the quoted schema. */
static char *
schema_sql (EsPgStorage *self,
            const char  *template)
{
  GString *sql = g_string_new (template);

  g_string_replace (sql, "{S}", self->quoted_schema, 0);
  return g_string_free (sql, FALSE);
}

/* ---------------------------------------------------------------------- *
 * The pool                                                                *
 * ---------------------------------------------------------------------- */

static void
pool_wake (GCancellable *cancellable,
           gpointer      data)
{
  EsPgStorage *self = data;

  g_mutex_lock (&self->pool_lock);
  g_cond_broadcast (&self->pool_cond);
  g_mutex_unlock (&self->pool_lock);
}

/* Borrows a connection: an idle one that is still alive, else a new one
 * while fewer than pool-size are open, else waits for one to come back.
 * Fails with ES_ERROR_CLOSED once the storage is closed, with
 * G_IO_ERROR_CANCELLED if @cancellable fires while it waits, and with
 * ES_ERROR_STORAGE if a new connection cannot be opened. */
static Connection *
pool_acquire (EsPgStorage   *self,
              GCancellable  *cancellable,
              GError       **error)
{
  g_autoptr(GPtrArray) dead = g_ptr_array_new_with_free_func (connection_close);
  Connection *c = NULL;
  gboolean open_new = FALSE;
  gulong handler = 0;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  g_mutex_lock (&self->pool_lock);
  for (;;)
    {
      if (self->closed)
        {
          set_closed_error (error);
          break;
        }

      /* Last in, first out: the ones that go unused cost nothing. */
      if (self->idle->len > 0)
        {
          c = g_ptr_array_steal_index_fast (self->idle, self->idle->len - 1);
          if (connection_is_alive (c))
            break;
          /* Closed by the server while it sat here (a restart): replace it. */
          g_ptr_array_add (dead, g_steal_pointer (&c));
          self->n_open--;
          continue;
        }

      if (self->n_open < self->pool_size)
        {
          self->n_open++;
          open_new = TRUE;
          break;
        }

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;

      /* About to wait: have a cancellation wake us. Its handler takes
       * pool_lock, so connect (it may run at once) without holding it. */
      if (cancellable != NULL && handler == 0)
        {
          g_mutex_unlock (&self->pool_lock);
          handler = g_cancellable_connect (cancellable, G_CALLBACK (pool_wake), self, NULL);
          g_mutex_lock (&self->pool_lock);
          continue;
        }

      g_cond_wait (&self->pool_cond, &self->pool_lock);
    }
  g_mutex_unlock (&self->pool_lock);

  /* Outside the lock: disconnecting waits for a running handler. */
  if (handler != 0)
    g_cancellable_disconnect (cancellable, handler);

  if (open_new)
    {
      c = connection_open (self->conninfo != NULL ? self->conninfo : "", cancellable, error);
      if (c == NULL)
        {
          g_mutex_lock (&self->pool_lock);
          self->n_open--;
          g_cond_signal (&self->pool_cond);
          g_mutex_unlock (&self->pool_lock);
        }
    }

  return c;
}

/* Gives a borrowed connection back; closes it instead when it failed, was
 * left inside a transaction, had a cancel request sent to it (which could
 * reach a later statement), or when the storage was closed meanwhile. */
static void
pool_release (EsPgStorage *self,
              Connection  *c)
{
  gboolean drop = PQstatus (c->conn) != CONNECTION_OK || c->lost || c->unusable || c->cancel_sent ||
                  PQtransactionStatus (c->conn) != PQTRANS_IDLE;

  g_mutex_lock (&self->pool_lock);
  if (self->closed)
    drop = TRUE;
  if (drop)
    self->n_open--;
  else
    g_ptr_array_add (self->idle, c);
  g_cond_signal (&self->pool_cond);
  g_mutex_unlock (&self->pool_lock);

  if (drop)
    connection_close (c);
}

/* An operation on one borrowed connection. It sets *@retry when it failed
 * before anything of it could have taken effect (a read, or a write whose
 * transaction was not yet committing): if the connection turns out broken,
 * the operation then runs again, once, on another connection. */
typedef gboolean (*Operation) (EsPgStorage   *self,
                               Connection    *c,
                               gpointer       data,
                               gboolean      *retry,
                               GCancellable  *cancellable,
                               GError       **error);

/* Runs @operation on a pooled connection. After a server restart every
 * pooled connection is broken: pool_acquire() replaces those it can tell
 * are (the server's goodbye is waiting on their socket), and this retry
 * covers the others, so the first operation after a restart works. */
static gboolean
run_operation (EsPgStorage   *self,
               Operation      operation,
               gpointer       data,
               GCancellable  *cancellable,
               GError       **error)
{
  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GError) local_error = NULL;
      gboolean retry = FALSE;
      gboolean lost;
      gboolean ok;
      Connection *c;

      c = pool_acquire (self, cancellable, error);
      if (c == NULL)
        return FALSE;

      c->cancel_sent = FALSE;
      ok = operation (self, c, data, &retry, cancellable, &local_error);
      lost = c->lost || PQstatus (c->conn) != CONNECTION_OK;
      pool_release (self, c);

      if (ok)
        return TRUE;
      if (!(lost && retry && attempt == 0))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }
}

/* ---------------------------------------------------------------------- *
 * Opening: the schema                                                     *
 * ---------------------------------------------------------------------- */

static gboolean
schema_name_is_valid (const char *name)
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
inspect_schema (EsPgStorage   *self,
                Connection    *c,
                SchemaState   *state,
                GCancellable  *cancellable,
                GError       **error)
{
  const char *context = _("Reading the database schema");
  const char *values[] = { self->schema };
  Statement inspect = { self->sql[SQL_INSPECT], 1, values, NULL, NULL, FALSE };
  Statement version = { self->sql[SQL_READ_VERSION_TABLE], 0, NULL, NULL, NULL, FALSE };
  PGresult *result;

  result = connection_run_one (c, &inspect, cancellable, context, error);
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
  result = connection_run_one (c, &version, cancellable, context, error);
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
static gboolean
prepare_schema (EsPgStorage   *self,
                Connection    *c,
                GCancellable  *cancellable,
                GError       **error)
{
  const char *context = _("Creating the database schema");
  g_autofree char *lock_key = g_strconcat ("es-glib schema ", self->schema, NULL);
  g_autofree char *version_text = g_strdup_printf ("%" G_GINT64_FORMAT, SCHEMA_VERSION);
  const char *lock_values[] = { lock_key };
  const char *version_values[] = { version_text };
  const Statement begin[] = {
    { "BEGIN", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, FALSE },
  };
  Statement set_version = { self->sql[SQL_WRITE_VERSION_TABLE], 1, version_values, NULL, NULL,
                            FALSE };
  Statement commit = { "COMMIT", 0, NULL, NULL, NULL, FALSE };
  PGresult *results[G_N_ELEMENTS (begin)];
  SchemaState state = { 0, };
  PGresult *result;
  gint64 version;

  if (!inspect_schema (self, c, &state, cancellable, error) ||
      !check_schema (self, &state, error))
    return FALSE;
  if (state.version == SCHEMA_VERSION)
    return TRUE;

  if (!connection_run (c, begin, G_N_ELEMENTS (begin), results, NULL, cancellable, context,
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

      if (!connection_run_script (c, create, cancellable, context, error))
        goto fail;
    }

  for (version = state.version; version < SCHEMA_VERSION; version++)
    {
      g_autofree char *sql = schema_sql (self, migrations[version]);

      if (!connection_run_script (c, sql, cancellable, context, error))
        goto fail;
    }

  if (state.version < SCHEMA_VERSION)
    {
      result = connection_run_one (c, &set_version, cancellable, context, error);
      if (result == NULL)
        goto fail;
      PQclear (result);
    }

  result = connection_run_one (c, &commit, cancellable, context, error);
  if (result == NULL)
    goto fail;
  PQclear (result);
  return TRUE;

fail:
  connection_rollback (c);
  return FALSE;
}

/* The group-commit writer's queue (see "Group commit" below). An atomic rc
 * box shared by the storage and the writer thread. */
typedef struct _EsPgWriter
{
  GAsyncQueue *queue;     /* (owned) Job *, then writer_stop_mark last */
  gboolean     stopping;  /* guarded by the queue's lock: no job accepted */
} EsPgWriter;
static gpointer writer_thread (gpointer    data);
static void     writer_unref  (EsPgWriter *writer);

static gboolean
es_pg_storage_initable_init (GInitable     *initable,
                             GCancellable  *cancellable,
                             GError       **error)
{
  EsPgStorage *self = ES_PG_STORAGE (initable);
  g_autoptr(Connection) c = NULL;
  g_autoptr(GError) thread_error = NULL;
  EsPgWriter *writer;
  GThread *thread;

  if (self->init_done)
    {
      if (!self->init_ok)
        g_set_error_literal (error, ES_ERROR, ES_ERROR_STORAGE,
                             _("The storage failed to open earlier"));
      return self->init_ok;
    }
  self->init_done = TRUE;

  if (!schema_name_is_valid (self->schema))
    {
      g_autofree char *shown = g_utf8_make_valid (self->schema, -1);

      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is the schema name given; keep the
                    * rule's characters as they are */
                   _("Invalid schema name '%s': use 1 to 48 characters among a-z, 0-9 "
                     "and _, not starting with a digit"), shown);
      return FALSE;
    }

  c = connection_open (self->conninfo != NULL ? self->conninfo : "", cancellable, error);
  if (c == NULL || !prepare_schema (self, c, cancellable, error))
    return FALSE;

  /* The group-commit writer of asynchronous appends; its thread holds a
   * ref on the queue. */
  writer = g_atomic_rc_box_new0 (EsPgWriter);
  writer->queue = g_async_queue_new ();
  thread = g_thread_try_new ("es-pg-writer", writer_thread,
                             g_atomic_rc_box_acquire (writer), &thread_error);
  if (thread == NULL)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is GLib's (English) reason */
                   _("Cannot start the writer thread: %s"), thread_error->message);
      writer_unref (writer);
      writer_unref (writer);
      return FALSE;
    }

  /* The first connection of the pool. */
  g_mutex_lock (&self->pool_lock);
  g_ptr_array_add (self->idle, g_steal_pointer (&c));
  self->n_open = 1;
  self->closed = FALSE;
  self->writer = writer;
  self->writer_thread = thread;
  g_mutex_unlock (&self->pool_lock);

  self->init_ok = TRUE;
  return TRUE;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = es_pg_storage_initable_init;
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
}

/* One append: two round trips to the server.
 *
 * 1. BEGIN, and a transaction-scoped advisory lock on the stream: appends
 *    to one stream, from any connection of any process, take turns from
 *    here to their COMMIT, so the version each one reads next is exact.
 *
 * 2. One statement (APPEND_SQL) that reads the stream's version (in a
 *    snapshot taken after the lock, so it sees the previous append),
 *    checks the expected version (accepting any when every event's
 *    idempotency key is already stored: a retry of a stored batch, which
 *    then writes nothing), leaves out the events whose idempotency
 *    key the stream already holds, takes as many sequence ids from the
 *    global_position row as there are events left (UPDATE ... RETURNING),
 *    inserts them at the next versions and NOTIFYs the channel with the
 *    last sequence id; then COMMIT.
 *
 * No skipped events in @all: the UPDATE of global_position locks its one
 * row until the transaction ends, so an append takes its sequence ids only
 * once the previous one has committed (or rolled back, giving its ids
 * back). Appends therefore commit in sequence-id order, and whoever sees
 * id N (a reader, a watch after a NOTIFY) can never later find a committed
 * id below N. The price is that the insert-and-commit part of appends is
 * serial across the whole database; the rest (connecting, sending the
 * batch, the lock on the stream, the version and idempotency lookups) is
 * not, and one append of a batch of events writes them all at once.
 *
 * The unique constraints stay the last line of defence: a violation (a
 * writer that does not take the lock) is ES_ERROR_WRONG_EXPECTED_VERSION.
 *
 * A connection lost during the first round trip changed nothing: the
 * caller retries on a new one. Lost after the second was sent, the COMMIT
 * may or may not have happened: ES_ERROR_STORAGE, and the transaction
 * guarantees all the events or none. */
static gboolean
append_operation (EsPgStorage   *self,
                  Connection    *c,
                  gpointer       data,
                  gboolean      *retry,
                  GCancellable  *cancellable,
                  GError       **error)
{
  AppendOp *op = data;
  g_autofree char *context = NULL;
  const char *lock_values[] = { op->lock_key };
  const Statement begin[] = {
    { "BEGIN", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, FALSE },
  };
  const char *values[] = {
    op->stream_id, op->expected_text,
    (const char *) op->keys.bytes->data, (const char *) op->types.bytes->data,
    (const char *) op->data.bytes->data, (const char *) op->metadata.bytes->data,
    self->channel,
  };
  const int lengths[] = {
    0, 0,
    op->keys.bytes->len, op->types.bytes->len, op->data.bytes->len, op->metadata.bytes->len,
    0,
  };
  const int formats[] = { 0, 0, 1, 1, 1, 1, 0 };
  const Statement insert[] = {
    { self->sql[SQL_APPEND], G_N_ELEMENTS (values), values, lengths, formats, FALSE },
    { "COMMIT", 0, NULL, NULL, NULL, FALSE },
  };
  PGresult *results[2] = { NULL, NULL };
  gboolean accepted;
  gint64 version, n_inserted;
  int failed = -1;
  guint i;

  /* Translators: %s is a stream id */
  context = g_strdup_printf (_("Appending events to stream '%s'"), op->stream_id);

  *retry = TRUE;
  if (!connection_run (c, begin, G_N_ELEMENTS (begin), results, NULL, cancellable, context,
                       error))
    {
      for (i = 0; i < G_N_ELEMENTS (begin); i++)
        PQclear (results[i]);
      connection_rollback (c);
      return FALSE;
    }
  for (i = 0; i < G_N_ELEMENTS (begin); i++)
    PQclear (results[i]);
  *retry = FALSE;

  if (!connection_run (c, insert, G_N_ELEMENTS (insert), results, &failed, cancellable,
                       context, error))
    {
      if (failed == 0 && result_has_state (results[0], "23505"))
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
      connection_rollback (c);
      return FALSE;
    }

  version = g_ascii_strtoll (PQgetvalue (results[0], 0, 0), NULL, 10);
  accepted = g_str_equal (PQgetvalue (results[0], 0, 1), "t");
  n_inserted = g_ascii_strtoll (PQgetvalue (results[0], 0, 2), NULL, 10);
  for (i = 0; i < G_N_ELEMENTS (insert); i++)
    PQclear (results[i]);

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

  binary_array_finish (&op->keys);
  binary_array_finish (&op->types);
  binary_array_finish (&op->data);
  binary_array_finish (&op->metadata);
}

static gboolean
es_pg_storage_append (EsStorageHandle          *handle,
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

  ok = run_operation (self, append_operation, &op, cancellable, &local_error);
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

/* Why: appends to one schema commit one after another (the global_position
 * row stays locked until COMMIT, see es_pg_storage_append()), so appends
 * in flight at once, each its own transaction on its own connection, only
 * queue on that row and on the stream locks, and each pays a commit (a
 * WAL flush) of its own: 64 in flight were slower than one after another.
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

#define WRITER_MAX_GROUP 256

/* How long the writer waits for more appends to join a group (see
 * writer_thread()): between two arrivals, and in all. */
#define LINGER_USEC     100
#define LINGER_MAX_USEC 1000

typedef struct
{
  GTask        *task;          /* (owned) */
  GCancellable *cancellable;   /* (unowned) (nullable) the task's */
  char         *stream_id;     /* (owned) */
  AppendOp      op;
  GPtrArray    *keys;          /* (owned) (element-type utf8) the key of each event
                                * of @op, NULL for none */
  gint64        out_version;
  GError       *error;         /* (owned) (nullable) */
} Job;

static void
job_free (Job *job)
{
  append_op_clear (&job->op);
  g_clear_pointer (&job->keys, g_ptr_array_unref);
  g_free (job->stream_id);
  g_clear_error (&job->error);
  g_clear_object (&job->task);
  g_free (job);
}

/* The writer's queue. An atomic rc box shared by the storage and the
 * writer thread, because the storage can be finalized on the writer thread
 * itself (a GTask holds a ref on its source object, and the writer may drop
 * the last task): the storage then cannot join the thread it runs on, so it
 * only tells the thread to stop, and the thread drops the last ref. */
/* (struct _EsPgWriter is defined above es_pg_storage_initable_init().) */

static const char writer_stop_mark;
#define WRITER_STOP ((gpointer) &writer_stop_mark)

static void
writer_clear (gpointer data)
{
  EsPgWriter *writer = data;

  g_async_queue_unref (writer->queue);
}

static void
writer_unref (EsPgWriter *writer)
{
  g_atomic_rc_box_release_full (writer, writer_clear);
}

/* Queues @job unless the writer is stopping: the check and the push are
 * under the queue's lock, as is the push of the stop mark, so no job can
 * land behind the stop mark. */
static gboolean
writer_submit (EsPgWriter *writer,
               Job        *job)
{
  gboolean accepted;

  g_async_queue_lock (writer->queue);
  accepted = !writer->stopping;
  if (accepted)
    g_async_queue_push_unlocked (writer->queue, job);
  g_async_queue_unlock (writer->queue);
  return accepted;
}

static void
writer_stop (EsPgWriter *writer)
{
  g_async_queue_lock (writer->queue);
  if (!writer->stopping)
    {
      writer->stopping = TRUE;
      g_async_queue_push_unlocked (writer->queue, WRITER_STOP);
    }
  g_async_queue_unlock (writer->queue);
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

/* One group as one transaction on @c (see above); an Operation for
 * run_operation(). Sets each job's version or its wrong-version error;
 * FALSE with @error when the group as a whole failed.
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
group_operation (EsPgStorage   *self,
                 Connection    *c,
                 gpointer       data,
                 gboolean      *retry,
                 GCancellable  *cancellable,
                 GError       **error)
{
  Group *group = data;
  guint n = group->n_jobs;
  g_autoptr(GArray) runs = NULL;
  /* plan_cache_mode: PostgreSQL 12 and later, see below. */
  guint first = PQserverVersion (c->conn) >= 120000 ? 3 : 2;
  guint n_statements;
  g_autofree char *context = job_context (group->jobs[0]);
  g_autofree Statement *statements = NULL;
  g_autofree PGresult **results = NULL;
  static const int formats[] = { 0, 0, 1, 1, 1, 1, 0 };
  static const int binary_formats[] = { 0, 1 };
  static const int lock_formats[] = { 1 };
  const char *lock_values[1];
  int lock_lengths[1];
  Statement commit = { "COMMIT", 0, NULL, NULL, NULL, FALSE };
  BinaryArray lock_keys;
  PGresult *result;
  int failed = -1;
  gboolean ok;
  guint i, r, s;

  group->rerun_singly = FALSE;
  for (i = 0; i < n; i++)
    {
      g_clear_error (&group->jobs[i]->error);
      group->jobs[i]->out_version = -1;
    }

  runs = group_make_runs (group);
  n_statements = first;
  for (r = 0; r < runs->len; r++)
    {
      Run *run = &g_array_index (runs, Run, r);

      n_statements += (run->n_jobs > 1 && run->has_keys) ? 2 : 1;
    }
  statements = g_new0 (Statement, n_statements);
  results = g_new0 (PGresult *, n_statements);

  binary_array_init (&lock_keys, TEXT_OID, 0);
  for (i = 0; i < n; i++)
    binary_array_add (&lock_keys, group->jobs[i]->op.lock_key, -1);
  binary_array_finish (&lock_keys);
  lock_values[0] = (const char *) lock_keys.bytes->data;
  lock_lengths[0] = lock_keys.bytes->len;

  statements[0] = (Statement) { "BEGIN", 0, NULL, NULL, NULL, FALSE };
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
    statements[1] = (Statement) { "SET LOCAL plan_cache_mode = force_custom_plan", 0, NULL,
                                  NULL, NULL, FALSE };
  statements[first - 1] = (Statement) { self->sql[SQL_LOCK_MANY], 1, lock_values, lock_lengths,
                                        lock_formats, FALSE };

  s = first;
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
              statements[s++] = (Statement) { self->sql[SQL_EXISTING_KEYS], 2, run->key_values,
                                              run->key_lengths, binary_formats, FALSE };
            }
        }

      run->values[0] = op->stream_id;
      run->values[1] = op->expected_text;
      run->values[6] = self->channel;
      run->statement = s;
      statements[s++] = (Statement) { self->sql[SQL_APPEND], 7, run->values, run->lengths,
                                      formats, FALSE };
    }
  g_assert (s == n_statements);

  /* Round trip 1: nothing is committed yet, a lost connection may retry. */
  *retry = TRUE;
  ok = connection_run (c, statements, n_statements, results, &failed, cancellable, context,
                       error);
  binary_array_clear (&lock_keys);

  if (!ok)
    {
      if (failed >= (int) first && !c->lost)
        {
          if (n > 1 && !(c->cancel_sent && result_has_state (results[failed], "57014")))
            group->rerun_singly = TRUE;
          else if (result_has_state (results[failed], "23505"))
            {
              g_clear_error (error);
              g_set_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
                           /* Translators: %s is a stream id */
                           _("Appending events to stream '%s' failed: another write took the "
                             "same stream version"), group->jobs[0]->stream_id);
            }
        }
      else if (failed == (int) first - 1 && n > 1 && !c->lost &&
               result_has_state (results[failed], "40P01"))
        group->rerun_singly = TRUE;

      for (i = 0; i < n_statements; i++)
        PQclear (results[i]);
      for (r = 0; r < runs->len; r++)
        run_clear (&g_array_index (runs, Run, r));
      connection_rollback (c);
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

      if (run->n_jobs == 1)
        {
          Job *job = group->jobs[run->first_job];

          /* Accepted: the new version. Not: nothing was written for it,
           * and it reports the version found with the conflict. */
          job->out_version = accepted ? version + n_inserted : version;
          if (!accepted)
            g_set_error (&job->error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION,
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
          job->out_version = version + counted;
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
      connection_rollback (c);
      return FALSE;
    }

  /* Round trip 2: once the COMMIT is sent, its outcome may be unknown. */
  *retry = FALSE;
  result = connection_run_one (c, &commit, cancellable, context, error);
  if (result == NULL)
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
      connection_rollback (c);
      return FALSE;
    }
  PQclear (result);
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

  g_clear_error (&job->error);
  job->out_version = -1;  /* not a version this job found */
  if (group_error->domain == ES_ERROR && g_str_has_prefix (group_error->message, group_context))
    job->error = g_error_new (ES_ERROR, group_error->code, "%s%s", context,
                              group_error->message + strlen (group_context));
  else
    job->error = g_error_copy (group_error);
}

/* Runs a group and completes its jobs' tasks. The storage is the tasks'
 * source object: alive until the last task is released, which this does
 * last (it may finalize the storage, here on the writer thread). */
static void
writer_run_group (Job   **jobs,
                  guint   n_jobs)
{
  EsPgStorage *self = ES_PG_STORAGE (g_task_get_source_object (jobs[0]->task));
  g_autofree Job **live = g_new (Job *, n_jobs);
  guint n_live = 0;
  guint i;

  /* Cancelled before the writer got to it: not written at all. */
  for (i = 0; i < n_jobs; i++)
    if (!g_cancellable_set_error_if_cancelled (jobs[i]->cancellable, &jobs[i]->error))
      live[n_live++] = jobs[i];

  if (n_live > 0)
    {
      g_autoptr(GError) group_error = NULL;
      g_autofree char *group_context = job_context (live[0]);
      Group group = { live, n_live, FALSE };

      /* One job alone can be cancelled while it runs; several share the
       * transaction, and none can stop it for the others. */
      if (!run_operation (self, group_operation, &group,
                          n_live == 1 ? live[0]->cancellable : NULL, &group_error))
        {
          if (group.rerun_singly)
            {
              for (i = 0; i < n_live; i++)
                {
                  g_autoptr(GError) job_error = NULL;
                  Group one = { &live[i], 1, FALSE };

                  if (!run_operation (self, group_operation, &one, live[i]->cancellable,
                                      &job_error))
                    {
                      g_clear_error (&live[i]->error);
                      live[i]->error = g_steal_pointer (&job_error);
                    }
                }
            }
          else
            {
              for (i = 0; i < n_live; i++)
                job_set_group_error (live[i], group_error, group_context);
            }
        }
    }

  for (i = 0; i < n_jobs; i++)
    {
      Job *job = jobs[i];
      GTask *task = g_steal_pointer (&job->task);

      if (job->error != NULL)
        _es_append_task_return_error (task, g_steal_pointer (&job->error), job->out_version);
      else
        _es_task_return_int64 (task, job->out_version);
      job_free (job);
      /* Last: this may drop the last ref on the storage. */
      g_object_unref (task);
    }
}

/* The writer thread: pops one job, takes whatever else is queued (up to
 * WRITER_MAX_GROUP), and runs them as one group, until the stop mark. It
 * owns a ref on @data. */
static gpointer
writer_thread (gpointer data)
{
  EsPgWriter *writer = data;
  Job *group[WRITER_MAX_GROUP];
  guint last_group_size = 0;
  gboolean stop = FALSE;

  while (!stop)
    {
      gpointer item = g_async_queue_pop (writer->queue);
      guint n_jobs = 0;

      if (item == WRITER_STOP)
        break;

      group[n_jobs++] = item;
      while (n_jobs < WRITER_MAX_GROUP && (item = g_async_queue_try_pop (writer->queue)) != NULL)
        {
          if (item == WRITER_STOP)
            {
              stop = TRUE;
              break;
            }
          group[n_jobs++] = item;
        }

      /* Appends came in groups last time: their callers are likely
       * resubmitting as the last group's completions reach them, one after
       * another. Wait for them while they keep coming (LINGER_USEC at most
       * between two, LINGER_MAX_USEC in all), so that they share one commit
       * instead of trickling into many small ones. A lone writer (groups of
       * one) never waits. */
      if (!stop && n_jobs < last_group_size)
        {
          gint64 deadline = g_get_monotonic_time () + LINGER_MAX_USEC;

          while (n_jobs < MIN (last_group_size, WRITER_MAX_GROUP) &&
                 g_get_monotonic_time () < deadline &&
                 (item = g_async_queue_timeout_pop (writer->queue, LINGER_USEC)) != NULL)
            {
              if (item == WRITER_STOP)
                {
                  stop = TRUE;
                  break;
                }
              group[n_jobs++] = item;
            }
        }
      last_group_size = n_jobs;

      writer_run_group (group, n_jobs);
    }

  writer_unref (writer);
  return NULL;
}

static void
es_pg_storage_append_async (EsStorageHandle          *handle,
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
  g_task_set_source_tag (task, es_pg_storage_append_async);
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
  job->cancellable = g_task_get_cancellable (task);
  job->task = g_object_ref (task);

  if (!writer_submit (self->writer, job))
    {
      job_free (job);
      set_closed_error (&error);
      g_task_return_error (task, g_steal_pointer (&error));
    }
}

static gboolean
es_pg_storage_append_finish (EsStorageHandle  *handle,
                             GAsyncResult     *result,
                             gint64           *out_version,
                             GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, handle), FALSE);

  return _es_append_task_propagate (G_TASK (result), out_version, error);
}

/* ---------------------------------------------------------------------- *
 * Filters                                                                 *
 * ---------------------------------------------------------------------- */

/* Translates an EsEventFilter into SQL, with the same results as the SQLite
 * backend. The SQL text holds only column names, operators, constants and
 * $n placeholders; every value of the filter and every metadata key is a
 * parameter, in text format.
 *
 * For example, reading stream 'cart-7' with the clauses
 *   event_type IN ['Added', 'Removed'] and metadata.user.id = 42
 * gives
 *   SELECT ... FROM "schema".events WHERE stream_id = $1::text AND version > $2::int8
 *     AND event_type IN ($3::text, $4::text)
 *     AND "schema".metadata_jsonb(metadata) -> $5::text -> $6::text = $7::jsonb
 *     ORDER BY version LIMIT $8::int8
 * with $5, $6 = 'user', 'id' and $7 = '42'.
 *
 * Metadata values compare as jsonb: a JSON string equals a string, a JSON
 * number a numerically equal integer or double (1 = 1.0), true and false
 * the booleans, and nothing else matches; a path that runs through an
 * array or a scalar finds nothing (`->` with a text key), as SQLite's
 * object path does. `like` matches strings only, ignoring ASCII case with
 * no escape character, as SQLite's LIKE does: both sides are lowercased in
 * ASCII only (translate() on the column, g_ascii_strdown() on the
 * pattern), and ESCAPE '' turns off PostgreSQL's default escape. */

/* `in` lists up to this length are written as IN ($a, $b...), in filters
 * of at most INLINE_MAX_CLAUSES clauses; longer lists, or any list in a
 * bigger filter, are one jsonb parameter: `x IN (SELECT
 * jsonb_array_elements($n::jsonb))`, which PostgreSQL hashes whatever the
 * plan (generic or custom). The clause limit keeps the inline form within
 * the protocol's 65,535 parameters. */
#define IN_LIST_INLINE_MAX 16
#define INLINE_MAX_CLAUSES 512
#define MAX_PARAMS         65535

typedef struct
{
  GString   *sql;
  GPtrArray *values;  /* (element-type utf8) (owned) parameters in $n order */
  guint      first;   /* the number of values[0] */
  guint      inline_max;  /* longest `in` list written inline */
} QueryBuilder;

static void
query_builder_clear (QueryBuilder *builder)
{
  if (builder->sql != NULL)
    g_string_free (builder->sql, TRUE);
  g_clear_pointer (&builder->values, g_ptr_array_unref);
  builder->sql = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QueryBuilder, query_builder_clear)

/* Appends "$n::@cast" to the SQL and takes @value as the parameter. */
static void
add_param (QueryBuilder *builder,
           char         *value,
           const char   *cast)
{
  g_ptr_array_add (builder->values, value);
  g_string_append_printf (builder->sql, "$%u::%s", builder->first + builder->values->len - 1,
                          cast);
}

#define ASCII_UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define ASCII_LOWER "abcdefghijklmnopqrstuvwxyz"

static void
add_like (QueryBuilder *builder,
          const char   *subject,
          const char   *pattern)
{
  g_string_append_printf (builder->sql, "translate(%s, '" ASCII_UPPER "', '" ASCII_LOWER "')"
                          " LIKE ", subject);
  add_param (builder, g_ascii_strdown (pattern, -1), "text");
  g_string_append (builder->sql, " ESCAPE ''");
}

/* A double as the shortest decimal that reads back as the same double. */
static char *
double_to_json (double value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  for (int precision = 15; precision <= 17; precision++)
    {
      g_autofree char *format = g_strdup_printf ("%%.%dg", precision);

      g_ascii_formatd (buffer, sizeof buffer, format, value);
      if (precision == 17 || g_ascii_strtod (buffer, NULL) == value)
        break;
    }
  return g_strdup (buffer);
}

/* A filter value as JSON text for a jsonb comparison, or NULL for a value
 * no JSON value equals (not a number, infinite, invalid). */
static char *
value_to_json (GVariant *value)
{
  const char *string = NULL;
  gint64 int64 = 0;
  double dbl = 0.0;
  gboolean boolean = FALSE;
  GString *json;

  switch (_es_filter_value_classify (value, &string, &int64, &dbl, &boolean))
    {
    case ES_FILTER_VALUE_STRING:
      json = g_string_new ("\"");
      for (const char *p = string; *p != '\0'; p++)
        {
          if (*p == '"' || *p == '\\')
            g_string_append_printf (json, "\\%c", *p);
          else if ((guchar) *p < 0x20)
            g_string_append_printf (json, "\\u%04x", (guint) (guchar) *p);
          else
            g_string_append_c (json, *p);
        }
      g_string_append_c (json, '"');
      return g_string_free (json, FALSE);

    case ES_FILTER_VALUE_INT64:
      return g_strdup_printf ("%" G_GINT64_FORMAT, int64);

    case ES_FILTER_VALUE_DOUBLE:
      return isfinite (dbl) ? double_to_json (dbl) : NULL;

    case ES_FILTER_VALUE_BOOLEAN:
      return g_strdup (boolean ? "true" : "false");

    case ES_FILTER_VALUE_INVALID:
    default:
      return NULL;
    }
}

/* A scalar of a column clause as text, with its cast; the filter was
 * validated, so it is a string for text columns and an integer for
 * integer ones. NULL for anything else: it equals nothing. */
static char *
value_to_text (GVariant *value,
               gboolean  integer)
{
  const char *string = NULL;
  gint64 int64 = 0;

  switch (_es_filter_value_classify (value, &string, &int64, NULL, NULL))
    {
    case ES_FILTER_VALUE_STRING:
      return integer ? NULL : g_strdup (string);
    case ES_FILTER_VALUE_INT64:
      return integer ? g_strdup_printf ("%" G_GINT64_FORMAT, int64) : NULL;
    case ES_FILTER_VALUE_DOUBLE:
    case ES_FILTER_VALUE_BOOLEAN:
    case ES_FILTER_VALUE_INVALID:
    default:
      return NULL;
    }
}

/* "@subject = $n" or "@subject IN ($a, $b...)" with the values (one, or
 * the elements of an `in` array) that can match: as JSON text for a jsonb
 * @subject, else as text for a text or bigint column. FALSE when none
 * can. */
static void
add_equals_or_in (QueryBuilder     *builder,
                  const char       *subject,
                  EsFilterOperator  op,
                  GVariant         *value,
                  gboolean          json,
                  gboolean          integer)
{
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  const char *cast = json ? "jsonb" : integer ? "int8" : "text";

  if (op == ES_FILTER_OPERATOR_IN)
    {
      gsize n = g_variant_n_children (value);

      for (gsize i = 0; i < n; i++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
          char *text = json ? value_to_json (child) : value_to_text (child, integer);

          if (text != NULL)
            g_ptr_array_add (texts, text);
        }
    }
  else
    {
      char *text = json ? value_to_json (value) : value_to_text (value, integer);

      if (text != NULL)
        g_ptr_array_add (texts, text);
    }

  if (texts->len == 0)
    {
      g_string_append (builder->sql, "FALSE");
      return;
    }

  if (texts->len == 1)
    {
      g_string_append_printf (builder->sql, "%s = ", subject);
      add_param (builder, g_ptr_array_steal_index (texts, 0), cast);
      return;
    }

  if (texts->len > builder->inline_max)
    {
      GString *array = g_string_new ("[");

      /* One jsonb array: its elements are JSON already for a jsonb
       * @subject; for a column, the texts are turned back into JSON (a
       * string quoted, a number as is) and read out as text. */
      for (guint i = 0; i < texts->len; i++)
        {
          const char *text = g_ptr_array_index (texts, i);

          if (i > 0)
            g_string_append_c (array, ',');
          if (json || integer)
            g_string_append (array, text);
          else
            {
              g_autoptr(GVariant) string = g_variant_ref_sink (g_variant_new_string (text));
              g_autofree char *quoted = value_to_json (string);

              g_string_append (array, quoted);
            }
        }
      g_string_append_c (array, ']');

      g_string_append_printf (builder->sql, "%s IN (SELECT %s(", subject,
                              json ? "jsonb_array_elements" : "jsonb_array_elements_text");
      add_param (builder, g_string_free (array, FALSE), "jsonb");
      g_string_append_printf (builder->sql, ")%s)", integer ? "::int8" : "");
      return;
    }

  g_string_append_printf (builder->sql, "%s IN (", subject);
  for (guint i = 0; i < texts->len; i++)
    {
      if (i > 0)
        g_string_append (builder->sql, ", ");
      add_param (builder, g_strdup (g_ptr_array_index (texts, i)), cast);
    }
  g_string_append_c (builder->sql, ')');
}

static void
add_column_clause (QueryBuilder     *builder,
                   const char       *column,
                   gboolean          integer,
                   EsFilterOperator  op,
                   GVariant         *value)
{
  if (op == ES_FILTER_OPERATOR_LIKE)
    {
      if (integer || !g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        g_string_append (builder->sql, "FALSE");
      else
        add_like (builder, column, g_variant_get_string (value, NULL));
      return;
    }

  add_equals_or_in (builder, column, op, value, FALSE, integer);
}

static void
add_metadata_clause (QueryBuilder     *builder,
                     EsPgStorage      *self,
                     char * const     *keys,
                     EsFilterOperator  op,
                     GVariant         *value)
{
  g_autoptr(GString) subject = g_string_new (NULL);

  /* The value at the path, as jsonb: -> with text keys walks objects
   * only. The keys are parameters too. */
  g_string_append_printf (subject, "%s.metadata_jsonb(metadata)", self->quoted_schema);
  for (guint i = 0; keys[i] != NULL; i++)
    {
      g_ptr_array_add (builder->values, g_strdup (keys[i]));
      g_string_append_printf (subject, " -> $%u::text",
                              builder->first + builder->values->len - 1);
    }

  g_string_append_c (builder->sql, '(');
  if (op == ES_FILTER_OPERATOR_LIKE)
    {
      g_autofree char *text = g_strdup_printf ("((%s) #>> '{}')", subject->str);

      if (!g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        g_string_append (builder->sql, "FALSE");
      else
        {
          g_string_append_printf (builder->sql, "jsonb_typeof(%s) = 'string' AND ",
                                  subject->str);
          add_like (builder, text, g_variant_get_string (value, NULL));
        }
    }
  else
    {
      g_autofree char *parenthesized = g_strdup_printf ("(%s)", subject->str);

      add_equals_or_in (builder, parenthesized, op, value, TRUE, FALSE);
    }
  g_string_append_c (builder->sql, ')');
}

/* Appends clauses @first to @last - 1 of @filter, AND-ed as a balanced
 * tree of parentheses, in order: PostgreSQL recurses over a flat chain of
 * thousands of ANDs deep enough to hit its stack depth limit. */
static void
add_clauses (QueryBuilder  *builder,
             EsPgStorage   *self,
             EsEventFilter *filter,
             guint          first,
             guint          last)
{
  g_auto(GStrv) keys = NULL;
  EsFilterOperator op = ES_FILTER_OPERATOR_EQUALS;
  GVariant *value = NULL;
  const char *field;

  if (last - first > 1)
    {
      guint middle = first + (last - first) / 2;

      g_string_append_c (builder->sql, '(');
      add_clauses (builder, self, filter, first, middle);
      g_string_append (builder->sql, " AND ");
      add_clauses (builder, self, filter, middle, last);
      g_string_append_c (builder->sql, ')');
      return;
    }

  field = es_event_filter_get_clause (filter, first, &op, &value);

  switch (_es_filter_parse_field (field, &keys))
    {
    case ES_FILTER_FIELD_STREAM_ID:
      add_column_clause (builder, "stream_id", FALSE, op, value);
      break;
    case ES_FILTER_FIELD_EVENT_TYPE:
      add_column_clause (builder, "event_type", FALSE, op, value);
      break;
    case ES_FILTER_FIELD_VERSION:
      add_column_clause (builder, "version", TRUE, op, value);
      break;
    case ES_FILTER_FIELD_SEQUENCE_ID:
      add_column_clause (builder, "sequence_id", TRUE, op, value);
      break;
    case ES_FILTER_FIELD_METADATA:
      add_metadata_clause (builder, self, keys, op, value);
      break;
    case ES_FILTER_FIELD_INVALID:
    default:
      /* Validation rejects these; should one get here, it selects
       * nothing rather than everything. */
      g_string_append (builder->sql, "FALSE");
      break;
    }
}

/* Appends " AND <clauses>" for @filter, which the storage handle's
 * wrapper has validated (it has at least one clause, at most 4,096).
 * Fails, before anything is sent, when the clauses need more parameters
 * than the protocol allows (metadata paths of many keys). */
static gboolean
add_filter (QueryBuilder   *builder,
            EsPgStorage    *self,
            EsEventFilter  *filter,
            GError        **error)
{
  guint n_clauses = es_event_filter_get_n_clauses (filter);

  builder->inline_max = n_clauses <= INLINE_MAX_CLAUSES ? IN_LIST_INLINE_MAX : 0;
  g_string_append (builder->sql, " AND ");
  add_clauses (builder, self, filter, 0, n_clauses);

  /* The stream, the keyset bound and the limit take 3 more. */
  if (builder->values->len + 3 > MAX_PARAMS)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first number is a count of query parameters,
                    * the second of filter clauses, the third is 65535 */
                   _("The filter needs %u query parameters for its %u clauses (each key "
                     "of a metadata path is one), more than PostgreSQL's limit of %u"),
                   builder->values->len + 3, n_clauses, (guint) MAX_PARAMS);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- *
 * Reading                                                                 *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char    *stream_id;  /* NULL: @all */
  gint64         after;
  EsEventFilter *filter;     /* (nullable) */
  guint          limit;
  GPtrArray     *events;     /* (owned) the result */
} ReadOp;

/* Builds the stored event of row @row. Consecutive rows of one stream
 * share the GRefString in *@stream_ref instead of each copying the id. */
static EsStoredEvent *
event_from_row (const PGresult  *result,
                int              row,
                char           **stream_ref,
                gboolean         all_streams)
{
  const char *key = NULL, *metadata = NULL;
  gsize n_key = 0, n_metadata = 0;

  if (all_streams)
    {
      const char *stream_id = PQgetvalue (result, row, 7);

      if (*stream_ref == NULL || strcmp (*stream_ref, stream_id) != 0)
        {
          g_clear_pointer (stream_ref, g_ref_string_release);
          *stream_ref = g_ref_string_new (stream_id);
        }
    }

  if (!PQgetisnull (result, row, 2))
    {
      key = PQgetvalue (result, row, 2);
      n_key = PQgetlength (result, row, 2);
    }
  if (!PQgetisnull (result, row, 6))
    {
      metadata = PQgetvalue (result, row, 6);
      n_metadata = PQgetlength (result, row, 6);
    }

  /* Binary format: text and bytea are their bytes, bigint eight bytes in
   * network order, timestamptz microseconds since 2000. One allocation
   * holds the strings and the data (see _es_stored_event_new_packed()). */
  return _es_stored_event_new_packed (g_ref_string_acquire (*stream_ref),
                                      get_int8 (result, row, 0),
                                      get_int8 (result, row, 1),
                                      get_timestamp_usec (result, row, 4),
                                      PQgetvalue (result, row, 3), PQgetlength (result, row, 3),
                                      PQgetvalue (result, row, 5), PQgetlength (result, row, 5),
                                      key, n_key,
                                      metadata, n_metadata);
}

static gboolean
read_operation (EsPgStorage   *self,
                Connection    *c,
                gpointer       data,
                gboolean      *retry,
                GCancellable  *cancellable,
                GError       **error)
{
  ReadOp *op = data;
  gboolean all_streams = op->stream_id == NULL;
  g_auto(QueryBuilder) builder = { NULL, };
  g_autofree char *after = g_strdup_printf ("%" G_GINT64_FORMAT, op->after);
  g_autofree char *limit = g_strdup_printf ("%u", op->limit);
  g_autofree const char **values = NULL;
  g_autofree char *sql = NULL;
  char *stream_ref = NULL;
  Statement statement = { NULL, 0, NULL, NULL, NULL, TRUE };
  PGresult *result;
  guint n = 0;
  int n_rows;

  /* Reading twice does no harm. */
  *retry = TRUE;

  /* Keyset paging: each page starts after the last version (or sequence
   * id) of the previous one, so every page is an index range scan. */
  builder.sql = g_string_new (NULL);
  builder.values = g_ptr_array_new_with_free_func (g_free);
  builder.first = all_streams ? 2 : 3;
  if (op->filter != NULL && es_event_filter_get_n_clauses (op->filter) > 0)
    {
      g_autofree char *start = schema_sql (self, all_streams ? READ_ALL_SELECT
                                                             : READ_STREAM_SELECT);

      g_string_append (builder.sql, start);
      if (!add_filter (&builder, self, op->filter, error))
        {
          *retry = FALSE;
          return FALSE;
        }
      g_string_append_printf (builder.sql, all_streams ? READ_ALL_ORDER : READ_STREAM_ORDER,
                              builder.first + builder.values->len);
      statement.sql = builder.sql->str;
    }
  else
    statement.sql = self->sql[all_streams ? SQL_READ_ALL : SQL_READ_STREAM];

  /* Parameters in $n order: the stream, the keyset bound, the filter's
   * values, the limit. */
  values = g_new0 (const char *, builder.values->len + 3);
  if (!all_streams)
    values[n++] = op->stream_id;
  values[n++] = after;
  for (guint i = 0; i < builder.values->len; i++)
    values[n++] = g_ptr_array_index (builder.values, i);
  values[n++] = limit;
  statement.n_params = n;
  statement.values = values;

  result = connection_run_one (c, &statement, cancellable, _("Reading events"), error);
  if (result == NULL)
    return FALSE;

  n_rows = PQntuples (result);
  op->events = g_ptr_array_new_full (n_rows, g_object_unref);
  if (!all_streams)
    stream_ref = g_ref_string_new (op->stream_id);
  for (int row = 0; row < n_rows; row++)
    g_ptr_array_add (op->events, event_from_row (result, row, &stream_ref, all_streams));
  g_clear_pointer (&stream_ref, g_ref_string_release);
  PQclear (result);
  return TRUE;
}

static GPtrArray *
es_pg_storage_read_page (EsStorageHandle  *handle,
                         const char       *stream_id,
                         gint64            after,
                         EsEventFilter    *filter,
                         guint             limit,
                         GCancellable     *cancellable,
                         GError          **error)
{
  ReadOp op = { stream_id, after, filter, limit, NULL };

  if (!run_operation (ES_PG_STORAGE (handle), read_operation, &op, cancellable, error))
    {
      g_clear_pointer (&op.events, g_ptr_array_unref);
      return NULL;
    }
  return op.events;
}

/* A query of one row (or none) of binary int8 and timestamptz columns: the
 * stream version, the metrics, a snapshot. */
typedef struct
{
  SqlId       sql;
  const char *values[2];
  int         n_params;
  const char *context;
  PGresult   *result;   /* (owned) */
} QueryOp;

static gboolean
query_operation (EsPgStorage   *self,
                 Connection    *c,
                 gpointer       data,
                 gboolean      *retry,
                 GCancellable  *cancellable,
                 GError       **error)
{
  QueryOp *op = data;
  Statement statement = { self->sql[op->sql], op->n_params, op->values, NULL, NULL, TRUE };

  *retry = TRUE;
  g_clear_pointer (&op->result, PQclear);
  op->result = connection_run_one (c, &statement, cancellable, op->context, error);
  return op->result != NULL;
}

static gboolean
es_pg_storage_get_version (EsStorageHandle  *handle,
                           const char       *stream_id,
                           gint64           *out_version,
                           GCancellable     *cancellable,
                           GError          **error)
{
  QueryOp op = { 0, };

  op.sql = stream_id != NULL ? SQL_STREAM_VERSION : SQL_LAST_SEQUENCE_ID;
  op.values[0] = stream_id;
  op.n_params = stream_id != NULL ? 1 : 0;
  op.context = _("Reading the stream version");

  if (!run_operation (ES_PG_STORAGE (handle), query_operation, &op, cancellable, error))
    return FALSE;

  if (out_version != NULL)
    *out_version = get_int8 (op.result, 0, 0);
  PQclear (op.result);
  return TRUE;
}

static EsStreamMetrics *
es_pg_storage_get_metrics (EsStorageHandle  *handle,
                           const char       *stream_id,
                           GCancellable     *cancellable,
                           GError          **error)
{
  g_autoptr(GDateTime) last_timestamp = NULL;
  QueryOp op = { 0, };
  gint64 version = 0;
  gint64 count = 0;

  /* One statement, so one consistent snapshot of the database. */
  op.sql = stream_id != NULL ? SQL_STREAM_METRICS : SQL_ALL_METRICS;
  op.values[0] = stream_id;
  op.n_params = stream_id != NULL ? 1 : 0;
  op.context = _("Reading stream metrics");

  if (!run_operation (ES_PG_STORAGE (handle), query_operation, &op, cancellable, error))
    return NULL;

  if (PQntuples (op.result) > 0)
    {
      version = get_int8 (op.result, 0, 0);
      count = get_int8 (op.result, 0, 1);
      last_timestamp = date_time_new_from_usec (get_timestamp_usec (op.result, 0, 2));
    }
  PQclear (op.result);

  return es_stream_metrics_new (version, count, last_timestamp);
}

/* The stream id snapshots of @all are stored under (the storage handle
 * receives NULL for @all; no valid stream id starts with '@'). */
#define ALL_STREAM_KEY ES_ALL_STREAM

static EsSnapshot *
es_pg_storage_load_snapshot (EsStorageHandle  *handle,
                             const char       *stream_id,
                             const char       *projection_name,
                             GCancellable     *cancellable,
                             GError          **error)
{
  EsSnapshot *snapshot = NULL;
  QueryOp op = { 0, };

  op.sql = SQL_LOAD_SNAPSHOT;
  op.values[0] = stream_id != NULL ? stream_id : ALL_STREAM_KEY;
  op.values[1] = projection_name;
  op.n_params = 2;
  op.context = _("Loading a snapshot");

  if (!run_operation (ES_PG_STORAGE (handle), query_operation, &op, cancellable, error))
    return NULL;

  /* No row: no snapshot, and no error. */
  if (PQntuples (op.result) > 0)
    {
      g_autoptr(GBytes) state = g_bytes_new (PQgetvalue (op.result, 0, 1),
                                             PQgetlength (op.result, 0, 1));

      snapshot = _es_snapshot_new_usec (stream_id, projection_name,
                                        get_int8 (op.result, 0, 0), state,
                                        get_timestamp_usec (op.result, 0, 2));
    }
  PQclear (op.result);
  return snapshot;
}

typedef struct
{
  const char *values[4];
  int         lengths[4];
} SnapshotOp;

static gboolean
save_snapshot_operation (EsPgStorage   *self,
                         Connection    *c,
                         gpointer       data,
                         gboolean      *retry,
                         GCancellable  *cancellable,
                         GError       **error)
{
  SnapshotOp *op = data;
  static const int formats[] = { 0, 0, 0, 1 };
  Statement statement = { self->sql[SQL_SAVE_SNAPSHOT], 4, op->values, op->lengths, formats,
                          FALSE };
  PGresult *result;

  /* The upsert writes the same row however many times it runs. */
  *retry = TRUE;
  result = connection_run_one (c, &statement, cancellable, _("Saving a snapshot"), error);
  PQclear (result);
  return result != NULL;
}

static gboolean
es_pg_storage_save_snapshot (EsStorageHandle  *handle,
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

  return run_operation (ES_PG_STORAGE (handle), save_snapshot_operation, &op, cancellable,
                        error);
}

/* Refuses new work, wakes whoever waits for a connection, and closes the
 * idle connections; borrowed ones are closed when they come back, as soon
 * as their operation ends. Idempotent and thread-safe. */
static void
es_pg_storage_shutdown (EsPgStorage *self)
{
  g_autoptr(GPtrArray) idle = NULL;
  GThread *thread;

  g_mutex_lock (&self->pool_lock);
  self->closed = TRUE;
  idle = g_steal_pointer (&self->idle);
  self->idle = g_ptr_array_new ();
  self->n_open -= idle->len;
  g_cond_broadcast (&self->pool_cond);
  thread = g_steal_pointer (&self->writer_thread);
  g_mutex_unlock (&self->pool_lock);

  g_ptr_array_set_free_func (idle, connection_close);

  /* The writer runs the jobs queued before the stop mark: the storage is
   * closed, so they fail with ES_ERROR_CLOSED (a group already running
   * finishes). On the writer thread itself (it dropped the last ref on the
   * storage), it cannot be joined: it stops on its own. */
  if (self->writer != NULL)
    writer_stop (self->writer);
  if (thread != NULL)
    {
      if (thread == g_thread_self ())
        g_thread_unref (thread);
      else
        g_thread_join (thread);
    }
}

static gboolean
es_pg_storage_close (EsStorageHandle  *handle,
                     GCancellable     *cancellable,
                     GError          **error)
{
  es_pg_storage_shutdown (ES_PG_STORAGE (handle));
  return TRUE;
}

static void
storage_handle_iface_init (EsStorageHandleInterface *iface)
{
  iface->append = es_pg_storage_append;
  iface->append_async = es_pg_storage_append_async;
  iface->append_finish = es_pg_storage_append_finish;
  iface->read_page = es_pg_storage_read_page;
  iface->get_version = es_pg_storage_get_version;
  iface->get_metrics = es_pg_storage_get_metrics;
  iface->save_snapshot = es_pg_storage_save_snapshot;
  iface->load_snapshot = es_pg_storage_load_snapshot;
  iface->close = es_pg_storage_close;
}

/* ---------------------------------------------------------------------- *
 * GObject                                                                 *
 * ---------------------------------------------------------------------- */

static void
es_pg_storage_constructed (GObject *object)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  G_OBJECT_CLASS (es_pg_storage_parent_class)->constructed (object);

  /* A name that init refuses never reaches SQL: these are unused then. */
  self->quoted_schema = g_strdup_printf ("\"%s\"", self->schema);
  self->channel = g_strconcat (self->schema, "_events", NULL);
  for (guint i = 0; i < N_SQL; i++)
    self->sql[i] = schema_sql (self, sql_templates[i]);
}

static void
es_pg_storage_dispose (GObject *object)
{
  es_pg_storage_shutdown (ES_PG_STORAGE (object));

  G_OBJECT_CLASS (es_pg_storage_parent_class)->dispose (object);
}

static void
es_pg_storage_finalize (GObject *object)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  g_clear_pointer (&self->idle, g_ptr_array_unref);
  g_clear_pointer (&self->writer, writer_unref);
  g_free (self->conninfo);
  g_free (self->schema);
  g_free (self->quoted_schema);
  g_free (self->channel);
  for (guint i = 0; i < N_SQL; i++)
    g_free (self->sql[i]);
  g_mutex_clear (&self->pool_lock);
  g_cond_clear (&self->pool_cond);

  G_OBJECT_CLASS (es_pg_storage_parent_class)->finalize (object);
}

static void
es_pg_storage_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  switch (prop_id)
    {
    case PROP_CONNINFO:
      g_value_set_string (value, self->conninfo);
      break;
    case PROP_SCHEMA:
      g_value_set_string (value, self->schema);
      break;
    case PROP_POOL_SIZE:
      g_value_set_uint (value, self->pool_size);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_storage_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  EsPgStorage *self = ES_PG_STORAGE (object);

  switch (prop_id)
    {
    case PROP_CONNINFO:
      g_free (self->conninfo);
      self->conninfo = g_value_dup_string (value);
      break;
    case PROP_SCHEMA:
      /* NULL: the default. */
      g_free (self->schema);
      self->schema = g_strdup (g_value_get_string (value) != NULL ? g_value_get_string (value)
                                                                  : ES_PG_DEFAULT_SCHEMA);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_storage_class_init (EsPgStorageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->constructed = es_pg_storage_constructed;
  object_class->dispose = es_pg_storage_dispose;
  object_class->finalize = es_pg_storage_finalize;
  object_class->get_property = es_pg_storage_get_property;
  object_class->set_property = es_pg_storage_set_property;

  /**
   * EsPgStorage:conninfo:
   *
   * How to reach the database: a libpq connection string
   * (`"host=db.example.com dbname=shop user=app"`) or URI
   * (`"postgresql://app@db.example.com/shop"`). libpq's environment
   * variables and password file supply what it leaves out; %NULL or an
   * empty string uses them alone.
   *
   * Since: 0.1
   */
  properties[PROP_CONNINFO] =
    g_param_spec_string ("conninfo", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsPgStorage:schema:
   *
   * The PostgreSQL schema that holds the tables, created when missing: 1
   * to 48 characters among `a-z`, `0-9` and `_`, not starting with a
   * digit. %NULL means the default, `es_glib`.
   *
   * Since: 0.1
   */
  properties[PROP_SCHEMA] =
    g_param_spec_string ("schema", NULL, NULL,
                         ES_PG_DEFAULT_SCHEMA,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  /**
   * EsPgStorage:pool-size:
   *
   * The most connections the storage opens: how many reads and appends
   * run at once; more wait for a connection to be free. The first is
   * opened at once, the others when they are needed.
   *
   * Since: 0.1
   */
  properties[PROP_POOL_SIZE] =
    g_param_spec_uint ("pool-size", NULL, NULL,
                       1, MAX_POOL_SIZE, DEFAULT_POOL_SIZE,
                       (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_pg_storage_init (EsPgStorage *self)
{
  self->schema = g_strdup (ES_PG_DEFAULT_SCHEMA);
  self->pool_size = DEFAULT_POOL_SIZE;

  g_mutex_init (&self->pool_lock);
  g_cond_init (&self->pool_cond);
  self->idle = g_ptr_array_new ();
  /* Until init succeeds, nothing can be borrowed. */
  self->closed = TRUE;
}

/* ---------------------------------------------------------------------- *
 * Public and library-private API                                          *
 * ---------------------------------------------------------------------- */

/**
 * es_pg_storage_new:
 * @conninfo: a libpq connection string or URI
 * @schema: (nullable): the schema that holds the tables, or %NULL for
 *   `es_glib`
 * @pool_size: the most connections (1 to 64), or 0 for the default (4)
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Connects to a PostgreSQL database and opens the es-glib tables in
 * @schema, creating them when missing. This blocks while it connects.
 *
 * Fails with %ES_ERROR_INVALID_ARGUMENT for a schema name that is not
 * valid, and with %ES_ERROR_STORAGE, carrying the server's reason, when
 * the server cannot be reached or refuses the connection, or when @schema
 * holds another application's tables or was written by a newer es-glib
 * (the schema is then left untouched).
 *
 * Returns: (transfer full): the storage, or %NULL on error
 *
 * Since: 0.1
 */
EsPgStorage *
es_pg_storage_new (const char    *conninfo,
                   const char    *schema,
                   guint          pool_size,
                   GCancellable  *cancellable,
                   GError       **error)
{
  g_return_val_if_fail (conninfo != NULL, NULL);
  g_return_val_if_fail (pool_size <= MAX_POOL_SIZE, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (ES_TYPE_PG_STORAGE, cancellable, error,
                         "conninfo", conninfo,
                         "schema", schema,
                         "pool-size", pool_size != 0 ? pool_size : DEFAULT_POOL_SIZE,
                         NULL);
}

/**
 * es_pg_storage_get_conninfo:
 * @self: an [class@EsPg.Storage]
 *
 * Gets the connection string the storage was created with.
 *
 * Returns: (transfer none) (nullable): the connection string, as given
 *
 * Since: 0.1
 */
const char *
es_pg_storage_get_conninfo (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->conninfo;
}

/**
 * es_pg_storage_get_schema:
 * @self: an [class@EsPg.Storage]
 *
 * Gets the PostgreSQL schema that holds the storage's tables.
 *
 * Returns: (transfer none): the schema name
 *
 * Since: 0.1
 */
const char *
es_pg_storage_get_schema (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->schema;
}

/**
 * es_pg_storage_get_pool_size:
 * @self: an [class@EsPg.Storage]
 *
 * Gets the most connections the storage opens.
 *
 * Returns: the size of the pool
 *
 * Since: 0.1
 */
guint
es_pg_storage_get_pool_size (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), 0);

  return self->pool_size;
}

const char *
_es_pg_storage_get_conninfo (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->conninfo != NULL ? self->conninfo : "";
}

const char *
_es_pg_storage_get_channel (EsPgStorage *self)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (self), NULL);

  return self->channel;
}
