/* es-check-report.c: what an integrity check found.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "es-private.h"

/**
 * EsCheckReport:
 *
 * What [method@Es.StreamFactory.check] found wrong in a database: nothing
 * ([method@Es.CheckReport.is_ok]), or a list of problems, each with a
 * kind ([enum@Es.CheckProblemKind]), the stream and version it concerns
 * when it concerns one, and a translated message for humans.
 *
 * Problems are read by index, from 0 to
 * [method@Es.CheckReport.get_n_problems] minus one, in the order the
 * check found them: the backend's own check first, then es-glib's
 * invariants. A check stores at most 1,000 problems (a badly damaged
 * database would otherwise make the report as large as the database);
 * [method@Es.CheckReport.get_n_problems] still counts them all, and the
 * getters return the defaults (%ES_CHECK_PROBLEM_STORAGE, %NULL, 0) for
 * an index past the stored ones.
 *
 * Backends fill the report given to their
 * [vfunc@Es.StorageHandle.check] with [method@Es.CheckReport.add_problem].
 *
 * Since: 0.2
 */

#define MAX_STORED_PROBLEMS 1000

typedef struct
{
  EsCheckProblemKind  kind;
  char               *stream_id;  /* (owned) (nullable) */
  gint64              version;
  char               *message;    /* (owned) */
} Problem;

struct _EsCheckReport
{
  GObject  parent_instance;

  GMutex   lock;       /* backends may fill the report from several threads */
  GArray  *problems;   /* (owned) of Problem */
  guint    n_problems; /* counted, stored or not */
};

enum
{
  PROP_0,
  PROP_IS_OK,
  PROP_N_PROBLEMS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (EsCheckReport, es_check_report, G_TYPE_OBJECT)

static void
problem_clear (gpointer data)
{
  Problem *problem = data;

  g_clear_pointer (&problem->stream_id, g_free);
  g_clear_pointer (&problem->message, g_free);
}

static void
es_check_report_finalize (GObject *object)
{
  EsCheckReport *self = ES_CHECK_REPORT (object);

  g_clear_pointer (&self->problems, g_array_unref);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (es_check_report_parent_class)->finalize (object);
}

static void
es_check_report_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  EsCheckReport *self = ES_CHECK_REPORT (object);

  switch (prop_id)
    {
    case PROP_IS_OK:
      g_value_set_boolean (value, es_check_report_is_ok (self));
      break;

    case PROP_N_PROBLEMS:
      g_value_set_uint (value, es_check_report_get_n_problems (self));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
es_check_report_class_init (EsCheckReportClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = es_check_report_finalize;
  object_class->get_property = es_check_report_get_property;

  /**
   * EsCheckReport:ok:
   *
   * Whether the check found nothing wrong (named so that it does not hide
   * [method@Es.CheckReport.is_ok] in bindings).
   *
   * Since: 0.2
   */
  properties[PROP_IS_OK] =
    g_param_spec_boolean ("ok", NULL, NULL, TRUE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EsCheckReport:n-problems:
   *
   * How many problems the check found.
   *
   * Since: 0.2
   */
  properties[PROP_N_PROBLEMS] =
    g_param_spec_uint ("n-problems", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
es_check_report_init (EsCheckReport *self)
{
  g_mutex_init (&self->lock);
  self->problems = g_array_new (FALSE, TRUE, sizeof (Problem));
  g_array_set_clear_func (self->problems, problem_clear);
}

/**
 * es_check_report_new:
 *
 * Creates an empty report, for a backend's [vfunc@Es.StorageHandle.check]
 * to fill; applications get theirs from [method@Es.StreamFactory.check].
 *
 * Returns: (transfer full): a new [class@Es.CheckReport]
 *
 * Since: 0.2
 */
EsCheckReport *
es_check_report_new (void)
{
  return g_object_new (ES_TYPE_CHECK_REPORT, NULL);
}

/**
 * es_check_report_add_problem:
 * @self: an [class@Es.CheckReport]
 * @kind: what is wrong
 * @stream_id: (nullable): the stream concerned, or %NULL
 * @version: the version concerned, or 0
 * @message: a translated message for humans, naming what is wrong
 *
 * Adds a problem to the report. Thread-safe.
 *
 * Since: 0.2
 */
void
es_check_report_add_problem (EsCheckReport      *self,
                             EsCheckProblemKind  kind,
                             const char         *stream_id,
                             gint64              version,
                             const char         *message)
{
  gboolean was_ok;

  g_return_if_fail (ES_IS_CHECK_REPORT (self));
  g_return_if_fail (message != NULL);

  g_mutex_lock (&self->lock);
  was_ok = self->n_problems == 0;
  if (self->problems->len < MAX_STORED_PROBLEMS)
    {
      Problem problem = { kind, g_strdup (stream_id), version, g_strdup (message) };

      g_array_append_val (self->problems, problem);
    }
  self->n_problems++;
  g_mutex_unlock (&self->lock);

  if (was_ok)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_IS_OK]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_PROBLEMS]);
}

/**
 * es_check_report_is_ok:
 * @self: an [class@Es.CheckReport]
 *
 * Gets whether the check found nothing wrong.
 *
 * Returns: %TRUE when the check found nothing wrong
 *
 * Since: 0.2
 */
gboolean
es_check_report_is_ok (EsCheckReport *self)
{
  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), FALSE);

