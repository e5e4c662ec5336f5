//! Application integrations: device events leave the server for applications the way
//! ChirpStack v4 sends them (end-devices.md §10), over MQTT (`mqtt`) and HTTP (`http`),
//! and downlink commands come back over MQTT. `Integrations` is the one handle the
//! device path holds: `publish` serialises an event once and pushes it onto each
//! integration's bounded queue without waiting, so a broker or endpoint that is down
//! costs the radio path nothing but a counted drop.

pub mod event;
pub mod http;
pub mod mqtt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use event::{CommandError, DeviceInfo, DownlinkCommand, Event, RxInfo, TxInfo};

/// The running integrations (possibly none).
#[derive(Clone)]
pub struct Integrations {
    mqtt: Option<mqtt::MqttPublisher>,
    http: Option<http::HttpPublisher>,
    counters: Arc<Counters>,
}

/// What the integrations did since start, summed over MQTT and HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntegrationStats {
    /// Events handed to the broker (QoS 0: written; QoS 1: acknowledged) or POSTed
    /// with a 2xx answer, per integration and endpoint.
    pub published: u64,
    /// Events dropped because a queue was full or a broker session was lost.
    pub dropped: u64,
    /// Broker connection errors and POSTs that failed or were not answered 2xx.
    pub failed: u64,
    /// Downlink commands handed to the device path.
    pub commands: u64,
    /// Downlink commands refused (bad topic or body, device path's queue full).
    pub commands_refused: u64,
}

/// Shared by the tasks; plain atomics, read by `stats`.
#[derive(Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub commands: AtomicU64,
    pub commands_refused: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Integrations {
    /// Starts the configured integrations (none configured: a no-op handle). Tasks stop
    /// on `shutdown`. The receiver yields the downlinks applications enqueued over MQTT.
    pub fn start(
        cfg: &crate::config::IntegrationConfig,
        shutdown: CancellationToken,
    ) -> (Integrations, mpsc::Receiver<DownlinkCommand>) {
        let counters = Arc::new(Counters::default());
        let (cmd_tx, cmd_rx) = mpsc::channel(cfg.mqtt.command_queue.max(1));
        // Config::validate refuses what could fail here; a config built without it
        // gets an error line and that integration stays off.
        let mqtt = cfg.mqtt.url.as_ref().and_then(|_| {
            mqtt::MqttPublisher::start(&cfg.mqtt, counters.clone(), cmd_tx, shutdown.clone())
                .map_err(|e| tracing::error!("mqtt integration not started: {e}"))
                .ok()
        });
        let urls = cfg.http.urls();
        let http = match urls.is_empty() {
            true => None,
            false => http::HttpPublisher::start(&cfg.http, &urls, counters.clone(), shutdown)
                .map_err(|e| tracing::error!("http integration not started: {e}"))
                .ok(),
        };
        (
            Integrations {
                mqtt,
                http,
                counters,
            },
            cmd_rx,
        )
    }

    /// Queues `ev` for every integration. Never blocks, never fails; drops are counted.
    pub fn publish(&self, ev: &Event) {
        if self.mqtt.is_none() && self.http.is_none() {
            return;
        }
        let body = bytes::Bytes::from(serde_json::to_vec(&ev.to_json()).unwrap_or_default());
        if let Some(h) = &self.http {
            h.publish(ev.name(), body.clone());
        }
        // Last, so that without HTTP rumqttc takes the buffer over without a copy.
        if let Some(m) = &self.mqtt {
            m.publish(ev, body);
        }
    }

    pub fn stats(&self) -> IntegrationStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IntegrationStats {
            published: get(&c.published),
            dropped: get(&c.dropped),
            failed: get(&c.failed),
            commands: get(&c.commands),
            commands_refused: get(&c.commands_refused),
        }
    }
}

/// At most one log line per `every` for one kind of trouble, saying how many were
/// not logged in between: a broker that is down, or a client sending garbage many
/// times a second, must not flood the log.
pub(crate) struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

/// How often each kind of integration trouble may be logged.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

impl LogLimiter {
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the lines skipped since
    /// the last one; `None` when this one is to be skipped.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let skipped = s.1;
                *s = (Some(now), 0);
                Some(skipped)
            }
        }
    }
}

/// Client-sent text for a log line: escaped (Debug) and at most `max` characters.
pub(crate) fn escaped(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_one_line_through_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.allow(), Some(2));
    }

    #[test]
    fn escaped_quotes_control_characters_and_caps() {
        assert_eq!(escaped("a\nb", 10), "\"a\\nb\"");
        assert_eq!(escaped(&"x".repeat(100), 3), "\"xxx\"…");
    }

    #[tokio::test]
    async fn nothing_configured_is_a_no_op() {
        let (i, _rx) = Integrations::start(&Default::default(), CancellationToken::new());
        i.publish(&Event::Log {
            time: "2026-12-05T17:00:00Z".into(),
            device_info: DeviceInfo {
                application_id: "a".into(),
                application_name: String::new(),
                device_profile_id: String::new(),
                device_profile_name: String::new(),
                device_name: String::new(),
                dev_eui: 1,
                device_class_enabled: "CLASS_A",
                tags: Default::default(),
            },
            level: "INFO",
            code: "UNKNOWN",
            description: String::new(),
            context: Default::default(),
        });
        assert_eq!(i.stats(), IntegrationStats::default());
    }
}
