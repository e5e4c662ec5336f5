//! Runs the faces on already-bound listeners until a shutdown signal, then drains.
//! Each listener has its own accept loop: a connection-limit permit and, on TLS
//! faces, a handshake slot (`admission`) are taken *before* accept (so excess
//! clients wait in the kernel backlog, not in memory); after accept, a connection
//! over its source's handshake share is closed at once. Then the TLS handshake
//! (the ClientHello and the whole handshake each bounded in time; the slot is given
//! back when it ends), then hyper HTTP/1.1 with a header timeout, one task per
//! connection. A failed handshake is one log line and the loop goes on. Shutdown is
//! one `CancellationToken`; connections in flight finish their request and close
//! within the drain deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::admission::Admission;
use crate::app::App;
use crate::identity::PeerCert;
use crate::quiet_close::QuietClose;
use crate::tls::{HandshakeError, ServerConfigs};

/// How often last-contact times of settled gateways reach the database.
const CONTACT_FLUSH_SECS: u64 = 5;

/// Facts about the connection a request arrived on, put into each request's
/// extensions for handlers.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub cert: Option<PeerCert>,
}

impl Default for ConnInfo {
    fn default() -> ConnInfo {
        ConnInfo {
            remote: ([0, 0, 0, 0], 0).into(),
            cert: None,
        }
    }
}

/// The bound listeners `run` serves.
pub struct Listeners {
    pub cups: TcpListener,
    pub api: TcpListener,
    pub lns: TcpListener,
}

impl Listeners {
    /// Binds every listener named in the config, each with an accept queue of
    /// `[limits] listen_backlog`: a burst of connections (a fleet reconnecting, or
    /// a flood while the accept loop waits for permits) queues in the kernel
    /// instead of overflowing it, which costs a client a 1 s SYN retransmit.
    pub async fn bind(cfg: &crate::config::Config) -> std::io::Result<Listeners> {
        let backlog = cfg.limits.listen_backlog;
        let bind = |addr: SocketAddr, what: &'static str| async move {
            listen(addr, backlog).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"))
            })
        };
        Ok(Listeners {
            cups: bind(cfg.cups.listen, "[cups] listen").await?,
            api: bind(cfg.api.listen, "[api] listen").await?,
            lns: bind(cfg.lns.listen, "[lns] listen").await?,
        })
    }
}

/// What `TcpListener::bind` does (SO_REUSEADDR, so a restart can bind at once),
/// with our backlog instead of tokio's 1024.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves every face until `shutdown` is cancelled, then waits for in-flight
/// connections up to `[limits] drain_secs`.
pub async fn run(app: App, listeners: Listeners, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let limits = &app.config.limits;
    let configs = app.tls.server.clone();
    let station_configs = Arc::new(configs.without_session_cache());
    let cups_addr = listeners.cups.local_addr().ok();
    let api_addr = listeners.api.local_addr().ok();
    let lns_addr = listeners.lns.local_addr().ok();

    let face = |name: &'static str, router: Router, tls: Option<&Arc<ServerConfigs>>| Face {
        name,
        router,
        tls: tls.map(|configs| FaceTls {
            configs: configs.clone(),
            admission: Admission::new(
                name,
                limits.handshake_connections,
                limits.handshake_per_source,
            ),
        }),
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        hello_timeout: Duration::from_secs(limits.hello_timeout_secs),
        handshake_timeout: Duration::from_secs(limits.handshake_timeout_secs),
        header_timeout: Duration::from_secs(limits.header_timeout_secs),
        send_stall: Duration::from_secs(limits.send_stall_secs),
    };
    let cups = face(
        "cups",
        crate::cups::router(app.clone()),
        Some(&station_configs),
    );
    let api = face(
        "api",
        crate::api::router(app.clone()),
        app.config.api.tls.then_some(&configs),
    );
    // Handshakes and upgrades share this limit; open sessions are bounded
    // separately by [lns] max_connections.
    let lns = face(
        "lns",
        crate::lns::router(app.clone()),
        Some(&station_configs),
    );
    tracker.spawn(accept_loop(
        cups,
        listeners.cups,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(accept_loop(
        lns,
        listeners.lns,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(accept_loop(
        api,
        listeners.api,
        shutdown.clone(),
        tracker.clone(),
    ));
    // Stored FUOTA tasks are resumed; new ones are picked up as they start.
    tracker.spawn(crate::fuota::runner::supervise(app.clone()));
    tracker.spawn(crate::fuota::control::run(app.clone()));
    tracing::info!(
        cups = ?cups_addr,
        api = ?api_addr,
        lns = ?lns_addr,
        api_tls = app.config.api.tls,
        "ready: all listeners bound"
    );

    // Last-contact times of settled gateways are written behind, in batches.
    let flusher = {
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(CONTACT_FLUSH_SECS));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                if let Err(e) = app.contacts.flush(&app.store).await {
                    tracing::error!("writing last-contact times: {e}");
                }
            }
        })
    };

    shutdown.cancelled().await;
    tracing::info!("shutting down: draining in-flight requests");
    tracker.close();
    let drain = Duration::from_secs(app.config.limits.drain_secs);
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(
            "drain deadline of {} s passed with connections still open; closing them",
            drain.as_secs()
        );
    }
    let _ = flusher.await;
    if let Err(e) = app.contacts.flush(&app.store).await {
        tracing::error!("writing last-contact times at shutdown: {e}");
    }
    tracing::info!("stopped");
}

