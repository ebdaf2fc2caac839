/* es-bench-common.h: what es-bench and es-pg-bench share, the es-glib
 * side of their measurements (the baselines differ, SQLite or libpq).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "es-glib/es-glib.h"

/* Event types cycle through Type0..Type9: a type filter keeps 1 in 10. */
#define N_TYPES   10
/* Single-event writes outstanding at once in the concurrent benchmark. */
#define IN_FLIGHT 64

/* Everything read is folded in here, so no read can be optimised away. */
extern volatile guint64 sink;

/* Whether the events built carry metadata ({"tenant": i % N_TYPES}). */
extern gboolean with_metadata;

/* The i-th event: type, data, key, metadata (the same on both sides). */
typedef struct
{
  char type[16];
  char data[32];
  char key[32];
  char metadata[32];
  int  data_len;
} Values;

double             now              (void);
/* Sorts @values. */
double             median           (double            *values,
                                     guint              n);
void               values_for       (Values            *v,
                                     guint              i);
EsCandidateEvent  *candidate_for    (guint              i);
EsStream          *open_stream      (EsStreamFactory   *factory,
                                     const char        *stream_id);
void               close_factory    (EsStreamFactory   *factory);
/* Writes events first..first+count-1 in writes of @batch; returns the
 * seconds the writes took (building the candidates is not counted). */
double             es_write_batched (EsStream          *stream,
                                     guint              first,
                                     guint              count,
                                     guint              batch);
/* Reads every field of @event into sink. */
void               touch_event      (EsStoredEvent     *event);
/* Reads @stream to the end through @filter; returns the events read. */
guint              es_read_all      (EsStream          *stream,
                                     EsEventFilter     *filter);
/* @count single-event es_stream_write_async() calls on @stream, IN_FLIGHT
 * outstanding at any time, from this thread's main context; returns
 * events/s. */
double             es_write_concurrent (EsStream       *stream,
                                        guint           count);
