//! A data uplink, handled as named steps (end-devices.md §1.7, §3.6, §5): find the
//! session whose key verifies the MIC with the rebuilt 32-bit FCnt, judge the
//! counter, decrypt, apply the MAC commands, record the uplink (a guarded counter
//! update, so two copies handled at once cannot both pass), tell the application,
//! then answer in the class A windows. Replays and bad frames are counted, never
//! logged per frame.

use lrwn::{AES128Key, DevAddr, FType, MACVersion, Payload, PhyPayload};
use serde_json::json;

use super::dedup::Collected;
use super::downlink::{self, Answer};
use super::events;
use super::fcnt::{reconstruct, Verdict};
use super::maccommand::{self, MacState, Reception, Request};
use super::profile::DeviceProfile;
use super::region::uplink_ok;
use super::{store_failed, Counters};
use crate::app::{new_id, now, App};
use crate::integration::Event;
use crate::lns::regions;
use crate::lorawan::gps::gps_from_unix_us;
use crate::store::{AcceptedUplink, ConfirmedOutcome, DeviceContext};

/// The frame's fields, once the MIC has picked its session.
struct Verified {
    ctx: DeviceContext,
    profile: DeviceProfile,
    verdict: Verdict,
    confirmed: bool,
    adr: bool,
    adr_ack_req: bool,
    ack: bool,
    f_opts: Vec<u8>,
    f_port: Option<u8>,
    /// The FRMPayload, still encrypted.
    frm: Vec<u8>,
}

pub async fn handle(app: &App, up: Collected) {
    let c = &app.devices.counters;
    let Some(v) = verify(app, &up).await else {
        return;
    };
    let radio = &up.copies[0].uplink.radio;
    if !uplink_ok(v.profile.region(), radio.dr, radio.freq) {
        return Counters::bump(&c.bad_channel);
    }
    match v.verdict {
        Verdict::GapTooLarge { .. } => Counters::bump(&c.gap_too_large),
        Verdict::Retransmission { .. } => {
            Counters::bump(&c.replayed);
            if v.confirmed {
                reacknowledge(app, &v, &up).await;
            }
        }
        Verdict::New { full, .. } => accept(app, v, full, &up).await,
    }
}

/// Finds the session (pending first) whose NwkSKey verifies the MIC.
async fn verify(app: &App, up: &Collected) -> Option<Verified> {
    let c = &app.devices.counters;
    let Ok(mut phy) = PhyPayload::from_slice(&up.phy) else {
        Counters::bump(&c.malformed);
        return None;
    };
    let (dev_addr, f_cnt16) = match &phy.payload {
        Payload::MACPayload(m) => (
            u32::from_be_bytes(m.fhdr.devaddr.to_be_bytes()),
            m.fhdr.f_cnt as u16,
        ),
        _ => {
            Counters::bump(&c.malformed);
            return None;
        }
    };
    let candidates = match app.store.sessions_by_dev_addr(dev_addr).await {
        Ok(v) => v,
        Err(e) => {
            store_failed("sessions by DevAddr", &e);
            return None;
        }
    };
    if candidates.is_empty() {
        Counters::bump(&c.unknown_device);
        return None;
    }
    for ctx in candidates {
        let Ok(profile) = DeviceProfile::parse(&ctx.profile.lorawan) else {
            continue;
        };
        let verdict = reconstruct(ctx.session.fcnt_up, f_cnt16, profile.gap_rule());
        if let Payload::MACPayload(m) = &mut phy.payload {
            m.fhdr.f_cnt = verdict.full();
        }
        let key = AES128Key::from_bytes(ctx.session.nwk_s_key);
        if phy
            .validate_uplink_data_mic(MACVersion::LoRaWAN1_0, 0, 0, 0, &key, &key)
            .unwrap_or(false)
        {
            return Some(fields(phy, ctx, profile, verdict));
        }
    }
    Counters::bump(&c.mic_failed);
    None
}

fn fields(
    phy: PhyPayload,
    ctx: DeviceContext,
    profile: DeviceProfile,
    verdict: Verdict,
) -> Verified {
    let confirmed = phy.mhdr.f_type == FType::ConfirmedDataUp;
    let Payload::MACPayload(m) = phy.payload else {
        unreachable!("checked by verify")
    };
    let frm = match m.frm_payload {
        Some(lrwn::FRMPayload::Raw(b)) => b,
        _ => Vec::new(),
    };
    Verified {
        ctx,
        profile,
        verdict,
        confirmed,
        adr: m.fhdr.f_ctrl.adr,
        adr_ack_req: m.fhdr.f_ctrl.adr_ack_req,
        ack: m.fhdr.f_ctrl.ack,
        f_opts: m.fhdr.f_opts.to_vec().unwrap_or_default(),
        f_port: m.f_port,
        frm,
    }
}

