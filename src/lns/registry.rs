//! Who is connected: one live session per gateway EUI, with its command channel,
//! in-flight limit and counters. A gateway that reconnects replaces its old
//! session, which is told to close. Lookups never block on a session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::downlink::{Downlink, DownlinkError, Outcome};
use crate::eui::Eui;

/// What the rest of the server asks a session to do.
pub enum Command {
    Downlink {
        /// Boxed: every session's channel allocates all its slots up front.
        dl: Box<Downlink>,
        /// The session's answer: the time to wait for `dntxed`, or why not.
        accepted: oneshot::Sender<Result<std::time::Duration, DownlinkError>>,
        done: oneshot::Sender<Outcome>,
    },
}

/// Counters of one gateway's LNS traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    pub uplinks: u64,
    pub last_uplink_at: Option<String>,
    pub last_rssi: Option<f64>,
    pub last_snr: Option<f64>,
    /// Messages dropped: malformed, over the rate limit, or uplink queue full.
    pub dropped: u64,
    pub downlinks_sent: u64,
    pub downlinks_confirmed: u64,
    /// Why downlinks cannot work with this gateway's region, if they cannot.
    pub region_warning: Option<String>,
    /// Station has GPS time of its own (it asks for timesync: a PPS gateway).
    pub gps: bool,
    /// The server can place frames on this gateway's clock (getxtime answered).
    pub anchored: bool,
}

#[derive(Clone)]
pub struct Handle {
    pub id: u64,
    pub tx: mpsc::Sender<Command>,
    pub connected_since: String,
    pub stats: Arc<Mutex<LiveStats>>,
    pub inflight: Arc<Semaphore>,
    pub close: CancellationToken,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<Eui, Handle>>,
    next_id: AtomicU64,
}

impl Registry {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `h` the gateway's session; returns the one it replaces, if any.
    pub fn insert(&self, eui: Eui, h: Handle) -> Option<Handle> {
        let old = self.lock().insert(eui, h);
        if let Some(o) = &old {
            o.close.cancel();
        }
        old
    }

    /// Removes the gateway's session if it is still session `id`.
    pub fn remove(&self, eui: Eui, id: u64) {
        let mut map = self.lock();
        if map.get(&eui).is_some_and(|h| h.id == id) {
            map.remove(&eui);
        }
    }

    pub fn get(&self, eui: Eui) -> Option<Handle> {
        self.lock().get(&eui).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn euis(&self) -> Vec<Eui> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Eui, Handle>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}
