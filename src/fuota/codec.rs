//! TS004 fragmented data block transport, v1 (FragAlgo 0), encoder side: padding an image
//! into M uncoded fragments, the parity (coded) fragments of spec/fuota.md §7, and the
//! downlink command bytes for FPort 201 (§6.1). The encoder and the command codecs are
//! `lrwn::applayer::fragmentation::v1`; this module adds the padding rule, validation of
//! the on-air limits and a parity-row generator of our own (cross-checked against lrwn's
//! encoder in the tests; a future decoder/simulator needs the rows, lrwn keeps them private).

use lrwn::applayer::fragmentation::v1 as ts004;

/// Default FPort of the fragmentation package.
pub const FPORT: u8 = 201;
/// PackageIdentifier of TS004 in PackageVersionAns.
pub const PACKAGE_IDENTIFIER: u8 = 3;
/// Largest fragment number N (14 bits): M + R must not exceed it.
pub const MAX_N: u16 = 16383;
/// Largest FragIndex (session slot, 2 bits).
pub const MAX_FRAG_INDEX: u8 = 3;
/// FragAlgo of the v1 parity code.
pub const FRAG_ALGO_V1: u8 = 0;

/// Invalid parameters for a TS004 field or session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("fragment size must be 1..=255 bytes, got {0}")]
    FragSize(usize),
    #[error("the image is empty")]
    EmptyImage,
    #[error("{0} fragments (uncoded + coded) exceed the 14-bit N limit of 16383")]
    TooManyFragments(usize),
    #[error("FragIndex must be 0..=3, got {0}")]
    FragIndex(u8),
    #[error("fragment number N must be 1..=16383, got {0}")]
    N(u16),
    #[error("BlockAckDelay must be 0..=7, got {0}")]
    BlockAckDelay(u8),
    #[error("FragAlgo must be 0..=7, got {0}")]
    FragAlgo(u8),
    #[error("McGroupBitMask must be 0..=15, got {0}")]
    McGroupBitMask(u8),
    #[error("undecodable TS004 uplink: {0}")]
    Decode(String),
}

/// Number of uncoded fragments M = ceil(image_len / frag_size). `frag_size` must be > 0.
pub fn nb_frag(image_len: usize, frag_size: usize) -> usize {
    image_len.div_ceil(frag_size)
}

/// Padding bytes so that image_len + padding = M × frag_size. `frag_size` must be > 0.
pub fn padding(image_len: usize, frag_size: usize) -> usize {
    (frag_size - image_len % frag_size) % frag_size
}

/// R = ceil(M × percent / 100), ChirpStack's rule for a redundancy percentage.
pub fn redundancy_for_percent(nb_frag: usize, percent: u32) -> usize {
    (nb_frag * percent as usize).div_ceil(100)
}

/// The image followed by zero bytes up to a multiple of `frag_size` (§6.1).
pub fn pad_image(image: &[u8], frag_size: usize) -> Vec<u8> {
    let mut padded = Vec::with_capacity(image.len() + padding(image.len(), frag_size));
    padded.extend_from_slice(image);
    padded.resize(image.len() + padding(image.len(), frag_size), 0);
    padded
}

/// The shape of one fragmentation session, validated against the on-air limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragPlan {
    /// Unpadded image length in bytes.
    pub image_len: usize,
    /// FragSize (1..=255).
    pub frag_size: u8,
    /// M, the number of uncoded fragments (NbFrag).
    pub nb_frag: u16,
    /// Zero bytes appended to the image (Padding), < frag_size.
    pub padding: u8,
    /// R, the number of coded fragments sent after the M uncoded ones.
    pub redundancy: u16,
}

