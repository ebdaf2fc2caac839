/* test-crash.c: a write acknowledged is a write kept, whatever the moment
 * the writer dies.
 *
 * Starts crash-writer (three threads appending batches to three streams as
 * fast as they can, each acknowledged write reported on a pipe), kills it
 * with SIGKILL after a random 5 to 150 ms (counted from its start one time in
 * four, which may catch it opening and recovering the database; else from
 * its first acknowledged write, so that it is writing however slow its
 * start: under sanitizers, say), reopens the database and checks:
 * every acknowledged batch is there, at the versions acknowledged; no batch
 * is partly there; every stream's versions run 1..N without a gap; sequence
 * ids strictly increase; PRAGMA integrity_check says ok. The database grows
 * from one kill to the next, so each restart also recovers the previous
 * crash's write-ahead log. New events are checked after each kill, all of
 * them again at the end.
 *
 * The life-cycle loop (issue 16) does the same with crash-writer's
 * lifecycle mode, which also deletes (soft and hard), truncates, erases,
 * sets retention policies and sweeps. After each kill it checks that no
 * operation is half done: every stream's stored events are one run of
 * consecutive versions ending at its current version (a truncation or a
 * retention removed a whole prefix or nothing), the stream's information
 * (count, first version, timestamps, state) matches the events actually
 * stored, a deleted stream has no events and no snapshot, a surviving
 * snapshot still has every event after it, no stream holds more than its
 * retention allows, a tombstone has its marker in the global order and
 * refuses writes, sequence ids strictly increase and are never reused
 * (new events come after the last position used before the kill), events
 * keep their sequence id, every batch still there is whole from its first
 * stored event, and every acknowledged operation is there: its batches,
 * truncations, deletes, tombstones, erasures and policies.
 *
 * ES_TEST_CRASH_KILLS sets the number of kills (default 50; the
 * life-cycle loop does half as many).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

#include "es-test-utils.h"

typedef struct
{
  char   *stream_id;
  gint64  first;
  gint64  last;
  guint   size;
} Ack;

typedef struct
{
  char   *stream_id;
  gint64  first_version;  /* version of its event 0 */
  guint   size;           /* as the events say */
  guint   count;          /* events found */
} Batch;

typedef struct
{
  GHashTable *batches;       /* batch id -> Batch */
  GHashTable *next_version;  /* stream id -> gint64 * */
  gint64      last_sequence_id;
  guint64     events_checked;
} Checker;

static void
ack_free (gpointer data)
{
  Ack *ack = data;

  g_free (ack->stream_id);
  g_free (ack);
}

static void
batch_free (gpointer data)
{
  Batch *batch = data;

  g_free (batch->stream_id);
  g_free (batch);
}

static void
checker_init (Checker *checker)
{
  checker->batches = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, batch_free);
  checker->next_version = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  checker->last_sequence_id = 0;
  checker->events_checked = 0;
}

static void
checker_clear (Checker *checker)
{
  g_hash_table_unref (checker->batches);
  g_hash_table_unref (checker->next_version);
}

/* Parses "batch=ID;index=I;size=N". */
static gboolean
parse_data (GBytes  *data,
            char   **out_batch,
            guint   *out_index,
            guint   *out_size)
{
  gsize len;
  const char *bytes = g_bytes_get_data (data, &len);
  g_autofree char *text = g_strndup (bytes, len);
  g_auto(GStrv) fields = g_strsplit (text, ";", -1);
  guint64 index, size;

  if (g_strv_length (fields) != 3 ||
      !g_str_has_prefix (fields[0], "batch=") ||
      !g_str_has_prefix (fields[1], "index=") ||
      !g_str_has_prefix (fields[2], "size=") ||
      !g_ascii_string_to_unsigned (fields[1] + 6, 10, 0, 100, &index, NULL) ||
      !g_ascii_string_to_unsigned (fields[2] + 5, 10, 1, 100, &size, NULL))
    return FALSE;

  *out_batch = g_strdup (fields[0] + 6);
  *out_index = index;
  *out_size = size;
  return TRUE;
}

/* Reads the events after the checker's last sequence id and checks them,
 * and the batches they complete. */
