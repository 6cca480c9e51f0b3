//! Restore drills, per kind: where a component's backup is restored to be
//! proved — a scratch place beside the live one (a directory of the
//! server's staging area, a `coffer_drill_<tag>` database on the same
//! server), never the live one — how the restored copy is proved, and how
//! the scratch place is removed, also after a crash (the tag alone names
//! it).
//!
//! What a drill proves: the backup restores through the same code as a
//! real restore (every blob's hash checked as it is read); a tree has the
//! snapshot's number of files and bytes; a SQLite file passes
//! `PRAGMA integrity_check`; a database accepts the component's
//! `verify_query` (coffer.toml only); a Redis RDB passes `redis-check-rdb`
//! and loads into a temporary `redis-server` with as many keys; S3 objects
//! restored under a scratch prefix list and read back with the backup's
//! sizes, SHA-256 and metadata. It does not prove that the application
//! works with the data.

use std::path::Path;

use coffer_engine::SnapshotInfo;
use coffer_model::component::{ComponentKind, ComponentSpec};

use crate::error::{ComponentError, Ctx};
use crate::{RestoreContext, mysql, postgres, redis, s3};

/// The default verification query of a PostgreSQL drill.
const PG_DEFAULT_QUERY: &str = "SELECT count(*) FROM pg_catalog.pg_tables \
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
/// The default verification query of a MariaDB/MySQL drill.
const MYSQL_DEFAULT_QUERY: &str =
    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()";

/// Whether `tag` may name scratch places: 1–32 of `a-z 0-9`.
fn check_tag(c: &Ctx, tag: &str) -> Result<(), ComponentError> {
    if !tag.is_empty()
        && tag.len() <= 32
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(c.invalid(format!("drill tag {tag:?}: 1 to 32 of a-z 0-9")))
    }
}

/// The database a drill tagged `tag` restores into.
pub fn scratch_database(tag: &str) -> String {
    format!("coffer_drill_{tag}")
}

/// The S3 prefix a drill tagged `tag` restores into.
pub fn scratch_prefix(tag: &str) -> String {
    format!("coffer-drill-{tag}/")
}

/// The spec a drill tagged `tag` restores `spec` into: the same kind and
/// server, a scratch place (`dir` for files and SQLite, a scratch database,
/// a scratch S3 prefix). Redis needs none: it is loaded into a temporary
/// server of the drill's own, so its spec is returned as it is and must
/// only be handed to [`run`]. An error says why the kind cannot be drilled.
pub fn scratch_spec(
    spec: &ComponentSpec,
    tag: &str,
    dir: &Path,
) -> Result<ComponentSpec, ComponentError> {
    let c = Ctx(spec.name.to_string());
    check_tag(&c, tag)?;
    let mut out = spec.clone();
    match &mut out.kind {
        ComponentKind::Files(f) => f.path = dir.join(spec.name.as_str()),
        ComponentKind::Sqlite(s) => s.path = dir.join(format!("{}.sqlite", spec.name)),
        ComponentKind::Postgres(p) => p.database = scratch_database(tag),
        ComponentKind::Mysql(m) => m.database = scratch_database(tag),
        ComponentKind::Redis(_) => {}
        ComponentKind::S3(s) => {
            let prefix = scratch_prefix(tag);
            let bucket = s.drill_bucket.clone().unwrap_or_else(|| s.bucket.clone());
            // The scratch copy must not fall under what the component backs
            // up (the next backup would take it in, and the application see it).
            if bucket == s.bucket && prefix.starts_with(&s.prefix) {
                return Err(c.invalid(format!(
                    "the component covers {}, so a scratch prefix in bucket {} would be part \
                     of it: set drill_bucket to a bucket drills may write to",
                    if s.prefix.is_empty() {
                        "the whole bucket".to_owned()
                    } else {
                        format!("prefix {:?}", s.prefix)
                    },
                    s.bucket
                )));
            }
            s.bucket = bucket;
            s.prefix = prefix;
        }
        ComponentKind::Command(_) => {
            return Err(c.invalid(
                "kind command cannot be drilled (its restore is a program of its own, with no \
                 scratch place Coffer could choose)",
            ));
        }
    }
    Ok(out)
}

