//! API tokens: creation, listing, revocation and the lookup every request
//! makes.
//!
//! A token is `cft_` + 64 hex digits (256 random bits). The catalog keeps its
//! SHA-256 only. Requests send `Authorization: Bearer <token>`, or FlowG's
//! `Bearer pat:<token>`; users' login tokens come as `Bearer jwt:<jwt>`
//! (see [`super::users`]).

use std::collections::BTreeSet;

use coffer_model::access::Scope;
use coffer_model::component::ComponentSpec;

use super::jwt::{LoginKeys, authenticate_jwt};
use super::{Grant, Principal};
use crate::catalog::{Catalog, CatalogError, TokenRow, now};
use crate::error::{ServiceError, ServiceResult};
use crate::keys::{random_secret, token_hash};

/// Prefix of every token secret, so leaked tokens are easy to spot and scan for.
pub const TOKEN_PREFIX: &str = "cft_";

/// A checked request for a token.
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

impl NewToken {
    /// What the token would be given, if created now.
    pub fn grant(&self) -> Grant {
        Grant {
            scopes: self.scopes.clone(),
            components: self.components.clone(),
            expires_at: self.expires_in_secs.map(|s| expiry(now(), s)),
        }
    }
}

fn expiry(from: i64, secs: u64) -> i64 {
    from.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Checks the parts of a token or user request; shared by the API and the
/// offline `coffer token create` / `coffer user add`. The message names the
/// field.
pub fn new_token(
    name: &str,
    scopes: &[String],
    components: Option<Vec<String>>,
    expires_in_secs: Option<u64>,
    known_components: &[ComponentSpec],
) -> ServiceResult<NewToken> {
    let invalid = |m: String| ServiceError::Invalid(m);
    if name.trim().is_empty() {
        return Err(invalid("name must not be empty".into()));
    }
    if scopes.is_empty() {
        return Err(invalid("scopes: give at least one scope".into()));
    }
    let scopes = scopes
        .iter()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| invalid(format!("scopes: {e}")))
        })
        .collect::<ServiceResult<BTreeSet<_>>>()?;
    if let Some(cs) = &components {
        if cs.is_empty() {
            return Err(invalid(
                "components, when given, must name at least one component".into(),
            ));
        }
        for c in cs {
            if !known_components.iter().any(|k| k.name.as_str() == c) {
                return Err(invalid(format!("components: unknown component {c:?}")));
            }
        }
    }
    Ok(NewToken {
        name: name.to_owned(),
        scopes,
        components: components.map(|c| c.into_iter().collect()),
        expires_in_secs,
    })
}

/// Creates a token; returns its row and the secret, which is shown once.
/// No authorization: the caller decided (see [`issue`]).
pub fn create_token(catalog: &Catalog, t: &NewToken) -> Result<(TokenRow, String), CatalogError> {
    let secret = random_secret(TOKEN_PREFIX);
    let created = now();
    let row = TokenRow {
        id: format!("tok-{}", uuid::Uuid::new_v4()),
        name: t.name.clone(),
        hash: token_hash(&secret),
        scopes: t.scopes.iter().copied().collect(),
        components: t.components.as_ref().map(|c| c.iter().cloned().collect()),
        expires_at: t.expires_in_secs.map(|s| expiry(created, s)),
        created_at: created,
        revoked_at: None,
    };
    catalog.insert_token(&row)?;
    Ok((row, secret))
}

/// What a stored token gives.
pub fn grant_of(row: &TokenRow) -> Grant {
    Grant {
        scopes: row.scopes.iter().copied().collect(),
        components: row.components.as_ref().map(|c| c.iter().cloned().collect()),
        expires_at: row.expires_at,
    }
}

/// Creates a token for `by`, which needs `tokens:admin` and may give only
/// what it holds.
pub fn issue(catalog: &Catalog, by: &Principal, t: &NewToken) -> ServiceResult<(TokenRow, String)> {
    by.require(Scope::TokensAdmin)?;
    by.require_grant(&t.grant())?;
    let (row, secret) = create_token(catalog, t)?;
    tracing::info!(token = %row.id, by = %by.id, "token created");
    Ok((row, secret))
}

/// The tokens `by` manages (see [`Principal::manages`]).
pub fn list(catalog: &Catalog, by: &Principal) -> ServiceResult<Vec<TokenRow>> {
    by.require(Scope::TokensAdmin)?;
    Ok(catalog
        .tokens()?
        .into_iter()
        .filter(|t| by.manages(&grant_of(t)))
        .collect())
}

