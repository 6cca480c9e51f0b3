#!/usr/bin/env bash
# scripts/quickstart.sh — Coffer's main job on embedded defaults, in one command: start the
# server (SQLite catalog, default local-disk target, both created on first start) protecting a
# sample application (a directory and a SQLite database), take a backup through the HTTP API,
# wait until it is READY, show it, and keep serving.
#
#   scripts/quickstart.sh              serve until Ctrl-C
#   scripts/quickstart.sh --once       stop after the backup (scripts, CI)
#
# Everything lives in $COFFER_QUICKSTART_DIR (default ~/.local/share/coffer-quickstart): the
# sample application (copied from examples/sample-app), coffer.toml, and the server's data
# directory. The first start prints the admin token and the repository password once; the
# password is also kept in $COFFER_QUICKSTART_DIR/REPOSITORY-PASSWORD for this demo only —
# in real use, store it offline.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh
once=false
[ "${1:-}" = --once ] && once=true
dir=${COFFER_QUICKSTART_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/coffer-quickstart}
port=${COFFER_QUICKSTART_PORT:-8420}
log() { echo "[quickstart] $*" >&2; }

command -v curl >/dev/null || { log "installing curl"; apt-get install -y -qq curl >/dev/null; }
cargo build --quiet --bin coffer
coffer="$CARGO_TARGET_DIR/debug/coffer"

mkdir -p "$dir"
if [ ! -d "$dir/app" ]; then
  cp -r examples/sample-app "$dir/app"
fi
cat > "$dir/coffer.toml" <<TOML
# Written by scripts/quickstart.sh; see examples/coffer.toml for every setting.
[server]
listen = "127.0.0.1:$port"
data_dir = "data"

[[components]]
name = "uploads"
kind = "files"
path = "$dir/app/uploads"

[[components]]
name = "appdb"
kind = "sqlite"
path = "$dir/app/app.sqlite"
TOML

"$coffer" server --config "$dir/coffer.toml" 2> >(tee -a "$dir/server.log" >&2) &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
url=http://127.0.0.1:$port
for _ in $(seq 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { log "the server did not start (see above)"; exit 1; }
  sleep 0.2
done
pw=$(grep -A2 'Repository password' "$dir/server.log" | sed -n 3p | tr -d ' ' || true)
[ -z "$pw" ] || (umask 077 && echo "$pw" > "$dir/REPOSITORY-PASSWORD")

# A token for this script (the admin token was printed once, at first start).
token=$("$coffer" token create --config "$dir/coffer.toml" --json --name quickstart \
  --scope backups:read --scope backups:write --expires-in 3600 | sed -n 's/.*"secret": "\(.*\)".*/\1/p')
auth=(-H "Authorization: Bearer $token")

log "backing up the sample application ($dir/app)"
id=$(curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d '{"label":"quickstart"}' \
  "$url/api/v1/backups" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
status=BACKING_UP
while [ "$status" = BACKING_UP ]; do
  sleep 0.5
  body=$(curl -fsS "${auth[@]}" "$url/api/v1/backups/$id")
  status=$(echo "$body" | sed -n 's/^{"id":"[^"]*","label":"[^"]*","target":"[^"]*","status":"\([A-Z_]*\)".*/\1/p')
done
echo "$body"
log "backup $id is $status"
[ "$status" = READY ] || exit 1
if [ -s "$dir/REPOSITORY-PASSWORD" ]; then
  log "plain restic sees it: restic -r $dir/data/repository --password-file $dir/REPOSITORY-PASSWORD snapshots"
fi
if $once; then
  exit 0
fi
log "server running at $url (API: docs/api.md; token for the next hour: $token) — Ctrl-C to stop"
wait $server
