//! What Coffer backs up: the component drivers.
//!
//! Each kind of [`ComponentSpec`] gets a consistent, point-in-time source
//! from its system and hands it to the engine, and consumes a snapshot to
//! restore it:
//!
//! | kind | backup | stored as | restore |
//! |------|--------|-----------|---------|
//! | `files` | the tree, with excludes | tree | into the path or another one, refuse / overwrite / mirror |
//! | `sqlite` | `VACUUM INTO` a staging copy (one read transaction, writers keep writing) | stream `<name>.sqlite` | written beside the file, `PRAGMA integrity_check`, renamed over it |
//! | `postgres` | `pg_dump -Fc`, streamed | stream `<name>.pgdump` | `pg_restore --single-transaction`, database created if missing |
//! | `mysql` | `mariadb-dump`/`mysqldump --single-transaction --routines --triggers --events`, streamed | stream `<name>.sql` | the client, database created if missing |
//! | `redis` | `redis-cli --rdb -` (a replica sync), streamed | stream `<name>.rdb` | the RDB loaded into a temporary `redis-server`, every key copied with `DUMP`/`RESTORE … ABSTTL REPLACE` |
//! | `s3` | every object (or a prefix) with content type and user metadata, in a tar stream with PAX records; ETags re-checked after the copy | stream `<name>.tar` | into the same or another bucket/endpoint, multipart for large objects |
//! | `command` | any program's standard output, or the `{file}` it writes | stream | a program reading standard input or `{file}` |
//!
//! A failure is never silent: a tool that exits non-zero, is killed, or
//! cannot connect fails the component with the tool's own message, and the
//! engine records nothing for it.
//!
//! Everything here blocks; async callers use `spawn_blocking`.

mod command;
pub mod drill;
mod error;
mod files;
mod mysql;
mod postgres;
mod redis;
mod s3;
mod secret;
mod sink;
mod sniff;
mod sqlite;
mod tools;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_engine::{AgeIdentity, ContentKind, ProgressFn, Repo, RestoreMode, SnapshotInfo};
use coffer_model::BackupRef;
use coffer_model::component::{ComponentKind, ComponentSpec};

pub use error::ComponentError;
use error::Ctx;
use sink::{NativeSink, RepoSink, Sink};

/// What a component backup needs besides its spec.
pub struct BackupContext<'a> {
    /// The repository to write into.
    pub repo: &'a Repo,
    /// The backup this component belongs to; its component name is the spec's.
    pub backup: &'a BackupRef,
    /// Where staging copies go (SQLite copies, files a `{file}` command
    /// writes). Removed when the component is done.
    pub staging_dir: &'a Path,
    /// Bytes and files done.
    pub progress: Option<ProgressFn>,
}

/// Where a restore reads a component from.
#[derive(Clone, Copy)]
pub enum RestoreSource<'a> {
    /// A component snapshot in a repository.
    Snapshot {
        /// The repository (with an identity if the snapshot is sealed).
        repo: &'a Repo,
        /// The snapshot.
        snapshot: &'a SnapshotInfo,
    },
    /// A component's portable form in a local file: an entry of an
    /// uploaded export, or an uploaded native backup.
    File(&'a PortableFile),
}

/// A component's data in a file, as exports and downloads carry it: a
/// stream's bytes, a tree as a GNU tar, or either sealed in an age file.
#[derive(Debug, Clone)]
pub struct PortableFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its name in the archive or upload (`db.pgdump`, `uploads.tar`).
    pub file_name: String,
    /// What it restores as.
    pub content: ContentKind,
    /// An age file (a sealed component); opened with `identity`.
    pub sealed: bool,
    /// The identity for a sealed file (never stored).
    pub identity: Option<Arc<AgeIdentity>>,
}

impl PortableFile {
    /// Judges the file before anything is restored: a sealed file must open
    /// with its identity, and a tree's tar must follow every unpacking rule
    /// (see [`coffer_engine::seal::verify_tree_tar`]). Nothing is written.
    pub fn verify(&self, component: &str) -> Result<(), ComponentError> {
        let c = Ctx(component.to_owned());
        let mut input = self.open(&c)?;
        if self.content == ContentKind::Tree {
            coffer_engine::seal::verify_tree_tar(&mut input)
                .map_err(|e| c.invalid(format!("{}: {e}", self.file_name)))?;
        }
        Ok(())
    }

    /// Refuses the file unless its content is what a restore of `spec`
    /// expects — a SQLite database, a `pg_dump` custom archive (listed with
    /// `pg_restore --list` unless sealed), an RDB file, UTF-8 SQL text, a
    /// tar of S3 objects — so nothing is dropped or flushed for a wrong
    /// upload. [`restore`] runs it for every file source; callers restoring
    /// several components can run it for all of them first.
    pub fn check_format(&self, spec: &ComponentSpec) -> Result<(), ComponentError> {
        sniff::check(&Ctx(spec.name.to_string()), spec, self)
    }

