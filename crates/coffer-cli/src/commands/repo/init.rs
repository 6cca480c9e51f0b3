//! `coffer repo init`: creates a repository.

use coffer_engine::Repo;

use super::RepoLocation;
use crate::error::CliResult;
use crate::output::Output;

/// Creates the repository; refuses (`already_initialized`) if one exists.
pub fn run(location: &RepoLocation, out: Output) -> CliResult {
    let password = location.password()?;
    let repo = Repo::init(location.storage(), &password)?;
    out.result(
        &serde_json::json!({ "location": repo.location(), "created": true }),
        |_| {
            format!(
                "created repository at {}\nKeep the password safe: without it the backups cannot be read.",
                repo.location()
            )
        },
    );
    Ok(())
}
