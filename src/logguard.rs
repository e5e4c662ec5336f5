//! Keeps hostile clients from writing our logs. Two parts: `Clipped`/`escaped`
//! render anything a client sent as escaped, length-capped text (so a newline
//! cannot forge a log line and a 16 KiB router id cannot become 16 KiB of log or
//! answer), and `Refusals` counts every refused request by reason and lets a
//! refusal be logged only while its source has log budget left (a per-source and a
//! global token bucket, `[limits] refusal_log_*`). A throttled source's next line
//! says how many were suppressed. Memory is bounded: at most
//! `refusal_log_sources` sources are tracked; the rest share one bucket.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::Limits;

/// At most this many characters of a client's value reach a log line or answer.
pub const CLIP_CHARS: usize = 32;

/// At most this many characters of a message that may embed client input (a
/// parser's error text, say).
pub const MESSAGE_CHARS: usize = 160;

/// A client's value for a log line or an answer: Debug-escaped and quoted, at most
/// `CLIP_CHARS` characters, then `…(N bytes)` when it was longer.
pub struct Clipped<'a>(pub &'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s.char_indices().nth(CLIP_CHARS) {
            None => write!(f, "{s:?}"),
            Some((cut, _)) => write!(f, "{:?}…({} bytes)", &s[..cut], s.len()),
        }
    }
}

impl fmt::Debug for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `Clipped` as a `String`.
pub fn clip(s: &str) -> String {
    Clipped(s).to_string()
}

/// Raw bytes from a client: the lossy UTF-8 of their first bytes, clipped.
pub fn clip_bytes(b: &[u8]) -> String {
    let head = String::from_utf8_lossy(&b[..b.len().min(CLIP_CHARS * 4)]);
    match head.char_indices().nth(CLIP_CHARS) {
        None if head.len() == b.len() => format!("{head:?}"),
        None => format!("{head:?}…({} bytes)", b.len()),
        Some((cut, _)) => format!("{:?}…({} bytes)", &head[..cut], b.len()),
    }
}

/// A message that may contain client input (an error of a parser fed by the
/// network): control characters escaped, no quotes, at most `MESSAGE_CHARS`.
pub fn escaped(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MESSAGE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().nth(MESSAGE_CHARS).is_some() {
        out.push_str(&format!("…({} bytes)", s.len()));
    }
    out
}

/// Why a request was refused; each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A body that is not station's JSON, or a malformed router id.
    BadRequest,
    /// A body over its size limit.
    TooLarge,
    /// A body that did not arrive in time.
    Timeout,
    /// A router id the store does not know.
    UnknownGateway,
    /// A request with no certificate and no token.
    NoCredentials,
    /// Credentials that do not prove the claimed router id.
    NotAuthenticated,
    /// A missing or wrong operator API token.
    ApiToken,
    /// An LNS message that does not parse, or of an unknown type.
    LnsBadMessage,
    /// Open registration throttled, or full of unconfirmed gateways.
    RegistrationRefused,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::BadRequest,
        Reason::TooLarge,
        Reason::Timeout,
        Reason::UnknownGateway,
        Reason::NoCredentials,
        Reason::NotAuthenticated,
        Reason::ApiToken,
        Reason::LnsBadMessage,
        Reason::RegistrationRefused,
    ];

    /// The counter's name, as a metrics endpoint would show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "bad_request",
            Reason::TooLarge => "too_large",
            Reason::Timeout => "timeout",
            Reason::UnknownGateway => "unknown_gateway",
            Reason::NoCredentials => "no_credentials",
            Reason::NotAuthenticated => "not_authenticated",
            Reason::ApiToken => "api_token",
            Reason::LnsBadMessage => "lns_bad_message",
            Reason::RegistrationRefused => "registration_refused",
        }
    }
}

/// How many lines a source's budget swallowed since its last logged line;
/// displays as nothing, or as ` (N similar lines suppressed)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed(pub u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} similar lines suppressed)"),
        }
    }
}

/// Refusal counters and the log budget; one per server, in `AppState`.
pub struct Refusals {
    counts: [AtomicU64; Reason::ALL.len()],
    budget: Mutex<Budget>,
}

impl Refusals {
    pub fn new(limits: &Limits) -> Refusals {
        Refusals {
            counts: Default::default(),
            budget: Mutex::new(Budget::new(limits, Instant::now())),
        }
    }

    /// Counts a refusal from `source`; `Some` when its line may be logged (with
    /// how many were suppressed before it), `None` when it must not be.
    pub fn note(&self, reason: Reason, source: IpAddr) -> Option<Suppressed> {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(source, Instant::now())
    }

    pub fn count(&self, reason: Reason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }

    /// Every counter by name, for a metrics endpoint.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Reason::ALL
            .iter()
            .map(|&r| (r.as_str(), self.count(r)))
            .collect()
    }
}

/// A token bucket that remembers how many takes it refused.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

