//! `stationkeeper serve`: load the config, start every face, print where the
//! operator finds the CA, the token and the gateway files, and run until
//! SIGTERM/SIGINT, then drain and exit 0.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config (spec: running.md). Without it, defaults that work from a checkout.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Prints a line of the start-up banner. A closed stdout (a supervisor that
/// discards it, a pipe whose reader went away) must not bring the server down, so
/// write errors are ignored rather than panicking as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub async fn run(a: ServeArgs) -> super::CliResult {
    let cfg = Config::load(a.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    let running = crate::startup::spawn(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let app = &running.app;
    let state = app.config.state_dir.display();
    say!("stationkeeper is running");
    say!(
        "  CUPS          {} (gateways are told {})",
        running.cups_addr,
        app.cups_uri
    );
    say!(
        "  operator API  {}://{}",
        if app.config.api.tls { "https" } else { "http" },
        running.api_addr
    );
    match &app.tc_uri {
        Some(uri) => say!(
            "  LNS           {} (gateways are told {uri})",
            running.lns_addr
        ),
        None => say!(
            "  LNS           {} (set [lns] public_uri to have CUPS point gateways here)",
            running.lns_addr
        ),
    }
    match &running.token_file {
        Some(p) => say!("  API token     {}", p.display()),
        None => say!("  API token     from [api] tokens in the config"),
    }
    let trust = match (&app.config.tls.trust, &app.config.tls.cert) {
        (Some(t), _) => t.display().to_string(),
        (None, Some(c)) => format!("last certificate of {}", c.display()),
        (None, None) => app.tls.dev_ca_path.display().to_string(),
    };
    say!("  gateway trust {trust} (cups.trust / tc.trust for gateways)");
    say!("  database      {state}/stationkeeper.db");
    say!(
        "  next: stationkeeper gateways create --eui <EUI> --region EU868 --out gw-files{}  then copy gw-files/* to the gateway's station home",
        a.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default()
    );
    let shutdown = running.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    running
        .done
        .await
        .map_err(|e| format!("server task failed: {e}"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
