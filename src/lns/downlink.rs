//! Downlinks as the rest of the server asks for them, and the `dnmsg` station
//! reads (lns-protocol.md §5). Class A answers an uplink (its xtime and rctx);
//! class C goes out as soon as possible on the RX2 parameters, or at an exact
//! concentrator time or GPS time; class B at a ping slot's GPS time. The outcome
//! model follows station: only `dntxed` says a frame went out, and silence past
//! the deadline means it was dropped. Pure: the session supplies times.

use std::time::Duration;

use serde_json::{json, Value};

use super::msg::{eui_dashed, Dntxed};
use crate::lorawan::airtime::{time_on_air_us, Modulation};

/// When and how a frame is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// Reply to an uplink: its `xtime` and `rctx`, RX1 after `rx_delay` s, RX2 one
    /// second later. At least one window.
    ClassA {
        xtime: i64,
        rctx: i64,
        rx_delay: u8,
        rx1: Option<(u8, u32)>,
        rx2: Option<(u8, u32)>,
    },
    /// Class C as soon as possible (station aims 20 ms ahead).
    ClassCNow { dr: u8, freq: u32 },
    /// Class C at a concentrator time of the current session.
    ClassCAtXtime {
        xtime: i64,
        rctx: i64,
        dr: u8,
        freq: u32,
    },
    /// Class C at a GPS time (µs); the session maps it to an xtime.
    ClassCAtGps { gps_us: i64, dr: u8, freq: u32 },
    /// Class B at a ping slot's GPS time (µs).
    ClassB { gps_us: i64, dr: u8, freq: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    /// Never 0: station sends no `dntxed` for DevEui 0 (use a per-session pseudo EUI
    /// for multicast).
    pub dev_eui: u64,
    pub pdu: Vec<u8>,
    pub timing: Timing,
    pub priority: u8,
}

/// How a downlink ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Station confirmed the transmission started.
    Transmitted(Dntxed),
    /// No `dntxed` by the deadline: station dropped it (it never says why).
    NotConfirmed,
    /// The gateway disconnected before confirming; a reconnect starts a new radio
    /// session, so the frame is lost.
    GatewayGone,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DownlinkError {
    #[error("gateway is not connected to the LNS")]
    NotConnected,
    #[error("gateway has no usable router_config yet (no region, or not configured yet)")]
    NotConfigured,
    #[error("PHYPayload is {0} bytes; station takes at most 255")]
    TooLarge(usize),
    #[error("DevEui 0 never gets a dntxed; use a non-zero (pseudo) EUI")]
    ZeroDevEui,
    #[error("DR {0} is not defined in this gateway's region")]
    BadDr(u8),
    #[error("no time anchor for this gateway yet (getxtime pending); retry in a few seconds")]
    NoTimeAnchor,
    #[error("the frame is {0} s ahead; station rejects frames more than 600 s ahead")]
    TooFarAhead(u64),
    #[error("the frame's time has already passed")]
    InThePast,
    #[error("class A needs RX1 or RX2 parameters")]
    NoWindow,
    #[error("the gateway session ended")]
    Gone,
}

/// Station rejects frames more than this far ahead (`TX_MAX_AHEAD`).
pub const MAX_AHEAD: Duration = Duration::from_secs(600);

/// Time on air of the frame at `dr`, given the DR's modulation.
pub fn airtime(modulation: (u8, u32), pdu_len: usize) -> Duration {
    let m = match modulation {
        (0, _) => Modulation::Fsk,
        (sf, bw_khz) => Modulation::Lora {
            sf,
            bw_hz: bw_khz * 1000,
        },
    };
    Duration::from_micros(time_on_air_us(m, pdu_len, false))
}