static void
checker_read_new (Checker         *checker,
                  EsStreamFactory *factory)
{
  g_autoptr(EsStream) all = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GError) error = NULL;
  GHashTableIter iter;
  gpointer key;

  all = es_stream_factory_open_stream (factory, ES_ALL_STREAM, NULL, &error);
  g_assert_no_error (error);
  enumerator = es_stream_read (all, checker->last_sequence_id, NULL, NULL, &error);
  g_assert_no_error (error);

  for (;;)
    {
      g_autoptr(GPtrArray) page = es_event_enumerator_next_batch (enumerator, 1024, NULL, &error);
      guint i;

      g_assert_no_error (error);
      if (page->len == 0)
        break;

      for (i = 0; i < page->len; i++)
        {
          EsStoredEvent *event = page->pdata[i];
          const char *stream_id = es_stored_event_get_stream_id (event);
          gint64 *next = g_hash_table_lookup (checker->next_version, stream_id);
          g_autofree char *batch_id = NULL;
          g_autofree char *key_expected = NULL;
          g_autofree char *metadata_expected = NULL;
          guint index = 0, size = 0;
          Batch *batch;

          /* Sequence ids strictly increase. */
          g_assert_cmpint (es_stored_event_get_sequence_id (event), >, checker->last_sequence_id);
          checker->last_sequence_id = es_stored_event_get_sequence_id (event);

          /* Versions 1..N, no gap, no repeat. */
          if (next == NULL)
            {
              next = g_new (gint64, 1);
              *next = 1;
              g_hash_table_insert (checker->next_version, g_strdup (stream_id), next);
            }
          g_assert_cmpint (es_stored_event_get_version (event), ==, *next);
          (*next)++;

          /* The event is whole: data, metadata and key agree. */
          g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "CrashTest");
          g_assert_true (parse_data (es_stored_event_get_data (event), &batch_id, &index, &size));
          g_assert_cmpuint (index, <, size);
          key_expected = g_strdup_printf ("%s/%u", batch_id, index);
          g_assert_cmpstr (es_stored_event_get_id (event), ==, key_expected);
          metadata_expected = g_strdup_printf ("{\"batch\": \"%s\", \"index\": %u, \"size\": %u}",
                                               batch_id, index, size);
          g_assert_cmpstr (es_stored_event_get_metadata (event), ==, metadata_expected);

          batch = g_hash_table_lookup (checker->batches, batch_id);
          if (batch == NULL)
            {
              /* A batch is new only once: none spans two reads. */
              g_assert_cmpuint (index, ==, 0);
              batch = g_new0 (Batch, 1);
              batch->stream_id = g_strdup (stream_id);
              batch->first_version = es_stored_event_get_version (event);
              batch->size = size;
              g_hash_table_insert (checker->batches, g_strdup (batch_id), batch);
            }
          else
            g_assert_true (g_hash_table_contains (seen, batch_id));
          g_hash_table_add (seen, g_hash_table_lookup_extended (checker->batches, batch_id,
                                                               &key, NULL) ? key : NULL);

          /* In order, in one stream, at consecutive versions. */
          g_assert_cmpstr (batch->stream_id, ==, stream_id);
          g_assert_cmpuint (batch->size, ==, size);
          g_assert_cmpuint (batch->count, ==, index);
          g_assert_cmpint (es_stored_event_get_version (event), ==, batch->first_version + index);
          batch->count++;
          checker->events_checked++;
        }
    }

  /* No batch partly there. */
  g_hash_table_iter_init (&iter, seen);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      Batch *batch = g_hash_table_lookup (checker->batches, key);

      if (batch->count != batch->size)
        g_error ("batch %s is partly stored: %u of its %u events", (char *) key,
                 batch->count, batch->size);
    }

  g_assert_true (es_event_enumerator_close (enumerator, NULL, &error));
  g_assert_no_error (error);
}

/* Every stream's snapshot, if it has one yet, says the version it was
 * saved at, which the stream has reached. */
static void
checker_check_snapshots (Checker         *checker,
                         EsStreamFactory *factory)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, checker->next_version);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(EsStream) stream = es_stream_factory_open_stream (factory, key, NULL, &error);
      g_autoptr(EsSnapshot) snapshot = NULL;
      g_autofree char *expected = NULL;
      g_autofree char *state = NULL;
      gsize len;
      const char *bytes;

      g_assert_no_error (error);
      snapshot = es_stream_load_snapshot (stream, "crash", NULL, &error);
      g_assert_no_error (error);
      if (snapshot == NULL)
        continue;
      g_assert_cmpint (es_snapshot_get_version (snapshot), <, *(gint64 *) value);
      bytes = g_bytes_get_data (es_snapshot_get_state (snapshot), &len);
      state = g_strndup (bytes, len);
      expected = g_strdup_printf ("v=%" G_GINT64_FORMAT, es_snapshot_get_version (snapshot));
      g_assert_cmpstr (state, ==, expected);
    }
}

/* Every acknowledged write is stored, as acknowledged. */
static void
checker_check_acks (Checker    *checker,
                    GHashTable *acks)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, acks);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Ack *ack = value;
      Batch *batch = g_hash_table_lookup (checker->batches, key);

      if (batch == NULL)
        g_error ("acknowledged batch %s (%s, versions %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT
                 ") is lost", (char *) key, ack->stream_id, ack->first, ack->last);
      g_assert_cmpstr (batch->stream_id, ==, ack->stream_id);
      g_assert_cmpint (batch->first_version, ==, ack->first);
      g_assert_cmpuint (batch->size, ==, ack->size);
      g_assert_cmpuint (batch->count, ==, ack->size);
      g_assert_cmpint (ack->last - ack->first + 1, ==, ack->size);
    }
}

static void
check_integrity (const char *path)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  rc = sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1, &stmt, NULL);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpstr ((const char *) sqlite3_column_text (stmt, 0), ==, "ok");
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
  sqlite3_finalize (stmt);
  g_assert_cmpint (sqlite3_close (db), ==, SQLITE_OK);
}

typedef struct
{
  GInputStream *input;
  GMutex        lock;
  GCond         cond;
  const char   *wait_for;  /* (nullable) ready once a line holds this */
  gboolean      ready;  /* a first line came (with wait_for), or the pipe closed */
} Reader;

static void
reader_set_ready (Reader *reader)
{
  g_mutex_lock (&reader->lock);
  reader->ready = TRUE;
  g_cond_signal (&reader->cond);
  g_mutex_unlock (&reader->lock);
}

