//! LoRaWAN 1.0.x PHYPayloads as a device builds and checks them (end-devices.md §1, §2.1,
//! §2.3): the join-request, the join-accept (opened with AES encrypt, MIC checked), data
//! frames in both directions (FRMPayload encryption, MIC with the full 32-bit FCnt), and the
//! device's 16 → 32-bit FCntDown reconstruction (§1.7, LoRaMac-node `LoRaMacCryptoGetFCntDown`).

use super::crypto::{self, Dir, Key};

pub const MHDR_JOIN_REQUEST: u8 = 0x00;
pub const MHDR_JOIN_ACCEPT: u8 = 0x20;
pub const MHDR_UNCONFIRMED_UP: u8 = 0x40;
pub const MHDR_UNCONFIRMED_DOWN: u8 = 0x60;
pub const MHDR_CONFIRMED_UP: u8 = 0x80;
pub const MHDR_CONFIRMED_DOWN: u8 = 0xa0;

/// FCtrl bits (§1.2).
pub const FCTRL_ADR: u8 = 0x80;
pub const FCTRL_ADR_ACK_REQ: u8 = 0x40;
pub const FCTRL_ACK: u8 = 0x20;
pub const FCTRL_FPENDING: u8 = 0x10;

/// A join-request (§2.1): `00 | JoinEUI LE | DevEUI LE | DevNonce LE | MIC`.
pub fn join_request(app_key: &Key, join_eui: u64, dev_eui: u64, dev_nonce: u16) -> Vec<u8> {
    let mut b = vec![MHDR_JOIN_REQUEST];
    b.extend(join_eui.to_le_bytes());
    b.extend(dev_eui.to_le_bytes());
    b.extend(dev_nonce.to_le_bytes());
    let mic = crypto::mic(app_key, &[&b]);
    b.extend(mic);
    b
}

/// The fields of a join-accept after the device opened and checked it (§2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAccept {
    pub join_nonce: u32,
    pub net_id: u32,
    pub dev_addr: u32,
    pub dl_settings: u8,
    pub rx1_dr_offset: u8,
    pub rx2_dr: u8,
    /// The RxDelay octet as sent (Del 0 means 1 s).
    pub rx_delay: u8,
    pub cflist: Option<[u8; 16]>,
    /// JoinNonce … CFList | MIC, as decrypted.
    pub plaintext: Vec<u8>,
}

/// Opens a join-accept PHYPayload: AES-encrypt the body, check the MIC with AppKey, parse.
pub fn open_join_accept(app_key: &Key, phy: &[u8]) -> Result<JoinAccept, String> {
    if phy.first() != Some(&MHDR_JOIN_ACCEPT) {
        return Err(format!(
            "MHDR {:02x?} is not a join-accept (20)",
            phy.first()
        ));
    }
    let plain = crypto::join_accept_open(app_key, &phy[1..])?;
    let (fields, mic) = plain.split_at(plain.len() - 4);
    let want = crypto::mic(app_key, &[&[MHDR_JOIN_ACCEPT], fields]);
    if want != mic {
        return Err(format!(
            "join-accept MIC {mic:02x?} is wrong (AppKey gives {want:02x?})"
        ));
    }
    let le24 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], 0]);
    if fields[10] & 0x80 != 0 {
        return Err("DLSettings bit 7 (OptNeg) set: not a 1.0.x join-accept".into());
    }
    Ok(JoinAccept {
        join_nonce: le24(&fields[0..3]),
        net_id: le24(&fields[3..6]),
        dev_addr: u32::from_le_bytes(fields[6..10].try_into().expect("4 octets")),
        dl_settings: fields[10],
        rx1_dr_offset: fields[10] >> 4 & 7,
        rx2_dr: fields[10] & 0x0f,
        rx_delay: fields[11],
        cflist: fields.get(12..28).map(|c| c.try_into().expect("16 octets")),
        plaintext: plain.clone(),
    })
}

/// A data frame's fields; `payload` is the FRMPayload in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    pub mhdr: u8,
    pub dev_addr: u32,
    /// FCtrl; on encode the low nibble (FOptsLen) is taken from `fopts`.
    pub fctrl: u8,
    /// The full 32-bit counter (16 bits go on air).
    pub fcnt: u32,
    pub fopts: Vec<u8>,
    pub fport: Option<u8>,
    pub payload: Vec<u8>,
}

/// Direction of a data MHDR.
pub fn data_dir(mhdr: u8) -> Result<Dir, String> {
    match mhdr {
        MHDR_UNCONFIRMED_UP | MHDR_CONFIRMED_UP => Ok(Dir::Up),
        MHDR_UNCONFIRMED_DOWN | MHDR_CONFIRMED_DOWN => Ok(Dir::Down),
        m => Err(format!("MHDR {m:#04x} is not a LoRaWAN 1.0 data frame")),
    }
}

/// The FRMPayload key: NwkSKey for FPort 0, else AppSKey (§1.3).
fn payload_key<'k>(fport: u8, nwk_s_key: &'k Key, app_s_key: &'k Key) -> &'k Key {
    if fport == 0 {
        nwk_s_key
    } else {
        app_s_key
    }
}

