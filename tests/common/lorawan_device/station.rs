//! The device's frames in station's terms (end-devices.md §1.6, §3.4): the `jreq`/`updf`
//! fields Basics Station 2.0.6 makes of a PHYPayload, the uplink metadata a class A answer
//! must echo, and the check of a class A `dnmsg` against the windows the device opened.

use serde_json::{json, Value};

use super::super::lns_station::json::{eui_dashes, from_hex, hex_upper, parse_eui};
use super::super::lns_station::{Jreq, SentUplink, Updf};
use super::frame::{self, DataHeader};
use super::{Device, Region, Windows};

/// What station reported with an uplink, as far as the class A answer depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UplinkMeta {
    pub dr: u8,
    pub freq: u32,
    pub xtime: i64,
    pub rctx: i64,
}

impl UplinkMeta {
    /// From the uplink JSON station sent (`DR`, `Freq`, `upinfo.xtime`, `upinfo.rctx`).
    pub fn from_json(text: &str) -> Result<UplinkMeta, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("uplink JSON: {e}"))?;
        let int = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("uplink JSON has no integer {p}: {text}"))
        };
        Ok(UplinkMeta {
            dr: u8::try_from(int("/DR")?).map_err(|e| e.to_string())?,
            freq: u32::try_from(int("/Freq")?).map_err(|e| e.to_string())?,
            xtime: int("/upinfo/xtime")?,
            rctx: int("/upinfo/rctx")?,
        })
    }

    /// From what the LNS station simulator returned for `send_phy`/`send_updf`/`send_jreq`.
    pub fn from_sent(sent: &SentUplink) -> UplinkMeta {
        UplinkMeta::from_json(&sent.json).expect("the simulator's own uplink JSON")
    }
}

/// The class A `dnmsg` timing fields a device expects (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassAWindows {
    pub rx_delay: u8,
    pub rx1_dr: u8,
    pub rx1_freq: u32,
    pub rx2_dr: u8,
    pub rx2_freq: u32,
    pub xtime: i64,
    pub rctx: i64,
}

/// RX1 from the uplink's DR/frequency and the window's offset; RX2 and the delay as opened.
pub fn expected_windows(
    region: Region,
    w: &Windows,
    up: &UplinkMeta,
) -> Result<ClassAWindows, String> {
    Ok(ClassAWindows {
        rx_delay: w.rx_delay,
        rx1_dr: region.rx1_dr(up.dr, w.rx1_dr_offset)?,
        rx1_freq: region.rx1_freq(up.freq)?,
        rx2_dr: w.rx2_dr,
        rx2_freq: w.rx2_freq,
        xtime: up.xtime,
        rctx: up.rctx,
    })
}

/// Compares a `dnmsg` with the expected windows; every mismatch is named in the error.
/// RX1 and RX2 must both be present (spec §3.7: both pairs unless RX1 is out of reach,
/// which does not happen on loopback).
pub fn check_class_a_dnmsg(exp: &ClassAWindows, dev_eui: u64, dnmsg: &Value) -> Result<(), String> {
    let mut bad = Vec::new();
    let mut want = |key: &str, expected: Value| {
        if dnmsg.get(key) != Some(&expected) {
            bad.push(format!(
                "{key} is {:?}, the device expects {expected}",
                dnmsg.get(key)
            ));
        }
    };
    want("msgtype", json!("dnmsg"));
    want("dC", json!(0));
    want("RxDelay", json!(exp.rx_delay));
    want("RX1DR", json!(exp.rx1_dr));
    want("RX1Freq", json!(exp.rx1_freq));
    want("RX2DR", json!(exp.rx2_dr));
    want("RX2Freq", json!(exp.rx2_freq));
    want("xtime", json!(exp.xtime));
    want("rctx", json!(exp.rctx));
    let eui = dnmsg.get("DevEui").or_else(|| dnmsg.get("DevEUI"));
    if eui.and_then(parse_eui) != Some(dev_eui) {
        bad.push(format!("DevEui is {eui:?}, the device is {dev_eui:016x}"));
    }
    if dnmsg
        .get("pdu")
        .and_then(Value::as_str)
        .and_then(from_hex)
        .is_none()
    {
        bad.push(format!("pdu is {:?}, not hex", dnmsg.get("pdu")));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("class A dnmsg {dnmsg}: {}", bad.join("; ")))
    }
}

/// The `pdu` of a `dnmsg` as bytes.
pub fn pdu_of(dnmsg: &Value) -> Result<Vec<u8>, String> {
    dnmsg
        .get("pdu")
        .and_then(Value::as_str)
        .and_then(from_hex)
        .ok_or_else(|| format!("dnmsg without a hex pdu: {dnmsg}"))
}

