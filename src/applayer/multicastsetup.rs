//! TS005 remote multicast setup (port 200; fuota.md §4, end-devices.md §6.2): the
//! McGroupSetupReq that gives a device the group's address, its McKey encrypted
//! under the device's own McKEKey and the frame counter range, and the answers to
//! it and to McClassC/BSessionReq (built by `fuota::group::session_req`).

use lrwn::applayer::multicastsetup::v1 as ts005;
use lrwn::DevAddr;

use super::{split, BadAnswer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    PackageVersionAns {
        package: u8,
        version: u8,
    },
    McGroupSetupAns {
        group: u8,
        id_error: bool,
    },
    McGroupDeleteAns {
        group: u8,
    },
    /// McClassCSessionAns or McClassBSessionAns.
    SessionAns {
        class_b: bool,
        group: u8,
        dr_error: bool,
        freq_error: bool,
        group_undefined: bool,
        time_to_start: Option<u32>,
    },
    McGroupStatusAns,
}

fn len(cid: u8, b: &[u8]) -> Option<usize> {
    match cid {
        0x00 => Some(3),
        // AnsGroupMask (4 bits) then one (McGroupID, McAddr) of 5 octets per set bit.
        0x01 => Some(2 + 5 * b.get(1).map_or(0, |m| (m & 0x0f).count_ones() as usize)),
        0x02 | 0x03 => Some(2),
        // TimeToStart (3 octets) only when no error bit is set.
        0x04 | 0x05 => Some(if b.get(1).is_some_and(|s| s & 0x1c == 0) {
            5
        } else {
            2
        }),
        _ => None,
    }
}

pub fn parse(b: &[u8]) -> Vec<Result<Up, BadAnswer>> {
    split(b, len)
        .into_iter()
        .map(|c| {
            let c = c?;
            let p = ts005::Payload::from_slice(true, c)
                .map_err(|e| BadAnswer::Undecodable(e.to_string()))?;
            Ok(match p {
                ts005::Payload::PackageVersionAns(p) => Up::PackageVersionAns {
                    package: p.package_identifier,
                    version: p.package_version,
                },
                ts005::Payload::McGroupSetupAns(p) => Up::McGroupSetupAns {
                    group: p.mc_group_id_header.mc_group_id,
                    id_error: p.mc_group_id_header.id_error,
                },
                ts005::Payload::McGroupDeleteAns(p) => Up::McGroupDeleteAns {
                    group: p.mc_group_id_header.mc_group_id,
                },
                ts005::Payload::McClassCSessionAns(p) => Up::SessionAns {
                    class_b: false,
                    group: p.status_and_mc_group_id.mc_group_id,
                    dr_error: p.status_and_mc_group_id.dr_error,
                    freq_error: p.status_and_mc_group_id.freq_error,
                    group_undefined: p.status_and_mc_group_id.mc_group_undefined,
                    time_to_start: p.time_to_start,
                },
                ts005::Payload::McClassBSessionAns(p) => Up::SessionAns {
                    class_b: true,
                    group: p.status_and_mc_group_id.mc_group_id,
                    dr_error: p.status_and_mc_group_id.dr_error,
                    freq_error: p.status_and_mc_group_id.freq_error,
                    group_undefined: p.status_and_mc_group_id.mc_group_undefined,
                    time_to_start: p.time_to_start,
                },
                ts005::Payload::McGroupStatusAns(_) => Up::McGroupStatusAns,
                _ => return Err(BadAnswer::UnknownCid(c[0])),
            })
        })
        .collect()
}

/// McGroupSetupReq for group slot `group`: the McKey already encrypted for this
/// device, and the frame counters the device accepts (both ends included).
pub fn group_setup_req(
    group: u8,
    mc_addr: u32,
    mc_key_encrypted: [u8; 16],
    min_fcnt: u32,
    max_fcnt: u32,
) -> Vec<u8> {
    ts005::Payload::McGroupSetupReq(ts005::McGroupSetupReqPayload {
        mc_group_id_header: ts005::McGroupSetupReqPayloadMcGroupIdHeader { mc_group_id: group },
        mc_addr: DevAddr::from_be_bytes(mc_addr.to_be_bytes()),
        mc_key_encrypted,
        min_mc_f_count: min_fcnt,
        max_mc_f_count: max_fcnt,
    })
    .to_vec()
    .expect("a group id of 0..=3 encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_d1_u2() {
        // end-devices.md §6.2: D1's McGroupSetupReq and U2's answer.
        let key: [u8; 16] = hex::decode("19bb8fa40338fc062708aabe7ba4919c")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(group_setup_req(0, 0x0102_0304, key, 0, 0xffff_ffff)),
            "02000403020119bb8fa40338fc062708aabe7ba4919c00000000ffffffff"
        );
        assert_eq!(
            parse(&hex::decode("0200").unwrap()),
            vec![Ok(Up::McGroupSetupAns {
                group: 0,
                id_error: false
            })]
        );
    }

    #[test]
    fn session_answers_with_and_without_time_to_start() {
        // Group 0, no error, TimeToStart 300 s; then group 1 with a DR error, alone.
        assert_eq!(
            parse(&hex::decode("04002c0100").unwrap()),
            vec![Ok(Up::SessionAns {
                class_b: false,
                group: 0,
                dr_error: false,
                freq_error: false,
                group_undefined: false,
                time_to_start: Some(300)
            })]
        );
        let got = parse(&hex::decode("0405").unwrap());
        assert!(matches!(
            got[0],
            Ok(Up::SessionAns {
                group: 1,
                dr_error: true,
                time_to_start: None,
                ..
            })
        ));
        // Two answers of one package back to back.
        assert_eq!(parse(&hex::decode("02000204").unwrap()).len(), 2);
    }
}
