//! `GET /fleet`: the whole fleet at a glance (ours; AWS has none). Gateways by
//! (Station, PackageVersion, Model) with counts, online by CUPS contact within
//! `[campaigns] offline_after_secs` and by LNS connection, open tasks by status,
//! the campaigns not finished, and the gateways that need attention.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::CAMPAIGNS;
use super::ApiError;
use crate::app::{format_unix_us, App};

/// Entries per needs-attention kind.
const ATTENTION_CAP: usize = 20;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default().routes(routes!(fleet))
}

/// The whole fleet at a glance.
///
/// Gateways by (Station, PackageVersion, Model) with counts, online by CUPS
/// contact and LNS connection, open tasks by status, the campaigns not
/// finished, and the gateways that need attention.
#[utoipa::path(
    get,
    path = "/fleet",
    operation_id = "GetFleet",
    tag = CAMPAIGNS,
    responses(
        (status = 200, description = "`Gateways`, `NeverPolledCups`, `OnlineByCups`, `OnlineSince`, `ConnectedToLns`, `Versions`, `OpenTasks`, `Campaigns`, `NeedsAttention`, `NeedsAttentionCounts`.", body = Object),
    ),
)]
async fn fleet(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let wall = crate::app::parse_time(&crate::app::now()).unwrap_or_default();
    let since = format_unix_us(wall - app.config.campaigns.offline_after_secs as i64 * 1_000_000);
    let f = app.store.fleet(since.clone(), ATTENTION_CAP).await?;
    let versions: Vec<Value> = f
        .versions
        .iter()
        .map(|v| {
            json!({"Station": v.station, "PackageVersion": v.package, "Model": v.model,
                   "Gateways": v.gateways, "OnlineByCups": v.online})
        })
        .collect();
    let mut tasks = serde_json::Map::new();
    for (s, n) in &f.open_tasks {
        tasks.insert(s.clone(), json!(n));
    }
    let campaigns: Vec<Value> = f
        .campaigns
        .iter()
        .map(|(id, name, state, why)| json!({"Id": id, "Name": name, "State": state, "StateReason": why}))
        .collect();
    let attention: Vec<Value> = f
        .attention
        .iter()
        .map(|(eui, kind, detail)| json!({"GatewayEui": eui.to_string(), "Kind": kind, "Detail": detail}))
        .collect();
    let mut counts = serde_json::Map::new();
    for (k, n) in &f.attention_counts {
        counts.insert((*k).into(), json!(n));
    }
    Ok(Json(json!({
        "Gateways": f.gateways,
        "NeverPolledCups": f.never_polled,
        "OnlineByCups": f.versions.iter().map(|v| v.online).sum::<u64>(),
        "OnlineSince": since,
        "ConnectedToLns": app.lns.connected().len(),
        "Versions": versions,
        "OpenTasks": tasks,
        "Campaigns": campaigns,
        "NeedsAttention": attention,
        "NeedsAttentionCounts": counts,
    })))
}
