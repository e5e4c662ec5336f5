//! DevAddr allocation from the configured NetID (end-devices.md §2.5): the NetID's
//! type fixes the prefix (lrwn's table), and the NwkAddr below it is random.
//! Collisions with live sessions are avoided by the caller retrying. Pure apart
//! from the random draw.

use lrwn::{DevAddr, NetID};

/// Parses `[lorawan] net_id` (6 hex digits, e.g. `000000`).
pub fn parse_net_id(s: &str) -> Result<[u8; 3], String> {
    let b = hex::decode(s.trim()).map_err(|_| format!("{s:?} is not 6 hex digits"))?;
    <[u8; 3]>::try_from(b.as_slice()).map_err(|_| format!("{s:?} is not 6 hex digits (3 bytes)"))
}

/// A random DevAddr inside the NetID's prefix.
pub fn random(net_id: [u8; 3]) -> u32 {
    let mut a = DevAddr::from_be_bytes(rand::random::<u32>().to_be_bytes());
    a.set_dev_addr_prefix(NetID::from_be_bytes(net_id).dev_addr_prefix());
    u32::from_be_bytes(a.to_be_bytes())
}

/// Whether `addr` belongs to the NetID (what station's NetID filter checks).
pub fn belongs(net_id: [u8; 3], addr: u32) -> bool {
    DevAddr::from_be_bytes(addr.to_be_bytes()).is_net_id(NetID::from_be_bytes(net_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_the_join_vectors() {
        for (net, lo, hi) in [
            ("000000", 0x0000_0000u32, 0x01ff_ffffu32),
            ("000001", 0x0200_0000, 0x03ff_ffff),
            ("000013", 0x2600_0000, 0x27ff_ffff),
        ] {
            let id = parse_net_id(net).unwrap();
            for _ in 0..200 {
                let a = random(id);
                assert!((lo..=hi).contains(&a), "{net}: {a:08x}");
                assert!(belongs(id, a));
            }
        }
        assert!(parse_net_id("00001").is_err());
    }
}
