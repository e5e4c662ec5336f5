//! Answer side of a CUPS session: the binary body layout (spec §3), the
//! commit point (§4 step 6), station's credential-blob splitting including
//! its limited DER length parsing (§6.2) and update signature checks (§7).

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// Parsed sections of an answer. A section whose length field is 0 is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub cups_uri: Option<Vec<u8>>,
    pub tc_uri: Option<Vec<u8>>,
    pub cups_cred: Option<Vec<u8>>,
    pub tc_cred: Option<Vec<u8>>,
    /// The 4 bytes after sigLen (only present when sigLen > 0).
    pub key_crc: Option<u32>,
    /// DER signature, `sigLen - 4` bytes.
    pub signature: Option<Vec<u8>>,
    pub update: Option<Vec<u8>>,
    /// Bytes taken by the sections; anything after them is ignored.
    pub consumed: usize,
}

/// How far parsing a (possibly incomplete) body prefix got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseState {
    /// All sections parsed.
    Complete,
    /// The prefix ends inside a section (station: "Unexpected end of data"
    /// once the declared length is exhausted).
    NeedMore(String),
    /// A length field is out of range: protocol error, the answer is aborted.
    Invalid(String),
}

/// Result of parsing a body prefix, as station would after receiving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Sections completed so far (a partial update is not included).
    pub answer: Answer,
    /// True once station would have committed URIs and credentials:
    /// when updLen > 0 has been read, or when the whole answer parsed.
    pub committed: bool,
    pub state: ParseState,
}

struct Cursor<'a> {
    d: &'a [u8],
    off: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.d.len() - self.off < n {
            return Err(format!(
                "Unexpected end of data in {what}: need {n} bytes at offset {}, have {}",
                self.off,
                self.d.len() - self.off
            ));
        }
        let s = &self.d[self.off..self.off + n];
        self.off += n;
        Ok(s)
    }

    fn le(&mut self, width: usize, what: &str) -> Result<u32, String> {
        let b = self.take(width, what)?;
        Ok(b.iter()
            .rev()
            .fold(0u32, |acc, &x| (acc << 8) | u32::from(x)))
    }

    fn segment(&mut self, width: usize, what: &str) -> Result<Option<Vec<u8>>, String> {
        let len = self.le(width, what)? as usize;
        let data = self.take(len, what)?;
        Ok((len > 0).then(|| data.to_vec()))
    }
}

/// Parses a body prefix section by section (§3), reporting the commit point.
pub fn parse_prefix(body: &[u8]) -> Parsed {
    let mut answer = Answer::default();
    let mut committed = false;
    let mut c = Cursor { d: body, off: 0 };
    let state = (|| -> Result<ParseState, ParseState> {
        let more = ParseState::NeedMore;
        answer.cups_uri = c.segment(1, "cupsUri").map_err(more)?;
        answer.tc_uri = c.segment(1, "tcUri").map_err(more)?;
        answer.cups_cred = c.segment(2, "cupsCred").map_err(more)?;
        answer.tc_cred = c.segment(2, "tcCred").map_err(more)?;
        let sig_len = c.le(4, "sigLen").map_err(more)? as usize;
        if sig_len != 0 {
            if !(8..=132).contains(&sig_len) {
                return Err(ParseState::Invalid(format!(
                    "sigLen {sig_len} outside 8..132"
                )));
            }
            let seg = c.take(sig_len, "signature").map_err(more)?;
            answer.key_crc = Some(u32::from_le_bytes(seg[..4].try_into().unwrap()));
            answer.signature = Some(seg[4..].to_vec());
        }
        let upd_len = c.le(4, "updLen").map_err(more)?;
        if upd_len >= 1 << 31 {
            return Err(ParseState::Invalid(format!(
                "updLen {upd_len} is negative as a signed int"
            )));
        }
        committed = true;
        let upd = c.take(upd_len as usize, "update").map_err(more)?;
        answer.update = (upd_len > 0).then(|| upd.to_vec());
        answer.consumed = c.off;
        Ok(ParseState::Complete)
    })()
    .unwrap_or_else(|e| e);
    Parsed {
        answer,
        committed,
        state,
    }
}

