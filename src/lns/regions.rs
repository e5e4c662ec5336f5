//! Region channel plans → `router_config` (lns-protocol.md §3.2–§3.5). This module
//! owns, per `RfRegion`, the uplink channel plan of a single-board SX1301 gateway
//! (`hwspec` `sx1301/1`: two radios, 8 multi-SF channels, one fast-LoRa channel,
//! one FSK channel), the 16-entry DR table, `freq_range`, the default RX2
//! parameters, and whether Basics Station 2.0.6 recognises the region name at all
//! (it drops every downlink for names it does not know). It also renders the
//! operator's `SubBands`, `JoinEuiFilters` and `NetIdFilters` the way station reads
//! them. Pure: no I/O, no clock (`MuxTime` is passed in).
//!
//! Channel plans follow LoRaWAN Regional Parameters RP002-1.0.x; where RP002 only
//! fixes the default channels, the extra channels are the usual community plans
//! (The Things Network frequency plans). `sx1301_conf` carries only `enable`,
//! `freq`, `radio` and `if` (plus the fast-LoRa and FSK modulation): hardware keys
//! (`type`, `rssi_offset`, `tx_enable`, `tx_gain_lut`, `clksrc`) stay with the
//! gateway's own `station.conf`. No `max_eirp` is sent, so station's built-in
//! power applies (EU868 keeps 27 dBm on 869.525 MHz for class C / FUOTA).

use serde_json::{json, Map, Value};

use crate::eui::Eui;

/// What the operator set on a gateway besides its `RfRegion` (operator-api.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RadioOptions {
    /// US915/AU915 only: the 8-channel sub-band (1–8) the gateway listens on;
    /// `None` = `[2]`. A single SX1301 board covers exactly one sub-band.
    pub sub_bands: Option<Vec<u8>>,
    /// Inclusive JoinEUI ranges whose join requests are forwarded (at most 10);
    /// `None` or empty = all.
    pub join_eui_filters: Option<Vec<[Eui; 2]>>,
    /// NetIDs (6 hex digits each) whose data frames are forwarded; `None` or
    /// empty = all.
    pub net_id_filters: Option<Vec<String>>,
}

/// How much of the LNS protocol works for the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Station recognises the region name: uplinks and downlinks work.
    Full,
    /// station 2.0.6 runs the radio but drops every downlink (unrecognised region
    /// name). The text says so, for the operator.
    UplinkOnly(String),
}

/// Why no router_config can be built; each message says what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    #[error("unknown RfRegion {0:?}: expected one of EU868, US915, AU915, AS923-1, AS923-2, AS923-3, AS923-4, KR920, IN865, EU433")]
    UnknownRegion(String),
    #[error("RfRegion {0} has no channel plan here: stationkeeper builds no CN470 router_config, and Basics Station 2.0.6 does not recognise CN470 either (it would drop every downlink)")]
    Unsupported(&'static str),
    #[error(
        "SubBands apply only to US915 and AU915, not to {region}; remove SubBands from the gateway"
    )]
    SubBandsNotApplicable { region: &'static str },
    #[error("sub-band {sub_band} does not exist in {region}: sub-bands are numbered 1 to 8")]
    SubBandOutOfRange { region: &'static str, sub_band: u8 },
    #[error("SubBands is empty for {region}: name the one sub-band (1 to 8) the gateway listens on, or leave SubBands out for the default [2]")]
    NoSubBand { region: &'static str },
    #[error("SubBands {sub_bands:?} names {} sub-bands, but a gateway with a single SX1301 board (hwspec sx1301/1) has 8 multi-SF channels and one 500 kHz channel, which is exactly one {region} sub-band (8 x 125 kHz + 1 x 500 kHz); choose one sub-band", sub_bands.len())]
    TooManySubBands {
        region: &'static str,
        sub_bands: Vec<u8>,
    },
    #[error("NetIdFilters entry {input:?} is not a NetID: {reason}; expected 6 hex digits such as 000013")]
    BadNetId { input: String, reason: &'static str },
    #[error(
        "JoinEuiFilters has {count} ranges, but Basics Station keeps at most 10; merge ranges"
    )]
    TooManyJoinEuiRanges { count: usize },
    #[error(
        "JoinEuiFilters range [{start}, {end}] ends before it starts; give the lower EUI first"
    )]
    JoinEuiRangeReversed { start: Eui, end: Eui },
    #[error("JoinEuiFilters range [{start}, {end}] starts at 0000000000000000, which Basics Station 2.0.6 reads as the end of its filter list (that range and all later ones would be ignored, or the whole filter switched off); start the range at 0000000000000001 or remove JoinEuiFilters")]
    JoinEuiRangeStartsAtZero { start: Eui, end: Eui },
}

/// Builds the `router_config` message for a gateway in `region` (an `RfRegion`
/// name, case-insensitive). `mux_time` is the server's current Unix time in
/// seconds: station sets its UTC clock from it (§3.2); a non-finite value is left
/// out rather than sent as `null`, which station would reject.
pub fn router_config(
    region: &str,
    opts: &RadioOptions,
    mux_time: f64,
) -> Result<(Value, Support), RegionError> {
    let r = Region::parse(region)?;
    let sub_band = sub_band(r, opts.sub_bands.as_deref())?;
    let join_eui = join_eui_filter(opts.join_eui_filters.as_deref())?;
    let net_id = net_id_filter(opts.net_id_filters.as_deref())?;
    let plan = r.plan(sub_band);

    let drs: Vec<Value> = r
        .drs()
        .iter()
        .map(|&(sf, bw, dnonly)| json!([sf, bw, dnonly]))
        .collect();
    let mut msg = json!({
        "msgtype": "router_config",
        "region": r.name(),
        "hwspec": "sx1301/1",
        "freq_range": r.freq_range(),
        "DRs": drs,
        "NetID": net_id,
        "JoinEui": join_eui,
        "sx1301_conf": [plan.sx1301_conf()],
    });
    if mux_time.is_finite() {
        msg["MuxTime"] = json!(mux_time);
    }
    let support = if r.recognised() {
        Support::Full
    } else {
        Support::UplinkOnly(format!(
            "region {name} is not recognised by Basics Station 2.0.6 (it knows only EU868, US915, AU915, KR920, AS923-1 and IL915): \
             the gateway listens and forwards uplinks, but station treats it as having no region and silently drops every downlink \
             sent to it (join accepts, class A replies, class C and FUOTA)",
            name = r.name()
        ))
    };
    Ok((msg, support))
}

