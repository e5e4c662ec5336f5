//! The public-key infrastructure: a certificate authority, the server certificate
//! and per-gateway client certificates. On first start the development PKI is
//! generated under `state_dir/pki` (P-256 keys, 0600 key files) and reused after;
//! operators bring their own through `[tls]`. Client keys are handed out in SEC1
//! DER, the only EC key encoding Basics Station's blob parser reads (see
//! `cups::credentials`). Certificate and key generation is pure; the `DevPki`
//! loader is the only part that touches files.

use std::path::{Path, PathBuf};

use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::eui::Eui;
use crate::fsutil::{create_private_dir, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Crypto { what: String, message: String },
}

fn crypto(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Crypto {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// A CA that can sign certificates.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    key: KeyPair,
    params: CertificateParams,
}

/// A freshly issued certificate and its private key.
pub struct Issued {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// SEC1 "EC PRIVATE KEY" DER (P-256: 121 bytes, `30 77`).
    pub key_sec1_der: Vec<u8>,
    pub key_sec1_pem: String,
    /// PKCS#8 PEM, for rustls and openssl users.
    pub key_pkcs8_pem: String,
}

fn validity(p: &mut CertificateParams, years: i64) {
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(365 * years);
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(crypto("generating a P-256 key"))
}

/// SEC1 `ECPrivateKey` DER exactly as OpenSSL writes it for P-256 (121 bytes,
/// `30 77`): version, private scalar, the curve OID and the public point. The
/// `p256` crate's own SEC1 output leaves out the curve parameters, which
/// mbedTLS needs when the key is not wrapped in PKCS#8.
pub fn sec1_der(sk: &p256::SecretKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let point = sk.public_key().to_encoded_point(false);
    let mut der = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(&sk.to_bytes());
    der.extend_from_slice(&[0xa0, 0x0a]);
    der.extend_from_slice(&P256_OID);
    der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    der.extend_from_slice(point.as_bytes());
    debug_assert_eq!(der.len(), 121);
    der
}

/// PEM armour for DER bytes.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn to_sec1(key: &KeyPair) -> Result<(Vec<u8>, String), PkiError> {
    let sk =
        p256::SecretKey::from_pkcs8_der(&key.serialize_der()).map_err(|e| PkiError::Crypto {
            what: "converting key to SEC1".into(),
            message: e.to_string(),
        })?;
    let der = sec1_der(&sk);
    let pem = pem("EC PRIVATE KEY", &der);
    Ok((der, pem))
}

impl Ca {
    /// A new self-signed CA.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = new_key()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 20);
        let cert = params
            .clone()
            .self_signed(&key)
            .map_err(crypto("self-signing the CA"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key,
            params,
        })
    }

    /// Loads a CA from its PEM certificate and PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(crypto("reading the CA key"))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)
            .map_err(crypto("reading the CA certificate"))?;
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| PkiError::Crypto {
                what: "reading the CA certificate".into(),
                message: "no PEM certificate found".into(),
            })?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            cert_der: der.to_vec(),
            key,
            params,
        })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn issue(&self, mut params: CertificateParams, years: i64) -> Result<Issued, PkiError> {
        validity(&mut params, years);
        let key = new_key()?;
        let issuer = self
            .params
            .clone()
            .self_signed(&self.key)
            .map_err(crypto("loading the CA"))?;
        let cert = params
            .signed_by(&key, &issuer, &self.key)
            .map_err(crypto("signing a certificate"))?;
        let (key_sec1_der, key_sec1_pem) = to_sec1(&key)?;
        Ok(Issued {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_sec1_der,
            key_sec1_pem,
            key_pkcs8_pem: key.serialize_pem(),
        })
    }

    /// A TLS server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map_or("stationkeeper", String::as_str),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(crypto("server certificate names"))?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, 10)
    }

    /// A client certificate for one gateway: subject CN is its EUI (16 hex digits),
    /// which is what binds the certificate to that gateway.
    pub fn issue_gateway(&self, eui: Eui) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, eui.to_string());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, 10)
    }
}

/// The EUI in a certificate's subject CN, if it holds one.
pub fn cert_cn_eui(cert_der: &[u8]) -> Option<Eui> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    cn.parse().ok()
}

