//! TS003 clock synchronisation, device side (fuota.md §3, end-devices.md §6.1): AppTimeReq
//! with the device's clock, AppTimeAns applied only when its token matches (then the token
//! moves on, LoRaMac-node), ForceDeviceResyncReq sending NbTransmissions AppTimeReq.

use super::{le32, AppLayer, PORT_CLOCK};

impl AppLayer {
    /// AppTimeReq: DeviceTime (u32 LE, the device's GPS seconds) · Param (TokenReq, AnsRequired).
    pub(super) fn app_time_req(&mut self, now: f64) -> Vec<u8> {
        let device_time = self.device_time(now).floor() as u64 as u32;
        let mut b = vec![0x01];
        b.extend(device_time.to_le_bytes());
        b.push(self.token & 0x0f | 0x10);
        self.note(format!(
            "AppTimeReq DeviceTime {device_time} token {}",
            self.token
        ));
        b
    }

    pub(super) fn clock_command(&mut self, cmd: &[u8]) {
        match cmd[0] {
            0x01 => {
                let correction = le32(&cmd[1..5]) as i32;
                let token = cmd[5] & 0x0f;
                if token != self.token {
                    self.note(format!(
                        "AppTimeAns token {token} is not {}: ignored",
                        self.token
                    ));
                    return;
                }
                self.clock_offset += f64::from(correction);
                self.token = (self.token + 1) % 16;
                self.resync_left = 0;
                self.note(format!("AppTimeAns correction {correction} s applied"));
            }
            0x02 => {
                // DeviceAppTimePeriodicityReq: not supported (as LoRaMac-node answers).
                let mut b = vec![0x02, 0x01];
                b.extend(0u32.to_le_bytes());
                self.answer(PORT_CLOCK, b);
            }
            0x03 => {
                self.resync_left = cmd[1] & 0x07;
                self.note(format!(
                    "ForceDeviceResyncReq: {} AppTimeReq",
                    self.resync_left
                ));
            }
            _ => unreachable!("command_len knows only these CIDs"),
        }
    }
}
