//! A traffic ("muxs") session: the simulated concentrator and clocks, the
//! uplinks station sends (§4), the server messages it reacts to (§3.2, §5,
//! §6, §8), and the background task that owns the socket so that pings are
//! answered and `dntxed` goes out on time even while the test is not
//! polling.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::config::{self, ConfigOutcome, RouterConfig};
use super::downlink::{
    self, dntxed_json, DnOutcome, Dnmsg, Downlink, DroppedDownlink, TxContext, TxSlot,
    DNTXED_AFTER_US,
};
use super::json::{self, Obj};
use super::ws::{self, write_frame, BoxIo, FrameReader, Incoming};
use super::LnsError;

const LOW48: i64 = (1 << 48) - 1;
/// Station's monotonic clock reads this many µs when the simulator starts.
pub const MONO_START_US: i64 = 1_000_000_000;
/// A timesync reply is only used if the round trip was shorter (§6.2).
pub const TIMESYNC_MAX_RTT: Duration = Duration::from_secs(2);

/// Radio metadata of a simulated uplink (§4).
#[derive(Debug, Clone, PartialEq)]
pub struct RadioMeta {
    pub dr: i64,
    pub freq: i64,
    pub rssi: i64,
    pub snr: f64,
    /// Use this xtime instead of the current one (e.g. one from an older
    /// session, as after a quick reconnect).
    pub xtime: Option<i64>,
}

impl Default for RadioMeta {
    fn default() -> Self {
        RadioMeta {
            dr: 5,
            freq: 868_100_000,
            rssi: -57,
            snr: 9.25,
            xtime: None,
        }
    }
}

/// A data uplink (`updf`) as station decodes it (lora.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updf {
    pub mhdr: u8,
    pub dev_addr: u32,
    pub fctrl: u8,
    pub fcnt: u16,
    pub fopts: Vec<u8>,
    pub fport: Option<u8>,
    pub frm_payload: Vec<u8>,
    pub mic: u32,
}

impl Default for Updf {
    fn default() -> Self {
        Updf {
            mhdr: 0x40,
            dev_addr: 1,
            fctrl: 0,
            fcnt: 1,
            fopts: Vec::new(),
            fport: Some(1),
            frm_payload: b"hi".to_vec(),
            mic: 1,
        }
    }
}

/// A join request (`jreq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jreq {
    pub mhdr: u8,
    pub join_eui: u64,
    pub dev_eui: u64,
    pub dev_nonce: u16,
    pub mic: u32,
}

impl Default for Jreq {
    fn default() -> Self {
        Jreq {
            mhdr: 0x00,
            join_eui: 0x70B3_D57E_D000_0000,
            dev_eui: 0x0011_2233_4455_6677,
            dev_nonce: 1,
            mic: 0x1234_5678,
        }
    }
}

/// What the simulator sent for an uplink.
#[derive(Debug, Clone, PartialEq)]
pub struct SentUplink {
    pub json: String,
    pub xtime: i64,
    pub ref_time: f64,
    pub rxtime: f64,
}

/// A `timesync` message from the server and what station made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Timesync {
    pub raw: Value,
    pub txtime: Option<i64>,
    pub xtime: Option<i64>,
    pub gpstime: Option<i64>,
    pub mux_time: Option<f64>,
    /// The GPS time mapping (xtime, gpstime) this message set, if any.
    pub gps_mapping: Option<(i64, i64)>,
    /// Why it set nothing (no matching request, round trip too long, ...).
    pub note: Option<String>,
}

/// A server message, already processed by the simulated station.
#[derive(Debug, Clone)]
pub enum ServerMessage {
    RouterConfig(ConfigOutcome),
    Dnmsg {
        msg: Box<Dnmsg>,
        outcome: DnOutcome,
    },
    Dnsched {
        raw: Value,
        outcomes: Vec<DnOutcome>,
    },
    Timesync(Timesync),
    /// A getxtime request; `reply` is the answer station already sent.
    Getxtime {
        mux_time: Option<f64>,
        reply: String,
    },
    /// `{"msgtype":"error","error":…}`: station only logs it.
    Error(String),
    Runcmd {
        command: Option<String>,
        arguments: Vec<String>,
        raw: Value,
    },
    /// A binary frame (rmtsh).
    Binary(Vec<u8>),
    /// Bad JSON, no/unknown msgtype (ignored by station): the text.
    Unknown(String),
}

impl ServerMessage {
    pub fn msgtype(&self) -> &'static str {
        match self {
            ServerMessage::RouterConfig(_) => "router_config",
            ServerMessage::Dnmsg { .. } => "dnmsg",
            ServerMessage::Dnsched { .. } => "dnsched",
            ServerMessage::Timesync(_) => "timesync",
            ServerMessage::Getxtime { .. } => "getxtime",
            ServerMessage::Error(_) => "error",
            ServerMessage::Runcmd { .. } => "runcmd",
            ServerMessage::Binary(_) => "binary",
            ServerMessage::Unknown(_) => "unknown",
        }
    }
}

