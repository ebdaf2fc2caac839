/* es-pg-notifier.h: the PostgreSQL implementation of EsNotifier.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_PG_INSIDE) && !defined (ES_PG_COMPILATION)
# error "Only <es-glib-pg/es-pg.h> can be included directly."
#endif

#include <gio/gio.h>

#include "es-pg-version-macros.h"
#include "es-pg-storage.h"

G_BEGIN_DECLS

#define ES_TYPE_PG_NOTIFIER (es_pg_notifier_get_type ())
ES_PG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsPgNotifier, es_pg_notifier, ES, PG_NOTIFIER, GObject)

ES_PG_AVAILABLE_IN_ALL
EsPgNotifier *es_pg_notifier_new (EsPgStorage *storage);

G_END_DECLS
