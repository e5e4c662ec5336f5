//! FUOTA end to end with devices (issue #15): simulated class A devices (tests/common/
//! fuota_fleet.rs over the spec-written device and its app-layer packages, no server code)
//! join through the LNS station simulator; an operator associates them with a FUOTA task and
//! starts it; the server's control plane syncs their clocks, sets up the multicast group, the
//! fragmentation session and the class C session, multicasts the image, asks for the
//! fragmentation status and, with `ExpectedFirmwareVersion`, has the image installed and
//! checks the version that runs. Each test compares what the API reports per device with what
//! the device really did. `FUOTA_FLEET_REPORT=1` prints every device's trace at FuotaDone.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::fuota;
use common::fuota_fleet::{
    create_device, create_profile, create_profile_with, device_body, DeviceSpec, DeviceState,
    Fleet, FleetConfig,
};
use common::lorawan_device::applayer::{Corrupt, Faults, Loss};
use common::process::{self, Proc};
use common::server::TestServer;
use hyper::Method;
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;
use tokio::time::Instant;

const OLD_FW: u32 = 0x0100_0003;
const NEW_FW: u32 = 0x0200_0001;
/// Uplink interval of the simulated devices (and of their profile).
const INTERVAL_S: u32 = 2;
/// 200 octets in 16-octet fragments at 30 %: M = 13, R = 4.
const IMAGE_LEN: usize = 200;

/// A test image whose first four octets carry its version (the device reads them, TS006).
fn image(version: u32) -> Vec<u8> {
    image_of(version, IMAGE_LEN)
}

fn image_of(version: u32, len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    let mut img: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    img[..4].copy_from_slice(&version.to_le_bytes());
    img
}

/// Everything an operator sets up: profile, devices, group with a session, task with the
/// devices and `ExpectedFirmwareVersion`; the fleet running and joined. Not started yet.
struct Setup {
    /// Keeps the in-process server running.
    _srv: Option<TestServer>,
    api: ApiClient,
    fleet: Fleet,
    task: String,
}

impl Setup {
    fn api(&self) -> &ApiClient {
        &self.api
    }
}

/// What differs between the scenarios.
struct Plan {
    specs: Vec<DeviceSpec>,
    /// Merged into the CreateFuotaTask body.
    task_extra: Value,
    /// `ClassC` or `ClassB`, and what is merged into the group's session.
    class: &'static str,
    session_extra: Value,
    image: Vec<u8>,
    pps: bool,
    /// Merged into the device profile's LoRaWAN object.
    profile_extra: Value,
}

impl Plan {
    fn class_c(specs: Vec<DeviceSpec>) -> Plan {
        Plan {
            specs,
            task_extra: json!({}),
            class: "ClassC",
            session_extra: json!({"SessionTimeout": 64}),
            image: image(NEW_FW),
            // GPS gateways send each fragment in one common slot; without GPS each gateway
            // gets its own slot and the session takes as many times longer.
            pps: true,
            profile_extra: json!({}),
        }
    }
}

async fn set_up(specs: Vec<DeviceSpec>, task_extra: Value) -> Setup {
    let srv = TestServer::start().await;
    let (api, lns) = (srv.api(), srv.running.lns_addr);
    let plan = Plan {
        task_extra,
        ..Plan::class_c(specs)
    };
    let (fleet, task) = set_up_on(&api, lns, plan).await;
    Setup {
        _srv: Some(srv),
        api,
        fleet,
        task,
    }
}

