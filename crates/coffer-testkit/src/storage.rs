//! One conformance suite for every [`Storage`] backend (local, S3, SFTP,
//! FTP/FTPS), modelled on restic's backend test suite
//! (`internal/backend/test`): what the engine relies on is asserted once,
//! here, and each backend's test only says how to reach its server.
//!
//! Every function works under its own unique key prefix and deletes what it
//! wrote, so runs can share a bucket or directory; each ends by checking
//! that its prefix lists as empty again. The data is bounded: one object of
//! [`LARGE`] bytes (a little over 5 MiB, so an S3 storage whose multipart
//! threshold is below it uploads two parts) and well under 1 MiB besides.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_targets::{ObjectInfo, Storage, StorageError, StorageErrorKind};

use crate::tree::random_bytes;

/// Size of the large object: one byte-odd amount past the 5 MiB minimum S3
/// part, so a multipart upload of it has two parts (5 MiB and 12 345 bytes).
pub const LARGE: usize = (5 << 20) + 12_345;

/// Where interrupted writes leave their temporaries (`coffer_targets`'
/// `TMP_DIR`): never listed.
const TMP_PREFIX: &str = "coffer/tmp/";

/// Keys that could escape the storage root or are malformed: every backend
/// refuses each of them, for every operation, as [`StorageErrorKind::InvalidKey`].
pub const BAD_KEYS: &[&str] = &[
    "",
    "/abs",
    "/etc/passwd",
    "../x",
    "..",
    ".",
    "./a",
    "a/..",
    "a/../b",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "..\\x",
    "C:\\x",
    "a\0b",
];

/// A name unique to this process and call: `name-<pid>-<nanos>-<n>`.
pub fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{name}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One part of the suite: it panics when the storage breaks the contract.
pub type Part = fn(&dyn Storage);

/// The parts of the suite, by name; [`conformance`] runs them all.
pub const PARTS: &[(&str, Part)] = &[
    ("missing_objects", missing_objects),
    ("round_trips", round_trips),
    ("put_parts_concatenates", put_parts_concatenates),
    ("overwrite_replaces_whole", overwrite_replaces_whole),
    ("ranges", ranges),
    ("range_runs", range_runs),
    ("listing", listing),
    ("concurrent_writes", concurrent_writes),
    ("delete", delete),
    ("invalid_keys", invalid_keys),
    ("ensure_prefix", ensure_prefix),
    ("no_temporaries_listed", no_temporaries_listed),
];

/// Runs the whole suite against `s`. Like restic's subtests, every part
/// runs even when an earlier one failed (each failure prints its panic as it
/// happens); the call then panics naming the parts that failed.
pub fn conformance(s: &dyn Storage) {
    let failed: Vec<&str> = PARTS
        .iter()
        .filter(|(_, part)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| part(s))).is_err()
        })
        .map(|(name, _)| *name)
        .collect();
    assert!(
        failed.is_empty(),
        "{}: the storage does not conform: {failed:?} failed (panics above)",
        s.location()
    );
}

/// A restic-shaped object key under `base`: `<dir>/<aa>/<aa…64 hex>`.
fn restic_key(base: &str, dir: &str, seed: u64) -> String {
    let hex: String = random_bytes(seed, 32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{base}{dir}/{}/{hex}", &hex[..2])
}

/// A fresh prefix for one part of the suite, ending in `/`.
fn fresh(part: &str) -> String {
    unique(&format!("conformance-{part}")) + "/"
}

/// The listing under `prefix` as a sorted key → size map, each key listed once.
fn listed(s: &dyn Storage, prefix: &str) -> BTreeMap<String, u64> {
    let loc = s.location();
    let objects = s.list(prefix).unwrap_or_else(|e| panic!("{e}"));
    let mut out = BTreeMap::new();
    for ObjectInfo { key, size } in objects {
        assert!(
            key.starts_with(prefix),
            "{loc}: list {prefix:?} returned {key:?}, outside the prefix"
        );
        assert!(
            out.insert(key.clone(), size).is_none(),
            "{loc}: list {prefix:?} returned {key:?} twice"
        );
    }
    out
}

fn expect(objects: &[(&str, u64)]) -> BTreeMap<String, u64> {
    objects.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

fn put(s: &dyn Storage, key: &str, data: &[u8]) {
    s.put(key, data)
        .unwrap_or_else(|e| panic!("{e} ({} bytes)", data.len()));
}

fn get(s: &dyn Storage, key: &str) -> Vec<u8> {
    s.get(key).unwrap_or_else(|e| panic!("{e}"))
}

fn range(s: &dyn Storage, key: &str, offset: u64, length: u64) -> Vec<u8> {
    s.get_range(key, offset, length)
        .unwrap_or_else(|e| panic!("{e} (at {offset} for {length})"))
}

fn del(s: &dyn Storage, key: &str) {
    s.delete(key).unwrap_or_else(|e| panic!("{e}"));
}

/// Asserts that bytes are equal without printing megabytes on failure.
fn assert_bytes(loc: &str, what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{loc}: {what}: got {} bytes, want {} (first difference at {first:?})",
            got.len(),
            want.len()
        );
    }
}

