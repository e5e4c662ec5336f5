//! `/access-keys`: SigV4 credentials for AWS clients (boto3, the aws CLI, the
//! SDKs). Create answers `AccessKeyId` and `SecretAccessKey` once; nothing shows
//! the secret again (list and get answer the Id, name, state and last use).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ACCESS_KEYS;
use super::{missing, ApiError, ApiJson, ApiQuery, ErrorBody, Page};
use crate::app::{now, App};
use crate::store::AccessKeyRow;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_one, patch, remove))
}

const KEY_ID: &str = "The key's AccessKeyId, or its name.";

/// `SKAK` and 16 characters of A-Z and 2-7, shaped like AWS's `AKIA...` Ids.
fn new_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let raw: [u8; 16] = rand::random();
    let tail: String = raw
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("SKAK{tail}")
}

/// 40 characters of base64, like AWS's secret keys (240 random bits).
fn new_secret_key() -> String {
    use base64::Engine;
    let b: [u8; 30] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn key_json(k: &AccessKeyRow) -> Value {
    json!({
        "AccessKeyId": k.id,
        "Name": k.name,
        "Status": if k.enabled { "Active" } else { "Inactive" },
        "CreatedAt": k.created_at,
        "LastUsedAt": k.last_used_at,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CreateAccessKeyRequest)]
struct CreateBody {
    /// 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.', '@'; the audit log
    /// names the key's calls by it.
    name: String,
}

/// Create a SigV4 access key; the secret is in this answer only.
#[utoipa::path(
    post,
    path = "/access-keys",
    operation_id = "CreateAccessKey",
    tag = ACCESS_KEYS,
    request_body = CreateBody,
    responses(
        (status = 201, description = "`AccessKeyId`, `SecretAccessKey` (shown this once), `Name`, `Status`, `CreatedAt`.", body = Object),
        (status = 400, description = "A bad name.", body = ErrorBody),
        (status = 409, description = "A key with that name exists.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<App>,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let name = b.name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.@".contains(&c))
    {
        return Err(ApiError::validation(
            "Name must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.', '@'",
        ));
    }
    let row = AccessKeyRow {
        id: new_key_id(),
        name,
        secret: new_secret_key(),
        enabled: true,
        created_at: now(),
        last_used_at: None,
    };
    app.store.insert_access_key(row.clone()).await?;
    tracing::info!(access_key = %row.id, name = %row.name, "access key created");
    let mut out = key_json(&row);
    // The only answer that carries the secret.
    out["SecretAccessKey"] = json!(row.secret);
    Ok((StatusCode::CREATED, Json(out)))
}

/// List the access keys (never their secrets).
#[utoipa::path(
    get,
    path = "/access-keys",
    operation_id = "ListAccessKeys",
    tag = ACCESS_KEYS,
    params(Page),
    responses(
        (status = 200, description = "`{\"AccessKeys\": [{\"AccessKeyId\", \"Name\", \"Status\", \"CreatedAt\", \"LastUsedAt\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad query parameter.", body = ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    page.answer(
        "AccessKeys",
        |after, n| app.store.list_access_keys(after, n),
        |k| k.id.clone(),
        key_json,
    )
    .await
}

/// A key by AccessKeyId or name.
async fn load(app: &App, id: &str) -> Result<AccessKeyRow, ApiError> {
    app.store
        .access_key(id.to_string())
        .await
        .map_err(missing(format!("access key {id}")))
}

/// Read an access key: name, status, last use.
#[utoipa::path(
    get,
    path = "/access-keys/{id}",
    operation_id = "GetAccessKey",
    tag = ACCESS_KEYS,
    params(("id" = String, Path, description = KEY_ID)),
    responses(
        (status = 200, description = "`AccessKeyId`, `Name`, `Status`, `CreatedAt`, `LastUsedAt`.", body = Object),
        (status = 404, description = "No such key.", body = ErrorBody),
    ),
)]
async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(key_json(&load(&app, &id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = UpdateAccessKeyRequest)]
struct PatchBody {
    /// `Active` or `Inactive`.
    status: String,
}

/// Enable or disable an access key.
#[utoipa::path(
    patch,
    path = "/access-keys/{id}",
    operation_id = "UpdateAccessKey",
    tag = ACCESS_KEYS,
    params(("id" = String, Path, description = KEY_ID)),
    request_body = PatchBody,
    responses(
        (status = 204, description = "Changed; a disabled key's requests get `AccessDeniedException`."),
        (status = 400, description = "A status other than `Active` or `Inactive`.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody),
    ),
)]
async fn patch(
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PatchBody>,
) -> Result<StatusCode, ApiError> {
    let enabled = match b.status.as_str() {
        "Active" => true,
        "Inactive" => false,
        other => {
            return Err(ApiError::validation(format!(
                "Status {:?} must be Active or Inactive",
                crate::logguard::Clipped(other)
            )))
        }
    };
    let k = load(&app, &id).await?;
    app.store
        .set_access_key_enabled(k.id.clone(), enabled)
        .await?;
    tracing::info!(access_key = %k.id, enabled, "access key changed");
    Ok(StatusCode::NO_CONTENT)
}

/// Delete an access key.
#[utoipa::path(
    delete,
    path = "/access-keys/{id}",
    operation_id = "DeleteAccessKey",
    tag = ACCESS_KEYS,
    params(("id" = String, Path, description = KEY_ID)),
    responses(
        (status = 204, description = "Deleted; its requests get `UnrecognizedClientException` from now on."),
        (status = 404, description = "No such key.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let k = load(&app, &id).await?;
    app.store.delete_access_key(k.id.clone()).await?;
    tracing::info!(access_key = %k.id, "access key deleted");
    Ok(StatusCode::NO_CONTENT)
}
