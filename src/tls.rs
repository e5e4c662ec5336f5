//! TLS for every face: the rustls server configuration (TLS 1.2 kept on, because
//! station's mbedTLS has no TLS 1.3), optional client-certificate verification
//! against the client CA (token-authenticated gateways present no certificate),
//! the one trust certificate gateways are given, and reading a verified peer
//! certificate back out of a connection.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::Config;
use crate::identity::{sha256_hex, PeerCert};
use crate::pki::{self, Ca, DevPki};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// Everything the faces need from the PKI.
pub struct TlsMaterial {
    pub server: Arc<ServerConfig>,
    /// The certificate gateways trust (`cups.trust` / `tc.trust`), DER and PEM.
    pub trust_der: Vec<u8>,
    pub trust_pem: String,
    /// The CA that issues gateway client certificates; `None` when the operator
    /// brought a client CA whose key we do not hold.
    pub issuer: Option<Arc<Ca>>,
    /// Where the development CA lives (shown to the operator at start).
    pub dev_ca_path: std::path::PathBuf,
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in file".into()));
    }
    Ok(certs)
}

fn read_pem_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no PEM private key in file".into()))
}

fn pem_of(der: &[u8]) -> String {
    pki::pem("CERTIFICATE", der)
}

/// The host names the development server certificate must cover.
pub fn dev_server_names(cfg: &Config, host: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let uri_host = |u: String| {
        u.split_once("://")
            .and_then(|(_, r)| r.rsplit_once(':'))
            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
    };
    for n in [
        Some(host.to_string()),
        uri_host(cfg.cups_public_uri(host)),
        uri_host(cfg.lns_public_uri(host)),
    ]
    .into_iter()
    .flatten()
    {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Builds the TLS material from the config, generating the development PKI in
/// `state_dir/pki` where the config names no files.
pub fn load(cfg: &Config, host: &str) -> Result<TlsMaterial, TlsError> {
    let dev = DevPki::load_or_create(&cfg.state_dir.join("pki"), &dev_server_names(cfg, host))?;
    let (chain, key) = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(c), Some(k)) => (read_pem_certs(c)?, read_pem_key(k)?),
        _ => {
            let chain = rustls_pemfile::certs(&mut dev.server_cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            let key = rustls_pemfile::private_key(&mut dev.server_key_pem.as_bytes())
                .map_err(|e| TlsError::Rustls(e.to_string()))?
                .ok_or_else(|| TlsError::Rustls("dev server key missing".into()))?;
            (chain, key)
        }
    };
    let trust_der = match (&cfg.tls.trust, &cfg.tls.cert) {
        (Some(t), _) => read_pem_certs(t)?.remove(0).to_vec(),
        (None, Some(_)) => chain.last().expect("non-empty chain").to_vec(),
        (None, None) => dev.ca.cert_der.clone(),
    };
    let client_roots = match &cfg.tls.client_ca {
        Some(p) => read_pem_certs(p)?,
        None => vec![CertificateDer::from(dev.ca.cert_der.clone())],
    };
    let issuer = match cfg.tls.client_ca {
        Some(_) => None,
        None => Some(Arc::new(dev.ca)),
    };
    // Station's blob parser must be able to read the trust certificate, or every
    // credential delivery fails; refuse to start rather than fail each poll.
    crate::cups::credentials::check_station_der("trust certificate", &trust_der).map_err(|e| {
        TlsError::File {
            path: cfg
                .tls
                .trust
                .as_ref()
                .or(cfg.tls.cert.as_ref())
                .map_or_else(|| "development CA".to_string(), |p| p.display().to_string()),
            message: format!("{e}; gateways could not install it (cups-protocol.md §6.2)"),
        }
    })?;
    let server = server_config(chain, key, client_roots)?;
    Ok(TlsMaterial {
        server,
        trust_pem: pem_of(&trust_der),
        trust_der,
        issuer,
        dev_ca_path: dev.dir.join("ca.crt"),
    })
}

/// A server config that offers TLS 1.3 and 1.2 and asks for (but does not require)
/// a client certificate chaining to `client_roots`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in client_roots {
        roots
            .add(c)
            .map_err(|e| TlsError::Rustls(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("server certificate/key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client config for connections the server makes (the integrations' broker and
/// endpoints): TLS 1.3/1.2 with ring, trusting only the PEM CA certificates in
/// `ca_cert` when given (a private broker's CA), else the system's roots.
pub fn client_config(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = match ca_cert {
        Some(path) => read_pem_certs(path)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(TlsError::Rustls(format!(
                    "no system CA certificates ({:?}); install ca-certificates or set ca_cert",
                    found.errors.first().map(|e| e.to_string())
                )));
            }
            found.certs
        }
    };
    // A system store may hold certificates webpki cannot use; skip those, as
    // browsers do, but a CA file the operator named must load whole.
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 || (ca_cert.is_some() && ignored > 0) {
        return Err(TlsError::Rustls(format!(
            "{}: {ignored} CA certificate(s) could not be used",
            ca_cert.map_or("system CA store".to_string(), |p| p.display().to_string())
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client config trusting nothing, for a connector that is never asked to speak TLS.
pub fn client_config_without_roots() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(config)
}

/// The verified client certificate of a finished handshake, if one was presented.
pub fn peer_cert(conn: &rustls::ServerConnection) -> Option<PeerCert> {
    let der = conn.peer_certificates()?.first()?;
    Some(PeerCert {
        sha256: sha256_hex(der),
        cn_eui: pki::cert_cn_eui(der),
    })
}
