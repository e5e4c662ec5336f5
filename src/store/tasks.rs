//! Task definitions, tasks and delivery attempts, and what a CUPS poll needs to
//! load about them. The status changes a poll decides are written by
//! `credentials::record_poll`, in the same transaction as the poll itself.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::{Store, StoreError};
use crate::firmware::range::VersionRange;
use crate::firmware::task::{
    Change, Current, Definition, OpenTask, Status, TaskRef, Version, MAX_DELIVERIES,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionRow {
    pub id: String,
    pub name: Option<String>,
    pub auto_create: bool,
    pub blob_id: String,
    pub blob_size: u64,
    pub sig_key_crc: u32,
    pub signature: Vec<u8>,
    pub verified: bool,
    pub current: Current,
    pub update: Option<Version>,
    pub created_at: String,
}

impl DefinitionRow {
    /// The part the state machine needs.
    pub fn machine(&self) -> Definition {
        Definition {
            id: self.id.clone(),
            key_crc: self.sig_key_crc,
            current: self.current.clone(),
            update: self.update.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub at: String,
    pub bytes_total: u64,
    pub bytes_sent: u64,
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: i64,
    pub gateway_id: String,
    pub definition_id: String,
    pub status: Status,
    pub status_reason: String,
    pub created_at: String,
    pub updated_at: String,
    pub attempts: Vec<AttemptRow>,
}

/// A gateway's open task with its definition, and the definitions it could start.
#[derive(Debug, Clone, Default)]
pub struct FirmwareContext {
    pub open: Option<(OpenTask, DefinitionRow)>,
    pub candidates: Vec<DefinitionRow>,
}

const DEF_COLUMNS: &str =
    "d.id, d.name, d.auto_create, d.blob_id, b.size, d.sig_key_crc, d.signature,
    d.verified, d.cur_station, d.cur_package, d.cur_model, d.upd_station, d.upd_package,
    d.upd_model, d.created_at, d.range_package, d.range_station, d.range_model";

const OPEN: &str = "('PENDING', 'IN_PROGRESS', 'FIRST_RETRY', 'SECOND_RETRY')";

/// Reads `DEF_COLUMNS` starting at column `at`.
fn def_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<DefinitionRow> {
    let upd_station: Option<String> = r.get(at + 11)?;
    let upd_model: Option<String> = r.get(at + 13)?;
    Ok(DefinitionRow {
        id: r.get(at)?,
        name: r.get(at + 1)?,
        auto_create: r.get(at + 2)?,
        blob_id: r.get(at + 3)?,
        blob_size: r.get(at + 4)?,
        sig_key_crc: r.get(at + 5)?,
        signature: r.get(at + 6)?,
        verified: r.get(at + 7)?,
        current: match r.get::<_, Option<String>>(at + 15)? {
            None => Current::Exact(Version {
                station: r.get(at + 8)?,
                package: Some(r.get(at + 9)?),
                model: r.get(at + 10)?,
            }),
            // Checked when the definition was created; a row that no longer
            // parses (a newer semver crate) is a database error, not a panic.
            Some(package) => Current::Range(
                VersionRange::parse(
                    "CurrentVersionRange",
                    &package,
                    &r.get::<_, String>(at + 16)?,
                    &r.get::<_, String>(at + 17)?,
                )
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        at + 15,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
            ),
        },
        update: match (upd_station, upd_model) {
            (Some(station), Some(model)) => Some(Version {
                station,
                package: r.get(at + 12)?,
                model,
            }),
            _ => None,
        },
        created_at: r.get(at + 14)?,
    })
}

fn status_of(s: String) -> rusqlite::Result<Status> {
    Status::parse(&s)
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, s, rusqlite::types::Type::Text))
}

pub(super) fn firmware_context(
    c: &Connection,
    gateway_id: &str,
    reported: &Version,
) -> Result<FirmwareContext, StoreError> {
    let open = c
        .prepare_cached(&format!(
            "SELECT t.id, t.status, {DEF_COLUMNS} FROM tasks t
             JOIN task_definitions d ON d.id = t.definition_id JOIN blobs b ON b.id = d.blob_id
             WHERE t.gateway_id = ?1 AND t.deleted = 0 AND t.status IN {OPEN}"
        ))?
        .query_row([gateway_id], |r| {
            let def = def_from_row(r, 2)?;
            Ok((
                OpenTask {
                    id: r.get(0)?,
                    status: status_of(r.get(1)?)?,
                    definition: def.machine(),
                },
                def,
            ))
        })
        .optional()?;
    let candidates = match &reported.package {
        None => Vec::new(),
        Some(package) => {
            let mut s = c.prepare_cached(&format!(
                "SELECT {DEF_COLUMNS} FROM task_definitions d JOIN blobs b ON b.id = d.blob_id
                 WHERE d.auto_create = 1
                   AND ((d.range_package IS NULL AND d.cur_station = ?1 AND d.cur_package = ?2 AND d.cur_model = ?3)
                        OR d.range_package IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.gateway_id = ?4 AND t.definition_id = d.id)
                 ORDER BY d.seq"
            ))?;
            let rows = s.query_map(
                params![reported.station, package, reported.model, gateway_id],
                |r| def_from_row(r, 0),
            )?;
            // Ranges are matched here, not in SQL; they are few.
            let mut defs = rows.collect::<Result<Vec<_>, _>>()?;
            defs.retain(|d| d.current.matches(reported));
            defs
        }
    };
    Ok(FirmwareContext { open, candidates })
}

/// Applies a poll's task changes; returns the id of the delivery attempt, if any.
///
/// Every write is conditional on what the poll planned from, checked in the
/// statement that writes: the task still has the status the plan stepped from
/// (and is not deleted), a new task's gateway has no open task and never had one
/// from that definition, and a delivery finds fewer than `MAX_DELIVERIES`
/// attempts. If another poll (or another process) got there first, nothing is
/// written and the caller gets `StoreError::Stale`, loads again and re-plans. So
/// concurrent polls make at most one transition per step and at most
/// `MAX_DELIVERIES` deliveries per task, and never trip the one-open-task index.
pub(super) fn apply_changes(
    tx: &Transaction<'_>,
    gateway_id: &str,
    changes: &[Change],
    now: &str,
    bytes_total: u64,
) -> Result<Option<i64>, StoreError> {
    let mut attempt = None;
    for ch in changes {
        let task_id = match ch.task {
            TaskRef::Existing(id) => {
                let from = ch.from.map_or("", Status::as_str);
                let n = tx
                    .prepare_cached(
                        "UPDATE tasks SET status = ?2, status_reason = ?3, updated_at = ?4
                         WHERE id = ?1 AND status = ?5 AND deleted = 0",
                    )?
                    .execute(params![id, ch.to.as_str(), ch.reason, now, from])?;
                if n == 0 {
                    return Err(StoreError::Stale(format!("task {id} is no longer {from}")));
                }
                id
            }
            TaskRef::New => {
                let n = tx
                    .prepare_cached(&format!(
                        "INSERT INTO tasks (gateway_id, definition_id, status, status_reason, created_at, updated_at)
                         SELECT ?1, ?2, ?3, ?4, ?5, ?5
                          WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE gateway_id = ?1
                                              AND (definition_id = ?2 OR (deleted = 0 AND status IN {OPEN})))"
                    ))?
                    .execute(params![gateway_id, ch.definition_id, ch.to.as_str(), ch.reason, now])?;
                if n == 0 {
                    return Err(StoreError::Stale(format!(
                        "gateway {gateway_id} got a task (from definition {} or another) meanwhile",
                        ch.definition_id
                    )));
                }
                tx.last_insert_rowid()
            }
        };
        if ch.deliver {
            let n = tx
                .prepare_cached(
                    "INSERT INTO task_attempts (task_id, at, bytes_total, outcome)
                     SELECT ?1, ?2, ?3, 'InFlight'
                      WHERE (SELECT COUNT(*) FROM task_attempts WHERE task_id = ?1) < ?4",
                )?
                .execute(params![task_id, now, bytes_total, MAX_DELIVERIES])?;
            if n == 0 {
                return Err(StoreError::Stale(format!(
                    "task {task_id} already had {MAX_DELIVERIES} deliveries"
                )));
            }
            attempt = Some(tx.last_insert_rowid());
        }
    }
    Ok(attempt)
}

