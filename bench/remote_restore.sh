#!/usr/bin/env bash
# bench/remote_restore.sh — restores from off-site targets through a shaped link, side by side
# with plain restic (S3, SFTP) and a plain curl download (FTP, where restic has no backend).
#
#   bench/remote_restore.sh [--scale S] [--rtt "0 30"] [--small-files N] [--rounds N] [--uplink-mib M]
#                           [--targets "s3 sftp ftp"]
#
# Two data sets: bench/gen_dataset.py at --scale S (1 = ~2 GiB, 20 000 files) and a tree of N
# small files (default 3 000, 200 B–64 KiB, three levels of directories, ~40 MiB). Each is backed
# up once per target over loopback (Coffer and restic, each into its own repository), then
# restored through coffer-testkit's shaping-proxy adding RTT/2 ms each way (0 = the proxy alone),
# into an empty directory, timed until durable (restic gets `sync -f` inside its timed command,
# Coffer syncs before it returns) and compared with `diff -r`. Peak RSS from GNU time. FTP's
# yardstick is curl downloading a tar of the same data set through the same proxy (the proxy
# rewrites passive-mode answers so data connections are shaped too), with `sync -f` like restic. Then a backup of the large
# set through the same link, capped at M MiB/s each way (default 25, a 200 Mbit/s uplink: the link,
# not the 2 cores, is the bottleneck, as off-site), into a fresh repository, against a plain
# upload of its tar (curl; OpenSSH's sftp for SFTP); and FTP restores through that capped link
# against curl. The fastest
# of --rounds (default 1) counts. --targets measures some of the three (a full run takes
# ≈ 35 min per round on 2 cores). Writes bench/results/<UTC date>-remote-restore.md
# (-remote-restore-<targets>.md for a subset).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1
RTTS="0 30"
SMALL=3000
ROUNDS=1
UPLINK=25
TARGETS="s3 sftp ftp"
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --rtt) RTTS=$2; shift 2 ;;
    --small-files) SMALL=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --uplink-mib) UPLINK=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    *) echo "usage: $0 [--scale S] [--rtt \"0 30\"] [--small-files N] [--rounds N] [--uplink-mib M] [--targets \"s3 sftp ftp\"]" >&2; exit 2 ;;
  esac
done
for kind in $TARGETS; do
  case $kind in s3|sftp|ftp) ;; *) echo "--targets: unknown target $kind (s3, sftp, ftp)" >&2; exit 2 ;; esac
done
has_ftp() { [[ " $TARGETS " == *" ftp "* ]]; }
DIR=${COFFER_BENCH_DIR:-/var/tmp/coffer-bench}/remote
log() { echo "[bench] $(date -u +%H:%M:%S) $*" >&2; }

