//! `router_config` handling as station does it (spec §3.2, §3.3; s2e.c
//! `handle_router_config`, sx130xconf.c). Three outcomes:
//! * value error while parsing → the whole message is ignored, connection
//!   stays ([`ConfigOutcome::Ignored`]);
//! * no `hwspec`/`sx1301_conf`, or a radio setup failure → station closes
//!   the connection ([`ConfigOutcome::Rejected`]);
//! * otherwise applied ([`ConfigOutcome::Applied`]); with an unrecognised
//!   region downlinks stay disabled.
//!
//! Things station accepts but that the spec advises against (missing
//! `MuxTime`, not 16 DRs, hardware-specific sx1301 fields, unknown keys, ...)
//! are collected in [`RouterConfig::problems`].

use serde_json::{Map, Value};

/// Region names station recognises, with aliases → canonical name (§3.2).
pub const REGIONS: &[(&str, &str)] = &[
    ("EU868", "EU868"),
    ("EU863", "EU868"),
    ("US915", "US915"),
    ("US902", "US915"),
    ("AU915", "AU915"),
    ("KR920", "KR920"),
    ("AS923-1", "AS923-1"),
    ("AS923JP", "AS923-1"),
    ("IL915", "IL915"),
];

/// Canonical region name for a name station recognises.
pub fn canonical_region(name: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Keys of `sx1301_conf` aliases (§3.2).
pub const SX1301_CONF_KEYS: &[&str] = &[
    "sx1301_conf",
    "SX1301_conf",
    "sx1302_conf",
    "SX1302_conf",
    "radio_conf",
];

const TOP_KEYS: &[&str] = &[
    "msgtype",
    "region",
    "hwspec",
    "freq_range",
    "DRs",
    "upchannels",
    "max_eirp",
    "NetID",
    "JoinEui",
    "JoinEUI",
    "MuxTime",
    "bcning",
    "nocca",
    "nodc",
    "nodwell",
    "device_mode",
];

const RADIO_KEYS: &[&str] = &[
    "enable",
    "freq",
    "tx_enable",
    "type",
    "rssi_offset",
    "antenna_gain",
    "txpow_adjust",
    "tx_notch_freq",
    "rssi_offset_lbt",
];
const CHAN_KEYS: &[&str] = &[
    "enable",
    "radio",
    "rf_chain",
    "if",
    "freq",
    "bandwidth",
    "spread_factor",
    "datarate",
    "sync_word",
    "sync_word_size",
];
const SX_TOP_KEYS: &[&str] = &[
    "radio_0",
    "radio_1",
    "chan_multiSF_0",
    "chan_multiSF_1",
    "chan_multiSF_2",
    "chan_multiSF_3",
    "chan_multiSF_4",
    "chan_multiSF_5",
    "chan_multiSF_6",
    "chan_multiSF_7",
    "chan_Lora_std",
    "chan_FSK",
    "lorawan_public",
    "clksrc",
    "device",
    "pps",
    "tx_gain_lut",
    "antenna_gain",
    "lbt_cfg",
];
/// Hardware-specific fields the server should leave to the gateway (§3.3).
const HW_SPECIFIC: &[&str] = &[
    "type",
    "rssi_offset",
    "tx_enable",
    "tx_gain_lut",
    "clksrc",
    "antenna_gain",
];

/// One `DRs` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrDef {
    /// 7..12 LoRa, 0 FSK, −1 undefined.
    pub sf: i64,
    /// kHz (125/250/500) for LoRa.
    pub bw: i64,
    pub dnonly: bool,
}

impl DrDef {
    pub const UNDEFINED: DrDef = DrDef {
        sf: -1,
        bw: 0,
        dnonly: false,
    };
    pub fn is_defined(&self) -> bool {
        self.sf != -1
    }
    pub fn is_fsk(&self) -> bool {
        self.sf == 0
    }
}

