//! How the simulated device answers the MAC commands of a downlink (end-devices.md §5.1–§5.3,
//! device side as in LoRaMac-node): it applies a request only when every part is acceptable,
//! queues one answer per request for its next uplink, and keeps RXParamSetupAns and
//! RXTimingSetupAns "sticky" (repeated until a downlink arrives, handled in `Device::downlink`).

use super::mac::{DownCmd, UpCmd};
use super::region::{Channels, Region};
use super::Device;

impl Device {
    /// Runs the downlink's MAC commands; a contiguous LinkADRReq run is one block (§5.2).
    pub(super) fn apply_commands(&mut self, cmds: &[DownCmd]) -> Result<(), String> {
        let mut i = 0;
        while i < cmds.len() {
            if matches!(cmds[i], DownCmd::LinkAdrReq { .. }) {
                let n = cmds[i..]
                    .iter()
                    .take_while(|c| matches!(c, DownCmd::LinkAdrReq { .. }))
                    .count();
                self.link_adr_block(&cmds[i..i + n])?;
                i += n;
            } else {
                self.apply_one(&cmds[i])?;
                i += 1;
            }
        }
        Ok(())
    }

    /// A LinkADRReq block: masks in order, DR/TXPower/NbTrans of the last one; applied only
    /// if all is acceptable; one LinkADRAns per command with the same status.
    fn link_adr_block(&mut self, block: &[DownCmd]) -> Result<(), String> {
        let region = self.region;
        let mac = &mut self.session_mut()?.mac;
        let mut channels = mac.channels.clone();
        let mut ch_ok = true;
        let mut last = (mac.dr, mac.tx_power, mac.nb_trans);
        for c in block {
            if let DownCmd::LinkAdrReq {
                dr,
                tx_power,
                ch_mask,
                ch_mask_cntl,
                nb_trans,
            } = *c
            {
                ch_ok &= region
                    .apply_ch_mask(&mut channels, ch_mask, ch_mask_cntl)
                    .is_ok();
                last = (dr, tx_power, nb_trans);
            }
        }
        ch_ok &= !channels.enabled_indices().is_empty();
        let (dr, power, nb) = last;
        // 15 means "keep the current value" (1.0.4 §5.3).
        let dr = if dr == 15 { mac.dr } else { dr };
        let power = if power == 15 { mac.tx_power } else { power };
        let dr_ok = region.valid_uplink_dr(dr) && channels.supports_dr(dr);
        let power_ok = region.valid_tx_power(power);
        if ch_ok && dr_ok && power_ok {
            mac.channels = channels;
            mac.dr = dr;
            mac.tx_power = power;
            mac.nb_trans = if nb == 0 { 1 } else { nb };
        }
        let ans = UpCmd::LinkAdrAns {
            power: power_ok,
            dr: dr_ok,
            ch_mask: ch_ok,
        };
        self.answers.extend(std::iter::repeat_n(ans, block.len()));
        Ok(())
    }

    fn apply_one(&mut self, cmd: &DownCmd) -> Result<(), String> {
        let region = self.region;
        let (battery, margin) = (self.battery, self.snr_margin);
        let mac = &mut self
            .session
            .as_mut()
            .ok_or("the device has no session: join first")?
            .mac;
        let mut answer = None;
        let mut sticky = None;
        match *cmd {
            DownCmd::LinkCheckAns { margin, gw_cnt } => {
                self.last_link_check = Some((margin, gw_cnt))
            }
            DownCmd::DeviceTimeAns {
                gps_seconds,
                fraction,
            } => self.last_device_time = Some((gps_seconds, fraction)),
            DownCmd::DutyCycleReq { max_dcycle } => {
                mac.max_dcycle = max_dcycle;
                answer = Some(UpCmd::DutyCycleAns);
            }
            DownCmd::DevStatusReq => answer = Some(UpCmd::DevStatusAns { battery, margin }),
            DownCmd::RxParamSetupReq {
                rx1_dr_offset,
                rx2_dr,
                freq,
            } => {
                let a = UpCmd::RxParamSetupAns {
                    rx1_dr_offset: rx1_dr_offset <= region.max_rx1_dr_offset(),
                    rx2_dr: region.valid_downlink_dr(rx2_dr),
                    channel: region.valid_downlink_freq(freq),
                };
                if a.all_acked() {
                    mac.rx1_dr_offset = rx1_dr_offset;
                    mac.rx2_dr = rx2_dr;
                    mac.rx2_freq = freq;
                }
                sticky = Some(a);
            }
            DownCmd::RxTimingSetupReq { del } => {
                mac.rx_delay = del.max(1);
                sticky = Some(UpCmd::RxTimingSetupAns);
            }
            DownCmd::NewChannelReq {
                ch_index,
                freq,
                max_dr,
                min_dr,
            } => {
                // US915 has no NewChannelReq: LoRaMac-node sends no answer there.
                if region == Region::Eu868 {
                    answer = Some(new_channel(
                        &mut mac.channels,
                        ch_index,
                        freq,
                        min_dr,
                        max_dr,
                    ));
                }
            }
            DownCmd::LinkAdrReq { .. } => unreachable!("handled as a block"),
        }
        self.answers.extend(answer);
        if let Some(a) = sticky {
            self.sticky.retain(|c| c.cid() != a.cid());
            self.sticky.push(a);
        }
        Ok(())
    }
}

/// EU868 NewChannelReq (§5.1): channels 0–2 are fixed; frequency 0 removes the channel.
fn new_channel(ch: &mut Channels, index: u8, freq: u32, min_dr: u8, max_dr: u8) -> UpCmd {
    let i = usize::from(index);
    let fixed = !(3..16).contains(&i);
    let freq_ok = !fixed && (freq == 0 || (863_000_000..=870_000_000).contains(&freq));
    let dr_ok = !fixed && min_dr <= max_dr && max_dr <= 7;
    if freq_ok && dr_ok {
        ch.freq[i] = freq;
        ch.dr_range[i] = (min_dr, max_dr);
        ch.enabled[i] = freq != 0;
    }
    UpCmd::NewChannelAns {
        dr_range: dr_ok,
        freq: freq_ok,
    }
}
