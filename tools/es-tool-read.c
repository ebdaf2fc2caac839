/* es-tool-read.c: the subcommands that look: info, streams, read, tail.
 * They open SQLite databases read-only (nothing is written, no -wal or
 * -shm file is left behind by them).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "es-glib/es-export-format-private.h"
#include "es-tool.h"

static const char *
state_name (EsStreamState state)
{
  switch (state)
    {
    case ES_STREAM_STATE_ACTIVE: return "active";
    case ES_STREAM_STATE_DELETED: return "deleted";
    case ES_STREAM_STATE_TOMBSTONED: return "tombstoned";
    default: return "unknown";
    }
}

/* Events -------------------------------------------------------------- */

/* The JSON Lines form of an event: the line es_stream_factory_export_events()
 * writes (doc/export-format.md), from the same function, so that
 * `read --json` and `export` can be compared and fed to `import`. */
static void
print_event_json (EsStoredEvent *event)
{
  static JsonParser *parser;
  g_autoptr(GString) out = g_string_new (NULL);

  if (parser == NULL)
    parser = json_parser_new_immutable ();
  _es_export_append_event (out, parser, event, FALSE);
  fputs (out->str, stdout);
}

static void
append_indented (GString    *out,
                 const char *text,
                 const char *indent)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    g_string_append_printf (out, "%s%s\n", indent, lines[i]);
}

static char *
pretty_json (JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();

  json_generator_set_pretty (generator, TRUE);
  json_generator_set_indent (generator, 2);
  json_generator_set_root (generator, node);
  return json_generator_to_data (generator, NULL);
}

/* The human form:
 *   cart-1 #2  seq 7  2026-01-01T00:00:00.000000Z  ItemAdded
 *     data: {
 *       "sku": "x"
 *     }
 *     metadata: {"tenant":"acme"}
 *     idempotency key: k-1
 */
static void
print_event_human (EsTool        *tool,
                   EsStoredEvent *event)
{
  g_autoptr(GString) out = g_string_new (NULL);
  g_autofree char *time = es_tool_format_time (es_stored_event_get_timestamp_usec (event));
  GBytes *data = es_stored_event_get_data (event);
  const char *metadata = es_stored_event_get_metadata (event);
  const char *key = es_stored_event_get_idempotency_key (event);
  gsize size = 0;
  const char *bytes = data != NULL ? g_bytes_get_data (data, &size) : NULL;
  g_autoptr(JsonNode) node = NULL;

  g_string_append_printf (out, "%s%s #%" G_GINT64_FORMAT "%s  seq %" G_GINT64_FORMAT "  %s%s%s  %s%s%s",
                          es_tool_color (tool, "\033[1;36m"),
                          es_stored_event_get_stream_id (event),
                          es_stored_event_get_version (event),
                          es_tool_color (tool, "\033[0m"),
                          es_stored_event_get_sequence_id (event),
                          es_tool_color (tool, "\033[2m"), time, es_tool_color (tool, "\033[0m"),
                          es_tool_color (tool, "\033[1;32m"),
                          es_stored_event_get_event_type (event),
                          es_tool_color (tool, "\033[0m"));
  if (es_stored_event_get_erased (event))
    g_string_append_printf (out, "  %s%s%s", es_tool_color (tool, "\033[31m"), _("(erased)"),
                            es_tool_color (tool, "\033[0m"));
  g_string_append_c (out, '\n');

  node = es_tool_parse_json (bytes, size);
  if (node != NULL)
    {
      g_autofree char *text = pretty_json (node);

      if (strchr (text, '\n') == NULL)
        g_string_append_printf (out, "  data: %s\n", text);
      else
        {
          g_string_append (out, "  data:\n");
          append_indented (out, text, "    ");
        }
    }
  else if (size == 0)
    g_string_append (out, "  data: (empty)\n");
  else if (g_utf8_validate (bytes, size, NULL) && memchr (bytes, '\0', size) == NULL)
    {
      g_autofree char *text = g_strndup (bytes, size);

      g_string_append_printf (out, "  data (text): %s\n", text);
    }
  else
    {
      g_autofree char *b64 = g_base64_encode ((const guchar *) bytes, size);

      g_string_append_printf (out, "  data (%" G_GSIZE_FORMAT " bytes, base64): %s\n", size, b64);
    }

  if (metadata != NULL)
    g_string_append_printf (out, "  metadata: %s\n", metadata);
  if (key != NULL)
    g_string_append_printf (out, "  idempotency key: %s\n", key);

  fputs (out->str, stdout);
}

