//! Update signatures exactly as Basics Station checks them (cups-protocol.md §7):
//! ECDSA over P-256 with SHA-512 of the update bytes, DER-encoded (at most 128
//! bytes); public keys as `sig-N.key` files of 64 raw bytes X‖Y, named on the
//! wire by the CRC32 of those 64 bytes. Key generation and signing are here too,
//! so an operator never needs a separate script. File hashing streams; nothing
//! holds an update in memory.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sha2::{Digest, Sha512};

/// A `sig-N.key`: the uncompressed point without its 0x04 prefix.
pub type RawKey = [u8; 64];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error(
        "public key: {0}; give the PEM public key or the base64 of the 64-byte sig-N.key file"
    )]
    PublicKey(String),
    #[error(
        "private key: {0}; give a PEM P-256 key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)"
    )]
    PrivateKey(String),
    #[error("UpdateSignature is not base64: {0}")]
    Base64(String),
    #[error("UpdateSignature is not a DER ECDSA P-256 signature: {0}")]
    Der(String),
    #[error("UpdateSignature is {0} bytes; station holds at most 128")]
    TooLong(usize),
    #[error("{0}")]
    Io(String),
}

/// CRC32 (IEEE) of the key file, as station lists it in `keys`.
pub fn key_crc(key: &RawKey) -> u32 {
    crc32fast::hash(key)
}

/// Reads a public key given as PEM (`PUBLIC KEY`), base64 of the 64-byte
/// `sig-N.key`, or base64 of the 65-byte uncompressed point.
pub fn parse_public_key(text: &str) -> Result<RawKey, SigError> {
    let text = text.trim();
    let vk = if text.starts_with("-----BEGIN") {
        VerifyingKey::from_public_key_pem(text).map_err(|e| SigError::PublicKey(e.to_string()))?
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| SigError::PublicKey(format!("not PEM and not base64 ({e})")))?;
        let point = match bytes.len() {
            64 => [&[0x04][..], &bytes].concat(),
            65 if bytes[0] == 0x04 => bytes,
            n => {
                return Err(SigError::PublicKey(format!(
                    "{n} bytes; sig-N.key files are exactly 64"
                )))
            }
        };
        VerifyingKey::from_sec1_bytes(&point)
            .map_err(|_| SigError::PublicKey("not a point on P-256".into()))?
    };
    Ok(raw_of(&vk))
}

fn raw_of(vk: &VerifyingKey) -> RawKey {
    let point = vk.to_encoded_point(false);
    point.as_bytes()[1..]
        .try_into()
        .expect("uncompressed P-256 point is 65 bytes")
}

/// Decodes an AWS `UpdateSignature`: base64 of the DER signature.
pub fn parse_signature_b64(text: &str) -> Result<Vec<u8>, SigError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| SigError::Base64(e.to_string()))?;
    if der.len() > 128 {
        return Err(SigError::TooLong(der.len()));
    }
    Signature::from_der(&der).map_err(|e| SigError::Der(e.to_string()))?;
    Ok(der)
}

