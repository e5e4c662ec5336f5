//! TS006 firmware management (port 203, TS006-1.0.0; end-devices.md §6.4, vectors
//! `vectors/lorawan/ts006.json`): ask a device whether it holds a valid new image,
//! have it reboot into it, and read the firmware version it runs afterwards — the
//! proof a FUOTA task needs. Unicast only. `lrwn` has no TS006, so the layouts are
//! written here from the spec's tables (all fields little-endian).

use super::{split, BadAnswer};

pub const PACKAGE_IDENTIFIER: u8 = 4;

/// DevUpgradeImageAns's UpImageStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    NoImage,
    Corrupted,
    OtherHardware,
    /// A valid image is stored; it runs this version after the next reboot.
    Ready {
        next_version: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    PackageVersionAns { package: u8, version: u8 },
    DevVersionAns { fw: u32, hw: u32 },
    DevRebootTimeAns { seconds: u32 },
    DevRebootCountdownAns { seconds: u32 },
    DevUpgradeImageAns(ImageStatus),
    DevDeleteImageAns { status: u8 },
}

fn len(cid: u8, b: &[u8]) -> Option<usize> {
    match cid {
        0x00 => Some(3),
        0x01 => Some(9),
        0x02 => Some(5),
        0x03 => Some(4),
        // nextFirmwareVersion follows only for status 3.
        0x04 => Some(if b.get(1) == Some(&3) { 6 } else { 2 }),
        0x05 => Some(2),
        _ => None,
    }
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub fn parse(b: &[u8]) -> Vec<Result<Up, BadAnswer>> {
    split(b, len)
        .into_iter()
        .map(|c| {
            let c = c?;
            Ok(match c[0] {
                0x00 => Up::PackageVersionAns {
                    package: c[1],
                    version: c[2],
                },
                0x01 => Up::DevVersionAns {
                    fw: u32_le(&c[1..5]),
                    hw: u32_le(&c[5..9]),
                },
                0x02 => Up::DevRebootTimeAns {
                    seconds: u32_le(&c[1..5]),
                },
                0x03 => Up::DevRebootCountdownAns {
                    seconds: u32::from_le_bytes([c[1], c[2], c[3], 0]),
                },
                0x04 => Up::DevUpgradeImageAns(match c[1] {
                    0 => ImageStatus::NoImage,
                    1 => ImageStatus::Corrupted,
                    2 => ImageStatus::OtherHardware,
                    3 => ImageStatus::Ready {
                        next_version: u32_le(&c[2..6]),
                    },
                    s => {
                        return Err(BadAnswer::Undecodable(format!(
                            "DevUpgradeImageAns status {s} is not 0 to 3"
                        )))
                    }
                }),
                0x05 => Up::DevDeleteImageAns { status: c[1] },
                cid => return Err(BadAnswer::UnknownCid(cid)),
            })
        })
        .collect()
}

pub fn dev_version_req() -> Vec<u8> {
    vec![0x01]
}

/// DevRebootCountdownReq: reboot in `seconds` (0 = as soon as possible; at most
/// 0xFFFFFE, 0xFFFFFF cancels).
pub fn reboot_countdown_req(seconds: u32) -> Vec<u8> {
    let s = seconds.min(0xff_fffe).to_le_bytes();
    vec![0x03, s[0], s[1], s[2]]
}

/// DevRebootTimeReq: reboot at GPS second `gps_s` (0 = as soon as possible).
pub fn reboot_time_req(gps_s: u32) -> Vec<u8> {
    let mut v = vec![0x02];
    v.extend_from_slice(&gps_s.to_le_bytes());
    v
}

pub fn upgrade_image_req() -> Vec<u8> {
    vec![0x04]
}

/// Parses `0x…` hex or decimal: the form `ExpectedFirmwareVersion` takes as a string.
pub fn parse_version(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| {
        format!("ExpectedFirmwareVersion {t:?} is not a 32-bit number (give 33619968 or \"0x02010000\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/lorawan/ts006.json"
    ));

    fn field(v: &Value, k: &str) -> u32 {
        match &v["fields"][k] {
            Value::String(s) => parse_version(s).unwrap(),
            n => n.as_u64().unwrap() as u32,
        }
    }

    #[test]
    fn every_vector_encodes_or_decodes() {
        let v: Value = serde_json::from_str(VECTORS).unwrap();
        let mut seen = 0;
        for c in v["commands"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let bytes = hex::decode(c["hex"].as_str().unwrap()).unwrap();
            if c["dir"] == "down" {
                let built = match name.split(' ').next().unwrap() {
                    "DevVersionReq" => dev_version_req(),
                    "DevUpgradeImageReq" => upgrade_image_req(),
                    "DevRebootTimeReq" => reboot_time_req(field(c, "RebootTime")),
                    "DevRebootCountdownReq" => {
                        let s = field(c, "Countdown");
                        if s == 0xff_ffff {
                            vec![0x03, 0xff, 0xff, 0xff]
                        } else {
                            reboot_countdown_req(s)
                        }
                    }
                    _ => continue,
                };
                assert_eq!(built, bytes, "{name}");
                seen += 1;
            } else {
                let got = parse(&bytes);
                assert_eq!(got.len(), 1, "{name}");
                let up = got[0].clone().unwrap_or_else(|e| panic!("{name}: {e}"));
                match up {
                    Up::DevVersionAns { fw, hw } => {
                        assert_eq!(fw, field(c, "FWversion"), "{name}");
                        assert_eq!(hw, field(c, "HWversion"), "{name}");
                    }
                    Up::DevUpgradeImageAns(ImageStatus::Ready { next_version }) => {
                        assert_eq!(next_version, field(c, "nextFirmwareVersion"), "{name}")
                    }
                    _ => {}
                }
                seen += 1;
            }
        }
        assert!(seen >= 8, "only {seen} vectors checked");
    }
}
