//! Runs FUOTA tasks: the one part of `fuota` with I/O. A supervisor picks up every
//! stored task in `FuotaSession_Waiting` or `In_FuotaSession` (so a restart
//! resumes them) and runs one job per task. A job builds the task's frames once
//! (fragment N is an encrypted multicast frame with counter `fcnt_base + N − 1`),
//! waits for the start time, then sends round after round as `schedule` plans
//! them, through `Lns::send`. Each round's claims are stored before its frames
//! are handed to the gateways, so no counter is sent twice, even after a kill -9;
//! outcomes (`dntxed` or not) are stored as they come. Deleting a task cancels
//! its job at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::codec::{data_fragment_payload, fragment, IndexAndN, FPORT};
use super::group::{self, DlClass, Session, SessionRequest};
use super::job::Status;
use super::keys::{multicast_data_frame, McSessionKeys};
use super::plan::{self, Plan};
use super::schedule::{self, Clock, How, Pace};
use crate::app::{now, parse_time, App};
use crate::eui::Eui;
use crate::lns::downlink::{Downlink, Outcome, Timing};
use crate::lorawan::gps::{gps_from_unix_us, unix_from_gps_us, unix_now_us};
use crate::store::{FuotaTaskRow, GroupRow, RoundRecord};

/// Frames are handed to the gateways this long before they go on air.
const LEAD_US: i64 = 1_000_000;
/// An "as soon as possible" frame is handed over this long before its slot
/// (station aims 20 ms ahead), and the gateway's next one waits this much longer.
const ASAP_LEAD_US: i64 = 20_000;
const ASAP_MARGIN_US: i64 = 50_000;
/// Frames are built this long before the first one is handed over.
const PREPARE_US: i64 = 5_000_000;
/// The supervisor looks for new tasks at least this often.
const SUPERVISE_EVERY: Duration = Duration::from_secs(5);

/// Everything fixed about a task once its group and image are known.
#[derive(Debug, Clone)]
pub struct Setup {
    pub plan: Plan,
    pub session: Session,
    pub class: DlClass,
    pub pace: Pace,
}

/// The session stored on a group, as devices were told it.
pub fn group_session(g: &GroupRow) -> Result<Option<(DlClass, Session)>, String> {
    let class = DlClass::parse(&g.dl_class)?;
    let Some(s) = &g.session else {
        return Ok(None);
    };
    let session = group::derive(
        class,
        &SessionRequest {
            dl_dr: s.dl_dr,
            dl_freq: s.dl_freq,
            start_us: parse_time(&s.start)?,
            timeout_s: s.timeout_s,
            ping_slot_period: s.ping_slot_period,
        },
    )?;
    Ok(Some((class, session)))
}

/// The plan and pace of `task` sent through `group` with an image of `image_len`.
pub fn setup(task: &FuotaTaskRow, group: &GroupRow, image_len: usize) -> Result<Setup, String> {
    let (class, session) = group_session(group)?.ok_or_else(|| {
        format!(
            "multicast group {} has no session yet; PUT /multicast-groups/{}/session with DlDr, DlFreq, SessionStartTime and SessionTimeout",
            group.id, group.id
        )
    })?;
    // FragmentSizeBytes 0 means "the largest the DR carries" (ChirpStack's auto).
    let frag_size = match task.frag_size {
        0 => plan::payload_limit(&task.rf_region, session.dl_dr).map_or(0, |l| l - 3),
        n => n as usize,
    };
    let plan = plan::plan(&plan::Request {
        image_len,
        frag_size,
        redundancy_percent: task.redundancy_percent,
        region: task.rf_region.clone(),
        dr: session.dl_dr,
        freq: session.dl_freq,
        interval: Duration::from_millis(u64::from(task.interval_ms)),
    })
    .map_err(|e| e.to_string())?;
    let clock = match session.periodicity {
        Some(periodicity) => Clock::ClassB {
            mc_addr: group.mc_addr,
            periodicity,
        },
        None => Clock::ClassC,
    };
    let pace = Pace {
        spacing_us: plan.frame_spacing.as_micros() as i64,
        airtime_us: plan.time_on_air.as_micros() as i64,
        clock,
        total: plan.frags.total(),
    };
    Ok(Setup {
        plan,
        session,
        class,
        pace,
    })
}

/// When a task started at `start_us` with `slots` slots per round ends (Unix µs).
pub fn estimated_finish(setup: &Setup, start_us: i64, remaining: u16, slots: usize) -> i64 {
    let rounds = i64::from(remaining.max(1));
    start_us + (rounds - 1) * schedule::round_len_us(&setup.pace, slots) + setup.pace.airtime_us
}

