//! An independent LoRaWAN 1.0.x class A **end-device simulator** for the tests, written from
//! `shared/spec/end-devices.md` (§ numbers refer to it) and sharing no code with the server:
//! no `stationkeeper::` item and no `lrwn` (AES/CMAC come from the `aes`/`cmac` crates, as in
//! `fuota_device.rs`). It builds join-requests and data uplinks, opens join-accepts, checks
//! and decrypts downlinks with its own FCntDown, keeps the MAC state a device keeps (RX1
//! offset, RX2, RxDelay, channel mask, DR/power/NbTrans) and answers MAC commands in its next
//! uplink. [`Device::check_class_a_dnmsg`] says whether a station `dnmsg` hits the device's
//! class A windows (§3.4).
//!
//! A test drives it through the LNS station simulator (`common::lns_station`) like this:
//!
//! ```ignore
//! use common::lorawan_device::{Device, DownCmd, MacVersion, Region, UpCmd, Uplink, UplinkMeta};
//!
//! let mut dev = Device::otaa(Region::Eu868, MacVersion::V1_0_4, DEV_EUI, JOIN_EUI, APP_KEY);
//! let meta = RadioMeta { dr: 5, freq: 868_100_000, ..RadioMeta::default() };
//!
//! // Join: station splits the PHYPayload into a `jreq` (send_phy does what lora.c does).
//! let sent = session.send_phy(&dev.join_request(), &meta).await?;
//! let up = UplinkMeta::from_sent(&sent);
//! let m = session
//!     .next_matching(T, |m| matches!(m, ServerMessage::Dnmsg { .. }))
//!     .await?;
//! let ServerMessage::Dnmsg { msg, .. } = m else { unreachable!() };
//! dev.check_class_a_dnmsg(&up, &msg.raw)?; // RxDelay 5, RX1 at offset 0, RX2 default
//! let accept = dev.accept_join(msg.pdu.as_deref().unwrap())?; // MIC, keys, CFList
//!
//! // A confirmed uplink asking for a link check; the answer comes in the RX1 downlink.
//! let phy = dev.uplink(&Uplink::confirmed(1, b"hello").with_mac(vec![UpCmd::LinkCheckReq]))?;
//! let up = UplinkMeta::from_sent(&session.send_phy(&phy, &meta).await?);
//! let msg = /* the next dnmsg, as above */;
//! dev.check_class_a_dnmsg(&up, &msg.raw)?; // RxDelay/RX1/RX2 of the session, xtime/rctx
//! let rx = dev.downlink(msg.pdu.as_deref().unwrap())?; // FCntDown, MIC, decrypt, MAC
//! assert!(rx.ack);
//! assert!(rx.commands.iter().any(|c| matches!(c, DownCmd::LinkCheckAns { .. })));
//! // Answers to the downlink's requests ride in the next `dev.uplink(..)` by themselves.
//! ```

mod answers;
pub mod applayer;
pub mod crypto;
pub mod frame;
pub mod mac;
pub mod region;
pub mod station;

#[allow(unused_imports)]
pub use crypto::{Dir, Key};
#[allow(unused_imports)]
pub use frame::{fcnt_down_full, DataFrame, JoinAccept};
#[allow(unused_imports)]
pub use mac::{DownCmd, UpCmd};
#[allow(unused_imports)]
pub use region::{Channels, Region};
#[allow(unused_imports)]
pub use station::{
    check_class_a_dnmsg, expected_windows, pdu_of, station_fields, to_jreq, to_updf, ClassAWindows,
    UplinkMeta,
};

use std::collections::HashSet;

/// The device's LoRaWAN version (DevNonce rules §2.2, MAX_FCNT_GAP §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacVersion {
    V1_0_2,
    V1_0_3,
    V1_0_4,
}

