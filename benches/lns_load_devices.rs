//! `lns-load` with end devices (issue 14's figures): simulated OTAA devices behind
//! the simulated gateways, so the device face runs end to end — LNS, dedup, join
//! server, uplink handling, class A answer, `Lns::send`.
//!
//! * Server commands (in `lns-load server`): `devices N REGION [MACVERSION]` creates
//!   one device profile and N OTAA devices through the operator API, as an operator
//!   would (DevEui base + i, the AppKey a function of the DevEui, see `app_key`),
//!   printing `DEVICES`; `devstats` prints the device face's counters (`DEVSTATS`,
//!   with the dedup window and this process's RSS and CPU).
//! * `lns-load clients --devices N`: the stations of `lns-load clients`, plus N
//!   devices. Commands on stdin: `join RATE` (every device not yet joined sends a
//!   join-request through one gateway, RATE per second; the join-accept in the
//!   `dnmsg` is decrypted and MIC-checked with lrwn and gives DevAddr and session
//!   keys; unanswered devices retry with a new DevNonce; prints `JOINED`), `run RATE
//!   SECS` (confirmed uplinks at RATE per second in total, round robin over the
//!   joined devices, each sent as the same `updf` through `--copies` gateways one
//!   after the other; every answer `dnmsg` is matched to its device by DevEui,
//!   MIC-checked, must carry ACK, and its MAC requests are answered in the device's
//!   next uplink; prints `RUN`), `stats`, `quit`.
//!
//! Latency is measured in the clients: from writing the last copy of an uplink to
//! reading its `dnmsg` off the socket. It includes the server's dedup window (a
//! deliberate wait opened by the first copy) and loopback TLS both ways.
//!
//! The simulator uses lrwn for frames and crypto: this is a benchmark, not a test
//! (tests/devices.rs has the independent device).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lrwn::{
    keys, AES128Key, DevAddr, FCtrl, FRMPayload, FType, JoinType, MACCommand, MACCommandSet,
    MACPayload, MACVersion, Major, Payload, PhyPayload, EUI64, FHDR, MHDR,
};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{connect, cpu_ms, mem_line, ms, pct, say, ClientArgs, Target, Tls, Ws};
use stationkeeper::app::App;
use stationkeeper::cli::ApiClient;

/// The devices' JoinEUI.
const JOIN_EUI: u64 = 0x70b3_d57e_d0ff_0001;
/// First frequency of US915 sub-band 2 (channel 8); channels are 200 kHz apart.
const SB2_FIRST_HZ: u32 = 903_900_000;

/// A device's AppKey: a fixed half and its DevEui, so both processes know it.
fn app_key(dev_eui: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&0x2b7e_1516_28ae_d2a6u64.to_be_bytes());
    k[8..].copy_from_slice(&dev_eui.to_be_bytes());
    k
}

#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    /// Simulate this many devices behind the gateways (0: plain stations).
    #[arg(long, default_value_t = 0)]
    pub devices: usize,
    /// Gateways hearing each uplink (distinct, spread over all of them).
    #[arg(long, default_value_t = 3)]
    copies: usize,
    /// DevEui of device 0 (hex); device i is base + i (as `devices` created them).
    #[arg(long, default_value = "0080e1150b000000")]
    dev_eui_base: String,
    /// Uplink data rate (US915 DR0..DR3 on the 125 kHz channels of sub-band 2;
    /// RX1 is DR+10 on 500 kHz, so DR3 keeps each answer ~9 ms on air).
    #[arg(long, default_value_t = 3)]
    up_dr: u8,
    /// Seconds a device waits for its join-accept before trying again.
    #[arg(long, default_value_t = 8)]
    join_timeout: u64,
    /// Seconds to wait for the last answers after `run` stops sending.
    #[arg(long, default_value_t = 3)]
    grace: u64,
}

// ------------------------------------------------------------------ server side

