//! MAC commands (end-devices.md §5), one file per command. The decision is pure:
//! given the session's MAC state, what the uplink carried and how it was heard,
//! `handle_uplink` returns the answers for the next downlink, whether a downlink
//! is owed, and the state changes; `requests` returns the requests the network
//! still needs the device to apply. Encoding and decoding are lrwn's.

pub mod dev_status;
pub mod device_time;
pub mod link_adr;
pub mod link_check;
pub mod rx_param_setup;
pub mod rx_timing_setup;

use lrwn::{MACCommand, MACCommandSet};
use serde::{Deserialize, Serialize};

/// After this many negative answers a request is given up (ChirpStack's
/// `max_mac_command_error_count` default).
pub const MAX_NEGATIVE: u8 = 3;

/// What the network asked for and is waiting to hear back about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Keep a US915 device on one sub-band (raw LinkADRReq block).
    LinkAdr {
        sub_band: u8,
        block: Vec<u8>,
    },
    RxParamSetup {
        rx1_dr_offset: u8,
        rx2_dr: u8,
        rx2_freq: u32,
    },
    RxTimingSetup {
        delay: u8,
    },
    DevStatus,
}

/// A request in flight with its count of negative answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub request: Request,
    pub negative: u8,
}

/// The MAC side of a session that survives between uplinks (stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MacState {
    pub rx1_dr_offset: u8,
    pub rx2_dr: u8,
    pub rx2_freq: u32,
    /// RX1 delay in seconds (1..=15).
    pub rx_delay: u8,
    /// US915: the sub-band the device acknowledged (None: all channels, as after a
    /// 1.0.2 join).
    pub sub_band: Option<u8>,
    pub pending: Vec<Pending>,
    /// Requests given up after repeated negative answers.
    #[serde(default)]
    pub given_up: Vec<Request>,
}

impl MacState {
    /// Regional defaults, as every join resets them to (1.0.3 §5).
    pub fn defaults(rx2: (u8, u32)) -> MacState {
        MacState {
            rx1_dr_offset: 0,
            rx2_dr: rx2.0,
            rx2_freq: rx2.1,
            rx_delay: 1,
            sub_band: None,
            pending: Vec::new(),
            given_up: Vec::new(),
        }
    }
}

/// How the uplink was heard, for the answers that report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reception {
    /// Best SNR over the copies, and the uplink's spreading factor.
    pub best_snr: f64,
    pub sf: u8,
    pub gateways: usize,
    /// GPS time (µs) at the end of the uplink.
    pub gps_end_us: i64,
}

/// A DevStatusAns, for the `status` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevStatus {
    pub battery: u8,
    pub margin: i8,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Answers to send in the next downlink (raw MAC bytes, must go first).
    pub answers: Vec<u8>,
    /// A downlink is owed even with nothing else to send (sticky answers).
    pub must_respond: bool,
    pub status: Option<DevStatus>,
    /// Commands the decoder could not read (processing stops there).
    pub unknown: Option<u8>,
    /// A DeviceTimeReq was answered: the device's clock is set (FUOTA needs it).
    pub device_time: bool,
}

/// Applies the uplink's MAC commands (FOpts or FPort 0) to `state`.
pub fn handle_uplink(state: &mut MacState, raw: &[u8], rx: &Reception) -> Outcome {
    let mut out = Outcome::default();
    let mut set = MACCommandSet::from_slice(raw);
    if raw.is_empty() || set.decode_from_raw(true).is_err() {
        out.unknown = (!raw.is_empty()).then(|| raw[0]);
        return out;
    }
    let mut adr_seen = false;
    for cmd in set.iter() {
        match cmd {
            MACCommand::LinkCheckReq => out.answers.extend(link_check::answer(rx)),
            MACCommand::DeviceTimeReq => {
                out.answers.extend(device_time::answer(rx.gps_end_us));
                out.device_time = true;
            }
            // A LinkADR block is answered once per command with the same status.
            MACCommand::LinkADRAns(a) if !adr_seen => {
                adr_seen = true;
                link_adr::on_answer(state, a);
            }
            MACCommand::LinkADRAns(_) => {}
            MACCommand::RxParamSetupAns(a) => {
                rx_param_setup::on_answer(state, a);
                out.must_respond = true;
            }
            MACCommand::RxTimingSetupAns => {
                rx_timing_setup::on_answer(state);
                out.must_respond = true;
            }
            MACCommand::DevStatusAns(a) => {
                state.pending.retain(|p| p.request != Request::DevStatus);
                out.status = Some(DevStatus {
                    battery: a.battery,
                    margin: a.margin,
                });
            }
            MACCommand::DutyCycleAns | MACCommand::NewChannelAns(_) => {}
            MACCommand::Raw(b) => {
                out.unknown = b.first().copied();
                break;
            }
            _ => {}
        }
    }
    out
}

