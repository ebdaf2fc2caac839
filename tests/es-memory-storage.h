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
void                 es_test_memory_storage_set_clock_offset (EsTestMemoryStorage *self,
                                                              GTimeSpan            offset);

/* Its notifier: an EsStorageNotifier with nothing of its own. The only
 * writer of an in-memory store is this process, whose commits reach the
 * notifier through es_notifier_committed(); the base class does the rest
 * (thread, subscribers, cursor, delivery). A backend with other writers
 * would attach a source in its attach() vfunc that calls
 * es_storage_notifier_changed(). */
#define ES_TYPE_TEST_MEMORY_NOTIFIER (es_test_memory_notifier_get_type ())
G_DECLARE_FINAL_TYPE (EsTestMemoryNotifier, es_test_memory_notifier, ES, TEST_MEMORY_NOTIFIER,
                      EsStorageNotifier)

EsNotifier *es_test_memory_notifier_new (EsTestMemoryStorage *storage);

G_END_DECLS
