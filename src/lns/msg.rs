//! The LNS messages, parsed once into a closed enum (lns-protocol.md §3–§6):
//! `version`, the uplinks (`updf`, `jreq`/`rejoin`, `propdf`), `dntxed`,
//! `timesync` and the `getxtime` reply. An unknown `msgtype` is its own variant,
//! to be logged, never fatal. Also the builders for what the server sends.
//! Pure: no I/O, no clock (times are passed in). Error texts quote the client only
//! escaped and capped (`logguard`), so they may go into logs as they are.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::logguard::{clip, escaped};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Version {
    pub station: Option<String>,
    pub firmware: Option<String>,
    pub package: Option<String>,
    pub model: Option<String>,
    pub protocol: Option<i64>,
    pub features: Option<String>,
}

/// Radio metadata every uplink ends with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UpInfo {
    pub rctx: i64,
    pub xtime: i64,
    #[serde(default)]
    pub gpstime: i64,
    #[serde(default)]
    pub fts: i64,
    pub rssi: f64,
    pub snr: f64,
    #[serde(default)]
    pub rxtime: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RadioMeta {
    pub ref_time: f64,
    pub dr: u8,
    pub freq: u32,
    pub up: UpInfo,
}

/// A received frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Frame {
    Data {
        mhdr: u8,
        dev_addr: u32,
        fctrl: u8,
        fcnt: u16,
        fopts: Vec<u8>,
        fport: Option<u8>,
        payload: Vec<u8>,
        mic: u32,
    },
    Join {
        mhdr: u8,
        join_eui: u64,
        dev_eui: u64,
        dev_nonce: u16,
        mic: u32,
    },
    Proprietary {
        phy_payload: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uplink {
    pub frame: Frame,
    pub radio: RadioMeta,
}

/// Station's confirmation that a downlink started transmitting.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Dntxed {
    pub diid: i64,
    #[serde(rename = "DR", default)]
    pub dr: Option<u8>,
    #[serde(rename = "Freq", default)]
    pub freq: Option<u32>,
    #[serde(default)]
    pub rctx: Option<i64>,
    #[serde(default)]
    pub xtime: Option<i64>,
    #[serde(default)]
    pub txtime: Option<f64>,
    #[serde(default)]
    pub gpstime: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GetxtimeReply {
    #[serde(rename = "MuxTime", default)]
    pub mux_time: f64,
    #[serde(default)]
    pub ustime: f64,
    #[serde(rename = "UTCtime", default)]
    pub utc_time: f64,
    pub xtimes: Vec<i64>,
}

/// Every message a gateway sends, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Version(Version),
    Uplink(Box<Uplink>),
    Dntxed(Dntxed),
    /// A PPS gateway asking for GPS time (`txtime` in µs of its monotonic clock).
    Timesync {
        txtime: i64,
    },
    Getxtime(GetxtimeReply),
    Unknown(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MsgError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("no msgtype")]
    NoType,
    #[error("{msgtype}: {message}")]
    Field { msgtype: String, message: String },
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("bad hex {}: {e}", clip(s)))
}

/// Station writes EUIs as `HH-HH-...`; accept that, or plain hex, or an integer.
fn eui_field(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("bad EUI {n}")),
        Value::String(s) => crate::eui::Eui::from_json(&Value::String(s.clone()))
            .map(|e| e.0)
            .map_err(|e| e.to_string()),
        other => Err(format!("bad EUI {other}")),
    }
}

fn radio(v: &Value) -> Result<RadioMeta, String> {
    Ok(RadioMeta {
        ref_time: v["RefTime"].as_f64().unwrap_or(0.0),
        dr: v["DR"]
            .as_u64()
            .and_then(|d| u8::try_from(d).ok())
            .ok_or("DR missing or not 0..255")?,
        freq: v["Freq"]
            .as_u64()
            .and_then(|f| u32::try_from(f).ok())
            .ok_or("Freq missing or not a u32")?,
        up: UpInfo::deserialize(&v["upinfo"]).map_err(|e| format!("upinfo: {e}"))?,
    })
}

fn int<T: TryFrom<i64>>(v: &Value, key: &str) -> Result<T, String> {
    v[key]
        .as_i64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{key} missing or out of range"))
}

