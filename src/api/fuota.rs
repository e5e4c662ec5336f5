//! `/fuota-tasks`: AWS's CreateFuotaTask fields (`FirmwareUpdateImage` names an
//! uploaded blob), association with a multicast group, the plan shown before and
//! while it runs, StartFuotaTask as `PUT /fuota-tasks/{Id}` with the refusals an
//! operator must see (fragments too big for the DR, too many fragments, a start in
//! the past, a session too short, a group without gateways or already busy),
//! progress per gateway, and deletion that stops sending at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use base64::Engine;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::blobs::existing_blob;
use super::gateways::RF_REGIONS;
use super::openapi::FUOTA;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody, Page};
use crate::app::{format_unix_us, new_id, now, parse_time, App};
use crate::eui::Eui;
use crate::fuota::codec::{
    frag_session_setup_req, redundancy_for_percent, FragPlan, FragSessionSetup,
};
use crate::fuota::group;
use crate::fuota::group::{MAX_START_AHEAD_US, START_GRACE_US};
use crate::fuota::job::{step, Event, Next, Status};
use crate::fuota::plan::PLAN_REGIONS;
use crate::fuota::runner::{self, Setup};
use crate::lorawan::gps::unix_now_us;
use crate::store::{FuotaTaskRow, GroupRow, ProgressRow, StartRequest};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, patch, start, remove))
        .routes(routes!(associate))
}

pub(super) const TASK_ID: &str = "The FUOTA task's Id.";

/// The largest FRMPayload any data rate carries (242) less the DataFragment header.
const MAX_FRAG_SIZE: u32 = 239;
const MAX_INTERVAL_MS: u32 = 3_600_000;

/// A FUOTA task's fields: all of them on create (`LoRaWAN.RfRegion` and
/// `FirmwareUpdateImage` required), those to change on update.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = FuotaTaskRequest)]
struct TaskIn {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "LoRaWAN")]
    lorawan: Option<RegionIn>,
    /// A blob Id (`sha256:…`) or `s3://BUCKET/KEY`.
    firmware_update_image: Option<String>,
    /// Extra coded fragments, 0 to 100 percent of the uncoded ones (default 10).
    redundancy_percent: Option<u32>,
    /// Up to 239; 0 or absent: the largest the session's data rate carries.
    fragment_size_bytes: Option<u32>,
    /// At least this many milliseconds between fragments (0 to 3,600,000).
    #[serde(rename = "FragmentIntervalMS")]
    fragment_interval_ms: Option<u32>,
    /// TS004's 4-byte descriptor, base64 (e.g. `AQIDBA==`).
    descriptor: Option<String>,
    /// Ours: the TS006 version devices must report after the reboot, a 32-bit
    /// number or a `0x…` hex string (null removes it).
    #[schema(value_type = Option<String>, example = "0x01020300")]
    expected_firmware_version: Option<Value>,
    /// AWS's IAM role: accepted and ignored.
    #[serde(default, rename = "FirmwareUpdateRole")]
    #[schema(value_type = Option<String>)]
    _firmware_update_role: Option<IgnoredAny>,
    /// Makes the create idempotent: the same token and body answer the first
    /// answer again.
    #[serde(default, rename = "ClientRequestToken")]
    #[schema(value_type = Option<String>)]
    _client_request_token: Option<IgnoredAny>,
    /// Accepted and ignored (tag the task with TagResource).
    #[serde(default, rename = "Tags")]
    #[schema(value_type = Option<Vec<Object>>)]
    _tags: Option<IgnoredAny>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = FuotaTaskLoRaWAN)]
struct RegionIn {
    /// EU868, US915, AU915, AS923-1…4, KR920, IN865 or EU433 (FUOTA needs the
    /// region's payload limits).
    rf_region: String,
}

