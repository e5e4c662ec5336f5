//! A join-request, handled as named steps (end-devices.md §2.6): find the device
//! and check the MIC with its AppKey, judge the DevNonce, allocate a DevAddr,
//! derive the session keys, store the session as pending (the old one stays until
//! the first uplink under the new keys), and send the join-accept in RX1 with
//! JOIN_ACCEPT_DELAY1 (station falls back to RX2 by itself). Anything refused is
//! counted, and shown in the device's event log when the device is known.

use lrwn::{
    keys, AES128Key, CFList, DLSettings, DevAddr, FType, JoinAcceptPayload, JoinType, Major, NetID,
    Payload, PhyPayload, EUI64, MHDR,
};

use super::dedup::Collected;
use super::downlink::{self, Window};
use super::events;
use super::maccommand::MacState;
use super::profile::DeviceProfile;
use super::region::{cflist, rx2_default, uplink_ok};
use super::{store_failed, Counters};
use crate::app::{now, App};
use crate::eui::Eui;
use crate::store::{DeviceRow, NonceRule, OtaaKeys, ProfileKind, SessionRow, StoreError};

/// JOIN_ACCEPT_DELAY1 in seconds.
const JOIN_ACCEPT_DELAY1: u8 = 5;

struct Request {
    join_eui: u64,
    dev_eui: u64,
    dev_nonce: u16,
}

struct Known {
    device: DeviceRow,
    keys: OtaaKeys,
    profile: DeviceProfile,
    profile_id: String,
    profile_name: Option<String>,
}

pub async fn handle(app: &App, up: Collected) {
    let counters = &app.devices.counters;
    let Some(req) = parse(&up.phy) else {
        return Counters::bump(&counters.malformed);
    };
    let Some(known) = find_device(app, &req).await else {
        return Counters::bump(&counters.unknown_device);
    };
    let info = events::device_info(
        &known.device,
        &known.profile_id,
        known.profile_name.as_deref(),
        &known.profile,
    );
    let judged = match check(&up, &req, &known) {
        Ok(()) => take_nonce(app, &known, &req).await,
        Err(why) => Err(why),
    };
    let join_nonce = match judged {
        Ok(n) => n,
        Err(why) => {
            Counters::bump(&counters.joins_refused);
            let log = events::log(info, "WARNING", "OTAA", why);
            return events::emit(app, &known.device.id, vec![log]).await;
        }
    };
    let Some(dev_addr) = allocate_dev_addr(app).await else {
        Counters::bump(&counters.joins_refused);
        return tracing::error!("no free DevAddr after 16 draws; widen [lorawan] net_id's space");
    };
    let region = known.profile.region().to_owned();
    let sub_band = downlink::best_sub_band(app, &up).await;
    let accept = build(
        &known,
        &req,
        join_nonce,
        dev_addr,
        app.devices.net_id,
        sub_band,
    );
    if let Err(e) = app.store.store_pending_session(accept.session, now()).await {
        return store_failed("join session", &e);
    }
    Counters::bump(&counters.joins_accepted);
    let rx2 = rx2_default(&region).unwrap_or((0, 869_525_000));
    let window = Window {
        rx_delay: JOIN_ACCEPT_DELAY1,
        rx1_dr_offset: 0,
        rx2,
    };
    downlink::send_class_a(
        app,
        &known.device,
        &region,
        &up,
        window,
        accept.phy,
        None,
        None,
    )
    .await;
}

fn parse(phy: &[u8]) -> Option<Request> {
    let p = PhyPayload::from_slice(phy).ok()?;
    match p.payload {
        Payload::JoinRequest(j) => Some(Request {
            join_eui: u64::from_be_bytes(j.join_eui.to_be_bytes()),
            dev_eui: u64::from_be_bytes(j.dev_eui.to_be_bytes()),
            dev_nonce: j.dev_nonce,
        }),
        _ => None,
    }
}

async fn find_device(app: &App, req: &Request) -> Option<Known> {
    let device = app.store.device_by_eui(Eui(req.dev_eui)).await.ok()?;
    let keys = device.otaa.clone()?;
    let row = app
        .store
        .profile(ProfileKind::Device, device.device_profile_id.clone())
        .await
        .ok()?;
    let profile = DeviceProfile::parse(&row.lorawan).ok()?;
    Some(Known {
        device,
        keys,
        profile,
        profile_id: row.id,
        profile_name: row.name,
    })
}