/// Decrypts the FRMPayload (NwkSKey for FPort 0, else AppSKey).
fn decrypt(v: &Verified, full: u32) -> Vec<u8> {
    let key = if v.f_port == Some(0) {
        v.ctx.session.nwk_s_key
    } else {
        v.ctx.session.app_s_key
    };
    let addr = DevAddr::from_be_bytes(v.ctx.session.dev_addr.to_be_bytes());
    lrwn::encrypt_frm_payload(&AES128Key::from_bytes(key), true, &addr, full, &v.frm)
        .unwrap_or_default()
}

/// How the copies heard the frame, for LinkCheckAns and DeviceTimeAns.
fn reception(up: &Collected, region: &str) -> Reception {
    let r = &up.copies[0].uplink.radio;
    let sf = regions::dr(region, r.dr).map_or(12, |m| m.0);
    let best_snr = up
        .copies
        .iter()
        .map(|c| c.uplink.radio.up.snr)
        .fold(f64::MIN, f64::max);
    // The end of the uplink in GPS time: station's gpstime when it has one, else
    // the arrival of the first copy.
    let gps = up
        .copies
        .iter()
        .map(|c| c.uplink.radio.up.gpstime)
        .find(|&g| g > 0);
    Reception {
        best_snr,
        sf,
        gateways: up.copies.len(),
        gps_end_us: gps.unwrap_or_else(|| gps_from_unix_us(up.first_arrival_us)),
    }
}

/// What the network still wants this device to apply.
async fn wanted(
    app: &App,
    profile: &DeviceProfile,
    mac: &MacState,
    up: &Collected,
) -> Vec<Request> {
    let mut w = Vec::new();
    if profile.region() == "US915" {
        let sb = downlink::best_sub_band(app, up).await;
        if mac.sub_band != Some(sb) {
            let dr = up.copies[0].uplink.radio.dr;
            w.push(maccommand::link_adr::request(profile.mac_version(), sb, dr));
        }
    }
    let (rx2_dr, rx2_freq) = profile.rx2();
    let off = profile.rx_dr_offset1.unwrap_or(mac.rx1_dr_offset);
    if (off, rx2_dr, rx2_freq) != (mac.rx1_dr_offset, mac.rx2_dr, mac.rx2_freq) {
        w.push(Request::RxParamSetup {
            rx1_dr_offset: off,
            rx2_dr,
            rx2_freq,
        });
    }
    if let Some(d) = profile.rx_delay1.filter(|&d| d.max(1) != mac.rx_delay) {
        w.push(Request::RxTimingSetup { delay: d });
    }
    w
}

async fn accept(app: &App, v: Verified, full: u32, up: &Collected) {
    let region = v.profile.region().to_owned();
    let payload = decrypt(&v, full);
    let mut mac: MacState = serde_json::from_str(&v.ctx.session.mac)
        .unwrap_or_else(|_| MacState::defaults(v.profile.rx2()));
    let rx = reception(up, &region);
    let mut out = maccommand::handle_uplink(&mut mac, &v.f_opts, &rx);
    if v.f_port == Some(0) {
        let port0 = maccommand::handle_uplink(&mut mac, &payload, &rx);
        out.answers.extend(port0.answers);
        out.must_respond |= port0.must_respond;
        out.status = out.status.or(port0.status);
        out.device_time |= port0.device_time;
    }
    let want = wanted(app, &v.profile, &mac, up).await;
    maccommand::want(&mut mac, &want);
    let record = AcceptedUplink {
        device_id: v.ctx.device.id.clone(),
        slot: v.ctx.session.slot,
        full_fcnt: full,
        mac: serde_json::to_string(&mac).expect("MacState serialises"),
        at: now(),
        stats: statistics(&v, up, full).to_string(),
        ack: v.ack,
    };
    let confirmed = match app.store.accept_uplink(record).await {
        Ok(Some(o)) => o,
        // Another copy of this frame was accepted first.
        Ok(None) => return Counters::bump(&app.devices.counters.replayed),
        Err(e) => return store_failed("accept uplink", &e),
    };
    let mut ctx = v.ctx.clone();
    ctx.session.slot = 0;
    tell_application(app, &v, &ctx, full, &payload, up, &out, confirmed).await;
    let package = crate::fuota::control::on_uplink(
        app,
        &ctx.device,
        v.f_port,
        &payload,
        rx.gps_end_us,
        out.device_time,
    )
    .await;
    let answer = Answer {
        ack: v.confirmed,
        answers: out.answers,
        requests: maccommand::encode_pending(&mac),
        owed: out.must_respond || v.adr_ack_req,
        package,
    };
    downlink::answer_uplink(app, &ctx, &v.profile, &mac, up, answer).await;
}