fn attempts(c: &Connection, task_id: i64) -> Result<Vec<AttemptRow>, StoreError> {
    let mut s = c.prepare_cached(
        "SELECT at, bytes_total, bytes_sent, outcome FROM task_attempts WHERE task_id = ?1 ORDER BY id",
    )?;
    let rows = s.query_map([task_id], |r| {
        Ok(AttemptRow {
            at: r.get(0)?,
            bytes_total: r.get(1)?,
            bytes_sent: r.get(2)?,
            outcome: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl Store {
    /// The gateway's open task and the definitions it could start: what a poll
    /// re-plans from when `record_poll` found the tasks changed under it.
    pub async fn firmware_context(
        &self,
        gateway_id: String,
        reported: Version,
    ) -> Result<FirmwareContext, StoreError> {
        self.run(move |c| firmware_context(c, &gateway_id, &reported))
            .await
    }

    pub async fn insert_definition(&self, d: DefinitionRow) -> Result<(), StoreError> {
        self.run(move |c| {
            let upd = d.update.as_ref();
            // A range definition keeps empty exact columns (NOT NULL) and its
            // range texts beside them.
            let (exact, range) = match &d.current {
                Current::Exact(v) => (Some(v), None),
                Current::Range(r) => (None, Some(r)),
            };
            c.execute(
                "INSERT INTO task_definitions (id, name, auto_create, blob_id, sig_key_crc, signature,
                     verified, cur_station, cur_package, cur_model, upd_station, upd_package, upd_model, created_at,
                     range_package, range_station, range_model)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                params![
                    d.id,
                    d.name,
                    d.auto_create,
                    d.blob_id,
                    d.sig_key_crc,
                    d.signature,
                    d.verified,
                    exact.map_or("", |v| &v.station),
                    exact.and_then(|v| v.package.as_deref()).unwrap_or(""),
                    exact.map_or("", |v| &v.model),
                    upd.map(|u| &u.station),
                    upd.and_then(|u| u.package.as_ref()),
                    upd.map(|u| &u.model),
                    d.created_at,
                    range.map(|r| r.package()),
                    range.map(|r| r.station.as_str()),
                    range.map(|r| r.model.as_str()),
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn definition(&self, id: String) -> Result<DefinitionRow, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DEF_COLUMNS} FROM task_definitions d JOIN blobs b ON b.id = d.blob_id WHERE d.id = ?1"),
                [id],
                |r| def_from_row(r, 0),
            )?)
        })
        .await
    }

    /// Definitions in creation order, after definition `after` (a page's
    /// NextToken), at most `limit`.
    pub async fn list_definitions(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<DefinitionRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(&format!(
                "SELECT {DEF_COLUMNS} FROM task_definitions d JOIN blobs b ON b.id = d.blob_id
                  WHERE ?1 IS NULL OR d.seq > (SELECT seq FROM task_definitions WHERE id = ?1)
                  ORDER BY d.seq LIMIT ?2"
            ))?;
            let rows = s.query_map(params![after, limit as i64], |r| def_from_row(r, 0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// How many of a definition's tasks are in each status.
    pub async fn task_counts(
        &self,
        definition_id: String,
    ) -> Result<Vec<(Status, u64)>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(
                "SELECT status, COUNT(*) FROM tasks WHERE definition_id = ?1 AND deleted = 0 GROUP BY status",
            )?;
            let rows = s.query_map([definition_id], |r| Ok((status_of(r.get(0)?)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes a definition with its closed tasks; refused while tasks are open.
    pub async fn delete_definition(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let open: u64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM tasks WHERE definition_id = ?1 AND deleted = 0 AND status IN {OPEN}"),
                [&id],
                |r| r.get(0),
            )?;
            if open > 0 {
                return Err(StoreError::Conflict(format!(
                    "task definition {id} has {open} open task(s); delete them with DELETE /wireless-gateways/{{Id}}/tasks or wait until they finish"
                )));
            }
            if tx.execute("DELETE FROM task_definitions WHERE id = ?1", [&id])? == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Assigns a definition to a gateway by hand (PENDING); refused while the
    /// gateway has an open task.
    pub async fn create_task(
        &self,
        gateway_id: String,
        definition_id: String,
        now: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO tasks (gateway_id, definition_id, status, status_reason, created_at, updated_at)
                 VALUES (?1, ?2, 'PENDING', 'created by the operator; sent on the next poll', ?3, ?3)",
                params![gateway_id, definition_id, now],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(m) if m.contains("UNIQUE") => StoreError::Conflict(
                    "the gateway already has an open task; delete it first (DELETE /wireless-gateways/{Id}/tasks)".into(),
                ),
                StoreError::Conflict(_) => StoreError::NotFound,
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    /// The gateway's open task, or else its most recent one, with attempts.
    pub async fn latest_task(&self, gateway_id: String) -> Result<Option<TaskRow>, StoreError> {
        self.run(move |c| {
            let row = c
                .query_row(
                    &format!(
                        "SELECT id, gateway_id, definition_id, status, status_reason, created_at, updated_at
                         FROM tasks WHERE gateway_id = ?1 AND deleted = 0
                         ORDER BY (status IN {OPEN}) DESC, id DESC LIMIT 1"
                    ),
                    [&gateway_id],
                    |r| {
                        Ok(TaskRow {
                            id: r.get(0)?,
                            gateway_id: r.get(1)?,
                            definition_id: r.get(2)?,
                            status: status_of(r.get(3)?)?,
                            status_reason: r.get(4)?,
                            created_at: r.get(5)?,
                            updated_at: r.get(6)?,
                            attempts: vec![],
                        })
                    },
                )
                .optional()?;
            match row {
                Some(mut t) => {
                    t.attempts = attempts(c, t.id)?;
                    Ok(Some(t))
                }
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn delete_task(&self, task_id: i64) -> Result<(), StoreError> {
        self.run(move |c| {
            // A tombstone, not a delete: auto-create must not start it again.
            c.execute(
                "UPDATE tasks SET deleted = 1, status_reason = 'deleted by the operator' WHERE id = ?1",
                [task_id],
            )?;
            Ok(())
        })
        .await
    }

    /// Records how a delivery ended.
    pub async fn finish_attempt(
        &self,
        attempt_id: i64,
        bytes_sent: u64,
        complete: bool,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE task_attempts SET bytes_sent = ?2, outcome = ?3 WHERE id = ?1",
                params![
                    attempt_id,
                    bytes_sent,
                    if complete { "Delivered" } else { "Interrupted" }
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// At start: deliveries that were streaming when the process died ended there.
    pub async fn close_in_flight_attempts(&self) -> Result<usize, StoreError> {
        self.run(|c| {
            Ok(c.execute(
                "UPDATE task_attempts SET outcome = 'Interrupted' WHERE outcome = 'InFlight'",
                [],
            )?)
        })
        .await
    }
}
