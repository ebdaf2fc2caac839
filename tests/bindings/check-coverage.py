#!/usr/bin/python3
# check-coverage.py: every callable of a GIR (Es-1.0.gir, EsPg-1.0.gir)
# must be called by the Python tests and, separately, by the GJS tests.
#
# Usage: check-coverage.py GIR --python FILE... --gjs FILE...
#
# Callables are the functions, methods and constructors of the namespace,
# of its classes, interfaces, records and enums (virtual methods and
# *_get_type are left out). A method `name` counts as called in a
# language when `.name(` occurs in its files; in GJS also a quoted
# 'name' (Gio._promisify(proto, 'write_async', 'write_finish')).
# Constructors and static functions must appear qualified by their class:
# `Class.new(`, `Class.new_async` ..., either bare or as `Namespace.Class`
# of the GIR's namespace: `EsPg.StreamFactory.new` counts for EsPg-1.0 but
# `Es.StreamFactory.new` does not.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import argparse
import re
import sys
import xml.etree.ElementTree as ET

CORE = "{http://www.gtk.org/introspection/core/1.0}"
C_IDENTIFIER = "{http://www.gtk.org/introspection/c/1.0}identifier"
CONTAINERS = ("class", "interface", "record", "enumeration", "bitfield")


def namespace_name(gir_path):
    return ET.parse(gir_path).getroot().find(CORE + "namespace").get("name")


def callables(gir_path):
    """Returns (owner or None, name, kind) for every callable of the GIR,
    once per C symbol: es_error_quark() is both the namespace function
    error_quark and Error.quark; the namespace one is kept."""
    namespace = ET.parse(gir_path).getroot().find(CORE + "namespace")
    found = {}
    for node in namespace:
        tag = node.tag[len(CORE):]
        if tag == "function":
            found[node.get(C_IDENTIFIER)] = (None, node.get("name"), "function")
        elif tag in CONTAINERS:
            for child in node:
                kind = child.tag[len(CORE):]
                if kind not in ("method", "function", "constructor"):
                    continue
                if child.get("name").endswith("get_type") and kind == "function":
                    continue
                found.setdefault(child.get(C_IDENTIFIER),
                                 (node.get("name"), child.get("name"), kind))
    return list(found.values())


def covered(ns, owner, name, kind, text, js):
    if owner is None:
        return re.search(r"\b%s\s*\(" % re.escape(name), text) is not None
    if kind in ("constructor", "function"):
        qualified = r"(?<![\w.])(?:%s\.)?%s" % (re.escape(ns), re.escape(owner))
        pattern = r"%s\.%s\b" % (qualified, re.escape(name))
        if js:
            # Gio._promisify(Es.SqliteStreamFactory, 'new_async', 'new_finish')
            pattern += r"|_promisify\(\s*%s\.%s\s*,[^)]*'%s'" % (re.escape(ns), re.escape(owner),
                                                                  re.escape(name))
        return re.search(pattern, text) is not None
    pattern = r"\.%s\s*\(" % re.escape(name)
    if js:
        pattern += r"|'%s'" % re.escape(name)
    return re.search(pattern, text) is not None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("gir")
    parser.add_argument("--python", nargs="+", required=True)
    parser.add_argument("--gjs", nargs="+", required=True)
    args = parser.parse_args()

    ns = namespace_name(args.gir)
    symbols = sorted(set(callables(args.gir)), key=lambda s: (s[0] or "", s[1]))
    failed = False
    for language, files, js in (("Python", args.python, False), ("GJS", args.gjs, True)):
        text = "\n".join(open(path, encoding="utf-8").read() for path in files)
        missing = [s for s in symbols if not covered(ns, s[0], s[1], s[2], text, js)]
        print("%s: %d of %d %s callables covered" % (language, len(symbols) - len(missing),
                                                    len(symbols), ns))
        for owner, name, kind in missing:
            print("  not called from %s: %s.%s%s (%s)" % (language, ns, owner + "." if owner else "",
                                                      name, kind))
        failed = failed or bool(missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