static gpointer
read_all_thread (gpointer data)
{
  Reader *reader = data;
  GString *text = g_string_new (NULL);
  char buffer[16384];
  gssize n;

  while ((n = g_input_stream_read (reader->input, buffer, sizeof buffer, NULL, NULL)) > 0)
    {
      g_string_append_len (text, buffer, n);
      if (reader->wait_for == NULL ? memchr (buffer, '\n', n) != NULL
                                   : strstr (text->str, reader->wait_for) != NULL)
        reader_set_ready (reader);
    }
  reader_set_ready (reader);
  return text;
}

/* Waits for the writer's first line (its first acknowledged write), or
 * the first that holds reader->wait_for, for 60 s at most. */
static void
reader_wait_ready (Reader *reader)
{
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  g_mutex_lock (&reader->lock);
  while (!reader->ready && g_cond_wait_until (&reader->cond, &reader->lock, deadline))
    ;
  g_mutex_unlock (&reader->lock);
}

/* Parses the writer's complete lines into @acks. */
static guint
parse_acks (const char *text,
            GHashTable *acks)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  guint n = 0;
  guint i;

  /* The last element follows the last newline: a line cut by the kill. */
  for (i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++)
    {
      g_auto(GStrv) f = NULL;
      Ack *ack;

      f = g_strsplit (lines[i], " ", -1);

      g_assert_cmpuint (g_strv_length (f), ==, 6);
      g_assert_cmpstr (f[0], ==, "ACK");
      ack = g_new0 (Ack, 1);
      ack->stream_id = g_strdup (f[1]);
      ack->first = g_ascii_strtoll (f[2], NULL, 10);
      ack->last = g_ascii_strtoll (f[3], NULL, 10);
      ack->size = (guint) g_ascii_strtoull (f[5], NULL, 10);
      g_hash_table_insert (acks, g_strdup (f[4]), ack);
      n++;
    }
  return n;
}

