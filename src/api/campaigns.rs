//! `/campaigns`: rollout campaigns (ours; AWS has none, so the shapes follow
//! AWS's conventions). Create and preview take the same body
//! (`campaign::spec::CampaignSpec`); the checks that need the store are here:
//! the definitions exist, none auto-creates tasks, the hops connect, the canaries
//! and the waves fit the eligible gateways. Controls are the spec's
//! `PUT /campaigns/{Id}/state`, `POST /campaigns/{Id}/retry-failed` and
//! `DELETE /campaigns/{Id}`; `POST /campaigns/{Id}/pause|resume|cancel` do the
//! same as the state changes and answer the campaign (the CLI and console use them).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::CAMPAIGNS;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::app::{format_unix_us, new_id, App, AppState};
use crate::campaign::decide::{GwStatus, Hop, State as CState};
use crate::campaign::spec::{plan_waves, CampaignSpec, Checked};
use crate::campaign::target::{eligibility, Eligibility};
use crate::firmware::task::Current;
use crate::logguard::Clipped;
use crate::store::{CampaignRow, NewCampaign, StoreError};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(preview))
        .routes(routes!(get_one, delete_one))
        .routes(routes!(set_state))
        .routes(routes!(gateways))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(retry_failed))
}

const CAMPAIGN_ID: &str = "The campaign's Id.";
const PLAN: &str = "`Targeted`, `Eligible`, `NotEligible` (`Reason`, `Count`, `Examples`), `WillWait`, `WaveSizes`, `EstimatedDurationMinutes`";
const REFUSED: &str = "A body that cannot run: unknown or auto-creating definitions, hops that do not connect, an empty target, waves or canaries that do not fit (the message names the field).";

/// The body checked against the store: hops, eligibility, waves.
struct Planned {
    checked: Checked,
    hops: Vec<Hop>,
    elig: Eligibility,
    /// Eligible gateway Ids, canaries first.
    order: Vec<String>,
    sizes: Vec<usize>,
}

async fn load_hops(
    app: &AppState,
    c: &Checked,
) -> Result<(Vec<Hop>, HashMap<String, u32>), ApiError> {
    let mut hops: Vec<Hop> = Vec::new();
    let mut keys = HashMap::new();
    for (i, id) in c.spec.definitions.iter().enumerate() {
        let d = match app.store.definition(id.clone()).await {
            Ok(d) => d,
            Err(StoreError::NotFound) => {
                return Err(ApiError::validation(format!(
                    "Definitions[{i}]: no task definition {:?}; list them with GET /wireless-gateway-task-definitions",
                    Clipped(id)
                )))
            }
            Err(e) => return Err(e.into()),
        };
        if d.auto_create {
            return Err(ApiError::validation(format!(
                "Definitions[{i}]: task definition {id} has AutoCreateTasks true, so it already updates every matching gateway on its own; a campaign owns its tasks: create the definition with AutoCreateTasks false"
            )));
        }
        if let Some(prev) = hops.last() {
            let connects = match &prev.update {
                Some(u) => d.current.matches(u),
                None => false,
            };
            if !connects {
                let from = prev
                    .update
                    .as_ref()
                    .map_or_else(|| "no UpdateVersion".to_string(), |u| u.to_string());
                let to = match &d.current {
                    Current::Exact(v) => format!("CurrentVersion {v}"),
                    Current::Range(r) => format!("CurrentVersionRange {r}"),
                };
                return Err(ApiError::validation(format!(
                    "Definitions[{i}] does not connect to Definitions[{}]: hop {} ends at {from}, hop {i} starts at {to}; each hop's UpdateVersion must match the next hop's CurrentVersion or range",
                    i - 1,
                    i - 1
                )));
            }
        }
        if hops.iter().any(|h| h.definition_id == d.id) {
            return Err(ApiError::validation(format!(
                "Definitions[{i}]: {id} appears twice"
            )));
        }
        keys.insert(d.id.clone(), d.sig_key_crc);
        hops.push(Hop {
            definition_id: d.id,
            current: d.current,
            update: d.update,
        });
    }
    Ok((hops, keys))
}

