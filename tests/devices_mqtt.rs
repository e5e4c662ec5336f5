//! The device path through a real MQTT broker, as an application sees it: a
//! device's join and uplink arrive on ChirpStack's topics with its JSON, and a
//! downlink published to the command topic reaches the device (class C: at once,
//! checked by the independent device simulator). mosquitto is started by the test
//! on a free port; without it the test skips, except under `CI=true`.

mod common;

use std::time::Duration;

use common::integration::{mosquitto_or_skip, Mosquitto, TestClient};
use common::lns_station::session::{RadioMeta, ServerMessage};
use common::lorawan_device::{Device, MacVersion, Region, Uplink};
use common::server::{TestServer, LNS_URI};
use hyper::Method;
use rumqttc::QoS;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);
const APP_KEY: [u8; 16] = [7; 16];
const JOIN_EUI: u64 = 0x70b3_d57e_d000_0001;
const DEV_EUI: u64 = 0x0080_e115_0000_7777;

/// The next message on the broker whose topic ends with `suffix`.
async fn next_on(client: &mut TestClient, suffix: &str) -> (String, Value) {
    loop {
        let (topic, body) = client
            .next(10)
            .await
            .unwrap_or_else(|| panic!("nothing on …{suffix}"));
        if topic.ends_with(suffix) {
            return (topic, serde_json::from_slice(&body).unwrap());
        }
    }
}

#[tokio::test]
async fn events_reach_the_broker_and_a_published_command_reaches_the_device() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let broker = Mosquitto::start(bin);
    let url = broker.url();
    let srv = TestServer::start_with(move |c| c.integration.mqtt.url = Some(url)).await;
    let mut app = TestClient::connect(broker.port, "application", "application/#").await;

    let profile = srv
        .call(
            Method::POST,
            "/device-profiles",
            Some(json!({"LoRaWAN": {"MacVersion": "1.0.3", "RfRegion": "US915", "SupportsClassC": true}})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    srv.call(
        Method::POST,
        "/wireless-devices",
        Some(json!({"Type": "LoRaWAN", "DestinationName": "farm", "Name": "valve",
            "LoRaWAN": {"DevEui": format!("{DEV_EUI:016x}"), "DeviceProfileId": profile,
                "OtaaV1_0_x": {"AppKey": hex::encode(APP_KEY), "JoinEui": format!("{JOIN_EUI:016x}")}}})),
    )
    .await
    .unwrap();
    let (_, st) = srv
        .lns_gateway(0x6a, json!({"RfRegion": "US915", "SubBands": [2]}))
        .await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    let meta = RadioMeta {
        dr: 0,
        freq: 904_100_000,
        ..RadioMeta::default()
    };
    let mut dev = Device::otaa(
        Region::Us915,
        MacVersion::V1_0_3,
        DEV_EUI,
        JOIN_EUI,
        APP_KEY,
    );
    let dnmsg = |m: &ServerMessage| matches!(m, ServerMessage::Dnmsg { .. });

    s.send_phy(&dev.join_request(), &meta).await.unwrap();
    let ServerMessage::Dnmsg { msg, .. } = s.next_matching(T, dnmsg).await.unwrap() else {
        unreachable!()
    };
    dev.accept_join(msg.pdu.as_deref().unwrap()).unwrap();
    s.send_phy(
        &dev.uplink(&Uplink::unconfirmed(12, b"open?")).unwrap(),
        &meta,
    )
    .await
    .unwrap();

    let prefix = format!("application/farm/device/{DEV_EUI:016x}/event/");
    let (topic, join) = next_on(&mut app, "/event/join").await;
    assert_eq!(topic, format!("{prefix}join"));
    assert_eq!(join["deviceInfo"]["deviceName"], "valve");
    let (_, up) = next_on(&mut app, "/event/up").await;
    assert_eq!(up["data"], "b3Blbj8=", "the decrypted payload: {up}");
    assert_eq!(
        (up["fPort"].as_u64(), up["fCnt"].as_u64()),
        (Some(12), Some(0))
    );
    assert_eq!(up["rxInfo"][0]["gatewayId"], "000000000000006a");

    // The application answers through the command topic; a class C device gets it now.
    let command = json!({"devEui": format!("{DEV_EUI:016x}"), "confirmed": false, "fPort": 13, "data": "AQ=="});
    app.client
        .publish(
            format!("application/farm/device/{DEV_EUI:016x}/command/down"),
            QoS::AtLeastOnce,
            false,
            command.to_string(),
        )
        .await
        .unwrap();
    let ServerMessage::Dnmsg { msg, .. } = s.next_matching(T, dnmsg).await.unwrap() else {
        unreachable!()
    };
    assert_eq!(msg.raw["dC"], 2);
    let rx = dev.downlink(msg.pdu.as_deref().unwrap()).unwrap();
    assert_eq!(
        (rx.frame.fport, rx.frame.payload.as_slice()),
        (Some(13), &[1u8][..])
    );
    let (_, txack) = next_on(&mut app, "/event/txack").await;
    assert_eq!(txack["fCntDown"], 0);
}
