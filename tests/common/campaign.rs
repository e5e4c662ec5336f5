//! Campaign test helpers: a fleet of simulated stations on one version with the
//! test4 signing key, a definition from that version to the next, and waiting on
//! the campaign job through the API.

use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};

use super::firmware::{b64, vector};
use super::server::TestServer;
use super::station::Station;

pub struct Member {
    pub id: String,
    pub eui: u64,
    pub st: Station,
}

/// `n` confirmed gateways tagged `fleet=<tag>`, reporting `package`, holding sig-0.key.
pub async fn fleet(srv: &TestServer, tag: &str, base: u64, n: usize, package: &str) -> Vec<Member> {
    let mut out = Vec::new();
    for i in 0..n as u64 {
        let eui = base + i;
        let v = srv
            .call(
                Method::POST,
                "/wireless-gateways",
                Some(json!({"Name": format!("gw-{eui:x}"),
                    "LoRaWAN": {"GatewayEui": format!("{eui:016x}"), "RfRegion": "EU868"},
                    "Tags": [{"Key": "fleet", "Value": tag}]})),
            )
            .await
            .unwrap();
        let id = v["Id"].as_str().unwrap().to_string();
        let mut st = srv.station(eui, &srv.issue(&id, "CUPS", "Token").await);
        st.write_file("sig-0.key", vector("sig-0.key"));
        st.apply_update_version(package);
        for _ in 0..2 {
            let o = st.poll(srv.cups()).await;
            assert!(o.is_success(), "{:?}", o.error);
        }
        out.push(Member { id, eui, st });
    }
    out
}

/// A definition (AutoCreateTasks false) from `from` to `to` for the stations' model.
pub async fn definition(srv: &TestServer, st: &Station, from: &str, to: &str) -> String {
    let blob = srv.upload(&vector("v1.bin")).await;
    let crc = srv.register_key(&vector("sig-0.key")).await;
    let v =
        |p: &str| json!({"Station": st.station_version, "PackageVersion": p, "Model": st.model});
    srv.create_definition(json!({"AutoCreateTasks": false, "Name": format!("{from}->{to}"),
        "Update": {"UpdateDataSource": blob["Id"], "LoRaWAN": {"SigKeyCrc": crc,
            "UpdateSignature": b64(&vector("v1.bin.sig-0")), "CurrentVersion": v(from), "UpdateVersion": v(to)}}}))
        .await
}

/// Sends a request and returns the status and the JSON answer.
pub async fn send(
    srv: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, bytes) = srv
        .api()
        .send(method, path, body.map(|b| serde_json::to_vec(&b).unwrap()))
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status.as_u16(), v)
}

pub async fn create(srv: &TestServer, body: Value) -> String {
    let (status, v) = send(srv, Method::POST, "/campaigns", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["Id"].as_str().unwrap().to_string()
}

pub async fn campaign(srv: &TestServer, id: &str) -> Value {
    srv.get(&format!("/campaigns/{id}")).await
}

/// Waits (up to 10 s) until `f` holds for the campaign.
pub async fn wait_campaign(
    srv: &TestServer,
    id: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..400 {
        let c = campaign(srv, id).await;
        if f(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "campaign never reached: {what}: {}",
        campaign(srv, id).await
    );
}

/// Polls every member; returns the EUIs that received a verified update.
pub async fn poll_all(srv: &TestServer, members: &mut [Member]) -> Vec<u64> {
    let mut got = Vec::new();
    for m in members.iter_mut() {
        let o = m.st.poll(srv.cups()).await;
        assert!(o.is_success(), "{:?}", o.error);
        if o.update_verified() {
            got.push(m.eui);
        }
    }
    got
}

/// The station "runs" the update: reports `to` from now on, and polls once.
pub async fn run_update(srv: &TestServer, m: &mut Member, to: &str) {
    m.st.apply_update_version(to);
    let o = m.st.poll(srv.cups()).await;
    assert!(o.is_success(), "{:?}", o.error);
}

pub fn count(c: &Value, status: &str) -> u64 {
    c["Counts"][status].as_u64().unwrap_or(0)
}
