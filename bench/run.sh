#!/usr/bin/env bash
# bench/run.sh — Coffer side by side with restic, rustic and borg on the same data.
#
#   bench/run.sh [--scale F] [--tools "coffer restic rustic borg"] [--dir DIR]
#
# Phases, each timed per tool with GNU time (wall, user+sys CPU, peak RSS):
#   init       create an empty encrypted repository
#   initial    first backup of the generated data set (bench/gen_dataset.py, ~2 GiB at scale 1)
#   unchanged  the same data again (should read only metadata)
#   mutated    after gen_dataset.py --mutate (~5 % of the data changed)
#   restore    the latest snapshot into an empty directory, until durable (`sync -f`); then verified
#              with diff -r; 3 rounds interleaved across tools, the fastest counts
# plus the repository size after the mutated backup.
#
# Results: a Markdown table on stdout and in bench/results/<UTC date>-scale<F>.md, with each
# tool's numbers as a ratio to restic's. Run as root on Debian 12; installs restic and borg with
# apt and builds rustic (cargo install rustic-rs) and Coffer (release) if missing.
# Page cache is warm for every tool alike (the data is read once before the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALE=1
TOOLS="coffer restic rustic borg"
RESTORE_ROUNDS=${COFFER_BENCH_RESTORE_ROUNDS:-3}
DIR=${COFFER_BENCH_DIR:-/var/tmp/coffer-bench}
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    *) echo "usage: $0 [--scale F] [--tools LIST] [--dir DIR]" >&2; exit 2 ;;
  esac
done
TOOLS_DIR=${COFFER_TOOLS_DIR:-$HOME/.cache/coffer/tools}
export PATH=$TOOLS_DIR/bin:$PATH
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

log() { echo "[bench] $*" >&2; }

# ------------------------------------------------------------------ tools
need_apt=()
command -v restic >/dev/null || need_apt+=(restic)
command -v borg >/dev/null || need_apt+=(borgbackup)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
case " $TOOLS " in *" rustic "*)
  if ! command -v rustic >/dev/null; then
    log "building rustic (cargo install rustic-rs, once) into $TOOLS_DIR"
    CARGO_TARGET_DIR=$TOOLS_DIR/rustic-target cargo install rustic-rs --locked --root "$TOOLS_DIR"
    rm -rf "$TOOLS_DIR/rustic-target"
  fi ;;
esac
log "building coffer (release)"
cargo build --release --locked --bin coffer
COFFER=$CARGO_TARGET_DIR/release/coffer

version_of() {
  case $1 in
    coffer) "$COFFER" --version ;;
    restic) restic version | cut -d' ' -f1-2 ;;
    rustic) rustic --version ;;
    borg) borg --version ;;
  esac
}

# ------------------------------------------------------------------ data
DATA=$DIR/data
STAMP=$DIR/data.scale
mkdir -p "$DIR"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$SCALE" ]; then
  rm -rf "$DATA" "$STAMP"
  log "generating the data set (scale $SCALE)"
  python3 bench/gen_dataset.py "$DATA" --scale "$SCALE" >&2
  echo "$SCALE" > "$STAMP"
elif [ -e "$DIR/data.mutated" ]; then
  # A previous run mutated it: start again from the pristine set.
  rm -rf "$DATA" "$DIR/data.mutated"
  python3 bench/gen_dataset.py "$DATA" --scale "$SCALE" >&2
fi
DATA_BYTES=$(du -sb "$DATA" | cut -f1)
DATA_FILES=$(find "$DATA" -type f | wc -l)
find "$DATA" -type f -exec cat {} + >/dev/null   # warm the page cache for everyone alike

# ------------------------------------------------------------------ commands per tool
export COFFER_PASSWORD=bench-password RESTIC_PASSWORD=bench-password \
  RUSTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
repo_of() { echo "$DIR/repos/$1"; }

run_tool() { # run_tool TOOL PHASE
  local tool=$1 phase=$2 r
  r=$(repo_of "$tool")
  case $tool:$phase in
    coffer:init) "$COFFER" repo -r "$r" init ;;
    coffer:initial|coffer:unchanged|coffer:mutated) "$COFFER" repo -r "$r" backup --label bench --dir "data=$DATA" ;;
    # Every restore ends with `sync -f` (syncfs): the time until the data is durably on disk.
    # Coffer already flushes before moving the restore into place; the others do not.
    coffer:restore) "$COFFER" repo -r "$r" restore latest --target "$DIR/restore/coffer" && sync -f "$DIR/restore" ;;
    restic:init) restic -r "$r" init ;;
    restic:initial|restic:unchanged|restic:mutated) restic -r "$r" backup --quiet "$DATA" ;;
    restic:restore) restic -r "$r" restore latest --target "$DIR/restore/restic" && sync -f "$DIR/restore" ;;
    rustic:init) rustic -r "$r" init ;;
    rustic:initial|rustic:unchanged|rustic:mutated) rustic -r "$r" backup --no-progress "$DATA" ;;
    rustic:restore) rustic -r "$r" restore --no-progress latest "$DIR/restore/rustic" && sync -f "$DIR/restore" ;;
    borg:init) borg init -e repokey-blake2 "$r" ;;
    borg:initial|borg:unchanged|borg:mutated) borg create --compression zstd,3 "$r::$phase" "$DATA" ;;
    borg:restore) mkdir -p "$DIR/restore/borg" && (cd "$DIR/restore/borg" && borg extract "$r::mutated") && sync -f "$DIR/restore" ;;
  esac
}

