//! `/wireless-gateway-task-definitions` (AWS's CreateWirelessGatewayTaskDefinition
//! body as it is, with the signature checked over the uploaded blob) and
//! `/wireless-gateways/{Id}/tasks` (a gateway's task: manual assignment, status
//! with attempts, deletion).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::blobs::existing_blob;
use super::gateways::{find, ID};
use super::openapi::TASKS;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::app::{new_id, now, App};
use crate::cups::answer::MAX_UPDATE_LEN;
use crate::firmware::range::VersionRange;
use crate::firmware::signature::{self, RawKey};
use crate::firmware::task::{Current, Status, Version};
use crate::store::{tags, DefinitionRow};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, remove))
        .routes(routes!(gateway_task, assign, delete_task))
}

const DEFINITION_ID: &str = "The task definition's Id.";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateWirelessGatewayTaskDefinitionRequest)]
struct CreateBody {
    /// Start a task by itself for every gateway that polls with `CurrentVersion`
    /// (false for a definition a campaign or a manual assignment uses).
    auto_create_tasks: bool,
    name: Option<String>,
    update: UpdateIn,
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
#[schema(as = TaskDefinitionUpdate)]
struct UpdateIn {
    /// A blob Id (`sha256:…`) or `s3://BUCKET/KEY`, resolved to the blob when
    /// the definition is created.
    update_data_source: String,
    /// AWS's IAM role: accepted and ignored.
    #[serde(default, rename = "UpdateDataRole")]
    #[schema(value_type = Option<String>)]
    _update_data_role: Option<IgnoredAny>,
    #[serde(rename = "LoRaWAN")]
    lorawan: LoRaWanUpdate,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = TaskDefinitionLoRaWAN)]
struct LoRaWanUpdate {
    /// The CRC32 of the signing key (`sig-N.key`) the gateways hold.
    sig_key_crc: u32,
    /// The DER ECDSA P-256 signature over the SHA-512 of the update, base64.
    update_signature: String,
    /// The one version the update applies to (this or `CurrentVersionRange`).
    current_version: Option<VersionIn>,
    /// Ours, not AWS's: every version in a range instead of one exact version
    /// (`PackageVersion` a semver range, `Station` and `Model` exact or a glob).
    current_version_range: Option<VersionIn>,
    /// The version the gateway reports once updated.
    update_version: Option<VersionIn>,
}

/// Exactly one of `CurrentVersion` and `CurrentVersionRange`; a range is parsed
/// here and refused with its field and the position of the error.
fn current_of(l: &LoRaWanUpdate) -> Result<Current, ApiError> {
    match (&l.current_version, &l.current_version_range) {
        (Some(v), None) => Ok(Current::Exact(v.clone().into())),
        (None, Some(r)) => VersionRange::parse(
            "LoRaWAN.CurrentVersionRange",
            &r.package_version,
            &r.station,
            &r.model,
        )
        .map(Current::Range)
        .map_err(|e| ApiError::validation(format!("{e}; a range looks like {{\"PackageVersion\": \">=1.0.0, <1.2.0\", \"Station\": \"2.0.*\", \"Model\": \"rpi\"}}"))),
        (Some(_), Some(_)) => Err(ApiError::validation(
            "LoRaWAN has both CurrentVersion and CurrentVersionRange; give one",
        )),
        (None, None) => Err(ApiError::validation(
            "LoRaWAN needs CurrentVersion (one exact version, as AWS) or CurrentVersionRange (a semver range of PackageVersion)",
        )),
    }
}

/// A gateway's firmware as its CUPS poll reports it.
#[derive(Deserialize, Clone, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = GatewayVersion)]
struct VersionIn {
    package_version: String,
    model: String,
    station: String,
}

impl From<VersionIn> for Version {
    fn from(v: VersionIn) -> Version {
        Version {
            station: v.station,
            package: Some(v.package_version),
            model: v.model,
        }
    }
}

pub(crate) fn version_json(v: &Version) -> Value {
    json!({"PackageVersion": v.package, "Model": v.model, "Station": v.station})
}

/// `CurrentVersion` or `CurrentVersionRange`, as the definition was created.
pub(crate) fn current_json(c: &Current) -> (&'static str, Value) {
    match c {
        Current::Exact(v) => ("CurrentVersion", version_json(v)),
        Current::Range(r) => (
            "CurrentVersionRange",
            json!({"PackageVersion": r.package(), "Model": r.model.as_str(), "Station": r.station.as_str()}),
        ),
    }
}

