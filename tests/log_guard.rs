//! A hostile client must not be able to write the server's log (issue 9, items
//! 1, 6 and 8). These run the real binary and read its stderr, as an operator's
//! journal would: a flood of refused CUPS requests, a forged line through an LNS
//! msgtype, and an overflowing uplink queue.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::lns_station::{RadioMeta, Updf};
use common::process::{launch, Proc};
use common::server::{install_files, lns_gateway, LNS_URI};
use common::station::request::build_request;
use common::station::Station;
use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const EUI: u64 = 0xb827_ebff_fe61_51a8;
const T: Duration = Duration::from_secs(10);
const GOOD: &str = r#"{"router":"b827:ebff:fe61:51a8","cupsUri":null,"tcUri":null,"cupsCredCrc":0,"tcCredCrc":0,"station":"2.0.6(rpi/std) 2022-01-21 10:00:00","model":"rpi","package":"1.0.0","keys":[]}"#;

/// Starts the binary with an LNS public URI (for the LNS simulator) and `extra`
/// keys in `[lns]`.
fn start(dir: &std::path::Path, lns_extra: &str) -> Proc {
    start_with(dir, lns_extra, "")
}

fn start_with(dir: &std::path::Path, lns_extra: &str, extra: &str) -> Proc {
    let lns = format!("public_uri = \"{LNS_URI}\"\n{lns_extra}\n");
    launch(&common::process::write_config_lns(dir, &lns, extra))
}

fn stop(mut p: Proc) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

/// Every log line the server has written since the last call.
fn drain(p: &Proc) -> Vec<String> {
    p.logs.try_iter().collect()
}

fn bytes(lines: &[String]) -> usize {
    lines.iter().map(|l| l.len() + 1).sum()
}

/// Sends one request on a kept-alive connection and reads the whole answer;
/// returns its status.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, req: &[u8]) -> u16 {
    s.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < end + 4 + len {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed the connection mid-answer");
            buf.extend_from_slice(&chunk[..n]);
        }
        return head[9..12].parse().unwrap();
    }
}

