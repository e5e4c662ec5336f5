//! The web console at `/console/` on the operator API listener: server-rendered
//! HTML (maud templates compiled into the binary, no JavaScript, nothing fetched
//! from elsewhere), SVG charts drawn on the server. It is a face at the edge: its
//! pages read through the API itself, called in-process (`api_call`), or through
//! the same store functions, never a second path to the data; its controls call
//! the API the same way, so the API's checks and the audit log apply (the
//! entry names the console session's caller).
//!
//! Sign-in takes an API token and opens a session (`session`): an HttpOnly,
//! SameSite=Strict cookie. Every POST must carry the session's CSRF token in its
//! form (`require_session` checks it, one place for every form); a request
//! without a live session is redirected to the sign-in page.

mod api_reference;
mod chart;
mod pages;
pub mod session;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

use crate::api::Caller;
use crate::app::App;
use session::{Session, COOKIE};

pub fn router(app: App) -> Router<App> {
    let signed_in = Router::new()
        .route("/console/", get(pages::fleet))
        .route("/console/wireless-gateways", get(pages::gateways))
        .route("/console/wireless-gateways/{id}", get(pages::gateway))
        .route("/console/fuota-tasks", get(pages::fuota_tasks))
        .route("/console/fuota-tasks/{id}", get(pages::fuota_task))
        .route("/console/fuota-tasks/{id}/start", post(pages::fuota_start))
        .route(
            "/console/fuota-tasks/{id}/delete",
            post(pages::fuota_delete),
        )
        .route("/console/wireless-devices", get(pages::devices))
        .route("/console/wireless-devices/{id}", get(pages::device))
        .route("/console/audit-log", get(pages::audit_log))
        .route("/console/api", get(api_reference::api_reference))
        // Campaign pages (issue 10) go here: /console/campaigns and
        // /console/campaigns/{id} with pause/resume/cancel/retry forms, reading
        // GET /campaigns… through `api_call` like the FUOTA pages.
        .route("/console/sign-out", post(sign_out))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_session));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .merge(signed_in)
}

/// The signed-in session of this request, for templates (its CSRF token).
#[derive(Clone)]
pub struct Signed(pub Session);

/// Middleware: a live session or a redirect to sign-in; for a POST, the form's
/// `csrf` field must be the session's.
async fn require_session(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(session) = session_id(&req).and_then(|id| app.console.get(&id)) else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let mut req = if req.method() == Method::POST {
        match check_csrf(&app, req, &session.csrf).await {
            Ok(r) => r,
            Err(resp) => return resp,
        }
    } else {
        req
    };
    req.extensions_mut().insert(Caller {
        name: format!("console:{}", session.caller.name),
        access_key_id: None,
    });
    req.extensions_mut().insert(Signed(session));
    next.run(req).await
}

fn session_id(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Reads the form body (within `[limits] api_body_bytes`), checks its `csrf`
/// field in constant time, and gives back a request with the same body.
async fn check_csrf(app: &App, req: Request, want: &str) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, app.config.limits.api_body_bytes)
        .await
        .map_err(|_| refused(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let given = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let same = given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "this form's CSRF token is not your session's; reload the page and submit again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        page_bare(
            "Refused",
            html! { p.error { (why) } p { a href="/console/" { "Back to the console" } } },
        ),
    )
        .into_response()
}

async fn sign_in_page() -> Markup {
    sign_in_form(None)
}

