//! End devices in AWS's shapes (end-devices.md §9): device and service profiles,
//! `/wireless-devices` (create with OTAA or ABP keys, get by Id or DevEui, list,
//! delete), SendDataToWirelessDevice, GetWirelessDeviceStatistics, and our
//! `/wireless-devices/{Id}/events` log. Keys are write-only: no answer, list or log
//! line ever carries one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::DEVICES;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody, Page};
use crate::app::{new_id, now, App};
use crate::devices::maccommand::MacState;
use crate::devices::profile::DeviceProfile;
use crate::devices::queue::{self, Enqueue, EnqueueError};
use crate::eui::Eui;
use crate::store::{DeviceRow, OtaaKeys, ProfileKind, ProfileRow, SessionRow, StoreError};

pub fn routes() -> OpenApiRouter<App> {
    let mut r = OpenApiRouter::default()
        .routes(routes!(list_device_profiles, create_device_profile))
        .routes(routes!(get_device_profile, delete_device_profile))
        .routes(routes!(list_service_profiles, create_service_profile))
        .routes(routes!(get_service_profile, delete_service_profile))
        .routes(routes!(list, create))
        .routes(routes!(get_one, remove))
        .routes(routes!(send_data))
        .routes(routes!(statistics))
        .routes(routes!(events));
    // The two shapes of a profile's `LoRaWAN` (`check_profile` reads it as one
    // or the other), which `profile_lorawan` refers to.
    super::openapi::add_schema::<DeviceProfile>(&mut r);
    super::openapi::add_schema::<ServiceProfile>(&mut r);
    r
}

const DEVICE_ID: &str = "The wireless device's Id, or its DevEui (16 hex digits).";
const PROFILE_ID: &str = "The profile's Id.";

/// A profile body's `LoRaWAN`: a device profile's or a service profile's fields.
fn profile_lorawan() -> Schema {
    OneOfBuilder::new()
        .item(RefOr::Ref(Ref::from_schema_name("DeviceProfileLoRaWAN")))
        .item(RefOr::Ref(Ref::from_schema_name("ServiceProfileLoRaWAN")))
        .description(Some(
            "For a device profile the `DeviceProfileLoRaWAN` fields, for a service profile the `ServiceProfileLoRaWAN` ones; a field the kind does not have is refused.",
        ))
        .build()
        .into()
}

/// A stable, synthesized ARN: the AWS tools expect one in answers.
pub fn arn(kind: &str, id: &str) -> String {
    format!("arn:aws:iotwireless:local:000000000000:{kind}/{id}")
}

// ---------------------------------------------------------------- profiles

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateProfileRequest)]
struct ProfileBody {
    name: Option<String>,
    #[serde(rename = "LoRaWAN", default)]
    #[schema(schema_with = profile_lorawan)]
    lorawan: Option<Value>,
    /// Makes the create idempotent: the same token and body answer the first
    /// answer again.
    #[serde(default, rename = "ClientRequestToken")]
    #[schema(value_type = Option<String>)]
    _client_request_token: Option<IgnoredAny>,
    /// Accepted and ignored (tag the profile with TagResource).
    #[serde(default, rename = "Tags")]
    #[schema(value_type = Option<Vec<Object>>)]
    _tags: Option<IgnoredAny>,
    /// Accepted and ignored.
    #[serde(default, rename = "Sidewalk")]
    #[schema(value_type = Option<Object>)]
    _sidewalk: Option<IgnoredAny>,
}

/// The service profile fields AWS defines; none changes what this server does
/// yet, but a typo is still an error.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = ServiceProfileLoRaWAN)]
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

