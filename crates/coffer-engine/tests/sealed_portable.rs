//! Sealed components (age-encrypted before the repository sees them),
//! snapshots as one portable file, and tree tars from outside — including
//! hostile ones.

use std::fs;
use std::io::{self};
use std::sync::Arc;

use coffer_engine::{AgeIdentity, ContentKind, EngineError, RestoreMode, SnapshotFilter};
use coffer_testkit::tree::{self, assert_same_tree};
use coffer_testkit::{restic_bytes, restic_check};

mod common;

use common::*;
#[test]
fn a_sealed_tree_round_trips_and_needs_its_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    // A FIFO too: the tar crate alone would bring it back as a regular file.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("nested/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    tree::set_mtime(&src.join("nested/pipe"), 1_500_000_000, 5);
    tree::set_mtime(&src.join("nested"), 1_600_000_000, 7);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let (identity, snap) = sealed_tree_backup(&repo, &src);
    assert!(snap.sealed);
    assert_eq!(snap.kind, Some(ContentKind::Tree));
    assert_eq!(snap.paths, ["keys.tar.age"]);
    assert!(snap.tags.iter().any(|t| t == coffer_engine::tags::SEALED));

    let dest = tmp.path().join("restored");
    let err = repo
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(
        matches!(err, EngineError::SealedWithoutIdentity { .. }),
        "{err}"
    );
    let wrong = repo.with_identity(Arc::new(AgeIdentity::generate()));
    let err = wrong
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not one this component was sealed to"),
        "{err}"
    );
    assert!(wrong.check_identity(&snap.id).is_err());
    assert!(!dest.exists(), "nothing restored with the wrong identity");
    assert!(staging_leftovers(tmp.path()).is_empty());

    let opener = repo.with_identity(Arc::clone(&identity));
    opener.check_identity(&snap.id).unwrap();
    opener
        .restore_tree(&snap.id, &dest, RestoreMode::RefuseNonEmpty, None)
        .unwrap();
    // Everything but the holes: a tar stores a sparse file densely.
    assert_same_tree(&src, &dest);
    restic_check(&dir, PW);

    // Disaster recovery without Coffer: restic dump, age, tar.
    if let Some(sealed) = restic_bytes(&dir, PW, &["dump", &snap.id, "/keys.tar.age"]) {
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        assert!(!sealed.windows(12).any(|w| w == b"hello coffer"));
        let mut sealed = sealed.as_slice();
        let plain = coffer_engine::seal::open_sealed(&mut sealed, &identity).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(plain).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert!(names.iter().any(|n| n == "plain.txt"), "{names:?}");
    }
}

#[test]
fn a_sealed_stream_round_trips_and_a_failing_source_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);
    let (identity, recipients) = sealing();
    let sealer = repo.sealed_to(recipients);
    let data = tree::random_bytes(9, 3_000_000);
    let snap = sealer
        .backup_stream(
            Box::new(io::Cursor::new(data.clone())),
            "vault.snap",
            &bref("test", "vault", 1),
            None,
        )
        .unwrap();
    assert!(snap.sealed);
    assert_eq!(snap.kind, Some(ContentKind::Stream));
    assert_eq!(snap.paths, ["vault.snap.age"]);

    let mut out = Vec::new();
    assert!(matches!(
        repo.restore_stream(&snap.id, &mut out),
        Err(EngineError::SealedWithoutIdentity { .. })
    ));
    assert!(out.is_empty());
    repo.with_identity(identity)
        .restore_stream(&snap.id, &mut out)
        .unwrap();
    assert!(out == data, "the sealed stream restores byte for byte");

    let err = sealer
        .backup_stream(
            Box::new(FailingReader {
                ok: 1 << 20,
                done: 0,
            }),
            "vault.snap",
            &bref("test", "vault", 1),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Incomplete { .. }), "{err}");
    let all = repo.snapshots(&SnapshotFilter::default()).unwrap();
    assert_eq!(all.len(), 1, "the failed sealed backup recorded nothing");
    // An unsealed snapshot needs no identity.
    let plain = repo
        .backup_stream(
            Box::new(io::Cursor::new(b"x".to_vec())),
            "p",
            &bref("test", "p", 1),
            None,
        )
        .unwrap();
    repo.check_identity(&plain.id).unwrap();
    restic_check(&dir, PW);
}

