//! `coffer server` end to end, uploads: an export restored into a new installation, matching and hostile archives, the FlowG per-component flow, streaming under a memory cap.
//! The real binary on a free loopback port, driven over HTTP (and curl),
//! with real servers; repositories judged by plain `restic`.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use coffer_testkit::service_setting;
use coffer_testkit::tree::{assert_same_tree, assert_same_tree_from_upload, build_rich_tree};
use common::*;
use serde_json::json;

#[test]
fn the_terraform_enterprise_migration_restores_an_upload_into_a_new_installation() {
    let (Some(pg), Some(s3), Some(bucket)) = (
        Pg::from_env(),
        coffer_testkit::s3::S3::from_env(),
        service_setting("COFFER_TEST_S3_BUCKET"),
    ) else {
        return;
    };
    let pid = std::process::id();
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let s3_keys = format!(
        "access_key = \"{}\"\nsecret_key = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\n",
        service_setting("COFFER_TEST_S3_ACCESS_KEY").unwrap(),
        service_setting("COFFER_TEST_S3_SECRET_KEY").unwrap(),
        s3.endpoint,
        s3.region
    );

    // Installation A: PostgreSQL database A, a directory, an S3 bucket prefix.
    let (db_a, db_b) = (format!("coffer_tfe_a_{pid}"), format!("coffer_tfe_b_{pid}"));
    for db in [&db_a, &db_b] {
        pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    }
    pg.psql("postgres", &format!("CREATE DATABASE {db_a}"));
    pg.psql(
        &db_a,
        "CREATE TABLE runs (id int PRIMARY KEY, state text NOT NULL); \
         INSERT INTO runs SELECT g, 'applied-' || g FROM generate_series(1, 2000) g;",
    );
    let files_a = a_dir.join("files");
    build_rich_tree(&files_a);
    let prefix = format!("tfe-{pid}/");
    s3.put(
        &bucket,
        &format!("{prefix}state/1.json"),
        b"{\"v\":1}",
        Some("application/json"),
        &[("run", "1")],
    );
    s3.put(
        &bucket,
        &format!("{prefix}blob.bin"),
        &coffer_testkit::tree::random_bytes(9, 300_000),
        None,
        &[],
    );
    let config_a = write_config(
        &a_dir,
        &format!(
            "[[components]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
             password = \"{}\"\ndatabase = \"{db_a}\"\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"objects\"\nkind = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n{s3_keys}",
            pg.host,
            pg.port,
            pg.user,
            pg.password,
            files_a.display()
        ),
    );
    let export = tmp.path().join("migration.coffer");
    let password = "correct horse battery staple";
    {
        let a = Server::start(&config_a);
        export_to_file(&a, password, &export);
    }

    // Installation B: its own data dir, database B, another bucket, a hook.
    let files_b = b_dir.join("restored-files");
    let bucket_b = format!("coffer-tfe-b-{pid}");
    let marker = b_dir.join("post-restore-ran");
    let config_b = write_config(
        &b_dir,
        &format!(
            "[hooks]\npost_restore = [\"echo \\\"$COFFER_COMPONENTS\\\" > {}\"]\n\n\
             [[components]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\n\
             password = \"{}\"\ndatabase = \"{db_b}\"\n\n\
             [[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"objects\"\nkind = \"s3\"\nbucket = \"{bucket_b}\"\nprefix = \"\"\n{s3_keys}",
            marker.display(),
            pg.host,
            pg.port,
            pg.user,
            pg.password,
            files_b.display()
        ),
    );
    let b = Server::start(&config_b);
    let db_b_exists = || {
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db_b}'"),
        ) == "1"
    };

    // A wrong password, a truncated file, no config: 422, nothing changed.
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &export,
        &json!({ "password": "wrong password!" }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("wrong password"),
        "{v}"
    );
    let bytes = std::fs::read(&export).unwrap();
    let truncated = tmp.path().join("truncated.coffer");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &truncated,
        &json!({ "password": password }),
    );
    assert_eq!(code, 422, "{v}");
    let r = b.curl(
        "/api/v1/restores",
        None,
        &["-F".into(), format!("snapshot=@{}", export.display())],
    );
    assert_eq!(r.status, 422, "{}", r.json());
    // A token without the restore scope never gets to upload. (A small file:
    // the server answers before reading the body, and closing on a large
    // unread body may reset the connection before curl reads the 403.)
    let reader = b.token(&["backups:read"], None, None);
    let tiny = tmp.path().join("tiny.coffer");
    std::fs::write(&tiny, b"age-encryption.org/v1\n").unwrap();
    let r = b.curl(
        "/api/v1/restores",
        Some(&reader),
        &["-F".into(), format!("snapshot=@{}", tiny.display())],
    );
    assert_eq!(r.status, 403);
    assert!(!files_b.exists() && !db_b_exists() && !marker.exists());
    assert!(!s3_bucket_exists(&s3, &bucket_b));

    // The Terraform Enterprise spelling: POST /api/v1/restore.
    let (code, v) = b.upload_export(
        "/api/v1/restore",
        &export,
        &json!({ "password": password, "options": { "no_owner": true } }),
    );
    assert_eq!(code, 202, "{v}");
    let r = b.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");

    // Data equal: rows, the tree, the objects; the hook ran.
    let rows = |db: &str| {
        pg.psql(
            db,
            "SELECT count(*), sum(id), md5(string_agg(state, ',' ORDER BY id)) FROM runs",
        )
    };
    assert_eq!(rows(&db_a), rows(&db_b));
    assert_same_tree_from_upload(&files_a, &files_b);
    assert_eq!(s3.objects(&bucket, &prefix), s3.objects(&bucket_b, ""));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "db,files,objects"
    );
    // The upload's spool is gone.
    let uploads = b_dir.join("data/staging/uploads");
    assert!(!uploads.exists() || std::fs::read_dir(&uploads).unwrap().count() == 0);
    drop(b);
    for db in [&db_a, &db_b] {
        pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    }
}

