#!/usr/bin/env bash
# Long-history benchmark of coffer, restic and borg on the same growing chat folder: a first
# backup (day 0), then one backup a day for D days while Scripts/make-sample-chat.py changes the
# folder as a day of use would; then retention (keep the last K snapshots and free the rest),
# `coffer check --read-data`, and a restore of the latest snapshot of each tool checked with
# `diff -r`. For every day it records each tool's wall time and repository growth, coffer's own
# bytesAdded/bytesStored, and the *ideal* growth: the zstd -3 size of only what changed that day.
# Prints a per-day table, a retention table, a restore table and coffer/restic, coffer/borg
# ratios; the last line of stdout is all results as one JSON object.
#
#   Benchmarks/history.sh [--scale S] [--days D] [--keep-last K] [--out FILE] [--coffer BIN] [--tmp DIR] [--keep]
#
#   --scale S      size of the generated chat folder (default 8, about 200 MiB)
#   --days D       number of daily changes and backups after day 0 (default 14)
#   --keep-last K  snapshots kept by the retention step (default 3)
#   --out FILE     also write the JSON results to FILE, and an SVG chart of the bytes each tool
#                  added per day against the ideal next to it (FILE with .svg for .json)
#   --coffer BIN   use this coffer binary (default: build one with `swift build -c release`
#                  into .build-hist/)
#   --tmp DIR      where the temporary data, repositories and restores go (default $TMPDIR or
#                  /tmp); all three tools use the same disk. Needs about 8x the data size free.
#   --keep         keep the temporary folder
#
# Settings as in compare.sh: restic with its defaults (repository v2, compression auto); borg
# with `init -e repokey-blake2` and `create --compression zstd,3`; coffer with its defaults
# (zstd 3, FastCDC 256 KiB / 1 MiB / 4 MiB, SQLite files cut at their pages), run after init with
# a device key and no password, as the README recommends for scheduled backups. Each tool's cache
# lives in the temporary folder and starts empty. `sync` runs before every timed step; wall time
# comes from `date +%s.%N`, CPU (user + system) and peak RSS from `/usr/bin/time -v`. Repository
# sizes are the sum of the repository's file sizes (directories are not counted, so creating a
# directory is not "growth"). Bytes in the tables are MiB (2^20).
#
# Ideal daily growth: a file whose contents already existed the day before (anywhere in the
# folder, e.g. a forwarded copy) or earlier the same day costs nothing; any other new or changed
# file costs min(size, zstd -3 size), each file compressed on its own; a SQLite file that existed
# the day before costs only its changed pages (compared page by page with yesterday's copy),
# concatenated and compressed as one zstd -3 stream. It ignores all metadata (trees, indexes,
# snapshot records, encryption), so no real tool reaches it. A copy of yesterday's folder is kept
# in the temporary folder to compare against.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scale=8 days=14 keep_last=3 out="" coffer="" tmpbase="${TMPDIR:-/tmp}" keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) scale="$2"; shift 2 ;;
        --days) days="$2"; shift 2 ;;
        --keep-last) keep_last="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --coffer) coffer="$2"; shift 2 ;;
        --tmp) tmpbase="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "history.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$days" in ''|*[!0-9]*) echo "history.sh: --days must be a whole number" >&2; exit 2 ;; esac
case "$keep_last" in ''|*[!0-9]*|0) echo "history.sh: --keep-last must be at least 1" >&2; exit 2 ;; esac

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
for tool in restic borg python3 zstd /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { echo "history.sh: $tool is missing (apt-get install -y restic borgbackup python3 zstd time)" >&2; exit 1; }
done
log() { printf '%s\n' "$*" >&2; }

if [ -z "$coffer" ]; then
    log "building coffer (release, .build-hist/)"
    swift build -c release --product coffer --package-path "$root" --scratch-path "$root/.build-hist" >&2
    coffer="$(swift build -c release --package-path "$root" --scratch-path "$root/.build-hist" --show-bin-path)/coffer"
fi
coffer="$(realpath "$coffer")"