/// `set_up` against any server (in-process or a real process).
async fn set_up_on(api: &ApiClient, lns: std::net::SocketAddr, plan: Plan) -> (Fleet, String) {
    let profile = create_profile_with(api, INTERVAL_S, plan.profile_extra).await;
    let mut devices = Vec::new();
    for s in plan.specs {
        devices.push((create_device(api, &profile, &s).await, s));
    }
    let group = fuota::create_group(api, plan.class).await;
    // SessionStartTime: any future time; the control plane picks the SessionTime.
    fuota::set_session(api, &group, plan.session_extra)
        .await
        .unwrap();
    let mut extra = json!({"ExpectedFirmwareVersion": format!("{NEW_FW:#010x}")});
    for (k, v) in plan.task_extra.as_object().unwrap() {
        extra[k] = v.clone();
    }
    let task = fuota::create_fuota_task(api, &plan.image, extra)
        .await
        .unwrap();
    fuota::associate(api, &task, &group).await.unwrap();
    for (id, _) in &devices {
        associate_device(api, &task, id).await.unwrap();
    }
    // One gateway per device: the server keeps each gateway's duty cycle.
    let cfg = FleetConfig {
        interval: Duration::from_secs(u64::from(INTERVAL_S)),
        gateways: devices.len(),
        pps: plan.pps,
        ..FleetConfig::default()
    };
    let fleet = Fleet::start(api, lns, devices, cfg).await;
    fleet.joined(Duration::from_secs(30)).await;
    (fleet, task)
}

async fn associate_device(api: &ApiClient, task: &str, device: &str) -> Result<Value, String> {
    api.call(
        Method::PUT,
        &format!("/fuota-tasks/{task}/wireless-device"),
        Some(json!({"WirelessDeviceId": device})),
    )
    .await
}

async fn task(api: &ApiClient, task: &str) -> Value {
    api.call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
        .unwrap()
}

