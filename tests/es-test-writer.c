/* es-test-writer.c: appends events from another process, for the tests.
 *
 * Usage: es-test-writer DATABASE STREAM COUNT
 * Writes COUNT "FromOtherProcess" events to STREAM, one per write.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include <es-glib/es-glib.h>

int
main (int   argc,
      char *argv[])
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GError) error = NULL;
  guint64 count;

  if (argc != 4 || !g_ascii_string_to_unsigned (argv[3], 10, 1, G_MAXUINT32, &count, NULL))
    {
      g_printerr ("usage: %s DATABASE STREAM COUNT\n", argv[0]);
      return 2;
    }

  factory = es_sqlite_stream_factory_new (argv[1], NULL, &error);
  if (factory != NULL)
    stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), argv[2], NULL, &error);
  for (guint64 i = 0; stream != NULL && i < count && error == NULL; i++)
    {
      g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("FromOtherProcess", NULL);

      es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
    }
  if (error == NULL && factory != NULL)
    es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error);

  if (error != NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  return 0;
}
