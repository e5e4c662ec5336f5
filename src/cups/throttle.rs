//! The rate limits of open registration (`[gateways] unknown = "register"`):
//! a token bucket per source address and one for all sources together, each
//! refilled at its `[gateways] register_*per_min` and holding at most a minute's
//! worth. IPv6 sources count per /64, the block one host usually gets, so an
//! attacker cannot multiply its budget by rotating addresses. A source enters
//! the map only when a registration is admitted, so the map never holds more
//! sources than the global limit admitted in the last minute or so: buckets that
//! have refilled are dropped once the map grows past twice the global rate.
//! The cap on registered-but-never-confirmed gateways is in the store
//! (`Store::register_gateway`), where it holds across processes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::GatewaysConfig;

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// This source registered `register_per_source_per_min` gateways lately.
    Source,
    /// All sources together registered `register_per_min` gateways lately.
    Global,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(per_min: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(per_min),
            last: now,
        }
    }

    /// Adds what `per_min` refilled since the last look; a minute's worth at most.
    fn refill(&mut self, per_min: u32, now: Instant) {
        let per_sec = f64::from(per_min) / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(per_min));
        self.last = now;
    }
}

pub struct RegistrationThrottle {
    per_source_per_min: u32,
    per_min: u32,
    state: Mutex<State>,
}

struct State {
    global: Bucket,
    sources: HashMap<IpAddr, Bucket>,
}

/// The key a source is counted under: the address, or its /64 for IPv6.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl RegistrationThrottle {
    pub fn new(cfg: &GatewaysConfig) -> RegistrationThrottle {
        RegistrationThrottle {
            per_source_per_min: cfg.register_per_source_per_min,
            per_min: cfg.register_per_min,
            state: Mutex::new(State {
                global: Bucket::full(cfg.register_per_min, Instant::now()),
                sources: HashMap::new(),
            }),
        }
    }

    /// Takes one registration from `ip`'s budget and the global one, or says
    /// which is spent (then neither is charged).
    pub fn admit(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        let key = source_key(ip);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = st.sources.get_mut(&key) {
            b.refill(self.per_source_per_min, now);
            if b.tokens < 1.0 {
                return Err(Throttled::Source);
            }
        }
        st.global.refill(self.per_min, now);
        if st.global.tokens < 1.0 {
            return Err(Throttled::Global);
        }
        st.global.tokens -= 1.0;
        let per_source = self.per_source_per_min;
        st.sources
            .entry(key)
            .or_insert_with(|| Bucket::full(per_source, now))
            .tokens -= 1.0;
        if st.sources.len() > 2 * self.per_min as usize {
            st.sources.retain(|_, b| {
                b.refill(per_source, now);
                b.tokens < f64::from(per_source)
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn throttle(per_source: u32, global: u32) -> RegistrationThrottle {
        RegistrationThrottle::new(&GatewaysConfig {
            register_per_source_per_min: per_source,
            register_per_min: global,
            ..GatewaysConfig::default()
        })
    }

    #[test]
    fn a_source_gets_its_minute_then_waits_for_the_refill() {
        let t = throttle(3, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.admit_at(a, now), Ok(()));
        }
        assert_eq!(t.admit_at(a, now), Err(Throttled::Source));
        // Another source is not affected.
        assert_eq!(t.admit_at("192.0.2.2".parse().unwrap(), now), Ok(()));
        // 3 per minute: one more after 20 s.
        let later = now + Duration::from_secs(20);
        assert_eq!(t.admit_at(a, later), Ok(()));
        assert_eq!(t.admit_at(a, later), Err(Throttled::Source));
    }

    #[test]
    fn the_global_budget_binds_many_sources_and_a_refusal_costs_nothing() {
        let t = throttle(10, 5);
        let now = Instant::now();
        for i in 0..5u8 {
            assert_eq!(t.admit_at(IpAddr::from([10, 0, 0, i]), now), Ok(()));
        }
        assert_eq!(
            t.admit_at("10.0.0.9".parse().unwrap(), now),
            Err(Throttled::Global)
        );
        // The refused source was not charged: it has its full minute later.
        let later = now + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(t.admit_at("10.0.0.9".parse().unwrap(), later), Ok(()));
        }
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let t = throttle(2, 100);
        let now = Instant::now();
        assert_eq!(t.admit_at("2001:db8::1".parse().unwrap(), now), Ok(()));
        assert_eq!(t.admit_at("2001:db8::2".parse().unwrap(), now), Ok(()));
        assert_eq!(
            t.admit_at("2001:db8::ffff:3".parse().unwrap(), now),
            Err(Throttled::Source)
        );
        assert_eq!(t.admit_at("2001:db8:0:1::1".parse().unwrap(), now), Ok(()));
    }

    #[test]
    fn the_source_map_stays_bounded_by_the_global_rate() {
        let t = throttle(1, 10);
        let mut now = Instant::now();
        for i in 0..10_000u32 {
            now += Duration::from_secs(6); // the global rate: 10 per minute
            let _ = t.admit_at(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(t.state.lock().unwrap().sources.len() <= 21);
    }
}