async fn plan(app: &AppState, spec: CampaignSpec) -> Result<Planned, ApiError> {
    let checked = spec.check().map_err(ApiError::validation)?;
    let (hops, keys) = load_hops(app, &checked).await?;
    let fleet = app.store.campaign_candidates().await?;
    let busy = app.store.fuota_busy_gateways().await?;
    let offline_us = app.config.campaigns.offline_after_secs as i64 * 1_000_000;
    // Contacts are stamped with the wall clock, not the campaign clock.
    let wall = crate::app::parse_time(&crate::app::now()).unwrap_or_default();
    let elig = eligibility(&checked, &hops, &keys, &fleet, &busy, wall, offline_us);
    let max = app.config.campaigns.max_gateways;
    if elig.eligible.len() > max {
        return Err(ApiError::validation(format!(
            "Target: {} gateways are eligible; a campaign takes at most {max} ([campaigns] max_gateways); narrow the Target",
            elig.eligible.len()
        )));
    }
    // Canaries: named by Id or EUI, each eligible, first in the order.
    let mut order = Vec::new();
    for (j, c) in checked.spec.waves[0].canaries.iter().enumerate() {
        let found = fleet
            .iter()
            .find(|g| g.id == *c || c.parse::<crate::eui::Eui>().is_ok_and(|e| e == g.eui));
        let Some(g) = found else {
            return Err(ApiError::validation(format!(
                "Waves[0].Canaries[{j}]: no gateway {:?}",
                Clipped(c)
            )));
        };
        if !elig.eligible.contains(&g.id) {
            return Err(ApiError::validation(format!(
                "Waves[0].Canaries[{j}]: gateway {} is not eligible (not targeted, or see NotEligible in POST /campaigns/preview)",
                g.eui
            )));
        }
        if !order.contains(&g.id) {
            order.push(g.id.clone());
        }
    }
    let canaries = order.len();
    let rest: Vec<String> = elig
        .eligible
        .iter()
        .filter(|id| !order.contains(id))
        .cloned()
        .collect();
    order.extend(rest);
    let sizes = if order.is_empty() {
        vec![]
    } else {
        plan_waves(order.len(), canaries, &checked.spec.waves).map_err(ApiError::validation)?
    };
    Ok(Planned {
        checked,
        hops,
        elig,
        order,
        sizes,
    })
}

/// Minutes a wave takes, roughly: a gateway polls CUPS within a day (minutes
/// when nudged), and the rate limits spread the starts.
fn estimate_minutes(c: &Checked, sizes: &[usize]) -> u64 {
    let per_gateway: u64 = if c.spec.nudge { 5 } else { 24 * 60 };
    sizes
        .iter()
        .map(|&n| {
            let n = n as u64;
            let starts = c
                .spec
                .max_starts_per_minute
                .map_or(0, |r| n.div_ceil(u64::from(r)));
            let batches = c
                .spec
                .max_in_progress
                .map_or(1, |m| n.div_ceil(u64::from(m)));
            starts.max(batches * per_gateway)
        })
        .sum()
}

fn plan_json(p: &Planned) -> Value {
    let not: Vec<Value> = p
        .elig
        .not_eligible
        .iter()
        .map(|(r, (n, ex))| json!({"Reason": r, "Count": n, "Examples": ex}))
        .collect();
    let wait: Vec<Value> = p
        .elig
        .will_wait
        .iter()
        .map(|(g, r)| json!({"WirelessGatewayId": g, "Reason": r}))
        .collect();
    json!({
        "Targeted": p.elig.targeted,
        "Eligible": p.order.len(),
        "NotEligible": not,
        "WillWait": wait,
        "WaveSizes": p.sizes,
        "EstimatedDurationMinutes": estimate_minutes(&p.checked, &p.sizes),
    })
}

/// What a campaign would do, without creating it.
#[utoipa::path(
    post,
    path = "/campaigns/preview",
    operation_id = "PreviewCampaign",
    tag = CAMPAIGNS,
    request_body = CampaignSpec,
    responses(
        (status = 200, description = PLAN, body = Object),
        (status = 400, description = REFUSED, body = ErrorBody),
    ),
)]
async fn preview(
    State(app): State<App>,
    ApiJson(spec): ApiJson<CampaignSpec>,
) -> Result<Json<Value>, ApiError> {
    let p = plan(&app, spec).await?;
    Ok(Json(plan_json(&p)))
}