/// Asserts `err` is `kind` and names the storage and the key.
fn assert_error(
    s: &dyn Storage,
    what: &str,
    err: &StorageError,
    kind: StorageErrorKind,
    key: &str,
) {
    let loc = s.location();
    assert_eq!(err.kind, kind, "{loc}: {what}: {err}");
    let text = err.to_string();
    assert!(
        text.contains(&loc) && text.contains(&format!("{key:?}")),
        "{loc}: {what}: the error must name the target and the key: {text}"
    );
}

/// Deletes everything under `base` and checks that it lists as empty.
fn clean(s: &dyn Storage, base: &str) {
    for key in listed(s, base).into_keys() {
        del(s, &key);
    }
    let left = listed(s, base);
    assert!(
        left.is_empty(),
        "{}: objects left under {base:?} after deleting them: {left:?}",
        s.location()
    );
}

/// Nothing written yet: reads are `NotFound` (also below a directory that
/// does not exist), listings are empty rather than errors, and deleting is
/// harmless.
pub fn missing_objects(s: &dyn Storage) {
    let base = fresh("missing");
    let loc = s.location();
    assert_eq!(
        listed(s, &base),
        expect(&[]),
        "{loc}: a fresh prefix lists objects"
    );
    assert_eq!(listed(s, &format!("{base}no/such/")), expect(&[]));
    for key in [
        format!("{base}nope"),
        format!("{base}no/such/dir/key"),
        restic_key(&base, "data", 1),
    ] {
        let err = s.get(&key).expect_err("get of a missing key");
        assert_error(
            s,
            "get of a missing key",
            &err,
            StorageErrorKind::NotFound,
            &key,
        );
        let err = s
            .get_range(&key, 0, 1)
            .expect_err("get_range of a missing key");
        assert_error(
            s,
            "get_range of a missing key",
            &err,
            StorageErrorKind::NotFound,
            &key,
        );
        // The trait: "Deleting a missing object succeeds".
        del(s, &key);
        let err = s.get(&key).expect_err("a delete must not create anything");
        assert_eq!(err.kind, StorageErrorKind::NotFound, "{loc}: {err}");
    }
    assert_eq!(listed(s, &base), expect(&[]));
}

/// `put` then `get` returns the same bytes, for an empty object, one byte,
/// a small one and [`LARGE`]; the listing reports each size.
pub fn round_trips(s: &dyn Storage) {
    let base = fresh("roundtrip");
    let loc = s.location();
    let cases: [(String, Vec<u8>); 5] = [
        (format!("{base}empty"), Vec::new()),
        (format!("{base}one"), vec![0x5a]),
        (format!("{base}zero"), vec![0]),
        (restic_key(&base, "index", 2), random_bytes(2, 4321)),
        (restic_key(&base, "data", 3), random_bytes(3, LARGE)),
    ];
    for (key, data) in &cases {
        put(s, key, data);
        assert_bytes(&loc, &format!("get {key:?}"), &get(s, key), data);
    }
    let want: BTreeMap<String, u64> = cases
        .iter()
        .map(|(k, d)| (k.clone(), d.len() as u64))
        .collect();
    assert_eq!(listed(s, &base), want, "{loc}: listing after puts");
    // Read again after the listing: nothing was changed by it.
    for (key, data) in &cases[..4] {
        assert_bytes(&loc, &format!("second get {key:?}"), &get(s, key), data);
    }
    clean(s, &base);
}

