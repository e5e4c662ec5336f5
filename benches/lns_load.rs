//! `lns-load`: holds many simulated Basics Station LNS connections open against
//! stationkeeper and fans one class C downlink out to all of them.
//!
//! Two modes, meant to run as two processes so the server's RSS is its own:
//!
//! * `lns-load server`: starts stationkeeper in this process with
//!   `startup::spawn` (the real start-up path, listeners on 127.0.0.1). With
//!   `--register` it first registers N gateways with LNS token credentials through
//!   the operator API and writes `EUI TOKEN` lines for the client process (the
//!   script does that in a process of its own, then measures a fresh server on the
//!   same state dir, so registration garbage is not in its RSS, as after a
//!   restart). Then it reads commands on stdin:
//!   `rss` (memory and CPU of this process, open sessions), `wait N SECS` (until exactly N
//!   sessions are open), `waitsync N SECS` (until N open sessions have GPS time
//!   and a time anchor, the gateways FUOTA puts in one common slot), `fanout`
//!   (one `ClassCNow` downlink to every connected gateway at once through
//!   `Lns::send`, the server's real downlink path, with latency and outcome
//!   counts), `fuota BYTES` (through the operator API, as an operator would: an
//!   EU868 class C multicast group with a session from now + 5 s, a random image
//!   of BYTES uploaded to `POST /blobs`, a FUOTA task on it, associated and
//!   started; prints the plan), `progress` (the running task's counts from
//!   `GET /fuota-tasks/{Id}`), `quit`.
//! * `lns-load clients`: opens N traffic connections the way station 2.0.6 does
//!   (lns-protocol.md §1): TCP, TLS 1.2, the hand-written upgrade request with the
//!   fixed `Sec-WebSocket-Key` and the token header line, masked frames (mask
//!   01 01 01 01), `version` first, then waits for `router_config`. The connection
//!   then stays open: pings get pongs, `getxtime` gets station's answer, every
//!   `dnmsg` gets a `dntxed` echoing its `diid`. With `--pps` each station first
//!   sends one `timesync` as a gateway with a PPS pulse does (lns-protocol.md
//!   §6.2), so the server knows it has GPS time. Frames from the server are
//!   checked against station's rules (FIN, RSV 0, unmasked, 7/16-bit length, fits
//!   40 KiB); a violation fails that connection. Commands on stdin: `stats`, `quit`
//!   (EOF also quits).
//!
//! Machine-readable lines on stdout (`key=value`): `READY`, `RSS`, `WAITED`,
//! `SYNCED`, `FANOUT`, `FUOTA`, `FUOTA_PROGRESS`, `CONNECTED`, `CLIENTS`. A free
//! text value (an error, a status reason) is always the last field of its line.
//! Everything else goes to stderr.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use stationkeeper::app::App;
use stationkeeper::cli::ApiClient;
use stationkeeper::config::Config;
use stationkeeper::eui::Eui;
use stationkeeper::lns::downlink::{Downlink, Outcome, Timing};

#[path = "lns_load_devices.rs"]
mod devices;

const API_TOKEN: &str = "bench-token-123";
/// Station's fixed `Sec-WebSocket-Key` (net.c).
const WS_KEY: &str = "bpse8nVmEl6ZlX4lSb6RMw==";
/// Station's mask key for every frame it sends.
const MASK: [u8; 4] = [1, 1, 1, 1];
/// `TC_RECV_BUFFER_SIZE`: a whole frame from the server must fit.
const TC_RECV_BUFFER_SIZE: usize = 40 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "lns-load",
    about = "Many Basics Station LNS connections against stationkeeper, and a class C fan-out"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run stationkeeper in this process, register gateways, obey stdin commands.
    Server(ServerArgs),
    /// Open N station-like traffic connections and keep them open.
    Clients(ClientArgs),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// State directory (database, development PKI); created if missing.
    #[arg(long)]
    state: PathBuf,
    /// LNS listener; also the port of `[lns] public_uri = wss://localhost:PORT`.
    #[arg(long, default_value = "127.0.0.1:18887")]
    lns: SocketAddr,
    /// Operator API listener (plain HTTP, loopback).
    #[arg(long, default_value = "127.0.0.1:17001")]
    api: SocketAddr,
    /// CUPS listener (unused by the benchmark, but every face is started).
    #[arg(long, default_value = "127.0.0.1:0")]
    cups: SocketAddr,
    /// Gateways expected (sets `[lns] max_connections` and `[limits]
    /// max_connections` above it); with --register, gateways to register.
    #[arg(long)]
    n: usize,
    /// Register N gateways with LNS tokens through the operator API and write
    /// `EUI TOKEN` lines to --tokens-out. Without it the state dir must already
    /// hold them (a fresh server process, so its RSS carries no registration heap).
    #[arg(long, requires = "tokens_out")]
    register: bool,
    /// Where --register writes `EUI TOKEN` lines for `lns-load clients`.
    #[arg(long)]
    tokens_out: Option<PathBuf>,
    /// EUI of gateway 0 (hex); gateway i is base + i.
    #[arg(long, default_value = "0016c00200000000")]
    eui_base: String,
    /// Concurrent registrations (two API calls each).
    #[arg(long, default_value_t = 16)]
    register_concurrency: usize,
    /// `[lns] ping_interval_secs`.
    #[arg(long, default_value_t = 30)]
    ping_interval: u64,
    /// Downlink data rate (EU868 DR0 = SF12/125 kHz).
    #[arg(long, default_value_t = 0)]
    dr: u8,
    #[arg(long, default_value_t = 869_525_000)]
    freq: u32,
    /// PHYPayload bytes per downlink.
    #[arg(long, default_value_t = 20)]
    pdu_len: usize,
    /// `fuota`: the multicast session starts this many seconds after the command.
    #[arg(long, default_value_t = 5)]
    fuota_start_in: i64,
    /// --register: the gateways' `LoRaWAN` object (GatewayEui is added).
    #[arg(long, default_value = r#"{"RfRegion":"EU868"}"#)]
    gw_lorawan: String,
    /// `[lns] max_messages_per_sec` (default: the server's).
    #[arg(long)]
    max_messages_per_sec: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kx {
    /// station 2.0.6's captured order (benches/README.md) minus what ring lacks:
    /// P-384, P-256, X25519
    Station,
    /// rustls default: X25519, P-256, P-384
    Default,
}

