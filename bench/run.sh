#!/usr/bin/env bash
# bench/run.sh — Coffer side by side with restic, rustic and borg on the same data.
#
#   bench/run.sh [--scale F] [--tools "coffer restic rustic borg"] [--dir DIR] [--backups-only]
#
# --backups-only: one round of the backup phases on the data set itself (no copy, no restores),
# for large scales where the disk holds the data once (the 20 GiB memory check:
# bench/run.sh --scale 10 --tools coffer --backups-only).
#
# Phases, each timed per tool with GNU time (wall, user+sys CPU, peak RSS), each the median of
# COFFER_BENCH_ROUNDS (3) rounds, interleaved across tools:
#   init       create an empty encrypted repository
#   initial    first backup of the generated data set (bench/gen_dataset.py, ~2 GiB at scale 1)
#   open       list the snapshots: opening the repository (key derivation) and little else
#   unchanged  the same data again (should read only metadata)
#   mutated    after gen_dataset.py --mutate (~5 % of the data changed)
#   initial-1core  the initial backup again into a new repository, on one core (taskset -c 0)
#   restore    the latest snapshot into an empty directory, until durable (`sync -f`); then verified
#              with diff -r
#   restore-small  the same for a tree of 100 000 small files (0.5–8 KiB)
# plus the repository size after the mutated backup. Every round starts from the pristine data.
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
ROUNDS=${COFFER_BENCH_ROUNDS:-3}
BACKUPS_ONLY=
DIR=${COFFER_BENCH_DIR:-/var/tmp/coffer-bench}
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --backups-only) BACKUPS_ONLY=1; ROUNDS=1; shift ;;
    *) echo "usage: $0 [--scale F] [--tools LIST] [--dir DIR] [--backups-only]" >&2; exit 2 ;;
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
# The pristine set is generated once per scale; each round backs up a fresh copy of it at $DATA
# (the same path every time, so every tool finds its parent) and mutates that copy.
PRISTINE=$DIR/pristine
DATA=$DIR/data
STAMP=$DIR/pristine.scale
mkdir -p "$DIR"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$SCALE" ]; then
  rm -rf "$PRISTINE" "$STAMP" "$DIR/data.scale"
  log "generating the data set (scale $SCALE)"
  python3 bench/gen_dataset.py "$PRISTINE" --scale "$SCALE" >&2
  echo "$SCALE" > "$STAMP"
fi
fresh_data() {
  rm -rf "$DATA"
  if [ -n "$BACKUPS_ONLY" ]; then
    # No room for a copy: the set itself is backed up and mutated (and made again next time).
    mv "$PRISTINE" "$DATA"; rm -f "$STAMP"
  else
    cp -a "$PRISTINE" "$DATA"
  fi
  sync
  find "$DATA" -type f -exec cat {} + >/dev/null   # warm the page cache for everyone alike
}
DATA_BYTES=$(du -sb "$PRISTINE" | cut -f1)
DATA_FILES=$(find "$PRISTINE" -type f | wc -l)
# Many small files, for the restore-small phase (deterministic).
SMALL=$DIR/small-files
if [ -z "$BACKUPS_ONLY" ] && [ ! -e "$SMALL.done" ]; then
  rm -rf "$SMALL"
  python3 - "$SMALL" <<'PY'
