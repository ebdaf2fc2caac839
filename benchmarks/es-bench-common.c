/* es-bench-common.c: the es-glib side es-bench and es-pg-bench share.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>

#include "es-bench-common.h"

volatile guint64 sink;
gboolean with_metadata;

double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static int
compare_double (gconstpointer a,
                gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

double
median (double *values,
        guint   n)
{
  qsort (values, n, sizeof (double), (int (*) (const void *, const void *)) compare_double);
  return values[n / 2];
}

void
values_for (Values *v,
            guint   i)
{
  g_snprintf (v->type, sizeof v->type, "Type%u", i % N_TYPES);
  v->data_len = g_snprintf (v->data, sizeof v->data, "{\"n\":%u}", i);
  g_snprintf (v->key, sizeof v->key, "key-%u", i);
  g_snprintf (v->metadata, sizeof v->metadata, "{\"tenant\":%u}", i % N_TYPES);
}

EsCandidateEvent *
candidate_for (guint i)
{
  Values v;
  g_autoptr(GBytes) data = NULL;
  EsCandidateEvent *event;

  values_for (&v, i);
  data = g_bytes_new (v.data, v.data_len);
  event = es_candidate_event_new (v.type, data);
  es_candidate_event_set_idempotency_key (event, v.key);
  if (with_metadata)
    es_candidate_event_set_metadata (event, v.metadata);
  return event;
}

EsStream *
open_stream (EsStreamFactory *factory,
             const char      *stream_id)
{
  g_autoptr(GError) error = NULL;
  EsStream *stream = es_stream_factory_open_stream (factory, stream_id, NULL, &error);

  g_assert_no_error (error);
  return stream;
}

void
close_factory (EsStreamFactory *factory)
{
  g_autoptr(GError) error = NULL;

  es_stream_factory_close (factory, NULL, &error);
  g_assert_no_error (error);
  g_object_unref (factory);
}

/* Writes events first..first+count-1 in batches of @batch; returns the
 * seconds the writes took (building the candidates is not counted). */
double
es_write_batched (EsStream *stream,
                  guint     first,
                  guint     count,
                  guint     batch)
{
  EsCandidateEvent **events = g_new (EsCandidateEvent *, batch);
  double elapsed = 0;
  guint done = 0;

  while (done < count)
    {
      g_autoptr(GError) error = NULL;
      guint n = MIN (batch, count - done);
      double start;
      guint i;

      for (i = 0; i < n; i++)
        events[i] = candidate_for (first + done + i);
      start = now ();
      es_stream_write (stream, events, n, ES_VERSION_ANY, NULL, &error);
      elapsed += now () - start;
      g_assert_no_error (error);
      for (i = 0; i < n; i++)
        g_object_unref (events[i]);
      done += n;
    }

  g_free (events);
  return elapsed;
}

void
touch_event (EsStoredEvent *event)
{
  gsize size;
  const char *key = es_stored_event_get_idempotency_key (event);
  const char *metadata = es_stored_event_get_metadata (event);

  g_bytes_get_data (es_stored_event_get_data (event), &size);
  sink += es_stored_event_get_version (event) +
          es_stored_event_get_sequence_id (event) +
          es_stored_event_get_stream_id (event)[0] +
          es_stored_event_get_event_type (event)[0] +
          size +
          (key != NULL ? key[0] : 0) +
          (metadata != NULL ? metadata[0] : 0) +
          es_stored_event_get_timestamp_usec (event);
}

/* Reads @stream to the end; returns the number of events read. */
guint
es_read_all (EsStream      *stream,
             EsEventFilter *filter)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsEventEnumerator) events = es_stream_read (stream, 0, filter, NULL, &error);
  EsStoredEvent *event;
  guint n = 0;

  g_assert_no_error (error);
  while ((event = es_event_enumerator_next (events, NULL, &error)) != NULL)
    {
      touch_event (event);
      g_object_unref (event);
      n++;
    }
  g_assert_no_error (error);
  return n;
}

typedef struct
{
  EsStream          *stream;
  EsCandidateEvent **events;
  guint              total;
  guint              started;
  guint              finished;
} Concurrent;

static void concurrent_start (Concurrent *c);

static void
concurrent_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      data)
{
  Concurrent *c = data;
  g_autoptr(GError) error = NULL;

  es_stream_write_finish (ES_STREAM (source), result, &error);
  g_assert_no_error (error);
  c->finished++;
  if (c->started < c->total)
    concurrent_start (c);
}

static void
concurrent_start (Concurrent *c)
{
  es_stream_write_async (c->stream, &c->events[c->started++], 1, ES_VERSION_ANY, NULL,
                         concurrent_done, c);
}

double
es_write_concurrent (EsStream *stream,
                     guint     count)
{
  Concurrent c = { 0, };
  double start, rate;
  guint i;

  c.stream = stream;
  c.total = count;
  c.events = g_new (EsCandidateEvent *, count);
  for (i = 0; i < count; i++)
    c.events[i] = candidate_for (i);

  start = now ();
  for (i = 0; i < MIN (IN_FLIGHT, count); i++)
    concurrent_start (&c);
  while (c.finished < c.total)
    g_main_context_iteration (NULL, TRUE);
  rate = count / (now () - start);

  for (i = 0; i < count; i++)
    g_object_unref (c.events[i]);
  g_free (c.events);
  return rate;
}
