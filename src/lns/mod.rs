//! The LNS face: the Basics Station WebSocket protocol over WSS
//! (spec/lns-protocol.md). `handler` serves discovery and traffic endpoints,
//! `session` runs one gateway's connection, `registry` knows who is connected,
//! `msg` parses and builds messages, `regions` builds router_config, `downlink`
//! turns the server's requests into `dnmsg`. `Lns` is what the rest of the server
//! uses: send a downlink through a gateway and await its outcome, read
//! connection state, and consume uplinks from a bounded queue.

pub mod downlink;
pub mod dutycycle;
mod handler;
pub mod msg;
pub mod nudge;
pub mod regions;
pub mod registry;
mod session;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, Semaphore};

pub use handler::router;

use crate::config::LnsConfig;
use crate::eui::Eui;
use downlink::{Downlink, DownlinkError, Outcome};
use registry::{Command, LiveStats, Registry};

/// An uplink as the rest of the server receives it.
#[derive(Debug, Clone)]
pub struct UplinkEvent {
    pub gateway: Eui,
    pub received_at: String,
    pub uplink: msg::Uplink,
}

/// Connection state of one gateway.
#[derive(Debug, Clone)]
pub struct Connection {
    pub connected_since: String,
    pub stats: LiveStats,
}

pub struct Lns {
    registry: Registry,
    limits: LnsConfig,
    sessions: Arc<Semaphore>,
    uplinks_tx: mpsc::Sender<UplinkEvent>,
    uplinks_rx: Mutex<Option<mpsc::Receiver<UplinkEvent>>>,
    /// Uplinks dropped because the queue was full (a metrics endpoint reads it).
    uplinks_dropped: AtomicU64,
    next_diid: AtomicI64,
    /// The duty-cycle budget every downlink spends from.
    pub budget: dutycycle::Ledger,
    /// Gateways asked to run CUPS now (`nudge`).
    pub nudges: nudge::Nudges,
}

impl Lns {
    pub fn new(limits: LnsConfig) -> Lns {
        let (tx, rx) = mpsc::channel(limits.uplink_queue);
        Lns {
            registry: Registry::default(),
            sessions: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            uplinks_tx: tx,
            uplinks_rx: Mutex::new(Some(rx)),
            uplinks_dropped: AtomicU64::new(0),
            // Start from the clock so diids differ across restarts.
            next_diid: AtomicI64::new(crate::lorawan::gps::unix_now_us()),
            budget: Default::default(),
            nudges: Default::default(),
        }
    }

    fn next_diid(&self) -> i64 {
        self.next_diid.fetch_add(1, Ordering::Relaxed)
    }

    fn count_dropped_uplink(&self) {
        self.uplinks_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Uplinks dropped since start because `[lns] uplink_queue` was full.
    pub fn uplinks_dropped(&self) -> u64 {
        self.uplinks_dropped.load(Ordering::Relaxed)
    }

    /// The uplink queue's receiving end; only the first caller gets it.
    pub fn take_uplinks(&self) -> Option<mpsc::Receiver<UplinkEvent>> {
        self.uplinks_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub fn connection(&self, eui: Eui) -> Option<Connection> {
        self.registry.get(eui).map(|h| Connection {
            connected_since: h.connected_since.clone(),
            stats: h.stats.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }

    pub fn connected(&self) -> Vec<Eui> {
        self.registry.euis()
    }

    /// Sends a downlink through gateway `eui` and waits for its outcome: `dntxed`,
    /// silence past the deadline, or the gateway going away. Waits for a free
    /// in-flight slot of that gateway only; other gateways are never held up.
    pub async fn send(&self, eui: Eui, dl: Downlink) -> Result<Outcome, DownlinkError> {
        let h = self.registry.get(eui).ok_or(DownlinkError::NotConnected)?;
        let _permit = h
            .inflight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DownlinkError::Gone)?;
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        h.tx.send(Command::Downlink {
            dl: Box::new(dl),
            accepted: accepted_tx,
            done: done_tx,
        })
        .await
        .map_err(|_| DownlinkError::NotConnected)?;
        // A session that ends before it took the frame is a gateway gone, too.
        let Ok(accepted) = accepted_rx.await else {
            return Ok(Outcome::GatewayGone);
        };
        let wait = accepted?;
        Ok(match tokio::time::timeout(wait, done_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::GatewayGone,
            Err(_) => Outcome::NotConfirmed,
        })
    }
}
