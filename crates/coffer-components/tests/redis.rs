//! Redis components against the real server from scripts/services.sh, and
//! a second real instance started here for "restore into another instance".

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_components::{ComponentError, RestoreOptions};
use coffer_model::component::ComponentSpec;
use coffer_testkit::service_setting;
use common::{Fixture, spec};
use redis::Commands;

/// Every key of every database: (db, key) → (type, value, PEXPIRETIME).
type State = BTreeMap<(u32, Vec<u8>), (String, Vec<u8>, i64)>;

fn connect(port: u16, password: Option<&str>) -> redis::Connection {
    let url = match password {
        Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/0"),
        None => format!("redis://127.0.0.1:{port}/0"),
    };
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("connect to redis")
}

fn state(con: &mut redis::Connection) -> State {
    let mut out = State::new();
    for db in 0..16u32 {
        redis::cmd("SELECT").arg(db).exec(con).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(con).unwrap();
            // Hash tables serialise in bucket order, which a reload may
            // change: compare their members sorted, everything else as DUMP.
            let dump: Vec<u8> = match kind.as_str() {
                "set" | "hash" => {
                    let cmd = if kind == "set" { "SMEMBERS" } else { "HGETALL" };
                    let mut items: Vec<Vec<u8>> = redis::cmd(cmd).arg(&key).query(con).unwrap();
                    if kind == "hash" {
                        let mut pairs: Vec<Vec<u8>> = items.chunks(2).map(|p| p.concat()).collect();
                        pairs.sort();
                        items = pairs;
                    }
                    items.sort();
                    items.join(&0u8)
                }
                _ => redis::cmd("DUMP").arg(&key).query(con).unwrap(),
            };
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(con).unwrap();
            out.insert((db, key), (kind, dump, at));
        }
    }
    redis::cmd("SELECT").arg(0).exec(con).unwrap();
    out
}

