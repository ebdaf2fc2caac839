/* test-conformance-metaindex.c: declared metadata paths (issue 21), on
 * every backend: es_stream_factory_add_metadata_index() and its twins, and
 * the rule that a filter gives the same events with or without the index.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "test-conformance.h"

#define N_EVENTS 120

static const char * const streams[] = { "meta-a", "meta-b", "meta-c" };

/* The metadata of the @i-th event written: strings, integers, doubles,
 * booleans, nested objects, null, objects where a scalar is looked for,
 * missing keys and no metadata at all. */
static const char *
metadata_for (guint i)
{
  switch (i % 10)
    {
    case 0:
    case 5:
      return "{\"tenant\":\"t1\",\"n\":1,\"flag\":true,\"user\":{\"id\":7}}";
    case 1:
    case 6:
      return "{\"tenant\":\"t2\",\"n\":1.0,\"flag\":false,\"user\":{\"id\":\"7\"}}";
    case 2:
    case 7:
      return "{\"tenant\":1,\"n\":\"1\",\"user\":\"t1\",\"flag\":\"true\"}";
    case 3:
    case 8:
      return "{\"other\":\"t1\"}";
    case 4:
      return NULL;
    case 9:
    default:
      return "{\"tenant\":{\"x\":1},\"n\":2.5,\"flag\":1,\"user\":{\"id\":7.0}}";
    }
}

/* Writes N_EVENTS events over the streams, interleaved, and erases two
 * that filters on `tenant` match. */
static void
write_dataset (EsStreamFactory *factory)
{
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < N_EVENTS; i++)
    {
      g_autoptr(EsStream) stream = es_test_open_stream (factory, streams[i % 3]);
      g_autofree char *text = g_strdup_printf ("e%u", i);
      g_autoptr(GBytes) data = g_bytes_new (text, strlen (text));
      g_autoptr(EsCandidateEvent) event =
        es_candidate_event_new (i % 2 == 0 ? "Even" : "Odd", data);

      if (metadata_for (i) != NULL)
        es_candidate_event_set_metadata (event, metadata_for (i));
      es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
      g_assert_no_error (error);
    }

  /* Events 0 and 15 (t1): versions 1 and 6 of meta-a. */
  es_stream_factory_erase_event (factory, "meta-a", 1, NULL, &error);
  g_assert_no_error (error);
  es_stream_factory_erase_event (factory, "meta-a", 6, NULL, &error);
  g_assert_no_error (error);
}

typedef EsEventFilter *(*FilterMaker) (void);

static EsEventFilter *
f_tenant_string (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.tenant", g_variant_new_string ("t1"));
  return f;
}

static EsEventFilter *
f_tenant_int (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.tenant", g_variant_new_int64 (1));
  return f;
}

static EsEventFilter *
f_tenant_double (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.tenant", g_variant_new_double (1.0));
  return f;
}

static EsEventFilter *
f_tenant_in (void)
{
  EsEventFilter *f = es_event_filter_new ();
  const char *values[] = { "t1", "t2", NULL };
  es_event_filter_add_in (f, "metadata.tenant", g_variant_new_strv (values, -1));
  return f;
}

/* Longer than the inline `in` lists: another translation. */
static EsEventFilter *
f_tenant_long_in (void)
{
  EsEventFilter *f = es_event_filter_new ();
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 3; i < 40; i++)
    g_ptr_array_add (values, g_strdup_printf ("t%u", i));
  g_ptr_array_add (values, g_strdup ("t2"));
  g_ptr_array_add (values, NULL);
  es_event_filter_add_in (f, "metadata.tenant",
                          g_variant_new_strv ((const char * const *) values->pdata, -1));
  return f;
}

/* The JSON text of the object some events hold at the path: a string
 * never equals an object. */
static EsEventFilter *
f_tenant_object_text (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.tenant", g_variant_new_string ("{\"x\":1}"));
  return f;
}

static EsEventFilter *
f_tenant_in_object_text (void)
{
  EsEventFilter *f = es_event_filter_new ();
  const char *values[] = { "{\"x\":1}", "t1", NULL };
  es_event_filter_add_in (f, "metadata.tenant", g_variant_new_strv (values, -1));
  return f;
}

static EsEventFilter *
f_n_double (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.n", g_variant_new_double (2.5));
  return f;
}

static EsEventFilter *
f_tenant_like (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_like (f, "metadata.tenant", "T%");
  return f;
}

static EsEventFilter *
f_tenant_and_type (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "event_type", g_variant_new_string ("Odd"));
  es_event_filter_add_equals (f, "metadata.tenant", g_variant_new_string ("t1"));
  return f;
}

