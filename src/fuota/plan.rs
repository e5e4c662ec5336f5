//! The plan of a FUOTA session before it starts (fuota.md §10): fragment counts,
//! bytes and time on air per frame, total air time, the shortest wall time the
//! gateway's duty cycle allows on the chosen frequency, the class C session
//! `TimeOut` exponent that covers it, and the refusals an operator must see
//! (fragments too big for the data rate, more than 16,383 fragments). Pure.

use std::time::Duration;

use super::codec::{redundancy_for_percent, CodecError, FragPlan};
use crate::lns::regions;
use crate::lorawan::airtime::{time_on_air_us, Modulation};

/// MHDR 1 + FHDR 7 (no FOpts) + FPort 1 + MIC 4, plus the DataFragment CID and
/// Index&N (3 bytes) around each fragment.
pub const FRAME_OVERHEAD: usize = 13 + 3;

/// Gap station keeps between frames (`TX_MIN_GAP`).
const TX_MIN_GAP: Duration = Duration::from_millis(10);
/// Frames are placed on a gateway's clock through the server's time anchor, which
/// is re-estimated every couple of ping intervals (half a round trip each time).
/// Station drops a frame that starts even a microsecond inside its duty-cycle
/// block, so frames keep this much more than the bare limit apart.
pub const ANCHOR_MARGIN: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("DR {dr} is not defined in {region}")]
    BadDr { region: String, dr: u8 },
    #[error("FragmentSizeBytes {frag_size} does not fit {region} DR{dr}: at most {max} bytes (the DR's payload limit {limit} − 3); lower it or use a faster DR")]
    FragTooBig {
        region: String,
        dr: u8,
        frag_size: usize,
        max: usize,
        limit: usize,
    },
    #[error("the payload limit of {region} DR{dr} is not known here; use EU868 or US915, or a DR listed in fuota.md §10.2")]
    UnknownLimit { region: String, dr: u8 },
    #[error("RedundancyPercent {0} is out of range 0..=100")]
    Redundancy(u32),
}

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub image_len: usize,
    pub frag_size: usize,
    pub redundancy_percent: u32,
    pub region: String,
    pub dr: u8,
    pub freq: u32,
    /// `FragmentIntervalMS`: never send faster than this.
    pub interval: Duration,
}

/// The plan, as `GET /fuota-tasks/{Id}` will show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub frags: FragPlan,
    pub phy_payload_len: usize,
    pub time_on_air: Duration,
    pub total_air_time: Duration,
    /// Start-to-start spacing: air time / duty cycle, the interval, or station's
    /// gap after the frame, whichever is longest, plus `ANCHOR_MARGIN`.
    pub frame_spacing: Duration,
    /// From the first frame's start to the last frame's end, on one gateway.
    pub min_wall_time: Duration,
    /// The duty cycle station enforces on `freq` (1.0 = none).
    pub duty_cycle_permille: u32,
    /// Smallest t with 2^t seconds ≥ the wall time (class C session TimeOut, 0..=15).
    pub class_c_timeout: Option<u8>,
}

/// Largest FRMPayload (N) per region DR without FOpts (fuota.md §10.2).
pub fn payload_limit(region: &str, dr: u8) -> Option<usize> {
    match (region, dr) {
        ("EU868", 0..=2) => Some(51),
        ("EU868", 3) => Some(115),
        ("EU868", 4..=7) => Some(242),
        ("US915", 8) => Some(53),
        ("US915", 9) => Some(129),
        ("US915", 10..=13) => Some(242),
        _ => None,
    }
}

/// Regions whose payload limits `payload_limit` knows, so a FUOTA plan can exist.
pub const PLAN_REGIONS: &[&str] = &["EU868", "US915"];

/// The downlink duty cycle Basics Station 2.0.6 enforces, in ‰ (lns-protocol.md
/// §5.7): EU868 by band, KR920 2 %, AS923-1 10 %, none in US915/AU915.
pub fn station_duty_cycle_permille(region: &str, freq: u32) -> u32 {
    station_band(region, freq).1
}

/// The budget station keeps `freq` in, per gateway: (which budget, its duty cycle
/// in ‰). EU868 shares one budget per band ("deci", "centi", "milli"); KR920 and
/// AS923-1 keep one per channel; elsewhere there is none (1000 ‰).
pub fn station_band(region: &str, freq: u32) -> (u64, u32) {
    match region {
        "EU868" => match freq {
            869_400_000..=869_650_000 => (1, 100),
            868_000_000..=868_600_000 | 869_700_000..=870_000_000 => (2, 10),
            _ => (3, 1),
        },
        "KR920" => (u64::from(freq), 20),
        "AS923-1" => (u64::from(freq), 100),
        _ => (u64::from(freq), 1000),
    }
}

/// How long station keeps a band blocked after a frame of `toa_us` starts: ToA / d,
/// start to start. Its integer air time can be 0.01 % longer than ours, hence
/// the extra microsecond per millisecond.
pub fn station_block_us(toa_us: u64, permille: u32) -> u64 {
    toa_us * 1000 / u64::from(permille) + toa_us / 1000
}