/// Applies the given fields to `t` (creation starts from defaults).
fn apply(t: &mut FuotaTaskRow, b: TaskIn) -> Result<(), ApiError> {
    if let Some(n) = b.name {
        t.name = Some(n);
    }
    if let Some(d) = b.description {
        t.description = Some(d);
    }
    if let Some(l) = b.lorawan {
        t.rf_region = l.rf_region;
    }
    if let Some(i) = b.firmware_update_image {
        t.blob_id = i;
    }
    if let Some(r) = b.redundancy_percent {
        t.redundancy_percent = r;
    }
    if let Some(f) = b.fragment_size_bytes {
        t.frag_size = f;
    }
    if let Some(i) = b.fragment_interval_ms {
        t.interval_ms = i;
    }
    if let Some(v) = b.expected_firmware_version {
        t.expected_fw_version = match v {
            Value::Null => None,
            Value::Number(n) => Some(n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                || {
                    ApiError::validation(format!(
                        "ExpectedFirmwareVersion {n} is not a 32-bit unsigned number"
                    ))
                },
            )?),
            Value::String(text) => Some(
                crate::applayer::firmware::parse_version(&text).map_err(ApiError::validation)?,
            ),
            other => {
                return Err(ApiError::validation(format!(
                    "ExpectedFirmwareVersion must be a number or a \"0x…\" string, not {other}"
                )))
            }
        };
    }
    if let Some(d) = b.descriptor {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|_| {
                ApiError::validation("Descriptor must be base64 of 4 bytes (e.g. \"AQIDBA==\")")
            })?;
        t.descriptor = bytes.try_into().map_err(|b: Vec<u8>| {
            ApiError::validation(format!(
                "Descriptor is {} bytes; TS004 carries exactly 4 (base64 of 4 bytes, e.g. \"AQIDBA==\")",
                b.len()
            ))
        })?;
    }
    Ok(())
}

/// Checks the fields that do not depend on the group; returns the image size.
async fn validate(app: &App, t: &FuotaTaskRow) -> Result<u64, ApiError> {
    if !RF_REGIONS.contains(&t.rf_region.as_str()) {
        return Err(ApiError::validation(format!(
            "LoRaWAN.RfRegion {:?} is not one of {RF_REGIONS:?}",
            t.rf_region
        )));
    }
    if !PLAN_REGIONS.contains(&t.rf_region.as_str()) {
        return Err(ApiError::validation(format!(
            "LoRaWAN.RfRegion {}: FUOTA needs the region's downlink payload limits, known here for {PLAN_REGIONS:?} only (fuota.md §10.2)",
            t.rf_region
        )));
    }
    if t.blob_id.is_empty() {
        return Err(ApiError::validation(
            "FirmwareUpdateImage is required: the Id of an uploaded blob (POST /blobs)",
        ));
    }
    let blob = existing_blob(app, "FirmwareUpdateImage", &t.blob_id).await?;
    let cap = app.config.fuota.max_image_bytes;
    if blob.size > cap {
        return Err(ApiError::validation(format!(
            "FirmwareUpdateImage is {} bytes; FUOTA images are at most {cap} bytes ([fuota] max_image_bytes)",
            blob.size
        )));
    }
    if blob.size == 0 {
        return Err(ApiError::validation(format!(
            "FirmwareUpdateImage {} is empty (0 bytes); upload the firmware image itself",
            t.blob_id
        )));
    }
    if t.redundancy_percent > 100 {
        return Err(ApiError::validation(format!(
            "RedundancyPercent {} is out of range 0..=100",
            t.redundancy_percent
        )));
    }
    if t.frag_size > MAX_FRAG_SIZE {
        return Err(ApiError::validation(format!(
            "FragmentSizeBytes {} is more than any data rate carries; at most {MAX_FRAG_SIZE} (0 or absent: the largest the session's DR carries)",
            t.frag_size
        )));
    }
    if t.interval_ms > MAX_INTERVAL_MS {
        return Err(ApiError::validation(format!(
            "FragmentIntervalMS {} is out of range 0..={MAX_INTERVAL_MS}",
            t.interval_ms
        )));
    }
    if t.frag_size > 0 {
        let m = blob.size.div_ceil(u64::from(t.frag_size)) as usize;
        FragPlan::new(
            blob.size as usize,
            t.frag_size as usize,
            redundancy_for_percent(m, t.redundancy_percent),
        )
        .map_err(|e| {
            ApiError::validation(format!("{e}; use bigger fragments or less redundancy"))
        })?;
    }
    Ok(blob.size)
}

