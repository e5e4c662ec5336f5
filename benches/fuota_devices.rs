//! FUOTA with devices, end to end (issue #15's figure): N simulated class A devices (the
//! test-side device and fleet of `tests/common`, written from the specs) join a real
//! `stationkeeper serve` process through simulated gateways, are put into one FUOTA task with
//! `ExpectedFirmwareVersion`, and the task is started; the tool prints the time from start to
//! each task status (FuotaSession_Waiting, In_FuotaSession, FuotaDone), the device status
//! counts, and the task's plan, so the figure can be set against the bound computed by hand.
//!
//! ```sh
//! cargo bench --bench fuota_devices -- --devices 100 --interval 60 --image 65536
//! ```
//!
//! Options (defaults): `--devices 100`, `--interval 60` (s, the devices' uplink period and
//! their profile's UplinkIntervalSeconds), `--jitter 0.2`, `--image 65536` (octets),
//! `--frag-size 200`, `--redundancy 10` (%), `--dr 5` (the multicast DR, EU868, on 869.525
//! MHz), `--gateways 1`, `--timeout 7200` (s), `--fpending` (devices uplink again as soon as
//! their windows closed after a downlink with FPending). The image is built here (its first four octets
//! carry the new version, which the simulated device reads as its FWversion).
//!
//! A harness-less bench target because the device simulator needs the dev-dependencies
//! (`cmac`); cargo builds it in release, with the release server binary.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::fuota;
use common::fuota_fleet::{create_device, create_profile, DeviceSpec, Fleet, FleetConfig};
use common::process;
use hyper::Method;
use serde_json::{json, Value};

const OLD_FW: u32 = 0x0100_0000;
const NEW_FW: u32 = 0x0200_0000;

struct Args {
    devices: u32,
    interval: u64,
    jitter: f64,
    image: usize,
    frag_size: u32,
    redundancy: u32,
    dr: u8,
    gateways: usize,
    timeout: u64,
    fpending: bool,
}

