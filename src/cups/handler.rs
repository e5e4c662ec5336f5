//! The I/O shell around `decide`: read the body (bounded in size and time), parse
//! it, authenticate the gateway, load what it should have, decide, record the poll
//! in one transaction, and answer with `Content-Length` (never chunked). Only
//! genuine authentication failures get a non-200 answer, because any non-200
//! sends station to its backup credentials (cups-protocol.md §5.2).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Limited};

use super::answer::AnswerHead;
use super::contacts::Seen;
use super::decide::{decide, Decision, Target, UpdateSection, Wanted};
use super::request::UpdateInfo;
use super::throttle::Throttled;
use crate::app::{now, App, AppState};
use crate::config::UnknownGateways;
use crate::filebody::FileBody;
use crate::firmware::task::{self, Reported, Version};
use crate::identity::{authenticate, token_evidence, Auth, CredKind, Evidence, Proof, Service};
use crate::logguard::{escaped, Reason};
use crate::provisioning::{self, target_uri};
use crate::server::ConnInfo;
use crate::store::{
    CredState, Credential, CupsReport, DefinitionRow, FirmwareContext, Gateway, NewGateway, Origin,
    PollContext, PollRecord, Registration, StoreError,
};

/// How often one poll re-plans after losing a race for its gateway's task
/// before it answers without touching tasks.
const MAX_REPLANS: u32 = 4;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/update-info", post(update_info))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::time_cups,
        ))
        .with_state(app)
}

/// What `POST /update-info` answers to a request it refuses.
struct Refusal {
    status: StatusCode,
    /// Counted; `None` for an internal failure, which is logged where it happens.
    reason: Option<Reason>,
    /// The router id the request claimed, once it was read.
    router: Option<crate::eui::Eui>,
    /// The answer's text.
    answer: String,
    /// The log line's text; more than the answer for 403s.
    detail: String,
}

/// The one 403 text: it must not tell a prober whether a router id is
/// registered (issue 9); the log line says which it was.
const FORBIDDEN: &str =
    "forbidden: unknown router, or credentials that do not prove it; the server log says which";

impl Refusal {
    /// A refusal whose answer and log line are the same (400, 408, 413).
    fn plain(status: StatusCode, reason: Reason, text: String) -> Refusal {
        Refusal {
            status,
            reason: Some(reason),
            router: None,
            answer: text.clone(),
            detail: text,
        }
    }

    /// A 403 to `router`: the uniform answer, the detail for the log only.
    fn forbidden(reason: Reason, router: crate::eui::Eui, detail: String) -> Refusal {
        Refusal {
            status: StatusCode::FORBIDDEN,
            reason: Some(reason),
            router: Some(router),
            answer: FORBIDDEN.into(),
            detail,
        }
    }

    fn internal() -> Refusal {
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: None,
            router: None,
            answer: "internal error".into(),
            detail: String::new(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain")],
            self.answer + "\n",
        )
            .into_response()
    }
}

/// Counts a refusal and logs it if its source still has log budget.
fn log_refusal(app: &AppState, conn: &ConnInfo, r: &Refusal) {
    app.metrics.cups_refused(r.reason);
    let Some(reason) = r.reason else { return };
    app.refused.note(r.router, reason, conn.remote, &r.detail);
    if let Some(suppressed) = app.refusals.note(reason, conn.remote.ip()) {
        tracing::warn!(peer = %conn.remote, status = r.status.as_u16(), "CUPS request refused: {}{suppressed}", r.detail);
    }
}

