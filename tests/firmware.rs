//! Gateway firmware updates end to end: the AWS walkthrough with Semtech's own
//! signed test update, the retry ladder, interrupted downloads, the missing-key
//! case, multi-hop paths and manual assignment, all against the station simulator
//! (which verifies signatures itself, sharing no code with the server).

mod common;

use common::firmware::vector;
use common::server::TestServer;
use common::station::Station;
use hyper::Method;
use serde_json::json;
use sha2::Digest;
use stationkeeper::firmware::signature;

const EUI: u64 = 0xb827_ebff_fe61_51a8;

/// A registered, credential-confirmed gateway whose station holds the test4 key
/// and reports package `v0`. Returns its Id and the station.
async fn ready_gateway(srv: &TestServer) -> (String, Station) {
    let id = srv.create_gateway(EUI).await;
    let mut st = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    st.write_file("sig-0.key", vector("sig-0.key"));
    st.apply_update_version("v0");
    assert!(st.poll(srv.cups()).await.is_success());
    let o = st.poll(srv.cups()).await;
    assert_eq!(o.body, vec![0u8; 14], "gateway settled before the update");
    (id, st)
}

fn version(st: &Station, package: &str) -> (String, String, String) {
    (
        st.station_version.clone(),
        package.to_string(),
        st.model.clone(),
    )
}

fn v3(t: &(String, String, String)) -> (&str, &str, &str) {
    (&t.0, &t.1, &t.2)
}

async fn test4_definition(srv: &TestServer, st: &Station, auto: bool) -> String {
    let blob = srv.upload(&vector("v1.bin")).await;
    let crc = srv.register_key(&vector("sig-0.key")).await;
    assert_eq!(crc, 488_546_068);
    let body = TestServer::definition(
        blob["Id"].as_str().unwrap(),
        &vector("v1.bin.sig-0"),
        crc,
        v3(&version(st, "v0")),
        Some(v3(&version(st, "v1"))),
        auto,
    );
    srv.create_definition(body).await
}

#[tokio::test]
async fn aws_walkthrough_with_the_semtech_vector_completes() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    // Step 1 of the walkthrough: read the gateway's current version.
    let fw = srv
        .get(&format!("/wireless-gateways/{id}/firmware-information"))
        .await;
    assert_eq!(fw["LoRaWAN"]["CurrentVersion"]["PackageVersion"], "v0");
    let def = test4_definition(&srv, &st, true).await;

    // The next poll carries the signed update; the answer is byte for byte the
    // response from Semtech's test4, and the station verifies it with sig-0.key.
    let o = st.poll(srv.cups()).await;
    assert!(o.is_success(), "{:?}", o.error);
    assert_eq!(o.body, vector("cups-response-sig-update.bin"));
    assert!(o.update_verified(), "station verifies the signature");
    assert_eq!(o.update.as_ref().unwrap().data, vector("v1.bin"));
    let t = srv.settled_task(&id).await;
    assert_eq!(t["Status"], "IN_PROGRESS");
    assert_eq!(t["WirelessGatewayTaskDefinitionId"], def.as_str());
    assert_eq!(t["Attempts"][0]["Outcome"], "Delivered");
    assert_eq!(t["Attempts"][0]["BytesSent"], 226);

    // The update ran (v1.bin writes version.txt); the next poll completes the task.
    st.apply_update_version("v1");
    let o = st.poll(srv.cups()).await;
    assert_eq!(o.body, vec![0u8; 14]);
    let t = srv.task(&id).await;
    assert_eq!(t["Status"], "COMPLETED");
    assert!(t["TaskCreatedAt"].as_str().unwrap().ends_with('Z'));
    assert!(t["LastUplinkReceivedAt"].is_string());
    let d = srv
        .get(&format!("/wireless-gateway-task-definitions/{def}"))
        .await;
    assert_eq!(d["TaskCounts"]["COMPLETED"], 1);
    assert_eq!(d["TaskCounts"]["PENDING"], 0);
    assert_eq!(d["SignatureVerified"], true);
    // Nothing more is sent once completed.
    assert_eq!(st.poll(srv.cups()).await.body, vec![0u8; 14]);
}

