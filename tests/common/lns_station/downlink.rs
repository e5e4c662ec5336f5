//! Downlinks as station handles them (spec §5): `dnmsg` fields (§5.1), TX
//! time for class A/B/C (§5.2–§5.4), `dnsched` entries, limits (§5.5), the
//! airtime formula and the duty cycle (§5.7), and the `dntxed` text (§5.6).
//!
//! Modelled simplifications: a new frame that collides with an already queued
//! one (overlap on the same tx unit, or a band blocked by the duty cycle)
//! always yields to it (station may instead move the queued one when the new
//! one has a higher priority); LBT/CCA always finds the channel free.

use serde_json::Value;

use super::config::RouterConfig;
use super::json::{self, Obj};

/// `TX_AIM_GAP`: a frame due sooner than this goes to its alternative.
pub const TX_AIM_GAP_US: i64 = 20_000;
/// `TX_MIN_GAP` between frames on one antenna.
pub const TX_MIN_GAP_US: i64 = 10_000;
/// `TX_MAX_AHEAD`: frames further in the future are rejected.
pub const TX_MAX_AHEAD_US: i64 = 600_000_000;
/// `CLASS_C_BACKOFF_BY` / `CLASS_C_BACKOFF_MAX`.
pub const CLASS_C_BACKOFF_US: i64 = 100_000;
pub const CLASS_C_BACKOFF_MAX: u32 = 10;
/// `MAX_TXJOBS` / `MAX_TXDATA`.
pub const MAX_TXJOBS: usize = 128;
pub const MAX_TXDATA: usize = 16 * 1024;
/// Station reports `dntxed` once it checked the radio 5 ms into TX.
pub const DNTXED_AFTER_US: i64 = 5_000;

/// A `dnmsg` as received, fields decoded where their type was right.
#[derive(Debug, Clone, PartialEq)]
pub struct Dnmsg {
    pub raw: Value,
    pub dev_eui: Option<u64>,
    pub dc: Option<i64>,
    /// `diid`, or the old name `seqno`.
    pub diid: Option<i64>,
    pub pdu_hex: Option<String>,
    pub pdu: Option<Vec<u8>>,
    pub rx_delay: Option<i64>,
    pub rx1dr: Option<i64>,
    pub rx1freq: Option<i64>,
    pub rx2dr: Option<i64>,
    pub rx2freq: Option<i64>,
    /// RX1 came as `DR`/`Freq` (then RxDelay is 0: TX exactly at xtime).
    pub dr_form: bool,
    pub xtime: Option<i64>,
    pub rctx: Option<i64>,
    pub gpstime: Option<i64>,
    pub priority: Option<i64>,
    pub mux_time: Option<f64>,
    pub preamble: Option<i64>,
    pub addcrc: Option<bool>,
    pub dnmode: Option<String>,
    /// Value errors (wrong type, out of range): station ignores the message.
    pub errors: Vec<String>,
}

