//! For the integration tests: a real mosquitto broker started with its own config
//! on a free loopback port, a real MQTT client that records what it receives, and
//! sample device events.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use stationkeeper::integration::{DeviceInfo, Event, RxInfo, TxInfo};
use tokio::sync::mpsc;

/// The mosquitto binary: on PATH, or in /usr/sbin where Debian puts it (not on a
/// non-root PATH). None: the caller skips, except in CI where it must be there.
pub fn mosquitto_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

/// Returns the binary, or None after saying why the test is skipped; panics in CI.
pub fn mosquitto_or_skip() -> Option<PathBuf> {
    let bin = mosquitto_binary();
    if bin.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)");
        }
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
    }
    bin
}

/// A mosquitto process on 127.0.0.1:`port`, killed on drop; with TLS, a second
/// listener on `tls_port` presents a certificate for 127.0.0.1.
pub struct Mosquitto {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for 127.0.0.1 it issued, as PEM files in `dir`:
/// (ca.pem, server.pem, server.key).
pub fn tls_files(dir: &std::path::Path, ca_name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca = stationkeeper::pki::Ca::generate(ca_name).unwrap();
    let server = ca.issue_server(&["127.0.0.1".to_string()]).unwrap();
    let paths = (
        dir.join(format!("{ca_name}.pem")),
        dir.join(format!("{ca_name}-server.pem")),
        dir.join(format!("{ca_name}-server.key")),
    );
    std::fs::write(&paths.0, &ca.cert_pem).unwrap();
    std::fs::write(&paths.1, &server.cert_pem).unwrap();
    std::fs::write(&paths.2, &server.key_pkcs8_pem).unwrap();
    paths
}

impl Mosquitto {
    pub fn start(bin: PathBuf) -> Mosquitto {
        let mut m = Mosquitto {
            bin,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            tls_port: None,
            child: None,
        };
        m.restart();
        m
    }

    /// Also listens with TLS; returns the CA file clients must trust.
    pub fn start_tls(bin: PathBuf) -> (Mosquitto, PathBuf) {
        let mut m = Mosquitto {
            bin,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            tls_port: Some(free_port()),
            child: None,
        };
        let (ca, _, _) = tls_files(m.dir.path(), "broker-ca");
        m.restart();
        (m, ca)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut text = format!(
            "allow_anonymous true\npersistence false\nlog_dest stderr\nlistener {} 127.0.0.1\n",
            self.port
        );
        if let Some(p) = self.tls_port {
            let d = self.dir.path().display();
            text += &format!(
                "listener {p} 127.0.0.1\ncertfile {d}/broker-ca-server.pem\nkeyfile {d}/broker-ca-server.key\n"
            );
        }
        std::fs::write(&conf, text).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let ports = [Some(self.port), self.tls_port];
        while ports
            .iter()
            .flatten()
            .any(|p| TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {ports:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (SIGKILL: connections are cut, no goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real MQTT client subscribed to `filter`; (re)subscribes at every connect and
/// forwards each message received as (topic, payload).
pub struct TestClient {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl TestClient {
    pub async fn connect(port: u16, id: &str, filter: &str) -> TestClient {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        let sub = client.clone();
        let filter = filter.to_string();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        let (sub, filter) = (sub.clone(), filter.clone());
                        tokio::spawn(async move { sub.subscribe(filter, QoS::AtLeastOnce).await });
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed.recv())
            .await
            .expect("test client subscribed");
        TestClient { client, rx }
    }

    /// The next message within `secs`, or None.
    pub async fn next(&mut self, secs: u64) -> Option<(String, Vec<u8>)> {
        self.next_within(Duration::from_secs(secs)).await
    }

    pub async fn next_within(&mut self, d: Duration) -> Option<(String, Vec<u8>)> {
        tokio::time::timeout(d, self.rx.recv()).await.ok().flatten()
    }
}

pub const APP: &str = "6d3f1e3a-0c8e-4a53-9f44-5a2f8b0d2a11";
pub const DEV_EUI: u64 = 0x70b3_d57e_d000_1234;

pub fn device() -> DeviceInfo {
    DeviceInfo {
        application_id: APP.into(),
        application_name: "meters".into(),
        device_profile_id: "b1f0c6de-3f0a-4a4e-8d1e-0e6f4d2a9c01".into(),
        device_profile_name: "eu868-a".into(),
        device_name: "meter-7".into(),
        dev_eui: DEV_EUI,
        device_class_enabled: "CLASS_A",
        tags: BTreeMap::new(),
    }
}

pub fn tx_info() -> TxInfo {
    TxInfo {
        frequency: 868_100_000,
        bandwidth: 125_000,
        spreading_factor: 7,
        code_rate: "CR_4_5",
    }
}

pub fn up(f_cnt: u32) -> Event {
    Event::Up {
        deduplication_id: format!("00000000-0000-4000-8000-{f_cnt:012x}"),
        time: "2026-12-05T17:00:00.123Z".into(),
        device_info: device(),
        dev_addr: 0x2600_1234,
        adr: true,
        dr: 5,
        f_cnt,
        f_port: 10,
        confirmed: false,
        data: f_cnt.to_be_bytes().to_vec(),
        rx_info: vec![RxInfo {
            gateway_eui: 0xb827_ebff_fe61_51a8,
            uplink_id: f_cnt,
            ns_time: "2026-12-05T17:00:00.100Z".into(),
            time_since_gps_epoch: Some("1449000018.100s".into()),
            rssi: -57,
            snr: 9.5,
            context: vec![1, 2, 3, 4],
        }],
        tx_info: tx_info(),
        region_config_id: "eu868".into(),
    }
}

/// One event of every kind.
pub fn every_kind() -> Vec<Event> {
    let d = device();
    vec![
        up(1),
        Event::Join {
            deduplication_id: "j".into(),
            time: "2026-12-05T17:00:00Z".into(),
            device_info: d.clone(),
            dev_addr: 0x2600_1234,
            region_config_id: "eu868".into(),
        },
        Event::Ack {
            deduplication_id: "a".into(),
            time: "2026-12-05T17:00:01Z".into(),
            device_info: d.clone(),
            queue_item_id: "q".into(),
            acknowledged: true,
            f_cnt_down: 4,
        },
        Event::TxAck {
            downlink_id: 9,
            time: "2026-12-05T17:00:02Z".into(),
            device_info: d.clone(),
            queue_item_id: "q".into(),
            f_cnt_down: 4,
            gateway_eui: 0xb827_ebff_fe61_51a8,
            tx_info: tx_info(),
        },
        Event::Status {
            deduplication_id: "s".into(),
            time: "2026-12-05T17:00:03Z".into(),
            device_info: d.clone(),
            margin: 7,
            external_power_source: true,
            battery_level_unavailable: false,
            battery_level: 0.0,
        },
        Event::Log {
            time: "2026-12-05T17:00:04Z".into(),
            device_info: d,
            level: "ERROR",
            code: "UPLINK_MIC",
            description: "MIC of uplink frame is invalid".into(),
            context: BTreeMap::new(),
        },
    ]
}
