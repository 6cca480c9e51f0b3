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