/// SHA-512 of a file, read in chunks.
pub fn sha512_file(path: &Path) -> Result<[u8; 64], SigError> {
    let mut f =
        std::fs::File::open(path).map_err(|e| SigError::Io(format!("{}: {e}", path.display())))?;
    let mut h = Sha512::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| SigError::Io(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Verifies a DER signature over the SHA-512 digest of the update, as station does
/// (mbedTLS truncates the 64-byte digest to the curve size, which is what
/// `verify_prehash` does too).
pub fn verify_digest(key: &RawKey, digest: &[u8; 64], der: &[u8]) -> bool {
    let point = [&[0x04][..], key].concat();
    let (Ok(vk), Ok(sig)) = (
        VerifyingKey::from_sec1_bytes(&point),
        Signature::from_der(der),
    ) else {
        return false;
    };
    vk.verify_prehash(digest, &sig).is_ok()
}

/// A new signing key: the private key as PKCS#8 PEM and the gateway's `sig-N.key`.
pub fn generate() -> (String, RawKey) {
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    let pem = sk
        .to_pkcs8_pem(LineEnding::LF)
        .expect("a fresh key encodes")
        .to_string();
    (pem, raw_of(sk.verifying_key()))
}

/// The public key of a private key, as SPKI PEM (for `POST /signing-keys`).
pub fn public_pem(key: &RawKey) -> String {
    let point = [&[0x04][..], key].concat();
    VerifyingKey::from_sec1_bytes(&point)
        .expect("a RawKey is a valid point")
        .to_public_key_pem(LineEnding::LF)
        .expect("public keys encode")
}

pub fn parse_private_key(pem: &str) -> Result<SigningKey, SigError> {
    SigningKey::from_pkcs8_pem(pem)
        .or_else(|_| p256::SecretKey::from_sec1_pem(pem).map(SigningKey::from))
        .map_err(|e| SigError::PrivateKey(e.to_string()))
}

/// Signs an update: the DER signature and the CRC of the matching `sig-N.key`.
pub fn sign_digest(sk: &SigningKey, digest: &[u8; 64]) -> (Vec<u8>, u32) {
    let sig: Signature = sk
        .sign_prehash(digest)
        .expect("P-256 signs a 64-byte prehash");
    (
        sig.to_der().as_bytes().to_vec(),
        key_crc(&raw_of(sk.verifying_key())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/station-test4");

    fn read(f: &str) -> Vec<u8> {
        std::fs::read(format!("{VECTORS}/{f}")).unwrap()
    }

    #[test]
    fn the_semtech_test4_signature_verifies() {
        let key: RawKey = read("sig-0.key").try_into().unwrap();
        assert_eq!(key_crc(&key), 0x1D1E_9F14);
        let digest = sha512_file(Path::new(&format!("{VECTORS}/v1.bin"))).unwrap();
        assert_eq!(
            hex::encode(digest),
            "1babb293d510979b5939bdc656f8cdb095ddfc024665a86e0aa43bfdafa50a735df7be1bedb1c8fcb8408fb13c4090b5fa86d584613af8ae6bc1e92950e9393a"
        );
        let sig = read("v1.bin.sig-0");
        assert!(verify_digest(&key, &digest, &sig));
        let mut other = digest;
        other[0] ^= 1;
        assert!(!verify_digest(&key, &other, &sig));
        // The AWS input form: base64 of the DER signature.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
        assert_eq!(parse_signature_b64(&b64).unwrap(), sig);
    }

    #[test]
    fn public_keys_in_every_accepted_form() {
        let raw: RawKey = read("sig-0.key").try_into().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(parse_public_key(&b64).unwrap(), raw);
        assert_eq!(parse_public_key(&public_pem(&raw)).unwrap(), raw);
        let with_prefix =
            base64::engine::general_purpose::STANDARD.encode([&[4u8][..], &raw].concat());
        assert_eq!(parse_public_key(&with_prefix).unwrap(), raw);
        assert!(parse_public_key("AAAA").is_err());
        assert!(
            parse_public_key(&base64::engine::general_purpose::STANDARD.encode([1u8; 64])).is_err()
        );
    }

    #[test]
    fn generated_keys_sign_what_station_verifies() {
        let (pem, raw) = generate();
        let sk = parse_private_key(&pem).unwrap();
        let digest: [u8; 64] = Sha512::digest(b"#!/bin/sh\necho hi\n").into();
        let (der, crc) = sign_digest(&sk, &digest);
        assert_eq!(crc, key_crc(&raw));
        assert!(der.len() <= 72 && der[0] == 0x30);
        assert!(verify_digest(&raw, &digest, &der));
    }

    #[test]
    fn bad_signatures_are_named() {
        assert!(matches!(
            parse_signature_b64("!!!"),
            Err(SigError::Base64(_))
        ));
        assert!(matches!(parse_signature_b64("AAAA"), Err(SigError::Der(_))));
        let long = base64::engine::general_purpose::STANDARD.encode([0x30u8; 140]);
        assert!(matches!(
            parse_signature_b64(&long),
            Err(SigError::TooLong(140))
        ));
    }
}