/// Default class C / RX2 parameters (DR index, Hz) per region, e.g. EU868
/// (0, 869_525_000), US915 (8, 923_300_000). `None` for an unknown region.
pub fn rx2(region: &str) -> Option<(u8, u32)> {
    Region::parse(region).ok().map(Region::rx2)
}

/// The frequencies a gateway of the region may use, inclusive (router_config's
/// `freq_range`). `None` for an unknown region.
pub fn freq_range(region: &str) -> Option<[u32; 2]> {
    Region::parse(region).ok().map(Region::freq_range)
}

/// Modulation of a DR in a region: (spreading factor (0 = FSK), bandwidth kHz),
/// None if undefined — from the same DR table router_config sends. FSK is (0, 0),
/// as in that table.
pub fn dr(region: &str, dr: u8) -> Option<(u8, u32)> {
    let r = Region::parse(region).ok()?;
    let &(sf, bw, _) = r.drs().get(usize::from(dr))?;
    if sf < 0 {
        return None;
    }
    Some((sf as u8, u32::from(bw)))
}

// ---------------------------------------------------------------------------
// Regions and their tables

/// One DR: [SF (7..12 LoRa, 0 FSK, -1 undefined), bandwidth kHz, downlink-only].
type DrDef = (i8, u16, u8);
type DrTable = [DrDef; 16];

const NO: DrDef = (-1, 0, 0);

/// EU868, EU433, AS923: SF12..SF7/125, SF7/250, FSK 50 kbit/s; DR8–15 (LR-FHSS or
/// RFU) undefined for station.
#[rustfmt::skip]
const DRS_EU: DrTable = [
    (12, 125, 0), (11, 125, 0), (10, 125, 0), (9, 125, 0), (8, 125, 0), (7, 125, 0), (7, 250, 0), (0, 0, 0),
    NO, NO, NO, NO, NO, NO, NO, NO,
];

/// US915: DR0–3 SF10..SF7/125, DR4 SF8/500, DR5–7 (LR-FHSS, RFU) undefined,
/// DR8–13 SF12..SF7/500 downlink-only.
#[rustfmt::skip]
const DRS_US: DrTable = [
    (10, 125, 0), (9, 125, 0), (8, 125, 0), (7, 125, 0), (8, 500, 0), NO, NO, NO,
    (12, 500, 1), (11, 500, 1), (10, 500, 1), (9, 500, 1), (8, 500, 1), (7, 500, 1), NO, NO,
];

/// AU915: DR0–5 SF12..SF7/125, DR6 SF8/500, DR7 (LR-FHSS) undefined, DR8–13
/// SF12..SF7/500 downlink-only.
#[rustfmt::skip]
const DRS_AU: DrTable = [
    (12, 125, 0), (11, 125, 0), (10, 125, 0), (9, 125, 0), (8, 125, 0), (7, 125, 0), (8, 500, 0), NO,
    (12, 500, 1), (11, 500, 1), (10, 500, 1), (9, 500, 1), (8, 500, 1), (7, 500, 1), NO, NO,
];

/// KR920: DR0–5 SF12..SF7/125, the rest RFU.
#[rustfmt::skip]
const DRS_KR: DrTable = [
    (12, 125, 0), (11, 125, 0), (10, 125, 0), (9, 125, 0), (8, 125, 0), (7, 125, 0), NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO,
];

/// IN865: DR0–5 SF12..SF7/125, DR6 RFU, DR7 FSK 50 kbit/s, the rest RFU.
#[rustfmt::skip]
const DRS_IN: DrTable = [
    (12, 125, 0), (11, 125, 0), (10, 125, 0), (9, 125, 0), (8, 125, 0), (7, 125, 0), NO, (0, 0, 0),
    NO, NO, NO, NO, NO, NO, NO, NO,
];

const MHZ: u32 = 1_000_000;
const KHZ: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Eu868,
    Us915,
    Au915,
    /// AS923-1..4 (the group number).
    As923(u8),
    Kr920,
    In865,
    Eu433,
}