import os, random, sys
root, r = sys.argv[1], random.Random(7)
for i in range(100_000):
    d = os.path.join(root, f"{i % 50:02}", f"{i % 1000 // 50:02}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
        f.write((f"line {i} " * r.randint(60, 1000)).encode()[: r.randint(512, 8192)])
PY
  touch "$SMALL.done"
fi

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
    coffer:initial|coffer:unchanged|coffer:mutated|coffer:initial-1core) "$COFFER" repo -r "$r" backup --label bench --dir "data=$DATA" ;;
    coffer:open) "$COFFER" repo -r "$r" snapshots >/dev/null ;;
    coffer:small) "$COFFER" repo -r "$r" backup --label small --dir "small=$SMALL" ;;
    coffer:restore-small) "$COFFER" repo -r "$r" restore latest --target "$DIR/restore/coffer" && sync -f "$DIR/restore" ;;
    # Every restore ends with `sync -f` (syncfs): the time until the data is durably on disk.
    # Coffer already flushes before moving the restore into place; the others do not.
    coffer:restore) "$COFFER" repo -r "$r" restore latest --target "$DIR/restore/coffer" && sync -f "$DIR/restore" ;;
    restic:init) restic -r "$r" init ;;
    restic:initial|restic:unchanged|restic:mutated|restic:initial-1core) restic -r "$r" backup --quiet "$DATA" ;;
    restic:open) restic -r "$r" snapshots >/dev/null ;;
    restic:small) restic -r "$r" backup --quiet "$SMALL" ;;
    restic:restore-small) restic -r "$r" restore latest --target "$DIR/restore/restic" && sync -f "$DIR/restore" ;;
    restic:restore) restic -r "$r" restore latest --target "$DIR/restore/restic" && sync -f "$DIR/restore" ;;
    rustic:init) rustic -r "$r" init ;;
    rustic:initial|rustic:unchanged|rustic:mutated|rustic:initial-1core) rustic -r "$r" backup --no-progress "$DATA" ;;
    rustic:open) rustic -r "$r" snapshots >/dev/null ;;
    rustic:small) rustic -r "$r" backup --no-progress "$SMALL" ;;
    rustic:restore-small) rustic -r "$r" restore --no-progress latest "$DIR/restore/rustic" && sync -f "$DIR/restore" ;;
    rustic:restore) rustic -r "$r" restore --no-progress latest "$DIR/restore/rustic" && sync -f "$DIR/restore" ;;
    borg:init) borg init -e repokey-blake2 "$r" ;;
    borg:initial|borg:unchanged|borg:mutated|borg:initial-1core) borg create --compression zstd,3 "$r::$phase" "$DATA" ;;
    borg:open) borg list "$r" >/dev/null ;;
    borg:small) borg create --compression zstd,3 "$r::small" "$SMALL" ;;
    borg:restore-small) mkdir -p "$DIR/restore/borg" && (cd "$DIR/restore/borg" && borg extract "$r::small") && sync -f "$DIR/restore" ;;
    borg:restore) mkdir -p "$DIR/restore/borg" && (cd "$DIR/restore/borg" && borg extract "$r::mutated") && sync -f "$DIR/restore" ;;
  esac
}

# Where each tool puts the restored data set ($2: the source).
restored_root() {
  case $1 in
    coffer) echo "$DIR/restore/coffer" ;;
    *) echo "$DIR/restore/$1$2" ;;
  esac
}

