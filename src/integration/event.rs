//! The events applications receive about their devices, and the downlink command they
//! send back, in ChirpStack v4's JSON (end-devices.md §10.3): protobuf JSON mapping with
//! lowerCamelCase names, default values emitted, `bytes` as base64, enums by name,
//! timestamps as RFC 3339 strings, DevEUI/gateway ids as 16 lowercase hex digits and
//! DevAddr as 8. Pure: the device path builds an `Event`, the integrations serialise it.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

/// Who the event is about; `deviceInfo` in every event.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The device's `DestinationName`: the application id of the topics.
    pub application_id: String,
    pub application_name: String,
    pub device_profile_id: String,
    pub device_profile_name: String,
    pub device_name: String,
    pub dev_eui: u64,
    /// `"CLASS_A"` or `"CLASS_C"`.
    pub device_class_enabled: &'static str,
    pub tags: BTreeMap<String, String>,
}

/// One gateway's reception of an uplink; `rxInfo[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RxInfo {
    pub gateway_eui: u64,
    pub uplink_id: u32,
    /// When the server received this copy (RFC 3339).
    pub ns_time: String,
    /// Station's `gpstime` as a protobuf Duration (`"1400000003.500s"`), when it sent one.
    pub time_since_gps_epoch: Option<String>,
    pub rssi: i32,
    pub snr: f32,
    /// What the server needs to answer through this gateway (station's xtime/rctx);
    /// opaque to applications.
    pub context: Vec<u8>,
}

/// LoRa modulation of a frame; `txInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct TxInfo {
    pub frequency: u32,
    /// Hz, as ChirpStack writes it (125000).
    pub bandwidth: u32,
    pub spreading_factor: u8,
    /// `"CR_4_5"` and so on.
    pub code_rate: &'static str,
}

/// An event about one device, published on `.../event/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Up {
        deduplication_id: String,
        time: String,
        device_info: DeviceInfo,
        dev_addr: u32,
        adr: bool,
        dr: u8,
        f_cnt: u32,
        f_port: u8,
        confirmed: bool,
        /// The decrypted FRMPayload.
        data: Vec<u8>,
        rx_info: Vec<RxInfo>,
        tx_info: TxInfo,
        region_config_id: String,
    },
    Join {
        deduplication_id: String,
        time: String,
        device_info: DeviceInfo,
        dev_addr: u32,
        region_config_id: String,
    },
    Ack {
        deduplication_id: String,
        time: String,
        device_info: DeviceInfo,
        queue_item_id: String,
        acknowledged: bool,
        f_cnt_down: u32,
    },
    TxAck {
        downlink_id: u32,
        time: String,
        device_info: DeviceInfo,
        queue_item_id: String,
        f_cnt_down: u32,
        gateway_eui: u64,
        tx_info: TxInfo,
    },
    Status {
        deduplication_id: String,
        time: String,
        device_info: DeviceInfo,
        margin: i32,
        external_power_source: bool,
        battery_level_unavailable: bool,
        /// Percent.
        battery_level: f32,
    },
    Log {
        time: String,
        device_info: DeviceInfo,
        /// `"INFO"`, `"WARNING"` or `"ERROR"`.
        level: &'static str,
        /// One of ChirpStack's `LogCode` names (`"UPLINK_MIC"`, `"OTAA"`, ...).
        code: &'static str,
        description: String,
        context: BTreeMap<String, String>,
    },
}

