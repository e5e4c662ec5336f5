//! TS005 remote multicast setup, device side (fuota.md §4, §5; end-devices.md §4.3, §6.2): the
//! multicast keys derived from GenAppKey, McGroupSetupReq / DeleteReq / StatusReq, the class C
//! and class B session requests with the checks LoRaMac-node makes, and the reception of a
//! multicast frame during the session (frequency, DR, session window, FCnt window, loss).

use super::super::crypto::{aes_encrypt, Key};
use super::{le24, le32, AppLayer, Loss, PORT_FRAG, PORT_MULTICAST};
use crate::common::fuota_device::open_frame;

/// McRootKey of a LoRaWAN 1.0.x device: aes128_encrypt(GenAppKey, 00 | pad16).
pub fn mc_root_key_10x(gen_app_key: &Key) -> Key {
    aes_encrypt(gen_app_key, [0; 16])
}

/// McKEKey = aes128_encrypt(McRootKey, 00 | pad16).
pub fn mc_ke_key(mc_root_key: &Key) -> Key {
    aes_encrypt(mc_root_key, [0; 16])
}

/// aes128_encrypt(McKey, tag | McAddr LE | pad16): tag 01 McAppSKey, 02 McNwkSKey.
fn mc_session_key(mc_key: &Key, tag: u8, mc_addr: u32) -> Key {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[1..5].copy_from_slice(&mc_addr.to_le_bytes());
    aes_encrypt(mc_key, b)
}

/// One multicast group slot after McGroupSetupReq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McGroup {
    pub mc_addr: u32,
    pub mc_key: Key,
    pub app_s_key: Key,
    pub nwk_s_key: Key,
    pub min_fcnt: u32,
    pub max_fcnt: u32,
    /// The last FCnt accepted, and that frame (to tell a copy from a reused counter).
    pub last_fcnt: Option<u32>,
    pub last_phy: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionClass {
    C,
    B { periodicity: u8 },
}

/// A class C (or B) session the device will switch to.
#[derive(Debug, Clone, PartialEq)]
pub struct McSession {
    pub class: SessionClass,
    pub group: u8,
    /// GPS seconds (device clock).
    pub start: u32,
    pub timeout: u8,
    pub freq: u32,
    pub dr: u8,
}

impl McSession {
    /// Seconds the session lasts: 2^TimeOut (class C), 2^TimeOut beacon periods (class B).
    pub fn duration(&self) -> f64 {
        let base = f64::from(1u32 << self.timeout);
        match self.class {
            SessionClass::C => base,
            SessionClass::B { .. } => base * 128.0,
        }
    }

    /// Whether a device clock reading lies inside the session.
    pub fn covers(&self, device_time: f64) -> bool {
        let start = f64::from(self.start);
        device_time >= start && device_time < start + self.duration()
    }
}

/// What happened to a multicast frame the radio could have heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McRx {
    /// No session, or outside its time, frequency or DR: the radio was not listening.
    NotListening,
    /// Heard but refused (another DevAddr, MIC, FCnt window): the reason.
    Refused(String),
    /// A copy of a frame already accepted (another gateway sent it too).
    Duplicate,
    /// Lost on purpose (the loss pattern), fragment N.
    Lost(u16),
    /// Accepted and handed to the package on its port.
    Accepted { fport: u8, fcnt: u32 },
}

impl AppLayer {
    pub(super) fn multicast_command(&mut self, cmd: &[u8], now: f64) {
        match cmd[0] {
            0x01 => self.mc_group_status(cmd[1] & 0x0f),
            0x02 => self.mc_group_setup(cmd),
            0x03 => {
                let id = cmd[1] & 0x03;
                let undefined = self.groups[usize::from(id)].take().is_none();
                if self.session.as_ref().is_some_and(|s| s.group == id) {
                    self.session = None;
                }
                self.answer(PORT_MULTICAST, vec![0x03, id | u8::from(undefined) << 2]);
            }
            0x04 | 0x05 => self.mc_session(cmd, now),
            _ => unreachable!("command_len knows only these CIDs"),
        }
    }

    fn mc_group_status(&mut self, mask: u8) {
        let mut status = 0u8;
        let mut body = Vec::new();
        let total = self.groups.iter().flatten().count() as u8;
        for (i, g) in self.groups.iter().enumerate() {
            if let Some(g) = g.as_ref().filter(|_| mask >> i & 1 == 1) {
                status |= 1 << i;
                body.push(i as u8);
                body.extend(g.mc_addr.to_le_bytes());
            }
        }
        let mut b = vec![0x01, status | total << 4];
        b.extend(body);
        self.answer(PORT_MULTICAST, b);
    }

    /// McGroupSetupReq: McKey = aes128_encrypt(McKEKey, McKey_encrypted) (fuota.md §5).
    fn mc_group_setup(&mut self, cmd: &[u8]) {
        let id = cmd[1] & 0x03;
        if id >= self.faults.mc_group_slots {
            self.note(format!("McGroupSetupReq group {id}: IDerror"));
            self.answer(PORT_MULTICAST, vec![0x02, id | 0x04]);
            return;
        }
        let mc_addr = le32(&cmd[2..6]);
        let enc: Key = cmd[6..22].try_into().expect("16 octets");
        let ke = mc_ke_key(&mc_root_key_10x(&self.gen_app_key));
        let mc_key = aes_encrypt(&ke, enc);
        let g = McGroup {
            mc_addr,
            mc_key,
            app_s_key: mc_session_key(&mc_key, 0x01, mc_addr),
            nwk_s_key: mc_session_key(&mc_key, 0x02, mc_addr),
            min_fcnt: le32(&cmd[22..26]),
            max_fcnt: le32(&cmd[26..30]),
            last_fcnt: None,
            last_phy: Vec::new(),
        };
        self.note(format!("McGroupSetupReq group {id} McAddr {mc_addr:08x}"));
        self.groups[usize::from(id)] = Some(g);
        self.answer(PORT_MULTICAST, vec![0x02, id]);
    }

