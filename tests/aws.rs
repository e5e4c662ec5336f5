//! The AWS drop-in as AWS clients use it: access keys, SigV4-signed requests (signed
//! by `aws-sigv4`, the Rust SDK's signer), AWS's error codes and headers, the
//! S3-compatible object API, and the walkthrough "Update gateway firmware using
//! the CUPS service" with `s3://` as its UpdateDataSource.

mod common;

use std::time::{Duration, SystemTime};

use common::aws::AwsClient;
use common::firmware::vector;
use common::server::TestServer;
use hyper::{Method, StatusCode};
use serde_json::json;

const EUI: u64 = 0xb827_ebff_fe61_51a8;

#[tokio::test]
async fn access_keys_sign_requests_and_the_secret_is_shown_once() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "ops-script").await;
    assert!(aws.key_id.starts_with("SKAK") && aws.key_id.len() == 20);
    assert_eq!(aws.secret.len(), 40);

    // A signed call reaches the API, with a request id.
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(a.headers.contains_key("x-amzn-RequestId"));
    assert!(a.json()["WirelessGatewayList"].is_array());
    // A signed create with a body (its SHA-256 is part of the signature).
    let a = aws
        .iot(
            Method::POST,
            "/wireless-gateways",
            Some(json!({"Name": "gw", "LoRaWAN": {"GatewayEui": format!("{EUI:016x}"), "RfRegion": "EU868"}})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());

    // List and get never show the secret; the key's last use is noted.
    for path in [
        "/access-keys".to_string(),
        format!("/access-keys/{}", aws.key_id),
        "/access-keys/ops-script".to_string(),
    ] {
        let v = srv.get(&path).await;
        assert!(!v.to_string().contains(&aws.secret), "{path}: {v}");
    }
    let v = srv.get(&format!("/access-keys/{}", aws.key_id)).await;
    assert_eq!(v["Name"], "ops-script");
    assert_eq!(v["Status"], "Active");
    assert!(v["LastUsedAt"].is_string());
    // A signed caller may manage keys too.
    let a = aws.iot(Method::GET, "/access-keys", None).await;
    assert_eq!(a.status, StatusCode::OK);
    // The secret never reaches the log either: the server's log is this process's
    // stderr, so check what the key lookup path prints instead (no Debug of it).
    let dbg = format!("{:?}", srv.get("/access-keys").await);
    assert!(!dbg.contains(&aws.secret));
}

#[tokio::test]
async fn wrong_signatures_get_aws_error_codes() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "k1").await;

    let wrong_secret = AwsClient {
        secret: "x".repeat(40),
        ..aws.clone()
    };
    let a = wrong_secret
        .iot(Method::GET, "/wireless-gateways", None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_type(), "InvalidSignatureException");
    assert_eq!(a.json()["Code"], "InvalidSignatureException");
    assert!(a.headers.contains_key("x-amzn-RequestId"));

    let unknown = AwsClient {
        key_id: "SKAKAAAAAAAAAAAAAAAA".into(),
        ..aws.clone()
    };
    let a = unknown.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_type(), "UnrecognizedClientException");

    let stale = AwsClient {
        time: Some(SystemTime::now() - Duration::from_secs(600)),
        ..aws.clone()
    };
    let a = stale.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_type(), "InvalidSignatureException");
    assert!(a.json()["Message"].as_str().unwrap().contains("expired"));

    // A body other than the one signed.
    let mut req = hyper::Request::builder()
        .method(Method::GET)
        .uri(format!("http://{}/wireless-gateways", aws.host))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let a = aws.raw(req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.error_type(), "IncompleteSignatureException");

    // A disabled key is refused as such; enabled again, it works.
    srv.call(
        Method::PATCH,
        &format!("/access-keys/{}", aws.key_id),
        Some(json!({"Status": "Inactive"})),
    )
    .await
    .unwrap();
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_type(), "AccessDeniedException");
    srv.call(
        Method::PATCH,
        &format!("/access-keys/{}", aws.key_id),
        Some(json!({"Status": "Active"})),
    )
    .await
    .unwrap();
    assert_eq!(
        aws.iot(Method::GET, "/wireless-gateways", None)
            .await
            .status,
        StatusCode::OK
    );

    // Deleted: unknown.
    srv.call(
        Method::DELETE,
        &format!("/access-keys/{}", aws.key_id),
        None,
    )
    .await
    .unwrap();
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.error_type(), "UnrecognizedClientException");

    // An unknown path is not a missing resource.
    let aws = AwsClient::create(&srv, "k2").await;
    let a = aws.iot(Method::GET, "/no-such-operation", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error_type(), "UnknownOperationException");
    // Bearer tokens still work and their errors carry the headers too.
    let (s, _) = srv
        .api()
        .send(Method::GET, "/wireless-gateways/nope", None)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    req = hyper::Request::builder()
        .uri(format!("http://{}/wireless-gateways/nope", aws.host))
        .header("authorization", "Bearer test-operator-token")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let a = aws.raw(req).await;
    assert!(a.headers.contains_key("x-amzn-RequestId"));
    assert!(!a.error_type().is_empty());
}

