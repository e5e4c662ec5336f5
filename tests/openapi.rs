//! The OpenAPI document (`GET /openapi.json`) against the real server: it is
//! valid OpenAPI 3; every documented operation answers (not the router's "no
//! such route"), with a status the document lists; no undocumented method answers
//! on a documented path; every request field and query parameter it documents is
//! what the server's parsers accept, no more and no less; no route is registered
//! outside the documented routers (a scan of the sources); the console page
//! renders it; the CLI prints it; and the book's generated reference
//! (`docs/src/api-reference.md`) is what the code generates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::aws::AwsClient;
use common::form::http;
use common::server::{TestServer, TOKEN};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use stationkeeper::api::openapi::{self, operations, template_parameters};
use stationkeeper::cli::ApiClient;

/// What fills every path parameter: no resource has this Id.
const PLACEHOLDER: &str = "placeholder-0";
/// The regenerating command, named in the failure message.
const REGENERATE: &str = "UPDATE_DOCS=1 cargo test --test openapi (or: stationkeeper openapi --markdown > docs/src/api-reference.md)";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn document() -> Value {
    serde_json::to_value(openapi::document()).unwrap()
}

fn filled(path: &str) -> String {
    let mut out = path.to_string();
    for p in template_parameters(path) {
        out = out.replace(&format!("{{{p}}}"), PLACEHOLDER);
    }
    out
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap()
}

fn is_s3(op: &Value) -> bool {
    op["tags"][0] == openapi::S3
}

/// One answer: status, headers we look at, body.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An operator API request with the bearer token (or none).
async fn api(srv: &TestServer, token: &str, m: &str, path: &str, body: Option<&[u8]>) -> Answer {
    let c = ApiClient::new(
        &format!("http://{}", srv.running.api_addr),
        token.into(),
        None,
    )
    .unwrap();
    let (status, body) = c
        .send(method(m), path, body.map(<[u8]>::to_vec))
        .await
        .unwrap();
    Answer { status, body }
}

async fn s3(aws: &AwsClient, m: &str, path: &str) -> Answer {
    let a = aws.s3(method(m), path, Vec::new()).await;
    Answer {
        status: a.status,
        body: a.body,
    }
}

/// The API router's own answers for a request no route takes.
fn is_no_route(a: &Answer) -> bool {
    a.status == StatusCode::METHOD_NOT_ALLOWED
        || (a.status == StatusCode::NOT_FOUND && a.json()["Code"] == "UnknownOperationException")
}

/// The S3 router's answers for a request no S3 route takes: its fallback for an
/// unknown path, axum's bare 405 for a known path with another method.
fn is_no_s3_route(a: &Answer) -> bool {
    a.status == StatusCode::METHOD_NOT_ALLOWED
        || (a.status == StatusCode::NOT_IMPLEMENTED
            && a.text().contains("this S3 operation is not supported here"))
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_is_valid_openapi_3() {
    let srv = TestServer::start().await;
    let a = api(&srv, "", "GET", "/openapi.json", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let doc = a.json();
    assert_eq!(doc, document(), "the served document is the code's");

    // utoipa's own types read it back unchanged.
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), doc);

    // The required top-level fields.
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Stationkeeper operator API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!doc["paths"].as_object().unwrap().is_empty());

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes[openapi::BEARER]["scheme"], "bearer");
    assert_eq!(schemes[openapi::SIGV4]["type"], "apiKey");
    assert_eq!(schemes[openapi::SIGV4]["in"], "header");
    assert_eq!(schemes[openapi::SIGV4]["name"], "Authorization");
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();

    let mut ids = BTreeSet::new();
    let ops = operations(&doc);
    for o in &ops {
        let at = format!("{} {}", o.method, o.path);
        let id = o.text("operationId");
        assert!(
            !id.is_empty() && ids.insert(id),
            "{at}: operationId {id:?} missing or used twice"
        );
        assert!(
            tags.contains(&o.tag),
            "{at}: tag {:?} is not declared",
            o.tag
        );
        assert!(!o.text("summary").is_empty(), "{at}: no summary");
        // Every path parameter is declared, and every declared one is in the path.
        let declared: BTreeSet<&str> = o.operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{at}: {p}"))
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            declared,
            template_parameters(o.path),
            "{at}: path parameters"
        );
        // Query parameters are unique by name.
        let names: Vec<&str> = o.operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names.len(),
            names.iter().collect::<BTreeSet<_>>().len(),
            "{at}: {names:?}"
        );
        assert!(
            o.operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{at}: no responses"
        );
        for req in o.operation["security"].as_array().into_iter().flatten() {
            for name in req.as_object().unwrap().keys() {
                assert!(
                    schemes.contains_key(name),
                    "{at}: unknown security scheme {name}"
                );
            }
        }
    }
    // The operations a reader looks for first, under AWS's names.
    for (m, path, id) in [
        ("post", "/wireless-gateways", "CreateWirelessGateway"),
        ("get", "/fuota-tasks", "ListFuotaTasks"),
        ("put", "/fuota-tasks/{id}", "StartFuotaTask"),
        (
            "get",
            "/wireless-gateways/{id}/statistics",
            "GetWirelessGatewayStatistics",
        ),
        ("put", "/{bucket}/{key}", "PutObject"),
        ("get", "/openapi.json", "GetOpenApiDocument"),
        ("get", "/metrics", "GetMetrics"),
        ("get", "/healthz", "GetHealth"),
    ] {
        assert_eq!(doc["paths"][path][m]["operationId"], id, "{m} {path}");
    }
    // Open routes say so; S3 takes SigV4 only; the rest inherit both schemes.
    assert_eq!(
        doc["paths"]["/openapi.json"]["get"]["security"],
        json!([{}])
    );
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([{}]));
    assert_eq!(
        doc["paths"]["/{bucket}"]["put"]["security"],
        json!([{"sigv4": []}])
    );
    assert_eq!(doc["security"], json!([{"bearer": []}, {"sigv4": []}]));

    // Every reference resolves.
    let mut refs = vec![];
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 100, "{} references", refs.len());
    for r in refs {
        assert!(pointer(&doc, &r).is_some(), "{r} does not resolve");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn pointer<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

/// The schema a body or property refers to, with `$ref`s followed.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => deref(doc, pointer(doc, r).expect("a resolving $ref")),
        None => v,
    }
}

