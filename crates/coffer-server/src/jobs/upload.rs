//! Restores from files a caller uploaded: an export (`.coffer`) restored
//! into this installation — the Terraform Enterprise migration — and one
//! component's native backup (FlowG). The file is already spooled to disk
//! by the front end; here it is judged whole — decrypted, unpacked under
//! limits, every component matched and verified — before anything is
//! restored. Blocking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_components::PortableFile;
use coffer_engine::{AgeIdentity, ContentKind};
use coffer_export::{ExportError, Limits, ManifestComponent, Secret};
use coffer_model::access::Scope;
use coffer_model::component::ComponentSpec;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::access::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::jobs::overrides::{overridden, whole_spec};
use crate::jobs::restore::{
    ComponentData, OptionsRequest, RestoreItem, RestoreJob, identity_field, launch,
    restore_options, rules,
};
use crate::state::{AppState, Shared};

/// The `config` part of an export upload.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// The password the export was made with.
    #[serde(default)]
    pub password: Option<String>,
    /// For an export made for an age recipient: the matching identity
    /// (`AGE-SECRET-KEY-1…` or an identity file's text).
    #[serde(default)]
    pub identity: Option<String>,
    /// Opens sealed (sensitive) components, as for any restore. Never
    /// stored or logged.
    #[serde(default, deserialize_with = "identity_field")]
    #[schema(value_type = Option<String>)]
    pub age_identity: Option<Arc<AgeIdentity>>,
    /// Components of the export to restore (default: all).
    #[serde(default)]
    pub components: Option<Vec<String>>,
    /// Per component, settings laid over the configured component (the
    /// rules of any restore) — or, for a component this server does not
    /// have, a whole spec with `kind` (needs the `admin` scope).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, serde_json::Value>,
    /// Options for every component.
    #[serde(default)]
    pub options: OptionsRequest,
}

/// How long an upload waits for the one before it to finish unpacking.
const UNPACK_QUEUE: std::time::Duration = std::time::Duration::from_secs(600);

/// An export that cannot be opened or is not sound, as the caller's error;
/// `space` is what the spool's disk could take, to tell a full disk (507)
/// from an export too large for its own size (422).
fn export_refused(e: ExportError, space: &Space) -> ServiceError {
    match e {
        ExportError::TooLarge { allowed } if allowed == space.bound => {
            ServiceError::InsufficientStorage(format!(
                "the export's components need more than the {allowed} bytes {} can take ({} \
                 bytes free, server.preflight_reserve_mib kept free); nothing was restored",
                space.dir.display(),
                space.free
            ))
        }
        ExportError::WrongSecret => ServiceError::Invalid(
            "password: wrong password or identity: the export cannot be decrypted with it \
             (nothing was restored)"
                .into(),
        ),
        ExportError::Io { context, source } if source.raw_os_error() == Some(libc::ENOSPC) => {
            ServiceError::InsufficientStorage(format!("{context}: {source}"))
        }
        ExportError::Io { context, source } => {
            ServiceError::internal(format!("{context}: {source}"))
        }
        other => ServiceError::Invalid(format!("snapshot: {other} (nothing was restored)")),
    }
}

/// What the spool's disk can take.
struct Space {
    dir: PathBuf,
    free: u64,
    /// Free space minus `server.preflight_reserve_mib`.
    bound: u64,
}

/// The unpack limits for an upload of `upload_len` bytes into `dir`: what
/// the disk can hold (minus `server.preflight_reserve_mib`) and at most the
/// expansion ratio's worth of the upload — never more than
/// `server.max_upload_mib` allows.
fn limits(state: &AppState, dir: &Path, upload_len: u64) -> ServiceResult<(Limits, Space)> {
    let free = coffer_targets::free_space_at(dir)
        .map_err(|e| ServiceError::internal(format!("free space of {}: {e}", dir.display())))?;
    let space = Space {
        dir: dir.to_owned(),
        free,
        bound: free.saturating_sub(state.config.preflight_reserve),
    };
    let defaults = Limits::default();
    let by_ratio = upload_len.max(1).saturating_mul(defaults.max_ratio);
    let limits = Limits {
        max_bytes: space
            .bound
            .min(by_ratio)
            .min(state.config.max_upload.saturating_mul(defaults.max_ratio)),
        ..defaults
    };
    Ok((limits, space))
}

