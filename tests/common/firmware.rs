//! Operator-side helpers for firmware tests: upload a blob, register a key,
//! create a definition, read a gateway's task.

use hyper::Method;
use serde_json::{json, Value};

use super::server::TestServer;

pub const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/station-test4");

pub fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}/{name}")).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl TestServer {
    pub async fn upload(&self, bytes: &[u8]) -> Value {
        let (status, body) = self
            .api()
            .send(Method::POST, "/blobs", Some(bytes.to_vec()))
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 201, "{v}");
        v
    }

    pub async fn register_key(&self, raw: &[u8]) -> u32 {
        let v = self
            .call(
                Method::POST,
                "/signing-keys",
                Some(json!({"Name": "test", "PublicKey": b64(raw)})),
            )
            .await
            .unwrap();
        v["KeyCrc"].as_u64().unwrap() as u32
    }

    /// A definition body in AWS's shape.
    pub fn definition(
        blob: &str,
        sig: &[u8],
        key_crc: u32,
        from: (&str, &str, &str),
        to: Option<(&str, &str, &str)>,
        auto: bool,
    ) -> Value {
        let v = |(station, package, model): (&str, &str, &str)| json!({"Station": station, "PackageVersion": package, "Model": model});
        let mut lorawan =
            json!({"SigKeyCrc": key_crc, "UpdateSignature": b64(sig), "CurrentVersion": v(from)});
        if let Some(t) = to {
            lorawan["UpdateVersion"] = v(t);
        }
        json!({"AutoCreateTasks": auto, "Name": "FirmwareUpdate",
               "Update": {"UpdateDataSource": blob, "UpdateDataRole": "arn:aws:iam::1:role/x", "LoRaWAN": lorawan}})
    }

    pub async fn create_definition(&self, body: Value) -> String {
        let v = self
            .call(
                Method::POST,
                "/wireless-gateway-task-definitions",
                Some(body),
            )
            .await
            .unwrap();
        v["Id"].as_str().unwrap().to_string()
    }

    pub async fn task(&self, gateway: &str) -> Value {
        self.call(
            Method::GET,
            &format!("/wireless-gateways/{gateway}/tasks"),
            None,
        )
        .await
        .unwrap()
    }

    /// Waits until the last delivery attempt of a gateway's task is no longer in flight.
    pub async fn settled_task(&self, gateway: &str) -> Value {
        for _ in 0..200 {
            let t = self.task(gateway).await;
            let last = t["Attempts"].as_array().and_then(|a| a.last().cloned());
            if last.is_none_or(|a| a["Outcome"] != "InFlight") {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("delivery attempt never settled");
    }
}
