//! The server's configuration: one struct with defaults that work from a checkout,
//! loaded from TOML (names fixed by spec/running.md), then overridden by
//! `STATIONKEEPER_<SECTION>_<KEY>` environment variables. Unknown keys and bad
//! values stop start-up with a message naming the key. Relative paths are taken
//! from the config file's folder (or the working directory with no file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub state_dir: PathBuf,
    pub cups: CupsConfig,
    pub lns: LnsConfig,
    pub tls: TlsConfig,
    pub api: ApiConfig,
    pub gateways: GatewaysConfig,
    pub firmware: FirmwareConfig,
    pub fuota: FuotaConfig,
    pub integration: IntegrationConfig,
    pub lorawan: LorawanConfig,
    pub limits: Limits,
    pub campaigns: CampaignsConfig,
    pub audit: AuditConfig,
    pub console: ConsoleConfig,
}

/// Rollout campaigns (`campaign/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// How often the campaign job looks at its running campaigns, in milliseconds.
    pub tick_ms: u64,
    /// A gateway with no CUPS contact for this long is offline: not eligible for a
    /// campaign, and not online in `GET /fleet`.
    pub offline_after_secs: u64,
    /// Most gateways one campaign may target.
    pub max_gateways: usize,
    /// How long a nudged gateway's LNS discovery is answered with an error when
    /// its CUPS poll does not come (station retries its traffic URI for ~31 s,
    /// then polls CUPS 1 min after the discovery error).
    pub nudge_timeout_secs: u64,
}

impl Default for CampaignsConfig {
    fn default() -> CampaignsConfig {
        CampaignsConfig {
            tick_ms: 1000,
            offline_after_secs: 90_000,
            max_gateways: 200_000,
            nudge_timeout_secs: 600,
        }
    }
}

/// The device face: network and join server for LoRaWAN 1.0.x end devices
/// (end-devices.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LorawanConfig {
    /// Off: nothing consumes the LNS uplink queue (uplinks are counted and dropped).
    pub enabled: bool,
    /// The NetID DevAddrs are allocated under (6 hex digits; 000000 is the usual
    /// private-network choice).
    pub net_id: String,
    /// Copies of one uplink heard by several gateways are collected this long.
    pub dedup_window_ms: u64,
    /// Frames collecting copies at once; more are refused and counted.
    pub max_collecting: usize,
    /// Deduplicated uplinks handled at once.
    pub workers: usize,
    /// Events kept per device for the API (join, up, ack, txack, status, log).
    pub events_per_device: usize,
    /// Downlinks queued per device at most.
    pub max_queue: usize,
}

impl Default for LorawanConfig {
    fn default() -> LorawanConfig {
        LorawanConfig {
            enabled: true,
            net_id: "000000".into(),
            dedup_window_ms: 200,
            max_collecting: 10_000,
            workers: 64,
            events_per_device: 100,
            max_queue: 64,
        }
    }
}

/// Where device events go besides the store (end-devices.md §10): ChirpStack v4's
/// MQTT and HTTP integrations. Both off by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationConfig {
    pub mqtt: MqttIntegrationConfig,
    pub http: HttpIntegrationConfig,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttIntegrationConfig {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]`; absent: MQTT is off.
    pub url: Option<String>,
    /// PEM CA certificate(s) to trust for `mqtts://`; absent: the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Absent: `stationkeeper-<host name>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Never logged: `Debug` shows it redacted.
    pub password: Option<String>,
    /// 0 or 1, for events and the command subscription.
    pub qos: u8,
    /// Events waiting for the broker; more are dropped and counted.
    pub queue: usize,
    /// Downlink commands waiting for the device path; more are refused and counted.
    pub command_queue: usize,
    /// Longest wait between reconnect attempts (the wait doubles from 100 ms).
    pub reconnect_max_secs: u64,
}

