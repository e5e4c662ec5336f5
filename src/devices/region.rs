//! Regional facts the device face needs beyond router_config (end-devices.md §2.3,
//! §3, §5.2): RX1 data rate and frequency from the uplink, RX2 defaults, the
//! downlink payload limit, the CFList a join-accept carries and the LinkADRReq
//! block that keeps a US915 device on its gateways' sub-band. EU868 and US915
//! only, the regions FUOTA plans for. Pure.

use crate::fuota::plan::payload_limit;

/// The regions that can hold end devices.
pub const DEVICE_REGIONS: &[&str] = &["EU868", "US915"];

/// RX1 data rate for an uplink at `up_dr` with the session's RX1DROffset.
pub fn rx1_dr(region: &str, up_dr: u8, offset: u8) -> Option<u8> {
    match region {
        "EU868" if up_dr <= 7 && offset <= 5 => Some(up_dr.saturating_sub(offset)),
        "US915" if up_dr <= 4 && offset <= 3 => {
            // Table 17 of RP 1.0.3A: DR n maps to DR 10 + n − offset, within 8..=13.
            Some((10 + up_dr).saturating_sub(offset).clamp(8, 13))
        }
        _ => None,
    }
}

/// RX1 frequency for an uplink on `up_freq` (Hz).
pub fn rx1_freq(region: &str, up_freq: u32) -> Option<u32> {
    match region {
        "EU868" => Some(up_freq),
        "US915" => {
            let channel = match up_freq {
                902_300_000..=914_900_000 if (up_freq - 902_300_000) % 200_000 == 0 => {
                    (up_freq - 902_300_000) / 200_000
                }
                903_000_000..=914_200_000 if (up_freq - 903_000_000) % 1_600_000 == 0 => {
                    64 + (up_freq - 903_000_000) / 1_600_000
                }
                _ => return None,
            };
            Some(923_300_000 + 600_000 * (channel % 8))
        }
        _ => None,
    }
}

/// Default RX2 (DR, Hz).
pub fn rx2_default(region: &str) -> Option<(u8, u32)> {
    match region {
        "EU868" => Some((0, 869_525_000)),
        "US915" => Some((8, 923_300_000)),
        _ => None,
    }
}

/// Whether a device may send an uplink at `dr` on `freq` in `region`.
pub fn uplink_ok(region: &str, dr: u8, freq: u32) -> bool {
    match region {
        "EU868" => dr <= 7 && (863_000_000..=870_000_000).contains(&freq),
        "US915" => dr <= 4 && rx1_freq(region, freq).is_some(),
        _ => false,
    }
}

/// Largest MACPayload-free FRMPayload at a downlink DR, less what FOpts take.
pub fn max_frm_payload(region: &str, dr: u8, fopts_len: usize) -> Option<usize> {
    payload_limit(region, dr).map(|n| n.saturating_sub(fopts_len))
}

/// The EU868 extra channels a join-accept offers (end-devices.md §2.3): 867.1 to
/// 867.9 MHz, the usual eight-channel plan with the three default channels.
pub const EU868_EXTRA_CHANNELS: [u32; 5] = [
    867_100_000,
    867_300_000,
    867_500_000,
    867_700_000,
    867_900_000,
];

/// The 16-byte CFList of a join-accept: EU868 type 0 (extra channels), US915 type 1
/// (the sub-band's mask) for devices from 1.0.3 on; `None` where none is sent.
pub fn cflist(region: &str, mac_version: &str, sub_band: u8) -> Option<[u8; 16]> {
    let mut c = [0u8; 16];
    match region {
        "EU868" => {
            for (i, f) in EU868_EXTRA_CHANNELS.iter().enumerate() {
                c[3 * i..3 * i + 3].copy_from_slice(&(f / 100).to_le_bytes()[..3]);
            }
            Some(c)
        }
        "US915" if mac_version != "1.0.2" => {
            let (mask, mask4) = us915_masks(sub_band);
            for (i, m) in mask.iter().enumerate() {
                c[2 * i..2 * i + 2].copy_from_slice(&m.to_le_bytes());
            }
            c[8..10].copy_from_slice(&mask4.to_le_bytes());
            c[15] = 1;
            Some(c)
        }
        _ => None,
    }
}

