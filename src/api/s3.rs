//! An S3-compatible object API for update files and FUOTA images, path-style
//! (`/BUCKET/KEY`, what AWS clients send to an IP-address endpoint), on the operator
//! listener. Only requests signed with SigV4 for the service `s3` come here
//! (`auth::front` routes them), so S3 paths never shadow the API's own.
//!
//! An object is a name for a blob: `PutObject` streams the body into the blob store
//! (same cap and atomic write as `POST /blobs`) and names the blob `bucket/key`;
//! `UpdateDataSource`/`FirmwareUpdateImage` of `s3://bucket/key` resolve through
//! `resolve`. `DeleteObject` removes the name only (a task definition may still
//! use the bytes; `DELETE /blobs/{Id}` removes them). Supported: CreateBucket,
//! HeadBucket, ListBuckets, PutObject (plain or `aws-chunked` with an unsigned
//! trailer), GetObject, HeadObject, DeleteObject, ListObjectsV2. Not supported
//! (501 NotImplemented): multipart uploads, copies, presigned URLs.

// Early returns carry the finished S3 error answer; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Signed, UNSIGNED_PAYLOAD};
use super::openapi::S3;
use super::ApiError;
use crate::app::{now, App};
use crate::blobstore::UploadError;
use crate::store::{BlobRow, S3Object, StoreError};

mod chunked;

/// The S3 operations, each registered with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::default()
        .routes(routes!(list_buckets))
        .routes(routes!(list_objects, create_bucket, head_bucket))
        .routes(routes!(
            get_object,
            put_object,
            head_object,
            delete_object,
            not_implemented
        ))
}

pub fn router(app: App) -> Router {
    let (routes, _) = routes().split_for_parts();
    let s3 = routes
        .fallback(|| async { unsupported() })
        .method_not_allowed_fallback(wrong_method)
        .with_state(app);
    // A layer on a router runs after its routing, so the rewrite wraps it.
    Router::new()
        .fallback_service(s3)
        .layer(axum::middleware::map_request(bucket_slash))
}

fn unsupported() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        "this S3 operation is not supported here; see docs/src/aws.md",
    )
}

/// A path we serve with a method we do not. S3 sends `POST` only for operations
/// (DeleteObjects, multipart uploads, restores): those are unsupported here, as
/// S3 would say of an operation it lacks. Any other method is S3's own
/// `MethodNotAllowed`.
async fn wrong_method(method: axum::http::Method) -> Response {
    if method == axum::http::Method::POST {
        return unsupported();
    }
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("{method} is not allowed against this resource; buckets take GET, HEAD and PUT, objects GET, HEAD, PUT and DELETE"),
    )
}

/// The SDKs address a bucket as `/bucket/`: the same bucket operations as
/// `/bucket` (S3 has no object with an empty key).
async fn bucket_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(bucket) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/'))
        .filter(|b| !b.is_empty() && !b.contains('/'))
    else {
        return req;
    };
    let pq = match req.uri().query() {
        Some(q) => format!("/{bucket}?{q}"),
        None => format!("/{bucket}"),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

const BUCKET: &str =
    "The bucket: 3 to 63 characters of a-z, 0-9, '.' and '-'. `/BUCKET/` is the same as `/BUCKET`.";
const KEY: &str = "The object key; it may contain '/'.";

/// S3's XML error answer.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        xml(code),
        xml(message)
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_ok(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("S3 request failed: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "internal error; see the server log",
    )
}

/// S3's bucket naming rules (3–63 of a-z, 0-9, '.', '-'; starts and ends with a
/// letter or digit).
fn check_bucket(b: &str) -> Result<(), Response> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            "bucket names are 3 to 63 characters of a-z, 0-9, '.' and '-'",
        ))
    }
}

fn etag(blob_id: &str) -> String {
    let hex = blob_id.strip_prefix("sha256:").unwrap_or(blob_id);
    format!("\"{}\"", &hex[..hex.len().min(32)])
}

fn http_date(rfc3339: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return String::new();
    };
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// List buckets (answers an empty list: buckets are only names here).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "ListBuckets",
    tag = S3,
    security(("sigv4" = [])),
    responses(
        (status = 200, description = "`<ListAllMyBucketsResult>` with no buckets.", content_type = "application/xml", body = String),
    ),
)]
async fn list_buckets(State(_app): State<App>) -> Response {
    // Buckets have no owner or listing of their own here beyond their names.
    xml_ok("<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>".into())
}

