/* es-pg-subscription.c: durable subscriptions on PostgreSQL.
 *
 * Stored subscriptions (the subscriptions table of schema version 3:
 * es-pg-schema.c) are read and written on the pool's connections, except
 * the checkpoints of a subscription this storage holds, which are saved
 * on the connection that holds it.
 *
 * Holding: a session advisory lock on the two-int key (ES_PG_LOCK_CLASS,
 * hashtext ('<schema>.<name>')) taken on a connection opened for that
 * subscription alone and kept until it is released: the server releases
 * the lock when the session ends, so a holder that dies (its process
 * killed, its machine gone: TCP keepalives, below) loses it without any
 * heartbeat. Two-int keys are a key space of their own (objsubid 2 in
 * pg_locks): they never meet the one-bigint keys of the stream and schema
 * locks. Waiting is a blocking pg_advisory_lock() on that connection,
 * which the server wakes as soon as the lock is free; a cancellable that
 * fires sends the server a cancel request (PQcancel) that ends the wait.
 *
 * In-process registry: the names this storage holds or is waiting for. A
 * second acquisition of one of them through this storage fails with
 * ES_ERROR_BUSY at once (it could only wait for itself); reset and delete
 * of one of them too.
 *
 * A holder that lost its session (an administrator's
 * pg_terminate_backend(), a server restart, a broken link) is told at its
 * next save: the save runs in the session that holds the lock, so it can
 * only commit while the lock is held; on a session that ended it fails
 * with ES_ERROR_STORAGE and stores nothing, as do the holder's later
 * saves. The lock connection is never reconnected behind its holder's
 * back.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-pg-private.h"

/* The first half of every subscription lock key: "esgl" in ASCII. The
 * schema's functions use it too (es-pg-schema.c, version 3). */
#define ES_PG_LOCK_CLASS "1702061932"

/* The settings of a lock connection. TCP keepalives (libpq's side: the
 * holder learns that the server is gone) unless the connection string
 * sets them; ... */
static const char * const lock_connection_defaults[] = {
  "keepalives", "1",
  "keepalives_idle", "10",
  "keepalives_interval", "5",
  "keepalives_count", "3",
  NULL,
};

/* ... and the server's side, for the session (user-settable): the server
 * ends the session of a holder whose machine stopped answering within
 * 10 + 5 × 3 = 25 s, which releases its lock. No timeout of the server's
 * configuration may end a wait, or an idle holder's session. */
#define SESSION_SETTINGS_SQL \
  "SELECT pg_catalog.set_config('tcp_keepalives_idle', '10', false)," \
  " pg_catalog.set_config('tcp_keepalives_interval', '5', false)," \
  " pg_catalog.set_config('tcp_keepalives_count', '3', false)," \
  " pg_catalog.set_config('statement_timeout', '0', false)," \
  " pg_catalog.set_config('lock_timeout', '0', false)," \
  " pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false)"
/* PostgreSQL 14 and later. */
#define IDLE_SESSION_SQL \
  "SELECT pg_catalog.set_config('idle_session_timeout', '0', false)"

#define LOCK_SQL \
  "SELECT pg_catalog.pg_advisory_lock(" ES_PG_LOCK_CLASS ", pg_catalog.hashtext($1::text))"
#define TRY_LOCK_SQL \
  "SELECT pg_catalog.pg_try_advisory_lock(" ES_PG_LOCK_CLASS ", pg_catalog.hashtext($1::text))"
#define UNLOCK_SQL \
  "SELECT pg_catalog.pg_advisory_unlock(" ES_PG_LOCK_CLASS ", pg_catalog.hashtext($1::text))"

/* A subscription this storage holds, or is acquiring. */
typedef struct
{
  char           *name;       /* (owned) */
  GCancellable   *stop;       /* (owned) ends the wait of its acquisition */
  GMutex          mutex;      /* serialises the use of @c */
  EsPgConnection *c;          /* (owned) (nullable) the lock's session, once held */
  gboolean        held;       /* acquired; under the storage's subs_mutex */
  gboolean        lost;       /* its session ended; under @mutex */
} Hold;

