/* es-tool-admin.c: the subcommands that change a database's life cycle
 * and its durable subscriptions: delete, truncate, erase, retention,
 * sweep, compact, subscriptions. Each is one library call
 * (EsStreamFactory); they open the database read-write and never create
 * one.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gi18n-lib.h>

#include "es-tool.h"

/* Ends a subcommand: closes the factory, reports @error if set. */
static int
finish (EsTool          *tool,
        EsStreamFactory *factory,
        GError          *error)
{
  int status = error != NULL ? es_tool_gerror (tool, error) : ES_TOOL_EXIT_OK;

  es_tool_close (factory);
  return status;
}

/* Whether @stream_id was ever written: the library treats deleting or
 * truncating a stream that does not exist as done, the tool says "not
 * found" (status 4), so that a mistyped id does not look like success. */
static gboolean
stream_exists (EsStreamFactory *factory,
               const char      *stream_id,
               GError         **error)
{
  g_autoptr(EsStreamInfo) info = es_stream_factory_get_stream_info (factory, stream_id, NULL, error);

  if (info == NULL && (error == NULL || *error != NULL))
    return FALSE;
  if (info == NULL || (es_stream_info_get_current_version (info) == 0 &&
                       es_stream_info_get_state (info) == ES_STREAM_STATE_ACTIVE))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_NOT_FOUND, _("No stream '%s'"), stream_id);
      return FALSE;
    }
  return TRUE;
}

/* delete -------------------------------------------------------------- */

int
es_tool_delete (EsTool *tool,
                int     argc,
                char  **argv)
{
  gboolean hard = FALSE;
  g_autofree char *expected_text = NULL;
  const GOptionEntry entries[] = {
    { "hard", 0, 0, G_OPTION_ARG_NONE, &hard, N_("Tombstone the stream: it can never be written again"), NULL },
    { "expected-version", 'e', 0, G_OPTION_ARG_STRING, &expected_text, N_("Only delete if the stream is at version N"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE STREAM"),
                            _("Delete a stream: its events go. A soft delete keeps its version (the next write continues it); --hard tombstones it"),
                            entries);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  gint64 expected = ES_VERSION_ANY;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 2, 2)) >= 0)
    return status;
  if (expected_text != NULL &&
      !es_tool_parse_int64 (tool, "--expected-version", expected_text, 0, &expected, &status))
    return status;

  factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
  if (factory == NULL)
    return status;
  if (stream_exists (factory, argv[2], &error) &&
      es_stream_factory_delete_stream (factory, argv[2], expected,
                                       hard ? ES_DELETE_FLAGS_TOMBSTONE : ES_DELETE_FLAGS_NONE,
                                       NULL, &error))
    es_tool_say (hard ? _("Stream '%s' tombstoned") : _("Stream '%s' deleted"), argv[2]);
  return finish (tool, factory, error);
}

/* truncate ------------------------------------------------------------ */

int
es_tool_truncate (EsTool *tool,
                  int     argc,
                  char  **argv)
{
  g_autofree char *before_text = NULL;
  const GOptionEntry entries[] = {
    { "before", 'b', 0, G_OPTION_ARG_STRING, &before_text, N_("Remove the events before version N (required)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE STREAM"),
                            _("Remove the events of a stream older than a version; the stream keeps its version"),
                            entries);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  gint64 before;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 2, 2)) >= 0)
    return status;
  if (before_text == NULL)
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE, _("--before is required"));
  if (!es_tool_parse_int64 (tool, "--before", before_text, 1, &before, &status))
    return status;

  factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
  if (factory == NULL)
    return status;
  if (stream_exists (factory, argv[2], &error) &&
      es_stream_factory_truncate_stream (factory, argv[2], before, NULL, &error))
    es_tool_say (_("Stream '%s' truncated before version %" G_GINT64_FORMAT), argv[2], before);
  return finish (tool, factory, error);
}

/* erase --------------------------------------------------------------- */

int
es_tool_erase (EsTool *tool,
               int     argc,
               char  **argv)
{
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE STREAM VERSION"),
                            _("Erase the data and metadata of one event; its place in the stream stays"),
                            NULL);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  gint64 version;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 3, 3)) >= 0)
    return status;
  if (!es_tool_parse_int64 (tool, "VERSION", argv[3], 1, &version, &status))
    return status;

  factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
  if (factory == NULL)
    return status;
  if (es_stream_factory_erase_event (factory, argv[2], version, NULL, &error))
    es_tool_say (_("Version %" G_GINT64_FORMAT " of stream '%s' erased"), version, argv[2]);
  return finish (tool, factory, error);
}

/* retention ----------------------------------------------------------- */

