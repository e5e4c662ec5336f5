//! What applications hear about a device: the ChirpStack-shaped `integration::Event`
//! built from a device and its uplink, kept in the device's bounded event log
//! (`[lorawan] events_per_device`) and published to the configured integrations.
//! A broker that is down never holds this up: `publish` only queues.

use std::collections::BTreeMap;

use crate::app::{now, App};
use crate::integration::{DeviceInfo, Event, RxInfo, TxInfo};
use crate::lns::regions;
use crate::store::DeviceRow;

use super::dedup::Collected;
use super::profile::DeviceProfile;

pub fn device_info(
    device: &DeviceRow,
    profile_id: &str,
    profile_name: Option<&str>,
    profile: &DeviceProfile,
) -> DeviceInfo {
    DeviceInfo {
        application_id: device.destination.clone(),
        application_name: device.destination.clone(),
        device_profile_id: profile_id.to_owned(),
        device_profile_name: profile_name.unwrap_or_default().to_owned(),
        device_name: device.name.clone().unwrap_or_default(),
        dev_eui: device.dev_eui.0,
        device_class_enabled: if profile.class_c() {
            "CLASS_C"
        } else {
            "CLASS_A"
        },
        tags: BTreeMap::new(),
    }
}

/// Every gateway's copy, as `rxInfo`.
pub fn rx_info(up: &Collected) -> Vec<RxInfo> {
    up.copies
        .iter()
        .map(|c| {
            let u = &c.uplink.radio.up;
            let mut context = u.xtime.to_le_bytes().to_vec();
            context.extend_from_slice(&u.rctx.to_le_bytes());
            RxInfo {
                gateway_eui: c.gateway.0,
                uplink_id: (u.xtime as u32) ^ (c.gateway.0 as u32),
                ns_time: c.received_at.clone(),
                time_since_gps_epoch: (u.gpstime > 0)
                    .then(|| format!("{}.{:06}s", u.gpstime / 1_000_000, u.gpstime % 1_000_000)),
                rssi: u.rssi.round() as i32,
                snr: u.snr as f32,
                context,
            }
        })
        .collect()
}

pub fn tx_info(region: &str, dr: u8, freq: u32) -> TxInfo {
    let (sf, bw_khz) = regions::dr(region, dr).unwrap_or((0, 0));
    TxInfo {
        frequency: freq,
        bandwidth: bw_khz * 1000,
        spreading_factor: sf,
        code_rate: "CR_4_5",
    }
}

/// Keeps the events in the devices' logs and publishes them.
pub async fn emit(app: &App, device_id: &str, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let at = now();
    let rows = events
        .iter()
        .map(|e| {
            (
                device_id.to_owned(),
                at.clone(),
                e.name().to_owned(),
                e.to_json().to_string(),
            )
        })
        .collect();
    if let Err(e) = app
        .store
        .record_device_events(rows, app.config.lorawan.events_per_device)
        .await
    {
        super::store_failed("event log", &e);
    }
    for e in &events {
        app.devices.integrations.publish(e);
    }
}

/// A `log` event (ChirpStack's codes), for what a device's owner should see.
pub fn log(
    info: DeviceInfo,
    level: &'static str,
    code: &'static str,
    description: String,
) -> Event {
    Event::Log {
        time: now(),
        device_info: info,
        level,
        code,
        description,
        context: BTreeMap::new(),
    }
}