    /// The file's content, decrypted if sealed.
    fn open(&self, c: &Ctx) -> Result<Box<dyn Read + '_>, ComponentError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| c.io(format!("opening {}", self.path.display()), e))?;
        let file = std::io::BufReader::with_capacity(256 * 1024, file);
        if !self.sealed {
            return Ok(Box::new(file));
        }
        let identity = self.identity.as_deref().ok_or_else(|| {
            c.invalid(format!(
                "{} is sealed to an age recipient: the matching identity is needed",
                self.file_name
            ))
        })?;
        let plain = coffer_engine::seal::open_sealed(file, identity)
            .map_err(|e| c.io(format!("opening the sealed {}", self.file_name), e))?;
        Ok(Box::new(plain))
    }
}

/// What a component restore needs besides the destination spec.
pub struct RestoreContext<'a> {
    /// Where the component's data comes from.
    pub source: RestoreSource<'a>,
    /// Where staging copies go (Redis RDB files, `{file}` inputs).
    pub staging_dir: &'a Path,
    /// How to treat what the destination already has.
    pub options: &'a RestoreOptions,
    /// Bytes and files done (tree restores).
    pub progress: Option<ProgressFn>,
    /// `files` from a snapshot: restore only this file or directory (plain
    /// names below the component's root), as `<destination>/<its name>`.
    pub part: Option<&'a Path>,
}

impl RestoreContext<'_> {
    /// Writes the source's stream into `out`.
    pub(crate) fn stream_into(&self, c: &Ctx, out: &mut dyn Write) -> Result<(), ComponentError> {
        match self.source {
            RestoreSource::Snapshot { repo, snapshot } => repo
                .restore_stream(&snapshot.id, out)
                .map(|_| ())
                .map_err(|e| c.engine(e)),
            RestoreSource::File(f) => {
                let mut input = f.open(c)?;
                std::io::copy(&mut input, out)
                    .map(|_| ())
                    .map_err(|e| c.io(format!("restoring from {}", f.file_name), e))
            }
        }
    }

    /// Restores the source's tree into `dest` (staged, moved into place when
    /// complete).
    pub(crate) fn tree_into(&self, c: &Ctx, dest: &Path) -> Result<(), ComponentError> {
        let (mode, progress) = (self.options.mode, self.progress.clone());
        match (self.source, self.part) {
            (RestoreSource::Snapshot { repo, snapshot }, None) => repo
                .restore_tree(&snapshot.id, dest, mode, progress)
                .map(|_| ())
                .map_err(|e| c.engine(e)),
            (RestoreSource::Snapshot { repo, snapshot }, Some(part)) => repo
                .restore_part(&snapshot.id, part, dest, mode, progress)
                .map(|_| ())
                .map_err(|e| c.engine(e)),
            (RestoreSource::File(_), Some(_)) => Err(c.invalid(
                "a part of a component is restored from a backup, not from an uploaded file",
            )),
            (RestoreSource::File(f), None) => {
                let mut input = f.open(c)?;
                coffer_engine::restore_tree_from_tar(&mut input, dest, mode, progress)
                    .map_err(|e| c.engine(e))
            }
        }
    }

    /// The name of the stored file (`db.pgdump`), for staging copies: its
    /// last path component only, whatever an upload claims.
    pub(crate) fn file_name(&self) -> &str {
        let stored = match self.source {
            RestoreSource::Snapshot { snapshot, .. } => {
                snapshot.paths.first().map_or("", String::as_str)
            }
            RestoreSource::File(f) => &f.file_name,
        };
        Path::new(stored)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("backup")
    }

    /// Feeds the snapshot's stream to `cmd`'s standard input (`pg_restore`,
    /// the `mariadb` client, a restore command).
    /// Streams the source into `cmd`'s standard input; `point` is the
    /// crash point passed once the first bytes went in (the program is
    /// loading them: see [`coffer_model::crash`]).
    pub(crate) fn stream_into_command(
        &self,
        c: &Ctx,
        cmd: &mut std::process::Command,
        point: &'static str,
    ) -> Result<(), ComponentError> {
        tools::pipe_into(c, cmd, |stdin| {
            let mut fed = CrashAfterFirstWrite {
                inner: stdin,
                point: Some(point),
            };
            self.stream_into(c, &mut fed)
        })
    }
}

