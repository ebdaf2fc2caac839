/* test-i18n.c: es-glib's error messages come out in the user's language.
 *
 * Run with LANGUAGE=de, LC_ALL=C.UTF-8 and ES_LOCALEDIR=<build>/po (see
 * meson.build), where the build put de/LC_MESSAGES/es-glib.mo. gettext
 * honours LANGUAGE in every locale but "C", so no German locale needs to
 * be installed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <libintl.h>
#include <locale.h>

#include <es-glib/es-glib.h>

/* The catalogue's translation of the optimistic concurrency error. */
#define WRONG_VERSION_MSGID "Expected version %lld but stream '%s' is at version %lld"
#define WRONG_VERSION_MSGSTR "Version %lld erwartet, aber der Stream »%s« ist bei Version %lld"

/* Reads the msgstr of @msgid from po/de.po: only the simple layout
 * xgettext and msgmerge write (one-line msgid, msgstr on one or more
 * lines of quoted text). */
static char *
de_po_msgstr (const char *msgid)
{
  g_autofree char *path = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *needle = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GString) msgstr = NULL;
  g_autoptr(GError) error = NULL;
  gboolean in_msgstr = FALSE;

  path = g_build_filename (g_getenv ("ES_TEST_PO_DIR"), "de.po", NULL);
  g_file_get_contents (path, &contents, NULL, &error);
  g_assert_no_error (error);

  needle = g_strdup_printf ("msgid \"%s\"", msgid);
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];

      if (msgstr == NULL)
        {
          if (g_str_equal (line, needle))
            msgstr = g_string_new (NULL);
          continue;
        }
      if (g_str_has_prefix (line, "msgstr "))
        {
          in_msgstr = TRUE;
          line += strlen ("msgstr ");
        }
      if (!in_msgstr)
        continue;
      if (line[0] != '"')
        break;
      /* "text" without the quotes; the catalogue's strings need no unescaping here. */
      g_string_append_len (msgstr, line + 1, strlen (line) - 2);
    }

  g_assert_nonnull (msgstr);
  return g_string_free (g_steal_pointer (&msgstr), FALSE);
}

static void
test_text_domain (void)
{
  const char *dir = bindtextdomain ("es-glib", NULL);
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(GError) error = NULL;

  /* Creating any es-glib object binds the domain... */
  factory = es_sqlite_stream_factory_new (NULL, NULL, &error);
  g_assert_no_error (error);

  /* ... to the directory ES_LOCALEDIR names (the build tree's po/). */
  dir = bindtextdomain ("es-glib", NULL);
  g_assert_cmpstr (dir, ==, g_getenv ("ES_LOCALEDIR"));
  g_assert_cmpstr (bind_textdomain_codeset ("es-glib", NULL), ==, "UTF-8");

  /* The catalogue is there and is German. */
  g_assert_cmpstr (dgettext ("es-glib", WRONG_VERSION_MSGID), ==, WRONG_VERSION_MSGSTR);

  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
}

static void
test_catalogue_matches_po (void)
{
  g_autofree char *msgstr = de_po_msgstr (WRONG_VERSION_MSGID);

  g_assert_cmpstr (msgstr, ==, WRONG_VERSION_MSGSTR);
}

static EsCandidateEvent *
candidate (const char *event_type,
           const char *text)
{
  g_autoptr(GBytes) data = g_bytes_new (text, strlen (text));

  return es_candidate_event_new (event_type, data);
}

static void
test_wrong_expected_version (void)
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) first = candidate ("TodoAdded", "Buy milk");
  g_autoptr(EsCandidateEvent) second = candidate ("TodoAdded", "Water the plants");
  g_autoptr(EsCandidateEvent) late = candidate ("TodoCompleted", "1");
  EsCandidateEvent *both[] = { first, second };
  g_autoptr(GError) error = NULL;
  gint64 version;

  factory = es_sqlite_stream_factory_new (NULL, NULL, &error);
  g_assert_no_error (error);
  stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "todo-1", NULL, &error);
  g_assert_no_error (error);

  version = es_stream_write (stream, both, G_N_ELEMENTS (both), ES_VERSION_NO_STREAM, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 2);

  /* Expects version 5, the stream is at 2: the German message, with the values. */
  version = es_stream_write (stream, &late, 1, 5, NULL, &error);
  g_assert_cmpint (version, <, 0);
  g_assert_error (error, ES_ERROR, ES_ERROR_WRONG_EXPECTED_VERSION);
  g_assert_cmpstr (error->message, ==,
                   "Version 5 erwartet, aber der Stream »todo-1« ist bei Version 2");
  g_clear_error (&error);

  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
}

static void
test_invalid_argument (void)
{
  g_autoptr(EsSqliteStreamFactory) factory = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsEventFilter) filter = es_event_filter_new ();
  g_autoptr(EsEventEnumerator) events = NULL;
  g_autoptr(EsStoredEvent) event = NULL;
  g_autoptr(GError) error = NULL;

  factory = es_sqlite_stream_factory_new (NULL, NULL, &error);
  g_assert_no_error (error);
  stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "todo-1", NULL, &error);
  g_assert_no_error (error);

  /* A filter on a field that does not exist: the error may come from the
   * read or from the enumerator's first next(). */
  es_event_filter_add_equals (filter, "colour", g_variant_new_string ("red"));
  events = es_stream_read (stream, 0, filter, NULL, &error);
  if (events != NULL)
    {
      event = es_event_enumerator_next (events, NULL, &error);
      g_assert_null (event);
    }
  g_assert_error (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (error->message, ==, "Unbekanntes Filterfeld »colour«");
  g_clear_error (&error);

  g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  /* Any locale but "C" makes glibc's gettext honour LANGUAGE. */
  if (setlocale (LC_ALL, "") == NULL || g_strcmp0 (setlocale (LC_ALL, NULL), "C") == 0)
    setlocale (LC_ALL, "C.UTF-8");
  g_setenv ("LANGUAGE", "de", TRUE);

  g_test_init (&argc, &argv, NULL);

  if (g_getenv ("ES_LOCALEDIR") == NULL || g_getenv ("ES_TEST_PO_DIR") == NULL)
    {
      g_test_skip_printf ("ES_LOCALEDIR and ES_TEST_PO_DIR must be set (run through meson test)");
      return g_test_run ();
    }

  g_test_add_func ("/i18n/text-domain", test_text_domain);
  g_test_add_func ("/i18n/catalogue-matches-po", test_catalogue_matches_po);
  g_test_add_func ("/i18n/wrong-expected-version", test_wrong_expected_version);
  g_test_add_func ("/i18n/invalid-argument", test_invalid_argument);

  return g_test_run ();
}