/// `put_parts` stores the concatenation of its parts, however they are cut
/// (empty parts, no part at all, one byte parts, parts of different sizes).
pub fn put_parts_concatenates(s: &dyn Storage) {
    let base = fresh("parts");
    let loc = s.location();
    let big = random_bytes(4, 300_001);
    let cases: [(String, Vec<&[u8]>); 4] = [
        (format!("{base}hello"), vec![b"hello ", b"", b"world"]),
        (format!("{base}none"), vec![]),
        (format!("{base}empties"), vec![b"", b""]),
        (
            restic_key(&base, "data", 4),
            vec![&big[..1], &big[1..2], &big[2..65_536], &[], &big[65_536..]],
        ),
    ];
    for (key, parts) in &cases {
        s.put_parts(key, parts)
            .unwrap_or_else(|e| panic!("{loc}: put_parts {key:?}: {e}"));
        assert_bytes(&loc, &format!("get {key:?}"), &get(s, key), &parts.concat());
    }
    let want: BTreeMap<String, u64> = cases
        .iter()
        .map(|(k, p)| (k.clone(), p.concat().len() as u64))
        .collect();
    assert_eq!(listed(s, &base), want, "{loc}: listing after put_parts");
    assert_eq!(get(s, &format!("{base}hello")), b"hello world");
    clean(s, &base);
}

/// Writing an existing key replaces the whole object: a shorter object
/// leaves no tail of the longer one, and a longer one is whole.
pub fn overwrite_replaces_whole(s: &dyn Storage) {
    let base = fresh("overwrite");
    let loc = s.location();
    let key = format!("{base}config");
    let long = random_bytes(5, 100_000);
    for data in [&b"one"[..], b"two", &long, b"short", b"", b"last"] {
        put(s, &key, data);
        assert_bytes(
            &loc,
            &format!("get {key:?} after overwrite"),
            &get(s, &key),
            data,
        );
        assert_eq!(
            listed(s, &base),
            expect(&[(&key, data.len() as u64)]),
            "{loc}: listing after overwrite"
        );
    }
    s.put_parts(&key, &[b"pa", b"rts"]).unwrap();
    assert_eq!(get(s, &key), b"parts");
    clean(s, &base);
}

/// Ranged reads return exactly the bytes asked for: at the start, in the
/// middle, at the end, across the S3 part boundary, whole, at random places
/// (as restic's `TestLoad`), and an empty range. A range that goes past the
/// end is an error — never a short read — and not `NotFound` (the object
/// exists) nor `Transient` (retrying cannot help); one that starts inside
/// the object is `Corrupt`.
pub fn ranges(s: &dyn Storage) {
    let base = fresh("ranges");
    let loc = s.location();
    let key = restic_key(&base, "data", 6);
    let data = random_bytes(6, LARGE);
    put(s, &key, &data);
    let len = data.len() as u64;
    let mut cases: Vec<(u64, u64)> = vec![
        (0, 1),
        (0, 100),
        (1, 10),
        ((1 << 20) + 3, 4096),
        (len / 2, 1),
        ((5 << 20) - 10, 20),
        (len - 100, 100),
        (len - 1, 1),
        (0, len),
        (10, 0),
    ];
    // restic's TestLoad: random offsets and lengths inside the object.
    let dice = random_bytes(7, 16 * 8);
    for chunk in dice.chunks(16) {
        let a = u64::from_le_bytes(chunk[..8].try_into().unwrap()) % len;
        let b = u64::from_le_bytes(chunk[8..].try_into().unwrap()) % 70_000;
        cases.push((a, b.min(len - a)));
    }
    for (offset, length) in cases {
        let got = range(s, &key, offset, length);
        let want = &data[offset as usize..(offset + length) as usize];
        assert_bytes(
            &loc,
            &format!("get_range at {offset} for {length}"),
            &got,
            want,
        );
    }

    let small = format!("{base}hello");
    put(s, &small, b"hello world");
    assert_eq!(range(s, &small, 0, 5), b"hello");
    assert_eq!(range(s, &small, 6, 5), b"world");
    assert_eq!(range(s, &small, 3, 5), b"lo wo");
    let one = format!("{base}one");
    put(s, &one, b"x");
    assert_eq!(range(s, &one, 0, 1), b"x");
    let empty = format!("{base}empty");
    put(s, &empty, b"");

    // Partly past the end: the object is shorter than the engine believes.
    for (key, offset, length) in [
        (&small, 6, 50),
        (&small, 0, 12),
        (&one, 0, 2),
        (&key, len - 99, 100),
        (&key, len - 50, 100),
    ] {
        let err = s.get_range(key, offset, length).err().unwrap_or_else(|| {
            panic!("{loc}: get_range {key:?} at {offset} for {length} past the end succeeded")
        });
        assert_error(
            s,
            &format!("get_range at {offset} for {length} past the end"),
            &err,
            StorageErrorKind::Corrupt,
            key,
        );
    }
    // Wholly past the end (restic: offsets length and length + 100).
    for (key, offset, length) in [
        (&small, 11, 1),
        (&small, 20, 5),
        (&one, 1, 1),
        (&empty, 0, 1),
        (&key, len, 100),
        (&key, len + 100, 100),
    ] {
        let err = s.get_range(key, offset, length).err().unwrap_or_else(|| {
            panic!("{loc}: get_range {key:?} at {offset} for {length} past the end succeeded")
        });
        assert!(
            !matches!(
                err.kind,
                StorageErrorKind::NotFound | StorageErrorKind::Transient
            ),
            "{loc}: get_range {key:?} at {offset} for {length} wholly past the end: {err}"
        );
    }
    // The failed reads changed nothing.
    assert_eq!(get(s, &small), b"hello world");
    assert_eq!(
        listed(s, &base),
        expect(&[(&empty, 0), (&small, 11), (&one, 1), (&key, len)])
    );
    clean(s, &base);
}

