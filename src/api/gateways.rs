//! `/wireless-gateways`: create, get, list, patch, delete, and the read-only views
//! of what the gateway reported (firmware-information, gateway-statistics).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::GATEWAYS;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody, Page};
use crate::app::{now, App};
use crate::eui::Eui;
use crate::store::{tags, Gateway, GatewayPatch, NewGateway, Origin, StoreError, Tag};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, patch, delete))
        .routes(routes!(firmware))
        .routes(routes!(statistics))
        .routes(routes!(statistics_at_spec_path))
}

/// A `{id}` of the `/wireless-gateways/…` paths.
pub(super) const ID: &str = "The gateway's Id, or its EUI in any form.";

pub const RF_REGIONS: &[&str] = &[
    "EU868", "US915", "AU915", "AS923-1", "AS923-2", "AS923-3", "AS923-4", "KR920", "IN865",
    "CN470", "EU433",
];

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateWirelessGatewayRequest)]
struct CreateBody {
    /// Default: the EUI.
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "LoRaWAN")]
    lorawan: LoRaWanIn,
    /// At most 50; campaign targets and the list's `tagKey` select by them.
    #[serde(default)]
    tags: Vec<Tag>,
    /// Makes the create idempotent: the same token and body answer the first
    /// answer again.
    #[serde(default, rename = "ClientRequestToken")]
    #[schema(value_type = Option<String>)]
    _client_request_token: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = GatewayLoRaWAN)]
struct LoRaWanIn {
    /// Any EUI form (16 hex digits, dashed or colon bytes, ID6).
    #[schema(value_type = String, example = "b827ebfffe6151a8")]
    gateway_eui: Eui,
    /// EU868, US915, AU915, AS923-1…4, KR920, IN865, CN470 or EU433.
    #[schema(example = "EU868")]
    rf_region: String,
    /// US915 and AU915 only: the 8-channel sub-bands, 1 to 8 (default `[2]`).
    sub_bands: Option<Vec<u8>>,
    /// `[start, end]` ranges of JoinEUIs the gateway forwards.
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    join_eui_filters: Option<Vec<[Eui; 2]>>,
    /// NetIDs (6 hex digits) whose traffic the gateway forwards.
    net_id_filters: Option<Vec<String>>,
}

fn validate(l: &LoRaWanIn) -> Result<(), ApiError> {
    if !RF_REGIONS.contains(&l.rf_region.as_str()) {
        return Err(ApiError::validation(format!(
            "LoRaWAN.RfRegion {:?} is not one of {RF_REGIONS:?}",
            l.rf_region
        )));
    }
    if let Some(sb) = &l.sub_bands {
        if !matches!(l.rf_region.as_str(), "US915" | "AU915") {
            return Err(ApiError::validation(
                "LoRaWAN.SubBands only applies to US915 and AU915",
            ));
        }
        if sb.is_empty() || sb.iter().any(|b| !(1..=8).contains(b)) {
            return Err(ApiError::validation(
                "LoRaWAN.SubBands must list sub-bands 1 to 8",
            ));
        }
    }
    for f in l.join_eui_filters.iter().flatten() {
        if f[0] > f[1] {
            return Err(ApiError::validation(format!(
                "LoRaWAN.JoinEuiFilters range [{}, {}] has start after end",
                f[0], f[1]
            )));
        }
    }
    for n in l.net_id_filters.iter().flatten() {
        if n.len() != 6 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::validation(format!(
                "LoRaWAN.NetIdFilters entry {n:?} is not a NetID of 6 hex digits"
            )));
        }
    }
    Ok(())
}

fn lorawan_json(g: &Gateway) -> Value {
    let mut l = json!({"GatewayEui": g.gw.eui, "RfRegion": g.gw.rf_region});
    if let Some(sb) = &g.gw.sub_bands {
        l["SubBands"] = json!(sb);
    }
    if let Some(f) = &g.gw.join_eui_filters {
        l["JoinEuiFilters"] = json!(f);
    }
    if let Some(f) = &g.gw.net_id_filters {
        l["NetIdFilters"] = json!(f);
    }
    l
}

