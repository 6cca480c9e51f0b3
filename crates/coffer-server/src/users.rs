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
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::catalog::{Catalog, CatalogError, UserRow, now};
use crate::error::ApiError;

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

/// Creates a user.
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

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id.
    sub: String,
    iat: i64,
    exp: i64,
}

/// Signs and checks login tokens.
pub struct LoginKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for LoginKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginKeys(***)")
    }
}

impl LoginKeys {
    /// Keys from a 32-byte secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
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

/// Checks a name and password; the same 401 for every failure.
pub fn login(
    catalog: &Catalog,
    keys: &LoginKeys,
    name: &str,
    password: &str,
    lifetime_secs: u64,
) -> Result<Login, ApiError> {
    let wrong = || ApiError::unauthorized("wrong user name or password");
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
    let iat = now();
    let exp = iat.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX));
    let claims = Claims {
        sub: user.id,
        iat,
        exp,
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
        .map_err(ApiError::internal)?;
    Ok(Login {
        token,
        expires_at: exp,
    })
}

/// Resolves a login token to the user it names, with the user's current
/// scopes; 401 for a bad, expired or disabled one.
pub fn authenticate_jwt(
    catalog: &Catalog,
    keys: &LoginKeys,
    jwt: &str,
) -> Result<Principal, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(jwt, &keys.decoding, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("the login token has expired: log in again")
                }
                _ => ApiError::unauthorized("invalid login token"),
            }
        })?;
    let user = catalog
        .user(&data.claims.sub)?
        .ok_or_else(|| ApiError::unauthorized("the login token's user no longer exists"))?;
    if user.disabled_at.is_some() {
        return Err(ApiError::unauthorized(format!(
            "user {} is disabled",
            user.name
        )));
    }
    Ok(Principal {
        id: user.id,
        name: user.name,
        scopes: user.scopes.into_iter().collect(),
        components: user.components.map(|c| c.into_iter().collect()),
    })
}

/// Failed logins per name: after [`FREE_FAILURES`] in a row, each further
/// failure locks that name out for twice as long as the last (1 s, 2 s, …,
/// at most 15 min). Counted per name, not per address, so spreading guesses
/// over many addresses does not help; the same rule applies to names that do
/// not exist, so the answer reveals nothing. A success resets the count.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

/// Failures allowed before the lockout starts.
pub const FREE_FAILURES: u32 = 5;
const MAX_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Above this many tracked names, entries idle for an hour (else the oldest) are dropped.
const MAX_TRACKED: usize = 10_000;

impl LoginThrottle {
    fn lockout(failures: u32) -> std::time::Duration {
        match failures.checked_sub(FREE_FAILURES) {
            None => std::time::Duration::ZERO,
            Some(n) => std::time::Duration::from_secs(1u64 << n.min(20)).min(MAX_LOCKOUT),
        }
    }

    /// `Err(wait)` while `name` is locked out. Names are compared as login
    /// compares them (trimmed), so `" alice"` counts as `alice`.
    pub fn check(&self, name: &str) -> Result<(), std::time::Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(count, last)) = map.get(name.trim()) else {
            return Ok(());
        };
        let until = last + Self::lockout(count);
        let now = std::time::Instant::now();
        if now < until {
            Err(until - now)
        } else {
            Ok(())
        }
    }

    /// Records a wrong name or password.
    pub fn failed(&self, name: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if map.len() >= MAX_TRACKED {
            // Names whose lockout is over and that were idle for an hour first;
            // if that frees nothing, the oldest entry.
            map.retain(|_, &mut (count, last)| {
                now < last + Self::lockout(count) || now.duration_since(last).as_secs() < 3600
            });
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(name.trim().to_owned()).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
    }

    /// Records a successful login: the count starts again.
    pub fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name.trim());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_lock_a_name_out_with_growing_delays() {
        let t = LoginThrottle::default();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed("alice");
        }
        assert!(t.check("alice").is_ok(), "the first failures are free");
        t.failed("alice");
        let wait = t.check("alice").unwrap_err();
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        t.failed("alice");
        assert!(t.check("alice").unwrap_err() > std::time::Duration::from_secs(1));
        assert!(t.check("bob").is_ok(), "other names are not affected");
        assert_eq!(LoginThrottle::lockout(100), MAX_LOCKOUT);
        t.succeeded("alice");
        assert!(t.check("alice").is_ok());
    }

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
            assert_eq!(e.message, "wrong user name or password");
        }
        // Another server's key, an expired token, a disabled user.
        let other = LoginKeys::new(&[8u8; 32]);
        assert!(authenticate_jwt(&c, &other, &l.token).is_err());
        let expired = login(&c, &keys, "ada", "correct horse battery", 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let e = authenticate_jwt(&c, &keys, &expired.token).unwrap_err();
        assert!(e.message.contains("expired"), "{}", e.message);
        assert!(c.disable_user(&u.id).unwrap());
        let e = authenticate_jwt(&c, &keys, &l.token).unwrap_err();
        assert!(e.message.contains("disabled"), "{}", e.message);
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
