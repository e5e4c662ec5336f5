//! The FUOTA control plane for tasks with end devices (end-devices.md §8): the
//! I/O around `fuota::device`. The device face calls `on_uplink` for every data
//! uplink: it answers TS003 AppTimeReq, feeds the package answers to the device's
//! machine, stores the new state and returns the one request to put in the class
//! A downlink; `delivered` counts a try once station reports `dntxed`. A loop
//! (`run`) does what no uplink triggers: it fixes the common SessionTime once every
//! device has set up its group and fragmentation session (or the setup deadline
//! passed), leaves out devices that went silent, and ends the task — `FuotaDone`
//! only when every device has a final status or the verification deadline passed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::device::{self, Answer, DeviceStatus, State, Step, Want};
use super::group::Session;
use super::job::Status;
use super::keys::{mc_key_encrypted_for, RootKeySource};
use crate::app::{format_unix_us, now, parse_time, App};
use crate::applayer::{
    clocksync, firmware, fragmentation, multicastsetup, PORT_CLOCK, PORT_FIRMWARE,
    PORT_FRAGMENTATION, PORT_MULTICAST,
};
use crate::lorawan::gps::unix_now_us;
use crate::store::{DeviceRow, FuotaDeviceRow, FuotaTaskRow};

/// The TS005 group slot and TS004 session index every task uses.
pub const MC_GROUP_ID: u8 = 0;
pub const FRAG_INDEX: u8 = 0;

/// How often the loop looks at running tasks.
const TICK: Duration = Duration::from_secs(1);
/// Slack on every deadline for radio and processing delays.
const GRACE_US: i64 = 10_000_000;

/// What a started task sends its devices, fixed at start (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Control {
    pub mc_addr: u32,
    /// Hex; encrypted per device for McGroupSetupReq.
    pub mc_key: String,
    pub min_fcnt: u32,
    pub max_fcnt: u32,
    /// FragSessionSetupReq, the same for every device (hex).
    pub frag_setup: String,
    pub dl_dr: u8,
    pub dl_freq: u32,
    pub time_out: u8,
    pub timeout_s: u32,
    pub periodicity: Option<u8>,
    pub max_attempts: u8,
    /// The slowest device's uplink interval: what every step waits for.
    pub interval_s: u32,
    pub session_setup_intervals: u32,
    pub reboot_countdown_s: u32,
    pub expected_version: Option<u32>,
}

impl Control {
    pub fn parse(t: &FuotaTaskRow) -> Option<Control> {
        serde_json::from_str(t.control.as_deref()?).ok()
    }

    fn interval_us(&self) -> i64 {
        i64::from(self.interval_s.max(1)) * 1_000_000
    }

    /// A step's budget: every try plus the uplink that answers the last one.
    fn step_budget_us(&self) -> i64 {
        (i64::from(self.max_attempts) + 1) * self.interval_us() + GRACE_US
    }

    /// From start until SessionTime must be fixed: clock (with a resync), group
    /// and fragmentation setup, each with its tries.
    pub fn setup_deadline_us(&self) -> i64 {
        3 * self.step_budget_us() + self.interval_us()
    }

    /// SessionTime is this long after it is fixed.
    pub fn session_lead_us(&self) -> i64 {
        i64::from(self.session_setup_intervals.max(1)) * self.interval_us() + GRACE_US
    }

    /// After the last fragment: status, and with a version to check, the image,
    /// the reboot and the version.
    pub fn verify_budget_us(&self) -> i64 {
        let steps = if self.expected_version.is_some() {
            4
        } else {
            1
        };
        steps * self.step_budget_us() + i64::from(self.reboot_countdown_s) * 1_000_000
    }

    fn session(&self, start_us: i64) -> Session {
        Session {
            dl_dr: self.dl_dr,
            dl_freq: self.dl_freq,
            start_us,
            timeout_s: self.timeout_s,
            time_out: self.time_out,
            periodicity: self.periodicity,
        }
    }
}

