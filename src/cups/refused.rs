//! Why a gateway is refused (AWS CloudWatch's `CUPS_Request` errors' counterpart):
//! the last `[console] refusals_per_gateway` CUPS refusals of each gateway that
//! claimed a router id (time, peer, reason, the log line's text), and the
//! `[console] unknown_routers` most recently seen router ids the store does not
//! know. In memory and bounded both ways: at most `[console] refusal_gateways`
//! gateways are kept, the least recently refused forgotten first (an ordered index
//! makes that O(log n), so a flood of made-up ids costs no scan per request).
//! `cups::handler::log_refusal` feeds it, next to the refusal counters.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::config::ConsoleConfig;
use crate::eui::Eui;
use crate::logguard::Reason;

/// Characters of a refusal's text kept (the text is ours, client parts escaped).
const DETAIL_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub at: String,
    pub peer: String,
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRouter {
    pub eui: Eui,
    pub first_seen: String,
    pub last_seen: String,
    pub last_peer: String,
    pub reason: &'static str,
    pub count: u64,
}

pub struct RefusalLog {
    limits: ConsoleConfig,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    gateways: Lru<VecDeque<Refused>>,
    unknown: Lru<UnknownRouter>,
}

/// A map whose least recently touched key is found in O(log n).
struct Lru<V> {
    items: HashMap<Eui, (u64, V)>,
    order: BTreeMap<u64, Eui>,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            items: HashMap::new(),
            order: BTreeMap::new(),
        }
    }
}

impl<V> Lru<V> {
    /// The value of `eui`, touched at `seq`, created by `new` (evicting the least
    /// recently touched beyond `cap`).
    fn touch(&mut self, eui: Eui, seq: u64, cap: usize, new: impl FnOnce() -> V) -> &mut V {
        if let Some((old, _)) = self.items.get(&eui) {
            self.order.remove(old);
        } else {
            while self.items.len() >= cap {
                let Some((_, gone)) = self.order.pop_first() else {
                    break;
                };
                self.items.remove(&gone);
            }
        }
        self.order.insert(seq, eui);
        let slot = self.items.entry(eui).or_insert_with(|| (seq, new()));
        slot.0 = seq;
        &mut slot.1
    }

    /// Newest first.
    fn newest(&self) -> impl Iterator<Item = &V> {
        self.order
            .values()
            .rev()
            .filter_map(|e| self.items.get(e).map(|(_, v)| v))
    }
}

