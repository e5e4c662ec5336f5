//! The console's pages, one handler each: Fleet, Gateways (searchable, paged on
//! the server), a gateway, FUOTA tasks with start/delete, Devices, Audit log.
//! Reads go through the API in-process (`api_call`) or the store functions the
//! API uses; controls go through the API.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{api_call, chart, csrf, json_table, page, Signed};
use crate::api::Caller;
use crate::app::App;

/// Gateways per page of the list.
const PAGE: usize = 50;
/// Entries in each "needs attention" list.
const ATTENTION: usize = 20;

type Page = Result<Markup, Response>;

fn failed(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("console: {e}")).into_response()
}

fn api_failed((status, msg): (StatusCode, String)) -> Response {
    (status, format!("{msg}\n")).into_response()
}

/// The `key` list of a GET through the API (the caller's rights apply); none
/// when the answer has no such list.
async fn api_list(
    app: &App,
    caller: &Caller,
    path: &str,
    key: &str,
) -> Result<Vec<Value>, Response> {
    let answer = api_call(app, caller, Method::GET, path, None)
        .await
        .map_err(api_failed)?;
    Ok(answer[key].as_array().cloned().unwrap_or_default())
}

pub async fn fleet(State(app): State<App>, Extension(s): Extension<Signed>) -> Page {
    let counts = app.store.fleet_counts().await.map_err(failed)?;
    let (versions, never) = app.store.fleet_versions().await.map_err(failed)?;
    let day_ago = crate::app::format_time(time::OffsetDateTime::now_utc() - time::Duration::DAY);
    let polled = app.store.polled_since(day_ago).await.map_err(failed)?;
    let failed_tasks = app.store.failed_tasks(ATTENTION).await.map_err(failed)?;
    let lns = app.lns.connected();
    let region_warnings: Vec<(String, String)> = lns
        .iter()
        .filter_map(|e| Some((e.to_string(), app.lns.connection(*e)?.stats.region_warning?)))
        .take(ATTENTION)
        .collect();
    let refused: Vec<_> = app
        .refused
        .refused_gateways(ATTENTION)
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .collect();
    let mut bars: Vec<(String, i64)> = versions
        .iter()
        .take(12)
        .map(|v| {
            (
                format!(
                    "{} / {} / {}",
                    v.station,
                    v.package.as_deref().unwrap_or("–"),
                    v.model
                ),
                v.count,
            )
        })
        .collect();
    let rest: i64 = versions.iter().skip(12).map(|v| v.count).sum();
    if rest > 0 {
        bars.push(("(other versions)".into(), rest));
    }
    if never > 0 {
        bars.push(("(never polled)".into(), never));
    }
    Ok(page(
        &s,
        "Fleet",
        html! {
            div.cards {
                div.card { b { (counts.gateways) } "gateways" }
                div.card { b { (polled) } "polled CUPS in 24 h" }
                div.card { b { (counts.gateways - polled) } "no CUPS contact in 24 h" }
                div.card { b { (lns.len()) } "connected to the LNS" }
            }
            h2 { "Versions" }
            (chart::bars(&bars))
            h2 { "Open tasks" }
            table { tr { th { "Status" } th { "Tasks" } }
                @for (st, n) in &counts.open_tasks { tr { td { (st) } td { (n) } } }
                @if counts.open_tasks.is_empty() { tr { td colspan="2" { "none" } } } }
            h2 { "FUOTA tasks" }
            table { tr { th { "Status" } th { "Tasks" } }
                @for (st, n) in &counts.fuota_tasks { tr { td { (st) } td { (n) } } }
                @if counts.fuota_tasks.is_empty() { tr { td colspan="2" { "none" } } } }
            // Running campaigns (issue 10) go here, from GET /fleet's Campaigns.
            h2 { "Needs attention" }
            table {
                tr { th { "Gateway" } th { "Problem" } th { "Since" } }
                @for t in &failed_tasks {
                    tr { td { a href={"/console/wireless-gateways/" (t.gateway_id)} { (t.eui) " " (t.name) } }
                         td { "task failed: " (t.reason) } td { (t.at) } }
                }
                @for (eui, n) in &refused {
                    tr { td { a href={"/console/wireless-gateways/" (eui)} { (eui) } }
                         td { (n) " recent CUPS refusals" } td { "–" } }
                }
                @for (eui, w) in &region_warnings {
                    tr { td { a href={"/console/wireless-gateways/" (eui)} { (eui) } } td { "region: " (w) } td { "–" } }
                }
                @if failed_tasks.is_empty() && refused.is_empty() && region_warnings.is_empty() {
                    tr { td colspan="3" { "nothing" } }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

pub async fn gateways(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Query(q): Query<ListQuery>,
) -> Page {
    let search = q.q.clone().unwrap_or_default();
    let mut rows = app
        .store
        .search_gateways(Some(search.clone()), q.after.clone(), PAGE + 1)
        .await
        .map_err(failed)?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let next = rows.last().map(|g| g.gw.id.clone()).filter(|_| more);
    Ok(page(
        &s,
        "Gateways",
        html! {
            form method="get" action="/console/wireless-gateways" {
                input type="search" name="q" value=(search) placeholder="name, EUI prefix or version";
                " " button type="submit" { "Search" }
            }
            table {
                tr { th { "EUI" } th { "Name" } th { "Station" } th { "Package" } th { "Model" } th { "Last CUPS contact" } th { "LNS" } }
                @for g in &rows {
                    @let r = g.last_report.as_ref();
                    tr {
                        td { a href={"/console/wireless-gateways/" (g.gw.id)} { code { (g.gw.eui) } } }
                        td { (g.gw.name) }
                        td { (r.map_or("–", |r| r.station.as_str())) }
                        td { (r.and_then(|r| r.package.as_deref()).unwrap_or("–")) }
                        td { (r.map_or("–", |r| r.model.as_str())) }
                        td { (r.map_or("never", |r| r.at.as_str())) }
                        td { @if app.lns.connection(g.gw.eui).is_some() { "connected" } @else { "–" } }
                    }
                }
            }
            @if rows.is_empty() { p { "No gateways match." } }
            @if let Some(n) = next {
                p { a href={"/console/wireless-gateways?q=" (urlencode(&search)) "&after=" (n)} { "Next page →" } }
            }
        },
    ))
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

pub async fn gateway(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Page {
    let get = |path: String| {
        let (app, caller) = (app.clone(), caller.clone());
        async move { api_call(&app, &caller, Method::GET, &path, None).await }
    };
    let gw = get(format!("/wireless-gateways/{id}"))
        .await
        .map_err(api_failed)?;
    let id = gw["Id"].as_str().unwrap_or_default().to_string();
    let firmware = get(format!("/wireless-gateways/{id}/firmware-information"))
        .await
        .unwrap_or(Value::Null);
    let stats = get(format!("/wireless-gateways/{id}/gateway-statistics"))
        .await
        .unwrap_or(Value::Null);
    let creds = get(format!("/wireless-gateways/{id}/credentials"))
        .await
        .unwrap_or(Value::Null);
    let task = get(format!("/wireless-gateways/{id}/tasks"))
        .await
        .unwrap_or(Value::Null);
    let refusals = get(format!("/wireless-gateways/{id}/refusals"))
        .await
        .unwrap_or(Value::Null);
    let name = gw["Name"].as_str().unwrap_or_default().to_string();
    Ok(page(
        &s,
        &format!("Gateway {name}"),
        html! {
            (json_table(&gw))
            h2 { "Last CUPS report" } (json_table(&firmware))
            h2 { "LNS connection" } (json_table(&stats))
            h2 { "Credential generations" } (json_table(&creds))
            h2 { "Task" } (json_table(&task))
            h2 { "Last CUPS refusals" } (json_table(&refusals["Refusals"]))
        },
    ))
}

pub async fn fuota_tasks(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
) -> Page {
    let tasks = api_list(
        &app,
        &caller,
        "/fuota-tasks?maxResults=250",
        "FuotaTaskList",
    )
    .await?;
    Ok(page(
        &s,
        "FUOTA tasks",
        html! {
            table {
                tr { th { "Name" } th { "Status" } th { "Id" } }
                @for t in &tasks {
                    tr {
                        td { a href={"/console/fuota-tasks/" (t["Id"].as_str().unwrap_or_default())} { (t["Name"].as_str().unwrap_or("(unnamed)")) } }
                        td { (t["Status"].as_str().unwrap_or_default()) }
                        td { code { (t["Id"].as_str().unwrap_or_default()) } }
                    }
                }
            }
            @if tasks.is_empty() { p { "No FUOTA tasks. Create one with " code { "stationkeeper fuota-tasks create" } "." } }
        },
    ))
}

pub async fn fuota_task(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Page {
    let t = api_call(
        &app,
        &caller,
        Method::GET,
        &format!("/fuota-tasks/{id}"),
        None,
    )
    .await
    .map_err(api_failed)?;
    let name = t["Name"].as_str().unwrap_or("(unnamed)").to_string();
    Ok(page(
        &s,
        &format!("FUOTA task {name}"),
        html! {
            p { "Status: " b { (t["Status"].as_str().unwrap_or_default()) } }
            form method="post" action={"/console/fuota-tasks/" (id) "/start"} style="display:inline" {
                (csrf(&s)) button type="submit" { "Start" }
            }
            " "
            form method="post" action={"/console/fuota-tasks/" (id) "/delete"} style="display:inline" {
                (csrf(&s)) button type="submit" { "Delete" }
            }
            (json_table(&t))
        },
    ))
}

pub async fn fuota_start(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    control(
        &app,
        &caller,
        Method::PUT,
        &format!("/fuota-tasks/{id}"),
        &format!("/console/fuota-tasks/{id}"),
    )
    .await
}

pub async fn fuota_delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    control(
        &app,
        &caller,
        Method::DELETE,
        &format!("/fuota-tasks/{id}"),
        "/console/fuota-tasks",
    )
    .await
}

/// Runs a control through the API and goes back to `then`, or shows the API's refusal.
async fn control(app: &App, caller: &Caller, method: Method, path: &str, then: &str) -> Response {
    match api_call(app, caller, method, path, Some(json!({}))).await {
        Ok(_) => Redirect::to(then).into_response(),
        Err(e) => api_failed(e),
    }
}

pub async fn devices(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
) -> Page {
    let devices = api_list(
        &app,
        &caller,
        "/wireless-devices?maxResults=250",
        "WirelessDeviceList",
    )
    .await?;
    Ok(page(
        &s,
        "Devices",
        html! {
            table {
                tr { th { "Name" } th { "DevEUI" } th { "Id" } }
                @for d in &devices {
                    tr {
                        td { a href={"/console/wireless-devices/" (d["Id"].as_str().unwrap_or_default())} { (d["Name"].as_str().unwrap_or("(unnamed)")) } }
                        td { code { (d["LoRaWAN"]["DevEui"].as_str().unwrap_or("–")) } }
                        td { code { (d["Id"].as_str().unwrap_or_default()) } }
                    }
                }
            }
            @if devices.is_empty() { p { "No devices." } }
        },
    ))
}

pub async fn device(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Page {
    let d = api_call(
        &app,
        &caller,
        Method::GET,
        &format!("/wireless-devices/{id}"),
        None,
    )
    .await
    .map_err(api_failed)?;
    let events = api_call(
        &app,
        &caller,
        Method::GET,
        &format!("/wireless-devices/{id}/events"),
        None,
    )
    .await
    .unwrap_or(Value::Null);
    let name = d["Name"].as_str().unwrap_or("(unnamed)").to_string();
    Ok(page(
        &s,
        &format!("Device {name}"),
        html! {
            (json_table(&d))
            h2 { "Last events (uplinks, joins, acknowledgements)" }
            (json_table(&events))
        },
    ))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    resource: Option<String>,
    actor: Option<String>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

pub async fn audit_log(
    State(app): State<App>,
    Extension(s): Extension<Signed>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> Page {
    let pairs: Vec<(&str, &str)> = [
        ("resource", q.resource.as_deref()),
        ("actor", q.actor.as_deref()),
        ("nextToken", q.next_token.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.filter(|v| !v.is_empty())?)))
    .collect();
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let log = api_call(
        &app,
        &caller,
        Method::GET,
        &format!("/audit-log?maxResults=100&{query}"),
        None,
    )
    .await
    .map_err(api_failed)?;
    let entries = log["Entries"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        v => v.to_string(),
    };
    Ok(page(
        &s,
        "Audit log",
        html! {
            form method="get" action="/console/audit-log" {
                input name="resource" placeholder="resource (e.g. fuota-tasks)" value=(q.resource.clone().unwrap_or_default());
                " " input name="actor" placeholder="actor (e.g. api-token)" value=(q.actor.clone().unwrap_or_default());
                " " button type="submit" { "Filter" }
            }
            table {
                tr { th { "At" } th { "Actor" } th { "Method" } th { "Path" } th { "Resource Id" } th { "Status" } th { "Summary" } }
                @for e in &entries {
                    tr { @for k in ["At", "Actor", "Method", "Path", "ResourceId", "Status", "Summary"] { td { (text(&e[k])) } } }
                }
            }
            @if let Some(t) = log["NextToken"].as_str() {
            p { a href={"/console/audit-log?" (older_page(&pairs, t))} { "Older entries →" } }
        }
        },
    ))
}

/// The audit page's query string for the page after `token`, same filters.
fn older_page(filters: &[(&str, &str)], token: &str) -> String {
    let mut next: Vec<(&str, &str)> = filters
        .iter()
        .copied()
        .filter(|(k, _)| *k != "nextToken")
        .collect();
    next.push(("nextToken", token));
    serde_urlencoded::to_string(&next).unwrap_or_default()
}
