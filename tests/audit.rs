//! The audit log through the real server: every write route leaves one entry
//! naming the caller (never the token), the method, path, resource, Id and
//! status; reads and refused tokens leave none; `GET /audit-log` filters and
//! pages; `stationkeeper audit` prints it; old entries are pruned.

mod common;

use common::server::{TestServer, TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

const EUI: u64 = 0x0016_c001_ff10_a0a0;

async fn newest(srv: &TestServer) -> Value {
    let page = srv.get("/audit-log?maxResults=1").await;
    page["Entries"][0].clone()
}

async fn count(srv: &TestServer) -> usize {
    let all = srv.api().list_all("/audit-log", "Entries").await.unwrap();
    all["Entries"].as_array().unwrap().len()
}

/// Sends one call and checks the entry it left; returns the answer.
async fn audited(
    srv: &TestServer,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    resource: &str,
    id: Option<&str>,
) -> (StatusCode, Value) {
    let (status, bytes) = srv.api().send(method.clone(), path, body).await.unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let e = newest(srv).await;
    let what = format!("{method} {path} -> {status}: {e}");
    assert_eq!(e["Method"], method.as_str(), "{what}");
    assert_eq!(e["Path"], path.split('?').next().unwrap(), "{what}");
    assert_eq!(e["Status"], status.as_u16(), "{what}");
    assert_eq!(e["Actor"], "api-token", "{what}");
    assert_eq!(e["Resource"], resource, "{what}");
    if let Some(id) = id {
        assert_eq!(e["ResourceId"], id, "{what}");
    }
    assert!(
        !e.to_string().contains(TOKEN),
        "the secret never reaches the log"
    );
    if !status.is_success() {
        // The error's message, clipped to 256 characters.
        let summary = e["Summary"].as_str().unwrap().trim_end_matches('…');
        assert!(
            answer["Message"].as_str().unwrap().starts_with(summary),
            "{what}"
        );
        assert!(summary.chars().count() <= 256);
    }
    (status, answer)
}

fn j(v: Value) -> Option<Vec<u8>> {
    Some(v.to_string().into_bytes())
}

#[tokio::test]
async fn every_write_route_leaves_one_entry() {
    let srv = TestServer::start().await;
    use common::firmware::{b64, vector};
    use Method as M;

    // Gateways, credentials, CUPS config.
    let (s, gw) = audited(&srv, M::POST, "/wireless-gateways",
        j(json!({"Name": "north-1", "LoRaWAN": {"GatewayEui": format!("{EUI:016x}"), "RfRegion": "EU868"}})),
        "wireless-gateways", None).await;
    assert_eq!(s, StatusCode::CREATED);
    let gw = gw["Id"].as_str().unwrap().to_string();
    assert_eq!(
        newest(&srv).await["ResourceId"],
        gw,
        "a create names the Id it made"
    );
    audited(
        &srv,
        M::PATCH,
        &format!("/wireless-gateways/{gw}"),
        j(json!({"Name": "north-2"})),
        "wireless-gateways",
        Some(&gw),
    )
    .await;
    audited(
        &srv,
        M::PUT,
        &format!("/wireless-gateways/{gw}/cups-config"),
        j(json!({"CupsUri": "https://cups.example.net:8443"})),
        "wireless-gateways",
        Some(&gw),
    )
    .await;
    let (s, _) = audited(
        &srv,
        M::POST,
        &format!("/wireless-gateways/{gw}/credentials"),
        j(json!({"Service": "CUPS", "Kind": "Token"})),
        "wireless-gateways",
        Some(&gw),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    audited(
        &srv,
        M::DELETE,
        &format!("/wireless-gateways/{gw}/credentials/7"),
        None,
        "wireless-gateways",
        Some(&gw),
    )
    .await;

    // Blobs, keys, definitions, tasks.
    let (s, blob) = audited(
        &srv,
        M::POST,
        "/blobs",
        Some(vector("v1.bin")),
        "blobs",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let blob = blob["Id"].as_str().unwrap().to_string();
    let (_, key) = audited(
        &srv,
        M::POST,
        "/signing-keys",
        j(json!({"Name": "k", "PublicKey": b64(&vector("sig-0.key"))})),
        "signing-keys",
        None,
    )
    .await;
    let def_body = TestServer::definition(
        &blob,
        &vector("v1.bin.sig-0"),
        key["KeyCrc"].as_u64().unwrap() as u32,
        ("2.0.6", "1.0.0", "rpi"),
        None,
        false,
    );
    let (_, def) = audited(
        &srv,
        M::POST,
        "/wireless-gateway-task-definitions",
        j(def_body),
        "wireless-gateway-task-definitions",
        None,
    )
    .await;
    let def = def["Id"].as_str().unwrap().to_string();
    audited(
        &srv,
        M::POST,
        &format!("/wireless-gateways/{gw}/tasks"),
        j(json!({"WirelessGatewayTaskDefinitionId": def})),
        "wireless-gateways",
        Some(&gw),
    )
    .await;
    audited(
        &srv,
        M::DELETE,
        &format!("/wireless-gateways/{gw}/tasks"),
        None,
        "wireless-gateways",
        Some(&gw),
    )
    .await;
    audited(
        &srv,
        M::DELETE,
        &format!("/wireless-gateway-task-definitions/{def}"),
        None,
        "wireless-gateway-task-definitions",
        Some(&def),
    )
    .await;
    audited(
        &srv,
        M::DELETE,
        &format!("/signing-keys/{}", key["Id"].as_str().unwrap()),
        None,
        "signing-keys",
        key["Id"].as_str(),
    )
    .await;

    // Devices: refused calls are audited too (their Summary is the error).
    for (path, resource) in [
        ("/device-profiles", "device-profiles"),
        ("/service-profiles", "service-profiles"),
        ("/wireless-devices", "wireless-devices"),
        ("/multicast-groups", "multicast-groups"),
        ("/fuota-tasks", "fuota-tasks"),
    ] {
        let (s, _) = audited(&srv, M::POST, path, j(json!({"Bogus": 1})), resource, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    let (s, _) = audited(&srv, M::POST, "/device-profiles", j(json!({"Name": "p", "LoRaWAN": {"MacVersion": "1.0.3", "RegParamsRevision": "RP002-1.0.1", "RfRegion": "EU868", "SupportsJoin": true}})), "device-profiles", None).await;
    assert_eq!(s, StatusCode::CREATED);
    for (path, resource) in [
        ("/device-profiles/nope", "device-profiles"),
        ("/service-profiles/nope", "service-profiles"),
        ("/wireless-devices/nope", "wireless-devices"),
        ("/multicast-groups/nope", "multicast-groups"),
        ("/fuota-tasks/nope", "fuota-tasks"),
    ] {
        audited(&srv, M::DELETE, path, None, resource, Some("nope")).await;
    }
    audited(&srv, M::POST, "/wireless-devices/nope/data", j(json!({"TransmitMode": 0, "PayloadData": "AA==", "WirelessMetadata": {"LoRaWAN": {"FPort": 1}}})), "wireless-devices", Some("nope")).await;
    audited(
        &srv,
        M::PUT,
        "/multicast-groups/nope/session",
        j(json!({})),
        "multicast-groups",
        Some("nope"),
    )
    .await;
    audited(
        &srv,
        M::PUT,
        "/multicast-groups/nope/gateways",
        j(json!({})),
        "multicast-groups",
        Some("nope"),
    )
    .await;
    audited(
        &srv,
        M::PATCH,
        "/fuota-tasks/nope",
        j(json!({})),
        "fuota-tasks",
        Some("nope"),
    )
    .await;
    audited(
        &srv,
        M::PUT,
        "/fuota-tasks/nope",
        None,
        "fuota-tasks",
        Some("nope"),
    )
    .await;
    audited(
        &srv,
        M::PUT,
        "/fuota-tasks/nope/multicast-group",
        j(json!({})),
        "fuota-tasks",
        Some("nope"),
    )
    .await;

    // Deletes last: the gateway and the blob.
    audited(
        &srv,
        M::DELETE,
        &format!("/wireless-gateways/{gw}"),
        None,
        "wireless-gateways",
        Some(&gw),
    )
    .await;
    audited(
        &srv,
        M::DELETE,
        &format!("/blobs/{blob}"),
        None,
        "blobs",
        Some(&blob),
    )
    .await;

    // Reads and refused tokens leave nothing.
    let before = count(&srv).await;
    srv.get("/wireless-gateways").await;
    srv.get("/blobs").await;
    let stranger = stationkeeper::cli::ApiClient::new(
        &format!("http://{}", srv.running.api_addr),
        "not-the-token".into(),
        None,
    )
    .unwrap();
    let (s, _) = stranger
        .send(M::POST, "/blobs", Some(b"x".to_vec()))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&srv).await, before);
}

// Multi-threaded: the CLI blocks this thread while the server answers it.
#[tokio::test(flavor = "multi_thread")]
async fn filters_paging_cli_and_retention() {
    let srv = TestServer::start().await;
    let a = srv.create_gateway(EUI).await;
    let b = srv.create_gateway(EUI + 1).await;
    srv.call(
        Method::PATCH,
        &format!("/wireless-gateways/{a}"),
        Some(json!({"Name": "x"})),
    )
    .await
    .unwrap();
    srv.upload(b"some bytes").await;

    let by_id = srv.get(&format!("/audit-log?resourceId={a}")).await;
    let entries = by_id["Entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{by_id}");
    assert_eq!(entries[0]["Method"], "PATCH", "newest first");
    assert_eq!(
        srv.get("/audit-log?resource=blobs").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        srv.get("/audit-log?actor=api-token").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        srv.get("/audit-log?actor=someone-else").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        srv.get("/audit-log?since=2999-01-01T00:00:00Z").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        srv.get("/audit-log?until=2000-01-01T00:00:00Z").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let err = srv
        .call(Method::GET, "/audit-log?since=yesterday", None)
        .await
        .unwrap_err();
    assert!(err.contains("since") && err.contains("RFC 3339"), "{err}");

    // Pages of two: 4 entries, one NextToken, nothing lost or repeated.
    let p1 = srv.get("/audit-log?maxResults=2").await;
    let token = p1["NextToken"].as_str().unwrap();
    let p2 = srv
        .get(&format!("/audit-log?maxResults=2&nextToken={token}"))
        .await;
    assert!(p2.get("NextToken").is_none(), "{p2}");
    let ids: Vec<&Value> = p1["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["Entries"].as_array().unwrap())
        .map(|e| &e["ResourceId"])
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[3], &json!(a), "the oldest is the first create");
    assert_eq!(ids[2], &json!(b));

    // The CLI prints the same page.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stationkeeper"))
        .args([
            "audit",
            "--resource-id",
            &b,
            "--api",
            &format!("http://{}", srv.running.api_addr),
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["Entries"][0]["ResourceId"], json!(b));
    assert_eq!(printed["Entries"][0]["Method"], "POST");

    // Retention: an entry older than [audit] retention_days goes with the next write.
    let store = &srv.running.app.store;
    let old = stationkeeper::store::AuditEntry {
        id: 0,
        at: "2001-01-01T00:00:00.000Z".into(),
        at_us: 978_307_200_000_000,
        actor: "api-token".into(),
        method: "POST".into(),
        path: "/blobs".into(),
        resource: "blobs".into(),
        resource_id: None,
        status: 201,
        summary: "created or done".into(),
    };
    store.insert_audit(old, 0).await.unwrap();
    assert_eq!(
        srv.get("/audit-log?until=2002-01-01T00:00:00Z").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    srv.upload(b"more bytes").await;
    assert_eq!(
        srv.get("/audit-log?until=2002-01-01T00:00:00Z").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