/// Parses a complete answer body; anything but [`ParseState::Complete`] is an error.
pub fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    let p = parse_prefix(body);
    match p.state {
        ParseState::Complete => Ok(p.answer),
        ParseState::NeedMore(e) | ParseState::Invalid(e) => Err(e),
    }
}

/// The three parts station writes for a credential blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredParts {
    pub trust: Vec<u8>,
    /// Empty when the blob said "no cert" (written as an empty file).
    pub cert: Vec<u8>,
    /// DER key, token text, or empty for "no key".
    pub key: Vec<u8>,
}

/// Station's DER length reading (§6.2 item 5): with bit 7 of the second byte
/// set it ALWAYS reads the next two bytes as the length (+4); otherwise the
/// second byte + 2. `0x81 LL` forms are therefore misread.
fn station_der_len(blob: &[u8], off: usize, what: &str) -> Result<usize, String> {
    let b1 = *blob
        .get(off + 1)
        .ok_or_else(|| format!("{what}: DER header past end of blob"))?;
    if b1 & 0x80 != 0 {
        match (blob.get(off + 2), blob.get(off + 3)) {
            (Some(&hi), Some(&lo)) => Ok(((usize::from(hi) << 8) | usize::from(lo)) + 4),
            _ => Err(format!("{what}: DER header past end of blob")),
        }
    } else {
        Ok(usize::from(b1) + 2)
    }
}

/// Splits a credential blob exactly like station's `sys_credComplete` (§6.2).
/// An error means station writes nothing for this category.
pub fn split_cred(blob: &[u8]) -> Result<CredParts, String> {
    if blob.first() != Some(&0x30) {
        return Err("ASN.1 SEQ expected for trust".into());
    }
    let trust_len = station_der_len(blob, 0, "trust")?;
    let cert_off = trust_len;
    // Station reads this byte without a bounds check (out-of-buffer read);
    // the simulator treats it as a rejected blob.
    let cert_tag = *blob
        .get(cert_off)
        .ok_or_else(|| format!("cert offset {cert_off} past end of blob ({})", blob.len()))?;
    let (cert_len, key_off) = match cert_tag {
        0x00 => (0, cert_off + 4),
        0x30 => {
            let l = station_der_len(blob, cert_off, "cert")?;
            (l, cert_off + l)
        }
        t => return Err(format!("ASN.1 SEQ or 0x00 expected for cert, got {t:#04x}")),
    };
    if key_off > blob.len() {
        return Err(format!(
            "expecting more data: key_off={key_off} > len={}",
            blob.len()
        ));
    }
    let key_len = match blob.get(key_off) {
        None | Some(0x00) => 0,
        Some(0x30) => station_der_len(blob, key_off, "key")?,
        Some(_) => blob.len() - key_off,
    };
    if key_off + key_len > blob.len() {
        return Err(format!(
            "Lengths do not align segment_len={} parsed_len={} (key_off={key_off}, key_len={key_len})",
            blob.len(),
            key_off + key_len
        ));
    }
    Ok(CredParts {
        trust: blob[..trust_len].to_vec(),
        cert: blob[cert_off..cert_off + cert_len].to_vec(),
        key: blob[key_off..key_off + key_len].to_vec(),
    })
}

/// Verifies `sig_der` (ASN.1 DER ECDSA) over SHA-512(`update`) with a
/// `sig-N.key` file (must be exactly 64 raw bytes X‖Y, else it is skipped).
pub fn verify_update(update: &[u8], sig_der: &[u8], key_file: &[u8]) -> bool {
    if key_file.len() != 64 {
        return false;
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(key_file);
    let Ok(vk) = VerifyingKey::from_sec1_bytes(&sec1) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(sig_der) else {
        return false;
    };
    let digest = Sha512::digest(update);
    vk.verify_prehash(&digest, &sig).is_ok()
}
