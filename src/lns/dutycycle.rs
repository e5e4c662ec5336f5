//! The per-gateway duty-cycle ledger every downlink spends from — FUOTA frames,
//! class A answers and class C payloads alike — so that what the server plans
//! matches what station will send (station drops a frame whose band is still
//! blocked, silently). Each gateway and station band (`fuota::plan::station_band`)
//! keeps the intervals already promised: a frame may start only where its own
//! block does not overlap another. Intervals that ended are forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::eui::Eui;

/// Intervals kept per band at most; older ones are dropped first (a FUOTA task
/// holds a handful per round, class A one per answer).
const MAX_INTERVALS: usize = 64;

/// Reserved `[start, until)` intervals (Unix µs) per gateway and station band.
type Bands = HashMap<(Eui, u64), Vec<(i64, i64)>>;

#[derive(Default)]
pub struct Ledger {
    bands: Mutex<Bands>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bands> {
        self.bands.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `[start, until)` (Unix µs) on the band unless it overlaps a
    /// reservation; `now` lets finished intervals go.
    pub fn try_reserve(&self, eui: Eui, band: u64, start: i64, until: i64, now: i64) -> bool {
        let mut bands = self.lock();
        let v = bands.entry((eui, band)).or_default();
        v.retain(|&(_, u)| u > now);
        if v.iter().any(|&(s, u)| start < u && s < until) {
            return false;
        }
        drop(bands);
        self.plan().reserve(eui, band, start, until);
        true
    }

    /// Holds the ledger for a plan over several gateways (a FUOTA round): read,
    /// plan and reserve under one lock, so two planners never take the same time.
    pub fn plan(&self) -> Plan<'_> {
        Plan(self.lock())
    }
}

pub struct Plan<'a>(std::sync::MutexGuard<'a, Bands>);

impl Plan<'_> {
    /// When the band's last reservation ends, if it has any.
    pub fn busy_until(&self, eui: Eui, band: u64) -> Option<i64> {
        self.0
            .get(&(eui, band))
            .and_then(|v| v.iter().map(|&(_, u)| u).max())
    }

    pub fn reserve(&mut self, eui: Eui, band: u64, start: i64, until: i64) {
        let v = self.0.entry((eui, band)).or_default();
        if v.len() >= MAX_INTERVALS {
            v.remove(0);
        }
        v.push((start, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_frames_fit_before_a_later_reservation() {
        let l = Ledger::default();
        let g = Eui(1);
        assert!(l.try_reserve(g, 1, 5_000, 5_100, 0));
        assert!(
            l.try_reserve(g, 1, 1_000, 1_100, 0),
            "ends before the later one starts"
        );
        assert!(!l.try_reserve(g, 1, 5_050, 5_060, 0), "overlaps");
        assert!(l.try_reserve(g, 2, 5_050, 5_060, 0), "another band");
        assert!(
            l.try_reserve(g, 1, 5_050, 5_060, 6_000),
            "the old one has ended"
        );
    }
}
