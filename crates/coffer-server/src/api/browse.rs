//! `GET /api/v1/backups/{id}/components/{name}/tree`: one directory of a
//! files component's snapshot.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use coffer_engine::{EntryKind, TreeEntry};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::api::common::{ApiResult, blocking};
use crate::api::error::ErrorBody;
use crate::browse;
use crate::state::Shared;

/// Which directory.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TreeQuery {
    /// The directory, relative to the component's top (`/`-separated plain
    /// names; default: the top).
    pub path: Option<String>,
}

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct TreeEntryView {
    /// Its name.
    pub name: String,
    /// `file`, `dir`, `symlink` or `special`.
    pub kind: String,
    /// Bytes (files).
    pub size: u64,
    /// Modification time (RFC 3339), when recorded.
    pub mtime: Option<String>,
    /// Unix permission bits, when recorded.
    pub mode: Option<u32>,
    /// A symlink's target.
    pub link_target: Option<String>,
}

/// A directory of a backup's component.
#[derive(Debug, Serialize, ToSchema)]
pub struct TreeListing {
    /// The backup.
    pub backup_id: String,
    /// The component.
    pub component: String,
    /// The directory listed (empty: the top).
    pub path: String,
    /// Its entries, by name.
    pub entries: Vec<TreeEntryView>,
}

fn entry_view(e: TreeEntry) -> TreeEntryView {
    let kind = match e.kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
        EntryKind::Special => "special",
    };
    TreeEntryView {
        name: e.name,
        kind: kind.to_owned(),
        size: e.size,
        mtime: e.mtime,
        mode: e.mode,
        link_target: e.link_target,
    }
}

/// Lists one directory of a files component's snapshot (404 for a path it
/// does not have; 422 for a stream component or a path that is not plain
/// names; 409 for a sealed component or one not READY).
#[utoipa::path(get, path = "/api/v1/backups/{id}/components/{name}/tree",
    params(("id" = String, Path, description = "Backup id"), ("name" = String, Path, description = "Component"), TreeQuery),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("each"))),
    responses((status = 200, body = TreeListing), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn browse_tree(
    State(state): State<Shared>,
    p: Principal,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<TreeQuery>,
) -> ApiResult<Json<TreeListing>> {
    let path = q.path.unwrap_or_default();
    let (b, c, d) = (id.clone(), name.clone(), path.clone());
    let st = Arc::clone(&state);
    let entries = blocking(move || browse::list(&st, &p, &b, &c, &d)).await?;
    Ok(Json(TreeListing {
        backup_id: id,
        component: name,
        path,
        entries: entries.into_iter().map(entry_view).collect(),
    }))
}
