/* es-pg-notifier.c: tells watches about commits to a PostgreSQL database.
 *
 * One notifier per storage, on its own thread with its own main context,
 * holding one dedicated connection (not from the storage's pool) that runs
 * `LISTEN <channel>`. Every committed append sends `NOTIFY <channel>` in
 * its own transaction, so the notification arrives exactly when the events
 * become visible. The connection's socket is watched by a GSource in the
 * notifier's context: when it turns readable, PQconsumeInput() and
 * PQnotifies() drain what arrived, and the new events are read once, in
 * pages after the cursor, through the storage, and handed to every
 * subscriber. The payload is only a hint: however many notifications
 * arrived, one read from the cursor serves them all.
 *
 * There is no polling: while the connection is healthy no timer runs and
 * nothing is read unless something was committed. Timers exist only while
 * something is wrong: the backoff between reconnection attempts (and the
 * time limit of one attempt), and the backoff between retries of a read
 * that failed.
 *
 * The link to the server is a small state machine run entirely by the
 * notifier's main context, so stopping never waits for a server that does
 * not answer:
 *
 *   UP --(socket error, EOF)--> DOWN --(backoff)--> CONNECTING
 *   CONNECTING --(PQconnectPoll OK)--> LISTENING --(LISTEN done)--> UP
 *
 * On every transition to UP everything after the cursor is read from the
 * database: what was committed while the link was down is delivered then,
 * once, in order.
 *
 * While the link is not UP, or reads fail, a give-up timer runs (when
 * give-up-timeout is not 0); the first UP link with a successful read
 * removes it. When it fires, the notifier records why, ends every
 * subscription (watches fail with that error) and stops its thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib-unix.h>

#include "es-pg-private.h"

/**
 * EsPgNotifier:
 *
 * The [iface@Es.Notifier] of the PostgreSQL backend.
 * [class@EsPg.StreamFactory] creates and starts one per factory;
 * applications rarely meet it.
 *
 * ## How it works
 *
 * The notifier keeps one connection of its own to the server, apart from
 * the storage's pool, and runs `LISTEN` on the storage's channel. Every
 * append commits a `NOTIFY` on that channel in the same transaction as
 * its events, whichever process or machine made it. The connection's
 * socket is watched from the notifier's own thread and
 * [struct@GLib.MainContext]: when a notification arrives, the notifier
 * reads every event after the last one it delivered, in sequence-id order
 * and in pages, and hands them to its subscribers (the watches of the
 * factory). Notifications that arrive together are served by one read,
 * and the number of watches does not multiply queries.
 *
 * It never polls: while the connection is healthy and nothing is written,
 * it neither runs a timer nor queries the database.
 *
 * ## Latency
 *
 * Commits made through the same factory are looked for at once, without
 * waiting for the notification's round trip. Commits of other processes
 * are seen as soon as the server delivers the notification (which it
 * sends when the committing transaction ends) plus one read of the new
 * events: on one machine, a watch typically emits an event a few tenths
 * of a millisecond after the writer's commit returned, and within a few
 * milliseconds even on a busy machine. Across a network, add a round
 * trip or two.
 *
 * ## Reconnection
 *
 * When the connection breaks (the server restarts, the network fails),
 * the notifier closes it and tries again after 50 ms, doubling the delay
 * up to 2 s between attempts (an attempt that has not connected after
 * 10 s is abandoned and retried). Once connected it runs `LISTEN` again
 * and then reads everything committed after the last delivered event:
 * nothing written while it was disconnected is lost, and nothing is
 * delivered twice. A read that fails (the server is still starting, say)
 * is retried the same way, from the same position. Watches stay active
 * meanwhile; they only see their events late.
 *
 * ## Giving up
 *
 * When the server stays away (or reads keep failing) for
 * [property@EsPg.Notifier:give-up-timeout] milliseconds (60 s by default)
 * without one successful reconnection and read in between, the notifier
 * gives up: every watch of the factory emits [signal@Es.Watch::error]
 * with %ES_ERROR_STORAGE, carrying the last reason libpq gave, and stops;
 * watches started later fail the same way ([method@Es.Notifier.get_error]
 * tells the reason too). A shorter outage ends unnoticed but for the
 * delay. Set the timeout through the factory's
 * [property@EsPg.StreamFactory:give-up-timeout]; 0 never gives up.
 *
 * A connection that dies silently (a peer that vanished from the network
 * without closing it) is noticed through TCP keepalives; tune them with
 * the `keepalives_idle`, `keepalives_interval` and `keepalives_count`
 * parameters of the connection string.
 *
 * Since: 0.1
 */