/// Restores an uploaded export (spooled at `file` inside `spool`) into this
/// installation: every component matched by name and kind to a configured
/// one (or given a whole spec by an `admin`). Returns the restore's id.
pub fn restore_export(
    state: &Shared,
    p: &Principal,
    spool: tempfile::TempDir,
    file: PathBuf,
    config: UploadConfig,
) -> ServiceResult<String> {
    p.require(Scope::Restore)?;
    coffer_model::crash::crash_point("upload.spooled");
    let secret = match (&config.password, &config.identity) {
        (Some(pw), None) if !pw.is_empty() => Secret::passphrase(pw),
        (None, Some(i)) => Secret::identity(i)
            .map_err(|e| ServiceError::Invalid(format!("config.identity: {e}")))?,
        (None, None) | (Some(_), None) => {
            return Err(ServiceError::Invalid(
                "config needs the export's \"password\" (or \"identity\" for an export made \
                 for an age recipient)"
                    .into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ServiceError::Invalid(
                "config: give \"password\" or \"identity\", not both".into(),
            ));
        }
    };
    let dir = spool.path().join("files");
    std::fs::create_dir(&dir)
        .map_err(|e| ServiceError::internal(format!("creating {}: {e}", dir.display())))?;
    let upload_len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let (limits, space) = limits(state, &dir, upload_len)?;
    let unpacked = {
        // One upload at a time: each may cost an scrypt derivation and a disk's worth of space.
        let _slot = state
            .unpack_slots
            .acquire_within(UNPACK_QUEUE)
            .ok_or_else(|| {
                ServiceError::TooManyRequests(format!(
                    "another upload has been unpacking for over {} s; retry later",
                    UNPACK_QUEUE.as_secs()
                ))
            })?;
        let input = std::fs::File::open(&file)
            .map_err(|e| ServiceError::internal(format!("opening {}: {e}", file.display())))?;
        coffer_export::unpack(
            std::io::BufReader::with_capacity(256 << 10, input),
            &secret,
            &dir,
            &limits,
        )
        .map_err(|e| export_refused(e, &space))?
    };
    coffer_model::crash::crash_point("upload.unpacked");
    // The unpacked files are what is restored; free the space now.
    let _ = std::fs::remove_file(&file);
    let manifest = &unpacked.manifest;
    let wanted: Vec<&ManifestComponent> = match &config.components {
        None => manifest.components.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                manifest
                    .components
                    .iter()
                    .find(|c| &c.name == n)
                    .ok_or_else(|| {
                        ServiceError::Invalid(format!(
                            "config.components: the export has no component {n:?}; it has {}",
                            component_list(&manifest.components)
                        ))
                    })
            })
            .collect::<ServiceResult<_>>()?,
    };
    if let Some(extra) = config
        .overrides
        .keys()
        .find(|k| !wanted.iter().any(|c| &c.name == *k))
    {
        return Err(ServiceError::Invalid(format!(
            "config.overrides.{extra}: that component is not being restored"
        )));
    }
    // Who may restore what comes first: the configured component of that
    // name (and its sensitivity), or an `admin` for an unconfigured one.
    // A component is sensitive if it is sealed, if the export says it holds
    // sensitive components (a password-only sensitive backup is not sealed)
    // or if it is configured so here.
    let sensitive = |c: &ManifestComponent| {
        c.sealed
            || manifest.sensitive
            || state.config.component(&c.name).is_some_and(|s| s.sensitive)
    };
    for c in &wanted {
        p.require_component(Scope::Restore, &c.name, sensitive(c))?;
    }
    let rules = rules(state)?;
    let mut items = Vec::new();
    let mut unmatched = Vec::new();
    for c in &wanted {
        let field = format!("config.overrides.{}", c.name);
        let over = config.overrides.get(&c.name);
        let dest = match (state.config.component(&c.name), over) {
            (Some(spec), Some(o)) => overridden(spec, o, p, &rules, &field)?,
            (Some(spec), None) => spec.clone(),
            (None, Some(o)) => whole_spec(&c.name, sensitive(c), o, p, &rules, &field)?,
            (None, None) => {
                unmatched.push(format!("{} ({})", c.name, c.kind));
                continue;
            }
        };
        if dest.kind.name() != c.kind {
            unmatched.push(format!("{} ({})", c.name, c.kind));
            continue;
        }
        let path = unpacked.files.get(&c.name).cloned().ok_or_else(|| {
            ServiceError::internal(format!("component {} was not unpacked", c.name))
        })?;
        items.push(RestoreItem {
            sensitive: dest.sensitive || sensitive(c),
            part: None,
            dest,
            data: ComponentData::File(PortableFile {
                path,
                file_name: c.file_name().to_owned(),
                content: if c.is_tree() {
                    ContentKind::Tree
                } else {
                    ContentKind::Stream
                },
                sealed: c.sealed,
                identity: config.age_identity.clone(),
            }),
        });
    }
    if !unmatched.is_empty() {
        return Err(ServiceError::Invalid(format!(
            "nothing was restored: this server has no component of the same name and kind for \
             {} — add them to [[components]] in {}, or (with the admin scope) pass \
             \"overrides\" with a whole spec (\"kind\" and its settings) for each",
            unmatched.join(", "),
            state.config.source.display()
        )));
    }
    verify_files(&items, config.age_identity.is_some())?;
    let options = restore_options(config.options)?;
    launch(
        state,
        RestoreJob {
            backup_id: manifest.backup_id.clone(),
            items,
            options,
            spool: Some(spool),
            holds_backup: false,
        },
    )
}