impl Dnmsg {
    pub fn parse(raw: &Value) -> Dnmsg {
        let mut d = Dnmsg {
            raw: raw.clone(),
            dev_eui: None,
            dc: None,
            diid: None,
            pdu_hex: None,
            pdu: None,
            rx_delay: None,
            rx1dr: None,
            rx1freq: None,
            rx2dr: None,
            rx2freq: None,
            dr_form: false,
            xtime: None,
            rctx: None,
            gpstime: None,
            priority: None,
            mux_time: None,
            preamble: None,
            addcrc: None,
            dnmode: None,
            errors: Vec::new(),
        };
        let Some(o) = raw.as_object() else {
            d.errors.push("not an object".into());
            return d;
        };
        let int = |k: &str, v: &Value, lo: i64, hi: i64, errors: &mut Vec<String>| -> Option<i64> {
            match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Some(n),
                _ => {
                    errors.push(format!("{k}: {v} is not an integer in {lo}..={hi}"));
                    None
                }
            }
        };
        let mut errors = Vec::new();
        for (k, v) in o {
            let e = &mut errors;
            match k.as_str() {
                "msgtype" => {}
                "DevEui" | "DevEUI" => {
                    d.dev_eui = json::parse_eui(v);
                    if d.dev_eui.is_none() {
                        e.push(format!("{k}: bad EUI {v}"));
                    }
                }
                "dC" => d.dc = int(k, v, 0, 2, e),
                "diid" | "seqno" => d.diid = int(k, v, i64::MIN, i64::MAX, e),
                "pdu" => match v.as_str() {
                    Some(s) => {
                        d.pdu_hex = Some(s.to_string());
                        match json::from_hex(s) {
                            Some(b) if b.len() <= 255 => d.pdu = Some(b),
                            Some(b) => e.push(format!("pdu: {} bytes, at most 255", b.len())),
                            None => e.push("pdu: not hex".into()),
                        }
                    }
                    None => e.push(format!("pdu: expected hex string, got {v}")),
                },
                "RxDelay" => d.rx_delay = int(k, v, 0, 15, e),
                "RX1DR" => d.rx1dr = int(k, v, 0, 15, e),
                "RX1Freq" => d.rx1freq = int(k, v, 0, i64::from(u32::MAX), e),
                "DR" => {
                    d.rx1dr = int(k, v, 0, 15, e);
                    d.dr_form = true;
                }
                "Freq" => d.rx1freq = int(k, v, 0, i64::from(u32::MAX), e),
                "RX2DR" => d.rx2dr = int(k, v, 0, 15, e),
                "RX2Freq" => d.rx2freq = int(k, v, 0, i64::from(u32::MAX), e),
                "xtime" => d.xtime = int(k, v, i64::MIN, i64::MAX, e),
                "rctx" => d.rctx = int(k, v, i64::MIN, i64::MAX, e),
                "gpstime" => d.gpstime = int(k, v, 0, i64::MAX, e),
                "priority" => d.priority = int(k, v, 0, 255, e),
                "preamble" => d.preamble = int(k, v, 0, 65535, e),
                "MuxTime" => match v.as_f64() {
                    Some(t) => d.mux_time = Some(t),
                    None => e.push(format!("MuxTime: expected number, got {v}")),
                },
                "addcrc" => match v {
                    Value::Bool(b) => d.addcrc = Some(*b),
                    Value::Number(n) if n.as_i64().is_some() => {
                        d.addcrc = Some(n.as_i64() != Some(0))
                    }
                    _ => e.push(format!("addcrc: expected bool/int, got {v}")),
                },
                "dnmode" => d.dnmode = v.as_str().map(str::to_string),
                _ => {} // unknown keys: skipped
            }
        }
        d.errors = errors;
        d
    }

    /// The RxDelay station uses: `DR` form → 0; else absent or 0 → 1.
    pub fn effective_rx_delay(&self) -> i64 {
        if self.dr_form {
            0
        } else {
            match self.rx_delay {
                None | Some(0) => 1,
                Some(d) => d,
            }
        }
    }
}

/// Which slot station picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxSlot {
    /// Class A RX1, or class C at an exact time (DR/Freq or RX1 + xtime).
    Rx1,
    /// Class A RX2 at RX1 + 1 s.
    Rx2,
    /// Class C "as soon as possible" on the RX2 parameters.
    ClassCAsap,
    /// Class B at a GPS time.
    ClassB,
    /// A `dnsched` entry.
    DnSched,
}

/// A frame station accepted and queued (or already sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Downlink {
    pub diid: i64,
    /// 0 for dnsched entries (no dntxed).
    pub dev_eui: u64,
    pub dc: i64,
    pub pdu: Vec<u8>,
    pub dr: i64,
    pub freq: i64,
    pub rctx: i64,
    pub priority: i64,
    pub slot: TxSlot,
    /// Concentrator time of the TX start (same session bits as the radio).
    pub tx_xtime: i64,
    /// GPS time to report in dntxed (requested one for class B, else mapped or 0).
    pub gpstime: i64,
    pub airtime_us: i64,
    pub txpow_dbm: f64,
    /// Class C backoff steps used.
    pub backoffs: u32,
    /// The frame went on air (its TX time has passed).
    pub transmitted: bool,
    /// The dntxed text sent for it, if any.
    pub dntxed: Option<String>,
}

