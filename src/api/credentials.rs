//! What CUPS hands a gateway about itself: `/wireless-gateways/{Id}/cups-config`
//! (URI overrides), `/wireless-gateways/{Id}/credentials` (issue a new generation,
//! list generations and whether the gateway confirmed them) and
//! `/service-endpoint` (where gateways connect, and the CA they must trust).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gateways::{find, ID};
use super::openapi::CREDENTIALS;
use super::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::app::App;
use crate::config::check_station_uri;
use crate::identity::{CredKind, Service};
use crate::store::CredState;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(cups_config))
        .routes(routes!(list, issue))
        .routes(routes!(retire))
        .routes(routes!(service_endpoint))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = PutCupsConfigRequest)]
struct CupsConfigBody {
    /// The `cups.uri` this gateway is told (https or http); empty removes the
    /// override, absent leaves it.
    cups_uri: Option<String>,
    /// The `tc.uri` this gateway is told (wss or ws); empty removes the
    /// override, absent leaves it.
    tc_uri: Option<String>,
}

/// Set the URIs CUPS hands this gateway.
///
/// Overrides of the server's own CUPS URI and `[lns] public_uri`, sent at the
/// gateway's next poll.
#[utoipa::path(
    put,
    path = "/wireless-gateways/{id}/cups-config",
    operation_id = "PutGatewayCupsConfig",
    tag = CREDENTIALS,
    params(("id" = String, Path, description = ID)),
    request_body = CupsConfigBody,
    responses(
        (status = 204, description = "Stored."),
        (status = 400, description = "A URI station would not take (the message says why).", body = ErrorBody),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = IssueCredentialsRequest)]
struct IssueBody {
    service: Service,
    kind: CredKind,
}

/// Issue a new credential generation.
///
/// A client certificate from the server's CA or a new token; the old generation
/// stays valid until the gateway has fetched the new one over CUPS. The answer
/// holds the gateway-side files, keyed by their Basics Station names.
#[utoipa::path(
    post,
    path = "/wireless-gateways/{id}/credentials",
    operation_id = "IssueGatewayCredentials",
    tag = CREDENTIALS,
    params(("id" = String, Path, description = ID)),
    request_body = IssueBody,
    responses(
        (status = 201, description = "The new generation and its files.", body = crate::provisioning::Provisioned),
        (status = 400, description = "A bad body, or a client certificate asked of a server whose client CA is foreign.", body = ErrorBody),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn issue(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<IssueBody>,
) -> Result<impl IntoResponse, ApiError> {
    let g = find(&app, &id, None).await?;
    let p = crate::provisioning::issue(&app, &g, b.service, b.kind).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The gateway's credential generations.
///
/// Which generation each service is on, whether the gateway confirmed it (its
/// reported CRC matches), and every generation with its state.
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}/credentials",
    operation_id = "ListGatewayCredentials",
    tag = CREDENTIALS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "`WirelessGatewayId`, `CUPS` and `LNS` (`Generation`, `Kind`, `Confirmed`, `Crc`, `ReportedCrc`, …), `Generations`.", body = Object),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RetireQuery {
    /// CUPS (the default: retiring the backup generation is the use) or LNS.
    #[serde(default = "cups")]
    #[param(value_type = Option<Service>)]
    service: Service,
}

fn cups() -> Service {
    Service::Cups
}

/// Delete a credential generation that is not current.
///
/// Typically the backup (first) CUPS generation, which would otherwise be
/// accepted for ever. Station's `cups-bak.*` may still hold it: read the
/// operator guide before using this.
#[utoipa::path(
    delete,
    path = "/wireless-gateways/{id}/credentials/{generation}",
    operation_id = "DeleteGatewayCredentials",
    tag = CREDENTIALS,
    params(
        ("id" = String, Path, description = ID),
        ("generation" = u32, Path, description = "The generation number, as `credentials` lists it."),
        RetireQuery,
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "Not a generation number.", body = ErrorBody),
        (status = 404, description = "No such gateway or generation.", body = ErrorBody),
        (status = 409, description = "The current generation, or the current one is not confirmed yet.", body = ErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EndpointQuery {
    /// `CUPS` (the default, as in AWS's model) or `LNS`.
    service_type: Option<String>,
}

/// Where gateways connect, and the CA they must trust.
#[utoipa::path(
    get,
    path = "/service-endpoint",
    operation_id = "GetServiceEndpoint",
    tag = CREDENTIALS,
    params(EndpointQuery),
    responses(
        (status = 200, description = "`ServiceType`, `ServiceEndpoint`, `ServerTrust` (PEM).", body = Object),
        (status = 400, description = "`serviceType` is neither CUPS nor LNS.", body = ErrorBody),
        (status = 404, description = "LNS asked, but `[lns] public_uri` is not set.", body = ErrorBody),
    ),
)]
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
