//! Components that need no server: files, SQLite (under a concurrent
//! writer) and custom commands.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_components::{ComponentError, RestoreOptions};
use coffer_engine::RestoreMode;
use coffer_testkit::tree::{self, assert_same_tree};
use common::{Fixture, sh, spec};
use rusqlite::Connection;

#[test]
fn files_round_trip_into_an_alternate_path_with_modes() {
    let f = Fixture::new();
    let src = f.path("app/uploads");
    tree::build_rich_tree(&src);
    tree::write(&src.join("junk.tmp"), b"leave me out");
    let s = spec(&format!(
        "name = \"uploads\"\nkind = \"files\"\npath = {:?}\nexcludes = [\"*.tmp\"]",
        src
    ));
    let snap = f.backup(&s).expect("backup");

    // Into another installation's path.
    let other = f.path("new-install/uploads");
    let dest = spec(&format!(
        "name = \"uploads\"\nkind = \"files\"\npath = {other:?}"
    ));
    f.restore(&dest, &snap, &RestoreOptions::default())
        .expect("restore");
    assert!(!other.join("junk.tmp").exists(), "excluded file came back");
    std::fs::remove_file(src.join("junk.tmp")).unwrap();
    assert_same_tree(&src, &other);

    // A second restore into the now non-empty path is refused…
    let err = f
        .restore(&dest, &snap, &RestoreOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    // …mirror makes it exact again, removing what the backup lacks.
    tree::write(&other.join("stray.txt"), b"x");
    let mirror = RestoreOptions {
        mode: RestoreMode::Mirror,
        ..RestoreOptions::default()
    };
    f.restore(&dest, &snap, &mirror).expect("mirror restore");
    assert!(!other.join("stray.txt").exists());
    assert_same_tree(&src, &other);
    f.assert_clean();
}

/// A writer that moves money between accounts in transactions: the total
/// is constant in every consistent state, and `ledger` counts transfers.
fn start_writer(path: &std::path::Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut conn = Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let tx = conn.transaction().unwrap();
            let from = (n % 100) as i64;
            let to = ((n * 7 + 3) % 100) as i64;
            tx.execute(
                "UPDATE accounts SET balance = balance - 5 WHERE id = ?1",
                [from],
            )
            .unwrap();
            tx.execute(
                "UPDATE accounts SET balance = balance + 5 WHERE id = ?1",
                [to],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO ledger (from_id, to_id, note) VALUES (?1, ?2, ?3)",
                rusqlite::params![from, to, "transfer ✓ ünïcode".repeat(8)],
            )
            .unwrap();
            tx.commit().unwrap();
            n += 1;
        }
        n
    })
}

fn invariants(conn: &Connection) -> (i64, i64) {
    let total: i64 = conn
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .unwrap();
    let transfers: i64 = conn
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    (total, transfers)
}

