//! The devices of FUOTA tasks and multicast groups, and each device's step state
//! in a started task (`fuota::device::State`), so the control plane resumes after
//! a restart exactly where every device was.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::fuota::{load_task, task_from_row, TASK_COLS};
use super::{eui_from_sql, Store, StoreError};
use crate::eui::Eui;
use crate::fuota::device::{DeviceStatus, State, Step};
use crate::store::FuotaTaskRow;

/// A device of a task with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuotaDeviceRow {
    pub task_id: String,
    pub device_id: String,
    pub dev_eui: Eui,
    pub state: State,
    /// When the status (or its reason) last changed.
    pub status_at: String,
    /// When the device reached its step.
    pub step_at: String,
    /// The device's last uplink (any task's, any port).
    pub last_uplink_at: Option<String>,
}

const COLS: &str = "d.task_id, d.device_id, v.dev_eui, d.status, d.reason, d.step, d.attempts,
    d.awaiting, d.final, d.reboot_at, d.status_at, d.step_at, v.last_uplink_at";

fn row(r: &Row) -> rusqlite::Result<FuotaDeviceRow> {
    let status: String = r.get(3)?;
    let step: String = r.get(5)?;
    let reboot: Option<String> = r.get(9)?;
    Ok(FuotaDeviceRow {
        task_id: r.get(0)?,
        device_id: r.get(1)?,
        dev_eui: eui_from_sql(r.get(2)?),
        state: State {
            status: DeviceStatus::parse(&status).unwrap_or(DeviceStatus::Initial),
            reason: r.get(4)?,
            step: Step::parse(&step).unwrap_or(Step::Done),
            attempts: r.get(6)?,
            awaiting: r.get(7)?,
            done: r.get(8)?,
            reboot_at_us: reboot.and_then(|t| crate::app::parse_time(&t).ok()),
        },
        status_at: r.get(10)?,
        step_at: r.get(11)?,
        last_uplink_at: r.get(12)?,
    })
}

/// The unfinished task (other than `except`) a device is in, directly or through
/// its multicast group.
fn other_task(c: &Connection, device_id: &str, except: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT t.id FROM fuota_devices d JOIN fuota_tasks t ON t.id = d.task_id
          WHERE d.device_id = ?1 AND t.id <> ?2 AND t.status <> 'FuotaDone'
         UNION
         SELECT t.id FROM multicast_group_devices m JOIN fuota_tasks t ON t.group_id = m.group_id
          WHERE m.device_id = ?1 AND t.id <> ?2 AND t.status <> 'FuotaDone'
         LIMIT 1",
        params![device_id, except],
        |r| r.get(0),
    )
    .optional()?)
}

fn conflict(device_id: &str, other: &str) -> StoreError {
    StoreError::Conflict(format!(
        "Device_exist_in_conflict_fuota_task: wireless device {device_id} is in FUOTA task {other}, which is not FuotaDone; disassociate it there or wait"
    ))
}

/// Gives every device of a starting task its first state (inside the start's
/// transaction).
pub(super) fn enroll(
    c: &Connection,
    task_id: &str,
    device_ids: &[String],
    at: &str,
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO fuota_devices (task_id, device_id, status_at, step_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (task_id, device_id) DO UPDATE SET status = 'Initial', reason = NULL,
             status_at = ?3, step = 'ClockSync', step_at = ?3, attempts = 0, awaiting = 0, final = 0,
             reboot_at = NULL",
    )?;
    for d in device_ids {
        if let Some(other) = other_task(c, d, task_id)? {
            return Err(conflict(d, &other));
        }
        stmt.execute(params![task_id, d, at])?;
    }
    Ok(())
}