impl FragPlan {
    /// Checks 1 ≤ frag_size ≤ 255, a non-empty image and M + R ≤ 16383.
    pub fn new(image_len: usize, frag_size: usize, redundancy: usize) -> Result<Self, CodecError> {
        let fs = u8::try_from(frag_size)
            .ok()
            .filter(|&fs| fs > 0)
            .ok_or(CodecError::FragSize(frag_size))?;
        if image_len == 0 {
            return Err(CodecError::EmptyImage);
        }
        let m = nb_frag(image_len, frag_size);
        let total = m.saturating_add(redundancy);
        if total > MAX_N as usize {
            return Err(CodecError::TooManyFragments(total));
        }
        Ok(FragPlan {
            image_len,
            frag_size: fs,
            nb_frag: m as u16,
            // padding < frag_size ≤ 255
            padding: padding(image_len, frag_size) as u8,
            redundancy: redundancy as u16,
        })
    }

    /// M + R: fragments N = 1..=total are sent.
    pub fn total(&self) -> u16 {
        self.nb_frag + self.redundancy
    }
}

/// All fragments of a session in sending order: `result[N - 1]` is the payload of fragment
/// N. First the M uncoded fragments (the image padded with zero bytes to M × frag_size), then
/// `redundancy` coded fragments of the TS004 v1 parity code. An empty image gives no
/// fragments. Does not check the on-air limits (see [`FragPlan::new`]).
///
/// The coded fragments are the XOR of the uncoded ones that [`parity_row`] selects, done
/// 64 bits at a time and spread over the cores: for a 1 MiB image with 50 % redundancy lrwn's
/// byte-wise encoder takes about 410 ms on this project's 2-core machine, this about 40 ms
/// (`fuota-encode`). The tests check both give the same bytes.
///
/// # Panics
/// If `frag_size` is 0.
pub fn fragment(image: &[u8], frag_size: usize, redundancy: usize) -> Vec<Vec<u8>> {
    assert!(frag_size > 0, "fragment size must be > 0");
    if image.is_empty() {
        return Vec::new();
    }
    let padded = pad_image(image, frag_size);
    let m = padded.len() / frag_size;
    let words = frag_size.div_ceil(8);
    // The uncoded fragments as rows of little-endian u64 words, zero-filled at the end.
    let mut rows = vec![0u64; m * words];
    for (row, frag) in rows
        .chunks_exact_mut(words)
        .zip(padded.chunks_exact(frag_size))
    {
        for (w, bytes) in row.iter_mut().zip(frag.chunks(8)) {
            let mut b = [0u8; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            *w = u64::from_le_bytes(b);
        }
    }
    let coded_fragment = |n: usize| -> Vec<u8> {
        let mut acc = vec![0u64; words];
        for i in parity_row(n, m) {
            for (a, w) in acc.iter_mut().zip(&rows[i * words..(i + 1) * words]) {
                *a ^= w;
            }
        }
        let mut coded: Vec<u8> = acc.iter().flat_map(|w| w.to_le_bytes()).collect();
        coded.truncate(frag_size);
        coded
    };
    // Coded fragments are independent: spread them over the cores.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(redundancy.max(1));
    let per = redundancy.div_ceil(threads.max(1)).max(1);
    let coded: Vec<Vec<u8>> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let coded_fragment = &coded_fragment;
                s.spawn(move || {
                    let lo = 1 + t * per;
                    let hi = redundancy.min((t + 1) * per);
                    (lo..=hi).map(coded_fragment).collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("encoder thread"))
            .collect()
    });
    let mut out: Vec<Vec<u8>> = padded.chunks_exact(frag_size).map(<[u8]>::to_vec).collect();
    out.extend(coded);
    out
}

/// The same fragments through lrwn's own v1 encoder; kept to cross-check [`fragment`].
pub fn fragment_lrwn(image: &[u8], frag_size: usize, redundancy: usize) -> Vec<Vec<u8>> {
    assert!(frag_size > 0, "fragment size must be > 0");
    if image.is_empty() {
        return Vec::new();
    }
    let padded = pad_image(image, frag_size);
    ts004::encode(&padded, frag_size, redundancy)
        .expect("lrwn encode: the image is padded to a multiple of frag_size")
}

