//! `coffer server` end to end, exports: files that open with standard tools, sensitive exports apart, the Terraform Enterprise call and expiry.
//! The real binary on a free loopback port, driven over HTTP (and curl),
//! with real servers; repositories judged by plain `restic`.

use std::path::Path;
use std::time::Duration;

mod common;

use coffer_testkit::tree::{assert_same_tree, build_rich_tree};
use common::*;
use serde_json::{Value, json};

/// Opens an export with standard tools only: `age -d` (the passphrase typed
/// into a pseudo-terminal by `script`, since age reads it only from a
/// terminal — or an identity file), `zstd -d`, `tar x`. Returns the directory.
fn open_with_standard_tools(file: &Path, secret: Result<&str, &Path>, into: &Path) -> Value {
    std::fs::create_dir_all(into).unwrap();
    let plain = into.join("export.tar.zst");
    match secret {
        Ok(passphrase) => {
            let cmd = format!("age -d -o '{}' '{}'", plain.display(), file.display());
            let typed = format!("{passphrase}\n");
            run_tool(
                "script",
                &["-qec", &cmd, "/dev/null"],
                Some(typed.as_bytes()),
            );
        }
        Err(identity) => {
            run_tool(
                "age",
                &[
                    "-d",
                    "-i",
                    identity.to_str().unwrap(),
                    "-o",
                    plain.to_str().unwrap(),
                    file.to_str().unwrap(),
                ],
                None,
            );
        }
    }
    let tar = into.join("export.tar");
    run_tool(
        "zstd",
        &[
            "-q",
            "-d",
            plain.to_str().unwrap(),
            "-o",
            tar.to_str().unwrap(),
        ],
        None,
    );
    run_tool(
        "tar",
        &[
            "-x",
            "-f",
            tar.to_str().unwrap(),
            "-C",
            into.to_str().unwrap(),
        ],
        None,
    );
    serde_json::from_slice(&std::fs::read(into.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn exports_open_with_standard_tools_and_keep_sensitive_components_apart() {
    if !coffer_testkit::require_tool("age") || !coffer_testkit::require_tool("script") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    build_rich_tree(&files);
    let db = tmp.path().join("app.sqlite");
    sqlite_db(&db, 200);
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("signing.pem"), b"-----BEGIN PRIVATE KEY-----").unwrap();
    let identity = coffer_engine::AgeIdentity::generate();
    let id_file = tmp.path().join("identity.txt");
    std::fs::write(&id_file, format!("{}\n", identity.secret())).unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "[sensitive]\nrecipients = [\"{}\"]\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"keys\"\nkind = \"files\"\nsensitive = true\npath = \"{}\"\n",
            identity.recipient(),
            files.display(),
            db.display(),
            keys.display()
        ),
    );
    let srv = Server::start(&config);
    let b = srv.backup(&json!({ "label": "nightly" }));
    assert_eq!(b["status"], "READY", "{b:#}");
    let id = b["id"].as_str().unwrap().to_owned();

    // Bad requests: no protection, both, a short password, an unknown backup.
    for (body, code) in [
        (json!({}), 422),
        (
            json!({ "password": "correct horse battery", "age_recipient": identity.recipient() }),
            422,
        ),
        (json!({ "password": "short" }), 422),
        (json!({ "age_recipient": "age1nope" }), 422),
    ] {
        let (c, v) = srv.admin(
            "POST",
            &format!("/api/v1/backups/{id}/exports"),
            Some(&body),
        );
        assert_eq!(c, code, "{body}: {v}");
    }
    let (c, _) = srv.admin(
        "POST",
        "/api/v1/backups/nope-1/exports",
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(c, 404);
    // Permissions: `export` on every component; `sensitive` for the sensitive export.
    let reader = srv.token(&["backups:read"], None, None);
    let (c, _) = srv.call(
        "POST",
        &format!("/api/v1/backups/{id}/exports"),
        Some(&reader),
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(c, 403);
    let partial = srv.token(&["export"], Some(&["files"]), None);
    let (c, _) = srv.call(
        "POST",
        &format!("/api/v1/backups/{id}/exports"),
        Some(&partial),
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(c, 403, "appdb is not the token's");
    let exporter = srv.token(&["export"], None, None);
    let (c, _) = srv.call(
        "POST",
        &format!("/api/v1/backups/{id}/exports"),
        Some(&exporter),
        Some(&json!({ "password": "correct horse battery", "sensitive": true })),
    );
    assert_eq!(c, 403, "sensitive needs the scope");

    // The normal export, with a passphrase: status, name, checksums.
    let e = srv.export(&id, &json!({ "password": "correct horse battery" }));
    assert_eq!(e["name"], format!("{id}.coffer"));
    assert_eq!(e["components"], json!(["appdb", "files"]), "{e}");
    let export_id = e["id"].as_str().unwrap().to_owned();
    let (code, h, bytes) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        None,
        &["content-disposition", "accept-ranges", "etag"],
    );
    assert_eq!(code, 200);
    assert_eq!(bytes.len() as u64, e["size"].as_u64().unwrap());
    assert!(h[0].as_deref().unwrap().contains(&format!("{id}.coffer")));
    assert_eq!(h[1].as_deref(), Some("bytes"));
    let file = tmp.path().join("download.coffer");
    std::fs::write(&file, &bytes).unwrap();
    let sha = String::from_utf8(run_tool("sha256sum", &[file.to_str().unwrap()], None)).unwrap();
    let md5 = String::from_utf8(run_tool("md5sum", &[file.to_str().unwrap()], None)).unwrap();
    assert!(
        sha.starts_with(e["sha256"].as_str().unwrap()),
        "{sha} vs {e}"
    );
    assert!(md5.starts_with(e["md5"].as_str().unwrap()), "{md5} vs {e}");
    // Ranges resume a download.
    let (code, h, part) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        Some("bytes=100-199"),
        &["content-range"],
    );
    assert_eq!(code, 206);
    assert_eq!(part, bytes[100..200]);
    assert_eq!(
        h[0].as_deref(),
        Some(format!("bytes 100-199/{}", bytes.len()).as_str())
    );
    let (code, _, tail) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        Some("bytes=-10"),
        &[],
    );
    assert_eq!((code, tail.as_slice()), (206, &bytes[bytes.len() - 10..]));
    let (code, _, _) = srv.download(
        &format!("/api/v1/exports/{export_id}/download"),
        Some(&format!("bytes={}-", bytes.len())),
        &[],
    );
    assert_eq!(code, 416);

    // Standard tools open it: age (passphrase through a terminal), zstd, tar.
    let opened = tmp.path().join("opened");
    let manifest = open_with_standard_tools(&file, Ok("correct horse battery"), &opened);
    assert_eq!(manifest["backup_id"], id);
    let comps = manifest["components"].as_array().unwrap();
    assert!(
        comps.iter().all(|c| c["name"] != "keys"),
        "no sensitive component: {manifest}"
    );
    let appdb = comps.iter().find(|c| c["name"] == "appdb").unwrap();
    let db_copy = opened.join(appdb["file"].as_str().unwrap());
    assert_eq!(sqlite_rows(&db_copy), sqlite_rows(&db));
    let sum = String::from_utf8(run_tool("sha256sum", &[db_copy.to_str().unwrap()], None)).unwrap();
    assert!(sum.starts_with(appdb["sha256"].as_str().unwrap()));
    let tree = comps.iter().find(|c| c["name"] == "files").unwrap();
    assert_eq!(tree["content"], "tree");
    let unpacked = tmp.path().join("files-from-export");
    std::fs::create_dir_all(&unpacked).unwrap();
    run_tool(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "-x",
            "-f",
            opened
                .join(tree["file"].as_str().unwrap())
                .to_str()
                .unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
        None,
    );
    assert_same_tree(&files, &unpacked);

    // The sensitive components: a separate file, still sealed to their recipient.
    let s = srv.export(
        &id,
        &json!({ "password": "another long passphrase", "sensitive": true }),
    );
    assert_eq!(s["name"], format!("{id}.sensitive.coffer"));
    assert_eq!(s["components"], json!(["keys"]));
    let (_, _, sbytes) = srv.download(
        &format!("/api/v1/exports/{}/download", s["id"].as_str().unwrap()),
        None,
        &[],
    );
    let sfile = tmp.path().join("sensitive.coffer");
    std::fs::write(&sfile, &sbytes).unwrap();
    let sopened = tmp.path().join("sopened");
    let smanifest = open_with_standard_tools(&sfile, Ok("another long passphrase"), &sopened);
    let keys_entry = &smanifest["components"][0];
    assert_eq!(keys_entry["sealed"], true);
    let sealed = sopened.join(keys_entry["file"].as_str().unwrap());
    assert!(
        std::fs::read(&sealed)
            .unwrap()
            .starts_with(b"age-encryption.org/v1")
    );
    let inner = run_tool(
        "age",
        &[
            "-d",
            "-i",
            id_file.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        None,
    );
    let listed = run_tool("tar", &["-t"], Some(&inner));
    assert!(String::from_utf8_lossy(&listed).contains("signing.pem"));

    // An X25519 export opens with `age -d -i` (no terminal needed).
    let x = srv.export(&id, &json!({ "age_recipient": identity.recipient() }));
    let (_, _, xbytes) = srv.download(
        &format!("/api/v1/exports/{}/download", x["id"].as_str().unwrap()),
        None,
        &[],
    );
    let xfile = tmp.path().join("x.coffer");
    std::fs::write(&xfile, &xbytes).unwrap();
    let xmanifest = open_with_standard_tools(&xfile, Err(&id_file), &tmp.path().join("xopened"));
    assert_eq!(xmanifest["components"].as_array().unwrap().len(), 2);

    // The backup lists its exports; a backup being exported cannot be deleted meanwhile
    // (tested by the reservation unit); delete removes file and record.
    let (_, bv) = srv.admin("GET", &format!("/api/v1/backups/{id}"), None);
    assert_eq!(bv["exports"].as_array().unwrap().len(), 3, "{bv}");
    let (code, _) = srv.admin("DELETE", &format!("/api/v1/exports/{export_id}"), None);
    assert_eq!(code, 200);
    let (code, _) = srv.admin("GET", &format!("/api/v1/exports/{export_id}"), None);
    assert_eq!(code, 404);
    assert!(
        !tmp.path()
            .join(format!("data/exports/{export_id}.coffer"))
            .exists()
    );
    // Spooled files are private to the server.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tmp.path().join("data/exports"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let xf = tmp
        .path()
        .join(format!("data/exports/{}.coffer", x["id"].as_str().unwrap()));
    assert_eq!(
        std::fs::metadata(&xf).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn the_terraform_enterprise_call_exports_after_the_backup_and_exports_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let files = small_dir(tmp.path());
    let config = write_config_with(
        tmp.path(),
        "export_ttl_secs = 3",
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files.display()
        ),
    );
    let srv = Server::start(&config);
    let (code, v) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "password": "correct horse battery" })),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("api-backup-"), "{id}");
    let b = srv.wait_until_done(&format!("/api/v1/backups/{id}"), "BACKING_UP", 60);
    assert_eq!(b["status"], "READY");
    let export_id = b["exports"][0]["id"]
        .as_str()
        .expect("the export is linked")
        .to_owned();
    let e = srv.wait_until_done(&format!("/api/v1/exports/{export_id}"), "EXPORTING", 60);
    assert_eq!(e["status"], "READY", "{e}");
    assert_eq!(e["protection"], "password");
    let (code, _, bytes) =
        srv.download(&format!("/api/v1/exports/{export_id}/download"), None, &[]);
    assert_eq!(code, 200);
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    // A short password is refused before anything is backed up.
    let (code, _) = srv.admin(
        "POST",
        "/api/v1/backups",
        Some(&json!({ "password": "short" })),
    );
    assert_eq!(code, 422);
    // After export_ttl_secs the file is gone: 410, and the export says EXPIRED.
    std::thread::sleep(Duration::from_secs(5));
    let (code, _, _) = srv.download(&format!("/api/v1/exports/{export_id}/download"), None, &[]);
    assert_eq!(code, 410);
    let (_, e) = srv.admin("GET", &format!("/api/v1/exports/{export_id}"), None);
    assert_eq!(e["status"], "EXPIRED", "{e}");
    assert!(
        !tmp.path()
            .join(format!("data/exports/{export_id}.coffer"))
            .exists()
    );
}
