/* es-i18n.c: binds es-glib's gettext domain once, before any message.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <locale.h>

#include "es-private.h"

/* Called from every public type's class_init/default_init, so applications
 * get translated errors without doing anything themselves. The locale dir
 * can be overridden for uninstalled use (tests) with ES_LOCALEDIR. */
void
_es_i18n_init (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      const char *dir = g_getenv ("ES_LOCALEDIR");

      bindtextdomain (GETTEXT_PACKAGE, dir != NULL && *dir != '\0' ? dir : ES_LOCALEDIR);
#ifdef HAVE_BIND_TEXTDOMAIN_CODESET
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
#endif
      g_once_init_leave (&initialized, 1);
    }
}
