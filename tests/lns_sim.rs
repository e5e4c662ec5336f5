//! Tests of the LNS station simulator (tests/common/lns_station) itself,
//! against small in-test servers. The server side uses tungstenite (an
//! independent WebSocket implementation, server role: it insists on masked
//! client frames) over plain TCP or TLS; the upgrade request is read by hand
//! so its exact bytes can be checked against spec §1.1.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::lns_station::*;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketContext};
use tokio_tungstenite::tungstenite::{self, Message};

const EUI: u64 = 0xB827_EBFF_FE61_51A8;
const T: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Test server: tungstenite's sync WebSocketContext driven over an async stream
// ---------------------------------------------------------------------------

/// In-memory stream for tungstenite: reads what the socket delivered,
/// collects what tungstenite writes.
#[derive(Default)]
struct Bridge {
    inp: Vec<u8>,
    out: Vec<u8>,
}

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inp.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.inp.len());
        buf[..n].copy_from_slice(&self.inp[..n]);
        self.inp.drain(..n);
        Ok(n)
    }
}

impl Write for Bridge {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct ServerWs<S> {
    io: S,
    ctx: WebSocketContext,
    b: Bridge,
    /// The upgrade request exactly as received.
    request: String,
}

/// Reads the upgrade request by hand and answers 101.
async fn accept_ws<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> ServerWs<S> {
    let (request, leftover) = read_request(&mut io).await;
    let accept = tungstenite::handshake::derive_accept_key(WS_KEY.as_bytes());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    io.write_all(resp.as_bytes()).await.unwrap();
    io.flush().await.unwrap();
    ServerWs {
        io,
        ctx: WebSocketContext::new(Role::Server, None),
        b: Bridge {
            inp: leftover,
            out: Vec::new(),
        },
        request,
    }
}

async fn read_request<S: AsyncRead + Unpin>(io: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return (
                String::from_utf8(buf[..p + 4].to_vec()).unwrap(),
                buf[p + 4..].to_vec(),
            );
        }
        let n = tokio::time::timeout(T, io.read(&mut chunk))
            .await
            .expect("request timeout")
            .unwrap();
        assert!(n > 0, "client closed before the end of the request");
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerWs<S> {
    async fn flush_out(&mut self) {
        if !self.b.out.is_empty() {
            let out = std::mem::take(&mut self.b.out);
            let _ = self.io.write_all(&out).await;
            let _ = self.io.flush().await;
        }
    }

    /// Next message; None when the connection ended (EOF or closed) or on
    /// timeout.
    async fn recv(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ctx.read(&mut self.b) {
                Ok(m) => {
                    // queued pong / close replies go out now
                    let _ = self.ctx.flush(&mut self.b);
                    self.flush_out().await;
                    return Some(m);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.flush_out().await;
                    let mut chunk = [0u8; 4096];
                    let n = match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await
                    {
                        Err(_) => return None,
                        Ok(r) => r.unwrap_or(0),
                    };
                    if n == 0 {
                        return None;
                    }
                    self.b.inp.extend_from_slice(&chunk[..n]);
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None
                }
                Err(e) => panic!("server-side WebSocket error: {e}"),
            }
        }
    }

    async fn send(&mut self, m: Message) {
        self.ctx.write(&mut self.b, m).unwrap();
        self.ctx.flush(&mut self.b).unwrap();
        self.flush_out().await;
    }

    async fn send_text(&mut self, t: &str) {
        self.send(Message::text(t)).await;
    }

    async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Next text message (pongs skipped); panics on anything else.
    async fn recv_text(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Some(Message::Text(t)) => return t.to_string(),
                Some(Message::Pong(_)) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    async fn recv_json(&mut self, timeout: Duration) -> (String, Value) {
        let t = self.recv_text(timeout).await;
        let v = serde_json::from_str(&t).unwrap_or_else(|e| panic!("bad JSON {t}: {e}"));
        (t, v)
    }

    /// Asserts that no text message arrives within `d`.
    async fn expect_silence(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                None => return,
                Some(Message::Pong(_)) => continue,
                Some(m) => panic!("expected silence, got {m:?}"),
            }
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.io.flush().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Spec §3.4, verbatim except `MuxTime`.
fn eu868_config(mux: f64) -> String {
    r#"{
 "msgtype":"router_config",
 "region":"EU868",
 "hwspec":"sx1301/1",
 "freq_range":[863000000,870000000],
 "DRs":[[12,125,0],[11,125,0],[10,125,0],[9,125,0],[8,125,0],[7,125,0],[7,250,0],[0,0,0],
        [-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0]],
 "NetID":null,
 "JoinEui":null,
 "sx1301_conf":[{
   "radio_0":{"enable":true,"freq":867500000},
   "radio_1":{"enable":true,"freq":868500000},
   "chan_multiSF_0":{"enable":true,"radio":1,"if":-400000},
   "chan_multiSF_1":{"enable":true,"radio":1,"if":-200000},
   "chan_multiSF_2":{"enable":true,"radio":1,"if":0},
   "chan_multiSF_3":{"enable":true,"radio":0,"if":-400000},
   "chan_multiSF_4":{"enable":true,"radio":0,"if":-200000},
   "chan_multiSF_5":{"enable":true,"radio":0,"if":0},
   "chan_multiSF_6":{"enable":true,"radio":0,"if":200000},
   "chan_multiSF_7":{"enable":true,"radio":0,"if":400000},
   "chan_Lora_std":{"enable":true,"radio":1,"if":-200000,"bandwidth":250000,"spread_factor":7},
   "chan_FSK":{"enable":true,"radio":1,"if":300000,"datarate":50000}
 }],
 "MuxTime":1732443300.125
}"#
    .replace("1732443300.125", &format!("{mux:.6}"))
}

/// Spec §3.5, verbatim except `MuxTime`.
fn us915_config(mux: f64) -> String {
    r#"{
 "msgtype":"router_config",
 "region":"US915",
 "hwspec":"sx1301/1",
 "freq_range":[902000000,928000000],
 "DRs":[[10,125,0],[9,125,0],[8,125,0],[7,125,0],[8,500,0],[-1,0,0],[-1,0,0],[-1,0,0],
        [12,500,1],[11,500,1],[10,500,1],[9,500,1],[8,500,1],[7,500,1],[-1,0,0],[-1,0,0]],
 "NetID":null,
 "JoinEui":null,
 "sx1301_conf":[{
   "radio_0":{"enable":true,"freq":904300000},
   "radio_1":{"enable":true,"freq":905000000},
   "chan_multiSF_0":{"enable":true,"radio":0,"if":-400000},
   "chan_multiSF_1":{"enable":true,"radio":0,"if":-200000},
   "chan_multiSF_2":{"enable":true,"radio":0,"if":0},
   "chan_multiSF_3":{"enable":true,"radio":0,"if":200000},
   "chan_multiSF_4":{"enable":true,"radio":1,"if":-300000},
   "chan_multiSF_5":{"enable":true,"radio":1,"if":-100000},
   "chan_multiSF_6":{"enable":true,"radio":1,"if":100000},
   "chan_multiSF_7":{"enable":true,"radio":1,"if":300000},
   "chan_Lora_std":{"enable":true,"radio":0,"if":300000,"bandwidth":500000,"spread_factor":8},
   "chan_FSK":{"enable":false}
 }],
 "MuxTime":1732443300.125
}"#
    .replace("1732443300.125", &format!("{mux:.6}"))
}

