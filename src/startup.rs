//! Turning a config into a running server: create the state directory, open the
//! store, load or generate the PKI and the API token, bind the listeners, and run
//! until the shutdown token fires. `spawn` is what both `stationkeeper serve` and
//! the tests use, so tests exercise the real start-up path on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::{App, AppState};
use crate::config::{host_name, Config};
use crate::fsutil::{create_private_dir, write_atomic};
use crate::server::{self, Listeners};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Bind(std::io::Error),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Devices(String),
}

/// A server started by `spawn`.
pub struct Running {
    pub app: App,
    pub cups_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub lns_addr: SocketAddr,
    /// Where the generated API token is, when the config gives none.
    pub token_file: Option<PathBuf>,
    pub shutdown: CancellationToken,
    pub done: tokio::task::JoinHandle<()>,
}

fn api_tokens(cfg: &Config) -> Result<(Vec<String>, Option<PathBuf>), StartError> {
    if let Some(t) = &cfg.api.tokens {
        return Ok((t.clone(), None));
    }
    let path = cfg.state_dir.join("api-token");
    let err = |source| StartError::StateDir {
        path: path.clone(),
        source,
    };
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            let t = crate::app::new_secret();
            write_atomic(&path, format!("{t}\n").as_bytes(), 0o600).map_err(err)?;
            tracing::info!(path = %path.display(), "generated operator API token");
            t
        }
    };
    Ok((vec![token], Some(path)))
}

/// Blob rows against blob files, before anything serves: files with no row (a
/// crash cut an upload or a delete in two) are removed; rows with no file are
/// reported, because such a blob cannot be delivered.
async fn reconcile_blobs(
    store: &Store,
    blobs: &crate::blobstore::BlobFiles,
    cfg: &Config,
) -> Result<(), StartError> {
    let rows = store.blob_ids().await?.into_iter().collect();
    let found = blobs
        .reconcile(&rows)
        .map_err(|source| StartError::StateDir {
            path: cfg.state_dir.join("blobs"),
            source,
        })?;
    for id in &found.removed {
        tracing::warn!(blob = %id, "removed a blob file that has no row: a crash cut its upload (never answered 201) or its delete short");
    }
    for id in &found.missing {
        tracing::warn!(blob = %id, "blob file is missing from state_dir/blobs: the blob cannot be delivered; delete it (DELETE /blobs/{id}) and upload the file again");
    }
    Ok(())
}

/// Builds the state, binds every listener, and starts serving in a task.
pub async fn spawn(cfg: Config) -> Result<Running, StartError> {
    create_private_dir(&cfg.state_dir).map_err(|source| StartError::StateDir {
        path: cfg.state_dir.clone(),
        source,
    })?;
    let listeners = Listeners::bind(&cfg).await.map_err(StartError::Bind)?;
    let cups_addr = listeners.cups.local_addr().map_err(StartError::Bind)?;
    let api_addr = listeners.api.local_addr().map_err(StartError::Bind)?;
    let lns_addr = listeners.lns.local_addr().map_err(StartError::Bind)?;

    // Default URIs name the port actually bound, so `listen = "...:0"` works too.
    let host = host_name();
    let mut uri_cfg = cfg.clone();
    uri_cfg.cups.listen = cups_addr;
    let cups_uri = uri_cfg.cups_public_uri(&host);
    // Until the LNS face listens, only an explicitly configured LNS is handed out.
    let tc_uri = cfg.lns.public_uri.clone();

    let db = cfg.state_dir.join("stationkeeper.db");
    let store = tokio::task::spawn_blocking(move || Store::open(&db))
        .await
        .expect("store open task")?;
    let tls = {
        let cfg = cfg.clone();
        let host = host.clone();
        tokio::task::spawn_blocking(move || crate::tls::load(&cfg, &host))
            .await
            .expect("tls load task")?
    };
    let (api_tokens, token_file) = api_tokens(&cfg)?;
    let blobs = crate::blobstore::BlobFiles::open(&cfg.state_dir).map_err(|source| {
        StartError::StateDir {
            path: cfg.state_dir.join("blobs"),
            source,
        }
    })?;
    reconcile_blobs(&store, &blobs, &cfg).await?;
    let interrupted = store.close_in_flight_attempts().await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "update deliveries were cut off when the server last stopped; recorded as Interrupted"
        );
    }
    let shutdown = CancellationToken::new();
    let (integrations, commands) =
        crate::integration::Integrations::start(&cfg.integration, shutdown.clone());
    let devices = crate::devices::Devices::new(&cfg, integrations).map_err(StartError::Devices)?;
    let app: App = Arc::new(AppState {
        devices,
        lns: crate::lns::Lns::new(cfg.lns.clone()),
        contacts: Default::default(),
        memo: crate::cups::memo::Memo::new(cfg.limits.cups_memo_gateways),
        refusals: crate::logguard::Refusals::new(&cfg.limits),
        refused: crate::cups::refused::RefusalLog::new(&cfg.console),
        registrations: crate::cups::throttle::RegistrationThrottle::new(&cfg.gateways),
        auth_failures: crate::api::auth::FailureThrottle::new(
            cfg.api.auth_failures_per_source_per_min,
        ),
        fuota: Default::default(),
        campaigns: crate::campaign::Campaigns::new(),
        metrics: Default::default(),
        console: crate::console::session::Sessions::new(&cfg.console),
        shutdown: shutdown.clone(),
        config: cfg,
        store,
        blobs,
        tls,
        cups_uri,
        tc_uri,
        api_tokens,
    });
    if app.config.lorawan.enabled {
        tokio::spawn(crate::devices::run(app.clone()));
    }
    tokio::spawn(crate::devices::run_commands(app.clone(), commands));
    tokio::spawn(crate::campaign::runner::run(app.clone()));
    let done = tokio::spawn(server::run(app.clone(), listeners, shutdown.clone()));
    Ok(Running {
        app,
        cups_addr,
        api_addr,
        lns_addr,
        token_file,
        shutdown,
        done,
    })
}