impl Event {
    /// The event's name in topics and `?event=`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Up { .. } => "up",
            Event::Join { .. } => "join",
            Event::Ack { .. } => "ack",
            Event::TxAck { .. } => "txack",
            Event::Status { .. } => "status",
            Event::Log { .. } => "log",
        }
    }

    pub fn device_info(&self) -> &DeviceInfo {
        match self {
            Event::Up { device_info, .. }
            | Event::Join { device_info, .. }
            | Event::Ack { device_info, .. }
            | Event::TxAck { device_info, .. }
            | Event::Status { device_info, .. }
            | Event::Log { device_info, .. } => device_info,
        }
    }

    /// The event as ChirpStack v4 writes it (`integration.proto`, pbjson, fields emitted).
    pub fn to_json(&self) -> Value {
        match self {
            Event::Up {
                deduplication_id,
                time,
                device_info,
                dev_addr,
                adr,
                dr,
                f_cnt,
                f_port,
                confirmed,
                data,
                rx_info,
                tx_info,
                region_config_id,
            } => json!({
                "deduplicationId": deduplication_id,
                "time": time,
                "deviceInfo": device_info_json(device_info),
                "devAddr": format!("{dev_addr:08x}"),
                "adr": adr,
                "dr": dr,
                "fCnt": f_cnt,
                "fPort": f_port,
                "confirmed": confirmed,
                "data": B64.encode(data),
                "rxInfo": rx_info.iter().map(rx_info_json).collect::<Vec<_>>(),
                "txInfo": tx_info_json(tx_info),
                "regionConfigId": region_config_id,
            }),
            Event::Join {
                deduplication_id,
                time,
                device_info,
                dev_addr,
                region_config_id,
            } => json!({
                "deduplicationId": deduplication_id,
                "time": time,
                "deviceInfo": device_info_json(device_info),
                "devAddr": format!("{dev_addr:08x}"),
                "regionConfigId": region_config_id,
            }),
            Event::Ack {
                deduplication_id,
                time,
                device_info,
                queue_item_id,
                acknowledged,
                f_cnt_down,
            } => json!({
                "deduplicationId": deduplication_id,
                "time": time,
                "deviceInfo": device_info_json(device_info),
                "queueItemId": queue_item_id,
                "acknowledged": acknowledged,
                "fCntDown": f_cnt_down,
            }),
            Event::TxAck {
                downlink_id,
                time,
                device_info,
                queue_item_id,
                f_cnt_down,
                gateway_eui,
                tx_info,
            } => json!({
                "downlinkId": downlink_id,
                "time": time,
                "deviceInfo": device_info_json(device_info),
                "queueItemId": queue_item_id,
                "fCntDown": f_cnt_down,
                "gatewayId": format!("{gateway_eui:016x}"),
                "txInfo": tx_info_json(tx_info),
            }),
            Event::Status {
                deduplication_id,
                time,
                device_info,
                margin,
                external_power_source,
                battery_level_unavailable,
                battery_level,
            } => json!({
                "deduplicationId": deduplication_id,
                "time": time,
                "deviceInfo": device_info_json(device_info),
                "margin": margin,
                "externalPowerSource": external_power_source,
                "batteryLevelUnavailable": battery_level_unavailable,
                "batteryLevel": f32_json(*battery_level),
            }),
            Event::Log {
                time,
                device_info,
                level,
                code,
                description,
                context,
            } => json!({
                "time": time,
                "deviceInfo": device_info_json(device_info),
                "level": level,
                "code": code,
                "description": description,
                "context": context,
            }),
        }
    }
}

/// `deviceInfo`. Stationkeeper has no tenants: `tenantId`/`tenantName` are emitted
/// empty, as pbjson emits a default string.
fn device_info_json(d: &DeviceInfo) -> Value {
    json!({
        "tenantId": "",
        "tenantName": "",
        "applicationId": d.application_id,
        "applicationName": d.application_name,
        "deviceProfileId": d.device_profile_id,
        "deviceProfileName": d.device_profile_name,
        "deviceName": d.device_name,
        "devEui": format!("{:016x}", d.dev_eui),
        "deviceClassEnabled": d.device_class_enabled,
        "tags": d.tags,
    })
}

/// `rxInfo[]` (gw `UplinkRxInfo`). Absent message fields (`gwTime`, `location`, and
/// `timeSinceGpsEpoch` without station's gpstime) are left out, as pbjson does.
fn rx_info_json(r: &RxInfo) -> Value {
    let mut v = json!({
        "gatewayId": format!("{:016x}", r.gateway_eui),
        "uplinkId": r.uplink_id,
        "nsTime": r.ns_time,
        "rssi": r.rssi,
        "snr": f32_json(r.snr),
        "channel": 0,
        "rfChain": 0,
        "board": 0,
        "antenna": 0,
        "context": B64.encode(&r.context),
        "metadata": {},
        "crcStatus": "CRC_OK",
    });
    if let Some(t) = &r.time_since_gps_epoch {
        v["timeSinceGpsEpoch"] = json!(t);
    }
    v
}