/// Create a device profile.
#[utoipa::path(
    post,
    path = "/device-profiles",
    operation_id = "CreateDeviceProfile",
    tag = DEVICES,
    request_body = ProfileBody,
    responses(
        (status = 201, description = "`{\"Id\", \"Arn\"}`.", body = Object),
        (status = 400, description = "A field of `LoRaWAN` the kind does not have, or a value this server cannot use (the message names it).", body = ErrorBody),
    ),
)]
async fn create_device_profile(
    State(app): State<App>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create_profile(&app, ProfileKind::Device, b).await
}
/// Create a service profile.
#[utoipa::path(
    post,
    path = "/service-profiles",
    operation_id = "CreateServiceProfile",
    tag = DEVICES,
    request_body = ProfileBody,
    responses(
        (status = 201, description = "`{\"Id\", \"Arn\"}`.", body = Object),
        (status = 400, description = "A field of `LoRaWAN` the kind does not have, or a value this server cannot use (the message names it).", body = ErrorBody),
    ),
)]
async fn create_service_profile(
    State(app): State<App>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create_profile(&app, ProfileKind::Service, b).await
}
/// Read a device profile.
#[utoipa::path(
    get,
    path = "/device-profiles/{id}",
    operation_id = "GetDeviceProfile",
    tag = DEVICES,
    params(("id" = String, Path, description = PROFILE_ID)),
    responses(
        (status = 200, description = "`Id`, `Arn`, `Name`, `LoRaWAN`.", body = Object),
        (status = 404, description = "No such profile.", body = ErrorBody),
    ),
)]
async fn get_device_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_profile(&app, ProfileKind::Device, id).await
}
/// Read a service profile.
#[utoipa::path(
    get,
    path = "/service-profiles/{id}",
    operation_id = "GetServiceProfile",
    tag = DEVICES,
    params(("id" = String, Path, description = PROFILE_ID)),
    responses(
        (status = 200, description = "`Id`, `Arn`, `Name`, `LoRaWAN`.", body = Object),
        (status = 404, description = "No such profile.", body = ErrorBody),
    ),
)]
async fn get_service_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_profile(&app, ProfileKind::Service, id).await
}
/// List the device profiles.
#[utoipa::path(
    get,
    path = "/device-profiles",
    operation_id = "ListDeviceProfiles",
    tag = DEVICES,
    params(Page),
    responses(
        (status = 200, description = "`{\"DeviceProfileList\": [{\"Id\", \"Arn\", \"Name\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list_device_profiles(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    list_profiles(&app, ProfileKind::Device, page).await
}
/// List the service profiles.
#[utoipa::path(
    get,
    path = "/service-profiles",
    operation_id = "ListServiceProfiles",
    tag = DEVICES,
    params(Page),
    responses(
        (status = 200, description = "`{\"ServiceProfileList\": [{\"Id\", \"Arn\", \"Name\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list_service_profiles(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    list_profiles(&app, ProfileKind::Service, page).await
}
/// Delete a device profile.
#[utoipa::path(
    delete,
    path = "/device-profiles/{id}",
    operation_id = "DeleteDeviceProfile",
    tag = DEVICES,
    params(("id" = String, Path, description = PROFILE_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such profile.", body = ErrorBody),
        (status = 409, description = "A device uses it.", body = ErrorBody),
    ),
)]
async fn delete_device_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_profile(&app, ProfileKind::Device, id).await
}
/// Delete a service profile.
#[utoipa::path(
    delete,
    path = "/service-profiles/{id}",
    operation_id = "DeleteServiceProfile",
    tag = DEVICES,
    params(("id" = String, Path, description = PROFILE_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such profile.", body = ErrorBody),
        (status = 409, description = "A device uses it.", body = ErrorBody),
    ),
)]
async fn delete_service_profile(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_profile(&app, ProfileKind::Service, id).await
}

// ---------------------------------------------------------------- devices

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateWirelessDeviceRequest)]
struct CreateBody {
    /// `LoRaWAN` (AWS's `Sidewalk` is refused).
    #[serde(rename = "Type")]
    kind: String,
    /// The application the device's events go to (1 to 128 characters).
    destination_name: String,
    name: Option<String>,
    description: Option<String>,
    /// Required for `Type` `LoRaWAN`.
    #[serde(rename = "LoRaWAN")]
    lorawan: Option<LoRaWanIn>,
    /// Makes the create idempotent: the same token and body answer the first
    /// answer again.
    #[serde(default, rename = "ClientRequestToken")]
    #[schema(value_type = Option<String>)]
    _client_request_token: Option<IgnoredAny>,
    /// Accepted and ignored (tag the device with TagResource).
    #[serde(default, rename = "Tags")]
    #[schema(value_type = Option<Vec<Object>>)]
    _tags: Option<IgnoredAny>,
    /// Accepted and ignored.
    #[serde(default, rename = "Positioning")]
    #[schema(value_type = Option<String>)]
    _positioning: Option<IgnoredAny>,
    /// Accepted and ignored.
    #[serde(default, rename = "Sidewalk")]
    #[schema(value_type = Option<Object>)]
    _sidewalk: Option<IgnoredAny>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = WirelessDeviceLoRaWAN)]