fn gateway_json(g: &Gateway) -> Value {
    json!({
        "Id": g.gw.id,
        "Arn": super::devices::arn(tags::GATEWAY, &g.gw.id),
        "Name": g.gw.name,
        "Description": g.gw.description,
        "LoRaWAN": lorawan_json(g),
        "LastUplinkReceivedAt": g.last_report.as_ref().map(|r| r.at.clone()),
    })
}

/// Register a gateway.
#[utoipa::path(
    post,
    path = "/wireless-gateways",
    operation_id = "CreateWirelessGateway",
    tag = GATEWAYS,
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created: `{\"Id\", \"Arn\"}`.", body = Object),
        (status = 400, description = "A field is missing or invalid (the message names it).", body = ErrorBody),
        (status = 409, description = "A gateway with that EUI exists.", body = ErrorBody),
        (status = 413, description = "The body is over `[limits] api_body_bytes`.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    validate(&b.lorawan)?;
    tags::validate(&b.tags).map_err(ApiError::validation)?;
    let id = crate::app::new_id();
    let eui = b.lorawan.gateway_eui;
    app.store
        .create_gateway(
            NewGateway {
                id: id.clone(),
                eui,
                name: b.name.unwrap_or_else(|| eui.to_string()),
                description: b.description,
                rf_region: Some(b.lorawan.rf_region),
                sub_bands: b.lorawan.sub_bands,
                join_eui_filters: b.lorawan.join_eui_filters,
                net_id_filters: b.lorawan.net_id_filters,
                origin: Origin::Operator,
                created_at: now(),
            },
            b.tags,
        )
        .await?;
    tracing::info!(gateway = %eui, id = %id, "gateway created");
    let arn = super::devices::arn(tags::GATEWAY, &id);
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Arn": arn}))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct IdentifierQuery {
    /// `WirelessGatewayId` or `GatewayEui`; without it an Id is tried, then an EUI.
    identifier_type: Option<String>,
}

/// Resolves a path identifier: a gateway Id, or (with `identifierType=GatewayEui`,
/// or when it parses as an EUI and is no Id) its EUI.
pub(super) async fn find(app: &App, ident: &str, kind: Option<&str>) -> Result<Gateway, ApiError> {
    let by_eui = |e: &str| -> Result<Eui, ApiError> {
        Eui::parse_api(e).map_err(|err: crate::eui::EuiError| ApiError::validation(err.to_string()))
    };
    let result = match kind {
        Some("GatewayEui") => app.store.gateway_by_eui(by_eui(ident)?).await,
        Some("WirelessGatewayId") | None => match app.store.gateway(ident.to_string()).await {
            Err(StoreError::NotFound) if kind.is_none() && Eui::parse_api(ident).is_ok() => {
                app.store.gateway_by_eui(by_eui(ident)?).await
            }
            other => other,
        },
        Some(other) => {
            return Err(ApiError::validation(format!(
                "identifierType {other:?} must be GatewayEui or WirelessGatewayId"
            )))
        }
    };
    result.map_err(missing(format!("wireless gateway {ident}")))
}

/// Read a gateway by Id or EUI.
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}",
    operation_id = "GetWirelessGateway",
    tag = GATEWAYS,
    params(("id" = String, Path, description = ID), IdentifierQuery),
    responses(
        (status = 200, description = "`Id`, `Arn`, `Name`, `Description`, `LoRaWAN`, `LastUplinkReceivedAt`, `Tags`.", body = Object),
        (status = 400, description = "A bad `identifierType` or EUI.", body = ErrorBody),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn get_one(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<IdentifierQuery>,
) -> Result<Json<Value>, ApiError> {
    let g = find(&app, &id, q.identifier_type.as_deref()).await?;
    let mut out = gateway_json(&g);
    out["Tags"] = json!(app.store.tags(tags::GATEWAY, g.gw.id.clone()).await?);
    Ok(Json(out))
}

/// `?maxResults&nextToken`, and our tag filter `tagKey` (with `tagValue`, an exact value).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Entries per page, 1 to 250 (0 or none: 100).
    max_results: Option<usize>,
    /// The `NextToken` of the previous page.
    next_token: Option<String>,
    /// Only gateways carrying a tag with this key (ours).
    tag_key: Option<String>,
    /// With `tagKey`: only this exact value.
    tag_value: Option<String>,
}

