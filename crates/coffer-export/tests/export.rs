//! The export format: round trips, wrong secrets, damage, hostile archives,
//! and property tests over arbitrary and mutated bytes (the fuzzing the
//! issue asks for; `PROPTEST_CASES=200000 cargo test -p coffer-export` for a
//! long run).

use std::io::{Read, Write};
use std::path::Path;

use coffer_export::{
    BackupInfo, ComponentHeader, ExportError, ExportWriter, Limits, Protection, Secret, unpack,
    unpack_tar,
};
use proptest::prelude::*;

fn info() -> BackupInfo {
    BackupInfo {
        backup_id: "nightly-0d3c1f8e-8a4b-4c55-9a55-4f3b6c8d9e10".into(),
        label: "nightly".into(),
        created_at: "2026-11-23T10:00:00Z".into(),
        exported_at: "2026-11-23T11:00:00Z".into(),
        sensitive: false,
    }
}

fn header(name: &str, file: &str, content: &str) -> ComponentHeader {
    ComponentHeader {
        name: name.into(),
        kind: if content == "tree" {
            "files"
        } else {
            "postgres"
        }
        .into(),
        content: content.into(),
        file_name: file.into(),
        sealed: false,
    }
}

fn keypair() -> (Protection, Secret) {
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    (
        Protection::recipients(&[recipient]).unwrap(),
        Secret::Identity(id),
    )
}

/// An export of two components: a 300 kB dump and a small tar.
fn sample(protection: &Protection) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dump: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let tree = b"pretend this is a tar".to_vec();
    let mut w = ExportWriter::new(Vec::new(), protection).unwrap();
    w.add_component(
        header("db", "db.pgdump", "stream"),
        dump.len() as u64,
        |out| out.write_all(&dump),
    )
    .unwrap();
    let long = "u".repeat(64);
    w.add_component(
        header(&long, &format!("{long}.tar"), "tree"),
        tree.len() as u64,
        |out| out.write_all(&tree),
    )
    .unwrap();
    let (bytes, manifest) = w.finish(info()).unwrap();
    assert_eq!(manifest.components.len(), 2);
    (bytes, dump, tree)
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out
}

#[test]
fn round_trip_with_an_identity_checks_every_file() {
    let (protection, secret) = keypair();
    let (bytes, dump, tree) = sample(&protection);
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    let dest = tempfile::tempdir().unwrap();
    let u = unpack(bytes.as_slice(), &secret, dest.path(), &Limits::default()).unwrap();
    assert_eq!(u.manifest.backup_id, info().backup_id);
    assert_eq!(std::fs::read(&u.files["db"]).unwrap(), dump);
    assert_eq!(std::fs::read(&u.files[&"u".repeat(64)]).unwrap(), tree);
    let db = &u.manifest.components[0];
    assert_eq!(db.file, "components/db/db.pgdump");
    assert_eq!(db.size, dump.len() as u64);
    assert_eq!(db.sha256.len(), 64);

    // Someone else's identity opens nothing.
    let (_, other) = keypair();
    let dest = tempfile::tempdir().unwrap();
    let e = unpack(bytes.as_slice(), &other, dest.path(), &Limits::default()).unwrap_err();
    assert!(matches!(e, ExportError::WrongSecret), "{e}");
    assert!(files_under(dest.path()).is_empty());
}

#[test]
fn a_passphrase_export_opens_with_it_and_only_with_it() {
    let protection = Protection::Passphrase("correct horse battery staple".to_owned().into());
    let (bytes, dump, _) = sample(&protection);
    let dest = tempfile::tempdir().unwrap();
    let e = unpack(
        bytes.as_slice(),
        &Secret::passphrase("wrong"),
        dest.path(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ExportError::WrongSecret), "{e}");
    let u = unpack(
        bytes.as_slice(),
        &Secret::passphrase("correct horse battery staple"),
        dest.path(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&u.files["db"]).unwrap(), dump);
    // An identity is not a passphrase.
    let (_, id) = keypair();
    let dest = tempfile::tempdir().unwrap();
    assert!(matches!(
        unpack(bytes.as_slice(), &id, dest.path(), &Limits::default()),
        Err(ExportError::WrongSecret)
    ));
}

