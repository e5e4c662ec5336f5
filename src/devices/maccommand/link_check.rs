//! LinkCheckReq → LinkCheckAns (CID 0x02): the margin of the best reception above
//! the demodulation floor of the uplink's spreading factor, and how many gateways
//! heard it (end-devices.md §5.1).

use lrwn::{LinkCheckAnsPayload, MACCommand};

use super::{to_bytes, Reception};
use crate::devices::region::required_snr;

pub fn answer(rx: &Reception) -> Vec<u8> {
    let margin = (rx.best_snr - required_snr(rx.sf)).clamp(0.0, 254.0) as u8;
    to_bytes(MACCommand::LinkCheckAns(LinkCheckAnsPayload {
        margin,
        gw_cnt: rx.gateways.min(255) as u8,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_vector() {
        // mac_commands.json: LinkCheckAns 20 dB, 1 gateway = 021401.
        let rx = Reception {
            best_snr: 12.5,
            sf: 7,
            gateways: 1,
            gps_end_us: 0,
        };
        assert_eq!(hex::encode(answer(&rx)), "021401");
    }
}
