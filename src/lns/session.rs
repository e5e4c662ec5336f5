//! One gateway's traffic connection: wait for `version`, send the region's
//! `router_config` (with the server's time as `MuxTime`), then serve uplinks,
//! downlinks, `dntxed`, `timesync` and `getxtime` until the gateway goes away, is
//! replaced by a new connection, stops answering pings, or the server shuts down.
//! Every downlink waiting for its `dntxed` is resolved when the session ends.
//! What the gateway sends reaches the log only escaped and clipped, and bad
//! messages only within the refusal log budget (`logguard`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::{mpsc, oneshot};

use super::downlink::{self, Downlink, DownlinkError, Outcome, Timing};
use super::msg::{self, Incoming};
use super::regions;
use super::registry::{Command, Handle, LiveStats};
use super::UplinkEvent;
use crate::app::{now, App};
use crate::eui::Eui;
use crate::logguard::{clip, escaped, Clipped, Reason};
use crate::lorawan::gps::{gps_from_unix_us, unix_from_gps_us, unix_now_us};
use crate::store::Gateway;

/// Extra time given to a `dntxed` after the frame's end on air.
const DNTXED_GRACE: Duration = Duration::from_secs(3);
/// Station's class C backoff: up to 10 × 100 ms before it gives up.
const CLASS_C_BACKOFF: Duration = Duration::from_secs(1);
/// The SX130x time sync is ready a few seconds after router_config.
const ANCHOR_AFTER: Duration = Duration::from_secs(3);

/// A concentrator time known to match a Unix time (from `getxtime`).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    xtime: i64,
    unix_us: i64,
}

impl Anchor {
    fn xtime_at(&self, unix_us: i64) -> i64 {
        self.xtime + (unix_us - self.unix_us)
    }
}

fn mux_time() -> f64 {
    unix_now_us() as f64 / 1e6
}

/// A token bucket against message floods.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let burst = self.rate * 2.0;
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Session {
    app: App,
    eui: Eui,
    /// The gateway's address: the key of its refusal log budget.
    peer: IpAddr,
    gw: Gateway,
    handle: Handle,
    region: Option<String>,
    configured: bool,
    anchor: Option<Anchor>,
    getxtime_sent: Option<(Instant, i64)>,
    pps: bool,
    pending: HashMap<i64, oneshot::Sender<Outcome>>,
    last_rx: Instant,
    last_pong: Instant,
    /// The stored uplink count has been added to this session's counter.
    counting: bool,
    bucket: Bucket,
    flood_logged: Option<Instant>,
}

/// Runs the session to its end.
pub async fn run(app: App, gw: Gateway, peer: IpAddr, mut socket: WebSocket) {
    let lns = &app.lns;
    let eui = gw.gw.eui;
    let Ok(_slot) = lns.sessions.clone().try_acquire_owned() else {
        tracing::warn!(gateway = %eui, "LNS session refused: [lns] max_connections sessions are open");
        let _ = socket.send(close(1013, "server full")).await;
        return;
    };
    let (tx, rx) = mpsc::channel(lns.limits.max_inflight * 2);
    let handle = Handle {
        id: lns.registry.next_id(),
        tx,
        connected_since: now(),
        stats: Default::default(),
        inflight: std::sync::Arc::new(tokio::sync::Semaphore::new(lns.limits.max_inflight)),
        close: app.shutdown.child_token(),
    };
    if lns.registry.insert(eui, handle.clone()).is_some() {
        tracing::info!(gateway = %eui, "gateway reconnected; its previous LNS session is closed");
    }
    tracing::info!(gateway = %eui, "LNS session open");
    let mut s = Session {
        region: gw.gw.rf_region.clone(),
        app: app.clone(),
        eui,
        peer,
        gw,
        handle,
        configured: false,
        anchor: None,
        getxtime_sent: None,
        pps: false,
        pending: HashMap::new(),
        last_rx: Instant::now(),
        last_pong: Instant::now(),
        counting: false,
        bucket: Bucket {
            tokens: app.lns.limits.max_messages_per_sec as f64 * 2.0,
            rate: app.lns.limits.max_messages_per_sec as f64,
            last: Instant::now(),
        },
        flood_logged: None,
    };
    let reason = s.serve(&mut socket, rx).await;
    tracing::info!(gateway = %eui, "LNS session closed: {reason}");
    let _ = socket.send(close(1000, &reason)).await;
    // Frames waiting for dntxed are lost with the radio session.
    for (_, done) in s.pending.drain() {
        let _ = done.send(Outcome::GatewayGone);
    }
    app.lns.registry.remove(eui, s.handle.id);
    let stats = s.stats();
    if let Err(e) = app
        .store
        .lns_disconnected(s.gw.gw.id.clone(), now(), stats)
        .await
    {
        tracing::error!(gateway = %eui, "recording LNS disconnect: {e}");
    }
}