/// DNS names and IP SANs of a certificate.
fn cert_names(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return vec![];
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return vec![];
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The development PKI in `state_dir/pki`: `ca.crt`, `ca.key`, `server.crt`,
/// `server.key` (keys mode 0600).
pub struct DevPki {
    pub dir: PathBuf,
    pub ca: Ca,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl DevPki {
    /// Loads the PKI, creating the CA on first start, and (re)issuing the server
    /// certificate when it does not cover every name in `names`. The CA is never
    /// replaced, so gateways keep trusting the server across re-issues.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<DevPki, PkiError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PkiError::Io { path, source }
        };
        create_private_dir(dir).map_err(io(dir))?;
        let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (ca, new_ca) = match (ca_crt.exists(), ca_key.exists()) {
            (true, true) => {
                let cert = std::fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?;
                let key = std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?;
                (Ca::from_pem(&cert, &key)?, false)
            }
            (false, false) => {
                let ca = Ca::generate("Stationkeeper development CA")?;
                // Key first: a crash between the two writes leaves no CA without its key.
                write_atomic(&ca_key, ca.key_pem().as_bytes(), 0o600).map_err(io(&ca_key))?;
                write_atomic(&ca_crt, ca.cert_pem.as_bytes(), 0o644).map_err(io(&ca_crt))?;
                tracing::info!(path = %ca_crt.display(), "generated development CA");
                (ca, true)
            }
            // Never replace half a CA: gateways trust ca.crt, and a new key would
            // silently break every one of them.
            (has_crt, _) => {
                let missing = if has_crt { &ca_key } else { &ca_crt };
                return Err(PkiError::Io {
                    path: missing.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the development CA is incomplete; restore this file from backup, or remove both ca.crt and ca.key to start a new CA (every gateway then needs the new cups.trust)",
                    ),
                });
            }
        };
        let (srv_crt, srv_key) = (dir.join("server.crt"), dir.join("server.key"));
        let existing = std::fs::read_to_string(&srv_crt)
            .ok()
            .zip(std::fs::read_to_string(&srv_key).ok());
        let covered = existing.as_ref().is_some_and(|(pem, _)| {
            let have = rustls_pemfile::certs(&mut pem.as_bytes())
                .next()
                .and_then(Result::ok)
                .map(|d| cert_names(&d))
                .unwrap_or_default();
            names.iter().all(|n| have.contains(n))
        });
        let (server_cert_pem, server_key_pem) = match existing {
            Some(pair) if covered && !new_ca => pair,
            _ => {
                let issued = ca.issue_server(names)?;
                write_atomic(&srv_key, issued.key_pkcs8_pem.as_bytes(), 0o600)
                    .map_err(io(&srv_key))?;
                write_atomic(&srv_crt, issued.cert_pem.as_bytes(), 0o644).map_err(io(&srv_crt))?;
                tracing::info!(path = %srv_crt.display(), ?names, "issued development server certificate");
                (issued.cert_pem, issued.key_pkcs8_pem)
            }
        };
        Ok(DevPki {
            dir: dir.to_path_buf(),
            ca,
            server_cert_pem,
            server_key_pem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cups::credentials::check_station_der;

    #[test]
    fn issued_parts_fit_station_blob_parser() {
        let ca = Ca::generate("test CA").unwrap();
        check_station_der("trust", &ca.cert_der).unwrap();
        let gw = ca.issue_gateway(Eui(0xb827_ebff_fe61_51a8)).unwrap();
        check_station_der("cert", &gw.cert_der).unwrap();
        assert_eq!(&gw.key_sec1_der[..2], &[0x30, 0x77]);
        assert_eq!(gw.key_sec1_der.len(), 121);
        assert_eq!(cert_cn_eui(&gw.cert_der), Some(Eui(0xb827_ebff_fe61_51a8)));
    }

    #[test]
    fn sec1_encoding_matches_the_golden_openssl_key() {
        let mtls = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/cups-creds/mtls.bin"
        ))
        .unwrap();
        let golden = &mtls[624..];
        let sk = p256::SecretKey::from_sec1_der(golden).unwrap();
        assert_eq!(sec1_der(&sk), golden);
    }

    #[test]
    fn half_a_ca_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        DevPki::load_or_create(dir.path(), &names).unwrap();
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        let e = DevPki::load_or_create(dir.path(), &names)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ca.key") && e.contains("incomplete"), "{e}");
    }

    #[test]
    fn dev_pki_is_reused_and_server_cert_follows_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let a = DevPki::load_or_create(dir.path(), &names).unwrap();
        let b = DevPki::load_or_create(dir.path(), &names).unwrap();
        assert_eq!(a.ca.cert_pem, b.ca.cert_pem);
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        let more = vec!["localhost".to_string(), "cups.example.net".to_string()];
        let c = DevPki::load_or_create(dir.path(), &more).unwrap();
        assert_eq!(a.ca.cert_pem, c.ca.cert_pem, "CA is never replaced");
        assert_ne!(a.server_cert_pem, c.server_cert_pem);
        // The reloaded CA still signs certificates that chain to the original.
        let gw = b.ca.issue_gateway(Eui(5)).unwrap();
        assert_eq!(cert_cn_eui(&gw.cert_der), Some(Eui(5)));
    }
}
