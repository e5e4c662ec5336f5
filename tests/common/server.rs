//! Starts the real server on 127.0.0.1:0 with a state directory in a tempdir, and
//! talks to it the way an operator (HTTP API) and a gateway (the station simulator,
//! which shares no code with the server) would.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper::Method;
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;
use stationkeeper::config::Config;
use stationkeeper::startup::{spawn, Running};

use super::lns_station::{Auth, LnsStation};
use super::station::Station;

pub const TOKEN: &str = "test-operator-token";
pub const LNS_URI: &str = "wss://lns.example.net:8887";

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    pub running: Running,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        state_dir: dir.join("state"),
        ..Config::default()
    };
    cfg.cups.listen = "127.0.0.1:0".parse().unwrap();
    cfg.api.listen = "127.0.0.1:0".parse().unwrap();
    cfg.lns.listen = "127.0.0.1:0".parse().unwrap();
    cfg.api.tokens = Some(vec![TOKEN.to_string()]);
    cfg.lns.public_uri = Some(LNS_URI.to_string());
    cfg.limits.drain_secs = 5;
    cfg
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path());
        f(&mut cfg);
        let running = spawn(cfg.clone()).await.expect("server starts");
        TestServer { dir, cfg, running }
    }

    /// Stops the server (drain and all) and starts it again on the same ports and
    /// the same state directory.
    pub async fn restart(self) -> TestServer {
        let TestServer {
            dir,
            mut cfg,
            running,
        } = self;
        cfg.cups.listen = running.cups_addr;
        cfg.api.listen = running.api_addr;
        cfg.lns.listen = running.lns_addr;
        running.shutdown.cancel();
        running.done.await.unwrap();
        let running = spawn(cfg.clone()).await.expect("server restarts");
        TestServer { dir, cfg, running }
    }

    pub fn cups(&self) -> SocketAddr {
        self.running.cups_addr
    }

    pub fn cups_uri(&self) -> String {
        self.running.app.cups_uri.clone()
    }

    pub fn api(&self) -> ApiClient {
        ApiClient::new(
            &format!("http://{}", self.running.api_addr),
            TOKEN.into(),
            None,
        )
        .unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.api().call(method, path, body).await
    }

    /// GET an API path that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None).await.unwrap()
    }

    /// `GET /metrics`, which must succeed: the Prometheus text.
    pub async fn scrape(&self) -> String {
        let (status, body) = self
            .api()
            .send(Method::GET, "/metrics", None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// A gateway with LNS token credentials in `region` (the LoRaWAN object of
    /// POST /wireless-gateways, GatewayEui added), and a station holding its tc.* files.
    pub async fn lns_gateway(&self, eui: u64, region: Value) -> (String, LnsStation) {
        lns_gateway(&self.api(), self.running.lns_addr, eui, region).await
    }

    pub async fn create_gateway(&self, eui: u64) -> String {
        let v = self
            .call(
                Method::POST,
                "/wireless-gateways",
                Some(json!({"Name": format!("gw-{eui:x}"), "LoRaWAN": {"GatewayEui": format!("{eui:016x}"), "RfRegion": "EU868"}})),
            )
            .await
            .unwrap();
        v["Id"].as_str().unwrap().to_string()
    }

    /// Issues a credential generation and returns the API answer.
    pub async fn issue(&self, id: &str, service: &str, kind: &str) -> Value {
        self.call(
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": service, "Kind": kind})),
        )
        .await
        .unwrap()
    }

    pub async fn credentials(&self, id: &str) -> Value {
        self.call(
            Method::GET,
            &format!("/wireless-gateways/{id}/credentials"),
            None,
        )
        .await
        .unwrap()
    }

    /// A registered gateway whose station holds credentials of `kind` and has
    /// polled until it has nothing more to receive.
    pub async fn settled_station(&self, eui: u64, kind: &str) -> (String, Station) {
        let id = self.create_gateway(eui).await;
        let mut st = self.station(eui, &self.issue(&id, "CUPS", kind).await);
        for _ in 0..2 {
            let o = st.poll(self.cups()).await;
            assert!(o.is_success(), "poll failed: {:?}", o.error);
        }
        (id, st)
    }

    /// A station whose home holds exactly the files of a credential answer.
    pub fn station(&self, eui: u64, issued: &Value) -> Station {
        let home = self
            .dir
            .path()
            .join(format!("station-{eui:x}-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&home).unwrap();
        let st = Station::new(home, eui);
        install_files(&st, issued);
        st.write_file("version.txt", "1.0.0\n");
        st
    }

    /// A station that holds only the server's trust and cupsUri (server-auth
    /// only), in the home `name`: what open registration meets first.
    pub async fn fresh_station(&self, name: &str, eui: u64) -> Station {
        use super::station::{Category, CredSet};
        let home = self.dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let st = Station::new(home, eui);
        let trust = self.get("/service-endpoint?serviceType=CUPS").await;
        st.write_set(
            CredSet::Reg,
            Category::Cups,
            Some(&self.cups_uri()),
            Some(trust["ServerTrust"].as_str().unwrap().as_bytes()),
            None,
            None,
        );
        st
    }

    pub fn state_dir(&self) -> PathBuf {
        self.cfg.state_dir.clone()
    }
}

/// Writes the `Files` of a credential answer into a station home (what an
/// operator does by hand), replacing the set's other files.
/// `TestServer::lns_gateway` for any server: its API and LNS address.
pub async fn lns_gateway(
    api: &ApiClient,
    lns: SocketAddr,
    eui: u64,
    region: Value,
) -> (String, LnsStation) {
    let mut lorawan = region;
    lorawan["GatewayEui"] = json!(format!("{eui:016x}"));
    let id = api
        .call(
            Method::POST,
            "/wireless-gateways",
            Some(json!({"LoRaWAN": lorawan})),
        )
        .await
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let files = api
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": "LNS", "Kind": "Token"})),
        )
        .await
        .unwrap()["Files"]
        .clone();
    let mut st = LnsStation::new(eui);
    st.trust = Some(files["tc.trust"].as_str().unwrap().as_bytes().to_vec());
    st.auth = Auth::Token(files["tc.key"].as_str().unwrap().as_bytes().to_vec());
    st.resolve = Some(lns);
    assert_eq!(files["tc.uri"].as_str().unwrap().trim(), LNS_URI);
    (id, st)
}

pub fn install_files(st: &Station, issued: &Value) {
    let files = issued["Files"].as_object().expect("Files");
    let prefix = if files.keys().any(|k| k.starts_with("cups")) {
        "cups"
    } else {
        "tc"
    };
    for ext in ["uri", "trust", "crt", "key"] {
        st.remove_file(&format!("{prefix}.{ext}"));
    }
    for (name, content) in files {
        st.write_file(name, content.as_str().unwrap());
    }
}

/// The value of the sample `name` in the Prometheus `text` whose labels include
/// every `labels` pair.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().unwrap())
    })
}
