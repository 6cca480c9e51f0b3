//! Users with passwords, and the short-lived login tokens (JWT) they get.
//!
//! Passwords are stored as argon2id PHC strings. `POST /api/v1/auth/login`
//! returns an HS256 JWT carrying only the user's id and an expiry; the
//! user's scopes and components are read from the catalog on every request,
//! so disabling a user or changing them takes effect at once. The signing key
//! is derived from the server key (HMAC-SHA256 as a PRF), so no other secret
//! has to be kept.

use std::collections::BTreeSet;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use coffer_model::access::Scope;

use super::jwt::{self, LoginKeys};
use super::tokens::{NewToken, new_token};
use super::{Grant, Principal};
use crate::catalog::{Catalog, CatalogError, UserRow, now};
use crate::error::{ServiceError, ServiceResult};

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 12;

/// What a new user may do.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name (unique).
    pub name: String,
    /// Password (at least [`MIN_PASSWORD_LEN`] characters).
    pub password: String,
    /// Scopes.
    pub scopes: BTreeSet<Scope>,
    /// Limit to these components.
    pub components: Option<BTreeSet<String>>,
}

/// Why a user cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A rule is broken (name, password length, scopes).
    #[error("{0}")]
    Invalid(String),
    /// The name is taken.
    #[error("a user named {0:?} exists")]
    Exists(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Invalid(format!("hashing the password: {e}")))
}

/// Checks a user request; shared by the API and `coffer user add`.
pub fn new_user(
    name: &str,
    password: String,
    scopes: &[String],
    components: Option<Vec<String>>,
    known_components: &[coffer_model::component::ComponentSpec],
) -> ServiceResult<NewUser> {
    let NewToken {
        name,
        scopes,
        components,
        ..
    } = new_token(name, scopes, components, None, known_components)?;
    Ok(NewUser {
        name,
        password,
        scopes,
        components,
    })
}

/// What a stored user is given.
pub fn grant_of(u: &UserRow) -> Grant {
    Grant {
        scopes: u.scopes.iter().copied().collect(),
        components: u.components.as_ref().map(|c| c.iter().cloned().collect()),
        expires_at: None,
    }
}

/// Creates a user for `by`, which needs `tokens:admin` and may give only
/// what it holds. Blocking (argon2).
pub fn issue(catalog: &Catalog, by: &Principal, u: &NewUser) -> ServiceResult<UserRow> {
    by.require(Scope::TokensAdmin)?;
    by.require_grant(&Grant {
        scopes: u.scopes.clone(),
        components: u.components.clone(),
        expires_at: None,
    })?;
    let row = create_user(catalog, u).map_err(|e| match e {
        UserError::Invalid(m) => ServiceError::Invalid(m),
        e @ UserError::Exists(_) => ServiceError::Conflict(e.to_string()),
        UserError::Catalog(e) => ServiceError::internal(e),
    })?;
    tracing::info!(user = %row.id, by = %by.id, "user created");
    Ok(row)
}

/// The users `by` manages (see [`Principal::manages`]).
pub fn list(catalog: &Catalog, by: &Principal) -> ServiceResult<Vec<UserRow>> {
    by.require(Scope::TokensAdmin)?;
    Ok(catalog
        .users()?
        .into_iter()
        .filter(|u| by.manages(&grant_of(u)))
        .collect())
}