/// An f32 as its shortest decimal (9.3, as pbjson writes it), not the f64 widening
/// (9.300000190734863) that `json!` would give.
fn f32_json(v: f32) -> Value {
    v.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// `txInfo` with LoRa modulation.
fn tx_info_json(t: &TxInfo) -> Value {
    json!({
        "frequency": t.frequency,
        "modulation": {
            "lora": {
                "bandwidth": t.bandwidth,
                "spreadingFactor": t.spreading_factor,
                "codeRate": t.code_rate,
            }
        },
    })
}

/// A downlink an application enqueued through `.../command/down`.
#[derive(Debug, Clone, PartialEq)]
pub struct DownlinkCommand {
    /// The application's id for it (a UUID), echoed as `queueItemId` in ack/txack.
    pub id: Option<String>,
    pub dev_eui: u64,
    /// From the topic.
    pub application_id: String,
    pub confirmed: bool,
    pub f_port: u8,
    pub data: Vec<u8>,
    /// Don't send after this (RFC 3339), when the application set `expiresAt`.
    pub expires_at: Option<String>,
}

/// Why a downlink command was refused; each names what to send instead.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    #[error("topic devEui {0:?} is not 16 hex digits")]
    TopicDevEui(String),
    #[error("body is not a DownlinkCommand: {0}; send {{\"devEui\":\"<16 hex>\",\"confirmed\":false,\"fPort\":1,\"data\":\"<base64>\"}}")]
    Json(String),
    #[error(
        "body devEui {body:?} is not the topic's {topic:016x}; publish to the device's own topic"
    )]
    DevEuiMismatch { body: String, topic: u64 },
    #[error("fPort {0} is outside 1..=223 (0 is for MAC commands, 224 and up are reserved)")]
    FPort(i64),
    #[error("data is not base64: {0}")]
    Data(String),
    #[error("object needs a payload codec, which Stationkeeper does not run; send data (base64)")]
    ObjectWithoutCodec,
    #[error("expiresAt {0:?} is not an RFC 3339 time")]
    ExpiresAt(String),
}

/// The body as applications write it; unknown keys are refused so a typo is seen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CommandBody {
    #[serde(default)]
    id: Option<String>,
    dev_eui: String,
    #[serde(default)]
    confirmed: bool,
    f_port: i64,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// Longest client text quoted in an error (errors reach log lines).
const QUOTE_MAX: usize = 64;

fn capped(s: &str) -> String {
    s.chars().take(QUOTE_MAX).collect()
}

impl DownlinkCommand {
    /// Parses a command published on `application/{app}/device/{eui}/command/down`.
    pub fn parse(
        topic_application_id: &str,
        topic_dev_eui: &str,
        body: &[u8],
    ) -> Result<DownlinkCommand, CommandError> {
        let topic = parse_hex_eui(topic_dev_eui)
            .ok_or_else(|| CommandError::TopicDevEui(capped(topic_dev_eui)))?;
        let b: CommandBody =
            serde_json::from_slice(body).map_err(|e| CommandError::Json(capped(&e.to_string())))?;
        if parse_hex_eui(&b.dev_eui) != Some(topic) {
            return Err(CommandError::DevEuiMismatch {
                body: capped(&b.dev_eui),
                topic,
            });
        }
        if !(1..=223).contains(&b.f_port) {
            return Err(CommandError::FPort(b.f_port));
        }
        let data = match (b.data, b.object) {
            (Some(d), _) => B64
                .decode(d.as_bytes())
                .map_err(|e| CommandError::Data(e.to_string()))?,
            (None, Some(_)) => return Err(CommandError::ObjectWithoutCodec),
            (None, None) => Vec::new(),
        };
        if let Some(t) = &b.expires_at {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| CommandError::ExpiresAt(capped(t)))?;
        }
        Ok(DownlinkCommand {
            id: b.id.map(|s| capped(&s)),
            dev_eui: topic,
            application_id: topic_application_id.to_string(),
            confirmed: b.confirmed,
            f_port: b.f_port as u8,
            data,
            expires_at: b.expires_at,
        })
    }
}

