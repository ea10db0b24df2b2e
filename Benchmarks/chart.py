#!/usr/bin/env python3
"""Draw the benchmarks' JSON results as an SVG chart, with the standard library only.

    chart.py RESULTS.json OUT.svg

RESULTS.json is what `compare.sh --out`, `history.sh --out` or `sweep.sh --out` wrote; the kind
is recognised from its keys:

- compare.sh: throughput (MiB/s of the data) per tool for the first backup, the no-change
  backup and the restore, local and (with --s3) against S3, one group of bars per step;
- history.sh: bytes each tool added to its repository per day, against the ideal (zstd -3 of
  only the new content), one line per tool;
- sweep.sh: first-backup seconds and peak RSS per tool against the size of the history.
"""

import json
import sys
from xml.sax.saxutils import escape

COLORS = {"coffer": "#1f6fb2", "restic": "#d9822b", "borg": "#3a9a5b", "coffer-s3": "#6fa8dc",
          "restic-s3": "#f0b27a", "ideal": "#555555"}
MIB = 1024 * 1024


def svg(width, height, body):
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'font-family="sans-serif" font-size="12">\n<rect width="100%%" height="100%%" fill="white"/>\n%s\n</svg>\n'
            % (width, height, width, height, "\n".join(body)))


def text(x, y, s, anchor="start", size=12, weight="normal"):
    return '<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" font-weight="%s">%s</text>' % (
        x, y, anchor, size, weight, escape(str(s)))


def legend(tools, x, y):
    out = []
    for i, t in enumerate(tools):
        out.append('<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>' % (x + i * 110, y - 10, COLORS.get(t, "#999")))
        out.append(text(x + i * 110 + 16, y, t))
    return out


def bars(title, groups, tools, unit):
    """groups: [(label, {tool: value})]; one bar per tool in each group."""
    width, left, top, height = 860, 60, 60, 300
    peak = max([v for _, vals in groups for v in vals.values() if v] or [1])
    slot = (width - left - 20) / max(1, len(groups))
    bar = slot * 0.8 / max(1, len(tools))
    body = [text(width / 2, 24, title, "middle", 15, "bold")] + legend(tools, left, 46)
    for k in range(5):
        v = peak * k / 4
        y = top + height - height * k / 4
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, y, width - 20, y))
        body.append(text(left - 6, y + 4, "%.0f" % v, "end"))
    for g, (label, vals) in enumerate(groups):
        x0 = left + g * slot + slot * 0.1
        for i, t in enumerate(tools):
            v = vals.get(t)
            if v is None:
                continue
            h = height * v / peak
            x = x0 + i * bar
            body.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.1f %s</title></rect>'
                        % (x, top + height - h, bar - 2, h, COLORS.get(t, "#999"), t, label, v, unit))
            body.append(text(x + bar / 2 - 1, top + height - h - 3, "%.0f" % v, "middle", 10))
        body.append(text(x0 + slot * 0.4, top + height + 18, label, "middle"))
    body.append(text(14, top + height / 2, unit, "middle", 12).replace("<text", '<text transform="rotate(-90 14 %.1f)"' % (top + height / 2), 1))
    return svg(width, top + height + 40, body)


def lines(title, xs, series, xlabel, unit):
    """series: {name: [y per x]}."""
    width, left, top, height = 860, 70, 60, 300
    peak = max([v for ys in series.values() for v in ys if v is not None] or [1])
    lo, hi = min(xs), max(xs)
    sx = lambda x: left + (width - left - 30) * ((x - lo) / (hi - lo) if hi > lo else 0.5)
    sy = lambda y: top + height - height * y / peak
    body = [text(width / 2, 24, title, "middle", 15, "bold")] + legend(list(series), left, 46)
    for k in range(5):
        v = peak * k / 4
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, sy(v), width - 30, sy(v)))
        body.append(text(left - 6, sy(v) + 4, "%.1f" % v, "end"))
    for x in xs:
        body.append(text(sx(x), top + height + 18, x, "middle"))
    for name, ys in series.items():
        pts = " ".join("%.1f,%.1f" % (sx(x), sy(y)) for x, y in zip(xs, ys) if y is not None)
        dash = ' stroke-dasharray="6 4"' if name == "ideal" else ""
        body.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>' % (pts, COLORS.get(name, "#999"), dash))
        for x, y in zip(xs, ys):
            if y is not None:
                body.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s: %.2f %s</title></circle>'
                            % (sx(x), sy(y), COLORS.get(name, "#999"), name, x, y, unit))
    body.append(text(width / 2, top + height + 36, xlabel, "middle"))
    body.append(text(16, top + height / 2, unit, "middle").replace("<text", '<text transform="rotate(-90 16 %.1f)"' % (top + height / 2), 1))
    return svg(width, top + height + 46, body)


def compare_chart(r):
    tools = [t for t in ["coffer", "restic", "borg", "coffer-s3", "restic-s3"] if any(x["tool"] == t for x in r["results"])]
    names = {"backup1": "first backup", "backup2": "no-change backup", "restore": "restore", "durable": "restore, on disk"}
    groups = []
    for phase, label in names.items():
        vals = {x["tool"]: x["data_bytes"] / MIB / x["seconds"] if "data_bytes" in x else r["data_bytes"] / MIB / x["seconds"]
                for x in r["results"] if x["phase"] == phase and x["seconds"] > 0}
        groups.append((label, vals))
    # The no-change backup is far faster than the rest: its own scale would flatten the others.
    main = [g for g in groups if g[0] != "no-change backup"]
    title = "Throughput, %.0f MiB chat history (higher is better)" % (r["data_bytes"] / MIB)
    return bars(title, main, tools, "MiB/s")


def history_chart(r):
    days = [row["day"] for row in r["per_day"]][1:]
    series = {"ideal": [row["ideal"]["ideal_bytes"] / MIB for row in r["per_day"][1:]]}
    for t in ["coffer", "restic", "borg"]:
        series[t] = [row[t]["growth_bytes"] / MIB for row in r["per_day"][1:]]
    return lines("Bytes added per day (lower is better; ideal dashed)", days, series, "day", "MiB")


def sweep_chart(r):
    sizes = [p["data_mib"] for p in r["points"]]
    tools = [t for t in ["coffer", "restic", "borg"] if t in r["points"][0]["backup_seconds"]]
    secs = {t: [p["backup_seconds"][t] for p in r["points"]] for t in tools}
    rss = {t: [p["peak_rss_mib"][t] for p in r["points"]] for t in tools}
    a = lines("First backup time against history size", [round(s) for s in sizes], secs, "history (MiB)", "seconds")
    b = lines("First backup peak RSS against history size", [round(s) for s in sizes], rss, "history (MiB)", "MiB")
    # Two charts stacked in one SVG.
    inner_a, inner_b = a.split("\n", 1)[1].rsplit("</svg>", 1)[0], b.split("\n", 1)[1].rsplit("</svg>", 1)[0]
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="860" height="812" font-family="sans-serif" font-size="12">\n'
            '<g>%s</g>\n<g transform="translate(0 406)">%s</g>\n</svg>\n' % (inner_a, inner_b))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    r = json.load(open(sys.argv[1]))
    if "per_day" in r:
        out = history_chart(r)
    elif "points" in r:
        out = sweep_chart(r)
    elif "results" in r:
        out = compare_chart(r)
    else:
        sys.exit("chart.py: %s is not a compare.sh, history.sh or sweep.sh result" % sys.argv[1])
    with open(sys.argv[2], "w") as f:
        f.write(out)


if __name__ == "__main__":
    main()