/// `ListWirelessDevices?fuotaTaskId=…`: the entries by device Id.
async fn device_statuses(api: &ApiClient, task: &str) -> Vec<Value> {
    api.call(
        Method::GET,
        &format!("/wireless-devices?fuotaTaskId={task}"),
        None,
    )
    .await
    .unwrap()["WirelessDeviceList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|e| e["Id"] == id)
        .unwrap_or_else(|| panic!("device {id} not in the task's list: {list:?}"))
}

/// Starts the task and waits for FuotaDone, recording every task status seen on the way.
async fn run_to_done(s: &Setup, within: Duration) -> (Value, Vec<String>) {
    fuota::start_fuota(s.api(), &s.task, json!({}))
        .await
        .unwrap();
    wait_done(s.api(), &s.task, &s.fleet, within).await
}

/// Waits for FuotaDone; the statuses seen on the way.
async fn wait_done(
    api: &ApiClient,
    task_id: &str,
    fleet: &Fleet,
    within: Duration,
) -> (Value, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let t = task(api, task_id).await;
        let st = t["Status"].as_str().unwrap_or("?").to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "FuotaDone" {
            if std::env::var_os("FUOTA_FLEET_REPORT").is_some() {
                eprintln!("{t:#}\n{}", fleet.report());
            }
            return (t, seen);
        }
        assert!(
            Instant::now() < deadline,
            "the task is not FuotaDone after {within:?} (statuses {seen:?}): {t}\n\
             devices: {:?}\n{}",
            device_statuses(api, task_id).await,
            fleet.report()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The app-layer requests a device received, as (port, CID) of each command in order, retries
/// collapsed (a request repeated back to back counts once).
fn requests(trace: &[String]) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for line in trace {
        let Some(rest) = line.split(" down ").nth(1) else {
            continue;
        };
        let mut it = rest.split(' ');
        let port: u8 = it.next().unwrap().parse().unwrap();
        let payload = hex::decode(it.next().unwrap_or("")).unwrap_or_default();
        let Some(&cid) = payload.first() else {
            continue;
        };
        if out.last() != Some(&(port, cid)) {
            out.push((port, cid));
        }
    }
    out
}

/// Whether `want` appears in `got` in order (other requests may come between).
fn in_order(got: &[(u8, u8)], want: &[(u8, u8)]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

/// The control plane's order for one device (end-devices.md §8.1), after the clock step.
const SEQUENCE: [(u8, u8); 7] = [
    (200, 0x02), // McGroupSetupReq
    (201, 0x02), // FragSessionSetupReq
    (200, 0x04), // McClassCSessionReq
    (201, 0x01), // FragSessionStatusReq
    (203, 0x04), // DevUpgradeImageReq
    (203, 0x03), // DevRebootCountdownReq
    (203, 0x01), // DevVersionReq
];

#[tokio::test]
async fn five_devices_each_end_with_the_status_that_tells_what_happened() {
    let base = |n| DeviceSpec::numbered(n, OLD_FW);
    let specs = vec![
        // 0: succeeds; its clock is 37 s ahead (AppTimeAns must correct it).
        DeviceSpec {
            clock_offset: 37.0,
            ..base(1)
        },
        // 1: not enough memory for the fragmentation session.
        base(2).with_faults(Faults {
            frag_setup_status: 0x02,
            ..Faults::default()
        }),
        // 2: loses every other fragment: 50 % lost against 30 % redundancy.
        base(3).with_faults(Faults {
            loss: Loss::EveryKth(2),
            ..Faults::default()
        }),
        // 3: never answers McClassCSessionReq.
        base(4).with_faults(Faults {
            ignore: HashSet::from([(200, 0x04)]),
            ..Faults::default()
        }),
        // 4: rebuilds the image but comes back from the reboot with the old version; it never
        // asks for the time by itself and its clock is 20 s behind (ForceDeviceResyncReq).
        DeviceSpec {
            clock_offset: -20.0,
            ..base(5)
        }
        .with_faults(Faults {
            reboot_keeps_old_version: true,
            no_app_time_req: true,
            ..Faults::default()
        }),
    ];
    let s = set_up(specs, json!({})).await;
    let api = s.api();
    let ids: Vec<String> = s.fleet.devices.iter().map(|d| d.id.clone()).collect();
    let before = device_statuses(api, &s.task).await;
    for id in &ids {
        assert_eq!(
            entry(&before, id)["FuotaDeviceStatus"],
            "Initial",
            "{before:?}"
        );
    }

    let (done, seen) = run_to_done(&s, Duration::from_secs(240)).await;
    assert_eq!(
        seen.iter()
            .filter(|x| *x != "Pending")
            .cloned()
            .collect::<Vec<_>>(),
        ["FuotaSession_Waiting", "In_FuotaSession", "FuotaDone"],
        "{done}"
    );
    let list = device_statuses(api, &s.task).await;
    let report = format!("{list:#?}\n{}", s.fleet.report());
    let status = |i: usize| entry(&list, &ids[i])["FuotaDeviceStatus"].clone();
    let reason = |i: usize| {
        entry(&list, &ids[i])["FuotaDeviceStatusReason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // 0: the new firmware runs, and the server says so.
    assert_eq!(s.fleet.state(0).app.firmware.running, NEW_FW, "{report}");
    assert_eq!(status(0), "Successful", "{report}");
    let trace = s.fleet.state(0).trace.clone();
    let got = requests(&trace);
    assert_eq!(
        got.first(),
        Some(&(202, 0x01)),
        "AppTimeAns first: {got:02x?}"
    );
    assert!(in_order(&got, &SEQUENCE), "sequence {got:02x?}\n{report}");
    assert!(
        s.fleet.state(0).app.clock_offset.abs() <= 1.0,
        "clock corrected: {report}"
    );

    // 1: Not_enough_memory, nothing installed.
    assert_eq!(status(1), "Not_enough_memory", "{report}");
    assert_eq!(s.fleet.state(1).app.firmware.running, OLD_FW);

    // 2: MissingFrag; the device really misses fragments and kept its firmware.
    assert_eq!(status(2), "MissingFrag", "{report}");
    {
        let st = s.fleet.state(2);
        assert!(
            st.mc_lost > 0 && st.app.firmware.running == OLD_FW,
            "{report}"
        );
    }

    // 3: stays Initial with the reason; it never got into the session.
    assert_eq!(status(3), "Initial", "{report}");
    let r = reason(3);
    assert!(
        r.contains("McClassCSessionReq") && r.contains("3 tries"),
        "reason {r:?}"
    );
    assert_eq!(s.fleet.state(3).mc_accepted, 0);

    // 4: not Successful although it rebuilt the image and rebooted: the old version still
    // runs, MemoryError ("image not installed", end-devices.md §7.1).
    assert_eq!(status(4), "MemoryError", "{report}");
    {
        let st = s.fleet.state(4);
        assert_eq!(st.app.firmware.reboots, 1, "{report}");
        assert_eq!(st.app.firmware.running, OLD_FW);
        let got = requests(&st.trace);
        assert_eq!(
            got.first(),
            Some(&(202, 0x03)),
            "ForceDeviceResyncReq: {got:02x?}"
        );
    }
    for i in 1..5 {
        assert!(!reason(i).is_empty(), "device {i} has a reason: {report}");
    }

    // The counts add up to the five devices.
    let counts = &done["DeviceStatusCounts"];
    let want = json!({"Successful": 1, "Not_enough_memory": 1, "MissingFrag": 1, "Initial": 1,
        "MemoryError": 1});
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&counts[k], v, "{k} in {counts}");
    }
    let total: u64 = counts
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 5, "{counts}");
    s.fleet.stop().await;
}

#[tokio::test]
async fn bad_answers_are_ignored_and_the_others_are_unaffected() {
    // Each spoiled answer (wrong CID, truncated, oversized, duplicated, another FragIndex or
    // McGroupID) comes once; the device answers right when asked again.
    let base = |n| DeviceSpec::numbered(n, OLD_FW);
    let spoil = |n, port, cid, how| {
        base(n).with_faults(Faults {
            corrupt: Some((port, cid, how)),
            ..Faults::default()
        })
    };
    let specs = vec![
        // 0: clean, and reports its version unsolicited after the reboot.
        base(11).with_faults(Faults {
            unsolicited_version_after_reboot: true,
            ..Faults::default()
        }),
        spoil(12, 201, 0x02, Corrupt::WrongCid(0x07)),
        spoil(13, 200, 0x04, Corrupt::Truncate(2)),
        spoil(14, 201, 0x01, Corrupt::Oversize(3)),
        spoil(15, 200, 0x02, Corrupt::Duplicate),
        spoil(16, 201, 0x02, Corrupt::OtherIndex),
        spoil(17, 200, 0x02, Corrupt::OtherIndex),
        // 7: has no multicast group slot 0 (McGroupSetupAns IDerror).
        base(18).with_faults(Faults {
            mc_group_slots: 0,
            ..Faults::default()
        }),
    ];
    let s = set_up(specs, json!({})).await;
    let api = s.api();
    let (done, _) = run_to_done(&s, Duration::from_secs(240)).await;
    let list = device_statuses(api, &s.task).await;
    let report = format!("{list:#?}\n{}", s.fleet.report());
    let refused = entry(&list, &s.fleet.devices[7].id);
    assert_eq!(
        refused["FuotaDeviceStatus"], "Package_Not_Supported",
        "{report}"
    );
    let reason = refused["FuotaDeviceStatusReason"].as_str().unwrap_or("");
    assert!(reason.contains("IDerror"), "{reason:?}");
    assert_eq!(
        done["DeviceStatusCounts"]["Package_Not_Supported"], 1,
        "{done}"
    );
    for (i, d) in s.fleet.devices.iter().enumerate().take(7) {
        // One spoiled answer costs a retry, not the update.
        assert_eq!(
            entry(&list, &d.id)["FuotaDeviceStatus"],
            "Successful",
            "device {i}: {report}"
        );
        assert_eq!(s.fleet.state(i).app.firmware.running, NEW_FW, "{report}");
    }
    // The spoiled requests were asked again (they were not taken as answered).
    for (i, cid) in [
        (1, (201u8, 0x02u8)),
        (2, (200, 0x04)),
        (5, (201, 0x02)),
        (6, (200, 0x02)),
    ] {
        let trace = s.fleet.state(i).trace.clone();
        let asked = trace
            .iter()
            .filter(|l| l.contains(&format!(" down {} {:02x}", cid.0, cid.1)))
            .count();
        assert!(
            asked >= 2,
            "device {i} asked {asked} times for {cid:02x?}: {report}"
        );
    }
    assert_eq!(done["DeviceStatusCounts"]["Successful"], 7, "{done}");
    s.fleet.stop().await;
}

#[tokio::test]
async fn associating_devices_refuses_what_cannot_work() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let profile = create_profile(&api, INTERVAL_S).await;
    let a = DeviceSpec::numbered(21, OLD_FW);
    let id = create_device(&api, &profile, &a).await;
    // A device without GenAppKey cannot receive the McKey: 400 naming GenAppKey.
    let b = DeviceSpec::numbered(22, OLD_FW);
    let no_gen = api
        .call(
            Method::POST,
            "/wireless-devices",
            Some(device_body(&profile, &b, false)),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let img = image(NEW_FW);
    let t1 = fuota::create_fuota_task(&api, &img, json!({"ExpectedFirmwareVersion": NEW_FW}))
        .await
        .unwrap();
    let t2 = fuota::create_fuota_task(&api, &img, json!({"ExpectedFirmwareVersion": "0x02000001"}))
        .await
        .unwrap();
    let err = associate_device(&api, &t1, &no_gen).await.unwrap_err();
    assert!(err.starts_with("400") && err.contains("GenAppKey"), "{err}");

    associate_device(&api, &t1, &id).await.unwrap();
    let list = device_statuses(&api, &t1).await;
    assert_eq!(
        entry(&list, &id)["FuotaDeviceStatus"],
        "Initial",
        "{list:?}"
    );
    // Already in another unfinished task: 409.
    let err = associate_device(&api, &t2, &id).await.unwrap_err();
    assert!(err.starts_with("409"), "{err}");
    // Out of the first task, it can join the second.
    let (code, body) = api
        .send(
            Method::DELETE,
            &format!("/fuota-tasks/{t1}/wireless-devices/{id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 204, "{}", String::from_utf8_lossy(&body));
    assert!(device_statuses(&api, &t1).await.is_empty());
    associate_device(&api, &t2, &id).await.unwrap();
    assert_eq!(device_statuses(&api, &t2).await.len(), 1);
}

/// The harness on its own: devices join through two gateways, keep their uplink clock (their
/// first uplink carries the AppTimeReq), the server sees their uplinks (events), and after a
/// server restart the gateways reconnect and the uplinks go on.
#[tokio::test]
async fn a_fleet_joins_through_two_gateways_and_keeps_its_uplink_clock() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let profile = create_profile(&api, 1).await;
    let mut devices = Vec::new();
    for n in 31..34 {
        let spec = DeviceSpec::numbered(n, OLD_FW);
        devices.push((create_device(&api, &profile, &spec).await, spec));
    }
    let cfg = FleetConfig {
        interval: Duration::from_secs(1),
        gateways: 2,
        ..FleetConfig::default()
    };
    let fleet = Fleet::start(&api, srv.running.lns_addr, devices, cfg).await;
    fleet.joined(Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while (0..3).any(|i| fleet.state(i).uplinks < 3) {
        assert!(Instant::now() < deadline, "{}", fleet.report());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, d) in fleet.devices.iter().enumerate() {
        let st = fleet.state(i).clone();
        assert!(
            st.trace.iter().any(|l| l.contains(" up 202 01")),
            "AppTimeReq went out: {}",
            st.report()
        );
        assert!(
            !st.trace.iter().any(|l| l.contains("error")),
            "{}",
            st.report()
        );
        let evs = api
            .call(
                Method::GET,
                &format!("/wireless-devices/{}/events", d.id),
                None,
            )
            .await
            .unwrap();
        let ups = evs["Events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["Type"] == "up")
            .count();
        // The AppTimeReq on port 202 is the server's own (no event); port 2 ones are not.
        assert!(ups >= 1, "{evs}");
    }
    // The server restarts; the gateways come back and the uplinks with them.
    let before: Vec<u32> = (0..3).map(|i| fleet.state(i).uplinks).collect();
    let srv = srv.restart().await;
    fleet.reconnect(srv.running.lns_addr).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while counter(&srv, "uplinks") < 3 {
        assert!(Instant::now() < deadline, "{}", fleet.report());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, b) in before.iter().enumerate() {
        assert!(fleet.state(i).uplinks > *b, "{}", fleet.report());
    }
    fleet.stop().await;
}

fn counter(srv: &TestServer, name: &str) -> u64 {
    let all = srv.running.app.devices.counters.snapshot();
    all.into_iter().find(|(n, _)| *n == name).unwrap().1
}

/// McKey_encrypted for a device: aes128_decrypt(McKEKey, McKey) (fuota.md §5), the network's
/// direction, computed here from the spec.
fn mc_key_encrypted(gen_app_key: &[u8; 16], mc_key: &[u8; 16]) -> [u8; 16] {
    use aes::cipher::{BlockDecrypt, KeyInit};
    use common::lorawan_device::applayer::{mc_ke_key, mc_root_key_10x};
    let ke = mc_ke_key(&mc_root_key_10x(gen_app_key));
    let mut b = (*mc_key).into();
    aes::Aes128::new(&ke.into()).decrypt_block(&mut b);
    b.into()
}

/// The harness's multicast path on today's server, without the control plane: the devices
/// are given the group and sessions by hand (McGroupSetupReq computed here, the task's own
/// `DeviceSetup` commands), then hear the fragments the gateways put on air. The one losing
/// three uncoded fragments rebuilds the image; the one losing all after the third does not.
#[tokio::test]
async fn fleet_devices_hear_a_multicast_session_and_rebuild_the_image() {
    let srv = TestServer::start().await;
    let api = srv.api();
    let profile = create_profile(&api, 2).await;
    let specs = vec![
        DeviceSpec::numbered(41, OLD_FW).with_faults(Faults {
            loss: Loss::Set(HashSet::from([1, 2, 3])),
            ..Faults::default()
        }),
        DeviceSpec::numbered(42, OLD_FW).with_faults(Faults {
            loss: Loss::From(4),
            ..Faults::default()
        }),
    ];
    let mut devices = Vec::new();
    for s in specs {
        devices.push((create_device(&api, &profile, &s).await, s));
    }
    let cfg = FleetConfig {
        gateways: 2,
        ..FleetConfig::default()
    };
    let fleet = Fleet::start(&api, srv.running.lns_addr, devices, cfg).await;
    fleet.joined(Duration::from_secs(30)).await;

    let group = fuota::create_group(&api, "ClassC").await;
    fuota::set_session(
        &api,
        &group,
        json!({"SessionStartTime": fuota::in_secs(4), "SessionTimeout": 64}),
    )
    .await
    .unwrap();
    let img = image(NEW_FW);
    let task = fuota::create_fuota_task(&api, &img, json!({}))
        .await
        .unwrap();
    fuota::associate(&api, &task, &group).await.unwrap();
    let setup = self::task(&api, &task).await["DeviceSetup"].clone();
    let mc_key: [u8; 16] = hex::decode(fuota::MC_KEY).unwrap().try_into().unwrap();
    for i in 0..2 {
        let mut st = fleet.state(i);
        let mut req = vec![0x02, 0x00];
        req.extend(fuota::MC_ADDR.to_le_bytes());
        req.extend(mc_key_encrypted(&st.spec.gen_app_key, &mc_key));
        req.extend(0u32.to_le_bytes());
        req.extend(u32::MAX.to_le_bytes());
        let now = common::lorawan_device::applayer::gps_now();
        st.app.downlink(200, &req, now).unwrap();
        for (port, key) in [(200, "McClassCSessionReq"), (201, "FragSessionSetupReq")] {
            let cmd = hex::decode(setup[key].as_str().unwrap()).unwrap();
            st.app.downlink(port, &cmd, now).unwrap();
        }
        assert!(st.app.session.is_some(), "{}", st.report());
    }
    fuota::start_fuota(&api, &task, json!({})).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = self::task(&api, &task).await;
        if t["Status"] == "FuotaDone" {
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = fleet.report();
    {
        let st = fleet.state(0);
        // 17 frames from each of two gateways: 14 heard once, the copies dropped.
        assert_eq!(st.mc_accepted, 14, "{report}");
        assert_eq!(
            st.app.frag[0].as_ref().unwrap().image.as_deref(),
            Some(&img[..])
        );
        assert_eq!(st.app.firmware.stored.map(|s| s.0), Some(NEW_FW));
    }
    {
        let st = fleet.state(1);
        assert!(st.app.firmware.stored.is_none(), "{report}");
        assert!(st.app.frag[0].as_ref().unwrap().decoder.missing() > 0);
    }
    fleet.stop().await;
}

/// Every device's FuotaDeviceStatus is Successful and the new firmware runs on it.
async fn assert_all_successful(api: &ApiClient, task_id: &str, fleet: &Fleet) {
    let list = device_statuses(api, task_id).await;
    let report = format!("{list:#?}\n{}", fleet.report());
    for (i, d) in fleet.devices.iter().enumerate() {
        assert_eq!(
            entry(&list, &d.id)["FuotaDeviceStatus"],
            "Successful",
            "device {i}: {report}"
        );
        assert_eq!(fleet.state(i).app.firmware.running, NEW_FW, "{report}");
    }
}

#[tokio::test]
async fn a_class_b_session_updates_the_devices_that_hear_it() {
    let srv = TestServer::start().await;
    let (api, lns) = (srv.api(), srv.running.lns_addr);
    let specs = vec![
        DeviceSpec::numbered(51, OLD_FW),
        DeviceSpec::numbered(52, OLD_FW).with_faults(Faults {
            loss: Loss::From(1),
            ..Faults::default()
        }),
    ];
    // DR3 ping slots about every second (PingSlotPeriod 32); 64 octets: M = 4, R = 2.
    let plan = Plan {
        class: "ClassB",
        session_extra: json!({"DlDr": 3, "PingSlotPeriod": 32}),
        image: image_of(NEW_FW, 64),
        pps: true,
        profile_extra: json!({"SupportsClassB": true}),
        ..Plan::class_c(specs)
    };
    let (fleet, task) = set_up_on(&api, lns, plan).await;
    fuota::start_fuota(&api, &task, json!({})).await.unwrap();
    wait_done(&api, &task, &fleet, Duration::from_secs(400)).await;
    let list = device_statuses(&api, &task).await;
    let report = format!("{list:#?}\n{}", fleet.report());
    {
        let st = fleet.state(0);
        let s = st.app.log.iter().any(|l| l.contains("session (CID 0x05)"));
        assert!(s, "a McClassBSessionReq set the session up: {report}");
        assert_eq!(st.app.firmware.running, NEW_FW, "{report}");
        assert_eq!(st.mc_refused, 0, "{report}");
    }
    assert_eq!(
        entry(&list, &fleet.devices[0].id)["FuotaDeviceStatus"],
        "Successful",
        "{report}"
    );
    assert_eq!(
        entry(&list, &fleet.devices[1].id)["FuotaDeviceStatus"],
        "MissingFrag",
        "{report}"
    );
    fleet.stop().await;
}

/// Waits until `pred` holds for some device; its index.
async fn until_a_device(fleet: &Fleet, what: &str, pred: impl Fn(&DeviceState) -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(i) = (0..fleet.devices.len()).find(|&i| pred(&fleet.state(i))) {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no device {what}:\n{}",
            fleet.report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real server process with a fleet and a task (three devices), started.
async fn started_process(dir: &std::path::Path) -> (std::path::PathBuf, Proc, Fleet, String) {
    let cfg = process::write_lns_config(dir);
    let p = process::launch(&cfg);
    let api = p.api();
    let specs = (61..64).map(|n| DeviceSpec::numbered(n, OLD_FW)).collect();
    let (fleet, task) = set_up_on(&api, p.lns, Plan::class_c(specs)).await;
    fuota::start_fuota(&api, &task, json!({})).await.unwrap();
    (cfg, p, fleet, task)
}

fn kill_9(p: &mut Proc) {
    p.child.kill().unwrap(); // SIGKILL: no drain, no shutdown code runs
    p.child.wait().unwrap();
}

#[tokio::test]
async fn a_kill_9_mid_setup_resumes_without_repeating_answered_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, mut p, fleet, task) = started_process(dir.path()).await;
    // Kill one second after the first McGroupSetupAns went up.
    until_a_device(&fleet, "answered McGroupSetupReq", |st| {
        st.trace.iter().any(|l| l.contains(" up 200 02"))
    })
    .await;
    // The answers that went up by now have a second to be recorded before the
    // kill. One that goes up during that second may die with the process
    // unrecorded, and then asking again is right: those are not checked.
    let marks: Vec<(usize, bool)> = (0..fleet.devices.len())
        .map(|i| {
            let st = fleet.state(i);
            let answered = st.trace.iter().any(|l| l.contains(" up 200 02"));
            (st.trace.len(), answered)
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    kill_9(&mut p);
    for i in 0..fleet.devices.len() {
        assert_eq!(
            fleet.state(i).mc_accepted,
            0,
            "killed before the session: {}",
            fleet.report()
        );
    }
    let p2 = process::launch(&cfg);
    fleet.reconnect(p2.lns).await;
    let api = p2.api();
    wait_done(&api, &task, &fleet, Duration::from_secs(240)).await;
    assert_all_successful(&api, &task, &fleet).await;
    for (i, (mark, answered)) in marks.into_iter().enumerate() {
        let st = fleet.state(i);
        let again = st.trace[mark..].iter().any(|l| l.contains(" down 200 02"));
        assert!(
            !(answered && again),
            "device {i} answered McGroupSetupReq before the kill and got it again:\n{}",
            st.report()
        );
    }
    fleet.stop().await;
}

#[tokio::test]
async fn a_kill_9_mid_session_resumes_without_reusing_a_multicast_counter() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, mut p, fleet, task) = started_process(dir.path()).await;
    until_a_device(&fleet, "heard 3 fragments", |st| st.mc_accepted >= 3).await;
    kill_9(&mut p);
    // 17 frames (M 13 + R 4): the kill cut the session.
    let heard: Vec<u32> = (0..3).map(|i| fleet.state(i).mc_accepted).collect();
    assert!(
        heard.iter().all(|&n| n < 17),
        "killed mid-session: {heard:?}"
    );
    let p2 = process::launch(&cfg);
    fleet.reconnect(p2.lns).await;
    let api = p2.api();
    wait_done(&api, &task, &fleet, Duration::from_secs(240)).await;
    assert_all_successful(&api, &task, &fleet).await;
    for i in 0..fleet.devices.len() {
        // A reused counter shows as a refused frame at the device.
        assert_eq!(fleet.state(i).mc_refused, 0, "{}", fleet.report());
    }
    fleet.stop().await;
}