impl RefusalLog {
    pub fn new(limits: &ConsoleConfig) -> RefusalLog {
        RefusalLog {
            limits: limits.clone(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a refusal of a request that claimed `router`. Unknown ids (and open
    /// registration's refusals, which are about unknown ids too) go to the
    /// unknown list; the rest to the gateway's own refusals.
    pub fn note(&self, router: Option<Eui>, reason: Reason, peer: SocketAddr, detail: &str) {
        let Some(eui) = router else { return };
        let at = crate::app::now();
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        let l = &self.limits;
        if matches!(reason, Reason::UnknownGateway | Reason::RegistrationRefused) {
            let u = inner
                .unknown
                .touch(eui, seq, l.unknown_routers, || UnknownRouter {
                    eui,
                    first_seen: at.clone(),
                    last_seen: at.clone(),
                    last_peer: String::new(),
                    reason: reason.as_str(),
                    count: 0,
                });
            u.last_seen = at;
            u.last_peer = peer.to_string();
            u.reason = reason.as_str();
            u.count += 1;
            return;
        }
        let list = inner
            .gateways
            .touch(eui, seq, l.refusal_gateways, VecDeque::new);
        if list.len() >= l.refusals_per_gateway {
            list.pop_back();
        }
        list.push_front(Refused {
            at,
            peer: peer.to_string(),
            reason: reason.as_str(),
            detail: detail.chars().take(DETAIL_CHARS).collect(),
        });
    }

    /// The gateway's remembered refusals, newest first.
    pub fn of(&self, eui: Eui) -> Vec<Refused> {
        self.lock()
            .gateways
            .items
            .get(&eui)
            .map(|(_, l)| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Unknown routers seen, most recent first.
    pub fn unknown(&self) -> Vec<UnknownRouter> {
        self.lock().unknown.newest().cloned().collect()
    }

    /// How many unknown routers are remembered.
    pub fn unknown_count(&self) -> usize {
        self.lock().unknown.items.len()
    }

    /// Gateways with remembered refusals, most recently refused first, with
    /// their count (for the console's "needs attention").
    pub fn refused_gateways(&self, limit: usize) -> Vec<(Eui, usize)> {
        let inner = self.lock();
        inner
            .gateways
            .order
            .values()
            .rev()
            .take(limit)
            .filter_map(|e| inner.gateways.items.get(e).map(|(_, l)| (*e, l.len())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(per: usize, gws: usize, unknown: usize) -> RefusalLog {
        RefusalLog::new(&ConsoleConfig {
            refusals_per_gateway: per,
            refusal_gateways: gws,
            unknown_routers: unknown,
            ..ConsoleConfig::default()
        })
    }

    fn peer() -> SocketAddr {
        "192.0.2.1:4000".parse().unwrap()
    }

    #[test]
    fn each_gateway_keeps_its_newest_refusals() {
        let l = log(3, 10, 10);
        for i in 0..5 {
            l.note(
                Some(Eui(1)),
                Reason::NotAuthenticated,
                peer(),
                &format!("try {i}"),
            );
        }
        let r = l.of(Eui(1));
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].detail, "try 4");
        assert_eq!(r[2].detail, "try 2");
        assert_eq!(r[0].reason, "not_authenticated");
        assert!(l.of(Eui(2)).is_empty());
        // No router id (an unreadable body): nothing to file it under.
        l.note(None, Reason::BadRequest, peer(), "x");
        assert_eq!(l.refused_gateways(10).len(), 1);
    }

    #[test]
    fn the_least_recently_refused_gateway_is_forgotten_first() {
        let l = log(2, 3, 10);
        for e in 1..=3 {
            l.note(Some(Eui(e)), Reason::NoCredentials, peer(), "");
        }
        l.note(Some(Eui(1)), Reason::NoCredentials, peer(), "");
        l.note(Some(Eui(4)), Reason::NoCredentials, peer(), "");
        assert!(l.of(Eui(2)).is_empty(), "2 was the least recently refused");
        assert_eq!(l.of(Eui(1)).len(), 2);
        let order: Vec<u64> = l.refused_gateways(10).iter().map(|(e, _)| e.0).collect();
        assert_eq!(order, vec![4, 1, 3]);
        // A flood of made-up ids stays within the bound.
        for e in 100..10_000 {
            l.note(Some(Eui(e)), Reason::NoCredentials, peer(), "");
        }
        assert_eq!(l.lock().gateways.items.len(), 3);
        assert_eq!(l.lock().gateways.order.len(), 3);
    }

    #[test]
    fn unknown_routers_are_counted_and_bounded() {
        let l = log(2, 3, 2);
        l.note(Some(Eui(7)), Reason::UnknownGateway, peer(), "");
        l.note(Some(Eui(7)), Reason::UnknownGateway, peer(), "");
        l.note(Some(Eui(8)), Reason::RegistrationRefused, peer(), "");
        let u = l.unknown();
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].eui, u[0].reason), (Eui(8), "registration_refused"));
        assert_eq!((u[1].eui, u[1].count), (Eui(7), 2));
        l.note(Some(Eui(9)), Reason::UnknownGateway, peer(), "");
        let euis: Vec<u64> = l.unknown().iter().map(|u| u.eui.0).collect();
        assert_eq!(euis, vec![9, 8]);
        assert!(l.of(Eui(7)).is_empty(), "unknown ids are not gateways");
    }
}
