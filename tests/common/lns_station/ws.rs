//! WebSocket transport exactly as station's net.c does it (spec §1.1): URI
//! checks, the hand-written upgrade request with the fixed key, station's
//! frame format on send (FIN, masked with 01 01 01 01, 7/16-bit length) and
//! station's strict frame rules on receive (FIN, RSV 0, unmasked, no 64-bit
//! length, fits the 40 KiB receive buffer; anything else is an "Illegal WS
//! frame" that drops the connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

use super::LnsError;

/// The fixed `Sec-WebSocket-Key` station always sends (net.c).
pub const WS_KEY: &str = "bpse8nVmEl6ZlX4lSb6RMw==";
/// Station's mask key for every frame it sends.
pub const MASK_KEY: [u8; 4] = [1, 1, 1, 1];
/// `TC_RECV_BUFFER_SIZE`: a whole frame from the server must fit.
pub const TC_RECV_BUFFER_SIZE: usize = 40 * 1024;
/// Station refuses URIs of this length or more (`MAX_URI_LEN`).
pub const MAX_URI_LEN: usize = 128;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Any byte stream the session can run on (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxIo = Box<dyn Io>;

/// A parsed `ws://`/`wss://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUri {
    pub secure: bool,
    /// Host as written in the URI (IPv6 keeps its brackets).
    pub host: String,
    pub port: u16,
    /// Path including the leading `/`, or empty.
    pub path: String,
}

impl WsUri {
    /// `host:port` for the `Host` header and for name resolution.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Parses `ws[s]://host:port[/path]`. The port is mandatory (station's
/// `uri_checkHostPortUri`).
pub fn parse_ws_uri(uri: &str) -> Result<WsUri, String> {
    let (secure, rest) = if let Some(r) = uri.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = uri.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(format!("{uri:?}: scheme must be ws:// or wss://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let end = h
            .find(']')
            .ok_or_else(|| format!("{uri:?}: unterminated IPv6 host"))?;
        let port = h[end + 1..]
            .strip_prefix(':')
            .ok_or_else(|| format!("{uri:?}: port is required"))?;
        (format!("[{}]", &h[..end]), port)
    } else {
        let (h, p) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("{uri:?}: port is required"))?;
        (h.to_string(), p)
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{uri:?}: empty host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{uri:?}: bad port {port:?}"))?;
    Ok(WsUri {
        secure,
        host,
        port,
        path: path.to_string(),
    })
}

/// `tc.uri` rules (§1): `ws[s]://host:port` with no path.
pub fn parse_tc_uri(uri: &str) -> Result<WsUri, String> {
    let u = parse_ws_uri(uri.trim_end())?;
    if !u.path.is_empty() {
        return Err(format!("{uri:?}: tc.uri must not have a path"));
    }
    Ok(u)
}

/// Traffic URI rules from the discovery answer (§1, tc.c
/// `tc_info_request`): ws/wss, explicit port, non-empty path, < 128 chars.
pub fn parse_traffic_uri(uri: &str) -> Result<WsUri, String> {
    if uri.len() >= MAX_URI_LEN {
        return Err(format!(
            "uri is {} characters, station allows at most {}",
            uri.len(),
            MAX_URI_LEN - 1
        ));
    }
    let u = parse_ws_uri(uri)?;
    if u.path.is_empty() {
        return Err(format!("{uri:?}: traffic uri needs a path"));
    }
    Ok(u)
}

/// The exact upgrade request bytes station writes (§1.1). `token` holds
/// already normalised header lines, each ending in CRLF.
pub fn upgrade_request(uri: &WsUri, path: &str, token: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n",
        uri.host_port()
    )
    .into_bytes();
    r.extend_from_slice(token);
    r.extend_from_slice(b"\r\n");
    r
}

/// Opens TCP to `addr` and, for `wss`, runs TLS with `tls` using the URI host
/// for SNI and the certificate check. Returns the stream and the negotiated
/// TLS version.
pub async fn open(
    addr: SocketAddr,
    uri: &WsUri,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<(BoxIo, Option<String>), LnsError> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| LnsError::Connect(format!("connect to {addr} timed out")))?
        .map_err(|e| LnsError::Connect(format!("{addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if !uri.secure {
        return Ok((Box::new(tcp), None));
    }
    let config = tls.ok_or_else(|| LnsError::Tls("wss without a TLS config".into()))?;
    let sn = super::super::station::server_name(&uri.host).map_err(LnsError::Tls)?;
    let s = tokio::time::timeout(timeout, TlsConnector::from(config).connect(sn, tcp))
        .await
        .map_err(|_| LnsError::Timeout)?
        .map_err(|e| LnsError::Tls(e.to_string()))?;
    let version = s.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
    Ok((Box::new(s), version))
}

/// The server's answer head to an upgrade request.
#[derive(Debug, Clone)]
pub struct UpgradeResponse {
    pub status: u16,
    /// Status line and header lines as received (without the final CRLF CRLF).
    pub head: String,
    /// Bytes after the header (already the first WebSocket frame bytes).
    pub leftover: Vec<u8>,
}

/// Writes `request` and reads the response head. Any status other than 101
/// fails with [`LnsError::Http`].
pub async fn upgrade(
    io: &mut BoxIo,
    request: &[u8],
    timeout: Duration,
) -> Result<UpgradeResponse, LnsError> {
    tokio::time::timeout(timeout, async {
        io.write_all(request).await?;
        io.flush().await
    })
    .await
    .map_err(|_| LnsError::Timeout)?
    .map_err(|e| LnsError::Ws(format!("sending upgrade request: {e}")))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > TC_RECV_BUFFER_SIZE {
            return Err(LnsError::Ws("upgrade response header too long".into()));
        }
        let n = tokio::time::timeout(timeout, io.read(&mut chunk))
            .await
            .map_err(|_| LnsError::Timeout)?
            .map_err(|e| LnsError::Ws(format!("reading upgrade response: {e}")))?;
        if n == 0 {
            return Err(LnsError::Ws(
                "connection closed before end of upgrade response".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let proto = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| proto.starts_with("HTTP/1."))
        .ok_or_else(|| LnsError::Ws(format!("bad status line {status_line:?}")))?;
    if status != 101 {
        return Err(LnsError::Http(status));
    }
    Ok(UpgradeResponse {
        status,
        head,
        leftover: buf[end + 4..].to_vec(),
    })
}

/// Writes and flushes one encoded frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(wr: &mut W, frame: &[u8]) -> Result<(), LnsError> {
    async {
        wr.write_all(frame).await?;
        wr.flush().await
    }
    .await
    .map_err(|e| LnsError::Ws(format!("write failed: {e}")))
}

/// Encodes one frame the way station does: FIN, masked with 01 01 01 01,
/// 7-bit or 16-bit length (station never uses the 64-bit form).
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Result<Vec<u8>, LnsError> {
    if payload.len() > 0xFFFF {
        return Err(LnsError::Protocol(format!(
            "station never sends frames over 65535 bytes ({} bytes)",
            payload.len()
        )));
    }
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(0x80 | opcode);
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&MASK_KEY);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK_KEY[i % 4]));
    Ok(f)
}