/// A frame for the device's next class A downlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unicast {
    pub f_port: u8,
    pub data: Vec<u8>,
    /// Count a try of this step when the frame reaches a gateway.
    pub delivery: Option<Delivery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub task_id: String,
    pub device_id: String,
    pub step: Step,
}

/// What one uplink on a package port said.
#[derive(Debug, Default)]
struct Read {
    answers: Vec<Answer>,
    /// AppTimeAns owed to an AppTimeReq.
    clock_reply: Option<Vec<u8>>,
    ignored: Vec<String>,
}

/// Reads the package answers of one uplink (pure).
fn read(f_port: u8, payload: &[u8], received_gps_s: u32) -> Read {
    let mut r = Read::default();
    let bad = |r: &mut Read, e: crate::applayer::BadAnswer| r.ignored.push(e.to_string());
    match f_port {
        PORT_CLOCK => {
            for up in clocksync::parse(payload) {
                match up {
                    Ok(clocksync::Up::AppTimeReq {
                        device_time, token, ..
                    }) => {
                        r.clock_reply =
                            Some(clocksync::app_time_ans(received_gps_s, device_time, token));
                        r.answers.push(Answer::ClockSynced);
                    }
                    Ok(_) => {}
                    Err(e) => bad(&mut r, e),
                }
            }
        }
        PORT_MULTICAST => {
            for up in multicastsetup::parse(payload) {
                match up {
                    Ok(multicastsetup::Up::McGroupSetupAns { group, id_error }) => {
                        r.answers.push(Answer::GroupSetup { group, id_error })
                    }
                    Ok(multicastsetup::Up::SessionAns {
                        group,
                        dr_error,
                        freq_error,
                        group_undefined,
                        ..
                    }) => r.answers.push(Answer::Session {
                        group,
                        dr_error,
                        freq_error,
                        group_undefined,
                    }),
                    Ok(_) => {}
                    Err(e) => bad(&mut r, e),
                }
            }
        }
        PORT_FRAGMENTATION => {
            for up in fragmentation::parse(payload) {
                match up {
                    Ok(fragmentation::Up::SetupAns {
                        frag_index,
                        algo_unsupported,
                        not_enough_memory,
                        index_unsupported,
                        wrong_descriptor,
                    }) => r.answers.push(Answer::FragSetup {
                        frag_index,
                        algo_unsupported,
                        not_enough_memory,
                        index_unsupported,
                        wrong_descriptor,
                    }),
                    Ok(fragmentation::Up::StatusAns {
                        frag_index,
                        missing,
                        memory_error,
                        ..
                    }) => r.answers.push(Answer::FragStatus {
                        frag_index,
                        missing,
                        memory_error,
                    }),
                    Ok(_) => {}
                    Err(e) => bad(&mut r, e),
                }
            }
        }
        PORT_FIRMWARE => {
            for up in firmware::parse(payload) {
                match up {
                    Ok(firmware::Up::DevUpgradeImageAns(s)) => {
                        r.answers.push(Answer::UpgradeImage(s))
                    }
                    Ok(firmware::Up::DevRebootCountdownAns { seconds })
                    | Ok(firmware::Up::DevRebootTimeAns { seconds }) => {
                        r.answers.push(Answer::Reboot { seconds })
                    }
                    Ok(firmware::Up::DevVersionAns { fw, .. }) => {
                        r.answers.push(Answer::Version { fw })
                    }
                    Ok(_) => {}
                    Err(e) => bad(&mut r, e),
                }
            }
        }
        _ => {}
    }
    r
}

fn machine_task(t: &FuotaTaskRow, c: &Control, now_us: i64) -> device::Task {
    device::Task {
        group: MC_GROUP_ID,
        frag_index: FRAG_INDEX,
        session_fixed: t.start_time.is_some(),
        frags_done: t.frags_done_at.is_some(),
        expected_version: c.expected_version,
        max_attempts: c.max_attempts,
        now_us,
    }
}

