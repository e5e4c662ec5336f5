//! End devices in AWS's shapes (end-devices.md §9): device and service profiles,
//! `/wireless-devices` (create with OTAA or ABP keys, get by Id or DevEui, list,
//! delete), SendDataToWirelessDevice, GetWirelessDeviceStatistics, and our
//! `/wireless-devices/{Id}/events` log. Keys are write-only: no answer, list or log
//! line ever carries one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{missing, ApiError, ApiJson, ApiQuery, Page};
use crate::app::{new_id, now, App};
use crate::devices::maccommand::MacState;
use crate::devices::profile::DeviceProfile;
use crate::devices::queue::{self, Enqueue, EnqueueError};
use crate::eui::Eui;
use crate::store::{DeviceRow, OtaaKeys, ProfileKind, ProfileRow, SessionRow, StoreError};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/device-profiles",
            get(list_device_profiles).post(create_device_profile),
        )
        .route(
            "/device-profiles/{id}",
            get(get_device_profile).delete(delete_device_profile),
        )
        .route(
            "/service-profiles",
            get(list_service_profiles).post(create_service_profile),
        )
        .route(
            "/service-profiles/{id}",
            get(get_service_profile).delete(delete_service_profile),
        )
        .route("/wireless-devices", get(list).post(create))
        .route("/wireless-devices/{id}", get(get_one).delete(remove))
        .route("/wireless-devices/{id}/data", post(send_data))
        .route("/wireless-devices/{id}/statistics", get(statistics))
        .route("/wireless-devices/{id}/events", get(events))
}

/// A stable, synthesized ARN: the AWS tools expect one in answers.
pub fn arn(kind: &str, id: &str) -> String {
    format!("arn:aws:iotwireless:local:000000000000:{kind}/{id}")
}

// ---------------------------------------------------------------- profiles

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ProfileBody {
    name: Option<String>,
    #[serde(rename = "LoRaWAN", default)]
    lorawan: Option<Value>,
    #[serde(default, rename = "ClientRequestToken")]
    _client_request_token: Option<IgnoredAny>,
    #[serde(default, rename = "Tags")]
    _tags: Option<IgnoredAny>,
    #[serde(default, rename = "Sidewalk")]
    _sidewalk: Option<IgnoredAny>,
}

/// The service profile fields AWS defines; none changes what this server does
/// yet, but a typo is still an error.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[allow(dead_code)]
struct ServiceProfile {
    add_gw_metadata: Option<bool>,
    dr_min: Option<u8>,
    dr_max: Option<u8>,
    pr_allowed: Option<bool>,
    ra_allowed: Option<bool>,
    tx_power_index_min: Option<u8>,
    tx_power_index_max: Option<u8>,
    nb_trans_min: Option<u8>,
    nb_trans_max: Option<u8>,
}

fn check_profile(kind: ProfileKind, lorawan: &Value) -> Result<(), ApiError> {
    let bad = |e: serde_json::Error| ApiError::validation(format!("LoRaWAN: {e}"));
    match kind {
        ProfileKind::Device => {
            let p: DeviceProfile = serde_json::from_value(lorawan.clone()).map_err(bad)?;
            p.validate().map_err(ApiError::validation)
        }
        ProfileKind::Service => serde_json::from_value::<ServiceProfile>(lorawan.clone())
            .map(|_| ())
            .map_err(bad),
    }
}

async fn create_profile(
    app: &App,
    kind: ProfileKind,
    b: ProfileBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let lorawan = b.lorawan.unwrap_or_else(|| json!({}));
    check_profile(kind, &lorawan)?;
    let id = new_id();
    app.store
        .insert_profile(
            kind,
            ProfileRow {
                id: id.clone(),
                name: b.name,
                created_at: now(),
                lorawan: lorawan.to_string(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Arn": arn(kind_name(kind), &id)})),
    ))
}

fn kind_name(kind: ProfileKind) -> &'static str {
    match kind {
        ProfileKind::Device => "DeviceProfile",
        ProfileKind::Service => "ServiceProfile",
    }
}

