#!/usr/bin/env bash
# services.sh — the real servers Coffer's tests talk to, on 127.0.0.1 only (Debian 12, run as root).
#
#   scripts/services.sh install [svc...]  install what is missing (apt, cargo); idempotent
#   scripts/services.sh up      [svc...]  install if missing, start, wait until ready, create test users; idempotent
#   scripts/services.sh down    [svc...]  stop (by recorded PID) and delete the service's state; idempotent
#   scripts/services.sh env               print KEY=VALUE connection settings of the running services
#   scripts/services.sh status            one line per service: running or not
#
#   services: pg mariadb redis sftp ftp garage smtp   (default: all); `tools` = only the tools below
#   tools installed by `install`/`up` whatever the services: restic, age, zstd, mold, sqlite3, curl, script (bsdutils),
#   chromium + chromium-driver (the web console's browser tests), promtool (unpacked from Debian's prometheus package)
#
# State lives under $COFFER_TEST_DIR (default /tmp/coffer-test-services). Garage (the S3 server) is built
# with `cargo install garage@2.5.0` into $COFFER_TOOLS_DIR (default ~/.cache/coffer/tools) once, ~14 min on
# 2 cores, and reused afterwards. Ports are fixed and overridable (see below) so tests can find them.
set -euo pipefail

BASE=${COFFER_TEST_DIR:-/tmp/coffer-test-services}
TOOLS=${COFFER_TOOLS_DIR:-$HOME/.cache/coffer/tools}
PW=${COFFER_TEST_PASSWORD:-coffer_test}          # one password for every service
OSUSER=${COFFER_TEST_OS_USER:-coffer_test}       # OS user for FTP and SFTP
PG_PORT=${COFFER_TEST_PG_PORT:-15432}
MARIADB_PORT=${COFFER_TEST_MARIADB_PORT:-13306}
REDIS_PORT=${COFFER_TEST_REDIS_PORT:-16379}
SFTP_PORT=${COFFER_TEST_SFTP_PORT:-2222}
FTP_PORT=${COFFER_TEST_FTP_PORT:-2121}
SMTP_PORT=${COFFER_TEST_SMTP_PORT:-2525}
FTP_PASV_MIN=${COFFER_TEST_FTP_PASV_MIN:-30000}; FTP_PASV_MAX=${COFFER_TEST_FTP_PASV_MAX:-30009}
GARAGE_PORT=${COFFER_TEST_S3_PORT:-3900}         # S3 API; rpc +1, web +2, admin +3
# Garage wants key id = "GK" + 24 hex digits and a 64-hex-digit secret.
S3_KEY_ID=GK0c0ffee0c0ffee0c0ffee0c0
S3_SECRET=0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0
S3_BUCKET=coffer-test
# A second key that may only read the bucket: Validate's permission messages are tested with it.
S3_RO_KEY_ID=GK0dead0dead0dead0dead0dead
S3_RO_SECRET=0dead0dead0dead0dead0dead0dead0dead0dead0dead0dead0dead0dead0dea
GARAGE_VERSION=2.5.0
PGBIN=/usr/lib/postgresql/15/bin
ALL="pg mariadb redis sftp ftp garage smtp"
export DEBIAN_FRONTEND=noninteractive
export PATH=$TOOLS/bin:$PATH:/usr/sbin:/sbin:$HOME/.cargo/bin

log() { echo "[services] $*" >&2; }
wait_for() { # wait_for SECONDS CMD...: poll every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "timed out waiting for: $*"; return 1; fi
    sleep 0.2
  done
}
running() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_alive() { [ -f "$1" ] && running "$(cat "$1")"; }
stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 300); do running "$pid" || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}
write_env() { mkdir -p "$BASE/env.d"; cat > "$BASE/env.d/$1.env"; }

