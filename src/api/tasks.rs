//! `/wireless-gateway-task-definitions` (AWS's CreateWirelessGatewayTaskDefinition
//! body as it is, with the signature checked over the uploaded blob) and
//! `/wireless-gateways/{Id}/tasks` (a gateway's task: manual assignment, status
//! with attempts, deletion).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

use super::blobs::existing_blob;
use super::gateways::find;
use super::{missing, ApiError, ApiJson, ApiQuery, Page};
use crate::app::{new_id, now, App};
use crate::cups::answer::MAX_UPDATE_LEN;
use crate::firmware::range::VersionRange;
use crate::firmware::signature::{self, RawKey};
use crate::firmware::task::{Current, Status, Version};
use crate::store::{tags, DefinitionRow};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/wireless-gateway-task-definitions", get(list).post(create))
        .route(
            "/wireless-gateway-task-definitions/{id}",
            get(get_one).delete(remove),
        )
        .route(
            "/wireless-gateways/{id}/tasks",
            get(gateway_task).post(assign).delete(delete_task),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateBody {
    auto_create_tasks: bool,
    name: Option<String>,
    update: UpdateIn,
    #[serde(default, rename = "ClientRequestToken")]
    _client_request_token: Option<IgnoredAny>,
    /// Kept in the tags table (ListTagsForResource on the Arn).
    #[serde(default)]
    tags: Vec<tags::Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateIn {
    update_data_source: String,
    #[serde(default, rename = "UpdateDataRole")]
    _update_data_role: Option<IgnoredAny>,
    #[serde(rename = "LoRaWAN")]
    lorawan: LoRaWanUpdate,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LoRaWanUpdate {
    sig_key_crc: u32,
    update_signature: String,
    current_version: Option<VersionIn>,
    /// Ours, not AWS's: every version in a range instead of one exact version.
    current_version_range: Option<VersionIn>,
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

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    max_results: Option<usize>,
    next_token: Option<String>,
    task_definition_type: Option<String>,
}

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
    let page = Page {
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

async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.store
        .delete_definition(id.clone())
        .await
        .map_err(missing(format!("task definition {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssignBody {
    wireless_gateway_task_definition_id: String,
}

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