work="$(mktemp -d "$tmpbase/coffer-history.XXXXXX")"
cleanup() { if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

# Nothing is deleted while steps are being timed: on ext4, creating files soon after many were
# deleted (for up to six minutes, while the freed inodes look "recently deleted") costs several
# times the CPU, and a restore timed after another tool's `rm -rf` of its restored copy paid it
# (measured: a coffer restore took 11.4 s just after an rm -rf of 7150 files, 4.0 s without).
# What a step leaves behind is moved into trash/ and deleted when the script ends.
mkdir -p "$work/trash"
discard() { local p; for p in "$@"; do [ -e "$p" ] && mv "$p" "$(mktemp -d "$work/trash/XXXXXX")/"; done; return 0; }

name=chat
data="$work/$name" prev="$work/prev-day" parent="$work"
log "generating sample data (scale $scale) in $data"
python3 "$root/Scripts/make-sample-chat.py" --out "$data" --scale "$scale" >&2

export COFFER_PASSWORD="history-benchmark-password"
export RESTIC_PASSWORD="$COFFER_PASSWORD" BORG_PASSPHRASE="$COFFER_PASSWORD"
export RESTIC_CACHE_DIR="$work/restic-cache" BORG_BASE_DIR="$work/borg-base"
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no
unset COFFER_REPOSITORY RESTIC_REPOSITORY BORG_REPO
RC="$work/repo-coffer" RR="$work/repo-restic" RB="$work/repo-borg"
results="$work/results.tsv" coffer_tsv="$work/coffer.tsv" ideal_tsv="$work/ideal.tsv" notes="$work/notes.tsv"
: > "$results"; : > "$coffer_tsv"; : > "$ideal_tsv"; : > "$notes"

# The ideal-growth calculator: `ideal.py DAY PREV NEW HASHES` prints one TSV line for DAY, then
# makes PREV an exact copy of NEW (copying only what changed) and saves NEW's hashes in HASHES.
cat > "$work/ideal.py" <<'EOF'
import hashlib, json, os, shutil, subprocess, sys

day, prev, new, hashes_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
SQLITE = b"SQLite format 3\0"

def files(top):
    out = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, top)] = p
    return out

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)

def zstd_size(data=None, path=None):
    # Plain zstd frames without the optional checksum: the compressed payload alone.
    cmd = ["zstd", "-3", "-q", "-c", "--no-check"]
    if path is not None:
        r = subprocess.run(cmd + ["--", path], stdout=subprocess.PIPE, check=True)
    else:
        r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, check=True)
    return len(r.stdout)

def page_size(head):
    if len(head) < 18 or head[:16] != SQLITE:
        return None
    v = int.from_bytes(head[16:18], "big")
    v = 65536 if v == 1 else v
    return v if v >= 512 and v & (v - 1) == 0 else None

old_hashes = {}
if os.path.exists(hashes_path):
    old_hashes = json.load(open(hashes_path))
seen = set(old_hashes.values())  # contents the repository already has
new_files = files(new)
new_hashes = {}
r = dict(day=day, ideal_bytes=0, ideal_db_bytes=0, ideal_files_bytes=0, new_files=0, changed_files=0,
         raw_changed_bytes=0, duplicate_files=0, duplicate_bytes=0, db_pages_changed=0, db_pages_total=0,
         db_page_size=0, db_pages_each_zstd_bytes=0)
for rel in sorted(new_files):
    p = new_files[rel]
    h = new_hashes[rel] = sha256(p)
    old = old_hashes.get(rel)
    if old == h:
        continue
    size = os.path.getsize(p)
    r["changed_files" if old is not None else "new_files"] += 1
    r["raw_changed_bytes"] += size
    if h in seen:
        r["duplicate_files"] += 1
        r["duplicate_bytes"] += size
        continue
    seen.add(h)
    with open(p, "rb") as f:
        head = f.read(100)
    ps = page_size(head)
    oldp = os.path.join(prev, rel)
    if ps is not None and old is not None and os.path.isfile(oldp):
        with open(p, "rb") as f:
            cur = f.read()
        with open(oldp, "rb") as f:
            before = f.read()
        changed = [cur[i:i + ps] for i in range(0, len(cur), ps) if cur[i:i + ps] != before[i:i + ps]]
        r["db_page_size"] = ps
        r["db_pages_changed"] += len(changed)
        r["db_pages_total"] += (len(cur) + ps - 1) // ps
        r["ideal_db_bytes"] += min(sum(map(len, changed)), zstd_size(data=b"".join(changed)))
        # For reference: every changed page compressed on its own (what one blob per page needs at best).
        r["db_pages_each_zstd_bytes"] += sum(min(len(c), zstd_size(data=c)) for c in changed)
    else:
        cost = min(size, zstd_size(path=p))
        if ps is not None:
            r["ideal_db_bytes"] += cost
        else:
            r["ideal_files_bytes"] += cost
