#!/usr/bin/env bash
# bench/targets.sh — backup throughput through each target, against a plain upload of the same
# bytes by a standard tool: the protocol's practical limit on this machine.
#
#   bench/targets.sh [--mib N]        (default 512: four files of N/4 MiB of random data)
#
# All servers on loopback (scripts/services.sh: Garage, vsftpd, OpenSSH). Random data, so
# neither Coffer's deduplication nor its compression can shrink it: every byte crosses the wire.
#   local  coffer repo backup into a directory     vs  cp + sync -f
#   s3     coffer repo backup to s3:…              vs  curl --aws-sigv4 -T (one PUT per file)
#   sftp   coffer repo backup to sftp://…          vs  curl -T sftp://… (libssh2)
#   ftp    coffer repo backup to ftp://…           vs  curl -T ftp://…
# For reference, plain restic backs up the same data to the same target (local, s3, sftp; restic
# has no FTP backend): the same work — chunking, hashing, encryption — by the reference
# implementation, so the table shows which part of any gap is inherent to an encrypted,
# deduplicated backup and which is Coffer's. Each side twice, the faster counts. Writes
# bench/results/<UTC date>-targets.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=512
while [ $# -gt 0 ]; do
  case $1 in
    --mib) MIB=$2; shift 2 ;;
    *) echo "usage: $0 [--mib N]" >&2; exit 2 ;;
  esac
done
DIR=${COFFER_BENCH_DIR:-/var/tmp/coffer-bench}/targets
log() { echo "[bench] $*" >&2; }

scripts/services.sh up garage sftp ftp
set -a
eval "$(scripts/services.sh env)"
set +a
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh
log "building coffer (release)"
cargo build --release --locked --bin coffer
COFFER=$CARGO_TARGET_DIR/release/coffer
export COFFER_PASSWORD=bench-password
export AWS_ACCESS_KEY_ID=$COFFER_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$COFFER_TEST_S3_SECRET_KEY
export AWS_DEFAULT_REGION=$COFFER_TEST_S3_REGION
export COFFER_FTP_PASSWORD=$COFFER_TEST_FTP_PASSWORD COFFER_SFTP_PASSWORD=$COFFER_TEST_SFTP_PASSWORD
COFFER_SFTP_HOST_KEY=$(cat "$COFFER_TEST_SFTP_HOST_KEY_PUB")
export COFFER_SFTP_HOST_KEY
FTP_HOME=/home/$COFFER_TEST_FTP_USER