/// Create a bucket (creating one that exists is fine).
#[utoipa::path(
    put,
    path = "/{bucket}",
    operation_id = "CreateBucket",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET)),
    responses(
        (status = 200, description = "Created; `Location: /BUCKET`."),
        (status = 400, description = "`InvalidBucketName`.", content_type = "application/xml", body = String),
    ),
)]
async fn create_bucket(State(app): State<App>, Path(bucket): Path<String>) -> Response {
    if let Err(r) = check_bucket(&bucket) {
        return r;
    }
    match app.store.create_bucket(bucket.clone(), now()).await {
        Ok(()) => (StatusCode::OK, [(header::LOCATION, format!("/{bucket}"))]).into_response(),
        Err(e) => internal(e),
    }
}

/// Whether a bucket exists.
#[utoipa::path(
    head,
    path = "/{bucket}",
    operation_id = "HeadBucket",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET)),
    responses(
        (status = 200, description = "It exists."),
        (status = 404, description = "It does not (no body)."),
    ),
)]
async fn head_bucket(State(app): State<App>, Path(bucket): Path<String>) -> Response {
    match app.store.bucket_exists(bucket).await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => internal(e),
    }
}

/// Multipart uploads (CreateMultipartUpload, CompleteMultipartUpload): not supported.
///
/// Upload in one part (aws CLI: set `s3.multipart_threshold` above the file size).
#[utoipa::path(
    post,
    path = "/{bucket}/{*key}",
    operation_id = "CreateMultipartUpload",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET), ("*key" = String, Path, description = KEY)),
    responses(
        (status = 501, description = "`NotImplemented`.", content_type = "application/xml", body = String),
    ),
)]
async fn not_implemented() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        "multipart uploads are not supported; upload in one part (aws CLI: set s3.multipart_threshold above the file size)",
    )
}

/// Upload an object: the bytes become a blob, the key its name.
///
/// Plain, or `aws-chunked` with `STREAMING-UNSIGNED-PAYLOAD-TRAILER`; the
/// answer's `x-amz-meta-blob-id` is the blob's `sha256:` Id.
#[utoipa::path(
    put,
    path = "/{bucket}/{*key}",
    operation_id = "PutObject",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET), ("*key" = String, Path, description = KEY)),
    request_body(content = String, content_type = "application/octet-stream", description = "The object's bytes (at most `[limits] blob_bytes`)."),
    responses(
        (status = 200, description = "Stored; `ETag` and `x-amz-meta-blob-id`."),
        (status = 400, description = "`InvalidBucketName`, `EntityTooLarge`, `IncompleteBody` or `XAmzContentSHA256Mismatch`.", content_type = "application/xml", body = String),
        (status = 501, description = "`NotImplemented`: a part of a multipart upload, a copy, or signed chunks.", content_type = "application/xml", body = String),
    ),
)]
async fn put_object(
    State(app): State<App>,
    Path((bucket, key)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    if let Err(r) = check_bucket(&bucket) {
        return r;
    }
    if q.contains_key("partNumber") || q.contains_key("uploadId") {
        return not_implemented().await;
    }
    if req.headers().contains_key("x-amz-copy-source") {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "CopyObject is not supported; upload the file again under the new key",
        );
    }
    let claimed = req
        .extensions()
        .get::<Signed>()
        .and_then(|s| s.payload_hash.clone())
        .unwrap_or_else(|| UNSIGNED_PAYLOAD.into());
    let staged = match receive(&app, &claimed, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if claimed.len() == 64 && !staged.id.ends_with(&claimed.to_ascii_lowercase()) {
        return error(
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "the x-amz-content-sha256 header does not match the body's SHA-256",
        );
    }
    let (id, size) = (staged.id.clone(), staged.size);
    let lock = app.blobs.lock(&id).await;
    if let Err(e) = app.blobs.publish(staged, &lock).await {
        return internal(format!("storing the upload: {e}"));
    }
    let stored = app
        .store
        .insert_blob(BlobRow {
            id: id.clone(),
            size,
            created_at: now(),
        })
        .await;
    if let Err(e) = stored {
        return internal(e);
    }
    let named = app
        .store
        .put_object(S3Object {
            bucket: bucket.clone(),
            key: key.clone(),
            blob_id: id.clone(),
            size,
            created_at: now(),
        })
        .await;
    drop(lock);
    if let Err(e) = named {
        return internal(e);
    }
    tracing::info!(blob = %id, size, bucket = %crate::logguard::Clipped(&bucket), key = %crate::logguard::Clipped(&key), "S3 object stored");
    (
        StatusCode::OK,
        [
            (header::ETAG, etag(&id)),
            ("x-amz-meta-blob-id".parse().unwrap(), id),
        ],
    )
        .into_response()
}

/// Streams the body into a staged blob: plainly, or decoding `aws-chunked`.
async fn receive(
    app: &App,
    claimed: &str,
    req: Request,
) -> Result<crate::blobstore::Staged, Response> {
    let cap = app.config.limits.blob_bytes;
    let idle = Duration::from_secs(app.config.limits.body_timeout_secs);
    let declared = req
        .headers()
        .get("x-amz-decoded-content-length")
        .or_else(|| req.headers().get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            &format!("the object is over the {cap}-byte limit ([limits] blob_bytes)"),
        ));
    }
    let result = if claimed.starts_with("STREAMING-") {
        if claimed != chunked::UNSIGNED_TRAILER {
            return Err(error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "signed aws-chunked uploads are not supported; send UNSIGNED-PAYLOAD, the body's SHA-256, or STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            ));
        }
        let trailer = req
            .headers()
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let body = chunked::decode(req.into_body(), trailer, idle);
        app.blobs.receive(body, cap, idle).await
    } else {
        app.blobs.receive(req.into_body(), cap, idle).await
    };
    result.map_err(|e| match e {
        UploadError::TooLarge(_) => {
            error(StatusCode::BAD_REQUEST, "EntityTooLarge", &e.to_string())
        }
        UploadError::Io(_) => internal(e),
        other => error(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            &other.to_string(),
        ),
    })
}