fn profile_json(kind: ProfileKind, p: &ProfileRow) -> Value {
    json!({
        "Id": p.id,
        "Arn": arn(kind_name(kind), &p.id),
        "Name": p.name,
        "LoRaWAN": serde_json::from_str::<Value>(&p.lorawan).unwrap_or(Value::Null),
    })
}

async fn get_profile(app: &App, kind: ProfileKind, id: String) -> Result<Json<Value>, ApiError> {
    let p = app
        .store
        .profile(kind, id.clone())
        .await
        .map_err(missing(format!("{} {id}", kind_name(kind))))?;
    Ok(Json(profile_json(kind, &p)))
}

async fn list_profiles(app: &App, kind: ProfileKind, page: Page) -> Result<Json<Value>, ApiError> {
    let key = match kind {
        ProfileKind::Device => "DeviceProfileList",
        ProfileKind::Service => "ServiceProfileList",
    };
    page.answer(
        key,
        |after, n| app.store.list_profiles(kind, after, n),
        |p| p.id.clone(),
        |p| json!({"Id": p.id, "Arn": arn(kind_name(kind), &p.id), "Name": p.name}),
    )
    .await
}

async fn delete_profile(app: &App, kind: ProfileKind, id: String) -> Result<StatusCode, ApiError> {
    app.store
        .delete_profile(kind, id.clone())
        .await
        .map_err(missing(format!("{} {id}", kind_name(kind))))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_device_profile(
    State(app): State<App>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create_profile(&app, ProfileKind::Device, b).await
}
async fn create_service_profile(
    State(app): State<App>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create_profile(&app, ProfileKind::Service, b).await
}
async fn get_device_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_profile(&app, ProfileKind::Device, id).await
}
async fn get_service_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_profile(&app, ProfileKind::Service, id).await
}
async fn list_device_profiles(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    list_profiles(&app, ProfileKind::Device, page).await
}
async fn list_service_profiles(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    list_profiles(&app, ProfileKind::Service, page).await
}
async fn delete_device_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_profile(&app, ProfileKind::Device, id).await
}
async fn delete_service_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_profile(&app, ProfileKind::Service, id).await
}