/// Restore choices. Each applies to the kinds named; the others ignore it.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `files` and `sqlite`: refuse a non-empty destination (default),
    /// overwrite, or mirror (also delete what the backup does not have).
    pub mode: RestoreMode,
    /// Remove what the destination has first: `postgres` drops the dump's
    /// objects (`pg_restore --clean --if-exists`), `mysql` drops and
    /// recreates the database, `redis` flushes every database (`FLUSHALL`),
    /// `s3` deletes objects under the prefix that the backup does not have.
    pub clean: bool,
    /// `postgres`, `mysql`, `s3`: create the destination database or bucket
    /// when it does not exist (default true).
    pub create_database: bool,
    /// `postgres`: do not restore ownership and privileges — for a server
    /// where the original roles do not exist (a new installation). Objects
    /// then belong to the restoring user, or to `role`.
    pub no_owner: bool,
    /// `postgres`: `SET ROLE` to this role before restoring, so it owns what
    /// is created.
    pub role: Option<String>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            mode: RestoreMode::RefuseNonEmpty,
            clean: false,
            create_database: true,
            no_owner: false,
            role: None,
        }
    }
}

/// What a restore did, for the job log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// One line per notable fact (keys copied, database created, …).
    pub notes: Vec<String>,
}

/// Backs up one component into the repository. Nothing is recorded unless
/// the whole component was captured.
pub fn backup(spec: &ComponentSpec, ctx: &BackupContext) -> Result<SnapshotInfo, ComponentError> {
    let c = Ctx(spec.name.to_string());
    if ctx.backup.component != spec.name {
        return Err(c.invalid(format!(
            "the backup reference names component {:?}",
            ctx.backup.component.as_str()
        )));
    }
    let sink = RepoSink {
        repo: ctx.repo,
        backup: ctx.backup,
        progress: ctx.progress.clone(),
    };
    store(&c, spec, ctx.staging_dir, sink)
}

/// Writes a consistent backup of one component to `out` in its native form
/// — the stream a backup stores (a SQLite `.sqlite` file, a `pg_dump`
/// custom-format file, an RDB file, …), or a GNU tar for a `files` tree —
/// without touching a repository. A failure after bytes were written is
/// still an error: the receiver must discard what it got. Returns the bytes
/// written.
pub fn download(
    spec: &ComponentSpec,
    staging_dir: &Path,
    out: &mut dyn Write,
) -> Result<u64, ComponentError> {
    let c = Ctx(spec.name.to_string());
    let sink = NativeSink {
        out,
        component: spec.name.as_str(),
    };
    store(&c, spec, staging_dir, sink)
}

/// The file name of a component's native form: the stream's name
/// (`db.pgdump`), or `<name>.tar` for a `files` tree.
pub fn native_file_name(spec: &ComponentSpec) -> String {
    spec.stream_file_name()
        .unwrap_or_else(|| format!("{}.tar", spec.name))
}

/// What a native upload of `spec` holds: a tree for `files`, else a stream.
pub fn native_content(spec: &ComponentSpec) -> ContentKind {
    match spec.kind {
        ComponentKind::Files(_) => ContentKind::Tree,
        _ => ContentKind::Stream,
    }
}

/// Produces the component's data into `sink`.
fn store<T>(
    c: &Ctx,
    spec: &ComponentSpec,
    staging: &Path,
    sink: impl Sink<Out = T>,
) -> Result<T, ComponentError> {
    let stream_name = spec.stream_file_name();
    let name = stream_name.as_deref().unwrap_or_default();
    match &spec.kind {
        ComponentKind::Files(f) => files::backup(c, f, sink),
        ComponentKind::Sqlite(s) => sqlite::backup(c, s, name, staging, sink),
        ComponentKind::Postgres(p) => postgres::backup(c, p, name, staging, sink),
        ComponentKind::Mysql(m) => mysql::backup(c, m, name, staging, sink),
        ComponentKind::Redis(r) => redis::backup(c, r, name, staging, sink),
        ComponentKind::S3(s) => s3::backup(c, s, name, staging, sink),
        ComponentKind::Command(cmd) => command::backup(c, cmd, name, staging, sink),
    }
}

/// Restores a component snapshot into the destination `spec` — the
/// component's own spec, or one of the same kind pointing elsewhere (another
/// path, database, server or instance).
pub fn restore(
    spec: &ComponentSpec,
    ctx: &RestoreContext,
) -> Result<RestoreReport, ComponentError> {
    let c = Ctx(spec.name.to_string());
    check_source_fits(&c, spec, &ctx.source)?;
    match &spec.kind {
        ComponentKind::Files(f) => files::restore(&c, f, ctx),
        ComponentKind::Sqlite(s) => sqlite::restore(&c, s, ctx),
        ComponentKind::Postgres(p) => postgres::restore(&c, p, ctx),
        ComponentKind::Mysql(m) => mysql::restore(&c, m, ctx),
        ComponentKind::Redis(r) => redis::restore(&c, r, ctx),
        ComponentKind::S3(s) => s3::restore(&c, s, ctx),
        ComponentKind::Command(cmd) => command::restore(&c, cmd, ctx),
    }
}

