#!/usr/bin/env bash
# scripts/test.sh — Coffer's whole test suite: the README's test command, and what CI runs.
#
# 1. installs and starts the real servers the tests use (scripts/services.sh up),
# 2. cargo fmt --check, 3. cargo clippy -D warnings, 4. every test (cargo nextest).
#
# Run as root on Debian 12 with Rust. Under CI=true a test whose server is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$SECONDS
step() { echo "==> $* (at $((SECONDS - t_start)) s)"; }

# The servers the current tests talk to. Each issue that adds tests against a server adds it here;
# `tools` alone installs restic (the independent checker), age, zstd, mold and sqlite3.
SERVICES=${COFFER_TEST_SERVICES:-pg mariadb redis garage ftp sftp smtp}
step "services: $SERVICES"
# shellcheck disable=SC2086
scripts/services.sh up $SERVICES
set -a
# shellcheck disable=SC1090
eval "$(scripts/services.sh env)"
set +a
export PATH="${COFFER_TOOLS_DIR:-$HOME/.cache/coffer/tools}/bin:$PATH"

# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if ! command -v cargo-nextest >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

step "tests"
cargo nextest run --workspace --locked --no-fail-fast --profile ci

step "done in $((SECONDS - t_start)) s"
