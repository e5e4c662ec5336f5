//! Stationkeeper: a self-hosted fleet update server for LoRa Basics Station
//! gateways. One module per protocol or concept:

pub mod admission; // the TLS handshake budget: slots, per-source shares
pub mod api; // the operator API (AWS IoT Wireless shapes), auth, error mapping
pub mod app; // AppState passed to every handler; ids, secrets, timestamps
pub mod applayer; // TS003/TS004/TS005/TS006 app-layer packages a FUOTA task speaks to devices
pub mod audit; // the audit log: one middleware records every state-changing operator call
pub mod blobstore; // content-addressed blob files: streamed, hashed, durable uploads
pub mod campaign; // rollout campaigns: waves, gates, rates, windows (decisions pure), the job
pub mod cli; // the `stationkeeper` command line, one file per subcommand
pub mod config; // the TOML config with env overrides (spec/running.md)
pub mod console; // the web console at /console/: server-rendered pages over the API
pub mod cups; // the CUPS face: request, decision, answer encoder, handler
pub mod devices; // the device face: LoRaWAN 1.0.x network and join server
pub mod eui; // EUI-64 / ID6 parsing and formatting
pub mod filebody; // streaming a file as an HTTP body with an exact length
pub mod firmware; // update signatures and the task state machine (pure)
pub mod fsutil; // atomic, durable file writes
pub mod fuota; // FUOTA: TS004 fragmentation codec and multicast crypto (pure)
pub mod identity; // services, credential kinds, and who a peer is
pub mod integration; // device events to applications over MQTT/HTTP (ChirpStack v4 JSON), downlink commands back
pub mod lns; // the LNS face: Basics Station websocket sessions, router_config, downlinks
pub mod logguard; // escaped, capped client input in logs; refusal counters and log budget
pub mod lorawan; // time on air and GPS time
pub mod metrics; // Prometheus metrics: one registry per server, GET /metrics
pub mod pki; // CA, server and gateway certificates; the development PKI
pub mod provisioning; // issuing credential generations and gateway files
pub mod quiet_close; // ending a TLS connection the peer closed first, without a close_notify of ours (as nginx)
pub mod server; // listeners, accept loops, connection limits, shutdown
pub mod stall; // send-progress timeout: closing peers that stop reading
pub mod startup; // building AppState from a config: store, PKI, tokens
pub mod store; // SQLite: migrations and every query
pub mod tls; // rustls configs and peer certificates
