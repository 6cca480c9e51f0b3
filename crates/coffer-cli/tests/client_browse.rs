//! Browsing a backup from the CLI (`coffer backup ls`, over
//! `GET /api/v1/backups/{id}/components/{name}/tree`) against a real server:
//! the entries of a directory, the path rules, stream and sealed components,
//! and the scope and component limits.

mod common;

use common::client::{coffer, expect, login_with_token};
use common::fixture::Fixture;
use serde_json::Value;

#[test]
fn a_backup_is_browsed_directory_by_directory_within_the_rules() {
    let f = Fixture::new("");
    let files = f.tmp.path().join("files");
    std::fs::create_dir_all(files.join("sub/deep")).unwrap();
    std::fs::write(files.join("sub/b.txt"), b"hello there").unwrap();
    std::fs::write(files.join("sub/deep/c"), b"c").unwrap();
    std::os::unix::fs::symlink("a", files.join("link")).unwrap();
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);
    let id = f.backup_of(&["files", "other", "keys"]);

    let top = expect(
        &config,
        &["backup", "ls", &id, "files", "--json"],
        0,
        &admin,
    )
    .json();
    let entries = top["entries"].as_array().unwrap();
    let named = |n: &str| {
        entries
            .iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {top:#}"))
    };
    assert_eq!(named("a")["kind"], "file");
    assert_eq!(named("a")["size"], 1);
    assert_eq!(named("sub")["kind"], "dir");
    assert_eq!(named("link")["kind"], "symlink");
    assert_eq!(named("link")["link_target"], "a");
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "link", "sub"], "by name");
    let sub = expect(&config, &["backup", "ls", &id, "files", "sub"], 0, &admin).stdout;
    assert!(sub.contains("b.txt") && sub.contains("deep/"), "{sub}");
    assert!(
        sub.lines()
            .any(|l| l.starts_with("f0") && l.contains("11 B")),
        "{sub}"
    );
    let deep = expect(
        &config,
        &["backup", "ls", &id, "files", "sub/deep/", "--json"],
        0,
        &admin,
    )
    .json();
    assert_eq!(deep["entries"][0]["name"], "c");

    // The path rules: a file is not a directory (422 → 2), a missing path 404 → 10,
    // anything but plain names refused with the field named.
    let run = expect(
        &config,
        &["backup", "ls", &id, "files", "sub/b.txt"],
        2,
        &admin,
    );
    assert!(run.stderr.contains("not a directory"), "{}", run.stderr);
    expect(
        &config,
        &["backup", "ls", &id, "files", "nothing/here"],
        10,
        &admin,
    );
    for bad in ["../x", "/etc", "sub/../sub", "sub//deep"] {
        let run = expect(
            &config,
            &["backup", "ls", &id, "files", bad, "--json"],
            2,
            &admin,
        );
        let err: Value = serde_json::from_str(&run.stderr).unwrap();
        assert!(
            err["message"].as_str().unwrap().starts_with("path: "),
            "{bad}: {err}"
        );
    }
    // A stream component has no tree; a sealed one cannot be read by the server.
    let run = expect(&config, &["backup", "ls", &id, "other"], 2, &admin);
    assert!(run.stderr.contains("stream"), "{}", run.stderr);
    let run = expect(&config, &["backup", "ls", &id, "keys"], 11, &admin);
    assert!(run.stderr.contains("sealed"), "{}", run.stderr);
    expect(&config, &["backup", "ls", &id, "nothing"], 10, &admin);

    // Scopes and limits: another component's token, and no `sensitive`, are refused (403 → 9).
    let others = f.srv.token(&["backups:read"], Some(&["other"]), None);
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", others.as_str()),
    ];
    let run = coffer(&config, &["backup", "ls", &id, "files"], "", &env);
    assert_eq!(run.code, 9, "{}", run.stderr);
    let reader = f.srv.token(&["backups:read"], None, None);
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", reader.as_str()),
    ];
    let run = coffer(&config, &["backup", "ls", &id, "keys"], "", &env);
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert!(run.stderr.contains("sensitive"), "{}", run.stderr);
    let run = coffer(&config, &["backup", "ls", &id, "files", "--json"], "", &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn one_file_or_directory_is_restored_back_in_place_or_into_a_chosen_path() {
    let f = Fixture::new("");
    let files = f.tmp.path().join("files");
    std::fs::create_dir_all(files.join("docs/2024/deep")).unwrap();
    std::fs::write(files.join("docs/2024/report.txt"), b"report").unwrap();
    std::fs::write(files.join("docs/2024/deep/x"), b"x").unwrap();
    std::fs::write(files.join("docs/readme"), b"readme").unwrap();
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);
    let id = f.backup_of(&["files", "other", "keys"]);
    let restore = |args: &[&str], code: i32| {
        let mut all = vec!["backup", "restore", &id];
        all.extend_from_slice(args);
        all.push("--wait");
        expect(&config, &all, code, &admin)
    };

    // A directory into a chosen path: <path>/2024, nothing else.
    let chosen = f.root().join("chosen");
    let set = format!("files.path={}", chosen.display());
    restore(&["--part", "files=docs/2024", "--set", &set], 0);
    assert_eq!(
        std::fs::read(chosen.join("2024/report.txt")).unwrap(),
        b"report"
    );
    assert_eq!(std::fs::read(chosen.join("2024/deep/x")).unwrap(), b"x");
    assert_eq!(
        std::fs::read_dir(&chosen).unwrap().count(),
        1,
        "only the part"
    );

    // One damaged file back in place: only it is replaced; what was written since stays.
    std::fs::write(files.join("docs/2024/report.txt"), b"damaged").unwrap();
    std::fs::write(files.join("docs/2024/since"), b"since").unwrap();
    let refused = restore(&["--part", "files=docs/2024/report.txt"], 5);
    assert!(
        refused.stdout.contains("not empty") || refused.stderr.contains("not empty"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    restore(
        &[
            "--part",
            "files=docs/2024/report.txt",
            "--mode",
            "overwrite",
        ],
        0,
    );
    assert_eq!(
        std::fs::read(files.join("docs/2024/report.txt")).unwrap(),
        b"report"
    );
    assert_eq!(
        std::fs::read(files.join("docs/2024/since")).unwrap(),
        b"since"
    );
    assert_eq!(std::fs::read(files.join("docs/readme")).unwrap(), b"readme");
    // A directory deleted since the backup comes back.
    std::fs::remove_dir_all(files.join("docs/2024")).unwrap();
    restore(&["--part", "files=docs/2024/deep/x"], 0);
    assert_eq!(std::fs::read(files.join("docs/2024/deep/x")).unwrap(), b"x");

    // Refused with the field named, nothing restored.
    let before = f.srv.admin("GET", "/api/v1/restores", None).1["restores"]
        .as_array()
        .unwrap()
        .len();
    for (args, code, says) in [
        (
            vec!["--part", "files=docs/missing"],
            2,
            "parts.files: \"docs/missing\" is not in the backup",
        ),
        (vec!["--part", "files=docs/../readme"], 2, "parts.files"),
        (vec!["--part", "files=/etc/passwd"], 2, "parts.files"),
        (
            vec!["--part", "other=x"],
            2,
            "parts.other: only files components",
        ),
        (
            vec!["--part", "files=docs/readme", "--mode", "mirror"],
            2,
            "options.mode: mirror",
        ),
        (
            vec!["--part", "files=docs/readme", "--component", "other"],
            2,
            "parts.files: that component is not being restored",
        ),
        (
            vec!["--part", "keys=k"],
            11,
            "parts.keys: component keys is sealed",
        ),
    ] {
        let mut all = vec!["backup", "restore", id.as_str()];
        all.extend_from_slice(&args);
        let run = expect(&config, &all, code, &admin);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    // A symbolic link in the live tree that leads out of the component: refused (403).
    std::fs::remove_dir_all(files.join("docs")).unwrap();
    let elsewhere = f.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, files.join("docs")).unwrap();
    let run = expect(
        &config,
        &[
            "backup",
            "restore",
            &id,
            "--part",
            "files=docs/readme",
            "--mode",
            "overwrite",
        ],
        9,
        &admin,
    );
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
    let after = f.srv.admin("GET", "/api/v1/restores", None).1["restores"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "no refused request started a restore");
}