#[test]
fn truncation_anywhere_and_flipped_bytes_are_detected() {
    let (protection, secret) = keypair();
    let (bytes, _, _) = sample(&protection);
    for cut in [
        0,
        10,
        100,
        bytes.len() / 2,
        bytes.len() - 17,
        bytes.len() - 1,
    ] {
        let dest = tempfile::tempdir().unwrap();
        let r = unpack(&bytes[..cut], &secret, dest.path(), &Limits::default());
        assert!(r.is_err(), "cut at {cut} of {} was accepted", bytes.len());
    }
    for at in [200, bytes.len() / 3, bytes.len() - 20] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        let dest = tempfile::tempdir().unwrap();
        let e = unpack(bad.as_slice(), &secret, dest.path(), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                e,
                ExportError::Corrupt(_) | ExportError::WrongSecret | ExportError::NotAnExport(_)
            ),
            "{e}"
        );
    }
    let dest = tempfile::tempdir().unwrap();
    let e = unpack(&b"hello"[..], &secret, dest.path(), &Limits::default()).unwrap_err();
    assert!(matches!(e, ExportError::NotAnExport(_)), "{e}");
}

#[test]
fn a_writer_that_breaks_its_promise_fails() {
    let (protection, _) = keypair();
    let mut w = ExportWriter::new(Vec::new(), &protection).unwrap();
    let e = w
        .add_component(header("db", "db.pgdump", "stream"), 10, |out| {
            out.write_all(b"short")
        })
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("5 bytes instead of the announced 10"),
        "{e}"
    );
    let mut w = ExportWriter::new(Vec::new(), &protection).unwrap();
    for (n, f) in [("../x", "f"), ("db", "../f"), ("db", "a/b")] {
        assert!(
            w.add_component(header(n, f, "stream"), 0, |_| Ok(()))
                .is_err()
        );
    }
}

// ---------------------------------------------------------------------- hostile archives

/// A raw tar entry with any name, type, size and data (the tar crate's
/// builder refuses `..`, so the header is filled by hand).
fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, size: u64, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn finish_tar(mut t: Vec<u8>) -> Vec<u8> {
    t.extend_from_slice(&[0u8; 1024]);
    t
}

/// Compresses and encrypts a hand-made tar like a real export.
fn wrap(tar: &[u8], protection: &Protection) -> Vec<u8> {
    let recipients = match protection {
        Protection::Recipients(r) => r.clone(),
        Protection::Passphrase(_) => unreachable!(),
    };
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    let compressed = zstd::encode_all(tar, 3).unwrap();
    w.write_all(&compressed).unwrap();
    w.finish().unwrap();
    out
}

#[test]
fn hostile_archives_are_refused_and_nothing_lands_outside() {
    let (protection, secret) = keypair();
    let outside = tempfile::tempdir().unwrap();
    let dest = outside.path().join("dest");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("traversal", {
            let mut t = Vec::new();
            raw_entry(
                &mut t,
                b"components/db/../../../escape",
                tar::EntryType::Regular,
                1,
                b"x",
            );
            t
        }),
        ("absolute", {
            let mut t = Vec::new();
            raw_entry(&mut t, b"/tmp/escape", tar::EntryType::Regular, 1, b"x");
            t
        }),
        ("symlink", {
            let mut t = Vec::new();
            raw_entry(
                &mut t,
                b"components/db/link",
                tar::EntryType::Symlink,
                0,
                b"",
            );
            t
        }),
        ("device", {
            let mut t = Vec::new();
            raw_entry(&mut t, b"components/db/dev", tar::EntryType::Char, 0, b"");
            t
        }),
        ("directory", {
            let mut t = Vec::new();
            raw_entry(&mut t, b"components/db/", tar::EntryType::Directory, 0, b"");
            t
        }),
        ("unknown name", {
            let mut t = Vec::new();
            raw_entry(&mut t, b"evil.sh", tar::EntryType::Regular, 1, b"x");
            t
        }),
        ("huge declared size", {
            let mut t = Vec::new();
            raw_entry(
                &mut t,
                b"components/db/db.pgdump",
                tar::EntryType::Regular,
                1 << 45,
                b"",
            );
            t
        }),
        ("too many entries", {
            let mut t = Vec::new();
            for i in 0..20 {
                let name = format!("components/c{i}/f");
                raw_entry(&mut t, name.as_bytes(), tar::EntryType::Regular, 1, b"x");
            }
            t
        }),
        ("duplicate", {
            let mut t = Vec::new();
            raw_entry(&mut t, b"components/db/a", tar::EntryType::Regular, 1, b"x");
            raw_entry(&mut t, b"components/db/b", tar::EntryType::Regular, 1, b"x");
            t
        }),
        ("no manifest", {
            let mut t = Vec::new();
            raw_entry(&mut t, b"components/db/a", tar::EntryType::Regular, 1, b"x");
            t
        }),
    ];
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    for (what, tar) in cases {
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir(&dest).unwrap();
        let sealed = wrap(&finish_tar(tar), &protection);
        let e = unpack(sealed.as_slice(), &secret, &dest, &limits).unwrap_err();
        assert!(
            matches!(
                e,
                ExportError::Refused(_) | ExportError::Corrupt(_) | ExportError::TooLarge { .. }
            ),
            "{what}: {e}"
        );
        let mut all = files_under(outside.path());
        all.retain(|p| !p.starts_with("dest"));
        assert!(all.is_empty(), "{what}: wrote {all:?} outside");
        assert!(!Path::new("/tmp/escape").exists());
    }
}

