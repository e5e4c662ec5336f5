//! The console's API reference page (`/console/api`): the OpenAPI document the
//! API serves at `GET /openapi.json`, read through `api_call` like every other
//! page, rendered on the server. Operations by tag, each with its method, path,
//! summary, parameters, request body fields and answers; then every schema the
//! bodies refer to, so a `$ref` is a link within the page. The descriptions are
//! CommonMark; `prose` renders the part of it they use (paragraphs, `*` lists,
//! code spans, bold), escaping everything else. No JavaScript.

use axum::extract::{Extension, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;

use super::{api_call, page, Signed};
use crate::api::openapi::{operations, OperationView};
use crate::api::Caller;
use crate::app::App;

pub async fn api_reference(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
) -> Result<Markup, Response> {
    let doc = api_call(&app, &caller, Method::GET, "/openapi.json", None)
        .await
        .map_err(|(status, msg)| (status, format!("{msg}\n")).into_response())?;
    if !doc["paths"].is_object() {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "console: /openapi.json has no paths\n",
        )
            .into_response());
    }
    Ok(page(&s, "API reference", render(&doc)))
}

/// The whole page body for a document.
fn render(doc: &Value) -> Markup {
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
    let schemas = doc["components"]["schemas"].as_object();
    html! {
        p.hint {
            (doc["info"]["title"].as_str().unwrap_or_default()) " "
            (doc["info"]["version"].as_str().unwrap_or_default()) ", "
            (ops.len()) " operations. The OpenAPI document itself is "
            a href="/openapi.json" { "/openapi.json" }
            " (readable without a token); " code { "stationkeeper openapi" }
            " prints it without a server."
        }
        (prose(doc["info"]["description"].as_str().unwrap_or_default()))
        h2 { "Contents" }
        ul {
            @for (tag, _) in &tags {
                li { a href={ "#" (anchor("tag", tag)) } { (tag) } " (" (ops.iter().filter(|o| o.tag == *tag).count()) ")" }
            }
            li { a href="#schemas" { "Schemas" } }
        }
        @for (tag, about) in &tags {
            h2 id=(anchor("tag", tag)) { (tag) }
            div.hint { (prose(about)) }
            @for o in ops.iter().filter(|o| o.tag == *tag) {
                (operation(doc, o))
            }
        }
        h2 id="schemas" { "Schemas" }
        @for (name, schema) in schemas.into_iter().flatten() {
            h3 id=(anchor("schema", name)) { (name) }
            @if let Some(d) = schema["description"].as_str() { div.hint { (prose(d)) } }
            (fields(schema))
        }
    }
}

/// An `id` for a tag or a schema: letters, digits and '_', the rest as '-'.
fn anchor(kind: &str, name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{kind}-{slug}")
}

fn operation(doc: &Value, o: &OperationView) -> Markup {
    let op = o.operation;
    let open = op["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|m| m.is_empty()))
    });
    let sigv4_only = op["security"]
        .as_array()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|r| r.get("sigv4").is_some()));
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let body = &op["requestBody"];
    html! {
        h3 id=(o.text("operationId")) {
            code { (o.method.to_uppercase()) " " (o.path) } " · " (o.text("operationId"))
        }
        p { (inline(o.text("summary"))) }
        @if let Some(d) = op["description"].as_str() { div.hint { (prose(d)) } }
        @if open { p.hint { "No token needed." } }
        @if sigv4_only { p.hint { "Only for requests signed with SigV4 for the service s3." } }
        @if !params.is_empty() {
            table {
                tr { th { "parameter" } th { "in" } th { "required" } th { "type" } th { "description" } }
                @for p in &params {
                    tr {
                        td { code { (p["name"].as_str().unwrap_or_default()) } }
                        td { (p["in"].as_str().unwrap_or_default()) }
                        td { @if p["required"] == Value::Bool(true) { "yes" } }
                        td { (type_of(&p["schema"])) }
                        td { (inline(p["description"].as_str().unwrap_or_default())) }
                    }
                }
            }
        }
        @if let Some(content) = body["content"].as_object() {
            @for (media, c) in content {
                p {
                    "Request body (" code { (media) } ")"
                    @if body["required"] != Value::Bool(true) { ", optional" }
                    ": " (type_of(&c["schema"]))
                    @if let Some(d) = body["description"].as_str() { ". " (inline(d)) }
                }
                @if let Some(target) = resolve(doc, &c["schema"]) { (fields(target)) }
            }
        }
        table {
            tr { th { "status" } th { "answer" } th { "body" } }
            @for (status, r) in op["responses"].as_object().into_iter().flatten() {
                @let r = resolve(doc, r).unwrap_or(r);
                tr {
                    td { (status) }
                    td { (inline(r["description"].as_str().unwrap_or_default())) }
                    td {
                        @for (media, c) in r["content"].as_object().into_iter().flatten() {
                            code { (media) } " " (type_of(&c["schema"])) " "
                        }
                    }
                }
            }
        }
    }
}

