//! The **device side of the FUOTA application-layer packages**, written from the specs and
//! sharing no code with the server: TS003 clock sync (port 202), TS005 remote multicast setup
//! (port 200), TS004 v1 fragmentation (port 201) and TS006-1.0.0 firmware management (port
//! 203), as laid out in fuota.md §3, §4, §5, §6 and end-devices.md §6.
//!
//! [`AppLayer`] holds what such a device keeps: its clock (an offset from true GPS time that
//! AppTimeAns corrects), four multicast group slots (McKey opened with the McKEKey derived from
//! GenAppKey, McAppSKey/McNwkSKey, FCnt window), the class C / class B session, four
//! fragmentation sessions (each a [`FragDecoder`](crate::common::fuota_device::FragDecoder))
//! and its firmware (running version, a stored image, a programmed reboot). A downlink
//! FRMPayload on one of the four ports is parsed as concatenated commands (stopping at an
//! unknown CID or a truncated command, as LoRaMac-node does); each request updates the state
//! and queues its answer. [`AppLayer::next_uplink`] gives the next port and FRMPayload to send:
//! all queued answers of the first port waiting, in order (one port per uplink).
//!
//! Time is passed in (true GPS seconds, fractional) so the unit tests are deterministic; the
//! fleet harness passes the wall clock. [`Faults`] makes the device misbehave on purpose.

mod clock;
mod firmware;
mod frag;
mod multicast;

use std::collections::HashSet;

#[allow(unused_imports)]
pub use firmware::Firmware;
#[allow(unused_imports)]
pub use frag::FragSession;
#[allow(unused_imports)]
pub use multicast::{mc_ke_key, mc_root_key_10x, McGroup, McRx, McSession, SessionClass};

use super::crypto::Key;
use super::region::{self, Region};

/// The default FPort of each package (end-devices.md §6).
pub const PORT_MULTICAST: u8 = 200;
pub const PORT_FRAG: u8 = 201;
pub const PORT_CLOCK: u8 = 202;
pub const PORT_FIRMWARE: u8 = 203;

/// True GPS seconds now, from the system clock (fractional).
pub fn gps_now() -> f64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    let whole = unix.floor() as u64;
    region::gps_from_unix(whole) as f64 + (unix - whole as f64)
}

/// Which multicast fragments the device fails to hear, by fragment number N (so every copy
/// of a fragment is lost, whichever gateway sent it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Loss {
    #[default]
    None,
    /// Fragments N = k, 2k, 3k, … are lost.
    EveryKth(usize),
    /// These fragment numbers N are lost.
    Set(HashSet<u16>),
    /// Every fragment from N = n on is lost (the radio "walks away").
    From(usize),
}

/// How one answer is spoiled (bad-input tests of the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrupt {
    /// The answer goes out with this CID instead.
    WrongCid(u8),
    /// The last `n` octets are cut off.
    Truncate(usize),
    /// `n` octets of 0xEE are appended (an oversized answer).
    Oversize(usize),
    /// The answer is queued twice in the same FRMPayload.
    Duplicate,
    /// The FragIndex / McGroupID field names another index (xor 1).
    OtherIndex,
}

/// Misbehaviour to configure. The defaults are a well-behaved device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// OR-ed into every FragSessionSetupAns (e.g. 0x02 Not_enough_memory).
    pub frag_setup_status: u8,
    /// Multicast fragments lost.
    pub loss: Loss,
    /// Requests (port, CID) the device ignores entirely: no state change, no answer.
    pub ignore: HashSet<(u8, u8)>,
    /// After a reboot the old firmware still runs (the new image was not installed).
    pub reboot_keeps_old_version: bool,
    /// Multicast group slots the device has (McGroupID ≥ this gets IDerror).
    pub mc_group_slots: u8,
    /// The device never asks for the time by itself (the server must ForceDeviceResyncReq).
    pub no_app_time_req: bool,
    /// Spoil the first answer with this (port, CID) this way; once.
    pub corrupt: Option<(u8, u8, Corrupt)>,
    /// After a reboot, send DevVersionAns unsolicited (LoRaMac-node's TS006 v1 path).
    pub unsolicited_version_after_reboot: bool,
    /// Ports whose package the device does not implement (nothing answered there).
    pub no_package: HashSet<u8>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            frag_setup_status: 0,
            loss: Loss::None,
            ignore: HashSet::new(),
            reboot_keeps_old_version: false,
            mc_group_slots: 4,
            no_app_time_req: false,
            corrupt: None,
            unsolicited_version_after_reboot: false,
            no_package: HashSet::new(),
        }
    }
}

