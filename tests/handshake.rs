//! The TLS handshake as gateways (and floods) make it, against the real server:
//! station's ClientHello gets the cheapest group it offers on every TLS listener,
//! and bare TCP connections that never send a byte cannot keep a real gateway
//! from polling.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::TestServer;
use common::station::net::station_groups;
use rustls::crypto::ring::kx_group;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, ClientConfig, NamedGroup, RootCertStore, SupportedCipherSuite};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const EUI: u64 = 0x0016_c001_ff10_00aa;

/// A client offering `groups` in that order, TLS 1.2 only or 1.3 only.
fn client(
    srv: &TestServer,
    groups: Vec<&'static dyn SupportedKxGroup>,
    tls13: bool,
) -> ClientConfig {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = groups;
    let version = if tls13 {
        &rustls::version::TLS13
    } else {
        &rustls::version::TLS12
    };
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots(srv))
        .with_no_client_auth()
}

/// The group a full handshake with `addr` negotiated.
async fn negotiated(addr: SocketAddr, cfg: ClientConfig) -> NamedGroup {
    negotiated_both(addr, cfg).await.0
}

/// The group and the cipher suite a full handshake with `addr` negotiated.
async fn negotiated_both(addr: SocketAddr, cfg: ClientConfig) -> (NamedGroup, CipherSuite) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
    let conn = tls.get_ref().1;
    let group = conn
        .negotiated_key_exchange_group()
        .expect("an ECDHE group")
        .name();
    (
        group,
        conn.negotiated_cipher_suite().expect("a suite").suite(),
    )
}

/// A TLS 1.2 client offering station's groups and exactly `suites`, in that order.
fn with_suites(srv: &TestServer, suites: &[SupportedCipherSuite]) -> ClientConfig {
    let provider = CryptoProvider {
        cipher_suites: suites.to_vec(),
        kx_groups: station_groups(),
        ..rustls::crypto::ring::default_provider()
    };
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(srv))
        .with_no_client_auth()
}

