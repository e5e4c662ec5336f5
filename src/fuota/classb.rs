//! Class B ping slots of a multicast group (LoRaWAN 1.0.x, class B chapter): beacons
//! every 128 s of GPS time; after each beacon's 2.12 s reserved time the group's
//! devices open a 30 ms slot every `pingPeriod` slots, starting at an offset drawn
//! per beacon period from AES-128 with the all-zero key over
//! `beaconTime (4, LE) | McAddr (4, LE) | pad16`. Pure: GPS microseconds in and out.

use aes::cipher::{BlockEncrypt, KeyInit};

pub const BEACON_PERIOD_US: i64 = 128_000_000;
pub const BEACON_RESERVED_US: i64 = 2_120_000;
pub const SLOT_LEN_US: i64 = 30_000;
/// 2^12 slot units of 30 ms follow the reserved time in each beacon period.
const SLOTS_PER_BEACON: u32 = 4096;

/// Ping period in 30 ms slot units for TS005 `Periodicity` 0..=7: 2^(5 + p), which
/// is also what AWS calls `PingSlotPeriod` (32..=4096).
pub fn ping_period(periodicity: u8) -> u32 {
    1 << (5 + u32::from(periodicity.min(7)))
}

/// `Periodicity` for an AWS `PingSlotPeriod`, if it is one of 32, 64, …, 4096.
pub fn periodicity_for(ping_slot_period: u32) -> Option<u8> {
    (0u8..=7).find(|p| ping_period(*p) == ping_slot_period)
}

/// The group's ping offset (0..period) in the beacon period that starts at GPS
/// second `beacon_time`.
pub fn ping_offset(beacon_time: u32, mc_addr: u32, period: u32) -> u32 {
    let mut block = [0u8; 16];
    block[..4].copy_from_slice(&beacon_time.to_le_bytes());
    block[4..8].copy_from_slice(&mc_addr.to_le_bytes());
    let cipher = aes::Aes128::new(&[0u8; 16].into());
    let mut b = block.into();
    cipher.encrypt_block(&mut b);
    (u32::from(b[0]) + u32::from(b[1]) * 256) % period
}

/// The first ping slot of the group starting at or after `gps_us`.
pub fn next_ping_slot(gps_us: i64, mc_addr: u32, periodicity: u8) -> i64 {
    let period = ping_period(periodicity);
    let mut beacon = gps_us.div_euclid(BEACON_PERIOD_US) * BEACON_PERIOD_US;
    loop {
        let offset = ping_offset((beacon / 1_000_000) as u32, mc_addr, period);
        let first = beacon + BEACON_RESERVED_US + i64::from(offset) * SLOT_LEN_US;
        let step = i64::from(period) * SLOT_LEN_US;
        let slots = i64::from(SLOTS_PER_BEACON / period);
        // The k-th slot of this period at or after gps_us, if there is one.
        let k = if gps_us <= first {
            0
        } else {
            (gps_us - first + step - 1) / step
        };
        if k < slots {
            return first + k * step;
        }
        beacon += BEACON_PERIOD_US;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_match_aws_ping_slot_period() {
        assert_eq!(ping_period(0), 32);
        assert_eq!(ping_period(7), 4096);
        assert_eq!(periodicity_for(128), Some(2));
        assert_eq!(periodicity_for(100), None);
        assert_eq!(periodicity_for(8192), None);
    }

    #[test]
    fn the_offset_is_aes_of_beacon_time_and_address() {
        // Rand computed independently with Python's `cryptography`, McAddr 01020304:
        // beacon time 0 → 4c86d02d…, so (0x4c + 0x86·256) mod 4096 = 1612;
        // beacon time 1400000000 (a multiple of 128) → e4a5da12…, 1508 mod 4096
        // and 100 mod 128.
        assert_eq!(ping_offset(0, 0x0102_0304, 4096), 1612);
        assert_eq!(ping_offset(1_400_000_000, 0x0102_0304, 4096), 1508);
        assert_eq!(ping_offset(1_400_000_000, 0x0102_0304, 128), 100);
        // The offset changes with the beacon period (a fresh draw each period).
        let offsets: std::collections::HashSet<u32> = (0..20)
            .map(|i| ping_offset(i * 128, 0x0102_0304, 4096))
            .collect();
        assert!(offsets.len() > 10);
    }

    #[test]
    fn slots_lie_on_the_grid_after_the_reserved_time() {
        let addr = 0x0102_0304;
        for p in 0..=7u8 {
            let period = i64::from(ping_period(p)) * SLOT_LEN_US;
            let mut t = 1_400_000_000_000_000i64;
            let mut last = None;
            for _ in 0..50 {
                let s = next_ping_slot(t, addr, p);
                assert!(s >= t);
                let beacon = s.div_euclid(BEACON_PERIOD_US) * BEACON_PERIOD_US;
                let into = s - beacon - BEACON_RESERVED_US;
                assert!((0..4096 * SLOT_LEN_US).contains(&into), "p{p}: {into}");
                let offset = ping_offset((beacon / 1_000_000) as u32, addr, ping_period(p));
                assert_eq!((into / SLOT_LEN_US) % ping_period(p) as i64, offset as i64);
                assert_eq!(into % SLOT_LEN_US, 0);
                if let Some(l) = last {
                    // Consecutive slots inside a beacon period are one period apart.
                    if s.div_euclid(BEACON_PERIOD_US) == i64::div_euclid(l, BEACON_PERIOD_US) {
                        assert_eq!(s - l, period);
                    }
                }
                last = Some(s);
                t = s + 1;
            }
        }
    }

    #[test]
    fn a_slot_exactly_at_the_asked_time_is_taken() {
        let s = next_ping_slot(1_400_000_000_000_000, 7, 3);
        assert_eq!(next_ping_slot(s, 7, 3), s);
    }
}