fn eu868_value() -> Value {
    serde_json::from_str(&eu868_config(unix_now())).unwrap()
}

/// Exact upgrade request station writes (spec §1.1), built independently.
fn expected_request(path: &str, host: &str, token: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
         Sec-WebSocket-Key: bpse8nVmEl6ZlX4lSb6RMw==\r\nSec-WebSocket-Version: 13\r\n{token}\r\n"
    )
}

/// Top-level keys of a JSON object text, in order (simple scanner: enough
/// for the flat-ish messages here).
fn key_order(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut keys = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let mut expect_key = false;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => {
                depth += 1;
                expect_key = b[i] == b'{' && depth == 1;
            }
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => expect_key = true,
            b'"' => {
                let start = i + 1;
                i += 1;
                while b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if expect_key && depth == 1 {
                    keys.push(text[start..i].to_string());
                    expect_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

fn station(addr: SocketAddr) -> LnsStation {
    let mut s = LnsStation::new(EUI);
    s.resolve = Some(addr);
    s
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Connects `st` to a fresh plain server, answers `version` with `config`.
/// Returns the server side, the session and what `recv_router_config` said.
async fn connected(
    mut st: LnsStation,
    config: &str,
) -> (ServerWs<TcpStream>, Session, Result<RouterConfig, LnsError>) {
    let (l, addr) = listener().await;
    st.resolve = Some(addr);
    let uri = format!("ws://localhost:{}/traffic/b827ebfffe6151a8", addr.port());
    let conn = tokio::spawn(async move { st.connect(&uri).await });
    let (tcp, _) = l.accept().await.unwrap();
    let mut srv = accept_ws(tcp).await;
    let (_, v) = srv.recv_json(T).await;
    assert_eq!(v["msgtype"], "version");
    let mut sess = conn.await.unwrap().unwrap();
    srv.send_text(config).await;
    let rc = sess.recv_router_config(T).await;
    (srv, sess, rc)
}

fn dnmsg_classc(diid: i64, deveui: &str, pdu: &str) -> Value {
    json!({"msgtype":"dnmsg","DevEui":deveui,"dC":2,"diid":diid,"pdu":pdu,
           "RxDelay":1,"RX2DR":0,"RX2Freq":869525000,"priority":0,"rctx":0,"MuxTime":unix_now()})
}

fn pdu(len: usize) -> String {
    "6A".repeat(len)
}

// ---------------------------------------------------------------------------
// The full flow of the brief: discovery, version, EU868, uplink, class A/C,
// getxtime, ping
// ---------------------------------------------------------------------------

#[tokio::test]
async fn full_flow_plain_eu868() {
    let (l, addr) = listener().await;
    let port = addr.port();
    let mut st = station(addr);
    // many frames in a few seconds: the EU868 duty cycle is tested separately
    st.duty_cycle = false;
    let tc_uri = format!("ws://localhost:{port}");
    let st2 = st.clone();
    let disc = tokio::spawn(async move { st2.discover(&tc_uri).await });

    // --- discovery
    let (tcp, _) = l.accept().await.unwrap();
    let mut srv = accept_ws(tcp).await;
    assert_eq!(
        srv.request,
        expected_request("/router-info", &format!("localhost:{port}"), "")
    );
    let q = srv.recv_text(T).await;
    assert_eq!(q, r#"{"router":"b827:ebff:fe61:51a8"}"#);
    let traffic = format!("ws://localhost:{port}/traffic/b827ebfffe6151a8");
    srv.send_json(&json!({"router":"b827:ebff:fe61:51a8","muxs":"muxs-::0","uri":traffic}))
        .await;
    match srv.recv(T).await {
        Some(Message::Close(Some(cf))) => assert_eq!(cf.code, CloseCode::Normal),
        other => panic!("expected close 1000, got {other:?}"),
    }
    let ans = disc.await.unwrap().unwrap();
    assert_eq!(ans.uri, traffic);
    assert_eq!(ans.muxs.as_deref(), Some("muxs-::0"));
    assert!(ans.close_acknowledged);

    // --- traffic
    let st2 = st.clone();
    let turi = ans.uri.clone();
    let conn = tokio::spawn(async move { st2.connect(&turi).await });
    let (tcp, _) = l.accept().await.unwrap();
    let mut srv = accept_ws(tcp).await;
    assert_eq!(
        srv.request,
        expected_request(
            "/traffic/b827ebfffe6151a8",
            &format!("localhost:{port}"),
            ""
        )
    );
    let version = srv.recv_text(T).await;
    assert_eq!(
        version,
        r#"{"msgtype":"version","station":"2.0.6(linux/std)","firmware":"1.0.0","package":"1.0.0","model":"linux","protocol":2,"features":"rmtsh"}"#
    );
    let mut sess = conn.await.unwrap().unwrap();
    let mux = unix_now() - 3600.0; // a server clock 1 h behind: station follows it
    srv.send_text(&eu868_config(mux)).await;
    let rc = sess.recv_router_config(T).await.unwrap();
    assert_eq!(rc.region, Some("EU868"));
    assert!(rc.downlinks_enabled);
    assert_eq!(rc.freq_range, (863_000_000, 870_000_000));
    assert!(rc.drs[7].is_fsk() && !rc.drs[8].is_defined());
    assert_eq!(
        rc.drs[6],
        DrDef {
            sf: 7,
            bw: 250,
            dnonly: false
        }
    );
    assert_eq!(rc.raw["sx1301_conf"][0]["chan_FSK"]["datarate"], 50000);
    assert!(rc.problems.is_empty(), "{:?}", rc.problems);
    assert_eq!(rc.tx_power(869_525_000), 27.0);
    assert_eq!(rc.tx_power(868_100_000), 16.0);
    let session_id = sess.radio_session().unwrap();
    assert_ne!(session_id, 0);

    // --- uplinks (§4)
    let up = sess
        .send_updf(
            &Updf {
                mhdr: 0x40,
                dev_addr: 0xFFFF_FFFE,
                fctrl: 0x01,
                fcnt: 7,
                fopts: vec![0x02],
                fport: Some(10),
                frm_payload: vec![0xAB, 0xCD],
                mic: 0x8000_0000,
            },
            &RadioMeta::default(),
        )
        .await
        .unwrap();
    let (text, v) = srv.recv_json(T).await;
    assert_eq!(text, up.json);
    assert_eq!(
        key_order(&text),
        [
            "msgtype",
            "MHdr",
            "DevAddr",
            "FCtrl",
            "FCnt",
            "FOpts",
            "FPort",
            "FRMPayload",
            "MIC",
            "RefTime",
            "DR",
            "Freq",
            "upinfo"
        ]
    );
    assert_eq!(v["msgtype"], "updf");
    assert_eq!(v["MHdr"], 64);
    assert_eq!(v["DevAddr"], -2);
    assert_eq!(v["FCtrl"], 1);
    assert_eq!(v["FCnt"], 7);
    assert_eq!(v["FOpts"], "02");
    assert_eq!(v["FPort"], 10);
    assert_eq!(v["FRMPayload"], "ABCD");
    assert_eq!(v["MIC"], i64::from(i32::MIN));
    assert_eq!(v["DR"], 5);
    assert_eq!(v["Freq"], 868_100_000);
    let rt = v["RefTime"].as_f64().unwrap();
    assert!((rt - mux).abs() < 2.0, "RefTime {rt} vs MuxTime {mux}");
    let ui = &v["upinfo"];
    assert_eq!(
        key_order(&ui.to_string()).len(),
        7,
        "upinfo has rctx,xtime,gpstime,fts,rssi,snr,rxtime"
    );
    let uitext = &text[text.find("\"upinfo\":").unwrap() + 9..text.len() - 1];
    assert_eq!(
        key_order(uitext),
        ["rctx", "xtime", "gpstime", "fts", "rssi", "snr", "rxtime"]
    );
    assert_eq!(ui["rctx"], 0);
    let upx = ui["xtime"].as_i64().unwrap();
    assert_eq!(upx, up.xtime);
    assert_eq!(xtime_session(upx), session_id);
    assert_eq!(upx >> 56, 0);
    assert_eq!(ui["gpstime"], 0);
    assert_eq!(ui["fts"], -1);
    assert_eq!(ui["rssi"], -57);
    assert_eq!(ui["snr"], 9.25);
    let rx = ui["rxtime"].as_f64().unwrap();
    assert!(
        (rx - mux).abs() < 2.0,
        "rxtime follows MuxTime: {rx} vs {mux}"
    );

    // FPort absent → -1, empty FOpts/FRMPayload
    sess.send_updf(
        &Updf {
            fport: None,
            frm_payload: vec![],
            ..Updf::default()
        },
        &RadioMeta::default(),
    )
    .await
    .unwrap();
    let (_, v2) = srv.recv_json(T).await;
    assert_eq!(v2["FPort"], -1);
    assert_eq!(v2["FOpts"], "");
    assert_eq!(v2["FRMPayload"], "");

    // --- class A (spec §5.2) with xtime/rctx copied from the uplink
    let sent_a = Instant::now();
    let mut a = json!({"msgtype":"dnmsg","DevEui":"00-11-22-33-44-55-66-77","dC":0,"diid":4711,
        "pdu":"6012345678A0010001AABBCCDD","RxDelay":1,"RX1DR":5,"RX1Freq":868100000,
        "RX2DR":0,"RX2Freq":869525000,"priority":0,"xtime":0,"rctx":0,"MuxTime":1732443301.512});
    a["xtime"] = json!(upx);
    srv.send_json(&a).await;
    let (dtext, d) = srv.recv_json(T).await;
    let waited = sent_a.elapsed();
    assert_eq!(
        key_order(&dtext),
        [
            "msgtype", "seqno", "diid", "DR", "Freq", "DevEui", "rctx", "xtime", "txtime",
            "gpstime"
        ]
    );
    assert_eq!(d["msgtype"], "dntxed");
    assert_eq!(d["seqno"], 4711);
    assert_eq!(d["diid"], 4711);
    assert_eq!(d["DR"], 5);
    assert_eq!(d["Freq"], 868_100_000);
    assert_eq!(d["DevEui"], "00-11-22-33-44-55-66-77");
    assert_eq!(d["rctx"], 0);
    assert_eq!(d["xtime"].as_i64().unwrap(), upx + 1_000_000);
    assert!(d["txtime"].is_f64());
    assert_eq!(d["gpstime"], 0);
    assert!(
        waited > Duration::from_millis(500),
        "RX1 is 1 s after the uplink ({waited:?})"
    );

    // --- class C immediate (spec §5.3)
    let sent_c = Instant::now();
    srv.send_json(&dnmsg_classc(90001, "00-00-00-00-00-00-F0-01", &pdu(10)))
        .await;
    let (_, d) = srv.recv_json(T).await;
    assert!(sent_c.elapsed() < Duration::from_millis(500));
    assert_eq!(d["diid"], 90001);
    assert_eq!(d["DR"], 0);
    assert_eq!(d["Freq"], 869_525_000);
    assert_eq!(d["DevEui"], "00-00-00-00-00-00-F0-01");
    assert_eq!(xtime_session(d["xtime"].as_i64().unwrap()), session_id);

    // --- getxtime (§6.3)
    srv.send_text(r#"{"msgtype":"getxtime","MuxTime":1732443310.0}"#)
        .await;
    let (gtext, g) = srv.recv_json(T).await;
    assert_eq!(
        key_order(&gtext),
        ["msgtype", "MuxTime", "ustime", "UTCtime", "xtimes"]
    );
    assert_eq!(g["msgtype"], "getxtime");
    assert_eq!(g["MuxTime"].as_f64().unwrap(), 1732443310.0);
    assert!(g["ustime"].as_f64().unwrap() > 0.0);
    assert!(
        (g["UTCtime"].as_f64().unwrap() - mux).abs() < 5.0,
        "UTCtime from router_config's MuxTime"
    );
    let xt = g["xtimes"].as_array().unwrap();
    assert_eq!(xt.len(), 4);
    assert_eq!(&xt[1..], &[json!(0), json!(0), json!(0)]);
    let x0 = xt[0].as_i64().unwrap();
    assert_eq!(x0 >> 48, upx >> 48);
    assert!(x0 > upx + 1_000_000);

    // --- class C at an exact time (DR+Freq → RxDelay 0), after 90001 ended
    let target = x0 + 1_500_000;
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-00-00-00-00-00-F0-01","dC":2,"diid":90002,
        "pdu":pdu(10),"DR":5,"Freq":869525000,"xtime":target,"rctx":0}),
    )
    .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(d["diid"], 90002);
    assert_eq!(d["xtime"].as_i64().unwrap(), target);

    // --- ping → pong
    srv.send(Message::Ping(b"keepalive".to_vec().into())).await;
    match srv.recv(T).await {
        Some(Message::Pong(p)) => assert_eq!(&p[..], b"keepalive"),
        other => panic!("expected pong, got {other:?}"),
    }

    // --- DevEui 0: sent, but no dntxed
    let mut z = dnmsg_classc(90003, "00-00-00-00-00-00-00-00", &pdu(5));
    z["RX2DR"] = json!(3);
    z["RX2Freq"] = json!(868_500_000);
    srv.send_json(&z).await;
    srv.expect_silence(Duration::from_millis(300)).await;

    // --- what the simulator recorded
    let mut seen = Vec::new();
    while let Ok(m) = sess.next_message(Duration::from_millis(200)).await {
        seen.push(m.msgtype());
        if let ServerMessage::Dnmsg { outcome, .. } = &m {
            assert!(outcome.scheduled().is_some(), "{outcome:?}");
        }
    }
    assert_eq!(seen, ["dnmsg", "dnmsg", "getxtime", "dnmsg", "dnmsg"]);
    let dl = sess.downlinks();
    assert_eq!(dl.len(), 4);
    assert_eq!(dl[0].slot, TxSlot::Rx1);
    assert_eq!(dl[0].tx_xtime, upx + 1_000_000);
    assert_eq!(dl[1].slot, TxSlot::ClassCAsap);
    assert_eq!(dl[1].txpow_dbm, 27.0);
    assert_eq!(dl[2].tx_xtime, target);
    assert!(dl.iter().all(|d| d.transmitted));
    assert!(dl[3].dntxed.is_none());
    assert_eq!(sess.pings_received(), 1);

    // --- station closes with 1000
    sess.close().await.unwrap();
    match srv.recv(T).await {
        Some(Message::Close(Some(cf))) => assert_eq!(cf.code, CloseCode::Normal),
        other => panic!("expected close 1000, got {other:?}"),
    }
}

#[tokio::test]
async fn us915_config_accepted_and_downlinks() {
    let (mut srv, mut sess, rc) = connected(LnsStation::new(EUI), &us915_config(unix_now())).await;
    let rc = rc.unwrap();
    assert_eq!(rc.region, Some("US915"));
    assert!(rc.downlinks_enabled);
    assert!(rc.drs[8].dnonly && rc.drs[8].sf == 12 && rc.drs[8].bw == 500);
    assert_eq!(rc.tx_power(923_300_000), 26.0);
    // uplink on 903.9 MHz SF10/125 = DR0
    let up = sess
        .send_updf(
            &Updf::default(),
            &RadioMeta {
                dr: 0,
                freq: 903_900_000,
                ..RadioMeta::default()
            },
        )
        .await
        .unwrap();
    let (_, v) = srv.recv_json(T).await;
    assert_eq!(v["DR"], 0);
    // downlink-only DR as uplink: station drops it
    let e = sess
        .send_updf(
            &Updf::default(),
            &RadioMeta {
                dr: 8,
                freq: 903_900_000,
                ..RadioMeta::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LnsError::Dropped(_)), "{e:?}");
    // class A RX1 DR10 on 923.3
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-11-22-33-44-55-66-77","dC":0,"diid":1,
        "pdu":pdu(13),"RxDelay":1,"RX1DR":10,"RX1Freq":923300000,"RX2DR":8,"RX2Freq":923300000,
        "xtime":up.xtime,"rctx":0}),
    )
    .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(
        (d["DR"].as_i64(), d["Freq"].as_i64()),
        (Some(10), Some(923_300_000))
    );
    assert_eq!(d["xtime"].as_i64().unwrap(), up.xtime + 1_000_000);
    // class C immediate DR8 923.3
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-00-00-00-00-00-F0-01","dC":2,"diid":2,
        "pdu":pdu(30),"RxDelay":1,"RX2DR":8,"RX2Freq":923300000,"priority":0,"rctx":0}),
    )
    .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!((d["diid"].as_i64(), d["DR"].as_i64()), (Some(2), Some(8)));
    // frequency outside freq_range → dropped silently
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-00-00-00-00-00-F0-01","dC":2,"diid":3,
        "pdu":pdu(3),"RX2DR":8,"RX2Freq":869525000}),
    )
    .await;
    srv.expect_silence(Duration::from_millis(200)).await;
    let dr = sess.dropped();
    assert_eq!(dr.len(), 1);
    assert!(dr[0].reason.contains("freq_range"), "{dr:?}");
    sess.close().await.unwrap();
}

