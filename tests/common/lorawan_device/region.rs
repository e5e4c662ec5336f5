//! The device's regional parameters for EU868 and US915, written from end-devices.md §2.3
//! (CFList), §3.1–§3.3 (RX1 data rate and frequency, RX2 defaults, delays) and §5.2
//! (LinkADRReq channel masks). Values are in Hz and DR indices.

/// The regions the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Eu868,
    Us915,
}

pub const RECEIVE_DELAY1: u8 = 1;
pub const JOIN_ACCEPT_DELAY1: u8 = 5;

/// EU868 channels 0–2, which every device has and nobody can change.
const EU868_DEFAULT: [u32; 3] = [868_100_000, 868_300_000, 868_500_000];

/// The uplink channel plan as the device holds it: a frequency per channel index (0 = not
/// defined) and whether the channel is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    pub freq: Vec<u32>,
    pub enabled: Vec<bool>,
    /// (MinDR, MaxDR) each channel allows.
    pub dr_range: Vec<(u8, u8)>,
}

impl Channels {
    /// Indices of the enabled channels.
    pub fn enabled_indices(&self) -> Vec<usize> {
        (0..self.freq.len())
            .filter(|&i| self.enabled[i] && self.freq[i] != 0)
            .collect()
    }

    /// Whether an enabled channel allows `dr`.
    pub fn supports_dr(&self, dr: u8) -> bool {
        self.enabled_indices().iter().any(|&i| {
            let (lo, hi) = self.dr_range[i];
            (lo..=hi).contains(&dr)
        })
    }
}

/// US915 uplink channel `n` (0–63: 125 kHz from 902.3 MHz by 200 kHz; 64–71: 500 kHz from
/// 903.0 MHz by 1.6 MHz).
pub fn us915_uplink_freq(n: usize) -> u32 {
    if n < 64 {
        902_300_000 + 200_000 * n as u32
    } else {
        903_000_000 + 1_600_000 * (n as u32 - 64)
    }
}