#[tokio::test]
async fn every_documented_operation_answers_with_a_documented_status() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "openapi-test").await;
    let doc = document();
    let ops = operations(&doc);
    assert!(ops.len() > 90, "{} operations", ops.len());
    let mut checked = 0;
    for o in &ops {
        let path = filled(o.path);
        let at = format!(
            "{} {} ({})",
            o.method.to_uppercase(),
            path,
            o.text("operationId")
        );
        let a = if is_s3(o.operation) {
            let a = s3(&aws, o.method, &path).await;
            assert!(
                !is_no_s3_route(&a),
                "{at}: the S3 router has no such route: {}",
                a.text()
            );
            a
        } else {
            // No body: a create answers 400 for its missing fields, which is
            // fine; what must not come is the router's own answer.
            let a = api(&srv, TOKEN, o.method, &path, None).await;
            assert!(
                !is_no_route(&a),
                "{at}: the router has no such route: {} {}",
                a.status,
                a.text()
            );
            a
        };
        let documented = o.operation["responses"].as_object().unwrap();
        assert!(
            documented.contains_key(a.status.as_str()),
            "{at}: answered {} ({}), which the document does not list ({:?})",
            a.status,
            a.text(),
            documented.keys().collect::<Vec<_>>()
        );
        checked += 1;
    }
    assert_eq!(checked, ops.len());
}

#[tokio::test]
async fn no_undocumented_method_answers_on_a_documented_path() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "openapi-test").await;
    let doc = document();
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let s3_path = ["get", "head", "put", "post", "delete"]
            .iter()
            .any(|m| item[*m].is_object() && is_s3(&item[*m]));
        for m in ["get", "head", "post", "put", "patch", "delete"] {
            // HEAD is GET without a body wherever GET is a route (HTTP's rule,
            // which axum keeps).
            if item[m].is_object() || (m == "head" && item["get"].is_object()) {
                continue;
            }
            let at = format!("{} {path}", m.to_uppercase());
            if s3_path {
                let a = s3(&aws, m, &filled(path)).await;
                assert!(
                    is_no_s3_route(&a),
                    "{at} (S3) answers but is not documented: {} {}",
                    a.status,
                    a.text()
                );
            } else {
                let a = api(&srv, TOKEN, m, &filled(path), None).await;
                assert!(
                    is_no_route(&a),
                    "{at} answers but is not documented: {} {}",
                    a.status,
                    a.text()
                );
            }
            probed += 1;
        }
    }
    assert!(probed > 100, "{probed} probes");
}