/* Reconnection and read retries back off from the first delay, doubling
 * up to the last. */
#define BACKOFF_INITIAL_MS 50
#define BACKOFF_MAX_MS 2000
/* An attempt to connect that takes longer than this is started over. */
#define CONNECT_ATTEMPT_TIMEOUT_S 10
/* How long the link may stay down, or reads fail, before giving up. */
#define DEFAULT_GIVE_UP_TIMEOUT 60000

typedef enum
{
  LINK_DOWN,        /* no connection; a backoff timer brings it back */
  LINK_CONNECTING,  /* PQconnectPoll() in progress */
  LINK_LISTENING,   /* LISTEN sent, its result not yet in */
  LINK_UP,          /* listening: notifications wake the notifier */
} LinkState;

struct _EsPgNotifier
{
  GObject       parent_instance;

  EsPgStorage  *storage;          /* (owned) */

  GMutex        state_lock;
  gboolean      started;          /* guarded by state_lock */
  gboolean      stopped;          /* guarded by state_lock */
  GThread      *thread;           /* (owned) guarded by state_lock */
  GMainContext *context;          /* (owned) the notifier thread's */
  GMainLoop    *loop;             /* (owned) */
  GCancellable *cancellable;      /* (owned) cancelled by stop(): ends a read */
  guint         give_up_timeout;  /* milliseconds, 0 for never */
  GError       *error;            /* (owned) (nullable) set once when giving up, guarded by state_lock */

  /* Set by start(), then used only on the notifier's thread. */
  char         *conninfo;         /* (owned) */
  char         *listen_sql;       /* (owned) "LISTEN <quoted channel>" */
  PGconn       *conn;             /* (owned) (nullable) the LISTENing connection */
  LinkState     link;
  GSource      *socket_source;    /* (owned) (nullable) watches PQsocket (conn) */
  GSource      *link_timer;       /* (owned) (nullable) backoff or attempt time limit */
  guint         link_backoff_ms;  /* delay before the next connection attempt */
  GSource      *retry_timer;      /* (owned) (nullable) retries a failed read */
  guint         retry_backoff_ms; /* delay before the next read retry */
  gint64        notified_up_to;   /* largest sequence id a notification named
                                   * since the link came up, 0 if none */
  GSource      *give_up_timer;    /* (owned) (nullable) runs while something fails */
  char         *last_failure;     /* (owned) (nullable) why, for the error */

  gint          check_scheduled;  /* (atomic) an idle check is pending */
  gint          n_connects;       /* (atomic) */
  gint          n_reads;          /* (atomic) */

  EsSubscribers subs;             /* with the cursor of deliveries */
};