#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// `EUI TOKEN` lines written by `lns-load server`.
    #[arg(long)]
    file: PathBuf,
    /// LNS address to connect to.
    #[arg(long, default_value = "127.0.0.1:18887")]
    addr: SocketAddr,
    /// TLS server name (SNI, certificate check, and the Host header's host).
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// PEM CA that signed the server certificate (STATE/pki/ca.crt).
    #[arg(long)]
    ca: PathBuf,
    /// Connections to open (the first N lines of --file).
    #[arg(long)]
    n: usize,
    /// Connections being set up at once (TCP + TLS + upgrade + version/router_config).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Per-connection set-up timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// ECDHE groups offered (the server picks among them).
    #[arg(long, value_enum, default_value = "station")]
    kx: Kx,
    /// Delay before answering a dnmsg with dntxed (station: ~20 ms TX_AIM_GAP + 5 ms).
    #[arg(long, default_value_t = 0)]
    tx_delay_ms: u64,
    /// Quit by itself after this many seconds of holding the connections.
    #[arg(long, default_value_t = 3600)]
    hold_max: u64,
    /// Tokio worker threads (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Act as gateways with a PPS pulse: after router_config send one `timesync`
    /// (lns-protocol.md §6.2), so the server marks them as having GPS time.
    #[arg(long)]
    pps: bool,
    #[command(flatten)]
    dev: devices::DeviceArgs,
}

fn main() {
    let cli = Cli::parse();
    let threads = match &cli.mode {
        Mode::Clients(a) => a.threads,
        Mode::Server(_) => None,
    };
    // Same runtime as `stationkeeper serve`: multi-threaded, one worker per CPU.
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(t) = threads {
        b.worker_threads(t);
    }
    let rt = b.build().expect("tokio runtime");
    let r = rt.block_on(async move {
        match cli.mode {
            Mode::Server(a) => server(a).await,
            Mode::Clients(a) => clients(a).await,
        }
    });
    if let Err(e) = r {
        eprintln!("lns-load: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------ shared helpers

fn say(line: String) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `p` in 0..=1 of sorted `v`, nearest rank.
fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// `Key: value kB` fields of /proc/self/status.
fn proc_status() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse().ok()?;
            Some((k.to_string(), n))
        })
        .collect()
}

/// User + system CPU of this process in ms (assumes USER_HZ = 100, as on Linux).
fn cpu_ms() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(14) + get(15)) * 10
}

fn mem_line() -> String {
    let s = proc_status();
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    format!(
        "rss_kib={} hwm_kib={} anon_kib={} file_kib={} threads={} cpu_ms={}",
        g("VmRSS"),
        g("VmHWM"),
        g("RssAnon"),
        g("RssFile"),
        g("Threads"),
        cpu_ms()
    )
}

// ------------------------------------------------------------------ server mode

