#!/usr/bin/env bash
# scripts/quickstart.sh — Coffer's main job on embedded defaults, in one command:
# back up directories into an encrypted, deduplicated, restic-compatible repository
# on local disk, then list and verify it.
#
#   scripts/quickstart.sh [DIR...]        (default DIR: /etc)
#
# Defaults (override by environment):
#   COFFER_REPOSITORY     ~/.local/share/coffer/repo       the repository (created if missing)
#   COFFER_PASSWORD_FILE  ~/.local/share/coffer/password   created with a random password, mode 0600
#   COFFER_LABEL          quickstart                       the backup label
#
# Run it again: the second backup of unchanged data reads only metadata and adds almost nothing.
# KEEP THE PASSWORD FILE: without it the repository cannot be opened by anyone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

data=${XDG_DATA_HOME:-$HOME/.local/share}/coffer
export COFFER_REPOSITORY=${COFFER_REPOSITORY:-$data/repo}
export COFFER_PASSWORD_FILE=${COFFER_PASSWORD_FILE:-$data/password}
label=${COFFER_LABEL:-quickstart}
[ $# -gt 0 ] || set -- /etc

cargo build --quiet --bin coffer
coffer="$CARGO_TARGET_DIR/debug/coffer"

if [ ! -s "$COFFER_PASSWORD_FILE" ]; then
  mkdir -p "$(dirname "$COFFER_PASSWORD_FILE")"
  (umask 077 && head -c 24 /dev/urandom | base64 > "$COFFER_PASSWORD_FILE")
  echo "new repository password in $COFFER_PASSWORD_FILE (keep it safe)"
fi
if [ ! -e "$COFFER_REPOSITORY/config" ]; then
  "$coffer" repo init
fi

args=()
for d in "$@"; do
  name=$(basename "$(realpath "$d")" | tr -c 'A-Za-z0-9_.\n-' '_')
  [ "$name" = / ] || [ -z "$name" ] && name=root
  args+=(--dir "$name=$d")
done
"$coffer" repo backup --label "$label" "${args[@]}"
"$coffer" repo snapshots --label "$label"
"$coffer" repo check