enum {
  PROP_0,
  PROP_STORAGE,
  PROP_GIVE_UP_TIMEOUT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void notifier_iface_init (EsNotifierInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (EsPgNotifier, es_pg_notifier, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (ES_TYPE_NOTIFIER, notifier_iface_init))

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

/* Attaches a new source running @func to the notifier's context. */
static GSource *
add_timer (EsPgNotifier *self,
           guint         milliseconds,
           GSourceFunc   func,
           const char   *name)
{
  GSource *source = g_timeout_source_new (milliseconds);

  g_source_set_callback (source, func, self, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, self->context);
  return source;
}

/* Reads what was committed after the cursor and hands it to every
 * subscriber. Runs on the notifier's thread, the only one that moves the
 * cursor. The database is read without holding deliver_lock, so that
 * subscribing, unsubscribing and get_last_sequence_id() never wait for
 * the server; only handing the events over holds it. Returns FALSE when a
 * read failed and must be retried; the cursor then stays where it was. */
static gboolean
deliver_new_events (EsPgNotifier *self)
{
  EsStorageHandle *storage = ES_STORAGE_HANDLE (self->storage);
  g_autoptr(GError) error = NULL;

  for (;;)
    {
      g_autoptr(GPtrArray) events = NULL;
      gboolean listened;
      gint64 cursor;

      g_rec_mutex_lock (&self->subs.lock);
      cursor = self->subs.cursor;
      listened = _es_subscribers_any (&self->subs);
      g_rec_mutex_unlock (&self->subs.lock);

      if (!listened)
        {
          gint64 last = cursor;

          /* Nobody listens: just move the cursor, reading no event. The
           * notifications name the last sequence id of each commit, and
           * appends commit in sequence-id order, so the largest one named
           * is where the cursor goes, without a query per commit. Only
           * without one (after connecting) is the database asked. */
          if (self->notified_up_to > 0)
            last = self->notified_up_to;
          else
            {
              g_atomic_int_inc (&self->n_reads);
              if (!es_storage_handle_get_version (storage, NULL, &last, self->cancellable, &error))
                break;
            }

          g_rec_mutex_lock (&self->subs.lock);
          listened = _es_subscribers_any (&self->subs);
          /* Someone subscribed meanwhile, having seen the old cursor:
           * read the events for them instead. */
          if (!listened)
            self->subs.cursor = MAX (cursor, last);
          g_rec_mutex_unlock (&self->subs.lock);

          if (listened)
            continue;
          break;
        }

      g_atomic_int_inc (&self->n_reads);
      events = es_storage_handle_read_page (storage, NULL, cursor, NULL,
                                            ES_READ_PAGE_SIZE, self->cancellable, &error);
      if (events == NULL || events->len == 0)
        break;

      /* Whoever subscribed during the read saw the old cursor, so gets
       * these events too; whoever left gets nothing more. */
      g_rec_mutex_lock (&self->subs.lock);
      self->subs.cursor = es_stored_event_get_sequence_id (g_ptr_array_index (events,
                                                                         events->len - 1));
      _es_subscribers_emit (&self->subs, events);
      g_rec_mutex_unlock (&self->subs.lock);

      if (events->len < ES_READ_PAGE_SIZE)
        break;
    }

  if (error == NULL)
    return TRUE;

  /* A closed storage is the factory closing, a cancelled read stop():
   * nothing to retry. */
  if (g_error_matches (error, ES_ERROR, ES_ERROR_CLOSED) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return TRUE;

  g_debug ("Reading new events failed, will retry: %s", error->message);
  g_free (self->last_failure);
  self->last_failure = g_strdup (error->message);
  return FALSE;
}

static gboolean retry_cb (gpointer user_data);
static gboolean give_up_cb (gpointer user_data);

/* Something fails (the link, a read): the give-up timer runs, unless it
 * already does. */
static void
failing (EsPgNotifier *self)
{
  if (self->give_up_timer != NULL || self->give_up_timeout == 0)
    return;

  self->give_up_timer = add_timer (self, self->give_up_timeout, give_up_cb,
                                   "[es-glib] pg notifier give up");
}

/* The link is up and a read succeeded: nothing fails any more. */
static void
healthy (EsPgNotifier *self)
{
  clear_source (&self->give_up_timer);
}

/* Delivers; when the read fails, tries again later with backoff (the
 * server may be restarting: its notification will not come again). */
static void
check (EsPgNotifier *self)
{
  if (deliver_new_events (self))
    {
      clear_source (&self->retry_timer);
      self->retry_backoff_ms = BACKOFF_INITIAL_MS;
      if (self->link == LINK_UP)
        healthy (self);
    }
  else
    {
      failing (self);
      if (self->retry_timer == NULL)
        {
          self->retry_timer = add_timer (self, self->retry_backoff_ms, retry_cb,
                                         "[es-glib] pg notifier read retry");
          self->retry_backoff_ms = MIN (self->retry_backoff_ms * 2, BACKOFF_MAX_MS);
        }
    }
}

static gboolean
retry_cb (gpointer user_data)
{
  EsPgNotifier *self = user_data;

  g_clear_pointer (&self->retry_timer, g_source_unref);
  check (self);
  return G_SOURCE_REMOVE;
}

static gboolean
check_now_cb (gpointer user_data)
{
  EsPgNotifier *self = user_data;

  g_atomic_int_set (&self->check_scheduled, FALSE);
  check (self);
  return G_SOURCE_REMOVE;
}

/* Asks for a check on the notifier's thread; requests coalesce. */
static void
schedule_check (EsPgNotifier *self)
{
  GSource *source;

  if (!g_atomic_int_compare_and_exchange (&self->check_scheduled, FALSE, TRUE))
    return;

  source = g_idle_source_new ();
  g_source_set_callback (source, check_now_cb, self, NULL);
  g_source_set_static_name (source, "[es-glib] pg notifier check");
  g_source_attach (source, self->context);
  g_source_unref (source);
}

/* The link's state machine; all on the notifier's thread. */

static gboolean socket_cb (gint fd, GIOCondition condition, gpointer user_data);
static gboolean reconnect_cb (gpointer user_data);

/* Watches the connection's socket for @condition (and errors). The
 * socket can change while connecting, so the source is made anew. */
static gboolean
link_watch_socket (EsPgNotifier *self,
                   GIOCondition  condition)
{
  int fd = PQsocket (self->conn);

  clear_source (&self->socket_source);
  if (fd < 0)
    return FALSE;

  self->socket_source = g_unix_fd_source_new (fd, condition | G_IO_ERR | G_IO_HUP);
  g_source_set_callback (self->socket_source, G_SOURCE_FUNC (socket_cb), self, NULL);
  g_source_set_static_name (self->socket_source, "[es-glib] pg notifier socket");
  g_source_attach (self->socket_source, self->context);
  return TRUE;
}

/* Closes the connection: the socket's source goes first, so it never
 * watches a closed (and maybe reused) descriptor. */
static void
link_close (EsPgNotifier *self)
{
  clear_source (&self->socket_source);
  clear_source (&self->link_timer);
  g_clear_pointer (&self->conn, PQfinish);
  self->link = LINK_DOWN;
}

/* The connection broke or could not be made: try again after a while. */
static void
link_lost (EsPgNotifier *self,
           const char   *what)
{
  g_autofree char *reason = NULL;

  if (self->conn != NULL)
    reason = g_strchomp (g_strdup (PQerrorMessage (self->conn)));
  g_debug ("PostgreSQL notifier: %s (%s); retrying in %u ms", what,
           reason != NULL && *reason != '\0' ? reason : "no reason given",
           self->link_backoff_ms);

  g_free (self->last_failure);
  if (reason != NULL && *reason != '\0')
    self->last_failure = g_strdup_printf ("%s: %s", what, reason);
  else
    self->last_failure = g_strdup (what);
  failing (self);

  link_close (self);
  self->link_timer = add_timer (self, self->link_backoff_ms, reconnect_cb,
                                "[es-glib] pg notifier reconnect");
  self->link_backoff_ms = MIN (self->link_backoff_ms * 2, BACKOFF_MAX_MS);
}

/* LISTEN is in effect: catch up with what was committed meanwhile. */
static void
link_up (EsPgNotifier *self)
{
  PGnotify *notify;

  clear_source (&self->link_timer);
  self->link = LINK_UP;
  self->link_backoff_ms = BACKOFF_INITIAL_MS;
  g_atomic_int_inc (&self->n_connects);

  /* Commits made while we were away were not notified to us: the cursor
   * moves by reading, not by hints, until the next notification. */
  self->notified_up_to = 0;
  while ((notify = PQnotifies (self->conn)) != NULL)
    PQfreemem (notify);

  g_debug ("PostgreSQL notifier: listening again, catching up");
  check (self);
}

static void
link_continue_connecting (EsPgNotifier *self)
{
  PostgresPollingStatusType status = PQconnectPoll (self->conn);

  switch (status)
    {
    case PGRES_POLLING_READING:
      if (!link_watch_socket (self, G_IO_IN))
        link_lost (self, "connecting failed");
      break;

    case PGRES_POLLING_WRITING:
      if (!link_watch_socket (self, G_IO_OUT))
        link_lost (self, "connecting failed");
      break;

    case PGRES_POLLING_OK:
      if (PQsendQuery (self->conn, self->listen_sql) != 1 ||
          !link_watch_socket (self, G_IO_IN))
        {
          link_lost (self, "sending LISTEN failed");
          break;
        }
      self->link = LINK_LISTENING;
      break;

    case PGRES_POLLING_FAILED:
    case PGRES_POLLING_ACTIVE:
    default:
      link_lost (self, "connecting failed");
      break;
    }
}

static void
link_continue_listening (EsPgNotifier *self)
{
  if (PQconsumeInput (self->conn) != 1)
    {
      link_lost (self, "LISTEN failed");
      return;
    }

  /* PQgetResult() blocks while PQisBusy(): only take what is there. */
  while (!PQisBusy (self->conn))
    {
      PGresult *result = PQgetResult (self->conn);
      gboolean ok;

      if (result == NULL)
        {
          link_up (self);
          return;
        }

      ok = PQresultStatus (result) == PGRES_COMMAND_OK;
      if (!ok)
        g_debug ("PostgreSQL notifier: LISTEN failed: %s", PQresultErrorMessage (result));
      PQclear (result);
      if (!ok)
        {
          link_lost (self, "LISTEN failed");
          return;
        }
    }
}

static void
link_read_notifications (EsPgNotifier *self,
                         GIOCondition  condition)
{
  gboolean notified = FALSE;
  PGnotify *notify;

  if (PQconsumeInput (self->conn) != 1)
    {
      link_lost (self, "connection lost");
      return;
    }

  /* Several notifications, one read: the payload (the commit's last
   * sequence id) is only a hint, used when nobody subscribed. */
  while ((notify = PQnotifies (self->conn)) != NULL)
    {
      gint64 last = 0;

      notified = TRUE;
      if (notify->extra != NULL &&
          g_ascii_string_to_signed (notify->extra, 10, 1, G_MAXINT64, &last, NULL))
        self->notified_up_to = MAX (self->notified_up_to, last);
      PQfreemem (notify);
    }

  if ((condition & (G_IO_HUP | G_IO_ERR)) != 0 || PQstatus (self->conn) != CONNECTION_OK)
    {
      /* Catching up after reconnecting delivers what was notified. */
      link_lost (self, "connection lost");
      return;
    }

  if (notified)
    check (self);
}

static gboolean
socket_cb (gint         fd,
           GIOCondition condition,
           gpointer     user_data)
{
  EsPgNotifier *self = user_data;

  switch (self->link)
    {
    case LINK_CONNECTING:
      link_continue_connecting (self);
      break;
    case LINK_LISTENING:
      link_continue_listening (self);
      break;
    case LINK_UP:
      link_read_notifications (self, condition);
      break;
    case LINK_DOWN:
    default:
      break;
    }

  /* The source may have been replaced or destroyed meanwhile; returning
   * CONTINUE for a destroyed source is harmless. */
  return G_SOURCE_CONTINUE;
}

static gboolean
connect_timeout_cb (gpointer user_data)
{
  EsPgNotifier *self = user_data;

  /* link_lost() replaces the timer, which is this source. */
  g_clear_pointer (&self->link_timer, g_source_unref);
  link_lost (self, "connecting took too long");
  return G_SOURCE_REMOVE;
}

static gboolean
reconnect_cb (gpointer user_data)
{
  EsPgNotifier *self = user_data;

  g_clear_pointer (&self->link_timer, g_source_unref);

  /* Non-blocking, so that stop() never waits for an absent server. */
  self->conn = PQconnectStart (self->conninfo);
  if (self->conn == NULL || PQstatus (self->conn) == CONNECTION_BAD)
    {
      link_lost (self, "connecting failed");
      return G_SOURCE_REMOVE;
    }

  self->link = LINK_CONNECTING;
  self->link_timer = g_timeout_source_new_seconds (CONNECT_ATTEMPT_TIMEOUT_S);
  g_source_set_callback (self->link_timer, connect_timeout_cb, self, NULL);
  g_source_set_static_name (self->link_timer, "[es-glib] pg notifier connect timeout");
  g_source_attach (self->link_timer, self->context);

  /* As libpq documents: start as if PQconnectPoll() asked to write. */
  if (!link_watch_socket (self, G_IO_OUT))
    link_lost (self, "connecting failed");
  return G_SOURCE_REMOVE;
}

/* The server stayed away (or reads failed) for give-up-timeout ms: every
 * subscription ends with the reason, and the thread ends. */
static gboolean
give_up_cb (gpointer user_data)
{
  EsPgNotifier *self = user_data;
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&self->give_up_timer, g_source_unref);

  error = g_error_new (ES_ERROR, ES_ERROR_STORAGE,
                       /* Translators: %u is milliseconds, %s libpq's (English) reason */
                       _("Lost the PostgreSQL server: watching for new events failed for "
                         "%u ms, giving up: %s"),
                       self->give_up_timeout,
                       self->last_failure != NULL ? self->last_failure : "unknown reason");
  g_debug ("PostgreSQL notifier: %s", error->message);

  g_mutex_lock (&self->state_lock);
  if (self->error == NULL && !self->stopped)
    self->error = g_steal_pointer (&error);
  g_mutex_unlock (&self->state_lock);

  link_close (self);
  clear_source (&self->retry_timer);
  g_main_loop_quit (self->loop);
  _es_subscribers_close (&self->subs);
  return G_SOURCE_REMOVE;
}

static gpointer
notifier_thread (gpointer data)
{
  EsPgNotifier *self = data;

  g_main_context_push_thread_default (self->context);

  /* start() connected and listened; notifications that arrived since
   * wait in the socket. */
  self->link = LINK_UP;
  if (!link_watch_socket (self, G_IO_IN))
    link_lost (self, "connection lost");

  g_main_loop_run (self->loop);

  link_close (self);
  clear_source (&self->retry_timer);
  clear_source (&self->give_up_timer);
  /* Run sources still queued (a last check) before the context goes;
   * a check that failed may have set a retry timer again. */
  while (g_main_context_iteration (self->context, FALSE))
    ;
  clear_source (&self->retry_timer);
  clear_source (&self->give_up_timer);
  g_main_context_pop_thread_default (self->context);

  return NULL;
}

static gboolean
es_pg_notifier_start (EsNotifier    *notifier,
                      GCancellable  *cancellable,
                      GError       **error)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);
  const char *channel = _es_pg_storage_get_channel (self->storage);
  PGconn *conn = NULL;
  PGresult *result = NULL;
  char *quoted;
  gint64 cursor = 0;
  gboolean ok = FALSE;

