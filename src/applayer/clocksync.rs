//! TS003 clock synchronisation (port 202; fuota.md §3, end-devices.md §6.1): the
//! device's AppTimeReq is answered with the correction between the GPS time the
//! uplink was received and the DeviceTime it carried; ForceDeviceResyncReq asks a
//! device that never asks to do so.

use lrwn::applayer::clocksync::v1 as ts003;

use super::{split, BadAnswer};

/// What a device sends on the clock port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    AppTimeReq {
        device_time: u32,
        token: u8,
        ans_required: bool,
    },
    PackageVersionAns {
        package: u8,
        version: u8,
    },
    /// DeviceAppTimePeriodicityAns: read, not used (LoRaMac-node always says
    /// "not supported").
    Periodicity,
}

fn len(cid: u8, _: &[u8]) -> Option<usize> {
    match cid {
        0x00 => Some(3),
        0x01 => Some(6),
        0x02 => Some(6),
        _ => None,
    }
}

/// Reads the commands of one port-202 uplink.
pub fn parse(b: &[u8]) -> Vec<Result<Up, BadAnswer>> {
    split(b, len)
        .into_iter()
        .map(|c| {
            let c = c?;
            match ts003::Payload::from_slice(true, c)
                .map_err(|e| BadAnswer::Undecodable(e.to_string()))?
            {
                ts003::Payload::AppTimeReq(p) => Ok(Up::AppTimeReq {
                    device_time: p.device_time,
                    token: p.param.token_req,
                    ans_required: p.param.ans_required,
                }),
                ts003::Payload::PackageVersionAns(p) => Ok(Up::PackageVersionAns {
                    package: p.package_identifier,
                    version: p.package_version,
                }),
                ts003::Payload::DeviceAppTimePeropdicityAns(_) => Ok(Up::Periodicity),
                _ => Err(BadAnswer::UnknownCid(c[0])),
            }
        })
        .collect()
}

/// AppTimeAns for a request whose uplink ended at GPS second `received_gps_s`.
pub fn app_time_ans(received_gps_s: u32, device_time: u32, token: u8) -> Vec<u8> {
    let correction = received_gps_s.wrapping_sub(device_time) as i32;
    ts003::Payload::AppTimeAns(ts003::AppTimeAnsPayload {
        time_correction: correction,
        param: ts003::AppTimeAnsPayloadParam {
            token_ans: token & 0x0f,
        },
    })
    .to_vec()
    .expect("AppTimeAns fields are in range")
}

/// ForceDeviceResyncReq: send `nb` (1–7) AppTimeReq.
pub fn force_resync_req(nb: u8) -> Vec<u8> {
    ts003::Payload::ForceDeviceResyncReq(ts003::ForceDeviceResyncReqPayload {
        force_conf: ts003::ForceDeviceResyncReqPayloadForceConf {
            nb_transmissions: nb.clamp(1, 7),
        },
    })
    .to_vec()
    .expect("NbTransmissions is 3 bits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_time_round_trip() {
        // AppTimeReq DeviceTime 1400000000, token 3, AnsRequired.
        let mut req = vec![0x01];
        req.extend_from_slice(&1_400_000_000u32.to_le_bytes());
        req.push(0x13);
        assert_eq!(
            parse(&req),
            vec![Ok(Up::AppTimeReq {
                device_time: 1_400_000_000,
                token: 3,
                ans_required: true
            })]
        );
        // Received 20 s later: correction +20, token echoed.
        assert_eq!(
            hex::encode(app_time_ans(1_400_000_020, 1_400_000_000, 3)),
            "011400000003"
        );
        assert_eq!(hex::encode(force_resync_req(1)), "0301");
        assert!(matches!(
            parse(&[0x01, 0, 0])[0],
            Err(BadAnswer::Truncated { .. })
        ));
    }
}
