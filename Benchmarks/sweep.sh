#!/usr/bin/env bash
# How time and memory grow with the size of the history: runs compare.sh once per scale (the
# same steps for coffer, restic and borg: init, first backup, no-change backup, list, restore)
# and collects each tool's first-backup time, restore time and peak RSS per size. Writes a
# table, the JSON (--out) and, next to it, an SVG chart (Benchmarks/chart.py).
#
#   Benchmarks/sweep.sh [--scales "20 40 80 160"] [--out FILE.json] [--coffer BIN] [--tmp DIR]
#
#   --scales L   compare.sh scales to run (default "20 40 80 160": about 0.5, 1, 2 and 4 GiB)
#   --out FILE   write the JSON results to FILE and the chart to FILE with .svg for .json
#   --coffer BIN, --tmp DIR   passed to compare.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scales="20 40 80 160" out="" pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --scales) scales="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --coffer|--tmp) pass+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "sweep.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

work="$(mktemp -d "${TMPDIR:-/tmp}/coffer-sweep.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for s in $scales; do
    echo "sweep.sh: scale $s" >&2
    "$root/Benchmarks/compare.sh" --scale "$s" --out "$work/compare-$s.json" "${pass[@]}" > "$work/compare-$s.txt"
done

python3 - "$work" "$out" "$scales" <<'PY'
import json, sys
work, out, scales = sys.argv[1], sys.argv[2], sys.argv[3].split()
MIB = 1024 * 1024
points = []
for s in scales:
    r = json.load(open("%s/compare-%s.json" % (work, s)))
    get = lambda t, p, k: next(x[k] for x in r["results"] if x["tool"] == t and x["phase"] == p)
    tools = ["coffer", "restic", "borg"]
    points.append({"scale": s, "data_mib": round(r["data_bytes"] / MIB, 1), "versions": r["versions"],
                   "backup_seconds": {t: get(t, "backup1", "seconds") for t in tools},
                   "restore_seconds": {t: get(t, "restore", "seconds") for t in tools},
                   "peak_rss_mib": {t: round(get(t, "backup1", "peak_rss_bytes") / MIB, 1) for t in tools}})
print("history MiB | first backup s: coffer restic borg | restore s: coffer restic borg | peak RSS MiB: coffer restic borg")
for p in points:
    b, r, m = p["backup_seconds"], p["restore_seconds"], p["peak_rss_mib"]
    print("%10.1f | %6.2f %6.2f %6.2f | %6.2f %6.2f %6.2f | %6.1f %6.1f %6.1f" % (
        p["data_mib"], b["coffer"], b["restic"], b["borg"], r["coffer"], r["restic"], r["borg"], m["coffer"], m["restic"], m["borg"]))
text = json.dumps({"points": points}, sort_keys=True)
if out:
    open(out, "w").write(text + "\n")
print(text)
PY
if [ -n "$out" ]; then python3 "$root/Benchmarks/chart.py" "$out" "${out%.json}.svg"; echo "sweep.sh: chart in ${out%.json}.svg" >&2; fi