#[derive(Clone)]
struct Face {
    name: &'static str,
    router: Router,
    tls: Option<FaceTls>,
    permits: Arc<Semaphore>,
    hello_timeout: Duration,
    handshake_timeout: Duration,
    header_timeout: Duration,
    /// A peer that takes none of our bytes this long is closed (`stall`).
    send_stall: Duration,
}

#[derive(Clone)]
struct FaceTls {
    configs: Arc<ServerConfigs>,
    admission: Arc<Admission>,
}

async fn accept_loop(
    face: Face,
    listener: TcpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let permit = tokio::select! {
            p = face.permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.cancelled() => return,
        };
        let slot = match &face.tls {
            Some(tls) => tokio::select! {
                s = tls.admission.slot() => Some(s),
                _ = shutdown.cancelled() => return,
            },
            None => None,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(face = face.name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let in_handshake = match (&face.tls, slot) {
            (Some(tls), Some(slot)) => match tls.admission.admit(slot, remote.ip()) {
                Some(h) => Some(h),
                // over its source's share: closed now, permit and slot back at once
                None => continue,
            },
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        let face = face.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            match &face.tls {
                Some(tls) => {
                    let handshake = tls
                        .configs
                        .accept(stream, face.hello_timeout, face.handshake_timeout)
                        .await;
                    drop(in_handshake);
                    let tls = match handshake {
                        Ok(tls) => tls,
                        // a connection that never spoke: a probe, a scan or a flood
                        Err(e @ HandshakeError::NoHello(_)) => {
                            tracing::debug!(face = face.name, peer = %remote, "TLS handshake: {e}; closing");
                            return;
                        }
                        Err(e @ HandshakeError::Timeout(_)) => {
                            tracing::info!(face = face.name, peer = %remote, "TLS handshake timed out: {e}; closing");
                            return;
                        }
                        Err(HandshakeError::Failed(e)) => {
                            tracing::info!(face = face.name, peer = %remote, "TLS handshake failed (is the client speaking TLS, and does it trust our CA?): {e}");
                            return;
                        }
                    };
                    let info = ConnInfo {
                        remote,
                        cert: crate::tls::peer_cert(tls.get_ref().1),
                    };
                    serve_http(&face, QuietClose::new(tls), info, shutdown).await;
                }
                None => {
                    let info = ConnInfo { remote, cert: None };
                    serve_http(&face, stream, info, shutdown).await;
                }
            }
        });
    }
}

async fn serve_http<S>(face: &Face, io: S, info: ConnInfo, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = face.router.clone();
    let remote = info.remote;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let router = router.clone();
        async move {
            Ok::<_, Infallible>(
                router
                    .oneshot(req.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|e| match e {}),
            )
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(face.header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder
        .serve_connection(
            TokioIo::new(crate::stall::StallGuard::new(io, face.send_stall)),
            service,
        )
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::info!(face = face.name, peer = %remote, "connection closed with an error: {e}");
    }
}
