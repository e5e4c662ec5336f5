//! Who may start a TLS handshake on a listener. A connection that has not finished
//! its handshake has proved nothing, and a bare TCP connection costs an attacker
//! one packet, so handshakes get their own, smaller budget
//! (`[limits] handshake_connections`), separate from the open connections that
//! `[limits] max_connections` bounds, and one source (an IPv4 address or an IPv6
//! /64) may hold at most `[limits] handshake_per_source` of it. A connection over
//! its source's share is closed right after `accept`, so the accept loop keeps
//! draining the kernel queue and other sources' connections are accepted at once;
//! with `[limits] hello_timeout_secs` bounding how long a silent connection holds
//! its place, many sources are needed to fill the budget. Refusals are counted and
//! summed up in at most one log line per `REPORT_EVERY`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refusals are logged at most once per this interval, as one summary line.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What a per-source share is counted by: an IPv4 address (IPv4-mapped IPv6
/// included), or an IPv6 /64, the smallest block one customer usually gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    V6Prefix64(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.into()),
                None => Source::V6Prefix64((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Source::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(a)),
            Source::V6Prefix64(p) => {
                write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(p) << 64))
            }
        }
    }
}

/// One listener's handshake budget.
pub struct Admission {
    face: &'static str,
    slots: Arc<Semaphore>,
    per_source: usize,
    in_handshake: Mutex<HashMap<Source, usize>>,
    refused: AtomicU64,
    /// When refusals were last logged, and how many were counted by then.
    reported: Mutex<(Instant, u64)>,
}

/// A connection's place in the handshake budget; dropping it (when the handshake
/// ends, either way) gives the place back.
pub struct InHandshake {
    admission: Arc<Admission>,
    source: Source,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(face: &'static str, slots: usize, per_source: usize) -> Arc<Admission> {
        Arc::new(Admission {
            face,
            slots: Arc::new(Semaphore::new(slots)),
            per_source,
            in_handshake: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            reported: Mutex::new((Instant::now(), 0)),
        })
    }

    /// Waits for a free handshake slot. Taken before `accept`, so that when every
    /// slot is busy further clients wait in the kernel's accept queue.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    /// Admits an accepted connection from `ip` to its handshake, or `None` when its
    /// source already holds its share (the caller closes the connection).
    pub fn admit(self: &Arc<Self>, slot: OwnedSemaphorePermit, ip: IpAddr) -> Option<InHandshake> {
        let source = Source::of(ip);
        {
            let mut map = self.in_handshake.lock().expect("admission lock");
            let n = map.entry(source).or_insert(0);
            if *n < self.per_source {
                *n += 1;
                return Some(InHandshake {
                    admission: self.clone(),
                    source,
                    _slot: slot,
                });
            }
        }
        self.note_refusal(source);
        None
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn note_refusal(&self, source: Source) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut reported = self.reported.lock().expect("admission lock");
        let (at, logged) = *reported;
        // The first refusal is logged at once; later ones at most every REPORT_EVERY.
        if logged == 0 || at.elapsed() >= REPORT_EVERY {
            tracing::warn!(
                face = self.face,
                source = %source,
                refused = total - logged,
                refused_total = total,
                "connections closed before the TLS handshake: their source already had [limits] handshake_per_source = {} handshakes open (latest source shown; next summary in {} s at the earliest)",
                self.per_source,
                REPORT_EVERY.as_secs()
            );
            *reported = (Instant::now(), total);
        }
    }

    #[cfg(test)]
    fn in_handshake(&self, source: Source) -> usize {
        self.in_handshake
            .lock()
            .unwrap()
            .get(&source)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for InHandshake {
    fn drop(&mut self) {
        let mut map = self.admission.in_handshake.lock().expect("admission lock");
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        assert_eq!(
            Source::of(ip("10.1.2.3")),
            Source::of(ip("::ffff:10.1.2.3"))
        );
        assert_ne!(Source::of(ip("10.1.2.3")), Source::of(ip("10.1.2.4")));
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[tokio::test]
    async fn one_source_gets_its_share_and_others_still_get_in() {
        let a = Admission::new("test", 10, 2);
        let attacker = ip("127.0.0.2");
        let first = a.admit(a.slot().await, attacker).expect("1st");
        let _second = a.admit(a.slot().await, attacker).expect("2nd");
        assert!(a.admit(a.slot().await, attacker).is_none());
        assert_eq!(a.refused(), 1);
        // the refused connection's slot came back: 8 of 10 are free
        assert_eq!(a.slots.available_permits(), 8);
        let _other = a
            .admit(a.slot().await, ip("127.0.0.1"))
            .expect("other source");
        drop(first);
        assert_eq!(a.in_handshake(Source::of(attacker)), 1);
        let _again = a
            .admit(a.slot().await, attacker)
            .expect("a place came free");
        assert_eq!(a.slots.available_permits(), 7);
    }
}