int
es_tool_retention (EsTool *tool,
                   int     argc,
                   char  **argv)
{
  g_autofree char *age_text = NULL, *count_text = NULL;
  const GOptionEntry entries[] = {
    { "max-age", 0, 0, G_OPTION_ARG_STRING, &age_text, N_("Keep the events younger than DURATION (90d, 12h, 30m, 45s, 2w; 0 for no limit)"), N_("DURATION") },
    { "max-count", 0, 0, G_OPTION_ARG_STRING, &count_text, N_("Keep at most N of the newest events (0 for no limit)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE [STREAM]"),
                            _("Show the retention policy of a stream, or set the policy of a stream or, without STREAM, of the whole database. "
                              "Setting a policy replaces the previous one and enforces it at once; --max-age 0 --max-count 0 removes it"),
                            entries);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  GTimeSpan max_age = 0;
  gint64 max_count = 0;
  const char *stream_id;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 2)) >= 0)
    return status;
  stream_id = argc > 2 ? argv[2] : NULL;
  if (age_text != NULL && !es_tool_parse_duration (age_text, &max_age))
    return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                          _("Invalid --max-age '%s': expected a duration such as 90d, 12h, 30m or 45s"),
                          age_text);
  if (count_text != NULL && !es_tool_parse_int64 (tool, "--max-count", count_text, 0, &max_count, &status))
    return status;

  if (age_text == NULL && count_text == NULL)
    {
      g_autoptr(EsStreamInfo) info = NULL;
      g_autofree char *age = NULL;

      if (stream_id == NULL)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("Give a STREAM to show its policy, or --max-age or --max-count to set one"));
      factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
      if (factory == NULL)
        return status;
      info = es_stream_factory_get_stream_info (factory, stream_id, NULL, &error);
      if (info == NULL && error == NULL)
        g_set_error (&error, ES_ERROR, ES_ERROR_NOT_FOUND, _("No stream '%s'"), stream_id);
      if (info != NULL)
        {
          age = es_stream_info_get_max_age (info) > 0
                ? es_tool_format_duration (es_stream_info_get_max_age (info)) : g_strdup ("-");
          es_tool_say (_("Max age: %s"), age);
          if (es_stream_info_get_max_count (info) > 0)
            es_tool_say (_("Max count: %" G_GINT64_FORMAT), es_stream_info_get_max_count (info));
          else
            es_tool_say (_("Max count: %s"), "-");
        }
      return finish (tool, factory, error);
    }

  factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
  if (factory == NULL)
    return status;
  if (es_stream_factory_set_retention (factory, stream_id, max_age, max_count, NULL, &error))
    {
      if (stream_id != NULL)
        es_tool_say (_("Retention policy of stream '%s' set"), stream_id);
      else
        es_tool_say (_("Database-wide retention policy set"));
    }
  return finish (tool, factory, error);
}

/* sweep, compact ------------------------------------------------------ */

int
es_tool_sweep (EsTool *tool,
               int     argc,
               char  **argv)
{
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("Enforce every retention policy now and print how many events were removed"),
                            NULL);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  gint64 removed;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;
  factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
  if (factory == NULL)
    return status;
  removed = es_stream_factory_sweep (factory, es_tool_interruptible (), &error);
  if (removed >= 0)
    es_tool_say (g_dngettext (GETTEXT_PACKAGE, "%" G_GINT64_FORMAT " event removed",
                              "%" G_GINT64_FORMAT " events removed", removed),
             removed);
  return finish (tool, factory, error);
}

int
es_tool_compact (EsTool *tool,
                 int     argc,
                 char  **argv)
{
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE"),
                            _("Give the space of removed events back to the file system (SQLite) or the server"),
                            NULL);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 1)) >= 0)
    return status;
  factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
  if (factory == NULL)
    return status;
  if (es_stream_factory_compact (factory, es_tool_interruptible (), &error))
    es_tool_say (_("Database compacted"));
  return finish (tool, factory, error);
}

/* subscriptions ------------------------------------------------------- */

static int
list_subscriptions (EsTool          *tool,
                    EsStreamFactory *factory,
                    gboolean         json)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) subs = es_stream_factory_list_subscriptions (factory, NULL, &error);
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  char *header[] = { _("NAME"), _("STREAM"), _("CHECKPOINT"), _("LAG"), _("UPDATED"), NULL };

  if (subs == NULL)
    return es_tool_gerror (tool, error);

  g_ptr_array_add (rows, g_strdupv (header));
  for (guint i = 0; i < subs->len; i++)
    {
      EsSubscriptionInfo *info = g_ptr_array_index (subs, i);
      g_autofree char *updated = es_tool_format_time (es_subscription_info_get_updated_usec (info));

      if (json)
        {
          g_autoptr(JsonBuilder) b = json_builder_new_immutable ();

          json_builder_begin_object (b);
          json_builder_set_member_name (b, "name");
          json_builder_add_string_value (b, es_subscription_info_get_name (info));
          json_builder_set_member_name (b, "stream_id");
          json_builder_add_string_value (b, es_subscription_info_get_stream_id (info));
          json_builder_set_member_name (b, "checkpoint");
          json_builder_add_int_value (b, es_subscription_info_get_checkpoint (info));
          json_builder_set_member_name (b, "lag");
          json_builder_add_int_value (b, es_subscription_info_get_lag (info));
          json_builder_set_member_name (b, "updated");
          json_builder_add_string_value (b, updated);
          json_builder_end_object (b);
          es_tool_print_json (b);
        }
      else
        {
          char *row[6] = { NULL, };

          row[0] = (char *) es_subscription_info_get_name (info);
          row[1] = (char *) es_subscription_info_get_stream_id (info);
          row[2] = g_strdup_printf ("%" G_GINT64_FORMAT, es_subscription_info_get_checkpoint (info));
          row[3] = g_strdup_printf ("%" G_GINT64_FORMAT, es_subscription_info_get_lag (info));
          row[4] = updated;
          g_ptr_array_add (rows, g_strdupv (row));
          g_free (row[2]);
          g_free (row[3]);
        }
    }
  if (!json)
    es_tool_print_table (tool, rows, 5);
  return ES_TOOL_EXIT_OK;
}

