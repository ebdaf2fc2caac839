/* es-memory-storage.h: an in-memory EsStorageHandle, for tests.
 *
 * Written against the public API only: it proves that the stream logic
 * works on any backend, not just on SQLite.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <es-glib/es-glib.h>

G_BEGIN_DECLS

#define ES_TYPE_TEST_MEMORY_STORAGE (es_test_memory_storage_get_type ())
G_DECLARE_FINAL_TYPE (EsTestMemoryStorage, es_test_memory_storage, ES, TEST_MEMORY_STORAGE, GObject)

EsTestMemoryStorage *es_test_memory_storage_new (void);

G_END_DECLS