/// Names the keys that differ (values are too big to print).
fn assert_same_state(expected: &State, actual: &State, what: &str) {
    let mut problems = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => problems.push(format!("{key:?} missing")),
            Some(got) if got.0 != want.0 => {
                problems.push(format!("{key:?} type {} != {}", got.0, want.0))
            }
            Some(got) if got.1 != want.1 => {
                problems.push(format!("{key:?} ({}) value differs", want.0))
            }
            Some(got) if got.2 != want.2 => {
                problems.push(format!("{key:?} expiry {} != {}", got.2, want.2))
            }
            Some(_) => {}
        }
    }
    problems.extend(
        actual
            .keys()
            .filter(|k| !expected.contains_key(k))
            .map(|k| format!("{k:?} unexpected")),
    );
    assert!(
        problems.is_empty(),
        "{what}: {} keys differ: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

fn populate(con: &mut redis::Connection) {
    let _: () = redis::cmd("FLUSHALL").query(con).unwrap();
    let _: () = con
        .set(b"bin\x00key", b"value\x00with\xffbytes".as_slice())
        .unwrap();
    let _: () = con.set("big", vec![0xabu8; 1 << 20]).unwrap();
    let fields: Vec<(String, String)> = (0..100)
        .map(|i| (format!("f{i}"), format!("v{i} ✓")))
        .collect();
    let _: () = con.hset_multiple("hash", &fields).unwrap();
    let items: Vec<String> = (0..1000).map(|i| format!("item {i}")).collect();
    let _: () = con.rpush("list", &items).unwrap();
    let _: () = con.sadd("set", &items[..300]).unwrap();
    for (i, item) in items.iter().take(200).enumerate() {
        let _: () = con.zadd("zset", item, i as f64 * 1.5).unwrap();
    }
    for i in 0..50 {
        let _: String = redis::cmd("XADD")
            .arg("stream")
            .arg("*")
            .arg("n")
            .arg(i)
            .query(con)
            .unwrap();
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("stream")
        .arg("workers")
        .arg("0")
        .query(con)
        .unwrap();
    let _: () = con.set_ex("ttl-hour", "stays", 3600).unwrap();
    let _: () = redis::cmd("SET")
        .arg("soon")
        .arg("gone")
        .arg("PX")
        .arg(1500)
        .query(con)
        .unwrap();
    for i in 0..2000 {
        let _: () = con.set(format!("k:{i}"), i).unwrap();
    }
    redis::cmd("SELECT").arg(3).exec(con).unwrap();
    let _: () = con.set("in-db-3", "three").unwrap();
    let _: () = con.set_ex("db3-ttl", "x", 7200).unwrap();
    redis::cmd("SELECT").arg(0).exec(con).unwrap();
}

/// A throwaway redis-server on a free port, stopped when dropped.
struct Instance {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let start = Instant::now();
        while redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "second redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_spec(port: u16, password: &str) -> ComponentSpec {
    spec(&format!(
        "name = \"cache\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\nport = {port}\n{password}"
    ))
}

#[test]
fn redis_round_trip_keeps_every_key_type_and_expiry() {
    let (Some(port), Some(password)) = (
        service_setting("COFFER_TEST_REDIS_PORT"),
        service_setting("COFFER_TEST_REDIS_PASSWORD"),
    ) else {
        return;
    };
    let port: u16 = port.parse().unwrap();
    let f = Fixture::new();
    let mut con = connect(port, Some(&password));
    populate(&mut con);
    let populated = Instant::now();
    let mut expected = state(&mut con);
    assert!(expected.len() > 2000);
    expected.remove(&(0, b"soon".to_vec()));

    let s = redis_spec(port, "password = { env = \"COFFER_TEST_REDIS_PASSWORD\" }");
    let snap = f.backup(&s).expect("backup");
    assert_eq!(snap.paths, ["cache.rdb"]);

    // "soon" was in the backup with an absolute expiry; wait it out.
    if let Some(rest) = Duration::from_millis(1700).checked_sub(populated.elapsed()) {
        std::thread::sleep(rest);
    }

    // Destroy, restore into the same instance.
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let report = f
        .restore(&s, &snap, &RestoreOptions::default())
        .expect("restore");
    assert!(
        report.notes.iter().any(|n| n.contains("keys restored")),
        "{report:?}"
    );
    let restored = state(&mut con);
    assert_eq!(restored.len(), expected.len());
    assert_same_state(&expected, &restored, "same instance");

    // Into a different instance (no password), then clean replaces extras.
    let other = Instance::start();
    let other_spec = redis_spec(other.port, "");
    f.restore(&other_spec, &snap, &RestoreOptions::default())
        .expect("restore into another instance");
    let mut other_con = connect(other.port, None);
    assert_same_state(&expected, &state(&mut other_con), "other instance");
    let _: () = other_con.set("extra", "not in the backup").unwrap();
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    f.restore(&other_spec, &snap, &clean)
        .expect("clean restore");
    assert_same_state(&expected, &state(&mut other_con), "clean restore");
    f.assert_clean();
}

#[test]
fn redis_failures_are_clear_and_record_nothing() {
    let Some(port) = service_setting("COFFER_TEST_REDIS_PORT") else {
        return;
    };
    let f = Fixture::new();
    let err = f
        .backup(&redis_spec(port.parse().unwrap(), "password = \"wrong\""))
        .unwrap_err();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    let err = f.backup(&redis_spec(1, "")).unwrap_err();
    assert!(err.to_string().contains("Connection refused"), "{err}");
    assert_eq!(f.snapshot_count(), 0);

    // Something that is not an RDB file: the temporary server refuses it,
    // and its log says why.
    let junk = spec(
        "name = \"cache\"\nkind = \"command\"\nbackup = [\"echo\", \"not an rdb\"]\nfile_name = \"cache.rdb\"",
    );
    let snap = f.backup(&junk).unwrap();
    let other = Instance::start();
    let err = f
        .restore(
            &redis_spec(other.port, ""),
            &snap,
            &RestoreOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ComponentError::Tool { .. }), "{err:?}");
    assert!(
        err.to_string().contains("could not load the backup"),
        "{err}"
    );
    f.assert_clean();
}

/// Destination keys that a failed restore must leave alone.
fn seed_destination(port: u16) -> redis::Connection {
    let mut con = connect(port, None);
    let _: () = con.set("keep-me", "precious").unwrap();
    redis::cmd("SELECT").arg(5).exec(&mut con).unwrap();
    let _: () = con.set("keep-me-too", "in db 5").unwrap();
    redis::cmd("SELECT").arg(0).exec(&mut con).unwrap();
    con
}

fn assert_destination_intact(con: &mut redis::Connection, what: &str) {
    let kept: Option<String> = con.get("keep-me").unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("precious"),
        "{what}: db 0 was touched"
    );
    redis::cmd("SELECT").arg(5).exec(con).unwrap();
    let kept: Option<String> = con.get("keep-me-too").unwrap();
    redis::cmd("SELECT").arg(0).exec(con).unwrap();
    assert_eq!(kept.as_deref(), Some("in db 5"), "{what}: db 5 was touched");
}