pub fn plan(r: &Request) -> Result<Plan, PlanError> {
    if r.redundancy_percent > 100 {
        return Err(PlanError::Redundancy(r.redundancy_percent));
    }
    let (sf, bw_khz) = regions::dr(&r.region, r.dr).ok_or_else(|| PlanError::BadDr {
        region: r.region.clone(),
        dr: r.dr,
    })?;
    let limit = payload_limit(&r.region, r.dr).ok_or_else(|| PlanError::UnknownLimit {
        region: r.region.clone(),
        dr: r.dr,
    })?;
    if r.frag_size + 3 > limit {
        return Err(PlanError::FragTooBig {
            region: r.region.clone(),
            dr: r.dr,
            frag_size: r.frag_size,
            max: limit - 3,
            limit,
        });
    }
    let m = super::codec::nb_frag(r.image_len, r.frag_size.max(1));
    let frags = FragPlan::new(
        r.image_len,
        r.frag_size,
        redundancy_for_percent(m, r.redundancy_percent),
    )?;
    let modulation = if sf == 0 {
        Modulation::Fsk
    } else {
        Modulation::Lora {
            sf,
            bw_hz: bw_khz * 1000,
        }
    };
    let phy_payload_len = FRAME_OVERHEAD + r.frag_size;
    let toa_us = time_on_air_us(modulation, phy_payload_len, false);
    let permille = station_duty_cycle_permille(&r.region, r.freq);
    let spacing = (Duration::from_micros(station_block_us(toa_us, permille)) + ANCHOR_MARGIN)
        .max(r.interval)
        .max(Duration::from_micros(toa_us) + TX_MIN_GAP + ANCHOR_MARGIN);
    let total = u32::from(frags.total());
    let wall = spacing * (total - 1) + Duration::from_micros(toa_us);
    let class_c_timeout = (0u8..=15).find(|t| Duration::from_secs(1 << t) >= wall);
    Ok(Plan {
        frags,
        phy_payload_len,
        time_on_air: Duration::from_micros(toa_us),
        total_air_time: Duration::from_micros(toa_us * u64::from(total)),
        frame_spacing: spacing,
        min_wall_time: wall,
        duty_cycle_permille: permille,
        class_c_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eu868_dr5(image_len: usize, frag_size: usize) -> Request {
        Request {
            image_len,
            frag_size,
            redundancy_percent: 10,
            region: "EU868".into(),
            dr: 5,
            freq: 869_525_000,
            interval: Duration::ZERO,
        }
    }

    #[test]
    fn the_spec_1mib_example_within_two_percent_of_the_hand_bound() {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/vectors/fuota/airtime.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let w = &v["worked_example_1MiB"];
        let p = plan(&eu868_dr5(1_048_576, 239)).unwrap();
        assert_eq!(u64::from(p.frags.nb_frag), w["nb_frag_M"].as_u64().unwrap());
        assert_eq!(u64::from(p.frags.padding), w["padding"].as_u64().unwrap());
        assert_eq!(
            u64::from(p.frags.redundancy),
            w["redundancy_R"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(p.frags.total()),
            w["total_frames"].as_u64().unwrap()
        );
        assert_eq!(
            p.phy_payload_len as u64,
            w["phy_payload_len"].as_u64().unwrap()
        );
        assert_eq!(p.time_on_air, Duration::from_micros(394_496));
        let hand = w["min_wall_time_s"].as_f64().unwrap();
        let ours = p.min_wall_time.as_secs_f64();
        assert!(
            (ours - hand).abs() / hand < 0.02,
            "{ours} s vs {hand} s by hand"
        );
        assert!(ours >= hand, "never faster than the duty cycle allows");
        assert_eq!(p.duty_cycle_permille, 100);
        assert_eq!(p.class_c_timeout, Some(15));
        assert!(
            (p.total_air_time.as_secs_f64() - w["total_airtime_s"].as_f64().unwrap()).abs() < 0.1
        );
    }

    #[test]
    fn refusals_say_what_to_change() {
        let e = plan(&eu868_dr5(1000, 240)).unwrap_err().to_string();
        assert!(e.contains("at most 239"), "{e}");
        let mut r = eu868_dr5(1_048_576, 48);
        r.dr = 0;
        r.freq = 869_525_000;
        // 21846 + 10 % fragments exceed the 14-bit N.
        assert!(matches!(
            plan(&r),
            Err(PlanError::Codec(CodecError::TooManyFragments(_)))
        ));
        let mut r = eu868_dr5(1000, 100);
        r.redundancy_percent = 101;
        assert_eq!(plan(&r), Err(PlanError::Redundancy(101)));
        let mut r = eu868_dr5(1000, 100);
        r.dr = 9;
        assert!(matches!(plan(&r), Err(PlanError::BadDr { .. })));
        let mut r = eu868_dr5(1000, 0);
        r.frag_size = 0;
        assert!(plan(&r).is_err());
    }

    #[test]
    fn the_interval_and_band_set_the_pace() {
        let mut r = eu868_dr5(10_000, 200);
        r.interval = Duration::from_secs(10);
        assert_eq!(plan(&r).unwrap().frame_spacing, Duration::from_secs(10));
        let mut r = eu868_dr5(10_000, 200);
        r.freq = 868_100_000;
        let p = plan(&r).unwrap();
        assert_eq!(p.duty_cycle_permille, 10);
        assert!(p.frame_spacing >= p.time_on_air * 100);
        let us = Request {
            image_len: 10_000,
            frag_size: 200,
            redundancy_percent: 20,
            region: "US915".into(),
            dr: 13,
            freq: 923_300_000,
            interval: Duration::ZERO,
        };
        let p = plan(&us).unwrap();
        assert_eq!(p.duty_cycle_permille, 1000);
        assert_eq!(p.frame_spacing, p.time_on_air + TX_MIN_GAP + ANCHOR_MARGIN);
    }
}
