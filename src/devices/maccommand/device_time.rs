//! DeviceTimeReq → DeviceTimeAns (CID 0x0D): GPS time at the end of the uplink that
//! carried the request, in seconds and 1/256 s (end-devices.md §5.1). The caller
//! takes the time from station's `gpstime` when the gateway has one, else from the
//! arrival of the first copy.

use std::time::Duration;

use lrwn::{DeviceTimeAnsPayload, MACCommand};

use super::to_bytes;

pub fn answer(gps_end_us: i64) -> Vec<u8> {
    to_bytes(MACCommand::DeviceTimeAns(DeviceTimeAnsPayload {
        time_since_gps_epoch: Duration::from_micros(gps_end_us.max(0) as u64),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_vector() {
        // mac_commands.json: GPS 1400000003.5 s = 0d034e725380.
        assert_eq!(
            hex::encode(super::answer(1_400_000_003_500_000)),
            "0d034e725380"
        );
    }
}
