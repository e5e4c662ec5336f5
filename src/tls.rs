//! TLS for every face: the rustls server configuration (TLS 1.2 kept on, because
//! station's mbedTLS has no TLS 1.3), the choice of key-exchange group per
//! ClientHello, the handshake itself, optional client-certificate verification
//! against the client CA (token-authenticated gateways present no certificate),
//! the one trust certificate gateways are given, and reading a verified peer
//! certificate back out of a connection.
//!
//! rustls takes the key-exchange group in the *client's* order, and station 2.0.6
//! (mbedTLS) lists its curves largest first, X25519 last, so a plain config makes
//! every station handshake use P-384, the most expensive group offered (about 6x
//! the server CPU of X25519 per handshake, 3x per CUPS poll). So the server reads
//! the ClientHello first and picks one of three configs that differ only in their
//! groups ([`choose_groups`]): X25519 alone when offered, else P-256 alone when
//! offered, else the full list.
//!
//! The cipher suite is the server's choice too ([`CIPHER_SUITES`]): station lists
//! AES-256-GCM-SHA384 among its first suites, and on a handshake that carries 14
//! bytes of answer the suite's hash (the TLS 1.2 PRF and transcript) costs more
//! than the bulk cipher; SHA-256 has CPU instructions where SHA-384 has none.
//!
//! The server's handshakes use aws-lc-rs, not ring (which the rest of the binary
//! uses for its own certificates and outgoing connections): a handshake with its
//! X25519 takes about a quarter less server CPU, with its P-256 about a tenth
//! less (`tls-handshake` in benches/README.md).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs::{cipher_suite as suite, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, ClientHello, WebPkiClientVerifier};
use rustls::{NamedGroup, RootCertStore, ServerConfig, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

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
    pub server: Arc<ServerConfigs>,
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

/// The suites the server offers, in the order it prefers them whatever the
/// client's order: SHA-256 suites first, the SHA-384 ones last. Among the TLS 1.2
/// ones ChaCha20-Poly1305 comes first, for the gateway's sake: a Raspberry Pi has
/// no AES instructions, and the server's cost is the same. The set is the
/// provider's default one; only the order differs.
pub const CIPHER_SUITES: &[SupportedCipherSuite] = &[
    suite::TLS13_AES_128_GCM_SHA256,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// Which server config a ClientHello gets, by the key-exchange groups it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChoice {
    /// X25519 only: the cheapest group (about a third of P-384's CPU).
    X25519,
    /// P-256 only: for clients without Curve25519 (e.g. an mbedTLS build without
    /// `MBEDTLS_ECP_DP_CURVE25519_ENABLED`).
    P256,
    /// The provider's default groups (X25519MLKEM768, X25519, P-256, P-384). Only a
    /// client offering neither of the two above gets here, so in practice this is
    /// P-384: no station build we know of needs it, but a client restricted to it
    /// (a CNSA / "Suite B 192-bit" policy, or `openssl s_client -groups P-384`)
    /// would otherwise fail the handshake, and keeping it costs the other clients
    /// nothing.
    Fallback,
}

/// The config for a ClientHello offering `offered` (in the client's order, which
/// does not matter here): the cheapest group the client offers.
pub fn choose_groups(offered: &[NamedGroup]) -> GroupChoice {
    if offered.contains(&NamedGroup::X25519) {
        GroupChoice::X25519
    } else if offered.contains(&NamedGroup::secp256r1) {
        GroupChoice::P256
    } else {
        GroupChoice::Fallback
    }
}

/// The server configs of [`GroupChoice`]. They share everything else: the
/// certificate (one resolver), the client-certificate verifier, the session cache
/// and ticketer, ALPN.
pub struct ServerConfigs {
    x25519: Arc<ServerConfig>,
    p256: Arc<ServerConfig>,
    fallback: Arc<ServerConfig>,
}

/// How a server-side handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no ClientHello within {} s", .0.as_secs())]
    NoHello(Duration),
    #[error("the handshake did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Failed(io::Error),
}

impl ServerConfigs {
    pub fn get(&self, choice: GroupChoice) -> &Arc<ServerConfig> {
        match choice {
            GroupChoice::X25519 => &self.x25519,
            GroupChoice::P256 => &self.p256,
            GroupChoice::Fallback => &self.fallback,
        }
    }