impl Region {
    fn parse(s: &str) -> Result<Region, RegionError> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "EU868" => Region::Eu868,
            "US915" => Region::Us915,
            "AU915" => Region::Au915,
            "AS923-1" => Region::As923(1),
            "AS923-2" => Region::As923(2),
            "AS923-3" => Region::As923(3),
            "AS923-4" => Region::As923(4),
            "KR920" => Region::Kr920,
            "IN865" => Region::In865,
            "EU433" => Region::Eu433,
            "CN470" => return Err(RegionError::Unsupported("CN470")),
            _ => return Err(RegionError::UnknownRegion(s.to_string())),
        })
    }

    /// The RP002 name, sent as `region`.
    fn name(self) -> &'static str {
        match self {
            Region::Eu868 => "EU868",
            Region::Us915 => "US915",
            Region::Au915 => "AU915",
            Region::As923(1) => "AS923-1",
            Region::As923(2) => "AS923-2",
            Region::As923(3) => "AS923-3",
            Region::As923(_) => "AS923-4",
            Region::Kr920 => "KR920",
            Region::In865 => "IN865",
            Region::Eu433 => "EU433",
        }
    }

    /// Whether station 2.0.6 knows the name (s2e.c `handle_router_config`).
    fn recognised(self) -> bool {
        matches!(
            self,
            Region::Eu868 | Region::Us915 | Region::Au915 | Region::Kr920 | Region::As923(1)
        )
    }

    fn has_sub_bands(self) -> bool {
        matches!(self, Region::Us915 | Region::Au915)
    }

    fn drs(self) -> &'static DrTable {
        match self {
            Region::Eu868 | Region::Eu433 | Region::As923(_) => &DRS_EU,
            Region::Us915 => &DRS_US,
            Region::Au915 => &DRS_AU,
            Region::Kr920 => &DRS_KR,
            Region::In865 => &DRS_IN,
        }
    }

    fn freq_range(self) -> [u32; 2] {
        match self {
            Region::Eu868 => [863 * MHZ, 870 * MHZ],
            Region::Us915 => [902 * MHZ, 928 * MHZ],
            Region::Au915 | Region::As923(1) => [915 * MHZ, 928 * MHZ],
            Region::As923(2) => [920 * MHZ, 923 * MHZ],
            Region::As923(3) => [915 * MHZ, 921 * MHZ],
            Region::As923(_) => [917 * MHZ, 920 * MHZ],
            Region::Kr920 => [920_900 * KHZ, 923_300 * KHZ],
            Region::In865 => [865 * MHZ, 867 * MHZ],
            Region::Eu433 => [433_050 * KHZ, 434_790 * KHZ],
        }
    }

    fn rx2(self) -> (u8, u32) {
        match self {
            Region::Eu868 => (0, 869_525 * KHZ),
            Region::Us915 | Region::Au915 => (8, 923_300 * KHZ),
            Region::As923(1) => (2, 923_200 * KHZ),
            Region::As923(2) => (2, 921_400 * KHZ),
            Region::As923(3) => (2, 916_600 * KHZ),
            Region::As923(_) => (2, 917_300 * KHZ),
            Region::Kr920 => (0, 921_900 * KHZ),
            Region::In865 => (2, 866_550 * KHZ),
            Region::Eu433 => (0, 434_665 * KHZ),
        }
    }

    /// The concentrator layout. `sub_band` (1..=8) is used by US915/AU915 only.
    fn plan(self, sub_band: u8) -> Plan {
        match self {
            Region::Eu868 => Plan {
                radios: [867_500 * KHZ, 868_500 * KHZ],
                multi_sf: vec![
                    ch(1, 868_100),
                    ch(1, 868_300),
                    ch(1, 868_500),
                    ch(0, 867_100),
                    ch(0, 867_300),
                    ch(0, 867_500),
                    ch(0, 867_700),
                    ch(0, 867_900),
                ],
                lora_std: Some(Fast {
                    radio: 1,
                    freq: 868_300 * KHZ,
                    bw_hz: 250_000,
                    sf: 7,
                }),
                fsk: Some(ch(1, 868_800)),
            },
            Region::Us915 | Region::Au915 => {
                // Sub-band n: 125 kHz channels 8(n-1)..8(n-1)+7, 200 kHz apart, and
                // 500 kHz channel 64+(n-1), 1.6 MHz apart. AU915 is US915 moved
                // up by 12.9 MHz. Radio A holds channels 0-3 and the 500 kHz one,
                // radio B channels 4-7 (lns-protocol.md §3.5).
                let (first_125, first_500) = if self == Region::Us915 {
                    (902_300 * KHZ, 903_000 * KHZ)
                } else {
                    (915_200 * KHZ, 915_900 * KHZ)
                };
                let step = u32::from(sub_band - 1) * 1_600 * KHZ;
                let base = first_125 + step;
                Plan {
                    radios: [base + 400 * KHZ, base + 1_100 * KHZ],
                    multi_sf: (0..8u32)
                        .map(|k| Chan {
                            radio: u8::from(k >= 4),
                            freq: base + k * 200 * KHZ,
                        })
                        .collect(),
                    lora_std: Some(Fast {
                        radio: 0,
                        freq: first_500 + step,
                        bw_hz: 500_000,
                        sf: 8,
                    }),
                    fsk: None,
                }
            }
            // The Things Network's AS_920_923 plan: the two default channels
            // 923.2/923.4 plus 922.0-923.0, SF7/250 on 922.1, FSK on 921.8.
            Region::As923(1) => Plan {
                radios: [923_000 * KHZ, 922_000 * KHZ],
                multi_sf: vec![
                    ch(0, 923_200),
                    ch(0, 923_400),
                    ch(1, 922_200),
                    ch(1, 922_400),
                    ch(0, 922_600),
                    ch(0, 922_800),
                    ch(0, 923_000),
                    ch(1, 922_000),
                ],
                lora_std: Some(Fast {
                    radio: 1,
                    freq: 922_100 * KHZ,
                    bw_hz: 250_000,
                    sf: 7,
                }),
                fsk: Some(ch(1, 921_800)),
            },
            // AS923-2/-3/-4: the two default channels (AS923-1's shifted by
            // -1.8/-6.6/-5.9 MHz) and six more above them, 200 kHz apart, which
            // keeps AS923-4 inside 917-920 MHz.
            Region::As923(group) => {
                let base = match group {
                    2 => 921_400 * KHZ,
                    3 => 916_600 * KHZ,
                    _ => 917_300 * KHZ,
                };
                Plan {
                    radios: [base + 200 * KHZ, base + 1_200 * KHZ],
                    multi_sf: (0..8u32)
                        .map(|k| Chan {
                            radio: u8::from(k >= 4),
                            freq: base + k * 200 * KHZ,
                        })
                        .collect(),
                    lora_std: None,
                    fsk: None,
                }
            }
            // Default channels 922.1/922.3/922.5, then 922.7-923.3, and 921.9 (the
            // RX2 frequency): station uses the multi-SF channels as its LBT
            // channel list on SX1301 builds, and the HAL refuses to transmit on a
            // frequency that is not in that list, so RX2/class C needs 921.9 here.
            Region::Kr920 => Plan {
                radios: [922_200 * KHZ, 923_000 * KHZ],
                multi_sf: vec![
                    ch(0, 922_100),
                    ch(0, 922_300),
                    ch(0, 922_500),
                    ch(1, 922_700),
                    ch(1, 922_900),
                    ch(1, 923_100),
                    ch(1, 923_300),
                    ch(0, 921_900),
                ],
                lora_std: None,
                fsk: None,
            },
            // The three default channels (The Things Network's IN_865_867 layout).
            Region::In865 => Plan {
                radios: [865_200 * KHZ, 866_385 * KHZ],
                multi_sf: vec![
                    Chan {
                        radio: 0,
                        freq: 865_062_500,
                    },
                    Chan {
                        radio: 0,
                        freq: 865_402_500,
                    },
                    ch(1, 865_985),
                ],
                lora_std: None,
                fsk: None,
            },
            // The Things Network's EU_433 plan: 433.175-434.575 MHz, SF7/250 on 434.075.
            Region::Eu433 => Plan {
                radios: [433_475 * KHZ, 434_275 * KHZ],
                multi_sf: (0..8u32)
                    .map(|k| Chan {
                        radio: u8::from(k >= 4),
                        freq: 433_175 * KHZ + k * 200 * KHZ,
                    })
                    .collect(),
                lora_std: Some(Fast {
                    radio: 1,
                    freq: 434_075 * KHZ,
                    bw_hz: 250_000,
                    sf: 7,
                }),
                fsk: None,
            },
        }
    }
}

