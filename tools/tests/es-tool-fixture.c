/* es-tool-fixture.c: prepares databases for the es-tool tests and plays
 * "another process" for them, through the public API only.
 *
 * PATH may be a PostgreSQL connection string (key/value pairs).
 *
 *   es-tool-fixture create PATH          the database the tests read
 *   es-tool-fixture append PATH STREAM TYPE DATA
 *                                        one event (DATA as given)
 *   es-tool-fixture writer PATH STREAM N append N events one by one,
 *                                        printing "started" after the first
 *   es-tool-fixture bulk PATH N SIZE      N events of about SIZE bytes of
 *                                        JSON data over 100 streams, in
 *                                        batches of 1,000 (for figures)
 *   es-tool-fixture subscribe PATH NAME STREAM POSITION
 *                                        a durable subscription whose
 *                                        checkpoint is POSITION
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <es-glib/es-glib.h>
#ifdef ES_TOOL_HAVE_POSTGRES
# include <es-glib-pg/es-pg.h>
#endif

static EsStreamFactory *
open_factory (const char *path)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  /* A PostgreSQL connection string as es-tool tells them apart. */
  if (strchr (path, '=') != NULL || g_str_has_prefix (path, "postgresql://"))
#ifdef ES_TOOL_HAVE_POSTGRES
    factory = (EsStreamFactory *) es_pg_stream_factory_new (path, NULL, &error);
#else
    g_error ("es-tool-fixture: built without PostgreSQL");
#endif
  else
    factory = (EsStreamFactory *) es_sqlite_stream_factory_new (path, NULL, &error);

  if (factory == NULL)
    {
      g_printerr ("es-tool-fixture: %s\n", error->message);
      exit (1);
    }
  return factory;
}

static void
append (EsStreamFactory *factory,
        const char      *stream_id,
        const char      *event_type,
        const void      *data,
        gsize            size,
        const char      *metadata,
        const char      *key)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);
  g_autoptr(GBytes) bytes = g_bytes_new (data, size);
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new (event_type, bytes);

  if (metadata != NULL)
    es_candidate_event_set_metadata (event, metadata);
  if (key != NULL)
    es_candidate_event_set_idempotency_key (event, key);
  if (stream == NULL ||
      es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error) < 0)
    {
      g_printerr ("es-tool-fixture: %s\n", error->message);
      exit (1);
    }
}

#define TEXT(s) (s), strlen (s)

static void
create (const char *path)
{
  EsStreamFactory *factory = open_factory (path);
  static const guint8 binary[] = { 0x00, 0x01, 0xfe, 0xff, 0x80 };

  append (factory, "cart-1", "ItemAdded", TEXT ("{\"sku\":\"apple\",\"qty\":2}"),
          "{\"tenant\":\"acme\",\"score\":7}", NULL);
  append (factory, "order-7", "OrderPlaced", TEXT ("{\"total\":12.5}"),
          "{\"tenant\":\"globex\"}", "order-7-placed");
  append (factory, "cart-1", "ItemAdded", TEXT ("{\"sku\":\"pear\",\"qty\":1}"),
          "{\"tenant\":\"acme\",\"score\":11}", NULL);
  append (factory, "cart-1", "CheckedOut", binary, sizeof binary, NULL, "checkout-1");
  append (factory, "user-3", "Renamed", TEXT ("plain text, not JSON"), NULL, NULL);
  append (factory, "order-7", "OrderShipped", TEXT ("[1,2,3]"),
          "{\"tenant\":\"globex\",\"score\":3}", NULL);

  es_stream_factory_close (factory, NULL, NULL);
  g_object_unref (factory);
}

static void
writer (const char *path,
        const char *stream_id,
        int         n)
{
  EsStreamFactory *factory = open_factory (path);

  for (int i = 1; i <= n; i++)
    {
      g_autofree char *data = g_strdup_printf ("{\"n\":%d}", i);

      append (factory, stream_id, "Tick", TEXT (data), NULL, NULL);
      if (i == 1)
        {
          printf ("started\n");
          fflush (stdout);
        }
    }
  printf ("done\n");
  es_stream_factory_close (factory, NULL, NULL);
  g_object_unref (factory);
}

static void
bulk (const char *path,
      gint64      n,
      gsize       size)
{
  EsStreamFactory *factory = open_factory (path);
  g_autofree char *padding = g_strnfill (size > 40 ? size - 40 : 1, 'x');
  GPtrArray *streams = g_ptr_array_new_with_free_func (g_object_unref);
  gint64 written = 0;

  for (guint i = 0; i < 100; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *id = g_strdup_printf ("bulk-%03u", i);
      EsStream *stream = es_stream_factory_open_stream (factory, id, NULL, &error);

      g_assert_no_error (error);
      g_ptr_array_add (streams, stream);
    }

  while (written < n)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
      g_autoptr(GError) error = NULL;
      EsStream *stream = g_ptr_array_index (streams, (written / 1000) % 100);

      for (guint i = 0; i < 1000 && written + i < n; i++)
        {
          g_autofree char *data = g_strdup_printf ("{\"n\":%" G_GINT64_FORMAT ",\"pad\":\"%s\"}",
                                                   written + i, padding);
          gsize len = strlen (data);
          g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&data), len);
          EsCandidateEvent *event = es_candidate_event_new ("Bulk", bytes);

          es_candidate_event_set_metadata (event, "{\"tenant\":\"acme\"}");
          g_ptr_array_add (batch, event);
        }
      if (es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                           ES_VERSION_ANY, NULL, &error) < 0)
        {
          g_printerr ("es-tool-fixture: %s\n", error->message);
          exit (1);
        }
      written += batch->len;
    }

  g_ptr_array_unref (streams);
  es_stream_factory_close (factory, NULL, NULL);
  g_object_unref (factory);
}

static void
subscribe (const char *path,
           const char *name,
           const char *stream_id,
           gint64      position)
{
  EsStreamFactory *factory = open_factory (path);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSubscription) sub = es_subscription_new (factory, name, stream_id, NULL,
                                                       ES_SUBSCRIPTION_FLAGS_NONE);

  if (!es_subscription_start (sub, NULL, &error) ||
      !es_subscription_stop (sub, NULL, &error) ||
      !es_stream_factory_reset_subscription (factory, name, position, NULL, &error))
    {
      g_printerr ("es-tool-fixture: %s\n", error->message);
      exit (1);
    }
  es_stream_factory_close (factory, NULL, NULL);
  g_object_unref (factory);
}

int
main (int    argc,
      char **argv)
{
  if (argc == 3 && g_str_equal (argv[1], "create"))
    create (argv[2]);
  else if (argc == 6 && g_str_equal (argv[1], "append"))
    {
      EsStreamFactory *factory = open_factory (argv[2]);

      append (factory, argv[3], argv[4], TEXT (argv[5]), NULL, NULL);
      es_stream_factory_close (factory, NULL, NULL);
      g_object_unref (factory);
    }
  else if (argc == 5 && g_str_equal (argv[1], "writer"))
    writer (argv[2], argv[3], atoi (argv[4]));
  else if (argc == 5 && g_str_equal (argv[1], "bulk"))
    bulk (argv[2], g_ascii_strtoll (argv[3], NULL, 10), (gsize) g_ascii_strtoull (argv[4], NULL, 10));
  else if (argc == 6 && g_str_equal (argv[1], "subscribe"))
    subscribe (argv[2], argv[3], argv[4], g_ascii_strtoll (argv[5], NULL, 10));
  else
    {
      g_printerr ("usage: es-tool-fixture create|append|writer|bulk|subscribe ...\n");
      return 2;
    }
  return 0;
}
