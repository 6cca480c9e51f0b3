//! Running the `coffer` client commands in tests: logins kept under a
//! test's own directory, no COFFER_* from the caller, and checks that no
//! secret given to the CLI is ever printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::fixture::Fixture;

/// What one run of `coffer` did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// `coffer ARGS` with its logins kept under `config` and no COFFER_* from
/// the caller's environment; `stdin` fed to it; `env` set.
pub fn coffer(config: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    spawn(None, config, args, stdin, env)
}

/// [`coffer`] run in the directory `dir`, with nothing on stdin.
pub fn coffer_in(dir: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    spawn(Some(dir), config, args, "", env)
}

fn spawn(
    dir: Option<&Path>,
    config: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("COFFER_URL")
        .env_remove("COFFER_TOKEN")
        .env_remove("COFFER_CA_FILE")
        .env_remove("COFFER_LOGIN_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run coffer");
    // A command that fails before it reads its input (an unreachable
    // server) closes stdin first: that is not the test's failure.
    let mut input = child.stdin.take().expect("stdin");
    if let Err(e) = input.write_all(stdin.as_bytes())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        panic!("feed stdin: {e}");
    }
    drop(input);
    let out = child.wait_with_output().expect("coffer ends");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and checks the exit code (and that `secret` appears nowhere).
pub fn expect(config: &Path, args: &[&str], code: i32, secret: &str) -> Run {
    let run = coffer(config, args, "", &[]);
    assert_eq!(
        run.code, code,
        "coffer {args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "coffer {args:?} printed a secret"
    );
    run
}

pub fn login_with_token(f: &Fixture, config: &Path, token: &str) {
    let run = coffer(
        config,
        &["login", &f.srv.url, "--token"],
        &format!("{token}\n"),
        &[],
    );
    assert_eq!(run.code, 0, "login: {}", run.stderr);
    assert!(run.stdout.contains("logged in to"), "{}", run.stdout);
    assert!(!run.stdout.contains(token) && !run.stderr.contains(token));
}

pub fn contexts_file(config: &Path) -> PathBuf {
    config.join("coffer").join("contexts.json")
}