/// A channel on `radio` at an absolute frequency (Hz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chan {
    radio: u8,
    freq: u32,
}

/// `ch(radio, kHz)`.
fn ch(radio: u8, khz: u32) -> Chan {
    Chan {
        radio,
        freq: khz * KHZ,
    }
}

/// The single-SF LoRa channel (`chan_Lora_std`), 250 or 500 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fast {
    radio: u8,
    freq: u32,
    bw_hz: u32,
    sf: u8,
}

/// FSK data rate (bit/s) of every region's FSK DR.
const FSK_DATARATE: u32 = 50_000;

/// One SX1301 board: two radio centres and the channels hung on them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    radios: [u32; 2],
    /// At most 8.
    multi_sf: Vec<Chan>,
    lora_std: Option<Fast>,
    /// FSK at 50 kbit/s.
    fsk: Option<Chan>,
}

impl Plan {
    /// IF offset of an absolute frequency from its radio's centre.
    fn if_offset(&self, radio: u8, freq: u32) -> i64 {
        i64::from(freq) - i64::from(self.radios[usize::from(radio)])
    }

    /// `sx1301_conf[0]` (§3.3): no hardware-specific keys.
    fn sx1301_conf(&self) -> Value {
        let mut c = Map::new();
        for (i, f) in self.radios.iter().enumerate() {
            c.insert(format!("radio_{i}"), json!({"enable": true, "freq": f}));
        }
        for i in 0..8 {
            let v = match self.multi_sf.get(i) {
                Some(ch) => {
                    json!({"enable": true, "radio": ch.radio, "if": self.if_offset(ch.radio, ch.freq)})
                }
                None => json!({"enable": false}),
            };
            c.insert(format!("chan_multiSF_{i}"), v);
        }
        let std = match self.lora_std {
            Some(f) => json!({
                "enable": true,
                "radio": f.radio,
                "if": self.if_offset(f.radio, f.freq),
                "bandwidth": f.bw_hz,
                "spread_factor": f.sf,
            }),
            None => json!({"enable": false}),
        };
        c.insert("chan_Lora_std".into(), std);
        // Never a `bandwidth` key for FSK: station accepts only 125/250/500 kHz there.
        let fsk = match self.fsk {
            Some(ch) => json!({
                "enable": true,
                "radio": ch.radio,
                "if": self.if_offset(ch.radio, ch.freq),
                "datarate": FSK_DATARATE,
            }),
            None => json!({"enable": false}),
        };
        c.insert("chan_FSK".into(), fsk);
        Value::Object(c)
    }
}

// ---------------------------------------------------------------------------
// Operator options

/// The one sub-band to use (US915/AU915), or 0 for regions without sub-bands.
fn sub_band(r: Region, given: Option<&[u8]>) -> Result<u8, RegionError> {
    if !r.has_sub_bands() {
        return match given {
            Some(s) if !s.is_empty() => {
                Err(RegionError::SubBandsNotApplicable { region: r.name() })
            }
            _ => Ok(0),
        };
    }
    let Some(given) = given else {
        return Ok(2);
    };
    if let Some(&bad) = given.iter().find(|&&n| !(1..=8).contains(&n)) {
        return Err(RegionError::SubBandOutOfRange {
            region: r.name(),
            sub_band: bad,
        });
    }
    let mut distinct = given.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    match distinct.as_slice() {
        [] => Err(RegionError::NoSubBand { region: r.name() }),
        [one] => Ok(*one),
        _ => Err(RegionError::TooManySubBands {
            region: r.name(),
            sub_bands: given.to_vec(),
        }),
    }
}

/// Station's `JoinEui`: `[[lo, hi], ...]` as plain JSON integers (exact u64, also
/// above i64::MAX: station parses the digits into 64 bits), or null for all.
fn join_eui_filter(ranges: Option<&[[Eui; 2]]>) -> Result<Value, RegionError> {
    let ranges = match ranges {
        None | Some([]) => return Ok(Value::Null),
        Some(r) => r,
    };
    if ranges.len() > 10 {
        return Err(RegionError::TooManyJoinEuiRanges {
            count: ranges.len(),
        });
    }
    let mut out = Vec::with_capacity(ranges.len());
    for &[start, end] in ranges {
        if start.0 > end.0 {
            return Err(RegionError::JoinEuiRangeReversed { start, end });
        }
        // s2e.c ends its filter list at the first range whose start is 0.
        if start.0 == 0 {
            return Err(RegionError::JoinEuiRangeStartsAtZero { start, end });
        }
        out.push(json!([start.0, end.0]));
    }
    Ok(Value::Array(out))
}

/// Station's `NetID`, or null for all. Station compares each listed integer's low
/// 7 bits with the top 7 bits of a data frame's DevAddr (s2e.c), so what is sent
/// is the 7-bit DevAddr prefix of each NetID: the NetID itself for the common
/// type-0 NetIDs 000000-00003F (e.g. 000013 → 19), a coarser prefix for the others.
/// An empty list is sent as null: `[]` would make station drop every data frame.
fn net_id_filter(net_ids: Option<&[String]>) -> Result<Value, RegionError> {
    let net_ids = match net_ids {
        None | Some([]) => return Ok(Value::Null),
        Some(n) => n,
    };
    let mut prefixes = Vec::with_capacity(net_ids.len());
    for s in net_ids {
        let bad = |reason| RegionError::BadNetId {
            input: s.clone(),
            reason,
        };
        if s.len() != 6 {
            return Err(bad("it must be exactly 6 hex digits"));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("it holds a character that is not a hex digit"));
        }
        let n = u32::from_str_radix(s, 16).map_err(|_| bad("it is not hexadecimal"))?;
        prefixes.push(devaddr_prefix(n));
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    Ok(json!(prefixes))
}

