/* es-tool.c: the es-tool program: looks inside, maintains and copies
 * es-glib databases. This file holds main(), the list of subcommands and
 * what they share: opening a database (an SQLite path or a PostgreSQL
 * connection string), errors and exit codes, tables, colours, JSON.
 * The subcommands live in es-tool-read.c (info, streams, read, tail),
 * es-tool-transfer.c (export, import, backup, check), es-tool-admin.c
 * (the life cycle and the subscriptions) and
 * es-tool-filter.c (the --filter syntax). doc/es-tool.1 is the manual.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#ifdef ES_TOOL_HAVE_POSTGRES
# include <es-glib-pg/es-pg.h>
#endif

#include "es-tool.h"

typedef struct
{
  const char        *name;
  EsToolCommandFunc  func;
  const char        *summary;   /* N_() */
} EsToolCommand;

static const EsToolCommand commands[] = {
  { "info",          es_tool_info,          N_("Describe a database") },
  { "streams",       es_tool_streams,       N_("List the streams") },
  { "read",          es_tool_read,          N_("Print the events of a stream or of every stream") },
  { "tail",          es_tool_tail,          N_("Print the newest events, and follow new ones with -f") },
  { "export",        es_tool_export,        N_("Write the events as JSON Lines") },
  { "import",        es_tool_import,        N_("Store the events of an export") },
  { "backup",        es_tool_backup,        N_("Copy a live SQLite database to a new file") },
  { "check",         es_tool_check,         N_("Check the storage and es-glib's invariants") },
  { "delete",        es_tool_delete,        N_("Delete a stream (soft, or hard with --hard)") },
  { "truncate",      es_tool_truncate,      N_("Remove the events of a stream before a version") },
  { "erase",         es_tool_erase,         N_("Erase the data and metadata of one event") },
  { "retention",     es_tool_retention,     N_("Show or set a retention policy") },
  { "sweep",         es_tool_sweep,         N_("Enforce every retention policy now") },
  { "compact",       es_tool_compact,       N_("Give the space of removed events back") },
  { "subscriptions", es_tool_subscriptions, N_("List, reset or delete durable subscriptions") },
  { "index",         es_tool_index,         N_("List, declare or drop indexed metadata paths") },
};

/* Errors -------------------------------------------------------------- */

/* Prints "es-tool: COMMAND: MESSAGE" on stderr and returns @code. */
int
es_tool_error (EsTool     *tool,
               int         code,
               const char *format,
               ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  fflush (stdout);
  if (tool != NULL && tool->command != NULL)
    g_printerr ("es-tool: %s: %s\n", tool->command, message);
  else
    g_printerr ("es-tool: %s\n", message);
  return code;
}

/* Prints one line on stdout: the translatable messages have no "\n". */
void
es_tool_say (const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_print ("%s\n", message);
}

/* The exit code for an error of the library. */
int
es_tool_exit_for (const GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return ES_TOOL_EXIT_INTERRUPTED;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    return ES_TOOL_EXIT_NOT_FOUND;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_EXISTS))
    return ES_TOOL_EXIT_CONFLICT;
  if (error->domain != ES_ERROR)
    return ES_TOOL_EXIT_FAILED;

  switch ((EsError) error->code)
    {
    case ES_ERROR_INVALID_ARGUMENT:
      return ES_TOOL_EXIT_USAGE;
    case ES_ERROR_NOT_FOUND:
      return ES_TOOL_EXIT_NOT_FOUND;
    case ES_ERROR_WRONG_EXPECTED_VERSION:
    case ES_ERROR_STREAM_DELETED:
    case ES_ERROR_BUSY:
      return ES_TOOL_EXIT_CONFLICT;
    case ES_ERROR_FAILED:
    case ES_ERROR_CLOSED:
    case ES_ERROR_STORAGE:
    default:
      return ES_TOOL_EXIT_FAILED;
    }
}

int
es_tool_gerror (EsTool       *tool,
                const GError *error)
{
  return es_tool_error (tool, es_tool_exit_for (error), "%s", error->message);
}

/* Options ------------------------------------------------------------- */

GOptionContext *
es_tool_option_context (EsTool             *tool,
                        const char         *parameters,
                        const char         *summary,
                        const GOptionEntry *entries)
{
  GOptionContext *context = g_option_context_new (parameters);

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, summary);
  g_option_context_set_description (context,
    _("DATABASE is the path of an SQLite database or a PostgreSQL connection "
      "string (postgresql://... or host=... dbname=...).\n"
      "Exit status: 0 success, 1 failure, 2 usage error, 3 problems found, "
      "4 not found, 5 conflict, 130 interrupted"));
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  return context;
}