static void
print_event (EsTool        *tool,
             gboolean       json,
             EsStoredEvent *event)
{
  if (json)
    print_event_json (event);
  else
    print_event_human (tool, event);
}

/* info ---------------------------------------------------------------- */

/* @location with any password replaced by "***": in a URI
 * (postgresql://user:secret@host/db) and as a password=secret pair. */
static char *
redact_location (const char *location)
{
  g_autoptr(GString) s = g_string_new (location);
  const char *scheme_end = strstr (s->str, "://");
  char *p;

  if (scheme_end != NULL)
    {
      const char *authority = scheme_end + 3;
      const char *at = strchr (authority, '@');
      const char *slash = strchr (authority, '/');
      const char *colon = strchr (authority, ':');

      if (at != NULL && (slash == NULL || at < slash) && colon != NULL && colon < at)
        {
          gsize start = colon + 1 - s->str;

          g_string_erase (s, start, at - colon - 1);
          g_string_insert (s, start, "***");
        }
    }

  for (p = strstr (s->str, "password="); p != NULL; p = strstr (p, "password="))
    {
      gsize start = p + strlen ("password=") - s->str;
      gsize end = start;

      if (p != s->str && p[-1] != ' ' && p[-1] != '?' && p[-1] != '&')
        {
          p += strlen ("password=");
          continue;
        }
      while (end < s->len && s->str[end] != ' ' && s->str[end] != '&')
        end++;
      g_string_erase (s, start, end - start);
      g_string_insert (s, start, "***");
      p = s->str + start;
    }
  return g_string_free (g_steal_pointer (&s), FALSE);
}

