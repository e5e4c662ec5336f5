//! `/multicast-groups`: AWS's CreateMulticastGroup (`Name`, `LoRaWAN.RfRegion`,
//! `LoRaWAN.DlClass`, `ParticipatingGateways.GatewayList` as the carriers) plus
//! the address and keys AWS keeps to itself (`McAddr`, generated under the NetID
//! when absent, and `McKey` or explicit session keys, generated when absent and
//! shown once in the create answer, which botocore drops: see docs/src/aws.md), StartMulticastGroupSession as
//! `PUT /multicast-groups/{Id}/session`, and the gateways that carry the group.
//! Keys are never shown again after creation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gateways::{find, RF_REGIONS};
use super::openapi::MULTICAST;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody, Page};
use crate::app::{format_unix_us, new_id, now, parse_time, App};
use crate::fuota::group::{self, DlClass, SessionRequest};
use crate::fuota::runner::group_session;
use crate::lns::regions;
use crate::lorawan::gps::unix_now_us;
use crate::store::{tags, GroupRow, GroupSession};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, remove))
        .routes(routes!(set_session))
        .routes(routes!(set_gateways, gateways))
}

pub(super) const GROUP_ID: &str = "The multicast group's Id.";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateMulticastGroupRequest)]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "LoRaWAN")]
    lorawan: LoRaWanIn,
    /// Makes the create idempotent: the same token and body answer the first
    /// answer again.
    #[serde(default, rename = "ClientRequestToken")]
    #[schema(value_type = Option<String>)]
    _client_request_token: Option<IgnoredAny>,
    /// Kept in the tags table (ListTagsForResource on the Arn).
    #[serde(default)]
    tags: Vec<tags::Tag>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = MulticastGroupLoRaWAN)]
struct LoRaWanIn {
    /// EU868, US915, AU915, AS923-1…4, KR920, IN865 or EU433.
    rf_region: String,
    /// `ClassB` or `ClassC`.
    dl_class: String,
    /// Ours; AWS generates it (and botocore cannot send it): 8 hex digits,
    /// generated under the network's NetID when absent.
    mc_addr: Option<String>,
    /// 32 hex digits; generated when absent (and then shown once, in the answer).
    mc_key: Option<String>,
    /// Instead of `McKey`: the session keys themselves, 32 hex digits each.
    #[serde(rename = "McAppSKey")]
    mc_app_s_key: Option<String>,
    #[serde(rename = "McNwkSKey")]
    mc_nwk_s_key: Option<String>,
    /// AWS's gateway selection: `GatewayList` becomes the explicit carriers.
    participating_gateways: Option<ParticipatingIn>,
    /// AWS's defaults for a later session: accepted and ignored (sessions here
    /// are set explicitly).
    #[serde(default, rename = "DefaultSessionParameters")]
    #[schema(value_type = Option<Object>)]
    _default_session_parameters: Option<IgnoredAny>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = ParticipatingGateways)]
struct ParticipatingIn {
    /// Gateway Ids or EUIs; without the list every gateway of the region carries.
    #[serde(default)]
    gateway_list: Vec<String>,
    /// AWS's pause between gateways' transmissions: accepted and ignored (the
    /// FUOTA planner paces gateways by their duty cycle instead).
    #[serde(default, rename = "TransmissionInterval")]
    #[schema(value_type = Option<u32>)]
    _transmission_interval: Option<IgnoredAny>,
}