impl Downlink {
    pub fn end_xtime(&self) -> i64 {
        self.tx_xtime + self.airtime_us
    }
}

/// A frame station dropped without telling the server.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedDownlink {
    pub diid: Option<i64>,
    pub dev_eui: Option<u64>,
    pub reason: String,
}

/// What happened to one dnmsg / dnsched entry.
#[derive(Debug, Clone, PartialEq)]
pub enum DnOutcome {
    Scheduled(Box<Downlink>),
    Dropped(String),
}

impl DnOutcome {
    pub fn scheduled(&self) -> Option<&Downlink> {
        match self {
            DnOutcome::Scheduled(d) => Some(d),
            DnOutcome::Dropped(_) => None,
        }
    }
}

/// Radio/time context for scheduling.
#[derive(Debug, Clone)]
pub struct TxContext<'a> {
    pub config: Option<&'a RouterConfig>,
    /// Current xtime of tx unit 0 (None: radio not running).
    pub now_xtime: Option<i64>,
    /// SX130x time sync ready (class C needs it).
    pub sync_ready: bool,
    /// (xtime, gpstime) pair mapping concentrator to GPS time.
    pub gps: Option<(i64, i64)>,
    /// Frames already queued or sent in this radio session.
    pub queued: &'a [Downlink],
    /// Whether duty cycle rules apply (`nodc` not set).
    pub duty_cycle: bool,
}

const LOW48: i64 = (1 << 48) - 1;

/// Session bits (55–48) of an xtime.
pub fn xtime_session(x: i64) -> u8 {
    ((x >> 48) & 0xFF) as u8
}

/// tx unit bits (62–56) of an xtime.
pub fn xtime_rctx(x: i64) -> i64 {
    (x >> 56) & 0x7F
}

/// µs part (47–0).
pub fn xtime_us(x: i64) -> i64 {
    x & LOW48
}

/// LoRa/FSK airtime in µs (§5.7, standard Semtech formula, CR 4/5, explicit
/// header, LDRO for SF11/12 at 125 kHz).
pub fn airtime_us(sf: i64, bw_khz: i64, len: usize, preamble: i64, crc: bool) -> i64 {
    if sf == 0 {
        return ((len as i64 + 11) * 8 * 1_000_000) / 50_000;
    }
    let bw = bw_khz * 1000;
    let de = i64::from(sf >= 11 && bw_khz == 125);
    let pl = len as i64;
    let num = 8 * pl - 4 * sf + 28 + if crc { 16 } else { 0 };
    let den = 4 * (sf - 2 * de);
    let payload_sym = 8 + (((num + den - 1).div_euclid(den)).max(0)) * 5;
    // symbols ×4 to keep the .25 of the preamble exact
    let sym4 = (preamble * 4 + 17) + payload_sym * 4;
    // Tsym = 2^SF / BW s
    (sym4 * (1i64 << sf) * 1_000_000).div_euclid(4 * bw)
}

/// Duty-cycle factor k for a frequency in a region (§5.7), or None.
pub fn dc_factor(region: Option<&str>, freq: i64) -> Option<i64> {
    match region {
        Some("EU868") => Some(if (869_400_000..=869_650_000).contains(&freq) {
            10
        } else if (868_000_000..=868_600_000).contains(&freq)
            || (869_700_000..=870_000_000).contains(&freq)
        {
            100
        } else {
            1000
        }),
        Some("KR920") => Some(50),
        Some("AS923-1") => Some(10),
        _ => None,
    }
}

/// Duty-cycle band key: EU868 per band, KR920/AS923-1 per channel.
fn dc_band(region: Option<&str>, freq: i64) -> i64 {
    match region {
        Some("EU868") => match dc_factor(region, freq) {
            Some(10) => 1,
            Some(100) => 2,
            _ => 3,
        },
        _ => freq,
    }
}

