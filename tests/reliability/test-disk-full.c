/* test-disk-full.c: a full disk fails writes cleanly, loses nothing already
 * written, and writes work again once there is room.
 *
 * The full disk is simulated with PRAGMA max_page_count on the write
 * connection (_es_sqlite_storage_set_max_page_count(), internal).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "es-glib/sqlite/es-sqlite-private.h"

static EsCandidateEvent *
make_event (guint n)
{
  g_autofree char *text = g_strdup_printf ("event %u;", n);
  GString *payload = g_string_new (NULL);
  g_autoptr(GBytes) data = NULL;

  /* 4 KiB a piece: a page or so each. */
  while (payload->len < 4096)
    g_string_append (payload, text);
  data = g_string_free_to_bytes (payload);
  return es_candidate_event_new ("Filled", data);
}

static void
check_events (EsStream *stream,
              guint     n_expected)
{
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GError) error = NULL;
  EsStoredEvent *event;
  guint n = 0;

  enumerator = es_stream_read (stream, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    {
      g_autoptr(EsCandidateEvent) expected = make_event (n);

      g_assert_cmpint (es_stored_event_get_version (event), ==, n + 1);
      g_assert_true (g_bytes_equal (es_stored_event_get_data (event),
                                    es_candidate_event_get_data (expected)));
      g_object_unref (event);
      n++;
    }
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, n_expected);
}

static void
test_disk_full (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("es-disk-full-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "full.db", NULL);
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  EsSqliteStorage *storage;
  guint n_written = 0;
  guint n_after_limit = 0;
  guint i;

  g_assert_no_error (error);
  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  storage = ES_SQLITE_STORAGE (es_stream_factory_get_storage (ES_STREAM_FACTORY (factory)));
  stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "filling", NULL, &error);
  g_assert_no_error (error);

  for (i = 0; i < 20; i++, n_written++)
    {
      g_autoptr(EsCandidateEvent) event = make_event (n_written);

      g_assert_cmpint (es_stream_write (stream, &event, 1, n_written, NULL, &error), ==,
                       n_written + 1);
      g_assert_no_error (error);
    }

  /* No room beyond what the file has now (SQLite keeps at least that). */
  g_assert_true (_es_sqlite_storage_set_max_page_count (storage, 1, &error));
  g_assert_no_error (error);

  for (;;)
    {
      g_autoptr(EsCandidateEvent) event = make_event (n_written);
      gint64 version = es_stream_write (stream, &event, 1, n_written, NULL, &error);

      if (version < 0)
        break;
      g_assert_cmpint (version, ==, n_written + 1);
      n_written++;
      /* Free space left in the last pages goes first; not much of it. */
      g_assert_cmpuint (++n_after_limit, <, 100);
    }
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_test_message ("full disk after %u more events: %s", n_after_limit, error->message);
  g_assert_nonnull (strstr (error->message, "full"));
  g_clear_error (&error);

  /* A batch fails whole; everything before is intact, the stream's
   * version did not move. */
  {
    g_autoptr(EsCandidateEvent) a = make_event (n_written);
    g_autoptr(EsCandidateEvent) b = make_event (n_written + 1);
    EsCandidateEvent *batch[] = { a, b };

    g_assert_cmpint (es_stream_write (stream, batch, 2, ES_VERSION_ANY, NULL, &error), ==, -1);
    g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
    g_clear_error (&error);
  }
  check_events (stream, n_written);

  /* Room again: writes work, at the next version. */
  g_assert_true (_es_sqlite_storage_set_max_page_count (storage, G_MAXINT32, &error));
  g_assert_no_error (error);
  for (i = 0; i < 5; i++, n_written++)
    {
      g_autoptr(EsCandidateEvent) event = make_event (n_written);

      g_assert_cmpint (es_stream_write (stream, &event, 1, n_written, NULL, &error), ==,
                       n_written + 1);
      g_assert_no_error (error);
    }
  check_events (stream, n_written);

  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&stream);
  g_clear_object (&factory);

  /* And after a reopen. */
  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  g_assert_no_error (error);
  stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "filling", NULL, &error);
  g_assert_no_error (error);
  check_events (stream, n_written);
  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);

  /* After close, the hook says so. */
  g_assert_false (_es_sqlite_storage_set_max_page_count (
    ES_SQLITE_STORAGE (es_stream_factory_get_storage (ES_STREAM_FACTORY (factory))), 1, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_CLOSED);
  g_clear_error (&error);

  g_unlink (path);
  g_rmdir (dir);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/reliability/disk-full", test_disk_full);

  return g_test_run ();
}