/// A router_config station applied.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The message as received, for field-by-field checks.
    pub raw: Value,
    /// `region` as sent.
    pub region_raw: Option<String>,
    /// Canonical recognised region (EU868, US915, AU915, KR920, AS923-1, IL915).
    pub region: Option<&'static str>,
    /// False when the region is missing or not recognised: station then
    /// drops every dnmsg/dnsched.
    pub downlinks_enabled: bool,
    pub hwspec: String,
    /// `[min, max]` Hz; (0, 0) when missing (all downlinks rejected).
    pub freq_range: (i64, i64),
    /// Always 16 entries; missing ones undefined.
    pub drs: Vec<DrDef>,
    pub mux_time: Option<f64>,
    /// `None` = all NetIDs.
    pub net_ids: Option<Vec<i64>>,
    /// `None` = all JoinEUIs.
    pub join_eui_ranges: Option<Vec<(u64, u64)>>,
    /// `JoinEUI` (capital) was used: uplinks/dntxed use `JoinEUI`/`DevEUI`.
    pub eui_caps: bool,
    pub upchannels: Option<Vec<(i64, i64, i64)>>,
    pub max_eirp: Option<f64>,
    pub nocca: bool,
    pub nodc: bool,
    pub nodwell: bool,
    pub device_mode: bool,
    /// Which key carried the radio config (`sx1301_conf` or an alias).
    pub sx1301_conf_key: String,
    /// Element 0 of it.
    pub sx1301_conf: Map<String, Value>,
    /// Accepted by station but advised against by the spec.
    pub problems: Vec<String>,
}

impl RouterConfig {
    pub fn dr(&self, dr: i64) -> Option<DrDef> {
        usize::try_from(dr)
            .ok()
            .and_then(|i| self.drs.get(i))
            .copied()
    }

    pub fn freq_ok(&self, f: i64) -> bool {
        f >= self.freq_range.0 && f <= self.freq_range.1
    }

    /// TX power in dBm EIRP station uses for `freq` (§3.2 built-in values,
    /// lowered by `max_eirp`, which also caps the special sub-bands).
    pub fn tx_power(&self, freq: i64) -> f64 {
        let (base, special) = match self.region {
            Some("EU868") => (
                16.0,
                (869_400_000..=869_650_000).contains(&freq).then_some(27.0),
            ),
            Some("US915") => (26.0, None),
            Some("AU915") => (30.0, None),
            Some("KR920") => (23.0, None),
            Some("AS923-1") => (13.0, None),
            Some("IL915") => (
                14.0,
                (916_200_000..=916_400_000).contains(&freq).then_some(20.0),
            ),
            _ => (14.0, None),
        };
        let p = special.unwrap_or(base);
        match self.max_eirp {
            Some(m) if m < p => m,
            _ => p,
        }
    }
}

#[derive(Debug, Clone)]
pub enum ConfigOutcome {
    Applied(Box<RouterConfig>),
    /// Value error: message ignored, connection kept, nothing applied.
    Ignored(String),
    /// Station closes the connection (code 1000).
    Rejected(String),
}

fn int(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{what}: expected integer, got {v}"))
}

fn boolean(v: &Value, what: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64().is_some() => Ok(n.as_i64() != Some(0)),
        _ => Err(format!("{what}: expected bool, got {v}")),
    }
}

/// Evaluates a parsed `router_config` message as station would.
pub fn evaluate(raw: &Value) -> ConfigOutcome {
    match parse(raw) {
        Err(Fail::Ignored(e)) => ConfigOutcome::Ignored(e),
        Err(Fail::Rejected(e)) => ConfigOutcome::Rejected(e),
        Ok(c) => ConfigOutcome::Applied(Box::new(c)),
    }
}

enum Fail {
    Ignored(String),
    Rejected(String),
}

