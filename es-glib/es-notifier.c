/* es-notifier.c: the contract of a backend's change notifier.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsNotifier:
 *
 * Tells the stream layer about newly committed events, so watches stay
 * live. A backend's notifier watches its database for commits (by this
 * process or any other), reads the new events once, in sequence-id order,
 * and hands them to every subscriber: the number of subscribers does not
 * multiply database queries. [class@Es.SqliteNotifier] implements it for
 * SQLite.
 *
 * Subscribers are called from the notifier's own thread; the stream layer
 * carries events to each watch's main context itself.
 *
 * A notifier retries transient failures. When its database stays unusable
 * for longer than it tolerates, it gives up: it ends every subscription,
 * and [method@Es.Notifier.get_error] tells why; the watches then fail with
 * that error.
 *
 * Since: 0.1
 */

G_DEFINE_INTERFACE (EsNotifier, es_notifier, G_TYPE_OBJECT)

static void
es_notifier_default_init (EsNotifierInterface *iface)
{
  _es_i18n_init ();
}

/**
 * es_notifier_start:
 * @self: an [iface@Es.Notifier]
 * @cancellable: (nullable): a [class@Gio.Cancellable]
 * @error: return location for a [struct@GLib.Error]
 *
 * Starts watching the database. Starting a started notifier does nothing.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
es_notifier_start (EsNotifier    *self,
                   GCancellable  *cancellable,
                   GError       **error)
{
  g_return_val_if_fail (ES_IS_NOTIFIER (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return ES_NOTIFIER_GET_IFACE (self)->start (self, cancellable, error);
}

/**
 * es_notifier_stop:
 * @self: an [iface@Es.Notifier]
 *
 * Stops watching the database; no subscriber is called after it returns.
 * Idempotent.
 *
 * Since: 0.1
 */
void
es_notifier_stop (EsNotifier *self)
{
  g_return_if_fail (ES_IS_NOTIFIER (self));

  ES_NOTIFIER_GET_IFACE (self)->stop (self);
}

/**
 * es_notifier_subscribe:
 * @self: an [iface@Es.Notifier]
 * @func: (scope notified) (closure user_data) (destroy destroy): receives
 *   newly committed events
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data once @func is no longer called
 *
 * Adds a subscriber. It receives every event committed after the sequence
 * id [method@Es.Notifier.get_last_sequence_id] returned just before this
 * call. On a notifier that gave up ([method@Es.Notifier.get_error] returns
 * an error), the subscription ends at once: @destroy is called before this
 * returns.
 *
 * Returns: the subscription id, never 0
 *
 * Since: 0.1
 */
guint
es_notifier_subscribe (EsNotifier     *self,
                       EsNotifierFunc  func,
                       gpointer        user_data,
                       GDestroyNotify  destroy)
{
  g_return_val_if_fail (ES_IS_NOTIFIER (self), 0);
  g_return_val_if_fail (func != NULL, 0);

  return ES_NOTIFIER_GET_IFACE (self)->subscribe (self, func, user_data, destroy);
}

/**
 * es_notifier_unsubscribe:
 * @self: an [iface@Es.Notifier]
 * @subscription_id: an id returned by [method@Es.Notifier.subscribe]
 *
 * Removes a subscriber: its function is not called after this returns,
 * and its destroy notify has run (or will run on the notifier's thread
 * if that thread is calling it right now).
 *
 * Since: 0.1
 */
void
es_notifier_unsubscribe (EsNotifier *self,
                         guint       subscription_id)
{
  g_return_if_fail (ES_IS_NOTIFIER (self));
  g_return_if_fail (subscription_id != 0);

  ES_NOTIFIER_GET_IFACE (self)->unsubscribe (self, subscription_id);
}

/**
 * es_notifier_get_last_sequence_id:
 * @self: an [iface@Es.Notifier]
 *
 * The sequence id of the last event handed to subscribers (or seen when
 * the notifier started). A notifier that stops looking for commits while
 * nobody is subscribed (the SQLite one) reads where the store ends when
 * called then, and returns that.
 *
 * Returns: a sequence id, 0 when the database was empty
 *
 * Since: 0.1
 */
gint64
es_notifier_get_last_sequence_id (EsNotifier *self)
{
  g_return_val_if_fail (ES_IS_NOTIFIER (self), 0);

  return ES_NOTIFIER_GET_IFACE (self)->get_last_sequence_id (self);
}

/**
 * es_notifier_committed:
 * @self: an [iface@Es.Notifier]
 *
 * Tells the notifier that this process has just committed events, so it
 * looks for them at once rather than at its next poll. The stream layer
 * calls it after every successful write.
 *
 * Since: 0.1
 */
void
es_notifier_committed (EsNotifier *self)
{
  g_return_if_fail (ES_IS_NOTIFIER (self));

  if (ES_NOTIFIER_GET_IFACE (self)->committed != NULL)
    ES_NOTIFIER_GET_IFACE (self)->committed (self);
}

/**
 * es_notifier_get_error:
 * @self: an [iface@Es.Notifier]
 *
 * Why the notifier gave up: its database became unusable (the file was
 * deleted, replaced or damaged; the server stayed unreachable) for longer
 * than the backend tolerates. The notifier then ended every subscription,
 * and every later one ends at once: watches fail with this error
 * ([signal@Es.Watch::error]). The error does not change once set.
 *
 * Returns: (transfer none) (nullable): the error, or %NULL while the
 *   notifier runs or after it was merely stopped
 *
 * Since: 0.2
 */