// ---------------------------------------------------------------- devices

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "Type")]
    kind: String,
    destination_name: String,
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "LoRaWAN")]
    lorawan: Option<LoRaWanIn>,
    #[serde(default, rename = "ClientRequestToken")]
    _client_request_token: Option<IgnoredAny>,
    #[serde(default, rename = "Tags")]
    _tags: Option<IgnoredAny>,
    #[serde(default, rename = "Positioning")]
    _positioning: Option<IgnoredAny>,
    #[serde(default, rename = "Sidewalk")]
    _sidewalk: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LoRaWanIn {
    dev_eui: String,
    device_profile_id: String,
    service_profile_id: Option<String>,
    #[serde(rename = "OtaaV1_0_x")]
    otaa: Option<OtaaIn>,
    #[serde(rename = "AbpV1_0_x")]
    abp: Option<AbpIn>,
    #[serde(rename = "OtaaV1_1")]
    otaa11: Option<IgnoredAny>,
    #[serde(rename = "AbpV1_1")]
    abp11: Option<IgnoredAny>,
    #[serde(default, rename = "FPorts")]
    _fports: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OtaaIn {
    app_key: String,
    app_eui: Option<String>,
    join_eui: Option<String>,
    gen_app_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AbpIn {
    dev_addr: String,
    session_keys: SessionKeysIn,
    #[serde(rename = "FCntStart")]
    f_cnt_start: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionKeysIn {
    #[serde(rename = "NwkSKey")]
    nwk_s_key: String,
    #[serde(rename = "AppSKey")]
    app_s_key: String,
}

/// A 128-bit key as 32 hex digits; the error names the field, never the value.
fn key(field: &str, v: &str) -> Result<[u8; 16], ApiError> {
    crate::fuota::group::parse_key(field, v).map_err(ApiError::validation)
}

fn eui(field: &str, v: &str) -> Result<Eui, ApiError> {
    if v.len() != 16 || !v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::validation(format!(
            "{field} must be 16 hex digits"
        )));
    }
    v.parse()
        .map_err(|e: crate::eui::EuiError| ApiError::validation(format!("{field}: {e}")))
}

async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if b.kind != "LoRaWAN" {
        return Err(ApiError::validation(format!(
            "Type {:?} is not supported: only LoRaWAN devices",
            b.kind
        )));
    }
    if b.destination_name.is_empty() || b.destination_name.len() > 128 {
        return Err(ApiError::validation(
            "DestinationName must name the application (1 to 128 characters)",
        ));
    }
    let l = b
        .lorawan
        .ok_or_else(|| ApiError::validation("LoRaWAN is required for Type LoRaWAN"))?;
    if l.otaa11.is_some() || l.abp11.is_some() {
        return Err(ApiError::validation("LoRaWAN 1.1 devices (OtaaV1_1, AbpV1_1) are not supported; use OtaaV1_0_x or AbpV1_0_x"));
    }
    let dev_eui = eui("LoRaWAN.DevEui", &l.dev_eui)?;
    let row = app
        .store
        .profile(ProfileKind::Device, l.device_profile_id.clone())
        .await
        .map_err(missing(format!("device profile {}", l.device_profile_id)))?;
    let profile = DeviceProfile::parse(&row.lorawan).map_err(ApiError::validation)?;
    if let Some(sp) = &l.service_profile_id {
        app.store
            .profile(ProfileKind::Service, sp.clone())
            .await
            .map_err(missing(format!("service profile {sp}")))?;
    }
    let id = new_id();
    let (otaa, abp) = match (l.otaa, l.abp) {
        (Some(o), None) => (Some(otaa_keys(o, &profile)?), None),
        (None, Some(a)) => (None, Some(abp_session(&id, a, &profile)?)),
        _ => {
            return Err(ApiError::validation(
                "give exactly one of LoRaWAN.OtaaV1_0_x and LoRaWAN.AbpV1_0_x",
            ))
        }
    };
    let device = DeviceRow {
        id: id.clone(),
        dev_eui,
        name: b.name,
        description: b.description,
        destination: b.destination_name,
        device_profile_id: l.device_profile_id,
        service_profile_id: l.service_profile_id,
        created_at: now(),
        otaa,
        last_uplink_at: None,
        last_uplink: None,
    };
    app.store
        .insert_device(device, abp)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                format!("a wireless device with DevEui {dev_eui} exists already"),
            ),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Arn": arn("WirelessDevice", &id)})),
    ))
}

fn otaa_keys(o: OtaaIn, profile: &DeviceProfile) -> Result<OtaaKeys, ApiError> {
    if profile.supports_join == Some(false) {
        return Err(ApiError::validation(
            "the device profile says SupportsJoin false; use AbpV1_0_x or another profile",
        ));
    }
    let join_eui = match (o.join_eui.as_deref(), o.app_eui.as_deref()) {
        (Some(j), _) => eui("LoRaWAN.OtaaV1_0_x.JoinEui", j)?,
        (None, Some(a)) => eui("LoRaWAN.OtaaV1_0_x.AppEui", a)?,
        (None, None) => {
            return Err(ApiError::validation(
                "LoRaWAN.OtaaV1_0_x needs JoinEui (or AppEui)",
            ))
        }
    };
    Ok(OtaaKeys {
        join_eui,
        app_key: key("LoRaWAN.OtaaV1_0_x.AppKey", &o.app_key)?,
        gen_app_key: o
            .gen_app_key
            .map(|g| key("LoRaWAN.OtaaV1_0_x.GenAppKey", &g))
            .transpose()?,
    })
}

