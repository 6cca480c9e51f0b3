use super::*;

#[test]
fn pax_times_round_trip_before_and_after_1970() {
    for (secs, nanos) in [
        (1_600_000_000i64, 123_456_789i32),
        (0, 0),
        (-1, -500_000_000),
        (-7, 0),
    ] {
        let t = rustic_core::jiff::Timestamp::new(secs, nanos).unwrap();
        let (s, n) = parse_pax_time(&pax_time(&t)).unwrap();
        let back = s as i128 * 1_000_000_000 + n as i128;
        assert_eq!(
            back,
            secs as i128 * 1_000_000_000 + nanos as i128,
            "{}",
            pax_time(&t)
        );
    }
}

#[test]
fn unpack_refuses_paths_outside_the_root() {
    let mut raw = Vec::new();
    {
        let mut b = tar::Builder::new(&mut raw);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`: write the name into the header directly.
        let name = b"../escape";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.finish().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let e = unpack_tree(
        raw.as_slice(),
        &root,
        &Counters::default(),
        TarOrigin::Repository,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("unsafe path"), "{e}");
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn unpacked_directory_metadata_never_follows_a_symlink() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let (base, outside) = (tmp.path().join("base"), tmp.path().join("outside"));
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
    let dirs = [UnpackedDir {
        rel: PathBuf::from("link"),
        mode: 0o777,
        mtime: (1000, 0),
        owner: None,
    }];
    let e = apply_unpacked_dirs(&base, &dirs).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    let m = std::fs::metadata(&outside).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime() == 1000), (0o700, false));
}

/// What Coffer itself sealed restores exactly: set-id bits, and as root
/// owners and every extended attribute namespace.
#[test]
fn a_repository_tar_keeps_set_id_bits_owners_and_xattrs() {
    use std::os::unix::fs::MetadataExt;
    let mut raw = Vec::new();
    {
        let mut b = tar::Builder::new(&mut raw);
        b.append_pax_extensions([
            ("SCHILY.xattr.user.a", b"1".as_slice()),
            ("SCHILY.xattr.trusted.b", b"2".as_slice()),
        ])
        .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o4755);
        h.set_uid(4242);
        h.set_gid(4242);
        h.set_size(2);
        b.append_data(&mut h, "tool", &b"#!"[..]).unwrap();
        b.finish().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    if !crate::meta::is_root() {
        eprintln!("needs root (trusted.* attributes, owners): skipped");
        return;
    }
    unpack_tree(
        raw.as_slice(),
        &root,
        &Counters::default(),
        TarOrigin::Repository,
    )
    .unwrap();
    let m = std::fs::metadata(root.join("tool")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4755, 4242, 4242));
    assert_eq!(
        xattr::get(root.join("tool"), "trusted.b").unwrap(),
        Some(b"2".to_vec())
    );
}