/// Create a firmware update definition.
///
/// AWS's CreateWirelessGatewayTaskDefinition body as it is. When a signing key
/// with `SigKeyCrc` is registered, `UpdateSignature` must verify over the blob,
/// or the definition is refused.
#[utoipa::path(
    post,
    path = "/wireless-gateway-task-definitions",
    operation_id = "CreateWirelessGatewayTaskDefinition",
    tag = TASKS,
    request_body = CreateBody,
    responses(
        (status = 201, description = "`{\"Id\", \"Arn\"}`.", body = Object),
        (status = 400, description = "A bad field, an unknown blob, a signature that does not verify, or no key to check it with (unless `[firmware] allow_unverified`).", body = ErrorBody),
        (status = 409, description = "The blob's file is missing.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    tags::validate(&b.tags).map_err(ApiError::validation)?;
    let l = b.update.lorawan;
    let current = current_of(&l)?;
    let blob = existing_blob(&app, "UpdateDataSource", &b.update.update_data_source).await?;
    if blob.size > MAX_UPDATE_LEN {
        return Err(ApiError::validation(format!(
            "the update is {} bytes; station reads at most {MAX_UPDATE_LEN}",
            blob.size
        )));
    }
    let der = signature::parse_signature_b64(&l.update_signature)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let keys: Vec<RawKey> = app
        .store
        .signing_keys()
        .await?
        .into_iter()
        .filter(|k| k.key_crc == l.sig_key_crc)
        .filter_map(|k| k.public_key.try_into().ok())
        .collect();
    let verified = if keys.is_empty() {
        if !app.config.firmware.allow_unverified {
            return Err(ApiError::validation(format!(
                "no signing key with SigKeyCrc {} is registered, so the signature cannot be checked; register the gateway's sig-N.key with POST /signing-keys (`stationkeeper keys register`), or set [firmware] allow_unverified = true",
                l.sig_key_crc
            )));
        }
        false
    } else {
        let path = app.blobs.path(&blob.id).expect("stored blob ids parse");
        let digest = tokio::task::spawn_blocking(move || signature::sha512_file(&path))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if !keys
            .iter()
            .any(|k| signature::verify_digest(k, &digest, &der))
        {
            return Err(ApiError::validation(format!(
                "UpdateSignature does not verify over blob {} with the signing key of CRC {} (ECDSA P-256, SHA-512); sign this exact file with the matching private key (`stationkeeper sign`)",
                blob.id, l.sig_key_crc
            )));
        }
        true
    };
    let id = new_id();
    app.store
        .insert_definition(DefinitionRow {
            id: id.clone(),
            name: b.name,
            auto_create: b.auto_create_tasks,
            blob_id: blob.id,
            blob_size: blob.size,
            sig_key_crc: l.sig_key_crc,
            signature: der,
            verified,
            current,
            update: l.update_version.map(Into::into),
            created_at: now(),
        })
        .await?;
    if !b.tags.is_empty() {
        app.store
            .tag(tags::TASK_DEFINITION, id.clone(), b.tags)
            .await?;
    }
    tracing::info!(definition = %id, verified, "task definition created");
    let arn = super::devices::arn(tags::TASK_DEFINITION, &id);
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Arn": arn}))))
}

/// `?maxResults&nextToken&taskDefinitionType=UPDATE` (AWS's only type).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Entries per page, 1 to 250 (0 or none: 100).
    max_results: Option<usize>,
    /// The `NextToken` of the previous page.
    next_token: Option<String>,
    /// `UPDATE`, AWS's only type.
    task_definition_type: Option<String>,
}

/// List the task definitions.
#[utoipa::path(
    get,
    path = "/wireless-gateway-task-definitions",
    operation_id = "ListWirelessGatewayTaskDefinitions",
    tag = TASKS,
    params(ListQuery),
    responses(
        (status = 200, description = "`{\"TaskDefinitions\": [{\"Id\", \"Arn\", \"Name\", \"LoRaWAN\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(t) = q.task_definition_type.as_deref().filter(|t| *t != "UPDATE") {
        return Err(ApiError::validation(format!(
            "taskDefinitionType {} must be UPDATE",
            crate::logguard::Clipped(t)
        )));
    }
    let page = super::Page {
        max_results: q.max_results,
        next_token: q.next_token,
    };
    page.answer(
        "TaskDefinitions",
        |after, n| app.store.list_definitions(after, n),
        |d| d.id.clone(),
        |d| {
            let (key, current) = current_json(&d.current);
            json!({"Id": d.id, "Arn": super::devices::arn(tags::TASK_DEFINITION, &d.id), "Name": d.name, "LoRaWAN": {
                key: current,
                "UpdateVersion": d.update.as_ref().map(version_json),
            }})
        },
    )
    .await
}

/// Read a task definition and how its tasks stand.
#[utoipa::path(
    get,
    path = "/wireless-gateway-task-definitions/{id}",
    operation_id = "GetWirelessGatewayTaskDefinition",
    tag = TASKS,
    params(("id" = String, Path, description = DEFINITION_ID)),
    responses(
        (status = 200, description = "The definition as created (`Update.UpdateDataSource` the blob Id), `UpdateSize`, `SignatureVerified`, `TaskCounts` by status, `CreatedAt`.", body = Object),
        (status = 404, description = "No such definition.", body = ErrorBody),
    ),
)]
async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let d = app
        .store
        .definition(id.clone())
        .await
        .map_err(missing(format!("task definition {id}")))?;
    let counts = app.store.task_counts(id).await?;
    let mut tc = serde_json::Map::new();
    for s in Status::ALL {
        let n = counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n);
        tc.insert(s.as_str().to_string(), json!(n));
    }
    use base64::Engine;
    let (key, current) = current_json(&d.current);
    Ok(Json(json!({
        "Id": d.id,
        "Arn": super::devices::arn(tags::TASK_DEFINITION, &d.id),
        "AutoCreateTasks": d.auto_create,
        "Name": d.name,
        "Update": {
            "UpdateDataSource": d.blob_id,
            "LoRaWAN": {
                "SigKeyCrc": d.sig_key_crc,
                "UpdateSignature": base64::engine::general_purpose::STANDARD.encode(&d.signature),
                key: current,
                "UpdateVersion": d.update.as_ref().map(version_json),
            }
        },
        "UpdateSize": d.blob_size,
        "SignatureVerified": d.verified,
        "TaskCounts": tc,
        "CreatedAt": d.created_at,
    })))
}

