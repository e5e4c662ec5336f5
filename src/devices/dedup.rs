//! Deduplication (end-devices.md §3.6): copies of one uplink, identical as rebuilt
//! PHYPayload bytes, are collected for a window opened by the first copy and then
//! handled once with every gateway's metadata. The window is the same for every
//! frame, so frames fall due in arrival order. Bounded: when `max_open` frames are
//! collecting, a new frame is refused and counted. Pure: the caller passes time in.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::lns::UplinkEvent;

/// One uplink with all its copies.
#[derive(Debug, Clone)]
pub struct Collected {
    pub phy: Vec<u8>,
    pub copies: Vec<UplinkEvent>,
    /// When the first copy arrived (Unix µs): the clock for the RX windows.
    pub first_arrival_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Opened,
    Joined,
    /// The same gateway delivered the same frame again (e.g. after a reconnect).
    Repeated,
    /// Too many frames collecting at once.
    Refused,
}

pub struct Dedup {
    window: Duration,
    max_open: usize,
    open: HashMap<Vec<u8>, Collected>,
    due: VecDeque<(Instant, Vec<u8>)>,
}

impl Dedup {
    pub fn new(window: Duration, max_open: usize) -> Dedup {
        Dedup {
            window,
            max_open,
            open: HashMap::new(),
            due: VecDeque::new(),
        }
    }

    pub fn add(
        &mut self,
        phy: Vec<u8>,
        copy: UplinkEvent,
        now: Instant,
        now_unix_us: i64,
    ) -> Added {
        if let Some(c) = self.open.get_mut(&phy) {
            if c.copies.iter().any(|x| x.gateway == copy.gateway) {
                return Added::Repeated;
            }
            c.copies.push(copy);
            return Added::Joined;
        }
        if self.open.len() >= self.max_open {
            return Added::Refused;
        }
        self.due.push_back((now + self.window, phy.clone()));
        self.open.insert(
            phy.clone(),
            Collected {
                phy,
                copies: vec![copy],
                first_arrival_us: now_unix_us,
            },
        );
        Added::Opened
    }

    /// When the oldest open frame falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.front().map(|(t, _)| *t)
    }

    /// Every frame whose window has closed by `now`, oldest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<Collected> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.due.front() {
            if *t > now {
                break;
            }
            let (_, phy) = self.due.pop_front().expect("front exists");
            out.extend(self.open.remove(&phy));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eui::Eui;
    use crate::lns::msg::{Frame, RadioMeta, UpInfo, Uplink};

    fn copy(gw: u64) -> UplinkEvent {
        UplinkEvent {
            gateway: Eui(gw),
            received_at: String::new(),
            uplink: Uplink {
                frame: Frame::Proprietary {
                    phy_payload: vec![],
                },
                radio: RadioMeta {
                    ref_time: 0.0,
                    dr: 0,
                    freq: 0,
                    up: UpInfo {
                        rctx: 0,
                        xtime: 0,
                        gpstime: 0,
                        fts: 0,
                        rssi: 0.0,
                        snr: 0.0,
                        rxtime: 0.0,
                    },
                },
            },
        }
    }

    #[test]
    fn copies_join_until_the_window_closes() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_millis(200), 2);
        assert_eq!(d.add(vec![1], copy(1), t0, 0), Added::Opened);
        assert_eq!(d.add(vec![1], copy(2), t0, 0), Added::Joined);
        assert_eq!(d.add(vec![1], copy(2), t0, 0), Added::Repeated);
        assert_eq!(d.add(vec![2], copy(1), t0, 0), Added::Opened);
        assert_eq!(d.add(vec![3], copy(1), t0, 0), Added::Refused);
        assert!(d.take_due(t0 + Duration::from_millis(199)).is_empty());
        let due = d.take_due(t0 + Duration::from_millis(200));
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].copies.len(), 2);
        assert_eq!(d.next_due(), None);
        // A late copy after the window starts a new frame (its own dedup).
        assert_eq!(d.add(vec![1], copy(3), t0, 0), Added::Opened);
    }
}
