//! Moving a completed staging tree into place, entry by entry, without a
//! moment where an entry is lost.
//!
//! The staging directory `.coffer-restore-…` lives on the destination's own
//! mount: beside the destination when the destination and its parent share
//! a mount (or the destination does not exist yet), else — the destination
//! is a mount point — inside it, a name that mirroring leaves alone. It
//! holds `tree/` (the restored tree) and `old/` (what the commit displaces).
//!
//! Each existing entry is swapped with its new version by
//! `renameat2(RENAME_EXCHANGE)`, so the old one lands in the staging tree; a
//! new entry is moved with `RENAME_NOREPLACE`; an entry a mirror deletes is
//! first moved into `old/`. Every step is journaled; on any failure the
//! journal is played backwards (swap back, move back) and the destination
//! is as it was. Only when every entry is in place (and synced) is the
//! staging directory — the old versions — deleted. Where a filesystem does
//! not implement `RENAME_EXCHANGE`, an entry is moved aside into `old/`
//! first, then the new one into place: still journaled, but with a moment
//! where the entry is missing from the destination.

use std::cell::Cell;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use coffer_model::crash::crash_point;

use crate::fsops::{exchange, rename_noreplace, resolve_existing, same_mount, unsupported};
use crate::restore::{RestoreMode, sync_filesystem};
use crate::{EngineError, EngineResult};

/// The name prefix of staging directories.
pub(crate) const STAGING_PREFIX: &str = ".coffer-restore-";

/// The staging directory of one restore, removed on drop unless a failed
/// rollback left old entries in it.
pub(crate) struct Staging {
    /// `.coffer-restore-…`.
    base: PathBuf,
    /// The tree being restored: `base/tree`.
    pub(crate) path: PathBuf,
    /// Entries the commit displaced or deleted: `base/old`.
    old: PathBuf,
    /// The destination, resolved once.
    dest: PathBuf,
    /// `base` is inside the destination (a mount point).
    inside: bool,
    keep: Cell<bool>,
}

impl Staging {
    /// Staging for a restore into `dest`, on `dest`'s own mount.
    pub(crate) fn for_dest(dest: &Path) -> EngineResult<Self> {
        let dest = resolve_existing(dest)
            .map_err(|e| EngineError::io(format!("resolving {}", dest.display()), e))?;
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let inside = match fs::symlink_metadata(&dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(EngineError::io(format!("reading {}", dest.display()), e)),
            Ok(m) if !m.is_dir() => {
                return Err(EngineError::InvalidInput(format!(
                    "restore destination {} is not a directory",
                    dest.display()
                )));
            }
            // `/` has no parent to stage beside.
            Ok(_) if dest.parent().is_none() => true,
            Ok(_) => !same_mount(&dest, &parent).map_err(|e| {
                EngineError::io(format!("reading the mount of {}", dest.display()), e)
            })?,
        };
        Self::create(dest, parent, inside)
    }

    fn create(dest: PathBuf, parent: PathBuf, inside: bool) -> EngineResult<Self> {
        let tag = rand::random::<u32>();
        let base = if inside {
            dest.join(format!("{STAGING_PREFIX}{tag:08x}"))
        } else {
            fs::create_dir_all(&parent)
                .map_err(|e| EngineError::io(format!("creating {}", parent.display()), e))?;
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            parent.join(format!("{STAGING_PREFIX}{name}-{tag:08x}"))
        };
        fs::create_dir(&base)
            .map_err(|e| EngineError::io(format!("creating staging {}", base.display()), e))?;
        let staging = Self {
            path: base.join("tree"),
            old: base.join("old"),
            base,
            dest,
            inside,
            keep: Cell::new(false),
        };
        for dir in [&staging.path, &staging.old] {
            fs::create_dir(dir)
                .map_err(|e| EngineError::io(format!("creating staging {}", dir.display()), e))?;
        }
        Ok(staging)
    }