fn abp_session(device_id: &str, a: AbpIn, profile: &DeviceProfile) -> Result<SessionRow, ApiError> {
    let addr = u32::from_str_radix(&a.dev_addr, 16)
        .ok()
        .filter(|_| a.dev_addr.len() == 8)
        .ok_or_else(|| ApiError::validation("LoRaWAN.AbpV1_0_x.DevAddr must be 8 hex digits"))?;
    let start = a.f_cnt_start.unwrap_or(0);
    if start > 65_535 {
        return Err(ApiError::validation(
            "LoRaWAN.AbpV1_0_x.FCntStart is out of range 0..=65535",
        ));
    }
    let mac = MacState::defaults(profile.rx2());
    Ok(SessionRow {
        device_id: device_id.to_owned(),
        slot: 0,
        dev_addr: addr,
        nwk_s_key: key(
            "LoRaWAN.AbpV1_0_x.SessionKeys.NwkSKey",
            &a.session_keys.nwk_s_key,
        )?,
        app_s_key: key(
            "LoRaWAN.AbpV1_0_x.SessionKeys.AppSKey",
            &a.session_keys.app_s_key,
        )?,
        fcnt_up: start,
        fcnt_down: start,
        mac: serde_json::to_string(&mac).expect("MacState serialises"),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GetQuery {
    identifier_type: Option<String>,
}

/// A device by Id, or by DevEui (`identifierType=DevEui`, or a 16-hex-digit Id).
pub(super) async fn find_device(
    app: &App,
    ident: &str,
    kind: Option<&str>,
) -> Result<DeviceRow, ApiError> {
    let result = match kind {
        Some("DevEui") => app.store.device_by_eui(eui("Identifier", ident)?).await,
        Some("WirelessDeviceId") | None => match app.store.device(ident.to_owned()).await {
            Err(StoreError::NotFound) if kind.is_none() && ident.len() == 16 => {
                app.store.device_by_eui(eui("Identifier", ident)?).await
            }
            other => other,
        },
        Some(other) => {
            return Err(ApiError::validation(format!(
                "identifierType {other:?} must be WirelessDeviceId or DevEui"
            )))
        }
    };
    result.map_err(missing(format!("wireless device {ident}")))
}

fn device_json(d: &DeviceRow) -> Value {
    let mut l = json!({
        "DevEui": d.dev_eui.to_string(),
        "DeviceProfileId": d.device_profile_id,
        "ServiceProfileId": d.service_profile_id,
    });
    // Keys are write-only: only the JoinEUI of an OTAA device shows.
    if let Some(k) = &d.otaa {
        l["OtaaV1_0_x"] =
            json!({"JoinEui": k.join_eui.to_string(), "GenAppKeySet": k.gen_app_key.is_some()});
    }
    json!({
        "Type": "LoRaWAN",
        "Id": d.id,
        "Arn": arn("WirelessDevice", &d.id),
        "Name": d.name,
        "Description": d.description,
        "DestinationName": d.destination,
        "LoRaWAN": l,
    })
}

async fn get_one(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    let d = find_device(&app, &id, q.identifier_type.as_deref()).await?;
    Ok(Json(device_json(&d)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    max_results: Option<usize>,
    next_token: Option<String>,
    destination_name: Option<String>,
    device_profile_id: Option<String>,
    service_profile_id: Option<String>,
    wireless_device_type: Option<String>,
    fuota_task_id: Option<String>,
    multicast_group_id: Option<String>,
}

/// A device as ListWirelessDevices shows it.
pub(super) fn list_entry(d: &DeviceRow) -> Value {
    json!({
        "Id": d.id,
        "Arn": arn("WirelessDevice", &d.id),
        "Name": d.name,
        "Type": "LoRaWAN",
        "DestinationName": d.destination,
        "LastUplinkReceivedAt": d.last_uplink_at,
        "LoRaWAN": {"DevEui": d.dev_eui.to_string(), "DeviceProfileId": d.device_profile_id},
    })
}

async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.service_profile_id.is_some() {
        return Err(ApiError::validation(
            "the serviceProfileId filter is not supported; list by destinationName, deviceProfileId, fuotaTaskId or multicastGroupId",
        ));
    }
    if q.wireless_device_type
        .as_deref()
        .is_some_and(|t| t != "LoRaWAN")
    {
        return Ok(Json(json!({"WirelessDeviceList": []})));
    }
    let page = Page {
        max_results: q.max_results,
        next_token: q.next_token,
    };
    // A task's or a group's devices: few enough to page in memory.
    let members = match (&q.fuota_task_id, &q.multicast_group_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "give fuotaTaskId or multicastGroupId, not both",
            ))
        }
        (Some(t), None) => Some(super::fuota_devices::task_device_list(&app, t).await?),
        (None, Some(g)) => Some(super::fuota_devices::group_device_list(&app, g).await?),
        (None, None) => None,
    };
    if let Some(rows) = members {
        return page
            .answer(
                "WirelessDeviceList",
                |after, n| async move {
                    Ok(rows
                        .into_iter()
                        .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
                        .take(n)
                        .collect::<Vec<_>>())
                },
                |(id, _)| id.clone(),
                |(_, v)| v.clone(),
            )
            .await;
    }
    let (dest, dp) = (q.destination_name, q.device_profile_id);
    page.answer(
        "WirelessDeviceList",
        |after, n| app.store.list_devices(after, n, dest, dp),
        |d| d.id.clone(),
        list_entry,
    )
    .await
}

async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let d = find_device(&app, &id, None).await?;
    app.store
        .delete_device(d.id)
        .await
        .map_err(missing(format!("wireless device {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DataBody {
    transmit_mode: u8,
    payload_data: String,
    wireless_metadata: Option<MetadataIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetadataIn {
    #[serde(rename = "LoRaWAN")]
    lorawan: Option<DataLoRaWanIn>,
    #[serde(default, rename = "Sidewalk")]
    _sidewalk: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DataLoRaWanIn {
    #[serde(rename = "FPort")]
    f_port: Option<u8>,
    #[serde(default)]
    _participating_gateways: Option<IgnoredAny>,
}

async fn send_data(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DataBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let d = find_device(&app, &id, None).await?;
    if b.transmit_mode > 1 {
        return Err(ApiError::validation(
            "TransmitMode must be 0 (unconfirmed) or 1 (confirmed)",
        ));
    }
    if b.payload_data.len() > 2048 {
        return Err(ApiError::validation(
            "PayloadData is over 2048 base64 characters",
        ));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(b.payload_data.as_bytes())
        .map_err(|e| ApiError::validation(format!("PayloadData is not base64: {e}")))?;
    let f_port = b
        .wireless_metadata
        .and_then(|m| m.lorawan)
        .and_then(|l| l.f_port)
        .unwrap_or(1);
    let q = Enqueue {
        id: None,
        f_port,
        data,
        confirmed: b.transmit_mode == 1,
    };
    let message_id = queue::enqueue(&app, &d, q).await.map_err(|e| match e {
        EnqueueError::Invalid(m) => ApiError::validation(m),
        EnqueueError::Store(s) => s.into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"MessageId": message_id}))))
}

async fn statistics(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = find_device(&app, &id, None).await?;
    let last: Value = d
        .last_uplink
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let mut l = json!({"DevEui": d.dev_eui.to_string()});
    if let Value::Object(m) = &last {
        for (k, v) in m {
            l[k] = v.clone();
        }
        l["Timestamp"] = json!(d.last_uplink_at);
    }
    Ok(Json(json!({
        "WirelessDeviceId": d.id,
        "LastUplinkReceivedAt": d.last_uplink_at,
        "LoRaWAN": l,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventsQuery {
    max_results: Option<usize>,
    /// The `NextToken` of the previous page (a sequence number).
    next_token: Option<String>,
}

/// `GET /wireless-devices/{Id}/events`: the device's event log, oldest first, the
/// ChirpStack-shaped event under `Event`. `NextToken` is always given, so a
/// follower polls with it for what comes next.
async fn events(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let d = find_device(&app, &id, None).await?;
    let limit = Page {
        max_results: q.max_results,
        next_token: None,
    }
    .limit()?;
    let after = match q.next_token.as_deref() {
        None => 0,
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| ApiError::validation("nextToken is not one this API gave"))?,
    };
    let rows = app.store.device_events(d.id, after, limit).await?;
    let next = rows.last().map_or(after, |r| r.0);
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(seq, at, kind, body)| {
            json!({"Seq": seq, "At": at, "Type": kind, "Event": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"Events": list, "NextToken": next.to_string()})))
}
