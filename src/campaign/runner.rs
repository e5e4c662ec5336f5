//! The campaign job: every `[campaigns] tick_ms` (or when woken) it looks at
//! each unfinished campaign, settles its gateways from their tasks, asks
//! `decide` what to do and does it with the store's conditional writes. All
//! state is in the store, so after a restart (or a kill -9) the next tick
//! carries on: a wave opens only if the open wave is still the one before it,
//! and a task is created only for a gateway still Queued.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::decide::{self, decide, first_hop, settle, GwStatus, Hop, Settle, State, View};
use super::spec::{CampaignSpec, Checked};
use super::Hold;
use crate::app::{format_unix_us, parse_time, App, AppState};
use crate::store::{CampaignRow, StoreError};

/// The most queued gateways one tick looks at beyond those it may start.
const QUEUED_SLACK: usize = 1000;

pub async fn run(app: App) {
    let every = Duration::from_millis(app.config.campaigns.tick_ms);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
            _ = app.campaigns.wake.notified() => {}
        }
        if let Err(e) = tick(&app).await {
            tracing::error!("campaign job: {e}");
        }
    }
}

/// One pass over every unfinished campaign; then the CUPS index is replaced.
pub async fn tick(app: &AppState) -> Result<(), StoreError> {
    let busy = app.store.fuota_busy_gateways().await?;
    let mut index = HashMap::new();
    for row in app.store.unfinished_campaigns().await? {
        if let Err(e) = step(app, &row, &busy, &mut index).await {
            tracing::error!(campaign = %row.id, "campaign step failed: {e}");
        }
    }
    app.campaigns.publish(index, busy);
    Ok(())
}

/// The stored spec, checked again (it passed when the campaign was created).
pub fn checked(row: &CampaignRow) -> Result<Checked, StoreError> {
    serde_json::from_str::<CampaignSpec>(&row.spec)
        .map_err(|e| e.to_string())
        .and_then(CampaignSpec::check)
        .map_err(|e| StoreError::Db(format!("campaign {} spec: {e}", row.id)))
}

pub async fn hops(app: &AppState, campaign: &str) -> Result<Vec<Hop>, StoreError> {
    let mut hops = Vec::new();
    for id in app.store.campaign_hops(campaign.to_string()).await? {
        let d = app.store.definition(id).await?;
        hops.push(Hop {
            definition_id: d.id,
            current: d.current,
            update: d.update,
        });
    }
    Ok(hops)
}

