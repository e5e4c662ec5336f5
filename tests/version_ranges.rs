//! `LoRaWAN.CurrentVersionRange` on task definitions: one update for every
//! version in a semver range (Station and Model exact or a glob), through the
//! real server and the station simulator; ranges that do not parse are refused
//! with the field and the position of the error.

mod common;

use common::firmware::{b64, vector};
use common::server::TestServer;
use common::station::Station;
use hyper::Method;
use serde_json::{json, Value};

/// A confirmed gateway holding the test4 key and reporting `package`.
async fn gateway(srv: &TestServer, eui: u64, package: &str) -> (String, Station) {
    let id = srv.create_gateway(eui).await;
    let mut st = srv.station(eui, &srv.issue(&id, "CUPS", "Token").await);
    st.write_file("sig-0.key", vector("sig-0.key"));
    st.apply_update_version(package);
    for _ in 0..2 {
        assert!(st.poll(srv.cups()).await.is_success());
    }
    (id, st)
}

fn range_body(blob: &str, crc: u32, st: &Station, package_range: &str, station: &str) -> Value {
    json!({"AutoCreateTasks": true, "Name": "ranged",
        "Update": {"UpdateDataSource": blob, "LoRaWAN": {
            "SigKeyCrc": crc, "UpdateSignature": b64(&vector("v1.bin.sig-0")),
            "CurrentVersionRange": {"PackageVersion": package_range, "Station": station, "Model": st.model},
            "UpdateVersion": {"PackageVersion": "1.2.0", "Station": st.station_version, "Model": st.model}}}})
}

#[tokio::test]
async fn a_range_definition_updates_every_gateway_in_its_range_and_no_other() {
    let srv = TestServer::start().await;
    let (inside, mut a) = gateway(&srv, 0x0101, "1.1.3").await;
    let (outside, mut b) = gateway(&srv, 0x0102, "1.2.5").await;
    let (_, mut c) = gateway(&srv, 0x0103, "1.0").await;
    let blob = srv.upload(&vector("v1.bin")).await;
    let crc = srv.register_key(&vector("sig-0.key")).await;
    let glob = format!("{}*", &a.station_version[..3]);
    let def = srv
        .create_definition(range_body(
            blob["Id"].as_str().unwrap(),
            crc,
            &a,
            ">=1.0.0, <1.2.0",
            &glob,
        ))
        .await;
    let got = srv
        .get(&format!("/wireless-gateway-task-definitions/{def}"))
        .await;
    assert_eq!(
        got["Update"]["LoRaWAN"]["CurrentVersionRange"]["PackageVersion"],
        ">=1.0.0, <1.2.0"
    );

    let o = a.poll(srv.cups()).await;
    assert!(o.update_verified(), "1.1.3 is in the range: {:?}", o.error);
    let o = c.poll(srv.cups()).await;
    assert!(o.update_verified(), "1.0 reads as 1.0.0, in the range");
    let o = b.poll(srv.cups()).await;
    assert!(o.update.is_none(), "1.2.5 is outside the range");
    assert_eq!(srv.settled_task(&inside).await["Status"], "IN_PROGRESS");
    let (status, _) = srv
        .api()
        .send(
            Method::GET,
            &format!("/wireless-gateways/{outside}/tasks"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 404, "no task for the gateway outside the range");

    a.apply_update_version("1.2.0");
    assert!(a.poll(srv.cups()).await.is_success());
    assert_eq!(srv.task(&inside).await["Status"], "COMPLETED");
}

#[tokio::test]
async fn ranges_that_do_not_parse_are_refused_with_the_position() {
    let srv = TestServer::start().await;
    let st = Station::new(srv.dir.path().join("x"), 1);
    let blob = srv.upload(&vector("v1.bin")).await;
    let crc = srv.register_key(&vector("sig-0.key")).await;
    let blob = blob["Id"].as_str().unwrap();
    let cases = [
        (
            range_body(blob, crc, &st, ">=1.0.0, <1.x.y.z", "2.0.6*"),
            "LoRaWAN.CurrentVersionRange.PackageVersion \">=1.0.0, <1.x.y.z\": at position 9",
        ),
        (
            range_body(blob, crc, &st, "", "2.0.6*"),
            "LoRaWAN.CurrentVersionRange.PackageVersion \"\": at position 0",
        ),
        (
            range_body(blob, crc, &st, ">=1.0.0", "2.0.[6"),
            "LoRaWAN.CurrentVersionRange.Station \"2.0.[6\": at position 4",
        ),
    ];
    for (body, want) in cases {
        let (status, v) = call(&srv, body).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["Message"].as_str().unwrap().contains(want), "{v}");
    }
    let mut both = range_body(blob, crc, &st, ">=1.0.0", "2.0.6*");
    both["Update"]["LoRaWAN"]["CurrentVersion"] =
        json!({"PackageVersion": "1.0.0", "Station": "s", "Model": "m"});
    let (status, v) = call(&srv, both).await;
    assert_eq!(status, 400);
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("both CurrentVersion and CurrentVersionRange"),
        "{v}"
    );
}

async fn call(srv: &TestServer, body: Value) -> (u16, Value) {
    let (status, bytes) = srv
        .api()
        .send(
            Method::POST,
            "/wireless-gateway-task-definitions",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
        .unwrap();
    (status.as_u16(), serde_json::from_slice(&bytes).unwrap())
}
