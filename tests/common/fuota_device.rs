//! An independent, test-side TS004 v1 (FragAlgo 0) *device* decoder, written from the spec
//! (fuota.md §7.2 parity-row generator, §7.3 decoding principle). It deliberately shares no
//! code with the server's encoder in `stationkeeper::fuota`: the PRBS and the row generator
//! below are the device's own copy.
//!
//! Every received fragment is a linear equation over GF(2) on the M uncoded fragments D[j]:
//! uncoded N (1..=M) gives D[N−1] directly and is stored in place; coded N = M + n gives
//! XOR(row(n, M)·D) = C[n]. For a coded fragment the already-known D[j] are XORed out, and
//! the remaining 1-bits (only unknown columns) go into an incremental Gaussian elimination:
//! at most one stored row per pivot column (its lowest set bit), like LoRaMac-node's
//! upper-triangular matrix. When the number of stored independent rows equals the number of
//! unknown fragments, back-substitution recovers them all.
//!
//! Unlike LoRaMac-node the decoder accepts fragments in any order (an uncoded fragment that
//! arrives after coded ones is eliminated from the stored rows), so it decodes exactly what a
//! full GF(2) solver would.

/// One step of the 23-bit LFSR of the v1 parity-row generator (§7.2).
pub fn step23(x: u32) -> u32 {
    let fb = (x & 1) ^ ((x >> 5) & 1);
    (x >> 1) | (fb << 22)
}

/// The v1 parity row of coded fragment N = M + n (n ≥ 1), as one bool per column 0..M.
/// floor(M/2) draws, each rejection-sampled into 0..M with modulus M (M + 1 when M is a
/// power of two); a repeated column stays set and the draw still counts.
pub fn parity_row_bits(n: usize, m: usize) -> Vec<bool> {
    assert!(n >= 1, "coded fragments are numbered n = 1, 2, ...");
    let mut bits = vec![false; m];
    if m == 0 {
        return bits;
    }
    let modulus = if m.is_power_of_two() { m + 1 } else { m } as u64;
    // n ≤ 16383 on air, so 1 + 1001·n < 2^24 and fits in u32.
    let mut x: u32 = 1 + 1001 * u32::try_from(n).expect("n fits in u32");
    for _ in 0..m / 2 {
        let mut r = m as u64;
        while r >= m as u64 {
            x = step23(x);
            r = u64::from(x) % modulus;
        }
        bits[r as usize] = true;
    }
    bits
}

/// The same row as increasing 0-based column indices.
pub fn parity_row(n: usize, m: usize) -> Vec<usize> {
    parity_row_bits(n, m)
        .iter()
        .enumerate()
        .filter_map(|(i, &b)| b.then_some(i))
        .collect()
}

/// Decoder state after a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `missing` uncoded fragments are still unknown (neither received nor recovered).
    Incomplete { missing: usize },
    /// All M uncoded fragments are known: the padded image (M × frag_size bytes).
    Done(Vec<u8>),
}

/// A row over the M columns, packed 64 columns per word.
#[derive(Debug, Clone)]
struct BitRow(Vec<u64>);

impl BitRow {
    fn zeros(m: usize) -> Self {
        BitRow(vec![0; m.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn xor(&mut self, other: &BitRow) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a ^= b;
        }
    }
    /// Lowest set column, if any.
    fn lowest(&self) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .find(|(_, &w)| w != 0)
            .map(|(k, w)| k * 64 + w.trailing_zeros() as usize)
    }
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(k, &w)| {
            (0..64)
                .filter(move |b| w >> b & 1 == 1)
                .map(move |b| k * 64 + b)
        })
    }
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// The device side of one fragmentation session (TS004 v1, FragAlgo 0).
#[derive(Debug, Clone)]
pub struct FragDecoder {
    m: usize,
    frag_size: usize,
    /// The padded image; D[j] at `j * frag_size`, valid where `known[j]`.
    data: Vec<u8>,
    known: Vec<bool>,
    nb_known: usize,
    /// `pivots[p]`: a stored equation whose lowest set column is p; only unknown columns set.
    pivots: Vec<Option<(BitRow, Vec<u8>)>>,
    nb_rows: usize,
}