/// What the API shows of a running job beyond the stored progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// Unix µs the last fragment is expected to end.
    pub eta_us: i64,
    /// Slots per round at the last round (1 = all gateways at one common time).
    pub slots: usize,
}

/// The supervisor's handle, kept in `AppState`.
#[derive(Default)]
pub struct Fuota {
    jobs: Mutex<HashMap<String, (CancellationToken, Option<Live>)>>,
    wake: Notify,
}

impl Fuota {
    /// Look at the stored tasks now (after a start or a delete).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops a task's sending at once; the supervisor finishes the deletion.
    pub fn stop(&self, task_id: &str) {
        if let Some((token, _)) = self.lock().get(task_id) {
            token.cancel();
        }
        self.wake();
    }

    pub fn live(&self, task_id: &str) -> Option<Live> {
        self.lock().get(task_id).and_then(|(_, l)| *l)
    }

    fn set_live(&self, task_id: &str, live: Live) {
        if let Some(e) = self.lock().get_mut(task_id) {
            e.1 = Some(live);
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (CancellationToken, Option<Live>)>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the supervisor until shutdown.
pub async fn supervise(app: App) {
    loop {
        match app.store.active_fuota_tasks().await {
            Ok(tasks) => {
                for t in tasks {
                    if app.fuota.lock().contains_key(&t.id) {
                        continue;
                    }
                    if t.status == Status::DeleteWaiting {
                        finish_delete(&app, &t.id).await;
                        continue;
                    }
                    // Devices are still being set up; `control` fixes SessionTime.
                    if t.start_time.is_none() {
                        continue;
                    }
                    let token = app.shutdown.child_token();
                    app.fuota.lock().insert(t.id.clone(), (token.clone(), None));
                    let app2 = app.clone();
                    tokio::spawn(async move {
                        let id = t.id.clone();
                        if let Err(e) = run(&app2, t, &token).await {
                            tracing::error!(task = %id, "FUOTA task stopped: {e}");
                        }
                        app2.fuota.lock().remove(&id);
                        if token.is_cancelled() && !app2.shutdown.is_cancelled() {
                            finish_delete(&app2, &id).await;
                        }
                    });
                }
            }
            Err(e) => tracing::error!("FUOTA supervisor cannot read tasks: {e}"),
        }
        tokio::select! {
            _ = app.fuota.wake.notified() => {}
            _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
            _ = app.shutdown.cancelled() => return,
        }
    }
}

async fn finish_delete(app: &App, id: &str) {
    if let Ok(t) = app.store.fuota_task(id.to_string()).await {
        if t.status == Status::DeleteWaiting {
            match app.store.remove_fuota_task(id.to_string()).await {
                Ok(()) => tracing::info!(task = %id, "FUOTA task deleted"),
                Err(e) => tracing::error!(task = %id, "deleting FUOTA task: {e}"),
            }
        }
    }
}

/// One gateway of a running job.
struct Carrier {
    id: String,
    eui: Eui,
    state: schedule::Gateway,
}

/// Sleeps until Unix µs `t`, or returns false if cancelled first.
async fn sleep_until_us(t: i64, cancel: &CancellationToken) -> bool {
    let d = Duration::from_micros((t - unix_now_us()).max(0) as u64);
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

fn finished(app: &App, id: &str, reason: Option<String>) -> impl std::future::Future<Output = ()> {
    let (app, id) = (app.clone(), id.to_string());
    async move {
        // With devices, the last fragment starts the status and verification
        // steps; `control` ends the task when the devices have answered.
        if matches!(app.store.fuota_task(id.clone()).await, Ok(t) if t.control.is_some()) {
            if let Some(r) = &reason {
                tracing::warn!(task = %id, reason = %r, "FUOTA fragments ended early");
            }
            if let Err(e) = app.store.set_fuota_frags_done(id.clone(), now()).await {
                tracing::error!(task = %id, "recording the end of the fragments: {e}");
            }
            return;
        }
        let at = Some(now());
        for from in [Status::InSession, Status::SessionWaiting] {
            match app
                .store
                .set_fuota_status(id.clone(), from, Status::Done, reason.clone(), at.clone())
                .await
            {
                Ok(true) => {
                    tracing::info!(task = %id, from = %from, to = "FuotaDone", reason = reason.as_deref().unwrap_or(""), "FUOTA task transition");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::error!(task = %id, "recording FuotaDone: {e}"),
            }
        }
    }
}

/// Runs one task to its end, or until `cancel` fires.
async fn run(app: &App, task: FuotaTaskRow, cancel: &CancellationToken) -> Result<(), String> {
    match Job::prepare(app, task, cancel).await? {
        Some(job) => job.send_all().await,
        None => Ok(()),
    }
}

/// A task about to send, or sending: what is fixed for the session, its
/// gateways' state, and the sends whose outcome is not known yet.
struct Job {
    app: App,
    id: String,
    setup: Setup,
    frames: Frames,
    /// Station needs a non-zero DevEui to answer `dntxed`; one per group.
    pseudo_eui: u64,
    carriers: Vec<Carrier>,
    /// The station duty-cycle budget the session's frequency is in, and how long
    /// each frame spends of it.
    band: u64,
    band_block_us: i64,
    cancel: CancellationToken,
    pending: JoinSet<(String, bool)>,
    outcomes: Vec<(String, bool)>,
}

impl Job {
    /// Waits until shortly before the start, builds the frames, loads the
    /// gateways' progress and moves the task to `In_FuotaSession`. `None` when
    /// cancelled, or when the task cannot run (it is then `FuotaDone` with why).
    async fn prepare(
        app: &App,
        task: FuotaTaskRow,
        cancel: &CancellationToken,
    ) -> Result<Option<Job>, String> {
        let id = task.id.clone();
        let group_id = task
            .group_id
            .clone()
            .ok_or("the task has no multicast group")?;
        let group = app.store.group(group_id).await.map_err(|e| e.to_string())?;
        let (Some(fcnt_base), Some(start)) = (task.fcnt_base, task.start_time.as_deref()) else {
            return Err("a started task without counters or start time".into());
        };
        let start_us = parse_time(start)?;
        // A task may wait days for its start: build its frames only shortly before.
        if !sleep_until_us(start_us - LEAD_US - PREPARE_US, cancel).await {
            return Ok(None);
        }
        let path = app
            .blobs
            .path(&task.blob_id)
            .ok_or_else(|| format!("bad blob id {}", task.blob_id))?;
        let image = match tokio::fs::read(&path).await {
            Ok(i) => i,
            Err(e) => {
                // Retrying cannot help: end the task and say why.
                let reason = format!("cannot read the image {}: {e}", path.display());
                finished(app, &id, Some(reason)).await;
                return Ok(None);
            }
        };
        let setup = match setup(&task, &group, image.len()) {
            Ok(s) => s,
            Err(e) => {
                finished(app, &id, Some(format!("cannot run: {e}"))).await;
                return Ok(None);
            }
        };
        let unresolved = app
            .store
            .close_unresolved_fuota_sends(id.clone())
            .await
            .map_err(|e| e.to_string())?;
        if unresolved > 0 {
            tracing::warn!(task = %id, frames = unresolved, "frames handed over before the restart had no outcome; counted as failed, not sent again");
        }
        let keys = McSessionKeys {
            mc_app_s_key: group.mc_app_s_key,
            mc_nwk_s_key: group.mc_nwk_s_key,
        };
        let frames = build_frames(&setup, &keys, group.mc_addr, fcnt_base, image).await?;
        // After a restart the gateways' last frames may be a spacing ago at most.
        let not_before = if task.status == Status::InSession {
            unix_now_us() + setup.pace.spacing_us
        } else {
            0
        };
        let carriers = app
            .store
            .fuota_progress(id.clone())
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|p| Carrier {
                id: p.gateway_id,
                eui: p.eui,
                state: schedule::Gateway {
                    next_n: p.next_n,
                    connected: false,
                    gps: false,
                    anchored: false,
                    not_before_us: not_before,
                },
            })
            .collect();
        if !sleep_until_us(start_us - LEAD_US, cancel).await {
            return Ok(None);
        }
        if task.status == Status::SessionWaiting {
            app.store
                .set_fuota_status(
                    id.clone(),
                    Status::SessionWaiting,
                    Status::InSession,
                    None,
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(task = %id, from = "FuotaSession_Waiting", to = "In_FuotaSession", frames = setup.pace.total, "FUOTA task transition");
        }
        let (band, permille) = plan::station_band(&task.rf_region, setup.session.dl_freq);
        Ok(Some(Job {
            app: app.clone(),
            id,
            // Station blocks the band for airtime / duty cycle after each start;
            // never longer than the task's own spacing.
            band_block_us: plan::station_block_us(setup.pace.airtime_us as u64, permille) as i64,
            band,
            setup,
            frames,
            pseudo_eui: 0x4d43_0000_0000_0000 | u64::from(group.mc_addr),
            carriers,
            cancel: cancel.clone(),
            pending: JoinSet::new(),
            outcomes: Vec::new(),
        }))
    }

    fn class_b(&self) -> bool {
        matches!(self.setup.pace.clock, Clock::ClassB { .. })
    }

    /// Unix µs to the schedule's clock (GPS µs for class B).
    fn to_clock(&self, unix: i64) -> i64 {
        if self.class_b() {
            gps_from_unix_us(unix)
        } else {
            unix
        }
    }

    fn to_unix(&self, t: i64) -> i64 {
        if self.class_b() {
            unix_from_gps_us(t)
        } else {
            t
        }
    }

    /// Sends round after round until every gateway is done or the session window
    /// ends, then waits for the last outcomes and marks the task `FuotaDone`.
    async fn send_all(mut self) -> Result<(), String> {
        let total = self.setup.pace.total;
        let mut next_at = unix_now_us() + LEAD_US;
        let reason = loop {
            let t0 = next_at.max(unix_now_us() + LEAD_US);
            if self.carriers.iter().all(|c| c.state.next_n > total) {
                break None;
            }
            if t0 + self.setup.pace.airtime_us > self.setup.session.end_us() {
                let behind: Vec<String> = self
                    .carriers
                    .iter()
                    .filter(|c| c.state.next_n <= total)
                    .map(|c| format!("{} at fragment {}", c.eui, c.state.next_n))
                    .collect();
                break Some(format!(
                    "the multicast session window ended before every gateway sent every fragment: {}",
                    behind.join(", ")
                ));
            }
            self.refresh_connections();
            let round = self.plan_round(t0);
            self.record(&round).await?;
            self.dispatch(&round);
            next_at = if round.sends.is_empty() {
                // Nobody can send now (all disconnected, or waiting out their spacing).
                unix_now_us() + 1_000_000
            } else {
                self.to_unix(round.next_at_us)
            };
            self.show_eta(&round, next_at);
            if !self.collect_until(next_at - LEAD_US).await {
                return Ok(());
            }
        };
        // Let the last frames' outcomes arrive (each has its own deadline).
        loop {
            tokio::select! {
                done = self.pending.join_next() => match done {
                    Some(Ok(o)) => self.outcomes.push(o),
                    Some(Err(_)) => {}
                    None => break,
                },
                _ = self.cancel.cancelled() => return Ok(()),
            }
        }
        if !self.outcomes.is_empty() {
            let record = RoundRecord {
                claims: Vec::new(),
                outcomes: std::mem::take(&mut self.outcomes),
            };
            self.app
                .store
                .record_fuota_round(self.id.clone(), record)
                .await
                .map_err(|e| e.to_string())?;
        }
        finished(&self.app, &self.id, reason).await;
        Ok(())
    }

    /// What the LNS knows of each gateway now: connected, time anchor, GPS.
    fn refresh_connections(&mut self) {
        for c in self.carriers.iter_mut() {
            let conn = self.app.lns.connection(c.eui);
            c.state.connected = conn.is_some();
            c.state.anchored = conn.as_ref().is_some_and(|x| x.stats.anchored);
            c.state.gps = c.state.anchored && conn.as_ref().is_some_and(|x| x.stats.gps);
        }
    }

    /// Plans the round at `t0` (Unix µs). Other tasks through the same gateways
    /// spend the same bands: read, plan and reserve under one lock, so two tasks
    /// never take overlapping budget.
    fn plan_round(&self, t0: i64) -> schedule::Round {
        let mut ledger = self.app.lns.budget.plan();
        let states: Vec<schedule::Gateway> = self
            .carriers
            .iter()
            .map(|c| {
                let mut s = c.state;
                if let Some(until) = ledger.busy_until(c.eui, self.band) {
                    s.not_before_us = s.not_before_us.max(self.to_clock(until));
                }
                s
            })
            .collect();
        let round = schedule::round(&self.setup.pace, self.to_clock(t0), &states);
        for s in &round.sends {
            let start = self.to_unix(s.at_us);
            ledger.reserve(
                self.carriers[s.gateway].eui,
                self.band,
                start,
                start + self.band_block_us,
            );
        }
        round
    }

    /// Stores the round's claims (write-ahead: durable before any frame leaves)
    /// with the outcomes that came in since the last round.
    async fn record(&mut self, round: &schedule::Round) -> Result<(), String> {
        while let Some(done) = self.pending.try_join_next() {
            if let Ok(o) = done {
                self.outcomes.push(o);
            }
        }
        let at = now();
        let record = RoundRecord {
            claims: round
                .sends
                .iter()
                .map(|s| (self.carriers[s.gateway].id.clone(), s.n, at.clone()))
                .collect(),
            outcomes: std::mem::take(&mut self.outcomes),
        };
        if record.claims.is_empty() && record.outcomes.is_empty() {
            return Ok(());
        }
        self.app
            .store
            .record_fuota_round(self.id.clone(), record)
            .await
            .map_err(|e| e.to_string())
    }

    /// Hands the round's frames to the gateways; each send's outcome arrives in
    /// `pending`.
    fn dispatch(&mut self, round: &schedule::Round) {
        let (dr, freq) = (self.setup.session.dl_dr, self.setup.session.dl_freq);
        for s in &round.sends {
            let at_unix = self.to_unix(s.at_us);
            let margin = if s.how == How::Asap {
                ASAP_MARGIN_US
            } else {
                0
            };
            let c = &mut self.carriers[s.gateway];
            c.state.next_n = s.n + 1;
            c.state.not_before_us = s.at_us + self.setup.pace.spacing_us + margin;
            let timing = match s.how {
                How::Exact => Timing::ClassCAtGps {
                    gps_us: gps_from_unix_us(at_unix),
                    dr,
                    freq,
                },
                How::Asap => Timing::ClassCNow { dr, freq },
                How::PingSlot => Timing::ClassB {
                    gps_us: s.at_us,
                    dr,
                    freq,
                },
            };
            let dl = Downlink {
                dev_eui: self.pseudo_eui,
                pdu: self.frames.get(s.n).to_vec(),
                timing,
                priority: 0,
            };
            let (app, eui, gw, how) = (self.app.clone(), c.eui, c.id.clone(), s.how);
            let cancel = self.cancel.clone();
            self.pending.spawn(async move {
                if how == How::Asap && !sleep_until_us(at_unix - ASAP_LEAD_US, &cancel).await {
                    return (gw, false);
                }
                let ok = matches!(app.lns.send(eui, dl).await, Ok(Outcome::Transmitted(_)));
                (gw, ok)
            });
        }
    }

    fn show_eta(&self, round: &schedule::Round, next_at: i64) {
        let mut times: Vec<i64> = round.sends.iter().map(|s| s.at_us).collect();
        times.dedup();
        let slots = times.len().max(1);
        let remaining = self
            .carriers
            .iter()
            .map(|c| (self.setup.pace.total + 1).saturating_sub(c.state.next_n))
            .max()
            .unwrap_or(0);
        self.app.fuota.set_live(
            &self.id,
            Live {
                eta_us: estimated_finish(&self.setup, next_at, remaining, slots),
                slots,
            },
        );
    }

    /// Collects outcomes until Unix µs `t`; false if cancelled first.
    async fn collect_until(&mut self, t: i64) -> bool {
        loop {
            let d = Duration::from_micros((t - unix_now_us()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(d) => return true,
                _ = self.cancel.cancelled() => return false,
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok(o) = done { self.outcomes.push(o); }
                }
            }
        }
    }
}

/// Every frame of the session, in fragment order, built once and shared by all
/// gateways (each gateway sends the identical frame for fragment N).
async fn build_frames(
    setup: &Setup,
    keys: &McSessionKeys,
    mc_addr: u32,
    fcnt_base: u32,
    image: Vec<u8>,
) -> Result<Frames, String> {
    let frag_size = usize::from(setup.plan.frags.frag_size);
    let redundancy = usize::from(setup.plan.frags.redundancy);
    let len = setup.plan.phy_payload_len;
    let keys = *keys;
    tokio::task::spawn_blocking(move || {
        let frags = fragment(&image, frag_size, redundancy);
        drop(image);
        // One buffer for all frames: they are all `len` bytes long.
        let mut bytes = Vec::with_capacity(frags.len() * len);
        for (i, f) in frags.iter().enumerate() {
            let n = (i + 1) as u16;
            let payload =
                data_fragment_payload(IndexAndN::new(0, n).map_err(|e| e.to_string())?, f);
            let frame = multicast_data_frame(
                &keys,
                mc_addr,
                fcnt_base.wrapping_add(u32::from(n) - 1),
                FPORT,
                &payload,
            );
            if frame.len() != len {
                return Err(format!(
                    "frame {n} is {} bytes, the plan says {len}",
                    frame.len()
                ));
            }
            bytes.extend_from_slice(&frame);
        }
        Ok(Frames { len, bytes })
    })
    .await
    .map_err(|e| format!("building frames: {e}"))?
}

/// The frames of a session, back to back (all have the plan's PHYPayload length).
struct Frames {
    len: usize,
    bytes: Vec<u8>,
}

impl Frames {
    /// Fragment `n`'s frame (1-based).
    fn get(&self, n: u16) -> &[u8] {
        let i = usize::from(n) - 1;
        &self.bytes[i * self.len..(i + 1) * self.len]
    }
}
