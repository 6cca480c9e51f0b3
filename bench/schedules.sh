#!/usr/bin/env bash
# bench/schedules.sh — what unattended protection costs (docs/benchmarks.md, "Schedules").
#
#   bench/schedules.sh [--schedules N] [--idle-secs S] [--backups M] [--pg-scale K] [--profile P]
#
#   idle      a server with N schedules (default 1000), none due during the run, idles S seconds
#             (default 120): the process's CPU seconds (utime + stime, /proc) scaled to an hour.
#             Goal: ≤ 1 s of CPU per hour.
#   preview   M backups (default 100 000) written straight into the catalog under a label with a
#             GFS policy; GET /api/v1/retention/preview?label=bench timed by curl, best of 3.
#             Goal: ≤ 1 s.
#   drill     a pgbench -s K database (default 50) on the test PostgreSQL, backed up and drilled
#             through the server (the component's `seconds`: restore + verify_query), against a bare pg_restore
#             --single-transaction of a pg_dump -Fc of it into a fresh database; best of 2 each.
#             Goal: drill ≤ 1.2 × bare.
#   prune     on the same server: a bench/gen_dataset.py tree (--scale 0.25, ~5 000 small files)
#             backed up three times with its mutation in between to a second local target, the
#             first two deleted, two prunes with grace_secs 0 (mark, then delete); each report's
#             planning_secs (shared lock, backups go on) and exclusive_secs (what a due backup on
#             the target waits for). Goal: exclusive a few seconds.
#
# P is the cargo profile of the coffer binary (default release; `dev` reuses the test build —
# Coffer's own code unoptimised, so an upper bound). Writes bench/results/<UTC date>-schedules.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEDULES=1000 IDLE=120 BACKUPS=100000 PG_SCALE=50 PROFILE=release TREE_SCALE=0.25
DATASET=bench/gen_dataset.py
while [ $# -gt 0 ]; do
  case $1 in
    --schedules) SCHEDULES=$2; shift 2 ;;
    --idle-secs) IDLE=$2; shift 2 ;;
    --backups) BACKUPS=$2; shift 2 ;;
    --pg-scale) PG_SCALE=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    *) echo "usage: $0 [--schedules N] [--idle-secs S] [--backups M] [--pg-scale K] [--profile release|dev]" >&2; exit 2 ;;
  esac
done
DIR=${COFFER_BENCH_DIR:-/var/tmp/coffer-bench}/schedules
log() { echo "[bench] $*" >&2; }
scripts/services.sh up pg tools
set -a
eval "$(scripts/services.sh env)"
set +a
export PATH="${COFFER_TOOLS_DIR:-$HOME/.cache/coffer/tools}/bin:$PATH"
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh
if [ "$PROFILE" = release ]; then
  log "building coffer (release)"
  cargo build --release --locked --bin coffer
  COFFER=$CARGO_TARGET_DIR/release/coffer
else
  cargo build --locked --bin coffer
  COFFER=$CARGO_TARGET_DIR/debug/coffer
fi
rm -rf "$DIR"; mkdir -p "$DIR"; chmod 700 "$DIR"

# start_server CONFIG: starts coffer server in the background; sets PID, URL and TOKEN.
start_server() {
  local err=$DIR/server.err
  : > "$err"
  "$COFFER" server --listen 127.0.0.1:0 --config "$1" 2>"$err" &
  PID=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$err" && break; sleep 0.1; done
  URL=$(sed -n 's/.*coffer server listening on \(http[^ ]*\).*/\1/p' "$err" | head -1)
  local t; t=$(grep -o 'cft_[A-Za-z0-9_]*' "$err" | head -1 || true)
  [ -n "$t" ] && TOKEN=$t
  [ -n "$URL" ] || { cat "$err"; exit 1; }
}
stop_server() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }

# ---------------------------------------------------------------- idle scheduler
log "idle: $SCHEDULES schedules, $IDLE s"
mkdir -p "$DIR/idle/files"; echo x > "$DIR/idle/files/x"
{
  printf '[server]\ndata_dir = "%s/idle/data"\n\n' "$DIR"
  printf '[[components]]\nname = "files"\nkind = "files"\npath = "%s/idle/files"\n\n' "$DIR"
  for i in $(seq 1 "$SCHEDULES"); do
    # Three forms; none due before next year.
    case $((i % 3)) in
      0) printf '[[schedules]]\nname = "sched-%d"\ncron = "%d 3 1 1 *"\ntime_zone = "Europe/Berlin"\n\n' "$i" $((i % 60)) ;;
      1) printf '[[schedules]]\nname = "sched-%d"\nevery_days = 366\nhours_utc = [%d]\nstart = "%s"\n\n' "$i" $((i % 24)) "$(date -u -d tomorrow +%F)" ;;
      2) printf '[[schedules]]\nname = "sched-%d"\nevery_secs = 31536000\nstart = "%s"\n\n' "$i" "$(date -u -d tomorrow +%F)" ;;
    esac
  done
} > "$DIR/idle.toml"
start_server "$DIR/idle.toml"
sleep 5
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks); sleep "$IDLE"; t1=$(ticks)
IDLE_CPU=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$IDLE" 'BEGIN { printf "%.2f", (b - a) / hz * 3600 / s }')
IDLE_RSS=$(awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$PID/status")
stop_server
log "idle: $IDLE_CPU CPU s per hour, $IDLE_RSS MiB"

# ---------------------------------------------------------------- retention preview
log "preview: $BACKUPS backups"
mkdir -p "$DIR/preview/files"; echo x > "$DIR/preview/files/x"
cat > "$DIR/preview.toml" <<TOML
[server]
data_dir = "$DIR/preview/data"

[[components]]
name = "files"
kind = "files"
path = "$DIR/preview/files"

[retention.labels]
bench = { keep_daily = 7, keep_weekly = 4, keep_monthly = 12, keep_yearly = 5 }
TOML
TOKEN=
start_server "$DIR/preview.toml"
stop_server
NOW=$(date +%s)
sqlite3 "$DIR/preview/data/catalog.sqlite" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $BACKUPS)
INSERT INTO backups (id, label, target, status, component_count, created_at, finished_at)
  SELECT printf('bench-%08d-0000-4000-8000-000000000000', i), 'bench', 'local', 'READY', 1,
         $NOW - ($BACKUPS - i) * 3600, $NOW - ($BACKUPS - i) * 3600 + 60 FROM n;
INSERT INTO backup_components (backup_id, component, kind, status)
  SELECT id, 'files', 'files', 'READY' FROM backups WHERE label = 'bench';
SQL
start_server "$DIR/preview.toml"
PREVIEW=
for _ in 1 2 3; do
  t=$(api -o "$DIR/preview.json" -w '%{time_total}' "$URL/api/v1/retention/preview?label=bench")
  PREVIEW=$(awk -v a="$t" -v b="${PREVIEW:-999}" 'BEGIN { print (a < b ? a : b) }')
done
KEPT=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["policies"][0]; print(len(p["keep"]), len(p["delete"]))' "$DIR/preview.json")
stop_server
log "preview: $PREVIEW s (kept, deleted: $KEPT)"

# ---------------------------------------------------------------- drill vs bare pg_restore
export PGHOST=$COFFER_TEST_PG_HOST PGPORT=$COFFER_TEST_PG_PORT PGUSER=$COFFER_TEST_PG_USER \
  PGPASSWORD=$COFFER_TEST_PG_PASSWORD