int
es_tool_info (EsTool *tool,
              int     argc,
              char  **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print one JSON object"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("Describe a database: its backend, its size, how many streams, events and subscriptions it holds"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(GPtrArray) subscriptions = NULL;
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) last = NULL;
  g_autoptr(EsStoredEvent) last_event = NULL;
  EsStreamFactory *factory;
  gint64 n_streams = 0, n_deleted = 0, n_events = 0, last_seq = 0, file_size = -1;
  const char *location;
  g_autofree char *shown = NULL;
  gboolean postgres;
  int status = -1;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;
  location = argv[1];
  shown = redact_location (location);
  postgres = es_tool_is_postgres (location);

  factory = es_tool_open (tool, location, TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  streams = es_stream_factory_list_streams (factory, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED,
                                            NULL, &error);
  while (streams != NULL)
    {
      g_autoptr(EsStreamInfo) info = es_stream_info_enumerator_next (streams, NULL, &error);

      if (info == NULL)
        break;
      if (es_stream_info_get_state (info) == ES_STREAM_STATE_ACTIVE)
        n_streams++;
      else
        n_deleted++;
      n_events += es_stream_info_get_event_count (info);
    }
  if (error == NULL)
    subscriptions = es_stream_factory_list_subscriptions (factory, NULL, &error);
  if (error == NULL)
    all = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, &error);
  if (error == NULL)
    last = es_stream_read_backwards (all, ES_READ_FROM_END, NULL, NULL, &error);
  if (error == NULL)
    {
      last_event = es_event_enumerator_next (last, NULL, &error);
      if (last_event != NULL)
        last_seq = es_stored_event_get_sequence_id (last_event);
    }
  if (error != NULL)
    {
      status = es_tool_gerror (tool, error);
      es_tool_close (factory);
      return status;
    }

  if (!postgres)
    {
      GStatBuf st;

      if (g_stat (location, &st) == 0)
        file_size = st.st_size;
    }

  if (json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new_immutable ();

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "backend");
      json_builder_add_string_value (b, postgres ? "postgresql" : "sqlite");
      json_builder_set_member_name (b, "location");
      json_builder_add_string_value (b, shown);
      if (file_size >= 0)
        {
          json_builder_set_member_name (b, "file_size");
          json_builder_add_int_value (b, file_size);
        }
      json_builder_set_member_name (b, "streams");
      json_builder_add_int_value (b, n_streams);
      json_builder_set_member_name (b, "deleted_streams");
      json_builder_add_int_value (b, n_deleted);
      json_builder_set_member_name (b, "events");
      json_builder_add_int_value (b, n_events);
      json_builder_set_member_name (b, "last_sequence_id");
      json_builder_add_int_value (b, last_seq);
      json_builder_set_member_name (b, "subscriptions");
      json_builder_add_int_value (b, subscriptions->len);
      json_builder_end_object (b);
      es_tool_print_json (b);
    }
  else
    {
      g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
      char *row[3] = { NULL, };

#define ROW(k, v) do { row[0] = g_strconcat (k, ":", NULL); row[1] = (v); \
                       g_ptr_array_add (rows, g_strdupv (row)); \
                       g_free (row[0]); g_free (row[1]); } while (0)
      /* The table has no header row: es_tool_print_table makes the first
       * row bold, so start with the backend. */
      ROW (_("Backend"), g_strdup (postgres ? "PostgreSQL" : "SQLite"));
      ROW (_("Location"), g_strdup (shown));
      if (file_size >= 0)
        ROW (_("File size"), g_strdup_printf ("%" G_GINT64_FORMAT, file_size));
      ROW (_("Streams"), g_strdup_printf ("%" G_GINT64_FORMAT, n_streams));
      ROW (_("Deleted streams"), g_strdup_printf ("%" G_GINT64_FORMAT, n_deleted));
      ROW (_("Events"), g_strdup_printf ("%" G_GINT64_FORMAT, n_events));
      ROW (_("Last sequence id"), g_strdup_printf ("%" G_GINT64_FORMAT, last_seq));
      ROW (_("Subscriptions"), g_strdup_printf ("%u", subscriptions->len));
#undef ROW
      {
        gboolean color = tool->color;

        tool->color = FALSE;
        es_tool_print_table (tool, rows, 2);
        tool->color = color;
      }
    }

  es_tool_close (factory);
  return ES_TOOL_EXIT_OK;
}

/* streams ------------------------------------------------------------- */