/// Per-session settings copied from [`super::LnsStation`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub auto_dntxed: bool,
    pub answer_pings: bool,
    pub sx130x_sync_delay: Duration,
    pub pps: bool,
    pub duty_cycle: bool,
    pub strict_config: bool,
    /// Station's monotonic clock origin (shared by all sessions of a station).
    pub clock_base: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Radio {
    session: u8,
    start: Instant,
    sync_ready_at: Instant,
}

/// Everything the test can inspect, shared with the background task.
struct State {
    opts: SessionOptions,
    /// UTC = monotonic seconds + this.
    utc_offset: f64,
    last_mux: Option<(f64, Instant)>,
    radio: Option<Radio>,
    config: Option<RouterConfig>,
    gps: Option<(i64, i64)>,
    pending_timesync: Vec<(i64, Instant)>,
    downlinks: Vec<Downlink>,
    /// downlinks[queue_start..] belong to the current radio session.
    queue_start: usize,
    dropped: Vec<DroppedDownlink>,
    pings: u64,
    pongs: u64,
    sent: Vec<String>,
    received: Vec<String>,
    ended: Option<LnsError>,
}

impl State {
    fn mono_us(&self, t: Instant) -> i64 {
        MONO_START_US
            + t.saturating_duration_since(self.opts.clock_base)
                .as_micros() as i64
    }

    fn mono_s(&self, t: Instant) -> f64 {
        self.mono_us(t) as f64 / 1e6
    }

    fn utc(&self, t: Instant) -> f64 {
        self.mono_s(t) + self.utc_offset
    }

    fn ref_time(&self, t: Instant) -> f64 {
        match self.last_mux {
            Some((m, at)) => m + t.saturating_duration_since(at).as_secs_f64(),
            None => 0.0,
        }
    }

    fn xtime_at(&self, t: Instant) -> Option<i64> {
        self.radio.map(|r| {
            (i64::from(r.session) << 48)
                | (t.saturating_duration_since(r.start).as_micros() as i64 & LOW48)
        })
    }

    fn instant_of(&self, x: i64) -> Option<Instant> {
        let r = self.radio?;
        (x >> 48 == i64::from(r.session))
            .then(|| r.start + Duration::from_micros((x & LOW48) as u64))
    }

    fn gps_of(&self, x: i64) -> i64 {
        match (self.opts.pps, self.gps) {
            (true, Some((gx, gg))) => gg + (x - gx),
            _ => 0,
        }
    }

