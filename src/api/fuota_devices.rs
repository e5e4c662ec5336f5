//! The device side of FUOTA tasks and multicast groups (end-devices.md §7–§9):
//! associating devices with a task or a group (AWS's paths and shapes, with the
//! refusals an operator must see), starting a task that sets its devices up
//! (`fuota::control`), and what `GetFuotaTask` and `ListWirelessDevices` show of
//! them: per-device status with our reason, counts per status, and the plan of
//! the control plane with its ETA.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::fuota::{Carriers, TASK_ID};
use super::multicast::GROUP_ID;
use super::openapi::{FUOTA, MULTICAST};
use super::{missing, ApiError, ApiJson, ErrorBody};
use crate::app::{format_unix_us, now, parse_time, App};
use crate::devices::profile::DeviceProfile;
use crate::fuota::control::{Control, FRAG_INDEX};
use crate::fuota::device::{DeviceStatus, Step};
use crate::fuota::group::DlClass;
use crate::fuota::runner::{self, Setup};
use crate::lorawan::gps::unix_now_us;
use crate::store::{DeviceRow, FuotaTaskRow, GroupRow, ProfileKind, StartRequest};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(associate_task))
        .routes(routes!(disassociate_task))
        .routes(routes!(associate_group))
        .routes(routes!(disassociate_group))
        .routes(routes!(bulk_associate_group))
}

const DEVICE_ID: &str = "The wireless device's Id.";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = AssociateWirelessDeviceRequest)]
struct DeviceBody {
    wireless_device_id: String,
}

async fn load_device(app: &App, id: &str) -> Result<DeviceRow, ApiError> {
    app.store
        .device(id.to_string())
        .await
        .map_err(missing(format!("wireless device {id}")))
}

/// Checks a device can take part in FUOTA in `region` (and, when known, in a
/// session of `class`); returns its profile.
async fn check_device(
    app: &App,
    d: &DeviceRow,
    region: &str,
    class: Option<DlClass>,
) -> Result<DeviceProfile, ApiError> {
    if d.otaa.as_ref().and_then(|k| k.gen_app_key).is_none() {
        return Err(ApiError::validation(format!(
            "wireless device {} has no LoRaWAN.OtaaV1_0_x.GenAppKey: it cannot receive the multicast group's McKey (end-devices.md §2.8); recreate it with its GenAppKey",
            d.id
        )));
    }
    let row = app
        .store
        .profile(ProfileKind::Device, d.device_profile_id.clone())
        .await?;
    let p = DeviceProfile::parse(&row.lorawan).map_err(ApiError::validation)?;
    if p.region() != region {
        return Err(ApiError::validation(format!(
            "wireless device {} is in {} (its device profile); this task or group is in {region}",
            d.id,
            p.region()
        )));
    }
    match class {
        Some(DlClass::ClassC) if !p.class_c() => Err(ApiError::validation(format!(
            "wireless device {}'s profile does not declare SupportsClassC: it cannot join a class C multicast session (TS005 switches only devices that support it); use a profile with SupportsClassC true",
            d.id
        ))),
        Some(DlClass::ClassB) if !p.supports_class_b.unwrap_or(false) => Err(ApiError::validation(format!(
            "wireless device {}'s profile does not declare SupportsClassB: it cannot join a class B multicast session; use a profile with SupportsClassB true",
            d.id
        ))),
        _ => Ok(p),
    }
}

async fn group_class(app: &App, group_id: Option<&str>) -> Result<Option<DlClass>, ApiError> {
    match group_id {
        Some(g) => {
            let g = app.store.group(g.to_string()).await?;
            Ok(Some(
                DlClass::parse(&g.dl_class).map_err(ApiError::validation)?,
            ))
        }
        None => Ok(None),
    }
}

