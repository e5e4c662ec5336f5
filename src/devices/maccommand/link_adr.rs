//! LinkADRReq / LinkADRAns (CID 0x03): here only to keep a US915 device on the
//! sub-band its gateways listen on (end-devices.md §5.2); ADR itself is off. The
//! block's new mask applies only when every status bit is set.

use lrwn::LinkADRAnsPayload;

use super::{negative, MacState, Request};
use crate::devices::region::us915_sub_band_link_adr;

/// The request for sub-band `sb`, keeping the device's DR.
pub fn request(mac_version: &str, sb: u8, dr: u8) -> Request {
    Request::LinkAdr {
        sub_band: sb,
        block: us915_sub_band_link_adr(mac_version, sb, dr),
    }
}

pub fn on_answer(state: &mut MacState, a: &LinkADRAnsPayload) {
    let pending = state.pending.iter().find_map(|p| match p.request {
        Request::LinkAdr { sub_band, .. } => Some(sub_band),
        _ => None,
    });
    let Some(sb) = pending else { return };
    if a.ch_mask_ack && a.dr_ack && a.tx_power_ack {
        state.sub_band = Some(sb);
        state
            .pending
            .retain(|p| !matches!(p.request, Request::LinkAdr { .. }));
    } else {
        negative(state, |r| matches!(r, Request::LinkAdr { .. }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::maccommand::{handle_uplink, want, Reception};

    #[test]
    fn a_positive_answer_applies_the_sub_band() {
        let mut s = MacState::defaults((8, 923_300_000));
        want(&mut s, &[request("1.0.3", 2, 3)]);
        let rx = Reception {
            best_snr: 0.0,
            sf: 10,
            gateways: 1,
            gps_end_us: 0,
        };
        handle_uplink(&mut s, &[0x03, 0x06], &rx);
        assert_eq!(s.sub_band, None, "channel mask refused");
        handle_uplink(&mut s, &[0x03, 0x07, 0x03, 0x07], &rx);
        assert_eq!(s.sub_band, Some(2));
        assert!(s.pending.is_empty());
    }
}
