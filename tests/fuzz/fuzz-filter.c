/* fuzz-filter.c: fuzzed filter fields and values.
 *
 * Input: a header byte (operator: equals, in, like or one of the four
 * comparisons; value type), the field up to the first newline, then the
 * value's bytes (a serialized GVariant of the chosen type, untrusted; or
 * the LIKE pattern). A filter that
 * es_event_filter_validate() refuses must fail the read with
 * ES_ERROR_INVALID_ARGUMENT; one it accepts must read, and the SQLite
 * backend must return exactly the events es_event_filter_matches() (the
 * in-memory semantics) accepts: the two implementations are checked
 * against each other.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

static EsStreamFactory *factory;
static EsStream *all;
static EsStream *one;
static GPtrArray *stored;  /* every event, in sequence-id order */

static const char * const types[] = {
  "s", "x", "i", "u", "t", "y", "n", "q", "h", "d", "b", "v", "as", "(si)", "ms", "o", "g", "ay",
};

static const struct
{
  const char *stream_id;
  const char *event_type;
  const char *metadata;
} seeds[] = {
  { "s1", "Alpha", "{\"a\": 1, \"s\": \"x\", \"b\": true, \"d\": 1.5, \"n\": null, \"o\": {\"k\": \"v\"}}" },
  { "s1", "beta", "{\"a\": \"1\", \"s\": \"X%_\", \"b\": false, \"d\": 1}" },
  { "s2", "\xc3\x89T\xc3\x89", "{\"big\": 9007199254740993, \"neg\": -0.0, \"e\": 1e308, \"i\": -9223372036854775808}" },
  { "s2", "%_", NULL },
  { "s1", "Alpha", "{\"u\": \"caf\xc3\xa9\", \"a.b\": 1, \"a\": {\"b\": 2}}" },
  { "s2", "alpha", "{\"o\": [1, 2], \"s\": \"\", \"t\": \"true\", \"z\": 0}" },
  { "s1", "Gamma", "{}" },
};

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  GError *error = NULL;
  EsEventEnumerator *enumerator;
  EsStoredEvent *event;
  guint i;

  fuzz_init_logging ();
  factory = ES_STREAM_FACTORY (es_sqlite_stream_factory_new (NULL, NULL, &error));
  g_assert_no_error (error);
  all = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, &error);
  g_assert_no_error (error);
  one = es_stream_factory_open_stream (factory, "s1", NULL, &error);
  g_assert_no_error (error);

  for (i = 0; i < G_N_ELEMENTS (seeds); i++)
    {
      EsStream *stream = es_stream_factory_open_stream (factory, seeds[i].stream_id, NULL, &error);
      EsCandidateEvent *candidate = es_candidate_event_new (seeds[i].event_type, NULL);

      g_assert_no_error (error);
      es_candidate_event_set_metadata (candidate, seeds[i].metadata);
      es_stream_write (stream, &candidate, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
      g_object_unref (candidate);
      g_object_unref (stream);
    }

  stored = g_ptr_array_new_with_free_func (g_object_unref);
  enumerator = es_stream_read (all, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    g_ptr_array_add (stored, event);
  g_assert_no_error (error);
  g_object_unref (enumerator);
  return 0;
}

/* Reads @stream with @filter; the sequence ids found, or NULL on error. */
static GArray *
read_ids (EsStream      *stream,
          EsEventFilter *filter,
          GError       **error)
{
  g_autoptr(EsEventEnumerator) enumerator = es_stream_read (stream, 0, filter, NULL, error);
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  EsStoredEvent *event;

  if (enumerator == NULL)
    return NULL;
  while ((event = es_event_enumerator_next (enumerator, NULL, error)) != NULL)
    {
      gint64 id = es_stored_event_get_sequence_id (event);

      g_array_append_val (ids, id);
      g_object_unref (event);
    }
  if (*error != NULL)
    return NULL;
  return g_steal_pointer (&ids);
}

static void
check_against_memory (EsEventFilter *filter,
                      const char    *stream_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) ids = read_ids (stream_id != NULL ? one : all, filter, &error);
  guint i, j = 0;

  FUZZ_CHECK (ids != NULL);
  for (i = 0; i < stored->len; i++)
    {
      EsStoredEvent *event = stored->pdata[i];
      gboolean in_stream = stream_id == NULL ||
                           g_str_equal (es_stored_event_get_stream_id (event), stream_id);
      gboolean expected = in_stream && es_event_filter_matches (filter, event);
      gboolean found = j < ids->len &&
                       g_array_index (ids, gint64, j) == es_stored_event_get_sequence_id (event);

      if (expected != found)
        {
          g_printerr ("event %" G_GINT64_FORMAT " (%s, metadata %s): SQLite says %d, "
                      "es_event_filter_matches says %d\n",
                      es_stored_event_get_sequence_id (event),
                      es_stored_event_get_event_type (event),
                      es_stored_event_get_metadata (event), found, expected);
          abort ();
        }
      if (found)
        j++;
    }
  FUZZ_CHECK (j == ids->len);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) read_error = NULL;
  g_autoptr(GArray) ids = NULL;
  g_autofree char *field = NULL;
  const uint8_t *newline;
  const uint8_t *value;
  size_t value_size;
  guint op, type_index;

  if (size < 1)
    return 0;
  op = data[0] % 7;
  type_index = (data[0] / 7) % G_N_ELEMENTS (types);
  newline = memchr (data + 1, '\n', size - 1);
  if (newline == NULL)
    return 0;
  field = fuzz_strndup (data + 1, newline - (data + 1));
  value = newline + 1;
  value_size = size - (value - data);

  if (op == 2)
    {
      g_autofree char *pattern = fuzz_strndup (value, value_size);

      es_event_filter_add_like (filter, field, pattern);
    }
  else
    {
      g_autoptr(GVariantType) type = op == 1
        ? g_variant_type_new_array (G_VARIANT_TYPE (types[type_index]))
        : g_variant_type_new (types[type_index]);
      g_autoptr(GBytes) bytes = g_bytes_new (value, value_size);
      g_autoptr(GVariant) variant = g_variant_ref_sink (g_variant_new_from_bytes (type, bytes,
                                                                                  FALSE));

      if (op == 1)
        es_event_filter_add_in (filter, field, variant);
      else if (op == 0)
        es_event_filter_add_equals (filter, field, variant);
      else
        es_event_filter_add_compare (filter, field, ES_FILTER_OPERATOR_LESS + (op - 3),
                                     variant);
    }

  if (!es_event_filter_validate (filter, &error))
    {
      FUZZ_CHECK (g_error_matches (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT));
      ids = read_ids (all, filter, &read_error);
      FUZZ_CHECK (ids == NULL);
      FUZZ_CHECK (g_error_matches (read_error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT));
      return 0;
    }

  check_against_memory (filter, NULL);
  check_against_memory (filter, "s1");
  return 0;
}