/// Revokes token `id`, one that `by` manages.
pub fn revoke(catalog: &Catalog, by: &Principal, id: &str) -> ServiceResult<()> {
    by.require(Scope::TokensAdmin)?;
    let row = catalog
        .tokens()?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ServiceError::NotFound(format!("no token with id {id:?}")))?;
    if !by.manages(&grant_of(&row)) {
        return Err(ServiceError::Forbidden(format!(
            "token {id} reaches components beyond this token's: it may not revoke it"
        )));
    }
    catalog.revoke_token(id)?;
    tracing::info!(token = %id, by = %by.id, "token revoked");
    Ok(())
}

/// Resolves an `Authorization` header value to a principal, or
/// `Unauthorized` with a message that says what is wrong (missing,
/// malformed, unknown, expired, revoked). Blocking (reads the catalog).
pub fn authenticate(
    catalog: &Catalog,
    login: &LoginKeys,
    header: Option<&str>,
) -> ServiceResult<Principal> {
    let unauthorized = |m: &str| ServiceError::Unauthorized(m.to_owned());
    let Some(value) = header else {
        return Err(unauthorized(
            "no credentials: send `Authorization: Bearer <token>`",
        ));
    };
    let Some(rest) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return Err(unauthorized(
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
        return Err(unauthorized(
            "malformed token: Coffer tokens are `cft_` followed by 64 hex digits",
        ));
    }
    let row = catalog
        .token_by_hash(&token_hash(token))?
        .ok_or_else(|| unauthorized("unknown token"))?;
    if row.revoked_at.is_some() {
        return Err(ServiceError::Unauthorized(format!(
            "token {} was revoked",
            row.id
        )));
    }
    if row.expires_at.is_some_and(|e| e <= now()) {
        return Err(ServiceError::Unauthorized(format!(
            "token {} has expired",
            row.id
        )));
    }
    Ok(Principal {
        id: row.id,
        name: row.name,
        scopes: row.scopes.into_iter().collect(),
        components: row.components.map(|c| c.into_iter().collect()),
        expires_at: row.expires_at,
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

    fn unauthorized(r: ServiceResult<Principal>) -> String {
        match r {
            Err(ServiceError::Unauthorized(m)) => m,
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }

    #[test]
    fn headers_are_checked_and_explained() {
        let c = Catalog::in_memory().unwrap();
        let t = token(&c, &[Scope::BackupsRead], None, None);
        unauthorized(authenticate(&c, &keys(), None));
        unauthorized(authenticate(&c, &keys(), Some("Basic abc")));
        unauthorized(authenticate(&c, &keys(), Some("Bearer nope")));
        authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap();
        authenticate(&c, &keys(), Some(&format!("Bearer pat:{t}"))).unwrap();
        let other = random_secret(TOKEN_PREFIX);
        let m = unauthorized(authenticate(&c, &keys(), Some(&format!("Bearer {other}"))));
        assert_eq!(m, "unknown token");
    }

    #[test]
    fn expired_and_revoked_tokens_are_refused() {
        let c = Catalog::in_memory().unwrap();
        let t = token(&c, &[Scope::BackupsRead], None, Some(0));
        let m = unauthorized(authenticate(&c, &keys(), Some(&format!("Bearer {t}"))));
        assert!(m.contains("expired"), "{m}");
        let t = token(&c, &[Scope::BackupsRead], None, None);
        let p = authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap();
        assert!(c.revoke_token(&p.id).unwrap());
        let m = unauthorized(authenticate(&c, &keys(), Some(&format!("Bearer {t}"))));
        assert!(m.contains("revoked"), "{m}");
    }

    #[test]
    fn a_limited_admin_cannot_mint_or_revoke_beyond_itself() {
        let c = Catalog::in_memory().unwrap();
        let t = token(
            &c,
            &[Scope::TokensAdmin, Scope::BackupsRead],
            Some(&["files"]),
            None,
        );
        let admin = authenticate(&c, &keys(), Some(&format!("Bearer {t}"))).unwrap();
        let wide = NewToken {
            name: "wide".into(),
            scopes: Scope::ALL.into_iter().collect(),
            components: None,
            expires_in_secs: None,
        };
        assert!(matches!(
            issue(&c, &admin, &wide),
            Err(ServiceError::Forbidden(_))
        ));
        let narrow = NewToken {
            scopes: [Scope::BackupsRead].into_iter().collect(),
            components: Some(["files".to_owned()].into_iter().collect()),
            ..wide.clone()
        };
        let (row, _) = issue(&c, &admin, &narrow).unwrap();
        let (root, _) = create_token(&c, &wide).unwrap();
        let seen: Vec<String> = list(&c, &admin)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert!(
            seen.contains(&row.id) && !seen.contains(&root.id),
            "{seen:?}"
        );
        assert!(matches!(
            revoke(&c, &admin, &root.id),
            Err(ServiceError::Forbidden(_))
        ));
        revoke(&c, &admin, &row.id).unwrap();
    }
}