/// One step of the 23-bit PRBS of the v1 parity-row generator (§7.2).
pub fn prbs23(x: u32) -> u32 {
    let fb = (x & 1) ^ ((x >> 5) & 1);
    (x >> 1) | (fb << 22)
}

/// Column indices (0-based, increasing) of the uncoded fragments XORed into coded fragment
/// N = M + n (n ≥ 1), TS004 v1: floor(M/2) draws, repeats allowed (§7.2).
pub fn parity_row(n: usize, m: usize) -> Vec<usize> {
    let mut bits = vec![false; m];
    let modulus = if m.is_power_of_two() { m + 1 } else { m };
    // x stays below 2^23 after the first step; the seed 1 + 1001·n wraps like the C u32 code.
    let mut x = 1u32.wrapping_add(1001u32.wrapping_mul(n as u32));
    for _ in 0..m / 2 {
        let mut r = m;
        while r >= m {
            x = prbs23(x);
            r = x as usize % modulus;
        }
        bits[r] = true;
    }
    bits.iter()
        .enumerate()
        .filter_map(|(i, &b)| b.then_some(i))
        .collect()
}

/// The 16-bit IndexAndN field of DataFragment: bits 0–13 N (1-based), bits 14–15 FragIndex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexAndN {
    frag_index: u8,
    n: u16,
}

impl IndexAndN {
    pub fn new(frag_index: u8, n: u16) -> Result<Self, CodecError> {
        if frag_index > MAX_FRAG_INDEX {
            return Err(CodecError::FragIndex(frag_index));
        }
        if n == 0 || n > MAX_N {
            return Err(CodecError::N(n));
        }
        Ok(IndexAndN { frag_index, n })
    }

    pub fn frag_index(self) -> u8 {
        self.frag_index
    }

    pub fn n(self) -> u16 {
        self.n
    }

    /// The value sent little-endian on air.
    pub fn to_u16(self) -> u16 {
        self.n | (u16::from(self.frag_index) << 14)
    }
}

/// DataFragment command bytes (CID 0x08 ‖ IndexAndN LE ‖ fragment) for FPort 201.
pub fn data_fragment_payload(index_and_n: IndexAndN, frag: &[u8]) -> Vec<u8> {
    ts004::Payload::DataFragment(ts004::DataFragmentPayload {
        index_and_n: ts004::DataFragmentPayloadIndexAndN {
            n: index_and_n.n,
            frag_index: index_and_n.frag_index,
        },
        data: frag.to_vec(),
    })
    .to_vec()
    .expect("IndexAndN is validated on construction")
}

/// Parameters of FragSessionSetupReq (v1, 10-byte body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragSessionSetup {
    /// Session slot 0..=3.
    pub frag_index: u8,
    /// Bit i = multicast group i may carry the fragments (0..=15).
    pub mc_group_bit_mask: u8,
    /// NbFrag = M.
    pub nb_frag: u16,
    pub frag_size: u8,
    /// 0..=7: devices answer a status request within 2^(d+4) s.
    pub block_ack_delay: u8,
    /// 0 = the v1 parity code ([`FRAG_ALGO_V1`]).
    pub frag_algo: u8,
    pub padding: u8,
    /// Free-form 4 bytes for the application, sent as given.
    pub descriptor: [u8; 4],
}

impl FragSessionSetup {
    /// A v1 (FragAlgo 0) session for `plan`.
    pub fn for_plan(
        plan: &FragPlan,
        frag_index: u8,
        mc_group_bit_mask: u8,
        block_ack_delay: u8,
        descriptor: [u8; 4],
    ) -> Self {
        FragSessionSetup {
            frag_index,
            mc_group_bit_mask,
            nb_frag: plan.nb_frag,
            frag_size: plan.frag_size,
            block_ack_delay,
            frag_algo: FRAG_ALGO_V1,
            padding: plan.padding,
            descriptor,
        }
    }
}

fn check_frag_index(frag_index: u8) -> Result<(), CodecError> {
    if frag_index > MAX_FRAG_INDEX {
        return Err(CodecError::FragIndex(frag_index));
    }
    Ok(())
}

