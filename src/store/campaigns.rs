//! Rollout campaigns: the campaign rows, their hops and their gateways, the
//! eligibility query over the fleet (with the tags table for targets by tag), and
//! the conditional writes the campaign job makes (a wave opens once; a task is
//! created only for a gateway still Queued and free).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{eui_from_sql, Store, StoreError};
use crate::campaign::decide::{Counts, GwStatus, LnsVersion, Queued, State};
use crate::eui::Eui;
use crate::firmware::task::{Status as TaskStatus, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: String,
    pub name: Option<String>,
    pub spec: String,
    pub state: State,
    pub state_reason: String,
    pub waves: u32,
    pub open_wave: i64,
    pub waived_wave: i64,
    pub wave_opened_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new campaign with its hops and each gateway's wave.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub row: CampaignRow,
    pub hops: Vec<String>,
    pub gateways: Vec<(String, u32)>,
}

/// A fleet gateway as a campaign target sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub eui: Eui,
    pub rf_region: Option<String>,
    pub reported: Option<Version>,
    pub keys: Vec<u32>,
    pub last_contact: Option<String>,
    pub open_task: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// One gateway of a campaign, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignGateway {
    pub gateway_id: String,
    pub eui: Eui,
    pub wave: u32,
    pub status: GwStatus,
    pub reason: String,
    pub attempts: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// An InProgress or Mismatch gateway with what settling it needs.
#[derive(Debug, Clone)]
pub struct Progress {
    pub gateway_id: String,
    pub eui: Eui,
    pub status: GwStatus,
    pub task: Option<(String, TaskStatus, String)>,
    pub reported: Option<Version>,
    pub lns: Option<LnsVersion>,
}

const COLS: &str = "id, name, spec, state, state_reason, waves, open_wave, waived_wave, wave_opened_at, created_at, updated_at";

fn bad(col: usize, s: String) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(col, s, rusqlite::types::Type::Text)
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<CampaignRow> {
    let state: String = r.get(3)?;
    Ok(CampaignRow {
        id: r.get(0)?,
        name: r.get(1)?,
        spec: r.get(2)?,
        state: State::parse(&state).ok_or_else(|| bad(3, state))?,
        state_reason: r.get(4)?,
        waves: r.get(5)?,
        open_wave: r.get(6)?,
        waived_wave: r.get(7)?,
        wave_opened_at: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn gw_status(col: usize, s: String) -> rusqlite::Result<GwStatus> {
    GwStatus::parse(&s).ok_or_else(|| bad(col, s))
}

fn get(c: &Connection, id: &str) -> Result<CampaignRow, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM campaigns WHERE id = ?1"),
        [id],
        from_row,
    )?)
}

const UNFINISHED: &str = "('Scheduled', 'Running', 'Paused')";

