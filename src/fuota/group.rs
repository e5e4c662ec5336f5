//! Multicast groups as an operator describes them (AWS's CreateMulticastGroup and
//! StartMulticastGroupSession, plus the address and keys AWS keeps to itself):
//! parsing keys and addresses, deriving the session keys from McKey (TS005), and
//! the rules a session must follow: a DR of the region, a frequency in its band, a
//! start in the future, and a timeout a device can be told (2^TimeOut seconds for
//! class C, 2^TimeOut beacon periods for class B). Pure.

use super::classb;
use super::keys::{mc_session_keys, Key, McSessionKeys};
use crate::lns::regions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlClass {
    ClassB,
    ClassC,
}

impl DlClass {
    pub fn parse(s: &str) -> Result<DlClass, String> {
        match s {
            "ClassB" => Ok(DlClass::ClassB),
            "ClassC" => Ok(DlClass::ClassC),
            other => Err(format!("LoRaWAN.DlClass {other:?} is not ClassB or ClassC")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DlClass::ClassB => "ClassB",
            DlClass::ClassC => "ClassC",
        }
    }
}

/// A 16-byte key from 32 hex digits.
pub fn parse_key(field: &str, hex_text: &str) -> Result<Key, String> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|_| format!("{field} must be 32 hex digits (a 16-byte AES key)"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "{field} is {} bytes; it must be 16 (32 hex digits)",
            b.len()
        )
    })
}

/// McAddr as 8 hex digits, written like a DevAddr (`01020304`).
pub fn parse_mc_addr(hex_text: &str) -> Result<u32, String> {
    let t = hex_text.trim();
    // `from_str_radix` alone would take a sign ("+1020304").
    if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "LoRaWAN.McAddr {t:?} must be 8 hex digits (a 4-byte DevAddr, e.g. \"01020304\")"
        ));
    }
    u32::from_str_radix(t, 16).map_err(|_| format!("LoRaWAN.McAddr {t:?} must be 8 hex digits"))
}

/// The group's session keys: from McKey, or given explicitly (both of them).
pub fn session_keys(
    mc_addr: u32,
    mc_key: Option<&str>,
    app_s_key: Option<&str>,
    nwk_s_key: Option<&str>,
) -> Result<(McSessionKeys, Option<Key>), String> {
    match (mc_key, app_s_key, nwk_s_key) {
        (Some(k), None, None) => {
            let k = parse_key("LoRaWAN.McKey", k)?;
            Ok((mc_session_keys(&k, mc_addr), Some(k)))
        }
        (None, Some(a), Some(n)) => Ok((
            McSessionKeys {
                mc_app_s_key: parse_key("LoRaWAN.McAppSKey", a)?,
                mc_nwk_s_key: parse_key("LoRaWAN.McNwkSKey", n)?,
            },
            None,
        )),
        (None, None, None) => {
            let k: Key = rand::random();
            Ok((mc_session_keys(&k, mc_addr), Some(k)))
        }
        (Some(_), _, _) => Err(
            "give either LoRaWAN.McKey (session keys are derived from it) or both McAppSKey and McNwkSKey, not both"
                .into(),
        ),
        _ => Err("McAppSKey and McNwkSKey go together; give both, or McKey instead".into()),
    }
}

/// What the operator asks for in `PUT /multicast-groups/{Id}/session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub dl_dr: u8,
    pub dl_freq: u32,
    pub start_us: i64,
    pub timeout_s: u32,
    pub ping_slot_period: Option<u32>,
}

/// A valid session with the values devices are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub dl_dr: u8,
    pub dl_freq: u32,
    /// Unix µs.
    pub start_us: i64,
    /// As given (AWS's SessionTimeout, seconds).
    pub timeout_s: u32,
    /// TS005 TimeOut: 2^t s (class C) or 2^t beacon periods (class B) ≥ timeout_s.
    pub time_out: u8,
    pub periodicity: Option<u8>,
}

impl Session {
    /// How long devices listen, as they compute it from TimeOut.
    pub fn window_us(&self) -> i64 {
        let unit = if self.periodicity.is_some() {
            classb::BEACON_PERIOD_US
        } else {
            1_000_000
        };
        (1i64 << self.time_out) * unit
    }

    pub fn end_us(&self) -> i64 {
        self.start_us + self.window_us()
    }
}