static void
test_crash_loop (void)
{
  const char *writer = g_getenv ("ES_CRASH_WRITER");
  const char *kills_env = g_getenv ("ES_TEST_CRASH_KILLS");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(GHashTable) acks = NULL;
  g_autoptr(GRand) rand = g_rand_new ();
  guint64 kills = 50;
  guint64 n_acks = 0;
  guint64 writes_before_kill = 0;
  guint64 kills_after_first_ack = 0;
  Checker checker;
  Checker final;
  guint64 k;

  if (writer == NULL)
    {
      g_test_skip ("ES_CRASH_WRITER is not set (run through meson test)");
      return;
    }
  if (kills_env != NULL && *kills_env != '\0')
    g_assert_true (g_ascii_string_to_unsigned (kills_env, 10, 1, 1000000, &kills, NULL));

  dir = g_dir_make_tmp ("es-crash-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "crash.db", NULL);
  acks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, ack_free);
  checker_init (&checker);

  for (k = 0; k < kills; k++)
    {
      g_autoptr(GSubprocess) process = NULL;
      g_autoptr(EsSqliteStreamFactory) factory = NULL;
      g_autoptr(GHashTable) round_acks = g_hash_table_new_full (g_str_hash, g_str_equal,
                                                                g_free, ack_free);
      Reader reader = { NULL, };
      GThread *reader_thread;
      GString *output;
      GHashTableIter iter;
      gpointer key, value;
      guint n;

      process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                                  writer, "crash", path, NULL);
      g_assert_no_error (error);
      reader.input = g_subprocess_get_stdout_pipe (process);
      g_mutex_init (&reader.lock);
      g_cond_init (&reader.cond);
      reader_thread = g_thread_new ("ack-reader", read_all_thread, &reader);

      if (k % 4 != 3)
        {
          reader_wait_ready (&reader);
          kills_after_first_ack++;
        }
      g_usleep (g_rand_int_range (rand, 5, 151) * 1000);
      g_subprocess_send_signal (process, SIGKILL);
      g_subprocess_wait (process, NULL, &error);
      g_assert_no_error (error);
      output = g_thread_join (reader_thread);
      g_mutex_clear (&reader.lock);
      g_cond_clear (&reader.cond);

      /* It died of the kill, not of a failure of its own. */
      if (!g_subprocess_get_if_signaled (process))
        g_error ("the writer exited by itself with status %d",
                 g_subprocess_get_exit_status (process));
      g_assert_cmpint (g_subprocess_get_term_sig (process), ==, SIGKILL);

      n = parse_acks (output->str, round_acks);
      g_string_free (output, TRUE);
      if (n > 0)
        writes_before_kill++;
      n_acks += n;

      factory = es_sqlite_stream_factory_new (path, NULL, &error);
      g_assert_no_error (error);
      checker_read_new (&checker, ES_STREAM_FACTORY (factory));
      checker_check_acks (&checker, round_acks);
      checker_check_snapshots (&checker, ES_STREAM_FACTORY (factory));
      g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
      g_assert_no_error (error);
      g_clear_object (&factory);

      check_integrity (path);

      g_hash_table_iter_init (&iter, round_acks);
      while (g_hash_table_iter_next (&iter, &key, &value))
        {
          g_hash_table_iter_steal (&iter);
          g_hash_table_insert (acks, key, value);
        }
    }

  /* Everything again, from the start: nothing acknowledged went missing
   * in a later crash. */
  {
    g_autoptr(EsSqliteStreamFactory) factory = es_sqlite_stream_factory_new (path, NULL, &error);

    g_assert_no_error (error);
    checker_init (&final);
    checker_read_new (&final, ES_STREAM_FACTORY (factory));
    checker_check_acks (&final, acks);
    g_assert_cmpuint (final.events_checked, ==, checker.events_checked);
    g_assert_true (es_stream_factory_close (ES_STREAM_FACTORY (factory), NULL, &error));
    g_assert_no_error (error);
  }
  check_integrity (path);

  g_test_message ("crash loop: %" G_GUINT64_FORMAT " kills survived (%" G_GUINT64_FORMAT
                  " while writing), %" G_GUINT64_FORMAT " acknowledged batches, %"
                  G_GUINT64_FORMAT " events checked after the kills, %u stored at the end "
                  "(%u batches)",
                  kills, writes_before_kill, n_acks, checker.events_checked,
                  (guint) final.events_checked, g_hash_table_size (final.batches));
  /* A writer killed before it ever wrote proves nothing: three in four
   * kills wait for a first write. */
  g_assert_cmpuint (writes_before_kill, >=, kills_after_first_ack);
  /* All four streams were written, the asynchronous one too. */
  if (kills >= 10)
    g_assert_cmpuint (g_hash_table_size (final.next_version), ==, 4);

  checker_clear (&final);
  checker_clear (&checker);
  g_unlink (path);
  {
    g_autofree char *wal = g_strconcat (path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (path, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
  }
  g_rmdir (dir);
}

/* ---------------------------------------------------------------------- *
 * The life-cycle loop                                                     *
 * ---------------------------------------------------------------------- */

typedef enum
{
  OP_ACK,
  OP_TRUNC,
  OP_DEL,
  OP_TOMB,
  OP_ERASE,
  OP_RET,
  OP_SWEEP,
} OpKind;

typedef struct
{
  OpKind  kind;
  char   *stream_id;
  char   *batch;     /* OP_ACK */
  gint64  a;         /* ACK: first; TRUNC: before; DEL: version; ERASE: version; RET: age */
  gint64  b;         /* ACK: last; RET: count */
  guint   size;      /* ACK */
} Op;

static void
op_free (gpointer data)
{
  Op *op = data;

  g_free (op->stream_id);
  g_free (op->batch);
  g_free (op);
}

/* Parses the lifecycle writer's complete lines into @ops. */
static guint
parse_ops (const char *text,
           GPtrArray  *ops)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  guint n = 0;
  guint i;

  for (i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++)
    {
      g_auto(GStrv) f = g_strsplit (lines[i], " ", -1);
      guint len = g_strv_length (f);
      Op *op = g_new0 (Op, 1);

      g_assert_cmpuint (len, >=, 2);
      if (g_str_equal (f[0], "ACK") && len == 6)
        {
          op->kind = OP_ACK;
          op->a = g_ascii_strtoll (f[2], NULL, 10);
          op->b = g_ascii_strtoll (f[3], NULL, 10);
          op->batch = g_strdup (f[4]);
          op->size = (guint) g_ascii_strtoull (f[5], NULL, 10);
          g_assert_cmpint (op->b - op->a + 1, ==, op->size);
        }
      else if (g_str_equal (f[0], "TRUNC") && len == 3)
        op->kind = OP_TRUNC, op->a = g_ascii_strtoll (f[2], NULL, 10);
      else if (g_str_equal (f[0], "DEL") && len == 3)
        op->kind = OP_DEL, op->a = g_ascii_strtoll (f[2], NULL, 10);
      else if (g_str_equal (f[0], "TOMB") && len == 2)
        op->kind = OP_TOMB;
      else if (g_str_equal (f[0], "ERASE") && len == 3)
        op->kind = OP_ERASE, op->a = g_ascii_strtoll (f[2], NULL, 10);
      else if (g_str_equal (f[0], "RET") && len == 4)
        {
          op->kind = OP_RET;
          op->a = g_ascii_strtoll (f[2], NULL, 10);
          op->b = g_ascii_strtoll (f[3], NULL, 10);
        }
      else if (g_str_equal (f[0], "SWEEP") && len == 2)
        {
          op->kind = OP_SWEEP;
          op->a = g_ascii_strtoll (f[1], NULL, 10);
          g_assert_cmpint (op->a, >=, 0);
        }
      else
        g_error ("unexpected line from the writer: %s", lines[i]);
      if (op->kind != OP_SWEEP)
        op->stream_id = g_strdup (f[1]);
      g_ptr_array_add (ops, op);
      n++;
    }
  return n;
}

/* What one check found, per stream. */
typedef struct
{
  EsStreamInfo *info;
  GPtrArray    *events;  /* (element-type EsStoredEvent) from the @all read */
} StreamState;

static void
stream_state_free (gpointer data)
{
  StreamState *state = data;

  g_clear_object (&state->info);
  g_ptr_array_unref (state->events);
  g_free (state);
}

typedef struct
{
  GHashTable *sequence_ids;   /* "batch/index" -> gint64 * : every event ever seen */
  gint64      last_position;  /* the @all current version at the last check */
  guint64     events_checked;
  guint64     streams_checked;
  guint64     tombstones_checked;
} LifeChecker;

/* Splits an idempotency key "BATCH/INDEX". */
static void
parse_key (const char  *key,
           char       **out_batch,
           guint       *out_index)
{
  const char *slash;
  guint64 index;

  g_assert_nonnull (key);
  slash = strrchr (key, '/');
  g_assert_nonnull (slash);
  g_assert_true (g_ascii_string_to_unsigned (slash + 1, 10, 0, 100, &index, NULL));
  *out_batch = g_strndup (key, slash - key);
  *out_index = index;
}