/// The US915 uplink channel of a frequency, if it is one.
pub fn us915_uplink_channel(freq: u32) -> Option<usize> {
    (0..72).find(|&n| us915_uplink_freq(n) == freq)
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Eu868 => "EU868",
            Region::Us915 => "US915",
        }
    }

    /// The channel plan right after a join or reset: EU868 channels 0–2; US915 all 72 on.
    pub fn default_channels(self) -> Channels {
        match self {
            Region::Eu868 => {
                let mut freq = vec![0; 16];
                freq[..3].copy_from_slice(&EU868_DEFAULT);
                Channels {
                    enabled: freq.iter().map(|&f| f != 0).collect(),
                    freq,
                    dr_range: vec![(0, 5); 16],
                }
            }
            Region::Us915 => Channels {
                freq: (0..72).map(us915_uplink_freq).collect(),
                enabled: vec![true; 72],
                // 125 kHz channels DR0–3, 500 kHz channels DR4.
                dr_range: (0..72)
                    .map(|n| if n < 64 { (0, 3) } else { (4, 4) })
                    .collect(),
            },
        }
    }

    /// RX2 defaults (§3.3): (DR, frequency).
    pub fn rx2_default(self) -> (u8, u32) {
        match self {
            Region::Eu868 => (0, 869_525_000),
            Region::Us915 => (8, 923_300_000),
        }
    }

    pub fn max_rx1_dr_offset(self) -> u8 {
        match self {
            Region::Eu868 => 5,
            Region::Us915 => 3,
        }
    }

    pub fn valid_uplink_dr(self, dr: u8) -> bool {
        match self {
            Region::Eu868 => dr <= 7,
            Region::Us915 => dr <= 4,
        }
    }

    /// Downlink DRs a device can be told to receive RX2 on.
    pub fn valid_downlink_dr(self, dr: u8) -> bool {
        match self {
            Region::Eu868 => dr <= 7,
            Region::Us915 => (8..=13).contains(&dr),
        }
    }

    /// TXPower indices (EU868 0–7, US915 0–14).
    pub fn valid_tx_power(self, p: u8) -> bool {
        match self {
            Region::Eu868 => p <= 7,
            Region::Us915 => p <= 14,
        }
    }

    /// A frequency the device can receive on (RX2 / RXParamSetupReq): EU868 the
    /// 863–870 MHz band, US915 one of the eight 500 kHz downlink channels.
    pub fn valid_downlink_freq(self, f: u32) -> bool {
        match self {
            Region::Eu868 => (863_000_000..=870_000_000).contains(&f),
            Region::Us915 => (0..8).any(|k| f == 923_300_000 + 600_000 * k),
        }
    }

    /// RX1 data rate for an uplink DR and RX1DROffset (§3.2 tables).
    pub fn rx1_dr(self, up_dr: u8, offset: u8) -> Result<u8, String> {
        if !self.valid_uplink_dr(up_dr) || offset > self.max_rx1_dr_offset() {
            return Err(format!(
                "{}: no RX1 DR for uplink DR{up_dr} with RX1DROffset {offset}",
                self.name()
            ));
        }
        Ok(match self {
            Region::Eu868 => up_dr.saturating_sub(offset),
            Region::Us915 => {
                const TABLE: [[u8; 4]; 5] = [
                    [10, 9, 8, 8],
                    [11, 10, 9, 8],
                    [12, 11, 10, 9],
                    [13, 12, 11, 10],
                    [13, 13, 12, 11],
                ];
                TABLE[usize::from(up_dr)][usize::from(offset)]
            }
        })
    }

    /// RX1 frequency for an uplink frequency (§3.2): EU868 the same; US915 downlink channel
    /// (uplink channel mod 8), 923.3 + 0.6·k MHz.
    pub fn rx1_freq(self, up_freq: u32) -> Result<u32, String> {
        match self {
            Region::Eu868 => Ok(up_freq),
            Region::Us915 => us915_uplink_channel(up_freq)
                .map(|n| 923_300_000 + 600_000 * (n as u32 % 8))
                .ok_or_else(|| format!("US915: {up_freq} Hz is not an uplink channel")),
        }
    }

    /// Applies a join-accept CFList (§2.3): EU868 type 0 defines channels 3–7, US915 type 1
    /// replaces the channel mask.
    pub fn apply_cflist(self, ch: &mut Channels, cflist: &[u8; 16]) -> Result<(), String> {
        match (self, cflist[15]) {
            (Region::Eu868, 0) => {
                for i in 0..5 {
                    let b = &cflist[3 * i..3 * i + 3];
                    let f = u32::from_le_bytes([b[0], b[1], b[2], 0]) * 100;
                    ch.freq[3 + i] = f;
                    ch.enabled[3 + i] = f != 0;
                }
                Ok(())
            }
            (Region::Us915, 1) => {
                for (m, chunk) in cflist[..10].chunks(2).enumerate() {
                    let mask = u16::from_le_bytes([chunk[0], chunk[1]]);
                    for bit in 0..16 {
                        if let Some(e) = ch.enabled.get_mut(16 * m + bit) {
                            *e = mask >> bit & 1 == 1;
                        }
                    }
                }
                Ok(())
            }
            (r, t) => Err(format!("{}: CFListType {t} is not this region's", r.name())),
        }
    }

    /// Applies one LinkADRReq's (ChMask, ChMaskCntl) to `ch` (§5.2). `Err` is a channel-mask
    /// NACK (unknown ChMaskCntl, or a channel that is not defined).
    pub fn apply_ch_mask(self, ch: &mut Channels, mask: u16, cntl: u8) -> Result<(), String> {
        let bit = |i: usize| mask >> i & 1 == 1;
        match (self, cntl) {
            (Region::Eu868, 0) => {
                for i in 0..16 {
                    if bit(i) && ch.freq[i] == 0 {
                        return Err(format!("EU868: ChMask enables undefined channel {i}"));
                    }
                    ch.enabled[i] = bit(i);
                }
            }
            (Region::Eu868, 6) => {
                for i in 0..16 {
                    ch.enabled[i] = ch.freq[i] != 0;
                }
            }
            (Region::Us915, 0..=3) => {
                let base = 16 * usize::from(cntl);
                for i in 0..16 {
                    ch.enabled[base + i] = bit(i);
                }
            }
            (Region::Us915, 4) => (0..8).for_each(|i| ch.enabled[64 + i] = bit(i)),
            (Region::Us915, 5) => {
                for i in 0..8 {
                    (8 * i..8 * i + 8).for_each(|c| ch.enabled[c] = bit(i));
                    ch.enabled[64 + i] = bit(i);
                }
            }
            (Region::Us915, 6 | 7) => {
                (0..64).for_each(|c| ch.enabled[c] = cntl == 6);
                (0..8).for_each(|i| ch.enabled[64 + i] = bit(i));
            }
            (r, c) => return Err(format!("{}: ChMaskCntl {c} is RFU", r.name())),
        }
        Ok(())
    }
}

/// Seconds between the Unix epoch and the GPS epoch (1980-01-06T00:00:00Z).
pub const GPS_EPOCH_UNIX: u64 = 315_964_800;

/// Unix times at which GPS − UTC grew by one second (IERS leap seconds since 1980).
const LEAP_SECONDS_UNIX: [u64; 18] = [
    362_793_600,   // 1981-07-01
    394_329_600,   // 1982-07-01
    425_865_600,   // 1983-07-01
    489_024_000,   // 1985-07-01
    567_993_600,   // 1988-01-01
    631_152_000,   // 1990-01-01
    662_688_000,   // 1991-01-01
    709_948_800,   // 1992-07-01
    741_484_800,   // 1993-07-01
    773_020_800,   // 1994-07-01
    820_454_400,   // 1996-01-01
    867_715_200,   // 1997-07-01
    915_148_800,   // 1999-01-01
    1_136_073_600, // 2006-01-01
    1_230_768_000, // 2009-01-01
    1_341_100_800, // 2012-07-01
    1_435_708_800, // 2015-07-01
    1_483_228_800, // 2017-01-01
];

/// GPS − UTC in seconds at a Unix time.
pub fn leap_seconds_at(unix: u64) -> u64 {
    LEAP_SECONDS_UNIX.iter().filter(|&&t| unix >= t).count() as u64
}

/// Unix seconds → GPS seconds (DeviceTimeAns, end-devices.md §5.1).
pub fn gps_from_unix(unix: u64) -> u64 {
    unix - GPS_EPOCH_UNIX + leap_seconds_at(unix)
}

/// GPS seconds → Unix seconds.
pub fn unix_from_gps(gps: u64) -> u64 {
    let guess = gps + GPS_EPOCH_UNIX;
    let unix = guess - leap_seconds_at(guess);
    // One correction when a leap second lies between the guess and the answer.
    guess - leap_seconds_at(unix)
}