static EsEventFilter *
f_n_int (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.n", g_variant_new_int32 (1));
  return f;
}

static EsEventFilter *
f_n_double_in (void)
{
  EsEventFilter *f = es_event_filter_new ();
  const double values[] = { 2.5, 1.0 };

  es_event_filter_add_in (f, "metadata.n",
                          g_variant_new_fixed_array (G_VARIANT_TYPE_DOUBLE, values, 2,
                                                     sizeof (double)));
  return f;
}

static EsEventFilter *
f_flag_in (void)
{
  EsEventFilter *f = es_event_filter_new ();

  es_event_filter_add_in (f, "metadata.flag", g_variant_new_parsed ("[true]"));
  return f;
}

static EsEventFilter *
f_n_greater (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_compare (f, "metadata.n", ES_FILTER_OPERATOR_GREATER,
                               g_variant_new_int64 (1));
  return f;
}

static EsEventFilter *
f_flag_true (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.flag", g_variant_new_boolean (TRUE));
  return f;
}

static EsEventFilter *
f_flag_false (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.flag", g_variant_new_boolean (FALSE));
  return f;
}

static EsEventFilter *
f_user_id_number (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.user.id", g_variant_new_int64 (7));
  return f;
}

static EsEventFilter *
f_user_id_string (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.user.id", g_variant_new_string ("7"));
  return f;
}

static EsEventFilter *
f_user_object (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.user", g_variant_new_string ("t1"));
  return f;
}

static EsEventFilter *
f_missing (void)
{
  EsEventFilter *f = es_event_filter_new ();
  es_event_filter_add_equals (f, "metadata.nowhere", g_variant_new_string ("t1"));
  return f;
}

static const struct
{
  const char  *name;
  FilterMaker  make;
  int          expected;  /* events of @all it selects, -1: not checked */
} filters[] = {
  /* 24 events with "t1", two of them erased. */
  { "tenant = 't1'", f_tenant_string, 22 },
  { "tenant = 1", f_tenant_int, 24 },
  { "tenant = 1.0", f_tenant_double, 24 },
  { "tenant in ['t1', 't2']", f_tenant_in, 46 },
  { "tenant in [38 strings]", f_tenant_long_in, 24 },
  { "tenant like 'T%'", f_tenant_like, 46 },
  { "tenant = '{\"x\":1}'", f_tenant_object_text, 0 },
  { "tenant in ['{\"x\":1}', 't1']", f_tenant_in_object_text, 22 },
  { "n = 2.5", f_n_double, 12 },
  { "event_type = 'Odd' and tenant = 't1'", f_tenant_and_type, 11 },
  /* 48 events with 1 or 1.0, two of them erased. */
  { "n = 1", f_n_int, 46 },
  { "n in [2.5, 1.0]", f_n_double_in, 58 },
  { "n > 1", f_n_greater, 12 },
  { "flag = true", f_flag_true, 22 },
  { "flag = false", f_flag_false, 24 },
  { "flag in [true]", f_flag_in, 22 },
  { "user.id = 7", f_user_id_number, 34 },
  { "user.id = '7'", f_user_id_string, 24 },
  { "user = 't1'", f_user_object, 24 },
  { "nowhere = 't1'", f_missing, 0 },
};

static const char * const declared[] = { "tenant", "n", "flag", "user.id", "user", "nowhere" };

/* "stream/version" of each event, in the order read. */
static char *
describe (GPtrArray *events)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = g_ptr_array_index (events, i);

      g_string_append_printf (text, "%s/%" G_GINT64_FORMAT "%s ",
                              es_stored_event_get_stream_id (event),
                              es_stored_event_get_version (event),
                              es_stored_event_get_metadata (event) == NULL ? "-" : "");
    }
  return g_string_free (text, FALSE);
}

static char *
read_backwards (EsStream      *stream,
                EsEventFilter *filter)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventEnumerator) enumerator =
    es_stream_read_backwards (stream, G_MAXINT64, filter, NULL, &error);
  g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func (g_object_unref);
  EsStoredEvent *event;

  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (enumerator, NULL, &error)) != NULL)
    g_ptr_array_add (events, event);
  g_assert_no_error (error);
  return describe (events);
}

/* Everything the reads of @filter answer: @all forwards, backwards and
 * counted, one stream forwards and counted. */
