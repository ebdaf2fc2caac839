/* es-tool.h: what the subcommands of es-tool share.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <es-glib/es-glib.h>

G_BEGIN_DECLS

/* The exit codes scripts rely on (documented in doc/es-tool.1 and
 * doc/es-tool.md): never renumber. */
typedef enum
{
  ES_TOOL_EXIT_OK        = 0,
  ES_TOOL_EXIT_FAILED    = 1,   /* the operation failed (storage, I/O...) */
  ES_TOOL_EXIT_USAGE     = 2,   /* bad command line or argument value */
  ES_TOOL_EXIT_PROBLEMS  = 3,   /* check found problems */
  ES_TOOL_EXIT_NOT_FOUND = 4,   /* database, stream, event, subscription */
  ES_TOOL_EXIT_CONFLICT  = 5,   /* wrong expected version, deleted stream,
                                 * busy subscription, existing target */
  ES_TOOL_EXIT_INTERRUPTED = 130, /* SIGINT/SIGTERM during a long operation */
} EsToolExit;

/* One invocation of one subcommand. */
typedef struct
{
  const char *command;          /* "read", "streams"... */
  gboolean    color;            /* stdout is a terminal and NO_COLOR unset */
  gboolean    progress;         /* stderr is a terminal */
} EsTool;

typedef int (*EsToolCommandFunc) (EsTool *tool, int argc, char **argv);

/* es-tool.c */
int              es_tool_error        (EsTool       *tool,
                                       int           code,
                                       const char   *format,
                                       ...) G_GNUC_PRINTF (3, 4);
void             es_tool_say          (const char   *format,
                                       ...) G_GNUC_PRINTF (1, 2);
int              es_tool_gerror       (EsTool       *tool,
                                       const GError *error);
int              es_tool_exit_for     (const GError *error);
GOptionContext  *es_tool_option_context (EsTool     *tool,
                                       const char   *parameters,
                                       const char   *summary,
                                       const GOptionEntry *entries);
int              es_tool_parse        (EsTool       *tool,
                                       GOptionContext *context,
                                       int          *argc,
                                       char       ***argv,
                                       int           min_args,
                                       int           max_args);
gboolean         es_tool_is_postgres  (const char   *location);
EsStreamFactory *es_tool_open         (EsTool       *tool,
                                       const char   *location,
                                       gboolean      read_only,
                                       gboolean      must_exist,
                                       int          *exit_code);
void             es_tool_close        (EsStreamFactory *factory);
gboolean         es_tool_parse_int64  (EsTool       *tool,
                                       const char   *what,
                                       const char   *text,
                                       gint64        min,
                                       gint64       *out,
                                       int          *exit_code);
gboolean         es_tool_parse_duration (const char *text,
                                       GTimeSpan    *out);
char            *es_tool_format_duration (GTimeSpan  span);
char            *es_tool_format_time  (gint64        usec);
const char      *es_tool_color        (EsTool       *tool,
                                       const char   *sequence);
void             es_tool_print_table  (EsTool       *tool,
                                       GPtrArray    *rows,
                                       guint         n_columns);
void             es_tool_print_json   (JsonBuilder  *builder);
JsonNode        *es_tool_parse_json   (const char   *text,
                                       gsize         length);
GCancellable    *es_tool_interruptible (void);
gboolean         es_tool_interrupted  (void);

/* es-tool-filter.c */
EsEventFilter   *es_tool_parse_filters (const char * const *expressions,
                                        GError      **error);

/* es-tool-read.c */
int es_tool_info          (EsTool *tool, int argc, char **argv);
int es_tool_streams       (EsTool *tool, int argc, char **argv);
int es_tool_read          (EsTool *tool, int argc, char **argv);
int es_tool_tail          (EsTool *tool, int argc, char **argv);

/* es-tool-transfer.c */
int es_tool_export        (EsTool *tool, int argc, char **argv);
int es_tool_import        (EsTool *tool, int argc, char **argv);
int es_tool_backup        (EsTool *tool, int argc, char **argv);
int es_tool_check         (EsTool *tool, int argc, char **argv);

/* es-tool-admin.c */
int es_tool_delete        (EsTool *tool, int argc, char **argv);
int es_tool_truncate      (EsTool *tool, int argc, char **argv);
int es_tool_erase         (EsTool *tool, int argc, char **argv);
int es_tool_retention     (EsTool *tool, int argc, char **argv);
int es_tool_sweep         (EsTool *tool, int argc, char **argv);
int es_tool_compact       (EsTool *tool, int argc, char **argv);
int es_tool_subscriptions (EsTool *tool, int argc, char **argv);
int es_tool_index         (EsTool *tool, int argc, char **argv);

G_END_DECLS
