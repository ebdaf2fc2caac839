/* fuzz-stream-id.c: fuzzed stream ids, opened and written to.
 *
 * An id is accepted exactly when it is non-empty UTF-8 of at most 1024
 * bytes not starting with '@' (or is "@all", which is read-only); the
 * event written is read back under that id. Anything else fails with
 * ES_ERROR_INVALID_ARGUMENT, from open_stream or the write.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

static EsStreamFactory *factory;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  GError *error = NULL;

  fuzz_init_logging ();
  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
  g_assert_no_error (error);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *id = fuzz_strndup (data, size);
  gsize len = strlen (id);
  gboolean valid = len > 0 && len <= 1024 && id[0] != '@' && g_utf8_validate (id, len, NULL);
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Fuzz", NULL);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GError) error = NULL;
  gint64 before, version;

  stream = es_stream_factory_open_stream (factory, id, NULL, &error);
  if (stream == NULL)
    {
      FUZZ_CHECK (!valid);
      FUZZ_CHECK (g_error_matches (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT));
      return 0;
    }

  FUZZ_CHECK (g_strcmp0 (es_stream_get_stream_id (stream), id) == 0);
  before = es_stream_get_version (stream);
  version = es_stream_write (stream, &event, 1, before, NULL, &error);
  if (!valid)
    {
      FUZZ_CHECK (version == -1);
      FUZZ_CHECK (g_error_matches (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT));
      return 0;
    }

  FUZZ_CHECK (version == before + 1);
  {
    g_autoptr(EsEventEnumerator) enumerator = es_stream_read (stream, before, NULL, NULL, &error);
    g_autoptr(EsStoredEvent) stored = NULL;

    FUZZ_CHECK (enumerator != NULL);
    stored = es_event_enumerator_next (enumerator, NULL, &error);
    FUZZ_CHECK (stored != NULL);
    FUZZ_CHECK (g_strcmp0 (es_stored_event_get_stream_id (stored), id) == 0);
    FUZZ_CHECK (es_stored_event_get_version (stored) == version);
  }
  return 0;
}