fn component_list(comps: &[ManifestComponent]) -> String {
    comps
        .iter()
        .map(|c| format!("{} ({})", c.name, c.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Before anything runs: sealed files need an identity, and every file
/// must pass [`PortableFile::verify`] (a tree's tar is read whole).
fn verify_files(items: &[RestoreItem], identity_given: bool) -> ServiceResult<()> {
    let sealed: Vec<&str> = items
        .iter()
        .filter(|i| matches!(&i.data, ComponentData::File(f) if f.sealed))
        .map(|i| i.dest.name.as_str())
        .collect();
    if !identity_given && !sealed.is_empty() {
        return Err(ServiceError::Invalid(format!(
            "config.age_identity: components {} are sealed to an age recipient: add \
             \"age_identity\": \"AGE-SECRET-KEY-1…\" to config (nothing was restored)",
            sealed.join(", ")
        )));
    }
    for i in items {
        if let ComponentData::File(f) = &i.data {
            f.verify(i.dest.name.as_str())
                .map_err(|e| ServiceError::Invalid(format!("{e} (nothing was restored)")))?;
        }
    }
    Ok(())
}

/// The configured component `name`, if `p` may restore it; checked before
/// an upload of its data is read.
pub fn component_for_restore(
    state: &AppState,
    p: &Principal,
    name: &str,
) -> ServiceResult<ComponentSpec> {
    p.require(Scope::Restore)?;
    let spec = state.config.component(name).cloned().ok_or_else(|| {
        ServiceError::NotFound(format!(
            "no component {name:?} is configured; GET /api/v1/components lists them"
        ))
    })?;
    p.require_component(Scope::Restore, name, spec.sensitive)?;
    Ok(spec)
}

/// Restores one component from an upload of its native form (what its
/// download gives); returns the restore's id.
pub fn restore_component(
    state: &Shared,
    p: &Principal,
    name: &str,
    spool: tempfile::TempDir,
    file: PathBuf,
    options: OptionsRequest,
) -> ServiceResult<String> {
    let spec = component_for_restore(state, p, name)?;
    let options = restore_options(options)?;
    let item = RestoreItem {
        sensitive: spec.sensitive,
        part: None,
        data: ComponentData::File(PortableFile {
            path: file,
            file_name: coffer_components::native_file_name(&spec),
            content: coffer_components::native_content(&spec),
            sealed: false,
            identity: None,
        }),
        dest: spec,
    };
    verify_files(std::slice::from_ref(&item), false)?;
    launch(
        state,
        RestoreJob {
            backup_id: format!("upload-{}", uuid::Uuid::new_v4()),
            items: vec![item],
            options,
            spool: Some(spool),
            holds_backup: false,
        },
    )
}

/// The configured component `name`, if `p` may download its native backup.
pub fn component_for_download(
    state: &AppState,
    p: &Principal,
    name: &str,
) -> ServiceResult<ComponentSpec> {
    p.require(Scope::Export)?;
    let spec = state.config.component(name).cloned().ok_or_else(|| {
        ServiceError::NotFound(format!(
            "no component {name:?} is configured; GET /api/v1/components lists them"
        ))
    })?;
    p.require_component(Scope::Export, name, spec.sensitive)?;
    Ok(spec)
}
