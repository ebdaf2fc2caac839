#!/usr/bin/python3
# check-examples.py: the examples run uninstalled, through `meson devenv`.
#
#   check-examples.py MESON BUILDDIR SRCDIR [--python] [--gjs] [--pg]
#
# Runs each example as a developer would from a fresh shell:
#   meson devenv -C BUILDDIR --workdir TMP PROGRAM...
# with none of the variables the devenv is meant to set already set
# (PYTHONPATH, GI_TYPELIB_PATH, LD_LIBRARY_PATH, ES_LOCALEDIR), so the test
# fails if meson.add_devenv() in the top-level meson.build misses one:
# examples/watch.py used to fail there, PyGObject not finding the
# override (gi/overrides/Es.py). Every run has G_DEBUG=fatal-criticals and
# must print nothing on stderr. Also checks that the devenv brings the
# build's translations (ES_LOCALEDIR): with LANGUAGE=de a library error
# comes out in German. With --pg, Python and GJS also find the
# PostgreSQL library's typelib (EsPg-1.0) and library in the devenv (no
# server needed: a connection that cannot be made fails as documented).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import subprocess
import sys
import tempfile

DEVENV_VARIABLES = ("PYTHONPATH", "GI_TYPELIB_PATH", "LD_LIBRARY_PATH", "ES_LOCALEDIR")

# Python, in the devenv: writing to @all fails with the library's message,
# translated by the catalogue built into <build>/po.
I18N_SNIPPET = """
import locale
locale.setlocale(locale.LC_ALL, "")
import gi
gi.require_version("Es", "1.0")
from gi.repository import Es, GLib
factory = Es.SqliteStreamFactory.new(":memory:", None)
stream = factory.open_stream(Es.ALL_STREAM, None)
try:
    stream.write([Es.CandidateEvent(event_type="T", data=GLib.Bytes.new(b"x"))], Es.VERSION_ANY, None)
except GLib.Error as e:
    print(e.message)
factory.close(None)
"""

# Python and GJS, in the devenv: EsPg-1.0.typelib and libes-glib-pg load.
PG_PYTHON_SNIPPET = """
import gi
gi.require_version("Es", "1.0")
gi.require_version("EsPg", "1.0")
from gi.repository import Es, EsPg, GLib
try:
    EsPg.StreamFactory.new("host=/nonexistent port=1", None)
except GLib.Error as e:
    assert e.matches(Es.error_quark(), Es.Error.STORAGE), e.message
    print("EsPg.StreamFactory: Es.Error.STORAGE")
"""
PG_GJS_SNIPPET = """
import Es from 'gi://Es?version=1.0';
import EsPg from 'gi://EsPg?version=1.0';
try {
    EsPg.StreamFactory.new('host=/nonexistent port=1', null);
} catch (e) {
    if (!e.matches(Es.error_quark(), Es.Error.STORAGE))
        throw e;
    print('EsPg.StreamFactory: Es.Error.STORAGE');
}
"""


def main():
    meson, builddir, srcdir = sys.argv[1:4]
    languages = sys.argv[4:]
    examples = os.path.join(srcdir, "examples")

    # (name, command, lines the output must contain, extra environment)
    checks = [
        ("demo (C)", [os.path.join(builddir, "examples", "es-demo")], [], {}),
        ("read-model (C)", [os.path.join(builddir, "examples", "es-read-model")],
         ['after the restart: applied 6 events: {"Added":5,"CheckedOut":2,"Removed":2}',
          "the read model equals a fold of all 9 events"], {}),
    ]
    if "--python" in languages:
        checks += [
            ("watch.py", ["/usr/bin/python3", os.path.join(examples, "watch.py")],
             ["  v1 TemperatureSet 19 °C", "  v2 TemperatureSet 20 °C",
              "caught up with the history; now live:", "  v4 TemperatureSet 22 °C"], {}),
            ("read_model.py", ["/usr/bin/python3", os.path.join(examples, "read_model.py")],
             ['after the restart: applied 6 events: {"Added": 5, "CheckedOut": 2, '
              '"Removed": 2}',
              "the read model equals a fold of all 9 events",
              "event-counts on @all: checkpoint 9, lag 0"], {}),
            ("counter.py", ["/usr/bin/python3", os.path.join(examples, "counter.py")],
             ["from the snapshot at version 3: counter = 16 at version 4"], {}),
            ("translations (ES_LOCALEDIR)", ["/usr/bin/python3", "-c", I18N_SNIPPET],
             ["Der Stream »@all« ist schreibgeschützt: "
              "Er enthält die Ereignisse aller Streams"],
             {"LANGUAGE": "de"}),
        ]
    if "--gjs" in languages:
        checks += [
            ("counter.js", ["gjs", "-m", os.path.join(examples, "counter.js")],
             ["from the snapshot at version 3: counter = 16 at version 4"], {}),
        ]
    scripts = tempfile.TemporaryDirectory(prefix="es-examples-scripts-")
    pg_gjs = os.path.join(scripts.name, "pg.js")
    if "--pg" in languages:
        with open(pg_gjs, "w", encoding="utf-8") as f:
            f.write(PG_GJS_SNIPPET)
        if "--python" in languages:
            checks.append(("EsPg from Python", ["/usr/bin/python3", "-c", PG_PYTHON_SNIPPET],
                           ["EsPg.StreamFactory: Es.Error.STORAGE"], {}))
        if "--gjs" in languages:
            checks.append(("EsPg from GJS", ["gjs", "-m", pg_gjs],
                           ["EsPg.StreamFactory: Es.Error.STORAGE"], {}))

    env = {k: v for k, v in os.environ.items() if k not in DEVENV_VARIABLES}
    env["G_DEBUG"] = "fatal-criticals"
    env["LC_ALL"] = "C.UTF-8"
    env["LANGUAGE"] = "en"
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    failed = 0
    for number, (name, command, expected, extra) in enumerate(checks, 1):
        with tempfile.TemporaryDirectory(prefix="es-examples-") as tmp:
            result = subprocess.run([meson, "devenv", "-C", builddir, "--workdir", tmp] + command,
                                    env=dict(env, **extra), capture_output=True, text=True,
                                    timeout=90)
        lines = result.stdout.splitlines()
        missing = [line for line in expected if line not in lines]
        ok = result.returncode == 0 and result.stderr == "" and not missing
        print("%s %d - %s runs under meson devenv" % ("ok" if ok else "not ok", number, name))
        if not ok:
            failed += 1
            print("# exit status %d; missing lines: %r" % (result.returncode, missing))
            for line in (result.stdout + result.stderr).splitlines():
                print("#   " + line)
    scripts.cleanup()
    print("1..%d" % len(checks))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
