//! A `kill -9` of the real binary mid-campaign: the next process resumes the
//! campaign from the database with the same wave open and the same gateways in
//! progress, and opens the next wave once, through the gate.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::firmware::{b64, vector};
use common::process;
use common::server::install_files;
use common::station::Station;
use hyper::Method;
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;

async fn call(api: &ApiClient, m: Method, path: &str, body: Option<Value>) -> Value {
    api.call(m, path, body).await.unwrap()
}

async fn wait(api: &ApiClient, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let c = call(api, Method::GET, &format!("/campaigns/{id}"), None).await;
        if f(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never: {what}");
}

fn n(c: &Value, s: &str) -> u64 {
    c["Counts"][s].as_u64().unwrap_or(0)
}

async fn poll_all(sts: &mut [Station], cups: SocketAddr) -> Vec<usize> {
    let mut got = vec![];
    for (i, st) in sts.iter_mut().enumerate() {
        let o = st.poll(cups).await;
        assert!(o.is_success(), "{:?}", o.error);
        if o.update_verified() {
            got.push(i);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_campaign_resumes_without_opening_a_wave_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::write_config(dir.path(), "[campaigns]\ntick_ms = 20\n");
    let mut p = process::launch(&cfg);
    let api = p.api();
    let mut sts = Vec::new();
    for i in 0..6u64 {
        let eui = 0xe000 + i;
        let id = call(
            &api,
            Method::POST,
            "/wireless-gateways",
            Some(json!({
            "LoRaWAN": {"GatewayEui": format!("{eui:016x}"), "RfRegion": "EU868"},
            "Tags": [{"Key": "fleet", "Value": "k"}]})),
        )
        .await["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let issued = call(
            &api,
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": "CUPS", "Kind": "Token"})),
        )
        .await;
        let home = dir.path().join(format!("st{i}"));
        std::fs::create_dir_all(&home).unwrap();
        let mut st = Station::new(home, eui);
        install_files(&st, &issued);
        st.write_file("sig-0.key", vector("sig-0.key"));
        st.apply_update_version("1.0.0");
        for _ in 0..2 {
            assert!(st.poll(p.cups).await.is_success());
        }
        sts.push(st);
    }
    let (status, blob) = api
        .send(Method::POST, "/blobs", Some(vector("v1.bin")))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let blob: Value = serde_json::from_slice(&blob).unwrap();
    let crc = call(
        &api,
        Method::POST,
        "/signing-keys",
        Some(json!({"Name": "k", "PublicKey": b64(&vector("sig-0.key"))})),
    )
    .await["KeyCrc"]
        .clone();
    let v = |pkg: &str| json!({"Station": sts[0].station_version, "PackageVersion": pkg, "Model": sts[0].model});
    let def = call(&api, Method::POST, "/wireless-gateway-task-definitions", Some(json!({"AutoCreateTasks": false,
        "Update": {"UpdateDataSource": blob["Id"], "LoRaWAN": {"SigKeyCrc": crc,
        "UpdateSignature": b64(&vector("v1.bin.sig-0")), "CurrentVersion": v("1.0.0"), "UpdateVersion": v("1.1.0")}}}))).await["Id"].clone();
    let id = call(
        &api,
        Method::POST,
        "/campaigns",
        Some(json!({"Definitions": [def],
        "Target": {"Tags": [{"Key": "fleet", "Value": "k"}]},
        "Waves": [{"Count": 2}, {"Count": 2}, {"Percent": 100}],
        "Gate": {"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}})),
    )
    .await["Id"]
        .as_str()
        .unwrap()
        .to_string();
    wait(&api, &id, "wave 0 started", |c| n(c, "InProgress") == 2).await;
    let first = poll_all(&mut sts, p.cups).await;
    assert_eq!(first.len(), 2);

    p.child.kill().unwrap(); // SIGKILL: nothing is flushed or drained
    p.child.wait().unwrap();
    let p2 = process::launch(&cfg);
    let api = p2.api();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = wait(&api, &id, "resumed", |c| c["State"] == "Running").await;
    assert_eq!(c["OpenWave"], 0, "{c}");
    assert_eq!(n(&c, "InProgress"), 2, "{c}");
    assert_eq!(
        c["Waves"][1]["Counts"]["Waiting"], 2,
        "wave 1 is still shut: {c}"
    );
    // Their tasks survived: a poll still reporting 1.0.0 gets the update again (attempt 2).
    assert_eq!(poll_all(&mut sts, p2.cups).await, first);
    for &i in &first {
        sts[i].apply_update_version("1.1.0");
        assert!(sts[i].poll(p2.cups).await.is_success());
    }
    let c = wait(&api, &id, "wave 1", |c| {
        c["OpenWave"] == 1 && n(c, "InProgress") == 2
    })
    .await;
    assert_eq!(n(&c, "Succeeded"), 2);
    assert_eq!(c["Waves"][2]["Counts"]["Waiting"], 2, "{c}");
    let opened = p2
        .all_logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("campaign wave opened") && l.contains("wave=1"))
        .count();
    assert_eq!(opened, 1, "wave 1 opened once");
}
