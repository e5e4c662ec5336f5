//! The operator API as an operator's script uses it: bearer token, AWS-shaped
//! JSON, the error shape, paging, and every wireless-gateway call.

mod common;

use common::server::{TestServer, TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;

async fn raw(
    srv: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, Value) {
    let c = ApiClient::new(
        &format!("http://{}", srv.running.api_addr),
        token.into(),
        None,
    )
    .unwrap();
    let (status, bytes) = c
        .send(
            method,
            path,
            (!body.is_empty()).then(|| body.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test]
async fn healthz_needs_no_token_but_everything_else_does() {
    let srv = TestServer::start().await;
    let (s, _) = raw(&srv, "", Method::GET, "/healthz", "").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = raw(&srv, "wrong-token", Method::GET, "/wireless-gateways", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["Code"], "UnauthorizedException");
    let (s, _) = raw(&srv, TOKEN, Method::GET, "/wireless-gateways", "").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn gateway_lifecycle() {
    let srv = TestServer::start().await;
    let body = json!({
        "Name": "roof", "Description": "north roof",
        "LoRaWAN": {"GatewayEui": "B8-27-EB-FF-FE-61-51-A8", "RfRegion": "US915", "SubBands": [2],
                    "JoinEuiFilters": [["0000000000000000", "00000000ffffffff"]], "NetIdFilters": ["000013"]},
        "Tags": [{"Key": "site", "Value": "x"}], "ClientRequestToken": "abc"
    });
    let created = srv
        .call(Method::POST, "/wireless-gateways", Some(body.clone()))
        .await
        .unwrap();
    let id = created["Id"].as_str().unwrap();

    let got = srv.get(&format!("/wireless-gateways/{id}")).await;
    assert_eq!(got["Name"], "roof");
    assert_eq!(
        got["LoRaWAN"]["GatewayEui"], "b827ebfffe6151a8",
        "EUIs are shown as 16 lowercase hex digits"
    );
    assert_eq!(got["LoRaWAN"]["RfRegion"], "US915");
    assert_eq!(got["LoRaWAN"]["SubBands"], json!([2]));
    let by_eui = srv
        .get("/wireless-gateways/b827:ebff:fe61:51a8?identifierType=GatewayEui")
        .await;
    assert_eq!(by_eui["Id"], id);

    // The same ClientRequestToken and body: the first answer again.
    let again = srv
        .call(Method::POST, "/wireless-gateways", Some(body.clone()))
        .await
        .unwrap();
    assert_eq!(again["Id"], id);
    // Without the token, the EUI is taken.
    let mut body = body;
    body.as_object_mut().unwrap().remove("ClientRequestToken");
    let e = srv
        .call(Method::POST, "/wireless-gateways", Some(body))
        .await
        .unwrap_err();
    assert!(e.starts_with("409") && e.contains("already exists"), "{e}");

    srv.call(
        Method::PATCH,
        &format!("/wireless-gateways/{id}"),
        Some(json!({"Name": "roof-2"})),
    )
    .await
    .unwrap();
    let got = srv.get(&format!("/wireless-gateways/{id}")).await;
    assert_eq!(got["Name"], "roof-2");
    assert_eq!(got["Description"], "north roof");

    let fw = srv
        .get(&format!("/wireless-gateways/{id}/firmware-information"))
        .await;
    assert_eq!(fw["LoRaWAN"], json!({}), "no CUPS poll yet");
    let st = srv
        .get(&format!("/wireless-gateways/{id}/gateway-statistics"))
        .await;
    assert_eq!(st["ConnectionStatus"], "Disconnected");
    assert_eq!(st["LastUplinkReceivedAt"], Value::Null);

    srv.call(Method::DELETE, &format!("/wireless-gateways/{id}"), None)
        .await
        .unwrap();
    let e = srv
        .call(Method::GET, &format!("/wireless-gateways/{id}"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("404"), "{e}");
}

#[tokio::test]
async fn bad_requests_get_the_aws_error_shape_naming_the_field() {
    let srv = TestServer::start().await;
    let cases = [
        (
            r#"{"LoRaWAN":{"GatewayEui":"0102030405060708","RfRegion":"EU868"},"Colour":"red"}"#,
            "unknown field `Colour`",
        ),
        (
            r#"{"LoRaWAN":{"GatewayEui":"xyz","RfRegion":"EU868"}}"#,
            "invalid EUI",
        ),
        (
            r#"{"LoRaWAN":{"GatewayEui":"0102030405060708","RfRegion":"MARS"}}"#,
            "RfRegion",
        ),
        (
            r#"{"LoRaWAN":{"GatewayEui":"0102030405060708","RfRegion":"EU868","SubBands":[2]}}"#,
            "SubBands",
        ),
        (
            r#"{"LoRaWAN":{"GatewayEui":"0102030405060708","RfRegion":"US915","SubBands":[9]}}"#,
            "SubBands",
        ),
        (
            r#"{"LoRaWAN":{"GatewayEui":"0102030405060708","RfRegion":"EU868","NetIdFilters":["13"]}}"#,
            "NetIdFilters",
        ),
        (
            r#"{"LoRaWAN":{"RfRegion":"EU868"}}"#,
            "missing field `GatewayEui`",
        ),
        ("not json", "invalid request body"),
    ];
    for (body, want) in cases {
        let (s, v) = raw(&srv, TOKEN, Method::POST, "/wireless-gateways", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["Code"], "ValidationException");
        assert!(v["Message"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let (s, v) = raw(
        &srv,
        TOKEN,
        Method::GET,
        "/wireless-gateways?maxResults=251",
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = raw(
        &srv,
        TOKEN,
        Method::GET,
        "/service-endpoint?serviceType=FTP",
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // An unknown path is not a missing resource (botocore would say so).
    let (s, v) = raw(&srv, TOKEN, Method::GET, "/nope", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["Code"], "UnknownOperationException");
}

#[tokio::test]
async fn api_body_cap_answers_413() {
    let srv = TestServer::start_with(|c| c.limits.api_body_bytes = 256).await;
    let body = format!(
        r#"{{"Name":"{}","LoRaWAN":{{"GatewayEui":"0102030405060708","RfRegion":"EU868"}}}}"#,
        "x".repeat(300)
    );
    let (s, v) = raw(&srv, TOKEN, Method::POST, "/wireless-gateways", &body).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["Code"], "PayloadTooLarge");
}

/// Walks a list two at a time and returns the Ids, in order.
async fn all_pages(srv: &TestServer, path: &str, key: &str) -> Vec<String> {
    let mut seen = vec![];
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(t) => format!("{path}?maxResults=2&nextToken={t}"),
            None => format!("{path}?maxResults=2"),
        };
        let page = srv.get(&url).await;
        let list = page[key].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(list.len() <= 2, "{page}");
        seen.extend(list.iter().map(|g| g["Id"].as_str().unwrap().to_string()));
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    seen
}

#[tokio::test]
async fn every_list_pages_with_next_token() {
    use stationkeeper::firmware::signature;
    let srv = TestServer::start_with(|c| c.firmware.allow_unverified = true).await;
    // A well-formed signature by a key the server does not know (allowed here).
    let (pem, _) = signature::generate();
    let (sig, _) = signature::sign_digest(&signature::parse_private_key(&pem).unwrap(), &[0; 64]);
    let mut blobs = vec![];
    for i in 0..5u64 {
        srv.create_gateway(0x1000 + i).await;
        blobs.push(
            srv.upload(&[i as u8; 10]).await["Id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let (_, raw) = signature::generate();
        srv.register_key(&raw).await;
        let v = (&*format!("2.0.{i}"), "1.0.0", "rpi");
        srv.create_definition(TestServer::definition(&blobs[0], &sig, 7, v, None, true))
            .await;
        srv.create_group("ClassC").await;
        srv.create_fuota_task(&[i as u8; 10], json!({}))
            .await
            .unwrap();
    }
    for (path, key) in [
        ("/wireless-gateways", "WirelessGatewayList"),
        ("/blobs", "Blobs"),
        ("/signing-keys", "SigningKeys"),
        ("/wireless-gateway-task-definitions", "TaskDefinitions"),
        ("/multicast-groups", "MulticastGroupList"),
        ("/fuota-tasks", "FuotaTaskList"),
    ] {
        let mut seen = all_pages(&srv, path, key).await;
        assert_eq!(seen.len(), 5, "{path}: {seen:?}");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5, "{path}: no Id twice");
    }
    // Pages put together are the whole list, in its order.
    let whole: Vec<String> = srv.get("/blobs").await["Blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all_pages(&srv, "/blobs", "Blobs").await, whole);
    let mut uploaded = blobs.clone();
    uploaded.sort();
    let mut listed = whole.clone();
    listed.sort();
    assert_eq!(listed, uploaded);
}

#[tokio::test]
async fn service_endpoint_and_credential_files() {
    let srv = TestServer::start().await;
    let cups = srv.get("/service-endpoint?serviceType=CUPS").await;
    assert_eq!(cups["ServiceEndpoint"], srv.cups_uri());
    let ca = std::fs::read_to_string(srv.state_dir().join("pki/ca.crt")).unwrap();
    let der = |pem: &str| {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    };
    assert_eq!(der(cups["ServerTrust"].as_str().unwrap()), der(&ca));
    let lns = srv.get("/service-endpoint?serviceType=LNS").await;
    assert!(lns["ServiceEndpoint"]
        .as_str()
        .unwrap()
        .starts_with("wss://"));

    let id = srv.create_gateway(0x42).await;
    let issued = srv.issue(&id, "LNS", "ClientCertificate").await;
    assert_eq!(issued["Generation"], 1);
    let files = issued["Files"].as_object().unwrap();
    let names: Vec<_> = files.keys().cloned().collect();
    assert_eq!(names, ["tc.crt", "tc.key", "tc.trust", "tc.uri"]);
    assert!(files["tc.key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let (s, v) = raw(
        &srv,
        TOKEN,
        Method::POST,
        &format!("/wireless-gateways/{id}/credentials"),
        r#"{"Service":"FTP","Kind":"Token"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn gateway_tags_are_set_replaced_filtered_and_validated() {
    let srv = TestServer::start().await;
    let create = |eui: u64, tags: Value| {
        json!({"Name": format!("gw-{eui:x}"), "Tags": tags,
               "LoRaWAN": {"GatewayEui": format!("{eui:016x}"), "RfRegion": "EU868"}})
    };
    let north = srv
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(create(0x71, json!([{"Key": "site", "Value": "north"}]))),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let south = srv
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(create(
                0x72,
                json!([{"Key": "site", "Value": "south"}, {"Key": "canary", "Value": ""}]),
            )),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    srv.create_gateway(0x73).await;

    let ids = |v: Value| -> Vec<String> {
        v["WirelessGatewayList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["Id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(srv
            .get("/wireless-gateways?tagKey=site&tagValue=north")
            .await),
        vec![north.clone()]
    );
    assert_eq!(
        ids(srv.get("/wireless-gateways?tagKey=canary").await),
        vec![south.clone()]
    );
    assert_eq!(
        srv.get("/wireless-gateways?tagKey=site").await["WirelessGatewayList"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        srv.get(&format!("/wireless-gateways/{south}")).await["Tags"],
        json!([{"Key": "canary", "Value": ""}, {"Key": "site", "Value": "south"}])
    );

    // PATCH's Tags replaces the whole set.
    srv.call(
        Method::PATCH,
        &format!("/wireless-gateways/{north}"),
        Some(json!({"Tags": [{"Key": "site", "Value": "east"}]})),
    )
    .await
    .unwrap();
    assert!(ids(srv
        .get("/wireless-gateways?tagKey=site&tagValue=north")
        .await)
    .is_empty());
    assert_eq!(
        ids(srv
            .get("/wireless-gateways?tagKey=site&tagValue=east")
            .await),
        vec![north.clone()]
    );

    // Bad tags name the entry and the rule; nothing is created.
    let err = srv
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(create(0x74, json!([{"Key": "aws:x", "Value": "1"}]))),
        )
        .await
        .unwrap_err();
    assert!(
        err.contains("Tags[0].Key") && err.contains("reserved"),
        "{err}"
    );
    let err = srv
        .call(Method::GET, "/wireless-gateways?tagValue=x", None)
        .await
        .unwrap_err();
    assert!(err.contains("tagValue needs tagKey"), "{err}");
    assert_eq!(
        srv.get("/wireless-gateways").await["WirelessGatewayList"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A deleted gateway's tags go with it.
    srv.call(Method::DELETE, &format!("/wireless-gateways/{south}"), None)
        .await
        .unwrap();
    assert!(ids(srv.get("/wireless-gateways?tagKey=canary").await).is_empty());
}
