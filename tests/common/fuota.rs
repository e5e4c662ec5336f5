//! Operator-side helpers for FUOTA tests: a multicast group with a session, a
//! FUOTA task on an uploaded image, and the start call. The free functions work
//! against any server's API (an in-process `TestServer` or a real process); the
//! `TestServer` methods are shorthands for them.

use hyper::Method;
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;

use super::server::TestServer;

/// The spec's worked-example keys (fuota.md §5): McKey 0102…10, McAddr 01020304.
pub const MC_KEY: &str = "0102030405060708090a0b0c0d0e0f10";
pub const MC_ADDR: u32 = 0x0102_0304;
pub const MC_APP_S_KEY: &str = "95cb4518ee375606735bbacbdce837fa";
pub const MC_NWK_S_KEY: &str = "c3f6b388bad6c000b23291ad52c11c7b";

/// An RFC 3339 time `secs` from now.
pub fn in_secs(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn merged(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// An EU868 group of `class` with the spec's McAddr and McKey; its Id.
pub async fn create_group(api: &ApiClient, class: &str) -> String {
    api.call(
        Method::POST,
        "/multicast-groups",
        Some(json!({"Name": "fleet", "LoRaWAN": {
            "RfRegion": "EU868", "DlClass": class,
            "McAddr": format!("{MC_ADDR:08x}"), "McKey": MC_KEY}})),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// PUT the group's session: EU868 DR5 on 869.525 MHz from now + 2 s for an hour;
/// `extra` is merged into its LoRaWAN object.
pub async fn set_session(api: &ApiClient, group: &str, extra: Value) -> Result<Value, String> {
    let l = merged(
        json!({"DlDr": 5, "DlFreq": 869525000,
            "SessionStartTime": in_secs(2), "SessionTimeout": 3600}),
        extra,
    );
    api.call(
        Method::PUT,
        &format!("/multicast-groups/{group}/session"),
        Some(json!({"LoRaWAN": l})),
    )
    .await
}

/// A FUOTA task on `image` (uploaded here): 16-byte fragments, 30 % redundancy;
/// `extra` is merged into the body.
pub async fn create_fuota_task(
    api: &ApiClient,
    image: &[u8],
    extra: Value,
) -> Result<String, String> {
    let (status, body) = api
        .send(Method::POST, "/blobs", Some(image.to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let blob: Value = serde_json::from_slice(&body).unwrap();
    let body = merged(
        json!({"Name": "fw", "LoRaWAN": {"RfRegion": "EU868"},
            "FirmwareUpdateImage": blob["Id"], "RedundancyPercent": 30,
            "FragmentSizeBytes": 16, "FragmentIntervalMS": 0,
            "Descriptor": "AQIDBA=="}),
        extra,
    );
    api.call(Method::POST, "/fuota-tasks", Some(body))
        .await
        .map(|v| v["Id"].as_str().unwrap().to_string())
}

pub async fn associate(api: &ApiClient, task: &str, group: &str) -> Result<Value, String> {
    api.call(
        Method::PUT,
        &format!("/fuota-tasks/{task}/multicast-group"),
        Some(json!({"MulticastGroupId": group})),
    )
    .await
}

/// Starts a task; `start` is the LoRaWAN object (e.g. `{}` or a StartTime).
pub async fn start_fuota(api: &ApiClient, task: &str, start: Value) -> Result<Value, String> {
    api.call(
        Method::PUT,
        &format!("/fuota-tasks/{task}"),
        Some(json!({"LoRaWAN": start})),
    )
    .await
}

impl TestServer {
    pub async fn create_group(&self, class: &str) -> String {
        create_group(&self.api(), class).await
    }

    pub async fn set_session(&self, group: &str, extra: Value) -> Result<Value, String> {
        set_session(&self.api(), group, extra).await
    }

    pub async fn create_fuota_task(&self, image: &[u8], extra: Value) -> Result<String, String> {
        create_fuota_task(&self.api(), image, extra).await
    }

    pub async fn associate(&self, task: &str, group: &str) -> Result<Value, String> {
        associate(&self.api(), task, group).await
    }

    pub async fn start_fuota(&self, task: &str, start: Value) -> Result<Value, String> {
        start_fuota(&self.api(), task, start).await
    }
}