    fn tx_context(&self, now: Instant) -> TxContext<'_> {
        TxContext {
            config: self.config.as_ref(),
            now_xtime: self.xtime_at(now),
            sync_ready: self.radio.is_some_and(|r| now >= r.sync_ready_at),
            gps: self.gps,
            queued: &self.downlinks[self.queue_start..],
            duty_cycle: self.opts.duty_cycle && !self.config.as_ref().is_some_and(|c| c.nodc),
        }
    }

    fn note_mux(&mut self, v: &Value, now: Instant) -> Option<f64> {
        let m = v.get("MuxTime").and_then(Value::as_f64)?;
        self.last_mux = Some((m, now));
        Some(m)
    }

    fn record(&mut self, o: &DnOutcome, diid: Option<i64>, dev_eui: Option<u64>) {
        match o {
            DnOutcome::Scheduled(d) => self.downlinks.push((**d).clone()),
            DnOutcome::Dropped(r) => self.dropped.push(DroppedDownlink {
                diid,
                dev_eui,
                reason: r.clone(),
            }),
        }
    }

    /// Station's reaction to one text frame: the parsed message, texts to
    /// send back, and whether station now closes the connection.
    fn on_text(&mut self, text: &str, now: Instant) -> (ServerMessage, Vec<String>, bool) {
        self.received.push(text.to_string());
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return (ServerMessage::Unknown(text.to_string()), vec![], false),
        };
        let msgtype = v
            .get("msgtype")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match msgtype.as_str() {
            "router_config" => {
                let out = config::evaluate(&v);
                let close = matches!(out, ConfigOutcome::Rejected(_));
                if let ConfigOutcome::Applied(c) = &out {
                    self.apply_config(c, now);
                }
                (ServerMessage::RouterConfig(out), vec![], close)
            }
            "dnmsg" => {
                self.note_mux(&v, now);
                let m = Dnmsg::parse(&v);
                let outcome = downlink::schedule_dnmsg(&m, &self.tx_context(now));
                self.record(&outcome, m.diid, m.dev_eui);
                (
                    ServerMessage::Dnmsg {
                        msg: Box::new(m),
                        outcome,
                    },
                    vec![],
                    false,
                )
            }
            "dnsched" => {
                self.note_mux(&v, now);
                let mut outcomes = Vec::new();
                if let Some(entries) = v.get("schedule").and_then(Value::as_array) {
                    for e in entries {
                        let o = downlink::schedule_dnsched_entry(e, &self.tx_context(now));
                        self.record(&o, e.get("diid").and_then(Value::as_i64), None);
                        outcomes.push(o);
                    }
                }
                (ServerMessage::Dnsched { raw: v, outcomes }, vec![], false)
            }
            "timesync" => (
                ServerMessage::Timesync(self.on_timesync(v, now)),
                vec![],
                false,
            ),
            "getxtime" => {
                let mux = self.note_mux(&v, now);
                let x = self.xtime_at(now).unwrap_or(0);
                let reply = Obj::new()
                    .str("msgtype", "getxtime")
                    .time("MuxTime", mux.unwrap_or(0.0))
                    .time("ustime", self.mono_s(now))
                    .time("UTCtime", self.utc(now))
                    .raw("xtimes", &format!("[{x},0,0,0]"))
                    .finish();
                (
                    ServerMessage::Getxtime {
                        mux_time: mux,
                        reply: reply.clone(),
                    },
                    vec![reply],
                    false,
                )
            }
            "error" => {
                let e = match v.get("error") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                (ServerMessage::Error(e), vec![], false)
            }
            "runcmd" => {
                let command = v.get("command").and_then(Value::as_str).map(str::to_string);
                let arguments = v
                    .get("arguments")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    ServerMessage::Runcmd {
                        command,
                        arguments,
                        raw: v,
                    },
                    vec![],
                    false,
                )
            }
            _ => (ServerMessage::Unknown(text.to_string()), vec![], false),
        }
    }

    fn apply_config(&mut self, c: &RouterConfig, now: Instant) {
        if let Some(m) = c.mux_time {
            // MuxTime in router_config sets station's UTC clock (§3.2)
            self.utc_offset = m - self.mono_s(now);
            self.last_mux = Some((m, now));
        }
        // new radio session: new random session id, pending frames lost
        let prev = self.radio.map(|r| r.session);
        let mut session: u8 = rand::random();
        while session == 0 || Some(session) == prev {
            session = rand::random();
        }
        self.radio = Some(Radio {
            session,
            start: now,
            sync_ready_at: now + self.opts.sx130x_sync_delay,
        });
        let mut keep = Vec::new();
        for d in self.downlinks.drain(..) {
            if d.transmitted {
                keep.push(d);
            } else {
                self.dropped.push(DroppedDownlink {
                    diid: Some(d.diid),
                    dev_eui: Some(d.dev_eui),
                    reason: "radio restarted by a new router_config".into(),
                });
            }
        }
        self.downlinks = keep;
        self.queue_start = self.downlinks.len();
        self.gps = None;
        self.pending_timesync.clear();
        self.config = Some(c.clone());
    }

    fn on_timesync(&mut self, v: Value, now: Instant) -> Timesync {
        let mux = self.note_mux(&v, now);
        let mut t = Timesync {
            txtime: v.get("txtime").and_then(Value::as_i64),
            xtime: v.get("xtime").and_then(Value::as_i64),
            gpstime: v.get("gpstime").and_then(Value::as_i64),
            mux_time: mux,
            raw: v,
            gps_mapping: None,
            note: None,
        };
        match (t.txtime, t.xtime, t.gpstime) {
            (_, Some(x), Some(g)) => {
                // server push: concentrator time x is GPS time g
                if self.radio.is_some_and(|r| x >> 48 == i64::from(r.session)) {
                    self.gps = Some((x, g));
                    t.gps_mapping = self.gps;
                } else {
                    t.note = Some("xtime not from the current radio session".into());
                }
            }
            (Some(tx), None, Some(g)) => {
                let pos = self.pending_timesync.iter().position(|(t0, _)| *t0 == tx);
                match pos {
                    None => t.note = Some(format!("no pending timesync request with txtime {tx}")),
                    Some(i) => {
                        let (_, sent) = self.pending_timesync.remove(i);
                        let rtt = now.saturating_duration_since(sent);
                        if rtt >= TIMESYNC_MAX_RTT {
                            t.note = Some(format!("round trip {rtt:?} too long"));
                        } else if let Some(x) = self.xtime_at(sent + rtt / 2) {
                            self.gps = Some((x, g));
                            t.gps_mapping = self.gps;
                            self.pending_timesync.clear();
                        } else {
                            t.note = Some("radio not running".into());
                        }
                    }
                }
            }
            _ => t.note = Some("only updates RefTime".into()),
        }
        t
    }

    fn next_due(&self) -> Option<Instant> {
        self.downlinks[self.queue_start..]
            .iter()
            .filter(|d| !d.transmitted)
            .filter_map(|d| self.instant_of(d.tx_xtime))
            .min()
            .map(|t| t + Duration::from_micros(DNTXED_AFTER_US as u64))
    }

    /// Marks frames whose TX started (5 ms ago) and returns the dntxed texts.
    fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        let caps = self.config.as_ref().is_some_and(|c| c.eui_caps);
        let auto = self.opts.auto_dntxed;
        for i in self.queue_start..self.downlinks.len() {
            let d = &self.downlinks[i];
            if d.transmitted {
                continue;
            }
            let Some(at) = self.instant_of(d.tx_xtime) else {
                continue;
            };
            if at + Duration::from_micros(DNTXED_AFTER_US as u64) > now {
                continue;
            }
            let txtime = self.mono_s(at);
            let d = &mut self.downlinks[i];
            d.transmitted = true;
            if auto && d.dev_eui != 0 && d.slot != TxSlot::DnSched {
                let j = dntxed_json(d, txtime, caps);
                d.dntxed = Some(j.clone());
                out.push(j);
            }
        }
        out
    }
}