  g_mutex_lock (&self->state_lock);

  if (self->stopped)
    {
      g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED,
                           _("The notifier was stopped and cannot start again"));
      goto out;
    }
  if (self->started)
    {
      ok = TRUE;
      goto out;
    }

  conn = _es_pg_connect (_es_pg_storage_get_conninfo (self->storage), cancellable, error);
  if (conn == NULL)
    goto out;

  quoted = PQescapeIdentifier (conn, channel, strlen (channel));
  if (quoted == NULL)
    {
      _es_pg_set_error (error, conn, NULL, _("Cannot listen for new events"));
      goto out;
    }
  g_free (self->listen_sql);
  self->listen_sql = g_strconcat ("LISTEN ", quoted, NULL);
  PQfreemem (quoted);

  /* LISTEN before reading the cursor: a commit either precedes the read
   * (and the cursor covers it) or is notified. */
  result = PQexec (conn, self->listen_sql);
  if (PQresultStatus (result) != PGRES_COMMAND_OK)
    {
      g_autofree char *context = NULL;

      /* Translators: %s is the name of a PostgreSQL notification channel */
      context = g_strdup_printf (_("Cannot listen for new events on channel '%s'"), channel);
      _es_pg_set_error (error, conn, result, context);
      goto out;
    }

  if (!es_storage_handle_get_version (ES_STORAGE_HANDLE (self->storage), NULL, &cursor,
                                      cancellable, error))
    goto out;

  _es_subscribers_set_cursor (&self->subs, cursor);

  g_free (self->conninfo);
  self->conninfo = g_strdup (_es_pg_storage_get_conninfo (self->storage));
  self->conn = g_steal_pointer (&conn);
  self->link_backoff_ms = BACKOFF_INITIAL_MS;
  self->retry_backoff_ms = BACKOFF_INITIAL_MS;
  g_atomic_int_set (&self->n_connects, 1);

  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  self->thread = g_thread_new ("es-pg-notifier", notifier_thread, self);
  self->started = TRUE;
  ok = TRUE;