/// An optional client string for a log field: clipped and escaped.
fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "(none)".into(), clip)
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(100).collect::<String>()),
    }))
}

impl Session {
    fn stats(&self) -> LiveStats {
        self.handle
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn with_stats(&self, f: impl FnOnce(&mut LiveStats)) {
        f(&mut self.handle.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    async fn serve(&mut self, socket: &mut WebSocket, mut rx: mpsc::Receiver<Command>) -> String {
        let limits = self.app.lns.limits.clone();
        let mut ping = tokio::time::interval(Duration::from_secs(limits.ping_interval_secs));
        ping.tick().await;
        let dead_after = Duration::from_secs(limits.dead_after_secs);
        let anchor_timer = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(anchor_timer);
        loop {
            tokio::select! {
                frame = socket.recv() => {
                    let text = match frame {
                        None => return "connection closed".into(),
                        Some(Err(e)) => return format!("websocket error: {}", escaped(&e.to_string())),
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) => return "gateway closed the connection".into(),
                        Some(Ok(Message::Binary(_))) => {
                            self.last_rx = Instant::now();
                            tracing::debug!(gateway = %self.eui, "binary frame ignored (remote shell is not supported)");
                            continue;
                        }
                        Some(Ok(Message::Pong(_))) => {
                            self.last_pong = Instant::now();
                            continue;
                        }
                        Some(Ok(_)) => {
                            self.last_rx = Instant::now();
                            continue;
                        }
                    };
                    self.last_rx = Instant::now();
                    if !self.bucket.take() {
                        self.with_stats(|s| s.dropped += 1);
                        if self.flood_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            tracing::warn!(gateway = %self.eui, "message flood: dropping messages over {} per second", limits.max_messages_per_sec);
                            self.flood_logged = Some(Instant::now());
                        }
                        continue;
                    }
                    match self.on_text(socket, &text).await {
                        Ok(Some(after)) => anchor_timer.as_mut().reset(tokio::time::Instant::now() + after),
                        Ok(None) => {}
                        Err(reason) => return reason,
                    }
                }
                Some(cmd) = rx.recv() => {
                    if let Err(reason) = self.on_command(socket, cmd).await {
                        return reason;
                    }
                }
                _ = &mut anchor_timer => {
                    anchor_timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(limits.ping_interval_secs * 2));
                    let sent = unix_now_us();
                    self.getxtime_sent = Some((Instant::now(), sent));
                    if socket.send(Message::Text(msg::getxtime_request(sent as f64 / 1e6).into())).await.is_err() {
                        return "send failed".into();
                    }
                }
                _ = ping.tick() => {
                    // Station answers every ping (lns-protocol.md §1.1): one that
                    // stops is dead or wedged, whatever else it still sends.
                    if self.last_pong.elapsed() > dead_after {
                        return format!("no answer to pings for {} s (dead peer)", dead_after.as_secs());
                    }
                    self.pending.retain(|_, done| !done.is_closed());
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return "send failed".into();
                    }
                    let stats = self.stats();
                    if let Err(e) = self.app.store.lns_stats(self.gw.gw.id.clone(), stats).await {
                        tracing::error!(gateway = %self.eui, "recording LNS counters: {e}");
                    }
                }
                _ = self.handle.close.cancelled() => {
                    return if self.app.shutdown.is_cancelled() {
                        "server shutting down".into()
                    } else if self.app.lns.nudges.active(self.eui) {
                        "nudged: run a CUPS session now, then connect again".into()
                    } else {
                        "replaced by a new connection".into()
                    };
                }
            }
        }
    }

    /// Handles one message; `Ok(Some(d))` asks for a time anchor `d` from now.
    async fn on_text(
        &mut self,
        socket: &mut WebSocket,
        text: &str,
    ) -> Result<Option<Duration>, String> {
        let parsed = match msg::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.with_stats(|s| s.dropped += 1);
                // `MsgError` is escaped and capped already; the budget keeps a
                // gateway's stream of bad messages from becoming one of log lines.
                if let Some(suppressed) = self.app.refusals.note(Reason::LnsBadMessage, self.peer) {
                    tracing::warn!(gateway = %self.eui, "message dropped: {e}{suppressed}");
                }
                return Ok(None);
            }
        };
        match parsed {
            Incoming::Version(v) => {
                let region = self.region.clone().unwrap_or_default();
                let opts = regions::RadioOptions {
                    sub_bands: self.gw.gw.sub_bands.clone(),
                    join_eui_filters: self.gw.gw.join_eui_filters.clone(),
                    net_id_filters: self.gw.gw.net_id_filters.clone(),
                };
                let (config, warning) = match regions::router_config(&region, &opts, mux_time()) {
                    Ok((c, regions::Support::Full)) => (Some(c), None),
                    Ok((c, regions::Support::UplinkOnly(why))) => (Some(c), Some(why)),
                    Err(e) => (
                        None,
                        Some(format!(
                            "no router_config: {e}; set the gateway's RfRegion/SubBands"
                        )),
                    ),
                };
                if let Some(w) = &warning {
                    tracing::warn!(gateway = %self.eui, region = %region, "{w}");
                }
                self.with_stats(|s| s.region_warning = warning.clone());
                match self
                    .app
                    .store
                    .lns_connected(self.gw.gw.id.clone(), v.clone(), warning.clone(), now())
                    .await
                {
                    Ok(base) if !self.counting => {
                        self.counting = true;
                        self.with_stats(|s| s.uplinks += base);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(gateway = %self.eui, "recording LNS version: {e}"),
                }
                tracing::info!(gateway = %self.eui, station = %opt(&v.station), package = %opt(&v.package), model = %opt(&v.model), features = %opt(&v.features), "LNS version");
                let Some(config) = config else {
                    let err = serde_json::json!({"msgtype": "error", "error": warning.unwrap_or_default()});
                    socket
                        .send(Message::Text(err.to_string().into()))
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(None);
                };
                socket
                    .send(Message::Text(config.to_string().into()))
                    .await
                    .map_err(|e| e.to_string())?;
                self.configured = warning.is_none();
                self.anchor = None;
                self.with_stats(|s| s.anchored = false);
                // Downlinks queued before this router_config belong to a dead radio session.
                for (_, done) in self.pending.drain() {
                    let _ = done.send(Outcome::GatewayGone);
                }
                Ok(Some(ANCHOR_AFTER))
            }
            Incoming::Uplink(u) => {
                let at = now();
                self.with_stats(|s| {
                    s.uplinks += 1;
                    s.last_uplink_at = Some(at.clone());
                    s.last_rssi = Some(u.radio.up.rssi);
                    s.last_snr = Some(u.radio.up.snr);
                });
                let event = UplinkEvent {
                    gateway: self.eui,
                    received_at: at,
                    uplink: *u,
                };
                // Nothing consumes the queue yet in a running server (issue 9):
                // a full queue drops silently and counts, never a line per frame.
                self.app.metrics.lns_uplink();
                if self.app.lns.uplinks_tx.try_send(event).is_err() {
                    self.with_stats(|s| s.dropped += 1);
                    self.app.lns.count_dropped_uplink();
                }
                Ok(None)
            }
            Incoming::Dntxed(d) => {
                match self.pending.remove(&d.diid) {
                    Some(done) => {
                        self.with_stats(|s| s.downlinks_confirmed += 1);
                        let _ = done.send(Outcome::Transmitted(d));
                    }
                    None => {
                        tracing::debug!(gateway = %self.eui, diid = d.diid, "dntxed for a downlink nobody waits for")
                    }
                }
                Ok(None)
            }
            Incoming::Timesync { txtime } => {
                self.pps = true;
                self.with_stats(|s| s.gps = true);
                let now_us = unix_now_us();
                let reply =
                    msg::timesync_reply(txtime, gps_from_unix_us(now_us), now_us as f64 / 1e6);
                socket
                    .send(Message::Text(reply.into()))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(None)
            }
            Incoming::Getxtime(g) => {
                let Some((sent_at, sent_unix)) = self.getxtime_sent.take() else {
                    return Ok(None);
                };
                let x = g.xtimes.first().copied().unwrap_or(0);
                if x == 0 {
                    return Ok(Some(ANCHOR_AFTER));
                }
                // The gateway's clock is only as good as the MuxTime we gave it, so
                // anchor on our own clock: the reply's xtime is half a round trip old.
                let rtt = sent_at.elapsed().as_micros() as i64;
                let anchor = Anchor {
                    xtime: x,
                    unix_us: sent_unix + rtt / 2,
                };
                self.anchor = Some(anchor);
                self.with_stats(|s| s.anchored = true);
                if !self.pps {
                    // No PPS: tell station which GPS time this xtime is, so class B
                    // and GPS-timed frames work (lns-protocol.md §6.2 server push).
                    let push = msg::timesync_push(anchor.xtime, gps_from_unix_us(anchor.unix_us));
                    socket
                        .send(Message::Text(push.into()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                tracing::debug!(gateway = %self.eui, xtime = x, rtt_us = rtt, "time anchor");
                Ok(None)
            }
            Incoming::Unknown(t) => {
                if let Some(suppressed) = self.app.refusals.note(Reason::LnsBadMessage, self.peer) {
                    tracing::info!(gateway = %self.eui, msgtype = %Clipped(&t), "unknown message type ignored{suppressed}");
                }
                Ok(None)
            }
        }
    }

    async fn on_command(&mut self, socket: &mut WebSocket, cmd: Command) -> Result<(), String> {
        let Command::Downlink { dl, accepted, done } = cmd;
        match self.prepare(&dl) {
            Err(e) => {
                let _ = accepted.send(Err(e));
                Ok(())
            }
            Ok((text, diid, wait)) => {
                socket
                    .send(Message::Text(text.into()))
                    .await
                    .map_err(|e| e.to_string())?;
                self.with_stats(|s| s.downlinks_sent += 1);
                self.pending.insert(diid, done);
                let _ = accepted.send(Ok(wait));
                Ok(())
            }
        }
    }

    /// Validates a downlink, resolves its time, and builds its dnmsg; returns the
    /// text, its diid and how long to wait for `dntxed`.
    fn prepare(&self, dl: &Downlink) -> Result<(String, i64, Duration), DownlinkError> {
        if !self.configured {
            return Err(DownlinkError::NotConfigured);
        }
        let region = self.region.as_deref().unwrap_or_default();
        let dr = match &dl.timing {
            Timing::ClassA { rx1, rx2, .. } => rx1
                .or(*rx2)
                .map(|(d, _)| d)
                .ok_or(DownlinkError::NoWindow)?,
            Timing::ClassCNow { dr, .. }
            | Timing::ClassCAtXtime { dr, .. }
            | Timing::ClassCAtGps { dr, .. }
            | Timing::ClassB { dr, .. } => *dr,
        };
        let modulation = regions::dr(region, dr).ok_or(DownlinkError::BadDr(dr))?;
        let airtime = downlink::airtime(modulation, dl.pdu.len());
        let now_us = unix_now_us();
        let until = |unix_us: i64| -> Result<Duration, DownlinkError> {
            let ahead = unix_us - now_us;
            if ahead < 0 {
                return Err(DownlinkError::InThePast);
            }
            let d = Duration::from_micros(ahead as u64);
            if d > downlink::MAX_AHEAD {
                return Err(DownlinkError::TooFarAhead(d.as_secs()));
            }
            Ok(d)
        };
        let (resolved, lead) = match &dl.timing {
            Timing::ClassA { rx_delay, .. } => {
                (None, Duration::from_secs(u64::from((*rx_delay).max(1)) + 1))
            }
            Timing::ClassCNow { .. } => (None, CLASS_C_BACKOFF),
            Timing::ClassCAtXtime { xtime, .. } => {
                let lead = match self.anchor {
                    Some(a) => until(a.unix_us + (xtime - a.xtime))?,
                    None => downlink::MAX_AHEAD,
                };
                (None, lead)
            }
            Timing::ClassCAtGps { gps_us, .. } => {
                let a = self.anchor.ok_or(DownlinkError::NoTimeAnchor)?;
                let unix = unix_from_gps_us(*gps_us);
                let lead = until(unix)?;
                (Some(a.xtime_at(unix)), lead)
            }
            Timing::ClassB { gps_us, .. } => (None, until(unix_from_gps_us(*gps_us))?),
        };
        let diid = self.app.lns.next_diid();
        let m = downlink::dnmsg(dl, diid, resolved, now_us as f64 / 1e6)?;
        Ok((m.to_string(), diid, lead + airtime + DNTXED_GRACE))
    }
}
