//! Runs the real `stationkeeper` binary the way systemd would, for tests that
//! need a real process: signals, kill -9, restarts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_stationkeeper");

pub fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("stationkeeper.toml");
    std::fs::write(
        &p,
        format!(
            "state_dir = \"state\"\n[cups]\nlisten = \"127.0.0.1:0\"\n[lns]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\ntokens = [\"serve-test-token\"]\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// Starts `serve` and waits for its `ready` line; returns the child, the lines
/// of stdout, and a receiver of further stderr lines.
pub fn start(config: &std::path::Path) -> (Child, Vec<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
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
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(6)
        .collect();
    (child, lines, rx)
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
