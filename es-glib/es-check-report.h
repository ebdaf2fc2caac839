/* es-check-report.h: what an integrity check found.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_CHECK_REPORT (es_check_report_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsCheckReport, es_check_report, ES, CHECK_REPORT, GObject)

ES_AVAILABLE_IN_ALL
EsCheckReport      *es_check_report_new                   (void);
ES_AVAILABLE_IN_ALL
void                es_check_report_add_problem           (EsCheckReport      *self,
                                                           EsCheckProblemKind  kind,
                                                           const char         *stream_id,
                                                           gint64              version,
                                                           const char         *message);
ES_AVAILABLE_IN_ALL
gboolean            es_check_report_is_ok                 (EsCheckReport      *self);
ES_AVAILABLE_IN_ALL
guint               es_check_report_get_n_problems        (EsCheckReport      *self);
ES_AVAILABLE_IN_ALL
EsCheckProblemKind  es_check_report_get_problem_kind      (EsCheckReport      *self,
                                                           guint               index);
ES_AVAILABLE_IN_ALL
const char         *es_check_report_get_problem_stream_id (EsCheckReport      *self,
                                                           guint               index);
ES_AVAILABLE_IN_ALL
gint64              es_check_report_get_problem_version   (EsCheckReport      *self,
                                                           guint               index);
ES_AVAILABLE_IN_ALL
const char         *es_check_report_get_problem_message   (EsCheckReport      *self,
                                                           guint               index);
ES_AVAILABLE_IN_ALL
gboolean            es_check_report_has_problem           (EsCheckReport      *self,
                                                           EsCheckProblemKind  kind);

G_END_DECLS
