//! Open registration (`[gateways] unknown = "register"`) under a flood of
//! unknown EUIs, through the real server: per-source and global rate limits,
//! and the cap on gateways registered but never confirmed.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::server::TestServer;
use common::station::net::client_config;
use common::station::Station;
use stationkeeper::config::UnknownGateways;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn host_port(srv: &TestServer) -> String {
    srv.cups_uri().split_once("://").unwrap().1.to_string()
}

/// A fresh station for `eui` holding only the CUPS URI and trust.
async fn fresh_station(srv: &TestServer, eui: u64) -> Station {
    let st = srv.fresh_station(&format!("st-{eui:x}"), eui).await;
    st.write_file("version.txt", "1.0.0\n");
    st
}

/// One first poll for `eui` from source address `from` (any 127.0.0.0/8
/// address works on loopback); returns the status and the reason text.
fn registrations_refused(srv: &TestServer) -> u64 {
    srv.running
        .app
        .refusals
        .count(stationkeeper::logguard::Reason::RegistrationRefused)
}

async fn first_poll_from(srv: &TestServer, from: IpAddr, eui: u64) -> (u16, String) {
    let st = fresh_station(srv, eui).await;
    let request = st.request_bytes(&host_port(srv), None);
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp = sock.connect(srv.cups()).await.unwrap();
    let trust = std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap();
    let host = host_port(srv).rsplit_once(':').unwrap().0.to_string();
    let mut tls = tokio_rustls::TlsConnector::from(client_config(&trust, None, true).unwrap())
        .connect(rustls::pki_types::ServerName::try_from(host).unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&request).await.unwrap();
    // The server closes after one answer only when asked; read the head and
    // the declared body.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed without an answer");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            let body_start = head.len() + 4;
            if buf.len() >= body_start + len {
                let status = head[9..12].parse().unwrap();
                let _ = body;
                return (
                    status,
                    String::from_utf8_lossy(&buf[body_start..body_start + len]).into_owned(),
                );
            }
        }
    }
}

async fn gateway_count(srv: &TestServer) -> usize {
    srv.get("/wireless-gateways").await["WirelessGatewayList"]
        .as_array()
        .unwrap()
        .len()
}

const LOCAL: [u8; 4] = [127, 0, 0, 1];
const OTHER: [u8; 4] = [127, 0, 0, 2];

#[tokio::test]
async fn one_source_registers_at_most_its_rate() {
    let srv = TestServer::start_with(|c| {
        c.gateways.unknown = UnknownGateways::Register;
        c.gateways.register_per_source_per_min = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6u64 {
        statuses.push(first_poll_from(&srv, LOCAL.into(), 0x1000 + i).await);
    }
    let ok = statuses.iter().filter(|s| s.0 == 200).count();
    assert_eq!(ok, 3, "{statuses:?}");
    let (status, reason) = &statuses[5];
    assert_eq!(*status, 403);
    // The 403 text is the one every unauthenticated refusal gets (nothing to tell a
    // prober); the refusal is counted under its reason and logged with the key.
    assert!(reason.starts_with("forbidden"), "{reason}");
    assert_eq!(registrations_refused(&srv), 3);
    assert_eq!(gateway_count(&srv).await, 3);
    // Another source still gets in.
    assert_eq!(first_poll_from(&srv, OTHER.into(), 0x2000).await.0, 200);
    assert_eq!(gateway_count(&srv).await, 4);
}

#[tokio::test]
async fn all_sources_together_register_at_most_the_global_rate() {
    let srv = TestServer::start_with(|c| {
        c.gateways.unknown = UnknownGateways::Register;
        c.gateways.register_per_min = 4;
    })
    .await;
    let mut ok = 0;
    for i in 0..8u8 {
        let from = IpAddr::from([127, 0, 1, i]);
        let (status, reason) = first_poll_from(&srv, from, 0x3000 + u64::from(i)).await;
        match status {
            200 => ok += 1,
            403 => assert!(reason.starts_with("forbidden"), "{reason}"),
            other => panic!("status {other}: {reason}"),
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(registrations_refused(&srv), 4);
    assert_eq!(gateway_count(&srv).await, 4);
}

#[tokio::test]
async fn never_confirmed_gateways_are_capped_and_confirming_frees_a_place() {
    let srv = TestServer::start_with(|c| {
        c.gateways.unknown = UnknownGateways::Register;
        c.gateways.max_unconfirmed = 2;
    })
    .await;
    // Two stations that register and never come back with their token.
    for eui in [0x4001, 0x4002] {
        assert_eq!(first_poll_from(&srv, LOCAL.into(), eui).await.0, 200);
    }
    let (status, reason) = first_poll_from(&srv, LOCAL.into(), 0x4003).await;
    assert_eq!(status, 403);
    assert!(reason.starts_with("forbidden"), "{reason}");
    assert_eq!(registrations_refused(&srv), 1);
    assert_eq!(gateway_count(&srv).await, 2);
    // A gateway the operator deletes frees its place; a real station then
    // registers and confirms (second poll with its token), which frees it again.
    let first = srv
        .get(&format!(
            "/wireless-gateways/{:016x}?identifierType=GatewayEui",
            0x4001
        ))
        .await;
    srv.call(
        hyper::Method::DELETE,
        &format!("/wireless-gateways/{}", first["Id"].as_str().unwrap()),
        None,
    )
    .await
    .unwrap();
    let mut st = fresh_station(&srv, 0x4004).await;
    assert!(st.poll(srv.cups()).await.is_success());
    assert!(st.poll(srv.cups()).await.is_success(), "confirms its token");
    assert_eq!(first_poll_from(&srv, LOCAL.into(), 0x4005).await.0, 200);
    assert_eq!(first_poll_from(&srv, LOCAL.into(), 0x4006).await.0, 403);
}
