//! The 32-bit uplink frame counter from the 16 bits on air, and what the network
//! does with it (end-devices.md §1.7): a newer frame, the last accepted frame
//! again (retransmission), or a gap too large for a 1.0.2/1.0.3 device. Pure.

/// LoRaWAN 1.0.2/1.0.3 MAX_FCNT_GAP (removed in 1.0.4).
pub const MAX_FCNT_GAP: u32 = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A frame not seen before; `lost` frames were skipped.
    New { full: u32, lost: u32 },
    /// The last accepted frame again: do not deliver it twice (re-acknowledge only).
    Retransmission { full: u32 },
    /// The gap is at least MAX_FCNT_GAP for a device that still has that rule.
    GapTooLarge { full: u32, gap: u32 },
}

impl Verdict {
    pub fn full(self) -> u32 {
        match self {
            Verdict::New { full, .. }
            | Verdict::Retransmission { full }
            | Verdict::GapTooLarge { full, .. } => full,
        }
    }
}

/// `next` is the next expected FCntUp (0 after a join), `received` the 16 bits on
/// air, `gap_rule` whether MAX_FCNT_GAP applies (MacVersion 1.0.2/1.0.3).
pub fn reconstruct(next: u32, received: u16, gap_rule: bool) -> Verdict {
    let last = next.wrapping_sub(1) as u16;
    if next > 0 && received == last {
        return Verdict::Retransmission { full: next - 1 };
    }
    let gap = u32::from(received.wrapping_sub(next as u16));
    let full = next.wrapping_add(gap);
    if gap_rule && gap >= MAX_FCNT_GAP {
        return Verdict::GapTooLarge { full, gap };
    }
    Verdict::New { full, lost: gap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uplink_vector() {
        let raw = include_str!("../../tests/vectors/lorawan/fcnt.json");
        let v: serde_json::Value = serde_json::from_str(raw).unwrap();
        for c in v["uplink_cases"].as_array().unwrap() {
            let next = c["next_expected_fcnt_up"].as_u64().unwrap() as u32;
            let rx = c["received_16"].as_u64().unwrap() as u16;
            let old = c["mac_version"] != "1.0.4";
            let got = reconstruct(next, rx, old);
            assert_eq!(
                u64::from(got.full()),
                c["full_fcnt"].as_u64().unwrap(),
                "{c}"
            );
            let kind = c["kind"].as_str().unwrap();
            let verdict = c["verdict"].as_str().unwrap();
            match got {
                Verdict::Retransmission { .. } => assert_eq!(kind, "retransmission", "{c}"),
                Verdict::GapTooLarge { .. } => assert!(verdict.starts_with("reject"), "{c}"),
                Verdict::New { lost, .. } => {
                    assert!(!verdict.starts_with("reject") || kind == "reset", "{c}");
                    if let Some(l) = c["frames_lost"].as_u64() {
                        assert_eq!(u64::from(lost), l, "{c}");
                    }
                }
            }
        }
    }
}
