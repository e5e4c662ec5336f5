//! The CLI as an operator runs it against a real server: make a signing key,
//! sign an update, register the key, create a definition from an AWS input.json
//! with the update uploaded in the same command, and watch the task complete.

mod common;

use std::process::Command;

use common::server::{TestServer, TOKEN};
use common::station::answer::verify_update;

const BIN: &str = env!("CARGO_BIN_EXE_stationkeeper");
const EUI: u64 = 0x0016_c001_ff10_a235;

fn run(srv: &TestServer, args: &[&str]) -> String {
    let api = format!("http://{}", srv.running.api_addr);
    let local = matches!(args[0], "sign") || args[..2] == ["keys", "generate"];
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if !local {
        cmd.args(["--api", &api, "--token", TOKEN]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{name} in {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_walkthrough_from_the_command_line() {
    let srv = TestServer::start().await;
    let work = srv.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = |f: &str| work.join(f).display().to_string();

    // A key pair and a signed update.
    let out = run(&srv, &["keys", "generate", "--out", &w("keys")]);
    let crc: u32 = field(&out, "key CRC").parse().unwrap();
    let update = b"#!/bin/sh\necho 1.0.1 > version.txt\n";
    std::fs::write(w("update.bin"), update).unwrap();
    let out = run(
        &srv,
        &[
            "sign",
            "--key",
            &w("keys/signing-key.pem"),
            "--file",
            &w("update.bin"),
        ],
    );
    let sig = field(&out, "UpdateSignature").to_string();
    assert_eq!(field(&out, "SigKeyCrc").parse::<u32>().unwrap(), crc);
    let gateway_key = std::fs::read(w("keys/sig-0.key")).unwrap();
    assert_eq!(gateway_key.len(), 64);
    assert_eq!(crc32fast::hash(&gateway_key), crc);
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    assert!(
        verify_update(update, &der, &gateway_key),
        "station verifies what `sign` made"
    );

    let out = run(
        &srv,
        &[
            "keys",
            "register",
            "--name",
            "fleet",
            "--file",
            &w("keys/sig-0.key"),
        ],
    );
    assert!(out.contains(&crc.to_string()), "{out}");

    // A registered gateway whose station holds the key.
    let out = run(
        &srv,
        &[
            "gateways",
            "create",
            "--eui",
            &format!("{EUI:016x}"),
            "--region",
            "EU868",
            "--kind",
            "Token",
            "--out",
            &w("gw"),
        ],
    );
    let id = serde_json::from_str::<serde_json::Value>(&out[..out.find("}\n").unwrap() + 1])
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let home = work.join("station");
    std::fs::create_dir_all(&home).unwrap();
    let mut st = common::station::Station::new(home, EUI);
    for f in ["cups.uri", "cups.trust", "cups.key"] {
        st.write_file(f, std::fs::read(work.join("gw").join(f)).unwrap());
    }
    st.write_file("sig-0.key", &gateway_key);
    st.apply_update_version("1.0.0");
    assert!(st.poll(srv.cups()).await.is_success());

    // AWS's input.json as it is, with an S3 source: the CLI uploads the file.
    let input = serde_json::json!({
        "AutoCreateTasks": true,
        "Name": "FirmwareUpdate",
        "Update": {
            "UpdateDataSource": "s3://my-bucket/update.bin",
            "UpdateDataRole": "arn:aws:iam::123456789012:role/IoTWirelessFirmwareUpdateRole",
            "LoRaWAN": {
                "SigKeyCrc": crc,
                "UpdateSignature": sig,
                "CurrentVersion": {"PackageVersion": "1.0.0", "Model": st.model, "Station": st.station_version},
                "UpdateVersion": {"PackageVersion": "1.0.1", "Model": st.model, "Station": st.station_version}
            }
        }
    });
    std::fs::write(w("input.json"), input.to_string()).unwrap();
    let out = run(
        &srv,
        &[
            "task-definitions",
            "create",
            "--cli-input-json",
            &format!("file://{}", w("input.json")),
            "--update-file",
            &w("update.bin"),
        ],
    );
    assert!(out.contains("\"Id\""), "{out}");

    let o = st.poll(srv.cups()).await;
    assert!(o.update_verified(), "{:?}", o.error);
    st.apply_update_version("1.0.1");
    assert!(st.poll(srv.cups()).await.is_success());
    let out = run(&srv, &["tasks", "get", &id]);
    assert!(out.contains("\"COMPLETED\""), "{out}");
}

#[test]
fn sign_refuses_a_bad_key_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pem"), "not a key").unwrap();
    std::fs::write(dir.path().join("u.bin"), "x").unwrap();
    let out = Command::new(BIN)
        .args(["sign", "--key"])
        .arg(dir.path().join("k.pem"))
        .arg("--file")
        .arg(dir.path().join("u.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("private key"));
}

/// `access-keys create` prints the pair once; the key signs requests; list never
/// shows the secret; disable and delete take effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_from_the_command_line() {
    use common::aws::AwsClient;
    use hyper::{Method, StatusCode};
    let srv = TestServer::start().await;
    let out = run(&srv, &["access-keys", "create", "--name", "boto3"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let aws = AwsClient {
        host: srv.running.api_addr.to_string(),
        key_id: v["AccessKeyId"].as_str().unwrap().into(),
        secret: v["SecretAccessKey"].as_str().unwrap().into(),
        time: None,
    };
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let list = run(&srv, &["access-keys", "list"]);
    assert!(
        list.contains(&aws.key_id) && !list.contains(&aws.secret),
        "{list}"
    );
    run(&srv, &["access-keys", "disable", "boto3"]);
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.error_type(), "AccessDeniedException");
    run(&srv, &["access-keys", "enable", &aws.key_id]);
    assert_eq!(
        aws.iot(Method::GET, "/wireless-gateways", None)
            .await
            .status,
        StatusCode::OK
    );
    run(&srv, &["access-keys", "delete", "boto3"]);
    let a = aws.iot(Method::GET, "/wireless-gateways", None).await;
    assert_eq!(a.error_type(), "UnrecognizedClientException");
}
