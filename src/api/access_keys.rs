//! `/access-keys`: SigV4 credentials for AWS clients (boto3, the aws CLI, the
//! SDKs). Create answers `AccessKeyId` and `SecretAccessKey` once; nothing shows
//! the secret again (list and get answer the Id, name, state and last use).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{missing, ApiError, ApiJson, ApiQuery, Page};
use crate::app::{now, App};
use crate::store::AccessKeyRow;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/access-keys", get(list).post(create))
        .route(
            "/access-keys/{id}",
            get(get_one).patch(patch).delete(remove),
        )
}

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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateBody {
    name: String,
}

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

async fn get_one(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(key_json(&load(&app, &id).await?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PatchBody {
    /// `Active` or `Inactive`.
    status: String,
}

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

async fn remove(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let k = load(&app, &id).await?;
    app.store.delete_access_key(k.id.clone()).await?;
    tracing::info!(access_key = %k.id, "access key deleted");
    Ok(StatusCode::NO_CONTENT)
}
