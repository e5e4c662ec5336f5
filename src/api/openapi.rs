//! The operator API's OpenAPI 3 document. Each route is registered once, with
//! its operation: `OpenApiRouter::routes(routes!(handler))` beside the
//! handler's `#[utoipa::path]` (method, path, AWS's operation name, parameters,
//! body, answers), so what the server answers and what the document lists cannot
//! drift apart. This module owns what belongs to the whole API: the info, the two
//! security schemes (bearer token, SigV4), the tags in reading order, the answers
//! every guarded route can give, and the assembling (`document`). It serves the
//! document at `GET /openapi.json`, and writes the book's generated reference
//! (`markdown`, committed as `docs/src/api-reference.md`; `stationkeeper openapi`
//! prints either). The console renders the same document at `/console/api`.

use std::collections::BTreeSet;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, RefOr, ResponseBuilder,
};

pub const GATEWAYS: &str = "Gateways";
pub const CREDENTIALS: &str = "Credentials";
pub const BLOBS: &str = "Blobs and signing keys";
pub const TASKS: &str = "Task definitions and tasks";
pub const MULTICAST: &str = "Multicast groups";
pub const FUOTA: &str = "FUOTA tasks";
pub const DEVICES: &str = "Devices and profiles";
pub const CAMPAIGNS: &str = "Campaigns and fleet";
pub const AUDIT: &str = "Audit log and refusals";
pub const ACCESS_KEYS: &str = "Access keys";
pub const TAGS: &str = "Tags";
pub const S3: &str = "S3";
pub const SERVICE: &str = "Service";

/// Every tag in reading order, with what it groups. An operation carries
/// exactly one of these (checked by the tests).
pub const TAG_LIST: &[(&str, &str)] = &[
    (
        GATEWAYS,
        "Wireless gateways: register, list, change, delete, and what each reported \
         (firmware over CUPS, connection and traffic over the LNS).",
    ),
    (
        CREDENTIALS,
        "What CUPS hands a gateway about itself: URI overrides, credential generations \
         issued by the server's CA (or tokens), and where gateways connect.",
    ),
    (
        BLOBS,
        "Uploaded files (update.bin, FUOTA images), content-addressed by SHA-256, and \
         the public halves of firmware signing keys as gateways hold them.",
    ),
    (
        TASKS,
        "Gateway firmware updates: AWS's task definitions (the signature is checked over \
         the blob when one is created) and each gateway's task with its delivery attempts.",
    ),
    (
        MULTICAST,
        "Multicast groups for FUOTA: address and keys, the session, the gateways that \
         carry it, and its devices.",
    ),
    (
        FUOTA,
        "Firmware for end devices over multicast: the task, its plan, the start, progress, \
         and its devices.",
    ),
    (
        DEVICES,
        "End devices in AWS's shapes: device and service profiles, wireless devices \
         (OTAA or ABP), downlinks, statistics and the event log. Keys are write-only.",
    ),
    (
        CAMPAIGNS,
        "Rollouts of task definitions over the fleet in waves (ours; AWS has none), \
         and the fleet at a glance.",
    ),
    (
        AUDIT,
        "Who changed what (every state-changing call), and why gateways were refused.",
    ),
    (
        ACCESS_KEYS,
        "SigV4 access keys for AWS clients (boto3, the aws CLI, the SDKs); the secret \
         is shown once, when the key is created.",
    ),
    (
        TAGS,
        "AWS's TagResource, UntagResource and ListTagsForResource on the ARNs the \
         answers give.",
    ),
    (
        S3,
        "An S3-compatible object API, path-style, for update files and FUOTA images. \
         Only requests signed with SigV4 for the service `s3` reach these operations; \
         anything else on these paths is an operator API request. An object is a name \
         for a blob. Errors are S3's XML `<Error><Code>…</Code><Message>…</Message></Error>`. \
         Multipart uploads, copies and presigned URLs are not supported (501 `NotImplemented`).",
    ),
    (
        SERVICE,
        "The server itself: health, Prometheus metrics, and this document.",
    ),
];

/// Name of the bearer-token security scheme.
pub const BEARER: &str = "bearer";
/// Name of the SigV4 security scheme.
pub const SIGV4: &str = "sigv4";

