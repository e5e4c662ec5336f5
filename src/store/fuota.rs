//! Multicast groups, FUOTA tasks and their per-gateway progress. Starting a task
//! is one transaction: it checks the group is free, reserves the task's range of
//! multicast frame counters (the group's counter only grows), and snapshots the
//! gateways that will carry it. Progress is written ahead of each send.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{eui_from_sql, Store, StoreError};
use crate::eui::Eui;
use crate::fuota::job::{step, Event, Next, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSession {
    pub dl_dr: u8,
    pub dl_freq: u32,
    pub start: String,
    pub timeout_s: u32,
    pub ping_slot_period: Option<u32>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub rf_region: String,
    pub dl_class: String,
    pub mc_addr: u32,
    pub mc_app_s_key: [u8; 16],
    pub mc_nwk_s_key: [u8; 16],
    pub fcnt_next: u64,
    pub session: Option<GroupSession>,
    /// Chosen explicitly (`gateways_explicit`), else every gateway of the region.
    pub gateway_ids: Vec<String>,
    /// Only `gateway_ids` carry the group, even when deletions emptied the list.
    pub gateways_explicit: bool,
    pub created_at: String,
    /// The McKey the session keys came from, for the devices' McGroupSetupReq;
    /// None when the group was made from session keys alone.
    pub mc_key: Option<[u8; 16]>,
}

impl std::fmt::Debug for GroupRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRow")
            .field("id", &self.id)
            .field("mc_addr", &format_args!("{:08x}", self.mc_addr))
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuotaTaskRow {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub rf_region: String,
    pub blob_id: String,
    pub redundancy_percent: u32,
    pub frag_size: u32,
    pub interval_ms: u32,
    pub descriptor: [u8; 4],
    pub group_id: Option<String>,
    pub status: Status,
    pub status_reason: Option<String>,
    pub start_time: Option<String>,
    pub fcnt_base: Option<u32>,
    pub total_frags: Option<u16>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    /// TS006 firmware version the devices must report (ours).
    pub expected_fw_version: Option<u32>,
    /// What the control plane sends every device (JSON); set at start when the
    /// task has devices.
    pub control: Option<String>,
    /// When the last fragment went out (tasks with devices).
    pub frags_done_at: Option<String>,
}

/// One gateway's progress in a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRow {
    pub gateway_id: String,
    pub eui: Eui,
    pub next_n: u16,
    pub sent: u32,
    pub confirmed: u32,
    pub failed: u32,
    pub last_sent_at: Option<String>,
}

/// What `start_fuota_task` needs beyond the row.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub task_id: String,
    /// None while the control plane has yet to fix SessionTime (tasks with devices).
    pub start_time: Option<String>,
    pub total_frags: u16,
    pub gateway_ids: Vec<String>,
    pub started_at: String,
    /// The devices the control plane sets up, and what it sends them (JSON).
    pub device_ids: Vec<String>,
    pub control: Option<String>,
}

/// The effect of a round on the store: fragments handed over, outcomes known.
#[derive(Debug, Clone, Default)]
pub struct RoundRecord {
    /// (gateway, fragment N) about to be handed over: next_n becomes N + 1.
    pub claims: Vec<(String, u16, String)>,
    /// (gateway, confirmed by dntxed)
    pub outcomes: Vec<(String, bool)>,
}

const GROUP_COLS: &str = "id, name, description, rf_region, dl_class, mc_addr, mc_app_s_key,
    mc_nwk_s_key, fcnt_next, dl_dr, dl_freq, session_start, session_timeout, ping_slot_period, created_at,
    gateways_explicit, mc_key";

fn key16(v: Vec<u8>) -> rusqlite::Result<[u8; 16]> {
    v.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "key is not 16 bytes".into(),
        )
    })
}