async fn load(app: &App, bucket: &str, key: &str) -> Result<S3Object, Response> {
    app.store
        .object(bucket.to_string(), key.to_string())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => error(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            ),
            other => internal(other),
        })
}

fn object_headers(o: &S3Object) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: header::HeaderName, v: String| {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    };
    put(header::CONTENT_LENGTH, o.size.to_string());
    put(header::ETAG, etag(&o.blob_id));
    put(header::LAST_MODIFIED, http_date(&o.created_at));
    put(header::CONTENT_TYPE, "application/octet-stream".into());
    put("x-amz-meta-blob-id".parse().unwrap(), o.blob_id.clone());
    h
}

/// An object's size, ETag and blob Id.
#[utoipa::path(
    head,
    path = "/{bucket}/{*key}",
    operation_id = "HeadObject",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET), ("*key" = String, Path, description = KEY)),
    responses(
        (status = 200, description = "`Content-Length`, `ETag`, `Last-Modified`, `x-amz-meta-blob-id`."),
        (status = 404, description = "No such key (no body)."),
    ),
)]
async fn head_object(
    State(app): State<App>,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    match load(&app, &bucket, &key).await {
        Ok(o) => (StatusCode::OK, object_headers(&o)).into_response(),
        // HEAD answers carry no body: the SDKs read the status alone.
        Err(r) => r.status().into_response(),
    }
}

/// Download an object.
#[utoipa::path(
    get,
    path = "/{bucket}/{*key}",
    operation_id = "GetObject",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET), ("*key" = String, Path, description = KEY)),
    responses(
        (status = 200, description = "The bytes, with the HeadObject headers.", content_type = "application/octet-stream", body = String),
        (status = 404, description = "`NoSuchKey`.", content_type = "application/xml", body = String),
    ),
)]
async fn get_object(
    State(app): State<App>,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    let o = match load(&app, &bucket, &key).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(path) = app.blobs.path(&o.blob_id) else {
        return internal("stored blob id does not parse");
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return internal(format!("blob {} file: {e}", o.blob_id)),
    };
    let body = crate::filebody::FileBody::new(bytes::Bytes::new(), file, o.size);
    (StatusCode::OK, object_headers(&o), Body::new(body)).into_response()
}