async fn server(a: ServerArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();

    let base = u64::from_str_radix(&a.eui_base, 16).map_err(|e| format!("--eui-base: {e}"))?;
    let mut cfg = Config {
        state_dir: a.state.clone(),
        ..Config::default()
    };
    cfg.cups.listen = a.cups;
    cfg.api.listen = a.api;
    cfg.api.tokens = Some(vec![API_TOKEN.to_string()]);
    cfg.lns.listen = a.lns;
    cfg.lns.public_uri = Some(format!("wss://localhost:{}", a.lns.port()));
    cfg.lns.max_connections = cfg.lns.max_connections.max(a.n + 1000);
    cfg.lns.ping_interval_secs = a.ping_interval;
    cfg.lns.dead_after_secs = cfg.lns.dead_after_secs.max(a.ping_interval * 3);
    cfg.limits.max_connections = cfg.limits.max_connections.max(a.n + 1000);
    cfg.lns.max_messages_per_sec = a
        .max_messages_per_sec
        .unwrap_or(cfg.lns.max_messages_per_sec);
    let running = stationkeeper::startup::spawn(cfg)
        .await
        .map_err(|e| format!("start-up: {e}"))?;
    let app = running.app.clone();
    eprintln!(
        "lns-load server: stationkeeper up (lns {}, api {}), pid {}",
        running.lns_addr,
        running.api_addr,
        std::process::id()
    );
    say(format!("STARTED pid={} {}", std::process::id(), mem_line()));

    let mut reg_secs = 0.0;
    if a.register {
        reg_secs = register_all(&a, &running, base).await?;
    }
    let gateways = app
        .store
        .count_gateways()
        .await
        .map_err(|e| format!("store: {e}"))?;
    say(format!(
        "READY gateways={gateways} register_secs={reg_secs:.2} sessions={} {}",
        app.lns.connected().len(),
        mem_line()
    ));

    let dl = Downlink {
        dev_eui: 0x0016_C001_FF00_F001,
        pdu: (0..a.pdu_len).map(|i| i as u8).collect(),
        timing: Timing::ClassCNow {
            dr: a.dr,
            freq: a.freq,
        },
        priority: 0,
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut round = 0;
    let api = ApiClient::new(
        &format!("http://{}", running.api_addr),
        API_TOKEN.into(),
        None,
    )
    .map_err(|e| format!("API client: {e}"))?;
    // The FUOTA task started by `fuota`, and when that command was given.
    let mut task: Option<(String, Instant)> = None;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => return Err(format!("stdin: {e}")),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["rss"] => say(format!(
                "RSS sessions={} {}",
                app.lns.connected().len(),
                mem_line()
            )),
            ["wait", n, secs] => {
                let n: usize = n.parse().unwrap_or(0);
                let secs: f64 = secs.parse().unwrap_or(60.0);
                let t = Instant::now();
                while app.lns.connected().len() != n && t.elapsed().as_secs_f64() < secs {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                say(format!(
                    "WAITED sessions={} secs={:.2}",
                    app.lns.connected().len(),
                    t.elapsed().as_secs_f64()
                ));
            }
            ["waitsync", n, secs] => {
                let n: usize = n.parse().unwrap_or(0);
                let secs: f64 = secs.parse().unwrap_or(60.0);
                let t = Instant::now();
                let mut s = sync_counts(&app);
                while s.2 < n && t.elapsed().as_secs_f64() < secs {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    s = sync_counts(&app);
                }
                let (sessions, gps, both, anchored) = s;
                say(format!(
                    "SYNCED sessions={sessions} gps={gps} anchored={anchored} gps_and_anchored={both} secs={:.2}",
                    t.elapsed().as_secs_f64()
                ));
            }
            ["fanout"] => {
                round += 1;
                say(fanout(&app, &dl, round).await);
            }
            ["fuota", bytes] => match bytes.parse::<usize>() {
                Ok(bytes) => {
                    let at = Instant::now();
                    let (id, line) = fuota(&api, &a.state, bytes, a.fuota_start_in).await;
                    if let Some(id) = id {
                        task = Some((id, at));
                    }
                    say(line);
                }
                Err(e) => eprintln!("lns-load server: fuota {bytes:?}: {e}"),
            },
            ["progress"] => match &task {
                Some((id, at)) => say(progress(&api, id, *at).await),
                None => say("FUOTA_PROGRESS ok=0 error=no FUOTA task started".into()),
            },
            ["devices", ..] | ["devstats"] => say(devices::command(&app, &api, &words).await),
            ["quit"] => break,
            other => eprintln!(
                "lns-load server: unknown command {other:?} (rss | wait N SECS | waitsync N SECS | fanout | fuota BYTES | progress | quit)"
            ),
        }
    }
    running.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), running.done).await;
    say("BYE".into());
    Ok(())
}

/// Registers `a.n` gateways through the operator API, as an operator would, and
/// writes their tokens; returns the seconds it took.
async fn register_all(
    a: &ServerArgs,
    running: &stationkeeper::startup::Running,
    base: u64,
) -> Result<f64, String> {
    let out = a
        .tokens_out
        .clone()
        .expect("clap: --register requires --tokens-out");
    // Registration through the operator API, as an operator would do it.
    let t0 = Instant::now();
    let api = Arc::new(
        ApiClient::new(
            &format!("http://{}", running.api_addr),
            API_TOKEN.into(),
            None,
        )
        .map_err(|e| format!("API client: {e}"))?,
    );
    let sem = Arc::new(Semaphore::new(a.register_concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let lorawan: Value =
        serde_json::from_str(&a.gw_lorawan).map_err(|e| format!("--gw-lorawan: {e}"))?;
    for i in 0..a.n {
        let (api, mut lorawan) = (api.clone(), lorawan.clone());
        let sem = sem.clone();
        let eui = Eui(base + i as u64);
        lorawan["GatewayEui"] = eui.to_string().into();
        set.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore");
            register(&api, eui, lorawan).await.map(|t| (i, eui, t))
        });
    }
    let mut tokens = vec![None; a.n];
    while let Some(r) = set.join_next().await {
        let (i, eui, token) = r.map_err(|e| format!("registration task: {e}"))??;
        tokens[i] = Some((eui, token));
    }
    let text: String = tokens
        .iter()
        .flatten()
        .map(|(eui, t)| format!("{eui} {t}\n"))
        .collect();
    std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    let reg_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "lns-load server: registered {} gateways in {reg_secs:.1} s; tokens in {}",
        a.n,
        out.display()
    );
    Ok(reg_secs)
}

