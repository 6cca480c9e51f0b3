//! API errors: an HTTP status and a JSON body `{error, message}` where `error`
//! is a stable machine-readable code and `message` says what to do. The only
//! place where a [`ServiceError`] becomes a status code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_targets::validate::ValidationReport;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ServiceError;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `gone`, `payload_too_large`, `invalid`, `too_many_requests`,
    /// `insufficient_storage`, `upstream`, `internal`.
    pub error: &'static str,
    /// What went wrong, for a human.
    pub message: String,
}

/// A failed validation: 422 with the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationFailed {
    /// `validation_failed`.
    pub error: &'static str,
    /// Which step failed and why.
    pub message: String,
    /// Every step.
    #[schema(value_type = Object)]
    pub validation: ValidationReport,
}

/// An error a handler returns.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// A failed Validate's report, answered with the message.
    report: Option<Box<ValidationReport>>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            report: None,
        }
    }

    /// 500, logged; the message still says what failed.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let message = err.to_string();
        tracing::error!("{message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        let (status, code) = match &e {
            E::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            E::Gone(_) => (StatusCode::GONE, "gone"),
            E::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            E::ValidationFailed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            E::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            E::InsufficientStorage(_) => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
            E::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream"),
            E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = e.to_string();
        let report = match e {
            E::ValidationFailed { report, .. } => Some(report),
            _ => None,
        };
        Self {
            status,
            code,
            message,
            report,
        }
    }
}

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.report {
            Some(report) => (
                self.status,
                Json(ValidationFailed {
                    error: self.code,
                    message: self.message,
                    validation: *report,
                }),
            )
                .into_response(),
            None => (
                self.status,
                Json(ErrorBody {
                    error: self.code,
                    message: self.message,
                }),
            )
                .into_response(),
        }
    }
}

/// Turns axum's own rejections (bad JSON, wrong content type, body too large)
/// into the same JSON shape.
pub fn from_rejection(r: axum::extract::rejection::JsonRejection) -> ApiError {
    let status = r.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid",
    };
    // axum answers 400 for syntax errors and 422 for data errors; both are the
    // caller's input, reported as 422 with the parser's message.
    let status = if status == StatusCode::BAD_REQUEST {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status
    };
    ApiError::new(status, code, r.body_text())
}

/// A body that could not be read (too large, cut short) in the API's shape.
pub fn from_bytes_rejection(r: axum::extract::rejection::BytesRejection) -> ApiError {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "invalid"
    };
    ApiError::new(status, code, r.body_text())
}
