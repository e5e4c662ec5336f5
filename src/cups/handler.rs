//! The I/O shell around `decide`: read the body (bounded in size and time), parse
//! it, authenticate the gateway, load what it should have, decide, record the poll
//! in one transaction, and answer with `Content-Length` (never chunked). Only
//! genuine authentication failures get a non-200 answer, because any non-200
//! sends station to its backup credentials (cups-protocol.md §5.2).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Limited};

use super::decide::{decide, Target, Wanted};
use super::request::UpdateInfo;
use crate::app::{now, App, AppState};
use crate::config::UnknownGateways;
use crate::identity::{authenticate, sha256_hex, CredKind, Evidence, Proof, Service};
use crate::provisioning::{self, target_uri};
use crate::server::ConnInfo;
use crate::store::{CredState, Credential, CupsReport, Gateway, NewGateway, PollRecord};

pub fn router(app: App) -> Router {
    Router::new()
        .route("/update-info", post(update_info))
        .with_state(app)
}

/// A refusal: status, and the reason logged and sent as the reason text.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain")],
            self.1 + "\n",
        )
            .into_response()
    }
}

async fn read_body(app: &AppState, body: Body) -> Result<Bytes, Refusal> {
    let limit = app.config.limits.cups_body_bytes;
    let secs = app.config.limits.body_timeout_secs;
    match tokio::time::timeout(
        Duration::from_secs(secs),
        Limited::new(body, limit).collect(),
    )
    .await
    {
        Err(_) => Err(Refusal(
            StatusCode::REQUEST_TIMEOUT,
            format!("request body did not arrive within {secs} s"),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over {limit} bytes; station sends about 300"),
        )),
        Ok(Err(e)) => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("reading body: {e}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The token from station's `Authorization` header line (`Bearer <t>` or bare `<t>`).
fn token_evidence(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let t = v.strip_prefix("Bearer ").unwrap_or(v).trim();
    (!t.is_empty()).then(|| sha256_hex(t.as_bytes()))
}

async fn update_info(State(app): State<App>, req: Request) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    match handle(&app, &conn, &parts.headers, body).await {
        Ok(r) => r,
        Err(Refusal(status, reason)) => {
            tracing::warn!(peer = %conn.remote, status = status.as_u16(), "CUPS request refused: {reason}");
            Refusal(status, reason).into_response()
        }
    }
}

async fn handle(
    app: &AppState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let bytes = read_body(app, body).await?;
    let info =
        UpdateInfo::parse(&bytes).map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.to_string()))?;
    let eui = info.router;
    let evidence = Evidence {
        cert: conn.cert.clone(),
        token_sha256: token_evidence(headers),
    };
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(gateway = %eui, "CUPS poll failed: {e}");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    };

    let (gw, mut creds) = match app.store.gateway_with_credentials(eui).await.map_err(|e| internal(&e))? {
        Some(found) => found,
        None if app.config.gateways.unknown == UnknownGateways::Register => {
            let gw = app
                .store
                .register_gateway(NewGateway {
                    id: crate::app::new_id(),
                    eui,
                    name: format!("auto-{eui}"),
                    description: Some("registered by its first CUPS poll".into()),
                    rf_region: None,
                    sub_bands: None,
                    join_eui_filters: None,
                    net_id_filters: None,
                    created_at: now(),
                })
                .await
                .map_err(|e| internal(&e))?;
            tracing::info!(gateway = %eui, id = %gw.gw.id, peer = %conn.remote, "registered unknown gateway ([gateways] unknown = \"register\")");
            (gw, Vec::new())
        }
        None => {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                format!("unknown router {eui} ({}); register it with `stationkeeper gateways create --eui {eui}` or set [gateways] unknown = \"register\"", eui.to_id6()),
            ))
        }
    };

    let proof = match authenticate(Service::Cups, eui, &evidence, &creds) {
        Ok(p) => Some(p),
        // Open registration is trust on first use: until the gateway has proved it
        // holds a CUPS generation, it may poll without one.
        Err(_)
            if app.config.gateways.unknown == UnknownGateways::Register
                && !creds
                    .iter()
                    .any(|c| c.service == Service::Cups && c.confirmed_at.is_some()) =>
        {
            None
        }
        Err(reason) => {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                format!("gateway {eui} not authenticated: {reason}"),
            ))
        }
    };

    // A gateway must be able to reach the LNS: give it an LNS token if it has no LNS
    // credentials yet, and (open registration only) a CUPS token to prove itself next time.
    let mut missing = vec![];
    if current(&creds, Service::Lns).is_none() {
        missing.push(Service::Lns);
    }
    if proof.is_none() && current(&creds, Service::Cups).is_none() {
        missing.push(Service::Cups);
    }
    for service in &missing {
        provisioning::issue(app, &gw, *service, CredKind::Token)
            .await
            .map_err(|e| internal(&e))?;
    }
    if !missing.is_empty() {
        creds = app
            .store
            .credentials(gw.gw.id.clone())
            .await
            .map_err(|e| internal(&e))?;
    }

    let wanted = wanted(app, &gw, &creds);
    let decision = decide(&info, &wanted);
    decision.head.validate().map_err(|e| internal(&e))?;
    let backup = match &proof {
        Some(Proof::Generation { generation, .. }) => Some((Service::Cups, *generation)),
        _ => None,
    };
    let auth = proof
        .as_ref()
        .map_or_else(|| "none (open registration)".to_string(), Proof::describe);
    app.store
        .record_poll(PollRecord {
            gateway_id: gw.gw.id.clone(),
            report: CupsReport {
                at: now(),
                peer: conn.remote.to_string(),
                station: info.station.clone(),
                model: info.model.clone(),
                package: info.package.clone(),
                keys: info.keys.clone(),
                cups_uri: info.cups_uri.clone(),
                tc_uri: info.tc_uri.clone(),
                cups_cred_crc: info.cups_cred_crc,
                tc_cred_crc: info.tc_cred_crc,
                auth: auth.clone(),
            },
            confirmed: decision.confirmed.clone(),
            backup,
        })
        .await
        .map_err(|e| internal(&e))?;

    let h = &decision.head;
    tracing::info!(
        gateway = %eui,
        peer = %conn.remote,
        auth = %auth,
        cups_uri = h.cups_uri.is_some(),
        tc_uri = h.tc_uri.is_some(),
        cups_cred = h.cups_cred.is_some(),
        tc_cred = h.tc_cred.is_some(),
        "CUPS poll answered"
    );
    let body = h.encode();
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, body.len().to_string()),
        ],
        body,
    )
        .into_response())
}

fn current(creds: &[Credential], service: Service) -> Option<&Credential> {
    creds
        .iter()
        .find(|c| c.service == service && c.state == CredState::Current)
}

fn wanted(app: &AppState, gw: &Gateway, creds: &[Credential]) -> Wanted {
    let target = |service| {
        current(creds, service).map(|c| Target {
            generation: c.generation,
            blob: c.blob.clone(),
            crc: c.blob_crc,
        })
    };
    Wanted {
        cups_uri: target_uri(app, gw, Service::Cups),
        tc_uri: target_uri(app, gw, Service::Lns),
        cups_cred: target(Service::Cups),
        tc_cred: target(Service::Lns),
    }
}
