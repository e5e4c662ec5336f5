//! Which gateway sends which fragment when: one round at a time. In a round every
//! gateway that can send gets its next fragment. Gateways with GPS time that are at
//! the same fragment share one slot (the identical frame at one common time, so a
//! device hearing two of them sees one frame); every other gateway gets a slot of
//! its own after them (staggered, so no two of the group overlap on air). Class B
//! slots are the group's ping slots. Each gateway keeps its own start-to-start
//! spacing (duty cycle, `FragmentIntervalMS`): one that would start too early sits
//! the round out. Pure: times are Unix (class C) or GPS (class B) microseconds.

use super::classb;

/// Between two staggered slots, after the first frame's end: covers the time
/// anchor's error and station's 10 ms gap.
pub const GUARD_US: i64 = 50_000;

/// How slots are placed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    ClassC,
    ClassB { mc_addr: u32, periodicity: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Per gateway, start to start: duty cycle and `FragmentIntervalMS`.
    pub spacing_us: i64,
    /// Time on air of one frame.
    pub airtime_us: i64,
    pub clock: Clock,
    /// Fragments in the session (N = 1..=total).
    pub total: u16,
}

/// What the scheduler knows of one gateway at the start of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// The next fragment this gateway sends (1-based; past `total` = done).
    pub next_n: u16,
    pub connected: bool,
    /// Station knows GPS time (PPS) and the server has a time anchor for it.
    pub gps: bool,
    /// The server can place frames on this gateway's clock (getxtime answered).
    pub anchored: bool,
    /// Its previous frame's start plus its spacing.
    pub not_before_us: i64,
}

/// How a send is timed on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Class C at this exact time (placed through the time anchor).
    Exact,
    /// Class C "as soon as possible", handed over just before `at_us`.
    Asap,
    /// Class B at a ping slot.
    PingSlot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send {
    /// Index into the gateways given to `round`.
    pub gateway: usize,
    pub n: u16,
    pub at_us: i64,
    pub how: How,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub sends: Vec<Send>,
    /// When the next round may start.
    pub next_at_us: i64,
}

impl Gateway {
    fn wants(&self, pace: &Pace) -> bool {
        let timed = match pace.clock {
            Clock::ClassC => true,
            // Station needs GPS time for class B: its own PPS, or our pushed timesync.
            Clock::ClassB { .. } => self.gps || self.anchored,
        };
        self.connected && self.next_n >= 1 && self.next_n <= pace.total && timed
    }
}

/// Plans the round starting at `t0_us`.
pub fn round(pace: &Pace, t0_us: i64, gws: &[Gateway]) -> Round {
    // Slot owners: one per distinct fragment among GPS gateways, then one per
    // other gateway, in the order given (stable from round to round).
    let mut slots: Vec<(Vec<usize>, u16, bool)> = Vec::new();
    let mut gps: Vec<usize> = (0..gws.len())
        .filter(|&i| gws[i].wants(pace) && gws[i].gps)
        .collect();
    gps.sort_by_key(|&i| gws[i].next_n);
    for i in gps {
        match slots.last_mut() {
            Some((members, n, true)) if *n == gws[i].next_n => members.push(i),
            _ => slots.push((vec![i], gws[i].next_n, true)),
        }
    }
    for (i, g) in gws.iter().enumerate() {
        if g.wants(pace) && !g.gps {
            slots.push((vec![i], g.next_n, false));
        }
    }
    let mut sends = Vec::new();
    let mut cursor = t0_us;
    let mut last_end = t0_us;
    for (members, n, shared) in slots {
        let at = match pace.clock {
            Clock::ClassC => cursor,
            Clock::ClassB {
                mc_addr,
                periodicity,
            } => classb::next_ping_slot(cursor, mc_addr, periodicity),
        };
        let mut used = false;
        for i in members {
            let g = &gws[i];
            if g.not_before_us > at {
                continue;
            }
            let how = match pace.clock {
                Clock::ClassB { .. } => How::PingSlot,
                Clock::ClassC if shared || g.anchored => How::Exact,
                Clock::ClassC => How::Asap,
            };
            sends.push(Send {
                gateway: i,
                n,
                at_us: at,
                how,
            });
            used = true;
        }
        if used {
            last_end = at + pace.airtime_us;
            cursor = last_end + GUARD_US;
        }
    }
    Round {
        sends,
        next_at_us: (t0_us + pace.spacing_us).max(last_end + GUARD_US),
    }
}