/// 16 hex digits (either case), as ChirpStack writes a DevEUI.
fn parse_hex_eui(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceInfo {
        DeviceInfo {
            application_id: "6d3f1e3a-0c8e-4a53-9f44-5a2f8b0d2a11".into(),
            application_name: "meters".into(),
            device_profile_id: "b1f0c6de-3f0a-4a4e-8d1e-0e6f4d2a9c01".into(),
            device_profile_name: "eu868-a".into(),
            device_name: "meter-7".into(),
            dev_eui: 0x0102_0304_0506_0708,
            device_class_enabled: "CLASS_A",
            tags: BTreeMap::from([("site".to_string(), "north".to_string())]),
        }
    }

    const DEVICE_INFO: &str = r#"{"tenantId":"","tenantName":"","applicationId":"6d3f1e3a-0c8e-4a53-9f44-5a2f8b0d2a11","applicationName":"meters","deviceProfileId":"b1f0c6de-3f0a-4a4e-8d1e-0e6f4d2a9c01","deviceProfileName":"eu868-a","deviceName":"meter-7","devEui":"0102030405060708","deviceClassEnabled":"CLASS_A","tags":{"site":"north"}}"#;

    fn tx() -> TxInfo {
        TxInfo {
            frequency: 868_100_000,
            bandwidth: 125_000,
            spreading_factor: 7,
            code_rate: "CR_4_5",
        }
    }

    const TX_INFO: &str = r#"{"frequency":868100000,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5"}}}"#;

    /// Compares as JSON values, so key order does not matter but every key and value does.
    fn check(ev: &Event, name: &str, golden: &str) {
        assert_eq!(ev.name(), name);
        let golden = golden
            .replace("DEVICE_INFO", DEVICE_INFO)
            .replace("TX_INFO", TX_INFO);
        let want: Value = serde_json::from_str(&golden).unwrap();
        assert_eq!(ev.to_json(), want, "{}", ev.to_json());
    }

    #[test]
    fn up_json_has_every_field_of_the_table() {
        let ev = Event::Up {
            deduplication_id: "0d3b1c9e-7f53-4d6f-9a54-7a1f6c2e8b10".into(),
            time: "2026-12-05T17:00:00.123Z".into(),
            device_info: device(),
            dev_addr: 0x0000_00ab,
            adr: true,
            dr: 5,
            f_cnt: 65_537,
            f_port: 10,
            confirmed: false,
            data: vec![1, 2, 3],
            rx_info: vec![
                RxInfo {
                    gateway_eui: 0xb827_ebff_fe61_51a8,
                    uplink_id: 42,
                    ns_time: "2026-12-05T17:00:00.100Z".into(),
                    time_since_gps_epoch: Some("1400000003.500s".into()),
                    rssi: -57,
                    snr: 9.3,
                    context: vec![0xde, 0xad],
                },
                RxInfo {
                    gateway_eui: 1,
                    uplink_id: 43,
                    ns_time: "2026-12-05T17:00:00.101Z".into(),
                    time_since_gps_epoch: None,
                    rssi: -110,
                    snr: -7.25,
                    context: vec![],
                },
            ],
            tx_info: tx(),
            region_config_id: "eu868".into(),
        };
        check(
            &ev,
            "up",
            r#"{"deduplicationId":"0d3b1c9e-7f53-4d6f-9a54-7a1f6c2e8b10","time":"2026-12-05T17:00:00.123Z",
            "deviceInfo":DEVICE_INFO,"devAddr":"000000ab","adr":true,"dr":5,"fCnt":65537,"fPort":10,
            "confirmed":false,"data":"AQID",
            "rxInfo":[
             {"gatewayId":"b827ebfffe6151a8","uplinkId":42,"nsTime":"2026-12-05T17:00:00.100Z",
              "timeSinceGpsEpoch":"1400000003.500s","rssi":-57,"snr":9.3,"channel":0,"rfChain":0,
              "board":0,"antenna":0,"context":"3q0=","metadata":{},"crcStatus":"CRC_OK"},
             {"gatewayId":"0000000000000001","uplinkId":43,"nsTime":"2026-12-05T17:00:00.101Z",
              "rssi":-110,"snr":-7.25,"channel":0,"rfChain":0,"board":0,"antenna":0,"context":"",
              "metadata":{},"crcStatus":"CRC_OK"}],
            "txInfo":TX_INFO,"regionConfigId":"eu868"}"#,
        );
    }

    #[test]
    fn join_ack_txack_status_log_json() {
        let d = device();
        check(
            &Event::Join {
                deduplication_id: "j-1".into(),
                time: "2026-12-05T17:00:00Z".into(),
                device_info: d.clone(),
                dev_addr: 0x2600_1234,
                region_config_id: "eu868".into(),
            },
            "join",
            r#"{"deduplicationId":"j-1","time":"2026-12-05T17:00:00Z","deviceInfo":DEVICE_INFO,
            "devAddr":"26001234","regionConfigId":"eu868"}"#,
        );
        check(
            &Event::Ack {
                deduplication_id: "a-1".into(),
                time: "2026-12-05T17:00:01Z".into(),
                device_info: d.clone(),
                queue_item_id: "q-1".into(),
                acknowledged: false,
                f_cnt_down: 0,
            },
            "ack",
            r#"{"deduplicationId":"a-1","time":"2026-12-05T17:00:01Z","deviceInfo":DEVICE_INFO,
            "queueItemId":"q-1","acknowledged":false,"fCntDown":0}"#,
        );
        check(
            &Event::TxAck {
                downlink_id: 7,
                time: "2026-12-05T17:00:02Z".into(),
                device_info: d.clone(),
                queue_item_id: "".into(),
                f_cnt_down: 3,
                gateway_eui: 0xb827_ebff_fe61_51a8,
                tx_info: tx(),
            },
            "txack",
            r#"{"downlinkId":7,"time":"2026-12-05T17:00:02Z","deviceInfo":DEVICE_INFO,
            "queueItemId":"","fCntDown":3,"gatewayId":"b827ebfffe6151a8","txInfo":TX_INFO}"#,
        );
        check(
            &Event::Status {
                deduplication_id: "s-1".into(),
                time: "2026-12-05T17:00:03Z".into(),
                device_info: d.clone(),
                margin: -3,
                external_power_source: false,
                battery_level_unavailable: false,
                battery_level: 50.39,
            },
            "status",
            r#"{"deduplicationId":"s-1","time":"2026-12-05T17:00:03Z","deviceInfo":DEVICE_INFO,
            "margin":-3,"externalPowerSource":false,"batteryLevelUnavailable":false,"batteryLevel":50.39}"#,
        );
        check(
            &Event::Log {
                time: "2026-12-05T17:00:04Z".into(),
                device_info: d,
                level: "WARNING",
                code: "UPLINK_F_CNT_RETRANSMISSION",
                description: "frame-counter did not increment".into(),
                context: BTreeMap::from([("deduplication_id".to_string(), "x".to_string())]),
            },
            "log",
            r#"{"time":"2026-12-05T17:00:04Z","deviceInfo":DEVICE_INFO,"level":"WARNING",
            "code":"UPLINK_F_CNT_RETRANSMISSION","description":"frame-counter did not increment",
            "context":{"deduplication_id":"x"}}"#,
        );
    }

    #[test]
    fn a_command_parses() {
        let c = DownlinkCommand::parse(
            "app-1",
            "0102030405060708",
            br#"{"id":"5b0b5d9e-1111-2222-3333-444455556666","devEui":"0102030405060708","confirmed":true,"fPort":10,"data":"AQID"}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            DownlinkCommand {
                id: Some("5b0b5d9e-1111-2222-3333-444455556666".into()),
                dev_eui: 0x0102_0304_0506_0708,
                application_id: "app-1".into(),
                confirmed: true,
                f_port: 10,
                data: vec![1, 2, 3],
                expires_at: None,
            }
        );
        // Uppercase hex, defaults for id/confirmed/data.
        let c = DownlinkCommand::parse(
            "a",
            "ABCDEF0123456789",
            br#"{"devEui":"abcdef0123456789","fPort":223}"#,
        )
        .unwrap();
        assert_eq!(
            (c.id, c.confirmed, c.f_port, c.data),
            (None, false, 223, vec![])
        );
    }

    #[test]
    fn bad_commands_are_refused_with_the_reason() {
        let eui = "0102030405060708";
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "0102",
                br#"{"devEui":"0102030405060708","fPort":1}"#,
                "topic devEui",
            ),
            (eui, b"not json", "not a DownlinkCommand"),
            (
                eui,
                br#"{"devEui":"0102030405060709","fPort":1}"#,
                "is not the topic's",
            ),
            (
                eui,
                br#"{"devEui":"0102030405060708","fPort":0}"#,
                "fPort 0",
            ),
            (
                eui,
                br#"{"devEui":"0102030405060708","fPort":224}"#,
                "fPort 224",
            ),
            (
                eui,
                br#"{"devEui":"0102030405060708","fPort":1,"data":"!!"}"#,
                "not base64",
            ),
            (
                eui,
                br#"{"devEui":"0102030405060708","fPort":1,"object":{"a":1}}"#,
                "codec",
            ),
            (
                eui,
                br#"{"devEui":"0102030405060708","fPort":1,"fport":2}"#,
                "unknown field",
            ),
            (
                eui,
                br#"{"devEui":"0102030405060708","fPort":1,"expiresAt":"soon"}"#,
                "RFC 3339",
            ),
            (eui, br#"{"fPort":1}"#, "missing field `devEui`"),
        ];
        for (topic_eui, body, want) in cases {
            let e = DownlinkCommand::parse("a", topic_eui, body)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
    }
}