impl DataFrame {
    /// The PHYPayload: FRMPayload encrypted, MIC over B0 | msg with NwkSKey.
    pub fn encode(&self, nwk_s_key: &Key, app_s_key: &Key) -> Result<Vec<u8>, String> {
        let dir = data_dir(self.mhdr)?;
        if self.fopts.len() > 15 {
            return Err(format!("FOpts of {} octets; at most 15", self.fopts.len()));
        }
        if self.fport == Some(0) && !self.fopts.is_empty() {
            return Err("MAC commands in FOpts and on FPort 0 at once".into());
        }
        if self.fport.is_none() && !self.payload.is_empty() {
            return Err("an FRMPayload needs an FPort".into());
        }
        let mut b = vec![self.mhdr];
        b.extend(self.dev_addr.to_le_bytes());
        b.push(self.fctrl & 0xf0 | self.fopts.len() as u8);
        b.extend((self.fcnt as u16).to_le_bytes());
        b.extend(&self.fopts);
        if let Some(port) = self.fport {
            b.push(port);
            let key = payload_key(port, nwk_s_key, app_s_key);
            b.extend(crypto::frm_crypt(
                key,
                dir,
                self.dev_addr,
                self.fcnt,
                &self.payload,
            ));
        }
        let mic = crypto::data_mic(nwk_s_key, dir, self.dev_addr, self.fcnt, &b);
        b.extend(mic);
        if b.len() > 255 {
            return Err(format!("PHYPayload of {} octets; at most 255", b.len()));
        }
        Ok(b)
    }

    /// Checks the MIC with the full counter `fcnt` and decrypts.
    pub fn decode(
        phy: &[u8],
        fcnt: u32,
        nwk_s_key: &Key,
        app_s_key: &Key,
    ) -> Result<DataFrame, String> {
        let h = DataHeader::parse(phy)?;
        if u32::from(h.fcnt16) != fcnt & 0xffff {
            return Err(format!(
                "FCnt {fcnt} does not end in the frame's 16 bits {}",
                h.fcnt16
            ));
        }
        let dir = data_dir(phy[0])?;
        let (msg, mic) = phy.split_at(phy.len() - 4);
        let want = crypto::data_mic(nwk_s_key, dir, h.dev_addr, fcnt, msg);
        if want != mic {
            return Err(format!(
                "MIC {mic:02x?} is wrong at FCnt {fcnt} (NwkSKey gives {want:02x?})"
            ));
        }
        let fopts_end = 8 + usize::from(h.fctrl & 0x0f);
        let rest = &msg[fopts_end..];
        let fport = rest.first().copied();
        if fport == Some(0) && fopts_end > 8 {
            return Err("MAC commands in FOpts and on FPort 0 at once (dropped, §1.2)".into());
        }
        let payload = match fport {
            Some(p) => {
                let key = payload_key(p, nwk_s_key, app_s_key);
                crypto::frm_crypt(key, dir, h.dev_addr, fcnt, &rest[1..])
            }
            None => Vec::new(),
        };
        Ok(DataFrame {
            mhdr: phy[0],
            dev_addr: h.dev_addr,
            fctrl: h.fctrl,
            fcnt,
            fopts: msg[8..fopts_end].to_vec(),
            fport,
            payload,
        })
    }
}

/// The clear header of a data frame, read before any key is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub dev_addr: u32,
    pub fctrl: u8,
    pub fcnt16: u16,
}

impl DataHeader {
    pub fn parse(phy: &[u8]) -> Result<DataHeader, String> {
        data_dir(*phy.first().ok_or("empty PHYPayload")?)?;
        if phy.len() < 12 {
            return Err(format!(
                "{} octets is too short for a data frame",
                phy.len()
            ));
        }
        let fctrl = phy[5];
        if phy.len() < 12 + usize::from(fctrl & 0x0f) {
            return Err("FOptsLen runs past the frame".into());
        }
        Ok(DataHeader {
            dev_addr: u32::from_le_bytes(phy[1..5].try_into().expect("4 octets")),
            fctrl,
            fcnt16: u16::from_le_bytes([phy[6], phy[7]]),
        })
    }
}

/// The device's 32-bit FCntDown for a received 16-bit value, given the last accepted one
/// (`None` right after a join: any value is taken as is). `Err` for a duplicate (equal);
/// a smaller 16-bit value means the counter wrapped (LoRaMac-node arithmetic).
pub fn fcnt_down_full(last: Option<u32>, received: u16) -> Result<u32, String> {
    let Some(last) = last else {
        return Ok(u32::from(received));
    };
    let diff = i32::from(received) - i32::from(last as u16);
    let full = match diff {
        d if d > 0 => last.checked_add(d as u32),
        0 => return Err(format!("FCntDown {last} again: duplicate, dropped")),
        _ => (last & 0xffff_0000)
            .checked_add(0x1_0000)
            .map(|hi| hi | u32::from(received)),
    };
    full.ok_or_else(|| format!("FCntDown passed 2^32 after {last}: the session is used up"))
}
