//! `GET /api/v1/retention/preview`: what retention would delete now, and
//! why each kept backup is kept.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access::Principal;
use crate::api::common::{ApiResult, blocking};
use crate::api::error::ErrorBody;
use crate::retention;
use crate::retention::view::{RetentionPreview, preview_view};
use crate::state::Shared;

/// Which policy to preview (default: every one).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// Only this schedule's policy.
    pub schedule: Option<String>,
    /// Only this label's policy (`[retention.labels]`).
    pub label: Option<String>,
}

/// Shows what each retention policy (schedules' and labels') would delete
/// if applied now and why each kept backup is kept. Nothing is deleted.
/// Backups with a component the token may not see are left out.
#[utoipa::path(get, path = "/api/v1/retention/preview", params(PreviewQuery),
    security(("bearer" = ["backups:read"])),
    extensions(("x-coffer-components" = json!("filter"))),
    responses((status = 200, body = RetentionPreview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn preview_retention(
    State(state): State<Shared>,
    p: Principal,
    Query(q): Query<PreviewQuery>,
) -> ApiResult<Json<RetentionPreview>> {
    let groups =
        blocking(move || retention::preview(&state, &p, q.schedule.as_deref(), q.label.as_deref()))
            .await?;
    Ok(Json(preview_view(groups)))
}