/// Create a FUOTA task for an uploaded image.
#[utoipa::path(
    post,
    path = "/fuota-tasks",
    operation_id = "CreateFuotaTask",
    tag = FUOTA,
    request_body = TaskIn,
    responses(
        (status = 201, description = "`{\"Id\", \"Arn\"}`.", body = Object),
        (status = 400, description = "A missing region or image, or a field out of range (the message names it).", body = ErrorBody),
        (status = 409, description = "The image's file is missing.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<TaskIn>,
) -> Result<impl IntoResponse, ApiError> {
    let mut t = FuotaTaskRow {
        id: new_id(),
        name: None,
        description: None,
        rf_region: String::new(),
        blob_id: String::new(),
        redundancy_percent: 10,
        frag_size: 0,
        interval_ms: 0,
        descriptor: [0; 4],
        group_id: None,
        status: Status::Pending,
        status_reason: None,
        start_time: None,
        fcnt_base: None,
        total_frags: None,
        started_at: None,
        finished_at: None,
        created_at: now(),
        expected_fw_version: None,
        control: None,
        frags_done_at: None,
    };
    if b.lorawan.is_none() {
        return Err(ApiError::validation("LoRaWAN.RfRegion is required"));
    }
    apply(&mut t, b)?;
    t.blob_id = super::s3::resolved(&app, "FirmwareUpdateImage", &t.blob_id).await?;
    validate(&app, &t).await?;
    app.store.insert_fuota_task(t.clone()).await?;
    tracing::info!(task = %t.id, image = %t.blob_id, "FUOTA task created");
    let arn = super::devices::arn(crate::store::tags::FUOTA_TASK, &t.id);
    Ok((StatusCode::CREATED, Json(json!({"Id": t.id, "Arn": arn}))))
}

async fn load(app: &App, id: &str) -> Result<FuotaTaskRow, ApiError> {
    app.store
        .fuota_task(id.to_string())
        .await
        .map_err(missing(format!("FUOTA task {id}")))
}

/// Change a FUOTA task that has not started.
#[utoipa::path(
    patch,
    path = "/fuota-tasks/{id}",
    operation_id = "UpdateFuotaTask",
    tag = FUOTA,
    params(("id" = String, Path, description = TASK_ID)),
    request_body = TaskIn,
    responses(
        (status = 204, description = "Changed."),
        (status = 400, description = "A field out of range, or a region other than its group's.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task is no longer `Pending`.", body = ErrorBody),
    ),
)]
async fn patch(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<TaskIn>,
) -> Result<StatusCode, ApiError> {
    let mut t = load(&app, &id).await?;
    apply(&mut t, b)?;
    t.blob_id = super::s3::resolved(&app, "FirmwareUpdateImage", &t.blob_id).await?;
    validate(&app, &t).await?;
    if let Some(g) = &t.group_id {
        let g = app.store.group(g.clone()).await?;
        same_region(&t, &g)?;
    }
    app.store.update_pending_fuota_task(t).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn same_region(t: &FuotaTaskRow, g: &GroupRow) -> Result<(), ApiError> {
    if t.rf_region != g.rf_region {
        return Err(ApiError::validation(format!(
            "multicast group {} is in {}, the task in {}; use a group of the task's region",
            g.id, g.rf_region, t.rf_region
        )));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = AssociateMulticastGroupWithFuotaTaskRequest)]
struct AssociateBody {
    multicast_group_id: String,
}

/// Send the task through a multicast group.
#[utoipa::path(
    put,
    path = "/fuota-tasks/{id}/multicast-group",
    operation_id = "AssociateMulticastGroupWithFuotaTask",
    tag = FUOTA,
    params(("id" = String, Path, description = TASK_ID)),
    request_body = AssociateBody,
    responses(
        (status = 204, description = "Associated."),
        (status = 400, description = "The group is in another region.", body = ErrorBody),
        (status = 404, description = "No such task or group.", body = ErrorBody),
        (status = 409, description = "The task is no longer `Pending`.", body = ErrorBody),
    ),
)]
async fn associate(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssociateBody>,
) -> Result<StatusCode, ApiError> {
    let mut t = load(&app, &id).await?;
    let g = app
        .store
        .group(b.multicast_group_id.clone())
        .await
        .map_err(missing(format!("multicast group {}", b.multicast_group_id)))?;
    same_region(&t, &g)?;
    t.group_id = Some(g.id);
    app.store.update_pending_fuota_task(t).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the plan needs to know of the carrying gateways right now.
pub(super) struct Carriers {
    pub count: usize,
    /// Slots per round: one shared by the GPS gateways, one for each other.
    pub slots: usize,
}

async fn carriers(app: &App, t: &FuotaTaskRow, g: &GroupRow) -> Result<Carriers, ApiError> {
    let euis: Vec<Eui> = if t.status == Status::Pending {
        app.store
            .group_gateways(g.id.clone())
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    } else {
        app.store
            .fuota_progress(t.id.clone())
            .await?
            .into_iter()
            .map(|p| p.eui)
            .collect()
    };
    let gps = euis
        .iter()
        .filter(|e| {
            app.lns
                .connection(**e)
                .is_some_and(|c| c.stats.gps && c.stats.anchored)
        })
        .count();
    Ok(Carriers {
        count: euis.len(),
        slots: usize::from(gps > 0) + (euis.len() - gps),
    })
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn plan_json(s: &Setup, c: &Carriers, start_us: i64, end_us: i64) -> Value {
    let p = &s.plan;
    let finish = runner::estimated_finish(s, start_us, p.frags.total(), c.slots);
    let mut v = json!({
        "UncodedFragments": p.frags.nb_frag,
        "CodedFragments": p.frags.redundancy,
        "TotalFragments": p.frags.total(),
        "FragmentSizeBytes": p.frags.frag_size,
        "PaddingBytes": p.frags.padding,
        "BytesPerFrame": p.phy_payload_len,
        "TimeOnAirMs": p.time_on_air.as_secs_f64() * 1000.0,
        "TotalAirTimeS": secs(p.total_air_time),
        "DutyCyclePercent": f64::from(p.duty_cycle_permille) / 10.0,
        "FrameSpacingMs": p.frame_spacing.as_secs_f64() * 1000.0,
        "MinWallTimeS": secs(p.min_wall_time),
        "Gateways": c.count,
        "SlotsPerRound": c.slots,
        "WallTimeS": secs(std::time::Duration::from_micros((finish - start_us).max(0) as u64)),
        "DlDr": s.session.dl_dr,
        "DlFreq": s.session.dl_freq,
        "DlClass": s.class.as_str(),
        "SessionStartTime": format_unix_us(s.session.start_us),
        "SessionEndTime": format_unix_us(s.session.end_us()),
        "SessionTimeOut": s.session.time_out,
        "EstimatedStart": format_unix_us(start_us),
        "EstimatedFinish": format_unix_us(finish),
        "FitsSession": finish <= end_us,
    });
    let needed_s = (finish - s.session.start_us.min(start_us)).max(1) as f64 / 1e6;
    match s.session.periodicity {
        None => {
            v["ClassCTimeOutNeeded"] = json!((0u8..=15).find(|t| f64::from(1u32 << t) >= needed_s))
        }
        Some(p) => {
            let beacons = (needed_s / 128.0).ceil() as u64;
            v["ClassBPingSlotsPerBeacon"] = json!(1u32 << (7 - p));
            v["ClassBBeaconPeriods"] = json!(beacons);
            v["ClassBTimeOutNeeded"] = json!((0u8..=15).find(|t| (1u64 << t) >= beacons));
        }
    }
    v
}

fn progress_json(app: &App, t: &FuotaTaskRow, rows: &[ProgressRow]) -> Value {
    let total = t.total_frags.unwrap_or(0);
    let sum = |f: fn(&ProgressRow) -> u32| rows.iter().map(f).sum::<u32>();
    let mut v = json!({
        "FragmentsPerGateway": total,
        "Sent": sum(|r| r.sent),
        "Confirmed": sum(|r| r.confirmed),
        "Failed": sum(|r| r.failed),
        "Gateways": rows.iter().map(|r| json!({
            "WirelessGatewayId": r.gateway_id,
            "GatewayEui": r.eui.to_string(),
            "NextFragment": r.next_n.min(total + 1),
            "Done": r.next_n > total,
            "Sent": r.sent,
            "Confirmed": r.confirmed,
            "Failed": r.failed,
            "LastSentAt": r.last_sent_at,
            "ConnectionStatus": if app.lns.connection(r.eui).is_some() { "Connected" } else { "Disconnected" },
        })).collect::<Vec<_>>(),
    });
    if let Some(live) = app.fuota.live(&t.id) {
        v["EstimatedFinish"] = json!(format_unix_us(live.eta_us));
        v["SlotsPerRound"] = json!(live.slots);
    }
    v
}

/// Read a FUOTA task with its plan, device setup and progress.
#[utoipa::path(
    get,
    path = "/fuota-tasks/{id}",
    operation_id = "GetFuotaTask",
    tag = FUOTA,
    params(("id" = String, Path, description = TASK_ID)),
    responses(
        (status = 200, description = "AWS's fields (`Id`, `Arn`, `Name`, `Status`, `LoRaWAN`, `FirmwareUpdateImage`, `RedundancyPercent`, `FragmentSizeBytes`, `FragmentIntervalMS`, `Descriptor`, `CreatedAt`), `MulticastGroupId`, `Plan` or `PlanProblem`, `DeviceSetup`, `ControlPlan`, `DeviceStatusCounts`, `Progress`.", body = Object),
        (status = 404, description = "No such task.", body = ErrorBody),
    ),
)]
async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let t = load(&app, &id).await?;
    let mut out = json!({
        "Id": t.id,
        "Arn": super::devices::arn(crate::store::tags::FUOTA_TASK, &t.id),
        "Name": t.name,
        "Description": t.description,
        "Status": t.status.as_str(),
        "LoRaWAN": {"RfRegion": t.rf_region, "StartTime": t.start_time},
        "FirmwareUpdateImage": t.blob_id,
        "RedundancyPercent": t.redundancy_percent,
        "FragmentSizeBytes": t.frag_size,
        "FragmentIntervalMS": t.interval_ms,
        "Descriptor": base64::engine::general_purpose::STANDARD.encode(t.descriptor),
        "MulticastGroupId": t.group_id,
        "CreatedAt": super::epoch_seconds(&t.created_at),
    });
    for (k, v) in [
        ("StatusReason", &t.status_reason),
        ("StartedAt", &t.started_at),
        ("FinishedAt", &t.finished_at),
    ] {
        if let Some(v) = v {
            out[k] = json!(v);
        }
    }
    if let Some(v) = t.expected_fw_version {
        out["ExpectedFirmwareVersion"] = json!(format!("0x{v:08x}"));
    }
    super::fuota_devices::describe(&app, &t, &mut out).await?;
    match plan_for(&app, &t).await {
        Ok((s, c, start, end)) => {
            out["Plan"] = plan_json(&s, &c, start, end);
            out["DeviceSetup"] = device_setup(&s, &t);
            if let Some(p) = super::fuota_devices::control_plan(&app, &t, &s, &c).await? {
                out["ControlPlan"] = p;
            }
            if c.count == 0 {
                out["PlanProblem"] = json!(no_gateways(&t));
            }
        }
        Err(e) => {
            out["Plan"] = Value::Null;
            out["PlanProblem"] = json!(e.message);
        }
    }
    if t.status != Status::Pending {
        let rows = app.store.fuota_progress(t.id.clone()).await?;
        out["Progress"] = progress_json(&app, &t, &rows);
    }
    Ok(Json(out))
}

