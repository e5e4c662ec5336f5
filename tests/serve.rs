//! The real binary, the way systemd runs it: a config file, a `ready` log line,
//! config errors that name the key, and SIGTERM draining an in-flight request
//! before exiting 0.

mod common;

use std::process::Command;
use std::time::Duration;

use common::station::request::build_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::process::{launch, write_config, BIN};

#[test]
fn a_config_error_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, want) in [
        (
            "[gateways]\nunknown = \"maybe\"\n",
            "unknown variant `maybe`",
        ),
        ("[cups]\nport = 1\n", "duplicate key"),
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
    ] {
        let cfg = write_config(dir.path(), extra);
        let out = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{extra}: {err}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(write_config(dir.path(), ""))
        .env("STATIONKEEPER_API_LISTN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `listn`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_poll_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = launch(&write_config(dir.path(), ""));
    let (_, token) = p.token_gateway("::1").await;

    // Start a poll, send half of it, then SIGTERM the server.
    let mut tls = p.cups_tls().await;
    let body = r#"{"router":"::1","cupsUri":null,"tcUri":null,"cupsCredCrc":0,"tcCredCrc":0,"station":"2.0.6(rpi/std) 2022-01-21 10:00:00","model":"rpi","package":"1.0.0","keys":[]}"#;
    let req = build_request(p.host_port(), Some(token.as_bytes()), body.as_bytes());
    let (head, tail) = req.split_at(req.len() - 20);
    tls.write_all(head).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The server logs the shutdown, then still finishes this request.
    loop {
        let line = p
            .logs
            .recv_timeout(Duration::from_secs(10))
            .expect("shutdown logged");
        if line.contains("shutting down") {
            break;
        }
    }
    tls.write_all(tail).await.unwrap();
    let mut answer = vec![];
    tls.read_to_end(&mut answer).await.ok();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let cups = p.cups;
    let mut p = p;
    let status = tokio::task::spawn_blocking(move || p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");

    // New connections after shutdown are refused.
    assert!(tokio::net::TcpStream::connect(cups).await.is_err());
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(write_config(dir.path(), ""))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads the banner: the pipe is closed before the server writes it.
    drop(child.stdout.take());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    assert!(lines.any(|l| l.contains("ready")), "server reached ready");
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "server still running");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A closed stderr (a log pipe whose reader went away) used to leave the server
/// deaf to SIGTERM: the log subscriber reported the failed write with `eprintln!`,
/// which panicked inside the shutdown path, and the process never exited.
#[test]
fn a_closed_stderr_does_not_keep_sigterm_from_stopping_the_server() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(write_config(dir.path(), ""))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        stderr.any(|l| l.is_ok_and(|l| l.contains("ready"))),
        "server reached ready"
    );
    drop(stderr);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let status = status.expect("SIGTERM stops the server although nobody reads its stderr");
    assert!(status.success(), "{status:?}");
    // Keep stdout's reader alive until here so only stderr is closed.
    drop(BufReader::new(child.stdout.take().unwrap()));
}