impl Default for MqttIntegrationConfig {
    fn default() -> MqttIntegrationConfig {
        MqttIntegrationConfig {
            url: None,
            ca_cert: None,
            client_id: None,
            username: None,
            password: None,
            qos: 0,
            queue: 1024,
            command_queue: 256,
            reconnect_max_secs: 30,
        }
    }
}

impl std::fmt::Debug for MqttIntegrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttIntegrationConfig")
            .field("url", &self.url)
            .field("ca_cert", &self.ca_cert)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("qos", &self.qos)
            .field("queue", &self.queue)
            .field("command_queue", &self.command_queue)
            .field("reconnect_max_secs", &self.reconnect_max_secs)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpIntegrationConfig {
    /// Comma-separated `http://` or `https://` endpoints, each POSTed
    /// `?event=<name>`; absent: off.
    pub url: Option<String>,
    /// PEM CA certificate(s) to trust for `https://`; absent: the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Extra request headers (e.g. `Authorization`); values are never logged.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Events waiting per endpoint; more are dropped and counted.
    pub queue: usize,
    /// One POST must finish within this many seconds, else it counts as failed.
    pub timeout_secs: u64,
}

impl Default for HttpIntegrationConfig {
    fn default() -> HttpIntegrationConfig {
        HttpIntegrationConfig {
            url: None,
            ca_cert: None,
            headers: Default::default(),
            queue: 1024,
            timeout_secs: 5,
        }
    }
}