/// Delete an object's name (the blob stays; `DELETE /blobs/{Id}` removes it).
#[utoipa::path(
    delete,
    path = "/{bucket}/{*key}",
    operation_id = "DeleteObject",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET), ("*key" = String, Path, description = KEY)),
    responses(
        (status = 204, description = "Deleted (also when there was no such key)."),
    ),
)]
async fn delete_object(
    State(app): State<App>,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    match app.store.delete_object(bucket, key).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `2` (ListObjectsV2; V1 listings get the same answer).
    #[serde(rename = "list-type")]
    _list_type: Option<String>,
    /// Only keys starting with this.
    prefix: Option<String>,
    /// Keys per page, at most 1000.
    #[serde(rename = "max-keys")]
    max_keys: Option<usize>,
    /// The `NextContinuationToken` of the previous page.
    #[serde(rename = "continuation-token")]
    continuation_token: Option<String>,
    /// Only keys after this one.
    #[serde(rename = "start-after")]
    start_after: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "encoding-type")]
    _encoding_type: Option<String>,
    /// Accepted and ignored: every key is listed flat.
    delimiter: Option<String>,
}

/// List a bucket's objects.
#[utoipa::path(
    get,
    path = "/{bucket}",
    operation_id = "ListObjectsV2",
    tag = S3,
    security(("sigv4" = [])),
    params(("bucket" = String, Path, description = BUCKET), ListQuery),
    responses(
        (status = 200, description = "`<ListBucketResult>`: `Contents` (`Key`, `LastModified`, `ETag`, `Size`), `IsTruncated`, `NextContinuationToken`.", content_type = "application/xml", body = String),
        (status = 404, description = "`NoSuchBucket`.", content_type = "application/xml", body = String),
    ),
)]
async fn list_objects(
    State(app): State<App>,
    Path(bucket): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    match app.store.bucket_exists(bucket.clone()).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "The specified bucket does not exist",
            )
        }
        Err(e) => return internal(e),
    }
    if q.delimiter.is_some() {
        // No common prefixes: every key is listed flat, which is what `aws s3 ls
        // --recursive` shows; a delimiter is ignored rather than refused.
    }
    let max = q.max_keys.unwrap_or(1000).min(1000);
    let prefix = q.prefix.clone().unwrap_or_default();
    let after = q.continuation_token.clone().or(q.start_after.clone());
    let mut rows = match app
        .store
        .list_objects(bucket.clone(), prefix.clone(), after, max + 1)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let truncated = rows.len() > max;
    rows.truncate(max);
    let mut out = format!(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        xml(&bucket),
        xml(&prefix),
        rows.len()
    );
    if let Some(t) = &q.continuation_token {
        out.push_str(&format!(
            "<ContinuationToken>{}</ContinuationToken>",
            xml(t)
        ));
    }
    if truncated {
        if let Some(last) = rows.last() {
            out.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                xml(&last.key)
            ));
        }
    }
    for o in &rows {
        out.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            xml(&o.key),
            xml(&o.created_at),
            xml(&etag(&o.blob_id)),
            o.size
        ));
    }
    out.push_str("</ListBucketResult>");
    xml_ok(out)
}

/// `source` itself, or for `s3://bucket/key` the Id of the blob it names.
pub async fn resolved(app: &App, field: &str, source: &str) -> Result<String, ApiError> {
    match resolve(app, field, source).await {
        Some(r) => r,
        None => Ok(source.to_string()),
    }
}

/// Resolves `s3://bucket/key` to the blob it names; `None` when `source` is not
/// an `s3://` URI.
async fn resolve(app: &App, field: &str, source: &str) -> Option<Result<String, ApiError>> {
    let rest = source.strip_prefix("s3://")?;
    let Some((bucket, key)) = rest.split_once('/') else {
        return Some(Err(ApiError::validation(format!(
            "{field} {:?} must be s3://BUCKET/KEY",
            crate::logguard::Clipped(source)
        ))));
    };
    Some(
        app.store
            .object(bucket.to_string(), key.to_string())
            .await
            .map(|o| o.blob_id)
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::validation(format!(
                    "{field} {} names no object; upload it first with `aws s3 cp FILE {} --endpoint-url API_URL`, or upload with `stationkeeper blobs upload FILE` and use its blob Id",
                    crate::logguard::Clipped(source),
                    crate::logguard::Clipped(source)
                )),
                other => other.into(),
            }),
    )
}