impl Store {
    /// AssociateWirelessDeviceWithFuotaTask: the task must be Pending and the
    /// device in no other unfinished task.
    pub async fn associate_fuota_device(
        &self,
        task_id: String,
        device_id: String,
        at: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let t = load_task(&tx, &task_id)?;
            if t.status != crate::fuota::job::Status::Pending {
                return Err(StoreError::Conflict(format!(
                    "FUOTA task {task_id} is {}; devices can only be added while it is Pending",
                    t.status
                )));
            }
            if let Some(other) = other_task(&tx, &device_id, &task_id)? {
                return Err(conflict(&device_id, &other));
            }
            tx.execute(
                "INSERT OR IGNORE INTO fuota_devices (task_id, device_id, status_at, step_at)
                 VALUES (?1, ?2, ?3, ?3)",
                params![task_id, device_id, at],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn disassociate_fuota_device(
        &self,
        task_id: String,
        device_id: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let t = load_task(c, &task_id)?;
            if t.status.is_active() {
                return Err(StoreError::Conflict(format!(
                    "FUOTA task {task_id} is {}; its devices are fixed until it is FuotaDone",
                    t.status
                )));
            }
            let n = c.execute(
                "DELETE FROM fuota_devices WHERE task_id = ?1 AND device_id = ?2",
                params![task_id, device_id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    /// AssociateWirelessDeviceWithMulticastGroup (several at once for the bulk
    /// call); a device already in the group is no error.
    pub async fn associate_group_devices(
        &self,
        group_id: String,
        device_ids: Vec<String>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            // A group carrying an unfinished task takes no new devices mid-way.
            let busy: Option<String> = tx
                .query_row(
                    "SELECT id FROM fuota_tasks WHERE group_id = ?1
                       AND status IN ('FuotaSession_Waiting', 'In_FuotaSession') LIMIT 1",
                    [&group_id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(t) = busy {
                return Err(StoreError::Conflict(format!(
                    "multicast group {group_id} carries running FUOTA task {t}; add devices once it is FuotaDone"
                )));
            }
            for d in &device_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO multicast_group_devices (group_id, device_id) VALUES (?1, ?2)",
                    params![group_id, d],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn disassociate_group_device(
        &self,
        group_id: String,
        device_id: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let n = c.execute(
                "DELETE FROM multicast_group_devices WHERE group_id = ?1 AND device_id = ?2",
                params![group_id, device_id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    /// The devices a task would set up if started now: its own and its group's.
    pub async fn task_device_ids(&self, task_id: String) -> Result<Vec<String>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT device_id FROM fuota_devices WHERE task_id = ?1
                 UNION
                 SELECT m.device_id FROM multicast_group_devices m
                   JOIN fuota_tasks t ON t.group_id = m.group_id WHERE t.id = ?1
                 ORDER BY 1",
            )?;
            let ids = s.query_map([task_id], |r| r.get(0))?;
            Ok(ids.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    /// A task's devices with their state, in DevEui order.
    pub async fn fuota_devices(&self, task_id: String) -> Result<Vec<FuotaDeviceRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLS} FROM fuota_devices d JOIN devices v ON v.id = d.device_id
                  WHERE d.task_id = ?1 ORDER BY v.dev_eui"
            ))?;
            let rows = s.query_map([task_id], row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The running task a device takes part in (not yet final), with its state.
    pub async fn open_fuota_device(
        &self,
        device_id: String,
    ) -> Result<Option<(FuotaTaskRow, FuotaDeviceRow)>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLS} FROM fuota_devices d JOIN devices v ON v.id = d.device_id
                   JOIN fuota_tasks t ON t.id = d.task_id
                  WHERE d.device_id = ?1 AND d.final = 0 AND t.control IS NOT NULL
                    AND t.status IN ('FuotaSession_Waiting', 'In_FuotaSession') LIMIT 1"
            ))?;
            let Some(d) = s.query_row([&device_id], row).optional()? else {
                return Ok(None);
            };
            let t = load_task(c, &d.task_id)?;
            Ok(Some((t, d)))
        })
        .await
    }

    /// Stores a device's new state if it is still `before` (a concurrent change,
    /// e.g. a delivery report, wins and this write is dropped: false).
    pub async fn save_fuota_device(
        &self,
        task_id: String,
        device_id: String,
        before: State,
        after: State,
        now: String,
    ) -> Result<bool, StoreError> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE fuota_devices SET status = ?3, reason = ?4, step = ?5, attempts = ?6,
                     awaiting = ?7, final = ?8, reboot_at = ?9,
                     status_at = CASE WHEN status <> ?3 OR reason IS NOT ?4 THEN ?10 ELSE status_at END,
                     step_at = CASE WHEN step <> ?5 THEN ?10 ELSE step_at END
                  WHERE task_id = ?1 AND device_id = ?2 AND step = ?11 AND attempts = ?12
                    AND awaiting = ?13 AND final = ?14",
                params![
                    task_id,
                    device_id,
                    after.status.as_str(),
                    after.reason,
                    after.step.as_str(),
                    after.attempts,
                    after.awaiting,
                    after.done,
                    after.reboot_at_us.map(crate::app::format_unix_us),
                    now,
                    before.step.as_str(),
                    before.attempts,
                    before.awaiting,
                    before.done
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// A try of `step` reached a gateway: one attempt more, and it awaits an answer.
    pub async fn fuota_device_delivered(
        &self,
        task_id: String,
        device_id: String,
        step: Step,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE fuota_devices SET attempts = attempts + 1, awaiting = 1
                  WHERE task_id = ?1 AND device_id = ?2 AND step = ?3 AND final = 0",
                params![task_id, device_id, step.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    /// Fixes SessionTime: the task's start and its group's session start.
    pub async fn set_fuota_session_time(
        &self,
        task_id: String,
        start: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE fuota_tasks SET start_time = ?2 WHERE id = ?1 AND start_time IS NULL
                   AND status = 'FuotaSession_Waiting'",
                params![task_id, start],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE multicast_groups SET session_start = ?2
                      WHERE id = (SELECT group_id FROM fuota_tasks WHERE id = ?1)",
                    params![task_id, start],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn set_fuota_frags_done(
        &self,
        task_id: String,
        at: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE fuota_tasks SET frags_done_at = COALESCE(frags_done_at, ?2) WHERE id = ?1",
                params![task_id, at],
            )?;
            Ok(())
        })
        .await
    }

    /// Running tasks with devices (the control plane's work list).
    pub async fn controlled_fuota_tasks(&self) -> Result<Vec<FuotaTaskRow>, StoreError> {
        self.run(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM fuota_tasks WHERE control IS NOT NULL
                   AND status IN ('FuotaSession_Waiting', 'In_FuotaSession') ORDER BY id"
            ))?;
            let rows = s.query_map([], task_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Devices of a task per status.
    pub async fn fuota_device_counts(
        &self,
        task_id: String,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT status, COUNT(*) FROM fuota_devices WHERE task_id = ?1 GROUP BY status ORDER BY status",
            )?;
            let rows = s.query_map([task_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The devices of a group.
    pub async fn group_device_ids(&self, group_id: String) -> Result<Vec<String>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT device_id FROM multicast_group_devices WHERE group_id = ?1 ORDER BY device_id",
            )?;
            let ids = s.query_map([group_id], |r| r.get(0))?;
            Ok(ids.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }
}