enum Cmd {
    Send {
        frame: Vec<u8>,
        log: Option<String>,
        done: oneshot::Sender<Result<(), LnsError>>,
    },
    Close {
        code: u16,
        reason: String,
    },
    Abort,
}

type Event = Result<ServerMessage, LnsError>;

/// A connected traffic session.
pub struct Session {
    /// Traffic URI this session connected to.
    pub uri: String,
    /// Exact upgrade request bytes sent.
    pub request: Vec<u8>,
    /// The server's 101 response head.
    pub response_head: String,
    /// Negotiated TLS version (wss only).
    pub tls_version: Option<String>,
    /// The `version` message sent.
    pub version_json: String,
    state: Arc<Mutex<State>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<Event>,
    backlog: VecDeque<ServerMessage>,
    actor: Option<JoinHandle<()>>,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        io: BoxIo,
        leftover: Vec<u8>,
        uri: String,
        request: Vec<u8>,
        response_head: String,
        tls_version: Option<String>,
        version_json: String,
        opts: SessionOptions,
    ) -> Result<Session, LnsError> {
        let now = Instant::now();
        let base = opts.clock_base;
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mono_now =
            (MONO_START_US + now.saturating_duration_since(base).as_micros() as i64) as f64 / 1e6;
        let state = Arc::new(Mutex::new(State {
            opts,
            utc_offset: sys - mono_now,
            last_mux: None,
            radio: None,
            config: None,
            gps: None,
            pending_timesync: Vec::new(),
            downlinks: Vec::new(),
            queue_start: 0,
            dropped: Vec::new(),
            pings: 0,
            pongs: 0,
            sent: Vec::new(),
            received: Vec::new(),
            ended: None,
        }));
        let (rd, mut wr) = tokio::io::split(io);
        // `version` right after the upgrade (§3.1)
        write_frame(
            &mut wr,
            &ws::encode_frame(ws::OP_TEXT, version_json.as_bytes())?,
        )
        .await?;
        state.lock().unwrap().sent.push(version_json.clone());
        let (ftx, frx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_frames(FrameReader::new(rd, leftover), ftx));
        let (ctx, crx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::unbounded_channel();
        let actor = tokio::spawn(run(state.clone(), wr, frx, crx, etx, reader));
        Ok(Session {
            uri,
            request,
            response_head,
            tls_version,
            version_json,
            state,
            cmds: ctx,
            events: erx,
            backlog: VecDeque::new(),
            actor: Some(actor),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn ended_error(&self) -> LnsError {
        self.st()
            .ended
            .clone()
            .unwrap_or_else(|| LnsError::Ws("session ended".into()))
    }

    async fn send_frame_bytes(&self, frame: Vec<u8>, log: Option<String>) -> Result<(), LnsError> {
        let (done, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Send { frame, log, done })
            .map_err(|_| self.ended_error())?;
        rx.await.map_err(|_| self.ended_error())?
    }

    /// Sends a text frame as is (for malformed-input tests).
    pub async fn send_text(&self, text: &str) -> Result<(), LnsError> {
        self.send_frame_bytes(
            ws::encode_frame(ws::OP_TEXT, text.as_bytes())?,
            Some(text.to_string()),
        )
        .await
    }

    /// Sends any message with station's framing.
    pub async fn send_frame(&self, msg: Message) -> Result<(), LnsError> {
        self.send_frame_bytes(ws::encode_message(&msg)?, None).await
    }

    /// Writes raw bytes to the socket (no framing).
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<(), LnsError> {
        self.send_frame_bytes(bytes.to_vec(), None).await
    }

    /// Builds the common uplink tail (§4) and checks station's uplink rules.
    fn uplink(&self, head: Obj, meta: &RadioMeta) -> Result<SentUplink, LnsError> {
        let now = Instant::now();
        let st = self.st();
        let cfg = st
            .config
            .as_ref()
            .ok_or_else(|| LnsError::Dropped("no router_config: radio not running".into()))?;
        match cfg.dr(meta.dr) {
            Some(d) if d.is_defined() && !d.dnonly => {}
            _ => {
                return Err(LnsError::Dropped(format!(
                    "uplink DR{} undefined or downlink-only",
                    meta.dr
                )))
            }
        }
        let xtime = match meta.xtime {
            Some(x) => x,
            None => st.xtime_at(now).unwrap_or(0),
        };
        let ref_time = st.ref_time(now);
        let rxtime = st.utc(now);
        let upinfo = Obj::new()
            .int("rctx", 0)
            .int("xtime", xtime)
            .int("gpstime", st.gps_of(xtime))
            .int("fts", -1)
            .int("rssi", meta.rssi)
            .num("snr", meta.snr)
            .time("rxtime", rxtime)
            .finish();
        let json = head
            .time("RefTime", ref_time)
            .int("DR", meta.dr)
            .int("Freq", meta.freq)
            .raw("upinfo", &upinfo)
            .finish();
        Ok(SentUplink {
            json,
            xtime,
            ref_time,
            rxtime,
        })
    }

    async fn send_uplink_json(&self, up: SentUplink) -> Result<SentUplink, LnsError> {
        self.send_text(&up.json).await?;
        Ok(up)
    }

    /// Sends an `updf` (§4). DevAddr and MIC go out as signed int32, FPort
    /// −1 when absent, hex uppercase. Frames station would filter (NetID,
    /// undefined DR, no radio) give [`LnsError::Dropped`] and send nothing.
    pub async fn send_updf(&self, u: &Updf, meta: &RadioMeta) -> Result<SentUplink, LnsError> {
        if let Some(ids) = self.st().config.as_ref().and_then(|c| c.net_ids.clone()) {
            let netid = i64::from(u.dev_addr >> 25);
            if !ids.iter().any(|n| n & 0x7F == netid) {
                return Err(LnsError::Dropped(format!(
                    "NetID {netid} of DevAddr not in NetID filter"
                )));
            }
        }
        let head = Obj::new()
            .str("msgtype", "updf")
            .int("MHdr", i64::from(u.mhdr))
            .int("DevAddr", i64::from(u.dev_addr as i32))
            .int("FCtrl", i64::from(u.fctrl))
            .int("FCnt", i64::from(u.fcnt))
            .str("FOpts", &json::hex_upper(&u.fopts))
            .int("FPort", u.fport.map_or(-1, i64::from))
            .str("FRMPayload", &json::hex_upper(&u.frm_payload))
            .int("MIC", i64::from(u.mic as i32));
        let up = self.uplink(head, meta)?;
        self.send_uplink_json(up).await
    }

    /// Sends a `jreq` (§4), subject to the JoinEui filter.
    pub async fn send_jreq(&self, j: &Jreq, meta: &RadioMeta) -> Result<SentUplink, LnsError> {
        let (caps, ranges) = {
            let st = self.st();
            let c = st.config.as_ref();
            (
                c.is_some_and(|c| c.eui_caps),
                c.and_then(|c| c.join_eui_ranges.clone()),
            )
        };
        if let Some(r) = ranges {
            if !r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&j.join_eui)) {
                return Err(LnsError::Dropped("JoinEUI not in JoinEui filter".into()));
            }
        }
        let head = Obj::new()
            .str("msgtype", "jreq")
            .int("MHdr", i64::from(j.mhdr))
            .str(
                if caps { "JoinEUI" } else { "JoinEui" },
                &json::eui_dashes(j.join_eui),
            )
            .str(
                if caps { "DevEUI" } else { "DevEui" },
                &json::eui_dashes(j.dev_eui),
            )
            .int("DevNonce", i64::from(j.dev_nonce))
            .int("MIC", i64::from(j.mic as i32));
        let up = self.uplink(head, meta)?;
        self.send_uplink_json(up).await
    }

    /// Sends a `propdf` carrying the whole PHYPayload.
    pub async fn send_propdf(&self, phy: &[u8], meta: &RadioMeta) -> Result<SentUplink, LnsError> {
        let head = Obj::new()
            .str("msgtype", "propdf")
            .str("FRMPayload", &json::hex_upper(phy));
        let up = self.uplink(head, meta)?;
        self.send_uplink_json(up).await
    }

    /// Decodes a LoRaWAN PHYPayload as lora.c does and sends the matching
    /// uplink (updf / jreq / propdf). Other frames are dropped.
    pub async fn send_phy(&self, phy: &[u8], meta: &RadioMeta) -> Result<SentUplink, LnsError> {
        let mhdr = *phy
            .first()
            .ok_or_else(|| LnsError::Dropped("empty frame".into()))?;
        if mhdr & 0x03 != 0 {
            return Err(LnsError::Dropped("major version is not LoRaWAN R1".into()));
        }
        let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
        match mhdr >> 5 {
            0 => {
                if phy.len() != 23 {
                    return Err(LnsError::Dropped(format!(
                        "join request of {} bytes, not 23",
                        phy.len()
                    )));
                }
                let j = Jreq {
                    mhdr,
                    join_eui: le64(&phy[1..9]),
                    dev_eui: le64(&phy[9..17]),
                    dev_nonce: u16::from_le_bytes([phy[17], phy[18]]),
                    mic: le32(&phy[19..23]),
                };
                self.send_jreq(&j, meta).await
            }
            2 | 4 => {
                if phy.len() < 12 {
                    return Err(LnsError::Dropped("data frame too short".into()));
                }
                let fctrl = phy[5];
                let foptslen = usize::from(fctrl & 0x0F);
                if phy.len() < 12 + foptslen {
                    return Err(LnsError::Dropped("FOpts longer than frame".into()));
                }
                let rest = &phy[8 + foptslen..phy.len() - 4];
                let u = Updf {
                    mhdr,
                    dev_addr: le32(&phy[1..5]),
                    fctrl,
                    fcnt: u16::from_le_bytes([phy[6], phy[7]]),
                    fopts: phy[8..8 + foptslen].to_vec(),
                    fport: rest.first().copied(),
                    frm_payload: rest.get(1..).unwrap_or_default().to_vec(),
                    mic: le32(&phy[phy.len() - 4..]),
                };
                self.send_updf(&u, meta).await
            }
            7 => self.send_propdf(phy, meta).await,
            t => Err(LnsError::Dropped(format!(
                "MType {t} is not forwarded outside device mode"
            ))),
        }
    }

    /// Sends `{"msgtype":"timesync","txtime":<monotonic µs>}` as a PPS
    /// gateway does (§6.2). Returns the txtime.
    pub async fn send_timesync_request(&self) -> Result<i64, LnsError> {
        let now = Instant::now();
        let txtime = {
            let mut st = self.st();
            let t = st.mono_us(now);
            st.pending_timesync.push((t, now));
            t
        };
        let j = Obj::new()
            .str("msgtype", "timesync")
            .int("txtime", txtime)
            .finish();
        self.send_text(&j).await?;
        Ok(txtime)
    }

    /// The next server message. Pings are answered in the background and
    /// not returned. When the connection ends, the reason comes as an error
    /// ([`LnsError::Closed`], `Protocol("Illegal WS frame…")`, …).
    pub async fn next_message(&mut self, timeout: Duration) -> Result<ServerMessage, LnsError> {
        if let Some(m) = self.backlog.pop_front() {
            return Ok(m);
        }
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Err(_) => Err(LnsError::Timeout),
            Ok(Some(e)) => e,
            Ok(None) => Err(self.ended_error()),
        }
    }

    /// Waits for the first message matching `pred`; others stay queued for
    /// [`Session::next_message`].
    pub async fn next_matching(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> Result<ServerMessage, LnsError> {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return Ok(self.backlog.remove(i).unwrap());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = match tokio::time::timeout(left, self.events.recv()).await {
                Err(_) => return Err(LnsError::Timeout),
                Ok(Some(e)) => e,
                Ok(None) => return Err(self.ended_error()),
            };
            let m = e?;
            if pred(&m) {
                return Ok(m);
            }
            self.backlog.push_back(m);
        }
    }

    /// Waits for a router_config and returns it if station applied it.
    /// Ignored (value error) and rejected (station closes) configs are
    /// errors; with `strict_config` also configs with
    /// [`RouterConfig::problems`]. An unrecognised region is *not* an
    /// error: `downlinks_enabled` is false then.
    pub async fn recv_router_config(
        &mut self,
        timeout: Duration,
    ) -> Result<RouterConfig, LnsError> {
        let m = self
            .next_matching(timeout, |m| matches!(m, ServerMessage::RouterConfig(_)))
            .await?;
        let ServerMessage::RouterConfig(out) = m else {
            unreachable!()
        };
        match out {
            ConfigOutcome::Applied(c) => {
                let strict = self.st().opts.strict_config;
                let problems: Vec<_> = c
                    .problems
                    .iter()
                    .filter(|p| !p.starts_with("region "))
                    .cloned()
                    .collect();
                if strict && !problems.is_empty() {
                    return Err(LnsError::Protocol(format!(
                        "router_config accepted by station, but: {}",
                        problems.join("; ")
                    )));
                }
                Ok(*c)
            }
            ConfigOutcome::Ignored(e) => {
                Err(LnsError::Protocol(format!("router_config ignored: {e}")))
            }
            ConfigOutcome::Rejected(e) => Err(LnsError::Protocol(format!(
                "router_config rejected, station closes the connection: {e}"
            ))),
        }
    }

    /// Waits until the downlink with `diid` went on air (and its dntxed, if
    /// any, was sent). Fails with [`LnsError::Dropped`] if station dropped it.
    pub async fn wait_transmitted(
        &self,
        diid: i64,
        timeout: Duration,
    ) -> Result<Downlink, LnsError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = self.st();
                if let Some(d) = st
                    .downlinks
                    .iter()
                    .rev()
                    .find(|d| d.diid == diid && d.transmitted)
                {
                    return Ok(d.clone());
                }
                if let Some(d) = st.dropped.iter().rev().find(|d| d.diid == Some(diid)) {
                    return Err(LnsError::Dropped(d.reason.clone()));
                }
                if let Some(e) = &st.ended {
                    return Err(e.clone());
                }
            }
            if Instant::now() >= deadline {
                return Err(LnsError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Applied router_config, if any.
    pub fn router_config(&self) -> Option<RouterConfig> {
        self.st().config.clone()
    }

    /// Downlinks station accepted (queued or transmitted), in arrival order.
    pub fn downlinks(&self) -> Vec<Downlink> {
        self.st().downlinks.clone()
    }

    /// Downlinks station dropped silently, with the reason.
    pub fn dropped(&self) -> Vec<DroppedDownlink> {
        self.st().dropped.clone()
    }

    /// Current xtime of tx unit 0 (None before router_config).
    pub fn xtime_now(&self) -> Option<i64> {
        self.st().xtime_at(Instant::now())
    }

    /// Random radio session id (xtime bits 55–48).
    pub fn radio_session(&self) -> Option<u8> {
        self.st().radio.map(|r| r.session)
    }

    /// (xtime, gpstime) mapping from timesync, if any.
    pub fn gps_mapping(&self) -> Option<(i64, i64)> {
        self.st().gps
    }

    /// Station's monotonic clock in µs.
    pub fn monotonic_us(&self) -> i64 {
        self.st().mono_us(Instant::now())
    }

    /// Station's UTC clock (set by router_config's MuxTime).
    pub fn utc_now(&self) -> f64 {
        self.st().utc(Instant::now())
    }

    /// RefTime station would put into an uplink now.
    pub fn ref_time(&self) -> f64 {
        self.st().ref_time(Instant::now())
    }

    /// Pings received from the server (all answered unless switched off).
    pub fn pings_received(&self) -> u64 {
        self.st().pings
    }

    pub fn pongs_received(&self) -> u64 {
        self.st().pongs
    }

    /// Dead peer: stop answering pings (the socket stays open).
    pub fn stop_answering_pings(&self) {
        self.st().opts.answer_pings = false;
    }

    pub fn resume_answering_pings(&self) {
        self.st().opts.answer_pings = true;
    }

    /// Switch automatic `dntxed` off to simulate silent drops on air.
    pub fn set_auto_dntxed(&self, on: bool) {
        self.st().opts.auto_dntxed = on;
    }

    /// Every text message the simulator sent, in order (version first).
    pub fn sent_texts(&self) -> Vec<String> {
        self.st().sent.clone()
    }

    /// Every text message received.
    pub fn received_texts(&self) -> Vec<String> {
        self.st().received.clone()
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<LnsError> {
        self.st().ended.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.actor.as_ref().is_none_or(|a| a.is_finished())
    }

    async fn join(&mut self, timeout: Duration) {
        if let Some(mut a) = self.actor.take() {
            if tokio::time::timeout(timeout, &mut a).await.is_err() {
                a.abort();
            }
        }
    }

    /// Closes with code 1000 (as station does) and waits for the server's
    /// close reply (up to 2 s).
    pub async fn close(&mut self) -> Result<(), LnsError> {
        self.close_with(1000, "").await
    }

    pub async fn close_with(&mut self, code: u16, reason: &str) -> Result<(), LnsError> {
        let _ = self.cmds.send(Cmd::Close {
            code,
            reason: reason.to_string(),
        });
        self.join(Duration::from_secs(3)).await;
        Ok(())
    }

    /// Drops the TCP connection abruptly: no close frame.
    pub async fn abort(&mut self) {
        let _ = self.cmds.send(Cmd::Abort);
        self.join(Duration::from_secs(1)).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(a) = self.actor.take() {
            a.abort();
        }
    }
}

async fn read_frames(mut fr: FrameReader<ReadHalf<BoxIo>>, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        let f = fr.next().await;
        let end = matches!(
            f,
            Incoming::Eof | Incoming::IoError(_) | Incoming::Illegal(_) | Incoming::Close { .. }
        );
        if tx.send(f).is_err() || end {
            return;
        }
    }
}

/// What woke the background task.
enum Wake {
    Cmd(Option<Cmd>),
    Frame(Option<Incoming>),
    Timer,
}

/// The background task's state: owns the writer.
struct Actor {
    state: Arc<Mutex<State>>,
    wr: WriteHalf<BoxIo>,
    events: mpsc::UnboundedSender<Event>,
    /// Set once station sent its close frame: wait this long for the reply.
    closing_deadline: Option<Instant>,
}

impl Actor {
    async fn write(&mut self, opcode: u8, payload: &[u8]) -> Result<(), LnsError> {
        write_frame(&mut self.wr, &ws::encode_frame(opcode, payload)?).await
    }

    /// Sends a text and logs it.
    async fn write_text(&mut self, text: String) -> Result<(), LnsError> {
        self.write(ws::OP_TEXT, text.as_bytes()).await?;
        self.state.lock().unwrap().sent.push(text);
        Ok(())
    }

    fn wake_time(&self) -> Option<Instant> {
        let due = self.state.lock().unwrap().next_due();
        match (due, self.closing_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one wake-up; `Err` ends the session with that reason.
    async fn step(&mut self, w: Wake) -> Result<(), LnsError> {
        match w {
            Wake::Cmd(c) => self.on_cmd(c).await,
            Wake::Frame(f) => self.on_frame(f.unwrap_or(Incoming::Eof)).await,
            Wake::Timer => self.on_timer().await,
        }
    }

    async fn on_cmd(&mut self, c: Option<Cmd>) -> Result<(), LnsError> {
        match c {
            None => Err(LnsError::Ws("session dropped".into())),
            Some(Cmd::Abort) => Err(LnsError::Closed {
                code: None,
                reason: ABORTED.into(),
            }),
            Some(Cmd::Send { frame, log, done }) => {
                let r = write_frame(&mut self.wr, &frame).await;
                if let (Ok(()), Some(l)) = (&r, log) {
                    self.state.lock().unwrap().sent.push(l);
                }
                let _ = done.send(r.clone());
                r
            }
            Some(Cmd::Close { code, reason }) => {
                self.write(ws::OP_CLOSE, &ws::close_payload(code, &reason))
                    .await?;
                self.closing_deadline = Some(Instant::now() + Duration::from_secs(2));
                Ok(())
            }
        }
    }

    async fn on_frame(&mut self, f: Incoming) -> Result<(), LnsError> {
        match f {
            Incoming::Eof => Err(LnsError::Closed {
                code: None,
                reason: "connection closed without close frame".into(),
            }),
            Incoming::IoError(e) => Err(LnsError::Ws(format!("read failed: {e}"))),
            Incoming::Illegal(e) => Err(LnsError::Protocol(format!("Illegal WS frame: {e}"))),
            Incoming::Close { code, reason } => {
                if self.closing_deadline.is_none() {
                    // station answers a close
                    let p = code.map(|c| ws::close_payload(c, "")).unwrap_or_default();
                    let _ = self.write(ws::OP_CLOSE, &p).await;
                }
                Err(LnsError::Closed { code, reason })
            }
            Incoming::Ping(p) => {
                let answer = {
                    let mut st = self.state.lock().unwrap();
                    st.pings += 1;
                    st.opts.answer_pings
                };
                if answer {
                    self.write(ws::OP_PONG, &p).await?;
                }
                Ok(())
            }
            Incoming::Pong(_) => {
                self.state.lock().unwrap().pongs += 1;
                Ok(())
            }
            Incoming::Binary(b) => {
                let _ = self.events.send(Ok(ServerMessage::Binary(b)));
                Ok(())
            }
            Incoming::Text(t) => {
                let (msg, replies, close) = self.state.lock().unwrap().on_text(&t, Instant::now());
                let reason = match &msg {
                    ServerMessage::RouterConfig(ConfigOutcome::Rejected(r)) => r.clone(),
                    _ => String::new(),
                };
                let mut written = Ok(());
                for r in replies {
                    written = self.write_text(r).await;
                    if written.is_err() {
                        break;
                    }
                }
                let _ = self.events.send(Ok(msg));
                written?;
                if close {
                    // station closes (code 1000) and goes back to discovery
                    let _ = self.write(ws::OP_CLOSE, &ws::close_payload(1000, "")).await;
                    return Err(LnsError::Closed {
                        code: Some(1000),
                        reason: format!("station closed: router_config rejected: {reason}"),
                    });
                }
                Ok(())
            }
        }
    }

    async fn on_timer(&mut self) -> Result<(), LnsError> {
        if self.closing_deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(LnsError::Closed {
                code: None,
                reason: "no close reply from server".into(),
            });
        }
        let due = self.state.lock().unwrap().take_due(Instant::now());
        for j in due {
            self.write_text(j).await?;
        }
        Ok(())
    }
}

const ABORTED: &str = "aborted by the simulator";

/// The background task: reacts to frames, commands and the TX timer.
async fn run(
    state: Arc<Mutex<State>>,
    wr: WriteHalf<BoxIo>,
    mut frames: mpsc::UnboundedReceiver<Incoming>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Event>,
    reader: JoinHandle<()>,
) {
    let mut a = Actor {
        state,
        wr,
        events,
        closing_deadline: None,
    };
    let end = loop {
        let wake = a.wake_time();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let w = tokio::select! {
            c = cmds.recv() => Wake::Cmd(c),
            f = frames.recv() => Wake::Frame(f),
            _ = sleep => Wake::Timer,
        };
        if let Err(e) = a.step(w).await {
            break e;
        }
    };
    reader.abort();
    let aborted = matches!(&end, LnsError::Closed { code: None, reason } if reason == ABORTED);
    if !aborted {
        let _ = a.wr.shutdown().await;
    }
    a.state.lock().unwrap().ended = Some(end.clone());
    let _ = a.events.send(Err(end));
}