async fn step(
    app: &AppState,
    row: &CampaignRow,
    busy: &HashMap<String, String>,
    index: &mut HashMap<String, Arc<Hold>>,
) -> Result<(), StoreError> {
    let spec = Arc::new(checked(row)?);
    let hops = hops(app, &row.id).await?;
    let clock = &app.campaigns;
    let at = || format_unix_us(clock.now_us());
    // Settle: tasks run on while a campaign is paused.
    for p in app.store.campaign_progress(row.id.clone()).await? {
        let task = p
            .task
            .as_ref()
            .map(|(d, s, r)| (d.as_str(), *s, r.as_str()));
        let s = app.store.clone();
        let (id, gw) = (row.id.clone(), p.gateway_id.clone());
        let was_mismatch = p.status == GwStatus::Mismatch;
        match settle(
            &hops,
            task,
            p.reported.as_ref(),
            p.lns.as_ref(),
            was_mismatch,
        ) {
            Settle::Keep if was_mismatch => {}
            Settle::Keep => {
                index.insert(
                    p.gateway_id.clone(),
                    Arc::new(Hold {
                        campaign: row.id.clone(),
                        spec: spec.clone(),
                    }),
                );
            }
            Settle::NextHop(h) => {
                let def = hops[h].definition_id.clone();
                if s.start_campaign_task(id, gw, p.status, def.clone(), at(), false)
                    .await?
                {
                    tracing::info!(campaign = %row.id, gateway = %p.eui, definition = %def, from = "(new)", to = "PENDING", "task transition");
                }
            }
            Settle::Succeeded(why) => {
                s.set_campaign_gateway(id, gw, p.status, GwStatus::Succeeded, why, at())
                    .await?;
            }
            Settle::Mismatch(why) => {
                s.set_campaign_gateway(id, gw, p.status, GwStatus::Mismatch, why, at())
                    .await?;
            }
            Settle::Failed(why) => {
                s.set_campaign_gateway(id, gw, p.status, GwStatus::Failed, why, at())
                    .await?;
            }
        }
    }
    let now = clock.now_us();
    let room = spec.max_in_progress().min(spec.max_starts_per_minute()) as usize;
    let (counts, recent, queued) = app
        .store
        .campaign_counts(
            row.id.clone(),
            format_unix_us(now - decide::MINUTE_US),
            room.saturating_add(busy.len())
                .min(room.saturating_add(QUEUED_SLACK)),
        )
        .await?;
    let view = View {
        state: row.state,
        waves: row.waves,
        open_wave: row.open_wave,
        waived_wave: row.waived_wave,
        wave_opened_at_us: row
            .wave_opened_at
            .as_deref()
            .and_then(|t| parse_time(t).ok()),
        spec: &spec,
        counts: &counts,
        recent_starts: recent,
        queued: &queued,
    };
    let d = decide(&view, now, busy);
    if let Some((to, why)) = d.state {
        if app
            .store
            .job_set_state(row.id.clone(), row.state, to, why.clone(), at())
            .await?
        {
            tracing::info!(campaign = %row.id, from = %row.state, to = %to, reason = %why, "campaign state");
            app.campaigns.wake.notify_one();
        }
        return Ok(());
    }
    if let Some(w) = d.open_wave {
        if app.store.open_wave(row.id.clone(), w, at()).await? {
            tracing::info!(campaign = %row.id, wave = w, "campaign wave opened");
            app.campaigns.wake.notify_one();
        }
        return Ok(());
    }
    if !d.held.is_empty() {
        app.store
            .note_campaign_gateways(row.id.clone(), d.held)
            .await?;
    }
    for gw in d.start {
        if start(app, row, &hops, &gw, spec.spec.nudge).await? {
            index.insert(
                gw.clone(),
                Arc::new(Hold {
                    campaign: row.id.clone(),
                    spec: spec.clone(),
                }),
            );
        }
    }
    if let Some(note) = d.note {
        if row.state == State::Running && row.state_reason != note {
            app.store
                .job_set_state(row.id.clone(), State::Running, State::Running, note, at())
                .await?;
        }
    }
    Ok(())
}

/// Creates a queued gateway's first task: the first hop whose current version
/// it reports. A gateway no hop matches any more ends Failed with that reason.
async fn start(
    app: &AppState,
    row: &CampaignRow,
    hops: &[Hop],
    gateway_id: &str,
    nudge: bool,
) -> Result<bool, StoreError> {
    let at = format_unix_us(app.campaigns.now_us());
    let g = app.store.gateway(gateway_id.to_string()).await?;
    let reported = g
        .last_report
        .as_ref()
        .map(|r| crate::firmware::task::Version {
            station: r.station.clone(),
            package: r.package.clone(),
            model: r.model.clone(),
        });
    let Some(hop) = reported.as_ref().and_then(|v| first_hop(hops, v)) else {
        let why = match &reported {
            Some(v) => {
                format!("the gateway now reports {v}, which no definition of the campaign updates")
            }
            None => "the gateway has never polled CUPS".into(),
        };
        app.store
            .set_campaign_gateway(
                row.id.clone(),
                gateway_id.into(),
                GwStatus::Queued,
                GwStatus::Failed,
                why,
                at,
            )
            .await?;
        return Ok(false);
    };
    let def = hops[hop].definition_id.clone();
    let ok = app
        .store
        .start_campaign_task(
            row.id.clone(),
            gateway_id.into(),
            GwStatus::Queued,
            def.clone(),
            at,
            true,
        )
        .await?;
    if ok {
        tracing::info!(campaign = %row.id, gateway = %g.gw.eui, definition = %def, from = "(new)", to = "PENDING", "task transition");
        if nudge {
            let timeout = Duration::from_secs(app.config.campaigns.nudge_timeout_secs);
            if app.lns.nudge(g.gw.eui, timeout) {
                tracing::info!(campaign = %row.id, gateway = %g.gw.eui, "nudged: LNS session closed so station runs CUPS now");
            }
        }
    }
    Ok(ok)
}