/// `devices N REGION [MACVERSION]` and `devstats`.
pub async fn command(app: &App, api: &ApiClient, words: &[&str]) -> String {
    match words {
        ["devstats"] => devstats(app),
        ["devices", n, region, rest @ ..] => match n.parse::<usize>() {
            Ok(n) => create_devices(
                api,
                app.config.api.listen,
                n,
                region,
                rest.first().copied().unwrap_or("1.0.3"),
            )
            .await
            .unwrap_or_else(|e| format!("DEVICES ok=0 {} error={}", mem_line(), super::text(&e))),
            Err(e) => format!("DEVICES ok=0 error=N: {e}"),
        },
        _ => "DEVICES ok=0 error=usage: devices N REGION [MACVERSION] | devstats".into(),
    }
}

fn devstats(app: &App) -> String {
    let counters: Vec<String> = app
        .devices
        .counters
        .snapshot()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "DEVSTATS {} dedup_window_ms={} workers={} {}",
        counters.join(" "),
        app.config.lorawan.dedup_window_ms,
        app.config.lorawan.workers,
        mem_line()
    )
}

/// One device profile and `n` OTAA devices through the operator API, 16 at once.
async fn create_devices(
    api: &ApiClient,
    listen: std::net::SocketAddr,
    n: usize,
    region: &str,
    mac_version: &str,
) -> Result<String, String> {
    use hyper::Method;
    let t0 = Instant::now();
    let profile = api
        .call(
            Method::POST,
            "/device-profiles",
            Some(json!({"Name": "bench", "LoRaWAN": {
                "MacVersion": mac_version, "RfRegion": region, "SupportsJoin": true}})),
        )
        .await
        .map_err(|e| format!("device profile: {e}"))?["Id"]
        .as_str()
        .ok_or("device profile: no Id")?
        .to_owned();
    let base = u64::from_str_radix("0080e1150b000000", 16).expect("constant");
    // ApiClient is not Clone: one of our own for the tasks.
    let api = Arc::new(
        ApiClient::new(&format!("http://{listen}"), super::API_TOKEN.into(), None)
            .map_err(|e| format!("API client: {e}"))?,
    );
    let sem = Arc::new(Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (api, sem, profile) = (api.clone(), sem.clone(), profile.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore");
            let eui = base + i as u64;
            api.call(
                Method::POST,
                "/wireless-devices",
                Some(json!({
                    "Type": "LoRaWAN", "DestinationName": "bench", "Name": format!("d{i}"),
                    "LoRaWAN": {"DevEui": format!("{eui:016x}"), "DeviceProfileId": profile,
                        "OtaaV1_0_x": {"AppKey": hex::encode(app_key(eui)),
                                       "JoinEui": format!("{JOIN_EUI:016x}")}}
                })),
            )
            .await
            .map_err(|e| format!("device {eui:016x}: {e}"))
        });
    }
    let mut created = 0;
    while let Some(r) = set.join_next().await {
        r.map_err(|e| format!("device task: {e}"))??;
        created += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(format!(
        "DEVICES ok=1 n={n} created={created} region={region} mac_version={mac_version} profile={profile} secs={secs:.2} rate={:.0} {}",
        created as f64 / secs,
        mem_line()
    ))
}

// ------------------------------------------------------------------ client side

/// A device's session, from its join-accept.
struct Session {
    dev_addr: u32,
    nwk_s_key: AES128Key,
    app_s_key: AES128Key,
}

/// An uplink waiting for its answer.
struct Waiting {
    /// When the first and the last copy were written to their gateways.
    first: Option<Instant>,
    last: Option<Instant>,
    written: usize,
}

