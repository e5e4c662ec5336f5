//! `GET /metrics` scraped through the real server: the token guards it, the output
//! passes `promtool check metrics` (Debian's `prometheus` package; skipped with a
//! note when it is missing, a failure under `CI=true`), and the counters move when
//! a gateway polls CUPS, is refused, and sends an LNS uplink.

mod common;

use std::time::Duration;

use common::lns_station::{RadioMeta, Updf};
use common::server::{sample, TestServer, LNS_URI};
use hyper::{Method, StatusCode};
use serde_json::json;

const EUI: u64 = 0x0016_c001_ff10_a001;

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// Runs `promtool check metrics` on `text`; `false` when promtool is missing.
fn promtool_check(text: &str) -> bool {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool is needed under CI=true (apt-get install prometheus): {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED promtool check: promtool not runnable ({e}); apt-get install prometheus"
            );
            return false;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics complained:\n{said}"
    );
    true
}

#[tokio::test]
async fn metrics_need_the_token_and_pass_promtool() {
    let srv = TestServer::start().await;
    let anon = stationkeeper::cli::ApiClient::new(
        &format!("http://{}", srv.running.api_addr),
        "wrong-token-xyz".into(),
        None,
    )
    .unwrap();
    let (status, _) = anon.send(Method::GET, "/metrics", None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Some traffic first, so histograms and labelled series have samples.
    srv.settled_station(EUI, "Token").await;
    srv.get("/wireless-gateways").await;
    let text = srv.scrape().await;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("stationkeeper_"), "{line}");
    }
    assert!(text.contains("# TYPE stationkeeper_request_duration_seconds histogram"));
    assert!(sample(&text, "stationkeeper_process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(sample(&text, "stationkeeper_process_open_fds", &[]).unwrap() > 0.0);
    promtool_check(&text);
}

#[tokio::test]
async fn counters_move_with_polls_refusals_tasks_and_uplinks() {
    let srv = TestServer::start().await;
    let before = srv.scrape().await;
    assert_eq!(
        sample(
            &before,
            "stationkeeper_cups_polls_total",
            &[("outcome", "credentials")]
        ),
        Some(0.0),
        "series exist from the start"
    );

    // A settled station: its first poll gets credentials/URIs, then nothing.
    let (id, mut st) = srv.settled_station(EUI, "Token").await;
    let o = st.poll(srv.cups()).await;
    assert!(o.is_success());
    // A router with no credentials is refused.
    let mut stranger = srv.fresh_station("stranger", 0x0016_c001_ff10_beef).await;
    assert!(!stranger.poll(srv.cups()).await.is_success());

    // A task created and deleted through the API.
    use common::firmware::vector;
    let blob = srv.upload(&vector("v1.bin")).await;
    let crc = srv.register_key(&vector("sig-0.key")).await;
    let def = srv
        .create_definition(TestServer::definition(
            blob["Id"].as_str().unwrap(),
            &vector("v1.bin.sig-0"),
            crc,
            ("2.0.6", "1.0.0", "rpi"),
            None,
            false,
        ))
        .await;
    srv.call(
        Method::POST,
        &format!("/wireless-gateways/{id}/tasks"),
        Some(json!({"WirelessGatewayTaskDefinitionId": def})),
    )
    .await
    .unwrap();
    srv.call(
        Method::DELETE,
        &format!("/wireless-gateways/{id}/tasks"),
        None,
    )
    .await
    .unwrap();

    // An LNS uplink from an address no device has.
    let (_, lst) = srv.lns_gateway(EUI + 1, json!({"RfRegion": "EU868"})).await;
    let (_, mut s) = lst.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(Duration::from_secs(10)).await.unwrap();
    let up = Updf {
        mhdr: 0x40,
        dev_addr: 0x2601_1234,
        fctrl: 0,
        fcnt: 7,
        fopts: vec![],
        fport: Some(1),
        frm_payload: b"hi".to_vec(),
        mic: 0xdead_beef,
    };
    s.send_updf(&up, &RadioMeta::default()).await.unwrap();
    // The device face handles it after its dedup window.
    let mut after = srv.scrape().await;
    for _ in 0..50 {
        if value(
            &after,
            "stationkeeper_device_uplinks_total",
            &[("outcome", "unknown_device")],
        ) >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = srv.scrape().await;
    }

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert!(
        moved(
            "stationkeeper_cups_polls_total",
            &[("outcome", "credentials")]
        ) >= 1.0,
        "{after}"
    );
    assert!(moved("stationkeeper_cups_polls_total", &[("outcome", "nothing")]) >= 1.0);
    assert_eq!(
        moved(
            "stationkeeper_cups_polls_total",
            &[("outcome", "refused"), ("reason", "no_credentials")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "stationkeeper_refusals_total",
            &[("reason", "no_credentials")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "stationkeeper_task_transitions_total",
            &[("from", "(new)"), ("to", "PENDING")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "stationkeeper_task_transitions_total",
            &[("from", "PENDING"), ("to", "(deleted)")]
        ),
        1.0
    );
    assert_eq!(moved("stationkeeper_lns_uplinks_total", &[]), 1.0);
    assert_eq!(
        moved(
            "stationkeeper_device_uplinks_total",
            &[("outcome", "unknown_device")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "stationkeeper_lns_connected_gateways", &[]),
        1.0
    );
    assert_eq!(value(&after, "stationkeeper_gateways", &[]), 2.0);
    assert_eq!(
        value(&after, "stationkeeper_open_tasks", &[("status", "PENDING")]),
        0.0
    );
    assert!(
        moved(
            "stationkeeper_request_duration_seconds_count",
            &[
                ("face", "cups"),
                ("route", "/update-info"),
                ("status", "2xx")
            ]
        ) >= 3.0
    );
    assert!(
        moved(
            "stationkeeper_request_duration_seconds_count",
            &[
                ("face", "api"),
                ("route", "/wireless-gateways/{id}/tasks"),
                ("status", "2xx")
            ]
        ) >= 2.0
    );
}

#[tokio::test]
async fn the_grafana_dashboard_uses_only_names_the_server_exports() {
    let srv = TestServer::start().await;
    // The second scrape holds the first one's duration.
    srv.scrape().await;
    let text = srv.scrape().await;
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana-dashboard.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut used = 0;
    for panel in v["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("stationkeeper_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = name.strip_suffix("_bucket").unwrap_or(&name);
                assert!(
                    families.contains(&family),
                    "dashboard panel {:?} uses {name}, which /metrics does not export",
                    panel["title"]
                );
                used += 1;
            }
        }
    }
    assert!(used > 10);
}
