//! A LoRa Basics Station 2.0.6 **LNS ("tc") client simulator** for
//! integration tests, written from `/work/shared/spec/lns-protocol.md` alone
//! (section numbers § refer to it), independently of the `stationkeeper`
//! server code.
//!
//! * [`LnsStation::discover`] runs the `/router-info` exchange (§1, §2).
//! * [`LnsStation::connect`] opens the traffic WebSocket and sends `version`
//!   (§3.1), returning a [`Session`].
//! * The session validates `router_config` like station (§3.2, §3.3), runs a
//!   simulated concentrator (xtime layout §6.1), sends uplinks (§4), places
//!   downlinks (§5: class A/B/C, dnsched, limits, duty cycle, airtime) and
//!   reports them with `dntxed` (§5.6), handles timesync/getxtime (§6),
//!   answers pings, and applies station's WebSocket frame rules (§1.1).
//!
//! The WebSocket framing is done here by hand: station's own format on send
//! (masked with 01 01 01 01, FIN, ≤16-bit length) and station's strict rules
//! on receive, so that frames a real station would reject are caught.

pub mod config;
pub mod downlink;
pub mod json;
pub mod session;
pub mod ws;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::time::Instant;

use super::station::{client_config, id6, normalize_token};

#[allow(unused_imports)]
pub use config::{canonical_region, ConfigOutcome, DrDef, RouterConfig, REGIONS};
#[allow(unused_imports)]
pub use downlink::{
    airtime_us, xtime_rctx, xtime_session, xtime_us, DnOutcome, Dnmsg, Downlink, DroppedDownlink,
    TxSlot,
};
#[allow(unused_imports)]
pub use json::{eui_dashes, parse_eui};
#[allow(unused_imports)]
pub use session::{
    Jreq, RadioMeta, SentUplink, ServerMessage, Session, SessionOptions, Timesync, Updf,
};
#[allow(unused_imports)]
pub use tokio_tungstenite::tungstenite::Message;
#[allow(unused_imports)]
pub use ws::{parse_tc_uri, parse_traffic_uri, upgrade_request, write_frame, WsUri, WS_KEY};

/// Why an LNS operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LnsError {
    /// A URI station would refuse (tc.uri or the discovery answer's uri).
    BadUri(String),
    /// TCP connect failed (or name resolution).
    Connect(String),
    /// TLS setup or handshake failed (also: no trust for wss, bad token).
    Tls(String),
    /// The upgrade was answered with this status instead of 101.
    Http(u16),
    /// WebSocket/socket level failure.
    Ws(String),
    /// A protocol violation (malformed answer, illegal WS frame, rejected
    /// router_config, ...).
    Protocol(String),
    /// Discovery answered with `error` (or without `uri`).
    Rejected(String),
    /// Nothing arrived in time.
    Timeout,
    /// The connection ended: server close frame (with its code), or TCP
    /// closed without one (`code: None`).
    Closed { code: Option<u16>, reason: String },
    /// Station drops this locally and sends nothing (uplink filtered, or
    /// downlink dropped, from `wait_transmitted`).
    Dropped(String),
}

impl fmt::Display for LnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for LnsError {}

/// How the station authenticates (§7): `tc.crt`+`tc.key` → client
/// certificate; `tc.key` alone → token header lines (sent on wss only).
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// PEM or DER certificate and key (SEC1, PKCS#8 or PKCS#1).
    ClientCert { crt: Vec<u8>, key: Vec<u8> },
    /// Token file contents, e.g. `Authorization: Bearer abc\r\n`.
    Token(Vec<u8>),
}

/// Result of a successful discovery.
#[derive(Debug, Clone)]
pub struct DiscoveryAnswer {
    /// Traffic URI (validated like station does).
    pub uri: String,
    pub router: Option<String>,
    pub muxs: Option<String>,
    /// The answer text.
    pub raw: String,
    /// Exact upgrade request bytes sent.
    pub request: Vec<u8>,
    /// The `{"router":…}` text sent.
    pub query: String,
    pub response_head: String,
    pub tls_version: Option<String>,
    /// The server answered station's close (code 1000) with a close frame.
    pub close_acknowledged: bool,
}