r["ideal_bytes"] = r["ideal_db_bytes"] + r["ideal_files_bytes"]

# Bring the copy of "yesterday" up to date: copy what is new or changed, drop what is gone.
for rel, p in new_files.items():
    if old_hashes.get(rel) != new_hashes[rel] or not os.path.exists(os.path.join(prev, rel)):
        dst = os.path.join(prev, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(p, dst)
for rel in files(prev):
    if rel not in new_files:
        os.remove(os.path.join(prev, rel))
json.dump(new_hashes, open(hashes_path, "w"))
print(json.dumps(r, sort_keys=True))
EOF

# repo_size DIR: sum of the sizes of the files under DIR (0 if it does not exist).
repo_size() { if [ -d "$1" ]; then find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'; else echo 0; fi; }

# measure TOOL STEP DAY REPO COMMAND...: runs COMMAND in $parent under /usr/bin/time -v, appends
# "tool step day seconds cpu_seconds rss_kib repo_bytes" to $results; output goes to a log file.
measure() {
    local tool="$1" step="$2" day="$3" repo="$4"; shift 4
    local tfile="$work/time.$tool.$step.$day" lfile="$work/log.$tool.$step.$day" t0 t1 rc=0
    # Write back what earlier steps left dirty (generated data, other tools' repositories and
    # restores), or the kernel does it during this step and bills it to this tool.
    sync
    t0="$(date +%s.%N)"
    (cd "$parent" && /usr/bin/time -v -o "$tfile" "$@") > "$lfile" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    if [ "$rc" != 0 ]; then
        log "history.sh: $tool $step (day $day) failed (exit $rc):"; tail -n 20 "$lfile" >&2; exit 1
    fi
    local rss cpu secs repo_bytes
    rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")"
    cpu="$(awk -F': ' '/User time \(seconds\)/ {u = $2} /System time \(seconds\)/ {s = $2} END {print u + s}' "$tfile")"
    repo_bytes="$(repo_size "$repo")"
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$day" "$secs" "$cpu" "$rss" "$repo_bytes" >> "$results"
    log "  $tool $step: ${secs} s"
}

# verify TOOL DIR: the restored copy must be byte-identical to the current data.
verify() {
    local tool="$1" dir="$2" got=""
    for c in "$dir/$name" "$dir$data" "$dir/${data#/}"; do [ -d "$c" ] && { got="$c"; break; }; done
    [ -n "$got" ] || { log "history.sh: $tool restore: cannot find $name under $dir"; exit 1; }
    diff -r "$data" "$got" > "$work/diff.$tool" || { log "history.sh: $tool restore differs:"; head "$work/diff.$tool" >&2; exit 1; }
    log "  $tool restore verified (diff -r)"
    printf 'restore_verified\t%s\tdiff -r identical\n' "$tool" >> "$notes"
    discard "$dir"
}

backup_day() {
    local d="$1"
    measure coffer backup "$d" "$RC" "${scheduled[@]}" backup --json --repo "$RC" "$name"
    python3 - "$work/log.coffer.backup.$d" "$d" >> "$coffer_tsv" <<'EOF'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{") and '"summary"' in l][-1]
print("%s\t%d\t%d\t%d" % (sys.argv[2], s["bytesAdded"], s["bytesStored"], s["blobsAdded"]))
EOF
    measure restic backup "$d" "$RR" restic --repo "$RR" backup --quiet "$name"
    measure borg backup "$d" "$RB" borg create --compression zstd,3 "$RB::day$d" "$name"
}

ideal_day() {
    python3 "$work/ideal.py" "$1" "$prev" "$data" "$work/hashes.json" >> "$ideal_tsv"
    log "  ideal: $(tail -n1 "$ideal_tsv")"
}

log "warming the page cache"
find "$data" -type f -print0 | xargs -0 cat > /dev/null
mkdir -p "$prev"

log "init"
measure coffer init -1 "$RC" "$coffer" init -q --repo "$RC"
# From here on coffer runs as a scheduled job does (README): this machine's device key, no password.
export COFFER_CONFIG_DIR="$work/coffer-config"
"$coffer" key add --device -q --repo "$RC"
scheduled=(env -u COFFER_PASSWORD "$coffer")
measure restic init -1 "$RR" restic --repo "$RR" init
measure borg init -1 "$RB" borg init -e repokey-blake2 "$RB"

for d in $(seq 0 "$days"); do
    if [ "$d" -gt 0 ]; then
        log "day $d: advancing the data"
        python3 "$root/Scripts/make-sample-chat.py" --out "$data" --advance-day "$d" >&2
    else
        log "day 0"
    fi
    ideal_day "$d"
    backup_day "$d"
done
data_bytes="$(find "$data" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')"
data_files="$(find "$data" -type f | wc -l)"
discard "$prev"

# ---- retention: keep the last K snapshots ----------------------------------------------------
log "retention: keep the last $keep_last"
if "$coffer" forget --help 2>/dev/null | grep -q -- '--prune'; then
    # One command and one unlock, as restic's forget --prune.
    measure coffer forget-prune R "$RC" "${scheduled[@]}" forget --repo "$RC" --keep-last "$keep_last" --prune
    coffer_pruned=1
    printf 'coffer_forget\tcoffer forget --keep-last %s --prune\n' "$keep_last" >> "$notes"
elif "$coffer" forget --help > /dev/null 2>&1; then
    measure coffer forget R "$RC" "${scheduled[@]}" forget --repo "$RC" --keep-last "$keep_last"
    printf 'coffer_forget\tcoffer forget --keep-last %s\n' "$keep_last" >> "$notes"
else
    # What forget does: delete the snapshot objects of all but the newest K snapshots.
    "${scheduled[@]}" snapshots --json --repo "$RC" > "$work/coffer-snapshots.json"
    python3 - "$work/coffer-snapshots.json" "$keep_last" > "$work/coffer-forget.txt" <<'EOF'
import json, sys
snaps = sorted(json.load(open(sys.argv[1])), key=lambda s: s["time"])
for s in snaps[:max(0, len(snaps) - int(sys.argv[2]))]:
    print(s["id"])
EOF
    measure coffer forget R "$RC" sh -c 'while read -r id; do rm -f "$1/snapshots/$id"; done < "$2"' sh "$RC" "$work/coffer-forget.txt"
    printf 'coffer_forget\tno coffer forget: deleted %s snapshot files by hand\n' "$(wc -l < "$work/coffer-forget.txt")" >> "$notes"
fi
[ -n "${coffer_pruned:-}" ] || measure coffer prune R "$RC" "${scheduled[@]}" prune --repo "$RC"
measure restic forget-prune R "$RR" restic --repo "$RR" forget --keep-last "$keep_last" --prune
measure borg prune R "$RB" borg prune --keep-last "$keep_last" "$RB"
measure borg compact R "$RB" borg compact "$RB"

# ---- check and restore -----------------------------------------------------------------------
if "$coffer" check --help 2>/dev/null | grep -q -- '--read-data'; then
    log "coffer check --read-data"
    measure coffer check C "$RC" "${scheduled[@]}" check --read-data --repo "$RC"
    printf 'coffer_check\tcoffer check --read-data: ok: %s\n' "$(tail -n1 "$work/log.coffer.check.C" | tr '\t' ' ')" >> "$notes"
else
    log "coffer check --read-data is not available: skipped"
    printf 'coffer_check\tskipped: coffer check --read-data is not available\n' >> "$notes"
fi
log "restore"
measure coffer restore C "$RC" "${scheduled[@]}" restore -q --repo "$RC" latest --target "$work/restore-coffer"
verify coffer "$work/restore-coffer"
measure restic restore C "$RR" restic --repo "$RR" restore latest --target "$work/restore-restic"
verify restic "$work/restore-restic"
mkdir -p "$work/restore-borg"
measure borg restore C "$RB" sh -c 'cd "$1" && borg extract "$2::day$3"' sh "$work/restore-borg" "$RB" "$days"
verify borg "$work/restore-borg"

# ---- report ---------------------------------------------------------------------------------
versions="$("$coffer" version | head -n1) | $(restic version | cut -d' ' -f1-2) | $(borg --version)"
python3 - "$results" "$coffer_tsv" "$ideal_tsv" "$notes" "$data_bytes" "$data_files" "$versions" "$scale" "$days" "$keep_last" "$out" <<'EOF'
import json, sys
(results, coffer_tsv, ideal_tsv, notes_path, data_bytes, files, versions, scale, days, keep_last, out) = sys.argv[1:12]
data_bytes, files, days, keep_last = int(data_bytes), int(files), int(days), int(keep_last)
MIB = 1024 * 1024
tools = ["coffer", "restic", "borg"]
steps = {}
for line in open(results):
    tool, step, day, secs, cpu, rss, repo = line.rstrip("\n").split("\t")
    steps[(tool, step, day)] = {"seconds": float(secs), "cpu_seconds": round(float(cpu), 2),
                                "peak_rss_bytes": int(rss) * 1024, "repo_bytes": int(repo)}
cof = {}
for line in open(coffer_tsv):
    d, added, stored, blobs = line.split("\t")
    cof[int(d)] = {"bytes_added": int(added), "bytes_stored": int(stored), "blobs_added": int(blobs)}
ideal = {}
for line in open(ideal_tsv):
    r = json.loads(line)
    ideal[r.pop("day")] = r
notes = {}
for line in open(notes_path):
    k, *v = line.rstrip("\n").split("\t")
    notes.setdefault(k, []).append(" ".join(v))

per_day = []
for d in range(days + 1):
    row = {"day": d, "ideal": ideal[d]}
    for t in tools:
        b = steps[(t, "backup", str(d))]
        before = steps[(t, "backup", str(d - 1))]["repo_bytes"] if d > 0 else steps[(t, "init", "-1")]["repo_bytes"]
        row[t] = dict(b, growth_bytes=b["repo_bytes"] - before)
    row["coffer"].update(cof[d])
    per_day.append(row)

def mb(b): return b / MIB
def ratio(a, b): return round(a / b, 2) if b else None
def fmt_ratio(v): return "-" if v is None else "%.2f" % v

print("data after day %d: %d files, %.1f MiB (%d bytes); scale %s; %s" % (days, files, mb(data_bytes), data_bytes, scale, versions))
print("per day: repository growth (+repo, sum of file sizes) and backup wall time; ideal = zstd -3 of only the new content "
      "(db = changed SQLite pages); coffer stored/raw = its --json bytesStored/bytesAdded; MiB")
print()
head = "%4s %8s %8s | %8s %8s %8s %6s | %8s %6s | %8s %6s | %8s %8s %8s" % (
    "day", "ideal", "ideal db", "coffer", "stored", "raw", "/ideal", "restic", "/ideal", "borg", "/ideal", "coffer s", "restic s", "borg s")
print(head)
print("-" * len(head))
def line(label, i, idb, c, cs, cr, r, b, tc, tr, tb):
    print("%4s %8.2f %8.2f | %8.2f %8.2f %8.2f %6s | %8.2f %6s | %8.2f %6s | %8.2f %8.2f %8.2f" % (
        label, mb(i), mb(idb), mb(c), mb(cs), mb(cr), fmt_ratio(ratio(c, i)), mb(r), fmt_ratio(ratio(r, i)),
        mb(b), fmt_ratio(ratio(b, i)), tc, tr, tb))
def sums(rows):
    g = lambda f: sum(f(r) for r in rows)
    return (g(lambda r: r["ideal"]["ideal_bytes"]), g(lambda r: r["ideal"]["ideal_db_bytes"]),
            g(lambda r: r["coffer"]["growth_bytes"]), g(lambda r: r["coffer"]["bytes_stored"]),
            g(lambda r: r["coffer"]["bytes_added"]), g(lambda r: r["restic"]["growth_bytes"]),
            g(lambda r: r["borg"]["growth_bytes"]), g(lambda r: r["coffer"]["seconds"]),
            g(lambda r: r["restic"]["seconds"]), g(lambda r: r["borg"]["seconds"]))
for r in per_day:
    line(str(r["day"]), *sums([r]))
print("-" * len(head))
daily = per_day[1:]
totals = {"all_days": sums(per_day)}
line("all", *totals["all_days"])
if daily:
    totals["days_1_to_D"] = sums(daily)
    line("1-%d" % days, *totals["days_1_to_D"])
    avg = tuple(v / len(daily) for v in totals["days_1_to_D"])
    line("avg", *avg)
print("(/ideal: growth divided by the ideal; all = day 0 to %d; 1-%d and avg leave out the first backup)" % (days, days))
db_changed = [r["ideal"]["db_pages_changed"] for r in daily]
if daily and db_changed:
    print("database: %d of %d pages of %d bytes changed per day on average; changed pages compressed as one stream "
          "%.2f MiB/day, each page on its own %.2f MiB/day" % (
              sum(db_changed) / len(daily), daily[-1]["ideal"]["db_pages_total"], daily[-1]["ideal"]["db_page_size"],
              mb(sum(r["ideal"]["ideal_db_bytes"] for r in daily) / len(daily)),
              mb(sum(r["ideal"]["db_pages_each_zstd_bytes"] for r in daily) / len(daily))))
print()

retention_steps = {"coffer": ["forget-prune"] if ("coffer", "forget-prune", "R") in steps else ["forget", "prune"],
                   "restic": ["forget-prune"], "borg": ["prune", "compact"]}
retention = {}
print("retention: keep the last %d of %d snapshots (wall s, CPU s, peak RSS, repository size before and after)" % (keep_last, days + 1))
head = "%-7s %-13s %9s %8s %9s %11s %10s" % ("tool", "step", "seconds", "CPU s", "RSS MiB", "before MiB", "after MiB")
print(head)
print("-" * len(head))
for t in tools:
    before = steps[(t, "backup", str(days))]["repo_bytes"]
    rows, prev = [], before
    for s in retention_steps[t]:
        x = steps[(t, s, "R")]
        rows.append(dict(x, step=s, repo_before_bytes=prev))
        print("%-7s %-13s %9.2f %8.2f %9.1f %11.2f %10.2f" % (t, s, x["seconds"], x["cpu_seconds"], mb(x["peak_rss_bytes"]), mb(prev), mb(x["repo_bytes"])))
        prev = x["repo_bytes"]
    tot = {"seconds": round(sum(r["seconds"] for r in rows), 3), "cpu_seconds": round(sum(r["cpu_seconds"] for r in rows), 2),
           "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rows), "repo_before_bytes": before, "repo_after_bytes": prev,
           "steps": rows}
    retention[t] = tot
    if len(rows) > 1:
        print("%-7s %-13s %9.2f %8.2f %9.1f %11.2f %10.2f" % (t, "total", tot["seconds"], tot["cpu_seconds"], mb(tot["peak_rss_bytes"]), mb(before), mb(prev)))
print()

check = steps.get(("coffer", "check", "C"))
print("check and restore of the latest snapshot (wall s, CPU s, peak RSS MiB)")
head = "%-7s %-22s %9s %8s %9s  %s" % ("tool", "step", "seconds", "CPU s", "RSS MiB", "result")
print(head)
print("-" * len(head))
if check:
    print("%-7s %-22s %9.2f %8.2f %9.1f  %s" % ("coffer", "check --read-data", check["seconds"], check["cpu_seconds"], mb(check["peak_rss_bytes"]), "ok"))
else:
    print("%-7s %-22s %9s %8s %9s  %s" % ("coffer", "check --read-data", "-", "-", "-", "; ".join(notes.get("coffer_check", ["skipped"]))))
restore = {}
for t in tools:
    x = steps[(t, "restore", "C")]
    restore[t] = dict(x, verified=t in " ".join(notes.get("restore_verified", [])))
    print("%-7s %-22s %9.2f %8.2f %9.1f  %s" % (t, "restore latest", x["seconds"], x["cpu_seconds"], mb(x["peak_rss_bytes"]),
                                             "identical (diff -r)" if restore[t]["verified"] else "NOT VERIFIED"))
for n in notes.get("coffer_forget", []):
    print("note: %s" % n)
print()

def metric(key, f):
    vals = {t: f(t) for t in tools}
    return {"metric": key, **vals, "coffer_vs_restic": ratio(vals["coffer"], vals["restic"]), "coffer_vs_borg": ratio(vals["coffer"], vals["borg"])}
n_daily = max(1, len(daily))
summary = [
    metric("backup_seconds_all_days", lambda t: round(sum(r[t]["seconds"] for r in per_day), 3)),
    metric("backup_seconds_days_1_to_D", lambda t: round(sum(r[t]["seconds"] for r in daily), 3)),
    metric("avg_daily_bytes_added", lambda t: round(sum(r[t]["growth_bytes"] for r in daily) / n_daily)),
    metric("prune_seconds", lambda t: retention[t]["seconds"]),
    metric("prune_peak_rss_bytes", lambda t: retention[t]["peak_rss_bytes"]),
    metric("final_repo_bytes", lambda t: retention[t]["repo_after_bytes"]),
]
ideal_avg = sum(r["ideal"]["ideal_bytes"] for r in daily) / n_daily
labels = {"backup_seconds_all_days": ("backup time, days 0-%d (s)" % days, 1),
          "backup_seconds_days_1_to_D": ("backup time, days 1-%d (s)" % days, 1),
          "avg_daily_bytes_added": ("avg daily bytes added (MiB)", MIB),
          "prune_seconds": ("prune time (s)", 1),
          "prune_peak_rss_bytes": ("prune peak RSS (MiB)", MIB),
          "final_repo_bytes": ("final repository (MiB)", MIB)}
head = "%-30s %10s %10s %10s %10s %14s %12s" % ("metric", "ideal", "coffer", "restic", "borg", "coffer/restic", "coffer/borg")
print(head)
print("-" * len(head))
for m in summary:
    label, div = labels[m["metric"]]
    iv = "%.2f" % (ideal_avg / MIB) if m["metric"] == "avg_daily_bytes_added" else "-"
    print("%-30s %10s %10.2f %10.2f %10.2f %14s %12s" % (label, iv, m["coffer"] / div, m["restic"] / div, m["borg"] / div,
                                                      fmt_ratio(m["coffer_vs_restic"]), fmt_ratio(m["coffer_vs_borg"])))
print("(below 1: coffer is faster / adds less / uses less memory / stores less; prune = coffer forget --prune, "
      "restic forget --prune, borg prune + compact)")

result = {"scale": scale, "days": days, "keep_last": keep_last, "data_bytes": data_bytes, "data_files": files,
          "versions": versions, "per_day": per_day, "totals": {k: dict(zip(["ideal", "ideal_db", "coffer_growth", "coffer_stored",
          "coffer_added_raw", "restic_growth", "borg_growth", "coffer_seconds", "restic_seconds", "borg_seconds"], v))
          for k, v in totals.items()}, "ideal_avg_daily_bytes": round(ideal_avg), "retention": retention,
          "check": check, "restore": restore, "notes": notes, "summary": summary}
text = json.dumps(result, sort_keys=True)
if out:
    with open(out, "w") as f:
        f.write(text + "\n")
print(text)
EOF
if [ -n "$out" ]; then
    python3 "$root/Benchmarks/chart.py" "$out" "${out%.json}.svg"
    log "chart: ${out%.json}.svg"
fi