/// The top 7 bits of every DevAddr of the 24-bit NetID `net_id` (LoRaWAN Backend
/// Interfaces §13: the type prefix of `type` ones and a zero, then the NwkID, the
/// NetID's low 6/6/9/11/12/13/15/17 bits).
fn devaddr_prefix(net_id: u32) -> u8 {
    const NWKID_BITS: [u32; 8] = [6, 6, 9, 11, 12, 13, 15, 17];
    let typ = (net_id >> 21) & 7;
    let nwkid_bits = NWKID_BITS[typ as usize];
    let nwkid = net_id & ((1 << nwkid_bits) - 1);
    let prefix = ((1u32 << typ) - 1) << 1; // `typ` ones, then a zero
    let len = typ + 1 + nwkid_bits; // always >= 7
    let bits = (prefix << nwkid_bits) | nwkid;
    (bits >> (len - 7)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lns-protocol.md §3.4, verbatim.
    const EU868_EXAMPLE: &str = r#"{
 "msgtype":"router_config",
 "region":"EU868",
 "hwspec":"sx1301/1",
 "freq_range":[863000000,870000000],
 "DRs":[[12,125,0],[11,125,0],[10,125,0],[9,125,0],[8,125,0],[7,125,0],[7,250,0],[0,0,0],
        [-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0]],
 "NetID":null,
 "JoinEui":null,
 "sx1301_conf":[{
   "radio_0":{"enable":true,"freq":867500000},
   "radio_1":{"enable":true,"freq":868500000},
   "chan_multiSF_0":{"enable":true,"radio":1,"if":-400000},
   "chan_multiSF_1":{"enable":true,"radio":1,"if":-200000},
   "chan_multiSF_2":{"enable":true,"radio":1,"if":0},
   "chan_multiSF_3":{"enable":true,"radio":0,"if":-400000},
   "chan_multiSF_4":{"enable":true,"radio":0,"if":-200000},
   "chan_multiSF_5":{"enable":true,"radio":0,"if":0},
   "chan_multiSF_6":{"enable":true,"radio":0,"if":200000},
   "chan_multiSF_7":{"enable":true,"radio":0,"if":400000},
   "chan_Lora_std":{"enable":true,"radio":1,"if":-200000,"bandwidth":250000,"spread_factor":7},
   "chan_FSK":{"enable":true,"radio":1,"if":300000,"datarate":50000}
 }],
 "MuxTime":1732443300.125
}"#;

    /// lns-protocol.md §3.5, verbatim.
    const US915_EXAMPLE: &str = r#"{
 "msgtype":"router_config",
 "region":"US915",
 "hwspec":"sx1301/1",
 "freq_range":[902000000,928000000],
 "DRs":[[10,125,0],[9,125,0],[8,125,0],[7,125,0],[8,500,0],[-1,0,0],[-1,0,0],[-1,0,0],
        [12,500,1],[11,500,1],[10,500,1],[9,500,1],[8,500,1],[7,500,1],[-1,0,0],[-1,0,0]],
 "NetID":null,
 "JoinEui":null,
 "sx1301_conf":[{
   "radio_0":{"enable":true,"freq":904300000},
   "radio_1":{"enable":true,"freq":905000000},
   "chan_multiSF_0":{"enable":true,"radio":0,"if":-400000},
   "chan_multiSF_1":{"enable":true,"radio":0,"if":-200000},
   "chan_multiSF_2":{"enable":true,"radio":0,"if":0},
   "chan_multiSF_3":{"enable":true,"radio":0,"if":200000},
   "chan_multiSF_4":{"enable":true,"radio":1,"if":-300000},
   "chan_multiSF_5":{"enable":true,"radio":1,"if":-100000},
   "chan_multiSF_6":{"enable":true,"radio":1,"if":100000},
   "chan_multiSF_7":{"enable":true,"radio":1,"if":300000},
   "chan_Lora_std":{"enable":true,"radio":0,"if":300000,"bandwidth":500000,"spread_factor":8},
   "chan_FSK":{"enable":false}
 }],
 "MuxTime":1732443300.125
}"#;

    const EXAMPLE_MUX_TIME: f64 = 1732443300.125;

    const ALL: [&str; 10] = [
        "EU868", "US915", "AU915", "AS923-1", "AS923-2", "AS923-3", "AS923-4", "KR920", "IN865",
        "EU433",
    ];

    fn build(region: &str, opts: &RadioOptions) -> (Value, Support) {
        router_config(region, opts, EXAMPLE_MUX_TIME).unwrap()
    }

    fn sub_bands(v: &[u8]) -> RadioOptions {
        RadioOptions {
            sub_bands: Some(v.to_vec()),
            ..RadioOptions::default()
        }
    }

    /// (kind, absolute frequency Hz, |IF| Hz, IF limit Hz) of every enabled channel.
    fn channels(msg: &Value) -> Vec<(&'static str, i64, i64, i64)> {
        let conf = &msg["sx1301_conf"][0];
        let radio = |ch: &Value| {
            let radio = &conf[format!("radio_{}", ch["radio"].as_u64().unwrap())];
            assert_eq!(radio["enable"], json!(true), "channel on a disabled radio");
            radio["freq"].as_i64().unwrap()
        };
        let mut out = Vec::new();
        for (key, ch) in conf.as_object().unwrap() {
            if !key.starts_with("chan_") || ch["enable"] == json!(false) {
                continue;
            }
            assert_eq!(ch["enable"], json!(true), "{key}");
            let r = radio(ch);
            let off = ch["if"].as_i64().unwrap();
            let (kind, limit) = if key.starts_with("chan_multiSF") {
                ("multiSF", 400_000)
            } else if key == "chan_FSK" {
                assert!(
                    ch.get("bandwidth").is_none(),
                    "FSK must not carry bandwidth"
                );
                assert_eq!(ch["datarate"], json!(50_000));
                ("FSK", 400_000)
            } else {
                assert_eq!(key, "chan_Lora_std");
                let limit = match ch["bandwidth"].as_u64().unwrap() {
                    250_000 => 375_000,
                    500_000 => 300_000,
                    other => panic!("bandwidth {other}"),
                };
                ("std", limit)
            };
            out.push((kind, r + off, off.abs(), limit));
        }
        out
    }

    fn multi_sf_freqs(msg: &Value) -> Vec<i64> {
        let mut f: Vec<i64> = channels(msg)
            .into_iter()
            .filter(|c| c.0 == "multiSF")
            .map(|c| c.1)
            .collect();
        f.sort_unstable();
        f
    }

    #[test]
    fn eu868_equals_the_spec_example() {
        let (msg, support) = build("EU868", &RadioOptions::default());
        let want: Value = serde_json::from_str(EU868_EXAMPLE).unwrap();
        assert_eq!(msg, want);
        assert_eq!(support, Support::Full);
        assert!(msg.get("max_eirp").is_none());
    }

    #[test]
    fn us915_sub_band_2_equals_the_spec_example() {
        let want: Value = serde_json::from_str(US915_EXAMPLE).unwrap();
        assert_eq!(
            build("US915", &RadioOptions::default()).0,
            want,
            "default is sub-band 2"
        );
        assert_eq!(build("US915", &sub_bands(&[2])).0, want);
        assert_eq!(
            build("us915", &sub_bands(&[2, 2])).0,
            want,
            "case and repeats do not matter"
        );
    }

    #[test]
    fn mux_time_is_the_argument() {
        let (msg, _) = router_config("EU868", &RadioOptions::default(), 1_800_000_000.5).unwrap();
        assert_eq!(msg["MuxTime"], json!(1_800_000_000.5));
        let (msg, _) = router_config("EU868", &RadioOptions::default(), f64::NAN).unwrap();
        assert!(msg.get("MuxTime").is_none());
    }

    #[test]
    fn every_region_keeps_if_offsets_and_frequencies_in_limits() {
        let mut cases: Vec<(&str, RadioOptions)> =
            ALL.iter().map(|r| (*r, RadioOptions::default())).collect();
        for n in 1..=8 {
            cases.push(("US915", sub_bands(&[n])));
            cases.push(("AU915", sub_bands(&[n])));
        }
        for (region, opts) in cases {
            let (msg, _) = build(region, &opts);
            assert_eq!(msg["hwspec"], json!("sx1301/1"));
            assert_eq!(msg["DRs"].as_array().unwrap().len(), 16, "{region}");
            let lo = msg["freq_range"][0].as_i64().unwrap();
            let hi = msg["freq_range"][1].as_i64().unwrap();
            let chans = channels(&msg);
            assert!(
                chans.iter().filter(|c| c.0 == "multiSF").count() >= 2,
                "{region}"
            );
            for (kind, freq, off, limit) in &chans {
                assert!(
                    off <= limit,
                    "{region} {opts:?}: {kind} {freq} is {off} Hz from its radio (max {limit})"
                );
                assert!(
                    (lo..=hi).contains(freq),
                    "{region} {opts:?}: {kind} {freq} outside {lo}..{hi}"
                );
            }
            let mut freqs: Vec<i64> = chans.iter().map(|c| c.1).collect();
            freqs.sort_unstable();
            let n = freqs.len();
            freqs.dedup();
            // EU868/AS923-1/EU433 share no frequency except EU868's SF7/250 on 868.3.
            assert!(n - freqs.len() <= 1, "{region}: duplicate channels");
            // RX2 is inside freq_range, and its DR is defined.
            let (rx2_dr, rx2_hz) = rx2(region).unwrap();
            assert!((lo..=hi).contains(&i64::from(rx2_hz)), "{region} RX2");
            assert!(dr(region, rx2_dr).is_some(), "{region} RX2 DR");
            // The hardware-specific keys stay with the gateway.
            let conf = msg["sx1301_conf"][0].as_object().unwrap();
            for key in ["radio_0", "radio_1"] {
                let mut keys: Vec<&String> = conf[key].as_object().unwrap().keys().collect();
                keys.sort();
                assert_eq!(keys, ["enable", "freq"], "{region} {key}");
            }
            assert_eq!(conf.len(), 12, "{region}");
        }
    }

    #[test]
    fn us915_and_au915_sub_bands_1_and_8() {
        let mhz = |f: f64| (f * 1e6).round() as i64;
        let expect =
            |first: f64| -> Vec<i64> { (0..8).map(|k| mhz(first + 0.2 * f64::from(k))).collect() };
        let fast = |msg: &Value| {
            let c = channels(msg);
            c.iter().find(|c| c.0 == "std").unwrap().1
        };
        let (m, _) = build("US915", &sub_bands(&[1]));
        assert_eq!(multi_sf_freqs(&m), expect(902.3)); // channels 0..7
        assert_eq!(fast(&m), mhz(903.0)); // channel 64
        let (m, _) = build("US915", &sub_bands(&[8]));
        assert_eq!(multi_sf_freqs(&m), expect(913.5)); // channels 56..63
        assert_eq!(fast(&m), mhz(914.2)); // channel 71
        let (m, support) = build("AU915", &sub_bands(&[1]));
        assert_eq!(support, Support::Full);
        assert_eq!(multi_sf_freqs(&m), expect(915.2));
        assert_eq!(fast(&m), mhz(915.9));
        let (m, _) = build("AU915", &sub_bands(&[8]));
        assert_eq!(multi_sf_freqs(&m), expect(926.4));
        assert_eq!(fast(&m), mhz(927.1));
        // AU915 default: sub-band 2, as The Things Network's AU_915_928_FSB_2.
        let (m, _) = build("AU915", &RadioOptions::default());
        assert_eq!(multi_sf_freqs(&m), expect(916.8));
        assert_eq!(m["sx1301_conf"][0]["radio_0"]["freq"], json!(917_200_000));
        assert_eq!(m["sx1301_conf"][0]["radio_1"]["freq"], json!(917_900_000));
        assert_eq!(m["freq_range"], json!([915_000_000, 928_000_000]));
    }

    #[test]
    fn sub_band_errors() {
        assert_eq!(
            router_config("EU868", &sub_bands(&[1]), 0.0).unwrap_err(),
            RegionError::SubBandsNotApplicable { region: "EU868" }
        );
        assert!(router_config("EU868", &sub_bands(&[]), 0.0).is_ok());
        assert_eq!(
            router_config("US915", &sub_bands(&[0]), 0.0).unwrap_err(),
            RegionError::SubBandOutOfRange {
                region: "US915",
                sub_band: 0
            }
        );
        assert_eq!(
            router_config("AU915", &sub_bands(&[2, 9]), 0.0).unwrap_err(),
            RegionError::SubBandOutOfRange {
                region: "AU915",
                sub_band: 9
            }
        );
        assert_eq!(
            router_config("US915", &sub_bands(&[]), 0.0).unwrap_err(),
            RegionError::NoSubBand { region: "US915" }
        );
        let e = router_config("US915", &sub_bands(&[1, 2]), 0.0).unwrap_err();
        assert_eq!(
            e,
            RegionError::TooManySubBands {
                region: "US915",
                sub_bands: vec![1, 2]
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("single SX1301")
                && text.contains("exactly one")
                && text.contains("choose one"),
            "{text}"
        );
    }

    #[test]
    fn unknown_and_unsupported_regions() {
        assert_eq!(
            router_config("AS923", &RadioOptions::default(), 0.0).unwrap_err(),
            RegionError::UnknownRegion("AS923".into())
        );
        assert_eq!(
            router_config("CN470", &RadioOptions::default(), 0.0).unwrap_err(),
            RegionError::Unsupported("CN470")
        );
        assert_eq!(rx2("CN470"), None);
        assert_eq!(dr("nowhere", 0), None);
    }

    #[test]
    fn unrecognised_names_are_uplink_only_but_still_configured() {
        for region in ["IN865", "AS923-2", "AS923-3", "AS923-4", "EU433"] {
            let (msg, support) = build(region, &RadioOptions::default());
            let Support::UplinkOnly(why) = support else {
                panic!("{region} must be uplink-only");
            };
            assert!(why.contains(region), "{why}");
            assert!(why.contains("drops every downlink"), "{why}");
            assert_eq!(msg["region"], json!(region));
            assert!(!channels(&msg).is_empty());
        }
        for region in ["EU868", "US915", "AU915", "AS923-1", "KR920"] {
            assert_eq!(
                build(region, &RadioOptions::default()).1,
                Support::Full,
                "{region}"
            );
        }
        let (msg, _) = build("as923-1", &RadioOptions::default());
        assert_eq!(msg["region"], json!("AS923-1"));
    }

    #[test]
    fn region_plans() {
        let khz = |v: &[u32]| -> Vec<i64> { v.iter().map(|k| i64::from(*k) * 1000).collect() };
        let (m, _) = build("AS923-1", &RadioOptions::default());
        assert_eq!(
            multi_sf_freqs(&m),
            khz(&[922_000, 922_200, 922_400, 922_600, 922_800, 923_000, 923_200, 923_400])
        );
        let c = channels(&m);
        assert_eq!(c.iter().find(|c| c.0 == "std").unwrap().1, 922_100_000);
        assert_eq!(c.iter().find(|c| c.0 == "FSK").unwrap().1, 921_800_000);
        let (m, _) = build("KR920", &RadioOptions::default());
        assert_eq!(
            multi_sf_freqs(&m),
            khz(&[921_900, 922_100, 922_300, 922_500, 922_700, 922_900, 923_100, 923_300])
        );
        assert_eq!(m["freq_range"], json!([920_900_000, 923_300_000]));
        let (m, _) = build("IN865", &RadioOptions::default());
        assert_eq!(
            multi_sf_freqs(&m),
            vec![865_062_500, 865_402_500, 865_985_000]
        );
        assert_eq!(
            m["sx1301_conf"][0]["chan_multiSF_3"],
            json!({"enable": false})
        );
        assert_eq!(m["sx1301_conf"][0]["chan_FSK"], json!({"enable": false}));
        let (m, _) = build("AS923-4", &RadioOptions::default());
        assert_eq!(
            multi_sf_freqs(&m),
            khz(&[917_300, 917_500, 917_700, 917_900, 918_100, 918_300, 918_500, 918_700])
        );
        let (m, _) = build("AS923-2", &RadioOptions::default());
        assert_eq!(multi_sf_freqs(&m)[..2], khz(&[921_400, 921_600]));
        let (m, _) = build("AS923-3", &RadioOptions::default());
        assert_eq!(multi_sf_freqs(&m)[..2], khz(&[916_600, 916_800]));
    }

    #[test]
    fn join_eui_filters_are_exact_integers() {
        let opts = RadioOptions {
            join_eui_filters: Some(vec![
                [Eui(0x70b3_d57e_d000_0000), Eui(0x70b3_d57e_d0ff_ffff)],
                [Eui(0x8000_0000_0000_0000), Eui(u64::MAX)],
            ]),
            ..RadioOptions::default()
        };
        let (msg, _) = build("EU868", &opts);
        assert_eq!(
            msg["JoinEui"],
            json!([
                [0x70b3_d57e_d000_0000u64, 0x70b3_d57e_d0ff_ffffu64],
                [0x8000_0000_0000_0000u64, u64::MAX]
            ])
        );
        let text = msg.to_string();
        assert!(
            text.contains("[9223372036854775808,18446744073709551615]"),
            "{text}"
        );
        // Empty means no filter.
        let opts = RadioOptions {
            join_eui_filters: Some(vec![]),
            ..RadioOptions::default()
        };
        assert_eq!(build("EU868", &opts).0["JoinEui"], Value::Null);
    }

    #[test]
    fn join_eui_filter_errors() {
        let with = |r: Vec<[Eui; 2]>| {
            router_config(
                "EU868",
                &RadioOptions {
                    join_eui_filters: Some(r),
                    ..RadioOptions::default()
                },
                0.0,
            )
        };
        assert!(with(vec![[Eui(1), Eui(2)]; 10]).is_ok());
        assert_eq!(
            with(vec![[Eui(1), Eui(2)]; 11]).unwrap_err(),
            RegionError::TooManyJoinEuiRanges { count: 11 }
        );
        assert_eq!(
            with(vec![[Eui(5), Eui(4)]]).unwrap_err(),
            RegionError::JoinEuiRangeReversed {
                start: Eui(5),
                end: Eui(4)
            }
        );
        let e = with(vec![[Eui(0), Eui(u64::MAX)]]).unwrap_err();
        assert_eq!(
            e,
            RegionError::JoinEuiRangeStartsAtZero {
                start: Eui(0),
                end: Eui(u64::MAX)
            }
        );
        assert!(
            e.to_string()
                .contains("[0000000000000000, ffffffffffffffff]"),
            "{e}"
        );
    }

    #[test]
    fn net_id_filters() {
        let with = |n: &[&str]| {
            router_config(
                "US915",
                &RadioOptions {
                    net_id_filters: Some(n.iter().map(|s| s.to_string()).collect()),
                    ..RadioOptions::default()
                },
                0.0,
            )
            .map(|(m, _)| m["NetID"].clone())
        };
        // Type 0: the NetID itself (TTN's 000013 → DevAddr 26xxxxxx/27xxxxxx).
        assert_eq!(with(&["000013"]).unwrap(), json!([0x13]));
        assert_eq!(
            with(&["000013", "00003F", "000000"]).unwrap(),
            json!([0, 0x13, 0x3f])
        );
        // Type 0 with bits above the 6-bit NwkID: the same DevAddr prefix as 000013.
        assert_eq!(with(&["000053", "000013"]).unwrap(), json!([0x13]));
        // Type 3 (DevAddr 1110...), type 6 (1111110), type 7 (11111110): prefixes.
        assert_eq!(with(&["600013"]).unwrap(), json!([0x70]));
        assert_eq!(with(&["60FF13"]).unwrap(), json!([0x77]));
        assert_eq!(with(&["C00053"]).unwrap(), json!([0x7e]));
        assert_eq!(with(&["e00001"]).unwrap(), json!([0x7f]));
        assert_eq!(with(&[]).unwrap(), Value::Null);
        for bad in ["13", "0000013", "00001G", "+00013", " 00013"] {
            assert!(
                matches!(with(&[bad]), Err(RegionError::BadNetId { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            build("US915", &RadioOptions::default()).0["NetID"],
            Value::Null
        );
    }

    #[test]
    fn devaddr_prefix_matches_devaddr_layout() {
        // DevAddr = type prefix, NwkID, NwkAddr (Backend Interfaces §13).
        let devaddr = |typ: u32, nwkid: u32| -> u32 {
            let bits = [6, 6, 9, 11, 12, 13, 15, 17][typ as usize];
            let prefix = ((1u32 << typ) - 1) << 1;
            let prefix_len = typ + 1;
            (prefix << (32 - prefix_len)) | (nwkid << (32 - prefix_len - bits))
        };
        for typ in 0..8u32 {
            for id in [0u32, 1, 0x13, 0x2a, 0x3f, 0x155, 0x1_ffff] {
                let net_id = (typ << 21) | id;
                let bits = [6, 6, 9, 11, 12, 13, 15, 17][typ as usize];
                let nwkid = id & ((1 << bits) - 1);
                assert_eq!(
                    u32::from(devaddr_prefix(net_id)),
                    devaddr(typ, nwkid) >> 25,
                    "{net_id:06x}"
                );
            }
        }
    }

    #[test]
    fn rx2_per_region() {
        assert_eq!(rx2("EU868"), Some((0, 869_525_000)));
        assert_eq!(rx2("US915"), Some((8, 923_300_000)));
        assert_eq!(rx2("AU915"), Some((8, 923_300_000)));
        assert_eq!(rx2("AS923-1"), Some((2, 923_200_000)));
        assert_eq!(rx2("AS923-2"), Some((2, 921_400_000)));
        assert_eq!(rx2("AS923-3"), Some((2, 916_600_000)));
        assert_eq!(rx2("AS923-4"), Some((2, 917_300_000)));
        assert_eq!(rx2("KR920"), Some((0, 921_900_000)));
        assert_eq!(rx2("IN865"), Some((2, 866_550_000)));
        assert_eq!(rx2("EU433"), Some((0, 434_665_000)));
        assert_eq!(rx2("eu868"), Some((0, 869_525_000)));
        assert_eq!(rx2("XX123"), None);
    }

    #[test]
    fn dr_per_region() {
        assert_eq!(dr("EU868", 0), Some((12, 125)));
        assert_eq!(dr("EU868", 5), Some((7, 125)));
        assert_eq!(dr("EU868", 6), Some((7, 250)));
        assert_eq!(dr("EU868", 7), Some((0, 0)));
        assert_eq!(dr("EU868", 8), None);
        assert_eq!(dr("EU868", 16), None);
        assert_eq!(dr("EU868", 255), None);
        assert_eq!(dr("US915", 0), Some((10, 125)));
        assert_eq!(dr("US915", 4), Some((8, 500)));
        assert_eq!(dr("US915", 5), None);
        assert_eq!(dr("US915", 8), Some((12, 500)));
        assert_eq!(dr("US915", 13), Some((7, 500)));
        assert_eq!(dr("US915", 14), None);
        assert_eq!(dr("AU915", 0), Some((12, 125)));
        assert_eq!(dr("AU915", 6), Some((8, 500)));
        assert_eq!(dr("AU915", 7), None);
        assert_eq!(dr("AU915", 8), Some((12, 500)));
        assert_eq!(dr("AU915", 13), Some((7, 500)));
        for region in ["AS923-1", "AS923-2", "AS923-3", "AS923-4", "EU433"] {
            assert_eq!(dr(region, 2), Some((10, 125)), "{region}");
            assert_eq!(dr(region, 6), Some((7, 250)), "{region}");
            assert_eq!(dr(region, 7), Some((0, 0)), "{region}");
            assert_eq!(dr(region, 8), None, "{region}");
        }
        assert_eq!(dr("KR920", 0), Some((12, 125)));
        assert_eq!(dr("KR920", 5), Some((7, 125)));
        assert_eq!(dr("KR920", 6), None);
        assert_eq!(dr("IN865", 2), Some((10, 125)));
        assert_eq!(dr("IN865", 6), None);
        assert_eq!(dr("IN865", 7), Some((0, 0)));
    }

    #[test]
    fn dr_agrees_with_the_table_sent() {
        for region in ALL {
            let (msg, _) = build(region, &RadioOptions::default());
            for (i, d) in msg["DRs"].as_array().unwrap().iter().enumerate() {
                let sf = d[0].as_i64().unwrap();
                let want = (sf >= 0).then(|| (sf as u8, d[1].as_u64().unwrap() as u32));
                assert_eq!(dr(region, i as u8), want, "{region} DR{i}");
                if sf > 0 {
                    assert!(
                        (7..=12).contains(&sf) && [125, 250, 500].contains(&d[1].as_i64().unwrap())
                    );
                }
            }
        }
    }
}