fn args() -> Args {
    let mut a = Args {
        devices: 100,
        interval: 60,
        jitter: 0.2,
        image: 65_536,
        frag_size: 200,
        redundancy: 10,
        dr: 5,
        gateways: 1,
        timeout: 7200,
        fpending: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        if k == "--bench" {
            continue; // cargo bench passes it
        }
        if k == "--fpending" {
            a.fpending = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| {
            panic!("{k} needs a value; see the header of benches/fuota_devices.rs")
        });
        match k.as_str() {
            "--devices" => a.devices = num(k, v),
            "--interval" => a.interval = num(k, v),
            "--jitter" => a.jitter = num(k, v),
            "--image" => a.image = num(k, v),
            "--frag-size" => a.frag_size = num(k, v),
            "--redundancy" => a.redundancy = num(k, v),
            "--dr" => a.dr = num(k, v),
            "--gateways" => a.gateways = num(k, v),
            "--timeout" => a.timeout = num(k, v),
            _ => panic!("unknown option {k}; see the header of benches/fuota_devices.rs"),
        }
    }
    a
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> T
where
    T::Err: std::fmt::Display,
{
    v.parse().unwrap_or_else(|e| panic!("{k} {v:?}: {e}"))
}

fn image(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    let mut img: Vec<u8> = (0..len.max(4))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    img[..4].copy_from_slice(&NEW_FW.to_le_bytes());
    img
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::write_lns_config(dir.path());
    let mut p = process::launch(&cfg);
    let api = p.api();
    println!(
        "devices {} interval {} s image {} B frag {} B redundancy {} % DR{} gateways {}",
        a.devices, a.interval, a.image, a.frag_size, a.redundancy, a.dr, a.gateways
    );

    let interval = u32::try_from(a.interval).expect("--interval fits u32");
    let profile = create_profile(&api, interval).await;
    let mut devices = Vec::new();
    for n in 0..a.devices {
        let spec = DeviceSpec::numbered(n, OLD_FW);
        devices.push((create_device(&api, &profile, &spec).await, spec));
    }
    let group = fuota::create_group(&api, "ClassC").await;
    fuota::set_session(
        &api,
        &group,
        json!({"DlDr": a.dr, "SessionTimeout": 4 * 3600}),
    )
    .await
    .unwrap();
    let task = fuota::create_fuota_task(
        &api,
        &image(a.image),
        json!({"RedundancyPercent": a.redundancy, "FragmentSizeBytes": a.frag_size,
            "ExpectedFirmwareVersion": format!("{NEW_FW:#010x}")}),
    )
    .await
    .unwrap();
    fuota::associate(&api, &task, &group).await.unwrap();
    for (id, _) in &devices {
        api.call(
            Method::PUT,
            &format!("/fuota-tasks/{task}/wireless-device"),
            Some(json!({"WirelessDeviceId": id})),
        )
        .await
        .unwrap();
    }

    let fcfg = FleetConfig {
        interval: Duration::from_secs(a.interval),
        jitter: a.jitter,
        gateways: a.gateways,
        answer_fpending: a.fpending,
        ..FleetConfig::default()
    };
    let t_join = Instant::now();
    let fleet = Fleet::start(&api, p.lns, devices, fcfg).await;
    fleet.joined(Duration::from_secs(a.timeout)).await;
    println!("joined: {:.1} s", t_join.elapsed().as_secs_f64());

    let plan = api
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
        .unwrap();
    println!("plan: {}", plan["Plan"]);
    let t0 = Instant::now();
    fuota::start_fuota(&api, &task, json!({})).await.unwrap();
    let mut last = String::new();
    let done: Value = loop {
        let t = api
            .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
            .await
            .unwrap();
        let st = t["Status"].as_str().unwrap_or("?").to_string();
        if st != last {
            println!("{:9.1} s  {st}", t0.elapsed().as_secs_f64());
            last = st.clone();
        }
        if st == "FuotaDone" {
            break t;
        }
        if t0.elapsed() > Duration::from_secs(a.timeout) {
            println!("timeout after {} s: {t}", a.timeout);
            break t;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let secs = t0.elapsed().as_secs_f64();
    println!("start -> {last}: {secs:.1} s");
    println!("DeviceStatusCounts: {}", done["DeviceStatusCounts"]);
    for k in ["Plan", "DeviceSetupPlan", "Progress"] {
        if !done[k].is_null() {
            println!("{k}: {}", done[k]);
        }
    }
    // Why devices did not succeed, by reason; and the harness's own errors.
    let list = api
        .call(
            Method::GET,
            &format!("/wireless-devices?fuotaTaskId={task}"),
            None,
        )
        .await
        .unwrap();
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for e in list["WirelessDeviceList"].as_array().into_iter().flatten() {
        if e["FuotaDeviceStatus"] != "Successful" {
            let r = format!(
                "{}: {}",
                e["FuotaDeviceStatus"].as_str().unwrap_or("?"),
                e["FuotaDeviceStatusReason"].as_str().unwrap_or("")
            );
            *reasons.entry(r).or_default() += 1;
        }
    }
    for (r, n) in &reasons {
        println!("  {n:4} × {r}");
    }
    let errors: usize = (0..fleet.devices.len())
        .map(|i| {
            fleet
                .state(i)
                .trace
                .iter()
                .filter(|l| l.contains("error"))
                .count()
        })
        .sum();
    println!("harness errors (refused dnmsgs, failed uplinks): {errors}");
    if std::env::var_os("FUOTA_FLEET_REPORT").is_some() {
        println!("{}", fleet.report());
    }
    let updated = (0..fleet.devices.len())
        .filter(|&i| fleet.state(i).app.firmware.running == NEW_FW)
        .count();
    println!("devices running the new firmware: {updated}/{}", a.devices);
    fleet.stop().await;
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}
