//! What CUPS hands a gateway about itself: `/wireless-gateways/{Id}/cups-config`
//! (URI overrides), `/wireless-gateways/{Id}/credentials` (issue a new generation,
//! list generations and whether the gateway confirmed them) and
//! `/service-endpoint` (where gateways connect, and the CA they must trust).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::gateways::find;
use super::{ApiError, ApiJson, ApiQuery};
use crate::app::App;
use crate::config::check_station_uri;
use crate::identity::{CredKind, Service};
use crate::store::CredState;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/wireless-gateways/{id}/cups-config", put(cups_config))
        .route("/wireless-gateways/{id}/credentials", get(list).post(issue))
        .route(
            "/wireless-gateways/{id}/credentials/{generation}",
            delete(retire),
        )
        .route("/service-endpoint", get(service_endpoint))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CupsConfigBody {
    cups_uri: Option<String>,
    tc_uri: Option<String>,
}

async fn cups_config(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CupsConfigBody>,
) -> Result<StatusCode, ApiError> {
    // An empty string removes the override.
    if let Some(u) = b.cups_uri.as_ref().filter(|u| !u.is_empty()) {
        check_station_uri(u, &["https", "http"])
            .map_err(|m| ApiError::validation(format!("CupsUri: {m}")))?;
    }
    if let Some(u) = b.tc_uri.as_ref().filter(|u| !u.is_empty()) {
        check_station_uri(u, &["wss", "ws"])
            .map_err(|m| ApiError::validation(format!("TcUri: {m}")))?;
    }
    let g = find(&app, &id, None).await?;
    app.store
        .set_cups_config(g.gw.id, b.cups_uri, b.tc_uri)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct IssueBody {
    service: Service,
    kind: CredKind,
}

async fn issue(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<IssueBody>,
) -> Result<impl IntoResponse, ApiError> {
    let g = find(&app, &id, None).await?;
    let p = crate::provisioning::issue(&app, &g, b.service, b.kind).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

async fn list(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let g = find(&app, &id, None).await?;
    let creds = app.store.credentials(g.gw.id.clone()).await?;
    let last = g.last_report.as_ref();
    let mut out = json!({"WirelessGatewayId": g.gw.id});
    for service in [Service::Cups, Service::Lns] {
        let reported = last.map(|r| match service {
            Service::Cups => r.cups_cred_crc,
            Service::Lns => r.tc_cred_crc,
        });
        let current = creds
            .iter()
            .find(|c| c.service == service && c.state == CredState::Current);
        out[service.as_str()] = match current {
            Some(c) => json!({
                "Generation": c.generation,
                "Kind": c.kind,
                "Confirmed": c.confirmed_at.is_some(),
                "ConfirmedAt": c.confirmed_at,
                "CreatedAt": c.created_at,
                "Crc": c.blob_crc,
                "ReportedCrc": reported,
            }),
            None => json!({"Generation": null, "ReportedCrc": reported}),
        };
    }
    out["Generations"] = creds
        .iter()
        .map(|c| {
            json!({
                "Service": c.service,
                "Generation": c.generation,
                "Kind": c.kind,
                "State": match c.state {
                    CredState::Current => "Current",
                    CredState::Previous => "Previous",
                    CredState::Retired => "Retired",
                },
                "AcceptedAsBackup": c.backup,
                "CreatedAt": c.created_at,
                "ConfirmedAt": c.confirmed_at,
            })
        })
        .collect();
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetireQuery {
    /// CUPS (the default: retiring the backup generation is the use) or LNS.
    #[serde(default = "cups")]
    service: Service,
}

fn cups() -> Service {
    Service::Cups
}

/// Deletes a generation that is not current, typically the backup (first) CUPS
/// generation that `authenticate` would otherwise accept for ever. Station's
/// `cups-bak.*` may still hold it: see the README before using this.
async fn retire(
    State(app): State<App>,
    Path((id, generation)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<RetireQuery>,
) -> Result<StatusCode, ApiError> {
    let generation: u32 = generation.parse().map_err(|_| {
        ApiError::validation(format!(
            "Generation {} must be a generation number as `credentials` lists it",
            crate::logguard::clip(&generation)
        ))
    })?;
    let g = find(&app, &id, None).await?;
    app.store
        .delete_credential(g.gw.id.clone(), q.service, generation)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::not_found(format!(
                "{} generation {generation} of gateway {}",
                q.service.as_str(),
                g.gw.id
            )),
            e => e.into(),
        })?;
    tracing::info!(gateway = %g.gw.eui, service = q.service.as_str(), generation, "credential generation deleted by the operator");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndpointQuery {
    /// Optional in AWS's model; CUPS when absent.
    service_type: Option<String>,
}

async fn service_endpoint(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<EndpointQuery>,
) -> Result<Json<Value>, ApiError> {
    let service_type = q.service_type.unwrap_or_else(|| "CUPS".into());
    let endpoint = match service_type.as_str() {
        "CUPS" => &app.cups_uri,
        "LNS" => app.tc_uri.as_ref().ok_or_else(|| {
            ApiError::not_found("LNS endpoint: none is configured; set [lns] public_uri")
        })?,
        other => {
            return Err(ApiError::validation(format!(
                "serviceType {other:?} must be CUPS or LNS"
            )))
        }
    };
    Ok(Json(json!({
        "ServiceType": service_type,
        "ServiceEndpoint": endpoint,
        "ServerTrust": app.tls.trust_pem,
    })))
}