#[tokio::test]
async fn failed_signatures_are_rate_limited_per_source() {
    let srv = TestServer::start_with(|c| c.api.auth_failures_per_source_per_min = 3).await;
    let aws = AwsClient::create(&srv, "k").await;
    let wrong = AwsClient {
        secret: "y".repeat(40),
        ..aws.clone()
    };
    for _ in 0..3 {
        let a = wrong.iot(Method::GET, "/wireless-gateways", None).await;
        assert_eq!(a.error_type(), "InvalidSignatureException");
    }
    let a = wrong.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.error_type(), "ThrottlingException");
    // The right key from the same source waits too: a guesser cannot tell.
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.error_type(), "ThrottlingException");
    // Bearer tokens are not affected.
    srv.get("/wireless-gateways").await;
}

#[tokio::test]
async fn s3_objects_put_get_head_list_delete() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "uploader").await;
    let a = aws.s3(Method::PUT, "/fw-bucket", vec![]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let data = vector("v1.bin");
    let a = aws
        .s3(Method::PUT, "/fw-bucket/gw/update.bin", data.clone())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(a.headers.contains_key("etag"));
    let a = aws
        .s3(Method::HEAD, "/fw-bucket/gw/update.bin", vec![])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-length"], data.len().to_string().as_str());
    let a = aws
        .s3(Method::GET, "/fw-bucket/gw/update.bin", vec![])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.as_ref(), data.as_slice());
    // The object is a blob: the API lists it under its SHA-256.
    let blob = a.headers["x-amz-meta-blob-id"]
        .to_str()
        .unwrap()
        .to_string();
    srv.get(&format!("/blobs/{blob}")).await;

    aws.s3(Method::PUT, "/fw-bucket/other.bin", b"x".to_vec())
        .await;
    let a = aws
        .s3(Method::GET, "/fw-bucket?list-type=2&max-keys=1", vec![])
        .await;
    let text = a.text();
    assert!(text.contains("<Key>gw/update.bin</Key>"), "{text}");
    assert!(text.contains("<IsTruncated>true</IsTruncated>"), "{text}");
    let a = aws
        .s3(
            Method::GET,
            "/fw-bucket?continuation-token=gw%2Fupdate.bin&list-type=2",
            vec![],
        )
        .await;
    assert!(a.text().contains("<Key>other.bin</Key>"), "{}", a.text());

    let a = aws.s3(Method::DELETE, "/fw-bucket/other.bin", vec![]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = aws.s3(Method::GET, "/fw-bucket/other.bin", vec![]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.text().contains("<Code>NoSuchKey</Code>"));

    // S3 requests never reach the API's routes, and the API's never S3.
    let a = aws
        .s3(Method::PUT, "/wireless-gateways/x", b"y".to_vec())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert!(a.json()["WirelessGatewayList"].is_array());

    // A payload other than the signed hash is refused and nothing is named.
    let a = aws
        .send(
            "s3",
            Method::PUT,
            "/fw-bucket/bad.bin",
            &[],
            b"tampered".to_vec(),
            Some(&"0".repeat(64)),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.text().contains("XAmzContentSHA256Mismatch"),
        "{}",
        a.text()
    );
    let a = aws.s3(Method::HEAD, "/fw-bucket/bad.bin", vec![]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // A method a resource does not take gets S3's error document, not a bare 405;
    // POST (DeleteObjects and the like) is an operation we lack.
    let a = aws
        .s3(Method::PATCH, "/fw-bucket/gw/update.bin", vec![])
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        a.text().contains("<Code>MethodNotAllowed</Code>"),
        "{}",
        a.text()
    );
    let a = aws
        .s3(Method::POST, "/fw-bucket?delete", b"<Delete/>".to_vec())
        .await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        a.text().contains("<Code>NotImplemented</Code>"),
        "{}",
        a.text()
    );
}

