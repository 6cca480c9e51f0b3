//! Sealed (age-encrypted) snapshots: which identity opens one, and reading it.

use std::io::Read;

use rustic_core::Repository;

use super::portable::portable_root;
use super::{Repo, SnapshotInfo, guarded};
use crate::lock::LockMode;
use crate::seal::{self, AgeIdentity};
use crate::{EngineError, EngineResult};

impl Repo {
    /// Checks, before anything is restored, that this handle's identity opens
    /// the sealed snapshot (`Ok` for a snapshot that is not sealed). Reads
    /// only the age header.
    pub fn check_identity(&self, snapshot: &str) -> EngineResult<()> {
        let _lock = self.lock(LockMode::Shared, "restore")?;
        guarded(|| {
            let repo = self.handle(None, None)?;
            let snap = self.find_snapshot(&repo, snapshot)?;
            let info = SnapshotInfo::from_snapshot(&snap);
            if !info.sealed {
                return Ok(());
            }
            let identity = self.identity_for(&info)?;
            let repo = repo.to_indexed().map_err(|e| EngineError::rustic(&e))?;
            // A sealed snapshot is one file: its portable form is the age file.
            let (node, _) = portable_root(&repo, &snap, &info)?;
            self.read_sealed(&repo, &node, identity, false, |_| Ok(()))
        })
    }

    /// The identity a sealed snapshot needs, or an error saying so.
    pub(super) fn identity_for(&self, info: &SnapshotInfo) -> EngineResult<&AgeIdentity> {
        self.identity
            .as_deref()
            .ok_or_else(|| EngineError::SealedWithoutIdentity {
                snapshot: info.id.clone(),
            })
    }

    /// Streams the sealed file `node` through age decryption into `consume`.
    /// The fetcher writes a file out, so it writes into a pipe on a scoped
    /// thread while this one decrypts. With `whole`, the dump must
    /// also finish cleanly (a consumer that stops early ends it with a
    /// broken pipe, which is expected only for a header check).
    pub(super) fn read_sealed<S: rustic_core::IndexedFull + Sync, T>(
        &self,
        repo: &Repository<S>,
        node: &rustic_core::repofile::Node,
        identity: &AgeIdentity,
        whole: bool,
        consume: impl FnOnce(&mut dyn Read) -> std::io::Result<T>,
    ) -> EngineResult<T> {
        let fetcher = self.fetcher();
        let (mut pipe, mut writer) =
            std::io::pipe().map_err(|e| EngineError::io("creating a pipe", e))?;
        std::thread::scope(|scope| {
            let dumper = scope.spawn(move || {
                let result = crate::fetch::ordered::write_file(&fetcher, repo, node, &mut writer);
                drop(writer);
                result
            });
            let consumed =
                seal::open_sealed(&mut pipe, identity).and_then(|mut plain| consume(&mut plain));
            // Whatever the consumer left unread ends the dump with a broken pipe.
            drop(pipe);
            let dumped = dumper
                .join()
                .map_err(|_| EngineError::Panicked("reading the sealed snapshot".into()))?;
            match (consumed, dumped) {
                (Ok(v), Ok(_)) => Ok(v),
                (Ok(v), Err(_)) if !whole => Ok(v),
                (Ok(_), Err(e)) => Err(EngineError::Engine(format!(
                    "reading the sealed snapshot: {e}"
                ))),
                (Err(e), Ok(_)) => Err(EngineError::Unseal(e.to_string())),
                (Err(e), Err(de)) => Err(EngineError::Unseal(format!(
                    "{e} (reading the snapshot: {de})"
                ))),
            }
        })
    }

    // ------------------------------------------------------------------ maintenance
}