/// The field names serde lists in an "unknown field" refusal.
fn expected_fields(message: &str) -> Option<BTreeSet<String>> {
    if message.contains("there are no fields") {
        return Some(BTreeSet::new());
    }
    let (_, list) = message.split_once(", expected")?;
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Every object a body schema holds, as (where in a body, the object schema).
fn objects<'a>(
    doc: &'a Value,
    schema: &'a Value,
    at: Vec<String>,
    out: &mut Vec<(Vec<String>, Vec<&'a Value>)>,
) {
    let schema = deref(doc, schema);
    if let Some(alts) = schema["oneOf"].as_array() {
        let objs: Vec<&Value> = alts
            .iter()
            .map(|a| deref(doc, a))
            .filter(|a| a["properties"].is_object())
            .collect();
        match objs.len() {
            0 => {}
            1 => objects(doc, objs[0], at, out),
            // A field the handler reads as one of several shapes: the refusal
            // must list the fields of one of them.
            _ => out.push((at, objs)),
        }
        return;
    }
    if schema["items"].is_object() {
        let mut at = at;
        at.push("[]".into());
        return objects(doc, &schema["items"], at, out);
    }
    if let Some(props) = schema["properties"].as_object() {
        if schema["additionalProperties"] == false {
            out.push((at.clone(), vec![schema]));
        }
        for (name, p) in props {
            let mut at = at.clone();
            at.push(name.clone());
            objects(doc, p, at, out);
        }
    }
}

/// The smallest value a schema allows: the required fields of an object, an
/// empty array, an empty string, zero.
fn minimal(doc: &Value, schema: &Value) -> Value {
    let schema = deref(doc, schema);
    let kind = match &schema["type"] {
        Value::Array(t) => t
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        t => t.clone(),
    };
    match kind.as_str() {
        Some("object") => Value::Object(
            schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|k| (k.to_string(), minimal(doc, &schema["properties"][k])))
                .collect(),
        ),
        Some("array") => json!([]),
        Some("string") => json!(""),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}

/// `{"A": [{"B": {"ZzUnknownField": 1}}]}` for `["A", "[]", "B"]`.
fn probe_body(at: &[String]) -> Value {
    let mut v = json!({"ZzUnknownField": 1});
    for key in at.iter().rev() {
        v = if key == "[]" {
            json!([v])
        } else {
            json!({ key: v })
        };
    }
    v
}

#[tokio::test]
async fn documented_fields_and_query_parameters_are_what_the_server_accepts() {
    let srv = TestServer::start().await;
    let doc = document();
    let mut objects_checked = 0;
    let mut queries_checked = 0;
    for o in operations(&doc) {
        if is_s3(o.operation) {
            continue;
        }
        let path = filled(o.path);
        let at = format!("{} {}", o.method.to_uppercase(), o.path);
        // Request bodies: every object the schema holds, field for field.
        if let Some(schema) =
            o.operation["requestBody"]["content"]["application/json"].get("schema")
        {
            let mut found = vec![];
            objects(&doc, schema, vec![], &mut found);
            assert!(
                !found.is_empty(),
                "{at}: a JSON body without a closed object"
            );
            for (place, alternatives) in found {
                let body = probe_body(&place).to_string();
                let a = api(&srv, TOKEN, o.method, &path, Some(body.as_bytes())).await;
                let message = a.json()["Message"].as_str().unwrap_or_default().to_string();
                assert_eq!(a.status, StatusCode::BAD_REQUEST, "{at} {body}: {message}");
                assert!(
                    message.contains("unknown field `ZzUnknownField`"),
                    "{at} {body}: {message}"
                );
                let accepted =
                    expected_fields(&message).unwrap_or_else(|| panic!("{at}: {message}"));
                let documented: Vec<BTreeSet<String>> = alternatives
                    .iter()
                    .map(|s| {
                        s["properties"]
                            .as_object()
                            .unwrap()
                            .keys()
                            .cloned()
                            .collect()
                    })
                    .collect();
                assert!(
                    documented.contains(&accepted),
                    "{at} at {place:?}: the server accepts {accepted:?}, the document says {documented:?}"
                );
                objects_checked += 1;
            }
        }
        // Query parameters: an unknown one is refused by name, and the refusal
        // lists exactly the documented ones.
        let query: BTreeSet<String> = o.operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        if query.is_empty() && o.method != "get" {
            continue;
        }
        // A handler that reads its query after its body gets the smallest body
        // its schema allows.
        let body = o.operation["requestBody"]["content"]["application/json"]
            .get("schema")
            .map(|schema| minimal(&doc, schema).to_string());
        let a = api(
            &srv,
            TOKEN,
            o.method,
            &format!("{path}?zzUnknownParam=1"),
            body.as_deref().map(str::as_bytes),
        )
        .await;
        let message = a.json()["Message"].as_str().unwrap_or_default().to_string();
        if query.is_empty() {
            assert!(
                !message.contains("zzUnknownParam"),
                "{at} parses a query the document does not list: {message}"
            );
            continue;
        }
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{at}: {message}");
        assert!(message.contains("zzUnknownParam"), "{at}: {message}");
        if let Some(accepted) = expected_fields(&message) {
            assert_eq!(
                accepted, query,
                "{at}: the query parameters the server accepts"
            );
        }
        queries_checked += 1;
    }
    assert!(objects_checked > 40, "{objects_checked} body objects");
    assert!(queries_checked > 20, "{queries_checked} queries");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Routes registered with a plain axum call answer without being in the
/// document. Outside these files every route goes through `routes!` beside its
/// `#[utoipa::path]`.
const PLAIN_ROUTES_ALLOWED: &[(&str, &str)] = &[
    (
        "src/console/mod.rs",
        "the console's HTML pages for a browser (behind the session cookie), not API operations",
    ),
    ("src/cups/handler.rs", "the CUPS listener, not the API's"),
    ("src/lns/handler.rs", "the LNS listener, not the API's"),
];

#[test]
fn no_route_is_registered_outside_the_documented_routers() {
    let root = root();
    let mut files = vec![];
    rust_files(&root.join("src"), &mut files);
    let mut plain = vec![];
    let mut annotated = 0;
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        annotated += text.matches("#[utoipa::path(").count();
        if PLAIN_ROUTES_ALLOWED.iter().any(|(file, _)| *file == rel) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                if code.contains(call) {
                    plain.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        plain.is_empty(),
        "routes registered outside the OpenAPI routers (register them with routes!(handler) and #[utoipa::path], or add the file to PLAIN_ROUTES_ALLOWED with the reason):\n{}",
        plain.join("\n")
    );
    // Every annotated handler is in the document (the S3 router's among them):
    // each `#[utoipa::path]` is one operation.
    let documented = operations(&document()).len();
    assert_eq!(
        annotated, documented,
        "{annotated} #[utoipa::path] handlers in src/, {documented} operations in the document: a handler is annotated but not registered"
    );
}

#[test]
fn the_books_api_reference_is_generated_from_the_code() {
    let page = root().join("docs/src/api-reference.md");
    let want = openapi::markdown(&document());
    if std::env::var("UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&page, &want).unwrap();
    }
    let have = std::fs::read_to_string(&page).unwrap_or_default();
    if have != want {
        let first = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "docs/src/api-reference.md differs from what the code generates (first at line {}); regenerate it: {REGENERATE}",
            first + 1
        );
    }
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).unwrap();
    assert!(
        summary.contains("(api-reference.md)"),
        "SUMMARY.md lists the reference"
    );
    for o in operations(&document()) {
        assert!(want.contains(&format!("`{}`", o.text("operationId"))));
    }
}