out:
  g_clear_pointer (&result, PQclear);
  g_clear_pointer (&conn, PQfinish);
  g_mutex_unlock (&self->state_lock);
  return ok;
}

static void
es_pg_notifier_stop (EsNotifier *notifier)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);
  GThread *thread = NULL;

  g_mutex_lock (&self->state_lock);
  if (!self->stopped)
    {
      self->stopped = TRUE;
      thread = g_steal_pointer (&self->thread);
    }
  g_mutex_unlock (&self->state_lock);

  if (thread != NULL)
    {
      /* A read in progress (waiting for a pooled connection, say) ends. */
      g_cancellable_cancel (self->cancellable);

      /* The thread closes the connection before it ends. */
      _es_notifier_thread_stop (thread, self->context, self->loop);
    }

  /* Every subscription ends: watches learn it through their destroy
   * notify and stop. */
  _es_subscribers_remove_all (&self->subs);
}

static guint
es_pg_notifier_subscribe (EsNotifier     *notifier,
                          EsNotifierFunc  func,
                          gpointer        user_data,
                          GDestroyNotify  destroy)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);

  return _es_subscribers_add (&self->subs, func, user_data, destroy);
}

static void
es_pg_notifier_unsubscribe (EsNotifier *notifier,
                            guint       subscription_id)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);

  _es_subscribers_remove (&self->subs, subscription_id);
}