/* Parses the options of a subcommand; leaves its arguments in (*argv)[1..]
 * and checks their number. Returns -1 to go on, or an exit code. */
int
es_tool_parse (EsTool          *tool,
               GOptionContext  *context,
               int             *argc,
               char          ***argv,
               int              min_args,
               int              max_args)
{
  g_autoptr(GError) error = NULL;
  int n_args;

  if (!g_option_context_parse (context, argc, argv, &error))
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE, "%s", error->message);

  n_args = *argc - 1;
  if (n_args < min_args)
    {
      if (n_args == 0)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("No database given (see “es-tool %s --help”)"),
                              tool->command);
      return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                            _("Missing arguments (see “es-tool %s --help”)"),
                            tool->command);
    }
  if (max_args >= 0 && n_args > max_args)
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                          _("Unexpected argument '%s' (see “es-tool %s --help”)"),
                          (*argv)[max_args + 1], tool->command);
  return -1;
}

gboolean
es_tool_parse_int64 (EsTool     *tool,
                     const char *what,
                     const char *text,
                     gint64      min,
                     gint64     *out,
                     int        *exit_code)
{
  g_autoptr(GError) error = NULL;

  if (!g_ascii_string_to_signed (text, 10, min, G_MAXINT64, out, &error))
    {
      /* Translators: the first %s is an option or argument name
       * (--limit, VERSION), the second the value given */
      *exit_code = es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                                  _("Invalid %s '%s': expected an integer of at least %" G_GINT64_FORMAT),
                                  what, text, min);
      return FALSE;
    }
  return TRUE;
}

/* "90d", "12h", "30m", "45s", "2w", "1d12h", or a plain number of
 * seconds; "0" means no limit. */
gboolean
es_tool_parse_duration (const char *text,
                        GTimeSpan  *out)
{
  const char *p = text;
  GTimeSpan total = 0;

  if (text == NULL || *text == '\0')
    return FALSE;

  while (*p != '\0')
    {
      char *end = NULL;
      guint64 n;
      GTimeSpan unit;

      if (!g_ascii_isdigit (*p))
        return FALSE;
      errno = 0;
      n = g_ascii_strtoull (p, &end, 10);
      if (errno != 0 || end == p)
        return FALSE;
      p = end;
      switch (*p)
        {
        case 'w': unit = 7 * G_TIME_SPAN_DAY; p++; break;
        case 'd': unit = G_TIME_SPAN_DAY; p++; break;
        case 'h': unit = G_TIME_SPAN_HOUR; p++; break;
        case 'm': unit = G_TIME_SPAN_MINUTE; p++; break;
        case 's': unit = G_TIME_SPAN_SECOND; p++; break;
        case '\0': unit = G_TIME_SPAN_SECOND; break;
        default: return FALSE;
        }
      if (n > (guint64) (G_MAXINT64 / unit) ||
          total > G_MAXINT64 - (GTimeSpan) n * unit)
        return FALSE;
      total += (GTimeSpan) n * unit;
    }

  *out = total;
  return TRUE;
}

char *
es_tool_format_duration (GTimeSpan span)
{
  static const struct { GTimeSpan unit; char suffix; } units[] = {
    { G_TIME_SPAN_DAY, 'd' }, { G_TIME_SPAN_HOUR, 'h' },
    { G_TIME_SPAN_MINUTE, 'm' }, { G_TIME_SPAN_SECOND, 's' },
  };
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    if (span >= units[i].unit)
      {
        g_string_append_printf (s, "%" G_GINT64_FORMAT "%c",
                                span / units[i].unit, units[i].suffix);
        span %= units[i].unit;
      }
  if (span > 0 || s->len == 0)
    g_string_append_printf (s, "%" G_GINT64_FORMAT "us", span);
  return g_string_free (s, FALSE);
}

/* A time as UTC ISO 8601 with microseconds: always the same width. */
char *
es_tool_format_time (gint64 usec)
{
  gint64 sub = usec % G_USEC_PER_SEC;
  gint64 secs = usec / G_USEC_PER_SEC;
  g_autoptr(GDateTime) dt = NULL;
  g_autofree char *seconds = NULL;

  /* Before 1970, a negative remainder belongs to the second before (as
   * in the export format). */
  if (sub < 0)
    {
      secs--;
      sub += G_USEC_PER_SEC;
    }
  dt = g_date_time_new_from_unix_utc (secs);
  if (dt == NULL)
    return g_strdup ("-");
  seconds = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
  return g_strdup_printf ("%s.%06dZ", seconds, (int) sub);
}

/* Opening ------------------------------------------------------------- */

/* A PostgreSQL connection string: a URI (postgresql:// or postgres://)
 * or keyword/value pairs (anything with a '=' before any '/'); anything
 * else is an SQLite path. A file whose name holds '=' is reached as
 * ./name. */
