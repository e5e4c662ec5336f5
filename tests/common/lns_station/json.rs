//! Small JSON helpers. Station writes its messages with a fixed key order
//! (uj.c), so the simulator writes JSON text by hand instead of going through
//! a map. Also EUI text forms (§4, §5.1).

use serde_json::Value;

/// Builds a JSON object with keys in insertion order.
#[derive(Debug, Default)]
pub struct Obj {
    s: String,
}

impl Obj {
    pub fn new() -> Self {
        Obj { s: String::new() }
    }

    fn key(&mut self, k: &str) {
        self.s.push(if self.s.is_empty() { '{' } else { ',' });
        self.s.push_str(&serde_json::to_string(k).unwrap());
        self.s.push(':');
    }

    /// A value already in JSON form.
    pub fn raw(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        self.s.push_str(v);
        self
    }

    pub fn str(self, k: &str, v: &str) -> Self {
        let v = serde_json::to_string(v).unwrap();
        self.raw(k, &v)
    }

    /// A string or `null`.
    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    pub fn int(self, k: &str, v: i64) -> Self {
        self.raw(k, &v.to_string())
    }

    /// Seconds with 6 decimals, as station prints times.
    pub fn time(self, k: &str, v: f64) -> Self {
        self.raw(k, &format!("{v:.6}"))
    }

    /// A number in its shortest form (integral values without a fraction).
    pub fn num(self, k: &str, v: f64) -> Self {
        self.raw(k, &num(v))
    }

    pub fn finish(mut self) -> String {
        if self.s.is_empty() {
            self.s.push('{');
        }
        self.s.push('}');
        self.s
    }
}

/// Shortest text of a number; whole values print as integers.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Uppercase hex without separators (`FOpts`, `FRMPayload`).
pub fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// EUI text `HH-HH-HH-HH-HH-HH-HH-HH` (station's uplink/dntxed form).
pub fn eui_dashes(eui: u64) -> String {
    eui.to_be_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Parses an EUI as a dnmsg may carry it: text with optional `-` or `:`
/// separators (16 hex digits), or a JSON integer.
pub fn parse_eui(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?;
    let hex: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    if hex.is_empty() || hex.len() > 16 || (s.contains('-') && s.contains(':')) {
        return None;
    }
    u64::from_str_radix(&hex, 16).ok()
}

/// Decodes hex (upper or lower case).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A JSON integer that fits i64 (also accepts u64 up to i64::MAX).
pub fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
}
