//! scripts/make-update.sh: the update.bin it builds verifies on a station with the
//! matching sig-0.key, and when run installs the payload, writes version.txt,
//! removes itself and restarts station.

mod common;

use std::process::Command;

use common::station::answer::verify_update;

const BIN: &str = env!("CARGO_BIN_EXE_stationkeeper");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-update.sh");

#[test]
fn builds_a_signed_self_installing_update() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(d.join("keys"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::create_dir_all(d.join("payload/bin")).unwrap();
    std::fs::write(d.join("payload/bin/station"), b"new station build").unwrap();
    std::fs::write(d.join("payload/station.conf"), b"{}").unwrap();

    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(["--payload"])
        .arg(d.join("payload"))
        .args(["--version", "2.1.0", "--key"])
        .arg(d.join("keys/signing-key.pem"))
        .args(["--out"])
        .arg(d.join("update.bin"))
        .env("STATIONKEEPER", BIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let sig = stdout
        .lines()
        .find_map(|l| l.strip_prefix("UpdateSignature "))
        .unwrap()
        .trim();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .unwrap();
    let update = std::fs::read(d.join("update.bin")).unwrap();
    let key = std::fs::read(d.join("keys/sig-0.key")).unwrap();
    assert!(
        verify_update(&update, &der, &key),
        "station accepts the signature"
    );

    // Run it the way station does (bash), into a throw-away station home.
    let running_copy = d.join("tmp-update.bin");
    std::fs::copy(d.join("update.bin"), &running_copy).unwrap();
    let home = d.join("home");
    // Station itself runs from the home: replacing a running binary must work.
    std::fs::create_dir_all(home.join("bin")).unwrap();
    std::fs::copy("/bin/sleep", home.join("bin/station")).unwrap();
    let mut running = Command::new(home.join("bin/station"))
        .arg("30")
        .spawn()
        .unwrap();
    let restarted = d.join("restarted");
    let status = Command::new("/bin/bash")
        .arg(&running_copy)
        .env("STATION_HOME", &home)
        .env("UPDATE_FILE", &running_copy)
        .env("RESTART_CMD", format!("touch {}", restarted.display()))
        .status()
        .unwrap();
    running.kill().unwrap();
    running.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(home.join("bin/station")).unwrap(),
        b"new station build"
    );
    assert_eq!(
        std::fs::read_to_string(home.join("version.txt")).unwrap(),
        "2.1.0\n"
    );
    assert!(!running_copy.exists(), "update removes /tmp/update.bin");
    assert!(restarted.exists(), "station restarted");
}

#[test]
fn refuses_missing_arguments_with_a_message() {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(["--version", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--payload"));
}
