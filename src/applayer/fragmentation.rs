//! TS004 fragmentation answers (port 201; fuota.md §6, end-devices.md §6.3). The
//! requests and the data fragments are built by `fuota::codec`; this reads what
//! devices answer to FragSessionSetupReq and FragSessionStatusReq.

use lrwn::applayer::fragmentation::v1 as ts004;

use super::{split, BadAnswer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    PackageVersionAns {
        package: u8,
        version: u8,
    },
    SetupAns {
        frag_index: u8,
        algo_unsupported: bool,
        not_enough_memory: bool,
        index_unsupported: bool,
        wrong_descriptor: bool,
    },
    StatusAns {
        frag_index: u8,
        received: u16,
        missing: u8,
        memory_error: bool,
    },
    DeleteAns,
}

fn len(cid: u8, _: &[u8]) -> Option<usize> {
    match cid {
        0x00 => Some(3),
        0x01 => Some(5),
        0x02 | 0x03 => Some(2),
        _ => None,
    }
}

pub fn parse(b: &[u8]) -> Vec<Result<Up, BadAnswer>> {
    split(b, len)
        .into_iter()
        .map(|c| {
            let c = c?;
            let p = ts004::Payload::from_slice(true, c)
                .map_err(|e| BadAnswer::Undecodable(e.to_string()))?;
            Ok(match p {
                ts004::Payload::PackageVersionAns(p) => Up::PackageVersionAns {
                    package: p.package_identifier,
                    version: p.package_version,
                },
                ts004::Payload::FragSessionSetupAns(p) => Up::SetupAns {
                    frag_index: p.frag_index,
                    algo_unsupported: p.encoding_unsupported,
                    not_enough_memory: p.not_enough_memory,
                    index_unsupported: p.frag_session_index_not_supported,
                    wrong_descriptor: p.wrong_descriptor,
                },
                ts004::Payload::FragSessionStatusAns(p) => Up::StatusAns {
                    frag_index: p.received_and_index.frag_index,
                    received: p.received_and_index.nb_frag_received,
                    missing: p.missing_frag,
                    memory_error: p.status.not_enough_matrix_memory,
                },
                ts004::Payload::FragSessionDeleteAns(_) => Up::DeleteAns,
                _ => return Err(BadAnswer::UnknownCid(c[0])),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_and_status_answers() {
        // FragSessionSetupAns: FragIndex 0, "not enough memory".
        assert_eq!(
            parse(&[0x02, 0x02]),
            vec![Ok(Up::SetupAns {
                frag_index: 0,
                algo_unsupported: false,
                not_enough_memory: true,
                index_unsupported: false,
                wrong_descriptor: false
            })]
        );
        // FragSessionStatusAns: 300 received, FragIndex 1, 4 missing, no error.
        let v = 300u16 | (1 << 14);
        let mut b = vec![0x01];
        b.extend_from_slice(&v.to_le_bytes());
        b.extend_from_slice(&[4, 0]);
        assert_eq!(
            parse(&b),
            vec![Ok(Up::StatusAns {
                frag_index: 1,
                received: 300,
                missing: 4,
                memory_error: false
            })]
        );
        // An oversized answer: the extra byte is not a known command.
        assert!(parse(&[0x02, 0x00, 0x7f])[1].is_err());
    }
}
