/* es-tool-transfer.c: the long operations: export, import, backup, check.
 * Each runs the library's _async call on a main loop, so that SIGINT and
 * SIGTERM cancel it (es_tool_interruptible()) and the progress bar on
 * stderr (a terminal only) is drawn from the main context.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "es-tool.h"

/* Progress ------------------------------------------------------------ */

typedef struct
{
  EsTool     *tool;
  const char *label;
  gint64      last_draw;
  gboolean    drawn;
} Progress;

static void
on_progress (goffset  current,
             goffset  total,
             gpointer user_data)
{
  Progress *p = user_data;
  gint64 now = g_get_monotonic_time ();
  const int width = 30;
  GString *bar;

  if (!p->tool->progress)
    return;
  /* At most 10 frames a second, and always the last one. */
  if (p->drawn && now - p->last_draw < G_USEC_PER_SEC / 10 && (total <= 0 || current < total))
    return;
  p->last_draw = now;
  p->drawn = TRUE;

  bar = g_string_new ("\r");
  g_string_append_printf (bar, "%s ", p->label);
  if (total > 0)
    {
      int filled = (int) MIN (width, current * width / total);
      int percent = (int) MIN (100, current * 100 / total);

      g_string_append_c (bar, '[');
      for (int i = 0; i < width; i++)
        g_string_append_c (bar, i < filled ? '#' : ' ');
      g_string_append_printf (bar, "] %3d%%", percent);
    }
  else
    g_string_append_printf (bar, "%" G_GINT64_FORMAT, (gint64) current);
  g_string_append (bar, "\033[K");
  fputs (bar->str, stderr);
  fflush (stderr);
  g_string_free (bar, TRUE);
}

/* The callback and its data for the library: none when stderr is not a
 * terminal, so that the operation does not report progress for nothing. */
#define PROGRESS(p) ((p)->tool->progress ? on_progress : NULL), (p)

static void
progress_done (Progress *p)
{
  if (p->drawn)
    {
      fputs ("\r\033[K", stderr);
      fflush (stderr);
    }
}

/* Running an async operation ------------------------------------------ */

typedef struct
{
  GMainLoop    *loop;
  GAsyncResult *result;
} Wait;

static void
on_done (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Wait *wait = user_data;

  wait->result = g_object_ref (result);
  g_main_loop_quit (wait->loop);
}

static GAsyncResult *
wait_for (Wait *wait)
{
  g_main_loop_run (wait->loop);
  g_main_loop_unref (wait->loop);
  return wait->result;
}

/* export -------------------------------------------------------------- */

int
es_tool_export (EsTool *tool,
                int     argc,
                char  **argv)
{
  g_autofree char *stream_id = NULL, *output_path = NULL;
  g_auto(GStrv) filters = NULL;
  gboolean base64 = FALSE;
  const GOptionEntry entries[] = {
    { "stream", 's', 0, G_OPTION_ARG_STRING, &stream_id, N_("Export one stream (default: every stream, in commit order)"), N_("STREAM") },
    { "filter", 'f', 0, G_OPTION_ARG_STRING_ARRAY, &filters, N_("Only events matching EXPR (repeatable; see es-tool(1))"), N_("EXPR") },
    { "data-base64", 0, 0, G_OPTION_ARG_NONE, &base64, N_("Write all data as base64, even JSON"), NULL },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output_path, N_("Write to FILE (replaced only when the export is complete) instead of standard output"), N_("FILE") },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("Write the events as JSON Lines, one event a line, which “es-tool import” reads back"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventFilter) filter = NULL;
  g_autoptr(GOutputStream) raw = NULL;
  g_autoptr(GOutputStream) out = NULL;
  g_autoptr(GFile) file = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  GCancellable *cancellable;
  EsStreamFactory *factory;
  Progress progress = { tool, _("Exporting"), 0, FALSE };
  Wait wait = { NULL, NULL };
  gint64 n;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;
  filter = es_tool_parse_filters ((const char * const *) filters, &error);
  if (error != NULL)
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE, "%s", error->message);

  factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  cancellable = es_tool_interruptible ();
  if (output_path != NULL)
    {
      file = g_file_new_for_commandline_arg (output_path);
      raw = G_OUTPUT_STREAM (g_file_replace (file, NULL, FALSE, G_FILE_CREATE_REPLACE_DESTINATION,
                                             NULL, &error));
      if (raw == NULL)
        {
          status = es_tool_gerror (tool, error);
          es_tool_close (factory);
          return status;
        }
    }
  else
    raw = g_unix_output_stream_new (STDOUT_FILENO, FALSE);
  out = g_buffered_output_stream_new_sized (raw, 64 * 1024);

  wait.loop = g_main_loop_new (NULL, FALSE);
  es_stream_factory_export_events_async (factory, out, stream_id, filter,
                                  base64 ? ES_EXPORT_FLAGS_DATA_BASE64 : ES_EXPORT_FLAGS_NONE,
                                  cancellable, PROGRESS (&progress), NULL, on_done, &wait);
  result = wait_for (&wait);
  n = es_stream_factory_export_events_finish (factory, result, &error);
  progress_done (&progress);

  if (n >= 0 && !g_output_stream_flush (out, cancellable, &error))
    n = -1;
  if (n >= 0)
    {
      /* Closing a g_file_replace() stream renames the new file over the
       * old one: only a complete export does. */
      if (!g_output_stream_close (out, cancellable, &error))
        n = -1;
    }
  else
    {
      g_autoptr(GCancellable) abort = g_cancellable_new ();

      /* Closed while cancelled, a replace stream removes its temporary
       * file and leaves FILE as it was. */
      g_cancellable_cancel (abort);
      g_output_stream_close (out, abort, NULL);
    }

  if (n < 0)
    status = es_tool_gerror (tool, error);
  else
    {
      if (output_path != NULL)
        es_tool_say (g_dngettext (GETTEXT_PACKAGE, "%" G_GINT64_FORMAT " event exported to %s",
                                  "%" G_GINT64_FORMAT " events exported to %s", n),
                 n, output_path);
      status = ES_TOOL_EXIT_OK;
    }
  es_tool_close (factory);
  return status;
}

