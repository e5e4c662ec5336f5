//! Runs the real `stationkeeper` binary the way systemd would, for tests that
//! need a real process: signals, kill -9, restarts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_stationkeeper");

pub fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    write_config_lns(dir, "", extra)
}

/// The same, with `[lns] public_uri` set (gateways are told the LNS).
pub fn write_lns_config(dir: &std::path::Path) -> std::path::PathBuf {
    let uri = super::server::LNS_URI;
    write_config_lns(dir, &format!("public_uri = \"{uri}\"\n"), "")
}

/// A config with `lns_extra` in `[lns]` and `extra` (other tables) at the end.
pub fn write_config_lns(dir: &std::path::Path, lns_extra: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("stationkeeper.toml");
    std::fs::write(
        &p,
        format!(
            "state_dir = \"state\"\n[cups]\nlisten = \"127.0.0.1:0\"\n[lns]\nlisten = \"127.0.0.1:0\"\n{lns_extra}[api]\nlisten = \"127.0.0.1:0\"\ntokens = [\"serve-test-token\"]\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// Starts `serve` and waits for its `ready` line; returns the child, the lines
/// of stdout, and a receiver of further stderr lines.
pub fn start(config: &std::path::Path) -> (Child, Vec<String>, mpsc::Receiver<String>) {
    let (child, lines, rx, _) = start_env(config, &[]);
    (child, lines, rx)
}

/// Every stderr line a process wrote so far, start-up included.
pub type LogLines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// `start` with extra environment variables; also returns every stderr line.
pub fn start_env(
    config: &std::path::Path,
    envs: &[(&str, &str)],
) -> (Child, Vec<String>, mpsc::Receiver<String>, LogLines) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let all = LogLines::default();
    let all2 = all.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs ready");
        if line.contains("ready") {
            break;
        }
    }
    // Keep draining stdout for the process's whole life, so it never writes
    // into a closed pipe; hand the banner over once its last line arrived.
    let stdout = child.stdout.take().unwrap();
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = out_rx.recv_timeout(Duration::from_secs(30)) {
        let last = line.trim_start().starts_with("next:");
        lines.push(line);
        if last {
            break;
        }
    }
    (child, lines, rx, all)
}

pub fn addr_after(lines: &[String], label: &str) -> std::net::SocketAddr {
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(label))
        .expect(label);
    let word = line
        .split_whitespace()
        .find(|w| w.contains("127.0.0.1:"))
        .unwrap();
    word.trim_start_matches("http://").parse().unwrap()
}

/// A running server process and what its start-up output told.
pub struct Proc {
    pub child: Child,
    pub cups: std::net::SocketAddr,
    pub api: std::net::SocketAddr,
    pub lns: std::net::SocketAddr,
    /// The cupsUri gateways are told (`https://<host>:<port>`).
    pub cups_uri: String,
    pub logs: mpsc::Receiver<String>,
    /// Every stderr line so far, start-up included.
    pub all_logs: LogLines,
    pub state: std::path::PathBuf,
}

/// Starts `serve` with `config` (from `write_config`) and reads its addresses.
pub fn launch(config: &std::path::Path) -> Proc {
    launch_env(config, &[])
}

/// `launch` with extra environment variables (test hooks).
pub fn launch_env(config: &std::path::Path, envs: &[(&str, &str)]) -> Proc {
    let (child, lines, logs, all_logs) = start_env(config, envs);
    let cups_uri = lines[1]
        .split("told ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    Proc {
        child,
        cups: addr_after(&lines, "CUPS"),
        api: addr_after(&lines, "operator API"),
        lns: addr_after(&lines, "LNS"),
        cups_uri,
        logs,
        all_logs,
        state: config.parent().unwrap().join("state"),
    }
}

/// A test that ends (or fails) with the server still running must not leave it
/// behind: `Child` does not stop its process when dropped.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    pub fn api(&self) -> stationkeeper::cli::ApiClient {
        stationkeeper::cli::ApiClient::new(
            &format!("http://{}", self.api),
            "serve-test-token".into(),
            None,
        )
        .unwrap()
    }

    /// `host:port` of the cupsUri, as station writes it in `Host`.
    pub fn host_port(&self) -> &str {
        self.cups_uri.split_once("://").unwrap().1
    }

    /// Registers gateway `eui` (any EUI form) with a CUPS token; returns its Id
    /// and the token header line.
    pub async fn token_gateway(&self, eui: &str) -> (String, String) {
        use hyper::Method;
        use serde_json::json;
        let c = self.api();
        let id = c
            .call(
                Method::POST,
                "/wireless-gateways",
                Some(json!({"LoRaWAN": {"GatewayEui": eui, "RfRegion": "EU868"}})),
            )
            .await
            .unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let issued = c
            .call(
                Method::POST,
                &format!("/wireless-gateways/{id}/credentials"),
                Some(json!({"Service": "CUPS", "Kind": "Token"})),
            )
            .await
            .unwrap();
        (
            id,
            issued["Files"]["cups.key"].as_str().unwrap().to_string(),
        )
    }

    /// A TLS 1.2 connection to the CUPS port, trusting the server's dev CA.
    pub async fn cups_tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let trust = std::fs::read(self.state.join("pki/ca.crt")).unwrap();
        let host = self.host_port().rsplit_once(':').unwrap().0.to_string();
        let tcp = tokio::net::TcpStream::connect(self.cups).await.unwrap();
        tokio_rustls::TlsConnector::from(
            super::station::net::client_config(&trust, None, true).unwrap(),
        )
        .connect(rustls::pki_types::ServerName::try_from(host).unwrap(), tcp)
        .await
        .unwrap()
    }
}
