#!/usr/bin/env bash
# bench/postgres.sh — a PostgreSQL component through Coffer against the bare tools.
#
#   bench/postgres.sh [--scale N] [--rounds R]
#
# On a `pgbench -i -s N` database (default 50, ≈ 750 MiB of tables) on the test server from
# scripts/services.sh (started if needed):
#   backup   coffer repo backup --config (pg_dump -Fc streamed into a fresh repository)
#            vs  pg_dump -Fc > /dev/null
#   restore  coffer repo restore --config into a dropped database (pg_restore
#            --single-transaction --exit-on-error fed from the repository)
#            vs  the same pg_restore from a local dump file
# Each side R times (default 3), interleaved; the fastest counts. Wall time and peak RSS by GNU
# time. Writes bench/results/<UTC date>-postgres-s<N>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=50
ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 [--scale N] [--rounds R]" >&2; exit 2 ;;
  esac
done
DIR=${COFFER_BENCH_DIR:-/var/tmp/coffer-bench}/postgres
log() { echo "[bench] $*" >&2; }

scripts/services.sh up pg
set -a
eval "$(scripts/services.sh env)"
set +a
export PGHOST=$COFFER_TEST_PG_HOST PGPORT=$COFFER_TEST_PG_PORT PGUSER=$COFFER_TEST_PG_USER \
  PGPASSWORD=$COFFER_TEST_PG_PASSWORD
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh
log "building coffer (release)"
cargo build --release --locked --bin coffer
COFFER=$CARGO_TARGET_DIR/release/coffer
export COFFER_PASSWORD=bench-password

DB=coffer_bench_s$SCALE
rm -rf "$DIR"; mkdir -p "$DIR"
if [ "$(psql -X -A -t -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  log "pgbench -i -s $SCALE (once)"
  psql -X -q -d postgres -c "CREATE DATABASE $DB"
  pgbench -i -q -s "$SCALE" "$DB"
fi
DB_SIZE=$(psql -X -A -t -d "$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")
cat > "$DIR/coffer.toml" <<TOML
[[components]]
name = "db"
kind = "postgres"
host = "$PGHOST"
port = $PGPORT
user = "$PGUSER"
password = { env = "PGPASSWORD" }
database = "$DB"
TOML

# timed LABEL CMD... : appends "LABEL wall rss" to $DIR/times
timed() {
  local label=$1; shift
  /usr/bin/time -f "$label %e %M" -a -o "$DIR/times" "$@"
}

log "warming up (one dump to /dev/null)"
pg_dump -Fc -d "$DB" > /dev/null
pg_dump -Fc -d "$DB" > "$DIR/dump.pgdump"
for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS: backups"
  timed bare-backup sh -c "pg_dump -Fc -d '$DB' > /dev/null"
  rm -rf "$DIR/repo"
  "$COFFER" repo -r "$DIR/repo" init >/dev/null
  timed coffer-backup "$COFFER" repo -r "$DIR/repo" backup --config "$DIR/coffer.toml" --label bench >/dev/null
done
SNAP=$("$COFFER" repo -r "$DIR/repo" --json snapshots --component db |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS: restores"
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_r" -c "CREATE DATABASE ${DB}_r"
  timed bare-restore pg_restore --exit-on-error --single-transaction -d "${DB}_r" "$DIR/dump.pgdump"
  psql -X -q -d postgres -c "DROP DATABASE ${DB}_r"
  sed "s/database = \"$DB\"/database = \"${DB}_r\"/" "$DIR/coffer.toml" > "$DIR/restore.toml"
  timed coffer-restore "$COFFER" repo -r "$DIR/repo" restore "$SNAP" --config "$DIR/restore.toml" >/dev/null
  psql -X -q -d postgres -c "DROP DATABASE ${DB}_r"
done
REPO_SIZE=$(du -sm "$DIR/repo" | cut -f1)
DUMP_SIZE=$(( $(stat -c %s "$DIR/dump.pgdump") / 1048576 ))

best() { awk -v l="$1" '$1 == l { if (min == "" || $2 < min) { min = $2; rss = $3 } } END { printf "%s %d", min, rss / 1024 }' "$DIR/times"; }
read -r bb_w bb_r <<<"$(best bare-backup)"
read -r cb_w cb_r <<<"$(best coffer-backup)"
read -r br_w br_r <<<"$(best bare-restore)"
read -r cr_w cr_r <<<"$(best coffer-restore)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
OUT=bench/results/$(date -u +%Y-%m-%d)-postgres-s$SCALE.md
mkdir -p bench/results
{
  echo "# PostgreSQL component, pgbench -s $SCALE ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Database $DB_SIZE; pg_dump -Fc output $DUMP_SIZE MiB; Coffer repository after the backup $REPO_SIZE MiB."
  echo "$(pg_dump --version); $("$COFFER" --version). Fastest of $ROUNDS interleaved rounds."
  echo
  echo "| step | bare tool, s | coffer, s | coffer ÷ bare | bare RSS MiB | coffer RSS MiB |"
  echo "|------|-----:|-----:|-----:|-----:|-----:|"
  echo "| backup (pg_dump -Fc) | $bb_w | $cb_w | $(ratio "$cb_w" "$bb_w") | $bb_r | $cb_r |"
  echo "| restore (pg_restore --single-transaction) | $br_w | $cr_w | $(ratio "$cr_w" "$br_w") | $br_r | $cr_r |"
} | tee "$OUT"
log "written to $OUT"
