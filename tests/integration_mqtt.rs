//! The MQTT integration against a real mosquitto: events arrive on ChirpStack's topics
//! with ChirpStack's JSON, commands on the command topic become `DownlinkCommand`s,
//! bad ones are refused, and a broker that dies never blocks `publish` (drops are
//! counted) and is reconnected to when it comes back.

mod common;

use std::time::{Duration, Instant};

use common::integration::*;
use rumqttc::QoS;
use serde_json::Value;
use stationkeeper::config::IntegrationConfig;
use stationkeeper::integration::{DownlinkCommand, Integrations};
use tokio_util::sync::CancellationToken;

fn config(url: &str, qos: u8, queue: usize) -> IntegrationConfig {
    let mut cfg = IntegrationConfig::default();
    cfg.mqtt.url = Some(url.to_string());
    cfg.mqtt.client_id = Some("stationkeeper-test".into());
    cfg.mqtt.qos = qos;
    cfg.mqtt.queue = queue;
    cfg.mqtt.reconnect_max_secs = 1;
    cfg
}

fn topic_of(name: &str) -> String {
    format!("application/{APP}/device/{DEV_EUI:016x}/event/{name}")
}

/// Publishes `up(f_cnt)` every 50 ms until the client sees it: the integration
/// connects in the background, and events before that may be dropped.
async fn publish_until_seen(i: &Integrations, client: &mut TestClient, f_cnt: u32, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        assert!(
            Instant::now() < deadline,
            "no event arrived within {secs}s: {:?}",
            i.stats()
        );
        i.publish(&up(f_cnt));
        if let Some((topic, body)) = client.next_within(Duration::from_millis(50)).await {
            let v: Value = serde_json::from_slice(&body).unwrap();
            if topic == topic_of("up") && v["fCnt"] == f_cnt {
                // Drain the other copies of the same event.
                while client
                    .next_within(Duration::from_millis(100))
                    .await
                    .is_some()
                {}
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_commands_and_a_broker_that_dies_and_comes_back() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let mut broker = Mosquitto::start(bin);
    let mut app = TestClient::connect(broker.port, "application", "application/#").await;
    let shutdown = CancellationToken::new();
    let queue = 32;
    let (integ, mut commands) =
        Integrations::start(&config(&broker.url(), 0, queue), shutdown.clone());

    // Connected: an event goes through.
    publish_until_seen(&integ, &mut app, 1000, 10).await;

    // Every kind, on its topic, with ChirpStack's JSON.
    for ev in every_kind() {
        integ.publish(&ev);
        let (topic, body) = app.next(5).await.expect("event arrives");
        assert_eq!(topic, topic_of(ev.name()));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, ev.to_json(), "{topic}");
        assert_eq!(v["deviceInfo"]["devEui"], "70b3d57ed0001234");
        assert_eq!(v["deviceInfo"]["applicationId"], APP);
    }
    let (_, body) = {
        integ.publish(&up(7));
        app.next(5).await.unwrap()
    };
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"], "AAAABw==");
    assert_eq!(v["devAddr"], "26001234");
    assert_eq!(v["rxInfo"][0]["gatewayId"], "b827ebfffe6151a8");
    assert_eq!(v["txInfo"]["modulation"]["lora"]["spreadingFactor"], 7);

    // A downlink enqueued on the command topic.
    let cmd_topic = format!("application/{APP}/device/{DEV_EUI:016x}/command/down");
    let good = format!(
        r#"{{"id":"5b0b5d9e-1111-2222-3333-444455556666","devEui":"{DEV_EUI:016x}","confirmed":true,"fPort":10,"data":"AQID"}}"#
    );
    app.client
        .publish(&cmd_topic, QoS::AtLeastOnce, false, good.clone())
        .await
        .unwrap();
    let cmd = tokio::time::timeout(Duration::from_secs(5), commands.recv())
        .await
        .expect("command arrives")
        .unwrap();
    assert_eq!(
        cmd,
        DownlinkCommand {
            id: Some("5b0b5d9e-1111-2222-3333-444455556666".into()),
            dev_eui: DEV_EUI,
            application_id: APP.into(),
            confirmed: true,
            f_port: 10,
            data: vec![1, 2, 3],
            expires_at: None,
        }
    );

    // A command whose body names another device is refused; the next good one passes.
    let mismatch = r#"{"devEui":"0000000000000001","fPort":10,"data":"AQID"}"#;
    app.client
        .publish(&cmd_topic, QoS::AtLeastOnce, false, mismatch)
        .await
        .unwrap();
    app.client
        .publish(
            &cmd_topic,
            QoS::AtLeastOnce,
            false,
            good.replace("AQID", "BA=="),
        )
        .await
        .unwrap();
    let cmd = tokio::time::timeout(Duration::from_secs(5), commands.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cmd.data, vec![4], "the mismatched command must not arrive");
    // The counter moves just after the hand-over.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut s = integ.stats();
    while (s.commands, s.commands_refused) != (2, 1) {
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
        s = integ.stats();
    }
    assert_eq!(s.dropped, 0, "{s:?}");

    // The broker dies: publish returns at once, events are dropped and counted.
    broker.kill();
    let before = integ.stats();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..(queue as u32 * 4) {
        let t = Instant::now();
        integ.publish(&up(2000 + n));
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        slowest < Duration::from_millis(100),
        "publish blocked {slowest:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while integ.stats().dropped < before.dropped + queue as u64 {
        assert!(Instant::now() < deadline, "{:?}", integ.stats());
        integ.publish(&up(9999));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = integ.stats();
    assert!(s.failed > before.failed, "connection errors counted: {s:?}");
    eprintln!("broker down {:?}: {s:?}", started.elapsed());

    // The broker comes back: the integration reconnects and events flow again, and
    // so do commands (it subscribed again on the new session).
    broker.restart();
    publish_until_seen(&integ, &mut app, 3000, 20).await;
    app.client
        .publish(
            &cmd_topic,
            QoS::AtLeastOnce,
            false,
            good.replace("AQID", "BQ=="),
        )
        .await
        .unwrap();
    let cmd = tokio::time::timeout(Duration::from_secs(5), commands.recv())
        .await
        .expect("a command after the reconnect")
        .unwrap();
    assert_eq!(cmd.data, vec![5]);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_1_counts_acknowledged_events() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let broker = Mosquitto::start(bin);
    let mut app = TestClient::connect(broker.port, "application-q1", "application/#").await;
    let shutdown = CancellationToken::new();
    let (integ, _commands) = Integrations::start(&config(&broker.url(), 1, 64), shutdown.clone());
    publish_until_seen(&integ, &mut app, 1, 10).await;
    let base = integ.stats().published;
    for n in 0..20 {
        integ.publish(&up(100 + n));
    }
    for n in 0..20u32 {
        let (_, body) = app.next(5).await.expect("event");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["fCnt"], 100 + n, "in order");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while integ.stats().published < base + 20 {
        assert!(Instant::now() < deadline, "{:?}", integ.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_broker_at_start_never_blocks() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shutdown = CancellationToken::new();
    let (integ, _c) = Integrations::start(
        &config(&format!("mqtt://127.0.0.1:{port}"), 0, 8),
        shutdown.clone(),
    );
    let t = Instant::now();
    for n in 0..100 {
        integ.publish(&up(n));
    }
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    let s = integ.stats();
    assert_eq!(
        (s.published, s.dropped),
        (0, 92),
        "8 queued, the rest dropped: {s:?}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_the_brokers_ca_and_refused_with_another() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let (broker, ca) = Mosquitto::start_tls(bin);
    let tls_url = format!("mqtts://127.0.0.1:{}", broker.tls_port.unwrap());
    let mut app = TestClient::connect(broker.port, "application-tls", "application/#").await;

    // Trusting another CA: the handshake fails, nothing is published, errors counted.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = tls_files(other.path(), "other-ca");
    let shutdown = CancellationToken::new();
    let mut cfg = config(&tls_url, 0, 8);
    cfg.mqtt.ca_cert = Some(other_ca);
    let (wrong, _c) = Integrations::start(&cfg, shutdown.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while wrong.stats().failed < 2 {
        assert!(Instant::now() < deadline, "{:?}", wrong.stats());
        wrong.publish(&up(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wrong.stats().published, 0);
    assert!(app.next_within(Duration::from_millis(300)).await.is_none());
    shutdown.cancel();

    // Trusting the broker's CA: events flow over TLS.
    let shutdown = CancellationToken::new();
    let mut cfg = config(&tls_url, 0, 8);
    cfg.mqtt.client_id = Some("stationkeeper-tls".into());
    cfg.mqtt.ca_cert = Some(ca);
    let (integ, _c) = Integrations::start(&cfg, shutdown.clone());
    publish_until_seen(&integ, &mut app, 77, 10).await;
    shutdown.cancel();
}

/// Events per second one publisher gets to mosquitto with QoS 0, counted by a
/// subscriber, against a baseline in the same run: a bare rumqttc client publishing
/// the same bytes to the same topic. Also the caller's cost of one `publish` (JSON
/// serialisation included). Run by hand, in release:
/// `cargo test --release --test integration_mqtt -- --ignored --nocapture rate`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn rate() {
    let Some(bin) = mosquitto_or_skip() else {
        return;
    };
    let broker = Mosquitto::start(bin);
    let total: u32 = 200_000;
    let events: Vec<_> = (1..=total).map(up).collect();
    let body_len = serde_json::to_vec(&events[0].to_json()).unwrap().len();

    // Baseline: rumqttc alone, awaiting its channel, same topic and body size.
    let app = TestClient::connect(broker.port, "bench-sub-raw", "application/#").await;
    let raw = TestClient::connect(broker.port, "bench-raw", "nothing/here").await;
    let topic = topic_of("up");
    let bodies: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(&e.to_json()).unwrap())
        .collect();
    let t = Instant::now();
    let drain = tokio::spawn(count(app, total));
    for b in bodies {
        raw.client
            .publish(&topic, QoS::AtMostOnce, false, b)
            .await
            .unwrap();
    }
    let raw_received = drain.await.unwrap();
    let raw_rate = f64::from(raw_received) / t.elapsed().as_secs_f64();

    // Stationkeeper's integration.
    let mut app = TestClient::connect(broker.port, "bench-sub", "application/#").await;
    let shutdown = CancellationToken::new();
    let (integ, _c) = Integrations::start(&config(&broker.url(), 0, 1024), shutdown.clone());
    publish_until_seen(&integ, &mut app, 0, 10).await;
    let base = integ.stats();
    let t = Instant::now();
    let drain = tokio::spawn(count(app, total));
    let mut in_publish = Duration::ZERO;
    for (k, ev) in events.iter().enumerate() {
        // Stay within the queue: the figure is what the connection carries, not drops.
        // (A sleep, not a spin: the machine has two cores for publisher, broker
        // and subscriber.)
        while (k as u64).saturating_sub(integ.stats().published - base.published) >= 900 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let c = Instant::now();
        integ.publish(ev);
        in_publish += c.elapsed();
    }
    let received = drain.await.unwrap();
    let rate = f64::from(received) / t.elapsed().as_secs_f64();
    let s = integ.stats();
    // What `publish` costs the caller before the queue: the JSON of one event.
    let c = Instant::now();
    let bytes: usize = events
        .iter()
        .map(|e| serde_json::to_vec(&e.to_json()).unwrap().len())
        .sum();
    let json_us = c.elapsed().as_secs_f64() * 1e6 / f64::from(total);
    assert!(bytes > 0);
    println!(
        "mqtt qos0, {body_len}-byte up events, {total} each: bare rumqttc {raw_received} received = {raw_rate:.0}/s; \
         Integrations::publish {received} received = {rate:.0}/s ({:.2} of bare), dropped {}; \
         caller cost {:.2} us per publish, of which JSON {json_us:.2} us",
        rate / raw_rate,
        s.dropped - base.dropped,
        in_publish.as_secs_f64() * 1e6 / f64::from(total),
    );
    shutdown.cancel();
}

/// Messages the subscriber receives until `total` or 5 s of silence.
async fn count(mut app: TestClient, total: u32) -> u32 {
    let mut received = 0;
    while received < total && app.next(5).await.is_some() {
        received += 1;
    }
    received
}
