//! Helpers shared by the engine's test suites: a local repository, backup
//! references and sealing keys.
#![allow(dead_code)] // each suite uses a different subset

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use coffer_engine::{AgeIdentity, AgeRecipients, Repo, TreeBackupOptions};
use coffer_model::{BackupId, BackupRef, ComponentName, Label};
use coffer_targets::{LocalStorage, Storage};

pub const PW: &str = "correct horse battery staple";

pub fn storage(dir: &Path) -> Arc<dyn Storage> {
    Arc::new(LocalStorage::new(dir))
}

pub fn new_repo(dir: &Path) -> Repo {
    Repo::init(storage(dir), PW).expect("init")
}

pub fn bref(label: &str, component: &str, count: u32) -> BackupRef {
    let id = BackupId::generate(&Label::new(label).unwrap());
    BackupRef::new(id, ComponentName::new(component).unwrap(), count)
}

pub fn backup_dir(repo: &Repo, src: &Path, component: &str) -> coffer_engine::SnapshotInfo {
    repo.backup_tree(
        src,
        &bref("test", component, 1),
        &TreeBackupOptions::default(),
        None,
    )
    .expect("backup")
}

pub fn sealing() -> (Arc<AgeIdentity>, Arc<AgeRecipients>) {
    let id = AgeIdentity::generate();
    let recipients = AgeRecipients::parse(&[id.recipient()]).unwrap();
    (Arc::new(id), Arc::new(recipients))
}

/// Backs `src` up as component `keys`, sealed to a new identity.
pub fn sealed_tree_backup(
    repo: &Repo,
    src: &Path,
) -> (Arc<AgeIdentity>, coffer_engine::SnapshotInfo) {
    let (identity, recipients) = sealing();
    let snap = repo
        .sealed_to(recipients)
        .backup_tree(
            src,
            &bref("test", "keys", 1),
            &TreeBackupOptions::default(),
            None,
        )
        .unwrap();
    (identity, snap)
}

/// A reader that fails after `ok` bytes, like a dump whose connection drops.
pub struct FailingReader {
    pub ok: usize,
    pub done: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done >= self.ok {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ));
        }
        let n = buf.len().min(self.ok - self.done);
        buf[..n].fill(0x5a);
        self.done += n;
        Ok(n)
    }
}

/// Restore staging directories left in `parent` (there must be none).
pub fn staging_leftovers(parent: &Path) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coffer-restore-"))
        .collect()
}

/// A shaping proxy to `upstream`: a 10 ms round trip capped at 8 MiB/s
/// (with `ftp`, its passive data connections too).
pub fn slow_link(
    upstream: std::net::SocketAddr,
    ftp: bool,
) -> coffer_testkit::shaping::ShapingProxy {
    coffer_testkit::shaping::ShapingProxy::start(
        upstream,
        coffer_testkit::shaping::Shape {
            delay_each_way: std::time::Duration::from_millis(5),
            rate: Some(8 << 20),
            ftp,
        },
    )
}

/// Restores snapshot `snap` of `src` through `repo` — opened on a storage
/// that goes through `link` — twice: once as it is, once with every
/// connection reset while the restore runs. Both must give `src` exactly
/// (the reads are retried; nothing partial is ever committed).
pub fn restore_through_link(
    repo: &Repo,
    link: &coffer_testkit::shaping::ShapingProxy,
    snap: &str,
    src: &Path,
    tmp: &Path,
) {
    use coffer_engine::RestoreMode;
    let dest = tmp.join("through-link");
    repo.restore_tree(snap, &dest, RestoreMode::RefuseNonEmpty, None)
        .expect("restore through the shaped link");
    coffer_testkit::tree::assert_same_tree(src, &dest);
    let dest = tmp.join("through-a-reset");
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            link.reset_connections();
        });
        repo.restore_tree(snap, &dest, RestoreMode::RefuseNonEmpty, None)
            .expect("restore through a reset");
    });
    coffer_testkit::tree::assert_same_tree(src, &dest);
}

/// A reader that hands out what a channel sends, then ends when it closes:
/// a backup that waits for its input holds its locks meanwhile.
pub struct Waiting(pub std::sync::mpsc::Receiver<Vec<u8>>, pub Vec<u8>);

impl Read for Waiting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(chunk) => self.1 = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

/// Waits up to 30 s for `done`, failing with `what` otherwise.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Files in `dir` (0 when it does not exist).
pub fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A stream backup of component `db` on its own thread, reading what the
/// returned sender sends (it ends when the sender is dropped); returns once
/// the backup holds its lock object and its restic lock file in `dir`.
pub fn waiting_backup(
    repo: &Repo,
    dir: &Path,
    label: &str,
) -> (
    std::sync::mpsc::Sender<Vec<u8>>,
    std::thread::JoinHandle<coffer_engine::EngineResult<coffer_engine::SnapshotInfo>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let backing_up = repo.clone();
    let r = bref(label, "db", 1);
    let backup = std::thread::spawn(move || {
        backing_up.backup_stream(Box::new(Waiting(rx, Vec::new())), "db.dump", &r, None)
    });
    wait_for("the backup never took its locks", || {
        count(&dir.join("coffer/locks")) > 0 && count(&dir.join("locks")) > 0
    });
    (tx, backup)
}
