/* es-test-utils.h: helpers shared by the C test programs (linked into each).
 *
 * Written against the public API only (and sqlite3, to prepare and
 * inspect files), so that the conformance runner and the backend-specific
 * programs (which link the library's internals) can both use it. Every helper asserts on failure unless it takes a GError.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>

#include <es-glib/es-glib.h>

G_BEGIN_DECLS

/* Generous: only reached when something is broken. */
#define ES_TEST_WAIT_TIMEOUT_SECONDS 60

/* A call that takes &error (a GError *error in scope) succeeds: the error
 * is checked first, so that its message shows. */
#define ES_TEST_ASSERT_OK(call) \
  G_STMT_START { \
    gboolean es_test_ok_ = (call); \
    g_assert_no_error (error); \
    g_assert_true (es_test_ok_); \
  } G_STMT_END

/* The fixture of the programs that test database files: a fresh directory
 * per test, named after the program, and the path of a database in it
 * (not created). */
typedef struct
{
  char *tmpdir;   /* (owned) */
  char *path;     /* (owned) tmpdir/events.db */
} EsTestDbFixture;

void              es_test_db_fixture_setup     (EsTestDbFixture  *f,
                                                gconstpointer     data);
void              es_test_db_fixture_teardown  (EsTestDbFixture  *f,
                                                gconstpointer     data);

/* Files and directories */
void              es_test_remove_tree          (const char       *dir_path);

/* Factories and streams */
void              es_test_factory_close_and_free (EsStreamFactory *factory);
void              es_test_assert_finalized     (GWeakRef         *ref,
                                                const char       *what);
EsStream         *es_test_open_stream          (EsStreamFactory  *factory,
                                                const char       *stream_id);

/* Storage handles */
EsStorageHandle  *es_test_sqlite_storage_open  (const char       *path,
                                                gboolean          read_only);
void              es_test_storage_close        (EsStorageHandle  *storage);
gint64            es_test_storage_append_n     (EsStorageHandle  *storage,
                                                const char       *stream_id,
                                                guint             n,
                                                const char       *event_type,
                                                const char       *data,
                                                const char       *metadata);

/* Writing */
EsCandidateEvent *es_test_candidate_new        (const char       *event_type,
                                                const char       *data,
                                                const char       *idempotency_key,
                                                const char       *metadata);
gint64            es_test_try_write_n          (EsStream         *stream,
                                                guint             n,
                                                const char       *event_type,
                                                GError          **error);
void              es_test_write_n              (EsStream         *stream,
                                                guint             n,
                                                const char       *event_type);
gint64            es_test_write_one            (EsStream         *stream,
                                                const char       *event_type,
                                                const char       *idempotency_key,
                                                const char       *metadata);

/* Reading */
GPtrArray        *es_test_read_all             (EsStream         *stream,
                                                gint64            after,
                                                EsEventFilter    *filter,
                                                GError          **error);
GPtrArray        *es_test_read_all_ok          (EsStream         *stream,
                                                gint64            after,
                                                EsEventFilter    *filter);
GArray           *es_test_read_all_sequence_ids (EsStreamFactory *factory,
                                                GError          **error);

/* SQLite files, through sqlite3 itself (to prepare and inspect them) */
sqlite3          *es_test_sqlite_open          (const char       *path);
gint64            es_test_sqlite_int           (const char       *path,
                                                const char       *sql);
void              es_test_sqlite_exec          (const char       *path,
                                                const char       *sql);

/* Waiting */
void              es_test_store_result_cb      (GObject          *source,
                                                GAsyncResult     *result,
                                                gpointer          user_data);
void              es_test_wait_result          (GAsyncResult    **result);
void              es_test_wait_until           (GMainContext     *context,
                                                gboolean        (*done) (gpointer data),
                                                gpointer          data);
void              es_test_spin                 (guint             milliseconds);
void              es_test_spin_until           (gboolean        (*done) (gpointer data),
                                                gpointer          data);

/* What a watch emitted, and when. */
typedef struct
{
  GPtrArray *events;          /* (element-type EsStoredEvent) */
  GArray    *times;           /* (element-type gint64) monotonic µs of each event */
  guint      caught_up;
  guint      n_events_at_caught_up;
  GError    *error;
  GThread   *emitting_thread;
} EsTestRecorder;

EsTestRecorder   *es_test_recorder_new         (void);
void              es_test_recorder_free        (EsTestRecorder   *recorder);
void              es_test_recorder_connect     (EsTestRecorder   *recorder,
                                                EsWatch          *watch);
void              es_test_recorder_wait_caught_up (EsTestRecorder *recorder);
void              es_test_recorder_wait_events (EsTestRecorder   *recorder,
                                                guint             n);
void              es_test_recorder_wait_events_in (EsTestRecorder *recorder,
                                                GMainContext     *context,
                                                guint             n);
void              es_test_recorder_wait_error  (EsTestRecorder   *recorder);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EsTestRecorder, es_test_recorder_free)

void              es_test_assert_consecutive   (GPtrArray        *events,
                                                gint64            first,
                                                gboolean          by_sequence);
void              es_test_assert_sequence_ids_equal (GPtrArray   *events,
                                                GArray           *expected);

/* The PostgreSQL server of the tests, as GTestDBus is D-Bus's: the first
 * call starts a throwaway server (`$ES_PG_TEST_SERVER start DIR`, the path
 * of build-aux/pg-test-server, set by meson), sets ES_TEST_PG_CONNINFO and
 * ES_TEST_PG_DIR, and makes sure it is stopped and removed when the program
 * exits, also by a failed assertion or a signal (a guard process does it
 * when the program is gone). With ES_TEST_PG_CONNINFO already set, that
 * server is used. Call it from main(), before the tests run (it sets
 * environment variables). Returns the connection string, or NULL with
 * @reason (nullable) set to why there is none: the tests then skip. */
const char       *es_test_pg_server_get_conninfo (const char    **reason);

void              es_test_skip_func            (gconstpointer     reason);

/* Threads of this process (Linux, /proc/self/task): the ids of those
 * named @name, and the context switches (voluntary and not) of one so
 * far, with its state letter ('S': sleeping) in *@out_state. */
GArray           *es_test_threads_named        (const char       *name);
guint64           es_test_thread_switches      (guint64           tid,
                                                char             *out_state);
/* The id of the one thread named @name that is not in @before (an
 * es_test_threads_named() of earlier), waiting for it to name itself. */
guint64           es_test_new_thread_named     (const char       *name,
                                                GArray           *before);
/* Waits until thread @tid sleeps with a steady count of context switches,
 * and returns that count. */
guint64           es_test_wait_thread_asleep   (guint64           tid);

G_END_DECLS