fn sign_in_form(error: Option<&str>) -> Markup {
    page_bare(
        "Sign in",
        html! {
            h1 { "Stationkeeper" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/console/sign-in" {
                label { "API token " input type="password" name="token" autofocus required; }
                " " button type="submit" { "Sign in" }
            }
            p.hint { "The token is in the state directory's api-token file unless [api] tokens sets it." }
        },
    )
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(State(app): State<App>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<crate::server::ConnInfo>()
        .map_or_else(|| [0, 0, 0, 0].into(), |c| c.remote.ip());
    let body = axum::body::to_bytes(req.into_body(), app.config.limits.api_body_bytes).await;
    let Some(f) = body
        .ok()
        .and_then(|b| serde_urlencoded::from_bytes::<SignInForm>(&b).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            sign_in_form(Some("the form needs a token")),
        )
            .into_response();
    };
    let Some(caller) = crate::api::token_caller(&app, f.token.trim()) else {
        // Counted with the API's token refusals; a guessing flood logs within budget.
        if let Some(suppressed) = app.refusals.note(crate::logguard::Reason::ApiToken, peer) {
            tracing::warn!(%peer, "console sign-in refused: wrong API token{suppressed}");
        }
        return (
            StatusCode::UNAUTHORIZED,
            sign_in_form(Some("wrong API token")),
        )
            .into_response();
    };
    let id = app.console.open(caller);
    let secure = if app.config.api.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        app.console.ttl().as_secs()
    );
    let mut resp = Redirect::to("/console/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn sign_out(State(app): State<App>, req: Request) -> Response {
    if let Some(id) = session_id(&req) {
        app.console.end(&id);
    }
    let mut resp = Redirect::to("/console/sign-in").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "sk_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

/// Calls the operator API in-process as the signed-in caller (the token is
/// checked as for any client; the audit log names the session). The answer's
/// JSON, or its status and message.
pub async fn api_call(
    app: &App,
    caller: &Caller,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, (StatusCode, String)> {
    let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let token = app
        .api_tokens
        .first()
        .ok_or_else(|| internal("no API token".into()))?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .map_err(|e| internal(e.to_string()))?;
    req.extensions_mut().insert(caller.clone());
    let resp = crate::api::router(app.clone())
        .oneshot(req)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(v)
    } else {
        let msg = v["Message"].as_str().unwrap_or("no message").to_string();
        Err((status, msg))
    }
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{background:#1d2330;padding:.6em 1em;display:flex;gap:1.2em;align-items:center}
nav a{color:#e8ecf3;text-decoration:none}nav form{margin-left:auto}
main{padding:1em 2em;max-width:1200px}
table{border-collapse:collapse;background:#fff;margin:.5em 0}
td,th{border:1px solid #d5d9e0;padding:.25em .6em;text-align:left;vertical-align:top;font-size:.92em}
th{background:#eef1f5}.error{color:#b00020}.hint{color:#5b6472}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #d5d9e0;padding:.6em 1em;min-width:9em}
.card b{font-size:1.6em;display:block}code{font-size:.9em}
";

/// A page for a signed-in operator: navigation, sign-out (with the CSRF token).
pub fn page(s: &Signed, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Stationkeeper" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/console/" { "Fleet" }
                    a href="/console/wireless-gateways" { "Gateways" }
                    a href="/console/fuota-tasks" { "FUOTA tasks" }
                    a href="/console/wireless-devices" { "Devices" }
                    a href="/console/audit-log" { "Audit log" }
                    a href="/console/api" { "API" }
                    form method="post" action="/console/sign-out" {
                        input type="hidden" name="csrf" value=(s.0.csrf);
                        button type="submit" { "Sign out (" (s.0.caller.name) ")" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn page_bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " · Stationkeeper" } style { (maud::PreEscaped(STYLE)) } }
            body { main { (body) } }
        }
    }
}

/// A hidden CSRF field for a control form.
pub fn csrf(s: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.0.csrf); }
}

/// Any API JSON as nested tables, so a page shows every field the API has.
pub fn json_table(v: &Value) -> Markup {
    match v {
        Value::Object(m) => html! {
            table { @for (k, v) in m { tr { th { (k) } td { (json_table(v)) } } } }
        },
        Value::Array(items) if items.is_empty() => html! { "(none)" },
        Value::Array(items) => html! { @for i in items { (json_table(i)) } },
        Value::Null => html! { "–" },
        Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}