/// Something queued for an uplink on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Queued {
    Answer(u8, Vec<u8>),
    /// AppTimeReq: DeviceTime is read when the uplink is built.
    AppTimeReq,
    /// DevRebootTimeAns (CID 02) / DevRebootCountdownAns (03): the seconds left until the
    /// programmed reboot, read when the uplink is built ("from sending this answer").
    RebootAns(u8),
}

impl Queued {
    fn port(&self) -> u8 {
        match self {
            Queued::Answer(p, _) => *p,
            Queued::AppTimeReq => PORT_CLOCK,
            Queued::RebootAns(_) => PORT_FIRMWARE,
        }
    }
}

/// The app-layer state of one device.
#[derive(Debug, Clone)]
pub struct AppLayer {
    pub region: Region,
    pub faults: Faults,
    pub gen_app_key: Key,
    /// Device clock = true GPS time + this (seconds).
    pub clock_offset: f64,
    /// TS003 token (0..15) of the current AppTimeReq.
    pub token: u8,
    /// AppTimeReq still to send (1 at start, NbTransmissions after ForceDeviceResyncReq).
    pub resync_left: u8,
    pub groups: [Option<McGroup>; 4],
    pub session: Option<McSession>,
    pub frag: [Option<FragSession>; 4],
    pub firmware: Firmware,
    queue: Vec<Queued>,
    /// What happened, in order (for test failure messages).
    pub log: Vec<String>,
}

impl AppLayer {
    /// A device running firmware `fw` on hardware `hw`, with its GenAppKey, whose clock is
    /// `clock_offset` seconds off.
    pub fn new(region: Region, gen_app_key: Key, fw: u32, hw: u32, clock_offset: f64) -> Self {
        AppLayer {
            region,
            faults: Faults::default(),
            gen_app_key,
            clock_offset,
            token: 0,
            resync_left: 1,
            groups: Default::default(),
            session: None,
            frag: Default::default(),
            firmware: Firmware::new(fw, hw),
            queue: Vec::new(),
            log: Vec::new(),
        }
    }

    pub fn with_faults(mut self, faults: Faults) -> Self {
        if faults.no_app_time_req {
            self.resync_left = 0;
        }
        self.faults = faults;
        self
    }

    /// The device's own GPS time for a true GPS time.
    pub fn device_time(&self, now: f64) -> f64 {
        now + self.clock_offset
    }

    fn note(&mut self, what: String) {
        self.log.push(what);
    }

    /// A downlink FRMPayload on `fport` (class A unicast). Returns an error for ports that
    /// carry no package; a bad command stops the parse (the rest of the payload is dropped)
    /// and is reported in [`AppLayer::log`].
    pub fn downlink(&mut self, fport: u8, payload: &[u8], now: f64) -> Result<(), String> {
        self.tick(now);
        self.commands(fport, payload, now, false)
    }

    /// Runs every command of one FRMPayload.
    fn commands(
        &mut self,
        fport: u8,
        payload: &[u8],
        now: f64,
        multicast: bool,
    ) -> Result<(), String> {
        if self.faults.no_package.contains(&fport) {
            self.note(format!("port {fport}: no such package, dropped"));
            return Ok(());
        }
        let mut rest = payload;
        while let Some(&cid) = rest.first() {
            let len = match command_len(fport, cid, rest) {
                Ok(n) => n,
                Err(e) => {
                    self.note(format!("port {fport}: {e}; rest dropped"));
                    return Ok(());
                }
            };
            let (cmd, tail) = rest.split_at(len);
            rest = tail;
            if self.faults.ignore.contains(&(fport, cid)) {
                self.note(format!("port {fport} CID {cid:#04x} ignored (fault)"));
                continue;
            }
            if cid == 0x00 {
                self.answer(fport, package_version(fport));
                continue;
            }
            match fport {
                PORT_CLOCK => self.clock_command(cmd),
                PORT_MULTICAST => self.multicast_command(cmd, now),
                PORT_FRAG => self.frag_command(cmd, multicast),
                PORT_FIRMWARE if multicast => {
                    self.note("TS006 by multicast: dropped (TS006 §3)".into());
                }
                PORT_FIRMWARE => self.firmware_command(cmd, now),
                _ => return Err(format!("FPort {fport} carries no app-layer package")),
            }
        }
        Ok(())
    }