/// A gateway with a CUPS token whose station has polled until settled.
async fn settled_station(p: &Proc, dir: &std::path::Path) -> Station {
    let api = p.api();
    let id = api
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(json!({"LoRaWAN": {"GatewayEui": format!("{EUI:016x}"), "RfRegion": "EU868"}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = api
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": "CUPS", "Kind": "Token"})),
        )
        .await
        .unwrap();
    let home = dir.join("station");
    std::fs::create_dir_all(&home).unwrap();
    let mut st = Station::new(home, EUI);
    install_files(&st, &issued);
    st.write_file("version.txt", "1.0.0\n");
    for _ in 0..3 {
        let o = st.poll(p.cups).await;
        assert!(o.is_success(), "{:?}", o.error);
    }
    st
}

/// Issue 9, item 1: a flood of bad router ids (8 KB each) and of polls without
/// credentials, on 4 kept-alive TLS connections, grows the log by a few lines,
/// not by megabytes, and a real gateway's polls still answer within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_refused_requests_barely_grows_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "");
    let mut st = settled_station(&p, dir.path()).await;
    drain(&p);

    let bad_router = GOOD.replace("b827:ebff:fe61:51a8", &"z".repeat(8000));
    let requests = [
        build_request(p.host_port(), None, bad_router.as_bytes()),
        build_request(p.host_port(), None, GOOD.as_bytes()),
        build_request(
            p.host_port(),
            Some(b"Authorization: Bearer not-the-token\r\n"),
            GOOD.replace("b827:ebff:fe61:51a8", "1:2:3:4").as_bytes(),
        ),
    ];
    let sent = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(3);
    let mut flooders = vec![];
    for n in 0..4 {
        let mut conn = p.cups_tls().await;
        let requests = requests.clone();
        let sent = sent.clone();
        flooders.push(tokio::spawn(async move {
            let mut i = n;
            while Instant::now() < until {
                let status = exchange(&mut conn, &requests[i % requests.len()]).await;
                assert!(status == 400 || status == 403, "{status}");
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let t = Instant::now();
        let o = st.poll(p.cups).await;
        assert!(o.is_success(), "{:?}", o.error);
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in flooders {
        f.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = drain(&p);
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "{sent} refused requests in 3 s: {} log bytes in {} lines; slowest real poll {slowest:?}",
        bytes(&lines),
        lines.len()
    );
    assert!(sent >= 300, "only {sent} flood requests went out");
    // [limits] refusal_log_per_source_per_min = 10 by default: a dozen lines.
    assert!(
        bytes(&lines) < 16 * 1024,
        "{sent} refused requests wrote {} log bytes in {} lines; first: {:?}",
        bytes(&lines),
        lines.len(),
        lines.first()
    );
    assert!(
        lines.iter().all(|l| l.len() < 1024),
        "a log line over 1 KiB: {:?}",
        lines.iter().find(|l| l.len() >= 1024)
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a real poll took {slowest:?}"
    );
    stop(p);
}

/// Issue 9, item 6: a gateway's msgtype with a newline in it cannot forge a log
/// line; the unknown type is logged escaped.
#[tokio::test]
async fn an_lns_msgtype_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "");
    let (_, st) = lns_gateway(&p.api(), p.lns, EUI, json!({"RfRegion": "EU868"})).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    s.send_text(r#"{"msgtype":"x\nFORGED INFO stationkeeper: gateway 0000000000000001 admitted"}"#)
        .await
        .unwrap();
    s.send_text(r#"{"msgtype":"updf","MHdr":64,"FOpts":"zz\nFORGED2 bad hex"}"#)
        .await
        .unwrap();
    let mut lines = vec![];
    let deadline = Instant::now() + T;
    while !lines
        .iter()
        .any(|l: &String| l.contains("unknown message type ignored"))
        || !lines.iter().any(|l| l.contains("message dropped"))
    {
        assert!(
            Instant::now() < deadline,
            "no log lines for them: {lines:#?}"
        );
        lines.extend(p.logs.recv_timeout(T));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    lines.extend(drain(&p));
    assert!(
        !lines.iter().any(|l| l.starts_with("FORGED")),
        "a forged line: {lines:#?}"
    );
    let unknown = lines
        .iter()
        .find(|l| l.contains("unknown message type ignored"))
        .unwrap();
    assert!(unknown.contains(r"\nFORGED"), "{unknown}");
    stop(p);
}

/// Issue 9, item 8: with nothing consuming the uplink queue (the device face
/// off), a full queue drops uplinks silently (counted in the gateway's
/// statistics), not with a log line per frame.
#[tokio::test]
async fn a_full_uplink_queue_drops_without_a_line_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = start_with(
        dir.path(),
        "uplink_queue = 2\nmax_messages_per_sec = 1000",
        "[lorawan]\nenabled = false\n",
    );
    let (id, st) = lns_gateway(&p.api(), p.lns, EUI, json!({"RfRegion": "EU868"})).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    drain(&p);
    for fcnt in 0..40 {
        s.send_updf(
            &Updf {
                mhdr: 0x40,
                dev_addr: 0x2601_1234,
                fctrl: 0,
                fcnt,
                fopts: vec![],
                fport: Some(1),
                frm_payload: vec![1, 2, 3],
                mic: 1,
            },
            &RadioMeta::default(),
        )
        .await
        .unwrap();
    }
    let api = p.api();
    let deadline = Instant::now() + T;
    loop {
        let stats = api
            .call(
                Method::GET,
                &format!("/wireless-gateways/{id}/gateway-statistics"),
                None,
            )
            .await
            .unwrap();
        if stats["DroppedMessages"] == 38 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = drain(&p);
    assert!(
        !lines.iter().any(|l| l.contains("uplink")),
        "log lines about uplinks: {lines:#?}"
    );
    stop(p);
}

/// With the device face on, frames nobody can verify (an unknown DevAddr here) are
/// counted by the device face, again without a log line per frame.
#[tokio::test]
async fn unverifiable_uplinks_are_counted_without_a_line_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "max_messages_per_sec = 1000");
    let (_, st) = lns_gateway(&p.api(), p.lns, EUI, json!({"RfRegion": "EU868"})).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    drain(&p);
    for fcnt in 0..40 {
        let frame = Updf {
            mhdr: 0x40,
            dev_addr: 0x0100_0000 + u32::from(fcnt),
            fctrl: 0,
            fcnt,
            fopts: vec![],
            fport: Some(1),
            frm_payload: vec![1, 2, 3],
            mic: 1,
        };
        s.send_updf(&frame, &RadioMeta::default()).await.unwrap();
    }
    // Long past the dedup window: every frame has been judged.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines = drain(&p);
    assert!(
        lines.is_empty(),
        "log lines about unverifiable uplinks: {lines:#?}"
    );
    stop(p);
}
