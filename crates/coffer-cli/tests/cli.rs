//! The `coffer` binary end to end: exit codes, JSON output, crash safety and
//! corruption handling, judged by plain `restic` where it matters.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{is_root, restic_check};
use serde_json::Value;

const PW: &str = "cli test password";

fn coffer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coffer"));
    c.env_remove("COFFER_PASSWORD")
        .env_remove("COFFER_REPOSITORY")
        .env_remove("COFFER_PASSWORD_FILE")
        .stdin(Stdio::null());
    c
}

struct Fixture {
    tmp: tempfile::TempDir,
    repo: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let f = Self { tmp, repo };
        let out = f.run(&["init"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = coffer();
        c.arg("repo")
            .arg("--repo")
            .arg(&self.repo)
            .arg("--json")
            .args(args);
        c.env("COFFER_PASSWORD", PW);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "coffer {args:?}: {}",
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn error_kind(o: &Output) -> String {
    let line = stderr(o);
    let v: Value = serde_json::from_str(line.lines().last().unwrap_or("{}")).unwrap_or_default();
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn backup_list_restore_check_through_the_cli() {
    let f = Fixture::new();
    let src = f.path("src");
    tree::build_rich_tree(&src);
    let cmd_arg = "db=printf 'CREATE TABLE t;'";
    let res = f.json(&[
        "backup",
        "--label",
        "nightly",
        "--dir",
        &format!("files={}", src.display()),
        "--command",
        cmd_arg,
    ]);
    assert_eq!(res["complete"], true);
    let backup_id = res["backup_id"].as_str().unwrap().to_owned();
    assert!(backup_id.starts_with("nightly-"));
    let comps = res["components"].as_array().unwrap();
    assert_eq!(comps.len(), 2);

    let snaps = f.json(&["snapshots", "--backup", &backup_id]);
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|s| s["backup"]["component_count"] == 2));
    let files = snaps
        .iter()
        .find(|s| s["backup"]["component"] == "files")
        .unwrap();
    let db = snaps
        .iter()
        .find(|s| s["backup"]["component"] == "db")
        .unwrap();

    let dest = f.path("restored");
    f.json(&[
        "restore",
        files["id"].as_str().unwrap(),
        "--target",
        dest.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &dest);

    // non-empty target refused with a usage exit code
    let again = f.run(&[
        "restore",
        files["id"].as_str().unwrap(),
        "--target",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(error_kind(&again), "destination_not_empty");

    let out_file = f.path("db.sql");
    f.json(&[
        "restore",
        db["id"].as_str().unwrap(),
        "--output",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&out_file).unwrap(), b"CREATE TABLE t;");

    let check = f.json(&["check", "--read-data", "1/3"]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0);

    // forget the whole backup and prune
    let forgot = f.json(&["forget", "--backup", &backup_id, "--prune"]);
    assert_eq!(forgot["removed"], 2);
    assert_eq!(f.json(&["snapshots"]).as_array().unwrap().len(), 0);
    restic_check(&f.repo, PW);
}

#[test]
fn exit_codes_for_common_mistakes() {
    let f = Fixture::new();
    // wrong password: 4
    let mut c = f.cmd(&["snapshots"]);
    c.env("COFFER_PASSWORD", "nope");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(error_kind(&out), "wrong_password");
    // missing repository: 3
    let out = coffer()
        .args([
            "repo",
            "--repo",
            "/nonexistent/coffer/repo",
            "--json",
            "snapshots",
        ])
        .env("COFFER_PASSWORD", PW)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/coffer/repo"));
    // no password and no terminal: usage (2), with a hint
    let out = coffer()
        .args(["repo", "--repo"])
        .arg(&f.repo)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--password-file"), "{}", stderr(&out));
    // password file
    let pwf = f.path("pw");
    fs::write(&pwf, format!("{PW}\n")).unwrap();
    let out = coffer()
        .args(["repo", "--json", "--repo"])
        .arg(&f.repo)
        .arg("--password-file")
        .arg(&pwf)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // bad label: 2, with the rule, before anything happens
    let out = f.run(&["backup", "--label", "..no", "--dir", "x=/tmp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("3 to 25"), "{}", stderr(&out));
    // unknown flag: clap's usage error, 2
    let out = f.run(&["backup", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    // a failing command component: partial failure, 5, nothing recorded
    let out = f.run(&["backup", "--command", "db=echo oops >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["complete"], false);
    assert!(
        v["components"][0]["error"]
            .as_str()
            .unwrap()
            .contains("oops")
    );
    assert_eq!(f.json(&["snapshots"]).as_array().unwrap().len(), 0);
}

#[test]
fn keys_through_the_cli() {
    let f = Fixture::new();
    // COFFER_PASSWORD opens the repository; it is never taken as the new
    // password: without a terminal or a new-password source, key add fails.
    let out = f
        .cmd(&["key", "add"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no new password"), "{}", stderr(&out));
    assert_eq!(f.json(&["key", "list"]).as_array().unwrap().len(), 1);
    let newpw = f.path("newpw");
    fs::write(&newpw, "another one\n").unwrap();
    let added = f.json(&["key", "add", "--new-password-file", newpw.to_str().unwrap()]);
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(f.json(&["key", "list"]).as_array().unwrap().len(), 2);
    let mut c = f.cmd(&["key", "list"]);
    c.env("COFFER_PASSWORD", "another one");
    assert!(c.output().unwrap().status.success());
    f.json(&["key", "remove", &id]);
    assert_eq!(f.json(&["key", "list"]).as_array().unwrap().len(), 1);
}

/// Copies the binary where an unprivileged user can run it.
fn binary_for_others(dir: &Path) -> PathBuf {
    let bin = dir.join("coffer");
    fs::copy(env!("CARGO_BIN_EXE_coffer"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn an_unreadable_file_fails_the_backup_and_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.path().join("src");
    tree::write(&src.join("readable.txt"), b"fine");
    tree::write(&src.join("secret.txt"), b"cannot read me");
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let repo = tmp.path().join("repo");
    // As root every file is readable: run the backup as an unprivileged user.
    let (bin, wrap): (PathBuf, Vec<&str>) = if is_root() {
        (
            binary_for_others(tmp.path()),
            vec!["runuser", "-u", "nobody", "--"],
        )
    } else {
        (PathBuf::from(env!("CARGO_BIN_EXE_coffer")), vec![])
    };
    if is_root() {
        for p in [&src, &src.join("readable.txt")] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
        fs::create_dir(&repo).unwrap();
        std::os::unix::fs::chown(&repo, Some(65534), Some(65534)).unwrap();
    }
    let run = |args: &[&str]| -> Output {
        let mut c = if wrap.is_empty() {
            Command::new(&bin)
        } else {
            let mut c = Command::new(wrap[0]);
            c.args(&wrap[1..]).arg(&bin);
            c
        };
        c.args(["repo", "--json", "--repo"]).arg(&repo).args(args);
        c.env("COFFER_PASSWORD", PW)
            .env("HOME", tmp.path())
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    assert!(run(&["init"]).status.success());
    let out = run(&["backup", "--dir", &format!("files={}", src.display())]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = v["components"][0]["error"].as_str().unwrap();
    assert!(
        err.contains("secret.txt") && err.contains("ermission denied"),
        "{err}"
    );
    let snaps: Value = serde_json::from_slice(&run(&["snapshots"]).stdout).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        0,
        "an incomplete backup is never recorded"
    );
    restic_check(&repo, PW);
}

fn make_crash_dataset(src: &Path) {
    // ~100 MiB in large and small files: long enough that kills land in every
    // phase of a backup (walking, chunking, pack uploads, index, snapshot).
    for i in 0..24u64 {
        tree::write(
            &src.join(format!("big/{i:02}.bin")),
            &tree::random_bytes(100 + i, 4 << 20),
        );
    }
    for i in 0..2000u64 {
        tree::write(
            &src.join(format!("small/{}/{i}.txt", i % 20)),
            format!("small file {i}\n")
                .repeat((i % 50 + 1) as usize)
                .as_bytes(),
        );
    }
}

#[test]
fn kill_9_at_random_moments_never_damages_the_repository() {
    let f = Fixture::new();
    let src = f.path("src");
    make_crash_dataset(&src);

    // How long does an uninterrupted backup take? (done into a scratch repo)
    let scratch = Fixture::new();
    let t0 = Instant::now();
    scratch.json(&["backup", "--dir", &format!("files={}", src.display())]);
    let full = t0.elapsed();

    // Deterministic "random" moments spread over the whole backup. Every round
    // backs up a new component (no parent: the whole tree is read and chunked
    // again) and the tree gains 16 MiB of new data (so packs are uploaded), so
    // each round does about as much work as the measured one.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    let mut verified = std::collections::HashSet::new();
    for round in 0..12u64 {
        tree::write(
            &src.join(format!("new/{round}.bin")),
            &tree::random_bytes(1000 + round, 16 << 20),
        );
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Up to 1.25 × the measured time, so some rounds finish and their
        // snapshots are verified too.
        let at = full.mul_f64((x % 1000) as f64 / 1000.0 * 1.25);
        let dir_arg = format!("c{round}={}", src.display());
        let mut child = f
            .cmd(&["backup", "--label", "crash", "--dir", &dir_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if killed {
            kills += 1;
        }
        eprintln!(
            "round {round}: kill at {at:?} of {full:?} ({})",
            if killed { "killed" } else { "had finished" }
        );
        restic_check(&f.repo, PW);
        // A snapshot that exists must be complete: it restores exactly. Only
        // this round's backup can have added one.
        for s in f.json(&["snapshots"]).as_array().unwrap() {
            let id = s["id"].as_str().unwrap().to_owned();
            if !verified.insert(id.clone()) {
                continue;
            }
            let dest = f.path(&format!("check-{round}"));
            f.json(&["restore", &id, "--target", dest.to_str().unwrap()]);
            assert_same_tree(&src, &dest);
            fs::remove_dir_all(&dest).unwrap();
        }
    }
    assert!(kills >= 6, "only {kills} rounds were killed mid-backup");
    // The killed processes left lock objects; being dead on this host, they
    // are stale (`repo locks` says so) and do not block this backup, which
    // restores exactly.
    let locks = f.json(&["locks"]);
    let locks = locks.as_array().unwrap();
    assert!(locks.iter().all(|l| l["stale"] == true), "{locks:?}");
    let res = f.json(&[
        "backup",
        "--label",
        "after",
        "--dir",
        &format!("files={}", src.display()),
    ]);
    let id = res["components"][0]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dest = f.path("final");
    f.json(&["restore", &id, "--target", dest.to_str().unwrap()]);
    assert_same_tree(&src, &dest);
    restic_check(&f.repo, PW);
}

#[test]
fn corruption_is_named_by_check_and_never_restored_silently() {
    let f = Fixture::new();
    let src = f.path("src");
    tree::write(&src.join("data.bin"), &tree::random_bytes(9, 3_000_000));
    let res = f.json(&["backup", "--dir", &format!("files={}", src.display())]);
    let id = res["components"][0]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let packs: Vec<_> = tree::walk(&f.repo.join("data"))
        .into_iter()
        .filter(|(_, e)| e.kind == "file")
        .collect();
    let (rel, _) = packs.iter().max_by_key(|(_, e)| e.size).unwrap();
    let pack = f.repo.join("data").join(rel);
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x80;
    fs::write(&pack, bytes).unwrap();

    let out = f.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].to_string();
    assert!(
        errors.contains(&name[..8]),
        "damaged pack {name} not named in {errors}"
    );

    let dest = f.path("dest");
    let out = f.run(&["restore", &id, "--target", dest.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!dest.exists(), "no partial restore at the destination");
    // the stream path: dump to a file fails too and leaves no file
    let out_file = f.path("out.bin");
    let _ = Duration::from_secs(0);
    let out = f.run(&["restore", &id, "--output", out_file.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!out_file.exists());
}

/// Writes a lock object as another Coffer process would.
fn plant_lock(repo: &Path, mode: &str, pid: u32, refreshed_ago: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let id = format!("{:032x}", u128::from(pid) << 64 | u128::from(now));
    let body = serde_json::json!({
        "id": id, "mode": mode, "owner": "prune", "host": host.trim(), "pid": pid,
        "created": now - refreshed_ago, "refreshed": now - refreshed_ago,
    });
    fs::create_dir_all(repo.join("coffer/locks")).unwrap();
    fs::write(
        repo.join(format!("coffer/locks/{id}.json")),
        body.to_string(),
    )
    .unwrap();
}

#[test]
fn locks_block_or_are_cleared_by_the_stale_rule() {
    let f = Fixture::new();
    let src = f.path("src");
    tree::write(&src.join("a"), b"a");
    let dir_arg = format!("files={}", src.display());

    // a live exclusive holder (this test process) blocks a backup: exit 6
    plant_lock(&f.repo, "exclusive", std::process::id(), 0);
    let out = f.run(&["backup", "--dir", &dir_arg]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("prune") && stderr(&out).contains("locked"),
        "{}",
        stderr(&out)
    );
    let locks = f.json(&["locks"]);
    assert_eq!(locks[0]["stale"], false);
    assert!(f.json(&["snapshots"]).as_array().unwrap().is_empty());
    for e in fs::read_dir(f.repo.join("coffer/locks")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }

    // a holder that has not refreshed for 11 minutes is stale and removed
    plant_lock(&f.repo, "exclusive", std::process::id(), 11 * 60);
    assert_eq!(f.json(&["locks"])[0]["stale"], true);
    f.json(&["backup", "--dir", &dir_arg]);
    assert!(f.json(&["locks"]).as_array().unwrap().is_empty());

    // so is one of a process on this host that no longer exists
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    plant_lock(&f.repo, "exclusive", dead, 0);
    f.json(&["backup", "--dir", &dir_arg]);
    assert!(f.json(&["locks"]).as_array().unwrap().is_empty());
}

#[test]
fn components_from_a_config_file_back_up_and_restore() {
    let f = Fixture::new();
    let files = f.path("app/files");
    tree::write(&files.join("a.txt"), b"hello");
    let conf = f.path("coffer.toml");
    fs::write(
        &conf,
        format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = {files:?}\n\n\
             [[components]]\nname = \"broken\"\nkind = \"command\"\n\
             backup = [\"sh\", \"-c\", \"echo partial; echo 'dump: server gone' >&2; exit 2\"]\n"
        ),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();

    // One failing component: exit 5, the other component recorded, the
    // failed one named with the tool's message.
    let out = f.run(&["backup", "--config", conf_s, "--label", "nightly"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["complete"], false);
    let broken = &v["components"][1];
    assert_eq!(broken["component"], "broken");
    assert!(
        broken["error"].as_str().unwrap().contains("server gone"),
        "{v}"
    );

    // Only the good component: complete.
    let v = f.json(&["backup", "--config", conf_s, "--component", "files"]);
    assert_eq!(v["complete"], true);
    let snap = v["components"][0]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Restore through the config into a new installation's path.
    let other = f.path("new/files");
    let conf2 = f.path("new.toml");
    fs::write(
        &conf2,
        format!("[[components]]\nname = \"files\"\nkind = \"files\"\npath = {other:?}\n"),
    )
    .unwrap();
    let out = f.run(&["restore", &snap, "--config", conf2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same_tree(&files, &other);
    // Again, as `latest`: the path is not empty now, a usage error (2).
    let out = f.run(&[
        "restore",
        "latest",
        "--component",
        "files",
        "--config",
        conf2.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));

    // Unknown component and invalid config: usage errors before any work.
    let out = f.run(&["backup", "--config", conf_s, "--component", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no component") && stderr(&out).contains("nope"),
        "{}",
        stderr(&out)
    );
    fs::write(
        &conf,
        "[[components]]\nname = \"x\"\nkind = \"postgress\"\n",
    )
    .unwrap();
    let out = f.run(&["backup", "--config", conf_s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown variant `postgress`"),
        "{}",
        stderr(&out)
    );
    restic_check(&f.repo, PW);
}

#[test]
fn validate_and_use_network_targets_from_the_cli() {
    // Local: validate needs no password.
    let tmp = tempfile::tempdir().unwrap();
    let out = coffer()
        .args(["repo", "--json", "--repo"])
        .arg(tmp.path().join("new"))
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    // An unknown scheme is a usage error.
    let out = coffer()
        .args(["repo", "--repo", "sftp2://x/y", "validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // S3 (Garage), credentials from the environment as restic takes them.
    let (Some(endpoint), Some(key), Some(secret), Some(bucket)) = (
        coffer_testkit::service_setting("COFFER_TEST_S3_ENDPOINT"),
        coffer_testkit::service_setting("COFFER_TEST_S3_ACCESS_KEY"),
        coffer_testkit::service_setting("COFFER_TEST_S3_SECRET_KEY"),
        coffer_testkit::service_setting("COFFER_TEST_S3_BUCKET"),
    ) else {
        return;
    };
    let repo = format!("s3:{endpoint}/{bucket}/cli-{}", std::process::id());
    let run = |args: &[&str], secret: &str| {
        coffer()
            .args(["repo", "--json", "--repo", &repo])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "garage")
            .env("COFFER_PASSWORD", PW)
            .output()
            .unwrap()
    };
    let out = run(&["validate"], &secret);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["validate"], &"0".repeat(64));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["steps"][0]["message"].as_str().unwrap().contains("403"),
        "{v}"
    );
    let src = tmp.path().join("src");
    tree::write(&src.join("a.txt"), b"through s3");
    assert_eq!(run(&["init"], &secret).status.code(), Some(0));
    let out = run(
        &["backup", "--dir", &format!("files={}", src.display())],
        &secret,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["check", "--read-data"], &secret);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn sealed_components_through_the_cli() {
    let f = Fixture::new();
    let keys = f.path("keys");
    tree::write(&keys.join("signing.pem"), b"-----BEGIN PRIVATE KEY-----");
    let identity = coffer_engine::AgeIdentity::generate();
    let id_file = f.path("coffer-sensitive.key");
    fs::write(
        &id_file,
        format!(
            "# public key: {}\n{}\n",
            identity.recipient(),
            identity.secret()
        ),
    )
    .unwrap();
    let config = f.path("coffer.toml");
    let component = format!(
        "[[components]]\nname = \"keys\"\nkind = \"files\"\nsensitive = true\npath = \"{}\"\n",
        keys.display()
    );
    fs::write(&config, &component).unwrap();
    // A sensitive component with nothing to seal to is refused, nothing written.
    let out = f.run(&["backup", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--age-recipient"), "{}", stderr(&out));
    assert_eq!(f.json(&["snapshots"]).as_array().unwrap().len(), 0);

    // [sensitive] recipients in the config file seal it.
    fs::write(
        &config,
        format!(
            "[sensitive]\nrecipients = [\"{}\"]\n\n{component}",
            identity.recipient()
        ),
    )
    .unwrap();
    let res = f.json(&["backup", "--config", config.to_str().unwrap()]);
    let snap = &res["components"][0]["snapshot"];
    assert_eq!(snap["sealed"], true, "{res}");
    assert_eq!(snap["paths"][0], "keys.tar.age");
    let id = snap["id"].as_str().unwrap();

    let dest = f.path("restored");
    let out = f.run(&["restore", id, "--target", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(error_kind(&out), "sealed");
    assert!(!dest.exists());
    f.json(&[
        "restore",
        id,
        "--target",
        dest.to_str().unwrap(),
        "--age-identity",
        id_file.to_str().unwrap(),
    ]);
    assert_same_tree(&keys, &dest);

    // --seal with --age-recipient seals ad-hoc components too.
    let res = f.json(&[
        "backup",
        "--command",
        "token=printf s3cr3t",
        "--seal",
        "--age-recipient",
        &identity.recipient(),
    ]);
    let snap = &res["components"][0]["snapshot"];
    assert_eq!(snap["paths"][0], "token.age", "{res}");
    let out_file = f.path("token.txt");
    f.json(&[
        "restore",
        snap["id"].as_str().unwrap(),
        "--output",
        out_file.to_str().unwrap(),
        "--age-identity",
        id_file.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&out_file).unwrap(), b"s3cr3t");
    restic_check(&f.repo, PW);
}