static gint64
es_pg_notifier_get_last_sequence_id (EsNotifier *notifier)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);

  return _es_subscribers_get_cursor (&self->subs);
}

static void
es_pg_notifier_committed (EsNotifier *notifier)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);
  gboolean running;

  g_mutex_lock (&self->state_lock);
  running = self->started && !self->stopped && self->error == NULL;
  g_mutex_unlock (&self->state_lock);

  /* With nobody subscribed there is nobody to wake: the commit's own
   * notification moves the cursor a moment later, and a subscriber
   * arriving before that only gets events it also reads from the
   * history, which watches drop. */
  running = running && _es_subscribers_any (&self->subs);

  if (running)
    schedule_check (self);
}

static const GError *
es_pg_notifier_get_error (EsNotifier *notifier)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);
  const GError *error;

  /* Set once, freed only with the notifier. */
  g_mutex_lock (&self->state_lock);
  error = self->error;
  g_mutex_unlock (&self->state_lock);
  return error;
}

static void
notifier_iface_init (EsNotifierInterface *iface)
{
  iface->start = es_pg_notifier_start;
  iface->stop = es_pg_notifier_stop;
  iface->subscribe = es_pg_notifier_subscribe;
  iface->unsubscribe = es_pg_notifier_unsubscribe;
  iface->get_last_sequence_id = es_pg_notifier_get_last_sequence_id;
  iface->committed = es_pg_notifier_committed;
  iface->get_error = es_pg_notifier_get_error;
}