/// Add a device to a FUOTA task.
///
/// The control plane sets it up over unicast (clock, multicast group,
/// fragmentation session) when the task starts.
#[utoipa::path(
    put,
    path = "/fuota-tasks/{id}/wireless-device",
    operation_id = "AssociateWirelessDeviceWithFuotaTask",
    tag = FUOTA,
    params(("id" = String, Path, description = TASK_ID)),
    request_body = DeviceBody,
    responses(
        (status = 204, description = "Associated."),
        (status = 400, description = "The device cannot take part: no GenAppKey, another region, or a class its profile does not support.", body = ErrorBody),
        (status = 404, description = "No such task or device.", body = ErrorBody),
        (status = 409, description = "The task has started.", body = ErrorBody),
    ),
)]
async fn associate_task(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DeviceBody>,
) -> Result<StatusCode, ApiError> {
    let t = app
        .store
        .fuota_task(id.clone())
        .await
        .map_err(missing(format!("FUOTA task {id}")))?;
    let d = load_device(&app, &b.wireless_device_id).await?;
    let class = group_class(&app, t.group_id.as_deref()).await?;
    check_device(&app, &d, &t.rf_region, class).await?;
    app.store.associate_fuota_device(t.id, d.id, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a device from a FUOTA task.
#[utoipa::path(
    delete,
    path = "/fuota-tasks/{id}/wireless-devices/{device}",
    operation_id = "DisassociateWirelessDeviceFromFuotaTask",
    tag = FUOTA,
    params(
        ("id" = String, Path, description = TASK_ID),
        ("device" = String, Path, description = DEVICE_ID),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "The device is not in the task.", body = ErrorBody),
        (status = 409, description = "The task has started.", body = ErrorBody),
    ),
)]
async fn disassociate_task(
    State(app): State<App>,
    Path((id, device)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.store
        .disassociate_fuota_device(id.clone(), device.clone())
        .await
        .map_err(missing(format!(
            "wireless device {device} in FUOTA task {id}"
        )))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn load_group(app: &App, id: &str) -> Result<GroupRow, ApiError> {
    app.store
        .group(id.to_string())
        .await
        .map_err(missing(format!("multicast group {id}")))
}

/// Add a device to a multicast group.
#[utoipa::path(
    put,
    path = "/multicast-groups/{id}/wireless-device",
    operation_id = "AssociateWirelessDeviceWithMulticastGroup",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    request_body = DeviceBody,
    responses(
        (status = 204, description = "Associated."),
        (status = 400, description = "The device cannot take part: no GenAppKey, another region, or a class its profile does not support.", body = ErrorBody),
        (status = 404, description = "No such group or device.", body = ErrorBody),
    ),
)]
async fn associate_group(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DeviceBody>,
) -> Result<StatusCode, ApiError> {
    let g = load_group(&app, &id).await?;
    let d = load_device(&app, &b.wireless_device_id).await?;
    let class = DlClass::parse(&g.dl_class).map_err(ApiError::validation)?;
    check_device(&app, &d, &g.rf_region, Some(class)).await?;
    app.store.associate_group_devices(g.id, vec![d.id]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a device from a multicast group.
#[utoipa::path(
    delete,
    path = "/multicast-groups/{id}/wireless-devices/{device}",
    operation_id = "DisassociateWirelessDeviceFromMulticastGroup",
    tag = MULTICAST,
    params(
        ("id" = String, Path, description = GROUP_ID),
        ("device" = String, Path, description = DEVICE_ID),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "The device is not in the group.", body = ErrorBody),
    ),
)]
async fn disassociate_group(
    State(app): State<App>,
    Path((id, device)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.store
        .disassociate_group_device(id.clone(), device.clone())
        .await
        .map_err(missing(format!(
            "wireless device {device} in multicast group {id}"
        )))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = StartBulkAssociateWirelessDeviceWithMulticastGroupRequest)]
struct BulkBody {
    /// `deviceProfileId=ID` or `destinationName=NAME`: the devices to add.
    query_string: Option<String>,
    /// Accepted and ignored.
    #[serde(default, rename = "Tags")]
    #[schema(value_type = Option<Vec<Object>>)]
    _tags: Option<serde::de::IgnoredAny>,
}

