/* pg-writer.c: appends events to a PostgreSQL database from another
 * process, for the tests.
 *
 * Usage: es-pg-writer CONNINFO SCHEMA STREAM COUNT [BATCH [INTERVAL_MS]]
 *
 * Appends COUNT events of type "written" to STREAM, BATCH per write (1 by
 * default), each with the decimal index of the event (0, 1, ...) as data.
 * After each acknowledged write it prints the stream's new version on a
 * line of its own, flushed at once, so a test can follow the writes as
 * they commit. INTERVAL_MS (0 by default) pauses between writes. Exits 0
 * when every write succeeded; otherwise prints the error on stderr and
 * exits 1 (2 for bad arguments).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>

#include <es-glib/es-glib.h>
#include <es-glib-pg/es-pg.h>

static gboolean
parse_count (const char *text,
             guint64     min,
             guint64    *out_value)
{
  return g_ascii_string_to_unsigned (text, 10, min, G_MAXUINT32, out_value, NULL);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  guint64 count, batch_size = 1, interval_ms = 0;
  guint64 index = 0;

  if (argc < 5 || argc > 7 ||
      !parse_count (argv[4], 0, &count) ||
      (argc > 5 && !parse_count (argv[5], 1, &batch_size)) ||
      (argc > 6 && !parse_count (argv[6], 0, &interval_ms)))
    {
      g_printerr ("usage: %s CONNINFO SCHEMA STREAM COUNT [BATCH [INTERVAL_MS]]\n", argv[0]);
      return 2;
    }

  factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                            "conninfo", argv[1],
                            "schema", argv[2],
                            NULL);
  if (factory != NULL)
    stream = es_stream_factory_open_stream (factory, argv[3], NULL, &error);

  while (stream != NULL && error == NULL && index < count)
    {
      gint64 version;

      g_ptr_array_set_size (batch, 0);
      for (; batch->len < batch_size && index < count; index++)
        {
          g_autofree char *text = g_strdup_printf ("%" G_GUINT64_FORMAT, index);
          g_autoptr(GBytes) data = g_bytes_new (text, strlen (text));

          g_ptr_array_add (batch, es_candidate_event_new ("written", data));
        }

      version = es_stream_write (stream, (EsCandidateEvent * const *) batch->pdata, batch->len,
                                 ES_VERSION_ANY, NULL, &error);
      if (error == NULL)
        {
          printf ("%" G_GINT64_FORMAT "\n", version);
          fflush (stdout);
          if (interval_ms > 0 && index < count)
            g_usleep (interval_ms * G_TIME_SPAN_MILLISECOND);
        }
    }

  if (error == NULL && factory != NULL)
    es_stream_factory_close (factory, NULL, &error);

  if (error != NULL)
    {
      g_printerr ("es-pg-writer: %s\n", error->message);
      return 1;
    }
  return 0;
}