/// Handles one accepted data uplink of `device` (FPort and decrypted payload; and
/// whether its MAC commands held a DeviceTimeReq) and returns what its class A
/// downlink should carry, if anything.
pub async fn on_uplink(
    app: &App,
    device: &DeviceRow,
    f_port: Option<u8>,
    payload: &[u8],
    gps_end_us: i64,
    device_time: bool,
) -> Option<Unicast> {
    let received_gps_s = (gps_end_us.div_euclid(1_000_000)) as u32;
    let mut read = match f_port {
        Some(p) => read(p, payload, received_gps_s),
        None => Read::default(),
    };
    // A 1.0.3+ device that set its clock with DeviceTimeReq needs no TS003.
    if device_time {
        read.answers.push(Answer::ClockSynced);
    }
    let clock = read.clock_reply.clone().map(|data| Unicast {
        f_port: PORT_CLOCK,
        data,
        delivery: None,
    });
    let open = match app.store.open_fuota_device(device.id.clone()).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "FUOTA control: cannot read the device's task");
            return clock;
        }
    };
    let Some((task, row)) = open else {
        note_ignored(app, device, &read.ignored).await;
        return clock;
    };
    let Some(control) = Control::parse(&task) else {
        return clock;
    };
    let now_us = unix_now_us();
    let t = machine_task(&task, &control, now_us);
    let mut s = row.state.clone();
    let mut ignored = read.ignored;
    for a in &read.answers {
        if let Err(why) = device::on_answer(&mut s, a, &t) {
            ignored.push(why);
        }
    }
    let want = device::on_uplink(&mut s, &t);
    if s != row.state {
        match app
            .store
            .save_fuota_device(
                task.id.clone(),
                device.id.clone(),
                row.state.clone(),
                s.clone(),
                now(),
            )
            .await
        {
            Ok(true) => log_change(&task.id, device, &row.state, &s),
            // A delivery report changed the row meanwhile: the next uplink decides.
            Ok(false) => return clock,
            Err(e) => {
                tracing::error!(error = %e, "FUOTA control: cannot store the device's step");
                return clock;
            }
        }
    }
    note_ignored(app, device, &ignored).await;
    // One frame per downlink: an owed AppTimeAns goes first; the request waits.
    if clock.is_some() {
        return clock;
    }
    let want = want?;
    let (f_port, data) = request(&control, &task, device, want)?;
    Some(Unicast {
        f_port,
        data,
        delivery: Some(Delivery {
            task_id: task.id,
            device_id: device.id.clone(),
            step: s.step,
        }),
    })
}

/// The bytes of a request, or None when the device cannot be sent it.
fn request(c: &Control, t: &FuotaTaskRow, device: &DeviceRow, want: Want) -> Option<(u8, Vec<u8>)> {
    Some(match want {
        Want::ForceResync => (PORT_CLOCK, clocksync::force_resync_req(1)),
        Want::GroupSetup => {
            let gen_app_key = device.otaa.as_ref()?.gen_app_key?;
            let mc_key: [u8; 16] = hex::decode(&c.mc_key).ok()?.try_into().ok()?;
            let enc = mc_key_encrypted_for(RootKeySource::GenAppKey10(gen_app_key), &mc_key);
            (
                PORT_MULTICAST,
                multicastsetup::group_setup_req(
                    MC_GROUP_ID,
                    c.mc_addr,
                    enc,
                    c.min_fcnt,
                    c.max_fcnt,
                ),
            )
        }
        Want::FragSetup => (PORT_FRAGMENTATION, hex::decode(&c.frag_setup).ok()?),
        Want::SessionSetup => {
            let start = parse_time(t.start_time.as_deref()?).ok()?;
            (
                PORT_MULTICAST,
                super::group::session_req(&c.session(start), MC_GROUP_ID),
            )
        }
        Want::FragStatus => (
            PORT_FRAGMENTATION,
            super::codec::frag_session_status_req(true, FRAG_INDEX).ok()?,
        ),
        Want::UpgradeImage => (PORT_FIRMWARE, firmware::upgrade_image_req()),
        Want::Reboot => (
            PORT_FIRMWARE,
            firmware::reboot_countdown_req(c.reboot_countdown_s),
        ),
        Want::Version => (PORT_FIRMWARE, firmware::dev_version_req()),
    })
}

