//! LoRaWAN 1.0.x MAC commands as a device sees them (end-devices.md §5.1): the uplink
//! requests/answers it sends and the downlink requests/answers it receives, each with an
//! encoder and a decoder (both directions are coded so tests can also build what a server
//! should send). All fields little-endian; frequencies travel in 100 Hz units.

/// Commands a device sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpCmd {
    LinkCheckReq,
    LinkAdrAns {
        power: bool,
        dr: bool,
        ch_mask: bool,
    },
    DutyCycleAns,
    RxParamSetupAns {
        rx1_dr_offset: bool,
        rx2_dr: bool,
        channel: bool,
    },
    DevStatusAns {
        battery: u8,
        margin: i8,
    },
    NewChannelAns {
        dr_range: bool,
        freq: bool,
    },
    RxTimingSetupAns,
    DeviceTimeReq,
}

/// Commands a device receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownCmd {
    LinkCheckAns {
        margin: u8,
        gw_cnt: u8,
    },
    LinkAdrReq {
        dr: u8,
        tx_power: u8,
        ch_mask: u16,
        ch_mask_cntl: u8,
        nb_trans: u8,
    },
    DutyCycleReq {
        max_dcycle: u8,
    },
    RxParamSetupReq {
        rx1_dr_offset: u8,
        rx2_dr: u8,
        freq: u32,
    },
    DevStatusReq,
    NewChannelReq {
        ch_index: u8,
        freq: u32,
        max_dr: u8,
        min_dr: u8,
    },
    RxTimingSetupReq {
        del: u8,
    },
    DeviceTimeAns {
        gps_seconds: u32,
        fraction: u8,
    },
}

fn bits(flags: &[bool]) -> u8 {
    // flags[0] is the most significant of the bits used.
    flags.iter().fold(0, |acc, &f| acc << 1 | u8::from(f))
}

fn freq_bytes(hz: u32) -> [u8; 3] {
    let b = (hz / 100).to_le_bytes();
    [b[0], b[1], b[2]]
}

fn freq_from(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0]) * 100
}

impl UpCmd {
    pub fn cid(&self) -> u8 {
        match self {
            UpCmd::LinkCheckReq => 0x02,
            UpCmd::LinkAdrAns { .. } => 0x03,
            UpCmd::DutyCycleAns => 0x04,
            UpCmd::RxParamSetupAns { .. } => 0x05,
            UpCmd::DevStatusAns { .. } => 0x06,
            UpCmd::NewChannelAns { .. } => 0x07,
            UpCmd::RxTimingSetupAns => 0x08,
            UpCmd::DeviceTimeReq => 0x0d,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.cid()];
        match *self {
            UpCmd::LinkAdrAns { power, dr, ch_mask } => v.push(bits(&[power, dr, ch_mask])),
            UpCmd::RxParamSetupAns {
                rx1_dr_offset,
                rx2_dr,
                channel,
            } => v.push(bits(&[rx1_dr_offset, rx2_dr, channel])),
            UpCmd::DevStatusAns { battery, margin } => {
                v.extend([battery, (margin as u8) & 0x3f]);
            }
            UpCmd::NewChannelAns { dr_range, freq } => v.push(bits(&[dr_range, freq])),
            _ => {}
        }
        v
    }

    /// All answer bits set (a positive answer), for the commands that have them.
    pub fn all_acked(&self) -> bool {
        let s = self.encode();
        match self {
            UpCmd::LinkAdrAns { .. } | UpCmd::RxParamSetupAns { .. } => s[1] & 7 == 7,
            UpCmd::NewChannelAns { .. } => s[1] & 3 == 3,
            _ => true,
        }
    }

    /// Decodes a sequence of uplink commands (what a server reads from FOpts / FPort 0).
    pub fn decode_all(mut b: &[u8]) -> Result<Vec<UpCmd>, String> {
        let mut out = Vec::new();
        while let Some(&cid) = b.first() {
            let len = match cid {
                0x02 | 0x04 | 0x08 | 0x0d => 1,
                0x03 | 0x05 | 0x07 => 2,
                0x06 => 3,
                c => {
                    return Err(format!(
                        "unknown uplink MAC command CID {c:#04x} in {b:02x?}"
                    ))
                }
            };
            let c = b
                .get(..len)
                .ok_or_else(|| format!("truncated MAC command {b:02x?}"))?;
            let bit = |i: u8| c[1] >> i & 1 == 1;
            out.push(match cid {
                0x02 => UpCmd::LinkCheckReq,
                0x03 => UpCmd::LinkAdrAns {
                    power: bit(2),
                    dr: bit(1),
                    ch_mask: bit(0),
                },
                0x04 => UpCmd::DutyCycleAns,
                0x05 => UpCmd::RxParamSetupAns {
                    rx1_dr_offset: bit(2),
                    rx2_dr: bit(1),
                    channel: bit(0),
                },
                // The 6-bit two's complement margin, sign-extended.
                0x06 => UpCmd::DevStatusAns {
                    battery: c[1],
                    margin: ((c[2] << 2) as i8) >> 2,
                },
                0x07 => UpCmd::NewChannelAns {
                    dr_range: bit(1),
                    freq: bit(0),
                },
                0x08 => UpCmd::RxTimingSetupAns,
                _ => UpCmd::DeviceTimeReq,
            });
            b = &b[len..];
        }
        Ok(out)
    }
}

