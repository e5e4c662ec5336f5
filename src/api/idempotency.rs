//! `ClientRequestToken` idempotency for every create: a POST whose JSON body
//! carries a `ClientRequestToken` runs once per (path, token). The same token
//! with the same body (compared as parsed JSON, the token itself left out)
//! gets the first answer again; with another body, `ConflictException`. The
//! token is claimed before the create runs, so two copies sent at once cannot
//! both create (the second gets `ConflictException` while the first runs); a
//! create that fails gives its claim back so the client may retry. Records are
//! kept in the store (migration 0010) and survive restarts.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::app::App;

/// A claim that never finished is taken over after this long (the process
/// stopped mid-create).
const STALE_SECS: i64 = 300;

pub async fn layer(State(app): State<App>, req: Request, next: Next) -> Response {
    if !wants_check(&req) {
        return next.run(req).await;
    }
    match run(&app, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Only JSON POSTs: blob uploads stream and carry no token.
fn wants_check(req: &Request) -> bool {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| !v.starts_with("application/octet-stream"));
    req.method() == Method::POST && json && !req.uri().path().starts_with("/blobs")
}

async fn run(app: &App, req: Request, next: Next) -> Result<Response, ApiError> {
    let limit = app.config.limits.api_body_bytes;
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is over {limit} bytes"),
            ))
        }
        Err(e) => return Err(ApiError::validation(format!("reading body: {e}"))),
    };
    let token = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|mut v| {
            let t = v.as_object_mut()?.remove("ClientRequestToken")?;
            Some((t.as_str()?.to_string(), digest(&v)))
        });
    let req = Request::from_parts(parts, Body::from(bytes));
    let Some((token, hash)) = token else {
        return Ok(next.run(req).await);
    };
    if token.is_empty() || token.len() > 64 {
        return Err(ApiError::validation(
            "ClientRequestToken must be 1 to 64 characters",
        ));
    }
    let operation = req.uri().path().to_string();
    let now = time::OffsetDateTime::now_utc();
    let stale = crate::app::format_time(now - time::Duration::seconds(STALE_SECS));
    let earlier = app
        .store
        .claim_idempotency(
            operation.clone(),
            token.clone(),
            hash.clone(),
            crate::app::format_time(now),
            stale,
        )
        .await?;
    if let Some(e) = earlier {
        return replay(e, &hash);
    }
    let resp = next.run(req).await;
    if !resp.status().is_success() {
        app.store.release_idempotency(operation, token).await?;
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let answer = body
        .collect()
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .to_bytes();
    app.store
        .finish_idempotency(
            operation,
            token,
            parts.status.as_u16(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
        .await?;
    Ok(Response::from_parts(parts, Body::from(answer)))
}

/// The canonical hash of a body: serde_json's maps are sorted, so key order and
/// whitespace do not matter.
fn digest(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

fn replay(e: crate::store::IdempotentAnswer, hash: &str) -> Result<Response, ApiError> {
    if e.body_sha256 != hash {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ClientRequestToken was used before with a different request body; use a new token for a new request",
        ));
    }
    if e.status == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a request with this ClientRequestToken is still running; retry in a moment",
        ));
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::OK);
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        e.answer,
    )
        .into_response())
}
