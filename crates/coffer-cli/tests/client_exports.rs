//! Exports from the CLI against a real server — Auth0's backup, status,
//! retrieve (with its checksum check) and delete: `coffer backup export`,
//! `coffer export show | list | download | delete`. A download resumes from
//! where it stopped and is kept only when its SHA-256 and MD5 match the
//! server's record.

mod common;

use common::client::{coffer, expect, login_with_token};
use common::fixture::Fixture;
use serde_json::Value;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[test]
fn an_export_is_made_downloaded_verified_resumed_and_deleted_from_the_cli() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);
    let backup = f.backup_of(&["files"]);
    let password = "a long export passphrase";
    let pw_file = f.tmp.path().join("export-pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();

    // `a0cli backup --password`, followed to READY.
    let run = expect(
        &config,
        &[
            "backup",
            "export",
            &backup,
            "--password-file",
            pw_file.to_str().unwrap(),
            "--wait",
            "--json",
        ],
        0,
        password,
    );
    let export = run.json();
    assert_eq!(export["status"], "READY", "{export:#}");
    let id = export["id"].as_str().unwrap().to_owned();
    let human = expect(&config, &["export", "show", &id], 0, &admin).stdout;
    assert!(
        human.contains(export["sha256"].as_str().unwrap()),
        "{human}"
    );
    assert!(human.contains(export["md5"].as_str().unwrap()), "{human}");
    let list = expect(&config, &["export", "list", &backup, "--json"], 0, &admin).json();
    assert_eq!(list["exports"][0]["id"], id.as_str(), "{list:#}");

    // `a0cli backup-retrieve` + md5sum: downloaded and checked in one step.
    let work = f.tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dest = work.join("got.coffer");
    let dest_s = dest.to_str().unwrap();
    let got = expect(
        &config,
        &["export", "download", &id, "-o", dest_s, "--json"],
        0,
        &admin,
    )
    .json();
    assert_eq!(got["verified"], true);
    assert_eq!(got["resumed_at"], 0);
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(sha256_hex(&bytes), export["sha256"].as_str().unwrap());
    assert_eq!(bytes.len() as u64, export["size"].as_u64().unwrap());
    // An existing file is not replaced without --force.
    let run = expect(
        &config,
        &["export", "download", &id, "-o", dest_s],
        2,
        &admin,
    );
    assert!(run.stderr.contains("--force"), "{}", run.stderr);

    // Interrupted half-way (a `.part` left): the next run asks for the rest only.
    let part = work.join("got.coffer.part");
    let half = bytes.len() / 2;
    std::fs::write(&part, &bytes[..half]).unwrap();
    let got = expect(
        &config,
        &["export", "download", &id, "-o", dest_s, "--force", "--json"],
        0,
        &admin,
    )
    .json();
    assert_eq!(got["resumed_at"], half as u64, "{got:#}");
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert!(!part.exists());
    // A damaged `.part` is resumed too — and then refused as not matching,
    // removed, and the file already there left alone.
    let mut damaged = bytes[..half].to_vec();
    damaged[0] ^= 0xff;
    std::fs::write(&part, &damaged).unwrap();
    let run = expect(
        &config,
        &["export", "download", &id, "-o", dest_s, "--force"],
        1,
        &admin,
    );
    assert!(run.stderr.contains("SHA-256"), "{}", run.stderr);
    assert!(!part.exists(), "a download that does not match is removed");
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    // Without -o: the export's own name, in the current directory.
    let run = common::client::coffer_in(&work, &config, &["export", "download", &id], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let named = work.join(export["name"].as_str().unwrap());
    assert_eq!(std::fs::read(named).unwrap(), bytes);

    // `a0cli backup-delete`; afterwards the export is gone (404 → 10).
    expect(&config, &["export", "delete", &id], 0, &admin);
    let run = expect(
        &config,
        &[
            "export",
            "download",
            &id,
            "-o",
            work.join("x").to_str().unwrap(),
        ],
        10,
        &admin,
    );
    assert!(
        serde_json::from_str::<Value>(&run.stderr).is_err(),
        "plain text without --json"
    );
    // A token without `export` gets 403 → 9 and no file.
    let reader = f.srv.token(&["backups:read"], None, None);
    let env = [
        ("COFFER_URL", f.srv.url.as_str()),
        ("COFFER_TOKEN", reader.as_str()),
    ];
    let run = coffer(
        &config,
        &[
            "backup",
            "export",
            &backup,
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
        "",
        &env,
    );
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert!(!run.stderr.contains(&reader) && !run.stderr.contains(password));
}

#[test]
fn backups_with_a_password_and_auth0s_sensitive_backup_run_from_the_cli() {
    let f = Fixture::new("");
    let config = f.tmp.path().join("config");
    let admin = f.srv.admin.clone();
    login_with_token(&f, &config, &admin);
    let password = "0therPassw0rd! long enough";
    let pw_file = f.tmp.path().join("pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let pw = pw_file.to_str().unwrap();

    // Terraform Enterprise / Auth0 `backup --password`: the backup, then its export, followed.
    let run = expect(
        &config,
        &[
            "backup",
            "create",
            "--label",
            "tfe",
            "--component",
            "files",
            "--password-file",
            pw,
            "--wait",
        ],
        0,
        password,
    );
    assert!(run.stdout.contains(": READY"), "{}", run.stdout);
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("export ") && last.contains("coffer export download"),
        "{}",
        run.stdout
    );

    // Auth0's `backup-sensitive --password`: no backup record, only the export.
    let run = expect(
        &config,
        &[
            "backup",
            "create",
            "--sensitive",
            "--password-file",
            pw,
            "--wait",
            "--json",
        ],
        0,
        password,
    );
    let export = run.json();
    assert_eq!(export["status"], "READY", "{export:#}");
    assert_eq!(export["sensitive"], true);
    let id = export["id"].as_str().unwrap();
    let dest = f.tmp.path().join("sensitive.coffer");
    let got = expect(
        &config,
        &[
            "export",
            "download",
            id,
            "-o",
            dest.to_str().unwrap(),
            "--json",
        ],
        0,
        &admin,
    )
    .json();
    assert_eq!(got["sha256"], export["sha256"]);
    let run = expect(
        &config,
        &["backup", "create", "--sensitive", "--wait"],
        2,
        &admin,
    );
    assert!(run.stderr.contains("--password-file"), "{}", run.stderr);
}