/// Why a TX time cannot be used, or None when it can.
fn blocked(
    ctx: &TxContext,
    cfg: &RouterConfig,
    rctx: i64,
    freq: i64,
    start: i64,
    air: i64,
) -> Option<String> {
    let now = ctx.now_xtime.unwrap_or(0);
    if start < now + TX_AIM_GAP_US {
        return Some(format!("too late (due {} µs from now)", start - now));
    }
    if start - now > TX_MAX_AHEAD_US {
        return Some("more than TX_MAX_AHEAD (600 s) in the future".into());
    }
    for q in ctx.queued.iter().filter(|q| q.rctx == rctx) {
        if start < q.end_xtime() + TX_MIN_GAP_US && q.tx_xtime < start + air + TX_MIN_GAP_US {
            return Some(format!("overlaps diid {} on air", q.diid));
        }
    }
    if ctx.duty_cycle {
        if let Some(k) = dc_factor(cfg.region, freq) {
            let band = dc_band(cfg.region, freq);
            for q in ctx.queued.iter().filter(|q| {
                q.rctx == rctx && dc_band(cfg.region, q.freq) == band && q.tx_xtime <= start
            }) {
                // station's integer airtime is up to ~0.01 % longer: be as strict
                let free = q.tx_xtime + (q.airtime_us * k) + (q.airtime_us * k) / 10_000;
                if start < free {
                    return Some(format!(
                        "duty cycle: band busy until {} µs after diid {} started",
                        free - q.tx_xtime,
                        q.diid
                    ));
                }
            }
        }
    }
    None
}

struct Candidate {
    slot: TxSlot,
    dr: i64,
    freq: i64,
    start: i64,
    /// Class C backoff allowed on this candidate.
    backoff: bool,
}

/// Validates and places a dnmsg (§5.1–§5.5). Returns the queued frame or
/// the reason station drops it silently.
pub fn schedule_dnmsg(m: &Dnmsg, ctx: &TxContext) -> DnOutcome {
    match place_dnmsg(m, ctx) {
        Ok(d) => DnOutcome::Scheduled(Box::new(d)),
        Err(e) => DnOutcome::Dropped(e),
    }
}

fn check_dr_freq(cfg: &RouterConfig, dr: i64, freq: i64) -> Result<(), String> {
    if !cfg.dr(dr).is_some_and(|d| d.is_defined()) {
        return Err(format!("DR{dr} not defined in DRs"));
    }
    if !cfg.freq_ok(freq) {
        return Err(format!(
            "frequency {freq} outside freq_range {}..{}",
            cfg.freq_range.0, cfg.freq_range.1
        ));
    }
    Ok(())
}