#[tokio::test]
async fn unknown_region_disables_downlinks() {
    let cfg = eu868_config(unix_now()).replace("\"EU868\"", "\"AS923\"");
    let (mut srv, mut sess, rc) = connected(LnsStation::new(EUI), &cfg).await;
    let rc = rc.unwrap();
    assert_eq!(rc.region_raw.as_deref(), Some("AS923"));
    assert_eq!(rc.region, None);
    assert!(!rc.downlinks_enabled);
    srv.send_json(&dnmsg_classc(5, "00-00-00-00-00-00-F0-01", &pdu(10)))
        .await;
    srv.expect_silence(Duration::from_millis(500)).await;
    let m = sess.next_message(T).await.unwrap();
    match m {
        ServerMessage::Dnmsg {
            outcome: DnOutcome::Dropped(r),
            ..
        } => assert!(r.contains("region"), "{r}"),
        other => panic!("{other:?}"),
    }
    assert!(sess.downlinks().is_empty());
    // aliases are recognised
    assert_eq!(canonical_region("EU863"), Some("EU868"));
    assert_eq!(canonical_region("AS923JP"), Some("AS923-1"));
    assert_eq!(canonical_region("IN865"), None);
}

#[tokio::test]
async fn dnmsg_before_router_config_is_dropped() {
    let (l, addr) = listener().await;
    let uri = format!("ws://localhost:{}/t/1", addr.port());
    let st = station(addr);
    let conn = tokio::spawn(async move { st.connect(&uri).await });
    let (tcp, _) = l.accept().await.unwrap();
    let mut srv = accept_ws(tcp).await;
    srv.recv_text(T).await;
    let mut sess = conn.await.unwrap().unwrap();
    srv.send_json(&dnmsg_classc(1, "00-00-00-00-00-00-F0-01", &pdu(10)))
        .await;
    match sess.next_message(T).await.unwrap() {
        ServerMessage::Dnmsg {
            outcome: DnOutcome::Dropped(r),
            ..
        } => assert!(r.contains("router_config"), "{r}"),
        other => panic!("{other:?}"),
    }
    srv.expect_silence(Duration::from_millis(100)).await;
}

