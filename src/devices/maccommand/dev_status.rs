//! DevStatusReq / DevStatusAns (CID 0x06): battery and link margin, reported as a
//! `status` event (battery 0 = external power, 255 = cannot measure).

use lrwn::MACCommand;

use super::{to_bytes, DevStatus};

pub fn request() -> Vec<u8> {
    to_bytes(MACCommand::DevStatusReq)
}

/// (external power, level unavailable, level in percent) for the event.
pub fn battery(s: DevStatus) -> (bool, bool, f32) {
    match s.battery {
        0 => (true, false, 0.0),
        255 => (false, true, 0.0),
        b => (false, false, f32::from(b) / 254.0 * 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn battery_levels() {
        assert_eq!(hex::encode(request()), "06");
        assert_eq!(
            battery(DevStatus {
                battery: 254,
                margin: -6
            }),
            (false, false, 100.0)
        );
        assert!(
            battery(DevStatus {
                battery: 0,
                margin: 0
            })
            .0,
            "0 means external power"
        );
    }
}