fn place_dnmsg(m: &Dnmsg, ctx: &TxContext) -> Result<Downlink, String> {
    let cfg = match ctx.config {
        Some(c) if c.downlinks_enabled => c,
        Some(_) => return Err("no recognised region in router_config".into()),
        None => return Err("no router_config yet".into()),
    };
    if !m.errors.is_empty() {
        return Err(format!("value error: {}", m.errors.join("; ")));
    }
    let dev_eui = m.dev_eui.ok_or("DevEui missing")?;
    let dc = m.dc.ok_or("dC missing")?;
    let diid = m.diid.ok_or("diid missing")?;
    let pdu = m.pdu.clone().ok_or("pdu missing")?;
    let rx1 = match (m.rx1dr, m.rx1freq) {
        (Some(d), Some(f)) => Some((d, f)),
        (None, None) => None,
        _ => return Err("RX1DR/RX1Freq (DR/Freq) must come together".into()),
    };
    let rx2 = match (m.rx2dr, m.rx2freq) {
        (Some(d), Some(f)) => Some((d, f)),
        (None, None) => None,
        _ => return Err("RX2DR/RX2Freq must come together".into()),
    };
    for (d, f) in rx1.iter().chain(rx2.iter()) {
        check_dr_freq(cfg, *d, *f)?;
    }
    let xtime = m.xtime.filter(|x| *x != 0);
    let rctx = m.rctx.unwrap_or_else(|| xtime.map(xtime_rctx).unwrap_or(0));
    if rctx != 0 {
        return Err(format!(
            "tx unit {rctx} does not exist (single radio, unit 0)"
        ));
    }
    let now = ctx.now_xtime.ok_or("radio not running")?;
    // same tx unit and session: the top 16 bits must match
    let xtime_ok = xtime.filter(|x| x >> 48 == now >> 48);
    let delay_us = m.effective_rx_delay() * 1_000_000;
    let asap = now + TX_AIM_GAP_US;
    let mut cands = Vec::new();
    let mut gpstime = 0;
    match dc {
        0 => {
            let x = xtime_ok.ok_or_else(|| {
                format!(
                    "dropped due to time conversion problems - xtime={}",
                    xtime.unwrap_or(0)
                )
            })?;
            if let Some((d, f)) = rx1 {
                cands.push(Candidate {
                    slot: TxSlot::Rx1,
                    dr: d,
                    freq: f,
                    start: x + delay_us,
                    backoff: false,
                });
            }
            if let Some((d, f)) = rx2 {
                cands.push(Candidate {
                    slot: TxSlot::Rx2,
                    dr: d,
                    freq: f,
                    start: x + delay_us + 1_000_000,
                    backoff: false,
                });
            }
        }
        2 => {
            if !ctx.sync_ready {
                return Err("no time sync to SX130X yet".into());
            }
            if let Some((d, f)) = rx1 {
                if let Some(x) = xtime_ok {
                    cands.push(Candidate {
                        slot: TxSlot::Rx1,
                        dr: d,
                        freq: f,
                        start: x + delay_us,
                        backoff: false,
                    });
                } else if rx2.is_none() {
                    return Err(format!(
                        "dropped due to time conversion problems - xtime={}",
                        xtime.unwrap_or(0)
                    ));
                }
            }
            if let Some((d, f)) = rx2 {
                cands.push(Candidate {
                    slot: TxSlot::ClassCAsap,
                    dr: d,
                    freq: f,
                    start: asap,
                    backoff: true,
                });
            }
        }
        _ => {
            let g = m
                .gpstime
                .filter(|g| *g != 0)
                .ok_or("class B without gpstime")?;
            let (d, f) = rx1.ok_or("class B without DR/Freq")?;
            let (gx, gg) = ctx
                .gps
                .ok_or("Cannot convert GPS time - missing PPS time sync")?;
            gpstime = g;
            cands.push(Candidate {
                slot: TxSlot::ClassB,
                dr: d,
                freq: f,
                start: gx + (g - gg),
                backoff: false,
            });
        }
    }
    if cands.is_empty() {
        return Err("no RX1 or RX2 parameters".into());
    }
    let jobs = ctx.queued.iter().filter(|q| !q.transmitted).count();
    if jobs >= MAX_TXJOBS {
        return Err("Out of TX jobs".into());
    }
    let data: usize = ctx
        .queued
        .iter()
        .filter(|q| !q.transmitted)
        .map(|q| q.pdu.len())
        .sum();
    if data + pdu.len() > MAX_TXDATA {
        return Err("Out of TX data space".into());
    }
    let mut last = String::new();
    for c in cands {
        let drdef = cfg.dr(c.dr).unwrap();
        let air = airtime_us(
            drdef.sf,
            drdef.bw,
            pdu.len(),
            m.preamble.unwrap_or(8),
            m.addcrc.unwrap_or(false),
        );
        let tries = if c.backoff { CLASS_C_BACKOFF_MAX } else { 0 };
        for b in 0..=tries {
            let start = c.start + i64::from(b) * CLASS_C_BACKOFF_US;
            match blocked(ctx, cfg, rctx, c.freq, start, air) {
                None => {
                    let gps = if c.slot == TxSlot::ClassB {
                        gpstime
                    } else {
                        ctx.gps.map(|(gx, gg)| gg + (start - gx)).unwrap_or(0)
                    };
                    return Ok(Downlink {
                        diid,
                        dev_eui,
                        dc,
                        pdu,
                        dr: c.dr,
                        freq: c.freq,
                        rctx,
                        priority: m.priority.unwrap_or(0),
                        slot: c.slot,
                        tx_xtime: start,
                        gpstime: gps,
                        airtime_us: air,
                        txpow_dbm: cfg.tx_power(c.freq),
                        backoffs: b,
                        transmitted: false,
                        dntxed: None,
                    });
                }
                Some(why) => last = format!("{:?}: {why}", c.slot),
            }
        }
    }
    Err(format!("unable to place frame ({last})"))
}

