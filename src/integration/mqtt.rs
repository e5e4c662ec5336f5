//! The MQTT integration (end-devices.md §10.1): each event goes to
//! `application/{application_id}/device/{dev_eui}/event/{name}`, and downlinks arrive on
//! `application/+/device/+/command/down`. rumqttc keeps the connection; its bounded
//! request channel is our event queue (`integration.mqtt.queue`): `publish` uses
//! `try_publish`, so while the broker is away events are dropped and counted, never
//! waited for. One task polls the event loop: it counts what was sent, turns commands
//! into `DownlinkCommand`s, re-subscribes after every (re)connect and, after an error,
//! waits with a doubling back-off before rumqttc tries again. `mqtts://` uses
//! rumqttc's rustls transport with our ring-only `tls::client_config`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use rumqttc::{Request, Subscribe, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{escaped, Counters, DownlinkCommand, Event, LogLimiter, LOG_EVERY};
use crate::config::MqttIntegrationConfig;

/// Where applications publish downlinks (ChirpStack's command topic, any application
/// and device).
pub const COMMAND_FILTER: &str = "application/+/device/+/command/down";

/// Largest event we hand the broker; a larger one (a huge log description, say) is
/// dropped rather than letting rumqttc fail the whole connection over it.
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Largest command we accept from the broker (a DownlinkCommand is well under 1 KiB).
const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// The first wait after a connection error; it doubles up to `reconnect_max_secs`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The topic of an event.
pub fn event_topic(ev: &Event) -> String {
    let d = ev.device_info();
    format!(
        "application/{}/device/{:016x}/event/{}",
        d.application_id,
        d.dev_eui,
        ev.name()
    )
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// `mqtt://host[:1883]` (or `tcp://`), `mqtts://host[:8883]` (or `ssl://`) to a
/// `Broker`, with a reason when it is not one.
pub fn broker_address(url: &str) -> Result<Broker, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e}); write mqtt://host:1883"))?;
    let tls = match uri.scheme_str() {
        Some("mqtt" | "tcp") => false,
        Some("mqtts" | "ssl") => true,
        _ => return Err(format!("{url:?}: the scheme must be mqtt:// or mqtts://")),
    };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "{:?}: put credentials in integration.mqtt.username/password, not in the URL",
            url.split('@').next_back().unwrap_or("")
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{url:?}: nothing may follow host:port"));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{url:?} has no host; write mqtt://host:1883"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls { 8883 } else { 1883 });
    Ok(Broker {
        host: host.to_string(),
        port,
        tls,
    })
}

/// Connection options for `url`, TLS with `ca_cert` (or the system roots) for
/// `mqtts://`. Config::validate checked both already.
fn options(
    url: &str,
    ca_cert: Option<&std::path::Path>,
    client_id: String,
) -> Result<MqttOptions, String> {
    let broker = broker_address(url).map_err(|e| format!("integration.mqtt.url: {e}"))?;
    let mut opts = MqttOptions::new(client_id, broker.host, broker.port);
    if broker.tls {
        let tls = crate::tls::client_config(ca_cert)
            .map_err(|e| format!("integration.mqtt.ca_cert: {e}"))?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(opts)
}

/// The handle `Integrations::publish` uses.
#[derive(Clone)]
pub(super) struct MqttPublisher {
    client: AsyncClient,
    qos: QoS,
    counters: Arc<Counters>,
    drops_log: Arc<LogLimiter>,
}

impl MqttPublisher {
    /// Spawns the event-loop task; it ends on `shutdown`.
    pub fn start(
        cfg: &MqttIntegrationConfig,
        counters: Arc<Counters>,
        commands: mpsc::Sender<DownlinkCommand>,
        shutdown: CancellationToken,
    ) -> Result<MqttPublisher, String> {
        let url = cfg.url.as_deref().unwrap_or_default();
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("stationkeeper-{}", crate::config::host_name()));
        let mut opts = options(url, cfg.ca_cert.as_deref(), client_id)?;
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(MAX_COMMAND_BYTES, MAX_EVENT_BYTES + 1024)
            .set_request_channel_capacity(cfg.queue);
        if let (Some(u), p) = (&cfg.username, &cfg.password) {
            opts.set_credentials(u.clone(), p.clone().unwrap_or_default());
        }
        let qos = if cfg.qos == 1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let (client, eventloop) = AsyncClient::new(opts, cfg.queue);
        let poller = Poller {
            eventloop,
            qos,
            counters: counters.clone(),
            commands,
            command_queue: cfg.command_queue,
            max_backoff: Duration::from_secs(cfg.reconnect_max_secs),
            broker: url.to_string(),
            error_log: LogLimiter::new(LOG_EVERY),
            command_log: LogLimiter::new(LOG_EVERY),
        };
        tokio::spawn(poller.run(shutdown));
        Ok(MqttPublisher {
            client,
            qos,
            counters,
            drops_log: Arc::new(LogLimiter::new(LOG_EVERY)),
        })
    }

    /// Queues one event; a full queue (broker slow or away) drops it.
    pub fn publish(&self, ev: &Event, body: Bytes) {
        let reason = if body.len() > MAX_EVENT_BYTES {
            Some("larger than the 256 KiB an event may have")
        } else if self
            .client
            .try_publish(event_topic(ev), self.qos, false, body)
            .is_err()
        {
            Some("the queue is full (broker slow or unreachable; integration.mqtt.queue)")
        } else {
            None
        };
        if let Some(reason) = reason {
            Counters::add(&self.counters.dropped, 1);
            if let Some(skipped) = self.drops_log.allow() {
                tracing::warn!(event = ev.name(), skipped, "mqtt: event dropped: {reason}");
            }
        }
    }
}