impl Bucket {
    fn full(burst: f64, at: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at,
            suppressed: 0,
        }
    }

    fn refill(&mut self, per_sec: f64, burst: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * per_sec).min(burst);
        self.at = now;
    }

    /// Takes one token, or counts one suppressed line.
    fn take(&mut self, per_sec: f64, burst: f64, now: Instant) -> bool {
        self.refill(per_sec, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Whether forgetting this bucket loses nothing: full and nothing owed.
    fn idle(&mut self, per_sec: f64, burst: f64, now: Instant) -> bool {
        self.refill(per_sec, burst, now);
        self.tokens >= burst && self.suppressed == 0
    }
}

struct Budget {
    source_rate: f64,
    source_burst: f64,
    global_rate: f64,
    global_burst: f64,
    max_sources: usize,
    sources: HashMap<IpAddr, Bucket>,
    /// Shared by sources that arrive while `sources` is full of busy ones.
    overflow: Bucket,
    global: Bucket,
}

impl Budget {
    fn new(limits: &Limits, now: Instant) -> Budget {
        // A bucket holds a minute's worth, so a quiet source may log a short burst.
        let source_burst = limits.refusal_log_per_source_per_min as f64;
        let global_burst = limits.refusal_log_per_min as f64;
        Budget {
            source_rate: source_burst / 60.0,
            source_burst,
            global_rate: global_burst / 60.0,
            global_burst,
            max_sources: limits.refusal_log_sources,
            sources: HashMap::new(),
            overflow: Bucket::full(source_burst, now),
            global: Bucket::full(global_burst, now),
        }
    }

    fn take(&mut self, source: IpAddr, now: Instant) -> Option<Suppressed> {
        let (rate, burst) = (self.source_rate, self.source_burst);
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            self.sources.retain(|_, b| !b.idle(rate, burst, now));
        }
        let bucket = if self.sources.contains_key(&source) || self.sources.len() < self.max_sources
        {
            self.sources
                .entry(source)
                .or_insert_with(|| Bucket::full(burst, now))
        } else {
            &mut self.overflow
        };
        if !bucket.take(rate, burst, now) {
            return None;
        }
        if !self.global.take(self.global_rate, self.global_burst, now) {
            // Not logged after all: owed to this source's next line.
            bucket.suppressed += 1;
            return None;
        }
        let owed = std::mem::take(&mut bucket.suppressed);
        Some(Suppressed(owed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(per_source: u32, global: u32, sources: usize) -> Limits {
        Limits {
            refusal_log_per_source_per_min: per_source,
            refusal_log_per_min: global,
            refusal_log_sources: sources,
            ..Limits::default()
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn clipped_escapes_and_caps() {
        assert_eq!(clip("::1"), "\"::1\"");
        assert_eq!(clip("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(10_000);
        let c = clip(&long);
        assert!(c.starts_with(&format!("\"{}\"…", "x".repeat(CLIP_CHARS))));
        assert!(c.ends_with("(10000 bytes)"), "{c}");
        assert!(c.len() < 60);
        // Multi-byte characters are never cut in half.
        let wide = "é".repeat(100);
        assert!(clip(&wide).contains("(200 bytes)"));
        assert_eq!(clip_bytes(b"a\r\n"), "\"a\\r\\n\"");
        assert!(clip_bytes(&[0xff; 1000]).ends_with("(1000 bytes)"));
    }

    #[test]
    fn escaped_messages_are_one_line_and_capped() {
        let m = escaped("bad\nINFO forged line");
        assert!(!m.contains('\n'));
        assert_eq!(m, "bad\\nINFO forged line");
        let long = escaped(&"y".repeat(5000));
        assert!(long.len() < MESSAGE_CHARS + 30);
        assert!(long.ends_with("(5000 bytes)"));
    }

    #[test]
    fn a_source_logs_its_burst_then_is_suppressed_then_told() {
        let t0 = Instant::now();
        let mut b = Budget::new(&limits(3, 1000, 10), t0);
        for _ in 0..3 {
            assert_eq!(b.take(ip(1), t0), Some(Suppressed(0)));
        }
        for _ in 0..50 {
            assert_eq!(b.take(ip(1), t0), None);
        }
        // Another source is not starved by the first.
        assert_eq!(b.take(ip(2), t0), Some(Suppressed(0)));
        // 3 per minute: one token after 20 s, and the line says what it missed.
        let later = t0 + Duration::from_secs(21);
        assert_eq!(b.take(ip(1), later), Some(Suppressed(50)));
        assert_eq!(b.take(ip(1), later), None);
    }

    #[test]
    fn the_global_budget_caps_many_sources() {
        let t0 = Instant::now();
        let mut b = Budget::new(&limits(10, 5, 1000), t0);
        let logged = (0..100).filter(|&n| b.take(ip(n), t0).is_some()).count();
        assert_eq!(logged, 5);
    }

    #[test]
    fn memory_is_bounded_by_refusal_log_sources() {
        let t0 = Instant::now();
        let mut b = Budget::new(&limits(1, 1_000_000, 4), t0);
        for n in 0..=255u8 {
            b.take(ip(n), t0);
        }
        assert!(b.sources.len() <= 4);
        // Sources beyond the cap share the overflow bucket: one line, not 252.
        assert!(b.overflow.suppressed >= 250);
        // Idle sources are forgotten when room is needed.
        let later = t0 + Duration::from_secs(120);
        assert_eq!(b.take(ip(200), later), Some(Suppressed(0)));
        assert!(b.sources.contains_key(&ip(200)));
    }

    #[test]
    fn counters_count_every_refusal() {
        let r = Refusals::new(&limits(1, 1, 4));
        for _ in 0..10 {
            r.note(Reason::UnknownGateway, ip(1));
        }
        r.note(Reason::ApiToken, ip(1));
        assert_eq!(r.count(Reason::UnknownGateway), 10);
        let snap = r.snapshot();
        assert!(snap.contains(&("api_token", 1)));
        assert!(snap.contains(&("bad_request", 0)));
    }
}