guint
_es_pg_notifier_get_n_connects (EsPgNotifier *self)
{
  return (guint) g_atomic_int_get (&self->n_connects);
}

guint
_es_pg_notifier_get_n_reads (EsPgNotifier *self)
{
  return (guint) g_atomic_int_get (&self->n_reads);
}

static void
es_pg_notifier_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (object);

  switch (prop_id)
    {
    case PROP_STORAGE:
      g_value_set_object (value, self->storage);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      g_value_set_uint (value, self->give_up_timeout);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_notifier_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (object);

  switch (prop_id)
    {
    case PROP_STORAGE:
      self->storage = g_value_dup_object (value);
      break;
    case PROP_GIVE_UP_TIMEOUT:
      self->give_up_timeout = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_pg_notifier_constructed (GObject *object)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (object);

  G_OBJECT_CLASS (es_pg_notifier_parent_class)->constructed (object);

  g_return_if_fail (ES_IS_PG_STORAGE (self->storage));
}

static void
es_pg_notifier_dispose (GObject *object)
{
  es_pg_notifier_stop (ES_NOTIFIER (object));

  G_OBJECT_CLASS (es_pg_notifier_parent_class)->dispose (object);
}

static void
es_pg_notifier_finalize (GObject *object)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (object);

  _es_subscribers_clear (&self->subs);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->conn, PQfinish);
  g_free (self->conninfo);
  g_free (self->listen_sql);
  g_free (self->last_failure);
  g_clear_error (&self->error);
  g_clear_object (&self->storage);
  g_mutex_clear (&self->state_lock);

  G_OBJECT_CLASS (es_pg_notifier_parent_class)->finalize (object);
}