/// JoinEUI, MIC and channel; the error is what the device's owner reads.
fn check(up: &Collected, req: &Request, k: &Known) -> Result<(), String> {
    if k.keys.join_eui.0 != req.join_eui {
        return Err(format!(
            "join-request names JoinEUI {:016x}, but the device is registered with {}",
            req.join_eui, k.keys.join_eui
        ));
    }
    let p = PhyPayload::from_slice(&up.phy).map_err(|e| format!("join-request unreadable: {e}"))?;
    if !p
        .validate_join_request_mic(&AES128Key::from_bytes(k.keys.app_key))
        .unwrap_or(false)
    {
        return Err("join-request MIC does not verify with the device's AppKey".into());
    }
    let radio = &up.copies[0].uplink.radio;
    if !uplink_ok(k.profile.region(), radio.dr, radio.freq) {
        return Err(format!(
            "join-request at DR{} on {} Hz is not an uplink channel of {}",
            radio.dr,
            radio.freq,
            k.profile.region()
        ));
    }
    Ok(())
}

async fn take_nonce(app: &App, k: &Known, req: &Request) -> Result<u32, String> {
    let rule = if k.profile.mac_version() == "1.0.4" {
        NonceRule::Increasing
    } else {
        NonceRule::Unused
    };
    match app
        .store
        .take_join_nonce(
            k.device.id.clone(),
            Eui(req.join_eui),
            req.dev_nonce,
            rule,
            now(),
        )
        .await
    {
        Ok(n) => Ok(n),
        Err(StoreError::Conflict(why)) => Err(why),
        Err(e) => {
            store_failed("join nonce", &e);
            Err("internal error; see the server log".into())
        }
    }
}

async fn allocate_dev_addr(app: &App) -> Option<u32> {
    for _ in 0..16 {
        let a = super::devaddr::random(app.devices.net_id);
        if let Ok(false) = app.store.dev_addr_in_use(a).await {
            return Some(a);
        }
    }
    None
}

struct Accept {
    phy: Vec<u8>,
    session: SessionRow,
}

/// The join-accept and the session it starts (end-devices.md §2.3, §2.4).
fn build(
    k: &Known,
    req: &Request,
    join_nonce: u32,
    dev_addr: u32,
    net_id: [u8; 3],
    sub_band: u8,
) -> Accept {
    let region = k.profile.region();
    let app_key = AES128Key::from_bytes(k.keys.app_key);
    let (rx2_dr, _) = k.profile.rx2();
    let rx1_dr_offset = k.profile.rx_dr_offset1.unwrap_or(0);
    let rx_delay = k.profile.rx_delay1.unwrap_or(1).max(1);
    let cf = cflist(region, k.profile.mac_version(), sub_band);
    let net = NetID::from_be_bytes(net_id);
    let join_eui = EUI64::from_be_bytes(req.join_eui.to_be_bytes());
    let mut phy = PhyPayload {
        mhdr: MHDR {
            f_type: FType::JoinAccept,
            major: Major::LoRaWANR1,
        },
        payload: Payload::JoinAccept(JoinAcceptPayload {
            join_nonce,
            home_netid: net,
            devaddr: DevAddr::from_be_bytes(dev_addr.to_be_bytes()),
            dl_settings: DLSettings {
                opt_neg: false,
                rx2_dr,
                rx1_dr_offset,
            },
            rx_delay,
            cflist: cf.and_then(|b| CFList::from_bytes(b).ok()),
        }),
        mic: None,
    };
    const OK: &str = "join-accept fields are in range";
    phy.set_join_accept_mic(JoinType::Join, &join_eui, req.dev_nonce, &app_key)
        .expect(OK);
    phy.encrypt_join_accept_payload(&app_key).expect(OK);
    let nwk_s_key =
        keys::get_f_nwk_s_int_key(false, &app_key, &net, &join_eui, join_nonce, req.dev_nonce);
    let app_s_key =
        keys::get_app_s_key(false, &app_key, &net, &join_eui, join_nonce, req.dev_nonce);
    let mut mac = MacState::defaults(rx2_default(region).unwrap_or((0, 869_525_000)));
    // DLSettings and RxDelay of the join-accept are the device's from now on.
    mac.rx1_dr_offset = rx1_dr_offset;
    mac.rx2_dr = rx2_dr;
    mac.rx_delay = rx_delay;
    if region == "US915" && cf.is_some() {
        mac.sub_band = Some(sub_band);
    }
    Accept {
        phy: phy.to_vec().expect(OK),
        session: SessionRow {
            device_id: k.device.id.clone(),
            slot: 1,
            dev_addr,
            nwk_s_key: nwk_s_key.expect(OK).to_bytes(),
            app_s_key: app_s_key.expect(OK).to_bytes(),
            fcnt_up: 0,
            fcnt_down: 0,
            mac: serde_json::to_string(&mac).expect("MacState serialises"),
        },
    }
}