/// Restores the backup in `ctx` into `scratch` (from [`scratch_spec`]) and
/// proves it; returns what was proved. The caller removes the scratch place
/// with [`remove_scratch`] whatever happens.
pub fn run(
    scratch: &ComponentSpec,
    ctx: &RestoreContext,
    snapshot: &SnapshotInfo,
) -> Result<String, ComponentError> {
    let c = Ctx(scratch.name.to_string());
    match &scratch.kind {
        ComponentKind::Redis(r) => {
            crate::check_source_fits(&c, scratch, &ctx.source)?;
            redis::drill(&c, r, ctx)
        }
        ComponentKind::S3(s) => {
            crate::check_source_fits(&c, scratch, &ctx.source)?;
            s3::drill(&c, s, ctx)
        }
        _ => {
            crate::restore(scratch, ctx)?;
            prove(scratch, snapshot)
        }
    }
}

/// Proves a restored scratch copy; returns what was found (recorded with
/// the drill).
pub fn prove(scratch: &ComponentSpec, snapshot: &SnapshotInfo) -> Result<String, ComponentError> {
    let c = Ctx(scratch.name.to_string());
    match &scratch.kind {
        ComponentKind::Files(f) => {
            let (files, bytes) = count_tree(&c, &f.path)?;
            if snapshot.sealed {
                return Ok(format!(
                    "{files} files, {bytes} bytes (sealed: counted as restored)"
                ));
            }
            if (files, bytes) != (snapshot.files, snapshot.bytes) {
                return Err(c.verification(format!(
                    "the restored tree has {files} files and {bytes} bytes; the snapshot \
                     recorded {} files and {} bytes",
                    snapshot.files, snapshot.bytes
                )));
            }
            Ok(format!(
                "{files} files, {bytes} bytes, as the snapshot recorded"
            ))
        }
        ComponentKind::Sqlite(s) => {
            let conn = rusqlite::Connection::open_with_flags(
                &s.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| c.verification(format!("opening {}: {e}", s.path.display())))?;
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(|e| c.verification(format!("PRAGMA integrity_check: {e}")))?;
            if check != "ok" {
                return Err(c.verification(format!("PRAGMA integrity_check: {check}")));
            }
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| c.verification(format!("counting tables: {e}")))?;
            Ok(format!("integrity_check ok, {tables} tables"))
        }
        ComponentKind::Postgres(p) => {
            let sql = p.verify_query.as_deref().unwrap_or(PG_DEFAULT_QUERY);
            let answer = postgres::query(&c, p, &p.database, sql)
                .map_err(|e| c.verification(format!("verify_query failed: {e}")))?;
            Ok(format!("verify_query answered {:?}", answer.trim()))
        }
        ComponentKind::Mysql(m) => {
            let sql = m.verify_query.as_deref().unwrap_or(MYSQL_DEFAULT_QUERY);
            let answer = mysql::query(&c, m, &m.database, sql)
                .map_err(|e| c.verification(format!("verify_query failed: {e}")))?;
            Ok(format!("verify_query answered {:?}", answer.trim()))
        }
        other => Err(c.invalid(format!("kind {} cannot be drilled", other.name()))),
    }
}

/// Removes a drill's scratch place (nothing to do if it is gone).
pub fn remove_scratch(scratch: &ComponentSpec) -> Result<(), ComponentError> {
    let c = Ctx(scratch.name.to_string());
    let remove = |path: &Path, dir: bool| {
        let r = if dir {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(c.io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        }
    };
    match &scratch.kind {
        ComponentKind::Files(f) => remove(&f.path, true),
        ComponentKind::Sqlite(s) => {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = s.path.clone().into_os_string();
                p.push(suffix);
                remove(Path::new(&p), false)?;
            }
            Ok(())
        }
        ComponentKind::Postgres(p) => postgres::drop_database(&c, p, &p.database),
        ComponentKind::Mysql(m) => mysql::drop_database(&c, m, &m.database),
        // Only ever a scratch prefix: `scratch_spec` made it one.
        ComponentKind::S3(s) if s.prefix.starts_with("coffer-drill-") => s3::remove_scratch(&c, s),
        // Redis: the temporary server and its files went with the drill.
        _ => Ok(()),
    }
}

/// Entries that are not directories under `dir`, and the bytes of the
/// regular ones (symbolic links not followed).
fn count_tree(c: &Ctx, dir: &Path) -> Result<(u64, u64), ComponentError> {
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| c.io(format!("reading {}", d.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| c.io(format!("reading {}", d.display()), e))?;
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(|e| c.io(format!("reading {}", entry.path().display()), e))?;
            // As the archiver counts: every entry but a directory is a
            // file; only regular files have content bytes.
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                if meta.is_file() {
                    bytes += meta.len();
                }
            }
        }
    }
    Ok((files, bytes))
}
