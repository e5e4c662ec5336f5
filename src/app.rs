//! `AppState`: everything a request handler needs, built once at start and passed
//! explicitly (no globals), so tests can run many servers side by side.

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;
use crate::tls::TlsMaterial;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    /// The files behind blob Ids.
    pub blobs: crate::blobstore::BlobFiles,
    pub tls: TlsMaterial,
    /// The cupsUri and tcUri gateways are told unless overridden per gateway. No
    /// tcUri until an LNS is configured (`[lns] public_uri`): then CUPS leaves the
    /// gateways' tc.* files alone.
    pub cups_uri: String,
    pub tc_uri: Option<String>,
    /// Bearer tokens the operator API accepts.
    pub api_tokens: Vec<String>,
    /// The LNS face's sessions, downlink path and uplink queue.
    pub lns: crate::lns::Lns,
    /// Last-contact times of settled gateways, written behind.
    pub contacts: crate::cups::contacts::Contacts,
    /// Settled polls, answered again from memory until something changes.
    pub memo: crate::cups::memo::Memo,
    /// Refused requests by reason, and the budget for logging them.
    pub refusals: crate::logguard::Refusals,
    /// Failed SigV4 signatures per source (`[api] auth_failures_per_source_per_min`).
    pub auth_failures: crate::api::auth::FailureThrottle,
    /// The last CUPS refusals per gateway and the unknown routers seen.
    pub refused: crate::cups::refused::RefusalLog,
    /// Open registration's per-source and global rate limits.
    pub registrations: crate::cups::throttle::RegistrationThrottle,
    /// Running FUOTA jobs (the scheduler's side of the stored tasks).
    pub fuota: crate::fuota::runner::Fuota,
    /// Rollout campaigns: their clock and the index the CUPS poll consults.
    pub campaigns: crate::campaign::Campaigns,
    /// The device face: counters, NetID, integrations.
    pub devices: crate::devices::Devices,
    /// Signed-in web console sessions.
    pub console: crate::console::session::Sessions,
    /// Prometheus counters, histograms and gauges (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Fires once, on SIGTERM/SIGINT: long-lived sessions watch it.
    pub shutdown: tokio_util::sync::CancellationToken,
}

pub type App = Arc<AppState>;

/// Now as RFC 3339 UTC with milliseconds (`2021-03-12T09:56:12.047Z`), the one
/// timestamp format of the API and the store.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 time (any offset) into Unix microseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-03-12T09:56:12.047Z: {e}"))?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

/// Unix microseconds in the API's timestamp format.
pub fn format_unix_us(us: i64) -> String {
    format_time(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// A random identifier in UUID v4 form, as AWS gives resources.
pub fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random secret for tokens: 32 bytes, URL-safe base64 without padding.
pub fn new_secret() -> String {
    use base64::Engine;
    let b: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let t = time::macros::datetime!(2021-03-12 09:56:12.047 UTC);
        assert_eq!(format_time(t), "2021-03-12T09:56:12.047Z");
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
