#!/usr/bin/python3
# check-layout.py: the PostgreSQL backend is a library of its own
# (libes-glib-pg-1.0), so a SQLite-only application neither builds
# against nor loads libpq, and the core is the same whatever -Dpostgres
# says. TAP output; run by meson (suite 'bindings', test 'layout').
#
# Usage: check-layout.py --builddir DIR --srcdir DIR --demo PROGRAM
#            --libes LIB [--gir Es-1.0.gir]
#            [--pg-demo PROGRAM --libes-pg LIB --pg-gir EsPg-1.0.gir]
#
# Checks, on the uninstalled build (tests/bindings/check-install.sh checks
# the installed .pc files):
#   - `ldd` of a SQLite-only program shows neither libpq nor
#     libes-glib-pg (and, as a control that the check can fail, the
#     PostgreSQL example shows both);
#   - `pkg-config --cflags --libs es-glib-1.0` (the -uninstalled.pc)
#     names neither PostgreSQL's include directory nor libpq;
#   - Es-1.0.gir holds no "Pg" at all, and EsPg-1.0.gir includes Es-1.0;
#   - the dynamic symbols libes-glib-1.0 exports beyond its API (es_*)
#     are exactly the ES_PRIVATE_API declarations of es-glib/es-private.h,
#     and libes-glib-pg-1.0 exports es_pg_* only.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import argparse
import os
import re
import subprocess
import xml.etree.ElementTree as ET

CORE = "{http://www.gtk.org/introspection/core/1.0}"

results = []


def check(ok, description, diagnostic=""):
    results.append(ok)
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), description))
    if not ok and diagnostic:
        for line in diagnostic.rstrip().splitlines():
            print("# " + line)


def ldd(program):
    return subprocess.run(["ldd", program], check=True, capture_output=True,
                          text=True).stdout


def needed_libs(ldd_output):
    return [line.split()[0] for line in ldd_output.splitlines() if "=>" in line]


def exported(library):
    """The defined dynamic function and data symbols of @library."""
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
    return {fields[2] for fields in (line.split() for line in out.splitlines())
            if len(fields) == 3 and fields[1] in "TDBR"}


def private_api(es_private_h):
    text = open(es_private_h, encoding="utf-8").read()
    return set(re.findall(r"^ES_PRIVATE_API\n[^(]*?\b(_es_\w+)\s*\(", text, re.M))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--builddir", required=True)
    parser.add_argument("--srcdir", required=True)
    parser.add_argument("--demo", required=True)
    parser.add_argument("--libes", required=True)
    parser.add_argument("--gir")
    parser.add_argument("--pg-demo")
    parser.add_argument("--libes-pg")
    parser.add_argument("--pg-gir")
    args = parser.parse_args()

    # What a SQLite-only program loads.
    libs = needed_libs(ldd(args.demo))
    bad = [lib for lib in libs if lib.startswith(("libpq.", "libes-glib-pg"))]
    check("libes-glib-1.0.so.0" in libs and not bad,
          "ldd %s: libes-glib-1.0, no libpq, no libes-glib-pg"
          % os.path.basename(args.demo),
          "loads: %s" % " ".join(libs))
    if args.pg_demo:
        libs = needed_libs(ldd(args.pg_demo))
        check(any(lib.startswith("libpq.") for lib in libs)
              and "libes-glib-pg-1.0.so.0" in libs,
              "ldd %s (control): libes-glib-pg-1.0 and libpq"
              % os.path.basename(args.pg_demo),
              "loads: %s" % " ".join(libs))

    # What a SQLite-only program builds with.
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(args.builddir, "meson-uninstalled"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "es-glib-1.0"], env=env,
                           check=True, capture_output=True, text=True).stdout
    check(re.search(r"postgres|-lpq\b", flags, re.I) is None,
          "pkg-config --cflags --libs es-glib-1.0: no PostgreSQL", flags)
    if args.pg_gir:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "es-glib-pg-1.0"],
                               env=env, check=True, capture_output=True,
                               text=True).stdout
        check("-les-glib-pg-1.0" in flags and "-les-glib-1.0" in flags,
              "pkg-config --cflags --libs es-glib-pg-1.0: both libraries", flags)

    # Es-1.0.gir is the same with and without the PostgreSQL backend.
    if args.gir:
        text = open(args.gir, encoding="utf-8").read()
        lines = [line for line in text.splitlines() if "Pg" in line]
        check(not lines, "Es-1.0.gir holds no 'Pg'", "\n".join(lines[:10]))
    if args.pg_gir:
        root = ET.parse(args.pg_gir).getroot()
        includes = {(i.get("name"), i.get("version")) for i in root.findall(CORE + "include")}
        namespace = root.find(CORE + "namespace")
        classes = sorted(c.get("name") for c in namespace.findall(CORE + "class"))
        check(("Es", "1.0") in includes and namespace.get("name") == "EsPg"
              and classes == ["Notifier", "Storage", "StreamFactory"],
              "EsPg-1.0.gir includes Es-1.0 and has EsPg.Notifier, Storage, StreamFactory",
              "includes %s, namespace %s, classes %s"
              % (sorted(includes), namespace.get("name"), classes))

    # What the libraries export: API, plus the short documented private list.
    symbols = exported(args.libes)
    private = private_api(os.path.join(args.srcdir, "es-glib", "es-private.h"))
    extra = {s for s in symbols if not s.startswith("es_")}
    check(private and extra == private,
          "libes-glib-1.0 exports es_* and exactly the %d ES_PRIVATE_API internals"
          % len(private),
          "exported, not declared ES_PRIVATE_API: %s\ndeclared, not exported: %s"
          % (sorted(extra - private), sorted(private - extra)))
    if args.libes_pg:
        symbols = exported(args.libes_pg)
        extra = sorted(s for s in symbols if not s.startswith("es_pg_"))
        check(symbols and not extra, "libes-glib-pg-1.0 exports es_pg_* only",
              "also exports: %s" % extra)

    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