struct LoRaWanIn {
    /// Any EUI form.
    #[schema(example = "0004a30b001c0530")]
    dev_eui: String,
    device_profile_id: String,
    service_profile_id: Option<String>,
    /// An OTAA device's root keys (this or `AbpV1_0_x`).
    #[serde(rename = "OtaaV1_0_x")]
    otaa: Option<OtaaIn>,
    /// An ABP device's session (this or `OtaaV1_0_x`).
    #[serde(rename = "AbpV1_0_x")]
    abp: Option<AbpIn>,
    /// LoRaWAN 1.1: refused (this server runs 1.0.x devices).
    #[serde(rename = "OtaaV1_1")]
    #[schema(value_type = Option<Object>)]
    otaa11: Option<IgnoredAny>,
    /// LoRaWAN 1.1: refused (this server runs 1.0.x devices).
    #[serde(rename = "AbpV1_1")]
    #[schema(value_type = Option<Object>)]
    abp11: Option<IgnoredAny>,
    /// AWS's `{Fuota, Multicast, ClockSync, …}`: accepted; the packages use
    /// ports 201, 200, 202 and 203.
    #[serde(default, rename = "FPorts")]
    #[schema(value_type = Option<Object>)]
    _fports: Option<IgnoredAny>,
}

/// Keys are 32 hex digits, EUIs any EUI form; keys are never shown again.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = OtaaV1_0_x)]
struct OtaaIn {
    app_key: String,
    /// The JoinEUI under its 1.0 name (this or `JoinEui`).
    app_eui: Option<String>,
    join_eui: Option<String>,
    /// Needed for FUOTA: the key the multicast group's McKey is sent under.
    gen_app_key: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = AbpV1_0_x)]
struct AbpIn {
    /// 8 hex digits.
    dev_addr: String,
    session_keys: SessionKeysIn,
    /// The first FCntUp to accept, 0 to 65535.
    #[serde(rename = "FCntStart")]
    f_cnt_start: Option<u32>,
}

/// 32 hex digits each.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SessionKeysAbpV1_0_x)]
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