/// Create a multicast group.
///
/// Its address and keys; a generated `McKey` is shown once, in this answer.
#[utoipa::path(
    post,
    path = "/multicast-groups",
    operation_id = "CreateMulticastGroup",
    tag = MULTICAST,
    request_body = CreateBody,
    responses(
        (status = 201, description = "`{\"Id\", \"Arn\"}`, plus `LoRaWAN.McKey` when it was generated.", body = Object),
        (status = 400, description = "A bad region, class, address, key or gateway.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    tags::validate(&b.tags).map_err(ApiError::validation)?;
    let l = b.lorawan;
    if !RF_REGIONS.contains(&l.rf_region.as_str()) || regions::rx2(&l.rf_region).is_none() {
        return Err(ApiError::validation(format!(
            "LoRaWAN.RfRegion {:?} is not a region this server runs (EU868, US915, AU915, AS923-1..4, KR920, IN865, EU433)",
            l.rf_region
        )));
    }
    let class = DlClass::parse(&l.dl_class).map_err(ApiError::validation)?;
    let mc_addr = match &l.mc_addr {
        Some(a) => group::parse_mc_addr(a).map_err(ApiError::validation)?,
        // Under the network's NetID, like a device address (AWS generates it too).
        None => crate::devices::devaddr::random(app.devices.net_id),
    };
    let carriers = match &l.participating_gateways {
        Some(p) => Some(gateway_ids(&app, &p.gateway_list).await?),
        None => None,
    };
    let (keys, mc_key) = group::session_keys(
        mc_addr,
        l.mc_key.as_deref(),
        l.mc_app_s_key.as_deref(),
        l.mc_nwk_s_key.as_deref(),
    )
    .map_err(ApiError::validation)?;
    let id = new_id();
    app.store
        .insert_group(GroupRow {
            id: id.clone(),
            name: b.name,
            description: b.description,
            rf_region: l.rf_region.clone(),
            dl_class: class.as_str().into(),
            mc_addr,
            mc_app_s_key: keys.mc_app_s_key,
            mc_nwk_s_key: keys.mc_nwk_s_key,
            fcnt_next: 0,
            session: None,
            gateway_ids: Vec::new(),
            gateways_explicit: false,
            created_at: now(),
            mc_key,
        })
        .await?;
    if let Some(ids) = carriers {
        app.store.set_group_gateways(id.clone(), ids).await?;
    }
    if !b.tags.is_empty() {
        app.store
            .tag(tags::MULTICAST_GROUP, id.clone(), b.tags)
            .await?;
    }
    tracing::info!(group = %id, mc_addr = %format!("{mc_addr:08x}"), class = class.as_str(), "multicast group created");
    let mut out = json!({"Id": id, "Arn": super::devices::arn(tags::MULTICAST_GROUP, &id)});
    // A generated McKey is shown once, here: the operator's devices need it.
    if l.mc_key.is_none() {
        if let Some(k) = mc_key {
            out["LoRaWAN"] = json!({"McKey": hex::encode(k)});
        }
    }
    Ok((StatusCode::CREATED, Json(out)))
}

fn group_json(g: &GroupRow) -> Value {
    let session = g.session.as_ref().map(|s| {
        let mut v = json!({
            "DlDr": s.dl_dr,
            "DlFreq": s.dl_freq,
            "SessionStartTime": s.start,
            "SessionTimeout": s.timeout_s,
        });
        if let Some(p) = s.ping_slot_period {
            v["PingSlotPeriod"] = json!(p);
        }
        if let Ok(Some((_, d))) = group_session(g) {
            v["TimeOut"] = json!(d.time_out);
            v["SessionEndTime"] = json!(format_unix_us(d.end_us()));
        }
        v
    });
    json!({
        "Id": g.id,
        "Arn": super::devices::arn(tags::MULTICAST_GROUP, &g.id),
        "Name": g.name,
        "Description": g.description,
        "LoRaWAN": {
            "RfRegion": g.rf_region,
            "DlClass": g.dl_class,
            "McAddr": format!("{:08x}", g.mc_addr),
        },
        "Session": session,
        "FCntNext": g.fcnt_next,
        "CreatedAt": super::epoch_seconds(&g.created_at),
    })
}

/// Read a multicast group: address, session, carrying gateways.
///
/// Keys are never shown after creation.
#[utoipa::path(
    get,
    path = "/multicast-groups/{id}",
    operation_id = "GetMulticastGroup",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    responses(
        (status = 200, description = "`Id`, `Arn`, `Name`, `LoRaWAN` (`RfRegion`, `DlClass`, `McAddr`), `Session`, `FCntNext`, `Gateways`, `CreatedAt`.", body = Object),
        (status = 404, description = "No such group.", body = ErrorBody),
    ),
)]
async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let g = load(&app, &id).await?;
    let mut out = group_json(&g);
    let carriers = app.store.group_gateways(id).await?;
    if g.gateways_explicit {
        out["LoRaWAN"]["ParticipatingGateways"] =
            json!({"GatewayList": carriers.iter().map(|(id, _)| id).collect::<Vec<_>>()});
    }
    out["Gateways"] = gateways_json(&app, &g, &carriers);
    Ok(Json(out))
}

async fn load(app: &App, id: &str) -> Result<GroupRow, ApiError> {
    app.store
        .group(id.to_string())
        .await
        .map_err(missing(format!("multicast group {id}")))
}

fn gateways_json(app: &App, g: &GroupRow, carriers: &[(String, crate::eui::Eui)]) -> Value {
    json!({
        "Selection": if g.gateways_explicit { "Explicit" } else { "AllInRegion" },
        "WirelessGateways": carriers.iter().map(|(id, eui)| {
            let conn = app.lns.connection(*eui);
            json!({
                "Id": id,
                "GatewayEui": eui.to_string(),
                "ConnectionStatus": if conn.is_some() { "Connected" } else { "Disconnected" },
                "GpsTime": conn.as_ref().is_some_and(|c| c.stats.gps),
            })
        }).collect::<Vec<_>>(),
    })
}

/// The gateways that carry the group, and whether they are connected.
#[utoipa::path(
    get,
    path = "/multicast-groups/{id}/gateways",
    operation_id = "ListMulticastGroupGateways",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    responses(
        (status = 200, description = "`Selection` (`Explicit` or `AllInRegion`) and `WirelessGateways` (`Id`, `GatewayEui`, `ConnectionStatus`, `GpsTime`).", body = Object),
        (status = 404, description = "No such group.", body = ErrorBody),
    ),
)]
async fn gateways(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let g = load(&app, &id).await?;
    let carriers = app.store.group_gateways(id).await?;
    Ok(Json(gateways_json(&app, &g, &carriers)))
}