/// Several ranges of one object read with one `get_ranges` call (one
/// stream on FTP) come back exactly, in the order asked: adjacent, with
/// gaps, empty, going backwards, up to the last byte. One past the end is
/// `Corrupt`; a missing object `NotFound`. A call dropped half-way leaves the
/// storage working.
pub fn range_runs(s: &dyn Storage) {
    let base = fresh("runs");
    let loc = s.location();
    let key = restic_key(&base, "data", 8);
    let data = random_bytes(8, LARGE);
    put(s, &key, &data);
    let len = data.len() as u64;
    let asked: Vec<(u64, u64)> = vec![
        (0, 10),
        (10, 1000),
        (5000, 0),
        (5000, 70_000),
        ((1 << 20) + 1, 4096),
        (1 << 20, 100),
        (len - 500_000, 400_000),
        (len - 1, 1),
    ];
    let got: Vec<Vec<u8>> = s
        .get_ranges(&key, asked.clone())
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(
        got.len(),
        asked.len(),
        "{loc}: get_ranges yields one item per range"
    );
    for ((offset, length), got) in asked.iter().zip(&got) {
        let want = &data[*offset as usize..(offset + length) as usize];
        assert_bytes(
            &loc,
            &format!("get_ranges at {offset} for {length}"),
            got,
            want,
        );
    }

    let mut past = s.get_ranges(&key, vec![(0, 5), (len - 5, 10)]);
    assert_eq!(past.next().map(|r| r.ok()), Some(Some(data[..5].to_vec())));
    let err = past
        .next()
        .and_then(|r| r.err())
        .unwrap_or_else(|| panic!("{loc}: get_ranges past the end succeeded"));
    assert_error(
        s,
        "get_ranges past the end",
        &err,
        StorageErrorKind::Corrupt,
        &key,
    );
    drop(past);

    let missing = restic_key(&base, "data", 9);
    let err = s
        .get_ranges(&missing, vec![(0, 1)])
        .next()
        .and_then(|r| r.err())
        .unwrap_or_else(|| panic!("{loc}: get_ranges of a missing object succeeded"));
    assert_error(
        s,
        "get_ranges of a missing object",
        &err,
        StorageErrorKind::NotFound,
        &missing,
    );

    // Dropped after one range of three, repeatedly: the storage still works.
    for _ in 0..6 {
        let mut half = s.get_ranges(&key, vec![(0, 1), (100, 1), (len - 1, 1)]);
        assert_eq!(half.next().map(|r| r.ok()), Some(Some(data[..1].to_vec())));
    }
    assert_bytes(
        &loc,
        "a read after dropped runs",
        &range(s, &key, 7, 9),
        &data[7..16],
    );
    clean(s, &base);
}