impl Store {
    /// Every gateway with what targeting and eligibility need: its last report,
    /// last contact, open task and tags. One pass over the fleet.
    pub async fn campaign_candidates(&self) -> Result<Vec<Candidate>, StoreError> {
        self.run(|c| {
            let mut tags: HashMap<String, Vec<(String, String)>> = HashMap::new();
            {
                let mut s = c.prepare_cached(
                    "SELECT resource_id, key, value FROM tags WHERE resource_type = ?1",
                )?;
                let rows = s.query_map([super::tags::GATEWAY], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
                })?;
                for row in rows {
                    let (id, k, v) = row?;
                    tags.entry(id).or_default().push((k, v));
                }
            }
            let mut s = c.prepare_cached(
                "SELECT g.id, g.eui, g.rf_region, r.station, r.package, r.model, r.keys,
                        COALESCE(k.at, ''),
                        (SELECT t.definition_id FROM tasks t WHERE t.gateway_id = g.id AND t.deleted = 0
                           AND t.status IN ('PENDING', 'IN_PROGRESS', 'FIRST_RETRY', 'SECOND_RETRY'))
                   FROM gateways g LEFT JOIN cups_reports r ON r.gateway_id = g.id
                        LEFT JOIN cups_contacts k ON k.eui = g.eui
                  ORDER BY g.eui",
            )?;
            let rows = s.query_map([], |r| {
                let id: String = r.get(0)?;
                let station: Option<String> = r.get(3)?;
                let keys: Option<String> = r.get(6)?;
                let last: String = r.get(7)?;
                Ok(Candidate {
                    eui: eui_from_sql(r.get(1)?),
                    rf_region: r.get(2)?,
                    reported: match station {
                        Some(station) => Some(Version {
                            station,
                            package: r.get(4)?,
                            model: r.get(5)?,
                        }),
                        None => None,
                    },
                    keys: keys
                        .map(|k| serde_json::from_str(&k).unwrap_or_default())
                        .unwrap_or_default(),
                    last_contact: (!last.is_empty()).then_some(last),
                    open_task: r.get(8)?,
                    tags: tags.remove(&id).unwrap_or_default(),
                    id,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Stores a campaign; refused (Conflict) when one of its definitions is in
    /// another campaign that is not finished.
    pub async fn insert_campaign(&self, n: NewCampaign) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            for d in &n.hops {
                let other: Option<(String, String)> = tx
                    .query_row(
                        &format!(
                            "SELECT c.id, c.state FROM campaign_hops h JOIN campaigns c ON c.id = h.campaign_id
                              WHERE h.definition_id = ?1 AND c.state IN {UNFINISHED}"
                        ),
                        [d],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((id, state)) = other {
                    return Err(StoreError::Conflict(format!(
                        "Definitions: task definition {d} is already rolled out by campaign {id} ({state}); cancel that campaign or wait until it finishes"
                    )));
                }
            }
            let r = &n.row;
            tx.execute(
                &format!("INSERT INTO campaigns ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![r.id, r.name, r.spec, r.state.as_str(), r.state_reason, r.waves, r.open_wave,
                        r.waived_wave, r.wave_opened_at, r.created_at, r.updated_at],
            )?;
            for (i, d) in n.hops.iter().enumerate() {
                tx.execute(
                    "INSERT INTO campaign_hops (campaign_id, hop, definition_id) VALUES (?1, ?2, ?3)",
                    params![r.id, i as i64, d],
                )?;
            }
            {
                let mut s = tx.prepare_cached(
                    "INSERT INTO campaign_gateways (campaign_id, gateway_id, wave, status, reason)
                     VALUES (?1, ?2, ?3, 'Waiting', 'its wave is not open yet')",
                )?;
                for (g, wave) in &n.gateways {
                    s.execute(params![r.id, g, wave])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn campaign(&self, id: String) -> Result<CampaignRow, StoreError> {
        self.run(move |c| get(c, &id)).await
    }

    pub async fn list_campaigns(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<CampaignRow>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare(&format!(
                "SELECT {COLS} FROM campaigns
                  WHERE ?1 IS NULL OR seq > (SELECT seq FROM campaigns WHERE id = ?1)
                  ORDER BY seq LIMIT ?2"
            ))?;
            let rows = s.query_map(params![after, limit as i64], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Campaigns the job looks after.
    pub async fn unfinished_campaigns(&self) -> Result<Vec<CampaignRow>, StoreError> {
        self.run(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLS} FROM campaigns WHERE state IN {UNFINISHED} ORDER BY seq"
            ))?;
            let rows = s.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn campaign_hops(&self, id: String) -> Result<Vec<String>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT definition_id FROM campaign_hops WHERE campaign_id = ?1 ORDER BY hop",
            )?;
            let rows = s.query_map([id], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Counts per wave and status, the starts since `since`, and the first
    /// `queued_limit` queued gateways in wave order: what `decide` needs.
    pub async fn campaign_counts(
        &self,
        id: String,
        since: String,
        queued_limit: usize,
    ) -> Result<(Counts, u64, Vec<Queued>), StoreError> {
        self.run(move |c| {
            let mut counts = Counts::default();
            let mut s = c.prepare_cached(
                "SELECT wave, status, COUNT(*) FROM campaign_gateways WHERE campaign_id = ?1 GROUP BY wave, status",
            )?;
            let rows = s.query_map([&id], |r| {
                Ok((r.get::<_, u32>(0)?, gw_status(1, r.get(1)?)?, r.get::<_, u64>(2)?))
            })?;
            for row in rows {
                let (w, st, n) = row?;
                counts.0.insert((w, st), n);
            }
            let recent: u64 = c.query_row(
                "SELECT COUNT(*) FROM campaign_gateways WHERE campaign_id = ?1 AND started_at > ?2",
                params![id, since],
                |r| r.get(0),
            )?;
            let mut s = c.prepare_cached(
                "SELECT gateway_id, wave FROM campaign_gateways WHERE campaign_id = ?1 AND status = 'Queued'
                  ORDER BY wave, gateway_id LIMIT ?2",
            )?;
            let rows = s.query_map(params![id, queued_limit as i64], |r| {
                Ok(Queued { id: r.get(0)?, wave: r.get(1)? })
            })?;
            let queued = rows.collect::<Result<Vec<_>, _>>()?;
            Ok((counts, recent, queued))
        })
        .await
    }

    /// The InProgress and Mismatch gateways of a campaign with their task, last
    /// report and (while connected) LNS version.
    pub async fn campaign_progress(&self, id: String) -> Result<Vec<Progress>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT cg.gateway_id, g.eui, cg.status, t.definition_id, t.status, t.status_reason, t.deleted,
                        r.station, r.package, r.model,
                        l.station, l.package, l.model,
                        (l.connected_at IS NOT NULL AND (l.disconnected_at IS NULL OR l.disconnected_at < l.connected_at))
                   FROM campaign_gateways cg JOIN gateways g ON g.id = cg.gateway_id
                   LEFT JOIN tasks t ON t.id = cg.task_id
                   LEFT JOIN cups_reports r ON r.gateway_id = cg.gateway_id
                   LEFT JOIN lns_state l ON l.gateway_id = cg.gateway_id
                  WHERE cg.campaign_id = ?1 AND cg.status IN ('InProgress', 'Mismatch')",
            )?;
            let rows = s.query_map([id], |r| {
                let def: Option<String> = r.get(3)?;
                let deleted: Option<bool> = r.get(6)?;
                let task = match (def, deleted) {
                    (Some(d), Some(false)) => {
                        let st: String = r.get(4)?;
                        Some((d, TaskStatus::parse(&st).ok_or_else(|| bad(4, st))?, r.get(5)?))
                    }
                    _ => None,
                };
                let station: Option<String> = r.get(7)?;
                let connected: Option<bool> = r.get(13)?;
                Ok(Progress {
                    gateway_id: r.get(0)?,
                    eui: eui_from_sql(r.get(1)?),
                    status: gw_status(2, r.get(2)?)?,
                    task,
                    reported: match station {
                        Some(station) => Some(Version { station, package: r.get(8)?, model: r.get(9)? }),
                        None => None,
                    },
                    lns: if connected == Some(true) {
                        Some(LnsVersion { station: r.get(10)?, package: r.get(11)?, model: r.get(12)? })
                    } else {
                        None
                    },
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// A campaign's gateways (optionally of one status), after gateway `after`.
    pub async fn campaign_gateways(
        &self,
        id: String,
        status: Option<GwStatus>,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<CampaignGateway>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT cg.gateway_id, g.eui, cg.wave, cg.status, cg.reason, cg.attempts, cg.started_at, cg.finished_at
                   FROM campaign_gateways cg JOIN gateways g ON g.id = cg.gateway_id
                  WHERE cg.campaign_id = ?1 AND (?2 IS NULL OR cg.status = ?2) AND (?3 IS NULL OR cg.gateway_id > ?3)
                  ORDER BY cg.gateway_id LIMIT ?4",
            )?;
            let rows = s.query_map(
                params![id, status.map(GwStatus::as_str), after, limit as i64],
                |r| {
                    Ok(CampaignGateway {
                        gateway_id: r.get(0)?,
                        eui: eui_from_sql(r.get(1)?),
                        wave: r.get(2)?,
                        status: gw_status(3, r.get(3)?)?,
                        reason: r.get(4)?,
                        attempts: r.get(5)?,
                        started_at: r.get(6)?,
                        finished_at: r.get(7)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The most common reasons among a campaign's gateways of one status.
    pub async fn campaign_reasons(
        &self,
        id: String,
        status: GwStatus,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT reason, COUNT(*) n FROM campaign_gateways WHERE campaign_id = ?1 AND status = ?2
                  GROUP BY reason ORDER BY n DESC, reason LIMIT ?3",
            )?;
            let rows = s.query_map(params![id, status.as_str(), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Moves a campaign from one of `from` to `to`; Conflict (naming the state)
    /// otherwise. `reopen_wave` resets the gate clock (resume), `waive` waives
    /// the open wave's gate.
    pub async fn set_campaign_state(
        &self,
        id: String,
        from: Vec<State>,
        to: State,
        reason: String,
        now: String,
        waive: bool,
    ) -> Result<CampaignRow, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let row = get(&tx, &id)?;
            if !from.contains(&row.state) {
                return Err(StoreError::Conflict(format!(
                    "campaign {id} is {}; this control needs it {}",
                    row.state,
                    from.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )));
            }
            tx.execute(
                "UPDATE campaigns SET state = ?2, state_reason = ?3, updated_at = ?4,
                        waived_wave = CASE WHEN ?5 THEN open_wave ELSE waived_wave END,
                        wave_opened_at = CASE WHEN ?5 THEN ?4 ELSE wave_opened_at END
                  WHERE id = ?1",
                params![id, to.as_str(), reason, now, waive],
            )?;
            let row = get(&tx, &id)?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// The job's state change, only if the campaign is still `from` (the
    /// operator may have paused or cancelled it meanwhile).
    pub async fn job_set_state(
        &self,
        id: String,
        from: State,
        to: State,
        reason: String,
        now: String,
    ) -> Result<bool, StoreError> {
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE campaigns SET state = ?3, state_reason = ?4, updated_at = ?5 WHERE id = ?1 AND state = ?2",
                params![id, from.as_str(), to.as_str(), reason, now],
            )? == 1)
        })
        .await
    }

    /// Opens wave `wave`, only if the open wave is still `wave - 1` and the
    /// campaign Running: one transaction, so no wave is opened twice.
    pub async fn open_wave(&self, id: String, wave: u32, now: String) -> Result<bool, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE campaigns SET open_wave = ?2, wave_opened_at = ?3, updated_at = ?3,
                        state_reason = 'wave ' || ?2 || ' open'
                  WHERE id = ?1 AND open_wave = ?2 - 1 AND state = 'Running'",
                params![id, wave, now],
            )?;
            if n == 0 {
                return Ok(false);
            }
            tx.execute(
                "UPDATE campaign_gateways SET status = 'Queued', reason = 'its wave is open; waiting for its turn'
                  WHERE campaign_id = ?1 AND wave = ?2 AND status = 'Waiting'",
                params![id, wave],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Creates a campaign gateway's task for `definition` (PENDING) and marks it
    /// InProgress, in one transaction, only if it is still `from` and has no
    /// open task. Returns false when it was not.
    pub async fn start_campaign_task(
        &self,
        id: String,
        gateway_id: String,
        from: GwStatus,
        definition: String,
        now: String,
        first: bool,
    ) -> Result<bool, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO tasks (gateway_id, definition_id, status, status_reason, created_at, updated_at)
                 SELECT ?1, ?2, 'PENDING', 'created by campaign ' || ?4 || '; sent on the next poll', ?3, ?3
                  WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE gateway_id = ?1 AND deleted = 0
                                      AND status IN ('PENDING', 'IN_PROGRESS', 'FIRST_RETRY', 'SECOND_RETRY'))",
                params![gateway_id, definition, now, id],
            )?;
            if n == 0 {
                tx.execute(
                    "UPDATE campaign_gateways SET reason = 'waiting: the gateway has another open task' WHERE campaign_id = ?1 AND gateway_id = ?2",
                    params![id, gateway_id],
                )?;
                tx.commit()?;
                return Ok(false);
            }
            let task = tx.last_insert_rowid();
            let n = tx.execute(
                "UPDATE campaign_gateways SET status = 'InProgress', task_id = ?4, started_at = CASE WHEN ?6 THEN ?5 ELSE started_at END,
                        attempts = attempts + CASE WHEN ?6 THEN 1 ELSE 0 END,
                        reason = 'task created for definition ' || ?7 || '; delivered on its next CUPS poll'
                  WHERE campaign_id = ?1 AND gateway_id = ?2 AND status = ?3",
                params![id, gateway_id, from.as_str(), task, now, first, definition],
            )?;
            if n == 0 {
                return Ok(false); // dropped: rolls the task back
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Sets a campaign gateway's status and reason (settled by the job).
    pub async fn set_campaign_gateway(
        &self,
        id: String,
        gateway_id: String,
        from: GwStatus,
        to: GwStatus,
        reason: String,
        now: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE campaign_gateways SET status = ?4, reason = ?5,
                        finished_at = CASE WHEN ?4 IN ('Succeeded', 'Failed', 'Cancelled') THEN ?6 ELSE finished_at END,
                        task_id = CASE WHEN ?4 IN ('Succeeded', 'Failed', 'Cancelled') THEN NULL ELSE task_id END
                  WHERE campaign_id = ?1 AND gateway_id = ?2 AND status = ?3",
                params![id, gateway_id, from.as_str(), to.as_str(), reason, now],
            )?;
            Ok(())
        })
        .await
    }

    /// A queued gateway's reason (held by FUOTA).
    pub async fn note_campaign_gateways(
        &self,
        id: String,
        notes: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut s = tx.prepare_cached(
                    "UPDATE campaign_gateways SET reason = ?3 WHERE campaign_id = ?1 AND gateway_id = ?2 AND status = 'Queued'",
                )?;
                for (g, why) in &notes {
                    s.execute(params![id, g, why])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Cancels a campaign: open tasks it created are deleted (tombstones), every
    /// gateway not finished becomes Cancelled. Returns the tasks deleted.
    pub async fn cancel_campaign(
        &self,
        id: String,
        now: String,
    ) -> Result<(u64, CampaignRow), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let row = get(&tx, &id)?;
            if row.state.is_finished() {
                return Err(StoreError::Conflict(format!(
                    "campaign {id} is {}; only a Scheduled, Running or Paused campaign can be cancelled",
                    row.state
                )));
            }
            let deleted = tx.execute(
                "UPDATE tasks SET deleted = 1, status_reason = 'deleted: campaign ' || ?1 || ' was cancelled'
                  WHERE deleted = 0 AND status IN ('PENDING', 'IN_PROGRESS', 'FIRST_RETRY', 'SECOND_RETRY')
                    AND id IN (SELECT task_id FROM campaign_gateways WHERE campaign_id = ?1 AND task_id IS NOT NULL)",
                [&id],
            )? as u64;
            tx.execute(
                "UPDATE campaign_gateways SET status = 'Cancelled', reason = 'the campaign was cancelled', finished_at = ?2, task_id = NULL
                  WHERE campaign_id = ?1 AND status IN ('Waiting', 'Queued', 'InProgress', 'Mismatch')",
                params![id, now],
            )?;
            tx.execute(
                "UPDATE campaigns SET state = 'Cancelled', state_reason = 'cancelled by the operator', updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            let row = get(&tx, &id)?;
            tx.commit()?;
            Ok((deleted, row))
        })
        .await
    }

    /// Retry failed: the gateways that ended Failed form a new wave, queued
    /// behind the open one; a Paused or Completed campaign runs again. Returns
    /// how many.
    pub async fn retry_failed(
        &self,
        id: String,
        now: String,
    ) -> Result<(u64, CampaignRow), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let row = get(&tx, &id)?;
            if !matches!(row.state, State::Running | State::Paused | State::Completed) {
                return Err(StoreError::Conflict(format!(
                    "campaign {id} is {}; retry-failed needs it Running, Paused or Completed",
                    row.state
                )));
            }
            let n = tx.execute(
                "UPDATE campaign_gateways SET wave = ?2, status = 'Waiting', reason = 'retry: its wave is not open yet', finished_at = NULL
                  WHERE campaign_id = ?1 AND status = 'Failed'",
                params![id, row.waves],
            )? as u64;
            if n == 0 {
                return Err(StoreError::Conflict(format!("campaign {id} has no Failed gateway to retry")));
            }
            tx.execute(
                "UPDATE campaigns SET waves = waves + 1, state = 'Running',
                        state_reason = 'retry-failed: ' || ?3 || ' gateways in wave ' || waves, updated_at = ?2,
                        waived_wave = CASE WHEN state = 'Paused' THEN open_wave ELSE waived_wave END
                  WHERE id = ?1",
                params![id, now, n],
            )?;
            let row = get(&tx, &id)?;
            tx.commit()?;
            Ok((n, row))
        })
        .await
    }

    /// Deletes a campaign that is not Running or Paused (Conflict then), with its
    /// hops and gateway list; the tasks it created stay.
    pub async fn delete_campaign(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row = get(&tx, &id)?;
            if matches!(row.state, State::Running | State::Paused) {
                return Err(StoreError::Conflict(format!(
                    "campaign {id} is {}; cancel it first (PUT /campaigns/{id}/state {{\"State\": \"Cancelled\"}})",
                    row.state
                )));
            }
            tx.execute("DELETE FROM campaigns WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Gateways carrying an active FUOTA session, with that task's Id.
    pub async fn fuota_busy_gateways(&self) -> Result<HashMap<String, String>, StoreError> {
        self.run(|c| {
            let mut s = c.prepare_cached(
                "SELECT p.gateway_id, t.id FROM fuota_progress p JOIN fuota_tasks t ON t.id = p.task_id
                  WHERE t.status IN ('FuotaSession_Waiting', 'In_FuotaSession')",
            )?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
        })
        .await
    }
}
