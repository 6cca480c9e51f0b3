//! Files from here restored by a server, from the CLI: Terraform
//! Enterprise's migration (`coffer restore upload` of an export made on
//! another installation) and FlowG's per-component backup and restore
//! (`coffer component download | restore`).

mod common;

use common::client::{coffer, expect, login_with_token};
use common::fixture::Fixture;

#[test]
fn an_export_from_one_installation_is_restored_into_another_from_the_cli() {
    let a = Fixture::new("");
    let b = Fixture::new("");
    let config = a.tmp.path().join("config");
    let password = "a long export passphrase";
    let pw = a.tmp.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let pw = pw.to_str().unwrap();

    // On A: back up, export, download.
    login_with_token(&a, &config, &a.srv.admin);
    let backup = a.backup_of(&["files"]);
    let export = expect(
        &config,
        &[
            "backup",
            "export",
            &backup,
            "--password-file",
            pw,
            "--wait",
            "--json",
        ],
        0,
        password,
    )
    .json();
    let file = a.tmp.path().join("moved.coffer");
    let id = export["id"].as_str().unwrap();
    expect(
        &config,
        &["export", "download", id, "-o", file.to_str().unwrap()],
        0,
        password,
    );

    // On B (a context of its own): upload it, into an allowed place, followed to the end.
    let run = coffer(
        &config,
        &["login", &b.srv.url, "--token", "--context", "new"],
        &format!("{}\n", b.srv.admin),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dest = b.root().join("moved");
    let set = format!("files.path={}", dest.display());
    let done = expect(
        &config,
        &[
            "restore",
            "upload",
            file.to_str().unwrap(),
            "--password-file",
            pw,
            "--component",
            "files",
            "--set",
            &set,
            "--wait",
            "--json",
            "--context",
            "new",
        ],
        0,
        password,
    )
    .json();
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"a");
    // The wrong password: refused (422 → 2), nothing restored.
    let wrong = a.tmp.path().join("wrong");
    std::fs::write(&wrong, "not the export passphrase\n").unwrap();
    let run = expect(
        &config,
        &[
            "restore",
            "upload",
            file.to_str().unwrap(),
            "--password-file",
            wrong.to_str().unwrap(),
            "--context",
            "new",
        ],
        2,
        password,
    );
    assert!(run.stderr.contains("password"), "{}", run.stderr);
    // The offline form is unchanged: it still needs its config.
    let run = coffer(
        &config,
        &["restore", "--from-file", file.to_str().unwrap()],
        "",
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn flowgs_component_backup_and_restore_run_from_the_cli() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    login_with_token(&f, &config, &f.srv.admin);
    let work = f.tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let tar = work.join("files.tar");
    let got = expect(
        &config,
        &[
            "component",
            "download",
            "files",
            "-o",
            tar.to_str().unwrap(),
            "--json",
        ],
        0,
        &f.srv.admin,
    )
    .json();
    assert!(got["size"].as_u64().unwrap() > 0, "{got:#}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&tar).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Without -o: the server's name for it, here.
    let run = common::client::coffer_in(&work, &config, &["component", "download", "files"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(work.join("files.tar").exists());

    std::fs::write(f.tmp.path().join("files").join("a"), b"changed").unwrap();
    let run = expect(
        &config,
        &[
            "component",
            "restore",
            "files",
            tar.to_str().unwrap(),
            "--mode",
            "overwrite",
            "--wait",
        ],
        0,
        &f.srv.admin,
    );
    assert!(
        run.stdout.lines().last().unwrap().ends_with(": READY"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(f.tmp.path().join("files").join("a")).unwrap(),
        b"a"
    );

    // Scopes hold: no `export`, no download (403 → 9); an unknown component is 404 → 10.
    let reader = f.srv.token(&["backups:read"], None, None);
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", reader.as_str()),
    ];
    let run = coffer(
        &config,
        &[
            "component",
            "download",
            "files",
            "-o",
            work.join("x").to_str().unwrap(),
        ],
        "",
        &env,
    );
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert!(!work.join("x").exists() && !work.join("x.part").exists());
    expect(
        &config,
        &[
            "component",
            "download",
            "nothing",
            "-o",
            work.join("y").to_str().unwrap(),
        ],
        10,
        &f.srv.admin,
    );
}
