//! Why gateways are refused: `GET /wireless-gateways/{Id}/refusals` (the last CUPS
//! refusals of one gateway) and `GET /unknown-routers` (router ids the store does
//! not know that polled lately), read from `cups::refused::RefusalLog`.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gateways::{find, ID};
use super::openapi::AUDIT;
use super::{ApiError, ErrorBody};
use crate::app::App;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(gateway_refusals))
        .routes(routes!(unknown_routers))
}

/// The gateway's last CUPS refusals: when, from where, why.
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}/refusals",
    operation_id = "ListGatewayRefusals",
    tag = AUDIT,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "`{\"WirelessGatewayId\", \"Refusals\": [{\"At\", \"Peer\", \"Reason\", \"Detail\"}]}` (kept in memory, the most recent first).", body = Object),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
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

/// Router ids the server does not know that polled CUPS lately.
#[utoipa::path(
    get,
    path = "/unknown-routers",
    operation_id = "ListUnknownRouters",
    tag = AUDIT,
    responses(
        (status = 200, description = "`{\"UnknownRouters\": [{\"GatewayEui\", \"FirstSeen\", \"LastSeen\", \"LastPeer\", \"Reason\", \"Count\"}]}`.", body = Object),
    ),
)]
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
