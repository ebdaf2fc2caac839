/* es-pg-connection.c: talking to the PostgreSQL server.
 *
 * Errors: libpq's and the server's messages made into one-line GErrors,
 * with passwords taken out of them. Connecting (_es_pg_connect(), used by
 * the storage's pool and by the notifier). A pooled connection
 * (EsPgConnection): opening, checking an idle one, its cache of prepared
 * statements, and running statements, in one pipeline per round trip,
 * with cancellation sent to the server, or as a script (the schema's DDL).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-pg-private.h"

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
  return _es_pg_connect_with_defaults (conninfo, NULL, cancellable, error);
}

/* Whether @options (parsed) gives @keyword a value. */
static gboolean
option_is_set (const PQconninfoOption *options,
               const char             *keyword)
{
  for (const PQconninfoOption *option = options; option->keyword != NULL; option++)
    if (g_str_equal (option->keyword, keyword))
      return option->val != NULL;
  return FALSE;
}

PGconn *
_es_pg_connect_with_defaults (const char          *conninfo,
                              const char * const  *defaults,
                              GCancellable        *cancellable,
                              GError             **error)
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
  for (guint i = 0; defaults != NULL && defaults[i] != NULL; i += 2)
    if (!option_is_set (options, defaults[i]))
      {
        g_ptr_array_add (keywords, (gpointer) defaults[i]);
        g_ptr_array_add (values, (gpointer) defaults[i + 1]);
      }
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

void
_es_pg_connection_close (gpointer data)
{
  EsPgConnection *c = data;

  if (c == NULL)
    return;

  g_clear_pointer (&c->prepared, g_hash_table_unref);
  g_clear_pointer (&c->cancel, PQfreeCancel);
  /* Sends the server a Terminate message: it ends the session at once. */
  g_clear_pointer (&c->conn, PQfinish);
  g_free (c);
}

EsPgConnection *
_es_pg_connection_open (const char          *conninfo,
                        const char * const  *defaults,
                        GCancellable        *cancellable,
                        GError             **error)
{
  g_autoptr(EsPgConnection) c = g_new0 (EsPgConnection, 1);

  c->conn = _es_pg_connect_with_defaults (conninfo, defaults, cancellable, error);
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
gboolean
_es_pg_connection_is_alive (EsPgConnection *c)
{
  GPollFD fd = { PQsocket (c->conn), G_IO_IN, 0 };

  if (PQstatus (c->conn) != CONNECTION_OK || fd.fd < 0)
    return FALSE;
  if (g_poll (&fd, 1, 0) > 0 && !PQconsumeInput (c->conn))
    return FALSE;
  return PQstatus (c->conn) == CONNECTION_OK;
}

/* Whether @result's SQLSTATE is @state. */
gboolean
_es_pg_result_has_state (const PGresult *result,
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
connection_set_error (EsPgConnection *c,
                      const PGresult *result,
                      const char     *context,
                      GError        **error)
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
connection_wait (EsPgConnection *c,
                 GCancellable   *cancellable)
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
connection_next_result (EsPgConnection *c,
                        GCancellable   *cancellable)
{
  if (!connection_wait (c, cancellable) && PQstatus (c->conn) == CONNECTION_OK)
    return NULL;
  return PQgetResult (c->conn);
}

/* Drops the connection's prepared statements when their cache is full. */
static gboolean
connection_trim_statements (EsPgConnection *c,
                            GCancellable   *cancellable,
                            GError        **error)
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
gboolean
_es_pg_connection_run (EsPgConnection      *c,
                       const EsPgStatement *statements,
                       guint                n_statements,
                       PGresult           **results,
                       int                 *out_failed,
                       GCancellable        *cancellable,
                       const char          *context,
                       GError             **error)
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
      const EsPgStatement *s = &statements[i];

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
PGresult *
_es_pg_connection_run_one (EsPgConnection      *c,
                           const EsPgStatement *statement,
                           GCancellable        *cancellable,
                           const char          *context,
                           GError             **error)
{
  PGresult *result = NULL;

  if (!_es_pg_connection_run (c, statement, 1, &result, NULL, cancellable, context, error))
    {
      PQclear (result);
      return NULL;
    }
  return result;
}

/* Runs SQL in the simple query protocol: several statements in one
 * string, no parameters (the schema's DDL). */
gboolean
_es_pg_connection_run_script (EsPgConnection *c,
                              const char     *sql,
                              GCancellable   *cancellable,
                              const char     *context,
                              GError        **error)
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
void
_es_pg_connection_rollback (EsPgConnection *c)
{
  PGresult *result;

  if (c->lost || PQstatus (c->conn) != CONNECTION_OK ||
      PQtransactionStatus (c->conn) == PQTRANS_IDLE)
    return;

  result = PQexec (c->conn, "ROLLBACK");
  PQclear (result);
}
