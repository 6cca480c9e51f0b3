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
# Each side twice, the faster counts. Writes bench/results/<UTC date>-targets.md.
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

declare -A BEST_PLAIN BEST_COFFER
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
    [ -z "${BEST_PLAIN[$kind]:-}" ] || awk -v a="$p" -v b="${BEST_PLAIN[$kind]}" 'BEGIN{exit !(a>=b)}' || BEST_PLAIN[$kind]=$p
    [ -n "${BEST_PLAIN[$kind]:-}" ] || BEST_PLAIN[$kind]=$p
    [ -z "${BEST_COFFER[$kind]:-}" ] || awk -v a="$c" -v b="${BEST_COFFER[$kind]}" 'BEGIN{exit !(a>=b)}' || BEST_COFFER[$kind]=$c
    [ -n "${BEST_COFFER[$kind]:-}" ] || BEST_COFFER[$kind]=$c
  done
done
# Clean up what the runs left on the servers' disks (Garage objects stay in its test bucket).
rm -rf "$FTP_HOME"/bench-ftp-* "$FTP_HOME"/plain-ftp-* /home/"$COFFER_TEST_SFTP_USER"/bench-sftp-* \
  /home/"$COFFER_TEST_SFTP_USER"/plain-sftp-* "$DIR"/copy-* "$DIR"/repo-*

OUT=bench/results/$(date -u +%Y-%m-%d)-targets.md
mkdir -p bench/results
{
  echo "# Backup throughput through each target ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "$MIB MiB of random data in 4 files, loopback servers (Garage 2.5, OpenSSH $(ssh -V 2>&1 | cut -d, -f1), vsftpd), $("$COFFER" --version), $(curl --version | head -1 | cut -d' ' -f1-2). Faster of 2 runs."
  echo
  echo "| target | plain upload, s | MiB/s | coffer backup, s | MiB/s | coffer ÷ plain throughput |"
  echo "|--------|-----:|-----:|-----:|-----:|-----:|"
  for kind in local s3 sftp ftp; do
    p=${BEST_PLAIN[$kind]}; c=${BEST_COFFER[$kind]}
    awk -v k="$kind" -v p="$p" -v c="$c" -v m="$MIB" \
      'BEGIN { printf "| %s | %.2f | %.0f | %.2f | %.0f | %.2f |\n", k, p, m / p, c, m / c, p / c }'
  done
} | tee "$OUT"
log "written to $OUT"
