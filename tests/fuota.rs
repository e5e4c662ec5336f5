//! FUOTA end to end: an operator creates a multicast group with a session and a
//! FUOTA task, starts it, and the server sends the image through real LNS
//! sessions to station simulators (tests/common/lns_station, which enforce
//! station's duty cycle and drop what breaks it). The frames each gateway put on
//! air are then checked the way a device would (tests/common/fuota_device.rs,
//! written from the spec, sharing no code with the server): MIC, decryption,
//! DataFragment parsing, and rebuilding the image under loss. The captured send
//! times are checked against the duty cycle and against each other.

mod common;

use std::time::{Duration, Instant};

use common::fuota;
use common::fuota::{MC_ADDR, MC_APP_S_KEY, MC_NWK_S_KEY};
use common::fuota_device::{open_frame, parse_data_fragment, FragDecoder};
use common::lns_station::downlink::Downlink;
use common::lns_station::session::Session;
use common::lns_station::LnsStation;
use common::process;
use common::server::{lns_gateway, TestServer, LNS_URI};
use hyper::Method;
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;
use stationkeeper::eui::Eui;

const T: Duration = Duration::from_secs(10);

fn key(hex_text: &str) -> [u8; 16] {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

/// A deterministic test image.
fn image(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A connected station; with `pps` it does the timesync exchange a GPS gateway does.
async fn connect(srv: &TestServer, eui: u64, pps: bool) -> (LnsStation, Session) {
    let (_, mut st) = srv.lns_gateway(eui, json!({"RfRegion": "EU868"})).await;
    st.pps = pps;
    let s = session(&st, pps).await;
    (st, s)
}

async fn session(st: &LnsStation, pps: bool) -> Session {
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    if pps {
        s.send_timesync_request().await.unwrap();
    }
    s
}

/// Waits until the server can place frames on the gateway's clock.
async fn anchored(srv: &TestServer, eui: u64, gps: bool) {
    let deadline = Instant::now() + T;
    loop {
        if let Some(c) = srv.running.app.lns.connection(Eui(eui)) {
            if c.stats.anchored && c.stats.gps == gps {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "gateway {eui:016x} never got a time anchor"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_status(srv: &TestServer, task: &str, want: &str, within: Duration) -> Value {
    wait_status_of(&srv.api(), task, want, within).await
}

async fn wait_status_of(api: &ApiClient, task: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let t = api
            .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
            .await
            .unwrap();
        if t["Status"] == want {
            return t;
        }
        assert!(Instant::now() < deadline, "task never became {want}: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A frame as it went on air, on a clock common to all stations (their UTC,
/// which router_config's MuxTime set from the server's clock).
#[derive(Debug, Clone)]
struct OnAir {
    utc_us: i64,
    airtime_us: i64,
    pdu: Vec<u8>,
}

fn on_air(s: &Session) -> Vec<OnAir> {
    // xtime keeps the radio session in its top byte; the low 48 bits count µs.
    const LOW48: i64 = (1 << 48) - 1;
    let (x_now, utc_now) = (s.xtime_now().unwrap() & LOW48, (s.utc_now() * 1e6) as i64);
    let mut frames: Vec<OnAir> = s
        .downlinks()
        .iter()
        .filter(|d: &&Downlink| d.transmitted)
        .map(|d| OnAir {
            utc_us: utc_now + ((d.tx_xtime & LOW48) - x_now),
            airtime_us: d.airtime_us,
            pdu: d.pdu.clone(),
        })
        .collect();
    // Frames timed ahead may reach station out of order; the air has them in time order.
    frames.sort_by_key(|f| f.utc_us);
    frames
}

/// Station 2.0.6's rule on 869.525 MHz, start to start: airtime / 10 %.
fn assert_duty_cycle_10_percent(frames: &[OnAir]) {
    for w in frames.windows(2) {
        let gap = w[1].utc_us - w[0].utc_us;
        let airtime = w[0].airtime_us;
        assert!(gap >= airtime * 10, "{gap} µs after a {airtime} µs frame");
    }
}

/// Opens every frame as a device would: (N, payload, FCnt) in air order.
fn fragments(frames: &[OnAir]) -> Vec<(u16, Vec<u8>, u32)> {
    let (a, n) = (key(MC_APP_S_KEY), key(MC_NWK_S_KEY));
    let mut last = None;
    frames
        .iter()
        .map(|f| {
            let o = open_frame(&a, &n, MC_ADDR, last, &f.pdu).expect("a valid multicast frame");
            assert_eq!(o.fport, 201, "FUOTA fragments go on FPort 201");
            last = Some(o.fcnt);
            let (index, n, payload) = parse_data_fragment(&o.plaintext).unwrap();
            assert_eq!(index, 0, "FragIndex 0");
            (n, payload.to_vec(), o.fcnt)
        })
        .collect()
}

#[test]
fn the_test_side_frame_opener_reads_the_spec_frames() {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/fuota/multicast_crypto.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let text = v.to_string();
    for phy in [
        "6004030201000500c90658dbde99279076460b8d7f5711c2",
        "6004030201004523c930d3dd187ffdebefdf324dcabe66cd",
    ] {
        assert!(text.contains(phy), "{phy} is in the vectors");
    }
    let (a, n) = (key(MC_APP_S_KEY), key(MC_NWK_S_KEY));
    let o = open_frame(
        &a,
        &n,
        MC_ADDR,
        None,
        &hex::decode("6004030201000500c90658dbde99279076460b8d7f5711c2").unwrap(),
    )
    .unwrap();
    assert_eq!((o.fcnt, o.fport), (5, 201));
    assert_eq!(hex::encode(&o.plaintext), "0801000001020304050607");
    let o = open_frame(
        &a,
        &n,
        MC_ADDR,
        Some(0x0001_2300),
        &hex::decode("6004030201004523c930d3dd187ffdebefdf324dcabe66cd").unwrap(),
    )
    .unwrap();
    assert_eq!(o.fcnt, 0x0001_2345);
    assert_eq!(hex::encode(&o.plaintext), "080b003838383838383838");
    let mut bad = hex::decode("6004030201000500c90658dbde99279076460b8d7f5711c2").unwrap();
    bad[10] ^= 1;
    assert!(
        open_frame(&a, &n, MC_ADDR, None, &bad).is_err(),
        "a changed byte fails the MIC"
    );
}

/// 200 bytes in 16-byte fragments at 30 %: M = 13, R = 4, 17 frames of 32 bytes.
const IMAGE_LEN: usize = 200;
const M: usize = 13;
const TOTAL: usize = 17;

/// Group, session from now + 2 s on EU868 DR5 869.525 MHz (10 %), task, started.
async fn started_task(srv: &TestServer, img: &[u8], extra: Value) -> String {
    let group = srv.create_group("ClassC").await;
    srv.set_session(&group, json!({})).await.unwrap();
    let task = srv.create_fuota_task(img, extra).await.unwrap();
    srv.associate(&task, &group).await.unwrap();
    let before = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(before["Status"], "Pending");
    let p = &before["Plan"];
    assert_eq!(p["UncodedFragments"], M);
    assert_eq!(p["CodedFragments"], TOTAL - M);
    assert_eq!(p["BytesPerFrame"], 32);
    assert_eq!(p["DutyCyclePercent"], 10.0);
    assert_eq!(p["FitsSession"], true, "{p}");
    // What the devices are told over unicast: group bit 0, M = 13, FragSize 16,
    // FragAlgo 0, Padding 8, Descriptor 01020304 (fuota.md §6.1 layout).
    let setup = &before["DeviceSetup"];
    assert_eq!(
        setup["FragSessionSetupReq"], "02010d0010000801020304",
        "{setup}"
    );
    assert!(setup["McClassCSessionReq"]
        .as_str()
        .unwrap()
        .starts_with("0400"));
    srv.start_fuota(&task, json!({})).await.unwrap();
    task
}

#[tokio::test]
async fn an_image_goes_out_through_gps_and_staggered_gateways_and_devices_rebuild_it() {
    let srv = TestServer::start().await;
    // Two PPS gateways (one common time slot) and one without GPS (its own slot).
    let (_, a) = connect(&srv, 0xa1, true).await;
    let (_, b) = connect(&srv, 0xb2, true).await;
    let (_, c) = connect(&srv, 0xc3, false).await;
    anchored(&srv, 0xa1, true).await;
    anchored(&srv, 0xb2, true).await;
    anchored(&srv, 0xc3, false).await;
    let img = image(IMAGE_LEN, 1);
    let task = started_task(&srv, &img, json!({})).await;
    let plan = srv.get(&format!("/fuota-tasks/{task}")).await["Plan"].clone();
    assert_eq!(plan["Gateways"], 3);
    assert_eq!(
        plan["SlotsPerRound"], 2,
        "GPS gateways share one slot: {plan}"
    );

    let done = wait_status(&srv, &task, "FuotaDone", Duration::from_secs(60)).await;
    assert!(done.get("StatusReason").is_none(), "{done}");
    let progress = &done["Progress"];
    for g in progress["Gateways"].as_array().unwrap() {
        assert_eq!(g["Sent"], TOTAL, "{g}");
        assert_eq!(g["Confirmed"], TOTAL, "every frame got its dntxed: {g}");
        assert_eq!(g["Failed"], 0, "{g}");
        assert_eq!(g["Done"], true);
    }

    let sessions = [&a, &b, &c];
    for s in sessions {
        assert!(
            s.dropped().is_empty(),
            "station dropped frames: {:?}",
            s.dropped()
        );
    }
    let air: Vec<Vec<OnAir>> = sessions.iter().map(|s| on_air(s)).collect();
    for frames in &air {
        assert_eq!(frames.len(), TOTAL);
        // Fragments in index order, uncoded first, counters never reused.
        let frags = fragments(frames);
        let ns: Vec<u16> = frags.iter().map(|f| f.0).collect();
        assert_eq!(ns, (1..=TOTAL as u16).collect::<Vec<_>>());
        let fcnts: Vec<u32> = frags.iter().map(|f| f.2).collect();
        assert!(fcnts.windows(2).all(|w| w[1] == w[0] + 1), "{fcnts:?}");
        assert_duty_cycle_10_percent(frames);
    }
    // Every gateway sent the identical frame for each fragment.
    for (n, ((a, b), c)) in air[0].iter().zip(&air[1]).zip(&air[2]).enumerate() {
        assert_eq!(a.pdu, b.pdu);
        assert_eq!(a.pdu, c.pdu);
        // The GPS gateways at one common time (as good as the server's time anchors:
        // half a round trip each, so allow for a loaded machine); the other apart
        // from both by at least a frame.
        assert!((a.utc_us - b.utc_us).abs() < 20_000, "fragment {}", n + 1);
        let gap = (c.utc_us - a.utc_us).abs();
        assert!(
            gap >= a.airtime_us,
            "fragment {}: staggered by {gap} µs",
            n + 1
        );
    }

    // A device hearing gateway C rebuilds the image despite losing three uncoded
    // fragments (a pattern the 4 coded rows of M = 13 cover); losing more than the redundancy leaves it incomplete.
    let frags = fragments(&air[2]);
    let padding = M * 16 - IMAGE_LEN;
    let mut dev = FragDecoder::new(M, 16);
    for (n, payload, _) in frags.iter().filter(|f| ![1u16, 2, 3].contains(&f.0)) {
        dev.push(*n, payload);
    }
    assert_eq!(dev.image(padding).as_deref(), Some(img.as_slice()));
    let mut dev = FragDecoder::new(M, 16);
    for (n, payload, _) in frags.iter().filter(|f| ![1u16, 2, 3, 4, 5].contains(&f.0)) {
        dev.push(*n, payload);
    }
    assert!(
        dev.image(padding).is_none(),
        "5 lost, 4 coded: not recoverable"
    );
}

#[tokio::test]
async fn a_restart_mid_session_resumes_without_reusing_counters_or_skipping() {
    let srv = TestServer::start().await;
    let (st, s1) = connect(&srv, 0xd4, false).await;
    anchored(&srv, 0xd4, false).await;
    let img = image(IMAGE_LEN, 2);
    let task = started_task(&srv, &img, json!({})).await;
    wait_status(&srv, &task, "In_FuotaSession", T).await;
    // Let a few fragments go out, then stop the server mid-session.
    let deadline = Instant::now() + Duration::from_secs(20);
    while on_air(&s1).len() < 4 {
        assert!(Instant::now() < deadline, "no fragments went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let srv = srv.restart().await;
    let first = on_air(&s1);
    // The same gateway reconnects (same credentials, same port).
    let s2 = session(&st, false).await;
    let done = wait_status(&srv, &task, "FuotaDone", Duration::from_secs(60)).await;
    assert_resumed(&first, &on_air(&s2), &done, &img);
}

/// What a gateway put on air before and after a stop mid-session: counters only
/// grow, fragments only advance, at most the frames in flight at the stop are
/// missing (and counted as failed), and a device rebuilds the image.
fn assert_resumed(first: &[OnAir], second: &[OnAir], done: &Value, img: &[u8]) {
    assert_resumed_losing(first, second, done, img, 1);
}

fn assert_resumed_losing(
    first: &[OnAir],
    second: &[OnAir],
    done: &Value,
    img: &[u8],
    in_flight: usize,
) {
    assert!(first.len() < TOTAL, "stopped mid-session");
    let g = &done["Progress"]["Gateways"][0];
    assert_eq!(g["Sent"], TOTAL, "{g}");
    let mut all = fragments(first);
    let mut last = all.last().map(|f| f.2);
    let (a, n) = (key(MC_APP_S_KEY), key(MC_NWK_S_KEY));
    for f in second {
        let o = open_frame(&a, &n, MC_ADDR, last, &f.pdu).unwrap();
        last = Some(o.fcnt);
        let (_, n, payload) = parse_data_fragment(&o.plaintext).unwrap();
        all.push((n, payload.to_vec(), o.fcnt));
    }
    let fcnts: Vec<u32> = all.iter().map(|f| f.2).collect();
    assert!(
        fcnts.windows(2).all(|w| w[1] > w[0]),
        "no counter twice: {fcnts:?}"
    );
    let ns: Vec<u16> = all.iter().map(|f| f.0).collect();
    assert!(
        ns.windows(2).all(|w| w[1] > w[0]),
        "fragments in order: {ns:?}"
    );
    // Only a frame in flight at the stop may be missing (counted as failed).
    let missing = TOTAL - ns.len();
    assert!(missing <= in_flight, "resumed where it stopped: {ns:?}");
    assert_eq!(
        g["Confirmed"].as_u64().unwrap() + g["Failed"].as_u64().unwrap(),
        TOTAL as u64,
        "{g}"
    );
    let mut dev = FragDecoder::new(M, 16);
    for (n, payload, _) in &all {
        dev.push(*n, payload);
    }
    assert_eq!(dev.image(M * 16 - IMAGE_LEN).as_deref(), Some(img));
}

#[tokio::test]
async fn two_tasks_through_one_gateway_share_its_duty_cycle() {
    let srv = TestServer::start().await;
    let (_, s) = connect(&srv, 0xd7, false).await;
    anchored(&srv, 0xd7, false).await;
    let first = started_task(&srv, &image(IMAGE_LEN, 7), json!({})).await;
    // A second group (another McAddr) on the same frequency, sending at once.
    let group = srv
        .call(
            Method::POST,
            "/multicast-groups",
            Some(json!({"LoRaWAN": {"RfRegion": "EU868", "DlClass": "ClassC", "McAddr": "0a0b0c0d"}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    srv.set_session(&group, json!({})).await.unwrap();
    let second = srv
        .create_fuota_task(&image(IMAGE_LEN, 8), json!({}))
        .await
        .unwrap();
    srv.associate(&second, &group).await.unwrap();
    srv.start_fuota(&second, json!({})).await.unwrap();
    for task in [&first, &second] {
        let done = wait_status(&srv, task, "FuotaDone", Duration::from_secs(90)).await;
        assert_eq!(done["Progress"]["Confirmed"], TOTAL, "{done}");
    }
    assert!(s.dropped().is_empty(), "station dropped: {:?}", s.dropped());
    let frames = on_air(&s);
    assert_eq!(frames.len(), 2 * TOTAL);
    assert_duty_cycle_10_percent(&frames);
}

#[tokio::test]
async fn a_gateway_that_drops_out_resumes_where_it_stopped() {
    let srv = TestServer::start().await;
    let (st, mut s1) = connect(&srv, 0xd6, false).await;
    anchored(&srv, 0xd6, false).await;
    let img = image(IMAGE_LEN, 6);
    let task = started_task(&srv, &img, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while on_air(&s1).len() < 4 {
        assert!(Instant::now() < deadline, "no fragments went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s1.abort().await;
    let first = on_air(&s1);
    // Away for a few rounds; the task waits for it within the session window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["Status"], "In_FuotaSession", "{t}");
    assert_eq!(
        t["Progress"]["Gateways"][0]["ConnectionStatus"],
        "Disconnected"
    );
    // While it runs, the ETA is there, and ahead.
    let eta = t["Progress"]["EstimatedFinish"].as_str().expect("an ETA");
    let eta =
        time::OffsetDateTime::parse(eta, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(eta > time::OffsetDateTime::now_utc(), "{eta}");
    let s2 = session(&st, false).await;
    let done = wait_status(&srv, &task, "FuotaDone", Duration::from_secs(60)).await;
    // Frames handed over ahead of their time (up to two at this pace) are lost
    // with the connection.
    assert_resumed_losing(&first, &on_air(&s2), &done, &img, 2);
}

#[tokio::test]
async fn a_kill_9_mid_session_resumes_in_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::write_lns_config(dir.path());
    let mut p = process::launch(&cfg);
    let api = p.api();
    let (_, mut st) = lns_gateway(&api, p.lns, 0xd5, json!({"RfRegion": "EU868"})).await;
    let s1 = session(&st, false).await;
    let group = fuota::create_group(&api, "ClassC").await;
    fuota::set_session(&api, &group, json!({})).await.unwrap();
    let img = image(IMAGE_LEN, 5);
    let task = fuota::create_fuota_task(&api, &img, json!({}))
        .await
        .unwrap();
    fuota::associate(&api, &task, &group).await.unwrap();
    fuota::start_fuota(&api, &task, json!({})).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while on_air(&s1).len() < 4 {
        assert!(Instant::now() < deadline, "no fragments went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.child.kill().unwrap(); // SIGKILL: no drain, no shutdown code runs
    p.child.wait().unwrap();
    let first = on_air(&s1);
    let p2 = process::launch(&cfg);
    st.resolve = Some(p2.lns);
    let s2 = session(&st, false).await;
    let done = wait_status_of(&p2.api(), &task, "FuotaDone", Duration::from_secs(60)).await;
    assert_resumed(&first, &on_air(&s2), &done, &img);
}

#[tokio::test]
async fn fragment_interval_paces_and_deleting_stops_sending_at_once() {
    let srv = TestServer::start().await;
    let (_, s) = connect(&srv, 0xe5, false).await;
    anchored(&srv, 0xe5, false).await;
    // FragmentIntervalMS above the duty cycle's 0.72 s sets the pace.
    let task = started_task(
        &srv,
        &image(IMAGE_LEN, 3),
        json!({"FragmentIntervalMS": 1500}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while on_air(&s).len() < 3 {
        assert!(Instant::now() < deadline, "no fragments went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in on_air(&s).windows(2) {
        assert!(
            w[1].utc_us - w[0].utc_us >= 1_500_000,
            "never faster than FragmentIntervalMS"
        );
    }
    srv.call(Method::DELETE, &format!("/fuota-tasks/{task}"), None)
        .await
        .unwrap();
    let at_delete = s.downlinks().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // At most the frames already handed over for the current round follow.
    assert!(s.downlinks().len() <= at_delete + 1, "sending stopped");
    let err = srv
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
        .unwrap_err();
    assert!(err.starts_with("404"), "{err}");
}

/// Whether `gps_us` is one of the group's class B ping slots, computed here from
/// the LoRaWAN class B rules: after each 128 s beacon, 2.12 s reserved, then a
/// 30 ms slot every `period` slots from AES128(0, beaconTime | McAddr | pad16).
fn is_ping_slot(gps_us: i64, period: u32) -> bool {
    use aes::cipher::{BlockEncrypt, KeyInit};
    let beacon_s = gps_us.div_euclid(1_000_000) / 128 * 128;
    let into = gps_us - beacon_s * 1_000_000 - 2_120_000;
    let mut block = [0u8; 16];
    block[..4].copy_from_slice(&(beacon_s as u32).to_le_bytes());
    block[4..8].copy_from_slice(&MC_ADDR.to_le_bytes());
    let mut b = block.into();
    aes::Aes128::new(&[0u8; 16].into()).encrypt_block(&mut b);
    let offset = (u32::from(b[0]) + u32::from(b[1]) * 256) % period;
    into >= 0 && into % 30_000 == 0 && (into / 30_000) as u32 % period == offset
}

#[tokio::test]
async fn class_b_fragments_go_out_at_the_groups_ping_slots() {
    let srv = TestServer::start().await;
    let (_, s) = connect(&srv, 0xf6, true).await;
    anchored(&srv, 0xf6, true).await;
    let group = srv.create_group("ClassB").await;
    // PingSlotPeriod 32 (Periodicity 0): a slot about every 0.96 s; DR3 (SF9).
    srv.set_session(&group, json!({"DlDr": 3, "PingSlotPeriod": 32}))
        .await
        .unwrap();
    let img = image(64, 4);
    let task = srv.create_fuota_task(&img, json!({})).await.unwrap();
    srv.associate(&task, &group).await.unwrap();
    let plan = srv.get(&format!("/fuota-tasks/{task}")).await["Plan"].clone();
    assert_eq!(plan["DlClass"], "ClassB");
    assert_eq!(plan["ClassBPingSlotsPerBeacon"], 128, "{plan}");
    srv.start_fuota(&task, json!({})).await.unwrap();
    let done = wait_status(&srv, &task, "FuotaDone", Duration::from_secs(60)).await;
    let g = &done["Progress"]["Gateways"][0];
    // M = 4, R = 2.
    assert_eq!(g["Confirmed"], 6, "{done}");
    assert!(s.dropped().is_empty(), "{:?}", s.dropped());
    let sent = s.downlinks();
    assert_eq!(sent.len(), 6);
    for d in &sent {
        assert_eq!(d.dc, 1, "class B dnmsg");
        assert!(
            is_ping_slot(d.gpstime, 32),
            "{} is not a ping slot",
            d.gpstime
        );
    }
    let frags = fragments(&on_air(&s));
    let mut dev = FragDecoder::new(4, 16);
    // A finished task keeps its history when its group is deleted.
    srv.call(Method::DELETE, &format!("/multicast-groups/{group}"), None)
        .await
        .unwrap();
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(
        (t["Status"].clone(), t["MulticastGroupId"].clone()),
        (json!("FuotaDone"), Value::Null)
    );
    // Row 1 of M = 4 is {0, 2}: it recovers a lost first fragment.
    for (n, payload, _) in frags.iter().filter(|f| f.0 != 1) {
        dev.push(*n, payload);
    }
    assert_eq!(dev.image(0).as_deref(), Some(img.as_slice()));
}

#[tokio::test]
async fn us915_without_a_duty_cycle_goes_at_air_time_pace() {
    let srv = TestServer::start().await;
    let (_, mut st) = srv
        .lns_gateway(0xe6, json!({"RfRegion": "US915", "SubBands": [2]}))
        .await;
    st.pps = true;
    let s = session(&st, true).await;
    anchored(&srv, 0xe6, true).await;
    let group = srv
        .call(
            Method::POST,
            "/multicast-groups",
            Some(json!({"LoRaWAN": {"RfRegion": "US915", "DlClass": "ClassC",
                "McAddr": format!("{MC_ADDR:08x}"), "McKey": fuota::MC_KEY}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    // DR13 (SF7/500 kHz) on the default RX2 frequency.
    srv.set_session(&group, json!({"DlDr": 13, "DlFreq": 923300000}))
        .await
        .unwrap();
    let img = image(IMAGE_LEN, 11);
    let task = srv
        .create_fuota_task(&img, json!({"LoRaWAN": {"RfRegion": "US915"}}))
        .await
        .unwrap();
    srv.associate(&task, &group).await.unwrap();
    let plan = srv.get(&format!("/fuota-tasks/{task}")).await["Plan"].clone();
    assert_eq!(plan["DutyCyclePercent"], 100.0, "{plan}");
    srv.start_fuota(&task, json!({})).await.unwrap();
    let done = wait_status(&srv, &task, "FuotaDone", Duration::from_secs(30)).await;
    assert_eq!(done["Progress"]["Confirmed"], TOTAL, "{done}");
    assert!(s.dropped().is_empty(), "{:?}", s.dropped());
    let frames = on_air(&s);
    // Back to back (air time + station's gap), many more than [lns] max_inflight
    // handed over ahead of their time, never overlapping.
    for w in frames.windows(2) {
        assert!(w[1].utc_us - w[0].utc_us >= w[0].airtime_us + 10_000);
    }
    let span = frames.last().unwrap().utc_us - frames[0].utc_us;
    assert!(span < 3_000_000, "17 frames in {span} µs");
    let mut dev = FragDecoder::new(M, 16);
    for (n, payload, _) in fragments(&frames)
        .iter()
        .filter(|f| ![1u16, 2, 3].contains(&f.0))
    {
        dev.push(*n, payload);
    }
    assert_eq!(
        dev.image(M * 16 - IMAGE_LEN).as_deref(),
        Some(img.as_slice())
    );
}