/// The task's setup and carriers, its start (given, or the earliest possible) and
/// its session's end, or why there is no plan yet.
async fn plan_for(app: &App, t: &FuotaTaskRow) -> Result<(Setup, Carriers, i64, i64), ApiError> {
    let gid = t.group_id.clone().ok_or_else(|| {
        ApiError::validation(format!(
            "FUOTA task {} has no multicast group; PUT /fuota-tasks/{}/multicast-group {{\"MulticastGroupId\": ...}} first",
            t.id, t.id
        ))
    })?;
    let g = app.store.group(gid).await?;
    let blob = existing_blob(app, "FirmwareUpdateImage", &t.blob_id).await?;
    let s = runner::setup(t, &g, blob.size as usize).map_err(ApiError::validation)?;
    let c = carriers(app, t, &g).await?;
    let start = match &t.start_time {
        Some(st) => parse_time(st).map_err(ApiError::validation)?,
        None => s.session.start_us.max(unix_now_us()),
    };
    let end = s.session.end_us();
    Ok((s, c, start, end))
}

/// What the operator's network server tells each device before the session, as
/// TS004/TS005 command bytes (hex), for multicast group slot 0 and fragmentation
/// session 0. McGroupSetupReq is per device (its McKey is encrypted with the
/// device's own key), so it is not here.
fn device_setup(s: &Setup, t: &FuotaTaskRow) -> Value {
    let frag = FragSessionSetup::for_plan(&s.plan.frags, 0, 0b0001, 0, t.descriptor);
    let session = if s.session.periodicity.is_some() {
        "McClassBSessionReq"
    } else {
        "McClassCSessionReq"
    };
    json!({
        "McGroupId": 0,
        "FragIndex": 0,
        "FragSessionSetupReq": frag_session_setup_req(&frag).map(hex::encode).ok(),
        session: hex::encode(group::session_req(&s.session, 0)),
    })
}