impl DownCmd {
    pub fn cid(&self) -> u8 {
        match self {
            DownCmd::LinkCheckAns { .. } => 0x02,
            DownCmd::LinkAdrReq { .. } => 0x03,
            DownCmd::DutyCycleReq { .. } => 0x04,
            DownCmd::RxParamSetupReq { .. } => 0x05,
            DownCmd::DevStatusReq => 0x06,
            DownCmd::NewChannelReq { .. } => 0x07,
            DownCmd::RxTimingSetupReq { .. } => 0x08,
            DownCmd::DeviceTimeAns { .. } => 0x0d,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.cid()];
        match *self {
            DownCmd::LinkCheckAns { margin, gw_cnt } => v.extend([margin, gw_cnt]),
            DownCmd::LinkAdrReq {
                dr,
                tx_power,
                ch_mask,
                ch_mask_cntl,
                nb_trans,
            } => {
                v.push(dr << 4 | tx_power & 0x0f);
                v.extend(ch_mask.to_le_bytes());
                v.push((ch_mask_cntl & 7) << 4 | nb_trans & 0x0f);
            }
            DownCmd::DutyCycleReq { max_dcycle } => v.push(max_dcycle & 0x0f),
            DownCmd::RxParamSetupReq {
                rx1_dr_offset,
                rx2_dr,
                freq,
            } => {
                v.push((rx1_dr_offset & 7) << 4 | rx2_dr & 0x0f);
                v.extend(freq_bytes(freq));
            }
            DownCmd::NewChannelReq {
                ch_index,
                freq,
                max_dr,
                min_dr,
            } => {
                v.push(ch_index);
                v.extend(freq_bytes(freq));
                v.push(max_dr << 4 | min_dr & 0x0f);
            }
            DownCmd::RxTimingSetupReq { del } => v.push(del & 0x0f),
            DownCmd::DeviceTimeAns {
                gps_seconds,
                fraction,
            } => {
                v.extend(gps_seconds.to_le_bytes());
                v.push(fraction);
            }
            DownCmd::DevStatusReq => {}
        }
        v
    }

    /// Decodes the MAC commands of a downlink (FOpts or FPort 0). An unknown CID ends
    /// processing on a device (its length is unknown, §5.1); here it is an error so a test
    /// sees it.
    pub fn decode_all(mut b: &[u8]) -> Result<Vec<DownCmd>, String> {
        let mut out = Vec::new();
        while let Some(&cid) = b.first() {
            let len = match cid {
                0x06 => 1,
                0x04 | 0x08 => 2,
                0x02 => 3,
                0x03 | 0x05 => 5,
                0x07 | 0x0d => 6,
                c => {
                    return Err(format!(
                        "unknown downlink MAC command CID {c:#04x} in {b:02x?}"
                    ))
                }
            };
            let c = b
                .get(..len)
                .ok_or_else(|| format!("truncated MAC command {b:02x?}"))?;
            out.push(match cid {
                0x02 => DownCmd::LinkCheckAns {
                    margin: c[1],
                    gw_cnt: c[2],
                },
                0x03 => DownCmd::LinkAdrReq {
                    dr: c[1] >> 4,
                    tx_power: c[1] & 0x0f,
                    ch_mask: u16::from_le_bytes([c[2], c[3]]),
                    ch_mask_cntl: c[4] >> 4 & 7,
                    nb_trans: c[4] & 0x0f,
                },
                0x04 => DownCmd::DutyCycleReq {
                    max_dcycle: c[1] & 0x0f,
                },
                0x05 => DownCmd::RxParamSetupReq {
                    rx1_dr_offset: c[1] >> 4 & 7,
                    rx2_dr: c[1] & 0x0f,
                    freq: freq_from(&c[2..5]),
                },
                0x06 => DownCmd::DevStatusReq,
                0x07 => DownCmd::NewChannelReq {
                    ch_index: c[1],
                    freq: freq_from(&c[2..5]),
                    max_dr: c[5] >> 4,
                    min_dr: c[5] & 0x0f,
                },
                0x08 => DownCmd::RxTimingSetupReq { del: c[1] & 0x0f },
                _ => DownCmd::DeviceTimeAns {
                    gps_seconds: u32::from_le_bytes([c[1], c[2], c[3], c[4]]),
                    fraction: c[5],
                },
            });
            b = &b[len..];
        }
        Ok(out)
    }
}

/// Concatenated encodings.
pub fn encode_up(cmds: &[UpCmd]) -> Vec<u8> {
    cmds.iter().flat_map(UpCmd::encode).collect()
}

pub fn encode_down(cmds: &[DownCmd]) -> Vec<u8> {
    cmds.iter().flat_map(DownCmd::encode).collect()
}
