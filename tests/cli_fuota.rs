//! The FUOTA CLI as an operator runs it against a real server: a multicast group
//! from a group.json and one from flags, their sessions, a FUOTA task from AWS's
//! task.json with the image uploaded in the same command, association, the plan
//! in plain words, the refusals the operator must see, and a start once a
//! gateway carries the group.

mod common;

use std::process::{Command, Output};

use common::fuota::{in_secs, MC_KEY};
use common::server::{TestServer, TOKEN};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_stationkeeper");
const EUI: u64 = 0x0016_c001_ff10_b001;

fn exec(srv: &TestServer, args: &[&str]) -> Output {
    let api = format!("http://{}", srv.running.api_addr);
    Command::new(BIN)
        .args(args)
        .args(["--api", &api, "--token", TOKEN])
        .output()
        .unwrap()
}

/// Runs a command that must succeed; its stdout.
fn run(srv: &TestServer, args: &[&str]) -> String {
    let out = exec(srv, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; its stderr.
fn fail(srv: &TestServer, args: &[&str]) -> String {
    let out = exec(srv, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn json_out(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuota_task_from_the_command_line() {
    let srv = TestServer::start().await;
    let work = srv.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = |f: &str| work.join(f).display().to_string();
    let file = |f: &str, v: Value| {
        std::fs::write(w(f), v.to_string()).unwrap();
        format!("file://{}", w(f))
    };

    // A group from AWS's JSON plus our McAddr; the server generates the McKey
    // and shows it this once.
    let group_json = file(
        "group.json",
        json!({"Name": "meters", "ClientRequestToken": "x",
               "LoRaWAN": {"RfRegion": "EU868", "DlClass": "ClassC", "McAddr": "01020304"}}),
    );
    let out = exec(
        &srv,
        &[
            "multicast-groups",
            "create",
            "--cli-input-json",
            &group_json,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let created = json_out(&String::from_utf8(out.stdout).unwrap());
    let group = created["Id"].as_str().unwrap().to_string();
    assert_eq!(
        created["LoRaWAN"]["McKey"].as_str().unwrap().len(),
        32,
        "{created}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("never show it again"));

    // Its session from a session.json: TimeOut is what devices are told.
    let start = in_secs(120);
    let session_json = file(
        "session.json",
        json!({"LoRaWAN": {"DlDr": 5, "DlFreq": 869525000,
                           "SessionStartTime": start, "SessionTimeout": 3600}}),
    );
    let session = json_out(&run(
        &srv,
        &[
            "multicast-groups",
            "session",
            &group,
            "--cli-input-json",
            &session_json,
        ],
    ));
    assert_eq!(session["TimeOut"], 12, "{session}");
    assert_eq!(session["DlDr"], 5, "{session}");

    // A second group and session from flags only; a given McKey is not echoed.
    let other = json_out(&run(
        &srv,
        &[
            "multicast-groups",
            "create",
            "--name",
            "spare",
            "--region",
            "EU868",
            "--class",
            "C",
            "--mc-addr",
            "0a0b0c0d",
            "--mc-key",
            MC_KEY,
        ],
    ));
    let other = other["Id"].as_str().unwrap().to_string();
    assert!(!run(&srv, &["multicast-groups", "get", &other]).contains("McKey"));
    let session = json_out(&run(
        &srv,
        &[
            "multicast-groups",
            "session",
            &other,
            "--dr",
            "3",
            "--freq",
            "869525000",
            "--start",
            &in_secs(300),
            "--timeout",
            "600",
        ],
    ));
    assert_eq!(
        (&session["DlDr"], &session["TimeOut"]),
        (&json!(3), &json!(10))
    );
    let err = fail(
        &srv,
        &[
            "multicast-groups",
            "session",
            &other,
            "--dr",
            "9",
            "--freq",
            "869525000",
            "--start",
            &in_secs(60),
            "--timeout",
            "600",
        ],
    );
    assert!(err.contains("400") && err.contains("DlDr 9"), "{err}");
    let list = run(&srv, &["multicast-groups", "list"]);
    assert!(list.contains(&group) && list.contains(&other), "{list}");

    // AWS's task.json names an S3 image: with no such object it is refused (naming
    // both ways to upload it); with --image the file is uploaded in its place.
    std::fs::write(w("fw.bin"), vec![0x5a; 1000]).unwrap();
    let task_json = file(
        "task.json",
        json!({"Name": "fw-2.1", "LoRaWAN": {"RfRegion": "EU868"},
               "FirmwareUpdateImage": "s3://my-bucket/fw.bin",
               "FirmwareUpdateRole": "arn:aws:iam::123456789012:role/FuotaRole",
               "RedundancyPercent": 10, "Descriptor": "AQIDBA=="}),
    );
    let err = fail(
        &srv,
        &["fuota-tasks", "create", "--cli-input-json", &task_json],
    );
    assert!(
        err.contains("names no object") && err.contains("aws s3 cp"),
        "{err}"
    );
    let task = json_out(&run(
        &srv,
        &[
            "fuota-tasks",
            "create",
            "--cli-input-json",
            &task_json,
            "--image",
            &w("fw.bin"),
        ],
    ))["Id"]
        .as_str()
        .unwrap()
        .to_string();

    // No group yet: the plan says why there is none.
    let out = run(&srv, &["fuota-tasks", "get", &task]);
    assert!(
        out.contains("plan: none yet:") && out.contains("no multicast group"),
        "{out}"
    );
    assert!(out.contains("status: Pending"), "{out}");

    // Associated: 1000 bytes in 239-byte fragments (the largest DR5 carries),
    // 10 % redundancy.
    run(
        &srv,
        &[
            "fuota-tasks",
            "associate",
            &task,
            "--multicast-group",
            &group,
        ],
    );
    let out = run(&srv, &["fuota-tasks", "get", &task]);
    assert!(
        out.contains("plan: 5 uncoded + 1 coded fragments of 239 bytes (255-byte frames)\n"),
        "{out}"
    );
    assert!(out.contains("duty cycle 10% on 869525000 Hz"), "{out}");
    assert!(
        out.contains("      0 gateway(s), 0 slot(s) per round"),
        "{out}"
    );
    assert!(out.contains("class C session TimeOut needed:"), "{out}");
    let raw = json_out(&run(&srv, &["fuota-tasks", "get", &task, "--json"]));
    assert_eq!(raw["Plan"]["TotalFragments"], 6, "{raw}");
    assert_eq!(raw["MulticastGroupId"], group.as_str(), "{raw}");

    // Nothing carries the group yet: start is refused and says what to do.
    let err = fail(&srv, &["fuota-tasks", "start", &task]);
    assert!(err.contains("has no gateways"), "{err}");

    // One EU868 gateway, chosen by EUI; then back to every gateway of the region.
    run(
        &srv,
        &[
            "gateways",
            "create",
            "--eui",
            &format!("{EUI:016x}"),
            "--region",
            "EU868",
        ],
    );
    let sel = json_out(&run(
        &srv,
        &[
            "multicast-groups",
            "gateways",
            &group,
            &format!("{EUI:016x}"),
        ],
    ));
    assert_eq!(sel["Selection"], "Explicit", "{sel}");
    assert_eq!(
        sel["WirelessGateways"][0]["GatewayEui"],
        format!("{EUI:016x}"),
        "{sel}"
    );
    let sel = json_out(&run(&srv, &["multicast-groups", "gateways", &group]));
    assert_eq!(sel["Selection"], "AllInRegion", "{sel}");
    assert_eq!(
        sel["WirelessGateways"].as_array().unwrap().len(),
        1,
        "{sel}"
    );

    // Started at the session start: the plan now counts the gateway, and the
    // progress lists it.
    let out = run(
        &srv,
        &["fuota-tasks", "start", &task, "--start-time", &start],
    );
    assert!(out.contains("status: FuotaSession_Waiting"), "{out}");
    assert!(
        out.contains("      1 gateway(s), 1 slot(s) per round"),
        "{out}"
    );
    assert!(out.contains("— fits"), "{out}");
    assert!(
        out.contains("progress: 0 sent, 0 confirmed, 0 failed (6 fragments per gateway)"),
        "{out}"
    );
    assert!(out.contains(&format!("      {EUI:016x} (")), "{out}");
    let err = fail(&srv, &["fuota-tasks", "start", &task]);
    assert!(
        err.contains("409") && err.contains("already been started"),
        "{err}"
    );

    // The group carries a task: it cannot be deleted; the spare one can.
    let err = fail(&srv, &["multicast-groups", "delete", &group]);
    assert!(err.contains("409"), "{err}");
    run(&srv, &["multicast-groups", "delete", &other]);
    assert!(run(&srv, &["fuota-tasks", "list"]).contains(&task));
    run(&srv, &["fuota-tasks", "delete", &task]);
}