#[tokio::test]
async fn s3_aws_chunked_upload_with_a_crc32_trailer() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "uploader").await;
    let data = vector("v1.bin");
    let crc = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(&data).to_be_bytes())
    };
    let mut body = Vec::new();
    for chunk in data.chunks(100) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    let len = data.len().to_string();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
        ("x-amz-decoded-content-length", len.as_str()),
    ];
    let a = aws
        .send(
            "s3",
            Method::PUT,
            "/b1x/update.bin",
            &headers,
            body.clone(),
            Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = aws.s3(Method::GET, "/b1x/update.bin", vec![]).await;
    assert_eq!(a.body.as_ref(), data.as_slice());
    // A wrong checksum stores nothing.
    let n = body.len();
    body[n - 8] ^= 1;
    let a = aws
        .send(
            "s3",
            Method::PUT,
            "/b1x/broken.bin",
            &headers,
            body,
            Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    let a = aws.s3(Method::HEAD, "/b1x/broken.bin", vec![]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// AWS's walkthrough "Update gateway firmware using the CUPS service", every call
/// signed with an access key, the update file put to S3 and the definition
/// naming it by `s3://` as the seed's input.json does.
#[tokio::test]
async fn cups_walkthrough_with_s3_and_sigv4() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "walkthrough").await;
    let a = aws
        .iot(
            Method::POST,
            "/wireless-gateways",
            Some(json!({"Name": "gw", "LoRaWAN": {"GatewayEui": format!("{EUI:016x}"), "RfRegion": "EU868"}})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let id = a.json()["Id"].as_str().unwrap().to_string();
    let mut st = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    st.write_file("sig-0.key", vector("sig-0.key"));
    st.apply_update_version("v0");
    assert!(st.poll(srv.cups()).await.is_success());
    assert!(st.poll(srv.cups()).await.is_success());

    // Step 1: the gateway's firmware.
    let a = aws
        .iot(
            Method::GET,
            &format!("/wireless-gateways/{id}/firmware-information"),
            None,
        )
        .await;
    let fw = a.json();
    assert_eq!(fw["LoRaWAN"]["CurrentVersion"]["PackageVersion"], "v0");
    // Step 2: the update file to S3.
    aws.s3(Method::PUT, "/iotwirelessfwupdate", vec![]).await;
    let a = aws
        .s3(
            Method::PUT,
            "/iotwirelessfwupdate/update.bin",
            vector("v1.bin"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // Step 3: the definition, from input.json with the s3 URI.
    srv.register_key(&vector("sig-0.key")).await;
    let cur = &fw["LoRaWAN"]["CurrentVersion"];
    let mut to = cur.clone();
    to["PackageVersion"] = json!("v1");
    let sig = common::firmware::b64(&vector("v1.bin.sig-0"));
    let input = json!({
        "AutoCreateTasks": true,
        "Name": "FirmwareUpdate",
        "Update": {
            "UpdateDataSource": "s3://iotwirelessfwupdate/update.bin",
            "UpdateDataRole": "arn:aws:iam::123456789012:role/IoTWirelessFwUpdateRole",
            "LoRaWAN": {"SigKeyCrc": 488546068u32, "UpdateSignature": sig,
                        "CurrentVersion": cur, "UpdateVersion": to}
        }
    });
    let a = aws
        .iot(
            Method::POST,
            "/wireless-gateway-task-definitions",
            Some(input),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let def = a.json()["Id"].as_str().unwrap().to_string();
    // Step 4: the gateway polls, takes the update, and reports v1.
    let o = st.poll(srv.cups()).await;
    assert!(o.update_verified(), "station verifies the signature");
    assert_eq!(o.update.as_ref().unwrap().data, vector("v1.bin"));
    let t = srv.settled_task(&id).await;
    assert_eq!(t["Status"], "IN_PROGRESS");
    st.apply_update_version("v1");
    st.poll(srv.cups()).await;
    let a = aws
        .iot(Method::GET, &format!("/wireless-gateways/{id}/tasks"), None)
        .await;
    assert_eq!(a.json()["Status"], "COMPLETED");
    assert_eq!(a.json()["WirelessGatewayTaskDefinitionId"], def.as_str());
}

/// AWS's paths and shapes: the statistics path, Arn in answers, MaxResults=0,
/// a bad NextToken, taskDefinitionType, GetServiceEndpoint without a type, and
/// the Tags calls on synthesized ARNs.
#[tokio::test]
async fn aws_paths_and_shapes() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "shapes").await;
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let a = aws
            .iot(
                Method::POST,
                "/wireless-gateways",
                Some(json!({"LoRaWAN": {"GatewayEui": format!("{:016x}", EUI + i), "RfRegion": "EU868"}})),
            )
            .await;
        let v = a.json();
        let id = v["Id"].as_str().unwrap().to_string();
        assert_eq!(
            v["Arn"],
            format!("arn:aws:iotwireless:local:000000000000:WirelessGateway/{id}")
        );
        ids.push((id, v["Arn"].as_str().unwrap().to_string()));
    }
    let (id, arn) = ids[0].clone();
    let a = aws
        .iot(
            Method::GET,
            &format!("/wireless-gateways/{id}/statistics"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["ConnectionStatus"], "Disconnected");
    let a = aws
        .iot(Method::GET, &format!("/wireless-gateways/{id}"), None)
        .await;
    assert_eq!(a.json()["Arn"], arn.as_str());

    // MaxResults=0 is "no preference"; pages follow NextToken; a made-up one is refused.
    let a = aws
        .iot(Method::GET, "/wireless-gateways?maxResults=0", None)
        .await;
    assert_eq!(a.json()["WirelessGatewayList"].as_array().unwrap().len(), 3);
    let a = aws
        .iot(Method::GET, "/wireless-gateways?maxResults=2", None)
        .await;
    let token = a.json()["NextToken"].as_str().unwrap().to_string();
    assert!(a.json()["WirelessGatewayList"][0]["Arn"].is_string());
    let a = aws
        .iot(
            Method::GET,
            &format!("/wireless-gateways?maxResults=2&nextToken={token}"),
            None,
        )
        .await;
    assert_eq!(a.json()["WirelessGatewayList"].as_array().unwrap().len(), 1);
    assert!(a.json()["NextToken"].is_null());
    let a = aws
        .iot(Method::GET, "/wireless-gateways?nextToken=bogus", None)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.error_type(), "ValidationException");

    let a = aws
        .iot(
            Method::GET,
            "/wireless-gateway-task-definitions?taskDefinitionType=UPDATE",
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    // CreateMulticastGroup in AWS's body: McAddr generated, shown by Get.
    let a = aws
        .iot(
            Method::POST,
            "/multicast-groups",
            Some(json!({"LoRaWAN": {"RfRegion": "EU868", "DlClass": "ClassC",
                "ParticipatingGateways": {"GatewayList": [id.clone()], "TransmissionInterval": 1000}}})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert!(a.json()["Arn"]
        .as_str()
        .unwrap()
        .contains(":MulticastGroup/"));
    let g = aws
        .iot(
            Method::GET,
            &format!("/multicast-groups/{}", a.json()["Id"].as_str().unwrap()),
            None,
        )
        .await
        .json();
    let mc_addr = g["LoRaWAN"]["McAddr"].as_str().unwrap();
    assert!(
        mc_addr.len() == 8 && u32::from_str_radix(mc_addr, 16).is_ok(),
        "{g}"
    );
    assert_eq!(
        g["LoRaWAN"]["ParticipatingGateways"]["GatewayList"],
        json!([id.clone()])
    );
    assert!(g["CreatedAt"].is_f64(), "epoch seconds: {g}");

    // AWS's GatewayEui pattern allows whitespace-separated bytes.
    let a = aws
        .iot(
            Method::POST,
            "/wireless-gateways",
            Some(
                json!({"LoRaWAN": {"GatewayEui": "AA 27 EB FF FE 61 51 A8", "RfRegion": "EU868"}}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let a = aws
        .iot(
            Method::GET,
            "/wireless-gateways/aa%2027%20eb%20ff%20fe%2061%2051%20a8?identifierType=GatewayEui",
            None,
        )
        .await;
    assert_eq!(
        a.json()["LoRaWAN"]["GatewayEui"],
        "aa27ebfffe6151a8",
        "{}",
        a.text()
    );
    let a = aws.iot(Method::GET, "/service-endpoint", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["ServiceType"], "CUPS");

    // Tags: TagResource, ListTagsForResource, UntagResource.
    let q = |arn: &str| {
        let enc: String = arn
            .bytes()
            .map(|b| match b {
                b':' => "%3A".to_string(),
                b'/' => "%2F".to_string(),
                b => (b as char).to_string(),
            })
            .collect();
        format!("/tags?resourceArn={enc}")
    };
    let a = aws
        .iot(
            Method::POST,
            &q(&arn),
            Some(
                json!({"Tags": [{"Key": "site", "Value": "north"}, {"Key": "ring", "Value": "1"}]}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = aws.iot(Method::GET, &q(&arn), None).await;
    assert_eq!(
        a.json()["Tags"],
        json!([{"Key": "ring", "Value": "1"}, {"Key": "site", "Value": "north"}])
    );
    let a = aws
        .iot(Method::DELETE, &format!("{}&tagKeys=ring", q(&arn)), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = aws.iot(Method::GET, &q(&arn), None).await;
    assert_eq!(a.json()["Tags"], json!([{"Key": "site", "Value": "north"}]));
    // The gateway list filter sees TagResource's tags.
    let a = aws
        .iot(
            Method::GET,
            "/wireless-gateways?tagKey=site&tagValue=north",
            None,
        )
        .await;
    assert_eq!(a.json()["WirelessGatewayList"].as_array().unwrap().len(), 1);
    let missing = arn.replace(&id, "00000000-0000-4000-8000-000000000000");
    let a = aws.iot(Method::GET, &q(&missing), None).await;
    assert_eq!(a.error_type(), "ResourceNotFoundException");
    let a = aws.iot(Method::GET, &q("arn:aws:s3:::bucket"), None).await;
    assert_eq!(a.error_type(), "ValidationException");
}

/// ClientRequestToken: the same token and body answer the first create again
/// (one resource), another body is a ConflictException, and no token creates anew.
#[tokio::test]
async fn client_request_tokens_make_creates_idempotent() {
    let srv = TestServer::start().await;
    let aws = AwsClient::create(&srv, "idem").await;
    let body = json!({"Name": "grp", "ClientRequestToken": "tok-1",
        "LoRaWAN": {"RfRegion": "EU868", "DlClass": "ClassC", "McAddr": "01020304"}});
    let a = aws
        .iot(Method::POST, "/multicast-groups", Some(body.clone()))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let first = a.json();
    let a = aws
        .iot(Method::POST, "/multicast-groups", Some(body.clone()))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json(), first, "the first answer, McKey included");
    let groups = srv.get("/multicast-groups").await;
    assert_eq!(groups["MulticastGroupList"].as_array().unwrap().len(), 1);

    let mut other = body.clone();
    other["Name"] = json!("another");
    let a = aws
        .iot(Method::POST, "/multicast-groups", Some(other))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.error_type(), "ConflictException");

    // The same token on another operation is another record.
    let gw = json!({"ClientRequestToken": "tok-1", "LoRaWAN": {"GatewayEui": "0102030405060708", "RfRegion": "EU868"}});
    let a = aws
        .iot(Method::POST, "/wireless-gateways", Some(gw.clone()))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let id = a.json()["Id"].clone();
    let a = aws.iot(Method::POST, "/wireless-gateways", Some(gw)).await;
    assert_eq!(
        a.json()["Id"],
        id,
        "not a duplicate-EUI conflict: the first answer"
    );

    // A failed create gives its token back: fixed, the same token works.
    let bad = json!({"ClientRequestToken": "tok-2", "LoRaWAN": {"RfRegion": "EU868", "DlClass": "ClassZ"}});
    let a = aws.iot(Method::POST, "/multicast-groups", Some(bad)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let good = json!({"ClientRequestToken": "tok-2", "LoRaWAN": {"RfRegion": "EU868", "DlClass": "ClassC", "McAddr": "01020305"}});
    let a = aws.iot(Method::POST, "/multicast-groups", Some(good)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());

    // Kept across a restart.
    let srv = srv.restart().await;
    let aws = AwsClient {
        host: srv.running.api_addr.to_string(),
        ..aws
    };
    let a = aws.iot(Method::POST, "/multicast-groups", Some(body)).await;
    assert_eq!(a.json(), first);
}