int
es_tool_streams (EsTool *tool,
                 int     argc,
                 char  **argv)
{
  gboolean json = FALSE, all = FALSE, names_only = FALSE;
  g_autofree char *prefix = NULL;
  const GOptionEntry entries[] = {
    { "prefix", 'p', 0, G_OPTION_ARG_STRING, &prefix, N_("Only the streams whose id starts with PREFIX"), N_("PREFIX") },
    { "all", 'a', 0, G_OPTION_ARG_NONE, &all, N_("Include deleted and tombstoned streams"), NULL },
    { "names-only", 0, 0, G_OPTION_ARG_NONE, &names_only, N_("Print only the stream ids, one a line"), NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON Lines, one stream a line"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("List the streams of a database, in the order of their ids"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamInfoEnumerator) streams = NULL;
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  EsStreamFactory *factory;
  int status = -1;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;

  factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  streams = es_stream_factory_list_streams (factory, prefix,
                                            all ? ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED
                                                : ES_LIST_STREAMS_FLAGS_NONE,
                                            NULL, &error);
  if (streams != NULL && !json && !names_only)
    {
      char *header[] = { _("STREAM"), _("STATE"), _("VERSION"), _("EVENTS"),
                         _("FIRST"), _("LAST WRITE"), NULL };

      g_ptr_array_add (rows, g_strdupv (header));
    }

  while (streams != NULL)
    {
      g_autoptr(EsStreamInfo) info = es_stream_info_enumerator_next (streams, NULL, &error);
      const char *id;

      if (info == NULL)
        break;
      id = es_stream_info_get_stream_id (info);
      if (names_only)
        g_print ("%s\n", id);
      else if (json)
        {
          g_autoptr(JsonBuilder) b = json_builder_new_immutable ();
          gint64 first_usec = es_stream_info_get_first_timestamp_usec (info);
          gint64 last_usec = es_stream_info_get_last_timestamp_usec (info);

          json_builder_begin_object (b);
          json_builder_set_member_name (b, "stream_id");
          json_builder_add_string_value (b, id);
          json_builder_set_member_name (b, "state");
          json_builder_add_string_value (b, state_name (es_stream_info_get_state (info)));
          json_builder_set_member_name (b, "version");
          json_builder_add_int_value (b, es_stream_info_get_current_version (info));
          json_builder_set_member_name (b, "event_count");
          json_builder_add_int_value (b, es_stream_info_get_event_count (info));
          json_builder_set_member_name (b, "first_version");
          json_builder_add_int_value (b, es_stream_info_get_first_version (info));
          json_builder_set_member_name (b, "first_timestamp");
          if (es_stream_info_get_event_count (info) > 0)
            {
              g_autofree char *t = es_tool_format_time (first_usec);
              json_builder_add_string_value (b, t);
            }
          else
            json_builder_add_null_value (b);
          json_builder_set_member_name (b, "last_timestamp");
          if (es_stream_info_get_event_count (info) > 0)
            {
              g_autofree char *t = es_tool_format_time (last_usec);
              json_builder_add_string_value (b, t);
            }
          else
            json_builder_add_null_value (b);
          json_builder_set_member_name (b, "max_age_seconds");
          json_builder_add_int_value (b, es_stream_info_get_max_age (info) / G_USEC_PER_SEC);
          json_builder_set_member_name (b, "max_count");
          json_builder_add_int_value (b, es_stream_info_get_max_count (info));
          json_builder_end_object (b);
          es_tool_print_json (b);
        }
      else
        {
          char *row[7] = { NULL, };
          gboolean has_events = es_stream_info_get_event_count (info) > 0;

          row[0] = g_strdup (id);
          row[1] = g_strdup (state_name (es_stream_info_get_state (info)));
          row[2] = g_strdup_printf ("%" G_GINT64_FORMAT, es_stream_info_get_current_version (info));
          row[3] = g_strdup_printf ("%" G_GINT64_FORMAT, es_stream_info_get_event_count (info));
          row[4] = has_events ? g_strdup_printf ("%" G_GINT64_FORMAT, es_stream_info_get_first_version (info))
                              : g_strdup ("-");
          row[5] = has_events ? es_tool_format_time (es_stream_info_get_last_timestamp_usec (info))
                              : g_strdup ("-");
          g_ptr_array_add (rows, row[0] == NULL ? NULL : g_strdupv (row));
          for (guint i = 0; i < 6; i++)
            g_free (row[i]);
        }
    }

  if (error != NULL)
    status = es_tool_gerror (tool, error);
  else
    {
      if (!json && !names_only)
        es_tool_print_table (tool, rows, 6);
      status = ES_TOOL_EXIT_OK;
    }
  es_tool_close (factory);
  return status;
}

/* read ---------------------------------------------------------------- */

int
es_tool_read (EsTool *tool,
              int     argc,
              char  **argv)
{
  gboolean json = FALSE, newest_first = FALSE;
  g_autofree char *after_text = NULL, *before_text = NULL, *limit_text = NULL;
  g_auto(GStrv) filters = NULL;
  const GOptionEntry entries[] = {
    { "after", 0, 0, G_OPTION_ARG_STRING, &after_text, N_("Start after this version (sequence id for @all)"), N_("N") },
    { "before", 0, 0, G_OPTION_ARG_STRING, &before_text, N_("Read newest first, from before this version (sequence id for @all)"), N_("N") },
    { "newest-first", 'r', 0, G_OPTION_ARG_NONE, &newest_first, N_("Read newest first"), NULL },
    { "filter", 'f', 0, G_OPTION_ARG_STRING_ARRAY, &filters, N_("Only events matching EXPR (repeatable; see es-tool(1))"), N_("EXPR") },
    { "limit", 'n', 0, G_OPTION_ARG_STRING, &limit_text, N_("Print at most N events"), N_("N") },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON Lines, one event a line"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE STREAM|@all"),
                            _("Print the events of a stream, or of every stream in commit order with @all.\n\n"
                              "Filters: FIELD=VALUE, FIELD~PATTERN (SQL LIKE), FIELD<VALUE, <=, >, >=;\n"
                              "fields: stream_id, event_type, version, sequence_id, timestamp, metadata.KEY"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventFilter) filter = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsEventEnumerator) events = NULL;
  EsStreamFactory *factory;
  gint64 after = 0, before = ES_READ_FROM_END, limit = -1, printed = 0;
  int status = -1;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 2, 2)) >= 0)
    return status;
  if (after_text != NULL && !es_tool_parse_int64 (tool, "--after", after_text, 0, &after, &status))
    return status;
  if (before_text != NULL && !es_tool_parse_int64 (tool, "--before", before_text, 1, &before, &status))
    return status;
  if (limit_text != NULL && !es_tool_parse_int64 (tool, "--limit", limit_text, 0, &limit, &status))
    return status;
  if (before_text != NULL)
    newest_first = TRUE;
  if (after_text != NULL && newest_first)
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                          _("--after reads oldest first: it cannot be combined with --before or --newest-first"));

  filter = es_tool_parse_filters ((const char * const *) filters, &error);
  if (error != NULL)
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE, "%s", error->message);

  factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  /* A stream that was never written reads as empty through the library;
   * the tool says "not found" instead, unless it is @all. */
  if (!g_str_equal (argv[2], ES_ALL_STREAM))
    {
      g_autoptr(EsStreamInfo) info = es_stream_factory_get_stream_info (factory, argv[2], NULL, &error);

      if (error == NULL &&
          (info == NULL || (es_stream_info_get_current_version (info) == 0 &&
                            es_stream_info_get_state (info) == ES_STREAM_STATE_ACTIVE)))
        g_set_error (&error, ES_ERROR, ES_ERROR_NOT_FOUND,
                     _("No stream '%s'"), argv[2]);
    }
  if (error == NULL)
    stream = es_stream_factory_open_stream (factory, argv[2], NULL, &error);
  if (stream != NULL)
    events = newest_first ? es_stream_read_backwards (stream, before, filter, NULL, &error)
                          : es_stream_read (stream, after, filter, NULL, &error);

  while (events != NULL && (limit < 0 || printed < limit))
    {
      g_autoptr(EsStoredEvent) event = es_event_enumerator_next (events, NULL, &error);

      if (event == NULL)
        break;
      print_event (tool, json, event);
      printed++;
    }
  if (events != NULL)
    es_event_enumerator_close (events, NULL, NULL);

  status = error != NULL ? es_tool_gerror (tool, error) : ES_TOOL_EXIT_OK;
  es_tool_close (factory);
  return status;
}