export -f run_tool repo_of
export DIR DATA SMALL COFFER
# Samples per tool:phase, space-separated, one per round.
declare -A WALLS CPUS RSSS
measure() { # measure TOOL PHASE [repository]
  local tool=$1 phase=$2 out pin=()
  out=$DIR/time.$tool.$phase
  [ "$phase" = initial-1core ] && pin=(taskset -c 0)
  log "$tool: $phase"
  sync   # the previous phase's writeback must not be billed to this one
  if ! "${pin[@]}" /usr/bin/time -f '%e %U %S %M' -o "$out" bash -c "run_tool $tool $phase" \
      >"$DIR/log.$tool.$phase" 2>&1; then
    log "$tool $phase FAILED:"; tail -20 "$DIR/log.$tool.$phase" >&2; exit 1
  fi
  read -r wall user sys rss < <(tail -1 "$out")
  WALLS[$tool:$phase]+="$wall "
  CPUS[$tool:$phase]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') "
  RSSS[$tool:$phase]+="$((rss / 1024)) "
}
median() { # median "v1 v2 …"
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

restore_phase() { # restore_phase PHASE SOURCE: one round of restores, verified
  local phase=$1 source=$2
  for t in $TOOLS; do
    rm -rf "$DIR/restore/$t"; sync
    measure "$t" "$phase"
    if ! diff -r --no-dereference "$source" "$(restored_root "$t" "$source")" >/dev/null; then
      log "$t: restored data differs from the source"; exit 1
    fi
    rm -rf "$DIR/restore/$t"
  done
}

declare -A SIZE
for round in $(seq 1 "$ROUNDS"); do
  log "round $round of $ROUNDS"
  fresh_data
  rm -rf "$DIR/repos" "$DIR/restore"; mkdir -p "$DIR/repos" "$DIR/restore"
  for phase in init initial open unchanged; do
    for t in $TOOLS; do measure "$t" "$phase"; done
  done
  python3 bench/gen_dataset.py --mutate "$DATA" >&2
  for t in $TOOLS; do measure "$t" mutated; done
  for t in $TOOLS; do SIZE[$t]=$(du -sb "$(repo_of "$t")" | cut -f1); done
  [ -n "$BACKUPS_ONLY" ] || restore_phase restore "$DATA"
done
if [ -z "$BACKUPS_ONLY" ]; then
# One core: the initial backup again, into new repositories.
fresh_data
for t in $TOOLS; do
  rm -rf "$(repo_of "$t")"; run_tool "$t" init >/dev/null 2>&1
  measure "$t" initial-1core
done
# Many small files: backed up once (not timed), restored ROUNDS times.
for t in $TOOLS; do
  rm -rf "$(repo_of "$t")"; run_tool "$t" init >/dev/null 2>&1
  run_tool "$t" small >"$DIR/log.$t.small" 2>&1
done
for round in $(seq 1 "$ROUNDS"); do restore_phase restore-small "$SMALL"; done
fi
declare -A WALL CPU RSS
for k in "${!WALLS[@]}"; do
  WALL[$k]=$(median "${WALLS[$k]}"); CPU[$k]=$(median "${CPUS[$k]}"); RSS[$k]=$(median "${RSSS[$k]}")
done

# ------------------------------------------------------------------ report
ratio() { # ratio VALUE BASE
  awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
}
mib() { echo "$(( $1 / 1048576 ))"; }
per_s() { # per_s SECONDS: MiB/s of the data set
  awk -v b="$DATA_BYTES" -v w="${1:-0}" 'BEGIN { if (w > 0) printf "%.0f", b / 1048576 / w; else printf "-" }'
}
mkdir -p bench/results
RESULT=bench/results/$(date -u +%Y-%m-%d)-scale$SCALE${BACKUPS_ONLY:+-backups}.md
{
  echo "# Benchmark $(date -u +%Y-%m-%dT%H:%MZ), scale $SCALE"
  echo
  echo "Data: $(mib "$DATA_BYTES") MiB in $DATA_FILES files (bench/gen_dataset.py, seed 1), on $(nproc) cores,"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB RAM, $(df -T "$DIR" | awk 'NR==2{print $2}') at $DIR, warm page cache."
  echo
  echo "Versions: $(for t in $TOOLS; do printf '%s; ' "$(version_of "$t" | head -1)"; done)"
  echo
  echo "Every figure is the median of $ROUNDS rounds, interleaved across tools; restores are timed until"
  echo "durable (sync -f). initial-1core runs under taskset -c 0."
  echo
  echo "| tool | phase | wall s | CPU s | peak RSS MiB | wall ÷ restic | CPU ÷ restic | RSS ÷ restic |"
  echo "|------|-------|-------:|------:|-------------:|--------------:|-------------:|-------------:|"
  for phase in init initial open unchanged mutated initial-1core restore restore-small; do
    for t in $TOOLS; do
      k=$t:$phase
      [ -n "${WALL[$k]:-}" ] || continue
      echo "| $t | $phase | ${WALL[$k]} | ${CPU[$k]} | ${RSS[$k]} | $(ratio "${WALL[$k]}" "${WALL[restic:$phase]:-}") | $(ratio "${CPU[$k]}" "${CPU[restic:$phase]:-}") | $(ratio "${RSS[$k]}" "${RSS[restic:$phase]:-}") |"
    done
  done
  echo
  echo "| tool | initial MiB/s, 2 cores | 1 core | CPU s per GiB (initial) | unchanged after open, s | repository after 3 backups, MiB | size ÷ restic |"
  echo "|------|------:|------:|------:|------:|------:|------:|"
  for t in $TOOLS; do
    echo "| $t | $(per_s "${WALL[$t:initial]:-}") | $(per_s "${WALL[$t:initial-1core]:-}") \
| $(awk -v b="$DATA_BYTES" -v c="${CPU[$t:initial]}" 'BEGIN { printf "%.2f", c / (b / 1073741824) }') \
| $(awk -v u="${WALL[$t:unchanged]}" -v o="${WALL[$t:open]}" 'BEGIN { printf "%.2f", u - o }') \
| $(mib "${SIZE[$t]}") | $(ratio "${SIZE[$t]}" "${SIZE[restic]:-}") |"
  done
} | tee "$RESULT"
log "written to $RESULT"
