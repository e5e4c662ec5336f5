//! The audit log's rows: one insert per state-changing operator call (pruning
//! entries past the retention in the same transaction, an indexed range delete
//! that finds nothing on almost every call), and a filtered, newest-first list.

use rusqlite::params;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store; ignored on insert.
    pub id: i64,
    pub at: String,
    pub at_us: i64,
    pub actor: String,
    pub method: String,
    pub path: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub status: u16,
    pub summary: String,
}

/// What `GET /audit-log` filters on; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    /// Unix microseconds, inclusive.
    pub since_us: Option<i64>,
    /// Unix microseconds, exclusive.
    pub until_us: Option<i64>,
}

impl Store {
    /// Records `e` and drops entries older than `keep_from_us`.
    pub async fn insert_audit(&self, e: AuditEntry, keep_from_us: i64) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.prepare_cached(
                "INSERT INTO audit_log (at, at_us, actor, method, path, resource, resource_id, status, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                e.at, e.at_us, e.actor, e.method, e.path, e.resource, e.resource_id, e.status, e.summary
            ])?;
            tx.prepare_cached("DELETE FROM audit_log WHERE at_us < ?1")?
                .execute(params![keep_from_us])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Up to `limit` entries matching `f`, newest first, older than entry
    /// `before` (the previous page's last Id) when given.
    pub async fn list_audit(
        &self,
        f: AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, at_us, actor, method, path, resource, resource_id, status, summary
                 FROM audit_log
                 WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR resource = ?2)
                   AND (?3 IS NULL OR resource_id = ?3) AND (?4 IS NULL OR actor = ?4)
                   AND (?5 IS NULL OR at_us >= ?5) AND (?6 IS NULL OR at_us < ?6)
                 ORDER BY id DESC LIMIT ?7",
            )?;
            let rows = stmt.query_map(
                params![
                    before,
                    f.resource,
                    f.resource_id,
                    f.actor,
                    f.since_us,
                    f.until_us,
                    limit as i64
                ],
                |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        at_us: r.get(2)?,
                        actor: r.get(3)?,
                        method: r.get(4)?,
                        path: r.get(5)?,
                        resource: r.get(6)?,
                        resource_id: r.get(7)?,
                        status: r.get(8)?,
                        summary: r.get(9)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
