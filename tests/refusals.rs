//! Why a gateway is refused, through the real server: CUPS polls refused for a
//! known gateway are kept per gateway (bounded by `[console]
//! refusals_per_gateway`), unknown router ids are listed with a count, both in the
//! API, the CLI and the metrics.

mod common;

use common::server::{TestServer, TOKEN};
use hyper::Method;
use serde_json::Value;

const A: u64 = 0x0016_c001_ff10_0a01;
const B: u64 = 0x0016_c001_ff10_0a02;
const STRANGER: u64 = 0x0016_c001_ff10_0bad;

fn cli(srv: &TestServer, args: &[&str]) -> Value {
    let api = format!("http://{}", srv.running.api_addr);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stationkeeper"))
        .args(args)
        .args(["--api", &api, "--token", TOKEN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

// Multi-threaded: the CLI blocks this thread while the server answers it.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_per_gateway_and_unknown_routers() {
    let srv = TestServer::start_with(|c| c.console.refusals_per_gateway = 2).await;
    let a = srv.create_gateway(A).await;
    let b = srv.create_gateway(B).await;
    let b_files = srv.issue(&b, "CUPS", "Token").await;

    // A station claiming A with B's token: refused as not authenticated, often.
    // (A fresh station each time: a refused station moves on to its backup set.)
    for _ in 0..3 {
        let mut impostor = srv.station(A, &b_files);
        assert!(!impostor.poll(srv.cups()).await.is_success());
    }
    // An id the store does not know, with a token: refused as unknown, twice.
    for _ in 0..2 {
        let mut stranger = srv.station(STRANGER, &b_files);
        assert!(!stranger.poll(srv.cups()).await.is_success());
    }

    let r = srv.get(&format!("/wireless-gateways/{a}/refusals")).await;
    assert_eq!(r["WirelessGatewayId"], a.as_str());
    let list = r["Refusals"].as_array().unwrap();
    assert_eq!(
        list.len(),
        2,
        "[console] refusals_per_gateway bounds it: {r}"
    );
    assert_eq!(list[0]["Reason"], "not_authenticated");
    assert!(list[0]["Peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(
        list[0]["Detail"]
            .as_str()
            .unwrap()
            .contains("not authenticated"),
        "{r}"
    );
    assert!(
        list[0]["At"].as_str().unwrap() >= list[1]["At"].as_str().unwrap(),
        "newest first"
    );
    // By EUI too, and B (never refused) has none.
    let by_eui = srv
        .get(&format!("/wireless-gateways/{A:016x}/refusals"))
        .await;
    assert_eq!(by_eui["Refusals"], r["Refusals"]);
    assert_eq!(
        srv.get(&format!("/wireless-gateways/{b}/refusals")).await["Refusals"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let missing = srv
        .call(Method::GET, "/wireless-gateways/nope/refusals", None)
        .await
        .unwrap_err();
    assert!(missing.starts_with("404"), "{missing}");

    let u = srv.get("/unknown-routers").await;
    let list = u["UnknownRouters"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{u}");
    assert_eq!(list[0]["GatewayEui"], format!("{STRANGER:016x}"));
    assert_eq!(list[0]["Reason"], "unknown_gateway");
    assert!(list[0]["Count"].as_u64().unwrap() >= 2);

    // The CLI prints the same.
    assert_eq!(cli(&srv, &["refusals", &a])["Refusals"], r["Refusals"]);
    assert_eq!(
        cli(&srv, &["unknown-routers"])["UnknownRouters"][0]["GatewayEui"],
        list[0]["GatewayEui"]
    );

    // And the metrics count them.
    let (_, body) = srv.api().send(Method::GET, "/metrics", None).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("stationkeeper_cups_unknown_routers 1\n"),
        "{text}"
    );
    let refused_unknown = text
        .lines()
        .find(|l| {
            l.starts_with("stationkeeper_cups_polls_total{")
                && l.contains("reason=\"unknown_gateway\"")
        })
        .unwrap();
    assert!(!refused_unknown.ends_with(" 0"), "{refused_unknown}");
}
