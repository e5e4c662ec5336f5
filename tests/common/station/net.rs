//! Transport side: TLS client configuration from credential files (spec §1.1)
//! and one HTTP/1.1 request/response exchange read the way station reads it
//! (§1: status line shape, Content-Length, 8 KiB chunks, inactivity timeout).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName,
};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::StationError;

/// Station's read chunk size (`CUPS_BUFSZ`), which the HTTP header shares.
pub const CUPS_BUFSZ: usize = 8192;

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(10).any(|w| w == b"-----BEGIN")
}

/// Certificates from a `.trust`/`.crt` file: one or more PEM certificates or
/// a single DER certificate.
pub fn load_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    if is_pem(bytes) {
        let certs: Vec<_> = rustls_pemfile::certs(&mut &bytes[..])
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad PEM certificate: {e}"))?;
        if certs.is_empty() {
            return Err("PEM file holds no CERTIFICATE".into());
        }
        Ok(certs)
    } else if bytes.first() == Some(&0x30) {
        Ok(vec![CertificateDer::from(bytes.to_vec())])
    } else {
        Err("neither PEM nor DER certificate".into())
    }
}

/// Tag of the element after the leading `INTEGER version` inside the outer
/// SEQUENCE: 0x30 → PKCS#8, 0x04 → SEC1, 0x02 → PKCS#1 (RSA).
fn der_key_kind(d: &[u8]) -> Option<u8> {
    fn hdr(d: &[u8], off: usize) -> Option<(usize, usize)> {
        // returns (header length, content length) with full DER length rules
        let l = *d.get(off + 1)?;
        if l & 0x80 == 0 {
            return Some((2, usize::from(l)));
        }
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*d.get(off + 2 + i)?);
        }
        Some((2 + n, len))
    }
    if d.first() != Some(&0x30) {
        return None;
    }
    let (h, _) = hdr(d, 0)?;
    if d.get(h) != Some(&0x02) {
        return None;
    }
    let (vh, vl) = hdr(d, h)?;
    d.get(h + vh + vl).copied()
}

/// Private key from a `.key` file: PEM (`EC PRIVATE KEY`, `PRIVATE KEY`,
/// `RSA PRIVATE KEY`) or DER (SEC1, PKCS#8 or PKCS#1).
pub fn load_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    if is_pem(bytes) {
        return rustls_pemfile::private_key(&mut &bytes[..])
            .map_err(|e| format!("bad PEM key: {e}"))?
            .ok_or_else(|| "PEM file holds no private key".to_string());
    }
    let der = bytes.to_vec();
    match der_key_kind(bytes) {
        Some(0x30) => Ok(PrivatePkcs8KeyDer::from(der).into()),
        Some(0x04) => Ok(PrivateSec1KeyDer::from(der).into()),
        Some(0x02) => Ok(PrivatePkcs1KeyDer::from(der).into()),
        _ => Err("unrecognised DER private key".into()),
    }
}

/// How the client authenticates inside TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Plain `http://`: no TLS, no token.
    Plain,
    /// TLS, server authentication only.
    ServerOnly,
    /// TLS with a client certificate.
    ClientCert,
    /// TLS, token header lines from the `.key` file.
    Token,
}

/// A group station offers that ring cannot compute. Listing it is enough for a
/// TLS 1.2 ClientHello (no key share is made up front); a server choosing it fails
/// the handshake, as it would with no common group.
#[derive(Debug)]
struct OfferedOnly(rustls::NamedGroup);

impl rustls::crypto::SupportedKxGroup for OfferedOnly {
    fn start(&self) -> Result<Box<dyn rustls::crypto::ActiveKeyExchange>, rustls::Error> {
        Err(rustls::Error::General(format!(
            "test client cannot compute {:?}",
            self.0
        )))
    }

    fn name(&self) -> rustls::NamedGroup {
        self.0
    }
}

