//! Login tokens: short-lived HS256 JWTs naming a user. They carry only the
//! user's id and an expiry; the user's scopes and components are read from
//! the catalog on every request, so disabling a user or changing them takes
//! effect at once. The signing key is derived from the server key
//! (HMAC-SHA256 as a PRF), so no other secret has to be kept.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Principal;
use crate::catalog::{Catalog, now};
use crate::error::{ServiceError, ServiceResult};

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

/// A signed token for user `sub`, valid `lifetime_secs`; with its expiry.
pub fn issue(keys: &LoginKeys, sub: &str, lifetime_secs: u64) -> ServiceResult<(String, i64)> {
    let iat = now();
    let exp = iat.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX));
    let claims = Claims {
        sub: sub.to_owned(),
        iat,
        exp,
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
        .map_err(ServiceError::internal)?;
    Ok((token, exp))
}

/// Resolves a login token to the user it names, with the user's current
/// scopes; `Unauthorized` for a bad, expired or disabled one.
pub fn authenticate_jwt(
    catalog: &Catalog,
    keys: &LoginKeys,
    jwt: &str,
) -> ServiceResult<Principal> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(jwt, &keys.decoding, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ServiceError::Unauthorized("the login token has expired: log in again".into())
                }
                _ => ServiceError::Unauthorized("invalid login token".into()),
            }
        })?;
    let user = catalog.user(&data.claims.sub)?.ok_or_else(|| {
        ServiceError::Unauthorized("the login token's user no longer exists".into())
    })?;
    if user.disabled_at.is_some() {
        return Err(ServiceError::Unauthorized(format!(
            "user {} is disabled",
            user.name
        )));
    }
    Ok(Principal {
        id: user.id,
        name: user.name,
        scopes: user.scopes.into_iter().collect(),
        components: user.components.map(|c| c.into_iter().collect()),
        expires_at: None,
    })
}