impl FragDecoder {
    /// A session of `nb_frag` (M ≥ 1) uncoded fragments of `frag_size` (≥ 1) bytes.
    pub fn new(nb_frag: usize, frag_size: usize) -> Self {
        assert!(nb_frag >= 1, "NbFrag must be ≥ 1");
        assert!(frag_size >= 1, "FragSize must be ≥ 1");
        FragDecoder {
            m: nb_frag,
            frag_size,
            data: vec![0; nb_frag * frag_size],
            known: vec![false; nb_frag],
            nb_known: 0,
            pivots: vec![None; nb_frag],
            nb_rows: 0,
        }
    }

    /// Uncoded fragments still unknown.
    pub fn missing(&self) -> usize {
        self.m - self.nb_known
    }

    /// Independent coded equations currently stored (rank over the unknown columns).
    pub fn stored_rows(&self) -> usize {
        self.nb_rows
    }

    pub fn status(&self) -> Status {
        if self.nb_known == self.m {
            Status::Done(self.data.clone())
        } else {
            Status::Incomplete {
                missing: self.missing(),
            }
        }
    }

    /// The unpadded image (the last `padding` bytes stripped), once all fragments are known.
    pub fn image(&self, padding: usize) -> Option<Vec<u8>> {
        (self.nb_known == self.m).then(|| {
            assert!(padding <= self.data.len(), "padding exceeds the image");
            self.data[..self.data.len() - padding].to_vec()
        })
    }

    /// Feeds fragment N (1-based; N ≤ M uncoded, N > M coded with row(N − M, M)).
    ///
    /// # Panics
    /// If N is 0 or the payload is not exactly `frag_size` bytes (a sender bug).
    pub fn push(&mut self, n: u16, payload: &[u8]) -> Status {
        let n = usize::from(n);
        assert!(n >= 1, "fragment numbers N start at 1");
        assert_eq!(
            payload.len(),
            self.frag_size,
            "fragment N={n}: payload length {} != FragSize {}",
            payload.len(),
            self.frag_size
        );
        if self.nb_known == self.m {
            return self.status(); // complete: extra fragments are ignored
        }
        if n <= self.m {
            self.learn(n - 1, payload);
        } else {
            self.add_coded(n - self.m, payload);
        }
        self.status()
    }

    /// D[j] is now known: store it and eliminate column j from the stored equations.
    fn learn(&mut self, j: usize, payload: &[u8]) {
        if self.known[j] {
            return;
        }
        let fs = self.frag_size;
        self.data[j * fs..(j + 1) * fs].copy_from_slice(payload);
        self.known[j] = true;
        self.nb_known += 1;
        // Rows with pivot p ≠ j keep their pivot when column j is cleared (p < j, or p > j
        // cannot hold j). The row with pivot j, if any, must be reduced again.
        for slot in self.pivots.iter_mut().flatten() {
            if slot.0.get(j) {
                slot.0.clear(j);
                xor_into(&mut slot.1, payload);
            }
        }
        if let Some((row, pay)) = self.pivots[j].take() {
            self.nb_rows -= 1;
            self.insert(row, pay);
        }
        self.try_solve();
    }

    fn add_coded(&mut self, n: usize, payload: &[u8]) {
        let fs = self.frag_size;
        let mut row = BitRow::zeros(self.m);
        let mut pay = payload.to_vec();
        for (j, bit) in parity_row_bits(n, self.m).into_iter().enumerate() {
            if !bit {
                continue;
            }
            if self.known[j] {
                xor_into(&mut pay, &self.data[j * fs..(j + 1) * fs]);
            } else {
                row.set(j);
            }
        }
        self.insert(row, pay);
        self.try_solve();
    }

    /// Reduces an equation (over unknown columns only) against the stored pivots and stores
    /// it if it is independent; a dependent one reduces to zero and is dropped.
    fn insert(&mut self, mut row: BitRow, mut pay: Vec<u8>) {
        while let Some(p) = row.lowest() {
            match &self.pivots[p] {
                Some((prow, ppay)) => {
                    row.xor(prow);
                    xor_into(&mut pay, ppay);
                }
                None => {
                    self.pivots[p] = Some((row, pay));
                    self.nb_rows += 1;
                    return;
                }
            }
        }
    }