/// US915 channel masks of sub-band `sb` (1..=8): four 16-bit masks for the 125 kHz
/// channels 0..63 and the 500 kHz mask for channels 64..71.
fn us915_masks(sb: u8) -> ([u16; 4], u16) {
    let sb = sb.clamp(1, 8) - 1;
    let mut m = [0u16; 4];
    m[usize::from(sb / 2)] = 0xff << (8 * (sb % 2));
    (m, 1 << sb)
}

/// The LinkADRReq block (raw MAC bytes) that restricts a US915 device to sub-band
/// `sb`, keeping DR `dr`, TXPower 0 and NbTrans 1 (end-devices.md §5.2): one
/// ChMaskCntl 5 command from RP 1.0.3 on; for 1.0.2 the 7 + 0..3 pair.
pub fn us915_sub_band_link_adr(mac_version: &str, sb: u8, dr: u8) -> Vec<u8> {
    let sb0 = sb.clamp(1, 8) - 1;
    let dr_pow = (dr & 0x0f) << 4;
    if mac_version == "1.0.2" {
        let (mask, _) = us915_masks(sb);
        let cntl = sb0 / 2;
        // DR, TXPower and NbTrans of a block come from its last command.
        let mut v = vec![0x03, 0x00];
        v.extend_from_slice(&(1u16 << sb0).to_le_bytes());
        v.push(0x70);
        v.extend_from_slice(&[0x03, dr_pow]);
        v.extend_from_slice(&mask[usize::from(cntl)].to_le_bytes());
        v.push((cntl << 4) | 1);
        v
    } else {
        let mut v = vec![0x03, dr_pow];
        v.extend_from_slice(&(1u16 << sb0).to_le_bytes());
        v.push(0x51);
        v
    }
}

/// SNR a spreading factor needs at the demodulator (dB), for LinkCheckAns margins
/// and choosing the downlink gateway (ChirpStack's table).
pub fn required_snr(sf: u8) -> f64 {
    match sf {
        7 => -7.5,
        8 => -10.0,
        9 => -12.5,
        10 => -15.0,
        11 => -17.5,
        _ => -20.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../tests/vectors/lorawan/rx_windows.json")).unwrap()
    }

    #[test]
    fn rx1_tables_match_the_vectors() {
        let v = vectors();
        for (region, key) in [("EU868", "eu868_rx1_dr"), ("US915", "us915_rx1_dr")] {
            for row in v[key].as_array().unwrap() {
                let r: Vec<u8> = row
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u8)
                    .collect();
                assert_eq!(rx1_dr(region, r[0], r[1]), Some(r[2]), "{region} {row}");
            }
        }
        for row in v["us915_rx1_freq"].as_array().unwrap() {
            let up = row[0].as_u64().unwrap() as u32;
            assert_eq!(
                rx1_freq("US915", up),
                Some(row[1].as_u64().unwrap() as u32),
                "{row}"
            );
        }
    }

    #[test]
    fn cflists_match_the_join_vectors() {
        let j: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/lorawan/join.json")).unwrap();
        let text = j.to_string();
        let eu = hex::encode(cflist("EU868", "1.0.4", 0).unwrap());
        assert_eq!(eu, "184f84e85684b85e84886684586e8400");
        let us = hex::encode(cflist("US915", "1.0.3", 2).unwrap());
        assert_eq!(us, "00ff0000000000000200000000000001");
        assert!(text.contains(&eu) && text.contains(&us));
        assert_eq!(cflist("US915", "1.0.2", 2), None);
    }

    #[test]
    fn sub_band_2_link_adr_matches_the_spec() {
        assert_eq!(
            hex::encode(us915_sub_band_link_adr("1.0.3", 2, 3)),
            "0330020051"
        );
        assert_eq!(
            hex::encode(us915_sub_band_link_adr("1.0.2", 2, 3)),
            "0300020070033000ff01"
        );
    }
}