fn group_from_row(r: &Row) -> rusqlite::Result<GroupRow> {
    let dl_dr: Option<u8> = r.get(9)?;
    let session = match dl_dr {
        Some(dl_dr) => Some(GroupSession {
            dl_dr,
            dl_freq: r.get(10)?,
            start: r.get(11)?,
            timeout_s: r.get(12)?,
            ping_slot_period: r.get(13)?,
        }),
        None => None,
    };
    Ok(GroupRow {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        rf_region: r.get(3)?,
        dl_class: r.get(4)?,
        mc_addr: r.get::<_, i64>(5)? as u32,
        mc_app_s_key: key16(r.get(6)?)?,
        mc_nwk_s_key: key16(r.get(7)?)?,
        fcnt_next: r.get::<_, i64>(8)? as u64,
        session,
        gateway_ids: Vec::new(),
        gateways_explicit: r.get(15)?,
        created_at: r.get(14)?,
        mc_key: r.get::<_, Option<Vec<u8>>>(16)?.map(key16).transpose()?,
    })
}

pub(super) fn load_group(c: &Connection, id: &str) -> Result<GroupRow, StoreError> {
    let mut g = c
        .prepare_cached(&format!(
            "SELECT {GROUP_COLS} FROM multicast_groups WHERE id = ?1"
        ))?
        .query_row([id], group_from_row)?;
    let mut s = c.prepare_cached(
        "SELECT gateway_id FROM multicast_group_gateways WHERE group_id = ?1 ORDER BY gateway_id",
    )?;
    g.gateway_ids = s
        .query_map([id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(g)
}

pub(super) const TASK_COLS: &str =
    "id, name, description, rf_region, blob_id, redundancy_percent, frag_size,
    interval_ms, descriptor, group_id, status, status_reason, start_time, fcnt_base, total_frags,
    started_at, finished_at, created_at, expected_fw_version, control, frags_done_at";

pub(super) fn task_from_row(r: &Row) -> rusqlite::Result<FuotaTaskRow> {
    let status: String = r.get(10)?;
    let descriptor: Vec<u8> = r.get(8)?;
    Ok(FuotaTaskRow {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        rf_region: r.get(3)?,
        blob_id: r.get(4)?,
        redundancy_percent: r.get(5)?,
        frag_size: r.get(6)?,
        interval_ms: r.get(7)?,
        descriptor: descriptor.try_into().unwrap_or_default(),
        group_id: r.get(9)?,
        status: Status::parse(&status).unwrap_or(Status::Done),
        status_reason: r.get(11)?,
        start_time: r.get(12)?,
        fcnt_base: r.get::<_, Option<i64>>(13)?.map(|v| v as u32),
        total_frags: r.get(14)?,
        started_at: r.get(15)?,
        finished_at: r.get(16)?,
        created_at: r.get(17)?,
        expected_fw_version: r.get::<_, Option<i64>>(18)?.map(|v| v as u32),
        control: r.get(19)?,
        frags_done_at: r.get(20)?,
    })
}

pub(super) fn load_task(c: &Connection, id: &str) -> Result<FuotaTaskRow, StoreError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {TASK_COLS} FROM fuota_tasks WHERE id = ?1"
    ))?
    .query_row([id], task_from_row)?)
}