# Where each tool puts the restored data set.
restored_root() {
  case $1 in
    coffer) echo "$DIR/restore/coffer" ;;
    *) echo "$DIR/restore/$1$DATA" ;;
  esac
}

export -f run_tool repo_of
export DIR DATA COFFER
declare -A WALL CPU RSS
measure() { # measure TOOL PHASE
  local tool=$1 phase=$2 out
  out=$DIR/time.$tool.$phase
  log "$tool: $phase"
  sync   # the previous phase's writeback must not be billed to this one
  if ! /usr/bin/time -f '%e %U %S %M' -o "$out" bash -c "run_tool $tool $phase" \
      >"$DIR/log.$tool.$phase" 2>&1; then
    log "$tool $phase FAILED:"; tail -20 "$DIR/log.$tool.$phase" >&2; exit 1
  fi
  read -r wall user sys rss < <(tail -1 "$out")
  WALL[$tool:$phase]=$wall
  CPU[$tool:$phase]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  RSS[$tool:$phase]=$((rss / 1024))
}

rm -rf "$DIR/repos" "$DIR/restore"; mkdir -p "$DIR/repos" "$DIR/restore"
for phase in init initial unchanged; do
  for t in $TOOLS; do measure "$t" "$phase"; done
done
log "mutating the data set"
python3 bench/gen_dataset.py --mutate "$DATA" >&2
touch "$DIR/data.mutated"
for t in $TOOLS; do measure "$t" mutated; done
declare -A SIZE
for t in $TOOLS; do SIZE[$t]=$(du -sb "$(repo_of "$t")" | cut -f1); done
# Restores are repeated, interleaved across tools, and the fastest run of each counts: on a
# shared 2-core machine one run can be twice as slow as the next (kernel page allocation and
# writeback of the previous tool's data). Each restore is verified, then deleted.
declare -A BEST
for round in $(seq 1 "$RESTORE_ROUNDS"); do
  for t in $TOOLS; do
    rm -rf "$DIR/restore/$t"; sync
    measure "$t" restore
    if ! diff -r --no-dereference "$DATA" "$(restored_root "$t")" >/dev/null; then
      log "$t: restored data differs from the source"; exit 1
    fi
    log "$t restore round $round: ${WALL[$t:restore]} s"
    if [ -z "${BEST[$t]:-}" ] || awk -v a="${WALL[$t:restore]}" -v b="${BEST[$t]%% *}" 'BEGIN { exit !(a < b) }'; then
      BEST[$t]="${WALL[$t:restore]} ${CPU[$t:restore]} ${RSS[$t:restore]}"
    fi
  done
done
for t in $TOOLS; do
  read -r WALL[$t:restore] CPU[$t:restore] RSS[$t:restore] <<<"${BEST[$t]}"
  rm -rf "$DIR/restore/$t"
done

# ------------------------------------------------------------------ report
ratio() { # ratio VALUE BASE
  awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
}
mib() { echo "$(( $1 / 1048576 ))"; }
mkdir -p bench/results
RESULT=bench/results/$(date -u +%Y-%m-%d)-scale$SCALE.md
{
  echo "# Benchmark $(date -u +%Y-%m-%dT%H:%MZ), scale $SCALE"
  echo
  echo "Data: $(mib "$DATA_BYTES") MiB in $DATA_FILES files (bench/gen_dataset.py, seed 1), on $(nproc) cores,"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB RAM, $(df -T "$DIR" | awk 'NR==2{print $2}') at $DIR, warm page cache."
  echo
  echo "Versions: $(for t in $TOOLS; do printf '%s; ' "$(version_of "$t" | head -1)"; done)"
  echo
  echo "Restore: fastest of $RESTORE_ROUNDS interleaved rounds, each until durable (sync -f)."
  echo
  echo "| tool | phase | wall s | CPU s | peak RSS MiB | wall ÷ restic | RSS ÷ restic |"
  echo "|------|-------|-------:|------:|-------------:|--------------:|-------------:|"
  for phase in init initial unchanged mutated restore; do
    for t in $TOOLS; do
      k=$t:$phase
      echo "| $t | $phase | ${WALL[$k]} | ${CPU[$k]} | ${RSS[$k]} | $(ratio "${WALL[$k]}" "${WALL[restic:$phase]:-}") | $(ratio "${RSS[$k]}" "${RSS[restic:$phase]:-}") |"
    done
  done
  echo
  echo "| tool | repository after 3 backups, MiB | ÷ restic |"
  echo "|------|------:|------:|"
  for t in $TOOLS; do
    echo "| $t | $(mib "${SIZE[$t]}") | $(ratio "${SIZE[$t]}" "${SIZE[restic]:-}") |"
  done
} | tee "$RESULT"
log "written to $RESULT"