/// Records a negative answer; after `MAX_NEGATIVE` the request is given up.
fn negative(state: &mut MacState, matches: impl Fn(&Request) -> bool) {
    if let Some(i) = state.pending.iter().position(|p| matches(&p.request)) {
        state.pending[i].negative += 1;
        if state.pending[i].negative >= MAX_NEGATIVE {
            let p = state.pending.remove(i);
            state.given_up.push(p.request);
        }
    }
}

/// What the network wants the device to apply (from the profile and its gateways),
/// added to `state.pending` unless already pending or given up.
pub fn want(state: &mut MacState, wanted: &[Request]) {
    for r in wanted {
        let same_kind = |p: &Request| std::mem::discriminant(p) == std::mem::discriminant(r);
        if state.given_up.iter().any(same_kind) {
            continue;
        }
        match state.pending.iter_mut().find(|p| same_kind(&p.request)) {
            Some(p) if p.request != *r => {
                *p = Pending {
                    request: r.clone(),
                    negative: 0,
                }
            }
            Some(_) => {}
            None => state.pending.push(Pending {
                request: r.clone(),
                negative: 0,
            }),
        }
    }
}

/// The raw bytes of every pending request, whole blocks only.
pub fn encode_pending(state: &MacState) -> Vec<Vec<u8>> {
    state.pending.iter().map(|p| encode(&p.request)).collect()
}

pub fn encode(r: &Request) -> Vec<u8> {
    match r {
        Request::LinkAdr { block, .. } => block.clone(),
        Request::RxParamSetup {
            rx1_dr_offset,
            rx2_dr,
            rx2_freq,
        } => rx_param_setup::request(*rx1_dr_offset, *rx2_dr, *rx2_freq),
        Request::RxTimingSetup { delay } => rx_timing_setup::request(*delay),
        Request::DevStatus => dev_status::request(),
    }
}

/// lrwn encodes one command; a command it cannot encode is a bug in the caller.
fn to_bytes(cmd: MACCommand) -> Vec<u8> {
    MACCommandSet::new(vec![cmd])
        .to_vec()
        .expect("MAC command fields in range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> Reception {
        Reception {
            best_snr: 5.0,
            sf: 7,
            gateways: 2,
            gps_end_us: 1_400_000_003_500_000,
        }
    }

    #[test]
    fn link_check_and_device_time_are_answered_in_order() {
        let mut s = MacState::defaults((0, 869_525_000));
        let out = handle_uplink(&mut s, &[0x02, 0x0d], &rx());
        // margin 5 - (-7.5) = 12.5 -> 12; 2 gateways; GPS 1400000003.5 s.
        assert_eq!(hex::encode(&out.answers), "020c020d034e725380");
        assert!(!out.must_respond);
    }

    #[test]
    fn an_unknown_command_stops_processing() {
        let mut s = MacState::defaults((0, 869_525_000));
        let out = handle_uplink(&mut s, &[0x02, 0x7f, 0x02], &rx());
        assert_eq!(out.unknown, Some(0x7f));
        assert_eq!(hex::encode(&out.answers), "020c02");
    }

    #[test]
    fn negative_answers_give_a_request_up() {
        let mut s = MacState::defaults((8, 923_300_000));
        want(&mut s, &[Request::RxTimingSetup { delay: 3 }]);
        for _ in 0..MAX_NEGATIVE {
            negative(&mut s, |r| matches!(r, Request::RxTimingSetup { .. }));
        }
        assert!(s.pending.is_empty());
        want(&mut s, &[Request::RxTimingSetup { delay: 3 }]);
        assert!(
            s.pending.is_empty(),
            "given-up requests are not asked again"
        );
    }
}