/// Add every device a query selects to a multicast group.
///
/// Every device whose `deviceProfileId=…` or `destinationName=…` matches; the
/// devices that cannot join are named in the refusal, and none is added then.
#[utoipa::path(
    patch,
    path = "/multicast-groups/{id}/bulk",
    operation_id = "StartBulkAssociateWirelessDeviceWithMulticastGroup",
    tag = MULTICAST,
    params(("id" = String, Path, description = GROUP_ID)),
    request_body = BulkBody,
    responses(
        (status = 204, description = "Every selected device associated."),
        (status = 400, description = "A bad `QueryString`, or a device that cannot take part.", body = ErrorBody),
        (status = 404, description = "No such group.", body = ErrorBody),
    ),
)]
async fn bulk_associate_group(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<BulkBody>,
) -> Result<StatusCode, ApiError> {
    let g = load_group(&app, &id).await?;
    let q = b.query_string.unwrap_or_default();
    let (key, value) = q.split_once('=').ok_or_else(|| {
        ApiError::validation(
            "QueryString must be deviceProfileId=ID or destinationName=NAME (the devices to add)",
        )
    })?;
    let (dest, profile) = match key.trim() {
        "deviceProfileId" | "DeviceProfileId" => (None, Some(value.trim().to_string())),
        "destinationName" | "DestinationName" => (Some(value.trim().to_string()), None),
        other => {
            return Err(ApiError::validation(format!(
                "QueryString selects by deviceProfileId or destinationName, not {}",
                crate::logguard::Clipped(other)
            )))
        }
    };
    let class = DlClass::parse(&g.dl_class).map_err(ApiError::validation)?;
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = app
            .store
            .list_devices(after.clone(), 250, dest.clone(), profile.clone())
            .await?;
        let more = page.len() == 250;
        for d in &page {
            check_device(&app, d, &g.rf_region, Some(class)).await?;
            ids.push(d.id.clone());
        }
        after = page.last().map(|d| d.id.clone());
        if !more {
            break;
        }
    }
    app.store.associate_group_devices(g.id, ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a task whose devices the control plane sets up first: checks every
/// device, fixes what they will be sent, and either keeps the operator's StartTime
/// as SessionTime (when it leaves room for the setup) or lets the control plane
/// fix it once the devices are ready.
pub async fn start(
    app: &App,
    t: &FuotaTaskRow,
    s: &Setup,
    c: &Carriers,
    device_ids: Vec<String>,
    given: Option<String>,
) -> Result<StatusCode, ApiError> {
    let g = app
        .store
        .group(t.group_id.clone().unwrap_or_default())
        .await?;
    let mc_key = g.mc_key.ok_or_else(|| {
        ApiError::validation(format!(
            "multicast group {} was created from session keys (McAppSKey/McNwkSKey) or before McKeys were kept: devices cannot be given it; create a group with a McKey (or none, to have one generated)",
            g.id
        ))
    })?;
    let mut interval = 0;
    for id in &device_ids {
        let d = load_device(app, id).await?;
        let p = check_device(app, &d, &t.rf_region, Some(s.class)).await?;
        interval = interval.max(
            p.uplink_interval_seconds
                .unwrap_or(app.config.fuota.default_uplink_interval_secs),
        );
    }
    let frags_us = runner::estimated_finish(s, 0, s.plan.frags.total(), c.slots);
    if frags_us > s.session.window_us() {
        return Err(ApiError::validation(format!(
            "the session cannot fit: the fragments need {:.0} s through {} gateway(s), but the group's SessionTimeout gives devices {} s; raise SessionTimeout, or use a faster DlDr, bigger fragments or less redundancy",
            frags_us as f64 / 1e6,
            c.count,
            s.session.window_us() / 1_000_000
        )));
    }
    let base = app.store.group(g.id.clone()).await?.fcnt_next as u32;
    let control = Control {
        mc_addr: g.mc_addr,
        mc_key: hex::encode(mc_key),
        min_fcnt: base,
        max_fcnt: base
            .saturating_add(u32::from(s.plan.frags.total()))
            .saturating_sub(1),
        frag_setup: frag_setup_hex(s, t)?,
        ..timing(app, t, s, interval)
    };
    let start_time = match given {
        Some(st) => Some(check_session_time(&st, &control)?),
        None => None,
    };
    let gateway_ids = app
        .store
        .group_gateways(g.id.clone())
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let n = device_ids.len();
    app.store
        .start_fuota_task(StartRequest {
            task_id: t.id.clone(),
            start_time,
            total_frags: s.plan.frags.total(),
            gateway_ids,
            started_at: now(),
            device_ids,
            control: Some(serde_json::to_string(&control).expect("Control serialises")),
        })
        .await?;
    tracing::info!(task = %t.id, from = "Pending", to = "FuotaSession_Waiting", devices = n, uplink_interval_s = interval, "FUOTA task transition");
    app.fuota.wake();
    Ok(StatusCode::NO_CONTENT)
}

/// What a task's control plane uses for timing and the session, with no device
/// secrets yet (the plan before start shows it too).
fn timing(app: &App, t: &FuotaTaskRow, s: &Setup, interval: u32) -> Control {
    Control {
        mc_addr: 0,
        mc_key: String::new(),
        min_fcnt: 0,
        max_fcnt: 0,
        frag_setup: String::new(),
        dl_dr: s.session.dl_dr,
        dl_freq: s.session.dl_freq,
        time_out: s.session.time_out,
        timeout_s: s.session.timeout_s,
        periodicity: s.session.periodicity,
        max_attempts: app.config.fuota.unicast_attempts.max(1),
        interval_s: interval,
        session_setup_intervals: app.config.fuota.session_setup_intervals,
        // The countdown answer comes at the device's next uplink: it must not
        // reboot (losing that answer) before then.
        reboot_countdown_s: app
            .config
            .fuota
            .reboot_countdown_secs
            .max(2 * interval + 10),
        expected_version: t.expected_fw_version,
    }
}

fn frag_setup_hex(s: &Setup, t: &FuotaTaskRow) -> Result<String, ApiError> {
    use crate::fuota::codec::{frag_session_setup_req, FragSessionSetup};
    let f = FragSessionSetup::for_plan(&s.plan.frags, FRAG_INDEX, 0b0001, 0, t.descriptor);
    frag_session_setup_req(&f)
        .map(hex::encode)
        .map_err(|e| ApiError::validation(e.to_string()))
}

/// The operator's StartTime as SessionTime: in the future, and far enough ahead
/// for one uplink per setup step (clock, group, fragmentation, session).
fn check_session_time(st: &str, c: &Control) -> Result<String, ApiError> {
    let at = parse_time(st).map_err(|e| ApiError::validation(format!("LoRaWAN.StartTime {e}")))?;
    let now_us = unix_now_us();
    if at < now_us {
        return Err(ApiError::validation(
            "LoRaWAN.StartTime is in the past; give a later one, or leave it out and the session starts when the devices are set up",
        ));
    }
    let need_us = 4 * i64::from(c.interval_s.max(1)) * 1_000_000;
    if at < now_us + need_us {
        return Err(ApiError::validation(format!(
            "LoRaWAN.StartTime is {} s away, too close for the devices' setup: clock sync, McGroupSetup, FragSessionSetup and the session request take one uplink each, at least {} s with UplinkIntervalSeconds {}; give a later time, or leave it out",
            (at - now_us) / 1_000_000,
            need_us / 1_000_000,
            c.interval_s
        )));
    }
    Ok(format_unix_us(at))
}

/// `GetFuotaTask`'s device fields: the count and `DeviceStatusCounts`.
pub async fn describe(app: &App, t: &FuotaTaskRow, out: &mut Value) -> Result<(), ApiError> {
    let devices = if t.control.is_some() || t.status == crate::fuota::job::Status::Done {
        app.store.fuota_devices(t.id.clone()).await?.len()
    } else {
        app.store.task_device_ids(t.id.clone()).await?.len()
    };
    out["WirelessDevices"] = json!(devices);
    let counts = app.store.fuota_device_counts(t.id.clone()).await?;
    if t.control.is_some() {
        out["DeviceStatusCounts"] = counts
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    Ok(())
}

/// The control plane's plan and ETA for a task with devices.
pub async fn control_plan(
    app: &App,
    t: &FuotaTaskRow,
    s: &Setup,
    c: &Carriers,
) -> Result<Option<Value>, ApiError> {
    let control = match Control::parse(t) {
        Some(c) => c,
        None => {
            let ids = app.store.task_device_ids(t.id.clone()).await?;
            if ids.is_empty() {
                return Ok(None);
            }
            let mut interval = 0;
            for id in &ids {
                let d = load_device(app, id).await?;
                let row = app
                    .store
                    .profile(ProfileKind::Device, d.device_profile_id.clone())
                    .await?;
                if let Ok(p) = DeviceProfile::parse(&row.lorawan) {
                    interval = interval.max(
                        p.uplink_interval_seconds
                            .unwrap_or(app.config.fuota.default_uplink_interval_secs),
                    );
                }
            }
            timing(app, t, s, interval)
        }
    };
    let now_us = unix_now_us();
    let interval_us = i64::from(control.interval_s.max(1)) * 1_000_000;
    // Setup still ahead: the slowest device's remaining steps up to its session
    // request, one uplink each (a clock resync costs one more).
    let remaining = if t.control.is_some() {
        app.store
            .fuota_devices(t.id.clone())
            .await?
            .iter()
            .filter(|d| !d.state.done)
            .map(|d| match d.state.step {
                Step::Clock => 4,
                Step::GroupSetup => 2,
                Step::FragSetup => 1,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    } else {
        4
    };
    let session_us = match t.start_time.as_deref().map(parse_time) {
        Some(Ok(at)) if t.control.is_some() => at,
        _ => now_us + remaining * interval_us + control.session_lead_us(),
    };
    let frags_us = runner::estimated_finish(s, session_us, s.plan.frags.total(), c.slots);
    let verify_steps = if control.expected_version.is_some() {
        4
    } else {
        1
    };
    let done_us = match t.frags_done_at.as_deref().map(parse_time) {
        Some(Ok(at)) => at.max(now_us),
        _ => frags_us,
    } + verify_steps * interval_us
        + if control.expected_version.is_some() {
            i64::from(control.reboot_countdown_s) * 1_000_000
        } else {
            0
        };
    Ok(Some(json!({
        "UplinkIntervalSeconds": control.interval_s,
        "UnicastAttempts": control.max_attempts,
        "SetupUplinkIntervals": 4,
        "SessionLeadS": control.session_lead_us() / 1_000_000,
        "SessionTime": t.start_time.as_ref().filter(|_| t.control.is_some()),
        "EstimatedSessionTime": format_unix_us(session_us),
        "FragmentsS": (frags_us - session_us) / 1_000_000,
        "VerificationUplinkIntervals": verify_steps,
        "EstimatedFuotaDone": format_unix_us(done_us),
    })))
}

/// `ListWirelessDevices?fuotaTaskId=…`: the task's devices with their status.
pub async fn task_device_list(app: &App, task_id: &str) -> Result<Vec<(String, Value)>, ApiError> {
    let t = app
        .store
        .fuota_task(task_id.to_string())
        .await
        .map_err(missing(format!("FUOTA task {task_id}")))?;
    let rows = app.store.fuota_devices(t.id.clone()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let d = load_device(app, &r.device_id).await?;
        let mut v = super::devices::list_entry(&d);
        v["FuotaDeviceStatus"] = json!(r.state.status.as_str());
        v["FuotaDeviceStatusReason"] = json!(r.state.reason);
        v["FuotaDeviceStatusAt"] = json!(r.status_at);
        v["FuotaStep"] = json!(r.state.step.as_str());
        if r.state.done && r.state.status != DeviceStatus::Successful && r.state.step != Step::Done
        {
            v["FuotaLeftOutAt"] = json!(r.state.step.as_str());
        }
        out.push((d.id.clone(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `ListWirelessDevices?multicastGroupId=…`.
pub async fn group_device_list(
    app: &App,
    group_id: &str,
) -> Result<Vec<(String, Value)>, ApiError> {
    let g = load_group(app, group_id).await?;
    let mut out = Vec::new();
    for id in app.store.group_device_ids(g.id.clone()).await? {
        let d = load_device(app, &id).await?;
        let mut v = super::devices::list_entry(&d);
        v["McGroupId"] = json!(u32::from(crate::fuota::control::MC_GROUP_ID) + 1);
        v["MulticastDeviceStatus"] = json!("Associated");
        out.push((d.id.clone(), v));
    }
    Ok(out)
}
