//! The HTTP integration against a real HTTP server: each event POSTed as
//! `?event=<name>` with ChirpStack's JSON and the configured headers to every
//! endpoint; an endpoint that refuses, fails or hangs never blocks `publish` and
//! never stops the others.

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::integration::*;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use stationkeeper::config::IntegrationConfig;
use stationkeeper::integration::Integrations;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the endpoint saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    path_and_query: String,
    content_type: String,
    token: String,
    body: Value,
}

/// A tiny HTTP server on 127.0.0.1:0 answering `status` to every request.
async fn endpoint(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Seen>) {
    endpoint_with(status, None).await
}

/// The same over TLS with the server certificate in `dir` (from `tls_files`).
fn acceptor(dir: &std::path::Path, ca_name: &str) -> tokio_rustls::TlsAcceptor {
    let pem = |f: String| std::fs::read(dir.join(f)).unwrap();
    let chain = rustls_pemfile::certs(&mut pem(format!("{ca_name}-server.pem")).as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut pem(format!("{ca_name}-server.key")).as_slice())
        .unwrap()
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg))
}

async fn endpoint_with(
    status: StatusCode,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tls = tls.clone();
            let tx = tx.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let (method, pq) = (req.method().to_string(), req.uri().to_string());
                    let (ct, token) = (header("content-type"), header("x-token"));
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let _ = tx.send(Seen {
                        method,
                        path_and_query: pq,
                        content_type: ct,
                        token,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = http.serve_connection(io, svc).await;
                    }
                    // A failed handshake (client does not trust us) just ends here.
                    Some(a) => {
                        if let Ok(s) = a.accept(stream).await {
                            let io = hyper_util::rt::TokioIo::new(s);
                            let _ = http.serve_connection(io, svc).await;
                        }
                    }
                }
            });
        }
    });
    (base, rx)
}

fn config(urls: &str, queue: usize, timeout_secs: u64) -> IntegrationConfig {
    let mut cfg = IntegrationConfig::default();
    cfg.http.url = Some(urls.to_string());
    cfg.http.headers.insert("X-Token".into(), "s3cret".into());
    cfg.http.queue = queue;
    cfg.http.timeout_secs = timeout_secs;
    cfg
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a POST arrives")
        .unwrap()
}

async fn wait_for(
    i: &Integrations,
    what: &str,
    ok: impl Fn(&stationkeeper::integration::IntegrationStats) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(&i.stats()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", i.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_posted_to_every_endpoint() {
    let (base, mut rx) = endpoint(StatusCode::OK).await;
    let shutdown = CancellationToken::new();
    let urls = format!("{base}/a, {base}/b?k=1");
    let (integ, _c) = Integrations::start(&config(&urls, 16, 5), shutdown.clone());
    let events = every_kind();
    for ev in &events {
        integ.publish(ev);
    }
    let mut seen: Vec<Seen> = Vec::new();
    for _ in 0..events.len() * 2 {
        seen.push(next(&mut rx).await);
    }
    for ev in &events {
        for want in [
            format!("/a?event={}", ev.name()),
            format!("/b?k=1&event={}", ev.name()),
        ] {
            let s = seen
                .iter()
                .find(|s| s.path_and_query == want)
                .unwrap_or_else(|| panic!("no POST to {want}: {seen:?}"));
            assert_eq!(s.method, "POST");
            assert_eq!(s.content_type, "application/json");
            assert_eq!(s.token, "s3cret");
            assert_eq!(s.body, ev.to_json(), "{want}");
        }
    }
    wait_for(&integ, "12 published", |s| s.published == 12).await;
    assert_eq!((integ.stats().failed, integ.stats().dropped), (0, 0));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_and_do_not_stop_the_other_endpoints() {
    let (good, mut good_rx) = endpoint(StatusCode::OK).await;
    let (bad, mut bad_rx) = endpoint(StatusCode::INTERNAL_SERVER_ERROR).await;
    // Nothing listens here: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/x", l.local_addr().unwrap())
    };
    let shutdown = CancellationToken::new();
    let urls = format!("{good}/ok,{bad}/err,{closed}");
    let (integ, _c) = Integrations::start(&config(&urls, 16, 5), shutdown.clone());
    for n in 0..5 {
        integ.publish(&up(n));
    }
    for n in 0..5u32 {
        assert_eq!(next(&mut good_rx).await.body["fCnt"], n, "in order");
        assert_eq!(next(&mut bad_rx).await.body["fCnt"], n);
    }
    wait_for(&integ, "5 published, 10 failed", |s| {
        s.published == 5 && s.failed == 10
    })
    .await;
    assert_eq!(integ.stats().dropped, 0);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_never_blocks_publish() {
    // Accepts connections and never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}/hang", hang.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    let (good, mut good_rx) = endpoint(StatusCode::NO_CONTENT).await;
    let shutdown = CancellationToken::new();
    let queue = 4;
    let urls = format!("{hang_url},{good}/ok");
    let (integ, _c) = Integrations::start(&config(&urls, queue, 1), shutdown.clone());
    let t = Instant::now();
    for n in 0..50 {
        integ.publish(&up(n));
    }
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "publish blocked: {:?}",
        t.elapsed()
    );
    // The hanging endpoint holds one event in its POST and `queue` in its queue; the
    // rest are dropped for it. The good endpoint gets what fits its own queue
    // while it works (at least `queue`), unhindered.
    let mut got = 0;
    while tokio::time::timeout(Duration::from_millis(500), good_rx.recv())
        .await
        .is_ok()
    {
        got += 1;
    }
    assert!(got >= queue, "good endpoint got {got}");
    let s = integ.stats();
    assert!(s.dropped >= (50 - 1 - queue) as u64, "{s:?}");
    wait_for(&integ, "the hung POST times out", |s| s.failed >= 1).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_endpoints_ca_and_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = tls_files(dir.path(), "web-ca");
    let (other_ca, _, _) = tls_files(dir.path(), "other-ca");
    let (base, mut rx) = endpoint_with(StatusCode::OK, Some(acceptor(dir.path(), "web-ca"))).await;

    let shutdown = CancellationToken::new();
    let mut cfg = config(&format!("{base}/events"), 16, 5);
    cfg.http.ca_cert = Some(ca);
    let (integ, _c) = Integrations::start(&cfg, shutdown.clone());
    integ.publish(&up(5));
    let s = next(&mut rx).await;
    assert_eq!(s.path_and_query, "/events?event=up");
    assert_eq!(
        (s.body["fCnt"].as_u64(), s.token.as_str()),
        (Some(5), "s3cret")
    );
    wait_for(&integ, "published over TLS", |s| s.published == 1).await;

    // A client trusting another CA does not send the event (or its header).
    let mut cfg = config(&format!("{base}/events"), 16, 5);
    cfg.http.ca_cert = Some(other_ca);
    let (wrong, _c) = Integrations::start(&cfg, shutdown.clone());
    wrong.publish(&up(6));
    wait_for(&wrong, "the handshake fails", |s| s.failed == 1).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "nothing reached the endpoint"
    );
    assert_eq!(wrong.stats().published, 0);
    shutdown.cancel();
}
