/* es-sqlite-notifier.h: the SQLite implementation of EsNotifier.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include <es-glib/es-sqlite-storage.h>
#include <es-glib/es-storage-notifier.h>

G_BEGIN_DECLS

#define ES_TYPE_SQLITE_NOTIFIER (es_sqlite_notifier_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsSqliteNotifier, es_sqlite_notifier, ES, SQLITE_NOTIFIER,
                      EsStorageNotifier)

ES_AVAILABLE_IN_ALL
EsSqliteNotifier *es_sqlite_notifier_new                  (EsSqliteStorage  *storage,
                                                           guint             polling_interval);
ES_AVAILABLE_IN_ALL
guint             es_sqlite_notifier_get_polling_interval (EsSqliteNotifier *self);

G_END_DECLS