/// The TS005 session request (FPort 200) that tells a device of group slot
/// `mc_group_id` this session: McClassCSessionReq, or McClassBSessionReq with the
/// start rounded down to a beacon period. SessionTime is GPS seconds mod 2^32.
pub fn session_req(s: &Session, mc_group_id: u8) -> Vec<u8> {
    use lrwn::applayer::multicastsetup::v1 as ts005;
    let gps_s = crate::lorawan::gps::gps_from_unix_us(s.start_us).div_euclid(1_000_000);
    let payload = match s.periodicity {
        None => ts005::Payload::McClassCSessionReq(ts005::McClassCSessionReqPayload {
            mc_group_id_header: ts005::McClassCSessionReqPayloadMcGroupIdHeader { mc_group_id },
            session_time: gps_s as u32,
            session_time_out: ts005::McClassCSessionReqPayloadSessionTimeOut {
                time_out: s.time_out,
            },
            dl_frequ: s.dl_freq,
            dr: s.dl_dr,
        }),
        Some(periodicity) => ts005::Payload::McClassBSessionReq(ts005::McClassBSessionReqPayload {
            mc_group_id_header: ts005::McClassBSessionReqPayloadMcGroupIdHeader { mc_group_id },
            session_time: (gps_s - gps_s.rem_euclid(128)) as u32,
            time_out_periodicity: ts005::McClassBSessionReqPayloadTimeOutPeriodicity {
                time_out: s.time_out,
                periodicity,
            },
            dl_frequ: s.dl_freq,
            dr: s.dl_dr,
        }),
    };
    payload
        .to_vec()
        .expect("a valid session encodes (group id 0..=3, TimeOut ≤ 15, 24-bit frequency)")
}

/// Sessions may start at most this far ahead.
pub const MAX_START_AHEAD_US: i64 = 30 * 86_400 * 1_000_000;
/// A start this close to now still counts as now (clock skew between operator and server).
pub const START_GRACE_US: i64 = 5_000_000;

pub fn validate_session(
    region: &str,
    class: DlClass,
    r: &SessionRequest,
    now_us: i64,
) -> Result<Session, String> {
    if regions::dr(region, r.dl_dr).is_none() {
        return Err(format!(
            "LoRaWAN.DlDr {} is not a data rate of {region}",
            r.dl_dr
        ));
    }
    if !(100_000_000..=1_000_000_000).contains(&r.dl_freq) {
        return Err(format!(
            "LoRaWAN.DlFreq {} Hz is out of range 100000000..=1000000000 (it is in Hz, e.g. 869525000)",
            r.dl_freq
        ));
    }
    if let Some([lo, hi]) = regions::freq_range(region) {
        if !(lo..=hi).contains(&r.dl_freq) {
            return Err(format!(
                "LoRaWAN.DlFreq {} Hz is outside {region}'s band {lo}..={hi} Hz",
                r.dl_freq
            ));
        }
    }
    if r.start_us < now_us - START_GRACE_US {
        return Err("LoRaWAN.SessionStartTime is in the past; give a time in the future".into());
    }
    if r.start_us > now_us + MAX_START_AHEAD_US {
        return Err("LoRaWAN.SessionStartTime is more than 30 days ahead".into());
    }
    if !(60..=172_800).contains(&r.timeout_s) {
        return Err(format!(
            "LoRaWAN.SessionTimeout {} s is out of range 60..=172800",
            r.timeout_s
        ));
    }
    derive(class, r)
}