static void
hold_free (gpointer data)
{
  Hold *hold = data;

  g_free (hold->name);
  g_clear_object (&hold->stop);
  g_mutex_clear (&hold->mutex);
  g_clear_pointer (&hold->c, _es_pg_connection_close);
}

static Hold *
hold_ref (Hold *hold)
{
  return g_atomic_rc_box_acquire (hold);
}

static void
hold_unref (gpointer hold)
{
  g_atomic_rc_box_release_full (hold, hold_free);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Hold, hold_unref)

static Hold *
hold_new (const char *name)
{
  Hold *hold = g_atomic_rc_box_new0 (Hold);

  hold->name = g_strdup (name);
  hold->stop = g_cancellable_new ();
  g_mutex_init (&hold->mutex);
  return hold;
}

/* The text whose hash is the second half of the lock key of @name. */
static char *
lock_key (EsPgStorage *self,
          const char  *name)
{
  return g_strconcat (self->schema, ".", name, NULL);
}

void
_es_pg_subscriptions_init (EsPgStorage *self)
{
  g_mutex_init (&self->subs_mutex);
  self->holds = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, hold_unref);
}

/* Unlocks and closes the lock connection of a held subscription: the
 * unlock's answer means the lock is free (closing alone would free it only
 * once the server's process of the session has exited, a moment later),
 * and closing ends the session. */
static void
hold_let_go (EsPgStorage *self,
             Hold        *hold)
{
  g_mutex_lock (&hold->mutex);
  if (hold->c != NULL && !hold->lost && _es_pg_connection_is_alive (hold->c))
    {
      g_autofree char *key = lock_key (self, hold->name);
      const char *values[] = { key };
      EsPgStatement unlock = { UNLOCK_SQL, 1, values, NULL, NULL, FALSE };
      g_autoptr(GError) error = NULL;

      hold->c->cancel_sent = FALSE;
      PQclear (_es_pg_connection_run_one (hold->c, &unlock, NULL, "", &error));
    }
  g_clear_pointer (&hold->c, _es_pg_connection_close);
  g_mutex_unlock (&hold->mutex);
}

/* Storage closed: every subscription held is released, every wait ends
 * (the acquisitions fail with ES_ERROR_CLOSED). Idempotent. */
void
_es_pg_subscriptions_shutdown (EsPgStorage *self)
{
  g_autoptr(GPtrArray) held = g_ptr_array_new_with_free_func (hold_unref);
  GHashTableIter iter;
  gpointer value;

  g_mutex_lock (&self->subs_mutex);
  self->subs_closed = TRUE;
  g_hash_table_iter_init (&iter, self->holds);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Hold *hold = value;

      if (hold->held)
        {
          g_ptr_array_add (held, hold_ref (hold));
          g_hash_table_iter_remove (&iter);
        }
      else
        g_cancellable_cancel (hold->stop);
    }
  g_mutex_unlock (&self->subs_mutex);

  for (guint i = 0; i < held->len; i++)
    hold_let_go (self, g_ptr_array_index (held, i));
}

void
_es_pg_subscriptions_clear (EsPgStorage *self)
{
  g_clear_pointer (&self->holds, g_hash_table_unref);
  g_mutex_clear (&self->subs_mutex);
}

/* ---------------------------------------------------------------------- *
 * Errors                                                                  *
 * ---------------------------------------------------------------------- */

static void
set_busy_here_error (GError     **error,
                     const char  *name)
{
  g_set_error (error, ES_ERROR, ES_ERROR_BUSY,
               /* Translators: %s is a subscription name */
               _("Subscription '%s' is already in use through this storage"), name);
}

static void
set_busy_elsewhere_error (GError     **error,
                          const char  *name)
{
  g_set_error (error, ES_ERROR, ES_ERROR_BUSY,
               /* Translators: %s is a subscription name */
               _("Subscription '%s' is held by another consumer"), name);
}