  return es_check_report_get_n_problems (self) == 0;
}

/**
 * es_check_report_get_n_problems:
 * @self: an [class@Es.CheckReport]
 *
 * Gets the number of problems the check found.
 *
 * Returns: how many problems the check found (stored or not)
 *
 * Since: 0.2
 */
guint
es_check_report_get_n_problems (EsCheckReport *self)
{
  guint n;

  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), 0);

  g_mutex_lock (&self->lock);
  n = self->n_problems;
  g_mutex_unlock (&self->lock);
  return n;
}

static const Problem *
get_problem (EsCheckReport *self,
             guint          index)
{
  const Problem *problem = NULL;

  /* Problems are never removed or moved once added but by a reallocation
   * of the array, which only an add_problem during a read could cause:
   * reports are read once filled. */
  g_mutex_lock (&self->lock);
  if (index < self->problems->len)
    problem = &g_array_index (self->problems, Problem, index);
  g_mutex_unlock (&self->lock);
  return problem;
}

/**
 * es_check_report_get_problem_kind:
 * @self: an [class@Es.CheckReport]
 * @index: the problem's index
 *
 * Gets what kind of problem the problem at @index is.
 *
 * Returns: what the problem at @index is
 *
 * Since: 0.2
 */
EsCheckProblemKind
es_check_report_get_problem_kind (EsCheckReport *self,
                                  guint          index)
{
  const Problem *problem;

  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), ES_CHECK_PROBLEM_STORAGE);

  problem = get_problem (self, index);
  return problem != NULL ? problem->kind : ES_CHECK_PROBLEM_STORAGE;
}

/**
 * es_check_report_get_problem_stream_id:
 * @self: an [class@Es.CheckReport]
 * @index: the problem's index
 *
 * Gets the stream the problem at @index concerns.
 *
 * Returns: (nullable): the stream the problem at @index concerns, or
 *   %NULL when it concerns no one stream
 *
 * Since: 0.2
 */
const char *
es_check_report_get_problem_stream_id (EsCheckReport *self,
                                       guint          index)
{
  const Problem *problem;

  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), NULL);

  problem = get_problem (self, index);
  return problem != NULL ? problem->stream_id : NULL;
}

/**
 * es_check_report_get_problem_version:
 * @self: an [class@Es.CheckReport]
 * @index: the problem's index
 *
 * Gets the version the problem at @index concerns.
 *
 * Returns: the version the problem at @index concerns, or 0
 *
 * Since: 0.2
 */
gint64
es_check_report_get_problem_version (EsCheckReport *self,
                                     guint          index)
{
  const Problem *problem;

  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), 0);

  problem = get_problem (self, index);
  return problem != NULL ? problem->version : 0;
}

/**
 * es_check_report_get_problem_message:
 * @self: an [class@Es.CheckReport]
 * @index: the problem's index
 *
 * Gets the description of the problem at @index, translated.
 *
 * Returns: (nullable): the translated message of the problem at @index,
 *   or %NULL past the stored problems
 *
 * Since: 0.2
 */
const char *
es_check_report_get_problem_message (EsCheckReport *self,
                                     guint          index)
{
  const Problem *problem;

  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), NULL);

  problem = get_problem (self, index);
  return problem != NULL ? problem->message : NULL;
}

/**
 * es_check_report_has_problem:
 * @self: an [class@Es.CheckReport]
 * @kind: a kind of problem
 *
 * Gets whether the check found a problem of a given kind.
 *
 * Returns: whether a stored problem is of @kind
 *
 * Since: 0.2
 */
gboolean
es_check_report_has_problem (EsCheckReport      *self,
                             EsCheckProblemKind  kind)
{
  gboolean found = FALSE;

  g_return_val_if_fail (ES_IS_CHECK_REPORT (self), FALSE);

  g_mutex_lock (&self->lock);
  for (guint i = 0; i < self->problems->len && !found; i++)
    found = g_array_index (self->problems, Problem, i).kind == kind;
  g_mutex_unlock (&self->lock);
  return found;
}