/// How many bytes of staging space backing up `spec` needs at most: the
/// database file (and its WAL) for `sqlite`, nothing for streamed kinds.
/// `None` when it cannot be known in advance (a `{file}` command).
pub fn staging_estimate(spec: &ComponentSpec) -> Option<u64> {
    match &spec.kind {
        ComponentKind::Sqlite(s) => {
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let mut wal = s.path.clone().into_os_string();
            wal.push("-wal");
            Some(size(&s.path) + size(Path::new(&wal)))
        }
        ComponentKind::Command(c) if c.backup_uses_file() => None,
        _ => Some(0),
    }
}

/// The size of a component's data, where it can be measured without a
/// backup: a directory walk (`files`), the database file and its WAL
/// (`sqlite`), `pg_database_size` (`postgres`). `None` for the other kinds,
/// or when the measurement fails (the backup will say why).
pub fn source_size(spec: &ComponentSpec) -> Option<u64> {
    match &spec.kind {
        ComponentKind::Files(f) => Some(dir_size(&f.path)),
        ComponentKind::Sqlite(_) => staging_estimate(spec),
        ComponentKind::Postgres(p) => postgres::database_size(&Ctx(spec.name.to_string()), p).ok(),
        _ => None,
    }
}

/// Bytes of regular files below `path` (what cannot be read counts 0).
fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// The space preflight: refuses to start when the staging directory's file
/// system has less free space than the components' [`staging_estimate`]s
/// need (plus a 5 % margin), naming each component's share.
pub fn check_staging_space(specs: &[ComponentSpec], staging_dir: &Path) -> Result<(), String> {
    let needs: Vec<(&str, u64)> = specs
        .iter()
        .filter_map(|s| Some((s.name.as_str(), staging_estimate(s)?)))
        .filter(|(_, n)| *n > 0)
        .collect();
    // Components run one after another, so the largest copy is what must fit.
    let Some(&(largest_name, largest)) = needs.iter().max_by_key(|(_, n)| *n) else {
        return Ok(());
    };
    let probe = staging_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let free = coffer_targets::free_space_at(probe)
        .map_err(|e| format!("free space of {}: {e}", probe.display()))?;
    let needed = largest + largest / 20;
    if free < needed {
        return Err(format!(
            "not enough space for staging copies in {}: {} MiB free, component {largest_name:?} \
             needs {} MiB (choose another --staging directory)",
            staging_dir.display(),
            free >> 20,
            needed >> 20
        ));
    }
    Ok(())
}

/// Refuses to feed data to the wrong kind of destination (an RDB file to
/// `pg_restore`, a tree to a database) before anything is touched; a file
/// (an upload) must also look like the kind's format inside.
pub(crate) fn check_source_fits(
    c: &Ctx,
    spec: &ComponentSpec,
    source: &RestoreSource,
) -> Result<(), ComponentError> {
    let (shown, kind, paths, sealed) = match source {
        RestoreSource::Snapshot { snapshot: s, .. } => (
            format!("snapshot {}", s.id),
            s.kind,
            s.paths.clone(),
            s.sealed,
        ),
        RestoreSource::File(f) => (
            f.file_name.clone(),
            Some(f.content),
            vec![f.file_name.clone()],
            f.sealed,
        ),
    };
    let want = native_content(spec);
    if kind.is_some_and(|k| k != want) {
        return Err(c.invalid(format!(
            "{shown} holds a {}, but a {} component restores a {}",
            kind.map_or("?", ContentKind::as_str),
            spec.kind.name(),
            want.as_str()
        )));
    }
    // Stream kinds other than `command` store `<component>.<ext>`.
    // A sealed snapshot stores the same file with `.age` appended.
    let stored = |p: &String| {
        p.strip_suffix(coffer_engine::seal::SEALED_SUFFIX)
            .filter(|_| sealed)
            .unwrap_or(p)
            .to_owned()
    };
    if let Some(ext) = spec.kind.stream_ext()
        && !paths.iter().any(|p| stored(p).ends_with(ext))
    {
        return Err(c.invalid(format!(
            "{shown} holds {paths:?}, not a {} backup (*{ext})",
            spec.kind.name()
        )));
    }
    if let RestoreSource::File(f) = source {
        sniff::check(c, spec, f)?;
    }
    Ok(())
}

/// A writer that passes a crash point once its first bytes are written.
struct CrashAfterFirstWrite<'a, W: std::io::Write> {
    inner: &'a mut W,
    point: Option<&'static str>,
}

impl<W: std::io::Write> std::io::Write for CrashAfterFirstWrite<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if n > 0
            && let Some(point) = self.point.take()
        {
            coffer_model::crash::crash_point(point);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