const DESCRIPTION: &str = "\
The operator API of Stationkeeper, shaped like AWS IoT Wireless (IoT Core for LoRaWAN): \
AWS's paths, PascalCase JSON fields and error codes wherever AWS has the same concept, \
so AWS clients work with only the endpoint changed; additions (blobs, signing keys, \
campaigns, the fleet, the audit log) follow the same conventions.

* **Auth.** `Authorization: Bearer <token>` (the token from `[api] tokens`, or the \
state directory's `api-token` file), or an AWS Signature Version 4 with an access key \
from `POST /access-keys`. Without either: 401 `UnauthorizedException`.
* **Errors.** Status plus `{\"Message\": \"…\", \"Code\": \"…\"}` (the `Error` schema), \
with the code also in `x-amzn-ErrorType`. A request field the server does not know is a \
400 that names it. An unknown path is 404 `UnknownOperationException`; a known path with \
another method is 405.
* **Lists.** `?maxResults=N&nextToken=T` (1–250, default 100); `NextToken` in the \
answer while more remain.
* **EUIs** are accepted in any common form and answered as 16 lowercase hex digits; \
timestamps are RFC 3339 UTC with milliseconds.";

/// The document: every registered route's operation plus what belongs to the
/// whole API.
pub fn document() -> OpenApi {
    assemble().0
}

/// The document, and every clash found while merging the modules' parts: a
/// schema name two modules define differently (the later one would silently
/// vanish) or a path and method registered twice. The tests require none.
pub(crate) fn assemble() -> (OpenApi, Vec<String>) {
    let mut doc = base();
    let mut clashes = vec![];
    let parts = super::registered()
        .into_iter()
        .map(|p| (p.name, p.routes.into_openapi()))
        .chain(std::iter::once(("s3", super::s3::routes().into_openapi())));
    for (name, part) in parts {
        if let (Some(have), Some(new)) = (&doc.components, &part.components) {
            for (k, v) in &new.schemas {
                if have.schemas.get(k).is_some_and(|h| h != v) {
                    clashes.push(format!(
                        "schema {k} of `{name}` differs from the one already registered; name one of them with #[schema(as = ...)]"
                    ));
                }
            }
        }
        for (path, item) in &part.paths.paths {
            if let Some(there) = doc.paths.paths.get(path) {
                for (method, _) in operations_of(item) {
                    if operations_of(there).iter().any(|(m, _)| *m == method) {
                        clashes.push(format!("{method} {path} of `{name}` is registered twice"));
                    }
                }
            }
        }
        doc.merge(part);
    }
    finish(&mut doc);
    (doc, clashes)
}

fn base() -> OpenApi {
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "The API token: `Authorization: Bearer <token>`. Tokens come from `[api] tokens`; \
             without them the server generates one on first start into the state directory's \
             `api-token` file (mode 0600).",
        ))
        .build();
    let sigv4 = ApiKey::Header(ApiKeyValue::with_description(
        "Authorization",
        "AWS Signature Version 4: `Authorization: AWS4-HMAC-SHA256 Credential=<AccessKeyId>/<date>/<region>/<service>/aws4_request, SignedHeaders=…, Signature=…` \
         with `x-amz-date`, signed with an access key from `POST /access-keys` (the secret \
         is shown once). OpenAPI has no scheme for SigV4, so it is described here as an API \
         key in the Authorization header: let an AWS SDK, boto3 or the aws CLI sign \
         (`--endpoint-url` pointing at this server). Service `iotwireless` for the operator \
         API, `s3` for the S3 operations; any region. The date may be off by at most \
         `[api] signature_max_skew_secs`; failures are rate-limited per source address.",
    ));
    let mut components = ComponentsBuilder::new()
        .schema_from::<super::ErrorBody>()
        .security_scheme(BEARER, SecurityScheme::Http(bearer))
        .security_scheme(SIGV4, SecurityScheme::ApiKey(sigv4));
    for (_, name, what) in GUARDED {
        components = components.response(name, error_response(what));
    }
    let components = components.build();
    let info = InfoBuilder::new()
        .title("Stationkeeper operator API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .license(Some(LicenseBuilder::new().name("Apache-2.0").build()))
        .build();
    let tags = TAG_LIST
        .iter()
        .map(|(name, about)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*about))
                .build()
        })
        .collect::<Vec<_>>();
    OpenApiBuilder::new()
        .info(info)
        .components(Some(components))
        .security(Some(vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(SIGV4, Vec::<String>::new()),
        ]))
        .tags(Some(tags))
        .build()
}

