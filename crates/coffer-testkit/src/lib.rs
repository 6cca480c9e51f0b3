//! Test helpers shared by Coffer's crates.
//!
//! * [`tree`]: build directory trees with every kind of metadata and compare
//!   two trees exactly (content, mode, mtime to the nanosecond, ownership,
//!   symlink targets, extended attributes, holes of sparse files).
//! * [`restic_check`]: the independent checker — the real `restic` binary
//!   must accept every repository the tests create.
//! * [`require_tool`]: outside CI a test may skip loudly when a tool or
//!   server is missing; under `CI=true` it fails.
//! * [`storage::conformance`]: the one contract suite every storage backend
//!   (local, S3, SFTP, FTP/FTPS) must pass.
//! * [`proxy`] and [`shaping`]: TCP proxies in front of a real server — one
//!   that injects faults (cuts, an outage), one that shapes the link (a
//!   delay each way, a bandwidth cap) as a remote target would.

pub mod faulty;
pub mod fuzz;
pub mod http_faults;
pub mod proxy;
pub mod s3;
pub mod shaping;
pub mod storage;
pub mod tmpfs;
pub mod tree;

use std::path::Path;
use std::process::Command;

/// True when running under CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks that `program` is on the PATH. Returns false (after printing a loud
/// notice) when it is missing outside CI, so the caller can skip; panics under CI.
pub fn require_tool(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !in_ci(),
            "{program} is required under CI (scripts/services.sh installs it)"
        );
        eprintln!("SKIPPED: {program} is not installed; run scripts/services.sh up");
    }
    found
}

/// Whether the tests run as root (ownership and some metadata need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `restic check --read-data` on a local repository and panics with its
/// output unless it passes. Skips (loudly) only outside CI without restic.
pub fn restic_check(repo: &Path, password: &str) {
    // restic 0.14 locks exclusively for `check` and does not skip stale
    // locks: a lock file left by a process the test killed, or by one whose
    // target went down before it could remove it, would stop the check
    // before it reads anything. The repository's content is what is judged.
    restic_bytes(repo, password, &["--no-lock", "check", "--read-data"]);
}

/// Runs `restic` with the given arguments on a repository and returns stdout
/// as text (lossy).
pub fn restic(repo: &Path, password: &str, args: &[&str]) -> Option<String> {
    restic_bytes(repo, password, args).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Runs `restic` with the given arguments on a repository and returns the raw
/// stdout (for `restic dump`). Panics unless restic succeeds; `None` only when
/// restic is missing outside CI.
pub fn restic_bytes(repo: &Path, password: &str, args: &[&str]) -> Option<Vec<u8>> {
    if !require_tool("restic") {
        return None;
    }
    let out = run_restic(repo.as_os_str(), password, &[], args);
    assert!(
        out.status.success(),
        "restic {args:?} failed on {}:\n{}\n{}",
        repo.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

/// The value of a connection setting that `scripts/services.sh env` exports
/// (e.g. `COFFER_TEST_PG_HOST`). `None` (after a loud notice) when the
/// service is not running outside CI; panics under CI, where every service
/// the tests need must be up.
pub fn service_setting(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !in_ci(),
                "{var} is not set under CI: scripts/test.sh starts the services and exports it"
            );
            eprintln!(
                "SKIPPED: {var} is not set; run `scripts/services.sh up` and \
                 `eval \"$(scripts/services.sh env)\"` first"
            );
            None
        }
    }
}

/// Runs `restic` against a repository URL (e.g. `s3:http://…/bucket/prefix`)
/// with extra environment, panicking unless it succeeds. `None` only when
/// restic is missing outside CI.
pub fn restic_url(
    repo: &str,
    password: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Option<String> {
    if !require_tool("restic") {
        return None;
    }
    let out = run_restic(std::ffi::OsStr::new(repo), password, env, args);
    assert!(
        out.status.success(),
        "restic {args:?} failed on {repo}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs restic on `repo` with `env`.
fn run_restic(
    repo: &std::ffi::OsStr,
    password: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    Command::new("restic")
        .args(["--no-cache", "-r"])
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .envs(env.iter().copied())
        .output()
        .expect("running restic")
}