/// List the multicast groups.
#[utoipa::path(
    get,
    path = "/multicast-groups",
    operation_id = "ListMulticastGroups",
    tag = MULTICAST,
    params(Page),
    responses(
        (status = 200, description = "`{\"MulticastGroupList\": [{\"Id\", \"Arn\", \"Name\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "MulticastGroupList",
        |after, n| app.store.list_groups(after, n),
        |g| g.id.clone(),
        |g| json!({"Id": g.id, "Arn": super::devices::arn(tags::MULTICAST_GROUP, &g.id), "Name": g.name}),
    )
    .await
}

/// Delete a multicast group.
#[utoipa::path(
    delete,
    path = "/multicast-groups/{id}",
    operation_id = "DeleteMulticastGroup",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such group.", body = ErrorBody),
        (status = 409, description = "A FUOTA task that is not done uses it.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.store
        .delete_group(id.clone())
        .await
        .map_err(missing(format!("multicast group {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = StartMulticastGroupSessionRequest)]
struct SessionBody {
    #[serde(rename = "LoRaWAN")]
    lorawan: SessionIn,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = MulticastSession)]
struct SessionIn {
    /// The data rate of the multicast downlinks (a DR of the group's region).
    dl_dr: u8,
    /// Hz, within the region's band.
    dl_freq: u32,
    /// RFC 3339, in the future.
    session_start_time: String,
    /// Seconds the devices listen.
    session_timeout: u32,
    /// Class B: the ping-slot period in seconds.
    ping_slot_period: Option<u32>,
}

/// Set the group's multicast session.
#[utoipa::path(
    put,
    path = "/multicast-groups/{id}/session",
    operation_id = "StartMulticastGroupSession",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    request_body = SessionBody,
    responses(
        (status = 204, description = "Stored."),
        (status = 400, description = "A DR, frequency, start or timeout the session rules refuse (the message says which).", body = ErrorBody),
        (status = 404, description = "No such group.", body = ErrorBody),
        (status = 409, description = "The group is carrying a FUOTA task.", body = ErrorBody),
    ),
)]
async fn set_session(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SessionBody>,
) -> Result<StatusCode, ApiError> {
    let g = load(&app, &id).await?;
    let class = DlClass::parse(&g.dl_class).map_err(ApiError::validation)?;
    let s = b.lorawan;
    let start_us = parse_time(&s.session_start_time)
        .map_err(|e| ApiError::validation(format!("LoRaWAN.SessionStartTime {e}")))?;
    let session = group::validate_session(
        &g.rf_region,
        class,
        &SessionRequest {
            dl_dr: s.dl_dr,
            dl_freq: s.dl_freq,
            start_us,
            timeout_s: s.session_timeout,
            ping_slot_period: s.ping_slot_period,
        },
        unix_now_us(),
    )
    .map_err(ApiError::validation)?;
    app.store
        .set_group_session(
            id.clone(),
            GroupSession {
                dl_dr: session.dl_dr,
                dl_freq: session.dl_freq,
                start: format_unix_us(session.start_us),
                timeout_s: session.timeout_s,
                ping_slot_period: s.ping_slot_period,
            },
        )
        .await
        .map_err(missing(format!("multicast group {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = PutMulticastGroupGatewaysRequest)]
struct GatewaysBody {
    /// Gateway Ids or EUIs, all in the group's region; empty: every gateway of
    /// the region.
    wireless_gateway_ids: Vec<String>,
}

/// Choose the gateways that carry the group.
#[utoipa::path(
    put,
    path = "/multicast-groups/{id}/gateways",
    operation_id = "PutMulticastGroupGateways",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    request_body = GatewaysBody,
    responses(
        (status = 204, description = "Stored."),
        (status = 400, description = "An unknown gateway, or one of another region.", body = ErrorBody),
        (status = 404, description = "No such group.", body = ErrorBody),
    ),
)]
async fn set_gateways(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<GatewaysBody>,
) -> Result<StatusCode, ApiError> {
    load(&app, &id).await?;
    let ids = gateway_ids(&app, &b.wireless_gateway_ids).await?;
    app.store
        .set_group_gateways(id.clone(), ids)
        .await
        .map_err(missing(format!("multicast group {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Each entry is a gateway Id or EUI, as everywhere else in the API; an unknown
/// one is a 400 naming it.
async fn gateway_ids(app: &App, idents: &[String]) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for ident in idents {
        let g = find(app, ident, None).await.map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::validation(format!("wireless gateway {ident} does not exist"))
            } else {
                e
            }
        })?;
        ids.push(g.gw.id);
    }
    Ok(ids)
}