#[derive(Default)]
struct Dev {
    session: Option<Session>,
    dev_nonce: u16,
    /// The join-request in flight: when its copy was written.
    joining: Option<Option<Instant>>,
    fcnt_up: u32,
    waiting: Option<Waiting>,
    /// MAC answers for the next uplink's FOpts.
    answers: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    joins_sent: AtomicU64,
    join_accepts: AtomicU64,
    ups_sent: AtomicU64,
    answered: AtomicU64,
    /// Uplinks whose device sent again (or the run ended) before an answer came.
    missed: AtomicU64,
    /// Answers without ACK, with a bad MIC, or not for the device's DevAddr.
    bad: AtomicU64,
    /// `dnmsg`s for no waiting uplink or join (e.g. after it was counted missed).
    unmatched: AtomicU64,
    dnmsg: AtomicU64,
    mac_requests: AtomicU64,
    write_failed: AtomicU64,
}

impl Tally {
    fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "joins_sent={} join_accepts={} ups_sent={} answered={} missed={} bad={} unmatched={} dnmsg={} mac_requests={} write_failed={}",
            g(&self.joins_sent),
            g(&self.join_accepts),
            g(&self.ups_sent),
            g(&self.answered),
            g(&self.missed),
            g(&self.bad),
            g(&self.unmatched),
            g(&self.dnmsg),
            g(&self.mac_requests),
            g(&self.write_failed)
        )
    }
}

/// A station message to write, and the device whose uplink it carries.
struct Out {
    text: String,
    dev: usize,
}

struct Sim {
    base: u64,
    copies: usize,
    up_dr: u8,
    devs: Vec<Mutex<Dev>>,
    /// Per gateway: where its connection task takes messages to write.
    gws: Vec<mpsc::UnboundedSender<Out>>,
    tally: Tally,
    /// Last copy written -> answer read, for uplinks; copy written -> accept read, for joins.
    up_lat: Mutex<Vec<Duration>>,
    join_lat: Mutex<Vec<Duration>>,
    /// First copy written -> last copy written.
    spread: Mutex<Vec<Duration>>,
    born: Instant,
}