/* import -------------------------------------------------------------- */

int
es_tool_import (EsTool *tool,
                int     argc,
                char  **argv)
{
  g_autofree char *input_path = NULL;
  const GOptionEntry entries[] = {
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input_path, N_("Read FILE instead of standard input"), N_("FILE") },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("Store the events of an export (JSON Lines) with their stream ids, versions and idempotency keys. "
                              "An SQLite database is created if it does not exist. Events already stored identically are skipped, "
                              "so an import can be run again after a failure; it stores batches of 1,000 lines, each complete or not at all"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GFile) file = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  EsStreamFactory *factory;
  Progress progress = { tool, _("Importing"), 0, FALSE };
  Wait wait = { NULL, NULL };
  gint64 n;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;

  if (input_path != NULL)
    {
      file = g_file_new_for_commandline_arg (input_path);
      in = G_INPUT_STREAM (g_file_read (file, NULL, &error));
      if (in == NULL)
        return es_tool_gerror (tool, error);
    }
  else
    in = g_unix_input_stream_new (STDIN_FILENO, FALSE);

  factory = es_tool_open (tool, argv[1], FALSE, FALSE, &status);
  if (factory == NULL)
    return status;

  wait.loop = g_main_loop_new (NULL, FALSE);
  es_stream_factory_import_events_async (factory, in, ES_IMPORT_FLAGS_NONE, es_tool_interruptible (),
                                  PROGRESS (&progress), NULL, on_done, &wait);
  result = wait_for (&wait);
  n = es_stream_factory_import_events_finish (factory, result, &error);
  progress_done (&progress);

  if (n < 0)
    {
      /* A malformed line is bad input, not a bad command line. */
      if (g_error_matches (error, ES_ERROR, ES_ERROR_INVALID_ARGUMENT))
        status = es_tool_error (tool, ES_TOOL_EXIT_FAILED, "%s", error->message);
      else
        status = es_tool_gerror (tool, error);
    }
  else
    {
      es_tool_say (g_dngettext (GETTEXT_PACKAGE, "%" G_GINT64_FORMAT " event imported",
                                "%" G_GINT64_FORMAT " events imported", n), n);
      status = ES_TOOL_EXIT_OK;
    }
  es_tool_close (factory);
  return status;
}

/* backup -------------------------------------------------------------- */

