/* fuzz-open-database.c: opening a fuzzed database file.
 *
 * The bytes are written to a file, which es_sqlite_stream_factory_new()
 * opens. It either fails with ES_ERROR_STORAGE, leaving the file exactly
 * as it was (except an es-glib database of an older schema version, whose
 * upgrade may be committed before a later step of the opening meets the
 * damage: see "Upgrades" in doc/operations.md; the seed
 * schema-1-snapshots-column-renamed.db is one, a schema-1 file whose
 * snapshots table has no "timestamp" column: the upgrade commits, then
 * preparing the writer's statements fails), or opens; then @all is read
 * to the end (a damaged file may fail that with ES_ERROR_STORAGE) and the
 * factory is closed. Never a crash, a hang, a leak or a CRITICAL.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include <glib/gstdio.h>

static char *dir;
static char *path;

/* Whether @data is the header of an es-glib database of a schema older
 * than this es-glib's (application id "ESG1" at offset 68, user version at
 * offset 60, both big-endian), which opening upgrades. */
static gboolean
is_older_es_glib_database (const uint8_t *data,
                           size_t         size)
{
  guint32 application_id, user_version;

  if (size < 100 || memcmp (data, "SQLite format 3", 16) != 0)
    return FALSE;
  application_id = ((guint32) data[68] << 24) | ((guint32) data[69] << 16) |
                   ((guint32) data[70] << 8) | data[71];
  user_version = ((guint32) data[60] << 24) | ((guint32) data[61] << 16) |
                 ((guint32) data[62] << 8) | data[63];
  return application_id == 0x45534731 && user_version >= 1 && user_version < 3;
}

static void
remove_files (void)
{
  const char *suffixes[] = { "", "-wal", "-shm", "-journal" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *file = g_strconcat (path, suffixes[i], NULL);

      g_unlink (file);
    }
}

static void
cleanup (void)
{
  remove_files ();
  g_rmdir (dir);
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  GError *error = NULL;

  fuzz_init_logging ();
  dir = g_dir_make_tmp ("es-fuzz-open-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "fuzz.db", NULL);
  atexit (cleanup);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;

  remove_files ();
  FUZZ_CHECK (g_file_set_contents (path, (const char *) data, size, NULL));

  factory = es_sqlite_stream_factory_new (path, NULL, &error);
  if (factory == NULL)
    {
      g_autofree char *after = NULL;
      gsize after_size = 0;

      FUZZ_CHECK (g_error_matches (error, ES_ERROR, ES_ERROR_STORAGE));
      FUZZ_CHECK (g_file_get_contents (path, &after, &after_size, NULL));
      FUZZ_CHECK ((after_size == size && memcmp (after, data, size) == 0) ||
                  is_older_es_glib_database (data, size));
      return 0;
    }

  {
    g_autoptr(EsStream) all = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory),
                                                             ES_ALL_STREAM, NULL, &error);
    g_autoptr(EsEventEnumerator) enumerator = NULL;
    g_autoptr(EsStreamMetrics) metrics = NULL;
    EsStoredEvent *event;

    FUZZ_CHECK (all != NULL);
    enumerator = es_stream_read (all, 0, NULL, NULL, &error);
    while (enumerator != NULL && (event = es_event_enumerator_next (enumerator, NULL, &error)))
      g_object_unref (event);
    FUZZ_CHECK (error == NULL || g_error_matches (error, ES_ERROR, ES_ERROR_STORAGE));
    g_clear_error (&error);

    metrics = es_stream_get_metrics (all, NULL, &error);
    FUZZ_CHECK (error == NULL || g_error_matches (error, ES_ERROR, ES_ERROR_STORAGE));
    g_clear_error (&error);
  }

  FUZZ_CHECK (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  return 0;
}
