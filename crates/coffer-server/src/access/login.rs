//! Logging in: a user's name and password for a login token, behind the
//! limits of [`super::limits`] — a lockout per name, a rate for the whole
//! server, and a bound on verifications running at once. Blocking.

use std::time::Duration;

use super::users::{Login, login};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;

/// How long an attempt waits for a free verification slot before it is
/// answered `TooManyRequests`.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Checks `name` and `password` and returns a login token. Every attempt is
/// counted against the name before the password is verified.
pub fn log_in(state: &AppState, name: &str, password: &str) -> ServiceResult<Login> {
    state.login_rate.take().map_err(|wait| {
        ServiceError::TooManyRequests(format!(
            "too many login attempts on this server (server.login_rate_per_minute = {}): retry \
             in {} s",
            state.config.login_rate_per_minute,
            wait.as_secs().max(1)
        ))
    })?;
    state.login_throttle.attempt(name).map_err(|wait| {
        ServiceError::TooManyRequests(format!(
            "too many failed logins for this name: retry in {} s",
            wait.as_secs().max(1)
        ))
    })?;
    let _slot = state
        .login_slots
        .acquire_within(QUEUE_WAIT)
        .ok_or_else(|| {
            ServiceError::TooManyRequests(format!(
                "{} logins are being checked already (server.login_concurrency): retry in a moment",
                state.config.login_concurrency
            ))
        })?;
    let result = login(
        &state.catalog,
        &state.login,
        name,
        password,
        state.config.login_lifetime.as_secs(),
    );
    if result.is_ok() {
        state.login_throttle.succeeded(name);
    }
    result
}
