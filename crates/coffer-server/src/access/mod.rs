//! Who is calling and what they may do: tokens, users and their login
//! tokens resolve to a [`Principal`], whose checks every service makes
//! before it touches anything — so the API, the seed-compatible routes and
//! the console all pass through the same rules.
//!
//! The rules (docs/api.md, "Authentication and permissions"):
//!
//! * a **scope** grants one kind of operation;
//! * a **component list** limits a principal to those components: it can
//!   neither act on nor see another component, and it sees a backup only
//!   through the components it may see;
//! * a **sensitive** component (configured `sensitive = true`, or stored
//!   sealed) needs the `sensitive` scope as well, to act on it or see it;
//! * a principal grants (tokens, users) only what it holds itself.

pub mod jwt;
pub mod limits;
pub mod login;
pub mod tokens;
pub mod users;

use std::collections::BTreeSet;

use coffer_model::access::Scope;

use crate::error::{ServiceError, ServiceResult};

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token or user id (`tok-…`, `usr-…`), or `system` for the server's own jobs.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
    /// The components it is limited to (`None`: all).
    pub components: Option<BTreeSet<String>>,
    /// When the credential stops working (a token with an expiry).
    pub expires_at: Option<i64>,
}

impl Principal {
    /// Whether the principal holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Forbidden unless the principal holds `scope`.
    pub fn require(&self, scope: Scope) -> ServiceResult<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this token lacks the `{scope}` scope"
            )))
        }
    }

    /// Forbidden unless the principal may act on `component` with `scope`;
    /// a sensitive component also needs the `sensitive` scope.
    pub fn require_component(
        &self,
        scope: Scope,
        component: &str,
        sensitive: bool,
    ) -> ServiceResult<()> {
        self.require(scope)?;
        self.require_reach(component, sensitive)
    }

    /// Forbidden unless `component` is within the principal's component list
    /// and, when sensitive, it holds the `sensitive` scope.
    pub fn require_reach(&self, component: &str, sensitive: bool) -> ServiceResult<()> {
        if let Some(allowed) = &self.components
            && !allowed.contains(component)
        {
            return Err(ServiceError::Forbidden(format!(
                "this token is limited to components {} and may not touch {component:?}",
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if sensitive && !self.has(Scope::Sensitive) {
            return Err(ServiceError::Forbidden(format!(
                "component {component:?} is sensitive: this token lacks the `sensitive` scope"
            )));
        }
        Ok(())
    }

    /// Whether the principal may see `component` at all (its state, errors,
    /// log lines).
    pub fn sees(&self, component: &str, sensitive: bool) -> bool {
        self.require_reach(component, sensitive).is_ok()
    }

    /// Forbidden unless everything `grant` gives is the principal's own to
    /// give: its scopes a subset, its components within the principal's,
    /// and — for a principal that expires — an expiry no later than its own.
    pub fn require_grant(&self, grant: &Grant) -> ServiceResult<()> {
        if let Some(extra) = grant.scopes.iter().find(|s| !self.has(**s)) {
            return Err(ServiceError::Forbidden(format!(
                "scope `{extra}` is not this token's to give: a token grants only scopes it holds"
            )));
        }
        if let Some(mine) = &self.components {
            match &grant.components {
                None => {
                    return Err(ServiceError::Forbidden(format!(
                        "this token is limited to components {}: what it creates must be \
                         limited to some of them (give \"components\")",
                        mine.iter().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                Some(theirs) => {
                    if let Some(c) = theirs.iter().find(|c| !mine.contains(*c)) {
                        return Err(ServiceError::Forbidden(format!(
                            "component {c:?} is not this token's to give"
                        )));
                    }
                }
            }
        }
        if let Some(mine) = self.expires_at
            && grant.expires_at.is_none_or(|t| t > mine)
        {
            return Err(ServiceError::Forbidden(
                "this token expires: what it creates must expire no later (give \
                 \"expires_in_secs\")"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the principal manages what holds `grant` — lists, revokes or
    /// disables it: one limited to components manages only tokens and users
    /// limited to some of those (so it cannot switch off the administrator),
    /// an unlimited one manages all.
    pub fn manages(&self, grant: &Grant) -> bool {
        match (&self.components, &grant.components) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|c| mine.contains(c)),
        }
    }
}

/// What a token or user is given.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Scopes.
    pub scopes: BTreeSet<Scope>,
    /// Components it is limited to (`None`: all).
    pub components: Option<BTreeSet<String>>,
    /// When it stops working.
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[Scope], comps: Option<&[&str]>, expires: Option<i64>) -> Principal {
        Principal {
            id: "tok-1".into(),
            name: "t".into(),
            scopes: scopes.iter().copied().collect(),
            components: comps.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
            expires_at: expires,
        }
    }

    fn grant(scopes: &[Scope], comps: Option<&[&str]>, expires: Option<i64>) -> Grant {
        Grant {
            scopes: scopes.iter().copied().collect(),
            components: comps.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
            expires_at: expires,
        }
    }

    #[test]
    fn scopes_components_and_sensitivity_are_enforced() {
        let p = principal(&[Scope::BackupsWrite], Some(&["db"]), None);
        p.require_component(Scope::BackupsWrite, "db", false)
            .unwrap();
        assert!(matches!(
            p.require(Scope::Restore),
            Err(ServiceError::Forbidden(_))
        ));
        let e = p
            .require_component(Scope::BackupsWrite, "files", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limited to components db"), "{e}");
        let e = p
            .require_component(Scope::BackupsWrite, "db", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sensitive"), "{e}");
        assert!(p.sees("db", false) && !p.sees("db", true) && !p.sees("files", false));
    }

    #[test]
    fn a_principal_grants_only_what_it_holds() {
        let admin = principal(
            &[Scope::TokensAdmin, Scope::BackupsRead],
            Some(&["files"]),
            Some(1_000),
        );
        // Unlimited components, an extra scope, a longer life: each refused.
        for g in [
            grant(&[Scope::BackupsRead], None, Some(10)),
            grant(&[Scope::Restore], Some(&["files"]), Some(10)),
            grant(&[Scope::BackupsRead], Some(&["db"]), Some(10)),
            grant(&[Scope::BackupsRead], Some(&["files"]), None),
            grant(&[Scope::BackupsRead], Some(&["files"]), Some(2_000)),
        ] {
            assert!(
                matches!(admin.require_grant(&g), Err(ServiceError::Forbidden(_))),
                "{g:?}"
            );
        }
        let ok = grant(&[Scope::BackupsRead], Some(&["files"]), Some(500));
        admin.require_grant(&ok).unwrap();
        assert!(admin.manages(&ok));
        assert!(!admin.manages(&grant(&[Scope::BackupsRead], None, None)));
        let root = principal(&Scope::ALL, None, None);
        root.require_grant(&grant(&Scope::ALL, None, None)).unwrap();
    }
}
