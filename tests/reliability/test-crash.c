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
 * ES_TEST_CRASH_KILLS sets the number of kills (default 50).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include <es-glib/es-glib.h>

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
  gboolean      ready;  /* a first line came, or the pipe closed */
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
      if (memchr (buffer, '\n', n) != NULL)
        reader_set_ready (reader);
    }
  reader_set_ready (reader);
  return text;
}

/* Waits for the writer's first line (its first acknowledged write), for
 * 60 s at most. */
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

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/reliability/crash/kill-loop", test_crash_loop);

  return g_test_run ();
}