/// Create a wireless device (OTAA or ABP, LoRaWAN 1.0.x).
#[utoipa::path(
    post,
    path = "/wireless-devices",
    operation_id = "CreateWirelessDevice",
    tag = DEVICES,
    request_body = CreateBody,
    responses(
        (status = 201, description = "`{\"Id\", \"Arn\"}`.", body = Object),
        (status = 400, description = "A bad field, key or EUI (the message names the field, never the value of a key).", body = ErrorBody),
        (status = 404, description = "No such device or service profile.", body = ErrorBody),
        (status = 409, description = "A device with that DevEui exists.", body = ErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// `WirelessDeviceId` or `DevEui`; without it an Id is tried, then a
    /// 16-hex-digit DevEui.
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

/// Read a wireless device by Id or DevEui (never its keys).
#[utoipa::path(
    get,
    path = "/wireless-devices/{id}",
    operation_id = "GetWirelessDevice",
    tag = DEVICES,
    params(("id" = String, Path, description = DEVICE_ID), GetQuery),
    responses(
        (status = 200, description = "`Type`, `Id`, `Arn`, `Name`, `Description`, `DestinationName`, `LoRaWAN` (`DevEui`, `DeviceProfileId`, `ServiceProfileId`, `OtaaV1_0_x.JoinEui`).", body = Object),
        (status = 400, description = "A bad `identifierType` or DevEui.", body = ErrorBody),
        (status = 404, description = "No such device.", body = ErrorBody),
    ),
)]
async fn get_one(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    let d = find_device(&app, &id, q.identifier_type.as_deref()).await?;
    Ok(Json(device_json(&d)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Entries per page, 1 to 250 (0 or none: 100).
    max_results: Option<usize>,
    /// The `NextToken` of the previous page.
    next_token: Option<String>,
    /// Only the devices of this application.
    destination_name: Option<String>,
    /// Only the devices of this device profile.
    device_profile_id: Option<String>,
    /// Refused: not supported.
    service_profile_id: Option<String>,
    /// `LoRaWAN` (any other type lists nothing).
    wireless_device_type: Option<String>,
    /// A FUOTA task's devices, with `FuotaDeviceStatus` and our reason.
    fuota_task_id: Option<String>,
    /// A multicast group's devices, with `MulticastDeviceStatus`.
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

/// List wireless devices: all, or those of an application, profile, task or group.
#[utoipa::path(
    get,
    path = "/wireless-devices",
    operation_id = "ListWirelessDevices",
    tag = DEVICES,
    params(ListQuery),
    responses(
        (status = 200, description = "`{\"WirelessDeviceList\": [{\"Id\", \"Arn\", \"Name\", \"Type\", \"DestinationName\", \"LastUplinkReceivedAt\", \"LoRaWAN\", …}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter, `serviceProfileId`, or both `fuotaTaskId` and `multicastGroupId`.", body = ErrorBody),
        (status = 404, description = "No such FUOTA task or multicast group.", body = ErrorBody),
    ),
)]
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

/// Delete a wireless device, its session and its queue.
#[utoipa::path(
    delete,
    path = "/wireless-devices/{id}",
    operation_id = "DeleteWirelessDevice",
    tag = DEVICES,
    params(("id" = String, Path, description = DEVICE_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such device.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let d = find_device(&app, &id, None).await?;
    app.store
        .delete_device(d.id)
        .await
        .map_err(missing(format!("wireless device {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = SendDataToWirelessDeviceRequest)]
struct DataBody {
    /// 0 unconfirmed, 1 confirmed.
    transmit_mode: u8,
    /// The payload, base64 (at most 2048 characters).
    payload_data: String,
    wireless_metadata: Option<MetadataIn>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = WirelessMetadata)]
struct MetadataIn {
    #[serde(rename = "LoRaWAN")]
    lorawan: Option<DataLoRaWanIn>,
    /// Accepted and ignored.
    #[serde(default, rename = "Sidewalk")]
    #[schema(value_type = Option<Object>)]
    _sidewalk: Option<IgnoredAny>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = DownlinkLoRaWAN)]
struct DataLoRaWanIn {
    /// 1 to 223 (default 1).
    #[serde(rename = "FPort")]
    f_port: Option<u8>,
    /// AWS's gateway choice: accepted and ignored (the gateway with the best
    /// signal margin sends).
    #[serde(default, rename = "ParticipatingGateways")]
    #[schema(value_type = Option<Object>)]
    _participating_gateways: Option<IgnoredAny>,
}

/// Queue a downlink for a device.
///
/// Sent in the device's next class A window (or at once for class C).
#[utoipa::path(
    post,
    path = "/wireless-devices/{id}/data",
    operation_id = "SendDataToWirelessDevice",
    tag = DEVICES,
    params(("id" = String, Path, description = DEVICE_ID)),
    request_body = DataBody,
    responses(
        (status = 202, description = "Queued: `{\"MessageId\"}`.", body = Object),
        (status = 400, description = "A bad mode, payload or port, or a payload too long for the device's data rate.", body = ErrorBody),
        (status = 404, description = "No such device.", body = ErrorBody),
    ),
)]
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

/// The device's last uplink: data rate, frequency, the gateways that heard it.
#[utoipa::path(
    get,
    path = "/wireless-devices/{id}/statistics",
    operation_id = "GetWirelessDeviceStatistics",
    tag = DEVICES,
    params(("id" = String, Path, description = DEVICE_ID)),
    responses(
        (status = 200, description = "`WirelessDeviceId`, `LastUplinkReceivedAt`, `LoRaWAN` (`DevEui`, `FPort`, `DataRate`, `Frequency`, `Timestamp`, `Gateways`).", body = Object),
        (status = 404, description = "No such device.", body = ErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Events per page, 1 to 250 (0 or none: 100).
    max_results: Option<usize>,
    /// The `NextToken` of the previous page (a sequence number).
    next_token: Option<String>,
}

/// The device's event log, oldest first.
///
/// The ChirpStack-shaped event (up, join, ack, txack, status, log) under
/// `Event`. `NextToken` is always given, so a follower polls with it for what
/// comes next.
#[utoipa::path(
    get,
    path = "/wireless-devices/{id}/events",
    operation_id = "ListWirelessDeviceEvents",
    tag = DEVICES,
    params(("id" = String, Path, description = DEVICE_ID), EventsQuery),
    responses(
        (status = 200, description = "`{\"Events\": [{\"Seq\", \"At\", \"Type\", \"Event\"}], \"NextToken\"}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
        (status = 404, description = "No such device.", body = ErrorBody),
    ),
)]
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