fn frame(msgtype: &str, v: &Value) -> Result<Frame, String> {
    match msgtype {
        "updf" => Ok(Frame::Data {
            mhdr: int(v, "MHdr")?,
            // Station writes DevAddr and MIC as signed 32-bit integers.
            dev_addr: int::<i32>(v, "DevAddr")? as u32,
            fctrl: int(v, "FCtrl")?,
            fcnt: int(v, "FCnt")?,
            fopts: hex(v["FOpts"].as_str().unwrap_or(""))?,
            fport: match int::<i32>(v, "FPort")? {
                -1 => None,
                p => Some(u8::try_from(p).map_err(|_| "FPort out of range")?),
            },
            payload: hex(v["FRMPayload"].as_str().unwrap_or(""))?,
            mic: int::<i32>(v, "MIC")? as u32,
        }),
        "jreq" | "rejoin" => Ok(Frame::Join {
            mhdr: int(v, "MHdr")?,
            join_eui: eui_field(
                v.get("JoinEui")
                    .or(v.get("JoinEUI"))
                    .unwrap_or(&Value::Null),
            )?,
            dev_eui: eui_field(v.get("DevEui").or(v.get("DevEUI")).unwrap_or(&Value::Null))?,
            dev_nonce: int(v, "DevNonce")?,
            mic: int::<i32>(v, "MIC")? as u32,
        }),
        "propdf" => Ok(Frame::Proprietary {
            phy_payload: hex(v["FRMPayload"].as_str().ok_or("FRMPayload missing")?)?,
        }),
        _ => unreachable!("only called for uplink types"),
    }
}

pub fn parse(text: &str) -> Result<Incoming, MsgError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| MsgError::Json(escaped(&e.to_string())))?;
    let msgtype = v
        .get("msgtype")
        .and_then(Value::as_str)
        .ok_or(MsgError::NoType)?
        .to_string();
    // An error's text may quote the client: it is escaped and capped here, so
    // every `MsgError` is safe to log as it is.
    let field = |message: String| MsgError::Field {
        msgtype: clip(&msgtype),
        message: escaped(&message),
    };
    Ok(match msgtype.as_str() {
        "version" => Incoming::Version(Version::deserialize(&v).map_err(|e| field(e.to_string()))?),
        "updf" | "jreq" | "rejoin" | "propdf" => Incoming::Uplink(Box::new(Uplink {
            frame: frame(&msgtype, &v).map_err(field)?,
            radio: radio(&v).map_err(field)?,
        })),
        "dntxed" => Incoming::Dntxed(Dntxed::deserialize(&v).map_err(|e| field(e.to_string()))?),
        "timesync" => Incoming::Timesync {
            txtime: v["txtime"]
                .as_i64()
                .ok_or_else(|| field("txtime missing".into()))?,
        },
        "getxtime" => {
            Incoming::Getxtime(GetxtimeReply::deserialize(&v).map_err(|e| field(e.to_string()))?)
        }
        _ => Incoming::Unknown(msgtype),
    })
}

/// The reply to a PPS gateway's timesync request.
pub fn timesync_reply(txtime: i64, gps_us: i64, mux_time: f64) -> String {
    json!({"msgtype": "timesync", "txtime": txtime, "gpstime": gps_us, "MuxTime": mux_time})
        .to_string()
}

/// Tells a gateway without PPS which GPS time a concentrator time is.
pub fn timesync_push(xtime: i64, gps_us: i64) -> String {
    json!({"msgtype": "timesync", "xtime": xtime, "gpstime": gps_us}).to_string()
}

pub fn getxtime_request(mux_time: f64) -> String {
    json!({"msgtype": "getxtime", "MuxTime": mux_time}).to_string()
}