int
es_tool_backup (EsTool *tool,
                int     argc,
                char  **argv)
{
  gboolean overwrite = FALSE;
  const GOptionEntry entries[] = {
    { "overwrite", 0, 0, G_OPTION_ARG_NONE, &overwrite, N_("Replace TARGET if it exists (only once the copy is complete)"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE TARGET"),
                            _("Copy a live SQLite database to a new file, itself a valid database, while applications keep writing. "
                              "An interrupted backup leaves nothing at TARGET"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(GFile) target = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  EsStreamFactory *factory;
  Progress progress = { tool, _("Backing up"), 0, FALSE };
  Wait wait = { NULL, NULL };
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 2, 2)) >= 0)
    return status;

  factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  target = g_file_new_for_commandline_arg (argv[2]);
  wait.loop = g_main_loop_new (NULL, FALSE);
  es_stream_factory_backup_async (factory, target,
                                  overwrite ? ES_BACKUP_FLAGS_OVERWRITE : ES_BACKUP_FLAGS_NONE,
                                  es_tool_interruptible (), PROGRESS (&progress), NULL,
                                  on_done, &wait);
  result = wait_for (&wait);
  if (es_stream_factory_backup_finish (factory, result, &error))
    {
      progress_done (&progress);
      es_tool_say (_("Backed up to %s"), argv[2]);
      status = ES_TOOL_EXIT_OK;
    }
  else
    {
      progress_done (&progress);
      status = es_tool_gerror (tool, error);
    }
  es_tool_close (factory);
  return status;
}

/* check --------------------------------------------------------------- */

static const char *
problem_name (EsCheckProblemKind kind)
{
  switch (kind)
    {
    case ES_CHECK_PROBLEM_STORAGE: return "storage";
    case ES_CHECK_PROBLEM_VERSION_GAP: return "version-gap";
    case ES_CHECK_PROBLEM_STREAM_MISMATCH: return "stream-mismatch";
    case ES_CHECK_PROBLEM_SEQUENCE_ORDER: return "sequence-order";
    case ES_CHECK_PROBLEM_DUPLICATE_KEY: return "duplicate-key";
    case ES_CHECK_PROBLEM_SNAPSHOT: return "snapshot";
    case ES_CHECK_PROBLEM_CHECKPOINT: return "checkpoint";
    default: return "unknown";
    }
}

int
es_tool_check (EsTool *tool,
               int     argc,
               char  **argv)
{
  gboolean quick = FALSE, json = FALSE;
  const GOptionEntry entries[] = {
    { "quick", 'q', 0, G_OPTION_ARG_NONE, &quick, N_("A faster, less thorough storage check (SQLite quick_check)"), NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON Lines, one problem a line"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("Check the storage and es-glib's invariants (versions without gaps, increasing sequence ids, "
                              "unique idempotency keys, snapshots and checkpoints within their streams). "
                              "Exits with status 3 when a problem is found"),
                            entries);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsCheckReport) report = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  EsStreamFactory *factory;
  Progress progress = { tool, _("Checking"), 0, FALSE };
  Wait wait = { NULL, NULL };
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;

  factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
  if (factory == NULL)
    return status;

  wait.loop = g_main_loop_new (NULL, FALSE);
  es_stream_factory_check_async (factory, quick ? ES_CHECK_FLAGS_QUICK : ES_CHECK_FLAGS_NONE,
                                 es_tool_interruptible (), PROGRESS (&progress), NULL,
                                 on_done, &wait);
  result = wait_for (&wait);
  report = es_stream_factory_check_finish (factory, result, &error);
  progress_done (&progress);

  if (report == NULL)
    {
      status = es_tool_gerror (tool, error);
      es_tool_close (factory);
      return status;
    }

  for (guint i = 0; i < es_check_report_get_n_problems (report); i++)
    {
      EsCheckProblemKind kind = es_check_report_get_problem_kind (report, i);
      const char *stream_id = es_check_report_get_problem_stream_id (report, i);
      gint64 version = es_check_report_get_problem_version (report, i);
      const char *message = es_check_report_get_problem_message (report, i);

      if (json)
        {
          g_autoptr(JsonBuilder) b = json_builder_new_immutable ();

          json_builder_begin_object (b);
          json_builder_set_member_name (b, "kind");
          json_builder_add_string_value (b, problem_name (kind));
          json_builder_set_member_name (b, "stream_id");
          if (stream_id != NULL)
            json_builder_add_string_value (b, stream_id);
          else
            json_builder_add_null_value (b);
          json_builder_set_member_name (b, "version");
          if (version > 0)
            json_builder_add_int_value (b, version);
          else
            json_builder_add_null_value (b);
          json_builder_set_member_name (b, "message");
          json_builder_add_string_value (b, message);
          json_builder_end_object (b);
          es_tool_print_json (b);
        }
      else
        g_print ("%s%s%s: %s\n", es_tool_color (tool, "\033[1;31m"), problem_name (kind),
                 es_tool_color (tool, "\033[0m"), message);
    }

  if (es_check_report_is_ok (report))
    {
      if (!json)
        es_tool_say (_("No problems found"));
      status = ES_TOOL_EXIT_OK;
    }
  else
    {
      guint n = es_check_report_get_n_problems (report);

      if (!json)
        es_tool_say (g_dngettext (GETTEXT_PACKAGE, "%u problem found", "%u problems found", n), n);
      status = ES_TOOL_EXIT_PROBLEMS;
    }
  es_tool_close (factory);
  return status;
}