#[test]
fn the_cli_prints_the_document_and_the_page_without_a_server() {
    let bin = env!("CARGO_BIN_EXE_stationkeeper");
    let out = std::process::Command::new(bin)
        .arg("openapi")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, document());
    let out = std::process::Command::new(bin)
        .args(["openapi", "--markdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        openapi::markdown(&document())
    );
    let out = std::process::Command::new(bin)
        .args(["openapi", "--yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown flag is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yaml"));
}

#[tokio::test]
async fn the_console_renders_the_reference_for_a_signed_in_operator() {
    let srv = TestServer::start().await;
    let signed_out = http(&srv, Method::GET, "/console/api", None, None).await;
    assert_eq!(
        signed_out.status,
        StatusCode::SEE_OTHER,
        "signed out: to the sign-in page"
    );
    let signed_in = http(
        &srv,
        Method::POST,
        "/console/sign-in",
        None,
        Some(&format!("token={TOKEN}")),
    )
    .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let cookie = signed_in
        .cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let reference = http(&srv, Method::GET, "/console/api", Some(&cookie), None).await;
    let page = reference.body;
    assert_eq!(reference.status, StatusCode::OK, "{page}");
    assert!(
        page.contains("href=\"/console/api\""),
        "the navigation links it"
    );
    let doc = document();
    for o in operations(&doc) {
        let id = o.text("operationId");
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "{id} is not on the page"
        );
        let shown = format!("{} {}", o.method.to_uppercase(), o.path);
        assert!(page.contains(&shown), "{shown} is not on the page");
    }
    let schemas: BTreeMap<String, Value> =
        serde_json::from_value(doc["components"]["schemas"].clone()).unwrap();
    for name in schemas.keys() {
        assert!(
            page.contains(&format!("id=\"schema-{name}\"")),
            "schema {name}"
        );
    }
    // A body's fields and a parameter's description are there.
    assert!(page.contains("<code>GatewayEui</code>"));
    assert!(
        page.contains("The gateway&#39;s Id, or its EUI in any form.")
            || page.contains("The gateway's Id, or its EUI in any form.")
    );
    assert!(!page.contains("<script"));
}
