/* pg-subscriber.c: holds a durable subscription of a PostgreSQL database
 * from another process, for the tests.
 *
 * Usage: es-pg-subscriber CONNINFO SCHEMA NAME wait|try
 *
 * Acquires subscription NAME through an EsPgStorage (waiting for it, or
 * not), then prints "held" on a line of its own, flushed at once, and
 * holds it until its standard input ends (or until it is killed: what the
 * tests do to it); then releases it and exits 0. When the subscription is
 * taken and "try" was given, prints "busy" and exits 3; on another error
 * prints it on stderr and exits 1 (2 for bad arguments).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include <es-glib/es-glib.h>
#include <es-glib-pg/es-pg.h>

int
main (int   argc,
      char *argv[])
{
  g_autoptr(EsPgStorage) storage = NULL;
  g_autoptr(GError) error = NULL;
  char line[64];

  if (argc != 5 || !(g_str_equal (argv[4], "wait") || g_str_equal (argv[4], "try")))
    {
      g_printerr ("usage: %s CONNINFO SCHEMA NAME wait|try\n", argv[0]);
      return 2;
    }

  storage = es_pg_storage_new (argv[1], argv[2], 1, NULL, &error);
  if (storage != NULL &&
      !es_storage_handle_acquire_subscription (ES_STORAGE_HANDLE (storage), argv[3],
                                               g_str_equal (argv[4], "wait"), NULL, &error) &&
      g_error_matches (error, ES_ERROR, ES_ERROR_BUSY))
    {
      printf ("busy\n");
      return 3;
    }
  if (error != NULL)
    {
      g_printerr ("es-pg-subscriber: %s\n", error->message);
      return 1;
    }

  printf ("held\n");
  fflush (stdout);
  while (fgets (line, sizeof line, stdin) != NULL)
    ;

  es_storage_handle_release_subscription (ES_STORAGE_HANDLE (storage), argv[3]);
  es_storage_handle_close (ES_STORAGE_HANDLE (storage), NULL, NULL);
  return 0;
}
