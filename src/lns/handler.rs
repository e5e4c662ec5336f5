//! The two WebSocket endpoints station opens (lns-protocol.md §1, §2, §7):
//! `/router-info` (discovery: which traffic URI to use) and `/traffic/{eui}`.
//! Both authenticate with the gateway's LNS credentials (the `tc.*` files CUPS
//! delivered): a client certificate or a token in the upgrade request. Discovery
//! answers a refusal with an `error` object, which sends station back to CUPS for
//! fresh credentials; the traffic endpoint refuses before upgrading. Refusals
//! tell the client one uniform text, and go to the log through the refusal
//! budget (`logguard`), never more than a clipped, escaped bit of client input.

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
use crate::logguard::{clip, escaped, Reason};
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

/// What a refused gateway is told: the same whether its id is unknown or its
/// credentials are wrong, so the answer does not reveal which ids exist; the
/// log line has the detail.
const REFUSED: &str =
    "forbidden: unknown router, or LNS credentials that do not prove it; the server log says which";

/// The gateway, if `ev` proves it is `eui`; else why not (for the log).
async fn admit(app: &AppState, eui: Eui, ev: &Evidence) -> Result<Gateway, (Reason, String)> {
    // Nothing can prove an id without a certificate or a token: no lookup.
    if ev.cert.is_none() && ev.token_sha256.is_none() {
        return Err((
            Reason::NoCredentials,
            format!("router {eui} presented no client certificate and no token"),
        ));
    }
    let gw = app.store.gateway_by_eui(eui).await.map_err(|_| {
        (
            Reason::UnknownGateway,
            format!("router {eui} is not provisioned"),
        )
    })?;
    let creds = app
        .store
        .credentials(gw.gw.id.clone())
        .await
        .map_err(|e| (Reason::NotAuthenticated, format!("store: {e}")))?;
    authenticate(Service::Lns, eui, ev, &creds, app.tls.issuer.is_none())
        .map_err(|r| (Reason::NotAuthenticated, r))?;
    Ok(gw)
}

/// Counts a refusal and logs it while its source has log budget.
fn log_refusal(app: &AppState, conn: &ConnInfo, reason: Reason, what: &str, detail: &str) {
    if let Some(suppressed) = app.refusals.note(reason, conn.remote.ip()) {
        tracing::warn!(peer = %conn.remote, "{what}: {detail}{suppressed}");
    }
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
            log_refusal(&app, &conn, Reason::BadRequest, "LNS discovery failed", &e);
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
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("discovery request is not JSON: {}", escaped(&e.to_string())))?;
    let router = v.get("router").cloned().unwrap_or_default();
    let answer = match Eui::from_json(&router) {
        Err(e) => {
            log_refusal(
                app,
                conn,
                Reason::BadRequest,
                "LNS discovery refused",
                &e.to_string(),
            );
            // Echo only as much of a bad id as the error quotes.
            json!({"router": clip(&router.to_string()), "error": format!("bad router id: {e}")})
        }
        Ok(eui) => match admit(app, eui, &evidence(conn, headers)).await {
            // Station answers a discovery error by running CUPS (the nudge).
            Ok(_) if app.lns.nudges.active(eui) => {
                tracing::info!(gateway = %eui, peer = %conn.remote, "LNS discovery answered with an error: nudged to run CUPS");
                json!({"router": router, "error": super::nudge::DISCOVERY_ERROR})
            }
            Ok(gw) => {
                let uri = traffic_uri(app, &gw, headers);
                tracing::info!(gateway = %eui, peer = %conn.remote, uri = %uri, "LNS discovery");
                json!({"router": router, "muxs": "muxs-::0", "uri": uri})
            }
            Err((reason, detail)) => {
                log_refusal(app, conn, reason, "LNS discovery refused", &detail);
                json!({"router": router, "error": REFUSED})
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
        Err(e) => {
            let e = e.to_string();
            log_refusal(
                &app,
                &conn,
                Reason::BadRequest,
                "LNS connection refused",
                &e,
            );
            return (StatusCode::BAD_REQUEST, e).into_response();
        }
    };
    let gw = match admit(&app, eui, &evidence(&conn, req.headers())).await {
        Ok(gw) => gw,
        Err((reason, detail)) => {
            log_refusal(&app, &conn, reason, "LNS connection refused", &detail);
            return (StatusCode::FORBIDDEN, REFUSED).into_response();
        }
    };
    // A nudged station's direct reconnects fail, so it goes through discovery.
    if app.lns.nudges.active(eui) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            super::nudge::DISCOVERY_ERROR,
        )
            .into_response();
    }
    let peer = conn.remote.ip();
    configure(ws).on_upgrade(move |socket| super::session::run(app, gw, peer, socket))
}
