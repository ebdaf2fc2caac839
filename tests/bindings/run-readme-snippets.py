#!/usr/bin/python3
# run-readme-snippets.py README: runs every ```python and ```js block of the
# README, each in a fresh temporary directory, so that the snippets keep
# working as written. Python blocks run with /usr/bin/python3, JavaScript
# blocks with `gjs -m` (skipped when gjs is missing). Blocks importing the
# installed GJS helper (file:///usr/share/es-glib-1.0/gjs/) import it from
# $ES_GJS_HELPER_URL instead when that is set (the source tree's copy).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import re
import shutil
import subprocess
import sys
import tempfile

RUNNERS = {
    "python": ("snippet.py", ["/usr/bin/python3", "snippet.py"]),
    "js": ("snippet.js", ["gjs", "-m", "snippet.js"]),
    "javascript": ("snippet.js", ["gjs", "-m", "snippet.js"]),
}


INSTALLED_GJS_HELPERS = "file:///usr/share/es-glib-1.0/gjs/"


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M)
    failed = ran = 0
    for number, (language, code) in enumerate(blocks, 1):
        if language not in RUNNERS:
            continue
        name, command = RUNNERS[language]
        helper = os.environ.get("ES_GJS_HELPER_URL")
        if helper:
            code = code.replace(INSTALLED_GJS_HELPERS, helper)
        if shutil.which(command[0]) is None:
            print("skip %s block %d: no %s" % (language, number, command[0]))
            continue
        with tempfile.TemporaryDirectory(prefix="es-readme-") as tmp:
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(code)
            result = subprocess.run(command, cwd=tmp, capture_output=True, text=True,
                                    timeout=60)
        ran += 1
        status = "ok" if result.returncode == 0 else "not ok"
        print("%s - README %s block %d" % (status, language, number))
        print(result.stdout, end="")
        if result.returncode != 0:
            failed += 1
            print(result.stderr, end="")
    if ran == 0:
        print("no runnable snippet found")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
