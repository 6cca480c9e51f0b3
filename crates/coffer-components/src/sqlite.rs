//! `sqlite`: an online, consistent copy with `VACUUM INTO` (one read
//! transaction, so writers keep writing in WAL mode), stored as a stream;
//! restored beside the database file, checked, and renamed over it.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use coffer_engine::RestoreMode;
use coffer_model::component::SqliteSpec;
use rusqlite::{Connection, OpenFlags};

use crate::error::{ComponentError, Ctx};
use crate::sink::Sink;
use crate::tools::staging_dir as make_staging;
use crate::{RestoreContext, RestoreReport};

/// How long the copy waits for a writer's lock (rollback-journal databases).
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

fn open_read_only(c: &Ctx, path: &Path) -> Result<Connection, ComponentError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| c.tool(format!("opening SQLite database {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| c.tool(format!("SQLite {}: {e}", path.display())))?;
    Ok(conn)
}

pub(crate) fn backup<T>(
    c: &Ctx,
    spec: &SqliteSpec,
    name: &str,
    staging_dir: &Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let meta = std::fs::metadata(&spec.path)
        .map_err(|e| c.io(format!("SQLite database {}", spec.path.display()), e))?;
    if !meta.is_file() {
        return Err(c.invalid(format!("{} is not a file", spec.path.display())));
    }
    let staging = make_staging(c, staging_dir)?;
    let copy = staging.path().join("copy.sqlite");
    let conn = open_read_only(c, &spec.path)?;
    let target = copy.to_string_lossy().into_owned();
    conn.execute("VACUUM INTO ?1", [&target]).map_err(|e| {
        c.tool(format!(
            "copying SQLite database {} (VACUUM INTO): {e}",
            spec.path.display()
        ))
    })?;
    drop(conn);
    let file = File::open(&copy).map_err(|e| c.io("opening the staging copy", e))?;
    sink.stream(Box::new(file), name).map_err(|e| c.engine(e))
}

pub(crate) fn restore(
    c: &Ctx,
    spec: &SqliteSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    let dest = &spec.path;
    let existing = std::fs::metadata(dest).ok();
    if ctx.options.mode == RestoreMode::RefuseNonEmpty
        && existing.as_ref().is_some_and(|m| m.len() > 0)
    {
        return Err(c.invalid(format!(
            "database file {} exists; restore with overwrite to replace it",
            dest.display()
        )));
    }
    let dir = dest
        .parent()
        .ok_or_else(|| c.invalid(format!("{} has no parent directory", dest.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| c.io(format!("creating {}", dir.display()), e))?;
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Beside the destination, so the final rename is atomic.
    let mut staged = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.coffer-restore-"))
        .tempfile_in(dir)
        .map_err(|e| c.io(format!("creating a staging file in {}", dir.display()), e))?;
    ctx.stream_into(c, staged.as_file_mut())?;
    staged
        .as_file()
        .sync_all()
        .map_err(|e| c.io("flushing the restored database", e))?;
    coffer_model::crash::crash_point("restore.sqlite.staged");
    integrity_check(c, staged.path())?;
    if let Some(meta) = &existing {
        keep_owner_and_mode(c, staged.path(), meta)?;
    }
    // A journal or WAL left by the old database would be replayed into the
    // new file on the next open: remove them before the new file appears.
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = dir.join(format!("{file_name}{suffix}"));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(c.io(format!("removing {}", side.display()), e)),
        }
    }
    staged.persist(dest).map_err(|e| {
        c.io(
            format!("moving the restored database to {}", dest.display()),
            e.error,
        )
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| c.io(format!("flushing directory {}", dir.display()), e))?;
    Ok(RestoreReport {
        notes: vec![format!("restored {} (integrity_check ok)", dest.display())],
    })
}

/// `PRAGMA integrity_check` must answer exactly `ok`.
fn integrity_check(c: &Ctx, path: &Path) -> Result<(), ComponentError> {
    let conn = open_read_only(c, path)?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| c.verification(format!("PRAGMA integrity_check failed: {e}")))?;
    if rows != ["ok"] {
        return Err(c.verification(format!("PRAGMA integrity_check: {}", rows.join("; "))));
    }
    Ok(())
}

/// The restored file takes the replaced file's owner and mode, so the
/// application can still open it.
fn keep_owner_and_mode(
    c: &Ctx,
    path: &Path,
    old: &std::fs::Metadata,
) -> Result<(), ComponentError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(old.mode() & 0o7777))
        .map_err(|e| c.io(format!("setting the mode of {}", path.display()), e))?;
    match std::os::unix::fs::chown(path, Some(old.uid()), Some(old.gid())) {
        Ok(()) => Ok(()),
        // Not root: the file stays ours, which is what we could do.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(c.io(format!("setting the owner of {}", path.display()), e)),
    }
}