# ---------------------------------------------------------------- install
TOOL_PKGS="restic age zstd mold sqlite3 curl jq openssl ca-certificates procps bsdutils chromium chromium-driver"
apt_pkgs() {
  case $1 in
    pg) echo postgresql-15 postgresql-client-15 ;;
    mariadb) echo mariadb-server mariadb-client ;;
    redis) echo redis-server redis-tools ;;
    sftp) echo openssh-server openssh-client ;;
    ftp) echo vsftpd ;;
    smtp) echo python3-aiosmtpd ;;
    garage|tools) ;;
  esac
}
do_install() {
  local missing=() p s
  for p in $TOOL_PKGS $(for s in "$@"; do apt_pkgs "$s"; done); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    # Keep maintainer scripts from starting the packaged daemons on their default ports.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  fi
  if ! [ -x "$TOOLS/bin/promtool" ]; then
    # promtool checks docs/alerts/coffer.rules.yml: taken from Debian's prometheus package,
    # unpacked rather than installed (no daemon, no maintainer scripts).
    log "fetching promtool (Debian's prometheus package, unpacked into $TOOLS/bin)"
    local tmp; tmp=$(mktemp -d)
    # A machine whose packages were all preinstalled may have no package lists yet.
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) ||
      (apt-get update -qq && cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) || true
    if (cd "$tmp" && dpkg-deb -x prometheus_*.deb x); then
      mkdir -p "$TOOLS/bin" && cp "$tmp/x/usr/bin/promtool" "$TOOLS/bin/promtool"
    else
      log "could not fetch promtool: the alert rules test will say so"
    fi
    rm -rf "$tmp"
  fi
  for s in "$@"; do
    if [ "$s" = garage ] && ! [ -x "$TOOLS/bin/garage" ]; then
      log "building garage $GARAGE_VERSION (once; ~14 min on 2 cores) into $TOOLS"
      # Its own target dir: never share (or invalidate) the project's build cache.
      CARGO_TARGET_DIR="$TOOLS/garage-target" cargo install "garage@$GARAGE_VERSION" --locked --root "$TOOLS"
      rm -rf "$TOOLS/garage-target"
    fi
  done
}

ensure_os_user() {
  id "$OSUSER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$OSUSER"
  echo "$OSUSER:$PW" | chpasswd
  mkdir -p "/home/$OSUSER"; chown "$OSUSER:$OSUSER" "/home/$OSUSER"; chmod 755 "/home/$OSUSER"
}

# `tools` is a pseudo-service: installing it installs only $TOOL_PKGS.
up_tools() { :; }
down_tools() { :; }

# ---------------------------------------------------------------- PostgreSQL 15
up_pg() {
  local d=$BASE/pg
  if [ -d "$d/data" ] && runuser -u postgres -- $PGBIN/pg_ctl -D "$d/data" status >/dev/null 2>&1; then return; fi
  rm -rf "$d"; mkdir -p "$d"; echo postgres > "$d/pwfile"; chown -R postgres:postgres "$d"
  runuser -u postgres -- $PGBIN/initdb -D "$d/data" -U postgres --pwfile="$d/pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$d/initdb.log"
  runuser -u postgres -- $PGBIN/pg_ctl -D "$d/data" -l "$d/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $d -c fsync=off -c full_page_writes=off" start >/dev/null
  wait_for 60 $PGBIN/pg_isready -h 127.0.0.1 -p "$PG_PORT" -q
  psql -h "$d" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q <<SQL
CREATE ROLE coffer_test LOGIN SUPERUSER PASSWORD '$PW';
CREATE DATABASE coffer_test OWNER coffer_test;
SQL
  write_env pg <<EOF
COFFER_TEST_PG_URL=postgres://coffer_test:$PW@127.0.0.1:$PG_PORT/coffer_test
COFFER_TEST_PG_HOST=127.0.0.1
COFFER_TEST_PG_PORT=$PG_PORT
COFFER_TEST_PG_USER=coffer_test
COFFER_TEST_PG_PASSWORD=$PW
EOF
}
down_pg() {
  [ -d "$BASE/pg/data" ] && runuser -u postgres -- $PGBIN/pg_ctl -D "$BASE/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$BASE/pg" "$BASE/env.d/pg.env"
}