static char *
answers (EsStreamFactory *factory,
         EsEventFilter   *filter,
         int              expected)
{
  EsStorageHandle *storage = es_stream_factory_get_storage (factory);
  g_autoptr(EsStream) all = es_test_open_stream (factory, ES_ALL_STREAM);
  g_autoptr(EsStream) one = es_test_open_stream (factory, "meta-a");
  g_autoptr(GPtrArray) all_events = es_test_read_all_ok (all, 0, filter);
  g_autoptr(GPtrArray) one_events = es_test_read_all_ok (one, 0, filter);
  g_autofree char *all_text = describe (all_events);
  g_autofree char *one_text = describe (one_events);
  g_autofree char *back_text = read_backwards (all, filter);
  g_autoptr(GError) error = NULL;
  gint64 all_count;
  gint64 one_count;

  if (expected >= 0)
    g_assert_cmpint (all_events->len, ==, expected);
  all_count = es_storage_handle_count_events (storage, NULL, filter, 0, G_MAXINT64, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (all_count, ==, all_events->len);
  one_count = es_storage_handle_count_events (storage, "meta-a", filter, 0, G_MAXINT64, NULL,
                                              &error);
  g_assert_no_error (error);
  g_assert_cmpint (one_count, ==, one_events->len);

  return g_strdup_printf ("all: %s\nback: %s\none: %s", all_text, back_text, one_text);
}

static GStrv
list_indexes (EsStreamFactory *factory)
{
  g_autoptr(GError) error = NULL;
  GStrv paths = es_stream_factory_list_metadata_indexes (factory, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (paths);
  return paths;
}

static void
test_same_results (Fixture       *f,
                   gconstpointer  data)
{
  char *before[G_N_ELEMENTS (filters)];
  g_autoptr(GError) error = NULL;

  g_test_summary ("Every filter on a metadata path (strings, integers, doubles, booleans, "
                  "nested paths, objects, missing keys, no metadata, erased events; equals, "
                  "in, long in, like, comparisons, with another clause) selects the same "
                  "events in the same order, forwards, backwards, on @all and on a stream, "
                  "and counts them the same, before the paths are declared, while they are "
                  "and after they are dropped");

  write_dataset (f->factory);
  for (guint i = 0; i < G_N_ELEMENTS (filters); i++)
    {
      g_autoptr(EsEventFilter) filter = filters[i].make ();

      before[i] = answers (f->factory, filter, filters[i].expected);
    }

  for (guint i = 0; i < G_N_ELEMENTS (declared); i++)
    {
      es_stream_factory_add_metadata_index (f->factory, declared[i], NULL, &error);
      g_assert_no_error (error);
    }
  {
    g_auto(GStrv) paths = list_indexes (f->factory);
    g_assert_cmpuint (g_strv_length (paths), ==, G_N_ELEMENTS (declared));
  }

  for (guint i = 0; i < G_N_ELEMENTS (filters); i++)
    {
      g_autoptr(EsEventFilter) filter = filters[i].make ();
      g_autofree char *with = answers (f->factory, filter, filters[i].expected);

      g_test_message ("%s", filters[i].name);
      g_assert_cmpstr (with, ==, before[i]);
    }

  /* Written while declared: the index follows, the answers too. */
  {
    g_autoptr(EsStream) stream = es_test_open_stream (f->factory, "meta-late");
    g_autoptr(GBytes) bytes = g_bytes_new_static ("late", 4);
    g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Late", bytes);
    g_autoptr(EsEventFilter) filter = f_tenant_string ();
    g_autoptr(EsStream) all = es_test_open_stream (f->factory, ES_ALL_STREAM);
    g_autoptr(GPtrArray) events = NULL;
    EsStoredEvent *last;

    es_candidate_event_set_metadata (event, "{\"tenant\":\"t1\"}");
    es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error);
    g_assert_no_error (error);
    events = es_test_read_all_ok (all, 0, filter);
    g_assert_cmpuint (events->len, ==, 23);
    last = g_ptr_array_index (events, events->len - 1);
    g_assert_cmpstr (es_stored_event_get_stream_id (last), ==, "meta-late");
  }

  for (guint i = 0; i < G_N_ELEMENTS (declared); i++)
    {
      es_stream_factory_remove_metadata_index (f->factory, declared[i], NULL, &error);
      g_assert_no_error (error);
    }
  {
    g_auto(GStrv) paths = list_indexes (f->factory);
    g_assert_cmpuint (g_strv_length (paths), ==, 0);
  }
  for (guint i = 0; i < G_N_ELEMENTS (filters); i++)
    {
      g_autoptr(EsEventFilter) filter = filters[i].make ();
      /* One more t1 event now (meta-late, not in meta-a). */
      g_autofree char *after = answers (f->factory, filter, -1);

      if (filters[i].make != f_tenant_string && filters[i].make != f_tenant_in &&
          filters[i].make != f_tenant_like && filters[i].make != f_tenant_in_object_text)
        g_assert_cmpstr (after, ==, before[i]);
      g_free (before[i]);
    }
}

static void
assert_paths (EsStreamFactory    *factory,
              const char * const *expected)
{
  g_auto(GStrv) paths = list_indexes (factory);

  g_assert_true (g_strv_equal ((const char * const *) paths, expected));
}

static void
test_declare (Fixture       *f,
              gconstpointer  data)
{
  static const char * const bad[] = { "", ".a", "a.", "a..b", "a\"b", "a\tb", "a\nb" };
  const char * const none[] = { NULL };
  const char * const one[] = { "tenant", NULL };
  const char * const three[] = { "Tenant", "tenant", "user.id", NULL };
  const char * const two[] = { "Tenant", "user.id", NULL };
  g_autoptr(EsStreamFactory) other = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Declared metadata paths are listed in byte-wise order, case-sensitively; "
                  "declaring twice succeeds and lists once; a bad path fails with "
                  "INVALID_ARGUMENT naming it; removing an undeclared one with NOT_FOUND; "
                  "another handle on the same database sees the declarations");

  assert_paths (f->factory, none);
  g_assert_true (es_stream_factory_add_metadata_index (f->factory, "tenant", NULL, &error));
  g_assert_no_error (error);
  assert_paths (f->factory, one);
  g_assert_true (es_stream_factory_add_metadata_index (f->factory, "tenant", NULL, &error));
  g_assert_no_error (error);
  assert_paths (f->factory, one);

  g_assert_true (es_stream_factory_add_metadata_index (f->factory, "user.id", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (es_stream_factory_add_metadata_index (f->factory, "Tenant", NULL, &error));
  g_assert_no_error (error);
  assert_paths (f->factory, three);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_assert_false (es_stream_factory_add_metadata_index (f->factory, bad[i], NULL, &error));
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, bad[i]));
      g_clear_error (&error);
      g_assert_false (es_stream_factory_remove_metadata_index (f->factory, bad[i], NULL,
                                                               &error));
      g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  assert_paths (f->factory, three);

  g_assert_false (es_stream_factory_remove_metadata_index (f->factory, "user", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "'user'"));
  g_clear_error (&error);

  g_assert_true (es_stream_factory_remove_metadata_index (f->factory, "tenant", NULL, &error));
  g_assert_no_error (error);
  assert_paths (f->factory, two);
  g_assert_false (es_stream_factory_remove_metadata_index (f->factory, "tenant", NULL, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The declarations are in the database. */
  other = fixture_open_other_factory (f);
  if (other != NULL)
    {
      assert_paths (other, two);
      g_assert_true (es_stream_factory_remove_metadata_index (other, "Tenant", NULL, &error));
      g_assert_no_error (error);
      es_test_factory_close_and_free (g_steal_pointer (&other));
      {
        const char * const last[] = { "user.id", NULL };
        assert_paths (f->factory, last);
      }
    }
}

static void
test_async (Fixture       *f,
            gconstpointer  data)
{
  const char * const one[] = { "user.id", NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) paths = NULL;

  g_test_summary ("The _async twins declare, list and drop, and report errors");

  es_stream_factory_add_metadata_index_async (f->factory, "user.id", NULL,
                                              es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_true (es_stream_factory_add_metadata_index_finish (f->factory, result, &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  es_stream_factory_list_metadata_indexes_async (f->factory, NULL, es_test_store_result_cb,
                                                 &result);
  es_test_wait_result (&result);
  paths = es_stream_factory_list_metadata_indexes_finish (f->factory, result, &error);
  g_assert_no_error (error);
  g_assert_true (g_strv_equal ((const char * const *) paths, one));
  g_clear_object (&result);

  es_stream_factory_add_metadata_index_async (f->factory, "a..b", NULL,
                                              es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_false (es_stream_factory_add_metadata_index_finish (f->factory, result, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_clear_object (&result);

  es_stream_factory_remove_metadata_index_async (f->factory, "user.id", NULL,
                                                 es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_true (es_stream_factory_remove_metadata_index_finish (f->factory, result, &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  es_stream_factory_remove_metadata_index_async (f->factory, "user.id", NULL,
                                                 es_test_store_result_cb, &result);
  es_test_wait_result (&result);
  g_assert_false (es_stream_factory_remove_metadata_index_finish (f->factory, result, &error));
  g_assert_error (error, ES_ERROR, ES_ERROR_NOT_FOUND);
  g_clear_object (&result);
}

void
add_metaindex_tests (void)
{
  add_test ("metaindex/same-results", test_same_results);
  add_test ("metaindex/declare", test_declare);
  add_test ("metaindex/async", test_async);
}