fn no_gateways(t: &FuotaTaskRow) -> String {
    let g = t.group_id.clone().unwrap_or_default();
    format!(
        "multicast group {g} has no gateways: register gateways in {} or choose some with PUT /multicast-groups/{g}/gateways",
        t.rf_region
    )
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = StartFuotaTaskRequest)]
struct StartBody {
    #[serde(rename = "LoRaWAN")]
    lorawan: Option<StartIn>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = FuotaTaskStart)]
struct StartIn {
    /// RFC 3339, within the group's session and at most 30 days ahead; absent:
    /// as soon as the session allows.
    start_time: Option<String>,
}

/// Start a FUOTA task.
///
/// Every check an operator must see happens here: fragments too big for the
/// data rate, too many fragments, a start in the past, a session too short, a
/// group without gateways or already busy, devices that cannot take part.
#[utoipa::path(
    put,
    path = "/fuota-tasks/{id}",
    operation_id = "StartFuotaTask",
    tag = FUOTA,
    params(("id" = String, Path, description = TASK_ID)),
    request_body(content = Option<StartBody>, description = "Optional: without a body (or `StartTime`) the task starts as soon as the session allows."),
    responses(
        (status = 204, description = "Started (`FuotaSession_Waiting`)."),
        (status = 400, description = "A plan that cannot work (the message says why and what to change).", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task is not `Pending`, or its group is busy.", body = ErrorBody),
    ),
)]
async fn start(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StartBody>,
) -> Result<StatusCode, ApiError> {
    let t = load(&app, &id).await?;
    step(t.status, Event::Start).map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    validate(&app, &t).await?;
    let (s, c, earliest, end) = plan_for(&app, &t).await?;
    if c.count == 0 {
        return Err(ApiError::validation(no_gateways(&t)));
    }
    let given = b.lorawan.and_then(|l| l.start_time);
    let devices = app.store.task_device_ids(t.id.clone()).await?;
    if !devices.is_empty() {
        return super::fuota_devices::start(&app, &t, &s, &c, devices, given).await;
    }
    let now_us = unix_now_us();
    let start_us = match given {
        Some(st) => {
            parse_time(&st).map_err(|e| ApiError::validation(format!("LoRaWAN.StartTime {e}")))?
        }
        None => earliest,
    };
    if start_us < now_us - START_GRACE_US {
        return Err(ApiError::validation(
            "LoRaWAN.StartTime is in the past; give a time in the future, or leave it out to start as soon as the session allows",
        ));
    }
    if start_us > now_us + MAX_START_AHEAD_US {
        return Err(ApiError::validation(
            "LoRaWAN.StartTime is more than 30 days ahead",
        ));
    }
    if start_us < s.session.start_us {
        return Err(ApiError::validation(format!(
            "LoRaWAN.StartTime is before the multicast session starts ({}); devices only listen from then",
            format_unix_us(s.session.start_us)
        )));
    }
    let start_us = start_us.max(now_us);
    let finish = runner::estimated_finish(&s, start_us, s.plan.frags.total(), c.slots);
    if finish > end {
        let needed = (finish - s.session.start_us) as f64 / 1e6;
        return Err(ApiError::validation(format!(
            "the session cannot fit: {} fragments through {} gateway(s) ({} slot(s) per round) need until {}, but the multicast session ends at {} (TimeOut {}); raise the group's SessionTimeout to at least {:.0} s, start earlier, or use a faster DlDr, bigger fragments or less redundancy",
            s.plan.frags.total(),
            c.count,
            c.slots,
            format_unix_us(finish),
            format_unix_us(end),
            s.session.time_out,
            needed.ceil()
        )));
    }
    let gateway_ids = app
        .store
        .group_gateways(t.group_id.clone().unwrap_or_default())
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    app.store
        .start_fuota_task(StartRequest {
            task_id: id.clone(),
            start_time: Some(format_unix_us(start_us)),
            total_frags: s.plan.frags.total(),
            gateway_ids,
            started_at: now(),
            device_ids: Vec::new(),
            control: None,
        })
        .await?;
    tracing::info!(task = %id, from = "Pending", to = "FuotaSession_Waiting", frames = s.plan.frags.total(), gateways = c.count, "FUOTA task transition");
    app.fuota.wake();
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a FUOTA task; a running one stops sending at once.
#[utoipa::path(
    delete,
    path = "/fuota-tasks/{id}",
    operation_id = "DeleteFuotaTask",
    tag = FUOTA,
    params(("id" = String, Path, description = TASK_ID)),
    responses(
        (status = 204, description = "Deleted, or `Delete_Waiting` while the sending stops."),
        (status = 404, description = "No such task.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let next = app
        .store
        .delete_fuota_task(id.clone())
        .await
        .map_err(missing(format!("FUOTA task {id}")))?;
    if next == Next::To(Status::DeleteWaiting) {
        app.fuota.stop(&id);
    }
    tracing::info!(task = %id, "FUOTA task deleted by the operator");
    Ok(StatusCode::NO_CONTENT)
}

/// List the FUOTA tasks.
#[utoipa::path(
    get,
    path = "/fuota-tasks",
    operation_id = "ListFuotaTasks",
    tag = FUOTA,
    params(Page),
    responses(
        (status = 200, description = "`{\"FuotaTaskList\": [{\"Id\", \"Arn\", \"Name\", \"Status\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "FuotaTaskList",
        |after, n| app.store.list_fuota_tasks(after, n),
        |t| t.id.clone(),
        |t| json!({"Id": t.id, "Arn": super::devices::arn(crate::store::tags::FUOTA_TASK, &t.id), "Name": t.name, "Status": t.status.as_str()}),
    )
    .await
}