static void
set_lost_error (GError     **error,
                const char  *name,
                const char  *reason)
{
  g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
               /* Translators: the first %s is a subscription name, the
                * second PostgreSQL's (English) reason */
               _("Subscription '%s' is no longer held: the database session that held it "
                 "ended (%s)"), name, reason);
}

/* ---------------------------------------------------------------------- *
 * Acquiring and releasing                                                 *
 * ---------------------------------------------------------------------- */

static void
cancel_other (GCancellable *cancellable,
              gpointer      user_data)
{
  g_cancellable_cancel (G_CANCELLABLE (user_data));
}

/* Opens the lock connection of @hold and takes the lock, waiting or not.
 * The wait ends through hold->stop, which the caller's cancellable and
 * the storage's shutdown both fire. */
static EsPgConnection *
lock_connection_open (EsPgStorage   *self,
                      Hold          *hold,
                      gboolean       wait,
                      GError       **error)
{
  g_autofree char *key = lock_key (self, hold->name);
  const char *values[] = { key };
  const EsPgStatement settings = { SESSION_SETTINGS_SQL, 0, NULL, NULL, NULL, FALSE };
  const EsPgStatement idle = { IDLE_SESSION_SQL, 0, NULL, NULL, NULL, FALSE };
  const EsPgStatement lock = { wait ? LOCK_SQL : TRY_LOCK_SQL, 1, values, NULL, NULL, FALSE };
  const char *context = _("Acquiring a subscription");
  g_autoptr(EsPgConnection) c = NULL;
  PGresult *result;
  gboolean taken;

  c = _es_pg_connection_open (_es_pg_storage_get_conninfo (self), lock_connection_defaults,
                              hold->stop, error);
  if (c == NULL)
    return NULL;

  result = _es_pg_connection_run_one (c, &settings, hold->stop, context, error);
  if (result == NULL)
    return NULL;
  PQclear (result);
  if (PQserverVersion (c->conn) >= 140000)
    {
      result = _es_pg_connection_run_one (c, &idle, hold->stop, context, error);
      if (result == NULL)
        return NULL;
      PQclear (result);
    }

  result = _es_pg_connection_run_one (c, &lock, hold->stop, context, error);
  if (result == NULL)
    return NULL;
  taken = !wait ? g_str_equal (PQgetvalue (result, 0, 0), "t") : TRUE;
  PQclear (result);

  /* A cancel request that came as the lock was granted may still reach a
   * later statement of the session: this connection is not used, which
   * frees the lock; the caller asked to stop anyway. */
  if (c->cancel_sent)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _("Operation was cancelled"));
      return NULL;
    }
  if (!taken)
    {
      set_busy_elsewhere_error (error, hold->name);
      return NULL;
    }
  return g_steal_pointer (&c);
}

gboolean
_es_pg_storage_acquire_subscription (EsStorageHandle  *handle,
                                     const char       *name,
                                     gboolean          wait,
                                     GCancellable     *cancellable,
                                     GError          **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  g_autoptr(Hold) hold = NULL;
  g_autoptr(GError) local_error = NULL;
  EsPgConnection *c;
  gulong handler = 0;
  gboolean closed;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  g_mutex_lock (&self->subs_mutex);
  if (self->subs_closed)
    {
      g_mutex_unlock (&self->subs_mutex);
      g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
      return FALSE;
    }
  if (g_hash_table_contains (self->holds, name))
    {
      g_mutex_unlock (&self->subs_mutex);
      set_busy_here_error (error, name);
      return FALSE;
    }
  hold = hold_new (name);
  g_hash_table_insert (self->holds, hold->name, hold_ref (hold));
  g_mutex_unlock (&self->subs_mutex);

  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (cancel_other), hold->stop, NULL);
  c = lock_connection_open (self, hold, wait, &local_error);
  if (cancellable != NULL)
    g_cancellable_disconnect (cancellable, handler);

  g_mutex_lock (&self->subs_mutex);
  closed = self->subs_closed;
  if (c != NULL && !closed)
    {
      hold->c = c;
      hold->held = TRUE;
      g_mutex_unlock (&self->subs_mutex);
      return TRUE;
    }
  if (g_hash_table_lookup (self->holds, name) == hold)
    g_hash_table_remove (self->holds, name);
  g_mutex_unlock (&self->subs_mutex);

  /* Closing the connection frees the lock, if it was taken. */
  g_clear_pointer (&c, _es_pg_connection_close);
  if (closed)
    g_set_error_literal (error, ES_ERROR, ES_ERROR_CLOSED, _("The event store is closed"));
  else if (g_cancellable_is_cancelled (cancellable))
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _("Operation was cancelled"));
  else
    g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