#[test]
fn a_decompression_bomb_is_stopped_by_the_ratio() {
    let (protection, secret) = keypair();
    // 200 MiB of zeros compress to a few kB.
    let mut t = Vec::new();
    let size = 200u64 << 20;
    let mut h = tar::Header::new_gnu();
    h.set_path("components/db/db.pgdump").unwrap();
    h.set_size(size);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    t.extend_from_slice(h.as_bytes());
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(&t).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(size >> 20) {
        enc.write_all(&zeros).unwrap();
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    let compressed = enc.finish().unwrap();
    let Protection::Recipients(r) = &protection else {
        unreachable!()
    };
    let mut sealed = Vec::new();
    let mut w = age::Encryptor::with_recipients(r.iter().map(|r| r as &dyn age::Recipient))
        .unwrap()
        .wrap_output(&mut sealed)
        .unwrap();
    w.write_all(&compressed).unwrap();
    w.finish().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let e = unpack(sealed.as_slice(), &secret, dest.path(), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("expands more than"), "{e}");
}

// ---------------------------------------------------------------------- fuzzing

proptest! {
    // COFFER_FUZZ_CASES cases each (docs/testing.md records the long runs).
    #![proptest_config(coffer_testkit::fuzz::config())]

    /// A real export's decrypted tar (manifest, digests, two components)
    /// with random edits: refused, or unpacked with every file verified
    /// against the manifest — never a panic, never a file outside.
    #[test]
    fn a_real_exports_tar_mutated_is_refused_or_verified(
        tar in coffer_testkit::fuzz::mutated(real_tar().to_vec())
    ) {
        let outside = tempfile::tempdir().unwrap();
        let dest = outside.path().join("d");
        std::fs::create_dir(&dest).unwrap();
        if let Ok(u) = unpack_tar(tar.as_slice(), &dest, &Limits::default(), None) {
            for (name, path) in &u.files {
                prop_assert!(path.starts_with(&dest), "{name}: {}", path.display());
            }
        }
        let all = files_under(outside.path());
        prop_assert!(all.iter().all(|p| p.starts_with('d')), "{all:?}");
    }

    /// Arbitrary bytes through the tar layer: an error or a verified
    /// result, never a panic, never a file outside the destination.
    #[test]
    fn arbitrary_tar_bytes_never_escape(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let outside = tempfile::tempdir().unwrap();
        let dest = outside.path().join("d");
        std::fs::create_dir(&dest).unwrap();
        let _ = unpack_tar(data.as_slice(), &dest, &Limits::default(), None);
        let all = files_under(outside.path());
        prop_assert!(all.iter().all(|p| p.starts_with('d')), "{all:?}");
    }

    /// A real archive's tar with bytes changed, and cut: never a panic or an escape.
    #[test]
    fn mutated_tar_never_escapes(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut tar = Vec::new();
        raw_entry(&mut tar, b"components/db/db.pgdump", tar::EntryType::Regular, 700, &[7u8; 700]);
        raw_entry(&mut tar, b"manifest.json", tar::EntryType::Regular, 2, b"{}");
        let mut tar = finish_tar(tar);
        for (i, b) in flips {
            let at = i.index(tar.len());
            tar[at] = b;
        }
        let tar = &tar[..cut.index(tar.len() + 1).max(1)];
        let outside = tempfile::tempdir().unwrap();
        let dest = outside.path().join("d");
        std::fs::create_dir(&dest).unwrap();
        let _ = unpack_tar(tar, &dest, &Limits::default(), None);
        let all = files_under(outside.path());
        prop_assert!(all.iter().all(|p| p.starts_with('d')), "{all:?}");
    }

    /// Whole exports with bytes changed: refused (age authenticates every
    /// chunk), never a panic.
    #[test]
    fn mutated_exports_are_refused(at in any::<prop::sample::Index>(), b in 1u8..=255) {
        let (id, bytes) = fixed_export();
        let mut bad = bytes.clone();
        let i = at.index(bad.len());
        bad[i] ^= b;
        let dest = tempfile::tempdir().unwrap();
        let r = unpack(bad.as_slice(), &Secret::Identity(id.clone()), dest.path(), &Limits::default());
        prop_assert!(r.is_err());
    }
}

/// The plain tar inside [`fixed_export`]: decrypted and decompressed.
fn real_tar() -> &'static [u8] {
    static TAR: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        let (id, bytes) = fixed_export();
        let mut plain = Vec::new();
        age::Decryptor::new(bytes.as_slice())
            .unwrap()
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        zstd::decode_all(plain.as_slice()).unwrap()
    })
}