/// A simulated gateway. Fields are the station's files/build settings.
#[derive(Debug, Clone)]
pub struct LnsStation {
    pub router_eui: u64,
    /// Build version, e.g. `2.0.6(linux/std)`.
    pub station: String,
    /// Contents of `version.txt` (or `None` → `null`).
    pub firmware: Option<String>,
    pub package: Option<String>,
    pub model: String,
    /// Space-separated features (`rmtsh`, `prod`, `gps`).
    pub features: String,
    /// `tc.trust` (PEM or DER); required for wss.
    pub trust: Option<Vec<u8>>,
    pub auth: Auth,
    /// mbedTLS 2.28 has no TLS 1.3.
    pub tls12_only: bool,
    /// Connect here instead of resolving the URI host (SNI/Host still use it).
    pub resolve: Option<SocketAddr>,
    /// Connect/handshake/answer timeout.
    pub timeout: Duration,
    /// Send dntxed for transmitted frames (switch off to simulate silent
    /// drops).
    pub auto_dntxed: bool,
    pub answer_pings: bool,
    /// Class C needs SX130x time sync, ready this long after router_config.
    pub sx130x_sync_delay: Duration,
    /// PPS/GPS gateway: uplinks carry gpstime once time sync is known.
    pub pps: bool,
    /// Enforce the region's duty cycle (station does unless `nodc`).
    pub duty_cycle: bool,
    /// `recv_router_config` also fails on [`RouterConfig::problems`].
    pub strict_config: bool,
    clock_base: Instant,
}

impl LnsStation {
    pub fn new(router_eui: u64) -> Self {
        LnsStation {
            router_eui,
            station: "2.0.6(linux/std)".into(),
            firmware: Some("1.0.0".into()),
            package: Some("1.0.0".into()),
            model: "linux".into(),
            features: "rmtsh".into(),
            trust: None,
            auth: Auth::None,
            tls12_only: true,
            resolve: None,
            timeout: Duration::from_secs(10),
            auto_dntxed: true,
            answer_pings: true,
            sx130x_sync_delay: Duration::ZERO,
            pps: false,
            duty_cycle: true,
            strict_config: true,
            clock_base: Instant::now(),
        }
    }

    /// The ID6 text of the router EUI (`router` in discovery).
    pub fn router_id6(&self) -> String {
        id6(self.router_eui)
    }

    /// The `version` message (§3.1), exact field order.
    pub fn version_json(&self) -> String {
        json::Obj::new()
            .str("msgtype", "version")
            .str("station", &self.station)
            .opt_str("firmware", self.firmware.as_deref())
            .opt_str("package", self.package.as_deref())
            .str("model", &self.model)
            .int("protocol", 2)
            .str("features", &self.features)
            .finish()
    }

