/* es-candidate-event.h: an event an application asks to append.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (ES_INSIDE) && !defined (ES_COMPILATION)
# error "Only <es-glib/es-glib.h> can be included directly."
#endif

#include "es-types.h"

G_BEGIN_DECLS

#define ES_TYPE_CANDIDATE_EVENT (es_candidate_event_get_type ())
ES_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EsCandidateEvent, es_candidate_event, ES, CANDIDATE_EVENT, GObject)

ES_AVAILABLE_IN_ALL
EsCandidateEvent *es_candidate_event_new                 (const char       *event_type,
                                                          GBytes           *data);
ES_AVAILABLE_IN_ALL
const char       *es_candidate_event_get_event_type      (EsCandidateEvent *self);
ES_AVAILABLE_IN_ALL
GBytes           *es_candidate_event_get_data            (EsCandidateEvent *self);
ES_AVAILABLE_IN_ALL
const char       *es_candidate_event_get_idempotency_key (EsCandidateEvent *self);
ES_AVAILABLE_IN_ALL
void              es_candidate_event_set_idempotency_key (EsCandidateEvent *self,
                                                          const char       *key);
ES_AVAILABLE_IN_ALL
const char       *es_candidate_event_get_metadata        (EsCandidateEvent *self);
ES_AVAILABLE_IN_ALL
void              es_candidate_event_set_metadata        (EsCandidateEvent *self,
                                                          const char       *json);
ES_AVAILABLE_IN_ALL
GPtrArray        *es_candidate_event_new_batch           (const char * const *event_types,
                                                          guint               n_event_types,
                                                          GBytes             *data,
                                                          const gsize        *data_lengths,
                                                          guint               n_data_lengths,
                                                          const char * const *idempotency_keys,
                                                          guint               n_idempotency_keys,
                                                          const char * const *metadata,
                                                          guint               n_metadata);

G_END_DECLS