/// Settings the network changes with the join-accept and MAC commands; reset by a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacState {
    pub rx1_dr_offset: u8,
    pub rx2_dr: u8,
    pub rx2_freq: u32,
    /// RX1 delay in seconds (1–15).
    pub rx_delay: u8,
    pub channels: Channels,
    pub dr: u8,
    pub tx_power: u8,
    pub nb_trans: u8,
    pub max_dcycle: u8,
}

impl MacState {
    pub fn defaults(region: Region) -> Self {
        let (rx2_dr, rx2_freq) = region.rx2_default();
        MacState {
            rx1_dr_offset: 0,
            rx2_dr,
            rx2_freq,
            rx_delay: region::RECEIVE_DELAY1,
            channels: region.default_channels(),
            dr: 0,
            tx_power: 0,
            nb_trans: 1,
            max_dcycle: 0,
        }
    }
}

/// An active session (after a join, or provisioned for ABP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub dev_addr: u32,
    pub nwk_s_key: Key,
    pub app_s_key: Key,
    /// FCntUp of the next new uplink (u64 so that "used up" is representable).
    pub fcnt_up: u64,
    /// The last FCntDown accepted; `None` until the first downlink.
    pub last_fcnt_down: Option<u32>,
    pub mac: MacState,
}

/// An uplink to build. `mac` commands are sent besides the queued answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uplink {
    pub confirmed: bool,
    pub fport: Option<u8>,
    pub payload: Vec<u8>,
    pub mac: Vec<UpCmd>,
    pub adr: bool,
    pub adr_ack_req: bool,
}

impl Uplink {
    pub fn unconfirmed(fport: u8, payload: &[u8]) -> Self {
        Uplink {
            fport: Some(fport),
            payload: payload.to_vec(),
            ..Uplink::default()
        }
    }
    pub fn confirmed(fport: u8, payload: &[u8]) -> Self {
        Uplink {
            confirmed: true,
            ..Uplink::unconfirmed(fport, payload)
        }
    }
    /// No FPort, no payload: FHDR (and FOpts) only.
    pub fn empty() -> Self {
        Uplink::default()
    }
    pub fn with_mac(mut self, cmds: Vec<UpCmd>) -> Self {
        self.mac = cmds;
        self
    }
}

/// A downlink the device accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub frame: DataFrame,
    pub confirmed: bool,
    /// FCtrl.ACK: the network acknowledged our last confirmed uplink.
    pub ack: bool,
    pub fpending: bool,
    pub adr: bool,
    /// The MAC commands (from FOpts or FPort 0), in order.
    pub commands: Vec<DownCmd>,
}

/// Whatever arrived in a class A window, after the device checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rx {
    JoinAccept(JoinAccept),
    Data(Received),
}

/// What the device listens with after its last transmission (snapshot at send time, so a
/// downlink checked later is compared with the windows the device really opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub join: bool,
    pub rx_delay: u8,
    pub rx1_dr_offset: u8,
    pub rx2_dr: u8,
    pub rx2_freq: u32,
}

/// The simulated end device.
#[derive(Debug, Clone)]
pub struct Device {
    pub region: Region,
    pub version: MacVersion,
    pub dev_eui: u64,
    pub join_eui: u64,
    pub app_key: Key,
    /// 1.0.4: the next DevNonce (a counter from 0).
    pub next_dev_nonce: u16,
    /// DevNonces this device already used (1.0.2/1.0.3 pick random unused ones).
    pub used_dev_nonces: HashSet<u16>,
    /// The last JoinNonce accepted (1.0.4 devices want it to grow).
    pub last_join_nonce: Option<u32>,
    /// What DevStatusAns reports.
    pub battery: u8,
    pub snr_margin: i8,
    pub session: Option<Session>,
    /// The last LinkCheckAns (margin, gateway count) and DeviceTimeAns (GPS s, 1/256 s).
    pub last_link_check: Option<(u8, u8)>,
    pub last_device_time: Option<(u32, u8)>,
    /// Answers for the next uplink only, and sticky ones repeated until a downlink arrives.
    answers: Vec<UpCmd>,
    sticky: Vec<UpCmd>,
    /// A confirmed downlink arrived: set ACK in the next uplink.
    ack_next: bool,
    /// A confirmed uplink went out and no downlink with ACK came yet.
    pub awaiting_ack: bool,
    pending_join: Option<u16>,
    windows: Option<Windows>,
    last_uplink: Option<Vec<u8>>,
}