/// Places one `dnsched` entry (§5.4): absolute time, no alternative, no
/// dntxed.
pub fn schedule_dnsched_entry(e: &Value, ctx: &TxContext) -> DnOutcome {
    let r = (|| -> Result<Downlink, String> {
        let cfg = match ctx.config {
            Some(c) if c.downlinks_enabled => c,
            Some(_) => return Err("no recognised region in router_config".into()),
            None => return Err("no router_config yet".into()),
        };
        let dr = e.get("DR").and_then(Value::as_i64).ok_or("DR missing")?;
        let freq = e
            .get("Freq")
            .and_then(Value::as_i64)
            .ok_or("Freq missing")?;
        let pdu = e
            .get("pdu")
            .and_then(Value::as_str)
            .and_then(json::from_hex)
            .ok_or("pdu missing")?;
        if pdu.len() > 255 {
            return Err("pdu over 255 bytes".into());
        }
        check_dr_freq(cfg, dr, freq)?;
        let now = ctx.now_xtime.ok_or("radio not running")?;
        let rctx = e.get("rctx").and_then(Value::as_i64).unwrap_or(0);
        if rctx != 0 {
            return Err(format!("tx unit {rctx} does not exist"));
        }
        let gps = e.get("gpstime").and_then(Value::as_i64).or_else(|| {
            e.get("ontime")
                .and_then(Value::as_i64)
                .map(|s| s * 1_000_000)
        });
        let start = if let Some(g) = gps {
            let (gx, gg) = ctx.gps.ok_or("DNSCHED failed to convert gpstime")?;
            gx + (g - gg)
        } else if let Some(x) = e.get("xtime").and_then(Value::as_i64) {
            if x >> 48 != now >> 48 {
                return Err(format!("xtime {x} from another session or tx unit"));
            }
            x
        } else {
            return Err("no gpstime/ontime/xtime".into());
        };
        let d = cfg.dr(dr).unwrap();
        let air = airtime_us(
            d.sf,
            d.bw,
            pdu.len(),
            e.get("preamble").and_then(Value::as_i64).unwrap_or(8),
            e.get("addcrc")
                .is_some_and(|v| v.as_bool() == Some(true) || v.as_i64().is_some_and(|n| n != 0)),
        );
        if let Some(why) = blocked(ctx, cfg, rctx, freq, start, air) {
            return Err(format!("unable to place frame ({why})"));
        }
        Ok(Downlink {
            diid: e.get("diid").and_then(Value::as_i64).unwrap_or(0),
            dev_eui: 0,
            dc: -1,
            pdu,
            dr,
            freq,
            rctx,
            priority: e.get("priority").and_then(Value::as_i64).unwrap_or(0),
            slot: TxSlot::DnSched,
            tx_xtime: start,
            gpstime: gps.unwrap_or(0),
            airtime_us: air,
            txpow_dbm: cfg.tx_power(freq),
            backoffs: 0,
            transmitted: false,
            dntxed: None,
        })
    })();
    match r {
        Ok(d) => DnOutcome::Scheduled(Box::new(d)),
        Err(e) => DnOutcome::Dropped(e),
    }
}

/// The `dntxed` text (§5.6) for a transmitted frame. `txtime` is station's
/// monotonic clock in seconds.
pub fn dntxed_json(d: &Downlink, txtime: f64, eui_caps: bool) -> String {
    Obj::new()
        .str("msgtype", "dntxed")
        .int("seqno", d.diid)
        .int("diid", d.diid)
        .int("DR", d.dr)
        .int("Freq", d.freq)
        .str(
            if eui_caps { "DevEUI" } else { "DevEui" },
            &json::eui_dashes(d.dev_eui),
        )
        .int("rctx", d.rctx)
        .int("xtime", d.tx_xtime)
        .time("txtime", txtime)
        .int("gpstime", d.gpstime)
        .finish()
}