# ---------------------------------------------------------------- MariaDB 10.11
up_mariadb() {
  local d=$BASE/mariadb
  if pid_alive "$d/mariadbd.pid"; then return; fi
  rm -rf "$d"; mkdir -p "$d/data"; chown -R mysql:mysql "$d"
  mariadb-install-db --no-defaults --user=mysql --datadir="$d/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$d/install.log" 2>&1
  runuser -u mysql -- mariadbd --no-defaults --datadir="$d/data" --socket="$d/mysqld.sock" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --pid-file="$d/mariadbd.pid" --log-error="$d/error.log" \
    --skip-name-resolve --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
    >/dev/null 2>&1 </dev/null &
  wait_for 60 mariadb-admin --no-defaults -uroot --socket="$d/mysqld.sock" ping
  mariadb --no-defaults -uroot --socket="$d/mysqld.sock" <<SQL
CREATE USER IF NOT EXISTS 'coffer_test'@'127.0.0.1' IDENTIFIED BY '$PW';
CREATE USER IF NOT EXISTS 'coffer_test'@'localhost' IDENTIFIED BY '$PW';
GRANT ALL PRIVILEGES ON *.* TO 'coffer_test'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'coffer_test'@'localhost' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS coffer_test;
SQL
  write_env mariadb <<EOF
COFFER_TEST_MYSQL_HOST=127.0.0.1
COFFER_TEST_MYSQL_PORT=$MARIADB_PORT
COFFER_TEST_MYSQL_USER=coffer_test
COFFER_TEST_MYSQL_PASSWORD=$PW
EOF
}
down_mariadb() { stop_pidfile "$BASE/mariadb/mariadbd.pid"; rm -rf "$BASE/mariadb" "$BASE/env.d/mariadb.env"; }

# ---------------------------------------------------------------- Redis 7.0
up_redis() {
  local d=$BASE/redis
  if pid_alive "$d/redis.pid"; then return; fi
  rm -rf "$d"; mkdir -p "$d"
  cat > "$d/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
dir $d
dbfilename dump.rdb
requirepass $PW
save ""
appendonly no
# 'redis-cli --rdb' is a diskless replica sync: without this it waits 5 s before sending.
repl-diskless-sync-delay 0
EOF
  redis-server "$d/redis.conf"
  wait_for 30 sh -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT --no-auth-warning -a '$PW' ping | grep -q PONG"
  write_env redis <<EOF
COFFER_TEST_REDIS_URL=redis://:$PW@127.0.0.1:$REDIS_PORT/0
COFFER_TEST_REDIS_HOST=127.0.0.1
COFFER_TEST_REDIS_PORT=$REDIS_PORT
COFFER_TEST_REDIS_PASSWORD=$PW
EOF
}
down_redis() { stop_pidfile "$BASE/redis/redis.pid"; rm -rf "$BASE/redis" "$BASE/env.d/redis.env"; }

# ---------------------------------------------------------------- SMTP sink (aiosmtpd, for notifications)
up_smtp() {
  local d=$BASE/smtp
  if pid_alive "$d/sink.pid"; then return; fi
  rm -rf "$d"; mkdir -p "$d/mail"
  # Debian's python3 (its aiosmtpd), whatever python3 comes first on PATH.
  nohup /usr/bin/python3 "$(dirname "$0")/smtp-sink.py" 127.0.0.1 "$SMTP_PORT" coffer "$PW" "$d/mail" \
    >"$d/sink.log" 2>&1 &
  echo $! > "$d/sink.pid"
  wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT" || { cat "$d/sink.log"; return 1; }
  write_env smtp <<EOF
COFFER_TEST_SMTP_HOST=127.0.0.1
COFFER_TEST_SMTP_PORT=$SMTP_PORT
COFFER_TEST_SMTP_USER=coffer
COFFER_TEST_SMTP_PASSWORD=$PW
COFFER_TEST_SMTP_DIR=$d/mail
EOF
}
down_smtp() { stop_pidfile "$BASE/smtp/sink.pid"; rm -rf "$BASE/smtp" "$BASE/env.d/smtp.env"; }