need_apt=()
command -v restic >/dev/null || need_apt+=(restic)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
scripts/services.sh up garage sftp ftp
set -a
eval "$(scripts/services.sh env)"
set +a
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh
log "building coffer and shaping-proxy (release)"
cargo build --release --locked --bin coffer --bin shaping-proxy
COFFER=$CARGO_TARGET_DIR/release/coffer
PROXY=$CARGO_TARGET_DIR/release/shaping-proxy
export COFFER_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export AWS_ACCESS_KEY_ID=$COFFER_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$COFFER_TEST_S3_SECRET_KEY
export AWS_DEFAULT_REGION=$COFFER_TEST_S3_REGION
export COFFER_FTP_PASSWORD=$COFFER_TEST_FTP_PASSWORD
COFFER_SFTP_HOST_KEY=$(cat "$COFFER_TEST_SFTP_HOST_KEY_PUB")
export COFFER_SFTP_HOST_KEY COFFER_SFTP_PASSWORD=$COFFER_TEST_SFTP_PASSWORD
S3_UP=${COFFER_TEST_S3_ENDPOINT#http://}
SFTP_HOME=/home/$COFFER_TEST_SFTP_USER
RUN=$$

rm -rf "$DIR"; mkdir -p "$DIR"
log "generating the data sets"
python3 bench/gen_dataset.py --scale "$SCALE" "$DIR/large" >/dev/null
python3 - "$DIR/small" "$SMALL" <<'EOF'
import os, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(4000)]
for i in range(n):
    d = os.path.join(out, f"d{i % 7}", f"e{i % 23}", f"f{i % 97}")
    os.makedirs(d, exist_ok=True)
    size = int(200 * (2 ** rng.uniform(0, 8.4)))  # 200 B to ~64 KiB, log-uniform
    text = b" ".join(rng.choice(words) for _ in range(size // 5))[:size]
    with open(os.path.join(d, f"file{i}.py"), "wb") as f:
        f.write(text)
EOF
for set in large small; do tar -C "$DIR" -cf "$DIR/$set.tar" "$set"; done
du_mib() { du -sm --apparent-size "$1" | cut -f1; }

# Where each tool's repository lives, reached through ADDR (host:port of the proxy or the server).
coffer_repo() { # KIND SET ADDR
  case $1 in
    s3) echo "s3:http://$3/$COFFER_TEST_S3_BUCKET/bench-rr-$RUN-s3-$2" ;;
    sftp) echo "sftp://$COFFER_TEST_SFTP_USER@$3/$SFTP_HOME/bench-rr-$RUN-sftp-$2" ;;
    ftp) echo "ftp://$COFFER_TEST_FTP_USER@$3/bench-rr-$RUN-ftp-$2" ;;
  esac
}
restic_repo() { # KIND SET ADDR
  case $1 in
    s3) echo "s3:http://$3/$COFFER_TEST_S3_BUCKET/restic-rr-$RUN-s3-$2" ;;
    sftp) echo "sftp:$COFFER_TEST_SFTP_USER@${3%:*}:$SFTP_HOME/restic-rr-$RUN-sftp-$2" ;;
  esac
}
restic_cmd() { # ADDR(for sftp) REPO ARGS...
  local port=${1##*:} repo=$2; shift 2
  # The proxy listens on its own port: the host key is the test server's (loopback only).
  restic -q -r "$repo" -o "s3.region=$COFFER_TEST_S3_REGION" \
    -o "sftp.command=ssh -p $port -i $COFFER_TEST_SFTP_KEY -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes $COFFER_TEST_SFTP_USER@127.0.0.1 -s sftp" \
    "$@"
}
upstream() { # KIND
  case $1 in
    s3) echo "$S3_UP" ;;
    sftp) echo "127.0.0.1:$COFFER_TEST_SFTP_PORT" ;;
    ftp) echo "127.0.0.1:$COFFER_TEST_FTP_PORT" ;;
  esac
}

# Backups, straight to the servers.
for set in large small; do
  for kind in $TARGETS; do
    repo=$(coffer_repo "$kind" "$set" "$(upstream "$kind")")
    log "coffer backup of $set to $kind"
    "$COFFER" repo -r "$repo" init >/dev/null
    "$COFFER" repo -r "$repo" backup --label bench --dir "$set=$DIR/$set" >/dev/null
    if [ "$kind" != ftp ]; then
      log "restic backup of $set to $kind"
      rrepo=$(restic_repo "$kind" "$set" "$(upstream "$kind")")
      restic_cmd "$(upstream "$kind")" "$rrepo" init >/dev/null
      (cd "$DIR" && restic_cmd "$(upstream "$kind")" "$rrepo" backup "$set" >/dev/null)
    fi
  done
  if has_ftp; then
    curl -sf --ftp-create-dirs -T "$DIR/$set.tar" \
      "ftp://$COFFER_TEST_FTP_USER:$COFFER_TEST_FTP_PASSWORD@$(upstream ftp)/bench-rr-$RUN-plain/$set.tar"
  fi
done

