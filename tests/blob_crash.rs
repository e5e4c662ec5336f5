//! The blob store across crashes of the real binary: kill -9 between an upload's
//! rename and its row leaves a `sha256-*` file with no row, which the next start
//! removes; a row whose file went missing is reported at start, in the blob's
//! GET, and refused (4xx, not 500) when a definition names it.

mod common;

use std::time::{Duration, Instant};

use common::firmware::b64;
use common::process::{launch, launch_env, write_config, Proc};
use hyper::Method;
use serde_json::json;
use sha2::Digest;
use stationkeeper::firmware::signature;

const LOST: &[u8] = b"this file will be lost";

fn blob_file(p: &Proc, id: &str) -> std::path::PathBuf {
    p.state.join("blobs").join(id.replace("sha256:", "sha256-"))
}

fn logged(p: &Proc, needle: &str) -> bool {
    p.all_logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains(needle))
}

fn kill9(mut p: Proc) {
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
}

async fn upload(p: &Proc, bytes: &[u8]) -> String {
    let (status, body) = p
        .api()
        .send(Method::POST, "/blobs", Some(bytes.to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 201);
    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_rename_and_row_leaves_no_orphan_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");

    // A blob whose file then goes missing while the server is down.
    let p = launch(&config);
    let lost = upload(&p, LOST).await;
    kill9(p);
    std::fs::remove_file(dir.path().join("state/blobs").join(lost.replace(':', "-"))).unwrap();

    // Start with the test hook: the upload stops between rename and row.
    let p = launch_env(&config, &[("SK_TEST_PAUSE_AFTER_RENAME_SECS", "60")]);
    assert!(
        logged(&p, "blob file is missing") && logged(&p, &lost),
        "start-up reports the row without a file"
    );
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let api = p.api();
    let body = bytes.clone();
    let pending = tokio::spawn(async move { api.send(Method::POST, "/blobs", Some(body)).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logged(&p, "test hook: pausing") {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the hook"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let orphan = std::fs::read_dir(p.state.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("sha256-") && *n != lost.replace(':', "-"))
        .expect("the renamed file is in place");
    let orphan_id = orphan.replace("sha256-", "sha256:");
    let api = p.api();
    assert!(
        api.call(Method::GET, &format!("/blobs/{orphan_id}"), None)
            .await
            .unwrap_err()
            .starts_with("404"),
        "no row yet"
    );
    kill9(p);
    assert!(pending.await.unwrap().is_err(), "the upload never answered");
    assert!(dir.path().join("state/blobs").join(&orphan).exists());

    // The next start removes the orphan and says so.
    let p = launch(&config);
    assert!(logged(&p, "removed a blob file that has no row"));
    assert!(!blob_file(&p, &orphan_id).exists(), "orphan removed");
    let api = p.api();
    assert!(api
        .call(Method::GET, &format!("/blobs/{orphan_id}"), None)
        .await
        .unwrap_err()
        .starts_with("404"));
    // The client sends it again and gets the same Id, file and row.
    assert_eq!(upload(&p, &bytes).await, orphan_id);
    assert!(blob_file(&p, &orphan_id).exists());

    // The row whose file is missing: its GET says so, and a definition naming it
    // is refused with 409 and the repair, not a 500.
    let b = api
        .call(Method::GET, &format!("/blobs/{lost}"), None)
        .await
        .unwrap();
    assert_eq!(b["FilePresent"], false, "{b}");
    assert!(b["Problem"]
        .as_str()
        .unwrap()
        .contains("upload the file again"));
    // A real key and signature, so that only the file stands in the way.
    let (pem, raw) = signature::generate();
    let digest: [u8; 64] = sha2::Sha512::digest(LOST).into();
    let (sig, crc) = signature::sign_digest(&signature::parse_private_key(&pem).unwrap(), &digest);
    api.call(
        Method::POST,
        "/signing-keys",
        Some(json!({"Name": "k", "PublicKey": b64(&raw)})),
    )
    .await
    .unwrap();
    let e = api
        .call(
            Method::POST,
            "/wireless-gateway-task-definitions",
            Some(
                json!({"AutoCreateTasks": true, "Update": {"UpdateDataSource": lost,
                "UpdateDataRole": "arn:aws:iam::1:role/x", "LoRaWAN": {"SigKeyCrc": crc,
                "UpdateSignature": b64(&sig), "CurrentVersion": {"Station": "2.0.6",
                "PackageVersion": "1.0.0", "Model": "rpi"}}}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("409"), "{e}");
    assert!(e.contains("missing"), "{e}");
    kill9(p);
}
