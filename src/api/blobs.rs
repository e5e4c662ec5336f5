//! `/blobs` (uploaded files, streamed to disk) and `/signing-keys` (the public
//! halves of firmware signing keys, as gateways hold them in `sig-N.key`).

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::BLOBS;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody, Page};
use crate::app::{new_id, now, App};
use crate::blobstore::{parse_id, UploadError};
use crate::firmware::signature;
use crate::store::{BlobRow, SigningKeyRow, StoreError};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, upload))
        .routes(routes!(get_one, remove))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(delete_key))
}

const BLOB_ID: &str = "The blob's Id, `sha256:` and 64 hex digits.";

fn blob_json(b: &BlobRow) -> Value {
    json!({"Id": b.id, "Size": b.size, "CreatedAt": b.created_at})
}

/// Upload a file (an update.bin or a FUOTA image).
///
/// Streamed to disk and hashed on the way; visible only once complete and
/// durable. The same bytes twice give the same Id.
#[utoipa::path(
    post,
    path = "/blobs",
    operation_id = "UploadBlob",
    tag = BLOBS,
    request_body(content = String, content_type = "application/octet-stream", description = "The file's bytes."),
    responses(
        (status = 201, description = "`{\"Id\": \"sha256:…\", \"Size\"}`.", body = Object),
        (status = 400, description = "The upload broke off or stalled.", body = ErrorBody),
        (status = 413, description = "Over `[limits] blob_bytes` (256 MiB by default).", body = ErrorBody),
    ),
)]
async fn upload(State(app): State<App>, req: Request) -> Result<impl IntoResponse, ApiError> {
    let cap = app.config.limits.blob_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "upload of {} bytes is over the {cap}-byte limit ([limits] blob_bytes)",
                declared.unwrap_or(0)
            ),
        ));
    }
    let idle = Duration::from_secs(app.config.limits.body_timeout_secs);
    let staged = app
        .blobs
        .receive(req.into_body(), cap, idle)
        .await
        .map_err(|e| match e {
            UploadError::TooLarge(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            UploadError::Io(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            _ => ApiError::validation(e.to_string()),
        })?;
    // The file and its row appear under the Id's lock: a delete of the same
    // bytes runs wholly before or wholly after.
    let (id, size) = (staged.id.clone(), staged.size);
    let lock = app.blobs.lock(&id).await;
    app.blobs.publish(staged, &lock).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing the upload: {e}"),
        )
    })?;
    let row = app
        .store
        .insert_blob(BlobRow {
            id: id.clone(),
            size,
            created_at: now(),
        })
        .await?;
    drop(lock);
    tracing::info!(blob = %id, size, "blob stored");
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": row.id, "Size": row.size})),
    ))
}

/// List the uploaded blobs.
#[utoipa::path(
    get,
    path = "/blobs",
    operation_id = "ListBlobs",
    tag = BLOBS,
    params(Page),
    responses(
        (status = 200, description = "`{\"Blobs\": [{\"Id\", \"Size\", \"CreatedAt\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "Blobs",
        |after, n| app.store.list_blobs(after, n),
        |b| b.id.clone(),
        blob_json,
    )
    .await
}

/// Read a blob's size and whether its file is there.
///
/// A blob whose file is gone (see the start-up log) says so in `Problem`, with
/// how to repair it.
#[utoipa::path(
    get,
    path = "/blobs/{id}",
    operation_id = "GetBlob",
    tag = BLOBS,
    params(("id" = String, Path, description = BLOB_ID)),
    responses(
        (status = 200, description = "`Id`, `Size`, `CreatedAt`, `FilePresent`, `Problem`?.", body = Object),
        (status = 404, description = "No such blob.", body = ErrorBody),
    ),
)]
async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let b = app
        .store
        .blob(id.clone())
        .await
        .map_err(missing(format!("blob {id}")))?;
    let mut v = blob_json(&b);
    let present = app.blobs.exists(&b.id).await;
    v["FilePresent"] = json!(present);
    if !present {
        tracing::warn!(blob = %b.id, "blob file is missing");
        v["Problem"] = json!(missing_file(&b.id));
    }
    Ok(Json(v))
}