    fn tls(&self, uri: &WsUri) -> Result<Option<Arc<ClientConfig>>, LnsError> {
        if !uri.secure {
            return Ok(None);
        }
        let trust = self
            .trust
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| LnsError::Tls("no tc.trust: wss cannot be used".into()))?;
        let client = match &self.auth {
            Auth::ClientCert { crt, key } => Some((crt.as_slice(), key.as_slice())),
            _ => None,
        };
        client_config(trust, client, self.tls12_only)
            .map(Some)
            .map_err(LnsError::Tls)
    }

    /// Token header lines: only with `tc.key` alone and only on wss.
    fn token(&self, uri: &WsUri) -> Result<Vec<u8>, LnsError> {
        match &self.auth {
            Auth::Token(t) if uri.secure => normalize_token(t).map_err(LnsError::Tls),
            _ => Ok(Vec::new()),
        }
    }

    async fn addr(&self, uri: &WsUri) -> Result<SocketAddr, LnsError> {
        if let Some(a) = self.resolve {
            return Ok(a);
        }
        let hp = format!(
            "{}:{}",
            uri.host.trim_start_matches('[').trim_end_matches(']'),
            uri.port
        );
        let first = tokio::net::lookup_host(hp.as_str())
            .await
            .map_err(|e| LnsError::Connect(format!("resolving {hp}: {e}")))?
            .next();
        first.ok_or_else(|| LnsError::Connect(format!("{hp}: no address")))
    }

    /// Opens and upgrades a WebSocket to `path` on `uri`'s host.
    async fn open(
        &self,
        uri: &WsUri,
        path: &str,
    ) -> Result<(ws::BoxIo, Vec<u8>, ws::UpgradeResponse, Option<String>), LnsError> {
        let tls = self.tls(uri)?;
        let token = self.token(uri)?;
        let addr = self.addr(uri).await?;
        let (mut io, tlsv) = ws::open(addr, uri, tls, self.timeout).await?;
        let req = upgrade_request(uri, path, &token);
        let resp = ws::upgrade(&mut io, &req, self.timeout).await?;
        Ok((io, req, resp, tlsv))
    }

    /// Discovery (§2): `tc_uri` must be `ws[s]://host:port` without a path.
    pub async fn discover(&self, tc_uri: &str) -> Result<DiscoveryAnswer, LnsError> {
        let uri = parse_tc_uri(tc_uri).map_err(LnsError::BadUri)?;
        let (io, request, resp, tls_version) = self.open(&uri, "/router-info").await?;
        let (rd, mut wr) = tokio::io::split(io);
        let mut fr = ws::FrameReader::new(rd, resp.leftover);
        let query = json::Obj::new().str("router", &self.router_id6()).finish();
        write_frame(&mut wr, &ws::encode_frame(ws::OP_TEXT, query.as_bytes())?).await?;
        let deadline = Instant::now() + self.timeout;
        let raw = loop {
            let f = tokio::time::timeout_at(deadline, fr.next())
                .await
                .map_err(|_| LnsError::Timeout)?;
            match f {
                ws::Incoming::Text(t) => break t,
                ws::Incoming::Ping(p) => {
                    let _ = write_frame(&mut wr, &ws::encode_frame(ws::OP_PONG, &p)?).await;
                }
                ws::Incoming::Pong(_) => {}
                ws::Incoming::Binary(_) => {
                    return Err(LnsError::Protocol(
                        "binary frame as discovery answer".into(),
                    ))
                }
                ws::Incoming::Close { code, reason } => {
                    return Err(LnsError::Closed { code, reason })
                }
                ws::Incoming::Eof => {
                    return Err(LnsError::Closed {
                        code: None,
                        reason: "closed before the discovery answer".into(),
                    })
                }
                ws::Incoming::IoError(e) => return Err(LnsError::Ws(e)),
                ws::Incoming::Illegal(e) => {
                    return Err(LnsError::Protocol(format!("Illegal WS frame: {e}")))
                }
            }
        };
        // station closes the discovery socket itself, code 1000
        let _ = write_frame(
            &mut wr,
            &ws::encode_frame(ws::OP_CLOSE, &ws::close_payload(1000, ""))?,
        )
        .await;
        let mut close_acknowledged = false;
        let grace = Instant::now() + Duration::from_secs(1);
        while let Ok(f) = tokio::time::timeout_at(grace, fr.next()).await {
            match f {
                ws::Incoming::Close { .. } => {
                    close_acknowledged = true;
                    break;
                }
                ws::Incoming::Text(_)
                | ws::Incoming::Binary(_)
                | ws::Incoming::Ping(_)
                | ws::Incoming::Pong(_) => {}
                _ => break,
            }
        }
        drop((fr, wr));
        let v: serde_json::Value = serde_json::from_str(&raw).map_err(|e| {
            LnsError::Protocol(format!("discovery answer is not JSON ({e}): {raw}"))
        })?;
        let o = v.as_object().ok_or_else(|| {
            LnsError::Protocol(format!("discovery answer is not an object: {raw}"))
        })?;
        if let Some(e) = o.get("error") {
            return Err(LnsError::Rejected(
                e.as_str().map_or_else(|| e.to_string(), str::to_string),
            ));
        }
        let u = o
            .get("uri")
            .ok_or_else(|| LnsError::Rejected(format!("answer without uri: {raw}")))?;
        let u = u
            .as_str()
            .ok_or_else(|| LnsError::Protocol(format!("uri is not a string: {raw}")))?;
        parse_traffic_uri(u).map_err(|e| LnsError::Protocol(format!("bad uri: {e}")))?;
        let s = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(DiscoveryAnswer {
            uri: u.to_string(),
            router: s("router"),
            muxs: s("muxs"),
            raw,
            request,
            query,
            response_head: resp.head,
            tls_version,
            close_acknowledged,
        })
    }

    /// Connects to the traffic endpoint (§3) and sends `version`.
    pub async fn connect(&self, traffic_uri: &str) -> Result<Session, LnsError> {
        let uri = parse_traffic_uri(traffic_uri).map_err(LnsError::BadUri)?;
        let (io, request, resp, tls_version) = self.open(&uri, &uri.path).await?;
        Session::start(
            io,
            resp.leftover,
            traffic_uri.to_string(),
            request,
            resp.head,
            tls_version,
            self.version_json(),
            self.session_options(),
        )
        .await
    }

    /// Discovery followed by connect, as station does.
    pub async fn discover_and_connect(
        &self,
        tc_uri: &str,
    ) -> Result<(DiscoveryAnswer, Session), LnsError> {
        let a = self.discover(tc_uri).await?;
        let s = self.connect(&a.uri).await?;
        Ok((a, s))
    }

    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            auto_dntxed: self.auto_dntxed,
            answer_pings: self.answer_pings,
            sx130x_sync_delay: self.sx130x_sync_delay,
            pps: self.pps,
            duty_cycle: self.duty_cycle,
            strict_config: self.strict_config,
            clock_base: self.clock_base,
        }
    }
}