/// Creates one gateway and an LNS token for it; returns the token.
async fn register(api: &ApiClient, eui: Eui, lorawan: Value) -> Result<String, String> {
    use hyper::Method;
    let created = api
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(json!({ "LoRaWAN": lorawan })),
        )
        .await
        .map_err(|e| format!("create {eui}: {e}"))?;
    let id = created["Id"]
        .as_str()
        .ok_or_else(|| format!("create {eui}: no Id in {created}"))?;
    let issued = api
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": "LNS", "Kind": "Token"})),
        )
        .await
        .map_err(|e| format!("credentials {eui}: {e}"))?;
    let key = issued["Files"]["tc.key"]
        .as_str()
        .ok_or_else(|| format!("credentials {eui}: no Files[\"tc.key\"] in {issued}"))?;
    key.strip_prefix("Authorization: Bearer ")
        .and_then(|t| t.strip_suffix("\r\n"))
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
        .map(str::to_string)
        .ok_or_else(|| format!("credentials {eui}: tc.key is not one bearer header line: {key:?}"))
}

/// One downlink to every connected gateway at once; waits for every outcome.
async fn fanout(app: &App, dl: &Downlink, round: u32) -> String {
    let euis = app.lns.connected();
    let cpu0 = cpu_ms();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for eui in euis.iter().copied() {
        let app = app.clone();
        let dl = dl.clone();
        set.spawn(async move {
            let r = app.lns.send(eui, dl).await;
            (t0.elapsed(), r)
        });
    }
    let spawned = t0.elapsed();
    let mut done = Vec::with_capacity(euis.len());
    let (mut not_confirmed, mut gone, mut panicked) = (0u64, 0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_any = Duration::ZERO;
    while let Some(r) = set.join_next().await {
        match r {
            Ok((at, outcome)) => {
                last_any = last_any.max(at);
                match outcome {
                    Ok(Outcome::Transmitted(_)) => done.push(at),
                    Ok(Outcome::NotConfirmed) => not_confirmed += 1,
                    Ok(Outcome::GatewayGone) => gone += 1,
                    Err(e) => *errors.entry(e.to_string()).or_default() += 1,
                }
            }
            Err(_) => panicked += 1,
        }
    }
    let total = t0.elapsed();
    let cpu = cpu_ms() - cpu0;
    done.sort_unstable();
    let errs: u64 = errors.values().sum();
    for (e, n) in &errors {
        eprintln!("lns-load server: fanout {round}: {n} × error: {e}");
    }
    format!(
        "FANOUT round={round} gateways={} transmitted={} not_confirmed={not_confirmed} gateway_gone={gone} errors={errs} panicked={panicked} \
         spawn_ms={} p50_ms={} p99_ms={} max_ms={} all_outcomes_ms={} cpu_ms={cpu} {}",
        euis.len(),
        done.len(),
        ms(spawned),
        ms(pct(&done, 0.5)),
        ms(pct(&done, 0.99)),
        ms(done.last().copied().unwrap_or_default()),
        ms(total.max(last_any)),
        mem_line()
    )
}

/// Open sessions: (all, with GPS time, with GPS time and a time anchor, anchored).
fn sync_counts(app: &App) -> (usize, usize, usize, usize) {
    let euis = app.lns.connected();
    let (mut gps, mut both, mut anchored) = (0, 0, 0);
    for e in &euis {
        if let Some(c) = app.lns.connection(*e) {
            gps += usize::from(c.stats.gps);
            anchored += usize::from(c.stats.anchored);
            both += usize::from(c.stats.gps && c.stats.anchored);
        }
    }
    (euis.len(), gps, both, anchored)
}

/// `v[key]` as a `key=value` field: strings without quotes, absent as `na`.
fn kv(name: &str, v: &Value) -> String {
    match v {
        Value::Null => format!("{name}=na"),
        Value::String(s) => format!("{name}={s}"),
        other => format!("{name}={other}"),
    }
}

/// A single-line, field-safe version of a free text (it goes last on its line).
fn text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The plan's key numbers as `key=value` fields.
fn plan_fields(plan: &Value) -> String {
    [
        ("gateways", "Gateways"),
        ("total_fragments", "TotalFragments"),
        ("uncoded", "UncodedFragments"),
        ("coded", "CodedFragments"),
        ("bytes_per_frame", "BytesPerFrame"),
        ("time_on_air_ms", "TimeOnAirMs"),
        ("frame_spacing_ms", "FrameSpacingMs"),
        ("slots_per_round", "SlotsPerRound"),
        ("wall_time_s", "WallTimeS"),
        ("min_wall_time_s", "MinWallTimeS"),
        ("estimated_start", "EstimatedStart"),
        ("estimated_finish", "EstimatedFinish"),
        ("session_end", "SessionEndTime"),
        ("fits_session", "FitsSession"),
    ]
    .iter()
    .map(|(k, j)| kv(k, &plan[*j]))
    .collect::<Vec<_>>()
    .join(" ")
}

/// `fuota BYTES`: group, session, image, task, association and start, all
/// through the operator API. Returns the started task's Id and the `FUOTA` line.
async fn fuota(
    api: &ApiClient,
    state: &Path,
    bytes: usize,
    start_in: i64,
) -> (Option<String>, String) {
    use hyper::Method;
    let t0 = Instant::now();
    let cpu0 = cpu_ms();
    let fail = |step: &str, plan: &str, e: String| {
        format!(
            "FUOTA ok=0 bytes={bytes} step={step} {plan} {} error={}",
            mem_line(),
            text(&e)
        )
    };
    // The image goes to a file and is streamed from there (as `stationkeeper
    // blobs upload` does), so this process never holds it whole.
    let file = state.join(format!("fuota-image-{bytes}.bin"));
    if let Err(e) = write_random(&file, bytes) {
        return (None, fail("image", "", format!("{}: {e}", file.display())));
    }
    let blob = match api.upload("/blobs", &file, |_| {}).await {
        Ok(b) => b["Id"].as_str().unwrap_or_default().to_string(),
        Err(e) => return (None, fail("upload", "", e)),
    };
    let after_upload = proc_status().get("VmRSS").copied().unwrap_or(0);
    let mc_key = hex::encode(rand::random::<[u8; 16]>());
    let group = match api
        .call(
            Method::POST,
            "/multicast-groups",
            Some(json!({"Name": "bench", "LoRaWAN": {
                "RfRegion": "EU868", "DlClass": "ClassC",
                "McAddr": "01020304", "McKey": mc_key}})),
        )
        .await
    {
        Ok(g) => g["Id"].as_str().unwrap_or_default().to_string(),
        Err(e) => return (None, fail("group", "", e)),
    };
    let session_start = stationkeeper::app::format_unix_us(
        stationkeeper::lorawan::gps::unix_now_us() + start_in * 1_000_000,
    );
    if let Err(e) = api
        .call(
            Method::PUT,
            &format!("/multicast-groups/{group}/session"),
            Some(json!({"LoRaWAN": {"DlDr": 5, "DlFreq": 869_525_000,
                "SessionStartTime": session_start, "SessionTimeout": 32768}})),
        )
        .await
    {
        return (None, fail("session", "", e));
    }
    let task = match api
        .call(
            Method::POST,
            "/fuota-tasks",
            Some(json!({"Name": "bench", "LoRaWAN": {"RfRegion": "EU868"},
                "FirmwareUpdateImage": blob, "RedundancyPercent": 10,
                "FragmentSizeBytes": 239})),
        )
        .await
    {
        Ok(t) => t["Id"].as_str().unwrap_or_default().to_string(),
        Err(e) => return (None, fail("task", "", e)),
    };
    if let Err(e) = api
        .call(
            Method::PUT,
            &format!("/fuota-tasks/{task}/multicast-group"),
            Some(json!({"MulticastGroupId": group})),
        )
        .await
    {
        return (None, fail("associate", "", e));
    }
    // The plan as the operator sees it before starting (gateway slots included).
    let before = api
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
        .map(|t| plan_fields(&t["Plan"]))
        .unwrap_or_default();
    if let Err(e) = api
        .call(
            Method::PUT,
            &format!("/fuota-tasks/{task}"),
            Some(json!({"LoRaWAN": {}})),
        )
        .await
    {
        return (None, fail("start", &before, e));
    }
    let setup_ms = ms(t0.elapsed());
    let cpu = cpu_ms() - cpu0;
    let line = match api
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
    {
        Ok(t) => format!(
            "FUOTA ok=1 task={task} group={group} bytes={bytes} {} status={} setup_ms={setup_ms} cpu_ms_setup={cpu} rss_after_upload_kib={after_upload} {}",
            plan_fields(&t["Plan"]),
            t["Status"].as_str().unwrap_or("?"),
            mem_line()
        ),
        Err(e) => fail("get", &before, e),
    };
    (Some(task), line)
}

/// BYTES random bytes in `path`, written in 64 KiB pieces.
fn write_random(path: &Path, bytes: usize) -> std::io::Result<()> {
    use rand::RngCore;
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len());
        rand::thread_rng().fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// `progress`: the task's counts from `GET /fuota-tasks/{Id}`.
async fn progress(api: &ApiClient, task: &str, since: Instant) -> String {
    let t_s = since.elapsed().as_secs_f64();
    match api
        .call(hyper::Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
    {
        Ok(t) => {
            let p = &t["Progress"];
            let gws = p["Gateways"].as_array().map_or(&[][..], |v| v.as_slice());
            let done = gws.iter().filter(|g| g["Done"] == true).count();
            let next_min = gws.iter().filter_map(|g| g["NextFragment"].as_u64()).min();
            let next_max = gws.iter().filter_map(|g| g["NextFragment"].as_u64()).max();
            let connected = gws
                .iter()
                .filter(|g| g["ConnectionStatus"] == "Connected")
                .count();
            format!(
                "FUOTA_PROGRESS ok=1 t_s={t_s:.1} status={} sent={} confirmed={} failed={} fragments_per_gateway={} gateways={} connected={connected} gateways_done={done} next_fragment_min={} next_fragment_max={} {} {} reason={}",
                t["Status"].as_str().unwrap_or("?"),
                p["Sent"],
                p["Confirmed"],
                p["Failed"],
                p["FragmentsPerGateway"],
                gws.len(),
                next_min.map_or("na".into(), |n| n.to_string()),
                next_max.map_or("na".into(), |n| n.to_string()),
                kv("slots_per_round", &p["SlotsPerRound"]),
                kv("estimated_finish", &p["EstimatedFinish"]),
                text(t["StatusReason"].as_str().unwrap_or(""))
            )
        }
        Err(e) => format!("FUOTA_PROGRESS ok=0 t_s={t_s:.1} error={}", text(&e)),
    }
}

// ------------------------------------------------------------------ clients mode

#[derive(Default)]
struct Counters {
    established: AtomicU64,
    failed: AtomicU64,
    /// Established connections that ended before we quit.
    dropped: AtomicU64,
    dnmsg: AtomicU64,
    dntxed: AtomicU64,
    pings: AtomicU64,
    getxtime: AtomicU64,
    /// `timesync` requests sent (--pps).
    timesync_sent: AtomicU64,
    /// `timesync` messages from the server (replies and pushes).
    timesync: AtomicU64,
    other: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    drops: Mutex<BTreeMap<String, u64>>,
    setup: Mutex<Vec<Duration>>,
}

impl Counters {
    fn note(map: &Mutex<BTreeMap<String, u64>>, why: String) {
        // Group by reason without the per-connection details.
        let key: String = why.chars().take(120).collect();
        *map.lock().unwrap().entry(key).or_default() += 1;
    }

    fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "established={} failed={} dropped={} dnmsg={} dntxed={} pings={} getxtime={} timesync_sent={} timesync={} other={}",
            g(&self.established),
            g(&self.failed),
            g(&self.dropped),
            g(&self.dnmsg),
            g(&self.dntxed),
            g(&self.pings),
            g(&self.getxtime),
            g(&self.timesync_sent),
            g(&self.timesync),
            g(&self.other)
        )
    }
}