# One timed command: wall seconds and peak RSS (MiB) appended to $DIR/times.
# A failed command is logged and recorded as nan, so the table shows it.
timed() { # ARGS...
  if ! /usr/bin/time -f "%e %M" -o "$DIR/time.out" "$@" >/dev/null; then
    log "FAILED: $*"; echo "nan nan"; return
  fi
  awk '{ printf "%s %.0f\n", $1, $2 / 1024 }' "$DIR/time.out"
}
# curl's download of SET's tar from the FTP server at ADDR into DEST, made durable like the restores.
curl_download() { # SET ADDR DEST
  timed sh -c 'curl -sf -o "$0" "$1" && sync -f "$0"' "$3" \
    "ftp://$COFFER_TEST_FTP_USER:$COFFER_TEST_FTP_PASSWORD@$2/bench-rr-$RUN-plain/$1.tar"
}
verify() { # SET RESTORED
  diff -r "$DIR/$1" "$2/$1" >/dev/null || { log "MISMATCH: $2 differs from $DIR/$1"; exit 1; }
}
declare -A BEST RSS
keep() { # KEY "SECONDS RSS"
  local s=${2% *} r=${2#* }
  if [ -z "${BEST[$1]:-}" ] || awk -v a="$s" -v b="${BEST[$1]}" 'BEGIN{exit !(a<b)}'; then
    BEST[$1]=$s; RSS[$1]=$r
  fi
}

declare -A ADDR=()
pids=()
start_proxies() { # RTT [RATE_MIB]
  local kind extra
  for kind in s3 sftp ftp; do # all three: cheap, and ADDR stays simple
    extra=(); [ "$kind" = ftp ] && extra+=(--ftp)
    [ -n "${2:-}" ] && extra+=(--rate-mib "$2")
    rm -f "$DIR/proxy-$kind"
    "$PROXY" --upstream "$(upstream "$kind")" --delay-ms "$(($1 / 2))" "${extra[@]}" > "$DIR/proxy-$kind" &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$DIR/proxy-$kind" ] && break; sleep 0.1; done
    ADDR[$kind]=$(head -1 "$DIR/proxy-$kind")
  done
}
stop_proxies() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

for rtt in $RTTS; do
  start_proxies "$rtt"
  for round in $(seq "$ROUNDS"); do
    for set in large small; do
      for kind in $TARGETS; do
        out=$DIR/out; rm -rf "$out"; mkdir -p "$out"
        log "rtt $rtt ms, round $round: coffer restore of $set from $kind"
        keep "coffer/$kind/$set/$rtt" "$(timed "$COFFER" repo -r "$(coffer_repo "$kind" "$set" "${ADDR[$kind]}")" \
          restore latest --target "$out/$set")"
        verify "$set" "$out"
        rm -rf "$out"; mkdir -p "$out"
        if [ "$kind" = ftp ]; then
          log "rtt $rtt ms, round $round: curl download of $set.tar"
          keep "plain/$kind/$set/$rtt" "$(curl_download "$set" "${ADDR[ftp]}" "$out/$set.tar")"
        else
          log "rtt $rtt ms, round $round: restic restore of $set from $kind"
          rrepo=$(restic_repo "$kind" "$set" "${ADDR[$kind]}")
          keep "restic/$kind/$set/$rtt" "$(timed sh -c 'restic "$@" && sync -f "$0"' "$out" -q -r "$rrepo" \
            -o "s3.region=$COFFER_TEST_S3_REGION" \
            -o "sftp.command=ssh -p ${ADDR[$kind]##*:} -i $COFFER_TEST_SFTP_KEY -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes $COFFER_TEST_SFTP_USER@127.0.0.1 -s sftp" \
            restore latest --target "$out")"
          verify "$set" "$out"
        fi
      done
    done
  done
  # Backups through the same link, capped at the uplink's rate: the large set into a fresh
  # repository, against a plain upload of its tar (the same bytes, before compression) by curl.
  stop_proxies
  start_proxies "$rtt" "$UPLINK"
  for kind in $TARGETS; do
    for round in $(seq "$ROUNDS"); do
      repo=$(coffer_repo "$kind" "link-$rtt-$round" "${ADDR[$kind]}")
      "$COFFER" repo -r "$repo" init >/dev/null
      log "rtt $rtt ms, round $round: coffer backup of large to $kind"
      keep "cbackup/$kind/$rtt" "$(timed "$COFFER" repo -r "$repo" backup --label bench --dir "large=$DIR/large")"
      # What crossed the wire: the repository's new bytes (compressed, deduplicated).
      WIRE=$("$COFFER" repo -r "$repo" snapshots --json | python3 -c 'import json,sys; print(sum(s["bytes_added"] for s in json.load(sys.stdin)))')
      log "rtt $rtt ms, round $round: plain upload of large.tar to $kind"
      printf 'mkdir %s\nput %s %s\n' "$SFTP_HOME/bench-rr-$RUN-plainsftp-$rtt-$round" "$DIR/large.tar" \
        "$SFTP_HOME/bench-rr-$RUN-plainsftp-$rtt-$round/large.tar" > "$DIR/sftp-put"
      case $kind in
        s3) url="http://${ADDR[s3]}/$COFFER_TEST_S3_BUCKET/bench-rr-$RUN-plain-$rtt-$round/large.tar"
            keep "pupload/$kind/$rtt" "$(timed curl -sf -o /dev/null --aws-sigv4 "aws:amz:$COFFER_TEST_S3_REGION:s3" \
              --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
              -T "$DIR/large.tar" "$url")" ;;
        # OpenSSH's sftp, not curl's: libssh2 keeps one write in flight (1.8 MiB/s at 30 ms).
        sftp) keep "pupload/$kind/$rtt" "$(timed sftp -q -P "${ADDR[sftp]##*:}" -i "$COFFER_TEST_SFTP_KEY" \
              -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes \
              -b "$DIR/sftp-put" "$COFFER_TEST_SFTP_USER@127.0.0.1")" ;;
        ftp) keep "pupload/$kind/$rtt" "$(timed curl -sf -o /dev/null --ftp-create-dirs -T "$DIR/large.tar" \
              "ftp://$COFFER_TEST_FTP_USER:$COFFER_TEST_FTP_PASSWORD@${ADDR[ftp]}/bench-rr-$RUN-plainftp-$rtt-$round/large.tar")" ;;
      esac
    done
  done
  # FTP restores through the capped link too: there the link, not the 2 cores or the disk,
  # bounds both, so it is where "at link speed" is judged.
  if has_ftp; then
    for round in $(seq "$ROUNDS"); do
      out=$DIR/out; rm -rf "$out"; mkdir -p "$out"
      log "rtt $rtt ms, round $round: coffer restore of large from ftp, capped link"
      keep "ccapped/ftp/$rtt" "$(timed "$COFFER" repo -r "$(coffer_repo ftp large "${ADDR[ftp]}")" \
        restore latest --target "$out/large")"
      verify large "$out"
      rm -rf "$out"; mkdir -p "$out"
      log "rtt $rtt ms, round $round: curl download of large.tar, capped link"
      keep "pcapped/ftp/$rtt" "$(curl_download large "${ADDR[ftp]}" "$out/large.tar")"
    done
  fi
  stop_proxies