#[test]
fn sqlite_backup_is_consistent_under_a_concurrent_writer() {
    let f = Fixture::new();
    let db = f.path("app/app.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE ledger (id INTEGER PRIMARY KEY, from_id INT, to_id INT, note TEXT);
             CREATE INDEX ledger_from ON ledger(from_id);
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 99)
             INSERT INTO accounts SELECT i, 1000 FROM n;",
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&db, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(300));
    let s = spec(&format!(
        "name = \"state\"\nkind = \"sqlite\"\npath = {db:?}"
    ));
    let mut snaps = Vec::new();
    for _ in 0..3 {
        snaps.push(f.backup(&s).expect("backup while writing"));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 10, "the writer made only {written} transfers");

    // Each copy is a consistent state: total unchanged, integrity ok.
    let mut seen = Vec::new();
    for snap in &snaps {
        let out = f.path(&format!("restore-{}/app.db", seen.len()));
        let dest = spec(&format!(
            "name = \"state\"\nkind = \"sqlite\"\npath = {out:?}"
        ));
        f.restore(&dest, snap, &RestoreOptions::default())
            .expect("restore");
        let (total, transfers) = invariants(&Connection::open(&out).unwrap());
        assert_eq!(total, 100 * 1000, "inconsistent copy");
        seen.push(transfers);
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    // Restoring over the live file: refused by default; with overwrite the
    // stale WAL of the old database is removed, not replayed.
    let err = f
        .restore(&s, &snaps[0], &RestoreOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    let keep_wal = Connection::open(&db).unwrap();
    keep_wal
        .execute_batch("PRAGMA wal_autocheckpoint=0; INSERT INTO ledger (note) VALUES ('after');")
        .unwrap();
    let overwrite = RestoreOptions {
        mode: RestoreMode::Overwrite,
        ..RestoreOptions::default()
    };
    std::mem::forget(keep_wal); // keep the WAL file as a crashed app would
    f.restore(&s, &snaps[0], &overwrite).expect("overwrite");
    let (total, transfers) = invariants(&Connection::open(&db).unwrap());
    assert_eq!((total, transfers), (100 * 1000, seen[0]));
    f.assert_clean();
}

#[test]
fn sqlite_failures_are_clear() {
    let f = Fixture::new();
    let missing = f.path("nope.db");
    let s = spec(&format!(
        "name = \"state\"\nkind = \"sqlite\"\npath = {missing:?}"
    ));
    let err = f.backup(&s).unwrap_err();
    assert!(err.to_string().contains("nope.db"), "{err}");
    let not_db = f.path("not.db");
    std::fs::write(&not_db, vec![7u8; 4096]).unwrap();
    let s = spec(&format!(
        "name = \"state\"\nkind = \"sqlite\"\npath = {not_db:?}"
    ));
    let err = f.backup(&s).unwrap_err();
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(f.snapshot_count(), 0);
    f.assert_clean();
}

#[test]
fn command_components_stream_or_use_a_file() {
    let f = Fixture::new();
    let data = f.path("data.bin");
    std::fs::write(&data, tree::random_bytes(7, 3 << 20)).unwrap();
    let out = f.path("out.bin");

    // Standard output in, standard input out.
    let s = spec(&format!(
        "name = \"blob\"\nkind = \"command\"\nbackup = [\"cat\", {data:?}]\n\
         restore = [\"sh\", \"-c\", \"cat > \\\"$OUT\\\"\"]\nenv = {{ OUT = {out:?} }}"
    ));
    let snap = f.backup(&s).expect("backup");
    assert_eq!(snap.paths, ["blob.dump"]);
    f.restore(&s, &snap, &RestoreOptions::default())
        .expect("restore");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&data).unwrap());

    // A tool that only writes files: {file} on both sides.
    let out2 = f.path("out2.bin");
    let s = spec(&format!(
        "name = \"snap\"\nkind = \"command\"\nfile_name = \"etcd.db\"\n\
         backup = [\"cp\", {data:?}, \"{{file}}\"]\nrestore = [\"cp\", \"{{file}}\", {out2:?}]"
    ));
    let snap = f.backup(&s).expect("backup");
    assert_eq!(snap.paths, ["etcd.db"]);
    f.restore(&s, &snap, &RestoreOptions::default())
        .expect("restore");
    assert_eq!(std::fs::read(&out2).unwrap(), std::fs::read(&data).unwrap());
    f.assert_clean();
}

