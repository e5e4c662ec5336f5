//! Downlinks to one device (end-devices.md §1.8, §3, §5.3): the class A answer to an
//! uplink — ACK, MAC answers first, then pending requests (FOpts up to 15 octets,
//! else an FPort 0 frame), then the next queued payload that fits both windows —
//! and class C payloads sent at once. The FCnt and the queue item are reserved in
//! the store before the frame leaves; the gateway is the best of those that heard
//! the uplink; every frame spends the gateway's duty-cycle budget first.

use std::time::Duration;

use lrwn::{
    AES128Key, DevAddr, FCtrl, FRMPayload, FType, MACCommandSet, MACPayload, MACVersion, Major,
    Payload, PhyPayload, FHDR, MHDR,
};

use super::dedup::Collected;
use super::events;
use super::maccommand::MacState;
use super::profile::DeviceProfile;
use super::region::{max_frm_payload, required_snr, rx1_dr, rx1_freq};
use super::{store_failed, Counters};
use crate::app::{now, App};
use crate::fuota::control::{self, Delivery, Unicast};
use crate::integration::Event;
use crate::lns::downlink::{airtime, Downlink, Outcome, Timing};
use crate::lns::{regions, UplinkEvent};
use crate::store::{DeviceContext, DeviceRow, QueueItem};

/// FOpts holds at most this many octets.
const MAX_FOPTS: usize = 15;

/// What the network needs before a class A window closes: processing plus the
/// one-way trip to the gateway and station's TX_AIM_GAP (end-devices.md §3.7).
pub const WINDOW_MARGIN: Duration = Duration::from_millis(150);

/// The class A windows a downlink may use.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub rx_delay: u8,
    pub rx1_dr_offset: u8,
    pub rx2: (u8, u32),
}

impl Window {
    pub fn of(mac: &MacState) -> Window {
        Window {
            rx_delay: mac.rx_delay.max(1),
            rx1_dr_offset: mac.rx1_dr_offset,
            rx2: (mac.rx2_dr, mac.rx2_freq),
        }
    }
}

/// What the answer to an uplink must carry.
#[derive(Debug, Default)]
pub struct Answer {
    pub ack: bool,
    /// MAC answers (must go first), then pending request blocks.
    pub answers: Vec<u8>,
    pub requests: Vec<Vec<u8>>,
    /// A downlink is owed even if empty (sticky answers, ADRACKReq).
    pub owed: bool,
    /// An app-layer package frame (FUOTA control plane), sent before the queue.
    pub package: Option<Unicast>,
}

