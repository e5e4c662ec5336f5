//! Credential blobs as CUPS delivers them (cups-protocol.md §6): one DER trust
//! certificate, then a DER client certificate or 4 zero bytes, then a SEC1 key, a
//! token header line, or 4 zero bytes. Station computes its `cupsCredCrc` /
//! `tcCredCrc` as `crc32(blob)` once a blob is installed, so the blob's CRC is what
//! the server compares against. Pure: no I/O.
//!
//! Station's DER length reader only understands the short form and `0x82 HH LL`;
//! a part in the `0x81 LL` form (content 128..=255 bytes) is misparsed and the whole
//! blob is dropped, so `build` refuses such parts instead of sending them forever.

/// What the gateway authenticates with after installing the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPart<'a> {
    /// Mutual TLS: client certificate DER and SEC1 / PKCS#1 private key DER.
    Certificate {
        cert_der: &'a [u8],
        key_der: &'a [u8],
    },
    /// `Authorization: Bearer <token>` header line.
    Token(&'a str),
    /// Server authentication only: 8 zero bytes after the trust.
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredError {
    #[error("{part} is not DER (first byte {first:#04x}, expected 0x30)")]
    NotDer { part: &'static str, first: u8 },
    #[error("{part} uses a DER length form station 2.0.6 misparses ({len} bytes; only lengths < 128 or 256..=65535 of content work); reissue it with a different key type or subject")]
    UnsupportedDerLength { part: &'static str, len: usize },
    #[error("{part} DER header does not match its length")]
    BadDer { part: &'static str },
    #[error("token contains characters that would break the header line")]
    BadToken,
    #[error("credential blob is {0} bytes; the CUPS field holds at most 65535")]
    TooLong(usize),
}

/// The header line station appends for token auth (operator-api.md: CRLF-terminated).
pub fn token_header(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// Checks that `der` is one DER element whose length form station parses.
pub fn check_station_der(part: &'static str, der: &[u8]) -> Result<(), CredError> {
    let first = der.first().copied().unwrap_or(0);
    if first != 0x30 {
        return Err(CredError::NotDer { part, first });
    }
    let Some(&l0) = der.get(1) else {
        return Err(CredError::BadDer { part });
    };
    let total = match l0 {
        0..=0x7f => usize::from(l0) + 2,
        0x82 => match der.get(2..4) {
            Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])) + 4,
            None => return Err(CredError::BadDer { part }),
        },
        _ => {
            return Err(CredError::UnsupportedDerLength {
                part,
                len: der.len(),
            })
        }
    };
    if total != der.len() {
        return Err(CredError::BadDer { part });
    }
    Ok(())
}

/// Builds a credential blob. `trust_der` is the one certificate the gateway uses to
/// verify the server.
pub fn build(trust_der: &[u8], client: &ClientPart<'_>) -> Result<Vec<u8>, CredError> {
    check_station_der("trust certificate", trust_der)?;
    let mut blob = trust_der.to_vec();
    match client {
        ClientPart::Certificate { cert_der, key_der } => {
            check_station_der("client certificate", cert_der)?;
            check_station_der("client key", key_der)?;
            blob.extend_from_slice(cert_der);
            blob.extend_from_slice(key_der);
        }
        ClientPart::Token(token) => {
            if token.is_empty() || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(CredError::BadToken);
            }
            blob.extend_from_slice(&[0; 4]);
            blob.extend_from_slice(token_header(token).as_bytes());
        }
        ClientPart::None => blob.extend_from_slice(&[0; 8]),
    }
    if blob.len() > usize::from(u16::MAX) {
        return Err(CredError::TooLong(blob.len()));
    }
    Ok(blob)
}

/// The CRC station reports once it has installed `blob` (cups-protocol.md §6.4).
pub fn crc(blob: &[u8]) -> u32 {
    crc32fast::hash(blob)
}

/// Station's CRC when it has no credential files at all: CRC32 of 12 zero bytes.
pub const NO_FILES_CRC: u32 = 0x7BD5_C66F;

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/cups-creds");

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(format!("{VECTORS}/{name}")).unwrap()
    }

    /// Cuts the golden mTLS blob into its parts using the lengths in README.json.
    fn golden_parts() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let m = vector("mtls.bin");
        (m[..319].to_vec(), m[319..624].to_vec(), m[624..].to_vec())
    }

    #[test]
    fn rebuilds_the_three_golden_blobs_byte_for_byte() {
        let (trust, cert, key) = golden_parts();
        assert_eq!(key.len(), 121);
        let mtls = build(
            &trust,
            &ClientPart::Certificate {
                cert_der: &cert,
                key_der: &key,
            },
        )
        .unwrap();
        assert_eq!(mtls, vector("mtls.bin"));
        assert_eq!(crc(&mtls), 0x0C63_9D7C);

        let token = build(&trust, &ClientPart::Token("example-token")).unwrap();
        assert_eq!(token, vector("token.bin"));
        assert_eq!(crc(&token), 0x345D_5C45);

        let server_only = build(&trust, &ClientPart::None).unwrap();
        assert_eq!(server_only, vector("server-only.bin"));
        assert!(server_only.ends_with(&[0; 8]));
        assert_eq!(crc(&server_only), 0x1671_3E73);
    }

    #[test]
    fn no_files_crc_is_crc_of_twelve_zero_bytes() {
        assert_eq!(crc(&[0; 12]), NO_FILES_CRC);
    }

    #[test]
    fn pkcs8_p256_key_is_refused_because_station_misparses_0x81() {
        let (trust, cert, _) = golden_parts();
        let mut pkcs8 = vec![0x30, 0x81, 0x87];
        pkcs8.extend_from_slice(&[0; 0x87]);
        let err = build(
            &trust,
            &ClientPart::Certificate {
                cert_der: &cert,
                key_der: &pkcs8,
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CredError::UnsupportedDerLength {
                part: "client key",
                ..
            }
        ));
    }

    #[test]
    fn malformed_parts_are_refused() {
        let (trust, _, _) = golden_parts();
        assert!(matches!(
            build(&[0x04, 0x00], &ClientPart::None),
            Err(CredError::NotDer { .. })
        ));
        assert!(matches!(
            build(&trust[..100], &ClientPart::None),
            Err(CredError::BadDer { .. })
        ));
        assert_eq!(
            build(&trust, &ClientPart::Token("a b")),
            Err(CredError::BadToken)
        );
        assert_eq!(
            build(&trust, &ClientPart::Token("x\r\nEvil: 1")),
            Err(CredError::BadToken)
        );
    }
}