static void
es_pg_notifier_class_init (EsPgNotifierClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  _es_i18n_init ();

  object_class->get_property = es_pg_notifier_get_property;
  object_class->set_property = es_pg_notifier_set_property;
  object_class->constructed = es_pg_notifier_constructed;
  object_class->dispose = es_pg_notifier_dispose;
  object_class->finalize = es_pg_notifier_finalize;

  /**
   * EsPgNotifier:storage:
   *
   * The storage whose database the notifier listens to, and through which
   * it reads new events. The notifier opens its own connection with the
   * storage's connection string and listens on the storage's channel.
   *
   * Since: 0.1
   */
  properties[PROP_STORAGE] =
    g_param_spec_object ("storage", NULL, NULL, ES_TYPE_PG_STORAGE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * EsPgNotifier:give-up-timeout:
   *
   * How long, in milliseconds, the notifier keeps trying to reconnect to
   * the server (or to read the new events) before it gives up and every
   * watch fails with %ES_ERROR_STORAGE; 0 never gives up. The time counts
   * from the first failure; one successful reconnection and read starts
   * it over.
   *
   * Since: 0.2
   */
  properties[PROP_GIVE_UP_TIMEOUT] =
    g_param_spec_uint ("give-up-timeout", NULL, NULL, 0, G_MAXINT, DEFAULT_GIVE_UP_TIMEOUT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_pg_notifier_init (EsPgNotifier *self)
{
  g_mutex_init (&self->state_lock);
  _es_subscribers_init (&self->subs);
  self->cancellable = g_cancellable_new ();
  self->link = LINK_DOWN;
  self->link_backoff_ms = BACKOFF_INITIAL_MS;
  self->retry_backoff_ms = BACKOFF_INITIAL_MS;
  self->give_up_timeout = DEFAULT_GIVE_UP_TIMEOUT;
}

/**
 * es_pg_notifier_new:
 * @storage: the storage whose database to listen to
 *
 * Creates a notifier for @storage's database. Start it with
 * [method@Es.Notifier.start], which connects, runs `LISTEN` and fails
 * with %ES_ERROR_STORAGE, carrying the server's reason, when it cannot.
 *
 * Returns: (transfer full): a new notifier
 *
 * Since: 0.1
 */
EsPgNotifier *
es_pg_notifier_new (EsPgStorage *storage)
{
  g_return_val_if_fail (ES_IS_PG_STORAGE (storage), NULL);

  return g_object_new (ES_TYPE_PG_NOTIFIER,
                       "storage", storage,
                       NULL);
}