gboolean
es_tool_is_postgres (const char *location)
{
  const char *eq, *slash;

  if (g_str_has_prefix (location, "postgresql://") ||
      g_str_has_prefix (location, "postgres://"))
    return TRUE;
  eq = strchr (location, '=');
  slash = strchr (location, '/');
  return eq != NULL && (slash == NULL || eq < slash);
}

EsStreamFactory *
es_tool_open (EsTool     *tool,
              const char *location,
              gboolean    read_only,
              gboolean    must_exist,
              int        *exit_code)
{
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;

  if (es_tool_is_postgres (location))
    {
#ifdef ES_TOOL_HAVE_POSTGRES
      factory = g_initable_new (ES_TYPE_PG_STREAM_FACTORY, NULL, &error,
                                "conninfo", location,
                                "pool-size", 1,
                                "sweep-interval", 0,
                                NULL);
      if (factory == NULL)
        *exit_code = es_tool_gerror (tool, error);
      return factory;
#else
      *exit_code = es_tool_error (tool, ES_TOOL_EXIT_FAILED,
                                  _("'%s' is a PostgreSQL connection string, but PostgreSQL is not available in this build of es-tool"),
                                  location);
      return NULL;
#endif
    }

  if (must_exist && !g_file_test (location, G_FILE_TEST_EXISTS))
    {
      /* Translators: %s is a file path */
      *exit_code = es_tool_error (tool, ES_TOOL_EXIT_NOT_FOUND,
                                  _("'%s' does not exist"), location);
      return NULL;
    }
  if (g_file_test (location, G_FILE_TEST_IS_DIR))
    {
      *exit_code = es_tool_error (tool, ES_TOOL_EXIT_FAILED,
                                  _("'%s' is a directory, not a database"), location);
      return NULL;
    }
  if (g_file_test (location, G_FILE_TEST_EXISTS) && g_access (location, R_OK) != 0)
    {
      int saved_errno = errno;

      /* Translators: the first %s is a file path, the second the reason */
      *exit_code = es_tool_error (tool, ES_TOOL_EXIT_FAILED,
                                  _("'%s' cannot be read: %s"),
                                  location, g_strerror (saved_errno));
      return NULL;
    }

  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                            "path", location,
                            "read-only", read_only,
                            "pool-size", 1,
                            "sweep-interval", 0,
                            NULL);
  if (factory == NULL)
    *exit_code = es_tool_gerror (tool, error);
  return factory;
}

void
es_tool_close (EsStreamFactory *factory)
{
  if (factory != NULL)
    {
      es_stream_factory_close (factory, NULL, NULL);
      g_object_unref (factory);
    }
}

/* Output -------------------------------------------------------------- */

/* @sequence (an SGR escape, "\033[1m") when colours are on, else "". */
const char *
es_tool_color (EsTool     *tool,
               const char *sequence)
{
  return tool->color ? sequence : "";
}

/* @rows: (element-type GStrv): the first row is the header. Columns are
 * separated by two spaces and padded to their widest cell (in characters);
 * the last column is not padded. */
void
es_tool_print_table (EsTool    *tool,
                     GPtrArray *rows,
                     guint      n_columns)
{
  g_autofree gsize *widths = g_new0 (gsize, n_columns);

  for (guint r = 0; r < rows->len; r++)
    {
      char **row = g_ptr_array_index (rows, r);

      for (guint c = 0; c < n_columns; c++)
        widths[c] = MAX (widths[c], (gsize) g_utf8_strlen (row[c], -1));
    }

  for (guint r = 0; r < rows->len; r++)
    {
      char **row = g_ptr_array_index (rows, r);
      GString *line = g_string_new (NULL);

      if (r == 0)
        g_string_append (line, es_tool_color (tool, "\033[1m"));
      for (guint c = 0; c < n_columns; c++)
        {
          g_string_append (line, row[c]);
          if (c + 1 < n_columns)
            {
              gsize pad = widths[c] - (gsize) g_utf8_strlen (row[c], -1) + 2;

              for (gsize i = 0; i < pad; i++)
                g_string_append_c (line, ' ');
            }
        }
      if (r == 0)
        g_string_append (line, es_tool_color (tool, "\033[0m"));
      g_print ("%s\n", line->str);
      g_string_free (line, TRUE);
    }
}

/* One JSON Lines record on stdout. */
void
es_tool_print_json (JsonBuilder *builder)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

/* Parses @text as JSON (any value, including a bare string or number);
 * NULL when it is not UTF-8 or not JSON. */
