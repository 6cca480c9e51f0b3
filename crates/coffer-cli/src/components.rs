//! What the commands that run component drivers share (`repo backup
//! --config`, `repo restore --config`, `restore --from-file`): a coffer.toml's
//! `[[components]]`, the staging directory, and the restore-mode flags.

use std::path::{Path, PathBuf};

use coffer_engine::RestoreMode;
use coffer_model::component::{ComponentSpec, parse_components};

/// The `[[components]]` of a coffer.toml, with the file named in errors.
pub fn read_config(path: &Path) -> anyhow::Result<Vec<ComponentSpec>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse_components(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The component called `name` in `specs` (read from `file`); the error
/// lists the names the file has.
pub fn pick<'a>(
    specs: &'a [ComponentSpec],
    name: &str,
    file: &Path,
) -> anyhow::Result<&'a ComponentSpec> {
    specs
        .iter()
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            anyhow::anyhow!(
                "{} has no component {name:?} (it has: {})",
                file.display(),
                known.join(", ")
            )
        })
}

/// `--mirror`, `--overwrite`, or refusing a non-empty destination.
pub fn restore_mode(mirror: bool, overwrite: bool) -> RestoreMode {
    if mirror {
        RestoreMode::Mirror
    } else if overwrite {
        RestoreMode::Overwrite
    } else {
        RestoreMode::RefuseNonEmpty
    }
}

/// The staging directory: the option, else a `coffer-staging` directory in
/// the system's temporary directory.
pub fn staging_dir(option: Option<&Path>) -> PathBuf {
    option
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("coffer-staging"))
}