// ---------------------------------------------------------------------------
// router_config validation
// ---------------------------------------------------------------------------

fn modified(f: impl FnOnce(&mut Value)) -> String {
    let mut v = eu868_value();
    f(&mut v);
    v.to_string()
}

#[tokio::test]
async fn router_config_rejections_close_the_connection() {
    let cases: Vec<(&str, String)> = vec![
        (
            "illegal key",
            modified(|v| v["sx1301_conf"][0]["radio_0"]["foo"] = json!(1)),
        ),
        (
            "bandwidth",
            modified(|v| v["sx1301_conf"][0]["chan_FSK"]["bandwidth"] = json!(0)),
        ),
        (
            "IF offset",
            modified(|v| v["sx1301_conf"][0]["chan_multiSF_7"]["if"] = json!(450000)),
        ),
        (
            "IF offset",
            modified(|v| {
                v["sx1301_conf"][0]["chan_Lora_std"] = json!({"enable":true,"radio":1,"if":350000,"bandwidth":500000,"spread_factor":8})
            }),
        ),
        (
            "hwspec",
            modified(|v| v.as_object_mut().unwrap().retain(|k, _| k != "hwspec")),
        ),
        ("hwspec", modified(|v| v["hwspec"] = json!("sx1301/2"))),
        (
            "sx1301_conf",
            modified(|v| v.as_object_mut().unwrap().retain(|k, _| k != "sx1301_conf")),
        ),
        (
            "illegal key",
            modified(|v| v["sx1301_conf"][0]["chan_multiSF_0"]["bw"] = json!(125000)),
        ),
    ];
    for (what, cfg) in cases {
        let (mut srv, sess, rc) = connected(LnsStation::new(EUI), &cfg).await;
        let e = rc.unwrap_err();
        assert!(
            matches!(&e, LnsError::Protocol(m) if m.contains("rejected") && m.contains(what)),
            "{what}: {e:?}"
        );
        match srv.recv(T).await {
            Some(Message::Close(Some(cf))) => assert_eq!(cf.code, CloseCode::Normal, "{what}"),
            other => panic!("{what}: expected close 1000, got {other:?}"),
        }
        drop(sess);
    }
}

