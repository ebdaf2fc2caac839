/* es-pg-notifier.c: tells watches about commits to a PostgreSQL database.
 *
 * One notifier per storage, on its own thread with its own main context,
 * holding one dedicated connection (not from the storage's pool) that runs
 * `LISTEN <channel>`. Every committed append sends `NOTIFY <channel>`
 * right after its COMMIT, in the same pipeline, in a transaction of its
 * own (a NOTIFY inside the append's transaction would hold the server's
 * notification-queue lock through its commit and serialize all commits),
 * so the notification arrives once the events are committed. The connection's socket is watched by a GSource in the
 * notifier's context: when it turns readable, PQconsumeInput() and
 * PQnotifies() drain what arrived, and the new events are read once, in
 * pages after the cursor, through the storage, and handed to every
 * subscriber. The payload is only a hint: however many notifications
 * arrived, one read from the cursor serves them all.
 *
 * There is no polling: while the connection is healthy no timer runs and
 * nothing is read unless something was committed. Timers exist only while
 * something is wrong: the backoff between reconnection attempts (and the
 * time limit of one attempt), the backoff between retries of a read
 * that failed, and the backoff while committed events are held back
 * behind the horizon (below).
 *
 * Held back: readers of @all see only the rows of transactions below the
 * xmin of their snapshot (BELOW_HORIZON, es-pg-private.h; schema version
 * 4). A commit's events can be held back by an older transaction still
 * running. When that is an es-glib write, its own commit notifies, and
 * the read then finds both. When it is anything else (a long transaction,
 * in any database of the cluster, a prepared transaction), nothing would
 * wake the notifier: so when a read leaves the cursor below the largest
 * position notified, the notifier asks whether committed rows after the
 * cursor are held back, and if so looks again after 5 ms, doubling up to
 * 1 s, until they are delivered.
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
 * The [iface@Es.Notifier] of the PostgreSQL backend, an
 * [class@Es.StorageNotifier].
 * [class@EsPg.StreamFactory] creates and starts one per factory;
 * applications rarely meet it.
 *
 * ## How it works
 *
 * The notifier keeps one connection of its own to the server, apart from
 * the storage's pool, and runs `LISTEN` on the storage's channel. Every
 * append sends a `NOTIFY` on that channel right after its COMMIT,
 * whichever process or machine made it. The connection's
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
 * Like every reader of <code>@<!-- -->all</code>, the notifier sees only
 * the events of transactions older than the oldest transaction still
 * writing in the cluster: an event committed while an older transaction
 * runs is delivered when that one ends. Its commit usually notifies (it
 * is another append); when a read finds events held back, the notifier
 * also looks again by itself, after 5 ms, doubling up to once a second,
 * until they are delivered (see the
 * [PostgreSQL scaling guide](postgres-scaling.html)).
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
 * [property@Es.StorageNotifier:give-up-timeout] milliseconds (60 s by default)
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
/* Looking again for events held back by the horizon: from the first
 * delay, doubling up to the last. */
#define HELD_BACKOFF_INITIAL_MS 5
#define HELD_BACKOFF_MAX_MS 1000

typedef enum
{
  LINK_DOWN,        /* no connection; a backoff timer brings it back */
  LINK_CONNECTING,  /* PQconnectPoll() in progress */
  LINK_LISTENING,   /* LISTEN sent, its result not yet in */
  LINK_UP,          /* listening: notifications wake the notifier */
} LinkState;

struct _EsPgNotifier
{
  EsStorageNotifier parent_instance;

  /* Set by prepare (in start()), then used only on the notifier's thread. */
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
  GSource      *held_timer;       /* (owned) (nullable) looks again for held-back rows */
  guint         held_backoff_ms;  /* delay before the next look */
  gint64        held_cursor;      /* the cursor when the last look was planned */
  gboolean      listening;        /* someone subscribed (listening_changed) */
  gint          n_connects;       /* (atomic) */
};

G_DEFINE_FINAL_TYPE (EsPgNotifier, es_pg_notifier, ES_TYPE_STORAGE_NOTIFIER)

static EsPgStorage *
get_storage (EsPgNotifier *self)
{
  return ES_PG_STORAGE (es_storage_notifier_get_storage (ES_STORAGE_NOTIFIER (self)));
}

static GMainContext *
get_context (EsPgNotifier *self)
{
  return es_storage_notifier_get_context (ES_STORAGE_NOTIFIER (self));
}

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
  g_source_attach (source, get_context (self));
  return source;
}

static gboolean retry_cb (gpointer user_data);
static gboolean held_cb (gpointer user_data);