/// Station 2.0.6's `supported_groups`, in its order, as captured from a running
/// station (benches/README.md): secp521r1, secp384r1, secp256r1, secp256k1,
/// secp224r1, secp224k1, secp192r1, secp192k1, x25519. Only for TLS 1.2 hellos.
pub fn station_groups() -> Vec<&'static dyn rustls::crypto::SupportedKxGroup> {
    use rustls::crypto::ring::kx_group;
    use rustls::NamedGroup;
    static OTHERS: [OfferedOnly; 6] = [
        OfferedOnly(NamedGroup::secp521r1),
        OfferedOnly(NamedGroup::Unknown(22)), // secp256k1
        OfferedOnly(NamedGroup::Unknown(21)), // secp224r1
        OfferedOnly(NamedGroup::Unknown(20)), // secp224k1
        OfferedOnly(NamedGroup::Unknown(19)), // secp192r1
        OfferedOnly(NamedGroup::Unknown(18)), // secp192k1
    ];
    vec![
        &OTHERS[0],
        kx_group::SECP384R1,
        kx_group::SECP256R1,
        &OTHERS[1],
        &OTHERS[2],
        &OTHERS[3],
        &OTHERS[4],
        &OTHERS[5],
        kx_group::X25519,
    ]
}

/// Builds a rustls client config: trust from a `.trust` file, optional client
/// certificate + key. `tls12_only` mimics mbedTLS 2.28: no TLS 1.3, and station's
/// key-exchange groups in station's order.
pub fn client_config(
    trust: &[u8],
    client: Option<(&[u8], &[u8])>,
    tls12_only: bool,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(trust).map_err(|e| format!("trust: {e}"))? {
        roots
            .add(c)
            .map_err(|e| format!("trust: unusable certificate: {e}"))?;
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let mut provider = rustls::crypto::ring::default_provider();
    if tls12_only {
        provider.kx_groups = station_groups();
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((crt, key)) => {
            let chain = load_certs(crt).map_err(|e| format!("crt: {e}"))?;
            let key = load_key(key).map_err(|e| format!("key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client cert/key: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// The connection flavour for [`raw_exchange`].
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls {
        config: Arc<ClientConfig>,
        /// Used for SNI and the certificate hostname check.
        server_name: String,
    },
}

/// Limits for reading an answer.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Inactivity timeout: restarts with every chunk (`CUPS_CONN_TIMEOUT`).
    pub timeout: Duration,
    /// Read at most this many body bytes, then drop the connection
    /// (simulates an interrupted download).
    pub max_body_bytes: Option<usize>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            timeout: Duration::from_secs(60),
            max_body_bytes: None,
        }
    }
}

/// A response as received, before any CUPS interpretation.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    /// Parsed `Content-Length`, if the header was present and numeric.
    pub content_length: Option<usize>,
    /// Body bytes received (may include bytes beyond Content-Length).
    pub body: Vec<u8>,
    /// Body bytes station would have accepted: those received in chunks
    /// before the chunk that overran Content-Length.
    pub accepted_len: usize,
    /// True when more body bytes arrived than Content-Length declared.
    pub overrun: bool,
    /// True when the peer closed before Content-Length bytes arrived.
    pub early_eof: bool,
    /// Negotiated TLS version, e.g. "TLSv1_2".
    pub tls_version: Option<String>,
    /// Whether the client had a certificate to present when asked.
    pub client_cert_configured: bool,
    /// Read error (timeout, reset) that ended the body early.
    pub read_error: Option<StationError>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Hostname used for SNI/verification: URI host without IPv6 brackets.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(h.to_string()).map_err(|e| format!("bad host name {h:?}: {e}"))
}

/// Connects to `addr`, optionally runs TLS, sends `request` and reads the
/// response. Reading stops at Content-Length (or EOF without one), after
/// `max_body_bytes`, or when `done(accepted_body)` returns true.
pub async fn exchange(
    addr: SocketAddr,
    transport: &Transport,
    request: &[u8],
    opts: &ReadOptions,
    done: &mut (dyn FnMut(&[u8]) -> bool + Send),
) -> Result<RawResponse, StationError> {
    let tcp = tokio::time::timeout(opts.timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| StationError::Connect(format!("connect to {addr} timed out")))?
        .map_err(|e| StationError::Connect(format!("{addr}: {e}")))?;
    match transport {
        Transport::Plain => exchange_on(tcp, request, opts, done).await,
        Transport::Tls {
            config,
            server_name: name,
        } => {
            let sn = server_name(name).map_err(StationError::Tls)?;
            let tls = tokio::time::timeout(
                opts.timeout,
                TlsConnector::from(config.clone()).connect(sn, tcp),
            )
            .await
            .map_err(|_| StationError::Timeout)?
            .map_err(|e| StationError::Tls(e.to_string()))?;
            let (_, conn) = tls.get_ref();
            let version = conn.protocol_version().map(|v| format!("{v:?}"));
            let has_cert = config.client_auth_cert_resolver.has_certs();
            let mut r = exchange_on(tls, request, opts, done).await?;
            r.tls_version = version;
            r.client_cert_configured = has_cert;
            Ok(r)
        }
    }
}

/// Low-level helper for tests: one request, the raw response. No CUPS
/// checks are applied (missing Content-Length reads to EOF).
pub async fn raw_exchange(
    addr: SocketAddr,
    transport: &Transport,
    request: &[u8],
    opts: &ReadOptions,
) -> Result<RawResponse, StationError> {
    exchange(addr, transport, request, opts, &mut |_| false).await
}

async fn read_chunk<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<usize, StationError> {
    tokio::time::timeout(timeout, s.read(buf))
        .await
        .map_err(|_| StationError::Timeout)?
        .map_err(|e| StationError::Io(e.to_string()))
}

fn parse_head(head: &[u8], r: &mut RawResponse) -> Result<(), StationError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| StationError::Http("non-UTF-8 response header".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let b = status_line.as_bytes();
    // Station: byte 4 '/', byte 5 '1', byte 6 '.', byte 8 ' ', then the code.
    if b.len() < 12 || b[4] != b'/' || b[5] != b'1' || b[6] != b'.' || b[8] != b' ' {
        return Err(StationError::Http(format!(
            "bad status line {status_line:?}"
        )));
    }
    r.status = status_line[9..12]
        .parse()
        .map_err(|_| StationError::Http(format!("bad status code in {status_line:?}")))?;
    r.status_line = status_line.to_string();
    for line in lines.filter(|l| !l.is_empty()) {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| StationError::Http(format!("bad header line {line:?}")))?;
        r.headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    r.content_length = match r.header("content-length") {
        Some(v) => Some(
            v.parse()
                .map_err(|_| StationError::Http(format!("bad Content-Length {v:?}")))?,
        ),
        None => None,
    };
    Ok(())
}

async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
    opts: &ReadOptions,
    done: &mut (dyn FnMut(&[u8]) -> bool + Send),
) -> Result<RawResponse, StationError> {
    tokio::time::timeout(opts.timeout, async {
        s.write_all(request).await?;
        s.flush().await
    })
    .await
    .map_err(|_| StationError::Timeout)?
    .map_err(|e| StationError::Io(format!("sending request: {e}")))?;

    let mut r = RawResponse::default();
    let mut buf = vec![0u8; CUPS_BUFSZ];
    let mut head = Vec::new();
    // Header: must fit into the first CUPS_BUFSZ bytes.
    let body_start = loop {
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if head.len() >= CUPS_BUFSZ {
            return Err(StationError::Http(
                "response header does not fit into CUPS_BUFSZ".into(),
            ));
        }
        let n = read_chunk(&mut s, &mut buf[..CUPS_BUFSZ - head.len()], opts.timeout).await?;
        if n == 0 {
            return Err(StationError::Io(
                "connection closed before end of HTTP header".into(),
            ));
        }
        head.extend_from_slice(&buf[..n]);
    };
    parse_head(&head[..body_start - 4], &mut r)?;
    let limit = opts.max_body_bytes.unwrap_or(usize::MAX);
    let cl = r.content_length;
    // Treat the body bytes that came with the header as the first chunk.
    let mut chunk = head[body_start..].to_vec();
    loop {
        let chunk_len = chunk.len().min(limit - r.body.len());
        r.body.extend_from_slice(&chunk[..chunk_len]);
        if let Some(cl) = cl {
            if r.body.len() > cl {
                r.overrun = true;
            }
        }
        if !r.overrun {
            r.accepted_len = r.body.len();
        }
        if r.overrun
            || r.body.len() >= limit
            || cl.is_some_and(|cl| r.body.len() == cl)
            || done(&r.body[..r.accepted_len])
        {
            break;
        }
        match read_chunk(&mut s, &mut buf, opts.timeout).await {
            Ok(0) => {
                r.early_eof = cl.is_some();
                break;
            }
            Ok(n) => chunk = buf[..n].to_vec(),
            Err(e) => {
                r.read_error = Some(e);
                break;
            }
        }
    }
    // Station closes the connection once it is done; it never reuses it.
    drop(s);
    Ok(r)
}