#[test]
fn failing_commands_record_nothing_and_say_why() {
    let f = Fixture::new();
    let cases = [
        // exits non-zero after some output
        (
            r#"backup = ["sh", "-c", "head -c 100000 /dev/zero; echo 'dump: access denied' >&2; exit 3"]"#,
            "access denied",
        ),
        // killed
        (
            r#"backup = ["sh", "-c", "head -c 100000 /dev/zero; kill -9 $$"]"#,
            "signal: 9",
        ),
        // {file} tool that fails
        (
            r#"backup = ["sh", "-c", "echo 'no space left' >&2; exit 1", "{file}"]"#,
            "no space left",
        ),
        // {file} tool that exits 0 without writing the file
        (r#"backup = ["true", "{file}"]"#, "cannot be opened"),
        // no such program
        (r#"backup = ["/nonexistent/dumper"]"#, "/nonexistent/dumper"),
    ];
    for (backup, expected) in cases {
        let s = spec(&format!("name = \"x\"\nkind = \"command\"\n{backup}"));
        let err = f.backup(&s).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{backup}: {err} (wanted {expected:?})"
        );
        assert!(
            matches!(
                &err,
                ComponentError::Engine { .. }
                    | ComponentError::Tool { .. }
                    | ComponentError::Io { .. }
            ),
            "{err:?}"
        );
    }
    assert_eq!(f.snapshot_count(), 0);

    // A restore command that fails reports its own words.
    let s = spec(
        "name = \"x\"\nkind = \"command\"\nbackup = [\"echo\", \"hello\"]\n\
         restore = [\"sh\", \"-c\", \"read line; echo \\\"cannot apply $line\\\" >&2; exit 4\"]",
    );
    let snap = f.backup(&s).unwrap();
    let err = f
        .restore(&s, &snap, &RestoreOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("cannot apply hello"), "{err}");
    // No restore command configured.
    let s = spec("name = \"x\"\nkind = \"command\"\nbackup = [\"echo\"]");
    let err = f
        .restore(&s, &snap, &RestoreOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("no restore command"), "{err}");
    f.assert_clean();
    let _ = sh("true");
}

#[test]
fn the_space_preflight_refuses_a_staging_copy_that_cannot_fit() {
    let f = Fixture::new();
    let db = f.path("huge.db");
    // A sparse file of 8 TiB apparent size (ext4 allows 16): its copy cannot fit.
    std::fs::File::create(&db)
        .unwrap()
        .set_len(1 << 43)
        .unwrap();
    let s = spec(&format!(
        "name = \"state\"\nkind = \"sqlite\"\npath = {db:?}"
    ));
    assert_eq!(coffer_components::staging_estimate(&s), Some(1 << 43));
    let err =
        coffer_components::check_staging_space(std::slice::from_ref(&s), &f.staging()).unwrap_err();
    assert!(
        err.contains("not enough space") && err.contains("\"state\""),
        "{err}"
    );
    let small = spec("name = \"db\"\nkind = \"postgres\"\nuser = \"u\"\ndatabase = \"d\"");
    assert_eq!(coffer_components::staging_estimate(&small), Some(0));
    coffer_components::check_staging_space(&[small], &f.staging()).expect("nothing to stage");
}

#[test]
fn sqlite_refuses_an_upload_that_is_not_a_database_naming_what_it_expected() {
    let f = Fixture::new();
    let db = f.path("app.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE precious (x INT); INSERT INTO precious VALUES (42);")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&db).unwrap();
    let s = spec(&format!(
        "name = \"state\"\nkind = \"sqlite\"\npath = {db:?}"
    ));
    let opts = RestoreOptions {
        mode: RestoreMode::Overwrite,
        clean: true,
        ..RestoreOptions::default()
    };
    let identity = Arc::new(coffer_engine::AgeIdentity::generate());
    let cases = [
        (
            "text",
            f.file("state.sqlite", b"CREATE TABLE x (y INT);"),
            None,
        ),
        ("short", f.file("state.sqlite", b"SQLite"), None),
        (
            "sealed junk",
            f.sealed_file("state.sqlite.age", &[7u8; 4096], &identity),
            Some(identity.clone()),
        ),
    ];
    for (what, file, id) in cases {
        let err = f.restore_file(&s, &file, &opts, id).unwrap_err();
        assert!(
            matches!(err, ComponentError::InvalidInput { .. }),
            "{what}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("state.sqlite") && text.contains("SQLite format 3"),
            "{what}: {text}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "{what}: database touched"
        );
    }
    // A database file passes, sealed too.
    let good = f.sealed_file("state.sqlite.age", &before, &identity);
    f.restore_file(&s, &good, &opts, Some(identity))
        .expect("a sealed database restores");
    f.assert_clean();
}

#[test]
fn command_uploads_are_not_format_checked() {
    let f = Fixture::new();
    let out = f.path("out.bin");
    let s = spec(&format!(
        "name = \"blob\"\nkind = \"command\"\nbackup = [\"true\"]\n\
         restore = [\"sh\", \"-c\", \"cat > \\\"$OUT\\\"\"]\nenv = {{ OUT = {out:?} }}"
    ));
    let file = f.file("blob.dump", b"\x00\xffanything at all");
    f.restore_file(&s, &file, &RestoreOptions::default(), None)
        .expect("any bytes restore through a command");
    assert_eq!(std::fs::read(&out).unwrap(), b"\x00\xffanything at all");
    f.assert_clean();
}