fn roots(srv: &TestServer) -> RootCertStore {
    let pem = std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap();
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

/// The server, not the client, picks the TLS 1.2 suite: station's mbedTLS lists
/// AES-256-GCM-SHA384 early, and its SHA-384 PRF costs the server more per
/// handshake than the SHA-256 suites, so those win whatever the client's order;
/// a client offering only the SHA-384 suite still gets in.
#[tokio::test]
async fn the_server_picks_a_sha256_suite_whatever_the_clients_order() {
    use rustls::crypto::ring::cipher_suite as cs;
    let srv = TestServer::start().await;
    let addr = srv.running.cups_addr;
    let sha384_first = [
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let (group, suite) = negotiated_both(addr, with_suites(&srv, &sha384_first)).await;
    assert_eq!(group, NamedGroup::X25519);
    assert_eq!(
        suite,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    );
    // without ChaCha20 (an mbedTLS built without it): AES-128-GCM-SHA256
    let (_, suite) = negotiated_both(addr, with_suites(&srv, &sha384_first[..2])).await;
    assert_eq!(suite, CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let (_, suite) = negotiated_both(addr, with_suites(&srv, &sha384_first[..1])).await;
    assert_eq!(suite, CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
}

#[tokio::test]
async fn station_hello_gets_x25519_or_else_p256_on_every_tls_listener() {
    let srv = TestServer::start_with(|c| c.api.tls = true).await;
    let r = &srv.running;
    let without_x25519: Vec<_> = station_groups()
        .into_iter()
        .filter(|g| g.name() != NamedGroup::X25519)
        .collect();
    for (face, addr) in [
        ("cups", r.cups_addr),
        ("lns", r.lns_addr),
        ("api", r.api_addr),
    ] {
        // station 2.0.6's exact list: P-521 and P-384 first, X25519 last
        let g = negotiated(addr, client(&srv, station_groups(), false)).await;
        assert_eq!(g, NamedGroup::X25519, "{face}: station's hello");
        // a station build without Curve25519
        let g = negotiated(addr, client(&srv, without_x25519.clone(), false)).await;
        assert_eq!(
            g,
            NamedGroup::secp256r1,
            "{face}: station's hello without X25519"
        );
        // a client that offers only P-384 still gets in (the fallback)
        let g = negotiated(addr, client(&srv, vec![kx_group::SECP384R1], false)).await;
        assert_eq!(g, NamedGroup::secp384r1, "{face}: P-384 only");
        // TLS 1.3 with a P-384 key share first: a HelloRetryRequest for X25519
        let order = vec![kx_group::SECP384R1, kx_group::SECP256R1, kx_group::X25519];
        let g = negotiated(addr, client(&srv, order, true)).await;
        assert_eq!(g, NamedGroup::X25519, "{face}: TLS 1.3, P-384 first");
    }
}

/// How the second of two handshakes with `addr` went, with one client config
/// (and so one client session cache) for both.
async fn second_handshake(addr: SocketAddr, cfg: ClientConfig) -> rustls::HandshakeKind {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let mut kind = None;
    for _ in 0..2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
        kind = tls.get_ref().1.handshake_kind();
    }
    kind.expect("the handshake finished")
}

#[tokio::test]
async fn station_listeners_keep_no_sessions_and_the_api_resumes() {
    let srv = TestServer::start_with(|c| c.api.tls = true).await;
    let r = &srv.running;
    for (face, addr) in [("cups", r.cups_addr), ("lns", r.lns_addr)] {
        let kind = second_handshake(addr, client(&srv, station_groups(), false)).await;
        assert_eq!(kind, rustls::HandshakeKind::Full, "{face}");
    }
    // the API keeps its cache, so the scaffolding above can tell the difference
    let kind = second_handshake(r.api_addr, client(&srv, station_groups(), false)).await;
    assert_eq!(kind, rustls::HandshakeKind::Resumed, "api");
}

/// A TCP connection from `from` to `to` that never sends a byte.
async fn bare(from: std::net::IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(to).await
}

#[tokio::test]
async fn idle_connections_from_one_address_do_not_keep_a_gateway_from_polling() {
    // Small limits, and timeouts long enough that a connection which got a permit
    // would hold it for the whole test.
    let srv = TestServer::start_with(|c| {
        c.limits.max_connections = 32;
        c.limits.handshake_connections = 16;
        c.limits.handshake_per_source = 4;
        c.limits.hello_timeout_secs = 60;
        c.limits.handshake_timeout_secs = 60;
    })
    .await;
    let (_id, mut st) = srv.settled_station(EUI, "Token").await;

    // 48 bare connections from 127.0.0.2: more than every limit above
    let flooder: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut idle = vec![];
    for _ in 0..48 {
        idle.push(bare(flooder, srv.cups()).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // the gateway polls from 127.0.0.1; without a handshake budget of its own the
    // poll waits behind the idle connections for the whole handshake timeout
    let t = Instant::now();
    let o = tokio::time::timeout(Duration::from_secs(10), st.poll(srv.cups()))
        .await
        .expect("poll finished within 10 s while 48 idle connections were open");
    assert!(o.is_success(), "poll failed: {:?}", o.error);
    eprintln!("poll took {:?} with the idle connections open", t.elapsed());

    // the idle connections over the source's share were closed at once
    let mut closed = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 48 - 4, "all but handshake_per_source closed");
}

#[tokio::test]
async fn a_connection_that_sends_no_client_hello_is_closed_after_hello_timeout() {
    let srv = TestServer::start_with(|c| {
        c.limits.hello_timeout_secs = 1;
        c.limits.handshake_timeout_secs = 60;
    })
    .await;
    let mut s = bare("127.0.0.1".parse().unwrap(), srv.cups())
        .await
        .unwrap();
    let t = Instant::now();
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut b))
        .await
        .expect("closed by the server well before the handshake timeout");
    assert!(matches!(r, Ok(0) | Err(_)), "got {r:?}");
    assert!(t.elapsed() < Duration::from_secs(20));
}

/// A TLS 1.2 client that sends `request` and reads the answer's head.
async fn exchange(srv: &TestServer, request: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    use tokio::io::AsyncWriteExt;
    let tcp = TcpStream::connect(srv.running.cups_addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client(srv, station_groups(), false)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            tls.read(&mut b).await.unwrap(),
            1,
            "EOF inside the answer head"
        );
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    tls
}

/// Station closes first (its close_notify, then the socket): the server then
/// closes without a close_notify of its own, as nginx does, instead of writing
/// one to a socket nobody reads. When the server ends the connection itself
/// (`Connection: close`), it still sends its close_notify.
#[tokio::test]
async fn a_connection_the_peer_closed_ends_without_our_close_notify() {
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start().await;
    let keep_alive = "GET /no-such-path HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";
    let mut tls = exchange(&srv, keep_alive).await;
    // the rest of the answer's body, then our close_notify and FIN
    let mut body = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(300), tls.read(&mut body)).await;
    tls.shutdown().await.unwrap();
    let (mut tcp, _) = tls.into_inner();
    let mut after = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut after))
        .await
        .expect("the server closes the connection")
        .unwrap();
    assert!(
        after.is_empty(),
        "after the client's close_notify the server sent {} more bytes (a close_notify is 0x15 ...): {:02x?}",
        after.len(),
        &after[..after.len().min(8)]
    );

    let closing = "GET /no-such-path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let mut tls = exchange(&srv, closing).await;
    let mut rest = Vec::new();
    // rustls reports a TCP close without close_notify as an UnexpectedEof error
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .expect("the server's own close ends with its close_notify");
}
