//! The operator API, shaped like AWS IoT Wireless (spec/operator-api.md): routes,
//! bearer-token auth, the JSON body extractor that names bad fields, and paging.
//! Handlers live in one file per resource family.

mod access_keys;
mod audit;
pub mod auth;
mod blobs;
mod caller;
mod campaigns;
mod credentials;
mod devices;
mod error;
mod fleet;
mod fuota;
mod fuota_devices;
mod gateways;
mod idempotency;
mod multicast;
pub mod openapi;
mod refusals;
mod s3;
mod sigv4;
mod tags;
mod tasks;

pub use caller::Caller;
pub use error::{missing, ApiError, ErrorBody};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;

/// Which layers a module's routes run behind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// No token: the health check and the OpenAPI document.
    Open,
    /// The token check and the audit log, and `ClientRequestToken`
    /// idempotency for creates.
    Idempotent,
    /// The token check and the audit log.
    Token,
}

/// One module's routes, each registered with its OpenAPI operation.
pub(crate) struct Registered {
    pub name: &'static str,
    pub guard: Guard,
    pub routes: OpenApiRouter<App>,
}

/// Every route of the operator API (the S3 router aside, which `auth::front`
/// reaches by the signature's service), registered once for routing and for
/// `openapi::document`. A route added anywhere else would answer without being
/// documented: `tests/openapi.rs` scans `src/api/` for plain `.route(` calls.
pub(crate) fn registered() -> Vec<Registered> {
    let part = |name, guard, routes| Registered {
        name,
        guard,
        routes,
    };
    vec![
        part(
            "service",
            Guard::Open,
            OpenApiRouter::default()
                .routes(routes!(healthz))
                .routes(routes!(openapi::serve)),
        ),
        part("gateways", Guard::Idempotent, gateways::routes()),
        part("credentials", Guard::Idempotent, credentials::routes()),
        part("blobs", Guard::Idempotent, blobs::routes()),
        part("tasks", Guard::Idempotent, tasks::routes()),
        part("multicast", Guard::Idempotent, multicast::routes()),
        part("fuota", Guard::Idempotent, fuota::routes()),
        part("fuota_devices", Guard::Idempotent, fuota_devices::routes()),
        part("devices", Guard::Idempotent, devices::routes()),
        part("access_keys", Guard::Idempotent, access_keys::routes()),
        part("tags", Guard::Idempotent, tags::routes()),
        part("campaigns", Guard::Token, campaigns::routes()),
        part("fleet", Guard::Token, fleet::routes()),
        part("audit", Guard::Token, audit::routes()),
        part("refusals", Guard::Token, refusals::routes()),
        part(
            "metrics",
            Guard::Token,
            OpenApiRouter::default().routes(routes!(crate::metrics::serve)),
        ),
    ]
}

/// Liveness: `ok`.
///
/// Needs no token: a load balancer or systemd can call it.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "GetHealth",
    tag = openapi::SERVICE,
    security(()),
    responses((status = 200, description = "The server runs: `ok` and a newline.", content_type = "text/plain", body = String)),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

pub fn router(app: App) -> Router {
    let (mut open, mut idempotent, mut token) = (Router::new(), Router::new(), Router::new());
    for r in registered() {
        let (routes, _) = r.routes.split_for_parts();
        match r.guard {
            Guard::Open => open = open.merge(routes),
            Guard::Idempotent => idempotent = idempotent.merge(routes),
            Guard::Token => token = token.merge(routes),
        }
    }
    let authed = idempotent
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            idempotency::layer,
        ))
        .merge(token)
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            crate::audit::record,
        ))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    let s3 = s3::router(app.clone());
    let api = open
        .merge(authed)
        .merge(crate::console::router(app.clone()))
        // Not ResourceNotFoundException: botocore would read that as a missing
        // resource on a path that does exist.
        .fallback(|| async {
            ApiError::aws(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "no such API path; GET /openapi.json lists every path",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this path does not take that method; GET /openapi.json lists every path and its methods",
            )
        })
        .layer(middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::time_api,
        ))
        .with_state(app.clone());
    // `front` wraps the whole API as one service, so it runs before any routing
    // (a layer on the routes would run after the API's path was matched).
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state((app, s3), auth::front))
}

/// A list's NextToken: the last row's Id, wrapped so that a token this server did
/// not give is refused (AWS answers ValidationException) instead of being read as
/// a position.
fn encode_token(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("page:{id}"))
}

fn decode_token(t: &str) -> Result<String, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("page:").map(str::to_string))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "NextToken {} is not one this server gave; start the list again without it",
                crate::logguard::Clipped(t)
            ))
        })
}

/// An API timestamp as AWS's REST-JSON default timestamp format, epoch seconds
/// (the Rust SDK refuses a string where the model says `timestamp`).
pub fn epoch_seconds(rfc3339: &str) -> serde_json::Value {
    match crate::app::parse_time(rfc3339) {
        Ok(us) => serde_json::json!((us / 1000) as f64 / 1000.0),
        Err(_) => serde_json::Value::Null,
    }
}

/// Constant-time comparison, so response timing does not reveal a token prefix.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller a bearer token names, if it is one of the configured tokens.
pub(crate) fn token_caller(app: &crate::app::AppState, token: &str) -> Option<Caller> {
    app.api_tokens
        .iter()
        .position(|k| same(k.as_bytes(), token.as_bytes()))
        .map(|i| Caller::token(i, app.api_tokens.len()))
}

async fn require_token(State(app): State<App>, mut req: Request, next: Next) -> Response {
    // A SigV4 caller was verified by `auth::front`.
    if req
        .extensions()
        .get::<Caller>()
        .is_some_and(|c| c.access_key_id.is_some())
    {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let matched = presented.and_then(|t| token_caller(&app, t));
    let refused = match (matched, presented) {
        (Some(caller), _) => {
            // A Caller already there was put by the console, which calls this API
            // in-process for a signed-in session: the token is checked all the
            // same, and the audit log names the session.
            if req.extensions().get::<Caller>().is_none() {
                req.extensions_mut().insert(caller);
            }
            return next.run(req).await;
        }
        (None, Some(_)) => "wrong API token",
        (None, None) => "missing `Authorization: Bearer <token>`; the token is in the state directory's api-token file unless [api] tokens sets it",
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
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Entries per page, 1 to 250 (0 or none: 100).
    pub max_results: Option<usize>,
    /// The `NextToken` of the previous page.
    pub next_token: Option<String>,
}

impl Page {
    pub fn limit(&self) -> Result<usize, ApiError> {
        // AWS's model allows 0, which its SDKs send for "no preference".
        match self.max_results.unwrap_or(100) {
            0 => Ok(100),
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
        let after = self.next_token.as_deref().map(decode_token).transpose()?;
        // One row more than asked tells whether another page follows.
        let mut rows = fetch(after, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let items: Vec<serde_json::Value> = rows.iter().map(item).collect();
        let mut out = serde_json::json!({ key: items });
        if more {
            if let Some(last) = rows.last() {
                out["NextToken"] = serde_json::json!(encode_token(&id(last)));
            }
        }
        Ok(axum::Json(out))
    }
}
