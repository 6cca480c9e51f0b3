//! The manifest: what an export holds, written last and checked on unpack.

use std::path::{Component, Path};

use coffer_model::ComponentName;
use serde::{Deserialize, Serialize};

use crate::COMPONENTS_DIR;

/// What an export holds: written last into the archive, checked by [`unpack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The backup exported.
    pub backup_id: String,
    /// Its label.
    pub label: String,
    /// When the backup was taken (RFC 3339).
    pub backup_created_at: String,
    /// When the export was written (RFC 3339).
    pub exported_at: String,
    /// The Coffer version that wrote it.
    pub coffer_version: String,
    /// An export of the sensitive components only (their data still sealed).
    #[serde(default)]
    pub sensitive: bool,
    /// The components, in archive order.
    pub components: Vec<ManifestComponent>,
}

/// One component of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestComponent {
    /// Component name.
    pub name: String,
    /// Its kind as configured (`postgres`, `files`, …).
    pub kind: String,
    /// `tree` (the file is a tar of a directory) or `stream`.
    pub content: String,
    /// Its path in the archive: `components/<name>/<file>`.
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The file is an age file sealed to the component's own recipients.
    #[serde(default)]
    pub sealed: bool,
}

impl ManifestComponent {
    /// The file's own name (`db.pgdump`), without `components/<name>/`.
    pub fn file_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }

    /// The file is a tar of a directory tree (else a stream).
    pub fn is_tree(&self) -> bool {
        self.content == "tree"
    }
}

/// The backup an export is written from.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    /// Backup id.
    pub backup_id: String,
    /// Label.
    pub label: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Now (RFC 3339).
    pub exported_at: String,
    /// Only sensitive components.
    pub sensitive: bool,
}

/// A component about to be written: everything of its manifest entry but
/// the checksum.
#[derive(Debug, Clone)]
pub struct ComponentHeader {
    /// Component name.
    pub name: String,
    /// Its kind as configured.
    pub kind: String,
    /// `tree` or `stream`.
    pub content: String,
    /// The file name inside `components/<name>/`.
    pub file_name: String,
    /// Sealed (an age file).
    pub sealed: bool,
}

/// The archive path of a component file, after checking both parts.
pub(crate) fn component_path(name: &str, file_name: &str) -> Result<String, String> {
    ComponentName::new(name).map_err(|e| e.to_string())?;
    let mut parts = Path::new(file_name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !file_name.contains('\\') => {
            Ok(format!("{COMPONENTS_DIR}/{name}/{file_name}"))
        }
        _ => Err(format!("{file_name:?} is not a plain file name")),
    }
}

/// `components/<name>/<file>` with a valid component name and a plain file
/// name, else `None`.
pub(crate) fn safe_component_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(COMPONENTS_DIR)?.strip_prefix('/')?;
    let (name, file) = rest.split_once('/')?;
    let canonical = component_path(name, file).ok()?;
    (canonical == path).then(|| (name.to_owned(), file.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_paths_are_plain() {
        assert_eq!(
            component_path("db", "db.pgdump").unwrap(),
            "components/db/db.pgdump"
        );
        for (n, f) in [
            ("..", "x"),
            ("db", "../x"),
            ("db", "a/b"),
            ("db", ""),
            ("db", "/x"),
            ("db", "."),
        ] {
            assert!(component_path(n, f).is_err(), "{n} {f}");
        }
        assert!(safe_component_path("components/db/db.pgdump").is_some());
        for p in [
            "components/db/../x",
            "/components/db/x",
            "components/db/x/y",
            "components//x",
            "components/db/./x",
            "other/db/x",
            "components/db",
        ] {
            assert!(safe_component_path(p).is_none(), "{p}");
        }
    }
}
