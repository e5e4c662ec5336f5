//! The nudge: make a station that is connected to this LNS run a CUPS session
//! now instead of within a day. Station checks CUPS every 24 h while its LNS link
//! is up (cups-protocol.md §5), but when discovery answers with an error it stops
//! its LNS link and starts CUPS `CUPS_RESYNC_INTV` (1 min) later, then comes back
//! to the LNS (lns-protocol.md §8). So a nudge closes the gateway's traffic
//! socket, refuses its direct reconnects to the traffic URI (five, over about
//! 31 s) and answers its discovery with an error, until its CUPS poll arrives or
//! the nudge expires (`[campaigns] nudge_timeout_secs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::eui::Eui;

/// What discovery answers a nudged gateway (station logs it).
pub const DISCOVERY_ERROR: &str =
    "stationkeeper asks this gateway to run a CUPS session now (a rollout campaign); connect again afterwards";

/// Gateways being nudged, with when the nudge expires.
#[derive(Default)]
pub struct Nudges {
    pending: Mutex<HashMap<Eui, Instant>>,
    /// Fast path for every CUPS poll and LNS connect: nobody is nudged.
    any: AtomicBool,
}

impl Nudges {
    pub fn start(&self, eui: Eui, timeout: Duration) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.insert(eui, Instant::now() + timeout);
        self.any.store(true, Ordering::Relaxed);
    }

    /// Whether the gateway is being nudged (expired nudges are dropped here).
    pub fn active(&self, eui: Eui) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        p.retain(|_, until| *until > now);
        self.any.store(!p.is_empty(), Ordering::Relaxed);
        p.contains_key(&eui)
    }

    /// The gateway's CUPS poll arrived: the nudge did its work; let it back in.
    /// Returns whether it was nudged.
    pub fn done(&self, eui: Eui) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let was = p.remove(&eui).is_some();
        self.any.store(!p.is_empty(), Ordering::Relaxed);
        was
    }
}

impl super::Lns {
    /// Nudges a connected gateway: its session is closed now, and reconnects are
    /// refused until its CUPS poll (or `timeout`). False when it is not connected
    /// (nothing to nudge: it is not on this LNS).
    pub fn nudge(&self, eui: Eui, timeout: Duration) -> bool {
        let Some(h) = self.registry.get(eui) else {
            return false;
        };
        self.nudges.start(eui, timeout);
        h.close.cancel();
        true
    }
}