    /// Queues an answer (spoiled if a fault says so).
    fn answer(&mut self, port: u8, bytes: Vec<u8>) {
        let cid = bytes[0];
        let spoil = match self.faults.corrupt {
            Some((p, c, how)) if p == port && c == cid => {
                self.faults.corrupt = None;
                Some(how)
            }
            _ => None,
        };
        let mut b = bytes;
        match spoil {
            None => {}
            Some(Corrupt::WrongCid(c)) => b[0] = c,
            Some(Corrupt::Truncate(n)) => b.truncate(b.len().saturating_sub(n).max(1)),
            Some(Corrupt::Oversize(n)) => b.extend(std::iter::repeat_n(0xee, n)),
            Some(Corrupt::Duplicate) => self.queue.push(Queued::Answer(port, b.clone())),
            Some(Corrupt::OtherIndex) => {
                // FragSessionStatusAns keeps FragIndex in bits 14–15 of octets 1–2; the
                // others in the low bits (TS005) or bits 6–7 (FragSessionSetupAns).
                match (port, cid) {
                    (PORT_FRAG, 0x01) => b[2] ^= 0x40,
                    (PORT_FRAG, 0x02) => b[1] ^= 0x40,
                    _ => b[1] ^= 0x01,
                }
            }
        }
        if let Some(how) = spoil {
            self.note(format!("answer {:02x?} spoiled: {how:?}", b));
        }
        self.queue.push(Queued::Answer(port, b));
    }

    /// Drops every queued answer (a reboot).
    fn clear_queue(&mut self) {
        self.queue.clear();
    }

    /// Queues a DevRebootTimeAns / DevRebootCountdownAns computed at send time.
    fn queue_reboot_ans(&mut self, cid: u8) {
        self.queue.push(Queued::RebootAns(cid));
    }

    /// Whether anything waits for an uplink.
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty() || self.resync_left > 0
    }

    /// The port and FRMPayload of the next uplink: every queued answer of the first port
    /// waiting, concatenated in order. AppTimeReq carries the device's clock at this moment.
    pub fn next_uplink(&mut self, now: f64) -> Option<(u8, Vec<u8>)> {
        self.tick(now);
        if self.resync_left > 0 && !self.queue.contains(&Queued::AppTimeReq) {
            self.resync_left -= 1;
            self.queue.push(Queued::AppTimeReq);
        }
        let port = self.queue.first()?.port();
        let mut out = Vec::new();
        let queue = std::mem::take(&mut self.queue);
        for q in queue {
            match q {
                Queued::Answer(p, b) if p == port => out.extend(b),
                Queued::AppTimeReq if port == PORT_CLOCK => out.extend(self.app_time_req(now)),
                Queued::RebootAns(cid) if port == PORT_FIRMWARE => {
                    out.extend(self.reboot_ans(cid, now))
                }
                other => self.queue.push(other),
            }
        }
        Some((port, out))
    }

    /// Time passes: a programmed reboot happens.
    pub fn tick(&mut self, now: f64) {
        if self.firmware.reboot_due(self.device_time(now)) {
            self.reboot();
        }
    }
}

/// PackageVersionAns (CID 00) of the package on `port`.
fn package_version(port: u8) -> Vec<u8> {
    let id = match port {
        PORT_CLOCK => 1,
        PORT_MULTICAST => 2,
        PORT_FRAG => 3,
        _ => 4,
    };
    vec![0x00, id, 1]
}

/// Length in octets (CID included) of the downlink command at the head of `rest`.
fn command_len(port: u8, cid: u8, rest: &[u8]) -> Result<usize, String> {
    let len = match (port, cid) {
        (_, 0x00) => 1,
        (PORT_CLOCK, 0x01) => 6,
        (PORT_CLOCK, 0x02 | 0x03) => 2,
        (PORT_MULTICAST, 0x01) => 2,
        (PORT_MULTICAST, 0x02) => 30,
        (PORT_MULTICAST, 0x03) => 2,
        (PORT_MULTICAST, 0x04 | 0x05) => 11,
        (PORT_FRAG, 0x01) => 2,
        (PORT_FRAG, 0x02) => 11,
        (PORT_FRAG, 0x03) => 2,
        // DataFragment: the rest of the payload.
        (PORT_FRAG, 0x08) if rest.len() >= 3 => rest.len(),
        (PORT_FIRMWARE, 0x01 | 0x04) => 1,
        (PORT_FIRMWARE, 0x02 | 0x05) => 5,
        (PORT_FIRMWARE, 0x03) => 4,
        _ => return Err(format!("unknown CID {cid:#04x}")),
    };
    if rest.len() < len {
        return Err(format!(
            "CID {cid:#04x} needs {len} octets, {} left",
            rest.len()
        ));
    }
    Ok(len)
}

pub(crate) fn le24(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

pub(crate) fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