/// The answers every route behind the token check can give besides its own:
/// status, the name under `components/responses`, what it means.
const GUARDED: [(&str, &str, &str); 4] = [
    (
        "401",
        "Unauthorized",
        "No credentials, or a wrong bearer token (`UnauthorizedException`).",
    ),
    (
        "403",
        "SignatureRefused",
        "A SigV4 request refused: a wrong signature, an expired date, an unknown or disabled access key (`InvalidSignatureException`, `UnrecognizedClientException`, `AccessDeniedException`).",
    ),
    (
        "429",
        "Throttled",
        "Too many failed SigV4 signatures from this address (`ThrottlingException`).",
    ),
    (
        "500",
        "InternalError",
        "An internal error; the body says only `internal error; see the server log` (`InternalServerException`).",
    ),
];

/// What every operation gets from the layers around it rather than from its
/// handler, and axum's path syntax turned into OpenAPI's.
fn finish(doc: &mut OpenApi) {
    // axum's catch-all `{*key}` is OpenAPI's `{key}` (whose value may hold '/').
    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, mut item) in paths {
        let open = path.replace("{*", "{");
        for (_, op) in operations_of_mut(&mut item) {
            for p in op.parameters.iter_mut().flatten() {
                if let Some(name) = p.name.strip_prefix('*') {
                    p.name = name.to_string();
                }
            }
        }
        doc.paths.paths.insert(open, item);
    }
    for item in doc.paths.paths.values_mut() {
        for (_, op) in operations_of_mut(item) {
            // An operation with its own `security` (none, or SigV4 for S3) says
            // what it answers; the others sit behind the token check.
            if op.security.is_some() {
                continue;
            }
            for (status, name, _) in GUARDED {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        RefOr::Ref(utoipa::openapi::Ref::new(format!(
                            "#/components/responses/{name}"
                        )))
                    });
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::ContentBuilder;
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Error",
                ))))
                .build(),
        )
        .build()
}

/// The operations of a path item with their methods, in a fixed order.
fn operations_of(
    item: &utoipa::openapi::PathItem,
) -> Vec<(&'static str, &utoipa::openapi::path::Operation)> {
    [
        ("GET", &item.get),
        ("HEAD", &item.head),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

fn operations_of_mut(
    item: &mut utoipa::openapi::PathItem,
) -> Vec<(&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("GET", &mut item.get),
        ("HEAD", &mut item.head),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("PATCH", &mut item.patch),
        ("DELETE", &mut item.delete),
        ("OPTIONS", &mut item.options),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
    .collect()
}

/// The OpenAPI 3 document of this API.
///
/// Generated from the code's route registrations, so it lists exactly what the
/// server answers. It holds no secrets (no tokens, keys or data, only the API's
/// shape), so it is readable without a token, like `/healthz`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "GetOpenApiDocument",
    tag = SERVICE,
    security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1, JSON).", body = Object)),
)]
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

/// One operation of a document, for listings.
pub struct OperationView<'a> {
    pub tag: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub operation: &'a Value,
}

impl OperationView<'_> {
    pub fn text(&self, key: &str) -> &str {
        self.operation[key].as_str().unwrap_or_default()
    }
}

/// Every operation of a document (as JSON, as `/openapi.json` serves it), in
/// reading order: by tag (the document's tag order, untagged last), then path,
/// then method.
pub fn operations(doc: &Value) -> Vec<OperationView<'_>> {
    const METHODS: [&str; 8] = [
        "get", "head", "post", "put", "patch", "delete", "options", "trace",
    ];
    let tag_order: Vec<&str> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let op = &item[method];
            if op.is_object() {
                out.push(OperationView {
                    tag: op["tags"][0].as_str().unwrap_or_default(),
                    method,
                    path,
                    operation: op,
                });
            }
        }
    }
    let rank = |tag: &str| {
        tag_order
            .iter()
            .position(|t| *t == tag)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|o| {
        (
            rank(o.tag),
            o.path.to_string(),
            METHODS.iter().position(|m| *m == o.method),
        )
    });
    out
}

