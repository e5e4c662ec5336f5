//! RXParamSetupReq / RXParamSetupAns (CID 0x05): moves the device's RX1 DR offset
//! and RX2 window when its profile asks for other values than the regional
//! defaults. The answer is sticky (repeated until a downlink arrives), so an
//! uplink carrying it is always answered; the values apply only when all three
//! bits are set.

use lrwn::{DLSettings, MACCommand, RxParamSetupAnsPayload, RxParamSetupReqPayload};

use super::{negative, to_bytes, MacState, Request};

pub fn request(rx1_dr_offset: u8, rx2_dr: u8, rx2_freq: u32) -> Vec<u8> {
    to_bytes(MACCommand::RxParamSetupReq(RxParamSetupReqPayload {
        frequency: rx2_freq,
        dl_settings: DLSettings {
            opt_neg: false,
            rx2_dr,
            rx1_dr_offset,
        },
    }))
}

pub fn on_answer(state: &mut MacState, a: &RxParamSetupAnsPayload) {
    let asked = state.pending.iter().find_map(|p| match p.request {
        Request::RxParamSetup {
            rx1_dr_offset,
            rx2_dr,
            rx2_freq,
        } => Some((rx1_dr_offset, rx2_dr, rx2_freq)),
        _ => None,
    });
    // A repeat of an answer already applied finds nothing pending: idempotent.
    let Some((off, dr, freq)) = asked else { return };
    if a.channel_ack && a.rx2_dr_ack && a.rx1_dr_offset_ack {
        state.rx1_dr_offset = off;
        state.rx2_dr = dr;
        state.rx2_freq = freq;
        state
            .pending
            .retain(|p| !matches!(p.request, Request::RxParamSetup { .. }));
    } else {
        negative(state, |r| matches!(r, Request::RxParamSetup { .. }));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_vector() {
        // mac_commands.json: RX1DROffset 1, RX2 DR3, 869.525 MHz = 0513d2ad84.
        assert_eq!(hex::encode(super::request(1, 3, 869_525_000)), "0513d2ad84");
    }
}