fn client_config(a: &ClientArgs) -> Result<ClientConfig, String> {
    let pem = std::fs::read(&a.ca).map_err(|e| format!("{}: {e}", a.ca.display()))?;
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate", a.ca.display()));
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if a.kx == Kx::Station {
        use rustls::crypto::ring::kx_group;
        provider.kx_groups = vec![kx_group::SECP384R1, kx_group::SECP256R1, kx_group::X25519];
    }
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // station makes a full handshake on every connect
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

struct Target {
    addr: SocketAddr,
    host: String,
    sni: ServerName<'static>,
    tls: TlsConnector,
    setup_timeout: Duration,
    tx_delay: Duration,
    pps: bool,
    /// Connections per negotiated key-exchange group.
    kx: Mutex<BTreeMap<String, u64>>,
}

async fn clients(a: ClientArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let gws: Vec<(u64, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(a.n)
        .map(|l| {
            let (e, t) = l.split_once(' ').ok_or_else(|| format!("bad line {l:?}"))?;
            let eui = u64::from_str_radix(e, 16).map_err(|err| format!("bad EUI {e:?}: {err}"))?;
            Ok((eui, t.trim().to_string()))
        })
        .collect::<Result<_, String>>()?;
    if gws.len() < a.n {
        return Err(format!(
            "{} has {} gateways, --n is {}",
            a.file.display(),
            gws.len(),
            a.n
        ));
    }
    let target = Arc::new(Target {
        addr: a.addr,
        host: format!("{}:{}", a.sni, a.addr.port()),
        sni: ServerName::try_from(a.sni.clone()).map_err(|e| e.to_string())?,
        tls: TlsConnector::from(Arc::new(client_config(&a)?)),
        setup_timeout: Duration::from_secs_f64(a.timeout),
        tx_delay: Duration::from_millis(a.tx_delay_ms),
        pps: a.pps,
        kx: Mutex::default(),
    });
    if a.dev.devices > 0 {
        return devices::clients(a, gws, target).await;
    }
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (setup_tx, mut setup_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut tasks = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    for (eui, token) in gws {
        let (target, counters, stop, sem, setup_tx) = (
            target.clone(),
            counters.clone(),
            stop.clone(),
            sem.clone(),
            setup_tx.clone(),
        );
        tasks.spawn(async move {
            station(eui, token, &target, &counters, &stop, &sem, setup_tx).await;
        });
    }
    drop(setup_tx);
    // Every connection reports once when its set-up ends (either way).
    let mut reported = 0;
    while reported < a.n {
        if setup_rx.recv().await.is_none() {
            break;
        }
        reported += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut setup = std::mem::take(&mut *counters.setup.lock().unwrap());
    setup.sort_unstable();
    for (why, n) in counters.failures.lock().unwrap().iter() {
        eprintln!("lns-load clients: {n} × set-up failed: {why}");
    }
    let ok = counters.established.load(Ordering::Relaxed);
    say(format!(
        "CONNECTED n={} ok={ok} failed={} secs={secs:.2} rate={:.0} setup_p50_ms={} setup_p99_ms={} setup_max_ms={} concurrency={} kx={} {}",
        a.n,
        counters.failed.load(Ordering::Relaxed),
        ok as f64 / secs,
        ms(pct(&setup, 0.5)),
        ms(pct(&setup, 0.99)),
        ms(setup.last().copied().unwrap_or_default()),
        a.concurrency,
        target
            .kx
            .lock()
            .unwrap()
            .iter()
            .map(|(g, n)| format!("{g}:{n}"))
            .collect::<Vec<_>>()
            .join(","),
        mem_line()
    ));

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let hold = tokio::time::sleep(Duration::from_secs(a.hold_max));
    tokio::pin!(hold);
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l { Ok(Some(l)) => l, _ => break },
            _ = &mut hold => { eprintln!("lns-load clients: --hold-max reached"); break }
        };
        match line.trim() {
            "" => {}
            "stats" => say(format!("CLIENTS {} {}", counters.line(), mem_line())),
            "quit" => break,
            other => eprintln!("lns-load clients: unknown command {other:?} (stats | quit)"),
        }
    }
    for (why, n) in counters.drops.lock().unwrap().iter() {
        eprintln!("lns-load clients: {n} × established connection ended: {why}");
    }
    say(format!("CLIENTS final {} {}", counters.line(), mem_line()));
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// One gateway: set up (bounded by the semaphore and the timeout), report, then
/// serve the connection until it ends or we stop.
async fn station(
    eui: u64,
    token: String,
    t: &Target,
    c: &Counters,
    stop: &CancellationToken,
    sem: &Semaphore,
    setup_done: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let permit = sem.acquire().await.expect("semaphore");
    let start = Instant::now();
    let r = tokio::select! {
        r = tokio::time::timeout(t.setup_timeout, connect(eui, &token, t)) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("set-up timed out after {:?}", t.setup_timeout)),
        },
        _ = stop.cancelled() => Err("stopped".into()),
    };
    drop(permit);
    let mut ws = match r {
        Ok(ws) => {
            c.setup.lock().unwrap().push(start.elapsed());
            c.established.fetch_add(1, Ordering::Relaxed);
            let _ = setup_done.send(());
            ws
        }
        Err(e) => {
            Counters::note(&c.failures, e);
            c.failed.fetch_add(1, Ordering::Relaxed);
            let _ = setup_done.send(());
            return;
        }
    };
    drop(setup_done);
    let end = tokio::select! {
        r = serve(&mut ws, eui, t, c) => Some(r),
        _ = stop.cancelled() => None,
    };
    match end {
        Some(why) => {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            Counters::note(&c.drops, why);
        }
        None => {
            // Station answers/initiates close with 1000.
            let _ =
                tokio::time::timeout(Duration::from_secs(2), ws.send(0x8, &1000u16.to_be_bytes()))
                    .await;
        }
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// TCP + TLS 1.2 + upgrade + version, until router_config.
async fn connect(eui: u64, token: &str, t: &Target) -> Result<Ws<Tls>, String> {
    let tcp = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = t
        .tls
        .connect(t.sni.clone(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let kx = tls.get_ref().1.negotiated_key_exchange_group();
    *t.kx
        .lock()
        .unwrap()
        .entry(kx.map_or_else(|| "none".into(), |g| format!("{:?}", g.name())))
        .or_default() += 1;
    let mut ws = Ws {
        io: tls,
        buf: Vec::new(),
    };
    // Exactly station's request (net.c), with the tc.key header line appended.
    let req = format!(
        "GET /traffic/{eui:016x} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n",
        t.host
    );
    ws.io
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("upgrade write: {e}"))?;
    ws.io
        .flush()
        .await
        .map_err(|e| format!("upgrade write: {e}"))?;
    loop {
        if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&ws.buf[..end]).to_string();
            let status = head.lines().next().unwrap_or("").to_string();
            if !status.starts_with("HTTP/1.1 101") {
                let body = String::from_utf8_lossy(&ws.buf[end + 4..]).to_string();
                return Err(format!("upgrade refused: {status} {body}"));
            }
            ws.buf.drain(..end + 4);
            break;
        }
        if ws.buf.len() > 8192 {
            return Err("upgrade answer headers over 8 KiB".into());
        }
        ws.fill().await.map_err(|e| format!("upgrade read: {e}"))?;
    }
    let version = r#"{"msgtype":"version","station":"2.0.6(linux/std)","firmware":"1.0.0","package":"1.0.0","model":"linux","protocol":2,"features":""}"#;
    ws.send(0x1, version.as_bytes())
        .await
        .map_err(|e| format!("version write: {e}"))?;
    loop {
        let (op, payload) = ws.recv().await?;
        match op {
            0x1 => {
                let v: Value = serde_json::from_slice(&payload)
                    .map_err(|e| format!("non-JSON text before router_config: {e}"))?;
                match v["msgtype"].as_str() {
                    Some("router_config") => {
                        ws.shrink();
                        return Ok(ws);
                    }
                    Some("error") => return Err(format!("server error: {}", v["error"])),
                    other => return Err(format!("{other:?} before router_config")),
                }
            }
            0x8 => {
                return Err(format!(
                    "closed before router_config: {}",
                    close_reason(&payload)
                ))
            }
            0x9 => ws
                .send(0xA, &payload)
                .await
                .map_err(|e| format!("pong: {e}"))?,
            _ => {}
        }
    }
}

fn close_reason(p: &[u8]) -> String {
    if p.len() >= 2 {
        format!(
            "code {} {:?}",
            u16::from_be_bytes([p[0], p[1]]),
            String::from_utf8_lossy(&p[2..])
        )
    } else {
        "no code".into()
    }
}

/// Serves an established connection; returns why it ended.
async fn serve(ws: &mut Ws<Tls>, _eui: u64, t: &Target, c: &Counters) -> String {
    let born = Instant::now();
    if t.pps {
        // A PPS gateway that does not know the GPS time yet asks for it right
        // after router_config (station keeps asking in bursts until a reply fits;
        // the server's first reply is enough here).
        let m = json!({"msgtype": "timesync", "txtime": born.elapsed().as_micros() as i64});
        if let Err(e) = ws.send(0x1, m.to_string().as_bytes()).await {
            return format!("timesync write: {e}");
        }
        c.timesync_sent.fetch_add(1, Ordering::Relaxed);
    }
    loop {
        let (op, payload) = match ws.recv().await {
            Ok(f) => f,
            Err(e) => return e,
        };
        match op {
            0x9 => {
                c.pings.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = ws.send(0xA, &payload).await {
                    return format!("pong: {e}");
                }
            }
            0x8 => return format!("server closed: {}", close_reason(&payload)),
            0x1 => {
                let Ok(v) = serde_json::from_slice::<Value>(&payload) else {
                    c.other.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let reply = match v["msgtype"].as_str() {
                    Some("dnmsg") => {
                        c.dnmsg.fetch_add(1, Ordering::Relaxed);
                        if !t.tx_delay.is_zero() {
                            tokio::time::sleep(t.tx_delay).await;
                        }
                        let diid = v["diid"].as_i64().unwrap_or(0);
                        let xtime = (1i64 << 48) | born.elapsed().as_micros() as i64;
                        Some(json!({
                            "msgtype": "dntxed", "seqno": diid, "diid": diid,
                            "DR": v.get("RX2DR").or(v.get("DR")).cloned().unwrap_or(json!(0)),
                            "Freq": v.get("RX2Freq").or(v.get("Freq")).cloned().unwrap_or(json!(869_525_000)),
                            "DevEui": v["DevEui"], "rctx": 0, "xtime": xtime,
                            "txtime": born.elapsed().as_secs_f64(), "gpstime": 0,
                        }))
                    }
                    Some("getxtime") => {
                        c.getxtime.fetch_add(1, Ordering::Relaxed);
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs_f64();
                        let xtime = (1i64 << 48) | born.elapsed().as_micros() as i64;
                        Some(json!({
                            "msgtype": "getxtime", "MuxTime": v["MuxTime"],
                            "ustime": born.elapsed().as_secs_f64(), "UTCtime": now,
                            "xtimes": [xtime, 0, 0, 0],
                        }))
                    }
                    Some("timesync") => {
                        c.timesync.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    _ => {
                        c.other.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                };
                if let Some(r) = reply {
                    let is_dntxed = r["msgtype"] == "dntxed";
                    if let Err(e) = ws.send(0x1, r.to_string().as_bytes()).await {
                        return format!("write: {e}");
                    }
                    if is_dntxed {
                        c.dntxed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {
                c.other.fetch_add(1, Ordering::Relaxed);
            }
        }
        ws.shrink();
    }
}

/// Station's side of a WebSocket: masked unfragmented frames out, strict frame
/// checks in.
struct Ws<S> {
    io: S,
    /// Received bytes not yet consumed.
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ws<S> {
    async fn fill(&mut self) -> std::io::Result<()> {
        self.buf.reserve(2048);
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(())
    }

    /// Releases the buffer between messages so idle connections stay small.
    fn shrink(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// The next frame: (opcode, payload). Violations of station's rules are errors.
    async fn recv(&mut self) -> Result<(u8, Vec<u8>), String> {
        loop {
            if self.buf.len() >= 2 {
                let (b0, b1) = (self.buf[0], self.buf[1]);
                if b0 & 0x80 == 0 {
                    return Err("Illegal WS frame: fragmented (FIN clear)".into());
                }
                if b0 & 0x70 != 0 {
                    return Err("Illegal WS frame: RSV bits set".into());
                }
                if b1 & 0x80 != 0 {
                    return Err("Illegal WS frame: masked frame from server".into());
                }
                let (hdr, len) = match b1 & 0x7f {
                    127 => return Err("Illegal WS frame: 64-bit length".into()),
                    126 if self.buf.len() >= 4 => {
                        (4, u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize)
                    }
                    126 => (4, usize::MAX),
                    n => (2, n as usize),
                };
                if len != usize::MAX {
                    if hdr + len > TC_RECV_BUFFER_SIZE {
                        return Err(format!(
                            "Illegal WS frame: {len} bytes exceed station's 40 KiB buffer"
                        ));
                    }
                    if self.buf.len() >= hdr + len {
                        let payload = self.buf[hdr..hdr + len].to_vec();
                        self.buf.drain(..hdr + len);
                        return Ok((b0 & 0x0f, payload));
                    }
                }
            }
            self.fill().await.map_err(|e| format!("read: {e}"))?;
        }
    }

    async fn send(&mut self, op: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut f = Vec::with_capacity(payload.len() + 8);
        f.push(0x80 | op);
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        self.io.write_all(&f).await?;
        self.io.flush().await
    }
}