impl HttpIntegrationConfig {
    /// The endpoints of `url`, trimmed, empty entries skipped.
    pub fn urls(&self) -> Vec<String> {
        self.url
            .iter()
            .flat_map(|u| u.split(','))
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl std::fmt::Debug for HttpIntegrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&String> = self.headers.keys().collect();
        f.debug_struct("HttpIntegrationConfig")
            .field("url", &self.url)
            .field("ca_cert", &self.ca_cert)
            .field("headers (values redacted)", &names)
            .field("queue", &self.queue)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuotaConfig {
    /// Largest end-device image a FUOTA task takes (AWS's limit is 1 MiB).
    pub max_image_bytes: u64,
    /// Tries of each unicast setup or verification request that reach a gateway
    /// before a silent device is left out (end-devices.md §8.3).
    pub unicast_attempts: u8,
    /// Uplink intervals between fixing SessionTime and the session: each device at
    /// that step gets this many chances to receive its McClassC/BSessionReq.
    pub session_setup_intervals: u32,
    /// DevRebootCountdownReq's countdown, seconds.
    pub reboot_countdown_secs: u32,
    /// Uplink interval assumed for devices whose profile has no UplinkIntervalSeconds.
    pub default_uplink_interval_secs: u32,
}

impl Default for FuotaConfig {
    fn default() -> FuotaConfig {
        FuotaConfig {
            max_image_bytes: 1024 * 1024,
            unicast_attempts: 3,
            session_setup_intervals: 2,
            reboot_countdown_secs: 10,
            default_uplink_interval_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirmwareConfig {
    /// Accept task definitions whose `SigKeyCrc` names no registered signing key
    /// (so the signature cannot be checked before gateways get it).
    pub allow_unverified: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CupsConfig {
    pub listen: SocketAddr,
    /// The cupsUri gateways are told; default `https://<host name>:<listen port>`.
    pub public_uri: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LnsConfig {
    pub listen: SocketAddr,
    /// The tcUri gateways are told. Unset, CUPS leaves gateways' tc.* files alone.
    pub public_uri: Option<String>,
    /// Open gateway sessions at most.
    pub max_connections: usize,
    /// Downlinks per gateway waiting for their `dntxed` at once.
    pub max_inflight: usize,
    /// Seconds between websocket pings.
    pub ping_interval_secs: u64,
    /// A gateway silent (no pong, no message) this long is closed as dead.
    pub dead_after_secs: u64,
    /// Uplinks queued for the rest of the server; more are dropped and counted.
    pub uplink_queue: usize,
    /// Messages per second one gateway may send (twice that in a burst).
    pub max_messages_per_sec: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM chain; absent: the development PKI in `state_dir/pki`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA of gateway client certificates; absent: the server's own CA.
    pub client_ca: Option<PathBuf>,
    /// The one certificate gateways trust for the server (`cups.trust`, `tc.trust`);
    /// absent: the last certificate of `cert`'s chain, or the development CA.
    pub trust: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub tls: bool,
    /// Absent: one token generated into `state_dir/api-token`.
    pub tokens: Option<Vec<String>>,
    /// SigV4 (access keys): how far `x-amz-date` may be from the server's clock.
    pub signature_max_skew_secs: u64,
    /// SigV4: failed signature checks one source (an IPv6 /64) may make per
    /// minute; past that it gets ThrottlingException until its budget refills.
    pub auth_failures_per_source_per_min: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownGateways {
    Reject,
    Register,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaysConfig {
    pub unknown: UnknownGateways,
    /// Open registration: gateways one source address (an IPv6 /64) may
    /// register per minute.
    pub register_per_source_per_min: u32,
    /// Open registration: gateways all sources together may register per minute.
    pub register_per_min: u32,
    /// Open registration: gateways it registered that have not yet confirmed a
    /// CUPS generation; at this many, further unknown EUIs are refused.
    pub max_unconfirmed: u64,
}

/// The audit log of operator calls (`GET /audit-log`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries older than this many days are deleted.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            retention_days: 365,
        }
    }
}

/// The web console (`/console/`) and what it keeps in memory about gateways.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// A console session ends this many minutes after sign-in.
    pub session_minutes: u64,
    /// Console sessions open at once; the oldest is ended for a new one.
    pub max_sessions: usize,
    /// CUPS refusals kept per gateway (the newest).
    pub refusals_per_gateway: usize,
    /// Gateways whose refusals are kept; beyond this the least recently refused
    /// one is forgotten.
    pub refusal_gateways: usize,
    /// Unknown router EUIs remembered (the most recently seen).
    pub unknown_routers: usize,
}

impl Default for ConsoleConfig {
    fn default() -> ConsoleConfig {
        ConsoleConfig {
            session_minutes: 480,
            max_sessions: 64,
            refusals_per_gateway: 20,
            refusal_gateways: 10_000,
            unknown_routers: 1000,
        }
    }
}

/// Resource limits; every bounded queue and timeout comes from here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections per listener; further clients wait in the kernel backlog.
    pub max_connections: usize,
    /// TLS handshake must finish within this many seconds.
    pub handshake_timeout_secs: u64,
    /// The TLS ClientHello must arrive within this many seconds of `accept` (a
    /// real client sends it at once; a bare TCP connection is dropped early).
    pub hello_timeout_secs: u64,
    /// Connections per TLS listener still in the handshake; taken before `accept`
    /// like `max_connections`, but held only until the handshake ends.
    pub handshake_connections: usize,
    /// Of those, at most this many from one source (an IPv4 address or an IPv6
    /// /64); a further connection from that source is closed at once.
    pub handshake_per_source: usize,
    /// Length of each listener's accept queue (the kernel caps it at
    /// `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// Request headers must arrive within this many seconds.
    pub header_timeout_secs: u64,
    /// The request body must arrive within this many seconds.
    pub body_timeout_secs: u64,
    /// Largest `POST /update-info` body (station's bodies are about 300 bytes).
    pub cups_body_bytes: usize,
    /// Settled gateways whose next unchanged poll is answered from memory
    /// (`cups::memo`, 24 bytes each); 0 answers every poll from the database.
    pub cups_memo_gateways: usize,
    /// Largest JSON body on the operator API.
    pub api_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub drain_secs: u64,
    /// Largest blob upload (update.bin, FUOTA image).
    pub blob_bytes: u64,
    /// Refusal log lines one source address may write per minute; the rest are
    /// counted and summarised in its next line.
    pub refusal_log_per_source_per_min: u32,
    /// Refusal log lines all sources together may write per minute.
    pub refusal_log_per_min: u32,
    /// Source addresses whose refusal log budget is tracked; beyond this, new
    /// sources share one budget (bounds the memory a spoofing flood can take).
    pub refusal_log_sources: usize,
    /// A peer that takes none of the bytes we are sending for this many seconds
    /// (an update download whose reader stopped) is disconnected.
    pub send_stall_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            state_dir: PathBuf::from("stationkeeper-data"),
            cups: CupsConfig::default(),
            lns: LnsConfig::default(),
            tls: TlsConfig::default(),
            api: ApiConfig::default(),
            gateways: GatewaysConfig::default(),
            firmware: FirmwareConfig::default(),
            fuota: FuotaConfig::default(),
            integration: IntegrationConfig::default(),
            lorawan: LorawanConfig::default(),
            limits: Limits::default(),
            campaigns: CampaignsConfig::default(),
            audit: AuditConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl Default for CupsConfig {
    fn default() -> CupsConfig {
        CupsConfig {
            listen: ([0, 0, 0, 0], 8443).into(),
            public_uri: None,
        }
    }
}

impl Default for LnsConfig {
    fn default() -> LnsConfig {
        LnsConfig {
            listen: ([0, 0, 0, 0], 8887).into(),
            public_uri: None,
            max_connections: 20_000,
            max_inflight: 8,
            ping_interval_secs: 30,
            dead_after_secs: 90,
            uplink_queue: 4096,
            max_messages_per_sec: 50,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            listen: ([127, 0, 0, 1], 7000).into(),
            tls: false,
            tokens: None,
            signature_max_skew_secs: 300,
            auth_failures_per_source_per_min: 30,
        }
    }
}

impl Default for GatewaysConfig {
    fn default() -> GatewaysConfig {
        GatewaysConfig {
            unknown: UnknownGateways::Reject,
            register_per_source_per_min: 10,
            register_per_min: 60,
            max_unconfirmed: 1000,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            handshake_timeout_secs: 10,
            hello_timeout_secs: 3,
            handshake_connections: 1024,
            handshake_per_source: 256,
            listen_backlog: 4096,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            cups_body_bytes: 16 * 1024,
            cups_memo_gateways: 250_000,
            api_body_bytes: 1024 * 1024,
            drain_secs: 30,
            blob_bytes: 256 * 1024 * 1024,
            refusal_log_per_source_per_min: 10,
            refusal_log_per_min: 300,
            refusal_log_sources: 4096,
            send_stall_secs: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// Tables environment overrides can reach; a nested table is written with `_`
/// (`STATIONKEEPER_INTEGRATION_MQTT_URL` sets `[integration.mqtt] url`).
const SECTIONS: &[&str] = &[
    "cups",
    "lns",
    "tls",
    "api",
    "gateways",
    "firmware",
    "fuota",
    "integration.mqtt",
    "integration.http",
    "lorawan",
    "limits",
    "audit",
    "console",
];

impl Config {
    /// Loads `path` (or the defaults with no file) and applies `env` overrides.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut table, base, name) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (table, base, p.display().to_string())
            }
            None => (toml::Table::new(), PathBuf::new(), "(defaults)".to_string()),
        };
        apply_env(&mut table, env)?;
        let mut cfg: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
                path: name,
                message: e.to_string(),
            })?;
        cfg.resolve_paths(&base);
        cfg.validate()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.state_dir);
        for p in [
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.tls.client_ca,
            &mut self.tls.trust,
            &mut self.integration.mqtt.ca_cert,
            &mut self.integration.http.ca_cert,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        crate::devices::devaddr::parse_net_id(&self.lorawan.net_id)
            .map_err(|m| invalid("lorawan.net_id", m))?;
        if let Some(u) = &self.cups.public_uri {
            check_station_uri(u, &["https", "http"]).map_err(|m| invalid("cups.public_uri", m))?;
        }
        if let Some(u) = &self.lns.public_uri {
            check_station_uri(u, &["wss", "ws"]).map_err(|m| invalid("lns.public_uri", m))?;
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(invalid(
                "tls.cert",
                "set both tls.cert and tls.key, or neither to use the generated PKI".into(),
            ));
        }
        if let Some(tokens) = &self.api.tokens {
            if tokens.is_empty() || tokens.iter().any(|t| t.len() < 8) {
                return Err(invalid(
                    "api.tokens",
                    "give at least one token of 8 or more characters, or remove the key to have one generated".into(),
                ));
            }
        }
        let l = &self.limits;
        for (key, v) in [
            (
                "api.signature_max_skew_secs",
                self.api.signature_max_skew_secs,
            ),
            (
                "api.auth_failures_per_source_per_min",
                u64::from(self.api.auth_failures_per_source_per_min),
            ),
            ("limits.max_connections", l.max_connections as u64),
            ("limits.handshake_timeout_secs", l.handshake_timeout_secs),
            ("limits.hello_timeout_secs", l.hello_timeout_secs),
            (
                "limits.handshake_connections",
                l.handshake_connections as u64,
            ),
            ("limits.handshake_per_source", l.handshake_per_source as u64),
            ("limits.listen_backlog", u64::from(l.listen_backlog)),
            ("limits.header_timeout_secs", l.header_timeout_secs),
            ("limits.body_timeout_secs", l.body_timeout_secs),
            ("limits.cups_body_bytes", l.cups_body_bytes as u64),
            ("limits.api_body_bytes", l.api_body_bytes as u64),
            ("limits.blob_bytes", l.blob_bytes),
            (
                "limits.refusal_log_per_source_per_min",
                u64::from(l.refusal_log_per_source_per_min),
            ),
            (
                "limits.refusal_log_per_min",
                u64::from(l.refusal_log_per_min),
            ),
            ("limits.refusal_log_sources", l.refusal_log_sources as u64),
            ("limits.send_stall_secs", l.send_stall_secs),
            (
                "gateways.register_per_source_per_min",
                u64::from(self.gateways.register_per_source_per_min),
            ),
            (
                "gateways.register_per_min",
                u64::from(self.gateways.register_per_min),
            ),
            ("gateways.max_unconfirmed", self.gateways.max_unconfirmed),
            ("lns.max_connections", self.lns.max_connections as u64),
            ("lns.max_inflight", self.lns.max_inflight as u64),
            ("lns.ping_interval_secs", self.lns.ping_interval_secs),
            ("lns.dead_after_secs", self.lns.dead_after_secs),
            ("lns.uplink_queue", self.lns.uplink_queue as u64),
            ("lorawan.max_collecting", self.lorawan.max_collecting as u64),
            ("lorawan.workers", self.lorawan.workers as u64),
            (
                "lorawan.events_per_device",
                self.lorawan.events_per_device as u64,
            ),
            ("lorawan.max_queue", self.lorawan.max_queue as u64),
            ("audit.retention_days", u64::from(self.audit.retention_days)),
            ("console.session_minutes", self.console.session_minutes),
            ("console.max_sessions", self.console.max_sessions as u64),
            (
                "console.refusals_per_gateway",
                self.console.refusals_per_gateway as u64,
            ),
            (
                "console.refusal_gateways",
                self.console.refusal_gateways as u64,
            ),
            (
                "console.unknown_routers",
                self.console.unknown_routers as u64,
            ),
            ("integration.mqtt.queue", self.integration.mqtt.queue as u64),
            (
                "integration.mqtt.command_queue",
                self.integration.mqtt.command_queue as u64,
            ),
            (
                "integration.mqtt.reconnect_max_secs",
                self.integration.mqtt.reconnect_max_secs,
            ),
            ("integration.http.queue", self.integration.http.queue as u64),
            (
                "integration.http.timeout_secs",
                self.integration.http.timeout_secs,
            ),
            (
                "lns.max_messages_per_sec",
                u64::from(self.lns.max_messages_per_sec),
            ),
            ("campaigns.tick_ms", self.campaigns.tick_ms),
            (
                "campaigns.offline_after_secs",
                self.campaigns.offline_after_secs,
            ),
            ("campaigns.max_gateways", self.campaigns.max_gateways as u64),
            (
                "campaigns.nudge_timeout_secs",
                self.campaigns.nudge_timeout_secs,
            ),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        self.validate_integration()
    }

    fn validate_integration(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        let m = &self.integration.mqtt;
        if let Some(u) = &m.url {
            let broker = crate::integration::mqtt::broker_address(u)
                .map_err(|e| invalid("integration.mqtt.url", e))?;
            if broker.tls {
                crate::tls::client_config(m.ca_cert.as_deref())
                    .map_err(|e| invalid("integration.mqtt.ca_cert", e.to_string()))?;
            }
        }
        if m.qos > 1 {
            return Err(invalid(
                "integration.mqtt.qos",
                format!("{} is not supported; use 0 or 1", m.qos),
            ));
        }
        if m.password.is_some() && m.username.is_none() {
            return Err(invalid(
                "integration.mqtt.password",
                "a password needs integration.mqtt.username too".into(),
            ));
        }
        let h = &self.integration.http;
        if h.url.is_some() && h.urls().is_empty() {
            return Err(invalid(
                "integration.http.url",
                "give at least one http://host[:port]/path, or remove the key".into(),
            ));
        }
        for u in h.urls() {
            crate::integration::http::endpoint(&u)
                .map_err(|e| invalid("integration.http.url", e))?;
        }
        if h.urls().iter().any(|u| u.starts_with("https:")) {
            crate::tls::client_config(h.ca_cert.as_deref())
                .map_err(|e| invalid("integration.http.ca_cert", e.to_string()))?;
        }
        crate::integration::http::header_map(&h.headers)
            .map_err(|e| invalid("integration.http.headers", e))?;
        Ok(())
    }

    /// The cupsUri gateways are told.
    pub fn cups_public_uri(&self, host: &str) -> String {
        self.cups
            .public_uri
            .clone()
            .unwrap_or_else(|| format!("https://{host}:{}", self.cups.listen.port()))
    }

    /// The tcUri gateways are told.
    pub fn lns_public_uri(&self, host: &str) -> String {
        self.lns
            .public_uri
            .clone()
            .unwrap_or_else(|| format!("wss://{host}:{}", self.lns.listen.port()))
    }
}

/// Checks a URI as station will use it (cups-protocol.md §4.1): `scheme://host:port`,
/// port required, no path, at most 127 bytes.
pub fn check_station_uri(uri: &str, schemes: &[&str]) -> Result<(), String> {
    if uri.len() > crate::cups::answer::MAX_URI_LEN {
        return Err(format!(
            "{uri:?} is {} bytes; station ignores URIs of 128 bytes or more",
            uri.len()
        ));
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!(
            "{uri:?} has no scheme; write {}://host:port",
            schemes[0]
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!("{uri:?}: scheme must be one of {schemes:?}"));
    }
    if rest.contains('/') {
        return Err(format!(
            "{uri:?} has a path; station requires scheme://host:port with nothing after the port"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.is_empty() => (h, p),
        _ => {
            return Err(format!(
                "{uri:?} needs a host and a port: {}://host:port",
                schemes[0]
            ))
        }
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{uri:?}: port {port:?} is not a number 0-65535"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("{uri:?}: IPv6 hosts go in brackets"));
    }
    Ok(())
}

/// Applies `STATIONKEEPER_<SECTION>_<KEY>` (or `STATIONKEEPER_<KEY>` for top-level
/// keys). Values parse as TOML (`true`, `8`, `["a"]`), else are taken as strings.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("STATIONKEEPER_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let section = SECTIONS
            .iter()
            .find(|s| rest.starts_with(&format!("{}_", s.replace('.', "_"))));
        match section {
            Some(s) => {
                let key = &rest[s.len() + 1..];
                let mut t = &mut *table;
                for part in s.split('.') {
                    let entry = t
                        .entry(part.to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    let toml::Value::Table(inner) = entry else {
                        return Err(ConfigError::Invalid {
                            key: s.to_string(),
                            message: "must be a table".into(),
                        });
                    };
                    t = inner;
                }
                t.insert(key.to_string(), parsed);
            }
            None => {
                table.insert(rest, parsed);
            }
        }
    }
    Ok(())
}

/// This machine's host name, for default URIs and the dev server certificate.
/// `/proc` comes first; systemd's `ProcSubset=pid` hides it, so `/etc/hostname`
/// is the fallback, then `localhost`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sk.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(
            Some(&p),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_running_md_example_loads() {
        let cfg = load(
            r#"
state_dir = "/var/lib/stationkeeper"
[cups]
listen = "0.0.0.0:8443"
public_uri = "https://cups.example.net:8443"
[lns]
listen = "0.0.0.0:8887"
public_uri = "wss://lns.example.net:8887"
[tls]
cert = "/etc/stationkeeper/server.crt"
key = "/etc/stationkeeper/server.key"
client_ca = "/etc/stationkeeper/ca.crt"
[api]
listen = "127.0.0.1:7000"
tls = false
tokens = ["change-me"]
[gateways]
unknown = "reject"
"#,
            &[],
        )
        .unwrap();
        assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/stationkeeper"));
        assert_eq!(cfg.cups_public_uri("x"), "https://cups.example.net:8443");
        assert_eq!(cfg.api.tokens, Some(vec!["change-me".to_string()]));
        assert_eq!(cfg.gateways.unknown, UnknownGateways::Reject);
    }

    #[test]
    fn env_overrides_file_values() {
        let cfg = load(
            "[api]\nlisten = \"127.0.0.1:7000\"\n",
            &[
                ("STATIONKEEPER_API_LISTEN", "127.0.0.1:9999"),
                ("STATIONKEEPER_API_TLS", "true"),
                ("STATIONKEEPER_GATEWAYS_UNKNOWN", "register"),
                ("STATIONKEEPER_STATE_DIR", "/srv/sk"),
                ("STATIONKEEPER_LIMITS_MAX_CONNECTIONS", "7"),
                ("OTHER_VAR", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.api.listen.port(), 9999);
        assert!(cfg.api.tls);
        assert_eq!(cfg.gateways.unknown, UnknownGateways::Register);
        assert_eq!(cfg.state_dir, PathBuf::from("/srv/sk"));
        assert_eq!(cfg.limits.max_connections, 7);
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sk.toml");
        std::fs::write(&p, "state_dir = \"data\"\n").unwrap();
        let cfg = Config::load(Some(&p), []).unwrap();
        assert_eq!(cfg.state_dir, dir.path().join("data"));
    }

    #[test]
    fn wrong_keys_and_values_are_named() {
        let cases = [
            ("[cups]\nlisten = \"nonsense\"\n", "listen"),
            ("[cups]\nlistn = \"0.0.0.0:1\"\n", "unknown field `listn`"),
            (
                "[gateways]\nunknown = \"allow\"\n",
                "unknown variant `allow`",
            ),
            (
                "[cups]\npublic_uri = \"https://cups.example.net\"\n",
                "cups.public_uri",
            ),
            (
                "[cups]\npublic_uri = \"https://cups.example.net:443/\"\n",
                "has a path",
            ),
            (
                "[lns]\npublic_uri = \"https://lns.example.net:443\"\n",
                "lns.public_uri",
            ),
            ("[tls]\ncert = \"a.crt\"\n", "tls.cert"),
            ("[api]\ntokens = []\n", "api.tokens"),
            ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
            ("verbose = true\n", "unknown field `verbose`"),
        ];
        for (text, want) in cases {
            let e = load(text, &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = load("", &[("STATIONKEEPER_API_LISTN", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `listn`"), "{e}");
    }

    #[test]
    fn audit_and_console_keys_load_override_and_validate() {
        let cfg = load(
            "[audit]\nretention_days = 30\n[console]\nrefusals_per_gateway = 5\n",
            &[("STATIONKEEPER_CONSOLE_SESSION_MINUTES", "15")],
        )
        .unwrap();
        assert_eq!(cfg.audit.retention_days, 30);
        assert_eq!(cfg.console.refusals_per_gateway, 5);
        assert_eq!(cfg.console.session_minutes, 15);
        let e = load("[audit]\nretention_days = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("audit.retention_days"), "{e}");
        let e = load("[console]\nmax_sessions = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("console.max_sessions"), "{e}");
    }

    #[test]
    fn the_systemd_example_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/stationkeeper.toml");
        let cfg = Config::load(Some(&p), []).unwrap();
        assert!(cfg.integration.mqtt.url.is_none() && cfg.integration.http.url.is_none());
    }

    #[test]
    fn integration_keys_load_validate_and_hide_secrets() {
        let cfg = load(
            r#"
[integration.mqtt]
url = "mqtt://127.0.0.1:1883"
username = "sk"
password = "hunter22"
qos = 1
[integration.http]
url = "http://127.0.0.1:8090/a, http://127.0.0.1:8091/b"
headers = { Authorization = "Bearer tok-secret" }
timeout_secs = 3
"#,
            &[("STATIONKEEPER_INTEGRATION_MQTT_QUEUE", "77")],
        )
        .unwrap();
        let m = &cfg.integration.mqtt;
        assert_eq!(m.url.as_deref(), Some("mqtt://127.0.0.1:1883"));
        assert_eq!((m.qos, m.queue, m.command_queue), (1, 77, 256));
        assert_eq!(cfg.integration.http.urls().len(), 2);
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("hunter22") && !debug.contains("tok-secret"),
            "{debug}"
        );
        assert!(debug.contains("Authorization"), "{debug}");
        assert!(Config::default().integration.mqtt.url.is_none());

        let cases = [
            (
                "[integration.mqtt]\nurl = \"mqtts://b:8883\"\nca_cert = \"missing.pem\"\n",
                "integration.mqtt.ca_cert",
            ),
            (
                "[integration.mqtt]\nurl = \"mqtt://b:1\"\nqos = 2\n",
                "integration.mqtt.qos",
            ),
            ("[integration.mqtt]\nqueue = 0\n", "integration.mqtt.queue"),
            (
                "[integration.mqtt]\npassword = \"p\"\n",
                "integration.mqtt.password",
            ),
            ("[integration.mqtt]\nurll = \"x\"\n", "unknown field `urll`"),
            (
                "[integration.mqtt]\nurl = \"ws://b:1\"\n",
                "integration.mqtt.url",
            ),
            (
                "[integration.http]\nurl = \"https://x/\"\nca_cert = \"missing.pem\"\n",
                "integration.http.ca_cert",
            ),
            (
                "[integration.http]\nurl = \" , \"\n",
                "integration.http.url",
            ),
            (
                "[integration.http]\ntimeout_secs = 0\n",
                "integration.http.timeout_secs",
            ),
            (
                "[integration.http.headers]\n\"bad name\" = \"v\"\n",
                "integration.http.headers",
            ),
        ];
        for (text, want) in cases {
            let e = load(text, &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn station_uri_rules() {
        assert!(check_station_uri("https://cups.example.net:443", &["https"]).is_ok());
        assert!(check_station_uri("wss://[::1]:8887", &["wss"]).is_ok());
        assert!(check_station_uri("https://cups.example.net", &["https"]).is_err());
        assert!(check_station_uri("ftp://x:1", &["https"]).is_err());
        let long = format!("https://{}:1", "a".repeat(120));
        assert!(check_station_uri(&long, &["https"]).is_err());
    }
}