impl Device {
    /// What the class A `dnmsg` answering the last transmission must say, given what
    /// station reported with it: join-request → RxDelay 5, RX1 at offset 0, RX2 default;
    /// data → the session's RxDelay, RX1DROffset and RX2 as they were at send time.
    pub fn expected_class_a(&self, up: &UplinkMeta) -> Result<ClassAWindows, String> {
        let w = self
            .windows()
            .ok_or("the device has not transmitted: no class A windows")?;
        expected_windows(self.region, &w, up)
    }

    /// Checks a class A `dnmsg` for this device's last uplink: the timing fields (RxDelay,
    /// RX1DR/RX1Freq, RX2DR/RX2Freq, xtime/rctx echoed), DevEui, and that the `pdu` is the
    /// kind of frame the device waits for (join-accept, or a data downlink to its DevAddr).
    pub fn check_class_a_dnmsg(&self, up: &UplinkMeta, dnmsg: &Value) -> Result<(), String> {
        let exp = self.expected_class_a(up)?;
        check_class_a_dnmsg(&exp, self.dev_eui, dnmsg)?;
        let pdu = pdu_of(dnmsg)?;
        if self.windows().is_some_and(|w| w.join) {
            if pdu.first() != Some(&frame::MHDR_JOIN_ACCEPT) || !matches!(pdu.len(), 17 | 33) {
                return Err(format!("pdu {} is not a join-accept", hex_upper(&pdu)));
            }
        } else {
            let h = DataHeader::parse(&pdu)?;
            let addr = self.session()?.dev_addr;
            if frame::data_dir(pdu[0])? != super::Dir::Down || h.dev_addr != addr {
                return Err(format!(
                    "pdu {} is not a data downlink to DevAddr {addr:08x}",
                    hex_upper(&pdu)
                ));
            }
        }
        Ok(())
    }
}

/// The fields station 2.0.6 sends for a PHYPayload (lora.c, §1.6): a `jreq` or an `updf`
/// object with DevAddr/MIC as signed int32, hex in upper case, FPort −1 when absent.
pub fn station_fields(phy: &[u8]) -> Result<Value, String> {
    match phy.first().map(|m| m >> 5) {
        Some(0) => {
            let j = to_jreq(phy)?;
            Ok(json!({
                "msgtype": "jreq",
                "MHdr": j.mhdr,
                "JoinEui": eui_dashes(j.join_eui),
                "DevEui": eui_dashes(j.dev_eui),
                "DevNonce": j.dev_nonce,
                "MIC": j.mic as i32,
            }))
        }
        Some(2 | 4) => {
            let u = to_updf(phy)?;
            Ok(json!({
                "msgtype": "updf",
                "MHdr": u.mhdr,
                "DevAddr": u.dev_addr as i32,
                "FCtrl": u.fctrl,
                "FCnt": u.fcnt,
                "FOpts": hex_upper(&u.fopts),
                "FPort": u.fport.map_or(-1, i64::from),
                "FRMPayload": hex_upper(&u.frm_payload),
                "MIC": u.mic as i32,
            }))
        }
        _ => Err(format!(
            "{} is not a join-request or data uplink",
            hex_upper(phy)
        )),
    }
}

/// A join-request split into station's `jreq` fields.
pub fn to_jreq(phy: &[u8]) -> Result<Jreq, String> {
    if phy.len() != 23 || phy[0] != frame::MHDR_JOIN_REQUEST {
        return Err(format!("{} is not a 23-octet join-request", hex_upper(phy)));
    }
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 octets"));
    Ok(Jreq {
        mhdr: phy[0],
        join_eui: le64(&phy[1..9]),
        dev_eui: le64(&phy[9..17]),
        dev_nonce: u16::from_le_bytes([phy[17], phy[18]]),
        mic: u32::from_le_bytes(phy[19..23].try_into().expect("4 octets")),
    })
}

/// A data uplink split into station's `updf` fields.
pub fn to_updf(phy: &[u8]) -> Result<Updf, String> {
    let h = DataHeader::parse(phy)?;
    if frame::data_dir(phy[0])? != super::Dir::Up {
        return Err(format!("MHDR {:#04x} is not a data uplink", phy[0]));
    }
    let fopts_end = 8 + usize::from(h.fctrl & 0x0f);
    let rest = &phy[fopts_end..phy.len() - 4];
    Ok(Updf {
        mhdr: phy[0],
        dev_addr: h.dev_addr,
        fctrl: h.fctrl,
        fcnt: h.fcnt16,
        fopts: phy[8..fopts_end].to_vec(),
        fport: rest.first().copied(),
        frm_payload: rest.get(1..).unwrap_or_default().to_vec(),
        mic: u32::from_le_bytes(phy[phy.len() - 4..].try_into().expect("4 octets")),
    })
}