#[tokio::test]
async fn the_retry_ladder_ends_in_failed() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    test4_definition(&srv, &st, true).await;
    for want in ["IN_PROGRESS", "FIRST_RETRY", "SECOND_RETRY"] {
        let o = st.poll(srv.cups()).await;
        assert!(o.update_verified(), "{want}: update delivered");
        assert_eq!(srv.settled_task(&id).await["Status"], want);
    }
    let o = st.poll(srv.cups()).await;
    assert!(!o.update_arrived(), "FAILED stops delivering");
    let t = srv.task(&id).await;
    assert_eq!(t["Status"], "FAILED");
    assert!(t["StatusReason"]
        .as_str()
        .unwrap()
        .contains("after 3 deliveries"));
    assert_eq!(t["Attempts"].as_array().unwrap().len(), 3);
    // A failed task is not restarted by later polls.
    assert!(!st.poll(srv.cups()).await.update_arrived());
    assert_eq!(srv.task(&id).await["Status"], "FAILED");
}

#[tokio::test]
async fn a_gateway_without_the_key_stays_pending_with_a_reason() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    test4_definition(&srv, &st, true).await;
    st.remove_file("sig-0.key");
    let o = st.poll(srv.cups()).await;
    assert!(!o.update_arrived());
    let t = srv.task(&id).await;
    assert_eq!(t["Status"], "PENDING");
    assert!(
        t["StatusReason"]
            .as_str()
            .unwrap()
            .contains("lacks the signing key"),
        "{t}"
    );
    // Once the key is installed, the update goes out.
    st.write_file("sig-0.key", vector("sig-0.key"));
    assert!(st.poll(srv.cups()).await.update_verified());
    assert_eq!(srv.settled_task(&id).await["Status"], "IN_PROGRESS");
}

/// A freshly signed update of `len` bytes; returns (blob Id, signature, key CRC, sig-0.key).
async fn big_update(srv: &TestServer, len: usize) -> (String, Vec<u8>, u32, [u8; 64]) {
    let (pem, raw) = signature::generate();
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let digest: [u8; 64] = sha2::Sha512::digest(&data).into();
    let (sig, crc) = signature::sign_digest(&signature::parse_private_key(&pem).unwrap(), &digest);
    let blob = srv.upload(&data).await;
    assert_eq!(blob["Size"], len);
    srv.register_key(&raw).await;
    (blob["Id"].as_str().unwrap().to_string(), sig, crc, raw)
}

#[tokio::test]
async fn an_interrupted_download_is_a_failed_attempt_and_is_sent_again() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    let len = 8 * 1024 * 1024;
    let (blob, sig, crc, raw) = big_update(&srv, len).await;
    st.write_file("sig-0.key", raw);
    srv.create_definition(TestServer::definition(
        &blob,
        &sig,
        crc,
        v3(&version(&st, "v0")),
        Some(v3(&version(&st, "v9"))),
        true,
    ))
    .await;

    st.set_abort_after_body_bytes(Some(64 * 1024));
    let o = st.poll(srv.cups()).await;
    assert!(!o.is_success(), "the station dropped the connection");
    let t = srv.settled_task(&id).await;
    assert_eq!(t["Status"], "IN_PROGRESS");
    let a = &t["Attempts"][0];
    assert_eq!(a["Outcome"], "Interrupted", "{t}");
    assert!(a["BytesSent"].as_u64().unwrap() < a["BytesTotal"].as_u64().unwrap());

    // The retry streams the whole 8 MiB update, which verifies.
    st.set_abort_after_body_bytes(None);
    let o = st.poll(srv.cups()).await;
    assert!(o.update_verified(), "{:?}", o.error);
    assert_eq!(o.update.as_ref().unwrap().data.len(), len);
    let t = srv.settled_task(&id).await;
    assert_eq!(t["Status"], "FIRST_RETRY");
    assert_eq!(t["Attempts"][1]["Outcome"], "Delivered");
}

