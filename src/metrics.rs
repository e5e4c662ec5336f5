//! Prometheus metrics (`GET /metrics` on the operator API, behind its token): one
//! `Metrics` per server in `AppState`, holding its own `prometheus::Registry` (no
//! process-wide registry, so tests run many servers side by side). Counters that
//! happen on a request path are incremented where they happen (one line each);
//! counters other modules already keep (`logguard::Refusals`, `Devices::counters`,
//! `Lns::uplinks_dropped`) are exported, not duplicated: each scrape copies them
//! into mirror counters. Gauges that come from the store (open tasks, FUOTA tasks,
//! gateways) are read at scrape time with one store call. The encoder is the
//! classic text format (`promtool check metrics` 2.42 passes it; the OpenMetrics
//! form with `_created` samples it lints as missing help).

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::app::{App, AppState};
use crate::cups::answer::AnswerHead;
use crate::logguard::Reason;

/// Every metric name starts with this (Prometheus's naming conventions).
const NS: &str = "stationkeeper";

/// Request duration buckets, in seconds: a CUPS poll answers in about a
/// millisecond, a big API list in tens of them.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Task statuses counted as open (spec/operator-api.md), always exported, 0 or not.
const OPEN_TASK_STATUSES: [&str; 4] = ["PENDING", "IN_PROGRESS", "FIRST_RETRY", "SECOND_RETRY"];

pub struct Metrics {
    registry: Registry,
    /// CUPS polls by outcome (`nothing`, `uris`, `credentials`, `update`,
    /// `refused`, `error`); `reason` is the refusal reason, empty otherwise.
    cups_polls: IntCounterVec,
    /// Bytes of update files streamed to gateways (complete or not).
    update_bytes: IntCounter,
    /// Of the `nothing` answers, those `cups::memo` gave without the database.
    cups_memo_answers: IntCounter,
    task_transitions: IntCounterVec,
    request_duration: HistogramVec,
    lns_uplinks: IntCounter,
    fuota_frames: IntCounterVec,
    // Mirrors of counters kept elsewhere, brought up to date at each scrape.
    refusals: IntCounterVec,
    device_frames: IntCounterVec,
    device_joins: IntCounterVec,
    device_downlinks: IntCounterVec,
    lns_uplinks_dropped: IntCounter,
    // Gauges set at each scrape.
    open_tasks: IntGaugeVec,
    fuota_tasks: IntGaugeVec,
    lns_connected: IntGauge,
    gateways: IntGauge,
    unknown_routers: IntGauge,
    /// Held while a scrape copies mirrors, so two scrapes never add the same delta.
    scrape: Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

impl Metrics {
    pub fn new() -> Metrics {
        // The names are literals checked by the tests: a failure here is a bug.
        Self::build().expect("metric definitions are valid")
    }

    fn build() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(opts(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(opts(name, help))?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(opts(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(opts(name, help))?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to response head, by face (api, cups), route and status class.",
            )
            .namespace(NS)
            .buckets(DURATION_BUCKETS.to_vec()),
            &["face", "route", "status"],
        )?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::new(std::process::id() as i32, NS),
        ))?;
        let m = Metrics {
            cups_polls: counter_vec(
                "cups_polls_total",
                "CUPS polls by outcome: nothing, uris, credentials, update, refused (with reason), error.",
                &["outcome", "reason"],
            )?,
            update_bytes: counter(
                "cups_update_sent_bytes_total",
                "Bytes of update files streamed to gateways, complete downloads or not.",
            )?,
            cups_memo_answers: counter(
                "cups_polls_from_memory_total",
                "Of the CUPS polls answered nothing, those answered from memory: the gateway sent what it sent last time and nothing it depends on changed.",
            )?,
            task_transitions: counter_vec(
                "task_transitions_total",
                "Gateway task status changes by from and to ((new), (deleted) for creation and deletion).",
                &["from", "to"],
            )?,
            request_duration,
            lns_uplinks: counter(
                "lns_uplinks_total",
                "Uplink frames gateways sent over the LNS face.",
            )?,
            fuota_frames: counter_vec(
                "fuota_frames_total",
                "FUOTA multicast frames handed to gateways, by outcome (transmitted, not_transmitted).",
                &["outcome"],
            )?,
            refusals: counter_vec(
                "refusals_total",
                "Refused requests on every face, by reason.",
                &["reason"],
            )?,
            device_frames: counter_vec(
                "device_uplinks_total",
                "LoRaWAN uplinks at the device face by outcome (uplinks: deduplicated frames handled).",
                &["outcome"],
            )?,
            device_joins: counter_vec(
                "device_joins_total",
                "Join requests by outcome (accepted, refused).",
                &["outcome"],
            )?,
            device_downlinks: counter_vec(
                "device_downlinks_total",
                "Unicast device downlinks by outcome (sent, failed, skipped).",
                &["outcome"],
            )?,
            lns_uplinks_dropped: counter(
                "lns_uplinks_dropped_total",
                "Uplinks dropped because [lns] uplink_queue was full.",
            )?,
            open_tasks: gauge_vec(
                "open_tasks",
                "Open gateway tasks by status.",
                &["status"],
            )?,
            fuota_tasks: gauge_vec("fuota_tasks", "FUOTA tasks by status.", &["status"])?,
            lns_connected: gauge(
                "lns_connected_gateways",
                "Gateways with an open LNS websocket.",
            )?,
            gateways: gauge("gateways", "Registered wireless gateways.")?,
            unknown_routers: gauge(
                "cups_unknown_routers",
                "Unknown router ids remembered from refused CUPS polls ([console] unknown_routers at most).",
            )?,
            scrape: Mutex::new(()),
            registry,
        };
        // Series that exist from the start, so rate() sees their first increase.
        for outcome in ["nothing", "uris", "credentials", "update", "error"] {
            m.cups_polls.with_label_values(&[outcome, ""]);
        }
        for r in Reason::ALL {
            m.refusals.with_label_values(&[r.as_str()]);
        }
        for outcome in ["transmitted", "not_transmitted"] {
            m.fuota_frames.with_label_values(&[outcome]);
        }
        // The first transition of every task, so the family is there from the start.
        m.task_transitions.with_label_values(&["(new)", "PENDING"]);
        Ok(m)
    }

