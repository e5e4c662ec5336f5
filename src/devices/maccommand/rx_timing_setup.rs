//! RXTimingSetupReq / RXTimingSetupAns (CID 0x08): the RX1 delay from the device
//! profile (`RxDelay1`). The answer has no status and is sticky.

use lrwn::{MACCommand, RxTimingSetupReqPayload};

use super::{to_bytes, MacState, Request};

pub fn request(delay: u8) -> Vec<u8> {
    to_bytes(MACCommand::RxTimingSetupReq(RxTimingSetupReqPayload {
        delay: delay & 0x0f,
    }))
}

pub fn on_answer(state: &mut MacState) {
    let asked = state.pending.iter().find_map(|p| match p.request {
        Request::RxTimingSetup { delay } => Some(delay),
        _ => None,
    });
    if let Some(d) = asked {
        state.rx_delay = d.max(1);
        state
            .pending
            .retain(|p| !matches!(p.request, Request::RxTimingSetup { .. }));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_the_delay() {
        assert_eq!(hex::encode(super::request(3)), "0803");
    }
}