/// Expected round length with `slots` slots: the spacing, or the slots one after
/// the other if they take longer (class B: a ping period or a frame, per slot).
pub fn round_len_us(pace: &Pace, slots: usize) -> i64 {
    let slot = match pace.clock {
        Clock::ClassC => pace.airtime_us + GUARD_US,
        Clock::ClassB { periodicity, .. } => (pace.airtime_us + GUARD_US)
            .max(i64::from(classb::ping_period(periodicity)) * classb::SLOT_LEN_US),
    };
    pace.spacing_us.max(slots.max(1) as i64 * slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000;

    fn pace() -> Pace {
        Pace {
            spacing_us: 1_000_000,
            airtime_us: 100_000,
            clock: Clock::ClassC,
            total: 5,
        }
    }

    fn gw(next_n: u16, gps: bool) -> Gateway {
        Gateway {
            next_n,
            connected: true,
            gps,
            anchored: true,
            not_before_us: 0,
        }
    }

    /// Runs rounds until nobody sends, applying each send like the runner does.
    fn simulate(p: &Pace, mut gws: Vec<Gateway>) -> Vec<(usize, u16, i64)> {
        let mut t = T0;
        let mut log = Vec::new();
        for _ in 0..1000 {
            if gws.iter().all(|g| !g.wants(p)) {
                break;
            }
            let r = round(p, t, &gws);
            for s in &r.sends {
                log.push((s.gateway, s.n, s.at_us));
                gws[s.gateway].next_n += 1;
                gws[s.gateway].not_before_us = s.at_us + p.spacing_us;
            }
            t = r.next_at_us;
        }
        log
    }

    #[test]
    fn gps_gateways_in_step_share_one_slot() {
        let r = round(&pace(), T0, &[gw(1, true), gw(1, true), gw(1, true)]);
        assert_eq!(r.sends.len(), 3);
        assert!(r
            .sends
            .iter()
            .all(|s| s.at_us == T0 && s.n == 1 && s.how == How::Exact));
        assert_eq!(r.next_at_us, T0 + 1_000_000);
    }

    #[test]
    fn gateways_without_gps_are_staggered_without_overlap() {
        let mut a = gw(1, false);
        a.anchored = false;
        let r = round(&pace(), T0, &[gw(1, true), a, gw(1, false)]);
        let at: Vec<i64> = r.sends.iter().map(|s| s.at_us).collect();
        assert_eq!(at, vec![T0, T0 + 150_000, T0 + 300_000]);
        assert_eq!(r.sends[1].how, How::Asap);
        assert_eq!(r.sends[2].how, How::Exact);
        for w in at.windows(2) {
            assert!(w[1] - w[0] >= pace().airtime_us + GUARD_US);
        }
    }

    #[test]
    fn many_staggered_slots_stretch_the_round() {
        let gws: Vec<Gateway> = (0..20).map(|_| gw(1, false)).collect();
        let r = round(&pace(), T0, &gws);
        assert_eq!(r.sends.len(), 20);
        assert_eq!(r.next_at_us, T0 + 20 * 150_000);
    }

    #[test]
    fn a_late_gateway_gets_its_own_slot_and_catches_nothing_up_early() {
        let r = round(&pace(), T0, &[gw(4, true), gw(4, true), gw(2, true)]);
        let mut sends = r.sends.clone();
        sends.sort_by_key(|s| s.gateway);
        assert_eq!((sends[2].n, sends[2].at_us), (2, T0));
        assert_eq!((sends[0].n, sends[0].at_us), (4, T0 + 150_000));
        assert_eq!(sends[0].at_us, sends[1].at_us);
    }

    #[test]
    fn every_gateway_keeps_its_spacing_and_sends_every_fragment_in_order() {
        let mut gone = gw(1, false);
        gone.connected = false;
        let gws = vec![gw(1, true), gw(3, true), gw(1, false), gone, gw(5, false)];
        let log = simulate(&pace(), gws);
        for g in [0usize, 1, 2, 4] {
            let mine: Vec<&(usize, u16, i64)> = log.iter().filter(|e| e.0 == g).collect();
            let ns: Vec<u16> = mine.iter().map(|e| e.1).collect();
            let first = [1, 3, 1, 0, 5][g];
            assert_eq!(ns, (first..=5).collect::<Vec<u16>>(), "gateway {g}");
            for w in mine.windows(2) {
                assert!(w[1].2 - w[0].2 >= pace().spacing_us, "gateway {g}");
            }
        }
        assert!(
            log.iter().all(|e| e.0 != 3),
            "a disconnected gateway sends nothing"
        );
        // No two different frames overlap on air.
        let mut by_time = log.clone();
        by_time.sort_by_key(|e| e.2);
        for w in by_time.windows(2) {
            assert!(
                w[0].2 == w[1].2 && w[0].1 == w[1].1 || w[1].2 - w[0].2 >= pace().airtime_us,
                "{w:?}"
            );
        }
    }

    #[test]
    fn a_gateway_too_early_for_its_duty_cycle_sits_out() {
        let mut g = gw(2, true);
        g.not_before_us = T0 + 10;
        let r = round(&pace(), T0, &[g, gw(2, true)]);
        assert_eq!(r.sends.len(), 1);
        assert_eq!(r.sends[0].gateway, 1);
    }

    #[test]
    fn class_b_sends_at_ping_slots() {
        let p = Pace {
            clock: Clock::ClassB {
                mc_addr: 0x0102_0304,
                periodicity: 3,
            },
            ..pace()
        };
        let mut no_time = gw(1, false);
        no_time.anchored = false;
        let r = round(&p, T0, &[gw(1, true), gw(1, false), no_time]);
        assert_eq!(r.sends.len(), 2, "class B needs GPS time on the gateway");
        for s in &r.sends {
            assert_eq!(s.how, How::PingSlot);
            assert_eq!(classb::next_ping_slot(s.at_us, 0x0102_0304, 3), s.at_us);
        }
        assert!(r.sends[1].at_us >= r.sends[0].at_us + p.airtime_us + GUARD_US);
    }

    #[test]
    fn round_length_estimates() {
        assert_eq!(round_len_us(&pace(), 1), 1_000_000);
        assert_eq!(round_len_us(&pace(), 20), 3_000_000);
        let p = Pace {
            clock: Clock::ClassB {
                mc_addr: 1,
                periodicity: 7,
            },
            ..pace()
        };
        assert_eq!(round_len_us(&p, 2), 2 * 4096 * 30_000);
    }

    #[test]
    fn done_gateways_send_nothing() {
        let r = round(&pace(), T0, &[gw(6, true)]);
        assert!(r.sends.is_empty());
    }
}
