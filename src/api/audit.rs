//! `GET /audit-log`: the audit log, newest first, filtered by resource, resource
//! Id, actor and time (spec/operator-api.md "Audit log"), paged by entry Id.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiQuery, Page};
use crate::app::{parse_time, App};
use crate::store::{AuditEntry, AuditFilter};

pub fn routes() -> Router<App> {
    Router::new().route("/audit-log", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Query {
    resource: Option<String>,
    resource_id: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

pub fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "At": e.at,
        "Actor": e.actor,
        "Method": e.method,
        "Path": e.path,
        "Resource": e.resource,
        "ResourceId": e.resource_id,
        "Status": e.status,
        "Summary": e.summary,
    })
}

async fn list(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<Query>,
) -> Result<Json<Value>, ApiError> {
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| ApiError::validation(format!("{name}: {e}")))
    };
    let filter = AuditFilter {
        since_us: time("since", &q.since)?,
        until_us: time("until", &q.until)?,
        resource: q.resource,
        resource_id: q.resource_id,
        actor: q.actor,
    };
    let before = q
        .next_token
        .as_deref()
        .map(|t| {
            // `Page::answer` wraps the last entry's id (`super::encode_token`).
            super::decode_token(t)?.parse::<i64>().map_err(|_| {
                ApiError::validation("nextToken is not one this server gave; start without it")
            })
        })
        .transpose()?;
    let page = Page {
        max_results: q.max_results,
        next_token: None,
    };
    page.answer(
        "Entries",
        |_, n| app.store.list_audit(filter, before, n),
        |e: &AuditEntry| e.id.to_string(),
        entry_json,
    )
    .await
}
