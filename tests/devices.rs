//! End devices end to end: an operator creates a device profile and a device over
//! the API; an independent device simulator (tests/common/lorawan_device, written
//! from the spec, no server code, no lrwn) joins through the LNS station simulator,
//! sends uplinks with MAC commands, and checks every `dnmsg` the way a device would:
//! class A timing fields, FCntDown, MIC and decryption. The application side reads
//! the device's event log from the API.

mod common;

use std::time::Duration;

use common::lns_station::session::{RadioMeta, ServerMessage, Session};
use common::lns_station::{Dnmsg, LnsStation};
use common::lorawan_device::{Device, DownCmd, MacVersion, Region, UpCmd, Uplink, UplinkMeta};
use common::server::{TestServer, LNS_URI};
use hyper::Method;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);
const APP_KEY: [u8; 16] = [
    0x8f, 0x3a, 0x1c, 0x2b, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8,
];
const JOIN_EUI: u64 = 0x70b3_d57e_d000_1234;

async fn profile(srv: &TestServer, region: &str, version: &str) -> String {
    srv.call(
        Method::POST,
        "/device-profiles",
        Some(json!({"Name": "p", "LoRaWAN": {"MacVersion": version, "RfRegion": region, "SupportsJoin": true}})),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn otaa_device(srv: &TestServer, profile: &str, dev_eui: u64) -> String {
    srv.call(
        Method::POST,
        "/wireless-devices",
        Some(json!({
            "Type": "LoRaWAN", "DestinationName": "app1", "Name": "sensor",
            "LoRaWAN": {"DevEui": format!("{dev_eui:016x}"), "DeviceProfileId": profile,
                "OtaaV1_0_x": {"AppKey": hex::encode(APP_KEY), "JoinEui": format!("{JOIN_EUI:016x}")}}
        })),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn gateway(srv: &TestServer, eui: u64, lorawan: Value) -> Session {
    let (_, st): (String, LnsStation) = srv.lns_gateway(eui, lorawan).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    s
}

/// The next class A `dnmsg` the station placed.
async fn next_dnmsg(srv: &TestServer, s: &mut Session) -> Dnmsg {
    match s
        .next_matching(T, |m| matches!(m, ServerMessage::Dnmsg { .. }))
        .await
    {
        Ok(ServerMessage::Dnmsg { msg, .. }) => *msg,
        other => panic!(
            "no dnmsg ({other:?}); device face counters: {:?}",
            srv.running.app.devices.counters.snapshot()
        ),
    }
}

/// Sends `phy` through the gateway, then checks and opens the class A answer.
async fn exchange(
    srv: &TestServer,
    s: &mut Session,
    dev: &mut Device,
    phy: &[u8],
    meta: &RadioMeta,
) -> Dnmsg {
    let up = UplinkMeta::from_sent(&s.send_phy(phy, meta).await.unwrap());
    let m = next_dnmsg(srv, s).await;
    dev.check_class_a_dnmsg(&up, &m.raw).unwrap();
    m
}

async fn events(srv: &TestServer, device: &str) -> Vec<Value> {
    srv.get(&format!("/wireless-devices/{device}/events")).await["Events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn eu868_join_uplinks_mac_commands_and_a_queued_downlink() {
    let srv = TestServer::start().await;
    let p = profile(&srv, "EU868", "1.0.4").await;
    let dev_eui = 0x0080_e115_0000_1234;
    let id = otaa_device(&srv, &p, dev_eui).await;
    let mut s = gateway(&srv, 0x0016_c001_ff10_0001, json!({"RfRegion": "EU868"})).await;
    let mut dev = Device::otaa(
        Region::Eu868,
        MacVersion::V1_0_4,
        dev_eui,
        JOIN_EUI,
        APP_KEY,
    );
    let meta = RadioMeta {
        dr: 5,
        freq: 868_100_000,
        ..RadioMeta::default()
    };

    // Join: RxDelay 5, RX1 at offset 0, RX2 default; the device opens the accept.
    let jr = dev.join_request();
    let m = exchange(&srv, &mut s, &mut dev, &jr, &meta).await;
    let accept = dev.accept_join(m.pdu.as_deref().unwrap()).unwrap();
    assert_eq!(
        accept.dev_addr >> 25,
        0,
        "DevAddr from NetID 000000: {:08x}",
        accept.dev_addr
    );

    // A confirmed uplink with LinkCheckReq and DeviceTimeReq: ACK and both answers.
    let up =
        Uplink::confirmed(10, b"hello").with_mac(vec![UpCmd::LinkCheckReq, UpCmd::DeviceTimeReq]);
    let phy = dev.uplink(&up).unwrap();
    let m = exchange(&srv, &mut s, &mut dev, &phy, &meta).await;
    let rx = dev.downlink(m.pdu.as_deref().unwrap()).unwrap();
    assert!(rx.ack, "confirmed uplink acknowledged");
    assert!(
        rx.commands
            .iter()
            .any(|c| matches!(c, DownCmd::LinkCheckAns { gw_cnt: 1, .. })),
        "{:?}",
        rx.commands
    );
    assert!(
        rx.commands
            .iter()
            .any(|c| matches!(c, DownCmd::DeviceTimeAns { .. })),
        "{:?}",
        rx.commands
    );

    assert!(
        !srv.get(&format!("/wireless-devices/{id}/events")).await["Events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Reads the device's event log until `want` shows, returning every event.
async fn wait_event(srv: &TestServer, id: &str, want: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let evs = events(srv, id).await;
        if evs.iter().any(|e| e["Type"] == want) {
            return evs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {want} event: {evs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn us915_sub_band_2_link_adr_queue_and_acknowledged_downlink() {
    let srv = TestServer::start().await;
    let p = profile(&srv, "US915", "1.0.2").await;
    let dev_eui = 0x0080_e115_0000_5678;
    let id = otaa_device(&srv, &p, dev_eui).await;
    let mut s = gateway(
        &srv,
        0x0016_c001_ff10_0002,
        json!({"RfRegion": "US915", "SubBands": [2]}),
    )
    .await;
    let mut dev = Device::otaa(
        Region::Us915,
        MacVersion::V1_0_2,
        dev_eui,
        JOIN_EUI,
        APP_KEY,
    );
    // Channel 9 of sub-band 2, SF10/125 kHz.
    let meta = RadioMeta {
        dr: 0,
        freq: 904_100_000,
        ..RadioMeta::default()
    };

    let jr = dev.join_request();
    let m = exchange(&srv, &mut s, &mut dev, &jr, &meta).await;
    let accept = dev.accept_join(m.pdu.as_deref().unwrap()).unwrap();
    assert!(
        accept.cflist.is_none(),
        "1.0.2 US915 devices take no CFList"
    );

    // A 1.0.2 device gets the sub-band with the two-command LinkADRReq block.
    let phy = dev
        .uplink(&Uplink::unconfirmed(10, b"a").with_mac(vec![UpCmd::LinkCheckReq]))
        .unwrap();
    let m = exchange(&srv, &mut s, &mut dev, &phy, &meta).await;
    let rx = dev.downlink(m.pdu.as_deref().unwrap()).unwrap();
    let adr = rx
        .commands
        .iter()
        .filter(|c| matches!(c, DownCmd::LinkAdrReq { .. }))
        .count();
    assert_eq!(adr, 2, "{:?}", rx.commands);
    assert!(rx
        .commands
        .iter()
        .any(|c| matches!(c, DownCmd::LinkCheckAns { .. })));
    assert_eq!(
        dev.session().unwrap().mac.channels.enabled_indices(),
        vec![8, 9, 10, 11, 12, 13, 14, 15, 65]
    );

    // The device's LinkADRAns rides its next uplink; nothing more is owed then.
    let sent = srv
        .call(
            Method::POST,
            &format!("/wireless-devices/{id}/data"),
            Some(json!({"TransmitMode": 1, "PayloadData": "AQID", "WirelessMetadata": {"LoRaWAN": {"FPort": 7}}})),
        )
        .await
        .unwrap();
    assert!(sent["MessageId"].is_string());
    let phy = dev.uplink(&Uplink::unconfirmed(10, b"b")).unwrap();
    let m = exchange(&srv, &mut s, &mut dev, &phy, &meta).await;
    let rx = dev.downlink(m.pdu.as_deref().unwrap()).unwrap();
    assert!(
        rx.commands.is_empty(),
        "LinkADRAns accepted: {:?}",
        rx.commands
    );
    assert!(rx.confirmed);
    assert_eq!(
        (rx.frame.fport, rx.frame.payload.as_slice()),
        (Some(7), &[1u8, 2, 3][..])
    );

    // The ACK comes in the next uplink: an `ack` event.
    let phy = dev.uplink(&Uplink::unconfirmed(10, b"c")).unwrap();
    s.send_phy(&phy, &meta).await.unwrap();
    wait_event(&srv, &id, "ack").await;
    // station confirms the transmission at its time on air (`dntxed`): `txack`.
    let evs = wait_event(&srv, &id, "txack").await;
    let kinds: Vec<&str> = evs.iter().map(|e| e["Type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "up").count(), 3, "{kinds:?}");
    assert!(
        kinds.contains(&"join") && kinds.contains(&"txack"),
        "{kinds:?}"
    );
    let up = evs.iter().find(|e| e["Type"] == "up").unwrap();
    assert_eq!(up["Event"]["data"], "YQ==", "decrypted payload, base64");
    assert_eq!(
        up["Event"]["deviceInfo"]["devEui"],
        format!("{dev_eui:016x}")
    );
    let ack = evs.iter().find(|e| e["Type"] == "ack").unwrap();
    assert_eq!(ack["Event"]["acknowledged"], true);
    let stats = srv.get(&format!("/wireless-devices/{id}/statistics")).await;
    assert_eq!(
        stats["LoRaWAN"]["FCntUp"], 2,
        "the last uplink's counter: {stats}"
    );
    assert_eq!(
        stats["LoRaWAN"]["Gateways"][0]["GatewayEui"],
        "0016c001ff100002"
    );
    // Keys never come back.
    let got = srv
        .get(&format!("/wireless-devices/{id}"))
        .await
        .to_string();
    assert!(!got.contains(&hex::encode(APP_KEY)), "{got}");
}

fn counter(srv: &TestServer, name: &str) -> u64 {
    srv.running
        .app
        .devices
        .counters
        .snapshot()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
}

/// Waits until the device face has counted `name` to at least `n`.
async fn counted(srv: &TestServer, name: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + T;
    while counter(srv, name) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {n}: {:?}",
            srv.running.app.devices.counters.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A US915 device joined through `s`, ready for data uplinks.
async fn joined_us915(
    srv: &TestServer,
    s: &mut Session,
    dev_eui: u64,
    version: MacVersion,
) -> (String, Device) {
    let p = profile(
        srv,
        "US915",
        if version == MacVersion::V1_0_4 {
            "1.0.4"
        } else {
            "1.0.3"
        },
    )
    .await;
    let id = otaa_device(srv, &p, dev_eui).await;
    let mut dev = Device::otaa(Region::Us915, version, dev_eui, JOIN_EUI, APP_KEY);
    let jr = dev.join_request();
    let m = exchange(srv, s, &mut dev, &jr, &us915()).await;
    dev.accept_join(m.pdu.as_deref().unwrap()).unwrap();
    (id, dev)
}

async fn read_pdu(s: &mut Session) -> Vec<u8> {
    match s
        .next_matching(T, |m| matches!(m, ServerMessage::Dnmsg { .. }))
        .await
        .unwrap()
    {
        ServerMessage::Dnmsg { msg, .. } => msg.pdu.clone().unwrap(),
        _ => unreachable!(),
    }
}

async fn silent(s: &mut Session) {
    let got = s
        .next_matching(Duration::from_millis(600), |m| {
            matches!(m, ServerMessage::Dnmsg { .. })
        })
        .await;
    assert!(got.is_err(), "no answer expected: {got:?}");
}

fn us915() -> RadioMeta {
    RadioMeta {
        dr: 0,
        freq: 904_100_000,
        ..RadioMeta::default()
    }
}

#[tokio::test]
async fn two_gateways_hear_one_uplink_it_is_handled_once_and_answered_by_the_better() {
    let srv = TestServer::start().await;
    let sb2 = json!({"RfRegion": "US915", "SubBands": [2]});
    let mut a = gateway(&srv, 0xa1, sb2.clone()).await;
    let mut b = gateway(&srv, 0xb2, sb2).await;
    let (id, mut dev) = joined_us915(&srv, &mut a, 0x0080_e115_0000_0a0b, MacVersion::V1_0_3).await;

    let phy = dev
        .uplink(&Uplink::confirmed(3, b"x").with_mac(vec![UpCmd::LinkCheckReq]))
        .unwrap();
    let weak = RadioMeta {
        snr: -5.0,
        rssi: -110,
        ..us915()
    };
    let strong = RadioMeta {
        snr: 8.0,
        rssi: -60,
        ..us915()
    };
    a.send_phy(&phy, &weak).await.unwrap();
    let up_b = UplinkMeta::from_sent(&b.send_phy(&phy, &strong).await.unwrap());
    let m = next_dnmsg(&srv, &mut b).await;
    dev.check_class_a_dnmsg(&up_b, &m.raw).unwrap();
    let rx = dev.downlink(m.pdu.as_deref().unwrap()).unwrap();
    assert!(rx.ack);
    // SF10 needs -15 dB: the best copy has 8 dB, a margin of 23.
    assert!(
        rx.commands.contains(&DownCmd::LinkCheckAns {
            margin: 23,
            gw_cnt: 2
        }),
        "{:?}",
        rx.commands
    );
    assert!(
        a.next_matching(Duration::from_millis(500), |m| matches!(
            m,
            ServerMessage::Dnmsg { .. }
        ))
        .await
        .is_err(),
        "only the gateway with the better link answers"
    );
    let evs = wait_event(&srv, &id, "up").await;
    let ups: Vec<&Value> = evs.iter().filter(|e| e["Type"] == "up").collect();
    assert_eq!(ups.len(), 1, "one event for two copies");
    assert_eq!(ups[0]["Event"]["rxInfo"].as_array().unwrap().len(), 2);
    assert_eq!(counter(&srv, "copies_merged"), 1);
}

#[tokio::test]
async fn replays_reused_nonces_bad_mics_and_strangers_are_counted_and_unanswered() {
    let srv = TestServer::start().await;
    let mut s = gateway(&srv, 0xc3, json!({"RfRegion": "US915", "SubBands": [2]})).await;
    let (id, mut dev) = joined_us915(&srv, &mut s, 0x0080_e115_0000_0c0d, MacVersion::V1_0_4).await;
    let meta = us915();

    // An unconfirmed uplink, then the same frame again: one `up`, one replay counted.
    let phy = dev.uplink(&Uplink::unconfirmed(3, b"once")).unwrap();
    s.send_phy(&phy, &meta).await.unwrap();
    // The first is handled (its `up` event is there) before the copy comes again.
    wait_event(&srv, &id, "up").await;
    s.send_phy(&phy, &meta).await.unwrap();
    counted(&srv, "replayed", 1).await;
    silent(&mut s).await;

    // A confirmed frame repeated (its ACK lost) is acknowledged again, not delivered twice.
    let phy = dev.uplink(&Uplink::confirmed(3, b"conf")).unwrap();
    exchange(&srv, &mut s, &mut dev, &phy, &meta).await;
    let m = exchange(&srv, &mut s, &mut dev, &phy, &meta).await;
    assert!(dev.downlink(m.pdu.as_deref().unwrap()).unwrap().ack);
    let ups = wait_event(&srv, &id, "up")
        .await
        .iter()
        .filter(|e| e["Type"] == "up")
        .count();
    assert_eq!(ups, 2, "the repeat is not a new uplink");

    // A flipped MIC byte, and a DevAddr nobody holds.
    let mut bad = dev.uplink(&Uplink::unconfirmed(3, b"bad")).unwrap();
    *bad.last_mut().unwrap() ^= 1;
    s.send_phy(&bad, &meta).await.unwrap();
    counted(&srv, "mic_failed", 1).await;
    let mut stranger = bad.clone();
    stranger[1..5].copy_from_slice(&0x01ff_fff0u32.to_le_bytes());
    s.send_phy(&stranger, &meta).await.unwrap();
    counted(&srv, "unknown_device", 1).await;

    // A frame on a frequency the region has no uplink channel at (a misconfigured
    // gateway; the simulator's own radio would not hear it, so it is written by hand).
    let phy = dev.uplink(&Uplink::unconfirmed(3, b"off")).unwrap();
    let mut m = common::lorawan_device::station_fields(&phy).unwrap();
    m["DR"] = json!(0);
    m["Freq"] = json!(904_150_000);
    m["upinfo"] = json!({"rctx": 0, "xtime": 1, "rssi": -50, "snr": 5});
    s.send_text(&m.to_string()).await.unwrap();
    counted(&srv, "bad_channel", 1).await;

    // 1.0.4: a DevNonce not greater than the last is ignored, and the owner is told.
    let old = dev.join_request_with_nonce(0);
    s.send_phy(&old, &meta).await.unwrap();
    counted(&srv, "joins_refused", 1).await;
    silent(&mut s).await;
    let log = wait_event(&srv, &id, "log").await;
    let text = log.iter().find(|e| e["Type"] == "log").unwrap()["Event"]["description"].to_string();
    assert!(text.contains("DevNonce 0"), "{text}");

    // A JoinEUI the device is not registered with.
    let mut other = Device::otaa(
        Region::Us915,
        MacVersion::V1_0_4,
        dev.dev_eui,
        0x1122,
        APP_KEY,
    );
    other.next_dev_nonce = 50;
    s.send_phy(&other.join_request(), &meta).await.unwrap();
    counted(&srv, "joins_refused", 2).await;

    // A rejoin-request (MType 110): a 1.0.x network ignores it as malformed.
    s.send_text(r#"{"msgtype":"rejoin","MHdr":192,"JoinEui":"00-00-00-00-00-00-00-00","DevEui":"00-00-00-00-00-00-00-01","DevNonce":1,"MIC":1,"DR":0,"Freq":904100000,"upinfo":{"rctx":0,"xtime":1,"rssi":-50,"snr":5}}"#).await.unwrap();
    counted(&srv, "malformed", 1).await;
    assert_eq!(
        counter(&srv, "replayed"),
        2,
        "the unconfirmed repeat and the confirmed one"
    );
}

#[tokio::test]
async fn api_refusals_name_the_field() {
    let srv = TestServer::start().await;
    let bad_region = srv
        .call(
            Method::POST,
            "/device-profiles",
            Some(json!({"LoRaWAN": {"RfRegion": "AS923-1"}})),
        )
        .await
        .unwrap_err();
    assert!(bad_region.contains("RfRegion"), "{bad_region}");
    let p = profile(&srv, "EU868", "1.0.3").await;
    let short_key = srv
        .call(
            Method::POST,
            "/wireless-devices",
            Some(json!({"Type": "LoRaWAN", "DestinationName": "a", "LoRaWAN": {"DevEui": "0000000000000001", "DeviceProfileId": p,
                "OtaaV1_0_x": {"AppKey": "0011", "JoinEui": "0000000000000002"}}})),
        )
        .await
        .unwrap_err();
    assert!(
        short_key.contains("AppKey") && short_key.contains("16"),
        "{short_key}"
    );
    let id = otaa_device(&srv, &p, 3).await;
    let dup = srv
        .call(
            Method::POST,
            "/wireless-devices",
            Some(json!({"Type": "LoRaWAN", "DestinationName": "a", "LoRaWAN": {"DevEui": "0000000000000003", "DeviceProfileId": p,
                "OtaaV1_0_x": {"AppKey": hex::encode(APP_KEY), "JoinEui": "0000000000000002"}}})),
        )
        .await
        .unwrap_err();
    assert!(dup.starts_with("409"), "{dup}");
    let big = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 52]);
    let too_big = srv
        .call(
            Method::POST,
            &format!("/wireless-devices/{id}/data"),
            Some(json!({"TransmitMode": 0, "PayloadData": big})),
        )
        .await
        .unwrap_err();
    assert!(too_big.contains("at most 51"), "{too_big}");
}

#[tokio::test]
async fn a_kill_9_between_uplinks_keeps_the_session_and_never_reuses_a_downlink_counter() {
    use common::process;
    use common::server::lns_gateway;
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::write_lns_config(dir.path());
    let mut p = process::launch(&cfg);
    let api = p.api();
    let (_, mut st) = lns_gateway(
        &api,
        p.lns,
        0xd7,
        json!({"RfRegion": "US915", "SubBands": [2]}),
    )
    .await;
    let connect = |st: &LnsStation| {
        let st = st.clone();
        async move {
            let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
            s.recv_router_config(T).await.unwrap();
            s
        }
    };
    let mut s = connect(&st).await;
    let prof = api
        .call(
            Method::POST,
            "/device-profiles",
            Some(json!({"LoRaWAN": {"MacVersion": "1.0.3", "RfRegion": "US915"}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dev_eui = 0x0080_e115_0000_0e0f;
    api.call(
        Method::POST,
        "/wireless-devices",
        Some(json!({"Type": "LoRaWAN", "DestinationName": "app",
            "LoRaWAN": {"DevEui": format!("{dev_eui:016x}"), "DeviceProfileId": prof,
                "OtaaV1_0_x": {"AppKey": hex::encode(APP_KEY), "JoinEui": format!("{JOIN_EUI:016x}")}}})),
    )
    .await
    .unwrap();
    let mut dev = Device::otaa(
        Region::Us915,
        MacVersion::V1_0_3,
        dev_eui,
        JOIN_EUI,
        APP_KEY,
    );
    let meta = us915();
    s.send_phy(&dev.join_request(), &meta).await.unwrap();
    let pdu = read_pdu(&mut s).await;
    dev.accept_join(&pdu).unwrap();
    for _ in 0..2 {
        let phy = dev.uplink(&Uplink::confirmed(2, b"before")).unwrap();
        s.send_phy(&phy, &meta).await.unwrap();
        let pdu = read_pdu(&mut s).await;
        assert!(dev.downlink(&pdu).unwrap().ack);
    }
    let before = dev.session().unwrap().last_fcnt_down.unwrap();

    p.child.kill().unwrap(); // SIGKILL: no drain, no shutdown code runs
    p.child.wait().unwrap();
    let p2 = process::launch(&cfg);
    st.resolve = Some(p2.lns);
    let mut s = connect(&st).await;
    // The session survived: the device goes on without a rejoin, and every
    // downlink counter it accepts is new (its check refuses a repeat).
    let phy = dev.uplink(&Uplink::confirmed(2, b"after")).unwrap();
    s.send_phy(&phy, &meta).await.unwrap();
    let pdu = read_pdu(&mut s).await;
    let rx = dev.downlink(&pdu).unwrap();
    assert!(rx.ack);
    assert!(dev.session().unwrap().last_fcnt_down.unwrap() > before);
    // The DevNonces it used are remembered too.
    let reused = *dev.used_dev_nonces.iter().next().unwrap();
    s.send_phy(&dev.join_request_with_nonce(reused), &meta)
        .await
        .unwrap();
    assert!(
        s.next_matching(Duration::from_millis(800), |m| matches!(
            m,
            ServerMessage::Dnmsg { .. }
        ))
        .await
        .is_err(),
        "a used DevNonce gets no join-accept after a restart"
    );
}

#[tokio::test]
async fn a_class_c_device_gets_its_downlink_at_once_on_rx2() {
    let srv = TestServer::start().await;
    let p = srv
        .call(
            Method::POST,
            "/device-profiles",
            Some(json!({"LoRaWAN": {"MacVersion": "1.0.3", "RfRegion": "US915", "SupportsClassC": true, "ClassCTimeout": 8}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s = gateway(&srv, 0xe8, json!({"RfRegion": "US915", "SubBands": [2]})).await;
    let dev_eui = 0x0080_e115_0000_0c0c;
    let id = otaa_device(&srv, &p, dev_eui).await;
    let mut dev = Device::otaa(
        Region::Us915,
        MacVersion::V1_0_3,
        dev_eui,
        JOIN_EUI,
        APP_KEY,
    );
    let jr = dev.join_request();
    let m = exchange(&srv, &mut s, &mut dev, &jr, &us915()).await;
    dev.accept_join(m.pdu.as_deref().unwrap()).unwrap();
    // One uplink tells the server which gateway hears the device.
    let phy = dev.uplink(&Uplink::unconfirmed(2, b"up")).unwrap();
    s.send_phy(&phy, &us915()).await.unwrap();
    wait_event(&srv, &id, "up").await;

    srv.call(
        Method::POST,
        &format!("/wireless-devices/{id}/data"),
        Some(json!({"TransmitMode": 0, "PayloadData": "qrs=", "WirelessMetadata": {"LoRaWAN": {"FPort": 9}}})),
    )
    .await
    .unwrap();
    let m = next_dnmsg(&srv, &mut s).await;
    assert_eq!(m.raw["dC"], 2, "class C: {}", m.raw);
    assert_eq!(
        (m.raw["RX2DR"].as_i64(), m.raw["RX2Freq"].as_i64()),
        (Some(8), Some(923_300_000))
    );
    let rx = dev.downlink(m.pdu.as_deref().unwrap()).unwrap();
    assert_eq!(
        (rx.frame.fport, rx.frame.payload.as_slice()),
        (Some(9), &[0xaa, 0xbb][..])
    );
}

#[tokio::test]
async fn an_abp_device_works_from_its_stored_session() {
    let srv = TestServer::start().await;
    let p = profile(&srv, "EU868", "1.0.3").await;
    let (nwk, app) = ([0x11u8; 16], [0x22u8; 16]);
    let id = srv
        .call(
            Method::POST,
            "/wireless-devices",
            Some(json!({"Type": "LoRaWAN", "DestinationName": "abp-app", "LoRaWAN": {
                "DevEui": "0080e11500000abc", "DeviceProfileId": p,
                "AbpV1_0_x": {"DevAddr": "01020304", "SessionKeys": {"NwkSKey": hex::encode(nwk), "AppSKey": hex::encode(app)}}}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s = gateway(&srv, 0xab, json!({"RfRegion": "EU868"})).await;
    let mut dev = Device::abp(
        Region::Eu868,
        MacVersion::V1_0_3,
        0x0080_e115_0000_0abc,
        0x0102_0304,
        nwk,
        app,
    );
    let phy = dev
        .uplink(&Uplink::confirmed(4, b"abp").with_mac(vec![UpCmd::LinkCheckReq]))
        .unwrap();
    let m = exchange(&srv, &mut s, &mut dev, &phy, &RadioMeta::default()).await;
    let rx = dev.downlink(m.pdu.as_deref().unwrap()).unwrap();
    assert!(rx.ack);
    let evs = wait_event(&srv, &id, "up").await;
    let up = evs.iter().find(|e| e["Type"] == "up").unwrap();
    assert_eq!(up["Event"]["data"], "YWJw");
    assert_eq!(up["Event"]["devAddr"], "01020304");
    assert_eq!(up["Event"]["deviceInfo"]["applicationId"], "abp-app");
}
