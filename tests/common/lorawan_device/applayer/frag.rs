//! TS004 v1 fragmentation, device side (fuota.md §6.1, §7; end-devices.md §6.3):
//! FragSessionSetupReq with the device's checks (FragAlgo 0 only, memory, session slots), the
//! fragments fed to the spec-written [`FragDecoder`], FragSessionStatusAns telling the truth
//! about what is missing, FragSessionDeleteReq. A complete image is handed to the firmware
//! store (TS006).

use super::{AppLayer, PORT_FRAG};
use crate::common::fuota_device::{FragDecoder, Status};

/// One fragmentation session slot.
#[derive(Debug, Clone)]
pub struct FragSession {
    pub group_mask: u8,
    pub nb_frag: u16,
    pub frag_size: u8,
    pub block_ack_delay: u8,
    pub padding: u8,
    pub descriptor: [u8; 4],
    pub decoder: FragDecoder,
    /// Fragments received (uncoded and coded).
    pub received: u16,
    /// The image, once rebuilt (padding stripped).
    pub image: Option<Vec<u8>>,
}

/// Memory the simulated device has for a session (NbFrag × FragSize octets).
pub const FRAG_MEMORY: usize = 256 * 1024;

impl AppLayer {
    pub(super) fn frag_command(&mut self, cmd: &[u8], multicast: bool) {
        match cmd[0] {
            0x01 => self.frag_status(cmd[1], multicast),
            0x02 => self.frag_setup(cmd),
            0x03 => {
                let idx = cmd[1] & 0x03;
                let missing = self.frag[usize::from(idx)].take().is_none();
                self.answer(PORT_FRAG, vec![0x03, idx | u8::from(missing) << 2]);
            }
            0x08 => self.data_fragment(cmd),
            _ => unreachable!("command_len knows only these CIDs"),
        }
    }

    /// FragSessionSetupReq: status bits 0 FragAlgo, 1 memory, 2 FragIndex, 3 Descriptor.
    fn frag_setup(&mut self, cmd: &[u8]) {
        let idx = cmd[1] >> 4 & 0x03;
        let group_mask = cmd[1] & 0x0f;
        let nb_frag = u16::from_le_bytes([cmd[2], cmd[3]]);
        let frag_size = cmd[4];
        let control = cmd[5];
        let algo = control >> 3 & 0x07;
        let padding = cmd[6];
        let descriptor: [u8; 4] = cmd[7..11].try_into().expect("4 octets");
        let mut status = self.faults.frag_setup_status & 0x0f;
        if algo != 0 {
            status |= 0x01;
        }
        if usize::from(nb_frag) * usize::from(frag_size) > FRAG_MEMORY {
            status |= 0x02;
        }
        if nb_frag == 0 || frag_size == 0 {
            status |= 0x02;
        }
        self.note(format!(
            "FragSessionSetupReq index {idx} M {nb_frag} size {frag_size} algo {algo} \
             padding {padding}: status {status:#04x}"
        ));
        if status == 0 {
            self.frag[usize::from(idx)] = Some(FragSession {
                group_mask,
                nb_frag,
                frag_size,
                block_ack_delay: control & 0x07,
                padding,
                descriptor,
                decoder: FragDecoder::new(usize::from(nb_frag), usize::from(frag_size)),
                received: 0,
                image: None,
            });
        }
        self.answer(PORT_FRAG, vec![0x02, status | idx << 6]);
    }

    /// DataFragment: IndexAndN (bits 0–13 N, 14–15 FragIndex) · payload.
    fn data_fragment(&mut self, cmd: &[u8]) {
        let v = u16::from_le_bytes([cmd[1], cmd[2]]);
        let (idx, n) = (usize::from(v >> 14), v & 0x3fff);
        let Some(s) = self.frag[idx].as_mut() else {
            self.note(format!("fragment {n} for FragIndex {idx}: no session"));
            return;
        };
        if n == 0 || cmd.len() - 3 != usize::from(s.frag_size) {
            let size = s.frag_size;
            self.note(format!(
                "fragment {n}: {} octets, FragSize {size}: dropped",
                cmd.len() - 3
            ));
            return;
        }
        s.received = s.received.saturating_add(1);
        if s.image.is_some() {
            return;
        }
        if let Status::Done(mut img) = s.decoder.push(n, &cmd[3..]) {
            img.truncate(img.len() - usize::from(s.padding));
            s.image = Some(img.clone());
            let descriptor = s.descriptor;
            self.note(format!(
                "image of {} octets rebuilt at fragment {n}",
                img.len()
            ));
            self.firmware.store_image(&img, descriptor);
        }
    }

    /// FragSessionStatusAns: ReceivedAndIndex (2 LE) · MissingFrag (1) · Status (1).
    /// Participants 0: only a device still missing fragments answers.
    fn frag_status(&mut self, param: u8, multicast: bool) {
        let idx = param >> 1 & 0x03;
        let participants = param & 0x01 == 1;
        let Some(s) = self.frag[usize::from(idx)].as_ref() else {
            self.note(format!(
                "FragSessionStatusReq for FragIndex {idx}: no session, no answer"
            ));
            return;
        };
        let missing = s.decoder.missing();
        if !participants && missing == 0 {
            return;
        }
        let received = s.received.min(0x3fff) | u16::from(idx) << 14;
        let mut b = vec![0x01];
        b.extend(received.to_le_bytes());
        b.push(missing.min(255) as u8);
        b.push(0);
        self.note(format!(
            "FragSessionStatusReq ({}): {} received, {missing} missing",
            if multicast { "multicast" } else { "unicast" },
            s.received
        ));
        self.answer(PORT_FRAG, b);
    }
}