/* One stored event of the life-cycle writer is whole: data, metadata and
 * key agree, or it was erased and holds nothing but its key. Returns the
 * batch size (0 when erased: unknown). */
static guint
check_life_event (EsStoredEvent *event,
                  char         **out_batch,
                  guint         *out_index)
{
  g_autofree char *batch = NULL;
  guint index = 0, size = 0;

  g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "CrashTest");
  parse_key (es_stored_event_get_idempotency_key (event), out_batch, out_index);
  if (es_stored_event_get_erased (event))
    {
      g_assert_cmpint (es_stored_event_get_flags (event), ==, ES_STORED_EVENT_FLAGS_ERASED);
      g_assert_cmpuint (g_bytes_get_size (es_stored_event_get_data (event)), ==, 0);
      g_assert_null (es_stored_event_get_metadata (event));
      return 0;
    }
  g_assert_cmpint (es_stored_event_get_flags (event), ==, ES_STORED_EVENT_FLAGS_NONE);
  g_assert_true (parse_data (es_stored_event_get_data (event), &batch, &index, &size));
  g_assert_cmpstr (batch, ==, *out_batch);
  g_assert_cmpuint (index, ==, *out_index);
  g_assert_cmpuint (index, <, size);
  {
    g_autofree char *metadata = g_strdup_printf ("{\"batch\": \"%s\", \"index\": %u, \"size\": %u}",
                                                 batch, index, size);

    g_assert_cmpstr (es_stored_event_get_metadata (event), ==, metadata);
  }
  return size;
}

static GHashTable *
life_read_state (LifeChecker     *checker,
                 EsStreamFactory *factory,
                 EsStreamInfo   **out_all_info)
{
  g_autoptr(GHashTable) streams = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                         stream_state_free);
  g_autoptr(EsStreamInfoEnumerator) listing = NULL;
  g_autoptr(EsStreamInfo) all_info = NULL;
  g_autoptr(GHashTable) markers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  EsStorageHandle *storage = es_stream_factory_get_storage (factory);
  g_autoptr(GError) error = NULL;
  gint64 position = 0;
  gint64 last_sequence_id = 0;
  guint64 n_events = 0;
  gint64 total = 0;
  GHashTableIter iter;
  gpointer key, value;

  /* Position first: whatever the reads below see was committed by the
   * writer, dead now, so nothing moves under them. */
  all_info = es_stream_factory_get_stream_info (factory, NULL, NULL, &error);
  g_assert_no_error (error);

  listing = es_stream_factory_list_streams (factory, NULL, ES_LIST_STREAMS_FLAGS_INCLUDE_DELETED,
                                            NULL, &error);
  g_assert_no_error (error);
  for (;;)
    {
      g_autoptr(GPtrArray) page = es_stream_info_enumerator_next_batch (listing, 100, NULL, &error);
      guint i;

      g_assert_no_error (error);
      if (page->len == 0)
        break;
      for (i = 0; i < page->len; i++)
        {
          StreamState *state = g_new0 (StreamState, 1);

          state->info = g_object_ref (page->pdata[i]);
          state->events = g_ptr_array_new_with_free_func (g_object_unref);
          g_assert_false (g_hash_table_contains (streams, es_stream_info_get_stream_id (state->info)));
          g_hash_table_insert (streams, g_strdup (es_stream_info_get_stream_id (state->info)), state);
        }
    }

  /* @all with the tombstone markers, through the storage, page by page. */
  for (;;)
    {
      g_autoptr(GPtrArray) page = es_storage_handle_read_page_full (storage, NULL, position,
                                                                    ES_READ_FLAGS_INCLUDE_TOMBSTONES,
                                                                    NULL, 1000, NULL, &error);
      guint i;

      g_assert_no_error (error);
      if (page->len == 0)
        break;
      for (i = 0; i < page->len; i++)
        {
          EsStoredEvent *event = page->pdata[i];
          const char *stream_id = es_stored_event_get_stream_id (event);
          gint64 sequence_id = es_stored_event_get_sequence_id (event);
          StreamState *state = g_hash_table_lookup (streams, stream_id);

          /* Strictly increasing: no position shared by an event and a
           * tombstone. */
          g_assert_cmpint (sequence_id, >, last_sequence_id);
          last_sequence_id = sequence_id;
          position = sequence_id;
          g_assert_nonnull (state);

          if (es_stored_event_get_flags (event) & ES_STORED_EVENT_FLAGS_TOMBSTONE)
            {
              g_assert_cmpstr (es_stored_event_get_event_type (event), ==, "$tombstone");
              g_assert_false (g_hash_table_contains (markers, stream_id));
              g_hash_table_insert (markers, g_strdup (stream_id),
                                   g_memdup2 (&sequence_id, sizeof sequence_id));
              g_assert_cmpint (es_stored_event_get_version (event), ==,
                               es_stream_info_get_current_version (state->info));
              continue;
            }
          g_ptr_array_add (state->events, g_object_ref (event));
          n_events++;
        }
    }
  g_assert_cmpint (last_sequence_id, <=, es_stream_info_get_current_version (all_info));
  g_assert_cmpint (es_stream_info_get_event_count (all_info), ==, (gint64) n_events);

  /* A marker for each tombstone, none for anything else. */
  g_hash_table_iter_init (&iter, streams);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      StreamState *state = value;
      gboolean tombstoned = es_stream_info_get_state (state->info) == ES_STREAM_STATE_TOMBSTONED;

      g_assert_cmpint (g_hash_table_contains (markers, key), ==, tombstoned);
      total += es_stream_info_get_event_count (state->info);
    }
  g_assert_cmpint (total, ==, (gint64) n_events);

  *out_all_info = g_steal_pointer (&all_info);
  return g_steal_pointer (&streams);
}

