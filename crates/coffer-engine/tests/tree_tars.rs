//! Tree tars from outside the repository are hostile input: header bombs,
//! entries reusing an earlier entry's path (a symlink's above all), and
//! what an upload may not set (set-uid/set-gid bits, owners, extended
//! attributes outside `user.`).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use coffer_engine::{EngineError, RestoreMode};

/// One raw tar entry; the header is written as given (the `tar` crate's
/// builder would refuse some of these names).
#[derive(Clone, Copy)]
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    mode: u32,
    uid: u64,
    data: &'a [u8],
    pax: &'a [(&'a str, &'a [u8])],
}

const FILE: Raw<'static> = Raw {
    name: "",
    kind: tar::EntryType::Regular,
    link: "",
    mode: 0o644,
    uid: 0,
    data: b"",
    pax: &[],
};

fn raw(name: &'static str, kind: tar::EntryType) -> Raw<'static> {
    Raw {
        name,
        kind,
        mode: if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        },
        ..FILE
    }
}

fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.pax.is_empty() {
            b.append_pax_extensions(e.pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.uid);
        h.set_mtime(1_600_000_000);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn staging_leftovers(parent: &Path) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coffer-restore-"))
        .collect()
}

/// A header, then zeros without end — failing once `limit` zeros were read.
struct Endless {
    head: Vec<u8>,
    pos: usize,
    zeros: u64,
    limit: u64,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        if self.zeros >= self.limit {
            return Err(io::Error::other("read past the header guard"));
        }
        let n = buf.len().min((self.limit - self.zeros) as usize);
        buf[..n].fill(0);
        self.zeros += n as u64;
        Ok(n)
    }
}

fn bomb() -> Endless {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..12].copy_from_slice(b"PaxHeaders/f");
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(8 << 30);
    h.set_cksum();
    Endless {
        head: h.as_bytes().to_vec(),
        pos: 0,
        zeros: 0,
        limit: 64 << 20,
    }
}

#[test]
fn a_header_bomb_in_a_tree_tar_is_refused_before_it_is_read() {
    let mut src = bomb();
    let e = coffer_engine::seal::verify_tree_tar(&mut src).unwrap_err();
    assert!(e.to_string().contains("8589934592"), "{e}");
    assert_eq!(src.zeros, 0, "nothing past the header was read");

    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let mut src = bomb();
    let e = coffer_engine::restore_tree_from_tar(&mut src, &dest, RestoreMode::Overwrite, None)
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::InvalidInput(m) if m.contains("8589934592")),
        "{e}"
    );
    assert_eq!(src.zeros, 0);
    assert!(!dest.exists());
    assert!(staging_leftovers(tmp.path()).is_empty());
}

#[test]
fn an_entry_reusing_an_earlier_path_is_refused() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    let before = fs::metadata(&outside).unwrap();
    let escape: &'static str = Box::leak(outside.to_str().unwrap().to_owned().into_boxed_str());
    let link = |name: &'static str| Raw {
        link: escape,
        ..raw(name, T::Symlink)
    };
    let evil_dir = Raw {
        mode: 0o777,
        pax: &[
            ("SCHILY.xattr.user.evil", b"x".as_slice()),
            ("mtime", b"1.5".as_slice()),
        ],
        ..raw("link", T::Directory)
    };
    let cases: Vec<(&str, Vec<Raw>)> = vec![
        ("directory over a symlink", vec![link("link"), evil_dir]),
        (
            "file over a symlink",
            vec![
                link("link"),
                Raw {
                    data: b"x",
                    ..raw("link", T::Regular)
                },
            ],
        ),
        ("symlink over a file", vec![raw("a", T::Regular), link("a")]),
        (
            "a file twice",
            vec![raw("a", T::Regular), raw("a", T::Regular)],
        ),
        (
            "a file over a directory",
            vec![raw("d", T::Directory), raw("d", T::Regular)],
        ),
        (
            "a file below a file",
            vec![raw("a", T::Regular), raw("a/b", T::Regular)],
        ),
        (
            "a symlink over an implied directory",
            vec![raw("a/b", T::Regular), link("a")],
        ),
        ("the root as a symlink", vec![link(".")]),
    ];
    for (what, entries) in cases {
        let bytes = raw_tar(&entries);
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
        let after = fs::metadata(&outside).unwrap();
        assert_eq!(after.mode(), before.mode(), "{what}: mode changed");
        assert_eq!(after.mtime(), before.mtime(), "{what}: time changed");
        assert_eq!(xattr::get(&outside, "user.evil").unwrap(), None, "{what}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{what}");
        assert!(!dest.exists(), "{what}");
        assert!(staging_leftovers(tmp.path()).is_empty(), "{what}");
    }

    // A directory listed twice is one directory.
    let bytes = raw_tar(&[
        raw("d", T::Directory),
        raw("d", T::Directory),
        Raw {
            data: b"ok",
            ..raw("d/f", T::Regular)
        },
    ]);
    assert_eq!(
        coffer_engine::seal::verify_tree_tar(&mut bytes.as_slice()).unwrap(),
        3
    );
    let dest = tmp.path().join("dest-twice");
    coffer_engine::restore_tree_from_tar(
        &mut bytes.as_slice(),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap();
    assert_eq!(fs::read(dest.join("d/f")).unwrap(), b"ok");
}

#[test]
fn uploads_lose_set_id_bits_owners_and_foreign_xattrs() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    let bytes = raw_tar(&[
        raw(".", T::Directory),
        Raw {
            mode: 0o3775,
            uid: 4242,
            pax: &[("SCHILY.xattr.trusted.dir", b"x".as_slice())],
            ..raw("shared", T::Directory)
        },
        Raw {
            mode: 0o4755,
            uid: 4242,
            data: b"#!/bin/sh\n",
            pax: &[
                ("SCHILY.xattr.user.keep", b"yes".as_slice()),
                ("SCHILY.xattr.trusted.evil", b"x".as_slice()),
                ("SCHILY.xattr.security.evil", b"x".as_slice()),
            ],
            ..raw("shared/tool", T::Regular)
        },
        Raw {
            mode: 0o2640,
            uid: 4242,
            ..raw("shared/pipe", T::Fifo)
        },
    ]);
    coffer_engine::seal::verify_tree_tar(&mut bytes.as_slice()).unwrap();
    let dest = tmp.path().join("dest");
    coffer_engine::restore_tree_from_tar(
        &mut bytes.as_slice(),
        &dest,
        RestoreMode::RefuseNonEmpty,
        None,
    )
    .unwrap();
    let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("shared"), 0o1775, "sticky stays, set-gid goes");
    assert_eq!(mode("shared/tool"), 0o755, "set-uid goes");
    assert_eq!(mode("shared/pipe"), 0o640, "set-gid goes");
    let me = rustix::process::geteuid().as_raw();
    for p in ["shared", "shared/tool", "shared/pipe"] {
        let m = fs::symlink_metadata(dest.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid() == 4242), (me, false), "{p}: owner");
    }
    let tool = dest.join("shared/tool");
    assert_eq!(
        xattr::get(&tool, "user.keep").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    for name in ["trusted.evil", "security.evil"] {
        assert_eq!(xattr::get(&tool, name).unwrap(), None, "{name}");
    }
    assert_eq!(
        xattr::get(dest.join("shared"), "trusted.dir").unwrap(),
        None
    );
}