pub async fn clients(
    a: ClientArgs,
    gws: Vec<(u64, String)>,
    target: Arc<Target>,
) -> Result<(), String> {
    let d = &a.dev;
    if d.copies == 0 || d.copies > gws.len() {
        return Err(format!(
            "--copies {} needs 1..={} gateways",
            d.copies,
            gws.len()
        ));
    }
    let base =
        u64::from_str_radix(&d.dev_eui_base, 16).map_err(|e| format!("--dev-eui-base: {e}"))?;
    let stop = CancellationToken::new();
    let t0 = Instant::now();
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let mut setups = tokio::task::JoinSet::new();
    for (i, (eui, token)) in gws.iter().cloned().enumerate() {
        let (target, sem) = (target.clone(), sem.clone());
        setups.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore");
            let start = Instant::now();
            let r = tokio::time::timeout(target.setup_timeout, connect(eui, &token, &target)).await;
            let r = r.unwrap_or_else(|_| Err("set-up timed out".into()));
            (i, r.map(|ws| (ws, start.elapsed())))
        });
    }
    let mut conns: Vec<Option<Ws<Tls>>> = (0..gws.len()).map(|_| None).collect();
    let mut setup = Vec::new();
    while let Some(r) = setups.join_next().await {
        let (i, r) = r.map_err(|e| format!("set-up task: {e}"))?;
        let (ws, took) = r.map_err(|e| format!("gateway {:016x}: {e}", gws[i].0))?;
        conns[i] = Some(ws);
        setup.push(took);
    }
    let secs = t0.elapsed().as_secs_f64();
    setup.sort_unstable();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..gws.len() {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        receivers.push(rx);
    }
    let sim = Arc::new(Sim {
        base,
        copies: d.copies,
        up_dr: d.up_dr,
        devs: (0..d.devices).map(|_| Mutex::new(Dev::default())).collect(),
        gws: senders,
        tally: Tally::default(),
        up_lat: Mutex::new(Vec::new()),
        join_lat: Mutex::new(Vec::new()),
        spread: Mutex::new(Vec::new()),
        born: Instant::now(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (ws, rx) in conns.into_iter().zip(receivers) {
        let ws = ws.expect("every gateway connected");
        let (sim, stop) = (sim.clone(), stop.clone());
        tasks.spawn(async move { gateway(ws, rx, &sim, &stop).await });
    }
    say(format!(
        "CONNECTED n={} ok={} failed=0 secs={secs:.2} rate={:.0} setup_p50_ms={} setup_p99_ms={} setup_max_ms={} devices={} {}",
        gws.len(),
        gws.len(),
        gws.len() as f64 / secs,
        ms(pct(&setup, 0.5)),
        ms(pct(&setup, 0.99)),
        ms(setup.last().copied().unwrap_or_default()),
        d.devices,
        mem_line()
    ));

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let hold = tokio::time::sleep(Duration::from_secs(a.hold_max));
    tokio::pin!(hold);
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l { Ok(Some(l)) => l, _ => break },
            _ = &mut hold => break,
            r = tasks.join_next() => {
                return Err(format!("a gateway connection ended: {}", r.and_then(|r| r.ok()).unwrap_or_default()));
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["join", rate] => say(join(&sim, rate.parse().unwrap_or(200.0), d.join_timeout).await),
            ["run", rate, secs] => {
                let (rate, secs) = (rate.parse().unwrap_or(100.0), secs.parse().unwrap_or(10.0));
                say(run(&sim, rate, secs, d.grace).await)
            }
            ["stats"] => say(format!("CLIENTS {} {}", sim.tally.line(), mem_line())),
            ["quit"] => break,
            other => eprintln!("lns-load clients: unknown command {other:?} (join RATE | run RATE SECS | stats | quit)"),
        }
    }
    say(format!("CLIENTS final {} {}", sim.tally.line(), mem_line()));
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// One gateway connection: writes the uplinks handed to it, answers pings, and
/// gives every `dnmsg` to the devices before answering it with `dntxed`.
async fn gateway(
    mut ws: Ws<Tls>,
    mut out: mpsc::UnboundedReceiver<Out>,
    sim: &Sim,
    stop: &CancellationToken,
) -> String {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.send(0x8, &1000u16.to_be_bytes())).await;
                return "stopped".into();
            }
            m = out.recv() => {
                let Some(m) = m else { return "no more uplinks".into() };
                if ws.send(0x1, m.text.as_bytes()).await.is_err() {
                    sim.tally.write_failed.fetch_add(1, Ordering::Relaxed);
                    return "write failed".into();
                }
                sim.written(m.dev, Instant::now());
            }
            f = ws.recv() => {
                let at = Instant::now();
                let (op, payload) = match f { Ok(f) => f, Err(e) => return e };
                let reply = match op {
                    0x9 => Some((0xA, payload)),
                    0x8 => return format!("server closed: {}", super::close_reason(&payload)),
                    0x1 => serde_json::from_slice::<Value>(&payload)
                        .ok()
                        .and_then(|v| sim.message(&v, at))
                        .map(|r| (0x1, r.to_string().into_bytes())),
                    _ => None,
                };
                if let Some((op, bytes)) = reply {
                    if ws.send(op, &bytes).await.is_err() {
                        return "write failed".into();
                    }
                }
                ws.shrink();
            }
        }
    }
}

