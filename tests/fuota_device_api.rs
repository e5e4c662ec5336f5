//! The operator's side of FUOTA with devices (issue: FUOTA end to end): associating
//! devices with tasks and groups with AWS's paths, every refusal named (no
//! GenAppKey, a class A-only profile in a class C session, another region, a
//! device in another unfinished task, a StartTime too close for the setup), the
//! task's and group's device lists, and what GetFuotaTask shows once started.

mod common;

use common::fuota::in_secs;
use common::server::TestServer;
use hyper::Method;
use serde_json::{json, Value};

async fn profile(srv: &TestServer, region: &str, class_c: bool) -> String {
    srv.call(
        Method::POST,
        "/device-profiles",
        Some(
            json!({"Name": "p", "LoRaWAN": {"MacVersion": "1.0.3", "RfRegion": region,
            "SupportsJoin": true, "SupportsClassC": class_c, "UplinkIntervalSeconds": 60}}),
        ),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn device(srv: &TestServer, profile: &str, dev_eui: u64, gen_app_key: bool) -> String {
    let mut otaa =
        json!({"AppKey": "000102030405060708090a0b0c0d0e0f", "JoinEui": "70b3d57ed0001234"});
    if gen_app_key {
        otaa["GenAppKey"] = json!("0f0e0d0c0b0a09080706050403020100");
    }
    srv.call(
        Method::POST,
        "/wireless-devices",
        Some(json!({"Type": "LoRaWAN", "DestinationName": "app1",
            "LoRaWAN": {"DevEui": format!("{dev_eui:016x}"), "DeviceProfileId": profile, "OtaaV1_0_x": otaa}})),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn put_device(srv: &TestServer, path: &str, device: &str) -> Result<Value, String> {
    srv.call(Method::PUT, path, Some(json!({"WirelessDeviceId": device})))
        .await
}

#[tokio::test]
async fn associations_refuse_what_cannot_work_and_name_why() {
    let srv = TestServer::start().await;
    srv.create_gateway(0x1).await;
    let eu_c = profile(&srv, "EU868", true).await;
    let eu_a = profile(&srv, "EU868", false).await;
    let us_c = profile(&srv, "US915", true).await;
    let good = device(&srv, &eu_c, 0xd1, true).await;
    let keyless = device(&srv, &eu_c, 0xd2, false).await;
    let class_a = device(&srv, &eu_a, 0xd3, true).await;
    let american = device(&srv, &us_c, 0xd4, true).await;
    let group = srv.create_group("ClassC").await;
    srv.set_session(&group, json!({})).await.unwrap();
    let task = srv
        .create_fuota_task(
            &[7u8; 100],
            json!({"ExpectedFirmwareVersion": "0x02010000"}),
        )
        .await
        .unwrap();
    srv.associate(&task, &group).await.unwrap();
    let to_task = format!("/fuota-tasks/{task}/wireless-device");
    let to_group = format!("/multicast-groups/{group}/wireless-device");

    let e = put_device(&srv, &to_task, &keyless).await.unwrap_err();
    assert!(e.contains("400") && e.contains("GenAppKey"), "{e}");
    let e = put_device(&srv, &to_group, &class_a).await.unwrap_err();
    assert!(e.contains("400") && e.contains("SupportsClassC"), "{e}");
    let e = put_device(&srv, &to_task, &american).await.unwrap_err();
    assert!(e.contains("400") && e.contains("US915"), "{e}");
    let e = put_device(&srv, &to_task, "no-such-device")
        .await
        .unwrap_err();
    assert!(e.contains("404"), "{e}");

    put_device(&srv, &to_task, &good).await.unwrap();
    // The same device in a second unfinished task: AWS's conflict.
    let other = srv.create_fuota_task(&[8u8; 100], json!({})).await.unwrap();
    let e = put_device(
        &srv,
        &format!("/fuota-tasks/{other}/wireless-device"),
        &good,
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("409") && e.contains("Device_exist_in_conflict_fuota_task"),
        "{e}"
    );

    let list = srv
        .get(&format!("/wireless-devices?fuotaTaskId={task}"))
        .await;
    let entries = list["WirelessDeviceList"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["Id"], json!(good));
    assert_eq!(entries[0]["FuotaDeviceStatus"], "Initial");

    // A StartTime that leaves no room for four uplinks of 60 s each.
    let e = srv
        .start_fuota(&task, json!({"StartTime": in_secs(30)}))
        .await
        .unwrap_err();
    assert!(e.contains("too close") && e.contains("240 s"), "{e}");
    let e = srv
        .start_fuota(&task, json!({"StartTime": in_secs(-30)}))
        .await
        .unwrap_err();
    assert!(e.contains("in the past"), "{e}");

    // Without a StartTime the control plane runs and fixes SessionTime itself.
    srv.start_fuota(&task, json!({})).await.unwrap();
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["Status"], "FuotaSession_Waiting");
    assert_eq!(t["WirelessDevices"], 1);
    assert_eq!(t["DeviceStatusCounts"], json!({"Initial": 1}));
    assert_eq!(t["ExpectedFirmwareVersion"], "0x02010000");
    let plan = &t["ControlPlan"];
    assert_eq!(plan["UplinkIntervalSeconds"], 60);
    assert_eq!(plan["SessionTime"], Value::Null);
    assert!(plan["EstimatedFuotaDone"].is_string(), "{plan}");
    // A started task's devices are fixed.
    let e = srv
        .call(
            Method::DELETE,
            &format!("/fuota-tasks/{task}/wireless-devices/{good}"),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.contains("409"), "{e}");
    let step = &srv
        .get(&format!("/wireless-devices?fuotaTaskId={task}"))
        .await["WirelessDeviceList"][0];
    assert_eq!(step["FuotaStep"], "ClockSync", "{step}");

    // Group membership lists, and a bulk association by device profile.
    put_device(&srv, &to_group, &good).await.unwrap_err(); // the group now carries a running task
    let g2 = srv.create_group("ClassC").await;
    let d5 = device(&srv, &eu_c, 0xd5, true).await;
    srv.call(
        Method::PATCH,
        &format!("/multicast-groups/{g2}/bulk"),
        Some(json!({"QueryString": format!("deviceProfileId={eu_c}")})),
    )
    .await
    .unwrap_err(); // keyless (no GenAppKey) has this profile too: refused, none added
    srv.call(
        Method::DELETE,
        &format!("/wireless-devices/{keyless}"),
        None,
    )
    .await
    .unwrap();
    srv.call(
        Method::PATCH,
        &format!("/multicast-groups/{g2}/bulk"),
        Some(json!({"QueryString": format!("deviceProfileId={eu_c}")})),
    )
    .await
    .unwrap();
    let members = srv
        .get(&format!("/wireless-devices?multicastGroupId={g2}"))
        .await;
    let ids: Vec<&str> = members["WirelessDeviceList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&good.as_str()) && ids.contains(&d5.as_str()),
        "{members}"
    );
    assert_eq!(members["WirelessDeviceList"][0]["McGroupId"], 1);
}
