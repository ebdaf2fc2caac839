/* fuzz-metadata.c: fuzzed metadata on a write to an in-memory store.
 *
 * Valid JSON objects are stored and read back exactly as written; anything
 * else fails with ES_ERROR_INVALID_ARGUMENT and writes nothing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

static EsStreamFactory *factory;
static EsStream *stream;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  GError *error = NULL;

  fuzz_init_logging ();
  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
  g_assert_no_error (error);
  stream = es_stream_factory_open_stream (factory, "fuzz", NULL, &error);
  g_assert_no_error (error);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *metadata = fuzz_strndup (data, size);
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Fuzz", NULL);
  g_autoptr(GError) error = NULL;
  gint64 before = es_stream_get_version (stream);
  gint64 version;

  es_candidate_event_set_metadata (event, metadata);
  FUZZ_CHECK (g_strcmp0 (es_candidate_event_get_metadata (event), metadata) == 0);

  version = es_stream_write (stream, &event, 1, before, NULL, &error);
  if (version < 0)
    {
      FUZZ_CHECK (g_error_matches (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT));
      FUZZ_CHECK (es_stream_get_version (stream) == before);
    }
  else
    {
      g_autoptr(EsEventEnumerator) enumerator = NULL;
      g_autoptr(EsStoredEvent) stored = NULL;

      FUZZ_CHECK (version == before + 1);
      enumerator = es_stream_read (stream, before, NULL, NULL, &error);
      FUZZ_CHECK (enumerator != NULL);
      stored = es_event_enumerator_next (enumerator, NULL, &error);
      FUZZ_CHECK (stored != NULL);
      FUZZ_CHECK (g_strcmp0 (es_stored_event_get_metadata (stored), metadata) == 0);
      FUZZ_CHECK (es_stored_event_get_version (stored) == version);
    }

  return 0;
}
