/* es-glib.h: the one header applications include.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#define ES_INSIDE

#include <gio/gio.h>

#include <es-glib/es-version.h>
#include <es-glib/es-version-macros.h>
#include <es-glib/es-types.h>
#include <es-glib/es-enum-types.h>
#include <es-glib/es-candidate-event.h>
#include <es-glib/es-stored-event.h>
#include <es-glib/es-snapshot.h>
#include <es-glib/es-stream-metrics.h>
#include <es-glib/es-stream-info.h>
#include <es-glib/es-stream-info-enumerator.h>
#include <es-glib/es-subscription-info.h>
#include <es-glib/es-subscription.h>
#include <es-glib/es-event-filter.h>
#include <es-glib/es-event-enumerator.h>
#include <es-glib/es-event-cursor.h>
#include <es-glib/es-storage-handle.h>
#include <es-glib/es-notifier.h>
#include <es-glib/es-storage-notifier.h>
#include <es-glib/es-watch.h>
#include <es-glib/es-stream.h>
#include <es-glib/es-stream-factory.h>
#include <es-glib/es-event-list-model.h>
#include <es-glib/es-check-report.h>
#include <es-glib/es-sqlite-storage.h>
#include <es-glib/es-sqlite-notifier.h>
#include <es-glib/es-sqlite-stream-factory.h>

#undef ES_INSIDE