/* tail ---------------------------------------------------------------- */

typedef struct
{
  EsTool        *tool;
  gboolean       json;
  EsEventFilter *filter;
  GMainLoop     *loop;
  GError        *error;
} TailData;

static void
on_tail_event (EsWatch       *watch,
               EsStoredEvent *event,
               TailData      *data)
{
  if (es_stored_event_get_flags (event) & ES_STORED_EVENT_FLAGS_TOMBSTONE)
    return;
  if (data->filter != NULL && !es_event_filter_matches (data->filter, event))
    return;
  print_event (data->tool, data->json, event);
  fflush (stdout);
}

static void
on_tail_error (EsWatch      *watch,
               const GError *error,
               TailData     *data)
{
  data->error = g_error_copy (error);
  g_main_loop_quit (data->loop);
}

static gboolean
on_tail_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

int
es_tool_tail (EsTool *tool,
              int     argc,
              char  **argv)
{
  gboolean json = FALSE, follow = FALSE;
  g_autofree char *lines_text = NULL;
  g_auto(GStrv) filters = NULL;
  const GOptionEntry entries[] = {
    { "follow", 'f', 0, G_OPTION_ARG_NONE, &follow, N_("Keep printing new events as they are written (stop with Ctrl-C)"), NULL },
    { "lines", 'n', 0, G_OPTION_ARG_STRING, &lines_text, N_("Print the last N events first (default 10)"), N_("N") },
    { "filter", 0, 0, G_OPTION_ARG_STRING_ARRAY, &filters, N_("Only events matching EXPR (repeatable; see es-tool(1))"), N_("EXPR") },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON Lines, one event a line"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE STREAM|@all"),
                            _("Print the newest events of a stream or of @all, oldest of them first; with -f, then print every new event, written by any process, until interrupted"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventFilter) filter = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsEventEnumerator) events = NULL;
  g_autoptr(GPtrArray) newest = g_ptr_array_new_with_free_func (g_object_unref);
  EsStreamFactory *factory;
  gint64 lines = 10, position = 0;
  int status = -1;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 2, 2)) >= 0)
    return status;
  if (lines_text != NULL && !es_tool_parse_int64 (tool, "--lines", lines_text, 0, &lines, &status))
    return status;
  filter = es_tool_parse_filters ((const char * const *) filters, &error);
  if (error != NULL)
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE, "%s", error->message);

  factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  /* The position first, then the events before it: what is written in
   * between comes through the watch, exactly once. */
  stream = es_stream_factory_open_stream (factory, argv[2], NULL, &error);
  if (stream != NULL)
    position = es_stream_query_version (stream, NULL, &error);
  if (error == NULL && position > 0 && lines > 0)
    events = es_stream_read_backwards (stream, position + 1, filter, NULL, &error);
  while (events != NULL && newest->len < (guint) MIN (lines, G_MAXUINT))
    {
      EsStoredEvent *event = es_event_enumerator_next (events, NULL, &error);

      if (event == NULL)
        break;
      g_ptr_array_add (newest, event);
    }
  for (guint i = newest->len; error == NULL && i > 0; i--)
    print_event (tool, json, g_ptr_array_index (newest, i - 1));
  fflush (stdout);

  if (error == NULL && follow)
    {
      g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
      g_autoptr(EsWatch) watch = es_stream_watch (stream, position);
      TailData data = { tool, json, filter, loop, NULL };
      guint sigint = g_unix_signal_add (SIGINT, on_tail_signal, loop);
      guint sigterm = g_unix_signal_add (SIGTERM, on_tail_signal, loop);

      g_signal_connect (watch, "event", G_CALLBACK (on_tail_event), &data);
      g_signal_connect (watch, "error", G_CALLBACK (on_tail_error), &data);
      g_main_loop_run (loop);
      es_watch_stop (watch);
      g_source_remove (sigint);
      g_source_remove (sigterm);
      if (data.error != NULL)
        g_propagate_error (&error, data.error);
    }

  status = error != NULL ? es_tool_gerror (tool, error) : ES_TOOL_EXIT_OK;
  es_tool_close (factory);
  return status;
}
