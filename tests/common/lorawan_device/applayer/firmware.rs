//! TS006-1.0.0 firmware management, device side (end-devices.md §6.4, `vectors/lorawan/
//! ts006.json`): DevVersionReq/Ans, DevUpgradeImageReq/Ans about the image the fragmentation
//! session rebuilt, DevRebootTimeReq / DevRebootCountdownReq programming one reboot, and the
//! "reboot" itself: the stored image becomes the running firmware (unless the fault says the
//! install failed), RAM state (multicast session, fragmentation sessions) is lost, and an
//! unsolicited DevVersionAns may follow.
//!
//! The version an image carries is read from its first four octets (u32 LE), as a device reads
//! a header; the tests build their images that way.

use super::{le24, le32, AppLayer, PORT_FIRMWARE};

#[derive(Debug, Clone, PartialEq)]
pub struct Firmware {
    pub running: u32,
    pub hw: u32,
    /// A complete image waiting to be installed: (its version, its descriptor).
    pub stored: Option<(u32, [u8; 4])>,
    /// Device-clock GPS time of the programmed reboot.
    pub reboot_at: Option<f64>,
    pub reboots: u32,
}

impl Firmware {
    pub fn new(running: u32, hw: u32) -> Self {
        Firmware {
            running,
            hw,
            stored: None,
            reboot_at: None,
            reboots: 0,
        }
    }

    /// The version an image declares: its first four octets, LE (0 if shorter).
    pub fn version_of(image: &[u8]) -> u32 {
        image.get(..4).map_or(0, le32)
    }

    pub(super) fn store_image(&mut self, image: &[u8], descriptor: [u8; 4]) {
        self.stored = Some((Firmware::version_of(image), descriptor));
    }

    pub(super) fn reboot_due(&self, device_now: f64) -> bool {
        self.reboot_at.is_some_and(|t| device_now >= t)
    }
}

impl AppLayer {
    pub(super) fn firmware_command(&mut self, cmd: &[u8], now: f64) {
        let device_now = self.device_time(now);
        match cmd[0] {
            0x01 => self.dev_version_ans(),
            0x02 => {
                let t = le32(&cmd[1..5]);
                let ans = match t {
                    0xffff_ffff => {
                        self.firmware.reboot_at = None;
                        Some(0xffff_ffffu32)
                    }
                    0 => {
                        // As soon as possible: no answer (end-devices.md §6.4, unconfirmed).
                        self.firmware.reboot_at = Some(device_now);
                        None
                    }
                    t if f64::from(t) <= device_now => Some(0),
                    t => {
                        self.firmware.reboot_at = Some(f64::from(t));
                        None
                    }
                };
                self.note(format!("DevRebootTimeReq {t}"));
                match ans {
                    Some(a) => {
                        let mut b = vec![0x02];
                        b.extend(a.to_le_bytes());
                        self.answer(PORT_FIRMWARE, b);
                    }
                    None if t != 0 => self.queue_reboot_ans(0x02),
                    None => {}
                }
            }
            0x03 => {
                let c = le24(&cmd[1..4]);
                match c {
                    0xff_ffff => {
                        self.firmware.reboot_at = None;
                        self.answer(PORT_FIRMWARE, vec![0x03, 0xff, 0xff, 0xff]);
                    }
                    // A 0 countdown reboots at once and is not answered (TS006 §3.4).
                    0 => self.firmware.reboot_at = Some(device_now),
                    c => {
                        // The timer starts now, as LoRaMac-node's does; the answer says
                        // what is left when it goes out.
                        self.firmware.reboot_at = Some(device_now + f64::from(c));
                        self.queue_reboot_ans(0x03);
                    }
                }
                self.note(format!("DevRebootCountdownReq {c}"));
            }
            0x04 => {
                let b = match self.firmware.stored {
                    Some((v, _)) => {
                        let mut b = vec![0x04, 0x03];
                        b.extend(v.to_le_bytes());
                        b
                    }
                    None => vec![0x04, 0x00],
                };
                self.answer(PORT_FIRMWARE, b);
            }
            0x05 => {
                let v = le32(&cmd[1..5]);
                let status = match self.firmware.stored {
                    None => 0x01,
                    Some((s, _)) if s != v => 0x02,
                    Some(_) => {
                        self.firmware.stored = None;
                        0x00
                    }
                };
                self.answer(PORT_FIRMWARE, vec![0x05, status]);
            }
            _ => unreachable!("command_len knows only these CIDs"),
        }
    }

    /// DevRebootTimeAns / DevRebootCountdownAns with the seconds left now (rounded up); 0
    /// ("cannot") if the reboot was cancelled or happened meanwhile.
    pub(super) fn reboot_ans(&mut self, cid: u8, now: f64) -> Vec<u8> {
        let left = self
            .firmware
            .reboot_at
            .map_or(0.0, |t| (t - self.device_time(now)).max(0.0).ceil());
        let mut b = vec![cid];
        let n = left as u32;
        if cid == 0x03 {
            b.extend(&n.min(0xff_fffe).to_le_bytes()[..3]);
        } else {
            b.extend(n.to_le_bytes());
        }
        b
    }

    fn dev_version_ans(&mut self) {
        let mut b = vec![0x01];
        b.extend(self.firmware.running.to_le_bytes());
        b.extend(self.firmware.hw.to_le_bytes());
        self.answer(PORT_FIRMWARE, b);
    }

    /// The reboot: install the stored image (unless the fault keeps the old one), lose what
    /// lives in RAM (sessions, unsent answers), keep the LoRaWAN session and the clock (as
    /// NVM-backed devices do).
    pub fn reboot(&mut self) {
        let installed = match self.firmware.stored.take() {
            Some((v, _)) if !self.faults.reboot_keeps_old_version => {
                self.firmware.running = v;
                Some(v)
            }
            _ => None,
        };
        self.firmware.reboot_at = None;
        self.firmware.reboots += 1;
        self.session = None;
        self.frag = Default::default();
        // Answers not sent yet were in RAM too (a DevRebootCountdownAns still waiting for
        // an uplink is never sent when the reboot comes first).
        self.clear_queue();
        self.note(format!(
            "reboot: running {:#010x} (installed {installed:x?})",
            self.firmware.running
        ));
        if self.faults.unsolicited_version_after_reboot {
            self.dev_version_ans();
        }
    }
}
