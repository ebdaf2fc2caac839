/* es-test-subscriber.c: holds a durable subscription of an SQLite database
 * from another process, for the tests of one consumer at a time
 * (test-sqlite-subscription.c, tests/reliability).
 *
 *   es-test-subscriber hold DB NAME
 *     acquires NAME (printing "waiting" first when another holder has it,
 *     then waiting), prints "held <monotonic usec>" and keeps it until its
 *     standard input ends or reads a line "release"; then releases it,
 *     prints "released" and exits 0.
 *   es-test-subscriber try DB NAME
 *     prints "held" and exits 0 when NAME can be acquired at once (and
 *     releases it), "busy" and exits 3 when another holder has it.
 *
 * Every line is flushed at once: the test reads them through a pipe.
 * CLOCK_MONOTONIC (g_get_monotonic_time()) is one clock for every process
 * of the machine, so the test compares its times with its own.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include <es-glib/es-glib.h>

static int
hold (EsStorageHandle *storage,
      const char      *name)
{
  g_autoptr(GError) error = NULL;
  char line[64];

  if (!es_storage_handle_acquire_subscription (storage, name, FALSE, NULL, &error))
    {
      if (!g_error_matches (error, ES_ERROR, ES_ERROR_BUSY))
        {
          fprintf (stderr, "acquire: %s\n", error->message);
          return 1;
        }
      g_clear_error (&error);
      printf ("waiting\n");
      fflush (stdout);
      if (!es_storage_handle_acquire_subscription (storage, name, TRUE, NULL, &error))
        {
          fprintf (stderr, "acquire (waiting): %s\n", error->message);
          return 1;
        }
    }

  printf ("held %" G_GINT64_FORMAT "\n", g_get_monotonic_time ());
  fflush (stdout);

  while (fgets (line, sizeof line, stdin) != NULL)
    if (g_str_has_prefix (line, "release"))
      break;

  es_storage_handle_release_subscription (storage, name);
  printf ("released\n");
  fflush (stdout);
  return 0;
}

static int
try_acquire (EsStorageHandle *storage,
             const char      *name)
{
  g_autoptr(GError) error = NULL;

  if (es_storage_handle_acquire_subscription (storage, name, FALSE, NULL, &error))
    {
      es_storage_handle_release_subscription (storage, name);
      printf ("held\n");
      return 0;
    }
  if (g_error_matches (error, ES_ERROR, ES_ERROR_BUSY))
    {
      printf ("busy\n");
      return 3;
    }
  fprintf (stderr, "acquire: %s\n", error->message);
  return 1;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(EsSqliteStorage) storage = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  if (argc != 4 || (!g_str_equal (argv[1], "hold") && !g_str_equal (argv[1], "try")))
    {
      fprintf (stderr, "usage: %s hold|try DB NAME\n", argv[0]);
      return 2;
    }

  storage = es_sqlite_storage_new (argv[2], 1, NULL, &error);
  if (storage == NULL)
    {
      fprintf (stderr, "open: %s\n", error->message);
      return 1;
    }

  if (g_str_equal (argv[1], "hold"))
    status = hold (ES_STORAGE_HANDLE (storage), argv[3]);
  else
    status = try_acquire (ES_STORAGE_HANDLE (storage), argv[3]);

  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  return status;
}