#[tokio::test]
async fn router_config_value_error_is_ignored_and_problems_reported() {
    // value error: message ignored, connection kept
    let bad = modified(|v| v["freq_range"] = json!("863-870"));
    let (mut srv, mut sess, rc) = connected(LnsStation::new(EUI), &bad).await;
    assert!(
        matches!(rc, Err(LnsError::Protocol(ref m)) if m.contains("ignored")),
        "{rc:?}"
    );
    assert!(sess.router_config().is_none());
    // missing MuxTime: station accepts it, the strict simulator complains
    srv.send_text(&modified(|v| {
        v.as_object_mut().unwrap().retain(|k, _| k != "MuxTime")
    }))
    .await;
    let e = sess.recv_router_config(T).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Protocol(m) if m.contains("MuxTime")),
        "{e:?}"
    );
    assert!(sess.router_config().is_some(), "station applied it anyway");
    // hardware-specific fields and short DRs are problems too
    srv.send_text(&modified(|v| {
        v["sx1301_conf"][0]["radio_0"]["type"] = json!("SX1257");
        v["DRs"].as_array_mut().unwrap().truncate(8);
    }))
    .await;
    let e = sess.recv_router_config(T).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Protocol(m) if m.contains("type") && m.contains("8 entries")),
        "{e:?}"
    );
    // a clean one again, new radio session each time
    let s1 = sess.radio_session();
    srv.send_text(&eu868_config(unix_now())).await;
    sess.recv_router_config(T).await.unwrap();
    assert_ne!(sess.radio_session(), s1);
}

// ---------------------------------------------------------------------------
// Downlink rules
// ---------------------------------------------------------------------------

#[tokio::test]
async fn class_a_falls_back_to_rx2_and_old_session_xtime_is_dropped() {
    let (mut srv, sess, rc) = connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
    rc.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let now = sess.xtime_now().unwrap();
    // uplink "1.5 s ago": RX1 is past, RX2 (xtime + 2 s) is 0.5 s ahead
    let x = now - 1_500_000;
    srv.send_json(&json!({"msgtype":"dnmsg","DevEui":"00-11-22-33-44-55-66-77","dC":0,"diid":7,
        "pdu":pdu(12),"RxDelay":0,"RX1DR":5,"RX1Freq":868100000,"RX2DR":0,"RX2Freq":869525000,"xtime":x}))
        .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(d["DR"], 0);
    assert_eq!(d["Freq"], 869_525_000);
    assert_eq!(
        d["xtime"].as_i64().unwrap(),
        x + 2_000_000,
        "RxDelay 0 counts as 1"
    );
    assert_eq!(sess.downlinks()[0].slot, TxSlot::Rx2);
    // another session id → time conversion problem → dropped
    let other = (x & !(0xFF << 48)) | (i64::from(sess.radio_session().unwrap() ^ 0x5A) << 48);
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-11-22-33-44-55-66-77","dC":0,"diid":8,
        "pdu":pdu(12),"RxDelay":1,"RX1DR":5,"RX1Freq":868100000,"xtime":other + 1_500_000}),
    )
    .await;
    srv.expect_silence(Duration::from_millis(300)).await;
    let e = sess.wait_transmitted(8, T).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Dropped(r) if r.contains("time conversion")),
        "{e:?}"
    );
    // class C with RX1 but no xtime → dropped
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-00-00-00-00-00-F0-01","dC":2,"diid":9,
        "pdu":pdu(12),"RX1DR":5,"RX1Freq":868100000}),
    )
    .await;
    let e = sess.wait_transmitted(9, T).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Dropped(r) if r.contains("xtime=0")),
        "{e:?}"
    );
    // validation failures
    for (diid, bad) in [
        (
            10,
            json!({"msgtype":"dnmsg","dC":2,"diid":10,"pdu":"00","RX2DR":0,"RX2Freq":869525000}),
        ),
        (
            11,
            json!({"msgtype":"dnmsg","DevEui":1,"dC":3,"diid":11,"pdu":"00","RX2DR":0,"RX2Freq":869525000}),
        ),
        (
            12,
            json!({"msgtype":"dnmsg","DevEui":1,"dC":2,"diid":12,"pdu":pdu(256),"RX2DR":0,"RX2Freq":869525000}),
        ),
        (
            13,
            json!({"msgtype":"dnmsg","DevEui":1,"dC":2,"diid":13,"pdu":"00","RX2DR":8,"RX2Freq":869525000}),
        ),
        (
            14,
            json!({"msgtype":"dnmsg","DevEui":1,"dC":2,"diid":14,"pdu":"00","RX2DR":0}),
        ),
    ] {
        srv.send_json(&bad).await;
        let e = sess.wait_transmitted(diid, T).await.unwrap_err();
        assert!(matches!(e, LnsError::Dropped(_)), "{diid}: {e:?}");
    }
    srv.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn eu868_duty_cycle_drops_back_to_back_class_c() {
    let (mut srv, sess, rc) = connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
    rc.unwrap();
    // 27-byte SF12 frame: 1.483 s airtime → band busy ~14.8 s
    srv.send_json(&dnmsg_classc(1, "00-00-00-00-00-00-F0-01", &pdu(27)))
        .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(d["diid"], 1);
    srv.send_json(&dnmsg_classc(2, "00-00-00-00-00-00-F0-02", &pdu(27)))
        .await;
    let e = sess.wait_transmitted(2, T).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Dropped(r) if r.contains("unable to place")),
        "{e:?}"
    );
    // a short frame on another band still goes (after backing off while the
    // first one is on air: 1.48 s, class C backs off at most 10 × 100 ms)
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut other = dnmsg_classc(3, "00-00-00-00-00-00-F0-03", &pdu(10));
    other["RX2DR"] = json!(5);
    other["RX2Freq"] = json!(868_300_000);
    srv.send_json(&other).await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(d["diid"], 3);
    let dl = sess.wait_transmitted(3, T).await.unwrap();
    assert!(dl.backoffs > 0, "waited for the first frame to end");
}

