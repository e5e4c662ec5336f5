//! The application-layer packages a FUOTA task speaks to each device over unicast
//! (end-devices.md §6): TS003 clock synchronisation (`clocksync`, port 202), TS005
//! remote multicast setup (`multicastsetup`, port 200), TS004 fragmentation
//! (`fragmentation`, port 201) and TS006 firmware management (`firmware`, port 203).
//! Each module builds the requests the server sends and reads the answers a device
//! sends back; `lrwn` does the encodings of TS003–TS005, TS006 (which `lrwn` lacks)
//! is written here from its tables. One uplink may carry several answers of one
//! package back to back; `split` cuts them by each CID's length.

pub mod clocksync;
pub mod firmware;
pub mod fragmentation;
pub mod multicastsetup;

/// The default ports of the packages (AWS's `FPorts` defaults; TS006 is 203).
pub const PORT_MULTICAST: u8 = 200;
pub const PORT_FRAGMENTATION: u8 = 201;
pub const PORT_CLOCK: u8 = 202;
pub const PORT_FIRMWARE: u8 = 203;

/// Whether an FPort belongs to a package this server consumes (its payload is
/// not forwarded to the application as an `up` event).
pub fn is_package_port(port: u8) -> bool {
    (PORT_MULTICAST..=PORT_FIRMWARE).contains(&port)
}

/// Why an answer was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    #[error("CID 0x{0:02x} is not an answer of this package")]
    UnknownCid(u8),
    #[error("answer with CID 0x{cid:02x} is truncated ({got} of {want} bytes)")]
    Truncated { cid: u8, got: usize, want: usize },
    #[error("answer cannot be decoded: {0}")]
    Undecodable(String),
}

/// Cuts an uplink payload into commands: `len(cid, rest)` gives the length of the
/// command starting at `rest[0]` (its CID included), or `None` for an unknown CID.
/// A command that runs past the end is `Truncated`; what follows an unknown CID
/// cannot be framed and is dropped with it.
pub fn split(
    mut b: &[u8],
    len: impl Fn(u8, &[u8]) -> Option<usize>,
) -> Vec<Result<&[u8], BadAnswer>> {
    let mut out = Vec::new();
    while let Some(&cid) = b.first() {
        let Some(n) = len(cid, b) else {
            out.push(Err(BadAnswer::UnknownCid(cid)));
            break;
        };
        if b.len() < n {
            out.push(Err(BadAnswer::Truncated {
                cid,
                got: b.len(),
                want: n,
            }));
            break;
        }
        out.push(Ok(&b[..n]));
        b = &b[n..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_frames_known_lengths_and_reports_the_rest() {
        let len = |cid: u8, _: &[u8]| match cid {
            1 => Some(2),
            2 => Some(1),
            _ => None,
        };
        let got = split(&[1, 9, 2, 1, 9], len);
        assert_eq!(got[0], Ok(&[1u8, 9][..]));
        assert_eq!(got[1], Ok(&[2u8][..]));
        assert_eq!(got[2], Ok(&[1u8, 9][..]));
        assert_eq!(
            split(&[1], len),
            vec![Err(BadAnswer::Truncated {
                cid: 1,
                got: 1,
                want: 2
            })]
        );
        assert_eq!(split(&[7, 1, 2], len), vec![Err(BadAnswer::UnknownCid(7))]);
    }
}
