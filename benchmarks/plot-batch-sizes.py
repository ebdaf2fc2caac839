#!/usr/bin/env python3
# plot-batch-sizes.py: write throughput against batch size, as an SVG.
#
# Reads the CSV that `es-bench --batch-sizes` prints (a header line, then
# one line per batch size: the size, then events/s for each series) and
# writes a line chart with logarithmic axes. Python standard library only.
#
#   _build/benchmarks/es-bench --batch-sizes > batch-sizes.csv
#   benchmarks/plot-batch-sizes.py batch-sizes.csv doc/batch-sizes.svg
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import csv
import math
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 170, 40, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
LABELS = {
    "es_glib_events_per_s": "es-glib",
    "raw_sqlite_events_per_s": "raw SQLite",
}


def read_csv(path):
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
    header, data = rows[0], rows[1:]
    sizes = [int(row[0]) for row in data]
    series = [
        (LABELS.get(name, name), [float(row[i]) for row in data])
        for i, name in enumerate(header[1:], start=1)
    ]
    return sizes, series


def log_scale(value, low, high, start, end):
    position = (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))
    return start + position * (end - start)


def human(value):
    if value >= 1e6:
        return "%gM" % (value / 1e6)
    if value >= 1e3:
        return "%gk" % (value / 1e3)
    return "%g" % value


def plot(sizes, series, title):
    values = [v for _, vs in series for v in vs if v > 0]
    y_low = 10 ** math.floor(math.log10(min(values)))
    y_high = 10 ** math.ceil(math.log10(max(values)))
    x_low, x_high = min(sizes), max(sizes)
    plot_left, plot_right = LEFT, WIDTH - RIGHT
    plot_top, plot_bottom = TOP, HEIGHT - BOTTOM

    def x(size):
        return log_scale(size, x_low, x_high, plot_left, plot_right)

    def y(value):
        return log_scale(value, y_low, y_high, plot_bottom, plot_top)

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
        % (WIDTH, HEIGHT, WIDTH, HEIGHT),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="22" font-size="15" text-anchor="middle">%s</text>'
        % ((plot_left + plot_right) // 2, escape(title)),
    ]

    # Grid and ticks: every power of ten on the y axis, every size on x.
    decade = y_low
    while decade <= y_high:
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (plot_left, y(decade), plot_right, y(decade)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                   % (plot_left - 8, y(decade) + 4, human(decade)))
        decade *= 10
    for size in sizes:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                   % (x(size), plot_top, x(size), plot_bottom))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                   % (x(size), plot_bottom + 18, "{:,}".format(size)))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'
               % (plot_left, plot_top, plot_right - plot_left, plot_bottom - plot_top))
    out.append('<text x="%d" y="%d" text-anchor="middle">events per write (batch size)</text>'
               % ((plot_left + plot_right) // 2, HEIGHT - 18))
    out.append('<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">'
               'events written per second</text>' % ((plot_top + plot_bottom) // 2))

    for index, (label, vs) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join("%.1f,%.1f" % (x(s), y(v)) for s, v in zip(sizes, vs) if v > 0)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>'
                   % (points, colour))
        for s, v in zip(sizes, vs):
            if v > 0:
                out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s">'
                           '<title>%s: batch %d, %.0f events/s</title></circle>'
                           % (x(s), y(v), colour, escape(label), s, v))
        legend_y = plot_top + 10 + index * 22
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   % (plot_right + 15, legend_y, plot_right + 40, legend_y, colour))
        out.append('<text x="%d" y="%d">%s</text>'
                   % (plot_right + 46, legend_y + 4, escape(label)))

    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: plot-batch-sizes.py BATCH-SIZES.csv [OUT.svg]\n")
        return 2
    sizes, series = read_csv(argv[1])
    svg = plot(sizes, series, "Write throughput by batch size (SQLite, WAL, synchronous=NORMAL)")
    if len(argv) == 3:
        with open(argv[2], "w") as f:
            f.write(svg)
    else:
        sys.stdout.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