fn parse(raw: &Value) -> Result<RouterConfig, Fail> {
    let ign = Fail::Ignored;
    let obj = raw
        .as_object()
        .ok_or_else(|| ign("router_config is not an object".into()))?;
    let mut c = RouterConfig {
        raw: raw.clone(),
        region_raw: None,
        region: None,
        downlinks_enabled: false,
        hwspec: String::new(),
        freq_range: (0, 0),
        drs: vec![DrDef::UNDEFINED; 16],
        mux_time: None,
        net_ids: None,
        join_eui_ranges: None,
        eui_caps: false,
        upchannels: None,
        max_eirp: None,
        nocca: false,
        nodc: false,
        nodwell: false,
        device_mode: false,
        sx1301_conf_key: String::new(),
        sx1301_conf: Map::new(),
        problems: Vec::new(),
    };
    let mut hwspec = None;
    let mut sxconf = None;
    let mut have_freq_range = false;
    let mut have_drs = false;
    for (k, v) in obj {
        match k.as_str() {
            "msgtype" => {}
            "hwspec" => {
                hwspec = Some(
                    v.as_str()
                        .ok_or_else(|| ign(format!("hwspec: expected string, got {v}")))?
                        .to_string(),
                )
            }
            "region" => {
                let r = v
                    .as_str()
                    .ok_or_else(|| ign(format!("region: expected string, got {v}")))?;
                c.region_raw = Some(r.to_string());
                c.region = canonical_region(r);
            }
            "freq_range" => {
                let a = v
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| ign(format!("freq_range: expected [min,max], got {v}")))?;
                let lo = int(&a[0], "freq_range").map_err(ign)?;
                let hi = int(&a[1], "freq_range").map_err(ign)?;
                if lo > hi {
                    c.problems.push(format!("freq_range min {lo} > max {hi}"));
                }
                c.freq_range = (lo, hi);
                have_freq_range = true;
            }
            "DRs" => {
                let a = v
                    .as_array()
                    .ok_or_else(|| ign(format!("DRs: expected array, got {v}")))?;
                if a.len() > 16 {
                    return Err(ign(format!("DRs: {} entries, at most 16", a.len())));
                }
                if a.len() != 16 {
                    c.problems
                        .push(format!("DRs has {} entries, not 16", a.len()));
                }
                for (i, e) in a.iter().enumerate() {
                    let t = e.as_array().filter(|t| t.len() == 3).ok_or_else(|| {
                        ign(format!("DRs[{i}]: expected [SF,BW,DNONLY], got {e}"))
                    })?;
                    let sf = int(&t[0], "DRs SF").map_err(ign)?;
                    let bw = int(&t[1], "DRs BW").map_err(ign)?;
                    let dn = int(&t[2], "DRs DNONLY").map_err(ign)?;
                    if !(sf == -1 || sf == 0 || (7..=12).contains(&sf)) {
                        return Err(ign(format!("DRs[{i}]: SF {sf} out of range")));
                    }
                    if sf >= 7 && ![125, 250, 500].contains(&bw) {
                        return Err(ign(format!("DRs[{i}]: BW {bw} not 125/250/500")));
                    }
                    if !(0..=1).contains(&dn) {
                        return Err(ign(format!("DRs[{i}]: DNONLY {dn} not 0/1")));
                    }
                    c.drs[i] = DrDef {
                        sf,
                        bw,
                        dnonly: dn == 1,
                    };
                }
                have_drs = true;
            }
            "upchannels" => {
                let a = v
                    .as_array()
                    .ok_or_else(|| ign(format!("upchannels: expected array, got {v}")))?;
                let mut chans = Vec::new();
                for e in a {
                    let t = e.as_array().filter(|t| t.len() == 3).ok_or_else(|| {
                        ign(format!("upchannels: expected [freq,minDR,maxDR], got {e}"))
                    })?;
                    let f = int(&t[0], "upchannels freq").map_err(ign)?;
                    let lo = int(&t[1], "upchannels minDR").map_err(ign)?;
                    let hi = int(&t[2], "upchannels maxDR").map_err(ign)?;
                    if !(0..=7).contains(&lo) || !(0..=7).contains(&hi) {
                        return Err(ign(format!("upchannels: DR range {lo}..{hi} outside 0..7")));
                    }
                    chans.push((f, lo, hi));
                }
                c.upchannels = Some(chans);
            }
            "max_eirp" => {
                c.max_eirp = Some(
                    v.as_f64()
                        .ok_or_else(|| ign(format!("max_eirp: expected number, got {v}")))?,
                )
            }
            "NetID" => {
                if !v.is_null() {
                    let a = v
                        .as_array()
                        .ok_or_else(|| ign(format!("NetID: expected array or null, got {v}")))?;
                    c.net_ids = Some(
                        a.iter()
                            .map(|x| int(x, "NetID"))
                            .collect::<Result<_, _>>()
                            .map_err(ign)?,
                    );
                }
            }
            "JoinEui" | "JoinEUI" => {
                c.eui_caps = k == "JoinEUI";
                if !v.is_null() {
                    let a = v
                        .as_array()
                        .ok_or_else(|| ign(format!("{k}: expected array or null, got {v}")))?;
                    if a.len() > 10 {
                        return Err(ign(format!("{k}: {} ranges, at most 10", a.len())));
                    }
                    let mut r = Vec::new();
                    for e in a {
                        let t = e
                            .as_array()
                            .filter(|t| t.len() == 2)
                            .ok_or_else(|| ign(format!("{k}: expected [lo,hi], got {e}")))?;
                        let lo = super::json::parse_eui(&t[0])
                            .ok_or_else(|| ign(format!("{k}: bad EUI {}", t[0])))?;
                        let hi = super::json::parse_eui(&t[1])
                            .ok_or_else(|| ign(format!("{k}: bad EUI {}", t[1])))?;
                        r.push((lo, hi));
                    }
                    c.join_eui_ranges = Some(r);
                }
            }
            "MuxTime" => {
                c.mux_time = Some(
                    v.as_f64()
                        .ok_or_else(|| ign(format!("MuxTime: expected number, got {v}")))?,
                )
            }
            "bcning" => {
                if !(v.is_null() || v.is_object()) {
                    return Err(ign(format!("bcning: expected object or null, got {v}")));
                }
            }
            "nocca" => c.nocca = boolean(v, k).map_err(ign)?,
            "nodc" => c.nodc = boolean(v, k).map_err(ign)?,
            "nodwell" => c.nodwell = boolean(v, k).map_err(ign)?,
            "device_mode" => c.device_mode = boolean(v, k).map_err(ign)?,
            k if SX1301_CONF_KEYS.contains(&k) => {
                let a = v
                    .as_array()
                    .ok_or_else(|| ign(format!("{k}: expected array, got {v}")))?;
                sxconf = Some((k.to_string(), a.clone()));
            }
            other => {
                debug_assert!(!TOP_KEYS.contains(&other));
                c.problems.push(format!(
                    "unknown top-level key {other:?} (station skips it)"
                ));
            }
        }
    }
    let hwspec = hwspec.ok_or_else(|| Fail::Rejected("router_config without hwspec".into()))?;
    let (sxkey, sxarr) =
        sxconf.ok_or_else(|| Fail::Rejected("router_config without sx1301_conf".into()))?;
    if hwspec != "sx1301/1" {
        return Err(Fail::Rejected(format!(
            "hwspec {hwspec:?}: the standard build accepts only \"sx1301/1\""
        )));
    }
    c.hwspec = hwspec;
    let first = sxarr
        .first()
        .and_then(Value::as_object)
        .ok_or_else(|| Fail::Rejected(format!("{sxkey}: element 0 missing or not an object")))?;
    if sxarr.len() > 1 {
        c.problems.push(format!(
            "{sxkey} has {} elements; a single-board station uses only the first",
            sxarr.len()
        ));
    }
    check_sx1301(first, &mut c.problems).map_err(Fail::Rejected)?;
    c.sx1301_conf_key = sxkey;
    c.sx1301_conf = first.clone();
    if !have_freq_range {
        c.problems
            .push("freq_range missing: range is 0..0 and every downlink is rejected".into());
    }
    if !have_drs {
        c.problems.push("DRs missing: every DR is undefined".into());
    }
    if c.mux_time.is_none() {
        c.problems
            .push("MuxTime missing: station's UTC clock is not set from the server".into());
    }
    match (&c.region_raw, c.region) {
        (None, _) => c.problems.push("region missing: downlinks disabled".into()),
        (Some(r), None) => c
            .problems
            .push(format!("region {r:?} not recognised: downlinks disabled")),
        _ => {}
    }
    c.downlinks_enabled = c.region.is_some();
    Ok(c)
}