/// Create a campaign: one task definition, or a chain, rolled out in waves.
///
/// It runs at once, or is `Scheduled` until its `StartTime`. The eligible set
/// and each gateway's wave are fixed now.
#[utoipa::path(
    post,
    path = "/campaigns",
    operation_id = "CreateCampaign",
    tag = CAMPAIGNS,
    request_body = CampaignSpec,
    responses(
        (status = 201, description = "The plan as in PreviewCampaign, with `Id` and `State`.", body = Object),
        (status = 400, description = "As PreviewCampaign, or no gateway is eligible.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<App>,
    ApiJson(spec): ApiJson<CampaignSpec>,
) -> Result<impl IntoResponse, ApiError> {
    let p = plan(&app, spec).await?;
    if p.order.is_empty() {
        let why: Vec<String> = p
            .elig
            .not_eligible
            .iter()
            .map(|(r, (n, _))| format!("{n}: {r}"))
            .collect();
        return Err(ApiError::validation(format!(
            "Target: no gateway is eligible ({} targeted{}{}); see POST /campaigns/preview",
            p.elig.targeted,
            if why.is_empty() { "" } else { "; " },
            why.join("; ")
        )));
    }
    let id = new_id();
    let now = format_unix_us(app.campaigns.now_us());
    let scheduled = p
        .checked
        .start_us
        .is_some_and(|s| s > app.campaigns.now_us());
    let (state, reason) = if scheduled {
        (CState::Scheduled, "waiting for its StartTime".to_string())
    } else {
        (CState::Running, "created".to_string())
    };
    let mut gateways = Vec::with_capacity(p.order.len());
    let mut it = p.order.iter();
    for (w, &n) in p.sizes.iter().enumerate() {
        gateways.extend(it.by_ref().take(n).map(|g| (g.clone(), w as u32)));
    }
    let spec_json = serde_json::to_string(&p.checked.spec).expect("a spec serialises");
    app.store
        .insert_campaign(NewCampaign {
            row: CampaignRow {
                id: id.clone(),
                name: p.checked.spec.name.clone(),
                spec: spec_json,
                state,
                state_reason: reason,
                waves: p.sizes.len() as u32,
                open_wave: -1,
                waived_wave: -1,
                wave_opened_at: None,
                created_at: now.clone(),
                updated_at: now,
            },
            hops: p.hops.iter().map(|h| h.definition_id.clone()).collect(),
            gateways,
        })
        .await?;
    tracing::info!(campaign = %id, gateways = p.order.len(), waves = p.sizes.len(), "campaign created");
    app.campaigns.wake.notify_one();
    let mut out = plan_json(&p);
    out["Id"] = json!(id);
    out["State"] = json!(state.as_str());
    Ok((StatusCode::CREATED, Json(out)))
}

/// List the campaigns.
#[utoipa::path(
    get,
    path = "/campaigns",
    operation_id = "ListCampaigns",
    tag = CAMPAIGNS,
    params(super::Page),
    responses(
        (status = 200, description = "`{\"Campaigns\": [{\"Id\", \"Name\", \"State\", \"StateReason\", \"CreatedAt\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<super::Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "Campaigns",
        |after, n| app.store.list_campaigns(after, n),
        |c| c.id.clone(),
        |c| json!({"Id": c.id, "Name": c.name, "State": c.state.as_str(), "StateReason": c.state_reason, "CreatedAt": c.created_at}),
    )
    .await
}

async fn campaign_json(app: &AppState, c: &CampaignRow) -> Result<Value, ApiError> {
    let (counts, _, _) = app
        .store
        .campaign_counts(c.id.clone(), String::new(), 0)
        .await?;
    let mut waves = Vec::new();
    for w in 0..c.waves {
        let mut per = serde_json::Map::new();
        for s in GwStatus::ALL {
            let n = counts.get(w, s);
            if n > 0 {
                per.insert(s.as_str().into(), json!(n));
            }
        }
        waves.push(json!({"Wave": w, "Size": counts.in_wave(w), "Open": i64::from(w) <= c.open_wave, "Counts": per}));
    }
    let mut totals = serde_json::Map::new();
    for s in GwStatus::ALL {
        totals.insert(s.as_str().into(), json!(counts.total(s)));
    }
    let failures: Vec<Value> = app
        .store
        .campaign_reasons(c.id.clone(), GwStatus::Failed, 5)
        .await?
        .into_iter()
        .map(|(r, n)| json!({"Reason": r, "Count": n}))
        .collect();
    let spec: Value = serde_json::from_str(&c.spec).unwrap_or(Value::Null);
    let done = counts.total(GwStatus::Succeeded) + counts.total(GwStatus::Failed);
    let left: u64 = GwStatus::ALL
        .iter()
        .filter(|s| s.is_open())
        .map(|s| counts.total(*s))
        .sum();
    // The rate so far, projected over what is left.
    let eta = match (crate::app::parse_time(&c.created_at), done, c.state) {
        (Ok(t0), d, CState::Running) if d > 0 && left > 0 => {
            let now = app.campaigns.now_us();
            Some(format_unix_us(now + (now - t0) / d as i64 * left as i64))
        }
        _ => None,
    };
    Ok(json!({
        "Id": c.id, "Name": c.name, "State": c.state.as_str(), "StateReason": c.state_reason,
        "OpenWave": c.open_wave, "Waves": waves, "Counts": totals,
        "TopFailureReasons": failures, "Eta": eta, "Spec": spec,
        "CreatedAt": c.created_at, "UpdatedAt": c.updated_at,
    }))
}

/// Read a campaign: state, waves with counts, top failure reasons, ETA.
#[utoipa::path(
    get,
    path = "/campaigns/{id}",
    operation_id = "GetCampaign",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    responses(
        (status = 200, description = "`Id`, `Name`, `State`, `StateReason`, `OpenWave`, `Waves`, `Counts`, `TopFailureReasons`, `Eta`, `Spec` (the body as created), `CreatedAt`, `UpdatedAt`.", body = Object),
        (status = 404, description = "No such campaign.", body = ErrorBody),
    ),
)]
async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let c = app
        .store
        .campaign(id.clone())
        .await
        .map_err(missing(format!("campaign {id}")))?;
    Ok(Json(campaign_json(&app, &c).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GatewaysQuery {
    /// Only gateways in this status, e.g. `FAILED` or `NOT_STARTED`.
    status: Option<String>,
    /// Entries per page, 1 to 250 (0 or none: 100).
    max_results: Option<usize>,
    /// The `NextToken` of the previous page.
    next_token: Option<String>,
}

/// The campaign's gateways with their wave and status.
///
/// Every eligible gateway, those not reached yet as `NOT_STARTED`.
#[utoipa::path(
    get,
    path = "/campaigns/{id}/gateways",
    operation_id = "ListCampaignGateways",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID), GatewaysQuery),
    responses(
        (status = 200, description = "`{\"Gateways\": [{\"WirelessGatewayId\", \"GatewayEui\", \"Wave\", \"Status\", \"Reason\", \"Attempts\", \"StartedAt\", \"FinishedAt\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "An unknown status or a bad query parameter.", body = ErrorBody),
        (status = 404, description = "No such campaign.", body = ErrorBody),
    ),
)]
async fn gateways(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GatewaysQuery>,
) -> Result<Json<Value>, ApiError> {
    app.store
        .campaign(id.clone())
        .await
        .map_err(missing(format!("campaign {id}")))?;
    let status = match &q.status {
        None => None,
        Some(s) => Some(GwStatus::parse(&s.replace('_', "")).ok_or_else(|| {
            ApiError::validation(format!(
                "status {:?} is not one of {}",
                Clipped(s),
                GwStatus::ALL
                    .map(|s| s.as_str().to_ascii_uppercase())
                    .join(", ")
            ))
        })?),
    };
    let page = super::Page {
        max_results: q.max_results,
        next_token: q.next_token,
    };
    page.answer(
        "Gateways",
        |after, n| app.store.campaign_gateways(id.clone(), status, after, n),
        |g| g.gateway_id.clone(),
        |g| {
            json!({"WirelessGatewayId": g.gateway_id, "GatewayEui": g.eui.to_string(), "Wave": g.wave,
                   "Status": g.status.as_str(), "Reason": g.reason, "Attempts": g.attempts,
                   "StartedAt": g.started_at, "FinishedAt": g.finished_at})
        },
    )
    .await
}

