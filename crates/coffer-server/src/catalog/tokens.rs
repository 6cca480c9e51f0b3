//! The `tokens` table: API tokens (their SHA-256 only).

use coffer_model::access::Scope;
use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, access_columns, access_from_columns, now};

/// A stored token (the secret itself is never stored).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Public id (`tok-<uuid>`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// SHA-256 of the secret.
    pub hash: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The components it is limited to (`None`: all).
    pub components: Option<Vec<String>>,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Creation.
    pub created_at: i64,
    /// Revocation.
    pub revoked_at: Option<i64>,
}

impl Catalog {
    /// Stores a token.
    pub fn insert_token(&self, t: &TokenRow) -> CatalogResult<()> {
        let (scopes, comps) = access_columns(&t.scopes, t.components.as_deref());
        self.conn()
            .execute(
                "INSERT INTO tokens (id, name, hash, scopes, components, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id,
                    t.name,
                    t.hash,
                    scopes,
                    comps,
                    t.expires_at,
                    t.created_at
                ],
            )
            .ctx("storing a token")?;
        Ok(())
    }

    fn token_from(r: &rusqlite::Row) -> rusqlite::Result<TokenRow> {
        let (scopes, components) = access_from_columns(r, 3, 4)?;
        Ok(TokenRow {
            id: r.get(0)?,
            name: r.get(1)?,
            hash: r.get(2)?,
            scopes,
            components,
            expires_at: r.get(5)?,
            created_at: r.get(6)?,
            revoked_at: r.get(7)?,
        })
    }

    /// The token with this hash, revoked or not.
    pub fn token_by_hash(&self, hash: &str) -> CatalogResult<Option<TokenRow>> {
        self.conn()
            .query_row(
                "SELECT id, name, hash, scopes, components, expires_at, created_at, revoked_at
                 FROM tokens WHERE hash = ?1",
                [hash],
                Self::token_from,
            )
            .optional()
            .ctx("looking up a token")
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> CatalogResult<Vec<TokenRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT id, name, hash, scopes, components, expires_at, created_at, revoked_at
                 FROM tokens ORDER BY created_at, id",
            )
            .ctx("listing tokens")?;
        let rows = q.query_map([], Self::token_from).ctx("listing tokens")?;
        rows.collect::<Result<_, _>>().ctx("listing tokens")
    }

    /// Revokes a token; false if there is no such token.
    pub fn revoke_token(&self, id: &str) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, now()],
            )
            .ctx("revoking a token")?;
        Ok(n == 1)
    }
}
