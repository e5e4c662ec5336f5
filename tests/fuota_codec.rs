//! The server's TS004 v1 encoder (`stationkeeper::fuota::codec`) against an independent
//! device-side decoder written from the spec (`common::fuota_device`), plus the vectors in
//! `tests/vectors/fuota/fec_v1.json`.

mod common;

use common::fuota_device::{self, FragDecoder, Status};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stationkeeper::fuota::codec::{
    fragment, nb_frag, pad_image, parity_row, redundancy_for_percent,
};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fuota/fec_v1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fec_v1.json"))
        .expect("parse fec_v1.json")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// Tiny deterministic PRNG (xorshift64*), no crates.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `k` distinct indices of 0..n (partial Fisher–Yates).
    fn choose(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

/// Feeds `frags[N-1]` for every N not in `lost`, in increasing N; returns the last status.
fn decode(m: usize, frag_size: usize, frags: &[Vec<u8>], lost: &[usize]) -> (FragDecoder, Status) {
    let mut dec = FragDecoder::new(m, frag_size);
    let mut status = dec.status();
    for (i, f) in frags.iter().enumerate() {
        let n = i + 1;
        if !lost.contains(&n) {
            status = dec.push(u16::try_from(n).unwrap(), f);
        }
    }
    (dec, status)
}

#[test]
fn prbs_and_rows_match_spec_vectors() {
    let v = vectors();
    let mut x = 1002u32;
    for want in usizes(&v["prbs23_sequence_from_x0_1002"]) {
        x = fuota_device::step23(x);
        assert_eq!(x as usize, want);
    }
    // Spec §7.2 examples.
    assert_eq!(fuota_device::parity_row(1, 10), vec![2, 5]);
    assert_eq!(fuota_device::parity_row(1, 8), vec![0, 1, 4, 6]);
    assert_eq!(fuota_device::parity_row(3, 2), vec![0]);
    assert!(fuota_device::parity_row(1, 1).is_empty());
    for (m, rows) in v["matrix_rows_other_M"].as_object().unwrap() {
        let m: usize = m.parse().unwrap();
        for (n, row) in rows.as_object().unwrap() {
            let n: usize = n.parse().unwrap();
            assert_eq!(fuota_device::parity_row(n, m), usizes(row), "row({n}, {m})");
        }
    }
    for case in v["cases"].as_array().unwrap() {
        let m = case["nb_frag_M"].as_u64().unwrap() as usize;
        for (n, row) in case["matrix_rows_for_coded_n"].as_object().unwrap() {
            let n: usize = n.parse().unwrap();
            assert_eq!(fuota_device::parity_row(n, m), usizes(row), "row({n}, {m})");
        }
    }
}

#[test]
fn device_row_generator_equals_server_parity_row() {
    for m in [1, 2, 3, 4, 5, 8, 10, 16, 31, 32, 33, 100, 400, 1000, 4096] {
        for n in [1, 2, 3, 7, 50, 123, 1000, 16383 - m.min(16382)] {
            assert_eq!(
                fuota_device::parity_row(n, m),
                parity_row(n, m),
                "row({n}, {m})"
            );
        }
    }
}

#[test]
fn fec_v1_vectors_decode_as_listed() {
    let v = vectors();
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let m = case["nb_frag_M"].as_u64().unwrap() as usize;
        let fs = case["frag_size"].as_u64().unwrap() as usize;
        let r = case["redundancy"].as_u64().unwrap() as usize;
        let data = hex::decode(case["data_hex"].as_str().unwrap()).unwrap();
        let frags: Vec<Vec<u8>> = case["fragments_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(frags.len(), m + r, "{name}");
        // The server's encoder produces the vector's fragments.
        assert_eq!(nb_frag(data.len(), fs), m, "{name}");
        assert_eq!(fragment(&data, fs, r), frags, "{name}: server fragments");
        let padding = m * fs - data.len();
        for lp in case["loss_patterns"].as_array().unwrap() {
            let lost = usizes(&lp["lost_N"]);
            let (dec, status) = decode(m, fs, &frags, &lost);
            if lp["recoverable"].as_bool().unwrap() {
                let Status::Done(padded) = status else {
                    panic!("{name} lost {lost:?}: not recovered ({status:?})");
                };
                assert_eq!(padded, pad_image(&data, fs), "{name} lost {lost:?}");
                let image = dec.image(padding).unwrap();
                assert_eq!(image, data, "{name} lost {lost:?}");
                let sha = hex::encode(Sha256::digest(&image));
                assert_eq!(sha, lp["sha256"].as_str().unwrap(), "{name} lost {lost:?}");
            } else {
                assert!(
                    matches!(status, Status::Incomplete { .. }),
                    "{name} lost {lost:?}: must not decode, got {status:?}"
                );
                assert_eq!(dec.image(padding), None);
            }
        }
    }
}

fn test_image(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

#[test]
fn random_loss_within_redundancy_rebuilds_exact_image() {
    let fs = 50;
    let image = test_image(20_003, 7); // not a multiple of fs: exercises padding
    let m = nb_frag(image.len(), fs);
    let r = redundancy_for_percent(m, 30);
    let padding = m * fs - image.len();
    let frags = fragment(&image, fs, r);
    assert_eq!(frags.len(), m + r);
    let total = m + r;
    for seed in 1..=8u64 {
        let mut rng = XorShift::new(seed);
        let lost: Vec<usize> = rng
            .choose(total, total / 10)
            .into_iter()
            .map(|i| i + 1)
            .collect();
        let (dec, status) = decode(m, fs, &frags, &lost);
        let Status::Done(padded) = status else {
            panic!(
                "seed {seed}: lost {} of {total}, not recovered: {status:?}",
                lost.len()
            );
        };
        assert_eq!(padded, pad_image(&image, fs), "seed {seed}");
        assert_eq!(dec.image(padding).unwrap(), image, "seed {seed}");
    }
}

#[test]
fn decoder_is_order_independent() {
    // Coded fragments first, then the uncoded ones that survived, in a shuffled order.
    let fs = 16;
    let image = test_image(1_000, 11);
    let m = nb_frag(image.len(), fs);
    let r = redundancy_for_percent(m, 40);
    let frags = fragment(&image, fs, r);
    for seed in 1..=4u64 {
        let mut rng = XorShift::new(seed);
        let lost: Vec<usize> = rng.choose(m, m / 5).into_iter().map(|i| i + 1).collect();
        let mut order: Vec<usize> = (1..=m + r).filter(|n| !lost.contains(n)).collect();
        let len = order.len();
        order = rng.choose(len, len).into_iter().map(|i| order[i]).collect();
        let mut dec = FragDecoder::new(m, fs);
        let mut status = dec.status();
        for n in order {
            status = dec.push(n as u16, &frags[n - 1]);
        }
        assert_eq!(status, Status::Done(pad_image(&image, fs)), "seed {seed}");
    }
}

#[test]
fn loss_beyond_redundancy_never_rebuilds() {
    let fs = 50;
    let image = test_image(20_000, 3);
    let m = nb_frag(image.len(), fs);
    let r = redundancy_for_percent(m, 30);
    let frags = fragment(&image, fs, r);
    for seed in 1..=4u64 {
        let mut rng = XorShift::new(seed);
        // R + 1 uncoded fragments lost, every coded one received: R equations for R + 1
        // unknowns can never determine them.
        let lost: Vec<usize> = rng.choose(m, r + 1).into_iter().map(|i| i + 1).collect();
        let (dec, status) = decode(m, fs, &frags, &lost);
        assert!(dec.missing() >= 1, "seed {seed}");
        assert!(
            matches!(status, Status::Incomplete { missing } if missing == dec.missing()),
            "seed {seed}: {status:?}"
        );
        assert_eq!(dec.image(0), None);

        // Only M − 1 fragments received in total (random mix of uncoded and coded).
        let keep = rng.choose(m + r, m - 1);
        let lost: Vec<usize> = (1..=m + r).filter(|n| !keep.contains(&(n - 1))).collect();
        let (dec, status) = decode(m, fs, &frags, &lost);
        assert!(
            matches!(status, Status::Incomplete { .. }),
            "seed {seed}: {status:?}"
        );
        assert_eq!(dec.image(0), None);
    }
}

#[test]
fn decoder_edge_cases() {
    // M = 1: coded fragments are all zeros and carry no information.
    let frags = fragment(&[0xAB, 0xCD], 2, 3);
    let (_, status) = decode(1, 2, &frags, &[1]);
    assert_eq!(status, Status::Incomplete { missing: 1 });
    let (dec, status) = decode(1, 2, &frags, &[]);
    assert_eq!(status, Status::Done(vec![0xAB, 0xCD]));
    assert_eq!(dec.image(1).unwrap(), vec![0xAB]);

    // Extra fragments after completion are ignored; duplicates are harmless.
    let image = test_image(80, 5);
    let frags = fragment(&image, 8, 10);
    let mut dec = FragDecoder::new(10, 8);
    for n in [1u16, 1, 3, 4, 5, 6, 7, 8, 9, 10] {
        dec.push(n, &frags[usize::from(n) - 1]);
    }
    assert_eq!(dec.missing(), 1);
    let mut status = dec.status();
    for n in 11u16..=20 {
        status = dec.push(n, &frags[usize::from(n) - 1]);
    }
    assert_eq!(status, Status::Done(image.clone()));
    assert_eq!(dec.push(2, &[0xFF; 8]), Status::Done(image));
}
