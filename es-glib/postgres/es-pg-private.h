/* es-pg-private.h: what the PostgreSQL backend's files share.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <libpq-fe.h>

/* The core's internals this library uses (ES_PRIVATE_API), from the
 * es-glib source tree: libes-glib-pg-1.0 is built with the libes-glib-1.0
 * of the same version only. */
#include "es-private.h"
#include "es-pg.h"

G_BEGIN_DECLS

/* Default schema (PostgreSQL namespace) of the backend's tables. */
#define ES_PG_DEFAULT_SCHEMA "es_glib"

/* Opens a connection with @conninfo, blocking (call it off the main
 * context). On failure sets %ES_ERROR_STORAGE carrying libpq's or the
 * server's reason and returns NULL. Cancellable between attempts only. */
PGconn     *_es_pg_connect                (const char     *conninfo,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* Sets %ES_ERROR_STORAGE: "@context: <server's message>", from @result
 * when given (its primary message), else from PQerrorMessage (@conn). */
void        _es_pg_set_error              (GError        **error,
                                           PGconn         *conn,
                                           const PGresult *result,
                                           const char     *context);

/* The storage's settings, for the notifier. */
const char *_es_pg_storage_get_conninfo   (EsPgStorage    *self);
/* The LISTEN/NOTIFY channel of the storage's schema (not quoted: a
 * plain identifier made of [a-z0-9_]). Every committed append sends a
 * NOTIFY on it, in the append's transaction; the payload is the last
 * sequence id of the append, in decimal. */
const char *_es_pg_storage_get_channel    (EsPgStorage    *self);

/* Tests: connections the notifier has (re)opened since it started. */
guint       _es_pg_notifier_get_n_connects (EsPgNotifier  *self);
/* Tests: storage reads (read_page, get_version) the notifier has run
 * since it started; it reads only when something was committed. */
guint       _es_pg_notifier_get_n_reads    (EsPgNotifier  *self);

G_END_DECLS