fn s3_bucket_exists(s3: &coffer_testkit::s3::S3, bucket: &str) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s3.keys(bucket, ""))).is_ok()
}

/// Runs `coffer restore --from-file` with `args`; returns the exit code and stderr.
fn cli_restore(args: &[&str], password_file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("restore")
        .args(args)
        .arg("--password-file")
        .arg(password_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn uploads_match_components_by_name_and_kind_refuse_hostile_archives_and_the_cli_restores_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let files_a = a_dir.join("files");
    build_rich_tree(&files_a);
    let db_a = a_dir.join("app.sqlite");
    sqlite_db(&db_a, 300);
    let config_a = write_config(
        &a_dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n",
            files_a.display(),
            db_a.display()
        ),
    );
    let export = tmp.path().join("a.coffer");
    let password = "correct horse battery staple";
    {
        let a = Server::start(&config_a);
        export_to_file(&a, password, &export);
    }

    // B has `files` but no `appdb`, and a `files` of another kind would not do.
    let files_b = b_dir.join("files");
    let db_b = b_dir.join("restored.sqlite");
    let config_b = write_config(
        &b_dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            files_b.display()
        ),
    );
    let b = Server::start(&config_b);
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &export,
        &json!({ "password": password }),
    );
    assert_eq!(code, 422, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("appdb (sqlite)") && !msg.contains("files ("),
        "{msg}"
    );
    assert!(!files_b.exists());
    // An override gives the unconfigured component a whole spec.
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &export,
        &json!({ "password": password,
                 "overrides": { "appdb": { "kind": "sqlite", "path": db_b } } }),
    );
    assert_eq!(code, 202, "{v}");
    let r = b.wait_restore(v["id"].as_str().unwrap());
    assert_eq!(r["status"], "READY", "{r:#}");
    assert_same_tree_from_upload(&files_a, &files_b);
    assert_eq!(sqlite_rows(&db_b).len(), 300);

    // A hostile export (made with the real writer, so only its tree is bad):
    // a symlink out of the root with a file below it. Refused before
    // anything is restored; nothing lands outside.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut tree = Vec::new();
    for (name, kind, link, data) in [
        ("ok.txt", tar::EntryType::Regular, "", &b"fine"[..]),
        (
            "escape",
            tar::EntryType::Symlink,
            outside.to_str().unwrap(),
            &b""[..],
        ),
        ("escape/pwned", tar::EntryType::Regular, "", &b"owned"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        tree.extend_from_slice(h.as_bytes());
        tree.extend_from_slice(data);
        tree.resize(tree.len().div_ceil(512) * 512, 0);
    }
    tree.resize(tree.len() + 1024, 0);
    let hostile = tmp.path().join("hostile.coffer");
    let protection = coffer_export::Protection::passphrase(password);
    let mut w =
        coffer_export::ExportWriter::new(std::fs::File::create(&hostile).unwrap(), &protection)
            .unwrap();
    let header = coffer_export::ComponentHeader {
        name: "files".into(),
        kind: "files".into(),
        content: "tree".into(),
        file_name: "files.tar".into(),
        sealed: false,
    };
    w.add_component(header, tree.len() as u64, |out| out.write_all(&tree))
        .unwrap();
    w.finish(coffer_export::BackupInfo {
        backup_id: "hostile-0d3c1f8e-8a4b-4c55-9a55-4f3b6c8d9e10".into(),
        label: "hostile".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        exported_at: "2026-01-01T00:00:00Z".into(),
        sensitive: false,
    })
    .unwrap();
    let fresh = b_dir.join("fresh");
    let (code, v) = b.upload_export(
        "/api/v1/restores",
        &hostile,
        &json!({ "password": password, "overrides": { "files": { "path": fresh } } }),
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("symbolic link"),
        "{v}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!fresh.exists());
    drop(b);

    // The CLI: the same export into a third place, from a coffer.toml.
    let c_dir = tmp.path().join("c");
    std::fs::create_dir_all(&c_dir).unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let config_c = write_config(
        &c_dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n",
            c_dir.join("files").display(),
            c_dir.join("app.sqlite").display()
        ),
    );
    let (export_s, config_s) = (export.to_str().unwrap(), config_c.to_str().unwrap());
    let (code, err) = cli_restore(&["--from-file", export_s, "--config", config_s], &wrong);
    assert_eq!(code, 4, "{err}");
    assert!(!c_dir.join("files").exists());
    let (code, err) = cli_restore(
        &[
            "--from-file",
            hostile.to_str().unwrap(),
            "--config",
            config_s,
        ],
        &pw,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing was restored"), "{err}");
    let (code, err) = cli_restore(&["--from-file", export_s, "--config", config_s], &pw);
    assert_eq!(code, 0, "{err}");
    assert_same_tree_from_upload(&files_a, &c_dir.join("files"));
    assert_eq!(sqlite_rows(&c_dir.join("app.sqlite")).len(), 300);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn the_flowg_flow_downloads_and_restores_one_component_with_its_permissions() {
    let Some(pg) = Pg::from_env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = dir.join("files");
    build_rich_tree(&files);
    let db = dir.join("app.sqlite");
    sqlite_db(&db, 250);
    let pgdb = format!("coffer_flowg_{}", std::process::id());
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {pgdb}"));
    pg.psql("postgres", &format!("CREATE DATABASE {pgdb}"));
    pg.psql(
        &pgdb,
        "CREATE TABLE logs (id int PRIMARY KEY); INSERT INTO logs SELECT generate_series(1, 700);",
    );
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"appdb\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[components]]\nname = \"logs\"\nkind = \"postgres\"\nhost = \"{h}\"\nport = {p}\n\
             user = \"{u}\"\npassword = \"{pw}\"\ndatabase = \"{pgdb}\"\n\n\
             [[components]]\nname = \"broken\"\nkind = \"postgres\"\nhost = \"{h}\"\nport = {p}\n\
             user = \"{u}\"\npassword = \"{pw}\"\ndatabase = \"no_such_db_{pgdb}\"\n",
            files.display(),
            db.display(),
            h = pg.host,
            p = pg.port,
            u = pg.user,
            pw = pg.password,
        ),
    );
    let srv = Server::start(&config);
    let save = |r: &Curl, name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, &r.body).unwrap();
        path
    };

    // SQLite: a database file that opens on its own.
    let r = srv.curl("/api/v1/components/appdb/backup", None, &[]);
    assert!(
        r.ok && r.status == 200,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    let copy = save(&r, "download.sqlite");
    assert_eq!(sqlite_rows(&copy).len(), 250);
    // PostgreSQL: a pg_dump custom-format file.
    let r = srv.curl("/api/v1/components/logs/backup", None, &[]);
    assert!(r.ok && r.status == 200);
    assert!(r.body.starts_with(b"PGDMP"));
    let dump = save(&r, "logs.pgdump");
    // A directory: a tar that GNU tar extracts into the same tree.
    let r = srv.curl("/api/v1/components/files/backup", None, &[]);
    assert!(r.ok && r.status == 200);
    let tarball = save(&r, "files.tar");
    let extracted = dir.join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    let st = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=user.*", "-xpf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&extracted)
        .status()
        .unwrap();
    assert!(st.success());
    assert_same_tree(&files, &extracted);
    // A component that fails: the transfer is cut, never a clean short file.
    let r = srv.curl("/api/v1/components/broken/backup", None, &[]);
    assert!(
        !r.ok,
        "a failed dump must not look like a complete download"
    );
    let r = srv.curl("/api/v1/components/nope/backup", None, &[]);
    assert_eq!(r.status, 404);

    // Restore by upload: the database rolls back to the downloaded copy.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM t WHERE id > 10", [])
        .unwrap();
    let upload = |name: &str, file: &Path, options: &str, token: Option<&str>| {
        srv.curl(
            &format!("/api/v1/components/{name}/restore"),
            token,
            &[
                "-F".into(),
                format!("backup=@{}", file.display()),
                "--form-string".into(),
                format!("options={options}"),
            ],
        )
    };
    let r = upload("appdb", &copy, r#"{"mode":"overwrite"}"#, None);
    assert_eq!(r.status, 202, "{}", r.json());
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(sqlite_rows(&db).len(), 250);
    pg.psql(&pgdb, "DELETE FROM logs WHERE id > 5");
    let r = upload("logs", &dump, r#"{"clean":true}"#, None);
    assert_eq!(r.status, 202, "{}", r.json());
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_eq!(pg.psql(&pgdb, "SELECT count(*) FROM logs"), "700");
    std::fs::remove_file(files.join("plain.txt")).unwrap();
    let r = upload("files", &tarball, r#"{"mode":"mirror"}"#, None);
    assert_eq!(r.status, 202, "{}", r.json());
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert_same_tree_from_upload(&extracted, &files);
    // The wrong file for the kind: refused before anything is touched.
    let r = upload("files", &copy, r#"{"mode":"mirror"}"#, None);
    assert_eq!(r.status, 422, "{}", r.json());

    // Permissions are per component: a token for `files` only.
    let files_only = srv.token(&["export", "restore"], Some(&["files"]), None);
    let r = srv.curl("/api/v1/components/files/backup", Some(&files_only), &[]);
    assert_eq!(r.status, 200);
    let r = srv.curl("/api/v1/components/appdb/backup", Some(&files_only), &[]);
    assert_eq!(r.status, 403);
    // Small files: the 403 comes before the body is read (see the migration test).
    let tiny = dir.join("tiny.sqlite");
    std::fs::write(&tiny, b"SQLite format 3\0").unwrap();
    let r = upload("appdb", &tiny, "{}", Some(&files_only));
    assert_eq!(r.status, 403);
    // Download needs `export`, upload needs `restore`.
    let restore_only = srv.token(&["restore"], None, None);
    let r = srv.curl("/api/v1/components/files/backup", Some(&restore_only), &[]);
    assert_eq!(r.status, 403);
    let export_only = srv.token(&["export"], None, None);
    let r = upload("appdb", &tiny, "{}", Some(&export_only));
    assert_eq!(r.status, 403);
    drop(srv);
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {pgdb}"));
}

#[test]
fn uploads_are_streamed_to_disk_under_a_memory_cap() {
    if !coffer_testkit::require_tool("prlimit") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 600 MiB of incompressible data, as a tar (a `files` component's native form).
    let big = dir.join("big");
    std::fs::create_dir(&big).unwrap();
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(big.join("blob")).unwrap());
        for i in 0..600 {
            f.write_all(&coffer_testkit::tree::random_bytes(i, 1 << 20))
                .unwrap();
        }
    }
    let tarball = dir.join("big.tar");
    assert!(
        Command::new("tar")
            .arg("cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&big)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let dest = dir.join("restored");
    let config = write_config(
        dir,
        &format!(
            "[[components]]\nname = \"files\"\nkind = \"files\"\npath = \"{}\"\n",
            dest.display()
        ),
    );
    // The cap: 192 MiB of data segment. The repository key's scrypt at
    // start needs 128 MiB of it; the upload is 3× the whole cap.
    let srv = Server::start_wrapped(&config, &["prlimit", "--data=201326592", "--"]);
    let r = srv.curl(
        "/api/v1/components/files/restore",
        None,
        &["-F".into(), format!("backup=@{}", tarball.display())],
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let done = srv.wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "READY", "{done:#}");
    assert!(
        Command::new("cmp")
            .arg(big.join("blob"))
            .arg(dest.join("blob"))
            .status()
            .unwrap()
            .success()
    );
    // Still alive and answering under the cap.
    let (code, _) = srv.admin("GET", "/healthz", None);
    assert_eq!(code, 200);
}