/// Listing under a prefix returns exactly the objects whose keys start with
/// it (a plain string prefix, recursively), with their sizes: nothing from
/// a sibling (`data/ab/` vs `data/abc/` and `data/abfile`, `data/` vs
/// `database`), no directories (not even empty ones), and every object of
/// restic's `data/ab/abcdef…` layout.
pub fn listing(s: &dyn Storage) {
    let base = fresh("list");
    let loc = s.location();
    let k = |rest: &str| format!("{base}{rest}");
    let ab1 = format!("{base}data/ab/ab{}", "0".repeat(62));
    let ab2 = format!("{base}data/ab/ab{}", "f".repeat(62));
    let abc = format!("{base}data/abc/abc{}", "1".repeat(61));
    let cd = restic_key(&base, "data", 8);
    let objects: Vec<(String, Vec<u8>)> = vec![
        (ab1.clone(), random_bytes(8, 17)),
        (ab2.clone(), Vec::new()),
        (abc.clone(), random_bytes(9, 1000)),
        (k("data/abfile"), vec![7]),
        (cd.clone(), random_bytes(10, 4096)),
        (k("database"), b"db".to_vec()),
        (k("config"), b"cfg".to_vec()),
        (k("keys/deep/er/still/k"), b"key".to_vec()),
    ];
    for (key, data) in &objects {
        put(s, key, data);
    }
    s.ensure_prefix(&k("empty/dir"))
        .unwrap_or_else(|e| panic!("{loc}: ensure_prefix: {e}"));
    let size = |key: &str| {
        objects
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, d)| d.len() as u64)
            .unwrap()
    };
    let sized = |keys: &[&String]| -> BTreeMap<String, u64> {
        keys.iter().map(|k| ((*k).clone(), size(k))).collect()
    };
    let all: Vec<&String> = objects.iter().map(|(k, _)| k).collect();
    let cases: Vec<(String, BTreeMap<String, u64>)> = vec![
        (base.clone(), sized(&all)),
        (k("data/ab/"), sized(&[&ab1, &ab2])),
        (k("data/ab/ab"), sized(&[&ab1, &ab2])),
        (k("data/ab/ab0"), sized(&[&ab1])),
        (k("data/ab"), sized(&[&ab1, &ab2, &abc, &k("data/abfile")])),
        (k("data/abc/"), sized(&[&abc])),
        (
            k("data/"),
            sized(&[&ab1, &ab2, &abc, &k("data/abfile"), &cd]),
        ),
        (
            k("data"),
            sized(&[&ab1, &ab2, &abc, &k("data/abfile"), &cd, &k("database")]),
        ),
        (k("config"), sized(&[&k("config")])),
        (k("keys/"), sized(&[&k("keys/deep/er/still/k")])),
        (k("keys/deep/er/"), sized(&[&k("keys/deep/er/still/k")])),
        (k("empty/"), BTreeMap::new()),
        (k("empty/dir/"), BTreeMap::new()),
        (k("nothing/"), BTreeMap::new()),
        (k("dat/"), BTreeMap::new()),
        (k("data/ab/ab0/"), BTreeMap::new()),
    ];
    for (prefix, want) in &cases {
        assert_eq!(&listed(s, prefix), want, "{loc}: list {prefix:?}");
    }
    // After deletes the listing shows exactly what is left, including when a
    // directory has become empty.
    for key in [&ab1, &ab2, &k("database"), &k("keys/deep/er/still/k")] {
        del(s, key);
    }
    assert_eq!(
        listed(s, &base),
        sized(&[&abc, &k("data/abfile"), &cd, &k("config")]),
        "{loc}: listing after deletes"
    );
    assert_eq!(listed(s, &k("data/ab/")), BTreeMap::new());
    assert_eq!(listed(s, &k("keys/")), BTreeMap::new());
    // A deleted key can be written again.
    put(s, &ab1, b"again");
    assert_eq!(listed(s, &k("data/ab/")), expect(&[(&ab1, 5)]));
    clean(s, &base);
}

/// Writes from several threads at once (the engine uploads in parallel) all
/// land, and list as such (restic's `TestList` writes 20–40 files
/// concurrently).
pub fn concurrent_writes(s: &dyn Storage) {
    let base = fresh("concurrent");
    let loc = s.location();
    let keys: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            (
                restic_key(&base, "snapshots", 100 + i),
                random_bytes(200 + i, 55 + (i as usize * 37) % 100),
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for chunk in keys.chunks(6) {
            scope.spawn(move || {
                for (key, data) in chunk {
                    put(s, key, data);
                }
            });
        }
    });
    let want: BTreeMap<String, u64> = keys
        .iter()
        .map(|(k, d)| (k.clone(), d.len() as u64))
        .collect();
    assert_eq!(
        listed(s, &base),
        want,
        "{loc}: listing after concurrent puts"
    );
    for (key, data) in &keys {
        assert_bytes(&loc, &format!("get {key:?}"), &get(s, key), data);
    }
    clean(s, &base);
}

