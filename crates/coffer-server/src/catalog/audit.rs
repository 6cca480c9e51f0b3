//! The `audit` table: the audit log's entries, chained as
//! [`coffer_engine::audit`] says. Appending reads the head and inserts the
//! next entry under the catalog's one connection, so the chain has no fork.

use coffer_engine::audit::{AuditEntry, AuditHead, AuditRecord};
use rusqlite::{OptionalExtension, params};

use super::db::{Catalog, CatalogResult, Ctx, now};

/// Who did something, what, on what, and how it ended: an entry to come.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// See [`AuditRecord::actor`].
    pub actor: String,
    /// See [`AuditRecord::address`].
    pub address: Option<String>,
    /// See [`AuditRecord::action`].
    pub action: String,
    /// See [`AuditRecord::subject`].
    pub subject: String,
    /// See [`AuditRecord::outcome`].
    pub outcome: String,
}

fn entry_from(r: &rusqlite::Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
        record: AuditRecord {
            time: r.get(1)?,
            actor: r.get(2)?,
            address: r.get(3)?,
            action: r.get(4)?,
            subject: r.get(5)?,
            outcome: r.get(6)?,
        },
        prev: r.get(7)?,
        hash: r.get(8)?,
    })
}

/// The last entry's sequence number and hash (the empty head: none).
fn head_of(conn: &rusqlite::Connection) -> CatalogResult<AuditHead> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(AuditHead {
                    seq: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
                    hash: r.get(1)?,
                })
            },
        )
        .optional()
        .ctx("reading the audit head")?
        .unwrap_or_else(AuditHead::empty))
}

const COLUMNS: &str = "seq, time, actor, address, action, subject, outcome, prev, hash";

impl Catalog {
    /// Appends `event` as the next entry of the chain.
    pub fn append_audit(&self, event: AuditEvent) -> CatalogResult<AuditEntry> {
        let conn = self.conn();
        let head = head_of(&conn)?;
        let e = AuditEntry::next(
            &head,
            AuditRecord {
                time: now(),
                actor: event.actor,
                address: event.address,
                action: event.action,
                subject: event.subject,
                outcome: event.outcome,
            },
        );
        conn.execute(
            "INSERT INTO audit (seq, time, actor, address, action, subject, outcome, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                i64::try_from(e.seq).unwrap_or(i64::MAX),
                e.record.time,
                e.record.actor,
                e.record.address,
                e.record.action,
                e.record.subject,
                e.record.outcome,
                e.prev,
                e.hash
            ],
        )
        .ctx("appending to the audit log")?;
        Ok(e)
    }

    /// Records how a job ended (`kind` e.g. `backup`), as the `system`.
    /// A failure to record is logged: the job's own record stands.
    pub(super) fn audit_job_end(&self, kind: &str, id: &str, status: &str, error: Option<&str>) {
        let outcome = match error {
            Some(e) => format!("{status}: {e}"),
            None => status.to_owned(),
        };
        let event = AuditEvent {
            actor: "system".into(),
            address: None,
            action: format!("job {kind}"),
            subject: id.to_owned(),
            outcome,
        };
        if let Err(e) = self.append_audit(event) {
            tracing::error!("the audit log missed the end of {kind} {id}: {e}");
        }
    }

    /// Entries after `after`, oldest first, at most `limit`.
    pub fn audit_entries(&self, after: u64, limit: usize) -> CatalogResult<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .ctx("listing the audit log")?;
        let rows = stmt
            .query_map(
                params![
                    i64::try_from(after).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                entry_from,
            )
            .ctx("listing the audit log")?;
        rows.collect::<Result<_, _>>().ctx("reading the audit log")
    }

    /// The last entry's sequence number and hash.
    pub fn audit_head(&self) -> CatalogResult<AuditHead> {
        head_of(&self.conn())
    }
}