done
rm -rf "$DIR/out" "$SFTP_HOME"/bench-rr-"$RUN"-* "$SFTP_HOME"/restic-rr-"$RUN"-* \
  "/home/$COFFER_TEST_FTP_USER"/bench-rr-"$RUN"-*

SUFFIX=""; [ "$TARGETS" = "s3 sftp ftp" ] || SUFFIX="-${TARGETS// /-}"
OUT=bench/results/$(date -u +%Y-%m-%d)-remote-restore$SUFFIX.md
mkdir -p bench/results
{
  echo "# Restores from off-site targets through a shaped link ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "large: gen_dataset.py --scale $SCALE ($(du_mib "$DIR/large") MiB, $(find "$DIR/large" -type f | wc -l) files); small: $SMALL files ($(du_mib "$DIR/small") MiB). $("$COFFER" --version), $(restic version | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2), Garage, OpenSSH, vsftpd on loopback behind shaping-proxy; $(nproc) cores. Fastest of $ROUNDS; seconds until durable, peak RSS in MiB."
  echo
  echo "| target | data | added RTT, ms | coffer, s | restic / curl, s | coffer ÷ other | coffer MiB/s | coffer RSS, MiB | other RSS, MiB |"
  echo "|--------|------|-----:|-----:|-----:|-----:|-----:|-----:|-----:|"
  for kind in $TARGETS; do
    for set in large small; do
      for rtt in $RTTS; do
        other=restic; [ "$kind" = ftp ] && other=plain
        c=${BEST[coffer/$kind/$set/$rtt]}; o=${BEST[$other/$kind/$set/$rtt]}
        awk -v k="$kind" -v s="$set" -v r="$rtt" -v c="$c" -v o="$o" -v m="$(du_mib "$DIR/$set")" \
          -v cr="${RSS[coffer/$kind/$set/$rtt]}" -v orss="${RSS[$other/$kind/$set/$rtt]}" -v ot="$other" 'BEGIN {
          printf "| %s | %s | %s | %.2f | %.2f (%s) | **%.2f** | %.0f | %s | %s |\n", k, s, r, c, o, ot == "plain" ? "curl" : "restic", c / o, m / c, cr, orss }'
      done
    done
  done
  echo
  echo "Backups of the large set through the same link capped at $UPLINK MiB/s, against curl uploading its tar:"
  echo
  echo "Coffer sends only the repository's new bytes ($((WIRE >> 20)) MiB for the $(du_mib "$DIR/large.tar") MiB tar), so"
  echo "the fair ratio is of throughput on the wire: (those bytes ÷ coffer's time) ÷ (the tar ÷ curl's time)."
  echo
  echo "| target | added RTT, ms | coffer backup, s | curl upload, s | coffer wire MiB/s | curl MiB/s | wire throughput ratio | coffer RSS, MiB |"
  echo "|--------|-----:|-----:|-----:|-----:|-----:|-----:|-----:|"
  for kind in $TARGETS; do
    for rtt in $RTTS; do
      c=${BEST[cbackup/$kind/$rtt]}; p=${BEST[pupload/$kind/$rtt]}
      awk -v k="$kind" -v r="$rtt" -v c="$c" -v p="$p" -v cr="${RSS[cbackup/$kind/$rtt]}" \
        -v w="$((WIRE >> 20))" -v t="$(du_mib "$DIR/large.tar")" 'BEGIN {
        printf "| %s | %s | %.2f | %.2f | %.0f | %.0f | **%.2f** | %s |\n", k, r, c, p, w / c, t / p, (w / c) / (t / p), cr }'
    done
  done
  if has_ftp; then
    echo
    echo "FTP restores of the large set through the link capped at $UPLINK MiB/s, against curl downloading"
    echo "its tar (both durable). Coffer reads the repository's compressed bytes ($((WIRE >> 20)) MiB), curl the tar:"
    echo
    echo "| added RTT, ms | coffer restore, s | curl download, s | coffer ÷ curl (time) | coffer data MiB/s | coffer wire MiB/s | curl MiB/s | wire throughput ratio | coffer RSS, MiB |"
    echo "|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|"
    for rtt in $RTTS; do
      c=${BEST[ccapped/ftp/$rtt]}; p=${BEST[pcapped/ftp/$rtt]}
      awk -v r="$rtt" -v c="$c" -v p="$p" -v cr="${RSS[ccapped/ftp/$rtt]}" -v m="$(du_mib "$DIR/large")" \
        -v w="$((WIRE >> 20))" -v t="$(du_mib "$DIR/large.tar")" 'BEGIN {
        printf "| %s | %.2f | %.2f | **%.2f** | %.0f | %.0f | %.0f | **%.2f** | %s |\n", r, c, p, c / p, m / c, w / c, t / p, (w / c) / (t / p), cr }'
    done
  fi
} | tee "$OUT"
log "written to $OUT"
