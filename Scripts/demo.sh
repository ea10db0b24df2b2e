#!/usr/bin/env bash
# Coffer's main job, end to end: back up a chat app's data folder into an encrypted local
# repository, change it a little, back it up again (only the new data is stored), list the
# snapshots and restore the latest one, checking that it matches the original byte for byte.
#
# Needs Swift (found on PATH or at /opt/swift/usr/bin), python3 and the C libraries:
#   apt-get install -y libzstd-dev libb2-dev libsodium-dev libsqlite3-dev python3
# Run from anywhere: bash Scripts/demo.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

step() { printf '\n==> %s\n' "$*"; }

step "Building coffer (release)"
swift build -c release --product coffer
coffer="$(swift build -c release --show-bin-path)/coffer"
"$coffer" version

work="$(mktemp -d "${TMPDIR:-/tmp}/coffer-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
data="$work/chat"          # what we back up
repo="$work/repository"    # where the encrypted backups go
target="$work/restored"    # where we restore to

export COFFER_REPOSITORY="$repo"
export COFFER_PASSWORD="correct horse battery staple"   # demo only: use a prompt or a password file

step "Generating a sample chat app folder (messages.db + media) in $data"
python3 Scripts/make-sample-chat.py --out "$data" --scale 1

step "Creating an encrypted repository (Argon2id password hashing takes about a second)"
"$coffer" init

step "First backup: everything is new"
"$coffer" backup "$data"
echo "repository size: $(du -sh "$repo" | cut -f1)"

step "A day of chatting: new and edited messages, read receipts, a few photos, one forwarded"
python3 Scripts/make-sample-chat.py --out "$data" --advance-day 1

step "Second backup: only the changed chunks are stored"
"$coffer" backup "$data"
echo "repository size: $(du -sh "$repo" | cut -f1)"

step "Snapshots"
"$coffer" snapshots

step "What changed between them"
ids="$("$coffer" snapshots --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')"
# shellcheck disable=SC2086 # two ids, split on purpose
"$coffer" diff $ids

step "Files in the latest snapshot (first 15)"
"$coffer" ls latest > "$work/listing.txt"
head -n 15 "$work/listing.txt"
echo "... $(wc -l < "$work/listing.txt") entries in all"

step "Restoring the latest snapshot into $target"
"$coffer" restore latest --target "$target"

step "Checking the restore against the original"
diff -r "$data" "$target/$(basename "$data")"
echo "restored files match the original byte for byte"

echo
echo "demo OK"
