//! `/multicast-groups`: AWS's CreateMulticastGroup (`Name`, `LoRaWAN.RfRegion`,
//! `LoRaWAN.DlClass`) plus the address and keys AWS keeps to itself (`McAddr`,
//! and `McKey` or explicit session keys), StartMulticastGroupSession as
//! `PUT /multicast-groups/{Id}/session`, and the gateways that carry the group.
//! Keys are never shown again after creation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

use super::gateways::{find, RF_REGIONS};
use super::{missing, ApiError, ApiJson, ApiQuery, Page};
use crate::app::{format_unix_us, new_id, now, parse_time, App};
use crate::fuota::group::{self, DlClass, SessionRequest};
use crate::fuota::runner::group_session;
use crate::lns::regions;
use crate::lorawan::gps::unix_now_us;
use crate::store::{GroupRow, GroupSession};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/multicast-groups", get(list).post(create))
        .route("/multicast-groups/{id}", get(get_one).delete(remove))
        .route("/multicast-groups/{id}/session", put(set_session))
        .route(
            "/multicast-groups/{id}/gateways",
            put(set_gateways).get(gateways),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "LoRaWAN")]
    lorawan: LoRaWanIn,
    #[serde(default, rename = "ClientRequestToken")]
    _client_request_token: Option<IgnoredAny>,
    #[serde(default, rename = "Tags")]
    _tags: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LoRaWanIn {
    rf_region: String,
    dl_class: String,
    mc_addr: String,
    mc_key: Option<String>,
    #[serde(rename = "McAppSKey")]
    mc_app_s_key: Option<String>,
    #[serde(rename = "McNwkSKey")]
    mc_nwk_s_key: Option<String>,
}

async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let l = b.lorawan;
    if !RF_REGIONS.contains(&l.rf_region.as_str()) || regions::rx2(&l.rf_region).is_none() {
        return Err(ApiError::validation(format!(
            "LoRaWAN.RfRegion {:?} is not a region this server runs (EU868, US915, AU915, AS923-1..4, KR920, IN865, EU433)",
            l.rf_region
        )));
    }
    let class = DlClass::parse(&l.dl_class).map_err(ApiError::validation)?;
    let mc_addr = group::parse_mc_addr(&l.mc_addr).map_err(ApiError::validation)?;
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
    tracing::info!(group = %id, mc_addr = %format!("{mc_addr:08x}"), class = class.as_str(), "multicast group created");
    let mut out = json!({"Id": id});
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
        "Name": g.name,
        "Description": g.description,
        "LoRaWAN": {
            "RfRegion": g.rf_region,
            "DlClass": g.dl_class,
            "McAddr": format!("{:08x}", g.mc_addr),
        },
        "Session": session,
        "FCntNext": g.fcnt_next,
        "CreatedAt": g.created_at,
    })
}

async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let g = load(&app, &id).await?;
    let mut out = group_json(&g);
    let carriers = app.store.group_gateways(id).await?;
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

async fn gateways(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let g = load(&app, &id).await?;
    let carriers = app.store.group_gateways(id).await?;
    Ok(Json(gateways_json(&app, &g, &carriers)))
}

async fn list(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "MulticastGroupList",
        |after, n| app.store.list_groups(after, n),
        |g| g.id.clone(),
        |g| json!({"Id": g.id, "Name": g.name}),
    )
    .await
}

async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.store
        .delete_group(id.clone())
        .await
        .map_err(missing(format!("multicast group {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SessionBody {
    #[serde(rename = "LoRaWAN")]
    lorawan: SessionIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SessionIn {
    dl_dr: u8,
    dl_freq: u32,
    session_start_time: String,
    session_timeout: u32,
    ping_slot_period: Option<u32>,
}

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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GatewaysBody {
    wireless_gateway_ids: Vec<String>,
}

async fn set_gateways(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<GatewaysBody>,
) -> Result<StatusCode, ApiError> {
    load(&app, &id).await?;
    // Each entry is a gateway Id or EUI, as everywhere else in the API.
    let mut ids = Vec::new();
    for ident in &b.wireless_gateway_ids {
        let g = find(&app, ident, None).await.map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::validation(format!("wireless gateway {ident} does not exist"))
            } else {
                e
            }
        })?;
        ids.push(g.gw.id);
    }
    app.store
        .set_group_gateways(id.clone(), ids)
        .await
        .map_err(missing(format!("multicast group {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}
