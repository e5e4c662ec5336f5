//! The CUPS answer: a pure, byte-exact encoder for the binary body of a
//! `POST /update-info` response (cups-protocol.md §3). Every section is always
//! present, every integer little-endian, and `sigLen` counts the 4 key-CRC bytes.
//! The update bytes themselves are not held here: `AnswerHead::encode` writes
//! everything up to and including `updLen`, and the caller streams the update
//! after it, so an update of any size never has to sit in memory.

/// Largest URI station will use (`MAX_URI_LEN` 128 including the NUL).
pub const MAX_URI_LEN: usize = 127;
/// Largest DER signature station's 128-byte buffer holds.
pub const MAX_SIG_LEN: usize = 128;
/// Station reads `updLen` as a signed 32-bit int.
pub const MAX_UPDATE_LEN: u64 = (1 << 31) - 1;

/// The firmware signature section: which key (by CRC) made it, and the DER signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key_crc: u32,
    pub der: Vec<u8>,
}

/// Everything in an answer except the update bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerHead {
    pub cups_uri: Option<String>,
    pub tc_uri: Option<String>,
    pub cups_cred: Option<Vec<u8>>,
    pub tc_cred: Option<Vec<u8>>,
    pub signature: Option<Signature>,
    pub update_len: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("{0} URI is {1} bytes; station only uses URIs of at most {MAX_URI_LEN} bytes")]
    UriTooLong(&'static str, usize),
    #[error("{0} credential blob is {1} bytes; the field holds at most 65535")]
    CredTooLong(&'static str, usize),
    #[error("signature is {0} bytes; station accepts 4..={MAX_SIG_LEN} bytes of DER")]
    BadSignatureLen(usize),
    #[error("update is {0} bytes; station accepts at most {MAX_UPDATE_LEN}")]
    UpdateTooLong(u64),
}

impl AnswerHead {
    /// The "nothing to do" answer: 14 zero bytes.
    pub fn nothing() -> AnswerHead {
        AnswerHead::default()
    }

    /// Checks every station limit, so `encode` can never write an answer station
    /// would abort on.
    pub fn validate(&self) -> Result<(), AnswerError> {
        for (name, uri) in [("CUPS", &self.cups_uri), ("TC", &self.tc_uri)] {
            if let Some(u) = uri {
                if u.len() > MAX_URI_LEN {
                    return Err(AnswerError::UriTooLong(name, u.len()));
                }
            }
        }
        for (name, cred) in [("CUPS", &self.cups_cred), ("TC", &self.tc_cred)] {
            if let Some(c) = cred {
                if c.len() > usize::from(u16::MAX) {
                    return Err(AnswerError::CredTooLong(name, c.len()));
                }
            }
        }
        if let Some(sig) = &self.signature {
            // sigLen = 4 + len(sig) must be 8..=132.
            if sig.der.len() < 4 || sig.der.len() > MAX_SIG_LEN {
                return Err(AnswerError::BadSignatureLen(sig.der.len()));
            }
        }
        if u64::from(self.update_len) > MAX_UPDATE_LEN {
            return Err(AnswerError::UpdateTooLong(self.update_len.into()));
        }
        Ok(())
    }

    /// Length of the encoded head in bytes.
    pub fn encoded_len(&self) -> usize {
        let len = |o: &Option<Vec<u8>>| o.as_ref().map_or(0, Vec::len);
        let uri = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        1 + uri(&self.cups_uri)
            + 1
            + uri(&self.tc_uri)
            + 2
            + len(&self.cups_cred)
            + 2
            + len(&self.tc_cred)
            + 4
            + self.signature.as_ref().map_or(0, |s| 4 + s.der.len())
            + 4
    }

    /// Total body length once `update_len` update bytes follow the head.
    pub fn content_length(&self) -> u64 {
        self.encoded_len() as u64 + u64::from(self.update_len)
    }

    /// Writes the head. Call `validate` first; lengths are truncated otherwise.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        for uri in [&self.cups_uri, &self.tc_uri] {
            let bytes = uri.as_deref().unwrap_or("").as_bytes();
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
        for cred in [&self.cups_cred, &self.tc_cred] {
            let bytes = cred.as_deref().unwrap_or(&[]);
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        match &self.signature {
            Some(sig) => {
                out.extend_from_slice(&((4 + sig.der.len()) as u32).to_le_bytes());
                out.extend_from_slice(&sig.key_crc.to_le_bytes());
                out.extend_from_slice(&sig.der);
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
        out.extend_from_slice(&self.update_len.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/station-test4");

    #[test]
    fn nothing_to_do_is_fourteen_zero_bytes() {
        let head = AnswerHead::nothing();
        assert_eq!(head.encode(), vec![0u8; 14]);
        assert_eq!(head.content_length(), 14);
    }

    #[test]
    fn only_a_new_tc_uri_matches_spec_8_2() {
        let head = AnswerHead {
            tc_uri: Some("wss://lns.example.com:8887".into()),
            ..AnswerHead::default()
        };
        let mut want = vec![0x00, 0x1a];
        want.extend_from_slice(b"wss://lns.example.com:8887");
        want.extend_from_slice(&[0; 12]);
        assert_eq!(want.len(), 40);
        assert_eq!(head.encode(), want);
        assert_eq!(head.content_length(), 40);
    }

    #[test]
    fn signed_update_matches_the_station_test4_vector() {
        let read = |f: &str| std::fs::read(format!("{VECTORS}/{f}")).unwrap();
        let update = read("v1.bin");
        let head = AnswerHead {
            signature: Some(Signature {
                key_crc: crc32fast::hash(&read("sig-0.key")),
                der: read("v1.bin.sig-0"),
            }),
            update_len: update.len() as u32,
            ..AnswerHead::default()
        };
        head.validate().unwrap();
        let mut body = head.encode();
        body.extend_from_slice(&update);
        assert_eq!(body, read("cups-response-sig-update.bin"));
        assert_eq!(head.content_length(), 226);
        assert_eq!(&body[6..14], &[0x4c, 0, 0, 0, 0x14, 0x9f, 0x1e, 0x1d]);
    }

    #[test]
    fn limits_are_enforced() {
        let long = "wss://".to_string() + &"a".repeat(122);
        let head = AnswerHead {
            tc_uri: Some(long),
            ..AnswerHead::default()
        };
        assert_eq!(head.validate(), Err(AnswerError::UriTooLong("TC", 128)));
        let head = AnswerHead {
            signature: Some(Signature {
                key_crc: 1,
                der: vec![0x30; 129],
            }),
            ..AnswerHead::default()
        };
        assert_eq!(head.validate(), Err(AnswerError::BadSignatureLen(129)));
        let head = AnswerHead {
            update_len: 1 << 31,
            ..AnswerHead::default()
        };
        assert!(head.validate().is_err());
    }
}