    /// Counts an answered CUPS poll by what the answer carries (the biggest part).
    pub fn cups_answered(&self, h: &AnswerHead) {
        let outcome = if h.update_len > 0 {
            "update"
        } else if h.cups_cred.is_some() || h.tc_cred.is_some() {
            "credentials"
        } else if h.cups_uri.is_some() || h.tc_uri.is_some() {
            "uris"
        } else {
            "nothing"
        };
        self.cups_polls.with_label_values(&[outcome, ""]).inc();
    }

    /// Counts a poll `cups::memo` answered (it is counted as answered too).
    pub fn cups_from_memory(&self) {
        self.cups_memo_answers.inc();
    }

    /// Counts a refused CUPS poll (`None`: an internal error).
    pub fn cups_refused(&self, reason: Option<Reason>) {
        match reason {
            Some(r) => self.cups_polls.with_label_values(&["refused", r.as_str()]),
            None => self.cups_polls.with_label_values(&["error", ""]),
        }
        .inc();
    }

    /// The counter of update bytes, for a body's completion callback to own.
    pub fn update_bytes(&self) -> IntCounter {
        self.update_bytes.clone()
    }

    pub fn task_transition(&self, from: &str, to: &str) {
        self.task_transitions.with_label_values(&[from, to]).inc();
    }

    pub fn lns_uplink(&self) {
        self.lns_uplinks.inc();
    }

    pub fn fuota_frame(&self, transmitted: bool) {
        let outcome = if transmitted {
            "transmitted"
        } else {
            "not_transmitted"
        };
        self.fuota_frames.with_label_values(&[outcome]).inc();
    }

    /// Brings mirrors and gauges up to date and encodes everything.
    fn encode(&self, app: &AppState, counts: &crate::store::FleetCounts) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let mirror = |c: &IntCounterVec, label: &str, value: u64| {
            let c = c.with_label_values(&[label]);
            c.inc_by(value.saturating_sub(c.get()));
        };
        for (reason, n) in app.refusals.snapshot() {
            mirror(&self.refusals, reason, n);
        }
        for (name, n) in app.devices.counters.snapshot() {
            match name {
                "joins_accepted" => mirror(&self.device_joins, "accepted", n),
                "joins_refused" => mirror(&self.device_joins, "refused", n),
                d if d.starts_with("downlinks_") => {
                    mirror(&self.device_downlinks, &d["downlinks_".len()..], n)
                }
                other => mirror(&self.device_frames, other, n),
            }
        }
        let dropped = app.lns.uplinks_dropped();
        self.lns_uplinks_dropped
            .inc_by(dropped.saturating_sub(self.lns_uplinks_dropped.get()));
        for s in OPEN_TASK_STATUSES {
            self.open_tasks.with_label_values(&[s]).set(0);
        }
        for (status, n) in &counts.open_tasks {
            self.open_tasks.with_label_values(&[status]).set(*n);
        }
        use crate::fuota::job::Status as F;
        for s in [
            F::Pending,
            F::SessionWaiting,
            F::InSession,
            F::Done,
            F::DeleteWaiting,
        ] {
            self.fuota_tasks.with_label_values(&[s.as_str()]).set(0);
        }
        for (status, n) in &counts.fuota_tasks {
            self.fuota_tasks.with_label_values(&[status]).set(*n);
        }
        self.gateways.set(counts.gateways);
        self.unknown_routers.set(app.refused.unknown_count() as i64);
        self.lns_connected.set(app.lns.connected().len() as i64);
        let mut out = Vec::new();
        // The text encoder only fails on a writer error; a Vec has none.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Prometheus metrics.
///
/// The text exposition format; every name starts with `stationkeeper_`, counters
/// end in `_total`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "GetMetrics",
    tag = crate::api::openapi::SERVICE,
    responses((status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain", body = String)),
)]
pub async fn serve(State(app): State<App>) -> Response {
    match app.store.fleet_counts().await {
        Ok(counts) => (
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            app.metrics.encode(&app, &counts),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("metrics: reading the store failed: {e}");
            crate::api::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                .into_response()
        }
    }
}

/// Middleware: times a request of `face` into the duration histogram, labelled
/// with its route template (never the raw path, whose Ids would make a series
/// per gateway).
pub async fn time_api(State(app): State<App>, req: Request, next: Next) -> Response {
    time(&app, "api", req, next).await
}

pub async fn time_cups(State(app): State<App>, req: Request, next: Next) -> Response {
    time(&app, "cups", req, next).await
}

async fn time(app: &AppState, face: &str, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = match resp.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    app.metrics
        .request_duration
        .with_label_values(&[face, &route, status])
        .observe(start.elapsed().as_secs_f64());
    resp
}