/// Delete a task definition.
#[utoipa::path(
    delete,
    path = "/wireless-gateway-task-definitions/{id}",
    operation_id = "DeleteWirelessGatewayTaskDefinition",
    tag = TASKS,
    params(("id" = String, Path, description = DEFINITION_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such definition.", body = ErrorBody),
        (status = 409, description = "It has open tasks.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.store
        .delete_definition(id.clone())
        .await
        .map_err(missing(format!("task definition {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateWirelessGatewayTaskRequest)]
struct AssignBody {
    wireless_gateway_task_definition_id: String,
}

/// Assign a task definition to this gateway.
///
/// A `PENDING` task, delivered at the gateway's next poll.
#[utoipa::path(
    post,
    path = "/wireless-gateways/{id}/tasks",
    operation_id = "CreateWirelessGatewayTask",
    tag = TASKS,
    params(("id" = String, Path, description = ID)),
    request_body = AssignBody,
    responses(
        (status = 201, description = "`{\"WirelessGatewayTaskDefinitionId\", \"Status\": \"PENDING\"}`.", body = Object),
        (status = 400, description = "No `WirelessGatewayTaskDefinitionId`.", body = ErrorBody),
        (status = 404, description = "No such gateway or definition.", body = ErrorBody),
        (status = 409, description = "The gateway has an open task.", body = ErrorBody),
    ),
)]
async fn assign(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssignBody>,
) -> Result<impl IntoResponse, ApiError> {
    let g = find(&app, &id, None).await?;
    let def_id = b.wireless_gateway_task_definition_id;
    app.store
        .definition(def_id.clone())
        .await
        .map_err(missing(format!("task definition {def_id}")))?;
    app.store
        .create_task(g.gw.id.clone(), def_id.clone(), now())
        .await?;
    app.metrics.task_transition("(new)", "PENDING");
    tracing::info!(gateway = %g.gw.eui, definition = %def_id, from = "(new)", to = "PENDING", "task transition");
    Ok((
        StatusCode::CREATED,
        Json(json!({"WirelessGatewayTaskDefinitionId": def_id, "Status": "PENDING"})),
    ))
}

/// The gateway's latest task, with its delivery attempts.
#[utoipa::path(
    get,
    path = "/wireless-gateways/{id}/tasks",
    operation_id = "GetWirelessGatewayTask",
    tag = TASKS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "`WirelessGatewayId`, `WirelessGatewayTaskDefinitionId`, `LastUplinkReceivedAt`, `TaskCreatedAt`, `Status`, `StatusReason`, `Attempts`.", body = Object),
        (status = 404, description = "No such gateway, or it has no task.", body = ErrorBody),
    ),
)]
async fn gateway_task(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let g = find(&app, &id, None).await?;
    let t = app
        .store
        .latest_task(g.gw.id.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task of wireless gateway {id}")))?;
    let attempts: Vec<_> = t
        .attempts
        .iter()
        .map(|a| json!({"At": a.at, "BytesSent": a.bytes_sent, "BytesTotal": a.bytes_total, "Outcome": a.outcome}))
        .collect();
    Ok(Json(json!({
        "WirelessGatewayId": g.gw.id,
        "WirelessGatewayTaskDefinitionId": t.definition_id,
        "LastUplinkReceivedAt": g.last_report.as_ref().map(|r| r.at.clone()),
        "TaskCreatedAt": t.created_at,
        "Status": t.status.as_str(),
        "StatusReason": t.status_reason,
        "Attempts": attempts,
    })))
}

/// Delete the gateway's latest task.
#[utoipa::path(
    delete,
    path = "/wireless-gateways/{id}/tasks",
    operation_id = "DeleteWirelessGatewayTask",
    tag = TASKS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such gateway, or it has no task.", body = ErrorBody),
    ),
)]
async fn delete_task(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let g = find(&app, &id, None).await?;
    let t = app
        .store
        .latest_task(g.gw.id.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task of wireless gateway {id}")))?;
    app.store.delete_task(t.id).await?;
    app.metrics.task_transition(t.status.as_str(), "(deleted)");
    tracing::info!(gateway = %g.gw.eui, definition = %t.definition_id, from = t.status.as_str(), to = "(deleted)", "task transition");
    Ok(StatusCode::NO_CONTENT)
}
