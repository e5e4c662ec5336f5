//! The device face: Stationkeeper as network server and join server for LoRaWAN
//! 1.0.x end devices (spec/end-devices.md). It reads uplinks from the LNS face's
//! queue, deduplicates the copies several gateways heard, and hands each frame to
//! `join` (join-requests) or `uplink` (data frames); `downlink` answers in the
//! device's class A windows, or at once for class C, always through `Lns::send`
//! and the per-gateway duty-cycle budget FUOTA frames spend too. The decisions —
//! counters, MAC commands, regions, DevAddr — are pure modules beside them.
//! Sessions, counters and queues live in the store: a downlink's FCnt is
//! committed before its frame leaves, so a restart never reuses one.

pub mod dedup;
pub mod devaddr;
pub mod downlink;
pub mod events;
pub mod fcnt;
pub mod join;
pub mod maccommand;
pub mod phy;
pub mod profile;
pub mod queue;
pub mod region;
pub mod uplink;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::app::App;
use crate::lns::msg::Frame;
use crate::lns::UplinkEvent;
use dedup::{Added, Collected, Dedup};

/// What happened to uplinks and joins, counted instead of logged per frame.
#[derive(Debug, Default)]
pub struct Counters {
    pub uplinks: AtomicU64,
    pub copies_merged: AtomicU64,
    pub dedup_refused: AtomicU64,
    pub malformed: AtomicU64,
    pub unknown_device: AtomicU64,
    pub mic_failed: AtomicU64,
    pub replayed: AtomicU64,
    pub gap_too_large: AtomicU64,
    pub bad_channel: AtomicU64,
    pub joins_accepted: AtomicU64,
    pub joins_refused: AtomicU64,
    pub downlinks_sent: AtomicU64,
    pub downlinks_failed: AtomicU64,
    pub downlinks_skipped: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot by name, for the API and tests.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("uplinks", l(&self.uplinks)),
            ("copies_merged", l(&self.copies_merged)),
            ("dedup_refused", l(&self.dedup_refused)),
            ("malformed", l(&self.malformed)),
            ("unknown_device", l(&self.unknown_device)),
            ("mic_failed", l(&self.mic_failed)),
            ("replayed", l(&self.replayed)),
            ("gap_too_large", l(&self.gap_too_large)),
            ("bad_channel", l(&self.bad_channel)),
            ("joins_accepted", l(&self.joins_accepted)),
            ("joins_refused", l(&self.joins_refused)),
            ("downlinks_sent", l(&self.downlinks_sent)),
            ("downlinks_failed", l(&self.downlinks_failed)),
            ("downlinks_skipped", l(&self.downlinks_skipped)),
        ]
    }
}

/// The device face's handle in `AppState`.
pub struct Devices {
    pub counters: Counters,
    pub net_id: [u8; 3],
    pub integrations: crate::integration::Integrations,
    /// Uplinks handled at once; more wait in the dedup loop.
    pub workers: Arc<Semaphore>,
}

impl Devices {
    pub fn new(
        cfg: &crate::config::Config,
        integrations: crate::integration::Integrations,
    ) -> Result<Devices, String> {
        Ok(Devices {
            counters: Counters::default(),
            net_id: devaddr::parse_net_id(&cfg.lorawan.net_id)
                .map_err(|e| format!("[lorawan] net_id: {e}"))?,
            integrations,
            workers: Arc::new(Semaphore::new(cfg.lorawan.workers)),
        })
    }
}

/// Runs the device face until shutdown: takes the LNS uplink queue, deduplicates,
/// and handles each frame on its own task (at most `[lorawan] workers` at once).
pub async fn run(app: App) {
    let Some(mut uplinks) = app.lns.take_uplinks() else {
        tracing::warn!("the LNS uplink queue has another consumer; the device face is off");
        return;
    };
    let window = Duration::from_millis(app.config.lorawan.dedup_window_ms);
    let mut dedup = Dedup::new(window, app.config.lorawan.max_collecting);
    loop {
        let due = dedup.next_due();
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            got = uplinks.recv() => match got {
                Some(ev) => collect(&app, &mut dedup, ev),
                None => return,
            },
            _ = sleep_until(due) => {
                for up in dedup.take_due(Instant::now()) {
                    dispatch(&app, up).await;
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn collect(app: &App, dedup: &mut Dedup, ev: UplinkEvent) {
    if matches!(ev.uplink.frame, Frame::Proprietary { .. }) {
        return;
    }
    let phy = phy::rebuild(&ev.uplink.frame);
    let now_us = crate::lorawan::gps::unix_now_us();
    let c = &app.devices.counters;
    match dedup.add(phy, ev, Instant::now(), now_us) {
        Added::Opened => Counters::bump(&c.uplinks),
        Added::Joined | Added::Repeated => Counters::bump(&c.copies_merged),
        Added::Refused => Counters::bump(&c.dedup_refused),
    }
}

/// Hands one deduplicated frame to a worker task.
async fn dispatch(app: &App, up: Collected) {
    let Ok(permit) = app.devices.workers.clone().acquire_owned().await else {
        return;
    };
    let app = app.clone();
    tokio::spawn(async move {
        let _permit = permit;
        match &up.copies[0].uplink.frame {
            Frame::Join { .. } => join::handle(&app, up).await,
            Frame::Data { .. } => uplink::handle(&app, up).await,
            Frame::Proprietary { .. } => {}
        }
    });
}

/// Takes downlinks applications enqueue through the integrations' command topic.
pub async fn run_commands(
    app: App,
    mut commands: tokio::sync::mpsc::Receiver<crate::integration::DownlinkCommand>,
) {
    loop {
        let cmd = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            c = commands.recv() => match c { Some(c) => c, None => return },
        };
        let Ok(device) = app.store.device_by_eui(crate::eui::Eui(cmd.dev_eui)).await else {
            tracing::warn!(dev_eui = %crate::eui::Eui(cmd.dev_eui), "downlink command for an unknown device dropped");
            continue;
        };
        if device.destination != cmd.application_id {
            tracing::warn!(dev_eui = %device.dev_eui, "downlink command names another application than the device's DestinationName; dropped");
            continue;
        }
        let q = queue::Enqueue {
            f_port: cmd.f_port,
            data: cmd.data,
            confirmed: cmd.confirmed,
            id: cmd.id,
        };
        if let Err(e) = queue::enqueue(&app, &device, q).await {
            tracing::warn!(dev_eui = %device.dev_eui, error = %e, "downlink command refused");
        }
    }
}

/// Logs a store failure on the device path once, with the step that failed.
pub(crate) fn store_failed(step: &str, e: &crate::store::StoreError) {
    tracing::error!(step, error = %e, "device path: store failed");
}