/// The book's generated API reference: one section per tag, one table row per
/// operation. `docs/src/api-reference.md` is this, committed (a test compares).
pub fn markdown(doc: &Value) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from(
        "# API reference\n\n\
         <!-- Generated from the code by `stationkeeper openapi --markdown`; do not edit.\n     \
         Regenerate: UPDATE_DOCS=1 cargo test --test openapi -->\n\n\
         Every route of the operator API, generated from the OpenAPI 3 document that the\n\
         server builds from its route registrations. The server serves the document at\n\
         `GET /openapi.json` (no token needed), the console renders it with parameters,\n\
         bodies and answers at `/console/api`, and `stationkeeper openapi` prints it\n\
         without a server. [The operator API](operator-api.md) explains the shapes and\n\
         behaviours route by route.\n",
    );
    let ops = operations(doc);
    let tags: Vec<(&str, &str)> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default(),
                t["description"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for (tag, about) in tags {
        let mine: Vec<&OperationView> = ops.iter().filter(|o| o.tag == tag).collect();
        if mine.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {tag}\n\n{about}\n\n"));
        out.push_str("| method | path | operation | summary |\n| --- | --- | --- | --- |\n");
        for o in mine {
            out.push_str(&format!(
                "| `{}` | `{}` | `{}` | {} |\n",
                o.method.to_uppercase(),
                o.path,
                o.text("operationId"),
                cell(o.text("summary"))
            ));
        }
    }
    out
}

/// Adds `T`'s schema (and those it refers to) to a module's part of the
/// document: for a schema that a field refers to by name (`schema_with`) rather
/// than by type.
pub fn add_schema<T: utoipa::ToSchema>(
    r: &mut utoipa_axum::router::OpenApiRouter<crate::app::App>,
) {
    let mut schemas = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut schemas);
    r.get_openapi_mut()
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
}

/// Path parameters a path template names (`/a/{id}/b/{key}` → id, key).
pub fn template_parameters(path: &str) -> BTreeSet<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modules_parts_merge_without_clashes() {
        let (_, clashes) = assemble();
        assert!(clashes.is_empty(), "{clashes:#?}");
    }

    #[test]
    fn every_operation_has_an_id_a_summary_and_one_known_tag() {
        let doc = serde_json::to_value(document()).unwrap();
        let known: Vec<&str> = TAG_LIST.iter().map(|(t, _)| *t).collect();
        let ops = operations(&doc);
        assert!(ops.len() > 90, "only {} operations", ops.len());
        let mut ids = BTreeSet::new();
        for o in &ops {
            let at = format!("{} {}", o.method, o.path);
            assert!(!o.text("operationId").is_empty(), "{at}: no operationId");
            assert!(
                ids.insert(o.text("operationId")),
                "{at}: operationId used twice"
            );
            assert!(!o.text("summary").is_empty(), "{at}: no summary");
            let tags = o.operation["tags"].as_array().expect("tags");
            assert_eq!(tags.len(), 1, "{at}: tags {tags:?}");
            assert!(
                known.contains(&o.tag),
                "{at}: tag {:?} is not in TAG_LIST",
                o.tag
            );
        }
        for (tag, _) in TAG_LIST {
            assert!(
                ops.iter().any(|o| o.tag == *tag),
                "tag {tag} has no operation"
            );
        }
    }

    #[test]
    fn axum_catch_alls_become_openapi_parameters() {
        let doc = serde_json::to_value(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/{bucket}/{key}"), "{:?}", paths.keys());
        assert!(paths.keys().all(|p| !p.contains('*')));
    }

    #[test]
    fn template_parameters_are_read_from_the_path() {
        let want: BTreeSet<&str> = ["id", "device"].into();
        assert_eq!(
            template_parameters("/fuota-tasks/{id}/wireless-devices/{device}"),
            want
        );
        assert!(template_parameters("/fleet").is_empty());
    }

    #[test]
    fn markdown_has_a_section_per_tag_and_escapes_cells() {
        let doc = serde_json::json!({
            "tags": [{"name": "A", "description": "first"}, {"name": "Empty", "description": "none"}],
            "paths": {"/x/{id}": {"get": {"tags": ["A"], "operationId": "GetX", "summary": "a | b"}}}
        });
        let md = markdown(&doc);
        assert!(md.contains("\n## A\n\nfirst\n"), "{md}");
        assert!(
            md.contains("| `GET` | `/x/{id}` | `GetX` | a \\| b |"),
            "{md}"
        );
        assert!(!md.contains("## Empty"), "{md}");
    }
}