#[tokio::test]
async fn auto_dntxed_off_and_dead_peer() {
    let (mut srv, mut sess, rc) = connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
    rc.unwrap();
    sess.set_auto_dntxed(false);
    srv.send_json(&dnmsg_classc(1, "00-00-00-00-00-00-F0-01", &pdu(5)))
        .await;
    srv.expect_silence(Duration::from_millis(300)).await;
    assert!(sess.wait_transmitted(1, T).await.unwrap().dntxed.is_none());
    sess.stop_answering_pings();
    srv.send(Message::Ping(b"a".to_vec().into())).await;
    srv.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(sess.pings_received(), 1);
    sess.resume_answering_pings();
    srv.send(Message::Ping(b"b".to_vec().into())).await;
    assert!(matches!(srv.recv(T).await, Some(Message::Pong(_))));
    // server closes: station answers, session reports the code
    srv.send(Message::Close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    })))
    .await;
    let _ = sess.next_message(T).await; // dnmsg event
    let e = sess.next_message(T).await.unwrap_err();
    assert_eq!(
        e,
        LnsError::Closed {
            code: Some(1001),
            reason: "bye".into()
        }
    );
    assert!(matches!(srv.recv(T).await, Some(Message::Close(_)) | None));
}

#[tokio::test]
async fn abort_drops_tcp_without_close_frame() {
    let (mut srv, mut sess, rc) = connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
    rc.unwrap();
    sess.abort().await;
    assert_eq!(srv.recv(T).await, None, "EOF, no close frame");
    assert!(sess.is_closed());
    assert!(sess.send_text("{}").await.is_err());
}

#[tokio::test]
async fn illegal_frames_from_server_drop_the_connection() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("FIN", vec![0x01, 0x02, b'{', b'}']),
        ("RSV", vec![0xC1, 0x02, b'{', b'}']),
        ("masked", vec![0x81, 0x82, 1, 2, 3, 4, b'{' ^ 1, b'}' ^ 2]),
        ("64-bit", {
            let mut f = vec![0x81, 127];
            f.extend_from_slice(&2u64.to_be_bytes());
            f.extend_from_slice(b"{}");
            f
        }),
        ("receive buffer", {
            let mut f = vec![0x81, 126];
            f.extend_from_slice(&41_000u16.to_be_bytes());
            f.extend(std::iter::repeat_n(b' ', 41_000));
            f
        }),
    ];
    for (what, raw) in cases {
        let (mut srv, mut sess, rc) =
            connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
        rc.unwrap();
        srv.write_raw(&raw).await;
        let e = sess.next_message(T).await.unwrap_err();
        assert!(
            matches!(&e, LnsError::Protocol(m) if m.contains("Illegal WS frame") && m.contains(what)),
            "{what}: {e:?}"
        );
        assert_eq!(
            srv.recv(T).await,
            None,
            "{what}: station drops the connection"
        );
    }
    // a 16-bit length frame within the buffer is fine
    let (mut srv, mut sess, rc) = connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
    rc.unwrap();
    let big = format!(r#"{{"msgtype":"error","error":"{}"}}"#, "x".repeat(30_000));
    srv.send_text(&big).await;
    assert!(
        matches!(sess.next_message(T).await.unwrap(), ServerMessage::Error(e) if e.len() == 30_000)
    );
}

#[tokio::test]
async fn timesync_push_request_and_class_b() {
    let mut st = LnsStation::new(EUI);
    st.pps = true;
    let (mut srv, mut sess, rc) = connected(st, &eu868_config(unix_now())).await;
    rc.unwrap();
    // PPS gateway request → server reply
    let tx = sess.send_timesync_request().await.unwrap();
    let (text, v) = srv.recv_json(T).await;
    assert_eq!(text, format!(r#"{{"msgtype":"timesync","txtime":{tx}}}"#));
    let gps_now: i64 = 1_416_478_510_000_000;
    srv.send_json(
        &json!({"msgtype":"timesync","txtime":v["txtime"],"gpstime":gps_now,"MuxTime":unix_now()}),
    )
    .await;
    match sess.next_message(T).await.unwrap() {
        ServerMessage::Timesync(t) => assert!(t.gps_mapping.is_some(), "{t:?}"),
        other => panic!("{other:?}"),
    }
    // server push overrides it
    let x = sess.xtime_now().unwrap();
    srv.send_json(&json!({"msgtype":"timesync","xtime":x,"gpstime":gps_now}))
        .await;
    match sess.next_message(T).await.unwrap() {
        ServerMessage::Timesync(t) => assert_eq!(t.gps_mapping, Some((x, gps_now))),
        other => panic!("{other:?}"),
    }
    // uplinks of a PPS gateway carry gpstime
    let up = sess
        .send_updf(&Updf::default(), &RadioMeta::default())
        .await
        .unwrap();
    let (_, u) = srv.recv_json(T).await;
    assert_eq!(
        u["upinfo"]["gpstime"].as_i64().unwrap(),
        gps_now + (up.xtime - x)
    );
    // class B at gps_now + 0.8 s
    let g = gps_now + 800_000;
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-00-00-00-00-00-00-01","dC":1,"diid":77,
        "pdu":pdu(10),"RX1DR":3,"RX1Freq":869525000,"gpstime":g,"rctx":0}),
    )
    .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(d["gpstime"].as_i64().unwrap(), g);
    assert_eq!(d["xtime"].as_i64().unwrap(), x + 800_000);
    // dnsched with xtime: sent, never reported
    let x2 = sess.xtime_now().unwrap() + 200_000;
    srv.send_json(
        &json!({"msgtype":"dnsched","MuxTime":unix_now(),"schedule":[
        {"DR":3,"Freq":868100000,"xtime":x2,"pdu":pdu(5),"diid":5001},
        {"DR":3,"Freq":868100000,"pdu":pdu(5)}]}),
    )
    .await;
    srv.expect_silence(Duration::from_millis(500)).await;
    let dl = sess.wait_transmitted(5001, T).await.unwrap();
    assert_eq!((dl.slot, dl.tx_xtime), (TxSlot::DnSched, x2));
    assert_eq!(sess.dropped().len(), 1, "entry without a time is skipped");
}