# ---------------------------------------------------------------- SFTP (a separate OpenSSH sshd)
up_sftp() {
  local d=$BASE/sftp
  if pid_alive "$d/sshd.pid"; then return; fi
  ensure_os_user
  rm -rf "$d"; mkdir -p "$d/authorized_keys" /run/sshd; chmod 755 "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -C coffer-test -f "$d/client_ed25519"
  ssh-keygen -q -t ed25519 -N "$PW" -C coffer-test-passphrase -f "$d/client_ed25519_passphrase"
  cat "$d/client_ed25519.pub" "$d/client_ed25519_passphrase.pub" > "$d/authorized_keys/$OSUSER"
  chmod 644 "$d/authorized_keys/$OSUSER"
  { printf '[127.0.0.1]:%s ' "$SFTP_PORT"; cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub"; } > "$d/known_hosts"
  cat > "$d/sshd_config" <<EOF
Port $SFTP_PORT
ListenAddress 127.0.0.1
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys/%u
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $OSUSER
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Subsystem sftp internal-sftp
EOF
  /usr/sbin/sshd -t -f "$d/sshd_config"
  /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
  wait_for 30 ssh-keyscan -p "$SFTP_PORT" -T 1 127.0.0.1
  write_env sftp <<EOF
COFFER_TEST_SFTP_HOST=127.0.0.1
COFFER_TEST_SFTP_PORT=$SFTP_PORT
COFFER_TEST_SFTP_USER=$OSUSER
COFFER_TEST_SFTP_PASSWORD=$PW
COFFER_TEST_SFTP_KEY=$d/client_ed25519
COFFER_TEST_SFTP_KEY_WITH_PASSPHRASE=$d/client_ed25519_passphrase
COFFER_TEST_SFTP_KNOWN_HOSTS=$d/known_hosts
COFFER_TEST_SFTP_HOST_KEY_PUB=$d/ssh_host_ed25519_key.pub
EOF
}
down_sftp() { stop_pidfile "$BASE/sftp/sshd.pid"; rm -rf "$BASE/sftp" "$BASE/env.d/sftp.env"; }

# ---------------------------------------------------------------- FTP + explicit FTPS (vsftpd)
up_ftp() {
  local d=$BASE/ftp
  if pid_alive "$d/vsftpd.pid"; then return; fi
  ensure_os_user
  rm -rf "$d"; mkdir -p "$d" /var/run/vsftpd/empty
  # A throwaway CA and a server certificate it signs: TLS clients (rustls) refuse a self-signed
  # CA certificate used as the server's own.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=coffer-test-ca \
    -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/key.pem" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial -days 3650 \
    -extfile "$d/server.ext" -out "$d/cert.pem" 2>/dev/null
  chmod 600 "$d/key.pem" "$d/ca-key.pem"
  cat > "$d/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$FTP_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$FTP_PASV_MIN
pasv_max_port=$FTP_PASV_MAX
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
xferlog_enable=YES
vsftpd_log_file=$d/vsftpd.log
ssl_enable=YES
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
ssl_ciphers=HIGH
rsa_cert_file=$d/cert.pem
rsa_private_key_file=$d/key.pem
EOF
  /usr/sbin/vsftpd "$d/vsftpd.conf" >"$d/stdout.log" 2>&1 </dev/null &
  echo $! > "$d/vsftpd.pid"
  wait_for 30 curl -s -o /dev/null --max-time 2 -u "$OSUSER:$PW" "ftp://127.0.0.1:$FTP_PORT/"
  write_env ftp <<EOF
COFFER_TEST_FTP_HOST=127.0.0.1
COFFER_TEST_FTP_PORT=$FTP_PORT
COFFER_TEST_FTP_USER=$OSUSER
COFFER_TEST_FTP_PASSWORD=$PW
COFFER_TEST_FTPS_CA=$d/ca.pem
EOF
}
down_ftp() { stop_pidfile "$BASE/ftp/vsftpd.pid"; rm -rf "$BASE/ftp" "$BASE/env.d/ftp.env"; }

# ---------------------------------------------------------------- Garage (the real S3 server, one node)
garage_c() { garage -c "$BASE/garage/garage.toml" "$@"; }
# The read-only key, also on a Garage started by an older version of this script.
garage_ro_key() {
  garage_c key info coffer-test-ro >/dev/null 2>&1 ||
    garage_c key import --yes -n coffer-test-ro "$S3_RO_KEY_ID" "$S3_RO_SECRET" >/dev/null
  garage_c bucket allow --read "$S3_BUCKET" --key coffer-test-ro >/dev/null
  grep -q COFFER_TEST_S3_RO_ACCESS_KEY "$BASE/env.d/garage.env" 2>/dev/null || cat >> "$BASE/env.d/garage.env" <<EOF
COFFER_TEST_S3_RO_ACCESS_KEY=$S3_RO_KEY_ID
COFFER_TEST_S3_RO_SECRET_KEY=$S3_RO_SECRET
EOF
}
up_garage() {
  local d=$BASE/garage node
  if pid_alive "$d/garage.pid"; then garage_ro_key; return; fi
  rm -rf "$d"; mkdir -p "$d/meta" "$d/data"
  cat > "$d/garage.toml" <<EOF
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((GARAGE_PORT + 1))"
rpc_public_addr = "127.0.0.1:$((GARAGE_PORT + 1))"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$GARAGE_PORT"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:$((GARAGE_PORT + 2))"
root_domain = ".web.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((GARAGE_PORT + 3))"
admin_token = "$PW"
metrics_token = "$PW"
EOF
  garage -c "$d/garage.toml" server >"$d/garage.log" 2>&1 </dev/null &
  echo $! > "$d/garage.pid"
  wait_for 60 garage_c status
  node=$(garage_c node id -q | cut -d@ -f1)
  garage_c layout assign -z dc1 -c 1G "$node" >/dev/null
  garage_c layout apply --version 1 >/dev/null
  garage_c key import --yes -n coffer-test "$S3_KEY_ID" "$S3_SECRET" >/dev/null
  garage_c bucket create "$S3_BUCKET" >/dev/null
  garage_c bucket allow --read --write --owner "$S3_BUCKET" --key coffer-test >/dev/null
  garage_c key allow --create-bucket coffer-test >/dev/null
  wait_for 30 sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$GARAGE_PORT/ | grep -q '^[1-4]'"
  write_env garage <<EOF
COFFER_TEST_S3_ENDPOINT=http://127.0.0.1:$GARAGE_PORT
COFFER_TEST_S3_REGION=garage
COFFER_TEST_S3_ACCESS_KEY=$S3_KEY_ID
COFFER_TEST_S3_SECRET_KEY=$S3_SECRET
COFFER_TEST_S3_BUCKET=$S3_BUCKET
EOF
  garage_ro_key
}
down_garage() { stop_pidfile "$BASE/garage/garage.pid"; rm -rf "$BASE/garage" "$BASE/env.d/garage.env"; }

# ---------------------------------------------------------------- main
status_of() {
  case $1 in
    pg) [ -d "$BASE/pg/data" ] && runuser -u postgres -- $PGBIN/pg_ctl -D "$BASE/pg/data" status >/dev/null 2>&1 ;;
    mariadb) pid_alive "$BASE/mariadb/mariadbd.pid" ;;
    redis) pid_alive "$BASE/redis/redis.pid" ;;
    sftp) pid_alive "$BASE/sftp/sshd.pid" ;;
    ftp) pid_alive "$BASE/ftp/vsftpd.pid" ;;
    garage) pid_alive "$BASE/garage/garage.pid" ;;
    smtp) pid_alive "$BASE/smtp/sink.pid" ;;
    tools) true ;;
  esac
}

cmd=${1:-up}; shift || true
svcs=${*:-$ALL}
for s in $svcs; do
  case " $ALL tools " in *" $s "*) ;; *) log "unknown service '$s' (known: $ALL tools)"; exit 2 ;; esac
done
if [ "$cmd" != env ] && [ "$(id -u)" != 0 ]; then log "run as root (it installs packages and starts daemons)"; exit 2; fi
mkdir -p "$BASE"; chmod 755 "$BASE"

case $cmd in
  install) do_install $svcs ;;
  up)
    do_install $svcs
    for s in $svcs; do
      t0=$SECONDS
      "up_$s"
      log "$s up ($((SECONDS - t0)) s)"
    done
    ;;
  down) for s in $svcs; do "down_$s"; done ;;
  env) cat "$BASE"/env.d/*.env 2>/dev/null || true ;;
  status) for s in $svcs; do if status_of "$s"; then echo "$s running"; else echo "$s stopped"; fi; done ;;
  *) log "usage: $0 install|up|down|env|status [svc...]"; exit 2 ;;
esac