/// Delete removes the object and only it; deleting it again, or a key that
/// never existed, succeeds (the trait: "Deleting a missing object succeeds,
/// so a retried or repeated delete is harmless").
pub fn delete(s: &dyn Storage) {
    let base = fresh("delete");
    let loc = s.location();
    let a = format!("{base}data/aa/a");
    let b = format!("{base}data/aa/b");
    put(s, &a, b"a");
    put(s, &b, b"bb");
    del(s, &a);
    let err = s.get(&a).expect_err("get after delete");
    assert_error(s, "get after delete", &err, StorageErrorKind::NotFound, &a);
    let err = s.get_range(&a, 0, 1).expect_err("get_range after delete");
    assert_eq!(err.kind, StorageErrorKind::NotFound, "{loc}: {err}");
    assert_eq!(get(s, &b), b"bb", "{loc}: delete removed a neighbour");
    assert_eq!(listed(s, &base), expect(&[(&b, 2)]));
    del(s, &a);
    del(s, &a);
    del(s, &format!("{base}never"));
    del(s, &format!("{base}no/such/dir/never"));
    assert_eq!(listed(s, &base), expect(&[(&b, 2)]));
    del(s, &b);
    assert_eq!(listed(s, &base), expect(&[]));
    del(s, &b);
}

/// Keys that could escape the root ([`BAD_KEYS`]) are refused as
/// `InvalidKey` by every operation (`ensure_prefix` too: the trait says
/// every implementation checks keys first), and nothing is written; a
/// listing prefix that climbs out of the root lists nothing.
pub fn invalid_keys(s: &dyn Storage) {
    let loc = s.location();
    let before = listed(s, "");
    for &bad in BAD_KEYS {
        let results: [(&str, Result<(), StorageError>); 6] = [
            ("put", s.put(bad, b"x")),
            ("put_parts", s.put_parts(bad, &[b"x", b"y"])),
            ("get", s.get(bad).map(drop)),
            ("get_range", s.get_range(bad, 0, 1).map(drop)),
            ("delete", s.delete(bad)),
            ("ensure_prefix", s.ensure_prefix(bad)),
        ];
        for (op, result) in results {
            match result {
                Err(e) if e.kind == StorageErrorKind::InvalidKey => {}
                other => panic!("{loc}: {op} {bad:?} must be refused as an invalid key: {other:?}"),
            }
        }
    }
    assert_eq!(
        listed(s, ""),
        before,
        "{loc}: refused keys changed the storage"
    );
    // A listing prefix is not a key (`data/` ends in a slash), but it must
    // not reach outside the root either: refused, or nothing listed.
    put(s, "inside", b"x");
    for prefix in ["../", "../../", "a/../../", "./", "/", "..\\", "a//"] {
        match s.list(prefix) {
            Err(e) if e.kind == StorageErrorKind::InvalidKey => {}
            Ok(found) if found.is_empty() => {}
            other => panic!("{loc}: list {prefix:?} must be refused or empty: {other:?}"),
        }
    }
    del(s, "inside");
}

/// `ensure_prefix` creates what writes below it need, may be repeated, and
/// adds nothing to listings.
pub fn ensure_prefix(s: &dyn Storage) {
    let base = fresh("prefix");
    let loc = s.location();
    let dir = format!("{base}data/ab");
    for _ in 0..3 {
        s.ensure_prefix(&dir)
            .unwrap_or_else(|e| panic!("{loc}: ensure_prefix {dir:?}: {e}"));
    }
    s.ensure_prefix(&format!("{base}data"))
        .unwrap_or_else(|e| panic!("{loc}: ensure_prefix of a parent: {e}"));
    assert_eq!(
        listed(s, &base),
        expect(&[]),
        "{loc}: a prefix lists as an object"
    );
    let key = format!("{dir}/abcdef");
    put(s, &key, b"in");
    s.ensure_prefix(&dir)
        .unwrap_or_else(|e| panic!("{loc}: ensure_prefix {dir:?} holding an object: {e}"));
    assert_eq!(
        get(s, &key),
        b"in",
        "{loc}: ensure_prefix changed an object"
    );
    assert_eq!(listed(s, &base), expect(&[(&key, 2)]));
    clean(s, &base);
}

/// The whole storage lists no temporary of a write (`coffer/tmp/…`).
pub fn no_temporaries_listed(s: &dyn Storage) {
    let base = fresh("tmp");
    put(s, &format!("{base}x"), b"x");
    let tmp: Vec<String> = listed(s, "")
        .into_keys()
        .filter(|k| k.starts_with(TMP_PREFIX))
        .collect();
    assert!(
        tmp.is_empty(),
        "{}: temporaries are listed: {tmp:?}",
        s.location()
    );
    assert!(listed(s, TMP_PREFIX).is_empty());
    clean(s, &base);
}