int
es_tool_subscriptions (EsTool *tool,
                       int     argc,
                       char  **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON Lines, one subscription a line (list)"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE [list | reset NAME POSITION | delete NAME]"),
                            _("List the durable subscriptions (the default), move one to a position (the next event it gets is the one after POSITION), or delete one"),
                            entries);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  const char *action;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 4)) >= 0)
    return status;
  action = argc > 2 ? argv[2] : "list";

  if (g_str_equal (action, "list"))
    {
      if (argc > 3)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("Unexpected argument '%s' (see “es-tool %s --help”)"), argv[3], tool->command);
      factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
      if (factory == NULL)
        return status;
      status = list_subscriptions (tool, factory, json);
      es_tool_close (factory);
      return status;
    }
  else if (g_str_equal (action, "reset"))
    {
      gint64 position;

      if (argc != 5)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("The reset action takes a NAME and a POSITION (see “es-tool %s --help”)"), tool->command);
      if (!es_tool_parse_int64 (tool, "POSITION", argv[4], 0, &position, &status))
        return status;
      factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
      if (factory == NULL)
        return status;
      if (es_stream_factory_reset_subscription (factory, argv[3], position, NULL, &error))
        es_tool_say (_("Subscription '%s' reset to position %" G_GINT64_FORMAT), argv[3], position);
      return finish (tool, factory, error);
    }
  else if (g_str_equal (action, "delete"))
    {
      if (argc != 4)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("The delete action takes a NAME (see “es-tool %s --help”)"), tool->command);
      factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
      if (factory == NULL)
        return status;
      if (es_stream_factory_delete_subscription (factory, argv[3], NULL, &error))
        es_tool_say (_("Subscription '%s' deleted"), argv[3]);
      return finish (tool, factory, error);
    }

  return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                        _("Unknown action '%s': use list, reset or delete"), action);
}

/* index --------------------------------------------------------------- */

int
es_tool_index (EsTool *tool,
               int     argc,
               char  **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON Lines, one path a line (list)"), NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context =
    es_tool_option_context (tool, _("DATABASE [list | add PATH | remove PATH]"),
                            _("List the declared metadata paths (the default), declare one that filters use (PATH as after “metadata.”, such as tenant or user.id), or drop one"),
                            entries);
  g_autoptr(GError) error = NULL;
  EsStreamFactory *factory;
  const char *action;
  int status;

  if ((status = es_tool_parse (tool, context, &argc, &argv, 1, 3)) >= 0)
    return status;
  action = argc > 2 ? argv[2] : "list";

  if (g_str_equal (action, "list"))
    {
      g_auto(GStrv) paths = NULL;

      if (argc > 3)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("Unexpected argument '%s' (see “es-tool %s --help”)"), argv[3], tool->command);
      factory = es_tool_open (tool, argv[1], TRUE, TRUE, &status);
      if (factory == NULL)
        return status;
      paths = es_stream_factory_list_metadata_indexes (factory, NULL, &error);
      if (paths == NULL)
        return finish (tool, factory, error);
      for (guint i = 0; paths[i] != NULL; i++)
        {
          if (json)
            {
              g_autoptr(JsonBuilder) b = json_builder_new_immutable ();

              json_builder_begin_object (b);
              json_builder_set_member_name (b, "path");
              json_builder_add_string_value (b, paths[i]);
              json_builder_end_object (b);
              es_tool_print_json (b);
            }
          else
            g_print ("%s\n", paths[i]);
        }
      return finish (tool, factory, NULL);
    }
  else if (g_str_equal (action, "add") || g_str_equal (action, "remove"))
    {
      gboolean add = g_str_equal (action, "add");

      if (argc != 4)
        return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                              _("The %s action takes a PATH (see “es-tool %s --help”)"), action, tool->command);
      factory = es_tool_open (tool, argv[1], FALSE, TRUE, &status);
      if (factory == NULL)
        return status;
      if (add)
        {
          if (es_stream_factory_add_metadata_index (factory, argv[3], es_tool_interruptible (), &error))
            es_tool_say (_("Metadata path '%s' declared"), argv[3]);
        }
      else if (es_stream_factory_remove_metadata_index (factory, argv[3], es_tool_interruptible (), &error))
        es_tool_say (_("Metadata path '%s' removed"), argv[3]);
      return finish (tool, factory, error);
    }

  return es_tool_error (tool, ES_TOOL_EXIT_USAGE,
                        _("Unknown action '%s': use list, add or remove"), action);
}
