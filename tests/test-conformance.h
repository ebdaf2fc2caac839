/* test-conformance.h: what the conformance runner (test-conformance.c)
 * shares with the files of tests it runs on every backend
 * (test-conformance-watch.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <es-glib/es-glib.h>

#include "es-test-utils.h"

typedef enum
{
  BACKEND_SQLITE_FILE,
  BACKEND_SQLITE_MEMORY,
  BACKEND_MEMORY,
  BACKEND_POSTGRES,
} Backend;

typedef struct
{
  Backend          backend;
  char            *tmpdir;        /* (owned) (nullable): sqlite-file only */
  char            *path;          /* (owned) (nullable): sqlite-file only */
  char            *schema;        /* (owned) (nullable): postgres only */
  EsStreamFactory *factory;       /* (owned) */
  GWeakRef         factory_ref;
  GWeakRef         storage_ref;
} Fixture;

typedef void (*FixtureFunc) (Fixture       *f,
                             gconstpointer  data);

/* Adds /conformance/BACKEND/@name for each backend selected. */
void             add_test                   (const char  *name,
                                             FixtureFunc  func);

EsStream        *open_stream                (Fixture     *f,
                                             const char  *stream_id);

/* Another factory on the same data (the same file, the same schema), for
 * a second handle that reaches the first one only through the backend;
 * NULL when the backend has none (in-process databases). */
EsStreamFactory *fixture_open_other_factory (Fixture     *f);

/* A new, empty database of the fixture's backend (another file, schema,
 * in-memory database), for copies; close it with
 * es_test_factory_close_and_free(). */
EsStreamFactory *fixture_open_empty_factory (Fixture     *f);

/* test-conformance-operations.c */
void             add_operations_tests       (void);

/* test-conformance-watch.c */
void             add_watch_tests            (void);

/* test-conformance-model.c */
void             add_model_tests            (void);

/* test-conformance-lifecycle.c */
void             add_lifecycle_tests        (void);

/* test-conformance-cursor.c */
void             add_cursor_tests           (void);

/* test-conformance-subscription.c */
void             add_subscription_tests     (void);
