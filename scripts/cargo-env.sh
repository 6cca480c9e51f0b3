# Source this: the build settings shared by scripts/test.sh, .ci/run and local work,
# so every entry point reuses one build cache (identical flags = no rebuilds).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coffer/target}"
# Incremental artifacts are useless on a cold CI machine and cost disk and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# mold links the many test binaries several times faster than GNU ld (apt package 'mold').
if command -v mold >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=mold"
fi