    /// When the stored equations are as many as the unknowns, every unknown column is a
    /// pivot: back-substitute from the highest pivot down and write the fragments in place.
    fn try_solve(&mut self) {
        let unknown = self.m - self.nb_known;
        if unknown == 0 || self.nb_rows < unknown {
            return;
        }
        debug_assert_eq!(self.nb_rows, unknown);
        let fs = self.frag_size;
        for p in (0..self.m).rev() {
            let Some((row, mut pay)) = self.pivots[p].take() else {
                continue;
            };
            debug_assert!(!self.known[p]);
            for q in row.ones().filter(|&q| q != p) {
                debug_assert!(q > p && self.known[q], "column {q} solved before {p}");
                xor_into(&mut pay, &self.data[q * fs..(q + 1) * fs]);
            }
            self.data[p * fs..(p + 1) * fs].copy_from_slice(&pay);
            self.known[p] = true;
            self.nb_known += 1;
        }
        self.nb_rows = 0;
        debug_assert_eq!(self.nb_known, self.m);
    }
}

/// A multicast downlink as a device of the group sees it after checking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub fcnt: u32,
    pub fport: u8,
    pub plaintext: Vec<u8>,
}

fn aes_block(key: &[u8; 16], block: [u8; 16]) -> [u8; 16] {
    use aes::cipher::{BlockEncrypt, KeyInit};
    let c = aes::Aes128::new(key.into());
    let mut b = block.into();
    c.encrypt_block(&mut b);
    b.into()
}

/// Checks and decrypts a multicast data frame the way a LoRaWAN device does
/// (LoRaWAN 1.0.x §4.3.3 and §4.4, fuota.md §8), written from the spec: MHDR
/// 0x60, DevAddr = McAddr, no FOpts, MIC over B0 with the full 32-bit counter,
/// FRMPayload XORed with AES(McAppSKey, A_i). The counter's upper 16 bits come
/// from `last` (the previous accepted counter), as a device keeps them.
pub fn open_frame(
    app_s_key: &[u8; 16],
    nwk_s_key: &[u8; 16],
    mc_addr: u32,
    last: Option<u32>,
    phy: &[u8],
) -> Result<Opened, String> {
    use cmac::Mac;
    if phy.len() < 13 {
        return Err(format!("{} bytes is too short for a data frame", phy.len()));
    }
    if phy[0] != 0x60 {
        return Err(format!("MHDR {:#04x} is not unconfirmed data down", phy[0]));
    }
    let addr = u32::from_le_bytes(phy[1..5].try_into().unwrap());
    if addr != mc_addr {
        return Err(format!("DevAddr {addr:08x} is not the group's"));
    }
    if phy[5] & 0x0f != 0 {
        return Err("multicast frames carry no FOpts".into());
    }
    let low = u32::from(u16::from_le_bytes([phy[6], phy[7]]));
    let fcnt = match last {
        None => low,
        Some(l) => {
            let c = (l & 0xffff_0000) | low;
            if c <= l {
                c + 0x1_0000
            } else {
                c
            }
        }
    };
    let (msg, mic) = phy.split_at(phy.len() - 4);
    let mut b0 = [0u8; 16];
    b0[0] = 0x49;
    b0[5] = 1;
    b0[6..10].copy_from_slice(&mc_addr.to_le_bytes());
    b0[10..14].copy_from_slice(&fcnt.to_le_bytes());
    b0[15] = msg.len() as u8;
    let mut mac = <cmac::Cmac<aes::Aes128> as cmac::Mac>::new_from_slice(nwk_s_key).unwrap();
    mac.update(&b0);
    mac.update(msg);
    let full = mac.finalize().into_bytes();
    if full[..4] != *mic {
        return Err(format!("MIC mismatch at FCnt {fcnt}"));
    }
    let fport = msg[8];
    let mut plaintext = msg[9..].to_vec();
    for (i, chunk) in plaintext.chunks_mut(16).enumerate() {
        let mut a = [0u8; 16];
        a[0] = 1;
        a[5] = 1;
        a[6..10].copy_from_slice(&mc_addr.to_le_bytes());
        a[10..14].copy_from_slice(&fcnt.to_le_bytes());
        a[15] = (i + 1) as u8;
        let s = aes_block(app_s_key, a);
        for (p, k) in chunk.iter_mut().zip(s) {
            *p ^= k;
        }
    }
    Ok(Opened {
        fcnt,
        fport,
        plaintext,
    })
}

/// DataFragment (CID 0x08) as a device parses it: (FragIndex, N, payload).
pub fn parse_data_fragment(cmd: &[u8]) -> Result<(u8, u16, &[u8]), String> {
    if cmd.len() < 3 || cmd[0] != 0x08 {
        return Err(format!("not a DataFragment: {cmd:02x?}"));
    }
    let v = u16::from_le_bytes([cmd[1], cmd[2]]);
    Ok(((v >> 14) as u8, v & 0x3fff, &cmd[3..]))
}
