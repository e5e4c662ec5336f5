//! `GET /audit-log`: the audit log, newest first, filtered by resource, resource
//! Id, actor and time (spec/operator-api.md "Audit log"), paged by entry Id.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::AUDIT;
use super::{ApiError, ApiQuery, ErrorBody, Page};
use crate::app::{parse_time, App};
use crate::store::{AuditEntry, AuditFilter};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default().routes(routes!(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Query {
    /// Only entries of this resource, the path's first segment (e.g. `fuota-tasks`).
    resource: Option<String>,
    /// Only entries about this resource Id.
    resource_id: Option<String>,
    /// Only calls by this caller (`api-token`, an access key's name, `console:…`).
    actor: Option<String>,
    /// RFC 3339: entries at or after.
    since: Option<String>,
    /// RFC 3339: entries before.
    until: Option<String>,
    /// Entries per page, 1 to 250 (0 or none: 100).
    max_results: Option<usize>,
    /// The `NextToken` of the previous page.
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

/// The audit log, newest first: every state-changing call.
#[utoipa::path(
    get,
    path = "/audit-log",
    operation_id = "ListAuditLog",
    tag = AUDIT,
    params(Query),
    responses(
        (status = 200, description = "`{\"Entries\": [{\"At\", \"Actor\", \"Method\", \"Path\", \"Resource\", \"ResourceId\", \"Status\", \"Summary\"}], \"NextToken\"?}`.", body = Object),
        (status = 400, description = "A bad time or query parameter.", body = ErrorBody),
    ),
)]
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