/// Station's EUI text form, `HH-HH-HH-HH-HH-HH-HH-HH`.
pub fn eui_dashed(eui: u64) -> String {
    let b = eui.to_be_bytes();
    b.iter()
        .map(|x| format!("{x:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_uplink() {
        let text = r#"{"msgtype":"updf","MHdr":64,"DevAddr":1,"FCtrl":0,"FCnt":1,"FOpts":"","FPort":1,"FRMPayload":"6869","MIC":1,"RefTime":1732443302.648749,"DR":5,"Freq":868100000,"upinfo":{"rctx":0,"xtime":50946971055566174,"gpstime":0,"fts":-1,"rssi":-50,"snr":9,"rxtime":1732443302.648751}}"#;
        let Incoming::Uplink(u) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(
            u.frame,
            Frame::Data {
                mhdr: 64,
                dev_addr: 1,
                fctrl: 0,
                fcnt: 1,
                fopts: vec![],
                fport: Some(1),
                payload: b"hi".to_vec(),
                mic: 1
            }
        );
        assert_eq!(u.radio.dr, 5);
        assert_eq!(u.radio.freq, 868_100_000);
        assert_eq!(u.radio.up.xtime, 50_946_971_055_566_174);
        assert_eq!(u.radio.up.rssi, -50.0);
    }

    #[test]
    fn signed_fields_and_missing_port() {
        let text = r#"{"msgtype":"updf","MHdr":128,"DevAddr":-1,"FCtrl":0,"FCnt":65535,"FOpts":"0A","FPort":-1,"FRMPayload":"","MIC":-2,"DR":0,"Freq":868100000,"upinfo":{"rctx":0,"xtime":1,"rssi":-120,"snr":-7.5}}"#;
        let Incoming::Uplink(u) = parse(text).unwrap() else {
            panic!()
        };
        let Frame::Data {
            dev_addr,
            fport,
            mic,
            fopts,
            ..
        } = u.frame
        else {
            panic!()
        };
        assert_eq!(
            (dev_addr, fport, mic, fopts),
            (0xffff_ffff, None, 0xffff_fffe, vec![0x0a])
        );
    }

    #[test]
    fn join_request_and_dntxed_and_getxtime() {
        let j = r#"{"msgtype":"jreq","MHdr":0,"JoinEui":"00-00-00-00-00-00-00-01","DevEui":"70-B3-D5-7E-D0-00-00-01","DevNonce":7,"MIC":5,"DR":5,"Freq":868100000,"upinfo":{"rctx":0,"xtime":1,"rssi":-50,"snr":9}}"#;
        let Incoming::Uplink(u) = parse(j).unwrap() else {
            panic!()
        };
        assert!(matches!(
            u.frame,
            Frame::Join {
                join_eui: 1,
                dev_eui: 0x70b3_d57e_d000_0001,
                dev_nonce: 7,
                ..
            }
        ));
        let d = r#"{"msgtype":"dntxed","seqno":90001,"diid":90001,"DR":0,"Freq":869525000,"DevEui":"00-00-00-00-00-00-F0-01","rctx":0,"xtime":6473924474549164,"txtime":1234.567890,"gpstime":0}"#;
        let Incoming::Dntxed(d) = parse(d).unwrap() else {
            panic!()
        };
        assert_eq!(
            (d.diid, d.freq, d.xtime),
            (90001, Some(869_525_000), Some(6_473_924_474_549_164))
        );
        let g = r#"{"msgtype":"getxtime","MuxTime":1732443310.0,"ustime":1234.567890,"UTCtime":1732443310.013456,"xtimes":[6473924474549164,0,0,0]}"#;
        let Incoming::Getxtime(g) = parse(g).unwrap() else {
            panic!()
        };
        assert_eq!(g.xtimes[0], 6_473_924_474_549_164);
    }

    #[test]
    fn unknown_and_malformed_messages() {
        assert_eq!(
            parse(r#"{"msgtype":"rmtsh","x":1}"#).unwrap(),
            Incoming::Unknown("rmtsh".into())
        );
        assert_eq!(parse(r#"{"x":1}"#).unwrap_err(), MsgError::NoType);
        assert!(matches!(parse("nope"), Err(MsgError::Json(_))));
        let e = parse(r#"{"msgtype":"updf","MHdr":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(r#""updf":"#), "{e}");
        assert!(parse(r#"{"msgtype":"timesync"}"#).is_err());
        // Errors quote the client escaped and clipped: safe to log as they are.
        let e = parse(&format!(
            r#"{{"msgtype":"updf","MHdr":64,"DevAddr":1,"FCtrl":0,"FCnt":1,"FOpts":"{}"}}"#,
            "z\\n".repeat(5000)
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bad hex") && e.len() < 400 && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn eui_text_like_station() {
        assert_eq!(eui_dashed(0xf001), "00-00-00-00-00-00-F0-01");
    }
}
