//! `refusal-flood`: how much log a flood of refused CUPS requests writes, and how
//! a real gateway's polls fare meanwhile (issue 9, item 1).
//!
//! It registers one gateway with a CUPS token through the operator API and polls
//! until it is settled (the answer is 14 zero bytes). Then, for `--secs`, `--conns`
//! kept-alive TLS connections send refused requests as fast as the server answers
//! them (`--mode bad-router`: a `router` of `--router-bytes` junk; `no-creds`: a
//! valid router id without credentials; `mixed`: both, alternating; `none`: no
//! flood, the baseline), while the gateway makes `--polls` station-like polls (a
//! fresh TCP and TLS 1.2 connection each) spread over the same time. It prints the
//! refused requests per second, the growth of the server's log file (`--log`, the
//! server's stderr redirected there) per second, and the polls' p50/p99/max.
//!
//! Run it against a release build; see `scripts/bench-refusal-flood.sh`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hyper::Method;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde_json::json;
use stationkeeper::cli::ApiClient;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    BadRouter,
    NoCreds,
    Mixed,
    None,
}

#[derive(Parser)]
struct Args {
    /// The CUPS listener.
    #[arg(long)]
    cups: std::net::SocketAddr,
    /// The operator API, e.g. http://127.0.0.1:7000.
    #[arg(long)]
    api: String,
    #[arg(long)]
    api_token: String,
    /// The CA gateways trust (state_dir/pki/ca.crt).
    #[arg(long)]
    ca: PathBuf,
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// The file the server's stderr goes to.
    #[arg(long)]
    log: PathBuf,
    #[arg(long, value_enum, default_value = "bad-router")]
    mode: Mode,
    #[arg(long, default_value_t = 10)]
    secs: u64,
    #[arg(long, default_value_t = 4)]
    conns: usize,
    #[arg(long, default_value_t = 100)]
    polls: usize,
    #[arg(long, default_value_t = 8000)]
    router_bytes: usize,
}

fn body(router: &str, cups_uri: &str, crc: u32) -> String {
    format!(
        r#"{{"router":"{router}","cupsUri":"{cups_uri}","tcUri":null,"cupsCredCrc":{crc},"tcCredCrc":2077607535,"station":"2.0.6(rpi/std) 2022-01-21 10:00:00","model":"rpi","package":"1.0.0","keys":[]}}"#
    )
}

fn request(host: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST /update-info HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes a request and reads its whole answer; returns status and body.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    s.write_all(req).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the answer"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("closed mid-answer"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        return Ok((status, buf.split_off(end + 4)));
    }
}

struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
    addr: std::net::SocketAddr,
}

impl Tls {
    async fn connect(&self) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let _ = tcp.set_nodelay(true);
        self.connector.connect(self.name.clone(), tcp).await
    }

    /// One station-like poll: fresh connection, request, answer, close.
    async fn poll(&self, req: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let mut s = self.connect().await?;
        let r = exchange(&mut s, req).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), s.shutdown()).await;
        r
    }
}

fn client_config(ca: &PathBuf) -> ClientConfig {
    let pem = std::fs::read(ca).expect("--ca");
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("--ca PEM")).expect("--ca certificate");
    }
    let mut cfg = ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let tls = Arc::new(Tls {
        connector: TlsConnector::from(Arc::new(client_config(&args.ca))),
        name: ServerName::try_from(args.sni.clone()).expect("--sni"),
        addr: args.cups,
    });
    let host = format!("{}:{}", args.sni, args.cups.port());

    // One settled gateway with a CUPS token.
    let api = ApiClient::new(&args.api, args.api_token.clone(), None).expect("--api");
    let eui: u64 = rand::random::<u64>() | 1;
    let gw = api
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(json!({"LoRaWAN": {"GatewayEui": format!("{eui:016x}"), "RfRegion": "EU868"}})),
        )
        .await
        .expect("create gateway");
    let id = gw["Id"].as_str().unwrap().to_string();
    let issued = api
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": "CUPS", "Kind": "Token"})),
        )
        .await
        .expect("issue token");
    let token = issued["Files"]["cups.key"]
        .as_str()
        .unwrap()
        .trim()
        .trim_start_matches("Authorization: Bearer ")
        .to_string();
    let creds = api
        .call(
            Method::GET,
            &format!("/wireless-gateways/{id}/credentials"),
            None,
        )
        .await
        .unwrap();
    let crc = creds["CUPS"]["Crc"].as_u64().unwrap() as u32;
    let cups_uri = issued["Files"]["cups.uri"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    let router = stationkeeper::eui::Eui(eui).to_id6();
    let legit = request(&host, Some(&token), &body(&router, &cups_uri, crc));
    for _ in 0..2 {
        tls.poll(&legit).await.expect("settling poll");
    }
    let (status, answer) = tls.poll(&legit).await.unwrap();
    assert!(
        status == 200 && answer == [0; 14],
        "gateway not settled: {status} {answer:?}"
    );

    let junk = "z".repeat(args.router_bytes);
    let floods = [
        request(&host, None, &body(&junk, &cups_uri, crc)),
        request(&host, None, &body(&router, &cups_uri, crc)),
    ];
    let log_size = || std::fs::metadata(&args.log).map(|m| m.len()).unwrap_or(0);
    let log0 = log_size();
    let start = Instant::now();
    let until = start + Duration::from_secs(args.secs);
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    for n in 0..if args.mode == Mode::None {
        0
    } else {
        args.conns
    } {
        let (tls, refused) = (tls.clone(), refused.clone());
        let reqs: Vec<Vec<u8>> = match args.mode {
            Mode::BadRouter => vec![floods[0].clone()],
            Mode::NoCreds => vec![floods[1].clone()],
            _ => floods.to_vec(),
        };
        tasks.push(tokio::spawn(async move {
            let mut i = n;
            while Instant::now() < until {
                let Ok(mut s) = tls.connect().await else {
                    continue;
                };
                while Instant::now() < until {
                    match exchange(&mut s, &reqs[i % reqs.len()]).await {
                        Ok(_) => refused.fetch_add(1, Ordering::Relaxed),
                        Err(_) => break,
                    };
                    i += 1;
                }
            }
        }));
    }
    let gap = Duration::from_secs(args.secs) / args.polls as u32;
    let mut lat = vec![];
    let mut failed = 0;
    for k in 0..args.polls {
        tokio::time::sleep_until((start + gap * k as u32).into()).await;
        let t = Instant::now();
        match tls.poll(&legit).await {
            Ok((200, a)) if a == [0; 14] => lat.push(t.elapsed().as_secs_f64() * 1e3),
            _ => failed += 1,
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = log_size() - log0;
    lat.sort_by(f64::total_cmp);
    let refused = refused.load(Ordering::Relaxed);
    println!(
        "RESULT mode={:?} conns={} secs={secs:.1} refused={refused} refused_per_s={:.0} log_bytes={grown} log_bytes_per_s={:.0} polls={} failed={failed} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        args.mode,
        args.conns,
        refused as f64 / secs,
        grown as f64 / secs,
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
    );
}
