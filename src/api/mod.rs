//! The operator API, shaped like AWS IoT Wireless (spec/operator-api.md): routes,
//! bearer-token auth, the JSON body extractor that names bad fields, and paging.
//! Handlers live in one file per resource family.

mod blobs;
mod credentials;
mod devices;
mod error;
mod fuota;
mod fuota_devices;
mod gateways;
mod multicast;
mod tasks;

pub use error::{missing, ApiError};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::app::App;

pub fn router(app: App) -> Router {
    let authed = Router::new()
        .merge(gateways::routes())
        .merge(credentials::routes())
        .merge(blobs::routes())
        .merge(tasks::routes())
        .merge(multicast::routes())
        .merge(fuota::routes())
        .merge(devices::routes())
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(authed)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such API path; see the README's API reference",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this path does not take that method; see the README's API reference",
            )
        })
        .with_state(app)
}

/// Constant-time comparison, so response timing does not reveal a token prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(app): State<App>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let refused = match presented {
        Some(t) if app.api_tokens.iter().any(|k| same(k.as_bytes(), t.as_bytes())) => return next.run(req).await,
        Some(_) => "wrong API token",
        None => "missing `Authorization: Bearer <token>`; the token is in the state directory's api-token file unless [api] tokens sets it",
    };
    // Counted, and logged within the refusal budget: a token-guessing flood
    // must not become a flood of log lines. The token itself is never logged.
    let peer = req
        .extensions()
        .get::<crate::server::ConnInfo>()
        .map_or_else(|| [0, 0, 0, 0].into(), |c| c.remote.ip());
    if let Some(suppressed) = app.refusals.note(crate::logguard::Reason::ApiToken, peer) {
        tracing::warn!(%peer, method = %req.method(), path = %crate::logguard::Clipped(req.uri().path()), "API request refused: {refused}{suppressed}");
    }
    ApiError::new(StatusCode::UNAUTHORIZED, refused).into_response()
}

/// A JSON body, size-limited, whose parse errors become 400s naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        let limit = app.config.limits.api_body_bytes;
        let body: Body = req.into_body();
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
        // An empty body reads as `{}` (AWS's StartFuotaTask body is optional).
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::validation(format!("invalid request body: {e}")))
    }
}

/// Query parameters whose parse errors become 400s in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::validation(format!("invalid query string: {}", e.body_text())))
    }
}

/// `?maxResults=N&nextToken=T`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Page {
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
}

impl Page {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.max_results.unwrap_or(100) {
            n @ 1..=250 => Ok(n),
            n => Err(ApiError::validation(format!(
                "maxResults {n} is out of range 1..=250"
            ))),
        }
    }

    /// One page of a list: `fetch(after, n)` reads up to `n` rows after the row
    /// with Id `after` (the `NextToken`); the answer is `{key: [item(row)...]}`,
    /// plus `NextToken` (the last row's Id) when more remain.
    pub async fn answer<T, Fut>(
        self,
        key: &str,
        fetch: impl FnOnce(Option<String>, usize) -> Fut,
        id: impl Fn(&T) -> String,
        item: impl Fn(&T) -> serde_json::Value,
    ) -> Result<axum::Json<serde_json::Value>, ApiError>
    where
        Fut: std::future::Future<Output = Result<Vec<T>, crate::store::StoreError>>,
    {
        let limit = self.limit()?;
        // One row more than asked tells whether another page follows.
        let mut rows = fetch(self.next_token, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let items: Vec<serde_json::Value> = rows.iter().map(item).collect();
        let mut out = serde_json::json!({ key: items });
        if more {
            if let Some(last) = rows.last() {
                out["NextToken"] = serde_json::json!(id(last));
            }
        }
        Ok(axum::Json(out))
    }
}