/// Disables user `id`, one that `by` manages.
pub fn disable(catalog: &Catalog, by: &Principal, id: &str) -> ServiceResult<()> {
    by.require(Scope::TokensAdmin)?;
    let user = catalog
        .user(id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no user with id {id:?}")))?;
    if !by.manages(&grant_of(&user)) {
        return Err(ServiceError::Forbidden(format!(
            "user {id} reaches components beyond this token's: it may not disable it"
        )));
    }
    catalog.disable_user(id)?;
    tracing::info!(user = %id, by = %by.id, "user disabled");
    Ok(())
}

/// Creates a user (no authorization: the caller decided, see [`issue`]).
pub fn create_user(catalog: &Catalog, u: &NewUser) -> Result<UserRow, UserError> {
    let name = u.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "a user name is 1 to 64 printable characters".into(),
        ));
    }
    if u.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(UserError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if u.scopes.is_empty() {
        return Err(UserError::Invalid("give at least one scope".into()));
    }
    if catalog.user_by_name(name)?.is_some() {
        return Err(UserError::Exists(name.to_owned()));
    }
    let row = UserRow {
        id: format!("usr-{}", uuid::Uuid::new_v4()),
        name: name.to_owned(),
        password_hash: hash_password(&u.password)?,
        scopes: u.scopes.iter().copied().collect(),
        components: u.components.as_ref().map(|c| c.iter().cloned().collect()),
        created_at: now(),
        disabled_at: None,
    };
    catalog.insert_user(&row)?;
    Ok(row)
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    /// The user it names.
    pub user_id: String,
    /// The JWT.
    pub token: String,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
}

/// A hash to verify against when the user does not exist, so a wrong name
/// takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password, only for timing").unwrap_or_default())
}

/// Checks a name and password; the same `Unauthorized` for every failure.
/// Blocking (argon2 is deliberately slow).
pub fn login(
    catalog: &Catalog,
    keys: &LoginKeys,
    name: &str,
    password: &str,
    lifetime_secs: u64,
) -> ServiceResult<Login> {
    let wrong = || ServiceError::Unauthorized("wrong user name or password".into());
    let user = catalog.user_by_name(name.trim())?;
    let stored = user
        .as_ref()
        .filter(|u| u.disabled_at.is_none())
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let ok = PasswordHash::new(&stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    let Some(user) = user.filter(|u| ok && u.disabled_at.is_none()) else {
        return Err(wrong());
    };
    let (token, expires_at) = jwt::issue(keys, &user.id, lifetime_secs)?;
    Ok(Login {
        user_id: user.id,
        token,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::jwt::authenticate_jwt;

    fn user(c: &Catalog, name: &str) -> UserRow {
        create_user(
            c,
            &NewUser {
                name: name.into(),
                password: "correct horse battery".into(),
                scopes: [Scope::BackupsRead].into_iter().collect(),
                components: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn login_gives_a_token_for_the_users_current_scopes() {
        let c = Catalog::in_memory().unwrap();
        let keys = LoginKeys::new(&[7u8; 32]);
        let u = user(&c, "ada");
        assert!(
            u.password_hash.starts_with("$argon2id$"),
            "{}",
            u.password_hash
        );
        let l = login(&c, &keys, "ada", "correct horse battery", 60).unwrap();
        let p = authenticate_jwt(&c, &keys, &l.token).unwrap();
        assert_eq!(p.id, u.id);
        assert!(p.scopes.contains(&Scope::BackupsRead));
        for (name, pw) in [
            ("ada", "wrong password!!"),
            ("nobody", "correct horse battery"),
        ] {
            let e = login(&c, &keys, name, pw, 60).unwrap_err();
            assert_eq!(e.to_string(), "wrong user name or password");
        }
        // Another server's key, an expired token, a disabled user.
        let other = LoginKeys::new(&[8u8; 32]);
        assert!(authenticate_jwt(&c, &other, &l.token).is_err());
        let expired = login(&c, &keys, "ada", "correct horse battery", 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let e = authenticate_jwt(&c, &keys, &expired.token).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert!(c.disable_user(&u.id).unwrap());
        let e = authenticate_jwt(&c, &keys, &l.token).unwrap_err();
        assert!(e.to_string().contains("disabled"), "{e}");
        assert!(login(&c, &keys, "ada", "correct horse battery", 60).is_err());
    }

    #[test]
    fn user_rules() {
        let c = Catalog::in_memory().unwrap();
        user(&c, "ada");
        let mut u = NewUser {
            name: "ada".into(),
            password: "correct horse battery".into(),
            scopes: [Scope::BackupsRead].into_iter().collect(),
            components: None,
        };
        assert!(matches!(create_user(&c, &u), Err(UserError::Exists(_))));
        u.name = "grace".into();
        u.password = "short".into();
        let e = create_user(&c, &u).unwrap_err().to_string();
        assert!(e.contains("at least 12"), "{e}");
    }
}