/// List gateways.
#[utoipa::path(
    get,
    path = "/wireless-gateways",
    operation_id = "ListWirelessGateways",
    tag = GATEWAYS,
    params(ListQuery),
    responses(
        (status = 200, description = "`{\"WirelessGatewayList\": [...], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter or `nextToken`.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tag = match (q.tag_key, q.tag_value) {
        (Some(k), v) => Some((k, v)),
        (None, Some(_)) => return Err(ApiError::validation("tagValue needs tagKey")),
        (None, None) => None,
    };
    let page = Page {
        max_results: q.max_results,
        next_token: q.next_token,
    };
    page.answer(
        "WirelessGatewayList",
        |after, n| app.store.list_gateways(after, n, tag),
        |g| g.gw.id.clone(),
        gateway_json,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = UpdateWirelessGatewayRequest)]
struct PatchBody {
    name: Option<String>,
    description: Option<String>,
    /// Ours (AWS updates tags with TagResource): replaces every tag of the gateway.
    tags: Option<Vec<Tag>>,
}

/// Rename a gateway, change its description or replace its tags.
#[utoipa::path(
    patch,
    path = "/wireless-gateways/{id}",
    operation_id = "UpdateWirelessGateway",
    tag = GATEWAYS,
    params(("id" = String, Path, description = ID)),
    request_body = PatchBody,
    responses(
        (status = 204, description = "Changed."),
        (status = 400, description = "A field is invalid.", body = ErrorBody),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn patch(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PatchBody>,
) -> Result<StatusCode, ApiError> {
    let g = find(&app, &id, None).await?;
    if let Some(t) = b.tags {
        tags::validate(&t).map_err(ApiError::validation)?;
        app.store
            .replace_tags(tags::GATEWAY, g.gw.id.clone(), t)
            .await?;
    }
    app.store
        .patch_gateway(
            g.gw.id,
            GatewayPatch {
                name: b.name,
                description: b.description,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a gateway, its credentials and its tasks.
#[utoipa::path(
    delete,
    path = "/wireless-gateways/{id}",
    operation_id = "DeleteWirelessGateway",
    tag = GATEWAYS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn delete(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let g = find(&app, &id, None).await?;
    if let Some(t) = app.store.latest_task(g.gw.id.clone()).await? {
        if t.status.is_open() {
            app.metrics.task_transition(t.status.as_str(), "(deleted)");
            tracing::info!(gateway = %g.gw.eui, definition = %t.definition_id, from = t.status.as_str(), to = "(deleted with its gateway)", "task transition");
        }
    }
    app.store.delete_gateway(g.gw.id.clone()).await?;
    tracing::info!(gateway = %g.gw.eui, id = %g.gw.id, "gateway deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The firmware the gateway reported.
///
/// From its last CUPS poll (`LoRaWAN.CurrentVersion`, the signing keys it
/// holds), and what it told the LNS (`LnsVersion`, `VersionMismatch`).
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}/firmware-information",
    operation_id = "GetWirelessGatewayFirmwareInformation",
    tag = GATEWAYS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "`WirelessGatewayId`, `LoRaWAN` (empty before the first poll), `LnsVersion`?, `VersionMismatch`?.", body = Object),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn firmware(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let g = find(&app, &id, None).await?;
    let lorawan = match &g.last_report {
        Some(r) => json!({"CurrentVersion": {
            "PackageVersion": r.package, "Model": r.model, "Station": r.station
        }, "SigningKeyCrcs": r.keys}),
        None => json!({}),
    };
    let mut out = json!({"WirelessGatewayId": g.gw.id, "LoRaWAN": lorawan});
    // What the gateway told the LNS face; station's `version` message has the
    // station string without the build date, so it is compared as a prefix.
    if let Some(l) = app.store.lns_state(g.gw.id.clone()).await? {
        if l.station.is_some() {
            out["LnsVersion"] = json!({"Station": l.station, "Firmware": l.firmware, "PackageVersion": l.package,
                "Model": l.model, "Protocol": l.protocol, "Features": l.features});
            if let Some(r) = &g.last_report {
                let mut differ = vec![];
                if l.package != r.package {
                    differ.push("PackageVersion");
                }
                if l.model.as_deref() != Some(r.model.as_str()) {
                    differ.push("Model");
                }
                if !l
                    .station
                    .as_deref()
                    .is_some_and(|s| r.station.starts_with(s))
                {
                    differ.push("Station");
                }
                out["VersionMismatch"] = json!(differ);
            }
        }
    }
    Ok(Json(out))
}

/// The gateway's connection and traffic.
///
/// LNS connection status, uplinks, signal, downlinks, and its last CUPS contact.
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}/statistics",
    operation_id = "GetWirelessGatewayStatistics",
    tag = GATEWAYS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "`WirelessGatewayId`, `ConnectionStatus`, `LastUplinkReceivedAt`, `LastCupsContact`, `Uplinks`, `LastRssi`, `LastSnr`, …", body = Object),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn statistics(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let g = find(&app, &id, None).await?;
    let last = g.last_report.as_ref();
    let live = app.lns.connection(g.gw.eui);
    let stored = app
        .store
        .lns_state(g.gw.id.clone())
        .await?
        .unwrap_or_default();
    let mut out = json!({
        "WirelessGatewayId": g.gw.id,
        "ConnectionStatus": if live.is_some() { "Connected" } else { "Disconnected" },
        "LastCupsContact": last.map(|r| json!({"At": r.at, "Peer": r.peer, "Auth": r.auth})),
    });
    match live {
        Some(c) => {
            out["ConnectedSince"] = json!(c.connected_since);
            out["LastUplinkReceivedAt"] = json!(c.stats.last_uplink_at.or(stored.last_uplink_at));
            out["Uplinks"] = json!(c.stats.uplinks);
            out["LastRssi"] = json!(c.stats.last_rssi);
            out["LastSnr"] = json!(c.stats.last_snr);
            out["DroppedMessages"] = json!(c.stats.dropped);
            out["DownlinksSent"] = json!(c.stats.downlinks_sent);
            out["DownlinksConfirmed"] = json!(c.stats.downlinks_confirmed);
            out["RegionWarning"] = json!(c.stats.region_warning);
        }
        None => {
            out["LastUplinkReceivedAt"] = json!(stored.last_uplink_at);
            out["Uplinks"] = json!(stored.uplinks);
            out["LastRssi"] = json!(stored.last_rssi);
            out["LastSnr"] = json!(stored.last_snr);
            out["RegionWarning"] = json!(stored.region_warning);
            out["DisconnectedAt"] = json!(stored.disconnected_at);
        }
    }
    Ok(Json(out))
}

/// The same as GetWirelessGatewayStatistics, at the path of the first API.
///
/// AWS's path is `/statistics`; this one is kept for the clients written before.
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}/gateway-statistics",
    operation_id = "GetGatewayStatistics",
    tag = GATEWAYS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "As GetWirelessGatewayStatistics.", body = Object),
        (status = 404, description = "No such gateway.", body = ErrorBody),
    ),
)]
async fn statistics_at_spec_path(
    app: State<App>,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    statistics(app, id).await
}