fn to_bytes(payload: ts004::Payload) -> Vec<u8> {
    payload
        .to_vec()
        .expect("fields are validated before encoding")
}

/// FragSessionSetupReq command bytes (CID 0x02, 11 bytes).
pub fn frag_session_setup_req(s: &FragSessionSetup) -> Result<Vec<u8>, CodecError> {
    check_frag_index(s.frag_index)?;
    if s.mc_group_bit_mask > 0x0f {
        return Err(CodecError::McGroupBitMask(s.mc_group_bit_mask));
    }
    if s.block_ack_delay > 7 {
        return Err(CodecError::BlockAckDelay(s.block_ack_delay));
    }
    if s.frag_algo > 7 {
        return Err(CodecError::FragAlgo(s.frag_algo));
    }
    if s.frag_size == 0 {
        return Err(CodecError::FragSize(0));
    }
    Ok(to_bytes(ts004::Payload::FragSessionSetupReq(
        ts004::FragSessionSetupReqPayload {
            frag_session: ts004::FragSessionSetuReqPayloadFragSession {
                mc_group_bit_mask: std::array::from_fn(|i| s.mc_group_bit_mask & (1 << i) != 0),
                frag_index: s.frag_index,
            },
            nb_frag: s.nb_frag,
            frag_size: s.frag_size,
            control: ts004::FragSessionSetuReqPayloadControl {
                block_ack_delay: s.block_ack_delay,
                fragmentation_matrix: s.frag_algo,
            },
            padding: s.padding,
            descriptor: s.descriptor,
        },
    )))
}

/// FragSessionStatusReq command bytes (CID 0x01). `all_participants`: every device answers
/// (else only the devices still missing fragments).
pub fn frag_session_status_req(
    all_participants: bool,
    frag_index: u8,
) -> Result<Vec<u8>, CodecError> {
    check_frag_index(frag_index)?;
    Ok(to_bytes(ts004::Payload::FragSessionStatusReq(
        ts004::FragSessionStatusReqPayload {
            participants: all_participants,
            frag_index,
        },
    )))
}

/// FragSessionDeleteReq command bytes (CID 0x03).
pub fn frag_session_delete_req(frag_index: u8) -> Result<Vec<u8>, CodecError> {
    check_frag_index(frag_index)?;
    Ok(to_bytes(ts004::Payload::FragSessionDeleteReq(
        ts004::FragSessionDeleteReqPayload { frag_index },
    )))
}

/// PackageVersionReq command bytes (CID 0x00).
pub fn package_version_req() -> Vec<u8> {
    to_bytes(ts004::Payload::PackageVersionReq)
}

