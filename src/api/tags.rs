//! AWS's Tags calls on `/tags?resourceArn=ARN`: TagResource (POST, `{"Tags": [...]}`),
//! UntagResource (DELETE, `&tagKeys=K` repeated) and ListTagsForResource (GET).
//! The ARN is the one this server synthesizes (`api::devices::arn`); any region
//! and account are accepted, the resource type and Id must name something that
//! exists.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::TAGS;
use super::{missing, ApiError, ApiJson, ErrorBody};
use crate::app::App;
use crate::store::{tags, ProfileKind, StoreError, Tag};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default().routes(routes!(list, tag, untag))
}

const RESOURCE_ARN: &str = "The resource's ARN as the create and get answers give it (`arn:aws:iotwireless:REGION:ACCOUNT:TYPE/ID`; any region and account).";

/// The resource type (a `tags::` constant) and Id of an ARN
/// `arn:aws:iotwireless:REGION:ACCOUNT:TYPE/ID`.
pub fn parse_arn(arn: &str) -> Result<(&'static str, String), ApiError> {
    let bad = || {
        ApiError::validation(format!(
            "resourceArn {} is not an ARN of this server (arn:aws:iotwireless:REGION:ACCOUNT:TYPE/ID, as the create and get answers give it)",
            crate::logguard::Clipped(arn)
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _, "iotwireless", _, _, resource] = parts[..] else {
        return Err(bad());
    };
    let (kind, id) = resource.split_once('/').ok_or_else(bad)?;
    let kind = [
        tags::GATEWAY,
        tags::TASK_DEFINITION,
        tags::MULTICAST_GROUP,
        tags::FUOTA_TASK,
        tags::DEVICE,
        tags::DEVICE_PROFILE,
        tags::SERVICE_PROFILE,
    ]
    .into_iter()
    .find(|k| *k == kind)
    .ok_or_else(bad)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((kind, id.to_string()))
}

/// Checks that the resource exists (tags on nothing would be kept forever).
async fn exists(app: &App, kind: &'static str, id: &str) -> Result<(), ApiError> {
    let id_s = id.to_string();
    let r: Result<(), StoreError> = match kind {
        tags::GATEWAY => app.store.gateway(id_s).await.map(drop),
        tags::TASK_DEFINITION => app.store.definition(id_s).await.map(drop),
        tags::MULTICAST_GROUP => app.store.group(id_s).await.map(drop),
        tags::FUOTA_TASK => app.store.fuota_task(id_s).await.map(drop),
        tags::DEVICE => app.store.device(id_s).await.map(drop),
        tags::DEVICE_PROFILE => app.store.profile(ProfileKind::Device, id_s).await.map(drop),
        _ => app
            .store
            .profile(ProfileKind::Service, id_s)
            .await
            .map(drop),
    };
    r.map_err(missing(format!("{kind} {id}")))
}

/// The query's `resourceArn` and every `tagKeys`.
fn query(raw: Option<String>) -> Result<(String, Vec<String>), ApiError> {
    let mut arn = None;
    let mut keys = Vec::new();
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(raw.as_deref().unwrap_or(""))?;
    for (k, v) in pairs {
        match k.as_str() {
            "resourceArn" => arn = Some(v),
            "tagKeys" => keys.push(v),
            other => {
                return Err(ApiError::validation(format!(
                    "unknown query parameter {}",
                    crate::logguard::Clipped(other)
                )))
            }
        }
    }
    let arn = arn.ok_or_else(|| ApiError::validation("resourceArn is required"))?;
    Ok((arn, keys))
}

/// `a=1&b=2&b=3` as pairs, percent-decoded (repeated keys kept).
fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ApiError::validation("invalid query string"))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::validation(format!("invalid query string: {}", e.body_text())))
}

/// List a resource's tags.
#[utoipa::path(
    get,
    path = "/tags",
    operation_id = "ListTagsForResource",
    tag = TAGS,
    params(("resourceArn" = String, Query, description = RESOURCE_ARN)),
    responses(
        (status = 200, description = "`{\"Tags\": [{\"Key\", \"Value\"}]}`.", body = Object),
        (status = 400, description = "No `resourceArn`, or not an ARN of this server.", body = ErrorBody),
        (status = 404, description = "No such resource.", body = ErrorBody),
    ),
)]
async fn list(State(app): State<App>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let (arn, _) = query(q)?;
    let (kind, id) = parse_arn(&arn)?;
    exists(&app, kind, &id).await?;
    Ok(Json(json!({"Tags": app.store.tags(kind, id).await?})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = TagResourceRequest)]
struct TagBody {
    tags: Vec<Tag>,
}

/// Add or change tags of a resource.
#[utoipa::path(
    post,
    path = "/tags",
    operation_id = "TagResource",
    tag = TAGS,
    params(("resourceArn" = String, Query, description = RESOURCE_ARN)),
    request_body = TagBody,
    responses(
        (status = 200, description = "`{}`.", body = Object),
        (status = 400, description = "A bad ARN, or tags against AWS's rules (at most 50, keys 1–128 characters not starting with `aws:`, values up to 256).", body = ErrorBody),
        (status = 404, description = "No such resource.", body = ErrorBody),
    ),
)]
async fn tag(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    ApiJson(b): ApiJson<TagBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (arn, _) = query(q)?;
    let (kind, id) = parse_arn(&arn)?;
    tags::validate(&b.tags).map_err(ApiError::validation)?;
    exists(&app, kind, &id).await?;
    app.store.tag(kind, id, b.tags).await?;
    Ok((StatusCode::OK, Json(json!({}))))
}

/// Remove tags from a resource.
#[utoipa::path(
    delete,
    path = "/tags",
    operation_id = "UntagResource",
    tag = TAGS,
    params(
        ("resourceArn" = String, Query, description = RESOURCE_ARN),
        ("tagKeys" = Vec<String>, Query, description = "A key to remove; repeat the parameter for more."),
    ),
    responses(
        (status = 200, description = "`{}`.", body = Object),
        (status = 400, description = "A bad ARN, or no `tagKeys`.", body = ErrorBody),
        (status = 404, description = "No such resource.", body = ErrorBody),
    ),
)]
async fn untag(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (arn, keys) = query(q)?;
    let (kind, id) = parse_arn(&arn)?;
    if keys.is_empty() {
        return Err(ApiError::validation("tagKeys is required (one or more)"));
    }
    exists(&app, kind, &id).await?;
    app.store.untag(kind, id, keys).await?;
    Ok((StatusCode::OK, Json(json!({}))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_this_server_parse() {
        let arn = super::super::devices::arn(tags::MULTICAST_GROUP, "abc");
        assert_eq!(
            parse_arn(&arn).unwrap(),
            (tags::MULTICAST_GROUP, "abc".into())
        );
        let other = "arn:aws:iotwireless:eu-west-1:123456789012:WirelessGateway/x";
        assert_eq!(parse_arn(other).unwrap(), (tags::GATEWAY, "x".into()));
        assert!(parse_arn("arn:aws:s3:::bucket").is_err());
        assert!(parse_arn("arn:aws:iotwireless:r:a:Nope/x").is_err());
        assert!(parse_arn("arn:aws:iotwireless:r:a:WirelessGateway/").is_err());
    }
}
