//! An update download whose reader stops after the headers: the server gives up
//! after `[limits] send_stall_secs`, records the attempt as Interrupted with the
//! bytes it handed over, and frees the connection's permit.

mod common;

use std::time::{Duration, Instant};

use common::server::TestServer;
use common::station::net::client_config;
use sha2::Digest;
use stationkeeper::firmware::signature;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EUI: u64 = 0xb827_ebff_fe61_51a8;
const STALL_SECS: u64 = 2;

#[tokio::test]
async fn a_reader_that_stops_is_cut_off_and_its_attempt_interrupted() {
    // One connection per listener: the stalled download holds the only CUPS permit.
    let srv = TestServer::start_with(|c| {
        c.limits.send_stall_secs = STALL_SECS;
        c.limits.max_connections = 1;
    })
    .await;
    let id = srv.create_gateway(EUI).await;
    let mut st = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    st.apply_update_version("v0");
    assert!(st.poll(srv.cups()).await.is_success());
    assert!(st.poll(srv.cups()).await.is_success());

    // A 16 MiB update, far more than the socket buffers on both sides hold.
    let len = 16 * 1024 * 1024;
    let (pem, raw) = signature::generate();
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let digest: [u8; 64] = sha2::Sha512::digest(&data).into();
    let (sig, crc) = signature::sign_digest(&signature::parse_private_key(&pem).unwrap(), &digest);
    let blob = srv.upload(&data).await;
    srv.register_key(&raw).await;
    st.write_file("sig-0.key", raw);
    let v = |p: &str| (st.station_version.clone(), p.to_string(), st.model.clone());
    let (from, to) = (v("v0"), v("v9"));
    srv.create_definition(TestServer::definition(
        blob["Id"].as_str().unwrap(),
        &sig,
        crc,
        (&from.0, &from.1, &from.2),
        Some((&to.0, &to.1, &to.2)),
        true,
    ))
    .await;

    // The poll, from a socket with a small receive buffer; read the headers, then
    // never read again.
    let host_port = srv.cups_uri().split_once("://").unwrap().1.to_string();
    let key = st.read_file("cups.key").unwrap();
    let request = st.request_bytes(&host_port, Some(&key));
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(srv.cups()).await.unwrap();
    let trust = std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap();
    let host = host_port.rsplit_once(':').unwrap().0.to_string();
    let mut tls = tokio_rustls::TlsConnector::from(client_config(&trust, None, true).unwrap())
        .connect(rustls::pki_types::ServerName::try_from(host).unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&request).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tls.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let stalled_at = Instant::now();

    // The attempt stays InFlight while the server waits, then turns Interrupted
    // within the stall limit (plus scheduling slack).
    let attempt = loop {
        let t = srv.task(&id).await;
        let a = t["Attempts"][0].clone();
        if a["Outcome"] != "InFlight" {
            break a;
        }
        assert!(
            stalled_at.elapsed() < Duration::from_secs(STALL_SECS + 5),
            "still in flight after {:?}: {t}",
            stalled_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stalled_at.elapsed() >= Duration::from_secs(STALL_SECS - 1));
    assert_eq!(attempt["Outcome"], "Interrupted", "{attempt}");
    let sent = attempt["BytesSent"].as_u64().unwrap();
    assert!(sent > 0 && sent < len as u64, "{attempt}");

    // The only CUPS permit is free again: a real poll gets through at once,
    // while the stalled client still holds its socket open.
    let started = Instant::now();
    let o = tokio::time::timeout(Duration::from_secs(5), st.poll(srv.cups()))
        .await
        .expect("a poll gets the freed permit");
    assert!(o.update_arrived(), "{:?}", o.error);
    assert!(started.elapsed() < Duration::from_secs(STALL_SECS + 3));
    drop(tls);
}