DB=coffer_bench_s$PG_SCALE
if [ "$(psql -X -A -t -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  log "pgbench -i -s $PG_SCALE (once)"
  psql -X -q -d postgres -c "CREATE DATABASE $DB"
  pgbench -i -q -s "$PG_SCALE" "$DB"
fi
cat > "$DIR/drill.toml" <<TOML
[server]
data_dir = "$DIR/drill/data"

[[components]]
name = "db"
kind = "postgres"
host = "$PGHOST"
port = $PGPORT
user = "$PGUSER"
password = { env = "PGPASSWORD" }
database = "$DB"
verify_query = "SELECT count(*) FROM pgbench_accounts"
TOML
TOKEN=
start_server "$DIR/drill.toml"
BACKUP=$(api -X POST -H 'Content-Type: application/json' -d '{"label":"bench"}' "$URL/api/v1/backups" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wait_status() { # wait_status PATH RUNNING
  while api "$URL$1" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["status"] == sys.argv[1] else 1)' "$2"; do sleep 0.5; done
}
wait_status "/api/v1/backups/$BACKUP" BACKING_UP
pg_dump -Fc -d "$DB" > "$DIR/dump.pgdump"
DRILL= BARE=
for _ in 1 2; do
  id=$(api -X POST "$URL/api/v1/backups/$BACKUP/drills" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  wait_status "/api/v1/drills/$id" DRILLING
  # The component's recovery time: restore + verify_query (the scratch
  # database's DROP after it is the drill's, not the recovery's).
  s=$(api "$URL/api/v1/drills/$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["status"] == "READY", d; print(d["components"][0]["seconds"])')
  DRILL=$(awk -v a="$s" -v b="${DRILL:-999999}" 'BEGIN { print (a < b ? a : b) }')
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_bare" -c "CREATE DATABASE ${DB}_bare"
  t0=$(date +%s.%N)
  pg_restore --exit-on-error --single-transaction --no-owner -d "${DB}_bare" "$DIR/dump.pgdump"
  psql -X -q -A -t -d "${DB}_bare" -c "SELECT count(*) FROM pgbench_accounts" >/dev/null
  t1=$(date +%s.%N)
  psql -X -q -d postgres -c "DROP DATABASE ${DB}_bare"
  b=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  BARE=$(awk -v a="$b" -v b="${BARE:-999999}" 'BEGIN { print (a < b ? a : b) }')
done
log "drill: $DRILL s, bare pg_restore: $BARE s"

# ---------------------------------------------------------------- prune: what it holds exclusively
# A tree of many files (bench/gen_dataset.py at --scale $TREE_SCALE), backed up three times
# with its ~5 % mutation in between; the first two backups deleted; then two prunes with no grace
# (the first marks what the deletions freed, the second deletes it): how long each planned beside
# backups (shared lock) and how long it held the exclusive lock (what a due backup waits for).
TREE=$DIR/tree
python3 "$DATASET" --scale "$TREE_SCALE" "$TREE" >/dev/null
api -X POST -H 'Content-Type: application/json' -d '{"name":"tree","spec":{"kind":"local","path":"'"$DIR/tree-repo"'"}}' \
  "$URL/api/v1/targets" >/dev/null
stop_server
cat >> "$DIR/drill.toml" <<TOML

[[components]]
name = "tree"
kind = "files"
path = "$TREE"
TOML
start_server "$DIR/drill.toml"
TREE_BACKUPS=
for i in 1 2 3; do
  [ "$i" = 1 ] || python3 "$DATASET" --mutate "$TREE" >/dev/null
  b=$(api -X POST -H 'Content-Type: application/json' \
    -d '{"label":"tree","components":["tree"],"target":"tree"}' "$URL/api/v1/backups" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  wait_status "/api/v1/backups/$b" BACKING_UP
  TREE_BACKUPS="$TREE_BACKUPS $b"
done
for b in $(echo "$TREE_BACKUPS" | awk '{print $1, $2}'); do
  api -X DELETE "$URL/api/v1/backups/$b" >/dev/null
done
prune_once() { # prints: planning_secs exclusive_secs MiB(marked or freed)
  local id
  id=$(api -X POST -d '{"grace_secs": 0}' "$URL/api/v1/targets/tree/prune" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  wait_status "/api/v1/prunes/$id" PRUNING
  api "$URL/api/v1/prunes/$id" | python3 -c 'import json,sys
p = json.load(sys.stdin); assert p["status"] == "READY", p; r = p["report"]
print("%.2f %.2f %d" % (r["planning_secs"], r["exclusive_secs"], (r["bytes_freed"] + r["bytes_pending"]) >> 20))'
}
read -r MARK_PLAN MARK_EXCL MARK_MIB <<<"$(prune_once)"
read -r DEL_PLAN DEL_EXCL DEL_MIB <<<"$(prune_once)"
TREE_FILES=$(find "$TREE" -type f | wc -l)
stop_server
log "prune (mark): planned $MARK_PLAN s, exclusive $MARK_EXCL s, $MARK_MIB MiB; (delete): $DEL_PLAN s, $DEL_EXCL s"

OUT=bench/results/$(date -u +%Y-%m-%d)-schedules.md
mkdir -p bench/results
{
  echo "# Unattended protection ($(date -u +%Y-%m-%dT%H:%MZ), profile $PROFILE)"
  echo
  echo "$("$COFFER" --version); $(nproc) cores."
  echo
  echo "| measure | value | goal |"
  echo "|---------|------:|------|"
  echo "| scheduler idle with $SCHEDULES schedules, CPU s per hour | $IDLE_CPU | ≤ 1 |"
  echo "| server RSS idle with $SCHEDULES schedules, MiB | $IDLE_RSS | |"
  echo "| retention preview of $BACKUPS backups, s | $PREVIEW | ≤ 1 |"
  echo "| kept / deleted in that preview | $KEPT | |"
  echo "| drill of pgbench -s $PG_SCALE (the component's recovery time: restore + verify_query), s | $DRILL | |"
  echo "| bare pg_restore --single-transaction + the same query, s | $BARE | |"
  echo "| drill ÷ bare | $(awk -v a="$DRILL" -v b="$BARE" 'BEGIN { printf "%.2f", a / b }') | ≤ 1.2 |"
  echo "| prune marking $MARK_MIB MiB (2 of 3 backups of $TREE_FILES files deleted): planning, shared lock, s | $MARK_PLAN | |"
  echo "| the same prune's exclusive lock (what a due backup waits for), s | $MARK_EXCL | a few seconds |"
  echo "| the next prune deleting them: planning, s | $DEL_PLAN | |"
  echo "| its exclusive lock, s | $DEL_EXCL | a few seconds |"
} | tee "$OUT"
log "written to $OUT"