void
_es_pg_storage_release_subscription (EsStorageHandle *handle,
                                     const char      *name)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  g_autoptr(Hold) hold = NULL;

  g_mutex_lock (&self->subs_mutex);
  hold = g_hash_table_lookup (self->holds, name);
  if (hold != NULL && hold->held)
    {
      hold_ref (hold);
      g_hash_table_remove (self->holds, name);
    }
  else
    hold = NULL;
  g_mutex_unlock (&self->subs_mutex);

  if (hold != NULL)
    hold_let_go (self, hold);
}

/* The hold of @name when this storage holds it, with a reference. */
static Hold *
lookup_held (EsPgStorage *self,
             const char  *name)
{
  Hold *hold;

  g_mutex_lock (&self->subs_mutex);
  hold = g_hash_table_lookup (self->holds, name);
  if (hold != NULL && hold->held)
    hold_ref (hold);
  else
    hold = NULL;
  g_mutex_unlock (&self->subs_mutex);
  return hold;
}

/* Whether this storage holds @name or waits for it. */
static gboolean
in_use_here (EsPgStorage *self,
             const char  *name)
{
  gboolean in_use;

  g_mutex_lock (&self->subs_mutex);
  in_use = g_hash_table_contains (self->holds, name);
  g_mutex_unlock (&self->subs_mutex);
  return in_use;
}

/* ---------------------------------------------------------------------- *
 * Saving a checkpoint                                                     *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char *values[6];
  int         lengths[6];
  const char *context;
  int         status;        /* out */
  char       *found_stream;  /* (owned) out */
  gint64      found_position;
} SaveOp;

/* One statement: one transaction, which commits or not. */
static gboolean
save_run (EsPgConnection  *c,
          SaveOp          *op,
          const char      *sql,
          GCancellable    *cancellable,
          GError         **error)
{
  static const int formats[] = { 0, 0, 0, 0, 1, 0 };
  const EsPgStatement save = { sql, 6, op->values, op->lengths, formats, FALSE };
  PGresult *result;

  result = _es_pg_connection_run_one (c, &save, cancellable, op->context, error);
  if (result == NULL)
    return FALSE;
  op->status = (int) g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  g_free (op->found_stream);
  op->found_stream = PQgetisnull (result, 0, 1) ? NULL : g_strdup (PQgetvalue (result, 0, 1));
  op->found_position = g_ascii_strtoll (PQgetvalue (result, 0, 2), NULL, 10);
  PQclear (result);
  return TRUE;
}

#define SAVE_TEMPLATE \
  "SELECT status, found_stream, found_position FROM {S}.save_checkpoint ($1::text, $2::text," \
  " $3::text, $4::int8, $5::bytea, $6::boolean)"

static gboolean
save_operation (EsPgStorage    *self,
                EsPgConnection *c,
                gpointer        data,
                gboolean       *retry,
                GCancellable   *cancellable,
                GError        **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self, SAVE_TEMPLATE);

  /* A single statement: on a connection that broke before its answer,
   * the outcome is unknown (it may have committed). */
  *retry = FALSE;
  return save_run (c, data, sql, cancellable, error);
}

/* Saves on the session that holds @hold's lock: it commits only while the
 * lock is held. */