fn missing_file(id: &str) -> String {
    format!("the file of blob {id} is missing from state_dir/blobs; delete the blob (DELETE /blobs/{id}) and upload the file again")
}

/// Delete a blob, its file and every S3 name of it.
#[utoipa::path(
    delete,
    path = "/blobs/{id}",
    operation_id = "DeleteBlob",
    tag = BLOBS,
    params(("id" = String, Path, description = BLOB_ID)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such blob.", body = ErrorBody),
        (status = 409, description = "A task definition or FUOTA task uses it.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    // Row and file go under the Id's lock, so an upload of the same bytes cannot
    // slip its row in between.
    let lock = app.blobs.lock(&id).await;
    app.store
        .delete_blob(id.clone())
        .await
        .map_err(missing(format!("blob {id}")))?;
    app.blobs.remove(&id, &lock).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("removing blob file: {e}"),
        )
    })?;
    tracing::info!(blob = %id, "blob deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks an `UpdateDataSource` and returns the blob it names.
/// The blob `field` names, or a 400 saying how to upload one.
pub(super) async fn existing_blob(app: &App, field: &str, id: &str) -> Result<BlobRow, ApiError> {
    let id = &super::s3::resolved(app, field, id).await?;
    if parse_id(id).is_none() {
        return Err(ApiError::validation(format!(
            "{field} {id:?} is not a blob Id or s3://BUCKET/KEY; upload the file with `stationkeeper blobs upload FILE` (POST /blobs) and use the \"sha256:...\" Id it returns, or with `aws s3 cp FILE s3://BUCKET/KEY`"
        )));
    }
    let blob = app.store.blob(id.to_string()).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::validation(format!(
            "{field} {id} names no uploaded blob; upload the file first (POST /blobs)"
        )),
        other => other.into(),
    })?;
    if !app.blobs.exists(id).await {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{field}: {}", missing_file(id)),
        ));
    }
    Ok(blob)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateSigningKeyRequest)]
struct KeyBody {
    name: String,
    /// A PEM public key (P-256), or the base64 of the 64 bytes of a `sig-N.key`.
    public_key: String,
}

/// Register a firmware signing key's public half.
///
/// Task definitions whose `SigKeyCrc` names it get their signature checked
/// over the update when they are created.
#[utoipa::path(
    post,
    path = "/signing-keys",
    operation_id = "CreateSigningKey",
    tag = BLOBS,
    request_body = KeyBody,
    responses(
        (status = 201, description = "`{\"Id\", \"KeyCrc\"}`: the CRC32 gateways name the key by.", body = Object),
        (status = 400, description = "Not a P-256 public key.", body = ErrorBody),
    ),
)]
async fn create_key(
    State(app): State<App>,
    ApiJson(b): ApiJson<KeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let raw = signature::parse_public_key(&b.public_key)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let id = new_id();
    let key_crc = signature::key_crc(&raw);
    app.store
        .insert_signing_key(SigningKeyRow {
            id: id.clone(),
            name: b.name,
            key_crc,
            public_key: raw.to_vec(),
            created_at: now(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "KeyCrc": key_crc})),
    ))
}

/// List the registered signing keys.
#[utoipa::path(
    get,
    path = "/signing-keys",
    operation_id = "ListSigningKeys",
    tag = BLOBS,
    params(Page),
    responses(
        (status = 200, description = "`{\"SigningKeys\": [{\"Id\", \"Name\", \"KeyCrc\", \"CreatedAt\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list_keys(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "SigningKeys",
        |after, n| app.store.list_signing_keys(after, n),
        |k| k.id.clone(),
        |k| json!({"Id": k.id, "Name": k.name, "KeyCrc": k.key_crc, "CreatedAt": k.created_at}),
    )
    .await
}

/// Delete a signing key.
#[utoipa::path(
    delete,
    path = "/signing-keys/{id}",
    operation_id = "DeleteSigningKey",
    tag = BLOBS,
    params(("id" = String, Path, description = "The key's Id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such key.", body = ErrorBody),
    ),
)]
async fn delete_key(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.store
        .delete_signing_key(id.clone())
        .await
        .map_err(missing(format!("signing key {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}
