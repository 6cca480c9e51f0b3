//! Adapts a neutral [`Storage`] to rustic_core's backend traits, using the
//! restic repository layout (`config`, `keys/`, `snapshots/`, `index/`,
//! `data/xx/`), so repositories open with plain `restic`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use coffer_model::crash::crash_point;
use coffer_targets::{Storage, StorageError, StorageErrorKind};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};

use crate::uploads::Uploads;

/// Problems found while a backup ran. The backend refuses to write a snapshot
/// file while the gate holds any, so an incomplete backup is never recorded —
/// not even for the moment before it could be deleted again.
#[derive(Debug, Default)]
pub(crate) struct SnapshotGate {
    failures: Mutex<Vec<String>>,
}

impl SnapshotGate {
    pub(crate) fn fail(&self, reason: String) {
        log::warn!("{reason}");
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(reason);
    }

    pub(crate) fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// rustic_core's view of a Coffer storage.
#[derive(Debug, Clone)]
pub(crate) struct StorageBackend {
    storage: Arc<dyn Storage>,
    gate: Option<Arc<SnapshotGate>>,
    /// Packs being uploaded; everything else waits for them.
    uploads: Arc<Uploads>,
}

impl StorageBackend {
    pub(crate) fn new(storage: Arc<dyn Storage>, gate: Option<Arc<SnapshotGate>>) -> Self {
        let uploads = Arc::new(Uploads::new(Arc::clone(&storage)));
        Self {
            storage,
            gate,
            uploads,
        }
    }
}

/// The key of a repository file in the restic layout.
pub(crate) fn key_of(tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    match tpe {
        FileType::Config => "config".to_owned(),
        FileType::Pack => format!("data/{}/{}", &hex[..2], &*hex),
        _ => format!("{}/{}", tpe.dirname(), &*hex),
    }
}

fn backend_err(err: StorageError) -> Box<RusticError> {
    let kind = match err.kind {
        StorageErrorKind::Corrupt => ErrorKind::Verification,
        StorageErrorKind::InvalidKey => ErrorKind::InvalidInput,
        _ => ErrorKind::Backend,
    };
    RusticError::with_source(kind, "storage operation failed", err)
}

impl ReadBackend for StorageBackend {
    fn location(&self) -> String {
        self.storage.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let found = self.storage.list("config").map_err(backend_err)?;
            return Ok(found
                .into_iter()
                .filter(|o| o.key == "config")
                .map(|o| (Id::default(), u32::try_from(o.size).unwrap_or(u32::MAX)))
                .collect());
        }
        let prefix = format!("{}/", tpe.dirname());
        let objects = self.storage.list(&prefix).map_err(backend_err)?;
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            let name = o.key.rsplit('/').next().unwrap_or_default();
            // Anything that is not a 64-hex-digit id is not part of the
            // repository format (e.g. a stray file): skip it, as restic does.
            let Ok(id) = name.parse::<Id>() else {
                log::warn!("ignoring unexpected object {}", o.key);
                continue;
            };
            let size = u32::try_from(o.size).map_err(|_| {
                RusticError::new(
                    ErrorKind::Backend,
                    "object `{key}` is larger than 4 GiB, which the repository format never writes",
                )
                .attach_context("key", o.key.clone())
            })?;
            out.push((id, size));
        }
        Ok(out)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.storage
            .get(&key_of(tpe, id))
            .map(Bytes::from)
            .map_err(backend_err)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        self.storage
            .get_range(&key_of(tpe, id), offset.into(), length.into())
            .map(Bytes::from)
            .map_err(backend_err)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        key_of(tpe, id)
    }
}

impl WriteBackend for StorageBackend {
    fn create(&self) -> RusticResult<()> {
        // restic expects the directory layout to exist on file-like targets.
        for dir in ["keys", "snapshots", "index", "locks"] {
            self.storage.ensure_prefix(dir).map_err(backend_err)?;
        }
        for i in 0..=255u8 {
            self.storage
                .ensure_prefix(&format!("data/{i:02x}"))
                .map_err(backend_err)?;
        }
        Ok(())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        if tpe == FileType::Pack {
            crash_point("store.pack.before");
            let stored = self
                .uploads
                .put_pack(key_of(tpe, id), content)
                .map_err(backend_err);
            crash_point("store.pack.after");
            return stored;
        }
        // An index or snapshot must never name a pack that is not stored.
        self.uploads.barrier().map_err(backend_err)?;
        if tpe == FileType::Snapshot
            && let Some(gate) = &self.gate
            && !gate.is_open()
        {
            return Err(RusticError::new(
                ErrorKind::Verification,
                "backup is incomplete; refusing to record its snapshot",
            ));
        }
        let (before, after) = match tpe {
            FileType::Snapshot => ("store.snapshot.before", "store.snapshot.after"),
            _ => ("store.index.before", "store.index.after"),
        };
        crash_point(before);
        // Index writes can run on rustic_core's packer threads too: a
        // panic there is an error here, never a pipeline that ends early.
        let stored =
            crate::uploads::store(&*self.storage, &key_of(tpe, id), &content).map_err(backend_err);
        crash_point(after);
        stored
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        // A prune whose lock was lost closes its gate: it must not delete
        // packs or index files another process may now be relying on.
        if matches!(tpe, FileType::Pack | FileType::Index)
            && let Some(gate) = &self.gate
            && !gate.is_open()
        {
            return Err(RusticError::new(
                ErrorKind::Verification,
                "the operation was stopped; refusing to delete `{key}`",
            )
            .attach_context("key", key_of(tpe, id)));
        }
        // Prune removes what the packs being written replace.
        self.uploads.barrier().map_err(backend_err)?;
        let (before, after) = match tpe {
            FileType::Pack => ("remove.pack.before", "remove.pack.after"),
            FileType::Index => ("remove.index.before", "remove.index.after"),
            _ => ("remove.snapshot.before", "remove.snapshot.after"),
        };
        crash_point(before);
        let removed = self.storage.delete(&key_of(tpe, id)).map_err(backend_err);
        crash_point(after);
        removed
    }
}