    /// The same configs without a session cache, for the listeners only Basics
    /// Station talks to (CUPS, LNS). Station never resumes a session: every
    /// connection gets a fresh mbedTLS context, and its `tls.c` never saves or
    /// restores one. Storing each session was pure cost there, and a cache of a
    /// few hundred entries would not hit in a fleet of thousands anyway. The API
    /// keeps the cache for browsers and scripts.
    pub fn without_session_cache(&self) -> ServerConfigs {
        let strip = |c: &Arc<ServerConfig>| {
            let mut c = ServerConfig::clone(c);
            c.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            Arc::new(c)
        };
        ServerConfigs {
            x25519: strip(&self.x25519),
            p256: strip(&self.p256),
            fallback: strip(&self.fallback),
        }
    }

    /// The config for this ClientHello (a hello without the groups extension
    /// gets the fallback, where rustls refuses it as before).
    pub fn for_hello(&self, hello: &ClientHello<'_>) -> &Arc<ServerConfig> {
        self.get(choose_groups(hello.named_groups().unwrap_or_default()))
    }

    /// The server side of a handshake on `io`: the ClientHello must arrive within
    /// `hello_timeout`, the whole handshake within `timeout`.
    pub async fn accept<IO>(
        &self,
        io: IO,
        hello_timeout: Duration,
        timeout: Duration,
    ) -> Result<TlsStream<IO>, HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let hello_deadline = deadline.min(tokio::time::Instant::now() + hello_timeout);
        let start = tokio::time::timeout_at(
            hello_deadline,
            LazyConfigAcceptor::new(Acceptor::default(), io),
        )
        .await
        .map_err(|_| HandshakeError::NoHello(hello_timeout.min(timeout)))?
        .map_err(HandshakeError::Failed)?;
        let config = self.for_hello(&start.client_hello()).clone();
        tokio::time::timeout_at(deadline, start.into_stream(config))
            .await
            .map_err(|_| HandshakeError::Timeout(timeout))?
            .map_err(HandshakeError::Failed)
    }
}

/// The server configs: TLS 1.3 and 1.2, a certificate chaining to `client_roots`
/// asked for (but not required), groups by [`choose_groups`].
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfigs>, TlsError> {
    let provider = Arc::new(CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    });
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
    let builder = |provider: Arc<CryptoProvider>| {
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Rustls(e.to_string()))
            .map(|b| b.with_client_cert_verifier(verifier.clone()))
    };
    let mut fallback = builder(provider.clone())?
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("server certificate/key: {e}")))?;
    fallback.alpn_protocols = vec![b"http/1.1".to_vec()];
    fallback.ignore_client_order = true;
    let only = |group| -> Result<Arc<ServerConfig>, TlsError> {
        let provider = CryptoProvider {
            kx_groups: vec![group],
            ..(*provider).clone()
        };
        let mut c = builder(Arc::new(provider))?.with_cert_resolver(fallback.cert_resolver.clone());
        c.session_storage = fallback.session_storage.clone();
        c.ticketer = fallback.ticketer.clone();
        c.alpn_protocols = fallback.alpn_protocols.clone();
        c.ignore_client_order = true;
        Ok(Arc::new(c))
    };
    Ok(Arc::new(ServerConfigs {
        x25519: only(kx_group::X25519)?,
        p256: only(kx_group::SECP256R1)?,
        fallback: Arc::new(fallback),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Station 2.0.6's supported_groups, as captured (benches/README.md).
    const STATION: [NamedGroup; 9] = [
        NamedGroup::secp521r1,
        NamedGroup::secp384r1,
        NamedGroup::secp256r1,
        NamedGroup::Unknown(22), // secp256k1
        NamedGroup::Unknown(21), // secp224r1
        NamedGroup::Unknown(20), // secp224k1
        NamedGroup::Unknown(19), // secp192r1
        NamedGroup::Unknown(18), // secp192k1
        NamedGroup::X25519,
    ];

    #[test]
    fn the_cheapest_offered_group_is_chosen() {
        assert_eq!(choose_groups(&STATION), GroupChoice::X25519);
        let no_x25519: Vec<_> = STATION
            .iter()
            .copied()
            .filter(|g| *g != NamedGroup::X25519)
            .collect();
        assert_eq!(choose_groups(&no_x25519), GroupChoice::P256);
        assert_eq!(
            choose_groups(&[NamedGroup::secp521r1, NamedGroup::secp384r1]),
            GroupChoice::Fallback
        );
        assert_eq!(choose_groups(&[]), GroupChoice::Fallback);
        assert_eq!(
            choose_groups(&[NamedGroup::X25519, NamedGroup::secp256r1]),
            GroupChoice::X25519
        );
    }
}
