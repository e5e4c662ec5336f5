//! The LNS face end to end over real WSS, against the station simulator in
//! tests/common/lns_station (written from the spec, sharing no code with the
//! server): discovery, router_config field by field, uplinks, class A/B/C
//! downlinks with their outcomes, time sync, connection state, and bad input.

mod common;

use std::time::Duration;

use common::lns_station::{Auth, LnsError, LnsStation, RadioMeta, ServerMessage, Updf};
use common::server::{TestServer, LNS_URI};
use serde_json::{json, Value};
use stationkeeper::eui::Eui;
use stationkeeper::lns::downlink::{Downlink, DownlinkError, Outcome, Timing};
use stationkeeper::lns::msg::Frame;

const EUI: u64 = 0xb827_ebff_fe61_51a8;
const T: Duration = Duration::from_secs(10);

async fn gateway(srv: &TestServer, eui: u64, region: Value) -> (String, LnsStation) {
    srv.lns_gateway(eui, region).await
}

fn eu868() -> Value {
    json!({"RfRegion": "EU868"})
}

/// The spec's EU868 router_config (lns-protocol.md §3.4).
const EU868_SPEC: &str = r#"{"msgtype":"router_config","region":"EU868","hwspec":"sx1301/1","freq_range":[863000000,870000000],
 "DRs":[[12,125,0],[11,125,0],[10,125,0],[9,125,0],[8,125,0],[7,125,0],[7,250,0],[0,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0],[-1,0,0]],
 "NetID":null,"JoinEui":null,
 "sx1301_conf":[{"radio_0":{"enable":true,"freq":867500000},"radio_1":{"enable":true,"freq":868500000},
   "chan_multiSF_0":{"enable":true,"radio":1,"if":-400000},"chan_multiSF_1":{"enable":true,"radio":1,"if":-200000},
   "chan_multiSF_2":{"enable":true,"radio":1,"if":0},"chan_multiSF_3":{"enable":true,"radio":0,"if":-400000},
   "chan_multiSF_4":{"enable":true,"radio":0,"if":-200000},"chan_multiSF_5":{"enable":true,"radio":0,"if":0},
   "chan_multiSF_6":{"enable":true,"radio":0,"if":200000},"chan_multiSF_7":{"enable":true,"radio":0,"if":400000},
   "chan_Lora_std":{"enable":true,"radio":1,"if":-200000,"bandwidth":250000,"spread_factor":7},
   "chan_FSK":{"enable":true,"radio":1,"if":300000,"datarate":50000}}],
 "MuxTime":0}"#;

/// The spec's US915 sub-band 2 router_config (§3.5).
const US915_SPEC: &str = r#"{"msgtype":"router_config","region":"US915","hwspec":"sx1301/1","freq_range":[902000000,928000000],
 "DRs":[[10,125,0],[9,125,0],[8,125,0],[7,125,0],[8,500,0],[-1,0,0],[-1,0,0],[-1,0,0],[12,500,1],[11,500,1],[10,500,1],[9,500,1],[8,500,1],[7,500,1],[-1,0,0],[-1,0,0]],
 "NetID":null,"JoinEui":null,
 "sx1301_conf":[{"radio_0":{"enable":true,"freq":904300000},"radio_1":{"enable":true,"freq":905000000},
   "chan_multiSF_0":{"enable":true,"radio":0,"if":-400000},"chan_multiSF_1":{"enable":true,"radio":0,"if":-200000},
   "chan_multiSF_2":{"enable":true,"radio":0,"if":0},"chan_multiSF_3":{"enable":true,"radio":0,"if":200000},
   "chan_multiSF_4":{"enable":true,"radio":1,"if":-300000},"chan_multiSF_5":{"enable":true,"radio":1,"if":-100000},
   "chan_multiSF_6":{"enable":true,"radio":1,"if":100000},"chan_multiSF_7":{"enable":true,"radio":1,"if":300000},
   "chan_Lora_std":{"enable":true,"radio":0,"if":300000,"bandwidth":500000,"spread_factor":8},
   "chan_FSK":{"enable":false}}],
 "MuxTime":0}"#;

