//! Why gateways are refused: `GET /wireless-gateways/{Id}/refusals` (the last CUPS
//! refusals of one gateway) and `GET /unknown-routers` (router ids the store does
//! not know that polled lately), read from `cups::refused::RefusalLog`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::gateways::find;
use super::ApiError;
use crate::app::App;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/wireless-gateways/{id}/refusals", get(gateway_refusals))
        .route("/unknown-routers", get(unknown_routers))
}

async fn gateway_refusals(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let g = find(&app, &id, None).await?;
    let list: Vec<Value> = app
        .refused
        .of(g.gw.eui)
        .iter()
        .map(|r| json!({"At": r.at, "Peer": r.peer, "Reason": r.reason, "Detail": r.detail}))
        .collect();
    Ok(Json(
        json!({"WirelessGatewayId": g.gw.id, "Refusals": list}),
    ))
}

async fn unknown_routers(State(app): State<App>) -> Json<Value> {
    let list: Vec<Value> = app
        .refused
        .unknown()
        .iter()
        .map(|u| {
            json!({
                "GatewayEui": u.eui.to_string(),
                "FirstSeen": u.first_seen,
                "LastSeen": u.last_seen,
                "LastPeer": u.last_peer,
                "Reason": u.reason,
                "Count": u.count,
            })
        })
        .collect();
    Json(json!({"UnknownRouters": list}))
}
