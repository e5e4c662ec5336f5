//! The audit log: every state-changing operator call (any method but GET, HEAD
//! and OPTIONS), from the API or the console, becomes one stored entry: when, who
//! (the `api::Caller`'s name, never a secret), the method and path, the resource
//! and its Id, the status and a short summary. One middleware does it, after the
//! auth layer and around every handler, so no handler can forget. The entry is
//! written before the answer goes out: an operator who got an answer finds the
//! entry.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;

use crate::api::Caller;
use crate::app::{now, App};
use crate::store::AuditEntry;

/// Answers up to this size are read for the created Id or the error message;
/// larger ones (none of the write routes sends one) pass through unread.
const READ_ANSWER_BYTES: u64 = 64 * 1024;

/// Paths and summaries are clipped to this many characters in an entry.
const MAX_TEXT: usize = 256;

/// Middleware: records a state-changing call once its handler has answered.
pub async fn record(State(app): State<App>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let actor = req
        .extensions()
        .get::<Caller>()
        .map_or_else(|| "(unknown)".to_string(), |c| c.name.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let resp = next.run(req).await;

    let (resource, path_id) = resource_of(route.as_deref(), &path);
    let status = resp.status();
    let (resp, answer) = read_small_json(resp).await;
    let created_id = answer
        .as_ref()
        .filter(|_| status.is_success())
        .and_then(|v| v.get("Id").and_then(|i| i.as_str()).map(String::from));
    let summary = match &answer {
        Some(v) if !status.is_success() => v
            .get("Message")
            .and_then(|m| m.as_str())
            .map_or_else(|| status.to_string(), clip),
        _ => summary_of(&method, status.is_success()).to_string(),
    };
    let at = now();
    let entry = AuditEntry {
        id: 0,
        at_us: crate::app::parse_time(&at).unwrap_or_default(),
        at,
        actor,
        method,
        path: clip(&path),
        resource,
        resource_id: path_id.or(created_id),
        status: status.as_u16(),
        summary,
    };
    let keep_from = entry.at_us - i64::from(app.config.audit.retention_days) * 86_400_000_000;
    if let Err(e) = app.store.insert_audit(entry, keep_from).await {
        // The change itself is done; losing its entry is an error for the log.
        tracing::error!("writing the audit log entry of {} failed: {e}", clip(&path));
    }
    resp
}

/// The resource (the route's first segment) and the Id in the path (the
/// segment where the route has its first `{…}`), e.g. `/wireless-gateways/{id}/tasks`
/// gives `wireless-gateways` and the gateway's Id.
fn resource_of(route: Option<&str>, path: &str) -> (String, Option<String>) {
    let template = route.unwrap_or(path);
    let resource = template
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let id = route.and_then(|r| {
        r.split('/')
            .zip(path.split('/'))
            .find(|(t, _)| t.starts_with('{'))
            .map(|(_, v)| clip(v))
    });
    (resource, id)
}

fn summary_of(method: &str, ok: bool) -> &'static str {
    match (method, ok) {
        ("POST", true) => "created or done",
        ("PUT" | "PATCH", true) => "updated",
        ("DELETE", true) => "deleted",
        (_, true) => "done",
        (_, false) => "refused",
    }
}

/// Reads a small JSON answer to look into it, and gives back an identical one.
async fn read_small_json(resp: Response) -> (Response, Option<serde_json::Value>) {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let small = resp
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= READ_ANSWER_BYTES);
    if !(json && small) {
        return (resp, None);
    }
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, READ_ANSWER_BYTES as usize).await {
        Ok(bytes) => {
            let v = serde_json::from_slice(&bytes).ok();
            (Response::from_parts(parts, Body::from(bytes)), v)
        }
        // A full body that fails to read cannot happen; answer without one.
        Err(_) => (Response::from_parts(parts, Body::empty()), None),
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_and_id_come_from_the_route() {
        assert_eq!(
            resource_of(
                Some("/wireless-gateways/{id}/tasks"),
                "/wireless-gateways/abc/tasks"
            ),
            ("wireless-gateways".into(), Some("abc".into()))
        );
        assert_eq!(
            resource_of(Some("/blobs"), "/blobs"),
            ("blobs".into(), None)
        );
        assert_eq!(resource_of(None, "/nope/x"), ("nope".into(), None));
    }
}