/// A request reached a gateway (`dntxed`): one try of its step is spent.
pub fn delivered(app: &App, d: Delivery) {
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app
            .store
            .fuota_device_delivered(d.task_id, d.device_id, d.step)
            .await
        {
            tracing::error!(error = %e, "FUOTA control: cannot count a delivered try");
        }
    });
}

fn log_change(task: &str, device: &DeviceRow, from: &State, to: &State) {
    if from.step != to.step || from.status != to.status || from.done != to.done {
        tracing::info!(
            task,
            dev_eui = %device.dev_eui,
            from = from.step.as_str(),
            to = to.step.as_str(),
            status = to.status.as_str(),
            reason = to.reason.as_deref().unwrap_or(""),
            "FUOTA device step"
        );
    }
}

/// Answers that were not used go to the device's event log (bounded per device),
/// never to the server log: a device decides how many it sends.
async fn note_ignored(app: &App, device: &DeviceRow, ignored: &[String]) {
    if ignored.is_empty() {
        return;
    }
    let Ok(Some(ctx)) = app.store.device_context(device.id.clone()).await else {
        return;
    };
    let Ok(profile) = crate::devices::profile::DeviceProfile::parse(&ctx.profile.lorawan) else {
        return;
    };
    let evs = ignored
        .iter()
        .take(4)
        .map(|why| {
            let info = crate::devices::events::device_info(
                &ctx.device,
                &ctx.profile.id,
                ctx.profile.name.as_deref(),
                &profile,
            );
            crate::devices::events::log(
                info,
                "WARNING",
                "FUOTA",
                format!("FUOTA answer ignored: {}", crate::logguard::escaped(why)),
            )
        })
        .collect();
    crate::devices::events::emit(app, &device.id, evs).await;
}