/// The active task using a group, if any.
fn group_user(
    c: &Connection,
    group_id: &str,
    except: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(c.query_row(
        "SELECT id, status FROM fuota_tasks WHERE group_id = ?1 AND id <> ?2
           AND status IN ('FuotaSession_Waiting', 'In_FuotaSession', 'Delete_Waiting') LIMIT 1",
        params![group_id, except],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

impl Store {
    pub async fn insert_group(&self, g: GroupRow) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO multicast_groups (id, name, description, rf_region, dl_class, mc_addr,
                     mc_app_s_key, mc_nwk_s_key, created_at, mc_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    g.id,
                    g.name,
                    g.description,
                    g.rf_region,
                    g.dl_class,
                    i64::from(g.mc_addr),
                    g.mc_app_s_key.as_slice(),
                    g.mc_nwk_s_key.as_slice(),
                    g.created_at,
                    g.mc_key.as_ref().map(|k| k.as_slice())
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn group(&self, id: String) -> Result<GroupRow, StoreError> {
        self.run(move |c| load_group(c, &id)).await
    }

    /// Groups in id order after `after`, at most `limit`.
    pub async fn list_groups(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<GroupRow>, StoreError> {
        self.run(move |c| {
            let ids: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM multicast_groups WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![after.unwrap_or_default(), limit as i64], |r| {
                    r.get(0)
                })?
                .collect::<Result<_, _>>()?;
            ids.iter().map(|id| load_group(c, id)).collect()
        })
        .await
    }

    /// Deletes a group no task refers to.
    pub async fn delete_group(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            // Finished tasks keep their history without the group; others block.
            let user: Option<(String, String)> = tx
                .query_row(
                    "SELECT id, status FROM fuota_tasks WHERE group_id = ?1 AND status <> 'FuotaDone' LIMIT 1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((task, status)) = user {
                return Err(StoreError::Conflict(format!(
                    "multicast group {id} is used by FUOTA task {task} ({status}); delete that task first"
                )));
            }
            tx.execute("UPDATE fuota_tasks SET group_id = NULL WHERE group_id = ?1", [&id])?;
            if tx.execute("DELETE FROM multicast_groups WHERE id = ?1", [&id])? == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn set_group_session(&self, id: String, s: GroupSession) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            if let Some((task, status)) = group_user(&tx, &id, "")? {
                return Err(StoreError::Conflict(format!(
                    "multicast group {id} is carrying FUOTA task {task} ({status}); its session cannot change until that task is done or deleted"
                )));
            }
            let n = tx.execute(
                "UPDATE multicast_groups SET dl_dr = ?2, dl_freq = ?3, session_start = ?4,
                     session_timeout = ?5, ping_slot_period = ?6 WHERE id = ?1",
                params![id, s.dl_dr, s.dl_freq, s.start, s.timeout_s, s.ping_slot_period],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Replaces the group's gateways; every one must exist and be in the group's
    /// region (the error names the first that is not).
    pub async fn set_group_gateways(
        &self,
        id: String,
        gateway_ids: Vec<String>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let g = load_group(&tx, &id)?;
            for gw in &gateway_ids {
                let region: Option<Option<String>> = tx
                    .query_row("SELECT rf_region FROM gateways WHERE id = ?1", [gw], |r| r.get(0))
                    .optional()?;
                match region {
                    None => return Err(StoreError::Invalid(format!("wireless gateway {gw} does not exist"))),
                    Some(r) if r.as_deref() != Some(g.rf_region.as_str()) => {
                        return Err(StoreError::Invalid(format!(
                            "wireless gateway {gw} is in region {}, the group in {}",
                            r.unwrap_or_else(|| "(none)".into()),
                            g.rf_region
                        )))
                    }
                    Some(_) => {}
                }
            }
            tx.execute("DELETE FROM multicast_group_gateways WHERE group_id = ?1", [&id])?;
            tx.execute(
                "UPDATE multicast_groups SET gateways_explicit = ?2 WHERE id = ?1",
                params![id, !gateway_ids.is_empty()],
            )?;
            for gw in &gateway_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO multicast_group_gateways (group_id, gateway_id) VALUES (?1, ?2)",
                    params![id, gw],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The gateways that carry a group: its chosen ones, or every gateway of its region.
    pub async fn group_gateways(&self, id: String) -> Result<Vec<(String, Eui)>, StoreError> {
        self.run(move |c| {
            let g = load_group(c, &id)?;
            let mut out = Vec::new();
            if !g.gateways_explicit {
                let mut s = c.prepare_cached("SELECT id, eui FROM gateways WHERE rf_region = ?1 ORDER BY eui")?;
                for r in s.query_map([&g.rf_region], |r| Ok((r.get(0)?, eui_from_sql(r.get(1)?))))? {
                    out.push(r?);
                }
            } else {
                let mut s = c.prepare_cached(
                    "SELECT g.id, g.eui FROM multicast_group_gateways m JOIN gateways g ON g.id = m.gateway_id
                      WHERE m.group_id = ?1 ORDER BY g.eui",
                )?;
                for r in s.query_map([&id], |r| Ok((r.get(0)?, eui_from_sql(r.get(1)?))))? {
                    out.push(r?);
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn insert_fuota_task(&self, t: FuotaTaskRow) -> Result<(), StoreError> {
        self.run(move |c| write_task(c, &t, true)).await
    }

    /// Rewrites a Pending task's fields (PATCH, association with a group).
    pub async fn update_pending_fuota_task(&self, t: FuotaTaskRow) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let now = load_task(&tx, &t.id)?;
            if now.status != Status::Pending {
                return Err(StoreError::Conflict(format!(
                    "FUOTA task {} is {}; only Pending tasks can be changed",
                    t.id, now.status
                )));
            }
            write_task(&tx, &t, false)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn fuota_task(&self, id: String) -> Result<FuotaTaskRow, StoreError> {
        self.run(move |c| load_task(c, &id)).await
    }

    pub async fn list_fuota_tasks(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<FuotaTaskRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM fuota_tasks WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = s.query_map(
                params![after.unwrap_or_default(), limit as i64],
                task_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Tasks the scheduler owns (and `Delete_Waiting` ones it must finish deleting).
    pub async fn active_fuota_tasks(&self) -> Result<Vec<FuotaTaskRow>, StoreError> {
        self.run(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM fuota_tasks
                  WHERE status IN ('FuotaSession_Waiting', 'In_FuotaSession', 'Delete_Waiting') ORDER BY id"
            ))?;
            let rows = s.query_map([], task_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Starts a Pending task: the group must be free; reserves `total_frags` frame
    /// counters and records the gateways that will carry it.
    pub async fn start_fuota_task(&self, s: StartRequest) -> Result<FuotaTaskRow, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let t = load_task(&tx, &s.task_id)?;
            if t.status != Status::Pending {
                return Err(StoreError::Conflict(format!(
                    "FUOTA task {} is {}; only a Pending task can be started",
                    t.id, t.status
                )));
            }
            let group_id = t.group_id.clone().ok_or_else(|| {
                StoreError::Invalid("the task has no multicast group; PUT /fuota-tasks/{Id}/multicast-group first".into())
            })?;
            if let Some((other, status)) = group_user(&tx, &group_id, &t.id)? {
                return Err(StoreError::Conflict(format!(
                    "multicast group {group_id} is already carrying FUOTA task {other} ({status}); wait until it is FuotaDone, or delete it"
                )));
            }
            let g = load_group(&tx, &group_id)?;
            let end = g.fcnt_next + u64::from(s.total_frags);
            if end > u64::from(u32::MAX) + 1 {
                return Err(StoreError::Invalid(format!(
                    "multicast group {group_id} has used its frame counters ({} left, {} needed); create a new group with a new McKey",
                    (u64::from(u32::MAX) + 1).saturating_sub(g.fcnt_next),
                    s.total_frags
                )));
            }
            tx.execute(
                "UPDATE multicast_groups SET fcnt_next = ?2 WHERE id = ?1",
                params![group_id, end as i64],
            )?;
            tx.execute(
                "UPDATE fuota_tasks SET status = ?2, status_reason = NULL, start_time = ?3, fcnt_base = ?4,
                     total_frags = ?5, started_at = ?6, control = ?7 WHERE id = ?1",
                params![
                    t.id,
                    Status::SessionWaiting.as_str(),
                    s.start_time,
                    g.fcnt_next as i64,
                    s.total_frags,
                    s.started_at,
                    s.control
                ],
            )?;
            if let Some(start) = &s.start_time {
                tx.execute(
                    "UPDATE multicast_groups SET session_start = ?2 WHERE id = ?1 AND ?3",
                    params![group_id, start, s.control.is_some()],
                )?;
            }
            super::fuota_devices::enroll(&tx, &t.id, &s.device_ids, &s.started_at)?;
            tx.execute("DELETE FROM fuota_progress WHERE task_id = ?1", [&t.id])?;
            for gw in &s.gateway_ids {
                tx.execute(
                    "INSERT INTO fuota_progress (task_id, gateway_id) VALUES (?1, ?2)",
                    params![t.id, gw],
                )?;
            }
            let row = load_task(&tx, &t.id)?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// Moves a task to `to` if it is in `from` (the runner's transitions).
    pub async fn set_fuota_status(
        &self,
        id: String,
        from: Status,
        to: Status,
        reason: Option<String>,
        finished_at: Option<String>,
    ) -> Result<bool, StoreError> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE fuota_tasks SET status = ?3, status_reason = ?4,
                     finished_at = COALESCE(?5, finished_at) WHERE id = ?1 AND status = ?2",
                params![id, from.as_str(), to.as_str(), reason, finished_at],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Deletes a task as `job::step` says: at once when nothing is sending, else
    /// marks it `Delete_Waiting` for the runner to stop and remove.
    pub async fn delete_fuota_task(&self, id: String) -> Result<Next, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let t = load_task(&tx, &id)?;
            let next =
                step(t.status, Event::Delete).map_err(|e| StoreError::Conflict(e.to_string()))?;
            match next {
                Next::Remove => {
                    tx.execute("DELETE FROM fuota_tasks WHERE id = ?1", [&id])?;
                }
                Next::To(s) => {
                    tx.execute(
                        "UPDATE fuota_tasks SET status = ?2 WHERE id = ?1",
                        params![id, s.as_str()],
                    )?;
                }
            }
            tx.commit()?;
            Ok(next)
        })
        .await
    }

    /// Removes a task and its progress.
    pub async fn remove_fuota_task(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            if c.execute("DELETE FROM fuota_tasks WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    pub async fn fuota_progress(&self, task_id: String) -> Result<Vec<ProgressRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT p.gateway_id, g.eui, p.next_n, p.sent, p.confirmed, p.failed, p.last_sent_at
                   FROM fuota_progress p JOIN gateways g ON g.id = p.gateway_id
                  WHERE p.task_id = ?1 ORDER BY g.eui",
            )?;
            let rows = s.query_map([task_id], |r| {
                Ok(ProgressRow {
                    gateway_id: r.get(0)?,
                    eui: eui_from_sql(r.get(1)?),
                    next_n: r.get(2)?,
                    sent: r.get(3)?,
                    confirmed: r.get(4)?,
                    failed: r.get(5)?,
                    last_sent_at: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Records a round in one transaction: claims first (write-ahead), then outcomes.
    pub async fn record_fuota_round(
        &self,
        task_id: String,
        r: RoundRecord,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut claim = tx.prepare_cached(
                    "UPDATE fuota_progress SET next_n = ?3, sent = sent + 1, last_sent_at = ?4
                      WHERE task_id = ?1 AND gateway_id = ?2",
                )?;
                for (gw, n, at) in &r.claims {
                    claim.execute(params![task_id, gw, n + 1, at])?;
                }
                let mut done = tx.prepare_cached(
                    "UPDATE fuota_progress SET confirmed = confirmed + ?3, failed = failed + ?4
                      WHERE task_id = ?1 AND gateway_id = ?2",
                )?;
                for (gw, ok) in &r.outcomes {
                    done.execute(params![task_id, gw, i32::from(*ok), i32::from(!*ok)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Frames handed over before a crash whose outcome was never recorded count as
    /// failed: they may or may not have gone out, and are never sent again.
    pub async fn close_unresolved_fuota_sends(&self, task_id: String) -> Result<u64, StoreError> {
        self.run(move |c| {
            let n: i64 = c.query_row(
                "SELECT COALESCE(SUM(sent - confirmed - failed), 0) FROM fuota_progress WHERE task_id = ?1",
                [&task_id],
                |r| r.get(0),
            )?;
            c.execute(
                "UPDATE fuota_progress SET failed = sent - confirmed WHERE task_id = ?1",
                [&task_id],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

fn write_task(c: &Connection, t: &FuotaTaskRow, insert: bool) -> Result<(), StoreError> {
    let sql = if insert {
        "INSERT INTO fuota_tasks (id, name, description, rf_region, blob_id, redundancy_percent, frag_size,
             interval_ms, descriptor, group_id, status, created_at, expected_fw_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    } else {
        "UPDATE fuota_tasks SET name = ?2, description = ?3, rf_region = ?4, blob_id = ?5,
             redundancy_percent = ?6, frag_size = ?7, interval_ms = ?8, descriptor = ?9, group_id = ?10,
             expected_fw_version = ?13
         WHERE id = ?1 AND status = ?11 AND created_at = ?12"
    };
    let n = c.execute(
        sql,
        params![
            t.id,
            t.name,
            t.description,
            t.rf_region,
            t.blob_id,
            t.redundancy_percent,
            t.frag_size,
            t.interval_ms,
            t.descriptor.as_slice(),
            t.group_id,
            t.status.as_str(),
            t.created_at,
            t.expected_fw_version.map(i64::from)
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
