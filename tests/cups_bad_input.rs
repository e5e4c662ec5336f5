//! Bad input on the CUPS port: every case gets a clear 4xx or a closed connection,
//! and the server keeps serving real gateways afterwards.

mod common;

use std::time::Duration;

use common::server::TestServer;
use common::station::net::{client_config, raw_exchange, ReadOptions, Transport};
use common::station::request::build_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EUI: u64 = 0xb827_ebff_fe61_51a8;

fn host_port(srv: &TestServer) -> String {
    srv.cups_uri().split_once("://").unwrap().1.to_string()
}

async fn tls(srv: &TestServer) -> Transport {
    let trust = std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap();
    let host = host_port(srv).rsplit_once(':').unwrap().0.to_string();
    Transport::Tls {
        config: client_config(&trust, None, true).unwrap(),
        server_name: host,
    }
}

async fn post(srv: &TestServer, body: &[u8], token: Option<&str>) -> (u16, String) {
    let lines = token.map(|t| format!("Authorization: Bearer {t}\r\n").into_bytes());
    let req = build_request(&host_port(srv), lines.as_deref(), body);
    let r = raw_exchange(srv.cups(), &tls(srv).await, &req, &ReadOptions::default())
        .await
        .unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// A gateway with a token, for requests that get past parsing.
async fn token_gateway(srv: &TestServer) -> String {
    let id = srv.create_gateway(EUI).await;
    let issued = srv.issue(&id, "CUPS", "Token").await;
    let line = issued["Files"]["cups.key"].as_str().unwrap();
    line.trim_end()
        .strip_prefix("Authorization: Bearer ")
        .unwrap()
        .to_string()
}

const GOOD: &str = r#"{"router":"b827:ebff:fe61:51a8","cupsUri":null,"tcUri":null,"cupsCredCrc":0,"tcCredCrc":2077607535,"station":"2.0.6(rpi/std) 2022-01-21 10:00:00","model":"rpi","package":"1.0.0","keys":[]}"#;

async fn still_serves(srv: &TestServer, token: &str) {
    let (status, _) = post(srv, GOOD.as_bytes(), Some(token)).await;
    assert_eq!(status, 200, "server still answers a real gateway");
}

#[tokio::test]
async fn malformed_bodies_get_400_naming_the_problem() {
    let srv = TestServer::start().await;
    let token = token_gateway(&srv).await;
    let cases: Vec<(String, &str)> = vec![
        ("not json at all".into(), "not the JSON"),
        ("[1,2,3]".into(), "not the JSON"),
        (
            r#"{"router":"b827:ebff:fe61:51a8"}"#.into(),
            "missing field",
        ),
        (
            GOOD.replace(r#""model":"rpi""#, r#""model":5"#),
            "invalid type",
        ),
        (
            GOOD.replace(r#""cupsCredCrc":0"#, r#""cupsCredCrc":-3"#),
            "invalid value",
        ),
        (
            GOOD.replace("b827:ebff:fe61:51a8", "b827-ebff:fe61"),
            "router",
        ),
        (
            GOOD.replace("b827:ebff:fe61:51a8", "12345678901234567"),
            "router",
        ),
    ];
    for (body, want) in cases {
        let (status, text) = post(&srv, body.as_bytes(), Some(&token)).await;
        assert_eq!(status, 400, "{body}");
        assert!(text.contains(want), "{body}: {text}");
    }
    still_serves(&srv, &token).await;
}

/// A prober must not learn whether a router id is registered (issue 9): the
/// 403 text is the same for an unknown EUI, no credentials and a wrong token.
#[tokio::test]
async fn missing_or_wrong_auth_and_unknown_euis_get_the_same_403() {
    let srv = TestServer::start().await;
    let token = token_gateway(&srv).await;
    let stranger = GOOD.replace("b827:ebff:fe61:51a8", "1:2:3:4");
    let mut texts = vec![];
    for (body, token) in [
        (GOOD, None),
        (GOOD, Some("not-the-token")),
        (stranger.as_str(), Some("not-the-token")),
        (stranger.as_str(), None),
    ] {
        let (status, text) = post(&srv, body.as_bytes(), token).await;
        assert_eq!(status, 403, "{text}");
        texts.push(text);
    }
    assert!(texts.iter().all(|t| t == &texts[0]), "{texts:#?}");
    assert!(!texts[0].contains("1:2:3:4") && !texts[0].contains("0001000200030004"));
    assert_eq!(
        srv.running
            .app
            .refusals
            .count(stationkeeper::logguard::Reason::UnknownGateway),
        1
    );
    still_serves(&srv, &token).await;
}

/// A huge or hostile router id is quoted in the 400 only escaped and clipped.
#[tokio::test]
async fn a_bad_router_id_is_echoed_clipped() {
    let srv = TestServer::start().await;
    let token = token_gateway(&srv).await;
    let long = format!("zz\\n{}", "a".repeat(8000));
    let (status, text) = post(
        &srv,
        GOOD.replace("b827:ebff:fe61:51a8", &long).as_bytes(),
        None,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.len() < 600, "{} bytes: {text}", text.len());
    assert!(text.contains("(8003 bytes)"), "{text}");
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    still_serves(&srv, &token).await;
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let srv = TestServer::start_with(|c| c.limits.cups_body_bytes = 1024).await;
    let token = token_gateway(&srv).await;
    let big = GOOD.replace(
        r#""keys":[]"#,
        &format!(r#""keys":[{}]"#, vec!["1"; 1000].join(",")),
    );
    assert!(big.len() > 1024);
    let (status, text) = post(&srv, big.as_bytes(), Some(&token)).await;
    assert_eq!(status, 413);
    assert!(text.contains("over 1024 bytes"), "{text}");
    still_serves(&srv, &token).await;
}

/// Opens a TLS connection and returns it without sending a request.
async fn open_tls(srv: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    let Transport::Tls {
        config,
        server_name,
    } = tls(srv).await
    else {
        unreachable!()
    };
    let tcp = TcpStream::connect(srv.cups()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(server_name).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads until EOF (or error); panics if the server keeps the connection open
/// past `limit`.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Vec<u8> {
    let mut out = vec![];
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out))
        .await
        .expect("server closed the connection");
    out
}

#[tokio::test]
async fn stalled_headers_are_cut_off_by_the_header_timeout() {
    let srv = TestServer::start_with(|c| c.limits.header_timeout_secs = 1).await;
    let token = token_gateway(&srv).await;
    let mut s = open_tls(&srv).await;
    s.write_all(b"POST /update-info HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut s, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    still_serves(&srv, &token).await;
}

#[tokio::test]
async fn stalled_body_gets_408() {
    let srv = TestServer::start_with(|c| c.limits.body_timeout_secs = 1).await;
    let token = token_gateway(&srv).await;
    let mut s = open_tls(&srv).await;
    let req = build_request(
        &host_port(&srv),
        Some(format!("Authorization: Bearer {token}\r\n").as_bytes()),
        GOOD.as_bytes(),
    );
    s.write_all(&req[..req.len() - 40]).await.unwrap();
    let got = read_to_close(&mut s, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    still_serves(&srv, &token).await;
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_are_closed() {
    let srv = TestServer::start().await;
    let token = token_gateway(&srv).await;
    for junk in [
        build_request("x:1", None, GOOD.as_bytes()),
        vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        vec![0x16, 0x03, 0x01, 0xff, 0xff, 0, 0],
    ] {
        let mut tcp = TcpStream::connect(srv.cups()).await.unwrap();
        tcp.write_all(&junk).await.unwrap();
        let got = read_to_close(&mut tcp, Duration::from_secs(10)).await;
        assert!(
            !got.starts_with(b"HTTP/1.1 200"),
            "no answer to non-TLS bytes"
        );
    }
    // A client that connects and says nothing is dropped at the handshake timeout.
    still_serves(&srv, &token).await;
}

#[tokio::test]
async fn silent_clients_are_dropped_at_the_handshake_timeout() {
    let srv = TestServer::start_with(|c| c.limits.handshake_timeout_secs = 1).await;
    let mut tcp = TcpStream::connect(srv.cups()).await.unwrap();
    let got = read_to_close(&mut tcp, Duration::from_secs(10)).await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let srv = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let token = token_gateway(&srv).await;
    let a = open_tls(&srv).await;
    let _b = open_tls(&srv).await;
    // The third client is not accepted (it waits in the kernel backlog), so its
    // handshake cannot finish while two connections are open.
    let third = tokio::spawn({
        let transport = tls(&srv).await;
        let addr = srv.cups();
        let req = build_request(
            &host_port(&srv),
            Some(format!("Authorization: Bearer {token}\r\n").as_bytes()),
            GOOD.as_bytes(),
        );
        async move { raw_exchange(addr, &transport, &req, &ReadOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "third connection must wait for a free slot"
    );
    drop(a);
    let r = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("third connection is served once a slot frees")
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
}