JsonNode *
es_tool_parse_json (const char *text,
                    gsize       length)
{
  g_autoptr(JsonParser) parser = NULL;
  JsonNode *root;

  if (text == NULL || length == 0 || !g_utf8_validate (text, length, NULL))
    return NULL;
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, length, NULL))
    return NULL;
  root = json_parser_get_root (parser);
  return root != NULL ? json_node_copy (root) : NULL;
}

/* Interruption -------------------------------------------------------- */

static GCancellable *interrupt_cancellable = NULL;
static volatile gint interrupted = 0;

static gboolean
on_interrupt (gpointer user_data)
{
  g_atomic_int_set (&interrupted, 1);
  g_cancellable_cancel (interrupt_cancellable);
  return G_SOURCE_CONTINUE;
}

/* A cancellable that SIGINT and SIGTERM cancel (handled on the main
 * context: the long operations iterate it). */
GCancellable *
es_tool_interruptible (void)
{
  if (interrupt_cancellable == NULL)
    {
      interrupt_cancellable = g_cancellable_new ();
      g_unix_signal_add (SIGINT, on_interrupt, NULL);
      g_unix_signal_add (SIGTERM, on_interrupt, NULL);
    }
  return interrupt_cancellable;
}

gboolean
es_tool_interrupted (void)
{
  return g_atomic_int_get (&interrupted) != 0;
}

/* main ---------------------------------------------------------------- */

static void
print_usage (FILE *out)
{
  g_autoptr(GString) s = g_string_new (NULL);
  gsize width = 0;

  g_string_append_printf (s, "%s\n  es-tool %s\n\n", _("Usage:"),
                          _("COMMAND [OPTION…] DATABASE [ARGUMENT…]"));
  g_string_append_printf (s, "%s\n", _("Commands:"));
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    width = MAX (width, strlen (commands[i].name));
  g_string_append_printf (s, "  %-*s  %s\n", (int) width, "help", _("Show the help of a command"));
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (s, "  %-*s  %s\n", (int) width, commands[i].name,
                            _(commands[i].summary));
  g_string_append_printf (s, "\n%s.\n",
                          _("Use “es-tool COMMAND --help” for the options of a command"));
  fputs (s->str, out);
}

static const EsToolCommand *
find_command (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_strcmp0 (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static gboolean
want_color (void)
{
  const char *no_color = g_getenv ("NO_COLOR");
  const char *term = g_getenv ("TERM");

  if (no_color != NULL && *no_color != '\0')
    return FALSE;
  if (g_strcmp0 (term, "dumb") == 0)
    return FALSE;
  return isatty (STDOUT_FILENO);
}

int
main (int    argc,
      char **argv)
{
  const char *localedir = g_getenv ("ES_LOCALEDIR");
  const EsToolCommand *command;
  EsTool tool = { NULL, };
  g_autofree char *prgname = NULL;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, localedir != NULL && *localedir != '\0' ? localedir : ES_LOCALEDIR);
#ifdef HAVE_BIND_TEXTDOMAIN_CODESET
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
#endif

  if (argc < 2)
    {
      print_usage (stderr);
      return ES_TOOL_EXIT_USAGE;
    }

  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h"))
    {
      print_usage (stdout);
      return ES_TOOL_EXIT_OK;
    }
  if (g_str_equal (argv[1], "--version"))
    {
      g_print ("es-tool %s\n", PACKAGE_VERSION);
      return ES_TOOL_EXIT_OK;
    }
  if (g_str_equal (argv[1], "help"))
    {
      if (argc < 3)
        {
          print_usage (stdout);
          return ES_TOOL_EXIT_OK;
        }
      command = find_command (argv[2]);
      if (command == NULL)
        return es_tool_error (NULL, ES_TOOL_EXIT_USAGE,
                              _("Unknown command '%s' (see “es-tool --help”)"), argv[2]);
      {
        char *help_argv[] = { argv[0], "--help", NULL };

        tool.command = command->name;
        prgname = g_strdup_printf ("es-tool %s", command->name);
        g_set_prgname (prgname);
        return command->func (&tool, 2, help_argv);
      }
    }

  command = find_command (argv[1]);
  if (command == NULL)
    return es_tool_error (NULL, ES_TOOL_EXIT_USAGE,
                          _("Unknown command '%s' (see “es-tool --help”)"), argv[1]);

  tool.command = command->name;
  tool.color = want_color ();
  tool.progress = isatty (STDERR_FILENO);
  prgname = g_strdup_printf ("es-tool %s", command->name);
  g_set_prgname (prgname);

  /* The subcommand sees argv[0] = "es-tool", then its own options and
   * arguments. */
  argv[1] = argv[0];
  status = command->func (&tool, argc - 1, argv + 1);
  fflush (stdout);
  if (ferror (stdout))
    return es_tool_error (&tool, ES_TOOL_EXIT_FAILED, _("Could not write the output"));
  return status;
}