static void
life_check_stream (LifeChecker     *checker,
                   EsStreamFactory *factory,
                   const char      *stream_id,
                   StreamState     *state,
                   gint64           database_max_count)
{
  EsStreamInfo *info = state->info;
  GPtrArray *events = state->events;
  EsStreamState life = es_stream_info_get_state (info);
  gint64 current = es_stream_info_get_current_version (info);
  gint64 count = es_stream_info_get_event_count (info);
  gint64 first = es_stream_info_get_first_version (info);
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(GPtrArray) direct = NULL;
  g_autoptr(GPtrArray) backwards = NULL;
  g_autoptr(EsEventEnumerator) enumerator = NULL;
  g_autoptr(EsSnapshot) snapshot = NULL;
  g_autofree char *previous_batch = NULL;
  guint previous_index = 0, previous_size = 0;
  gint64 own_max_count = es_stream_info_get_max_count (info);
  guint i;

  /* The information matches what is stored. */
  g_assert_cmpint (count, ==, (gint64) events->len);
  if (count > 0)
    {
      EsStoredEvent *oldest = events->pdata[0];
      EsStoredEvent *newest = events->pdata[events->len - 1];

      g_assert_cmpint (life, ==, ES_STREAM_STATE_ACTIVE);
      g_assert_cmpint (first, ==, es_stored_event_get_version (oldest));
      /* One run of versions ending at the current one: what went was a
       * whole prefix. */
      g_assert_cmpint (es_stored_event_get_version (newest), ==, current);
      g_assert_cmpint (current - first + 1, ==, count);
      g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), ==,
                       es_stored_event_get_timestamp_usec (oldest));
      g_assert_cmpint (es_stream_info_get_last_timestamp_usec (info), ==,
                       es_stored_event_get_timestamp_usec (newest));
    }
  else
    {
      g_assert_cmpint (first, ==, 0);
      g_assert_cmpint (es_stream_info_get_first_timestamp_usec (info), ==, 0);
      g_assert_cmpint (es_stream_info_get_last_timestamp_usec (info), ==, 0);
    }

  /* Retention: never more than the stricter count allows. */
  if (own_max_count > 0)
    g_assert_cmpint (count, <=, own_max_count);
  if (database_max_count > 0)
    g_assert_cmpint (count, <=, database_max_count);

  /* Each event whole; batches whole from the first stored event on. */
  for (i = 0; i < events->len; i++)
    {
      EsStoredEvent *event = events->pdata[i];
      g_autofree char *batch = NULL;
      guint index = 0, size;
      g_autofree char *key = NULL;
      gint64 *seen;
      gint64 sequence_id = es_stored_event_get_sequence_id (event);

      g_assert_cmpint (es_stored_event_get_version (event), ==, first + i);
      size = check_life_event (event, &batch, &index);
      if (i > 0)
        {
          if (g_strcmp0 (batch, previous_batch) == 0)
            g_assert_cmpuint (index, ==, previous_index + 1);
          else
            {
              g_assert_cmpuint (index, ==, 0);
              if (previous_size > 0)
                g_assert_cmpuint (previous_index, ==, previous_size - 1);
            }
        }
      if (i == events->len - 1 && size > 0)
        g_assert_cmpuint (index, ==, size - 1);

      /* A sequence id is the event's for good; a new one comes after
       * every position used before. */
      key = g_strdup_printf ("%s/%u", batch, index);
      seen = g_hash_table_lookup (checker->sequence_ids, key);
      if (seen != NULL)
        g_assert_cmpint (*seen, ==, sequence_id);
      else
        {
          g_assert_cmpint (sequence_id, >, checker->last_position);
          g_hash_table_insert (checker->sequence_ids, g_steal_pointer (&key),
                               g_memdup2 (&sequence_id, sizeof sequence_id));
        }

      g_free (previous_batch);
      previous_batch = g_steal_pointer (&batch);
      previous_index = index;
      previous_size = size;
      checker->events_checked++;
    }

  /* The stream's own reads, both ways, say the same. */
  stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_get_version (stream), ==, current);
  direct = es_test_read_all_ok (stream, 0, NULL);
  g_assert_cmpuint (direct->len, ==, events->len);
  enumerator = es_stream_read_backwards (stream, ES_READ_FROM_END, NULL, NULL, &error);
  g_assert_no_error (error);
  backwards = es_event_enumerator_next_batch (enumerator, G_MAXINT, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (backwards->len, ==, events->len);
  for (i = 0; i < events->len; i++)
    {
      gint64 sequence_id = es_stored_event_get_sequence_id (events->pdata[i]);

      g_assert_cmpint (es_stored_event_get_sequence_id (direct->pdata[i]), ==, sequence_id);
      g_assert_cmpint (es_stored_event_get_sequence_id (backwards->pdata[events->len - 1 - i]),
                       ==, sequence_id);
    }

  /* A snapshot survives only while every event after it is stored. */
  snapshot = es_stream_load_snapshot (stream, "crash", NULL, &error);
  g_assert_no_error (error);
  if (life != ES_STREAM_STATE_ACTIVE)
    g_assert_null (snapshot);
  if (snapshot != NULL)
    {
      gint64 version = es_snapshot_get_version (snapshot);
      g_autofree char *expected = g_strdup_printf ("v=%" G_GINT64_FORMAT, version);
      gsize len;
      const char *bytes = g_bytes_get_data (es_snapshot_get_state (snapshot), &len);
      g_autofree char *text = g_strndup (bytes, len);

      g_assert_cmpstr (text, ==, expected);
      g_assert_cmpint (version, <=, current);
      if (count > 0)
        g_assert_cmpint (version, >=, first - 1);
      else
        g_assert_cmpint (version, ==, current);
    }

  /* A tombstone refuses writes, and nothing moves. */
  if (life == ES_STREAM_STATE_TOMBSTONED)
    {
      g_autoptr(EsCandidateEvent) event = es_test_candidate_new ("Late", "late", NULL, NULL);
      g_autoptr(EsStreamInfo) after = NULL;

      g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_ANY, NULL, &error), <, 0);
      g_assert_error (error, ES_ERROR, ES_ERROR_STREAM_DELETED);
      g_clear_error (&error);
      after = es_stream_factory_get_stream_info (factory, stream_id, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (es_stream_info_get_current_version (after), ==, current);
      g_assert_cmpint (es_stream_info_get_event_count (after), ==, 0);
      checker->tombstones_checked++;
    }
  checker->streams_checked++;
}

