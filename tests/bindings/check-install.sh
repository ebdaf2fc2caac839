#!/usr/bin/env bash
# check-install.sh BUILDDIR SRCDIR: installs the build into a temporary
# DESTDIR, checks that everything an application needs is there, then
# builds and runs a small C program against the installed tree through
# pkg-config; the same for the PostgreSQL library (libes-glib-pg-1.0) when
# the build has it, and checks that es-glib-1.0.pc names no PostgreSQL.
# It only reads the build tree (meson install --no-rebuild).
#
# SPDX-License-Identifier: LGPL-2.1-or-later
set -euo pipefail

builddir=$1
srcdir=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/es-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
destdir="$tmp/root"

fail() { echo "check-install: $*" >&2; exit 1; }

meson install -C "$builddir" --no-rebuild --quiet --destdir "$destdir" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "meson install failed"; }

option() {
  meson introspect --buildoptions "$builddir" |
    /usr/bin/python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1"
}
prefix=$(option prefix)
libdir=$(option libdir)
case $libdir in /*) ;; *) libdir="$prefix/$libdir" ;; esac
overrides=$(option python_overrides_dir)
[ -n "$overrides" ] || overrides=$(/usr/bin/python3 "$srcdir/build-aux/python-overrides-dir.py" "$prefix")
root="$destdir$prefix"
lib="$destdir$libdir"

expect() {
  for path in "$@"; do
    [ -e "$path" ] || fail "missing from the installed tree: ${path#"$destdir"}"
    echo "ok ${path#"$destdir"}"
  done
}

# The bindings only when the build has them (-Dintrospection, -Dvapi).
installed=$(meson introspect --installed "$builddir")
has() { case $installed in *"$1"*) return 0 ;; *) return 1 ;; esac; }

expect "$lib/libes-glib-1.0.so" "$lib/libes-glib-1.0.so.0" "$lib/pkgconfig/es-glib-1.0.pc"
if has Es-1.0.typelib; then
  expect "$lib/girepository-1.0/Es-1.0.typelib" "$root/share/gir-1.0/Es-1.0.gir"
fi
if has overrides/Es.py; then
  expect "$destdir$overrides/Es.py" "$destdir$overrides/_es_asyncio.py" "$destdir$overrides/Es.pyi"
fi
if has gjs/es-async.js; then
  expect "$root/share/es-glib-1.0/gjs/es-async.js"
fi
if has es-glib-1.0.vapi; then
  expect "$root/share/vala/vapi/es-glib-1.0.vapi" "$root/share/vala/vapi/es-glib-1.0.deps"
fi
for header in "$srcdir"/es-glib/es-*.h es-version.h es-enum-types.h; do
  name=$(basename "$header")
  case $name in *private*) continue ;; esac
  expect "$root/include/es-glib-1.0/es-glib/$name"
done
expect "$root/include/es-glib-1.0/es-glib/es-glib.h"
for private in "$root"/include/es-glib-1.0/es-glib/*private* "$root"/include/es-glib-pg-1.0/es-glib-pg/*private*; do
  [ -e "$private" ] && fail "a private header is installed: ${private#"$destdir"}"
done
for header in "$root"/include/es-glib-1.0/es-glib/*pg*; do
  [ -e "$header" ] && fail "a PostgreSQL header is installed with the core's: ${header#"$destdir"}"
done

# The PostgreSQL backend, a library of its own (-Dpostgres).
pg=false
if has es-glib-pg-1.0.pc; then
  pg=true
  expect "$lib/libes-glib-pg-1.0.so" "$lib/libes-glib-pg-1.0.so.0" "$lib/pkgconfig/es-glib-pg-1.0.pc"
  for header in "$srcdir"/es-glib/postgres/es-pg*.h; do
    name=$(basename "$header")
    case $name in *private*) continue ;; esac
    expect "$root/include/es-glib-pg-1.0/es-glib-pg/$name"
  done
  if has EsPg-1.0.typelib; then
    expect "$lib/girepository-1.0/EsPg-1.0.typelib" "$root/share/gir-1.0/EsPg-1.0.gir"
  fi
  if has es-glib-pg-1.0.vapi; then
    expect "$root/share/vala/vapi/es-glib-pg-1.0.vapi" "$root/share/vala/vapi/es-glib-pg-1.0.deps"
  fi
fi

# The .pc, relocated into DESTDIR (PKG_CONFIG_SYSROOT_DIR would also move
# the system's glib flags), then a program built and run against it.
mkdir "$tmp/pc"
sed "s|^prefix=.*|prefix=$root|" "$lib/pkgconfig/es-glib-1.0.pc" >"$tmp/pc/es-glib-1.0.pc"
cat >"$tmp/hello.c" <<'C'
#include <es-glib/es-glib.h>

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsSqliteStreamFactory) factory = es_sqlite_stream_factory_new (NULL, NULL, &error);
  g_autoptr(EsStream) stream = NULL;
  g_autoptr(EsCandidateEvent) event = es_candidate_event_new ("Installed", NULL);

  g_assert_no_error (error);
  stream = es_stream_factory_open_stream (ES_STREAM_FACTORY (factory), "s", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (es_stream_write (stream, &event, 1, ES_VERSION_NO_STREAM, NULL, &error), ==, 1);
  g_assert_no_error (error);
  g_assert_true (ES_CHECK_VERSION (ES_MAJOR_VERSION, ES_MINOR_VERSION, ES_MICRO_VERSION));
  g_print ("es-glib %d.%d.%d works from the installed tree\n",
           ES_MAJOR_VERSION, ES_MINOR_VERSION, ES_MICRO_VERSION);
  return 0;
}
C
flags=$(PKG_CONFIG_PATH="$tmp/pc" pkg-config --cflags --libs es-glib-1.0)
case $flags in *"$root/include/es-glib-1.0"*) ;; *) fail "pkg-config flags miss DESTDIR: $flags" ;; esac
# A SQLite-only application builds without libpq's headers or library.
case $flags in *postgres*|*-lpq*) fail "es-glib-1.0.pc names PostgreSQL: $flags" ;; esac
# shellcheck disable=SC2086
${CC:-cc} -Wall -Wextra -Werror -o "$tmp/hello" "$tmp/hello.c" $flags
LD_LIBRARY_PATH="$lib" "$tmp/hello"
LD_LIBRARY_PATH="$lib" ldd "$tmp/hello" | grep -q 'libpq\.' && fail "a SQLite-only program loads libpq"

# The PostgreSQL library from C: no server needed, a connection that
# cannot be made fails as documented.
if $pg; then
  sed "s|^prefix=.*|prefix=$root|" "$lib/pkgconfig/es-glib-pg-1.0.pc" >"$tmp/pc/es-glib-pg-1.0.pc"
  cat >"$tmp/hello-pg.c" <<'C'
#include <es-glib-pg/es-pg.h>

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EsPgStreamFactory) factory = es_pg_stream_factory_new ("host=/nonexistent port=1", NULL, &error);

  g_assert_null (factory);
  g_assert_error (error, ES_ERROR, ES_ERROR_STORAGE);
  g_assert_true (g_type_is_a (ES_TYPE_PG_STREAM_FACTORY, ES_TYPE_STREAM_FACTORY));
  g_print ("es-glib-pg works from the installed tree\n");
  return 0;
}
C
  pgflags=$(PKG_CONFIG_PATH="$tmp/pc" pkg-config --cflags --libs es-glib-pg-1.0)
  case $pgflags in *"$root/include/es-glib-pg-1.0"*) ;; *) fail "es-glib-pg-1.0 flags miss DESTDIR: $pgflags" ;; esac
  # shellcheck disable=SC2086
  ${CC:-cc} -Wall -Wextra -Werror -o "$tmp/hello-pg" "$tmp/hello-pg.c" $pgflags
  LD_LIBRARY_PATH="$lib" "$tmp/hello-pg"
fi

# The typelib and the override, from the installed tree.
has Es-1.0.typelib && has overrides/Es.py &&
GI_TYPELIB_PATH="$lib/girepository-1.0" LD_LIBRARY_PATH="$lib" \
  PYTHONPATH="$(dirname "$(dirname "$destdir$overrides")")" PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 -c '
import gi
gi.require_version("Es", "1.0")
from gi.repository import Es
assert hasattr(Es.EventEnumerator, "__iter__"), "the override did not load"
import asyncio
asyncio.set_event_loop_policy(Es.EventLoopPolicy())
async def main():
    async with Es.SqliteStreamFactory.new_async(None) as factory:
        stream = await factory.open_stream_async("s")
        return await stream.write_async([Es.CandidateEvent("Installed")], Es.VERSION_ANY)
assert asyncio.run(main()) == 1, "the asyncio layer did not load"
print("the typelib and the Python override (asyncio too) load from the installed tree")'

if $pg && has EsPg-1.0.typelib; then
  GI_TYPELIB_PATH="$lib/girepository-1.0" LD_LIBRARY_PATH="$lib" /usr/bin/python3 -c '
import gi
gi.require_version("EsPg", "1.0")
from gi.repository import Es, EsPg
assert issubclass(EsPg.StreamFactory, Es.StreamFactory)
print("EsPg-1.0.typelib loads from the installed tree")'
fi
echo "check-install: ok"