/// Compares a router_config with the spec's, field by field, MuxTime apart
/// (which must be the server's current time).
fn assert_router_config(got: &Value, spec: &str) {
    let mut want: Value = serde_json::from_str(spec).unwrap();
    let mut got = got.clone();
    let mux = got["MuxTime"].as_f64().expect("MuxTime");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - mux).abs() < 30.0,
        "MuxTime {mux} is the server's clock ({now})"
    );
    got["MuxTime"] = json!(0);
    want["MuxTime"] = json!(0);
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&got[k], v, "router_config field {k}");
    }
    assert_eq!(
        got.as_object().unwrap().len(),
        want.as_object().unwrap().len(),
        "no extra fields: {got}"
    );
}

#[tokio::test]
async fn discovery_router_config_uplink_and_connection_state() {
    // The device face off, so this test reads the LNS uplink queue itself.
    let srv = TestServer::start_with(|c| c.lorawan.enabled = false).await;
    let (id, st) = gateway(&srv, EUI, eu868()).await;
    let mut uplinks = srv.running.app.lns.take_uplinks().unwrap();

    let (disc, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    assert_eq!(disc.uri, format!("{LNS_URI}/traffic/{EUI:016x}"));
    assert_eq!(disc.tls_version.as_deref(), Some("TLSv1_2"));
    let rc = s.recv_router_config(T).await.unwrap();
    assert!(rc.downlinks_enabled);
    assert_router_config(&rc.raw, EU868_SPEC);

    let sent = s
        .send_updf(
            &Updf {
                mhdr: 0x40,
                dev_addr: 0x2601_1234,
                fctrl: 0,
                fcnt: 7,
                fopts: vec![],
                fport: Some(1),
                frm_payload: b"hi".to_vec(),
                mic: 0xdead_beef,
            },
            &RadioMeta::default(),
        )
        .await
        .unwrap();
    let ev = tokio::time::timeout(T, uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.gateway, Eui(EUI));
    let Frame::Data {
        dev_addr,
        fcnt,
        fport,
        payload,
        mic,
        ..
    } = &ev.uplink.frame
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (*dev_addr, *fcnt, *fport, payload.as_slice(), *mic),
        (0x2601_1234, 7, Some(1), &b"hi"[..], 0xdead_beef)
    );
    assert_eq!(ev.uplink.radio.up.xtime, sent.xtime);
    assert_eq!(ev.uplink.radio.freq, 868_100_000);

    let stats = srv
        .get(&format!("/wireless-gateways/{id}/gateway-statistics"))
        .await;
    assert_eq!(stats["ConnectionStatus"], "Connected", "{stats}");
    assert_eq!(stats["Uplinks"], 1);
    assert_eq!(stats["LastRssi"], -57.0);
    assert!(stats["ConnectedSince"].is_string());
    let fw = srv
        .get(&format!("/wireless-gateways/{id}/firmware-information"))
        .await;
    assert_eq!(fw["LnsVersion"]["Station"], "2.0.6(linux/std)");
    assert_eq!(fw["LnsVersion"]["Protocol"], 2);

    s.close().await.unwrap();
    for _ in 0..200 {
        if srv.running.app.lns.connection(Eui(EUI)).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = srv
        .get(&format!("/wireless-gateways/{id}/gateway-statistics"))
        .await;
    assert_eq!(stats["ConnectionStatus"], "Disconnected");
    assert_eq!(stats["Uplinks"], 1, "counters survive the session");
}

#[tokio::test]
async fn us915_sub_band_2_matches_the_spec_and_filters_go_into_router_config() {
    let srv = TestServer::start().await;
    let (_, st) = gateway(&srv, EUI, json!({"RfRegion": "US915", "SubBands": [2]})).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    assert_router_config(&s.recv_router_config(T).await.unwrap().raw, US915_SPEC);

    let (_, st) = gateway(
        &srv,
        EUI + 1,
        json!({"RfRegion": "EU868", "JoinEuiFilters": [["0000000000000001", "00000000000000ff"]], "NetIdFilters": ["000013"]}),
    )
    .await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    let rc = s.recv_router_config(T).await.unwrap();
    assert_eq!(rc.join_eui_ranges, Some(vec![(1, 0xff)]));
    assert_eq!(rc.raw["NetID"], json!([19]));
}

/// What the simulated station did with downlink `diid`.
fn sent_by(s: &common::lns_station::Session, diid: i64) -> common::lns_station::downlink::Downlink {
    s.downlinks()
        .into_iter()
        .find(|x| x.diid == diid)
        .expect("station scheduled it")
}

/// Waits until the server has anchored the gateway's time (getxtime answered).
async fn wait_anchor(s: &mut common::lns_station::Session) {
    s.next_matching(T, |m| matches!(m, ServerMessage::Getxtime { .. }))
        .await
        .unwrap();
    // The reply is processed by the server right after.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn class_a_and_class_c_downlinks_are_confirmed_by_dntxed() {
    let srv = TestServer::start().await;
    let (_, st) = gateway(&srv, EUI, eu868()).await;
    let lns = &srv.running.app.lns;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    wait_anchor(&mut s).await;

    // Class A: answer an uplink in RX1.
    let up = s
        .send_updf(
            &Updf {
                mhdr: 0x40,
                dev_addr: 1,
                fctrl: 0,
                fcnt: 1,
                fopts: vec![],
                fport: Some(1),
                frm_payload: vec![1],
                mic: 1,
            },
            &RadioMeta::default(),
        )
        .await
        .unwrap();
    let a = Downlink {
        dev_eui: 0x0011_2233_4455_6677,
        pdu: vec![0x60, 1, 2, 3, 4, 0, 1, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd],
        timing: Timing::ClassA {
            xtime: up.xtime,
            rctx: 0,
            rx_delay: 1,
            rx1: Some((5, 868_100_000)),
            rx2: Some((0, 869_525_000)),
        },
        priority: 0,
    };
    let Outcome::Transmitted(d) = lns.send(Eui(EUI), a).await.unwrap() else {
        panic!("class A not confirmed")
    };
    let sent = sent_by(&s, d.diid);
    assert_eq!(
        sent.tx_xtime,
        up.xtime + 1_000_000,
        "RX1 one second after the uplink"
    );
    assert_eq!(d.xtime, Some(sent.tx_xtime));

    // Class C as soon as possible on RX2 parameters.
    let c = Downlink {
        dev_eui: 0xf001,
        pdu: vec![0x68; 20],
        timing: Timing::ClassCNow {
            dr: 0,
            freq: 869_525_000,
        },
        priority: 0,
    };
    let Outcome::Transmitted(d) = lns.send(Eui(EUI), c).await.unwrap() else {
        panic!("class C not confirmed")
    };
    let sent = sent_by(&s, d.diid);
    assert_eq!((sent.dc, sent.freq, sent.dr), (2, 869_525_000, 0));
}

#[tokio::test]
async fn class_c_at_a_gps_time_and_class_b_use_the_time_anchor() {
    use stationkeeper::lorawan::gps::{gps_from_unix_us, unix_now_us};
    let srv = TestServer::start().await;
    let (_, st) = gateway(&srv, EUI, eu868()).await;
    let lns = &srv.running.app.lns;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    // No PPS: the server pushes a GPS time for an xtime after its getxtime.
    s.next_matching(
        T,
        |m| matches!(m, ServerMessage::Timesync(t) if t.xtime.is_some()),
    )
    .await
    .unwrap();
    let (mx, mg) = s.gps_mapping().expect("station knows GPS time now");

    let target = gps_from_unix_us(unix_now_us() + 1_500_000);
    let c = Downlink {
        dev_eui: 0xf002,
        pdu: vec![0x68; 12],
        timing: Timing::ClassCAtGps {
            gps_us: target,
            dr: 0,
            freq: 869_525_000,
        },
        priority: 0,
    };
    let Outcome::Transmitted(d) = lns.send(Eui(EUI), c).await.unwrap() else {
        panic!("not confirmed")
    };
    let sent = sent_by(&s, d.diid);
    let gps_of_tx = mg + (sent.tx_xtime - mx);
    assert!(
        (gps_of_tx - target).abs() < 50_000,
        "sent {} µs off the requested GPS time",
        gps_of_tx - target
    );

    let b_at = gps_from_unix_us(unix_now_us() + 1_000_000);
    // Another band: 869.525 MHz is still blocked by the 10 % duty cycle.
    let b = Downlink {
        dev_eui: 0xf003,
        pdu: vec![0x68; 12],
        timing: Timing::ClassB {
            gps_us: b_at,
            dr: 3,
            freq: 868_100_000,
        },
        priority: 0,
    };
    let outcome = lns.send(Eui(EUI), b).await.unwrap();
    let Outcome::Transmitted(d) = outcome else {
        panic!(
            "class B not confirmed: {outcome:?}, station dropped {:?}",
            s.dropped()
        )
    };
    assert_eq!(d.gpstime, Some(b_at));
}

#[tokio::test]
async fn a_pps_gateway_gets_its_timesync_answered() {
    let srv = TestServer::start().await;
    let (_, mut st) = gateway(&srv, EUI, eu868()).await;
    st.pps = true;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    let txtime = s.send_timesync_request().await.unwrap();
    let m = s
        .next_matching(
            T,
            |m| matches!(m, ServerMessage::Timesync(t) if t.txtime.is_some()),
        )
        .await
        .unwrap();
    let ServerMessage::Timesync(t) = m else {
        unreachable!()
    };
    assert_eq!(t.txtime, Some(txtime));
    let now_gps =
        stationkeeper::lorawan::gps::gps_from_unix_us(stationkeeper::lorawan::gps::unix_now_us());
    assert!((t.gpstime.unwrap() - now_gps).abs() < 5_000_000);
    assert!(
        s.gps_mapping().is_some(),
        "station accepted it: {:?}",
        t.note
    );
}

#[tokio::test]
async fn a_silently_dropped_downlink_is_not_confirmed_and_a_gone_gateway_is_reported() {
    let srv = TestServer::start().await;
    let (_, st) = gateway(&srv, EUI, eu868()).await;
    let lns = &srv.running.app.lns;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    wait_anchor(&mut s).await;
    s.set_auto_dntxed(false);
    let c = || Downlink {
        dev_eui: 0xf004,
        pdu: vec![1; 10],
        timing: Timing::ClassCNow {
            dr: 5,
            freq: 869_525_000,
        },
        priority: 0,
    };
    assert_eq!(
        lns.send(Eui(EUI), c()).await.unwrap(),
        Outcome::NotConfirmed
    );

    let pending = tokio::spawn({
        let app = srv.running.app.clone();
        async move { app.lns.send(Eui(EUI), c()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.abort().await;
    assert_eq!(pending.await.unwrap().unwrap(), Outcome::GatewayGone);
    assert_eq!(
        lns.send(Eui(EUI), c()).await,
        Err(DownlinkError::NotConnected)
    );
}

#[tokio::test]
async fn wrong_or_missing_lns_credentials_are_refused() {
    let srv = TestServer::start().await;
    let (id, mut st) = gateway(&srv, EUI, eu868()).await;
    // CUPS credentials do not open the LNS.
    let cups = srv.issue(&id, "CUPS", "Token").await["Files"]["cups.key"]
        .as_str()
        .unwrap()
        .to_string();
    st.auth = Auth::Token(cups.into_bytes());
    let e = st.discover(LNS_URI).await.unwrap_err();
    let LnsError::Rejected(wrong_token) = e else {
        panic!("{e:?}")
    };
    assert!(wrong_token.contains("credentials"), "{wrong_token}");
    let e = st
        .connect(&format!("{LNS_URI}/traffic/{EUI:016x}"))
        .await
        .err();
    assert_eq!(e, Some(LnsError::Http(403)));
    st.auth = Auth::None;
    assert!(matches!(
        st.discover(LNS_URI).await.unwrap_err(),
        LnsError::Rejected(_)
    ));
    // An unknown router gets the same text: the answer does not tell a prober
    // which ids exist (issue 9).
    let mut stranger = LnsStation::new(0x1234);
    stranger.trust = st.trust.clone();
    stranger.resolve = st.resolve;
    stranger.auth = Auth::Token(b"Authorization: Bearer not-a-token\n".to_vec());
    let e = stranger.discover(LNS_URI).await.unwrap_err();
    assert_eq!(e, LnsError::Rejected(wrong_token));
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let srv = TestServer::start().await;
    let (_, st) = gateway(&srv, EUI, eu868()).await;
    let (_, mut first) = st.discover_and_connect(LNS_URI).await.unwrap();
    first.recv_router_config(T).await.unwrap();
    let (_, mut second) = st.discover_and_connect(LNS_URI).await.unwrap();
    second.recv_router_config(T).await.unwrap();
    let e = first.next_matching(T, |_| false).await.unwrap_err();
    assert!(matches!(e, LnsError::Closed { .. }), "{e:?}");
    assert_eq!(srv.running.app.lns.connected(), vec![Eui(EUI)]);
}

#[tokio::test]
async fn a_region_station_does_not_know_is_reported_and_downlinks_refused() {
    let srv = TestServer::start().await;
    let (id, st) = gateway(&srv, EUI, json!({"RfRegion": "IN865"})).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    let rc = s.recv_router_config(T).await.unwrap();
    assert!(
        !rc.downlinks_enabled,
        "station 2.0.6 drops downlinks for IN865"
    );
    let stats = srv
        .get(&format!("/wireless-gateways/{id}/gateway-statistics"))
        .await;
    assert!(
        stats["RegionWarning"].as_str().unwrap().contains("IN865"),
        "{stats}"
    );
    let c = Downlink {
        dev_eui: 1,
        pdu: vec![1],
        timing: Timing::ClassCNow {
            dr: 2,
            freq: 866_550_000,
        },
        priority: 0,
    };
    assert_eq!(
        srv.running.app.lns.send(Eui(EUI), c).await,
        Err(DownlinkError::NotConfigured)
    );
}

#[tokio::test]
async fn malformed_messages_are_dropped_and_the_session_lives_on() {
    let srv = TestServer::start_with(|c| c.lorawan.enabled = false).await;
    let (id, st) = gateway(&srv, EUI, eu868()).await;
    let mut uplinks = srv.running.app.lns.take_uplinks().unwrap();
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    for bad in [
        "not json",
        "{}",
        r#"{"msgtype":"updf","DevAddr":"x"}"#,
        r#"{"msgtype":"rmtsh"}"#,
        r#"{"msgtype":"updf","MHdr":64,"DevAddr":1,"FCtrl":0,"FCnt":99999999,"FOpts":"","FPort":1,"FRMPayload":"","MIC":1,"DR":5,"Freq":1,"upinfo":{"rctx":0,"xtime":1,"rssi":-1,"snr":1}}"#,
    ] {
        s.send_text(bad).await.unwrap();
    }
    s.send_updf(
        &Updf {
            mhdr: 0x40,
            dev_addr: 9,
            fctrl: 0,
            fcnt: 1,
            fopts: vec![],
            fport: None,
            frm_payload: vec![],
            mic: 1,
        },
        &RadioMeta::default(),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(T, uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        ev.uplink.frame,
        Frame::Data {
            dev_addr: 9,
            fport: None,
            ..
        }
    ));
    let stats = srv
        .get(&format!("/wireless-gateways/{id}/gateway-statistics"))
        .await;
    assert_eq!(stats["ConnectionStatus"], "Connected");
    assert!(stats["DroppedMessages"].as_u64().unwrap() >= 3, "{stats}");
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_session() {
    let srv = TestServer::start().await;
    let (_, st) = gateway(&srv, EUI, eu868()).await;
    let (_, other) = gateway(&srv, EUI + 1, eu868()).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    let (_, mut o) = other.discover_and_connect(LNS_URI).await.unwrap();
    o.recv_router_config(T).await.unwrap();
    // Station's own messages are a few hundred bytes; 20 KiB is over the server's limit.
    let big = format!(r#"{{"msgtype":"x","pad":"{}"}}"#, "a".repeat(20 * 1024));
    s.send_frame(common::lns_station::Message::text(big))
        .await
        .unwrap();
    let e = s.next_matching(T, |_| false).await.unwrap_err();
    assert!(
        matches!(e, LnsError::Closed { .. } | LnsError::Ws(_)),
        "{e:?}"
    );
    assert!(
        srv.running.app.lns.connection(Eui(EUI + 1)).is_some(),
        "other gateways unaffected"
    );
}

#[tokio::test]
async fn a_flood_is_rate_limited_without_closing_the_session() {
    let srv = TestServer::start_with(|c| c.lns.max_messages_per_sec = 20).await;
    let (id, st) = gateway(&srv, EUI, eu868()).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    for _ in 0..300 {
        s.send_text(r#"{"msgtype":"rmtsh"}"#).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = srv
        .get(&format!("/wireless-gateways/{id}/gateway-statistics"))
        .await;
    assert_eq!(stats["ConnectionStatus"], "Connected");
    assert!(stats["DroppedMessages"].as_u64().unwrap() >= 200, "{stats}");
}

#[tokio::test]
async fn a_gateway_that_stops_answering_pings_is_closed() {
    let srv = TestServer::start_with(|c| {
        c.lns.ping_interval_secs = 1;
        c.lns.dead_after_secs = 2;
    })
    .await;
    let (_, st) = gateway(&srv, EUI, eu868()).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(s.pings_received() >= 1, "server pings");
    assert!(
        srv.running.app.lns.connection(Eui(EUI)).is_some(),
        "a live peer stays"
    );
    s.stop_answering_pings();
    let e = s
        .next_matching(Duration::from_secs(15), |_| false)
        .await
        .unwrap_err();
    assert!(matches!(e, LnsError::Closed { .. }), "{e:?}");
    assert!(srv.running.app.lns.connection(Eui(EUI)).is_none());
}

#[tokio::test]
async fn lns_credentials_rotated_through_cups_keep_working_across_the_overlap() {
    let srv = TestServer::start().await;
    let (id, mut st) = gateway(&srv, EUI, eu868()).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    s.close().await.unwrap();

    // A new LNS generation: until the gateway confirms it over CUPS, the old
    // token still opens the LNS, and so does the new one.
    let old = st.auth.clone();
    let new = srv.issue(&id, "LNS", "ClientCertificate").await["Files"].clone();
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    s.close().await.unwrap();
    st.auth = Auth::ClientCert {
        crt: new["tc.crt"].as_str().unwrap().as_bytes().to_vec(),
        key: new["tc.key"].as_str().unwrap().as_bytes().to_vec(),
    };
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    s.close().await.unwrap();

    // The gateway confirms the new generation on a CUPS poll (it reports the new
    // blob's CRC); from then on the old token is refused.
    let mut cups = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    assert!(
        cups.poll(srv.cups()).await.is_success(),
        "installs the new tc.* blob"
    );
    assert!(cups.poll(srv.cups()).await.is_success(), "reports its CRC");
    assert_eq!(srv.credentials(&id).await["LNS"]["Confirmed"], true);
    st.auth = old;
    let refused = srv
        .running
        .app
        .refusals
        .count(stationkeeper::logguard::Reason::NotAuthenticated);
    let e = st.discover(LNS_URI).await.unwrap_err();
    // The client gets the uniform text; the log line says "retired".
    assert!(
        matches!(&e, LnsError::Rejected(m) if m.contains("credentials")),
        "{e:?}"
    );
    assert_eq!(
        srv.running
            .app
            .refusals
            .count(stationkeeper::logguard::Reason::NotAuthenticated),
        refused + 1
    );
}