/* Each acknowledged operation is there for good. */
static void
life_check_ops (GHashTable *streams,
                GPtrArray  *ops)
{
  guint i;

  for (i = 0; i < ops->len; i++)
    {
      Op *op = ops->pdata[i];
      StreamState *state;
      EsStreamInfo *info;
      gint64 current, first, count;

      if (op->kind == OP_SWEEP)
        continue;
      if (op->kind == OP_RET && g_str_equal (op->stream_id, ES_ALL_STREAM))
        continue;  /* checked with the database's information */
      state = g_hash_table_lookup (streams, op->stream_id);
      if (state == NULL)
        g_error ("stream %s of an acknowledged operation is not listed", op->stream_id);
      info = state->info;
      current = es_stream_info_get_current_version (info);
      first = es_stream_info_get_first_version (info);
      count = es_stream_info_get_event_count (info);

      switch (op->kind)
        {
        case OP_ACK:
          {
            gint64 v;

            /* Versions never go back; what is still stored is the batch. */
            g_assert_cmpint (current, >=, op->b);
            for (v = MAX (op->a, first); count > 0 && v <= op->b; v++)
              {
                EsStoredEvent *event = state->events->pdata[v - first];
                g_autofree char *key = g_strdup_printf ("%s/%" G_GINT64_FORMAT, op->batch,
                                                        v - op->a);

                g_assert_cmpstr (es_stored_event_get_idempotency_key (event), ==, key);
              }
          }
          break;
        case OP_TRUNC:
          g_assert_true (count == 0 || first >= op->a);
          break;
        case OP_DEL:
          g_assert_cmpint (current, >=, op->a);
          g_assert_true (count == 0 || first > op->a);
          break;
        case OP_TOMB:
          g_assert_cmpint (es_stream_info_get_state (info), ==, ES_STREAM_STATE_TOMBSTONED);
          break;
        case OP_ERASE:
          if (count > 0 && op->a >= first)
            g_assert_true (es_stored_event_get_erased (state->events->pdata[op->a - first]));
          break;
        case OP_RET:
          g_assert_cmpint (es_stream_info_get_max_age (info), ==, op->a);
          g_assert_cmpint (es_stream_info_get_max_count (info), ==, op->b);
          break;
        case OP_SWEEP:
        default:
          g_assert_not_reached ();
        }
    }
}

static void
life_check (LifeChecker     *checker,
            const char      *path,
            GPtrArray       *ops)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsStreamFactory) factory = NULL;
  g_autoptr(GHashTable) streams = NULL;
  g_autoptr(EsStreamInfo) all_info = NULL;
  GHashTableIter iter;
  gpointer key, value;
  guint i;

  /* No background sweep while the checks read. */
  factory = g_initable_new (ES_TYPE_SQLITE_STREAM_FACTORY, NULL, &error,
                            "path", path, "sweep-interval", 0, NULL);
  g_assert_no_error (error);

  streams = life_read_state (checker, factory, &all_info);
  g_assert_cmpint (es_stream_info_get_current_version (all_info), >=, checker->last_position);

  g_hash_table_iter_init (&iter, streams);
  while (g_hash_table_iter_next (&iter, &key, &value))
    life_check_stream (checker, factory, key, value, es_stream_info_get_max_count (all_info));

  life_check_ops (streams, ops);
  for (i = 0; i < ops->len; i++)
    {
      Op *op = ops->pdata[i];

      if (op->kind == OP_RET && g_str_equal (op->stream_id, ES_ALL_STREAM))
        {
          g_assert_cmpint (es_stream_info_get_max_age (all_info), ==, op->a);
          g_assert_cmpint (es_stream_info_get_max_count (all_info), ==, op->b);
        }
    }

  checker->last_position = es_stream_info_get_current_version (all_info);
  g_assert_true (es_stream_factory_close (factory, NULL, &error));
  g_assert_no_error (error);
}

