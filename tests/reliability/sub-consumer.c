/* sub-consumer.c: a process consuming a durable subscription of @all, for
 * the kill -9 loops of test-subscription-kill.c (SQLite: WHERE is the
 * database file) and, built with ES_SUB_CONSUMER_PG as es-pg-sub-consumer,
 * of test-pg-subscription-kill, the same test on PostgreSQL (WHERE is the
 * schema of the server in $ES_TEST_PG_CONNINFO).
 *
 *   sub-consumer state WHERE NAME SAVE_EVERY UNTIL
 *     KEEP_STATE: folds every event into a state (count, sum of the
 *     events' "n", a hash of their positions, as text) and saves state and
 *     checkpoint together every SAVE_EVERY events. Exactly once: after any
 *     kill, the state stored is the fold of the events up to the stored
 *     checkpoint.
 *   sub-consumer default WHERE NAME LOG BATCH DELAY UNTIL
 *     at-least-once: appends each delivered position to LOG ("P\n", one
 *     write(2): a kill -9 does not lose what the kernel has), with
 *     checkpoint-batch BATCH and checkpoint-delay DELAY ms. Each start
 *     first writes "start C" (C: the checkpoint it resumes after).
 *
 * UNTIL 0 runs until killed; otherwise it stops cleanly once it has
 * consumed position UNTIL (saving the state, or flushing), and exits 0.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <es-glib/es-glib.h>
#ifdef ES_SUB_CONSUMER_PG
#include <es-glib-pg/es-pg.h>
#endif

typedef struct
{
  EsSubscription *subscription;
  GMainLoop      *loop;
  gboolean        keep_state;
  int             log_fd;
  guint64         save_every;
  gint64          until;
  guint           pending;     /* events folded since the last save */
  guint64         count;
  guint64         sum;
  guint64         hash;
  gboolean        done;
  int             status;
} Consumer;