/// The `dnmsg` for `dl`. `xtime` is the concentrator time the session resolved for
/// GPS-timed class C; `mux_time` the server's Unix time.
pub fn dnmsg(
    dl: &Downlink,
    diid: i64,
    resolved_xtime: Option<i64>,
    mux_time: f64,
) -> Result<Value, DownlinkError> {
    if dl.pdu.len() > 255 {
        return Err(DownlinkError::TooLarge(dl.pdu.len()));
    }
    if dl.dev_eui == 0 {
        return Err(DownlinkError::ZeroDevEui);
    }
    let mut m = json!({
        "msgtype": "dnmsg",
        "DevEui": eui_dashed(dl.dev_eui),
        "diid": diid,
        "pdu": hex::encode_upper(&dl.pdu),
        "priority": dl.priority,
        "MuxTime": mux_time,
    });
    match &dl.timing {
        Timing::ClassA {
            xtime,
            rctx,
            rx_delay,
            rx1,
            rx2,
        } => {
            if rx1.is_none() && rx2.is_none() {
                return Err(DownlinkError::NoWindow);
            }
            m["dC"] = json!(0);
            m["xtime"] = json!(xtime);
            m["rctx"] = json!(rctx);
            m["RxDelay"] = json!((*rx_delay).max(1));
            if let Some((dr, f)) = rx1 {
                m["RX1DR"] = json!(dr);
                m["RX1Freq"] = json!(f);
            }
            if let Some((dr, f)) = rx2 {
                m["RX2DR"] = json!(dr);
                m["RX2Freq"] = json!(f);
            }
        }
        Timing::ClassCNow { dr, freq } => {
            // RX2 parameters only, no xtime: station sends "now + TX_AIM_GAP".
            m["dC"] = json!(2);
            m["RxDelay"] = json!(1);
            m["RX2DR"] = json!(dr);
            m["RX2Freq"] = json!(freq);
            m["rctx"] = json!(0);
        }
        Timing::ClassCAtXtime {
            xtime,
            rctx,
            dr,
            freq,
        } => {
            // DR + Freq sets RxDelay 0: transmit exactly at xtime.
            m["dC"] = json!(2);
            m["DR"] = json!(dr);
            m["Freq"] = json!(freq);
            m["xtime"] = json!(xtime);
            m["rctx"] = json!(rctx);
        }
        Timing::ClassCAtGps { dr, freq, .. } => {
            let xtime = resolved_xtime.ok_or(DownlinkError::NoTimeAnchor)?;
            m["dC"] = json!(2);
            m["DR"] = json!(dr);
            m["Freq"] = json!(freq);
            m["xtime"] = json!(xtime);
            m["rctx"] = json!(0);
        }
        Timing::ClassB { gps_us, dr, freq } => {
            m["dC"] = json!(1);
            m["RxDelay"] = json!(1);
            m["gpstime"] = json!(gps_us);
            m["RX1DR"] = json!(dr);
            m["RX1Freq"] = json!(freq);
            m["rctx"] = json!(0);
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(timing: Timing) -> Downlink {
        Downlink {
            dev_eui: 0x0011_2233_4455_6677,
            pdu: vec![0x60, 0x12, 0x34],
            timing,
            priority: 0,
        }
    }

    #[test]
    fn class_a_like_the_spec_example() {
        let m = dnmsg(
            &dl(Timing::ClassA {
                xtime: 6_473_924_464_549_164,
                rctx: 0,
                rx_delay: 1,
                rx1: Some((5, 868_100_000)),
                rx2: Some((0, 869_525_000)),
            }),
            4711,
            None,
            1.5,
        )
        .unwrap();
        assert_eq!(m["DevEui"], "00-11-22-33-44-55-66-77");
        assert_eq!(m["dC"], 0);
        assert_eq!(m["diid"], 4711);
        assert_eq!(m["pdu"], "601234");
        assert_eq!(
            (m["RX1DR"].clone(), m["RX1Freq"].clone()),
            (json!(5), json!(868_100_000))
        );
        assert_eq!(
            (m["RX2DR"].clone(), m["RX2Freq"].clone()),
            (json!(0), json!(869_525_000))
        );
        assert_eq!(m["xtime"], 6_473_924_464_549_164i64);
        assert_eq!(m["RxDelay"], 1);
    }

    #[test]
    fn class_c_forms() {
        let now = dnmsg(
            &dl(Timing::ClassCNow {
                dr: 0,
                freq: 869_525_000,
            }),
            1,
            None,
            0.0,
        )
        .unwrap();
        assert_eq!(now["dC"], 2);
        assert!(now.get("xtime").is_none() && now.get("RX1DR").is_none());
        assert_eq!(now["RX2Freq"], 869_525_000);
        let at = dnmsg(
            &dl(Timing::ClassCAtXtime {
                xtime: 99,
                rctx: 0,
                dr: 0,
                freq: 869_525_000,
            }),
            2,
            None,
            0.0,
        )
        .unwrap();
        assert_eq!(
            (at["DR"].clone(), at["xtime"].clone()),
            (json!(0), json!(99))
        );
        assert!(at.get("RxDelay").is_none());
        let gps = Timing::ClassCAtGps {
            gps_us: 5,
            dr: 0,
            freq: 869_525_000,
        };
        assert_eq!(
            dnmsg(&dl(gps.clone()), 3, None, 0.0),
            Err(DownlinkError::NoTimeAnchor)
        );
        assert_eq!(dnmsg(&dl(gps), 3, Some(77), 0.0).unwrap()["xtime"], 77);
        let b = dnmsg(
            &dl(Timing::ClassB {
                gps_us: 1_416_478_510_000_000,
                dr: 3,
                freq: 869_525_000,
            }),
            4,
            None,
            0.0,
        )
        .unwrap();
        assert_eq!(
            (b["dC"].clone(), b["gpstime"].clone()),
            (json!(1), json!(1_416_478_510_000_000i64))
        );
    }

    #[test]
    fn refusals() {
        let mut d = dl(Timing::ClassCNow { dr: 0, freq: 1 });
        d.dev_eui = 0;
        assert_eq!(dnmsg(&d, 1, None, 0.0), Err(DownlinkError::ZeroDevEui));
        let mut d = dl(Timing::ClassCNow { dr: 0, freq: 1 });
        d.pdu = vec![0; 256];
        assert_eq!(dnmsg(&d, 1, None, 0.0), Err(DownlinkError::TooLarge(256)));
        let a = Timing::ClassA {
            xtime: 1,
            rctx: 0,
            rx_delay: 1,
            rx1: None,
            rx2: None,
        };
        assert_eq!(dnmsg(&dl(a), 1, None, 0.0), Err(DownlinkError::NoWindow));
    }

    #[test]
    fn airtime_of_a_dr() {
        assert_eq!(airtime((12, 125), 17), Duration::from_micros(1_155_072));
        assert_eq!(airtime((0, 0), 39), Duration::from_micros(8_000));
    }
}