/// Runs the control plane's loop until shutdown.
pub async fn run(app: App) {
    loop {
        match app.store.controlled_fuota_tasks().await {
            Ok(tasks) => {
                for t in tasks {
                    if let Err(e) = tick(&app, &t).await {
                        tracing::error!(task = %t.id, error = %e, "FUOTA control step failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "FUOTA control cannot read tasks"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = app.shutdown.cancelled() => return,
        }
    }
}

/// One look at a running task: deadlines, SessionTime, the end.
async fn tick(app: &App, t: &FuotaTaskRow) -> Result<(), crate::store::StoreError> {
    let Some(c) = Control::parse(t) else {
        return Ok(());
    };
    let now_us = unix_now_us();
    let devices = app.store.fuota_devices(t.id.clone()).await?;
    for d in &devices {
        if let Some(after) = judge_silence(t, &c, d, now_us) {
            save(app, t, d, after).await?;
        }
    }
    let devices = app.store.fuota_devices(t.id.clone()).await?;
    if t.start_time.is_none() {
        return fix_session_time(app, t, &c, &devices, now_us).await;
    }
    if let Some(done_at) = t.frags_done_at.as_deref() {
        let done_us = parse_time(done_at).unwrap_or(now_us);
        let deadline = done_us + c.verify_budget_us();
        if devices.iter().all(|d| d.state.done) || now_us > deadline {
            return finish(app, t, &devices, now_us > deadline).await;
        }
    }
    Ok(())
}

async fn save(
    app: &App,
    t: &FuotaTaskRow,
    d: &FuotaDeviceRow,
    after: State,
) -> Result<(), crate::store::StoreError> {
    if app
        .store
        .save_fuota_device(
            t.id.clone(),
            d.device_id.clone(),
            d.state.clone(),
            after.clone(),
            now(),
        )
        .await?
    {
        tracing::info!(task = %t.id, dev_eui = %d.dev_eui, step = after.step.as_str(), status = after.status.as_str(), reason = after.reason.as_deref().unwrap_or(""), "FUOTA device step");
    }
    Ok(())
}

/// A device that has not sent the uplinks its step needs, or missed the session.
fn judge_silence(t: &FuotaTaskRow, c: &Control, d: &FuotaDeviceRow, now_us: i64) -> Option<State> {
    let s = &d.state;
    if s.done {
        return None;
    }
    let since = parse_time(&d.step_at).unwrap_or(now_us);
    let session_us = t.start_time.as_deref().and_then(|st| parse_time(st).ok());
    let mut after = s.clone();
    if session_us.is_some_and(|start| now_us >= start) && s.step < Step::SessionSetup {
        after.exclude(format!(
            "setup not finished ({}) by SessionTime",
            s.step.as_str()
        ));
        return Some(after);
    }
    match s.step {
        // Waiting on the task, not on the device.
        Step::Session | Step::Done => return None,
        Step::SessionSetup => match session_us {
            None => return None,
            Some(start) if now_us >= start && s.attempts == 0 => {
                after.exclude("McClassCSessionReq could not reach the device before SessionTime (no uplink from it in time)");
                return Some(after);
            }
            Some(_) => return None,
        },
        Step::Version if s.reboot_at_us.is_some_and(|at| now_us < at) => return None,
        _ => {}
    }
    // Only a device that went quiet is given up here. One that keeps sending
    // uplinks but whose downlinks find no room (a gateway's duty cycle) keeps its
    // tries; the setup and verification deadlines bound how long it may take.
    let last_uplink = d
        .last_uplink_at
        .as_deref()
        .and_then(|t| parse_time(t).ok())
        .unwrap_or(since);
    let quiet_since = match (s.step, s.reboot_at_us) {
        (Step::Version, Some(at)) => at.max(since).max(last_uplink),
        _ => since.max(last_uplink),
    };
    if now_us - quiet_since > c.step_budget_us() {
        let quiet = (now_us - quiet_since) / 1_000_000;
        device::give_up(&mut after, s.attempts);
        after.reason = Some(format!(
            "the device went quiet at {}: no uplink for {quiet} s (UplinkIntervalSeconds {}), {} tries had reached it",
            s.step.as_str(),
            c.interval_s,
            s.attempts
        ));
        return Some(after);
    }
    None
}

/// Fixes SessionTime once every device is past its fragmentation setup (or the
/// setup deadline passed): the rest are left out, and those ready get the
/// session request at their next uplinks.
async fn fix_session_time(
    app: &App,
    t: &FuotaTaskRow,
    c: &Control,
    devices: &[FuotaDeviceRow],
    now_us: i64,
) -> Result<(), crate::store::StoreError> {
    let started = t
        .started_at
        .as_deref()
        .and_then(|s| parse_time(s).ok())
        .unwrap_or(now_us);
    let behind: Vec<&FuotaDeviceRow> = devices
        .iter()
        .filter(|d| !d.state.done && d.state.step < Step::SessionSetup)
        .collect();
    if !behind.is_empty() && now_us < started + c.setup_deadline_us() {
        return Ok(());
    }
    for d in &behind {
        let mut after = d.state.clone();
        after.exclude(format!(
            "setup not finished ({}) when SessionTime was fixed",
            d.state.step.as_str()
        ));
        save(app, t, d, after).await?;
    }
    let ready = devices
        .iter()
        .filter(|d| !d.state.done && d.state.step == Step::SessionSetup)
        .count();
    if ready == 0 {
        return end(
            app,
            t,
            "no device completed the multicast and fragmentation setup",
        )
        .await;
    }
    let mut start = now_us + c.session_lead_us();
    if c.periodicity.is_some() {
        // Class B sessions start on a beacon period (128 s, GPS time).
        let gps = crate::lorawan::gps::gps_from_unix_us(start);
        let period = super::classb::BEACON_PERIOD_US;
        let up = (period - gps.rem_euclid(period)) % period;
        start += up;
    }
    app.store
        .set_fuota_session_time(t.id.clone(), format_unix_us(start))
        .await?;
    tracing::info!(task = %t.id, devices = ready, session_time = %format_unix_us(start), "FUOTA SessionTime fixed");
    app.fuota.wake();
    Ok(())
}

/// Every device is final, or the verification deadline passed: the devices still
/// on their way get the reason, and the task is FuotaDone.
async fn finish(
    app: &App,
    t: &FuotaTaskRow,
    devices: &[FuotaDeviceRow],
    deadline_passed: bool,
) -> Result<(), crate::store::StoreError> {
    if deadline_passed {
        for d in devices.iter().filter(|d| !d.state.done) {
            let mut after = d.state.clone();
            let at = d.state.step;
            match at {
                Step::Session | Step::FragStatus => after.finish(
                    DeviceStatus::MissingFrag,
                    "verification deadline passed: no FragSessionStatusAns",
                ),
                _ => after.finish(
                    DeviceStatus::MemoryError,
                    format!(
                        "verification deadline passed at {}: new firmware not confirmed",
                        at.as_str()
                    ),
                ),
            }
            save(app, t, d, after).await?;
        }
    }
    let devices = app.store.fuota_devices(t.id.clone()).await?;
    let ok = devices
        .iter()
        .filter(|d| d.state.status == DeviceStatus::Successful)
        .count();
    end(
        app,
        t,
        &format!("{ok} of {} devices Successful", devices.len()),
    )
    .await
}

async fn end(app: &App, t: &FuotaTaskRow, reason: &str) -> Result<(), crate::store::StoreError> {
    for from in [Status::InSession, Status::SessionWaiting] {
        if app
            .store
            .set_fuota_status(
                t.id.clone(),
                from,
                Status::Done,
                Some(reason.to_string()),
                Some(now()),
            )
            .await?
        {
            tracing::info!(task = %t.id, from = %from, to = "FuotaDone", reason, "FUOTA task transition");
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_answers_of_every_package() {
        let mut req = vec![0x01];
        req.extend_from_slice(&1000u32.to_le_bytes());
        req.push(0x12);
        let r = read(PORT_CLOCK, &req, 1020);
        assert_eq!(r.answers, vec![Answer::ClockSynced]);
        assert_eq!(r.clock_reply.unwrap(), hex::decode("011400000002").unwrap());
        let r = read(PORT_MULTICAST, &[0x02, 0x04], 0);
        assert_eq!(
            r.answers,
            vec![Answer::GroupSetup {
                group: 0,
                id_error: true
            }]
        );
        let r = read(PORT_FRAGMENTATION, &[0x02, 0x00, 0x02, 0x00], 0);
        assert_eq!(r.answers.len(), 2, "two answers back to back");
        let r = read(PORT_FIRMWARE, &[0x01, 1, 2], 0);
        assert!(r.answers.is_empty());
        assert!(r.ignored[0].contains("truncated"), "{:?}", r.ignored);
        let r = read(PORT_MULTICAST, &[0x7f], 0);
        assert!(r.ignored[0].contains("0x7f"), "{:?}", r.ignored);
    }

    #[test]
    fn budgets() {
        let c = Control {
            mc_addr: 1,
            mc_key: String::new(),
            min_fcnt: 0,
            max_fcnt: 9,
            frag_setup: String::new(),
            dl_dr: 5,
            dl_freq: 869_525_000,
            time_out: 11,
            timeout_s: 2000,
            periodicity: None,
            max_attempts: 3,
            interval_s: 60,
            session_setup_intervals: 2,
            reboot_countdown_s: 10,
            expected_version: None,
        };
        assert_eq!(c.session_lead_us(), 130_000_000);
        assert_eq!(
            c.verify_budget_us(),
            4 * 60_000_000 + 10_000_000 + 10_000_000
        );
    }
}