static void
test_lifecycle_crash_loop (void)
{
  const char *writer = g_getenv ("ES_CRASH_WRITER");
  const char *kills_env = g_getenv ("ES_TEST_CRASH_KILLS");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func (op_free);
  g_autoptr(GRand) rand = g_rand_new ();
  guint64 kills = 50;
  guint64 counts[OP_SWEEP + 1] = { 0, };
  guint64 writes_before_kill = 0;
  LifeChecker checker = { NULL, };
  guint64 k;
  guint i;

  if (writer == NULL)
    {
      g_test_skip ("ES_CRASH_WRITER is not set (run through meson test)");
      return;
    }
  if (kills_env != NULL && *kills_env != '\0')
    g_assert_true (g_ascii_string_to_unsigned (kills_env, 10, 1, 1000000, &kills, NULL));
  kills = MAX (1, kills / 2);

  dir = g_dir_make_tmp ("es-crash-life-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "crash.db", NULL);
  checker.sequence_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (k = 0; k < kills; k++)
    {
      g_autoptr(GSubprocess) process = NULL;
      g_autoptr(GPtrArray) round_ops = g_ptr_array_new_with_free_func (op_free);
      Reader reader = { NULL, };
      GThread *reader_thread;
      GString *output;
      guint n;

      static const char * const wait_for[] = { "\nTRUNC ", "\nSWEEP ", "\nTOMB ", NULL,
                                               "\nERASE " };

      process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                                  writer, "lifecycle", path, NULL);
      g_assert_no_error (error);
      reader.input = g_subprocess_get_stdout_pipe (process);
      /* Most kills come after an operation of a given kind was
       * acknowledged, so that each kind is there to check whatever the
       * machine's speed; one in five may catch the writer starting. */
      reader.wait_for = wait_for[k % 5];
      g_mutex_init (&reader.lock);
      g_cond_init (&reader.cond);
      reader_thread = g_thread_new ("op-reader", read_all_thread, &reader);

      if (k % 5 != 3)
        reader_wait_ready (&reader);
      g_usleep (g_rand_int_range (rand, 5, 151) * 1000);
      g_subprocess_send_signal (process, SIGKILL);
      g_subprocess_wait (process, NULL, &error);
      g_assert_no_error (error);
      output = g_thread_join (reader_thread);
      g_mutex_clear (&reader.lock);
      g_cond_clear (&reader.cond);

      if (!g_subprocess_get_if_signaled (process))
        g_error ("the writer exited by itself with status %d",
                 g_subprocess_get_exit_status (process));
      g_assert_cmpint (g_subprocess_get_term_sig (process), ==, SIGKILL);

      n = parse_ops (output->str, round_ops);
      g_string_free (output, TRUE);
      if (n > 0)
        writes_before_kill++;

      life_check (&checker, path, round_ops);
      check_integrity (path);
      /* age-0's events are now older than its 100 ms: the next writer
       * removes them first (see crash-writer.c). */
      g_usleep (110 * 1000);

      for (i = 0; i < round_ops->len; i++)
        {
          Op *op = round_ops->pdata[i];

          counts[op->kind]++;
          g_ptr_array_add (ops, op);
        }
      g_ptr_array_set_free_func (round_ops, NULL);
    }

  /* Every acknowledged operation of every round, again at the end. */
  life_check (&checker, path, ops);
  check_integrity (path);

  g_test_message ("life-cycle crash loop: %" G_GUINT64_FORMAT " kills (%" G_GUINT64_FORMAT
                  " after acknowledged operations); acknowledged: %" G_GUINT64_FORMAT
                  " batches, %" G_GUINT64_FORMAT " truncations, %" G_GUINT64_FORMAT
                  " soft deletes, %" G_GUINT64_FORMAT " tombstones, %" G_GUINT64_FORMAT
                  " erasures, %" G_GUINT64_FORMAT " policies, %" G_GUINT64_FORMAT
                  " sweeps; %" G_GUINT64_FORMAT " event and %" G_GUINT64_FORMAT
                  " stream checks, %" G_GUINT64_FORMAT " tombstones refused a write",
                  kills, writes_before_kill, counts[OP_ACK], counts[OP_TRUNC], counts[OP_DEL],
                  counts[OP_TOMB], counts[OP_ERASE], counts[OP_RET], counts[OP_SWEEP],
                  checker.events_checked, checker.streams_checked, checker.tombstones_checked);
  if (kills >= 5)
    {
      /* Every kind of operation was acknowledged (the kills wait for
       * them). */
      g_assert_cmpuint (counts[OP_TRUNC], >, 0);
      g_assert_cmpuint (counts[OP_DEL], >, 0);
      g_assert_cmpuint (counts[OP_TOMB], >, 0);
      g_assert_cmpuint (counts[OP_ERASE], >, 0);
      g_assert_cmpuint (counts[OP_SWEEP], >, 0);
    }

  g_hash_table_unref (checker.sequence_ids);
  es_test_remove_tree (dir);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/reliability/crash/kill-loop", test_crash_loop);
  g_test_add_func ("/reliability/crash/lifecycle-kill-loop", test_lifecycle_crash_loop);

  return g_test_run ();
}