/// Encodes a tungstenite [`Message`] with station's framing.
pub fn encode_message(msg: &Message) -> Result<Vec<u8>, LnsError> {
    match msg {
        Message::Text(t) => encode_frame(OP_TEXT, t.as_bytes()),
        Message::Binary(b) => encode_frame(OP_BINARY, b),
        Message::Ping(b) => encode_frame(OP_PING, b),
        Message::Pong(b) => encode_frame(OP_PONG, b),
        Message::Close(None) => encode_frame(OP_CLOSE, &[]),
        Message::Close(Some(cf)) => {
            encode_frame(OP_CLOSE, &close_payload(cf.code.into(), &cf.reason))
        }
        Message::Frame(_) => Err(LnsError::Protocol(
            "raw tungstenite frames are not supported; use send_raw".into(),
        )),
    }
}

/// Close frame payload: 2-byte code and reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// One frame received from the server, after station's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: Option<u16>,
        reason: String,
    },
    /// A frame station rejects ("Illegal WS frame"): it drops the connection.
    Illegal(String),
    /// The peer closed TCP (or TLS) without a close frame.
    Eof,
    IoError(String),
}

/// Reads frames and applies station's rules.
pub struct FrameReader<R> {
    rd: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(rd: R, leftover: Vec<u8>) -> Self {
        FrameReader { rd, buf: leftover }
    }

    /// Makes sure `n` bytes are buffered. `Ok(false)` on EOF.
    async fn fill(&mut self, n: usize) -> Result<bool, String> {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < n {
            let k = self.rd.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if k == 0 {
                return Ok(false);
            }
            self.buf.extend_from_slice(&chunk[..k]);
        }
        Ok(true)
    }

    pub async fn next(&mut self) -> Incoming {
        match self.next_inner().await {
            Ok(i) => i,
            Err(e) => Incoming::IoError(e),
        }
    }

    async fn next_inner(&mut self) -> Result<Incoming, String> {
        if !self.fill(2).await? {
            return Ok(Incoming::Eof);
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b0 & 0x80 == 0 {
            return Ok(Incoming::Illegal(
                "FIN bit not set (fragmented message)".into(),
            ));
        }
        if b0 & 0x70 != 0 {
            return Ok(Incoming::Illegal(format!(
                "RSV bits set ({:#04x}); no extension was negotiated",
                b0 & 0x70
            )));
        }
        if b1 & 0x80 != 0 {
            return Ok(Incoming::Illegal("masked frame from server".into()));
        }
        let opcode = b0 & 0x0F;
        let (hdr, len) = match b1 & 0x7F {
            127 => return Ok(Incoming::Illegal("64-bit payload length form".into())),
            126 => {
                if !self.fill(4).await? {
                    return Ok(Incoming::Eof);
                }
                (
                    4,
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                )
            }
            l => (2, usize::from(l)),
        };
        if hdr + len > TC_RECV_BUFFER_SIZE {
            return Ok(Incoming::Illegal(format!(
                "frame of {} bytes does not fit the {TC_RECV_BUFFER_SIZE}-byte receive buffer",
                hdr + len
            )));
        }
        if !self.fill(hdr + len).await? {
            return Ok(Incoming::Eof);
        }
        let payload: Vec<u8> = self.buf[hdr..hdr + len].to_vec();
        self.buf.drain(..hdr + len);
        Ok(match opcode {
            OP_TEXT => Incoming::Text(String::from_utf8_lossy(&payload).into_owned()),
            OP_BINARY => Incoming::Binary(payload),
            OP_PING => Incoming::Ping(payload),
            OP_PONG => Incoming::Pong(payload),
            OP_CLOSE => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                let reason =
                    String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                Incoming::Close { code, reason }
            }
            OP_CONT => Incoming::Illegal("continuation frame".into()),
            op => Incoming::Illegal(format!("reserved opcode {op:#x}")),
        })
    }
}