/* After a successful read: when a notification named a position beyond
 * the cursor, something may be held back behind the horizon (see the top
 * of this file); if so, look again later, backing off. A position with no
 * row (a soft delete's) is not held back and sets no timer. While a look
 * is already planned, nothing is asked: under a steady load of writers,
 * where commits are often held back for a moment by the ones before
 * them, that keeps it to one question per timer, and the delay starts
 * again from the shortest whenever rows came out since the last look. */
static void
check_held_back (EsPgNotifier *self)
{
  gint64 cursor = es_notifier_get_last_sequence_id (ES_NOTIFIER (self));
  gboolean held = FALSE;

  if (self->notified_up_to <= cursor)
    {
      clear_source (&self->held_timer);
      self->held_backoff_ms = HELD_BACKOFF_INITIAL_MS;
      return;
    }
  if (self->held_timer != NULL)
    return;

  if (!_es_pg_storage_held_back (get_storage (self), cursor, &held, NULL, NULL))
    held = TRUE;  /* could not tell: look again */
  /* Rows came out since the last planned look: the horizon moves (a
   * steady load of writers, each holding the next ones back for a
   * moment), so look again soon; the delay grows only while nothing
   * comes out (a long transaction). */
  if (!held || cursor > self->held_cursor)
    self->held_backoff_ms = HELD_BACKOFF_INITIAL_MS;
  if (!held)
    return;
  self->held_cursor = cursor;
  self->held_timer = add_timer (self, self->held_backoff_ms, held_cb,
                                "[es-glib] pg notifier held back");
  self->held_backoff_ms = MIN (self->held_backoff_ms * 2, HELD_BACKOFF_MAX_MS);
}

/* Delivers; when the read fails, tries again later with backoff (the
 * server may be restarting: its notification will not come again). */
static void
check (EsPgNotifier *self)
{
  g_autoptr(GError) error = NULL;

  /* Nobody listens: nothing to deliver, and no query. Every process that
   * appends also listens, so reading on each notification without a
   * watch would make each commit cost a query in every process (the
   * base reads where the store ends when a watch subscribes, and
   * listening_changed() looks then). */
  if (!self->listening)
    return;

  if (es_storage_notifier_deliver (ES_STORAGE_NOTIFIER (self), &error))
    {
      clear_source (&self->retry_timer);
      self->retry_backoff_ms = BACKOFF_INITIAL_MS;
      /* The link is up and a read succeeded: nothing fails any more. */
      if (self->link == LINK_UP)
        es_storage_notifier_report_success (ES_STORAGE_NOTIFIER (self));
      check_held_back (self);
    }
  else
    {
      es_storage_notifier_report_failure (ES_STORAGE_NOTIFIER (self), error->message);
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
held_cb (gpointer user_data)
{
  EsPgNotifier *self = user_data;

  g_clear_pointer (&self->held_timer, g_source_unref);
  check (self);
  return G_SOURCE_REMOVE;
}

/* The first subscriber arrived (look at once: the link may have been up,
 * with notifications left unread, since the last one left) or the last
 * one left (no more looks, nor their timers). */
static void
es_pg_notifier_listening_changed (EsStorageNotifier *notifier,
                                  gboolean           listening)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);

  self->listening = listening;
  if (listening)
    {
      if (self->link == LINK_UP)
        check (self);
    }
  else
    {
      clear_source (&self->held_timer);
      self->held_backoff_ms = HELD_BACKOFF_INITIAL_MS;
    }
}

/* After es_notifier_committed(): look now, without waiting for the
 * notification's round trip. */
static void
es_pg_notifier_check (EsStorageNotifier *notifier)
{
  check (ES_PG_NOTIFIER (notifier));
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
  g_source_attach (self->socket_source, get_context (self));
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

  if (reason != NULL && *reason != '\0')
    {
      g_autofree char *failure = g_strdup_printf ("%s: %s", what, reason);

      es_storage_notifier_report_failure (ES_STORAGE_NOTIFIER (self), failure);
    }
  else
    es_storage_notifier_report_failure (ES_STORAGE_NOTIFIER (self), what);

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
   * sequence id) is only a hint, telling whether something may be held
   * back (check_held_back()). Commits of different streams end in any
   * order, so it is not where the cursor may go. */
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
  g_source_attach (self->link_timer, get_context (self));

  /* As libpq documents: start as if PQconnectPoll() asked to write. */
  if (!link_watch_socket (self, G_IO_OUT))
    link_lost (self, "connecting failed");
  return G_SOURCE_REMOVE;
}

static GError *
es_pg_notifier_give_up_error (EsStorageNotifier *notifier,
                              const char        *reason)
{
  return g_error_new (ES_ERROR, ES_ERROR_STORAGE,
                      /* Translators: %u is milliseconds, %s libpq's (English) reason */
                      _("Lost the PostgreSQL server: watching for new events failed for "
                        "%u ms, giving up: %s"),
                      es_storage_notifier_get_give_up_timeout (notifier), reason);
}