/// The values devices are told for a stored session (no checks against the clock).
pub fn derive(class: DlClass, r: &SessionRequest) -> Result<Session, String> {
    let (time_out, periodicity) = match class {
        DlClass::ClassC => {
            if r.ping_slot_period.is_some() {
                return Err(
                    "LoRaWAN.PingSlotPeriod is for ClassB groups only; leave it out".into(),
                );
            }
            let t = (0u8..=15)
                .find(|t| (1u64 << t) >= u64::from(r.timeout_s))
                .ok_or_else(|| format!(
                    "LoRaWAN.SessionTimeout {} s is longer than a class C device can be told (2^15 = 32768 s); use at most 32768",
                    r.timeout_s
                ))?;
            (t, None)
        }
        DlClass::ClassB => {
            let p = r.ping_slot_period.ok_or(
                "ClassB groups need LoRaWAN.PingSlotPeriod (32, 64, …, 4096 slots of 30 ms)",
            )?;
            let periodicity = classb::periodicity_for(p).ok_or_else(|| {
                format!("LoRaWAN.PingSlotPeriod {p} must be one of 32, 64, 128, 256, 512, 1024, 2048, 4096")
            })?;
            let t = (0u8..=15)
                .find(|t| (1u64 << t) * 128 >= u64::from(r.timeout_s))
                .unwrap_or(15);
            (t, Some(periodicity))
        }
    };
    Ok(Session {
        dl_dr: r.dl_dr,
        dl_freq: r.dl_freq,
        start_us: r.start_us,
        timeout_s: r.timeout_s,
        time_out,
        periodicity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    fn req() -> SessionRequest {
        SessionRequest {
            dl_dr: 5,
            dl_freq: 869_525_000,
            start_us: NOW + 60_000_000,
            timeout_s: 600,
            ping_slot_period: None,
        }
    }

    #[test]
    fn keys_come_from_mc_key_as_the_spec_derives_them() {
        let (k, mc) = session_keys(
            0x0102_0304,
            Some("0102030405060708090a0b0c0d0e0f10"),
            None,
            None,
        )
        .unwrap();
        assert!(mc.is_some());
        assert_eq!(
            hex::encode(k.mc_app_s_key),
            "95cb4518ee375606735bbacbdce837fa"
        );
        assert_eq!(
            hex::encode(k.mc_nwk_s_key),
            "c3f6b388bad6c000b23291ad52c11c7b"
        );
    }

    #[test]
    fn key_refusals() {
        let e = session_keys(1, Some("0102"), None, None).unwrap_err();
        assert!(e.contains("2 bytes; it must be 16"), "{e}");
        assert!(session_keys(1, Some("zz"), None, None).is_err());
        assert!(session_keys(1, None, Some(&"00".repeat(16)), None).is_err());
        assert!(session_keys(1, Some(&"00".repeat(16)), Some(&"00".repeat(16)), None).is_err());
        let (_, generated) = session_keys(1, None, None, None).unwrap();
        assert!(generated.is_some());
        assert!(parse_mc_addr("0102030").is_err());
        assert_eq!(parse_mc_addr("01020304"), Ok(0x0102_0304));
    }

    #[test]
    fn class_c_timeout_is_the_next_power_of_two() {
        let s = validate_session("EU868", DlClass::ClassC, &req(), NOW).unwrap();
        assert_eq!(s.time_out, 10);
        assert_eq!(s.window_us(), 1024 * 1_000_000);
        let mut r = req();
        r.timeout_s = 32_769;
        let e = validate_session("EU868", DlClass::ClassC, &r, NOW).unwrap_err();
        assert!(e.contains("32768"), "{e}");
    }

    #[test]
    fn class_b_needs_a_ping_slot_period_and_counts_beacons() {
        let mut r = req();
        assert!(validate_session("EU868", DlClass::ClassB, &r, NOW).is_err());
        r.ping_slot_period = Some(100);
        assert!(validate_session("EU868", DlClass::ClassB, &r, NOW).is_err());
        r.ping_slot_period = Some(128);
        r.timeout_s = 172_800;
        let s = validate_session("EU868", DlClass::ClassB, &r, NOW).unwrap();
        assert_eq!((s.periodicity, s.time_out), (Some(2), 11));
        assert!(s.window_us() >= 172_800_000_000);
    }

    #[test]
    fn session_requests_are_the_spec_examples() {
        // fuota.md §4.1: SessionTime 1400000000 (GPS s), 869.525 MHz.
        let start_us = crate::lorawan::gps::unix_from_gps_us(1_400_000_000_000_000);
        let c = Session {
            dl_dr: 5,
            dl_freq: 869_525_000,
            start_us,
            timeout_s: 512,
            time_out: 9,
            periodicity: None,
        };
        assert_eq!(hex::encode(session_req(&c, 0)), "0400004e725309d2ad8405");
        let b = Session {
            dl_dr: 3,
            time_out: 2,
            periodicity: Some(3),
            // 60 s into the beacon period: rounded down to its start.
            start_us: start_us + 60_000_000,
            ..c
        };
        assert_eq!(hex::encode(session_req(&b, 1)), "0501004e725332d2ad8403");
    }

    #[test]
    fn session_refusals_name_the_field() {
        type Case = (fn(&mut SessionRequest), &'static str);
        let cases: Vec<Case> = vec![
            (|r| r.dl_dr = 9, "DlDr"),
            (|r| r.dl_freq = 868, "in Hz"),
            (|r| r.dl_freq = 915_000_000, "outside EU868"),
            (|r| r.start_us = NOW - 60_000_000, "in the past"),
            (|r| r.start_us = NOW + 31 * 86_400_000_000, "30 days"),
            (|r| r.timeout_s = 59, "60..=172800"),
            (|r| r.ping_slot_period = Some(128), "ClassB groups only"),
        ];
        for (f, want) in cases {
            let mut r = req();
            f(&mut r);
            let e = validate_session("EU868", DlClass::ClassC, &r, NOW).unwrap_err();
            assert!(e.contains(want), "{e} should say {want}");
        }
    }
}