impl Device {
    /// An OTAA device that has not joined yet.
    pub fn otaa(
        region: Region,
        version: MacVersion,
        dev_eui: u64,
        join_eui: u64,
        app_key: Key,
    ) -> Self {
        Device {
            region,
            version,
            dev_eui,
            join_eui,
            app_key,
            next_dev_nonce: 0,
            used_dev_nonces: HashSet::new(),
            last_join_nonce: None,
            battery: 254,
            snr_margin: 10,
            session: None,
            last_link_check: None,
            last_device_time: None,
            answers: Vec::new(),
            sticky: Vec::new(),
            ack_next: false,
            awaiting_ack: false,
            pending_join: None,
            windows: None,
            last_uplink: None,
        }
    }

    /// An ABP device with its provisioned session (counters from 0, regional defaults).
    pub fn abp(
        region: Region,
        version: MacVersion,
        dev_eui: u64,
        dev_addr: u32,
        nwk_s_key: Key,
        app_s_key: Key,
    ) -> Self {
        let mut d = Device::otaa(region, version, dev_eui, 0, [0; 16]);
        d.session = Some(Session {
            dev_addr,
            nwk_s_key,
            app_s_key,
            fcnt_up: 0,
            last_fcnt_down: None,
            mac: MacState::defaults(region),
        });
        d
    }

    pub fn session(&self) -> Result<&Session, String> {
        self.session
            .as_ref()
            .ok_or_else(|| "the device has no session: join first".to_string())
    }

    fn session_mut(&mut self) -> Result<&mut Session, String> {
        self.session
            .as_mut()
            .ok_or_else(|| "the device has no session: join first".to_string())
    }

    /// The windows opened after the last transmission, if any.
    pub fn windows(&self) -> Option<Windows> {
        self.windows
    }

    /// The uplink frequency of the `k`-th transmission when hopping over the enabled channels
    /// in turn (the regional defaults before a join; sub-band 2 after join B's CFList).
    pub fn hop_freq(&self, k: usize) -> u32 {
        let ch = self.session.as_ref().map_or_else(
            || self.region.default_channels(),
            |s| s.mac.channels.clone(),
        );
        let on = ch.enabled_indices();
        ch.freq[on[k % on.len()]]
    }

    /// Answers waiting for the next uplink (one-shot first, then sticky).
    pub fn queued_answers(&self) -> Vec<UpCmd> {
        self.answers.iter().chain(&self.sticky).cloned().collect()
    }

    /// A join-request with the next DevNonce: 1.0.4 the counter, earlier a random unused one.
    pub fn join_request(&mut self) -> Vec<u8> {
        let nonce = match self.version {
            MacVersion::V1_0_4 => self.next_dev_nonce,
            _ => loop {
                let n: u16 = rand::random();
                if !self.used_dev_nonces.contains(&n) {
                    break n;
                }
            },
        };
        self.join_request_with_nonce(nonce)
    }

    /// A join-request with a given DevNonce (e.g. to replay one). A 1.0.4 counter moves past it.
    pub fn join_request_with_nonce(&mut self, nonce: u16) -> Vec<u8> {
        if self.version == MacVersion::V1_0_4 && nonce >= self.next_dev_nonce {
            self.next_dev_nonce = nonce.wrapping_add(1);
        }
        self.used_dev_nonces.insert(nonce);
        self.pending_join = Some(nonce);
        self.windows = Some(Windows {
            join: true,
            rx_delay: region::JOIN_ACCEPT_DELAY1,
            rx1_dr_offset: 0,
            rx2_dr: self.region.rx2_default().0,
            rx2_freq: self.region.rx2_default().1,
        });
        let phy = frame::join_request(&self.app_key, self.join_eui, self.dev_eui, nonce);
        self.last_uplink = Some(phy.clone());
        phy
    }

