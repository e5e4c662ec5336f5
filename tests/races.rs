//! Races a hostile or unlucky client can provoke, through the real server: many
//! simultaneous polls of one gateway (the delivery cap, task creation, open
//! registration), and concurrent upload and delete of the same blob.

mod common;

use std::sync::Arc;

use common::firmware::vector;
use common::server::TestServer;
use common::station::answer::parse_answer;
use common::station::net::{client_config, raw_exchange, ReadOptions, Transport};
use common::station::Station;
use hyper::Method;
use serde_json::json;

const EUI: u64 = 0xb827_ebff_fe61_51a8;

fn host_port(srv: &TestServer) -> String {
    srv.cups_uri().split_once("://").unwrap().1.to_string()
}

fn tls(srv: &TestServer) -> Transport {
    let trust = std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap();
    let host = host_port(srv).rsplit_once(':').unwrap().0.to_string();
    Transport::Tls {
        config: client_config(&trust, None, true).unwrap(),
        server_name: host,
    }
}

/// A settled token gateway whose station holds the test4 signing key and runs
/// package `v0`, and the test4 definition (v0 → v1). Returns the gateway Id,
/// the station and the definition Id.
async fn gateway_and_definition(srv: &TestServer, auto: bool) -> (String, Station, String) {
    let id = srv.create_gateway(EUI).await;
    let mut st = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    st.write_file("sig-0.key", vector("sig-0.key"));
    st.apply_update_version("v0");
    for _ in 0..2 {
        assert!(st.poll(srv.cups()).await.is_success());
    }
    let blob = srv.upload(&vector("v1.bin")).await;
    let crc = srv.register_key(&vector("sig-0.key")).await;
    let v = |p: &str| (st.station_version.clone(), p.to_string(), st.model.clone());
    let (from, to) = (v("v0"), v("v1"));
    let def = srv
        .create_definition(TestServer::definition(
            blob["Id"].as_str().unwrap(),
            &vector("v1.bin.sig-0"),
            crc,
            (&from.0, &from.1, &from.2),
            Some((&to.0, &to.1, &to.2)),
            auto,
        ))
        .await;
    (id, st, def)
}

/// Sends `n` copies of `request` at once; returns (status, whether the answer
/// carried an update) for each.
async fn burst(srv: &TestServer, request: Vec<u8>, n: usize) -> Vec<(u16, bool)> {
    let request = Arc::new(request);
    let transport = tls(srv);
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let polls: Vec<_> = (0..n)
        .map(|_| {
            let (request, transport, start) = (request.clone(), transport.clone(), start.clone());
            let addr = srv.cups();
            tokio::spawn(async move {
                start.wait().await;
                let r = raw_exchange(addr, &transport, &request, &ReadOptions::default())
                    .await
                    .expect("the server answers every poll");
                let update = r.status == 200
                    && parse_answer(&r.body)
                        .expect("a well-formed answer")
                        .update
                        .is_some();
                (r.status, update)
            })
        })
        .collect();
    let mut out = Vec::new();
    for p in polls {
        out.push(p.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_polls_never_break_the_delivery_cap() {
    let srv = TestServer::start().await;
    let (id, st, def) = gateway_and_definition(&srv, false).await;
    srv.call(
        Method::POST,
        &format!("/wireless-gateways/{id}/tasks"),
        Some(json!({"WirelessGatewayTaskDefinitionId": def})),
    )
    .await
    .unwrap();
    let key = st.read_file("cups.key").unwrap();
    let answers = burst(&srv, st.request_bytes(&host_port(&srv), Some(&key)), 50).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let delivered = answers.iter().filter(|a| a.1).count();
    assert!(
        (1..=3).contains(&delivered),
        "{delivered} answers carried the update"
    );
    let t = srv.settled_task(&id).await;
    let attempts = t["Attempts"].as_array().unwrap().len();
    assert_eq!(attempts, delivered, "one attempt row per delivery: {t}");
    // Every delivery moved the task one step: IN_PROGRESS, FIRST_RETRY,
    // SECOND_RETRY, and a poll after the third finds it still on v0: FAILED.
    let want = ["PENDING", "IN_PROGRESS", "FIRST_RETRY", "SECOND_RETRY"];
    let status = t["Status"].as_str().unwrap();
    assert!(
        status == want[delivered] || (delivered == 3 && status == "FAILED"),
        "{delivered} deliveries but status {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_polls_create_one_auto_task_without_a_5xx() {
    let srv = TestServer::start().await;
    let (id, st, def) = gateway_and_definition(&srv, true).await;
    let key = st.read_file("cups.key").unwrap();
    let answers = burst(&srv, st.request_bytes(&host_port(&srv), Some(&key)), 10).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let delivered = answers.iter().filter(|a| a.1).count();
    assert!((1..=3).contains(&delivered), "{delivered} deliveries");
    let t = srv.settled_task(&id).await;
    assert_eq!(t["WirelessGatewayTaskDefinitionId"], def.as_str());
    assert_eq!(t["Attempts"].as_array().unwrap().len(), delivered);
    let d = srv
        .get(&format!("/wireless-gateway-task-definitions/{def}"))
        .await;
    let counts = d["TaskCounts"].as_object().unwrap();
    let tasks: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(tasks, 1, "one task for the gateway: {d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_first_polls_in_register_mode_get_no_5xx() {
    let srv = TestServer::start_with(|c| {
        c.gateways.unknown = stationkeeper::config::UnknownGateways::Register;
        c.gateways.register_per_source_per_min = 100;
    })
    .await;
    let home = srv.dir.path().join("station-new");
    std::fs::create_dir_all(&home).unwrap();
    let st = Station::new(home, EUI);
    st.write_file("version.txt", "1.0.0\n");
    st.write_file(
        "cups.trust",
        std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap(),
    );
    st.write_file("cups.uri", srv.cups_uri());
    let answers = burst(&srv, st.request_bytes(&host_port(&srv), None), 10).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let gws = srv.get("/wireless-gateways").await;
    assert_eq!(
        gws["WirelessGatewayList"].as_array().unwrap().len(),
        1,
        "{gws}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upload_and_delete_of_one_blob_never_leave_a_row_without_its_file() {
    let srv = TestServer::start().await;
    let bytes: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let id = srv.upload(&bytes).await["Id"].as_str().unwrap().to_string();
    let file = srv
        .state_dir()
        .join("blobs")
        .join(id.replace("sha256:", "sha256-"));
    let mut broken = 0;
    for _ in 0..150 {
        let (api_up, api_del) = (srv.api(), srv.api());
        let body = bytes.clone();
        let up = tokio::spawn(async move { api_up.send(Method::POST, "/blobs", Some(body)).await });
        let path = format!("/blobs/{id}");
        let del = tokio::spawn(async move { api_del.send(Method::DELETE, &path, None).await });
        let (up, del) = (up.await.unwrap().unwrap(), del.await.unwrap().unwrap());
        assert_eq!(up.0, 201, "{}", String::from_utf8_lossy(&up.1));
        assert!(del.0 == 204 || del.0 == 404, "delete: {}", del.0);
        let row = srv
            .call(Method::GET, &format!("/blobs/{id}"), None)
            .await
            .is_ok();
        if row != file.exists() {
            broken += 1;
        }
        if !row {
            srv.upload(&bytes).await;
        }
    }
    assert_eq!(broken, 0, "rounds that left a row and its file disagreeing");
}