async fn read_body(app: &AppState, body: Body) -> Result<Bytes, Refusal> {
    let limit = app.config.limits.cups_body_bytes;
    let secs = app.config.limits.body_timeout_secs;
    match tokio::time::timeout(
        Duration::from_secs(secs),
        Limited::new(body, limit).collect(),
    )
    .await
    {
        Err(_) => Err(Refusal::plain(
            StatusCode::REQUEST_TIMEOUT,
            Reason::Timeout,
            format!("request body did not arrive within {secs} s"),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            Reason::TooLarge,
            format!("request body is over {limit} bytes; station sends about 300"),
        )),
        Ok(Err(e)) => Err(Refusal::plain(
            StatusCode::BAD_REQUEST,
            Reason::BadRequest,
            format!("reading body: {}", escaped(&e.to_string())),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

async fn update_info(State(app): State<App>, req: Request) -> Response {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    match handle(&app, &conn, &parts.headers, body).await {
        Ok(r) => r,
        Err(refusal) => {
            log_refusal(&app, &conn, &refusal);
            refusal.into_response()
        }
    }
}

/// One poll, from the request to the answer, as named steps in the order they run.
/// Each step either hands the next one what it needs or refuses the poll.
async fn handle(
    app: &AppState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let poll = identify(app, conn, headers, body).await?;
    if let Some(settled) = answer_from_memo(app, conn, &poll) {
        return Ok(settled);
    }
    let mut ctx = load(app, conn, &poll).await?;
    let proof = authenticate_poll(app, &poll, &ctx)?;
    app.lns.nudges.done(poll.eui);
    provision(app, &poll, &mut ctx, proof.is_none()).await?;
    let recorded = plan_and_record(app, conn, &poll, ctx, proof.as_ref()).await?;
    log_transitions(app, poll.eui, &recorded.plan);
    Ok(answer(app, conn, poll.eui, recorded))
}

/// A parsed poll and who it claims to come from.
struct Poll {
    eui: crate::eui::Eui,
    info: UpdateInfo,
    evidence: Evidence,
    /// What `memo` knows this request by (body and evidence).
    digest: u64,
    reported: Version,
    register_mode: bool,
}

impl Poll {
    /// The refusal for a store failure, logged here with the gateway's EUI.
    fn internal(&self, e: &dyn std::fmt::Display) -> Refusal {
        tracing::error!(gateway = %self.eui, "CUPS poll failed: {e}");
        Refusal::internal()
    }
}

/// Step 1, identify: read and parse the body and gather the evidence (client
/// certificate, token). Without a certificate or a token nothing can prove an id,
/// so a prober gets its 403 without costing a database lookup. Only open
/// registration admits such a poll (a gateway it registered that has no
/// credentials yet).
async fn identify(
    app: &AppState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
) -> Result<Poll, Refusal> {
    let bytes = read_body(app, body).await?;
    let info = UpdateInfo::parse(&bytes)
        .map_err(|e| Refusal::plain(StatusCode::BAD_REQUEST, Reason::BadRequest, e.to_string()))?;
    let evidence = Evidence {
        cert: conn.cert.clone(),
        token_sha256: token_evidence(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ),
    };
    let digest = app.memo.digest(&bytes, &evidence);
    let register_mode = app.config.gateways.unknown == UnknownGateways::Register;
    let eui = info.router;
    if evidence.cert.is_none() && evidence.token_sha256.is_none() && !register_mode {
        return Err(Refusal::forbidden(
            Reason::NoCredentials,
            eui,
            format!("router {eui} presented no client certificate and no token"),
        ));
    }
    let reported = Version {
        station: info.station.clone(),
        package: info.package.clone(),
        model: info.model.clone(),
    };
    Ok(Poll {
        eui,
        info,
        evidence,
        digest,
        reported,
        register_mode,
    })
}

/// A poll that settled before with the same request, while nothing a poll reads
/// has changed since, gets the answer the whole path would give: nothing to do.
/// Only its contact is new.
fn answer_from_memo(app: &AppState, conn: &ConnInfo, poll: &Poll) -> Option<Response> {
    let proof = app.memo.settled(poll.eui, poll.digest, app.store.epoch())?;
    app.lns.nudges.done(poll.eui);
    app.metrics.cups_from_memory();
    app.contacts
        .record(poll.eui, Seen::now(conn.remote, Some(proof)));
    let recorded = Recorded {
        plan: task::Plan::default(),
        update: None,
        decision: Decision {
            head: AnswerHead::nothing(),
            confirmed: vec![],
        },
        attempt: None,
        auth: Some(proof),
    };
    Some(answer(app, conn, poll.eui, recorded))
}

/// Step 2, load: the gateway with its credentials and tasks, registering an
/// unknown EUI in register mode; any other unknown EUI gets 403.
async fn load(app: &AppState, conn: &ConnInfo, poll: &Poll) -> Result<PollContext, Refusal> {
    let eui = poll.eui;
    let loaded = app
        .store
        .poll_context(eui, poll.reported.clone())
        .await
        .map_err(|e| poll.internal(&e))?;
    match loaded {
        Some(ctx) => Ok(ctx),
        None if poll.register_mode => {
            register(app, conn, eui).await?;
            app.store
                .poll_context(eui, poll.reported.clone())
                .await
                .map_err(|e| poll.internal(&e))?
                .ok_or_else(|| poll.internal(&"registered gateway vanished"))
        }
        None => Err(Refusal::forbidden(
            Reason::UnknownGateway,
            eui,
            format!("unknown router {eui} ({}); register it with `stationkeeper gateways create --eui {eui}` or set [gateways] unknown = \"register\"", eui.to_id6()),
        )),
    }
}

/// Step 3, authenticate: the proof that the evidence names this gateway, or
/// `None` for a gateway open registration created that has not yet confirmed a
/// CUPS generation (trust on first use). Gateways the operator created always
/// need their credentials.
fn authenticate_poll(
    app: &AppState,
    poll: &Poll,
    ctx: &PollContext,
) -> Result<Option<Proof>, Refusal> {
    let cn_binding = app.tls.issuer.is_none();
    match authenticate(
        Service::Cups,
        poll.eui,
        &poll.evidence,
        &ctx.credentials,
        cn_binding,
    ) {
        Ok(p) => Ok(Some(p)),
        Err(_)
            if poll.register_mode
                && ctx.gateway.gw.origin == Origin::Cups
                && !ctx
                    .credentials
                    .iter()
                    .any(|c| c.service == Service::Cups && c.confirmed_at.is_some()) =>
        {
            Ok(None)
        }
        Err(reason) => Err(Refusal::forbidden(
            Reason::NotAuthenticated,
            poll.eui,
            format!("gateway {} not authenticated: {reason}", poll.eui),
        )),
    }
}

/// Step 4, provision: a gateway we send an LNS URI must be able to use it, so it
/// gets an LNS token if it has no LNS credentials yet, and (open registration
/// only) a CUPS token to prove itself next time. The credentials are then
/// loaded again.
async fn provision(
    app: &AppState,
    poll: &Poll,
    ctx: &mut PollContext,
    unproven: bool,
) -> Result<(), Refusal> {
    let gw = &ctx.gateway;
    let mut missing = vec![];
    if target_uri(app, gw, Service::Lns).is_some()
        && current(&ctx.credentials, Service::Lns).is_none()
    {
        missing.push(Service::Lns);
    }
    if unproven && current(&ctx.credentials, Service::Cups).is_none() {
        missing.push(Service::Cups);
    }
    for service in &missing {
        provisioning::issue(app, gw, *service, CredKind::Token)
            .await
            .map_err(|e| poll.internal(&e))?;
    }
    if !missing.is_empty() {
        ctx.credentials = app
            .store
            .credentials(gw.gw.id.clone())
            .await
            .map_err(|e| poll.internal(&e))?;
    }
    Ok(())
}

/// What steps 5 and 6 settled: the task plan, the update (if one goes out), the
/// answer head and the delivery attempt to record the download under.
struct Recorded {
    plan: task::Plan,
    update: Option<(DefinitionRow, tokio::fs::File)>,
    decision: Decision,
    attempt: Option<i64>,
    auth: Option<Proof>,
}

/// Steps 5 and 6, plan and record: plan the firmware, decide the answer, and
/// record the poll in one transaction. When another poll of this gateway moved
/// its task first, the record is refused as stale: load the tasks again and
/// re-plan. After MAX_REPLANS the poll is answered without touching tasks (the
/// next poll steps them), so a burst of polls never gets a 5xx. A settled poll
/// (nothing new) writes only its contact time, behind.
async fn plan_and_record(
    app: &AppState,
    conn: &ConnInfo,
    poll: &Poll,
    ctx: PollContext,
    proof: Option<&Proof>,
) -> Result<Recorded, Refusal> {
    let gw = &ctx.gateway;
    let info = &poll.info;
    let reported = Reported {
        version: poll.reported.clone(),
        keys: info.keys.clone(),
    };
    let wanted = wanted(app, gw, &ctx.credentials);
    // Station copies its regular set to cups-bak once, on its first successful
    // poll: the generation that authenticated that poll must keep working.
    let backup = match proof {
        Some(Proof::Generation { generation, .. }) if gw.last_report.is_none() => {
            Some((Service::Cups, *generation))
        }
        _ => None,
    };
    let auth = proof.copied();
    let report = report_of(info, conn, &Auth(proof).to_string());
    let epoch = ctx.epoch;
    let mut fw = ctx.firmware;
    let mut replans = 0;
    loop {
        let (plan, update) = plan_firmware(app, poll.eui, &gw.gw.id, &fw, &reported).await;
        let section = update.as_ref().map(|(d, _)| UpdateSection {
            key_crc: d.sig_key_crc,
            signature: d.signature.clone(),
            len: d.blob_size as u32,
        });
        let decision = decide(info, &wanted, section.as_ref());
        decision.head.validate().map_err(|e| poll.internal(&e))?;
        let confirmed = news(&decision.confirmed, &ctx.credentials);
        let settled = confirmed.is_empty()
            && backup.is_none()
            && plan.changes.is_empty()
            && gw
                .last_report
                .as_ref()
                .is_some_and(|last| same_report(last, &report));
        if settled {
            remember_if_settled_for_good(app, poll, epoch, proof, &fw, &decision, replans);
            app.contacts.record(poll.eui, Seen::now(conn.remote, auth));
            return Ok(Recorded {
                plan,
                update,
                decision,
                attempt: None,
                auth,
            });
        }
        app.memo.forget(poll.eui);
        app.contacts.forget(poll.eui);
        let recorded = app
            .store
            .record_poll(PollRecord {
                gateway_id: gw.gw.id.clone(),
                report: report.clone(),
                confirmed,
                backup,
                tasks: plan.changes.clone(),
                bytes_total: decision.head.content_length(),
            })
            .await;
        match recorded {
            Ok(attempt) => {
                return Ok(Recorded {
                    plan,
                    update,
                    decision,
                    attempt,
                    auth,
                })
            }
            Err(StoreError::Stale(why)) => {
                replans += 1;
                tracing::debug!(gateway = %poll.eui, replans, "re-planning a poll: {why}");
                fw = if replans < MAX_REPLANS {
                    app.store
                        .firmware_context(gw.gw.id.clone(), reported.version.clone())
                        .await
                        .map_err(|e| poll.internal(&e))?
                } else {
                    FirmwareContext::default()
                };
            }
            Err(e) => return Err(poll.internal(&e)),
        }
    }
}

/// A settled poll is remembered (`memo`) when its answer cannot change without
/// a write to the store: it proved who it is, no task is open (a task's plan
/// depends on time) and no definition waits for its version.
fn remember_if_settled_for_good(
    app: &AppState,
    poll: &Poll,
    epoch: u64,
    proof: Option<&Proof>,
    fw: &FirmwareContext,
    decision: &Decision,
    replans: u32,
) {
    match proof {
        Some(proof)
            if replans == 0
                && fw.open.is_none()
                && fw.candidates.is_empty()
                && decision.head == AnswerHead::nothing() =>
        {
            app.memo.remember(poll.eui, poll.digest, epoch, *proof)
        }
        _ => app.memo.forget(poll.eui),
    }
}

/// The report a poll stores: what the gateway said, when, from where and how it
/// proved itself.
fn report_of(info: &UpdateInfo, conn: &ConnInfo, auth: &str) -> CupsReport {
    CupsReport {
        at: now(),
        peer: conn.remote.to_string(),
        station: info.station.clone(),
        model: info.model.clone(),
        package: info.package.clone(),
        keys: info.keys.clone(),
        cups_uri: info.cups_uri.clone(),
        tc_uri: info.tc_uri.clone(),
        cups_cred_crc: info.cups_cred_crc,
        tc_cred_crc: info.tc_cred_crc,
        auth: auth.to_string(),
    }
}

/// Every task status change is one `task transition` event, after the record
/// committed.
fn log_transitions(app: &AppState, eui: crate::eui::Eui, plan: &task::Plan) {
    for c in &plan.changes {
        if Some(c.to) != c.from {
            app.metrics
                .task_transition(c.from.map_or("(new)", |s| s.as_str()), c.to.as_str());
            tracing::info!(
                gateway = %eui,
                definition = %c.definition_id,
                from = c.from.map_or("(new)", |s| s.as_str()),
                to = c.to.as_str(),
                reason = %c.reason,
                "task transition"
            );
        }
    }
}

/// Step 7, answer: the head, then the update file when one goes out, with the
/// exact total as `Content-Length`. The download's end is recorded on its
/// attempt (`Delivered` or `Interrupted`).
fn answer(app: &AppState, conn: &ConnInfo, eui: crate::eui::Eui, r: Recorded) -> Response {
    let h = &r.decision.head;
    app.metrics.cups_answered(h);
    // A fleet polls all day; only answers that change something are news.
    if *h == AnswerHead::nothing() {
        tracing::debug!(gateway = %eui, peer = %conn.remote, auth = %Auth(r.auth.as_ref()), "CUPS poll answered: nothing to do");
    } else {
        tracing::info!(
            gateway = %eui,
            peer = %conn.remote,
            auth = %Auth(r.auth.as_ref()),
            cups_uri = h.cups_uri.is_some(),
            tc_uri = h.tc_uri.is_some(),
            cups_cred = h.cups_cred.is_some(),
            tc_cred = h.tc_cred.is_some(),
            update_bytes = h.update_len,
            "CUPS poll answered"
        );
    }
    let head = Bytes::from(h.encode());
    let length = h.content_length();
    let body = match (r.update, r.attempt) {
        (Some((_, file)), Some(attempt)) => {
            let store = app.store.clone();
            let runtime = tokio::runtime::Handle::current();
            let sent_bytes = app.metrics.update_bytes();
            Body::new(
                FileBody::new(head, file, u64::from(h.update_len)).on_done(move |sent, complete| {
                    sent_bytes.inc_by(sent);
                    if !complete {
                        tracing::warn!(gateway = %eui, sent, total = length, "update download interrupted");
                    }
                    runtime.spawn(async move {
                        if let Err(e) = store.finish_attempt(attempt, sent, complete).await {
                            tracing::error!("recording the delivery attempt: {e}");
                        }
                    });
                }),
            )
        }
        _ => Body::from(head),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response()
}

/// Plans the firmware part of a poll: step the open task, or start the first
/// matching definition. If the plan delivers, the update file is opened here; if
/// it cannot be, that task is left where it is and nothing is sent (never
/// half-deliver), so the next poll tries again.
async fn plan_firmware(
    app: &AppState,
    eui: crate::eui::Eui,
    gateway_id: &str,
    fw: &FirmwareContext,
    reported: &Reported,
) -> (task::Plan, Option<(DefinitionRow, tokio::fs::File)>) {
    let candidates: Vec<_> = fw.candidates.iter().map(|d| d.machine()).collect();
    let mut plan = task::plan(fw.open.as_ref().map(|(t, _)| t), &candidates, reported);
    let Some(change) = plan.delivery().cloned() else {
        return (plan, None);
    };
    // The campaign step: a gateway in an open wave may have to wait (window, FUOTA).
    if let Some(why) = app.campaigns.hold(gateway_id) {
        hold_delivery(&mut plan, why);
        return (plan, None);
    }
    let def = fw
        .open
        .iter()
        .map(|(_, d)| d)
        .chain(&fw.candidates)
        .find(|d| d.id == change.definition_id)
        .expect("the plan delivers a definition it was given");
    match open_update(app, def).await {
        Ok(file) => (plan, Some((def.clone(), file))),
        Err(e) => {
            tracing::error!(gateway = %eui, definition = %def.id, "cannot deliver update: {e}");
            hold_delivery(
                &mut plan,
                format!("the update file cannot be read on the server ({e}); it is sent once that is fixed"),
            );
            (plan, None)
        }
    }
}

/// Keeps the delivering change where it was, with `why` as its reason: nothing
/// is sent on this poll and the next one tries again.
fn hold_delivery(plan: &mut task::Plan, why: String) {
    for c in plan.changes.iter_mut().filter(|c| c.deliver) {
        c.deliver = false;
        c.to = c.from.unwrap_or(task::Status::Pending);
        c.reason = why.clone();
    }
}

/// Open registration of an unknown EUI, within the `[gateways]` limits: the
/// per-source and global rates (`throttle`), then the cap on gateways that never
/// confirmed their credentials. Refusing new ones at the cap, rather than pruning
/// the oldest, means unauthenticated traffic never deletes a gateway: pruning
/// would let a flood evict real gateways between their first and second poll.
async fn register(app: &AppState, conn: &ConnInfo, eui: crate::eui::Eui) -> Result<(), Refusal> {
    let g = &app.config.gateways;
    if let Err(t) = app.registrations.admit(conn.remote.ip()) {
        let (who, key) = match t {
            Throttled::Source => ("this address", "register_per_source_per_min"),
            Throttled::Global => ("all addresses together", "register_per_min"),
        };
        return Err(Refusal::forbidden(
            Reason::RegistrationRefused,
            eui,
            format!("unknown router {eui}: open registration is throttled ({who} reached [gateways] {key}); a later poll is admitted"),
        ));
    }
    let new = NewGateway {
        id: crate::app::new_id(),
        eui,
        name: format!("auto-{eui}"),
        description: Some("registered by its first CUPS poll".into()),
        rf_region: None,
        sub_bands: None,
        join_eui_filters: None,
        net_id_filters: None,
        origin: Origin::Cups,
        created_at: now(),
    };
    match app.store.register_gateway(new, g.max_unconfirmed).await {
        Ok(Registration::Created(gw)) => {
            tracing::info!(gateway = %eui, id = %gw.gw.id, peer = %conn.remote, "registered unknown gateway ([gateways] unknown = \"register\")");
            Ok(())
        }
        Ok(Registration::AlreadyThere(_)) => Ok(()),
        Ok(Registration::Full { unconfirmed }) => Err(Refusal::forbidden(
            Reason::RegistrationRefused,
            eui,
            format!("unknown router {eui}: {unconfirmed} gateways that open registration created have not confirmed their credentials ([gateways] max_unconfirmed); delete stale ones or raise the limit"),
        )),
        Err(e) => {
            tracing::error!(gateway = %eui, "registering an unknown gateway failed: {e}");
            Err(Refusal::internal())
        }
    }
}

/// Opens a definition's update file and checks it still has the registered size.
async fn open_update(app: &AppState, def: &DefinitionRow) -> std::io::Result<tokio::fs::File> {
    let path = app
        .blobs
        .path(&def.blob_id)
        .ok_or_else(|| std::io::Error::other(format!("bad blob id {}", def.blob_id)))?;
    let file = tokio::fs::File::open(&path).await?;
    let len = file.metadata().await?.len();
    if len != def.blob_size {
        return Err(std::io::Error::other(format!(
            "{} is {len} bytes, the store says {}",
            path.display(),
            def.blob_size
        )));
    }
    Ok(file)
}

/// Whether two reports agree on everything but when, from where and how.
fn same_report(a: &CupsReport, b: &CupsReport) -> bool {
    (
        &a.station,
        &a.model,
        &a.package,
        &a.keys,
        &a.cups_uri,
        &a.tc_uri,
        a.cups_cred_crc,
        a.tc_cred_crc,
    ) == (
        &b.station,
        &b.model,
        &b.package,
        &b.keys,
        &b.cups_uri,
        &b.tc_uri,
        b.cups_cred_crc,
        b.tc_cred_crc,
    )
}

/// The confirmations that change something: a generation not yet confirmed, or
/// older generations still to retire. A settled gateway's poll then writes only
/// its report.
fn news(confirmed: &[(Service, u32)], creds: &[Credential]) -> Vec<(Service, u32)> {
    confirmed
        .iter()
        .copied()
        .filter(|&(service, generation)| {
            creds.iter().any(|c| {
                c.service == service
                    && ((c.generation == generation && c.confirmed_at.is_none())
                        || (c.generation < generation && c.state != CredState::Retired))
            })
        })
        .collect()
}

fn current(creds: &[Credential], service: Service) -> Option<&Credential> {
    creds
        .iter()
        .find(|c| c.service == service && c.state == CredState::Current)
}

fn wanted(app: &AppState, gw: &Gateway, creds: &[Credential]) -> Wanted {
    let target = |service| {
        current(creds, service).map(|c| Target {
            generation: c.generation,
            blob: c.blob.clone(),
            crc: c.blob_crc,
        })
    };
    // The LNS side is only managed when we know an LNS for this gateway; otherwise
    // its tc.* files (perhaps pointing at another network server) are left alone.
    let tc_uri = target_uri(app, gw, Service::Lns);
    Wanted {
        cups_uri: target_uri(app, gw, Service::Cups).unwrap_or_else(|| app.cups_uri.clone()),
        tc_cred: tc_uri.as_ref().and_then(|_| target(Service::Lns)),
        tc_uri,
        cups_cred: target(Service::Cups),
    }
}