static GBytes *
state_bytes (Consumer *c)
{
  char *text = g_strdup_printf ("%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                c->count, c->sum, c->hash);

  return g_bytes_new_take (text, strlen (text));
}

static void
state_parse (Consumer *c,
             GBytes   *state)
{
  g_autofree char *text = NULL;

  if (state == NULL)
    return;
  text = g_strndup (g_bytes_get_data (state, NULL), g_bytes_get_size (state));
  if (sscanf (text, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
              &c->count, &c->sum, &c->hash) != 3)
    {
      fprintf (stderr, "bad state '%s'\n", text);
      exit (1);
    }
}

static guint64
event_n (EsStoredEvent *event)
{
  GBytes *data = es_stored_event_get_data (event);
  g_autofree char *text = g_strndup (g_bytes_get_data (data, NULL), g_bytes_get_size (data));
  guint64 n = 0;

  if (sscanf (text, "{\"n\": %" G_GUINT64_FORMAT "}", &n) != 1)
    {
      fprintf (stderr, "bad event data '%s'\n", text);
      exit (1);
    }
  return n;
}

static gboolean
finish_cb (gpointer data)
{
  Consumer *c = data;

  g_main_loop_quit (c->loop);
  return G_SOURCE_REMOVE;
}

static void
on_event (EsSubscription *subscription,
          EsStoredEvent  *event,
          gpointer        data)
{
  Consumer *c = data;
  gint64 position = es_stored_event_get_sequence_id (event);

  if (c->keep_state)
    {
      /* Saves what is folded so far, up to the position delivered (the
       * events before this one), before folding this one. */
      if (c->pending >= c->save_every)
        {
          g_autoptr(GBytes) state = state_bytes (c);
          g_autoptr(GError) error = NULL;

          if (!es_subscription_save_state (subscription, state,
                                           es_subscription_get_position (subscription),
                                           NULL, &error))
            {
              fprintf (stderr, "save_state: %s\n", error->message);
              exit (1);
            }
          c->pending = 0;
        }
      c->count++;
      c->sum += event_n (event);
      c->hash = (c->hash ^ (guint64) position) * G_GUINT64_CONSTANT (0x100000001b3);
      c->pending++;
    }
  else
    {
      char line[32];
      int len = g_snprintf (line, sizeof line, "%" G_GINT64_FORMAT "\n", position);

      if (write (c->log_fd, line, len) != len)
        {
          perror ("write");
          exit (1);
        }
    }

  if (c->until > 0 && position >= c->until && !c->done)
    {
      c->done = TRUE;
      /* After the handler returns: then the position includes this event. */
      g_idle_add (finish_cb, c);
    }
}

static void
on_error (EsSubscription *subscription,
          GError         *error,
          gpointer        data)
{
  Consumer *c = data;

  fprintf (stderr, "subscription error: %s\n", error->message);
  c->status = 1;
  g_main_loop_quit (c->loop);
}

static EsStreamFactory *
factory_open (const char  *where,
              GError     **error)
{
#ifdef ES_SUB_CONSUMER_PG
  return g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, error,
                         "conninfo", g_getenv ("ES_TEST_PG_CONNINFO"),
                         "schema", where,
                         NULL);
#else
  return ES_STREAM_FACTORY (es_sqlite_stream_factory_new (where, NULL, error));
#endif
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;
  Consumer c = { 0, };
  const char *where, *name;
  gint64 until;

  if (argc < 6 || (!g_str_equal (argv[1], "state") && !g_str_equal (argv[1], "default")) ||
      (g_str_equal (argv[1], "state") && argc != 6) ||
      (g_str_equal (argv[1], "default") && argc != 8))
    {
      fprintf (stderr, "usage: %s state WHERE NAME SAVE_EVERY UNTIL\n"
                       "       %s default WHERE NAME LOG BATCH DELAY UNTIL\n", argv[0], argv[0]);
      return 2;
    }

  where = argv[2];
  name = argv[3];
  c.keep_state = g_str_equal (argv[1], "state");
  c.log_fd = -1;
  until = g_ascii_strtoll (argv[argc - 1], NULL, 10);
  c.until = until;

  factory = factory_open (where, &error);
  if (factory == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      return 1;
    }

  c.subscription = es_subscription_new (factory, name, NULL, NULL,
                                        c.keep_state ? ES_SUBSCRIPTION_FLAGS_KEEP_STATE
                                                     : ES_SUBSCRIPTION_FLAGS_NONE);
  if (c.keep_state)
    c.save_every = g_ascii_strtoull (argv[4], NULL, 10);
  else
    {
      c.log_fd = open (argv[4], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (c.log_fd < 0)
        {
          perror ("open log");
          return 1;
        }
      es_subscription_set_checkpoint_batch (c.subscription,
                                            (guint) g_ascii_strtoull (argv[5], NULL, 10));
      es_subscription_set_checkpoint_delay (c.subscription,
                                            (guint) g_ascii_strtoull (argv[6], NULL, 10));
    }

  g_signal_connect (c.subscription, "event", G_CALLBACK (on_event), &c);
  g_signal_connect (c.subscription, "error", G_CALLBACK (on_error), &c);
  c.loop = g_main_loop_new (NULL, FALSE);

  if (!es_subscription_start (c.subscription, NULL, &error))
    {
      fprintf (stderr, "start: %s\n", error->message);
      return 1;
    }
  if (c.keep_state)
    state_parse (&c, es_subscription_get_state (c.subscription));
  else
    {
      char line[48];
      int len = g_snprintf (line, sizeof line, "start %" G_GINT64_FORMAT "\n",
                            es_subscription_get_checkpoint (c.subscription));

      if (write (c.log_fd, line, len) != len)
        return 1;
    }

  /* Nothing left to consume at all: done at once. */
  if (until > 0 && es_subscription_get_checkpoint (c.subscription) >= until)
    c.done = TRUE;
  else
    g_main_loop_run (c.loop);

  if (c.status == 0 && c.keep_state && c.pending > 0)
    {
      g_autoptr(GBytes) state = state_bytes (&c);

      if (!es_subscription_save_state (c.subscription, state,
                                       es_subscription_get_position (c.subscription),
                                       NULL, &error))
        {
          fprintf (stderr, "save_state: %s\n", error->message);
          return 1;
        }
    }
  if (c.status == 0 && !es_subscription_stop (c.subscription, NULL, &error))
    {
      fprintf (stderr, "stop: %s\n", error->message);
      return 1;
    }

  g_object_unref (c.subscription);
  g_main_loop_unref (c.loop);
  es_stream_factory_close (factory, NULL, NULL);
  if (c.log_fd >= 0)
    close (c.log_fd);
  return c.status;
}
