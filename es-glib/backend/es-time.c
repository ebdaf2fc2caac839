/* es-time.c: microseconds since the Unix epoch <-> GDateTime (UTC).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "es-time-private.h"

/* The range GDateTime can represent: 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999Z. */
#define MIN_UNIX_USEC (G_GINT64_CONSTANT (-62135596800) * G_USEC_PER_SEC)
#define MAX_UNIX_USEC (G_GINT64_CONSTANT (253402300799) * G_USEC_PER_SEC + (G_USEC_PER_SEC - 1))

/* A GDateTime from microseconds since the Unix epoch, UTC. A value outside
 * GDateTime's range (only a damaged store can hold one) is clamped, so the
 * result is never %NULL. */
GDateTime *
_es_date_time_new_from_usec (gint64 usec)
{
  g_autoptr(GDateTime) seconds = NULL;
  gint64 secs;
  gint64 rest;

  usec = CLAMP (usec, MIN_UNIX_USEC, MAX_UNIX_USEC);
  secs = usec / G_USEC_PER_SEC;
  rest = usec % G_USEC_PER_SEC;
  if (rest < 0)
    {
      secs -= 1;
      rest += G_USEC_PER_SEC;
    }

  seconds = g_date_time_new_from_unix_utc (secs);
  if (seconds == NULL)
    return NULL;
  if (rest == 0)
    return g_steal_pointer (&seconds);
  return g_date_time_add (seconds, rest);
}

/* Microseconds since the Unix epoch of @date_time. */
gint64
_es_date_time_to_usec (GDateTime *date_time)
{
  return g_date_time_to_unix (date_time) * G_USEC_PER_SEC +
         g_date_time_get_microsecond (date_time);
}
