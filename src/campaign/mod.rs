//! Rollout campaigns: a stored job that rolls task definitions out to a fleet in
//! waves, through a gate between waves, within rate limits and maintenance
//! windows. `spec` is the create body and its checks, `window` the maintenance
//! windows, `decide` the pure decisions, `runner` the job around them. This
//! module holds `Campaigns`, the job's side in `AppState`: the campaign clock
//! (real time plus an offset tests can move), and the in-memory index the CUPS
//! poll consults, so a poll of a gateway outside an open wave costs one atomic
//! load and no query.

pub mod decide;
pub mod runner;
pub mod spec;
pub mod target;
pub mod window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use spec::Checked;

/// What the CUPS poll needs to know about a gateway with an open campaign task.
#[derive(Debug)]
pub struct Hold {
    pub campaign: String,
    pub spec: Arc<Checked>,
}

/// The campaign job's shared state.
#[derive(Default)]
pub struct Campaigns {
    clock_offset_us: AtomicI64,
    /// Gateways with an open campaign task, rebuilt by every job tick.
    index: RwLock<Arc<HashMap<String, Arc<Hold>>>>,
    /// Fast path: no gateway is in the index.
    empty: AtomicBool,
    /// Gateways carrying an active FUOTA session, with its task Id.
    fuota_busy: RwLock<Arc<HashMap<String, String>>>,
    /// Wakes the job before its next tick (a campaign was created or controlled).
    pub wake: tokio::sync::Notify,
}

impl Campaigns {
    pub fn new() -> Campaigns {
        Campaigns {
            empty: AtomicBool::new(true),
            ..Campaigns::default()
        }
    }

    /// The campaign clock (Unix µs): windows, gates and rates read this.
    pub fn now_us(&self) -> i64 {
        let real = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
        real + self.clock_offset_us.load(Ordering::Relaxed)
    }

    /// Moves the campaign clock by `us` (tests; the scheduler never sleeps on it).
    pub fn advance_clock(&self, us: i64) {
        self.clock_offset_us.fetch_add(us, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Sets the campaign clock to Unix time `us`.
    pub fn set_clock(&self, us: i64) {
        let real = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
        self.clock_offset_us.store(us - real, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub(crate) fn publish(&self, index: HashMap<String, Arc<Hold>>, busy: HashMap<String, String>) {
        self.empty.store(index.is_empty(), Ordering::Relaxed);
        *self.index.write().expect("index lock") = Arc::new(index);
        *self.fuota_busy.write().expect("fuota lock") = Arc::new(busy);
    }

    /// Why an update must not go to this gateway now, if it must not: outside
    /// its campaign's maintenance windows, or while it carries a FUOTA session.
    /// `None` at once for gateways without an open campaign task.
    pub fn hold(&self, gateway_id: &str) -> Option<String> {
        if self.empty.load(Ordering::Relaxed) {
            return None;
        }
        let hold = self
            .index
            .read()
            .expect("index lock")
            .get(gateway_id)?
            .clone();
        if let Some(task) = self.fuota_busy.read().expect("fuota lock").get(gateway_id) {
            return Some(format!(
                "held by campaign {}: the gateway carries FUOTA task {task}; a station restart would cut its multicast",
                hold.campaign
            ));
        }
        (!hold.spec.window_open(self.now_us())).then(|| {
            format!(
                "held by campaign {}: outside its maintenance windows; sent when one opens",
                hold.campaign
            )
        })
    }
}
