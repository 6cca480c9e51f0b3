//! The `users` table: login names and argon2id hashes.

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, access_columns, access_from_columns, now};
use coffer_model::access::Scope;

/// A user (the password only as its argon2id hash).
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Public id (`usr-<uuid>`).
    pub id: String,
    /// Login name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// What the user may do.
    pub scopes: Vec<Scope>,
    /// The components the user is limited to (`None`: all).
    pub components: Option<Vec<String>>,
    /// Creation.
    pub created_at: i64,
    /// When it was disabled (it can no longer log in; its login tokens stop working).
    pub disabled_at: Option<i64>,
}

impl Catalog {
    /// Stores a user.
    pub fn insert_user(&self, u: &UserRow) -> CatalogResult<()> {
        let (scopes, comps) = access_columns(&u.scopes, u.components.as_deref());
        self.conn()
            .execute(
                "INSERT INTO users (id, name, password_hash, scopes, components, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![u.id, u.name, u.password_hash, scopes, comps, u.created_at],
            )
            .ctx("storing a user")?;
        Ok(())
    }

    fn user_from(r: &rusqlite::Row) -> rusqlite::Result<UserRow> {
        let (scopes, components) = access_from_columns(r, 3, 4)?;
        Ok(UserRow {
            id: r.get(0)?,
            name: r.get(1)?,
            password_hash: r.get(2)?,
            scopes,
            components,
            created_at: r.get(5)?,
            disabled_at: r.get(6)?,
        })
    }

    fn user_where(&self, column: &str, value: &str) -> CatalogResult<Option<UserRow>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT id, name, password_hash, scopes, components, created_at, disabled_at
                     FROM users WHERE {column} = ?1"
                ),
                [value],
                Self::user_from,
            )
            .optional()
            .ctx("reading a user")
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> CatalogResult<Option<UserRow>> {
        self.user_where("id", id)
    }

    /// The user with this login name.
    pub fn user_by_name(&self, name: &str) -> CatalogResult<Option<UserRow>> {
        self.user_where("name", name)
    }

    /// Every user, oldest first.
    pub fn users(&self) -> CatalogResult<Vec<UserRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT id, name, password_hash, scopes, components, created_at, disabled_at
                 FROM users ORDER BY created_at, name",
            )
            .ctx("listing users")?;
        let rows = q.query_map([], Self::user_from).ctx("listing users")?;
        rows.collect::<Result<_, _>>().ctx("listing users")
    }

    /// Disables a user; false if there is no such user.
    pub fn disable_user(&self, id: &str) -> CatalogResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
                params![id, now()],
            )
            .ctx("disabling a user")?;
        Ok(n == 1)
    }
}