/// Owns rumqttc's event loop: the only place the connection moves forward.
struct Poller {
    eventloop: EventLoop,
    qos: QoS,
    counters: Arc<Counters>,
    commands: mpsc::Sender<DownlinkCommand>,
    command_queue: usize,
    max_backoff: Duration,
    broker: String,
    error_log: LogLimiter,
    command_log: LogLimiter,
}

impl Poller {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        // Events rumqttc took back from a dead connection; a clean session drops them.
        let mut unsent = 0u64;
        loop {
            let polled = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = self.eventloop.poll() => p,
            };
            match polled {
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                    if !ack.session_present {
                        Counters::add(&self.counters.dropped, unsent);
                    }
                    unsent = 0;
                    backoff = FIRST_BACKOFF;
                    self.subscribe_first();
                    tracing::info!(broker = %self.broker, "mqtt: connected");
                }
                Ok(MqttEvent::Outgoing(Outgoing::Publish(_))) if self.qos == QoS::AtMostOnce => {
                    Counters::add(&self.counters.published, 1);
                }
                Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                    Counters::add(&self.counters.published, 1);
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    self.command(&p.topic, &p.payload);
                }
                Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        tracing::error!(broker = %self.broker, "mqtt: the broker refused the subscription to {COMMAND_FILTER}; downlink commands will not arrive (check its ACL)");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    Counters::add(&self.counters.failed, 1);
                    unsent = self.unsent_events();
                    if let Some(skipped) = self.error_log.allow() {
                        tracing::warn!(broker = %self.broker, skipped, retry_in_ms = backoff.as_millis() as u64, "mqtt: {e}; events are dropped and counted until the broker is back");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.max_backoff.max(FIRST_BACKOFF));
                }
            }
        }
    }

    /// A clean session forgets subscriptions: subscribe again, ahead of queued events.
    fn subscribe_first(&mut self) {
        let sub = Subscribe::new(COMMAND_FILTER, self.qos);
        self.eventloop.pending.push_front(Request::Subscribe(sub));
    }

    fn unsent_events(&self) -> u64 {
        let n = self.eventloop.pending.iter();
        n.filter(|r| matches!(r, Request::Publish(_))).count() as u64
    }

    /// A message on the command topic: parsed and handed to the device path, or refused.
    fn command(&self, topic: &str, payload: &[u8]) {
        let result = match topic.split('/').collect::<Vec<_>>()[..] {
            ["application", app, "device", eui, "command", "down"] => {
                DownlinkCommand::parse(app, eui, payload).map_err(|e| e.to_string())
            }
            _ => Err("not a command topic".to_string()),
        };
        let refused = match result {
            Ok(cmd) => match self.commands.try_send(cmd) {
                Ok(()) => {
                    Counters::add(&self.counters.commands, 1);
                    return;
                }
                Err(mpsc::error::TrySendError::Full(_)) => format!(
                    "{} commands are already waiting (integration.mqtt.command_queue)",
                    self.command_queue
                ),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    "the server is not taking downlink commands".to_string()
                }
            },
            Err(reason) => reason,
        };
        Counters::add(&self.counters.commands_refused, 1);
        if let Some(skipped) = self.command_log.allow() {
            tracing::warn!(
                topic = %escaped(topic, 160),
                skipped,
                "mqtt: downlink command refused: {refused}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = |host: &str, port, tls| Broker {
            host: host.into(),
            port,
            tls,
        };
        assert_eq!(
            broker_address("mqtt://127.0.0.1:1883"),
            Ok(b("127.0.0.1", 1883, false))
        );
        assert_eq!(
            broker_address("mqtt://broker.example.net"),
            Ok(b("broker.example.net", 1883, false))
        );
        assert_eq!(
            broker_address("tcp://[::1]:1884"),
            Ok(b("::1", 1884, false))
        );
        assert_eq!(broker_address("mqtts://b"), Ok(b("b", 8883, true)));
        for (bad, want) in [
            ("http://b:1883", "scheme"),
            ("mqtt://u:secret@b:1883", "username/password"),
            ("mqtt://b:1883/x", "nothing may follow"),
            ("b:1883", "scheme"),
        ] {
            let e = broker_address(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