#[tokio::test]
async fn class_b_without_gps_time_is_dropped() {
    let (mut srv, sess, rc) = connected(LnsStation::new(EUI), &eu868_config(unix_now())).await;
    rc.unwrap();
    srv.send_json(
        &json!({"msgtype":"dnmsg","DevEui":"00-00-00-00-00-00-00-01","dC":1,"diid":1,
        "pdu":pdu(10),"DR":3,"Freq":869525000,"gpstime":1_416_478_510_000_000i64}),
    )
    .await;
    let e = sess.wait_transmitted(1, T).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Dropped(r) if r.contains("PPS")),
        "{e:?}"
    );
}

#[tokio::test]
async fn jreq_propdf_phy_and_filters() {
    let cfg = modified(|v| {
        v["NetID"] = json!([0x13]);
        v["JoinEUI"] = json!([[1, 100]]);
        v.as_object_mut().unwrap().remove("JoinEui");
    });
    let (mut srv, sess, rc) = connected(LnsStation::new(EUI), &cfg).await;
    let rc = rc.unwrap();
    assert!(rc.eui_caps);
    // jreq from a PHYPayload: 23 bytes, little-endian EUIs
    let mut phy = vec![0x00];
    phy.extend_from_slice(&5u64.to_le_bytes());
    phy.extend_from_slice(&0x0011_2233_4455_6677u64.to_le_bytes());
    phy.extend_from_slice(&0x0102u16.to_le_bytes());
    phy.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    sess.send_phy(&phy, &RadioMeta::default()).await.unwrap();
    let (text, v) = srv.recv_json(T).await;
    assert_eq!(
        &key_order(&text)[..6],
        ["msgtype", "MHdr", "JoinEUI", "DevEUI", "DevNonce", "MIC"]
    );
    assert_eq!(v["JoinEUI"], "00-00-00-00-00-00-00-05");
    assert_eq!(v["DevEUI"], "00-11-22-33-44-55-66-77");
    assert_eq!(v["DevNonce"], 0x0102);
    assert_eq!(v["MIC"], -1);
    // JoinEUI outside the filter
    let e = sess
        .send_jreq(
            &Jreq {
                join_eui: 101,
                ..Jreq::default()
            },
            &RadioMeta::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, LnsError::Dropped(_)));
    // updf: NetID 0x13 → DevAddr top 7 bits
    let ok = Updf {
        dev_addr: (0x13 << 25) | 5,
        ..Updf::default()
    };
    sess.send_updf(&ok, &RadioMeta::default()).await.unwrap();
    let (_, v) = srv.recv_json(T).await;
    assert_eq!(v["DevAddr"], (0x13 << 25) | 5);
    let e = sess
        .send_updf(&Updf::default(), &RadioMeta::default())
        .await
        .unwrap_err();
    assert!(matches!(e, LnsError::Dropped(_)));
    // data frame from a PHYPayload: FOpts, FPort, payload
    let mut phy = vec![0x80];
    phy.extend_from_slice(&((0x13u32 << 25) | 9).to_le_bytes());
    phy.push(0x02);
    phy.extend_from_slice(&300u16.to_le_bytes());
    phy.extend_from_slice(&[0x03, 0x04, 42, 0xDE, 0xAD]);
    phy.extend_from_slice(&1u32.to_le_bytes());
    sess.send_phy(&phy, &RadioMeta::default()).await.unwrap();
    let (_, v) = srv.recv_json(T).await;
    assert_eq!(
        (
            v["MHdr"].as_i64(),
            v["FCnt"].as_i64(),
            v["FOpts"].as_str(),
            v["FPort"].as_i64(),
            v["FRMPayload"].as_str()
        ),
        (Some(0x80), Some(300), Some("0304"), Some(42), Some("DEAD"))
    );
    // proprietary
    sess.send_propdf(&[0xE0, 1, 2], &RadioMeta::default())
        .await
        .unwrap();
    let (_, v) = srv.recv_json(T).await;
    assert_eq!(
        (v["msgtype"].as_str(), v["FRMPayload"].as_str()),
        (Some("propdf"), Some("E00102"))
    );
    // class C with DevEUI spelling in dntxed
    srv.send_json(&dnmsg_classc(1, "0000000000000001", &pdu(3)))
        .await;
    let (_, d) = srv.recv_json(T).await;
    assert_eq!(d["DevEUI"], "00-00-00-00-00-00-00-01");
}

// ---------------------------------------------------------------------------
// Discovery failures
// ---------------------------------------------------------------------------

