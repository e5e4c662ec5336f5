//! The two WebSocket endpoints station opens (lns-protocol.md §1, §2, §7):
//! `/router-info` (discovery: which traffic URI to use) and `/traffic/{eui}`.
//! Both authenticate with the gateway's LNS credentials (the `tc.*` files CUPS
//! delivered): a client certificate or a token in the upgrade request. Discovery
//! answers a refusal with an `error` object, which sends station back to CUPS for
//! fresh credentials; the traffic endpoint refuses before upgrading.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::app::{App, AppState};
use crate::eui::Eui;
use crate::identity::{authenticate, token_evidence, Evidence, Service};
use crate::server::ConnInfo;
use crate::store::Gateway;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/router-info", get(discovery))
        .route("/traffic/{eui}", get(traffic))
        .with_state(app)
}

/// Station's messages are a few hundred bytes (an uplink with a 255-byte payload
/// is under 1 KiB), so anything over 16 KiB is refused and closes the session; a
/// small read buffer keeps thousands of idle gateways cheap.
fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(16 * 1024)
        .max_frame_size(16 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

fn evidence(conn: &ConnInfo, headers: &HeaderMap) -> Evidence {
    Evidence {
        cert: conn.cert.clone(),
        token_sha256: token_evidence(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ),
    }
}

/// The gateway, if `ev` proves it is `eui`; else the reason.
async fn admit(app: &AppState, eui: Eui, ev: &Evidence) -> Result<Gateway, String> {
    let gw = app
        .store
        .gateway_by_eui(eui)
        .await
        .map_err(|_| format!("router {eui} is not provisioned"))?;
    let creds = app
        .store
        .credentials(gw.gw.id.clone())
        .await
        .map_err(|e| format!("store: {e}"))?;
    authenticate(Service::Lns, eui, ev, &creds, app.tls.issuer.is_none())?;
    Ok(gw)
}

/// The traffic URI for a gateway: the LNS address it was told, plus its path.
fn traffic_uri(app: &AppState, gw: &Gateway, headers: &HeaderMap) -> String {
    let base = crate::provisioning::target_uri(app, gw, Service::Lns).unwrap_or_else(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("wss://{host}")
    });
    format!("{base}/traffic/{}", gw.gw.eui)
}

async fn discovery(State(app): State<App>, ws: WebSocketUpgrade, req: Request) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or_default();
    let headers = req.headers().clone();
    configure(ws).on_upgrade(move |socket| async move {
        if let Err(e) = discover(&app, &conn, &headers, socket).await {
            tracing::info!(peer = %conn.remote, "LNS discovery failed: {e}");
        }
    })
}

async fn discover(
    app: &App,
    conn: &ConnInfo,
    headers: &HeaderMap,
    mut socket: WebSocket,
) -> Result<(), String> {
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv())
        .await
        .map_err(|_| "no discovery request within 10 s".to_string())?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err("no discovery request".into());
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("discovery request is not JSON: {e}"))?;
    let router = v.get("router").cloned().unwrap_or_default();
    let answer = match Eui::from_json(&router) {
        Err(e) => json!({"router": router, "error": format!("bad router id: {e}")}),
        Ok(eui) => match admit(app, eui, &evidence(conn, headers)).await {
            Ok(gw) => {
                let uri = traffic_uri(app, &gw, headers);
                tracing::info!(gateway = %eui, peer = %conn.remote, uri = %uri, "LNS discovery");
                json!({"router": router, "muxs": "muxs-::0", "uri": uri})
            }
            Err(reason) => {
                tracing::warn!(gateway = %eui, peer = %conn.remote, "LNS discovery refused: {reason}");
                json!({"router": router, "error": reason})
            }
        },
    };
    socket
        .send(Message::Text(answer.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}

async fn traffic(
    State(app): State<App>,
    Path(eui): Path<String>,
    ws: WebSocketUpgrade,
    req: Request,
) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or_default();
    let eui: Eui = match eui.parse() {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let gw = match admit(&app, eui, &evidence(&conn, req.headers())).await {
        Ok(gw) => gw,
        Err(reason) => {
            tracing::warn!(gateway = %eui, peer = %conn.remote, "LNS connection refused: {reason}");
            return (StatusCode::FORBIDDEN, reason).into_response();
        }
    };
    configure(ws).on_upgrade(move |socket| super::session::run(app, gw, socket))
}
