//! Keeping the process's memory near what it uses.
//!
//! A restore's workers each allocate and free buffers of a few MiB (spans of
//! packs, decrypted blobs). glibc gives every thread that allocates its own
//! arena and keeps freed memory there for reuse, so eight workers left a
//! 2 GiB restore at 260 MiB of RSS where ≈ 140 MiB were in use (bench
//! `remote_restore.sh`); with at most two arenas it peaked at 150–160 MiB.
//!
//! The only `unsafe` in Coffer: `mallopt` has no safe wrapper (rustix does
//! not cover the allocator). Audited: one call with constant arguments,
//! which glibc documents as safe at any time; it changes only how future
//! allocations are placed.
#![allow(unsafe_code)]

/// Limits glibc to two malloc arenas. Call once, at start, before threads
/// are spawned. A no-op with other C libraries.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters (constant
    // arguments, no pointers); called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
