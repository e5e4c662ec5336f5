//! Bad input around firmware: signatures, keys, blobs, uploads cut short, deletes
//! of things in use, and the server killed in the middle of a delivery.

mod common;

use std::time::Duration;

use common::firmware::{b64, vector};
use common::process::{launch, write_config};
use common::server::{TestServer, TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post_def(srv: &TestServer, body: Value) -> (StatusCode, String) {
    let (s, b) = srv
        .api()
        .send(
            Method::POST,
            "/wireless-gateway-task-definitions",
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    (s, v["Message"].as_str().unwrap_or_default().to_string())
}

const FROM: (&str, &str, &str) = ("2.0.6(rpi/std)", "1.0.0", "rpi");
const TO: (&str, &str, &str) = ("2.0.6(rpi/std)", "1.0.1", "rpi");

#[tokio::test]
async fn definitions_are_refused_with_the_reason() {
    let srv = TestServer::start().await;
    let blob = srv.upload(&vector("v1.bin")).await["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = srv.upload(b"another file").await["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let sig = vector("v1.bin.sig-0");
    let crc = 488_546_068;

    // No key registered yet: refused, the check cannot be made.
    let (s, m) = post_def(
        &srv,
        TestServer::definition(&blob, &sig, crc, FROM, Some(TO), true),
    )
    .await;
    assert_eq!(s, 400);
    assert!(m.contains("no signing key with SigKeyCrc 488546068"), "{m}");
    srv.register_key(&vector("sig-0.key")).await;

    let mut bad_b64 = TestServer::definition(&blob, &sig, crc, FROM, Some(TO), true);
    bad_b64["Update"]["LoRaWAN"]["UpdateSignature"] = json!("***");
    let mut bad_der = TestServer::definition(&blob, &sig, crc, FROM, Some(TO), true);
    bad_der["Update"]["LoRaWAN"]["UpdateSignature"] = json!(b64(b"not a signature"));
    let mut unknown = TestServer::definition(&blob, &sig, crc, FROM, Some(TO), true);
    unknown["Update"]["LoRaWAN"]["Colour"] = json!("red");
    let cases = [
        (bad_b64, "not base64"),
        (bad_der, "not a DER"),
        (
            TestServer::definition(&other, &sig, crc, FROM, Some(TO), true),
            "does not verify",
        ),
        (
            TestServer::definition(&blob, &sig, 12345, FROM, Some(TO), true),
            "no signing key with SigKeyCrc 12345",
        ),
        (
            TestServer::definition("s3://bucket/update.bin", &sig, crc, FROM, Some(TO), true),
            "stationkeeper blobs upload",
        ),
        (
            TestServer::definition(
                &format!("sha256:{}", "0".repeat(64)),
                &sig,
                crc,
                FROM,
                Some(TO),
                true,
            ),
            "names no uploaded blob",
        ),
        (unknown, "unknown field `Colour`"),
    ];
    for (body, want) in cases {
        let (s, m) = post_def(&srv, body).await;
        assert_eq!(s, 400, "{want}");
        assert!(m.contains(want), "{want}: {m}");
    }
    let (s, _) = post_def(
        &srv,
        TestServer::definition(&blob, &sig, crc, FROM, Some(TO), true),
    )
    .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn unverified_definitions_need_the_config_switch() {
    let srv = TestServer::start_with(|c| c.firmware.allow_unverified = true).await;
    let blob = srv.upload(&vector("v1.bin")).await["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = srv
        .create_definition(TestServer::definition(
            &blob,
            &vector("v1.bin.sig-0"),
            999,
            FROM,
            None,
            true,
        ))
        .await;
    let d = srv
        .get(&format!("/wireless-gateway-task-definitions/{id}"))
        .await;
    assert_eq!(d["SignatureVerified"], false);
    assert_eq!(d["Update"]["LoRaWAN"]["UpdateVersion"], Value::Null);
}

#[tokio::test]
async fn blobs_same_bytes_same_id_and_deletes() {
    let srv = TestServer::start().await;
    let a = srv.upload(b"hello").await;
    let b = srv.upload(b"hello").await;
    assert_eq!(a["Id"], b["Id"]);
    assert_eq!(
        a["Id"],
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let id = a["Id"].as_str().unwrap();
    let got = srv.get(&format!("/blobs/{id}")).await;
    assert_eq!(got["Size"], 5);
    assert_eq!(
        srv.get("/blobs").await["Blobs"].as_array().unwrap().len(),
        1
    );

    // In use by a definition: 409.
    let blob = srv.upload(&vector("v1.bin")).await["Id"]
        .as_str()
        .unwrap()
        .to_string();
    srv.register_key(&vector("sig-0.key")).await;
    let def = srv
        .create_definition(TestServer::definition(
            &blob,
            &vector("v1.bin.sig-0"),
            488_546_068,
            FROM,
            Some(TO),
            true,
        ))
        .await;
    let e = srv
        .call(Method::DELETE, &format!("/blobs/{blob}"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("409") && e.contains(&def), "{e}");

    srv.call(Method::DELETE, &format!("/blobs/{id}"), None)
        .await
        .unwrap();
    let e = srv
        .call(Method::GET, &format!("/blobs/{id}"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("404"), "{e}");
    let hex = id.strip_prefix("sha256:").unwrap();
    assert!(!srv.state_dir().join(format!("blobs/sha256-{hex}")).exists());
}

#[tokio::test]
async fn oversized_uploads_get_413() {
    let srv = TestServer::start_with(|c| c.limits.blob_bytes = 1000).await;
    let (s, b) = srv
        .api()
        .send(Method::POST, "/blobs", Some(vec![1u8; 1001]))
        .await
        .unwrap();
    assert_eq!(s, 413, "{}", String::from_utf8_lossy(&b));
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["Code"], "PayloadTooLarge");
    assert!(v["Message"].as_str().unwrap().contains("blob_bytes"));
}

#[tokio::test]
async fn a_truncated_upload_registers_nothing() {
    let srv = TestServer::start().await;
    let mut tcp = tokio::net::TcpStream::connect(srv.running.api_addr)
        .await
        .unwrap();
    let head = format!(
        "POST /blobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[7u8; 40_000]).await.unwrap();
    tcp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(tcp);
    // Give the server a moment to see the reset, then nothing is there.
    for _ in 0..100 {
        let leftovers = std::fs::read_dir(srv.state_dir().join("blobs"))
            .unwrap()
            .count();
        if leftovers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read_dir(srv.state_dir().join("blobs"))
            .unwrap()
            .count(),
        0
    );
    let list = srv.get("/blobs").await;
    assert_eq!(list["Blobs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_is_one_interrupted_attempt_after_restart() {
    use sha2::Digest;
    use stationkeeper::firmware::signature;

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let p = launch(&cfg);
    let c = p.api();

    // A gateway with a token, a signed 16 MiB update and a definition for it.
    let (id, token) = p.token_gateway("::7").await;
    let data = vec![0x5au8; 16 * 1024 * 1024];
    let (pem, raw) = signature::generate();
    let digest: [u8; 64] = sha2::Sha512::digest(&data).into();
    let (sig, crc) = signature::sign_digest(&signature::parse_private_key(&pem).unwrap(), &digest);
    let (s, b) = c.send(Method::POST, "/blobs", Some(data)).await.unwrap();
    assert_eq!(s, 201);
    let blob: Value = serde_json::from_slice(&b).unwrap();
    c.call(
        Method::POST,
        "/signing-keys",
        Some(json!({"Name": "k", "PublicKey": b64(&raw)})),
    )
    .await
    .unwrap();
    let from = ("2.0.6(rpi/std) 2022-01-21 10:00:00", "1.0.0", "rpi");
    c.call(
        Method::POST,
        "/wireless-gateway-task-definitions",
        Some(TestServer::definition(
            blob["Id"].as_str().unwrap(),
            &sig,
            crc,
            from,
            None,
            true,
        )),
    )
    .await
    .unwrap();

    // Start the download, read a little, then kill -9 the server.
    let mut tls = p.cups_tls().await;
    let cups_uri = p.cups_uri.clone();
    let body = format!(
        r#"{{"router":"::7","cupsUri":"{cups_uri}","tcUri":null,"cupsCredCrc":0,"tcCredCrc":0,"station":"{}","model":"rpi","package":"1.0.0","keys":[{crc}]}}"#,
        from.0
    );
    let req = common::station::request::build_request(
        p.host_port(),
        Some(token.as_bytes()),
        body.as_bytes(),
    );
    tls.write_all(&req).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(n > 0);
    let mut p = p;
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    drop(tls);

    // After a restart the attempt is recorded once, as interrupted, and the task
    // moved exactly one step.
    let p = launch(&cfg);
    let c = p.api();
    let t = c
        .call(Method::GET, &format!("/wireless-gateways/{id}/tasks"), None)
        .await
        .unwrap();
    assert_eq!(t["Status"], "IN_PROGRESS", "{t}");
    let attempts = t["Attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{t}");
    assert_eq!(attempts[0]["Outcome"], "Interrupted");
}