#[tokio::test]
async fn multi_hop_path_creates_the_next_task_when_the_first_completes() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    let (blob1, sig1, crc, raw) = big_update(&srv, 1000).await;
    st.write_file("sig-0.key", raw);
    let hop1 = srv
        .create_definition(TestServer::definition(
            &blob1,
            &sig1,
            crc,
            v3(&version(&st, "v0")),
            Some(v3(&version(&st, "v1"))),
            true,
        ))
        .await;
    // The second hop is signed with the same key.
    let data2 = b"#!/bin/sh\necho v2 > version.txt\n".to_vec();
    let blob2 = srv.upload(&data2).await;
    let hop2_sig = {
        // Re-sign with a new key pair registered for hop 2, placed in sig-1.key.
        let (pem, raw2) = signature::generate();
        srv.register_key(&raw2).await;
        st.write_file("sig-1.key", raw2);
        let d: [u8; 64] = sha2::Sha512::digest(&data2).into();
        signature::sign_digest(&signature::parse_private_key(&pem).unwrap(), &d)
    };
    let hop2 = srv
        .create_definition(TestServer::definition(
            blob2["Id"].as_str().unwrap(),
            &hop2_sig.0,
            hop2_sig.1,
            v3(&version(&st, "v1")),
            Some(v3(&version(&st, "v2"))),
            true,
        ))
        .await;

    let o = st.poll(srv.cups()).await;
    assert_eq!(o.update.as_ref().unwrap().data.len(), 1000);
    st.apply_update_version("v1");
    // One poll completes hop 1 and delivers hop 2.
    let o = st.poll(srv.cups()).await;
    assert!(o.update_verified());
    assert_eq!(o.update.as_ref().unwrap().data, data2);
    let t = srv.settled_task(&id).await;
    assert_eq!(t["WirelessGatewayTaskDefinitionId"], hop2.as_str());
    assert_eq!(t["Status"], "IN_PROGRESS");
    st.apply_update_version("v2");
    assert_eq!(st.poll(srv.cups()).await.body, vec![0u8; 14]);
    assert_eq!(srv.task(&id).await["Status"], "COMPLETED");
    for (def, n) in [(hop1, 1), (hop2, 1)] {
        let d = srv
            .get(&format!("/wireless-gateway-task-definitions/{def}"))
            .await;
        assert_eq!(d["TaskCounts"]["COMPLETED"], n);
    }
}

#[tokio::test]
async fn without_auto_create_only_assigned_gateways_update() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    let def = test4_definition(&srv, &st, false).await;
    assert!(!st.poll(srv.cups()).await.update_arrived());
    let e = srv
        .call(Method::GET, &format!("/wireless-gateways/{id}/tasks"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("404"), "{e}");

    let v = srv
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/tasks"),
            Some(json!({"WirelessGatewayTaskDefinitionId": def})),
        )
        .await
        .unwrap();
    assert_eq!(v["Status"], "PENDING");
    let e = srv
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/tasks"),
            Some(json!({"WirelessGatewayTaskDefinitionId": def})),
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("409"), "one open task per gateway: {e}");
    // The definition cannot be deleted while the task is open, nor its blob.
    let e = srv
        .call(
            Method::DELETE,
            &format!("/wireless-gateway-task-definitions/{def}"),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("409"), "{e}");

    assert!(st.poll(srv.cups()).await.update_verified());
    assert_eq!(srv.settled_task(&id).await["Status"], "IN_PROGRESS");
    // Deleting the task stops delivery at once.
    srv.call(
        Method::DELETE,
        &format!("/wireless-gateways/{id}/tasks"),
        None,
    )
    .await
    .unwrap();
    assert!(!st.poll(srv.cups()).await.update_arrived());
    srv.call(
        Method::DELETE,
        &format!("/wireless-gateway-task-definitions/{def}"),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn uris_and_credentials_ride_along_with_an_update() {
    let srv = TestServer::start().await;
    let (id, mut st) = ready_gateway(&srv).await;
    test4_definition(&srv, &st, true).await;
    srv.issue(&id, "LNS", "Token").await;
    let o = st.poll(srv.cups()).await;
    assert!(o.update_verified());
    assert!(
        o.answer.as_ref().unwrap().tc_cred.is_some(),
        "new LNS credentials in the same answer"
    );
}