    /// Staging inside `dest` whatever the mounts: what a mount point gets.
    #[cfg(test)]
    pub(crate) fn inside(dest: &Path) -> EngineResult<Self> {
        let dest = resolve_existing(dest).map_err(|e| EngineError::io("resolving", e))?;
        let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
        Self::create(dest, parent, true)
    }

    fn name_in_dest(&self) -> Option<OsString> {
        self.inside
            .then(|| self.base.file_name().map(ToOwned::to_owned))
            .flatten()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep.get() && self.base.exists() {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}

/// Moves the completed staging tree into its destination according to
/// `mode` (see the module documentation), then deletes what it displaced.
pub(crate) fn commit(staging: &Staging, mode: RestoreMode) -> EngineResult<()> {
    crash_point("restore.tree.staged");
    commit_with(staging, mode, true, &mut |step| {
        if step > 0 {
            crash_point("restore.tree.commit.step");
        }
        Ok(())
    })?;
    crash_point("restore.tree.committed");
    Ok(())
}

/// [`commit`], trying `RENAME_EXCHANGE` only with `exchange`, and with
/// `fault` called before every step (its number): an error there fails the
/// commit at that step. Both exist for the tests of the rollback.
fn commit_with(
    staging: &Staging,
    mode: RestoreMode,
    exchange: bool,
    fault: &mut dyn FnMut(usize) -> io::Result<()>,
) -> EngineResult<()> {
    let mut mover = Mover {
        journal: Vec::new(),
        old: &staging.old,
        displaced: 0,
        exchange_works: exchange,
        steps: 0,
        fault,
    };
    if let Err(e) = mover.run(staging, mode) {
        let undone = mover.roll_back();
        return match undone {
            Ok(()) => Err(e),
            Err(rb) => {
                // The staging tree holds old entries now: never delete it.
                staging.keep.set(true);
                Err(EngineError::Engine(format!(
                    "{e}; undoing the partial restore failed too ({rb}): entries the restore \
                     replaced are kept in {}",
                    staging.base.display()
                )))
            }
        };
    }
    // Every entry is in place: make that durable before the old versions go.
    sync_filesystem(&staging.dest)?;
    if let Err(e) = fs::remove_dir_all(&staging.base) {
        log::warn!(
            "the restore is complete, but removing {} failed: {e}",
            staging.base.display()
        );
    }
    Ok(())
}

/// One step done, and how to undo it.
#[derive(Debug)]
enum Done {
    /// `a` and `b` were swapped: swap them back.
    Exchanged(PathBuf, PathBuf),
    /// `from` was renamed to `to`: rename it back.
    Moved { from: PathBuf, to: PathBuf },
}

struct Mover<'a> {
    journal: Vec<Done>,
    old: &'a Path,
    displaced: u64,
    exchange_works: bool,
    steps: usize,
    fault: &'a mut dyn FnMut(usize) -> io::Result<()>,
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> EngineError {
    move |e| EngineError::io(what, e)
}

impl Mover<'_> {
    fn run(&mut self, staging: &Staging, mode: RestoreMode) -> EngineResult<()> {
        let (tree, dest) = (&staging.path, &staging.dest);
        // This restore's own staging directory, when it is inside `dest`.
        let skip = staging.name_in_dest();
        let empty = match fs::read_dir(dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(EngineError::io(format!("reading {}", dest.display()), e)),
            Ok(mut it) => Some(it.all(|e| e.is_ok_and(|e| Some(e.file_name()) == skip))),
        };
        match (empty, staging.inside) {
            // Absent: the whole tree moves in one rename.
            (None, _) => self.place(tree, dest),
            // Empty: swapped with the staging tree; the old directory is
            // removed with the staging directory.
            (Some(true), false) => self.replace(tree, dest),
            // Inside a mount point, entry by entry.
            (Some(true), true) => self.merge(tree, dest, false, true),
            (Some(false), _) => match mode {
                RestoreMode::RefuseNonEmpty => Err(EngineError::DestinationNotEmpty(dest.clone())),
                RestoreMode::Overwrite => self.merge(tree, dest, false, true),
                RestoreMode::Mirror => self.merge(tree, dest, true, true),
            },
        }
    }

    fn step(&mut self) -> EngineResult<()> {
        let n = self.steps;
        self.steps += 1;
        (self.fault)(n).map_err(io_err(format!("restore step {n}")))
    }

    /// Moves every entry of `from` into `into`, replacing what is there
    /// (directories are merged); with `mirror`, also moves away entries of
    /// `into` that `from` lacks — but at the `top` level never a staging
    /// directory: this restore's own, or an interrupted one's, which holds
    /// the entries that restore replaced.
    fn merge(&mut self, from: &Path, into: &Path, mirror: bool, top: bool) -> EngineResult<()> {
        if mirror {
            for name in names(into)? {
                if top
                    && name
                        .as_encoded_bytes()
                        .starts_with(STAGING_PREFIX.as_bytes())
                {
                    continue;
                }
                match fs::symlink_metadata(from.join(&name)) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.discard(&into.join(&name))?;
                    }
                    Err(e) => {
                        let shown = from.join(&name).display().to_string();
                        return Err(EngineError::io(format!("reading {shown}"), e));
                    }
                    Ok(_) => {}
                }
            }
        }
        for name in names(from)? {
            let (src, dst) = (from.join(&name), into.join(&name));
            let src_is_dir = fs::symlink_metadata(&src)
                .map_err(io_err(format!("reading {}", src.display())))?
                .is_dir();
            match fs::symlink_metadata(&dst) {
                Ok(m) if m.is_dir() && src_is_dir => self.merge(&src, &dst, mirror, false)?,
                Ok(_) => self.replace(&src, &dst)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.place(&src, &dst)?,
                Err(e) => return Err(EngineError::io(format!("reading {}", dst.display()), e)),
            }
        }
        Ok(())
    }

    /// Moves `src` to the free name `dst`.
    fn place(&mut self, src: &Path, dst: &Path) -> EngineResult<()> {
        self.step()?;
        rename_noreplace(src, dst).map_err(io_err(format!("moving into {}", dst.display())))?;
        self.journal.push(Done::Moved {
            from: src.to_path_buf(),
            to: dst.to_path_buf(),
        });
        Ok(())
    }

    /// Puts `src` in place of the existing `dst`; the old entry ends up in
    /// the staging directory.
    fn replace(&mut self, src: &Path, dst: &Path) -> EngineResult<()> {
        self.step()?;
        if self.exchange_works {
            match exchange(src, dst) {
                Ok(()) => {
                    self.journal
                        .push(Done::Exchanged(src.to_path_buf(), dst.to_path_buf()));
                    return Ok(());
                }
                Err(e) if unsupported(&e) => {
                    log::debug!(
                        "{}: no RENAME_EXCHANGE ({e}); moving entries aside instead",
                        dst.display()
                    );
                    self.exchange_works = false;
                }
                Err(e) => return Err(EngineError::io(format!("replacing {}", dst.display()), e)),
            }
        }
        self.discard(dst)?;
        self.place(src, dst)
    }

    /// Moves `dst` into the staging directory's `old/`.
    fn discard(&mut self, dst: &Path) -> EngineResult<()> {
        let aside = self.old.join(self.displaced.to_string());
        self.displaced += 1;
        self.place(dst, &aside)
    }

    /// Undoes the journal, newest first. Keeps going past a failure (each
    /// step undone is one entry back) and reports the first.
    fn roll_back(&mut self) -> io::Result<()> {
        let mut first = None;
        while let Some(done) = self.journal.pop() {
            let undone = match &done {
                Done::Exchanged(a, b) => exchange(a, b),
                Done::Moved { from, to } => rename_noreplace(to, from),
            };
            if let Err(e) = undone {
                log::error!("undoing {done:?} failed: {e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The names in `dir`, read before anything in it moves (a directory
/// changing while it is read may list an entry twice or not at all).
fn names(dir: &Path) -> EngineResult<Vec<OsString>> {
    let read = |e| EngineError::io(format!("reading {}", dir.display()), e);
    fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.file_name()).map_err(read))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A tree as path → `dir`, `-> target` or the file's content.
    fn listing(root: &Path) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for e in fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let m = fs::symlink_metadata(&path).unwrap();
                let what = if m.is_dir() {
                    walk(root, &path, out);
                    "dir".to_owned()
                } else if m.file_type().is_symlink() {
                    format!("-> {}", fs::read_link(&path).unwrap().display())
                } else {
                    String::from_utf8(fs::read(&path).unwrap()).unwrap()
                };
                out.insert(rel, what);
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    fn build(root: &Path, spec: &[(&str, &str)]) {
        for (rel, what) in spec {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            if *what == "dir" {
                fs::create_dir_all(&path).unwrap();
            } else if let Some(target) = what.strip_prefix("-> ") {
                std::os::unix::fs::symlink(target, &path).unwrap();
            } else {
                fs::write(&path, what).unwrap();
            }
        }
    }

    const OLD: &[(&str, &str)] = &[
        ("a.txt", "old a"),
        ("keep.txt", "mine"),
        ("sub/b.txt", "old b"),
        ("sub/only-old.txt", "x"),
        ("swap/inner.txt", "a directory before"),
        ("link", "-> a.txt"),
        ("gone/deep/f", "not in the backup"),
    ];
    const NEW: &[(&str, &str)] = &[
        ("a.txt", "new a"),
        ("sub/b.txt", "new b"),
        ("sub/new.txt", "n"),
        ("swap", "a file now"),
        ("link", "a file too"),
        ("fresh/c.txt", "c"),
    ];

    fn expected(mode: RestoreMode) -> BTreeMap<String, String> {
        let new = {
            let tmp = tempfile::tempdir().unwrap();
            build(tmp.path(), NEW);
            listing(tmp.path())
        };
        if mode == RestoreMode::Mirror {
            return new;
        }
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), OLD);
        let mut all = listing(tmp.path());
        all.retain(|k, _| !k.starts_with("swap/"));
        all.extend(new);
        all
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".coffer-restore-"))
            .collect()
    }

    /// Overwrite and mirror, staged beside the destination and inside it
    /// (as for a mount point), with and without `RENAME_EXCHANGE`, failing
    /// at every step in turn: the destination is exactly as it was after
    /// each failure, and exactly the expected tree after success.
    #[test]
    fn a_failure_at_any_step_leaves_every_old_entry() {
        for mode in [RestoreMode::Overwrite, RestoreMode::Mirror] {
            for inside in [false, true] {
                for exchange in [true, false] {
                    let case = format!("{mode:?}, inside {inside}, exchange {exchange}");
                    let mut fail_at = 0;
                    loop {
                        let tmp = tempfile::tempdir().unwrap();
                        let dest = tmp.path().join("dest");
                        build(&dest, OLD);
                        let before = listing(&dest);
                        let staging = if inside {
                            Staging::inside(&dest).unwrap()
                        } else {
                            Staging::for_dest(&dest).unwrap()
                        };
                        build(&staging.path, NEW);
                        let mut inject = |n: usize| match n == fail_at {
                            true => Err(io::Error::other("injected failure")),
                            false => Ok(()),
                        };
                        let result = commit_with(&staging, mode, exchange, &mut inject);
                        drop(staging);
                        assert!(leftovers(tmp.path()).is_empty(), "{case}");
                        assert!(leftovers(&dest).is_empty(), "{case}");
                        match result {
                            Err(e) => {
                                assert!(e.to_string().contains("injected"), "{case}: {e}");
                                assert_eq!(listing(&dest), before, "{case}, step {fail_at}");
                                fail_at += 1;
                            }
                            Ok(()) => {
                                assert_eq!(listing(&dest), expected(mode), "{case}");
                                break;
                            }
                        }
                    }
                    assert!(fail_at >= 6, "{case}: only {fail_at} steps");
                }
            }
        }
    }

    #[test]
    fn an_empty_destination_is_swapped_and_an_absent_one_created() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let inode = fs::metadata(&dest).unwrap().ino();
        let staging = Staging::for_dest(&dest).unwrap();
        build(&staging.path, NEW);
        commit(&staging, RestoreMode::RefuseNonEmpty).unwrap();
        drop(staging);
        assert_ne!(fs::metadata(&dest).unwrap().ino(), inode, "swapped in");
        assert_eq!(listing(&dest), expected(RestoreMode::Mirror));
        assert!(leftovers(tmp.path()).is_empty());

        let absent = tmp.path().join("new/dest");
        let staging = Staging::for_dest(&absent).unwrap();
        build(&staging.path, NEW);
        commit(&staging, RestoreMode::RefuseNonEmpty).unwrap();
        drop(staging);
        assert_eq!(listing(&absent), expected(RestoreMode::Mirror));
        assert!(leftovers(&tmp.path().join("new")).is_empty());

        // Not empty: refused, nothing moved.
        let staging = Staging::for_dest(&dest).unwrap();
        build(&staging.path, &[("z", "z")]);
        let e = commit(&staging, RestoreMode::RefuseNonEmpty).unwrap_err();
        assert!(matches!(e, EngineError::DestinationNotEmpty(_)), "{e}");
        drop(staging);
        assert_eq!(listing(&dest), expected(RestoreMode::Mirror));
    }

    #[test]
    fn an_empty_mount_point_is_filled_entry_by_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let staging = Staging::inside(&dest).unwrap();
        assert!(staging.base.starts_with(&dest));
        build(&staging.path, NEW);
        commit(&staging, RestoreMode::RefuseNonEmpty).unwrap();
        drop(staging);
        assert_eq!(listing(&dest), expected(RestoreMode::Mirror));
        assert!(leftovers(&dest).is_empty());
    }

    #[test]
    fn a_failed_rollback_keeps_the_staging_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        build(&dest, &[("old", "precious")]);
        let staging = Staging::for_dest(&dest).unwrap();
        build(&staging.path, &[("p", "p"), ("q", "q")]);
        let tree = staging.path.clone();
        // Before the second step, block the way back of the first entry.
        let mut sabotage = |n: usize| {
            if n == 1 {
                let moved = if dest.join("p").exists() { "p" } else { "q" };
                fs::write(tree.join(moved), b"blocker")?;
                return Err(io::Error::other("injected failure"));
            }
            Ok(())
        };
        let e = commit_with(&staging, RestoreMode::Overwrite, true, &mut sabotage).unwrap_err();
        assert!(e.to_string().contains("kept in"), "{e}");
        let base = staging.base.clone();
        drop(staging);
        assert!(base.exists(), "kept for the operator");
        assert_eq!(fs::read(dest.join("old")).unwrap(), b"precious");
    }

    #[test]
    fn mirror_leaves_an_interrupted_restores_staging_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let earlier = ".coffer-restore-deadbeef/old/0";
        build(
            &dest,
            &[
                ("gone.txt", "x"),
                (earlier, "replaced by a crashed restore"),
            ],
        );
        let staging = Staging::for_dest(&dest).unwrap();
        build(&staging.path, NEW);
        commit(&staging, RestoreMode::Mirror).unwrap();
        drop(staging);
        let mut want = expected(RestoreMode::Mirror);
        for (k, v) in [
            (".coffer-restore-deadbeef", "dir"),
            (".coffer-restore-deadbeef/old", "dir"),
            (earlier, "replaced by a crashed restore"),
        ] {
            want.insert(k.to_owned(), v.to_owned());
        }
        assert_eq!(listing(&dest), want);
    }
}