/// Checks `sx1301_conf[0]` like sx130xconf.c / ral.c. An error here is a
/// radio setup failure (station closes the connection).
fn check_sx1301(conf: &Map<String, Value>, problems: &mut Vec<String>) -> Result<(), String> {
    let mut radios = [None::<bool>; 2];
    for (k, v) in conf {
        if !SX_TOP_KEYS.contains(&k.as_str()) {
            problems.push(format!("sx1301_conf: unknown key {k:?} (station skips it)"));
            continue;
        }
        if HW_SPECIFIC.contains(&k.as_str()) {
            problems.push(format!(
                "sx1301_conf: hardware-specific key {k:?} should be left to the gateway"
            ));
        }
        if let Some(n) = k.strip_prefix("radio_") {
            let o = v
                .as_object()
                .ok_or_else(|| format!("{k}: expected object, got {v}"))?;
            for (rk, rv) in o {
                if !RADIO_KEYS.contains(&rk.as_str()) {
                    return Err(format!("{k}: illegal key {rk:?}"));
                }
                if HW_SPECIFIC.contains(&rk.as_str()) {
                    problems.push(format!(
                        "{k}: hardware-specific key {rk:?} should be left to the gateway"
                    ));
                }
                match rk.as_str() {
                    "enable" | "tx_enable" => {
                        boolean(rv, rk)?;
                    }
                    "freq" | "tx_notch_freq" => {
                        int(rv, rk)?;
                    }
                    "type" => {
                        rv.as_str()
                            .ok_or_else(|| format!("{k}.type: expected string"))?;
                    }
                    _ => {
                        rv.as_f64()
                            .ok_or_else(|| format!("{k}.{rk}: expected number"))?;
                    }
                }
            }
            let enable = o
                .get("enable")
                .map(|e| boolean(e, "enable"))
                .transpose()?
                .unwrap_or(false);
            if enable && o.get("freq").is_none() {
                return Err(format!("{k}: enabled without freq"));
            }
            radios[if n == "0" { 0 } else { 1 }] = Some(enable);
        }
    }
    for (k, v) in conf {
        if !k.starts_with("chan_") {
            continue;
        }
        let o = v
            .as_object()
            .ok_or_else(|| format!("{k}: expected object, got {v}"))?;
        for (ck, cv) in o {
            if !CHAN_KEYS.contains(&ck.as_str()) {
                return Err(format!("{k}: illegal key {ck:?}"));
            }
            match ck.as_str() {
                "enable" => {
                    boolean(cv, ck)?;
                }
                _ => {
                    int(cv, &format!("{k}.{ck}"))?;
                }
            }
        }
        let enable = o
            .get("enable")
            .map(|e| boolean(e, "enable"))
            .transpose()?
            .unwrap_or(false);
        let bw = match o.get("bandwidth") {
            Some(b) => {
                let b = int(b, "bandwidth")?;
                if ![125_000, 250_000, 500_000].contains(&b) {
                    return Err(format!("{k}: bandwidth {b} (only 125000/250000/500000)"));
                }
                b
            }
            None if k == "chan_Lora_std" && enable => {
                return Err(format!("{k}: enabled without bandwidth"))
            }
            None => 125_000,
        };
        if let Some(sf) = o.get("spread_factor") {
            let sf = int(sf, "spread_factor")?;
            if !(7..=12).contains(&sf) {
                return Err(format!("{k}: spread_factor {sf} outside 7..12"));
            }
        } else if k == "chan_Lora_std" && enable {
            return Err(format!("{k}: enabled without spread_factor"));
        }
        if k == "chan_FSK" && enable && o.get("datarate").is_none() {
            return Err(format!("{k}: enabled without datarate"));
        }
        if !enable {
            continue;
        }
        let radio = o
            .get("radio")
            .or_else(|| o.get("rf_chain"))
            .ok_or_else(|| format!("{k}: enabled without radio"))?;
        let radio = int(radio, "radio")?;
        if !(0..=1).contains(&radio) {
            return Err(format!("{k}: radio {radio} (only 0 and 1)"));
        }
        if radios[radio as usize] != Some(true) {
            return Err(format!("{k}: uses radio_{radio}, which is not enabled"));
        }
        let off = o
            .get("if")
            .or_else(|| o.get("freq"))
            .map(|v| int(v, "if"))
            .transpose()?
            .unwrap_or(0);
        let limit = if bw == 500_000 { 300_000 } else { 400_000 };
        if off.abs() > limit {
            return Err(format!(
                "{k}: IF offset {off} Hz outside ±{limit} Hz for a {} kHz channel",
                bw / 1000
            ));
        }
    }
    Ok(())
}