static gboolean
save_held (EsPgStorage   *self,
           Hold          *hold,
           SaveOp        *op,
           gboolean      *out_released,
           GCancellable  *cancellable,
           GError       **error)
{
  g_autofree char *sql = _es_pg_schema_sql (self, SAVE_TEMPLATE);
  g_autoptr(GError) local_error = NULL;
  gboolean ok = FALSE;

  *out_released = FALSE;
  g_mutex_lock (&hold->mutex);
  if (hold->c == NULL)
    *out_released = TRUE;  /* released meanwhile */
  else if (hold->lost)
    g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                 /* Translators: %s is a subscription name */
                 _("Subscription '%s' is no longer held: an earlier save found that the "
                   "database session that held it had ended"), hold->name);
  else if (!_es_pg_connection_is_alive (hold->c))
    {
      g_autoptr(GError) reason = NULL;

      hold->lost = TRUE;
      _es_pg_set_error (&reason, hold->c->conn, NULL, op->context);
      set_lost_error (error, hold->name, reason->message);
    }
  else
    {
      hold->c->cancel_sent = FALSE;
      ok = save_run (hold->c, op, sql, cancellable, &local_error);
      if (!ok && (hold->c->lost || PQstatus (hold->c->conn) != CONNECTION_OK))
        {
          hold->lost = TRUE;
          set_lost_error (error, hold->name, local_error->message);
        }
      else if (!ok)
        g_propagate_error (error, g_steal_pointer (&local_error));
    }
  g_mutex_unlock (&hold->mutex);
  return ok;
}

gboolean
_es_pg_storage_save_checkpoint (EsStorageHandle  *handle,
                                const char       *name,
                                const char       *stream_id,
                                gint64            position,
                                GBytes           *state,
                                GCancellable     *cancellable,
                                GError          **error)
{
  EsPgStorage *self = ES_PG_STORAGE (handle);
  const char *stream = stream_id != NULL ? stream_id : ES_ALL_STREAM;
  g_autofree char *key = lock_key (self, name);
  g_autofree char *position_text = g_strdup_printf ("%" G_GINT64_FORMAT, position);
  g_autofree char *context = NULL;
  g_autoptr(Hold) hold = NULL;
  SaveOp op = { 0, };
  gboolean released = TRUE;
  gboolean ok = FALSE;
  gsize size = 0;
  const char *bytes = state != NULL ? g_bytes_get_data (state, &size) : NULL;

  /* Translators: %s is a subscription name */
  context = g_strdup_printf (_("Saving the checkpoint of subscription '%s'"), name);
  op.context = context;
  op.values[0] = name;
  op.values[1] = key;
  op.values[2] = stream;
  op.values[3] = position_text;
  op.values[4] = state != NULL ? (size > 0 ? bytes : "") : NULL;
  op.lengths[4] = (int) size;
  op.values[5] = state != NULL ? "true" : "false";

  if (size > G_MAXINT32)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a subscription name */
                   _("The state of subscription '%s' is too large for PostgreSQL"), name);
      return FALSE;
    }

  hold = lookup_held (self, name);
  if (hold != NULL)
    ok = save_held (self, hold, &op, &released, cancellable, error);
  if (released)
    ok = _es_pg_storage_run_operation (self, save_operation, &op, cancellable, error);
  if (!ok)
    {
      g_free (op.found_stream);
      return FALSE;
    }

  switch (op.status)
    {
    case 0:
      break;
    case 1:
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: the first %s is a subscription name, the
                    * others stream ids (@all for every stream) */
                   _("Subscription '%s' follows stream '%s', not '%s'"),
                   name, op.found_stream, stream);
      break;
    case 2:
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a subscription name, the numbers
                    * positions */
                   _("Checkpoint %lld of subscription '%s' is before its stored checkpoint "
                     "%lld: checkpoints never move back"),
                   (long long) position, name, (long long) op.found_position);
      break;
    case 3:
      set_busy_elsewhere_error (error, name);
      break;
    default:
      _es_pg_set_unexpected_status_error (error, op.status);
      break;
    }
  g_free (op.found_stream);
  return op.status == 0;
}