/// One export and its identity, made once for all property cases.
fn fixed_export() -> &'static (age::x25519::Identity, Vec<u8>) {
    static FIXED: std::sync::OnceLock<(age::x25519::Identity, Vec<u8>)> =
        std::sync::OnceLock::new();
    FIXED.get_or_init(|| {
        let id = age::x25519::Identity::generate();
        let protection = Protection::Recipients(vec![id.to_public()]);
        (id, sample(&protection).0)
    })
}

#[test]
fn the_reader_reads_a_slow_trickle() {
    /// Gives one byte per read, like a slow upload.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
    let (protection, secret) = keypair();
    let (bytes, dump, _) = sample(&protection);
    let dest = tempfile::tempdir().unwrap();
    let u = unpack(Trickle(&bytes), &secret, dest.path(), &Limits::default()).unwrap();
    assert_eq!(std::fs::read(&u.files["db"]).unwrap(), dump);
}

// ---------------------------------------------------------------------- scrypt and manifest values

/// `bytes` (a passphrase age file) with its scrypt stanza asking for
/// `factor` instead: the header MAC no longer matches, which does not
/// matter, since the factor must be refused before any key is derived.
fn with_work_factor(bytes: &[u8], factor: u8) -> Vec<u8> {
    let header_end = bytes
        .windows(4)
        .position(|w| w == b"--- ")
        .expect("age header");
    let header = std::str::from_utf8(&bytes[..header_end]).unwrap();
    let edited: Vec<String> = header
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix("-> scrypt ") {
            Some(args) => {
                let salt = args.split(' ').next().unwrap();
                format!("-> scrypt {salt} {factor}\n")
            }
            None => line.to_owned(),
        })
        .collect();
    let mut out = edited.concat().into_bytes();
    out.extend_from_slice(&bytes[header_end..]);
    out
}

#[test]
fn a_scrypt_work_factor_above_18_is_refused_naming_it() {
    // Written at 2^10 so the test is fast; only the header is edited.
    let mut r = age::scrypt::Recipient::new("pw".to_owned().into());
    r.set_work_factor(10);
    let mut bytes = Vec::new();
    let mut w = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .unwrap()
        .wrap_output(&mut bytes)
        .unwrap();
    w.write_all(b"not even an export").unwrap();
    w.finish().unwrap();
    for factor in [19u8, 20, 40] {
        let edited = with_work_factor(&bytes, factor);
        let dest = tempfile::tempdir().unwrap();
        let e = unpack(
            edited.as_slice(),
            &Secret::passphrase("pw"),
            dest.path(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ExportError::Refused(_)), "{factor}: {e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("work factor {factor}")) && text.contains("at most 18"),
            "{text}"
        );
    }
    assert_eq!(coffer_export::MAX_SCRYPT_WORK_FACTOR, 18);
}

#[test]
fn manifest_ids_and_labels_must_be_valid() {
    let (protection, secret) = keypair();
    let good = info();
    let cases = [
        ("backup_id", "nightly".to_owned(), good.label.clone()),
        (
            "backup_id",
            "../../etc/passwd".to_owned(),
            good.label.clone(),
        ),
        (
            "backup_id",
            format!("{}\nEVIL=1", good.backup_id),
            good.label.clone(),
        ),
        ("label", good.backup_id.clone(), "$(reboot)".to_owned()),
        ("label", good.backup_id.clone(), "x".to_owned()),
        // A valid label that is not the id's own.
        ("label", good.backup_id.clone(), "weekly".to_owned()),
    ];
    for (field, backup_id, label) in cases {
        let mut w = ExportWriter::new(Vec::new(), &protection).unwrap();
        w.add_component(header("db", "db.pgdump", "stream"), 3, |out| {
            out.write_all(b"abc")
        })
        .unwrap();
        let (bytes, _) = w
            .finish(BackupInfo {
                backup_id: backup_id.clone(),
                label: label.clone(),
                ..info()
            })
            .unwrap();
        let dest = tempfile::tempdir().unwrap();
        let e = unpack(bytes.as_slice(), &secret, dest.path(), &Limits::default()).unwrap_err();
        assert!(
            matches!(e, ExportError::Corrupt(_)),
            "{backup_id:?} / {label:?}: {e}"
        );
        assert!(e.to_string().contains(field), "{e}");
    }
}
