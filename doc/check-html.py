#!/usr/bin/python3
# check-html.py: the built HTML reference shows the `@all` stream as `@all`.
#
#   check-html.py HTML_DIR...
#
# (the core's reference, and the PostgreSQL library's when it is built;
# postgres.html is in the latter)
#
# gi-docgen reads `@name` as a reference to a parameter and renders it as
# `name`, even inside backticks, so "`@all`" used to come out as "all": a
# reader who copied open_stream("all") from the docs got a valid, empty
# stream. The docs write the name as <code>@<!-- -->all</code>: the HTML
# comment between @ and the name hides it from gi-docgen and is invisible
# in the page, the table of contents and the search index (an entity such
# as &#64; shows up escaped in the table of contents). This test parses
# every page of the built reference (and the search index) and
#
#  - fails on any rendering of the bare name where `@all` is meant: a code
#    element that is just `all`, a string literal "all" or 'all', a leftover
#    `all` between backticks, "the all stream" in prose;
#  - fails if the escape itself shows as text;
#  - requires `@all` on the pages that explain it (and on many pages in all).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import glob
import html
import html.parser
import json
import os
import re
import sys

# Pages that must show `@all` at least once, and how many must in all
# (the sources mention it on some 50 pages).
REQUIRED_PAGES = [
    "concepts.html",
    "tutorial.html",
    "backend.html",
    "operations.html",
    "privacy-and-retention.html",
    "python.html",
    "const.ALL_STREAM.html",
    "iface.Stream.html",
    "class.Watch.html",
    "class.StreamMetrics.html",
    "class.StoredEvent.html",
    "method.StoredEvent.get_id.html",
    "method.Stream.read.html",
]
MINIMUM_PAGES = 40

BARE_PATTERNS = [
    (re.compile(r"""(["'])all\1"""), 'the string literal "all"'),
    (re.compile(r"`all`"), "`all` between backticks"),
    (re.compile(r"\b[Tt]he all stream\b"), '"the all stream"'),
    (re.compile(r"\b(for|never|not) all\)"), '"(... for all)" in prose'),
    # The escape itself must never show.
    (re.compile(r"&#64;|&commat;|<!--"), "an escaped @ shown as text"),
]


class Page(html.parser.HTMLParser):
    """Collects a page's text (entities decoded) and its <code> elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text = []
        self.codes = []
        self._code_depth = 0
        self._code = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "code":
            if self._code_depth == 0:
                self._code = []
            self._code_depth += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "code" and self._code_depth > 0:
            self._code_depth -= 1
            if self._code_depth == 0:
                self.codes.append("".join(self._code))

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._code_depth:
            self._code.append(data)


def main():
    html_dirs = sys.argv[1:]
    pages = []
    for html_dir in html_dirs:
        found = sorted(glob.glob(os.path.join(html_dir, "*.html")))
        if not found:
            sys.exit("no HTML pages in %s" % html_dir)
        pages += found
    failures = 0
    with_all = set()
    number = 0
    for path in pages:
        name = os.path.basename(path)
        parser = Page()
        with open(path, encoding="utf-8") as f:
            parser.feed(f.read())
        parser.close()
        text = "".join(parser.text)
        problems = []
        for code in parser.codes:
            if code.strip() == "all":
                problems.append("<code>all</code>")
        for line in text.splitlines():
            for pattern, what in BARE_PATTERNS:
                if pattern.search(line):
                    problems.append("%s in: %s" % (what, line.strip()[:120]))
        if "@all" in text:
            with_all.add(name)
        number += 1
        print("%s %d - %s shows no bare all stream name"
              % ("not ok" if problems else "ok", number,
                 os.path.join(os.path.basename(os.path.dirname(path)), name)))
        for problem in problems:
            print("#   " + problem)
        failures += bool(problems)

    # The search index: its summaries are shown with innerHTML.
    for html_dir in html_dirs:
        index_path = os.path.join(html_dir, "index.json")
        if os.path.exists(index_path):
            with open(index_path, encoding="utf-8") as f:
                index = json.load(f)
            summaries = []

            def walk(node):
                if isinstance(node, dict):
                    for key, value in node.items():
                        if key == "summary" and isinstance(value, str):
                            summaries.append(value)
                        else:
                            walk(value)
                elif isinstance(node, list):
                    for value in node:
                        walk(value)

            walk(index)
            problems = []
            shown = 0
            for summary in summaries:
                text = html.unescape(re.sub(r"<[^<]*?>", "", summary))
                shown += "@all" in text
                for pattern, what in BARE_PATTERNS:
                    if pattern.search(text):
                        problems.append("%s in: %s" % (what, text[:120]))
            number += 1
            # The core's summaries explain @all; the PostgreSQL library's
            # need only not show the bare name.
            ok = not problems and (shown > 0 or html_dir != html_dirs[0])
            print("%s %d - %s/index.json: %d summaries show @all, none the bare name"
                  % ("ok" if ok else "not ok", number, os.path.basename(html_dir), shown))
            for problem in problems:
                print("#   " + problem)
            failures += not ok

    # postgres.html is in the PostgreSQL library's reference (the second
    # directory), built with -Dpostgres.
    for name in REQUIRED_PAGES + (["postgres.html"] if len(html_dirs) > 1 else []):
        number += 1
        ok = name in with_all
        print("%s %d - %s shows @all" % ("ok" if ok else "not ok", number, name))
        failures += not ok

    number += 1
    ok = len(with_all) >= MINIMUM_PAGES
    print("%s %d - %d pages show @all (at least %d)" % ("ok" if ok else "not ok", number,
                                                        len(with_all), MINIMUM_PAGES))
    failures += not ok
    print("1..%d" % number)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