/// CommonMark as the document's descriptions write it: paragraphs (blank-line
/// separated) and `* ` lists, with `inline` markup. Anything else is text.
fn prose(text: &str) -> Markup {
    let blocks: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    html! {
        @for block in blocks {
            @if block.starts_with("* ") {
                ul {
                    @for item in block.split("\n* ") {
                        li { (inline(item.trim_start_matches("* "))) }
                    }
                }
            } @else {
                p { (inline(block)) }
            }
        }
    }
}

/// Code spans (`` `x` ``) and bold (`**x**`); line breaks are spaces.
fn inline(text: &str) -> Markup {
    let text = text.replace('\n', " ");
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 {
                code { (part) }
            } @else {
                @for (j, piece) in part.split("**").enumerate() {
                    @if j % 2 == 1 { strong { (piece) } } @else { (piece) }
                }
            }
        }
    }
}

/// What a `$ref` (to a schema or a response) points at; the value itself when it
/// is no reference, `None` for a reference this document does not hold.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> Option<&'a Value> {
    match v["$ref"].as_str() {
        None => Some(v),
        Some(r) => {
            let mut at = doc;
            for part in r.strip_prefix("#/")?.split('/') {
                at = at.get(part)?;
            }
            Some(at)
        }
    }
}

/// A schema's type in a few words, with a link for a named schema.
fn type_of(schema: &Value) -> Markup {
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        return html! { a href={ "#" (anchor("schema", name)) } { (name) } };
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        let (nulls, real): (Vec<&Value>, Vec<&Value>) =
            alts.iter().partition(|a| a["type"] == "null");
        return html! {
            @for (i, a) in real.iter().enumerate() {
                @if i > 0 { " or " }
                (type_of(a))
            }
            @if !nulls.is_empty() { " or null" }
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let nullable = types.contains(&"null");
    let main: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    html! {
        @if main.is_empty() { "any" }
        @for (i, t) in main.iter().enumerate() {
            @if i > 0 { " or " }
            @if *t == "array" { "array of " (type_of(&schema["items"])) } @else { (t) }
        }
        @if let Some(f) = schema["format"].as_str() { " (" (f) ")" }
        @if let Some(e) = schema["enum"].as_array() {
            ": " @for (i, v) in e.iter().enumerate() { @if i > 0 { ", " } code { (v.as_str().unwrap_or_default()) } }
        }
        @if nullable { " or null" }
    }
}

/// An object schema's fields as a table (nothing for other schemas).
fn fields(schema: &Value) -> Markup {
    let Some(props) = schema["properties"].as_object() else {
        return type_of(schema);
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    html! {
        table {
            tr { th { "field" } th { "required" } th { "type" } th { "description" } }
            @for (name, p) in props {
                tr {
                    td { code { (name) } }
                    td { @if required.contains(&name.as_str()) { "yes" } }
                    td { (type_of(p)) }
                    td { (inline(p["description"].as_str().unwrap_or_default())) }
                }
            }
        }
        @if schema["additionalProperties"] == Value::Bool(false) {
            p.hint { "Any other field is refused (400, naming it)." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_operations_parameters_bodies_answers_and_schemas() {
        let doc = serde_json::to_value(crate::api::openapi::document()).unwrap();
        let html = render(&doc).into_string();
        for want in [
            "POST /wireless-gateways",
            "CreateWirelessGateway",
            "Register a gateway.",
            "identifierType",
            "<code>GatewayEui</code>",
            "href=\"#schema-GatewayLoRaWAN\"",
            "id=\"schema-GatewayLoRaWAN\"",
            "No such gateway.",
            "No token needed.",
            "Only for requests signed with SigV4 for the service s3.",
            // A guarded route's shared answer, resolved from components/responses.
            "No credentials, or a wrong bearer token",
        ] {
            assert!(html.contains(want), "{want} missing");
        }
        assert!(!html.contains("<script"), "no JavaScript");
    }

    #[test]
    fn descriptions_render_their_markdown_escaped() {
        let h = |t: &str| prose(t).into_string();
        assert_eq!(
            h("One `a<b>` and **bold**.\n\n* **x.** first\n  more\n* second"),
            "<p>One <code>a&lt;b&gt;</code> and <strong>bold</strong>.</p><ul><li><strong>x.</strong> first   more</li><li>second</li></ul>"
        );
        assert_eq!(inline("no markup <i>").into_string(), "no markup &lt;i&gt;");
    }

    #[test]
    fn types_read_nullable_arrays_refs_and_enums() {
        let t = |v: Value| type_of(&v).into_string();
        assert_eq!(
            t(serde_json::json!({"type": ["string", "null"]})),
            "string or null"
        );
        assert_eq!(
            t(serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/Tag"}})),
            "array of <a href=\"#schema-Tag\">Tag</a>"
        );
        assert_eq!(
            t(serde_json::json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/X"}]})),
            "<a href=\"#schema-X\">X</a> or null"
        );
        assert_eq!(
            t(serde_json::json!({"type": "string", "enum": ["Pause", "Abort"]})),
            "string: <code>Pause</code>, <code>Abort</code>"
        );
        assert_eq!(t(serde_json::json!({})), "any");
    }
}