/// A confirmed frame repeated because our ACK was lost: acknowledge it again.
async fn reacknowledge(app: &App, v: &Verified, up: &Collected) {
    let Ok(mac) = serde_json::from_str::<MacState>(&v.ctx.session.mac) else {
        return;
    };
    let answer = Answer {
        ack: true,
        ..Default::default()
    };
    downlink::answer_uplink(app, &v.ctx, &v.profile, &mac, up, answer).await;
}

/// The device's statistics as GetWirelessDeviceStatistics shows them.
fn statistics(v: &Verified, up: &Collected, full: u32) -> serde_json::Value {
    let r = &up.copies[0].uplink.radio;
    json!({
        "FPort": v.f_port,
        "DataRate": r.dr,
        "Frequency": r.freq,
        "FCntUp": full,
        "FCntDown": v.ctx.session.fcnt_down,
        "Gateways": up.copies.iter().map(|c| json!({
            "GatewayEui": c.gateway.to_string(),
            "Snr": c.uplink.radio.up.snr,
            "Rssi": c.uplink.radio.up.rssi,
        })).collect::<Vec<_>>(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn tell_application(
    app: &App,
    v: &Verified,
    ctx: &DeviceContext,
    full: u32,
    payload: &[u8],
    up: &Collected,
    mac: &maccommand::Outcome,
    confirmed: ConfirmedOutcome,
) {
    let info = || {
        events::device_info(
            &ctx.device,
            &ctx.profile.id,
            ctx.profile.name.as_deref(),
            &v.profile,
        )
    };
    let dedup_id = new_id();
    let region = v.profile.region();
    let r = &up.copies[0].uplink.radio;
    let mut evs = Vec::new();
    if v.ctx.session.slot == 1 {
        evs.push(Event::Join {
            deduplication_id: dedup_id.clone(),
            time: now(),
            device_info: info(),
            dev_addr: ctx.session.dev_addr,
            region_config_id: region.to_lowercase(),
        });
    }
    // The app-layer packages' ports (TS003–TS006) are the server's own traffic.
    let application_port = v
        .f_port
        .filter(|&p| p > 0 && !crate::applayer::is_package_port(p));
    if let Some(port) = application_port {
        evs.push(Event::Up {
            deduplication_id: dedup_id.clone(),
            time: now(),
            device_info: info(),
            dev_addr: ctx.session.dev_addr,
            adr: v.adr,
            dr: r.dr,
            f_cnt: full,
            f_port: port,
            confirmed: v.confirmed,
            data: payload.to_vec(),
            rx_info: events::rx_info(up),
            tx_info: events::tx_info(region, r.dr, r.freq),
            region_config_id: region.to_lowercase(),
        });
    }
    match confirmed {
        ConfirmedOutcome::None => {}
        ConfirmedOutcome::Acknowledged { item_id, fcnt }
        | ConfirmedOutcome::Missed {
            item_id,
            fcnt,
            given_up: true,
        } => {
            evs.push(Event::Ack {
                deduplication_id: dedup_id.clone(),
                time: now(),
                device_info: info(),
                queue_item_id: item_id,
                acknowledged: v.ack,
                f_cnt_down: fcnt,
            });
        }
        ConfirmedOutcome::Missed { .. } => {}
    }
    if let Some(s) = mac.status {
        let (external, unavailable, level) = maccommand::dev_status::battery(s);
        evs.push(Event::Status {
            deduplication_id: dedup_id.clone(),
            time: now(),
            device_info: info(),
            margin: i32::from(s.margin),
            external_power_source: external,
            battery_level_unavailable: unavailable,
            battery_level: level,
        });
    }
    if let Some(cid) = mac.unknown {
        evs.push(events::log(info(), "WARNING", "UNKNOWN", format!("MAC command CID 0x{cid:02x} not understood; the rest of that MAC payload was skipped")));
    }
    events::emit(app, &ctx.device.id, evs).await;
}
