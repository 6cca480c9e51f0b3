//! API tokens: creation, lookup and the permission checks every handler makes.
//!
//! A token is `cft_` + 64 hex digits (256 random bits). The catalog keeps its
//! SHA-256 only. Requests send `Authorization: Bearer <token>`, or FlowG's
//! `Bearer pat:<token>`; users' login tokens come as `Bearer jwt:<jwt>`
//! (see [`crate::users`]).

use std::collections::BTreeSet;

use coffer_model::access::Scope;

use crate::catalog::{Catalog, CatalogError, TokenRow, now};
use crate::error::ApiError;
use crate::keys::{random_secret, token_hash};
use crate::users::{LoginKeys, authenticate_jwt};

/// Prefix of every token secret, so leaked tokens are easy to spot and scan for.
pub const TOKEN_PREFIX: &str = "cft_";

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token id (`tok-…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
    /// The components it is limited to (`None`: all).
    pub components: Option<BTreeSet<String>>,
}

impl Principal {
    /// 403 unless the principal holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token lacks the `{scope}` scope"
            )))
        }
    }

    /// 403 unless the principal may act on `component` with `scope`; a
    /// sensitive component also needs the `sensitive` scope.
    pub fn require_component(
        &self,
        scope: Scope,
        component: &str,
        sensitive: bool,
    ) -> Result<(), ApiError> {
        self.require(scope)?;
        if let Some(allowed) = &self.components
            && !allowed.contains(component)
        {
            return Err(ApiError::forbidden(format!(
                "this token is limited to components {} and may not touch {component:?}",
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if sensitive && !self.scopes.contains(&Scope::Sensitive) {
            return Err(ApiError::forbidden(format!(
                "component {component:?} is sensitive: this token lacks the `sensitive` scope"
            )));
        }
        Ok(())
    }
}

/// What a new token may do.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// What it is for.
    pub name: String,
    /// Its scopes (at least one).
    pub scopes: BTreeSet<Scope>,
    /// Limit to these components.
    pub components: Option<BTreeSet<String>>,
    /// Seconds until it expires.
    pub expires_in_secs: Option<u64>,
}

/// Creates a token; returns its row and the secret, which is shown once.
pub fn create_token(catalog: &Catalog, t: &NewToken) -> Result<(TokenRow, String), CatalogError> {
    let secret = random_secret(TOKEN_PREFIX);
    let created = now();
    let row = TokenRow {
        id: format!("tok-{}", uuid::Uuid::new_v4()),
        name: t.name.clone(),
        hash: token_hash(&secret),
        scopes: t.scopes.iter().copied().collect(),
        components: t.components.as_ref().map(|c| c.iter().cloned().collect()),
        expires_at: t
            .expires_in_secs
            .map(|s| created.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
        created_at: created,
        revoked_at: None,
    };
    catalog.insert_token(&row)?;
    Ok((row, secret))
}

/// Resolves an `Authorization` header value to a principal, or 401 with a
/// message that says what is wrong (missing, malformed, unknown, expired, revoked).
pub fn authenticate(
    catalog: &Catalog,
    login: &LoginKeys,
    header: Option<&str>,
) -> Result<Principal, ApiError> {
    let Some(value) = header else {
        return Err(ApiError::unauthorized(
            "no credentials: send `Authorization: Bearer <token>`",
        ));
    };
    let Some(rest) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return Err(ApiError::unauthorized(
            "malformed Authorization header: expected `Bearer <token>`",
        ));
    };
    let rest = rest.trim();
    let token = if let Some(t) = rest.strip_prefix("pat:") {
        t
    } else if let Some(jwt) = rest.strip_prefix("jwt:") {
        return authenticate_jwt(catalog, login, jwt);
    } else if rest.starts_with("eyJ") {
        // A bare JWT (its JSON header always encodes to `eyJ`).
        return authenticate_jwt(catalog, login, rest);
    } else {
        rest
    };
    if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
        return Err(ApiError::unauthorized(
            "malformed token: Coffer tokens are `cft_` followed by 64 hex digits",
        ));
    }
    let row = catalog
        .token_by_hash(&token_hash(token))
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    if row.revoked_at.is_some() {
        return Err(ApiError::unauthorized(format!(
            "token {} was revoked",
            row.id
        )));
    }
    if row.expires_at.is_some_and(|e| e <= now()) {
        return Err(ApiError::unauthorized(format!(
            "token {} has expired",
            row.id
        )));
    }
    Ok(Principal {
        id: row.id,
        name: row.name,
        scopes: row.scopes.into_iter().collect(),
        components: row.components.map(|c| c.into_iter().collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(
        catalog: &Catalog,
        scopes: &[Scope],
        comps: Option<&[&str]>,
        expires: Option<u64>,
    ) -> String {
        let t = NewToken {
            name: "t".into(),
            scopes: scopes.iter().copied().collect(),
            components: comps.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
            expires_in_secs: expires,
        };
        create_token(catalog, &t).unwrap().1
    }

    fn keys() -> LoginKeys {
        LoginKeys::new(&[1u8; 32])
    }

    fn status(r: Result<Principal, ApiError>) -> u16 {
        r.map(|_| 200).unwrap_or_else(|e| e.status.as_u16())
    }

    #[test]
    fn headers_are_checked_and_explained() {
        let c = Catalog::in_memory().unwrap();
        let t = token(&c, &[Scope::BackupsRead], None, None);
        assert_eq!(status(authenticate(&c, &keys(), None)), 401);
        assert_eq!(status(authenticate(&c, &keys(), Some("Basic abc"))), 401);
        assert_eq!(status(authenticate(&c, &keys(), Some("Bearer nope"))), 401);
        assert_eq!(
            status(authenticate(&c, &keys(), Some(&format!("Bearer {t}")))),
            200
        );
        assert_eq!(
            status(authenticate(&c, &keys(), Some(&format!("Bearer pat:{t}")))),
            200
        );
        let other = random_secret(TOKEN_PREFIX);
        let e = authenticate(&c, &keys(), Some(&format!("Bearer {other}"))).unwrap_err();
        assert_eq!(e.message, "unknown token");
    }

    #[test]
    fn expired_and_revoked_tokens_are_refused() {
        let c = Catalog::in_memory().unwrap();
        let t = token(&c, &[Scope::BackupsRead], None, Some(0));
        let e = authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap_err();
        assert!(e.message.contains("expired"), "{}", e.message);
        let t = token(&c, &[Scope::BackupsRead], None, None);
        let p = authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap();
        assert!(c.revoke_token(&p.id).unwrap());
        let e = authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap_err();
        assert!(e.message.contains("revoked"), "{}", e.message);
    }

    #[test]
    fn scopes_components_and_sensitivity_are_enforced() {
        let c = Catalog::in_memory().unwrap();
        let t = token(&c, &[Scope::BackupsWrite], Some(&["db"]), None);
        let p = authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap();
        p.require_component(Scope::BackupsWrite, "db", false)
            .unwrap();
        assert_eq!(p.require(Scope::Restore).unwrap_err().status.as_u16(), 403);
        let e = p
            .require_component(Scope::BackupsWrite, "files", false)
            .unwrap_err();
        assert!(
            e.message.contains("limited to components db"),
            "{}",
            e.message
        );
        let e = p
            .require_component(Scope::BackupsWrite, "db", true)
            .unwrap_err();
        assert!(e.message.contains("sensitive"), "{}", e.message);
    }
}