/// The copy with the best link margin (SNR above what its SF needs), then RSSI.
pub fn best_copy(up: &Collected) -> &UplinkEvent {
    let score = |c: &UplinkEvent| {
        let sf = regions::dr("EU868", c.uplink.radio.dr).map_or(12, |m| m.0);
        (
            c.uplink.radio.up.snr - required_snr(sf),
            c.uplink.radio.up.rssi,
        )
    };
    up.copies
        .iter()
        .max_by(|a, b| {
            score(a)
                .partial_cmp(&score(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .expect("a collected uplink has a copy")
}

/// A receive window's (DR, Hz), if the frame can still make it.
type Rx = Option<(u8, u32)>;

/// The US915 sub-band of the gateway that heard `up` best (its `SubBands`, else
/// 2, the default router_config uses): the one the device is kept on.
pub async fn best_sub_band(app: &App, up: &Collected) -> u8 {
    match app.store.gateway_by_eui(best_copy(up).gateway).await {
        Ok(g) => g.gw.sub_bands.and_then(|s| s.first().copied()).unwrap_or(2),
        Err(_) => 2,
    }
}

/// RX1 and RX2 for an answer to `copy`, each only while there is still time to
/// hand it to station.
fn windows(region: &str, copy: &UplinkEvent, w: Window, first_arrival_us: i64) -> (Rx, Rx) {
    let elapsed = Duration::from_micros(
        (crate::lorawan::gps::unix_now_us() - first_arrival_us).max(0) as u64,
    );
    let rx1_at = Duration::from_secs(u64::from(w.rx_delay));
    let r = &copy.uplink.radio;
    let rx1 = (elapsed + WINDOW_MARGIN < rx1_at)
        .then(|| {
            Some((
                rx1_dr(region, r.dr, w.rx1_dr_offset)?,
                rx1_freq(region, r.freq)?,
            ))
        })
        .flatten();
    let rx2 = (elapsed + WINDOW_MARGIN < rx1_at + Duration::from_secs(1)).then_some(w.rx2);
    (rx1, rx2)
}

/// Largest FRMPayload (without FOpts) both windows can carry.
fn frame_room(region: &str, rx1: Rx, rx2: Rx) -> usize {
    [rx1, rx2]
        .into_iter()
        .flatten()
        .filter_map(|(dr, _)| max_frm_payload(region, dr, 0))
        .min()
        .unwrap_or(0)
}

/// Sends `phy` in the class A windows of `up`. The outcome arrives later (station's
/// `dntxed`); `txack` names the event to emit when it does.
#[allow(clippy::too_many_arguments)]
pub async fn send_class_a(
    app: &App,
    device: &DeviceRow,
    region: &str,
    up: &Collected,
    w: Window,
    phy: Vec<u8>,
    txack: Option<(Event, u32)>,
    delivery: Option<Delivery>,
) -> bool {
    let copy = best_copy(up);
    let (rx1, rx2) = windows(region, copy, w, up.first_arrival_us);
    let start_rx1 = up.first_arrival_us + i64::from(w.rx_delay) * 1_000_000;
    let air =
        |dr: u8| regions::dr(region, dr).map_or(0, |m| airtime(m, phy.len()).as_micros() as u64);
    // Both windows go to station, which falls back to RX2 by itself when RX1 is
    // impossible (late, or its band still blocked). Spend the budget of the
    // window station will use: RX1 if its band is free, else RX2.
    let spent_rx1 =
        rx1.is_some_and(|(dr, f)| spend(app, copy.gateway, region, f, start_rx1, air(dr)));
    let spent = spent_rx1
        || rx2.is_some_and(|(dr, f)| {
            spend(app, copy.gateway, region, f, start_rx1 + 1_000_000, air(dr))
        });
    if !spent {
        Counters::bump(&app.devices.counters.downlinks_skipped);
        return false;
    }
    let dl = Downlink {
        dev_eui: device.dev_eui.0,
        pdu: phy,
        timing: Timing::ClassA {
            xtime: copy.uplink.radio.up.xtime,
            rctx: copy.uplink.radio.up.rctx,
            rx_delay: w.rx_delay,
            rx1,
            rx2,
        },
        priority: 0,
    };
    spawn_send(app, copy.gateway, dl, txack, delivery, region.to_owned());
    true
}

/// Hands the frame to the gateway and reports its fate without holding the caller.
fn spawn_send(
    app: &App,
    gateway: crate::eui::Eui,
    dl: Downlink,
    txack: Option<(Event, u32)>,
    delivery: Option<Delivery>,
    region: String,
) {
    let app = app.clone();
    tokio::spawn(async move {
        let outcome = app.lns.send(gateway, dl).await;
        let c = &app.devices.counters;
        match outcome {
            Ok(Outcome::Transmitted(tx)) => {
                Counters::bump(&c.downlinks_sent);
                if let Some(d) = delivery {
                    control::delivered(&app, d);
                }
                if let Some((
                    Event::TxAck {
                        downlink_id,
                        time,
                        device_info,
                        queue_item_id,
                        f_cnt_down,
                        ..
                    },
                    _,
                )) = txack
                {
                    let dr = tx.dr.unwrap_or(0);
                    let ev = Event::TxAck {
                        downlink_id,
                        time,
                        device_info,
                        queue_item_id,
                        f_cnt_down,
                        gateway_eui: gateway.0,
                        tx_info: events::tx_info(&region, dr, tx.freq.unwrap_or(0)),
                    };
                    let id = ev.device_info().dev_eui;
                    if let Ok(d) = app.store.device_by_eui(crate::eui::Eui(id)).await {
                        events::emit(&app, &d.id, vec![ev]).await;
                    }
                }
            }
            _ => Counters::bump(&c.downlinks_failed),
        }
    });
}

/// MAC bytes for FOpts, or for an FPort 0 frame when they don't fit in 15 octets.
enum Mac {
    FOpts(Vec<u8>),
    Port0(Vec<u8>),
}

fn place_mac(a: &Answer, room: usize) -> Mac {
    let mut all = a.answers.clone();
    for r in &a.requests {
        all.extend_from_slice(r);
    }
    if all.len() <= MAX_FOPTS {
        return Mac::FOpts(all);
    }
    // Answers first, then whole request blocks, as much as the frame carries.
    let mut bytes = a.answers.clone();
    for r in &a.requests {
        if bytes.len() + r.len() <= room {
            bytes.extend_from_slice(r);
        }
    }
    Mac::Port0(bytes)
}

/// Answers an accepted uplink in its class A windows, if anything is owed or queued.
pub async fn answer_uplink(
    app: &App,
    ctx: &DeviceContext,
    profile: &DeviceProfile,
    mac: &MacState,
    up: &Collected,
    a: Answer,
) {
    let region = profile.region();
    let w = Window::of(mac);
    let (rx1, rx2) = windows(region, best_copy(up), w, up.first_arrival_us);
    if rx1.is_none() && rx2.is_none() {
        return Counters::bump(&app.devices.counters.downlinks_skipped);
    }
    let room = frame_room(region, rx1, rx2);
    let placed = place_mac(&a, room);
    let app_room = match &placed {
        Mac::FOpts(f) => Some(room.saturating_sub(f.len())),
        Mac::Port0(_) => None,
    };
    // A package frame goes before the queue when it fits beside the MAC bytes;
    // otherwise it waits for the next uplink (no try is spent).
    let package = a
        .package
        .filter(|p| app_room.is_some_and(|r| p.data.len() <= r));
    let owed =
        a.ack || a.owed || !a.answers.is_empty() || !a.requests.is_empty() || package.is_some();
    if !owed && !matches!(app.store.queued(ctx.device.id.clone()).await, Ok(n) if n > 0) {
        return;
    }
    let queue_room = if package.is_some() { None } else { app_room };
    let r = match app
        .store
        .reserve_downlink(ctx.device.id.clone(), queue_room)
        .await
    {
        Ok(r) => r,
        Err(e) => return store_failed("reserve downlink", &e),
    };
    if !owed && r.item.is_none() {
        return;
    }
    let (item, delivery) = match package {
        Some(p) => (
            Some(QueueItem {
                id: String::new(),
                device_id: ctx.device.id.clone(),
                f_port: p.f_port,
                data: p.data,
                confirmed: false,
                created_at: String::new(),
            }),
            p.delivery,
        ),
        None => (r.item.clone(), None),
    };
    // FPending: more queued, MAC bytes left over, or another package step to come.
    let pending = r.more || matches!(placed, Mac::Port0(_)) || delivery.is_some();
    let phy = data_frame(
        &ctx.session.nwk_s_key,
        &ctx.session.app_s_key,
        ctx.session.dev_addr,
        r.fcnt_down,
        a.ack,
        pending,
        placed,
        item.as_ref(),
    );
    let txack = r
        .item
        .as_ref()
        .map(|q| txack_event(ctx, profile, q, r.fcnt_down));
    send_class_a(app, &ctx.device, region, up, w, phy, txack, delivery).await;
}

fn txack_event(
    ctx: &DeviceContext,
    profile: &DeviceProfile,
    q: &QueueItem,
    fcnt: u32,
) -> (Event, u32) {
    let info = events::device_info(
        &ctx.device,
        &ctx.profile.id,
        ctx.profile.name.as_deref(),
        profile,
    );
    (
        Event::TxAck {
            downlink_id: fcnt,
            time: now(),
            device_info: info,
            queue_item_id: q.id.clone(),
            f_cnt_down: fcnt,
            gateway_eui: 0,
            tx_info: events::tx_info(profile.region(), 0, 0),
        },
        fcnt,
    )
}

/// A data downlink: FCtrl, FOpts or FPort 0 MAC, the queued payload, MIC.
#[allow(clippy::too_many_arguments)]
fn data_frame(
    nwk_s_key: &[u8; 16],
    app_s_key: &[u8; 16],
    dev_addr: u32,
    fcnt: u32,
    ack: bool,
    f_pending: bool,
    mac: Mac,
    item: Option<&QueueItem>,
) -> Vec<u8> {
    let confirmed = item.is_some_and(|q| q.confirmed);
    let (f_opts, f_port, frm, key) = match (mac, item) {
        (Mac::Port0(m), _) => (Vec::new(), Some(0), Some(m), nwk_s_key),
        (Mac::FOpts(f), Some(q)) => (f, Some(q.f_port), Some(q.data.clone()), app_s_key),
        (Mac::FOpts(f), None) => (f, None, None, app_s_key),
    };
    let mut phy = PhyPayload {
        mhdr: MHDR {
            f_type: if confirmed {
                FType::ConfirmedDataDown
            } else {
                FType::UnconfirmedDataDown
            },
            major: Major::LoRaWANR1,
        },
        payload: Payload::MACPayload(MACPayload {
            fhdr: FHDR {
                devaddr: DevAddr::from_be_bytes(dev_addr.to_be_bytes()),
                f_ctrl: FCtrl {
                    adr: false,
                    adr_ack_req: false,
                    ack,
                    f_pending,
                    class_b: false,
                    f_opts_len: 0,
                },
                f_cnt: fcnt,
                f_opts: MACCommandSet::from_slice(&f_opts),
            },
            f_port,
            frm_payload: frm.map(FRMPayload::Raw),
        }),
        mic: None,
    };
    const OK: &str = "downlink fields are in range";
    phy.encrypt_frm_payload(&AES128Key::from_bytes(*key))
        .expect(OK);
    phy.set_downlink_data_mic(
        MACVersion::LoRaWAN1_0,
        0,
        &AES128Key::from_bytes(*nwk_s_key),
    )
    .expect(OK);
    phy.to_vec().expect(OK)
}

/// Sends the next queued item to a class C device now, on its RX2 parameters,
/// through the gateway that last heard it best.
pub async fn send_class_c(app: &App, device_id: &str) {
    let Ok(Some(ctx)) = app.store.device_context(device_id.to_owned()).await else {
        return;
    };
    let Ok(profile) = DeviceProfile::parse(&ctx.profile.lorawan) else {
        return;
    };
    let Ok(mac) = serde_json::from_str::<MacState>(&ctx.session.mac) else {
        return;
    };
    let Some(gateway) = last_gateway(&ctx) else {
        return Counters::bump(&app.devices.counters.downlinks_skipped);
    };
    let region = profile.region();
    let Some(room) = max_frm_payload(region, mac.rx2_dr, 0) else {
        return;
    };
    let r = match app
        .store
        .reserve_downlink(ctx.device.id.clone(), Some(room))
        .await
    {
        Ok(r) => r,
        Err(e) => return store_failed("reserve class C downlink", &e),
    };
    let Some(item) = r.item.as_ref() else { return };
    let phy = data_frame(
        &ctx.session.nwk_s_key,
        &ctx.session.app_s_key,
        ctx.session.dev_addr,
        r.fcnt_down,
        false,
        r.more,
        Mac::FOpts(Vec::new()),
        Some(item),
    );
    let air =
        regions::dr(region, mac.rx2_dr).map_or(0, |m| airtime(m, phy.len()).as_micros() as u64);
    // "As soon as possible" is about 20 ms after station reads the message.
    let start = crate::lorawan::gps::unix_now_us() + 50_000;
    if !spend(app, gateway, region, mac.rx2_freq, start, air) {
        return Counters::bump(&app.devices.counters.downlinks_skipped);
    }
    let dl = Downlink {
        dev_eui: ctx.device.dev_eui.0,
        pdu: phy,
        timing: Timing::ClassCNow {
            dr: mac.rx2_dr,
            freq: mac.rx2_freq,
        },
        priority: 0,
    };
    let txack = txack_event(&ctx, &profile, item, r.fcnt_down);
    spawn_send(app, gateway, dl, Some(txack), None, region.to_owned());
}

/// The gateway of the device's last uplink (kept in its statistics).
fn last_gateway(ctx: &DeviceContext) -> Option<crate::eui::Eui> {
    let stats: serde_json::Value = serde_json::from_str(ctx.device.last_uplink.as_deref()?).ok()?;
    let eui = stats["Gateways"][0]["GatewayEui"].as_str()?;
    eui.parse::<crate::eui::Eui>().ok()
}

/// Spends the gateway's duty-cycle budget for a frame of `airtime_us` starting at
/// `start_us` on `freq` (see `lns::dutycycle`); false when the band is busy then.
fn spend(
    app: &App,
    gateway: crate::eui::Eui,
    region: &str,
    freq: u32,
    start_us: i64,
    airtime_us: u64,
) -> bool {
    let (band, permille) = crate::fuota::plan::station_band(region, freq);
    let until = start_us + crate::fuota::plan::station_block_us(airtime_us, permille) as i64;
    app.lns.budget.try_reserve(
        gateway,
        band,
        start_us,
        until,
        crate::lorawan::gps::unix_now_us(),
    )
}
