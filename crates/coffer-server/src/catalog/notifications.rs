//! The `notifications` and `alert_state` tables: destinations (specs
//! sealed), and which conditions are holding now.

use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx};

/// A destination as stored.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    /// Its name.
    pub name: String,
    /// Its spec as JSON, sealed.
    pub spec_sealed: Vec<u8>,
    /// Declared in coffer.toml (read-only over the API).
    pub declared: bool,
    /// Creation.
    pub created_at: i64,
}

impl Catalog {
    /// Records a destination; false when one has its name.
    pub fn insert_notification(&self, n: &NotificationRow) -> CatalogResult<bool> {
        let changed = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO notifications (name, spec_sealed, declared, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![n.name, n.spec_sealed, n.declared, n.created_at],
            )
            .ctx("recording a notification")?;
        Ok(changed == 1)
    }

    /// Replaces a destination's spec.
    pub fn update_notification(&self, n: &NotificationRow) -> CatalogResult<bool> {
        let changed = self
            .conn()
            .execute(
                "UPDATE notifications SET spec_sealed = ?2, declared = ?3 WHERE name = ?1",
                params![n.name, n.spec_sealed, n.declared],
            )
            .ctx("changing a notification")?;
        Ok(changed == 1)
    }

    /// Deletes a destination; false when there is none.
    pub fn delete_notification(&self, name: &str) -> CatalogResult<bool> {
        let changed = self
            .conn()
            .execute("DELETE FROM notifications WHERE name = ?1", [name])
            .ctx("deleting a notification")?;
        Ok(changed == 1)
    }

    /// Every destination, by name.
    pub fn notifications(&self) -> CatalogResult<Vec<NotificationRow>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT name, spec_sealed, declared, created_at FROM notifications ORDER BY name",
            )
            .ctx("listing notifications")?;
        let rows = q
            .query_map([], |r| {
                Ok(NotificationRow {
                    name: r.get(0)?,
                    spec_sealed: r.get(1)?,
                    declared: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })
            .ctx("listing notifications")?;
        rows.collect::<Result<_, _>>().ctx("listing notifications")
    }

    /// One destination.
    pub fn notification(&self, name: &str) -> CatalogResult<Option<NotificationRow>> {
        self.conn()
            .query_row(
                "SELECT name, spec_sealed, declared, created_at FROM notifications WHERE name = ?1",
                [name],
                |r| {
                    Ok(NotificationRow {
                        name: r.get(0)?,
                        spec_sealed: r.get(1)?,
                        declared: r.get(2)?,
                        created_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .ctx("reading a notification")
    }

    /// Records whether condition `key` holds; returns whether that changed
    /// (so it is told once when it starts and once when it stops).
    pub fn set_condition(
        &self,
        key: &str,
        kind: &str,
        holds: bool,
        at: i64,
        summary: &str,
    ) -> CatalogResult<bool> {
        let conn = self.conn();
        let changed = if holds {
            conn.execute(
                "INSERT OR IGNORE INTO alert_state (key, kind, since, summary) VALUES (?1, ?2, ?3, ?4)",
                params![key, kind, at, summary],
            )
        } else {
            conn.execute("DELETE FROM alert_state WHERE key = ?1", [key])
        }
        .ctx("recording a condition")?;
        Ok(changed == 1)
    }
}
