//! `cups-load`: a CUPS load generator that polls like many LoRa Basics Stations.
//!
//! Every poll is what station 2.0.6 does (cups-protocol.md §1–§3, §6): a fresh TCP
//! connection, a full TLS handshake (TLS 1.2 by default, no session resumption),
//! one `POST /update-info` with station's exact header lines and JSON key order,
//! the answer read up to its `Content-Length`, then close. Latency is measured from
//! the start of the TCP connect to the last byte of the answer.
//!
//! Target `stationkeeper` (default): a warm-up registers gateways through open
//! registration (`[gateways] unknown = "register"`): poll 1 without a token gets
//! the URIs and a token-form CUPS credential blob, poll 2 reports what station
//! would then report and must get the 14-zero-byte "nothing to do" answer, and so
//! must poll 3, the first poll of a settled gateway, like every later one. The
//! measured phase then polls the registered gateways with their tokens and expects
//! exactly that answer. `--phases 1000,100000` measures at 1,000 gateways, then
//! registers up to 100,000 and measures again, in one process (the tokens live here).
//!
//! `--compare-addr` (with target stationkeeper) measures a static-answer server, e.g.
//! nginx serving a 14-byte file of zeros, in every phase too, with the very same
//! requests (real tokens, which it ignores); `--rounds R` repeats each pair R times,
//! alternating the order, and prints medians and per-round ratios.
//!
//! Target `static`: only the static server, no warm-up, the same request shape with
//! a placeholder token of the same length, the same expected answer.
//!
//! Besides latency and rate, each measured run reports the CPU time the server
//! processes (`--server-pid`) and this process used per poll, the server's RSS and
//! thread count, and how much CPU *other* processes took meanwhile (a noise
//! indicator: the server and this generator share the machine's CPUs).
//! `--settle-max` waits for a quiet machine before each run.
//!
//! Machine-readable lines: `WARMUP ...` per warm-up, `RESULT ...` per measured run,
//! `COMPARE ...` per phase with a comparison server (all `key=value`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// CRC32 of 12 zero bytes: what station reports with no credential files (§6.4).
const NO_CRED_CRC: u32 = 0x7BD5_C66F;
const NOTHING: [u8; 14] = [0; 14];
const STATION: &str = "2.0.6(rpi/std) 2022-01-21 10:00:00";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// stationkeeper with open registration: warm-up, then polls with tokens
    Stationkeeper,
    /// any server that answers every POST /update-info with 14 zero bytes (nginx)
    Static,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TlsVersion {
    /// TLS 1.2 only, as station's mbedTLS 2.28
    #[value(name = "1.2")]
    V12,
    /// TLS 1.3 only
    #[value(name = "1.3")]
    V13,
    /// rustls default (1.3 preferred)
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kx {
    /// station 2.0.6's captured order (benches/README.md) restricted to the groups
    /// ring has: P-384, P-256, X25519. A server that follows the client's order
    /// picks P-384 here.
    Station,
    /// rustls default: X25519, P-256, P-384
    Default,
    X25519,
    P256,
    P384,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ChainCheck {
    /// the certificate chain once per distinct chain and name (then remembered for
    /// the run); the handshake's signature with the certificate's key every time
    Once,
    /// the whole chain on every handshake too, as station's mbedTLS does
    Every,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pick {
    /// uniform random gateway per poll
    Random,
    /// one shared round-robin counter over the registered set
    RoundRobin,
}

#[derive(Debug, Parser)]
#[command(
    name = "cups-load",
    about = "Polls a CUPS server like many Basics Stations (fresh TLS connection per poll)"
)]
struct Args {
    /// Address to connect to.
    #[arg(long, default_value = "127.0.0.1:18443")]
    addr: SocketAddr,
    /// TLS server name (SNI and certificate check).
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// Host header (station sends host:port as written in cups.uri). Default: SNI:port.
    #[arg(long)]
    host: Option<String>,
    /// PEM file with the CA that signed the server certificate.
    #[arg(long)]
    ca: PathBuf,
    /// What answers: stationkeeper (warm-up + tokens) or a static 14-byte answer.
    #[arg(long, value_enum, default_value = "stationkeeper")]
    target: Target,
    /// Gateway counts to measure at, ascending; each step registers the missing ones
    /// first (target static: only the number of distinct router ids in bodies).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    phases: Vec<usize>,
    /// EUI of gateway 0 (hex); gateway i is base + i.
    #[arg(long, default_value = "0016c00100000000")]
    eui_base: String,
    /// Signing key CRCs every gateway reports in `keys` (default none), e.g. so a
    /// campaign finds them eligible (scripts/bench-campaign.sh).
    #[arg(long, value_delimiter = ',')]
    keys: Vec<u32>,
    /// A shell command run after the warm-up of every phase but the first, before
    /// it is measured (e.g. create a campaign: scripts/bench-campaign.sh).
    #[arg(long)]
    between_phases: Option<String>,
    /// Concurrent workers in the measured phase.
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Concurrent gateways during warm-up.
    #[arg(long, default_value_t = 128)]
    warmup_concurrency: usize,
    /// Seconds per measured phase.
    #[arg(long, short = 't', default_value_t = 15.0)]
    duration: f64,
    /// TLS version offered.
    #[arg(long, value_enum, default_value = "1.2")]
    tls: TlsVersion,
    /// ECDHE groups offered (the server picks among them).
    #[arg(long, value_enum, default_value = "station")]
    kx: Kx,
    /// How often the server's certificate chain is verified. `once` takes the
    /// generator's second ECDSA verification per poll out of the shared CPUs; every
    /// handshake still verifies the server's signature over its key exchange.
    #[arg(long, value_enum, default_value = "once")]
    chain_check: ChainCheck,
    /// How workers choose the next gateway.
    #[arg(long, value_enum, default_value = "random")]
    pick: Pick,
    /// Per-poll timeout in seconds (connect to last answer byte).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// PIDs of the server processes (comma-separated) for CPU and RSS figures.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Tokio worker threads of this load generator (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// cupsUri a fresh gateway reports on its first poll. Default: https://HOST.
    #[arg(long)]
    initial_cups_uri: Option<String>,
    /// Label for the RESULT lines.
    #[arg(long, default_value = "run")]
    label: String,
    /// Also measure a static-answer server (e.g. nginx) at this address in every
    /// phase, with the same requests, alternating with the target in each round.
    #[arg(long)]
    compare_addr: Option<SocketAddr>,
    /// PIDs of the comparison server's processes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    compare_pid: Vec<u32>,
    /// Label of the comparison server.
    #[arg(long, default_value = "nginx")]
    compare_label: String,
    /// Measured runs per phase (per side); the order alternates each round.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Before each measured run, wait (up to this many seconds) until the machine is
    /// quiet: other processes using under --quiet-pct of all CPUs over 1 s. 0: don't.
    #[arg(long, default_value_t = 0.0)]
    settle_max: f64,
    /// CPU share (% of the whole machine) that still counts as quiet.
    #[arg(long, default_value_t = 5.0)]
    quiet_pct: f64,
    /// Repeat a measured run (up to this many times) when other processes used more
    /// than --noisy-pct of the machine during it; the discarded run prints `NOISY`.
    #[arg(long, default_value_t = 0)]
    retry_noisy: usize,
    /// Background CPU share (% of the whole machine) above which a run is noisy.
    #[arg(long, default_value_t = 10.0)]
    noisy_pct: f64,
    /// Length of the placeholder token for target static (stationkeeper's are measured
    /// in the warm-up; this default matches them).
    #[arg(long, default_value_t = 43)]
    static_token_len: usize,
    /// Idle-flood mode (after the warm-up of the first phase, instead of the
    /// measured runs): open this many bare TCP connections from --flood-from that
    /// never send a byte, at --flood-rate per second, and hold them all while
    /// --legit-polls real polls (from the default source address, one at a time)
    /// measure what a gateway gets meanwhile; the same polls without a flood first.
    #[arg(long, default_value_t = 0)]
    idle_flood: usize,
    /// New bare connections per second in the idle flood.
    #[arg(long, default_value_t = 600.0)]
    flood_rate: f64,
    /// Source address of the idle flood (any 127/8 address is loopback on Linux).
    #[arg(long, default_value = "127.0.0.2")]
    flood_from: std::net::IpAddr,
    /// Real polls measured before and during the idle flood.
    #[arg(long, default_value_t = 100)]
    legit_polls: usize,
}

// ---------------------------------------------------------------- wire format

/// Station's ID6 text form of an EUI (§2.1, uj.c `encId6`).
fn id6(eui: u64) -> String {
    let g = [
        (eui >> 48) & 0xffff,
        (eui >> 32) & 0xffff,
        (eui >> 16) & 0xffff,
        eui & 0xffff,
    ];
    if g[0] == 0 && g[1] == 0 && g[2] == 0 {
        format!("::{:x}", g[3])
    } else if g[0] == 0 && g[1] == 0 {
        format!("::{:x}:{:x}", g[2], g[3])
    } else if g[2] == 0 && g[3] == 0 && g[1] == 0 {
        format!("{:x}::", g[0])
    } else if g[2] == 0 && g[3] == 0 {
        format!("{:x}:{:x}::", g[0], g[1])
    } else if g[1] == 0 && g[2] == 0 {
        format!("{:x}::{:x}", g[0], g[3])
    } else {
        format!("{:x}:{:x}:{:x}:{:x}", g[0], g[1], g[2], g[3])
    }
}

fn json_str(s: Option<&str>) -> String {
    match s {
        Some(s) => serde_json::to_string(s).expect("string encodes"),
        None => "null".into(),
    }
}

/// The `keys` every simulated gateway reports (`--keys`), set once at start.
static KEYS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The exact request bytes station 2.0.6 sends (§1, §2, §8.1).
fn station_request(host: &str, gw: &Gateway, with_token: bool) -> Vec<u8> {
    let body = format!(
        "{{\"router\":\"{}\",\"cupsUri\":{},\"tcUri\":{},\"cupsCredCrc\":{},\"tcCredCrc\":{},\"station\":\"{}\",\"model\":\"rpi\",\"package\":\"1.0.0\",\"keys\":[{}]}}",
        id6(gw.eui),
        json_str(gw.cups_uri.as_deref()),
        json_str(gw.tc_uri.as_deref()),
        gw.cups_crc,
        gw.tc_crc,
        STATION,
        KEYS.get().map_or("", String::as_str),
    );
    let token = if with_token { gw.token.as_str() } else { "" };
    let mut req = format!(
        "POST /update-info HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {:>5}\r\n{token}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

/// A parsed CUPS answer (§3).
#[derive(Debug, Default)]
struct Answer {
    cups_uri: Option<String>,
    tc_uri: Option<String>,
    cups_cred: Option<Vec<u8>>,
    tc_cred: Option<Vec<u8>>,
    sig_len: u32,
    upd_len: u32,
}

impl Answer {
    fn parse(b: &[u8]) -> Result<Answer, String> {
        let mut off = 0usize;
        let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
            let s = b.get(off..off + n).ok_or_else(|| {
                format!(
                    "answer ends inside {what} (offset {off}, need {n}, have {})",
                    b.len()
                )
            })?;
            off += n;
            Ok(s)
        };
        let le = |s: &[u8]| s.iter().rev().fold(0u32, |a, &x| (a << 8) | u32::from(x));
        let mut a = Answer::default();
        let n = le(take(1, "cupsUriLen")?) as usize;
        let u = take(n, "cupsUri")?;
        a.cups_uri = (n > 0).then(|| String::from_utf8_lossy(u).into_owned());
        let n = le(take(1, "tcUriLen")?) as usize;
        let u = take(n, "tcUri")?;
        a.tc_uri = (n > 0).then(|| String::from_utf8_lossy(u).into_owned());
        let n = le(take(2, "cupsCredLen")?) as usize;
        let c = take(n, "cupsCred")?;
        a.cups_cred = (n > 0).then(|| c.to_vec());
        let n = le(take(2, "tcCredLen")?) as usize;
        let c = take(n, "tcCred")?;
        a.tc_cred = (n > 0).then(|| c.to_vec());
        a.sig_len = le(take(4, "sigLen")?);
        if a.sig_len > 0 {
            take(a.sig_len as usize, "keyCRC+sig")?;
        }
        a.upd_len = le(take(4, "updLen")?);
        take(a.upd_len as usize, "updData")?;
        Ok(a)
    }

    fn describe(&self) -> String {
        let mut parts = vec![];
        if let Some(u) = &self.cups_uri {
            parts.push(format!("cupsUri={u}"));
        }
        if let Some(u) = &self.tc_uri {
            parts.push(format!("tcUri={u}"));
        }
        if let Some(c) = &self.cups_cred {
            parts.push(format!(
                "cupsCred({} B, crc {})",
                c.len(),
                crc32fast::hash(c)
            ));
        }
        if let Some(c) = &self.tc_cred {
            parts.push(format!("tcCred({} B, crc {})", c.len(), crc32fast::hash(c)));
        }
        if self.sig_len > 0 {
            parts.push(format!("sigLen={}", self.sig_len));
        }
        if self.upd_len > 0 {
            parts.push(format!("updLen={}", self.upd_len));
        }
        parts.join(", ")
    }
}

/// DER element length the way station reads it (§6.2 item 5).
fn station_der_len(b: &[u8], off: usize) -> Result<usize, String> {
    let l = *b.get(off + 1).ok_or("blob ends in DER header")?;
    if l & 0x80 != 0 {
        let hi = *b.get(off + 2).ok_or("blob ends in DER header")? as usize;
        let lo = *b.get(off + 3).ok_or("blob ends in DER header")? as usize;
        Ok((hi << 8 | lo) + 4)
    } else {
        Ok(l as usize + 2)
    }
}

/// The token header lines from a token-form credential blob (§6.1, §6.2), as
/// station appends them to its request (each line ending in CRLF).
fn blob_token(blob: &[u8]) -> Result<String, String> {
    if blob.first() != Some(&0x30) {
        return Err("blob: trust is not a DER SEQUENCE".into());
    }
    let cert_off = station_der_len(blob, 0)?;
    let key_off = match blob.get(cert_off) {
        Some(0) => cert_off + 4,
        Some(0x30) => cert_off + station_der_len(blob, cert_off)?,
        _ => return Err("blob: bad cert part".into()),
    };
    match blob.get(key_off) {
        None | Some(0) => Err("blob has no key/token part (not token form)".into()),
        Some(0x30) => Err("blob holds a DER key (mTLS form), not a token".into()),
        Some(_) => {
            let text = std::str::from_utf8(&blob[key_off..]).map_err(|_| "token is not UTF-8")?;
            // station: bare \n becomes \r\n, trailing empty lines removed (§6.3)
            let mut out = String::new();
            for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
                if !line.is_empty() {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            }
            if out.is_empty() {
                return Err("empty token".into());
            }
            Ok(out)
        }
    }
}

// ---------------------------------------------------------------- one poll

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    /// The key-exchange group the handshake negotiated.
    kx: Option<rustls::NamedGroup>,
}

#[derive(Debug)]
struct PollError {
    kind: &'static str,
    detail: String,
}

fn perr(kind: &'static str, detail: impl std::fmt::Display) -> PollError {
    PollError {
        kind,
        detail: detail.to_string(),
    }
}

struct Ctx {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    host: String,
    timeout: Duration,
}

/// Negotiated parameters of one connection (printed once).
fn describe_conn(c: &rustls::ClientConnection) -> String {
    format!(
        "{:?} {:?} kx={:?}",
        c.protocol_version(),
        c.negotiated_cipher_suite().map(|s| s.suite()),
        c.negotiated_key_exchange_group().map(|g| g.name()),
    )
}

async fn poll_inner(
    ctx: &Ctx,
    req: &[u8],
    describe: bool,
) -> Result<(Reply, Option<String>), PollError> {
    let tcp = TcpStream::connect(ctx.addr)
        .await
        .map_err(|e| perr("connect", e))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = ctx
        .connector
        .connect(ctx.server_name.clone(), tcp)
        .await
        .map_err(|e| perr("tls", e))?;
    let info = describe.then(|| describe_conn(tls.get_ref().1));
    let kx = tls
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .map(|g| g.name());
    tls.write_all(req).await.map_err(|e| perr("write", e))?;
    tls.flush().await.map_err(|e| perr("write", e))?;

    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 8192];
    let (hdr_end, status, content_length) = loop {
        let n = tls.read(&mut chunk).await.map_err(|e| perr("read", e))?;
        if n == 0 {
            return Err(perr(
                "read",
                format!("EOF before end of headers ({} B)", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head =
                std::str::from_utf8(&buf[..p]).map_err(|_| perr("http", "non-UTF-8 header"))?;
            let mut lines = head.split("\r\n");
            let sl = lines.next().unwrap_or("").as_bytes();
            // station: "HTTP/1.x NNN " (§1)
            if sl.len() < 12 || &sl[..7] != b"HTTP/1." || sl[8] != b' ' {
                return Err(perr(
                    "http",
                    format!("bad status line {:?}", String::from_utf8_lossy(sl)),
                ));
            }
            let status: u16 = std::str::from_utf8(&sl[9..12])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| perr("http", "bad status code"))?;
            let cl = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse::<usize>());
            let cl = match cl {
                Some(Ok(n)) => n,
                Some(Err(_)) => return Err(perr("http", "bad Content-Length")),
                None => return Err(perr("http", "no Content-Length (station takes 0)")),
            };
            break (p + 4, status, cl);
        }
        if buf.len() > 8192 {
            return Err(perr("http", "headers over 8 KiB (station's CUPS_BUFSZ)"));
        }
    };
    while buf.len() < hdr_end + content_length {
        let n = tls.read(&mut chunk).await.map_err(|e| perr("read", e))?;
        if n == 0 {
            return Err(perr(
                "read",
                format!(
                    "EOF after {} of {} body bytes",
                    buf.len() - hdr_end,
                    content_length
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf.len() > hdr_end + content_length {
        return Err(perr("http", "more data than Content-Length"));
    }
    let body = buf.split_off(hdr_end);
    // station closes once it has the answer: close_notify + FIN, bounded
    let _ = tokio::time::timeout(Duration::from_millis(200), tls.shutdown()).await;
    Ok((Reply { status, body, kx }, info))
}

async fn poll(ctx: &Ctx, req: &[u8], describe: bool) -> Result<(Reply, Option<String>), PollError> {
    match tokio::time::timeout(ctx.timeout, poll_inner(ctx, req, describe)).await {
        Ok(r) => r,
        Err(_) => Err(perr(
            "timeout",
            format!("no full answer within {:?}", ctx.timeout),
        )),
    }
}

// ---------------------------------------------------------------- gateways, warm-up

#[derive(Debug, Clone)]
struct Gateway {
    eui: u64,
    cups_uri: Option<String>,
    tc_uri: Option<String>,
    cups_crc: u32,
    tc_crc: u32,
    /// header lines station appends (each ends in CRLF); empty = none
    token: String,
}

impl Gateway {
    fn fresh(eui: u64, cups_uri: &str) -> Gateway {
        Gateway {
            eui,
            cups_uri: Some(cups_uri.to_string()),
            tc_uri: None,
            cups_crc: NO_CRED_CRC,
            tc_crc: NO_CRED_CRC,
            token: String::new(),
        }
    }
}

/// Tally of problems by kind, with the first few details of each.
#[derive(Default)]
struct Problems {
    by_kind: BTreeMap<String, (u64, Vec<String>)>,
}

impl Problems {
    fn add(&mut self, kind: impl Into<String>, detail: String) {
        let e = self.by_kind.entry(kind.into()).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(detail);
        }
    }
    fn total(&self) -> u64 {
        self.by_kind.values().map(|v| v.0).sum()
    }
    fn print(&self, indent: &str) {
        for (k, (n, ex)) in &self.by_kind {
            println!("{indent}{k}: {n}");
            for e in ex {
                println!("{indent}    e.g. {e}");
            }
        }
    }
    fn merge(&mut self, other: Problems) {
        for (k, (n, ex)) in other.by_kind {
            let e = self.by_kind.entry(k).or_default();
            e.0 += n;
            for x in ex {
                if e.1.len() < 3 {
                    e.1.push(x);
                }
            }
        }
    }
}

/// Registers one gateway the way a fresh station would: poll 1 without a token,
/// install what the answer says, poll 2 with the token (which confirms the
/// credentials) must get "nothing to do".
async fn warm_one(ctx: Arc<Ctx>, mut gw: Gateway) -> Result<Gateway, (String, String)> {
    let (r, _) = poll(&ctx, &station_request(&ctx.host, &gw, false), false)
        .await
        .map_err(|e| (format!("poll 1: {}", e.kind), e.detail))?;
    if r.status != 200 {
        return Err((
            format!("poll 1: status {}", r.status),
            String::from_utf8_lossy(&r.body).trim().to_string(),
        ));
    }
    let a = Answer::parse(&r.body).map_err(|e| ("poll 1: bad answer".to_string(), e))?;
    if a.sig_len > 0 || a.upd_len > 0 {
        return Err(("poll 1: unexpected update".into(), a.describe()));
    }
    let cups = a
        .cups_cred
        .as_ref()
        .ok_or_else(|| ("poll 1: no cupsCred".to_string(), a.describe()))?;
    gw.token = blob_token(cups).map_err(|e| ("poll 1: cupsCred".to_string(), e))?;
    gw.cups_crc = crc32fast::hash(cups);
    if let Some(t) = &a.tc_cred {
        gw.tc_crc = crc32fast::hash(t);
    }
    if let Some(u) = a.cups_uri {
        gw.cups_uri = Some(u);
    }
    if let Some(u) = a.tc_uri {
        gw.tc_uri = Some(u);
    }

    poll_for_nothing(&ctx, &gw, 2).await?;
    Ok(gw)
}

/// Poll 3, once every gateway of the phase is registered and confirmed: the
/// first poll of a settled gateway, which every later poll repeats. So the
/// measured runs see a fleet at rest, after the last write of the warm-up.
async fn settle_one(ctx: Arc<Ctx>, gw: Gateway) -> Result<Gateway, (String, String)> {
    poll_for_nothing(&ctx, &gw, 3).await?;
    Ok(gw)
}

/// Poll `n` of the warm-up, with the token, which must get "nothing to do".
async fn poll_for_nothing(ctx: &Ctx, gw: &Gateway, n: u32) -> Result<(), (String, String)> {
    let (r, _) = poll(ctx, &station_request(&ctx.host, gw, true), false)
        .await
        .map_err(|e| (format!("poll {n}: {}", e.kind), e.detail))?;
    if r.status != 200 {
        return Err((
            format!("poll {n}: status {}", r.status),
            String::from_utf8_lossy(&r.body).trim().to_string(),
        ));
    }
    if r.body != NOTHING {
        let what = Answer::parse(&r.body)
            .map(|a| a.describe())
            .unwrap_or_else(|e| e);
        return Err((
            format!("poll {n}: not the 14-zero-byte answer"),
            format!("{} B: {what}", r.body.len()),
        ));
    }
    Ok(())
}

/// Runs `step` on every gateway, `concurrency` at a time, printing progress
/// every 10 s; returns those that passed, sorted by EUI, and the problems.
async fn warm_up<F, Fut>(
    ctx: Arc<Ctx>,
    gateways: Vec<Gateway>,
    concurrency: usize,
    step: F,
) -> (Vec<Gateway>, Problems)
where
    F: Fn(Arc<Ctx>, Gateway) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Gateway, (String, String)>> + Send,
{
    let mut gateways = gateways;
    gateways.reverse(); // taken from the end: in the order given
    let queue = Arc::new(std::sync::Mutex::new(gateways));
    let done = Arc::new(AtomicUsize::new(0));
    let total = queue.lock().unwrap().len();
    let mut tasks = vec![];
    for _ in 0..concurrency.max(1) {
        let (ctx, queue, done, step) = (ctx.clone(), queue.clone(), done.clone(), step.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = vec![];
            let mut bad = Problems::default();
            loop {
                let Some(gw) = queue.lock().unwrap().pop() else {
                    break;
                };
                let eui = gw.eui;
                match step(ctx.clone(), gw).await {
                    Ok(g) => ok.push(g),
                    Err((k, d)) => bad.add(k, format!("{}: {d}", id6(eui))),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (ok, bad)
        }));
    }
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "  warm-up: {d}/{total} gateways ({:.0}/s)",
                    d as f64 / t0.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut gws = vec![];
    let mut problems = Problems::default();
    for t in tasks {
        let (ok, bad) = t.await.expect("warm-up task");
        gws.extend(ok);
        problems.merge(bad);
    }
    progress.abort();
    gws.sort_by_key(|g| g.eui);
    (gws, problems)
}

// ---------------------------------------------------------------- measurement

/// utime+stime in clock ticks (USER_HZ = 100 on Linux) of a process.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // fields after "(comm) ": state=0 ... utime=11, stime=12 (stat fields 14, 15)
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Machine-wide (busy, steal) ticks from /proc/stat: busy = user+nice+system+irq+softirq.
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    Some((
        f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?,
        *f.get(7)?,
    ))
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn servers_cpu(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu_ticks(&p.to_string())).sum()
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

struct Measured {
    polls: u64,
    problems: Problems,
    micros: Vec<u32>,
    elapsed: f64,
    threads_max: Option<u64>,
    /// Polls per negotiated key-exchange group.
    kx: BTreeMap<String, u64>,
}

async fn measure(ctx: Arc<Ctx>, gws: Arc<Vec<Gateway>>, args: &Args, with_token: bool) -> Measured {
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let rr = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for w in 0..args.concurrency.max(1) {
        let (ctx, gws, rr, pick) = (ctx.clone(), gws.clone(), rr.clone(), args.pick);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed + w as u64);
            let mut micros = Vec::with_capacity(16 * 1024);
            let mut problems = Problems::default();
            let mut kx = BTreeMap::<String, u64>::new();
            let n = gws.len();
            while Instant::now() < deadline {
                let i = match pick {
                    Pick::Random => rng.gen_range(0..n),
                    Pick::RoundRobin => rr.fetch_add(1, Ordering::Relaxed) % n,
                };
                let gw = &gws[i];
                let req = station_request(&ctx.host, gw, with_token);
                let start = Instant::now();
                match poll(&ctx, &req, false).await {
                    Ok((r, _)) => {
                        let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        *kx.entry(kx_name(r.kx)).or_default() += 1;
                        if r.status != 200 {
                            problems.add(
                                format!("status {}", r.status),
                                format!(
                                    "{}: {}",
                                    id6(gw.eui),
                                    String::from_utf8_lossy(&r.body).trim()
                                ),
                            );
                        } else if r.body != NOTHING {
                            let what = Answer::parse(&r.body)
                                .map(|a| a.describe())
                                .unwrap_or_else(|e| e);
                            problems.add(
                                "not the 14-zero-byte answer",
                                format!("{}: {} B: {what}", id6(gw.eui), r.body.len()),
                            );
                        } else {
                            micros.push(us);
                        }
                    }
                    Err(e) => problems.add(e.kind, format!("{}: {}", id6(gw.eui), e.detail)),
                }
            }
            (micros, problems, kx)
        }));
    }
    let mut micros = vec![];
    let mut problems = Problems::default();
    let mut kx = BTreeMap::<String, u64>::new();
    for t in tasks {
        let (m, p, k) = t.await.expect("worker");
        micros.extend(m);
        problems.merge(p);
        for (g, n) in k {
            *kx.entry(g).or_default() += n;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    micros.sort_unstable();
    Measured {
        polls: micros.len() as u64,
        problems,
        micros,
        elapsed,
        threads_max: None,
        kx,
    }
}

fn kx_name(g: Option<rustls::NamedGroup>) -> String {
    g.map_or_else(|| "none".to_string(), |g| format!("{g:?}"))
}

/// `X25519` when every poll used it, else `X25519:812,secp384r1:3`.
fn kx_summary(kx: &BTreeMap<String, u64>) -> String {
    match kx.len() {
        0 => "none".into(),
        1 => kx.keys().next().cloned().unwrap_or_default(),
        _ => kx
            .iter()
            .map(|(g, n)| format!("{g}:{n}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// What one measured run found, as printed on its RESULT line.
#[derive(Debug, Clone)]
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    srv_ms_per_poll: Option<f64>,
    background_pct: Option<f64>,
    noisy: bool,
}

/// Where polls go in a measured phase: the server under test or the comparison.
struct Side {
    label: String,
    ctx: Arc<Ctx>,
    pids: Vec<u32>,
}

#[allow(clippy::too_many_arguments)]
fn report(
    side: &Side,
    round: usize,
    gateways: usize,
    concurrency: usize,
    m: &Measured,
    srv_ticks: Option<u64>,
    own_ticks: Option<u64>,
    machine: Option<(u64, u64)>,
    noisy_above: Option<f64>,
) -> Summary {
    let rate = m.polls as f64 / m.elapsed;
    let (p50, p90, p99) = (
        pct(&m.micros, 0.50),
        pct(&m.micros, 0.90),
        pct(&m.micros, 0.99),
    );
    let max = m.micros.last().map_or(f64::NAN, |&u| f64::from(u) / 1000.0);
    let errors = m.problems.total();
    println!(
        "  polls {}  errors {}  elapsed {:.2} s  polls/s {:.1}",
        m.polls, errors, m.elapsed, rate
    );
    println!("  latency ms: p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}");
    println!("  key exchange: {}", kx_summary(&m.kx));
    if errors > 0 {
        println!("  errors by kind:");
        m.problems.print("    ");
    }
    let attempts = (m.polls + errors).max(1) as f64;
    // USER_HZ = 100: one tick is 10 ms
    let ms_per = |t: Option<u64>| t.map(|t| t as f64 * 10.0 / attempts);
    let srv = ms_per(srv_ticks);
    let own = ms_per(own_ticks);
    if let Some(s) = srv {
        println!(
            "  server CPU {:.2} s = {s:.3} ms/poll",
            srv_ticks.unwrap_or(0) as f64 / 100.0
        );
    }
    if let Some(o) = own {
        println!(
            "  load generator CPU {:.2} s = {o:.3} ms/poll",
            own_ticks.unwrap_or(0) as f64 / 100.0
        );
    }
    let hwm: Option<u64> = (!side.pids.is_empty()).then(|| {
        side.pids
            .iter()
            .filter_map(|&p| status_kib(p, "VmHWM:"))
            .sum()
    });
    let rss: Option<u64> = (!side.pids.is_empty()).then(|| {
        side.pids
            .iter()
            .filter_map(|&p| status_kib(p, "VmRSS:"))
            .sum()
    });
    if let (Some(h), Some(r)) = (hwm, rss) {
        println!(
            "  server VmHWM {:.1} MiB, VmRSS {:.1} MiB, up to {} threads during the run",
            h as f64 / 1024.0,
            r as f64 / 1024.0,
            m.threads_max.map_or("?".into(), |t| t.to_string())
        );
    }
    // CPU used by everything else on the machine during the run, in % of all CPUs:
    // a noise indicator (rates are only comparable when this is near 0)
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let capacity = m.elapsed * 100.0 * cpus;
    let (bg, steal) = match (machine, srv_ticks, own_ticks) {
        (Some((busy, steal)), Some(s), Some(o)) => (
            Some(busy.saturating_sub(s + o) as f64 / capacity * 100.0),
            Some(steal as f64 / capacity * 100.0),
        ),
        (Some((_, steal)), _, _) => (None, Some(steal as f64 / capacity * 100.0)),
        _ => (None, None),
    };
    if let Some(b) = bg {
        println!(
            "  other processes used {b:.1}% of the machine's CPU during the run (steal {:.1}%)",
            steal.unwrap_or(0.0)
        );
    }
    let noisy = matches!((bg, noisy_above), (Some(b), Some(t)) if b > t);
    if noisy {
        println!("  NOISY: this run is discarded and repeated");
    }
    let opt = |v: Option<f64>| v.map_or("na".to_string(), |v| format!("{v:.3}"));
    let opt_u = |v: Option<u64>| v.map_or("na".to_string(), |v| v.to_string());
    println!(
        "{} label={} gateways={} round={} concurrency={} duration={:.2} polls={} errors={} rate={:.1} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} srv_cpu_ms_per_poll={} gen_cpu_ms_per_poll={} srv_vmhwm_kib={} srv_vmrss_kib={} srv_threads_max={} background_cpu_pct={} steal_pct={} kx={}",
        if noisy { "NOISY" } else { "RESULT" },
        side.label,
        gateways,
        round,
        concurrency,
        m.elapsed,
        m.polls,
        errors,
        rate,
        p50,
        p90,
        p99,
        max,
        opt(srv),
        opt(own),
        opt_u(hwm),
        opt_u(rss),
        opt_u(m.threads_max),
        bg.map_or("na".to_string(), |v| format!("{v:.1}")),
        steal.map_or("na".to_string(), |v| format!("{v:.1}")),
        kx_summary(&m.kx),
    );
    Summary {
        rate,
        p50,
        p99,
        srv_ms_per_poll: srv,
        background_pct: bg,
        noisy,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Waits until processes other than ours use under `args.quiet_pct` of the machine
/// over one second, at most `args.settle_max` seconds. Idle servers count as ours.
async fn settle(args: &Args, pids: &[u32]) {
    if args.settle_max <= 0.0 {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let t0 = Instant::now();
    let mut last = f64::NAN;
    while t0.elapsed().as_secs_f64() < args.settle_max {
        let (m0, s0, o0) = (machine_ticks(), servers_cpu(pids), cpu_ticks("self"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (m1, s1, o1) = (machine_ticks(), servers_cpu(pids), cpu_ticks("self"));
        let ours = s1.zip(s0).map_or(0, |(a, b)| a - b) + o1.zip(o0).map_or(0, |(a, b)| a - b);
        let Some(((b1, _), (b0, _))) = m1.zip(m0) else {
            return;
        };
        last = (b1 - b0).saturating_sub(ours) as f64 / cpus;
        if last < args.quiet_pct {
            return;
        }
    }
    println!(
        "  machine not quiet after {:.0} s (other processes at {last:.0}% of all CPUs); measuring anyway",
        args.settle_max
    );
}

async fn measure_side(
    side: &Side,
    gws: &Arc<Vec<Gateway>>,
    args: &Args,
    round: usize,
    noisy_above: Option<f64>,
) -> (Summary, bool) {
    println!(
        "== measured: {} at {}, {} gateways, {} workers, {} s, round {}",
        side.label,
        side.ctx.addr,
        gws.len(),
        args.concurrency,
        args.duration,
        round + 1
    );
    settle(args, &side.pids).await;
    let mach0 = machine_ticks();
    let srv0 = servers_cpu(&side.pids);
    let own0 = cpu_ticks("self");
    // most threads the server had during the run (sampled every 100 ms)
    let threads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (pids, threads) = (side.pids.clone(), threads.clone());
        tokio::spawn(async move {
            while !pids.is_empty() {
                let t: u64 = pids.iter().filter_map(|&p| status_kib(p, "Threads:")).sum();
                threads.fetch_max(t, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut m = measure(side.ctx.clone(), gws.clone(), args, true).await;
    sampler.abort();
    m.threads_max = Some(threads.load(Ordering::Relaxed)).filter(|&t| t > 0);
    let srv = servers_cpu(&side.pids).zip(srv0).map(|(a, b)| a - b);
    let own = cpu_ticks("self").zip(own0).map(|(a, b)| a - b);
    let mach = machine_ticks()
        .zip(mach0)
        .map(|(a, b)| (a.0 - b.0, a.1 - b.1));
    let s = report(
        side,
        round + 1,
        gws.len(),
        args.concurrency,
        &m,
        srv,
        own,
        mach,
        noisy_above,
    );
    (s, m.problems.total() == 0)
}

// ---------------------------------------------------------------- idle flood

/// `n` real polls, one at a time, `gap` apart: latencies (ms, sorted) and failures.
async fn legit_polls(ctx: &Ctx, gws: &[Gateway], n: usize, gap: Duration) -> (Vec<f64>, Problems) {
    let mut ms = vec![];
    let mut problems = Problems::default();
    for i in 0..n {
        let gw = &gws[i % gws.len()];
        let t = Instant::now();
        match poll(ctx, &station_request(&ctx.host, gw, true), false).await {
            Ok((r, _)) if r.status == 200 && r.body == NOTHING => {
                ms.push(t.elapsed().as_secs_f64() * 1e3)
            }
            Ok((r, _)) => problems.add(format!("status {}", r.status), id6(gw.eui)),
            Err(e) => problems.add(e.kind, format!("{}: {}", id6(gw.eui), e.detail)),
        }
        tokio::time::sleep(gap.saturating_sub(t.elapsed())).await;
    }
    ms.sort_by(f64::total_cmp);
    (ms, problems)
}

fn legit_line(what: &str, ms: &[f64], problems: &Problems, extra: &str) {
    let p = |q: f64| {
        let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len().max(1)) - 1;
        ms.get(i).copied().unwrap_or(f64::NAN)
    };
    println!(
        "FLOOD phase={what} polls={} failed={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}{extra}",
        ms.len(),
        problems.total(),
        p(0.5),
        p(0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
    problems.print("  ");
}

/// Issue 9 item 4's attack: bare TCP connections from one address, none sending a
/// byte, while a real gateway polls from another. Returns false if a poll failed.
async fn idle_flood(ctx: &Ctx, gws: &[Gateway], args: &Args) -> bool {
    let n = args.idle_flood;
    let flood_secs = n as f64 / args.flood_rate;
    let (base, base_problems) =
        legit_polls(ctx, gws, args.legit_polls, Duration::from_millis(50)).await;
    legit_line("before", &base, &base_problems, "");

    let stop = tokio_util::sync::CancellationToken::new();
    let connected = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let slow = Arc::new(AtomicUsize::new(0));
    let (to, from) = (ctx.addr, args.flood_from);
    let interval = Duration::from_secs_f64(1.0 / args.flood_rate);
    let flooder = {
        let (stop, connected, refused, closed, slow) = (
            stop.clone(),
            connected.clone(),
            refused.clone(),
            closed.clone(),
            slow.clone(),
        );
        tokio::spawn(async move {
            let t0 = tokio::time::Instant::now();
            for i in 0..n {
                tokio::time::sleep_until(t0 + interval * i as u32).await;
                let (stop, connected, refused, closed, slow) = (
                    stop.clone(),
                    connected.clone(),
                    refused.clone(),
                    closed.clone(),
                    slow.clone(),
                );
                tokio::spawn(async move {
                    let t = Instant::now();
                    let sock = match tokio::net::TcpSocket::new_v4() {
                        Ok(s) if s.bind(SocketAddr::new(from, 0)).is_ok() => s,
                        _ => return refused.fetch_add(1, Ordering::Relaxed),
                    };
                    let mut s = tokio::select! {
                        r = sock.connect(to) => match r {
                            Ok(s) => s,
                            Err(_) => return refused.fetch_add(1, Ordering::Relaxed),
                        },
                        _ = stop.cancelled() => return 0,
                    };
                    // a connect over 1 s waited for a SYN retransmit: the accept queue was full
                    if t.elapsed() > Duration::from_secs(1) {
                        slow.fetch_add(1, Ordering::Relaxed);
                    }
                    connected.fetch_add(1, Ordering::Relaxed);
                    let mut b = [0u8; 1];
                    tokio::select! {
                        _ = s.read(&mut b) => closed.fetch_add(1, Ordering::Relaxed),
                        _ = stop.cancelled() => 0,
                    }
                });
            }
        })
    };
    // let the flood build up, then poll through the rest of it
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gap = Duration::from_secs_f64(((flood_secs - 4.0) / args.legit_polls as f64).max(0.01));
    let (during, problems) = legit_polls(ctx, gws, args.legit_polls, gap).await;
    let _ = flooder.await;
    let extra = format!(
        " flood_conns={n} flood_rate={} flood_connected={} flood_connect_failed={} flood_connect_over_1s={} flood_closed_by_server={}",
        args.flood_rate,
        connected.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        slow.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
    );
    legit_line("during", &during, &problems, &extra);
    stop.cancel();
    base_problems.total() == 0 && problems.total() == 0
}

/// A server-certificate verifier that runs webpki's chain check once per distinct
/// (chain, name) and remembers the verdict for the run, while every handshake's
/// signature is still verified against the certificate's key. Only successes are
/// remembered, so a bad chain fails every time.
#[derive(Debug)]
struct ChainOnce {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    verified: std::sync::Mutex<std::collections::HashSet<Vec<u8>>>,
}

impl ChainOnce {
    /// The chain and name as one key: length-prefixed DER certificates, then the name.
    fn key(
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Vec<u8> {
        let mut k = Vec::new();
        for c in std::iter::once(end_entity).chain(intermediates) {
            k.extend_from_slice(&(c.len() as u32).to_be_bytes());
            k.extend_from_slice(c);
        }
        k.extend_from_slice(name.to_str().as_bytes());
        k
    }
}

impl rustls::client::danger::ServerCertVerifier for ChainOnce {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let key = Self::key(end_entity, intermediates, name);
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if !verified.contains(&key) {
            self.webpki
                .verify_server_cert(end_entity, intermediates, name, ocsp, now)?;
            verified.insert(key);
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

fn client_config(args: &Args) -> Result<ClientConfig, String> {
    let pem = std::fs::read(&args.ca).map_err(|e| format!("{}: {e}", args.ca.display()))?;
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(c.map_err(|e| format!("{}: {e}", args.ca.display()))?)
            .map_err(|e| format!("{}: {e}", args.ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate", args.ca.display()));
    }
    let mut provider = rustls::crypto::ring::default_provider();
    use rustls::crypto::ring::kx_group;
    match args.kx {
        Kx::Default => {}
        Kx::Station => {
            provider.kx_groups = vec![kx_group::SECP384R1, kx_group::SECP256R1, kx_group::X25519]
        }
        Kx::X25519 => provider.kx_groups = vec![kx_group::X25519],
        Kx::P256 => provider.kx_groups = vec![kx_group::SECP256R1],
        Kx::P384 => provider.kx_groups = vec![kx_group::SECP384R1],
    }
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = match args.tls {
        TlsVersion::V12 => &[&rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
        TlsVersion::Default => rustls::DEFAULT_VERSIONS,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let mut cfg = match args.chain_check {
        ChainCheck::Every => builder.with_root_certificates(roots),
        ChainCheck::Once => {
            let webpki =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnce {
                    webpki,
                    verified: Default::default(),
                }))
        }
    }
    .with_no_client_auth();
    // station makes a full handshake every time: no tickets, no session ids
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

fn main() {
    let args = Args::parse();
    let keys: Vec<String> = args.keys.iter().map(u32::to_string).collect();
    let _ = KEYS.set(keys.join(","));
    let mut phases = args.phases.clone();
    phases.sort_unstable();
    phases.dedup();
    if phases.is_empty() || phases[0] == 0 {
        eprintln!("cups-load: --phases needs positive gateway counts");
        std::process::exit(2);
    }
    let fail = |m: String| -> ! {
        eprintln!("cups-load: {m}");
        std::process::exit(2);
    };
    let eui_base = u64::from_str_radix(args.eui_base.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| fail(format!("--eui-base: {e}")));
    let cfg = Arc::new(client_config(&args).unwrap_or_else(|e| fail(e)));
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| format!("{}:{}", args.sni, args.addr.port()));
    let server_name =
        ServerName::try_from(args.sni.clone()).unwrap_or_else(|e| fail(format!("--sni: {e}")));
    let make_ctx = |addr: SocketAddr| {
        Arc::new(Ctx {
            addr,
            server_name: server_name.clone(),
            connector: TlsConnector::from(cfg.clone()),
            host: host.clone(),
            timeout: Duration::from_secs_f64(args.timeout),
        })
    };
    let ctx = make_ctx(args.addr);
    let main_side = Side {
        label: args.label.clone(),
        ctx: ctx.clone(),
        pids: args.server_pid.clone(),
    };
    let compare = args.compare_addr.map(|a| Side {
        label: args.compare_label.clone(),
        ctx: make_ctx(a),
        pids: args.compare_pid.clone(),
    });
    if compare.is_some() && args.target == Target::Static {
        fail("--compare-addr goes with --target stationkeeper".into());
    }
    let initial_cups_uri = args
        .initial_cups_uri
        .clone()
        .unwrap_or_else(|| format!("https://{host}"));

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.build().expect("tokio runtime");
    let mut failed = false;
    rt.block_on(async {
        println!(
            "cups-load: target {:?} at {} (SNI {}, Host {}), TLS {:?} kx {:?}, chain check {:?}, {} workers, {} s per measured run, {} round(s), pick {:?}{}",
            args.target,
            args.addr,
            args.sni,
            host,
            args.tls,
            args.kx,
            args.chain_check,
            args.concurrency,
            args.duration,
            args.rounds,
            args.pick,
            compare
                .as_ref()
                .map_or(String::new(), |c| format!(", compared with {} at {}", c.label, c.ctx.addr))
        );
        let mut gws: Vec<Gateway> = vec![];
        let mut registered = 0usize;
        for (pi, &n) in phases.iter().enumerate() {
            match args.target {
                Target::Stationkeeper => {
                    let euis: Vec<u64> = (registered..n).map(|i| eui_base + i as u64).collect();
                    println!(
                        "== warm-up: registering gateways {}..{} ({} gateways, {} concurrent)",
                        registered,
                        n,
                        euis.len(),
                        args.warmup_concurrency
                    );
                    let srv0 = servers_cpu(&args.server_pid);
                    let t0 = Instant::now();
                    let fresh = euis.iter().map(|&e| Gateway::fresh(e, &initial_cups_uri)).collect();
                    let (new, problems) = warm_up(ctx.clone(), fresh, args.warmup_concurrency, warm_one).await;
                    let secs = t0.elapsed().as_secs_f64();
                    let srv = servers_cpu(&args.server_pid).zip(srv0).map(|(a, b)| a - b);
                    println!(
                        "  {} ok, {} failed in {:.1} s ({:.0} gateways/s, 2 polls each){}",
                        new.len(),
                        problems.total(),
                        secs,
                        euis.len() as f64 / secs,
                        srv.map_or(String::new(), |t| format!(
                            ", server CPU {:.1} s = {:.2} ms/gateway",
                            t as f64 / 100.0,
                            t as f64 * 10.0 / euis.len().max(1) as f64
                        ))
                    );
                    if problems.total() > 0 {
                        println!("  warm-up problems:");
                        problems.print("    ");
                        failed = true;
                    }
                    if let Some(g) = new.first() {
                        println!(
                            "  e.g. {} reports cupsUri={:?} tcUri={:?} cupsCredCrc={} tcCredCrc={}, token line {} B",
                            id6(g.eui),
                            g.cups_uri,
                            g.tc_uri,
                            g.cups_crc,
                            g.tc_crc,
                            g.token.len()
                        );
                    }
                    println!(
                        "WARMUP gateways={} registered={} failed={} secs={:.1} rate={:.0}",
                        n,
                        new.len(),
                        problems.total(),
                        secs,
                        euis.len() as f64 / secs
                    );
                    gws.extend(new);
                    registered = n;
                    let t0 = Instant::now();
                    let (settled, problems) =
                        warm_up(ctx.clone(), std::mem::take(&mut gws), args.warmup_concurrency, settle_one).await;
                    println!(
                        "  all {} gateways polled once more (poll 3, settled) in {:.1} s, {} failed",
                        settled.len(),
                        t0.elapsed().as_secs_f64(),
                        problems.total()
                    );
                    if problems.total() > 0 {
                        problems.print("    ");
                        failed = true;
                    }
                    gws = settled;
                }
                Target::Static => {
                    let token = format!("Authorization: Bearer {}\r\n", "x".repeat(args.static_token_len));
                    gws = (0..n)
                        .map(|i| {
                            let mut g = Gateway::fresh(eui_base + i as u64, &initial_cups_uri);
                            g.tc_uri = Some(format!("wss://{}:18887", args.sni));
                            g.cups_crc = 0x1234_5678;
                            g.tc_crc = 0x9abc_def0;
                            g.token = token.clone();
                            g
                        })
                        .collect();
                }
            }
            if let Some(cmd) = args.between_phases.as_ref().filter(|_| pi > 0) {
                println!("== between phases: {cmd}");
                match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
                    Ok(s) if s.success() => {}
                    other => {
                        println!("  between-phases command failed: {other:?}");
                        failed = true;
                    }
                }
            }
            if gws.is_empty() {
                println!("  no gateway to poll; skipping the measured phase");
                failed = true;
                continue;
            }
            if args.idle_flood > 0 {
                failed |= !idle_flood(&ctx, &gws, &args).await;
                break;
            }
            let sides: Vec<&Side> = std::iter::once(&main_side).chain(compare.as_ref()).collect();
            // one probe each, to show what is negotiated
            for side in &sides {
                match poll(&side.ctx, &station_request(&host, &gws[0], true), true).await {
                    Ok((r, info)) => println!(
                        "  probe {}: {} -> status {}, {} B answer",
                        side.label,
                        info.unwrap_or_default(),
                        r.status,
                        r.body.len()
                    ),
                    Err(e) => println!("  probe {} failed: {}: {}", side.label, e.kind, e.detail),
                }
            }
            let shared = Arc::new(gws.clone());
            let mut results: Vec<Vec<Summary>> = vec![vec![]; sides.len()];
            for round in 0..args.rounds.max(1) {
                // alternate the order so drift in background load hits both sides alike
                let order: Vec<usize> = if round % 2 == 0 {
                    (0..sides.len()).collect()
                } else {
                    (0..sides.len()).rev().collect()
                };
                for i in order {
                    // a run during which other processes took more than --noisy-pct
                    // of the machine is repeated, at most --retry-noisy times
                    let mut attempt = 0;
                    loop {
                        let threshold =
                            (attempt < args.retry_noisy).then_some(args.noisy_pct);
                        let (s, ok) =
                            measure_side(sides[i], &shared, &args, round, threshold).await;
                        attempt += 1;
                        // errors count even in a discarded run
                        failed |= !ok;
                        if s.noisy {
                            continue;
                        }
                        results[i].push(s);
                        break;
                    }
                }
            }
            if sides.len() == 2 {
                let (a, b) = (&results[0], &results[1]);
                let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.rate / y.rate).collect();
                let cpu: Vec<f64> = a
                    .iter()
                    .zip(b)
                    .filter_map(|(x, y)| Some(y.srv_ms_per_poll? / x.srv_ms_per_poll?))
                    .collect();
                let med = |f: fn(&Summary) -> f64, v: &[Summary]| median(v.iter().map(f).collect());
                println!(
                    "== {} gateways, median of {} round(s): {} {:.1} polls/s (p50 {:.2} ms, p99 {:.2} ms), {} {:.1} polls/s (p50 {:.2} ms, p99 {:.2} ms)",
                    gws.len(),
                    a.len(),
                    sides[0].label,
                    med(|s| s.rate, a),
                    med(|s| s.p50, a),
                    med(|s| s.p99, a),
                    sides[1].label,
                    med(|s| s.rate, b),
                    med(|s| s.p50, b),
                    med(|s| s.p99, b),
                );
                println!(
                    "  rate ratio {}/{} per round: {}; server CPU per poll {}/{} per round: {}",
                    sides[0].label,
                    sides[1].label,
                    ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" "),
                    sides[1].label,
                    sides[0].label,
                    cpu.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" "),
                );
                println!(
                    "COMPARE gateways={} rounds={} {a}_rate={:.1} {a}_p50_ms={:.2} {a}_p99_ms={:.2} {b}_rate={:.1} {b}_p50_ms={:.2} {b}_p99_ms={:.2} rate_ratio={:.3} cpu_ratio={:.3} {a}_srv_cpu_ms_per_poll={:.3} {b}_srv_cpu_ms_per_poll={:.3} background_cpu_pct_max={:.1}",
                    gws.len(),
                    a.len(),
                    med(|s| s.rate, a),
                    med(|s| s.p50, a),
                    med(|s| s.p99, a),
                    med(|s| s.rate, b),
                    med(|s| s.p50, b),
                    med(|s| s.p99, b),
                    median(ratios),
                    median(cpu),
                    median(a.iter().filter_map(|s| s.srv_ms_per_poll).collect()),
                    median(b.iter().filter_map(|s| s.srv_ms_per_poll).collect()),
                    a.iter().chain(b).filter_map(|s| s.background_pct).fold(f64::NAN, f64::max),
                    a = sides[0].label,
                    b = sides[1].label,
                );
            }
        }
    });
    if failed {
        std::process::exit(1);
    }
}
