#!/usr/bin/python3
# check-tutorial.py: keeps doc/tutorial.md honest.
#
#   check-tutorial.py extract LANG TUTORIAL OUTPUT
#       writes the ```LANG blocks of TUTORIAL, one after the other, to OUTPUT
#   check-tutorial.py run TUTORIAL PROGRAM...
#       in a fresh temporary directory, runs each PROGRAM in turn on the same
#       todo.db: the first must print exactly the tutorial's ```text block,
#       the others (second runs) must succeed and end with the same list.
#       A PROGRAM is an executable, or python:FILE / js:FILE. Every run is
#       made with G_DEBUG=fatal-criticals and must print nothing on stderr:
#       a second run used to print "GLib-CRITICAL: Source ID 1 was not
#       found" (the tutorial removed a timeout that had already fired).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import re
import subprocess
import sys
import tempfile


def blocks(path, language):
    text = open(path, encoding="utf-8").read()
    return [code for lang, code in re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M)
            if lang == language]


def command(program):
    if program.startswith("python:"):
        return ["/usr/bin/python3", program[len("python:"):]]
    if program.startswith("js:"):
        return ["gjs", "-m", program[len("js:"):]]
    return [program]


def main():
    if sys.argv[1] == "extract":
        language, tutorial, output = sys.argv[2:5]
        code = blocks(tutorial, language)
        if not code:
            sys.exit("no ```%s block in %s" % (language, tutorial))
        with open(output, "w", encoding="utf-8") as f:
            f.write("\n".join(code))
        return 0

    tutorial, programs = sys.argv[2], sys.argv[3:]
    expected = blocks(tutorial, "text")[-1]
    # The final list: from the last "1. " line to the end.
    final = expected[expected.rindex("1. [") :]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="es-tutorial-") as tmp:
        for number, program in enumerate(programs, 1):
            if program.startswith("python:") or program.startswith("js:"):
                language, source = program.split(":", 1)
                path = os.path.join(tmp, "todo." + ("py" if language == "python" else "js"))
                with open(path, "w", encoding="utf-8") as f:
                    f.write("\n".join(blocks(source, language)))
                program = language + ":" + path
            env = dict(os.environ)
            env["G_DEBUG"] = ",".join(filter(None, [env.get("G_DEBUG"), "fatal-criticals"]))
            result = subprocess.run(command(program), cwd=tmp, capture_output=True,
                                    text=True, timeout=60, env=env)
            ok = result.returncode == 0 and result.stderr == ""
            if number == 1:
                ok = ok and result.stdout == expected
            else:
                ok = ok and result.stdout.endswith(final)
            print("%s %d - run %d: %s" % ("ok" if ok else "not ok", number, number,
                                          " ".join(command(program))))
            if not ok:
                failed += 1
                print("# exit status %d; stdout:" % result.returncode)
                for line in (result.stdout + result.stderr).splitlines():
                    print("#   " + line)
    print("1..%d" % len(programs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