rm -rf "$DIR"; mkdir -p "$DIR/data"
for i in 1 2 3 4; do head -c "$((MIB / 4))M" /dev/urandom > "$DIR/data/part$i.bin"; done
cat "$DIR"/data/* > /dev/null   # warm page cache

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The repository location and the cleanup for each target; run N makes a fresh one.
repo_for() { # KIND RUN
  case $1 in
    local) echo "$DIR/repo-$2" ;;
    s3) echo "s3:$COFFER_TEST_S3_ENDPOINT/$COFFER_TEST_S3_BUCKET/bench-$2-$$" ;;
    sftp) echo "sftp://$COFFER_TEST_SFTP_USER@127.0.0.1:$COFFER_TEST_SFTP_PORT//home/$COFFER_TEST_SFTP_USER/bench-sftp-$2-$$" ;;
    ftp) echo "ftp://$COFFER_TEST_FTP_USER@127.0.0.1:$COFFER_TEST_FTP_PORT/bench-ftp-$2-$$" ;;
  esac
}
plain_upload() { # KIND RUN
  local f
  case $1 in
    local)
      mkdir -p "$DIR/copy-$2"; cp "$DIR"/data/* "$DIR/copy-$2/"; sync -f "$DIR/copy-$2" ;;
    s3)
      for f in "$DIR"/data/*; do
        curl -sf -o /dev/null --aws-sigv4 "aws:amz:$COFFER_TEST_S3_REGION:s3" \
          --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
          -T "$f" "$COFFER_TEST_S3_ENDPOINT/$COFFER_TEST_S3_BUCKET/plain-$2-$$/$(basename "$f")"
      done ;;
    sftp)
      for f in "$DIR"/data/*; do
        curl -sf -k -o /dev/null -u "$COFFER_TEST_SFTP_USER:$COFFER_TEST_SFTP_PASSWORD" --ftp-create-dirs -T "$f" \
          "sftp://127.0.0.1:$COFFER_TEST_SFTP_PORT/home/$COFFER_TEST_SFTP_USER/plain-sftp-$2-$$/$(basename "$f")"
      done ;;
    ftp)
      for f in "$DIR"/data/*; do
        curl -sf -o /dev/null --ftp-create-dirs -T "$f" \
          "ftp://$COFFER_TEST_FTP_USER:$COFFER_TEST_FTP_PASSWORD@127.0.0.1:$COFFER_TEST_FTP_PORT/plain-ftp-$2-$$/$(basename "$f")"
      done ;;
  esac
}

# The same target for restic (its own syntax), or nothing where restic has no backend.
restic_repo_for() { # KIND RUN
  case $1 in
    local) echo "$DIR/restic-$2" ;;
    s3) echo "s3:$COFFER_TEST_S3_ENDPOINT/$COFFER_TEST_S3_BUCKET/restic-$2-$$" ;;
    sftp) echo "sftp:$COFFER_TEST_SFTP_USER@127.0.0.1:/home/$COFFER_TEST_SFTP_USER/restic-sftp-$2-$$" ;;
    *) ;;
  esac
}
RESTIC_SFTP_COMMAND="ssh -p $COFFER_TEST_SFTP_PORT -i $COFFER_TEST_SFTP_KEY -o UserKnownHostsFile=$COFFER_TEST_SFTP_KNOWN_HOSTS -o BatchMode=yes $COFFER_TEST_SFTP_USER@127.0.0.1 -s sftp"
restic_cmd() { # REPO ARGS...
  local repo=$1; shift
  RESTIC_PASSWORD=$COFFER_PASSWORD restic -q -r "$repo" -o "s3.region=$COFFER_TEST_S3_REGION" \
    -o "sftp.command=$RESTIC_SFTP_COMMAND" "$@"
}
better() { # CANDIDATE BEST-SO-FAR → the smaller
  if [ -z "$2" ] || awk -v a="$1" -v b="$2" 'BEGIN{exit !(a<b)}'; then echo "$1"; else echo "$2"; fi
}

declare -A BEST_PLAIN BEST_COFFER BEST_RESTIC
for kind in local s3 sftp ftp; do
  for run in 1 2; do
    log "$kind run $run: plain upload"
    t0=$(now); plain_upload "$kind" "$run"; t1=$(now)
    p=$(elapsed "$t0" "$t1")
    repo=$(repo_for "$kind" "$run")
    "$COFFER" repo -r "$repo" init >/dev/null
    log "$kind run $run: coffer backup"
    t0=$(now); "$COFFER" repo -r "$repo" backup --label bench --dir "data=$DIR/data" >/dev/null; t1=$(now)
    c=$(elapsed "$t0" "$t1")
    BEST_PLAIN[$kind]=$(better "$p" "${BEST_PLAIN[$kind]:-}")
    BEST_COFFER[$kind]=$(better "$c" "${BEST_COFFER[$kind]:-}")
    rrepo=$(restic_repo_for "$kind" "$run")
    if [ -n "$rrepo" ]; then
      restic_cmd "$rrepo" init >/dev/null
      log "$kind run $run: restic backup"
      t0=$(now); restic_cmd "$rrepo" backup "$DIR/data" >/dev/null; t1=$(now)
      BEST_RESTIC[$kind]=$(better "$(elapsed "$t0" "$t1")" "${BEST_RESTIC[$kind]:-}")
    fi
  done
done
# Clean up what the runs left on the servers' disks (Garage objects stay in its test bucket).
rm -rf "$FTP_HOME"/bench-ftp-* "$FTP_HOME"/plain-ftp-* /home/"$COFFER_TEST_SFTP_USER"/bench-sftp-* \
  /home/"$COFFER_TEST_SFTP_USER"/plain-sftp-* /home/"$COFFER_TEST_SFTP_USER"/restic-sftp-* \
  "$DIR"/copy-* "$DIR"/repo-* "$DIR"/restic-*

OUT=bench/results/$(date -u +%Y-%m-%d)-targets.md
mkdir -p bench/results
{
  echo "# Backup throughput through each target ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "$MIB MiB of random data in 4 files, loopback servers (Garage 2.5, OpenSSH $(ssh -V 2>&1 | cut -d, -f1), vsftpd), $("$COFFER" --version), $(curl --version | head -1 | cut -d' ' -f1-2), $(restic version | cut -d' ' -f1-2), $(nproc) cores. Faster of 2 runs; throughput in MiB/s."
  echo
  echo "| target | plain upload | coffer backup | restic backup | coffer ÷ plain | coffer ÷ restic |"
  echo "|--------|-----:|-----:|-----:|-----:|-----:|"
  for kind in local s3 sftp ftp; do
    p=${BEST_PLAIN[$kind]}; c=${BEST_COFFER[$kind]}; r=${BEST_RESTIC[$kind]:-}
    awk -v k="$kind" -v p="$p" -v c="$c" -v r="$r" -v m="$MIB" 'BEGIN {
      rs = r == "" ? "—" : sprintf("%.0f", m / r); rr = r == "" ? "—" : sprintf("%.2f", r / c)
      printf "| %s | %.0f | %.0f | %s | %.2f | %s |\n", k, m / p, m / c, rs, p / c, rr }'
  done
} | tee "$OUT"
log "written to $OUT"
