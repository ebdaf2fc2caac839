#!/usr/bin/python3
# check-messages.py SRCDIR: the library's translatable messages are written
# alike.
#
# Reads the sources po/POTFILES.in lists and every msgid marked with _(),
# N_(), C_() or NC_() (adjacent string literals joined), then checks:
#
#  - a message starts with a capital letter (or with a quote or a
#    placeholder such as %s, which the code fills with something that
#    does): "expected version %lld but stream..." used to be the one
#    lowercase message;
#  - a message does not end with a period (GError messages are often
#    joined to other text, e.g. "%s: %s");
#  - fragments that are inserted into other messages ("the in-memory
#    database", "an array") are the listed exceptions, and each is still
#    in the sources (so the list cannot go stale);
#  - every es-glib/*.c file with a marked string is in po/POTFILES.in, so
#    no message is missed by the catalogue.
#
# TAP output. SPDX-License-Identifier: LGPL-2.1-or-later

import glob
import os
import re
import sys

# Msgids that are not messages but parts inserted into one; lowercase on
# purpose. Keep each with the message it goes into.
FRAGMENTS = {
    # es-sqlite-storage.c: the database name in "%s failed on %s: ..."
    "the in-memory database",
    # es-validate.c: "The metadata of event %u must be a JSON object, not %s"
    "an array",
    "a string",
    "a boolean",
    "null",
    "a number",
    # es-sqlite-notifier.c: the reason in "The event database '%s' cannot
    # be used any more (...): %s"
    "the file was deleted",
    "the file was replaced by another file",
    "the file is no longer an SQLite database (it was truncated or overwritten)",
    # es-storage-handle.c: the operation in "Storage backend %s does not
    # support %s" and "Stream '%s' cannot be the target of %s: ..."
    "reading backwards",
    "durable subscriptions",
    "stream information",
    "listing streams",
    "a delete",
    "deleting streams",
    "a truncation",
    "truncating streams",
    "an erasure",
    "erasing events",
    "retention policies",
    "compaction",
    "backups",
    "integrity checks",
    "imports",
    "metadata indexes",
}

STRING = r'"(?:[^"\\]|\\.)*"'
# _("...") / N_("..."), or C_("context", "...") / NC_("context", "...").
MARKED = re.compile(r"(?<![\w])(?:N?_\(\s*((?:%s\s*)+)\)|N?C_\(\s*%s\s*,\s*((?:%s\s*)+)\))"
                    % (STRING, STRING, STRING))


def join_literals(text):
    escapes = {"n": "\n", "t": "\t"}
    return "".join(re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), s)
                   for s in re.findall(r'"((?:[^"\\]|\\.)*)"', text))


def strip_comments(source):
    # Comments may quote messages ("Appending events"); they are not msgids.
    return re.sub(r"/\*.*?\*/|//[^\n]*", lambda m: "\n" * m.group(0).count("\n"),
                  source, flags=re.S)


def main():
    srcdir = sys.argv[1]
    with open(os.path.join(srcdir, "po", "POTFILES.in"), encoding="utf-8") as f:
        potfiles = [line.strip() for line in f
                    if line.strip() and not line.startswith("#")]

    messages = []  # (file, line, msgid)
    for name in potfiles:
        with open(os.path.join(srcdir, name), encoding="utf-8") as f:
            source = strip_comments(f.read())
        for m in MARKED.finditer(source):
            msgid = join_literals(m.group(1) or m.group(2))
            messages.append((name, source.count("\n", 0, m.start()) + 1, msgid))

    number = 0
    failures = 0

    def report(ok, description, details=()):
        nonlocal number, failures
        number += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", number, description))
        for line in details:
            print("#   " + line)
        failures += not ok

    report(len(messages) > 50, "%d marked strings found in %d files"
           % (len(messages), len(potfiles)))

    lowercase = ["%s:%d: %s" % (f, n, msgid) for f, n, msgid in messages
                 if msgid[:1].isalpha() and not msgid[:1].isupper()
                 and msgid not in FRAGMENTS]
    report(not lowercase, "every message starts with a capital letter", lowercase)

    periods = ["%s:%d: %s" % (f, n, msgid) for f, n, msgid in messages
               if msgid.rstrip().endswith(".") and not msgid.rstrip().endswith("...")]
    report(not periods, "no message ends with a period", periods)

    spaces = ["%s:%d: %r" % (f, n, msgid) for f, n, msgid in messages
              if msgid != msgid.strip()]
    report(not spaces, "no message starts or ends with white space", spaces)

    present = {msgid for _, _, msgid in messages}
    stale = sorted(FRAGMENTS - present)
    report(not stale, "every listed fragment is still in the sources", stale)

    unlisted = []
    # es-glib/ and its backend folders (es-glib/postgres/ ...).
    for path in sorted(glob.glob(os.path.join(srcdir, "es-glib", "**", "*.c"), recursive=True)):
        name = os.path.relpath(path, srcdir)
        with open(path, encoding="utf-8") as f:
            if MARKED.search(strip_comments(f.read())) and name not in potfiles:
                unlisted.append(name)
    report(not unlisted, "every source with messages is in po/POTFILES.in", unlisted)

    print("1..%d" % number)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