const GError *
es_notifier_get_error (EsNotifier *self)
{
  g_return_val_if_fail (ES_IS_NOTIFIER (self), NULL);

  if (ES_NOTIFIER_GET_IFACE (self)->get_error != NULL)
    return ES_NOTIFIER_GET_IFACE (self)->get_error (self);
  return NULL;
}

/* ---------------------------------------------------------------------- *
 * EsSubscribers: the subscriber registry the library's notifiers share   *
 * ---------------------------------------------------------------------- */

typedef struct
{
  EsNotifierFunc func;
  gpointer       user_data;
  GDestroyNotify destroy;
} Subscriber;

static void
subscriber_free (gpointer data)
{
  Subscriber *subscriber = data;

  if (subscriber->destroy != NULL)
    subscriber->destroy (subscriber->user_data);
  g_free (subscriber);
}

void
_es_subscribers_init (EsSubscribers *self)
{
  g_rec_mutex_init (&self->lock);
  self->table = g_hash_table_new_full (NULL, NULL, NULL, subscriber_free);
  self->next_id = 0;
  self->cursor = 0;
  self->closed = FALSE;
}

void
_es_subscribers_clear (EsSubscribers *self)
{
  g_clear_pointer (&self->table, g_hash_table_unref);
  g_rec_mutex_clear (&self->lock);
}

guint
_es_subscribers_add (EsSubscribers  *self,
                     EsNotifierFunc  func,
                     gpointer        user_data,
                     GDestroyNotify  destroy)
{
  Subscriber *subscriber = g_new0 (Subscriber, 1);
  guint id;

  subscriber->func = func;
  subscriber->user_data = user_data;
  subscriber->destroy = destroy;

  g_rec_mutex_lock (&self->lock);
  id = ++self->next_id;
  if (!self->closed)
    {
      g_hash_table_insert (self->table, GUINT_TO_POINTER (id), subscriber);
      subscriber = NULL;
    }
  g_rec_mutex_unlock (&self->lock);

  /* A notifier that gave up ends a new subscription at once. */
  if (subscriber != NULL)
    subscriber_free (subscriber);

  return id;
}

void
_es_subscribers_remove (EsSubscribers *self,
                        guint          id)
{
  gpointer subscriber = NULL;

  /* Waits for a delivery in progress: no call follows this. The destroy
   * notify runs outside the lock. */
  g_rec_mutex_lock (&self->lock);
  g_hash_table_steal_extended (self->table, GUINT_TO_POINTER (id), NULL, &subscriber);
  g_rec_mutex_unlock (&self->lock);

  if (subscriber != NULL)
    subscriber_free (subscriber);
}

void
_es_subscribers_remove_all (EsSubscribers *self)
{
  g_autoptr(GHashTable) table = NULL;

  /* Every subscription ends: watches learn it through their destroy
   * notify (run as the old table goes, outside the lock) and stop. */
  g_rec_mutex_lock (&self->lock);
  table = g_steal_pointer (&self->table);
  self->table = g_hash_table_new_full (NULL, NULL, NULL, subscriber_free);
  g_rec_mutex_unlock (&self->lock);
}

void
_es_subscribers_close (EsSubscribers *self)
{
  g_rec_mutex_lock (&self->lock);
  self->closed = TRUE;
  g_rec_mutex_unlock (&self->lock);

  _es_subscribers_remove_all (self);
}

gboolean
_es_subscribers_any (EsSubscribers *self)
{
  gboolean any;

  g_rec_mutex_lock (&self->lock);
  any = g_hash_table_size (self->table) > 0;
  g_rec_mutex_unlock (&self->lock);
  return any;
}

gint64
_es_subscribers_get_cursor (EsSubscribers *self)
{
  gint64 cursor;

  g_rec_mutex_lock (&self->lock);
  cursor = self->cursor;
  g_rec_mutex_unlock (&self->lock);
  return cursor;
}

void
_es_subscribers_set_cursor (EsSubscribers *self,
                            gint64         cursor)
{
  g_rec_mutex_lock (&self->lock);
  self->cursor = cursor;
  g_rec_mutex_unlock (&self->lock);
}

void
_es_subscribers_emit (EsSubscribers *self,
                      GPtrArray     *events)
{
  GHashTableIter iter;
  gpointer value;

  g_rec_mutex_lock (&self->lock);
  g_hash_table_iter_init (&iter, self->table);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Subscriber *subscriber = value;

      subscriber->func (events, subscriber->user_data);
    }
  g_rec_mutex_unlock (&self->lock);
}

/* ---------------------------------------------------------------------- *
 * A notifier's own thread                                                 *
 * ---------------------------------------------------------------------- */

static gboolean
quit_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

void
_es_notifier_thread_stop (GThread      *thread,
                          GMainContext *context,
                          GMainLoop    *loop)
{
  GSource *source = g_idle_source_new ();

  /* Ahead of a check that may be queued: stopping should not wait for it. */
  g_source_set_callback (source, quit_cb, g_main_loop_ref (loop),
                         (GDestroyNotify) g_main_loop_unref);
  g_source_set_priority (source, G_PRIORITY_HIGH);
  g_source_attach (source, context);
  g_source_unref (source);

  /* Stopped from the thread itself (its last reference dropped there):
   * it ends when this call returns, and cannot join itself. */
  if (thread != g_thread_self ())
    g_thread_join (thread);
  else
    g_thread_unref (thread);
}
