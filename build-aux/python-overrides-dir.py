#!/usr/bin/python3
# Prints the gi/overrides directory that /usr/bin/python3 searches under a
# meson prefix: Debian's Python looks in /usr/lib/python3/dist-packages for
# /usr, and in /usr/local/lib/python3.X/dist-packages for /usr/local.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import os
import sys

prefix = os.path.normpath(sys.argv[1])
for path in sys.path:
    rel = os.path.relpath(path, prefix)
    if rel.startswith("lib") and path.endswith(("dist-packages", "site-packages")):
        print(os.path.join(path, "gi", "overrides"))
        break
else:
    print(os.path.join(prefix, "lib", "python%d.%d" % sys.version_info[:2], "site-packages",
                       "gi", "overrides"))