#[test]
fn redis_a_corrupted_upload_never_flushes_the_destination() {
    if service_setting("COFFER_TEST_REDIS_PORT").is_none() {
        return;
    }
    let f = Fixture::new();
    // A real RDB whose small hash is a listpack, then one entry's back-length
    // byte changed: only deep payload sanitisation notices, and a Redis that
    // does not sanitise would hand the broken payload on to the destination.
    let source = Instance::start();
    let mut src = connect(source.port, None);
    let _: () = src
        .hset_multiple("h", &[("f1", "v1"), ("f2", "v2")])
        .unwrap();
    let _: () = src.set("plain", "value").unwrap();
    let mut rdb = Vec::new();
    coffer_components::download(&redis_spec(source.port, ""), &f.staging(), &mut rdb)
        .expect("download an RDB");
    assert!(rdb.starts_with(b"REDIS"), "{:?}", &rdb[..9]);
    let entry = rdb
        .windows(4)
        .position(|w| w == [0x82, b'f', b'1', 0x03])
        .expect("the listpack entry f1");
    let mut corrupt = rdb.clone();
    corrupt[entry + 3] = 0x09;
    // A zero checksum tells Redis not to verify the file's CRC. (`redis-cli
    // --rdb -` writes the 40-hex-digit end marker of a diskless sync after
    // the file; Redis ignores what follows the checksum.)
    let mut end = corrupt.len();
    if end > 49 && corrupt[end - 40..].iter().all(u8::is_ascii_hexdigit) {
        end -= 40;
    }
    corrupt[end - 8..end].fill(0);
    let corrupt = f.file("cache.rdb", &corrupt);
    let truncated = f.file("cache-truncated.rdb", &rdb[..rdb.len() / 2]);

    let dest = Instance::start();
    let mut con = seed_destination(dest.port);
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    for (what, file) in [("corrupt listpack", &corrupt), ("truncated", &truncated)] {
        let err = f
            .restore_file(&redis_spec(dest.port, ""), file, &clean, None)
            .unwrap_err();
        assert!(
            err.to_string().contains("could not load the backup"),
            "{what}: {err}"
        );
        assert_destination_intact(&mut con, what);
    }
    // The good copy restores (and clean flushes first).
    let good = f.file("cache.rdb", &rdb);
    f.restore_file(&redis_spec(dest.port, ""), &good, &clean, None)
        .expect("a good RDB restores");
    let value: Option<String> = con.hget("h", "f1").unwrap();
    assert_eq!(value.as_deref(), Some("v1"));
    let gone: Option<String> = con.get("keep-me").unwrap();
    assert_eq!(gone, None, "clean flushes what the backup does not have");
    f.assert_clean();
}

#[test]
fn redis_refuses_an_upload_that_is_not_an_rdb() {
    if service_setting("COFFER_TEST_REDIS_PORT").is_none() {
        return;
    }
    let f = Fixture::new();
    let dest = Instance::start();
    let mut con = seed_destination(dest.port);
    let clean = RestoreOptions {
        clean: true,
        ..RestoreOptions::default()
    };
    for junk in [b"SQLite format 3\0".as_slice(), b"REDIS", b"REDISxyzw", b""] {
        let file = f.file("cache.rdb", junk);
        let err = f
            .restore_file(&redis_spec(dest.port, ""), &file, &clean, None)
            .unwrap_err();
        assert!(
            matches!(err, ComponentError::InvalidInput { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("cache.rdb") && text.contains("RDB"),
            "{junk:?}: {text}"
        );
        assert_destination_intact(&mut con, "junk");
    }
    f.assert_clean();
}