async fn control(
    app: &AppState,
    id: &str,
    from: &[CState],
    to: CState,
    reason: &str,
    waive: bool,
) -> Result<Json<Value>, ApiError> {
    let now = format_unix_us(app.campaigns.now_us());
    let c = app
        .store
        .set_campaign_state(id.to_string(), from.to_vec(), to, reason.into(), now, waive)
        .await
        .map_err(missing(format!("campaign {id}")))?;
    tracing::info!(campaign = %id, to = %to, reason, "campaign state");
    app.campaigns.wake.notify_one();
    Ok(Json(campaign_json(app, &c).await?))
}

/// Pause a campaign: no new task starts; open tasks run on.
#[utoipa::path(
    post,
    path = "/campaigns/{id}/pause",
    operation_id = "PauseCampaign",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    responses(
        (status = 200, description = "The campaign, `Paused`.", body = Object),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "It is not `Running` or `Scheduled`.", body = ErrorBody),
    ),
)]
async fn pause(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    control(
        &app,
        &id,
        &[CState::Running, CState::Scheduled],
        CState::Paused,
        "paused by the operator; no new task starts (open tasks run on)",
        false,
    )
    .await
}

/// Resume a paused campaign, waiving the open wave's gate.
#[utoipa::path(
    post,
    path = "/campaigns/{id}/resume",
    operation_id = "ResumeCampaign",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    responses(
        (status = 200, description = "The campaign, `Running`.", body = Object),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "It is not `Paused`.", body = ErrorBody),
    ),
)]
async fn resume(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    control(
        &app,
        &id,
        &[CState::Paused],
        CState::Running,
        "resumed by the operator; the open wave's gate is waived",
        true,
    )
    .await
}