    /// Accepts a join-accept for the last join-request: MIC, keys, DLSettings, RxDelay,
    /// CFList. The new session starts at FCntUp = 0 with the regional defaults (§2.4).
    pub fn accept_join(&mut self, phy: &[u8]) -> Result<JoinAccept, String> {
        let dev_nonce = self
            .pending_join
            .ok_or("no join-request is waiting for a join-accept")?;
        let ja = frame::open_join_accept(&self.app_key, phy)?;
        if self.version == MacVersion::V1_0_4 {
            if let Some(last) = self.last_join_nonce.filter(|&l| ja.join_nonce <= l) {
                return Err(format!(
                    "JoinNonce {} not greater than the last accepted {last} (1.0.4 §6.2.6)",
                    ja.join_nonce
                ));
            }
        }
        let mut mac = MacState::defaults(self.region);
        if ja.rx1_dr_offset > self.region.max_rx1_dr_offset() {
            return Err(format!(
                "join-accept RX1DROffset {} out of range",
                ja.rx1_dr_offset
            ));
        }
        if !self.region.valid_downlink_dr(ja.rx2_dr) {
            return Err(format!("join-accept RX2 DR{} not a downlink DR", ja.rx2_dr));
        }
        mac.rx1_dr_offset = ja.rx1_dr_offset;
        mac.rx2_dr = ja.rx2_dr;
        mac.rx_delay = (ja.rx_delay & 0x0f).max(1);
        if let Some(cf) = &ja.cflist {
            self.region.apply_cflist(&mut mac.channels, cf)?;
        }
        let (nwk_s_key, app_s_key) =
            crypto::session_keys(&self.app_key, ja.join_nonce, ja.net_id, dev_nonce);
        self.session = Some(Session {
            dev_addr: ja.dev_addr,
            nwk_s_key,
            app_s_key,
            fcnt_up: 0,
            last_fcnt_down: None,
            mac,
        });
        self.last_join_nonce = Some(ja.join_nonce);
        self.pending_join = None;
        self.answers.clear();
        self.sticky.clear();
        self.ack_next = false;
        self.awaiting_ack = false;
        Ok(ja)
    }

    /// Builds the next uplink: queued MAC answers (+ `up.mac`) in FOpts, or on FPort 0 when
    /// they exceed 15 octets and there is no application payload; ACK set after a confirmed
    /// downlink; FCntUp advanced.
    pub fn uplink(&mut self, up: &Uplink) -> Result<Vec<u8>, String> {
        let mut cmds: Vec<UpCmd> = self.answers.iter().chain(&self.sticky).cloned().collect();
        cmds.extend(up.mac.iter().cloned());
        let mac_bytes = mac::encode_up(&cmds);
        let app = up.fport.is_some_and(|p| p != 0);
        let (fopts, fport, payload) = if up.fport == Some(0) || (mac_bytes.len() > 15 && !app) {
            if !up.payload.is_empty() && up.fport == Some(0) {
                return Err("FPort 0 carries only MAC commands: pass them in `mac`".into());
            }
            (Vec::new(), Some(0), mac_bytes)
        } else if mac_bytes.len() > 15 {
            return Err(format!(
                "{} octets of MAC commands do not fit FOpts next to FPort {:?}; send an \
                 uplink without payload first",
                mac_bytes.len(),
                up.fport
            ));
        } else {
            (mac_bytes, up.fport, up.payload.clone())
        };
        let mut fctrl = 0;
        for (on, bit) in [
            (up.adr, frame::FCTRL_ADR),
            (up.adr_ack_req, frame::FCTRL_ADR_ACK_REQ),
            (self.ack_next, frame::FCTRL_ACK),
        ] {
            if on {
                fctrl |= bit;
            }
        }
        let s = self.session()?;
        let fcnt = u32::try_from(s.fcnt_up)
            .map_err(|_| "FCntUp used up (2^32 frames): the device must rejoin".to_string())?;
        let f = DataFrame {
            mhdr: if up.confirmed {
                frame::MHDR_CONFIRMED_UP
            } else {
                frame::MHDR_UNCONFIRMED_UP
            },
            dev_addr: s.dev_addr,
            fctrl,
            fcnt,
            fopts,
            fport,
            payload,
        };
        let phy = f.encode(&s.nwk_s_key, &s.app_s_key)?;
        self.windows = Some(Windows {
            join: false,
            rx_delay: s.mac.rx_delay,
            rx1_dr_offset: s.mac.rx1_dr_offset,
            rx2_dr: s.mac.rx2_dr,
            rx2_freq: s.mac.rx2_freq,
        });
        self.session_mut()?.fcnt_up += 1;
        self.answers.clear();
        self.ack_next = false;
        self.awaiting_ack = up.confirmed;
        self.last_uplink = Some(phy.clone());
        Ok(phy)
    }