/* ---------------------------------------------------------------------- *
 * Reset and delete                                                        *
 * ---------------------------------------------------------------------- */

typedef struct
{
  const char *values[4];
  const char *context;
  int         status;      /* out */
  gint64      found_head;  /* out */
} ChangeOp;

static gboolean
change_operation (EsPgStorage    *self,
                  EsPgConnection *c,
                  gpointer        data,
                  gboolean       *retry,
                  GCancellable   *cancellable,
                  GError        **error)
{
  ChangeOp *op = data;
  g_autofree char *sql = _es_pg_schema_sql (
    self, "SELECT status, found_head FROM {S}.change_subscription ($1::text, $2::text,"
          " $3::int8, $4::boolean)");
  const EsPgStatement change = { sql, 4, op->values, NULL, NULL, FALSE };
  PGresult *result;

  *retry = FALSE;
  result = _es_pg_connection_run_one (c, &change, cancellable, op->context, error);
  if (result == NULL)
    return FALSE;
  op->status = (int) g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  op->found_head = g_ascii_strtoll (PQgetvalue (result, 0, 1), NULL, 10);
  PQclear (result);
  return TRUE;
}

static gboolean
change_subscription (EsPgStorage   *self,
                     const char    *name,
                     gint64         position,
                     gboolean       delete,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autofree char *key = lock_key (self, name);
  g_autofree char *position_text = g_strdup_printf ("%" G_GINT64_FORMAT, position);
  g_autofree char *context = NULL;
  ChangeOp op = { 0, };

  if (in_use_here (self, name))
    {
      set_busy_here_error (error, name);
      return FALSE;
    }

  context = delete ? g_strdup_printf (/* Translators: %s is a subscription name */
                                      _("Deleting subscription '%s'"), name)
                   : g_strdup_printf (/* Translators: %s is a subscription name */
                                      _("Resetting subscription '%s'"), name);
  op.context = context;
  op.values[0] = name;
  op.values[1] = key;
  op.values[2] = position_text;
  op.values[3] = delete ? "true" : "false";

  if (!_es_pg_storage_run_operation (self, change_operation, &op, cancellable, error))
    return FALSE;

  switch (op.status)
    {
    case 0:
      return TRUE;
    case 3:
      set_busy_elsewhere_error (error, name);
      return FALSE;
    case 4:
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND,
                   /* Translators: %s is a subscription name */
                   _("No subscription named '%s' is stored"), name);
      return FALSE;
    case 5:
      g_set_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT,
                   /* Translators: %s is a subscription name, the numbers
                    * positions */
                   _("Cannot reset subscription '%s' to position %lld: the head of its "
                     "stream is at %lld"),
                   name, (long long) position, (long long) op.found_head);
      return FALSE;
    default:
      _es_pg_set_unexpected_status_error (error, op.status);
      return FALSE;
    }
}

gboolean
_es_pg_storage_reset_subscription (EsStorageHandle  *handle,
                                   const char       *name,
                                   gint64            position,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  return change_subscription (ES_PG_STORAGE (handle), name, position, FALSE, cancellable, error);
}

gboolean
_es_pg_storage_delete_subscription (EsStorageHandle  *handle,
                                    const char       *name,
                                    GCancellable     *cancellable,
                                    GError          **error)
{
  return change_subscription (ES_PG_STORAGE (handle), name, 0, TRUE, cancellable, error);
}

/* ---------------------------------------------------------------------- *
 * Reading                                                                 *
 * ---------------------------------------------------------------------- */

/* name, stream, checkpoint, lag (never negative: a reset stream's head may
 * be behind), state, updated: in binary format. */
#define INFO_SELECT(state_column) \
  "SELECT s.name, s.stream_id, s.position," \
  " greatest (0, {S}.subscription_head (s.stream_id) - s.position)::int8," \
  " " state_column ", s.updated FROM {S}.subscriptions s"