async fn discovery_with(
    answer: Option<&str>,
    status: Option<u16>,
) -> Result<DiscoveryAnswer, LnsError> {
    let (l, addr) = listener().await;
    let st = station(addr);
    let uri = format!("ws://localhost:{}", addr.port());
    let d = tokio::spawn(async move { st.discover(&uri).await });
    let (mut tcp, _) = l.accept().await.unwrap();
    if let Some(s) = status {
        read_request(&mut tcp).await;
        tcp.write_all(format!("HTTP/1.1 {s} Nope\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        return d.await.unwrap();
    }
    let mut srv = accept_ws(tcp).await;
    srv.recv_text(T).await;
    srv.send_text(answer.unwrap()).await;
    let _ = srv.recv(Duration::from_secs(1)).await;
    d.await.unwrap()
}

#[tokio::test]
async fn discovery_errors() {
    let e = discovery_with(
        Some(r#"{"router":"b827:ebff:fe61:51a8","error":"Router not provisioned"}"#),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e, LnsError::Rejected("Router not provisioned".into()));
    let e = discovery_with(Some(r#"{"router":"b827:ebff:fe61:51a8"}"#), None)
        .await
        .unwrap_err();
    assert!(matches!(e, LnsError::Rejected(_)), "{e:?}");
    for bad in [
        r#"{"uri":"ws://h/traffic"}"#,
        r#"{"uri":"wss://h:1"}"#,
        r#"{"uri":"http://h:1/x"}"#,
        "not json",
    ] {
        let e = discovery_with(Some(bad), None).await.unwrap_err();
        assert!(matches!(e, LnsError::Protocol(_)), "{bad}: {e:?}");
    }
    let long = format!(r#"{{"uri":"ws://h:1/{}"}}"#, "a".repeat(120));
    let e = discovery_with(Some(&long), None).await.unwrap_err();
    assert!(
        matches!(&e, LnsError::Protocol(m) if m.contains("127")),
        "{e:?}"
    );
    let ok127 = format!("ws://h:1/{}", "a".repeat(127 - 9));
    assert_eq!(ok127.len(), 127);
    let a = discovery_with(Some(&json!({"uri":ok127}).to_string()), None)
        .await
        .unwrap();
    assert_eq!(a.uri, ok127);
    let e = discovery_with(None, Some(404)).await.unwrap_err();
    assert_eq!(e, LnsError::Http(404));
    // tc.uri rules
    let st = LnsStation::new(EUI);
    assert!(matches!(
        st.discover("ws://h:1/path").await,
        Err(LnsError::BadUri(_))
    ));
    assert!(matches!(
        st.discover("ws://h").await,
        Err(LnsError::BadUri(_))
    ));
    assert!(
        matches!(st.discover("wss://h:1").await, Err(LnsError::Tls(_))),
        "wss needs tc.trust"
    );
}

// ---------------------------------------------------------------------------
// TLS with token headers (§7)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tls_token_on_both_requests() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = CertificateParams::new(vec!["lns.test".to_string()])
        .unwrap()
        .signed_by(&srv_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(srv_cert.der().to_vec())],
            PrivatePkcs8KeyDer::from(srv_key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (l, addr) = listener().await;
    let port = addr.port();
    let mut st = station(addr);
    st.trust = Some(ca.pem().into_bytes());
    st.auth = Auth::Token(b"Authorization: Bearer abc123\n".to_vec());
    let host = format!("lns.test:{port}");
    let st2 = st.clone();
    let run = tokio::spawn(async move {
        let (a, mut s) = st2
            .discover_and_connect(&format!("wss://lns.test:{port}"))
            .await?;
        let rc = s.recv_router_config(T).await?;
        Ok::<_, LnsError>((a, s, rc))
    });
    let token = "Authorization: Bearer abc123\r\n";
    // discovery
    let (tcp, _) = l.accept().await.unwrap();
    let tls = acceptor.accept(tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.server_name(), Some("lns.test"));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let mut srv = accept_ws(tls).await;
    assert_eq!(srv.request, expected_request("/router-info", &host, token));
    srv.recv_text(T).await;
    srv.send_json(&json!({"uri":format!("wss://lns.test:{port}/traffic/b827ebfffe6151a8")}))
        .await;
    let _ = srv.recv(Duration::from_secs(1)).await;
    // traffic
    let (tcp, _) = l.accept().await.unwrap();
    let tls = acceptor.accept(tcp).await.unwrap();
    let mut srv = accept_ws(tls).await;
    assert_eq!(
        srv.request,
        expected_request("/traffic/b827ebfffe6151a8", &host, token)
    );
    srv.recv_text(T).await;
    srv.send_text(&eu868_config(unix_now())).await;
    let (a, sess, rc) = run.await.unwrap().unwrap();
    assert_eq!(a.tls_version.as_deref(), Some("TLSv1_2"));
    assert_eq!(sess.tls_version.as_deref(), Some("TLSv1_2"));
    assert!(rc.downlinks_enabled);
    // over TLS the session works the same
    sess.send_updf(&Updf::default(), &RadioMeta::default())
        .await
        .unwrap();
    let (_, v) = srv.recv_json(T).await;
    assert_eq!(v["msgtype"], "updf");

    // plain ws: token lines are not sent
    let (l, addr) = listener().await;
    let mut st = station(addr);
    st.auth = Auth::Token(b"Authorization: Bearer abc123\n".to_vec());
    let uri = format!("ws://localhost:{}/t", addr.port());
    let c = tokio::spawn(async move { st.connect(&uri).await });
    let (tcp, _) = l.accept().await.unwrap();
    let srv = accept_ws(tcp).await;
    assert!(!srv.request.contains("Authorization"));
    drop(c);
}

// ---------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------

#[test]
fn airtime_matches_spec_examples() {
    // §5.7: SF12/125 with a 50-byte PHYPayload = 70.25 symbols ≈ 2.30 s
    assert_eq!(airtime_us(12, 125, 50, 8, false), 2_301_952);
    // 27-byte SF12 frame: 1.483 s
    assert_eq!(airtime_us(12, 125, 27, 8, false), 1_482_752);
    // 17 bytes: exact value 1 155 072 µs
    assert_eq!(airtime_us(12, 125, 17, 8, false), 1_155_072);
    // FSK 50 kbit/s: (len + 11) * 8 / 50000
    assert_eq!(airtime_us(0, 0, 39, 8, false), 8_000);
}

#[test]
fn xtime_eui_and_uri_helpers() {
    let x: i64 = (0x2A << 48) | 123_456;
    assert_eq!(xtime_session(x), 0x2A);
    assert_eq!(xtime_rctx(x), 0);
    assert_eq!(xtime_us(x), 123_456);
    assert_eq!(xtime_rctx((3 << 56) | x), 3);
    assert_eq!(eui_dashes(0x0011_2233_4455_6677), "00-11-22-33-44-55-66-77");
    assert_eq!(
        parse_eui(&json!("00-11-22-33-44-55-66-77")),
        Some(0x0011_2233_4455_6677)
    );
    assert_eq!(
        parse_eui(&json!("0011223344556677")),
        Some(0x0011_2233_4455_6677)
    );
    assert_eq!(parse_eui(&json!(1)), Some(1));
    assert_eq!(parse_eui(&json!("xyz")), None);
    let st = LnsStation::new(EUI);
    assert_eq!(st.router_id6(), "b827:ebff:fe61:51a8");
    let u = parse_traffic_uri("wss://[::1]:8887/traffic/x").unwrap();
    assert_eq!(
        (u.secure, u.host.as_str(), u.port, u.path.as_str()),
        (true, "[::1]", 8887, "/traffic/x")
    );
    assert!(parse_traffic_uri("ws://h:0/x").is_err());
    assert!(parse_tc_uri("ws://h:1").is_ok());
    let req = upgrade_request(&parse_tc_uri("ws://h:1").unwrap(), "/router-info", b"");
    assert_eq!(
        String::from_utf8(req).unwrap(),
        expected_request("/router-info", "h:1", "")
    );
    // station's frame: FIN+text, masked with 01 01 01 01
    let mut st = LnsStation::new(1);
    st.firmware = None;
    assert!(st
        .version_json()
        .contains(r#""firmware":null,"package":"1.0.0""#));
}