/// Cancel a campaign and delete its open tasks.
#[utoipa::path(
    post,
    path = "/campaigns/{id}/cancel",
    operation_id = "CancelCampaign",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    responses(
        (status = 200, description = "The campaign, `Cancelled`, with `TasksDeleted`.", body = Object),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "It is not `Scheduled`, `Running` or `Paused`.", body = ErrorBody),
    ),
)]
async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let now = format_unix_us(app.campaigns.now_us());
    let (deleted, c) = app
        .store
        .cancel_campaign(id.clone(), now)
        .await
        .map_err(missing(format!("campaign {id}")))?;
    tracing::info!(campaign = %id, tasks_deleted = deleted, "campaign cancelled");
    app.campaigns.wake.notify_one();
    let mut out = campaign_json(&app, &c).await?;
    out["TasksDeleted"] = json!(deleted);
    Ok(Json(out))
}

/// Append a wave of the gateways that ended `FAILED`.
#[utoipa::path(
    post,
    path = "/campaigns/{id}/retry-failed",
    operation_id = "RetryFailedCampaignGateways",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    responses(
        (status = 201, description = "`Wave`: the new wave's number (from 1); `Gateways`: how many gateways it holds.", body = Object),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "It has no FAILED gateway, or is not `Running`, `Paused` or `Completed`.", body = ErrorBody),
    ),
)]
async fn retry_failed(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = format_unix_us(app.campaigns.now_us());
    let (n, c) = app
        .store
        .retry_failed(id.clone(), now)
        .await
        .map_err(missing(format!("campaign {id}")))?;
    tracing::info!(campaign = %id, gateways = n, "campaign retry-failed");
    app.campaigns.wake.notify_one();
    // The new wave is the last one, numbered from 1 like GET's `Waves`.
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Wave": c.waves, "Gateways": n })),
    ))
}

/// The body of `PUT /campaigns/{Id}/state`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CampaignStateChange)]
struct StateBody {
    /// `Running` (resume a paused campaign), `Paused` or `Cancelled`.
    state: String,
}

/// Pause, resume or cancel a campaign.
#[utoipa::path(
    put,
    path = "/campaigns/{id}/state",
    operation_id = "UpdateCampaignState",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    request_body = StateBody,
    responses(
        (status = 204, description = "The campaign is in that state now."),
        (status = 400, description = "`State` is not `Running`, `Paused` or `Cancelled`.", body = ErrorBody),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "The campaign's state cannot go there (the message names both).", body = ErrorBody),
    ),
)]
async fn set_state(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StateBody>,
) -> Result<StatusCode, ApiError> {
    let (app, id) = (State(app), Path(id));
    match b.state.as_str() {
        "Running" => resume(app, id).await.map(drop),
        "Paused" => pause(app, id).await.map(drop),
        "Cancelled" => cancel(app, id).await.map(drop),
        other => Err(ApiError::validation(format!(
            "State {:?} is not one of \"Running\", \"Paused\", \"Cancelled\"",
            Clipped(other)
        ))),
    }?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a campaign that is not running: its waves and gateway list go; the
/// tasks it created stay in the gateways' history.
#[utoipa::path(
    delete,
    path = "/campaigns/{id}",
    operation_id = "DeleteCampaign",
    tag = CAMPAIGNS,
    params(("id" = String, Path, description = CAMPAIGN_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such campaign.", body = ErrorBody),
        (status = 409, description = "It is `Running` or `Paused`: cancel it first.", body = ErrorBody),
    ),
)]
async fn delete_one(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.store
        .delete_campaign(id.clone())
        .await
        .map_err(missing(format!("campaign {id}")))?;
    tracing::info!(campaign = %id, "campaign deleted");
    app.campaigns.wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