#[test]
fn a_snapshot_travels_as_one_file_of_the_announced_length() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let dir = tmp.path().join("repo");
    let repo = new_repo(&dir);

    // A tree: a tar whose length is known before a byte of it is written.
    let snap = backup_dir(&repo, &src, "files");
    let form = repo.portable_form(&snap.id).unwrap();
    assert_eq!(form.file_name, "files.tar");
    assert_eq!(form.content, ContentKind::Tree);
    assert!(!form.sealed);
    let mut tar_bytes = Vec::new();
    let written = repo.write_portable(&snap.id, &mut tar_bytes).unwrap();
    assert_eq!((written, tar_bytes.len() as u64), (form.len, form.len));
    let out = tmp.path().join("from-tar");
    fs::create_dir(&out).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    archive.set_preserve_permissions(true);
    archive.unpack(&out).unwrap();
    let (a, b) = (tree::walk(&src), tree::walk(&out));
    assert_eq!(a.len(), b.len());
    for (k, e) in &a {
        assert_eq!(e.content_hash, b[k].content_hash, "{}", k.display());
        assert_eq!(e.mode, b[k].mode, "{}", k.display());
        assert_eq!(e.link, b[k].link, "{}", k.display());
    }

    // A stream: its bytes, though its node records no size.
    let data = tree::random_bytes(3, 1_234_567);
    let s = repo
        .backup_stream(
            Box::new(io::Cursor::new(data.clone())),
            "db.dump",
            &bref("test", "db", 1),
            None,
        )
        .unwrap();
    let form = repo.portable_form(&s.id).unwrap();
    assert_eq!((form.file_name.as_str(), form.len), ("db.dump", 1_234_567));
    let mut out = Vec::new();
    repo.write_portable(&s.id, &mut out).unwrap();
    assert!(out == data);

    // A sealed snapshot travels still sealed.
    let (_, sealed) = sealed_tree_backup(&repo, &src);
    let form = repo.portable_form(&sealed.id).unwrap();
    assert!(form.sealed);
    assert_eq!(form.file_name, "keys.tar.age");
    let mut out = Vec::new();
    repo.write_portable(&sealed.id, &mut out).unwrap();
    assert_eq!(out.len() as u64, form.len);
    assert!(out.starts_with(b"age-encryption.org/v1"));
}

#[test]
fn a_tree_tar_from_outside_restores_like_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    // The native form of a directory, as a per-component download gives it.
    let mut tar_bytes = Vec::new();
    let written = coffer_engine::write_dir_tar(&src, &[], &mut tar_bytes, None).unwrap();
    assert_eq!(written, tar_bytes.len() as u64);
    assert!(coffer_engine::seal::verify_tree_tar(&mut tar_bytes.as_slice()).unwrap() > 10);
    let dest = tmp.path().join("dest");
    coffer_engine::restore_tree_from_tar(
        &mut tar_bytes.as_slice(),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap();
    // Everything but the owners: an upload's files belong to the user
    // Coffer runs as (`TarOrigin::Untrusted`).
    let mut expected = tree::walk(&src);
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    for e in expected.values_mut() {
        e.uid_gid = e.uid_gid.map(|_| me);
    }
    assert_eq!(expected, tree::walk(&dest));
    // A non-empty destination is refused, as for a snapshot.
    let e = coffer_engine::restore_tree_from_tar(
        &mut tar_bytes.as_slice(),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, EngineError::DestinationNotEmpty(_)), "{e}");
}

/// A tar with raw entries (names the `tar` crate's builder would refuse).
fn hostile_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn hostile_tree_tars_are_refused_and_write_nothing_outside() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let escape = outside.to_str().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", hostile_tar(&[("../evil", T::Regular, "", b"x")])),
        (
            "absolute",
            hostile_tar(&[("/tmp/evil", T::Regular, "", b"x")]),
        ),
        (
            "symlink escape",
            hostile_tar(&[
                ("link", T::Symlink, escape, b""),
                ("link/evil", T::Regular, "", b"x"),
            ]),
        ),
        (
            "directory through a symlink",
            hostile_tar(&[
                ("link", T::Symlink, escape, b""),
                ("link/sub", T::Directory, "", b""),
            ]),
        ),
        (
            "hard link",
            hostile_tar(&[("hard", T::Link, "/etc/passwd", b"")]),
        ),
        ("block device", hostile_tar(&[("sda", T::Block, "", b"")])),
        ("char device", hostile_tar(&[("mem", T::Char, "", b"")])),
        ("sparse", hostile_tar(&[("holes", T::GNUSparse, "", b"")])),
    ];
    for (what, bytes) in cases {
        assert!(
            coffer_engine::seal::verify_tree_tar(&mut bytes.as_slice()).is_err(),
            "{what}: verified"
        );
        let dest = tmp.path().join(format!("dest-{}", what.replace(' ', "-")));
        let e = coffer_engine::restore_tree_from_tar(
            &mut bytes.as_slice(),
            &dest,
            RestoreMode::RefuseNonEmpty,
            None,
        )
        .expect_err(what);
        assert!(matches!(e, EngineError::InvalidInput(_)), "{what}: {e}");
        // Nothing outside, no destination, no staging left behind.
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{what}");
        assert!(!dest.exists(), "{what}");
        assert!(!tmp.path().join("evil").exists(), "{what}");
        assert!(staging_leftovers(tmp.path()).is_empty(), "{what}");
    }
    // A truncated archive fails too, and leaves the destination alone.
    let src = tmp.path().join("src");
    tree::build_rich_tree(&src);
    let mut whole = Vec::new();
    coffer_engine::write_dir_tar(&src, &[], &mut whole, None).unwrap();
    let cut = &whole[..whole.len() / 2];
    let dest = tmp.path().join("dest-truncated");
    assert!(
        coffer_engine::restore_tree_from_tar(&mut &cut[..], &dest, RestoreMode::Overwrite, None)
            .is_err()
    );
    assert!(!dest.exists());
}
