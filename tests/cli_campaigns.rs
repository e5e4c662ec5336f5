//! `stationkeeper campaigns` with the built binary against a real server: preview
//! and create from a JSON file, get, gateways by status, pause, resume, watch to
//! the end (bars on a terminal, the outcome line always), and a refused control's message.

mod common;

use std::process::{Command, Output};

use common::campaign::{definition, fleet, poll_all, run_update};
use common::server::{TestServer, TOKEN};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_stationkeeper");

fn cli(srv: &TestServer, args: &[&str]) -> Output {
    let api = format!("http://{}", srv.running.api_addr);
    Command::new(BIN)
        .args(args)
        .args(["--api", &api, "--token", TOKEN])
        .output()
        .unwrap()
}

fn ok(srv: &TestServer, args: &[&str]) -> Value {
    let out = cli(srv, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_campaign_from_the_command_line() {
    let srv = TestServer::start_with(|c| c.campaigns.tick_ms = 20).await;
    let mut gws = fleet(&srv, "cli", 0x9000, 3, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let file = srv.dir.path().join("campaign.json");
    std::fs::write(
        &file,
        json!({"Name": "cli", "Definitions": [def], "Target": {"Tags": [{"Key": "fleet", "Value": "cli"}]},
               "Waves": [{"Count": 1}, {"Percent": 100}],
               "Gate": {"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}})
        .to_string(),
    )
    .unwrap();
    let input = format!("file://{}", file.display());
    let p = ok(&srv, &["campaigns", "preview", "--cli-input-json", &input]);
    assert_eq!(p["Eligible"], 3);
    assert_eq!(p["WaveSizes"], json!([1, 2]));
    let c = ok(&srv, &["campaigns", "create", "--cli-input-json", &input]);
    let id = c["Id"].as_str().unwrap().to_string();

    let paused = ok(&srv, &["campaigns", "pause", &id]);
    assert_eq!(paused["State"], "Paused");
    let out = cli(&srv, &["campaigns", "pause", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("is Paused; this control needs it Running or Scheduled"));
    assert_eq!(ok(&srv, &["campaigns", "resume", &id])["State"], "Running");

    // The gateways poll and update while `watch` follows to the end.
    let watch = {
        let api = format!("http://{}", srv.running.api_addr);
        let id = id.clone();
        std::thread::spawn(move || {
            Command::new(BIN)
                .args([
                    "campaigns",
                    "watch",
                    &id,
                    "--every",
                    "1",
                    "--api",
                    &api,
                    "--token",
                    TOKEN,
                ])
                .output()
                .unwrap()
        })
    };
    for _ in 0..100 {
        for m in gws.iter_mut() {
            let got = poll_all(&srv, std::slice::from_mut(m)).await;
            if !got.is_empty() {
                run_update(&srv, m, "1.1.0").await;
            }
        }
        let c = ok(&srv, &["campaigns", "get", &id]);
        if c["State"] == "Completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = watch.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("Completed: every wave passed its gate: 3 succeeded"),
        "{said}"
    );
    let done = ok(
        &srv,
        &["campaigns", "gateways", &id, "--status", "SUCCEEDED"],
    );
    assert_eq!(done["Gateways"].as_array().unwrap().len(), 3);
    let list = ok(&srv, &["campaigns", "list"]);
    assert_eq!(list["Campaigns"][0]["Id"], id.as_str());
    let out = cli(&srv, &["fleet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("3 gateways: 3 polled CUPS since"),
        "{text}"
    );
    assert!(text.contains("open tasks: none"), "{text}");
}