/// Decodes one TS004 v1 uplink command (PackageVersionAns, FragSessionStatusAns,
/// FragSessionSetupAns, FragSessionDeleteAns) from an FPort 201 uplink payload that holds
/// exactly that command.
pub fn decode_uplink(b: &[u8]) -> Result<ts004::Payload, CodecError> {
    ts004::Payload::from_slice(true, b).map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    const FEC_V1: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fuota/fec_v1.json"
    ));
    const COMMANDS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fuota/commands.json"
    ));

    fn unhex(v: &Value) -> Vec<u8> {
        hex::decode(v.as_str().expect("hex string")).expect("valid hex")
    }

    fn usize_of(v: &Value) -> usize {
        v.as_u64().expect("number") as usize
    }

    fn cases() -> Vec<Value> {
        let doc: Value = serde_json::from_str(FEC_V1).unwrap();
        doc["cases"].as_array().unwrap().clone()
    }

    /// Image of a case: `data_hex` is already padded; case D states a 75-byte image.
    fn image_of(case: &Value) -> Vec<u8> {
        let data = unhex(&case["data_hex"]);
        if case["name"] == "D_75B_padded_fs8" {
            let image: Vec<u8> = (0..75).collect();
            assert_eq!(pad_image(&image, 8), data);
            assert_eq!(
                hex::encode(Sha256::digest(&image)),
                "182ab56f7739e43cee0b9ba1e92c4b2a81b088705516a5243910159744f21be9"
            );
            return image;
        }
        data
    }

    #[test]
    fn word_wise_encoder_equals_lrwn_byte_for_byte() {
        for (len, fs, r) in [
            (1usize, 1usize, 3usize),
            (75, 8, 20),
            (1000, 7, 50),
            (4096, 64, 300),
            (20_000, 239, 60),
            (513, 13, 0),
        ] {
            let image: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            assert_eq!(
                fragment(&image, fs, r),
                fragment_lrwn(&image, fs, r),
                "len {len} fs {fs} r {r}"
            );
        }
    }

    #[test]
    fn fec_v1_vectors_encoder_reproduces_every_fragment() {
        let cases = cases();
        assert_eq!(cases.len(), 8);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let m = usize_of(&case["nb_frag_M"]);
            let fs = usize_of(&case["frag_size"]);
            let r = usize_of(&case["redundancy"]);
            let image = image_of(case);
            let data = unhex(&case["data_hex"]);
            assert_eq!(
                hex::encode(Sha256::digest(&data)),
                case["data_sha256"],
                "{name}"
            );

            let plan = FragPlan::new(image.len(), fs, r).unwrap();
            assert_eq!(usize::from(plan.nb_frag), m, "{name}");
            assert_eq!(
                usize::from(plan.padding),
                data.len() - image.len(),
                "{name}"
            );
            assert_eq!(usize::from(plan.total()), m + r, "{name}");

            let frags = fragment(&image, fs, r);
            let want: Vec<Vec<u8>> = case["fragments_hex"]
                .as_array()
                .unwrap()
                .iter()
                .map(unhex)
                .collect();
            assert_eq!(frags.len(), want.len(), "{name}");
            for (i, (got, want)) in frags.iter().zip(&want).enumerate() {
                assert_eq!(hex::encode(got), hex::encode(want), "{name} N={}", i + 1);
            }
        }
    }

    #[test]
    fn fec_v1_vectors_parity_rows_and_prbs() {
        let doc: Value = serde_json::from_str(FEC_V1).unwrap();
        let mut x = 1 + 1001;
        for want in doc["prbs23_sequence_from_x0_1002"].as_array().unwrap() {
            x = prbs23(x);
            assert_eq!(u64::from(x), want.as_u64().unwrap());
        }
        let mut checked = 0;
        for case in cases() {
            let m = usize_of(&case["nb_frag_M"]);
            for (n, row) in case["matrix_rows_for_coded_n"].as_object().unwrap() {
                let want: Vec<usize> = row.as_array().unwrap().iter().map(usize_of).collect();
                assert_eq!(parity_row(n.parse().unwrap(), m), want, "M={m} n={n}");
                checked += 1;
            }
        }
        for (m, rows) in doc["matrix_rows_other_M"].as_object().unwrap() {
            for (n, row) in rows.as_object().unwrap() {
                let want: Vec<usize> = row.as_array().unwrap().iter().map(usize_of).collect();
                assert_eq!(parity_row(n.parse().unwrap(), m.parse().unwrap()), want);
                checked += 1;
            }
        }
        assert_eq!(checked, 46 + 15);
    }

    /// Our parity rows equal the ones inside lrwn's encoder: encode an image whose fragment j
    /// has only bit j set, then coded fragment n spells row(n, M) in its bits.
    #[test]
    fn parity_rows_match_lrwn_encoder() {
        for m in [1usize, 2, 3, 4, 5, 7, 8, 10, 16, 17, 31, 32, 33, 64, 100] {
            let fs = m.div_ceil(8);
            let mut image = vec![0u8; m * fs];
            for j in 0..m {
                image[j * fs + j / 8] = 1 << (j % 8);
            }
            let r = 12;
            let frags = fragment(&image, fs, r);
            assert_eq!(frags.len(), m + r);
            for n in 1..=r {
                let coded = &frags[m + n - 1];
                let from_lrwn: Vec<usize> = (0..m)
                    .filter(|&j| coded[j / 8] & (1 << (j % 8)) != 0)
                    .collect();
                assert_eq!(parity_row(n, m), from_lrwn, "M={m} n={n}");
            }
        }
    }

    /// Test-only full GF(2) elimination over the received fragments (not the streaming
    /// device decoder): Some(padded image) when every uncoded fragment is determined.
    fn solve(frags: &[Vec<u8>], m: usize, fs: usize, lost: &[usize]) -> Option<Vec<u8>> {
        assert!(m <= 128);
        let mut eqs: Vec<(u128, Vec<u8>)> = Vec::new();
        for (i, frag) in frags.iter().enumerate() {
            let n = i + 1;
            if lost.contains(&n) {
                continue;
            }
            let mask = if n <= m {
                1u128 << (n - 1)
            } else {
                parity_row(n - m, m).iter().fold(0, |a, &j| a | 1 << j)
            };
            eqs.push((mask, frag.clone()));
        }
        let mut pivots: Vec<(usize, u128, Vec<u8>)> = Vec::new();
        for (mut mask, mut rhs) in eqs {
            for (col, pmask, prhs) in &pivots {
                if mask & (1 << col) != 0 {
                    mask ^= pmask;
                    rhs.iter_mut().zip(prhs).for_each(|(a, b)| *a ^= b);
                }
            }
            if mask == 0 {
                continue;
            }
            let col = mask.trailing_zeros() as usize;
            for (_, pmask, prhs) in pivots.iter_mut() {
                if *pmask & (1 << col) != 0 {
                    *pmask ^= mask;
                    prhs.iter_mut().zip(&rhs).for_each(|(a, b)| *a ^= b);
                }
            }
            pivots.push((col, mask, rhs));
        }
        if pivots.len() < m {
            return None;
        }
        let mut out = vec![0u8; m * fs];
        for (col, mask, rhs) in pivots {
            assert_eq!(mask, 1 << col);
            out[col * fs..(col + 1) * fs].copy_from_slice(&rhs);
        }
        Some(out)
    }

    #[test]
    fn fec_v1_vectors_loss_patterns() {
        let mut patterns = 0;
        for case in cases() {
            let name = case["name"].as_str().unwrap();
            let m = usize_of(&case["nb_frag_M"]);
            let fs = usize_of(&case["frag_size"]);
            let frags = fragment(&image_of(&case), fs, usize_of(&case["redundancy"]));
            for p in case["loss_patterns"].as_array().unwrap() {
                let lost: Vec<usize> = p["lost_N"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(usize_of)
                    .collect();
                let got = solve(&frags, m, fs, &lost);
                assert_eq!(
                    got.is_some(),
                    p["recoverable"].as_bool().unwrap(),
                    "{name} {lost:?}"
                );
                if let Some(img) = got {
                    assert_eq!(
                        hex::encode(Sha256::digest(&img)),
                        p["sha256"],
                        "{name} {lost:?}"
                    );
                }
                patterns += 1;
            }
        }
        assert_eq!(patterns, 27);
    }

    fn command(name: &str) -> String {
        let doc: Value = serde_json::from_str(COMMANDS).unwrap();
        doc["commands"][name].as_str().unwrap().to_string()
    }

    #[test]
    fn commands_vectors_ts004() {
        assert_eq!(
            hex::encode(package_version_req()),
            command("frag_PackageVersionReq")
        );
        let setup = FragSessionSetup {
            frag_index: 0,
            mc_group_bit_mask: 0b0001,
            nb_frag: 10,
            frag_size: 8,
            block_ack_delay: 1,
            frag_algo: FRAG_ALGO_V1,
            padding: 5,
            descriptor: [1, 2, 3, 4],
        };
        assert_eq!(
            hex::encode(frag_session_setup_req(&setup).unwrap()),
            command("frag_FragSessionSetupReq")
        );
        // the same session from a 75-byte image (case D), via the plan
        let plan = FragPlan::new(75, 8, 5).unwrap();
        assert_eq!(
            FragSessionSetup::for_plan(&plan, 0, 1, 1, [1, 2, 3, 4]),
            setup
        );
        assert_eq!(
            hex::encode(frag_session_status_req(true, 1).unwrap()),
            command("frag_FragSessionStatusReq_all_idx1")
        );
        let frag: Vec<u8> = (0..8).collect();
        assert_eq!(
            hex::encode(data_fragment_payload(IndexAndN::new(0, 1).unwrap(), &frag)),
            command("frag_DataFragment_idx0_N1")
        );
        let idx = IndexAndN::new(3, 300).unwrap();
        assert_eq!(idx.to_u16(), 0xC12C);
        assert_eq!(
            hex::encode(data_fragment_payload(idx, &[0xde, 0xad])),
            command("frag_DataFragment_idx3_N300")
        );
        assert_eq!(
            hex::encode(frag_session_delete_req(2).unwrap()),
            command("frag_FragSessionDeleteReq_idx2")
        );
        // and back through lrwn's downlink decoder
        let b = hex::decode(command("frag_FragSessionSetupReq")).unwrap();
        match ts004::Payload::from_slice(false, &b).unwrap() {
            ts004::Payload::FragSessionSetupReq(p) => {
                assert_eq!((p.nb_frag, p.frag_size, p.padding), (10, 8, 5));
                assert_eq!(p.descriptor, [1, 2, 3, 4]);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The TS005 / TS003 rows of commands.json: lrwn's codecs agree (we do not wrap them yet).
    #[test]
    fn commands_vectors_ts005_ts003_via_lrwn() {
        use lrwn::applayer::clocksync::v1 as ts003;
        use lrwn::applayer::multicastsetup::v1 as ts005;
        let mc_addr = lrwn::DevAddr::from_be_bytes([1, 2, 3, 4]);
        let key: [u8; 16] = hex::decode("19bb8fa40338fc062708aabe7ba4919c")
            .unwrap()
            .try_into()
            .unwrap();
        let cases: Vec<(&str, ts005::Payload)> = vec![
            (
                "mc_McGroupSetupReq_1_0",
                ts005::Payload::McGroupSetupReq(ts005::McGroupSetupReqPayload {
                    mc_group_id_header: ts005::McGroupSetupReqPayloadMcGroupIdHeader {
                        mc_group_id: 0,
                    },
                    mc_addr,
                    mc_key_encrypted: key,
                    min_mc_f_count: 0,
                    max_mc_f_count: u32::MAX,
                }),
            ),
            (
                "mc_McClassCSessionReq",
                ts005::Payload::McClassCSessionReq(ts005::McClassCSessionReqPayload {
                    mc_group_id_header: ts005::McClassCSessionReqPayloadMcGroupIdHeader {
                        mc_group_id: 0,
                    },
                    session_time: 0x5372_4e00,
                    session_time_out: ts005::McClassCSessionReqPayloadSessionTimeOut {
                        time_out: 9,
                    },
                    dl_frequ: 869_525_000,
                    dr: 5,
                }),
            ),
            (
                "mc_McClassBSessionReq",
                ts005::Payload::McClassBSessionReq(ts005::McClassBSessionReqPayload {
                    mc_group_id_header: ts005::McClassBSessionReqPayloadMcGroupIdHeader {
                        mc_group_id: 1,
                    },
                    session_time: 0x5372_4e00,
                    time_out_periodicity: ts005::McClassBSessionReqPayloadTimeOutPeriodicity {
                        time_out: 2,
                        periodicity: 3,
                    },
                    dl_frequ: 869_525_000,
                    dr: 3,
                }),
            ),
            (
                "mc_McGroupStatusReq_mask_0001",
                ts005::Payload::McGroupStatusReq(ts005::McGroupStatusReqPayload {
                    cmd_mask: ts005::McGroupStatusReqPayloadCmdMask {
                        req_group_mask: [true, false, false, false],
                    },
                }),
            ),
            (
                "mc_McGroupDeleteReq_0",
                ts005::Payload::McGroupDeleteReq(ts005::McGroupDeleteReqPayload {
                    mc_group_id_header: ts005::McGroupDeleteReqPayloadMcGroupIdHeader {
                        mc_group_id: 0,
                    },
                }),
            ),
        ];
        for (name, payload) in cases {
            let b = payload.to_vec().unwrap();
            assert_eq!(hex::encode(&b), command(name), "{name}");
            assert_eq!(
                ts005::Payload::from_slice(false, &b).unwrap(),
                payload,
                "{name}"
            );
        }
        let ans = ts003::Payload::AppTimeAns(ts003::AppTimeAnsPayload {
            time_correction: -3,
            param: ts003::AppTimeAnsPayloadParam { token_ans: 3 },
        });
        assert_eq!(hex::encode(ans.to_vec().unwrap()), command("cs_AppTimeAns"));
    }

    #[test]
    fn uplink_answers_decode() {
        match decode_uplink(&hex::decode("010c000000").unwrap()).unwrap() {
            ts004::Payload::FragSessionStatusAns(a) => {
                assert_eq!(a.received_and_index.nb_frag_received, 12);
                assert_eq!(a.received_and_index.frag_index, 0);
                assert_eq!(a.missing_frag, 0);
                assert!(!a.status.not_enough_matrix_memory);
            }
            other => panic!("{other:?}"),
        }
        match decode_uplink(&[0x02, 0x40]).unwrap() {
            ts004::Payload::FragSessionSetupAns(a) => {
                assert_eq!(a.frag_index, 1);
                assert!(!a.encoding_unsupported && !a.not_enough_memory);
                assert!(!a.frag_session_index_not_supported && !a.wrong_descriptor);
            }
            other => panic!("{other:?}"),
        }
        assert!(decode_uplink(&[]).is_err());
        assert!(decode_uplink(&[0x09]).is_err());
    }

    #[test]
    fn plan_limits_and_edges() {
        assert_eq!(FragPlan::new(10, 0, 0), Err(CodecError::FragSize(0)));
        assert_eq!(FragPlan::new(10, 256, 0), Err(CodecError::FragSize(256)));
        assert_eq!(FragPlan::new(0, 8, 0), Err(CodecError::EmptyImage));
        // §10.4: 1 MiB, FragSize 239, 10 %
        let m = nb_frag(1_048_576, 239);
        assert_eq!((m, padding(1_048_576, 239)), (4388, 156));
        let r = redundancy_for_percent(m, 10);
        assert_eq!(r, 439);
        assert_eq!(FragPlan::new(1_048_576, 239, r).unwrap().total(), 4827);
        // FragSize 48 → 21846 + R > 16383
        assert!(matches!(
            FragPlan::new(1_048_576, 48, 0),
            Err(CodecError::TooManyFragments(_))
        ));
        assert_eq!(FragPlan::new(16383, 1, 0).unwrap().total(), 16383);
        assert_eq!(
            FragPlan::new(16383, 1, 1),
            Err(CodecError::TooManyFragments(16384))
        );
        assert_eq!(IndexAndN::new(4, 1), Err(CodecError::FragIndex(4)));
        assert_eq!(IndexAndN::new(0, 0), Err(CodecError::N(0)));
        assert_eq!(IndexAndN::new(0, 16384), Err(CodecError::N(16384)));
        assert!(frag_session_status_req(false, 4).is_err());
        assert!(frag_session_delete_req(4).is_err());
        assert!(fragment(&[], 8, 3).is_empty());
        // M = 1: coded fragments are all zero
        assert_eq!(
            fragment(&[9, 9], 2, 2),
            vec![vec![9, 9], vec![0, 0], vec![0, 0]]
        );
        assert_eq!(redundancy_for_percent(10, 50), 5);
        assert_eq!(redundancy_for_percent(10, 0), 0);
        assert_eq!(redundancy_for_percent(3, 10), 1);
    }
}