    /// The last frame sent again, unchanged (an NbTrans repetition, or a replay).
    pub fn retransmit(&self) -> Option<Vec<u8>> {
        self.last_uplink.clone()
    }

    /// Sets the next FCntUp (e.g. to cross 2^16 without 65536 frames).
    pub fn set_fcnt_up(&mut self, fcnt: u32) -> Result<(), String> {
        self.session_mut()?.fcnt_up = u64::from(fcnt);
        Ok(())
    }

    /// Receives a class A downlink: DevAddr, FCntDown (must grow), MIC, decryption, MAC
    /// commands (answers queued for the next uplink). Nothing changes when it is refused.
    pub fn downlink(&mut self, phy: &[u8]) -> Result<Received, String> {
        let h = frame::DataHeader::parse(phy)?;
        if frame::data_dir(phy[0])? != Dir::Down {
            return Err(format!("MHDR {:#04x} is an uplink", phy[0]));
        }
        let s = self.session()?;
        if h.dev_addr != s.dev_addr {
            return Err(format!(
                "DevAddr {:08x} is not the device's {:08x}",
                h.dev_addr, s.dev_addr
            ));
        }
        let fcnt = fcnt_down_full(s.last_fcnt_down, h.fcnt16)?;
        let f = DataFrame::decode(phy, fcnt, &s.nwk_s_key, &s.app_s_key)?;
        let raw_cmds = if f.fport == Some(0) {
            &f.payload
        } else {
            &f.fopts
        };
        let commands = DownCmd::decode_all(raw_cmds)?;

        self.session_mut()?.last_fcnt_down = Some(fcnt);
        // Any downlink in a class A window ends the repetition of sticky answers.
        self.sticky.clear();
        self.apply_commands(&commands)?;
        let confirmed = f.mhdr == frame::MHDR_CONFIRMED_DOWN;
        let ack = f.fctrl & frame::FCTRL_ACK != 0;
        if confirmed {
            self.ack_next = true;
        }
        if ack {
            self.awaiting_ack = false;
        }
        Ok(Received {
            confirmed,
            ack,
            fpending: f.fctrl & frame::FCTRL_FPENDING != 0,
            adr: f.fctrl & frame::FCTRL_ADR != 0,
            commands,
            frame: f,
        })
    }

    /// A `dnmsg` pdu of either kind: a join-accept while a join-request waits, else a data
    /// downlink.
    pub fn receive(&mut self, pdu: &[u8]) -> Result<Rx, String> {
        if pdu.first() == Some(&frame::MHDR_JOIN_ACCEPT) {
            self.accept_join(pdu).map(Rx::JoinAccept)
        } else {
            self.downlink(pdu).map(Rx::Data)
        }
    }
}
