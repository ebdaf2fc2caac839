/* fuzz-export-round-trip.c: fuzzed data (and metadata) through an export
 * and an import.
 *
 * The bytes are the data of one event (and its metadata too when they are
 * a JSON object the library takes), written to a stream of its own in an
 * in-memory database, exported, and imported into another one: the import
 * stores exactly the bytes written, whether the export embedded them as
 * JSON or as base64 (doc/export-format.md). Never a crash, a leak or a
 * CRITICAL.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

static EsStreamFactory *source;
static EsStreamFactory *target;
static guint counter;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  GError *error = NULL;

  fuzz_init_logging ();
  source = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
  g_assert_no_error (error);
  target = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
  g_assert_no_error (error);
  return 0;
}

static gint64
write_one (EsStream   *stream,
           GBytes     *bytes,
           const char *metadata,
           GError    **error)
{
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Fuzz", bytes);

  if (metadata != NULL)
    es_candidate_event_set_metadata (event, metadata);
  return es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *stream_id = g_strdup_printf ("s%u", ++counter);
  g_autofree char *text = fuzz_strndup (data, size);
  g_autoptr(GBytes) bytes = g_bytes_new (data, size);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsStream) copy = NULL;
  g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GBytes) exported = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsStoredEvent) stored = NULL;
  g_autoptr(GError) error = NULL;
  const char *metadata = NULL;

  stream = es_stream_factory_open_stream (source, stream_id, NULL, &error);
  FUZZ_CHECK (stream != NULL);
  if (size > 0 && data[0] == '{')
    {
      metadata = text;
      if (write_one (stream, bytes, metadata, &error) < 0)
        {
          FUZZ_CHECK (g_error_matches (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT));
          g_clear_error (&error);
          metadata = NULL;
        }
    }
  if (metadata == NULL)
    FUZZ_CHECK (write_one (stream, bytes, NULL, &error) == 1);

  FUZZ_CHECK (es_stream_factory_export_events (source, out, stream_id, NULL,
                                               ES_EXPORT_FLAGS_NONE, NULL, NULL, NULL,
                                               &error) == 1);
  FUZZ_CHECK (g_output_stream_close (out, NULL, NULL));
  exported = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
  /* One line, whatever the data. */
  FUZZ_CHECK (memchr (g_bytes_get_data (exported, NULL), '\n',
                      g_bytes_get_size (exported) - 1) == NULL);

  in = g_memory_input_stream_new_from_bytes (exported);
  FUZZ_CHECK (es_stream_factory_import_events (target, in, ES_IMPORT_FLAGS_NONE, NULL, NULL,
                                               NULL, &error) == 1);

  copy = es_stream_factory_open_stream (target, stream_id, NULL, &error);
  FUZZ_CHECK (copy != NULL);
  enumerator = es_stream_read (copy, 0, NULL, NULL, &error);
  FUZZ_CHECK (enumerator != NULL);
  stored = es_event_enumerator_next (enumerator, NULL, &error);
  FUZZ_CHECK (stored != NULL);
  FUZZ_CHECK (g_bytes_equal (es_stored_event_get_data (stored), bytes));
  FUZZ_CHECK (g_strcmp0 (es_stored_event_get_metadata (stored), metadata) == 0);
  return 0;
}