fn eui_dashed(e: u64) -> String {
    e.to_be_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

fn parse_dashed(s: &str) -> Option<u64> {
    u64::from_str_radix(&s.replace(['-', ':'], ""), 16).ok()
}

impl Sim {
    /// The gateways hearing device `d`: `copies` distinct ones spread evenly.
    fn gateways_of(&self, d: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.gws.len();
        let step = (n / self.copies).max(1);
        (0..self.copies).map(move |k| (d + k * step) % n)
    }

    /// A copy of device `d`'s frame was written to its gateway.
    fn written(&self, d: usize, at: Instant) {
        let mut dev = self.devs[d].lock().unwrap();
        if let Some(j) = &mut dev.joining {
            if j.is_none() {
                *j = Some(at);
            }
            return;
        }
        if let Some(w) = &mut dev.waiting {
            w.first.get_or_insert(at);
            w.last = Some(at);
            w.written += 1;
            if w.written == self.copies {
                let first = w.first.expect("set above");
                self.spread.lock().unwrap().push(at - first);
            }
        }
    }

    /// A message from the server: `dnmsg` gets its `dntxed`, pings are handled above.
    fn message(&self, v: &Value, at: Instant) -> Option<Value> {
        if v["msgtype"] != "dnmsg" {
            return None;
        }
        self.tally.dnmsg.fetch_add(1, Ordering::Relaxed);
        self.dnmsg(v, at);
        let diid = v["diid"].as_i64().unwrap_or(0);
        let xtime = (1i64 << 48) | self.born.elapsed().as_micros() as i64;
        Some(json!({
            "msgtype": "dntxed", "seqno": diid, "diid": diid,
            "DR": v.get("RX1DR").or(v.get("RX2DR")).cloned().unwrap_or(json!(0)),
            "Freq": v.get("RX1Freq").or(v.get("RX2Freq")).cloned().unwrap_or(json!(0)),
            "DevEui": v["DevEui"], "rctx": 0, "xtime": xtime,
            "txtime": self.born.elapsed().as_secs_f64(), "gpstime": 0,
        }))
    }

    fn dnmsg(&self, v: &Value, at: Instant) {
        let t = &self.tally;
        let dev = v["DevEui"]
            .as_str()
            .and_then(parse_dashed)
            .and_then(|e| e.checked_sub(self.base));
        let pdu = v["pdu"].as_str().and_then(|p| hex::decode(p).ok());
        let (Some(d), Some(pdu)) = (dev.map(|d| d as usize), pdu) else {
            t.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(slot) = self.devs.get(d) else {
            t.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut dev = slot.lock().unwrap();
        if pdu.first().map(|m| m >> 5) == Some(1) {
            let Some(sent) = dev.joining.take() else {
                t.unmatched.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match open_accept(self.base + d as u64, dev.dev_nonce, &pdu) {
                Some(s) => {
                    dev.session = Some(s);
                    dev.fcnt_up = 0;
                    dev.answers.clear();
                    t.join_accepts.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = sent {
                        self.join_lat.lock().unwrap().push(at - s);
                    }
                }
                None => {
                    t.bad.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        let Some(w) = dev.waiting.take() else {
            t.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(s) = &dev.session else { return };
        match open_answer(s, &pdu) {
            Some((true, requests)) => {
                t.answered.fetch_add(1, Ordering::Relaxed);
                if !requests.is_empty() {
                    t.mac_requests
                        .fetch_add(requests.len() as u64, Ordering::Relaxed);
                    dev.answers = answers(&requests);
                }
                if let Some(last) = w.last {
                    self.up_lat.lock().unwrap().push(at - last);
                }
            }
            _ => {
                t.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Device `d` sends a join-request through its first gateway.
    fn send_join(&self, d: usize, seq: u64) {
        let eui = self.base + d as u64;
        let mut dev = self.devs[d].lock().unwrap();
        dev.dev_nonce = dev.dev_nonce.wrapping_add(1);
        dev.joining = Some(None);
        let key = AES128Key::from_bytes(app_key(eui));
        let mut phy = PhyPayload {
            mhdr: MHDR {
                f_type: FType::JoinRequest,
                major: Major::LoRaWANR1,
            },
            payload: Payload::JoinRequest(lrwn::JoinRequestPayload {
                join_eui: EUI64::from_be_bytes(JOIN_EUI.to_be_bytes()),
                dev_eui: EUI64::from_be_bytes(eui.to_be_bytes()),
                dev_nonce: dev.dev_nonce,
            }),
            mic: None,
        };
        phy.set_join_request_mic(&key).expect("join-request MIC");
        let mic = i32::from_le_bytes(phy.mic.expect("MIC set"));
        let head = format!(
            r#"{{"msgtype":"jreq","MHdr":0,"JoinEui":"{}","DevEui":"{}","DevNonce":{},"MIC":{mic},"#,
            eui_dashed(JOIN_EUI),
            eui_dashed(eui),
            dev.dev_nonce
        );
        drop(dev);
        let gw = self.gateways_of(d).next().expect("a gateway");
        self.send(gw, d, self.radio(&head, seq, 0));
        self.tally.joins_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Device `d` sends its next confirmed uplink through its gateways; false when
    /// it has no session.
    fn send_uplink(&self, d: usize, seq: u64) -> bool {
        let mut dev = self.devs[d].lock().unwrap();
        let Some(s) = &dev.session else { return false };
        let fcnt = dev.fcnt_up;
        let payload = (seq as u32).to_be_bytes().repeat(2);
        let mut phy = PhyPayload {
            mhdr: MHDR {
                f_type: FType::ConfirmedDataUp,
                major: Major::LoRaWANR1,
            },
            payload: Payload::MACPayload(MACPayload {
                fhdr: FHDR {
                    devaddr: DevAddr::from_be_bytes(s.dev_addr.to_be_bytes()),
                    f_ctrl: FCtrl::default(),
                    f_cnt: fcnt,
                    f_opts: MACCommandSet::from_slice(&dev.answers),
                },
                f_port: Some(1),
                frm_payload: Some(FRMPayload::Raw(payload)),
            }),
            mic: None,
        };
        phy.encrypt_frm_payload(&s.app_s_key).expect("encrypt");
        phy.set_uplink_data_mic(MACVersion::LoRaWAN1_0, 0, 0, 0, &s.nwk_s_key, &s.nwk_s_key)
            .expect("uplink MIC");
        let b = phy.to_vec().expect("uplink frame");
        let fopts_len = dev.answers.len();
        let le32 = |x: &[u8]| i32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        let rest = &b[8 + fopts_len..b.len() - 4];
        let head = format!(
            r#"{{"msgtype":"updf","MHdr":{},"DevAddr":{},"FCtrl":{},"FCnt":{},"FOpts":"{}","FPort":{},"FRMPayload":"{}","MIC":{},"#,
            b[0],
            le32(&b[1..5]),
            b[5],
            u16::from_le_bytes([b[6], b[7]]),
            hex::encode_upper(&b[8..8 + fopts_len]),
            rest[0],
            hex::encode_upper(&rest[1..]),
            le32(&b[b.len() - 4..])
        );
        if dev.waiting.is_some() {
            self.tally.missed.fetch_add(1, Ordering::Relaxed);
        }
        dev.waiting = Some(Waiting {
            first: None,
            last: None,
            written: 0,
        });
        dev.fcnt_up += 1;
        dev.answers.clear();
        drop(dev);
        for (k, gw) in self.gateways_of(d).enumerate() {
            self.send(gw, d, self.radio(&head, seq, k));
        }
        self.tally.ups_sent.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The radio part of an uplink as copy `k` heard it: a channel of sub-band 2
    /// by sequence number, a different SNR per gateway (so the best one varies).
    fn radio(&self, head: &str, seq: u64, k: usize) -> String {
        let freq = SB2_FIRST_HZ + 200_000 * (seq % 8) as u32;
        let snr = ((seq.wrapping_mul(7919) + k as u64 * 13) % 200) as f64 / 10.0 - 10.0;
        let rssi = -60 - ((seq + k as u64 * 17) % 50) as i64;
        let xtime = (1i64 << 48) | self.born.elapsed().as_micros() as i64;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        format!(
            r#"{head}"RefTime":0.0,"DR":{},"Freq":{freq},"upinfo":{{"rctx":0,"xtime":{xtime},"gpstime":0,"fts":-1,"rssi":{rssi},"snr":{snr:.1},"rxtime":{now:.6}}}}}"#,
            self.up_dr
        )
    }

    fn send(&self, gw: usize, dev: usize, text: String) {
        if self.gws[gw].send(Out { text, dev }).is_err() {
            self.tally.write_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The join-accept decrypted and MIC-checked with the AppKey: the session.
fn open_accept(dev_eui: u64, dev_nonce: u16, pdu: &[u8]) -> Option<Session> {
    let key = AES128Key::from_bytes(app_key(dev_eui));
    let join_eui = EUI64::from_be_bytes(JOIN_EUI.to_be_bytes());
    let mut phy = PhyPayload::from_slice(pdu).ok()?;
    phy.decrypt_join_accept_payload(&key).ok()?;
    if !phy
        .validate_join_accept_mic(JoinType::Join, &join_eui, dev_nonce, &key)
        .ok()?
    {
        return None;
    }
    let Payload::JoinAccept(ja) = &phy.payload else {
        return None;
    };
    let nwk = keys::get_f_nwk_s_int_key(
        false,
        &key,
        &ja.home_netid,
        &join_eui,
        ja.join_nonce,
        dev_nonce,
    )
    .ok()?;
    let app = keys::get_app_s_key(
        false,
        &key,
        &ja.home_netid,
        &join_eui,
        ja.join_nonce,
        dev_nonce,
    )
    .ok()?;
    Some(Session {
        dev_addr: u32::from_be_bytes(ja.devaddr.to_be_bytes()),
        nwk_s_key: nwk,
        app_s_key: app,
    })
}

/// A class A answer checked (DevAddr, MIC with the 16-bit FCnt, which is all this
/// run uses): whether it carries ACK, and its MAC requests.
fn open_answer(s: &Session, pdu: &[u8]) -> Option<(bool, Vec<MACCommand>)> {
    let mut phy = PhyPayload::from_slice(pdu).ok()?;
    if !phy
        .validate_downlink_data_mic(MACVersion::LoRaWAN1_0, 0, &s.nwk_s_key)
        .ok()?
    {
        return None;
    }
    let Payload::MACPayload(m) = &phy.payload else {
        return None;
    };
    if u32::from_be_bytes(m.fhdr.devaddr.to_be_bytes()) != s.dev_addr {
        return None;
    }
    let ack = m.fhdr.f_ctrl.ack;
    let port0 = m.f_port == Some(0);
    let mut cmds = Vec::new();
    phy.decode_f_opts_to_mac_commands().ok()?;
    if port0 {
        phy.decrypt_frm_payload(&s.nwk_s_key).ok()?;
    }
    let Payload::MACPayload(m) = &phy.payload else {
        return None;
    };
    cmds.extend(m.fhdr.f_opts.iter().cloned());
    if let (true, Some(FRMPayload::MACCommandSet(set))) = (port0, &m.frm_payload) {
        cmds.extend(set.iter().cloned());
    }
    cmds.retain(|c| !matches!(c, MACCommand::Raw(b) if b.is_empty()));
    Some((ack, cmds))
}

/// What a compliant device answers (everything accepted).
fn answers(requests: &[MACCommand]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in requests {
        match r {
            MACCommand::LinkADRReq(_) => out.extend([0x03, 0x07]),
            MACCommand::DutyCycleReq(_) => out.push(0x04),
            MACCommand::RxParamSetupReq(_) => out.extend([0x05, 0x07]),
            MACCommand::DevStatusReq => out.extend([0x06, 0xFF, 0x0A]),
            MACCommand::NewChannelReq(_) => out.extend([0x07, 0x03]),
            MACCommand::RxTimingSetupReq(_) => out.push(0x08),
            _ => {}
        }
    }
    out.truncate(15);
    out
}

/// Paces `count` sends at `rate` per second, calling `f(i)` for each.
async fn paced(rate: f64, count: usize, mut f: impl FnMut(usize)) {
    let t0 = Instant::now();
    let mut done = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while done < count {
        tick.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize).min(count);
        while done < due {
            f(done);
            done += 1;
        }
    }
}

/// `join RATE`: every device without a session joins; retries after `timeout`.
async fn join(sim: &Sim, rate: f64, timeout: u64) -> String {
    let t0 = Instant::now();
    let cpu0 = cpu_ms();
    let sent0 = sim.tally.joins_sent.load(Ordering::Relaxed);
    let mut seq = 0u64;
    for _round in 0..4 {
        let todo: Vec<usize> = (0..sim.devs.len())
            .filter(|&d| sim.devs[d].lock().unwrap().session.is_none())
            .collect();
        if todo.is_empty() {
            break;
        }
        paced(rate, todo.len(), |i| {
            sim.send_join(todo[i], seq);
            seq += 1;
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(timeout);
        while Instant::now() < deadline
            && sim.devs.iter().any(|d| d.lock().unwrap().joining.is_some())
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for d in &sim.devs {
            d.lock().unwrap().joining = None;
        }
    }
    let joined = sim
        .devs
        .iter()
        .filter(|d| d.lock().unwrap().session.is_some())
        .count();
    let mut lat = std::mem::take(&mut *sim.join_lat.lock().unwrap());
    lat.sort_unstable();
    format!(
        "JOINED devices={} joined={joined} attempts={} secs={:.2} lat_p50_ms={} lat_p99_ms={} lat_max_ms={} client_cpu_ms={} {} {}",
        sim.devs.len(),
        sim.tally.joins_sent.load(Ordering::Relaxed) - sent0,
        t0.elapsed().as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        cpu_ms() - cpu0,
        sim.tally.line(),
        mem_line()
    )
}

/// `run RATE SECS`: confirmed uplinks round robin over the joined devices.
async fn run(sim: &Sim, rate: f64, secs: f64, grace: u64) -> String {
    let joined: Vec<usize> = (0..sim.devs.len())
        .filter(|&d| sim.devs[d].lock().unwrap().session.is_some())
        .collect();
    if joined.is_empty() {
        return "RUN ok=0 error=no joined device; run join first".into();
    }
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let t = &sim.tally;
    let (sent0, ans0, missed0, bad0, unm0) = (
        g(&t.ups_sent),
        g(&t.answered),
        g(&t.missed),
        g(&t.bad),
        g(&t.unmatched),
    );
    sim.up_lat.lock().unwrap().clear();
    sim.spread.lock().unwrap().clear();
    let cpu0 = cpu_ms();
    let t0 = Instant::now();
    let count = (rate * secs) as usize;
    paced(rate, count, |i| {
        sim.send_uplink(joined[i % joined.len()], i as u64);
    })
    .await;
    let send_secs = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(grace);
    while Instant::now() < deadline && sim.devs.iter().any(|d| d.lock().unwrap().waiting.is_some())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for d in &sim.devs {
        if d.lock().unwrap().waiting.take().is_some() {
            t.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut lat = std::mem::take(&mut *sim.up_lat.lock().unwrap());
    lat.sort_unstable();
    let mut spread = std::mem::take(&mut *sim.spread.lock().unwrap());
    spread.sort_unstable();
    let sent = g(&t.ups_sent) - sent0;
    let answered = g(&t.answered) - ans0;
    format!(
        "RUN ok=1 devices={} rate={rate} secs={secs} sent={sent} send_secs={send_secs:.2} sent_per_s={:.0} answered={answered} answered_per_s={:.0} missed={} bad={} unmatched={} \
         lat_p50_ms={} lat_p90_ms={} lat_p99_ms={} lat_p999_ms={} lat_max_ms={} spread_p50_ms={} spread_p99_ms={} client_cpu_ms={} {}",
        joined.len(),
        sent as f64 / send_secs,
        answered as f64 / send_secs,
        g(&t.missed) - missed0,
        g(&t.bad) - bad0,
        g(&t.unmatched) - unm0,
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.9)),
        ms(pct(&lat, 0.99)),
        ms(pct(&lat, 0.999)),
        ms(lat.last().copied().unwrap_or_default()),
        ms(pct(&spread, 0.5)),
        ms(pct(&spread, 0.99)),
        cpu_ms() - cpu0,
        mem_line()
    )
}
