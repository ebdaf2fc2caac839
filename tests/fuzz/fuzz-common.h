/* fuzz-common.h: what the libFuzzer targets share.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <es-glib/es-glib.h>

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A CRITICAL or WARNING is a bug whatever the input: abort, so libFuzzer
 * reports it with the input. */
static inline void
fuzz_init_logging (void)
{
  g_log_set_always_fatal (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  g_log_set_fatal_mask ("Es", G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
}

/* The input as a C string, cut at its first NUL. */
static inline char *
fuzz_strndup (const uint8_t *data,
              size_t         size)
{
  return g_strndup ((const char *) data, size);
}

#define FUZZ_CHECK(cond)                                                      \
  G_STMT_START {                                                              \
    if (!(cond))                                                              \
      {                                                                       \
        g_printerr ("fuzz check failed at %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                   \
        abort ();                                                             \
      }                                                                       \
  } G_STMT_END