/* On the notifier's thread: start() connected and listened; notifications
 * that arrived since wait in the socket. */
static void
es_pg_notifier_attach (EsStorageNotifier *notifier,
                       GMainContext      *context)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);

  self->link = LINK_UP;
  if (!link_watch_socket (self, G_IO_IN))
    link_lost (self, "connection lost");
}

/* On the notifier's thread as it stops (after the queued sources ran,
 * which may have set a retry timer again), or on the caller's when
 * start() failed after prepare. */
static void
es_pg_notifier_detach (EsStorageNotifier *notifier)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);

  link_close (self);
  clear_source (&self->retry_timer);
  clear_source (&self->held_timer);
}

/* Connects and listens, on the caller's thread, before the base class
 * reads the cursor: a commit either precedes that read (and the cursor
 * covers it) or is notified. */
static gboolean
es_pg_notifier_prepare (EsStorageNotifier  *notifier,
                        GCancellable       *cancellable,
                        GError            **error)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (notifier);
  EsPgStorage *storage = get_storage (self);
  const char *channel = _es_pg_storage_get_channel (storage);
  PGconn *conn = NULL;
  PGresult *result = NULL;
  char *quoted;
  gboolean ok = FALSE;

  conn = _es_pg_connect (_es_pg_storage_get_conninfo (storage), cancellable, error);
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

  result = PQexec (conn, self->listen_sql);
  if (PQresultStatus (result) != PGRES_COMMAND_OK)
    {
      g_autofree char *context = NULL;

      /* Translators: %s is the name of a PostgreSQL notification channel */
      context = g_strdup_printf (_("Cannot listen for new events on channel '%s'"), channel);
      _es_pg_set_error (error, conn, result, context);
      goto out;
    }

  g_free (self->conninfo);
  self->conninfo = g_strdup (_es_pg_storage_get_conninfo (storage));
  self->conn = g_steal_pointer (&conn);
  self->link_backoff_ms = BACKOFF_INITIAL_MS;
  self->retry_backoff_ms = BACKOFF_INITIAL_MS;
  self->held_backoff_ms = HELD_BACKOFF_INITIAL_MS;
  g_atomic_int_set (&self->n_connects, 1);
  ok = TRUE;

out:
  g_clear_pointer (&result, PQclear);
  g_clear_pointer (&conn, PQfinish);
  return ok;
}

guint
_es_pg_notifier_get_n_connects (EsPgNotifier *self)
{
  return (guint) g_atomic_int_get (&self->n_connects);
}

guint
_es_pg_notifier_get_n_reads (EsPgNotifier *self)
{
  return _es_storage_notifier_get_n_reads (ES_STORAGE_NOTIFIER (self));
}

static void
es_pg_notifier_constructed (GObject *object)
{
  G_OBJECT_CLASS (es_pg_notifier_parent_class)->constructed (object);

  g_return_if_fail (ES_IS_PG_STORAGE (es_storage_notifier_get_storage (ES_STORAGE_NOTIFIER (object))));
}

static void
es_pg_notifier_finalize (GObject *object)
{
  EsPgNotifier *self = ES_PG_NOTIFIER (object);

  g_clear_pointer (&self->conn, PQfinish);
  g_free (self->conninfo);
  g_free (self->listen_sql);

  G_OBJECT_CLASS (es_pg_notifier_parent_class)->finalize (object);
}

static void
es_pg_notifier_class_init (EsPgNotifierClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  EsStorageNotifierClass *notifier_class = ES_STORAGE_NOTIFIER_CLASS (klass);

  _es_i18n_init ();

  object_class->constructed = es_pg_notifier_constructed;
  object_class->finalize = es_pg_notifier_finalize;

  notifier_class->prepare = es_pg_notifier_prepare;
  notifier_class->attach = es_pg_notifier_attach;
  notifier_class->detach = es_pg_notifier_detach;
  notifier_class->check = es_pg_notifier_check;
  notifier_class->listening_changed = es_pg_notifier_listening_changed;
  notifier_class->give_up_error = es_pg_notifier_give_up_error;
}

static void
es_pg_notifier_init (EsPgNotifier *self)
{
  self->link = LINK_DOWN;
  self->link_backoff_ms = BACKOFF_INITIAL_MS;
  self->retry_backoff_ms = BACKOFF_INITIAL_MS;
  self->held_backoff_ms = HELD_BACKOFF_INITIAL_MS;
  _es_storage_notifier_set_default_give_up_timeout (ES_STORAGE_NOTIFIER (self),
                                                    DEFAULT_GIVE_UP_TIMEOUT);
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