    /// McClassCSessionReq (04) / McClassBSessionReq (05): LoRaMac-node's checks (DR 0x04,
    /// frequency 0x08, group undefined or SessionTime past 0x10), then TimeToStart.
    fn mc_session(&mut self, cmd: &[u8], now: f64) {
        let cid = cmd[0];
        let id = cmd[1] & 0x03;
        let start = le32(&cmd[2..6]);
        let timeout = cmd[6] & 0x0f;
        let freq = le24(&cmd[7..10]) * 100;
        let dr = cmd[10];
        let device_now = self.device_time(now);
        let mut status = 0u8;
        if !self.region.valid_downlink_dr(dr) {
            status |= 0x04;
        }
        if !self.region.valid_downlink_freq(freq) {
            status |= 0x08;
        }
        if self.groups[usize::from(id)].is_none() || f64::from(start) < device_now {
            status |= 0x10;
        }
        let mut b = vec![cid, id | status];
        if status == 0 {
            let to_start = (f64::from(start) - device_now).floor() as u32;
            b.extend(&to_start.to_le_bytes()[..3]);
            self.session = Some(McSession {
                class: if cid == 0x04 {
                    SessionClass::C
                } else {
                    SessionClass::B {
                        periodicity: cmd[6] >> 4 & 0x07,
                    }
                },
                group: id,
                start,
                timeout,
                freq,
                dr,
            });
            self.note(format!(
                "session (CID {cid:#04x}) from {start} for 2^{timeout}, {freq} Hz DR{dr}, \
                 TimeToStart {to_start}"
            ));
        } else {
            self.note(format!("session request refused, status {status:#04x}"));
        }
        self.answer(PORT_MULTICAST, b);
    }

    /// Whether the radio listens on `freq`/`dr` now (inside the multicast session).
    pub fn listening(&self, freq: u32, dr: u8, now: f64) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.freq == freq && s.dr == dr && s.covers(self.device_time(now)))
    }

    /// A frame on air on `freq`/`dr` at true GPS time `now`: opened with the session
    /// group's keys when the device listens, the loss pattern applied to DataFragments, and
    /// the plaintext run as commands of its port (TS004 only; TS006 is dropped).
    pub fn multicast(&mut self, phy: &[u8], freq: u32, dr: u8, now: f64) -> McRx {
        self.tick(now);
        if !self.listening(freq, dr, now) {
            return McRx::NotListening;
        }
        let gid = usize::from(self.session.as_ref().expect("listening").group);
        let Some(g) = self.groups[gid].as_ref() else {
            return McRx::Refused("the session's group is not set up".into());
        };
        // A copy of the last frame (another gateway) is dropped as a device drops it (the
        // counter did not move); the same counter on another frame means the network reused
        // a multicast FCnt, which a device cannot decrypt right: refused, and said so.
        let same_counter = phy.len() >= 8
            && g.last_fcnt
                .is_some_and(|l| l as u16 == u16::from_le_bytes([phy[6], phy[7]]));
        if same_counter {
            if g.last_phy == phy {
                return McRx::Duplicate;
            }
            return McRx::Refused(format!("FCnt {:?} reused by another frame", g.last_fcnt));
        }
        let o = match open_frame(&g.app_s_key, &g.nwk_s_key, g.mc_addr, g.last_fcnt, phy) {
            Ok(o) => o,
            Err(e) => return McRx::Refused(e),
        };
        if o.fcnt < g.min_fcnt || o.fcnt > g.max_fcnt {
            return McRx::Refused(format!(
                "FCnt {} outside [{}, {}]",
                o.fcnt, g.min_fcnt, g.max_fcnt
            ));
        }
        if g.last_fcnt.is_some_and(|l| o.fcnt <= l) {
            return McRx::Duplicate;
        }
        if o.fport == PORT_FRAG && o.plaintext.first() == Some(&0x08) && o.plaintext.len() >= 3 {
            let n = u16::from_le_bytes([o.plaintext[1], o.plaintext[2]]) & 0x3fff;
            if self.lose(n) {
                // Never heard: the counter does not move either.
                self.note(format!("fragment {n} lost (loss pattern)"));
                return McRx::Lost(n);
            }
        }
        let g = self.groups[gid].as_mut().expect("checked");
        g.last_fcnt = Some(o.fcnt);
        g.last_phy = phy.to_vec();
        if let Err(e) = self.commands(o.fport, &o.plaintext, now, true) {
            return McRx::Refused(e);
        }
        McRx::Accepted {
            fport: o.fport,
            fcnt: o.fcnt,
        }
    }

    /// Whether the loss pattern drops fragment N (every copy of it, from any gateway).
    fn lose(&self, n: u16) -> bool {
        match &self.faults.loss {
            Loss::None => false,
            Loss::EveryKth(k) => *k > 0 && usize::from(n) % k == 0,
            Loss::Set(s) => s.contains(&n),
            Loss::From(k) => usize::from(n) >= *k,
        }
    }
}