static EsSubscriptionInfo *
info_from_row (const PGresult *result,
               int             row)
{
  g_autoptr(GBytes) state = NULL;

  if (!PQgetisnull (result, row, 4))
    state = g_bytes_new (PQgetvalue (result, row, 4), PQgetlength (result, row, 4));

  return es_subscription_info_new (PQgetvalue (result, row, 0),
                                   PQgetvalue (result, row, 1),
                                   _es_pg_get_int8 (result, row, 2),
                                   _es_pg_get_int8 (result, row, 3),
                                   state,
                                   _es_pg_get_usec (result, row, 5));
}

EsSubscriptionInfo *
_es_pg_storage_get_subscription (EsStorageHandle  *handle,
                                 const char       *name,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  const char *values[1] = { name };
  EsSubscriptionInfo *info = NULL;
  PGresult *result;

  result = _es_pg_storage_read (ES_PG_STORAGE (handle),
                                INFO_SELECT ("s.state") " WHERE s.name = $1::text", values, 1,
                                _("Reading subscriptions"), cancellable, error);
  if (result == NULL)
    return NULL;

  if (PQntuples (result) > 0)
    info = info_from_row (result, 0);
  PQclear (result);
  return info;
}

GPtrArray *
_es_pg_storage_list_subscriptions (EsStorageHandle  *handle,
                                   GCancellable     *cancellable,
                                   GError          **error)
{
  GPtrArray *infos;
  PGresult *result;

  result = _es_pg_storage_read (ES_PG_STORAGE (handle),
                                INFO_SELECT ("NULL::bytea") " ORDER BY s.name", NULL, 0,
                                _("Reading subscriptions"), cancellable, error);
  if (result == NULL)
    return NULL;

  infos = g_ptr_array_new_full (PQntuples (result), g_object_unref);
  for (int i = 0; i < PQntuples (result); i++)
    g_ptr_array_add (infos, info_from_row (result, i));
  PQclear (result);
  return infos;
}

/* ---------------------------------------------------------------------- *
 * Tests                                                                   *
 * ---------------------------------------------------------------------- */

int
_es_pg_storage_get_subscription_pid (EsPgStorage *self,
                                     const char  *name)
{
  g_autoptr(Hold) hold = lookup_held (self, name);
  int pid = 0;

  if (hold == NULL)
    return 0;
  g_mutex_lock (&hold->mutex);
  if (hold->c != NULL)
    pid = PQbackendPID (hold->c->conn);
  g_mutex_unlock (&hold->mutex);
  return pid;
}

char *
_es_pg_storage_query_subscription_session (EsPgStorage *self,
                                           const char  *name,
                                           const char  *sql)
{
  g_autoptr(Hold) hold = lookup_held (self, name);
  const EsPgStatement statement = { sql, 0, NULL, NULL, NULL, FALSE };
  g_autoptr(GError) error = NULL;
  char *text = NULL;
  PGresult *result;

  if (hold == NULL)
    return NULL;
  g_mutex_lock (&hold->mutex);
  if (hold->c != NULL)
    {
      result = _es_pg_connection_run_one (hold->c, &statement, NULL, "", &error);
      if (result != NULL && PQntuples (result) > 0 && !PQgetisnull (result, 0, 0))
        text = g_strdup (PQgetvalue (result, 0, 0));
      PQclear (result);
    }
  g_mutex_unlock (&hold->mutex);
  return text;
}

char *
_es_pg_storage_get_subscription_conninfo (EsPgStorage *self,
                                          const char  *name,
                                          const char  *keyword)
{
  g_autoptr(Hold) hold = lookup_held (self, name);
  char *text = NULL;

  if (hold == NULL)
    return NULL;
  g_mutex_lock (&hold->mutex);
  if (hold->c != NULL)
    {
      PQconninfoOption *options = PQconninfo (hold->c->conn);

      for (PQconninfoOption *o = options; o != NULL && o->keyword != NULL; o++)
        if (g_str_equal (o->keyword, keyword) && o->val != NULL)
          text = g_strdup (o->val);
      PQconninfoFree (options);
    }
  g_mutex_unlock (&hold->mutex);
  return text;
}
